//! The RoT header of an AST2600/AST10x0 boot image (socsec's `ROT_HEADER_FORMAT`), its chain-of-trust
//! info, and the boot ROM's signature check repeated against the keys of an OTP image.
//!
//! RoT header, eight little-endian words at the OTP's header offset (0x20 on the AST2600, 0x400 on the
//! AST10x0): AES data offset, encryption offset (0: not encrypted), signed image size (a multiple of 512),
//! signature offset, revision low and high (anti-rollback bits), a reserved word (the AST2605's flash patch
//! offset), and a checksum that makes the eight words sum to zero. The ROM hashes bytes `0..size` (the
//! encrypted bytes in the AES modes: no decryption is needed to check the signature) and verifies the
//! signature at its offset with every OEM key of the OTP that is not retired.
//!
//! The chain-of-trust info (socsec `--cot_algorithm`), right after the header: `info` (bit 0 RSA, bits 2:1
//! the hash, bits 4:3 the RSA size, bits 31:20 the exponent's bit length) and the offset of the next
//! stage's RSA public key or digest inside the signed region. It is reported only when it is consistent
//! with the signed size as socsec lays it out; whether BL1 enforces it is BL1's code, not the ROM's.
#![deny(clippy::arithmetic_side_effects)]

use sha2::Digest;

use super::otp::{Hash, KeyKind, Mode, Order, Otp, Padding};

/// Size of the RoT header.
pub const HEADER_SIZE: usize = 32;
/// Where the header lies on the AST2600 and on the AST10x0 unless the OTP says otherwise.
pub const OFFSETS: [usize; 2] = [0x20, 0x400];

/// A RoT header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Offset of the header in the image.
    pub at: usize,
    pub aes_data_offset: u32,
    pub enc_offset: u32,
    pub sign_image_size: u32,
    pub signature_offset: u32,
    pub revision_low: u32,
    pub revision_high: u32,
    pub reserved: u32,
    pub checksum: u32,
}

impl Header {
    /// The anti-rollback revision: how many revision bits are set.
    pub fn revision(&self) -> u32 {
        self.revision_low
            .count_ones()
            .saturating_add(self.revision_high.count_ones())
    }
}

/// Why a header at an offset is not a RoT header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("no RoT header at {0:#x}: the image is shorter")]
    Short(usize),
    #[error("RoT header at {0:#x}: checksum words do not sum to zero")]
    Checksum(usize),
    #[error("RoT header at {at:#x}: signed size {size:#x} is zero, not a multiple of 512 or past the image's end")]
    Size { at: usize, size: u32 },
}

/// Reads the header at `at` and checks what the ROM checks (checksum, 512-byte aligned size).
pub fn header(b: &[u8], at: usize) -> Result<Header, HeaderError> {
    let h = at
        .checked_add(HEADER_SIZE)
        .and_then(|end| b.get(at..end))
        .ok_or(HeaderError::Short(at))?;
    let mut words = [0u32; 8];
    for (w, c) in words.iter_mut().zip(h.chunks_exact(4)) {
        *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    if words.iter().fold(0u32, |a, &x| a.wrapping_add(x)) != 0 {
        return Err(HeaderError::Checksum(at));
    }
    let hd = Header {
        at,
        aes_data_offset: words[0],
        enc_offset: words[1],
        sign_image_size: words[2],
        signature_offset: words[3],
        revision_low: words[4],
        revision_high: words[5],
        reserved: words[6],
        checksum: words[7],
    };
    if hd.sign_image_size == 0
        || hd.sign_image_size % 512 != 0
        || hd.sign_image_size as usize > b.len()
    {
        return Err(HeaderError::Size {
            at,
            size: hd.sign_image_size,
        });
    }
    Ok(hd)
}

/// A header that also looks like socsec's output: the signature after the signed bytes, inside the
/// image, and a plausible encryption offset (for detection without an OTP).
pub fn plausible(b: &[u8], at: usize) -> Option<Header> {
    let h = header(b, at).ok()?;
    let sig_ok = h.signature_offset >= h.sign_image_size
        && (h.signature_offset as usize).checked_add(16)? <= b.len();
    let enc_ok = h.enc_offset == 0
        || (h.enc_offset % 16 == 0
            && h.enc_offset as usize >= at.checked_add(0x30)?
            && h.enc_offset < h.sign_image_size);
    (sig_ok && enc_ok).then_some(h)
}

/// The chain-of-trust info after the header: what BL1 verifies the next stage with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cot {
    /// `RSA2048_SHA256`, `SHA384` (hash binding), ...
    pub algorithm: String,
    /// Offset of the next stage's key or digest in the image.
    pub data_offset: u32,
    /// SHA-256 of that key (modulus then exponent, as socsec writes it) or digest.
    pub data_sha256: String,
}

/// The CoT info of an image, when present (see the module documentation).
pub fn cot(b: &[u8], h: &Header) -> Option<Cot> {
    let at = h.at.checked_add(HEADER_SIZE)?;
    let word = |o: usize| -> Option<u32> {
        let w = b.get(o..o.checked_add(4)?)?;
        Some(u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    };
    let info = word(at)?;
    let data_offset = word(at.checked_add(4)?)?;
    let rsa = info & 1 == 1;
    let hash = match (info >> 1) & 3 {
        0 => Hash::Sha224,
        1 => Hash::Sha256,
        2 => Hash::Sha384,
        _ => Hash::Sha512,
    };
    let rsa_bits = 1024usize
        .checked_mul(((info >> 3) & 3) as usize)?
        .checked_add(1024)?;
    // Bits socsec never sets must be clear; an RSA info carries the exponent's bit length.
    let unused = if rsa { info & 0x000F_FFE0 } else { info & !0x7 };
    if unused != 0 || (rsa && info >> 20 == 0) {
        return None;
    }
    let len = if rsa { rsa_bits / 4 } else { hash.size() };
    let min = at.checked_add(8)?.checked_add(0xF)? & !0xF;
    let end = (data_offset as usize).checked_add(len)?;
    let rounded = end.checked_add(511)? & !511;
    if data_offset % 16 != 0
        || (data_offset as usize) < min
        || rounded != h.sign_image_size as usize
    {
        return None;
    }
    let data = b.get(data_offset as usize..end)?;
    Some(Cot {
        algorithm: if rsa {
            format!("RSA{rsa_bits}_{}", hash.name())
        } else {
            hash.name().to_string()
        },
        data_offset,
        data_sha256: hex::encode(sha2::Sha256::digest(data)),
    })
}

/// The result of the ROM's check against one OTP image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Verified with the OTP key `id` (not retired).
    Valid { id: u8, kind: &'static str },
    /// Verifies only with a retired key.
    Retired { id: u8 },
    /// A key of the OTP made this signature (its padding decodes) but the signed bytes changed, or no
    /// ECDSA key verifies, or the header/configuration disagree: the ROM refuses the image.
    Invalid(String),
    /// No key of the OTP made this signature.
    Untrusted(String),
    /// The OTP's mode cannot be checked offline (AES-GCM needs the OTP's AES key).
    NotVerified(String),
}

/// The signature length of a mode.
fn sig_len(otp: &Otp) -> usize {
    match otp.mode {
        Mode::Rsa { .. } => otp.rsa_bytes,
        Mode::Ecdsa { .. } => 96,
        Mode::AesGcm => 16,
    }
}

/// Repeats the boot ROM's check of image `b` against `otp` (as `socsec verify` does).
pub fn verify(b: &[u8], otp: &Otp) -> Outcome {
    let h = match header(b, otp.header_offset as usize) {
        Ok(h) => h,
        Err(e) => {
            return Outcome::Invalid(format!(
                "{e} (where the OTP's {} boot ROM reads it)",
                otp.soc.name()
            ))
        }
    };
    let enc = h.enc_offset != 0;
    if enc != otp.mode.encrypts() && !matches!(otp.mode, Mode::Ecdsa { .. }) {
        return Outcome::Invalid(if enc {
            "the image is encrypted but the OTP configuration selects a mode without encryption"
                .into()
        } else {
            "the OTP configuration selects encryption but the image is not encrypted".into()
        });
    }
    // socsec reads the signature from the first sign_image_size + 1 KiB bytes.
    let window = &b[..b
        .len()
        .min((h.sign_image_size as usize).saturating_add(1024))];
    let signed = &window[..h.sign_image_size as usize];
    let sig = (h.signature_offset as usize)
        .checked_add(sig_len(otp))
        .and_then(|end| window.get(h.signature_offset as usize..end));
    let Some(sig) = sig else {
        return Outcome::Invalid(format!(
            "the {}-byte signature at {:#x} lies past the image's end",
            sig_len(otp),
            h.signature_offset
        ));
    };
    match otp.mode {
        Mode::Rsa { hash, padding, .. } => rsa(otp, signed, sig, hash, padding),
        Mode::Ecdsa { .. } => ecdsa(otp, signed, sig),
        Mode::AesGcm => gcm(otp, window, &h, sig),
    }
}

/// AES-256-GCM (secure-boot mode 1): the tag (stored as four 32-bit words in reverse order) over the
/// bytes before `enc_offset` (authenticated data) and the encrypted bytes up to the signed size, with the
/// 12-byte IV at the AES data offset, checked with each OEM AES key of the OTP (the plaintext is
/// discarded).
fn gcm(otp: &Otp, window: &[u8], h: &Header, sig: &[u8]) -> Outcome {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    let (enc, size, ivo) = (
        h.enc_offset as usize,
        h.sign_image_size as usize,
        h.aes_data_offset as usize,
    );
    let Some(iv) = ivo.checked_add(12).and_then(|e| window.get(ivo..e)) else {
        return Outcome::Invalid(format!(
            "AES-GCM: the IV at {ivo:#x} lies past the image's end"
        ));
    };
    if enc > size {
        return Outcome::Invalid(format!(
            "AES-GCM: the encryption offset {enc:#x} lies past the signed size {size:#x}"
        ));
    }
    let mut tag = [0u8; 16];
    for (dst, src) in tag.chunks_exact_mut(4).zip(sig.chunks_exact(4).rev()) {
        dst.copy_from_slice(src);
    }
    let mut n = 0usize;
    for k in otp.keys.iter().filter(|k| k.kind == KeyKind::AesOem) {
        n = n.saturating_add(1);
        let Ok(cipher) = aes_gcm::Aes256Gcm::new_from_slice(&k.public) else {
            continue;
        };
        let mut buf = window[enc..size].to_vec();
        let ok = cipher
            .decrypt_in_place_detached(
                aes_gcm::Nonce::from_slice(iv),
                &window[..enc],
                &mut buf,
                aes_gcm::Tag::from_slice(&tag),
            )
            .is_ok();
        if ok {
            return Outcome::Valid {
                id: k.id,
                kind: "OEM AES-256-GCM",
            };
        }
    }
    Outcome::Invalid(format!(
        "AES-GCM: the tag does not verify with any of the {n} OEM AES key(s) of the OTP (the signed region changed, or another key made it)"
    ))
}

/// `x^65537 mod n` in the OTP's byte order, `len` bytes; `None` for a degenerate modulus.
fn rsa_public(sig: &[u8], modulus: &[u8], order: Order, len: usize) -> Option<Vec<u8>> {
    use rsa::BigUint;
    let num = |b: &[u8]| match order {
        Order::Little => BigUint::from_bytes_le(b),
        Order::Big => BigUint::from_bytes_be(b),
    };
    let n = num(modulus);
    if n <= BigUint::from(1u8) {
        return None;
    }
    let m = num(sig).modpow(&BigUint::from(65537u32), &n);
    let mut out = match order {
        Order::Little => m.to_bytes_le(),
        Order::Big => m.to_bytes_be(),
    };
    if out.len() > len {
        return None;
    }
    // Pad to `len` on the high side.
    let pad = len.saturating_sub(out.len());
    match order {
        Order::Little => out.resize(len, 0),
        Order::Big => {
            let mut v = vec![0u8; pad];
            v.extend_from_slice(&out);
            out = v;
        }
    }
    Some(out)
}

/// Whether a decoded block is PKCS#1 v1.5 type 1 padding around a `hlen`-byte digest.
fn pkcs1_shaped(dec: &[u8], order: Order, hlen: usize) -> bool {
    let be: Vec<u8> = match order {
        Order::Big => dec.to_vec(),
        Order::Little => dec.iter().rev().copied().collect(),
    };
    let Some(ps_end) = be.len().checked_sub(hlen.saturating_add(1)) else {
        return false;
    };
    ps_end >= 10
        && be[0] == 0
        && be[1] == 1
        && be[2..ps_end].iter().all(|&x| x == 0xFF)
        && be[ps_end] == 0
}

/// MGF1 with `hash`.
fn mgf1(seed: &[u8], len: usize, hash: Hash) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut counter = 0u32;
    while out.len() < len {
        let mut input = seed.to_vec();
        input.extend_from_slice(&counter.to_be_bytes());
        out.extend(hash.digest(&input));
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// socsec's PSS check: the hash of `0^8 || mHash || salt` (the last 20 bytes of DB) equals H.
fn pss_ok(em: &[u8], digest: &[u8], hash: Hash) -> bool {
    let hlen = hash.size();
    let Some(db_len) = em.len().checked_sub(hlen.saturating_add(1)) else {
        return false;
    };
    let (masked, rest) = em.split_at(db_len);
    let h = &rest[..hlen];
    let mask = mgf1(h, db_len, hash);
    let db: Vec<u8> = masked.iter().zip(&mask).map(|(a, b)| a ^ b).collect();
    let Some(salt) = db.len().checked_sub(20).map(|s| &db[s..]) else {
        return false;
    };
    let mut m = vec![0u8; 8];
    m.extend_from_slice(digest);
    m.extend_from_slice(salt);
    hash.digest(&m) == h
}

fn rsa(otp: &Otp, signed: &[u8], sig: &[u8], hash: Hash, padding: Padding) -> Outcome {
    let digest = hash.digest(signed);
    let len = otp.rsa_bytes;
    let hlen = hash.size();
    let mut shaped: Option<u8> = None;
    let mut retired: Option<u8> = None;
    let oem = otp.keys.iter().filter(|k| k.kind == KeyKind::RsaOem);
    for k in oem {
        let Some(dec) = rsa_public(sig, &k.public, otp.order, len) else {
            continue;
        };
        let (ok, shape) = match padding {
            Padding::Pkcs1 => {
                let d = match otp.order {
                    Order::Little => &dec[..hlen.min(dec.len())],
                    Order::Big => &dec[dec.len().saturating_sub(hlen)..],
                };
                (d == digest.as_slice(), pkcs1_shaped(&dec, otp.order, hlen))
            }
            Padding::Pss => (pss_ok(&dec, &digest, hash), dec.last() == Some(&0xBC)),
        };
        match (ok, k.retired) {
            (true, false) => {
                return Outcome::Valid {
                    id: k.id,
                    kind: "OEM DSS RSA",
                }
            }
            (true, true) => retired = retired.or(Some(k.id)),
            (false, _) if shape => shaped = shaped.or(Some(k.id)),
            _ => {}
        }
    }
    let alg = format!(
        "RSA{}_{} {}",
        len.saturating_mul(8),
        hash.name(),
        match padding {
            Padding::Pkcs1 => "PKCS#1 v1.5",
            Padding::Pss => "PSS",
        }
    );
    if let Some(id) = retired {
        return Outcome::Retired { id };
    }
    match shaped {
        Some(id) => Outcome::Invalid(format!(
            "{alg}: OTP key {id} made the signature, but over other bytes: the signed region changed"
        )),
        None => Outcome::Untrusted(format!(
            "{alg}: no OEM key of the OTP image ({} with {} RSA OEM key(s)) made the signature",
            otp.soc.name(),
            otp.keys.iter().filter(|k| k.kind == KeyKind::RsaOem).count()
        )),
    }
}

fn ecdsa(otp: &Otp, signed: &[u8], sig: &[u8]) -> Outcome {
    use p384::ecdsa::signature::hazmat::PrehashVerifier;
    let digest = sha2::Sha384::digest(signed);
    let Ok(signature) = p384::ecdsa::Signature::from_slice(sig) else {
        return Outcome::Invalid("ECDSA P-384: the signature's r or s is out of range".into());
    };
    let mut retired = None;
    let mut n = 0usize;
    for k in otp.keys.iter().filter(|k| k.kind == KeyKind::EcdsaPublic) {
        n = n.saturating_add(1);
        let mut sec1 = vec![4u8];
        sec1.extend_from_slice(&k.public);
        let Ok(vk) = p384::ecdsa::VerifyingKey::from_sec1_bytes(&sec1) else {
            continue;
        };
        if vk.verify_prehash(&digest, &signature).is_ok() {
            if !k.retired {
                return Outcome::Valid {
                    id: k.id,
                    kind: "OEM DSS ECDSA P-384",
                };
            }
            retired = retired.or(Some(k.id));
        }
    }
    match retired {
        Some(id) => Outcome::Retired { id },
        None => Outcome::Invalid(format!(
            "ECDSA P-384 (SHA-384): none of the {n} ECDSA key(s) of the OTP verifies the signature (the signed region changed, or another key signed it)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_must_sum_to_zero_and_cover_whole_sectors() {
        let mut b = vec![0u8; 0x1200];
        let put = |b: &mut Vec<u8>, i: usize, v: u32| {
            b[0x20 + 4 * i..0x24 + 4 * i].copy_from_slice(&v.to_le_bytes())
        };
        put(&mut b, 2, 0x1000);
        put(&mut b, 3, 0x1000);
        put(&mut b, 7, 0u32.wrapping_sub(0x2000));
        let h = header(&b, 0x20).unwrap();
        assert_eq!(h.sign_image_size, 0x1000);
        assert!(plausible(&b, 0x20).is_some());
        assert!(cot(&b, &h).is_none());
        put(&mut b, 7, 0);
        assert_eq!(header(&b, 0x20), Err(HeaderError::Checksum(0x20)));
        // All zero: sums to zero, but signs nothing.
        assert!(header(&[0u8; 0x100], 0x20).is_err());
        assert_eq!(header(&b[..0x30], 0x20), Err(HeaderError::Short(0x20)));
    }
}
