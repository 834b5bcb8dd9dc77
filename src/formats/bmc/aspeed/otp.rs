//! ASPEED OTP images (`otptool`/`socsec` format, AST2600 A0-A3, AST1030 A0/A1, AST1060 A1/A2): the keys
//! and the secure-boot configuration the SoC's boot ROM reads from its one-time-programmable memory.
//!
//! Layout (socsec `OTP_info`, read as `socsec verify` reads it):
//! - header, 40 bytes little-endian: magic `SOCOTP\0\0`, SoC version, reserved, image info (bits 15:0 the
//!   image size, bit 27 "dump" layout, bit 26 big-endian RSA key order), data info, config info, strap
//!   info (each `offset | size << 16`), reserved, checksum offset;
//! - a SHA-384 of the first `image size` bytes at the checksum offset;
//! - the data region (8 KiB) and config region (64 bytes), each followed by its program mask unless the
//!   image is a dump: a masked (unprogrammed) bit reads as the default, 0 in even and 1 in odd words of
//!   the data region, 0 in the config region;
//! - in the data region, up to 16 key headers (`type` bits 17:14, `id` bits 2:0, `offset` bits 12:3 in
//!   8-byte units, `parameter` bits 19:18, bit 13 "last"), the keys at their offsets;
//! - in the config region, word 0 the signing mode (bit 7 secure-boot mode, bit 27 encryption, bits 13:10
//!   the RSA size and hash, or on the AST1030 A1 the signature scheme), word 3 the RoT header offset,
//!   word 4 the retired key ids (bits 6:0 and 22:16).
#![deny(clippy::arithmetic_side_effects)]

use sha2::{Digest, Sha384};

/// Magic of an OTP image.
pub const MAGIC: &[u8] = b"SOCOTP";
const HEADER_SIZE: usize = 40;
const DATA_SIZE: usize = 8192;
const CONFIG_SIZE: usize = 64;
const HEADER_DUMP: u32 = 1 << 27;
const HEADER_ORDER: u32 = 1 << 26;
/// Largest OTP image read (real ones are about 16 KiB).
pub const MAX_SIZE: usize = 1 << 20;

/// The SoC an OTP image is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Soc {
    Ast2600A0,
    Ast2600A1,
    Ast2600A2,
    Ast2600A3,
    Ast1030A0,
    Ast1030A1,
    Ast1060A1,
    Ast1060A2,
}

impl Soc {
    fn from_code(v: u32) -> Option<Soc> {
        Some(match v {
            0 => Soc::Ast2600A0,
            1 => Soc::Ast2600A1,
            2 => Soc::Ast2600A2,
            3 => Soc::Ast2600A3,
            4 => Soc::Ast1030A0,
            5 => Soc::Ast1030A1,
            6 => Soc::Ast1060A1,
            7 => Soc::Ast1060A2,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Soc::Ast2600A0 => "AST2600 A0",
            Soc::Ast2600A1 => "AST2600 A1",
            Soc::Ast2600A2 => "AST2600 A2",
            Soc::Ast2600A3 => "AST2600 A3",
            Soc::Ast1030A0 => "AST1030 A0",
            Soc::Ast1030A1 => "AST1030 A1",
            Soc::Ast1060A1 => "AST1060 A1",
            Soc::Ast1060A2 => "AST1060 A2",
        }
    }

    fn is_2600(self) -> bool {
        matches!(
            self,
            Soc::Ast2600A0 | Soc::Ast2600A1 | Soc::Ast2600A2 | Soc::Ast2600A3
        )
    }
}

/// Byte order of RSA numbers (modulus, signature) in OTP and image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Little,
    Big,
}

/// A digest algorithm of mode 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_bits(b: u32) -> Hash {
        match b & 3 {
            0 => Hash::Sha224,
            1 => Hash::Sha256,
            2 => Hash::Sha384,
            _ => Hash::Sha512,
        }
    }

    /// The digest length in bytes.
    pub fn size(self) -> usize {
        match self {
            Hash::Sha224 => 28,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha224 => "SHA224",
            Hash::Sha256 => "SHA256",
            Hash::Sha384 => "SHA384",
            Hash::Sha512 => "SHA512",
        }
    }

    pub fn digest(self, b: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha224 => sha2::Sha224::digest(b).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(b).to_vec(),
            Hash::Sha384 => Sha384::digest(b).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(b).to_vec(),
        }
    }
}

/// RSA size in bytes from a 2-bit field (1024, 2048, 3072, 4096 bits).
fn rsa_bytes(bits: u32) -> usize {
    match bits & 3 {
        0 => 128,
        1 => 256,
        2 => 384,
        _ => 512,
    }
}

/// RSA padding of mode 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// PKCS#1 v1.5 (the digest without a DigestInfo, as `openssl rsautl -sign` pads it).
    Pkcs1,
    /// PSS with a 20-byte salt.
    Pss,
}

/// The signing mode the OTP configuration selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Mode 2: RSA signature over the image (encrypted with AES-CTR when `aes`).
    Rsa {
        aes: bool,
        hash: Hash,
        padding: Padding,
    },
    /// ECDSA P-384 with SHA-384 over the image (AST1030 A1 and later; encrypted when `aes`).
    Ecdsa { aes: bool },
    /// AES-GCM: the tag needs the AES key of the OTP (AST2600 secure-boot mode 1).
    AesGcm,
}

impl Mode {
    /// Whether the configuration encrypts the image.
    pub fn encrypts(self) -> bool {
        match self {
            Mode::Rsa { aes, .. } | Mode::Ecdsa { aes } => aes,
            Mode::AesGcm => true,
        }
    }
}

/// What a key of the OTP is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// OEM DSS RSA public key (verifies the image in mode 2).
    RsaOem,
    RsaSocPublic,
    RsaSocPrivate,
    AesOem,
    AesVault,
    /// OEM ECDSA P-384 public key (verifies the image in ECDSA mode).
    EcdsaPublic,
    EcdsaParameter,
}

/// One key of the OTP data region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub id: u8,
    pub kind: KeyKind,
    pub retired: bool,
    /// The RSA modulus (in the OTP's order), the ECDSA point X || Y (big-endian), or the OEM AES-256 key
    /// (AES-GCM mode); empty for others.
    pub public: Vec<u8>,
}

/// A parsed OTP image: what the boot ROM would verify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Otp {
    pub soc: Soc,
    pub order: Order,
    pub mode: Mode,
    /// RSA size in bytes the configuration selects (every RSA key of the OTP must have it).
    pub rsa_bytes: usize,
    /// Where the RoT header is in the boot image.
    pub header_offset: u32,
    pub keys: Vec<Key>,
    /// SHA-256 of the whole OTP image (names it in reports).
    pub sha256: String,
}

/// Why an OTP image is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OtpError {
    #[error("not an ASPEED OTP image (no SOCOTP magic at 0)")]
    Magic,
    #[error("OTP image larger than {MAX_SIZE} bytes")]
    TooLarge,
    #[error("OTP image SoC version {0} is not an AST2600, AST1030 or AST1060 (the AST2700 has another format)")]
    Soc(u32),
    #[error("OTP image: {what} at {offset:#x} lies outside the {len}-byte image")]
    Bounds {
        what: &'static str,
        offset: usize,
        len: usize,
    },
    #[error(
        "OTP image checksum (SHA-384 of the first {size:#x} bytes, at {offset:#x}) does not match"
    )]
    Checksum { size: usize, offset: usize },
    #[error("OTP configuration selects PFR mode, not secure boot")]
    Pfr,
    #[error(
        "OTP configuration selects signature scheme {0:#x}, which the boot ROM does not support"
    )]
    Scheme(u32),
    #[error("OTP key {id} ({bytes} bytes) does not match the RSA size the configuration selects ({want} bytes)")]
    KeySize { id: u8, bytes: usize, want: usize },
}

fn u32_at(b: &[u8], off: usize, what: &'static str) -> Result<u32, OtpError> {
    off.checked_add(4)
        .and_then(|end| b.get(off..end))
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .ok_or(OtpError::Bounds {
            what,
            offset: off,
            len: b.len(),
        })
}

fn slice<'a>(
    b: &'a [u8],
    off: usize,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], OtpError> {
    off.checked_add(len)
        .and_then(|end| b.get(off..end))
        .ok_or(OtpError::Bounds {
            what,
            offset: off,
            len: b.len(),
        })
}

/// Whether `b` starts like an OTP image.
pub fn probe(b: &[u8]) -> bool {
    b.starts_with(MAGIC)
}

/// Parses an OTP image as `socsec verify` does (default data for unprogrammed bits).
pub fn parse(b: &[u8]) -> Result<Otp, OtpError> {
    if b.len() > MAX_SIZE {
        return Err(OtpError::TooLarge);
    }
    if !probe(b) || b.len() < HEADER_SIZE {
        return Err(OtpError::Magic);
    }
    let word = |i: usize| u32_at(b, i, "header");
    let soc_code = word(8)?;
    let soc = Soc::from_code(soc_code).ok_or(OtpError::Soc(soc_code))?;
    let image_info = word(16)?;
    let data_info = word(20)?;
    let config_info = word(24)?;
    let checksum_offset = word(36)? as usize;
    let order = match soc {
        Soc::Ast2600A3 | Soc::Ast1030A1 | Soc::Ast1060A1 | Soc::Ast1060A2
            if image_info & HEADER_ORDER != 0 =>
        {
            Order::Big
        }
        _ => Order::Little,
    };
    let image_size = (image_info & 0xFFFF) as usize;
    let covered = slice(b, 0, image_size, "checksummed area")?;
    let want = slice(b, checksum_offset, 48, "checksum")?;
    if Sha384::digest(covered).as_slice() != want {
        return Err(OtpError::Checksum {
            size: image_size,
            offset: checksum_offset,
        });
    }
    let (data_off, data_len) = ((data_info & 0xFFFF) as usize, (data_info >> 16) as usize);
    let (conf_off, conf_len) = (
        (config_info & 0xFFFF) as usize,
        (config_info >> 16) as usize,
    );
    let (data, config) = if image_info & HEADER_DUMP != 0 {
        (
            slice(b, data_off, data_len, "data region")?.to_vec(),
            slice(b, conf_off, conf_len, "config region")?.to_vec(),
        )
    } else {
        let value = slice(b, data_off, DATA_SIZE, "data region")?;
        let mask = slice(
            b,
            data_off.saturating_add(DATA_SIZE),
            DATA_SIZE,
            "data mask",
        )?;
        let data = value
            .iter()
            .zip(mask)
            .enumerate()
            .map(|(i, (&v, &m))| {
                // Unprogrammed bits read 0 in even and 1 in odd words (socsec's default data).
                let default = if (i / 4) % 2 == 0 { 0 } else { 0xFF };
                (v & !m) | (default & m)
            })
            .collect();
        let cv = slice(b, conf_off, CONFIG_SIZE, "config region")?;
        let cm = slice(
            b,
            conf_off.saturating_add(CONFIG_SIZE),
            CONFIG_SIZE,
            "config mask",
        )?;
        let config = cv.iter().zip(cm).map(|(&v, &m)| v & !m).collect();
        (data, config)
    };
    let (mode, rsa_len, header_offset, retired) = config_of(soc, &config)?;
    let keys = keys_of(soc, order, rsa_len, &data, &retired)?;
    Ok(Otp {
        soc,
        order,
        mode,
        rsa_bytes: rsa_len,
        header_offset,
        keys,
        sha256: hex::encode(sha2::Sha256::digest(b)),
    })
}

type Config = (Mode, usize, u32, [bool; 8]);

/// The signing mode, RSA size, RoT header offset and retired key ids of the config region.
fn config_of(soc: Soc, c: &[u8]) -> Result<Config, OtpError> {
    let cfg0 = u32_at(c, 0, "config word 0")?;
    let cfg3 = u32_at(c, 12, "config word 3")?;
    let cfg4 = u32_at(c, 16, "config word 4")?;
    let secure_mode = (cfg0 >> 7) & 1;
    let enc = (cfg0 >> 27) & 1 == 1;
    let scheme = (cfg0 >> 10) & 0xF;
    let mut header_offset = cfg3 & 0xFFFF;
    if header_offset == 0 {
        header_offset = if soc.is_2600() { 0x20 } else { 0x400 };
    }
    let retire_bits = (cfg4 & 0x7F) | ((cfg4 >> 16) & 0x7F);
    let mut retired = [false; 8];
    for (i, r) in retired.iter_mut().enumerate().take(7) {
        *r = (retire_bits >> i) & 1 == 1;
    }
    let rsa_len_bits = (cfg0 >> 10) & 3;
    let sha_bits = (cfg0 >> 12) & 3;
    let pkcs1 = |aes| Mode::Rsa {
        aes,
        hash: Hash::from_bits(sha_bits),
        padding: Padding::Pkcs1,
    };
    let (mode, rsa_len) = match soc {
        s if s.is_2600() => {
            let m = if secure_mode == 0 {
                Mode::AesGcm
            } else {
                pkcs1(enc)
            };
            (m, rsa_bytes(rsa_len_bits))
        }
        Soc::Ast1030A0 => {
            if secure_mode == 1 {
                return Err(OtpError::Pfr);
            }
            (pkcs1(enc), rsa_bytes(rsa_len_bits))
        }
        _ => {
            if secure_mode == 1 {
                return Err(OtpError::Pfr);
            }
            match scheme {
                0..=3 => {
                    let n = match scheme {
                        1 => 256,
                        0 | 2 => 384,
                        _ => 512,
                    };
                    (Mode::Ecdsa { aes: enc }, n)
                }
                4 | 8 | 12 => {
                    let bits = scheme >> 2;
                    (
                        Mode::Rsa {
                            aes: enc,
                            hash: Hash::from_bits(bits),
                            padding: Padding::Pss,
                        },
                        rsa_bytes(bits),
                    )
                }
                5 | 10 | 15 => (pkcs1(enc), rsa_bytes(rsa_len_bits)),
                other => return Err(OtpError::Scheme(other)),
            }
        }
    };
    Ok((mode, rsa_len, header_offset, retired))
}

/// The key type codes of a SoC's key headers.
fn kind_of(soc: Soc, order: Order, t: u32) -> Option<KeyKind> {
    use KeyKind::*;
    match soc {
        Soc::Ast2600A0 => match t {
            0 => Some(AesOem),
            1 => Some(AesVault),
            8 => Some(RsaOem),
            0xA => Some(RsaSocPublic),
            0xE => Some(RsaSocPrivate),
            _ => None,
        },
        Soc::Ast2600A1 | Soc::Ast2600A2 | Soc::Ast1030A0 => match t {
            1 => Some(AesVault),
            2 => Some(AesOem),
            8 => Some(RsaOem),
            0xA => Some(RsaSocPublic),
            0xE => Some(RsaSocPrivate),
            _ => None,
        },
        Soc::Ast2600A3 => match (t, order) {
            (1, _) => Some(AesVault),
            (2, _) => Some(AesOem),
            (9, Order::Big) | (8, Order::Little) => Some(RsaOem),
            (0xB, Order::Big) | (0xA, Order::Little) => Some(RsaSocPublic),
            (0xD, Order::Big) | (0xC, Order::Little) => Some(RsaSocPrivate),
            _ => None,
        },
        Soc::Ast1030A1 | Soc::Ast1060A1 | Soc::Ast1060A2 => match t {
            1 => Some(AesVault),
            2 => Some(AesOem),
            9 => Some(RsaOem),
            0xB => Some(RsaSocPublic),
            0xD => Some(RsaSocPrivate),
            5 => Some(EcdsaParameter),
            7 => Some(EcdsaPublic),
            _ => None,
        },
    }
}

/// The keys of the data region (at most 16 headers, up to the one marked last).
fn keys_of(
    soc: Soc,
    order: Order,
    rsa_len: usize,
    data: &[u8],
    retired: &[bool; 8],
) -> Result<Vec<Key>, OtpError> {
    let mut keys = Vec::new();
    for i in 0..16usize {
        // i < 16: at most 60.
        let h = u32_at(data, i.saturating_mul(4), "key header")?;
        if let Some(kind) = kind_of(soc, order, (h >> 14) & 0xF) {
            // 3 bits: below 8.
            let id = (h & 7) as u8;
            let offset = (((h >> 3) & 0x3FF) << 3) as usize;
            let public = match kind {
                KeyKind::RsaOem | KeyKind::RsaSocPublic | KeyKind::RsaSocPrivate => {
                    let bytes = rsa_bytes(h >> 18);
                    if bytes != rsa_len {
                        return Err(OtpError::KeySize {
                            id,
                            bytes,
                            want: rsa_len,
                        });
                    }
                    slice(data, offset, bytes, "RSA key")?.to_vec()
                }
                KeyKind::EcdsaPublic => slice(data, offset, 96, "ECDSA key")?.to_vec(),
                KeyKind::AesOem => slice(data, offset, 32, "AES key")?.to_vec(),
                _ => Vec::new(),
            };
            keys.push(Key {
                id,
                kind,
                retired: retired[usize::from(id)],
                public,
            });
        }
        if h & (1 << 13) != 0 {
            break;
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_otp_images_are_refused_not_panicked_on() {
        assert_eq!(parse(b"nope"), Err(OtpError::Magic));
        let mut b = vec![0u8; 64];
        b[..6].copy_from_slice(MAGIC);
        b[8] = 9;
        assert_eq!(parse(&b), Err(OtpError::Soc(9)));
        b[8] = 1;
        // Image size 0x40 and a checksum offset past the end.
        b[16] = 0x40;
        b[36] = 0xF0;
        assert!(matches!(parse(&b), Err(OtpError::Bounds { .. })));
        for cut in 0..b.len() {
            let _ = parse(&b[..cut]);
        }
    }
}
