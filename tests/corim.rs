//! Signed CoRIM export and import (issue 24): `export --format corim`, `scan`/`verify` with a CoRIM, and
//! interop with others' code (Python `cryptography` + `cbor2` verify the COSE signature; veraison/corim's
//! signed test vector verifies with its published key inside its validity window).

use std::path::{Path, PathBuf};

use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::Value;

use crate::harness::{code_paths, have_file, run as fwscan, skip, under_ci};

pub(crate) const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";

pub(crate) fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fwscan-corim-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub(crate) fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

/// A P-256 key (fixed seed) as PEM PKCS#8, and its public key as PEM SPKI.
pub(crate) fn p256_key(dir: &Path, seed: u8) -> (PathBuf, String) {
    let k = p256::SecretKey::from_slice(&[seed; 32]).unwrap();
    let pem = k.to_pkcs8_pem(LineEnding::LF).unwrap();
    let path = dir.join(format!("p256-{seed}.pem"));
    std::fs::write(&path, pem.as_bytes()).unwrap();
    (
        path,
        k.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
    )
}

/// A scratch directory `name` with the generated core image (`core.bin`) and a P-256 key of `seed`:
/// (directory, image, key file, public key PEM).
pub(crate) fn core_setup(name: &str, seed: u8) -> (PathBuf, PathBuf, PathBuf, String) {
    let dir = scratch(name);
    let img = dir.join("core.bin");
    std::fs::write(&img, crate::support::testdata::core_image()).unwrap();
    let (key, pub_pem) = p256_key(&dir, seed);
    (dir, img, key, pub_pem)
}

/// A trust policy with one `cose` vendor key (optionally scoped to products).
pub(crate) fn policy(dir: &Path, pem: &str, products: Option<&[&str]>) -> PathBuf {
    let mut key = serde_json::json!({"id": "corim-signer", "type": "cose", "pem": pem});
    if let Some(ps) = products {
        key["products"] = serde_json::json!(ps);
    }
    let doc = serde_json::json!({"schema_version": 1, "keys": [], "vendor_keys": [key]});
    let path = dir.join("trust.json");
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    path
}

pub(crate) fn export(img: &Path, key: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "export",
        p(img),
        "--format",
        "corim",
        "--key",
        p(key),
        "-o",
        p(out),
        "--vendor",
        "Acme",
        "--product",
        "OVMF-X64",
        "--component",
        "bios",
        "--version",
        "1.0",
    ];
    args.extend_from_slice(extra);
    let (code, _, err) = fwscan(&args);
    assert_eq!(code, 0, "export failed: {err}");
}

fn scan_json(img: &Path, manifest: &Path, trust: &[&str]) -> (i32, Value, String) {
    let mut args = vec![
        "scan",
        p(img),
        "--manifest",
        p(manifest),
        "--format",
        "json",
    ];
    args.extend_from_slice(trust);
    let (code, out, err) = fwscan(&args);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, v, err)
}

/// A report with the manifest's file name and digest replaced, for comparing a CoRIM scan with a JSON one.
fn normalized(text: &str, manifest: &Path) -> String {
    let sha = fwscan::manifest::verify::sha256_hex(&std::fs::read(manifest).unwrap());
    text.replace(p(manifest), "MANIFEST")
        .replace(&sha, "SHA256")
}

#[test]
fn ovmf_export_scans_clean_and_names_a_patched_dxe_module_as_the_json_manifest_does() {
    if !have_file(OVMF_CODE, "Debian: ovmf") {
        return;
    }
    let dir = scratch("ovmf");
    let (key, pub_pem) = p256_key(&dir, 7);
    let corim = dir.join("ovmf.corim");
    export(Path::new(OVMF_CODE), &key, &corim, &["--expires", "30d"]);
    // Deterministic: a second export with the same key is byte-identical.
    let again = dir.join("again.corim");
    export(Path::new(OVMF_CODE), &key, &again, &["--expires", "30d"]);
    assert_eq!(
        std::fs::read(&corim).unwrap(),
        std::fs::read(&again).unwrap(),
        "two exports differ"
    );
    assert!(fwscan::manifest::corim::cbor::is_deterministic(
        &std::fs::read(&corim).unwrap()
    ));
    let trust = policy(&dir, &pub_pem, Some(&["OVMF-*"]));
    let t = ["--trust", p(&trust)];
    let (code, r, err) = scan_json(Path::new(OVMF_CODE), &corim, &t);
    assert_eq!(code, 0, "clean scan: {} {err}", r["findings"]);
    assert_eq!(
        r["manifest"]["trust"]["verified"], true,
        "{}",
        r["manifest"]
    );

    // A patched DXE driver: exit 1, the same findings as against a JSON manifest of the same image.
    let (patched, guid, _) = crate::uefi::patch_dxe_driver(&std::fs::read(OVMF_CODE).unwrap(), 10);
    let img = dir.join("patched.fd");
    std::fs::write(&img, &patched).unwrap();
    let (code, r, err) = scan_json(&img, &corim, &t);
    assert_eq!(code, 1, "{err}");
    let f = code_paths(&r);
    assert!(
        f.iter()
            .any(|(c, p)| c == "module-modified" && p.contains(&guid)),
        "{f:?}"
    );
    let json = dir.join("ovmf.manifest.json");
    let (code, _, err) = fwscan(&[
        "baseline",
        OVMF_CODE,
        "-o",
        p(&json),
        "--vendor",
        "Acme",
        "--product",
        "OVMF-X64",
        "--component",
        "bios",
        "--version",
        "1.0",
        "--expires",
        "30d",
    ]);
    assert_eq!(code, 0, "{err}");
    for format in ["json", "sarif", "junit", "text"] {
        let run = |m: &Path| {
            let (code, out, err) = fwscan(&[
                "scan",
                p(&img),
                "--manifest",
                p(m),
                "--insecure-unsigned",
                "--format",
                format,
            ]);
            assert_eq!(code, 1, "{format}: {err}");
            normalized(&out, m)
        };
        let (a, b) = (run(&corim), run(&json));
        // Only the baselines' creation and expiry times may differ (the CoRIM's count from the start of
        // the day), and the JSON's `bytes_hashed` work statistic: a node's digest is counted by whichever
        // pass computes it first (`hash::region_digest_counted`), so under load two scans of the same
        // image and baseline counted 12,887,232 and 20,181,156 bytes. Every finding, other statistic, SARIF
        // result and JUnit case is the same.
        let keep = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| {
                    !l.contains("\"created\"")
                        && !l.contains("\"expires\"")
                        && !l.contains("\"bytes_hashed\"")
                        && !l.starts_with("baseline:")
                })
                .map(str::to_string)
                .collect()
        };
        assert!(a.len() > 200, "{format}: {a}");
        assert_eq!(keep(&a), keep(&b), "{format}");
        if format == "sarif" || format == "junit" {
            assert_eq!(a, b, "{format}");
        }
    }
}

#[test]
fn openbmc_flash_export_scans_clean_and_names_a_patched_u_boot() {
    use crate::support::bmc as b;
    if !b::available() {
        return;
    }
    let dir = scratch("obmc");
    let pieces = b::build(&dir, b::LAYOUT_32, b::UBOOT_32, true);
    let clean = pieces.image(b::LAYOUT_32);
    let img = dir.join("bmc.bin");
    std::fs::write(&img, &clean).unwrap();
    let (key, pub_pem) = p256_key(&dir, 9);
    let corim = dir.join("bmc.corim");
    let (code, _, err) = fwscan(&[
        "export",
        p(&img),
        "--format",
        "corim",
        "--key",
        p(&key),
        "-o",
        p(&corim),
        "--component",
        "bmc",
    ]);
    assert_eq!(code, 0, "{err}");
    let trust = policy(&dir, &pub_pem, None);
    let t = ["--trust", p(&trust)];
    let (code, r, err) = scan_json(&img, &corim, &t);
    assert_eq!(code, 0, "clean: {} {err}", r["findings"]);
    let mut bad = clean.clone();
    bad[0x1000] ^= 0x5A;
    let patched = dir.join("patched.bin");
    std::fs::write(&patched, &bad).unwrap();
    let (code, r, _) = scan_json(&patched, &corim, &t);
    assert_eq!(code, 1);
    let f = code_paths(&r);
    assert!(
        f.iter()
            .any(|(c, p)| c == "region-modified" && p == "u-boot/u-boot-nodtb"),
        "{f:?}"
    );
}

/// The export's COSE_Sign1 verifies with Python's `cryptography` (OpenSSL), decoded by `cbor2`; its
/// payload is a #6.501 CoRIM with one #6.506 CoMID holding reference triples.
#[test]
fn export_verifies_with_python_cryptography() {
    let have = std::process::Command::new("python3")
        .args(["-c", "import cbor2, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        skip("python3 with cbor2 and cryptography not installed (pip install cbor2 cryptography)");
        assert!(!under_ci(), "cross-check did not run under CI");
        return;
    }
    let dir = scratch("py");
    let img = dir.join("core.bin");
    std::fs::write(&img, crate::support::testdata::core_image()).unwrap();
    let ed = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
    let ed_pem = ed.to_pkcs8_pem(LineEnding::LF).unwrap();
    let ed_path = dir.join("ed.pem");
    std::fs::write(&ed_path, ed_pem.as_bytes()).unwrap();
    let p384 = p384::SecretKey::from_slice(&[6u8; 48]).unwrap();
    let p384_path = dir.join("p384.pem");
    std::fs::write(
        &p384_path,
        p384.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    let (p256_path, _) = p256_key(&dir, 8);
    // ed25519-dalek writes PKCS#8 v2 (with the public key), which this `cryptography` does not load:
    // Python verifies with the public key instead.
    let ed_pub = dir.join("ed.pub.pem");
    std::fs::write(
        &ed_pub,
        ed.verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    let script = r#"
import sys, cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils
data = open(sys.argv[1], 'rb').read()
kb = open(sys.argv[3], 'rb').read()
key = serialization.load_pem_public_key(kb) if b'PUBLIC' in kb else serialization.load_pem_private_key(kb, None).public_key()
msg = cbor2.loads(data)
assert msg.tag == 18, msg.tag
prot, unprot, payload, sig = msg.value
hdr = cbor2.loads(prot)
assert hdr[3] == 'application/rim+cbor', hdr
meta = cbor2.loads(hdr[8])
assert meta[0][0] == 'Acme', meta
tbs = cbor2.dumps(['Signature1', prot, b'', payload])
alg = hdr[1]
if isinstance(key, ed25519.Ed25519PublicKey):
    assert alg == -8
    key.verify(sig, tbs)
else:
    n = len(sig) // 2
    der = utils.encode_dss_signature(int.from_bytes(sig[:n], 'big'), int.from_bytes(sig[n:], 'big'))
    h = hashes.SHA256() if alg == -7 else hashes.SHA384()
    assert alg == (-7 if key.curve.name == 'secp256r1' else -35), alg
    key.verify(der, tbs, ec.ECDSA(h))
corim = cbor2.loads(payload)
assert corim.tag == 501
comid = cbor2.loads(corim.value[1][0].value)
assert corim.value[1][0].tag == 506
triples = comid[4][0]
env, ms = triples[0]
assert env[0][1] == 'Acme' and env[0][2] == 'OVMF-X64/bios', env
for m in ms:
    mv = m[1]
    if 2 in mv:
        assert mv[2][0][0] in (1, 7) and len(mv[2][0][1]) in (32, 48), mv
        assert mv[3] == {7: True}, mv
print(len(ms))
"#;
    for (key, check) in [
        (&p256_path, &p256_path),
        (&p384_path, &p384_path),
        (&ed_path, &ed_pub),
    ] {
        let out = dir.join("x.corim");
        export(&img, key, &out, &[]);
        let o = std::process::Command::new("python3")
            .args(["-c", script, p(&out), p(key), p(check)])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: {}",
            key.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let n: usize = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
        assert!(n >= 1, "{n} reference values");
        // Tampering with one byte of the payload breaks the signature for Python as for fwscan.
        let mut bytes = std::fs::read(&out).unwrap();
        let i = bytes.len() - 200;
        bytes[i] ^= 1;
        std::fs::write(&out, &bytes).unwrap();
        let o = std::process::Command::new("python3")
            .args(["-c", script, p(&out), p(key), p(check)])
            .output()
            .unwrap();
        assert!(!o.status.success(), "tampered CoRIM verified in Python");
    }
}

/// veraison/corim's signed example (ES256, key `ec-p256.jwk`, validity 2021-12-31 .. 2025-12-31).
fn veraison_policy(dir: &Path) -> PathBuf {
    use base64::Engine as _;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/corim");
    let jwk: Value =
        serde_json::from_slice(&std::fs::read(root.join("veraison-ec-p256.jwk")).unwrap()).unwrap();
    let b = |k: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk[k].as_str().unwrap())
            .unwrap()
    };
    let point = p256::EncodedPoint::from_affine_coordinates(
        b("x").as_slice().into(),
        b("y").as_slice().into(),
        false,
    );
    let pk = p256::PublicKey::from_sec1_bytes(point.as_bytes()).unwrap();
    policy(dir, &pk.to_public_key_pem(LineEnding::LF).unwrap(), None)
}

#[test]
fn veraison_signed_corim_verifies_in_its_window_and_is_expired_today() {
    let dir = scratch("veraison");
    let trust = veraison_policy(&dir);
    let v = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/corim/veraison-signed-good-corim.cbor");
    let (code, out, err) = fwscan(&[
        "verify",
        p(&v),
        "--trust",
        p(&trust),
        "--at",
        "2024-06-01T00:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out} {err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["verdict"], "verified");
    assert_eq!(j["id"], "test corim id");
    assert_eq!(j["signer"], "ACME Ltd signing key");
    assert_eq!(j["comids"][0]["vendor"], "ACME");
    assert_eq!(j["comids"][0]["model"], "RoadRunner");
    assert_eq!(j["comids"][0]["measurements"], 3);
    assert_eq!(j["signature_validity"]["not_after"], "2025-12-31T00:00:00Z");
    // Today it is refused as expired.
    let (code, out, _) = fwscan(&["verify", p(&v), "--trust", p(&trust), "--format", "json"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("manifest-expired"), "{out}");
    // Before its validity: not yet valid.
    let (code, out, _) = fwscan(&[
        "verify",
        p(&v),
        "--trust",
        p(&trust),
        "--at",
        "2020-01-01T00:00:00Z",
    ]);
    assert_eq!(code, 2);
    assert!(out.contains("manifest-not-yet-valid"), "{out}");
    // One flipped signature byte: refused.
    let mut bytes = std::fs::read(&v).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 1;
    let bad = dir.join("bad.cbor");
    std::fs::write(&bad, &bytes).unwrap();
    let (code, out, _) = fwscan(&[
        "verify",
        p(&bad),
        "--trust",
        p(&trust),
        "--at",
        "2024-06-01T00:00:00Z",
    ]);
    assert_eq!(code, 2);
    assert!(out.contains("manifest-signature-invalid"), "{out}");
    // Another key: refused.
    let (_, other) = p256_key(&dir, 3);
    let t2 = policy(&dir, &other, None);
    let (code, out, _) = fwscan(&[
        "verify",
        p(&v),
        "--trust",
        p(&t2),
        "--at",
        "2024-06-01T00:00:00Z",
    ]);
    assert_eq!(code, 2);
    assert!(out.contains("manifest-signature-invalid"), "{out}");
    // `scan` locates another profile's reference values in a dump: an erased dump is not compared (exit 2);
    // in OVMF none of veraison's three values (one FFS GUID) is found, and nothing accounts for OVMF.
    let trust = veraison_policy(&dir);
    let img = dir.join("x.bin");
    std::fs::write(&img, [0u8; 4096]).unwrap();
    let scan = |img: &str, at: &str| {
        fwscan(&[
            "scan",
            img,
            "--manifest",
            p(&v),
            "--trust",
            p(&trust),
            "--at",
            at,
            "--format",
            "json",
        ])
    };
    let (code, out, err) = scan(p(&img), "2024-06-01T00:00:00Z");
    assert_eq!(code, 2, "{out} {err}");
    assert!(out.contains("unrecognized-image"), "{out}");
    // Verification comes first: expired today whatever the dump.
    let (code, out, err) = scan(p(&img), "2026-06-01T00:00:00Z");
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("manifest-expired"), "{err}");
    if have_file(OVMF_CODE, "Debian: ovmf") {
        let (code, out, err) = scan(OVMF_CODE, "2024-06-01T00:00:00Z");
        assert_eq!(code, 1, "{out} {err}");
        let r: Value = serde_json::from_str(&out).unwrap();
        let guid = "31FB5ABF-023E-4992-AA4E-95F9C1503BFA".to_string();
        assert_eq!(
            code_paths(&r),
            vec![
                ("not-covered".to_string(), String::new()),
                ("reference-missing".to_string(), guid.clone()),
                ("reference-missing".to_string(), guid.clone()),
                ("reference-missing".to_string(), guid),
            ]
        );
        assert_eq!(r["manifest"]["product"]["product"], "RoadRunner");
    }
}

#[test]
fn veraison_vectors_decode_with_notes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/corim");
    let c = fwscan::manifest::corim::decode(
        &std::fs::read(root.join("veraison-signed-corim-with-extensions.cbor")).unwrap(),
    )
    .unwrap();
    assert_eq!(c.signatures.len(), 1);
    assert!(!c.comids.is_empty());
    let u = fwscan::manifest::corim::decode(
        &std::fs::read(root.join("veraison-unsigned-good-corim.cbor")).unwrap(),
    )
    .unwrap();
    assert!(u.signatures.is_empty());
    assert!(
        u.notes.iter().any(|n| n.contains("unsigned")),
        "{:?}",
        u.notes
    );
    assert_eq!(u.comids[0].measurements.len(), 3);
    assert_eq!(u.comids[0].measurements[0].digests[0].0, "sha-256");
}

/// Hostile CoRIMs end in exit 2 with the offset named, without panicking.
#[test]
fn malformed_corims_are_refused_with_an_offset() {
    let dir = scratch("bad");
    let img = dir.join("x.bin");
    std::fs::write(&img, [0u8; 4096]).unwrap();
    let deep = [vec![0xd2u8], vec![0x81; 5000], vec![0]].concat();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", vec![0xd2, 0x84, 0x59, 0x01], "truncated"),
        ("short-bstr", vec![0xd2, 0x84, 0x43, 0xa1], "longer than"),
        ("indefinite", vec![0xd2, 0x9f, 0xff], "indefinite"),
        (
            "duplicate",
            vec![0xd9, 0x01, 0xf5, 0xa2, 0x00, 0x00, 0x00, 0x01],
            "duplicate map key",
        ),
        ("wrong-tag", vec![0xd8, 0x19, 0xa0], "wrong tag #6.25"),
        (
            "huge-array",
            vec![0xd2, 0x9b, 0, 0, 0, 1, 0, 0, 0, 0],
            "longer than",
        ),
        (
            "oversized-bstr",
            vec![0xd2, 0x5a, 0xff, 0xff, 0xff, 0xff],
            "longer than",
        ),
        ("deep", deep, "deeper than"),
        ("trailing", vec![0xd9, 0x01, 0xf5, 0xa0, 0x00], "trailing"),
    ];
    for (name, bytes, want) in cases {
        let m = dir.join(format!("{name}.corim"));
        std::fs::write(&m, &bytes).unwrap();
        let (code, out, err) =
            fwscan(&["scan", p(&img), "--manifest", p(&m), "--insecure-unsigned"]);
        assert_eq!(code, 2, "{name}: {out} {err}");
        assert!(err.contains("manifest-invalid"), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
        assert!(err.contains("offset 0x"), "{name}: {err}");
    }
}

/// A signature by a trusted key outside its scope, an unsigned CoRIM without --insecure-unsigned, and a
/// CoRIM whose reference values were edited (re-signed) to disagree with its baseline are refused.
#[test]
fn scoping_unsigned_and_inconsistent_corims_are_refused() {
    let (dir, img, key, pub_pem) = core_setup("scope", 11);
    let corim = dir.join("core.corim");
    export(&img, &key, &corim, &[]);
    let other_scope = policy(&dir, &pub_pem, Some(&["X11*"]));
    let (code, out, _) = fwscan(&["verify", p(&corim), "--trust", p(&other_scope)]);
    assert_eq!(code, 2);
    assert!(out.contains("manifest-key-not-allowed"), "{out}");
    let trust = policy(&dir, &pub_pem, Some(&["OVMF-*"]));
    let (code, out, err) = fwscan(&["verify", p(&corim), "--trust", p(&trust)]);
    assert_eq!(code, 0, "{out} {err}");
    // Edit one reference digest and re-sign with the trusted key: the triples no longer match the tree.
    use fwscan::manifest::corim::{cbor, cose};
    let bytes = std::fs::read(&corim).unwrap();
    let top = cbor::decode(&bytes).unwrap();
    let (_, msg) = top.as_tag().unwrap();
    let a = msg.as_array().unwrap();
    let prot = cbor::decode(a[0].as_bytes().unwrap()).unwrap();
    let mut payload = a[2].as_bytes().unwrap().to_vec();
    let needle = payload
        .windows(3)
        .position(|w| w == [0x82, 0x01, 0x58])
        .unwrap();
    payload[needle + 5] ^= 0xFF;
    let k = cose::SigningKey::from_pem(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let forged = cose::sign1(&prot, &payload, &k);
    let f = dir.join("forged.corim");
    std::fs::write(&f, forged).unwrap();
    let (code, out, _) = fwscan(&["verify", p(&f), "--trust", p(&trust)]);
    assert_eq!(code, 2);
    assert!(
        out.contains("manifest-invalid") && out.contains("disagrees"),
        "{out}"
    );
}

/// An EC/Ed25519 certificate workshop for `cose` keys that are X.509 chains (issue 24): keys by
/// `openssl genpkey`, certificates by `openssl req` / `openssl x509 -req -extfile`.
struct EcPki {
    dir: PathBuf,
}

const CA_EXT: &str = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
const LEAF_EXT: &str = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n";

impl EcPki {
    fn new(dir: &Path) -> Option<EcPki> {
        if !crate::harness::have_tool("openssl", "openssl") {
            return None;
        }
        Some(EcPki {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }

    /// Makes `NAME.key` (`ec:P-256`, `ec:P-384` or `ed25519`) and `NAME.pem`, issued by `issuer` (else
    /// self-signed) with the `ext` lines, valid for `days`.
    fn make(&self, name: &str, alg: &str, ext: &str, issuer: Option<&str>, days: u32) {
        let key = format!("{name}.key");
        let mut gen = vec!["genpkey", "-out", &key];
        let curve;
        match alg.strip_prefix("ec:") {
            Some(c) => {
                curve = format!("ec_paramgen_curve:{c}");
                gen.extend(["-algorithm", "EC", "-pkeyopt", &curve]);
            }
            None => gen.extend(["-algorithm", alg]),
        }
        crate::packages::run(&self.dir, "openssl", &gen);
        let extf = format!("{name}.ext");
        std::fs::write(self.path(&extf), ext).unwrap();
        let subj = format!("/CN={name}");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        let days = days.to_string();
        crate::packages::run(
            &self.dir,
            "openssl",
            &["req", "-new", "-key", &key, "-subj", &subj, "-out", &csr],
        );
        let (ca, ca_key) = match issuer {
            Some(i) => (format!("{i}.pem"), format!("{i}.key")),
            None => (String::new(), key.clone()),
        };
        let serial = (self.dir.read_dir().unwrap().count() + 1).to_string();
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-days",
            &days,
            "-extfile",
            &extf,
            "-set_serial",
            &serial,
            "-out",
            &pem,
        ];
        if issuer.is_some() {
            args.extend(["-CA", &ca, "-CAkey", &ca_key]);
        } else {
            args.extend(["-signkey", &ca_key]);
        }
        // Ed25519 signs without a separate digest; the EC issuers sign with SHA-256 (or SHA-384 for P-384).
        let ed_issuer = std::process::Command::new("openssl")
            .args(["pkey", "-in", &ca_key, "-noout", "-text"])
            .current_dir(&self.dir)
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("ED25519"));
        if !ed_issuer {
            args.push(if alg == "ec:P-384" && issuer.is_none() {
                "-sha384"
            } else {
                "-sha256"
            });
        }
        crate::packages::run(&self.dir, "openssl", &args);
    }

    fn pem(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.pem"))).unwrap()
    }

    /// `NAME.chain.pem`: the certificates named, in order.
    fn chain(&self, name: &str, certs: &[&str]) -> PathBuf {
        let text: String = certs.iter().map(|c| self.pem(c)).collect();
        let p = self.path(&format!("{name}.chain.pem"));
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn verify_code(corim: &Path, trust: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["verify", p(corim), "--trust", p(trust)];
    args.extend_from_slice(extra);
    let (code, out, err) = fwscan(&args);
    (code, format!("{out}{err}"))
}

/// A `cose` key that is a CA certificate: the signer's x5chain (root P-384 → intermediate Ed25519 → leaf
/// P-256, made by openssl) leads to it, and the refusals name the certificate and the reason.
#[test]
fn x509_chain_cose_keys_verify_and_refuse_with_reasons() {
    let dir = scratch("x5chain");
    let Some(pki) = EcPki::new(&dir) else {
        return;
    };
    pki.make("Root", "ec:P-384", CA_EXT, None, 3650);
    pki.make("Inter", "ed25519", CA_EXT, Some("Root"), 3650);
    pki.make("Leaf", "ec:P-256", LEAF_EXT, Some("Inter"), 2);
    // An intermediate without CA=true, a leaf under it; another root; an impostor intermediate with the
    // real one's name and a leaf it signed.
    pki.make("NotCa", "ec:P-256", LEAF_EXT, Some("Root"), 3650);
    pki.make("LeafOfNotCa", "ec:P-256", LEAF_EXT, Some("NotCa"), 3650);
    pki.make("OtherRoot", "ec:P-256", CA_EXT, None, 3650);
    let imp = EcPki::new(&dir.join("impostor")).unwrap();
    std::fs::create_dir_all(&imp.dir).unwrap();
    std::fs::copy(pki.path("Root.pem"), imp.path("Root.pem")).unwrap();
    std::fs::copy(pki.path("Root.key"), imp.path("Root.key")).unwrap();
    imp.make("Inter", "ec:P-256", CA_EXT, Some("Root"), 3650);
    imp.make("Leaf", "ec:P-256", LEAF_EXT, Some("Inter"), 3650);

    let img = dir.join("core.bin");
    std::fs::write(&img, crate::support::testdata::core_image()).unwrap();
    let signed = |name: &str, key: &Path, chain: Option<&Path>| -> PathBuf {
        let out = dir.join(format!("{name}.corim"));
        match chain {
            Some(c) => export(&img, key, &out, &["--x5chain", p(c)]),
            None => export(&img, key, &out, &[]),
        }
        out
    };
    let root_policy = |name: &str, pem: &str| -> PathBuf {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        policy(&d, pem, Some(&["OVMF-*"]))
    };
    let good = signed(
        "good",
        &pki.path("Leaf.key"),
        Some(&pki.chain("good", &["Leaf", "Inter"])),
    );
    let trust = root_policy("root", &pki.pem("Root"));
    let (code, out) = verify_code(&good, &trust, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("CN=Leaf"),
        "the signer certificate is named: {out}"
    );
    let (code, _, err) = fwscan(&[
        "scan",
        p(&img),
        "--manifest",
        p(&good),
        "--trust",
        p(&trust),
    ]);
    assert_eq!(code, 0, "{err}");
    // The root in the x5chain too changes nothing: the anchor is the policy's.
    let with_root = signed(
        "with-root",
        &pki.path("Leaf.key"),
        Some(&pki.chain("with-root", &["Leaf", "Inter", "Root"])),
    );
    assert_eq!(verify_code(&with_root, &trust, &[]).0, 0);

    // The leaf pinned: its own certificate is the policy's key, no x5chain needed.
    let bare = signed("bare", &pki.path("Leaf.key"), None);
    let pinned = root_policy("pinned", &pki.pem("Leaf"));
    let (code, out) = verify_code(&bare, &pinned, &[]);
    assert_eq!(code, 0, "{out}");

    let refused = |corim: &Path, trust: &Path, extra: &[&str], code: &str, words: &[&str]| {
        let (c, out) = verify_code(corim, trust, extra);
        assert_eq!(c, 2, "{out}");
        assert!(out.contains(code), "want {code}: {out}");
        for w in words {
            assert!(out.contains(w), "want `{w}`: {out}");
        }
    };
    // Wrong anchor.
    let other = root_policy("other", &pki.pem("OtherRoot"));
    refused(
        &good,
        &other,
        &[],
        "manifest-untrusted-key",
        &["CN=Leaf", "chains to none"],
    );
    // The leaf (valid two days) has expired 30 days from now; the CAs have not.
    let later = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(30 * 86_400),
    )
    .to_string();
    refused(
        &good,
        &trust,
        &["--at", &later],
        "manifest-expired",
        &["CN=Leaf", "expired"],
    );
    refused(
        &bare,
        &pinned,
        &["--at", &later],
        "manifest-expired",
        &["CN=Leaf"],
    );
    // An intermediate that is not a CA.
    let not_ca = signed(
        "not-ca",
        &pki.path("LeafOfNotCa.key"),
        Some(&pki.chain("not-ca", &["LeafOfNotCa", "NotCa"])),
    );
    refused(
        &not_ca,
        &trust,
        &[],
        "manifest-untrusted-key",
        &["CN=NotCa", "not a CA"],
    );
    // A leaf not signed by the intermediate in its x5chain (an impostor with the same name signed it).
    let mixed = dir.join("mixed.chain.pem");
    std::fs::write(&mixed, imp.pem("Leaf") + &pki.pem("Inter")).unwrap();
    let impostor = signed("impostor", &imp.path("Leaf.key"), Some(&mixed));
    refused(
        &impostor,
        &trust,
        &[],
        "manifest-untrusted-key",
        &["CN=Leaf", "chains to none"],
    );
    // No x5chain, and the policy holds only the root.
    refused(
        &bare,
        &trust,
        &[],
        "manifest-untrusted-key",
        &["x5chain", "CN=Root"],
    );
    // A signature byte flipped: the leaf's key does not verify it.
    let mut bytes = std::fs::read(&good).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 1;
    let flipped = dir.join("flipped.corim");
    std::fs::write(&flipped, &bytes).unwrap();
    refused(
        &flipped,
        &trust,
        &[],
        "manifest-signature-invalid",
        &["CN=Leaf"],
    );
    // --x5chain whose first certificate is not the signing key's is refused at export.
    let (code, _, err) = fwscan(&[
        "export",
        p(&img),
        "--format",
        "corim",
        "--key",
        p(&pki.path("Leaf.key")),
        "-o",
        p(&dir.join("x.corim")),
        "--x5chain",
        p(&pki.chain("backwards", &["Inter", "Leaf"])),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("leaf first"), "{err}");
}

/// An unsigned FMP capsule of `payload` by EDK2's `GenerateCapsule.py` whose payload header carries
/// LowestSupportedVersion `lsv` (the node's `lowest-supported-version`, a CoRIM svn); `None` (skipped)
/// without edk2-basetools.
fn capsule_with_lsv(dir: &Path, payload: &Path, lsv: u32) -> Option<PathBuf> {
    crate::packages::edk2_basetools()?;
    let out = dir.join(format!("lsv{lsv}.cap"));
    let lsv = lsv.to_string();
    crate::packages::run(
        dir,
        "python3",
        &[
            "-m",
            "edk2basetools.Capsule.GenerateCapsule",
            "--encode",
            "--guid",
            crate::packages::FW_GUID,
            "--fw-version",
            "5",
            "--lsv",
            &lsv,
            "-o",
            p(&out),
            p(payload),
        ],
    );
    Some(out)
}

fn policy_with_rule(dir: &Path, pem: &str, rule: Value) -> PathBuf {
    let doc = serde_json::json!({"schema_version": 1, "keys": [],
        "vendor_keys": [{"id": "corim-signer", "type": "cose", "pem": pem}],
        "rules": [rule]});
    let schema: Value =
        serde_json::from_str(include_str!("../schemas/trust-policy-v1.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&doc), "{doc}");
    let mut wrong = doc.clone();
    wrong["rules"][0]["anti_rollback"] = "sequence".into();
    assert!(!validator.is_valid(&wrong));
    let path = dir.join("trust.json");
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    path
}

/// svn anti-rollback as the policy says (`anti_rollback`: `tag-version`, `svn`, `both`), and a dump's
/// svn against the CoRIM's: a capsule whose LowestSupportedVersion went down is `svn-rollback`.
#[test]
fn svn_anti_rollback_follows_the_policy_and_a_lower_dump_svn_is_a_finding() {
    let dir = scratch("svn");
    let payload = dir.join("payload.bin");
    std::fs::write(&payload, crate::support::testdata::core_image()).unwrap();
    let Some(cap2) = capsule_with_lsv(&dir, &payload, 2) else {
        assert!(!under_ci(), "cross-check did not run under CI");
        return;
    };
    let cap1 = capsule_with_lsv(&dir, &payload, 1).unwrap();
    let cap3 = capsule_with_lsv(&dir, &payload, 3).unwrap();
    let (key, pub_pem) = p256_key(&dir, 21);
    let corim = |cap: &Path, name: &str, seq: &str| -> PathBuf {
        let out = dir.join(format!("{name}.corim"));
        // The capsule is unsigned: its signature is not what this test is about.
        export(cap, &key, &out, &["--sequence", seq, "--insecure-unsigned"]);
        out
    };
    // svn 2 at sequence 1; svn 1 at sequence 2 (a newer tag that lowers the svn); svn 3 at sequence 0.
    let c2 = corim(&cap2, "svn2", "1");
    let c1 = corim(&cap1, "svn1", "2");
    let c3 = corim(&cap3, "svn3", "0");
    let dec = fwscan::manifest::corim::decode(&std::fs::read(&c2).unwrap()).unwrap();
    assert!(
        dec.measurements().any(|(_, m)| m.svn == Some(2)),
        "the export carries the capsule's lowest-supported-version as svn"
    );
    let run = |mode: &str, order: &[&Path]| -> Vec<(i32, String)> {
        let d = dir.join(mode);
        std::fs::create_dir_all(&d).unwrap();
        let _ = std::fs::remove_file(d.join("state.json"));
        let trust = policy_with_rule(
            &d,
            &pub_pem,
            serde_json::json!({"product": "OVMF-X64", "anti_rollback": mode}),
        );
        let state = d.join("state.json");
        order
            .iter()
            .map(|c| {
                let (code, out, err) =
                    fwscan(&["verify", p(c), "--trust", p(&trust), "--state", p(&state)]);
                (code, format!("{out}{err}"))
            })
            .collect()
    };
    // tag-version (the default): the svn is not compared, the tag-version is.
    let r = run("tag-version", &[&c2, &c1, &c3]);
    assert_eq!(r[0].0, 0, "{}", r[0].1);
    assert_eq!(r[1].0, 0, "svn lowered, tag-version raised: {}", r[1].1);
    assert_eq!(r[2].0, 2, "{}", r[2].1);
    assert!(
        r[2].1.contains("manifest-rollback") && r[2].1.contains("sequence 0"),
        "{}",
        r[2].1
    );
    // svn: the lowered svn is refused, the lowered tag-version is not.
    let r = run("svn", &[&c2, &c1, &c3]);
    assert_eq!(r[0].0, 0, "{}", r[0].1);
    assert_eq!(r[1].0, 2, "{}", r[1].1);
    assert!(
        r[1].1.contains("manifest-rollback") && r[1].1.contains("svn 1 is below svn 2"),
        "{}",
        r[1].1
    );
    assert_eq!(r[2].0, 0, "tag-version lowered, svn raised: {}", r[2].1);
    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.join("svn/state.json")).unwrap()).unwrap();
    assert_eq!(state["svns"][0]["svn"], 3, "{state}");
    // both: each refuses.
    let r = run("both", &[&c2, &c1]);
    assert_eq!((r[0].0, r[1].0), (0, 2), "{r:?}");
    let r = run("both", &[&c2, &c3]);
    assert_eq!(r[1].0, 2, "{}", r[1].1);
    assert!(r[1].1.contains("sequence"), "{}", r[1].1);

    // The dump's svn against the CoRIM's (exact): lower is svn-rollback, higher svn-mismatch.
    let trust = policy(&dir, &pub_pem, None);
    let t = ["--trust", p(&trust)];
    let (code, r, err) = scan_json(&cap2, &c2, &t);
    assert_eq!(code, 0, "{} {err}", r["findings"]);
    let (code, r, _) = scan_json(&cap1, &c2, &t);
    assert_eq!(code, 1);
    let f = crate::harness::code_path_messages(&r);
    assert!(
        f.iter()
            .any(|(c, _, m)| c == "svn-rollback"
                && m.contains("lowest-supported-version 1 is below")),
        "{f:?}"
    );
    let (code, r, _) = scan_json(&cap3, &c2, &t);
    assert_eq!(code, 1);
    let f = code_paths(&r);
    assert!(f.iter().any(|(c, _)| c == "svn-mismatch"), "{f:?}");
    assert!(!f.iter().any(|(c, _)| c == "svn-rollback"), "{f:?}");
}

/// `export --hash-envelope`: a COSE hash envelope signing the SHA-256 of the unsigned CoRIM beside it;
/// `scan` reads the preimage, checks its digest, then compares as usual. A flipped preimage byte, a
/// location outside the envelope's directory and a missing preimage are refused (exit 2).
#[test]
fn hash_envelope_export_scans_clean_and_a_modified_preimage_is_refused() {
    let (dir, img, key, pub_pem) = core_setup("envelope", 13);
    let env = dir.join("core.corim");
    export(&img, &key, &env, &["--hash-envelope"]);
    let pre = dir.join("core.corim.payload.cbor");
    let pre_bytes = std::fs::read(&pre).unwrap();
    assert_eq!(
        &pre_bytes[..3],
        &[0xd9, 0x01, 0xf5],
        "an unsigned #6.501 CoRIM"
    );
    let trust = policy(&dir, &pub_pem, None);
    let t = ["--trust", p(&trust)];
    let (code, r, err) = scan_json(&img, &env, &t);
    assert_eq!(code, 0, "{} {err}", r["findings"]);
    // The envelope's payload is the preimage's SHA-256, under the labels of the draft.
    use fwscan::manifest::corim::cbor;
    use sha2::Digest as _;
    let top = cbor::decode(&std::fs::read(&env).unwrap()).unwrap();
    let a = top.as_tag().unwrap().1.as_array().unwrap().to_vec();
    let prot = cbor::decode(a[0].as_bytes().unwrap()).unwrap();
    assert_eq!(prot.get(258).and_then(|v| v.as_int()), Some(-16));
    assert_eq!(
        prot.get(259).and_then(|v| v.as_text()),
        Some("application/rim+cbor")
    );
    assert_eq!(
        prot.get(260).and_then(|v| v.as_text()),
        Some("core.corim.payload.cbor")
    );
    assert_eq!(
        a[2].as_bytes().unwrap(),
        sha2::Sha256::digest(&pre_bytes).as_slice()
    );
    // A patched image against it: findings as usual.
    let mut bad = crate::support::testdata::core_image();
    let n = bad.len() / 2;
    bad[n] ^= 0x40;
    let patched = dir.join("patched.bin");
    std::fs::write(&patched, &bad).unwrap();
    assert_eq!(scan_json(&patched, &env, &t).0, 1);
    // One flipped byte of the preimage.
    let mut flipped = pre_bytes.clone();
    let i = flipped.len() - 10;
    flipped[i] ^= 1;
    std::fs::write(&pre, &flipped).unwrap();
    let (code, out, err) = fwscan(&["scan", p(&img), "--manifest", p(&env), "--trust", p(&trust)]);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("manifest-signature-invalid") && err.contains("modified after signing"),
        "{err}"
    );
    // Even with verification waived, the digest is checked before anything is decoded.
    let (code, _, err) = fwscan(&[
        "scan",
        p(&img),
        "--manifest",
        p(&env),
        "--insecure-unsigned",
    ]);
    assert_eq!(code, 2, "{err}");
    std::fs::remove_file(&pre).unwrap();
    let (code, _, err) = fwscan(&["scan", p(&img), "--manifest", p(&env), "--trust", p(&trust)]);
    assert_eq!(code, 2);
    assert!(err.contains("preimage"), "{err}");
    // A location that leaves the envelope's directory is refused, even re-signed by the trusted key.
    use fwscan::manifest::corim::cose;
    let mut m = prot.as_map().unwrap().to_vec();
    for (k, v) in m.iter_mut() {
        if k.as_int() == Some(260) {
            *v = cbor::Value::text("../core.corim.payload.cbor");
        }
    }
    let k = cose::SigningKey::from_pem(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let forged = cose::sign1(&cbor::Value::Map(m), a[2].as_bytes().unwrap(), &k);
    let sub = dir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(dir.join("core.corim.payload.cbor"), &pre_bytes).unwrap();
    let f = sub.join("escape.corim");
    std::fs::write(&f, forged).unwrap();
    let (code, _, err) = fwscan(&["scan", p(&img), "--manifest", p(&f), "--trust", p(&trust)]);
    assert_eq!(code, 2);
    assert!(err.contains("not a file name beside the envelope"), "{err}");
}

// ---------------------------------------------------------------------------------------------------
// Another producer's CoRIM (issue 24, item 2): reference values located in the dump by their keys.

use fwscan::manifest::corim::cbor::{self as cbor_, Value as Cv};

const OTHER_PROFILE: &str = "tag:example.com,2026:firmware-profile";

fn map_get_mut(m: &mut Cv, k: i128) -> &mut Cv {
    let Cv::Map(entries) = m else {
        panic!("not a map: {m:?}")
    };
    &mut entries
        .iter_mut()
        .find(|(key, _)| key.as_int() == Some(k))
        .unwrap_or_else(|| panic!("no key {k}"))
        .1
}

/// fwscan's own export of `corim` turned into another producer's CoRIM: another profile URI, no embedded
/// baseline in the protected header, its reference triples (`[{0: mkey, 1: mval}]`) edited by `edit`, and
/// re-signed with `key` (the same trusted key).
fn foreign_corim(corim: &Path, key: &Path, out: &Path, edit: impl FnOnce(&mut Vec<Cv>)) {
    use fwscan::manifest::corim::cose;
    let bytes = std::fs::read(corim).unwrap();
    let top = cbor_::decode(&bytes).unwrap();
    let (_, msg) = top.as_tag().unwrap();
    let a = msg.as_array().unwrap();
    let Cv::Map(mut prot) = cbor_::decode(a[0].as_bytes().unwrap()).unwrap() else {
        panic!("protected header")
    };
    let before = prot.len();
    prot.retain(|(k, _)| k.as_int() != Some(fwscan::manifest::corim::BASELINE_LABEL.into()));
    assert_eq!(prot.len(), before - 1, "the export carries its baseline");
    let payload = cbor_::decode(a[2].as_bytes().unwrap()).unwrap();
    let (tag, body) = payload.as_tag().unwrap();
    let mut body = body.clone();
    *map_get_mut(&mut body, 3) = Cv::Tag(32, Box::new(Cv::text(OTHER_PROFILE)));
    let Cv::Array(tags) = map_get_mut(&mut body, 1) else {
        panic!("tags")
    };
    let Cv::Tag(506, comid_bytes) = &mut tags[0] else {
        panic!("CoMID tag")
    };
    let mut comid = cbor_::decode(comid_bytes.as_bytes().unwrap()).unwrap();
    let Cv::Array(triples) = map_get_mut(map_get_mut(&mut comid, 4), 0) else {
        panic!("reference triples")
    };
    let Cv::Array(triple) = &mut triples[0] else {
        panic!("triple")
    };
    let Cv::Array(measurements) = &mut triple[1] else {
        panic!("measurements")
    };
    edit(measurements);
    **comid_bytes = Cv::Bytes(cbor_::encode(&comid));
    let payload = cbor_::encode(&Cv::Tag(tag, Box::new(body)));
    let k = cose::SigningKey::from_pem(&std::fs::read_to_string(key).unwrap()).unwrap();
    std::fs::write(out, cose::sign1(&Cv::Map(prot), &payload, &k)).unwrap();
}

/// The `mkey` of a measurement as fwscan prints it (`/` the image, a path, or a GUID).
fn mkey_of(m: &Cv) -> String {
    match m.get(0) {
        Some(Cv::Text(t)) => t.clone(),
        Some(Cv::Tag(37, u)) => {
            fwscan::manifest::corim::uuid_text(&u.as_bytes().unwrap().try_into().unwrap())
        }
        other => panic!("mkey {other:?}"),
    }
}

/// A measurement `{0: mkey, 1: {2: [[1, sha-256]], 11: name}}`.
fn measurement(mkey: Cv, digest: &[u8], name: &str) -> Cv {
    Cv::Map(vec![
        (Cv::Uint(0), mkey),
        (
            Cv::Uint(1),
            Cv::Map(vec![
                (
                    Cv::Uint(2),
                    Cv::Array(vec![Cv::Array(vec![
                        Cv::Uint(1),
                        Cv::Bytes(digest.to_vec()),
                    ])]),
                ),
                (Cv::Uint(11), Cv::text(name)),
            ]),
        ),
    ])
}

/// The OVMF export, its trust policy, and the path and ancestors (paths, and GUIDs of enclosing files) of
/// the 10th DXE driver, from the baseline the export embeds.
struct Ovmf {
    dir: PathBuf,
    key: PathBuf,
    corim: PathBuf,
    trust: PathBuf,
    driver_guid: String,
    driver_path: String,
    /// mkeys of the driver's enclosing nodes (the image `/`, volumes by path, files by GUID or path).
    enclosing: Vec<String>,
}

fn ovmf_setup(name: &str) -> Option<Ovmf> {
    if !have_file(OVMF_CODE, "Debian: ovmf") {
        return None;
    }
    let dir = scratch(name);
    let (key, pub_pem) = p256_key(&dir, 7);
    let corim = dir.join("ovmf.corim");
    export(Path::new(OVMF_CODE), &key, &corim, &["--expires", "30d"]);
    // Another producer's CoRIM names a model and no component: the key is scoped to that model (here the
    // export's `PRODUCT/COMPONENT`) as well as to the fwscan profile's product.
    let trust = policy(&dir, &pub_pem, Some(&["OVMF-*", "OVMF-X64/bios"]));
    let (_, driver_guid, _) = crate::uefi::patch_dxe_driver(&std::fs::read(OVMF_CODE).unwrap(), 10);
    // The export's own baseline: where the driver is, and which pinned nodes enclose it.
    let c = fwscan::manifest::corim::decode(&std::fs::read(&corim).unwrap()).unwrap();
    let m: Value = serde_json::from_slice(c.baseline.as_ref().unwrap()).unwrap();
    let mut nodes = Vec::new();
    fn walk<'a>(n: &'a Value, out: &mut Vec<&'a Value>) {
        out.push(n);
        for c in n["children"].as_array().into_iter().flatten() {
            walk(c, out);
        }
    }
    walk(&m["root"], &mut nodes);
    let keys: std::collections::HashSet<String> = c
        .measurements()
        .filter_map(|(_, x)| x.mkey.as_ref().map(|k| k.to_string()))
        .collect();
    let drv = nodes
        .iter()
        .find(|n| n["kind"] == "file" && n["attrs"]["guid"] == driver_guid.as_str())
        .expect("the driver is in the baseline");
    let driver_path = drv["path"].as_str().unwrap().to_string();
    let mut enclosing = Vec::new();
    for n in &nodes {
        let path = n["path"].as_str().unwrap();
        let encloses = path.is_empty() || driver_path.starts_with(&format!("{path}/"));
        if !encloses {
            continue;
        }
        let by_path = if path.is_empty() { "/" } else { path }.to_string();
        if keys.contains(&by_path) {
            enclosing.push(by_path);
        }
        if let Some(g) = n["attrs"]["guid"].as_str() {
            if n["kind"] == "file" && keys.contains(g) {
                enclosing.push(g.to_string());
            }
        }
    }
    assert!(enclosing.contains(&"/".to_string()), "{enclosing:?}");
    Some(Ovmf {
        dir,
        key,
        corim,
        trust,
        driver_guid,
        driver_path,
        enclosing,
    })
}

impl Ovmf {
    /// Another producer's CoRIM made from this export (`foreign_corim`), as `DIR/name`.
    fn foreign(&self, name: &str, edit: impl FnOnce(&mut Vec<Cv>)) -> PathBuf {
        let f = self.dir.join(name);
        foreign_corim(&self.corim, &self.key, &f, edit);
        f
    }

    /// `scan --format json` of `img` against `corim` under this fixture's trust policy.
    fn scan(&self, img: &Path, corim: &Path) -> (i32, Value, String) {
        scan_json(img, corim, &["--trust", p(&self.trust)])
    }
}

#[test]
fn foreign_corim_with_every_value_scans_as_the_fwscan_profile_does() {
    let Some(o) = ovmf_setup("foreign-all") else {
        return;
    };
    let t = ["--trust", p(&o.trust)];
    let f = o.foreign("foreign.corim", |_| {});
    let c = fwscan::manifest::corim::decode(&std::fs::read(&f).unwrap()).unwrap();
    assert_eq!(c.profile.as_deref(), Some(OTHER_PROFILE));
    assert!(c.baseline.is_none());
    let (want, _, _) = scan_json(Path::new(OVMF_CODE), &o.corim, &t);
    let (code, r, err) = scan_json(Path::new(OVMF_CODE), &f, &t);
    assert_eq!(want, 0);
    assert_eq!(code, want, "{} {err}", r["findings"]);
    assert_eq!(r["verdict"], "clean", "{r}");
    assert_eq!(
        r["manifest"]["trust"]["verified"], true,
        "{}",
        r["manifest"]
    );
    assert_eq!(r["manifest"]["product"]["product"], "OVMF-X64/bios");
    // Signed by an untrusted key: refused before anything is compared.
    let (_, other_pem) = p256_key(&o.dir, 8);
    let other = o.dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let wrong = policy(&other, &other_pem, None);
    let (code, _, err) = fwscan(&["scan", OVMF_CODE, "--manifest", p(&f), "--trust", p(&wrong)]);
    assert_eq!(code, 2);
    assert!(err.contains("manifest-signature-invalid"), "{err}");
    // Given with another manifest: refused (it is compared alone).
    let (code, _, err) = fwscan(&[
        "scan",
        OVMF_CODE,
        "--manifest",
        p(&f),
        "--manifest",
        p(&o.corim),
        "--trust",
        p(&o.trust),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("compared alone"), "{err}");
}

#[test]
fn foreign_corim_without_a_drivers_values_names_it_not_covered() {
    let Some(o) = ovmf_setup("foreign-drop") else {
        return;
    };
    let mut dropped = Vec::new();
    let f = o.foreign("dropped.corim", |ms| {
        ms.retain(|m| {
            let k = mkey_of(m);
            let drop = k == o.driver_guid
                || k == o.driver_path
                || k.starts_with(&format!("{}/", o.driver_path))
                || o.enclosing.contains(&k);
            if drop {
                dropped.push(k);
            }
            !drop
        })
    });
    assert!(dropped.contains(&o.driver_guid), "{dropped:?}");
    let (code, r, err) = o.scan(Path::new(OVMF_CODE), &f);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        code_paths(&r),
        vec![("not-covered".to_string(), o.driver_path.clone())],
        "dropped {dropped:?}"
    );
    // Only the driver's own value dropped: the values of its sections, and of the volume and image around
    // it, still account for it.
    let only = o.foreign("only-driver.corim", |ms| {
        ms.retain(|m| mkey_of(m) != o.driver_guid)
    });
    let (code, r, err) = o.scan(Path::new(OVMF_CODE), &only);
    assert_eq!(code, 0, "{} {err}", r["findings"]);
}

#[test]
fn foreign_corim_value_for_an_absent_guid_is_reference_missing() {
    let Some(o) = ovmf_setup("foreign-extra") else {
        return;
    };
    let guid = "0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F0";
    let u = hex::decode(guid.replace('-', "")).unwrap();
    let f = o.foreign("extra.corim", |ms| {
        ms.push(measurement(
            Cv::Tag(37, Box::new(Cv::Bytes(u))),
            &[0x11; 32],
            "VendorOnlyDxe",
        ))
    });
    let (code, r, err) = o.scan(Path::new(OVMF_CODE), &f);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        code_paths(&r),
        vec![("reference-missing".to_string(), guid.to_string())]
    );
    let msg = r["findings"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("VendorOnlyDxe") && msg.contains("no UEFI FFS file"),
        "{msg}"
    );
    // SARIF and JUnit carry the new code like any other.
    let report = |format: &str| {
        let args = [
            "scan",
            OVMF_CODE,
            "--manifest",
            p(&f),
            "--trust",
            p(&o.trust),
            "--format",
            format,
        ];
        let (code, out, err) = fwscan(&args);
        assert_eq!(code, 1, "{format}: {err}");
        out
    };
    let s: Value = serde_json::from_str(&report("sarif")).unwrap();
    assert_eq!(
        s["runs"][0]["results"][0]["ruleId"], "reference-missing",
        "{s}"
    );
    let junit = report("junit");
    assert!(junit.contains("reference-missing"), "{junit}");
}

#[test]
fn foreign_corim_names_a_patched_dxe_driver_as_module_modified() {
    let Some(o) = ovmf_setup("foreign-patch") else {
        return;
    };
    let f = o.foreign("foreign.corim", |_| {});
    let (patched, guid, _) = crate::uefi::patch_dxe_driver(&std::fs::read(OVMF_CODE).unwrap(), 10);
    let img = o.dir.join("patched.fd");
    std::fs::write(&img, &patched).unwrap();
    let (code, r, err) = o.scan(&img, &f);
    assert_eq!(code, 1, "{err}");
    // The deepest value that differs: the driver, not the volumes and image around it.
    assert_eq!(
        code_paths(&r),
        vec![("module-modified".to_string(), o.driver_path.clone())],
        "{}",
        r["findings"]
    );
    let f0 = &r["findings"][0];
    assert!(f0["path"].as_str().unwrap().contains(&guid));
    assert_ne!(f0["expected_digest"], f0["actual_digest"]);
    // The same finding code and path as a scan against the fwscan-profile export.
    let (code, r2, _) = o.scan(&img, &o.corim);
    assert_eq!(code, 1);
    assert!(
        code_paths(&r2).contains(&code_paths(&r)[0]),
        "{:?}",
        code_paths(&r2)
    );
}

#[test]
fn foreign_corim_value_with_an_unlocatable_key_is_never_clean() {
    let Some(o) = ovmf_setup("foreign-uint") else {
        return;
    };
    let f = o.foreign("uint.corim", |ms| {
        ms.push(measurement(Cv::Uint(7), &[0x22; 32], "register 7"))
    });
    let (code, r, err) = o.scan(Path::new(OVMF_CODE), &f);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        code_paths(&r),
        vec![("reference-missing".to_string(), "7".to_string())]
    );
    let msg = r["findings"][0]["message"].as_str().unwrap();
    assert!(msg.contains("integer mkey"), "{msg}");
}

#[test]
fn diff_of_corims_by_reference_value() {
    let Some(o) = ovmf_setup("foreign-diff") else {
        return;
    };
    let a = o.foreign("a.corim", |_| {});
    let b = o.foreign("b.corim", |_| {});
    let (code, out, err) = fwscan(&["diff", p(&a), p(&b)]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("no differences"), "{out}");
    // One value's digest changed.
    let guid = o.driver_guid.clone();
    let c = o.foreign("c.corim", |ms| {
        let m = ms.iter_mut().find(|m| mkey_of(m) == guid).unwrap();
        let Cv::Array(ds) = map_get_mut(map_get_mut(m, 1), 2) else {
            panic!("digests")
        };
        let Cv::Array(d) = &mut ds[0] else { panic!() };
        let Cv::Bytes(bytes) = &mut d[1] else {
            panic!()
        };
        bytes[0] ^= 0xFF;
    });
    let (code, out, err) = fwscan(&["diff", p(&a), p(&c), "--format", "json"]);
    assert_eq!(code, 1, "{out} {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{out}");
    assert_eq!(changes[0]["path"], guid.as_str());
    assert_eq!(changes[0]["code"], "module-modified");
    assert_eq!(changes[0]["change"], "modified");
    assert!(changes[0]["message"].as_str().unwrap().contains("digests"));
    // --allow globs keep working on the key.
    let (code, out, _) = fwscan(&["diff", p(&a), p(&c), "--allow", &format!("{}*", &guid[..8])]);
    assert_eq!(code, 0, "{out}");
    // A removed value, and a fwscan-profile CoRIM (through its baseline) against itself.
    let (code, out, _) = fwscan(&["diff", p(&c), p(&a)]);
    assert_eq!(code, 1, "{out}");
    let d = o.foreign("d.corim", |ms| ms.retain(|m| mkey_of(m) != guid));
    let (code, out, _) = fwscan(&["diff", p(&a), p(&d), "--format", "json"]);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["changes"][0]["code"], "module-removed", "{out}");
    let (code, out, err) = fwscan(&["diff", p(&o.corim), p(&o.corim)]);
    assert_eq!(code, 0, "{out} {err}");
    // Another producer's CoRIM against the image it was made from: by key, nothing differs.
    let (code, out, err) = fwscan(&["diff", p(&a), OVMF_CODE]);
    assert_eq!(code, 0, "{out} {err}");
}
