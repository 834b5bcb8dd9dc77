//! `cose` trust-policy keys that are X.509 certificates (issue 24): a CA the CoRIM signer's certificate
//! chain must lead to, or the signer's own certificate pinned.
//!
//! The signer carries its chain in the COSE `x5chain` header (label 33, RFC 9360): one bstr or an array
//! of bstr DER certificates, leaf first, in the protected or the unprotected header (an unprotected chain
//! is as good as a protected one: it is validated, never trusted by itself). The **anchor comes from the
//! policy only**; a root certificate the CoRIM carries is just another certificate of the pool.
//!
//! A signature verifies under a policy certificate `A` when either
//! * `A`'s own key verifies it (a pinned certificate): `A` must be valid at the evaluation time (now or
//!   `--at`) and, when it has keyUsage, allow digitalSignature; or
//! * the x5chain's leaf key verifies it, and the leaf chains to `A` through the x5chain's other
//!   certificates by the rules of [`crate::formats::x509`] (each certificate signed by the next, ECDSA
//!   P-256/P-384, Ed25519 or RSA PKCS#1 v1.5 with SHA-256 or stronger; basicConstraints CA=true and
//!   keyUsage keyCertSign when present on every issuer, the anchor included; pathLenConstraint; every
//!   certificate valid at the evaluation time; no unprocessed critical extension; RSA keys of 2048 bits
//!   or more; at most [`x509::MAX_DEPTH`] certificates on the path), and the leaf's keyUsage, when
//!   present, allows digitalSignature. extendedKeyUsage is not required (CoRIM names no purpose).
//!
//! Refusals reuse the manifest trust codes: a certificate out of its validity is `manifest-expired` /
//! `manifest-not-yet-valid`, a chain that does not lead to the anchor or breaks a rule is
//! `manifest-untrusted-key`, a leaf whose key does not verify the signature is
//! `manifest-signature-invalid`, an x5chain that is not DER certificates is `manifest-invalid`. Each
//! message names the certificate and the reason.

use std::time::SystemTime;

use x509_cert::der::{Decode, DecodePem, Encode};
use x509_cert::ext::pkix::KeyUsage;
use x509_cert::Certificate;

use super::cbor::{self, Value};
use super::cose::{KeyError, VerifyingKey};
use super::{CorimError, Signature};
use crate::finding::Code;
use crate::formats::keys::{Eku, Rules, Validity};
use crate::formats::x509::{self, PathError};

/// COSE header label of `x5chain` (RFC 9360).
pub const X5CHAIN_LABEL: i128 = 33;
/// Most certificates an x5chain may carry (the longest path [`x509::validate`] builds).
pub const MAX_X5CHAIN: usize = x509::MAX_DEPTH;

/// The `x5chain` of a signer: the first of the protected headers (encoded maps, empty ones skipped) and
/// then the unprotected headers that carries label 33. Empty when none does.
pub fn x5chain_of(protected: &[&[u8]], unprotected: &[&Value]) -> Result<Vec<Vec<u8>>, CorimError> {
    let mut found = None;
    for p in protected.iter().filter(|p| !p.is_empty()) {
        let h = cbor::decode(p).map_err(|e| CorimError {
            message: format!("COSE protected header: {e}"),
        })?;
        if let Some(v) = h.get(X5CHAIN_LABEL) {
            found = Some(v.clone());
            break;
        }
    }
    if found.is_none() {
        found = unprotected
            .iter()
            .find_map(|h| h.get(X5CHAIN_LABEL))
            .cloned();
    }
    let Some(v) = found else {
        return Ok(Vec::new());
    };
    let certs: Vec<Vec<u8>> = match &v {
        Value::Bytes(b) => vec![b.clone()],
        Value::Array(a) if !a.is_empty() && a.len() <= MAX_X5CHAIN => a
            .iter()
            .map(|c| c.as_bytes().map(<[u8]>::to_vec))
            .collect::<Option<_>>()
            .ok_or_else(|| CorimError {
                message: "COSE x5chain (33): an array item is not a bstr".into(),
            })?,
        Value::Array(a) => {
            return Err(CorimError {
                message: format!(
                    "COSE x5chain (33): {} certificates (1 to {MAX_X5CHAIN} are read)",
                    a.len()
                ),
            })
        }
        o => {
            return Err(CorimError {
                message: format!(
                    "COSE x5chain (33) is a {}, not a bstr or an array of bstr",
                    o.type_name()
                ),
            })
        }
    };
    Ok(certs)
}

/// A `cose` key of the trust policy: a public key, or a certificate (CA or pinned signer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoseKey {
    Key(VerifyingKey),
    Cert(Box<Certificate>),
}

/// Why a signature does not verify under a policy certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    pub message: String,
}

fn refusal(code: Code, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

fn subject(c: &Certificate) -> String {
    c.tbs_certificate.subject.to_string()
}

impl CoseKey {
    /// `BEGIN PUBLIC KEY` (P-256, P-384, P-521, Ed25519) or `BEGIN CERTIFICATE` whose key is one of those
    /// or RSA of at least 2048 bits (an RSA CA may issue an EC leaf).
    pub fn from_pem(pem: &str) -> Result<CoseKey, KeyError> {
        if !pem.contains("BEGIN CERTIFICATE") {
            return VerifyingKey::from_pem(pem).map(CoseKey::Key);
        }
        let c = Certificate::from_pem(pem.as_bytes())
            .map_err(|e| KeyError::NotCertificate(e.to_string()))?;
        x509::check_key(&c).map_err(|e| KeyError::Certificate(e.to_string()))?;
        let spki = c
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| KeyError::Certificate(e.to_string()))?;
        if VerifyingKey::from_der(&spki).is_err() && x509::rsa_key(&c).is_none() {
            return Err(KeyError::CertificateKey(subject(&c)));
        }
        Ok(CoseKey::Cert(Box::new(c)))
    }

    /// Does signature `s` verify under this key at time `at`? `Ok(Some(signer))` names the certificate
    /// that signed (a chain's leaf or the pinned certificate); `Err(None)` is a public key that does not
    /// verify it; `Err(Some(r))` says why a certificate does not vouch for it.
    pub fn verify(&self, s: &Signature, at: SystemTime) -> Result<Option<String>, Option<Refusal>> {
        match self {
            CoseKey::Key(k) => {
                if k.verify(s.alg, &s.tbs, &s.sig) {
                    Ok(None)
                } else {
                    Err(None)
                }
            }
            CoseKey::Cert(a) => verify_cert(a, s, at).map(Some).map_err(Some),
        }
    }
}

fn key_of(c: &Certificate) -> Option<VerifyingKey> {
    VerifyingKey::from_der(&c.tbs_certificate.subject_public_key_info.to_der().ok()?).ok()
}

/// keyUsage, when present, must allow digitalSignature.
fn digital_signature(c: &Certificate) -> Result<(), Refusal> {
    match c.tbs_certificate.get::<KeyUsage>() {
        Err(_) => Err(refusal(
            Code::ManifestUntrustedKey,
            format!("certificate `{}`: keyUsage is malformed", subject(c)),
        )),
        Ok(Some((_, ku))) if !ku.digital_signature() => Err(refusal(
            Code::ManifestUntrustedKey,
            format!(
                "certificate `{}` may not sign data (keyUsage lacks digitalSignature)",
                subject(c)
            ),
        )),
        Ok(_) => Ok(()),
    }
}

fn path_refusal(e: PathError) -> Refusal {
    let code = match e {
        PathError::Expired { .. } => Code::ManifestExpired,
        PathError::NotYetValid { .. } => Code::ManifestNotYetValid,
        _ => Code::ManifestUntrustedKey,
    };
    refusal(code, format!("x5chain: {e}"))
}

fn verify_cert(anchor: &Certificate, s: &Signature, at: SystemTime) -> Result<String, Refusal> {
    let rules = Rules {
        eku: Eku::Any,
        validity: Validity::Check,
    };
    let anchors = [(anchor.clone(), rules)];
    // The policy's certificate is the signer's own (pinned).
    if key_of(anchor).is_some_and(|k| k.verify(s.alg, &s.tbs, &s.sig)) {
        x509::validate(anchor, &[], &anchors, at).map_err(path_refusal)?;
        digital_signature(anchor)?;
        return Ok(subject(anchor));
    }
    if s.x5chain.is_empty() {
        return Err(refusal(
            Code::ManifestUntrustedKey,
            format!(
                "the COSE signer carries no x5chain (header 33) and its signature does not verify with certificate `{}` of the trust policy itself",
                subject(anchor)
            ),
        ));
    }
    let certs: Vec<Certificate> = s
        .x5chain
        .iter()
        .enumerate()
        .map(|(i, der)| {
            Certificate::from_der(der).map_err(|e| {
                refusal(
                    Code::ManifestInvalid,
                    format!("x5chain certificate {i} is not a DER X.509 certificate: {e}"),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let (leaf, pool) = certs
        .split_first()
        .ok_or_else(|| refusal(Code::ManifestInvalid, "x5chain is empty"))?;
    match key_of(leaf) {
        None => {
            return Err(refusal(
                Code::ManifestUntrustedKey,
                format!(
                    "x5chain leaf `{}`: a key COSE verification here does not support (P-256, P-384, P-521, Ed25519)",
                    subject(leaf)
                ),
            ))
        }
        Some(k) if !k.verify(s.alg, &s.tbs, &s.sig) => {
            return Err(refusal(
                Code::ManifestSignatureInvalid,
                format!(
                    "the COSE signature ({}) does not verify with the key of x5chain leaf `{}` (modified after signing, or not signed by that certificate)",
                    super::cose::alg_name(s.alg),
                    subject(leaf)
                ),
            ))
        }
        Some(_) => {}
    }
    x509::validate(leaf, pool, &anchors, at).map_err(path_refusal)?;
    digital_signature(leaf)?;
    Ok(subject(leaf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prot(v: Value) -> Vec<u8> {
        cbor::encode(&Value::Map(vec![(Value::Uint(33), v)]))
    }

    #[test]
    fn x5chain_is_one_bstr_or_a_bounded_array_of_bstr() {
        let empty = Value::Map(Vec::new());
        assert_eq!(x5chain_of(&[], &[&empty]).unwrap(), Vec::<Vec<u8>>::new());
        let one = prot(Value::Bytes(vec![1, 2]));
        assert_eq!(x5chain_of(&[&one], &[&empty]).unwrap(), vec![vec![1, 2]]);
        // Unprotected when the protected header has none; protected first.
        let unprot = Value::Map(vec![(
            Value::Uint(33),
            Value::Array(vec![Value::Bytes(vec![3]), Value::Bytes(vec![4])]),
        )]);
        assert_eq!(
            x5chain_of(&[&[0xa0]], &[&unprot]).unwrap(),
            vec![vec![3], vec![4]]
        );
        assert_eq!(x5chain_of(&[&one], &[&unprot]).unwrap(), vec![vec![1, 2]]);
        let long = prot(Value::Array(vec![Value::Bytes(vec![0]); MAX_X5CHAIN + 1]));
        assert!(x5chain_of(&[&long], &[])
            .unwrap_err()
            .message
            .contains("certificates"));
        let text = prot(Value::Array(vec![Value::text("x")]));
        assert!(x5chain_of(&[&text], &[]).is_err());
        assert!(x5chain_of(&[&prot(Value::Uint(1))], &[]).is_err());
        assert!(x5chain_of(&[&prot(Value::Array(Vec::new()))], &[]).is_err());
    }

    #[test]
    fn certificates_and_public_keys_are_cose_keys() {
        let k = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let pem = {
            use p256::pkcs8::EncodePublicKey;
            k.public_key()
                .to_public_key_pem(p256::pkcs8::LineEnding::LF)
                .unwrap()
        };
        assert!(matches!(CoseKey::from_pem(&pem), Ok(CoseKey::Key(_))));
        let cert = include_str!("../../../testdata/x509/root.pem");
        assert!(matches!(CoseKey::from_pem(cert), Ok(CoseKey::Cert(_))));
        assert!(CoseKey::from_pem(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        .is_err());
    }
}
