//! Intel flash descriptor (IFD) images: the whole SPI flash split into its FLREG regions.
//!
//! Layout (coreboot `util/ifdtool`, UEFITool `descriptor.h`, Intel PCH datasheets):
//!
//! | offset | field |
//! |---|---|
//! | 0x00 | 16 reserved bytes (ARM reset vector, 0xFF on x86) |
//! | 0x10 | FLVALSIG 0x0FF0A55A |
//! | 0x14 | FLMAP0: FCBA bits 7:0 (×16), NC bits 9:8, FRBA bits 23:16 (×16), NR bits 26:24 |
//! | 0x18 | FLMAP1: FMBA bits 7:0 (×16), NM bits 9:8, FPSBA bits 23:16 (×16), ISL bits 31:24 |
//! | 0x1C | FLMAP2: FMSBA bits 7:0 (×16), PSL bits 23:8 |
//! | FCBA | FLCOMP: component 1/2 density (bits 3:0 / 7:4 in v2, 2:0 / 5:3 in v1), read clock bits 19:17 |
//! | FRBA | FLREG0..15: base bits 14:0, limit bits 30:16, in 4 KiB units |
//!
//! A region with base > limit is unused. The descriptor version follows the read clock frequency as
//! UEFITool does: 20 MHz (0) = v1 (5 regions), anything else = v2 (16 regions); the count is further
//! bounded by the next descriptor section after FRBA. Region order and names: `descriptor`, `bios`, `me`,
//! `gbe`, `pdr`, `devexp1`, `bios2`, `microcode`, `ec`, `devexp2`, `ie`, `10gbe0`, `10gbe1`,
//! `reserved13`, `reserved14`, `ptt`.
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::util::{le32, u8_at};
use crate::formats::{Confidence, Ctx};
use crate::region::{Note, Region, RegionKind};

pub const SIGNATURE: u32 = 0x0FF0_A55A;
pub const DESCRIPTOR_SIZE: u64 = 0x1000;

/// FLREG index → region name. Stable: these are identity path segments.
pub const REGION_NAMES: [&str; 16] = [
    "descriptor",
    "bios",
    "me",
    "gbe",
    "pdr",
    "devexp1",
    "bios2",
    "microcode",
    "ec",
    "devexp2",
    "ie",
    "10gbe0",
    "10gbe1",
    "reserved13",
    "reserved14",
    "ptt",
];

/// The descriptor map (FLMAP0..2) decoded, with byte offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorMap {
    pub flmap0: u32,
    pub flmap1: u32,
    pub flmap2: u32,
    pub fcba: u64,
    pub frba: u64,
    pub fmba: u64,
    pub fpsba: u64,
    pub fmsba: u64,
}

impl DescriptorMap {
    pub fn read(b: &[u8]) -> Result<DescriptorMap, ParseError> {
        if le32(b, 0x10, "descriptor signature")? != SIGNATURE {
            return Err(ParseError::Invalid {
                what: "flash descriptor",
                offset: 0x10,
                detail: "no 0x0FF0A55A signature at 0x10".into(),
            });
        }
        let flmap0 = le32(b, 0x14, "FLMAP0")?;
        let flmap1 = le32(b, 0x18, "FLMAP1")?;
        let flmap2 = le32(b, 0x1C, "FLMAP2")?;
        let x16 = |v: u32, shift: u32| u64::from((v >> shift) & 0xFF) << 4;
        Ok(DescriptorMap {
            flmap0,
            flmap1,
            flmap2,
            fcba: x16(flmap0, 0),
            frba: x16(flmap0, 16),
            fmba: x16(flmap1, 0),
            fpsba: x16(flmap1, 16),
            fmsba: x16(flmap2, 0),
        })
    }

    /// FRBA and FCBA point inside the descriptor, after the map, and not at each other.
    pub fn sane(&self) -> bool {
        let ok = |o: u64| (0x20..0xE00).contains(&o);
        ok(self.frba) && ok(self.fcba) && self.frba != self.fcba
    }
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    let m = DescriptorMap::read(b).ok()?;
    Some(if m.sane() && b.len() as u64 >= DESCRIPTOR_SIZE {
        Confidence::High
    } else {
        Confidence::Medium
    })
}

fn density(code: u32) -> String {
    match code {
        0..=7 => {
            let kib = 512u64 << code;
            if kib >= 1024 {
                format!("{}MB", kib / 1024)
            } else {
                format!("{kib}KB")
            }
        }
        0xF => "unused".into(),
        n => format!("unknown-{n}"),
    }
}

/// A used FLREG: (index, byte offset, byte size).
pub type UsedRegion = (usize, u64, u64);

/// The descriptor map, FLCOMP and every used FLREG region.
pub fn regions(b: &[u8]) -> Result<(DescriptorMap, u32, Vec<UsedRegion>), ParseError> {
    let m = DescriptorMap::read(b)?;
    if !m.sane() {
        return Err(ParseError::Invalid {
            what: "descriptor map",
            offset: 0x14,
            detail: format!(
                "FRBA {:#x} / FCBA {:#x} do not point inside the descriptor",
                m.frba, m.fcba
            ),
        });
    }
    let flcomp = le32(b, m.fcba, "FLCOMP").unwrap_or(0);
    let version = if (flcomp >> 17) & 7 == 0 { 1 } else { 2 };
    let max = if version == 1 { 5u64 } else { 16 };
    let next = [m.fcba, m.fmba, m.fpsba, m.fmsba, DESCRIPTOR_SIZE]
        .into_iter()
        .filter(|&o| o > m.frba)
        .min()
        .unwrap_or(DESCRIPTOR_SIZE);
    // `next > m.frba` (filtered), or DESCRIPTOR_SIZE, above FRBA (< 0xE00 by sane()).
    let count = max.min(next.saturating_sub(m.frba) / 4).max(1);
    let mut out = Vec::new();
    for i in 0..count {
        // `i < 16`: a small offset past FRBA.
        let Ok(r) = le32(b, m.frba.saturating_add(i.saturating_mul(4)), "FLREG") else {
            break;
        };
        let base = u64::from(r & 0x7FFF);
        let limit = u64::from((r >> 16) & 0x7FFF);
        // base > limit: unused. base == limit == 0 for a region other than the descriptor: unused too
        // (UEFITool's rule; it would overlay the descriptor).
        if base > limit || (i > 0 && base == 0 && limit == 0) {
            continue;
        }
        // 15-bit fields, `base <= limit`: no overflow.
        out.push((
            i as usize,
            base << 12,
            limit.saturating_add(1).saturating_sub(base) << 12,
        ));
    }
    Ok((m, flcomp, out))
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "ifd",
    description: "Intel flash descriptor image (FLREG regions)",
    probe,
    parse,
    scope: crate::formats::Scope::Flash,
    component: Some("bios"),
    policy: None,
    not_inside: &["ifd"],
    payloads: &[],
    package: None,
};

// Reviewed: FLREG bases and sizes are 15-bit fields shifted by 12 (below 2^28), FRBA is below 0xE00 and `i < 16`, node offsets fit with their size: no sum here can overflow; `len - off` only when `off < len`.
#[allow(clippy::arithmetic_side_effects)]
pub fn parse(ctx: &Ctx, node: &Region) -> Result<crate::formats::Parsed, ParseError> {
    let b = node.bytes();
    let len = b.len() as u64;
    let (m, flcomp, regs) = regions(b)?;
    let version = if (flcomp >> 17) & 7 == 0 { 1 } else { 2 };
    let (d1, d2) = if version == 1 {
        (flcomp & 7, (flcomp >> 3) & 7)
    } else {
        (flcomp & 0xF, (flcomp >> 4) & 0xF)
    };
    let mut kids: Vec<Region> = Vec::new();
    let mut desc_notes: Vec<Note> = Vec::new();
    // A file of exactly the descriptor (coreboot ships them as `descriptor.bin`): the regions it
    // describes lie beyond it by design and are listed as information. A dump cut short anywhere else
    // (a node inside a larger buffer, or any other length) keeps its `partition-out-of-bounds` errors.
    let descriptor_only =
        len == DESCRIPTOR_SIZE && node.offset == 0 && node.data.len() as u64 == len;
    let mut beyond: Vec<String> = Vec::new();
    for &(i, off, size) in &regs {
        let name = REGION_NAMES[i];
        if descriptor_only && i > 0 && off.saturating_add(size) > len {
            beyond.push(format!("{name} {off:#x}..={:#x}", off + size - 1));
            continue;
        }
        if off >= len {
            desc_notes.push(Note::new(
                Code::PartitionOutOfBounds,
                format!(
                    "FLREG{i} ({name}) {off:#x}..={:#x} starts past the end of the {len:#x}-byte image",
                    off + size - 1
                ),
                Some(node.offset + m.frba + 4 * i as u64),
            ));
            continue;
        }
        let kind = if i == 0 {
            RegionKind::Descriptor
        } else {
            RegionKind::FlashRegion
        };
        let mut r = Region::new(kind, name, &node.data, node.offset + off, size)
            .with_attr("flreg", i)
            .with_attr("base", format!("{off:#x}"))
            .with_attr("limit", format!("{:#x}", off + size - 1));
        if off + size > len {
            r.size = len - off;
            r.notes.push(Note::new(
                Code::PartitionOutOfBounds,
                format!(
                    "FLREG{i} ({name}) {off:#x}..={:#x} ends past the end of the {len:#x}-byte image",
                    off + size - 1
                ),
                Some(node.offset + off),
            ));
        }
        kids.push(r);
    }
    if !kids.iter().any(|k| k.kind == RegionKind::Descriptor) {
        let mut d = Region::new(
            RegionKind::Descriptor,
            "descriptor",
            &node.data,
            node.offset,
            DESCRIPTOR_SIZE.min(len),
        );
        d.notes.push(Note::new(
            Code::Unparsed,
            "FLREG0 (descriptor) is unused; assuming the descriptor is the first 4 KiB",
            Some(node.offset + m.frba),
        ));
        kids.push(d);
    }
    kids.sort_by_key(|k| (k.offset, k.size));
    // Overlaps: each region against every earlier-starting one that reaches into it.
    for j in 1..kids.len() {
        for i in 0..j {
            if kids[i].end() > kids[j].offset {
                let msg = format!(
                    "region {} {:#x}..{:#x} overlaps region {} {:#x}..{:#x}",
                    kids[j].name,
                    kids[j].offset,
                    kids[j].end(),
                    kids[i].name,
                    kids[i].offset,
                    kids[i].end()
                );
                let at = kids[j].offset;
                kids[j]
                    .notes
                    .push(Note::new(Code::PartitionOverlap, msg, Some(at)));
            }
        }
    }
    let used = kids
        .iter()
        .filter(|k| k.attrs.contains_key("flreg"))
        .count()
        + beyond.len();
    for k in &mut kids {
        if k.kind == RegionKind::Descriptor {
            k.notes.append(&mut desc_notes);
            k.attrs.insert("descriptor-version".into(), version.into());
            k.attrs
                .insert("flmap0".into(), format!("{:#010x}", m.flmap0).into());
            k.attrs
                .insert("flmap1".into(), format!("{:#010x}", m.flmap1).into());
            k.attrs
                .insert("flmap2".into(), format!("{:#010x}", m.flmap2).into());
            k.attrs
                .insert("flcomp".into(), format!("{flcomp:#010x}").into());
            k.attrs
                .insert("component1-density".into(), density(d1).into());
            k.attrs
                .insert("component2-density".into(), density(d2).into());
            k.attrs.insert(
                "number-of-components".into(),
                (((m.flmap0 >> 8) & 3) + 1).into(),
            );
            k.attrs.insert("number-of-regions".into(), used.into());
            if descriptor_only {
                k.attrs
                    .insert("regions-beyond-file".into(), beyond.clone().into());
            }
            k.attrs
                .insert("frba".into(), format!("{:#x}", m.frba).into());
            if let Ok(isl) = u8_at(node.bytes(), 0x1B, "ISL") {
                k.attrs.insert("pch-strap-length".into(), isl.into());
            }
            continue;
        }
        parse_region(ctx, k);
    }
    let parsed = crate::formats::Parsed::from(kids);
    Ok(if descriptor_only {
        parsed.attr("descriptor-only", true)
    } else {
        parsed
    })
}

/// Parses one flash region's content: ME and GbE by their parsers, anything else by detection.
fn parse_region(ctx: &Ctx, r: &mut Region) {
    let forced = match r.name.as_str() {
        "me" if crate::formats::me::probe(r.bytes()).is_some() => Some(&crate::formats::me::FORMAT),
        "gbe" => Some(&crate::formats::gbe::FORMAT),
        // Anything else by detection. A region is never a descriptor image itself (`not_inside`): nesting
        // one would let 16 overlapping regions that each cover the whole image recurse exponentially.
        _ => None,
    };
    crate::formats::descend(ctx, r, Some(&FORMAT), forced);
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {

    use super::*;
    use crate::formats::ParseOptions;
    use crate::input::Data;
    use std::sync::Arc;

    /// A descriptor with FRBA 0x40, FCBA 0x30, FMBA 0x80 (v2: 17 MHz read clock).
    pub(crate) fn descriptor(len: usize, regs: &[(usize, u32, u32)]) -> Vec<u8> {
        let mut b = vec![0xFFu8; len.max(0x1000)];
        let w = |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
        w(&mut b, 0x10, SIGNATURE);
        w(&mut b, 0x14, 0x0004_0003);
        w(&mut b, 0x18, 0x1010_0308);
        w(&mut b, 0x1C, 0x0000_0030);
        w(&mut b, 0x30, (6 << 17) | 5);
        for i in 0..16 {
            w(&mut b, 0x40 + 4 * i, 0x0000_7FFF);
        }
        for &(i, base, limit) in regs {
            w(&mut b, 0x40 + 4 * i, (limit << 16) | base);
        }
        b.truncate(len);
        b
    }

    fn run(b: Vec<u8>) -> Result<Vec<Region>, ParseError> {
        let data = Arc::new(Data::Owned(b));
        let n = Region::new(RegionKind::Image, "", &data, 0, data.len() as u64);
        parse(&Ctx::new(&ParseOptions::default()), &n).map(|p| p.children)
    }

    #[test]
    fn regions_follow_flreg() {
        let b = descriptor(
            0x10000,
            &[(0, 0, 0), (1, 8, 0xF), (2, 1, 7), (15, 0x7FFF, 0)],
        );
        assert_eq!(probe(&b), Some(Confidence::High));
        let kids = run(b).unwrap();
        let got: Vec<_> = kids
            .iter()
            .map(|k| (k.name.as_str(), k.offset, k.size))
            .collect();
        assert_eq!(
            got,
            [
                ("descriptor", 0, 0x1000),
                ("me", 0x1000, 0x7000),
                ("bios", 0x8000, 0x8000)
            ]
        );
        assert_eq!(kids[0].kind, RegionKind::Descriptor);
        assert_eq!(kids[0].attrs["number-of-regions"], 3);
    }

    #[test]
    fn overlap_and_out_of_bounds_are_notes() {
        let b = descriptor(
            0x10000,
            &[(0, 0, 0), (1, 4, 0x1F), (2, 1, 7), (3, 0x20, 0x21)],
        );
        let kids = run(b).unwrap();
        let bios = kids.iter().find(|k| k.name == "bios").unwrap();
        let codes: Vec<_> = bios.notes.iter().map(|n| n.code.as_str()).collect();
        assert_eq!(codes, ["partition-out-of-bounds", "partition-overlap"]);
        assert!(
            bios.notes[1].message.contains("region me"),
            "{}",
            bios.notes[1].message
        );
        assert_eq!(bios.size, 0xC000);
        let desc = kids.iter().find(|k| k.name == "descriptor").unwrap();
        assert!(desc
            .notes
            .iter()
            .any(|n| n.code == Code::PartitionOutOfBounds && n.message.contains("gbe")));
    }

    #[test]
    fn regions_covering_the_whole_image_do_not_nest() {
        let regs: Vec<_> = (0..16).map(|i| (i, 0u32, 0xFu32)).collect();
        let b = descriptor(0x10000, &regs);
        let t0 = std::time::Instant::now();
        let kids = run(b).unwrap();
        assert_eq!(kids.len(), 16);
        assert!(kids.iter().all(|k| k.attr_str("format") != Some("ifd")));
        assert!(t0.elapsed().as_secs() < 5);
    }

    #[test]
    fn truncation_never_panics() {
        let b = descriptor(0x3000, &[(0, 0, 0), (1, 1, 2)]);
        for cut in 0..b.len() {
            let _ = run(b[..cut].to_vec());
        }
    }
}
