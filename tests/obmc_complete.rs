//! OpenBMC update packages are complete or refused (issue 19, point 7 and the package half of point 8).
//!
//! Attacks built with the real tools on packages signed as OpenBMC signs them (tests/packages.rs's
//! [`Pkg`]): image files and signatures removed with GNU tar, a kernel of another signed release mixed in,
//! a second copy of a signed member appended with `tar -r` or Python's `tarfile` (plain name, `./name`, pax
//! `path`, GNU long name), and packages whose keys are RSA-1024 or have the exponent 3. Every one was
//! accepted before (`verify` exit 0, `baseline` wrote a manifest); each is now refused by `fwscan verify`
//! and `fwscan baseline` alike (exit 2), naming the file and its offset. For every duplicate, GNU tar's own
//! `tar -xf` is run beside fwscan to show that it writes the last copy.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::run as fwscan;
use crate::packages::{have, run, vendor_policy, Pkg, IMAGES};

/// A genuine package (sha256) and a trust policy vouching for its key for the `bmc` component.
fn genuine(name: &str) -> Option<(Pkg, PathBuf, PathBuf)> {
    let pkg = Pkg::new(name, "sha256", "RSA-SHA256")?;
    let tar = pkg.tar("genuine.static.mtd.tar");
    let policy = policy_for(&pkg, "publickey");
    Some((pkg, tar, policy))
}

/// A policy whose one vendor key is `pem_file` (in the package's directory), for the bmc component.
fn policy_for(pkg: &Pkg, pem_file: &str) -> PathBuf {
    let pem = std::fs::read_to_string(pkg.dir.join(pem_file)).unwrap();
    let dir = pkg.dir.join(format!("policy-{pem_file}"));
    std::fs::create_dir_all(&dir).unwrap();
    vendor_policy(
        &dir,
        &[
            serde_json::json!({"id": "evb", "type": "openbmc", "key_type": "OpenBMC",
            "hash_type": "RSA-SHA256", "pem": pem, "components": ["bmc"]}),
        ],
    )
}

/// `fwscan verify PKG --trust POLICY --format json`: (exit code, document).
fn verify(tar: &Path, policy: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![
        "verify",
        tar.to_str().unwrap(),
        "--trust",
        policy.to_str().unwrap(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = fwscan(&args);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, v)
}

/// `fwscan baseline PKG --trust POLICY --component bmc`: (exit code, stderr, whether a manifest was written).
fn baseline(tar: &Path, policy: &Path, extra: &[&str]) -> (i32, String, bool) {
    let out = tar.with_extension("manifest.json");
    let _ = std::fs::remove_file(&out);
    let mut args = vec![
        "baseline",
        tar.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--component",
        "bmc",
        "--trust",
        policy.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, _, err) = fwscan(&args);
    (code, err, out.exists())
}

/// The problems of a `verify --format json` document: (code, path, offset, message).
fn problems(v: &Value) -> Vec<(String, String, Option<u64>, String)> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["code"].as_str().unwrap().to_string(),
                p["path"].as_str().unwrap().to_string(),
                p["offset"].as_u64(),
                p["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The package is refused by `verify` (exit 2, a problem `code` at `path` whose message contains
/// `needle`, with an offset) and by `baseline` (exit 2, the same code, path and offset on stderr, no
/// manifest written). Returns the problem's offset.
#[track_caller]
fn refused(tar: &Path, policy: &Path, code: &str, path: &str, needle: &str) -> u64 {
    let (rc, v) = verify(tar, policy, &[]);
    assert_eq!(rc, 2, "verify accepted {}: {v:#}", tar.display());
    assert_eq!(v["verdict"], "refused");
    let p = problems(&v);
    let hit = p
        .iter()
        .find(|(c, at, _, m)| c == code && at == path && m.contains(needle))
        .unwrap_or_else(|| panic!("no {code} at {path} naming `{needle}`: {p:#?}"));
    let offset = hit.2.expect("the problem has an offset");
    let (rc, err, written) = baseline(tar, policy, &[]);
    assert_eq!(rc, 2, "baseline accepted {}: {err}", tar.display());
    assert!(!written, "a manifest was written for {}", tar.display());
    let line = format!("{code} at {path} (offset {offset:#x}): ");
    assert!(
        err.lines().any(|l| l.contains(&line) && l.contains(needle)),
        "baseline stderr lacks `{line}...{needle}`: {err}"
    );
    offset
}

/// `tar ARGS` in the package's directory.
fn tar(pkg: &Pkg, args: &[&str]) {
    run(&pkg.dir, "tar", args);
}

/// The members `tar -cf NAME` packs for a package made of these files (signature files of the image files
/// present, MANIFEST's and publickey's, and image-full.sig when `full`).
fn pack(pkg: &Pkg, name: &str, images: &[&str], full: bool) -> PathBuf {
    let sigs: Vec<String> = images.iter().map(|i| format!("{i}.sig")).collect();
    let mut args = vec!["-cf", name, "MANIFEST", "publickey"];
    args.extend_from_slice(images);
    args.extend(sigs.iter().map(String::as_str));
    args.extend(["MANIFEST.sig", "publickey.sig"]);
    if full {
        args.push("image-full.sig");
    }
    tar(pkg, &args);
    pkg.dir.join(name)
}

#[test]
fn stripped_package_without_u_boot_is_refused() {
    let Some((pkg, genuine, policy)) = genuine("obmc-stripped") else {
        return;
    };
    // The genuine, complete package verifies and makes a baseline with a u-boot part.
    assert_eq!(verify(&genuine, &policy, &[]).0, 0);
    let (rc, err, _) = baseline(&genuine, &policy, &[]);
    assert_eq!(rc, 0, "{err}");
    let m: Value =
        serde_json::from_slice(&std::fs::read(genuine.with_extension("manifest.json")).unwrap())
            .unwrap();
    assert!(
        m["parts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["path"] == "image-u-boot"),
        "{}",
        m["parts"]
    );
    // The attack: image-u-boot, image-u-boot.sig and image-full.sig deleted. Every signature left
    // verifies, so the baseline had no u-boot part and a dump with an implanted U-Boot scanned clean.
    let stripped = pack(
        &pkg,
        "stripped.tar",
        &["image-kernel", "image-rofs", "image-rwfs"],
        false,
    );
    let names = crate::packages::member_names(&stripped);
    assert!(!names
        .iter()
        .any(|n| n.contains("u-boot") || n == "image-full.sig"));
    let at = refused(
        &stripped,
        &policy,
        "package-ambiguous",
        "MANIFEST",
        "image-u-boot is missing",
    );
    assert_eq!(at, 0x200, "MANIFEST's data, after its header at 0");
    refused(
        &stripped,
        &policy,
        "vendor-signature-invalid",
        "MANIFEST",
        "image-full.sig is missing",
    );
}

#[test]
fn package_without_image_full_sig_is_refused() {
    let Some((pkg, _, policy)) = genuine("obmc-nofull") else {
        return;
    };
    let no_full = pack(&pkg, "no-full.tar", IMAGES, false);
    refused(
        &no_full,
        &policy,
        "vendor-signature-invalid",
        "MANIFEST",
        "image-full.sig is missing",
    );
    // Nothing else is wrong with it.
    let (_, v) = verify(&no_full, &policy, &[]);
    assert_eq!(problems(&v).len(), 1, "{v:#}");
}

#[test]
fn mixed_releases_are_refused() {
    let Some((pkg, genuine, policy)) = genuine("obmc-mixed") else {
        return;
    };
    // Release 2 of the same product, signed with the same vendor key: another kernel.
    let kernel2 = crate::support::bmc::fit(
        &pkg.dir,
        &crate::support::bmc::kernel_bytes(2, 600_000),
        &crate::support::bmc::dts(Some(crate::support::bmc::LAYOUT_32)),
        "kernel-r2.fit",
    );
    let kernel1 = std::fs::read(pkg.dir.join("image-kernel")).unwrap();
    assert_ne!(kernel1, kernel2);
    let (sig1, full1) = (
        std::fs::read(pkg.dir.join("image-kernel.sig")).unwrap(),
        std::fs::read(pkg.dir.join("image-full.sig")).unwrap(),
    );
    std::fs::write(pkg.dir.join("image-kernel"), &kernel2).unwrap();
    pkg.sign("image-kernel");
    // Release 1 with release 2's signed kernel and image-full.sig dropped: every .sig verifies.
    let mixed = pack(&pkg, "mixed.tar", IMAGES, false);
    refused(
        &mixed,
        &policy,
        "vendor-signature-invalid",
        "MANIFEST",
        "image-full.sig is missing",
    );
    // With release 1's image-full.sig kept, that signature no longer verifies (as before).
    let mixed_full = pack(&pkg, "mixed-full.tar", IMAGES, true);
    refused(
        &mixed_full,
        &policy,
        "vendor-signature-invalid",
        "image-full.sig",
        "does not verify",
    );
    std::fs::write(pkg.dir.join("image-kernel"), &kernel1).unwrap();
    std::fs::write(pkg.dir.join("image-kernel.sig"), &sig1).unwrap();
    assert_eq!(
        std::fs::read(pkg.dir.join("image-full.sig")).unwrap(),
        full1
    );
    assert_eq!(verify(&genuine, &policy, &[]).0, 0);
}

/// The archive's end-of-archive block, as GNU tar's `tar -tR` reports it: where `tar -r` appends.
fn end_block(tar: &Path) -> u64 {
    let o = Command::new("tar").arg("-tRf").arg(tar).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| {
            l.strip_suffix(": ** Block of NULs **")
                .and_then(|b| b.strip_prefix("block "))
        })
        .and_then(|b| b.trim().parse::<u64>().ok())
        .expect("tar -tR reports the end block")
}

/// Block of the first member `name` in `tar -tR`'s listing.
fn member_block(tar: &Path, name: &str) -> u64 {
    let o = Command::new("tar").arg("-tRf").arg(tar).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| {
            let (b, n) = l.strip_prefix("block ")?.split_once(": ")?;
            (n == name).then(|| b.trim().parse::<u64>().unwrap())
        })
        .expect("member listed")
}

#[test]
fn a_second_copy_of_a_signed_member_is_refused_as_gnu_tar_would_extract_it() {
    let Some((pkg, genuine, policy)) = genuine("obmc-dup") else {
        return;
    };
    if !have("python3") {
        return;
    }
    // The implant: the signed U-Boot with 64 bytes changed, under the same name in `evil/`.
    let signed = std::fs::read(pkg.dir.join("image-u-boot")).unwrap();
    let mut implant = signed.clone();
    let mid = implant.len() / 2;
    implant[mid..mid + 64].fill(0xCC);
    std::fs::create_dir_all(pkg.dir.join("evil")).unwrap();
    std::fs::write(pkg.dir.join("evil/image-u-boot"), &implant).unwrap();
    let first = member_block(&genuine, "image-u-boot") * 512;
    let second = end_block(&genuine) * 512;
    let long = format!("{}image-u-boot", "./".repeat(50));

    let append_py = |out: &Path, format: &str, name: &str, pax_path: Option<&str>| {
        let script = format!(
            "import io, tarfile\n\
             data = open('evil/image-u-boot', 'rb').read()\n\
             with tarfile.open({out:?}, 'a', format=tarfile.{format}) as t:\n\
             \x20   ti = tarfile.TarInfo({name:?}); ti.size = len(data)\n\
             \x20   {pax}\n\
             \x20   t.addfile(ti, io.BytesIO(data))\n",
            out = out.to_str().unwrap(),
            pax = pax_path
                .map(|p| format!("ti.pax_headers = {{'path': {p:?}}}"))
                .unwrap_or_else(|| "pass".into()),
        );
        run(&pkg.dir, "python3", &["-c", &script]);
    };

    for variant in ["plain", "dot-slash", "pax-path", "gnu-long-name"] {
        let dup = pkg.dir.join(format!("dup-{variant}.tar"));
        std::fs::copy(&genuine, &dup).unwrap();
        let d = dup.to_str().unwrap();
        let appended = match variant {
            "plain" => {
                tar(&pkg, &["-rf", d, "-C", "evil", "image-u-boot"]);
                "image-u-boot".to_string()
            }
            "dot-slash" => {
                tar(&pkg, &["-rf", d, "-C", "evil", "./image-u-boot"]);
                "./image-u-boot".to_string()
            }
            // The ustar name field says `renamed-decoy`; the pax `path` record names image-u-boot.
            "pax-path" => {
                append_py(&dup, "PAX_FORMAT", "renamed-decoy", Some("image-u-boot"));
                "image-u-boot".to_string()
            }
            // A 112-character name, `././…/image-u-boot`, in a GNU `././@LongLink` record.
            _ => {
                append_py(&dup, "GNU_FORMAT", &long, None);
                long.clone()
            }
        };
        // GNU tar lists the two copies ...
        let names = crate::packages::member_names(&dup);
        assert_eq!(names.last().unwrap(), &appended, "{variant}: {names:?}");
        // ... and `tar -xf`, what a BMC runs on an upload, writes the implant, the last copy.
        let x = pkg.dir.join(format!("x-{variant}"));
        let _ = std::fs::remove_dir_all(&x);
        std::fs::create_dir_all(&x).unwrap();
        run(&pkg.dir, "tar", &["-xf", d, "-C", x.to_str().unwrap()]);
        assert_eq!(
            std::fs::read(x.join("image-u-boot")).unwrap(),
            implant,
            "{variant}: tar -xf did not keep the last copy"
        );
        assert!(!x.join("renamed-decoy").exists(), "{variant}");
        // fwscan refuses the package, naming both copies' offsets (the tree calls the second copy
        // `image-u-boot#2`).
        let at = refused(
            &dup,
            &policy,
            "package-ambiguous",
            "image-u-boot#2",
            "occurs twice",
        );
        assert_eq!(at, second, "{variant}");
        let (_, v) = verify(&dup, &policy, &[]);
        let msg = problems(&v)
            .into_iter()
            .find(|p| p.0 == "package-ambiguous")
            .unwrap()
            .3;
        assert!(
            msg.contains(&format!("at {first:#x} (`image-u-boot`)"))
                && msg.contains(&format!("at {second:#x} (`{appended}`)")),
            "{variant}: {msg}"
        );
    }
}

/// Makes `key.pem` a fresh RSA key of `bits` bits and exponent `e`, `publickey` its public half, and
/// signs the package with it again (MANIFEST.sig and publickey.sig with `system`, a key of the package
/// directory).
fn rekey(pkg: &Pkg, bits: u32, e: u32, system: &str) {
    run(
        &pkg.dir,
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &format!("rsa_keygen_bits:{bits}"),
            "-pkeyopt",
            &format!("rsa_keygen_pubexp:{e}"),
            "-out",
            "key.pem",
        ],
    );
    run(
        &pkg.dir,
        "openssl",
        &["rsa", "-in", "key.pem", "-pubout", "-out", "publickey"],
    );
    pkg.sign_all();
    for f in ["MANIFEST", "publickey"] {
        run(
            &pkg.dir,
            "openssl",
            &[
                "dgst",
                "-sha256",
                "-sign",
                system,
                "-out",
                &format!("{f}.sig"),
                f,
            ],
        );
    }
    pkg.sign_full();
}

#[test]
fn weak_package_keys_are_refused() {
    let Some(pkg) = Pkg::new("obmc-weak", "sha256", "RSA-SHA256") else {
        return;
    };
    // The vendor's strong system key (other.pem, 2048 bits, e = 65537) signs MANIFEST and publickey, as
    // the trust policy requires; the package's own publickey, which signs the image files, is weak.
    let policy = policy_for(&pkg, "other.pub");
    for (bits, e, what) in [(1024, 65537, "RSA-1024"), (2048, 3, "exponent 3")] {
        rekey(&pkg, bits, e, "other.pem");
        let tar = pkg.tar(&format!("weak-{bits}-{e}.tar"));
        let at = refused(&tar, &policy, "vendor-key-weak", "publickey", what);
        let publickey_at = member_block(&tar, "publickey") * 512 + 512;
        assert_eq!(at, publickey_at, "{what}: the publickey member's data");
        // Its signatures verify; only the key is refused.
        let (_, v) = verify(&tar, &policy, &[]);
        let p = problems(&v);
        assert_eq!(p.len(), 1, "{what}: {p:#?}");
    }
    // A weak *system* key given on the command line (it would verify MANIFEST.sig and publickey.sig) is
    // refused as weak, not taken as the vendor's.
    run(
        &pkg.dir,
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            "sys1024.pem",
        ],
    );
    run(
        &pkg.dir,
        "openssl",
        &[
            "rsa",
            "-in",
            "sys1024.pem",
            "-pubout",
            "-out",
            "sys1024.pub",
        ],
    );
    rekey(&pkg, 2048, 65537, "sys1024.pem");
    let tar = pkg.tar("weak-system.tar");
    let key = format!("OpenBMC={}", pkg.dir.join("sys1024.pub").display());
    let empty = pkg.dir.join("policy-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let no_keys = vendor_policy(&empty, &[]);
    let (rc, err, written) = baseline(&tar, &no_keys, &["--openbmc-key", &key]);
    assert_eq!(rc, 2, "{err}");
    assert!(!written);
    // Refused where the key is given (`--openbmc-key` checks key strength as the trust policy does).
    assert!(
        err.contains("vendor-key-weak") && err.contains("RSA-1024") && err.contains("sys1024.pub"),
        "{err}"
    );
}

/// `baseline --insecure-unsigned` waives a missing or untrusted signature, never a structural refusal:
/// a stripped package (`package-ambiguous`), a second copy of a member (`package-ambiguous`) and a weak
/// package key (`vendor-key-weak`) are refused with it too (exit 2, no manifest), naming the problem as an
/// error; a package whose signer the policy does not vouch for is still made a baseline with it.
#[test]
fn insecure_unsigned_does_not_waive_structural_refusals() {
    let Some((pkg, genuine, _)) = genuine("obmc-insecure") else {
        return;
    };
    let empty = pkg.dir.join("policy-none");
    std::fs::create_dir_all(&empty).unwrap();
    let no_keys = vendor_policy(&empty, &[]);
    // Self-signed only (no vendor key): vendor-untrusted, which the flag waives.
    let (rc, err, written) = baseline(&genuine, &no_keys, &[]);
    assert_eq!(rc, 2, "{err}");
    assert!(!written && err.contains("vendor-untrusted"), "{err}");
    let (rc, err, written) = baseline(&genuine, &no_keys, &["--insecure-unsigned"]);
    assert_eq!(rc, 0, "{err}");
    assert!(
        written && err.contains("warning: ") && !err.contains("error: "),
        "{err}"
    );

    let stripped = pack(
        &pkg,
        "stripped.tar",
        &["image-kernel", "image-rofs", "image-rwfs"],
        true,
    );
    let dup = pkg.dir.join("dup.tar");
    std::fs::copy(&genuine, &dup).unwrap();
    tar(&pkg, &["-rf", dup.to_str().unwrap(), "./image-u-boot"]);
    let weak = {
        let w = Pkg::new("obmc-insecure-weak", "sha256", "RSA-SHA256").unwrap();
        rekey(&w, 1024, 65537, "key.pem");
        w.tar("weak.tar")
    };
    for (tar, code) in [
        (&stripped, "package-ambiguous"),
        (&dup, "package-ambiguous"),
        (&weak, "vendor-key-weak"),
    ] {
        let (rc, err, written) = baseline(tar, &no_keys, &["--insecure-unsigned"]);
        assert_eq!(rc, 2, "{}: {err}", tar.display());
        assert!(!written, "{}: a manifest was written", tar.display());
        assert!(
            err.lines()
                .any(|l| l.starts_with("fwscan: error: ") && l.contains(code)),
            "{}: no error naming {code}: {err}",
            tar.display()
        );
    }
}
