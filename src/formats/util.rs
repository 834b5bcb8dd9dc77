//! Bounds-checked little helpers shared by the parsers. Nothing here panics on any input.
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;

/// `bytes[offset..offset+len]`, or a `Truncated` error naming `what`.
pub fn slice<'a>(
    bytes: &'a [u8],
    offset: u64,
    len: u64,
    what: &'static str,
) -> Result<&'a [u8], ParseError> {
    let have = bytes.len() as u64;
    let end = offset
        .checked_add(len)
        .ok_or(ParseError::Overflow { what, offset })?;
    if end > have {
        return Err(ParseError::Truncated {
            what,
            offset,
            need: len,
            have: have.saturating_sub(offset),
        });
    }
    // Both fit in usize: end <= bytes.len().
    Ok(&bytes[offset as usize..end as usize])
}

pub fn u8_at(b: &[u8], off: u64, what: &'static str) -> Result<u8, ParseError> {
    Ok(slice(b, off, 1, what)?[0])
}

pub fn le16(b: &[u8], off: u64, what: &'static str) -> Result<u16, ParseError> {
    let s = slice(b, off, 2, what)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

pub fn le24(b: &[u8], off: u64, what: &'static str) -> Result<u32, ParseError> {
    let s = slice(b, off, 3, what)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], 0]))
}

pub fn le32(b: &[u8], off: u64, what: &'static str) -> Result<u32, ParseError> {
    let s = slice(b, off, 4, what)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub fn le64(b: &[u8], off: u64, what: &'static str) -> Result<u64, ParseError> {
    let s = slice(b, off, 8, what)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

pub fn be32(b: &[u8], off: u64, what: &'static str) -> Result<u32, ParseError> {
    let s = slice(b, off, 4, what)?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

pub fn be64(b: &[u8], off: u64, what: &'static str) -> Result<u64, ParseError> {
    let s = slice(b, off, 8, what)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_be_bytes(a))
}

/// `a + b`, or an overflow error.
pub fn add(a: u64, b: u64, what: &'static str) -> Result<u64, ParseError> {
    a.checked_add(b)
        .ok_or(ParseError::Overflow { what, offset: a })
}

/// Rounds `v` up to a multiple of `align` (a power of two), or an overflow error.
pub fn align_up(v: u64, align: u64, what: &'static str) -> Result<u64, ParseError> {
    let mask = align.saturating_sub(1);
    Ok(add(v, mask, what)? & !mask)
}

/// Formats a little-endian EFI GUID (16 bytes) in registry form.
pub fn guid(b: &[u8]) -> String {
    if b.len() < 16 {
        return String::from("invalid-guid");
    }
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

/// The forward target (from the instruction's own address) of an unconditional branch at the start of an
/// Arm image: AArch64 `B imm26` (bits 31..26 = 0b000101, target = imm26 * 4) or A32 `B` with condition AL
/// (bits 31..24 = 0xEA, target = 8 + imm24 * 4, the PC reading two instructions ahead). Backward branches
/// give `None`.
pub fn arm_branch_target(insn: u32) -> Option<u64> {
    if insn >> 26 == 0b000101 && insn & 0x0200_0000 == 0 {
        // 26 bits times 4: at most 2^28.
        Some(u64::from(insn & 0x03FF_FFFF).saturating_mul(4))
    } else if insn >> 24 == 0xEA && insn & 0x0080_0000 == 0 {
        // 24 bits times 4, plus 8: below 2^27.
        Some(
            u64::from(insn & 0x00FF_FFFF)
                .saturating_mul(4)
                .saturating_add(8),
        )
    } else {
        None
    }
}

/// A deterministic mutation run for a parser's unit tests (cargo-fuzz is not needed to run it): random
/// 32/64-bit fields of `good` overwritten with boundary values, `rounds` times; every image is parsed as
/// `format` and every node must stay inside the input.
#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // test code: `b` is a non-empty fixture
pub fn mutations_stay_in_bounds(good: &[u8], format: &str, rounds: usize) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let interesting = [
        0u64,
        1,
        0x7F,
        0xFF,
        0xFFFF,
        0xFFFF_FFFF,
        0x8000_0000,
        u64::MAX,
        0x20000,
    ];
    for _ in 0..rounds {
        let mut b = good.to_vec();
        for _ in 0..(next() % 8 + 1) {
            let at = (next() % b.len() as u64) as usize;
            let v = interesting[(next() % interesting.len() as u64) as usize];
            let w = if next() % 2 == 0 { 4 } else { 8 };
            let end = (at + w).min(b.len());
            b[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
        }
        let len = b.len() as u64;
        let data = std::sync::Arc::new(crate::input::Data::Owned(b));
        let opts = crate::formats::ParseOptions {
            format: Some(format.into()),
            ..Default::default()
        };
        let t = crate::formats::parse_image(data, &opts);
        t.walk(&mut |r| {
            if std::sync::Arc::ptr_eq(&r.data, &t.data) {
                assert!(r.end() <= len, "{} past the end", r.path);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_bounds_checked() {
        let b = [1u8, 2, 3, 4];
        assert_eq!(slice(&b, 1, 2, "x").unwrap(), &[2, 3]);
        assert!(slice(&b, 3, 2, "x").is_err());
        assert!(slice(&b, u64::MAX, 2, "x").is_err());
        assert_eq!(le32(&b, 0, "x").unwrap(), 0x04030201);
        assert!(le64(&b, 0, "x").is_err());
        assert_eq!(align_up(9, 8, "x").unwrap(), 16);
        assert!(align_up(u64::MAX, 8, "x").is_err());
    }

    #[test]
    fn arm_branches_decode() {
        // AAVMF32: `b 0x1000` (A32), QEMU_EFI.fd: `b 0x1000` (AArch64).
        assert_eq!(
            arm_branch_target(u32::from_le_bytes([0xfe, 0x03, 0x00, 0xea])),
            Some(0x1000)
        );
        assert_eq!(arm_branch_target(0x1400_0400), Some(0x1000));
        assert_eq!(arm_branch_target(0xEAFF_FFFE), None);
        assert_eq!(arm_branch_target(0x9000_0000), None);
    }

    #[test]
    fn guid_formatting_matches_registry_form() {
        // FFS2 GUID as stored on flash.
        let b = [
            0x78, 0xE5, 0x8C, 0x8C, 0x3D, 0x8A, 0x1C, 0x4F, 0x99, 0x35, 0x89, 0x61, 0x85, 0xC3,
            0x2D, 0xD3,
        ];
        assert_eq!(guid(&b), "8C8CE578-8A3D-4F1C-9935-896185C32DD3");
    }
}
