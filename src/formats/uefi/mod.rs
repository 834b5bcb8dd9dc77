//! UEFI firmware: firmware volumes (FFSv2/FFSv3), FFS files and sections down to PE32/TE modules.
//!
//! The registry entry `uefi` accepts any buffer holding a validated `_FVH` volume header: descriptor-less
//! BIOS dumps, OVMF `.fd` files and the BIOS region of a descriptor image (the IFD parser calls
//! [`crate::formats::detect`] on it). Volumes are found by scanning for the signature and validating the
//! header (length fields within bounds); a bad header checksum is a `fv-header-checksum` note, not a reason
//! to skip the volume. Bytes between volumes become padding nodes.
//!
//! Module layout follows goblin: [`fv`] (volume header and file list), [`ffs`] (file headers), [`section`]
//! (sections, encapsulation and decompression), [`build`] (writers for tests and fixture generators),
//! [`guids`] (names of well-known GUIDs, data in `signatures/uefi-guids.csv`).

pub mod build;
pub mod ffs;
pub mod fv;
pub mod guids;
pub mod hostile;
pub mod section;

use crate::error::ParseError;
use crate::formats::{Confidence, Ctx, Format};
use crate::region::Region;

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "uefi",
    description: "UEFI firmware volumes (descriptor-less BIOS image, OVMF .fd, BIOS region)",
    probe,
    parse: |ctx, node| parse_image(ctx, node).map(Into::into),
    scope: crate::formats::Scope::Both,
    component: Some("bios"),
    policy: None,
    not_inside: &[],
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
pub fn parse_image(ctx: &Ctx, node: &Region) -> Result<Vec<Region>, ParseError> {
    let bytes = node.bytes();
    let mut out = Vec::new();
    for c in fv::scan(bytes, 0) {
        let off = crate::formats::util::add(node.offset, c.offset, "volume offset")?;
        out.push(fv::volume(ctx, &node.data, off, c.len, c.truncated));
    }
    if out.is_empty() {
        return Err(ParseError::Invalid {
            what: "firmware volume",
            offset: node.offset,
            detail: "no valid _FVH header".into(),
        });
    }
    Ok(out)
}
