//! Intel FIT, microcode, startup ACM and Boot Guard / CBnT (issue 12): real fixtures from
//! `../shared/fixtures/intel/` and Boot Guard images built here with keys made by `openssl genpkey`,
//! signed by `openssl dgst` (so fwscan's verification is checked against an independent signer).

use std::path::{Path, PathBuf};
use std::process::Command;

use fwscan::formats::uefi::build;

use crate::harness::inspect_json as inspect;
use crate::harness::{self, fwscan, have_tool};
use crate::support::spi::w32;
use serde_json::{json, Value};
use sha2::Digest;

/// A fixture of `../shared/fixtures/intel/`, or `None` after a skip.
fn fixture(name: &str) -> Option<PathBuf> {
    harness::fixture(&format!("intel/{name}"))
}

/// Finding codes of `fwscan check`.
pub(crate) fn check_codes(path: &Path) -> Vec<String> {
    let out = fwscan()
        .args(["check", "--format", "json"])
        .arg(path)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let mut codes = Vec::new();
    fn collect(v: &Value, codes: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let (Some(Value::String(c)), Some(_)) = (m.get("code"), m.get("severity")) {
                    codes.push(c.clone());
                }
                m.values().for_each(|x| collect(x, codes));
            }
            Value::Array(a) => a.iter().for_each(|x| collect(x, codes)),
            _ => {}
        }
    }
    collect(&v, &mut codes);
    codes
}

fn nodes<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    if let Some(c) = v["children"].as_array() {
        c.iter().for_each(|x| nodes(x, out));
    }
}

pub(crate) fn all_nodes(tree: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    nodes(&tree["root"], &mut out);
    out
}

const INTEL_CODES: [&str; 7] = [
    "fit-invalid",
    "microcode-checksum",
    "acm-signature-invalid",
    "bootguard-signature-invalid",
    "bootguard-km-bpm-key-mismatch",
    "bootguard-ibb-mismatch",
    "bootguard-unsigned-ibb-gap",
];

#[test]
fn real_key_and_boot_policy_manifests_parse_without_notes() {
    for (f, kind, generation) in [
        ("km-bg.bin", "key-manifest", "boot-guard-1.0"),
        ("km-cbnt.bin", "key-manifest", "cbnt"),
        ("cbnt-bpm10.bin", "boot-policy-manifest", "boot-guard-1.0"),
        ("cbnt-bpm20.bin", "boot-policy-manifest", "cbnt"),
        ("cbnt-bpm21.bin", "boot-policy-manifest", "cbnt"),
    ] {
        let Some(p) = fixture(f) else { return };
        let t = inspect(&p);
        let all = all_nodes(&t);
        for n in &all {
            assert!(
                n["notes"].as_array().is_none_or(|a| a.is_empty()),
                "{f}: note on {}: {}",
                n["path"],
                n["notes"]
            );
        }
        assert_eq!(
            t["findings"].as_array().map(Vec::len),
            Some(0),
            "{f}: {}",
            t["findings"]
        );
        let m = all
            .iter()
            .find(|n| n["name"] == kind)
            .unwrap_or_else(|| panic!("{f}: no {kind}"));
        assert_eq!(m["attrs"]["generation"], generation, "{f}");
        // The manifest spans the whole file.
        assert_eq!(
            m["size"].as_u64(),
            Some(std::fs::metadata(&p).unwrap().len()),
            "{f}"
        );
        if kind == "key-manifest" {
            assert_eq!(ev_status(m, "bootguard-km"), "valid", "{f}");
            assert_eq!(m["attrs"]["key-hash"].as_str().unwrap().len(), 64, "{f}");
        } else {
            let ids: Vec<_> = m["children"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_string())
                .collect();
            assert!(
                ids.contains(&"ibbs".to_string()) && ids.last().map(String::as_str) == Some("pmsg"),
                "{f}: {ids:?}"
            );
        }
    }
    // The CBnT 2.1 BPM (RSA-3072, PSS, SHA-384) verifies over the bytes before its key signature.
    let Some(p) = fixture("cbnt-bpm21.bin") else {
        return;
    };
    let t = inspect(&p);
    let bpm = all_nodes(&t)
        .into_iter()
        .find(|n| n["name"] == "boot-policy-manifest")
        .unwrap()
        .clone();
    assert_eq!(ev_status(&bpm, "bootguard-bpm"), "valid");
    assert_eq!(bpm["attrs"]["sig-scheme"], "rsassa-pss");
}

fn have_uefiextract() -> bool {
    have_tool("UEFIExtract", "uefitool-cli")
}

/// UEFIExtract's FIT table (printed on stdout by `UEFIExtract IMAGE report`): (address, size, version,
/// checksum, type, info) per row, and the whole output.
fn uefiextract_fit(img: &Path) -> (Vec<[String; 6]>, String) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("image.bin");
    std::fs::copy(img, &copy).unwrap();
    let out = Command::new("UEFIExtract")
        .arg(&copy)
        .arg("report")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows = text
        .lines()
        .filter(|l| l.matches('|').count() >= 5 && !l.contains("Address"))
        .map(|l| {
            let f: Vec<String> = l.split('|').map(|x| x.trim().to_string()).collect();
            [
                f[0].clone(),
                f[1].clone(),
                f[2].clone(),
                f[3].clone(),
                f[4].clone(),
                f.get(5).cloned().unwrap_or_default(),
            ]
        })
        .collect();
    (rows, text)
}

fn hexnum(s: &str) -> u64 {
    u64::from_str_radix(s.trim_end_matches('h').trim_start_matches("0x"), 16).unwrap()
}

pub(crate) fn galago() -> Option<PathBuf> {
    let xz = fixture("galagopro3-bios-region.fd.xz")?;
    let dir = tempfile::tempdir().unwrap().keep();
    let out = dir.join("galago.fd");
    let mut dec = liblzma::read::XzDecoder::new(std::fs::File::open(xz).unwrap());
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut dec, &mut buf).unwrap();
    std::fs::write(&out, buf).unwrap();
    Some(out)
}

#[test]
fn real_bios_region_lists_fit_and_microcode() {
    let Some(img) = galago() else { return };
    let t = inspect(&img);
    let all = all_nodes(&t);
    let fit = all.iter().find(|n| n["name"] == "fit").expect("FIT node");
    assert_eq!(fit["offset"].as_u64(), Some(0x5D_CE40));
    assert_eq!(fit["attrs"]["checksum"], "valid");
    assert_eq!(fit["attrs"]["pointer"], "0xFFFFCE40");
    let entries = fit["children"].as_array().unwrap();
    let mc_targets: Vec<u64> = entries
        .iter()
        .filter(|e| e["attrs"]["type"] == "0x01")
        .map(|e| {
            u64::from_str_radix(
                e["attrs"]["target-offset"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("0x"),
                16,
            )
            .unwrap()
        })
        .collect();
    let mcs: Vec<&&Value> = all
        .iter()
        .filter(|n| n["attrs"]["structure"] == "microcode")
        .collect();
    assert_eq!(mcs.len(), 4);
    for m in &mcs {
        assert_eq!(m["attrs"]["checksum"], "valid", "{}", m["path"]);
        assert_eq!(m["attrs"]["fit-entry"], true, "{}", m["path"]);
        assert!(mc_targets.contains(&m["offset"].as_u64().unwrap()));
        assert!(m["name"].as_str().unwrap().starts_with("microcode[cpuid-"));
    }
    assert!(mcs
        .iter()
        .any(|m| m["name"] == "microcode[cpuid-806EA:rev-B4]"));
    // The blob that holds the updates keeps its path; the updates are its children.
    assert!(mcs[0]["path"].as_str().unwrap().starts_with("fv[8C8CE578-8A3D-4F1C-9935-896185C32DD3]/file[197DB236-F856-4924-90F8-CDF12FB875F3]/data/microcode["));

    // UEFIExtract lists the same microcode updates (offset and size).
    if have_uefiextract() {
        let st = Command::new("UEFIExtract")
            .arg(&img)
            .arg("report")
            .output()
            .unwrap();
        assert!(st.status.success() || img.with_extension("fd.report.txt").exists());
        let report = std::fs::read_to_string(img.with_extension("fd.report.txt")).unwrap();
        let theirs: Vec<(u64, u64)> = report
            .lines()
            .filter(|l| l.trim_start().starts_with("Microcode"))
            .map(|l| {
                let f: Vec<&str> = l.split('|').map(str::trim).collect();
                (
                    u64::from_str_radix(f[2], 16).unwrap(),
                    u64::from_str_radix(f[3], 16).unwrap(),
                )
            })
            .collect();
        let mut ours: Vec<(u64, u64)> = mcs
            .iter()
            .map(|m| (m["offset"].as_u64().unwrap(), m["size"].as_u64().unwrap()))
            .collect();
        ours.sort();
        assert_eq!(ours, theirs);
    }

    // UEFIExtract's FIT table: same entries, addresses, sizes, checksum, microcode signatures and dates.
    if have_uefiextract() {
        let (rows, _) = uefiextract_fit(&img);
        assert_eq!(rows.len(), entries.len(), "{rows:?}");
        assert_eq!(rows[0][0], "_FIT_");
        assert_eq!(
            hexnum(&rows[0][3]),
            hexnum(entries[0]["attrs"]["checksum"].as_str().unwrap())
        );
        assert_eq!(hexnum(&rows[0][1]), fit["size"].as_u64().unwrap());
        for (row, e) in rows.iter().zip(entries).skip(1) {
            assert_eq!(row[4], "Microcode");
            assert_eq!(
                hexnum(&row[0]),
                hexnum(e["attrs"]["address"].as_str().unwrap())
            );
            let target = hexnum(e["attrs"]["target-offset"].as_str().unwrap());
            let m = mcs
                .iter()
                .find(|m| m["offset"].as_u64() == Some(target))
                .unwrap();
            assert_eq!(hexnum(&row[1]), m["size"].as_u64().unwrap());
            let info = &row[5];
            let sig = hexnum(
                info.split("CpuSignature: ")
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap(),
            );
            let rev = hexnum(
                info.split("Revision: ")
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap(),
            );
            assert_eq!(sig, hexnum(m["attrs"]["cpuid"].as_str().unwrap()));
            assert_eq!(rev, hexnum(m["attrs"]["revision"].as_str().unwrap()));
            let d: Vec<&str> = info
                .split("Date: ")
                .nth(1)
                .unwrap()
                .trim()
                .split('.')
                .collect();
            assert_eq!(m["attrs"]["date"], format!("{}-{}-{}", d[2], d[1], d[0]));
        }
    }

    // No new finding on the clean vendor image.
    let codes = check_codes(&img);
    assert!(
        !codes.iter().any(|c| INTEL_CODES.contains(&c.as_str())),
        "{codes:?}"
    );

    // One byte of a microcode update changed: microcode-checksum.
    let mut bytes = std::fs::read(&img).unwrap();
    let off = mcs[3]["offset"].as_u64().unwrap() as usize + 0x1000;
    bytes[off] ^= 0x01;
    let bad = img.with_file_name("galago-mc.fd");
    std::fs::write(&bad, &bytes).unwrap();
    let codes = check_codes(&bad);
    assert_eq!(
        codes.iter().filter(|c| *c == "microcode-checksum").count(),
        1,
        "{codes:?}"
    );
}

// ---------------------------------------------------------------------------------------------------
// Boot Guard images built with openssl keys.

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[derive(Clone)]
pub(crate) enum Key {
    Rsa {
        pem: PathBuf,
        modulus_be: Vec<u8>,
    },
    Ec {
        pem: PathBuf,
        x_be: Vec<u8>,
        y_be: Vec<u8>,
    },
}

pub(crate) fn genkey(dir: &Path, name: &str, spec: &str) -> Key {
    let pem = dir.join(format!("{name}.pem"));
    let p = pem.to_str().unwrap();
    if let Some(bits) = spec.strip_prefix("rsa") {
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &format!("rsa_keygen_bits:{bits}"),
            "-out",
            p,
        ]);
        let m = String::from_utf8(openssl(&["rsa", "-in", p, "-noout", "-modulus"])).unwrap();
        Key::Rsa {
            pem,
            modulus_be: hex::decode(m.trim().trim_start_matches("Modulus=")).unwrap(),
        }
    } else {
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &format!("ec_paramgen_curve:{spec}"),
            "-out",
            p,
        ]);
        let der = openssl(&["pkey", "-in", p, "-pubout", "-outform", "DER"]);
        let n = if spec == "P-256" { 32 } else { 48 };
        let pt = &der[der.len() - 2 * n..];
        Key::Ec {
            pem,
            x_be: pt[..n].to_vec(),
            y_be: pt[n..].to_vec(),
        }
    }
}

fn rev(b: &[u8]) -> Vec<u8> {
    b.iter().rev().copied().collect()
}

impl Key {
    /// Key data as Boot Guard stores it, and the bits.
    fn stored(&self) -> (u16, u16, Vec<u8>) {
        match self {
            Key::Rsa { modulus_be, .. } => {
                let mut d = 65537u32.to_le_bytes().to_vec();
                d.extend(rev(modulus_be));
                (0x0001, (modulus_be.len() * 8) as u16, d)
            }
            Key::Ec { x_be, y_be, .. } => {
                let mut d = rev(x_be);
                d.extend(rev(y_be));
                (0x0023, (x_be.len() * 8) as u16, d)
            }
        }
    }

    /// What the KM hashes to name this key: the modulus (little-endian) or X||Y.
    fn named(&self) -> Vec<u8> {
        match self {
            Key::Rsa { modulus_be, .. } => rev(modulus_be),
            Key::Ec { .. } => self.stored().2,
        }
    }

    /// A key signature structure over `msg` (scheme: "pkcs1-sha256", "pss-sha384", "ecdsa-sha256").
    fn key_signature(&self, dir: &Path, msg: &[u8], scheme: &str) -> Vec<u8> {
        let m = dir.join("msg.bin");
        std::fs::write(&m, msg).unwrap();
        let mp = m.to_str().unwrap();
        let (alg, bits, data) = self.stored();
        let mut v = vec![0x10];
        v.extend(alg.to_le_bytes());
        v.push(0x10);
        v.extend(bits.to_le_bytes());
        v.extend(&data);
        let (sid, hid, sig) = match (self, scheme) {
            (Key::Rsa { pem, .. }, "pkcs1-sha256") => (
                0x14u16,
                0x0Bu16,
                openssl(&["dgst", "-sha256", "-sign", pem.to_str().unwrap(), mp]),
            ),
            (Key::Rsa { pem, .. }, "pss-sha384") => (
                0x16,
                0x0C,
                openssl(&[
                    "dgst",
                    "-sha384",
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    "rsa_pss_saltlen:48",
                    "-sign",
                    pem.to_str().unwrap(),
                    mp,
                ]),
            ),
            (Key::Ec { pem, x_be, .. }, "ecdsa-sha256" | "ecdsa-sha384") => {
                let h = &scheme[6..];
                let der = openssl(&["dgst", &format!("-{h}"), "-sign", pem.to_str().unwrap(), mp]);
                let n = x_be.len();
                // SEQUENCE { INTEGER r, INTEGER s }: little-endian r then s, n bytes each.
                let mut i = if der[1] & 0x80 != 0 {
                    2 + (der[1] & 0x7F) as usize
                } else {
                    2
                };
                let mut out = Vec::new();
                for _ in 0..2 {
                    assert_eq!(der[i], 0x02);
                    let l = der[i + 1] as usize;
                    let int = &der[i + 2..i + 2 + l];
                    let int = &int[int.len().saturating_sub(n)..];
                    let mut be = vec![0u8; n - int.len()];
                    be.extend_from_slice(int);
                    out.extend(rev(&be));
                    i += 2 + l;
                }
                (0x18, if h == "sha256" { 0x0B } else { 0x0C }, out)
            }
            _ => panic!("scheme {scheme}"),
        };
        v.extend(sid.to_le_bytes());
        v.push(0x10);
        v.extend(((sig.len() * 8) as u16).to_le_bytes());
        v.extend(hid.to_le_bytes());
        v.extend(&sig);
        v
    }
}

fn hash_struct(alg: u16, d: &[u8]) -> Vec<u8> {
    let mut v = alg.to_le_bytes().to_vec();
    v.extend((d.len() as u16).to_le_bytes());
    v.extend(d);
    v
}

fn km(dir: &Path, cbnt: bool, km_key: &Key, bpm_key: &Key, scheme: &str) -> Vec<u8> {
    let named = sha2::Sha256::digest(bpm_key.named()).to_vec();
    let mut v = b"__KEYM__".to_vec();
    if cbnt {
        v.extend([0x21, 0x00, 0x00, 0x00]);
        let ks_off: u16 = 24 + 8 + 4 + 32;
        v.extend(ks_off.to_le_bytes());
        v.extend([0, 0, 0, 0x01, 0x00, 0x01]);
        v.extend(0x0Bu16.to_le_bytes());
        v.extend(1u16.to_le_bytes());
        v.extend(1u64.to_le_bytes());
        v.extend(hash_struct(0x0B, &named));
        assert_eq!(v.len(), ks_off as usize);
    } else {
        v.extend([0x10, 0x10, 0x00, 0x01]);
        v.extend(hash_struct(0x0B, &named));
    }
    let ks = km_key.key_signature(dir, &v, scheme);
    v.extend(ks);
    v
}

#[allow(clippy::too_many_arguments)]
fn bpm(
    dir: &Path,
    cbnt: bool,
    key: &Key,
    scheme: &str,
    ibb_digest256: &[u8],
    ibb_digest384: &[u8],
    seg: (u32, u32),
    algs: [u16; 2],
) -> Vec<u8> {
    let mut segs = Vec::new();
    segs.extend([0u8, 0, 0, 0]);
    segs.extend(seg.0.to_le_bytes());
    segs.extend(seg.1.to_le_bytes());
    // A non-hashed segment (flag bit 0) that the digest must skip.
    segs.extend([0u8, 0, 1, 0]);
    segs.extend(seg.0.wrapping_sub(0x1000).to_le_bytes());
    segs.extend(0x1000u32.to_le_bytes());
    let mut v = b"__ACBP__".to_vec();
    if cbnt {
        v.extend([0x23, 0x20]);
        v.extend(20u16.to_le_bytes());
        let ks_pos = v.len();
        v.extend(0u16.to_le_bytes()); // key signature offset, set below
        v.extend([0x01, 0x00, 0x02, 0x00]);
        v.extend(0x100u16.to_le_bytes());
        let mut e = b"__IBBS__".to_vec();
        e.extend([0x20, 0x00, 0, 0]);
        e.extend([0, 0, 0, 0x0F]);
        e.extend(0x7u32.to_le_bytes());
        e.extend([0u8; 40]);
        e.extend(hash_struct(0x10, &[]));
        e.extend(0xFFFF_FFF0u32.to_le_bytes());
        let mut list = Vec::new();
        list.extend(hash_struct(algs[0], ibb_digest256));
        list.extend(hash_struct(algs[1], ibb_digest384));
        e.extend(((list.len() + 4) as u16).to_le_bytes());
        e.extend(2u16.to_le_bytes());
        e.extend(list);
        e.extend(hash_struct(0x10, &[]));
        e.extend([0, 0, 0, 2]);
        e.extend(&segs);
        let l = e.len() as u16;
        e[10..12].copy_from_slice(&l.to_le_bytes());
        v.extend(e);
        // PMDA version 3 with no entries: reserved, size, version, count.
        let mut pm = b"__PMDA__".to_vec();
        pm.extend([0x20, 0, 24, 0, 0, 0, 12, 0, 3, 0, 0, 0, 0, 0, 0, 0]);
        v.extend(pm);
        v.extend(b"__PMSG__");
        v.extend([0x20, 0, 0, 0]);
        let ks = v.len() as u16;
        v[ks_pos..ks_pos + 2].copy_from_slice(&ks.to_le_bytes());
    } else {
        v.extend([0x10, 0x01, 0x01, 0x00, 0x02, 0x00]);
        v.extend(0x100u16.to_le_bytes());
        let mut e = b"__IBBS__".to_vec();
        e.extend([0x10, 0, 0, 0x0F]);
        e.extend(0x3u32.to_le_bytes());
        e.extend([0u8; 40]);
        e.extend(hash_struct(0x10, &[]));
        e.extend([0u8; 32]);
        e.extend(0xFFFF_FFF0u32.to_le_bytes());
        e.extend(hash_struct(algs[0], ibb_digest256));
        e.push(2);
        e.extend(&segs);
        v.extend(e);
        v.extend(b"__PMSG__");
        v.push(0x10);
    }
    let ks = key.key_signature(dir, &v, scheme);
    v.extend(ks);
    v
}

fn acm(dir: &Path, key: &Key) -> Vec<u8> {
    let Key::Rsa { modulus_be, .. } = key else {
        panic!()
    };
    let header_len = 128 + 256 + 4 + 256;
    let size = 0x1000usize;
    let mut a = vec![0u8; size];
    a[0..2].copy_from_slice(&2u16.to_le_bytes());
    a[4..8].copy_from_slice(&((header_len / 4) as u32).to_le_bytes());
    a[16..20].copy_from_slice(&0x8086u32.to_le_bytes());
    a[20..24].copy_from_slice(&0x2024_0131u32.to_le_bytes());
    a[24..28].copy_from_slice(&((size / 4) as u32).to_le_bytes());
    a[120..124].copy_from_slice(&64u32.to_le_bytes());
    a[128..384].copy_from_slice(&rev(modulus_be));
    a[384..388].copy_from_slice(&65537u32.to_le_bytes());
    for (i, b) in a[header_len..].iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    let mut msg = a[..128].to_vec();
    msg.extend_from_slice(&a[header_len..]);
    let m = dir.join("acm-msg.bin");
    std::fs::write(&m, &msg).unwrap();
    let Key::Rsa { pem, .. } = key else { panic!() };
    let sig = openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        pem.to_str().unwrap(),
        m.to_str().unwrap(),
    ]);
    a[388..644].copy_from_slice(&rev(&sig));
    a
}

const FV_SIZE: usize = 0x40000;
const GUID_ACM: &str = "5E7D8E6C-0001-4F6B-9E22-3A4B5C6D7E01";
const GUID_KM: &str = "5E7D8E6C-0002-4F6B-9E22-3A4B5C6D7E01";
const GUID_BPM: &str = "5E7D8E6C-0003-4F6B-9E22-3A4B5C6D7E01";
const GUID_VTF: &str = "1BA0062E-C779-4582-8566-336AE8F78F09";

pub(crate) struct Built {
    pub(crate) image: Vec<u8>,
    /// Offset and size of the hashed IBB segment.
    pub(crate) ibb: (usize, usize),
    bpm: (usize, usize),
    acm: usize,
}

/// Variations of a built image's BPM (signed as usual): the IBB digests' algorithm ids (default SHA-256,
/// SHA-384; CBnT lists both, Boot Guard 1.0 the first) and the hashed segment's physical base.
pub(crate) struct Tweak {
    pub(crate) ibb_algs: [u16; 2],
    pub(crate) ibb_base: Option<u32>,
}

impl Default for Tweak {
    fn default() -> Self {
        Tweak {
            ibb_algs: [0x0B, 0x0C],
            ibb_base: None,
        }
    }
}

fn phys(off: usize) -> u32 {
    (0x1_0000_0000u64 - FV_SIZE as u64 + off as u64) as u32
}

/// One firmware volume mapped below 4 GiB: raw files holding the ACM, KM and BPM, and a VTF-like raw
/// file at the top with the FIT, IBB code, FIT pointer and reset vector.
/// The keys of a built image: (KM key, KM scheme), (BPM signing key, key the KM names, BPM scheme), ACM key.
pub(crate) type Keys<'a> = ((&'a Key, &'a str), (&'a Key, &'a Key, &'a str), &'a Key);

pub(crate) fn build_image(dir: &Path, cbnt: bool, keys: Keys) -> Built {
    build_image_with(dir, cbnt, keys, &Tweak::default())
}

/// [`build_image`] with a [`Tweak`] of the BPM.
pub(crate) fn build_image_with(dir: &Path, cbnt: bool, keys: Keys, tweak: &Tweak) -> Built {
    let ((km_key, km_scheme), (bpm_key, named_key, bpm_scheme), acm_key) = keys;
    let body = |n: usize| vec![0u8; n];
    let files = [
        build::file(build::guid_bytes(GUID_ACM), 0x01, &body(0x1000), 0),
        build::file(build::guid_bytes(GUID_KM), 0x01, &body(0x800), 0),
        build::file(build::guid_bytes(GUID_BPM), 0x01, &body(0x800), 0),
    ];
    let mut cur = 0x48usize;
    for f in &files {
        cur = (cur + 7) & !7;
        cur += f.len();
    }
    cur = (cur + 7) & !7;
    let vtf_start = FV_SIZE - 0x10000;
    let mut list = files.to_vec();
    list.push(build::pad_file(vtf_start - cur));
    list.push(build::file(
        build::guid_bytes(GUID_VTF),
        0x01,
        &body(0x10000 - 24),
        0,
    ));
    let mut img = build::volume(
        build::guid_bytes("8C8CE578-8A3D-4F1C-9935-896185C32DD3"),
        None,
        &list,
        FV_SIZE,
    );
    let find = |img: &[u8], g: &str| {
        let gb = build::guid_bytes(g);
        img.windows(16).position(|w| w == gb).unwrap() + 24
    };
    let (acm_off, km_off, bpm_off) = (
        find(&img, GUID_ACM),
        find(&img, GUID_KM),
        find(&img, GUID_BPM),
    );
    assert_eq!(find(&img, GUID_VTF), vtf_start + 24);
    // IBB: the top 32 KiB (code, FIT, pointer, reset vector).
    let ibb = (FV_SIZE - 0x8000, 0x8000usize);
    for (i, b) in img[ibb.0..FV_SIZE - 0x1000].iter_mut().enumerate() {
        *b = (i % 253) as u8 ^ 0x90;
    }
    let fit_off = FV_SIZE - 0x1000;
    let acm_bytes = acm(dir, acm_key);
    img[acm_off..acm_off + acm_bytes.len()].copy_from_slice(&acm_bytes);
    let km_bytes = km(dir, cbnt, km_key, named_key, km_scheme);
    img[km_off..km_off + km_bytes.len()].copy_from_slice(&km_bytes);
    // FIT: header, startup ACM, KM, BPM (BPM size known after building it: same layout, fixed size).
    let mut fit = Vec::new();
    let entry = |addr: u64, size: u32, ver: u16, typ: u8| {
        let mut e = addr.to_le_bytes().to_vec();
        e.extend(&size.to_le_bytes()[..3]);
        e.push(0);
        e.extend(ver.to_le_bytes());
        e.push(typ);
        e.push(0);
        e
    };
    fit.extend(entry(u64::from_le_bytes(*b"_FIT_   "), 4, 0x0100, 0x80));
    fit.extend(entry(phys(acm_off) as u64, 0, 0x0100, 0x02));
    fit.extend(entry(
        phys(km_off) as u64,
        km_bytes.len() as u32,
        0x0100,
        0x0B,
    ));
    fit.extend(entry(phys(bpm_off) as u64, 0x800, 0x0100, 0x0C));
    let ck = fit.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    fit[15] = 0u8.wrapping_sub(ck);
    img[fit_off..fit_off + fit.len()].copy_from_slice(&fit);
    img[FV_SIZE - 0x40..FV_SIZE - 0x38].copy_from_slice(&(phys(fit_off) as u64).to_le_bytes());
    img[FV_SIZE - 0x10..FV_SIZE].copy_from_slice(&[
        0x90, 0x90, 0xE9, 0x00, 0xF0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    let ibb_bytes = &img[ibb.0..ibb.0 + ibb.1];
    let d256 = sha2::Sha256::digest(ibb_bytes).to_vec();
    let d384 = sha2::Sha384::digest(ibb_bytes).to_vec();
    let bpm_bytes = bpm(
        dir,
        cbnt,
        bpm_key,
        bpm_scheme,
        &d256,
        &d384,
        (tweak.ibb_base.unwrap_or(phys(ibb.0)), ibb.1 as u32),
        tweak.ibb_algs,
    );
    img[bpm_off..bpm_off + bpm_bytes.len()].copy_from_slice(&bpm_bytes);
    Built {
        image: img,
        ibb,
        bpm: (bpm_off, bpm_bytes.len()),
        acm: acm_off,
    }
}

/// A full SPI image: an Intel flash descriptor (IFD v2 fields as in tests/ifd.rs) with only FLREG0
/// (descriptor) and FLREG1 (BIOS, the last `bios.len()` bytes) in use.
fn ifd_image(bios: &[u8]) -> Vec<u8> {
    let total = 0x40000 + bios.len();
    let mut d = vec![0xFFu8; total];
    w32(&mut d, 0x10, 0x0FF0_A55A);
    w32(&mut d, 0x14, 0x0004_0003);
    w32(&mut d, 0x18, 0x1010_0308);
    w32(&mut d, 0x1C, 0x0000_0030);
    let clk = 6u32;
    w32(
        &mut d,
        0x30,
        (clk << 17) | (clk << 21) | (clk << 24) | (clk << 27) | 0xF4,
    );
    w32(&mut d, 0x34, 0);
    w32(&mut d, 0x38, 0);
    for i in 0..16 {
        w32(&mut d, 0x40 + 4 * i, 0x0000_7FFF);
    }
    w32(&mut d, 0x40, 0);
    let (base, limit) = (0x40u32, (total / 0x1000 - 1) as u32);
    w32(&mut d, 0x44, (limit << 16) | base);
    for i in 0..3 {
        w32(&mut d, 0x80 + 4 * i, 0xFFFF_0000);
    }
    w32(&mut d, 0xEFC, 0);
    d[0x40000..].copy_from_slice(bios);
    d
}

fn codes_of(dir: &Path, name: &str, img: &[u8]) -> Vec<String> {
    let p = dir.join(name);
    std::fs::write(&p, img).unwrap();
    check_codes(&p)
}

fn boot_guard_case(cbnt: bool, km_spec: &str, km_scheme: &str, bpm_spec: &str, bpm_scheme: &str) {
    if !have_tool("openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let km_key = genkey(d, "km", km_spec);
    let bpm_key = genkey(d, "bpm", bpm_spec);
    let other = genkey(d, "other", bpm_spec);
    let acm_key = genkey(d, "acm", "rsa2048");
    let clean = build_image(
        d,
        cbnt,
        (
            (&km_key, km_scheme),
            (&bpm_key, &bpm_key, bpm_scheme),
            &acm_key,
        ),
    );
    if let Ok(keep) = std::env::var("FWSCAN_INTEL_KEEP") {
        let name = format!("bootguard-{}.bin", if cbnt { "cbnt" } else { "1.0" });
        std::fs::write(Path::new(&keep).join(name), &clean.image).unwrap();
    }
    let codes = codes_of(d, "clean.bin", &clean.image);
    assert!(codes.is_empty(), "clean image: {codes:?}");
    let t = inspect(&d.join("clean.bin"));
    let all = all_nodes(&t);
    let kmn = all
        .iter()
        .find(|n| n["name"] == "key-manifest")
        .expect("KM node");
    assert_eq!(ev_status(kmn, "bootguard-km"), "valid");
    let bpmn = all
        .iter()
        .find(|n| n["name"] == "boot-policy-manifest")
        .expect("BPM node");
    assert_eq!(ev_status(bpmn, "bootguard-bpm"), "valid");
    assert_eq!(bpmn["attrs"]["km-names-key"], true);
    let acmn = all
        .iter()
        .find(|n| n["name"] == "startup-acm")
        .expect("ACM node");
    assert_eq!(ev_status(acmn, "intel-acm"), "valid");
    let statuses: Vec<&str> = bpmn["attrs"]["ibb"][0]["digests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].as_str().unwrap())
        .collect();
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| *s == "valid"),
        "{statuses:?}"
    );
    // Coverage: the IBB range, signed by the KM key, which no trust policy pins (tests/bootguard_coverage.rs);
    // the evidence sits on the BPM that carries the digest, none on the root.
    assert!(
        t["root"]["evidence"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{}",
        t["root"]["evidence"]
    );
    let cov = bpmn["evidence"].as_array().expect("evidence");
    let kh = kmn["attrs"]["key-hash"].as_str().unwrap();
    let km_ev = &kmn["evidence"][0];
    assert_eq!(
        (&km_ev["trust"], &km_ev["signer"]),
        (&json!("self-signed"), &json!(kh)),
        "{km_ev}"
    );
    assert!(
        cov.iter().any(|c| c["scheme"] == "bootguard-ibb"
            && c["status"] == "valid"
            && c["trust"] == "self-signed"
            && c["protection"] == "bootguard-self-signed"
            && c["covers"][0]["offset"].as_u64() == Some(clean.ibb.0 as u64)
            && c["covers"][0]["size"].as_u64() == Some(clean.ibb.1 as u64)
            && c["signer"] == kh),
        "{cov:?}"
    );

    // UEFIExtract (RSA key signatures only) computes the same IBB digest and BPM key hash.
    if matches!(bpm_key, Key::Rsa { .. }) && have_uefiextract() {
        let (rows, text) = uefiextract_fit(&d.join("clean.bin"));
        assert_eq!(rows.len(), 4, "{text}");
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(prefix))
                .unwrap_or_else(|| panic!("UEFIExtract printed no `{prefix}`: {text}"))
                .split(": ")
                .nth(1)
                .unwrap()
                .trim()
                .to_ascii_lowercase()
        };
        let ours = bpmn["attrs"]["ibb"][0]["digests"][0]["digest"]
            .as_str()
            .unwrap();
        assert_eq!(line("Computed IBB Hash (SHA256)"), ours);
        let after = |marker: &str, prefix: &str| {
            let rest = &text[text
                .find(marker)
                .unwrap_or_else(|| panic!("no `{marker}`: {text}"))..];
            rest.lines()
                .find_map(|l| {
                    l.split_once(prefix)
                        .map(|(_, v)| v.trim().to_ascii_lowercase())
                })
                .unwrap()
        };
        let (stored, km_named) = if cbnt {
            (
                after("IBB Hashes:", "SHA256: "),
                after("UsageFlags: 0000000000000001h", "SHA256: "),
            )
        } else {
            (line("IBB Hash (SHA256)"), line("KM Hash (SHA256)"))
        };
        assert_eq!(stored, ours);
        assert_eq!(line("Boot Policy Public Key Hash (SHA256)"), km_named);
        assert_eq!(kmn["attrs"]["key-hashes"][0]["digest"], km_named.as_str());
    }

    // The same BIOS as the BIOS region of a descriptor image: the FIT pass maps the region's end to 4 GiB.
    let spi = ifd_image(&clean.image);
    assert_eq!(codes_of(d, "spi.bin", &spi), Vec::<String>::new());
    let t = inspect(&d.join("spi.bin"));
    let spi_bpm = all_nodes(&t)
        .into_iter()
        .find(|n| n["name"] == "boot-policy-manifest")
        .cloned()
        .expect("BPM in the BIOS region");
    assert!(
        spi_bpm["path"].as_str().unwrap().starts_with("bios/"),
        "{}",
        spi_bpm["path"]
    );
    assert_eq!(
        spi_bpm["offset"].as_u64(),
        Some((0x40000 + clean.bpm.0) as u64)
    );
    let mut bad = spi.clone();
    bad[0x40000 + clean.ibb.0 + 0x10] ^= 0x80;
    assert!(codes_of(d, "spi-ibb.bin", &bad)
        .iter()
        .all(|c| c == "bootguard-ibb-mismatch"));
    assert!(!codes_of(d, "spi-ibb.bin", &bad).is_empty());

    // A byte inside the IBB.
    let mut img = clean.image.clone();
    img[clean.ibb.0 + 0x100] ^= 0x01;
    let codes = codes_of(d, "ibb.bin", &img);
    assert_eq!(
        codes,
        vec!["bootguard-ibb-mismatch".to_string(); codes.len().max(1)],
        "{codes:?}"
    );
    // `scan` against a baseline of the clean image reports it too (the BPM node itself is unchanged).
    let manifest = d.join("clean.manifest.json");
    let st = fwscan()
        .args([
            "baseline",
            "--vendor",
            "t",
            "--product",
            "p",
            "--component",
            "bios",
            "--version",
            "1",
            "-o",
        ])
        .arg(&manifest)
        .arg(d.join("clean.bin"))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let out = fwscan()
        .args([
            "scan",
            "--insecure-unsigned",
            "--format",
            "json",
            "--manifest",
        ])
        .arg(&manifest)
        .arg(d.join("ibb.bin"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"bootguard-ibb-mismatch\""), "{text}");

    // A byte of the BPM signature (its last byte).
    let mut img = clean.image.clone();
    img[clean.bpm.0 + clean.bpm.1 - 1] ^= 0x01;
    assert_eq!(
        codes_of(d, "bpmsig.bin", &img),
        vec!["bootguard-signature-invalid"]
    );
    // A byte of the ACM body.
    let mut img = clean.image.clone();
    img[clean.acm + 0x800] ^= 0x01;
    assert_eq!(codes_of(d, "acm.bin", &img), vec!["acm-signature-invalid"]);
    // The BPM signed (validly) by another key than the one the KM names.
    let swapped = build_image(
        d,
        cbnt,
        (
            (&km_key, km_scheme),
            (&other, &bpm_key, bpm_scheme),
            &acm_key,
        ),
    );
    assert_eq!(
        codes_of(d, "other.bin", &swapped.image),
        vec!["bootguard-km-bpm-key-mismatch"]
    );
}

#[test]
fn boot_guard_1_0_rsa() {
    boot_guard_case(false, "rsa2048", "pkcs1-sha256", "rsa2048", "pkcs1-sha256");
}

#[test]
fn cbnt_rsa3072_pss_km_and_ecdsa_p256_bpm() {
    boot_guard_case(true, "rsa3072", "pss-sha384", "P-256", "ecdsa-sha256");
}

#[test]
fn cbnt_rsa2048_km_and_rsa3072_pss_bpm() {
    boot_guard_case(true, "rsa2048", "pkcs1-sha256", "rsa3072", "pss-sha384");
}

#[test]
fn cbnt_ecdsa_p384_km_and_p256_bpm() {
    boot_guard_case(true, "P-384", "ecdsa-sha384", "P-256", "ecdsa-sha256");
}

#[test]
fn hostile_manifests_are_bounded() {
    // Element counts of 2^32-1, key sizes of 0 and 2^20 (as far as u16 fields allow), sizes past the end.
    let mut cases: Vec<Vec<u8>> = Vec::new();
    let mut km = b"__KEYM__".to_vec();
    km.extend([
        0x21, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 1, 0, 1, 0x0B, 0, 0xFF, 0xFF,
    ]);
    cases.push(km);
    let mut k2 = b"__KEYM__".to_vec();
    k2.extend([0x10, 0x10, 0, 1, 0x0B, 0, 0x20, 0]);
    k2.extend([0u8; 32]);
    k2.extend([0x10, 1, 0, 0x10, 0, 0]); // RSA key of 0 bits
    cases.push(k2);
    let mut k3 = b"__KEYM__".to_vec();
    k3.extend([0x10, 0x10, 0, 1, 0x0B, 0, 0xFF, 0xFF]);
    cases.push(k3);
    let mut b1 = b"__ACBP__".to_vec();
    b1.extend([0x23, 0x20, 0x14, 0, 0xFF, 0xFF, 1, 0, 0, 0, 0, 1]);
    b1.extend(b"__IBBS__");
    b1.extend([0x20, 0, 0xFF, 0xFF]);
    cases.push(b1);
    let mut b2 = b"__ACBP__".to_vec();
    b2.extend([0x10, 1, 1, 0, 0, 0, 0, 1]);
    b2.extend(b"__IBBS__");
    b2.extend(vec![0xFFu8; 200]);
    cases.push(b2);
    let dir = tempfile::tempdir().unwrap();
    for (i, c) in cases.iter().enumerate() {
        let p = dir.path().join(format!("h{i}.bin"));
        std::fs::write(&p, c).unwrap();
        let out = fwscan()
            .args(["inspect", "--format", "json"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "case {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t: Value = serde_json::from_slice(&out.stdout).unwrap();
        let unparsed = t["findings"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["code"] == "unparsed"));
        assert!(unparsed, "case {i} should be an unparsed note");
    }
}

/// The status of a node's evidence of `scheme` (`""` without one).
fn ev_status<'a>(n: &'a serde_json::Value, scheme: &str) -> &'a str {
    n["evidence"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["scheme"] == scheme))
        .and_then(|e| e["status"].as_str())
        .unwrap_or("")
}
