//! A bounded pre-check of a squashfs inode table, run before the filesystem is handed to `backhand`.
//!
//! `backhand` sizes each regular file's block list from the file size its inode claims (deku's
//! `Vec::with_capacity(count)`) while it reads the inode table, and an extended file inode can claim up
//! to 2^64 bytes. In our tests it refused such inodes with an empty error instead of aborting, but
//! nothing in its contract bounds that allocation, and an allocation failure aborts the process (no
//! `catch_unwind` stops it; one crafted dump would end a fleet audit). So the bound is ours: every inode
//! is walked with checked arithmetic on the decompressed inode table, and a block list that cannot fit in
//! the rest of the table is refused first, with a message that says why.
#![deny(clippy::arithmetic_side_effects)]

use std::io::Read;

use crate::error::ParseError;
use crate::formats::util::{le16, le32, le64, slice};

/// Most decompressed inode-table bytes read (the format caps a metadata block at 8 KiB).
pub const MAX_TABLE: u64 = 64 << 20;

/// Decompresses the metadata blocks in `fs[start..end]` (gzip/zlib = 1, xz = 4; others are left to
/// the reader, which refuses them).
// Reviewed: `off < end` and a block is at most 0x7FFF bytes plus its 2-byte header; the table is capped at MAX_TABLE.
#[allow(clippy::arithmetic_side_effects)]
fn metadata(
    fs: &[u8],
    start: u64,
    end: u64,
    compressor: u16,
) -> Result<Option<Vec<u8>>, ParseError> {
    if !matches!(compressor, 1 | 4) {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut off = start;
    while off < end {
        let h = le16(fs, off, "metadata block header")?;
        let len = u64::from(h & 0x7FFF);
        let raw = slice(fs, off + 2, len, "metadata block")?;
        let mut block = Vec::new();
        let limit = 8192 + 1;
        let r = if h & 0x8000 != 0 {
            block.extend_from_slice(raw);
            Ok(0)
        } else if compressor == 1 {
            flate2::read::ZlibDecoder::new(raw)
                .take(limit)
                .read_to_end(&mut block)
        } else {
            liblzma::read::XzDecoder::new(raw)
                .take(limit)
                .read_to_end(&mut block)
        };
        r.map_err(|e| ParseError::Decompress {
            offset: off,
            detail: format!("inode table metadata block: {e}"),
        })?;
        if block.len() > 8192 {
            return Err(ParseError::Invalid {
                what: "squashfs metadata block",
                offset: off,
                detail: "decompresses to more than 8 KiB".into(),
            });
        }
        out.extend_from_slice(&block);
        if out.len() as u64 > MAX_TABLE {
            return Err(ParseError::Limit {
                what: format!("inode table larger than {MAX_TABLE} bytes"),
                offset: off,
            });
        }
        // Progress: at least the 2-byte header.
        off = off + 2 + len;
    }
    Ok(Some(out))
}

/// Blocks a regular file of `size` bytes has, computed without overflow (`None` when it cannot be).
// Reviewed: `block_size >= 4096` (checked by the caller).
#[allow(clippy::arithmetic_side_effects)]
fn block_count(size: u64, block_size: u64, block_log: u32, fragment: u32) -> Option<u64> {
    if fragment == 0xFFFF_FFFF {
        size.checked_add(block_size - 1).map(|v| v >> block_log)
    } else {
        Some(size >> block_log)
    }
}

/// Walks every inode of the table. `fs` is the filesystem (superblock at 0).
// Reviewed: offsets are below the inode table's length (capped at MAX_TABLE) plus 32-bit sizes and small constants (at most 65535 directory index entries of 2^32 + 13 bytes: below 2^49); a block list is multiplied only when it fits the table.
#[allow(clippy::arithmetic_side_effects)]
pub fn check(fs: &[u8]) -> Result<(), ParseError> {
    let inode_count = u64::from(le32(fs, 4, "inode count")?);
    let block_size = u64::from(le32(fs, 12, "block size")?);
    let compressor = le16(fs, 20, "compressor")?;
    let block_log = u32::from(le16(fs, 22, "block log")?);
    if !(4096..=(1 << 20)).contains(&block_size)
        || block_log >= 64
        || 1u64 << block_log != block_size
    {
        return Err(ParseError::Invalid {
            what: "squashfs superblock",
            offset: 12,
            detail: format!("block size {block_size} / log {block_log} inconsistent"),
        });
    }
    let start = le64(fs, 64, "inode table")?;
    let end = le64(fs, 72, "directory table")?;
    if end < start {
        return Err(ParseError::Invalid {
            what: "squashfs superblock",
            offset: 64,
            detail: "directory table before the inode table".into(),
        });
    }
    let Some(t) = metadata(fs, start, end, compressor)? else {
        return Ok(());
    };
    let t = t.as_slice();
    let mut off = 0u64;
    for n in 0..inode_count {
        if off >= t.len() as u64 {
            break;
        }
        let typ = le16(t, off, "inode type")?;
        let body = off + 16;
        let next = match typ {
            1 => body + 16,
            2 | 9 => {
                let (size, frag, fixed) = if typ == 2 {
                    (
                        u64::from(le32(t, body + 12, "file size")?),
                        le32(t, body + 4, "fragment")?,
                        16,
                    )
                } else {
                    (
                        le64(t, body + 8, "file size")?,
                        le32(t, body + 28, "fragment")?,
                        40,
                    )
                };
                let blocks = block_count(size, block_size, block_log, frag);
                let list = body + fixed;
                let room = (t.len() as u64).saturating_sub(list) / 4;
                match blocks {
                    Some(b) if b <= room => list + b * 4,
                    _ => {
                        return Err(ParseError::Invalid {
                            what: "squashfs inode",
                            offset: off,
                            detail: format!(
                                "inode {n} claims a {size}-byte file whose block list cannot fit in the inode table"
                            ),
                        })
                    }
                }
            }
            3 | 10 => {
                let target = u64::from(le32(t, body + 4, "symlink size")?);
                body + 8 + target + if typ == 10 { 4 } else { 0 }
            }
            4 | 5 => body + 8,
            6 | 7 => body + 4,
            8 => {
                let count = u64::from(le16(t, body + 16, "directory index count")?);
                let mut p = body + 24;
                for _ in 0..count {
                    let name = u64::from(le32(t, p + 8, "directory index name size")?);
                    p = p + 12 + name + 1;
                }
                p
            }
            11 | 12 => body + 12,
            13 | 14 => body + 8,
            other => {
                return Err(ParseError::Invalid {
                    what: "squashfs inode",
                    offset: off,
                    detail: format!("inode {n} has unknown type {other}"),
                })
            }
        };
        if next <= off {
            break;
        }
        off = next;
    }
    Ok(())
}
