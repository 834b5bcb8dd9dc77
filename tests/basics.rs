//! Integration tests of the core: baseline, scan, inspect, exit codes, schemas, fixtures.

use crate::support::testdata;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A temp dir and a way to run `fwscan` in it (after ripgrep's `rgtest!`).
struct T {
    dir: tempfile::TempDir,
}

impl T {
    fn new() -> T {
        T {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_fwscan"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// The core fixture's golden image, layout and manifest, written into the temp dir.
    fn core(&self) -> Vec<u8> {
        let img = testdata::core_image();
        self.write("golden.bin", &img);
        self.write("golden.layout", testdata::CORE_LAYOUT.as_bytes());
        let out = self.run(&[
            "baseline",
            "golden.bin",
            "-o",
            "golden.json",
            "--layout",
            "golden.layout",
            "--mutable",
            "config",
            "--vendor",
            "Example Corp",
            "--product",
            "EX-1000",
            "--version",
            "1.0.0",
            "--expires",
            "30d",
        ]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        img
    }

    fn scan_json(&self, image: &str) -> (i32, Value) {
        let out = self.run(&[
            "scan",
            image,
            "--manifest",
            "golden.json",
            "--insecure-unsigned",
            "--format",
            "json",
        ]);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("report is not JSON ({e}): {}", stderr(&out)));
        (code(&out), v)
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn validate(schema_file: &str, instance: &Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let load = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(root.join(name)).unwrap()).unwrap()
    };
    let mut opts = jsonschema::options();
    for name in [
        "manifest-v1.schema.json",
        "report-v1.schema.json",
        "inspect-v1.schema.json",
    ] {
        let doc = load(name);
        let id = doc["$id"].as_str().unwrap().to_string();
        opts = opts.with_resource(id, jsonschema::Resource::from_contents(doc).unwrap());
    }
    let validator = opts.build(&load(schema_file)).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{schema_file}: {errors:#?}");
}

#[test]
fn testdata_regenerates_byte_identical() {
    let t = T::new();
    let names = testdata::generate(t.dir.path()).unwrap();
    assert!(!names.is_empty());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    for name in names {
        let fresh = std::fs::read(t.path(&name)).unwrap();
        let committed = std::fs::read(repo.join(&name)).unwrap_or_else(|e| {
            panic!("testdata/{name}: {e} (run `cargo run --example gen_testdata`)")
        });
        assert!(
            fresh == committed,
            "testdata/{name} differs from what the generator makes"
        );
    }
}

#[test]
fn baseline_then_scan_of_the_same_image_is_clean() {
    let t = T::new();
    t.core();
    let (rc, report) = t.scan_json("golden.bin");
    assert_eq!(rc, 0, "{report:#}");
    assert_eq!(report["verdict"], "clean");
    assert!(report["findings"].as_array().unwrap().is_empty());
    // The per-machine region is reported as not compared.
    assert_eq!(report["skipped"][0]["path"], "config");
    validate("report-v1.schema.json", &report);
    // The unsigned state is visible.
    assert_eq!(report["manifest"]["trust"]["verified"], false);
}

#[test]
fn one_changed_byte_in_a_static_region_is_one_localised_finding() {
    let t = T::new();
    let mut img = t.core();
    let changed: u64 = 0x3_1234; // inside `firmware` (0x10000..0x70000)
    img[changed as usize] ^= 0x5A;
    t.write("dump.bin", &img);
    let (rc, report) = t.scan_json("dump.bin");
    assert_eq!(rc, 1);
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report:#}");
    let f = &findings[0];
    assert_eq!(f["code"], "region-modified");
    assert_eq!(f["path"], "firmware");
    let (e, a) = (
        f["expected_digest"].as_str().unwrap(),
        f["actual_digest"].as_str().unwrap(),
    );
    assert_eq!(e.len(), 64);
    assert_eq!(a.len(), 64);
    assert_ne!(e, a);
    let ranges = f["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 1);
    let (off, len) = (
        ranges[0]["offset"].as_u64().unwrap(),
        ranges[0]["length"].as_u64().unwrap(),
    );
    assert!(off <= changed && changed < off + len, "{off:#x}+{len:#x}");
    assert!(len <= 64 * 1024, "localised within one block");
    validate("report-v1.schema.json", &report);
    // The text report says the same to a person.
    let out = t.run(&[
        "scan",
        "dump.bin",
        "-m",
        "golden.json",
        "--insecure-unsigned",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("region-modified") && text.contains("firmware"),
        "{text}"
    );
    assert!(text.contains(e) && text.contains(a), "{text}");
    assert_eq!(code(&out), 1);
}

#[test]
fn a_change_in_a_mutable_region_is_clean() {
    let t = T::new();
    let mut img = t.core();
    img[0x70010] ^= 0xFF;
    img[0x77FFF] = 0;
    t.write("dump.bin", &img);
    let (rc, report) = t.scan_json("dump.bin");
    assert_eq!(rc, 0, "{report:#}");
}

#[test]
fn a_byte_in_free_space_is_a_finding() {
    let t = T::new();
    let mut img = t.core();
    // The tail after the last layout entry is erased padding.
    img[0x7F000] = 0x90;
    t.write("dump.bin", &img);
    let (rc, report) = t.scan_json("dump.bin");
    assert_eq!(rc, 1);
    assert_eq!(codes(&report), vec!["not-blank"], "{report:#}");
    let f = &report["findings"][0];
    assert_eq!(f["ranges"][0]["offset"], 0x7F000);
    assert_eq!(f["ranges"][0]["length"], 1);
}

#[test]
fn shorter_and_longer_images_are_clear_findings() {
    let t = T::new();
    let img = t.core();
    t.write("short.bin", &img[..img.len() - 0x1000]);
    let (rc, report) = t.scan_json("short.bin");
    assert_eq!(rc, 1);
    let c = codes(&report);
    assert!(c.contains(&"size-mismatch".to_string()), "{c:?}");
    let mut long = img.clone();
    long.extend_from_slice(&[0u8; 100]);
    t.write("long.bin", &long);
    let (rc, report) = t.scan_json("long.bin");
    assert_eq!(rc, 1);
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "size-mismatch")
        .expect("size-mismatch");
    assert_eq!(f["expected_size"], img.len());
    assert_eq!(f["actual_size"], img.len() + 100);
}

#[test]
fn bad_manifests_and_inputs_exit_2_naming_the_file() {
    let t = T::new();
    t.core();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage.json", b"{ not json".to_vec()),
        ("unknown-field.json", {
            let mut v: Value =
                serde_json::from_slice(&std::fs::read(t.path("golden.json")).unwrap()).unwrap();
            v["extra"] = Value::Bool(true);
            v.to_string().into_bytes()
        }),
        ("wrong-version.json", {
            let mut v: Value =
                serde_json::from_slice(&std::fs::read(t.path("golden.json")).unwrap()).unwrap();
            v["schema_version"] = 7.into();
            v.to_string().into_bytes()
        }),
    ];
    for (name, bytes) in cases {
        t.write(name, &bytes);
        let out = t.run(&["scan", "golden.bin", "-m", name, "--insecure-unsigned"]);
        assert_eq!(code(&out), 2, "{name}");
        assert!(stderr(&out).contains(name), "{name}: {}", stderr(&out));
    }
    // Oversized manifest: refused before parsing.
    let big = t.path("big.json");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(fwscan::manifest::MAX_MANIFEST_SIZE + 1).unwrap();
    let out = t.run(&[
        "scan",
        "golden.bin",
        "-m",
        "big.json",
        "--insecure-unsigned",
    ]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("big.json") && stderr(&out).contains("larger"),
        "{}",
        stderr(&out)
    );
    // Missing image, directory instead of a file.
    let out = t.run(&[
        "scan",
        "missing.bin",
        "-m",
        "golden.json",
        "--insecure-unsigned",
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("missing.bin"));
    std::fs::create_dir(t.path("adir")).unwrap();
    let out = t.run(&["scan", "adir", "-m", "golden.json", "--insecure-unsigned"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("adir") && stderr(&out).contains("directory"));
    let out = t.run(&["inspect", "adir"]);
    assert_eq!(code(&out), 2);
    // In JSON mode, the error is a report too.
    let out = t.run(&[
        "scan",
        "missing.bin",
        "-m",
        "golden.json",
        "--insecure-unsigned",
        "--format",
        "json",
    ]);
    assert_eq!(code(&out), 2);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "error");
    assert_eq!(v["error"]["code"], "read-error");
    validate("report-v1.schema.json", &v);
}

#[test]
fn unsigned_manifests_never_pass_silently() {
    let t = T::new();
    t.core();
    // No trust policy at all: refused, and the message says how to proceed.
    let out = t.run(&["scan", "golden.bin", "-m", "golden.json"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("--insecure-unsigned"),
        "{}",
        stderr(&out)
    );
    // A trust policy, but the manifest has no signature: refused naming the manifest.
    t.write("trust.json", br#"{"schema_version": 1, "keys": []}"#);
    let out = t.run(&[
        "scan",
        "golden.bin",
        "-m",
        "golden.json",
        "--trust",
        "trust.json",
    ]);
    assert_eq!(code(&out), 2);
    let e = stderr(&out);
    assert!(
        e.contains("golden.json") && e.contains("manifest-unsigned"),
        "{e}"
    );
    // With the flag, the text report says it was not verified.
    let out = t.run(&[
        "scan",
        "golden.bin",
        "-m",
        "golden.json",
        "--insecure-unsigned",
    ]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("UNVERIFIED"), "{}", stdout(&out));
}

#[test]
fn whole_file_as_one_region_without_a_layout() {
    let t = T::new();
    let mut img = testdata::prng_bytes(9, 300_000);
    t.write("raw.bin", &img);
    let out = t.run(&["baseline", "raw.bin", "-o", "golden.json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    img[299_999] ^= 1;
    t.write("dump.bin", &img);
    let (rc, report) = t.scan_json("dump.bin");
    assert_eq!(rc, 1);
    let f = &report["findings"][0];
    assert_eq!(report["findings"].as_array().unwrap().len(), 1);
    assert_eq!(f["code"], "region-modified");
    assert_eq!(f["path"], "");
    assert_eq!(f["ranges"][0]["offset"], 4 * 65536);
}

#[test]
fn json_outputs_validate_against_the_schemas() {
    let t = T::new();
    t.core();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(t.path("golden.json")).unwrap()).unwrap();
    validate("manifest-v1.schema.json", &manifest);
    let committed: Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/core/golden.manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    validate("manifest-v1.schema.json", &committed);
    let out = t.run(&[
        "inspect",
        "golden.bin",
        "--layout",
        "golden.layout",
        "--format",
        "json",
    ]);
    assert_eq!(code(&out), 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    validate("inspect-v1.schema.json", &v);
    // The tree covers every byte: children of the root tile it without gaps.
    let kids = v["root"]["children"].as_array().unwrap();
    let mut cursor = 0;
    for k in kids {
        assert_eq!(k["offset"].as_u64().unwrap(), cursor, "{k}");
        cursor += k["size"].as_u64().unwrap();
    }
    assert_eq!(cursor, testdata::CORE_SIZE as u64);
    // A schema violation is caught (the validator is not vacuous).
    let mut broken = manifest.clone();
    broken["root"]["kind"] = "volcano".into();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/manifest-v1.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(root).unwrap()).unwrap();
    assert!(!jsonschema::is_valid(&schema, &broken));
}

#[test]
fn inspect_text_shows_offsets_sizes_kinds_and_digests() {
    let t = T::new();
    t.core();
    let out = t.run(&["inspect", "golden.bin", "--layout", "golden.layout"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    let digest = fwscan::hash::digest(
        fwscan::hash::Alg::Sha256,
        &testdata::core_image()[0..0x10000],
    );
    let line = text
        .lines()
        .find(|l| l.trim_end().ends_with("boot"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("0x00000000") && line.contains("0x10000") && line.contains("flash-region"),
        "{line}"
    );
    assert!(line.contains(&digest[..16]), "{line}");
}

#[test]
fn layout_errors_name_the_file_and_line() {
    let t = T::new();
    t.core();
    t.write("bad.layout", b"0:fff boot\nxyz\n");
    let out = t.run(&["inspect", "golden.bin", "--layout", "bad.layout"]);
    assert_eq!(code(&out), 2);
    let e = stderr(&out);
    assert!(e.contains("bad.layout") && e.contains("line 2"), "{e}");
}

#[test]
fn readme_documents_every_finding_code() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for c in fwscan::compare::Code::ALL {
        let row = format!(
            "| `{}` | {} | {} |",
            c.as_str(),
            c.severity().as_str(),
            c.description()
        );
        assert!(readme.contains(&row), "README lacks the row: {row}");
    }
}

#[test]
fn shipped_baseline_is_signed_and_the_quick_start_finds_the_implant() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let t = T::new();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fwscan"))
            .args(args)
            .current_dir(root)
            .output()
            .unwrap()
    };
    let out = run(&[
        "verify",
        "testdata/core/golden.manifest.json",
        "--trust",
        "testdata/trust.json",
    ]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let out = run(&[
        "scan",
        "testdata/core/tampered.bin",
        "--manifest",
        "testdata/core/golden.manifest.json",
        "--trust",
        "testdata/trust.json",
        "--format",
        "json",
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(codes(&v), vec!["region-modified"]);
    assert_eq!(v["manifest"]["trust"]["verified"], true);
    assert_eq!(v["manifest"]["trust"]["signers"][0]["role"], "vendor");
    // The golden image itself is clean against its signed baseline.
    let out = run(&[
        "scan",
        "testdata/core/golden.bin",
        "-m",
        "testdata/core/golden.manifest.json",
        "--trust",
        "testdata/trust.json",
    ]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    // A manifest edited after signing is refused.
    let mut m = std::fs::read_to_string(root.join("testdata/core/golden.manifest.json")).unwrap();
    m = m.replace("\"sequence\": 1", "\"sequence\": 2");
    t.write("m.json", m.as_bytes());
    std::fs::copy(
        root.join("testdata/core/golden.manifest.json.minisig"),
        t.path("m.json.minisig"),
    )
    .unwrap();
    let trust = root.join("testdata/trust.json");
    let out = t.run(&["verify", "m.json", "--trust", trust.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
}

#[test]
fn audit_verifies_signed_manifests_from_the_catalogue() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let t = T::new();
    let rows = t.path("rows.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_fwscan"))
        .args([
            "audit",
            "testdata/core",
            "--manifests",
            "testdata/core",
            "--trust",
            "testdata/trust.json",
            "--include",
            "*.bin",
            "-q",
            "-o",
        ])
        .arg(&rows)
        .current_dir(root)
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let text = std::fs::read_to_string(&rows).unwrap();
    let images: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "image")
        .collect();
    assert_eq!(images.len(), 2, "{text}");
    for row in &images {
        assert_eq!(row["manifest"]["verified"], true, "{row}");
        let want = if row["path"].as_str().unwrap().ends_with("golden.bin") {
            "clean"
        } else {
            "findings"
        };
        assert_eq!(row["verdict"], want, "{row}");
    }
}
