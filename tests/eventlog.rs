//! `fwscan eventlog` (issue 23): TCG event logs parsed and replayed, cross-checked against `tpm2_eventlog`
//! (tpm2-tools) on real logs (`testdata/eventlog/`, provenance in its PROVENANCE file), hostile logs, and
//! real OVMF boots under QEMU with a software TPM (`../shared/tools/boot-evlog.sh`): the firmware's own log
//! bound to the image that booted, and to one with a patched DXE driver.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fwscan::formats::tpm::eventlog::{self, Limits, ALG_SHA256};

use crate::harness::{have_file, have_tool, run, skip};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/eventlog")
}

fn logs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    v.sort();
    v
}

fn json(args: &[&str]) -> (i32, serde_json::Value, String) {
    let (code, out, err) = run(args);
    let doc = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}{err}"));
    (code, doc, err)
}

/// The `pcrs:` block `tpm2_eventlog` prints: bank → PCR → lowercase hex. `None`: the tool refused or
/// crashed on the log.
fn tpm2_eventlog(log: &Path) -> Option<BTreeMap<String, BTreeMap<String, String>>> {
    let out = Command::new("tpm2_eventlog").arg(log).output().unwrap();
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut banks = BTreeMap::new();
    let Some((_, block)) = text.split_once("\npcrs:\n") else {
        return Some(banks);
    };
    let mut bank = String::new();
    for line in block.lines() {
        let t = line.trim();
        if let Some(b) = t
            .strip_suffix(':')
            .filter(|_| line.starts_with("  ") && !line.starts_with("    "))
        {
            bank = b.to_string();
            banks.insert(bank.clone(), BTreeMap::new());
        } else if let Some((i, v)) = t.split_once(':') {
            let v = v.trim().trim_start_matches("0x").to_ascii_lowercase();
            banks
                .get_mut(&bank)
                .unwrap()
                .insert(i.trim().to_string(), v);
        }
    }
    Some(banks)
}

fn replayed(doc: &serde_json::Value) -> BTreeMap<String, BTreeMap<String, String>> {
    serde_json::from_value(doc["pcrs"].clone()).unwrap()
}

#[test]
fn replay_equals_tpm2_eventlog_on_every_fixture() {
    if !have_tool("tpm2_eventlog", "tpm2-tools") {
        return;
    }
    let mut compared = 0;
    let mut refused = Vec::new();
    for log in logs() {
        let p = log.to_str().unwrap();
        let (code, doc, err) = json(&["eventlog", p, "--format", "json"]);
        assert_eq!(code, 0, "{p}: {err}");
        match tpm2_eventlog(&log) {
            Some(want) => {
                assert_eq!(replayed(&doc), want, "{p}");
                compared += 1;
            }
            // tpm2_eventlog crashes on go-attestation's option_rom_eventlog and refuses a log that is only
            // a StartupLocality event: no oracle for those two, fwscan still reads them.
            None => refused.push(log.file_name().unwrap().to_string_lossy().to_string()),
        }
    }
    assert!(
        compared >= 21,
        "only {compared} logs compared (refused: {refused:?})"
    );
    assert!(refused.len() <= 2, "tpm2_eventlog refused {refused:?}");
}

/// NSA Cybersecurity's HIRS ships the PCR values its own Java parser expects for two of its logs (PCR 0-23,
/// one per line): a second, independent oracle beside tpm2_eventlog. Given as the TPM's values (`--pcrs`),
/// all 24 must compare equal, PCRs 17-22 at their all-ones reset value included.
#[test]
fn replay_equals_hirs_expected_pcrs() {
    let tmp = tempfile::tempdir().unwrap();
    let as_pcrs = |expected: &str| {
        let lines: String = std::fs::read_to_string(testdata().join(expected))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| format!("{i} {}\n", l.trim()))
            .collect();
        assert_eq!(lines.lines().count(), 24, "{expected}");
        let p = tmp.path().join(expected);
        std::fs::write(&p, lines).unwrap();
        p
    };
    for (log, expected) in [
        ("hirs-TpmLog.bin", "hirs-TpmLogExpectedPcrs.txt"),
        ("hirs-TpmLogSHA1.bin", "hirs-TpmLogSHA1ExpectedPcrs.txt"),
    ] {
        let p = testdata().join(log);
        let pcrs = as_pcrs(expected);
        let (code, doc, err) = json(&[
            "eventlog",
            p.to_str().unwrap(),
            "--pcrs",
            pcrs.to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert_eq!(code, 0, "{log}: {err}{}", doc["findings"]);
        let compared = doc["compared"].as_array().unwrap();
        assert_eq!(compared.len(), 24, "{log}");
        assert!(compared.iter().all(|c| c["equal"] == true), "{log}");
    }
    // HIRS's altered copy of the first log (one event's digest changed), against the original's values as
    // the TPM's: PCR 0 is named.
    let altered = testdata().join("hirs-TPMLog_Altered.bin");
    let pcrs = as_pcrs("hirs-TpmLogExpectedPcrs.txt");
    let (code, doc, err) = json(&[
        "eventlog",
        altered.to_str().unwrap(),
        "--pcrs",
        pcrs.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 1, "{err}");
    let fs = doc["findings"].as_array().unwrap();
    assert!(
        !fs.is_empty() && fs.iter().all(|f| f["code"] == "pcr-mismatch"),
        "{fs:?}"
    );
    assert!(fs.iter().any(|f| f["path"] == "pcr[0]"), "{fs:?}");
}

#[test]
fn fixtures_have_provenance() {
    let prov = std::fs::read_to_string(testdata().join("PROVENANCE")).unwrap();
    for log in logs() {
        let name = log.file_name().unwrap().to_str().unwrap();
        let line = prov
            .lines()
            .find(|l| l.starts_with(&format!("{name} |")))
            .unwrap_or_else(|| panic!("{name} has no provenance line"));
        let digest = fwscan::hash::digest(fwscan::hash::Alg::Sha256, &std::fs::read(&log).unwrap());
        assert!(line.ends_with(&digest), "{name}: {line}");
        assert!(
            line.contains("Apache-2.0") || line.contains("BSD-3-Clause"),
            "{line}"
        );
    }
}

#[test]
fn json_report_lists_every_event_with_its_decoded_data() {
    let log = testdata().join("tpm2-tools-event-postcode.bin");
    let (code, doc, _) = json(&["eventlog", log.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0);
    assert_eq!(doc["command"], "eventlog");
    crate::basics::validate("report-v1.schema.json", &doc);
    let events = doc["events"].as_array().unwrap();
    let parsed = eventlog::parse(&std::fs::read(&log).unwrap(), &Limits::default()).unwrap();
    assert_eq!(events.len(), parsed.events.len());
    for (e, p) in events.iter().zip(&parsed.events) {
        assert_eq!(e["index"], p.index);
        assert_eq!(e["pcr"], p.pcr);
        assert!(
            e["digests"].as_object().is_some_and(|d| !d.is_empty()),
            "{e}"
        );
        assert!(e["data"]["kind"].is_string(), "{e}");
        assert!(e.get("binding").is_some());
    }
    // The Supermicro server's log measures POST code blobs and strings, the Spec ID event first.
    assert_eq!(events[0]["data"]["kind"], "spec-id");
    assert!(events
        .iter()
        .any(|e| e["type"] == "EV_POST_CODE" && e["data"]["kind"] == "firmware-blob"));
    assert!(events
        .iter()
        .any(|e| e["type"] == "EV_EFI_BOOT_SERVICES_DRIVER" && e["data"]["kind"] == "image"));
    assert!(events
        .iter()
        .any(|e| e["type"] == "EV_EFI_VARIABLE_DRIVER_CONFIG" && e["data"]["name"] == "PK"));
}

#[test]
fn pcr_mismatch_names_the_pcr_in_every_format() {
    let log = testdata().join("tpm2-tools-event-bootorder.bin");
    let p = log.to_str().unwrap();
    let (_, doc, _) = json(&["eventlog", p, "--format", "json"]);
    let pcrs = replayed(&doc);
    let dir = tempfile::tempdir().unwrap();
    // The replay itself as tpm2_pcrread YAML: equal.
    let mut yaml = String::new();
    for (bank, values) in &pcrs {
        yaml.push_str(&format!("{bank}:\n"));
        for (i, v) in values {
            yaml.push_str(&format!("  {i} : 0x{}\n", v.to_uppercase()));
        }
    }
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, &yaml).unwrap();
    let (code, _, err) = run(&["eventlog", p, "--pcrs", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // PCR 4 of the sha256 bank as the TPM would report it after one more, unlogged extension.
    let v4 = &pcrs["sha256"]["4"];
    let bad_v = hex::encode(fwscan::evidence::pcrs::hash2(
        ALG_SHA256,
        &hex::decode(v4).unwrap(),
        &[0x42; 32],
    ));
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, format!("4 {bad_v}\n")).unwrap();
    let (code, doc, _) = json(&[
        "eventlog",
        p,
        "--pcrs",
        bad.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 1);
    crate::basics::validate("report-v1.schema.json", &doc);
    let f = &doc["findings"].as_array().unwrap()[0];
    assert_eq!(f["code"], "pcr-mismatch");
    assert!(f["message"].as_str().unwrap().contains("PCR 4"), "{f}");
    for format in ["sarif", "junit", "text"] {
        let (code, out, _) = run(&[
            "eventlog",
            p,
            "--pcrs",
            bad.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert_eq!(code, 1);
        assert!(out.contains("pcr-mismatch"), "{format}: {out}");
    }
    // A PCRs file that cannot be read is undecided.
    std::fs::write(&bad, "4 nothex\n").unwrap();
    assert_eq!(run(&["eventlog", p, "--pcrs", bad.to_str().unwrap()]).0, 2);
}

#[test]
fn hostile_logs_end_in_exit_2_naming_the_offset() {
    // Every truncation of a real log either ends at an event boundary (a shorter, valid log) or fails with
    // an offset: never a panic.
    let real = std::fs::read(testdata().join("tpm2-tools-event-gce-ubuntu-2104-log.bin")).unwrap();
    let full = eventlog::parse(&real, &Limits::default()).unwrap();
    let bounds: Vec<usize> = full.events.iter().map(|e| e.offset as usize).collect();
    for cut in (1..real.len()).step_by(7) {
        match eventlog::parse(&real[..cut], &Limits::default()) {
            Ok(l) => assert!(
                bounds.contains(&cut),
                "cut {cut}: {} events",
                l.events.len()
            ),
            Err(e) => assert!(e.offset <= cut as u64, "cut {cut}: {e}"),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let spec_end = bounds[1];
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push(("truncated", real[..real.len() - 3].to_vec()));
    cases.push((
        "garbage",
        (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
    ));
    // A digest count of four billion.
    let mut huge = real[..spec_end].to_vec();
    huge.extend(0u32.to_le_bytes());
    huge.extend(4u32.to_le_bytes());
    huge.extend(u32::MAX.to_le_bytes());
    huge.extend([0u8; 64]);
    cases.push(("digest count", huge));
    // An event whose data is 4 GiB long.
    let mut big = real[..spec_end].to_vec();
    big.extend(0u32.to_le_bytes());
    big.extend(4u32.to_le_bytes());
    big.extend(0u32.to_le_bytes());
    big.extend(u32::MAX.to_le_bytes());
    cases.push(("event size", big));
    // A Spec ID event declaring a 65535-byte digest.
    let mut spec = real[..spec_end].to_vec();
    let at = 32 + 28 + 2; // header; signature to numberOfAlgorithms; the first algorithm id
    spec[at..at + 2].copy_from_slice(&0xFFFFu16.to_le_bytes());
    cases.push(("digest size", spec));
    // Half a million tiny events: past the event count limit.
    let mut many = real[..spec_end].to_vec();
    let one: Vec<u8> = [1u32, 4, 0, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    for _ in 0..(Limits::default().max_events + 1) {
        many.extend(&one);
    }
    cases.push(("event count", many));
    for (what, bytes) in cases {
        let f = dir.path().join(format!("{}.bin", what.replace(' ', "-")));
        std::fs::write(&f, &bytes).unwrap();
        let t = Instant::now();
        let (code, out, err) = run(&["eventlog", f.to_str().unwrap(), "--format", "json"]);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{what}: {:?}",
            t.elapsed()
        );
        assert_eq!(code, 2, "{what}: {out}{err}");
        assert!(err.contains("offset 0x"), "{what}: {err}");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["error"]["code"], "eventlog-invalid", "{what}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Real boots: Debian's OVMF under QEMU with swtpm.

const CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const SECBOOT_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
const MS_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";
const IA32_CODE: &str = "/usr/share/OVMF/OVMF32_CODE_4M.secboot.fd";
const IA32_VARS: &str = "/usr/share/OVMF/OVMF32_VARS_4M.fd";
const DXEFV: &str = "7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1";

/// One boot's output directory (eventlog.bin, pcrs-sha256.txt), booted once per test process.
fn boot(name: &str, code: &str, vars: Option<&str>) -> Option<PathBuf> {
    let tools = [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("swtpm", "swtpm"),
        ("busybox", "busybox-static"),
    ];
    if !tools.iter().all(|(t, p)| have_tool(t, p)) || !have_file(code, "Debian package ovmf") {
        return None;
    }
    let kernel = std::fs::read_dir("/boot").ok().and_then(|d| {
        d.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
    });
    if kernel.is_none() {
        skip("no /boot/vmlinuz-* (Debian package linux-image-amd64)");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/boot-evlog.sh");
    if !have_file(&script, "the shared tools beside the checkout") {
        return None;
    }
    let out =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("evlog-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = Command::new("bash");
    cmd.arg(&script).arg(code).arg(&out);
    if let Some(v) = vars {
        cmd.arg(v);
    }
    let r = cmd.output().unwrap();
    assert!(
        r.status.success(),
        "boot-evlog.sh {code}: {}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    Some(out)
}

fn plain_boot() -> Option<&'static Path> {
    static B: OnceLock<Option<PathBuf>> = OnceLock::new();
    B.get_or_init(|| boot("plain", CODE, None)).as_deref()
}

fn secboot_boot() -> Option<&'static Path> {
    static B: OnceLock<Option<PathBuf>> = OnceLock::new();
    B.get_or_init(|| {
        if !have_file(MS_VARS, "Debian package ovmf") {
            return None;
        }
        boot("secboot", SECBOOT_CODE, Some(MS_VARS))
    })
    .as_deref()
}

fn ia32_boot() -> Option<&'static Path> {
    static B: OnceLock<Option<PathBuf>> = OnceLock::new();
    B.get_or_init(|| {
        if !have_file(IA32_VARS, "Debian package ovmf-ia32") {
            return None;
        }
        boot("ia32", IA32_CODE, Some(IA32_VARS))
    })
    .as_deref()
}

/// `fwscan eventlog` on the boot in `dir` (its log), against `image`, with the TPM's PCR file when
/// `pcrs`, and `extra` flags, as JSON.
fn boot_json(
    dir: &Path,
    image: &str,
    pcrs: bool,
    extra: &[&str],
) -> (i32, serde_json::Value, String) {
    let log = dir.join("eventlog.bin");
    let pcrs_file = dir.join("pcrs-sha256.txt");
    let mut args = vec!["eventlog", log.to_str().unwrap(), "--image", image];
    if pcrs {
        args.extend(["--pcrs", pcrs_file.to_str().unwrap()]);
    }
    args.extend(extra);
    args.extend(["--format", "json"]);
    json(&args)
}

/// The replay against the TPM's own PCR 0-7 (sha256), and against tpm2_eventlog's.
fn assert_replay_equals_tpm(dir: &Path, image: &str) -> serde_json::Value {
    let log = dir.join("eventlog.bin");
    let (code, doc, err) = boot_json(dir, image, true, &[]);
    assert_eq!(code, 0, "{err}{doc}");
    let compared = doc["compared"].as_array().unwrap();
    assert_eq!(compared.len(), 8);
    for c in compared {
        assert_eq!(c["equal"], true, "{c}");
    }
    if have_tool("tpm2_eventlog", "tpm2-tools") {
        assert_eq!(Some(replayed(&doc)), tpm2_eventlog(&log));
    }
    doc
}

fn binding_of(doc: &serde_json::Value, base: u64) -> &serde_json::Value {
    doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "EV_EFI_PLATFORM_FIRMWARE_BLOB" && e["data"]["base"] == base)
        .map(|e| &e["binding"])
        .unwrap_or_else(|| panic!("no blob at {base:#x}"))
}

#[test]
fn ovmf_clean_boot_binds_dxefv_and_replays_the_tpms_pcrs() {
    let Some(dir) = plain_boot() else { return };
    let doc = assert_replay_equals_tpm(dir, CODE);
    crate::basics::validate("report-v1.schema.json", &doc);
    assert_eq!(doc["verdict"], "clean");
    // DXEFV, decompressed from FVMAIN_COMPACT, is what the firmware measured at 0x900000.
    let dxe = binding_of(&doc, 0x90_0000);
    assert_eq!(dxe["status"], "bound", "{dxe}");
    assert!(
        dxe["path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("fv[{DXEFV}]")),
        "{dxe}"
    );
    // PEIFV ran in place before it was measured: not reproducible, and said why.
    let pei = binding_of(&doc, 0x82_0000);
    assert_eq!(pei["status"], "not-reproducible", "{pei}");
    assert!(pei["reason"].as_str().unwrap().contains(".data"), "{pei}");
    // --predict: PCR 0 recomputed from the dump (DXEFV from its bytes, PEIFV from the log, said so)
    // equals the TPM's own PCR 0.
    let (log, pcrs) = (dir.join("eventlog.bin"), dir.join("pcrs-sha256.txt"));
    let (code, doc, err) = boot_json(dir, CODE, true, &["--predict"]);
    assert_eq!(code, 0, "{err}{doc}");
    let p = &doc["prediction"];
    let tpm0 = std::fs::read_to_string(&pcrs)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("0 ").map(|v| v.trim().to_ascii_lowercase()))
        .unwrap();
    assert_eq!(
        p["predicted"]["sha256"].as_str(),
        Some(tpm0.as_str()),
        "{p}"
    );
    assert_eq!(p["deterministic"], false, "{p}");
    let sources: Vec<&str> = p["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    assert!(sources.contains(&"dump") && sources.contains(&"log"), "{p}");
    assert!(
        p["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["equal"] == true),
        "{p}"
    );
    let (code, text, _) = run(&[
        "eventlog",
        log.to_str().unwrap(),
        "--image",
        CODE,
        "--predict",
    ]);
    assert_eq!(code, 0);
    assert!(
        text.contains("FROM THE LOG") && text.contains("(equals the log)"),
        "{text}"
    );
    // Text names the node each event is bound to.
    let (code, text, _) = run(&["eventlog", log.to_str().unwrap(), "--image", CODE]);
    assert_eq!(code, 0);
    assert!(
        text.contains(&format!("bound (digest): {CODE}:")) && text.contains(DXEFV),
        "{text}"
    );
}

#[test]
fn ovmf_log_against_a_patched_dxe_driver_names_the_dxe_volume() {
    let Some(dir) = plain_boot() else { return };
    let clean = std::fs::read(CODE).unwrap();
    let (patched, guid, _) = crate::uefi::patch_dxe_driver(&clean, 10);
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("patched.fd");
    std::fs::write(&img, &patched).unwrap();
    let (code, doc, err) = boot_json(dir, img.to_str().unwrap(), false, &[]);
    assert_eq!(code, 1, "{err}");
    let fs = doc["findings"].as_array().unwrap();
    assert_eq!(fs.len(), 1, "{fs:?}");
    assert_eq!(fs[0]["code"], "measurement-unexplained");
    assert_eq!(fs[0]["severity"], "warning");
    let msg = fs[0]["message"].as_str().unwrap();
    assert!(msg.contains(&format!("fv[{DXEFV}]")), "{msg}");
    assert_eq!(binding_of(&doc, 0x90_0000)["status"], "not-in-image");
    // The patched driver really is in the dump (a scan would find it; the log says it is not what ran).
    assert!(!guid.is_empty());
    // --predict: the PCR 0 this dump would give, with its own DXE volume, is not the TPM's.
    let (code, doc, err) = boot_json(dir, img.to_str().unwrap(), true, &["--predict"]);
    assert_eq!(code, 1, "{err}");
    let codes: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"pcr-prediction-mismatch"), "{codes:?}");
    assert!(
        !codes.contains(&"pcr-mismatch"),
        "the log itself is intact: {codes:?}"
    );
    let p = &doc["prediction"];
    let dxe = p["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["by"] == "counterpart")
        .unwrap_or_else(|| panic!("{p}"));
    assert!(
        dxe["path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("fv[{DXEFV}]")),
        "{dxe}"
    );
    assert_eq!(dxe["equal"], false);
    assert_ne!(p["predicted"]["sha256"], p["reported"]["sha256"], "{p}");
}

/// The Authenticode digest fwscan computes for PE images loaded from a volume is the one a real signer
/// computed: Debian's signed kernel carries it in its own Authenticode signature (SpcIndirectDataContent).
/// (The kernel OVMF measured in PCR 4 under `-kernel` is QEMU's copy with the boot parameters patched into
/// its setup header, so the log's digest changes from boot to boot and is no oracle.)
#[test]
fn authenticode_equals_the_digest_in_a_signed_kernels_signature() {
    let kernel = std::fs::read_dir("/boot").ok().and_then(|d| {
        let mut k: Vec<PathBuf> = d
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
            .collect();
        k.sort();
        k.pop()
    });
    let Some(kernel) = kernel else {
        skip("no /boot/vmlinuz-* (Debian package linux-image-amd64)");
        return;
    };
    let k = std::fs::read(&kernel).unwrap();
    let pe = goblin::pe::PE::parse(&k).unwrap();
    let certs = &pe.certificates;
    assert!(!certs.is_empty(), "{} is not signed", kernel.display());
    let ours = fwscan::evidence::bind::authenticode(ALG_SHA256, &k).unwrap();
    assert!(
        certs
            .iter()
            .any(|c| c.certificate.windows(32).any(|w| w == ours.as_slice())),
        "{}: {}",
        kernel.display(),
        hex::encode(&ours)
    );
    // One flipped byte in a section changes it.
    let mut bad = k.clone();
    let text = pe
        .sections
        .iter()
        .find(|s| &s.name[..5] == b".text")
        .unwrap();
    bad[text.pointer_to_raw_data as usize + 100] ^= 1;
    assert_ne!(
        fwscan::evidence::bind::authenticode(ALG_SHA256, &bad).unwrap(),
        ours
    );
}

#[test]
fn ovmf_secboot_pcr7_replays_and_binds() {
    let Some(dir) = secboot_boot() else { return };
    let doc = assert_replay_equals_tpm(dir, SECBOOT_CODE);
    assert_eq!(doc["verdict"], "clean");
    assert_eq!(binding_of(&doc, 0x90_0000)["status"], "bound");
    // Secure Boot on, with Microsoft's keys enrolled: PCR 7 measured SecureBoot=1 and a non-empty PK.
    let ev = doc["events"].as_array().unwrap();
    let var = |name: &str| {
        ev.iter()
            .find(|e| e["pcr"] == 7 && e["data"]["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in PCR 7"))
    };
    assert_eq!(var("SecureBoot")["data"]["data"], "01");
    assert!(var("PK")["data"]["data"].as_str().unwrap().len() > 100);
    assert!(var("db")["data"]["data"].as_str().unwrap().len() > 100);
}

/// The 32-bit OVMF build (booting the 64-bit guest kernel in EFI mixed mode) measures the same way: its own
/// log replays to its TPM's PCRs and its DXEFV is bound.
#[test]
fn ovmf_ia32_replays_and_binds() {
    let Some(dir) = ia32_boot() else { return };
    let doc = assert_replay_equals_tpm(dir, IA32_CODE);
    assert_eq!(doc["verdict"], "clean");
    let dxe = binding_of(&doc, 0x90_0000);
    assert_eq!(dxe["status"], "bound", "{dxe}");
    assert!(
        dxe["path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("fv[{DXEFV}]")),
        "{dxe}"
    );
    assert_eq!(binding_of(&doc, 0x82_0000)["status"], "not-reproducible");
}

/// `audit` reads `X.eventlog` beside a dump `X`: the row is clean only if the log binds; a patched DXE
/// volume under the same log is a finding; a malformed log leaves the row undecided. The sidecars are
/// skipped rows, never scanned as images.
#[test]
fn audit_binds_the_eventlog_sidecar() {
    let Some(dir) = plain_boot() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (fleet, mans) = (tmp.path().join("fleet"), tmp.path().join("m"));
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::create_dir_all(&mans).unwrap();
    let m = mans.join("ovmf.manifest.json");
    assert_eq!(run(&["baseline", CODE, "-o", m.to_str().unwrap()]).0, 0);
    let clean = std::fs::read(CODE).unwrap();
    let log = std::fs::read(dir.join("eventlog.bin")).unwrap();
    let (patched, _, _) = crate::uefi::patch_dxe_driver(&clean, 10);
    for (name, image, sidecar) in [
        ("a.fd", &clean, log.clone()),
        ("b.fd", &patched, log.clone()),
        ("c.fd", &clean, log[..100].to_vec()),
        ("d.fd", &clean, log.clone()),
        ("e.fd", &clean, log.clone()),
    ] {
        std::fs::write(fleet.join(name), image).unwrap();
        std::fs::write(fleet.join(format!("{name}.eventlog")), sidecar).unwrap();
    }
    // The TPM's PCRs beside two dumps: the real ones, and ones whose PCR 0 the log does not replay to; and
    // PCRs without a log.
    let pcrs = std::fs::read_to_string(dir.join("pcrs-sha256.txt")).unwrap();
    std::fs::write(fleet.join("d.fd.pcrs"), &pcrs).unwrap();
    let forged: String = pcrs
        .lines()
        .map(|l| match l.strip_prefix("0 ") {
            Some(_) => format!("0 {}\n", "ab".repeat(32)),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(fleet.join("e.fd.pcrs"), forged).unwrap();
    std::fs::write(fleet.join("f.fd"), &clean).unwrap();
    std::fs::write(fleet.join("f.fd.pcrs"), &pcrs).unwrap();
    let rows = tmp.path().join("rows.jsonl");
    let (code, _, err) = run(&[
        "audit",
        fleet.to_str().unwrap(),
        "--manifests",
        mans.to_str().unwrap(),
        "--insecure-unsigned",
        "-o",
        rows.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, 2, "{err}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&rows)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = |p: &str| {
        rows.iter()
            .find(|r| r["path"].as_str().is_some_and(|x| x.ends_with(p)))
            .unwrap_or_else(|| panic!("no row for {p}"))
    };
    assert_eq!(row("a.fd")["verdict"], "clean");
    let b = row("b.fd");
    assert_eq!(b["verdict"], "findings");
    let codes: Vec<&str> = b["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"measurement-unexplained"), "{codes:?}");
    assert_eq!(row("c.fd")["error"]["code"], "eventlog-invalid");
    assert_eq!(row("d.fd")["verdict"], "clean", "{}", row("d.fd"));
    let e = row("e.fd");
    assert_eq!(e["verdict"], "findings", "{e}");
    assert!(
        e["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "pcr-mismatch" && f["path"] == "pcr[0]"),
        "{e}"
    );
    assert_eq!(
        row("f.fd")["error"]["code"],
        "read-error",
        "{}",
        row("f.fd")
    );
    for side in ["a.fd.eventlog", "b.fd.eventlog", "c.fd.eventlog"] {
        assert_eq!(row(side)["reason"], "eventlog-sidecar", "{}", row(side));
    }
    for side in ["d.fd.pcrs", "e.fd.pcrs", "f.fd.pcrs"] {
        assert_eq!(row(side)["reason"], "pcrs-sidecar", "{}", row(side));
    }
}
