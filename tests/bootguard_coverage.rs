//! `inspect --coverage` counts only what verified (issue 19, point 9): a Boot Guard IBB range is
//! `bootguard-ibb` only when its digest verified under a Key Manifest whose key the trust policy pins
//! (`bootguard-km-hash`); an unpinned KM is `bootguard-self-signed`; an IBB whose digest mismatched or
//! could not be computed falls back to what it would be without Boot Guard, and the report says why.
//! Images are built by tests/intel.rs's builders (keys from `openssl genpkey`).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::Digest;

use crate::harness::{fwscan, have_tool};
use crate::intel::{build_image, build_image_with, genkey, Built, Key, Tweak};

/// A Boot Guard 1.0 (or CBnT) image, its KM key and a key of the same kind that is not it.
struct Case {
    dir: tempfile::TempDir,
    cbnt: bool,
    km_key: Key,
    bpm_key: Key,
    acm_key: Key,
}

impl Case {
    /// `None` (after a skip) without openssl.
    fn new(cbnt: bool) -> Option<Case> {
        if !have_tool("openssl", "openssl") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (km_key, bpm_key, acm_key) = (
            genkey(d, "km", "rsa2048"),
            genkey(d, "bpm", "rsa2048"),
            genkey(d, "acm", "rsa2048"),
        );
        Some(Case {
            dir,
            cbnt,
            km_key,
            bpm_key,
            acm_key,
        })
    }

    fn build(&self, tweak: &Tweak) -> Built {
        let keys = (
            (&self.km_key, "pkcs1-sha256"),
            (&self.bpm_key, &self.bpm_key, "pkcs1-sha256"),
            &self.acm_key,
        );
        build_image_with(self.dir.path(), self.cbnt, keys, tweak)
    }

    fn write(&self, name: &str, image: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, image).unwrap();
        p
    }

    /// A trust policy pinning these Boot Guard OEM key hashes (hex); checked against the JSON Schema.
    fn policy(&self, name: &str, hashes: &[String]) -> PathBuf {
        let vendor: Vec<Value> = hashes
            .iter()
            .enumerate()
            .map(|(i, h)| json!({"id": format!("oem-km-{i}"), "type": "bootguard-km-hash", "hash": h}))
            .collect();
        let v = json!({"schema_version": 1, "keys": [], "vendor_keys": vendor});
        let schema: Value =
            serde_json::from_str(include_str!("../schemas/trust-policy-v1.schema.json")).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        assert!(
            validator.is_valid(&v),
            "policy does not match the schema: {v}"
        );
        let p = self.dir.path().join(name);
        std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        p
    }
}

/// The KM key as the chipset fuses hold it, computed here (not by fwscan): RSA modulus little-endian,
/// then the exponent (65537, as the builder stores it) as 4 little-endian bytes.
fn fused_form(k: &Key) -> Vec<u8> {
    let Key::Rsa { modulus_be, .. } = k else {
        panic!("RSA keys only")
    };
    let mut v: Vec<u8> = modulus_be.iter().rev().copied().collect();
    v.extend(65537u32.to_le_bytes());
    v
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// `inspect --coverage --format json [--trust POLICY]`: the coverage object.
fn coverage(img: &Path, policy: Option<&Path>) -> Value {
    let mut c = fwscan();
    c.args(["inspect", "--coverage", "--format", "json"])
        .arg(img);
    if let Some(p) = policy {
        c.arg("--trust").arg(p);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "inspect --coverage: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cov = doc["coverage"].clone();
    let sum: u64 = cov["totals"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(sum, cov["size"].as_u64().unwrap());
    cov
}

/// The protections of the ranges that overlap `range` (offset, size).
fn protections_over(cov: &Value, range: (usize, usize)) -> Vec<String> {
    let (start, end) = (range.0 as u64, (range.0 + range.1) as u64);
    cov["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            let o = r["offset"].as_u64().unwrap();
            o < end && start < o + r["size"].as_u64().unwrap()
        })
        .map(|r| r["protection"].as_str().unwrap().to_string())
        .collect()
}

fn notes(cov: &Value) -> String {
    cov["notes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| n.as_str().unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn total(cov: &Value, p: &str) -> u64 {
    cov["totals"][p].as_u64().unwrap()
}

/// The IBB range is exactly one range of `protection`.
#[track_caller]
fn ibb_is(cov: &Value, built: &Built, protection: &str) {
    assert_eq!(
        protections_over(cov, built.ibb),
        vec![protection.to_string()],
        "{cov:#}"
    );
    assert!(total(cov, protection) as usize >= built.ibb.1, "{cov:#}");
}

/// An IBB byte changed after signing: the digest mismatches, so the IBB is what it would be without Boot
/// Guard (`baseline-only`), with or without a pin, and the coverage notes say why.
#[test]
fn tampered_ibb_is_not_bootguard_coverage() {
    let Some(case) = Case::new(false) else { return };
    let built = case.build(&Tweak::default());
    let mut img = built.image.clone();
    img[built.ibb.0 + 0x100] ^= 0x01;
    let p = case.write("tampered.bin", &img);
    let pin = case.policy("pin.json", &[sha256_hex(&fused_form(&case.km_key))]);
    for policy in [None, Some(pin.as_path())] {
        let cov = coverage(&p, policy);
        ibb_is(&cov, &built, "baseline-only");
        assert_eq!(total(&cov, "bootguard-ibb"), 0);
        assert_eq!(total(&cov, "bootguard-self-signed"), 0);
        let n = notes(&cov);
        assert!(n.contains("no digest verified (mismatch)"), "{n}");
    }
}

/// IBB digests that cannot be computed: an algorithm fwscan does not compute (SM3), or a hashed segment
/// outside the image. Neither counts as Boot Guard coverage.
#[test]
fn uncomputable_ibb_digest_is_not_bootguard_coverage() {
    let Some(case) = Case::new(false) else { return };
    let pin = case.policy("pin.json", &[sha256_hex(&fused_form(&case.km_key))]);
    // SM3 (TPM id 0x12): the BPM verifies, the digest is `not-verified`.
    let sm3 = case.build(&Tweak {
        ibb_algs: [0x12, 0x0C],
        ibb_base: None,
    });
    let p = case.write("sm3.bin", &sm3.image);
    for policy in [None, Some(pin.as_path())] {
        let cov = coverage(&p, policy);
        ibb_is(&cov, &sm3, "baseline-only");
        let n = notes(&cov);
        assert!(n.contains("no digest verified (not-verified)"), "{n}");
    }
    // The hashed segment's base below the BIOS space (physical 0x1000).
    let outside = case.build(&Tweak {
        ibb_algs: [0x0B, 0x0C],
        ibb_base: Some(0x1000),
    });
    let p = case.write("outside.bin", &outside.image);
    let cov = coverage(&p, Some(&pin));
    assert_eq!(total(&cov, "bootguard-ibb"), 0);
    assert_eq!(total(&cov, "bootguard-self-signed"), 0);
    let n = notes(&cov);
    assert!(
        n.contains("no digest verified (segment-outside-image)"),
        "{n}"
    );
}

/// A valid KM/BPM/IBB chain whose KM key nothing pins proves only that the image is consistent with
/// itself: `bootguard-self-signed`, weaker than every hardware-rooted class, and a note says so.
#[test]
fn unpinned_key_manifest_is_self_signed() {
    let Some(case) = Case::new(false) else { return };
    let built = case.build(&Tweak::default());
    let p = case.write("clean.bin", &built.image);
    let cov = coverage(&p, None);
    ibb_is(&cov, &built, "bootguard-self-signed");
    assert_eq!(total(&cov, "bootguard-ibb"), 0);
    let kh = sha256_hex(&fused_form(&case.km_key));
    let r = cov["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["protection"] == "bootguard-self-signed")
        .unwrap();
    assert_eq!(r["by"], kh.as_str());
    let n = notes(&cov);
    assert!(
        n.contains(&format!("bootguard-ibb by {kh}: "))
            && n.contains("nothing pins (trust self-signed)")
            && n.contains("count as bootguard-self-signed"),
        "{n}"
    );
    // The order puts it below the hardware-rooted classes and the vendor's package signature.
    let out = fwscan()
        .args(["inspect", "--coverage", "--format", "json"])
        .arg(&p)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let order: Vec<&str> = doc["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let at = |p: &str| order.iter().position(|&q| q == p).unwrap();
    for stronger in [
        "bootguard-ibb",
        "acm",
        "microcode",
        "me-manifest",
        "vendor-package",
    ] {
        assert!(at(stronger) < at("bootguard-self-signed"), "{order:?}");
    }
    assert!(
        at("bootguard-self-signed") < at("baseline-only"),
        "{order:?}"
    );
    // Text form: the class, its total and the note.
    let out = fwscan()
        .args(["inspect", "--coverage"])
        .arg(&p)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("bootguard-self-signed")
                && l.contains(&built.ibb.1.to_string())),
        "{text}"
    );
    assert!(
        text.contains("notes:") && text.contains("nothing pins"),
        "{text}"
    );
}

/// The trust policy pins the KM key hash (`bootguard-km-hash`, computed here from the openssl key): the
/// verified IBB is `bootguard-ibb`. CBnT with a SHA-384 pin too.
#[test]
fn pinned_key_manifest_is_bootguard_ibb() {
    for (cbnt, sha384) in [(false, false), (true, true)] {
        let Some(case) = Case::new(cbnt) else { return };
        let built = case.build(&Tweak::default());
        let p = case.write("clean.bin", &built.image);
        let form = fused_form(&case.km_key);
        let pin = if sha384 {
            hex::encode(sha2::Sha384::digest(&form))
        } else {
            sha256_hex(&form)
        };
        let policy = case.policy("pin.json", &[pin]);
        let cov = coverage(&p, Some(&policy));
        ibb_is(&cov, &built, "bootguard-ibb");
        assert_eq!(total(&cov, "bootguard-self-signed"), 0);
        assert_eq!(notes(&cov), "", "cbnt {cbnt}");
        // The same pin through $FWSCAN_TRUST.
        let out = fwscan()
            .env("FWSCAN_TRUST", &policy)
            .args(["inspect", "--coverage", "--format", "json"])
            .arg(&p)
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        ibb_is(&doc["coverage"], &built, "bootguard-ibb");
        // The tree says the KM key is pinned.
        let out = fwscan()
            .args(["inspect", "--format", "json", "--trust"])
            .arg(&policy)
            .arg(&p)
            .output()
            .unwrap();
        let t: Value = serde_json::from_slice(&out.stdout).unwrap();
        let km = crate::intel::all_nodes(&t)
            .into_iter()
            .find(|n| n["name"] == "key-manifest")
            .cloned()
            .unwrap();
        assert_eq!(km["attrs"]["key-pinned"], true);
    }
}

/// A pin of another key (or of the BPM key) does not make the KM hardware-verified: self-signed, and the
/// note counts the pins that did not match. A pinned KM whose BPM is signed by a key the KM does not
/// name is not Boot Guard coverage at all.
#[test]
fn mismatching_pin_is_not_hardware_verified() {
    let Some(case) = Case::new(false) else { return };
    let built = case.build(&Tweak::default());
    let p = case.write("clean.bin", &built.image);
    let other = genkey(case.dir.path(), "other", "rsa2048");
    let policy = case.policy(
        "other.json",
        &[
            sha256_hex(&fused_form(&other)),
            sha256_hex(&fused_form(&case.bpm_key)),
        ],
    );
    let cov = coverage(&p, Some(&policy));
    ibb_is(&cov, &built, "bootguard-self-signed");
    assert_eq!(total(&cov, "bootguard-ibb"), 0);
    assert!(notes(&cov).contains("nothing pins"), "{cov:#}");
    // The tree says so on the KM: not pinned, its signature's evidence self-signed.
    let out = fwscan()
        .args(["inspect", "--format", "json", "--trust"])
        .arg(&policy)
        .arg(&p)
        .output()
        .unwrap();
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    let km = crate::intel::all_nodes(&t)
        .into_iter()
        .find(|n| n["name"] == "key-manifest")
        .cloned()
        .unwrap();
    assert_eq!(km["attrs"]["key-pinned"], false);
    assert_eq!(km["evidence"][0]["scheme"], "bootguard-km");
    assert_eq!(km["evidence"][0]["trust"], "self-signed");
    // The chain is broken (BPM signed by `other`, the KM names the BPM key): no Boot Guard class at all,
    // even with the KM pinned.
    let swapped = build_image(
        case.dir.path(),
        false,
        (
            (&case.km_key, "pkcs1-sha256"),
            (&other, &case.bpm_key, "pkcs1-sha256"),
            &case.acm_key,
        ),
    );
    let p = case.write("swapped.bin", &swapped.image);
    let pin = case.policy("pin.json", &[sha256_hex(&fused_form(&case.km_key))]);
    let cov = coverage(&p, Some(&pin));
    ibb_is(&cov, &swapped, "baseline-only");
    assert!(
        notes(&cov).contains("does not name the boot policy manifest's key"),
        "{cov:#}"
    );
}

/// `inspect --trust` refuses a policy it cannot use (a malformed pin) instead of ignoring it.
#[test]
fn inspect_refuses_a_bad_pin() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img.bin");
    std::fs::write(&img, vec![0xFFu8; 0x1000]).unwrap();
    for bad in [json!("abcd"), json!("zz".repeat(32))] {
        let v = json!({"schema_version": 1, "keys": [],
            "vendor_keys": [{"id": "km", "type": "bootguard-km-hash", "hash": bad}]});
        let p = dir.path().join("bad.json");
        std::fs::write(&p, v.to_string()).unwrap();
        let out = fwscan()
            .args(["inspect", "--coverage", "--trust"])
            .arg(&p)
            .arg(&img)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.contains("trust-policy-invalid") && e.contains("bootguard-km-hash"),
            "{e}"
        );
    }
}

/// The real BIOS region (Galago Pro 3: FIT and microcode, no KM/BPM) and the real loose KMs: no Boot
/// Guard class and no coverage note, with or without a pin (no false alarm).
#[test]
fn real_images_raise_no_false_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let v = json!({"schema_version": 1, "keys": [],
        "vendor_keys": [{"id": "km", "type": "bootguard-km-hash", "hash": "00".repeat(32)}]});
    let policy = dir.path().join("pin.json");
    std::fs::write(&policy, v.to_string()).unwrap();
    let mut images = Vec::new();
    if let Some(g) = crate::intel::galago() {
        images.push(g);
    }
    for km in ["km-bg.bin", "km-cbnt.bin"] {
        if let Some(p) = crate::harness::fixture(&format!("intel/{km}")) {
            images.push(p);
        }
    }
    for img in &images {
        for pol in [None, Some(policy.as_path())] {
            let cov = coverage(img, pol);
            assert_eq!(total(&cov, "bootguard-ibb"), 0, "{}", img.display());
            assert_eq!(total(&cov, "bootguard-self-signed"), 0, "{}", img.display());
            assert_eq!(notes(&cov), "", "{}", img.display());
        }
    }
}
