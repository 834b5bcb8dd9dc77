//! The key ring (issue 19, point 2): every vendor key a parser may verify a signature with, typed by kind,
//! built once (from the trust policy's `vendor_keys`, scoped to a product/component, plus the keys given on
//! the command line), carried in [`super::ParseOptions::keys`] and queried by signature scheme.
//!
//! It lives in `formats/` (the `common` family) because that is the lowest floor both the parsers, which
//! query it, and `manifest::trust`, which builds it from the policy, may import; it imports no parser, so
//! the policy does not depend on a parser's types. Adding a scheme is one [`VendorKey`] kind here (and its
//! `type` in the policy schema), read by the parser of that scheme through [`KeyRing::for_scheme`] or a
//! typed query.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::finding::Scheme;
use crate::region::glob_match;

/// Which extendedKeyUsage a signer certificate must allow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Eku {
    /// When the signer has the extension: `id-kp-codeSigning` or `anyExtendedKeyUsage`.
    #[default]
    CodeSigning,
    /// Any (EDK2's behaviour).
    Any,
}

/// Whether validity periods are checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validity {
    /// `notBefore <= time <= notAfter` for every certificate on the path.
    #[default]
    Check,
    /// Not checked (EDK2's `X509_V_FLAG_NO_CHECK_TIME`).
    Ignore,
}

/// What a path ending at one vendor certificate must satisfy beyond RFC 5280's structure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    pub eku: Eku,
    pub validity: Validity,
}

/// A vendor certificate or CA (DER) and its rules: a trust anchor of UEFI capsule signatures
/// ([`super::x509`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorCert {
    pub der: Vec<u8>,
    pub rules: Rules,
}

impl VendorCert {
    /// A certificate with the default (strict) rules.
    pub fn new(der: Vec<u8>) -> VendorCert {
        VendorCert {
            der,
            rules: Rules::default(),
        }
    }
}

/// An OpenBMC system key: what `/etc/activationdata/KEYTYPE/{publickey,hashfunc}` hold on a BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenbmcKey {
    /// The key type (`OpenBMC`, a vendor name), as in `MANIFEST`'s `KeyType`.
    pub key_type: String,
    /// The `HashType` of its `hashfunc` file (`RSA-SHA256`, ...).
    pub hash_type: String,
    /// The RSA public key, PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
    pub pem: String,
}

/// One vendor key, by kind (the policy's `type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorKey {
    /// `openbmc`: verifies an OpenBMC update tarball's `MANIFEST.sig` and `publickey.sig`.
    OpenbmcRsa(OpenbmcKey),
    /// `x509`: a certificate or CA a UEFI capsule's PKCS#7 signer must chain to.
    X509(VendorCert),
    /// `bootguard-km-hash`: a Boot Guard OEM key hash (SHA-256 or SHA-384 of the Key Manifest key, as
    /// fused), pinning the key manifests of the platforms in scope (`formats::intel::km_key_pinned`).
    BootguardKmHash(Vec<u8>),
    /// `aspeed-otp`: an ASPEED OTP image (`otptool`/`socsec` format): the keys and signing mode the SoC's
    /// boot ROM verifies the boot image with (`formats::bmc::aspeed`). Validated when the ring is built.
    AspeedOtp(Vec<u8>),
    /// `fit`: a public key U-Boot's verified boot checks FIT signatures with (`formats::bmc::fit_sig`).
    Fit(FitKeyData),
    /// `cose`: a P-256, P-384, P-521 (verify only) or Ed25519 public key (PEM SubjectPublicKeyInfo, validated when the ring is
    /// built) that signs CoRIMs (`manifest::corim`).
    Cose(String),
}

/// A `fit` vendor key: a PEM public key (RSA 2048-4096, P-256, P-384), or a U-Boot control device tree
/// whose `/signature/key-NAME` nodes hold the keys (and their `required` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FitKeyData {
    Pem(String),
    Dtb(Vec<u8>),
}

impl VendorKey {
    /// The signature scheme this key verifies (or, for a Boot Guard pin, anchors).
    pub fn scheme(&self) -> Scheme {
        match self {
            VendorKey::OpenbmcRsa(_) => Scheme::OpenbmcRsa,
            VendorKey::X509(_) => Scheme::Pkcs7,
            VendorKey::BootguardKmHash(_) => Scheme::BootguardKm,
            VendorKey::AspeedOtp(_) => Scheme::AspeedRot,
            VendorKey::Fit(_) => Scheme::FitSignature,
            VendorKey::Cose(_) => Scheme::Cose,
        }
    }
}

/// The products and components a key may sign for (globs; `None`: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub products: Option<Vec<String>>,
    pub components: Option<Vec<String>>,
}

impl Scope {
    /// May a key of this scope sign packages of `product`/`component` (`None`: any)?
    pub fn allows(&self, product: Option<&str>, component: Option<&str>) -> bool {
        let ok = |globs: &Option<Vec<String>>, v: Option<&str>| match (globs, v) {
            (Some(g), Some(v)) => g.iter().any(|p| glob_match(p, v)),
            _ => true,
        };
        ok(&self.products, product) && ok(&self.components, component)
    }
}

/// A key of the ring: its id (the policy's `id`, or the command-line argument), its scope and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingKey {
    pub id: String,
    pub scope: Scope,
    pub key: VendorKey,
}

impl RingKey {
    pub fn scheme(&self) -> Scheme {
        self.key.scheme()
    }
}

/// The vendor keys of one parse, queried by scheme. Cheap to clone (the keys are shared).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRing {
    keys: Arc<Vec<RingKey>>,
}

impl KeyRing {
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    /// Adds one key.
    pub fn add(&mut self, key: RingKey) {
        Arc::make_mut(&mut self.keys).push(key);
    }

    /// Adds an OpenBMC system key of any scope.
    pub fn add_openbmc(&mut self, id: impl Into<String>, key: OpenbmcKey) {
        self.add(RingKey {
            id: id.into(),
            scope: Scope::default(),
            key: VendorKey::OpenbmcRsa(key),
        });
    }

    /// Adds a vendor certificate of any scope.
    pub fn add_x509(&mut self, id: impl Into<String>, cert: VendorCert) {
        self.add(RingKey {
            id: id.into(),
            scope: Scope::default(),
            key: VendorKey::X509(cert),
        });
    }

    /// Adds every key of `other` after this ring's own.
    pub fn extend(&mut self, other: impl IntoIterator<Item = RingKey>) {
        Arc::make_mut(&mut self.keys).extend(other);
    }

    /// Every key, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = &RingKey> {
        self.keys.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys of one scheme, in the order added.
    pub fn for_scheme(&self, scheme: Scheme) -> impl Iterator<Item = &RingKey> {
        self.keys.iter().filter(move |k| k.scheme() == scheme)
    }

    /// OpenBMC system keys ([`Scheme::OpenbmcRsa`]).
    pub fn openbmc(&self) -> Vec<&OpenbmcKey> {
        self.keys
            .iter()
            .filter_map(|k| match &k.key {
                VendorKey::OpenbmcRsa(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    /// Capsule vendor certificates ([`Scheme::Pkcs7`]).
    pub fn x509(&self) -> Vec<&VendorCert> {
        self.keys
            .iter()
            .filter_map(|k| match &k.key {
                VendorKey::X509(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// Pinned Boot Guard OEM key hashes ([`Scheme::BootguardKm`]).
    pub fn bootguard_km_hashes(&self) -> Vec<&[u8]> {
        self.keys
            .iter()
            .filter_map(|k| match &k.key {
                VendorKey::BootguardKmHash(h) => Some(h.as_slice()),
                _ => None,
            })
            .collect()
    }
}

impl FromIterator<RingKey> for KeyRing {
    fn from_iter<I: IntoIterator<Item = RingKey>>(iter: I) -> KeyRing {
        KeyRing {
            keys: Arc::new(iter.into_iter().collect()),
        }
    }
}

/// Outcomes of public-key signature checks, kept for the process under a digest of everything a check
/// depends on: a fleet audit meets the same vendor signature (an ME manifest, a Boot Guard manifest) in
/// every dump, and the RSA arithmetic was a twentieth of its CPU time. `parts` must name the scheme and hold
/// the key, the signature and the signed digest (the digest is computed from the image's bytes each time:
/// an entry says only what the same inputs gave before). Bounded: past [`SIGNATURE_MEMO_MAX`] entries the
/// memo starts again empty.
pub fn checked_signature(
    parts: &[&[u8]],
    check: impl FnOnce() -> Result<(), BadSignature>,
) -> Result<(), BadSignature> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let key: [u8; 32] = h.finalize().into();
    if let Some(r) = SIGNATURE_MEMO
        .lock()
        .ok()
        .and_then(|m| m.get(&key).cloned())
    {
        return r;
    }
    let r = check();
    if let Ok(mut m) = SIGNATURE_MEMO.lock() {
        if m.len() >= SIGNATURE_MEMO_MAX {
            m.clear();
        }
        m.insert(key, r.clone());
    }
    r
}

/// Why a signature did not verify (the key is unusable, or the arithmetic fails), as the finding says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadSignature(pub String);

/// Entries [`checked_signature`] keeps at most.
pub const SIGNATURE_MEMO_MAX: usize = 4096;

type SignatureMemo =
    std::sync::Mutex<std::collections::HashMap<[u8; 32], Result<(), BadSignature>>>;

static SIGNATURE_MEMO: std::sync::LazyLock<SignatureMemo> =
    std::sync::LazyLock::new(Default::default);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_check_runs_once_per_inputs_and_only_its_inputs_decide() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // The memo is the process's: inputs no other test uses.
        let nonce = format!("{:?}", std::time::SystemTime::now());
        let n = nonce.as_bytes();
        let runs = AtomicUsize::new(0);
        let check = |ok: bool| {
            runs.fetch_add(1, Ordering::Relaxed);
            if ok {
                Ok(())
            } else {
                Err(BadSignature("does not verify".into()))
            }
        };
        assert_eq!(checked_signature(&[n, b"a"], || check(true)), Ok(()));
        assert_eq!(checked_signature(&[n, b"a"], || check(false)), Ok(()));
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        // Another input (a flipped digest byte), and parts split elsewhere: checked again.
        let bad = checked_signature(&[n, b"b"], || check(false));
        assert_eq!(bad, Err(BadSignature("does not verify".into())));
        assert_eq!(checked_signature(&[n, b"b"], || check(true)), bad);
        assert!(checked_signature(&[n, b"ab", b"c"], || check(true)).is_ok());
        assert!(checked_signature(&[n, b"a", b"bc"], || check(false)).is_err());
        assert_eq!(runs.load(Ordering::Relaxed), 4);
    }
}
