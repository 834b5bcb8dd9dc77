//! squashfs 2.x and 3.x (the read-only root file systems of older BMCs and routers), either byte order, as
//! squashfs-tools' `unsquashfs` reads them (`squashfs_compat.h`, `unsquash-2.c`, `unsquash-3.c`), with
//! zlib blocks (the format's own compression) or the LZMA of vendor patches.
//!
//! Layout: a superblock (magic `hsqs` little-endian, `sqsh` big-endian; major 2 or 3 at byte 28) whose
//! 2.x fields are 32-bit (`bytes_used_2`, `inode_table_start_2`, ...) and 3.x fields 64-bit. The inode and
//! directory tables are sequences of metadata blocks (a 2-byte header: bit 15 set = stored, low 15 bits the
//! length; one more byte when the CHECK flag is set) of at most 8 KiB each; an inode is named by (block
//! offset in its table, offset in the decoded block). Inodes and directory entries are packed bit fields:
//! from the low end of little-endian bytes, from the high end of big-endian ones. A regular file has a
//! 32-bit size per data block (bit 24 set = stored; 0 = a hole) and maybe a tail in a fragment block.
//!
//! Compression: a block that starts with a zlib header is inflated; otherwise it is read as LZMA, with the
//! standard 13-byte header (properties, dictionary size, u64 size) or the 5-byte header without size of
//! the vendor patches (binwalk's sample, a 2009 router image). Other compressors leave the file's bytes
//! unread with a `decompress-failed` note (never a silent clean).
//!
//! Tree: `squashfs` (kind `filesystem`, the `bytes_used` extent with the 4 KiB zero padding, superblock
//! facts as attributes) and `slack`; inside, the entries as [`super::tree`] lists them, so a v2/v3 file
//! system is listed and compared exactly like squashfs 4. Bounds: metadata decoded at most
//! [`MAX_TABLE`] bytes per file system, every decoded byte paid to the image's budget, a directory listed
//! once (a loop is an `unparsed` note), names at most 256 bytes, entries and depth capped by the tree, and
//! nothing is ever written to disk. squashfs 1.x and big-endian squashfs 4 are recognised and named as not
//! read.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::{HashMap, HashSet};

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::bmc::fit::slack;
use crate::formats::decompress::{self, Meter};
use crate::formats::fs::tree::{self, Added, Kind, Tree};
use crate::formats::util::slice;
use crate::formats::{Confidence, Ctx, Parsed};
use crate::region::{Note, Region, RegionKind};

/// Most decoded metadata (inode and directory tables, fragment table) read from one file system.
pub const MAX_TABLE: u64 = 64 << 20;
/// Most directory entries read over the whole walk (twice the listing cap: listings that point into one
/// another cannot make the walk quadratic).
const MAX_LISTED: usize = 2 * crate::formats::fs::tree::MAX_ENTRIES;
/// Metadata blocks decode to at most this many bytes.
const METADATA_SIZE: u64 = 8192;
/// A fragment index of "no fragment".
const NO_FRAGMENT: u64 = 0xFFFF_FFFF;
/// A data block size entry's "stored" bit.
const STORED_BLOCK: u64 = 1 << 24;
/// Superblock flag: metadata blocks have a check byte after their header.
const FLAG_CHECK: u8 = 1 << 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

/// `n` bits at bit `pos` of the bytes at `off`: from the low end of little-endian bytes, from the high
/// end of big-endian ones (squashfs-tools' bit-field swapping).
fn bits(b: &[u8], off: u64, pos: u64, n: u32, e: Endian) -> Result<u64, ParseError> {
    let shift = (pos % 8) as u32;
    // At most 72 bits: the field fits a u128.
    let nbytes = (u64::from(shift).saturating_add(u64::from(n))).div_ceil(8);
    let s = slice(b, off.saturating_add(pos / 8), nbytes, "squashfs field")?;
    let mut v: u128 = 0;
    let mask: u128 = (1u128 << n).saturating_sub(1);
    match e {
        Endian::Little => {
            for (i, &c) in s.iter().enumerate() {
                v |= u128::from(c) << (8u32.saturating_mul(i as u32));
            }
            Ok(((v >> shift) & mask) as u64)
        }
        Endian::Big => {
            for &c in s {
                v = (v << 8) | u128::from(c);
            }
            let total = (nbytes as u32).saturating_mul(8);
            let down = total.saturating_sub(shift).saturating_sub(n);
            Ok(((v >> down) & mask) as u64)
        }
    }
}

fn endian(b: &[u8]) -> Option<Endian> {
    match b.get(..4)? {
        b"hsqs" => Some(Endian::Little),
        b"sqsh" => Some(Endian::Big),
        _ => None,
    }
}

fn version(b: &[u8]) -> Option<(Endian, u64, u64)> {
    let e = endian(b)?;
    let major = bits(b, 28, 0, 16, e).ok()?;
    let minor = bits(b, 30, 0, 16, e).ok()?;
    Some((e, major, minor))
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    let (e, major, minor) = version(b)?;
    if minor > 1 {
        return None;
    }
    // Little-endian squashfs 4 is the `squashfs` format's.
    match (e, major) {
        (_, 2..=3) => {
            // The 2.x/3.x superblock: block size and its log agree.
            let size = bits(b, 51, 0, 32, e).ok()?;
            let log = bits(b, 34, 0, 16, e).ok()?;
            (log < 32 && size == 1 << log).then_some(Confidence::High)
        }
        (_, 1) | (Endian::Big, 4) => Some(Confidence::High),
        _ => None,
    }
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "squashfs3",
    description: "squashfs 2.x/3.x filesystem (zlib, vendor LZMA; little- and big-endian)",
    probe,
    parse,
    scope: crate::formats::Scope::File(crate::formats::Confidence::Low),
    component: Some("bmc"),
    policy: Some(crate::region::Policy::Static),
    not_inside: &[],
    payloads: &[],
    package: None,
};

/// The superblock facts a reader needs.
#[derive(Debug, Clone, Copy)]
struct Super {
    e: Endian,
    major: u64,
    minor: u64,
    inodes: u64,
    bytes_used: u64,
    uid_start: u64,
    guid_start: u64,
    inode_table: u64,
    dir_table: u64,
    frag_table: u64,
    fragments: u64,
    block_size: u64,
    flags: u8,
    no_uids: u64,
    no_guids: u64,
    root: u64,
    /// Where data blocks start (the superblock's size).
    data_start: u64,
}

fn superblock(b: &[u8]) -> Result<Super, ParseError> {
    let (e, major, minor) = version(b).ok_or(ParseError::Invalid {
        what: "squashfs superblock",
        offset: 0,
        detail: "no squashfs magic".into(),
    })?;
    let f = |pos: u64, n: u32| bits(b, 0, pos, n, e);
    let v3 = major == 3;
    let sb = Super {
        e,
        major,
        minor,
        inodes: f(32, 32)?,
        bytes_used: if v3 { f(504, 64)? } else { f(64, 32)? },
        uid_start: if v3 { f(568, 64)? } else { f(96, 32)? },
        guid_start: if v3 { f(632, 64)? } else { f(128, 32)? },
        inode_table: if v3 { f(696, 64)? } else { f(160, 32)? },
        dir_table: if v3 { f(760, 64)? } else { f(192, 32)? },
        frag_table: if v3 { f(824, 64)? } else { f(472, 32)? },
        fragments: f(440, 32)?,
        block_size: f(408, 32)?,
        flags: f(288, 8)? as u8,
        no_uids: f(296, 8)?,
        no_guids: f(304, 8)?,
        root: f(344, 64)?,
        data_start: if v3 { 119 } else { 63 },
    };
    Ok(sb)
}

/// Parser for a partition starting with a squashfs 1.x-3.x (or big-endian 4) superblock.
pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let at = node.offset;
    let sb = superblock(b)?;
    let mut notes = Vec::new();
    if !(2..=3).contains(&sb.major) || sb.minor > 1 {
        // Recognised, not read: the whole partition stays one opaque node, said so.
        let mut fs = Region::new(
            RegionKind::Filesystem,
            "squashfs",
            &node.data,
            at,
            b.len() as u64,
        )
        .with_attr("format", "squashfs")
        .with_attr("version", format!("{}.{}", sb.major, sb.minor))
        .with_attr("endian", if sb.e == Endian::Big { "big" } else { "little" });
        fs.notes.push(Note::new(
            Code::Unparsed,
            format!(
                "squashfs {}.{} ({}-endian) is not read: only 2.0-3.1 here and little-endian 4.x in `squashfs`; \
                 the file system is compared as one block",
                sb.major,
                sb.minor,
                if sb.e == Endian::Big { "big" } else { "little" }
            ),
            Some(at.saturating_add(28)),
        ));
        return Ok(vec![fs].into());
    }
    // mksquashfs pads to a 4 KiB multiple with zeros: that padding is content.
    let extent = tree::declared_extent(
        b,
        "squashfs bytes_used",
        sb.bytes_used,
        sb.data_start,
        at.saturating_add(8),
        0x1000,
        &mut notes,
    )?;
    let mut fs = Region::new(RegionKind::Filesystem, "squashfs", &node.data, at, extent)
        .with_attr("format", "squashfs")
        .with_attr("version", format!("{}.{}", sb.major, sb.minor))
        .with_attr("endian", if sb.e == Endian::Big { "big" } else { "little" })
        .with_attr("compression", compression(b, &sb))
        .with_attr("block-size", sb.block_size)
        .with_attr("inodes", sb.inodes)
        .with_attr("fragments", sb.fragments)
        .with_attr("flags", format!("{:#04x}", sb.flags))
        .with_attr("bytes-used", sb.bytes_used);
    fs.notes = notes;
    crate::formats::now_or_later(ctx, &mut fs, "squashfs", expand);
    let mut out = vec![fs];
    out.extend(slack(
        &node.data,
        at.saturating_add(extent),
        node.end(),
        ctx.opts.blank,
    ));
    Ok(out.into())
}

/// The compressor: that of the first compressed metadata block (directory table, then inode table), else
/// of the first data block (right after the superblock) when it looks like zlib or an LZMA header.
fn compression(b: &[u8], sb: &Super) -> &'static str {
    let kind = |d: &[u8]| {
        if is_zlib(d) {
            Some("gzip")
        } else if is_lzma(d) {
            Some("lzma")
        } else {
            None
        }
    };
    for table in [sb.dir_table, sb.inode_table] {
        let Ok(h) = bits(b, table, 0, 16, sb.e) else {
            continue;
        };
        let skip = if sb.flags & FLAG_CHECK != 0 { 3 } else { 2 };
        if h & 0x8000 == 0 {
            if let Some(k) = b.get(table.saturating_add(skip) as usize..).and_then(kind) {
                return k;
            }
        }
    }
    if sb.inode_table > sb.data_start {
        if let Some(k) = b.get(sb.data_start as usize..).and_then(kind) {
            return k;
        }
    }
    "unknown"
}

/// An LZMA header: a valid properties byte and a dictionary of 2^n or 2^n + 2^(n-1) bytes, 4 KiB or more.
fn is_lzma(d: &[u8]) -> bool {
    match d {
        [p, a, b, c, e, ..] if *p < 225 => {
            let dict = u32::from_le_bytes([*a, *b, *c, *e]);
            dict >= 4096
                && (dict.is_power_of_two() || (dict / 3).is_power_of_two() && dict % 3 == 0)
        }
        _ => false,
    }
}

fn is_zlib(d: &[u8]) -> bool {
    match d {
        [a, b, ..] => a & 0x0F == 8 && (u16::from(*a) << 8 | u16::from(*b)) % 31 == 0,
        _ => false,
    }
}

/// Why a block could not be decoded (a note on its file), or the budget is spent (an error).
enum Fail {
    Note(String),
    Budget,
}

/// One compressed block, decoded to at most `want` bytes (data) or up to `want` (metadata, `exact` false).
fn inflate(ctx: &Ctx, raw: &[u8], want: u64, exact: bool) -> Result<Vec<u8>, Fail> {
    let map = |e: decompress::Error| match e {
        decompress::Error::Budget => Fail::Budget,
        other => Fail::Note(other.to_string()),
    };
    let out = if is_zlib(raw) {
        decompress::read_metered(flate2::read::ZlibDecoder::new(raw), want, ctx).map_err(map)?
    } else if raw.len() >= 5 && raw[0] < 225 {
        // The standard header holds the size; the vendor patches' 5-byte header does not (it is
        // supplied: the block's expected size, or "unknown" for metadata, which then needs an end mark).
        let claimed = raw
            .get(5..13)
            .map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0xFF; 8])));
        let standard = claimed.is_some_and(|c| c <= want && (!exact || c == want));
        if standard {
            decompress::lzma_metered(raw, want, ctx).map_err(map)?
        } else {
            let mut s = Vec::with_capacity(raw.len().saturating_add(8));
            s.extend_from_slice(&raw[..5]);
            s.extend_from_slice(&(if exact { want } else { u64::MAX }).to_le_bytes());
            s.extend_from_slice(&raw[5..]);
            decompress::lzma_metered(&s, want, ctx).map_err(map)?
        }
    } else {
        return Err(Fail::Note(
            "the block is neither zlib nor LZMA (an unsupported compressor)".into(),
        ));
    };
    if exact && out.len() as u64 != want {
        return Err(Fail::Note(format!(
            "a block decodes to {} bytes, {want} expected",
            out.len()
        )));
    }
    Ok(out)
}

/// The metadata blocks of one file system, decoded on demand and kept (bounded by [`MAX_TABLE`]).
struct Meta<'a> {
    ctx: &'a Ctx,
    fs: &'a [u8],
    sb: Super,
    /// Decoded block at an absolute offset, and the offset of the next block.
    blocks: HashMap<u64, (Vec<u8>, u64)>,
    total: u64,
}

impl<'a> Meta<'a> {
    fn budget(&self, at: u64) -> ParseError {
        ParseError::Invalid {
            what: "squashfs",
            offset: at,
            detail: "the image's decompression budget is spent".into(),
        }
    }

    /// Decodes the metadata block at `abs` (cached).
    fn block(&mut self, abs: u64) -> Result<(), ParseError> {
        if self.blocks.contains_key(&abs) {
            return Ok(());
        }
        if abs >= self.sb.bytes_used.min(self.fs.len() as u64) {
            return Err(ParseError::Invalid {
                what: "squashfs metadata block",
                offset: abs,
                detail: "outside the file system".into(),
            });
        }
        let h = bits(self.fs, abs, 0, 16, self.sb.e)?;
        let stored = h & 0x8000 != 0;
        let len = match h & 0x7FFF {
            0 => 0x8000,
            n => n,
        };
        let skip: u64 = if self.sb.flags & FLAG_CHECK != 0 {
            3
        } else {
            2
        };
        let data_at = abs.saturating_add(skip);
        let raw = slice(self.fs, data_at, len, "squashfs metadata block")?;
        let out = if stored {
            if len > METADATA_SIZE {
                return Err(ParseError::Invalid {
                    what: "squashfs metadata block",
                    offset: abs,
                    detail: format!("a stored block of {len} bytes (at most {METADATA_SIZE})"),
                });
            }
            if !Meter::pay(self.ctx, len) {
                return Err(self.budget(abs));
            }
            raw.to_vec()
        } else {
            match inflate(self.ctx, raw, METADATA_SIZE, false) {
                Ok(d) => d,
                Err(Fail::Budget) => return Err(self.budget(abs)),
                Err(Fail::Note(why)) => {
                    return Err(ParseError::Decompress {
                        offset: abs,
                        detail: format!("metadata block: {why}"),
                    })
                }
            }
        };
        self.total = self.total.saturating_add(out.len() as u64);
        if self.total > MAX_TABLE {
            return Err(ParseError::Limit {
                what: format!("squashfs metadata larger than {MAX_TABLE} bytes"),
                offset: abs,
            });
        }
        self.blocks.insert(abs, (out, data_at.saturating_add(len)));
        Ok(())
    }

    /// `n` bytes at (`pos.0` absolute block, `pos.1` offset in it), advancing `pos` across blocks.
    fn read(&mut self, pos: &mut (u64, u64), n: u64) -> Result<Vec<u8>, ParseError> {
        let mut out = Vec::new();
        while (out.len() as u64) < n {
            self.block(pos.0)?;
            let Some((d, next)) = self.blocks.get(&pos.0) else {
                break;
            };
            let len = d.len() as u64;
            if pos.1 >= len {
                // Past this block: the rest is in the next one (a block always advances).
                if *next <= pos.0 {
                    break;
                }
                pos.1 = pos.1.saturating_sub(len);
                pos.0 = *next;
                continue;
            }
            let take = (n.saturating_sub(out.len() as u64)).min(len.saturating_sub(pos.1));
            out.extend_from_slice(slice(d, pos.1, take, "squashfs metadata")?);
            pos.1 = pos.1.saturating_add(take);
        }
        if (out.len() as u64) < n {
            return Err(ParseError::Invalid {
                what: "squashfs metadata",
                offset: pos.0,
                detail: format!("{n} bytes wanted, the table ends"),
            });
        }
        Ok(out)
    }
}

/// Why a file's bytes were not read (a `decompress-failed` note on the file).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Unread(String);

/// One inode, as far as the listing needs it.
#[derive(Debug, Clone)]
struct Inode {
    typ: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Directory: listing size and (block, offset) in the directory table.
    dir: Option<(u64, u64, u64)>,
    /// Regular file: start block, fragment, fragment offset, size, block list.
    file: Option<(u64, u64, u64, u64, Vec<u64>)>,
    /// Symlink target, device number.
    target: Vec<u8>,
    rdev: u64,
}

struct Reader<'a> {
    meta: Meta<'a>,
    uids: Vec<u32>,
    gids: Vec<u32>,
    /// Fragment table index (absolute offsets of its metadata blocks).
    frag_index: Vec<u64>,
    /// The last fragment block decoded.
    frag_cache: Option<(u64, Vec<u8>)>,
    /// Directory entries read so far, over all directories (bounds the walk's work).
    entries_read: usize,
}

impl<'a> Reader<'a> {
    fn sb(&self) -> Super {
        self.meta.sb
    }

    fn ids(fs: &[u8], e: Endian, start: u64, n: u64) -> Result<Vec<u32>, ParseError> {
        (0..n)
            .map(|i| {
                bits(fs, start.saturating_add(i.saturating_mul(4)), 0, 32, e).map(|v| v as u32)
            })
            .collect()
    }

    fn new(ctx: &'a Ctx, fs: &'a [u8]) -> Result<Reader<'a>, ParseError> {
        let sb = superblock(fs)?;
        let end = sb.bytes_used.min(fs.len() as u64);
        let bs = sb.block_size;
        if !(4096..=(1 << 20)).contains(&bs) || !bs.is_power_of_two() {
            return Err(ParseError::Invalid {
                what: "squashfs superblock",
                offset: 51,
                detail: format!("block size {bs} is not a power of two in 4 KiB..1 MiB"),
            });
        }
        for (off, what) in [
            (sb.inode_table, "inode table"),
            (sb.dir_table, "directory table"),
            (sb.uid_start, "uid table"),
        ] {
            if off >= end {
                return Err(ParseError::Invalid {
                    what: "squashfs superblock",
                    offset: 0,
                    detail: format!("{what} at {off:#x} is outside the file system"),
                });
            }
        }
        let uids = Self::ids(fs, sb.e, sb.uid_start, sb.no_uids)?;
        let gids = Self::ids(fs, sb.e, sb.guid_start, sb.no_guids)?;
        // The fragment index: u64 (3.x) or u32 (2.x) offsets of the metadata blocks of 16- or 8-byte entries.
        let (entry, ptr) = if sb.major == 3 { (16u64, 8u64) } else { (8, 4) };
        let nblocks = sb.fragments.saturating_mul(entry).div_ceil(METADATA_SIZE);
        let frag_index = if sb.fragments == 0 {
            Vec::new()
        } else {
            if sb.frag_table.saturating_add(nblocks.saturating_mul(ptr)) > end {
                return Err(ParseError::Invalid {
                    what: "squashfs fragment table",
                    offset: sb.frag_table,
                    detail: format!("{} fragments do not fit the file system", sb.fragments),
                });
            }
            (0..nblocks)
                .map(|i| {
                    bits(
                        fs,
                        sb.frag_table.saturating_add(i.saturating_mul(ptr)),
                        0,
                        ptr.saturating_mul(8) as u32,
                        sb.e,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(Reader {
            meta: Meta {
                ctx,
                fs,
                sb,
                blocks: HashMap::new(),
                total: 0,
            },
            uids,
            gids,
            frag_index,
            frag_cache: None,
            entries_read: 0,
        })
    }

    /// The inode at (`block` relative to the inode table, `offset`).
    // Reviewed: header sizes are small constants; the block list length is checked against the table cap.
    #[allow(clippy::arithmetic_side_effects)]
    fn inode(&mut self, block: u64, offset: u64) -> Result<Inode, ParseError> {
        let sb = self.sb();
        let e = sb.e;
        let start = (sb.inode_table.saturating_add(block), offset);
        let v3 = sb.major == 3;
        let mut p = start;
        let base = self.meta.read(&mut p, if v3 { 12 } else { 4 })?;
        let typ = bits(&base, 0, 0, 4, e)?;
        let mode = bits(&base, 0, 4, 12, e)? as u32;
        let uid_i = bits(&base, 0, 16, 8, e)?;
        let gid_i = bits(&base, 0, 24, 8, e)?;
        let at = start.0;
        let bad = |detail: String| ParseError::Invalid {
            what: "squashfs inode",
            offset: at,
            detail,
        };
        let uid = *self.uids.get(uid_i as usize).ok_or_else(|| {
            bad(format!(
                "uid index {uid_i} beyond the {} uids",
                self.uids.len()
            ))
        })?;
        let gid = if gid_i == 255 {
            uid
        } else {
            *self.gids.get(gid_i as usize).ok_or_else(|| {
                bad(format!(
                    "gid index {gid_i} beyond the {} gids",
                    self.gids.len()
                ))
            })?
        };
        // (header size, then what each type holds) as squashfs_compat.h lays them out.
        let size = match (v3, typ) {
            (false, 1) => 15,
            (false, 8) => 18,
            (false, 2) => 24,
            (false, 3..=5) => 6,
            (false, 6 | 7) => 4,
            (true, 1) => 28,
            (true, 8) => 31,
            (true, 2) => 32,
            (true, 9) => 40,
            (true, 3..=5) => 18,
            (true, 6 | 7) => 16,
            _ => return Err(bad(format!("unknown inode type {typ}"))),
        };
        let mut p = start;
        let h = self.meta.read(&mut p, size)?;
        let f = |pos: u64, n: u32| bits(&h, 0, pos, n, e);
        let mut ino = Inode {
            typ,
            mode,
            uid,
            gid,
            dir: None,
            file: None,
            target: Vec::new(),
            rdev: 0,
        };
        match (v3, typ) {
            (false, 1) => ino.dir = Some((f(32, 19)?, f(96, 24)?, f(51, 13)?)),
            (false, 8) => ino.dir = Some((f(32, 27)?, f(104, 24)?, f(59, 13)?)),
            (true, 1) => ino.dir = Some((f(128, 19)?.saturating_sub(3), f(160, 32)?, f(147, 13)?)),
            (true, 8) => ino.dir = Some((f(128, 27)?.saturating_sub(3), f(168, 32)?, f(155, 13)?)),
            (_, 2) | (true, 9) => {
                let (sblock, frag, foff, fsize) = match (v3, typ) {
                    (false, _) => (f(64, 32)?, f(96, 32)?, f(128, 32)?, f(160, 32)?),
                    (true, 2) => (f(96, 64)?, f(160, 32)?, f(192, 32)?, f(224, 32)?),
                    _ => (f(128, 64)?, f(192, 32)?, f(224, 32)?, f(256, 64)?),
                };
                let bs = sb.block_size;
                let log = bs.trailing_zeros();
                let blocks = if frag == NO_FRAGMENT {
                    fsize.div_ceil(bs)
                } else {
                    fsize >> log
                };
                if blocks.saturating_mul(4) > MAX_TABLE {
                    return Err(bad(format!(
                        "a {fsize}-byte file's block list is larger than the metadata cap"
                    )));
                }
                let list = self.meta.read(&mut p, blocks * 4)?;
                let list = (0..blocks)
                    .map(|i| bits(&list, i * 4, 0, 32, e))
                    .collect::<Result<Vec<_>, _>>()?;
                ino.file = Some((sblock, frag, foff, fsize, list));
            }
            (_, 3) => {
                let n = f(if v3 { 128 } else { 32 }, 16)?;
                ino.target = self.meta.read(&mut p, n)?;
            }
            (_, 4 | 5) => ino.rdev = f(if v3 { 128 } else { 32 }, 16)?,
            _ => {}
        }
        Ok(ino)
    }

    /// The entries of a directory: (name, inode block, inode offset).
    // Reviewed: counts are at most 256 per header and names at most 256 bytes; `read` bounds the rest.
    #[allow(clippy::arithmetic_side_effects)]
    fn listing(
        &mut self,
        size: u64,
        block: u64,
        offset: u64,
    ) -> Result<Vec<(Vec<u8>, u64, u64)>, ParseError> {
        let sb = self.sb();
        let e = sb.e;
        let v3 = sb.major == 3;
        let mut p = (sb.dir_table.saturating_add(block), offset);
        let mut done = 0u64;
        let mut out = Vec::new();
        while done < size {
            let hsz = if v3 { 9 } else { 4 };
            let h = self.meta.read(&mut p, hsz)?;
            let count = bits(&h, 0, 0, 8, e)? + 1;
            let iblock = bits(&h, 0, 8, if v3 { 32 } else { 24 }, e)?;
            done += hsz;
            for _ in 0..count {
                let esz = if v3 { 5 } else { 3 };
                let d = self.meta.read(&mut p, esz)?;
                let ioff = bits(&d, 0, 0, 13, e)?;
                let nlen = bits(&d, 0, 16, 8, e)? + 1;
                let name = self.meta.read(&mut p, nlen)?;
                done += esz + nlen;
                out.push((name, iblock, ioff));
                self.entries_read = self.entries_read.saturating_add(1);
                if self.entries_read > MAX_LISTED {
                    return Err(ParseError::Limit {
                        what: format!("more than {MAX_LISTED} directory entries in all"),
                        offset: p.0,
                    });
                }
            }
        }
        Ok(out)
    }

    /// A fragment block's bytes (cached: files sharing one are usually listed together).
    fn fragment(&mut self, frag: u64) -> Result<Result<Vec<u8>, Unread>, ParseError> {
        if let Some((f, d)) = &self.frag_cache {
            if *f == frag {
                return Ok(Ok(d.clone()));
            }
        }
        let sb = self.sb();
        if frag >= sb.fragments {
            return Ok(Err(Unread(format!(
                "fragment {frag} beyond the {} fragments",
                sb.fragments
            ))));
        }
        let (entry, v3) = if sb.major == 3 {
            (16u64, true)
        } else {
            (8, false)
        };
        let byte = frag.saturating_mul(entry);
        let Some(&blk) = self.frag_index.get((byte / METADATA_SIZE) as usize) else {
            return Ok(Err(Unread(format!("fragment {frag} has no index block"))));
        };
        let mut p = (blk, byte % METADATA_SIZE);
        let d = self.meta.read(&mut p, entry)?;
        let (start, size) = if v3 {
            (bits(&d, 0, 0, 64, sb.e)?, bits(&d, 0, 64, 32, sb.e)?)
        } else {
            (bits(&d, 0, 0, 32, sb.e)?, bits(&d, 0, 32, 32, sb.e)?)
        };
        let out = match self.data_block(start, size, sb.block_size, false)? {
            Ok(d) => d,
            Err(why) => return Ok(Err(Unread(format!("fragment {frag}: {why}")))),
        };
        self.frag_cache = Some((frag, out.clone()));
        Ok(Ok(out))
    }

    /// One data block at `start` whose size entry is `entry`, decoded to `want` bytes (`exact`) or at most.
    fn data_block(
        &self,
        start: u64,
        entry: u64,
        want: u64,
        exact: bool,
    ) -> Result<Result<Vec<u8>, Unread>, ParseError> {
        let ctx = self.meta.ctx;
        let fs = self.meta.fs;
        let len = entry & !STORED_BLOCK;
        let end = self.sb().bytes_used.min(fs.len() as u64);
        if len > self.sb().block_size.saturating_mul(2) {
            return Ok(Err(Unread(format!(
                "a block of {len} bytes at {start:#x} is larger than the block size allows"
            ))));
        }
        if start.saturating_add(len) > end {
            return Ok(Err(Unread(format!(
                "a block at {start:#x}+{len:#x} is outside the file system"
            ))));
        }
        let raw = slice(fs, start, len, "squashfs data block")?;
        if entry & STORED_BLOCK != 0 {
            if (exact && len != want) || len > want {
                return Ok(Err(Unread(format!(
                    "a stored block of {len} bytes, {want} expected"
                ))));
            }
            if !Meter::pay(ctx, len) {
                return Err(self.meta.budget(start));
            }
            return Ok(Ok(raw.to_vec()));
        }
        match inflate(ctx, raw, want, exact) {
            Ok(d) => Ok(Ok(d)),
            Err(Fail::Budget) => Err(self.meta.budget(start)),
            Err(Fail::Note(why)) => Ok(Err(Unread(format!("block at {start:#x}: {why}")))),
        }
    }

    /// A regular file's bytes, or why not (a note).
    fn contents(
        &mut self,
        file: &(u64, u64, u64, u64, Vec<u64>),
    ) -> Result<Result<Vec<u8>, Unread>, ParseError> {
        let (sblock, frag, foff, size, list) = file;
        let ctx = self.meta.ctx;
        if *size > ctx.decompress_limit() {
            return Ok(Err(Unread(format!(
                "{size} bytes exceed the decompression limit"
            ))));
        }
        let bs = self.sb().block_size;
        let mut out: Vec<u8> = Vec::new();
        let mut pos = *sblock;
        for &entry in list {
            let want = size.saturating_sub(out.len() as u64).min(bs);
            if entry == 0 {
                // A hole.
                if !Meter::pay(ctx, want) {
                    return Err(self.meta.budget(pos));
                }
                out.resize(out.len().saturating_add(want as usize), 0);
                continue;
            }
            match self.data_block(pos, entry, want, true)? {
                Ok(d) => out.extend_from_slice(&d),
                Err(why) => return Ok(Err(why)),
            }
            pos = pos.saturating_add(entry & !STORED_BLOCK);
        }
        if *frag != NO_FRAGMENT {
            let tail = size.saturating_sub(out.len() as u64);
            if tail > 0 {
                let d = match self.fragment(*frag)? {
                    Ok(d) => d,
                    Err(why) => return Ok(Err(why)),
                };
                match d.get(*foff as usize..).and_then(|s| s.get(..tail as usize)) {
                    Some(s) => {
                        // The tail is a copy out of the (already paid) fragment block: pay it too.
                        if !Meter::pay(ctx, tail) {
                            return Err(self.meta.budget(*foff));
                        }
                        out.extend_from_slice(s)
                    }
                    None => {
                        return Ok(Err(Unread(format!(
                            "fragment {frag} holds {} bytes, the file wants {tail} at {foff}",
                            d.len()
                        ))))
                    }
                }
            }
        }
        if out.len() as u64 != *size {
            return Ok(Err(Unread(format!(
                "the blocks hold {} bytes, the inode says {size}",
                out.len()
            ))));
        }
        Ok(Ok(out))
    }
}

/// An error's offset, relative to the file system, made relative to the image.
fn relocate(e: ParseError, at: u64) -> ParseError {
    match e {
        ParseError::Invalid {
            what,
            offset,
            detail,
        } => ParseError::Invalid {
            what,
            offset: at.saturating_add(offset),
            detail,
        },
        ParseError::Truncated {
            what,
            offset,
            need,
            have,
        } => ParseError::Truncated {
            what,
            offset: at.saturating_add(offset),
            need,
            have,
        },
        ParseError::Limit { what, offset } => ParseError::Limit {
            what,
            offset: at.saturating_add(offset),
        },
        ParseError::Decompress { offset, detail } => ParseError::Decompress {
            offset: at.saturating_add(offset),
            detail,
        },
        other => other,
    }
}

/// Reads the file system (the node's bytes) into entry nodes.
pub fn expand(ctx: &Ctx, fs: &Region) -> Result<Parsed, ParseError> {
    let b = fs.bytes();
    let at = fs.offset;
    let relocate = |e: ParseError| relocate(e, at);
    let mut r = Reader::new(ctx, b).map_err(relocate)?;
    let root = r
        .inode(r.sb().root >> 16, r.sb().root & 0xFFFF)
        .map_err(relocate)?;
    let Some(root_dir) = root.dir else {
        return Err(ParseError::Invalid {
            what: "squashfs root inode",
            offset: at.saturating_add(r.sb().inode_table),
            detail: format!("type {} is not a directory", root.typ),
        });
    };
    let mut tree = Tree::new(ctx, at);
    tree.files_paid = true;
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut stack: Vec<(Option<usize>, (u64, u64, u64))> = vec![(None, root_dir)];
    'dirs: while let Some((parent, (size, block, offset))) = stack.pop() {
        if size == 0 {
            continue;
        }
        let here: String = parent.map(|p| tree.path(p).to_string()).unwrap_or_default();
        if !seen.insert((block, offset)) {
            tree.note(Note::new(
                Code::Unparsed,
                format!("{here}/: a directory listed twice (a loop); not walked again"),
                Some(at.saturating_add(r.sb().dir_table).saturating_add(block)),
            ));
            continue;
        }
        let entries = match r.listing(size, block, offset) {
            Ok(e) => e,
            Err(err) => {
                tree.note(Note::new(
                    Code::Unparsed,
                    format!("{here}/: directory not read: {}", relocate(err)),
                    Some(at.saturating_add(r.sb().dir_table).saturating_add(block)),
                ));
                continue;
            }
        };
        for (name, iblock, ioff) in entries {
            let ino = match r.inode(iblock, ioff) {
                Ok(i) => i,
                Err(err) => {
                    tree.note(Note::new(
                        Code::Unparsed,
                        format!(
                            "{here}/{}: inode not read: {}",
                            String::from_utf8_lossy(&name),
                            relocate(err)
                        ),
                        Some(at.saturating_add(r.sb().inode_table).saturating_add(iblock)),
                    ));
                    continue;
                }
            };
            let rdev = ino.rdev as u32;
            let (kind, bytes, why) = match ino.typ {
                1 | 8 => (Kind::Dir, Vec::new(), None),
                2 | 9 => match ino.file.as_ref() {
                    Some(file) => match r.contents(file)? {
                        Ok(d) => (Kind::File, d, None),
                        Err(why) => (Kind::File, Vec::new(), Some(why)),
                    },
                    None => (Kind::File, Vec::new(), None),
                },
                3 => {
                    if !Meter::pay(ctx, ino.target.len() as u64) {
                        return Err(r.meta.budget(at));
                    }
                    (Kind::Symlink, ino.target.clone(), None)
                }
                4 => (Kind::BlockDevice(rdev >> 8, rdev & 0xFF), Vec::new(), None),
                5 => (Kind::CharDevice(rdev >> 8, rdev & 0xFF), Vec::new(), None),
                6 => (Kind::Fifo, Vec::new(), None),
                _ => (Kind::Socket, Vec::new(), None),
            };
            let dir = ino.dir;
            match tree.add(parent, &name, kind, ino.mode, ino.uid, ino.gid, &bytes)? {
                Added::Yes(i) => {
                    if let Some(why) = why {
                        let p = tree.path(i).to_string();
                        tree.entry_note(
                            i,
                            Note::new(
                                Code::DecompressFailed,
                                format!("{p}: {why}"),
                                Some(at.saturating_add(ino.file.map(|f| f.0).unwrap_or(0))),
                            ),
                        );
                    }
                    if let Some(d) = dir {
                        stack.push((Some(i), d));
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
#[allow(clippy::arithmetic_side_effects)] // test code
mod tests {
    use super::*;

    #[test]
    fn bit_fields_both_byte_orders() {
        // inode_type:4 mode:12 uid:8 guid:8 = 2, 0o755, 1, 255.
        let le = (2u32 | (0o755 << 4) | (1 << 16) | (255 << 24)).to_le_bytes();
        let be = ((2u32 << 28) | (0o755 << 16) | (1 << 8) | 255).to_be_bytes();
        for (b, e) in [(&le, Endian::Little), (&be, Endian::Big)] {
            assert_eq!(bits(b, 0, 0, 4, e).unwrap(), 2);
            assert_eq!(bits(b, 0, 4, 12, e).unwrap(), 0o755);
            assert_eq!(bits(b, 0, 16, 8, e).unwrap(), 1);
            assert_eq!(bits(b, 0, 24, 8, e).unwrap(), 255);
        }
        // A 13-bit field at bit 51 crossing bytes, and a 64-bit field.
        let v: u64 = 0x1ABC;
        let word = v << 51;
        assert_eq!(
            bits(&word.to_le_bytes(), 0, 51, 13, Endian::Little).unwrap(),
            v
        );
        let word_be = v << (64 - 40 - 13);
        assert_eq!(
            bits(&word_be.to_be_bytes(), 0, 40, 13, Endian::Big).unwrap(),
            v
        );
        assert_eq!(
            bits(&u64::MAX.to_le_bytes(), 0, 0, 64, Endian::Little).unwrap(),
            u64::MAX
        );
        assert!(bits(&[0u8; 2], 0, 8, 16, Endian::Big).is_err());
    }

    #[test]
    fn mutated_sample_stays_in_bounds() {
        // binwalk's squashfs 2.0 sample (testdata/oldfs/PROVENANCE), with random fields overwritten.
        let good = include_bytes!("../../../testdata/oldfs/squashfs_v2.bin");
        crate::formats::util::mutations_stay_in_bounds(good, "squashfs3", 40);
        // Its first 4 KiB alone: every table and block pointer points past the end.
        crate::formats::util::mutations_stay_in_bounds(&good[..4096], "squashfs3", 200);
    }
}
