//! The trust policy: which keys may sign which manifests (`schemas/trust-policy-v1.schema.json`).
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "keys": [
//!     { "id": "3D5C1E4B2A3B4C5D", "public_key": "RWRdTDsqSx5cPa...", "role": "vendor",
//!       "name": "Acme firmware release key", "expires": "2028-01-01T00:00:00Z",
//!       "products": ["X11*"], "components": ["bios", "bmc"] }
//!   ],
//!   "revoked": ["0123456789ABCDEF"],
//!   "rules": [
//!     { "product": "X11SPi", "component": "bios", "threshold": 2, "min_sequence": 7 }
//!   ]
//! }
//! ```
//!
//! Keys come only from here, never from a manifest or a signature file. `products`/`components` are
//! globs (`*`, `?`); absent means any. Rule `product`/`component` are globs too, matched without regard
//! to ASCII case (a rule must never silently fail to apply). A rule with no `component` applies to every
//! component of the product; the most specific matching rules win (literal product, then a product glob,
//! then `*`; with a component before without; ties take the strictest threshold and minimum sequence).
//! With no matching rule the threshold is 1 and there is no minimum sequence.
//!
//! The product and component are chosen by the signer, so a name alone must not lower the bar
//! (issue 15): a manifest that matches no explicit rule (only `*`, or none) is refused while a rule asking
//! for more than one signature could apply to a product one of its signing keys may sign — the key
//! cannot rename its way out of the stricter rule. Binding a scan to the product being scanned
//! (`--product`) closes the rest. Rules that no key may sign for, or whose threshold more keys than could
//! sign are asked for, are reported in [`TrustPolicy::warnings`].

use std::collections::HashSet;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::minisign::{KeyId, PublicKey};
use crate::finding::Code;
use crate::formats::keys::{
    Eku, KeyRing, OpenbmcKey, RingKey, Rules, Scope, Validity, VendorCert, VendorKey,
};
use crate::region::glob_match;

/// Policy files larger than this are refused before parsing.
pub const MAX_POLICY_SIZE: u64 = 1 << 20;
/// Most keys (and revoked ids, and rules) a policy may list.
pub const MAX_ENTRIES: usize = 4096;
/// Longest product/component glob (in a key scope or a rule).
pub const MAX_GLOB_LEN: usize = 256;
/// The policy schema version this build reads.
pub const POLICY_SCHEMA_VERSION: u32 = 1;

/// Why a trust policy is refused ([`TrustPolicyError::code`]). The text is what `fwscan verify` prints
/// after the policy's path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustPolicyError {
    /// Another user could have written the file (code `trust-policy-insecure`).
    #[error("{0}")]
    Insecure(super::secure::InsecureError),
    #[error("{0}")]
    Read(crate::Error),
    #[error("larger than {MAX_POLICY_SIZE} bytes")]
    TooLarge,
    // The JSON error is the message (not a `source`), as in [`crate::Error`].
    #[error("{0}")]
    Json(serde_json::Error),
    #[error("schema_version {0} is not supported (this build reads {POLICY_SCHEMA_VERSION})")]
    Schema(u32),
    #[error("more than {MAX_ENTRIES} keys, revoked ids or rules")]
    TooManyEntries,
    #[error("revoked id `{0}` is not 16 hex digits")]
    RevokedId(String),
    #[error("key id `{0}` is not 16 hex digits")]
    KeyId(String),
    #[error("key {id}: {problem}")]
    Key { id: String, problem: KeyProblem },
    #[error("rule for `{product}`: threshold must be at least 1")]
    ZeroThreshold { product: String },
    #[error("a rule has an empty product")]
    EmptyProduct,
    #[error("rule for `{product}`: product and component must be 1 to {MAX_GLOB_LEN} bytes")]
    RuleGlobLength { product: String },
    #[error("two rules for product `{product}` component `{component}`")]
    DuplicateRule { product: String, component: String },
    #[error("more than {MAX_ENTRIES} vendor keys")]
    TooManyVendorKeys,
    #[error("vendor key {0}: listed twice")]
    VendorKeyTwice(String),
    #[error("a vendor key id must be 1 to 128 printable characters")]
    VendorKeyId,
    #[error("vendor key {id}: {problem}")]
    VendorKey {
        id: String,
        problem: VendorKeyProblem,
    },
}

impl TrustPolicyError {
    /// `trust-policy-insecure` when another user could have written the file, else `trust-policy-invalid`.
    pub fn code(&self) -> Code {
        match self {
            TrustPolicyError::Insecure(_) => Code::TrustPolicyInsecure,
            _ => Code::TrustPolicyInvalid,
        }
    }
}

/// What is wrong with one minisign key of a trust policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProblem {
    #[error("{0}")]
    PublicKey(super::minisign::FormatError),
    #[error("the public key carries key id {carried}, not {id}")]
    IdMismatch { carried: KeyId, id: String },
    #[error("listed twice (same id or same public key); each key counts once")]
    Duplicate,
    #[error("role `{0}` must be lowercase kebab-case (vendor, owner, release-ci, ...)")]
    Role(String),
    #[error("{0}")]
    Expires(super::TimeError),
    #[error("products/components must list 1 to {MAX_ENTRIES} globs")]
    GlobCount,
    #[error("glob `{0}` must be 1 to {MAX_GLOB_LEN} bytes")]
    GlobLength(String),
}

/// What is wrong with one vendor key (OpenBMC key, X.509 certificate, Boot Guard key hash) of a policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VendorKeyProblem {
    #[error("products/components must list 1 to {MAX_ENTRIES} globs of 1 to {MAX_GLOB_LEN} bytes")]
    Globs,
    #[error("type openbmc needs key_type (MANIFEST's KeyType)")]
    NoKeyType,
    #[error("hash_type `{0}`: RSA-SHA256, RSA-SHA384 or RSA-SHA512")]
    HashType(String),
    #[error("eku and validity apply to type x509 only")]
    X509Only,
    #[error("{0}")]
    PublicKey(crate::formats::obmc_tar::PemKeyError),
    #[error("{0} (vendor-key-weak)")]
    Weak(crate::formats::x509::WeakKey),
    #[error("not a PEM X.509 certificate: {0}")]
    Certificate(x509_cert::der::Error),
    #[error("{0} (vendor-key-weak)")]
    WeakCertificate(crate::formats::x509::PathError),
    #[error("{0}")]
    Der(x509_cert::der::Error),
    #[error("type bootguard-km-hash needs `hash`, 64 or 96 hex digits (SHA-256 or SHA-384 of the key manifest key), and no `pem`")]
    BootGuardHash,
    #[error("type aspeed-otp needs `otp`, the OTP image in base64, and no `pem`")]
    AspeedOtpMissing,
    #[error("type aspeed-otp: {0}")]
    AspeedOtp(crate::formats::bmc::aspeed::otp::OtpError),
    #[error("type fit needs either `pem` (an RSA 2048-4096, P-256 or P-384 public key) or `dtb` (a U-Boot control device tree with /signature keys, base64)")]
    FitMissing,
    #[error("type fit: {0}")]
    Fit(String),
    #[error("type cose needs `pem`, a P-256, P-384, P-521 or Ed25519 public key (BEGIN PUBLIC KEY) or an X.509 certificate (BEGIN CERTIFICATE: a CA the signer's x5chain leads to, or the signer's own): {0}")]
    Cose(String),
    #[error("type `{0}`: openbmc, x509, bootguard-km-hash, aspeed-otp, fit or cose")]
    Kind(String),
}

/// A manifest that matches no explicit rule while one of its signers may also sign for a stricter rule
/// (code `manifest-threshold-not-met`): see [`TrustPolicy::requirement_for`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "product `{product}` component `{component}` matches no explicit rule of the trust policy, \
     while key {key} ({role}) may also sign for rule product `{rule_product}` component `{rule_component}` which needs {threshold} \
     signatures; add a rule for this product (or narrow the key's scope)"
)]
#[non_exhaustive]
pub struct RuleEscape {
    pub product: String,
    pub component: String,
    pub key: KeyId,
    pub role: String,
    pub rule_product: String,
    pub rule_component: String,
    pub threshold: u32,
}

/// One trusted key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    /// minisign key id: 16 hex digits, as `minisign` prints it.
    pub id: String,
    /// The minisign public key (base64, the second line of the `.pub` file).
    pub public_key: String,
    /// `vendor`, `owner`, `release-ci`, ... (lowercase kebab-case).
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// RFC 3339; signatures by this key are refused at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Product globs this key may sign for; absent = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products: Option<Vec<String>>,
    /// Component globs this key may sign for; absent = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
}

/// Threshold and minimum sequence for a product (and optionally one component).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Product name, or `*` for every product.
    pub product: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Distinct trusted keys that must sign (k of n). Default 1.
    #[serde(default = "one")]
    pub threshold: u32,
    /// Manifests with a lower sequence are refused (`manifest-rollback`).
    #[serde(default)]
    pub min_sequence: u64,
    /// CoRIMs: what anti-rollback compares (default `tag-version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_rollback: Option<AntiRollback>,
}

/// What a CoRIM's anti-rollback compares (a rule's `anti_rollback`). A JSON manifest always compares its
/// sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AntiRollback {
    /// The CoMID's tag-version is the sequence: `min_sequence` and the state file's sequence.
    #[default]
    TagVersion,
    /// The svn of every reference value, against the highest recorded for its (product, component,
    /// mkey) in the state file; the tag-version is not compared.
    Svn,
    /// Both.
    Both,
}

impl AntiRollback {
    pub fn tag_version(self) -> bool {
        self != AntiRollback::Svn
    }

    pub fn svn(self) -> bool {
        self != AntiRollback::TagVersion
    }

    /// What two equally specific rules ask together.
    pub fn union(self, other: AntiRollback) -> AntiRollback {
        if self == other {
            self
        } else if (self.tag_version() || other.tag_version()) && (self.svn() || other.svn()) {
            AntiRollback::Both
        } else {
            self
        }
    }
}

fn one() -> u32 {
    1
}

/// The policy file as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub schema_version: u32,
    pub keys: Vec<TrustedKey>,
    #[serde(default)]
    pub revoked: Vec<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Vendor keys and certificates that sign release packages (OpenBMC tarballs, UEFI capsules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vendor_keys: Vec<VendorKeyFile>,
}

/// A vendor key or certificate of a release package signature scheme, as written in the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorKeyFile {
    /// A name for reports (`acme-bmc-2026`).
    pub id: String,
    /// `openbmc` (an RSA public key as in `/etc/activationdata/KEYTYPE/publickey`), `x509` (a
    /// certificate or CA a capsule's PKCS#7 signer must chain to) or `bootguard-km-hash` (the Boot Guard
    /// OEM key hash the platform's chipset fuses hold, in `hash`).
    #[serde(rename = "type")]
    pub kind: String,
    /// `openbmc`: the `KeyType` of the package's MANIFEST this key answers for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    /// `openbmc`: the `HashType` (`RSA-SHA256`, `RSA-SHA384`, `RSA-SHA512`); default `RSA-SHA256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_type: Option<String>,
    /// PEM: `BEGIN PUBLIC KEY` / `BEGIN RSA PUBLIC KEY` (openbmc) or `BEGIN CERTIFICATE` (x509).
    #[serde(default)]
    pub pem: String,
    /// `bootguard-km-hash`: hex SHA-256 (or SHA-384) of the Key Manifest's public key as the fuses hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// `aspeed-otp`: an ASPEED OTP image (`otptool`/`socsec` format), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
    /// `fit`: a U-Boot control device tree (DTB, base64) whose `/signature/key-NAME` nodes are the keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtb: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Product globs this key may sign packages for; absent = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products: Option<Vec<String>>,
    /// Component globs; absent = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
    /// `x509`: the extendedKeyUsage a capsule signer must allow, `code-signing` (default: when the signer
    /// has the extension it must list id-kp-codeSigning or anyExtendedKeyUsage) or `any` (EDK2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eku: Option<Eku>,
    /// `x509`: `check` (default) the validity periods on the path at the evaluation time, or `ignore`
    /// them (EDK2, whose own test chain expired in 2018).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<Validity>,
}

/// Validates one `vendor_keys` entry of the policy into a key of the ring.
fn vendor_key(k: VendorKeyFile) -> Result<RingKey, TrustPolicyError> {
    let at = |problem: VendorKeyProblem| TrustPolicyError::VendorKey {
        id: k.id.clone(),
        problem,
    };
    if k.id.is_empty() || k.id.len() > 128 || k.id.chars().any(char::is_control) {
        return Err(TrustPolicyError::VendorKeyId);
    }
    for g in k.products.iter().chain(k.components.iter()) {
        if g.is_empty()
            || g.len() > MAX_ENTRIES
            || g.iter().any(|p| p.is_empty() || p.len() > MAX_GLOB_LEN)
        {
            return Err(at(VendorKeyProblem::Globs));
        }
    }
    let scope = Scope {
        products: k.products,
        components: k.components,
    };
    match k.kind.as_str() {
        "openbmc" => {
            let key_type = k
                .key_type
                .filter(|t| !t.is_empty() && t.len() <= 64)
                .ok_or_else(|| at(VendorKeyProblem::NoKeyType))?;
            let hash_type = k.hash_type.unwrap_or_else(|| "RSA-SHA256".into());
            if !matches!(
                hash_type.as_str(),
                "RSA-SHA256" | "RSA-SHA384" | "RSA-SHA512"
            ) {
                return Err(at(VendorKeyProblem::HashType(hash_type)));
            }
            if k.eku.is_some() || k.validity.is_some() {
                return Err(at(VendorKeyProblem::X509Only));
            }
            let key = crate::formats::obmc_tar::public_key(k.pem.as_bytes())
                .map_err(|e| at(VendorKeyProblem::PublicKey(e)))?;
            crate::formats::x509::rsa_key_strength(&key)
                .map_err(|e| at(VendorKeyProblem::Weak(e)))?;
            Ok(RingKey {
                id: k.id,
                scope,
                key: VendorKey::OpenbmcRsa(OpenbmcKey {
                    key_type,
                    hash_type,
                    pem: k.pem,
                }),
            })
        }
        "x509" => {
            use x509_cert::der::{DecodePem, Encode};
            let cert = x509_cert::Certificate::from_pem(k.pem.as_bytes())
                .map_err(|e| at(VendorKeyProblem::Certificate(e)))?;
            crate::formats::x509::check_key(&cert)
                .map_err(|e| at(VendorKeyProblem::WeakCertificate(e)))?;
            let der = cert.to_der().map_err(|e| at(VendorKeyProblem::Der(e)))?;
            Ok(RingKey {
                id: k.id,
                scope,
                key: VendorKey::X509(VendorCert {
                    der,
                    rules: Rules {
                        eku: k.eku.unwrap_or_default(),
                        validity: k.validity.unwrap_or_default(),
                    },
                }),
            })
        }
        "bootguard-km-hash" => {
            let hash = match (k.hash.as_deref().map(hex::decode), k.pem.is_empty()) {
                (Some(Ok(h)), true) if matches!(h.len(), 32 | 48) => h,
                _ => return Err(at(VendorKeyProblem::BootGuardHash)),
            };
            Ok(RingKey {
                id: k.id,
                scope,
                key: VendorKey::BootguardKmHash(hash),
            })
        }
        "aspeed-otp" => {
            use base64::Engine as _;
            let bytes = match (k.otp.as_deref(), k.pem.is_empty()) {
                (Some(b64), true) => base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|_| at(VendorKeyProblem::AspeedOtpMissing))?,
                _ => return Err(at(VendorKeyProblem::AspeedOtpMissing)),
            };
            crate::formats::bmc::aspeed::otp::parse(&bytes)
                .map_err(|e| at(VendorKeyProblem::AspeedOtp(e)))?;
            Ok(RingKey {
                id: k.id,
                scope,
                key: VendorKey::AspeedOtp(bytes),
            })
        }
        "fit" => {
            use crate::formats::bmc::fit_sig;
            use crate::formats::keys::FitKeyData;
            let data = match (k.dtb.as_deref(), k.pem.trim().is_empty()) {
                (Some(b64), true) => {
                    use base64::Engine as _;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|_| at(VendorKeyProblem::FitMissing))?;
                    let f = crate::formats::fdt::Fdt::parse(&bytes)
                        .map_err(|e| at(VendorKeyProblem::Fit(e.to_string())))?;
                    let (keys, _) = fit_sig::keys_from_dtb(&f, &k.id);
                    if keys.is_empty() {
                        return Err(at(VendorKeyProblem::Fit(
                            "the device tree has no /signature/key-NAME node".into(),
                        )));
                    }
                    if let Some(e) = keys.iter().find_map(|k| k.material.as_ref().err()) {
                        return Err(at(VendorKeyProblem::Fit(e.to_string())));
                    }
                    FitKeyData::Dtb(bytes)
                }
                (None, false) => {
                    fit_sig::key_from_pem(&k.pem)
                        .map_err(|e| at(VendorKeyProblem::Fit(e.to_string())))?;
                    FitKeyData::Pem(k.pem)
                }
                _ => return Err(at(VendorKeyProblem::FitMissing)),
            };
            Ok(RingKey {
                id: k.id,
                scope,
                key: VendorKey::Fit(data),
            })
        }
        "cose" => {
            if k.eku.is_some() || k.validity.is_some() {
                return Err(at(VendorKeyProblem::X509Only));
            }
            super::corim::chain::CoseKey::from_pem(&k.pem)
                .map_err(|e| at(VendorKeyProblem::Cose(e.to_string())))?;
            Ok(RingKey {
                id: k.id,
                scope,
                key: VendorKey::Cose(k.pem),
            })
        }
        other => Err(at(VendorKeyProblem::Kind(other.to_string()))),
    }
}

/// A key of a validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub public: PublicKey,
    pub role: String,
    pub name: Option<String>,
    pub expires: Option<SystemTime>,
    pub products: Option<Vec<String>>,
    pub components: Option<Vec<String>>,
}

impl Key {
    /// May this key sign manifests of `product`/`component`?
    pub fn allows(&self, product: &str, component: &str) -> bool {
        let ok = |globs: &Option<Vec<String>>, v: &str| {
            globs
                .as_ref()
                .is_none_or(|g| g.iter().any(|p| glob_match(p, v)))
        };
        ok(&self.products, product) && ok(&self.components, component)
    }
}

/// A validated trust policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicy {
    pub keys: Vec<Key>,
    pub revoked: HashSet<KeyId>,
    pub rules: Vec<Rule>,
    /// Where it was read from (for messages and reports).
    pub source: String,
    /// Rules that can never be satisfied (no key may sign for them, or fewer keys than the threshold).
    pub warnings: Vec<String>,
    /// Vendor keys and certificates of release packages.
    /// Validated: each one a key of the ring its scope admits it to ([`TrustPolicy::key_ring`]).
    pub vendor_keys: Vec<RingKey>,
}

/// Threshold and minimum sequence that apply to one manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    pub threshold: u32,
    pub min_sequence: u64,
    pub anti_rollback: AntiRollback,
}

impl Requirement {
    /// No matching rule: one signature, no minimum sequence, tag-version anti-rollback.
    pub const NONE: Requirement = Requirement {
        threshold: 1,
        min_sequence: 0,
        anti_rollback: AntiRollback::TagVersion,
    };
}

fn kebab(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl TrustPolicy {
    /// Reads a policy file (size-capped before reading) after checking that only its owner or root could
    /// have written it ([`super::secure::check_file`], code `trust-policy-insecure`); other errors are
    /// `trust-policy-invalid`. The caller names the file.
    pub fn load(path: &Path) -> Result<TrustPolicy, TrustPolicyError> {
        super::secure::check_file(path).map_err(TrustPolicyError::Insecure)?;
        let bytes =
            crate::input::read_capped(path, MAX_POLICY_SIZE).map_err(TrustPolicyError::Read)?;
        TrustPolicy::parse(&bytes, &path.display().to_string())
    }

    /// Parses and validates policy bytes.
    pub fn parse(bytes: &[u8], source: &str) -> Result<TrustPolicy, TrustPolicyError> {
        if bytes.len() as u64 > MAX_POLICY_SIZE {
            return Err(TrustPolicyError::TooLarge);
        }
        let f: PolicyFile = serde_json::from_slice(bytes).map_err(TrustPolicyError::Json)?;
        if f.schema_version != POLICY_SCHEMA_VERSION {
            return Err(TrustPolicyError::Schema(f.schema_version));
        }
        if f.keys.len() > MAX_ENTRIES
            || f.revoked.len() > MAX_ENTRIES
            || f.rules.len() > MAX_ENTRIES
        {
            return Err(TrustPolicyError::TooManyEntries);
        }
        let mut revoked = HashSet::new();
        for r in &f.revoked {
            let id = KeyId::parse(r).ok_or_else(|| TrustPolicyError::RevokedId(r.clone()))?;
            revoked.insert(id);
        }
        let mut keys = Vec::with_capacity(f.keys.len());
        let mut ids = HashSet::new();
        let mut raw_keys = HashSet::new();
        for k in f.keys {
            let at = |problem: KeyProblem| TrustPolicyError::Key {
                id: k.id.clone(),
                problem,
            };
            let id = KeyId::parse(&k.id).ok_or_else(|| TrustPolicyError::KeyId(k.id.clone()))?;
            let public =
                PublicKey::from_base64(&k.public_key).map_err(|e| at(KeyProblem::PublicKey(e)))?;
            if public.id != id {
                return Err(at(KeyProblem::IdMismatch {
                    carried: public.id,
                    id: k.id.clone(),
                }));
            }
            if !ids.insert(id) || !raw_keys.insert(public.key) {
                return Err(at(KeyProblem::Duplicate));
            }
            if !kebab(&k.role) {
                return Err(at(KeyProblem::Role(k.role.clone())));
            }
            let expires = match &k.expires {
                Some(e) => Some(super::parse_time(e).map_err(|e| at(KeyProblem::Expires(e)))?),
                None => None,
            };
            for g in k.products.iter().chain(k.components.iter()) {
                if g.is_empty() || g.len() > MAX_ENTRIES {
                    return Err(at(KeyProblem::GlobCount));
                }
                if let Some(long) = g.iter().find(|p| p.is_empty() || p.len() > MAX_GLOB_LEN) {
                    return Err(at(KeyProblem::GlobLength(long.clone())));
                }
            }
            keys.push(Key {
                public,
                role: k.role,
                name: k.name,
                expires,
                products: k.products,
                components: k.components,
            });
        }
        let mut seen = HashSet::new();
        for r in &f.rules {
            if r.threshold == 0 {
                return Err(TrustPolicyError::ZeroThreshold {
                    product: r.product.clone(),
                });
            }
            if r.product.is_empty() {
                return Err(TrustPolicyError::EmptyProduct);
            }
            let too_long = |g: &str| g.is_empty() || g.len() > MAX_GLOB_LEN;
            if too_long(&r.product) || r.component.as_deref().is_some_and(too_long) {
                return Err(TrustPolicyError::RuleGlobLength {
                    product: r.product.clone(),
                });
            }
            let key = (
                r.product.to_ascii_lowercase(),
                r.component.as_ref().map(|c| c.to_ascii_lowercase()),
            );
            if !seen.insert(key) {
                return Err(TrustPolicyError::DuplicateRule {
                    product: r.product.clone(),
                    component: r.component.as_deref().unwrap_or("*").to_string(),
                });
            }
        }
        if f.vendor_keys.len() > MAX_ENTRIES {
            return Err(TrustPolicyError::TooManyVendorKeys);
        }
        let mut vendor_keys = Vec::with_capacity(f.vendor_keys.len());
        let mut vendor_ids = HashSet::new();
        for k in f.vendor_keys {
            if !vendor_ids.insert(k.id.clone()) {
                return Err(TrustPolicyError::VendorKeyTwice(k.id));
            }
            vendor_keys.push(vendor_key(k)?);
        }
        let mut p = TrustPolicy {
            keys,
            revoked,
            rules: f.rules,
            source: source.to_string(),
            warnings: Vec::new(),
            vendor_keys,
        };
        p.warnings = p.rule_warnings();
        Ok(p)
    }

    /// Rules that no manifest can satisfy: no (non-revoked) key may sign for them, or the threshold
    /// asks for more distinct keys than may sign.
    fn rule_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.rules {
            let n = self
                .keys
                .iter()
                .filter(|k| !self.revoked.contains(&k.public.id) && key_may_reach(k, r))
                .count();
            let what = format!(
                "rule product `{}` component `{}`",
                r.product,
                r.component.as_deref().unwrap_or("*")
            );
            if n == 0 {
                out.push(format!(
                    "{what} matches no key's products/components scope: no manifest can satisfy it"
                ));
            } else if (n as u64) < u64::from(r.threshold) {
                out.push(format!(
                    "{what} asks for {} signatures but only {n} key(s) may sign for it",
                    r.threshold
                ));
            }
        }
        out
    }

    /// The key ring of the vendor keys that may sign packages of `product`/`component` (`None`: any), in
    /// policy order: what the parsers verify vendor signatures with ([`crate::formats::ParseOptions::keys`]).
    pub fn key_ring(&self, product: Option<&str>, component: Option<&str>) -> KeyRing {
        self.vendor_keys
            .iter()
            .filter(|k| k.scope.allows(product, component))
            .cloned()
            .collect()
    }

    /// The key with this id, if trusted.
    pub fn key(&self, id: KeyId) -> Option<&Key> {
        self.keys.iter().find(|k| k.public.id == id)
    }

    /// Threshold and minimum sequence for a manifest of `product`/`component`, by name alone: the most
    /// specific matching rules (see the module documentation). Use [`TrustPolicy::requirement_for`] to
    /// verify: it also keeps signers from renaming around a stricter rule.
    pub fn requirement(&self, product: &str, component: &str) -> Requirement {
        self.matching(product, component)
            .0
            .unwrap_or(Requirement::NONE)
    }

    /// The requirement of the most specific matching rules, and whether one of them is explicit (names
    /// the product by a literal or a glob other than a bare `*`).
    fn matching(&self, product: &str, component: &str) -> (Option<Requirement>, bool) {
        let score = |r: &Rule| -> Option<u8> {
            if !name_match(&r.product, product) {
                return None;
            }
            let p = if r.product == "*" {
                0
            } else if r.product.contains(['*', '?']) {
                1
            } else {
                2
            };
            match &r.component {
                Some(c) if name_match(c, component) => Some(p * 2 + 1),
                Some(_) => None,
                None => Some(p * 2),
            }
        };
        let scored: Vec<(u8, &Rule)> = self
            .rules
            .iter()
            .filter_map(|r| score(r).map(|s| (s, r)))
            .collect();
        let Some(best) = scored.iter().map(|(s, _)| *s).max() else {
            return (None, false);
        };
        let top = scored.iter().filter(|(s, _)| *s == best).map(|(_, r)| r);
        let mut first = true;
        let req = top.fold(Requirement::NONE, |a, r| {
            let ar = r.anti_rollback.unwrap_or_default();
            let anti_rollback = if std::mem::take(&mut first) {
                ar
            } else {
                a.anti_rollback.union(ar)
            };
            Requirement {
                threshold: a.threshold.max(r.threshold),
                min_sequence: a.min_sequence.max(r.min_sequence),
                anti_rollback,
            }
        });
        (Some(req), best >= 2)
    }

    /// Threshold and minimum sequence for a manifest of `product`/`component` signed by `signers`.
    /// `Err` (refuse, `manifest-threshold-not-met`) when the manifest matches no explicit rule while a
    /// rule with a threshold above 1 could apply to a product/component one of the signers may sign: the
    /// signer chose the name, so it must not choose its way out of the stricter rule.
    pub fn requirement_for(
        &self,
        product: &str,
        component: &str,
        signers: &[&Key],
    ) -> Result<Requirement, Box<RuleEscape>> {
        let (req, explicit) = self.matching(product, component);
        let req = req.unwrap_or(Requirement::NONE);
        if !explicit {
            if let Some((r, k)) = self
                .rules
                .iter()
                .filter(|r| r.threshold > 1)
                .find_map(|r| signers.iter().find(|k| key_may_reach(k, r)).map(|k| (r, k)))
            {
                return Err(Box::new(RuleEscape {
                    product: product.to_string(),
                    component: component.to_string(),
                    key: k.public.id,
                    role: k.role.clone(),
                    rule_product: r.product.clone(),
                    rule_component: r.component.as_deref().unwrap_or("*").to_string(),
                    threshold: r.threshold,
                }));
            }
        }
        Ok(req)
    }
}

/// Whether a key's products/components scope overlaps a rule's product/component globs.
fn key_may_reach(k: &Key, r: &Rule) -> bool {
    let overlaps = |scope: &Option<Vec<String>>, pat: Option<&str>| match (scope, pat) {
        (None, _) | (_, None) => true,
        (Some(g), Some(p)) => g.iter().any(|s| globs_intersect(s, p)),
    };
    overlaps(&k.products, Some(&r.product)) && overlaps(&k.components, r.component.as_deref())
}

/// A product/component glob (`*` any run, `?` one character) over a whole name, ignoring ASCII case.
pub fn name_match(pat: &str, name: &str) -> bool {
    let (p, n) = (pat.as_bytes(), name.as_bytes());
    // Classic two-pointer wildcard match with backtracking to the last `*`: O(|p|·|n|) worst case.
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        match p.get(i) {
            Some(b'*') => {
                star = Some((i, j));
                i = i.saturating_add(1);
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&n[j]) => {
                i = i.saturating_add(1);
                j = j.saturating_add(1);
            }
            _ => match star {
                Some((si, sj)) => {
                    i = si.saturating_add(1);
                    j = sj.saturating_add(1);
                    star = Some((si, j));
                }
                None => return false,
            },
        }
    }
    p.get(i..).unwrap_or(&[]).iter().all(|&c| c == b'*')
}

/// Whether some name matches both globs (ASCII case ignored). Patterns are at most
/// [`MAX_GLOB_LEN`] bytes (checked when the policy is read), so the table stays small.
pub fn globs_intersect(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let w = b.len().saturating_add(1);
    // ok[i][j]: a[i..] and b[j..] have a common match; filled from the ends.
    let mut ok = vec![false; a.len().saturating_add(1).saturating_mul(w)];
    let idx = |i: usize, j: usize| i.saturating_mul(w).saturating_add(j);
    for i in (0..=a.len()).rev() {
        for j in (0..=b.len()).rev() {
            let v = match (a.get(i), b.get(j)) {
                (None, None) => true,
                (Some(b'*'), _) => ok[idx(i + 1, j)] || (j < b.len() && ok[idx(i, j + 1)]),
                (_, Some(b'*')) => ok[idx(i, j + 1)] || (i < a.len() && ok[idx(i + 1, j)]),
                (Some(&x), Some(&y)) => {
                    (x == b'?' || y == b'?' || x.eq_ignore_ascii_case(&y)) && ok[idx(i + 1, j + 1)]
                }
                _ => false,
            };
            ok[idx(i, j)] = v;
        }
    }
    ok[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Scheme;
    use crate::manifest::minisign::SecretKey;

    fn policy(extra: &str) -> String {
        let pk = SecretKey::generate().unwrap().public();
        format!(
            r#"{{"schema_version":1,"keys":[{{"id":"{}","public_key":"{}","role":"vendor"}}]{extra}}}"#,
            pk.id,
            pk.to_base64()
        )
    }

    #[test]
    fn parses_and_picks_most_specific_rule() {
        let p = TrustPolicy::parse(
            policy(
                r#","rules":[{"product":"*","threshold":1,"min_sequence":1},
                   {"product":"X","threshold":2},{"product":"X","component":"bmc","threshold":3,"min_sequence":9}]"#,
            )
            .as_bytes(),
            "t",
        )
        .unwrap();
        assert_eq!(p.requirement("X", "bmc").threshold, 3);
        assert_eq!(p.requirement("X", "bmc").min_sequence, 9);
        assert_eq!(p.requirement("X", "bios").threshold, 2);
        assert_eq!(p.requirement("Y", "bios").min_sequence, 1);
    }

    #[test]
    fn rejects_bad_policies() {
        assert!(TrustPolicy::parse(policy(r#","surprise":1"#).as_bytes(), "t").is_err());
        assert!(TrustPolicy::parse(policy(r#","revoked":["xyz"]"#).as_bytes(), "t").is_err());
        assert!(TrustPolicy::parse(
            policy(r#","rules":[{"product":"X","threshold":0}]"#).as_bytes(),
            "t"
        )
        .is_err());
        let pk = SecretKey::generate().unwrap().public();
        let wrong_id = format!(
            r#"{{"schema_version":1,"keys":[{{"id":"0000000000000001","public_key":"{}","role":"vendor"}}]}}"#,
            pk.to_base64()
        );
        assert!(TrustPolicy::parse(wrong_id.as_bytes(), "t")
            .unwrap_err()
            .to_string()
            .contains("carries key id"));
        let twice = format!(
            r#"{{"schema_version":1,"keys":[{{"id":"{0}","public_key":"{1}","role":"vendor"}},{{"id":"{0}","public_key":"{1}","role":"owner"}}]}}"#,
            pk.id,
            pk.to_base64()
        );
        assert!(TrustPolicy::parse(twice.as_bytes(), "t").is_err());
    }

    #[test]
    fn bootguard_km_hash_pins() {
        let h256 = "ab".repeat(32);
        let h384 = "CD".repeat(48);
        let p = TrustPolicy::parse(
            policy(&format!(
                r#","vendor_keys":[{{"id":"a","type":"bootguard-km-hash","hash":"{h256}","products":["X11*"]}},
                   {{"id":"b","type":"bootguard-km-hash","hash":"{h384}"}}]"#
            ))
            .as_bytes(),
            "t",
        )
        .unwrap();
        let all = p.key_ring(None, None);
        assert_eq!(
            all.bootguard_km_hashes(),
            [&[0xAB; 32][..], &[0xCD; 48][..]]
        );
        assert_eq!(
            p.key_ring(Some("Y"), None).bootguard_km_hashes(),
            [&[0xCD; 48][..]]
        );
        assert!(all.openbmc().is_empty() && all.x509().is_empty());
        for bad in [
            r#""hash":"abcd""#.to_string(),
            format!(r#""hash":"{}""#, "zz".repeat(32)),
            format!(r#""hash":"{}""#, "ab".repeat(33)),
            format!(r#""hash":"{h256}","pem":"x""#),
            String::new(),
        ] {
            let text = policy(&format!(
                r#","vendor_keys":[{{"id":"a","type":"bootguard-km-hash"{}{bad}}}]"#,
                if bad.is_empty() { "" } else { "," }
            ));
            let e = TrustPolicy::parse(text.as_bytes(), "t").unwrap_err();
            assert!(
                e.to_string().contains("bootguard-km-hash needs `hash`"),
                "{bad}: {e}"
            );
        }
    }

    /// A policy with one key of each kind, each scoped differently: the ring answers each scheme's query
    /// with exactly its keys, and holds only the keys whose scope admits the product/component.
    #[test]
    fn key_ring_by_scheme_and_scope() {
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        use x509_cert::der::{DecodePem, Encode};
        let cert_pem = include_str!("../../testdata/x509/root.pem");
        let cert = x509_cert::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
        let rsa_pem = crate::formats::x509::rsa_key(&cert)
            .unwrap()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let keys = serde_json::json!([
            {"id": "bmc", "type": "openbmc", "key_type": "OpenBMC", "pem": rsa_pem,
             "products": ["X11*"], "components": ["bmc"]},
            {"id": "cap", "type": "x509", "pem": cert_pem, "eku": "any", "validity": "ignore",
             "components": ["bios"]},
            {"id": "pin", "type": "bootguard-km-hash", "hash": "ab".repeat(32), "products": ["X12*"]},
        ]);
        let p = TrustPolicy::parse(policy(&format!(r#","vendor_keys":{keys}"#)).as_bytes(), "t")
            .unwrap();
        let ids =
            |r: &KeyRing, s: Scheme| r.for_scheme(s).map(|k| k.id.clone()).collect::<Vec<_>>();

        let all = p.key_ring(None, None);
        assert_eq!(
            all.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            ["bmc", "cap", "pin"]
        );
        assert_eq!(ids(&all, Scheme::OpenbmcRsa), ["bmc"]);
        assert_eq!(ids(&all, Scheme::Pkcs7), ["cap"]);
        assert_eq!(ids(&all, Scheme::BootguardKm), ["pin"]);
        for s in Scheme::ALL
            .iter()
            .filter(|s| !matches!(s, Scheme::OpenbmcRsa | Scheme::Pkcs7 | Scheme::BootguardKm))
        {
            assert!(ids(&all, *s).is_empty(), "{s:?}");
        }
        assert_eq!(
            all.openbmc(),
            [&OpenbmcKey {
                key_type: "OpenBMC".into(),
                hash_type: "RSA-SHA256".into(),
                pem: rsa_pem.clone(),
            }]
        );
        assert_eq!(
            all.x509(),
            [&VendorCert {
                der: cert.to_der().unwrap(),
                rules: Rules {
                    eku: Eku::Any,
                    validity: Validity::Ignore,
                },
            }]
        );
        assert_eq!(all.bootguard_km_hashes(), [&[0xAB; 32][..]]);

        // Scope: product X11 component bmc admits the OpenBMC key only (the certificate is for `bios`,
        // the pin for X12); X12 bios admits the certificate and the pin.
        let x11_bmc = p.key_ring(Some("X11SPW"), Some("bmc"));
        assert_eq!(ids(&x11_bmc, Scheme::OpenbmcRsa), ["bmc"]);
        assert!(x11_bmc.x509().is_empty() && x11_bmc.bootguard_km_hashes().is_empty());
        let x12_bios = p.key_ring(Some("X12DPi"), Some("bios"));
        assert!(x12_bios.openbmc().is_empty());
        assert_eq!(ids(&x12_bios, Scheme::Pkcs7), ["cap"]);
        assert_eq!(ids(&x12_bios, Scheme::BootguardKm), ["pin"]);
        assert!(p.key_ring(Some("Y"), Some("me")).is_empty());
    }

    #[test]
    fn name_globs_and_intersections() {
        assert!(name_match("OVMF-*", "OVMF-X64"));
        assert!(name_match("ovmf-x64", "OVMF-X64"));
        assert!(name_match("*", ""));
        assert!(name_match("a*b*c", "aXXbYYc"));
        assert!(!name_match("a*b*c", "aXXbYY"));
        assert!(!name_match("OVMF-X64", "OVMF-X64-r2"));
        assert!(globs_intersect("OVMF-*", "OVMF-X64"));
        assert!(globs_intersect("OVMF-*", "*-X64"));
        assert!(globs_intersect("OVMF-*", "ovmf-?64"));
        assert!(!globs_intersect("OVMF-*", "X11*"));
        assert!(!globs_intersect("a?", "abc"));
        assert!(globs_intersect("*", "anything"));
    }
}
