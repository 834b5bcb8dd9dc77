//! Signed CoRIM (IETF draft-ietf-rats-corim): a baseline's reference values in the attestation world's
//! format. See `docs/corim.md` for the profile.
//!
//! * [`export`] writes one `#6.18` `COSE_Sign1` over a tagged CoRIM `#6.501` holding one CoMID `#6.506`:
//!   an environment `class {vendor, model, layer}` and one reference triple per node the baseline pins
//!   (`mkey` the node path, or the FFS GUID of a UEFI file; `mval` name, digests, flags, svn). The
//!   protected header carries `alg`, content type `application/rim+cbor`, `corim-meta` (signer,
//!   signature validity) and, under the private-use label [`BASELINE_LABEL`], the baseline manifest the
//!   triples were taken from (the region tree's offsets, sizes, kinds and block digests, which CoMID has no
//!   place for). Everything is RFC 8949 core deterministic CBOR and ECDSA nonces are RFC 6979, so the same
//!   image, key and times give the same bytes.
//! * [`decode`] reads what producers ship, bounded ([`cbor`]): `#6.18` `COSE_Sign1`, `#6.98` `COSE_Sign`,
//!   an unsigned `#6.501`, the TCG/early-draft `#6.500`/`#6.502` wrappers, CoMIDs as `#6.506(bstr)` or a
//!   bare bstr, named-information and COSE digest ids. Whatever it tolerates or does not use is listed in
//!   [`Corim::notes`], never silently dropped.

pub mod cbor;
pub mod chain;
pub mod cose;
pub mod envelope;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::Digest as _;

use self::cbor::{CborError, Value};
use super::{Manifest, Node};
use crate::hash::Alg;
use crate::region::Policy;

/// Content type of a CoRIM payload.
pub const CONTENT_TYPE: &str = "application/rim+cbor";
/// The fwscan CoRIM profile (a tag URI under the reserved `.invalid` domain: an identifier that can never
/// collide with a real authority's, not a locator).
pub const PROFILE: &str = "tag:fwscan.invalid,2026:corim-profile/1";
/// Private-use COSE header label (RFC 9052 §16.2: below -65536) of the embedded baseline manifest.
pub const BASELINE_LABEL: i64 = -65537;
/// Largest CoRIM file read.
pub const MAX_CORIM_SIZE: u64 = super::MAX_MANIFEST_SIZE + (32 << 20);
/// Most CoMIDs / measurements decoded from one CoRIM.
pub const MAX_TAGS: usize = 1024;
pub const MAX_MEASUREMENTS: usize = 2_000_000;

const TAG_COSE_SIGN1: u64 = 18;
const TAG_COSE_SIGN: u64 = 98;
const TAG_URI: u64 = 32;
const TAG_EPOCH: u64 = 1;
const TAG_UUID: u64 = 37;
const TAG_OID: u64 = 111;
const TAG_CORIM_LEGACY: u64 = 500;
const TAG_CORIM: u64 = 501;
const TAG_SIGNED_CORIM_LEGACY: u64 = 502;
const TAG_COSWID: u64 = 505;
const TAG_COMID: u64 = 506;
const TAG_COTL: u64 = 508;
const TAG_SVN: u64 = 552;
const TAG_MIN_SVN: u64 = 553;

/// Node attributes that carry a security version number, in order of preference.
pub const SVN_ATTRS: &[&str] = &["svn", "km-svn", "bpm-svn", "lowest-supported-version"];

/// What the export needs besides the manifest.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// `corim-meta` signer name (and the CoRIM's manifest-creator entity).
    pub signer: String,
    /// Validity start (rim-validity and signature validity `not-before`).
    pub not_before: SystemTime,
    /// Validity end; `None`: no rim-validity and an open signature validity.
    pub not_after: Option<SystemTime>,
    /// The signer's certificate chain (DER, leaf first) for the `x5chain` header (33); empty: none.
    pub x5chain: Vec<Vec<u8>>,
}

/// A measurement's key (`mkey`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MKey {
    /// A node path (`/` for the image root) or another producer's text key.
    Text(String),
    /// A UUID (`#6.37`), in RFC 4122 byte order; fwscan writes an FFS file GUID this way.
    Uuid([u8; 16]),
    Uint(u64),
    Oid(Vec<u8>),
}

impl std::fmt::Display for MKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MKey::Text(s) => write!(f, "{s}"),
            MKey::Uuid(u) => write!(f, "{}", uuid_text(u)),
            MKey::Uint(n) => write!(f, "{n}"),
            MKey::Oid(o) => write!(f, "oid:{}", hex::encode(o)),
        }
    }
}

/// A reference value's key as the anti-rollback state records it: a text key as it is, `uuid:` and the
/// UUID's text, `uint:N`, `oid:HEX`.
pub fn state_key(k: &MKey) -> String {
    match k {
        MKey::Text(s) => s.clone(),
        MKey::Uuid(u) => format!("uuid:{}", uuid_text(u)),
        MKey::Uint(n) => format!("uint:{n}"),
        MKey::Oid(o) => format!("oid:{}", hex::encode(o)),
    }
}

/// One reference value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Measurement {
    pub mkey: Option<MKey>,
    pub name: Option<String>,
    /// (named-information algorithm name `sha-256`/`sha-384`/`sha-512` or `alg N`, digest bytes).
    pub digests: Vec<(String, Vec<u8>)>,
    pub immutable: Option<bool>,
    pub runtime_updatable: Option<bool>,
    pub svn: Option<u64>,
    /// The svn is a minimum (`#6.553`).
    pub min_svn: bool,
}

/// One CoMID's environment and reference values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Comid {
    pub tag_id: String,
    pub tag_version: u64,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub layer: Option<u64>,
    pub index: Option<u64>,
    pub measurements: Vec<Measurement>,
}

/// One signature of the CoRIM and the bytes it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub alg: i128,
    pub tbs: Vec<u8>,
    pub sig: Vec<u8>,
    /// The signer's `x5chain` (COSE header 33, RFC 9360): DER certificates, leaf first; empty when absent.
    pub x5chain: Vec<Vec<u8>>,
}

/// A decoded CoRIM.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Corim {
    pub id: String,
    pub profile: Option<String>,
    pub not_before: Option<SystemTime>,
    pub not_after: Option<SystemTime>,
    pub signer: Option<String>,
    pub sig_not_before: Option<SystemTime>,
    pub sig_not_after: Option<SystemTime>,
    /// Empty when the CoRIM is unsigned.
    pub signatures: Vec<Signature>,
    pub comids: Vec<Comid>,
    /// The embedded fwscan baseline manifest (JSON), from the protected header.
    pub baseline: Option<Vec<u8>>,
    /// What was tolerated, skipped or not understood.
    pub notes: Vec<String>,
}

impl Corim {
    /// Every measurement with its CoMID.
    pub fn measurements(&self) -> impl Iterator<Item = (&Comid, &Measurement)> {
        self.comids
            .iter()
            .flat_map(|c| c.measurements.iter().map(move |m| (c, m)))
    }
}

/// A CoRIM that cannot be read: a message and the offset (in the file, or in the named inner document).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CorimError {
    pub message: String,
}

fn bad<T>(message: impl Into<String>) -> Result<T, CorimError> {
    Err(CorimError {
        message: message.into(),
    })
}

fn cbor_in(what: &str, e: CborError) -> CorimError {
    CorimError {
        message: format!("{what}: {e}"),
    }
}

/// True when bytes start like a CoRIM: a CBOR tag (major type 6: the `#6.18`/`#6.98` COSE envelope, the
/// `#6.501` CoRIM or the TCG `#6.500`/`#6.502` wrappers) or a bare CBOR map. fwscan treats such a
/// `--manifest` as a CoRIM; anything else (JSON, garbage) goes down the JSON path and its size check.
pub fn looks_like(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(0xA0..=0xDB))
}

/// RFC 4122 text of a UUID.
pub fn uuid_text(u: &[u8; 16]) -> String {
    let h = hex::encode(u).to_ascii_uppercase();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A UUID from its text form (`8-4-4-4-12` hex).
pub fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let h: String = s.chars().filter(|c| *c != '-').collect();
    if h.len() != 32 || s.len() != 36 {
        return None;
    }
    hex::decode(h).ok()?.try_into().ok()
}

/// A name-based UUID (version 8, RFC 9562 §5.8) from a SHA-256 over `parts`.
fn uuid_of(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut u = [0u8; 16];
    u.copy_from_slice(&d[..16]);
    u[6] = (u[6] & 0x0f) | 0x80;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

fn epoch(t: SystemTime) -> Value {
    let s = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Value::Tag(TAG_EPOCH, Box::new(Value::Uint(s)))
}

fn validity(nb: Option<SystemTime>, na: SystemTime) -> Value {
    let mut m = Vec::new();
    if let Some(nb) = nb {
        m.push((Value::Uint(0), epoch(nb)));
    }
    m.push((Value::Uint(1), epoch(na)));
    Value::Map(m)
}

/// The measurement key of a node: its FFS GUID when it is a UEFI file whose GUID no other pinned node
/// shares, else its path (`/` for the root).
fn mkey_of(n: &Node, unique_guids: &std::collections::HashSet<String>) -> MKey {
    if n.kind == crate::region::RegionKind::File {
        if let Some(g) = n.attrs.get("guid").and_then(|g| g.as_str()) {
            if unique_guids.contains(g) {
                if let Some(u) = uuid_bytes(g) {
                    return MKey::Uuid(u);
                }
            }
        }
    }
    MKey::Text(if n.path.is_empty() {
        "/".into()
    } else {
        n.path.clone()
    })
}

/// The nodes a baseline pins (in tree order): every node that is compared (`static` or `blank`, with a
/// digest) and every node declared per-machine (`mutable`). `ignore` nodes are not looked at and are left
/// out.
pub fn pinned(m: &Manifest) -> Vec<&Node> {
    let mut out = Vec::new();
    m.root.walk(&mut |n| match n.policy {
        Policy::Static | Policy::Blank if n.digest.is_some() => out.push(n),
        Policy::Mutable => out.push(n),
        _ => {}
    });
    out
}

/// GUIDs that exactly one pinned UEFI file carries.
fn unique_guids(nodes: &[&Node]) -> std::collections::HashSet<String> {
    let mut count: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for n in nodes {
        if n.kind == crate::region::RegionKind::File {
            if let Some(g) = n.attrs.get("guid").and_then(|g| g.as_str()) {
                let c = count.entry(g).or_default();
                *c = c.saturating_add(1);
            }
        }
    }
    count
        .into_iter()
        .filter(|(_, c)| *c == 1)
        .map(|(g, _)| g.to_string())
        .collect()
}

/// Named-information id of a digest algorithm.
fn ni_id(alg: Alg) -> u64 {
    match alg {
        Alg::Sha256 => 1,
        Alg::Sha384 => 7,
    }
}

/// The svn a node carries, if any.
pub fn svn_of(n: &Node) -> Option<u64> {
    SVN_ATTRS
        .iter()
        .find_map(|k| n.attrs.get(k).and_then(|v| v.as_u64()))
}

/// The reference values of a manifest's pinned nodes: (mkey, measurement) in tree order.
pub fn measurements_of(m: &Manifest) -> Vec<Measurement> {
    let nodes = pinned(m);
    let guids = unique_guids(&nodes);
    let alg = match m.hash.algorithm {
        Alg::Sha256 => "sha-256",
        Alg::Sha384 => "sha-384",
    };
    nodes
        .iter()
        .map(|n| {
            let is_static = n.policy != Policy::Mutable;
            Measurement {
                mkey: Some(mkey_of(n, &guids)),
                name: Some(n.name.clone()),
                digests: n
                    .digest
                    .as_deref()
                    .filter(|_| is_static)
                    .and_then(|d| hex::decode(d).ok())
                    .map(|d| vec![(alg.to_string(), d)])
                    .unwrap_or_default(),
                immutable: is_static.then_some(true),
                runtime_updatable: (!is_static).then_some(true),
                svn: svn_of(n),
                // A per-machine node may be updated in the field: its svn is a minimum (#6.553).
                min_svn: !is_static && svn_of(n).is_some(),
            }
        })
        .collect()
}

fn measurement_value(m: &Measurement, alg: Alg) -> Value {
    let mut mval = Vec::new();
    match m.svn {
        Some(s) if m.min_svn => mval.push((
            Value::Uint(1),
            Value::Tag(TAG_MIN_SVN, Box::new(Value::Uint(s))),
        )),
        Some(s) => mval.push((Value::Uint(1), Value::Uint(s))),
        None => {}
    }
    if !m.digests.is_empty() {
        mval.push((
            Value::Uint(2),
            Value::Array(
                m.digests
                    .iter()
                    .map(|(_, d)| {
                        Value::Array(vec![Value::Uint(ni_id(alg)), Value::Bytes(d.clone())])
                    })
                    .collect(),
            ),
        ));
    }
    let mut flags = Vec::new();
    if let Some(b) = m.immutable {
        flags.push((Value::Uint(7), Value::Bool(b)));
    }
    if let Some(b) = m.runtime_updatable {
        flags.push((Value::Uint(10), Value::Bool(b)));
    }
    if !flags.is_empty() {
        mval.push((Value::Uint(3), Value::Map(flags)));
    }
    if let Some(n) = &m.name {
        mval.push((Value::Uint(11), Value::text(n.clone())));
    }
    let mkey = match &m.mkey {
        Some(MKey::Text(s)) => Value::text(s.clone()),
        Some(MKey::Uuid(u)) => Value::Tag(TAG_UUID, Box::new(Value::Bytes(u.to_vec()))),
        Some(MKey::Uint(n)) => Value::Uint(*n),
        Some(MKey::Oid(o)) => Value::Tag(TAG_OID, Box::new(Value::Bytes(o.clone()))),
        None => Value::Null,
    };
    let mut mm = Vec::new();
    if mkey != Value::Null {
        mm.push((Value::Uint(0), mkey));
    }
    mm.push((Value::Uint(1), Value::Map(mval)));
    Value::Map(mm)
}

/// The environment-class `model` of a manifest: `PRODUCT/COMPONENT`.
pub fn model_of(m: &Manifest) -> String {
    format!("{}/{}", m.product.product, m.product.component)
}

/// The signed CoRIM of a manifest (see the module documentation).
pub fn export(m: &Manifest, key: &cose::SigningKey, opts: &ExportOptions) -> Vec<u8> {
    let (mut protected, payload) = export_parts(m, key, opts);
    protected.push((Value::Uint(3), Value::text(CONTENT_TYPE)));
    cose::sign1(&Value::Map(protected), &payload, key)
}

/// A COSE hash envelope ([`envelope`]) and its preimage, the unsigned CoRIM `#6.501` of a manifest:
/// (envelope, CoRIM). `location` is the CoRIM's file name, beside the envelope.
pub fn export_envelope(
    m: &Manifest,
    key: &cose::SigningKey,
    opts: &ExportOptions,
    location: &str,
) -> (Vec<u8>, Vec<u8>) {
    let (mut protected, payload) = export_parts(m, key, opts);
    protected.extend([
        (
            Value::Uint(envelope::PAYLOAD_HASH_ALG),
            Value::int(envelope::COSE_SHA256),
        ),
        (
            Value::Uint(envelope::PAYLOAD_PREIMAGE_CONTENT_TYPE),
            Value::text(CONTENT_TYPE),
        ),
        (
            Value::Uint(envelope::PAYLOAD_LOCATION),
            Value::text(location),
        ),
    ]);
    let digest = sha2::Sha256::digest(&payload).to_vec();
    (cose::sign1(&Value::Map(protected), &digest, key), payload)
}

/// The protected header entries (without content type) and the encoded `#6.501` CoRIM of a manifest.
fn export_parts(
    m: &Manifest,
    key: &cose::SigningKey,
    opts: &ExportOptions,
) -> (Vec<(Value, Value)>, Vec<u8>) {
    let baseline = m.to_json().into_bytes();
    let model = model_of(m);
    let corim_id = uuid_of(&[b"fwscan corim", &baseline]);
    let comid_id = uuid_of(&[b"fwscan comid", &baseline]);
    let triples: Vec<Value> = measurements_of(m)
        .iter()
        .map(|x| measurement_value(x, m.hash.algorithm))
        .collect();
    let env = Value::Map(vec![(
        Value::Uint(0),
        Value::Map(vec![
            (Value::Uint(1), Value::text(m.product.vendor.clone())),
            (Value::Uint(2), Value::text(model)),
            (Value::Uint(3), Value::Uint(0)),
        ]),
    )]);
    let comid = Value::Map(vec![
        (
            Value::Uint(1),
            Value::Map(vec![
                (Value::Uint(0), Value::Bytes(comid_id.to_vec())),
                (Value::Uint(1), Value::Uint(m.sequence)),
            ]),
        ),
        (
            Value::Uint(2),
            Value::Array(vec![Value::Map(vec![
                (Value::Uint(0), Value::text(m.product.vendor.clone())),
                // tag-creator, creator
                (
                    Value::Uint(2),
                    Value::Array(vec![Value::Uint(0), Value::Uint(1)]),
                ),
            ])]),
        ),
        (
            Value::Uint(4),
            Value::Map(vec![(
                Value::Uint(0),
                Value::Array(vec![Value::Array(vec![env, Value::Array(triples)])]),
            )]),
        ),
    ]);
    let mut corim = vec![
        (Value::Uint(0), Value::Bytes(corim_id.to_vec())),
        (
            Value::Uint(1),
            Value::Array(vec![Value::Tag(
                TAG_COMID,
                Box::new(Value::Bytes(cbor::encode(&comid))),
            )]),
        ),
        (
            Value::Uint(3),
            Value::Tag(TAG_URI, Box::new(Value::text(PROFILE))),
        ),
        (
            Value::Uint(5),
            Value::Array(vec![Value::Map(vec![
                (Value::Uint(0), Value::text(opts.signer.clone())),
                // manifest-creator
                (Value::Uint(2), Value::Array(vec![Value::Uint(1)])),
            ])]),
        ),
    ];
    if let Some(na) = opts.not_after {
        corim.push((Value::Uint(4), validity(Some(opts.not_before), na)));
    }
    let payload = cbor::encode(&Value::Tag(TAG_CORIM, Box::new(Value::Map(corim))));
    let mut meta = vec![(
        Value::Uint(0),
        Value::Map(vec![(Value::Uint(0), Value::text(opts.signer.clone()))]),
    )];
    if let Some(na) = opts.not_after {
        meta.push((Value::Uint(1), validity(Some(opts.not_before), na)));
    }
    let mut protected = vec![
        (Value::Uint(1), Value::int(key.alg())),
        (
            Value::Uint(8),
            Value::Bytes(cbor::encode(&Value::Map(meta))),
        ),
        (Value::int(BASELINE_LABEL), Value::Bytes(baseline)),
    ];
    match opts.x5chain.as_slice() {
        [] => {}
        [one] => protected.push((Value::Uint(33), Value::Bytes(one.clone()))),
        many => protected.push((
            Value::Uint(33),
            Value::Array(many.iter().cloned().map(Value::Bytes).collect()),
        )),
    }
    (protected, payload)
}

// ---------------------------------------------------------------------------------------------------
// Decoding.

fn time_of(v: &Value, what: &str) -> Result<SystemTime, CorimError> {
    let inner = match v {
        Value::Tag(TAG_EPOCH, x) => x.as_ref(),
        Value::Tag(0, x) => {
            let s = x.as_text().unwrap_or_default();
            return super::parse_time(s).or_else(|e| bad(format!("{what}: {e}")));
        }
        x => x,
    };
    match inner {
        Value::Uint(s) => Ok(UNIX_EPOCH + Duration::from_secs(*s)),
        Value::Float(f) if f.is_finite() && *f >= 0.0 && *f < 1.0e12 => {
            Ok(UNIX_EPOCH + Duration::from_secs_f64(*f))
        }
        other => bad(format!(
            "{what}: expected a time (#6.1 epoch seconds), found a {}",
            other.type_name()
        )),
    }
}

fn validity_of(
    v: &Value,
    what: &str,
) -> Result<(Option<SystemTime>, Option<SystemTime>), CorimError> {
    if v.as_map().is_none() {
        return bad(format!(
            "{what}: expected a validity map, found a {}",
            v.type_name()
        ));
    }
    let nb = v.get(0).map(|t| time_of(t, what)).transpose()?;
    let na = v.get(1).map(|t| time_of(t, what)).transpose()?;
    Ok((nb, na))
}

fn decode_in(bytes: &[u8], what: &str) -> Result<Value, CorimError> {
    cbor::decode(bytes).map_err(|e| cbor_in(what, e))
}

/// Decodes a CoRIM file (signed or not). Signatures are collected, not verified ([`verify`]). A COSE
/// hash envelope is refused here: [`decode_with_preimage`] takes its preimage.
pub fn decode(bytes: &[u8]) -> Result<Corim, CorimError> {
    decode_with_preimage(bytes, None)
}

/// [`decode`], where a COSE hash envelope ([`envelope`]) signs the digest of `preimage`, the CoRIM
/// decoded. The caller has checked the digest ([`envelope::preimage`]).
pub fn decode_with_preimage(bytes: &[u8], preimage: Option<&[u8]>) -> Result<Corim, CorimError> {
    if bytes.len() as u64 > MAX_CORIM_SIZE {
        return bad(format!("larger than {MAX_CORIM_SIZE} bytes"));
    }
    let top = decode_in(bytes, "CoRIM file")?;
    let mut c = Corim::default();
    let mut v = &top;
    // TCG / early-draft wrappers.
    while let Some((t, inner)) = v.as_tag() {
        if t == TAG_CORIM_LEGACY || t == TAG_SIGNED_CORIM_LEGACY {
            c.notes.push(format!(
                "tolerated: #6.{t} wrapper (early-draft / TCG encoding)"
            ));
            v = inner;
        } else {
            break;
        }
    }
    let payload: Vec<u8> = match v.as_tag() {
        Some((TAG_COSE_SIGN1, msg)) => {
            let payload = sign1_payload(msg, &mut c)?;
            let prot = msg
                .as_array()
                .and_then(|a| a.first())
                .and_then(Value::as_bytes)
                .unwrap_or_default();
            if envelope::is_envelope_header(prot) {
                let Some(p) = preimage else {
                    return bad("a COSE hash envelope (payload_hash_alg 258): its preimage is read beside it (`fwscan verify`/`scan` do)");
                };
                c.notes.push(format!(
                    "COSE hash envelope: the signature covers the digest of the preimage ({} bytes)",
                    p.len()
                ));
                p.to_vec()
            } else {
                payload
            }
        }
        Some((TAG_COSE_SIGN, msg)) => sign_payload(msg, &mut c)?,
        Some((TAG_CORIM, _)) => {
            c.notes.push("unsigned CoRIM (#6.501)".into());
            return corim_map(v, &mut c).map(|_| c);
        }
        Some((t, _)) => {
            return bad(format!(
                "CoRIM file at offset 0x0: wrong tag #6.{t} (expected #6.18 COSE_Sign1, #6.98 COSE_Sign or #6.501 CoRIM)"
            ))
        }
        None => {
            return bad(format!(
                "CoRIM file at offset 0x0: an untagged {} (expected #6.18 COSE_Sign1, #6.98 COSE_Sign or #6.501 CoRIM)",
                v.type_name()
            ))
        }
    };
    let inner = decode_in(&payload, "COSE payload")?;
    let inner = if inner.as_tag().is_some_and(|(t, _)| t == TAG_CORIM) {
        inner
    } else if inner.as_map().is_some() {
        c.notes
            .push("tolerated: untagged CoRIM map in the COSE payload".into());
        Value::Tag(TAG_CORIM, Box::new(inner))
    } else {
        return bad(format!(
            "COSE payload at offset 0x0: expected #6.501 CoRIM, found a {}",
            match inner.as_tag() {
                Some((t, _)) => format!("tag #6.{t}"),
                None => inner.type_name().into(),
            }
        ));
    };
    corim_map(&inner, &mut c)?;
    Ok(c)
}

/// The protected header: alg, content type, corim-meta, the fwscan baseline. Returns alg.
fn protected_header(prot: &[u8], c: &mut Corim) -> Result<i128, CorimError> {
    if prot.is_empty() {
        return bad("COSE protected header is empty (no alg)");
    }
    let h = decode_in(prot, "COSE protected header")?;
    if h.as_map().is_none() {
        return bad("COSE protected header is not a map");
    }
    let alg = h.get(1).and_then(Value::as_int).ok_or_else(|| CorimError {
        message: "COSE protected header has no integer alg (1)".into(),
    })?;
    match h.get(3) {
        Some(Value::Text(t)) if t == CONTENT_TYPE => {}
        Some(Value::Text(t)) if t.starts_with(CONTENT_TYPE) => {
            c.notes.push(format!("tolerated: content type `{t}`"));
        }
        Some(other) => {
            return bad(format!(
                "COSE content type is {}, not `{CONTENT_TYPE}`",
                match other {
                    Value::Text(t) => format!("`{t}`"),
                    o => format!("a {}", o.type_name()),
                }
            ))
        }
        None if h.get(i128::from(envelope::PAYLOAD_HASH_ALG)).is_some() => {}
        None => c
            .notes
            .push("tolerated: no content type (3) in the protected header".into()),
    }
    if let Some(meta) = h.get(8) {
        let meta = match meta {
            Value::Bytes(b) => decode_in(b, "corim-meta")?,
            m => {
                c.notes
                    .push("tolerated: corim-meta not wrapped in a bstr".into());
                m.clone()
            }
        };
        c.signer = meta
            .get(0)
            .and_then(|s| s.get(0))
            .and_then(Value::as_text)
            .map(str::to_string);
        if let Some(v) = meta.get(1) {
            let (nb, na) = validity_of(v, "corim-meta signature-validity")?;
            c.sig_not_before = nb;
            c.sig_not_after = na;
        }
    } else if h.get(15).is_some() {
        c.notes.push("CWT-Claims (15) header not read".into());
    }
    if let Some(b) = h.get(i128::from(BASELINE_LABEL)) {
        match b {
            Value::Bytes(b) => c.baseline = Some(b.clone()),
            o => {
                return bad(format!(
                    "fwscan baseline header is a {}, not a bstr",
                    o.type_name()
                ))
            }
        }
    }
    Ok(alg)
}

fn sign1_payload(msg: &Value, c: &mut Corim) -> Result<Vec<u8>, CorimError> {
    let a = match msg.as_array() {
        Some(a) if a.len() == 4 => a,
        _ => return bad("COSE_Sign1 is not an array of four items"),
    };
    let prot = a[0].as_bytes().ok_or_else(|| CorimError {
        message: "COSE_Sign1 protected header is not a bstr".into(),
    })?;
    let alg = protected_header(prot, c)?;
    let payload = match &a[2] {
        Value::Bytes(p) => p.clone(),
        Value::Null => return bad("COSE_Sign1 payload is detached (nil): give the payload (hash envelopes are not supported)"),
        o => return bad(format!("COSE_Sign1 payload is a {}, not a bstr", o.type_name())),
    };
    let sig = a[3].as_bytes().ok_or_else(|| CorimError {
        message: "COSE_Sign1 signature is not a bstr".into(),
    })?;
    c.signatures.push(Signature {
        alg,
        tbs: cose::sig_structure1(prot, &payload),
        sig: sig.to_vec(),
        x5chain: chain::x5chain_of(&[prot], &[&a[1]])?,
    });
    Ok(payload)
}

fn sign_payload(msg: &Value, c: &mut Corim) -> Result<Vec<u8>, CorimError> {
    let a = match msg.as_array() {
        Some(a) if a.len() == 4 => a,
        _ => return bad("COSE_Sign is not an array of four items"),
    };
    let prot = a[0].as_bytes().ok_or_else(|| CorimError {
        message: "COSE_Sign protected header is not a bstr".into(),
    })?;
    let body = if prot.is_empty() {
        Value::Map(Vec::new())
    } else {
        decode_in(prot, "COSE_Sign protected header")?
    };
    // The body header carries content type and corim-meta; each signer its alg.
    if body.get(8).is_some() || body.get(3).is_some() {
        let mut tmp = body.clone();
        if let Value::Map(m) = &mut tmp {
            if !m.iter().any(|(k, _)| k.as_int() == Some(1)) {
                m.push((Value::Uint(1), Value::int(0)));
            }
        }
        protected_header(&cbor::encode(&tmp), c)?;
    }
    let payload = match &a[2] {
        Value::Bytes(p) => p.clone(),
        _ => return bad("COSE_Sign payload is not a bstr"),
    };
    let signers = a[3].as_array().ok_or_else(|| CorimError {
        message: "COSE_Sign signatures is not an array".into(),
    })?;
    c.notes.push(format!(
        "tolerated: #6.98 COSE_Sign with {} signer(s)",
        signers.len()
    ));
    for s in signers.iter().take(64) {
        let s = match s.as_array() {
            Some(s) if s.len() == 3 => s,
            _ => return bad("COSE_Signature is not an array of three items"),
        };
        let sp = s[0].as_bytes().unwrap_or_default();
        let alg = if sp.is_empty() {
            None
        } else {
            decode_in(sp, "COSE_Signature protected header")?
                .get(1)
                .and_then(Value::as_int)
        };
        let Some(sig) = s[2].as_bytes() else {
            return bad("COSE_Signature without a bstr signature");
        };
        // OCP S.A.F.E. reports name no alg at all (a `kid` only): the trusted key's type decides it.
        let alg = match alg {
            Some(a) => a,
            None if s[1].get(1).is_none() => {
                c.notes.push(format!(
                    "tolerated: COSE_Sign signer {} names no alg; the verifying key's type decides it (one algorithm per key type)",
                    c.signatures.len()
                ));
                cose::ALG_ABSENT
            }
            None => return bad("COSE_Signature with an unprotected alg (it must be protected)"),
        };
        c.signatures.push(Signature {
            alg,
            tbs: cose::sig_structure(prot, sp, &payload),
            sig: sig.to_vec(),
            x5chain: chain::x5chain_of(&[sp, prot], &[&s[1], &a[1]])?,
        });
    }
    Ok(payload)
}

fn corim_map(v: &Value, c: &mut Corim) -> Result<(), CorimError> {
    let m = match v.as_tag() {
        Some((TAG_CORIM, m)) if m.as_map().is_some() => m,
        _ => return bad("CoRIM: #6.501 does not hold a map"),
    };
    c.id = match m.get(0) {
        Some(Value::Text(t)) => t.clone(),
        Some(Value::Bytes(b)) if b.len() == 16 => {
            uuid_text(&<[u8; 16]>::try_from(b.as_slice()).unwrap_or_default())
        }
        Some(o) => {
            return bad(format!(
                "CoRIM id is a {}, not a text or UUID",
                o.type_name()
            ))
        }
        None => return bad("CoRIM has no id (0)"),
    };
    c.profile = match m.get(3) {
        Some(Value::Tag(TAG_URI, u)) => u.as_text().map(str::to_string),
        Some(Value::Text(t)) => {
            c.notes.push("tolerated: untagged profile URI".into());
            Some(t.clone())
        }
        Some(Value::Tag(TAG_OID, o)) => Some(format!(
            "oid:{}",
            hex::encode(o.as_bytes().unwrap_or_default())
        )),
        Some(o) => return bad(format!("CoRIM profile is a {}", o.type_name())),
        None => None,
    };
    if let Some(v) = m.get(4) {
        let (nb, na) = validity_of(v, "rim-validity")?;
        c.not_before = nb;
        c.not_after = na;
    }
    for (k, _) in m.as_map().unwrap_or_default() {
        if !matches!(k.as_int(), Some(0..=5)) {
            c.notes
                .push(format!("CoRIM extension {} not read", show_key(k)));
        }
    }
    if m.get(2).is_some() {
        c.notes
            .push("dependent-rims (2) listed by the CoRIM are not fetched".into());
    }
    let tags = m
        .get(1)
        .and_then(Value::as_array)
        .ok_or_else(|| CorimError {
            message: "CoRIM has no tags array (1)".into(),
        })?;
    if tags.len() > MAX_TAGS {
        return bad(format!("CoRIM has more than {MAX_TAGS} tags"));
    }
    let mut total = 0usize;
    for (i, t) in tags.iter().enumerate() {
        let body = match t {
            Value::Tag(TAG_COMID, b) => match b.as_ref() {
                Value::Bytes(b) => decode_in(b, &format!("CoMID {i}"))?,
                x @ Value::Map(_) => {
                    c.notes
                        .push(format!("tolerated: CoMID {i} not wrapped in a bstr"));
                    x.clone()
                }
                o => return bad(format!("CoMID {i} is a {}", o.type_name())),
            },
            Value::Tag(TAG_COSWID, _) => {
                c.notes.push(format!("tag {i}: CoSWID (#6.505) not read"));
                continue;
            }
            Value::Tag(TAG_COTL, _) => {
                c.notes.push(format!("tag {i}: CoTL (#6.508) not read"));
                continue;
            }
            Value::Tag(t, _) => {
                c.notes
                    .push(format!("tag {i}: unknown tag #6.{t} not read"));
                continue;
            }
            Value::Bytes(b) => {
                let inner = decode_in(b, &format!("tag {i}"))?;
                if let Some((TAG_COMID, x)) = inner.as_tag() {
                    c.notes
                        .push(format!("tolerated: tag {i} is a bstr holding #6.506"));
                    match x {
                        Value::Bytes(b) => decode_in(b, &format!("CoMID {i}"))?,
                        o => o.clone(),
                    }
                } else if inner.as_map().is_some() && inner.get(4).is_some() {
                    c.notes
                        .push(format!("tolerated: tag {i} is a bare bstr CoMID"));
                    inner
                } else {
                    c.notes
                        .push(format!("tag {i}: a bstr that is not a CoMID, not read"));
                    continue;
                }
            }
            o => return bad(format!("tag {i} is a {}", o.type_name())),
        };
        let comid = comid(&body, i, c, &mut total)?;
        c.comids.push(comid);
    }
    Ok(())
}

fn show_key(k: &Value) -> String {
    match k {
        Value::Text(t) => format!("`{t}`"),
        k => k
            .as_int()
            .map(|i| i.to_string())
            .unwrap_or_else(|| k.type_name().into()),
    }
}

const TRIPLE_NAMES: &[&str] = &[
    "reference-triples",
    "endorsed-triples",
    "identity-triples",
    "attest-key-triples",
    "dependency-triples",
    "membership-triples",
    "coswid-triples",
    "triple 7",
    "conditional-endorsement-series-triples",
    "triple 9",
    "conditional-endorsement-triples",
];

fn comid(v: &Value, i: usize, c: &mut Corim, total: &mut usize) -> Result<Comid, CorimError> {
    if v.as_map().is_none() {
        return bad(format!("CoMID {i} is a {}, not a map", v.type_name()));
    }
    let mut out = Comid::default();
    let ident = v.get(1).ok_or_else(|| CorimError {
        message: format!("CoMID {i} has no tag-identity (1)"),
    })?;
    out.tag_id = match ident.get(0) {
        Some(Value::Text(t)) => t.clone(),
        Some(Value::Bytes(b)) if b.len() == 16 => {
            uuid_text(&<[u8; 16]>::try_from(b.as_slice()).unwrap_or_default())
        }
        _ => return bad(format!("CoMID {i}: tag-id is not a text or UUID")),
    };
    out.tag_version = ident.get(1).and_then(Value::as_uint).unwrap_or(0);
    for (k, _) in v.as_map().unwrap_or_default() {
        if !matches!(k.as_int(), Some(0..=4)) {
            c.notes
                .push(format!("CoMID {i}: extension {} not read", show_key(k)));
        }
    }
    let triples = v.get(4).ok_or_else(|| CorimError {
        message: format!("CoMID {i} has no triples (4)"),
    })?;
    let tm = triples.as_map().ok_or_else(|| CorimError {
        message: format!("CoMID {i}: triples is not a map"),
    })?;
    for (k, val) in tm {
        let n = k.as_int();
        if n == Some(0) {
            continue;
        }
        let name = n
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| TRIPLE_NAMES.get(n))
            .map(|s| s.to_string())
            .unwrap_or_else(|| format!("triple {}", show_key(k)));
        c.notes.push(format!(
            "CoMID {i}: {} {name} not used (fwscan compares reference triples)",
            val.as_array().map(<[Value]>::len).unwrap_or(1)
        ));
    }
    let Some(refs) = triples.get(0) else {
        return Ok(out);
    };
    let refs = refs.as_array().ok_or_else(|| CorimError {
        message: format!("CoMID {i}: reference-triples is not an array"),
    })?;
    for (j, r) in refs.iter().enumerate() {
        let r = match r.as_array() {
            Some(r) if r.len() == 2 => r,
            _ => {
                return bad(format!(
                    "CoMID {i} reference triple {j}: not [environment, [measurements]]"
                ))
            }
        };
        if let Some(class) = r[0].get(0) {
            let text = |k| class.get(k).and_then(Value::as_text).map(str::to_string);
            let (vendor, model) = (text(1), text(2));
            let (layer, index) = (
                class.get(3).and_then(Value::as_uint),
                class.get(4).and_then(Value::as_uint),
            );
            if out.vendor.is_none() && out.model.is_none() {
                (out.vendor, out.model, out.layer, out.index) = (vendor, model, layer, index);
            } else if (out.vendor.as_ref(), out.model.as_ref()) != (vendor.as_ref(), model.as_ref())
            {
                c.notes.push(format!(
                    "CoMID {i} reference triple {j}: another environment ({} {}); its measurements are listed with the first",
                    vendor.unwrap_or_default(),
                    model.unwrap_or_default()
                ));
            }
        }
        let ms = r[1].as_array().ok_or_else(|| CorimError {
            message: format!("CoMID {i} reference triple {j}: measurements is not an array"),
        })?;
        for (k, m) in ms.iter().enumerate() {
            *total = total.saturating_add(1);
            if *total > MAX_MEASUREMENTS {
                return bad(format!("more than {MAX_MEASUREMENTS} measurements"));
            }
            out.measurements
                .push(measurement(m, c).map_err(|e| CorimError {
                    message: format!("CoMID {i} reference triple {j} measurement {k}: {e}"),
                })?);
        }
    }
    Ok(out)
}

/// Named-information (RFC 6920) and COSE (RFC 9053) hash algorithm ids.
fn digest_alg(a: &Value, c: &mut Corim) -> String {
    match (a.as_int(), a.as_text()) {
        (Some(1), _) => "sha-256".into(),
        (Some(7), _) => "sha-384".into(),
        (Some(8), _) => "sha-512".into(),
        (Some(n @ (-16 | -43 | -44)), _) => {
            let name = match n {
                -16 => "sha-256",
                -43 => "sha-384",
                _ => "sha-512",
            };
            let note = format!(
                "tolerated: COSE digest id {n} ({name}) where a named-information id is due"
            );
            if !c.notes.contains(&note) {
                c.notes.push(note);
            }
            name.into()
        }
        (_, Some(t)) => t.to_ascii_lowercase(),
        (Some(n), _) => format!("alg {n}"),
        _ => "alg ?".into(),
    }
}

fn measurement(m: &Value, c: &mut Corim) -> Result<Measurement, CorimError> {
    if m.as_map().is_none() {
        return bad(format!("a {}, not a map", m.type_name()));
    }
    let mut out = Measurement {
        mkey: match m.get(0) {
            None => None,
            Some(Value::Text(t)) => Some(MKey::Text(t.clone())),
            Some(Value::Uint(n)) => Some(MKey::Uint(*n)),
            Some(Value::Tag(TAG_UUID, u)) => match u.as_bytes().map(<[u8; 16]>::try_from) {
                Some(Ok(u)) => Some(MKey::Uuid(u)),
                _ => return bad("mkey #6.37 is not a 16-byte UUID"),
            },
            Some(Value::Tag(TAG_OID, o)) => {
                Some(MKey::Oid(o.as_bytes().unwrap_or_default().to_vec()))
            }
            Some(o) => {
                c.notes
                    .push(format!("mkey of type {} not understood", o.type_name()));
                None
            }
        },
        ..Default::default()
    };
    let mval = m.get(1).ok_or_else(|| CorimError {
        message: "no mval (1)".into(),
    })?;
    if mval.as_map().is_none() {
        return bad("mval is not a map");
    }
    out.name = mval.get(11).and_then(Value::as_text).map(str::to_string);
    out.svn = match mval.get(1) {
        None => None,
        Some(Value::Uint(n)) => Some(*n),
        Some(Value::Tag(TAG_SVN, n)) => n.as_uint(),
        Some(Value::Tag(TAG_MIN_SVN, n)) => {
            out.min_svn = true;
            n.as_uint()
        }
        Some(o) => return bad(format!("svn is a {}", o.type_name())),
    };
    if let Some(d) = mval.get(2) {
        let d = d.as_array().ok_or_else(|| CorimError {
            message: "digests is not an array".into(),
        })?;
        for x in d {
            match x.as_array() {
                Some([a, Value::Bytes(v)]) => {
                    let alg = digest_alg(a, c);
                    out.digests.push((alg, v.clone()));
                }
                _ => return bad("a digest is not [alg, bstr]"),
            }
        }
    }
    if let Some(f) = mval.get(3) {
        out.immutable = f.get(7).and_then(Value::as_bool);
        out.runtime_updatable = f.get(10).and_then(Value::as_bool);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------
// The fwscan profile: the embedded baseline and its reference values must agree.

/// Checks that a fwscan-profile CoRIM's reference values are exactly those of its embedded baseline
/// (same pinned nodes, keys, digests, flags and svn), so that comparing with the baseline is comparing
/// with the reference values. Returns the baseline.
pub fn profile_baseline(c: &Corim, path: &std::path::Path) -> Result<Manifest, CorimError> {
    let json = c.baseline.as_ref().ok_or_else(|| CorimError {
        message: "no fwscan baseline in the protected header".into(),
    })?;
    let m = Manifest::parse(json, path).map_err(|e| CorimError {
        message: format!("embedded baseline: {e}"),
    })?;
    if c.comids.len() != 1 {
        return bad(format!(
            "the fwscan profile has one CoMID per image, this CoRIM has {}",
            c.comids.len()
        ));
    }
    let comid = &c.comids[0];
    if comid.vendor.as_deref() != Some(m.product.vendor.as_str())
        || comid.model.as_deref() != Some(model_of(&m).as_str())
        || comid.tag_version != m.sequence
    {
        return bad(format!(
            "the CoMID's environment ({} {}, tag-version {}) is not the baseline's ({} {}, sequence {})",
            comid.vendor.as_deref().unwrap_or("-"),
            comid.model.as_deref().unwrap_or("-"),
            comid.tag_version,
            m.product.vendor,
            model_of(&m),
            m.sequence
        ));
    }
    let want = measurements_of(&m);
    if want.len() != comid.measurements.len() {
        return bad(format!(
            "the CoMID has {} reference values, its baseline pins {} nodes",
            comid.measurements.len(),
            want.len()
        ));
    }
    for (w, got) in want.iter().zip(&comid.measurements) {
        if w != got {
            return bad(format!(
                "reference value `{}` disagrees with the baseline's node",
                got.mkey
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ));
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_round_trip() {
        let g = "7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1";
        assert_eq!(uuid_text(&uuid_bytes(g).unwrap()), g);
        assert!(uuid_bytes("7CB8BDC9F8EB4F34AAEA3EE4AF6516A1").is_none());
    }

    #[test]
    fn json_is_not_a_corim() {
        assert!(!looks_like(b"  {\"schema_version\": 1}"));
        assert!(looks_like(&[0xd2, 0x84]));
        assert!(looks_like(&[0xd9, 0x01, 0xf5]));
    }
}
