//! SLOF's flash file system (`romfs`, written by SLOF's `romfs/tools/build_ffs.c`; `slof.bin` in Debian's
//! `qemu-system-data`): a chain of files, each a big-endian header
//!
//! ```text
//! 0x00 next u64 (offset of the next header from this one, 0: last)  0x08 length u64  0x10 flags u64
//! 0x18 data u64 (offset of the data from this header)  0x20 name, NUL-terminated, padded
//! ```
//!
//! then its data, zero-padded to 8 bytes, and an 8-byte 0xFF terminator. The first file is `header` (the
//! image's magic `magic123`, platform and build date), the last `build_info.img`; the image ends with a
//! 32-bit CRC in its last 8 bytes.
//!
//! Each file is a `file[NAME]` node (compared one by one like a firmware module) with its `header` and
//! `data`; bytes after the last file are a `trailer` node (8 bytes or fewer: the CRC) or padding.
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::formats::util::{be64, slice};
use crate::formats::{Confidence, Ctx, Format, Parsed, Scope};
use crate::region::{Region, RegionKind};

/// Most files one image may list (QEMU's has 63).
const MAX_FILES: u64 = 4096;
const MAGIC: &[u8] = b"magic123";

/// One file header at `at`: (next, length, flags, data offset, name).
fn entry(b: &[u8], at: u64) -> Option<(u64, u64, u64, u64, String)> {
    let next = be64(b, at, "next").ok()?;
    let len = be64(b, at.checked_add(8)?, "length").ok()?;
    let flags = be64(b, at.checked_add(16)?, "flags").ok()?;
    let data = be64(b, at.checked_add(24)?, "data offset").ok()?;
    // The name lies between the fixed header and the data (at most 256 bytes).
    if !(0x28..=0x120).contains(&data) {
        return None;
    }
    let raw = slice(b, at.checked_add(0x20)?, data.checked_sub(0x20)?, "name").ok()?;
    let end = raw.iter().position(|&c| c == 0)?;
    let name = std::str::from_utf8(&raw[..end]).ok()?;
    if name.is_empty() || !name.bytes().all(|c| c.is_ascii_graphic() && c != b'/') {
        return None;
    }
    Some((next, len, flags, data, name.to_string()))
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    let (next, len, _, data, name) = entry(b, 0)?;
    let magic = slice(b, data, 8, "magic").ok()?;
    (name == "header" && magic == MAGIC && next >= data.checked_add(len)? && next < b.len() as u64)
        .then_some(Confidence::High)
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "slof",
    description: "SLOF flash image (OpenPOWER/pSeries Open Firmware): its romfs file chain",
    probe,
    parse,
    scope: Scope::File(Confidence::High),
    component: Some("bios"),
    policy: None,
    not_inside: &["slof"],
    payloads: &[],
    package: None,
};

pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let len = b.len() as u64;
    let mut at = 0u64;
    let mut kids = Vec::new();
    let mut n = 0u64;
    let bad = |at: u64, detail: &str| ParseError::Invalid {
        what: "SLOF romfs",
        offset: node.offset.saturating_add(at),
        detail: detail.into(),
    };
    loop {
        let (next, flen, flags, data, name) =
            entry(b, at).ok_or_else(|| bad(at, "not a romfs file header"))?;
        let data_end = at
            .checked_add(data)
            .and_then(|d| d.checked_add(flen))
            .filter(|&e| e <= len)
            .ok_or_else(|| bad(at, "file data runs past the end of the image"))?;
        // The file's extent: to the next header, or for the last one its data, the zero padding to 8
        // bytes and the 0xFF terminator.
        let end = if next == 0 {
            let padded = data_end
                .checked_next_multiple_of(8)
                .unwrap_or(data_end)
                .min(len);
            let term = padded.saturating_add(8).min(len);
            if b.get(padded as usize..term as usize)
                .is_some_and(|t| t.iter().all(|&x| x == 0xFF))
            {
                term
            } else {
                padded
            }
        } else {
            at.checked_add(next)
                .filter(|&e| e >= data_end && e <= len)
                .ok_or_else(|| bad(at, "next header before the end of this file's data"))?
        };
        if !ctx.take_region() {
            kids.push(ctx.limit_node(
                &node.data,
                node.offset.saturating_add(at),
                len.saturating_sub(at),
                "SLOF romfs",
            ));
            return Ok(Parsed::from(kids).attr("files", n));
        }
        let base = node.offset.saturating_add(at);
        let mut f = Region::new(
            RegionKind::File,
            format!("file[{name}]"),
            &node.data,
            base,
            end.saturating_sub(at),
        )
        .with_attr("name", name)
        .with_attr("length", flen)
        .with_attr("flags", format!("{flags:#x}"));
        let mut fk = vec![Region::new(
            RegionKind::Header,
            "header",
            &node.data,
            base,
            data,
        )];
        if flen > 0 {
            fk.push(Region::new(
                RegionKind::Blob,
                "data",
                &node.data,
                base.saturating_add(data),
                flen,
            ));
        }
        crate::formats::adopt(ctx, &f, &mut fk);
        f.children = fk;
        kids.push(f);
        n = n.saturating_add(1);
        at = end;
        if next == 0 || n >= MAX_FILES {
            break;
        }
    }
    if at < len && len.saturating_sub(at) <= 8 {
        kids.push(Region::new(
            RegionKind::Header,
            "trailer",
            &node.data,
            node.offset.saturating_add(at),
            len.saturating_sub(at),
        ));
    }
    Ok(Parsed::from(kids).attr("files", n))
}

/// A SLOF romfs writer for tests and fuzz seeds: a `header` file (magic) and then `files`, each header
/// 8-byte aligned, data zero-padded to 8 bytes and followed by the 0xFF terminator; 8 bytes of CRC
/// (zero) at the end.
#[cfg(any(test, feature = "fixtures"))]
#[allow(clippy::arithmetic_side_effects)] // test fixtures of small, known sizes
pub fn build(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut head = MAGIC.to_vec();
    head.extend_from_slice(b"test\0\0\0\0");
    let all: Vec<(&str, &[u8])> = std::iter::once(("header", &head[..]))
        .chain(files.iter().copied())
        .collect();
    let mut out = Vec::new();
    for (i, (name, data)) in all.iter().enumerate() {
        let data_off = (0x20 + name.len() + 1).next_multiple_of(8) as u64;
        let ext = (data_off as usize + data.len()).next_multiple_of(8) + 8;
        let last = i + 1 == all.len();
        let start = out.len();
        out.extend_from_slice(&(if last { 0 } else { ext as u64 }).to_be_bytes());
        out.extend_from_slice(&(data.len() as u64).to_be_bytes());
        out.extend_from_slice(&0u64.to_be_bytes());
        out.extend_from_slice(&data_off.to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.resize(start + data_off as usize, 0);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(8), 0);
        out.extend_from_slice(&[0xFF; 8]);
    }
    out.extend_from_slice(&[0; 8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_of_a_written_image_and_mutations_stay_in_bounds() {
        let img = build(&[("stage1", &[0x48; 20]), ("ofw_main", &[7; 9])]);
        assert_eq!(probe(&img), Some(Confidence::High));
        let data = std::sync::Arc::new(crate::input::Data::Owned(img.clone()));
        let t = crate::formats::parse_image(data, &crate::formats::ParseOptions::default());
        let names: Vec<&str> = t.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["file[header]", "file[stage1]", "file[ofw_main]", "trailer"]
        );
        assert!(t.children.iter().all(|c| c.notes.is_empty()));
        crate::formats::util::mutations_stay_in_bounds(&img, "slof", 2000);
    }
}
