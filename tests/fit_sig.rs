//! U-Boot verified boot (issue 21, point 2): FIT configuration and image signatures checked with the keys
//! of the U-Boot control device tree in the same flash, or of the trust policy, with U-Boot's own
//! `fit_check_sign` as the oracle case by case.
//!
//! Each case signs a kernel FIT with U-Boot's `mkimage -f ITS -k KEYDIR -K CONTROL.dtb -r` (keys made with
//! openssl in the scratch directory), appends the control DTB holding the vendor key to a real U-Boot
//! binary (`u-boot-qemu`'s qemu_arm `u-boot.bin`), lays both out in a 64 MiB OpenBMC flash, and checks that
//! fwscan and `fit_check_sign -f FIT -k CONTROL.dtb` agree: signed by the vendor key (0 findings,
//! `fit-signature` evidence `valid`), the same FIT signed by another key (`fit-signature-invalid`), an
//! unsigned FIT (`fit-unsigned`), and a changed signed byte.
//!
//! The tools come from `FWSCAN_FIT_TOOLS` (default `.tools` in the checkout), where `.ci/run` builds them
//! with `../shared/tools/build-fit-check-sign.sh .tools` (Debian's u-boot source; Debian's u-boot-tools does
//! not ship `fit_check_sign`). Under `CI=true` a missing tool fails the tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::harness::{self, have_tool};
use crate::support::bmc as b;

/// The directory holding `fit_check_sign` and the signing `mkimage`, or `None` after a skip.
fn tools() -> Option<PathBuf> {
    let dir = std::env::var_os("FWSCAN_FIT_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"));
    let ok = dir.join("fit_check_sign").is_file() && dir.join("mkimage").is_file();
    if !ok {
        harness::skip(&format!(
            "U-Boot's fit_check_sign and mkimage are not in {} (build them: bash ../shared/tools/build-fit-check-sign.sh .tools, or set FWSCAN_FIT_TOOLS)",
            dir.display()
        ));
        return None;
    }
    if !have_tool("openssl", "openssl")
        || !have_tool("fdtput", "device-tree-compiler")
        || !b::available()
    {
        return None;
    }
    Some(dir)
}

fn sh(dir: &Path, prog: &str, args: &[&str]) -> std::process::Output {
    Command::new(prog)
        .args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap_or_else(|e| panic!("running {prog}: {e}"))
}

#[track_caller]
fn ok(dir: &Path, prog: &str, args: &[&str]) {
    let o = sh(dir, prog, args);
    assert!(
        o.status.success(),
        "{prog} {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A key kind of a case.
#[derive(Clone, Copy)]
enum Kind {
    Rsa(u32),
    P256,
}

/// Makes `KEYDIR/NAME.{key,crt}` (RSA, as mkimage reads them) or `KEYDIR/NAME.pem` (ECDSA), and the public
/// key as `KEYDIR/NAME.pub.pem`.
fn make_key(dir: &Path, keydir: &str, name: &str, kind: Kind) {
    std::fs::create_dir_all(dir.join(keydir)).unwrap();
    let k = format!("{keydir}/{name}");
    match kind {
        Kind::Rsa(bits) => {
            ok(
                dir,
                "openssl",
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    &format!("rsa_keygen_bits:{bits}"),
                    "-out",
                    &format!("{k}.key"),
                ],
            );
            ok(
                dir,
                "openssl",
                &[
                    "req",
                    "-batch",
                    "-new",
                    "-x509",
                    "-subj",
                    "/CN=fit",
                    "-key",
                    &format!("{k}.key"),
                    "-out",
                    &format!("{k}.crt"),
                ],
            );
            ok(
                dir,
                "openssl",
                &[
                    "pkey",
                    "-in",
                    &format!("{k}.key"),
                    "-pubout",
                    "-out",
                    &format!("{k}.pub.pem"),
                ],
            );
        }
        Kind::P256 => {
            ok(
                dir,
                "openssl",
                &[
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-genkey",
                    "-noout",
                    "-out",
                    &format!("{k}.pem"),
                ],
            );
            ok(
                dir,
                "openssl",
                &[
                    "ec",
                    "-in",
                    &format!("{k}.pem"),
                    "-pubout",
                    "-out",
                    &format!("{k}.pub.pem"),
                ],
            );
        }
    }
}

/// The FIT source: a kernel and a device tree, each with a sha256 hash node, one configuration; with
/// `sig`, a `signature-1` node (on the configuration, or on each image when `image_sig`).
fn its(sig: Option<(&str, Option<&str>)>, image_sig: bool) -> String {
    let sig_node = |extra: &str| match sig {
        Some((algo, padding)) => format!(
            "signature-1 {{ algo = \"{algo}\"; key-name-hint = \"dev\"; {}{extra} }};",
            padding
                .map(|p| format!("padding = \"{p}\"; "))
                .unwrap_or_default()
        ),
        None => String::new(),
    };
    let img_sig = if image_sig {
        sig_node("")
    } else {
        String::new()
    };
    let conf_sig = if image_sig {
        String::new()
    } else {
        sig_node("sign-images = \"kernel\", \"fdt\";")
    };
    format!(
        r#"/dts-v1/;
/ {{ description = "fwscan signed kernel"; #address-cells = <1>;
  images {{
    kernel-1 {{ description = "Linux kernel"; data = /incbin/("Image"); type = "kernel"; arch = "arm"; os = "linux";
      compression = "none"; load = <0x80008000>; entry = <0x80008000>; hash-1 {{ algo = "sha256"; }}; {img_sig} }};
    fdt-1 {{ description = "board device tree"; data = /incbin/("board.dtb"); type = "flat_dt"; arch = "arm";
      compression = "none"; hash-1 {{ algo = "sha256"; }}; {img_sig} }};
  }};
  configurations {{ default = "conf-1"; conf-1 {{ description = "boot"; kernel = "kernel-1"; fdt = "fdt-1"; {conf_sig} }}; }};
}};
"#
    )
}

/// What fwscan says about a flash: exit code of `check`, finding codes, and the `fit-signature` evidence
/// of `inspect`.
struct Verdict {
    exit: i32,
    codes: Vec<String>,
    evidence: Vec<Value>,
}

fn verdict(image: &Path, extra: &[&str]) -> Verdict {
    let (exit, codes, evidence) = harness::check_and_evidence(image, extra, "fit-signature");
    Verdict {
        exit,
        codes,
        evidence,
    }
}

/// Whether `fit_check_sign` accepts the FIT with the control DTB.
fn fit_check_sign(tools: &Path, dir: &Path, fit: &str, dtb: &str) -> bool {
    let o = sh(
        dir,
        tools.join("fit_check_sign").to_str().unwrap(),
        &["-f", fit, "-k", dtb],
    );
    o.status.success()
}

/// A U-Boot binary with `dtb` appended as its control device tree.
fn uboot_with(dtb: &[u8]) -> Vec<u8> {
    let mut u = std::fs::read(b::UBOOT_64).unwrap();
    while u.len() % 4 != 0 {
        u.push(0);
    }
    u.extend_from_slice(dtb);
    u
}

/// The flash of `pieces` with `uboot` and `kernel` replaced, written to `dir/name`.
fn flash(dir: &Path, pieces: &b::Pieces, uboot: &[u8], kernel: &[u8], name: &str) -> PathBuf {
    let mut p = pieces.clone();
    p.uboot = uboot.to_vec();
    p.kernel = kernel.to_vec();
    let path = dir.join(name);
    std::fs::write(&path, p.image(b::LAYOUT_64)).unwrap();
    path
}

/// Common set-up: base flash pieces, board DTB and kernel bytes in `dir`.
fn setup(name: &str) -> (PathBuf, b::Pieces) {
    let dir = b::scratch(name);
    let pieces = b::build(&dir, b::LAYOUT_64, b::UBOOT_64, false);
    std::fs::write(dir.join("Image"), b::kernel_bytes(7, 300_000)).unwrap();
    std::fs::write(dir.join("board.dts"), b::dts(None)).unwrap();
    ok(
        &dir,
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
    // `signature { };`: mkimage 2023.01 adds ECDSA keys only below an existing node.
    std::fs::write(
        dir.join("ctl.dts"),
        "/dts-v1/;\n/ { model = \"fwscan test BMC\"; compatible = \"aspeed,ast2500\"; signature { }; };\n",
    )
    .unwrap();
    (dir, pieces)
}

fn control_dtb(dir: &Path, out: &str) {
    ok(
        dir,
        "dtc",
        &["-q", "-I", "dts", "-O", "dtb", "-o", out, "ctl.dts"],
    );
}

/// One case: algorithm, padding, key, configuration or image signature.
struct Case {
    name: &'static str,
    algo: &'static str,
    padding: Option<&'static str>,
    kind: Kind,
    image_sig: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "rsa2048-sha256-pkcs1",
        algo: "sha256,rsa2048",
        padding: None,
        kind: Kind::Rsa(2048),
        image_sig: false,
    },
    Case {
        name: "rsa2048-sha256-pss",
        algo: "sha256,rsa2048",
        padding: Some("pss"),
        kind: Kind::Rsa(2048),
        image_sig: false,
    },
    Case {
        name: "rsa4096-sha256-pkcs1",
        algo: "sha256,rsa4096",
        padding: None,
        kind: Kind::Rsa(4096),
        image_sig: false,
    },
    Case {
        name: "rsa3072-sha384-pss",
        algo: "sha384,rsa3072",
        padding: Some("pss"),
        kind: Kind::Rsa(3072),
        image_sig: false,
    },
    Case {
        name: "rsa2048-sha1-image",
        algo: "sha1,rsa2048",
        padding: None,
        kind: Kind::Rsa(2048),
        image_sig: true,
    },
    Case {
        name: "rsa3072-sha512-image-pss",
        algo: "sha512,rsa3072",
        padding: Some("pss"),
        kind: Kind::Rsa(3072),
        image_sig: true,
    },
];

/// The three FITs every test signs, in `dir`: `vendor{tag}.fit`, signed by key directory `vendor{tag}`
/// whose public key mkimage writes (required) into the control DTB `ctl` it creates; `other{tag}.fit`,
/// the same configuration signed by the key of `other{tag}` that no DTB holds; and `unsigned{tag}.fit`.
/// `sig` is the `(algo, padding)` of the signature nodes; `image_sig` signs the images instead of the
/// configuration. Returns the three file names.
fn sign_three(
    dir: &Path,
    mkimage: &str,
    kind: Kind,
    sig: (&str, Option<&str>),
    image_sig: bool,
    tag: &str,
    ctl: &str,
) -> [String; 3] {
    let (vendor, other) = (format!("vendor{tag}"), format!("other{tag}"));
    make_key(dir, &vendor, "dev", kind);
    make_key(dir, &other, "dev", kind);
    control_dtb(dir, ctl);
    std::fs::write(dir.join("signed.its"), its(Some(sig), image_sig)).unwrap();
    std::fs::write(dir.join("unsigned.its"), its(None, image_sig)).unwrap();
    let fits = [
        format!("{vendor}.fit"),
        format!("{other}.fit"),
        format!("unsigned{tag}.fit"),
    ];
    let signed = ["-f", "signed.its", "-k"];
    ok(
        dir,
        mkimage,
        &[&signed[..], &[&vendor, "-K", ctl, "-r", &fits[0]]].concat(),
    );
    ok(dir, mkimage, &[&signed[..], &[&other, &fits[1]]].concat());
    ok(dir, mkimage, &["-f", "unsigned.its", &fits[2]]);
    fits
}

/// Flips the first byte of `needle` in `b`.
fn flip(b: &[u8], needle: &[u8]) -> Vec<u8> {
    let at = b
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in FIT");
    let mut t = b.to_vec();
    t[at] ^= 0x20;
    t
}

/// Every case: vendor key, another key, unsigned, a changed signed byte; fwscan and `fit_check_sign` agree
/// on each.
#[test]
fn fit_signatures_agree_with_fit_check_sign() {
    let Some(tools) = tools() else { return };
    let mkimage = tools.join("mkimage");
    let mkimage = mkimage.to_str().unwrap();
    let (dir, pieces) = setup("fit-sig");
    for c in CASES {
        let what = c.name;
        let ctl = format!("ctl-{what}.dtb");
        let [vendor_fit, other_fit, unsigned_fit] = sign_three(
            &dir,
            mkimage,
            c.kind,
            (c.algo, c.padding),
            c.image_sig,
            &format!("-{what}"),
            &ctl,
        );
        let dtb = std::fs::read(dir.join(&ctl)).unwrap();
        let uboot = uboot_with(&dtb);
        let vendor = std::fs::read(dir.join(&vendor_fit)).unwrap();
        // A changed signed byte: the kernel's description (configuration signatures cover it) or a kernel
        // data byte (image signatures cover the data).
        let tampered = if c.image_sig {
            let d = b::kernel_bytes(7, 300_000);
            flip(&vendor, &d[1000..1016])
        } else {
            flip(&vendor, b"Linux kernel")
        };
        std::fs::write(dir.join(format!("tampered-{what}.fit")), &tampered).unwrap();
        let expect: [(&str, Vec<u8>, bool, &str); 4] = [
            (&vendor_fit, vendor.clone(), true, ""),
            (
                &other_fit,
                std::fs::read(dir.join(&other_fit)).unwrap(),
                false,
                "fit-signature-invalid",
            ),
            (
                &unsigned_fit,
                std::fs::read(dir.join(&unsigned_fit)).unwrap(),
                false,
                "fit-unsigned",
            ),
            ("tampered", tampered, false, ""),
        ];
        for (fit_name, fit, good, code) in expect {
            let fit_file = if fit_name == "tampered" {
                format!("tampered-{what}.fit")
            } else {
                fit_name.to_string()
            };
            let oracle = fit_check_sign(&tools, &dir, &fit_file, &ctl);
            assert_eq!(oracle, good, "{what} {fit_file}: fit_check_sign");
            let img = flash(&dir, &pieces, &uboot, &fit, "flash.bin");
            let v = verdict(&img, &[]);
            if good {
                assert_eq!(
                    (v.exit, v.codes.len()),
                    (0, 0),
                    "{what} {fit_file}: {:?}",
                    v.codes
                );
                let n = if c.image_sig { 2 } else { 1 };
                assert_eq!(v.evidence.len(), n, "{what}: {:?}", v.evidence);
                for e in &v.evidence {
                    assert_eq!(e["status"], "valid", "{what}: {e}");
                    assert_eq!(e["signer"], "dev", "{what}: {e}");
                    assert_eq!(e["trust"], "self-signed", "{what}: {e}");
                }
            } else {
                assert_eq!(v.exit, 1, "{what} {fit_file}: {:?}", v.codes);
                assert!(
                    v.codes.iter().any(|c| c.starts_with("fit-")),
                    "{what} {fit_file}: {:?}",
                    v.codes
                );
                if !code.is_empty() {
                    assert!(
                        v.codes.iter().any(|x| x == code),
                        "{what} {fit_file}: {:?}",
                        v.codes
                    );
                }
                if fit_name == "tampered" && !c.image_sig {
                    // The description is signed, not hashed: only the signature catches it.
                    assert_eq!(v.codes, ["fit-signature-invalid"], "{what}");
                }
            }
        }
    }
}

/// ECDSA P-256 (`sha256,ecdsa256`): mkimage 2023.01 signs it and writes the key (node `/signature/dev`,
/// without `required`); its fit_check_sign does not verify an ECDSA key unless it is required, and then
/// fails even a good signature, so it is no oracle here. fwscan verifies the mkimage signature (an
/// independent signer: region computation and ECDSA both have to match), refuses another key's, and with
/// `required = "conf"` set (fdtput) flags an unsigned FIT.
#[test]
fn ecdsa_p256_signatures() {
    let Some(tools) = tools() else { return };
    let mkimage = tools.join("mkimage");
    let mkimage = mkimage.to_str().unwrap();
    let (dir, pieces) = setup("fit-sig-ecdsa");
    sign_three(
        &dir,
        mkimage,
        Kind::P256,
        ("sha256,ecdsa256", None),
        false,
        "",
        "ctl.dtb",
    );
    let uboot = uboot_with(&std::fs::read(dir.join("ctl.dtb")).unwrap());
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let v = verdict(
        &flash(&dir, &pieces, &uboot, &read("vendor.fit"), "f.bin"),
        &[],
    );
    assert_eq!((v.exit, v.codes.len()), (0, 0), "{:?}", v.codes);
    assert_eq!(v.evidence.len(), 1);
    assert_eq!(v.evidence[0]["status"], "valid", "{:?}", v.evidence);
    let v = verdict(
        &flash(&dir, &pieces, &uboot, &read("other.fit"), "f.bin"),
        &[],
    );
    assert_eq!(v.exit, 1);
    assert_eq!(v.codes, ["fit-signature-invalid"]);
    // Not required: U-Boot boots an unsigned FIT, and so fwscan is quiet.
    let v = verdict(
        &flash(&dir, &pieces, &uboot, &read("unsigned.fit"), "f.bin"),
        &[],
    );
    assert_eq!((v.exit, v.codes.len()), (0, 0), "{:?}", v.codes);
    ok(
        &dir,
        "fdtput",
        &["-t", "s", "ctl.dtb", "/signature/dev", "required", "conf"],
    );
    let uboot = uboot_with(&std::fs::read(dir.join("ctl.dtb")).unwrap());
    let v = verdict(
        &flash(&dir, &pieces, &uboot, &read("unsigned.fit"), "f.bin"),
        &[],
    );
    assert_eq!(v.codes, ["fit-unsigned"]);
    let v = verdict(
        &flash(&dir, &pieces, &uboot, &read("vendor.fit"), "f.bin"),
        &[],
    );
    assert_eq!((v.exit, v.codes.len()), (0, 0), "{:?}", v.codes);
}

/// Keys from the trust policy (`fit`: a PEM key or a control DTB, checked against the JSON Schema) or
/// `--fit-key`: with a U-Boot whose control DTB holds no key, the vendor FIT verifies anchored in the
/// policy key; an unsigned one is `fit-unsigned` (a policy PEM key is required for configurations); a FIT
/// signed by a key nobody holds, with no required key, is `fit-key-untrusted`, which fit_check_sign
/// (checking required keys only) lets pass.
#[test]
fn keys_from_the_trust_policy() {
    let Some(tools) = tools() else { return };
    let mkimage = tools.join("mkimage");
    let mkimage = mkimage.to_str().unwrap();
    let (dir, pieces) = setup("fit-sig-policy");
    sign_three(
        &dir,
        mkimage,
        Kind::Rsa(2048),
        ("sha256,rsa2048", None),
        false,
        "",
        "keys.dtb",
    );
    control_dtb(&dir, "empty.dtb");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let uboot = uboot_with(&read("empty.dtb"));
    let pem = std::fs::read_to_string(dir.join("vendor/dev.pub.pem")).unwrap();
    use base64::Engine as _;
    let dtb64 = base64::engine::general_purpose::STANDARD.encode(read("keys.dtb"));
    let schema: Value =
        serde_json::from_str(include_str!("../schemas/trust-policy-v1.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for (id, entry) in [
        (
            "pem",
            json!({"id": "acme-fit", "type": "fit", "pem": pem, "components": ["bmc"]}),
        ),
        (
            "dtb",
            json!({"id": "acme-fit", "type": "fit", "dtb": dtb64}),
        ),
    ] {
        let policy = json!({"schema_version": 1, "keys": [], "vendor_keys": [entry]});
        assert!(validator.is_valid(&policy), "{id}");
        let p = dir.join(format!("trust-{id}.json"));
        std::fs::write(&p, policy.to_string()).unwrap();
        let args = ["--trust", p.to_str().unwrap()];
        let v = verdict(
            &flash(&dir, &pieces, &uboot, &read("vendor.fit"), "f.bin"),
            &args,
        );
        assert_eq!((v.exit, v.codes.len()), (0, 0), "{id}: {:?}", v.codes);
        assert_eq!(v.evidence[0]["status"], "valid", "{id}");
        assert_eq!(v.evidence[0]["trust"], "anchored", "{id}");
        assert!(
            v.evidence[0]["key"]
                .as_str()
                .unwrap()
                .starts_with("fit:acme-fit"),
            "{id}"
        );
        let v = verdict(
            &flash(&dir, &pieces, &uboot, &read("unsigned.fit"), "f.bin"),
            &args,
        );
        assert_eq!(v.codes, ["fit-unsigned"], "{id}");
        let v = verdict(
            &flash(&dir, &pieces, &uboot, &read("other.fit"), "f.bin"),
            &args,
        );
        assert_eq!(v.codes, ["fit-signature-invalid"], "{id}");
    }
    // Both `pem` and `dtb`, or neither: refused by the schema.
    assert!(
        !validator.is_valid(&json!({"schema_version": 1, "keys": [], "vendor_keys": [
        {"id": "x", "type": "fit", "pem": pem, "dtb": dtb64}]}))
    );
    assert!(
        !validator.is_valid(&json!({"schema_version": 1, "keys": [], "vendor_keys": [
        {"id": "x", "type": "fit"}]}))
    );
    // --fit-key with a PEM key: the same as the policy.
    let key = dir.join("vendor/dev.pub.pem");
    let args = ["--fit-key", key.to_str().unwrap()];
    let v = verdict(
        &flash(&dir, &pieces, &uboot, &read("vendor.fit"), "f.bin"),
        &args,
    );
    assert_eq!((v.exit, v.codes.len()), (0, 0), "{:?}", v.codes);
    assert_eq!(v.evidence[0]["trust"], "anchored");
    // A control DTB whose key is not required, and a FIT signed by another key nobody holds (its own
    // name): U-Boot boots it (fit_check_sign passes), fwscan names the unknown signer.
    control_dtb(&dir, "notreq.dtb");
    ok(
        &dir,
        mkimage,
        &[
            "-f",
            "signed.its",
            "-k",
            "vendor",
            "-K",
            "notreq.dtb",
            "vendor2.fit",
        ],
    );
    std::fs::write(
        dir.join("stranger.its"),
        its(Some(("sha256,rsa2048", None)), false)
            .replace("key-name-hint = \"dev\"", "key-name-hint = \"stranger\""),
    )
    .unwrap();
    make_key(&dir, "strangers", "stranger", Kind::Rsa(2048));
    ok(
        &dir,
        mkimage,
        &["-f", "stranger.its", "-k", "strangers", "stranger.fit"],
    );
    assert!(fit_check_sign(&tools, &dir, "stranger.fit", "notreq.dtb"));
    let uboot = uboot_with(&read("notreq.dtb"));
    let v = verdict(
        &flash(&dir, &pieces, &uboot, &read("stranger.fit"), "f.bin"),
        &[],
    );
    assert_eq!(v.codes, ["fit-key-untrusted"]);
    let v = verdict(
        &flash(&dir, &pieces, &uboot, &read("vendor2.fit"), "f.bin"),
        &[],
    );
    assert_eq!((v.exit, v.codes.len()), (0, 0), "{:?}", v.codes);
    // A malformed --fit-key is refused (exit 2).
    std::fs::write(
        dir.join("bad.pem"),
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let (code, _, err) = harness::run(&[
        "check",
        dir.join("f.bin").to_str().unwrap(),
        "--fit-key",
        dir.join("bad.pem").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
}
