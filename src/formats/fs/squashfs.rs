//! squashfs 4 (the OpenBMC read-only root filesystem), read with the `backhand` crate (xz and gzip).
//!
//! Tree: the partition holds `squashfs` (kind `filesystem`, the `bytes_used` content extent, with the
//! superblock facts as attributes) and `slack` (blank). Inside `squashfs`, every directory, regular file,
//! symbolic link and special file is a node named by its path segment, so that its identity is its path:
//! `rofs/squashfs/usr/bin/busybox` for `/usr/bin/busybox` (attribute `file-path`). Nodes live in one buffer
//! of decompressed bytes:
//!
//! * a regular file's bytes are its contents (its digest is `sha256sum` of the extracted file);
//! * a symlink's bytes are its target;
//! * a device's bytes are `char-device MAJOR:MINOR` (or `block-device`), a FIFO's `fifo`, a socket's `socket`;
//! * a directory's bytes are a listing of its entries, one line each:
//!   `TYPE MODE UID GID SHA256-OF-ENTRY NAME`, so a directory's digest covers everything below it (a
//!   Merkle tree) and a changed mode or owner changes its directory's digest.
//!
//! Attributes: `mode` (octal), `uid`, `gid`, `file-path`, `symlink-target`, `size`; ELF files get
//! `elf-type`, `machine`, `build-id` (goblin). Limits: decompressed bytes are charged to the image budget
//! ([`Ctx::charge`]); at most [`MAX_ENTRIES`] entries and [`MAX_DEPTH`] path levels; directory loops are
//! refused by backhand (it tracks visited directory inodes). When parsing is lazy (`scan`), the filesystem
//! is only decompressed if its compressed bytes differ from the baseline.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use backhand::{FilesystemReader, InnerNode, SquashfsFileReader};

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::fit::slack;
use crate::formats::fs::tree;
use crate::formats::util::{le16, le32, le64, slice};
use crate::formats::{Confidence, Ctx, Parsed};
use crate::input::Data;
use crate::region::{Note, Region, RegionKind};

pub const MAGIC: &[u8; 4] = b"hsqs";
/// Most entries read from one filesystem.
pub const MAX_ENTRIES: usize = 200_000;
/// Deepest path (kept well below `manifest::MAX_REGION_DEPTH` levels of the whole region tree).
pub const MAX_DEPTH: usize = 40;

pub fn probe(b: &[u8]) -> Option<Confidence> {
    if b.get(..4)? != MAGIC || le16(b, 28, "squashfs major").ok()? != 4 {
        return None;
    }
    Some(Confidence::High)
}

fn compressor(id: u16) -> &'static str {
    match id {
        1 => "gzip",
        2 => "lzma",
        3 => "lzo",
        4 => "xz",
        5 => "lz4",
        6 => "zstd",
        _ => "unknown",
    }
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "squashfs",
    description: "squashfs 4 filesystem (xz, gzip)",
    probe,
    parse,
    scope: crate::formats::Scope::File(crate::formats::Confidence::Low),
    component: Some("bmc"),
    policy: Some(crate::region::Policy::Static),
    not_inside: &[],
    payloads: &[],
    package: None,
};

/// Parser for a partition starting with a squashfs superblock.
pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let at = node.offset;
    let sb = slice(b, 0, 96, "squashfs superblock")?;
    let inodes = le32(sb, 4, "inode count")?;
    let block_size = le32(sb, 12, "block size")?;
    let comp = le16(sb, 20, "compressor")?;
    let bytes_used = le64(sb, 40, "bytes_used")?;
    let mut notes = Vec::new();
    // mksquashfs pads the filesystem with zeros to a 4 KiB multiple: that padding is content.
    let extent = tree::declared_extent(
        b,
        "squashfs bytes_used",
        bytes_used,
        96,
        at.saturating_add(40),
        0x1000,
        &mut notes,
    )?;
    let mut fs = Region::new(RegionKind::Filesystem, "squashfs", &node.data, at, extent)
        .with_attr("format", "squashfs")
        .with_attr("compression", compressor(comp))
        .with_attr("block-size", block_size)
        .with_attr("inodes", inodes)
        .with_attr("bytes-used", bytes_used);
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

struct Entry {
    name: String,
    path: String,
    kind: RegionKind,
    typ: &'static str,
    mode: u16,
    uid: u32,
    gid: u32,
    /// Range in the buffer (filled for directories after their children).
    off: u64,
    len: u64,
    target: Option<String>,
    children: Vec<usize>,
    notes: Vec<Note>,
    elf: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The superblock checks and the reader (the specification's superblock and tables): tables inside the
/// filesystem, inode block lists bounded, then backhand's reader, whose panics on corrupted tables are
/// caught.
fn reader(b: &[u8], at: u64) -> Result<FilesystemReader<'_>, ParseError> {
    let bytes_used = le64(b, 40, "bytes_used")?;
    // Tables must lie inside the filesystem; backhand checks more, this keeps it from seeking far away.
    for (off, what) in [
        (64u64, "inode table"),
        (72, "directory table"),
        (48, "id table"),
    ] {
        let t = le64(b, off, what)?;
        if t >= bytes_used.min(b.len() as u64) {
            return Err(ParseError::Invalid {
                what: "squashfs superblock",
                offset: at.saturating_add(off),
                detail: format!("{what} at {t:#x} is outside the filesystem"),
            });
        }
    }
    // Refuse inode tables whose block lists could make the reader allocate without bound.
    crate::formats::squashfs_inodes::check(b).map_err(|e| match e {
        ParseError::Invalid {
            what,
            offset,
            detail,
        } => ParseError::Invalid {
            what,
            offset: at.saturating_add(offset),
            detail,
        },
        other => other,
    })?;
    let reader = std::io::Cursor::new(b);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        FilesystemReader::from_reader(reader)
    }));
    match result {
        Ok(Ok(f)) => Ok(f),
        Ok(Err(e)) => Err(ParseError::Invalid {
            what: "squashfs",
            offset: at,
            detail: e.to_string(),
        }),
        Err(_) => Err(ParseError::Invalid {
            what: "squashfs",
            offset: at,
            detail: "the squashfs reader gave up on corrupted tables".into(),
        }),
    }
}

/// An entry's bytes (the specification's inodes): a regular file's contents (charged to the image's
/// budget; one over the per-stream limit is a note), a symlink's target, a device's numbers, into `buf`.
fn contents(
    ctx: &Ctx,
    at: u64,
    fsr: &FilesystemReader<'_>,
    inner: &InnerNode<SquashfsFileReader>,
    e: &mut Entry,
    buf: &mut Vec<u8>,
) -> Result<(), ParseError> {
    let push = |buf: &mut Vec<u8>, bytes: &[u8]| -> Result<(), ParseError> {
        ctx.charge(bytes.len() as u64, at)?;
        buf.extend_from_slice(bytes);
        Ok(())
    };
    match inner {
        InnerNode::File(f) => {
            let len = f.file_len() as u64;
            if len > ctx.decompress_limit() {
                e.notes.push(Note::new(
                    Code::LimitExceeded,
                    format!("{}: {len} bytes exceed the decompression limit", e.path),
                    None,
                ));
            } else {
                ctx.charge(len, at)?;
                let mut contents = Vec::new();
                let r = fsr.file(f).reader().take(len).read_to_end(&mut contents);
                match r {
                    Ok(_) => {
                        e.elf = elf_summary(&contents);
                        buf.extend_from_slice(&contents);
                        e.len = contents.len() as u64;
                    }
                    Err(err) => e.notes.push(Note::new(
                        Code::DecompressFailed,
                        format!("{}: {err}", e.path),
                        None,
                    )),
                }
            }
        }
        InnerNode::Symlink(s) => {
            let t = s.link.to_string_lossy().into_owned();
            e.kind = RegionKind::FsSymlink;
            e.typ = "symlink";
            push(buf, t.as_bytes())?;
            e.len = t.len() as u64;
            e.target = Some(t);
        }
        InnerNode::Dir(_) => {
            e.kind = RegionKind::FsDir;
            e.typ = "dir";
        }
        other => {
            let d = match other {
                InnerNode::CharacterDevice(c) => {
                    e.typ = "char-device";
                    format!(
                        "char-device {}:{}",
                        c.device_number >> 8,
                        c.device_number & 0xFF
                    )
                }
                InnerNode::BlockDevice(c) => {
                    e.typ = "block-device";
                    format!(
                        "block-device {}:{}",
                        c.device_number >> 8,
                        c.device_number & 0xFF
                    )
                }
                InnerNode::NamedPipe => {
                    e.typ = "fifo";
                    "fifo".into()
                }
                _ => {
                    e.typ = "socket";
                    "socket".into()
                }
            };
            push(buf, d.as_bytes())?;
            e.len = d.len() as u64;
        }
    }
    Ok(())
}

/// The directory listings (the specification's directory table, as fwscan hashes it): deepest first,
/// each a line per entry with the digest of its bytes, appended to `buf`.
fn listings(
    ctx: &Ctx,
    at: u64,
    entries: &mut [Entry],
    buf: &mut Vec<u8>,
) -> Result<(), ParseError> {
    for i in (0..entries.len()).rev() {
        if entries[i].kind != RegionKind::FsDir {
            continue;
        }
        let mut listing = String::new();
        for &c in &entries[i].children {
            let ce = &entries[c];
            let digest = crate::hash::digest(
                crate::hash::Alg::Sha256,
                slice(buf, ce.off, ce.len, "entry").unwrap_or(&[]),
            );
            listing.push_str(&format!(
                "{} {:04o} {} {} {} {}\n",
                ce.typ, ce.mode, ce.uid, ce.gid, digest, ce.name
            ));
        }
        ctx.charge(listing.len() as u64, at)?;
        entries[i].off = buf.len() as u64;
        entries[i].len = listing.len() as u64;
        buf.extend_from_slice(listing.as_bytes());
    }
    Ok(())
}

/// The region of entry `i` and its children, over the decompressed buffer.
fn build(entries: &[Entry], i: usize, data: &Arc<Data>) -> Region {
    let e = &entries[i];
    let mut r = Region::new(e.kind, e.name.clone(), data, e.off, e.len)
        .with_attr("file-path", e.path.clone())
        .with_attr("mode", format!("{:04o}", e.mode))
        .with_attr("uid", e.uid)
        .with_attr("gid", e.gid)
        .with_attr("type", e.typ);
    if e.kind == RegionKind::FsFile {
        r.attrs.insert("size".into(), e.len.into());
    }
    if let Some(t) = &e.target {
        r.attrs.insert("symlink-target".into(), t.clone().into());
    }
    if let Some(elf) = &e.elf {
        for (k, v) in elf {
            r.attrs.insert(k.clone().into(), v.clone());
        }
    }
    r.notes = e.notes.clone();
    r.children = e
        .children
        .iter()
        .map(|&c| build(entries, c, data))
        .collect();
    r
}

/// Reads the filesystem (the node's bytes) into entry nodes, in a new decompressed buffer.
pub fn expand(ctx: &Ctx, fs: &Region) -> Result<Parsed, ParseError> {
    let b = fs.bytes();
    let at = fs.offset;
    let fsr = reader(b, at)?;
    let mut buf: Vec<u8> = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut by_path: HashMap<String, usize> = HashMap::new();
    let mut roots: Vec<usize> = Vec::new();
    let mut limit_note = None;
    for (n, node) in fsr.files().enumerate() {
        let path = node.fullpath.to_string_lossy().into_owned();
        if path == "/" || path.is_empty() {
            continue;
        }
        if n > MAX_ENTRIES {
            limit_note = Some(format!(
                "more than {MAX_ENTRIES} entries; the rest are not listed"
            ));
            break;
        }
        if !ctx.take_region() {
            limit_note = Some(format!(
                "more than {} regions in this image; the rest are not listed",
                ctx.opts.max_regions
            ));
            break;
        }
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if segs.len() > MAX_DEPTH {
            limit_note = Some(format!(
                "paths deeper than {MAX_DEPTH} levels are not listed"
            ));
            continue;
        }
        let name = segs.last().copied().unwrap_or("unnamed").to_string();
        let parent_path = if segs.len() > 1 {
            // `segs.len() > 1`.
            Some(format!(
                "/{}",
                segs[..segs.len().saturating_sub(1)].join("/")
            ))
        } else {
            None
        };
        let h = &node.header;
        let mut e = Entry {
            name,
            path: format!("/{}", segs.join("/")),
            kind: RegionKind::FsFile,
            typ: "file",
            mode: h.permissions,
            uid: h.uid,
            gid: h.gid,
            off: buf.len() as u64,
            len: 0,
            target: None,
            children: Vec::new(),
            notes: Vec::new(),
            elf: None,
        };
        contents(ctx, at, &fsr, &node.inner, &mut e, &mut buf)?;
        let idx = entries.len();
        by_path.insert(e.path.clone(), idx);
        entries.push(e);
        match parent_path.and_then(|p| by_path.get(&p).copied()) {
            Some(p) if entries[p].kind == RegionKind::FsDir => entries[p].children.push(idx),
            _ => roots.push(idx),
        }
    }
    listings(ctx, at, &mut entries, &mut buf)?;
    let data = Arc::new(Data::Owned(buf));
    let out: Vec<Region> = roots.iter().map(|&i| build(&entries, i, &data)).collect();
    // A listing cut short is a fact of the filesystem: a note on its own node.
    Ok(
        Parsed::from(out)
            .notes(limit_note.map(|msg| Note::new(Code::LimitExceeded, msg, Some(at)))),
    )
}

/// ELF facts for `inspect`: type, machine, GNU build id.
pub fn elf_summary(b: &[u8]) -> Option<serde_json::Map<String, serde_json::Value>> {
    if b.get(..4)? != b"\x7fELF" {
        return None;
    }
    let elf = goblin::elf::Elf::parse(b).ok()?;
    let mut m = serde_json::Map::new();
    let typ = match elf.header.e_type {
        goblin::elf::header::ET_EXEC => "exec",
        goblin::elf::header::ET_DYN => "dyn",
        goblin::elf::header::ET_REL => "rel",
        goblin::elf::header::ET_CORE => "core",
        _ => "other",
    };
    m.insert("elf-type".into(), typ.into());
    m.insert(
        "machine".into(),
        goblin::elf::header::machine_to_str(elf.header.e_machine).into(),
    );
    if let Some(notes) = elf.iter_note_headers(b) {
        for n in notes.take(64).flatten() {
            if n.n_type == goblin::elf::note::NT_GNU_BUILD_ID && n.name == "GNU" {
                m.insert("build-id".into(), hex::encode(n.desc).into());
            }
        }
    }
    Some(m)
}
