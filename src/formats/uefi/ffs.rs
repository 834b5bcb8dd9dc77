//! FFS files: `EFI_FFS_FILE_HEADER` (24 bytes) and `EFI_FFS_FILE_HEADER2` (32 bytes, FFSv3 large files).
//!
//! ```text
//! 0x00 Name GUID  0x10 HeaderChecksum u8  0x11 FileChecksum u8  0x12 Type u8  0x13 Attributes u8
//! 0x14 Size[3]  0x17 State u8  (0x18 ExtendedSize u64 when Attributes & FFS_ATTRIB_LARGE_FILE)
//! ```
#![deny(clippy::arithmetic_side_effects)]

use std::sync::Arc;

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::util::{guid, le24, le64, slice};
use crate::formats::{self, Ctx};
use crate::input::Data;
use crate::region::{Note, Policy, Region, RegionKind};

use super::section;

pub const ATTR_LARGE_FILE: u8 = 0x01;
pub const ATTR_CHECKSUM: u8 = 0x40;
pub const FIXED_CHECKSUM: u8 = 0xAA;
pub const TYPE_PAD: u8 = 0xF0;

/// The `type` attribute of an FFS file type.
pub fn type_name(t: u8) -> &'static str {
    match t {
        0x00 => "all",
        0x01 => "raw",
        0x02 => "freeform",
        0x03 => "sec-core",
        0x04 => "pei-core",
        0x05 => "dxe-core",
        0x06 => "peim",
        0x07 => "driver",
        0x08 => "combined-peim-driver",
        0x09 => "application",
        0x0A => "mm",
        0x0B => "fv-image",
        0x0C => "combined-mm-dxe",
        0x0D => "mm-core",
        0x0E => "mm-standalone",
        0x0F => "mm-core-standalone",
        0xC0..=0xDF => "oem",
        0xE0..=0xEF => "debug",
        0xF0 => "pad",
        _ => "ffs",
    }
}

/// Policy of erased space in a volume whose erase byte is `erase`: `blank` when that is the image's blank
/// byte (what `scan` checks blank regions against), else `static` (compared by digest).
pub fn blank_policy(ctx: &Ctx, erase: u8) -> Policy {
    if erase == ctx.opts.blank {
        Policy::Blank
    } else {
        Policy::Static
    }
}

/// 8-bit sum.
pub fn sum8(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
}

/// The header checksum byte that makes the header (with FileChecksum and State taken as 0) sum to 0.
pub fn header_checksum(h: &[u8]) -> u8 {
    let mut s = sum8(h);
    s = s.wrapping_sub(h.get(0x10).copied().unwrap_or(0));
    s = s.wrapping_sub(h.get(0x11).copied().unwrap_or(0));
    s = s.wrapping_sub(h.get(0x17).copied().unwrap_or(0));
    0u8.wrapping_sub(s)
}

/// Parses the file at `off` of `data` (at most `avail` bytes) in an FFS version `ver` volume.
pub fn file(
    ctx: &Ctx,
    data: &Arc<Data>,
    off: u64,
    avail: u64,
    ver: u8,
    erase: u8,
) -> Result<Region, ParseError> {
    let b = slice(data, off, avail, "FFS file")?;
    let h = slice(b, 0, 24, "FFS file header")?;
    let name = guid(&h[..16]);
    let typ = h[0x12];
    let attrs = h[0x13];
    let mut size = u64::from(le24(h, 0x14, "file size")?);
    let mut hsize = 24u64;
    if ver >= 3 && attrs & ATTR_LARGE_FILE != 0 {
        size = le64(b, 0x18, "extended file size")?;
        hsize = 32;
    }
    if size < hsize {
        return Err(ParseError::Invalid {
            what: "FFS file size",
            offset: off.saturating_add(0x14),
            detail: format!("{size} bytes is smaller than the {hsize}-byte header"),
        });
    }
    if size > avail {
        return Err(ParseError::Invalid {
            what: "FFS file size",
            offset: off.saturating_add(0x14),
            detail: format!("{size:#x} bytes runs past the end of the volume ({avail:#x} left)"),
        });
    }
    let hdr = &b[..hsize as usize];
    let body = &b[hsize as usize..size as usize];
    let tname = type_name(typ);
    let mut f = Region::new(RegionKind::File, "file", data, off, size)
        .with_attr("guid", name.clone())
        .with_attr("type", tname)
        .with_attr("file-type", format!("{typ:#04x}"))
        .with_attr("attributes", format!("{attrs:#04x}"));
    if let Some(n) = super::guids::name(&name) {
        f.attrs.insert("guid-name".into(), n.into());
    }
    // Checksums (EFI_FFS_INTEGRITY_CHECK).
    let want = header_checksum(hdr);
    if want != hdr[0x10] {
        f.notes.push(Note::new(
            Code::FfsHeaderChecksum,
            format!(
                "file {name}: header checksum is {:#04x}, should be {want:#04x}",
                hdr[0x10]
            ),
            Some(off.saturating_add(0x10)),
        ));
    }
    let want_data = if attrs & ATTR_CHECKSUM != 0 {
        0u8.wrapping_sub(sum8(body))
    } else {
        FIXED_CHECKSUM
    };
    if want_data != hdr[0x11] {
        f.notes.push(Note::new(
            Code::FfsDataChecksum,
            format!(
                "file {name}: data checksum is {:#04x}, should be {want_data:#04x}",
                hdr[0x11]
            ),
            Some(off.saturating_add(0x11)),
        ));
    }
    let header = Region::new(RegionKind::Header, "header", data, off, hsize);
    // `hsize <= size <= avail` (checked above): the file lies inside the volume.
    let dstart = off.saturating_add(hsize);
    let dlen = size.saturating_sub(hsize);
    let mut kids = vec![];
    match typ {
        TYPE_PAD => {
            f.name = "pad".into();
            // The header stays static: an `ignore` node anywhere below a compressed section would force
            // `scan` to decompress it even when its digest matches.
            kids.push(header);
            if dlen > 0 {
                if crate::region::first_not(body, erase).is_none() {
                    kids.push(
                        Region::new(RegionKind::FreeSpace, "free-space", data, dstart, dlen)
                            .with_policy(blank_policy(ctx, erase)),
                    );
                } else {
                    let mut d = Region::new(RegionKind::Blob, "data", data, dstart, dlen);
                    let first = body.iter().position(|&x| x != erase).unwrap_or(0) as u64;
                    d.notes.push(Note::new(
                        Code::PaddingNotEmpty,
                        format!("pad file at {off:#x} holds data"),
                        Some(dstart.saturating_add(first)),
                    ));
                    kids.push(d);
                }
            }
        }
        0x00 | 0x01 => {
            f.name = format!("file[{name}]");
            kids.push(header);
            if let Some(rom) = section::embedded(ctx, data, dstart, body) {
                // An option ROM or an STM stored as a raw file.
                kids.push(rom);
            } else if dlen > 0 {
                kids.push(Region::new(RegionKind::Blob, "data", data, dstart, dlen));
            }
        }
        _ => {
            kids.push(header);
            let (secs, ui) = section::sections(ctx, data, dstart, dlen);
            kids.extend(secs);
            match ui {
                Some(ui) => {
                    f.name = format!("file[{name}:{ui}]");
                    f.attrs.insert("ui-name".into(), ui.into());
                }
                None => f.name = format!("file[{name}]"),
            }
        }
    }
    formats::adopt(ctx, &f, &mut kids);
    f.children = kids;
    Ok(f)
}

/// A single FFS file of its own (a `.ffs` as EDK2's GenFfs writes it, or one file cut out of a volume):
/// a header whose checksum holds, a known file type, and a size equal to the file's. FFSv3 large files
/// (`EFI_FFS_FILE_HEADER2`) are accepted.
pub fn probe(b: &[u8]) -> Option<crate::formats::Confidence> {
    let h = b.get(..24)?;
    let typ = h[0x12];
    let known = matches!(typ, 0x01..=0x0F | 0xF0);
    let large = h[0x13] & ATTR_LARGE_FILE != 0;
    let size = if large {
        le64(b, 0x18, "extended file size").ok()?
    } else {
        u64::from(le24(h, 0x14, "file size").ok()?)
    };
    let hsize = if large { 32 } else { 24 };
    let hdr = b.get(..hsize)?;
    (known && size == b.len() as u64 && header_checksum(hdr) == h[0x10] && h[..16] != [0xFF; 16])
        .then_some(crate::formats::Confidence::High)
}

/// The registry entry of a single FFS file.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "ffs",
    description: "A single UEFI FFS file of its own (.ffs): header, checksums, sections",
    probe,
    parse,
    scope: crate::formats::Scope::File(crate::formats::Confidence::High),
    component: Some("bios"),
    policy: None,
    not_inside: &["ffs"],
    payloads: &[],
    package: None,
};

/// Parses a single FFS file (as in an FFSv3 volume whose erase byte is the image's blank byte).
pub fn parse(ctx: &Ctx, node: &Region) -> Result<crate::formats::Parsed, ParseError> {
    let f = file(ctx, &node.data, node.offset, node.size, 3, ctx.opts.blank)?;
    Ok(crate::formats::Parsed::from(vec![f]))
}
