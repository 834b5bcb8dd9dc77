//! ASPEED root of trust (issue 21, point 3): the boot ROM's check of an AST2600/AST10x0 boot image repeated
//! against an OTP image, on the six reference pairs of ASPEED's socsec test suite in
//! `../shared/fixtures/aspeed-socsec/`, with `socsec verify` (ASPEED's own tool, installed by `.ci/run`
//! from `../shared/tools/socsec`) as the oracle case by case: every pairing of image and OTP, one changed
//! byte inside and one outside the signed region, a retired key, an OTP given by the trust policy, and the
//! first partition of a BMC flash.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use sha2::Digest;

use crate::harness::{self, fixture, have_tool};
use crate::support::bmc as b;

/// The reference pairs: directory → (bl1.signed.bin, otp-all.image).
const PAIRS: [&str; 6] = [
    "1030-a1_modeecdsa",
    "2600-a1_mode2-rsa2048-sha256",
    "2600-a1_mode2-rsa3072-sha384_cot-rsa2048-sha256",
    "2600-a1_mode2-rsa4096-sha512",
    "2600-a1_mode2-rsa4096-sha512_cot-rsa4096-sha512",
    "2600-a1_mode2aes1-rsa4096-sha512",
];

/// `(image, otp)` of every pair, or `None` after a skip (missing fixtures or `socsec`).
fn pairs() -> Option<Vec<(PathBuf, PathBuf)>> {
    if !have_tool(
        "socsec",
        "ASPEED socsec: pip install --no-deps ../shared/tools/socsec (see .ci/run)",
    ) {
        return None;
    }
    PAIRS
        .iter()
        .map(|d| {
            Some((
                fixture(&format!("aspeed-socsec/{d}/bl1.signed.bin"))?,
                fixture(&format!("aspeed-socsec/{d}/otp-all.image"))?,
            ))
        })
        .collect()
}

/// Whether `socsec verify` accepts the image with the OTP image.
fn socsec_ok(image: &Path, otp: &Path) -> bool {
    Command::new("socsec")
        .arg("verify")
        .arg("--sec_image")
        .arg(image)
        .arg("--otp_image")
        .arg(otp)
        .output()
        .expect("run socsec")
        .status
        .success()
}

/// What fwscan says: exit code of `check`, its finding codes, and the `aspeed-rot` evidence of `inspect`.
struct Verdict {
    exit: i32,
    codes: Vec<String>,
    evidence: Value,
}

fn fwscan_verdict(image: &Path, extra: &[&str]) -> Verdict {
    let (exit, codes, ev) = harness::check_and_evidence(image, extra, "aspeed-rot");
    assert_eq!(ev.len(), 1, "one aspeed-rot evidence: {ev:?}");
    Verdict {
        exit,
        codes,
        evidence: ev[0].clone(),
    }
}

fn verdict(image: &Path, otp: &Path) -> Verdict {
    fwscan_verdict(image, &["--aspeed-otp", otp.to_str().unwrap()])
}

/// The findings of a refused boot image.
const ROT_CODES: [&str; 3] = [
    "bmc-rot-signature-invalid",
    "bmc-rot-key-retired",
    "vendor-untrusted",
];

/// fwscan and socsec agree: valid evidence and a clean exit exactly when socsec verifies; otherwise exit
/// 1 with one RoT finding.
#[track_caller]
fn agree(v: &Verdict, socsec: bool, what: &str) {
    assert_eq!(
        v.evidence["status"] == "valid",
        socsec,
        "{what}: fwscan {:?} vs socsec {socsec}",
        v.evidence
    );
    if socsec {
        assert_eq!((v.exit, v.codes.len()), (0, 0), "{what}: {:?}", v.codes);
    } else {
        assert_eq!(v.exit, 1, "{what}");
        let rot: Vec<&String> = v
            .codes
            .iter()
            .filter(|c| ROT_CODES.contains(&c.as_str()))
            .collect();
        assert_eq!(rot.len(), 1, "{what}: {:?}", v.codes);
    }
}

/// Every pair verifies; every pairing of an image with another board's OTP image is refused, and socsec
/// agrees on all 36 pairings.
#[test]
fn every_pair_verifies_and_socsec_agrees_on_every_pairing() {
    let Some(pairs) = pairs() else { return };
    let mut seen = Vec::new();
    for (i, (img, _)) in pairs.iter().enumerate() {
        for (j, (_, otp)) in pairs.iter().enumerate() {
            let what = format!("{} with the OTP of {}", PAIRS[i], PAIRS[j]);
            let v = verdict(img, otp);
            let ok = socsec_ok(img, otp);
            agree(&v, ok, &what);
            if i == j {
                assert!(ok, "{what}: socsec refuses its own reference pair");
                assert_eq!(v.evidence["trust"], "anchored", "{what}");
                assert!(
                    v.evidence["signer"].as_str().unwrap().starts_with("key "),
                    "{what}"
                );
            }
            seen.extend(v.codes);
        }
    }
    // Another board's OTP: refused both as an unknown signer (RSA keys of the same SoC) and as a
    // mismatching configuration (another SoC, an encrypting mode).
    for code in ["vendor-untrusted", "bmc-rot-signature-invalid"] {
        assert!(
            seen.iter().any(|c| c == code),
            "{code} never seen: {seen:?}"
        );
    }
}

/// `(header offset, signed size, signature offset, aes data offset)` of a reference image.
fn header(img: &[u8]) -> (usize, usize, usize, usize) {
    for at in [0x20usize, 0x400] {
        let w = |i: usize| u32::from_le_bytes(img[at + 4 * i..at + 4 * i + 4].try_into().unwrap());
        if w(2) != 0 && (0..8).fold(0u32, |a, i| a.wrapping_add(w(i))) == 0 {
            return (at, w(2) as usize, w(3) as usize, w(0) as usize);
        }
    }
    panic!("no RoT header");
}

/// One changed byte inside the signed region is caught (socsec refuses it too); one outside the signed
/// region and the signature (after the signature, or in the unsigned AES IV) is not (socsec accepts it).
#[test]
fn a_changed_signed_byte_is_caught_and_an_unsigned_one_is_not() {
    let Some(pairs) = pairs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut outside_cases = 0;
    for (k, (img, otp)) in pairs.iter().enumerate() {
        let bytes = std::fs::read(img).unwrap();
        let (at, size, sig, aes) = header(&bytes);
        let o = fwscan::formats::bmc::aspeed::otp::parse(&std::fs::read(otp).unwrap()).unwrap();
        let sig_len = match o.mode {
            fwscan::formats::bmc::aspeed::otp::Mode::Ecdsa { .. } => 96,
            _ => o.rsa_bytes,
        };
        // Inside: a code byte after the header, and the header's own first byte.
        for pos in [size / 2, at] {
            let mut t = bytes.clone();
            t[pos] ^= 0x01;
            let p = dir.path().join(format!("in-{k}-{pos:x}.bin"));
            std::fs::write(&p, &t).unwrap();
            let v = verdict(&p, otp);
            let what = format!("{} byte {pos:#x} changed", PAIRS[k]);
            agree(&v, socsec_ok(&p, otp), &what);
            assert!(
                v.codes.contains(&"bmc-rot-signature-invalid".to_string()),
                "{what}: {:?}",
                v.codes
            );
        }
        // Outside: after the signature, and the AES IV (not signed: the ROM decrypts with it).
        let mut outside: Vec<usize> = (sig + sig_len..bytes.len()).step_by(0x40).take(1).collect();
        if aes != 0 && aes >= size && aes < sig {
            outside.push(aes + 5);
        }
        for pos in outside {
            let mut t = bytes.clone();
            t[pos] ^= 0x01;
            let p = dir.path().join(format!("out-{k}-{pos:x}.bin"));
            std::fs::write(&p, &t).unwrap();
            let v = verdict(&p, otp);
            let what = format!("{} byte {pos:#x} (outside) changed", PAIRS[k]);
            assert!(socsec_ok(&p, otp), "{what}: socsec");
            agree(&v, true, &what);
            outside_cases += 1;
        }
    }
    assert!(outside_cases >= 3, "{outside_cases} outside cases");
}

/// The same OTP image with the signing key retired (config word 4) and its SHA-384 recomputed: refused as
/// `bmc-rot-key-retired`, and by socsec.
#[test]
fn a_retired_key_is_refused() {
    let Some(pairs) = pairs() else { return };
    let (img, otp) = &pairs[1];
    let mut o = std::fs::read(otp).unwrap();
    let w = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let image_size = (w(&o, 16) & 0xFFFF) as usize;
    let conf = (w(&o, 24) & 0xFFFF) as usize;
    let checksum = w(&o, 36) as usize;
    assert_eq!(w(&o, 16) & (1 << 27), 0, "a masked (non-dump) OTP image");
    // Key 0 signed the reference image (fwscan names it, checked in the pairing test).
    o[conf + 16] |= 1; // config word 4, bit 0: key 0 retired
    o[conf + 64 + 16] &= !1; // and programmed (mask bit clear)
    let digest = sha2::Sha384::digest(&o[..image_size]);
    o[checksum..checksum + 48].copy_from_slice(&digest);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("otp-retired.image");
    std::fs::write(&p, &o).unwrap();
    let v = verdict(img, &p);
    assert!(!socsec_ok(img, &p), "socsec accepts a retired key");
    agree(&v, false, "retired key 0");
    assert_eq!(v.codes, ["bmc-rot-key-retired"]);
    // An OTP image whose checksum no longer matches is refused before anything is verified.
    o[conf + 16] ^= 2;
    std::fs::write(&p, &o).unwrap();
    let (code, _, err) = harness::run(&[
        "check",
        img.to_str().unwrap(),
        "--aspeed-otp",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("checksum"), "{err}");
}

/// Without an OTP image the boot image is laid out and its check named as not verified (no finding, no
/// pass); an OTP image in the trust policy (`aspeed-otp`, base64, checked against the JSON Schema) is
/// used like `--aspeed-otp`.
#[test]
fn the_otp_may_come_from_the_trust_policy_and_without_one_nothing_is_claimed() {
    let Some(pairs) = pairs() else { return };
    let (img, otp) = &pairs[2];
    let v = fwscan_verdict(img, &[]);
    assert_eq!(v.evidence["status"], "not-verified", "{:?}", v.evidence);
    assert!(v.codes.is_empty(), "{:?}", v.codes);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(otp).unwrap());
    let policy = json!({"schema_version": 1, "keys": [], "vendor_keys": [
        {"id": "board-a", "type": "aspeed-otp", "otp": b64}]});
    let schema: Value =
        serde_json::from_str(include_str!("../schemas/trust-policy-v1.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&policy));
    assert!(
        !validator.is_valid(&json!({"schema_version": 1, "keys": [], "vendor_keys": [
        {"id": "board-a", "type": "aspeed-otp", "pem": "x"}]}))
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("trust.json");
    std::fs::write(&p, policy.to_string()).unwrap();
    let (code, out, err) = harness::run(&[
        "inspect",
        img.to_str().unwrap(),
        "--trust",
        p.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let ev = harness::evidence_of(&serde_json::from_str(&out).unwrap(), "aspeed-rot");
    assert_eq!(ev[0]["status"], "valid", "{ev:?}");
    assert_eq!(ev[0]["key"], "aspeed-otp:board-a");
    // CoT info of BL1 (socsec --cot_algorithm RSA2048_SHA256) is reported.
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["root"]["attrs"]["cot-algorithm"], "RSA2048_SHA256");
}

/// The first partition of a BMC flash is where the SoC boots: a 32 MiB OpenBMC flash whose `u-boot`
/// partition holds the signed SPL (then U-Boot proper at 64 KiB) verifies there; a flash whose SPL was
/// replaced by an unsigned one (no RoT header) is refused when an OTP image is given.
#[test]
fn the_first_partition_of_a_bmc_flash_is_checked() {
    let Some(pairs) = pairs() else { return };
    if !b::available() {
        return;
    }
    let (img, otp) = &pairs[1];
    let dir = b::scratch("aspeed-rot");
    let mut p = b::build(&dir, b::LAYOUT_32, b::UBOOT_32, true);
    let spl = std::fs::read(img).unwrap();
    let mut part = spl.clone();
    part.resize(0x10000, 0xFF);
    part.extend_from_slice(&p.uboot);
    p.uboot = part.clone();
    let flash = dir.join("flash.bin");
    std::fs::write(&flash, p.image(b::LAYOUT_32)).unwrap();
    let v = verdict(&flash, otp);
    agree(&v, true, "signed SPL in the u-boot partition");
    let (_, out, _) = harness::run(&["inspect", flash.to_str().unwrap(), "--format", "json"]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let uboot = &doc["root"]["children"][0];
    assert_eq!(uboot["attrs"]["format"], "aspeed-rot", "{}", uboot["attrs"]);
    let names: Vec<&str> = uboot["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"signed") && names.contains(&"next-stage"),
        "{names:?}"
    );
    // The SPL replaced by bytes without a RoT header: with the OTP, refused at the partition.
    part[..spl.len()].fill(0);
    p.uboot = part;
    std::fs::write(&flash, p.image(b::LAYOUT_32)).unwrap();
    let (code, out, _) = harness::run(&[
        "check",
        flash.to_str().unwrap(),
        "--aspeed-otp",
        otp.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(code, 1);
    assert!(
        harness::code_paths(&doc[0])
            .iter()
            .any(|(c, p)| c == "bmc-rot-signature-invalid" && p == "u-boot"),
        "{out}"
    );
}

/// AES-GCM (secure-boot mode 1), from a vector of socsec's suite committed under
/// `testdata/aspeed-socsec/` (provenance in its README): the tag verifies with the OTP's AES key; one
/// changed byte in the encrypted part and one in the authenticated header are refused; socsec agrees on
/// each.
#[test]
fn aes_gcm_images_are_checked_with_the_otp_aes_key() {
    if !have_tool(
        "socsec",
        "ASPEED socsec: pip install --no-deps ../shared/tools/socsec (see .ci/run)",
    ) {
        return;
    }
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/aspeed-socsec/2600-a1_modegcm");
    let (img, otp) = (d.join("bl1.signed.bin"), d.join("otp-all.image"));
    let v = verdict(&img, &otp);
    assert!(socsec_ok(&img, &otp));
    agree(&v, true, "GCM reference pair");
    assert!(v.evidence["signer"]
        .as_str()
        .unwrap()
        .contains("AES-256-GCM"));
    let bytes = std::fs::read(&img).unwrap();
    let (_, size, _, _) = header(&bytes);
    let dir = tempfile::tempdir().unwrap();
    for pos in [size / 2, 0x10] {
        let mut t = bytes.clone();
        t[pos] ^= 0x80;
        let p = dir.path().join(format!("gcm-{pos:x}.bin"));
        std::fs::write(&p, &t).unwrap();
        let v = verdict(&p, &otp);
        agree(&v, socsec_ok(&p, &otp), &format!("GCM byte {pos:#x}"));
        assert!(
            v.codes.contains(&"bmc-rot-signature-invalid".to_string()),
            "{:?}",
            v.codes
        );
    }
}
