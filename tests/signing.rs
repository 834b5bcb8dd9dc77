//! Signed manifests end to end: interoperability with Debian's `minisign`, every refusal code of issue 5,
//! Ed25519 strict-verification vectors, and `scan` refusing or naming the signer.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
use fwscan::manifest::minisign::{prehash, KeyId, PublicKey, SigAlg, SignatureFile};
use fwscan::manifest::{BaselineOptions, Manifest, Product};
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

use crate::harness::{output as fwscan, BIN};

fn have_minisign() -> bool {
    let ok = Command::new("minisign")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        crate::harness::skip("Debian package `minisign` is not installed");
    }
    ok
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Env {
    dir: tempfile::TempDir,
}

/// A generated key (secret key file, and its public half).
struct Key {
    path: PathBuf,
    public: PublicKey,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A manifest for a small image, with `edit` applied before it is written.
    fn manifest(
        &self,
        name: &str,
        product: &str,
        seq: u64,
        edit: impl FnOnce(&mut Manifest),
    ) -> PathBuf {
        let image: Vec<u8> = (0..20000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(self.p("image.bin"), &image).unwrap();
        let data = Arc::new(fwscan::input::Data::Owned(image));
        let tree = fwscan::formats::parse_image(data, &fwscan::formats::ParseOptions::default());
        let mut m = Manifest::from_tree(
            &tree,
            BaselineOptions {
                product: Product {
                    vendor: "Acme Corp".into(),
                    product: product.into(),
                    component: "bios".into(),
                    version: "1.4".into(),
                    build_id: None,
                },
                sequence: seq,
                ..BaselineOptions::default()
            },
        )
        .unwrap();
        edit(&mut m);
        let p = self.p(name);
        std::fs::write(&p, m.to_json()).unwrap();
        p
    }

    fn keygen(&self, name: &str) -> Key {
        let (sk, pk) = (
            self.p(&format!("{name}.key")),
            self.p(&format!("{name}.pub")),
        );
        let o = fwscan(&["keygen", "-s", s(&sk), "-p", s(&pk), "--unencrypted"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let entry: Value = serde_json::from_slice(&o.stdout).unwrap();
        let public = PublicKey::parse_file(&std::fs::read_to_string(&pk).unwrap()).unwrap();
        assert_eq!(entry["id"], public.id.to_hex());
        Key { path: sk, public }
    }

    fn sign(&self, manifest: &Path, key: &Key, extra: &[&str]) {
        let mut args = vec!["sign", s(manifest), "--key", s(&key.path)];
        args.extend_from_slice(extra);
        let o = fwscan(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// Writes a trust policy (validated against the JSON Schema too) and returns its path.
    fn policy(&self, v: Value) -> PathBuf {
        let schema: Value =
            serde_json::from_str(include_str!("../schemas/trust-policy-v1.schema.json")).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        assert!(
            validator.is_valid(&v),
            "policy does not match the schema: {v}"
        );
        let p = self.p("trust.json");
        std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        p
    }
}

fn entry(k: &PublicKey, role: &str) -> Value {
    json!({"id": k.id.to_hex(), "public_key": k.to_base64(), "role": role})
}

fn policy_of(keys: &[Value]) -> Value {
    json!({"schema_version": 1, "keys": keys})
}

/// Runs `fwscan verify --format json` and returns (exit code, JSON).
fn verify(manifest: &Path, policy: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![
        "verify",
        s(manifest),
        "--trust",
        s(policy),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let o = fwscan(&args);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "verify output is not JSON ({e}): {} / {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code().unwrap(), v)
}

/// Asserts a refusal with exit 2 and `code`, and that the message names a file.
fn refused(manifest: &Path, policy: &Path, extra: &[&str], code: &str) -> Value {
    let (rc, v) = verify(manifest, policy, extra);
    assert_eq!(rc, 2, "expected refusal {code}, got {v}");
    assert_eq!(v["verdict"], "refused", "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert!(!v["file"].as_str().unwrap().is_empty());
    v
}

fn verified(manifest: &Path, policy: &Path, extra: &[&str]) -> Value {
    let (rc, v) = verify(manifest, policy, extra);
    assert_eq!(rc, 0, "expected success, got {v}");
    assert_eq!(v["verdict"], "verified", "{v}");
    v
}

fn sig_path(m: &Path, n: usize) -> PathBuf {
    if n == 1 {
        PathBuf::from(format!("{}.minisig", m.display()))
    } else {
        PathBuf::from(format!("{}.{n}.minisig", m.display()))
    }
}

// ---------------------------------------------------------------------------------------------------
// Interoperability with the real minisign.

#[test]
fn fwscan_signature_verifies_with_minisign() {
    if !have_minisign() {
        return;
    }
    let env = Env::new();
    let m = env.manifest("m.json", "X11", 3, |_| {});
    let k = env.keygen("vendor");
    env.sign(&m, &k, &[]);
    let o = Command::new("minisign")
        .args(["-Vm", s(&m), "-p", s(&env.p("vendor.pub"))])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("product=X11 component=bios version=1.4 sequence=3"),
        "{out}"
    );
    // And minisign refuses it once the body changes (so the check above is meaningful).
    let mut body = std::fs::read(&m).unwrap();
    body[10] ^= 1;
    std::fs::write(&m, body).unwrap();
    let o = Command::new("minisign")
        .args(["-Vm", s(&m), "-p", s(&env.p("vendor.pub"))])
        .output()
        .unwrap();
    assert!(!o.status.success());
}

#[test]
fn encrypted_fwscan_key_is_usable_by_minisign() {
    if !have_minisign() {
        return;
    }
    let env = Env::new();
    let m = env.manifest("m.json", "X11", 3, |_| {});
    std::fs::write(env.p("pw"), "correct horse\n").unwrap();
    let (sk, pk) = (env.p("e.key"), env.p("e.pub"));
    let o = fwscan(&[
        "keygen",
        "-s",
        s(&sk),
        "-p",
        s(&pk),
        "--password-file",
        s(&env.p("pw")),
        "--kdf-memory",
        "8",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // minisign decrypts our scrypt-encrypted key with its own parameters (password on stdin).
    let mut child = Command::new("minisign")
        .args(["-S", "-s", s(&sk), "-m", s(&m), "-x", s(&env.p("ms.sig"))])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new("minisign")
        .args(["-Vm", s(&m), "-x", s(&env.p("ms.sig")), "-p", s(&pk)])
        .output()
        .unwrap();
    assert!(o.status.success());
    // fwscan signs with it too, and a wrong password is refused.
    let o = fwscan(&[
        "sign",
        s(&m),
        "--key",
        s(&sk),
        "--password-file",
        s(&env.p("pw")),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(env.p("bad"), "wrong\n").unwrap();
    let o = fwscan(&[
        "sign",
        s(&m),
        "--key",
        s(&sk),
        "--password-file",
        s(&env.p("bad")),
        "-o",
        s(&env.p("x.sig")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!env.p("x.sig").exists());
}

#[test]
fn minisign_signature_verifies_in_fwscan() {
    if !have_minisign() {
        return;
    }
    let env = Env::new();
    let m = env.manifest("m.json", "X11", 3, |_| {});
    let (sk, pk) = (env.p("ms.key"), env.p("ms.pub"));
    let o = Command::new("minisign")
        .args(["-G", "-W", "-s", s(&sk), "-p", s(&pk)])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let public = PublicKey::parse_file(&std::fs::read_to_string(&pk).unwrap()).unwrap();
    let policy = env.policy(policy_of(&[entry(&public, "owner")]));
    // The comment fwscan expects, signed by minisign itself.
    let o = fwscan(&["sign", s(&m), "--print-comment"]);
    let comment = String::from_utf8(o.stdout).unwrap();
    let o = Command::new("minisign")
        .args(["-S", "-s", s(&sk), "-m", s(&m), "-t", comment.trim()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = verified(&m, &policy, &[]);
    assert_eq!(v["signers"][0]["key_id"], public.id.to_hex());
    assert_eq!(v["signers"][0]["role"], "owner");
    assert_eq!(v["sequence"], 3);
    // minisign's default trusted comment does not bind product/version/sequence: refused.
    let o = Command::new("minisign")
        .args(["-S", "-s", s(&sk), "-m", s(&m)])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success());
    refused(&m, &policy, &[], "manifest-comment-mismatch");
    // A legacy (`-l`) signature from minisign is refused unless --allow-legacy.
    let o = Command::new("minisign")
        .args(["-S", "-l", "-s", s(&sk), "-m", s(&m), "-t", comment.trim()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    refused(&m, &policy, &[], "manifest-legacy-signature");
    verified(&m, &policy, &["--allow-legacy"]);
    // fwscan can sign with a key made by minisign; minisign verifies it as prehashed (-H).
    let o = fwscan(&["sign", s(&m), "--key", s(&sk)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new("minisign")
        .args(["-V", "-H", "-m", s(&m), "-p", s(&pk)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    verified(&m, &policy, &[]);
}

// ---------------------------------------------------------------------------------------------------
// Refusals.

#[test]
fn body_changed_after_signing_is_refused() {
    let env = Env::new();
    let m = env.manifest("m.json", "X11", 3, |_| {});
    let k = env.keygen("a");
    let policy = env.policy(policy_of(&[entry(&k.public, "vendor")]));
    env.sign(&m, &k, &[]);
    verified(&m, &policy, &[]);
    let text = std::fs::read_to_string(&m)
        .unwrap()
        .replace("\"1.4\"", "\"1.5\"");
    std::fs::write(&m, text).unwrap();
    refused(&m, &policy, &[], "manifest-signature-invalid");
}

#[test]
fn trusted_comment_edited_is_refused() {
    let env = Env::new();
    let m = env.manifest("m.json", "X11", 3, |_| {});
    let k = env.keygen("a");
    let policy = env.policy(policy_of(&[entry(&k.public, "vendor")]));
    env.sign(&m, &k, &[]);
    let sp = sig_path(&m, 1);
    let mut sf = SignatureFile::parse(&std::fs::read(&sp).unwrap()).unwrap();
    // Editing the untrusted comment is harmless...
    sf.untrusted_comment = "anything".into();
    std::fs::write(&sp, sf.to_file()).unwrap();
    verified(&m, &policy, &[]);
    // ...editing the trusted one is not.
    sf.trusted_comment = sf.trusted_comment.replace("sequence=3", "sequence=30");
    std::fs::write(&sp, sf.to_file()).unwrap();
    refused(&m, &policy, &[], "manifest-signature-invalid");
}

#[test]
fn untrusted_revoked_and_mismatched_keys_are_refused() {
    let env = Env::new();
    let m = env.manifest("m.json", "X11", 3, |_| {});
    let (a, b, c) = (env.keygen("a"), env.keygen("b"), env.keygen("c"));
    // Signed by c, which the policy does not list.
    env.sign(&m, &c, &[]);
    let policy = env.policy(policy_of(&[
        entry(&a.public, "vendor"),
        entry(&b.public, "owner"),
    ]));
    let v = refused(&m, &policy, &[], "manifest-untrusted-key");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains(&c.public.id.to_hex()));
    // Signed by b, but the signature file claims key a.
    env.sign(&m, &b, &[]);
    let sp = sig_path(&m, 1);
    let mut sf = SignatureFile::parse(&std::fs::read(&sp).unwrap()).unwrap();
    sf.key_id = a.public.id;
    std::fs::write(&sp, sf.to_file()).unwrap();
    refused(&m, &policy, &[], "manifest-key-id-mismatch");
    // Revoked key (listed and revoked; and revoked but no longer listed).
    env.sign(&m, &b, &[]);
    verified(&m, &policy, &[]);
    let mut p = policy_of(&[entry(&a.public, "vendor"), entry(&b.public, "owner")]);
    p["revoked"] = json!([b.public.id.to_hex()]);
    let policy = env.policy(p);
    refused(&m, &policy, &[], "manifest-key-revoked");
    let mut p = policy_of(&[entry(&a.public, "vendor")]);
    p["revoked"] = json!([b.public.id.to_hex()]);
    let policy = env.policy(p);
    refused(&m, &policy, &[], "manifest-key-revoked");
}

#[test]
fn key_not_allowed_for_product_or_component() {
    let env = Env::new();
    let m = env.manifest("m.json", "X11", 3, |_| {});
    let k = env.keygen("a");
    env.sign(&m, &k, &[]);
    let mut e = entry(&k.public, "vendor");
    e["products"] = json!(["Y12*"]);
    let policy = env.policy(policy_of(&[e.clone()]));
    refused(&m, &policy, &[], "manifest-key-not-allowed");
    e["products"] = json!(["X1?"]);
    e["components"] = json!(["bmc"]);
    let policy = env.policy(policy_of(&[e.clone()]));
    refused(&m, &policy, &[], "manifest-key-not-allowed");
    e["components"] = json!(["bios", "bmc"]);
    let policy = env.policy(policy_of(&[e]));
    verified(&m, &policy, &[]);
}

#[test]
fn threshold_counts_distinct_keys() {
    let env = Env::new();
    let m = env.manifest("m.json", "X11", 3, |_| {});
    let (a, b) = (env.keygen("a"), env.keygen("b"));
    let mut p = policy_of(&[entry(&a.public, "vendor"), entry(&b.public, "owner")]);
    p["rules"] = json!([{"product": "X11", "component": "bios", "threshold": 2}]);
    let policy = env.policy(p);
    env.sign(&m, &a, &[]);
    refused(&m, &policy, &[], "manifest-threshold-not-met");
    // The same key twice (a second file) still counts once.
    env.sign(&m, &a, &["--add"]);
    assert!(sig_path(&m, 2).exists());
    let v = refused(&m, &policy, &[], "manifest-threshold-not-met");
    assert!(v["message"].as_str().unwrap().contains("1 distinct"), "{v}");
    // A byte-identical copy too.
    std::fs::copy(sig_path(&m, 1), sig_path(&m, 2)).unwrap();
    refused(&m, &policy, &[], "manifest-threshold-not-met");
    // A second, different trusted key meets it.
    std::fs::remove_file(sig_path(&m, 2)).unwrap();
    env.sign(&m, &b, &["--add"]);
    let v = verified(&m, &policy, &[]);
    let roles: Vec<&str> = v["signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["vendor", "owner"]);
    assert_eq!(v["threshold"], 2);
}

#[test]
fn legacy_ed_signature_needs_allow_legacy() {
    let env = Env::new();
    let m = env.manifest("m.json", "X11", 3, |_| {});
    let k = env.keygen("a");
    let policy = env.policy(policy_of(&[entry(&k.public, "vendor")]));
    env.sign(&m, &k, &["--legacy"]);
    let sf = SignatureFile::parse(&std::fs::read(sig_path(&m, 1)).unwrap()).unwrap();
    assert_eq!(sf.alg, SigAlg::Legacy);
    refused(&m, &policy, &[], "manifest-legacy-signature");
    let v = verified(&m, &policy, &["--allow-legacy"]);
    assert_eq!(v["signers"][0]["legacy"], true);
}

#[test]
fn expired_manifest_and_key_and_at() {
    let env = Env::new();
    let m = env.manifest("m.json", "X11", 3, |m| {
        m.expires = Some("2024-01-01T00:00:00Z".into())
    });
    let k = env.keygen("a");
    let policy = env.policy(policy_of(&[entry(&k.public, "vendor")]));
    env.sign(&m, &k, &[]);
    let v = refused(&m, &policy, &[], "manifest-expired");
    assert!(v["message"].as_str().unwrap().contains("2024-01-01"));
    // A historical audit at a time before expiry accepts it, and says the time was given.
    let v = verified(&m, &policy, &["--at", "2023-06-01T00:00:00Z"]);
    assert_eq!(v["trust"]["at_override"], true);
    assert_eq!(v["trust"]["evaluated_at"], "2023-06-01T00:00:00Z");
    refused(
        &m,
        &policy,
        &["--at", "2024-01-01T00:00:00Z"],
        "manifest-expired",
    );
    // Key expiry.
    let mut e = entry(&k.public, "vendor");
    e["expires"] = json!("2023-01-01T00:00:00Z");
    let policy = env.policy(policy_of(&[e]));
    refused(
        &m,
        &policy,
        &["--at", "2023-06-01T00:00:00Z"],
        "key-expired",
    );
    verified(&m, &policy, &["--at", "2022-06-01T00:00:00Z"]);
}

#[test]
fn rollback_against_policy_minimum_and_state_file() {
    let env = Env::new();
    let k = env.keygen("a");
    let mut p = policy_of(&[entry(&k.public, "vendor")]);
    p["rules"] = json!([{"product": "X11", "min_sequence": 4}]);
    let policy = env.policy(p);
    let m3 = env.manifest("m3.json", "X11", 3, |_| {});
    let m5 = env.manifest("m5.json", "X11", 5, |_| {});
    let m4 = env.manifest("m4.json", "X11", 4, |_| {});
    for m in [&m3, &m4, &m5] {
        env.sign(m, &k, &[]);
    }
    let v = refused(&m3, &policy, &[], "manifest-rollback");
    assert!(v["message"].as_str().unwrap().contains("minimum 4"), "{v}");
    let state = env.p("state.json");
    let st = s(&state);
    verified(&m4, &policy, &["--state", st]);
    let v = verified(&m5, &policy, &["--state", st]);
    assert_eq!(v["previous_sequence"], 4);
    assert_eq!(v["state_updated"], true);
    let before = std::fs::read(&state).unwrap();
    let v = refused(&m4, &policy, &["--state", st], "manifest-rollback");
    assert!(
        v["message"].as_str().unwrap().contains("already accepted"),
        "{v}"
    );
    // Refusals and --at never write the state; the same sequence is accepted again.
    assert_eq!(std::fs::read(&state).unwrap(), before);
    verified(&m5, &policy, &["--state", st]);
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["entries"][0]["sequence"], 5);
    // Without the state file only the policy minimum applies.
    verified(&m4, &policy, &[]);
    // A corrupt state file is an error, not a reset.
    std::fs::write(&state, b"{").unwrap();
    refused(&m5, &policy, &["--state", st], "trust-state-invalid");
}

#[test]
fn trusted_comment_disagreeing_with_body_is_refused() {
    let env = Env::new();
    let k = env.keygen("a");
    let policy = env.policy(policy_of(&[entry(&k.public, "vendor")]));
    let old = env.manifest("old.json", "X11", 2, |_| {});
    let new = env.manifest("new.json", "X11", 9, |_| {});
    // Mix and match: the body of `new` signed with the trusted comment of `old`.
    let o = fwscan(&["sign", s(&old), "--print-comment"]);
    let old_comment = String::from_utf8(o.stdout).unwrap();
    env.sign(&new, &k, &["--trusted-comment", old_comment.trim()]);
    let v = refused(&new, &policy, &[], "manifest-comment-mismatch");
    assert!(v["message"].as_str().unwrap().contains("sequence"), "{v}");
    // Other product in the comment.
    let c = String::from_utf8(fwscan(&["sign", s(&new), "--print-comment"]).stdout)
        .unwrap()
        .replace("product=X11", "product=X12");
    env.sign(&new, &k, &["--trusted-comment", c.trim()]);
    refused(&new, &policy, &[], "manifest-comment-mismatch");
}

#[test]
fn oversized_manifest_and_bad_signature_files() {
    let env = Env::new();
    let m = env.manifest("m.json", "X11", 3, |_| {});
    let k = env.keygen("a");
    let policy = env.policy(policy_of(&[entry(&k.public, "vendor")]));
    env.sign(&m, &k, &[]);
    let good = std::fs::read(sig_path(&m, 1)).unwrap();
    // Oversized manifest: refused from its size alone (a sparse file; nothing is read).
    let big = env.p("big.json");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(fwscan::manifest::MAX_MANIFEST_SIZE + 1)
        .unwrap();
    std::fs::write(sig_path(&big, 1), &good).unwrap();
    refused(&big, &policy, &[], "manifest-too-large");
    // Truncated at every line boundary and mid-line.
    for cut in [0, 10, good.len() / 2, good.len() - 30] {
        std::fs::write(sig_path(&m, 1), &good[..cut]).unwrap();
        refused(&m, &policy, &[], "signature-malformed");
    }
    for garbage in [
        &b"\x00\xff\xfe garbage"[..],
        b"untrusted comment: x\n!!!!\n",
        &[b'A'; 20000][..],
    ] {
        std::fs::write(sig_path(&m, 1), garbage).unwrap();
        refused(&m, &policy, &[], "signature-malformed");
    }
    // Unsigned.
    std::fs::remove_file(sig_path(&m, 1)).unwrap();
    refused(&m, &policy, &[], "manifest-unsigned");
    // Bad policy.
    std::fs::write(env.p("bad-policy.json"), b"{\"schema_version\":1}").unwrap();
    std::fs::write(sig_path(&m, 1), &good).unwrap();
    refused(&m, &env.p("bad-policy.json"), &[], "trust-policy-invalid");
    verified(&m, &policy, &[]);
}

#[test]
fn refusal_codes_are_distinct() {
    let codes = [
        "manifest-unsigned",
        "manifest-signature-invalid",
        "manifest-untrusted-key",
        "manifest-key-id-mismatch",
        "manifest-key-revoked",
        "manifest-key-not-allowed",
        "manifest-threshold-not-met",
        "manifest-legacy-signature",
        "manifest-expired",
        "manifest-rollback",
        "manifest-comment-mismatch",
        "manifest-too-large",
        "signature-malformed",
        "trust-policy-invalid",
        "key-expired",
        "trust-state-invalid",
    ];
    let set: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(set.len(), codes.len());
    for c in codes {
        assert!(
            fwscan::compare::Code::parse(c).is_some(),
            "{c} is not a registered code"
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// Ed25519 strict verification vectors, built here and fed through the real verification path.

/// A raw Ed25519 signature file over `manifest` with a given key id, signature and global signature.
fn raw_sig_file(id: KeyId, sig: [u8; 64], comment: &str, global: [u8; 64]) -> String {
    SignatureFile {
        untrusted_comment: "crafted".into(),
        alg: SigAlg::Prehashed,
        key_id: id,
        signature: sig,
        trusted_comment: comment.into(),
        global_signature: global,
    }
    .to_file()
}

fn add_l(s: &[u8]) -> [u8; 32] {
    // L = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = s[i] as u16 + L[i] as u16 + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0);
    out
}

#[test]
fn strict_verification_rejects_malleable_s_plus_l() {
    let env = Env::new();
    let m = env.manifest("m.json", "X11", 3, |_| {});
    let bytes = std::fs::read(&m).unwrap();
    let sk = SigningKey::from_bytes(&[7u8; 32]);
    let public = PublicKey {
        id: KeyId(*b"malleabl"),
        key: sk.verifying_key().to_bytes(),
    };
    let policy = env.policy(policy_of(&[entry(&public, "vendor")]));
    let comment = String::from_utf8(fwscan(&["sign", s(&m), "--print-comment"]).stdout).unwrap();
    let comment = comment.trim();
    let sig = sk.sign(&prehash(&bytes)).to_bytes();
    let global = |sig: &[u8; 64]| {
        let mut g = sig.to_vec();
        g.extend_from_slice(comment.as_bytes());
        sk.sign(&g).to_bytes()
    };
    // Control: the honest signature verifies.
    std::fs::write(
        sig_path(&m, 1),
        raw_sig_file(public.id, sig, comment, global(&sig)),
    )
    .unwrap();
    verified(&m, &policy, &[]);
    // S + L: the same group equation holds, but S is not reduced.
    let mut mal = sig;
    mal[32..].copy_from_slice(&add_l(&sig[32..]));
    assert_ne!(mal, sig);
    std::fs::write(
        sig_path(&m, 1),
        raw_sig_file(public.id, mal, comment, global(&mal)),
    )
    .unwrap();
    refused(&m, &policy, &[], "manifest-signature-invalid");
    assert!(!public.verify_strict(&prehash(&bytes), &mal));
}

#[test]
fn strict_verification_rejects_small_order_public_key() {
    let env = Env::new();
    let m = env.manifest("m.json", "X11", 3, |_| {});
    let bytes = std::fs::read(&m).unwrap();
    // A = identity (small order); R = identity, S = 0 satisfies [S]B = R + [k]A for EVERY message.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let public = PublicKey {
        id: KeyId(*b"smallord"),
        key: identity,
    };
    let mut forged = [0u8; 64];
    forged[..32].copy_from_slice(&identity);
    // Control: a non-strict verifier accepts this forgery for any message.
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap();
    let sig = ed25519_dalek::Signature::from_bytes(&forged);
    assert!(vk.verify(&prehash(&bytes), &sig).is_ok());
    assert!(vk.verify(b"any other message", &sig).is_ok());
    let policy = env.policy(policy_of(&[entry(&public, "vendor")]));
    let comment = String::from_utf8(fwscan(&["sign", s(&m), "--print-comment"]).stdout).unwrap();
    std::fs::write(
        sig_path(&m, 1),
        raw_sig_file(public.id, forged, comment.trim(), forged),
    )
    .unwrap();
    refused(&m, &policy, &[], "manifest-signature-invalid");
    assert!(!public.verify_strict(&prehash(&bytes), &forged));
}

#[test]
fn strict_verification_rejects_small_order_and_non_canonical_r() {
    let env = Env::new();
    let m = env.manifest("m.json", "X11", 3, |_| {});
    let bytes = std::fs::read(&m).unwrap();
    let seed = [9u8; 32];
    let sk = SigningKey::from_bytes(&seed);
    let a_pub = sk.verifying_key().to_bytes();
    // The secret scalar a (clamped SHA-512 of the seed), checked against the public key.
    let h = Sha512::digest(seed);
    let mut a_bytes = [0u8; 32];
    a_bytes.copy_from_slice(&h[..32]);
    a_bytes[0] &= 248;
    a_bytes[31] &= 127;
    a_bytes[31] |= 64;
    let a = Scalar::from_bytes_mod_order(a_bytes);
    assert_eq!(EdwardsPoint::mul_base(&a).compress().to_bytes(), a_pub);
    let public = PublicKey {
        id: KeyId(*b"noncanon"),
        key: a_pub,
    };
    let policy = env.policy(policy_of(&[entry(&public, "vendor")]));
    let comment = String::from_utf8(fwscan(&["sign", s(&m), "--print-comment"]).stdout).unwrap();
    let comment = comment.trim();
    // With R = identity, S = k·a (k = H(R‖A‖M)) satisfies [S]B = R + [k]A.
    let forge = |r: [u8; 32], msg: &[u8]| -> [u8; 64] {
        let mut hh = Sha512::new();
        hh.update(r);
        hh.update(a_pub);
        hh.update(msg);
        let k = Scalar::from_bytes_mod_order_wide(&hh.finalize().into());
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r);
        sig[32..].copy_from_slice((k * a).as_bytes());
        sig
    };
    let mut canonical_identity = [0u8; 32];
    canonical_identity[0] = 1;
    // y = p + 1: a non-canonical encoding of the same identity point.
    let mut non_canonical = [0xffu8; 32];
    non_canonical[0] = 0xee;
    non_canonical[31] = 0x7f;
    assert_eq!(
        CompressedEdwardsY(non_canonical).decompress().unwrap(),
        CompressedEdwardsY(canonical_identity).decompress().unwrap()
    );
    let msg = prehash(&bytes);
    for r in [canonical_identity, non_canonical] {
        let sig = forge(r, &msg);
        let mut g = sig.to_vec();
        g.extend_from_slice(comment.as_bytes());
        let gsig = forge(r, &g);
        if r == canonical_identity {
            // Control: a non-strict verifier accepts the small-order-R forgery.
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&a_pub).unwrap();
            assert!(vk
                .verify(&msg, &ed25519_dalek::Signature::from_bytes(&sig))
                .is_ok());
        }
        std::fs::write(sig_path(&m, 1), raw_sig_file(public.id, sig, comment, gsig)).unwrap();
        refused(&m, &policy, &[], "manifest-signature-invalid");
        assert!(!public.verify_strict(&msg, &sig));
    }
}

// ---------------------------------------------------------------------------------------------------
// scan.

#[test]
fn scan_names_the_signer_and_refuses_unsigned() {
    let env = Env::new();
    let m = env.manifest("m.json", "X11", 3, |_| {});
    let image = env.p("image.bin");
    let k = env.keygen("a");
    let policy = env.policy(policy_of(&[entry(&k.public, "release-ci")]));
    // Unsigned manifest: refused (exit 2) unless --insecure-unsigned.
    let o = fwscan(&[
        "scan",
        s(&image),
        "-m",
        s(&m),
        "--trust",
        s(&policy),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["error"]["code"], "manifest-unsigned");
    let o = fwscan(&[
        "scan",
        s(&image),
        "-m",
        s(&m),
        "--insecure-unsigned",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["manifest"]["trust"]["verified"], false);
    // Signed: verified and the report names key id and role.
    env.sign(&m, &k, &[]);
    let state = env.p("state.json");
    let o = fwscan(&[
        "scan",
        s(&image),
        "-m",
        s(&m),
        "--trust",
        s(&policy),
        "--state",
        s(&state),
        "--format",
        "json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = &r["manifest"]["trust"];
    assert_eq!(t["verified"], true);
    assert_eq!(t["signers"][0]["key_id"], k.public.id.to_hex());
    assert_eq!(t["signers"][0]["role"], "release-ci");
    assert_eq!(t["at_override"], false);
    assert!(state.exists());
    // --at is reported; FWSCAN_TRUST is honoured.
    let o = Command::new(BIN)
        .args([
            "scan",
            s(&image),
            "-m",
            s(&m),
            "--at",
            "2030-01-01T00:00:00Z",
            "--format",
            "json",
        ])
        .env("FWSCAN_TRUST", &policy)
        .env_remove("FWSCAN_STATE")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["manifest"]["trust"]["at_override"], true);
    assert_eq!(
        r["manifest"]["trust"]["evaluated_at"],
        "2030-01-01T00:00:00Z"
    );
    // Text report says who signed.
    let o = fwscan(&["scan", s(&image), "-m", s(&m), "--trust", s(&policy)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&k.public.id.to_hex()) && text.contains("release-ci"),
        "{text}"
    );
    // A tampered manifest never reaches the comparison.
    let t = std::fs::read_to_string(&m)
        .unwrap()
        .replacen("\"X11\"", "\"X11 \"", 1);
    std::fs::write(&m, t).unwrap();
    let o = fwscan(&[
        "scan",
        s(&image),
        "-m",
        s(&m),
        "--trust",
        s(&policy),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["error"]["code"], "manifest-signature-invalid");
    assert!(r["error"]["message"].as_str().unwrap().contains("m.json"));
}

#[test]
fn keygen_never_waits_for_a_password_without_a_terminal() {
    let env = Env::new();
    let start = std::time::Instant::now();
    let o = fwscan(&["keygen", "-s", s(&env.p("k.key")), "-p", s(&env.p("k.pub"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("password"));
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    assert!(!env.p("k.key").exists());
    // Keys are never overwritten without --force.
    env.keygen("x");
    let o = fwscan(&[
        "keygen",
        "-s",
        s(&env.p("x.key")),
        "-p",
        s(&env.p("y.pub")),
        "--unencrypted",
    ]);
    assert_eq!(o.status.code(), Some(2));
}
