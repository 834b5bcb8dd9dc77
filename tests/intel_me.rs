//! Intel ME / CSME / SPS regions (issue 12, point 5) and `inspect --coverage` (point 6), on real firmware:
//! `../shared/fixtures/intel/purley-sps-me-region.bin` (SPS 4, `$CPD`) and `lumpy-me8-region.bin` (ME 7.1 on
//! Cougar Point, `$MN2` + `$MME`), plus a full SPI image built here from a descriptor, the real SPS region
//! and Debian's OVMF. Cross-checked with `fwupdtool firmware-parse` (Debian fwupd) for the `$FPT` and `$CPD`
//! tables; signatures proved both ways with a key made by `openssl`.
//!
//! A missing fixture or tool prints `SKIPPED: why`, and fails under `CI=true` (the shared harness).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::inspect_json;
use crate::harness::{fwscan, have_tool, skip};
use crate::support::spi::descriptor;

/// A fixture's bytes, or `None` after a skip.
fn fixture(rel: &str) -> Option<Vec<u8>> {
    let p = crate::harness::fixture(rel)?;
    Some(std::fs::read(p).unwrap())
}

const SPS: &str = "intel/purley-sps-me-region.bin";
const ME8: &str = "intel/lumpy-me8-region.bin";

fn write(dir: &Path, name: &str, b: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, b).unwrap();
    p
}

/// `check IMAGE --format json`: (exit code, findings as (code, path, message)).
fn check(p: &Path) -> (i32, Vec<(String, String, String)>) {
    let out = fwscan()
        .args(["check", "--format", "json"])
        .arg(p)
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check JSON: {e}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut f = Vec::new();
    collect_findings(&doc, &mut f);
    (code, f)
}

fn collect_findings(v: &Value, out: &mut Vec<(String, String, String)>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(fs)) = m.get("findings") {
                for x in fs {
                    out.push((
                        x["code"].as_str().unwrap_or("").into(),
                        x["path"].as_str().unwrap_or("").into(),
                        x["message"].as_str().unwrap_or("").into(),
                    ));
                }
            }
            for (k, x) in m {
                if k != "findings" {
                    collect_findings(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_findings(x, out)),
        _ => {}
    }
}

/// Every node as (path, node).
fn nodes(v: &Value) -> Vec<(String, Value)> {
    fn walk(n: &Value, out: &mut Vec<(String, Value)>) {
        out.push((n["path"].as_str().unwrap_or("").to_string(), n.clone()));
        if let Some(Value::Array(c)) = n.get("children") {
            c.iter().for_each(|x| walk(x, out));
        }
    }
    let mut out = Vec::new();
    walk(&v["root"], &mut out);
    out
}

fn node<'a>(all: &'a [(String, Value)], path: &str) -> &'a Value {
    &all.iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| {
            panic!(
                "no node {path}; have {:?}",
                all.iter().map(|x| &x.0).collect::<Vec<_>>()
            )
        })
        .1
}

fn attr<'a>(n: &'a Value, k: &str) -> &'a str {
    n["attrs"][k].as_str().unwrap_or("")
}

/// The status of the node's evidence of `scheme` (`valid`, `invalid`, `not-verified`), `""` without one.
fn evidence<'a>(n: &'a Value, scheme: &str) -> &'a str {
    n["evidence"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["scheme"] == scheme))
        .and_then(|e| e["status"].as_str())
        .unwrap_or("")
}

/// The protection class a valid piece of the node's evidence gives it, `""` without one.
fn covered(n: &Value) -> &str {
    n["evidence"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|e| e["status"] == "valid" && e.get("protection").is_some())
        })
        .and_then(|e| e["protection"].as_str())
        .unwrap_or("")
}

fn u(n: &Value, k: &str) -> u64 {
    n[k].as_u64().unwrap()
}

#[test]
fn sps_region_partitions_manifest_and_modules_verified() {
    let Some(img) = fixture(SPS) else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "sps.bin", &img);
    let all = nodes(&inspect_json(&p));
    let fpt = node(&all, "fpt");
    assert_eq!(attr(fpt, "checksum"), "valid");
    let ftpr = node(&all, "FTPR");
    assert_eq!((u(ftpr, "offset"), u(ftpr, "size")), (0x31000, 0x40000));
    assert_eq!(attr(ftpr, "format"), "me-cpd");
    let man = node(&all, "FTPR/FTPR.man");
    assert_eq!(evidence(man, "me-manifest"), "valid");
    assert_eq!(attr(man, "public-key"), "intel-sps-4");
    assert_eq!(covered(man), "me-manifest");
    assert_eq!(
        attr(man, "public-key-sha256"),
        "3d512a6db7c855e9f6328db8b2c259a2c0f291bb6e3ec74a2fb811ad84c5d404"
    );
    for m in ["rbe.met", "manuf.met", "rbe", "manuf"] {
        let n = node(&all, &format!("FTPR/{m}"));
        assert_eq!(evidence(n, "me-module-hash"), "valid", "{m}");
        assert!(n
            .get("attrs")
            .is_none_or(|a| a.get("hash-status").is_none()));
        assert_eq!(covered(n), "me-manifest", "{m}");
    }
    assert_eq!(attr(node(&all, "MFS"), "partition-type"), "data");
    assert_eq!(node(&all, "MFS")["policy"], "mutable");
    let (code, f) = check(&p);
    assert_eq!((code, f), (0, vec![]));
}

#[test]
fn me8_region_manifests_and_lzma_modules_verified() {
    let Some(img) = fixture(ME8) else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "me8.bin", &img);
    let all = nodes(&inspect_json(&p));
    assert_eq!(attr(node(&all, "fpt"), "checksum"), "valid");
    for (part, mods) in [
        ("FTPR", &["UPDATE", "HOSTCOMM", "RSA", "CLS", "TDT"][..]),
        ("NFTP", &["MPC", "QST", "SESSMGR", "JOM", "Pavp", "ICC"][..]),
    ] {
        let man = node(&all, &format!("{part}/manifest"));
        assert_eq!(evidence(man, "me-manifest"), "valid", "{part}");
        assert_eq!(attr(man, "public-key"), "intel-me-7-8", "{part}");
        for m in mods {
            let n = node(&all, &format!("{part}/{m}"));
            assert_eq!(attr(n, "compression"), "lzma", "{m}");
            assert_eq!(evidence(n, "me-module-hash"), "valid", "{m}");
        }
    }
    let llut = node(&all, "FTPR/llut");
    assert_eq!(attr(llut, "modules"), "BUP,KERNEL,POLICY,FTCS");
    // Huffman: the hashes cover decompressed data, not verifiable offline; the area counts as the
    // verified manifest's (docs/intel-me.md).
    assert_eq!(evidence(llut, "me-module-hash"), "not-verified");
    assert_eq!(evidence(llut, "me-manifest"), "valid");
    assert_eq!(covered(llut), "me-manifest");
    assert_eq!(node(&all, "EFFS")["policy"], "mutable");
    let (code, f) = check(&p);
    assert_eq!((code, f), (0, vec![]));
}

/// A byte changed at `at` gives exactly the findings `want` (code, path suffix, message fragment).
fn tampered(img: &[u8], at: usize, want: &[(&str, &str, &str)]) {
    let mut b = img.to_vec();
    b[at] ^= 0x01;
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "t.bin", &b);
    let (code, f) = check(&p);
    assert_eq!(code, 1, "byte {at:#x}: {f:?}");
    assert_eq!(f.len(), want.len(), "byte {at:#x}: {f:?}");
    for (c, path, msg) in want {
        assert!(
            f.iter()
                .any(|(fc, fp, fm)| fc == c && fp.ends_with(path) && fm.contains(msg)),
            "byte {at:#x}: want {c} on {path} ({msg}); got {f:?}"
        );
    }
}

#[test]
fn sps_tampering_is_found() {
    let Some(img) = fixture(SPS) else { return };
    // Manifest header (version field) and an extension byte (partition-info hash): signed bytes.
    for at in [0x31088 + 0x24, 0x31088 + 0x284 + 0x20] {
        tampered(
            &img,
            at,
            &[("me-manifest-signature-invalid", "FTPR/FTPR.man", "")],
        );
    }
    // The signature itself.
    tampered(
        &img,
        0x31088 + 0x200,
        &[("me-manifest-signature-invalid", "FTPR/FTPR.man", "")],
    );
    // A module and a metadata file.
    tampered(
        &img,
        0x31570 + 0x1234,
        &[("me-module-hash-mismatch", "FTPR/rbe", "module rbe")],
    );
    tampered(
        &img,
        0x314f4 + 0x30,
        &[(
            "me-module-hash-mismatch",
            "FTPR/manuf.met",
            "metadata manuf.met",
        )],
    );
    // $FPT and $CPD header checksums.
    tampered(&img, 0x10 + 0x1C, &[("fpt-header-checksum", "fpt", "")]);
    tampered(
        &img,
        0x31000 + 0x0D,
        &[("cpd-header-checksum", "FTPR/cpd", "")],
    );
}

#[test]
fn me8_tampering_is_found() {
    let Some(img) = fixture(ME8) else { return };
    // SVN field of the FTPR manifest; a $MME entry (the hash of RSA) of the NFTP manifest.
    tampered(
        &img,
        0x37000 + 0x2C,
        &[("me-manifest-signature-invalid", "FTPR/manifest", "")],
    );
    tampered(
        &img,
        0xa1000 + 0x290 + 0x60 + 0x20,
        &[
            ("me-manifest-signature-invalid", "NFTP/manifest", ""),
            ("me-module-hash-mismatch", "NFTP/QST", "module QST"),
        ],
    );
    // Inside the LZMA stream of RSA (FTPR 0x49804 + 0x800): the module no longer hashes right.
    tampered(
        &img,
        0x37000 + 0x49804 + 0x800,
        &[("me-module-hash-mismatch", "FTPR/RSA", "module RSA")],
    );
    // The $FPT header checksum covers the ROM-bypass vector when the header length is 0x30.
    tampered(&img, 0x04, &[("fpt-header-checksum", "fpt", "")]);
}

/// A manifest re-signed with a key made here: the signature verifies, the key is not Intel's.
#[test]
fn manifest_signed_by_another_key_is_untrusted() {
    let Some(img) = fixture(SPS) else { return };
    if !have_tool("openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = d.join("k.pem");
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = Command::new("openssl")
        .args(["rsa", "-noout", "-modulus", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let modulus = hex::decode(text.trim().trim_start_matches("Modulus=")).unwrap();
    assert_eq!(modulus.len(), 256);
    let mut b = img.clone();
    let man = 0x31088usize;
    let size = 0x3f0usize;
    let mut le = modulus.clone();
    le.reverse();
    b[man + 0x80..man + 0x180].copy_from_slice(&le);
    b[man + 0x180..man + 0x184].copy_from_slice(&65537u32.to_le_bytes());
    let mut signed = b[man..man + 0x80].to_vec();
    signed.extend_from_slice(&b[man + 0x284..man + size]);
    let data = write(d, "signed.bin", &signed);
    let sig = d.join("sig.bin");
    let ok = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&key)
        .arg("-out")
        .arg(&sig)
        .arg(&data)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let mut s = std::fs::read(&sig).unwrap();
    assert_eq!(s.len(), 256);
    s.reverse();
    b[man + 0x184..man + 0x284].copy_from_slice(&s);
    let p = write(d, "resigned.bin", &b);
    let (code, f) = check(&p);
    assert_eq!(code, 1);
    let codes: Vec<&str> = f.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(codes, ["me-manifest-untrusted-key"], "{f:?}");
    let all = nodes(&inspect_json(&p));
    let n = node(&all, "FTPR/FTPR.man");
    assert_eq!(evidence(n, "me-manifest"), "valid");
    assert_eq!(attr(n, "public-key"), "unknown");
    // Nothing the unknown key signs counts as covered by an Intel signature.
    assert_eq!(covered(node(&all, "FTPR/rbe")), "");
}

/// fwupd's `ifwi-fpt` reads `$FPT` at offset 0 (no ROM-bypass vector): feed it the table without the
/// vector, padded back to the region size, and compare names, offsets and sizes.
#[test]
fn fpt_and_cpd_agree_with_fwupdtool() {
    let Some(img) = fixture(SPS) else { return };
    if !have_tool("fwupdtool", "fwupd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "sps.bin", &img);
    let all = nodes(&inspect_json(&p));

    let mut shifted = img[0x10..].to_vec();
    shifted.extend_from_slice(&[0u8; 0x10]);
    let fp = write(dir.path(), "fpt.bin", &shifted);
    let xml = fwupd(&fp, "ifwi-fpt");
    let theirs = fwupd_children(&xml);
    let with_data: Vec<&(String, Option<u64>, Option<u64>)> =
        theirs.iter().filter(|x| x.2.is_some()).collect();
    assert!(with_data.len() >= 8, "{xml}");
    for (name, off, size) in with_data {
        let n = node(&all, name);
        assert_eq!(
            (Some(u(n, "offset")), Some(u(n, "size"))),
            (*off, *size),
            "{name}"
        );
    }
    let ftpr = node(&all, "FTPR");
    let (o, s) = (u(ftpr, "offset") as usize, u(ftpr, "size") as usize);
    let cp = write(dir.path(), "ftpr.bin", &img[o..o + s]);
    let xml = fwupd(&cp, "ifwi-cpd");
    let theirs = fwupd_children(&xml);
    assert_eq!(theirs.len(), 5, "{xml}");
    for (name, _, size) in &theirs {
        let n = node(&all, &format!("FTPR/{name}"));
        assert_eq!(Some(u(n, "size")), *size, "{name}");
    }
}

fn fwupd(p: &Path, kind: &str) -> String {
    let out = Command::new("fwupdtool")
        .arg("firmware-parse")
        .arg(p)
        .arg(kind)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        s.contains("<firmware"),
        "fwupdtool {kind}: {s}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s
}

/// The direct children of the top `<firmware>` element: (id, offset, data size).
fn fwupd_children(xml: &str) -> Vec<(String, Option<u64>, Option<u64>)> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur: Option<(String, Option<u64>, Option<u64>)> = None;
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    for line in xml.lines().map(str::trim) {
        if line.starts_with("<firmware") {
            depth += 1;
            if depth == 2 {
                cur = Some((String::new(), None, None));
            }
        } else if line.starts_with("</firmware>") {
            if depth == 2 {
                out.extend(cur.take());
            }
            depth -= 1;
        } else if depth == 2 {
            let c = cur.as_mut().unwrap();
            if let Some(v) = line
                .strip_prefix("<id>")
                .and_then(|l| l.strip_suffix("</id>"))
            {
                c.0 = v.to_string();
            } else if let Some(v) = line
                .strip_prefix("<offset>")
                .and_then(|l| l.strip_suffix("</offset>"))
            {
                c.1 = hex(v);
            } else if let Some(rest) = line.strip_prefix("<data type=\"GInputStream\" size=\"") {
                c.2 = rest.split('"').next().and_then(hex);
            }
        }
    }
    out
}

/// 8 MiB: descriptor, the real SPS region at 0x1000, OVMF VARS + CODE as the BIOS region at 0x400000.
fn spi_image() -> Option<Vec<u8>> {
    let me = fixture(SPS)?;
    let (vars, code) = (
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
    );
    let (Ok(vars), Ok(code)) = (std::fs::read(vars), std::fs::read(code)) else {
        skip("OVMF_VARS_4M.fd / OVMF_CODE_4M.fd missing (Debian package ovmf)");
        return None;
    };
    assert_eq!(vars.len() + code.len(), 0x400000);
    let me_pages = me.len().div_ceil(0x1000) as u32;
    let mut img = vec![0xFFu8; 0x800000];
    img[..0x1000].copy_from_slice(&descriptor(&[
        (0, 0, 0),
        (2, 1, me_pages),
        (1, 0x400, 0x7FF),
    ]));
    img[0x1000..0x1000 + me.len()].copy_from_slice(&me);
    img[0x400000..0x400000 + vars.len()].copy_from_slice(&vars);
    img[0x400000 + vars.len()..].copy_from_slice(&code);
    Some(img)
}

#[test]
fn full_spi_image_lists_the_cpd_directories() {
    let Some(img) = spi_image() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "spi.bin", &img);
    let all = nodes(&inspect_json(&p));
    let cpd = node(&all, "me/FTPR/cpd");
    assert_eq!(u(cpd, "offset"), 0x1000 + 0x31000);
    assert_eq!(attr(cpd, "partition-name"), "FTPR");
    for e in ["FTPR.man", "rbe.met", "manuf.met", "rbe", "manuf"] {
        node(&all, &format!("me/FTPR/{e}"));
    }
    assert_eq!(
        evidence(node(&all, "me/FTPR/FTPR.man"), "me-manifest"),
        "valid"
    );
    let (code, f) = check(&p);
    assert_eq!((code, f), (0, vec![]));
}

/// `inspect --coverage` (JSON and text): contiguous ranges whose totals sum to the image size exactly.
#[test]
fn coverage_sums_to_the_image_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut images: Vec<(PathBuf, bool)> = Vec::new();
    for (rel, me) in [(SPS, true), (ME8, true)] {
        if let Some(b) = fixture(rel) {
            images.push((write(dir.path(), rel.rsplit('/').next().unwrap(), &b), me));
        }
    }
    if let Some(b) = spi_image() {
        images.push((write(dir.path(), "spi.bin", &b), true));
    }
    let ovmf = Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd");
    if ovmf.exists() {
        images.push((ovmf.to_path_buf(), false));
    } else {
        skip("/usr/share/OVMF/OVMF_CODE_4M.fd missing (Debian package ovmf)");
    }
    for (p, me) in images {
        let size = std::fs::metadata(&p).unwrap().len();
        let out = fwscan()
            .args(["inspect", "--coverage", "--format", "json"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(out.status.success());
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let cov = &doc["coverage"];
        assert_eq!(cov["size"], size);
        let mut at = 0;
        for r in cov["ranges"].as_array().unwrap() {
            assert_eq!(r["offset"], at, "{}: ranges not contiguous", p.display());
            at += r["size"].as_u64().unwrap();
        }
        assert_eq!(at, size, "{}", p.display());
        let totals = cov["totals"].as_object().unwrap();
        assert_eq!(
            totals.len(),
            fwscan::report::coverage::Protection::ALL.len()
        );
        let sum: u64 = totals.values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(sum, size, "{}", p.display());
        let me_bytes = totals["me-manifest"].as_u64().unwrap();
        assert_eq!(me_bytes > 0, me, "{}: me-manifest {me_bytes}", p.display());
        assert!(totals["baseline-only"].as_u64().unwrap() > 0);
        // Text form: the same totals.
        let out = fwscan()
            .args(["inspect", "--coverage"])
            .arg(&p)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        for (k, v) in totals {
            let line = text
                .lines()
                .find(|l| l.split_whitespace().next() == Some(k.as_str()))
                .unwrap_or_else(|| panic!("no total line for {k}:\n{text}"));
            assert_eq!(
                line.split_whitespace().nth(1),
                Some(v.to_string().as_str()),
                "{line}"
            );
        }
    }
}

/// The SPS manifest's bytes exactly: the `.man` entry, the verified `.met` files and modules.
#[test]
fn sps_coverage_is_the_verified_entries() {
    let Some(img) = fixture(SPS) else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "sps.bin", &img);
    let out = fwscan()
        .args(["inspect", "--coverage", "--format", "json"])
        .arg(&p)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let me: Vec<(u64, u64)> = doc["coverage"]["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["protection"] == "me-manifest")
        .map(|r| (r["offset"].as_u64().unwrap(), r["size"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        me,
        [
            (0x31088, 0x3f0),
            (0x31478, 0x7c),
            (0x314f4, 0x7c),
            (0x31570, 0x29000),
            (0x5a570, 0x5000)
        ]
    );
    // A tampered module loses its coverage.
    let mut b = img.clone();
    b[0x31570 + 0x10] ^= 1;
    let p = write(dir.path(), "t.bin", &b);
    let out = fwscan()
        .args(["inspect", "--coverage", "--format", "json"])
        .arg(&p)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["coverage"]["totals"]["me-manifest"].as_u64().unwrap(),
        0x3f0 + 0x7c + 0x7c + 0x5000
    );
}
