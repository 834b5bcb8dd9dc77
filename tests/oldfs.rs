//! The older BMC file systems (issue 21.4) and Supermicro's own images (issue 21.6).
//!
//! * cramfs, little- and big-endian, made by `mkfs.cramfs` (util-linux): every file, directory and symlink
//!   listed with the mode, owner, size and digest that `fsck.cramfs -v --extract` reports and extracts;
//!   a changed file named by `scan`.
//! * romfs made by `genromfs`: the tree against the directory it was made from (genromfs keeps no
//!   owners or modes); binwalk's romfs sample; a changed file named by `scan`.
//! * yaffs2: binwalk's sample (mkyaffs2image output, 2 KiB pages + 64-byte OOB) against `unyaffs`; one
//!   changed data byte named by `scan`.
//! * Supermicro X9: an image assembled as the WPCM450 layout says (bootloader block, cramfs root file
//!   system, a ZIP kernel holding `kernel.bin`, a cramfs web file system, 64-byte footers, ATENs_FW v2).
//!   The real X9 SDK parts are not redistributable here, so the image is generated with code from the
//!   same layout (docs/bmc.md records the one-off run on the real parts). It checks clean; a changed web
//!   file is named; a bad image checksum is `smc-image-checksum`, a bad footer `smc-footer-checksum`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::harness::{code_path_messages, have_tool, inspect_json, run};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fwscan-oldfs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sh(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog).args(args).output().expect(prog);
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

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

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A small tree: text, a binary spanning several 4 KiB blocks, a zero-filled file, an empty file, a
/// symlink, nested directories, an executable.
fn make_root(dir: &Path, passwd: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["etc", "bin", "usr/share/web/css", "empty"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), passwd).unwrap();
    let mut x = 0x1234_5678u32;
    let bin: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(root.join("bin/app"), &bin).unwrap();
    std::fs::set_permissions(root.join("bin/app"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(root.join("usr/share/zeros"), vec![0u8; 9000]).unwrap();
    std::fs::write(root.join("usr/share/web/css/none.css"), b"").unwrap();
    std::fs::write(
        root.join("usr/share/web/index.html"),
        b"<html><body>IPMI</body></html>\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("../etc/passwd", root.join("bin/passwd-link")).unwrap();
    root
}

/// Every entry under `root` (relative path -> (kind, size, sha256 of file bytes or link target)).
fn walk(root: &Path) -> BTreeMap<String, (&'static str, u64, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                let t = std::fs::read_link(e.path()).unwrap();
                let t = t.to_str().unwrap().as_bytes().to_vec();
                out.insert(rel, ("fs-symlink", t.len() as u64, sha256(&t)));
            } else if ft.is_dir() {
                out.insert(rel, ("fs-dir", 0, String::new()));
                stack.push(e.path());
            } else {
                let b = std::fs::read(e.path()).unwrap();
                out.insert(rel, ("fs-file", b.len() as u64, sha256(&b)));
            }
        }
    }
    out
}

/// The tree's entries below `prefix`, in the shape of [`walk`].
fn listed(
    n: &BTreeMap<String, Value>,
    prefix: &str,
) -> BTreeMap<String, (&'static str, u64, String)> {
    let mut out = BTreeMap::new();
    for (p, v) in n {
        let Some(rel) = p.strip_prefix(prefix) else {
            continue;
        };
        let kind = match v["kind"].as_str().unwrap() {
            "fs-file" => "fs-file",
            "fs-dir" => "fs-dir",
            "fs-symlink" => "fs-symlink",
            _ => continue,
        };
        let (size, digest) = if kind == "fs-dir" {
            (0, String::new())
        } else {
            (
                v["size"].as_u64().unwrap(),
                v["digest"].as_str().unwrap().to_string(),
            )
        };
        out.insert(rel.to_string(), (kind, size, digest));
    }
    out
}

fn baseline(dir: &Path, img: &Path) -> PathBuf {
    let m = dir.join("baseline.json");
    let (code, _, err) = run(&[
        "baseline",
        img.to_str().unwrap(),
        "-o",
        m.to_str().unwrap(),
        "--component",
        "bmc",
    ]);
    assert_eq!(code, 0, "baseline failed: {err}");
    m
}

fn scan(manifest: &Path, img: &Path) -> (i32, Vec<(String, String, String)>) {
    let (code, out, err) = run(&[
        "scan",
        img.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--insecure-unsigned",
        "--format",
        "json",
    ]);
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, code_path_messages(&doc))
}

fn check(img: &Path) -> (i32, Vec<(String, String, String)>) {
    let (code, out, err) = run(&["check", img.to_str().unwrap(), "--format", "json"]);
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    // One report per image.
    (code, code_path_messages(&doc[0]))
}

fn has(f: &[(String, String, String)], code: &str, path: &str) -> bool {
    f.iter().any(|(c, p, _)| c == code && p == path)
}

#[test]
fn cramfs_both_endians_match_fsck_cramfs() {
    if !have_tool("mkfs.cramfs", "util-linux") || !have_tool("fsck.cramfs", "util-linux") {
        return;
    }
    let dir = scratch("cramfs");
    let root = make_root(&dir, "root:x:0:0::/root:/bin/sh\n");
    for endian in ["little", "big"] {
        let img = dir.join(format!("{endian}.cramfs"));
        sh(
            "mkfs.cramfs",
            &["-N", endian, root.to_str().unwrap(), img.to_str().unwrap()],
        );
        let out = dir.join(format!("x-{endian}"));
        let listing = sh(
            "fsck.cramfs",
            &[
                "-v",
                &format!("--extract={}", out.display()),
                img.to_str().unwrap(),
            ],
        );
        let doc = inspect_json(&img);
        assert_eq!(doc["format"], "cramfs", "{endian}");
        let n = nodes(&doc);
        let fs = &n["cramfs"];
        assert_eq!(fs["attrs"]["endian"], endian);
        assert!(fs["notes"].as_array().is_none_or(|a| a.is_empty()), "{fs}");
        // Names, kinds, sizes and digests: what fsck.cramfs extracted.
        assert_eq!(listed(&n, "cramfs/"), walk(&out), "{endian}");
        // Modes and owners: fsck.cramfs -v's listing (`TYPE MODE SIZE UID:GID PATH`).
        let mut count = 0;
        for line in listing.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 5 || !["d", "f", "l"].contains(&f[0]) {
                continue;
            }
            let Some(rel) = f[4].strip_prefix(&format!("{}/", out.display())) else {
                continue; // the root directory
            };
            let node = &n[&format!("cramfs/{rel}")];
            assert_eq!(node["attrs"]["mode"].as_str().unwrap(), f[1], "{rel}");
            assert_eq!(
                format!("{}:{}", node["attrs"]["uid"], node["attrs"]["gid"]),
                f[3],
                "{rel}"
            );
            count += 1;
        }
        assert!(count >= 10, "fsck.cramfs -v listed {count} entries");
    }
    // The two byte orders hold the same files.
    let le = nodes(&inspect_json(&dir.join("little.cramfs")));
    let be = nodes(&inspect_json(&dir.join("big.cramfs")));
    assert_eq!(listed(&le, "cramfs/"), listed(&be, "cramfs/"));
    // A wrong superblock CRC is a finding (fsck.cramfs refuses it too).
    let mut bad = std::fs::read(dir.join("little.cramfs")).unwrap();
    bad[0x20] ^= 1;
    let badp = dir.join("badcrc.cramfs");
    std::fs::write(&badp, &bad).unwrap();
    assert!(!Command::new("fsck.cramfs")
        .arg(&badp)
        .status()
        .unwrap()
        .success());
    let (code, f) = check(&badp);
    assert_eq!(code, 1);
    assert!(has(&f, "fs-checksum", "cramfs"), "{f:?}");
}

#[test]
fn cramfs_changed_file_is_named_by_scan() {
    if !have_tool("mkfs.cramfs", "util-linux") {
        return;
    }
    let dir = scratch("cramfs-scan");
    let root = make_root(&dir, "root:x:0:0::/root:/bin/sh\n");
    let img = dir.join("base.cramfs");
    sh(
        "mkfs.cramfs",
        &[root.to_str().unwrap(), img.to_str().unwrap()],
    );
    let m = baseline(&dir, &img);
    let (code, f) = scan(&m, &img);
    assert_eq!(code, 0, "{f:?}");
    let root = make_root(&dir, "root::0:0::/root:/bin/sh\n");
    let img2 = dir.join("changed.cramfs");
    sh(
        "mkfs.cramfs",
        &[root.to_str().unwrap(), img2.to_str().unwrap()],
    );
    let (code, f) = scan(&m, &img2);
    assert_eq!(code, 1);
    assert!(has(&f, "file-modified", "cramfs/etc/passwd"), "{f:?}");
    assert!(
        !f.iter()
            .any(|(c, p, _)| c == "file-modified" && p.starts_with("cramfs/bin/")),
        "{f:?}"
    );
}

#[test]
fn romfs_lists_genromfs_input_and_names_a_change() {
    if !have_tool("genromfs", "genromfs") {
        return;
    }
    let dir = scratch("romfs");
    let root = make_root(&dir, "root:x:0:0::/root:/bin/sh\n");
    let img = dir.join("base.romfs");
    sh(
        "genromfs",
        &[
            "-f",
            img.to_str().unwrap(),
            "-d",
            root.to_str().unwrap(),
            "-V",
            "bmc",
        ],
    );
    let doc = inspect_json(&img);
    assert_eq!(doc["format"], "romfs");
    let n = nodes(&doc);
    assert_eq!(n["romfs"]["attrs"]["volume-name"], "bmc");
    assert!(n["romfs"]["notes"].as_array().is_none_or(|a| a.is_empty()));
    // genromfs keeps names, kinds, contents and the executable bit.
    assert_eq!(listed(&n, "romfs/"), walk(&root));
    assert_eq!(n["romfs/bin/app"]["attrs"]["mode"], "0755");
    assert_eq!(n["romfs/etc/passwd"]["attrs"]["mode"], "0644");
    let m = baseline(&dir, &img);
    let root = make_root(&dir, "root::0:0::/root:/bin/sh\n");
    let img2 = dir.join("changed.romfs");
    sh(
        "genromfs",
        &[
            "-f",
            img2.to_str().unwrap(),
            "-d",
            root.to_str().unwrap(),
            "-V",
            "bmc",
        ],
    );
    let (code, f) = scan(&m, &img2);
    assert_eq!(code, 1);
    assert!(has(&f, "file-modified", "romfs/etc/passwd"), "{f:?}");
    // A changed data byte without a fixed header checksum: named, and the checksum finding.
    let mut raw = std::fs::read(&img).unwrap();
    let at = raw.windows(9).position(|w| w == b"root:x:0:").unwrap();
    raw[at + 5] = b'y';
    let img3 = dir.join("patched.romfs");
    std::fs::write(&img3, &raw).unwrap();
    let (code, f) = scan(&m, &img3);
    assert_eq!(code, 1);
    assert!(has(&f, "file-modified", "romfs/etc/passwd"), "{f:?}");
}

/// binwalk's samples (tests/inputs, MIT): see testdata/oldfs/PROVENANCE.
fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/oldfs")
        .join(name)
}

#[test]
fn binwalk_samples_are_listed() {
    // romfs: one file, lsb-release.
    let n = nodes(&inspect_json(&sample("romfs.bin")));
    let f = &n["romfs/lsb-release"];
    assert_eq!(f["kind"], "fs-file");
    let data = std::fs::read(sample("romfs.bin")).unwrap();
    let at = data.windows(10).position(|w| w == b"DISTRIB_ID").unwrap();
    let len = f["size"].as_u64().unwrap() as usize;
    assert_eq!(f["digest"].as_str().unwrap(), sha256(&data[at..at + len]));
    assert!(String::from_utf8_lossy(&data[at..at + len]).ends_with("LTS\"\n"));
    // cramfs: one file, against fsck.cramfs.
    if have_tool("fsck.cramfs", "util-linux") {
        let dir = scratch("binwalk-cramfs");
        let out = dir.join("x");
        sh(
            "fsck.cramfs",
            &[
                &format!("--extract={}", out.display()),
                sample("cramfs.bin").to_str().unwrap(),
            ],
        );
        let n = nodes(&inspect_json(&sample("cramfs.bin")));
        assert_eq!(listed(&n, "cramfs/"), walk(&out));
    }
}

#[test]
fn yaffs2_matches_unyaffs_and_names_a_change() {
    if !have_tool("unyaffs", "unyaffs") {
        return;
    }
    let dir = scratch("yaffs2");
    let img = sample("yaffs2.bin");
    let out = dir.join("x");
    std::fs::create_dir_all(&out).unwrap();
    let o = Command::new("unyaffs")
        .arg(&img)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc = inspect_json(&img);
    assert_eq!(doc["format"], "yaffs2");
    let n = nodes(&doc);
    let ours = listed(&n, "yaffs2/");
    assert_eq!(ours, walk(&out));
    assert!(ours.len() >= 10, "{ours:?}");
    // Modes: what unyaffs restored.
    use std::os::unix::fs::PermissionsExt;
    for rel in ours.keys() {
        let m = std::fs::symlink_metadata(out.join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(
            n[&format!("yaffs2/{rel}")]["attrs"]["mode"]
                .as_str()
                .unwrap(),
            format!("{m:04o}"),
            "{rel}"
        );
    }
    // One data byte of yaffs_list.h changed: the file is named, nothing else.
    let m = baseline(&dir, &img);
    let mut raw = std::fs::read(&img).unwrap();
    // The header chunk whose name (at byte 10) is yaffs_list.h; its first data chunk follows it.
    let chunk = (0..raw.len() / 2112)
        .find(|i| raw[i * 2112 + 10..].starts_with(b"yaffs_list.h\0"))
        .unwrap();
    let data = (chunk + 1) * 2112 + 100;
    raw[data] ^= 0x20;
    let p = dir.join("changed.yaffs2");
    std::fs::write(&p, &raw).unwrap();
    let (code, f) = scan(&m, &p);
    assert_eq!(code, 1);
    assert!(has(&f, "file-modified", "yaffs2/yaffs_list.h"), "{f:?}");
    assert!(
        !f.iter()
            .any(|(c, p, _)| c == "file-modified" && p != "yaffs2/yaffs_list.h"),
        "{f:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Supermicro X9.

/// The WPCM450 bootloader's checksum, written from the layout description (independent of the parser).
fn smc_sum(data: &[u8]) -> u32 {
    let mut c: i64 = 0xFFFF_FFFF;
    for (i, &b) in data.iter().enumerate() {
        c -= i64::from(b) << ((i % 4) * 8);
        if c < 0 {
            c &= 0xFFFF_FFFF;
            c -= 1;
        }
    }
    c as u32
}

/// A ZIP archive with one deflated member.
fn zip(name: &str, body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(body).unwrap();
    let comp = enc.finish().unwrap();
    let crc = crc32fast::hash(body);
    let mut z = Vec::new();
    let le16 = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&x.to_le_bytes());
    let le32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_le_bytes());
    z.extend_from_slice(b"PK\x03\x04");
    le16(&mut z, 20);
    le16(&mut z, 0);
    le16(&mut z, 8);
    le32(&mut z, 0);
    le32(&mut z, crc);
    le32(&mut z, comp.len() as u32);
    le32(&mut z, body.len() as u32);
    le16(&mut z, name.len() as u16);
    le16(&mut z, 0);
    z.extend_from_slice(name.as_bytes());
    z.extend_from_slice(&comp);
    let cd = z.len() as u32;
    z.extend_from_slice(b"PK\x01\x02");
    le16(&mut z, 20);
    le16(&mut z, 20);
    le16(&mut z, 0);
    le16(&mut z, 8);
    le32(&mut z, 0);
    le32(&mut z, crc);
    le32(&mut z, comp.len() as u32);
    le32(&mut z, body.len() as u32);
    le16(&mut z, name.len() as u16);
    le16(&mut z, 0);
    le16(&mut z, 0);
    le16(&mut z, 0);
    le16(&mut z, 0);
    le32(&mut z, 0);
    le32(&mut z, 0);
    z.extend_from_slice(name.as_bytes());
    let cdlen = z.len() as u32 - cd;
    z.extend_from_slice(b"PK\x05\x06");
    le32(&mut z, 0);
    le16(&mut z, 1);
    le16(&mut z, 1);
    le32(&mut z, cdlen);
    le32(&mut z, cd);
    le16(&mut z, 0);
    z
}

/// Image number, flash offset, name, type, bytes.
type SmcImage<'a> = (u32, u32, &'a str, u32, &'a [u8]);

/// A 16 MiB X9 flash: bootloader at 0, each image at its offset with its 64-byte footer in the last bytes
/// of its last 64 KiB block, the ATENs_FW v2 footer 16 bytes before the last image's footer.
fn x9_image(boot: &[u8], images: &[SmcImage]) -> Vec<u8> {
    let mut img = vec![0xFFu8; 16 << 20];
    img[..boot.len()].copy_from_slice(boot);
    let mut crcs = Vec::new();
    let mut last_footer = 0;
    for &(num, off, name, typ, bytes) in images {
        let off = off as usize;
        img[off..off + bytes.len()].copy_from_slice(bytes);
        let end = (off + bytes.len() + 52).div_ceil(0x10000) * 0x10000;
        let mut f = Vec::new();
        for v in [
            num,
            0x4000_0000 + off as u32,
            bytes.len() as u32,
            0x8000,
            0x8000,
        ] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        let mut nm = [0u8; 16];
        nm[..name.len()].copy_from_slice(name.as_bytes());
        f.extend_from_slice(&nm);
        f.extend_from_slice(&smc_sum(bytes).to_le_bytes());
        f.extend_from_slice(&[0x9F, 0xFF, 0xFF, 0xA0]);
        f.extend_from_slice(&typ.to_le_bytes());
        let fs = smc_sum(&f);
        f.extend_from_slice(&fs.to_le_bytes());
        img[end - 52..end].copy_from_slice(&f);
        last_footer = end - 52;
        crcs.push((num, crc32fast::hash(bytes)));
    }
    crcs.sort();
    let words: Vec<u8> = crcs.iter().flat_map(|c| c.1.to_le_bytes()).collect();
    let g = last_footer - 12 - 16;
    img[g..g + 8].copy_from_slice(b"ATENs_FW");
    img[g + 8] = 3;
    img[g + 9] = 17;
    img[g + 10] = 0x71;
    img[g + 11..g + 15].copy_from_slice(&crc32fast::hash(&words).to_le_bytes());
    img[g + 15] = 0x17;
    img
}

#[derive(Clone)]
struct X9 {
    boot: Vec<u8>,
    rootfs: Vec<u8>,
    kernel_bin: Vec<u8>,
    kernel_zip: Vec<u8>,
    webfs: Vec<u8>,
}

impl X9 {
    fn image(&self) -> Vec<u8> {
        x9_image(
            &self.boot,
            &[
                (2, 0x10000, "1stFS", 0x08, &self.rootfs),
                (3, 0x980000, "kernel", 0x17, &self.kernel_zip),
                (4, 0xB80000, "2ndFS", 0x08, &self.webfs),
            ],
        )
    }
}

fn x9_parts(dir: &Path, index: &str) -> X9 {
    let rootfs_dir = make_root(&dir.join("r"), "root:x:0:0::/root:/bin/sh\n");
    let rootfs = dir.join("rootfs.cramfs");
    sh(
        "mkfs.cramfs",
        &[rootfs_dir.to_str().unwrap(), rootfs.to_str().unwrap()],
    );
    let web = dir.join("web");
    let _ = std::fs::remove_dir_all(&web);
    std::fs::create_dir_all(web.join("cgi")).unwrap();
    std::fs::write(web.join("index.html"), index).unwrap();
    std::fs::write(web.join("cgi/ipmi.cgi"), vec![0x7Fu8; 5000]).unwrap();
    let webfs = dir.join("webfs.cramfs");
    sh(
        "mkfs.cramfs",
        &[web.to_str().unwrap(), webfs.to_str().unwrap()],
    );
    let mut x = 7u32;
    let kernel_bin: Vec<u8> = (0..300_000)
        .map(|i| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if i % 3 == 0 {
                (x >> 16) as u8
            } else {
                0
            }
        })
        .collect();
    let kernel_zip = zip("kernel.bin", &kernel_bin);
    let mut boot = vec![0u8; 64040];
    boot[..4].copy_from_slice(b"P\x04U\xaa");
    for (i, b) in boot.iter_mut().enumerate().skip(4) {
        *b = (i * 31 % 251) as u8;
    }
    X9 {
        boot,
        rootfs: std::fs::read(rootfs).unwrap(),
        kernel_bin,
        kernel_zip,
        webfs: std::fs::read(webfs).unwrap(),
    }
}

#[test]
fn supermicro_x9_image_verifies_and_changes_are_named() {
    if !have_tool("mkfs.cramfs", "util-linux") {
        return;
    }
    let dir = scratch("smc");
    let parts = x9_parts(&dir, "<html>Supermicro</html>\n");
    let img = dir.join("x9.bin");
    std::fs::write(&img, parts.image()).unwrap();
    let doc = inspect_json(&img);
    assert_eq!(doc["format"], "supermicro");
    let n = nodes(&doc);
    assert_eq!(n["image[kernel]"]["attrs"]["image-number"], 3);
    assert_eq!(n["image[kernel]"]["offset"], 0x980000);
    let kb = &n["image[kernel]/kernel.bin"];
    assert_eq!(kb["size"].as_u64(), Some(parts.kernel_bin.len() as u64));
    assert_eq!(kb["digest"].as_str().unwrap(), sha256(&parts.kernel_bin));
    assert_eq!(kb["attrs"]["compression"], "deflate");
    assert_eq!(
        n["image[2ndFS]/cramfs/index.html"]["digest"]
            .as_str()
            .unwrap(),
        sha256(b"<html>Supermicro</html>\n")
    );
    assert!(n.contains_key("image[1stFS]/cramfs/bin/app"));
    assert!(n.contains_key("footer[kernel]"));
    assert!(n.contains_key("bootloader"));
    assert_eq!(n["ATENs_FW"]["attrs"]["checksum-verified"], true);
    assert_eq!(n["ATENs_FW"]["attrs"]["firmware-version"], "3.17");
    let (code, f) = check(&img);
    assert_eq!(code, 0, "the assembled X9 image checks clean: {f:?}");

    // Baseline from the release; a web file changed (checksums fixed by the attacker) is named.
    let m = baseline(&dir, &img);
    let (code, f) = scan(&m, &img);
    assert_eq!(code, 0, "{f:?}");
    let evil = x9_parts(&dir, "<html>Supermicro<script src=//x></script></html>\n");
    let p = dir.join("web-changed.bin");
    let changed = X9 {
        webfs: evil.webfs,
        ..parts.clone()
    };
    std::fs::write(&p, changed.image()).unwrap();
    let (code, f) = scan(&m, &p);
    assert_eq!(code, 1);
    assert!(
        has(&f, "file-modified", "image[2ndFS]/cramfs/index.html"),
        "{f:?}"
    );
    assert!(!f.iter().any(|(c, _, _)| c.starts_with("smc-")), "{f:?}");

    // One raw byte flipped in the web file system's data: the image checksum and cramfs CRC fail.
    let mut raw = parts.image();
    let web_at = 0xB80000 + parts.webfs.len() - 100;
    raw[web_at] ^= 1;
    let p = dir.join("web-byte.bin");
    std::fs::write(&p, &raw).unwrap();
    let (code, f) = check(&p);
    assert_eq!(code, 1);
    assert!(has(&f, "smc-image-checksum", "image[2ndFS]"), "{f:?}");
    assert!(has(&f, "smc-footer-checksum", "ATENs_FW"), "{f:?}");

    // A bad image checksum in an otherwise consistent footer (footer checksum recomputed).
    let mut raw = parts.image();
    let fo = 0x980000 + (parts.kernel_zip.len() + 52).div_ceil(0x10000) * 0x10000 - 52;
    raw[fo + 36] ^= 0x40;
    let fs = smc_sum(&raw[fo..fo + 48]);
    raw[fo + 48..fo + 52].copy_from_slice(&fs.to_le_bytes());
    let p = dir.join("bad-image-sum.bin");
    std::fs::write(&p, &raw).unwrap();
    let (code, f) = check(&p);
    assert_eq!(code, 1);
    assert!(has(&f, "smc-image-checksum", "image[kernel]"), "{f:?}");
    assert!(!has(&f, "smc-footer-checksum", "footer[kernel]"), "{f:?}");
    // And a footer byte changed without fixing its checksum.
    let mut raw = parts.image();
    raw[fo + 12] ^= 1;
    let p = dir.join("bad-footer.bin");
    std::fs::write(&p, &raw).unwrap();
    let (code, f) = check(&p);
    assert_eq!(code, 1);
    assert!(has(&f, "smc-footer-checksum", "footer[kernel]"), "{f:?}");
}

// ---------------------------------------------------------------------------------------------------------
// squashfs 2.x/3.x.

/// `unsquashfs -lln`'s listing: path below the root -> (type char, mode, uid, gid, size or device, target).
fn unsquashfs_lln(img: &Path) -> BTreeMap<String, (char, String, String, String, Option<String>)> {
    let out = sh("unsquashfs", &["-lln", img.to_str().unwrap()]);
    let mut m = BTreeMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 {
            continue;
        }
        let perm = f[0];
        let Some(idx) = f.iter().position(|x| x.starts_with("squashfs-root/")) else {
            continue; // the root directory
        };
        // Size, or a device's `MAJOR, MINOR` / `MAJOR,MINOR`.
        let size = f[2..idx - 2].join("").replace(',', " ");
        let rest = &f[idx..];
        let rel = rest[0].strip_prefix("squashfs-root/").unwrap();
        let target = rest.get(2).map(|t| t.to_string());
        let (uid, gid) = f[1].split_once('/').unwrap();
        m.insert(
            rel.to_string(),
            (
                perm.chars().next().unwrap(),
                mode_of(perm),
                uid.to_string(),
                gid.to_string(),
                target.or(Some(size)),
            ),
        );
    }
    m
}

/// `-rwsr-xr-x` -> `4755`.
fn mode_of(perm: &str) -> String {
    let c: Vec<char> = perm.chars().collect();
    let mut m = 0u32;
    for (i, bit) in [
        (1, 0o400),
        (2, 0o200),
        (4, 0o40),
        (5, 0o20),
        (7, 0o4),
        (8, 0o2),
    ] {
        if c[i] != '-' {
            m |= bit;
        }
    }
    for (i, x, special) in [(3, 0o100, 0o4000), (6, 0o10, 0o2000), (9, 0o1, 0o1000)] {
        match c[i] {
            'x' => m |= x,
            's' | 't' => m |= x | special,
            'S' | 'T' => m |= special,
            _ => {}
        }
    }
    format!("{m:04o}")
}

/// Every entry of a squashfs node tree against `unsquashfs -lln`: names, kinds, modes, owners, file sizes,
/// symlink targets, device numbers.
fn squashfs_matches_lln(n: &BTreeMap<String, Value>, img: &Path) -> usize {
    let oracle = unsquashfs_lln(img);
    let ours: Vec<&String> = n.keys().filter(|p| p.starts_with("squashfs/")).collect();
    assert_eq!(ours.len(), oracle.len(), "entry count");
    for (rel, (t, mode, uid, gid, extra)) in &oracle {
        let node = &n[&format!("squashfs/{rel}")];
        let a = &node["attrs"];
        let typ = match t {
            '-' => "file",
            'd' => "dir",
            'l' => "symlink",
            'c' => "char-device",
            'b' => "block-device",
            'p' => "fifo",
            _ => "socket",
        };
        assert_eq!(a["type"], typ, "{rel}");
        assert_eq!(a["mode"].as_str().unwrap(), mode, "{rel}");
        assert_eq!(a["uid"].to_string(), *uid, "{rel}");
        assert_eq!(a["gid"].to_string(), *gid, "{rel}");
        let extra = extra.clone().unwrap();
        match t {
            '-' => assert_eq!(a["size"].to_string(), extra, "{rel}"),
            'l' => assert_eq!(a["symlink-target"].as_str().unwrap(), extra, "{rel}"),
            'c' | 'b' => {
                let (ma, mi) = extra.split_once(' ').unwrap();
                let d = format!(
                    "{}-device {ma}:{mi}",
                    if *t == 'c' { "char" } else { "block" }
                );
                assert_eq!(
                    node["digest"].as_str().unwrap(),
                    sha256(d.as_bytes()),
                    "{rel}"
                );
            }
            _ => {}
        }
    }
    oracle.len()
}

/// Bit field `pos`/`n` of a big-endian squashfs structure at `off` (from the high end), and its setter.
fn be_bits(b: &[u8], off: usize, pos: usize, n: usize) -> u64 {
    let (off, pos) = (off + pos / 8, pos % 8);
    let mut w = [0u8; 16];
    let end = (off + 16).min(b.len());
    w[..end - off].copy_from_slice(&b[off..end]);
    let v = u128::from_be_bytes(w);
    ((v >> (128 - pos - n)) & ((1u128 << n) - 1)) as u64
}

fn set_be_bits(b: &mut [u8], off: usize, pos: usize, n: usize, val: u64) {
    let (off, pos) = (off + pos / 8, pos % 8);
    let mut w = [0u8; 16];
    let end = (off + 16).min(b.len());
    w[..end - off].copy_from_slice(&b[off..end]);
    let mut v = u128::from_be_bytes(w);
    let mask = ((1u128 << n) - 1) << (128 - pos - n);
    v = (v & !mask) | ((u128::from(val) << (128 - pos - n)) & mask);
    b[off..end].copy_from_slice(&v.to_be_bytes()[..end - off]);
}

/// binwalk's squashfs 2.0 sample (big-endian, stored metadata, LZMA data): the file offset of an inode
/// or directory position (table, block, offset) in its stored metadata blocks.
fn v2_meta(b: &[u8], table: usize, block: u64, offset: u64) -> usize {
    let at = table + block as usize;
    assert!(b[at] & 0x80 != 0, "stored metadata block");
    at + 2 + offset as usize
}

/// The inode offset of entry `name` in the directory whose inode is at `dir_inode` (sample layout).
fn v2_lookup(b: &[u8], dir_inode: usize, name: &str) -> usize {
    let it = be_bits(b, 20, 0, 32) as usize;
    let dt = be_bits(b, 24, 0, 32) as usize;
    let size = be_bits(b, dir_inode, 32, 19);
    let mut p = v2_meta(
        b,
        dt,
        be_bits(b, dir_inode, 96, 24),
        be_bits(b, dir_inode, 51, 13),
    );
    let end = p + size as usize;
    while p < end {
        let count = be_bits(b, p, 0, 8) + 1;
        let start = be_bits(b, p, 8, 24);
        p += 4;
        for _ in 0..count {
            let off = be_bits(b, p, 0, 13);
            let len = be_bits(b, p, 16, 8) as usize + 1;
            if &b[p + 3..p + 3 + len] == name.as_bytes() {
                return v2_meta(b, it, start, off);
            }
            p += 3 + len;
        }
    }
    panic!("{name} not found");
}

#[test]
fn squashfs_v2_lzma_sample_matches_unsquashfs() {
    let img = sample("squashfs_v2.bin");
    let doc = inspect_json(&img);
    assert_eq!(doc["format"], "squashfs3");
    let n = nodes(&doc);
    let fs = &n["squashfs"];
    assert_eq!(fs["attrs"]["version"], "2.0");
    assert_eq!(fs["attrs"]["endian"], "big");
    assert_eq!(fs["attrs"]["compression"], "lzma");
    assert!(
        doc["findings"].as_array().unwrap().is_empty(),
        "{}",
        doc["findings"]
    );
    // Debian's unsquashfs reads 2.x metadata (this sample's inodes and directories are stored) but not
    // LZMA data: names, kinds, modes, owners, sizes, targets and devices come from its listing.
    if have_tool("unsquashfs", "squashfs-tools") {
        let count = squashfs_matches_lln(&n, &img);
        assert_eq!(count, 430);
    }
    // The contents: no LZMA squashfs reader is packaged, so every file decoded to exactly its inode's
    // size (checked above and by the parser) and the MIPS executables and modules parse as ELF.
    let elf = n
        .values()
        .filter(|v| v["attrs"]["machine"] == "MIPS")
        .count();
    assert_eq!(elf, 85);
    assert_eq!(
        n["squashfs/bin/busybox"]["attrs"]["elf-type"], "exec",
        "{}",
        n["squashfs/bin/busybox"]
    );
}

#[test]
fn squashfs_v2_changed_byte_is_named_by_scan() {
    let dir = scratch("squashfs-v2");
    let img = sample("squashfs_v2.bin");
    let m = baseline(&dir, &img);
    let (code, f) = scan(&m, &img);
    assert_eq!(code, 0, "{f:?}");
    // One byte of busybox's first LZMA block.
    let mut b = std::fs::read(&img).unwrap();
    let it = be_bits(&b, 20, 0, 32) as usize;
    let root = be_bits(&b, 43, 0, 64);
    let root_at = v2_meta(&b, it, root >> 16, root & 0xFFFF);
    let bin = v2_lookup(&b, root_at, "bin");
    let busybox = v2_lookup(&b, bin, "busybox");
    let start = be_bits(&b, busybox, 64, 32) as usize;
    b[start + 200] ^= 0x01;
    let p = dir.join("changed.sqsh");
    std::fs::write(&p, &b).unwrap();
    let (code, f) = scan(&m, &p);
    assert_eq!(code, 1);
    assert!(has(&f, "file-modified", "squashfs/bin/busybox"), "{f:?}");
    assert!(
        f.iter()
            .all(|(_, p, _)| p == "squashfs/bin/busybox" || p == "squashfs/bin" || p == "squashfs"),
        "{f:?}"
    );
}

/// An image's nodes and findings.
type Inspected = (BTreeMap<String, Value>, Vec<(String, String, String)>);

#[test]
fn squashfs_v2_hostile_variants_stay_bounded() {
    let dir = scratch("squashfs-v2-hostile");
    let good = std::fs::read(sample("squashfs_v2.bin")).unwrap();
    let it = be_bits(&good, 20, 0, 32) as usize;
    let root = be_bits(&good, 43, 0, 64);
    let root_at = v2_meta(&good, it, root >> 16, root & 0xFFFF);
    let bin = v2_lookup(&good, root_at, "bin");
    let busybox = v2_lookup(&good, bin, "busybox");
    let inspect = |name: &str, b: &[u8]| -> Inspected {
        let p = dir.join(name);
        std::fs::write(&p, b).unwrap();
        let doc = inspect_json(&p);
        (nodes(&doc), code_path_messages(&doc))
    };
    // A huge inode count: nothing is sized from it.
    let mut b = good.clone();
    set_be_bits(&mut b, 4, 0, 32, 0xFFFF_FFFF);
    let (n, _) = inspect("inodes.sqsh", &b);
    assert!(n.contains_key("squashfs/bin/busybox"));
    // /bin's directory inode points at the root's listing: a loop, walked once.
    let mut b = good.clone();
    for (pos, bits) in [(32, 19), (51, 13), (96, 24)] {
        let v = be_bits(&good, root_at, pos, bits);
        set_be_bits(&mut b, bin, pos, bits, v);
    }
    let (n, f) = inspect("loop.sqsh", &b);
    assert!(
        f.iter()
            .any(|(c, _, m)| c == "unparsed" && m.contains("loop")),
        "{f:?}"
    );
    assert!(n.contains_key("squashfs/etc") && n.contains_key("squashfs/bin"));
    assert!(!n.keys().any(|k| k.starts_with("squashfs/bin/")), "{n:?}");
    // busybox's first block claims 16 MiB: the file is not read, named with a note.
    let mut b = good.clone();
    set_be_bits(&mut b, busybox + 24, 0, 32, 0x00FF_FFFF);
    let (_, f) = inspect("block.sqsh", &b);
    assert!(
        has(&f, "decompress-failed", "squashfs/bin/busybox"),
        "{f:?}"
    );
    // busybox claims a 4 GiB file: its block list runs past the inode table.
    let mut b = good.clone();
    set_be_bits(&mut b, busybox, 160, 32, 0xFFFF_FFF0);
    let (n, f) = inspect("size.sqsh", &b);
    assert!(!f.is_empty());
    assert!(n.contains_key("squashfs/bin/brctl"));
}

/// Bit fields packed one after another: from the low end of little-endian bytes, from the high end of
/// big-endian ones (squashfs_compat.h's structures).
struct Bits {
    out: Vec<u8>,
    pos: usize,
    big: bool,
}

impl Bits {
    fn new(big: bool) -> Bits {
        Bits {
            out: Vec::new(),
            pos: 0,
            big,
        }
    }
    fn put(&mut self, n: usize, v: u64) -> &mut Bits {
        for i in 0..n {
            let p = self.pos + i;
            if p / 8 >= self.out.len() {
                self.out.push(0);
            }
            let (bit, shift) = if self.big {
                ((v >> (n - 1 - i)) & 1, 7 - p % 8)
            } else {
                ((v >> i) & 1, p % 8)
            };
            self.out[p / 8] |= (bit as u8) << shift;
        }
        self.pos += n;
        self
    }
}

/// Metadata blocks of `stream` (8 KiB each; zlib, or stored with header bit 15) and each block's start.
fn squashfs3_meta(stream: &[u8], compress: bool, big: bool) -> (Vec<u8>, Vec<u64>) {
    let mut out = Vec::new();
    let mut starts = Vec::new();
    for chunk in stream.chunks(8192) {
        starts.push(out.len() as u64);
        let (h, body) = if compress {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            z.write_all(chunk).unwrap();
            let z = z.finish().unwrap();
            (z.len() as u16, z)
        } else {
            (0x8000 | chunk.len() as u16, chunk.to_vec())
        };
        out.extend_from_slice(&if big {
            h.to_be_bytes()
        } else {
            h.to_le_bytes()
        });
        out.extend_from_slice(&body);
    }
    (out, starts)
}

/// A squashfs 3.1 image of `root`, written in the layout of squashfs_compat.h (no squashfs 3 maker is
/// packaged any more), either byte order: zlib data blocks of 4 KiB (stored when they do not shrink), uid
/// table [0, 1000] and gid table [50] (`bin/app` is owned by 1000:50). `alt` false: no fragments, the inode
/// table stored and the directory table zlib; `alt` true: file tails in zlib fragment blocks, the inode
/// table zlib and the directory table stored.
fn squashfs3_image(root: &Path, big: bool, alt: bool) -> Vec<u8> {
    use std::os::unix::fs::MetadataExt;
    const BS: usize = 4096;
    #[derive(Default)]
    struct Node {
        name: String,
        path: PathBuf,
        kind: u64, // 1 dir, 2 file, 3 symlink
        children: Vec<usize>,
        parent: usize,
        number: u64,
        inode_pos: usize,
        data: Vec<u64>, // block sizes
        start: u64,
        size: u64,
        frag: (u64, u64), // fragment index (or 0xFFFFFFFF), offset
        target: Vec<u8>,
        mode: u64,
    }
    // The tree, parents first; entries sorted by name (unsquashfs checks the order).
    let mut nodes = vec![Node {
        path: root.to_path_buf(),
        kind: 1,
        mode: 0o755,
        ..Default::default()
    }];
    let mut i = 0;
    while i < nodes.len() {
        if nodes[i].kind == 1 {
            let mut names: Vec<_> = std::fs::read_dir(&nodes[i].path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            for p in names {
                let md = std::fs::symlink_metadata(&p).unwrap();
                let kind = if md.file_type().is_symlink() {
                    3
                } else if md.is_dir() {
                    1
                } else {
                    2
                };
                let idx = nodes.len();
                nodes[i].children.push(idx);
                nodes.push(Node {
                    name: p.file_name().unwrap().to_str().unwrap().to_string(),
                    path: p.clone(),
                    kind,
                    parent: i,
                    mode: u64::from(md.mode() & 0o7777),
                    ..Default::default()
                });
            }
        }
        i += 1;
    }
    // Inode numbers: 1.., the root last (as mksquashfs numbers it).
    let count = nodes.len() as u64;
    for (k, n) in nodes.iter_mut().enumerate() {
        n.number = if k == 0 { count } else { k as u64 };
    }
    let zlib = |chunk: &[u8]| {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(chunk).unwrap();
        z.finish().unwrap()
    };
    // Superblock placeholder, then data blocks and fragment blocks.
    let mut img = vec![0u8; 119];
    let mut frags: Vec<(u64, u64)> = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let flush = |img: &mut Vec<u8>, pending: &mut Vec<u8>, frags: &mut Vec<(u64, u64)>| {
        if !pending.is_empty() {
            let z = zlib(pending);
            frags.push((img.len() as u64, z.len() as u64));
            img.extend_from_slice(&z);
            pending.clear();
        }
    };
    for n in nodes.iter_mut() {
        n.frag = (0xFFFF_FFFF, 0);
        match n.kind {
            2 => {
                let bytes = std::fs::read(&n.path).unwrap();
                n.size = bytes.len() as u64;
                n.start = img.len() as u64;
                let full = if alt {
                    bytes.len() / BS * BS
                } else {
                    bytes.len()
                };
                for chunk in bytes[..full].chunks(BS) {
                    let z = zlib(chunk);
                    if z.len() < chunk.len() {
                        n.data.push(z.len() as u64);
                        img.extend_from_slice(&z);
                    } else {
                        n.data.push(chunk.len() as u64 | 1 << 24);
                        img.extend_from_slice(chunk);
                    }
                }
                let tail = &bytes[full..];
                if !tail.is_empty() {
                    if pending.len() + tail.len() > BS {
                        flush(&mut img, &mut pending, &mut frags);
                    }
                    n.frag = (frags.len() as u64, pending.len() as u64);
                    pending.extend_from_slice(tail);
                }
            }
            3 => {
                n.target = std::fs::read_link(&n.path)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .as_bytes()
                    .to_vec()
            }
            _ => {}
        }
    }
    flush(&mut img, &mut pending, &mut frags);
    // Inode positions in the inode stream: children before parents, root last.
    let order: Vec<usize> = (1..nodes.len()).chain([0]).collect();
    let mut pos = 0;
    for &k in &order {
        nodes[k].inode_pos = pos;
        pos += match nodes[k].kind {
            1 => 28,
            2 => 32 + 4 * nodes[k].data.len(),
            _ => 18 + nodes[k].target.len(),
        };
    }
    // The directory stream: a header per run of entries whose inodes share a metadata block.
    let dirs = |starts: &dyn Fn(usize) -> u64| {
        let mut out = Vec::new();
        let mut at = vec![(0usize, 0usize); nodes.len()];
        for (k, n) in nodes.iter().enumerate() {
            if n.kind != 1 {
                continue;
            }
            let begin = out.len();
            let mut runs: Vec<Vec<usize>> = Vec::new();
            for &c in &n.children {
                match runs.last_mut() {
                    Some(r) if nodes[r[0]].inode_pos / 8192 == nodes[c].inode_pos / 8192 => {
                        r.push(c)
                    }
                    _ => runs.push(vec![c]),
                }
            }
            for run in runs {
                let first = &nodes[run[0]];
                let mut h = Bits::new(big);
                h.put(8, run.len() as u64 - 1)
                    .put(32, starts(first.inode_pos / 8192))
                    .put(32, first.number);
                out.extend_from_slice(&h.out);
                for c in run {
                    let e = &nodes[c];
                    let mut d = Bits::new(big);
                    d.put(13, (e.inode_pos % 8192) as u64)
                        .put(3, e.kind)
                        .put(8, e.name.len() as u64 - 1)
                        .put(16, (e.number - first.number) & 0xFFFF);
                    out.extend_from_slice(&d.out);
                    out.extend_from_slice(e.name.as_bytes());
                }
            }
            at[k] = (begin, out.len() - begin);
        }
        (out, at)
    };
    let stored = |bi: usize| (bi * 8194) as u64;
    let inode_stream = |dir_at: &[(usize, usize)], dir_starts: &[u64]| {
        let mut out = Vec::new();
        for &k in &order {
            let n = &nodes[k];
            assert_eq!(out.len(), n.inode_pos);
            let app = n.path.ends_with("bin/app");
            let mut b = Bits::new(big);
            b.put(4, n.kind)
                .put(12, n.mode)
                .put(8, if app { 1 } else { 0 })
                .put(8, if app { 0 } else { 255 })
                .put(32, 1_200_000_000)
                .put(32, n.number);
            match n.kind {
                1 => {
                    let (p, len) = dir_at[k];
                    let subdirs = n.children.iter().filter(|&&c| nodes[c].kind == 1);
                    b.put(32, 2 + subdirs.count() as u64)
                        .put(19, len as u64 + 3)
                        .put(13, (p % 8192) as u64)
                        .put(32, dir_starts[p / 8192])
                        .put(32, nodes[n.parent].number);
                }
                2 => {
                    b.put(64, n.start)
                        .put(32, n.frag.0)
                        .put(32, n.frag.1)
                        .put(32, n.size);
                    for &s in &n.data {
                        b.put(32, s);
                    }
                }
                _ => {
                    b.put(32, 1).put(16, n.target.len() as u64);
                }
            }
            out.extend_from_slice(&b.out);
            out.extend_from_slice(&n.target);
        }
        out
    };
    let root_at = nodes[0].inode_pos;
    let (inode_table, dir_table, root_ref) = if alt {
        // Directories stored (their positions follow from the stream), inodes compressed.
        let (stream, at) = dirs(&|_| 0);
        let dir_starts: Vec<u64> = (0..stream.len().div_ceil(8192)).map(stored).collect();
        let (it, inode_starts) = squashfs3_meta(&inode_stream(&at, &dir_starts), true, big);
        let (stream, _) = dirs(&|bi| inode_starts[bi]);
        let root_ref = (inode_starts[root_at / 8192], root_at % 8192);
        (it, squashfs3_meta(&stream, false, big).0, root_ref)
    } else {
        let (stream, at) = dirs(&stored);
        let (dt, dir_starts) = squashfs3_meta(&stream, true, big);
        let it = squashfs3_meta(&inode_stream(&at, &dir_starts), false, big).0;
        (it, dt, (stored(root_at / 8192), root_at % 8192))
    };
    let inode_table_start = img.len() as u64;
    img.extend_from_slice(&inode_table);
    let dir_table_start = img.len() as u64;
    img.extend_from_slice(&dir_table);
    let word = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    // Fragment entries (start u64, size u32, pending u32) in metadata blocks, then their index.
    let mut entries = Vec::new();
    for &(start, size) in &frags {
        let mut b = Bits::new(big);
        b.put(64, start).put(32, size).put(32, 0);
        entries.extend_from_slice(&b.out);
    }
    let (ft, ft_starts) = squashfs3_meta(&entries, true, big);
    let ft_start = img.len() as u64;
    img.extend_from_slice(&ft);
    let frag_index = img.len() as u64;
    for s in ft_starts {
        let v = ft_start + s;
        img.extend_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }
    let uid_start = img.len() as u64;
    img.extend_from_slice(&word(0));
    img.extend_from_slice(&word(1000));
    let guid_start = img.len() as u64;
    img.extend_from_slice(&word(50));
    let bytes_used = img.len() as u64;
    let mut sb = Bits::new(big);
    sb.put(32, 0x7371_7368)
        .put(32, count)
        .put(32, bytes_used)
        .put(32, uid_start)
        .put(32, guid_start)
        .put(32, inode_table_start)
        .put(32, dir_table_start)
        .put(16, 3)
        .put(16, 1)
        .put(16, BS as u64)
        .put(16, 12)
        .put(8, if frags.is_empty() { 1 << 4 } else { 0 })
        .put(8, 2)
        .put(8, 1)
        .put(32, 1_200_000_000)
        .put(64, root_ref.0 << 16 | root_ref.1 as u64)
        .put(32, BS as u64)
        .put(32, frags.len() as u64)
        .put(32, frag_index)
        .put(64, bytes_used)
        .put(64, uid_start)
        .put(64, guid_start)
        .put(64, inode_table_start)
        .put(64, dir_table_start)
        .put(64, frag_index)
        .put(64, u64::MAX);
    assert_eq!(sb.out.len(), 119);
    img[..119].copy_from_slice(&sb.out);
    img.resize(img.len().div_ceil(4096) * 4096, 0);
    img
}

#[test]
fn squashfs_v3_both_endians_match_unsquashfs() {
    if !have_tool("unsquashfs", "squashfs-tools") {
        return;
    }
    let dir = scratch("squashfs-v3");
    let root = make_root(&dir, "root:x:0:0::/root:/bin/sh\n");
    for (big, alt) in [(false, false), (true, false), (false, true), (true, true)] {
        let endian = if big { "big" } else { "little" };
        let img = dir.join(format!("{endian}-{alt}.sqsh"));
        std::fs::write(&img, squashfs3_image(&root, big, alt)).unwrap();
        let out = dir.join(format!("x-{endian}-{alt}"));
        sh(
            "unsquashfs",
            &[
                "-no-xattrs",
                "-d",
                out.to_str().unwrap(),
                img.to_str().unwrap(),
            ],
        );
        let doc = inspect_json(&img);
        assert_eq!(doc["format"], "squashfs3", "{endian}");
        assert!(
            doc["findings"].as_array().unwrap().is_empty(),
            "{endian}: {}",
            doc["findings"]
        );
        let n = nodes(&doc);
        assert_eq!(n["squashfs"]["attrs"]["version"], "3.1");
        assert_eq!(n["squashfs"]["attrs"]["endian"], endian);
        assert_eq!(n["squashfs"]["attrs"]["compression"], "gzip");
        assert_eq!(n["squashfs"]["attrs"]["fragments"], if alt { 2 } else { 0 });
        // Names, kinds, sizes and digests: what unsquashfs extracted; modes and owners: its listing.
        assert_eq!(listed(&n, "squashfs/"), walk(&out), "{endian}");
        assert_eq!(squashfs_matches_lln(&n, &img), walk(&root).len());
        assert_eq!(n["squashfs/bin/app"]["attrs"]["uid"], 1000);
        assert_eq!(n["squashfs/bin/app"]["attrs"]["gid"], 50);
    }
    // squashfs 1.x is recognised and said to be unread, never clean by silence.
    let mut v1 = std::fs::read(dir.join("little-false.sqsh")).unwrap();
    v1[28..30].copy_from_slice(&1u16.to_le_bytes());
    let p = dir.join("v1.sqsh");
    std::fs::write(&p, &v1).unwrap();
    let (code, f) = check(&p);
    assert_ne!(code, 0);
    assert!(
        f.iter().any(|(c, p, m)| c == "unparsed"
            && p == "squashfs"
            && m.contains("squashfs 1.1")
            && m.contains("not read")),
        "{f:?}"
    );
}

#[test]
fn squashfs_v3_changed_file_is_named_by_scan() {
    let dir = scratch("squashfs-v3-scan");
    let root = make_root(&dir, "root:x:0:0::/root:/bin/sh\n");
    let img = dir.join("base.sqsh");
    std::fs::write(&img, squashfs3_image(&root, true, true)).unwrap();
    let m = baseline(&dir, &img);
    let (code, f) = scan(&m, &img);
    assert_eq!(code, 0, "{f:?}");
    let root = make_root(&dir, "root::0:0::/root:/bin/sh\n");
    let img2 = dir.join("changed.sqsh");
    std::fs::write(&img2, squashfs3_image(&root, true, true)).unwrap();
    let (code, f) = scan(&m, &img2);
    assert_eq!(code, 1);
    assert!(has(&f, "file-modified", "squashfs/etc/passwd"), "{f:?}");
    assert!(
        !f.iter()
            .any(|(c, p, _)| c == "file-modified" && p.starts_with("squashfs/bin/")),
        "{f:?}"
    );
}
