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
