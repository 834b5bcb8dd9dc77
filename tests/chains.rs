//! Certification paths of UEFI capsule signers (issue 19 points 6 and 8), side by side with
//! `openssl verify`: chains built with the `openssl` CLI (`req`, `x509 -extfile`), capsules signed with
//! them by EDK2's `GenerateCapsule.py` (`openssl smime -sign`), and `fwscan verify CAPSULE --trust
//! POLICY` asked whether the signer is trusted. openssl's reference is `openssl verify -auth_level 2
//! -CAfile ANCHOR -untrusted INTERMEDIATE [-attime T] SIGNER`: security level 2 (112 bits) refuses
//! RSA-1024 and SHA-1, which level 1, the default, lets through. Two rules have no openssl counterpart
//! here: the public exponent (openssl does not check it; the issue asks for >= 65537) and the
//! code-signing EKU when openssl lacks `-purpose codesign` (OpenSSL < 3.2). One rule is stricter than
//! openssl on purpose: critical name and policy constraints, which openssl enforces and fwscan does not,
//! refuse the path. The table printed by [`capsule_signer_paths_agree_with_openssl_verify`] marks them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{have_tool, run as fwscan};
use crate::packages::{edk2_basetools, generate_capsule_signed, run, vendor_policy};
use crate::support::bmc as b;

/// A certificate authority workshop in one directory.
struct Pki {
    dir: PathBuf,
    serial: std::cell::Cell<u32>,
}

/// How a certificate is made.
struct Spec<'a> {
    name: &'a str,
    subject: &'a str,
    /// `openssl x509 -extfile` lines.
    ext: &'a str,
    /// The issuer's name in this directory; `None`: self-signed.
    issuer: Option<&'a str>,
    bits: u32,
    exponent: u32,
    digest: &'a str,
    days: u32,
}

const CA: &str = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
const LEAF: &str =
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n";

impl<'a> Spec<'a> {
    fn new(name: &'a str, subject: &'a str, ext: &'a str, issuer: Option<&'a str>) -> Self {
        Spec {
            name,
            subject,
            ext,
            issuer,
            bits: 2048,
            exponent: 65537,
            digest: "sha256",
            days: 3650,
        }
    }
}

impl Pki {
    fn new(name: &str) -> Pki {
        Pki {
            dir: b::scratch(name),
            serial: std::cell::Cell::new(1),
        }
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }

    fn openssl(&self, args: &[&str]) {
        run(&self.dir, "openssl", args);
    }

    /// Makes `NAME.key`, `NAME.pem` and `NAME.signer.pem` (certificate and key, for signing).
    fn make(&self, s: Spec) {
        let key = format!("{}.key", s.name);
        let pem = format!("{}.pem", s.name);
        let (bits, e) = (
            format!("rsa_keygen_bits:{}", s.bits),
            format!("rsa_keygen_pubexp:{}", s.exponent),
        );
        self.openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &bits,
            "-pkeyopt",
            &e,
            "-out",
            &key,
        ]);
        let cfg = format!("{}.cnf", s.name);
        std::fs::write(
            self.path(&cfg),
            format!("[req]\ndistinguished_name=dn\n[dn]\n[v3]\n{}", s.ext),
        )
        .unwrap();
        let ext = format!("{}.ext", s.name);
        std::fs::write(self.path(&ext), s.ext).unwrap();
        let days = s.days.to_string();
        let md = format!("-{}", s.digest);
        match s.issuer {
            // No extensions: an X.509 v1 certificate, self-signed from a request.
            None if s.ext.is_empty() => {
                let csr = format!("{}.csr", s.name);
                self.openssl(&[
                    "req", "-new", "-key", &key, "-subj", s.subject, "-config", &cfg, "-out", &csr,
                ]);
                self.openssl(&[
                    "x509", "-req", "-in", &csr, "-signkey", &key, "-days", &days, &md, "-out",
                    &pem,
                ]);
            }
            None => self.openssl(&[
                "req",
                "-new",
                "-x509",
                "-key",
                &key,
                "-subj",
                s.subject,
                "-days",
                &days,
                &md,
                "-config",
                &cfg,
                "-extensions",
                "v3",
                "-out",
                &pem,
            ]),
            Some(i) => {
                let csr = format!("{}.csr", s.name);
                self.openssl(&[
                    "req", "-new", "-key", &key, "-subj", s.subject, "-config", &cfg, "-out", &csr,
                ]);
                let serial = self.serial.get() + 1;
                self.serial.set(serial);
                let (ca, ca_key, serial) =
                    (format!("{i}.pem"), format!("{i}.key"), serial.to_string());
                let mut args = vec![
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &ca,
                    "-CAkey",
                    &ca_key,
                    "-set_serial",
                    &serial,
                    "-days",
                    &days,
                    &md,
                    "-out",
                    &pem,
                ];
                // Without extensions openssl writes an X.509 v1 certificate.
                if !s.ext.is_empty() {
                    args.extend(["-extfile", &ext]);
                }
                self.openssl(&args);
            }
        }
        let both = [
            std::fs::read(self.path(&pem)).unwrap(),
            std::fs::read(self.path(&key)).unwrap(),
        ]
        .concat();
        std::fs::write(self.path(&format!("{}.signer.pem", s.name)), both).unwrap();
    }

    /// `openssl verify -auth_level 2 -CAfile ANCHOR -untrusted INTER [extra] SIGNER`: whether it
    /// verifies, and its output.
    fn openssl_verify(
        &self,
        anchor: &str,
        inter: &str,
        signer: &str,
        extra: &[&str],
    ) -> (bool, String) {
        let mut c = Command::new("openssl");
        c.current_dir(&self.dir).args([
            "verify",
            "-auth_level",
            "2",
            "-CAfile",
            &format!("{anchor}.pem"),
            "-untrusted",
            &format!("{inter}.pem"),
        ]);
        c.args(extra).arg(format!("{signer}.pem"));
        let o = c.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (
            o.status.success(),
            text.split_whitespace().collect::<Vec<_>>().join(" "),
        )
    }

    /// A capsule of a small payload signed by `signer` with `inter` in the message.
    fn capsule(&self, signer: &str, inter: &str, anchor: &str) -> PathBuf {
        let payload = self.path("payload.bin");
        if !payload.exists() {
            std::fs::write(&payload, [0x5Au8; 4096]).unwrap();
        }
        let out = self.path(&format!("{signer}.cap"));
        generate_capsule_signed(
            &self.dir,
            &payload,
            &out,
            [
                &self.path(&format!("{signer}.signer.pem")),
                &self.path(&format!("{inter}.pem")),
                &self.path(&format!("{anchor}.pem")),
            ],
            &["--monotonic-count", "1"],
        );
        out
    }

    /// A trust policy with `anchor` as an x509 vendor key (`extra` fields added).
    fn policy(&self, anchor: &str, extra: Value) -> PathBuf {
        let pem = std::fs::read_to_string(self.path(&format!("{anchor}.pem"))).unwrap();
        let mut entry =
            serde_json::json!({"id": format!("{anchor}-ca"), "type": "x509", "pem": pem});
        if let (Some(e), Some(x)) = (entry.as_object_mut(), extra.as_object()) {
            e.extend(x.clone());
        }
        let d = self.path(&format!("policy-{anchor}-{}", self.serial.get()));
        self.serial.set(self.serial.get() + 1);
        std::fs::create_dir_all(&d).unwrap();
        vendor_policy(&d, &[entry])
    }
}

/// `fwscan verify CAPSULE --trust POLICY --format json [extra]`: (exit code, problems as (code, message)).
fn verify(cap: &Path, policy: &Path, extra: &[&str]) -> (i32, Vec<(String, String)>) {
    let mut args = vec![
        "verify",
        cap.to_str().unwrap(),
        "--trust",
        policy.to_str().unwrap(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = fwscan(&args);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    let problems = v["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["code"].as_str().unwrap_or("").to_string(),
                        p["message"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_else(|| {
            vec![(
                v["code"].as_str().unwrap_or("").to_string(),
                v["message"].as_str().unwrap_or("").to_string(),
            )]
        });
    (code, problems)
}

fn tools() -> Option<()> {
    edk2_basetools()?;
    have_tool("openssl", "openssl").then_some(())
}

/// Whether this openssl knows `-purpose codesign` (OpenSSL 3.2+).
fn openssl_has_codesign_purpose() -> bool {
    Command::new("openssl")
        .args(["verify", "-help"])
        .output()
        .map(|o| String::from_utf8_lossy(&[o.stdout, o.stderr].concat()).contains("codesign"))
        .unwrap_or(false)
}

/// A chain: (case, signer, intermediate, vendor certificate, fwscan's finding code or "" for trusted,
/// a fragment of its message, evaluated 30 days on, the EKU case).
type Row<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    bool,
    bool,
);

#[test]
fn capsule_signer_paths_agree_with_openssl_verify() {
    if tools().is_none() {
        return;
    }
    let k = Pki::new("chains");
    k.make(Spec::new("root", "/CN=Vendor Root", CA, None));
    k.make(Spec::new(
        "inter",
        "/CN=Vendor Firmware CA",
        CA,
        Some("root"),
    ));
    k.make(Spec::new(
        "good",
        "/CN=Vendor Firmware Signer",
        LEAF,
        Some("inter"),
    ));
    // The attack: the vendor's TLS server certificate issues a "firmware signer".
    k.make(Spec::new(
        "tls",
        "/CN=update.vendor.example",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        Some("root"),
    ));
    k.make(Spec::new(
        "via_tls",
        "/CN=Signer under TLS",
        LEAF,
        Some("tls"),
    ));
    k.make(Spec::new(
        "noks",
        "/CN=CA without keyCertSign",
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,cRLSign\n",
        Some("root"),
    ));
    k.make(Spec::new(
        "via_noks",
        "/CN=Signer under noks",
        LEAF,
        Some("noks"),
    ));
    k.make(Spec::new(
        "root0",
        "/CN=Root pathlen 0",
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n",
        None,
    ));
    k.make(Spec::new(
        "inter0",
        "/CN=CA under pathlen 0",
        CA,
        Some("root0"),
    ));
    k.make(Spec::new(
        "via_inter0",
        "/CN=Signer too deep",
        LEAF,
        Some("inter0"),
    ));
    k.make(Spec {
        days: 1,
        ..Spec::new("expired", "/CN=Short-lived Signer", LEAF, Some("inter"))
    });
    k.make(Spec {
        digest: "sha1",
        ..Spec::new("sha1", "/CN=SHA-1 CA", CA, Some("root"))
    });
    k.make(Spec::new(
        "via_sha1",
        "/CN=Signer under SHA-1",
        LEAF,
        Some("sha1"),
    ));
    k.make(Spec::new(
        "tlsleaf",
        "/CN=Server-auth Signer",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        Some("inter"),
    ));
    k.make(Spec {
        bits: 1024,
        ..Spec::new("rsa1024", "/CN=RSA-1024 Signer", LEAF, Some("inter"))
    });
    k.make(Spec {
        exponent: 3,
        ..Spec::new("e3", "/CN=e=3 Signer", LEAF, Some("inter"))
    });

    // X.509 v1 (no extensions): a self-signed v1 root as the vendor certificate, and a v1 intermediate.
    k.make(Spec::new("root_v1", "/CN=Vendor v1 Root", "", None));
    k.make(Spec::new(
        "inter_v1r",
        "/CN=CA under the v1 root",
        CA,
        Some("root_v1"),
    ));
    k.make(Spec::new(
        "via_v1r",
        "/CN=Signer under the v1 root",
        LEAF,
        Some("inter_v1r"),
    ));
    k.make(Spec::new("v1i", "/CN=v1 intermediate", "", Some("root")));
    k.make(Spec::new(
        "via_v1i",
        "/CN=Signer under a v1 intermediate",
        LEAF,
        Some("v1i"),
    ));
    // Critical extensions (RFC 5280 4.2): one nobody processes, on an intermediate and on the signer;
    // name and policy constraints, which openssl enforces and fwscan refuses.
    let crit = format!("{CA}1.3.6.1.4.1.55555.1=critical,ASN1:NULL\n");
    k.make(Spec::new(
        "crit",
        "/CN=CA with unknown critical",
        &crit,
        Some("root"),
    ));
    k.make(Spec::new(
        "via_crit",
        "/CN=Signer under crit",
        LEAF,
        Some("crit"),
    ));
    let leaf_crit = format!("{LEAF}1.3.6.1.4.1.55555.2=critical,ASN1:NULL\n");
    k.make(Spec::new(
        "leaf_crit",
        "/CN=Signer with unknown critical",
        &leaf_crit,
        Some("inter"),
    ));
    let nc = format!("{CA}nameConstraints=critical,permitted;DNS:vendor.example\n");
    k.make(Spec::new(
        "nc",
        "/CN=CA with nameConstraints",
        &nc,
        Some("root"),
    ));
    k.make(Spec::new("via_nc", "/CN=Signer under nc", LEAF, Some("nc")));
    let pc = format!("{CA}policyConstraints=critical,inhibitPolicyMapping:0\n");
    k.make(Spec::new(
        "pc",
        "/CN=CA with policyConstraints",
        &pc,
        Some("root"),
    ));
    k.make(Spec::new("via_pc", "/CN=Signer under pc", LEAF, Some("pc")));

    // Thirty days on, the one-day signer has expired: `openssl verify -attime`, `fwscan verify --at`.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(30 * 86400);
    let epoch = later
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let rfc3339 = humantime::format_rfc3339_seconds(later).to_string();
    let codesign = openssl_has_codesign_purpose();

    // (case, signer, intermediate, anchor, fwscan: finding code or "" for trusted, message fragment,
    //  `--at` later, EKU case)
    let cases: &[Row] = &[
        ("good chain", "good", "inter", "root", "", "", false, false),
        (
            "TLS server cert as issuer",
            "via_tls",
            "tls",
            "root",
            "vendor-untrusted",
            "issuer `CN=update.vendor.example` is not a CA (basicConstraints CA=false)",
            false,
            false,
        ),
        (
            "keyUsage without keyCertSign",
            "via_noks",
            "noks",
            "root",
            "vendor-untrusted",
            "keyUsage lacks keyCertSign",
            false,
            false,
        ),
        (
            "pathlen:0 root with an intermediate",
            "via_inter0",
            "inter0",
            "root0",
            "vendor-untrusted",
            "issuer `CN=Root pathlen 0` allows 0 intermediate CA(s)",
            false,
            false,
        ),
        (
            "expired signer",
            "expired",
            "inter",
            "root",
            "vendor-untrusted",
            "`CN=Short-lived Signer` expired",
            true,
            false,
        ),
        (
            "SHA-1 signed intermediate",
            "via_sha1",
            "sha1",
            "root",
            "vendor-untrusted",
            "`CN=SHA-1 CA` is signed with SHA-1",
            false,
            false,
        ),
        (
            "EKU serverAuth only",
            "tlsleaf",
            "inter",
            "root",
            "vendor-untrusted",
            "extendedKeyUsage does not allow code signing",
            false,
            true,
        ),
        (
            "RSA-1024 signer",
            "rsa1024",
            "inter",
            "root",
            "vendor-key-weak",
            "RSA-1024 key",
            false,
            false,
        ),
        (
            "RSA e=3 signer",
            "e3",
            "inter",
            "root",
            "vendor-key-weak",
            "RSA public exponent 3",
            false,
            false,
        ),
        (
            "self-signed v1 root as the vendor certificate",
            "via_v1r",
            "inter_v1r",
            "root_v1",
            "",
            "",
            false,
            false,
        ),
        (
            "v1 intermediate",
            "via_v1i",
            "v1i",
            "root",
            "vendor-untrusted",
            "issuer `CN=v1 intermediate` is an X.509 v1 certificate",
            false,
            false,
        ),
        (
            "unknown critical extension on the intermediate",
            "via_crit",
            "crit",
            "root",
            "vendor-untrusted",
            "`CN=CA with unknown critical` carries a critical extension 1.3.6.1.4.1.55555.1",
            false,
            false,
        ),
        (
            "unknown critical extension on the signer",
            "leaf_crit",
            "inter",
            "root",
            "vendor-untrusted",
            "`CN=Signer with unknown critical` carries a critical extension 1.3.6.1.4.1.55555.2",
            false,
            false,
        ),
        (
            "critical nameConstraints (not enforced)",
            "via_nc",
            "nc",
            "root",
            "vendor-untrusted",
            "critical nameConstraints extension, which fwscan does not enforce",
            false,
            false,
        ),
        (
            "critical policyConstraints (not enforced)",
            "via_pc",
            "pc",
            "root",
            "vendor-untrusted",
            "critical policyConstraints extension, which fwscan does not enforce",
            false,
            false,
        ),
    ];
    let re =
        regex::Regex::new(r"error (\d+) at \d+ depth lookup: (.+?)(?: CN =| error |$)").unwrap();
    let mut table = vec![
        "| case | openssl verify | fwscan verify |".to_string(),
        "|---|---|---|".to_string(),
    ];
    for &(case, signer, inter, anchor, want, fragment, at_later, eku) in cases {
        let mut extra: Vec<&str> = Vec::new();
        if at_later {
            extra.extend(["-attime", epoch.as_str()]);
        }
        if eku && codesign {
            extra.extend(["-purpose", "codesign"]);
        }
        let (ossl_ok, ossl_out) = k.openssl_verify(anchor, inter, signer, &extra);
        let cap = k.capsule(signer, inter, anchor);
        let policy = k.policy(anchor, serde_json::json!({}));
        let at: Vec<&str> = if at_later {
            vec!["--at", rfc3339.as_str()]
        } else {
            vec![]
        };
        let (code, problems) = verify(&cap, &policy, &at);
        let trusted = code == 0;
        if want.is_empty() {
            assert!(trusted, "{case}: fwscan refused: {problems:?}");
        } else {
            assert_eq!(code, 2, "{case}: fwscan trusted the signer");
            assert!(
                problems
                    .iter()
                    .any(|(c, m)| c == want && m.contains(fragment)),
                "{case}: want {want} with `{fragment}`, got {problems:?}"
            );
        }
        // Side by side: the same verdict as openssl, except where openssl has no such rule.
        let note = if case.starts_with("RSA e=3") {
            assert!(
                ossl_ok,
                "{case}: openssl now checks the exponent: {ossl_out}"
            );
            " (openssl does not check the exponent)"
        } else if case.contains("(not enforced)") {
            // openssl enforces the constraint (and the signer satisfies it); fwscan refuses instead.
            assert!(ossl_ok, "{case}: {ossl_out}");
            " (openssl enforces it and accepts; fwscan does not enforce it, so refuses)"
        } else if eku && !codesign {
            assert!(ossl_ok, "{case}: {ossl_out}");
            " (this openssl has no -purpose codesign)"
        } else {
            assert_eq!(
                trusted,
                ossl_ok,
                "{case}: fwscan {} but openssl verify says: {ossl_out}",
                if trusted { "trusts" } else { "refuses" }
            );
            ""
        };
        let ossl = if ossl_ok {
            "OK".to_string()
        } else {
            re.captures_iter(&ossl_out)
                .map(|c| format!("{} {}", &c[1], &c[2]))
                .collect::<Vec<_>>()
                .join("; ")
        };
        table.push(format!(
            "| {case} | {ossl} | {}{note} |",
            if trusted { "trusted" } else { want }
        ));
    }
    println!("{}", table.join("\n"));

    // The signer's EKU rule follows the vendor certificate's policy entry: "eku": "any" is EDK2's.
    let cap = k.capsule("tlsleaf", "inter", "root");
    let (code, p) = verify(
        &cap,
        &k.policy("root", serde_json::json!({"eku": "any"})),
        &[],
    );
    assert_eq!(code, 0, "{p:?}");
    // "validity": "ignore" is EDK2's too: the expired signer is then trusted.
    let cap = k.capsule("expired", "inter", "root");
    let (code, p) = verify(
        &cap,
        &k.policy("root", serde_json::json!({"validity": "ignore"})),
        &["--at", &rfc3339],
    );
    assert_eq!(code, 0, "{p:?}");
    // Partial chains as EDK2 allows them: the intermediate pinned, or the signer itself.
    let cap = k.capsule("good", "inter", "root");
    for anchor in ["inter", "good"] {
        let (code, p) = verify(&cap, &k.policy(anchor, serde_json::json!({})), &[]);
        assert_eq!(code, 0, "anchor {anchor}: {p:?}");
    }
    // A TLS certificate pinned as the anchor still may not issue: the anchor is an issuer too.
    let cap = k.capsule("via_tls", "tls", "root");
    let (code, p) = verify(&cap, &k.policy("tls", serde_json::json!({})), &[]);
    assert_eq!(code, 2);
    assert!(
        p.iter()
            .any(|(c, m)| c == "vendor-untrusted" && m.contains("is not a CA")),
        "{p:?}"
    );
    // `inspect`/`check` with --capsule-cert apply the same rules.
    let (code, out, _) = fwscan(&[
        "check",
        k.path("via_tls.cap").to_str().unwrap(),
        "--capsule-cert",
        k.path("root.pem").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("vendor-untrusted") && out.contains("is not a CA"),
        "{out}"
    );
}

/// EDK2's own test chain (TestCert → TestSub → TestRoot): the signer's EKU is clientAuth and
/// emailProtection and every certificate expired by 2018. EDK2 accepts it (no time check, no EKU
/// rule); fwscan does under the same rules, asked for in the policy, and so does `openssl verify
/// -no_check_time`.
#[test]
fn edk2_test_chain_is_trusted_under_edk2_rules_only() {
    let Some(bt) = edk2_basetools() else { return };
    if !have_tool("openssl", "openssl") {
        return;
    }
    let k = Pki::new("chains-edk2");
    let certs = bt.join("Pkcs7Sign");
    for f in ["TestCert.pem", "TestSub.pub.pem", "TestRoot.pub.pem"] {
        std::fs::copy(certs.join(f), k.path(f)).unwrap();
    }
    let (ok, out) = k.openssl_verify("TestRoot.pub", "TestSub.pub", "TestCert", &[]);
    assert!(!ok && out.contains("expired"), "{out}");
    let (ok, out) = k.openssl_verify(
        "TestRoot.pub",
        "TestSub.pub",
        "TestCert",
        &["-no_check_time"],
    );
    assert!(ok, "{out}");
    std::fs::write(k.path("payload.bin"), [0xA5u8; 4096]).unwrap();
    let cap = k.path("edk2.cap");
    generate_capsule_signed(
        &k.dir,
        &k.path("payload.bin"),
        &cap,
        [
            &k.path("TestCert.pem"),
            &k.path("TestSub.pub.pem"),
            &k.path("TestRoot.pub.pem"),
        ],
        &[],
    );
    let (code, p) = verify(&cap, &k.policy("TestRoot.pub", serde_json::json!({})), &[]);
    assert_eq!(code, 2);
    assert!(
        p.iter()
            .any(|(c, m)| c == "vendor-untrusted" && m.contains("CN=TestCert")),
        "{p:?}"
    );
    let (code, p) = verify(
        &cap,
        &k.policy("TestRoot.pub", serde_json::json!({"eku": "any"})),
        &[],
    );
    assert_eq!(code, 2);
    assert!(p.iter().any(|(_, m)| m.contains("expired")), "{p:?}");
    let (code, p) = verify(
        &cap,
        &k.policy(
            "TestRoot.pub",
            serde_json::json!({"eku": "any", "validity": "ignore"}),
        ),
        &[],
    );
    assert_eq!(code, 0, "{p:?}");
}

/// Weak vendor keys are refused when the trust policy loads (`trust-policy-invalid`).
#[test]
fn weak_vendor_keys_make_the_trust_policy_invalid() {
    if !have_tool("openssl", "openssl") {
        return;
    }
    let k = Pki::new("chains-weak-policy");
    k.make(Spec {
        bits: 1024,
        ..Spec::new("ca1024", "/CN=RSA-1024 CA", CA, None)
    });
    k.make(Spec {
        exponent: 3,
        ..Spec::new("ca_e3", "/CN=e=3 CA", CA, None)
    });
    k.openssl(&[
        "pkey",
        "-in",
        "ca1024.key",
        "-pubout",
        "-out",
        "obmc1024.pub",
    ]);
    let obmc = std::fs::read_to_string(k.path("obmc1024.pub")).unwrap();
    let target = k.path("nothing.json");
    std::fs::write(&target, b"{}").unwrap();
    let policies = [
        (
            "openbmc RSA-1024",
            serde_json::json!({"id": "bmc", "type": "openbmc", "key_type": "OpenBMC", "pem": obmc}),
            "RSA-1024 key",
        ),
        (
            "x509 RSA-1024",
            serde_json::json!({"id": "ca", "type": "x509", "pem": std::fs::read_to_string(k.path("ca1024.pem")).unwrap()}),
            "RSA-1024 key",
        ),
        (
            "x509 e=3",
            serde_json::json!({"id": "ca", "type": "x509", "pem": std::fs::read_to_string(k.path("ca_e3.pem")).unwrap()}),
            "RSA public exponent 3",
        ),
    ];
    for (i, (case, entry, fragment)) in policies.into_iter().enumerate() {
        let d = k.path(&format!("p{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let policy = vendor_policy(&d, &[entry]);
        let (code, out, err) = fwscan(&[
            "verify",
            target.to_str().unwrap(),
            "--trust",
            policy.to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert_eq!(code, 2, "{case}: {out} {err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["code"], "trust-policy-invalid", "{case}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(fragment),
            "{case}: {v}"
        );
    }
}
