//! The verification path: manifest bytes + detached minisign signatures + trust policy (+ anti-rollback
//! state) → [`VerifiedManifest`]. This is the only place a verified manifest is built.
//!
//! [`load_verified`] is the one entry point `scan`, `verify` and `audit` use. Checks, in order (the first
//! failure refuses the manifest with its code, see `src/compare/codes.rs`):
//!
//! 1. the manifest is read once, size-capped before reading (`manifest-too-large`); those exact bytes
//!    are verified and then parsed;
//! 2. signature files: `MANIFEST.minisig`, then `MANIFEST.2.minisig` … `MANIFEST.16.minisig` (or the
//!    files given explicitly); none → `manifest-unsigned`; each size-capped and parsed
//!    (`signature-malformed`);
//! 3. every signature present must be good — fail closed: legacy `Ed` only with `allow_legacy`
//!    (`manifest-legacy-signature`); revoked id (`manifest-key-revoked`); id not in the policy
//!    (`manifest-untrusted-key`); strict Ed25519 over BLAKE2b-512 of the bytes with the key the id names,
//!    and if that fails but another trusted key verifies it, `manifest-key-id-mismatch`, else
//!    `manifest-signature-invalid`; the global signature over the trusted comment
//!    (`manifest-signature-invalid`); key expiry (`key-expired`);
//! 4. the manifest is parsed (`manifest-invalid`); with an expected product (`--product`) the
//!    manifest's must be it (`manifest-product-mismatch`); each trusted comment must agree with the body
//!    (`manifest-comment-mismatch`); each key must be allowed for the product/component
//!    (`manifest-key-not-allowed`);
//! 5. distinct keys ≥ the policy threshold (`manifest-threshold-not-met`); a manifest whose
//!    product/component matches no explicit rule is refused the same way while a rule asking for more
//!    than one signature could apply to a product one of its signers may sign
//!    ([`TrustPolicy::requirement_for`]);
//! 6. expiry at `now` (`manifest-expired`);
//! 7. sequence ≥ the policy minimum and ≥ the highest sequence in the state file (`manifest-rollback`);
//!    a state file (or its directory) that another user could have written is refused
//!    (`trust-state-insecure`, [`super::secure`]);
//! 8. the state file is updated (atomically) only now, after everything passed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::corim;
use super::minisign::{self, KeyId, SigAlg, SignatureFile};
use super::state::State;
use super::trust::{Requirement, TrustPolicy};
use super::{rfc3339, Manifest, Signer, Trust, VerifiedManifest, MAX_MANIFEST_SIZE};
use crate::finding::Code;

/// Most extra signature files looked for (`MANIFEST.2.minisig` … `MANIFEST.16.minisig`).
pub const MAX_SIGNATURE_FILES: usize = 16;

/// A refusal: a stable code, the file it is about, and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {path}: {message}", path = path.display())]
pub struct TrustError {
    pub code: Code,
    pub path: PathBuf,
    pub message: String,
}

fn refuse(code: Code, path: &Path, message: impl Into<String>) -> TrustError {
    TrustError {
        code,
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Inputs of [`load_verified`]. Build once per run (the clock is read once) and reuse for many manifests.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The trust policy; required unless `insecure_unsigned`.
    pub policy: Option<TrustPolicy>,
    /// The time expiry is evaluated at (read once per run, or given with `--at`).
    pub now: SystemTime,
    /// True when `now` came from `--at`; reports say so.
    pub at_override: bool,
    /// Anti-rollback state file; `None` = only the policy minimum is checked.
    pub state: Option<PathBuf>,
    /// Record the accepted sequence in the state file (the CLI turns this off with `--at`).
    pub update_state: bool,
    /// Accept legacy `Ed` (non-prehashed) signatures.
    pub allow_legacy: bool,
    /// Skip every check (`--insecure-unsigned`); the result says UNVERIFIED.
    pub insecure_unsigned: bool,
    /// Signature files to use instead of discovering `MANIFEST.minisig`, `MANIFEST.N.minisig`.
    pub signatures: Vec<PathBuf>,
    /// The product the scanned image is known to be (`--product`): a manifest for any other product is
    /// refused (`manifest-product-mismatch`), so a signer cannot pick a laxer rule by naming another one.
    pub expected_product: Option<String>,
}

impl VerifyOptions {
    /// Options with a policy, the current time and no state.
    pub fn new(policy: Option<TrustPolicy>, now: SystemTime) -> VerifyOptions {
        VerifyOptions {
            policy,
            now,
            at_override: false,
            state: None,
            update_state: true,
            allow_legacy: false,
            insecure_unsigned: false,
            signatures: Vec::new(),
            expected_product: None,
        }
    }
}

/// One accepted signature, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerDetail {
    pub key_id: String,
    pub role: String,
    pub name: Option<String>,
    pub key_expires: Option<String>,
    pub signature_file: PathBuf,
    pub legacy: bool,
    pub trusted_comment: String,
}

/// The full outcome of a successful verification.
#[derive(Debug, Clone)]
pub struct Verification {
    pub manifest: VerifiedManifest,
    pub signers: Vec<SignerDetail>,
    pub requirement: Requirement,
    /// SHA-256 of the manifest file bytes.
    pub sha256: String,
    /// Highest sequence previously in the state file, if one was used.
    pub previous_sequence: Option<u64>,
    pub state_updated: bool,
}

/// Verifies a manifest and returns the only type comparison accepts. See the module documentation.
pub fn load_verified(
    manifest_path: &Path,
    opts: &VerifyOptions,
) -> Result<VerifiedManifest, TrustError> {
    let mp = manifest_path;
    match read_baseline(mp, opts)? {
        Read::Json(bytes) => load_json_manifest(bytes, opts, mp),
        Read::Corim(cv) => verify_corim_manifest(*cv, opts, mp).map(|v| v.manifest),
    }
}

/// A JSON manifest's bytes verified, for a caller that needs only the manifest: without verification
/// (`--insecure-unsigned`) the file's SHA-256 is not computed, since nothing would read it.
fn load_json_manifest(
    bytes: Vec<u8>,
    opts: &VerifyOptions,
    mp: &Path,
) -> Result<VerifiedManifest, TrustError> {
    if opts.insecure_unsigned {
        unsigned_json_manifest(&bytes, opts, mp)
    } else {
        verify_json_manifest(bytes, opts, mp).map(|v| v.manifest)
    }
}

/// The signature files of a manifest: `MANIFEST.minisig`, `MANIFEST.2.minisig` … that exist.
pub fn signature_paths(manifest_path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let base = manifest_path.as_os_str().to_os_string();
    for n in 1..=MAX_SIGNATURE_FILES {
        let mut p = base.clone();
        if n == 1 {
            p.push(".minisig");
        } else {
            p.push(format!(".{n}.minisig"));
        }
        let p = PathBuf::from(p);
        if std::fs::symlink_metadata(&p).is_ok() {
            out.push(p);
        }
    }
    out
}

/// The path `fwscan sign` writes: `MANIFEST.minisig`, or with `add` the first free `MANIFEST.N.minisig`.
pub fn next_signature_path(manifest_path: &Path, add: bool) -> Option<PathBuf> {
    let base = manifest_path.as_os_str().to_os_string();
    let first = {
        let mut p = base.clone();
        p.push(".minisig");
        PathBuf::from(p)
    };
    if !add || !first.exists() {
        return Some(first);
    }
    (2..=MAX_SIGNATURE_FILES)
        .map(|n| {
            let mut p = base.clone();
            p.push(format!(".{n}.minisig"));
            PathBuf::from(p)
        })
        .find(|p| !p.exists())
}

/// SHA-256 (lowercase hex) of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn encode_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_graphic() && b != b'%' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode_value(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The trusted comment `fwscan sign` writes for a manifest (pass it to `minisign -t` to sign with
/// minisign itself): `fwscan product=… component=… version=… sequence=… vendor=… sha256=…`, values
/// percent-encoded where they hold spaces, `%`, `=` or non-ASCII.
pub fn trusted_comment(m: &Manifest, manifest_bytes: &[u8]) -> String {
    format!(
        "fwscan product={} component={} version={} sequence={} vendor={} sha256={}",
        encode_value(&m.product.product),
        encode_value(&m.product.component),
        encode_value(&m.product.version),
        m.sequence,
        encode_value(&m.product.vendor),
        sha256_hex(manifest_bytes)
    )
}

/// How a trusted comment disagrees with the manifest body (code `manifest-comment-mismatch`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommentError {
    #[error("trusted comment `{0}` is not an fwscan comment (`fwscan product=… component=… version=… sequence=…`)")]
    NotFwscan(String),
    #[error("trusted comment field `{0}` is not key=value")]
    NotKeyValue(String),
    #[error("trusted comment field `{0}` is badly encoded")]
    BadlyEncoded(String),
    #[error("trusted comment repeats `{0}`")]
    Repeated(String),
    #[error("trusted comment says {key}={got}, the manifest says {key}={want}")]
    Mismatch {
        key: &'static str,
        got: String,
        want: String,
    },
    #[error("trusted comment has no `{0}=`")]
    Missing(&'static str),
}

/// Checks that a trusted comment agrees with the manifest body. `Err` says how it disagrees.
pub fn check_comment(comment: &str, m: &Manifest, sha256: &str) -> Result<(), CommentError> {
    let rest = comment
        .strip_prefix("fwscan ")
        .ok_or_else(|| CommentError::NotFwscan(comment.to_string()))?;
    let mut fields = std::collections::BTreeMap::new();
    for tok in rest.split(' ').filter(|t| !t.is_empty()) {
        let (k, v) = tok
            .split_once('=')
            .ok_or_else(|| CommentError::NotKeyValue(tok.to_string()))?;
        let v = decode_value(v).ok_or_else(|| CommentError::BadlyEncoded(k.to_string()))?;
        if fields.insert(k.to_string(), v).is_some() {
            return Err(CommentError::Repeated(k.to_string()));
        }
    }
    let seq = m.sequence.to_string();
    let want: [(&'static str, &str, bool); 6] = [
        ("product", &m.product.product, true),
        ("component", &m.product.component, true),
        ("version", &m.product.version, true),
        ("sequence", &seq, true),
        ("vendor", &m.product.vendor, false),
        ("sha256", sha256, false),
    ];
    for (k, v, required) in want {
        match fields.get(k) {
            Some(got) if got == v => {}
            Some(got) => {
                return Err(CommentError::Mismatch {
                    key: k,
                    got: got.clone(),
                    want: v.to_string(),
                })
            }
            None if required => return Err(CommentError::Missing(k)),
            None => {}
        }
    }
    Ok(())
}

/// Like [`load_verified`], with the details `fwscan verify` prints. One step per section of the module
/// documentation.
pub fn verify_manifest(
    manifest_path: &Path,
    opts: &VerifyOptions,
) -> Result<Verification, TrustError> {
    let mp = manifest_path;
    match read_baseline(mp, opts)? {
        Read::Json(bytes) => verify_json_manifest(bytes, opts, mp),
        Read::Corim(cv) => verify_corim_manifest(*cv, opts, mp),
    }
}

/// A baseline as `scan` takes it: a manifest (JSON, or a CoRIM of the fwscan profile), or another
/// producer's CoRIM, whose reference values are located in the image by their keys
/// ([`crate::compare::foreign`]).
#[derive(Debug, Clone)]
pub enum Loaded {
    Manifest(Box<VerifiedManifest>),
    Corim(Box<VerifiedCorim>),
}

/// Another producer's CoRIM (a profile other than fwscan's: no embedded baseline) that passed the same
/// checks as a fwscan-profile CoRIM: signature, signer scope, validity, `--product` against its model,
/// the policy threshold and anti-rollback by its CoMID's tag-version. Only this module builds one.
#[derive(Debug, Clone)]
pub struct VerifiedCorim {
    corim: corim::Corim,
    /// The CoRIM's identity as a manifest with an empty region tree (vendor, model as product, no
    /// component, tag-version as sequence, validity), for reports; never compared against.
    identity: VerifiedManifest,
}

impl VerifiedCorim {
    pub fn corim(&self) -> &corim::Corim {
        &self.corim
    }

    /// The identity and trust reports name (its tree is empty: a reference only, never a baseline).
    pub fn identity(&self) -> &VerifiedManifest {
        &self.identity
    }
}

/// [`verify_manifest`] for `scan`: the same checks, but another producer's CoRIM is accepted as a
/// [`VerifiedCorim`] instead of refused.
pub fn load_baseline(manifest_path: &Path, opts: &VerifyOptions) -> Result<Loaded, TrustError> {
    let mp = manifest_path;
    match read_baseline(mp, opts)? {
        Read::Json(bytes) => {
            load_json_manifest(bytes, opts, mp).map(|v| Loaded::Manifest(Box::new(v)))
        }
        Read::Corim(cv) if cv.corim.profile.as_deref() == Some(corim::PROFILE) => {
            verify_corim_manifest(*cv, opts, mp).map(|v| Loaded::Manifest(Box::new(v.manifest)))
        }
        Read::Corim(cv) => verify_foreign(*cv, opts, mp).map(|c| Loaded::Corim(Box::new(c))),
    }
}

/// The identity of another producer's CoRIM as a manifest with an empty tree: its first CoMID's vendor,
/// model (as the product, no component), tag-version (as the sequence) and the CoRIM's validity.
fn foreign_identity(c: &corim::Corim, sha256: &str) -> Manifest {
    let first = c.comids.first();
    let (product, component) = corim_scope(c);
    let sequence = first.map_or(0, |m| m.tag_version);
    Manifest {
        schema_version: super::SCHEMA_VERSION,
        product: super::Product {
            vendor: first.and_then(|m| m.vendor.clone()).unwrap_or_default(),
            product,
            component,
            version: sequence.to_string(),
            build_id: None,
        },
        sequence,
        created: c
            .not_before
            .or(c.sig_not_before)
            .map(rfc3339)
            .unwrap_or_default(),
        expires: c.not_after.map(rfc3339),
        image: super::ImageInfo {
            size: 0,
            blank_byte: 0xFF,
            sha256: sha256.to_string(),
            format: "corim".into(),
        },
        hash: super::HashParams {
            algorithm: crate::hash::Alg::Sha256,
            block_size: crate::hash::DEFAULT_BLOCK_SIZE,
        },
        layout: None,
        policy: super::PolicyRules::default(),
        r#match: None,
        parts: Vec::new(),
        flash_layout: None,
        vendor_signatures: Vec::new(),
        root: super::Node {
            name: String::new(),
            path: String::new(),
            kind: crate::region::RegionKind::Image,
            space: crate::region::Space::Image,
            base: None,
            offset: 0,
            size: 0,
            policy: crate::region::Policy::Ignore,
            digest: None,
            blocks: Vec::new(),
            attrs: Default::default(),
            notes: Vec::new(),
            children: Vec::new(),
        },
    }
}

/// Another producer's CoRIM, after [`verify_corim_bytes`]: `--product`, threshold, anti-rollback (the
/// CoMID's tag-version against the policy minimum and the state, recorded under the model) as for a
/// fwscan-profile CoRIM.
fn verify_foreign(
    cv: CorimVerification,
    opts: &VerifyOptions,
    mp: &Path,
) -> Result<VerifiedCorim, TrustError> {
    if cv.corim.comids.is_empty() {
        return Err(refuse(
            Code::ManifestInvalid,
            mp,
            "a CoRIM without CoMIDs holds no reference values to compare with",
        ));
    }
    let m = foreign_identity(&cv.corim, &cv.sha256);
    check_product(&m, opts, mp)?;
    if opts.insecure_unsigned {
        return Ok(VerifiedCorim {
            corim: cv.corim,
            identity: m.accept_unsigned_insecure(),
        });
    }
    let (policy, req) = corim_requirement(&cv, &m, opts, mp)?;
    corim_rollback(&cv, &m, &req, opts, mp)?;
    let signers = corim_signers(&cv, mp);
    let trust = trust_of(&signers, signers.len(), &req, policy, opts);
    Ok(VerifiedCorim {
        corim: cv.corim,
        identity: VerifiedManifest { manifest: m, trust },
    })
}

/// The trust policy and its requirement for a CoRIM's product and component, with the threshold met by
/// the distinct `cose` keys whose signatures verified (`manifest-threshold-not-met`).
fn corim_requirement<'o>(
    cv: &CorimVerification,
    m: &Manifest,
    opts: &'o VerifyOptions,
    mp: &Path,
) -> Result<(&'o TrustPolicy, Requirement), TrustError> {
    let policy = opts
        .policy
        .as_ref()
        .ok_or_else(|| refuse(Code::TrustPolicyInvalid, mp, "no trust policy was given"))?;
    let req = policy.requirement(&m.product.product, &m.product.component);
    if (cv.signers.len() as u64) < u64::from(req.threshold) {
        return Err(refuse(
            Code::ManifestThresholdNotMet,
            mp,
            format!(
                "{} distinct trusted cose key(s) signed the CoRIM; the policy needs {} for product `{}` component `{}`",
                cv.signers.len(),
                req.threshold,
                m.product.product,
                m.product.component
            ),
        ));
    }
    Ok((policy, req))
}

fn corim_signers(cv: &CorimVerification, mp: &Path) -> Vec<SignerDetail> {
    cv.signers
        .iter()
        .map(|id| SignerDetail {
            key_id: id.clone(),
            role: "cose".into(),
            name: cv.corim.signer.clone(),
            key_expires: None,
            signature_file: mp.to_path_buf(),
            legacy: false,
            trusted_comment: String::new(),
        })
        .collect()
}

/// Steps 2 to 8 for a JSON manifest's bytes.
fn verify_json_manifest(
    bytes: Vec<u8>,
    opts: &VerifyOptions,
    mp: &Path,
) -> Result<Verification, TrustError> {
    if bytes.len() as u64 > MAX_MANIFEST_SIZE {
        return Err(too_large(bytes.len() as u64, MAX_MANIFEST_SIZE, mp));
    }
    // The manifest's own SHA-256 (named in reports and checked against signers' comments) is computed on
    // one core while the other checks signatures or parses: a large manifest costs the wall clock of one
    // of the two, not both.
    if opts.insecure_unsigned {
        let (sha256, m) = crate::hash::beside(
            || sha256_hex(&bytes),
            || unsigned_json_manifest(&bytes, opts, mp),
        );
        return Ok(Verification {
            manifest: m?,
            signers: Vec::new(),
            requirement: Requirement {
                threshold: 0,
                ..Requirement::NONE
            },
            sha256,
            previous_sequence: None,
            state_updated: false,
        });
    }
    // 2. Signature files.
    let sig_paths = signature_files(mp, opts)?;
    let policy = opts
        .policy
        .as_ref()
        .ok_or_else(|| refuse(Code::TrustPolicyInvalid, mp, "no trust policy was given"))?;
    // 3. Every signature present must be good.
    let (sha256, accepted) = crate::hash::beside(
        || sha256_hex(&bytes),
        || {
            sig_paths
                .iter()
                .map(|sp| check_signature(sp, mp, &bytes, policy, opts))
                .collect::<Result<Vec<_>, _>>()
        },
    );
    let accepted = accepted?;
    // 4. Parse the (now authenticated) bytes; comments and key scopes.
    let m = parse_manifest(&bytes, mp)?;
    check_product(&m, opts, mp)?;
    check_signers(&accepted, &m, &sha256)?;
    // 5. Threshold over distinct keys.
    let (req, distinct) = threshold(&accepted, &m, policy, mp)?;
    // 6. Expiry.
    check_expiry(&m, opts, mp)?;
    // 7. Anti-rollback; 8. the state file recorded only after everything passed.
    let (previous, state_updated) =
        rollback_and_record(&m, &req, &sha256, opts, mp, SEQUENCE_ONLY)?;
    let signers: Vec<SignerDetail> = accepted.into_iter().map(|a| a.detail).collect();
    let trust = trust_of(&signers, distinct, &req, policy, opts);
    Ok(Verification {
        manifest: VerifiedManifest { manifest: m, trust },
        signers,
        requirement: req,
        sha256,
        previous_sequence: previous,
        state_updated,
    })
}

/// Steps 4 and 5 of an unverified JSON manifest (`--insecure-unsigned`): parsed, validated and bound
/// to `--product`; nothing is trusted.
fn unsigned_json_manifest(
    bytes: &[u8],
    opts: &VerifyOptions,
    mp: &Path,
) -> Result<VerifiedManifest, TrustError> {
    let m = parse_manifest(bytes, mp)?;
    check_product(&m, opts, mp)?;
    Ok(m.accept_unsigned_insecure())
}

fn too_large(size: u64, limit: u64, mp: &Path) -> TrustError {
    refuse(
        Code::ManifestTooLarge,
        mp,
        format!("manifest is {size} bytes, larger than the limit of {limit} bytes"),
    )
}

/// Step 1: the manifest's bytes, read once and capped before reading (at the CoRIM limit, which is
/// larger; a JSON manifest is held to its own limit once read).
fn read_manifest(mp: &Path) -> Result<Vec<u8>, TrustError> {
    crate::input::read_capped(mp, corim::MAX_CORIM_SIZE).map_err(|e| match e {
        crate::Error::TooLarge { size, limit, .. } => too_large(size, limit, mp),
        other => refuse(Code::ReadError, mp, other.to_string()),
    })
}

/// What every entry point starts from ([`read_baseline`]).
enum Read {
    /// A JSON manifest's bytes, for the caller's own steps.
    Json(Vec<u8>),
    /// A CoRIM whose signature, signer scope and validity were checked.
    Corim(Box<CorimVerification>),
}

/// Step 1, the file read once and capped before reading; a CoRIM then has its signature, signer scope
/// and validity checked ([`verify_corim_bytes`]).
fn read_baseline(mp: &Path, opts: &VerifyOptions) -> Result<Read, TrustError> {
    let bytes = read_manifest(mp)?;
    if !corim::looks_like(&bytes) {
        return Ok(Read::Json(bytes));
    }
    verify_corim_bytes(&bytes, sha256_hex(&bytes), opts, mp).map(|cv| Read::Corim(Box::new(cv)))
}

/// A CoRIM whose signature, signer scope and validity were checked.
#[derive(Debug, Clone)]
pub struct CorimVerification {
    pub corim: corim::Corim,
    /// The trust-policy `cose` keys whose signatures verified (empty with `insecure_unsigned`).
    pub signers: Vec<String>,
    pub sha256: String,
}

/// The product and component a CoRIM's signer must be scoped to: the fwscan profile's model is
/// `PRODUCT/COMPONENT`; another producer's CoRIM names its model only (and matches no component scope).
fn corim_scope(c: &corim::Corim) -> (String, String) {
    let model = c
        .comids
        .first()
        .and_then(|m| m.model.clone())
        .unwrap_or_default();
    if c.profile.as_deref() == Some(corim::PROFILE) {
        if let Some((p, comp)) = model.rsplit_once('/') {
            return (p.to_string(), comp.to_string());
        }
    }
    (model, String::new())
}

/// Reads, decodes and verifies a CoRIM file: its COSE signature with the trust policy's `cose` keys
/// scoped to the CoRIM's product and component (`manifest-unsigned`, `manifest-untrusted-key`,
/// `manifest-signature-invalid`, `manifest-key-not-allowed`), and its rim-validity and signature
/// validity at the evaluation time (`manifest-expired`, `manifest-not-yet-valid`). Malformed input is
/// `manifest-invalid` with the offset.
pub fn verify_corim(mp: &Path, opts: &VerifyOptions) -> Result<CorimVerification, TrustError> {
    let bytes = read_manifest(mp)?;
    let sha256 = sha256_hex(&bytes);
    verify_corim_bytes(&bytes, sha256, opts, mp)
}

fn verify_corim_bytes(
    bytes: &[u8],
    sha256: String,
    opts: &VerifyOptions,
    mp: &Path,
) -> Result<CorimVerification, TrustError> {
    // A COSE hash envelope: its preimage (beside it) must have the digest it signs.
    let pre = corim::envelope::preimage(bytes, mp)
        .map_err(|e| refuse(Code::ManifestInvalid, mp, format!("CoRIM: {e}")))?;
    if let Some(p) = pre.as_ref().filter(|p| !p.matches()) {
        return Err(refuse(
            Code::ManifestSignatureInvalid,
            mp,
            format!(
                "the COSE hash envelope signs {} {} of its preimage {}, whose {} is {}: the CoRIM was modified after signing",
                p.alg,
                hex::encode(&p.signed),
                p.path.display(),
                p.alg,
                hex::encode(&p.actual)
            ),
        ));
    }
    let mut c = corim::decode_with_preimage(bytes, pre.as_ref().map(|p| p.bytes.as_slice()))
        .map_err(|e| refuse(Code::ManifestInvalid, mp, format!("CoRIM: {e}")))?;
    let mut signers = Vec::new();
    if !opts.insecure_unsigned {
        let mut cert_notes: Vec<String> = Vec::new();
        let policy = opts
            .policy
            .as_ref()
            .ok_or_else(|| refuse(Code::TrustPolicyInvalid, mp, "no trust policy was given"))?;
        if c.signatures.is_empty() {
            return Err(refuse(
                Code::ManifestUnsigned,
                mp,
                "an unsigned CoRIM (#6.501 without COSE)",
            ));
        }
        let keys: Vec<(&crate::formats::keys::RingKey, corim::chain::CoseKey)> = policy
            .vendor_keys
            .iter()
            .filter_map(|k| match &k.key {
                crate::formats::keys::VendorKey::Cose(pem) => {
                    corim::chain::CoseKey::from_pem(pem).ok().map(|v| (k, v))
                }
                _ => None,
            })
            .collect();
        if keys.is_empty() {
            return Err(refuse(
                Code::ManifestUntrustedKey,
                mp,
                format!(
                    "a COSE-signed CoRIM, and the trust policy {} has no vendor key of type `cose`",
                    policy.source
                ),
            ));
        }
        let (product, component) = corim_scope(&c);
        // Why a policy certificate did not vouch for a signature: the first such reason is reported when
        // no key verifies (it names the certificate), rather than a bare "verifies with none".
        let mut why: Option<corim::chain::Refusal> = None;
        for s in &c.signatures {
            let mut hit = None;
            for (k, v) in &keys {
                match v.verify(s, opts.now) {
                    Ok(cert) => {
                        hit = Some((k, cert));
                        break;
                    }
                    Err(r) => {
                        if why.is_none() {
                            why = r;
                        }
                    }
                }
            }
            if let Some((k, cert)) = hit {
                if !k
                    .scope
                    .allows(Some(product.as_str()), Some(component.as_str()))
                {
                    return Err(refuse(
                        Code::ManifestKeyNotAllowed,
                        mp,
                        format!(
                            "signed by cose key `{}`, which may not sign for product `{product}` component `{component}`",
                            k.id
                        ),
                    ));
                }
                if !signers.contains(&k.id) {
                    signers.push(k.id.clone());
                }
                if let Some(cert) = cert {
                    let note = format!("signed by certificate `{cert}` (cose key `{}`)", k.id);
                    if !cert_notes.contains(&note) {
                        cert_notes.push(note);
                    }
                }
            }
        }
        if signers.is_empty() {
            if let Some(r) = why {
                return Err(refuse(
                    r.code,
                    mp,
                    format!("{} (trust policy {})", r.message, policy.source),
                ));
            }
            let algs: Vec<String> = c
                .signatures
                .iter()
                .map(|s| corim::cose::alg_name(s.alg))
                .collect();
            return Err(refuse(
                Code::ManifestSignatureInvalid,
                mp,
                format!(
                    "the COSE signature ({}) verifies with none of the {} `cose` key(s) of the trust policy {} (modified after signing, or signed by an untrusted key)",
                    algs.join(", "),
                    keys.len(),
                    policy.source
                ),
            ));
        }
        c.notes.append(&mut cert_notes);
        if signers.len() < c.signatures.len() {
            let n = c.signatures.len().saturating_sub(signers.len());
            c.notes.push(format!(
                "{n} COSE_Sign signature(s) by keys not in the trust policy"
            ));
        }
    }
    finish_corim(c, signers, sha256, opts, mp)
}

fn finish_corim(
    c: corim::Corim,
    signers: Vec<String>,
    sha256: String,
    opts: &VerifyOptions,
    mp: &Path,
) -> Result<CorimVerification, TrustError> {
    if !opts.insecure_unsigned {
        for (what, nb, na) in [
            ("rim-validity", c.not_before, c.not_after),
            ("signature validity", c.sig_not_before, c.sig_not_after),
        ] {
            if let Some(na) = na {
                if opts.now >= na {
                    return Err(refuse(
                        Code::ManifestExpired,
                        mp,
                        format!(
                            "CoRIM {what} ended at {} (evaluated at {}{})",
                            rfc3339(na),
                            rfc3339(opts.now),
                            given_time(opts)
                        ),
                    ));
                }
            }
            if let Some(nb) = nb {
                if opts.now < nb {
                    return Err(refuse(
                        Code::ManifestNotYetValid,
                        mp,
                        format!(
                            "CoRIM {what} starts at {} (evaluated at {}{})",
                            rfc3339(nb),
                            rfc3339(opts.now),
                            given_time(opts)
                        ),
                    ));
                }
            }
        }
    }
    Ok(CorimVerification {
        corim: c,
        signers,
        sha256,
    })
}

/// A CoRIM given as a baseline: verified ([`verify_corim`]), then, for the fwscan profile, its embedded
/// baseline checked against its reference values and taken through the same product, threshold, expiry
/// and anti-rollback steps as a JSON manifest (the CoMID's tag-version is the sequence).
fn verify_corim_manifest(
    cv: CorimVerification,
    opts: &VerifyOptions,
    mp: &Path,
) -> Result<Verification, TrustError> {
    if cv.corim.profile.as_deref() != Some(corim::PROFILE) {
        return Err(refuse(
            Code::ManifestInvalid,
            mp,
            format!(
                "a CoRIM of profile `{}` ({} reference value(s)): `verify` and `audit` take CoRIMs of the fwscan profile ({}), which carry the region tree; `scan` locates this one's reference values in the image, `fwscan verify` lists them",
                cv.corim.profile.as_deref().unwrap_or("none"),
                cv.corim.measurements().count(),
                corim::PROFILE
            ),
        ));
    }
    let m = corim::profile_baseline(&cv.corim, mp)
        .map_err(|e| refuse(Code::ManifestInvalid, mp, format!("CoRIM: {e}")))?;
    check_product(&m, opts, mp)?;
    if opts.insecure_unsigned {
        return Ok(Verification {
            manifest: m.accept_unsigned_insecure(),
            signers: Vec::new(),
            requirement: Requirement {
                threshold: 0,
                ..Requirement::NONE
            },
            sha256: cv.sha256,
            previous_sequence: None,
            state_updated: false,
        });
    }
    let (policy, req) = corim_requirement(&cv, &m, opts, mp)?;
    check_expiry(&m, opts, mp)?;
    let (previous, state_updated) = corim_rollback(&cv, &m, &req, opts, mp)?;
    let signers = corim_signers(&cv, mp);
    let trust = trust_of(&signers, signers.len(), &req, policy, opts);
    Ok(Verification {
        manifest: VerifiedManifest { manifest: m, trust },
        signers,
        requirement: req,
        sha256: cv.sha256,
        previous_sequence: previous,
        state_updated,
    })
}

/// Anti-rollback of a CoRIM as the policy says: its tag-version (the sequence) and/or the svn of each
/// reference value, against the policy minimum and the state, recorded there.
fn corim_rollback(
    cv: &CorimVerification,
    m: &Manifest,
    req: &Requirement,
    opts: &VerifyOptions,
    mp: &Path,
) -> Result<(Option<u64>, bool), TrustError> {
    let svns = if req.anti_rollback.svn() {
        corim_svns(&cv.corim, mp)?
    } else {
        Vec::new()
    };
    let rb = Rollback {
        sequence: req.anti_rollback.tag_version(),
        svns: &svns,
    };
    rollback_and_record(m, req, &cv.sha256, opts, mp, rb)
}

/// The svn of every reference value that has a key and an svn, by state key (the highest when a key
/// repeats), for svn anti-rollback.
fn corim_svns(c: &corim::Corim, mp: &Path) -> Result<Vec<(String, u64)>, TrustError> {
    let mut by_key = std::collections::BTreeMap::new();
    for (_, m) in c.measurements() {
        if let (Some(k), Some(svn)) = (&m.mkey, m.svn) {
            let e = by_key.entry(corim::state_key(k)).or_insert(svn);
            *e = (*e).max(svn);
        }
    }
    if by_key.len() > MAX_SVN_VALUES {
        return Err(refuse(
            Code::ManifestInvalid,
            mp,
            format!(
                "{} reference values carry an svn; svn anti-rollback records at most {MAX_SVN_VALUES}",
                by_key.len()
            ),
        ));
    }
    Ok(by_key.into_iter().collect())
}

fn parse_manifest(bytes: &[u8], mp: &Path) -> Result<Manifest, TrustError> {
    Manifest::parse(bytes, mp).map_err(|e| refuse(Code::ManifestInvalid, mp, e.to_string()))
}

/// With an expected product (`--product`), the manifest's must be it.
fn check_product(m: &Manifest, opts: &VerifyOptions, mp: &Path) -> Result<(), TrustError> {
    match &opts.expected_product {
        Some(want) if *want != m.product.product => Err(refuse(
            Code::ManifestProductMismatch,
            mp,
            format!(
                "the manifest is for product `{}`, the scan is bound to product `{want}` (--product)",
                m.product.product
            ),
        )),
        _ => Ok(()),
    }
}

/// Step 2: the signature files given, else those found beside the manifest; none is `manifest-unsigned`.
fn signature_files(mp: &Path, opts: &VerifyOptions) -> Result<Vec<PathBuf>, TrustError> {
    let sig_paths = if opts.signatures.is_empty() {
        signature_paths(mp)
    } else {
        opts.signatures.clone()
    };
    if sig_paths.is_empty() {
        return Err(refuse(
            Code::ManifestUnsigned,
            mp,
            format!("no signature (looked for {}.minisig)", mp.display()),
        ));
    }
    Ok(sig_paths)
}

/// A signature that passed step 3: its key id, the policy's key, what `verify` prints, and the file.
struct Accepted<'p> {
    id: KeyId,
    key: &'p super::trust::Key,
    detail: SignerDetail,
    sf: SignatureFile,
}

/// `, a time given by the caller` when `now` came from `--at`.
fn given_time(opts: &VerifyOptions) -> &'static str {
    if opts.at_override {
        ", a time given by the caller"
    } else {
        ""
    }
}

/// Step 3, for one signature file: well-formed, not legacy (unless allowed), by a key of the policy that
/// is not revoked, valid over the manifest's bytes and its trusted comment, by a key not expired.
fn check_signature<'p>(
    sp: &Path,
    mp: &Path,
    bytes: &[u8],
    policy: &'p TrustPolicy,
    opts: &VerifyOptions,
) -> Result<Accepted<'p>, TrustError> {
    let sbytes = crate::input::read_capped(sp, minisign::MAX_SIGNATURE_FILE)
        .map_err(|e| refuse(Code::SignatureMalformed, sp, e.to_string()))?;
    let sf =
        SignatureFile::parse(&sbytes).map_err(|e| refuse(Code::SignatureMalformed, sp, e.0))?;
    if sf.alg == SigAlg::Legacy && !opts.allow_legacy {
        return Err(refuse(
            Code::ManifestLegacySignature,
            sp,
            "legacy non-prehashed `Ed` signature; re-sign it with a current minisign or fwscan",
        ));
    }
    let id = sf.key_id;
    if policy.revoked.contains(&id) {
        return Err(refuse(
            Code::ManifestKeyRevoked,
            sp,
            format!(
                "signed by key {id}, which the trust policy {} revokes",
                policy.source
            ),
        ));
    }
    let Some(key) = policy.key(id) else {
        return Err(refuse(
            Code::ManifestUntrustedKey,
            sp,
            format!(
                "signed by key {id}, which is not in the trust policy {}",
                policy.source
            ),
        ));
    };
    if !sf.verify_data(&key.public, bytes) {
        if let Some(other) = policy
            .keys
            .iter()
            .find(|k| k.public.id != id && sf.verify_data(&k.public, bytes))
        {
            return Err(refuse(
                Code::ManifestKeyIdMismatch,
                sp,
                format!(
                    "the signature file names key {id} but the signature was made by key {}",
                    other.public.id
                ),
            ));
        }
        return Err(refuse(
            Code::ManifestSignatureInvalid,
            sp,
            format!(
                "signature by key {id} does not verify over {} (modified after signing, or not a valid strict Ed25519 signature)",
                mp.display()
            ),
        ));
    }
    if !sf.verify_global(&key.public) {
        return Err(refuse(
            Code::ManifestSignatureInvalid,
            sp,
            format!(
                "the trusted comment's signature by key {id} does not verify (comment modified)"
            ),
        ));
    }
    if let Some(exp) = key.expires {
        if opts.now >= exp {
            return Err(refuse(
                Code::KeyExpired,
                sp,
                format!(
                    "key {id} expired at {} (evaluated at {}{})",
                    rfc3339(exp),
                    rfc3339(opts.now),
                    given_time(opts)
                ),
            ));
        }
    }
    Ok(Accepted {
        id,
        key,
        detail: SignerDetail {
            key_id: id.to_hex(),
            role: key.role.clone(),
            name: key.name.clone(),
            key_expires: key.expires.map(rfc3339),
            signature_file: sp.to_path_buf(),
            legacy: sf.alg == SigAlg::Legacy,
            trusted_comment: sf.trusted_comment.clone(),
        },
        sf,
    })
}

/// Step 4: each trusted comment agrees with the body, and each key may sign for its product/component.
fn check_signers(accepted: &[Accepted], m: &Manifest, sha256: &str) -> Result<(), TrustError> {
    let (product, component) = (&m.product.product, &m.product.component);
    for a in accepted {
        if let Err(why) = check_comment(&a.sf.trusted_comment, m, sha256) {
            return Err(refuse(
                Code::ManifestCommentMismatch,
                &a.detail.signature_file,
                why.to_string(),
            ));
        }
        if !a.key.allows(product, component) {
            return Err(refuse(
                Code::ManifestKeyNotAllowed,
                &a.detail.signature_file,
                format!(
                    "key {} ({}) may not sign for product `{product}` component `{component}`",
                    a.id, a.key.role
                ),
            ));
        }
    }
    Ok(())
}

/// Step 5: the policy's requirement for the manifest, and the number of distinct keys that meet it.
fn threshold(
    accepted: &[Accepted],
    m: &Manifest,
    policy: &TrustPolicy,
    mp: &Path,
) -> Result<(Requirement, usize), TrustError> {
    let (product, component) = (&m.product.product, &m.product.component);
    let signer_keys: Vec<&super::trust::Key> = accepted.iter().map(|a| a.key).collect();
    let req = policy
        .requirement_for(product, component, &signer_keys)
        .map_err(|why| refuse(Code::ManifestThresholdNotMet, mp, why.to_string()))?;
    let distinct: BTreeSet<KeyId> = accepted.iter().map(|a| a.id).collect();
    if (distinct.len() as u64) < u64::from(req.threshold) {
        return Err(refuse(
            Code::ManifestThresholdNotMet,
            mp,
            format!(
                "{} distinct trusted key(s) signed ({} signature file(s)); the policy needs {} for product `{product}` component `{component}`",
                distinct.len(),
                accepted.len(),
                req.threshold
            ),
        ));
    }
    Ok((req, distinct.len()))
}

/// Step 6: the manifest has not expired at `now`.
fn check_expiry(m: &Manifest, opts: &VerifyOptions, mp: &Path) -> Result<(), TrustError> {
    if let Some(exp) = m.expires_at() {
        if opts.now >= exp {
            return Err(refuse(
                Code::ManifestExpired,
                mp,
                format!(
                    "manifest expired at {} (evaluated at {}{})",
                    rfc3339(exp),
                    rfc3339(opts.now),
                    given_time(opts)
                ),
            ));
        }
    }
    Ok(())
}

/// What anti-rollback compares: the sequence (a JSON manifest's always; a CoRIM's tag-version unless the
/// policy's `anti_rollback` is `svn`) and the svn of reference values (a CoRIM under `svn` or `both`:
/// (state key of the mkey, svn)).
#[derive(Debug, Clone, Copy)]
struct Rollback<'a> {
    sequence: bool,
    svns: &'a [(String, u64)],
}

const SEQUENCE_ONLY: Rollback<'static> = Rollback {
    sequence: true,
    svns: &[],
};

/// Most svn-bearing reference values one CoRIM may record in the state file (which is capped at
/// [`super::state::MAX_STATE_SIZE`]).
pub const MAX_SVN_VALUES: usize = 4096;

/// Steps 7 and 8: the sequence is at least the policy minimum and the highest in the state file (which
/// another user must not be able to write); the state file, locked meanwhile, then records it. Returns the
/// highest sequence the state held and whether it was updated.
fn rollback_and_record(
    m: &Manifest,
    req: &Requirement,
    sha256: &str,
    opts: &VerifyOptions,
    mp: &Path,
    rb: Rollback<'_>,
) -> Result<(Option<u64>, bool), TrustError> {
    let (product, component) = (&m.product.product, &m.product.component);
    if rb.sequence && m.sequence < req.min_sequence {
        return Err(refuse(
            Code::ManifestRollback,
            mp,
            format!(
                "sequence {} is below the trust policy minimum {} for product `{product}`",
                m.sequence, req.min_sequence
            ),
        ));
    }
    let Some(sp) = &opts.state else {
        return Ok((None, false));
    };
    super::secure::check_file_or_dir(sp)
        .map_err(|e| refuse(Code::TrustStateInsecure, sp, e.to_string()))?;
    // Held until the state is saved.
    let _lock = if opts.update_state {
        Some(
            super::state::StateLock::acquire(sp)
                .map_err(|e| refuse(Code::TrustStateInvalid, sp, e.to_string()))?,
        )
    } else {
        None
    };
    let mut s = State::load(sp).map_err(|e| refuse(Code::TrustStateInvalid, sp, e.to_string()))?;
    let previous = s.highest(product, component);
    for (mkey, svn) in rb.svns {
        if let Some(h) = s.highest_svn(product, component, mkey) {
            if *svn < h {
                return Err(refuse(
                    Code::ManifestRollback,
                    mp,
                    format!(
                        "reference value `{mkey}`: svn {svn} is below svn {h} already accepted for product `{product}` component `{component}` (state {})",
                        sp.display()
                    ),
                ));
            }
        }
    }
    if let Some(h) = previous.filter(|_| rb.sequence) {
        if m.sequence < h {
            return Err(refuse(
                Code::ManifestRollback,
                mp,
                format!(
                    "sequence {} is below sequence {h} already accepted for product `{product}` component `{component}` (state {})",
                    m.sequence,
                    sp.display()
                ),
            ));
        }
    }
    // 8. Record, only after everything passed.
    let mut state_updated = false;
    let now = rfc3339(opts.now);
    let mut changed = false;
    if opts.update_state {
        if rb.sequence {
            changed |= s.record(product, component, m.sequence, sha256, &now);
        }
        for (mkey, svn) in rb.svns {
            changed |= s.record_svn(product, component, mkey, *svn, sha256, &now);
        }
    }
    if changed {
        s.save(sp)
            .map_err(|e| refuse(Code::TrustStateInvalid, sp, e.to_string()))?;
        state_updated = true;
    }
    Ok((previous, state_updated))
}

/// What every report says about a verified manifest: who signed, under which policy, evaluated when.
fn trust_of(
    signers: &[SignerDetail],
    distinct: usize,
    req: &Requirement,
    policy: &TrustPolicy,
    opts: &VerifyOptions,
) -> Trust {
    let names: Vec<String> = signers
        .iter()
        .map(|s| format!("{} ({})", s.key_id, s.role))
        .collect();
    Trust {
        verified: true,
        signers: signers
            .iter()
            .map(|s| Signer {
                key_id: s.key_id.clone(),
                role: s.role.clone(),
            })
            .collect(),
        evaluated_at: Some(rfc3339(opts.now)),
        at_override: opts.at_override,
        summary: format!(
            "verified: signed by {} ({} of {} required) under trust policy {}; expiry evaluated at {}{}",
            names.join(", "),
            distinct,
            req.threshold,
            policy.source,
            rfc3339(opts.now),
            if opts.at_override { " (given by the caller)" } else { "" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_comment_encoding() {
        for v in ["X11 SPi", "a=b", "100%", "plain", "ünï"] {
            assert_eq!(decode_value(&encode_value(v)).as_deref(), Some(v));
            assert!(!encode_value(v).contains([' ', '=']));
        }
        assert_eq!(decode_value("%4"), None);
        assert_eq!(decode_value("%zz"), None);
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;
    use crate::manifest::minisign::SecretKey;
    use crate::manifest::{BaselineOptions, Product};

    #[test]
    fn concurrent_verifications_never_lower_the_recorded_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let sk = SecretKey::generate().unwrap();
        let pk = sk.public();
        let policy = TrustPolicy::parse(
            format!(
                r#"{{"schema_version":1,"keys":[{{"id":"{}","public_key":"{}","role":"vendor"}}]}}"#,
                pk.id,
                pk.to_base64()
            )
            .as_bytes(),
            "test",
        )
        .unwrap();
        let data = std::sync::Arc::new(crate::input::Data::Owned(vec![5u8; 5000]));
        let tree = crate::formats::parse_image(data, &crate::formats::ParseOptions::default());
        let paths: Vec<PathBuf> = (1..=8u64)
            .map(|seq| {
                let m = Manifest::from_tree(
                    &tree,
                    BaselineOptions {
                        product: Product {
                            vendor: "v".into(),
                            product: "p".into(),
                            component: "bios".into(),
                            version: "1".into(),
                            build_id: None,
                        },
                        sequence: seq,
                        ..BaselineOptions::default()
                    },
                )
                .unwrap();
                let bytes = m.to_json().into_bytes();
                let p = dir.path().join(format!("m{seq}.json"));
                std::fs::write(&p, &bytes).unwrap();
                let sf = sk
                    .sign(&bytes, SigAlg::Prehashed, "t", &trusted_comment(&m, &bytes))
                    .unwrap();
                std::fs::write(
                    dir.path().join(format!("m{seq}.json.minisig")),
                    sf.to_file(),
                )
                .unwrap();
                p
            })
            .collect();
        let mut opts = VerifyOptions::new(Some(policy), SystemTime::now());
        opts.state = Some(dir.path().join("state.json"));
        for _round in 0..3 {
            std::thread::scope(|s| {
                for p in paths.iter().rev() {
                    let opts = &opts;
                    s.spawn(move || match load_verified(p, opts) {
                        Ok(_) => {}
                        Err(e) => assert_eq!(e.code, Code::ManifestRollback, "{e}"),
                    });
                }
            });
            let st = State::load(&dir.path().join("state.json")).unwrap();
            assert_eq!(st.highest("p", "bios"), Some(8));
        }
    }
}
