//! PCI option ROMs (issue 22.4): Debian's iPXE ROMs for QEMU (`ipxe-qemu`, `/usr/lib/ipxe/qemu/*.rom`),
//! `pxe-*` (one legacy x86 image) and `efi-*` (a legacy image and an EFI x64 image chained by their PCIR
//! structures). `EfiRom -d` is not shipped by the PyPI edk2-basetools (a C tool), so the oracle is the
//! PCIR chain read here byte by byte and goblin's Authenticode digest of the EFI image.

use std::path::PathBuf;

use serde_json::Value;

use crate::harness::{fwscan, have_file, inspect_json};

fn roms() -> Vec<PathBuf> {
    let dir = std::path::Path::new("/usr/lib/ipxe/qemu");
    if !have_file(dir, "Debian package ipxe-qemu") {
        return Vec::new();
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rom") && p.is_file())
        .collect();
    v.sort();
    v
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

/// The PCIR chain read independently: (offset, vendor, device, length, code type, last).
fn chain(b: &[u8]) -> Vec<(u64, String, String, u64, &'static str, bool)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 0x1A <= b.len() && b[at..at + 2] == [0x55, 0xAA] {
        let pc = at + usize::from(le16(b, at + 0x18));
        assert_eq!(&b[pc..pc + 4], b"PCIR");
        let len = usize::from(le16(b, pc + 0x10)) * 512;
        let ty = match b[pc + 0x14] {
            0 => "x86",
            3 => "efi",
            _ => "other",
        };
        let last = b[pc + 0x15] & 0x80 != 0;
        out.push((
            at as u64,
            format!("{:#06x}", le16(b, pc + 4)),
            format!("{:#06x}", le16(b, pc + 6)),
            len as u64,
            ty,
            last,
        ));
        at += len;
        if last {
            break;
        }
    }
    out
}

#[test]
fn ipxe_option_roms_are_split_into_their_images() {
    let roms = roms();
    let mut efi_seen = 0;
    for rom in &roms {
        let b = std::fs::read(rom).unwrap();
        let out = fwscan()
            .args(["check", "--format", "json"])
            .arg(rom)
            .output()
            .unwrap();
        let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0), "{}: {rep:#}", rom.display());
        let tree = inspect_json(rom);
        let root = &tree["root"];
        assert_eq!(root["attrs"]["format"], "optionrom", "{}", rom.display());
        let images: Vec<&Value> = root["children"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == "file")
            .collect();
        let ours: Vec<_> = images
            .iter()
            .map(|i| {
                let a = &i["attrs"];
                (
                    i["offset"].as_u64().unwrap(),
                    a["vendor-id"].as_str().unwrap().to_string(),
                    a["device-id"].as_str().unwrap().to_string(),
                    i["size"].as_u64().unwrap(),
                    match a["code-type"].as_str().unwrap() {
                        "x86" => "x86",
                        "efi" => "efi",
                        _ => "other",
                    },
                    a["last"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(ours, chain(&b), "{}", rom.display());
        for img in images.iter().filter(|i| i["attrs"]["code-type"] == "efi") {
            let pe = img["children"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "pe")
                .unwrap_or_else(|| panic!("{}: no pe node", rom.display()));
            assert_eq!(pe["attrs"]["machine"], "x64", "{}: {pe:#}", rom.display());
            let digest = pe["attrs"]["authenticode-sha256"].as_str().unwrap();
            assert_eq!(digest.len(), 64);
            efi_seen += 1;
        }
    }
    if !roms.is_empty() {
        assert!(efi_seen >= 1, "no EFI image among {} ROMs", roms.len());
    }
}
