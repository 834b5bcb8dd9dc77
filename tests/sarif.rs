//! SARIF 2.1.0 from `scan` and `audit`: structure checked here, and validated with Microsoft's SARIF
//! multitool (GitHub ingestion rules) when it is installed (`npm install -g @microsoft/sarif-multitool`, or
//! fetched by `npx`).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::run as fwscan;

/// Runs the multitool's validator with the GitHub rules (and the SARIF rules). `None` when the tool is not
/// available. The npm launcher runs the tool through a shell, so the `;` of the rule-kind list is quoted.
fn validate(file: &Path) -> Option<(bool, String)> {
    let attempts: [(&str, Vec<&str>); 2] = [
        ("sarif-multitool", vec![]),
        ("npx", vec!["--yes", "@microsoft/sarif-multitool"]),
    ];
    for (prog, pre) in attempts {
        let mut args: Vec<String> = pre.iter().map(|s| s.to_string()).collect();
        args.extend([
            "validate".into(),
            "--rule-kind".into(),
            "'Gh;Sarif'".into(),
            file.display().to_string(),
        ]);
        let Ok(out) = Command::new(prog).args(&args).output() else {
            continue;
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !text.contains("SARIF") && !text.contains("Analysis completed") {
            continue;
        }
        let errors = text
            .lines()
            .any(|l| l.contains(": error ") || l.contains("ERROR(S)"));
        let ok =
            out.status.success() && !errors && text.contains("Analysis completed successfully");
        return Some((ok, text));
    }
    None
}

pub(crate) fn check_with_multitool(file: &Path) {
    match validate(file) {
        None => crate::harness::skip(&format!(
            "SKIPPED multitool validation of {}: sarif-multitool/npx not available",
            file.display()
        )),
        Some((ok, text)) => assert!(ok, "SARIF multitool reports errors:\n{text}"),
    }
}

/// Checks what GitHub needs: one rule per code, results referring to them, fingerprints, locations.
fn check_structure(v: &Value) -> Vec<Value> {
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let codes: Vec<&str> = fwscan::compare::Code::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(ids, codes, "one rule per finding code, in order");
    for r in rules {
        assert!(!r["shortDescription"]["text"].as_str().unwrap().is_empty());
        assert!(!r["help"]["text"].as_str().unwrap().is_empty());
    }
    let results = run["results"].as_array().unwrap().clone();
    for r in &results {
        let i = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[i]["id"], r["ruleId"]);
        assert!(r["partialFingerprints"]["fwscanFinding/v1"].is_string());
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(loc["artifactLocation"]["uri"].is_string());
    }
    results
}

fn layout_images(dir: &Path) -> (String, String, String) {
    let mut golden: Vec<u8> = (0..0x10000u32).map(|i| (i * 7 + 3) as u8).collect();
    for b in &mut golden[0xe000..] {
        *b = 0xff;
    }
    let layout = dir.join("img.layout");
    std::fs::write(
        &layout,
        "00000000:00000fff descriptor\n00001000:0000dfff bios\n0000e000:0000ffff nvram\n",
    )
    .unwrap();
    let g = dir.join("golden.bin");
    std::fs::write(&g, &golden).unwrap();
    let mut bad = golden.clone();
    bad[0x4321] ^= 0xff;
    let t = dir.join("tampered.bin");
    std::fs::write(&t, &bad).unwrap();
    (
        g.display().to_string(),
        t.display().to_string(),
        layout.display().to_string(),
    )
}

#[test]
fn scan_sarif_is_valid_with_byte_offsets_and_stable_fingerprints() {
    let d = tempfile::tempdir().unwrap();
    let (g, t, layout) = layout_images(d.path());
    let m = d.path().join("m.json");
    let (c, _, e) = fwscan(&[
        "baseline",
        &g,
        "-o",
        m.to_str().unwrap(),
        "--layout",
        &layout,
        "--mutable",
        "nvram",
    ]);
    assert_eq!(c, 0, "{e}");
    let ms = m.to_str().unwrap();
    let (c, out, _) = fwscan(&[
        "scan",
        &t,
        "-m",
        ms,
        "--insecure-unsigned",
        "--format",
        "sarif",
    ]);
    assert_eq!(c, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    let results = check_structure(&v);
    let (_, json, _) = fwscan(&[
        "scan",
        &t,
        "-m",
        ms,
        "--insecure-unsigned",
        "--format",
        "json",
    ]);
    let report: Value = serde_json::from_str(&json).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(results.len(), findings.len());
    let bios = results
        .iter()
        .find(|r| r["properties"]["regionPath"] == "bios")
        .expect("a result for the bios region");
    let region = &bios["locations"][0]["physicalLocation"]["region"];
    assert_eq!(region["byteOffset"], 0x1000);
    assert_eq!(region["byteLength"], 0xd000);
    assert_eq!(bios["ruleId"], "region-modified");
    // The changed bytes are located too (one 64 KiB block digest covers the region).
    let rel = &bios["relatedLocations"][0]["physicalLocation"]["region"];
    assert!(rel["byteOffset"].as_u64().unwrap() <= 0x4321);
    // Fingerprints are stable between runs.
    let (_, out2, _) = fwscan(&[
        "scan",
        &t,
        "-m",
        ms,
        "--insecure-unsigned",
        "--format",
        "sarif",
    ]);
    let v2: Value = serde_json::from_str(&out2).unwrap();
    assert_eq!(
        v["runs"][0]["results"][0]["partialFingerprints"],
        v2["runs"][0]["results"][0]["partialFingerprints"]
    );
    let f = d.path().join("scan.sarif");
    std::fs::write(&f, &out).unwrap();
    check_with_multitool(&f);
    // A scan that cannot be decided is still valid SARIF, with the error as a result.
    let (c, out, _) = fwscan(&[
        "scan",
        "/nonexistent/image.bin",
        "-m",
        ms,
        "--insecure-unsigned",
        "--format",
        "sarif",
    ]);
    assert_eq!(c, 2);
    let v: Value = serde_json::from_str(&out).unwrap();
    let results = check_structure(&v);
    assert_eq!(results[0]["ruleId"], "read-error");
    let f = d.path().join("error.sarif");
    std::fs::write(&f, &out).unwrap();
    check_with_multitool(&f);
}

#[test]
fn audit_sarif_is_valid_and_covers_every_problem() {
    let d = tempfile::tempdir().unwrap();
    let (g, t, layout) = layout_images(d.path());
    let fleet = d.path().join("fleet dir");
    let mans = d.path().join("manifests");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::create_dir_all(&mans).unwrap();
    let (c, _, e) = fwscan(&[
        "baseline",
        &g,
        "-o",
        mans.join("l1.json").to_str().unwrap(),
        "--layout",
        &layout,
        "--mutable",
        "nvram",
        "--match-size",
    ]);
    assert_eq!(c, 0, "{e}");
    std::fs::copy(&g, fleet.join("ok.bin")).unwrap();
    std::fs::copy(&t, fleet.join("bad #1.bin")).unwrap();
    std::fs::write(fleet.join("other.bin"), b"not firmware anyone approved").unwrap();
    let (c, out, _) = fwscan(&[
        "audit",
        fleet.to_str().unwrap(),
        "--manifests",
        mans.to_str().unwrap(),
        "--insecure-unsigned",
        "--format",
        "sarif",
        "--max-size",
        "0",
        "--include",
        "ok.bin",
    ]);
    // --max-size 0: the file is over the cap: an error result.
    assert_eq!(c, 2);
    let v: Value = serde_json::from_str(&out).unwrap();
    let results = check_structure(&v);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["ruleId"], "read-error");
    assert_eq!(v["runs"][0]["invocations"][0]["executionSuccessful"], false);

    let (c, out, err) = fwscan(&[
        "audit",
        fleet.to_str().unwrap(),
        "--manifests",
        mans.to_str().unwrap(),
        "--insecure-unsigned",
        "--format",
        "sarif",
    ]);
    assert_eq!(c, 1, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let results = check_structure(&v);
    let rules: Vec<&str> = results
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"region-modified"), "{rules:?}");
    assert!(rules.contains(&"unknown-firmware"), "{rules:?}");
    let uris: Vec<&str> = results
        .iter()
        .map(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(
        uris.iter()
            .any(|u| u.ends_with("fleet%20dir/bad%20%231.bin")),
        "{uris:?}"
    );
    let f = d.path().join("audit.sarif");
    std::fs::write(&f, &out).unwrap();
    check_with_multitool(&f);
}
