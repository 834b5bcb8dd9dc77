//! cpio archives in the "new" portable formats (`070701` newc, `070702` crc), as the Linux kernel reads
//! an initramfs (`usr/gen_init_cpio.c`, `init/initramfs.c`) and `cpio -H newc` writes them.
//!
//! Each record is a 110-byte ASCII header (magic, then 13 eight-digit hex fields: ino, mode, uid, gid,
//! nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check), the NUL-terminated
//! name padded to a multiple of 4 bytes (counted from the header's start), then `filesize` data bytes
//! padded to 4. `TRAILER!!!` ends the archive. Every record becomes one node named by its path (kind
//! `fs-file`, `fs-dir`, `fs-symlink`, or `blob` for devices and FIFOs) over its header, name and data;
//! regular files carry the SHA-256 of their data (`sha256`, comparable with `sha256sum`), symbolic links
//! their target. Names are labels only: nothing is ever written to disk. Bytes after the trailer are
//! padding. A malformed header ends the listing with an opaque `unparsed` node over the rest.
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::util::slice;
use crate::formats::{Confidence, Ctx, Format, Parsed, Scope};
use crate::region::{Note, Policy, Region, RegionKind};

/// Most records listed from one archive.
pub const MAX_ENTRIES: usize = 200_000;
const HDR: u64 = 110;

pub fn probe(b: &[u8]) -> Option<Confidence> {
    let m = b.get(..6)?;
    if m != b"070701" && m != b"070702" {
        return None;
    }
    header(b, 0).ok().map(|_| Confidence::High)
}

struct Header {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u32,
    filesize: u64,
    namesize: u64,
    check: u32,
    crc: bool,
}

fn hex8(b: &[u8], off: u64) -> Result<u32, ParseError> {
    let f = slice(b, off, 8, "cpio header field")?;
    let s = std::str::from_utf8(f).ok();
    s.and_then(|s| u32::from_str_radix(s, 16).ok())
        .ok_or_else(|| ParseError::Invalid {
            what: "cpio header",
            offset: off,
            detail: format!(
                "field is not 8 hex digits: {:?}",
                String::from_utf8_lossy(f)
            ),
        })
}

// Reviewed: `at + HDR <= b.len()` (the slice just above) and `i` is a field index below 14.
#[allow(clippy::arithmetic_side_effects)]
fn header(b: &[u8], at: u64) -> Result<Header, ParseError> {
    let m = slice(b, at, 6, "cpio magic")?;
    let crc = match m {
        b"070701" => false,
        b"070702" => true,
        _ => {
            return Err(ParseError::Invalid {
                what: "cpio magic",
                offset: at,
                detail: format!("{:?} is not 070701/070702", String::from_utf8_lossy(m)),
            })
        }
    };
    slice(b, at, HDR, "cpio header")?;
    let f = |i: u64| hex8(b, at + 6 + 8 * i);
    Ok(Header {
        mode: f(1)?,
        uid: f(2)?,
        gid: f(3)?,
        mtime: f(5)?,
        filesize: u64::from(f(6)?),
        namesize: u64::from(f(11)?),
        check: f(12)?,
        crc,
    })
}

fn pad4(v: u64) -> u64 {
    v.saturating_add(3) & !3
}

fn clean_path(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let s = s.trim_start_matches("./").trim_start_matches('/');
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    if s.is_empty() {
        ".".into()
    } else {
        s
    }
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "cpio",
    description: "cpio archive, newc/crc (initramfs): files with their digests",
    probe,
    parse,
    scope: Scope::File(Confidence::Low),
    component: Some("bmc"),
    policy: Some(Policy::Static),
    not_inside: &[],
    payloads: &[],
    package: None,
};

// Reviewed: `pos < len` in the loop; the name and data were sliced out of `b` before their ends are used, so `name_end`, `data_at + filesize` and their 4-byte paddings are at most len + 3; `rec_end >= pos`; node offsets plus positions inside the node fit.
#[allow(clippy::arithmetic_side_effects)]
pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let len = b.len() as u64;
    let base = node.offset;
    let mut out: Vec<Region> = Vec::new();
    let mut pos = 0u64;
    let mut ended = false;
    while pos < len {
        if out.len() >= MAX_ENTRIES || !ctx.take_region() {
            let mut r = Region::new(
                RegionKind::Blob,
                "unlisted",
                &node.data,
                base + pos,
                len - pos,
            );
            r.notes.push(Note::new(
                Code::LimitExceeded,
                format!(
                    "cpio: more than {MAX_ENTRIES} records, or more than {} regions in this image; the rest is one opaque node",
                    ctx.opts.max_regions
                ),
                Some(base + pos),
            ));
            out.push(r);
            pos = len;
            break;
        }
        let rec = header(b, pos).and_then(|h| {
            let name_end = (pos + HDR)
                .checked_add(h.namesize)
                .ok_or(ParseError::Overflow {
                    what: "cpio name",
                    offset: pos,
                })?;
            let name = slice(b, pos + HDR, h.namesize, "cpio name")?;
            let data_at = pos + pad4(name_end - pos);
            let data = slice(b, data_at, h.filesize, "cpio data")?;
            let end = (data_at + h.filesize).min(len);
            let rec_end = (data_at + pad4(h.filesize)).min(len).max(end);
            Ok((h, name, data, rec_end))
        });
        let (h, name, data, rec_end) = match rec {
            Ok(x) => x,
            Err(e) => {
                let mut r = Region::new(
                    RegionKind::Blob,
                    "unparsed",
                    &node.data,
                    base + pos,
                    len - pos,
                );
                r.notes.push(crate::formats::unparsed_note("cpio", &e));
                out.push(r);
                pos = len;
                break;
            }
        };
        let raw_name = name.split(|&c| c == 0).next().unwrap_or(&[]);
        let size = rec_end - pos;
        if raw_name == b"TRAILER!!!" {
            out.push(Region::new(
                RegionKind::Header,
                "trailer",
                &node.data,
                base + pos,
                size,
            ));
            pos = rec_end;
            ended = true;
            break;
        }
        let path = clean_path(raw_name);
        let (kind, typ) = match h.mode & 0o170000 {
            0o040000 => (RegionKind::FsDir, "dir"),
            0o100000 => (RegionKind::FsFile, "file"),
            0o120000 => (RegionKind::FsSymlink, "symlink"),
            0o020000 => (RegionKind::Blob, "char-device"),
            0o060000 => (RegionKind::Blob, "block-device"),
            0o010000 => (RegionKind::Blob, "fifo"),
            0o140000 => (RegionKind::Blob, "socket"),
            _ => (RegionKind::Blob, "unknown"),
        };
        let mut r = Region::new(kind, path.clone(), &node.data, base + pos, size)
            .with_attr("file-path", path)
            .with_attr("type", typ)
            .with_attr("mode", format!("{:04o}", h.mode & 0o7777))
            .with_attr("uid", h.uid)
            .with_attr("gid", h.gid)
            .with_attr("mtime", h.mtime)
            .with_attr("size", h.filesize);
        match kind {
            RegionKind::FsFile => {
                r.attrs.insert(
                    "sha256".into(),
                    crate::hash::digest(crate::hash::Alg::Sha256, data).into(),
                );
                if h.crc {
                    let sum = data.iter().fold(0u32, |a, &c| a.wrapping_add(u32::from(c)));
                    if sum != h.check {
                        r.notes.push(Note::new(
                            Code::Unparsed,
                            format!(
                                "cpio (crc format): data checksum is {:#010x}, header says {:#010x}",
                                sum, h.check
                            ),
                            Some(base + pos),
                        ));
                    }
                }
            }
            RegionKind::FsSymlink => {
                r.attrs
                    .insert("target".into(), String::from_utf8_lossy(data).into());
            }
            _ => {}
        }
        out.push(r);
        // Progress: a record is at least its 110-byte header.
        pos = rec_end.max(pos + HDR);
    }
    if !ended
        && pos >= len
        && out
            .last()
            .is_some_and(|r| r.name != "unparsed" && r.name != "unlisted")
    {
        if let Some(last) = out.last_mut() {
            last.notes.push(Note::new(
                Code::Unparsed,
                "cpio: the archive ends without a TRAILER!!! record",
                Some(base + len),
            ));
        }
    }
    Ok(out.into())
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {

    use super::*;

    fn all_notes(t: &Region) -> Vec<crate::region::Note> {
        let mut v = Vec::new();
        t.walk(&mut |r| v.extend(r.notes.iter().cloned()));
        v
    }
    use crate::formats::ParseOptions;
    use crate::input::Data;
    use std::sync::Arc;

    fn rec(name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
        let mut v = format!(
            "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
            1,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        )
        .into_bytes();
        v.extend_from_slice(name.as_bytes());
        v.push(0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(data);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn tree(b: Vec<u8>) -> Region {
        crate::formats::parse_image(Arc::new(Data::Owned(b)), &ParseOptions::default())
    }

    #[test]
    fn records_become_nodes_and_truncation_is_a_note() {
        let mut a = rec(".", 0o40755, b"");
        a.extend(rec("bin", 0o40755, b""));
        a.extend(rec("bin/sh", 0o100755, b"#!hello\n"));
        a.extend(rec("bin/ash", 0o120777, b"sh"));
        a.extend(rec("TRAILER!!!", 0, b""));
        a.resize(1024, 0);
        let t = tree(a.clone());
        assert_eq!(t.attr_str("format"), Some("cpio"));
        let sh = t.children.iter().find(|c| c.name == "bin/sh").unwrap();
        assert_eq!(sh.kind, RegionKind::FsFile);
        assert_eq!(
            sh.attr_str("sha256"),
            Some(crate::hash::digest(crate::hash::Alg::Sha256, b"#!hello\n").as_str())
        );
        let ash = t.children.iter().find(|c| c.name == "bin/ash").unwrap();
        assert_eq!(ash.attr_str("target"), Some("sh"));
        assert!(all_notes(&t).is_empty());
        // Truncated inside the data of bin/sh: listing stops with an unparsed node, no panic.
        for cut in [120usize, 250, 300, 350, 400] {
            let t = tree(a[..cut].to_vec());
            assert!(!all_notes(&t).is_empty(), "cut {cut}");
        }
        // A name size past the end.
        let mut bad = a.clone();
        bad[6 + 8 * 11..6 + 8 * 12].copy_from_slice(b"FFFFFFFF");
        let t = tree(bad);
        assert!(!all_notes(&t).is_empty());
    }
}
