//! Fail closed (issue 19): CLEAN only when verified evidence accounts for every byte that can run. Each
//! test builds one attack of the attack run and fails on the code before the issue: duplicate
//! volumes that won the anchor vote, unknown bytes beside VARS+CODE, blank and random dumps called clean.
//! The BMC layout a dump declares itself is in `tests/packages.rs` (it needs the signed OpenBMC package).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{code_paths, have_file, run as fwscan};

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fwscan-failclosed-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `fwscan scan IMG --manifest M --insecure-unsigned --format json`: (exit code, report).
fn scan(img: &Path, m: &Path) -> (i32, Value) {
    let (code, out, err) = fwscan(&[
        "scan",
        img.to_str().unwrap(),
        "--manifest",
        m.to_str().unwrap(),
        "--insecure-unsigned",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, v)
}

/// A plain baseline of OVMF_CODE (the firmware volumes the CPU runs), in `dir`.
fn code_baseline(dir: &Path) -> PathBuf {
    let m = dir.join("code.manifest.json");
    let (c, _, err) = fwscan(&["baseline", OVMF_CODE, "-o", m.to_str().unwrap()]);
    assert_eq!(c, 0, "{err}");
    m
}

#[test]
fn blank_empty_and_random_dumps_are_never_clean() {
    let dir = scratch("blank");
    let noise = crate::support::testdata::prng_bytes(19, 1 << 20);
    for (name, bytes) in [
        ("empty.bin", Vec::new()),
        ("zeros.bin", vec![0u8; 1 << 20]),
        ("erased.bin", vec![0xFFu8; 1 << 20]),
        ("random.bin", noise),
    ] {
        let f = dir.join(name);
        std::fs::write(&f, &bytes).unwrap();
        let (code, out, err) = fwscan(&["check", f.to_str().unwrap(), "--format", "json"]);
        assert_eq!(code, 2, "{name}: {out} {err}");
        let r: Value = serde_json::from_str(&out).unwrap();
        let r = r.get(0).unwrap_or(&r);
        assert_eq!(r["error"]["code"], "unrecognized-image", "{name}: {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nothing was checked"),
            "{name}: {r}"
        );
        let (code, out, _) = fwscan(&["check", f.to_str().unwrap()]);
        assert_eq!(code, 2, "{name}: {out}");
        assert!(out.contains("unrecognized-image"), "{name}: {out}");
    }
    // `scan` against the signed golden baseline: an erased or empty dump is not decided either.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["empty.bin", "erased.bin"] {
        let (code, out, err) = fwscan(&[
            "scan",
            dir.join(name).to_str().unwrap(),
            "--manifest",
            root.join("testdata/core/golden.manifest.json")
                .to_str()
                .unwrap(),
            "--trust",
            root.join("testdata/trust.json").to_str().unwrap(),
        ]);
        assert_eq!(code, 2, "{name}: {out} {err}");
        assert!(out.contains("unrecognized-image"), "{name}: {out}");
    }
}

#[test]
fn a_genuine_copy_away_from_the_reset_vector_does_not_hide_an_implant_at_the_top() {
    if !have_file(OVMF_CODE, "Debian: ovmf") {
        return;
    }
    let dir = scratch("dup");
    let m = code_baseline(&dir);
    let code = std::fs::read(OVMF_CODE).unwrap();
    let (implanted, guid, _) = crate::uefi::patch_dxe_driver(&code, 10);
    // 8 MiB: the genuine volumes at 0, where nothing executes; the implanted ones at the top, where the
    // reset vector is.
    let mut img = vec![0xFFu8; 8 << 20];
    img[..code.len()].copy_from_slice(&code);
    let top = img.len() - implanted.len();
    img[top..].copy_from_slice(&implanted);
    let dump = dir.join("dup.bin");
    std::fs::write(&dump, &img).unwrap();
    let (c, r) = scan(&dump, &m);
    assert_eq!(c, 1, "{}", r["findings"]);
    let f = code_paths(&r);
    assert!(
        f.iter()
            .any(|(c, p)| c == "module-modified" && p.contains(&guid)),
        "the implanted copy the CPU runs was not compared: {f:?}"
    );
    assert!(
        f.iter().any(|(c, _)| c == "anchor-ambiguous"),
        "the second copy was not reported: {f:?}"
    );
    assert_eq!(r["anchors"][0]["offset"], top as u64, "{}", r["anchors"]);
    // The same dump with the genuine volumes at the top scans against them, the copy still ambiguous.
    img[top..].copy_from_slice(&code);
    std::fs::write(&dump, &img).unwrap();
    let (c, r) = scan(&dump, &m);
    assert_eq!(c, 1, "{}", r["findings"]);
    let f = code_paths(&r);
    assert!(
        f.iter()
            .all(|(c, _)| c == "anchor-ambiguous" || c == "not-covered"),
        "{f:?}"
    );
    assert!(f.iter().any(|(c, _)| c == "anchor-ambiguous"), "{f:?}");
}

#[test]
fn unknown_bytes_beside_vars_and_code_are_not_covered() {
    if !have_file(OVMF_CODE, "Debian: ovmf") || !have_file(OVMF_VARS, "Debian: ovmf") {
        return;
    }
    let dir = scratch("beside");
    let m = code_baseline(&dir);
    let vars = std::fs::read(OVMF_VARS).unwrap();
    let code = std::fs::read(OVMF_CODE).unwrap();
    // The flash a VM has: VARS then CODE. Per-machine variables by structure, the code compared: clean.
    let mut clean = vars.clone();
    clean.extend_from_slice(&code);
    let dump = dir.join("vm.bin");
    std::fs::write(&dump, &clean).unwrap();
    let (c, r) = scan(&dump, &m);
    assert_eq!(c, 0, "{}", r["findings"]);
    assert_eq!(r["uncovered"][0]["offset"], 0, "{}", r["uncovered"]);
    // 4 MiB of random bytes in front: nothing accounts for them.
    let mut img = crate::support::testdata::prng_bytes(7, 4 << 20);
    let noise_len = img.len() as u64;
    img.extend_from_slice(&clean);
    std::fs::write(&dump, &img).unwrap();
    let (c, r) = scan(&dump, &m);
    assert_eq!(c, 1, "{}", r["findings"]);
    let nc: Vec<&Value> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "not-covered")
        .collect();
    assert_eq!(nc.len(), 1, "{}", r["findings"]);
    assert_eq!(nc[0]["severity"], "error");
    let covered: u64 = nc[0]["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["length"].as_u64().unwrap())
        .sum();
    assert_eq!(nc[0]["ranges"][0]["offset"], 0, "{}", nc[0]);
    assert!(covered >= noise_len - 16, "{}", nc[0]);
    assert!(
        covered <= noise_len,
        "the variable store was counted: {}",
        nc[0]
    );
    // The integrity category cannot be waived.
    let (code, _, err) = fwscan(&[
        "scan",
        dump.to_str().unwrap(),
        "--manifest",
        m.to_str().unwrap(),
        "--insecure-unsigned",
        "--ignore-category",
        "parse",
        "--ignore-category",
        "input",
    ]);
    assert_eq!(code, 1, "{err}");
}

/// `fwscan baseline OVMF_CODE -o M ARGS...`, in `dir`: the manifest's path and its JSON.
fn code_baseline_with(dir: &Path, args: &[&str]) -> (PathBuf, Value) {
    let m = dir.join("code-ab.manifest.json");
    let mut all = vec!["baseline", OVMF_CODE, "-o", m.to_str().unwrap()];
    all.extend_from_slice(args);
    let (c, _, err) = fwscan(&all);
    assert_eq!(c, 0, "{err}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&m).unwrap()).unwrap();
    (m, v)
}

#[test]
fn a_copy_the_baseline_declares_is_compared_where_it_declares_it() {
    if !have_file(OVMF_CODE, "Debian: ovmf") {
        return;
    }
    let dir = scratch("ab");
    // The vendor's A/B flash: the firmware at the top (where the CPU starts) and a recovery copy at 0.
    let (m, manifest) = code_baseline_with(&dir, &["--copy", "0x0"]);
    assert_eq!(
        manifest["parts"][0]["copies"],
        serde_json::json!([{ "offset": 0 }]),
        "{}",
        manifest["parts"]
    );
    // The field is in the manifest schema, which refuses a copy with two places.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/manifest-v1.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(jsonschema::is_valid(&schema, &manifest));
    let mut bad = manifest.clone();
    bad["parts"][0]["copies"] = serde_json::json!([{ "offset": 0, "partition": "alt" }]);
    assert!(!jsonschema::is_valid(&schema, &bad));
    let code = std::fs::read(OVMF_CODE).unwrap();
    let mut img = vec![0xFFu8; 8 << 20];
    img[..code.len()].copy_from_slice(&code);
    let top = img.len() - code.len();
    img[top..].copy_from_slice(&code);
    let dump = dir.join("ab.bin");
    std::fs::write(&dump, &img).unwrap();
    let (c, r) = scan(&dump, &m);
    assert_eq!(
        c, 0,
        "the declared copy is not ambiguous: {}",
        r["findings"]
    );
    let offsets: Vec<u64> = r["anchors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [top as u64, 0], "{}", r["anchors"]);
    // Without the declaration the same dump is ambiguous, as before.
    let (c, r) = scan(&dump, &code_baseline(&dir));
    assert_eq!(c, 1, "{}", r["findings"]);
    assert!(code_paths(&r).iter().any(|(c, _)| c == "anchor-ambiguous"));

    // A modified copy is a finding that names the copy; the running copy is still the one at the top.
    let (implanted, guid, _) = crate::uefi::patch_dxe_driver(&code, 10);
    img[..code.len()].copy_from_slice(&implanted);
    std::fs::write(&dump, &img).unwrap();
    let (c, r) = scan(&dump, &m);
    assert_eq!(c, 1, "{}", r["findings"]);
    let fs = r["findings"].as_array().unwrap();
    let hit = fs
        .iter()
        .find(|f| f["code"] == "module-modified")
        .unwrap_or_else(|| panic!("the modified copy was not compared: {}", r["findings"]));
    assert!(hit["path"].as_str().unwrap().contains(&guid), "{hit}");
    assert!(hit["offset"].as_u64().unwrap() < code.len() as u64, "{hit}");
    assert!(
        hit["message"]
            .as_str()
            .unwrap()
            .contains("declared copy 1 (offset 0x0)"),
        "{hit}"
    );
    assert!(fs.iter().all(|f| f["code"] != "anchor-ambiguous"), "{fs:?}");

    // A declared copy that is missing (erased) is a finding too, and the part itself is still compared
    // at the top (not the whole baseline against the whole dump).
    img[..code.len()].fill(0xFF);
    std::fs::write(&dump, &img).unwrap();
    let (c, r) = scan(&dump, &m);
    assert_eq!(c, 1, "{}", r["findings"]);
    let f = crate::harness::code_path_messages(&r);
    assert!(
        f.iter()
            .any(|(c, _, msg)| c == "copy-missing" && msg.contains("declared copy 1 (offset 0x0)")),
        "{f:?}"
    );
    assert!(f.iter().all(|(c, _, _)| c == "copy-missing"), "{f:?}");
    assert_eq!(r["anchors"][0]["offset"], top as u64, "{}", r["anchors"]);

    // A copy anywhere the baseline does not declare stays ambiguous, beside the declared one.
    let mut img = vec![0xFFu8; 12 << 20];
    img[..code.len()].copy_from_slice(&code);
    img[4 << 20..(4 << 20) + code.len()].copy_from_slice(&code);
    let top = img.len() - code.len();
    img[top..].copy_from_slice(&code);
    std::fs::write(&dump, &img).unwrap();
    let (c, r) = scan(&dump, &m);
    assert_eq!(c, 1, "{}", r["findings"]);
    let amb: Vec<u64> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "anchor-ambiguous")
        .map(|f| f["offset"].as_u64().unwrap())
        .collect();
    assert!(!amb.is_empty(), "{}", r["findings"]);
    assert!(
        amb.iter()
            .all(|&o| (4 << 20..(4 << 20) + code.len() as u64).contains(&o)),
        "only the undeclared copy is ambiguous: {amb:x?}"
    );

    // fwscan refuses such a manifest too, and one that declares a copy twice.
    for copies in [
        serde_json::json!([{ "offset": 0, "partition": "alt" }]),
        serde_json::json!([{ "offset": 0 }, { "offset": 0 }]),
    ] {
        let mut bad = manifest.clone();
        bad["parts"][0]["copies"] = copies.clone();
        let f = dir.join("bad-copies.json");
        std::fs::write(&f, serde_json::to_vec(&bad).unwrap()).unwrap();
        let (c, out, _) = fwscan(&[
            "scan",
            dump.to_str().unwrap(),
            "--manifest",
            f.to_str().unwrap(),
            "--insecure-unsigned",
        ]);
        assert_eq!(c, 2, "{copies}: {out}");
        assert!(out.contains("manifest-invalid"), "{copies}: {out}");
    }

    // A declaration must name a part the baseline has.
    let (c, _, err) = fwscan(&[
        "baseline",
        OVMF_CODE,
        "-o",
        dir.join("bad.json").to_str().unwrap(),
        "--copy",
        "no/such/part=0x0",
    ]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("no part"), "{err}");
}
