//! Stand-alone executables and the rest of the host-firmware files (issue 22.5, 22.6, 22.3 inside volumes):
//! real third-party files from Debian packages, each with its provenance (package : path), get a structure
//! and `check` finds nothing in them; the sections and segments are those binutils' `objdump`/`readelf`
//! list; a PE module's `body-sha256` is the digest CHIPSEC gives the same module inside a volume; option
//! ROMs inside volumes (raw files, raw sections) are parsed as option ROMs.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{fwscan, have_tool, inspect_json, skip, under_ci};
use fwscan::formats::uefi::build;

/// The real files: (Debian package, path, the format that must be found; `None`: a file with no
/// documented structure, which stays one blob).
const REAL: &[(&str, &str, Option<&str>)] = &[
    // UEFI applications (PE32+).
    ("shim-unsigned", "/usr/lib/shim/shimx64.efi", Some("pe")),
    ("shim-unsigned", "/usr/lib/shim/fbx64.efi", Some("pe")),
    ("shim-unsigned", "/usr/lib/shim/mmx64.efi", Some("pe")),
    (
        "systemd-boot-efi",
        "/usr/lib/systemd/boot/efi/systemd-bootx64.efi",
        Some("pe"),
    ),
    (
        "grub-efi-amd64-bin",
        "/usr/lib/grub/x86_64-efi/monolithic/grubx64.efi",
        Some("pe"),
    ),
    (
        "grub-efi-amd64-bin",
        "/usr/lib/grub/x86_64-efi/monolithic/gcdx64.efi",
        Some("pe"),
    ),
    (
        "grub-efi-amd64-bin",
        "/usr/lib/grub/x86_64-efi/monolithic/grubnetx64.efi",
        Some("pe"),
    ),
    // ELF firmware: RISC-V OpenSBI, U-Boot, OpenBIOS, SeaBIOS-less QEMU firmware.
    (
        "opensbi",
        "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.elf",
        Some("elf"),
    ),
    (
        "opensbi",
        "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf",
        Some("elf"),
    ),
    (
        "qemu-system-data",
        "/usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.elf",
        Some("elf"),
    ),
    (
        "qemu-system-data",
        "/usr/share/qemu/openbios-ppc",
        Some("elf"),
    ),
    (
        "qemu-system-data",
        "/usr/share/qemu/openbios-sparc32",
        Some("elf"),
    ),
    (
        "qemu-system-data",
        "/usr/share/qemu/openbios-sparc64",
        Some("elf"),
    ),
    (
        "qemu-system-data",
        "/usr/share/qemu/hppa-firmware.img",
        Some("elf"),
    ),
    (
        "qemu-system-data",
        "/usr/share/qemu/palcode-clipper",
        Some("elf"),
    ),
    (
        "qemu-system-data",
        "/usr/share/qemu/s390-ccw.img",
        Some("elf"),
    ),
    (
        "u-boot-qemu",
        "/usr/lib/u-boot/qemu-riscv64/uboot.elf",
        Some("elf"),
    ),
    (
        "u-boot-qemu",
        "/usr/lib/u-boot/qemu-riscv64_smode/uboot.elf",
        Some("elf"),
    ),
    (
        "u-boot-qemu",
        "/usr/lib/u-boot/qemu_arm/uboot.elf",
        Some("elf"),
    ),
    (
        "u-boot-qemu",
        "/usr/lib/u-boot/qemu-x86_64/uboot.elf",
        Some("elf"),
    ),
    (
        "u-boot-qemu",
        "/usr/lib/u-boot/qemu-ppce500/uboot.elf",
        Some("elf"),
    ),
    (
        "u-boot-qemu",
        "/usr/lib/u-boot/malta64el/uboot.elf",
        Some("elf"),
    ),
    // OpenPOWER.
    (
        "qemu-system-data",
        "/usr/share/qemu/skiboot.lid",
        Some("skiboot"),
    ),
    ("qemu-system-data", "/usr/share/qemu/slof.bin", Some("slof")),
    // Option ROMs (already a format; here for the ratio).
    (
        "ipxe-qemu",
        "/usr/lib/ipxe/qemu/efi-e1000.rom",
        Some("optionrom"),
    ),
    // No documented structure: raw images that are jumped into at their first byte, and an ISA-style
    // option ROM without a PCIR structure.
    ("qemu-system-data", "/usr/share/qemu/kvmvapic.bin", None),
    (
        "opensbi",
        "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin",
        None,
    ),
    (
        "qemu-system-data",
        "/usr/share/qemu/npcm7xx_bootrom.bin",
        None,
    ),
];

fn check_json(p: &Path) -> (i32, Value) {
    let out = fwscan()
        .args(["check", "--format", "json"])
        .arg(p)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
    )
}

/// At least 85% of the real files get a structure; every structured one checks clean (exit 0, no finding)
/// and has its format at the root with more than one child node.
#[test]
fn real_host_firmware_files_get_a_structure_and_check_clean() {
    let (mut seen, mut structured) = (0usize, 0usize);
    let mut missing = Vec::new();
    for (pkg, path, want) in REAL {
        let p = Path::new(path);
        if !p.is_file() {
            missing.push(format!("{path} (Debian {pkg})"));
            continue;
        }
        seen += 1;
        let tree = inspect_json(p);
        let root = &tree["root"];
        let format = root["attrs"]["format"].as_str().unwrap_or("");
        let (code, rep) = check_json(p);
        match want {
            Some(f) => {
                assert_eq!(format, *f, "{path} ({pkg})");
                let kids = root["children"].as_array().map_or(0, Vec::len);
                assert!(kids > 1, "{path}: {kids} nodes");
                assert_eq!(code, 0, "{path} ({pkg}): {rep:#}");
                structured += 1;
            }
            None => {
                // Honest: an image with no structure is not called clean.
                assert_eq!(format, "raw", "{path}");
                assert_eq!(code, 2, "{path}: {rep:#}");
            }
        }
    }
    for m in &missing {
        skip(&format!("{m} is not installed"));
    }
    if seen > 0 {
        let ratio = structured as f64 / seen as f64;
        println!(
            "{structured} of {seen} real files structured ({:.0}%)",
            ratio * 100.0
        );
        assert!(ratio >= 0.85, "{structured}/{seen}");
    }
}

fn walk<'a>(n: &'a Value, f: &mut dyn FnMut(&'a Value)) {
    f(n);
    for c in n["children"].as_array().into_iter().flatten() {
        walk(c, f);
    }
}

/// Every node named `section[NAME]` or `segment[...]`: (name, offset, size).
fn nodes(tree: &Value, prefix: &str) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    walk(&tree["root"], &mut |n| {
        let name = n["name"].as_str().unwrap_or("");
        if name.starts_with(prefix) {
            out.push((
                name.to_string(),
                n["offset"].as_u64().unwrap(),
                n["size"].as_u64().unwrap(),
            ));
        }
    });
    out.sort_by_key(|x| x.1);
    out
}

/// `objdump -h`: (name, file offset, size) of each section with contents.
fn objdump_sections(p: &Path) -> Vec<(String, u64, u64)> {
    let out = Command::new("objdump").arg("-h").arg(p).output().unwrap();
    assert!(out.status.success(), "objdump -h {}", p.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let mut v = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "Idx Name Size VMA LMA File-off Algn", then a line of flags.
        if f.len() == 7 && f[0].parse::<u32>().is_ok() {
            let flags = lines.get(i + 1).copied().unwrap_or("");
            let size = u64::from_str_radix(f[2], 16).unwrap();
            if !flags.contains("CONTENTS") || size == 0 {
                continue;
            }
            v.push((
                f[1].to_string(),
                u64::from_str_radix(f[5], 16).unwrap(),
                size,
            ));
        }
    }
    v.sort_by_key(|x| x.1);
    v
}

/// The PE sections of the EFI binaries are the ones binutils' `objdump -h` lists (name, file offset, size).
#[test]
fn pe_sections_equal_objdump() {
    if !have_tool("objdump", "binutils") {
        return;
    }
    let mut compared = 0;
    for (pkg, path, want) in REAL.iter().filter(|r| r.2 == Some("pe")) {
        let p = Path::new(path);
        if !p.is_file() {
            skip(&format!("{path} missing (Debian {pkg}, want {want:?})"));
            continue;
        }
        let tree = inspect_json(p);
        let ours: Vec<(String, u64, u64)> = nodes(&tree, "section[")
            .into_iter()
            .map(|(n, o, s)| (n["section[".len()..n.len() - 1].to_string(), o, s))
            .collect();
        let theirs = objdump_sections(p);
        // objdump sizes a PE section by its virtual size when that is smaller than the raw data.
        assert_eq!(
            ours.iter().map(|x| (&x.0, x.1)).collect::<Vec<_>>(),
            theirs.iter().map(|x| (&x.0, x.1)).collect::<Vec<_>>(),
            "{path}"
        );
        for (o, t) in ours.iter().zip(&theirs) {
            assert!(o.2 >= t.2, "{path}: {o:?} vs {t:?}");
        }
        compared += 1;
    }
    assert!(compared > 0 || !under_ci());
}

/// `readelf --wide -S` / `-l`: the sections with file bytes (name, offset, size) and every program header
/// (index, offset, file size).
type Sections = Vec<(String, u64, u64)>;
fn readelf(p: &Path) -> (Sections, Vec<(usize, u64, u64)>) {
    let out = Command::new("readelf")
        .args(["--wide", "-S", "-l"])
        .arg(p)
        .output()
        .unwrap();
    assert!(out.status.success(), "readelf {}", p.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut secs, mut segs) = (Vec::new(), Vec::new());
    let mut in_ph = false;
    for l in text.lines() {
        let t = l.trim_start();
        if t.starts_with("Program Headers:") {
            in_ph = true;
            continue;
        }
        if t.starts_with("Section to Segment") || t.is_empty() {
            in_ph = false;
        }
        if let Some(rest) = t.strip_prefix('[') {
            // "[Nr] Name Type Address Off Size ES Flg Lk Inf Al"
            let Some((nr, rest)) = rest.split_once(']') else {
                continue;
            };
            if nr.trim().parse::<u32>().is_err() {
                continue;
            }
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() < 5 || f[1] == "NULL" || f[1] == "NOBITS" {
                continue;
            }
            let (off, size) = (
                u64::from_str_radix(f[3], 16).unwrap(),
                u64::from_str_radix(f[4], 16).unwrap(),
            );
            if size > 0 {
                secs.push((f[0].to_string(), off, size));
            }
        } else if in_ph {
            // "Type Offset VirtAddr PhysAddr FileSiz MemSiz Flg Align"
            let f: Vec<&str> = t.split_whitespace().collect();
            if f.len() >= 6 && f[1].starts_with("0x") && f[4].starts_with("0x") {
                let idx = segs.len();
                let off = u64::from_str_radix(&f[1][2..], 16).unwrap();
                let size = u64::from_str_radix(&f[4][2..], 16).unwrap();
                // PT_PHDR is the `program-headers` node; empty segments have no node.
                segs.push((
                    idx,
                    if f[0] == "PHDR" { 0 } else { off },
                    if f[0] == "PHDR" { 0 } else { size },
                ));
            }
        }
    }
    secs.sort_by_key(|x| x.1);
    segs.retain(|s| s.2 > 0);
    (secs, segs)
}

/// The ELF files' sections and segments are those `readelf` lists (offset and size in the file), but for
/// the ones fwscan names as only partly overlapping another.
#[test]
fn elf_sections_and_segments_equal_readelf() {
    if !have_tool("readelf", "binutils") {
        return;
    }
    let mut compared = 0;
    for (pkg, path, _) in REAL.iter().filter(|r| r.2 == Some("elf")) {
        let p = Path::new(path);
        if !p.is_file() {
            skip(&format!("{path} missing (Debian {pkg})"));
            continue;
        }
        let tree = inspect_json(p);
        let (secs, segs) = readelf(p);
        let overlapping: Vec<String> = tree["root"]["attrs"]["overlapping"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let ours: Vec<(u64, u64)> = nodes(&tree, "section[")
            .into_iter()
            .map(|(_, o, s)| (o, s))
            .collect();
        let theirs: Vec<(u64, u64)> = secs
            .iter()
            .filter(|s| !overlapping.contains(&format!("section[{}]", s.0)))
            .map(|s| (s.1, s.2))
            .collect();
        assert_eq!(ours, theirs, "{path}: sections ({overlapping:?})");
        let mut our_segs: Vec<(usize, u64, u64)> = nodes(&tree, "segment[")
            .into_iter()
            .map(|(n, o, s)| {
                let i = n["segment[".len()..].split(':').next().unwrap();
                (i.parse().unwrap(), o, s)
            })
            .collect();
        our_segs.sort();
        let theirs_segs: Vec<(usize, u64, u64)> = segs
            .into_iter()
            .filter(|(i, _, _)| {
                !overlapping
                    .iter()
                    .any(|o| o.starts_with(&format!("segment[{i}:")))
            })
            .collect();
        assert_eq!(our_segs, theirs_segs, "{path}: segments ({overlapping:?})");
        println!(
            "{path}: {} sections, {} segments as readelf; {} left out as overlapping",
            ours.len(),
            our_segs.len(),
            overlapping.len()
        );
        compared += 1;
    }
    assert!(compared > 0 || !under_ci());
}

fn chipsec() -> Option<PathBuf> {
    std::env::var_os("FWSCAN_CHIPSEC_MAIN")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("chipsec_main"))
                    .find(|p| p.is_file())
            })
        })
}

/// A stand-alone PE file's `body-sha256` is the digest CHIPSEC (`tools.uefi.scan_image`) gives the same
/// module stored as a PE32 section of a driver in a firmware volume; and fwscan gives that module the
/// same digest inside the volume.
#[test]
fn standalone_pe_body_digest_equals_chipsec() {
    let Some(chipsec) = chipsec() else {
        skip("chipsec_main not installed (pip install chipsec)");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for path in [
        "/usr/lib/shim/shimx64.efi",
        "/usr/lib/systemd/boot/efi/systemd-bootx64.efi",
    ] {
        let p = Path::new(path);
        if !p.is_file() {
            skip(&format!(
                "{path} missing (Debian shim-unsigned, systemd-boot-efi)"
            ));
            continue;
        }
        let pe = std::fs::read(p).unwrap();
        let tree = inspect_json(p);
        let ours = tree["root"]["attrs"]["body-sha256"]
            .as_str()
            .unwrap()
            .to_string();
        let file = build::file(
            build::guid_bytes("5A2C1C4E-8B6F-4D8E-9C1A-2F0E3D4B5A61"),
            0x09,
            &build::sections(&[build::section(0x10, &pe), build::ui("Real")]),
            0,
        );
        let size = (file.len() + 0x1000).next_multiple_of(0x1000);
        let fv = build::volume(build::FFS2, None, &[file], size);
        let img = d.path().join("fv.bin");
        std::fs::write(&img, &fv).unwrap();
        let theirs = d.path().join("chipsec.json");
        let out = Command::new(&chipsec)
            .args(["-i", "-n", "-m", "tools.uefi.scan_image", "-a"])
            .arg(format!("generate,{},{}", theirs.display(), img.display()))
            .current_dir(d.path())
            .output()
            .expect("run chipsec_main");
        assert!(
            out.status.success() && theirs.is_file(),
            "chipsec failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let list: Value = serde_json::from_slice(&std::fs::read(&theirs).unwrap()).unwrap();
        let keys: Vec<&String> = list.as_object().unwrap().keys().collect();
        assert_eq!(keys, [&ours], "{path}: CHIPSEC's digest vs ours");
        // The same module in the volume carries the same digest.
        let vt = inspect_json(&img);
        let mut inside = Vec::new();
        walk(&vt["root"], &mut |n| {
            if let Some(s) = n["attrs"]["body-sha256"].as_str() {
                inside.push(s.to_string());
            }
        });
        assert_eq!(inside, std::slice::from_ref(&ours), "{path}");
        std::fs::remove_file(&theirs).unwrap();
        compared += 1;
    }
    if compared == 0 {
        skip("no stand-alone EFI binary installed");
    }
}

/// An option ROM stored in a volume, as a raw file and as a raw section of a freeform file, is parsed as
/// an option ROM (its images, the EFI image as PE), and the volume checks clean.
#[test]
fn option_roms_inside_volumes_are_parsed() {
    let rom_path = Path::new("/usr/lib/ipxe/qemu/efi-e1000.rom");
    if !rom_path.is_file() {
        skip("efi-e1000.rom missing (Debian ipxe-qemu)");
        return;
    }
    let rom = std::fs::read(rom_path).unwrap();
    let raw_file = build::file(
        build::guid_bytes("11111111-2222-3333-4444-555555555555"),
        0x01,
        &rom,
        0,
    );
    let freeform = build::file(
        build::guid_bytes("66666666-7777-8888-9999-AAAAAAAAAAAA"),
        0x02,
        &build::sections(&[build::section(0x19, &rom)]),
        0,
    );
    let size = (raw_file.len() + freeform.len() + 0x1000).next_multiple_of(0x1000);
    let fv = build::volume(build::FFS2, None, &[raw_file, freeform], size);
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("fv.bin");
    std::fs::write(&img, &fv).unwrap();
    let tree = inspect_json(&img);
    let mut roms = Vec::new();
    walk(&tree["root"], &mut |n| {
        if n["name"] == "optionrom" {
            roms.push(n.clone());
        }
    });
    assert_eq!(roms.len(), 2, "{tree:#}");
    for r in &roms {
        assert_eq!(r["attrs"]["format"], "optionrom");
        assert_eq!(r["size"].as_u64().unwrap(), rom.len() as u64);
        let images: Vec<&Value> = r["children"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == "file")
            .collect();
        assert_eq!(images.len(), 2, "{r:#}");
        assert_eq!(images[1]["attrs"]["code-type"], "efi");
    }
    let (code, rep) = check_json(&img);
    assert_eq!(code, 0, "{rep:#}");
}

/// A single FFS file of its own (a driver holding a real EFI module, as GenFfs writes one) is recognised,
/// checks clean, and a broken header checksum is reported.
#[test]
fn a_single_ffs_file_is_parsed_and_checked() {
    let path = Path::new("/usr/lib/shim/mmx64.efi");
    if !path.is_file() {
        skip("mmx64.efi missing (Debian shim-unsigned)");
        return;
    }
    let pe = std::fs::read(path).unwrap();
    let mut f = build::file(
        build::guid_bytes("0F0E0D0C-0B0A-0908-0706-050403020100"),
        0x09,
        &build::sections(&[build::section(0x10, &pe), build::ui("MokManager")]),
        0x40,
    );
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("MokManager.ffs");
    std::fs::write(&p, &f).unwrap();
    let tree = inspect_json(&p);
    assert_eq!(tree["root"]["attrs"]["format"], "ffs");
    let file = &tree["root"]["children"][0];
    assert_eq!(file["attrs"]["ui-name"], "MokManager", "{file:#}");
    let (code, rep) = check_json(&p);
    assert_eq!(code, 0, "{rep:#}");
    // One byte of the module changed: the data checksum no longer holds.
    let n = f.len();
    f[n / 2] ^= 1;
    std::fs::write(&p, &f).unwrap();
    let (code, rep) = check_json(&p);
    assert_eq!(code, 1, "{rep:#}");
    assert!(rep.to_string().contains("ffs-data-checksum"), "{rep:#}");
}

/// SLOF's romfs chain, read here byte by byte, is the list of `file[NAME]` nodes; skiboot's debug
/// descriptor is where the word at 0x80 points.
#[test]
fn slof_and_skiboot_structures_match_their_headers() {
    let slof = Path::new("/usr/share/qemu/slof.bin");
    let skiboot = Path::new("/usr/share/qemu/skiboot.lid");
    if !slof.is_file() || !skiboot.is_file() {
        skip("slof.bin / skiboot.lid missing (Debian qemu-system-data)");
        return;
    }
    let b = std::fs::read(slof).unwrap();
    let be = |o: usize| u64::from_be_bytes(b[o..o + 8].try_into().unwrap());
    let mut want = Vec::new();
    let mut at = 0usize;
    loop {
        let name_end = b[at + 32..].iter().position(|&c| c == 0).unwrap();
        let name = String::from_utf8_lossy(&b[at + 32..at + 32 + name_end]).to_string();
        want.push((format!("file[{name}]"), at as u64, be(at + 8)));
        let next = be(at) as usize;
        if next == 0 {
            break;
        }
        at += next;
    }
    let tree = inspect_json(slof);
    let ours: Vec<(String, u64, u64)> = tree["root"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "file")
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["offset"].as_u64().unwrap(),
                c["attrs"]["length"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(want.len() > 10);
    assert_eq!(ours, want);

    let s = std::fs::read(skiboot).unwrap();
    let desc = u64::from_be_bytes(s[0x80..0x88].try_into().unwrap());
    let tree = inspect_json(skiboot);
    let node = tree["root"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "debug-descriptor")
        .unwrap()
        .clone();
    assert_eq!(node["offset"].as_u64().unwrap(), desc);
    assert_eq!(&s[desc as usize..desc as usize + 8], b"OPALdbug");
}

/// After an e1000e bank switch (issue 22, point 1 follow-up): bank 1 is valid and bank 0 holds the stale
/// copy the driver invalidated (signature bits cleared by writing 0 over the high byte of word 0x13, the
/// old checksum word left as it was, so its sum no longer holds) or was already erased. `check` finds
/// nothing in either, while a wrong checksum in the bank in use is never passed.
#[test]
fn gbe_after_a_bank_switch_checks_clean() {
    use crate::gbe::{bank, X230};
    let d = tempfile::tempdir().unwrap();
    let valid = bank(&X230, true);
    // The old bank 0: a valid bank (an older MAC) with its signature invalidated in place.
    let mut stale = bank(&X230, true);
    stale[5] ^= 0x5A;
    stale[0x27] = 0;
    let erased = vec![0xFFu8; 0x1000];
    for (name, bank0) in [("stale", &stale), ("erased", &erased)] {
        let mut region = bank0.clone();
        region.extend(&valid);
        let p = d.path().join(format!("gbe-{name}.bin"));
        std::fs::write(&p, &region).unwrap();
        let tree = inspect_json(&p);
        assert_eq!(tree["root"]["attrs"]["format"], "gbe", "{name}");
        let (code, rep) = check_json(&p);
        assert_eq!(code, 0, "{name}: {rep:#}");
        // The checksum is the bank in use's: a wrong one there is not passed.
        let mut bad = region.clone();
        bad[0x1000 + 0x7E] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        let (code, rep) = check_json(&p);
        assert_ne!(code, 0, "{name}: {rep:#}");
    }
}
