//! Intel GbE region: the NVM image of the integrated LAN controller (82579, I217, I218, I219).
//!
//! Numbers from Linux `e1000e` (`ich8lan.h`, `nvm.c`) and the 82579/I217 datasheets: the region holds up to
//! two 4 KiB banks; in each, words 0x00-0x02 are the MAC address, word 0x13 bits 15:14 = 10b mark a valid
//! bank, and words 0x00-0x3F must sum to 0xBABA (word 0x3F is the checksum word).
//!
//! Children: `mac` (6 bytes) and `checksum` (word 0x3F) of bank 0 and, when bank 1 (+0x1000) has a valid
//! signature, `bank1-mac` and `bank1-checksum`. They are per-machine (`Policy::Mutable`): programming a MAC
//! rewrites the checksum word too. Everything else stays static. A valid bank with a wrong checksum gets a
//! `gbe-checksum` note (e1000e refuses such an NVM).
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::util::{le16, slice};
use crate::formats::{Confidence, Ctx};
use crate::region::{Note, Policy, Region, RegionKind};

pub const BANK_SIZE: u64 = 0x1000;
const NVM_SUM: u16 = 0xBABA;

/// Never auto-detected (the signature is two bits); the flash descriptor parser calls it by name.
pub fn probe(_b: &[u8]) -> Option<Confidence> {
    None
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

pub fn format_mac(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "gbe",
    description: "Intel GbE region (NVM banks, MAC address)",
    probe,
    parse,
    scope: crate::formats::Scope::Content,
    component: Some("bios"),
    policy: None,
    not_inside: &[],
    payloads: &[],
    package: None,
};

pub fn parse(_ctx: &Ctx, node: &Region) -> Result<crate::formats::Parsed, ParseError> {
    let b = node.bytes();
    slice(b, 0, 0x80, "GbE NVM bank 0")?;
    let mut kids = Vec::new();
    for (bank, prefix) in [(0u64, ""), (BANK_SIZE, "bank1-")] {
        let valid = bank_valid(b, bank);
        // A bank is words 0x00-0x3F at least; a region cut inside bank 1 has no bank 1.
        if (bank > 0 && !valid) || slice(b, bank, 0x80, "GbE NVM bank").is_err() {
            continue;
        }
        let Ok(mac) = slice(b, bank, 6, "mac") else {
            continue;
        };
        kids.push(
            Region::new(
                RegionKind::Blob,
                format!("{prefix}mac"),
                &node.data,
                node.offset.saturating_add(bank),
                6,
            )
            .with_policy(Policy::Mutable)
            .with_attr("mac", format_mac(mac))
            .with_attr("nvm-valid", valid),
        );
        let mut ck = Region::new(
            RegionKind::Blob,
            format!("{prefix}checksum"),
            &node.data,
            node.offset.saturating_add(bank).saturating_add(0x7E),
            2,
        )
        .with_policy(Policy::Mutable);
        if let Some(sum) = bank_sum(b, bank) {
            ck = ck.with_attr("sum", format!("{sum:#06x}"));
            if valid && sum != NVM_SUM {
                ck.notes.push(Note::new(
                    Code::GbeChecksum,
                    format!(
                        "GbE NVM bank at +{bank:#x}: words 0x00-0x3F sum to {sum:#06x}, expected {NVM_SUM:#06x}"
                    ),
                    Some(node.offset.saturating_add(bank).saturating_add(0x7E)),
                ));
            }
        }
        kids.push(ck);
    }
    Ok(kids.into())
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
        assert_eq!(names, ["mac", "checksum", "bank1-mac", "bank1-checksum"]);
        assert_eq!(kids[2].attr_str("mac"), Some("00:1b:21:aa:bb:01"));
        assert!(kids.iter().all(|k| k.notes.is_empty()));
        let kids = run(gbe(1)).unwrap();
        assert_eq!(kids.len(), 2);
        let mut bad = gbe(1);
        bad[3] ^= 1;
        let kids = run(bad).unwrap();
        assert_eq!(kids[1].notes[0].code.as_str(), "gbe-checksum");
        assert!(run(vec![0; 0x40]).is_err());
        // Found by fuzzing: bank 1's signature word fits, its checksum word does not.
        let mut cut = gbe(2);
        cut.truncate(0x1040);
        let kids = run(cut).unwrap();
        assert_eq!(kids.len(), 2);
        assert!(kids.iter().all(|k| k.end() <= 0x1040));
    }
}
