//! Nuvoton NPCM7xx (Poleg) boot images (issue 22.6): the boot block and U-Boot headers as Nuvoton's image
//! generator writes them, the boot block's version structure, stand-alone and in a BMC flash.
//!
//! The reference is `Nuvoton-Israel/igps` @ bc728a010a4d53ac3c66afe52438a7ced3ebe396 (GPL-2.0):
//! `ImageGeneration/references/BootBlockAndHeader_EB.xml` and `UbootHeader_EB.xml` (every field's name,
//! offset, size and value, copied into [`BOOTBLOCK_XML`] and [`UBOOT_XML`] below) and
//! `inputs/mergedBootBlockAndUboot.xml` (U-Boot at the boot block image's size rounded up to 0x1000).
//! The headers are written here from those tables, as `bingo` writes them, and `fwscan inspect` must list
//! each field with the XML's value.
//!
//! The boot block binaries igps ships are GPL-2.0 object code, not copied here; each was measured with
//! `fwscan check` (exit 0, no finding) and `inspect` (nodes `vectors`, `version`, `text`):
//!
//! | file (`ImageGeneration/versions/`) | sha256 | size | version | description |
//! |---|---|---|---|---|
//! | Poleg_bootblock.10.09.16.bin | a26d69aa4ad390c7…608526d | 51352 | 10.09.16 | Maintenance release based on 10.9.15 Jan 24 2021 13:46:04 |
//! | Poleg_bootblock_basic.10.10.18.bin | a33f3fe96786929a…e1d62ddf | 56216 | 10.10.18 | BB Basic Jul 27 2023 11:16:31 |
//! | Poleg_bootblock_secure.10.10.18.bin | c4b267429d448aeb…f8e69d4102 | 59800 | 10.10.18 | BB with security features Jul 27 2023 11:16:47 |
//!
//! The same three with the EB header written in front (igps's `BootBlockAndHeader.bin`), and merged with
//! the real U-Boot of `../shared/fixtures/bmc/npcm750-u-boot.bin` behind its `UBOOTBLK` header
//! (`mergedBootBlockAndUboot.bin`), also checked clean. Here the boot block code is made with the structure
//! those files have (an ARM `push` at 0, the description at 0x40, "BOOT" and the version at 0xF0); the
//! U-Boot is the real fixture.

use std::path::Path;

use std::sync::Arc;

use fwscan::formats::{parse_image, ParseOptions};
use fwscan::input::Data;
use serde_json::Value;

use crate::harness::{fixture, fwscan, inspect_json};
use crate::support::bmc as b;

/// `BootBlockAndHeader_EB.xml`: (name, offset, size, value), code size aside.
const BOOTBLOCK_XML: &[(&str, usize, usize, u32)] = &[
    ("BAUD_RATE", 0x120, 4, 115_200),
    ("DestAddr", 0x140, 4, 0xFFFD_5E00),
    ("FIU0_DRD_CFG_Set", 0x108, 4, 0x0300_11BB),
    ("FIU_Clk_Divider", 0x10C, 1, 4),
    ("Version", 0x148, 4, 0x0201),
    ("BOARD_VENDOR", 0x14C, 4, 100),
    ("BOARD_TYPE", 0x150, 4, 0x02),
    ("MC_FREQ_IN_MHZ", 0x11C, 2, 800),
    ("CPU_FREQ_IN_MHZ", 0x154, 2, 800),
    ("MC_CONFIG", 0x156, 1, 0x00),
    ("HOST_IF", 0x157, 1, 0x00),
    ("SECURITY_LEVEL_T", 0x15C, 1, 0xFF),
    ("SECURITY_REVOKE_KEYS", 0x1D7, 1, 0x00),
    ("SECURITY_LOG", 0x1D8, 4, 0x09_0000),
    ("SECURITY_LOG_SIZE", 0x1DC, 4, 0x3000),
    ("HOLE0", 0x1E0, 4, 0x0A_0000),
    ("HOLE0_SIZE", 0x1E4, 4, 0xF7_0000),
    ("HOLE1", 0x1E8, 4, 0),
    ("HOLE1_SIZE", 0x1EC, 4, 0),
    ("HOLE2", 0x1F0, 4, 0xFFFF_FFFF),
    ("HOLE2_SIZE", 0x1F4, 4, 0),
    ("HOLE3", 0x1F8, 4, 0),
    ("HOLE3_SIZE", 0x1FC, 4, 0),
];

/// `UbootHeader_EB.xml`: (name, offset, size, value), code size aside.
const UBOOT_XML: &[(&str, usize, usize, u32)] = &[
    ("DestAddr", 0x140, 4, 0x8000),
    ("FIU0_DRD_CFG_Set", 0x108, 4, 0x0301_11BC),
    ("FIU0_Clk_Divider", 0x10C, 1, 0),
    ("fiu0_cs1_en", 0x10D, 1, 0),
    ("fiu0_cs2_en", 0x10E, 1, 0),
    ("fiu0_cs3_en", 0x10F, 1, 0),
    ("FIU3_DRD_CFG_Set", 0x110, 4, 0),
    ("FIU3_DWR_CFG_Set", 0x114, 4, 0),
    ("FIU3_Clk_Divider", 0x118, 1, 0),
    ("fiu3_cs1_en", 0x119, 1, 0),
    ("fiu3_cs2_en", 0x11A, 1, 0),
    ("fiu3_cs3_en", 0x11B, 1, 0),
    ("Version", 0x148, 4, 0),
    ("FIU0_DWR_CFG_Set", 0x14C, 4, 0x0300_1102),
];

/// The attribute fwscan lists for an XML field name.
fn attr_of(xml: &str) -> &'static str {
    match xml {
        "BAUD_RATE" => "uart-baud-rate",
        "DestAddr" => "dest-address",
        "FIU0_DRD_CFG_Set" => "fiu0-drd-cfg",
        "FIU_Clk_Divider" | "FIU0_Clk_Divider" => "fiu0-clk-divider",
        "Version" => "version",
        "BOARD_VENDOR" => "board-vendor",
        "BOARD_TYPE" => "board-type",
        "MC_FREQ_IN_MHZ" => "mc-freq-mhz",
        "CPU_FREQ_IN_MHZ" => "cpu-freq-mhz",
        "MC_CONFIG" => "mc-config",
        "HOST_IF" => "host-if",
        "SECURITY_LEVEL_T" => "security-level",
        "SECURITY_REVOKE_KEYS" => "revoke-keys",
        "SECURITY_LOG" => "security-log",
        "SECURITY_LOG_SIZE" => "security-log-size",
        "HOLE0" => "hole0",
        "HOLE0_SIZE" => "hole0-size",
        "HOLE1" => "hole1",
        "HOLE1_SIZE" => "hole1-size",
        "HOLE2" => "hole2",
        "HOLE2_SIZE" => "hole2-size",
        "HOLE3" => "hole3",
        "HOLE3_SIZE" => "hole3-size",
        "fiu0_cs1_en" => "fiu0-cs1-en",
        "fiu0_cs2_en" => "fiu0-cs2-en",
        "fiu0_cs3_en" => "fiu0-cs3-en",
        "FIU3_DRD_CFG_Set" => "fiu3-drd-cfg",
        "FIU3_DWR_CFG_Set" => "fiu3-dwr-cfg",
        "FIU3_Clk_Divider" => "fiu3-clk-divider",
        "fiu3_cs1_en" => "fiu3-cs1-en",
        "fiu3_cs2_en" => "fiu3-cs2-en",
        "fiu3_cs3_en" => "fiu3-cs3-en",
        "FIU0_DWR_CFG_Set" => "fiu0-dwr-cfg",
        other => panic!("no attribute for {other}"),
    }
}

/// An image as `bingo` writes it: pad 0xFF, the start tag, the XML's fields, the code size, the code.
fn headered(tag: &[u8; 8], xml: &[(&str, usize, usize, u32)], code: &[u8]) -> Vec<u8> {
    let mut h = vec![0xFFu8; 0x200];
    h[..8].copy_from_slice(tag);
    for &(_, off, size, v) in xml {
        h[off..off + size].copy_from_slice(&v.to_le_bytes()[..size]);
    }
    h[0x144..0x148].copy_from_slice(&(code.len() as u32).to_le_bytes());
    h.extend_from_slice(code);
    h
}

const BB_TAG: [u8; 8] = [0x50, 0x07, 0x55, 0xAA, 0x54, 0x4F, 0x4F, 0x42];

/// A boot block code with the structure of the real ones (see the table above).
fn bootblock_code(len: usize, desc: &str, version: u32) -> Vec<u8> {
    let mut c: Vec<u8> = (0..len as u32)
        .flat_map(|i| (0xE1A0_0000u32 | (i & 0xFFF)).to_le_bytes())
        .take(len)
        .collect();
    c[..4].copy_from_slice(&0xE92D_1FFFu32.to_le_bytes());
    c[0x40..0xF0].fill(0);
    c[0x40..0x40 + desc.len()].copy_from_slice(desc.as_bytes());
    c[0xF0..0xF4].copy_from_slice(b"BOOT");
    c[0xF4..0xF8].copy_from_slice(&version.to_le_bytes());
    c
}

/// The U-Boot image behind a boot block image: at its size rounded up to 0x1000, pad 0xFF.
fn merged(bb: &[u8], ub: &[u8]) -> Vec<u8> {
    let mut m = bb.to_vec();
    m.resize(bb.len().next_multiple_of(0x1000), 0xFF);
    m.extend_from_slice(ub);
    m
}

fn scratch(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fwscan-npcm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
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

/// Nodes of an inspect document by path.
fn nodes(doc: &Value) -> std::collections::BTreeMap<String, Value> {
    let mut m = std::collections::BTreeMap::new();
    fn walk(n: &Value, m: &mut std::collections::BTreeMap<String, Value>) {
        m.insert(n["path"].as_str().unwrap_or("").to_string(), n.clone());
        for c in n["children"].as_array().into_iter().flatten() {
            walk(c, m);
        }
    }
    walk(&doc["root"], &mut m);
    m
}

fn shown(attr: &Value, v: u32) -> bool {
    attr.as_u64() == Some(u64::from(v)) || attr.as_str() == Some(&format!("{v:#010x}"))
}

#[test]
fn the_headers_list_every_field_of_the_image_generators_xml() {
    let Some(ub_path) = fixture("bmc/npcm750-u-boot.bin") else {
        return;
    };
    let ub_code = std::fs::read(ub_path).unwrap();
    let code = bootblock_code(0xDB98, "\nBB Basic\nJul 27 2023\n11:16:31\n", 0x0010_1018);
    let bb = headered(&BB_TAG, BOOTBLOCK_XML, &code);
    let ub = headered(b"UBOOTBLK", UBOOT_XML, &ub_code);
    let img = merged(&bb, &ub);
    let p = scratch("merged.bin", &img);
    let (code_rc, doc) = check(&p);
    assert_eq!(code_rc, 0, "{doc}");
    assert_eq!(doc["findings"].as_array().map(Vec::len), Some(0), "{doc}");

    let t = inspect_json(&p);
    assert_eq!(t["root"]["attrs"]["format"], "npcm-bootblock");
    let n = nodes(&t);
    let ub_at = (bb.len() as u64).next_multiple_of(0x1000);
    for (path, off, size) in [
        ("bootblock", 0, bb.len() as u64),
        ("bootblock/header", 0, 0x200),
        ("bootblock/code", 0x200, code.len() as u64),
        ("bootblock/code/vectors", 0x200, 0x40),
        ("bootblock/code/version", 0x240, 0xB8),
        ("u-boot", ub_at, ub.len() as u64),
        ("u-boot/header", ub_at, 0x200),
        ("u-boot/code", ub_at + 0x200, ub_code.len() as u64),
    ] {
        let node = n
            .get(path)
            .unwrap_or_else(|| panic!("no {path}: {:?}", n.keys()));
        assert_eq!(node["offset"].as_u64(), Some(off), "{path}");
        assert_eq!(node["size"].as_u64(), Some(size), "{path}");
    }
    for (hdr, xml) in [
        ("bootblock/header", BOOTBLOCK_XML),
        ("u-boot/header", UBOOT_XML),
    ] {
        let attrs = &n[hdr]["attrs"];
        for &(name, _, _, v) in xml {
            assert!(
                shown(&attrs[attr_of(name)], v),
                "{hdr} {name}: {}",
                attrs[attr_of(name)]
            );
        }
        assert_eq!(attrs["signed"], false, "{hdr}");
    }
    assert_eq!(n["bootblock/header"]["attrs"]["code-size"], 0xDB98);
    assert_eq!(
        n["bootblock/code/version"]["attrs"]["bootblock-version"],
        "10.10.18"
    );
    // U-Boot behind its header is the real U-Boot: its version and control device tree are found.
    let uboot_nodes: Vec<&String> = n.keys().filter(|k| k.starts_with("u-boot/code/")).collect();
    assert!(
        uboot_nodes.iter().any(|k| k.ends_with("control-dtb")),
        "{uboot_nodes:?}"
    );
}

#[test]
fn a_boot_block_released_without_its_header_is_recognised_and_clean() {
    for (desc, v) in [
        (
            "\nMaintenance release based on 10.9.15\nJan 24 2021\n13:46:04\n",
            0x0010_0916u32,
        ),
        (
            "\nBB with security features\nJul 27 2023\n11:16:47\n",
            0x0010_1018,
        ),
    ] {
        let code = bootblock_code(0xC898, desc, v);
        let p = scratch("raw-bb.bin", &code);
        let (rc, doc) = check(&p);
        assert_eq!(rc, 0, "{doc}");
        let t = inspect_json(&p);
        assert_eq!(t["root"]["attrs"]["format"], "npcm-bootblock");
        let want = format!(
            "{:X}.{:02X}.{:02X}",
            (v >> 16) & 0xFF,
            (v >> 8) & 0xFF,
            v & 0xFF
        );
        assert_eq!(t["root"]["attrs"]["bootblock-version"], want.as_str());
        let kids: Vec<&str> = t["root"]["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(kids, ["vectors", "version", "text"]);
    }
    // The NPCM7xx ROM code (QEMU's) has no such structure: still not recognised.
    let rom = Path::new("/usr/share/qemu/npcm7xx_bootrom.bin");
    if crate::harness::have_file(rom, "Debian qemu-system-data") {
        let t = inspect_json(rom);
        assert_ne!(t["root"]["attrs"]["format"], "npcm-bootblock");
    }
}

#[test]
fn a_truncated_or_hostile_header_errors_cleanly() {
    let code = bootblock_code(0x400, "\nBB Basic\n", 0x0010_1018);
    let bb = headered(&BB_TAG, BOOTBLOCK_XML, &code);
    // The code size runs past the end: parsed as this format anyway, the error names the code size field.
    let mut cut = bb.clone();
    cut.truncate(0x300);
    let opts = ParseOptions {
        format: Some("npcm-bootblock".into()),
        ..ParseOptions::default()
    };
    let t = parse_image(Arc::new(Data::Owned(cut.clone())), &opts);
    let notes: Vec<String> = t.notes.iter().map(|n| format!("{n:?}")).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("code size 0x400") && n.contains("0x144")),
        "{notes:?}"
    );
    // Not forced, it is not taken for a boot block at all (nothing checked: exit 2).
    let (rc, _) = check(&scratch("cut.bin", &cut));
    assert_eq!(rc, 2);
    // A huge code size, a header cut inside, every single-byte change of the header: no panic, and every
    // node inside the file.
    let mut huge = bb.clone();
    huge[0x144..0x148].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut inputs = vec![huge, bb[..0x120].to_vec()];
    for i in (0..0x200).step_by(3) {
        let mut m = bb.clone();
        m[i] ^= 0xA5;
        inputs.push(m);
    }
    for bytes in inputs {
        let len = bytes.len() as u64;
        let t = parse_image(Arc::new(Data::Owned(bytes)), &opts);
        fn inside(r: &fwscan::region::Region, len: u64) -> bool {
            r.offset + r.size <= len && r.children.iter().all(|c| inside(c, len))
        }
        assert!(inside(&t, len));
    }
}

/// The merged boot image at 0 of a 64 MiB OpenBMC flash: the preset is confirmed (U-Boot's version is in
/// the `u-boot` partition) and the partition is parsed as the NPCM boot images.
#[test]
fn in_a_bmc_flash_the_u_boot_partition_holds_the_boot_images() {
    if !b::available() {
        return;
    }
    let Some(ub_path) = fixture("bmc/npcm750-u-boot.bin") else {
        return;
    };
    let ub_code = std::fs::read(ub_path).unwrap();
    let code = bootblock_code(0xDB98, "\nBB Basic\nJul 27 2023\n11:16:31\n", 0x0010_1018);
    let img = merged(
        &headered(&BB_TAG, BOOTBLOCK_XML, &code),
        &headered(b"UBOOTBLK", UBOOT_XML, &ub_code),
    );
    let dir = b::scratch("npcm-flash");
    let boot = dir.join("merged.bin");
    std::fs::write(&boot, &img).unwrap();
    let flash = b::build(&dir, b::LAYOUT_64, boot.to_str().unwrap(), false).image(b::LAYOUT_64);
    let p = dir.join("flash.bin");
    std::fs::write(&p, &flash).unwrap();
    let (rc, doc) = check(&p);
    assert_eq!(rc, 0, "{doc}");
    let t = inspect_json(&p);
    let n = nodes(&t);
    assert_eq!(
        n["u-boot"]["attrs"]["format"],
        "npcm-bootblock",
        "{:?}",
        n.keys()
    );
    assert!(n.contains_key("u-boot/bootblock/header"), "{:?}", n.keys());
    assert!(n.contains_key("u-boot/u-boot/header"), "{:?}", n.keys());
}
