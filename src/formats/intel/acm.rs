//! Intel Authenticated Code Modules (the startup ACM of FIT type 2): the module header (type 2, header
//! length and module size in dwords, header version, chipset id, flags, vendor 0x8086, BCD date, TXT and
//! SE SVNs, key size) and the RSA signature, verified with the public key the header carries.
//!
//! Header versions 0.0 and 0.1 carry a 2048-bit key, its exponent and a PKCS#1 v1.5 SHA-256 signature;
//! versions 3.0 and later a 3072-bit key (exponent 65537) and an RSASSA-PSS SHA-384 signature. The key is
//! stored little-endian. The signature covers the first 128 bytes of the header (everything before the
//! key) and the module body after the header (from `header_len * 4` to `size * 4`): the key, signature and
//! scratch area are excluded, as Intel's TXT specification describes the signed part.
#![deny(clippy::arithmetic_side_effects)]

use super::keys::{self, PubKey, SigCheck};
use crate::error::ParseError;
use crate::formats::util::{le16, le32, slice};

/// A parsed module header and its verification.
#[derive(Debug, Clone)]
pub struct Acm {
    pub module_type: u16,
    pub module_subtype: u16,
    pub header_len: u64,
    pub header_version: u32,
    pub chipset_id: u16,
    pub flags: u16,
    pub vendor: u32,
    pub date: String,
    pub size: u64,
    pub txt_svn: u16,
    pub se_svn: u16,
    pub key: PubKey,
    pub key_sha256: String,
    pub signature: SigCheck,
}

/// Largest ACM accepted (real ones are 64-256 KiB).
pub const MAX_ACM: u64 = 4 << 20;

/// Whether `b` starts like an ACM header (type 2, vendor Intel).
pub fn probe(b: &[u8]) -> bool {
    le16(b, 0, "acm").ok() == Some(2) && le32(b, 16, "acm").ok() == Some(0x8086)
}

/// Parses and verifies the ACM at the start of `b`.
pub fn parse(b: &[u8]) -> Result<Acm, ParseError> {
    let what = "ACM header";
    let module_type = le16(b, 0, what)?;
    // Dword counts of 32 bits times 4: below 2^34, no overflow in u64.
    let header_len = u64::from(le32(b, 4, what)?).saturating_mul(4);
    let header_version = le32(b, 8, what)?;
    let vendor = le32(b, 16, what)?;
    let date = le32(b, 20, what)?;
    let size = u64::from(le32(b, 24, what)?).saturating_mul(4);
    let key_size = u64::from(le32(b, 120, what)?).saturating_mul(4);
    if module_type != 2 {
        return Err(ParseError::Invalid {
            what,
            offset: 0,
            detail: format!("module type {module_type}, expected 2"),
        });
    }
    if size > MAX_ACM || size < header_len || header_len < 128 {
        return Err(ParseError::Invalid {
            what,
            offset: 24,
            detail: format!("module size 0x{size:x} with header of 0x{header_len:x} bytes"),
        });
    }
    let v3 = header_version >= 0x0003_0000;
    let want_key = if v3 { 384 } else { 256 };
    if key_size != want_key {
        return Err(ParseError::Invalid {
            what,
            offset: 120,
            detail: format!("key of {key_size} bytes for header version 0x{header_version:08x}"),
        });
    }
    let module = slice(b, 0, size, what)?;
    let modulus = slice(module, 128, key_size, what)?.to_vec();
    // `key_size` is 256 or 384 (checked above): these sums are small.
    let key_end = key_size.saturating_add(128);
    let (exponent, sig_off) = if v3 {
        (65537, key_end)
    } else {
        (le32(module, key_end, what)?, key_end.saturating_add(4))
    };
    let sig = slice(module, sig_off, key_size, what)?;
    if sig_off.saturating_add(key_size) > header_len {
        return Err(ParseError::Invalid {
            what,
            offset: 4,
            detail: "signature reaches past the header".into(),
        });
    }
    let key = PubKey::Rsa {
        modulus_le: modulus,
        exponent,
    };
    let key_sha256 =
        keys::hex(&keys::digest(keys::ALG_SHA256, &[&key.hash_input(false)]).unwrap_or_default());
    let mut msg = module[..128].to_vec();
    msg.extend_from_slice(&module[header_len as usize..]);
    let signature = if v3 {
        keys::verify(&key, keys::ALG_RSAPSS, keys::ALG_SHA384, sig, &msg)
    } else {
        keys::verify(&key, keys::ALG_RSASSA, keys::ALG_SHA256, sig, &msg)
    };
    Ok(Acm {
        module_type,
        module_subtype: le16(b, 2, what)?,
        header_len,
        header_version,
        chipset_id: le16(b, 12, what)?,
        flags: le16(b, 14, what)?,
        vendor,
        date: format!(
            "{:04x}-{:02x}-{:02x}",
            date >> 16,
            (date >> 8) & 0xFF,
            date & 0xFF
        ),
        size,
        txt_svn: le16(b, 28, what)?,
        se_svn: le16(b, 30, what)?,
        key,
        key_sha256,
        signature,
    })
}
