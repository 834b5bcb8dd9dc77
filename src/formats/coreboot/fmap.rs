//! The flash map (FMAP): a table of named areas of the flash, nested by containment.
//!
//! | offset | field |
//! |---|---|
//! | 0x00 | signature `__FMAP__` |
//! | 0x08 | version major (1), minor |
//! | 0x0A | base address of the flash (u64, little-endian) |
//! | 0x12 | size of the flash (u32) |
//! | 0x16 | name (32 bytes, NUL-padded) |
//! | 0x36 | number of areas (u16) |
//! | 0x38 | areas: offset u32, size u32, name[32], flags u16 (42 bytes each) |
//!
//! Each area is a `partition` node named by the area; an area inside another is its child (cbfstool's
//! `layout -w` view). An area holding a CBFS (`LARCHIVE` at its start) is parsed as [`super::cbfs`]; the
//! vboot `GBB` (`$GBB` header: version, HWID) and `VBLOCK_A`/`VBLOCK_B` (keyblock magic `CHROMEOS`) are
//! listed with their header fields (not verified). The FMAP area is static like every code area; areas the
//! firmware writes on the machine (NVRAM, VPD, event log, MRC cache, SMM store, console) are per-machine.
//! Only a flash map that describes exactly the bytes it is found in is taken (a whole image, or a file of
//! one flash's contents): a map found elsewhere describes some other address space.
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::util::{le16, le32, le64, slice};
use crate::formats::{Confidence, Ctx, Format, Parsed, Scope};
use crate::region::{self, Note, Policy, Region, RegionKind};

pub const SIGNATURE: &[u8; 8] = b"__FMAP__";
const HEADER: u64 = 0x38;
const AREA: u64 = 42;

/// Areas the firmware writes on each machine (coreboot's and Chrome OS's FMAP names).
const PER_MACHINE: &[&str] = &[
    "RW_NVRAM",
    "RW_VPD",
    "RO_VPD",
    "RW_ELOG",
    "RW_MRC_CACHE",
    "RECOVERY_MRC_CACHE",
    "RW_VAR_MRC_CACHE",
    "UNIFIED_MRC_CACHE",
    "SMMSTORE",
    "RW_SHARED",
    "SHARED_DATA",
    "RW_PRESERVE",
    "CONSOLE",
    "RW_NVRAM_A",
    "RW_NVRAM_B",
    "RW_EFI_VARS",
    "RW_SPD_CACHE",
];

/// One FMAP area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    pub offset: u64,
    pub size: u64,
    pub name: String,
    pub flags: u16,
}

/// The flash map found in `b`: its offset, the flash size it states and its areas.
#[derive(Debug, Clone)]
pub struct Fmap {
    pub at: u64,
    pub base: u64,
    pub size: u64,
    pub name: String,
    pub areas: Vec<Area>,
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Reads the flash map at `at`.
pub fn read(b: &[u8], at: u64) -> Result<Fmap, ParseError> {
    let sig = slice(b, at, 8, "FMAP signature")?;
    let bad = |detail: String| ParseError::Invalid {
        what: "FMAP",
        offset: at,
        detail,
    };
    if sig != SIGNATURE {
        return Err(bad("no __FMAP__ signature".into()));
    }
    let major = slice(b, at.saturating_add(8), 1, "FMAP version")?[0];
    if major != 1 {
        return Err(bad(format!("version {major} (only 1 is defined)")));
    }
    let base = le64(b, at.saturating_add(0x0A), "FMAP base")?;
    let size = u64::from(le32(b, at.saturating_add(0x12), "FMAP size")?);
    let name = cstr(slice(b, at.saturating_add(0x16), 32, "FMAP name")?);
    let n = u64::from(le16(b, at.saturating_add(0x36), "FMAP area count")?);
    // The count is bounded by the bytes that hold the areas (42 bytes each).
    let table = slice(
        b,
        at.saturating_add(HEADER),
        n.saturating_mul(AREA),
        "FMAP areas",
    )?;
    let areas = table
        .chunks_exact(42)
        .map(|a| Area {
            offset: u64::from(u32::from_le_bytes([a[0], a[1], a[2], a[3]])),
            size: u64::from(u32::from_le_bytes([a[4], a[5], a[6], a[7]])),
            name: cstr(&a[8..40]),
            flags: u16::from_le_bytes([a[40], a[41]]),
        })
        .collect();
    Ok(Fmap {
        at,
        base,
        size,
        name,
        areas,
    })
}

/// The first flash map in `b` that describes exactly `b` (its size is `b`'s length).
pub fn find(b: &[u8]) -> Option<Fmap> {
    let len = b.len() as u64;
    memchr::memmem::find_iter(b, SIGNATURE)
        .filter_map(|i| read(b, i as u64).ok())
        .find(|m| m.size == len && !m.areas.is_empty())
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    find(b).map(|_| Confidence::High)
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "fmap",
    description: "coreboot flash map (FMAP areas; CBFS, GBB, VBLOCK inside)",
    probe,
    parse,
    scope: Scope::Both,
    component: Some("bios"),
    policy: None,
    not_inside: &["fmap"],
    payloads: &[],
    package: None,
};

pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let len = b.len() as u64;
    let m = find(b).ok_or_else(|| ParseError::Invalid {
        what: "FMAP",
        offset: node.offset,
        detail: format!("no flash map describing these {len:#x} bytes"),
    })?;
    let mut notes = Vec::new();
    // Largest first at each offset, so that a container comes before what it contains.
    let mut areas = m.areas.clone();
    areas.sort_by(|a, b| a.offset.cmp(&b.offset).then(b.size.cmp(&a.size)));
    // Each area as (area, children), nested by containment; a stack of open containers.
    let mut roots: Vec<(Area, Vec<Region>)> = Vec::new();
    let mut stack: Vec<(Area, Vec<Region>)> = Vec::new();
    for a in areas {
        let end = a.offset.saturating_add(a.size);
        if a.size == 0 {
            continue;
        }
        if end > len {
            notes.push(Note::new(
                Code::PartitionOutOfBounds,
                format!(
                    "FMAP area {} {:#x}..{end:#x} ends past the end of the {len:#x}-byte image",
                    a.name, a.offset
                ),
                Some(node.offset.saturating_add(m.at)),
            ));
            continue;
        }
        if !ctx.take_region() {
            notes.push(Note::new(
                Code::LimitExceeded,
                format!(
                    "FMAP: more than {} regions in this image",
                    ctx.opts.max_regions
                ),
                Some(node.offset.saturating_add(m.at)),
            ));
            break;
        }
        // Close the containers that end before this area starts.
        while let Some(top) = stack.last() {
            if top.0.offset.saturating_add(top.0.size) <= a.offset {
                close(ctx, node, &mut stack, &mut roots);
            } else {
                break;
            }
        }
        if let Some(top) = stack.last() {
            if end > top.0.offset.saturating_add(top.0.size) {
                notes.push(Note::new(
                    Code::PartitionOverlap,
                    format!(
                        "FMAP area {} {:#x}..{end:#x} overlaps area {} without lying inside it",
                        a.name, a.offset, top.0.name
                    ),
                    Some(node.offset.saturating_add(a.offset)),
                ));
                continue;
            }
        } else if let Some(prev) = roots.last() {
            if prev.0.offset.saturating_add(prev.0.size) > a.offset {
                notes.push(Note::new(
                    Code::PartitionOverlap,
                    format!("FMAP area {} overlaps area {}", a.name, prev.0.name),
                    Some(node.offset.saturating_add(a.offset)),
                ));
                continue;
            }
        }
        stack.push((a, Vec::new()));
    }
    while !stack.is_empty() {
        close(ctx, node, &mut stack, &mut roots);
    }
    let kids: Vec<Region> = roots
        .into_iter()
        .map(|(a, k)| area_node(ctx, node, a, k))
        .collect();
    Ok(Parsed::from(kids)
        .attr("fmap-offset", format!("{:#x}", m.at))
        .attr("fmap-base", format!("{:#x}", m.base))
        .attr("fmap-name", m.name)
        .attr("fmap-areas", m.areas.len())
        .notes(notes))
}

/// Pops the innermost open area and hands its node to its container (or to the roots).
fn close(
    ctx: &Ctx,
    node: &Region,
    stack: &mut Vec<(Area, Vec<Region>)>,
    roots: &mut Vec<(Area, Vec<Region>)>,
) {
    let Some((a, kids)) = stack.pop() else {
        return;
    };
    match stack.last_mut() {
        Some(parent) => parent.1.push(area_node(ctx, node, a, kids)),
        None => roots.push((a, kids)),
    }
}

/// The node of one area: its sub-areas with the gaps between them, or its content parsed.
fn area_node(ctx: &Ctx, node: &Region, a: Area, mut kids: Vec<Region>) -> Region {
    let at = node.offset.saturating_add(a.offset);
    let kind = if a.name == "FMAP" {
        RegionKind::Header
    } else {
        RegionKind::Partition
    };
    let mut r = Region::new(kind, a.name.clone(), &node.data, at, a.size)
        .with_attr("fmap-flags", format!("{:#x}", a.flags));
    if PER_MACHINE.contains(&a.name.as_str()) {
        r.policy = Policy::Mutable;
    }
    if !kids.is_empty() {
        region::fill_gaps(
            &node.data,
            at,
            r.end(),
            &mut kids,
            ctx.opts.blank,
            RegionKind::Padding,
        );
        r.children = kids;
        return r;
    }
    if a.name == "FMAP" || r.policy == Policy::Mutable {
        return r;
    }
    vboot_fields(&mut r);
    if super::cbfs::probe(r.bytes()).is_some() {
        crate::formats::descend(ctx, &mut r, Some(&FORMAT), Some(&super::cbfs::FORMAT));
    } else if !r.bytes().iter().all(|&x| x == ctx.opts.blank) {
        crate::formats::descend(ctx, &mut r, Some(&FORMAT), None);
    }
    r
}

/// The header fields of a vboot GBB (`$GBB`) or keyblock (`CHROMEOS`), as attributes (not verified).
fn vboot_fields(r: &mut Region) {
    let b = r.bytes();
    if b.starts_with(b"$GBB") {
        let major = le16(b, 4, "GBB major").unwrap_or(0);
        let minor = le16(b, 6, "GBB minor").unwrap_or(0);
        let hwid = le32(b, 0x10, "GBB HWID offset")
            .ok()
            .zip(le32(b, 0x14, "GBB HWID size").ok())
            .and_then(|(o, s)| slice(b, u64::from(o), u64::from(s).min(256), "HWID").ok())
            .map(cstr);
        r.attrs
            .insert("gbb-version".into(), format!("{major}.{minor}").into());
        if let Some(h) = hwid {
            r.attrs.insert("gbb-hwid".into(), h.into());
        }
        r.attrs.insert("vboot".into(), "gbb".into());
    } else if b.starts_with(b"CHROMEOS") {
        let size = le32(b, 0x0C, "keyblock size").ok();
        r.attrs.insert("vboot".into(), "keyblock".into());
        if let Some(size) = size {
            r.attrs.insert("keyblock-size".into(), size.into());
        }
    } else if r.name == "GBB" || r.name.starts_with("VBLOCK_") {
        r.attrs.insert("vboot".into(), "empty".into());
    }
}

/// An FMAP at 0 of a `len`-byte image with the given areas (offset, size, name), for tests and fuzz
/// seeds; the rest of the image is blank.
#[cfg(any(test, feature = "fixtures"))]
#[allow(clippy::arithmetic_side_effects)] // fixtures of small, known sizes
pub fn build(len: usize, areas: &[(u32, u32, &str)]) -> Vec<u8> {
    let mut b = vec![0xFFu8; len];
    b[..8].copy_from_slice(SIGNATURE);
    b[8] = 1;
    b[9] = 1;
    b[0x0A..0x12].fill(0);
    b[0x12..0x16].copy_from_slice(&(len as u32).to_le_bytes());
    b[0x16..0x36].fill(0);
    b[0x16..0x1B].copy_from_slice(b"FLASH");
    b[0x36..0x38].copy_from_slice(&(areas.len() as u16).to_le_bytes());
    for (i, (o, s, n)) in areas.iter().enumerate() {
        let p = 0x38 + 42 * i;
        b[p..p + 42].fill(0);
        b[p..p + 4].copy_from_slice(&o.to_le_bytes());
        b[p + 4..p + 8].copy_from_slice(&s.to_le_bytes());
        b[p + 8..p + 8 + n.len()].copy_from_slice(n.as_bytes());
    }
    b
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {
    use super::*;
    use crate::formats::ParseOptions;
    use crate::input::Data;
    use std::sync::Arc;

    fn run(b: Vec<u8>) -> Region {
        let data = Arc::new(Data::Owned(b));
        let mut n = Region::new(RegionKind::Image, "", &data, 0, data.len() as u64);
        crate::formats::parse_into(&Ctx::new(&ParseOptions::default()), &mut n, &FORMAT);
        n
    }

    #[test]
    fn areas_nest_and_overlaps_are_named() {
        let areas = [
            (0, 0x4000, "BIOS"),
            (0, 0x1000, "FMAP"),
            (0x1000, 0x1000, "RW_VPD"),
            (0x2000, 0x2000, "GBB"),
        ];
        let n = run(build(0x4000, &areas));
        assert!(n.notes.is_empty(), "{:?}", n.notes);
        assert_eq!(n.children.len(), 1);
        let bios = &n.children[0];
        let names: Vec<&str> = bios.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["FMAP", "RW_VPD", "GBB"]);
        assert_eq!(bios.children[1].policy, Policy::Mutable);
        assert_eq!(bios.children[2].attrs["vboot"], "empty");
        // A partial overlap and an area past the end.
        let areas = [
            (0, 0x1000, "FMAP"),
            (0x800, 0x1000, "X"),
            (0x3000, 0x2000, "Y"),
        ];
        let n = run(build(0x4000, &areas));
        let codes: Vec<&str> = n.notes.iter().map(|x| x.code.as_str()).collect();
        assert_eq!(codes, ["partition-overlap", "partition-out-of-bounds"]);
        // A map of another size is not this image's.
        let mut b = build(0x4000, &[(0, 0x1000, "FMAP")]);
        b.extend([0xFF; 0x1000]);
        assert!(probe(&b).is_none());
        crate::formats::util::mutations_stay_in_bounds(&build(0x4000, &areas), "fmap", 2000);
    }
}
