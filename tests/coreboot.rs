//! coreboot images (issue 22.3): the FMAP areas against `cbfstool layout -w`, every CBFS file against
//! `cbfstool print` (name, offset, type, data size, compression), a changed byte in `fallback/ramstage`
//! named by `scan`, the vboot GBB and VBLOCK listed, and no finding from `check` on clean images.
//!
//! Images: fiano's QEMU coreboot image (`testdata/coreboot/`, provenance in its README) and an image built
//! here with `fmaptool` and `cbfstool create/add/add-stage/add-payload/write` (Debian coreboot-utils) from
//! an ELF compiled by `cc`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{fwscan, have_tool, inspect_json};

fn fiano_rom(dir: &Path) -> PathBuf {
    let xz = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/coreboot/fiano-coreboot.rom.xz");
    let mut out = Vec::new();
    std::io::Read::read_to_end(
        &mut liblzma::read::XzDecoder::new(std::fs::File::open(xz).unwrap()),
        &mut out,
    )
    .unwrap();
    let p = dir.join("fiano-coreboot.rom");
    std::fs::write(&p, out).unwrap();
    p
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A 1 MiB image: FMAP, a per-machine MRC cache, GBB and VBLOCK_A with vboot headers, and a CBFS with raw
/// files (plain, LZMA, LZ4), a stage (LZMA) and a payload (LZ4) made from an ELF compiled here.
fn built_rom(dir: &Path) -> Option<PathBuf> {
    if !have_tool("cbfstool", "coreboot-utils")
        || !have_tool("fmaptool", "coreboot-utils")
        || !have_tool("cc", "gcc")
    {
        return None;
    }
    let fmd = dir.join("layout.fmd");
    std::fs::write(
        &fmd,
        "FLASH@0 0x100000 {\n BIOS@0 0x100000 {\n  FMAP@0 0x1000\n  RW_MRC_CACHE@0x1000 0x10000\n  \
         GBB@0x11000 0x4000\n  VBLOCK_A@0x15000 0x2000\n  COREBOOT(CBFS)@0x17000 0xE9000\n }\n}\n",
    )
    .unwrap();
    let fmap = dir.join("layout.fmap");
    run(Command::new("fmaptool").arg(&fmd).arg(&fmap));
    let rom = dir.join("built.rom");
    run(Command::new("cbfstool")
        .arg(&rom)
        .args(["create", "-M"])
        .arg(&fmap));
    let src = dir.join("s.c");
    std::fs::write(
        &src,
        "int table[256] = {1, 2, 3};\nint _start(void) { int s = 0; for (int i = 0; i < 256; i++) s += \
         table[i] * i; return s; }\n",
    )
    .unwrap();
    let elf = dir.join("s.elf");
    run(Command::new("cc")
        .args([
            "-nostdlib",
            "-static",
            "-O1",
            "-Wl,-N",
            "-Wl,--build-id=none",
        ])
        .args(["-Wl,-Ttext=0x100000", "-o"])
        .arg(&elf)
        .arg(&src));
    let plain = dir.join("plain.bin");
    std::fs::write(
        &plain,
        (0..3000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let text = dir.join("text.bin");
    std::fs::write(&text, "coreboot CBFS test data. ".repeat(3000)).unwrap();
    let add = |args: &[&str], f: &Path| {
        run(Command::new("cbfstool")
            .arg(&rom)
            .args(args)
            .arg("-f")
            .arg(f));
    };
    add(&["add", "-n", "raw/plain", "-t", "raw"], &plain);
    add(&["add", "-n", "raw/lzma", "-t", "raw", "-c", "lzma"], &text);
    add(&["add", "-n", "raw/lz4", "-t", "raw", "-c", "lz4"], &text);
    add(
        &["add-stage", "-n", "fallback/ramstage", "-c", "lzma"],
        &elf,
    );
    add(
        &["add-payload", "-n", "fallback/payload", "-c", "lz4"],
        &elf,
    );
    // vboot headers: a GBB (version 1.2, HWID) and a keyblock.
    let mut gbb = vec![0u8; 0x100];
    gbb[..4].copy_from_slice(b"$GBB");
    gbb[4..6].copy_from_slice(&1u16.to_le_bytes());
    gbb[6..8].copy_from_slice(&2u16.to_le_bytes());
    gbb[8..12].copy_from_slice(&0x80u32.to_le_bytes());
    gbb[0x10..0x14].copy_from_slice(&0x80u32.to_le_bytes());
    gbb[0x14..0x18].copy_from_slice(&0x20u32.to_le_bytes());
    gbb[0x80..0x8C].copy_from_slice(b"FWSCAN TEST\0");
    let g = dir.join("gbb.bin");
    std::fs::write(&g, &gbb).unwrap();
    add(&["write", "-u", "-r", "GBB"], &g);
    let mut kb = vec![0u8; 0x40];
    kb[..8].copy_from_slice(b"CHROMEOS");
    kb[8..12].copy_from_slice(&2u32.to_le_bytes());
    kb[0x0C..0x10].copy_from_slice(&0x40u32.to_le_bytes());
    let v = dir.join("vblock.bin");
    std::fs::write(&v, &kb).unwrap();
    add(&["write", "-u", "-r", "VBLOCK_A"], &v);
    Some(rom)
}

/// `cbfstool IMAGE print -k`: (name, offset, type, data size) of every file of the default CBFS.
fn cbfstool_files(img: &Path) -> Vec<(String, u64, String, u64)> {
    let text = run(Command::new("cbfstool").arg(img).args(["print", "-k"]));
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
            (c[0].to_string(), hex(c[1]), c[2].to_string(), hex(c[4]))
        })
        .collect()
}

/// `cbfstool IMAGE print`: the compression column, by file name.
fn cbfstool_compression(img: &Path) -> Vec<(String, String)> {
    let text = run(Command::new("cbfstool").arg(img).arg("print"));
    text.lines()
        .filter(|l| l.len() > 30 && !l.starts_with("Name") && !l.starts_with("FMAP REGION"))
        .filter(|l| !l.starts_with(' '))
        .map(|l| {
            // Name (30 columns), offset, type (may hold a space), size, then the compression.
            let name = l[..30].trim().to_string();
            let comp = l[30..]
                .split_whitespace()
                .find(|t| matches!(*t, "none" | "LZMA" | "LZ4"))
                .unwrap_or("?")
                .to_string();
            (name, comp)
        })
        .collect()
}

/// `cbfstool IMAGE layout -w`: (name, offset, size) of every FMAP area.
fn cbfstool_areas(img: &Path) -> BTreeSet<(String, u64, u64)> {
    let text = run(Command::new("cbfstool").arg(img).args(["layout", "-w"]));
    text.lines()
        .filter_map(|l| {
            let l = l.strip_prefix('\'')?;
            let (name, rest) = l.split_once('\'')?;
            let size = rest.split("size ").nth(1)?.split(',').next()?.trim();
            let off = rest.split("offset ").nth(1)?.trim_end_matches(')').trim();
            Some((name.to_string(), off.parse().ok()?, size.parse().ok()?))
        })
        .collect()
}

fn walk<'a>(n: &'a Value, f: &mut dyn FnMut(&'a Value)) {
    f(n);
    for c in n["children"].as_array().into_iter().flatten() {
        walk(c, f);
    }
}

fn node<'a>(root: &'a Value, path: &str) -> &'a Value {
    let mut hit = None;
    walk(root, &mut |n| {
        if n["path"] == path {
            hit = Some(n);
        }
    });
    hit.unwrap_or_else(|| panic!("no node {path}"))
}

/// fwscan's CBFS files: (cbfstool's name, offset in the CBFS, type, data size), and compression by name.
#[allow(clippy::type_complexity)]
fn fwscan_files(root: &Value) -> (Vec<(String, u64, String, u64)>, Vec<(String, String)>) {
    let cbfs = node(root, "BIOS/COREBOOT");
    assert_eq!(cbfs["attrs"]["format"], "cbfs");
    let mut files = Vec::new();
    let mut comp = Vec::new();
    for c in cbfs["children"].as_array().unwrap() {
        let a = &c["attrs"];
        let Some(off) = a["cbfs-offset"].as_str() else {
            continue;
        };
        let ty = a["cbfs-type"].as_str().unwrap().to_string();
        let name = if ty == "null" {
            "(empty)".to_string()
        } else {
            c["name"].as_str().unwrap().to_string()
        };
        files.push((
            name.clone(),
            u64::from_str_radix(off.trim_start_matches("0x"), 16).unwrap(),
            ty,
            a["data-size"].as_u64().unwrap(),
        ));
        comp.push((name, a["compression"].as_str().unwrap().to_string()));
    }
    (files, comp)
}

fn check_clean(img: &Path) {
    let out = fwscan()
        .args(["check", "--format", "json"])
        .arg(img)
        .output()
        .unwrap();
    let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}: {rep:#}", img.display());
}

#[test]
fn cbfs_and_fmap_agree_with_cbfstool() {
    let dir = tempfile::tempdir().unwrap();
    let mut images = vec![fiano_rom(dir.path())];
    images.extend(built_rom(dir.path()));
    if !have_tool("cbfstool", "coreboot-utils") {
        return;
    }
    for img in &images {
        let tree = inspect_json(img);
        let root = &tree["root"];
        assert_eq!(root["attrs"]["format"], "fmap", "{}", img.display());
        // Every FMAP area, nested as `layout -w` lists them.
        let mut areas = BTreeSet::new();
        walk(root, &mut |n| {
            if matches!(n["kind"].as_str(), Some("partition" | "header"))
                && n["attrs"]["fmap-flags"].is_string()
            {
                areas.insert((
                    n["name"].as_str().unwrap().to_string(),
                    n["offset"].as_u64().unwrap(),
                    n["size"].as_u64().unwrap(),
                ));
            }
        });
        assert_eq!(areas, cbfstool_areas(img), "{}", img.display());
        // Every CBFS file, in order.
        let (files, comp) = fwscan_files(root);
        let tool = cbfstool_files(img);
        assert_eq!(
            files.len(),
            tool.len(),
            "{}: {files:?}\n{tool:?}",
            img.display()
        );
        for (ours, theirs) in files.iter().zip(&tool) {
            // cbfstool 4.15 prints a legacy stage (type 0x10) as "(unknown)".
            let ty = if theirs.2 == "(unknown)" && ours.2 == "legacy stage" {
                "legacy stage"
            } else {
                theirs.2.as_str()
            };
            assert_eq!(
                (&ours.0, ours.1, ours.2.as_str(), ours.3),
                (&theirs.0, theirs.1, ty, theirs.3),
                "{}",
                img.display()
            );
        }
        assert_eq!(comp, cbfstool_compression(img), "{}", img.display());
        check_clean(img);
    }
    // What the built image holds beyond the listing: decompressed LZMA/LZ4 data equal to the input, the
    // payload's segments, the stage's header, the vboot headers, a per-machine MRC cache.
    if images.len() == 2 {
        let tree = inspect_json(&images[1]);
        let root = &tree["root"];
        let want = "coreboot CBFS test data. ".repeat(3000).len() as u64;
        for f in ["raw/lzma", "raw/lz4"] {
            let d = node(root, &format!("BIOS/COREBOOT/{f}/data/decompressed"));
            assert_eq!(d["size"].as_u64(), Some(want), "{f}");
        }
        let segs = node(root, "BIOS/COREBOOT/fallback/payload/data/segments");
        assert!(segs["attrs"]["count"].as_u64().unwrap() >= 2);
        let stage = node(root, "BIOS/COREBOOT/fallback/ramstage");
        assert!(stage["attrs"]["load"].is_string(), "{stage:#}");
        assert_eq!(node(root, "BIOS/GBB")["attrs"]["gbb-version"], "1.2");
        assert_eq!(node(root, "BIOS/GBB")["attrs"]["gbb-hwid"], "FWSCAN TEST");
        assert_eq!(node(root, "BIOS/VBLOCK_A")["attrs"]["vboot"], "keyblock");
        assert_eq!(node(root, "BIOS/RW_MRC_CACHE")["policy"], "mutable");
        assert_eq!(node(root, "BIOS/FMAP")["policy"], "static");
    }
}

fn scan(img: &Path, man: &Path) -> (i32, Value) {
    let out = fwscan()
        .arg("scan")
        .arg(img)
        .arg("--manifest")
        .arg(man)
        .args(["--insecure-unsigned", "--format", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

/// A changed byte in `fallback/ramstage` (its compressed stage body) is a `module-modified` of that file
/// and nothing else is accused; the same image unchanged scans clean.
#[test]
fn a_changed_ramstage_byte_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut images = vec![fiano_rom(dir.path())];
    images.extend(built_rom(dir.path()));
    for img in &images {
        let man = dir.path().join("m.json");
        run(fwscan().arg("baseline").arg(img).arg("-o").arg(&man));
        let (code, rep) = scan(img, &man);
        assert_eq!(code, 0, "{rep:#}");
        let tree = inspect_json(img);
        let data = node(&tree["root"], "BIOS/COREBOOT/fallback/ramstage/data");
        let at = (data["offset"].as_u64().unwrap() + data["size"].as_u64().unwrap() / 2) as usize;
        let mut b = std::fs::read(img).unwrap();
        b[at] ^= 0x20;
        let bad = dir.path().join("bad.rom");
        std::fs::write(&bad, &b).unwrap();
        let (code, rep) = scan(&bad, &man);
        assert_eq!(code, 1, "{rep:#}");
        let found = crate::harness::code_paths(&rep);
        assert!(
            found.contains(&(
                "module-modified".into(),
                "BIOS/COREBOOT/fallback/ramstage".into()
            )),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .all(|(_, p)| p.starts_with("BIOS/COREBOOT/fallback/ramstage")),
            "{found:?}"
        );
    }
}
