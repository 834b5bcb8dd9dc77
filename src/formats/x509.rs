//! X.509 certification paths for vendor signatures (issue 19): one validator, used by the UEFI capsule's
//! PKCS#7 chain check ([`super::capsule`]) and, for the keys alone, by the trust policy's vendor
//! certificates (`manifest::trust`). It lives on the `formats` floor because that is the lowest one
//! both may import.
//!
//! **The path.** `signer → intermediates → anchor`: each certificate is signed by the next one (issuer
//! name equal to the next subject, signature verified with its key), the intermediates come from the
//! PKCS#7 message, the anchor is one of the vendor certificates given. As EDK2's `Pkcs7Verify`, the
//! anchor need not be self-signed (a partial chain, `X509_V_FLAG_PARTIAL_CHAIN`) and may be the signer
//! itself (a pinned signer). Every candidate path up to [`MAX_DEPTH`] is tried; the first that passes
//! every rule wins; when none does, the reason the first complete path failed is reported.
//!
//! **The rules** (RFC 5280 §6.1, side by side with `openssl verify -auth_level 2`; tests/chains.rs runs
//! both on the same chains):
//!
//! | rule | applies to | openssl error |
//! |---|---|---|
//! | basicConstraints `CA=true` | every certificate that signs another on the path, the anchor included; not a pinned signer | 79 / 24 `invalid CA certificate` |
//! | keyUsage, **when present**, has `keyCertSign` | the same issuers | 32 `key usage does not include certificate signing` |
//! | pathLenConstraint: at most that many non-self-issued intermediates below | the same issuers | 25 `path length constraint exceeded` |
//! | signature hash SHA-256 or stronger (SHA-1, MD5, MD2 refused) | every signature on the path (the anchor's own is never checked) | 68 `CA signature digest algorithm too weak` |
//! | RSA modulus >= 2048 bits, exponent >= 65537 ([`rsa_key_strength`]) | every certificate on the path, the anchor included | 66 / 67 `key too weak` (openssl does not check the exponent) |
//! | extendedKeyUsage, when present, has `id-kp-codeSigning` or `anyExtendedKeyUsage` | the signer | (`-purpose codesign`, OpenSSL 3.2+) |
//! | `notBefore <= time <= notAfter` | every certificate on the path | 9 / 10 |
//! | no critical extension fwscan does not process (RFC 5280 §4.2) | every certificate on the path, the anchor included | 34 `unhandled critical extension` |
//! | no critical nameConstraints, policyConstraints, certificatePolicies, policyMappings or inhibitAnyPolicy: recognised, **not enforced, so refused** | the same | (openssl enforces them and may accept) |
//! | an X.509 v1 certificate (no extensions) issues only as the configured anchor itself, self-signed | every issuer | 79 `invalid CA certificate` for a v1 intermediate |
//!
//! *keyUsage.* The issue asked for `keyCertSign` on every issuer; RFC 5280 §4.2.1.3 makes keyUsage
//! optional and openssl accepts an issuer without the extension (`X509_check_ca` on basicConstraints
//! alone). fwscan does what openssl does: keyUsage absent is fine, keyUsage present without
//! `keyCertSign` is refused. Refusing the absent extension would call clean vendor chains made by tools
//! that omit it untrusted, with no gain: a certificate without keyUsage is unrestricted by its issuer's
//! intent. basicConstraints is required on every issuer, the trust anchor included when it signs the
//! next certificate, with one exception: a self-signed X.509 v1 certificate (v1 has no extensions) that
//! is the configured anchor itself. RFC 5280 §6.1 takes the trust anchor as an input of path validation,
//! not as a certificate to validate, and `openssl verify` accepts such a root (`X509_check_ca` treats a
//! self-signed v1 certificate as a CA). A v1 certificate anywhere else on the path (an intermediate from
//! the message, a v1 anchor that is not self-issued) issues nothing, as openssl says (error 79).
//!
//! *Critical extensions.* RFC 5280 §4.2 requires refusing a certificate with a critical extension the
//! validator does not recognise or cannot process. fwscan processes basicConstraints, keyUsage and
//! extendedKeyUsage, and reads subject/authority key identifiers and subject/issuer alternative names
//! (which constrain nothing here). It recognises the name and policy constraints but does not enforce
//! them; rather than ignore a constraint its issuer marked critical, it refuses the path (openssl
//! enforces them, so it may accept a path fwscan refuses; none of the vendor chains we know of marks
//! them critical). Non-critical extensions are ignored, as the RFC allows.
//!
//! *EKU and time.* EDK2 checks neither: it verifies capsules with `X509_V_FLAG_NO_CHECK_TIME` (firmware
//! has no trusted clock, and a capsule outlives its signing certificate) and requires no code-signing
//! EKU (its own test signer, `TestCert`, has `clientAuth, emailProtection` and expired in 2018). fwscan
//! checks both by default; a vendor certificate's [`Rules`] (`"eku": "any"`, `"validity": "ignore"` in
//! the trust policy, `--capsule-cert-eku any` / `--capsule-cert-validity ignore` on the command line)
//! turn either off for paths that end at that certificate. Validity is evaluated at the scan's time
//! (`verify --at TIME`, otherwise the clock).
//!
//! A path that breaks a rule is `vendor-untrusted`, or `vendor-key-weak` for a weak key, with a message
//! that names the certificate and the rule ([`PathError`]). Certificate signatures verified: RSA PKCS#1
//! v1.5 (SHA-256/384/512), ECDSA over P-256 or P-384 (SHA-256/384/512) and Ed25519; any other algorithm
//! links nothing.
#![deny(clippy::arithmetic_side_effects)]

use std::time::SystemTime;

use x509_cert::der::oid::db::rfc5280::{ANY_EXTENDED_KEY_USAGE, ID_KP_CODE_SIGNING};
use x509_cert::der::Encode;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use x509_cert::Certificate;

use super::keys::{Eku, Rules, Validity};
use crate::finding::Code;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Smallest RSA public exponent accepted.
pub const MIN_RSA_EXPONENT: u32 = 65537;
/// Most certificates on one path (signer and anchor included).
pub const MAX_DEPTH: usize = 8;
/// Most signature checks one path search may do (a message may carry 64 certificates that all claim
/// the same names).
const MAX_LINK_CHECKS: usize = 512;
/// Most partial paths one search may visit.
const MAX_VISITS: usize = 4096;

/// Why an RSA key is too weak to be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakKey {
    #[error("RSA-{bits} key: at least {MIN_RSA_BITS} bits are required")]
    ShortModulus { bits: usize },
    #[error("RSA public exponent {exponent}: at least {MIN_RSA_EXPONENT} is required")]
    SmallExponent { exponent: String },
}

/// Refuses RSA keys under [`MIN_RSA_BITS`] bits or with a public exponent below [`MIN_RSA_EXPONENT`]
/// (finding `vendor-key-weak`, or `trust-policy-invalid` for a policy key). The one rule for every RSA
/// vendor key: capsule certificates, trust-policy vendor keys, OpenBMC keys.
pub fn rsa_key_strength(key: &rsa::RsaPublicKey) -> Result<(), WeakKey> {
    use rsa::traits::PublicKeyParts;
    let bits = key.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(WeakKey::ShortModulus { bits });
    }
    if *key.e() < rsa::BigUint::from(MIN_RSA_EXPONENT) {
        return Err(WeakKey::SmallExponent {
            exponent: key.e().to_string(),
        });
    }
    Ok(())
}

/// Why a path is refused: the certificate and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("issuer `{subject}` is not a CA (basicConstraints CA=false)")]
    NotCa { subject: String },
    #[error("issuer `{subject}` is not a CA (no basicConstraints extension)")]
    NoBasicConstraints { subject: String },
    #[error("issuer `{subject}` may not sign certificates (keyUsage lacks keyCertSign)")]
    NoKeyCertSign { subject: String },
    #[error("issuer `{subject}` allows {allowed} intermediate CA(s) below it (pathLenConstraint), the path has {found}")]
    PathLength {
        subject: String,
        allowed: u8,
        found: usize,
    },
    #[error("`{subject}` is signed with {algorithm}: SHA-256 or stronger is required")]
    WeakSignature { subject: String, algorithm: String },
    #[error("`{subject}`: {weak}")]
    WeakKey { subject: String, weak: WeakKey },
    #[error("signer `{subject}`: extendedKeyUsage does not allow code signing (id-kp-codeSigning); a vendor certificate with \"eku\": \"any\" accepts it")]
    Eku { subject: String },
    #[error("`{subject}` expired at {not_after} (evaluated at {at})")]
    Expired {
        subject: String,
        not_after: String,
        at: String,
    },
    #[error("`{subject}` is not valid before {not_before} (evaluated at {at})")]
    NotYetValid {
        subject: String,
        not_before: String,
        at: String,
    },
    #[error("`{subject}` carries a critical extension {oid} that fwscan does not process (RFC 5280 §4.2: refused)")]
    UnknownCriticalExtension { subject: String, oid: String },
    #[error(
        "`{subject}` carries a critical {what} extension, which fwscan does not enforce: refused"
    )]
    UnenforcedConstraint { subject: String, what: &'static str },
    #[error("issuer `{subject}` is an X.509 v1 certificate: only a self-signed v1 certificate given as the vendor certificate itself may issue")]
    V1Issuer { subject: String },
    #[error("`{subject}`: {what} extension is malformed or repeated")]
    Malformed { subject: String, what: &'static str },
    #[error("signer `{subject}` (issuer `{issuer}`) chains to none of the {given} vendor certificate(s) given")]
    NoPath {
        subject: String,
        issuer: String,
        given: usize,
    },
}

impl PathError {
    /// The finding code: `vendor-key-weak` for a weak key, otherwise `vendor-untrusted`.
    pub fn code(&self) -> Code {
        match self {
            PathError::WeakKey { .. } => Code::VendorKeyWeak,
            _ => Code::VendorUntrusted,
        }
    }
}

/// A path that passed: the anchor's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub anchor: String,
}

fn name(c: &Certificate) -> String {
    c.tbs_certificate.subject.to_string()
}

/// The RSA public key of `cert`, `None` when it is not RSA.
pub fn rsa_key(cert: &Certificate) -> Option<rsa::RsaPublicKey> {
    use rsa::pkcs8::DecodePublicKey;
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().ok()?;
    rsa::RsaPublicKey::from_public_key_der(&spki).ok()
}

/// The strength rule for a certificate's key (non-RSA keys are not judged here: they verify nothing).
pub fn check_key(cert: &Certificate) -> Result<(), PathError> {
    match rsa_key(cert) {
        Some(k) => rsa_key_strength(&k).map_err(|weak| PathError::WeakKey {
            subject: name(cert),
            weak,
        }),
        None => Ok(()),
    }
}

/// The hash of an RSA PKCS#1 v1.5 signature or CMS digest algorithm OID: `Ok` for SHA-256/384/512,
/// `Err(name)` for a hash refused as too weak, `None` for anything else.
pub fn hash_of(oid: &str) -> Option<Result<&'static str, &'static str>> {
    match oid {
        "2.16.840.1.101.3.4.2.1" | "1.2.840.113549.1.1.11" => Some(Ok("SHA256")),
        "2.16.840.1.101.3.4.2.2" | "1.2.840.113549.1.1.12" => Some(Ok("SHA384")),
        "2.16.840.1.101.3.4.2.3" | "1.2.840.113549.1.1.13" => Some(Ok("SHA512")),
        // id-sha1, sha1WithRSAEncryption, ecdsa-with-SHA1, dsa-with-sha1
        "1.3.14.3.2.26" | "1.2.840.113549.1.1.5" | "1.2.840.10045.4.1" | "1.2.840.10040.4.3" => {
            Some(Err("SHA-1"))
        }
        // md5, md5WithRSAEncryption, md2WithRSAEncryption
        "1.2.840.113549.2.5" | "1.2.840.113549.1.1.4" | "1.2.840.113549.1.1.2" => {
            Some(Err("MD5/MD2"))
        }
        _ => None,
    }
}

/// How `cert` is linked to a candidate issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Not its issuer (names differ, or the signature does not verify).
    None,
    /// Signature verified with a strong hash.
    Ok,
    /// Names match, signed with a refused hash (not verified: the path is refused anyway).
    Weak(&'static str),
}

fn link(cert: &Certificate, issuer: &Certificate) -> Link {
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Link::None;
    }
    let oid = cert.signature_algorithm.oid.to_string();
    if let Some(ok) = ec_link(&oid, cert, issuer) {
        return if ok { Link::Ok } else { Link::None };
    }
    let h = match hash_of(&oid) {
        Some(Ok(h)) => h,
        Some(Err(weak)) => return Link::Weak(weak),
        None => return Link::None,
    };
    let (Some(key), Ok(tbs), Some(sig)) = (
        rsa_key(issuer),
        cert.tbs_certificate.to_der(),
        cert.signature.as_bytes(),
    ) else {
        return Link::None;
    };
    match crate::formats::obmc_tar::verify_rsa(&key, h, &tbs, sig) {
        Ok(true) => Link::Ok,
        _ => Link::None,
    }
}

/// An ECDSA (SHA-256/384/512 over a P-256 or P-384 issuer key) or Ed25519 certificate signature:
/// `Some(verified)` for those algorithms, `None` for any other (RSA, or a refused hash, is [`hash_of`]'s).
fn ec_link(oid: &str, cert: &Certificate, issuer: &Certificate) -> Option<bool> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::pkcs8::DecodePublicKey;
    use sha2::Digest;
    let digest = match oid {
        "1.2.840.10045.4.3.2" => sha2::Sha256::digest(tbs_der(cert)?).to_vec(),
        "1.2.840.10045.4.3.3" => sha2::Sha384::digest(tbs_der(cert)?).to_vec(),
        "1.2.840.10045.4.3.4" => sha2::Sha512::digest(tbs_der(cert)?).to_vec(),
        "1.3.101.112" => {
            let (Ok(key), Some(tbs), Some(sig)) = (
                ed25519_dalek::VerifyingKey::from_public_key_der(&spki_der(issuer)?),
                tbs_der(cert),
                cert.signature.as_bytes(),
            ) else {
                return Some(false);
            };
            return Some(
                ed25519_dalek::Signature::from_slice(sig)
                    .is_ok_and(|s| key.verify_strict(&tbs, &s).is_ok()),
            );
        }
        _ => return None,
    };
    let (Some(spki), Some(sig)) = (spki_der(issuer), cert.signature.as_bytes()) else {
        return Some(false);
    };
    if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(&spki) {
        return Some(
            p256::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
        );
    }
    if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_der(&spki) {
        return Some(
            p384::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
        );
    }
    Some(false)
}

fn tbs_der(c: &Certificate) -> Option<Vec<u8>> {
    c.tbs_certificate.to_der().ok()
}

fn spki_der(c: &Certificate) -> Option<Vec<u8>> {
    c.tbs_certificate.subject_public_key_info.to_der().ok()
}

/// Extensions the path rules process or read (RFC 5280 §4.2.1): basicConstraints, keyUsage,
/// extendedKeyUsage, subject and authority key identifiers, subject and issuer alternative names.
const PROCESSED_EXTENSIONS: [&str; 7] = [
    "2.5.29.19",
    "2.5.29.15",
    "2.5.29.37",
    "2.5.29.14",
    "2.5.29.35",
    "2.5.29.17",
    "2.5.29.18",
];

/// Extensions fwscan recognises but does not enforce: a path with one of them marked critical is refused.
const UNENFORCED_EXTENSIONS: [(&str, &str); 5] = [
    ("2.5.29.30", "nameConstraints"),
    ("2.5.29.36", "policyConstraints"),
    ("2.5.29.32", "certificatePolicies"),
    ("2.5.29.33", "policyMappings"),
    ("2.5.29.54", "inhibitAnyPolicy"),
];

/// RFC 5280 §4.2: refuses `c` if it carries a critical extension that the rules do not process.
fn check_critical(c: &Certificate) -> Result<(), PathError> {
    for e in c.tbs_certificate.extensions.iter().flatten() {
        if !e.critical {
            continue;
        }
        let oid = e.extn_id.to_string();
        if PROCESSED_EXTENSIONS.contains(&oid.as_str()) {
            continue;
        }
        if let Some((_, what)) = UNENFORCED_EXTENSIONS.iter().find(|(o, _)| *o == oid) {
            return Err(PathError::UnenforcedConstraint {
                subject: name(c),
                what,
            });
        }
        return Err(PathError::UnknownCriticalExtension {
            subject: name(c),
            oid,
        });
    }
    Ok(())
}

/// A self-signed X.509 v1 certificate: version 1, no extensions, issuer name equal to its subject. As
/// openssl (`X509_check_ca`), the names decide; the anchor's own signature is not what makes it trusted.
fn self_signed_v1(c: &Certificate) -> bool {
    let tbs = &c.tbs_certificate;
    tbs.version == x509_cert::Version::V1 && tbs.extensions.is_none() && tbs.subject == tbs.issuer
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Checks one complete path `certs[0]` (signer) … `certs[last]` (anchor), where `links[i]` links
/// `certs[i]` to `certs[i + 1]`.
fn check_path(
    certs: &[&Certificate],
    links: &[Link],
    rules: Rules,
    at: SystemTime,
) -> Result<(), PathError> {
    for c in certs {
        check_key(c)?;
    }
    for (c, l) in certs.iter().zip(links) {
        if let Link::Weak(algorithm) = l {
            return Err(PathError::WeakSignature {
                subject: name(c),
                algorithm: (*algorithm).into(),
            });
        }
    }
    for c in certs {
        check_critical(c)?;
    }
    // Every certificate that signs another: CA, keyCertSign, pathLenConstraint.
    let mut intermediates_below = 0usize;
    let anchor_at = certs.len().saturating_sub(1);
    for (i, issuer) in certs.iter().enumerate().skip(1) {
        let subject = name(issuer);
        let malformed = |what| PathError::Malformed {
            subject: subject.clone(),
            what,
        };
        let tbs = &issuer.tbs_certificate;
        // RFC 5280 §6.1: the trust anchor is an input; a self-signed v1 root given as the vendor
        // certificate is one (it has no extensions to check).
        if i == anchor_at && self_signed_v1(issuer) {
            continue;
        }
        match tbs
            .get::<BasicConstraints>()
            .map_err(|_| malformed("basicConstraints"))?
        {
            None if tbs.version == x509_cert::Version::V1 => {
                return Err(PathError::V1Issuer { subject })
            }
            None => return Err(PathError::NoBasicConstraints { subject }),
            Some((_, bc)) if !bc.ca => return Err(PathError::NotCa { subject }),
            Some((_, bc)) => {
                if let Some(allowed) = bc.path_len_constraint {
                    if intermediates_below > usize::from(allowed) {
                        return Err(PathError::PathLength {
                            subject,
                            allowed,
                            found: intermediates_below,
                        });
                    }
                }
            }
        }
        if let Some((_, ku)) = tbs.get::<KeyUsage>().map_err(|_| malformed("keyUsage"))? {
            if !ku.key_cert_sign() {
                return Err(PathError::NoKeyCertSign { subject });
            }
        }
        // This issuer counts as an intermediate for the ones above it unless self-issued (RFC 5280
        // §6.1.4 (l)).
        if tbs.subject != tbs.issuer {
            intermediates_below = intermediates_below.saturating_add(1);
        }
    }
    if let (Some(signer), Eku::CodeSigning) = (certs.first(), rules.eku) {
        if let Some((_, eku)) = signer
            .tbs_certificate
            .get::<ExtendedKeyUsage>()
            .map_err(|_| PathError::Malformed {
                subject: name(signer),
                what: "extendedKeyUsage",
            })?
        {
            if !eku
                .0
                .iter()
                .any(|o| *o == ID_KP_CODE_SIGNING || *o == ANY_EXTENDED_KEY_USAGE)
            {
                return Err(PathError::Eku {
                    subject: name(signer),
                });
            }
        }
    }
    if rules.validity == Validity::Check {
        for c in certs {
            let v = &c.tbs_certificate.validity;
            let (nb, na) = (v.not_before.to_system_time(), v.not_after.to_system_time());
            if at < nb {
                return Err(PathError::NotYetValid {
                    subject: name(c),
                    not_before: rfc3339(nb),
                    at: rfc3339(at),
                });
            }
            if at > na {
                return Err(PathError::Expired {
                    subject: name(c),
                    not_after: rfc3339(na),
                    at: rfc3339(at),
                });
            }
        }
    }
    Ok(())
}

struct Search<'a> {
    pool: &'a [Certificate],
    anchors: &'a [(Certificate, Rules)],
    at: SystemTime,
    link_checks: usize,
    visits: usize,
    first_error: Option<PathError>,
}

impl<'a> Search<'a> {
    fn link(&mut self, cert: &Certificate, issuer: &Certificate) -> Link {
        if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject
            || self.link_checks >= MAX_LINK_CHECKS
        {
            return Link::None;
        }
        self.link_checks = self.link_checks.saturating_add(1);
        link(cert, issuer)
    }

    /// Tries a complete path; `Some` when it passes.
    fn complete(
        &mut self,
        certs: &[&Certificate],
        links: &[Link],
        rules: Rules,
        anchor: &Certificate,
    ) -> Option<Validated> {
        match check_path(certs, links, rules, self.at) {
            Ok(()) => Some(Validated {
                anchor: name(anchor),
            }),
            Err(e) => {
                self.first_error.get_or_insert(e);
                None
            }
        }
    }

    /// Extends the path `certs` (whose last certificate is not yet an anchor) upwards.
    fn extend(
        &mut self,
        certs: &mut Vec<&'a Certificate>,
        links: &mut Vec<Link>,
    ) -> Option<Validated> {
        self.visits = self.visits.saturating_add(1);
        if self.visits > MAX_VISITS {
            return None;
        }
        let top = *certs.last()?;
        let anchors = self.anchors;
        // The top is itself a vendor certificate (the signer pinned, or a partial chain).
        for (a, rules) in anchors {
            if a == top {
                if let Some(v) = self.complete(certs, links, *rules, a) {
                    return Some(v);
                }
            }
        }
        if certs.len() >= MAX_DEPTH {
            return None;
        }
        // A vendor certificate signs the top.
        for (a, rules) in anchors {
            if a == top {
                continue;
            }
            let l = self.link(top, a);
            if l != Link::None {
                certs.push(a);
                links.push(l);
                let r = self.complete(certs, links, *rules, a);
                certs.pop();
                links.pop();
                if r.is_some() {
                    return r;
                }
            }
        }
        // A certificate of the message signs the top.
        let pool = self.pool;
        for p in pool {
            if certs.contains(&p) {
                continue;
            }
            let l = self.link(top, p);
            if l != Link::None {
                certs.push(p);
                links.push(l);
                let r = self.extend(certs, links);
                certs.pop();
                links.pop();
                if r.is_some() {
                    return r;
                }
            }
        }
        None
    }
}

/// Finds a path from `signer` through certificates of `pool` to one of `anchors` that satisfies every
/// rule of the module documentation at time `at`.
pub fn validate<'a>(
    signer: &'a Certificate,
    pool: &'a [Certificate],
    anchors: &'a [(Certificate, Rules)],
    at: SystemTime,
) -> Result<Validated, PathError> {
    let mut s = Search {
        pool,
        anchors,
        at,
        link_checks: 0,
        visits: 0,
        first_error: None,
    };
    let mut certs = vec![signer];
    let mut links = Vec::new();
    if let Some(v) = s.extend(&mut certs, &mut links) {
        return Ok(v);
    }
    Err(s.first_error.unwrap_or_else(|| PathError::NoPath {
        subject: name(signer),
        issuer: signer.tbs_certificate.issuer.to_string(),
        given: anchors.len(),
    }))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};
    use x509_cert::der::DecodePem;

    /// testdata/x509 (made by its make.sh on 2026-12-07, valid for 100 years).
    fn cert(name: &str) -> Certificate {
        let pem = match name {
            "root" => include_str!("../../testdata/x509/root.pem"),
            "inter" => include_str!("../../testdata/x509/inter.pem"),
            "leaf" => include_str!("../../testdata/x509/leaf.pem"),
            "tls" => include_str!("../../testdata/x509/tls.pem"),
            _ => include_str!("../../testdata/x509/via-tls.pem"),
        };
        Certificate::from_pem(pem.as_bytes()).unwrap()
    }

    /// 2030-01-01, inside every fixture's validity.
    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_893_456_000)
    }

    fn anchor(name: &str) -> Vec<(Certificate, Rules)> {
        vec![(cert(name), Rules::default())]
    }

    #[test]
    fn key_strength_refuses_short_moduli_and_small_exponents() {
        let n = |bits: usize| (rsa::BigUint::from(1u8) << (bits - 1)) + rsa::BigUint::from(1u8);
        let key = |bits, e: u32| rsa::RsaPublicKey::new(n(bits), rsa::BigUint::from(e)).unwrap();
        assert_eq!(rsa_key_strength(&key(2048, 65537)), Ok(()));
        assert_eq!(rsa_key_strength(&key(4096, 65537)), Ok(()));
        assert_eq!(
            rsa_key_strength(&key(1024, 65537)),
            Err(WeakKey::ShortModulus { bits: 1024 })
        );
        assert_eq!(
            rsa_key_strength(&key(2047, 65537)),
            Err(WeakKey::ShortModulus { bits: 2047 })
        );
        assert_eq!(
            rsa_key_strength(&key(2048, 3)),
            Err(WeakKey::SmallExponent {
                exponent: "3".into()
            })
        );
        assert!(rsa_key_strength(&key(2048, 65535)).is_err());
    }

    #[test]
    fn weak_hashes_are_named_not_unknown() {
        assert_eq!(hash_of("1.2.840.113549.1.1.11"), Some(Ok("SHA256")));
        assert_eq!(hash_of("1.2.840.113549.1.1.5"), Some(Err("SHA-1")));
        assert_eq!(hash_of("1.3.14.3.2.26"), Some(Err("SHA-1")));
        assert_eq!(hash_of("1.2.840.113549.1.1.4"), Some(Err("MD5/MD2")));
        assert_eq!(hash_of("1.2.3"), None);
    }

    #[test]
    fn a_full_chain_a_partial_chain_and_a_pinned_signer_are_valid() {
        let pool = [cert("inter")];
        for a in ["root", "inter", "leaf"] {
            let v = validate(&cert("leaf"), &pool, &anchor(a), at());
            assert_eq!(
                v.map(|v| v.anchor),
                Ok(cert(a).tbs_certificate.subject.to_string()),
                "anchor {a}"
            );
        }
        // Without the intermediate in the message there is no path to the root.
        assert!(matches!(
            validate(&cert("leaf"), &[], &anchor("root"), at()),
            Err(PathError::NoPath { given: 1, .. })
        ));
        // Nor to an unrelated certificate.
        assert!(matches!(
            validate(&cert("leaf"), &pool, &anchor("tls"), at()),
            Err(PathError::NoPath { .. })
        ));
    }

    #[test]
    fn a_tls_server_certificate_issues_nothing() {
        let e = validate(&cert("via-tls"), &[cert("tls")], &anchor("root"), at()).unwrap_err();
        assert_eq!(
            e,
            PathError::NotCa {
                subject: "CN=tls.fixture.example".into()
            }
        );
        assert_eq!(e.code(), Code::VendorUntrusted);
        assert_eq!(
            e.to_string(),
            "issuer `CN=tls.fixture.example` is not a CA (basicConstraints CA=false)"
        );
        // Pinned as the anchor, it still signs the next certificate: refused too.
        assert!(matches!(
            validate(&cert("via-tls"), &[], &anchor("tls"), at()),
            Err(PathError::NotCa { .. })
        ));
    }

    #[test]
    fn validity_is_checked_at_the_time_given_unless_ignored() {
        let pool = [cert("inter")];
        let late = UNIX_EPOCH + Duration::from_secs(5_000_000_000); // 2128
        let early = UNIX_EPOCH + Duration::from_secs(1_700_000_000); // 2023
        assert!(matches!(
            validate(&cert("leaf"), &pool, &anchor("root"), late),
            Err(PathError::Expired { .. })
        ));
        assert!(matches!(
            validate(&cert("leaf"), &pool, &anchor("root"), early),
            Err(PathError::NotYetValid { .. })
        ));
        let ignore = vec![(
            cert("root"),
            Rules {
                validity: Validity::Ignore,
                ..Rules::default()
            },
        )];
        assert!(validate(&cert("leaf"), &pool, &ignore, late).is_ok());
    }

    #[test]
    fn the_signer_eku_must_allow_code_signing_unless_the_anchor_says_any() {
        // The TLS certificate as a pinned signer: EKU serverAuth only.
        let any = vec![(
            cert("tls"),
            Rules {
                eku: Eku::Any,
                ..Rules::default()
            },
        )];
        assert!(validate(&cert("tls"), &[], &any, at()).is_ok());
        // Under the default rule the pinned signer's serverAuth-only EKU is refused.
        assert!(matches!(
            validate(&cert("tls"), &[], &anchor("tls"), at()),
            Err(PathError::Eku { .. })
        ));
    }

    #[test]
    fn many_look_alike_certificates_are_a_bounded_search() {
        // 64 copies of the intermediate: the search stays within its budgets and still finds the path.
        let pool: Vec<Certificate> = (0..64).map(|_| cert("inter")).collect();
        assert!(validate(&cert("leaf"), &pool, &anchor("root"), at()).is_ok());
        let pool: Vec<Certificate> = (0..64).map(|_| cert("tls")).collect();
        assert!(validate(&cert("via-tls"), &pool, &anchor("root"), at()).is_err());
    }
}
