//! Intel SMI Transfer Monitor images (issue 22.6). No real STM binary was found in a repository whose
//! licence allows copying it (the reference STM, `jyao1/STM`, is built from source by its users; coreboot
//! builds it into CBFS as `stm.bin` at build time), so the image is written here by the layout of edk2's
//! `StmApi.h` / `ArchitecturalMsr.h` (`STM_HEADER` = `MSEG_HEADER` + `SOFTWARE_STM_HEADER`), field by field,
//! independently of the parser: stand-alone, and as a raw file in a CBFS built by `cbfstool`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::{fwscan, have_tool, inspect_json};

/// `(offset, value)` of every 32-bit field written, with the attribute fwscan lists it as (node, name).
const FIELDS: &[(usize, u32, &str, &str)] = &[
    (0x00, 0, "hw-header", "mseg-header-revision"),
    (0x04, 1, "hw-header", "monitor-features"),
    (0x08, 0x5F, "hw-header", "gdtr-limit"),
    (0x0C, 0x1800, "hw-header", "gdtr-base-offset"),
    (0x10, 0x10, "hw-header", "cs-selector"),
    (0x14, 0x2000, "hw-header", "eip-offset"),
    (0x18, 0x6000, "hw-header", "esp-offset"),
    (0x1C, 0x7000, "hw-header", "cr3-offset"),
    (0x804, 0x5000, "sw-header", "static-image-size"),
    (0x808, 0x4000, "sw-header", "per-proc-dynamic-memory-size"),
    (
        0x80C,
        0x10000,
        "sw-header",
        "additional-dynamic-memory-size",
    ),
    (0x810, 1, "sw-header", "stm-features"),
];

/// The STM image: 4 KiB header, static image of 0x5000 bytes in all, two SMM revision ids.
fn stm() -> Vec<u8> {
    let mut b = vec![0u8; 0x5000];
    for (i, x) in b[0x1000..].iter_mut().enumerate() {
        *x = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3];
    }
    for &(o, v, _, _) in FIELDS {
        b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    b[0x800] = 1; // StmSpecVerMajor
    b[0x801] = 0; // StmSpecVerMinor
    b[0x814..0x818].copy_from_slice(&2u32.to_le_bytes());
    b[0x818..0x81C].copy_from_slice(&0x8001_0100u32.to_le_bytes());
    b[0x81C..0x820].copy_from_slice(&0x8001_0200u32.to_le_bytes());
    b
}

fn scratch() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("fwscan-stm-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn check(p: &Path) -> (i32, Value) {
    let out = fwscan()
        .args(["check", "--format", "json"])
        .arg(p)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    // One document per image checked.
    let doc = match doc {
        Value::Array(mut v) if v.len() == 1 => v.remove(0),
        other => other,
    };
    (out.status.code().unwrap_or(-1), doc)
}

fn find<'a>(n: &'a Value, name: &str) -> Option<&'a Value> {
    if n["name"] == name {
        return Some(n);
    }
    n["children"].as_array()?.iter().find_map(|c| find(c, name))
}

fn assert_fields(root: &Value) {
    for &(_, v, node, attr) in FIELDS {
        let n = find(root, node).unwrap_or_else(|| panic!("no {node}"));
        assert_eq!(
            n["attrs"][attr],
            format!("{v:#x}").as_str(),
            "{node} {attr}"
        );
    }
    let sw = find(root, "sw-header").unwrap();
    assert_eq!(sw["attrs"]["spec-version"], "1.0");
    assert_eq!(
        sw["attrs"]["smm-rev-ids"],
        serde_json::json!(["0x80010100", "0x80010200"])
    );
    assert_eq!(find(root, "static-image").unwrap()["size"], 0x4000);
}

#[test]
fn a_stand_alone_stm_lists_every_header_field_and_checks_clean() {
    let p = scratch().join("stm.bin");
    std::fs::write(&p, stm()).unwrap();
    let (rc, doc) = check(&p);
    assert_eq!(rc, 0, "{doc}");
    let t = inspect_json(&p);
    assert_eq!(t["root"]["attrs"]["format"], "stm");
    assert_fields(&t["root"]);
    // Truncated inside the static image, or an entry point outside it: not an STM (nothing checked).
    let mut cut = stm();
    cut.truncate(0x3000);
    std::fs::write(&p, &cut).unwrap();
    assert_eq!(check(&p).0, 2);
    let mut bad = stm();
    bad[0x14..0x18].copy_from_slice(&0x9000u32.to_le_bytes());
    std::fs::write(&p, &bad).unwrap();
    assert_eq!(check(&p).0, 2);
}

#[test]
fn an_stm_in_a_cbfs_file_is_found() {
    if !have_tool("cbfstool", "coreboot-utils") {
        return;
    }
    let d = scratch();
    let rom = d.join("stm.rom");
    let _ = std::fs::remove_file(&rom);
    let bin = d.join("stm-cbfs.bin");
    std::fs::write(&bin, stm()).unwrap();
    if !have_tool("fmaptool", "coreboot-utils") {
        return;
    }
    let fmd = d.join("stm.fmd");
    std::fs::write(
        &fmd,
        "FLASH@0 0x40000 {\n FMAP@0 0x1000\n COREBOOT(CBFS)@0x1000 0x3F000\n}\n",
    )
    .unwrap();
    let fmap = d.join("stm.fmap");
    let ok = Command::new("fmaptool")
        .arg(&fmd)
        .arg(&fmap)
        .status()
        .unwrap()
        .success()
        && Command::new("cbfstool")
            .arg(&rom)
            .args(["create", "-M"])
            .arg(&fmap)
            .status()
            .unwrap()
            .success()
        && Command::new("cbfstool")
            .arg(&rom)
            .args(["add", "-n", "stm.bin", "-t", "raw", "-f"])
            .arg(&bin)
            .status()
            .unwrap()
            .success();
    assert!(ok, "cbfstool");
    let (rc, doc) = check(&rom);
    assert_eq!(rc, 0, "{doc}");
    let t = inspect_json(&rom);
    let file = find(&t["root"], "stm.bin").expect("stm.bin in the CBFS");
    let stm_node = find(file, "hw-header").map(|_| file);
    assert!(stm_node.is_some(), "{file}");
    assert_fields(file);
}

/// edk2 platforms ship the STM as a raw FFS file (`StmBin`); vendors also wrap such binaries in a raw
/// section of a freeform file. Both are found and listed like the stand-alone image, and check clean.
#[test]
fn an_stm_in_a_raw_ffs_file_or_raw_section_is_found() {
    use fwscan::formats::uefi::build;
    let raw_file = build::file(
        build::guid_bytes("2C8AE9D8-0F37-4A1B-A5A0-1D2A1D5D4E21"),
        0x01,
        &stm(),
        0,
    );
    let freeform = build::file(
        build::guid_bytes("6A1E0F4D-93B2-4C1A-8E0B-6C1F6D1A2B33"),
        0x02,
        &build::sections(&[build::section(0x19, &stm())]),
        0,
    );
    let p = scratch().join("stm-fv.bin");
    std::fs::write(
        &p,
        build::volume(build::FFS2, None, &[raw_file, freeform], 0x20000),
    )
    .unwrap();
    let (rc, doc) = check(&p);
    assert_eq!(rc, 0, "{doc}");
    let t = inspect_json(&p);
    let mut stms = Vec::new();
    fn walk<'a>(n: &'a Value, out: &mut Vec<&'a Value>) {
        if n["name"] == "stm" {
            out.push(n);
        }
        for c in n["children"].as_array().into_iter().flatten() {
            walk(c, out);
        }
    }
    walk(&t["root"], &mut stms);
    assert_eq!(stms.len(), 2, "{t}");
    for s in stms {
        assert_fields(s);
    }
}
