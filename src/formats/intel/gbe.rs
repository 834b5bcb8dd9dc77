//! Intel GbE region: the NVM image of the integrated LAN controller (ICH8-10, 82577/82578, 82579, I217,
//! I218, I219).
//!
//! Numbers from Intel's LAN NVM maps (ICH8/9 "LAN NVM Map and Information Guide", the 82579/I217/I219
//! datasheets) and Linux `e1000e` (`ich8lan.c`, `nvm.c`), checked against real regions shipped for
//! coreboot boards (ThinkPad T440p: I217-LM, bank 0 valid; ThinkPad X230: 82579LM, bank 1 valid; Gigabyte
//! GA-Z77X-UD5H: 82579V, checksum not yet computed; see `tests/gbe.rs`). The region holds up to two 4 KiB
//! banks (the controller switches banks when software rewrites the NVM); in each bank:
//!
//! | words | bytes | meaning | child | policy |
//! |---|---|---|---|---|
//! | 0x00-0x02 | 0x00-0x05 | Ethernet (MAC) address | `mac` | per-machine |
//! | 0x03-0x3E | 0x06-0x7D | compatibility, image version, OEM words, PBA number (0x08-0x09), init control 1 (0x0A), subsystem ID (0x0B), subsystem vendor (0x0C), device ID (0x0D), init control 2 (0x0F), shared init control with the valid-bank signature (0x13, bits 15:14 = 10b), extended configuration words 1-3 (0x14-0x16), LED and PHY settings, PXE words (0x30-0x3E) | `words` | static |
//! | 0x3F | 0x7E-0x7F | checksum: words 0x00-0x3F sum to 0xBABA | `checksum` | per-machine |
//! | 0x40-0x4F | 0x80-0x9F | hardware words after the checksum (LAN/PHY init) | `hw-words` | static |
//! | (word 0x14 & 0xFFF) * 2 | x4 bytes | extended (PHY) configuration area: (data, address) pairs, word 0x15 bits 15:8 of them | `ext-config` | static |
//! | 0x100 | 0x200 | a block with the signature word 0x5369 and its byte length in word 0x101 (firmware data the NVM image carries) | `firmware-block` | static |
//!
//! The rest of a bank is free space (blank; anything else there is `padding-not-empty`). Bank 1's names
//! carry a `bank1-` prefix. A bank is laid out when it is valid or, stale, still holds data.
//!
//! The checksum is checked for the bank the controller uses (the first valid one), and only when the NVM
//! says it was computed: `e1000e` treats a clear "checksum valid" bit (word 0x19 bit 6 up to the 82579,
//! word 0x03 bit 0 from the I217 on) as an image prepared without a checksum and computes it itself. For a
//! device ID not in either list the checksum is always checked (fail closed). A wrong checksum gets a
//! `gbe-checksum` note (`e1000e` refuses such an NVM).
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::util::{le16, slice};
use crate::formats::{Confidence, Ctx};
use crate::region::{Note, Policy, Region, RegionKind};

pub const BANK_SIZE: u64 = 0x1000;
const NVM_SUM: u16 = 0xBABA;
/// Signature word of the block at word 0x100.
const FW_BLOCK_SIG: u16 = 0x5369;
const FW_BLOCK_OFF: u64 = 0x200;

/// Device IDs (word 0x0D) of the controllers before the I217 (ICH8, ICH9, ICH10, 82577/82578, 82579), from
/// `e1000e`'s `hw.h`: their "checksum valid" bit is word 0x19 bit 6.
const PRE_LPT: &[u16] = &[
    0x1049, 0x104A, 0x104B, 0x104C, 0x104D, 0x10BD, 0x10BF, 0x10C0, 0x10C2, 0x10C3, 0x10C4, 0x10C5,
    0x10CB, 0x10CC, 0x10CD, 0x10CE, 0x10DE, 0x10DF, 0x10E5, 0x10EA, 0x10EB, 0x10EF, 0x10F0, 0x10F5,
    0x1501, 0x1502, 0x1503, 0x1525, 0x294C,
];

/// Device IDs of the I217, I218 and I219 (`e1000e`'s `e1000_pch_lpt` and later): their "checksum valid"
/// bit is word 0x03 bit 0.
const LPT_ON: &[(u16, u16)] = &[
    (0x0D4C, 0x0D4F),
    (0x0D53, 0x0D53),
    (0x0D55, 0x0D55),
    (0x0DC5, 0x0DC8),
    (0x153A, 0x153B),
    (0x1559, 0x155A),
    (0x156F, 0x1570),
    (0x15A0, 0x15A3),
    (0x15B7, 0x15B9),
    (0x15BB, 0x15BE),
    (0x15D6, 0x15D8),
    (0x15DF, 0x15E3),
    (0x15F4, 0x15F5),
    (0x15F9, 0x15FC),
    (0x1A1C, 0x1A1F),
    (0x550A, 0x5511),
    (0x57A0, 0x57A1),
    (0x57B3, 0x57BA),
];

/// A GbE region file of its own (as coreboot boards ship `gbe.bin`): exactly one or two banks, the bank
/// the controller uses has the valid signature, a device ID of an Intel integrated LAN controller and a
/// checksum that is right or that the NVM says was never computed. Anything less is not recognised (the
/// signature is two bits); inside a flash descriptor the region is parsed by name.
pub fn probe(b: &[u8]) -> Option<Confidence> {
    let len = b.len() as u64;
    if len != BANK_SIZE && len != BANK_SIZE.saturating_mul(2) {
        return None;
    }
    let bank = [0, BANK_SIZE].into_iter().find(|&o| bank_valid(b, o))?;
    let claimed = checksum_claimed(b, bank)?;
    (!claimed || bank_sum(b, bank) == Some(NVM_SUM)).then_some(Confidence::High)
}

/// Whether the bank at `off` carries the valid-NVM signature (word 0x13 bits 15:14 == 10b).
pub fn bank_valid(b: &[u8], off: u64) -> bool {
    le16(b, off.saturating_add(0x26), "gbe signature word").is_ok_and(|w| w >> 14 == 0b10)
}

/// Sum of words 0x00-0x3F of the bank at `off`.
pub fn bank_sum(b: &[u8], off: u64) -> Option<u16> {
    let words = slice(b, off, 0x80, "gbe nvm words").ok()?;
    Some(words.chunks_exact(2).fold(0u16, |s, w| {
        s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    }))
}

/// Whether the bank at `off` says its checksum was computed (`None`: the device is unknown, so it must
/// be).
fn checksum_claimed(b: &[u8], off: u64) -> Option<bool> {
    let word = |w: u64| le16(b, off.saturating_add(w.saturating_mul(2)), "gbe word").ok();
    let dev = word(0x0D)?;
    if PRE_LPT.contains(&dev) {
        word(0x19).map(|w| w & 0x0040 != 0)
    } else if LPT_ON.iter().any(|(lo, hi)| (*lo..=*hi).contains(&dev)) {
        word(0x03).map(|w| w & 0x0001 != 0)
    } else {
        None
    }
}

pub fn format_mac(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "gbe",
    description:
        "Intel GbE region (NVM banks: MAC, configuration words, checksum, PHY configuration)",
    probe,
    parse,
    scope: crate::formats::Scope::File(Confidence::High),
    component: Some("bios"),
    policy: None,
    not_inside: &[],
    payloads: &[],
    package: None,
};

pub fn parse(ctx: &Ctx, node: &Region) -> Result<crate::formats::Parsed, ParseError> {
    let b = node.bytes();
    slice(b, 0, 0x80, "GbE NVM bank 0")?;
    // The bank the controller reads: the first with a valid signature.
    let used = [0, BANK_SIZE].into_iter().find(|&o| bank_valid(b, o));
    let mut kids = Vec::new();
    for (bank, prefix) in [(0u64, ""), (BANK_SIZE, "bank1-")] {
        // A bank is words 0x00-0x3F at least; a region cut inside bank 1 has no bank 1.
        let Ok(head) = slice(b, bank, 0x80, "GbE NVM bank") else {
            continue;
        };
        let valid = bank_valid(b, bank);
        if bank > 0 && !valid && head.iter().all(|&x| x == ctx.opts.blank) {
            continue;
        }
        let room = (b.len() as u64).saturating_sub(bank).min(BANK_SIZE);
        let mut parts = bank_parts(b, bank, room, valid, ctx.opts.blank);
        parts.sort_by_key(|p| p.0);
        let mut end = 0u64;
        for (off, len, name, policy, attrs) in parts {
            if off < end {
                continue;
            }
            end = off.saturating_add(len);
            let at = node.offset.saturating_add(bank).saturating_add(off);
            let mut r = Region::new(
                RegionKind::Blob,
                format!("{prefix}{name}"),
                &node.data,
                at,
                len,
            )
            .with_policy(policy);
            for (k, v) in attrs {
                r = r.with_attr(k, v);
            }
            if name == "checksum" && used == Some(bank) {
                check_sum(b, bank, at, &mut r);
            }
            kids.push(r);
        }
    }
    Ok(kids.into())
}

type Part = (
    u64,
    u64,
    &'static str,
    Policy,
    Vec<(&'static str, serde_json::Value)>,
);

/// The structures of the bank at `bank` (`room` bytes of it are in the region), offsets in the bank.
fn bank_parts(b: &[u8], bank: u64, room: u64, valid: bool, blank: u8) -> Vec<Part> {
    let word =
        |w: u64| le16(b, bank.saturating_add(w.saturating_mul(2)), "gbe word").unwrap_or(0xFFFF);
    let mac = slice(b, bank, 6, "mac").map(format_mac).unwrap_or_default();
    let hex = |w: u16| serde_json::Value::from(format!("{w:#06x}"));
    let mut parts: Vec<Part> = vec![
        (
            0,
            6,
            "mac",
            Policy::Mutable,
            vec![("mac", mac.into()), ("nvm-valid", valid.into())],
        ),
        (
            6,
            0x78,
            "words",
            Policy::Static,
            vec![
                ("device-id", hex(word(0x0D))),
                ("subsystem-vendor-id", hex(word(0x0C))),
                ("subsystem-id", hex(word(0x0B))),
                ("image-version", hex(word(0x05))),
                (
                    "pba",
                    format!("{:04x}{:04x}", word(0x08), word(0x09)).into(),
                ),
            ],
        ),
        (0x7E, 2, "checksum", Policy::Mutable, vec![]),
    ];
    // The extended configuration area: word 0x14 bits 11:0 point at it in units of 2 words, word 0x15
    // bits 15:8 count its (data, address) word pairs.
    let ext_off = u64::from(word(0x14) & 0x0FFF).saturating_mul(4);
    let ext_len = u64::from(word(0x15) >> 8).saturating_mul(4);
    let ext = (ext_len > 0 && ext_off >= 0x80 && ext_off.saturating_add(ext_len) <= room)
        .then_some((ext_off, ext_len));
    let hw_end = ext.map_or(0xA0, |(o, _)| o.min(0xA0));
    let hw = slice(
        b,
        bank.saturating_add(0x80),
        hw_end.saturating_sub(0x80),
        "hw words",
    );
    if hw_end > 0x80 && room >= hw_end && hw.is_ok_and(|h| h.iter().any(|&x| x != blank)) {
        parts.push((
            0x80,
            hw_end.saturating_sub(0x80),
            "hw-words",
            Policy::Static,
            vec![],
        ));
    }
    if let Some((o, l)) = ext {
        parts.push((
            o,
            l,
            "ext-config",
            Policy::Static,
            vec![("entries", (l / 4).into())],
        ));
    }
    let fw_len = u64::from(word(0x101));
    if word(0x100) == FW_BLOCK_SIG && fw_len >= 4 && FW_BLOCK_OFF.saturating_add(fw_len) <= room {
        parts.push((
            FW_BLOCK_OFF,
            fw_len,
            "firmware-block",
            Policy::Static,
            vec![("signature", hex(FW_BLOCK_SIG))],
        ));
    }
    parts
}

/// The checksum of the bank the controller uses, on its `checksum` node `r` at image offset `at`.
fn check_sum(b: &[u8], bank: u64, at: u64, r: &mut Region) {
    let Some(sum) = bank_sum(b, bank) else {
        return;
    };
    let claimed = checksum_claimed(b, bank);
    r.attrs.insert("sum".into(), format!("{sum:#06x}").into());
    r.attrs
        .insert("checksum-claimed".into(), claimed.unwrap_or(true).into());
    if sum != NVM_SUM && claimed != Some(false) {
        r.notes.push(Note::new(
            Code::GbeChecksum,
            format!(
                "GbE NVM bank at +{bank:#x}: words 0x00-0x3F sum to {sum:#06x}, expected {NVM_SUM:#06x}"
            ),
            Some(at),
        ));
    }
}

/// Sets the checksum word of the bank at `off` so that words 0x00-0x3F sum to 0xBABA (for tests/tools).
pub fn fix_checksum(b: &mut [u8], off: usize) {
    if off.checked_add(0x80).is_none_or(|end| b.len() < end) {
        return;
    }
    #[allow(clippy::arithmetic_side_effects)] // `off + 0x80 <= b.len()` (checked just above)
    let sum = (0..0x3F).fold(0u16, |s, i| {
        s.wrapping_add(u16::from_le_bytes([b[off + 2 * i], b[off + 2 * i + 1]]))
    });
    let ck = NVM_SUM.wrapping_sub(sum);
    #[allow(clippy::arithmetic_side_effects)] // as above
    b[off + 0x7E..off + 0x80].copy_from_slice(&ck.to_le_bytes());
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {

    use super::*;
    use crate::formats::ParseOptions;
    use crate::input::Data;
    use std::sync::Arc;

    fn gbe(banks: usize) -> Vec<u8> {
        let mut b = vec![0xFFu8; 0x2000];
        for k in 0..banks {
            let o = k * 0x1000;
            b[o..o + 0x80].fill(0);
            b[o..o + 6].copy_from_slice(&[0x00, 0x1B, 0x21, 0xAA, 0xBB, k as u8]);
            b[o + 0x27] = 0x80;
            fix_checksum(&mut b, o);
        }
        b
    }

    fn run(b: Vec<u8>) -> Result<Vec<Region>, ParseError> {
        let data = Arc::new(Data::Owned(b));
        let n = Region::new(RegionKind::FlashRegion, "gbe", &data, 0, data.len() as u64);
        parse(&Ctx::new(&ParseOptions::default()), &n).map(|p| p.children)
    }

    #[test]
    fn macs_and_checksums() {
        let kids = run(gbe(2)).unwrap();
        let names: Vec<_> = kids.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mac",
                "words",
                "checksum",
                "bank1-mac",
                "bank1-words",
                "bank1-checksum"
            ]
        );
        assert_eq!(kids[3].attr_str("mac"), Some("00:1b:21:aa:bb:01"));
        assert!(kids.iter().all(|k| k.notes.is_empty()));
        // Only the bank in use (bank 0) has its checksum checked.
        assert!(kids[2].attrs.contains_key("sum") && !kids[5].attrs.contains_key("sum"));
        let kids = run(gbe(1)).unwrap();
        assert_eq!(kids.len(), 3);
        // An unknown device ID (0): the checksum is checked whatever the NVM claims.
        let mut bad = gbe(1);
        bad[3] ^= 1;
        let kids = run(bad.clone()).unwrap();
        assert_eq!(kids[2].notes[0].code.as_str(), "gbe-checksum");
        // An 82579 (0x1502) whose word 0x19 bit 6 says the checksum was never computed: not checked.
        bad[0x1A..0x1C].copy_from_slice(&0x1502u16.to_le_bytes());
        let kids = run(bad.clone()).unwrap();
        assert!(kids[2].notes.is_empty());
        assert_eq!(kids[2].attrs["checksum-claimed"], false);
        // ... and when it says it was: checked.
        bad[0x32] |= 0x40;
        let kids = run(bad).unwrap();
        assert_eq!(kids[2].notes[0].code.as_str(), "gbe-checksum");
        assert!(run(vec![0; 0x40]).is_err());
        // Found by fuzzing: bank 1's signature word fits, its checksum word does not.
        let mut cut = gbe(2);
        cut.truncate(0x1040);
        let kids = run(cut).unwrap();
        assert_eq!(kids.len(), 3);
        assert!(kids.iter().all(|k| k.end() <= 0x1040));
        crate::formats::util::mutations_stay_in_bounds(&gbe(2), "gbe", 2000);
    }
}
