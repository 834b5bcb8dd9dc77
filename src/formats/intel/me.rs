//! Intel ME region: the `$FPT` flash partition table.
//!
//! Layout (MEAnalyzer, me_cleaner, coreboot's `util/me_cleaner`): an optional 16-byte ROM-bypass vector,
//! then the `$FPT` header (0x20 bytes: signature, u32 entry count, header version, entry version, header
//! length, checksum, ...), then `count` entries of 0x20 bytes: name[4], owner[4], u32 offset (from the start
//! of the ME region), u32 length, start tokens, max tokens, scratch sectors, u32 flags (bits 6:0 partition
//! type: 0 code, 1 data, 2 NVRAM, 3 generic, 4 EFFS, 5 ROM; byte 3 = 0xFF marks an invalid entry).
//!
//! Each present partition becomes a `Partition` node named by its 4-character name (`FTPR`, `MFS`, ...).
//! Per-machine partitions (`signatures/me-partitions.txt`, plus types NVRAM and EFFS) are mutable.
//!
//! Header checksum (header version 0x20, ME 6 to CSME 15 and SPS): the `header length` bytes that end at
//! `$FPT + 0x20` sum to 0 mod 256. With a 0x20-byte header that is the `$FPT` header alone (Purley SPS 4);
//! with a 0x30-byte header the 16-byte ROM-bypass vector is included (Lumpy ME 8). Header version 0x21
//! (CSME 16+) uses a CRC32 instead, reported as not verified. A wrong sum is `fpt-header-checksum`.
//!
//! Code partitions are parsed further: a `$CPD` directory (CSE: ME 11+, SPS 4+, TXE 3+) by [`crate::formats::me_cpd`],
//! an ME 6-10 `$MN2` manifest with `$MME` modules by [`crate::formats::me_mn2`].
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::util::{le32, slice, u8_at};
use crate::formats::{Confidence, Ctx};
use crate::region::{Note, Policy, Region, RegionKind};

const FPT_SIG: u32 = 0x5450_4624; // "$FPT"
/// Most entries read from one table (real tables have fewer than 32).
pub const MAX_ENTRIES: u64 = 256;

const PER_MACHINE: &str = include_str!("../../../signatures/me-partitions.txt");

/// Whether the partition `name` holds per-machine data (from `signatures/me-partitions.txt`).
pub fn is_per_machine(name: &str) -> bool {
    PER_MACHINE
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .any(|n| n == name)
}

/// Offset of `$FPT` in an ME region: 0, or 0x10 after a ROM-bypass vector.
pub fn fpt_offset(b: &[u8]) -> Option<u64> {
    [0u64, 0x10]
        .into_iter()
        .find(|&o| le32(b, o, "$FPT").ok() == Some(FPT_SIG))
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    fpt_offset(b).map(|_| Confidence::High)
}

fn part_type(t: u32) -> String {
    match t {
        0 => "code".into(),
        1 => "data".into(),
        2 => "nvram".into(),
        3 => "generic".into(),
        4 => "effs".into(),
        5 => "rom".into(),
        n => format!("unknown-{n}"),
    }
}

/// A 4-byte partition name as a path segment (printable ASCII kept, anything else hex-escaped).
// Reviewed: a position in a 4-byte field, plus one.
#[allow(clippy::arithmetic_side_effects)]
fn part_name(raw: &[u8]) -> String {
    let trimmed: &[u8] = {
        let end = raw
            .iter()
            .rposition(|&c| c != 0 && c != b' ')
            .map_or(0, |p| p + 1);
        &raw[..end]
    };
    if trimmed.is_empty() {
        return "unnamed".into();
    }
    trimmed
        .iter()
        .map(|&c| {
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.' {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}

/// The registry entry.
/// An ME region file of a release (`me.bin`) is the `me` region of an Intel descriptor's flash. It is not
/// vendor-signed as a whole (its manifests carry their own `me-manifest` evidence).
pub const PACKAGE: crate::formats::package::PackageSpec = crate::formats::package::PackageSpec {
    kind: "me-region",
    is_package: |_| true,
    parts: crate::formats::package::Parts::Whole("me"),
    flash_layout: None,
    ubi_volume: None,
    signing: None,
};

pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "me",
    description:
        "Intel ME/CSME/SPS region ($FPT partitions, $CPD directories, $MN2 manifests, modules)",
    probe,
    parse,
    // A bare ME region file ($FPT at 0 or 0x10) is recognised on its own too.
    scope: crate::formats::Scope::Both,
    component: Some("bios"),
    policy: None,
    not_inside: &[],
    payloads: &[],
    package: Some(&PACKAGE),
};

// Reviewed: `fpt` is 0 or 0x10 and the entry count is bounded by what fits in the region (and MAX_ENTRIES), so table offsets stay below `len`; partition offsets and sizes are 32-bit values in u64 (`off < len` before `len - off`); `base` plus an offset in the node fits.
#[allow(clippy::arithmetic_side_effects)]
pub fn parse(ctx: &Ctx, node: &Region) -> Result<crate::formats::Parsed, ParseError> {
    let b = node.bytes();
    let len = b.len() as u64;
    let base = node.offset;
    let fpt = fpt_offset(b).ok_or(ParseError::Invalid {
        what: "ME region",
        offset: base,
        detail: "no $FPT at offset 0 or 0x10".into(),
    })?;
    let declared = u64::from(le32(b, fpt + 4, "$FPT entry count")?);
    let hdr_ver = u8_at(b, fpt + 8, "$FPT header version")?;
    let hdr_len = u8_at(b, fpt + 10, "$FPT header length")?;
    let entries_off = fpt + 0x20;
    let fits = len.saturating_sub(entries_off) / 0x20;
    let count = declared.min(fits).min(MAX_ENTRIES);
    // The table (ROM bypass, header, entries) as far as it is present.
    let table_end = (entries_off + count * 0x20).min(len);
    let mut table = Region::new(RegionKind::Header, "fpt", &node.data, base, table_end)
        .with_attr("entries", declared)
        .with_attr("header-version", format!("{hdr_ver:#04x}"))
        .with_attr("header-length", hdr_len)
        .with_attr("rom-bypass", fpt == 0x10);
    checksum(b, fpt, hdr_ver, hdr_len, base, &mut table);
    if declared > count {
        let code = if declared > MAX_ENTRIES && fits > MAX_ENTRIES {
            Code::LimitExceeded
        } else {
            Code::PartitionOutOfBounds
        };
        table.notes.push(Note::new(
            code,
            format!(
                "$FPT declares {declared} entries; {count} fit in the {len:#x}-byte region (limit {MAX_ENTRIES})"
            ),
            Some(base + fpt + 4),
        ));
    }
    let mut kids = Vec::new();
    for i in 0..count {
        let e = entries_off + i * 0x20;
        let raw = slice(b, e, 0x20, "$FPT entry")?;
        let name = part_name(&raw[0..4]);
        let owner = part_name(&raw[4..8]);
        let off = u64::from(le32(raw, 8, "offset")?);
        let size = u64::from(le32(raw, 12, "length")?);
        let flags = le32(raw, 28, "flags")?;
        if off == 0 || off == 0xFFFF_FFFF || size == 0 || size == 0xFFFF_FFFF || flags >> 24 == 0xFF
        {
            continue; // an empty or invalid entry: no bytes of its own
        }
        if off >= len {
            table.notes.push(Note::new(
                Code::PartitionOutOfBounds,
                format!("partition {name} starts at {off:#x}, past the end of the {len:#x}-byte ME region"),
                Some(base + e),
            ));
            continue;
        }
        let mut p = Region::new(
            RegionKind::Partition,
            name.clone(),
            &node.data,
            base + off,
            size,
        )
        .with_attr("partition-type", part_type(flags & 0x7F))
        .with_attr("owner", owner)
        .with_attr("flags", format!("{flags:#010x}"));
        if off + size > len {
            p.size = len - off;
            p.notes.push(Note::new(
                Code::PartitionOutOfBounds,
                format!(
                    "partition {name} ({off:#x}+{size:#x}) extends past the end of the {len:#x}-byte ME region"
                ),
                Some(base + off),
            ));
        }
        if is_per_machine(&name) || matches!(flags & 0x7F, 2 | 4) {
            p.policy = Policy::Mutable;
        } else if flags & 0x7F == 0 {
            parse_code_partition(ctx, &mut p);
        }
        kids.push(p);
    }
    kids.push(table);
    kids.sort_by_key(|k| k.offset);
    Ok(kids.into())
}

/// Verifies the header checksum (version 0x20) and records the result on the table node.
// Reviewed: `fpt` is 0 or 0x10 and the header length at most 0x30.
#[allow(clippy::arithmetic_side_effects)]
fn checksum(b: &[u8], fpt: u64, hdr_ver: u8, hdr_len: u8, base: u64, table: &mut Region) {
    let hdr_len = u64::from(hdr_len);
    let end = fpt + 0x20;
    let status = match (hdr_ver, end.checked_sub(hdr_len)) {
        (0x20, Some(start)) if matches!(hdr_len, 0x20 | 0x30) => {
            match slice(b, start, hdr_len, "$FPT header") {
                Ok(h) => {
                    let sum = h.iter().fold(0u8, |a, &c| a.wrapping_add(c));
                    if sum == 0 {
                        "valid"
                    } else {
                        table.notes.push(Note::new(
                            Code::FptHeaderChecksum,
                            format!(
                                "$FPT header bytes {:#x}..{end:#x} sum to {sum:#04x}, not 0",
                                base + start
                            ),
                            Some(base + fpt + 11),
                        ));
                        "invalid"
                    }
                }
                Err(_) => "truncated",
            }
        }
        (0x21, _) => "not verified (CRC32, header version 0x21)",
        _ => "not verified (unknown header version or length)",
    };
    table.attrs.insert("checksum".into(), status.into());
}

/// Parses a code partition's content: a `$CPD` directory or an ME 6-10 manifest. Errors become notes.
fn parse_code_partition(ctx: &Ctx, p: &mut Region) {
    let b = p.bytes();
    let res = if crate::formats::me_cpd::probe(b) {
        p.attrs.insert("format".into(), "me-cpd".into());
        ctx.deeper(p.offset)
            .and_then(|_| crate::formats::me_cpd::parse(p, ctx.opts.blank))
    } else if crate::formats::me_mn2::probe(b) {
        p.attrs.insert("format".into(), "me-mn2".into());
        ctx.deeper(p.offset)
            .and_then(|c| crate::formats::me_mn2::parse(&c, p))
    } else {
        return;
    };
    match res {
        Ok(kids) => p.children = kids,
        Err(e) => p.notes.push(crate::formats::unparsed_note("me", &e)),
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {

    use super::*;
    use crate::formats::ParseOptions;
    use crate::input::Data;
    use std::sync::Arc;

    pub(crate) fn me_region(bypass: bool, parts: &[(&str, u32, u32, u32)], len: usize) -> Vec<u8> {
        let mut b = vec![0xFFu8; len];
        let f = if bypass { 0x10 } else { 0 };
        b[f..f + 4].copy_from_slice(b"$FPT");
        b[f + 4..f + 8].copy_from_slice(&(parts.len() as u32).to_le_bytes());
        b[f + 8] = 0x10;
        b[f + 9] = 0x10;
        b[f + 10] = 0x20;
        for (i, (n, off, size, flags)) in parts.iter().enumerate() {
            let e = f + 0x20 + i * 0x20;
            let mut name = [0u8; 4];
            name[..n.len()].copy_from_slice(n.as_bytes());
            b[e..e + 4].copy_from_slice(&name);
            b[e + 4..e + 8].fill(0);
            b[e + 8..e + 12].copy_from_slice(&off.to_le_bytes());
            b[e + 12..e + 16].copy_from_slice(&size.to_le_bytes());
            b[e + 28..e + 32].copy_from_slice(&flags.to_le_bytes());
        }
        b
    }

    fn run(b: Vec<u8>) -> Result<Vec<Region>, ParseError> {
        let data = Arc::new(Data::Owned(b));
        let n = Region::new(RegionKind::FlashRegion, "me", &data, 0, data.len() as u64);
        parse(&Ctx::new(&ParseOptions::default()), &n).map(|p| p.children)
    }

    #[test]
    fn partitions_and_policies() {
        for bypass in [false, true] {
            let b = me_region(
                bypass,
                &[("FTPR", 0x1000, 0x2000, 0), ("MFS", 0x3000, 0x1000, 1)],
                0x8000,
            );
            let kids = run(b).unwrap();
            let got: Vec<_> = kids
                .iter()
                .map(|k| (k.name.as_str(), k.offset, k.size, k.policy))
                .collect();
            assert_eq!(
                got[1..],
                [
                    ("FTPR", 0x1000, 0x2000, Policy::Static),
                    ("MFS", 0x3000, 0x1000, Policy::Mutable)
                ]
            );
        }
    }

    #[test]
    fn malformed_tables_become_notes() {
        let mut b = me_region(false, &[("FTPR", 0x1000, 0xFFFF_0000, 0)], 0x2000);
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let kids = run(b.clone()).unwrap();
        let fpt = kids.iter().find(|k| k.name == "fpt").unwrap();
        assert!(!fpt.notes.is_empty());
        let ftpr = kids.iter().find(|k| k.name == "FTPR").unwrap();
        assert_eq!(ftpr.notes[0].code.as_str(), "partition-out-of-bounds");
        // Every node stays inside the (truncated) region; found by fuzzing: the table node did not.
        let b = me_region(true, &[("FTPR", 0x100, 0x100, 0)], 0x200);
        for cut in 0..b.len() {
            if let Ok(kids) = run(b[..cut].to_vec()) {
                assert!(kids.iter().all(|k| k.end() <= cut as u64), "cut {cut}");
            }
        }
    }
}
