//! Public keys and signatures of Intel's signed structures (Boot Guard KM/BPM, startup ACM): RSA with
//! PKCS#1 v1.5 or PSS, ECDSA P-256/P-384, digests by TPM 2.0 algorithm id.
//!
//! Byte order: Boot Guard and ACM structures store the RSA modulus and the ECC coordinates
//! little-endian. The RSA signature of the real key manifests verifies big-endian (checked on the KM
//! fixtures); a signature that fails in one order is tried in the other, which weakens nothing (an
//! attacker must still produce a valid signature for the key). ECDSA `r`/`s` are little-endian like the
//! coordinates, tried big-endian too.
//!
//! RustCrypto's `rsa`, `p256` and `p384` do the arithmetic; `sha1`/`sha2` the digests. SM2/SM3 are not
//! verified (reported as such, never as valid).
#![deny(clippy::arithmetic_side_effects)]

use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPublicKey};
use sha2::Digest;

use crate::formats::keys::BadSignature;

/// TPM 2.0 algorithm ids used by Boot Guard.
pub const ALG_RSA: u16 = 0x0001;
pub const ALG_SHA1: u16 = 0x0004;
pub const ALG_SHA256: u16 = 0x000B;
pub const ALG_SHA384: u16 = 0x000C;
pub const ALG_SHA512: u16 = 0x000D;
pub const ALG_NULL: u16 = 0x0010;
pub const ALG_SM3: u16 = 0x0012;
pub const ALG_RSASSA: u16 = 0x0014;
pub const ALG_RSAPSS: u16 = 0x0016;
pub const ALG_ECDSA: u16 = 0x0018;
pub const ALG_SM2: u16 = 0x001B;
pub const ALG_ECC: u16 = 0x0023;

/// Name of a TPM algorithm id.
pub fn alg_name(alg: u16) -> String {
    match alg {
        ALG_RSA => "rsa".into(),
        ALG_SHA1 => "sha1".into(),
        ALG_SHA256 => "sha256".into(),
        ALG_SHA384 => "sha384".into(),
        ALG_SHA512 => "sha512".into(),
        ALG_NULL => "null".into(),
        ALG_SM3 => "sm3".into(),
        ALG_RSASSA => "rsassa-pkcs1v15".into(),
        ALG_RSAPSS => "rsassa-pss".into(),
        ALG_ECDSA => "ecdsa".into(),
        ALG_SM2 => "sm2".into(),
        ALG_ECC => "ecc".into(),
        other => format!("0x{other:04x}"),
    }
}

/// Digest of `parts` (concatenated) with a TPM hash algorithm; `None` when the algorithm is not supported.
pub fn digest(alg: u16, parts: &[&[u8]]) -> Option<Vec<u8>> {
    fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
        let mut h = D::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().to_vec()
    }
    Some(match alg {
        ALG_SHA1 => run::<sha1::Sha1>(parts),
        ALG_SHA256 => run::<sha2::Sha256>(parts),
        ALG_SHA384 => run::<sha2::Sha384>(parts),
        ALG_SHA512 => run::<sha2::Sha512>(parts),
        _ => return None,
    })
}

/// Digest length of a TPM hash algorithm.
pub fn digest_len(alg: u16) -> Option<usize> {
    Some(match alg {
        ALG_SHA1 => 20,
        ALG_SHA256 | ALG_SM3 => 32,
        ALG_SHA384 => 48,
        ALG_SHA512 => 64,
        _ => return None,
    })
}

/// A public key as stored in a Boot Guard or ACM structure.
#[derive(Debug, Clone)]
pub enum PubKey {
    /// Modulus little-endian as stored, exponent.
    Rsa { modulus_le: Vec<u8>, exponent: u32 },
    /// Coordinates little-endian as stored.
    Ecc { x_le: Vec<u8>, y_le: Vec<u8> },
    /// SM2 coordinates (not verified).
    Sm2 { x_le: Vec<u8>, y_le: Vec<u8> },
}

impl PubKey {
    /// The bytes hashed when a manifest names this key (the KM's hash of the BPM key, the fused hash of
    /// the KM key on platforms since Cannon Lake): RSA modulus (little-endian) followed by the exponent,
    /// or X then Y.
    pub fn hash_input(&self, with_exponent: bool) -> Vec<u8> {
        match self {
            PubKey::Rsa {
                modulus_le,
                exponent,
            } => {
                let mut v = modulus_le.clone();
                if with_exponent {
                    v.extend_from_slice(&exponent.to_le_bytes());
                }
                v
            }
            PubKey::Ecc { x_le, y_le } | PubKey::Sm2 { x_le, y_le } => {
                let mut v = x_le.clone();
                v.extend_from_slice(y_le);
                v
            }
        }
    }

    pub fn bits(&self) -> usize {
        match self {
            PubKey::Rsa { modulus_le, .. } => modulus_le.len().saturating_mul(8),
            PubKey::Ecc { x_le, .. } | PubKey::Sm2 { x_le, .. } => x_le.len().saturating_mul(8),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            PubKey::Rsa { .. } => "rsa",
            PubKey::Ecc { .. } => "ecc",
            PubKey::Sm2 { .. } => "sm2",
        }
    }
}

/// Outcome of a signature check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigCheck {
    Valid,
    Invalid(String),
    /// The scheme is recognised but not verified by fwscan (SM2, SM3).
    NotVerified(String),
}

impl SigCheck {
    pub fn as_str(&self) -> &'static str {
        match self {
            SigCheck::Valid => "valid",
            SigCheck::Invalid(_) => "invalid",
            SigCheck::NotVerified(_) => "not-verified",
        }
    }
}

fn reversed(b: &[u8]) -> Vec<u8> {
    b.iter().rev().copied().collect()
}

/// Verifies `sig` over `msg` with `key`, scheme and hash algorithm given as TPM ids.
pub fn verify(key: &PubKey, scheme: u16, hash_alg: u16, sig: &[u8], msg: &[u8]) -> SigCheck {
    let Some(hashed) = digest(hash_alg, &[msg]) else {
        return if hash_alg == ALG_SM3 {
            SigCheck::NotVerified("SM3 digests are not verified".into())
        } else {
            SigCheck::Invalid(format!("unsupported hash algorithm {}", alg_name(hash_alg)))
        };
    };
    match key {
        PubKey::Rsa {
            modulus_le,
            exponent,
        } => verify_rsa(modulus_le, *exponent, scheme, hash_alg, &hashed, sig),
        PubKey::Ecc { x_le, y_le } => verify_ecdsa(x_le, y_le, scheme, &hashed, sig),
        PubKey::Sm2 { .. } => SigCheck::NotVerified("SM2 signatures are not verified".into()),
    }
}

fn verify_rsa(
    modulus_le: &[u8],
    exponent: u32,
    scheme: u16,
    hash_alg: u16,
    hashed: &[u8],
    sig: &[u8],
) -> SigCheck {
    if !(128..=512).contains(&modulus_le.len()) {
        return SigCheck::Invalid(format!("RSA key of {} bytes", modulus_le.len()));
    }
    if sig.len() != modulus_le.len() {
        return SigCheck::Invalid(format!(
            "signature of {} bytes for a {}-byte key",
            sig.len(),
            modulus_le.len()
        ));
    }
    if !matches!(scheme, ALG_RSASSA | ALG_RSAPSS) {
        return SigCheck::Invalid(format!(
            "signature scheme {} with an RSA key",
            alg_name(scheme)
        ));
    }
    let parts: [&[u8]; 6] = [
        b"intel-rsa",
        modulus_le,
        &exponent.to_le_bytes(),
        &[scheme.to_le_bytes(), hash_alg.to_le_bytes()].concat(),
        hashed,
        sig,
    ];
    let checked = crate::formats::keys::checked_signature(&parts, || {
        let n = BigUint::from_bytes_le(modulus_le);
        let key = RsaPublicKey::new(n, BigUint::from(exponent))
            .map_err(|e| BadSignature(format!("bad RSA key: {e}")))?;
        let attempt = |s: &[u8]| -> bool {
            match (scheme, hash_alg) {
                (ALG_RSASSA, ALG_SHA256) => key
                    .verify(Pkcs1v15Sign::new::<sha2::Sha256>(), hashed, s)
                    .is_ok(),
                (ALG_RSASSA, ALG_SHA384) => key
                    .verify(Pkcs1v15Sign::new::<sha2::Sha384>(), hashed, s)
                    .is_ok(),
                (ALG_RSAPSS, ALG_SHA256) => key
                    .verify(Pss::new_with_salt::<sha2::Sha256>(32), hashed, s)
                    .is_ok(),
                (ALG_RSAPSS, ALG_SHA384) => key
                    .verify(Pss::new_with_salt::<sha2::Sha384>(48), hashed, s)
                    .is_ok(),
                _ => false,
            }
        };
        if attempt(sig) || attempt(&reversed(sig)) {
            Ok(())
        } else {
            Err(BadSignature(format!(
                "{} {} signature does not verify",
                alg_name(scheme),
                alg_name(hash_alg)
            )))
        }
    });
    match checked {
        Ok(()) => SigCheck::Valid,
        Err(why) => SigCheck::Invalid(why.0),
    }
}

fn verify_ecdsa(x_le: &[u8], y_le: &[u8], scheme: u16, hashed: &[u8], sig: &[u8]) -> SigCheck {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    if scheme != ALG_ECDSA {
        return SigCheck::Invalid(format!(
            "signature scheme {} with an ECC key",
            alg_name(scheme)
        ));
    }
    let n = x_le.len();
    if y_le.len() != n || Some(sig.len()) != n.checked_mul(2) {
        return SigCheck::Invalid("ECDSA key and signature sizes disagree".into());
    }
    let (x, y) = (reversed(x_le), reversed(y_le));
    let orders = [
        (reversed(&sig[..n]), reversed(&sig[n..])),
        (sig[..n].to_vec(), sig[n..].to_vec()),
    ];
    let ok = match n {
        32 => {
            let point = p256::EncodedPoint::from_affine_coordinates(
                p256::FieldBytes::from_slice(&x),
                p256::FieldBytes::from_slice(&y),
                false,
            );
            let Ok(vk) = p256::ecdsa::VerifyingKey::from_encoded_point(&point) else {
                return SigCheck::Invalid("ECC key is not a P-256 point".into());
            };
            orders.iter().any(|(r, s)| {
                p256::ecdsa::Signature::from_scalars(
                    *p256::FieldBytes::from_slice(r),
                    *p256::FieldBytes::from_slice(s),
                )
                .is_ok_and(|sig| vk.verify_prehash(hashed, &sig).is_ok())
            })
        }
        48 => {
            let point = p384::EncodedPoint::from_affine_coordinates(
                p384::FieldBytes::from_slice(&x),
                p384::FieldBytes::from_slice(&y),
                false,
            );
            let Ok(vk) = p384::ecdsa::VerifyingKey::from_encoded_point(&point) else {
                return SigCheck::Invalid("ECC key is not a P-384 point".into());
            };
            orders.iter().any(|(r, s)| {
                p384::ecdsa::Signature::from_scalars(
                    *p384::FieldBytes::from_slice(r),
                    *p384::FieldBytes::from_slice(s),
                )
                .is_ok_and(|sig| vk.verify_prehash(hashed, &sig).is_ok())
            })
        }
        _ => return SigCheck::Invalid(format!("ECC key of {} bits", n.saturating_mul(8))),
    };
    if ok {
        SigCheck::Valid
    } else {
        SigCheck::Invalid("ECDSA signature does not verify".into())
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
