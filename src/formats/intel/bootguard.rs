//! Boot Guard 1.0 and Converged Boot Guard and TXT (CBnT 2.x) manifests: the Key Manifest (`__KEYM__`,
//! FIT type 0x0B) and the Boot Policy Manifest (`__ACBP__`, FIT type 0x0C) with its elements `__IBBS__`
//! (IBB segments and digests), `__TXTS__`, `__PCDS__`, `__PFRS__`, `__PMDA__` and the signature `__PMSG__`.
//!
//! Layouts follow Intel's Boot Guard / CBnT documents as quoted by public reference code (fiano's
//! `pkg/intel/metadata/cbnt`, UEFITool's `intel_keym_v1/v2`, `intel_acbp_v1/v2` descriptions):
//! * structure version < 0x20 is Boot Guard 1.0: an element header is the 8-byte id and a version byte,
//!   elements have no size field, so BPM elements are delimited by the next element id;
//! * version >= 0x20 is CBnT: the header is id, version, one byte, a u16 element size; the BPM header
//!   carries the offset of its key signature, the KM the offset of its own.
//!
//! A key signature is `version u8, key {alg u16, version u8, bits u16, data}, signature {scheme u16,
//! version u8, bits u16, hash alg u16, data}`; RSA key data is the exponent (u32) then the modulus, ECC the
//! X and Y coordinates. The signed part of a manifest is every byte before its key signature (the KM
//! fixtures verify this way). Every size is bounded by the input before it is used.
#![deny(clippy::arithmetic_side_effects)]

use super::keys::{self, PubKey};
use crate::error::ParseError;
use crate::formats::util::{le16, le32, le64, slice, u8_at};

pub const KEYM: &[u8; 8] = b"__KEYM__";
pub const ACBP: &[u8; 8] = b"__ACBP__";
const IBBS: &[u8; 8] = b"__IBBS__";
const PMSG: &[u8; 8] = b"__PMSG__";
const ELEMENT_IDS: [&[u8; 8]; 8] = [
    b"__IBBS__",
    b"__TXTS__",
    b"__PCDS__",
    b"__PFRS__",
    b"__PMDA__",
    b"__PMSG__",
    b"__ACBP__",
    b"__KEYM__",
];
/// Largest manifest accepted (real ones are a few KiB).
pub const MAX_MANIFEST: u64 = 64 * 1024;

/// A key signature structure.
#[derive(Debug, Clone)]
pub struct KeySignature {
    pub key_alg: u16,
    pub key: PubKey,
    pub scheme: u16,
    pub hash_alg: u16,
    pub sig: Vec<u8>,
    /// Bytes the structure occupies.
    pub len: u64,
}

fn invalid(what: &'static str, offset: u64, detail: impl Into<String>) -> ParseError {
    ParseError::Invalid {
        what,
        offset,
        detail: detail.into(),
    }
}

/// Reads a key signature at `off`.
// Reviewed: every offset is either a 16-bit field or a position where the previous read succeeded (so below b.len()), plus small constants and lengths of at most 16 bits (key and signature sizes checked: <= 4096/8192 bits; counts are u8, or u16 bounded by the input before the loop): sums stay far below u64::MAX, and each difference subtracts a start from an end computed from it.
#[allow(clippy::arithmetic_side_effects)]
pub fn key_signature(b: &[u8], off: u64) -> Result<KeySignature, ParseError> {
    let what = "Boot Guard key signature";
    let ver = u8_at(b, off, what)?;
    if ver != 0x10 {
        return Err(invalid(
            what,
            off,
            format!("version 0x{ver:02x}, expected 0x10"),
        ));
    }
    let key_alg = le16(b, off + 1, what)?;
    let bits = le16(b, off + 4, what)? as u64;
    let kdata = off + 6;
    let key = match key_alg {
        keys::ALG_RSA => {
            if !(1024..=4096).contains(&bits) || bits % 8 != 0 {
                return Err(invalid(what, off, format!("RSA key of {bits} bits")));
            }
            let exponent = le32(b, kdata, what)?;
            let m = slice(b, kdata + 4, bits / 8, what)?;
            PubKey::Rsa {
                modulus_le: m.to_vec(),
                exponent,
            }
        }
        keys::ALG_ECC | keys::ALG_SM2 => {
            if bits != 256 && bits != 384 {
                return Err(invalid(what, off, format!("ECC key of {bits} bits")));
            }
            let n = bits / 8;
            let x = slice(b, kdata, n, what)?.to_vec();
            let y = slice(b, kdata + n, n, what)?.to_vec();
            if key_alg == keys::ALG_ECC {
                PubKey::Ecc { x_le: x, y_le: y }
            } else {
                PubKey::Sm2 { x_le: x, y_le: y }
            }
        }
        other => {
            return Err(invalid(
                what,
                off,
                format!("key algorithm {}", keys::alg_name(other)),
            ))
        }
    };
    let key_len = match &key {
        PubKey::Rsa { modulus_le, .. } => 4 + modulus_le.len() as u64,
        PubKey::Ecc { x_le, .. } | PubKey::Sm2 { x_le, .. } => 2 * x_le.len() as u64,
    };
    let s = kdata + key_len;
    let scheme = le16(b, s, what)?;
    let sver = u8_at(b, s + 2, what)?;
    if sver != 0x10 {
        return Err(invalid(
            what,
            s,
            format!("signature version 0x{sver:02x}, expected 0x10"),
        ));
    }
    let sbits = le16(b, s + 3, what)? as u64;
    let hash_alg = le16(b, s + 5, what)?;
    if sbits == 0 || sbits % 8 != 0 || sbits > 8192 {
        return Err(invalid(what, s, format!("signature of {sbits} bits")));
    }
    let sig = slice(b, s + 7, sbits / 8, what)?.to_vec();
    Ok(KeySignature {
        key_alg,
        key,
        scheme,
        hash_alg,
        sig,
        len: s + 7 + sbits / 8 - off,
    })
}

/// A digest with its algorithm.
#[derive(Debug, Clone)]
pub struct HashValue {
    pub alg: u16,
    pub digest: Vec<u8>,
}

/// `alg u16, size u16, bytes`; returns the value and the bytes it occupies.
// Reviewed: every offset is either a 16-bit field or a position where the previous read succeeded (so below b.len()), plus small constants and lengths of at most 16 bits (key and signature sizes checked: <= 4096/8192 bits; counts are u8, or u16 bounded by the input before the loop): sums stay far below u64::MAX, and each difference subtracts a start from an end computed from it.
#[allow(clippy::arithmetic_side_effects)]
fn hash_structure(b: &[u8], off: u64) -> Result<(HashValue, u64), ParseError> {
    let what = "hash structure";
    let alg = le16(b, off, what)?;
    let size = le16(b, off + 2, what)? as u64;
    let digest = slice(b, off + 4, size, what)?.to_vec();
    Ok((HashValue { alg, digest }, 4 + size))
}

/// A Key Manifest.
#[derive(Debug, Clone)]
pub struct KeyManifest {
    pub struct_version: u8,
    pub revision: u8,
    pub svn: u8,
    pub id: u8,
    /// Hash algorithm of the fused key hash (CBnT), SHA-256 for Boot Guard 1.0.
    pub pubkey_hash_alg: u16,
    /// (usage bits, digest); usage bit 0 = BPM signing key. Boot Guard 1.0 has one entry, usage 1.
    pub hashes: Vec<(u64, HashValue)>,
    pub key_signature: KeySignature,
    /// Offset of the key signature: the signed bytes are `[0, signed_len)`.
    pub signed_len: u64,
    pub size: u64,
}

pub fn is_cbnt(version: u8) -> bool {
    version >= 0x20
}

/// Parses a Key Manifest at the start of `b`.
// Reviewed: every offset is either a 16-bit field or a position where the previous read succeeded (so below b.len()), plus small constants and lengths of at most 16 bits (key and signature sizes checked: <= 4096/8192 bits; counts are u8, or u16 bounded by the input before the loop): sums stay far below u64::MAX, and each difference subtracts a start from an end computed from it.
#[allow(clippy::arithmetic_side_effects)]
pub fn key_manifest(b: &[u8]) -> Result<KeyManifest, ParseError> {
    let what = "key manifest";
    if slice(b, 0, 8, what)? != KEYM {
        return Err(invalid(what, 0, "no __KEYM__ signature"));
    }
    let struct_version = u8_at(b, 8, what)?;
    if !is_cbnt(struct_version) {
        let revision = u8_at(b, 9, what)?;
        let svn = u8_at(b, 10, what)?;
        let id = u8_at(b, 11, what)?;
        let (h, hlen) = hash_structure(b, 12)?;
        let ks_off = 12 + hlen;
        let ks = key_signature(b, ks_off)?;
        let size = ks_off + ks.len;
        Ok(KeyManifest {
            struct_version,
            revision,
            svn,
            id,
            pubkey_hash_alg: keys::ALG_SHA256,
            hashes: vec![(1, h)],
            signed_len: ks_off,
            size,
            key_signature: ks,
        })
    } else {
        let ks_off = le16(b, 12, what)? as u64;
        let revision = u8_at(b, 17, what)?;
        let svn = u8_at(b, 18, what)?;
        let id = u8_at(b, 19, what)?;
        let pubkey_hash_alg = le16(b, 20, what)?;
        let count = le16(b, 22, what)? as u64;
        // Each entry is at least 12 bytes: bound the count by the input.
        if count.saturating_mul(12) > b.len() as u64 {
            return Err(invalid(what, 22, format!("{count} key hashes")));
        }
        let mut hashes = Vec::with_capacity(count as usize);
        let mut o = 24u64;
        for _ in 0..count {
            let usage = le64(b, o, what)?;
            let (h, hlen) = hash_structure(b, o + 8)?;
            hashes.push((usage, h));
            o += 8 + hlen;
        }
        if ks_off < o {
            return Err(invalid(
                what,
                12,
                format!("key signature offset 0x{ks_off:x} inside the hash list (ends 0x{o:x})"),
            ));
        }
        let ks = key_signature(b, ks_off)?;
        Ok(KeyManifest {
            struct_version,
            revision,
            svn,
            id,
            pubkey_hash_alg,
            hashes,
            signed_len: ks_off,
            size: ks_off + ks.len,
            key_signature: ks,
        })
    }
}

/// One IBB segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IbbSegment {
    pub flags: u16,
    pub base: u32,
    pub size: u32,
}

impl IbbSegment {
    /// Segments with flag bit 0 set are not hashed.
    pub fn hashed(&self) -> bool {
        self.flags & 1 == 0
    }
}

/// An `__IBBS__` element.
#[derive(Debug, Clone)]
pub struct IbbSet {
    pub set_number: u8,
    pub flags: u32,
    pub entry_point: u32,
    pub post_ibb: HashValue,
    pub digests: Vec<HashValue>,
    pub obb: Option<HashValue>,
    pub segments: Vec<IbbSegment>,
}

/// An element of a BPM: id, offset and size in the manifest.
#[derive(Debug, Clone)]
pub struct Element {
    pub id: String,
    pub version: u8,
    pub offset: u64,
    pub size: u64,
}

/// A Boot Policy Manifest.
#[derive(Debug, Clone)]
pub struct BootPolicy {
    pub struct_version: u8,
    pub revision: u8,
    pub svn: u8,
    pub acm_svn: u8,
    pub elements: Vec<Element>,
    pub ibb_sets: Vec<IbbSet>,
    pub key_signature: Option<KeySignature>,
    pub signed_len: u64,
    pub size: u64,
}

// Reviewed: every offset is either a 16-bit field or a position where the previous read succeeded (so below b.len()), plus small constants and lengths of at most 16 bits (key and signature sizes checked: <= 4096/8192 bits; counts are u8, or u16 bounded by the input before the loop): sums stay far below u64::MAX, and each difference subtracts a start from an end computed from it.
#[allow(clippy::arithmetic_side_effects)]
fn segments(b: &[u8], off: u64, count: u64) -> Result<Vec<IbbSegment>, ParseError> {
    let what = "IBB segment";
    slice(b, off, count * 12, what)?;
    (0..count)
        .map(|i| {
            let o = off + i * 12;
            Ok(IbbSegment {
                flags: le16(b, o + 2, what)?,
                base: le32(b, o + 4, what)?,
                size: le32(b, o + 8, what)?,
            })
        })
        .collect()
}

// Reviewed: every offset is either a 16-bit field or a position where the previous read succeeded (so below b.len()), plus small constants and lengths of at most 16 bits (key and signature sizes checked: <= 4096/8192 bits; counts are u8, or u16 bounded by the input before the loop): sums stay far below u64::MAX, and each difference subtracts a start from an end computed from it.
#[allow(clippy::arithmetic_side_effects)]
fn ibbs_bg(b: &[u8], off: u64) -> Result<(IbbSet, u64), ParseError> {
    let what = "__IBBS__ element";
    let flags = le32(b, off + 12, what)?;
    // Post-IBB hash: alg, size, then a 32-byte field whatever the size.
    let alg = le16(b, off + 56, what)?;
    let psize = (le16(b, off + 58, what)? as u64).min(32);
    let post_ibb = HashValue {
        alg,
        digest: slice(b, off + 60, psize, what)?.to_vec(),
    };
    let entry_point = le32(b, off + 92, what)?;
    let (digest, dlen) = hash_structure(b, off + 96)?;
    let cnt_off = off + 96 + dlen;
    let count = u8_at(b, cnt_off, what)? as u64;
    let segs = segments(b, cnt_off + 1, count)?;
    Ok((
        IbbSet {
            set_number: 0,
            flags,
            entry_point,
            post_ibb,
            digests: vec![digest],
            obb: None,
            segments: segs,
        },
        cnt_off + 1 + count * 12 - off,
    ))
}

// Reviewed: every offset is either a 16-bit field or a position where the previous read succeeded (so below b.len()), plus small constants and lengths of at most 16 bits (key and signature sizes checked: <= 4096/8192 bits; counts are u8, or u16 bounded by the input before the loop): sums stay far below u64::MAX, and each difference subtracts a start from an end computed from it.
#[allow(clippy::arithmetic_side_effects)]
fn ibbs_cbnt(b: &[u8], off: u64) -> Result<IbbSet, ParseError> {
    let what = "__IBBS__ element";
    let set_number = u8_at(b, off + 13, what)?;
    let flags = le32(b, off + 16, what)?;
    let (post_ibb, plen) = hash_structure(b, off + 60)?;
    let ep = off + 60 + plen;
    let entry_point = le32(b, ep, what)?;
    let list = ep + 4;
    let count = le16(b, list + 2, what)? as u64;
    if count.saturating_mul(4) > b.len() as u64 {
        return Err(invalid(what, list, format!("{count} digests")));
    }
    let mut digests = Vec::with_capacity(count as usize);
    let mut o = list + 4;
    for _ in 0..count {
        let (h, l) = hash_structure(b, o)?;
        digests.push(h);
        o += l;
    }
    let (obb, olen) = hash_structure(b, o)?;
    o += olen + 3;
    let scount = u8_at(b, o, what)? as u64;
    let segs = segments(b, o + 1, scount)?;
    Ok(IbbSet {
        set_number,
        flags,
        entry_point,
        post_ibb,
        digests,
        obb: Some(obb),
        segments: segs,
    })
}

fn element_id(b: &[u8], off: u64) -> Option<String> {
    let id = slice(b, off, 8, "element id").ok()?;
    ELEMENT_IDS
        .iter()
        .any(|e| e.as_slice() == id)
        .then(|| String::from_utf8_lossy(id).into_owned())
}

/// Parses a Boot Policy Manifest at the start of `b`: Boot Guard 1.0 (structure version below 0x20) or
/// CBnT.
pub fn boot_policy(b: &[u8]) -> Result<BootPolicy, ParseError> {
    let what = "boot policy manifest";
    if slice(b, 0, 8, what)? != ACBP {
        return Err(invalid(what, 0, "no __ACBP__ signature"));
    }
    let b = &b[..b.len().min(MAX_MANIFEST as usize)];
    let struct_version = u8_at(b, 8, what)?;
    if is_cbnt(struct_version) {
        boot_policy_cbnt(b, struct_version)
    } else {
        boot_policy_bg(b, struct_version)
    }
}

/// A Boot Guard 1.0 BPM: 16-byte header, then elements without a size field, up to the `__PMSG__`
/// signature element.
// Reviewed: every offset is either a 16-bit field or a position where the previous read succeeded (so below b.len()), plus small constants and lengths of at most 16 bits (key and signature sizes checked: <= 4096/8192 bits; counts are u8, or u16 bounded by the input before the loop): sums stay far below u64::MAX, and each difference subtracts a start from an end computed from it.
#[allow(clippy::arithmetic_side_effects)]
fn boot_policy_bg(b: &[u8], struct_version: u8) -> Result<BootPolicy, ParseError> {
    let what = "boot policy manifest";
    let mut elements = Vec::new();
    let mut ibb_sets = Vec::new();
    let revision = u8_at(b, 10, what)?;
    let svn = u8_at(b, 11, what)?;
    let acm_svn = u8_at(b, 12, what)?;
    elements.push(Element {
        id: "__ACBP__".into(),
        version: struct_version,
        offset: 0,
        size: 16,
    });
    let mut o = 16u64;
    let mut ks = None;
    let mut signed_len = 0;
    let mut end = 16;
    // Elements carry no size: each one reaches the next known id (bounded: ids are searched forward).
    while let Some(id) = element_id(b, o) {
        let version = u8_at(b, o + 8, what)?;
        if id == "__PMSG__" {
            let k = key_signature(b, o + 9)?;
            signed_len = o + 9;
            end = o + 9 + k.len;
            elements.push(Element {
                id,
                version,
                offset: o,
                size: end - o,
            });
            ks = Some(k);
            break;
        }
        let mut size = None;
        if id == "__IBBS__" {
            let (set, len) = ibbs_bg(b, o)?;
            ibb_sets.push(set);
            size = Some(len);
        }
        // The element reaches the next id at or after its parsed length.
        let from = o + size.unwrap_or(9);
        let next =
            (from..b.len() as u64).find(|&p| b[p as usize] == b'_' && element_id(b, p).is_some());
        let Some(next) = next else {
            return Err(invalid(
                what,
                o,
                format!("{id} is not followed by __PMSG__"),
            ));
        };
        elements.push(Element {
            id,
            version,
            offset: o,
            size: next - o,
        });
        o = next;
        end = o;
    }
    if ks.is_none() {
        return Err(invalid(what, end, "no __PMSG__ signature element"));
    }
    Ok(BootPolicy {
        struct_version,
        revision,
        svn,
        acm_svn,
        elements,
        ibb_sets,
        key_signature: ks,
        signed_len,
        size: end,
    })
}

/// A CBnT BPM: header with its size and the key signature's offset, then sized elements up to `__PMSG__`.
// Reviewed: every offset is either a 16-bit field or a position where the previous read succeeded (so below b.len()), plus small constants and lengths of at most 16 bits (key and signature sizes checked: <= 4096/8192 bits; counts are u8, or u16 bounded by the input before the loop): sums stay far below u64::MAX, and each difference subtracts a start from an end computed from it.
#[allow(clippy::arithmetic_side_effects)]
fn boot_policy_cbnt(b: &[u8], struct_version: u8) -> Result<BootPolicy, ParseError> {
    let what = "boot policy manifest";
    let mut elements = Vec::new();
    let mut ibb_sets = Vec::new();
    let hdr_size = le16(b, 10, what)? as u64;
    let ks_off = le16(b, 12, what)? as u64;
    let revision = u8_at(b, 14, what)?;
    let svn = u8_at(b, 15, what)?;
    let acm_svn = u8_at(b, 16, what)?;
    if hdr_size < 12 {
        return Err(invalid(what, 10, format!("header size {hdr_size}")));
    }
    elements.push(Element {
        id: "__ACBP__".into(),
        version: struct_version,
        offset: 0,
        size: hdr_size,
    });
    let mut o = hdr_size;
    let mut ks = None;
    let mut end = o;
    // Every element has a size (PMSG's may be 0: it runs to the end of its key signature); progress is
    // guaranteed because sizes below 12 stop the walk.
    while let Some(id) = element_id(b, o) {
        let version = u8_at(b, o + 8, what)?;
        let size = le16(b, o + 10, what)? as u64;
        if id == "__PMSG__" {
            if o + 12 != ks_off {
                return Err(invalid(
                    what,
                    o,
                    format!("__PMSG__ at 0x{o:x} but key signature offset 0x{ks_off:x}"),
                ));
            }
            let k = key_signature(b, o + 12)?;
            end = o + 12 + k.len;
            elements.push(Element {
                id,
                version,
                offset: o,
                size: end - o,
            });
            ks = Some(k);
            break;
        }
        if size < 12 {
            return Err(invalid(what, o, format!("{id} of {size} bytes")));
        }
        slice(b, o, size, what)?;
        if id == "__IBBS__" {
            ibb_sets.push(ibbs_cbnt(&b[..(o + size) as usize], o)?);
        }
        elements.push(Element {
            id,
            version,
            offset: o,
            size,
        });
        o += size;
        end = o;
    }
    if ks.is_none() {
        return Err(invalid(what, end, "no __PMSG__ signature element"));
    }
    Ok(BootPolicy {
        struct_version,
        revision,
        svn,
        acm_svn,
        elements,
        ibb_sets,
        key_signature: ks,
        signed_len: ks_off,
        size: end,
    })
}

/// Whether `b` starts with a KM or BPM signature.
pub fn probe(b: &[u8]) -> Option<&'static str> {
    let id = b.get(..8)?;
    if id == KEYM {
        Some("key-manifest")
    } else if id == ACBP {
        Some("boot-policy-manifest")
    } else {
        None
    }
}

#[allow(dead_code)]
const _IDS: (&[u8; 8], &[u8; 8]) = (IBBS, PMSG);
