//! The file tree of the older read-only file systems (cramfs, romfs, yaffs2), built the way the squashfs
//! parser builds its tree so that they are listed and compared alike: every entry is a node named by its
//! path segment (identity = path, attribute `file-path`), over one buffer of decoded bytes:
//!
//! * a regular file's bytes are its contents (its digest is `sha256sum` of the extracted file);
//! * a symlink's bytes are its target; a device's `char-device MAJOR:MINOR` (or `block-device`), a FIFO's
//!   `fifo`, a socket's `socket`;
//! * a directory's bytes are its listing, one line per entry: `TYPE MODE UID GID SHA256-OF-ENTRY NAME`
//!   (a Merkle tree: a changed mode, owner or file below changes the directory's digest).
//!
//! Bounds: every byte put in the buffer is charged to the image's decompression budget; at most
//! [`MAX_ENTRIES`] entries (and the image's region budget), paths at most [`MAX_DEPTH`] levels deep; names
//! are never used as paths on disk (nothing is extracted), and a name with `/`, NUL, `.` or `..` is refused
//! as a path segment (shown escaped, with a note).
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::util::slice;
use crate::formats::{Ctx, Parsed};
use crate::input::Data;
use crate::region::{Note, Region, RegionKind};

/// The bytes of its `b`-byte partition a file system occupies: the size its superblock declares (`label`,
/// the field at image offset `field_at`) when it lies within `[min, b.len()]`, extended over the zero
/// padding its mkfs tool writes up to a multiple of `pad_to` (genromfs 1 KiB, mksquashfs 4 KiB; 1: none),
/// which is content; otherwise the whole partition, with a `partition-out-of-bounds` note.
pub fn declared_extent(
    b: &[u8],
    label: &str,
    size: u64,
    min: u64,
    field_at: u64,
    pad_to: u64,
    notes: &mut Vec<Note>,
) -> Result<u64, ParseError> {
    let len = b.len() as u64;
    if size > len || size < min {
        notes.push(Note::new(
            Code::PartitionOutOfBounds,
            format!("{label} {size:#x} does not fit the {len:#x}-byte partition"),
            Some(field_at),
        ));
        return Ok(len);
    }
    let pad_to = pad_to.max(1);
    // `size <= len` here, so `padded >= size`.
    let padded = size.div_ceil(pad_to).saturating_mul(pad_to).min(len);
    let pad = slice(b, size, padded.saturating_sub(size), "file system padding")?;
    Ok(if pad.iter().all(|&c| c == 0) {
        padded
    } else {
        size
    })
}

/// Most entries listed from one file system.
pub const MAX_ENTRIES: usize = 200_000;
/// Deepest path listed.
pub const MAX_DEPTH: usize = 40;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    CharDevice(u32, u32),
    BlockDevice(u32, u32),
    Fifo,
    Socket,
}

impl Kind {
    fn typ(&self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::CharDevice(..) => "char-device",
            Kind::BlockDevice(..) => "block-device",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }
}

struct Entry {
    name: String,
    path: String,
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    off: u64,
    len: u64,
    target: Option<String>,
    children: Vec<usize>,
    notes: Vec<Note>,
    attrs: Vec<(&'static str, serde_json::Value)>,
    elf: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Collects entries (parents before their children) and builds the tree.
pub struct Tree<'a> {
    ctx: &'a Ctx,
    /// Offset of the file system in the image, for notes and errors.
    at: u64,
    entries: Vec<Entry>,
    buf: Vec<u8>,
    by_path: HashMap<String, usize>,
    roots: Vec<usize>,
    notes: Vec<Note>,
    full: bool,
    /// Regular files' bytes were already paid to the budget as they were decoded (cramfs blocks).
    pub files_paid: bool,
}

impl std::fmt::Debug for Tree<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tree")
            .field("at", &self.at)
            .field("entries", &self.entries.len())
            .field("bytes", &self.buf.len())
            .finish()
    }
}

/// A name as a path segment: printable, never empty, `.`/`..` or containing `/` (escaped otherwise).
pub fn segment(raw: &[u8]) -> (String, bool) {
    let s = String::from_utf8_lossy(raw).into_owned();
    let bad = s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0');
    if bad {
        let esc: String = raw
            .iter()
            .map(|&c| {
                if c.is_ascii_graphic() && c != b'/' {
                    (c as char).to_string()
                } else {
                    format!("%{c:02x}")
                }
            })
            .collect();
        (format!("bad-name[{esc}]"), true)
    } else {
        (s, false)
    }
}

/// Why an entry was not added: the listing is full (stop), or the entry is too deep (skip it and its
/// children).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Yes(usize),
    Skipped,
    Full,
}

impl<'a> Tree<'a> {
    pub fn new(ctx: &'a Ctx, at: u64) -> Tree<'a> {
        Tree {
            ctx,
            at,
            entries: Vec::new(),
            buf: Vec::new(),
            by_path: HashMap::new(),
            roots: Vec::new(),
            notes: Vec::new(),
            full: false,
            files_paid: false,
        }
    }

    /// The path of entry `i`.
    pub fn path(&self, i: usize) -> &str {
        self.entries.get(i).map(|e| e.path.as_str()).unwrap_or("")
    }

    /// A note on the file system node (not on an entry).
    pub fn note(&mut self, n: Note) {
        if self.notes.len() < 64 {
            self.notes.push(n);
        }
    }

    /// Adds an entry named `raw` under `parent` (`None`: the root). `bytes` are its contents (a file's data,
    /// a symlink's target); devices, FIFOs and sockets get their description, directories their listing
    /// later. The bytes are charged to the image's budget.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        parent: Option<usize>,
        raw: &[u8],
        kind: Kind,
        mode: u32,
        uid: u32,
        gid: u32,
        bytes: &[u8],
    ) -> Result<Added, ParseError> {
        if self.full {
            return Ok(Added::Full);
        }
        if self.entries.len() >= MAX_ENTRIES || !self.ctx.take_region() {
            self.full = true;
            self.note(Note::new(
                Code::LimitExceeded,
                format!(
                    "more than {} entries (or the image's {} regions); the rest are not listed",
                    MAX_ENTRIES, self.ctx.opts.max_regions
                ),
                Some(self.at),
            ));
            return Ok(Added::Full);
        }
        let (name, bad) = segment(raw);
        let parent_path = parent.map(|p| self.path(p).to_string()).unwrap_or_default();
        let depth = parent_path.matches('/').count().saturating_add(1);
        if depth > MAX_DEPTH {
            self.note(Note::new(
                Code::LimitExceeded,
                format!("paths deeper than {MAX_DEPTH} levels are not listed"),
                Some(self.at),
            ));
            return Ok(Added::Skipped);
        }
        let mut path = format!("{parent_path}/{name}");
        // Two entries with one name in a directory (a corrupted or crafted image): the second is suffixed.
        let mut n = 1u32;
        while self.by_path.contains_key(&path) {
            n = n.saturating_add(1);
            path = format!("{parent_path}/{name}#{n}");
            if n > 1000 {
                return Ok(Added::Skipped);
            }
        }
        let mut notes = Vec::new();
        if bad {
            notes.push(Note::new(
                Code::Unparsed,
                format!("{path}: the entry's name is not a valid path segment"),
                None,
            ));
        }
        let desc;
        let (content, target): (&[u8], Option<String>) = match &kind {
            Kind::File => (bytes, None),
            Kind::Symlink => (bytes, Some(String::from_utf8_lossy(bytes).into_owned())),
            Kind::Dir => (&[], None),
            Kind::CharDevice(ma, mi) => {
                desc = format!("char-device {ma}:{mi}");
                (desc.as_bytes(), None)
            }
            Kind::BlockDevice(ma, mi) => {
                desc = format!("block-device {ma}:{mi}");
                (desc.as_bytes(), None)
            }
            Kind::Fifo => (b"fifo".as_slice(), None),
            Kind::Socket => (b"socket".as_slice(), None),
        };
        if !(self.files_paid && matches!(kind, Kind::File | Kind::Symlink)) {
            self.ctx.charge(content.len() as u64, self.at)?;
        }
        let off = self.buf.len() as u64;
        self.buf.extend_from_slice(content);
        let elf = if kind == Kind::File {
            crate::formats::squashfs::elf_summary(content)
        } else {
            None
        };
        let idx = self.entries.len();
        self.by_path.insert(path.clone(), idx);
        self.entries.push(Entry {
            name: path.rsplit('/').next().unwrap_or("unnamed").to_string(),
            path,
            kind,
            mode,
            uid,
            gid,
            off,
            len: content.len() as u64,
            target,
            children: Vec::new(),
            notes,
            attrs: Vec::new(),
            elf,
        });
        match parent.and_then(|p| self.entries.get_mut(p)) {
            Some(p) if p.kind == Kind::Dir => p.children.push(idx),
            _ => self.roots.push(idx),
        }
        Ok(Added::Yes(idx))
    }

    /// A note on entry `i`.
    pub fn entry_note(&mut self, i: usize, n: Note) {
        if let Some(e) = self.entries.get_mut(i) {
            e.notes.push(n);
        }
    }

    /// An attribute on entry `i`.
    pub fn entry_attr(&mut self, i: usize, key: &'static str, v: impl Into<serde_json::Value>) {
        if let Some(e) = self.entries.get_mut(i) {
            e.attrs.push((key, v.into()));
        }
    }

    /// The directory listings (deepest first), then the tree over the buffer.
    pub fn finish(mut self) -> Result<Parsed, ParseError> {
        for i in (0..self.entries.len()).rev() {
            if self.entries[i].kind != Kind::Dir {
                continue;
            }
            let mut listing = String::new();
            for &c in &self.entries[i].children {
                let ce = &self.entries[c];
                let digest = crate::hash::digest(
                    crate::hash::Alg::Sha256,
                    slice(&self.buf, ce.off, ce.len, "entry").unwrap_or(&[]),
                );
                listing.push_str(&format!(
                    "{} {:04o} {} {} {} {}\n",
                    ce.kind.typ(),
                    ce.mode & 0o7777,
                    ce.uid,
                    ce.gid,
                    digest,
                    ce.name
                ));
            }
            self.ctx.charge(listing.len() as u64, self.at)?;
            self.entries[i].off = self.buf.len() as u64;
            self.entries[i].len = listing.len() as u64;
            self.buf.extend_from_slice(listing.as_bytes());
        }
        let data = Arc::new(Data::Owned(std::mem::take(&mut self.buf)));
        let out: Vec<Region> = self
            .roots
            .iter()
            .map(|&i| build(&self.entries, i, &data))
            .collect();
        Ok(Parsed::from(out).notes(self.notes))
    }
}

fn build(entries: &[Entry], i: usize, data: &Arc<Data>) -> Region {
    let e = &entries[i];
    let kind = match e.kind {
        Kind::Dir => RegionKind::FsDir,
        Kind::Symlink => RegionKind::FsSymlink,
        _ => RegionKind::FsFile,
    };
    let mut r = Region::new(kind, e.name.clone(), data, e.off, e.len)
        .with_attr("file-path", e.path.clone())
        .with_attr("mode", format!("{:04o}", e.mode & 0o7777))
        .with_attr("uid", e.uid)
        .with_attr("gid", e.gid)
        .with_attr("type", e.kind.typ());
    if e.kind == Kind::File {
        r.attrs.insert("size".into(), e.len.into());
    }
    if let Some(t) = &e.target {
        r.attrs.insert("symlink-target".into(), t.clone().into());
    }
    for (k, v) in e.elf.iter().flatten() {
        r.attrs.insert(k.clone().into(), v.clone());
    }
    for (k, v) in &e.attrs {
        r.attrs.insert((*k).into(), v.clone());
    }
    r.notes = e.notes.clone();
    r.children = e
        .children
        .iter()
        .map(|&c| build(entries, c, data))
        .collect();
    r
}
