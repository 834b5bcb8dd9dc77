//! YAFFS2 images (2 KiB pages + 64-byte OOB, as `mkyaffs2image` writes them and NAND dumps hold them),
//! little-endian.
//!
//! Layout: chunks of 2048 data bytes followed by 64 OOB bytes. The OOB holds the packed tags (sequence
//! number, object id, chunk id, byte count; at OOB offset 0 or 2, found from the first chunk). Chunk id 0
//! (or the extra-header flag, bit 31) marks an object header in the data area: type (1 file, 2 symlink,
//! 3 directory, 4 hard link, 5 special), parent object id, name (256 bytes), mode, uid, gid, times, file
//! size, hard-link target id, symlink alias (160 bytes), rdev. Chunk id N > 0 is the file's data at
//! (N - 1) * 2048, `n_bytes` long. Of several copies of one chunk, the one with the highest sequence number
//! (then the later one) is live. The root directory is object 1; objects in the unlinked (3) and deleted (4)
//! directories are left out.
//!
//! Tree: `yaffs2` (kind `filesystem`, every whole chunk) and `slack`; inside, the entries as
//! [`super::tree`] lists them (a hard link with its target's bytes and a `hard-link` attribute). Bounds:
//! entries and depth are capped by the tree (a parent loop leaves the objects on it unlisted); a file's
//! size must be covered by chunks inside the image; its bytes are charged to the image's budget.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::bmc::fit::slack;
use crate::formats::fs::tree::{Added, Kind, Tree};
use crate::formats::util::{le32, slice};
use crate::formats::{Confidence, Ctx, Parsed};
use crate::region::{Note, Region, RegionKind};

pub const PAGE: u64 = 2048;
pub const OOB: u64 = 64;
pub const CHUNK: u64 = PAGE + OOB;
const ROOT: u32 = 1;
const LOWEST_SEQ: u32 = 0x1000;
const HIGHEST_SEQ: u32 = 0xEFFF_FF00;

/// The OOB offset of the packed tags whose first chunk is an object header.
fn tags_at(b: &[u8]) -> Option<u64> {
    [0u64, 2].into_iter().find(|&t| {
        let o = PAGE.saturating_add(t);
        let seq = le32(b, o, "").ok();
        let chunk = le32(b, o.saturating_add(8), "").ok();
        matches!(seq, Some(s) if (LOWEST_SEQ..HIGHEST_SEQ).contains(&s))
            && matches!(chunk, Some(c) if c == 0 || c & 0x8000_0000 != 0)
    })
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    if (b.len() as u64) < CHUNK {
        return None;
    }
    tags_at(b)?;
    // The header: a known type, parent the root (or another directory), a NUL-terminated printable name.
    let typ = le32(b, 0, "").ok()?;
    let name = b.get(10..266)?;
    let n = name.iter().position(|&c| c == 0)?;
    let ok = (1..=5).contains(&typ)
        && n > 0
        && name[..n].iter().all(|&c| c.is_ascii_graphic() || c == b' ')
        && le32(b, 4, "").ok()? != 0;
    ok.then_some(Confidence::Medium)
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "yaffs2",
    description: "YAFFS2 filesystem image (2 KiB pages + 64-byte OOB)",
    probe,
    parse,
    scope: crate::formats::Scope::File(crate::formats::Confidence::Medium),
    component: Some("bmc"),
    policy: Some(crate::region::Policy::Static),
    not_inside: &[],
    payloads: &[],
    package: None,
};

/// Parser for a partition starting with a YAFFS2 object header chunk.
pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let at = node.offset;
    let t = tags_at(b).ok_or(ParseError::Invalid {
        what: "yaffs2",
        offset: at,
        detail: "no packed tags in the first chunk's OOB".into(),
    })?;
    // The chunks up to the last one that is not erased.
    let n = (b.len() as u64) / CHUNK;
    let mut used = 0u64;
    for i in 0..n {
        let o = i.saturating_mul(CHUNK);
        if slice(b, o, CHUNK, "yaffs2 chunk")?
            .iter()
            .any(|&c| c != 0xFF)
        {
            used = i.saturating_add(1);
        }
    }
    let extent = used.saturating_mul(CHUNK);
    let mut fs = Region::new(RegionKind::Filesystem, "yaffs2", &node.data, at, extent)
        .with_attr("format", "yaffs2")
        .with_attr("page-size", PAGE)
        .with_attr("oob-size", OOB)
        .with_attr("tags-offset", t)
        .with_attr("chunks", used);
    crate::formats::now_or_later(ctx, &mut fs, "yaffs2", expand);
    let mut out = vec![fs];
    out.extend(slack(
        &node.data,
        at.saturating_add(extent),
        node.end(),
        ctx.opts.blank,
    ));
    Ok(out.into())
}

struct Obj {
    typ: u32,
    parent: u32,
    name: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    equiv: u32,
    alias: Vec<u8>,
    rdev: u32,
}

fn cstr(b: &[u8]) -> Vec<u8> {
    b.split(|&c| c == 0).next().unwrap_or(&[]).to_vec()
}

fn obj(h: &[u8]) -> Result<Obj, ParseError> {
    Ok(Obj {
        typ: le32(h, 0, "yaffs2 type")?,
        parent: le32(h, 4, "yaffs2 parent")?,
        name: cstr(slice(h, 10, 256, "yaffs2 name")?),
        mode: le32(h, 268, "yaffs2 mode")?,
        uid: le32(h, 272, "yaffs2 uid")?,
        gid: le32(h, 276, "yaffs2 gid")?,
        size: u64::from(le32(h, 292, "yaffs2 size")?),
        equiv: le32(h, 296, "yaffs2 equiv")?,
        alias: cstr(slice(h, 300, 160, "yaffs2 alias")?),
        rdev: le32(h, 460, "yaffs2 rdev")?,
    })
}

/// Reads the file system (the node's bytes) into entry nodes.
pub fn expand(ctx: &Ctx, fs: &Region) -> Result<Parsed, ParseError> {
    let b = fs.bytes();
    let at = fs.offset;
    let t = tags_at(b).ok_or(ParseError::Invalid {
        what: "yaffs2",
        offset: at,
        detail: "no packed tags".into(),
    })?;
    // Live chunks: (object, chunk) -> (sequence, chunk index, n_bytes).
    let mut live: HashMap<(u32, u32), (u32, u64, u64)> = HashMap::new();
    let n = (b.len() as u64) / CHUNK;
    for i in 0..n {
        let o = i.saturating_mul(CHUNK);
        let tg = o.saturating_add(PAGE).saturating_add(t);
        let seq = le32(b, tg, "yaffs2 tags")?;
        if !(LOWEST_SEQ..HIGHEST_SEQ).contains(&seq) {
            continue;
        }
        let mut id = le32(b, tg.saturating_add(4), "yaffs2 tags")?;
        let mut chunk = le32(b, tg.saturating_add(8), "yaffs2 tags")?;
        let nbytes = u64::from(le32(b, tg.saturating_add(12), "yaffs2 tags")?);
        if chunk & 0x8000_0000 != 0 {
            chunk = 0;
            id &= 0x0FFF_FFFF;
        }
        let e = live.entry((id, chunk)).or_insert((seq, i, nbytes));
        if seq >= e.0 {
            *e = (seq, i, nbytes);
        }
        if live.len() > 4_000_000 {
            break;
        }
    }
    let mut objs: HashMap<u32, Obj> = HashMap::new();
    let mut data: HashMap<u32, Vec<(u32, u64, u64)>> = HashMap::new();
    for (&(id, chunk), &(_, i, nbytes)) in &live {
        let o = i.saturating_mul(CHUNK);
        if chunk == 0 {
            if let Ok(ob) = obj(slice(b, o, PAGE, "yaffs2 header")?) {
                objs.insert(id, ob);
            }
        } else {
            data.entry(id)
                .or_default()
                .push((chunk, o, nbytes.min(PAGE)));
        }
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&id, ob) in &objs {
        if id != ROOT {
            children.entry(ob.parent).or_default().push(id);
        }
    }
    for v in children.values_mut() {
        v.sort_by(|x, y| objs[x].name.cmp(&objs[y].name).then(x.cmp(y)));
    }
    let file_bytes = |id: u32, size: u64| -> Result<Result<Vec<u8>, String>, ParseError> {
        if size > ctx.decompress_limit() {
            return Ok(Err(format!("{size} bytes exceed the decompression limit")));
        }
        let mut out = vec![];
        let mut chunks = data.get(&id).cloned().unwrap_or_default();
        chunks.sort();
        let mut next = 1u32;
        for (c, o, nb) in chunks {
            let pos = u64::from(c.saturating_sub(1)).saturating_mul(PAGE);
            if pos >= size {
                break;
            }
            if c != next {
                return Ok(Err(format!("chunk {next} of the file is missing")));
            }
            next = next.saturating_add(1);
            let take = nb.min(size.saturating_sub(pos));
            out.extend_from_slice(slice(b, o, take, "yaffs2 data")?);
        }
        if out.len() as u64 != size {
            return Ok(Err(format!(
                "the chunks hold {} bytes, the header says {size}",
                out.len()
            )));
        }
        Ok(Ok(out))
    };
    let mut tree = Tree::new(ctx, at);
    let mut stack: Vec<(Option<usize>, u32)> = vec![(None, ROOT)];
    'walk: while let Some((parent, dir)) = stack.pop() {
        for &id in children.get(&dir).map(|v| v.as_slice()).unwrap_or(&[]) {
            let ob = &objs[&id];
            let mut target = ob;
            let mut link = None;
            if ob.typ == 4 {
                match objs.get(&ob.equiv) {
                    Some(t) if t.typ != 4 && t.typ != 3 => {
                        target = t;
                        link = Some(ob.equiv);
                    }
                    _ => {
                        tree.note(Note::new(
                            Code::Unparsed,
                            format!("a hard link (object {id}) has no file to point to"),
                            Some(at),
                        ));
                        continue;
                    }
                }
            }
            let fmt = target.mode & 0o170000;
            let (kind, bytes, why) = match target.typ {
                1 => match file_bytes(link.unwrap_or(id), target.size)? {
                    Ok(d) => (Kind::File, d, None),
                    Err(w) => (Kind::File, vec![], Some(w)),
                },
                2 => (Kind::Symlink, target.alias.clone(), None),
                3 => (Kind::Dir, vec![], None),
                5 => {
                    let (ma, mi) = ((target.rdev >> 8) & 0xFFF, target.rdev & 0xFF);
                    let k = match fmt {
                        0o020000 => Kind::CharDevice(ma, mi),
                        0o060000 => Kind::BlockDevice(ma, mi),
                        0o140000 => Kind::Socket,
                        _ => Kind::Fifo,
                    };
                    (k, vec![], None)
                }
                _ => (
                    Kind::File,
                    vec![],
                    Some(format!("unknown object type {}", target.typ)),
                ),
            };
            let is_dir = kind == Kind::Dir;
            match tree.add(
                parent,
                &ob.name,
                kind,
                target.mode,
                target.uid,
                target.gid,
                &bytes,
            )? {
                Added::Yes(i) => {
                    if let Some(w) = why {
                        let p = tree.path(i).to_string();
                        tree.entry_note(
                            i,
                            Note::new(Code::Unparsed, format!("{p}: {w}"), Some(at)),
                        );
                    }
                    if let Some(l) = link {
                        tree.entry_attr(i, "hard-link", l);
                    }
                    if is_dir {
                        stack.push((Some(i), id));
                    }
                }
                Added::Skipped => {}
                Added::Full => break 'walk,
            }
        }
    }
    tree.finish()
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // test code: fixed-size fixtures
mod tests {
    use super::*;

    /// One chunk: a header or data page, with tags at OOB offset 0.
    fn chunk(page: &[u8], seq: u32, id: u32, chunk: u32, nbytes: u32) -> Vec<u8> {
        let mut c = page.to_vec();
        c.resize(PAGE as usize, 0xFF);
        let mut oob = vec![0xFFu8; OOB as usize];
        for (k, v) in [seq, id, chunk, nbytes].iter().enumerate() {
            oob[k * 4..k * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        c.extend_from_slice(&oob);
        c
    }

    fn hdr(typ: u32, parent: u32, name: &str, mode: u32, size: u32) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[0..4].copy_from_slice(&typ.to_le_bytes());
        h[4..8].copy_from_slice(&parent.to_le_bytes());
        h[10..10 + name.len()].copy_from_slice(name.as_bytes());
        h[268..272].copy_from_slice(&mode.to_le_bytes());
        h[292..296].copy_from_slice(&size.to_le_bytes());
        h
    }

    #[test]
    fn newest_chunk_wins_and_hostile_images_stay_in_bounds() {
        let mut img = chunk(&hdr(3, 1, "etc", 0o40755, 0), 0x1000, 0x101, 0, 0);
        img.extend(chunk(
            &hdr(1, 0x101, "passwd", 0o100644, 5),
            0x1000,
            0x102,
            0,
            0,
        ));
        img.extend(chunk(b"hello", 0x1000, 0x102, 1, 5));
        // A newer copy of the data chunk.
        img.extend(chunk(b"HELLO", 0x1001, 0x102, 1, 5));
        // An object whose parent is itself: never reached from the root.
        img.extend(chunk(
            &hdr(3, 0x103, "loop", 0o40755, 0),
            0x1001,
            0x103,
            0,
            0,
        ));
        assert_eq!(probe(&img), Some(Confidence::Medium));
        let ctx = crate::formats::Ctx::new(&crate::formats::ParseOptions::default());
        let data = std::sync::Arc::new(crate::input::Data::Owned(img.clone()));
        let node = Region::new(RegionKind::Filesystem, "yaffs2", &data, 0, img.len() as u64);
        let p = expand(&ctx, &node).unwrap();
        assert_eq!(p.children.len(), 1);
        let etc = &p.children[0];
        assert_eq!(etc.name, "etc");
        assert_eq!(etc.children[0].name, "passwd");
        assert_eq!(etc.children[0].bytes(), b"HELLO");
        crate::formats::util::mutations_stay_in_bounds(&img, "yaffs2", 300);
    }
}
