//! NVRAM stores: OVMF variable stores against UEFIExtract and an independent reading, Secure Boot
//! variables, pinning, and malformed stores.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const OVMF: &str = "/usr/share/OVMF";
const VARS_FILES: [&str; 5] = [
    "OVMF_VARS_4M.fd",
    "OVMF_VARS_4M.ms.fd",
    "OVMF_VARS.fd",
    "OVMF_VARS.ms.fd",
    "OVMF32_VARS_4M.fd",
];
const GLOBAL: &str = "8BE4DF61-93CA-11D2-AA0D-00E098032B8C";
const IMAGE_SECURITY: &str = "D719B2CB-3D3A-4596-A3BC-DAD00E67656F";

use crate::harness::fwscan;
use crate::harness::inspect_json;

fn ovmf(name: &str) -> Option<PathBuf> {
    let p = Path::new(OVMF).join(name);
    if p.exists() {
        Some(p)
    } else {
        crate::harness::skip(&format!(
            "{} not installed (Debian package ovmf)",
            p.display()
        ));
        None
    }
}

fn walk<'a>(n: &'a Value, f: &mut dyn FnMut(&'a Value)) {
    f(n);
    if let Some(c) = n["children"].as_array() {
        for k in c {
            walk(k, f);
        }
    }
}

fn nodes(root: &Value) -> Vec<&Value> {
    let mut v = Vec::new();
    walk(root, &mut |n| v.push(n));
    v
}

fn u(n: &Value, k: &str) -> u64 {
    n[k].as_u64().unwrap()
}

/// One variable as (offset, size, vendor GUID, name, live).
type Var = (u64, u64, String, String, bool);

fn fwscan_vars(root: &Value) -> Vec<Var> {
    nodes(root)
        .into_iter()
        .filter(|n| n["kind"] == "variable")
        .map(|n| {
            let st = n["attrs"]["state"].as_str().unwrap();
            (
                u(n, "offset"),
                u(n, "size"),
                n["attrs"]["vendor-guid"].as_str().unwrap().to_string(),
                n["attrs"]["name"].as_str().unwrap().to_string(),
                st == "added" || st == "in-transition",
            )
        })
        .collect()
}

fn guid_str(b: &[u8]) -> String {
    let d1 = u32::from_le_bytes(b[0..4].try_into().unwrap());
    let d2 = u16::from_le_bytes(b[4..6].try_into().unwrap());
    let d3 = u16::from_le_bytes(b[6..8].try_into().unwrap());
    let tail: String = b[8..16].iter().map(|x| format!("{x:02X}")).collect();
    format!("{d1:08X}-{d2:04X}-{d3:04X}-{}-{}", &tail[..4], &tail[4..])
}

/// Independent reading of an OVMF authenticated VSS2 store (written here, not shared with the parser):
/// the store header follows the FV header; each variable has the 60-byte authenticated header.
fn independent_vars(img: &[u8]) -> Vec<Var> {
    let fv_hdr = u16::from_le_bytes([img[0x30], img[0x31]]) as usize;
    let store_size = u32::from_le_bytes(img[fv_hdr + 16..fv_hdr + 20].try_into().unwrap()) as usize;
    let end = fv_hdr + store_size;
    let mut p = fv_hdr + 28;
    let mut out = Vec::new();
    while p + 60 <= end && img[p] == 0xAA && img[p + 1] == 0x55 {
        let state = img[p + 2];
        let ns = u32::from_le_bytes(img[p + 36..p + 40].try_into().unwrap()) as usize;
        let ds = u32::from_le_bytes(img[p + 40..p + 44].try_into().unwrap()) as usize;
        let g = guid_str(&img[p + 44..p + 60]);
        let raw: Vec<u16> = img[p + 60..p + 60 + ns]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&c| c != 0)
            .collect();
        let name = String::from_utf16(&raw).unwrap();
        let total = 60 + ns + ds;
        out.push((
            p as u64,
            total as u64,
            g,
            name,
            state == 0x3F || state == 0x3E,
        ));
        p = (p + total + 3) & !3;
    }
    out
}

fn uefiextract() -> Option<PathBuf> {
    let p = Path::new("/usr/bin/UEFIExtract");
    p.exists().then(|| p.to_path_buf())
}

/// UEFIExtract's report rows: (type, subtype, base, size, name-column).
fn uefiextract_rows(img: &Path) -> Vec<(String, String, u64, u64, String)> {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("image.fd");
    std::fs::copy(img, &copy).unwrap();
    let st = Command::new("UEFIExtract")
        .arg(&copy)
        .arg("report")
        .output()
        .unwrap();
    assert!(st.status.success() || dir.path().join("image.fd.report.txt").exists());
    let text = std::fs::read_to_string(dir.path().join("image.fd.report.txt")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            if cols.len() < 6 {
                return None;
            }
            Some((
                cols[0].to_string(),
                cols[1].to_string(),
                u64::from_str_radix(cols[2], 16).ok()?,
                u64::from_str_radix(cols[3], 16).ok()?,
                cols[5..].join("|"),
            ))
        })
        .collect()
}

#[test]
fn ovmf_variables_match_uefiextract_and_an_independent_reading() {
    let mut checked = 0;
    for f in VARS_FILES {
        let Some(path) = ovmf(f) else { continue };
        let img = std::fs::read(&path).unwrap();
        let tree = inspect_json(&path);
        let root = &tree["root"];
        let mut ours = fwscan_vars(root);
        ours.sort();
        let mut theirs = independent_vars(&img);
        theirs.sort();
        assert_eq!(ours, theirs, "{f}: fwscan vs independent reading");
        if f.contains(".ms.") {
            assert!(ours.len() > 40, "{f}: expected enrolled variables");
        }
        if uefiextract().is_none() {
            println!("UEFIExtract not installed (Debian uefitool-cli): compared with the independent reading only");
            checked += 1;
            continue;
        }
        let rows = uefiextract_rows(&path);
        let all = nodes(root);
        let find = |off: u64, size: u64, kind: &str| {
            all.iter()
                .find(|n| u(n, "offset") == off && u(n, "size") == size && n["kind"] == kind)
                .copied()
        };
        let mut entries = 0;
        let mut stores = 0;
        for (ty, sub, base, size, name) in &rows {
            match ty.as_str() {
                "VSS entry" => {
                    entries += 1;
                    let n = find(*base, *size, "variable")
                        .unwrap_or_else(|| panic!("{f}: no variable at {base:#x}+{size:#x}"));
                    if sub == "Invalid" {
                        assert_eq!(n["attrs"]["state"], "deleted", "{f} {base:#x}");
                    } else {
                        // "--- GUID | Name"
                        let (g, nm) = name.trim_start_matches('-').trim().split_once('|').unwrap();
                        assert_eq!(n["attrs"]["vendor-guid"], g.trim(), "{f} {base:#x}");
                        assert_eq!(n["attrs"]["name"], nm.trim(), "{f} {base:#x}");
                        assert!(n["name"].as_str().unwrap().starts_with("var["));
                    }
                }
                "VSS2 store" | "FTW store" => {
                    stores += 1;
                    assert!(
                        find(*base, *size, "nvram-store").is_some(),
                        "{f}: {ty} at {base:#x}"
                    );
                }
                "Free space" | "Padding" if name.starts_with("--") => {
                    assert!(
                        find(*base, *size, "free-space").is_some(),
                        "{f}: {ty} at {base:#x}+{size:#x}"
                    );
                }
                _ => {}
            }
        }
        assert_eq!(
            entries,
            ours.len(),
            "{f}: same number of variables, no more"
        );
        println!("{f}: {entries} variables and {stores} stores agree with UEFIExtract");
        let our_stores = all.iter().filter(|n| n["kind"] == "nvram-store").count();
        assert_eq!(stores, our_stores, "{f}: same stores");
        checked += 1;
    }
    if checked == 0 {
        crate::harness::skip("no OVMF variable store installed");
    }
}

#[test]
fn ms_store_names_secure_boot_variables() {
    let Some(path) = ovmf("OVMF_VARS_4M.ms.fd") else {
        return;
    };
    let tree = inspect_json(&path);
    let mut sb: Vec<(String, String, String)> = nodes(&tree["root"])
        .into_iter()
        .filter(|n| n["attrs"]["secure-boot"] == true)
        .map(|n| {
            (
                n["attrs"]["vendor-guid"].as_str().unwrap().to_string(),
                n["attrs"]["name"].as_str().unwrap().to_string(),
                n["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    sb.sort();
    let want = |g: &str, n: &str| (g.to_string(), n.to_string(), format!("var[{g}:{n}]"));
    let mut expected = vec![
        want(GLOBAL, "KEK"),
        want(GLOBAL, "PK"),
        want(IMAGE_SECURITY, "db"),
        want(IMAGE_SECURITY, "dbx"),
    ];
    expected.sort();
    assert_eq!(sb, expected);
    // The text tree lists variables by name and vendor GUID.
    let out = fwscan().arg("inspect").arg(&path).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("var[{IMAGE_SECURITY}:dbx]")),
        "{text}"
    );
    assert!(text.contains(&format!("var[{GLOBAL}:PK]")));
}

/// Offset and size of the `data` child of the variable at `path`.
fn data_of(tree: &Value, suffix: &str) -> (usize, usize) {
    let v = nodes(&tree["root"])
        .into_iter()
        .find(|n| n["path"].as_str().unwrap().ends_with(suffix))
        .unwrap_or_else(|| panic!("no {suffix}"));
    let d = v["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "data")
        .unwrap();
    (u(d, "offset") as usize, u(d, "size") as usize)
}

fn scan(img: &Path, manifest: &Path) -> (i32, Value) {
    let out = fwscan()
        .arg("scan")
        .arg(img)
        .arg("--manifest")
        .arg(manifest)
        .args(["--insecure-unsigned", "--format", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

#[test]
fn pinned_dbx_is_compared_other_variables_are_not() {
    let Some(path) = ovmf("OVMF_VARS_4M.ms.fd") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let golden = std::fs::read(&path).unwrap();
    let man = dir.path().join("m.json");
    let st = fwscan()
        .arg("baseline")
        .arg(&path)
        .arg("-o")
        .arg(&man)
        .args(["--pin", "**/var[*:dbx]"])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let tree = inspect_json(&path);

    // An unpinned variable's data changes: per-machine, clean.
    let (off, len) = data_of(&tree, &format!("var[{GLOBAL}:Timeout]"));
    assert!(len > 0);
    let mut img = golden.clone();
    img[off] ^= 0x01;
    let p = dir.path().join("timeout.fd");
    std::fs::write(&p, &img).unwrap();
    let (code, rep) = scan(&p, &man);
    assert_eq!(code, 0, "{rep:#}");

    // The pinned dbx changes: variable-modified on dbx.
    let (off, len) = data_of(&tree, &format!("var[{IMAGE_SECURITY}:dbx]"));
    let mut img = golden.clone();
    img[off + len - 1] ^= 0xFF;
    let p = dir.path().join("dbx.fd");
    std::fs::write(&p, &img).unwrap();
    let (code, rep) = scan(&p, &man);
    assert_eq!(code, 1, "{rep:#}");
    let f = rep["findings"].as_array().unwrap();
    assert_eq!(f.len(), 1, "{rep:#}");
    assert_eq!(f[0]["code"], "variable-modified");
    assert!(f[0]["path"]
        .as_str()
        .unwrap()
        .ends_with(&format!("var[{IMAGE_SECURITY}:dbx]")));

    // Without the pin the same dbx change is not a finding.
    let man2 = dir.path().join("m2.json");
    assert!(fwscan()
        .arg("baseline")
        .arg(&path)
        .arg("-o")
        .arg(&man2)
        .status()
        .unwrap()
        .success());
    assert_eq!(scan(&p, &man2).0, 0);
}

fn parse_lib(bytes: Vec<u8>) -> fwscan::region::Region {
    let data = std::sync::Arc::new(fwscan::input::Data::Owned(bytes));
    fwscan::formats::parse_image(data, &fwscan::formats::ParseOptions::default())
}

fn all_notes(r: &fwscan::region::Region) -> Vec<String> {
    fwscan::region::note_findings(r)
        .into_iter()
        .map(|f| f.code.to_string())
        .collect()
}

#[test]
fn malformed_stores_give_notes_not_panics() {
    let Some(path) = ovmf("OVMF_VARS_4M.ms.fd") else {
        return;
    };
    let golden = std::fs::read(&path).unwrap();
    let tree = parse_lib(golden.clone());
    // Every structure boundary: each node's start and end.
    let mut cuts = std::collections::BTreeSet::new();
    tree.walk(&mut |r| {
        cuts.insert(r.offset as usize);
        cuts.insert(r.end() as usize);
        cuts.insert(r.offset as usize + 1);
    });
    let t0 = std::time::Instant::now();
    for &c in &cuts {
        if c <= golden.len() {
            let _ = parse_lib(golden[..c].to_vec());
        }
    }
    // Cutting in the middle of the store: the volume is past the end -> a note.
    let t = parse_lib(golden[..0x3000].to_vec());
    assert!(
        all_notes(&t).iter().any(|c| c == "partition-out-of-bounds"),
        "{:?}",
        all_notes(&t)
    );
    // Size fields of 0 and 0xFFFFFFFF in the store header and in a variable.
    let store = 0x48;
    for v in [0u32, u32::MAX] {
        let mut img = golden.clone();
        img[store + 16..store + 20].copy_from_slice(&v.to_le_bytes());
        let t = parse_lib(img);
        assert!(t.count() > 1);
        for field in [36usize, 40] {
            let mut img = golden.clone();
            let var = 0x64; // first variable
            img[var + field..var + field + 4].copy_from_slice(&v.to_le_bytes());
            let t = parse_lib(img);
            let notes = all_notes(&t);
            if v == u32::MAX {
                assert!(notes.iter().any(|c| c == "unparsed"), "{notes:?}");
            }
        }
    }
    // A variable whose data runs past the store.
    let mut img = golden.clone();
    img[0x64 + 40..0x64 + 44].copy_from_slice(&0x7FFF_0000u32.to_le_bytes());
    let t = parse_lib(img);
    let mut corrupt = 0;
    t.walk(&mut |r| {
        if r.name == "corrupt" {
            corrupt += 1;
            assert_eq!(r.notes[0].code.as_str(), "unparsed");
        }
    });
    assert_eq!(corrupt, 1);
    // FV length past the end and absurd.
    for v in [0u64, u64::MAX, 0x1_0000_0000] {
        let mut img = golden.clone();
        img[0x20..0x28].copy_from_slice(&v.to_le_bytes());
        let _ = parse_lib(img);
    }
    // A store full of tiny NVAR entries: bounded.
    let mut nv = Vec::new();
    while nv.len() < 0x40000 {
        nv.extend(b"NVAR");
        nv.extend(10u16.to_le_bytes());
        nv.extend([0xFF, 0xFF, 0xFF, 0x88]);
    }
    let t = parse_lib(nv);
    assert!(t.count() > 1000);
    assert!(t0.elapsed().as_secs() < 60, "took {:?}", t0.elapsed());
}

/// Random byte flips over the store headers and variables of the .ms store: no panic, bounded time, and
/// every node stays inside the image.
#[test]
fn random_mutations_never_panic() {
    let Some(path) = ovmf("OVMF_VARS_4M.ms.fd") else {
        return;
    };
    let golden = std::fs::read(&path).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let t0 = std::time::Instant::now();
    for _ in 0..300 {
        let mut img = golden.clone();
        for _ in 0..(next() % 8 + 1) {
            let pos = (next() % 0x6000) as usize;
            img[pos] = next() as u8;
        }
        let len = img.len() as u64;
        let t = parse_lib(img);
        t.walk(&mut |r| assert!(r.end() <= len, "{} past the end", r.path));
    }
    assert!(t0.elapsed().as_secs() < 120, "took {:?}", t0.elapsed());
}
