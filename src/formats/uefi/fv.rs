//! Firmware volumes: `EFI_FIRMWARE_VOLUME_HEADER` (PI spec vol. 3, 3.2.1) and its extended header.
//!
//! ```text
//! 0x00 ZeroVector[16]  0x10 FileSystemGuid  0x20 FvLength u64  0x28 "_FVH"  0x2C Attributes u32
//! 0x30 HeaderLength u16  0x32 Checksum u16  0x34 ExtHeaderOffset u16  0x36 Reserved  0x37 Revision
//! 0x38 BlockMap[] {NumBlocks u32, Length u32} ... {0, 0}
//! ```

use std::collections::HashSet;
use std::sync::Arc;

use crate::finding::Code;
use crate::formats::util::{guid, le16, le32, le64, slice};
use crate::formats::{self, Ctx};
use crate::input::Data;
use crate::region::{Note, Region, RegionKind};

use super::{ffs, guids};

/// Smallest header: fixed part, one block-map entry and the terminator.
pub const MIN_HEADER: u64 = 0x48;
/// `EFI_FVB2_ERASE_POLARITY`.
pub const ERASE_POLARITY: u32 = 0x800;

/// A volume found by [`scan`]: offset (relative to the scanned buffer) and length (clipped to the buffer
/// when `truncated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub offset: u64,
    pub len: u64,
    pub truncated: bool,
}

/// Whether `b` (at least the fixed header) looks like a volume header: signature, sane header length,
/// FvLength not smaller than the header.
pub fn header_ok(b: &[u8]) -> Option<(u64, u64)> {
    if slice(b, 0x28, 4, "sig").ok()? != b"_FVH" {
        return None;
    }
    let fv_len = le64(b, 0x20, "FvLength").ok()?;
    let hlen = u64::from(le16(b, 0x30, "HeaderLength").ok()?);
    if hlen < MIN_HEADER || hlen % 2 != 0 || fv_len < hlen {
        return None;
    }
    // The header (with its block map) must be readable.
    slice(b, 0, hlen, "header").ok()?;
    Some((fv_len, hlen))
}

/// 16-bit word sum of the header (0 when the checksum is right).
pub fn header_sum(h: &[u8]) -> u16 {
    h.chunks(2).fold(0u16, |a, c| {
        a.wrapping_add(u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
    })
}

/// Iterates over volumes in `bytes` from `from`, skipping over each volume found.
pub fn scan(bytes: &[u8], from: u64) -> impl Iterator<Item = Candidate> + '_ {
    let finder = memchr::memmem::Finder::new(b"_FVH");
    let mut pos = from as usize;
    std::iter::from_fn(move || {
        while pos < bytes.len() {
            let hit = pos + finder.find(bytes.get(pos..)?)?;
            pos = hit + 1;
            if hit < 0x28 {
                continue;
            }
            let start = hit - 0x28;
            let Some((fv_len, _)) = header_ok(&bytes[start..]) else {
                continue;
            };
            let avail = (bytes.len() - start) as u64;
            let (len, truncated) = if fv_len > avail {
                (avail, true)
            } else {
                (fv_len, false)
            };
            pos = start + len as usize;
            return Some(Candidate {
                offset: start as u64,
                len,
                truncated,
            });
        }
        None
    })
}

/// Builds the node of the volume at `off` (in `data`) of `len` bytes, with its children.
pub fn volume(ctx: &Ctx, data: &Arc<Data>, off: u64, len: u64, truncated: bool) -> Region {
    let mut v = Region::new(RegionKind::Volume, "fv", data, off, len);
    let b = v.bytes();
    let fs = guid(b.get(0x10..0x20).unwrap_or(&[]));
    let fv_len = le64(b, 0x20, "FvLength").unwrap_or(len);
    let attrs = le32(b, 0x2C, "Attributes").unwrap_or(0);
    let hlen = u64::from(le16(b, 0x30, "HeaderLength").unwrap_or(0));
    let ext_off = u64::from(le16(b, 0x34, "ExtHeaderOffset").unwrap_or(0));
    let revision = b.get(0x37).copied().unwrap_or(0);
    let mut notes = Vec::new();
    let mut hdr_end = hlen.min(len);
    let mut name_guid = None;
    if let Ok(h) = slice(b, 0, hlen, "volume header") {
        let sum = header_sum(h);
        if sum != 0 {
            notes.push(Note::new(
                Code::FvHeaderChecksum,
                format!(
                    "volume header checksum {:#06x} is wrong (words sum to {sum:#06x}, not 0)",
                    le16(b, 0x32, "").unwrap_or(0)
                ),
                Some(off + 0x32),
            ));
        }
    }
    if ext_off != 0 && ext_off >= hlen {
        // EFI_FIRMWARE_VOLUME_EXT_HEADER: FvName GUID, ExtHeaderSize u32.
        let ext = slice(b, ext_off, 20, "extended header").ok();
        let ext_size = ext.map(|e| u64::from(u32::from_le_bytes([e[16], e[17], e[18], e[19]])));
        match (ext, ext_size) {
            (Some(e), Some(sz)) if sz >= 20 && ext_off + sz <= fv_len.min(len) => {
                name_guid = Some(guid(&e[..16]));
                hdr_end = (ext_off + sz + 7) & !7;
                hdr_end = hdr_end.min(len);
            }
            _ => notes.push(Note::new(
                Code::Unparsed,
                format!("volume extended header at {ext_off:#x} is out of bounds"),
                Some(off + 0x34),
            )),
        }
    }
    if truncated {
        notes.push(Note::new(
            Code::PartitionOutOfBounds,
            format!(
                "volume length {fv_len:#x} runs past the end of its container ({len:#x} bytes available)"
            ),
            Some(off + 0x20),
        ));
    }
    let id = name_guid.clone().unwrap_or_else(|| fs.clone());
    v.name = format!("fv[{id}]");
    v.attrs.insert("guid".into(), id.clone().into());
    v.attrs.insert("fs-guid".into(), fs.clone().into());
    if let Some(n) = guids::name(&fs) {
        v.attrs.insert("fs-name".into(), n.into());
    }
    v.attrs.insert("revision".into(), revision.into());
    v.attrs
        .insert("attributes".into(), format!("{attrs:#010x}").into());
    v.attrs.insert("header-size".into(), hdr_end.into());
    let header = Region::new(RegionKind::Header, "header", data, off, hdr_end);
    let erase = if attrs & ERASE_POLARITY != 0 {
        0xFF
    } else {
        0x00
    };
    let ffs_version = match fs.as_str() {
        guids::FFS1 | guids::FFS2 => Some(2),
        guids::FFS3 => Some(3),
        _ => None,
    };
    if guids::NVRAM_FS.contains(&fs.as_str()) {
        v.attrs.insert("type".into(), "nvram".into());
        v.notes = notes;
        formats::descend(ctx, &mut v, None, Some(&formats::nvram::FORMAT));
        return v;
    }
    let Some(ver) = ffs_version else {
        v.attrs.insert("type".into(), "unknown".into());
        v.notes = notes;
        return v;
    };
    v.attrs.insert("type".into(), format!("ffsv{ver}").into());
    let mut kids = vec![header];
    if truncated {
        // Do not interpret a volume whose extent is unknown: hash it as it is.
        v.notes = notes;
        formats::adopt(ctx, &v, &mut kids);
        v.children = kids;
        return v;
    }
    match ctx.deeper(off) {
        Ok(c) => files(&c, data, off, hdr_end, len, ver, erase, &mut kids),
        Err(e) => notes.push(formats::unparsed_note("uefi", &e)),
    }
    v.notes = notes;
    formats::adopt(ctx, &v, &mut kids);
    v.children = kids;
    v
}

#[allow(clippy::too_many_arguments)]
fn files(
    ctx: &Ctx,
    data: &Arc<Data>,
    off: u64,
    hdr_end: u64,
    len: u64,
    ver: u8,
    erase: u8,
    kids: &mut Vec<Region>,
) {
    let Ok(b) = slice(data, off, len, "volume") else {
        return;
    };
    let mut pos = hdr_end;
    let mut prev_end = hdr_end;
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        pos = (pos + 7) & !7;
        if pos >= len {
            break;
        }
        let rest = &b[pos as usize..];
        if rest.len() < 24 {
            // Too small for a file header: UEFITool does not call it free space; it becomes padding.
            prev_end = len;
            break;
        }
        if rest[..24].iter().all(|&x| x == erase) {
            // An erased file header: the rest of the volume is free space.
            break;
        }
        if !ctx.take_region() {
            kids.push(ctx.limit_node(data, off + pos, len - pos, "ffs"));
            prev_end = len;
            break;
        }
        match ffs::file(ctx, data, off + pos, len - pos, ver, erase) {
            Ok(mut f) => {
                if f.attr_str("type") != Some("pad") {
                    let g = f.attr_str("guid").unwrap_or_default().to_string();
                    if !seen.insert(g.clone()) {
                        let o = f.offset;
                        f.notes.push(Note::new(
                            Code::DuplicateGuid,
                            format!("file GUID {g} appears more than once in this volume"),
                            Some(o),
                        ));
                    }
                }
                pos += f.size;
                prev_end = pos;
                kids.push(f);
            }
            Err(e) => {
                let mut blob =
                    Region::new(RegionKind::Blob, "unparsed", data, off + pos, len - pos);
                blob.notes.push(formats::unparsed_note("ffs", &e));
                kids.push(blob);
                prev_end = len;
                break;
            }
        }
    }
    if prev_end < len {
        // Free space starts at the next 8-byte boundary, as UEFITool counts it; the alignment bytes before
        // it are padding.
        let start = pos.min(len);
        if start < len {
            let mut fs = Region::new(
                RegionKind::FreeSpace,
                "free-space",
                data,
                off + start,
                len - start,
            )
            .with_policy(ffs::blank_policy(ctx, erase));
            let bytes = &b[start as usize..];
            if let Some(i) = bytes.iter().position(|&x| x != erase) {
                let n = bytes.iter().filter(|&&x| x != erase).count();
                fs.notes.push(Note::new(
                    Code::NotBlank,
                    format!("{n} byte(s) of the volume's free space are not {erase:#04x}"),
                    Some(off + start + i as u64),
                ));
            }
            kids.push(fs);
        }
    }
}
