//! UEFI firmware parsing against the reference tools (UEFIExtract, CHIPSEC), tamper detection on real OVMF
//! images, and malformed input. Tests that need a Debian package skip with a message when it is absent.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

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
    env!("CARGO_BIN_EXE_fwscan")
}

fn have(path: &str) -> bool {
    if Path::new(path).exists() {
        true
    } else {
        eprintln!(
            "SKIP: {path} is not installed (Debian packages ovmf, ovmf-ia32, qemu-efi-aarch64)"
        );
        false
    }
}

fn have_uefiextract() -> bool {
    let ok = Command::new("UEFIExtract").output().is_ok();
    if !ok {
        eprintln!("SKIP: UEFIExtract is not installed (Debian package uefitool-cli)");
    }
    ok
}

fn inspect_json(path: &Path) -> Value {
    let out = Command::new(bin())
        .args(["inspect", "--format", "json"])
        .arg(path)
        .output()
        .expect("run fwscan");
    assert!(
        out.status.success(),
        "fwscan inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inspect JSON")
}

fn parse_bytes(bytes: Vec<u8>, eager: bool) -> Region {
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
fn fwscan_entries(n: &Value, depth: usize, parent_kind: &str, out: &mut Vec<Entry>) {
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
            subtype: if n["policy"] == "blank" {
                "Empty (0xFF)".into()
            } else {
                "Non-empty".into()
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
            fwscan_entries(c, next, kind, out);
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
    fwscan_entries(&doc["root"], 1, "", &mut got);
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
        eprintln!(
            "SKIP: {image} is not the Debian build the CHIPSEC list was made from ({want_sha}); \
             regenerate testdata/chipsec/{list} with the command in its header"
        );
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

fn find<'a>(r: &'a Region, pred: &dyn Fn(&Region) -> bool) -> Option<&'a Region> {
    if pred(r) {
        return Some(r);
    }
    r.children.iter().find_map(|c| find(c, pred))
}

fn findings_after(clean: &[u8], tampered: &[u8]) -> (i32, Vec<Value>) {
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
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] != "manifest-unsigned")
        .cloned()
        .collect();
    (out.status.code().unwrap_or(-1), f)
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
struct Compact {
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

fn compact(image: &[u8], tree: &Region) -> Compact {
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
fn rebuild(image: &[u8], c: &Compact, decompressed: &[u8]) -> Vec<u8> {
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
fn dxe_driver(tree: &Region, n: usize) -> Region {
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
    // Lazy parse leaves the compressed section unexpanded.
    let lazy = parse_bytes(clean, false);
    let sec = find(&lazy, &|r| r.attr_str("type") == Some("guided")).unwrap();
    assert!(sec.expand.is_some() && sec.children.is_empty());
}
