//! romfs (the Linux ROM file system, `Documentation/filesystems/romfs.rst`), as `genromfs` writes it.
//!
//! Layout (big-endian): `-rom1fs-`, the full size, a checksum making the first 512 bytes (or the whole file
//! system, when smaller) sum to zero as big-endian words, the volume name (NUL-padded to 16 bytes); then
//! 16-byte-aligned file headers: `next` (offset of the next header in the directory, its low 4 bits the
//! type and the executable bit), `spec.info` (a directory's first entry, a hard link's target, a device's
//! major/minor), `size`, a checksum (header and name sum to zero), the name (NUL-padded to 16 bytes), then
//! the data. Types: 0 hard link, 1 directory, 2 file, 3 symlink, 4 block device, 5 char device, 6 socket,
//! 7 FIFO. romfs keeps no owners or modes: entries get uid/gid 0 and the modes the kernel gives them
//! (0755 for directories and executables, 0644 for files, 0777 for symlinks).
//!
//! Tree: `romfs` (kind `filesystem`, the superblock's size) and `slack`; inside, the entries as
//! [`super::tree`] lists them (`.` and `..` left out; a hard link listed with its target's bytes and a
//! `hard-link` attribute). Checks: the superblock checksum and every file header checksum (`fs-checksum`
//! notes). Bounds: every header is visited once (a loop is refused); entries and depth are capped by the
//! tree; file data is copied through the image's budget.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashSet;

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::bmc::fit::slack;
use crate::formats::fs::tree::{self, Added, Kind, Tree};
use crate::formats::util::{be32, slice};
use crate::formats::{Confidence, Ctx, Parsed};
use crate::region::{Note, Region, RegionKind};

pub const MAGIC: &[u8; 8] = b"-rom1fs-";

pub fn probe(b: &[u8]) -> Option<Confidence> {
    (b.get(..8)? == MAGIC && be32(b, 8, "romfs size").ok()? >= 32).then_some(Confidence::High)
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "romfs",
    description: "romfs filesystem",
    probe,
    parse,
    scope: crate::formats::Scope::File(crate::formats::Confidence::Low),
    component: Some("bmc"),
    policy: Some(crate::region::Policy::Static),
    not_inside: &[],
    payloads: &[],
    package: None,
};

/// Sum of big-endian words (a trailing partial word padded with zeros), as romfs checksums are made.
fn sum(b: &[u8]) -> u32 {
    b.chunks(4).fold(0u32, |acc, c| {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        acc.wrapping_add(u32::from_be_bytes(w))
    })
}

/// The end of a NUL-terminated name at `at` padded to 16 bytes: (name, offset after the padding).
fn name_at(b: &[u8], at: u64) -> Result<(&[u8], u64), ParseError> {
    let rest = b
        .get(usize::try_from(at).unwrap_or(usize::MAX)..)
        .unwrap_or(&[]);
    let window = rest.get(..rest.len().min(4096)).unwrap_or(&[]);
    let Some(n) = window.iter().position(|&c| c == 0) else {
        return Err(ParseError::Invalid {
            what: "romfs name",
            offset: at,
            detail: "no NUL within 4096 bytes".into(),
        });
    };
    let n = n as u64;
    let end =
        crate::formats::util::align_up(at.saturating_add(n).saturating_add(1), 16, "romfs name")?;
    Ok((slice(b, at, n, "romfs name")?, end))
}

/// Parser for a partition starting with a romfs superblock.
pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let at = node.offset;
    let size = u64::from(be32(b, 8, "romfs size")?);
    let mut notes = Vec::new();
    // genromfs pads the image with zeros to a 1 KiB multiple: that padding is content.
    let extent = tree::declared_extent(
        b,
        "romfs size",
        size,
        32,
        at.saturating_add(8),
        1024,
        &mut notes,
    )?;
    let head = slice(b, 0, extent.min(size).min(512), "romfs superblock")?;
    if sum(head) != 0 {
        notes.push(Note::new(
            Code::FsChecksum,
            "the romfs superblock checksum is wrong (the first 512 bytes do not sum to zero)",
            Some(at.saturating_add(12)),
        ));
    }
    let (vol, _) = name_at(b, 16)?;
    let mut fs = Region::new(RegionKind::Filesystem, "romfs", &node.data, at, extent)
        .with_attr("format", "romfs")
        .with_attr("volume-name", String::from_utf8_lossy(vol).into_owned());
    fs.notes = notes;
    crate::formats::now_or_later(ctx, &mut fs, "romfs", expand);
    let mut out = vec![fs];
    out.extend(slack(
        &node.data,
        at.saturating_add(extent),
        node.end(),
        ctx.opts.blank,
    ));
    Ok(out.into())
}

struct Header<'a> {
    next: u64,
    typ: u32,
    exec: bool,
    spec: u32,
    size: u64,
    name: &'a [u8],
    data: u64,
    sum_ok: bool,
}

fn header(b: &[u8], h: u64) -> Result<Header<'_>, ParseError> {
    let next = be32(b, h, "romfs next")?;
    let spec = be32(b, h.saturating_add(4), "romfs spec")?;
    let size = u64::from(be32(b, h.saturating_add(8), "romfs size")?);
    let (name, data) = name_at(b, h.saturating_add(16))?;
    let sum_ok = sum(slice(b, h, data.saturating_sub(h), "romfs header")?) == 0;
    Ok(Header {
        next: u64::from(next & !0xF),
        typ: next & 7,
        exec: next & 8 != 0,
        spec,
        size,
        name,
        data,
        sum_ok,
    })
}

/// Reads the file system (the node's bytes) into entry nodes.
pub fn expand(ctx: &Ctx, fs: &Region) -> Result<Parsed, ParseError> {
    let b = fs.bytes();
    let at = fs.offset;
    let (_, first) = name_at(b, 16)?;
    let mut tree = Tree::new(ctx, at);
    let mut seen: HashSet<u64> = HashSet::new();
    // (parent entry, first header of the directory)
    let mut stack: Vec<(Option<usize>, u64)> = vec![(None, first)];
    'dirs: while let Some((parent, mut h)) = stack.pop() {
        while h != 0 {
            if !seen.insert(h) {
                tree.note(Note::new(
                    Code::Unparsed,
                    format!("the romfs header at {h:#x} is reached twice (a loop); not read again"),
                    Some(at.saturating_add(h)),
                ));
                continue 'dirs;
            }
            let hd = match header(b, h) {
                Ok(hd) => hd,
                Err(e) => {
                    tree.note(Note::new(
                        Code::Unparsed,
                        format!("romfs header at {h:#x}: {e}"),
                        Some(at.saturating_add(h)),
                    ));
                    continue 'dirs;
                }
            };
            h = hd.next;
            if hd.name == b"." || hd.name == b".." {
                continue;
            }
            let mut typ = hd.typ;
            let mut data = hd.data;
            let mut size = hd.size;
            let mut link = None;
            if typ == 0 {
                // A hard link: the target header's type and data.
                let t = u64::from(hd.spec);
                match header(b, t) {
                    Ok(th) if th.typ != 0 && th.typ != 1 => {
                        typ = th.typ;
                        data = th.data;
                        size = th.size;
                        link = Some(t);
                    }
                    _ => {
                        tree.note(Note::new(
                            Code::Unparsed,
                            format!("a hard link at {:#x} has no file to point to", hd.data),
                            Some(at.saturating_add(hd.data)),
                        ));
                        continue;
                    }
                }
            }
            let (kind, mode) = match typ {
                1 => (Kind::Dir, 0o40755),
                2 => (Kind::File, if hd.exec { 0o100755 } else { 0o100644 }),
                3 => (Kind::Symlink, 0o120777),
                4 => (Kind::BlockDevice(hd.spec >> 16, hd.spec & 0xFFFF), 0o60600),
                5 => (Kind::CharDevice(hd.spec >> 16, hd.spec & 0xFFFF), 0o20600),
                6 => (Kind::Socket, 0o140644),
                _ => (Kind::Fifo, 0o10644),
            };
            let mut why = None;
            let bytes: &[u8] = if matches!(kind, Kind::File | Kind::Symlink) {
                match slice(b, data, size, "romfs data") {
                    Ok(d) => d,
                    Err(e) => {
                        why = Some(e.to_string());
                        &[]
                    }
                }
            } else {
                &[]
            };
            let is_dir = kind == Kind::Dir;
            match tree.add(parent, hd.name, kind, mode, 0, 0, bytes)? {
                Added::Yes(i) => {
                    let p = tree.path(i).to_string();
                    if let Some(why) = why {
                        tree.entry_note(
                            i,
                            Note::new(
                                Code::Unparsed,
                                format!("{p}: {why}"),
                                Some(at.saturating_add(data)),
                            ),
                        );
                    }
                    if !hd.sum_ok {
                        tree.entry_note(
                            i,
                            Note::new(
                                Code::FsChecksum,
                                format!("{p}: the romfs file header checksum is wrong"),
                                Some(at.saturating_add(hd.data)),
                            ),
                        );
                    }
                    if let Some(t) = link {
                        tree.entry_attr(i, "hard-link", format!("{t:#x}"));
                    }
                    if is_dir {
                        stack.push((Some(i), u64::from(hd.spec & !0xF)));
                    }
                }
                Added::Skipped => {}
                Added::Full => break 'dirs,
            }
        }
    }
    tree.finish()
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // test code: fixed-size fixtures
mod tests {
    use super::*;

    fn fixup(b: &mut [u8], at: usize, end: usize) {
        b[at + 12..at + 16].copy_from_slice(&[0; 4]);
        let s = sum(&b[at..end]);
        b[at + 12..at + 16].copy_from_slice(&0u32.wrapping_sub(s).to_be_bytes());
    }

    #[test]
    fn hostile_images_stay_in_bounds() {
        let mut img = vec![0u8; 512];
        img[..8].copy_from_slice(MAGIC);
        img[8..12].copy_from_slice(&512u32.to_be_bytes());
        img[16..20].copy_from_slice(b"vol\0");
        // file "a" at 0x20, 5 bytes, no next.
        img[0x20..0x24].copy_from_slice(&2u32.to_be_bytes());
        img[0x28..0x2C].copy_from_slice(&5u32.to_be_bytes());
        img[0x30] = b'a';
        img[0x40..0x45].copy_from_slice(b"hello");
        fixup(&mut img, 0x20, 0x40);
        // The superblock checksum covers the file header too (the first 512 bytes).
        img[12..16].copy_from_slice(&[0; 4]);
        let s = sum(&img);
        img[12..16].copy_from_slice(&0u32.wrapping_sub(s).to_be_bytes());
        assert_eq!(sum(&img), 0);
        crate::formats::util::mutations_stay_in_bounds(&img, "romfs", 400);
        // A header whose next points at itself: read once.
        let mut lp = img.clone();
        lp[0x20..0x24].copy_from_slice(&0x22u32.to_be_bytes());
        let ctx = crate::formats::Ctx::new(&crate::formats::ParseOptions::default());
        let node = Region::new(
            RegionKind::Filesystem,
            "romfs",
            &std::sync::Arc::new(crate::input::Data::Owned(lp)),
            0,
            512,
        );
        let p = expand(&ctx, &node).unwrap();
        assert!(
            p.notes.iter().any(|n| n.message.contains("loop")),
            "{:?}",
            p.notes
        );
        assert_eq!(p.children.len(), 1);
    }
}
