//! Release packages and stand-alone components (issue 11): the real BMC files in `../shared/fixtures/bmc/`
//! recognised by content, a kernel FIT made with `mkimage -f` from the AST2500 zImage and device tree, and
//! OpenBMC update tarballs built exactly as OpenBMC builds them (`openssl dgst -sign` per file,
//! `image-full.sig`, MANIFEST with KeyType/HashType) from parts made with mkimage, mksquashfs, mkenvimage
//! and mkfs.jffs2, with signatures verified and tampering named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{have_tool, run as fwscan, skip};
use crate::support::bmc as b;

pub(crate) fn have(tool: &str) -> bool {
    have_tool(tool, "see .ci/run")
}

fn fixture(name: &str) -> Option<PathBuf> {
    crate::harness::fixture(&format!("bmc/{name}"))
}

pub(crate) fn inspect(img: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["inspect", img.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let (code, out, err) = fwscan(&args);
    assert_eq!(code, 0, "inspect failed: {err}");
    serde_json::from_str(&out).unwrap()
}

pub(crate) fn nodes(doc: &Value) -> BTreeMap<String, Value> {
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

pub(crate) fn findings(doc: &Value) -> Vec<(String, String, String)> {
    crate::harness::code_path_messages(doc)
}

pub(crate) fn attr<'a>(n: &'a BTreeMap<String, Value>, path: &str, key: &str) -> &'a str {
    n.get(path)
        .unwrap_or_else(|| panic!("no node {path}: {:?}", n.keys().collect::<Vec<_>>()))["attrs"]
        [key]
        .as_str()
        .unwrap_or("")
}

/// A field of the first piece of evidence of `scheme` on the node at `path` (`""` without one).
pub(crate) fn ev<'a>(
    n: &'a BTreeMap<String, Value>,
    path: &str,
    scheme: &str,
    key: &str,
) -> &'a str {
    n.get(path)
        .unwrap_or_else(|| panic!("no node {path}: {:?}", n.keys().collect::<Vec<_>>()))["evidence"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["scheme"] == scheme))
        .and_then(|e| e[key].as_str())
        .unwrap_or("")
}

pub(crate) fn run(dir: &Path, prog: &str, args: &[&str]) {
    let out = Command::new(prog)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check(img: &Path, extra: &[&str]) -> i32 {
    let mut args = vec!["check", img.to_str().unwrap()];
    args.extend_from_slice(extra);
    fwscan(&args).0
}

#[test]
fn real_bmc_files_are_recognised_by_content() {
    let cases = [
        ("ast2500-evb-u-boot.bin", "u-boot"),
        ("npcm750-u-boot.bin", "u-boot"),
        ("ast2500-evb-zImage", "zimage"),
        ("ast2500-evb.dtb", "fdt"),
        ("npcm750-linux-uimage", "uimage"),
        ("npcm750-u-boot-env.bin", "uboot-env"),
        ("ast2500-evb-rootfs.cpio.xz", "xz"),
    ];
    for (f, fmt) in cases {
        let Some(p) = fixture(f) else { return };
        let doc = inspect(&p, &[]);
        assert_eq!(doc["root"]["attrs"]["format"], fmt, "{f}");
        assert!(findings(&doc).is_empty(), "{f}: {:?}", findings(&doc));
        assert_eq!(check(&p, &[]), 0, "{f}");
    }
    // U-Boot: its version string.
    let doc = inspect(&fixture("npcm750-u-boot.bin").unwrap(), &[]);
    let text = doc.to_string();
    assert!(text.contains("\"version\":\"U-Boot 2019"), "{text:.300}");
    // The device tree: its OpenBMC 32 MiB layout listed as information, not applied.
    let doc = inspect(&fixture("ast2500-evb.dtb").unwrap(), &[]);
    let n = nodes(&doc);
    let parts = n["fdt"]["attrs"]["fixed-partitions"].as_array().unwrap();
    let parts: Vec<&str> = parts.iter().map(|v| v.as_str().unwrap()).collect();
    assert!(
        parts
            .iter()
            .any(|p| p.ends_with("rofs 0x4c0000..=0x1bfffff")),
        "{parts:?}"
    );
    assert_eq!(n.len(), 2, "{:?}", n.keys());
}

#[test]
fn initramfs_cpio_files_match_busybox_cpio() {
    let Some(p) = fixture("ast2500-evb-rootfs.cpio.xz") else {
        return;
    };
    if !have("busybox") || !have("xz") {
        return;
    }
    let dir = b::scratch("pkg-cpio");
    let out = Command::new("xz").args(["-dc"]).arg(&p).output().unwrap();
    std::fs::write(dir.join("rootfs.cpio"), &out.stdout).unwrap();
    let listing = Command::new("sh")
        .args(["-c", "busybox cpio -t < rootfs.cpio"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let names: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .collect();
    assert!(names.len() > 100, "{}", names.len());
    let doc = inspect(&p, &[]);
    let n = nodes(&doc);
    assert_eq!(n["decompressed"]["attrs"]["format"], "cpio");
    for name in &names {
        assert!(n.contains_key(&format!("decompressed/{name}")), "{name}");
    }
    let files = n
        .values()
        .filter(|v| v["path"].as_str().unwrap().starts_with("decompressed/"))
        .filter(|v| v["kind"] != "header")
        .count();
    assert_eq!(
        files,
        names.len() + 1,
        "records besides `.` and the trailer"
    );
    // File digests as sha256sum gives them after busybox extracts the files.
    run(
        &dir,
        "sh",
        &[
            "-c",
            "busybox cpio -i -d etc/passwd etc/hostname etc/os-release < rootfs.cpio",
        ],
    );
    for f in ["etc/passwd", "etc/hostname"] {
        let o = Command::new("sha256sum").arg(dir.join(f)).output().unwrap();
        let want = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        assert_eq!(
            attr(&n, &format!("decompressed/{f}"), "sha256"),
            want,
            "{f}"
        );
    }
    // A symbolic link carries its target, as `readlink` reads it from the extracted tree.
    let target = std::fs::read_link(dir.join("etc/os-release")).unwrap();
    assert_eq!(
        attr(&n, "decompressed/etc/os-release", "target"),
        target.to_str().unwrap()
    );
}

#[test]
fn lone_uimage_and_environment_crcs_are_checked() {
    let Some(p) = fixture("npcm750-linux-uimage") else {
        return;
    };
    let dir = b::scratch("pkg-crc");
    let clean = std::fs::read(&p).unwrap();
    for (what, off, code, path) in [
        (
            "data",
            0x1000usize,
            "uimage-data-crc",
            "uimage/image[Linux-4.17.4.01.03]",
        ),
        ("header", 0x10, "uimage-header-crc", "uimage/header"),
    ] {
        let mut bad = clean.clone();
        bad[off] ^= 0x01;
        let f = dir.join(format!("uimage-{what}"));
        std::fs::write(&f, &bad).unwrap();
        let got = findings(&inspect(&f, &[]));
        assert!(
            got.iter().any(|(c, p, _)| c == code && p == path),
            "{what}: {got:?}"
        );
        assert_eq!(check(&f, &[]), 1, "{what}");
    }
    // An environment whose CRC fails is one static opaque node with `env-crc`, never variables.
    let Some(p) = fixture("npcm750-u-boot-env.bin") else {
        return;
    };
    let mut env = std::fs::read(&p).unwrap();
    env[0x20] ^= 0x01;
    let f = dir.join("env-bad");
    std::fs::write(&f, &env).unwrap();
    let tree = fwscan::formats::parse_image(
        std::sync::Arc::new(fwscan::input::Data::Owned(env.clone())),
        &fwscan::formats::ParseOptions {
            format: Some("uboot-env".into()),
            ..Default::default()
        },
    );
    let e = tree.find("env").expect("env node");
    assert_eq!(e.policy, fwscan::region::Policy::Static);
    assert!(e.children.is_empty());
    assert!(e.notes.iter().any(|n| n.code.as_str() == "env-crc"));
    // Without a hint it is not guessed to be an environment at all.
    let doc = inspect(&f, &[]);
    assert_ne!(doc["root"]["attrs"]["format"], "uboot-env");
}

#[test]
fn kernel_fit_with_a_flash_layout_inside_is_a_fit() {
    let (Some(z), Some(dtb)) = (fixture("ast2500-evb-zImage"), fixture("ast2500-evb.dtb")) else {
        return;
    };
    if !have("mkimage") {
        return;
    }
    let dir = b::scratch("pkg-fit");
    std::fs::copy(z, dir.join("zImage")).unwrap();
    std::fs::copy(dtb, dir.join("board.dtb")).unwrap();
    std::fs::write(dir.join("k.its"), KERNEL_ITS).unwrap();
    run(&dir, "mkimage", &["-f", "k.its", "image-kernel"]);
    let img = dir.join("image-kernel");
    let doc = inspect(&img, &[]);
    assert_eq!(doc["root"]["attrs"]["format"], "fit");
    let n = nodes(&doc);
    assert!(n.contains_key("fit/image[kernel-1]"), "{:?}", n.keys());
    assert!(
        !n.keys().any(|k| k.contains("u-boot-env")),
        "{:?}",
        n.keys()
    );
    assert!(findings(&doc).is_empty(), "{:?}", findings(&doc));
    assert_eq!(check(&img, &[]), 0);
    let m = dir.join("k.json");
    let (code, _, err) = fwscan(&["baseline", img.to_str().unwrap(), "-o", m.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let scan = |p: &Path| {
        fwscan(&[
            "scan",
            p.to_str().unwrap(),
            "--manifest",
            m.to_str().unwrap(),
            "--insecure-unsigned",
            "--format",
            "json",
        ])
    };
    assert_eq!(scan(&img).0, 0);
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[0x61000] ^= 0x40;
    let bad = dir.join("image-kernel-bad");
    std::fs::write(&bad, &bytes).unwrap();
    let (code, out, _) = scan(&bad);
    assert_eq!(code, 1, "{out}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert!(
        findings(&doc)
            .iter()
            .any(|(_, p, _)| p == "fit/image[kernel-1]"),
        "{out}"
    );
}

const KERNEL_ITS: &str = r#"/dts-v1/;
/ {
  description = "kernel";
  #address-cells = <1>;
  images {
    kernel-1 { description = "Linux"; data = /incbin/("zImage"); type = "kernel"; arch = "arm"; os = "linux"; compression = "none"; load = <0x80001000>; entry = <0x80001000>; hash-1 { algo = "sha256"; }; };
    fdt-1 { description = "dtb"; data = /incbin/("board.dtb"); type = "flat_dt"; arch = "arm"; compression = "none"; hash-1 { algo = "sha256"; }; };
  };
  configurations { default = "conf-1"; conf-1 { kernel = "kernel-1"; fdt = "fdt-1"; hash-1 { algo = "sha256"; }; }; };
};
"#;

// --- OpenBMC update tarballs ---------------------------------------------------------------------------

pub(crate) const IMAGES: &[&str] = &["image-kernel", "image-rofs", "image-rwfs", "image-u-boot"];
/// The order phosphor-bmc-code-mgmt concatenates signatures in for `image-full.sig`.
pub(crate) const FULL: &[&str] = &[
    "image-bmc.sig",
    "image-hostfw.sig",
    "image-kernel.sig",
    "image-rofs.sig",
    "image-rwfs.sig",
    "image-u-boot.sig",
    "MANIFEST.sig",
    "publickey.sig",
];

pub(crate) struct Pkg {
    pub(crate) dir: PathBuf,
    pub(crate) hash: &'static str,
}

impl Pkg {
    /// Writes the parts and MANIFEST, makes a key, signs as OpenBMC's image_types_phosphor does.
    pub(crate) fn new(name: &str, hash: &'static str, manifest_hash: &str) -> Option<Pkg> {
        Pkg::for_flash(name, hash, manifest_hash, b::LAYOUT_32)
    }

    /// A package whose kernel's device tree declares `layout` (the flash it is made for).
    pub(crate) fn for_flash(
        name: &str,
        hash: &'static str,
        manifest_hash: &str,
        layout: &[(&str, u64, u64)],
    ) -> Option<Pkg> {
        if !b::available() || !have("openssl") || !have("tar") {
            return None;
        }
        let dir = b::scratch(name);
        let p = b::build(&dir, layout, b::UBOOT_32, true);
        for (n, bytes) in [
            ("image-u-boot", &p.uboot),
            ("image-kernel", &p.kernel),
            ("image-rofs", &p.rofs),
            ("image-rwfs", &p.rwfs),
        ] {
            std::fs::write(dir.join(n), bytes).unwrap();
        }
        std::fs::write(
            dir.join("MANIFEST"),
            format!(
                "purpose=xyz.openbmc_project.Software.Version.VersionPurpose.BMC\nversion=2.16.0-test\nKeyType=OpenBMC\nHashType={manifest_hash}\nMachineName=evb-ast2500\n"
            ),
        )
        .unwrap();
        run(&dir, "openssl", &["genrsa", "-out", "key.pem", "2048"]);
        run(
            &dir,
            "openssl",
            &["rsa", "-in", "key.pem", "-pubout", "-out", "publickey"],
        );
        run(&dir, "openssl", &["genrsa", "-out", "other.pem", "2048"]);
        run(
            &dir,
            "openssl",
            &["rsa", "-in", "other.pem", "-pubout", "-out", "other.pub"],
        );
        let pkg = Pkg { dir, hash };
        pkg.sign_all();
        Some(pkg)
    }

    pub(crate) fn sign(&self, file: &str) {
        run(
            &self.dir,
            "openssl",
            &[
                "dgst",
                &format!("-{}", self.hash),
                "-sign",
                "key.pem",
                "-out",
                &format!("{file}.sig"),
                file,
            ],
        );
    }

    pub(crate) fn sign_all(&self) {
        for f in IMAGES.iter().chain(["MANIFEST", "publickey"].iter()) {
            self.sign(f);
        }
        self.sign_full();
    }

    pub(crate) fn sign_full(&self) {
        let mut cat = Vec::new();
        for s in FULL {
            if let Ok(b) = std::fs::read(self.dir.join(s)) {
                cat.extend(b);
            }
        }
        std::fs::write(self.dir.join("image-full"), cat).unwrap();
        self.sign("image-full");
        std::fs::remove_file(self.dir.join("image-full")).unwrap();
    }

    pub(crate) fn tar(&self, out: &str) -> PathBuf {
        let mut args = vec!["-cf", out, "MANIFEST", "publickey"];
        args.extend_from_slice(IMAGES);
        let sigs: Vec<String> = IMAGES
            .iter()
            .map(|s| format!("{s}.sig"))
            .chain([
                "MANIFEST.sig".into(),
                "publickey.sig".into(),
                "image-full.sig".into(),
            ])
            .collect();
        args.extend(sigs.iter().map(String::as_str));
        run(&self.dir, "tar", &args);
        self.dir.join(out)
    }

    pub(crate) fn edit(&self, file: &str, f: impl FnOnce(&mut Vec<u8>)) {
        let p = self.dir.join(file);
        let mut b = std::fs::read(&p).unwrap();
        f(&mut b);
        std::fs::write(p, b).unwrap();
    }
}

pub(crate) fn member_names(tar: &Path) -> Vec<String> {
    let o = Command::new("tar").arg("-tf").arg(tar).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn openbmc_tarball_is_listed_parsed_and_its_signatures_verify() {
    let Some(pkg) = Pkg::new("pkg-tar", "sha256", "RSA-SHA256") else {
        return;
    };
    let tar = pkg.tar("obmc.static.mtd.tar");
    let doc = inspect(&tar, &[]);
    assert_eq!(doc["root"]["attrs"]["format"], "tar");
    let n = nodes(&doc);
    // Every member, as `tar -t` lists them.
    let members = member_names(&tar);
    assert_eq!(members.len(), 13);
    for m in &members {
        assert!(n.contains_key(m.as_str()), "{m}: {:?}", n.keys());
    }
    // Each image file parsed as its component.
    for (f, fmt) in [
        ("image-kernel", "fit"),
        ("image-rofs", "squashfs"),
        ("image-rwfs", "jffs2"),
        ("image-u-boot", "u-boot"),
    ] {
        assert_eq!(attr(&n, f, "format"), fmt, "{f}");
        assert_eq!(ev(&n, f, "openbmc-rsa", "status"), "valid", "{f}");
        assert_eq!(
            ev(&n, f, "openbmc-rsa", "protection"),
            "vendor-package",
            "{f}"
        );
        assert!(
            n.keys().any(|k| k.starts_with(&format!("{f}/"))),
            "{f} has no tree"
        );
    }
    assert!(n
        .keys()
        .any(|k| k.starts_with("image-rofs/") && k.ends_with("busybox")));
    assert_eq!(attr(&n, "MANIFEST", "manifest.KeyType"), "OpenBMC");
    assert_eq!(attr(&n, "MANIFEST", "manifest.MachineName"), "evb-ast2500");
    assert_eq!(ev(&n, "MANIFEST", "openbmc-rsa", "trust"), "self-signed");
    assert_eq!(ev(&n, "image-full.sig", "openbmc-rsa", "status"), "valid");
    assert!(findings(&doc).is_empty(), "{:?}", findings(&doc));
    assert_eq!(check(&tar, &[]), 0);

    // With the system key in hand: trusted. With another one: vendor-untrusted.
    let key = format!("OpenBMC={}", pkg.dir.join("publickey").display());
    let doc = inspect(&tar, &["--openbmc-key", &key]);
    let n2 = nodes(&doc);
    assert_eq!(ev(&n2, "MANIFEST", "openbmc-rsa", "trust"), "anchored");
    assert_eq!(
        ev(&n2, "image-kernel", "openbmc-rsa", "key"),
        "openbmc:OpenBMC"
    );
    assert_eq!(check(&tar, &["--openbmc-key", &key]), 0);
    let other = format!("OpenBMC={}", pkg.dir.join("other.pub").display());
    let doc = inspect(&tar, &["--openbmc-key", &other]);
    assert!(findings(&doc)
        .iter()
        .any(|(c, p, _)| c == "vendor-untrusted" && p == "MANIFEST"));
    assert_eq!(check(&tar, &["--openbmc-key", &other]), 1);

    // A file changed after signing is named; so is a changed MANIFEST.
    pkg.edit("image-rofs", |b| {
        let l = b.len();
        b[l / 2] ^= 0x01;
    });
    let doc = inspect(&pkg.tar("rofs-changed.tar"), &[]);
    let f = findings(&doc);
    assert!(
        f.iter().any(|(c, p, m)| c == "vendor-signature-invalid"
            && p == "image-rofs"
            && m.contains("image-rofs")),
        "{f:?}"
    );
    assert!(!f
        .iter()
        .any(|(c, p, _)| c == "vendor-signature-invalid" && p == "image-kernel"));
    pkg.edit("image-rofs", |b| {
        let l = b.len();
        b[l / 2] ^= 0x01;
    });
    pkg.edit("MANIFEST", |b| {
        b.extend_from_slice(b"ExtendedVersion=evil\n")
    });
    let doc = inspect(&pkg.tar("manifest-changed.tar"), &[]);
    let f = findings(&doc);
    assert!(
        f.iter()
            .any(|(c, p, _)| c == "vendor-signature-invalid" && p == "MANIFEST"),
        "{f:?}"
    );
    // A resigned MANIFEST with a stale image-full.sig: the full-image signature fails.
    pkg.sign("MANIFEST");
    let doc = inspect(&pkg.tar("full-stale.tar"), &[]);
    let f = findings(&doc);
    assert_eq!(
        f.iter()
            .map(|x| (x.0.as_str(), x.1.as_str()))
            .collect::<Vec<_>>(),
        [("vendor-signature-invalid", "image-full.sig")],
        "{f:?}"
    );
    pkg.sign_full();
    assert!(findings(&inspect(&pkg.tar("resigned.tar"), &[])).is_empty());
    // A missing .sig.
    let mut args = vec![
        "-cf",
        "no-sig.tar",
        "MANIFEST",
        "publickey",
        "MANIFEST.sig",
        "publickey.sig",
    ];
    args.extend_from_slice(IMAGES);
    run(&pkg.dir, "tar", &args);
    let f = findings(&inspect(&pkg.dir.join("no-sig.tar"), &[]));
    assert_eq!(
        f.iter()
            .filter(|x| x.0 == "vendor-signature-invalid")
            .count(),
        5,
        "{f:?}"
    );
    // The fifth: a BMC package without image-full.sig (issue 19.7).
    assert!(
        f.iter().any(|(c, p, m)| c == "vendor-signature-invalid"
            && p == "MANIFEST"
            && m.starts_with("image-full.sig is missing")),
        "{f:?}"
    );
}

#[test]
fn openbmc_tarball_signed_with_sha512() {
    let Some(pkg) = Pkg::new("pkg-tar512", "sha512", "RSA-SHA512") else {
        return;
    };
    let tar = pkg.tar("obmc512.tar");
    let doc = inspect(&tar, &[]);
    assert!(findings(&doc).is_empty(), "{:?}", findings(&doc));
    assert!(ev(&nodes(&doc), "image-kernel", "openbmc-rsa", "signer").contains("RSA-SHA512"));
    // The MANIFEST naming another digest than the one signed with: every signature fails.
    pkg.edit("MANIFEST", |b| {
        let s = String::from_utf8(b.clone())
            .unwrap()
            .replace("RSA-SHA512", "RSA-SHA256");
        *b = s.into_bytes();
    });
    pkg.sign_all();
    let f = findings(&inspect(&pkg.tar("mismatch.tar"), &[]));
    assert!(
        f.iter()
            .filter(|x| x.0 == "vendor-signature-invalid")
            .count()
            >= 4,
        "{f:?}"
    );
}

// --- UEFI capsules ----------------------------------------------------------------------------------------

/// EDK2's BaseTools (PyPI `edk2-basetools`): GenerateCapsule.py and its test certificates.
pub(crate) fn edk2_basetools() -> Option<PathBuf> {
    let o = Command::new("python3")
        .args([
            "-c",
            "import edk2basetools, os; print(os.path.dirname(edk2basetools.__file__))",
        ])
        .output()
        .ok()?;
    if !o.status.success() {
        skip("python3 package edk2-basetools (GenerateCapsule.py) is not installed");
        return None;
    }
    Some(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
}

fn ovmf_code() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/share/OVMF/OVMF_CODE_4M.fd");
    if p.is_file() {
        Some(p)
    } else {
        skip("/usr/share/OVMF/OVMF_CODE_4M.fd missing (Debian: ovmf)");
        None
    }
}

pub(crate) const FW_GUID: &str = "6e0e1d3c-0cb8-4c51-b5fa-6a3ef7d9fdd1";

/// An FMP capsule of `payload` made by EDK2's `GenerateCapsule.py`, signed with its test certificate chain
/// (TestCert → TestSub → TestRoot).
fn generate_capsule(dir: &Path, bt: &Path, payload: &Path, out: &Path, extra: &[&str]) {
    let certs = bt.join("Pkcs7Sign");
    generate_capsule_signed(
        dir,
        payload,
        out,
        [
            &certs.join("TestCert.pem"),
            &certs.join("TestSub.pub.pem"),
            &certs.join("TestRoot.pub.pem"),
        ],
        extra,
    );
}

/// An FMP capsule of `payload` made by `GenerateCapsule.py` (`openssl smime -sign`), signed with
/// `[signer (certificate and key, PEM), other certificates for the message, trusted certificate]`.
pub(crate) fn generate_capsule_signed(
    dir: &Path,
    payload: &Path,
    out: &Path,
    [cert, sub, root]: [&Path; 3],
    extra: &[&str],
) {
    let mut args = vec![
        "-m",
        "edk2basetools.Capsule.GenerateCapsule",
        "--encode",
        "--guid",
        FW_GUID,
        "--fw-version",
        "2",
        "--lsv",
        "1",
        "--signer-private-cert",
        cert.to_str().unwrap(),
        "--other-public-cert",
        sub.to_str().unwrap(),
        "--trusted-public-cert",
        root.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push(payload.to_str().unwrap());
    run(dir, "python3", &args);
}

#[test]
fn fmp_capsule_from_generate_capsule_is_verified_and_its_signer_named() {
    let (Some(bt), Some(code)) = (edk2_basetools(), ovmf_code()) else {
        return;
    };
    if !have("openssl") {
        return;
    }
    let certs = bt.join("Pkcs7Sign");
    let dir = b::scratch("pkg-capsule");
    std::fs::write(dir.join("driver.efi"), b"MZ-not-really-a-driver").unwrap();
    let cap = dir.join("fw.cap");
    generate_capsule(
        &dir,
        &bt,
        &code,
        &cap,
        &[
            "--monotonic-count",
            "7",
            "--capflag",
            "PersistAcrossReset",
            "--embedded-driver",
            "driver.efi",
        ],
    );
    let doc = inspect(&cap, &[]);
    assert_eq!(doc["root"]["attrs"]["format"], "capsule");
    let n = nodes(&doc);
    let p = format!("payload[{}]", FW_GUID.to_ascii_uppercase());
    assert!(n.contains_key("driver[0]"), "{:?}", n.keys());
    let auth = format!("{p}/authentication");
    assert_eq!(n[&auth]["attrs"]["monotonic-count"], 7);
    assert_eq!(ev(&n, &p, "pkcs7", "status"), "valid");
    assert!(ev(&n, &p, "pkcs7", "signer").contains("CN=TestCert"));
    assert!(attr(&n, &auth, "issuer").contains("CN=TestSub"));
    assert_eq!(ev(&n, &p, "pkcs7", "trust"), "self-signed");
    assert_eq!(
        n[&format!("{p}/fmp-payload-header")]["attrs"]["fw-version"],
        2
    );
    // The firmware inside is OVMF, parsed as UEFI, byte for byte the file we packed.
    let img = &n[&format!("{p}/image")];
    assert_eq!(img["attrs"]["format"], "uefi");
    let o = Command::new("sha256sum").arg(&code).output().unwrap();
    let want = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(img["digest"].as_str().unwrap_or(""), want, "{img}");
    assert!(n.keys().any(|k| k.starts_with(&format!("{p}/image/fv["))));
    assert!(findings(&doc).is_empty(), "{:?}", findings(&doc));
    assert_eq!(check(&cap, &[]), 0);

    // Trusted through TestSub to the EDK2 TestRoot; untrusted with an unrelated certificate.
    let root = certs.join("TestRoot.pub.pem");
    // EDK2's test chain expired in 2018 and its signer's EKU is clientAuth, emailProtection: trusted
    // under EDK2's own rules (no time check, any EKU), which a vendor certificate may ask for.
    let edk2 = [
        "--capsule-cert",
        root.to_str().unwrap(),
        "--capsule-cert-eku",
        "any",
        "--capsule-cert-validity",
        "ignore",
    ];
    let doc = inspect(&cap, &edk2);
    assert!(ev(&nodes(&doc), &p, "pkcs7", "key").contains("CN=TestRoot"));
    assert_eq!(check(&cap, &edk2), 0);
    run(
        &dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "o.key",
            "-out",
            "o.pem",
            "-subj",
            "/CN=other",
            "-days",
            "1",
        ],
    );
    let doc = inspect(
        &cap,
        &["--capsule-cert", dir.join("o.pem").to_str().unwrap()],
    );
    assert!(findings(&doc)
        .iter()
        .any(|(c, q, _)| c == "vendor-untrusted" && *q == p));
    assert_eq!(
        check(
            &cap,
            &["--capsule-cert", dir.join("o.pem").to_str().unwrap()]
        ),
        1
    );

    // A payload byte changed after signing: GenerateCapsule --decode refuses it, and so do we.
    let mut bytes = std::fs::read(&cap).unwrap();
    let at = bytes.len() - 0x10000;
    bytes[at] ^= 0x01;
    let bad = dir.join("bad.cap");
    std::fs::write(&bad, &bytes).unwrap();
    let reference = Command::new("python3")
        .args([
            "-m",
            "edk2basetools.Capsule.GenerateCapsule",
            "--decode",
            "--signer-private-cert",
        ])
        .arg(certs.join("TestCert.pem"))
        .arg("--other-public-cert")
        .arg(certs.join("TestSub.pub.pem"))
        .arg("--trusted-public-cert")
        .arg(certs.join("TestRoot.pub.pem"))
        .arg("-o")
        .arg(dir.join("decoded.bin"))
        .arg(&bad)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        !reference.status.success(),
        "GenerateCapsule accepted the changed capsule"
    );
    let doc = inspect(&bad, &[]);
    let f = findings(&doc);
    assert!(
        f.iter().any(|(c, q, m)| c == "vendor-signature-invalid"
            && *q == p
            && m.contains("changed after signing")),
        "{f:?}"
    );
    assert_eq!(check(&bad, &[]), 1);
}

/// An `EFI_CAPSULE_HEADER` of `header_size` bytes (`guid`, then RomImageOffset for AMI) around `payload`.
fn plain_capsule(
    guid: [u8; 16],
    header_size: u32,
    rom_offset: Option<u16>,
    payload: &[u8],
) -> Vec<u8> {
    let mut c = vec![0u8; header_size as usize];
    c[..16].copy_from_slice(&guid);
    c[16..20].copy_from_slice(&header_size.to_le_bytes());
    c[20..24].copy_from_slice(&0x0005_0000u32.to_le_bytes());
    let total = header_size as usize + payload.len();
    c[24..28].copy_from_slice(&(total as u32).to_le_bytes());
    if let Some(r) = rom_offset {
        c[28..30].copy_from_slice(&r.to_le_bytes());
    }
    c.extend_from_slice(payload);
    c
}

#[test]
fn plain_and_ami_aptio_capsules_carry_uefi_payloads() {
    let Some(code) = ovmf_code() else { return };
    let fd = std::fs::read(&code).unwrap();
    let dir = b::scratch("pkg-capsule-plain");
    // EFI_CAPSULE_GUID 3B6686BD-0D76-4030-B70E-B5519E2FC5A0 with a 0x50-byte header; AMI Aptio
    // (unsigned GUID 14EEBB90-890A-43DB-AED1-5D3C4588A418) with its 0x800-byte header.
    let efi = [
        0xBD, 0x86, 0x66, 0x3B, 0x76, 0x0D, 0x30, 0x40, 0xB7, 0x0E, 0xB5, 0x51, 0x9E, 0x2F, 0xC5,
        0xA0,
    ];
    let ami = [
        0x90, 0xBB, 0xEE, 0x14, 0x0A, 0x89, 0xDB, 0x43, 0xAE, 0xD1, 0x5D, 0x3C, 0x45, 0x88, 0xA4,
        0x18,
    ];
    for (name, cap, kind, hdr) in [
        (
            "plain.cap",
            plain_capsule(efi, 0x50, None, &fd),
            "uefi",
            0x50u64,
        ),
        (
            "ami.cap",
            plain_capsule(
                ami,
                0x20,
                Some(0x800),
                &[vec![0u8; 0x800 - 0x20], fd.clone()].concat(),
            ),
            "ami-aptio",
            0x800,
        ),
        (
            "ami-800.cap",
            plain_capsule(ami, 0x800, Some(0x800), &fd),
            "ami-aptio",
            0x800,
        ),
    ] {
        let f = dir.join(name);
        std::fs::write(&f, &cap).unwrap();
        let doc = inspect(&f, &[]);
        assert_eq!(doc["root"]["attrs"]["format"], "capsule", "{name}");
        let n = nodes(&doc);
        assert_eq!(attr(&n, "capsule-header", "capsule-type"), kind, "{name}");
        assert_eq!(n["capsule-header"]["size"], hdr, "{name}");
        assert_eq!(attr(&n, "payload", "format"), "uefi", "{name}");
        assert!(n.keys().any(|k| k.starts_with("payload/fv[")), "{name}");
        assert!(findings(&doc).is_empty(), "{name}: {:?}", findings(&doc));
        assert_eq!(check(&f, &[]), 0, "{name}");
    }
}

// --- baselines from release packages, dumps scanned against them (issue 11 points 4 and 5) -------------

/// A trust policy (no minisign keys) with these vendor keys, written where only its owner can write.
pub(crate) fn vendor_policy(dir: &Path, keys: &[Value]) -> PathBuf {
    let p = dir.join("trust.json");
    let doc = serde_json::json!({ "schema_version": 1, "keys": [], "vendor_keys": keys });
    std::fs::write(&p, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

pub(crate) fn scan_json(img: &Path, manifests: &[&Path], extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["scan", img.to_str().unwrap()];
    for m in manifests {
        args.extend(["--manifest", m.to_str().unwrap()]);
    }
    args.extend(["--insecure-unsigned", "--format", "json"]);
    args.extend_from_slice(extra);
    let (code, out, err) = fwscan(&args);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, v)
}

pub(crate) fn uncovered_paths(report: &Value) -> Vec<String> {
    report["uncovered"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| u["path"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn openbmc_tarball_baseline_scans_a_64_mib_flash_laid_out_by_its_device_tree() {
    let Some(pkg) = Pkg::for_flash("pkg-anchor-64", "sha512", "RSA-SHA512", b::LAYOUT_64) else {
        return;
    };
    let tar = pkg.tar("obmc.static.mtd.tar");
    let m = pkg.dir.join("pkg.manifest.json");
    let (code, _, err) = fwscan(&[
        "baseline",
        tar.to_str().unwrap(),
        "-o",
        m.to_str().unwrap(),
        "--component",
        "bmc",
        "--openbmc-key",
        &format!("OpenBMC:RSA-SHA512={}", pkg.dir.join("publickey").display()),
    ]);
    assert_eq!(code, 0, "{err}");
    let part = |n: &str| std::fs::read(pkg.dir.join(format!("image-{n}"))).unwrap();
    let env = b::env(&pkg.dir, b::ENV, "machine-env.bin");
    let (uboot, kernel, rofs, rwfs) = (part("u-boot"), part("kernel"), part("rofs"), part("rwfs"));
    let mut img = b::assemble(
        b::LAYOUT_64,
        &[
            ("u-boot", &uboot),
            ("u-boot-env", &env),
            ("kernel", &kernel),
            ("rofs", &rofs),
            ("rwfs", &rwfs),
        ],
    );
    assert_eq!(img.len(), 64 << 20);
    let dump = pkg.dir.join("flash64.bin");
    std::fs::write(&dump, &img).unwrap();
    let (code, r) = scan_json(&dump, &[&m], &[]);
    assert_eq!(code, 0, "{}", r["findings"]);
    let kernel_at = r["anchors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["part"] == "image-kernel")
        .map(|a| a["offset"].as_u64().unwrap());
    assert_eq!(kernel_at, Some(0x100000), "{}", r["anchors"]);
    assert_eq!(uncovered_paths(&r), ["u-boot-env"]);
    // A byte of the kernel changed in the dump: the FIT image is named.
    img[0x100000 + kernel.len() / 2] ^= 0x01;
    std::fs::write(&dump, &img).unwrap();
    let (code, r) = scan_json(&dump, &[&m], &[]);
    assert_eq!(code, 1);
    let f = crate::harness::code_paths(&r);
    assert!(
        f.iter()
            .any(|(_, p)| p.starts_with("kernel/fit/image[kernel-1]")),
        "{f:?}"
    );
}

#[test]
fn openbmc_tarball_baseline_scans_the_flash_assembled_from_its_parts() {
    let Some(pkg) = Pkg::new("pkg-anchor", "sha256", "RSA-SHA256") else {
        return;
    };
    let tar = pkg.tar("obmc.static.mtd.tar");
    let m = pkg.dir.join("pkg.manifest.json");
    let base = |extra: &[&str]| -> (i32, String) {
        let mut args = vec![
            "baseline",
            tar.to_str().unwrap(),
            "-o",
            m.to_str().unwrap(),
            "--product",
            "evb-ast2500",
            "--component",
            "bmc",
        ];
        args.extend_from_slice(extra);
        let (code, _, err) = fwscan(&args);
        (code, err)
    };
    // Signed only by the package's own key: refused, unless explicitly waived.
    let _ = std::fs::remove_file(&m);
    let (code, err) = base(&["--trust", "/nonexistent/trust.json"]);
    assert_eq!(code, 2, "{err}");
    let (code, err) = base(&[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("vendor-untrusted"), "{err}");
    assert!(!m.exists());
    // The vendor key in the trust policy, scoped to the BMC component: accepted for bmc, not for bios.
    let pem = std::fs::read_to_string(pkg.dir.join("publickey")).unwrap();
    let key = serde_json::json!({"id": "evb-openbmc", "type": "openbmc", "key_type": "OpenBMC",
        "hash_type": "RSA-SHA256", "pem": pem, "components": ["bmc"]});
    let policy_dir = pkg.dir.join("policy");
    std::fs::create_dir_all(&policy_dir).unwrap();
    let policy = vendor_policy(&policy_dir, &[key]);
    let (code, err) = base(&["--trust", policy.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let man: Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    let parts = man["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 4, "{parts:?}");
    for p in parts {
        assert_eq!(p["anchor"]["kind"], "partition");
        assert_eq!(p["signature"]["trusted"], true, "{p}");
        assert_eq!(p["signature"]["covers"], p["path"]);
    }
    assert!(man["vendor_signatures"].as_array().unwrap().len() >= 6);
    // `verify` reports the package's signatures with the same policy.
    let (code, out, _) = fwscan(&[
        "verify",
        tar.to_str().unwrap(),
        "--trust",
        policy.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"], "verified");
    assert_eq!(v["kind"], "openbmc-tarball");
    let (code, out, _) = fwscan(&[
        "verify",
        tar.to_str().unwrap(),
        "--trust",
        policy.to_str().unwrap(),
        "--product",
        "x",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    let bios_only = vendor_policy(
        &policy_dir,
        &[
            serde_json::json!({"id": "evb-openbmc", "type": "openbmc", "key_type": "OpenBMC",
            "pem": pem, "components": ["bios"]}),
        ],
    );
    let (code, err) = base(&["--trust", bios_only.to_str().unwrap()]);
    assert_eq!(
        code, 2,
        "a key scoped to bios vouched for a bmc package: {err}"
    );
    let policy = vendor_policy(
        &policy_dir,
        &[
            serde_json::json!({"id": "evb-openbmc", "type": "openbmc", "key_type": "OpenBMC",
            "pem": pem, "components": ["bmc"]}),
        ],
    );
    assert_eq!(base(&["--trust", policy.to_str().unwrap()]).0, 0);

    // The 32 MiB flash a BMC has, assembled from the same parts plus a per-machine environment.
    let env = b::env(&pkg.dir, b::ENV, "machine-env.bin");
    let part = |n: &str| std::fs::read(pkg.dir.join(format!("image-{n}"))).unwrap();
    let (uboot, kernel, rofs, rwfs) = (part("u-boot"), part("kernel"), part("rofs"), part("rwfs"));
    let flash = |rofs: &[u8]| {
        b::assemble(
            b::LAYOUT_32,
            &[
                ("u-boot", &uboot),
                ("u-boot-env", &env),
                ("kernel", &kernel),
                ("rofs", rofs),
                ("rwfs", &rwfs),
            ],
        )
    };
    let dump = pkg.dir.join("flash.bin");
    std::fs::write(&dump, flash(&rofs)).unwrap();
    let (code, r) = scan_json(&dump, &[&m], &[]);
    assert_eq!(code, 0, "{}", r["findings"]);
    let anchors: Vec<(String, String)> = r["anchors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["part"].as_str().unwrap().into(),
                a["region"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        anchors,
        [
            ("image-u-boot", "u-boot"),
            ("image-kernel", "kernel"),
            ("image-rofs", "rofs"),
            ("image-rwfs", "rwfs")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // The environment is per machine and in no package: listed, not a finding.
    assert_eq!(uncovered_paths(&r), ["u-boot-env"]);

    // A fleet audit with the package's baseline mapped to the dumps: compared part by part there too.
    let fleet = pkg.dir.join("fleet");
    let mans = pkg.dir.join("mans");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::create_dir_all(&mans).unwrap();
    std::fs::copy(&m, mans.join("bmc.json")).unwrap();
    std::fs::write(fleet.join("bmc-0001.bin"), flash(&rofs)).unwrap();
    let mut tampered = flash(&rofs);
    let at = 0x80000 + kernel.len() / 2;
    tampered[at] ^= 0x01;
    std::fs::write(fleet.join("bmc-0002.bin"), tampered).unwrap();
    let map = pkg.dir.join("map.csv");
    std::fs::write(&map, format!("*.bin,{}\n", mans.join("bmc.json").display())).unwrap();
    let rows = pkg.dir.join("rows.jsonl");
    let (code, _, err) = fwscan(&[
        "audit",
        fleet.to_str().unwrap(),
        "--manifests",
        mans.to_str().unwrap(),
        "--map",
        map.to_str().unwrap(),
        "--insecure-unsigned",
        "-q",
        "-o",
        rows.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    let rows: Vec<Value> = std::fs::read_to_string(&rows)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["kind"] == "image")
        .collect();
    let verdict = |name: &str| {
        let r = rows.iter().find(|r| r["path"] == name).unwrap();
        (
            r["verdict"].as_str().unwrap().to_string(),
            r["findings"].clone(),
        )
    };
    assert_eq!(
        verdict("bmc-0001.bin").0,
        "clean",
        "{:?}",
        verdict("bmc-0001.bin")
    );
    let (v, f) = verdict("bmc-0002.bin");
    assert_eq!(v, "findings");
    assert!(
        f.as_array()
            .unwrap()
            .iter()
            .all(|f| f["path"].as_str().unwrap().starts_with("kernel/")),
        "{f}"
    );

    // A rofs whose busybox was replaced: the file is named.
    let evil = pkg.dir.join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    let root = b::make_root(&evil);
    let mut bb = std::fs::read(root.join("bin/busybox")).unwrap();
    let mid = bb.len() / 2;
    bb[mid] ^= 0x40;
    std::fs::write(root.join("bin/busybox"), bb).unwrap();
    let evil_rofs = b::squashfs(&evil, &root, "rofs.sqsh");
    std::fs::write(&dump, flash(&evil_rofs)).unwrap();
    let (code, r) = scan_json(&dump, &[&m], &[]);
    assert_eq!(code, 1);
    let f = crate::harness::code_paths(&r);
    assert!(
        f.iter().any(|(c, p)| c == "file-modified"
            && p.starts_with("rofs/")
            && p.ends_with("bin/busybox")),
        "{f:?}"
    );
    assert!(!f.iter().any(|(c, _)| c == "anchor-not-found"), "{f:?}");

    // Code hidden in the erased space after the kernel image: found, although no package file covers it.
    let mut img = flash(&rofs);
    let at = 0x80000 + kernel.len() + 0x1000;
    img[at..at + 16].copy_from_slice(b"\x90\x90implant-here!!");
    std::fs::write(&dump, &img).unwrap();
    let (code, r) = scan_json(&dump, &[&m], &[]);
    assert_eq!(code, 1);
    let f = crate::harness::code_paths(&r);
    assert!(
        f.iter()
            .any(|(c, p)| c == "not-blank" && p.starts_with("kernel")),
        "{f:?}"
    );

    // A file changed after signing: no baseline from it.
    pkg.edit("image-kernel", |b| {
        let l = b.len();
        b[l - 100] ^= 1;
    });
    let tar2 = pkg.tar("changed.tar");
    let (code, _, err) = fwscan(&[
        "baseline",
        tar2.to_str().unwrap(),
        "-o",
        pkg.dir.join("x.json").to_str().unwrap(),
        "--component",
        "bmc",
        "--trust",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("vendor-signature-invalid at image-kernel"),
        "{err}"
    );
    assert!(!pkg.dir.join("x.json").exists());
}

#[test]
fn capsule_baseline_scans_a_vars_and_code_dump() {
    let (Some(bt), Some(code)) = (edk2_basetools(), ovmf_code()) else {
        return;
    };
    let vars = PathBuf::from("/usr/share/OVMF/OVMF_VARS_4M.fd");
    if !have("openssl") || !vars.is_file() {
        skip("openssl or /usr/share/OVMF/OVMF_VARS_4M.fd missing (Debian: openssl ovmf)");
        return;
    }
    let certs = bt.join("Pkcs7Sign");
    let dir = b::scratch("pkg-capsule-anchor");
    let cap = dir.join("fw.cap");
    generate_capsule(&dir, &bt, &code, &cap, &["--monotonic-count", "3"]);
    let m = dir.join("cap.manifest.json");
    let base = |cap: &Path, extra: &[&str]| -> (i32, String) {
        let mut args = vec![
            "baseline",
            cap.to_str().unwrap(),
            "-o",
            m.to_str().unwrap(),
            "--product",
            "OVMF-X64",
        ];
        args.extend_from_slice(extra);
        let (code, _, err) = fwscan(&args);
        (code, err)
    };
    let (c, err) = base(&cap, &[]);
    assert_eq!(c, 2, "an untrusted signer was accepted: {err}");
    assert!(err.contains("vendor-untrusted"), "{err}");
    let root_pem = std::fs::read_to_string(certs.join("TestRoot.pub.pem")).unwrap();
    let policy_dir = dir.join("policy");
    std::fs::create_dir_all(&policy_dir).unwrap();
    let policy = vendor_policy(
        &policy_dir,
        &[
            serde_json::json!({"id": "edk2-test-root", "type": "x509", "pem": root_pem,
            "products": ["OVMF-*"], "components": ["bios"], "eku": "any", "validity": "ignore"}),
        ],
    );
    let (c, err) = base(&cap, &["--trust", policy.to_str().unwrap()]);
    assert_eq!(c, 0, "{err}");
    let man: Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    let parts = man["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!(parts[0]["anchor"]["kind"], "volumes");
    assert_eq!(parts[0]["signature"]["scheme"], "pkcs7");
    assert!(parts[0]["signature"]["signer"]
        .as_str()
        .unwrap()
        .contains("TestRoot"));

    // The flash a VM has: the variable store in front of the code.
    let code_bytes = std::fs::read(&code).unwrap();
    let mut flash = std::fs::read(&vars).unwrap();
    let vars_len = flash.len();
    flash.extend_from_slice(&code_bytes);
    let dump = dir.join("OVMF_4M.fd");
    std::fs::write(&dump, &flash).unwrap();
    let (c, r) = scan_json(&dump, &[&m], &[]);
    assert_eq!(c, 0, "{}", r["findings"]);
    assert_eq!(r["anchors"][0]["offset"], vars_len as u64);
    let unc = r["uncovered"].as_array().unwrap();
    assert_eq!(unc.len(), 1, "{unc:?}");
    assert_eq!(unc[0]["offset"], 0);
    assert_eq!(unc[0]["size"], vars_len as u64);
    // Not covered is visible in every format.
    for (fmt, needle) in [
        ("text", "not covered by any baseline"),
        ("sarif", "\"uncovered\""),
        ("junit", "fwscan.uncovered"),
    ] {
        let (_, out, _) = fwscan(&[
            "scan",
            dump.to_str().unwrap(),
            "--manifest",
            m.to_str().unwrap(),
            "--insecure-unsigned",
            "--format",
            fmt,
        ]);
        assert!(out.contains(needle), "{fmt}: {out}");
        if fmt == "sarif" {
            let f = dir.join("anchored.sarif");
            std::fs::write(&f, &out).unwrap();
            crate::sarif::check_with_multitool(&f);
        }
    }
    // Both halves with a baseline each: nothing is left uncovered.
    let vm = dir.join("vars.manifest.json");
    let (c, _, err) = fwscan(&[
        "baseline",
        vars.to_str().unwrap(),
        "-o",
        vm.to_str().unwrap(),
        "--mutable",
        "*",
    ]);
    assert_eq!(c, 0, "{err}");
    let (c, r) = scan_json(&dump, &[&m, &vm], &[]);
    assert_eq!(c, 0, "{}", r["findings"]);
    assert_eq!(r["anchors"].as_array().unwrap().len(), 2);
    assert!(uncovered_paths(&r).is_empty(), "{}", r["uncovered"]);
    assert_eq!(r["manifests"].as_array().unwrap().len(), 2);

    // A DXE driver patched in the dump: named.
    let (patched, guid, name) = crate::uefi::patch_dxe_driver(&code_bytes, 10);
    let mut bad = std::fs::read(&vars).unwrap();
    bad.extend_from_slice(&patched);
    std::fs::write(&dump, &bad).unwrap();
    let (c, r) = scan_json(&dump, &[&m], &[]);
    assert_eq!(c, 1);
    let f = r["findings"].as_array().unwrap();
    assert!(
        f.iter().any(|f| f["code"] == "module-modified"
            && f["path"].as_str().unwrap().contains(&guid)
            && f["name"].as_str() == Some(name.as_str())),
        "{f:?}"
    );

    // A payload byte changed after signing: no baseline from it.
    let mut tampered = std::fs::read(&cap).unwrap();
    let l = tampered.len();
    tampered[l - 0x1000] ^= 0x01;
    let bad_cap = dir.join("tampered.cap");
    std::fs::write(&bad_cap, tampered).unwrap();
    let (c, err) = base(&bad_cap, &["--trust", policy.to_str().unwrap()]);
    assert_eq!(c, 2);
    assert!(err.contains("vendor-signature-invalid"), "{err}");
}

#[test]
fn bios_and_me_baselines_scan_a_whole_spi_dump_each_in_its_region() {
    let (Some(code), Some(me_path)) = (
        ovmf_code(),
        crate::harness::fixture("intel/purley-sps-me-region.bin"),
    ) else {
        return;
    };
    let vars = PathBuf::from("/usr/share/OVMF/OVMF_VARS_4M.fd");
    if !vars.is_file() {
        skip("/usr/share/OVMF/OVMF_VARS_4M.fd missing (Debian: ovmf)");
        return;
    }
    let dir = b::scratch("spi-anchor");
    let me = std::fs::read(&me_path).unwrap();
    let code_bytes = std::fs::read(&code).unwrap();
    let mut bios = std::fs::read(&vars).unwrap();
    let vars_len = bios.len();
    bios.extend_from_slice(&code_bytes);
    assert_eq!(bios.len(), 4 << 20);
    // An 8 MiB SPI flash: descriptor, the real SPS ME region at 4 KiB, BIOS (VARS+CODE) in the top half.
    let me_limit = (0x1000 + me.len() as u32 - 1) >> 12;
    let mut img = vec![0xFFu8; 8 << 20];
    img[..0x1000].copy_from_slice(&crate::support::spi::descriptor(&[
        (0, 0, 0),
        (1, 0x400, 0x7FF),
        (2, 1, me_limit),
    ]));
    img[0x1000..0x1000 + me.len()].copy_from_slice(&me);
    img[4 << 20..].copy_from_slice(&bios);
    let spi = dir.join("spi.bin");
    std::fs::write(&spi, &img).unwrap();

    let (bm, mm) = (dir.join("bios.json"), dir.join("me.json"));
    for (src, out, comp) in [(&code, &bm, "bios"), (&me_path, &mm, "me")] {
        let (c, _, err) = fwscan(&[
            "baseline",
            src.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--component",
            comp,
        ]);
        assert_eq!(c, 0, "{err}");
    }
    // Fail closed (issue 19): the descriptor is in neither baseline, so the dump is not CLEAN; it is the
    // only finding, and it names the descriptor.
    let only_descriptor = |r: &Value| {
        let f = crate::harness::code_paths(r);
        assert_eq!(
            f,
            [("not-covered".to_string(), "descriptor".to_string())],
            "{}",
            r["findings"]
        );
    };
    let (c, r) = scan_json(&spi, &[&bm, &mm], &[]);
    assert_eq!(c, 1, "{}", r["findings"]);
    only_descriptor(&r);
    let anchors: Vec<(u64, String, u64)> = r["anchors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["manifest"].as_u64().unwrap(),
                a["region"].as_str().unwrap().to_string(),
                a["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        anchors,
        [
            (0, "bios".to_string(), (4 << 20) + vars_len as u64),
            (1, "me".to_string(), 0x1000)
        ]
    );
    let unc = uncovered_paths(&r);
    assert!(unc.contains(&"descriptor".to_string()), "{unc:?}");
    assert!(
        unc.iter().any(|p| p.starts_with("bios/fv[FFF12B8D")),
        "{unc:?}"
    );
    assert!(!unc.iter().any(|p| p.starts_with("me")), "{unc:?}");

    // A byte of the ME's FTPR code partition changed: found in the ME region, the BIOS still clean.
    let ftpr = r#"me/FTPR"#;
    let at = 0x1000 + 0x32000 + 0x1000;
    img[at] ^= 0x01;
    std::fs::write(&spi, &img).unwrap();
    let (c, r) = scan_json(&spi, &[&bm, &mm], &[]);
    assert_eq!(c, 1);
    let f = crate::harness::code_paths(&r);
    assert!(
        f.iter()
            .all(|(_, p)| p.starts_with(ftpr) || p == "descriptor"),
        "{f:?}"
    );
    assert!(f.iter().any(|(_, p)| p.starts_with(ftpr)), "{f:?}");
    img[at] ^= 0x01;
    // The BIOS baseline alone: the ME region is then not covered either, a finding that names it.
    std::fs::write(&spi, &img).unwrap();
    let (c, r) = scan_json(&spi, &[&bm], &[]);
    assert_eq!(c, 1, "{}", r["findings"]);
    assert!(uncovered_paths(&r).iter().any(|p| p == "me"));
    let f = crate::harness::code_paths(&r);
    assert!(
        f.iter().all(|(c, _)| c == "not-covered")
            && f.iter().any(|(_, p)| p == "me")
            && f.iter().any(|(_, p)| p == "descriptor"),
        "{f:?}"
    );
}

/// Issue 19, attack 2: the dump chooses its own layout. A small FIT in the blank half of `u-boot-env`
/// declares `u-boot` at a genuine copy hidden in the rofs tail and calls offset 0 `spare`; the U-Boot at 0,
/// which the SoC executes, is implanted. The flash is laid out by the vendor-signed package's layout, so
/// the implant is compared and found, and the dump's own layout is a `layout-mismatch`.
#[test]
fn a_layout_declared_inside_the_dump_never_moves_the_anchors() {
    let Some(pkg) = Pkg::new("pkg-layout-attack", "sha256", "RSA-SHA256") else {
        return;
    };
    let tar = pkg.tar("obmc.static.mtd.tar");
    let m = pkg.dir.join("pkg.manifest.json");
    let (code, _, err) = fwscan(&[
        "baseline",
        tar.to_str().unwrap(),
        "-o",
        m.to_str().unwrap(),
        "--component",
        "bmc",
        "--openbmc-key",
        &format!("OpenBMC:RSA-SHA256={}", pkg.dir.join("publickey").display()),
    ]);
    assert_eq!(code, 0, "{err}");
    let man: Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    assert_eq!(
        man["flash_layout"]["source"], "package-device-tree",
        "{}",
        man["flash_layout"]
    );
    let part = |n: &str| std::fs::read(pkg.dir.join(format!("image-{n}"))).unwrap();
    let env = b::env(&pkg.dir, b::ENV, "machine-env.bin");
    let (uboot, kernel, rofs, rwfs) = (part("u-boot"), part("kernel"), part("rofs"), part("rwfs"));
    let mut evil_uboot = uboot.clone();
    let mid = evil_uboot.len() / 2;
    evil_uboot[mid] ^= 0x20;
    let mut img = b::assemble(
        b::LAYOUT_32,
        &[
            ("u-boot", &evil_uboot),
            ("u-boot-env", &env),
            ("kernel", &kernel),
            ("rofs", &rofs),
            ("rwfs", &rwfs),
        ],
    );
    // The genuine U-Boot in the erased tail of rofs, and the attacker's layout pointing at it.
    let copy_at = 0x1B00000usize;
    img[copy_at..copy_at + uboot.len()].copy_from_slice(&uboot);
    let evil_layout: &[(&str, u64, u64)] = &[
        ("spare", 0x0, 0x60000),
        ("u-boot-env", 0x60000, 0x10000),
        ("layout", 0x70000, 0x10000),
        ("kernel", 0x80000, 0x440000),
        ("rofs", 0x4C0000, 0x1640000),
        ("u-boot", 0x1B00000, 0x100000),
        ("rwfs", 0x1C00000, 0x400000),
    ];
    let evil_dir = pkg.dir.join("evil-layout");
    std::fs::create_dir_all(&evil_dir).unwrap();
    let small = b::fit(
        &evil_dir,
        &b::kernel_bytes(9, 1024),
        &b::dts(Some(evil_layout)),
        "layout.fit",
    );
    assert!(small.len() <= 0x10000, "{}", small.len());
    img[0x70000..0x70000 + small.len()].copy_from_slice(&small);
    let dump = pkg.dir.join("evil-layout.bin");
    std::fs::write(&dump, &img).unwrap();
    // The dump really declares that layout: inspect lays it out so.
    let doc = inspect(&dump, &[]);
    let n = nodes(&doc);
    assert!(
        n.contains_key("spare"),
        "{:?}",
        n.keys().collect::<Vec<_>>()
    );

    let (code, r) = scan_json(&dump, &[&m], &[]);
    assert_eq!(code, 1, "{}", r["findings"]);
    let f = crate::harness::code_paths(&r);
    assert!(
        f.iter()
            .any(|(c, p)| c == "region-modified" && p.starts_with("u-boot/")),
        "the U-Boot at offset 0 was not compared: {f:?}"
    );
    assert!(f.iter().any(|(c, _)| c == "layout-mismatch"), "{f:?}");
    let uboot_at = r["anchors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["part"] == "image-u-boot")
        .map(|a| a["offset"].as_u64().unwrap());
    assert_eq!(uboot_at, Some(0), "{}", r["anchors"]);
    // Without the attacker's FIT and with the genuine U-Boot, the same flash is clean.
    img[0x70000..0x70000 + small.len()].fill(0xFF);
    img[copy_at..copy_at + uboot.len()].fill(0xFF);
    img[..uboot.len()].copy_from_slice(&uboot);
    std::fs::write(&dump, &img).unwrap();
    let (code, r) = scan_json(&dump, &[&m], &[]);
    assert_eq!(code, 0, "{}", r["findings"]);
}
