//! UEFI firmware parsing against the reference tools (UEFIExtract, CHIPSEC), tamper detection on real OVMF
//! images, and malformed input. Tests that need a Debian package skip with a message when it is absent.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use crate::harness::inspect_json;
use fwscan::formats::uefi::build::{self as b, guid_bytes};
use fwscan::formats::{self, ParseOptions};
use fwscan::input::Data;
use fwscan::region::{Region, RegionKind};
use serde_json::Value;

const OVMF: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_SB: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
const OVMF32_SB: &str = "/usr/share/OVMF/OVMF32_CODE_4M.secboot.fd";
const AAVMF: &str = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd";

fn bin() -> &'static str {
    crate::harness::BIN
}

fn have(path: &str) -> bool {
    if Path::new(path).exists() {
        true
    } else {
        crate::harness::skip(&format!(
            "{path} is not installed (Debian packages ovmf, ovmf-ia32, qemu-efi-aarch64)"
        ));
        false
    }
}

fn have_uefiextract() -> bool {
    let ok = Command::new("UEFIExtract").output().is_ok();
    if !ok {
        crate::harness::skip("UEFIExtract is not installed (Debian package uefitool-cli)");
    }
    ok
}

pub(crate) fn parse_bytes(bytes: Vec<u8>, eager: bool) -> Region {
    let opts = ParseOptions {
        eager,
        ..ParseOptions::default()
    };
    formats::parse_image(Arc::new(Data::Owned(bytes)), &opts)
}

// ---------------------------------------------------------------------------------------------------
// UEFIExtract comparison
// ---------------------------------------------------------------------------------------------------

/// One element of a firmware tree as both tools see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    depth: usize,
    typ: String,
    subtype: String,
    size: u64,
    guid: Option<String>,
}

fn uefiextract_report(image: &str) -> Vec<Entry> {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("image.bin");
    std::fs::copy(image, &copy).unwrap();
    let st = Command::new("UEFIExtract")
        .arg(&copy)
        .arg("report")
        .current_dir(dir.path())
        .output()
        .expect("run UEFIExtract");
    assert!(st.status.success(), "UEFIExtract failed");
    let text = std::fs::read_to_string(dir.path().join("image.bin.report.txt")).unwrap();
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() < 6 {
            continue;
        }
        let typ = cols[0].to_string();
        if typ == "Image" {
            continue;
        }
        let name = cols[5];
        let depth = name.chars().take_while(|&c| c == '-').count();
        let rest = name[depth..].trim();
        let size = u64::from_str_radix(cols[3], 16).unwrap();
        let token = rest.split_whitespace().next().unwrap_or("");
        let is_guid = token.len() == 36 && token.chars().filter(|&c| c == '-').count() == 4;
        let guid = match typ.as_str() {
            "Volume" | "File" | "Section" if is_guid => Some(token.to_string()),
            _ => None,
        };
        out.push(Entry {
            depth,
            typ,
            subtype: cols[1].to_string(),
            size,
            guid,
        });
    }
    out
}

fn file_subtype(t: &str) -> String {
    match t {
        "raw" => "Raw",
        "freeform" => "Freeform",
        "sec-core" => "SEC core",
        "pei-core" => "PEI core",
        "dxe-core" => "DXE core",
        "peim" => "PEI module",
        "driver" => "DXE driver",
        "combined-peim-driver" => "Combined PEI/DXE",
        "application" => "Application",
        "mm" => "SMM module",
        "fv-image" => "Volume image",
        "combined-mm-dxe" => "Combined SMM/DXE",
        "mm-core" => "SMM core",
        "pad" => "Pad",
        other => panic!("no UEFIExtract name for file type {other}"),
    }
    .to_string()
}

fn section_subtype(t: &str) -> String {
    match t {
        "compressed" => "Compressed",
        "guided" => "GUID defined",
        "pe32" => "PE32 image",
        "pic" => "PIC image",
        "te" => "TE image",
        "depex" => "DXE dependency",
        "pei-depex" => "PEI dependency",
        "mm-depex" => "MM dependency",
        "version" => "Version",
        "ui" => "UI",
        "compat16" => "Compatibility16",
        "fv-image" => "Volume image",
        "freeform" => "Freeform subtype GUID",
        "raw" => "Raw",
        other => panic!("no UEFIExtract name for section type {other}"),
    }
    .to_string()
}

/// Flattens fwscan's JSON tree into the entries UEFIExtract reports. Deliberate differences: fwscan's
/// `header` nodes, alignment padding between files/sections and the body of pad files are not UEFIExtract
/// tree items, so they are left out; top-level padding is kept (UEFIExtract lists it).
fn fwscan_entries(img: &[u8], n: &Value, depth: usize, parent_kind: &str, out: &mut Vec<Entry>) {
    let kind = n["kind"].as_str().unwrap_or("");
    let attrs = &n["attrs"];
    let s = |k: &str| attrs[k].as_str().map(str::to_string);
    let size = n["size"].as_u64().unwrap();
    let entry = match kind {
        "volume" => Some(Entry {
            depth,
            typ: "Volume".into(),
            subtype: match s("type").as_deref() {
                Some("ffsv2") => "FFSv2".into(),
                Some("ffsv3") => "FFSv3".into(),
                Some("nvram") => "NVRAM".into(),
                o => format!("{o:?}"),
            },
            size,
            guid: s("guid"),
        }),
        "file" => {
            let t = s("type").unwrap_or_default();
            Some(Entry {
                depth,
                typ: "File".into(),
                subtype: file_subtype(&t),
                size,
                guid: if t == "pad" { None } else { s("guid") },
            })
        }
        "section" => {
            let t = s("type").unwrap_or_default();
            Some(Entry {
                depth,
                typ: "Section".into(),
                subtype: section_subtype(&t),
                size,
                guid: match t.as_str() {
                    "guided" => s("guid"),
                    "freeform" => s("subtype-guid"),
                    _ => None,
                },
            })
        }
        "free-space" if parent_kind == "volume" => Some(Entry {
            depth,
            typ: "Free space".into(),
            subtype: String::new(),
            size,
            guid: None,
        }),
        "padding" if parent_kind == "image" => Some(Entry {
            depth,
            typ: "Padding".into(),
            subtype: {
                let o = n["offset"].as_u64().unwrap() as usize;
                let bytes = &img[o..o + size as usize];
                if bytes.iter().all(|&b| b == 0xFF) {
                    "Empty (0xFF)".into()
                } else if bytes.iter().all(|&b| b == 0) {
                    "Empty (0x00)".into()
                } else {
                    "Non-empty".into()
                }
            },
            size,
            guid: None,
        }),
        _ => None,
    };
    let is_pad = kind == "file" && attrs["type"] == "pad";
    let next = if entry.is_some() { depth + 1 } else { depth };
    if let Some(e) = entry {
        out.push(e);
    }
    if is_pad {
        return;
    }
    if let Some(kids) = n["children"].as_array() {
        for c in kids {
            fwscan_entries(img, c, next, kind, out);
        }
    }
}

fn compare_with_uefiextract(image: &str) {
    if !have(image) || !have_uefiextract() {
        return;
    }
    let want = uefiextract_report(image);
    let doc = inspect_json(Path::new(image));
    let mut got = Vec::new();
    let img = std::fs::read(image).unwrap();
    fwscan_entries(&img, &doc["root"], 1, "", &mut got);
    // UEFIExtract's depth counts from the image (1 = top-level volume).
    for (i, (w, g)) in want.iter().zip(got.iter()).enumerate() {
        assert_eq!(w, g, "{image}: entry {i} differs (UEFIExtract vs fwscan)");
    }
    assert_eq!(
        want.len(),
        got.len(),
        "{image}: UEFIExtract lists {} items, fwscan {}",
        want.len(),
        got.len()
    );
    let volumes = want.iter().filter(|e| e.typ == "Volume").count();
    let files = want.iter().filter(|e| e.typ == "File").count();
    assert!(
        volumes >= 2 && files >= 50,
        "{image}: suspiciously small tree"
    );
    eprintln!(
        "{image}: {} items agree ({volumes} volumes, {files} files)",
        want.len()
    );
}

#[test]
fn uefiextract_agrees_ovmf() {
    compare_with_uefiextract(OVMF);
}

#[test]
fn uefiextract_agrees_ovmf_secboot() {
    compare_with_uefiextract(OVMF_SB);
}

#[test]
fn uefiextract_agrees_ovmf32_secboot() {
    compare_with_uefiextract(OVMF32_SB);
}

#[test]
fn uefiextract_agrees_aavmf() {
    compare_with_uefiextract(AAVMF);
}

// ---------------------------------------------------------------------------------------------------
// CHIPSEC executables list
// ---------------------------------------------------------------------------------------------------

/// `(sha256 of section body, chipsec type, owning file GUID, UI name)` of every PE32/TE/PIC section.
fn executables(tree: &Region) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    fn rec(r: &Region, file: Option<&Region>, out: &mut Vec<(String, String, String, String)>) {
        let file = if r.kind == RegionKind::File {
            Some(r)
        } else {
            file
        };
        if r.kind == RegionKind::Section {
            let t = match r.attr_str("type") {
                Some("pe32") => Some("S_PE32"),
                Some("te") => Some("S_TE"),
                Some("pic") => Some("S_PIC"),
                Some("compat16") => Some("S_COMPAT16"),
                _ => None,
            };
            if let Some(t) = t {
                let f = file.expect("executable section outside a file");
                out.push((
                    fwscan::formats::uefi::section::body_sha256(r).unwrap(),
                    t.to_string(),
                    f.attr_str("guid").unwrap().to_string(),
                    f.attr_str("ui-name").unwrap_or("-").to_string(),
                ));
            }
        }
        for c in &r.children {
            rec(c, file, out);
        }
    }
    rec(tree, None, &mut out);
    out.sort();
    out
}

fn compare_with_chipsec(image: &str, list: &str) {
    if !have(image) {
        return;
    }
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/chipsec")
            .join(list),
    )
    .unwrap();
    let bytes = std::fs::read(image).unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let want_sha = lines.next().unwrap().strip_prefix("image-sha256 ").unwrap();
    let have_sha = fwscan::hash::digest(fwscan::hash::Alg::Sha256, &bytes);
    if want_sha != have_sha {
        crate::harness::skip(&format!(
            "{image} is not the Debian build the CHIPSEC list was made from ({want_sha}); \
             regenerate testdata/chipsec/{list} with the command in its header"
        ));
        return;
    }
    let mut want: Vec<(String, String, String, String)> = lines
        .map(|l| {
            let mut p = l.splitn(4, ' ');
            let mut n = || p.next().unwrap().to_string();
            (n(), n(), n(), n())
        })
        .collect();
    want.sort();
    let got = executables(&parse_bytes(bytes, true));
    if let Ok(chipsec) = std::env::var("FWSCAN_CHIPSEC_MAIN") {
        // Live check that the committed list is what CHIPSEC produces here.
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("image.fd");
        std::fs::copy(image, &img).unwrap();
        let json = dir.path().join("efilist.json");
        let st = Command::new(&chipsec)
            .args(["-i", "-n", "-m", "tools.uefi.scan_image", "-a"])
            .arg(format!("generate,{},{}", json.display(), img.display()))
            .output()
            .expect("run chipsec_main");
        assert!(st.status.success(), "chipsec failed");
        let live: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let mut live: Vec<(String, String, String, String)> = live
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let s = |f: &str| v[f].as_str().unwrap_or("-").to_string();
                (k.clone(), s("type"), s("guid"), s("name"))
            })
            .collect();
        live.sort();
        assert_eq!(
            live, want,
            "CHIPSEC's live list differs from testdata/chipsec/{list}"
        );
    }
    let ws: std::collections::BTreeSet<_> = want.iter().map(|w| &w.0).collect();
    let gs: std::collections::BTreeSet<_> = got.iter().map(|g| &g.0).collect();
    let missing: Vec<_> = ws.difference(&gs).collect();
    let extra: Vec<_> = gs.difference(&ws).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{image}: executables missing from fwscan: {missing:?}; not in CHIPSEC's list: {extra:?}"
    );
    // Same owning file GUID, UI name and type for every body.
    assert_eq!(
        got, want,
        "{image}: executables agree by digest but not by file/name/type"
    );
    eprintln!("{image}: {} executables agree with CHIPSEC", got.len());
}

#[test]
fn chipsec_executables_ovmf() {
    compare_with_chipsec(OVMF, "OVMF_CODE_4M.fd.txt");
}

#[test]
fn chipsec_executables_ovmf_secboot() {
    compare_with_chipsec(OVMF_SB, "OVMF_CODE_4M.secboot.fd.txt");
}

#[test]
fn chipsec_executables_ovmf32_secboot() {
    compare_with_chipsec(OVMF32_SB, "OVMF32_CODE_4M.secboot.fd.txt");
}

#[test]
fn chipsec_executables_aavmf() {
    compare_with_chipsec(AAVMF, "QEMU_EFI.fd.txt");
}

// ---------------------------------------------------------------------------------------------------
// Tamper tests on the real OVMF image
// ---------------------------------------------------------------------------------------------------

const DXEFV: &str = "7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1";

pub(crate) fn find<'a>(r: &'a Region, pred: &dyn Fn(&Region) -> bool) -> Option<&'a Region> {
    if pred(r) {
        return Some(r);
    }
    r.children.iter().find_map(|c| find(c, pred))
}

fn findings_after(clean: &[u8], tampered: &[u8]) -> (i32, Vec<Value>) {
    let (code, v) = scan_after(clean, tampered);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] != "manifest-unsigned")
        .cloned()
        .collect();
    (code, f)
}

/// `baseline` of `clean`, then `scan` of `tampered`: exit code and the JSON report.
fn scan_after(clean: &[u8], tampered: &[u8]) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let (c, t, m) = (
        dir.path().join("clean.fd"),
        dir.path().join("tampered.fd"),
        dir.path().join("m.json"),
    );
    std::fs::write(&c, clean).unwrap();
    std::fs::write(&t, tampered).unwrap();
    let st = Command::new(bin())
        .arg("baseline")
        .arg(&c)
        .arg("-o")
        .arg(&m)
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new(bin())
        .arg("scan")
        .arg(&t)
        .arg("-m")
        .arg(&m)
        .args(["--insecure-unsigned", "--format", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).expect("scan JSON");
    (out.status.code().unwrap_or(-1), v)
}

fn uefiextract_ok(image: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.fd");
    std::fs::write(&p, image).unwrap();
    let out = Command::new("UEFIExtract")
        .arg(&p)
        .arg("report")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !log.to_lowercase().contains("invalid") && !log.to_lowercase().contains("failed"),
        "UEFIExtract complains about the tampered image: {log}"
    );
    std::fs::read_to_string(dir.path().join("t.fd.report.txt")).unwrap()
}

fn assert_one(findings: &[Value], code: &str, guid: &str, name: Option<&str>) {
    assert_eq!(
        findings.len(),
        1,
        "expected exactly one {code}, got {}",
        serde_json::to_string_pretty(findings).unwrap()
    );
    let f = &findings[0];
    assert_eq!(f["code"], code, "{f}");
    let path = f["path"].as_str().unwrap();
    assert!(path.contains(guid), "{path} does not name {guid}");
    if let Some(n) = name {
        assert_eq!(f["name"], n, "{f}");
        assert!(path.ends_with(&format!("file[{guid}:{n}]")), "{path}");
    }
}

/// The compressed main volume of OVMF: the guided LZMA section, its file, its volume, and the decompressed
/// bytes (sections holding PEIFV and DXEFV).
pub(crate) struct Compact {
    vol_off: usize,
    vol_len: usize,
    vol_hdr: usize,
    file_off: usize,
    file_guid: [u8; 16],
    file_type: u8,
    file_attrs: u8,
    sec_off: usize,
    sec_len: usize,
    decompressed: Vec<u8>,
}

pub(crate) fn compact(image: &[u8], tree: &Region) -> Compact {
    let sec = find(tree, &|r| {
        r.attr_str("guid") == Some("EE4E5898-3914-4259-9D6E-DC7BD79403CF")
            && r.kind == RegionKind::Section
    })
    .expect("LZMA section");
    let file = find(tree, &|r| {
        r.kind == RegionKind::File && r.children.iter().any(|c| c.path == sec.path)
    })
    .unwrap();
    let vol = find(tree, &|r| {
        r.kind == RegionKind::Volume && r.children.iter().any(|c| c.path == file.path)
    })
    .unwrap();
    let inner = &sec.children[0];
    let fo = file.offset as usize;
    Compact {
        vol_off: vol.offset as usize,
        vol_len: vol.size as usize,
        vol_hdr: vol.children[0].size as usize,
        file_off: fo,
        file_guid: image[fo..fo + 16].try_into().unwrap(),
        file_type: image[fo + 0x12],
        file_attrs: image[fo + 0x13],
        sec_off: sec.offset as usize,
        sec_len: sec.size as usize,
        decompressed: inner.data.to_vec(),
    }
}

/// Rebuilds the compressed section, its file and its volume around new decompressed bytes.
pub(crate) fn rebuild(image: &[u8], c: &Compact, decompressed: &[u8]) -> Vec<u8> {
    let old = &image[c.sec_off..c.sec_off + c.sec_len];
    let doff = u16::from_le_bytes([old[20], old[21]]) as usize;
    let attrs = u16::from_le_bytes([old[22], old[23]]);
    let g: [u8; 16] = old[4..20].try_into().unwrap();
    let sec = b::guided(g, attrs, &old[24..doff], &b::lzma_compress(decompressed));
    let file = b::file(c.file_guid, c.file_type, &sec, c.file_attrs);
    let mut out = image.to_vec();
    let body = &mut out[c.vol_off + c.vol_hdr..c.vol_off + c.vol_len];
    body.fill(0xFF);
    let at = c.file_off - c.vol_off - c.vol_hdr;
    body[at..at + file.len()].copy_from_slice(&file);
    out
}

fn ovmf() -> Option<(Vec<u8>, Region)> {
    if !have(OVMF) || !have_uefiextract() {
        return None;
    }
    let bytes = std::fs::read(OVMF).unwrap();
    let tree = parse_bytes(bytes.clone(), true);
    Some((bytes, tree))
}

#[test]
fn tamper_secmain_byte_flip() {
    let Some((clean, tree)) = ovmf() else { return };
    let f = find(&tree, &|r| {
        r.attr_str("ui-name") == Some("SecMain") && r.kind == RegionKind::File
    })
    .expect("SecMain");
    assert_eq!(
        f.space,
        fwscan::region::Space::Image,
        "SecMain is uncompressed"
    );
    let guid = f.attr_str("guid").unwrap().to_string();
    let pe = find(f, &|r| matches!(r.attr_str("type"), Some("pe32" | "te"))).unwrap();
    let mut t = clean.clone();
    let at = (pe.offset + pe.size / 2) as usize;
    t[at] ^= 0x5A;
    b::fix_file_checksums(&mut t[f.offset as usize..(f.offset + f.size) as usize]);
    uefiextract_ok(&t);
    let (code, fs) = findings_after(&clean, &t);
    assert_eq!(code, 1);
    assert_one(&fs, "module-modified", &guid, Some("SecMain"));
    // The change is located: an absolute range in the image covering the flipped byte.
    let ranges = fs[0]["ranges"].as_array().unwrap();
    assert!(ranges.iter().any(|r| {
        let o = r["offset"].as_u64().unwrap();
        r["space"] == "image" && o <= at as u64 && (at as u64) < o + r["length"].as_u64().unwrap()
    }));
}

/// The n-th DXE driver of DXEFV (offsets in the decompressed buffer).
pub(crate) fn dxe_driver(tree: &Region, n: usize) -> Region {
    let fv = find(tree, &|r| {
        r.attr_str("guid") == Some(DXEFV) && r.kind == RegionKind::Volume
    })
    .expect("DXEFV");
    fv.children
        .iter()
        .filter(|c| c.attr_str("type") == Some("driver") && c.attr_str("ui-name").is_some())
        .nth(n)
        .expect("driver")
        .clone()
}

/// `image` (an OVMF with its DXE drivers in an LZMA-compressed volume) with one byte of the `n`-th DXE
/// driver's PE image flipped, the section recompressed and every checksum fixed; and the driver's GUID
/// and UI name.
pub(crate) fn patch_dxe_driver(image: &[u8], n: usize) -> (Vec<u8>, String, String) {
    let tree = parse_bytes(image.to_vec(), true);
    let c = compact(image, &tree);
    let drv = dxe_driver(&tree, n);
    let pe = find(&drv, &|r| r.attr_str("type") == Some("pe32")).unwrap();
    let mut d = c.decompressed.clone();
    let at = (pe.offset + pe.size / 3) as usize;
    d[at] ^= 0xFF;
    b::fix_file_checksums(&mut d[drv.offset as usize..(drv.offset + drv.size) as usize]);
    (
        rebuild(image, &c, &d),
        drv.attr_str("guid").unwrap().to_string(),
        drv.attr_str("ui-name").unwrap().to_string(),
    )
}

#[test]
fn tamper_driver_inside_lzma_volume() {
    let Some((clean, tree)) = ovmf() else { return };
    let c = compact(&clean, &tree);
    let drv = dxe_driver(&tree, 10);
    let (guid, name) = (
        drv.attr_str("guid").unwrap().to_string(),
        drv.attr_str("ui-name").unwrap().to_string(),
    );
    let pe = find(&drv, &|r| r.attr_str("type") == Some("pe32")).unwrap();
    let mut d = c.decompressed.clone();
    let at = (pe.offset + pe.size / 3) as usize;
    d[at] ^= 0xFF;
    b::fix_file_checksums(&mut d[drv.offset as usize..(drv.offset + drv.size) as usize]);
    let t = rebuild(&clean, &c, &d);
    assert_ne!(t, clean);
    let report = uefiextract_ok(&t);
    assert!(report.contains(&name), "UEFIExtract no longer sees {name}");
    let (code, fs) = findings_after(&clean, &t);
    assert_eq!(code, 1);
    assert_one(&fs, "module-modified", &guid, Some(&name));
    assert_eq!(fs[0]["space"], "decompressed");
    // Only the changed compressed section was decompressed during the scan.
    let (_, report) = scan_after(&clean, &t);
    assert_eq!(report["stats"]["nodes_expanded"], 1, "{}", report["stats"]);
}

#[test]
fn tamper_driver_inserted() {
    let Some((clean, tree)) = ovmf() else { return };
    let c = compact(&clean, &tree);
    let fv = find(&tree, &|r| {
        r.attr_str("guid") == Some(DXEFV) && r.kind == RegionKind::Volume
    })
    .unwrap();
    let free = fv
        .children
        .iter()
        .find(|r| r.kind == RegionKind::FreeSpace)
        .unwrap();
    let donor = dxe_driver(&tree, 3);
    let pe = find(&donor, &|r| r.attr_str("type") == Some("pe32")).unwrap();
    let g = "DEADBEEF-0BAD-4C0D-8E11-0123456789AB";
    let new = b::file(
        guid_bytes(g),
        0x07,
        &b::sections(&[pe.bytes().to_vec(), b::ui("Implant")]),
        0,
    );
    let mut d = c.decompressed.clone();
    let at = free.offset as usize;
    d[at..at + new.len()].copy_from_slice(&new);
    let t = rebuild(&clean, &c, &d);
    let report = uefiextract_ok(&t);
    assert!(report.contains(g) && report.contains("Implant"));
    let (code, fs) = findings_after(&clean, &t);
    assert_eq!(code, 1);
    assert_one(&fs, "module-added", g, Some("Implant"));
}

#[test]
fn tamper_driver_removed() {
    let Some((clean, tree)) = ovmf() else { return };
    let c = compact(&clean, &tree);
    let fv = find(&tree, &|r| {
        r.attr_str("guid") == Some(DXEFV) && r.kind == RegionKind::Volume
    })
    .unwrap();
    let drv = dxe_driver(&tree, 20);
    let (guid, name) = (
        drv.attr_str("guid").unwrap().to_string(),
        drv.attr_str("ui-name").unwrap().to_string(),
    );
    // Cut the file (and its alignment) out and shift the rest of the volume down; 0xFF at the end.
    let start = drv.offset as usize;
    let end = ((drv.offset + drv.size + 7) & !7) as usize;
    let fv_end = (fv.offset + fv.size) as usize;
    let mut d = c.decompressed.clone();
    d.copy_within(end..fv_end, start);
    d[fv_end - (end - start)..fv_end].fill(0xFF);
    let t = rebuild(&clean, &c, &d);
    let report = uefiextract_ok(&t);
    assert!(!report.contains(&guid));
    let (code, fs) = findings_after(&clean, &t);
    assert_eq!(code, 1);
    assert_one(&fs, "module-removed", &guid, Some(&name));
}

#[test]
fn clean_ovmf_scans_clean_and_lazily() {
    let Some((clean, _)) = ovmf() else { return };
    let (code, fs) = findings_after(&clean, &clean);
    assert!(fs.is_empty(), "{fs:?}");
    assert_eq!(code, 0);
    // Top-down: a clean image is one hash pass, nothing is decompressed.
    let (_, report) = scan_after(&clean, &clean);
    assert_eq!(report["stats"]["nodes_expanded"], 0, "{}", report["stats"]);
    assert_eq!(report["stats"]["bytes_hashed"], clean.len() as u64);
    // Lazy parse leaves the compressed section unexpanded.
    let lazy = parse_bytes(clean, false);
    let sec = find(&lazy, &|r| r.attr_str("type") == Some("guided")).unwrap();
    assert!(sec.expand.is_some() && sec.children.is_empty());
}

// ---------------------------------------------------------------------------------------------------
// Synthetic images from the builder: every encapsulation, checksum notes, malformed input
// ---------------------------------------------------------------------------------------------------

const NAME: &str = "A0A0A0A0-1111-4222-8333-444455556666";
const G_ALPHA: &str = "A1000000-0000-4000-8000-000000000001";
const G_BETA: &str = "A1000000-0000-4000-8000-000000000002";
const G_GAMMA: &str = "A1000000-0000-4000-8000-000000000003";
const G_DELTA: &str = "A1000000-0000-4000-8000-000000000004";
const G_EPS: &str = "A1000000-0000-4000-8000-000000000005";
const G_ZETA: &str = "A1000000-0000-4000-8000-000000000006";
const G_ETA: &str = "A1000000-0000-4000-8000-000000000007";
const G_THETA: &str = "A1000000-0000-4000-8000-000000000008";
const G_FV: &str = "A1000000-0000-4000-8000-000000000009";
const G_LARGE: &str = "A1000000-0000-4000-8000-00000000000A";
const G_IOTA: &str = "A1000000-0000-4000-8000-00000000000B";

fn fake_pe(tag: u8) -> Vec<u8> {
    let mut v = b"MZ".to_vec();
    v.extend((0..300u32).map(|i| (i as u8) ^ tag));
    v
}

fn code_sections(tag: u8, ui: &str) -> Vec<u8> {
    b::sections(&[b::section(0x10, &fake_pe(tag)), b::ui(ui)])
}

/// An FFSv2 volume using every encapsulation, and an FFSv3 volume with a large file nested in it.
fn synthetic(with_gz_brotli: bool) -> Vec<u8> {
    use fwscan::formats::decompress::efi::Version;
    let inner3 = b::volume(
        b::FFS3,
        None,
        &[b::file(
            guid_bytes(G_LARGE),
            0x07,
            &code_sections(9, "Large"),
            0x01 | 0x40,
        )],
        0x1000,
    );
    // Type-1 compressed sections with real LZ77 matches (UEFIExtract must decode them too).
    let efi_inner = b::sections(&[
        code_sections(5, "EpsInner"),
        b::section(0x19, &b"repetitive raw data ".repeat(40)),
    ]);
    let mut files = vec![
        b::file(guid_bytes(G_ALPHA), 0x07, &code_sections(1, "Alpha"), 0x40),
        b::file(
            guid_bytes(G_BETA),
            0x07,
            &b::sections(&[
                b::lzma_section(&code_sections(2, "BetaInner")),
                b::ui("Beta"),
            ]),
            0,
        ),
        b::file(
            guid_bytes(G_GAMMA),
            0x06,
            &b::sections(&[
                b::lzmaf86_section(&code_sections(3, "GammaIn")),
                b::ui("Gamma"),
            ]),
            0,
        ),
        b::file(
            guid_bytes(G_DELTA),
            0x07,
            &b::sections(&[
                b::crc32_section(&code_sections(4, "DeltaIn")),
                b::ui("Delta"),
            ]),
            0,
        ),
        b::file(
            guid_bytes(G_EPS),
            0x07,
            &b::sections(&[
                b::compression_section(
                    1,
                    efi_inner.len() as u32,
                    &b::efi_compress(&efi_inner, Version::Tiano),
                ),
                b::ui("Eps"),
            ]),
            0,
        ),
        b::file(
            guid_bytes(G_ZETA),
            0x07,
            &b::sections(&[
                b::compression_section(0, 0, &code_sections(6, "ZetaIn")),
                b::ui("Zeta"),
            ]),
            0,
        ),
        b::file(
            guid_bytes(G_IOTA),
            0x07,
            &b::sections(&[
                b::compression_section(
                    1,
                    efi_inner.len() as u32,
                    &b::efi_compress(&efi_inner, Version::Efi11),
                ),
                b::ui("Iota"),
            ]),
            0,
        ),
        b::pad_file(0x30),
        b::file(
            guid_bytes(G_FV),
            0x0B,
            &b::sections(&[b::fv_image(&inner3)]),
            0,
        ),
    ];
    if with_gz_brotli {
        files.push(b::file(
            guid_bytes(G_ETA),
            0x07,
            &b::sections(&[b::brotli_section(&code_sections(7, "EtaIn")), b::ui("Eta")]),
            0,
        ));
        files.push(b::file(
            guid_bytes(G_THETA),
            0x07,
            &b::sections(&[
                b::gzip_section(&code_sections(8, "ThetaIn")),
                b::ui("Theta"),
            ]),
            0,
        ));
    }
    b::volume(b::FFS2, Some(guid_bytes(NAME)), &files, 0x10000)
}

fn all_notes(r: &Region) -> Vec<(String, String)> {
    let mut v = Vec::new();
    r.walk(&mut |x| {
        for n in &x.notes {
            v.push((x.path.clone(), n.code.as_str().to_string()));
        }
    });
    v
}

fn paths(r: &Region) -> Vec<String> {
    let mut v = Vec::new();
    r.walk(&mut |x| v.push(x.path.clone()));
    v
}

#[test]
fn builder_image_parses_completely() {
    let img = synthetic(true);
    let tree = parse_bytes(img.clone(), true);
    assert_eq!(tree.attr_str("format"), Some("uefi"));
    assert!(all_notes(&tree).is_empty(), "{:?}", all_notes(&tree));
    let p = paths(&tree);
    let fv = format!("fv[{NAME}]");
    for want in [
        format!("{fv}/file[{G_ALPHA}:Alpha]/pe32"),
        format!("{fv}/file[{G_BETA}:Beta]/guided[EE4E5898-3914-4259-9D6E-DC7BD79403CF]/pe32"),
        format!("{fv}/file[{G_BETA}:Beta]/guided[EE4E5898-3914-4259-9D6E-DC7BD79403CF]/ui"),
        format!("{fv}/file[{G_GAMMA}:Gamma]/guided[D42AE6BD-1352-4BFB-909A-CA72A6EAE889]/pe32"),
        format!("{fv}/file[{G_DELTA}:Delta]/guided[FC1BCDB0-7D31-49AA-936A-A4600D9DD083]/pe32"),
        format!("{fv}/file[{G_EPS}:Eps]/compressed/pe32"),
        format!("{fv}/file[{G_ZETA}:Zeta]/compressed/pe32"),
        format!("{fv}/file[{G_IOTA}:Iota]/compressed/ui"),
        format!("{fv}/file[{G_ETA}:Eta]/guided[3D532050-5CDA-4FD0-879E-0F7F630D5AFB]/pe32"),
        format!("{fv}/file[{G_THETA}:Theta]/guided[1D301FE9-BE79-4353-91C2-D23BC959AE0C]/pe32"),
        format!("{fv}/file[{G_FV}]/fv-image/fv[5473C07A-3DCB-4DCA-BD6F-1E9689E7349A]/file[{G_LARGE}:Large]/pe32"),
        format!("{fv}/pad/free-space"),
        format!("{fv}/free-space"),
    ] {
        assert!(p.contains(&want), "missing {want}; have {p:#?}");
    }
    // The decompressed PE32 bodies are the ones that went in (BCJ undone for LZMAF86).
    let gamma = tree
        .find(&format!(
            "{fv}/file[{G_GAMMA}:Gamma]/guided[D42AE6BD-1352-4BFB-909A-CA72A6EAE889]/pe32"
        ))
        .unwrap();
    assert_eq!(&gamma.bytes()[4..], &fake_pe(3)[..]);
    // Type-1 compression: the EFI 1.1 stream is recognised as such (Tiano decoding gives garbage).
    for g in [G_EPS, G_IOTA] {
        let f = find(&tree, &|r| r.attr_str("guid") == Some(g)).unwrap();
        let pe = find(f, &|r| r.attr_str("type") == Some("pe32")).unwrap();
        assert_eq!(&pe.bytes()[4..], &fake_pe(5)[..]);
    }
    let large = tree
        .find(&format!("{fv}/file[{G_FV}]/fv-image/fv[5473C07A-3DCB-4DCA-BD6F-1E9689E7349A]/file[{G_LARGE}:Large]/header"))
        .unwrap();
    assert_eq!(large.size, 32, "FFSv3 large-file header");
    // Every byte of the image is covered by top-level nodes (nothing dropped).
    assert_eq!(
        tree.children.iter().map(|c| c.size).sum::<u64>(),
        img.len() as u64
    );
}

#[test]
fn builder_image_agrees_with_uefiextract() {
    if !have_uefiextract() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("synthetic.fd");
    // Brotli and gzip GUID-defined sections are left out: UEFIExtract does not decode gzip, and its
    // Brotli support varies by version.
    std::fs::write(&p, synthetic(false)).unwrap();
    compare_entries(p.to_str().unwrap());
}

fn compare_entries(image: &str) {
    let want = uefiextract_report(image);
    let doc = inspect_json(Path::new(image));
    let mut got = Vec::new();
    let img = std::fs::read(image).unwrap();
    fwscan_entries(&img, &doc["root"], 1, "", &mut got);
    for (i, (w, g)) in want.iter().zip(got.iter()).enumerate() {
        assert_eq!(w, g, "{image}: entry {i} differs (UEFIExtract vs fwscan)");
    }
    assert_eq!(want.len(), got.len(), "{image}: item counts differ");
}

fn notes_of(img: Vec<u8>) -> Vec<String> {
    all_notes(&parse_bytes(img, true))
        .into_iter()
        .map(|(_, c)| c)
        .collect()
}

#[test]
fn checksums_and_self_consistency_notes() {
    let img = synthetic(true);
    let tree = parse_bytes(img.clone(), true);
    let alpha = tree
        .find(&format!("fv[{NAME}]/file[{G_ALPHA}:Alpha]"))
        .unwrap();
    let a = alpha.offset as usize;
    // Header checksum.
    let mut t = img.clone();
    t[a + 0x10] ^= 1;
    assert_eq!(notes_of(t), vec!["ffs-header-checksum"]);
    // Data checksum (Alpha has FFS_ATTRIB_CHECKSUM): one body byte changed.
    let mut t = img.clone();
    t[a + 40] ^= 1;
    assert_eq!(notes_of(t), vec!["ffs-data-checksum"]);
    // Volume header checksum.
    let mut t = img.clone();
    t[0x36] ^= 1;
    assert_eq!(notes_of(t), vec!["fv-header-checksum"]);
    // Free space with data in it.
    let mut t = img.clone();
    let len = t.len();
    t[len - 100] = 0;
    assert_eq!(notes_of(t), vec!["not-blank"]);
    // Duplicate GUID: rename Beta to Alpha's GUID.
    let beta = tree
        .find(&format!("fv[{NAME}]/file[{G_BETA}:Beta]"))
        .unwrap();
    let mut t = img.clone();
    let bo = beta.offset as usize;
    t[bo..bo + 16].copy_from_slice(&guid_bytes(G_ALPHA));
    b::fix_file_checksums(&mut t[bo..bo + beta.size as usize]);
    assert_eq!(notes_of(t), vec!["duplicate-guid"]);
    // A pad file with data in it.
    let pad = tree.find(&format!("fv[{NAME}]/pad")).unwrap();
    let mut t = img.clone();
    t[(pad.offset + 30) as usize] = 0x90;
    b::fix_file_checksums(&mut t[pad.offset as usize..pad.end() as usize]);
    assert_eq!(notes_of(t), vec!["padding-not-empty"]);
    // CRC32 section whose data changed.
    let delta = tree
        .find(&format!("fv[{NAME}]/file[{G_DELTA}:Delta]"))
        .unwrap();
    let mut t = img.clone();
    t[(delta.offset + 60) as usize] ^= 0x10;
    b::fix_file_checksums(&mut t[delta.offset as usize..delta.end() as usize]);
    assert_eq!(notes_of(t), vec!["guided-section-crc32"]);
}

/// Parses `img` and checks the invariants that matter for hostile input: it finishes quickly and every
/// byte is still covered by a node.
fn parse_hostile(img: Vec<u8>, what: &str) -> Region {
    let len = img.len() as u64;
    let t0 = std::time::Instant::now();
    let tree = parse_bytes(img, true);
    assert!(
        t0.elapsed().as_secs() < 10,
        "{what}: took {:?}",
        t0.elapsed()
    );
    if !tree.children.is_empty() {
        assert_eq!(
            tree.children.iter().map(|c| c.size).sum::<u64>(),
            len,
            "{what}: bytes not covered"
        );
    }
    tree
}

#[test]
fn truncated_at_every_structure_boundary() {
    let img = synthetic(true);
    let tree = parse_bytes(img.clone(), true);
    let mut cuts = std::collections::BTreeSet::new();
    tree.walk(&mut |r| {
        if r.space == fwscan::region::Space::Image {
            cuts.insert(r.offset);
            cuts.insert(r.end());
            cuts.insert(r.offset + 1);
            cuts.insert(r.end().saturating_sub(1));
        }
    });
    let mut with_notes = 0;
    for &c in &cuts {
        if c == 0 || c >= img.len() as u64 {
            continue;
        }
        let t = parse_hostile(img[..c as usize].to_vec(), &format!("cut at {c:#x}"));
        if !all_notes(&t).is_empty() {
            with_notes += 1;
        }
    }
    assert!(cuts.len() > 100);
    // A cut inside the volume always leaves a volume that runs past the end.
    assert!(
        with_notes + 2 >= cuts.len() - 2,
        "{with_notes} of {} cuts noticed",
        cuts.len()
    );
}

#[test]
fn size_fields_zero_and_all_ones() {
    let img = synthetic(true);
    let tree = parse_bytes(img.clone(), true);
    let mut headers: Vec<(u64, &'static str)> = vec![];
    tree.walk(&mut |r| {
        if r.space != fwscan::region::Space::Image {
            return;
        }
        match r.kind {
            RegionKind::File => headers.push((r.offset + 0x14, "file")),
            RegionKind::Section => headers.push((r.offset, "section")),
            _ => {}
        }
    });
    assert!(headers.len() > 20);
    for (off, what) in headers {
        for v in [0u32, 0xFFFFFF] {
            let mut t = img.clone();
            t[off as usize..off as usize + 3].copy_from_slice(&v.to_le_bytes()[..3]);
            if t == img {
                continue; // a large file's 24-bit size is already 0
            }
            let tree = parse_hostile(t, &format!("{what} size {v:#x} at {off:#x}"));
            let notes = all_notes(&tree);
            assert!(
                !notes.is_empty(),
                "{what} size {v:#x} at {off:#x} went unnoticed"
            );
        }
    }
    // Volume length fields.
    for (off, bytes) in [
        (0x20usize, 0u64.to_le_bytes().to_vec()),
        (0x20, u64::MAX.to_le_bytes().to_vec()),
        (0x20, 0xFFFF_FFFFu64.to_le_bytes().to_vec()),
        (0x30, 0u16.to_le_bytes().to_vec()),
        (0x30, 0xFFFFu16.to_le_bytes().to_vec()),
    ] {
        let mut t = img.clone();
        t[off..off + bytes.len()].copy_from_slice(&bytes);
        let tree = parse_hostile(t, &format!("volume field at {off:#x}"));
        // Either the header is rejected (the volume is gone from the tree: with a baseline that is a
        // removed region) or the volume carries notes.
        let outer = tree.find(&format!("fv[{NAME}]"));
        assert!(
            outer.is_none() || !all_notes(&tree).is_empty(),
            "volume field at {off:#x} went unnoticed"
        );
    }
}

#[test]
fn fv_length_past_the_end() {
    let mut img = synthetic(false);
    img[0x20..0x28].copy_from_slice(&0x20000u64.to_le_bytes());
    b::fix_volume_checksum(&mut img);
    let tree = parse_hostile(img, "FvLength past end");
    let n = all_notes(&tree);
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].1, "partition-out-of-bounds");
}

#[test]
fn zero_length_file() {
    let mut v = b::volume(b::FFS2, None, &[], 0x1000);
    // A file header whose size is 0, with correct checksums otherwise.
    let mut f = b::file(guid_bytes(G_ALPHA), 0x07, &[], 0);
    f[0x14..0x17].copy_from_slice(&[0, 0, 0]);
    b::fix_file_checksums(&mut f);
    v[0x48..0x48 + f.len()].copy_from_slice(&f);
    let tree = parse_hostile(v, "zero-length file");
    let n = all_notes(&tree);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].1, "unparsed");
}

#[test]
fn self_nesting_volumes_stop_at_the_depth_limit() {
    // 40 volumes each inside an FV image file of the previous one: deeper than the default limit of 24.
    let mut v = b::volume(b::FFS2, None, &[], 0x100);
    for _ in 0..40 {
        let f = b::file(guid_bytes(G_FV), 0x0B, &b::fv_image(&v), 0);
        let size = (0x48 + f.len() + 0x100 + 7) & !7;
        v = b::volume(b::FFS2, None, &[f], size);
    }
    let tree = parse_hostile(v, "deep nesting");
    let n = all_notes(&tree);
    assert!(n.iter().any(|(_, c)| c == "limit-exceeded"), "{n:?}");
}

fn lzma_file(payload: Vec<u8>) -> Vec<u8> {
    let sec = b::guided(b::LZMA, 0x01, &[], &payload);
    let f = b::file(guid_bytes(G_BETA), 0x07, &sec, 0);
    let size = (0x48 + f.len() + 0x100 + 0xFFF) & !0xFFF;
    b::volume(b::FFS2, None, &[f], size)
}

#[test]
fn lzma_header_claiming_2_pow_40() {
    let mut c = b::lzma_compress(&code_sections(1, "X"));
    c[5..13].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let tree = parse_hostile(lzma_file(c), "2^40 LZMA");
    let n = all_notes(&tree);
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].1, "limit-exceeded");
    assert!(n[0]
        .0
        .ends_with("guided[EE4E5898-3914-4259-9D6E-DC7BD79403CF]"));
}

#[test]
fn corrupt_lzma_is_decompress_failed_and_still_hashed() {
    let mut c = b::lzma_compress(&code_sections(1, "X"));
    let l = c.len();
    c.truncate(l - 20);
    let tree = parse_hostile(lzma_file(c), "truncated LZMA");
    let n = all_notes(&tree);
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].1, "decompress-failed");
    let sec = find(&tree, &|r| r.attr_str("type") == Some("guided")).unwrap();
    assert!(sec.children.is_empty() && sec.size > 0);
}

fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn lzma_bomb_of_one_gib_zeros() {
    use liblzma::stream::{Action, LzmaOptions, Status, Stream};
    // Stream 1 GiB of zeros through the encoder (never holding it in memory).
    let opts = LzmaOptions::new_preset(1).unwrap();
    let mut s = Stream::new_lzma_encoder(&opts).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut out = Vec::with_capacity(1 << 20);
    for _ in 0..1024 {
        let mut input: &[u8] = &zeros;
        while !input.is_empty() {
            if out.capacity() - out.len() < 65536 {
                out.reserve(1 << 20);
            }
            let before = s.total_in();
            s.process_vec(input, &mut out, Action::Run).unwrap();
            input = &input[(s.total_in() - before) as usize..];
        }
    }
    loop {
        out.reserve(65536);
        if s.process_vec(&[], &mut out, Action::Finish).unwrap() == Status::StreamEnd {
            break;
        }
    }
    assert!(out.len() < 1 << 20, "bomb is {} bytes", out.len());
    let before = vm_hwm_kib();
    let t0 = std::time::Instant::now();
    let tree = parse_hostile(lzma_file(out), "1 GiB LZMA bomb");
    let n = all_notes(&tree);
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].1, "limit-exceeded");
    assert!(t0.elapsed().as_secs() < 10);
    if let (Some(b0), Some(b1)) = (before, vm_hwm_kib()) {
        // The per-section cap is 64 MiB; peak memory must stay far below the 1 GiB the bomb claims.
        assert!(
            b1 < b0 + 400 * 1024,
            "peak memory grew from {b0} KiB to {b1} KiB"
        );
    }
}

#[test]
fn nvram_volume_never_raises_a_false_alarm() {
    let mut nv = b::volume(b::FFS2, None, &[], 0x2000);
    nv[0x10..0x20].copy_from_slice(&guid_bytes("FFF12B8D-7696-4C8B-A985-2747075B4F50"));
    b::fix_volume_checksum(&mut nv);
    let code = synthetic(false);
    let clean = [nv.clone(), code.clone()].concat();
    let tree = parse_bytes(clean.clone(), true);
    let v = tree
        .find("fv[FFF12B8D-7696-4C8B-A985-2747075B4F50]")
        .expect("NVRAM volume");
    if formats::by_name("nvram").is_none() {
        assert_eq!(v.policy, fwscan::region::Policy::Mutable);
        assert_eq!(v.children[0].name, "header");
    }
    let mut t = clean.clone();
    t[0x1000] = 0x00; // inside the store, not the header
    let (code, fs) = findings_after(&clean, &t);
    assert!(fs.is_empty(), "{fs:?}");
    assert_eq!(code, 0);
}

#[test]
fn random_mutations_never_panic() {
    // A deterministic mutation run over the builder image (the fuzz targets do the same without bounds).
    let img = synthetic(true);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..1500 {
        let mut t = img.clone();
        for _ in 0..1 + rnd() % 8 {
            let at = (rnd() % t.len() as u64) as usize;
            t[at] = match rnd() % 4 {
                0 => 0,
                1 => 0xFF,
                _ => rnd() as u8,
            };
        }
        if i % 3 == 0 {
            let cut = (rnd() % t.len() as u64) as usize;
            t.truncate(cut.max(1));
        }
        parse_hostile(t.clone(), &format!("mutation {i}"));
        // Lazy parse and expansion of every compressed node.
        let mut lazy = parse_bytes(t, false);
        lazy.walk_mut(&mut |r| {
            r.expand();
        });
    }
}

#[test]
fn tamper_driver_inserted_in_the_middle() {
    // Every later file shifts: still exactly one module-added (no module-moved, no padding noise).
    let Some((clean, tree)) = ovmf() else { return };
    let c = compact(&clean, &tree);
    let fv = find(&tree, &|r| {
        r.attr_str("guid") == Some(DXEFV) && r.kind == RegionKind::Volume
    })
    .unwrap();
    let fv_end = (fv.offset + fv.size) as usize;
    let at = dxe_driver(&tree, 30).offset as usize;
    let donor = dxe_driver(&tree, 3);
    let pe = find(&donor, &|r| r.attr_str("type") == Some("pe32")).unwrap();
    let g = "DEADBEEF-0BAD-4C0D-8E11-0123456789AC";
    let mut new = b::file(
        guid_bytes(g),
        0x07,
        &b::sections(&[pe.bytes().to_vec(), b::ui("Implant2")]),
        0,
    );
    while new.len() % 8 != 0 {
        new.push(0xFF);
    }
    let mut d = c.decompressed.clone();
    d.copy_within(at..fv_end - new.len(), at + new.len());
    d[at..at + new.len()].copy_from_slice(&new);
    let t = rebuild(&clean, &c, &d);
    let report = uefiextract_ok(&t);
    assert!(report.contains(g));
    let (code, fs) = findings_after(&clean, &t);
    assert_eq!(code, 1);
    assert_one(&fs, "module-added", g, Some("Implant2"));
}

#[test]
fn erase_polarity_zero_free_space_is_not_a_false_alarm() {
    // A volume with EFI_FVB2_ERASE_POLARITY clear: its free space is 0x00, which is not the image's
    // blank byte, so it must neither be flagged nor checked as 0xFF-blank.
    let mut v = b::volume(
        b::FFS2,
        None,
        &[b::file(
            guid_bytes(G_ALPHA),
            0x07,
            &code_sections(1, "Alpha"),
            0,
        )],
        0x2000,
    );
    v[0x2D] &= !0x08; // clear bit 11 (0x800)
    let fsize = v[0x48 + 0x14] as usize | (v[0x48 + 0x15] as usize) << 8;
    let end = 0x48 + fsize.div_ceil(8) * 8;
    v[end..].fill(0);
    // File state bits are inverted for polarity 0; UEFI tools accept either here.
    b::fix_volume_checksum(&mut v);
    let tree = parse_bytes(v.clone(), true);
    assert!(all_notes(&tree).is_empty(), "{:?}", all_notes(&tree));
    let fs = find(&tree, &|r| r.kind == RegionKind::FreeSpace).expect("free space");
    assert_eq!(fs.policy, fwscan::region::Policy::Static);
    let (code, fs) = findings_after(&v, &v);
    assert!(fs.is_empty(), "{fs:?}");
    assert_eq!(code, 0);
}

#[test]
fn uefiextract_agrees_on_every_installed_firmware_image() {
    // Beyond the four named images: every OVMF/AAVMF code image the packages install.
    if !have_uefiextract() {
        return;
    }
    let mut n = 0;
    for dir in ["/usr/share/OVMF", "/usr/share/AAVMF"] {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for p in files {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".fd") && name.contains("CODE") {
                compare_entries(p.to_str().unwrap());
                n += 1;
            }
        }
    }
    if n == 0 {
        crate::harness::skip("no OVMF/AAVMF images installed");
    }
}

#[test]
fn bios_region_inside_a_larger_image_is_detected_and_parsed_in_place() {
    // What the IFD parser does: detect(bios_region_bytes, false), then parse_into the region node.
    let vol = synthetic(false);
    let mut img = vec![0xFFu8; 0x3000];
    img.extend_from_slice(&vol);
    img.extend(std::iter::repeat_n(0xFF, 0x1000));
    let data = Arc::new(Data::Owned(img));
    let mut bios = Region::new(
        RegionKind::FlashRegion,
        "bios",
        &data,
        0x2000,
        0x1000 + 0x10000 + 0x800,
    );
    let f = formats::detect(bios.bytes(), false).expect("uefi detected in the BIOS region");
    assert_eq!(f.name, "uefi");
    let ctx = formats::Ctx::new(&ParseOptions::default());
    assert!(formats::parse_into(&ctx, &mut bios, f));
    let kinds: Vec<_> = bios
        .children
        .iter()
        .map(|c| (c.kind, c.offset, c.size))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (RegionKind::Padding, 0x2000, 0x1000),
            (RegionKind::Volume, 0x3000, 0x10000),
            (RegionKind::Padding, 0x13000, 0x800),
        ]
    );
    let v = &bios.children[1];
    assert_eq!(v.name, format!("fv[{NAME}]"));
    assert!(v
        .children
        .iter()
        .any(|c| c.attr_str("ui-name") == Some("Alpha")));
}
