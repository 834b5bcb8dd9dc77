//! Firmware volumes: `EFI_FIRMWARE_VOLUME_HEADER` (PI spec vol. 3, 3.2.1) and its extended header.
//!
//! ```text
//! 0x00 ZeroVector[16]  0x10 FileSystemGuid  0x20 FvLength u64  0x28 "_FVH"  0x2C Attributes u32
//! 0x30 HeaderLength u16  0x32 Checksum u16  0x34 ExtHeaderOffset u16  0x36 Reserved  0x37 Revision
//! 0x38 BlockMap[] {NumBlocks u32, Length u32} ... {0, 0}
//! ```
#![deny(clippy::arithmetic_side_effects)]

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

/// What a volume header says about itself, judged on its own bytes (see [`assess`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderFacts {
    pub fv_len: u64,
    pub header_len: u64,
    /// The 16-bit words of the header sum to 0.
    pub checksum_ok: bool,
    /// The file system GUID is one of the PI specification's (FFS1/2/3) or an NVRAM volume's.
    pub known_fs: bool,
    /// The block map ends with its {0, 0} terminator inside the header and its blocks add up to FvLength.
    pub block_map_ok: bool,
}

/// Reads the fixed header and block map of the `_FVH` header at the start of `b`, or `None` when the
/// fields cannot describe a volume at all (signature, header length, FvLength smaller than the header,
/// header or block-map terminator past the end of `b`).
// Reviewed: `pos + 8 <= h.len()` (the loop condition) before each block-map entry is read; the total uses checked arithmetic.
#[allow(clippy::arithmetic_side_effects)]
pub fn assess(b: &[u8]) -> Option<HeaderFacts> {
    if slice(b, 0x28, 4, "sig").ok()? != b"_FVH" {
        return None;
    }
    let fv_len = le64(b, 0x20, "FvLength").ok()?;
    let hlen = u64::from(le16(b, 0x30, "HeaderLength").ok()?);
    if hlen < MIN_HEADER || hlen % 2 != 0 || fv_len < hlen {
        return None;
    }
    let h = slice(b, 0, hlen, "header").ok()?;
    // Block map: {NumBlocks u32, Length u32} entries from 0x38 up to a {0, 0} terminator that must lie
    // inside HeaderLength (EDK2's GenFv makes HeaderLength end exactly after it).
    let mut pos = 0x38usize;
    let mut total: Option<u64> = Some(0);
    let mut terminated = false;
    while pos + 8 <= h.len() {
        let n = u64::from(u32::from_le_bytes([
            h[pos],
            h[pos + 1],
            h[pos + 2],
            h[pos + 3],
        ]));
        let l = u64::from(u32::from_le_bytes([
            h[pos + 4],
            h[pos + 5],
            h[pos + 6],
            h[pos + 7],
        ]));
        pos += 8;
        if n == 0 && l == 0 {
            terminated = true;
            break;
        }
        if n == 0 || l == 0 {
            total = None;
            break;
        }
        total = total.and_then(|t| t.checked_add(n.checked_mul(l)?));
    }
    if !terminated {
        return None;
    }
    let fs = guid(b.get(0x10..0x20)?);
    let known_fs = matches!(fs.as_str(), guids::FFS1 | guids::FFS2 | guids::FFS3)
        || guids::NVRAM_FS.contains(&fs.as_str());
    Some(HeaderFacts {
        fv_len,
        header_len: hlen,
        checksum_ok: header_sum(h) == 0,
        known_fs,
        block_map_ok: total == Some(fv_len),
    })
}

/// Whether `b` (the bytes from a `_FVH` header to the end of its container) holds a firmware volume, and
/// if so its FvLength and HeaderLength.
///
/// The signature alone proves nothing: `_FVH` is a 32-bit constant in every SEC and PEI core that looks
/// for volumes (`cmp dword [rdi+0x28], '_FVH'`), and `jffs2`, `squashfs` or compressed data can hold it by
/// chance. A header is accepted when code or chance cannot plausibly produce it:
/// - its block map is terminated inside HeaderLength;
/// - its checksum is right, **or** everything else agrees (a PI or NVRAM file system GUID, a block map
///   that adds up to FvLength, a volume that fits its container), so that a tampered header with a broken
///   checksum is still a volume and still reported (`fv-header-checksum`);
/// - an unknown file system GUID needs both a right checksum and a consistent block map;
/// - a volume longer than its container (a truncated dump) needs a right checksum and a known GUID.
pub fn header_ok(b: &[u8]) -> Option<(u64, u64)> {
    let f = assess(b)?;
    let fits = f.fv_len <= b.len() as u64;
    let plausible_fs = f.known_fs || (f.checksum_ok && f.block_map_ok);
    let consistent = f.checksum_ok || (f.known_fs && f.block_map_ok && fits);
    let extent = fits || (f.checksum_ok && f.known_fs);
    (plausible_fs && consistent && extent).then_some((f.fv_len, f.header_len))
}

/// 16-bit word sum of the header (0 when the checksum is right).
pub fn header_sum(h: &[u8]) -> u16 {
    h.chunks(2).fold(0u16, |a, c| {
        a.wrapping_add(u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
    })
}

/// Iterates over volumes in `bytes` from `from`, skipping over each volume found.
// Reviewed: `hit >= 0x28` before `hit - 0x28`; `start < bytes.len()`; a volume's length is at most what is left after `start` and more than 0x2C, so `pos` moves forward and stays within the buffer.
#[allow(clippy::arithmetic_side_effects)]
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
// Reviewed: header fields are 16-bit (HeaderLength, ExtHeaderOffset) or 32-bit (ExtHeaderSize) values in u64, and `off` plus offsets inside the volume fit.
#[allow(clippy::arithmetic_side_effects)]
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
// Reviewed: `pos < len` (aligned up by at most 7 from a position inside the volume) and a file's size is at most `len - pos` (ffs::file), so `pos` only grows within the volume; `off` plus an offset inside it fits.
#[allow(clippy::arithmetic_side_effects)]
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
    explain_vtf_pad(kids, b, erase);
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
            if let Some(i) = crate::region::first_not(bytes, erase) {
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

/// Volume Top File GUID (the file holding the x86 reset vector at the top of the boot volume).
pub const VTF_GUID: &str = crate::region::VTF_GUID;

/// Most entries of an Intel FIT that explain the bytes of the VTF pad file.
const MAX_FIT_ENTRIES: u32 = 1024;

/// The 14 code bytes of EDK2 GenFv's AP start-up data (`m128kRecoveryStartupApDataArray`: far jmp
/// F000:FFD0, then zeros; the last two of its 16 bytes keep a checksum consistent and vary).
const AP_STARTUP_128K: [u8; 14] = [0xEA, 0xD0, 0xFF, 0x00, 0xF0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// `m64kRecoveryStartupApDataArray`: jmp short $-0x30, then zeros.
const AP_STARTUP_64K: [u8; 14] = [0xEB, 0xCE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// The pad file that EDK2's GenFv puts in front of the Volume Top File holds, by design, the AP start-up
/// data (16 bytes that application processors jump to) and often the Intel Firmware Interface Table (put
/// there by FitGen; the FIT pointer at 4 GiB - 0x40 inside the VTF points at it). These are not padding:
/// when every non-blank byte of that pad file is one of them, its `padding-not-empty` note goes and the
/// data node says what it holds (`contains`, `ap-startup-offset`, `fit-offset`, `fit-size`). Anything
/// else in it keeps the note, which then points at the first unexplained byte.
// Reviewed: `i >= 1`; `p + 16 <= db.len()` in the loop; the FIT pointer's offsets use checked_sub/checked_add; the FIT entry count is 24-bit (times 16: below 2^28) and `at < d.size`; offsets inside the pad data fit with its node's offset.
#[allow(clippy::arithmetic_side_effects)]
fn explain_vtf_pad(kids: &mut [Region], vol: &[u8], erase: u8) {
    let Some(i) = kids
        .iter()
        .position(|k| k.kind == RegionKind::File && k.attr_str("guid") == Some(VTF_GUID))
    else {
        return;
    };
    if i == 0 {
        return;
    }
    // The VTF must end the volume for the FIT pointer to be where the CPU reads it.
    let vol_len = vol.len() as u64;
    let Some(vol_off) = kids.first().map(|h| h.offset) else {
        return;
    };
    let vtf_ends_volume = kids[i].end() == vol_off.saturating_add(vol_len);
    let pad = &mut kids[i - 1];
    if pad.kind != RegionKind::File || pad.attr_str("type") != Some("pad") {
        return;
    }
    let Some(d) = pad
        .children
        .iter_mut()
        .find(|c| c.kind == RegionKind::Blob && c.name == "data")
    else {
        return;
    };
    let data = Arc::clone(&d.data);
    let Ok(db) = slice(&data, d.offset, d.size, "pad data") else {
        return;
    };
    let mut explained: Vec<(u64, u64, &'static str)> = Vec::new();
    // AP start-up data: 16 bytes on a 16-byte boundary of the flash address space.
    let mut p = ((16 - (d.offset % 16)) % 16) as usize;
    while p + 16 <= db.len() {
        let w = &db[p..p + 14];
        if w == AP_STARTUP_128K || w == AP_STARTUP_64K {
            explained.push((p as u64, 16, "ap-startup-data"));
            d.attrs
                .insert("ap-startup-offset".into(), (d.offset + p as u64).into());
        }
        p += 16;
    }
    // The Intel FIT, found through its pointer at 4 GiB - 0x40 (the volume ends at 4 GiB).
    if vtf_ends_volume && (0x40..=1 << 32).contains(&vol_len) {
        let ptr = le64(vol, vol_len - 0x40, "FIT pointer").unwrap_or(0);
        let base = (1u64 << 32) - vol_len;
        if let Some(rel) = ptr.checked_sub(base).and_then(|r| r.checked_add(vol_off)) {
            if let Some(at) = rel.checked_sub(d.offset).filter(|&a| a < d.size) {
                let at_us = at as usize;
                if db.get(at_us..at_us + 8) == Some(b"_FIT_   ") {
                    let entries = le32(db, at + 8, "FIT size").unwrap_or(0) & 0x00FF_FFFF;
                    let size = u64::from(entries) * 16;
                    // Only a table that looks like one explains its bytes: a bounded entry count and
                    // every entry of a type the FIT specification defines (0x01-0x12).
                    let types_ok = (1..u64::from(entries)).all(|k| {
                        db.get(at_us + k as usize * 16 + 14)
                            .is_some_and(|&t| matches!(t & 0x7F, 0x01..=0x12))
                    });
                    if (2..=MAX_FIT_ENTRIES).contains(&entries) && types_ok && at + size <= d.size {
                        explained.push((at, size, "fit"));
                        d.attrs.insert("fit-offset".into(), (d.offset + at).into());
                        d.attrs.insert("fit-size".into(), size.into());
                    }
                }
            }
        }
    }
    let unexplained = db.iter().enumerate().position(|(j, &x)| {
        x != erase
            && !explained
                .iter()
                .any(|&(o, n, _)| (j as u64) >= o && (j as u64) < o + n)
    });
    match unexplained {
        None if !explained.is_empty() => {
            d.notes.retain(|n| n.code != Code::PaddingNotEmpty);
            let mut what: Vec<&str> = explained.iter().map(|e| e.2).collect();
            what.dedup();
            d.attrs.insert("contains".into(), what.join(",").into());
            d.attrs.insert("role".into(), "vtf-pad".into());
        }
        Some(j) => {
            for n in &mut d.notes {
                if n.code == Code::PaddingNotEmpty {
                    n.offset = Some(d.offset + j as u64);
                }
            }
        }
        None => {}
    }
}
