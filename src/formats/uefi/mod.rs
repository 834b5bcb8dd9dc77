//! UEFI firmware: firmware volumes (FFSv2/FFSv3), FFS files and sections down to PE32/TE modules.
//!
//! The registry entry `uefi` accepts any buffer holding a validated `_FVH` volume header: descriptor-less
//! BIOS dumps, OVMF `.fd` files and the BIOS region of a descriptor image (the IFD parser calls
//! [`crate::formats::detect`] on it). Volumes are found by scanning for the signature and validating the
//! header (length fields within bounds); a bad header checksum is a `fv-header-checksum` note, not a reason
//! to skip the volume. Bytes between volumes become padding nodes.
//!
//! Module layout follows goblin: [`fv`] (volume header and file list), [`ffs`] (file headers), [`section`]
//! (sections, encapsulation and decompression), `build` (writers for tests and fixture generators, only
//! with the `fixtures` cargo feature, which `cargo test` turns on),
//! [`guids`] (names of well-known GUIDs, data in `signatures/uefi-guids.csv`).
#![deny(clippy::arithmetic_side_effects)]

pub mod build;
pub mod capsule;
pub mod decompress;
pub mod ffs;
pub mod fv;
pub mod guids;
pub mod hostile;
pub mod nvram;
pub mod section;

use crate::error::ParseError;
use crate::formats::{Confidence, Ctx, Format, Parsed};
use crate::region::{Region, RegionKind};

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "uefi",
    description: "UEFI firmware volumes (descriptor-less BIOS image, OVMF .fd, BIOS region)",
    probe,
    parse: parse_image,
    scope: crate::formats::Scope::Both,
    component: Some("bios"),
    policy: None,
    not_inside: &[],
    payloads: &[],
    package: None,
};

/// Accepts bytes holding at least one plausible firmware volume header. A volume at offset 0 is a strong
/// hint (an `.fd` file), one further in a weaker one.
pub fn probe(bytes: &[u8]) -> Option<Confidence> {
    let first = fv::scan(bytes, 0).next()?;
    Some(if first.offset == 0 {
        Confidence::High
    } else {
        Confidence::Medium
    })
}

/// Parses a buffer of volumes: every volume found becomes a `fv[GUID]` child, the rest padding.
pub fn parse_image(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let bytes = node.bytes();
    let mut out = Vec::new();
    let mut cands: Vec<fv::Candidate> = fv::scan(bytes, 0).collect();
    // A FIP in front of the first volume holds volumes of its own (BL33): they are its payload's, and
    // the image's volumes start after it.
    let fip = cands
        .first()
        .filter(|c| c.offset > 0)
        .and_then(|c| find_fip(&bytes[..c.offset as usize], bytes));
    if let Some((o, ext)) = fip {
        // `find_fip` bounds the extent by the bytes after `o`.
        cands = fv::scan(bytes, o.saturating_add(ext)).collect();
    }
    for c in cands {
        let off = crate::formats::util::add(node.offset, c.offset, "volume offset")?;
        out.push(fv::volume(ctx, &node.data, off, c.len, c.truncated));
    }
    if out.is_empty() && fip.is_none() {
        return Err(ParseError::Invalid {
            what: "firmware volume",
            offset: node.offset,
            detail: "no valid _FVH header".into(),
        });
    }
    let first = out
        .first()
        .map_or(node.size, |v| v.offset.saturating_sub(node.offset));
    if first > 0 {
        out.extend(prefix(ctx, node, first, fip));
    }
    Ok(out.into())
}

/// The first FIP on a [`FIP_ALIGN`] boundary of `head` (the bytes in front of the first volume
/// candidate), with its extent (which may reach past `head`, into `all`).
fn find_fip(head: &[u8], all: &[u8]) -> Option<(u64, u64)> {
    let magic = crate::formats::fip::TOC_NAME.to_le_bytes();
    (0..head.len())
        .step_by(FIP_ALIGN)
        .filter(|&i| head.get(i..i.saturating_add(4)) == Some(&magic[..]))
        .find_map(|i| Some((i as u64, crate::formats::fip::extent(all.get(i..)?)?)))
}

/// Where FIPs are looked for in the code in front of the first volume (TF-A aligns them to at least 512).
const FIP_ALIGN: usize = 0x200;

/// Arm images carry code in front of their first volume: a reset branch (ArmVirtPkg), TF-A's BL1 or
/// BL31, or a whole Firmware Image Package. That code is not padding: a FIP found there (on a 512-byte
/// boundary) is a `fip` node parsed by [`crate::formats::fip`], and other non-blank bytes that start with
/// an Arm or AArch64 branch become a `prefix-code` node, compared by identity and digest like any
/// component. A prefix that starts with a branch to the first volume (ArmVirtPkg's reset stub) stays
/// padding, as before: `check` accepts it when the rest is erased and reports anything else there; a
/// prefix that starts with anything else also stays padding and is reported by `check` when it holds
/// data.
fn prefix(ctx: &Ctx, node: &Region, first: u64, fip_at: Option<(u64, u64)>) -> Vec<Region> {
    let b = &node.bytes()[..first as usize];
    let blank = |x: &u8| *x == 0xFF || *x == 0x00;
    if b.iter().all(blank) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let code_end = fip_at.map_or(first, |(o, _)| o);
    let insn = b
        .get(..4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    let branch = insn.and_then(crate::formats::util::arm_branch_target);
    // Code in front: it starts with a branch into itself (BL1's vector table, BL31's entry). A branch to
    // the first volume is ArmVirtPkg's reset stub: what follows it must be erased, and anything else
    // there stays padding for `check` to report.
    let into_prefix = branch.is_some_and(|t| t < code_end);
    if code_end > 0 && into_prefix && !b[..code_end as usize].iter().all(blank) {
        let mut r = Region::new(
            RegionKind::Blob,
            "prefix-code",
            &node.data,
            node.offset,
            code_end,
        );
        r.attrs.insert(
            "role".into(),
            "code in front of the first firmware volume (Arm BL1/BL31 or reset code)".into(),
        );
        out.push(r);
    }
    if let Some((o, ext)) = fip_at {
        let mut f = Region::new(
            RegionKind::Partition,
            "fip",
            &node.data,
            node.offset.saturating_add(o),
            ext,
        );
        crate::formats::descend(ctx, &mut f, None, Some(&crate::formats::fip::FORMAT));
        out.push(f);
    }
    out
}
