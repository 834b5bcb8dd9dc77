//! Builds realistic BMC flash images from real tools (u-boot-qemu, u-boot-tools, device-tree-compiler,
//! squashfs-tools, mtd-utils, busybox-static), for the BMC integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub const TOOLS: &[&str] = &[
    "mkimage",
    "dumpimage",
    "mkenvimage",
    "dtc",
    "mksquashfs",
    "unsquashfs",
    "mkfs.jffs2",
    "sha256sum",
];
pub const UBOOT_32: &str = "/usr/lib/u-boot/maltael/u-boot.bin";
pub const UBOOT_64: &str = "/usr/lib/u-boot/qemu_arm/u-boot.bin";
pub const BUSYBOX: &str = "/usr/bin/busybox";

/// `(name, offset, size)` of the OpenBMC static layouts.
pub const LAYOUT_32: &[(&str, u64, u64)] = &[
    ("u-boot", 0x0, 0x60000),
    ("u-boot-env", 0x60000, 0x20000),
    ("kernel", 0x80000, 0x440000),
    ("rofs", 0x4C0000, 0x1740000),
    ("rwfs", 0x1C00000, 0x400000),
];
pub const LAYOUT_64: &[(&str, u64, u64)] = &[
    ("u-boot", 0x0, 0xE0000),
    ("u-boot-env", 0xE0000, 0x20000),
    ("kernel", 0x100000, 0x900000),
    ("rofs", 0xA00000, 0x2000000),
    ("rwfs", 0x2A00000, 0x1600000),
];

pub const ENV: &str = "bootcmd=bootm 20080000\nbootargs=console=ttyS4,115200n8 root=/dev/ram rw\nbootdelay=2\nethaddr=00:11:22:33:44:55\n";

/// Whether every tool and input file is installed; prints why not.
pub fn available() -> bool {
    for t in TOOLS {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
            .unwrap_or(false)
            || Path::new("/usr/sbin").join(t).is_file();
        if !found {
            crate::harness::skip(&format!("`{t}` not installed (Debian: u-boot-tools device-tree-compiler squashfs-tools mtd-utils)"));
            return false;
        }
    }
    for f in [UBOOT_32, UBOOT_64, BUSYBOX] {
        if !Path::new(f).is_file() {
            crate::harness::skip(&format!("{f} missing (Debian: u-boot-qemu busybox-static)"));
            return false;
        }
    }
    true
}

pub fn run(dir: &Path, prog: &str, args: &[&str]) -> String {
    let prog_path = if Path::new("/usr/sbin").join(prog).is_file() && prog == "mkfs.jffs2" {
        PathBuf::from("/usr/sbin").join(prog)
    } else {
        PathBuf::from(prog)
    };
    let out = Command::new(prog_path)
        .args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap_or_else(|e| panic!("running {prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh scratch directory under the cargo target dir.
pub fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bmc-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The root filesystem tree: busybox with applet links, /etc files, an empty directory.
pub fn make_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "sbin", "etc", "usr/bin", "usr/sbin", "var/empty"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    for l in ["sh", "ls", "cat", "mount"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(l)).unwrap();
    }
    std::os::unix::fs::symlink("../bin/busybox", root.join("sbin/init")).unwrap();
    std::os::unix::fs::symlink("../../bin/busybox", root.join("usr/bin/env")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "ID=openbmc-phosphor\nVERSION_ID=test-1\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/home/root:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/hostname"), "testbmc\n").unwrap();
    root
}

pub fn squashfs(dir: &Path, root: &Path, out: &str) -> Vec<u8> {
    let _ = std::fs::remove_file(dir.join(out));
    run(
        dir,
        "mksquashfs",
        &[
            root.to_str().unwrap(),
            out,
            "-comp",
            "xz",
            "-noappend",
            "-all-root",
            "-quiet",
            "-no-progress",
        ],
    );
    std::fs::read(dir.join(out)).unwrap()
}

/// A device tree; with `layout`, a flash node with `fixed-partitions`.
pub fn dts(layout: Option<&[(&str, u64, u64)]>) -> String {
    let mut parts = String::new();
    if let Some(l) = layout {
        parts.push_str("fmc { #address-cells = <1>; #size-cells = <0>; flash@0 { reg = <0>; label = \"bmc\";\n partitions { compatible = \"fixed-partitions\"; #address-cells = <1>; #size-cells = <1>;\n");
        for (name, off, size) in l {
            parts.push_str(&format!(
                "  {name}@{off:x} {{ reg = <{off:#x} {size:#x}>; label = \"{name}\"; }};\n"
            ));
        }
        parts.push_str("}; }; };\n");
    }
    format!(
        "/dts-v1/;\n/ {{ model = \"fwscan test BMC\"; compatible = \"aspeed,ast2500\"; #address-cells = <1>; #size-cells = <1>;\n{parts}}};\n"
    )
}

/// A kernel FIT (kernel + DTB, sha256 hash nodes, one configuration).
pub fn fit(dir: &Path, kernel: &[u8], dts_text: &str, out: &str) -> Vec<u8> {
    std::fs::write(dir.join("Image"), kernel).unwrap();
    std::fs::write(dir.join("board.dts"), dts_text).unwrap();
    run(
        dir,
        "dtc",
        &[
            "-q",
            "-I",
            "dts",
            "-O",
            "dtb",
            "-o",
            "board.dtb",
            "board.dts",
        ],
    );
    let its = r#"/dts-v1/;
/ { description = "fwscan test kernel"; #address-cells = <1>;
  images {
    kernel-1 { description = "Linux kernel"; data = /incbin/("Image"); type = "kernel"; arch = "arm"; os = "linux";
      compression = "none"; load = <0x80008000>; entry = <0x80008000>; hash-1 { algo = "sha256"; }; };
    fdt-1 { description = "board device tree"; data = /incbin/("board.dtb"); type = "flat_dt"; arch = "arm";
      compression = "none"; hash-1 { algo = "sha256"; }; };
  };
  configurations { default = "conf-1"; conf-1 { kernel = "kernel-1"; fdt = "fdt-1"; hash-1 { algo = "sha256"; }; }; };
};
"#;
    std::fs::write(dir.join("fit.its"), its).unwrap();
    run(dir, "mkimage", &["-f", "fit.its", out]);
    std::fs::read(dir.join(out)).unwrap()
}

/// Deterministic pseudo-kernel bytes.
pub fn kernel_bytes(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn env(dir: &Path, text: &str, out: &str) -> Vec<u8> {
    std::fs::write(dir.join("env.txt"), text).unwrap();
    run(dir, "mkenvimage", &["-s", "0x10000", "-o", out, "env.txt"]);
    std::fs::read(dir.join(out)).unwrap()
}

pub fn jffs2(dir: &Path, files: &[(&str, &str)], out: &str) -> Vec<u8> {
    let rw = dir.join("rw");
    let _ = std::fs::remove_dir_all(&rw);
    std::fs::create_dir_all(rw.join("etc")).unwrap();
    for (n, c) in files {
        std::fs::write(rw.join(n), c).unwrap();
    }
    run(
        dir,
        "mkfs.jffs2",
        &["-r", "rw", "-o", out, "-e", "64KiB", "-l"],
    );
    std::fs::read(dir.join(out)).unwrap()
}

/// Lays `parts` (partition name → bytes) out in a blank flash of `layout`.
pub fn assemble(layout: &[(&str, u64, u64)], parts: &[(&str, &[u8])]) -> Vec<u8> {
    let size = layout.iter().map(|p| p.1 + p.2).max().unwrap() as usize;
    let mut img = vec![0xFFu8; size];
    for (name, bytes) in parts {
        let (_, off, psize) = layout.iter().find(|p| p.0 == *name).unwrap();
        assert!(bytes.len() as u64 <= *psize, "{name} does not fit");
        img[*off as usize..*off as usize + bytes.len()].copy_from_slice(bytes);
    }
    img
}

/// All pieces of one image.
#[derive(Clone)]
pub struct Pieces {
    pub uboot: Vec<u8>,
    pub env: Vec<u8>,
    pub kernel: Vec<u8>,
    pub rofs: Vec<u8>,
    pub rwfs: Vec<u8>,
}

impl Pieces {
    pub fn image(&self, layout: &[(&str, u64, u64)]) -> Vec<u8> {
        assemble(
            layout,
            &[
                ("u-boot", &self.uboot),
                ("u-boot-env", &self.env),
                ("kernel", &self.kernel),
                ("rofs", &self.rofs),
                ("rwfs", &self.rwfs),
            ],
        )
    }
}

/// Builds the pieces of a clean image: `layout_in_dtb` puts the flash layout into the FIT's device tree.
pub fn build(dir: &Path, layout: &[(&str, u64, u64)], uboot: &str, layout_in_dtb: bool) -> Pieces {
    let root = make_root(dir);
    Pieces {
        uboot: std::fs::read(uboot).unwrap(),
        env: env(dir, ENV, "env.bin"),
        kernel: fit(
            dir,
            &kernel_bytes(1, 600_000),
            &dts(layout_in_dtb.then_some(layout)),
            "kernel.fit",
        ),
        rofs: squashfs(dir, &root, "rofs.sqsh"),
        rwfs: jffs2(dir, &[("etc/hostname", "bmc-0001\n")], "rwfs.jffs2"),
    }
}
