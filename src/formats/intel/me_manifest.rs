//! Intel ME/CSME/SPS/TXE partition manifests (`$MN2`): header, RSA signature, public-key hash.
//!
//! One layout serves ME 6-10 (the manifest at the start of a code partition) and CSE (ME 11+, SPS 4+, TXE 3+:
//! the `.man` entry of a `$CPD` directory). Fields used (all little-endian; me_cleaner, MEAnalyzer, unME11):
//!
//! | offset | field |
//! |---|---|
//! | 0x00 | header type (4) |
//! | 0x04 | header length in dwords (0xA1 for RSA-2048: 0x80 + 0x100 + 4 + 0x100 = 0x284 bytes) |
//! | 0x08 | header version (0x10000; 0x21000 for the RSA-3072 manifests of CSME 12+) |
//! | 0x10 | vendor (0x8086) |
//! | 0x14 | date (BCD `yyyymmdd`) |
//! | 0x18 | manifest size in dwords (header + signature + what follows: `$MME` entries or CSE extensions) |
//! | 0x1C | `$MN2` |
//! | 0x20 | ME 6-10: number of `$MME` module entries |
//! | 0x24 | version major, minor, hotfix, build (u16 each) |
//! | 0x2C | security version number (SVN) |
//! | 0x78 | modulus size in dwords (0x40 = RSA-2048, 0x60 = RSA-3072) |
//! | 0x7C | exponent size in dwords (1) |
//! | 0x80 | modulus (little-endian), then exponent (u32), then signature (little-endian) |
//!
//! The signature is RSASSA-PKCS1-v1_5 over SHA-256 of the header's first 0x80 bytes followed by the bytes from
//! the end of the signature to `size * 4` (so the key and the signature are excluded, the rest of the manifest
//! is signed). Proved on both fixtures: decrypting the Purley SPS 4 and Lumpy ME 8 signatures gives the
//! PKCS#1 v1.5 block with the SHA-256 `DigestInfo` of exactly those bytes. RSA-3072 manifests (CSME 12+) use
//! SHA-384 by the same rule; no fixture proves that one, so it is verified by the rule but reported as such.
//!
//! The public-key hash fwscan reports is SHA-256 of the modulus and exponent as stored (little-endian, the
//! form Intel's ROM compares and unME11 lists); `signatures/me-keys.txt` names the known Intel keys.
#![deny(clippy::arithmetic_side_effects)]

use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384};

use crate::finding::{Code, Evidence, Protection, Scheme, Status, Trust};
use crate::formats::util::{le16, le32, slice};
use crate::region::{Note, Region};

/// Length of the fixed manifest header before the key.
pub const HEADER_LEN: u64 = 0x80;
/// `$MN2` at 0x1C.
pub const MN2_TAG: &[u8; 4] = b"$MN2";
/// Largest manifest fwscan reads (real ones are a few KiB).
pub const MAX_MANIFEST: u64 = 1 << 20;

const KNOWN_KEYS: &str = include_str!("../../../signatures/me-keys.txt");

/// The name of a known Intel ME signing key by its public-key hash (`signatures/me-keys.txt`).
pub fn known_key(hash_hex: &str) -> Option<&'static str> {
    KNOWN_KEYS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|l| {
            let (h, rest) = l.split_once(char::is_whitespace)?;
            h.eq_ignore_ascii_case(hash_hex)
                .then(|| rest.split_whitespace().next().unwrap_or("intel"))
        })
}

/// Whether `b` starts like a manifest header (type 4, `$MN2` tag).
pub fn looks_like(b: &[u8]) -> bool {
    b.get(0x1C..0x20) == Some(MN2_TAG) && le32(b, 0, "type").ok() == Some(4)
}

/// Outcome of a signature check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigStatus {
    Valid,
    Invalid(String),
}

/// A parsed and checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Bytes the manifest occupies (`size * 4`, bounded by the buffer).
    pub size: u64,
    /// Offset of the first byte after the signature (where `$MME` entries or extensions start).
    pub body: u64,
    pub version: String,
    pub date: String,
    pub svn: u32,
    /// ME 6-10 module count (0x20); meaningless for CSE.
    pub modules: u32,
    pub key_bits: u64,
    pub key_hash: String,
    pub known_key: Option<&'static str>,
    pub signature: SigStatus,
    pub hash_alg: &'static str,
}

impl Manifest {
    /// Whether what the manifest signs can be trusted: the signature verifies with a known Intel key.
    pub fn trusted(&self) -> bool {
        self.signature == SigStatus::Valid && self.known_key.is_some()
    }

    /// Adds the manifest's attributes and findings to `node` (whose offset is the manifest start).
    pub fn describe(&self, node: &mut Region) {
        let a = &mut node.attrs;
        a.insert("manifest-version".into(), self.version.clone().into());
        a.insert("manifest-date".into(), self.date.clone().into());
        a.insert("svn".into(), self.svn.into());
        a.insert(
            "algorithm".into(),
            format!("rsa-{}-pkcs1v15-{}", self.key_bits, self.hash_alg).into(),
        );
        a.insert("public-key-sha256".into(), self.key_hash.clone().into());
        match self.known_key {
            Some(k) => a.insert("public-key".into(), k.into()),
            None => a.insert("public-key".into(), "unknown".into()),
        };
        let status = match &self.signature {
            SigStatus::Valid => Status::Valid,
            SigStatus::Invalid(why) => Status::Invalid(why.clone()),
        };
        let trust = match self.known_key {
            Some(k) => Trust::Anchored(k.to_string()),
            None => Trust::SelfSigned,
        };
        let mut e = Evidence::on_node(Scheme::MeManifest, status)
            .with_trust(trust)
            .with_signer(self.key_hash.clone());
        if self.known_key.is_some() {
            e = e.with_protection(Protection::MeManifest);
        }
        node.evidence.push(e);
        match &self.signature {
            SigStatus::Valid => {}
            SigStatus::Invalid(why) => {
                node.notes.push(Note::new(
                    Code::MeManifestSignatureInvalid,
                    format!("manifest signature does not verify: {why}"),
                    Some(node.offset.saturating_add(HEADER_LEN)),
                ));
            }
        }
        if self.known_key.is_none() {
            node.notes.push(Note::new(
                Code::MeManifestUntrustedKey,
                format!(
                    "manifest is signed by a key that is not a known Intel key (public key SHA-256 {})",
                    self.key_hash
                ),
                Some(node.offset.saturating_add(HEADER_LEN)),
            ));
        }
    }
}

/// Why bytes are not a usable `$MN2` manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error(transparent)]
    Parse(#[from] crate::error::ParseError),
    #[error("no $MN2 manifest header")]
    NoHeader,
    #[error("unsupported key size: modulus {modulus} dwords, exponent {exponent} dwords")]
    KeySize { modulus: u64, exponent: u64 },
    #[error("header length {header:#x} does not match a {bits}-bit key ({body:#x})")]
    HeaderLength { header: u64, bits: u64, body: u64 },
    #[error("manifest size {size:#x} is outside {body:#x}..={MAX_MANIFEST:#x}")]
    Size { size: u64, body: u64 },
}

/// Parses and verifies the manifest at the start of `b` (`b` may extend past it).
// Reviewed: the lengths are 32-bit dword counts times 4 held in u64 (below 2^34), and the key lengths
// are 256 or 384 bytes once checked: no sum or product here can overflow.
#[allow(clippy::arithmetic_side_effects)]
pub fn parse(b: &[u8]) -> Result<Manifest, ManifestError> {
    let e = ManifestError::Parse;
    if !looks_like(b) {
        return Err(ManifestError::NoHeader);
    }
    let hdr_len = u64::from(le32(b, 4, "manifest header length").map_err(e)?) * 4;
    let size = u64::from(le32(b, 0x18, "manifest size").map_err(e)?) * 4;
    let mod_dw = u64::from(le32(b, 0x78, "modulus size").map_err(e)?);
    let exp_dw = u64::from(le32(b, 0x7C, "exponent size").map_err(e)?);
    if !matches!(mod_dw, 0x40 | 0x60) || exp_dw != 1 {
        return Err(ManifestError::KeySize {
            modulus: mod_dw,
            exponent: exp_dw,
        });
    }
    let mod_len = mod_dw * 4;
    let key_end = HEADER_LEN + mod_len + 4;
    let body = key_end + mod_len;
    if hdr_len != body {
        return Err(ManifestError::HeaderLength {
            header: hdr_len,
            bits: mod_len * 8,
            body,
        });
    }
    if size < body || size > MAX_MANIFEST {
        return Err(ManifestError::Size { size, body });
    }
    let whole = slice(b, 0, size, "manifest").map_err(e)?;
    let modulus = &whole[HEADER_LEN as usize..(HEADER_LEN + mod_len) as usize];
    let exponent = le32(whole, HEADER_LEN + mod_len, "exponent").map_err(e)?;
    let sig_le = &whole[key_end as usize..body as usize];
    let key_hash = hex::encode(Sha256::digest(
        &whole[HEADER_LEN as usize..key_end as usize],
    ));
    let (hash_alg, signature) = verify(whole, modulus, exponent, sig_le, body);
    let ver = |o| le16(whole, o, "version").unwrap_or(0);
    let date = le32(whole, 0x14, "date").map_err(e)?;
    Ok(Manifest {
        size,
        body,
        version: format!("{}.{}.{}.{}", ver(0x24), ver(0x26), ver(0x28), ver(0x2A)),
        date: format!(
            "{:04x}-{:02x}-{:02x}",
            date >> 16,
            (date >> 8) & 0xFF,
            date & 0xFF
        ),
        svn: le32(whole, 0x2C, "svn").map_err(e)?,
        modules: le32(whole, 0x20, "module count").map_err(e)?,
        key_bits: mod_len * 8,
        known_key: known_key(&key_hash),
        key_hash,
        signature,
        hash_alg,
    })
}

fn verify(
    whole: &[u8],
    modulus: &[u8],
    exponent: u32,
    sig_le: &[u8],
    body: u64,
) -> (&'static str, SigStatus) {
    let signed = |h: &mut dyn FnMut(&[u8])| {
        h(&whole[..HEADER_LEN as usize]);
        h(&whole[body as usize..]);
    };
    let mut sig: Vec<u8> = sig_le.to_vec();
    sig.reverse();
    let sha256 = modulus.len() == 0x100;
    let alg = if sha256 { "sha256" } else { "sha384" };
    let digest: Vec<u8> = if sha256 {
        let mut h = Sha256::new();
        signed(&mut |d| h.update(d));
        h.finalize().to_vec()
    } else {
        let mut h = Sha384::new();
        signed(&mut |d| h.update(d));
        h.finalize().to_vec()
    };
    let parts: [&[u8]; 5] = [
        b"me-manifest-rsa",
        modulus,
        &exponent.to_le_bytes(),
        &sig,
        &digest,
    ];
    use crate::formats::keys::BadSignature;
    let checked = crate::formats::keys::checked_signature(&parts, || {
        let key = RsaPublicKey::new(
            BigUint::from_bytes_le(modulus),
            BigUint::from(u64::from(exponent)),
        )
        .map_err(|err| BadSignature(format!("unusable public key: {err}")))?;
        let res = if sha256 {
            key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
        } else {
            key.verify(Pkcs1v15Sign::new::<Sha384>(), &digest, &sig)
        };
        res.map_err(|err| BadSignature(err.to_string()))
    });
    match checked {
        Ok(()) => (alg, SigStatus::Valid),
        Err(why) => (alg, SigStatus::Invalid(why.0)),
    }
}

/// A SHA-256 stored in a manifest (byte-reversed, as ME stores its hashes) as lowercase hex.
pub fn stored_hash(h: &[u8]) -> String {
    let mut v = h.to_vec();
    v.reverse();
    hex::encode(v)
}

/// The `me-module-hash` evidence of an ME module (or `.met` file) whose hash its manifest chain lists:
/// `status` says whether the hash was computed and equal (valid), differs (invalid) or could not be checked
/// and why (not verified). Under a `trusted` manifest (signature valid, known Intel key) it is anchored in
/// Intel's key and gives `me-manifest` coverage when valid; under any other manifest the list vouches for
/// nothing (anyone can re-sign), so neither.
pub fn module_evidence(status: Status, trusted: bool) -> Evidence {
    let e = Evidence::on_node(Scheme::MeModuleHash, status);
    if trusted {
        e.with_trust(Trust::Anchored("intel".into()))
            .with_protection(Protection::MeManifest)
    } else {
        e
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A structurally valid RSA-2048 manifest of `size` bytes (garbage key and signature).
    pub(crate) fn manifest(size: usize) -> Vec<u8> {
        let mut m = vec![0u8; size];
        m[0..4].copy_from_slice(&4u32.to_le_bytes());
        m[4..8].copy_from_slice(&0xA1u32.to_le_bytes());
        m[0x18..0x1C].copy_from_slice(&((size / 4) as u32).to_le_bytes());
        m[0x1C..0x20].copy_from_slice(MN2_TAG);
        m[0x78..0x7C].copy_from_slice(&0x40u32.to_le_bytes());
        m[0x7C..0x80].copy_from_slice(&1u32.to_le_bytes());
        for (i, b) in m[0x80..0x180].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) | 1;
        }
        m[0x180..0x184].copy_from_slice(&65537u32.to_le_bytes());
        m
    }

    #[test]
    fn bad_signature_and_unknown_key_are_reported() {
        let m = parse(&manifest(0x300)).unwrap();
        assert!(matches!(m.signature, SigStatus::Invalid(_)));
        assert!(m.known_key.is_none());
        assert!(!m.trusted());
    }

    #[test]
    fn hostile_sizes_are_errors() {
        let good = manifest(0x300);
        for (off, v) in [
            (0x78, 0u32),        // key size 0
            (0x78, 1 << 20),     // key size 2^20 dwords
            (0x7C, 0),           // exponent size 0
            (0x04, 0xFFFF_FFFF), // header length
            (0x18, 0xFFFF_FFFF), // manifest size 2^34
            (0x18, 0x10),        // manifest smaller than its header
        ] {
            let mut m = good.clone();
            m[off..off + 4].copy_from_slice(&v.to_le_bytes());
            assert!(parse(&m).is_err(), "{off:#x}={v:#x}");
        }
        for cut in 0..good.len() {
            assert!(parse(&good[..cut]).is_err() || cut >= 0x300);
        }
    }
}
