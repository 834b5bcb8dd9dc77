//! COSE (RFC 9052) signatures of CoRIMs: `COSE_Sign1` (`#6.18`) written and read, `COSE_Sign` (`#6.98`,
//! several signers) read. Algorithms: ES256 (-7, P-256 + SHA-256), ES384 (-35, P-384 + SHA-384) and EdDSA
//! (-8, Ed25519), with RustCrypto's `p256`/`p384` (RFC 6979 deterministic nonces, so a signature is a
//! function of key and message) and `ed25519-dalek` (strict verification); ES512 (-36, P-521 + SHA-512,
//! `p521`) is verified only (OCP S.A.F.E. reviewers sign with P-521).
//!
//! `coset` was not taken: it builds on `ciborium`, whose decoder accepts what a signed CoRIM must not
//! (indefinite lengths, duplicate keys) and whose encoder does not sort map keys; the two structures
//! fwscan needs (`Sig_structure` and the four-element message) are a few lines over [`super::cbor`].

use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};

use super::cbor::{self, Value};

pub const ALG_ES256: i64 = -7;
pub const ALG_ES384: i64 = -35;
pub const ALG_EDDSA: i64 = -8;
pub const ALG_ES512: i64 = -36;
/// A signer that names no `alg` (COSE's reserved 0, never an algorithm): the verifying key's type decides
/// it, as every key type here has exactly one algorithm.
pub const ALG_ABSENT: i128 = 0;

/// The name of a COSE algorithm id.
pub fn alg_name(alg: i128) -> String {
    match alg {
        -7 => "ES256".into(),
        -35 => "ES384".into(),
        -36 => "ES512".into(),
        -8 => "EdDSA".into(),
        -37 => "PS256".into(),
        -257 => "RS256".into(),
        0 => "no alg (the key's)".into(),
        a => format!("alg {a}"),
    }
}

/// A private key that signs CoRIMs.
#[derive(Clone)]
pub enum SigningKey {
    Es256(p256::ecdsa::SigningKey),
    Es384(p384::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", alg_name(i128::from(self.alg())))
    }
}

/// A public key that verifies CoRIM signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyingKey {
    Es256(p256::ecdsa::VerifyingKey),
    Es384(p384::ecdsa::VerifyingKey),
    Es512(p521::PublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// Why PEM or DER text is not a key fwscan signs or verifies COSE with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("not a PEM PKCS#8 (or SEC1) private key of P-256, P-384 or Ed25519 (make one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` or `openssl genpkey -algorithm ed25519`)")]
    NotSigningKey,
    #[error("not a PEM public key (BEGIN PUBLIC KEY) of P-256, P-384, P-521 or Ed25519")]
    NotPublicKey,
    #[error("a key of neither P-256, P-384, P-521 nor Ed25519 (COSE ES256/ES384/ES512/EdDSA)")]
    Unsupported,
    #[error("not a PEM X.509 certificate: {0}")]
    NotCertificate(String),
    /// A certificate whose key or encoding is unusable (the X.509 reader's words).
    #[error("{0}")]
    Certificate(String),
    #[error("certificate `{0}`: its key is neither P-256, P-384, P-521, Ed25519 nor RSA")]
    CertificateKey(String),
}

impl SigningKey {
    /// A PEM PKCS#8 private key (`BEGIN PRIVATE KEY`): EC P-256, EC P-384 or Ed25519; a SEC1 `BEGIN EC
    /// PRIVATE KEY` is accepted too.
    pub fn from_pem(text: &str) -> Result<SigningKey, KeyError> {
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(text) {
            return Ok(SigningKey::Es256(k));
        }
        if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_pem(text) {
            return Ok(SigningKey::Es384(k));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(text) {
            return Ok(SigningKey::Ed25519(k));
        }
        if let Ok(k) = p256::SecretKey::from_sec1_pem(text) {
            return Ok(SigningKey::Es256(k.into()));
        }
        if let Ok(k) = p384::SecretKey::from_sec1_pem(text) {
            return Ok(SigningKey::Es384(k.into()));
        }
        Err(KeyError::NotSigningKey)
    }

    pub fn alg(&self) -> i64 {
        match self {
            SigningKey::Es256(_) => ALG_ES256,
            SigningKey::Es384(_) => ALG_ES384,
            SigningKey::Ed25519(_) => ALG_EDDSA,
        }
    }

    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer;
        match self {
            SigningKey::Es256(k) => {
                let s: p256::ecdsa::Signature = k.sign(msg);
                s.to_bytes().to_vec()
            }
            SigningKey::Es384(k) => {
                let s: p384::ecdsa::Signature = k.sign(msg);
                s.to_bytes().to_vec()
            }
            SigningKey::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
        }
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        match self {
            SigningKey::Es256(k) => VerifyingKey::Es256(*k.verifying_key()),
            SigningKey::Es384(k) => VerifyingKey::Es384(*k.verifying_key()),
            SigningKey::Ed25519(k) => VerifyingKey::Ed25519(k.verifying_key()),
        }
    }
}

impl VerifyingKey {
    /// A PEM SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`) of P-256, P-384, P-521 or Ed25519.
    pub fn from_pem(text: &str) -> Result<VerifyingKey, KeyError> {
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(text) {
            return Ok(VerifyingKey::Es256(k));
        }
        if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_pem(text) {
            return Ok(VerifyingKey::Es384(k));
        }
        if let Ok(k) = p521::PublicKey::from_public_key_pem(text) {
            return Ok(VerifyingKey::Es512(k));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(text) {
            return Ok(VerifyingKey::Ed25519(k));
        }
        Err(KeyError::NotPublicKey)
    }

    /// A DER SubjectPublicKeyInfo (a certificate's key) of P-256, P-384, P-521 or Ed25519.
    pub fn from_der(spki: &[u8]) -> Result<VerifyingKey, KeyError> {
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(spki) {
            return Ok(VerifyingKey::Es256(k));
        }
        if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_der(spki) {
            return Ok(VerifyingKey::Es384(k));
        }
        if let Ok(k) = p521::PublicKey::from_public_key_der(spki) {
            return Ok(VerifyingKey::Es512(k));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(spki) {
            return Ok(VerifyingKey::Ed25519(k));
        }
        Err(KeyError::Unsupported)
    }

    /// The key as PEM SubjectPublicKeyInfo.
    pub fn to_pem(&self) -> String {
        let lf = p256::pkcs8::LineEnding::LF;
        match self {
            VerifyingKey::Es256(k) => k.to_public_key_pem(lf),
            VerifyingKey::Es384(k) => k.to_public_key_pem(lf),
            VerifyingKey::Es512(k) => k.to_public_key_pem(lf),
            VerifyingKey::Ed25519(k) => k.to_public_key_pem(lf),
        }
        .unwrap_or_default()
    }

    pub fn alg(&self) -> i64 {
        match self {
            VerifyingKey::Es256(_) => ALG_ES256,
            VerifyingKey::Es384(_) => ALG_ES384,
            VerifyingKey::Es512(_) => ALG_ES512,
            VerifyingKey::Ed25519(_) => ALG_EDDSA,
        }
    }

    /// Does `sig` (COSE form: `r || s` for ECDSA) verify over `msg` with this key and algorithm `alg`
    /// ([`ALG_ABSENT`]: the key's own algorithm)?
    pub fn verify(&self, alg: i128, msg: &[u8], sig: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        if alg != i128::from(self.alg()) && alg != ALG_ABSENT {
            return false;
        }
        match self {
            VerifyingKey::Es256(k) => {
                p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
            VerifyingKey::Es384(k) => {
                p384::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
            VerifyingKey::Es512(k) => p521::ecdsa::VerifyingKey::from_affine(*k.as_affine())
                .is_ok_and(|v| {
                    p521::ecdsa::Signature::from_slice(sig).is_ok_and(|s| v.verify(msg, &s).is_ok())
                }),
            VerifyingKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| k.verify_strict(msg, &s).is_ok()),
        }
    }
}

/// The `Sig_structure` a `COSE_Sign1` signature covers (RFC 9052 §4.4), empty external AAD.
pub fn sig_structure1(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    cbor::encode(&Value::Array(vec![
        Value::text("Signature1"),
        Value::Bytes(protected.to_vec()),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.to_vec()),
    ]))
}

/// The `Sig_structure` one signer of a `COSE_Sign` covers.
pub fn sig_structure(body_protected: &[u8], sign_protected: &[u8], payload: &[u8]) -> Vec<u8> {
    cbor::encode(&Value::Array(vec![
        Value::text("Signature"),
        Value::Bytes(body_protected.to_vec()),
        Value::Bytes(sign_protected.to_vec()),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.to_vec()),
    ]))
}

/// A tagged `COSE_Sign1` over `payload` with the protected header map `protected` (which must carry the
/// key's `alg`), deterministically encoded, empty unprotected header.
pub fn sign1(protected: &Value, payload: &[u8], key: &SigningKey) -> Vec<u8> {
    let prot = cbor::encode(protected);
    let sig = key.sign(&sig_structure1(&prot, payload));
    cbor::encode(&Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(prot),
            Value::Map(Vec::new()),
            Value::Bytes(payload.to_vec()),
            Value::Bytes(sig),
        ])),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_and_bind_the_message() {
        let p256 = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let p384 = p384::ecdsa::SigningKey::from_slice(&[9u8; 48]).unwrap();
        let ed = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
        for k in [
            SigningKey::Es256(p256),
            SigningKey::Es384(p384),
            SigningKey::Ed25519(ed),
        ] {
            let s = k.sign(b"abc");
            assert_eq!(s, k.sign(b"abc"), "deterministic");
            let v = k.verifying_key();
            assert!(v.verify(i128::from(k.alg()), b"abc", &s));
            assert!(!v.verify(i128::from(k.alg()), b"abd", &s));
            assert!(!v.verify(-36, b"abc", &s));
            assert_eq!(VerifyingKey::from_pem(&v.to_pem()).unwrap(), v);
        }
    }
}
