//! cramfs (the compressed ROM file system of older BMCs: Supermicro's X8/X9 root and web file systems),
//! little- and big-endian, as `linux/cramfs_fs.h` and util-linux's `fsck.cramfs` read it.
//!
//! Layout: a 64-byte superblock (magic 0x28CD3D45 in the file system's byte order, size, flags, the
//! signature `Compressed ROMFS`, fsid: CRC-32, edition, blocks, files; a 16-byte name) and the 12-byte root
//! inode. An inode packs mode:16 uid:16 / size:24 gid:8 / namelen:6 offset:26 (bit fields from the low end
//! of little-endian words, from the high end of big-endian ones); `offset` and `namelen` count 4-byte
//! units. A directory's entries (inode + name) fill `size` bytes at `offset`; a file or symlink has a table
//! of `ceil(size / 4096)` block end pointers at `offset`, each block a zlib stream of at most 4096 bytes
//! (an empty block is a hole). Devices keep `rdev` in `size`.
//!
//! Tree: `cramfs` (kind `filesystem`, the superblock's `size`, with its facts as attributes) and `slack`;
//! inside, the entries as [`super::tree`] lists them. Checks: the superblock CRC-32 (fsid version 2, as
//! `fsck.cramfs` computes it with the CRC field zeroed) is a `fs-checksum` note when wrong. Bounds: blocks
//! inflate through the image's decompression budget (each at most 4096 bytes); a directory is walked once
//! (a loop is refused); entries, depth and bytes are capped by the tree.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashSet;

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::bmc::fit::slack;
use crate::formats::decompress;
use crate::formats::fs::tree::{self, Added, Kind, Tree};
use crate::formats::util::slice;
use crate::formats::{Confidence, Ctx, Parsed};
use crate::region::{Note, Region, RegionKind};

pub const MAGIC: u32 = 0x28CD_3D45;
pub const SIGNATURE: &[u8; 16] = b"Compressed ROMFS";
/// The block size every cramfs writer uses (the kernel's page size).
pub const BLOCK: u64 = 4096;
const FLAG_FSID_V2: u32 = 1;
const FLAG_EXT_BLOCK_POINTERS: u32 = 0x800;
/// The flags the kernel knows (`CRAMFS_SUPPORTED_FLAGS`).
const SUPPORTED_FLAGS: u32 = 0xFF | 0x100 | 0x200 | 0x400 | 0x800;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

fn u32_at(b: &[u8], off: u64, e: Endian, what: &'static str) -> Result<u32, ParseError> {
    let s = slice(b, off, 4, what)?;
    let a = [s[0], s[1], s[2], s[3]];
    Ok(match e {
        Endian::Little => u32::from_le_bytes(a),
        Endian::Big => u32::from_be_bytes(a),
    })
}

fn endian(b: &[u8]) -> Option<Endian> {
    if b.get(16..32)? != SIGNATURE {
        return None;
    }
    let m = b.get(..4)?;
    if m == MAGIC.to_le_bytes() {
        Some(Endian::Little)
    } else if m == MAGIC.to_be_bytes() {
        Some(Endian::Big)
    } else {
        None
    }
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    endian(b).map(|_| Confidence::High)
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "cramfs",
    description: "cramfs filesystem (little- and big-endian, zlib)",
    probe,
    parse,
    scope: crate::formats::Scope::File(crate::formats::Confidence::Low),
    component: Some("bmc"),
    policy: Some(crate::region::Policy::Static),
    not_inside: &[],
    payloads: &[],
    package: None,
};

/// One inode: (mode, uid, size, gid, namelen in bytes, offset in bytes).
#[derive(Debug, Clone, Copy)]
struct Inode {
    mode: u32,
    uid: u32,
    size: u64,
    gid: u32,
    namelen: u64,
    offset: u64,
}

fn inode(b: &[u8], at: u64, e: Endian) -> Result<Inode, ParseError> {
    let w0 = u32_at(b, at, e, "cramfs inode")?;
    let w1 = u32_at(b, at.saturating_add(4), e, "cramfs inode")?;
    let w2 = u32_at(b, at.saturating_add(8), e, "cramfs inode")?;
    let (mode, uid, size, gid, namelen, offset) = match e {
        Endian::Little => (
            w0 & 0xFFFF,
            w0 >> 16,
            w1 & 0xFF_FFFF,
            w1 >> 24,
            w2 & 0x3F,
            w2 >> 6,
        ),
        Endian::Big => (
            w0 >> 16,
            w0 & 0xFFFF,
            w1 >> 8,
            w1 & 0xFF,
            w2 >> 26,
            w2 & 0x3FF_FFFF,
        ),
    };
    Ok(Inode {
        mode,
        uid,
        size: u64::from(size),
        gid,
        namelen: u64::from(namelen).saturating_mul(4),
        offset: u64::from(offset).saturating_mul(4),
    })
}

/// The CRC-32 that `mkfs.cramfs` stores: over the file system with the CRC field zeroed.
fn crc(fs: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(fs.get(..32).unwrap_or(fs));
    h.update(&[0; 4]);
    h.update(fs.get(36..).unwrap_or(&[]));
    h.finalize()
}

/// Parser for a partition starting with a cramfs superblock.
pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let at = node.offset;
    let e = endian(b).ok_or(ParseError::Invalid {
        what: "cramfs superblock",
        offset: at,
        detail: "no cramfs magic and signature".into(),
    })?;
    let size = u64::from(u32_at(b, 4, e, "cramfs size")?);
    let flags = u32_at(b, 8, e, "cramfs flags")?;
    let mut notes = Vec::new();
    let extent = tree::declared_extent(
        b,
        "cramfs size",
        size,
        76,
        at.saturating_add(4),
        1,
        &mut notes,
    )?;
    let fs_bytes = slice(b, 0, extent, "cramfs")?;
    let name = String::from_utf8_lossy(slice(b, 48, 16, "cramfs name")?)
        .trim_end_matches('\0')
        .to_string();
    let mut fs = Region::new(RegionKind::Filesystem, "cramfs", &node.data, at, extent)
        .with_attr("format", "cramfs")
        .with_attr("endian", if e == Endian::Big { "big" } else { "little" })
        .with_attr("flags", format!("{flags:#x}"))
        .with_attr("volume-name", name);
    if flags & FLAG_FSID_V2 != 0 {
        let stored = u32_at(b, 32, e, "cramfs crc")?;
        let edition = u32_at(b, 36, e, "cramfs edition")?;
        let blocks = u32_at(b, 40, e, "cramfs blocks")?;
        let files = u32_at(b, 44, e, "cramfs files")?;
        fs = fs
            .with_attr("crc", format!("{stored:#010x}"))
            .with_attr("edition", edition)
            .with_attr("blocks", blocks)
            .with_attr("files", files);
        let computed = crc(fs_bytes);
        if computed != stored {
            notes.push(Note::new(
                Code::FsChecksum,
                format!("cramfs CRC-32 is {computed:#010x}, the superblock says {stored:#010x}"),
                Some(at.saturating_add(32)),
            ));
        }
    }
    if flags & !SUPPORTED_FLAGS != 0 {
        notes.push(Note::new(
            Code::Unparsed,
            format!("cramfs flags {flags:#x} include ones the kernel does not support"),
            Some(at.saturating_add(8)),
        ));
    }
    fs.notes = notes;
    crate::formats::now_or_later(ctx, &mut fs, "cramfs", expand);
    let mut out = vec![fs];
    out.extend(slack(
        &node.data,
        at.saturating_add(extent),
        node.end(),
        ctx.opts.blank,
    ));
    Ok(out.into())
}

/// A file's or symlink's bytes: its blocks inflated through the image's budget. `Err(why)` for a note.
fn contents(
    ctx: &Ctx,
    b: &[u8],
    ino: &Inode,
    e: Endian,
    ext: bool,
) -> Result<Result<Vec<u8>, String>, ParseError> {
    let size = ino.size;
    if size > ctx.decompress_limit() {
        return Ok(Err(format!("{size} bytes exceed the decompression limit")));
    }
    let nblocks = size.div_ceil(BLOCK);
    let table = ino.offset;
    let Some(mut start) = nblocks
        .checked_mul(4)
        .and_then(|n| table.checked_add(n))
        .filter(|&end| end <= b.len() as u64)
    else {
        return Ok(Err(format!(
            "block pointer table at {table:#x} is outside the file system"
        )));
    };
    let mut out = Vec::new();
    for i in 0..nblocks {
        let want = size.saturating_sub(i.saturating_mul(BLOCK)).min(BLOCK);
        let ptr = u32_at(
            b,
            table.saturating_add(i.saturating_mul(4)),
            e,
            "cramfs block pointer",
        )?;
        let (uncompressed, end) = if ext {
            if ptr & (1 << 30) != 0 {
                return Ok(Err("direct block pointers are not read".into()));
            }
            (ptr & (1 << 31) != 0, u64::from(ptr & 0x3FFF_FFFF))
        } else {
            (false, u64::from(ptr))
        };
        if end < start || end > b.len() as u64 {
            return Ok(Err(format!(
                "block {i} ends at {end:#x}, outside {start:#x}..{:#x}",
                b.len()
            )));
        }
        let block = slice(b, start, end.saturating_sub(start), "cramfs block")?;
        if block.is_empty() {
            // A hole.
            if !crate::formats::decompress::Meter::pay(ctx, want) {
                return Err(ParseError::Invalid {
                    what: "cramfs",
                    offset: start,
                    detail: "the image's decompression budget is spent".into(),
                });
            }
            out.resize(out.len().saturating_add(want as usize), 0);
        } else if uncompressed {
            out.extend_from_slice(block.get(..want as usize).unwrap_or(block));
        } else {
            match decompress::read_metered(flate2::read::ZlibDecoder::new(block), BLOCK, ctx) {
                Ok(d) => out.extend_from_slice(&d),
                Err(decompress::Error::Budget) => {
                    return Err(ParseError::Invalid {
                        what: "cramfs",
                        offset: start,
                        detail: "the image's decompression budget is spent".into(),
                    })
                }
                Err(err) => return Ok(Err(format!("block {i} at {start:#x}: {err}"))),
            }
        }
        start = end;
    }
    if out.len() as u64 != size {
        return Ok(Err(format!(
            "the blocks hold {} bytes, the inode says {size}",
            out.len()
        )));
    }
    Ok(Ok(out))
}

/// Reads the file system (the node's bytes) into entry nodes.
pub fn expand(ctx: &Ctx, fs: &Region) -> Result<Parsed, ParseError> {
    let b = fs.bytes();
    let at = fs.offset;
    let e = endian(b).ok_or(ParseError::Invalid {
        what: "cramfs superblock",
        offset: at,
        detail: "no cramfs magic".into(),
    })?;
    let flags = u32_at(b, 8, e, "cramfs flags")?;
    let ext = flags & FLAG_EXT_BLOCK_POINTERS != 0;
    let root = inode(b, 64, e)?;
    if root.mode & 0o170000 != 0o040000 {
        return Err(ParseError::Invalid {
            what: "cramfs root inode",
            offset: at.saturating_add(64),
            detail: format!("mode {:o} is not a directory", root.mode),
        });
    }
    let mut tree = Tree::new(ctx, at);
    tree.files_paid = true;
    let mut seen: HashSet<u64> = HashSet::new();
    // (parent entry, directory offset, directory size)
    let mut stack: Vec<(Option<usize>, u64, u64)> = vec![(None, root.offset, root.size)];
    'dirs: while let Some((parent, off, len)) = stack.pop() {
        if len == 0 {
            continue;
        }
        if !seen.insert(off) {
            tree.note(Note::new(
                Code::Unparsed,
                format!("a directory at {off:#x} is listed twice (a loop); not walked again"),
                Some(at.saturating_add(off)),
            ));
            continue;
        }
        let Some(end) = off.checked_add(len).filter(|&x| x <= b.len() as u64) else {
            tree.note(Note::new(
                Code::Unparsed,
                format!("a directory at {off:#x}+{len:#x} is outside the file system"),
                Some(at.saturating_add(off)),
            ));
            continue;
        };
        let mut pos = off;
        while pos < end {
            let ino = inode(b, pos, e)?;
            let name_at = pos.saturating_add(12);
            if ino.namelen == 0 || name_at.saturating_add(ino.namelen) > end {
                tree.note(Note::new(
                    Code::Unparsed,
                    format!("a directory entry at {pos:#x} has a bad name length"),
                    Some(at.saturating_add(pos)),
                ));
                continue 'dirs;
            }
            let raw = slice(b, name_at, ino.namelen, "cramfs name")?;
            let raw = raw.split(|&c| c == 0).next().unwrap_or(&[]);
            pos = name_at.saturating_add(ino.namelen);
            let typ = ino.mode & 0o170000;
            let rdev = ino.size as u32;
            let (kind, bytes, why) = match typ {
                0o040000 => (Kind::Dir, Vec::new(), None),
                0o100000 | 0o120000 => {
                    let kind = if typ == 0o100000 {
                        Kind::File
                    } else {
                        Kind::Symlink
                    };
                    match contents(ctx, b, &ino, e, ext)? {
                        Ok(d) => (kind, d, None),
                        Err(why) => (kind, Vec::new(), Some(why)),
                    }
                }
                0o020000 => (Kind::CharDevice(rdev >> 8, rdev & 0xFF), Vec::new(), None),
                0o060000 => (Kind::BlockDevice(rdev >> 8, rdev & 0xFF), Vec::new(), None),
                0o010000 => (Kind::Fifo, Vec::new(), None),
                0o140000 => (Kind::Socket, Vec::new(), None),
                _ => (
                    Kind::File,
                    Vec::new(),
                    Some(format!("unknown file type in mode {:o}", ino.mode)),
                ),
            };
            let is_dir = kind == Kind::Dir;
            match tree.add(parent, raw, kind, ino.mode, ino.uid, ino.gid, &bytes)? {
                Added::Yes(i) => {
                    if let Some(why) = why {
                        let p = tree.path(i).to_string();
                        tree.entry_note(
                            i,
                            Note::new(
                                Code::DecompressFailed,
                                format!("{p}: {why}"),
                                Some(at.saturating_add(ino.offset)),
                            ),
                        );
                    }
                    if is_dir {
                        stack.push((Some(i), ino.offset, ino.size));
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

    fn le_inode(mode: u32, uid: u32, size: u32, gid: u32, namelen: u32, offset: u32) -> Vec<u8> {
        let mut v = (mode | (uid << 16)).to_le_bytes().to_vec();
        v.extend_from_slice(&(size | (gid << 24)).to_le_bytes());
        v.extend_from_slice(&(namelen | (offset << 6)).to_le_bytes());
        v
    }

    #[test]
    fn inode_bit_fields_both_endians() {
        // mode 0o100644, uid 1000, size 0x123456, gid 7, namelen 2 (8 bytes), offset 0x40 (0x100 bytes).
        let le = le_inode(0o100644, 1000, 0x123456, 7, 2, 0x40);
        let i = inode(&le, 0, Endian::Little).unwrap();
        assert_eq!(
            (i.mode, i.uid, i.size, i.gid, i.namelen, i.offset),
            (0o100644, 1000, 0x123456, 7, 8, 0x100)
        );
        let mut be = ((0o100644u32 << 16) | 1000).to_be_bytes().to_vec();
        be.extend_from_slice(&((0x123456u32 << 8) | 7).to_be_bytes());
        be.extend_from_slice(&((2u32 << 26) | 0x40).to_be_bytes());
        let i = inode(&be, 0, Endian::Big).unwrap();
        assert_eq!(
            (i.mode, i.uid, i.size, i.gid, i.namelen, i.offset),
            (0o100644, 1000, 0x123456, 7, 8, 0x100)
        );
    }

    #[test]
    fn hostile_images_stay_in_bounds() {
        // A minimal valid image: superblock + a root directory with one empty file.
        let mut img = vec![0u8; 4096];
        img[..4].copy_from_slice(&MAGIC.to_le_bytes());
        img[4..8].copy_from_slice(&4096u32.to_le_bytes());
        img[16..32].copy_from_slice(SIGNATURE);
        img[64..76].copy_from_slice(&le_inode(0o40755, 0, 16, 0, 0, 76 / 4));
        img[76..88].copy_from_slice(&le_inode(0o100644, 0, 0, 0, 1, 0));
        img[88] = b'a';
        crate::formats::util::mutations_stay_in_bounds(&img, "cramfs", 400);
        // A directory holding itself: walked once.
        let mut lp = img.clone();
        lp[76..88].copy_from_slice(&le_inode(0o40755, 0, 16, 0, 1, 76 / 4));
        let ctx = crate::formats::Ctx::new(&crate::formats::ParseOptions::default());
        let node = Region::new(
            RegionKind::Filesystem,
            "cramfs",
            &std::sync::Arc::new(crate::input::Data::Owned(lp.clone())),
            0,
            lp.len() as u64,
        );
        let p = expand(&ctx, &node).unwrap();
        assert!(
            p.notes.iter().any(|n| n.message.contains("loop")),
            "{:?}",
            p.notes
        );
        crate::formats::util::mutations_stay_in_bounds(&lp, "cramfs", 50);
    }
}
