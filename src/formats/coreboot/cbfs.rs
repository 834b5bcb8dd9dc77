//! The coreboot file system (CBFS): a list of files, each with a header, attributes and data.
//!
//! File header (big-endian), at 64-byte aligned offsets from the start of the CBFS:
//!
//! | offset | field |
//! |---|---|
//! | 0x00 | magic `LARCHIVE` |
//! | 0x08 | data length |
//! | 0x0C | type |
//! | 0x10 | attributes offset (0: none) |
//! | 0x14 | data offset (from the header) |
//! | 0x18 | name, NUL-terminated, up to the attributes or the data |
//!
//! Attributes (tag u32, length u32, big-endian): compression `BCZL` (algorithm: 0 none, 1 LZMA, 2 LZ4;
//! decompressed size), hash `hsaH`, position `BCSP`, alignment `BCLA`, stage header `StgH` (load address,
//! memory length, entry offset), padding. Types as `cbfstool print` names them; the master header (`ORBC`),
//! legacy stages (type 0x10: a 28-byte little-endian header with its own compression field), and payloads
//! (`simple elf`: a big-endian table of 28-byte segments `CODE`/`DATA`/`BSS `/`PARA`/`ENTR`) are
//! parsed further. Compressed data is decompressed within the image's decompression budget and its
//! content is parsed as a file.
//!
//! Every CBFS file is a `file` node named by its CBFS name and compared one by one like an FFS file; an
//! empty (`null`) or deleted file is free space. Bytes between files are padding (checked for blank).
#![deny(clippy::arithmetic_side_effects)]

use std::sync::Arc;

use crate::error::ParseError;
use crate::formats::decompress::{self, Error as DError};
use crate::formats::util::{add, align_up, be32, be64, le32, le64, slice};
use crate::formats::{Confidence, Ctx, Format, Parsed, Scope};
use crate::input::Data;
use crate::region::{Note, Region, RegionKind};

pub const MAGIC: &[u8; 8] = b"LARCHIVE";
const ALIGN: u64 = 64;
const HEADER: u64 = 24;
/// Most segments a payload may list (real payloads have a handful).
const MAX_SEGMENTS: u64 = 256;

pub const TYPE_NULL: u32 = 0xFFFF_FFFF;
pub const TYPE_DELETED: u32 = 0;
const TYPE_LEGACY_STAGE: u32 = 0x10;
const TYPE_STAGE: u32 = 0x11;
const TYPE_SELF: u32 = 0x20;
const TYPE_MASTER: u32 = 0x02;

const ATTR_COMPRESSION: u32 = 0x4243_5A4C;
const ATTR_HASH: u32 = 0x6873_6148;
const ATTR_POSITION: u32 = 0x4243_5350;
const ATTR_ALIGNMENT: u32 = 0x4243_4C41;
const ATTR_STAGE: u32 = 0x5374_6748;

/// `cbfstool print`'s name of a file type.
pub fn type_name(t: u32) -> String {
    match t {
        0x01 => "bootblock".into(),
        0x02 => "cbfs header".into(),
        0x10 => "legacy stage".into(),
        0x11 => "stage".into(),
        0x20 => "simple elf".into(),
        0x21 => "fit".into(),
        0x30 => "optionrom".into(),
        0x40 => "bootsplash".into(),
        0x50 => "raw".into(),
        0x51 => "vsa".into(),
        0x52 => "mbi".into(),
        0x53 => "microcode".into(),
        0x60 => "fsp".into(),
        0x61 => "mrc".into(),
        0x62 => "mma".into(),
        0x63 => "efi".into(),
        0x70 => "struct".into(),
        0xAA => "cmos_default".into(),
        0xAB => "spd".into(),
        0xAC => "mrc_cache".into(),
        0x1AA => "cmos_layout".into(),
        TYPE_DELETED => "deleted".into(),
        TYPE_NULL => "null".into(),
        t => format!("{t:#x}"),
    }
}

fn compression_name(c: u32) -> String {
    match c {
        0 => "none".into(),
        1 => "LZMA".into(),
        2 => "LZ4".into(),
        c => format!("unknown-{c}"),
    }
}

/// One file header, validated against the bytes after it.
#[derive(Debug, Clone)]
struct Header {
    len: u64,
    typ: u32,
    attr_off: u64,
    data_off: u64,
    name: String,
}

fn header(b: &[u8], at: u64) -> Result<Header, ParseError> {
    let bad = |detail: String| ParseError::Invalid {
        what: "CBFS file header",
        offset: at,
        detail,
    };
    if slice(b, at, 8, "CBFS magic")? != MAGIC {
        return Err(bad("no LARCHIVE magic".into()));
    }
    let len = u64::from(be32(b, add(at, 8, "CBFS")?, "CBFS length")?);
    let typ = be32(b, add(at, 12, "CBFS")?, "CBFS type")?;
    let attr_off = u64::from(be32(b, add(at, 16, "CBFS")?, "CBFS attributes offset")?);
    let data_off = u64::from(be32(b, add(at, 20, "CBFS")?, "CBFS data offset")?);
    let room = (b.len() as u64).saturating_sub(at);
    if data_off < HEADER || data_off > room || len > room.saturating_sub(data_off) {
        return Err(bad(format!(
            "data offset {data_off:#x} / length {len:#x} do not fit the {room:#x} bytes left"
        )));
    }
    if attr_off != 0 && (attr_off < HEADER || attr_off > data_off) {
        return Err(bad(format!(
            "attributes offset {attr_off:#x} outside the header (data at {data_off:#x})"
        )));
    }
    let name_end = if attr_off != 0 { attr_off } else { data_off };
    let raw = slice(
        b,
        add(at, HEADER, "CBFS")?,
        name_end.saturating_sub(HEADER),
        "name",
    )?;
    let n = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    Ok(Header {
        len,
        typ,
        attr_off,
        data_off,
        name: String::from_utf8_lossy(&raw[..n]).into_owned(),
    })
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    header(b, 0).ok().map(|_| Confidence::High)
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "cbfs",
    description: "coreboot file system (CBFS files, stages, payloads; LZMA/LZ4 decompressed)",
    probe,
    parse,
    scope: Scope::Both,
    component: Some("bios"),
    policy: None,
    not_inside: &["cbfs", "fmap"],
    payloads: &[],
    package: None,
};

pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let len = b.len() as u64;
    header(b, 0)?;
    let mut kids = Vec::new();
    let mut notes = Vec::new();
    let mut p = 0u64;
    while p.saturating_add(HEADER) <= len {
        if b.get(p as usize..).is_some_and(|r| !r.starts_with(MAGIC)) {
            // cbfstool walks on at the next aligned offset; what lies between is padding.
            match (p.saturating_add(ALIGN)..len)
                .step_by(ALIGN as usize)
                .find(|&q| b.get(q as usize..).is_some_and(|r| r.starts_with(MAGIC)))
            {
                Some(q) => {
                    p = q;
                    continue;
                }
                None => break,
            }
        }
        let h = match header(b, p) {
            Ok(h) => h,
            Err(e) => {
                notes.push(crate::formats::unparsed_note("cbfs", &e));
                break;
            }
        };
        let size = h.data_off.saturating_add(h.len);
        if !ctx.take_region() {
            kids.push(ctx.limit_node(
                &node.data,
                node.offset.saturating_add(p),
                len.saturating_sub(p),
                "CBFS",
            ));
            break;
        }
        kids.push(file(ctx, node, p, &h));
        p = align_up(p.saturating_add(size), ALIGN, "CBFS file end")?;
    }
    Ok(Parsed::from(kids).notes(notes))
}

/// The node of the file at `p` (offsets relative to the CBFS).
fn file(ctx: &Ctx, node: &Region, p: u64, h: &Header) -> Region {
    let at = node.offset.saturating_add(p);
    let free = matches!(h.typ, TYPE_NULL | TYPE_DELETED);
    let (kind, name) = if free {
        (RegionKind::FreeSpace, "empty".to_string())
    } else {
        (RegionKind::File, h.name.clone())
    };
    let size = h.data_off.saturating_add(h.len);
    let mut f = Region::new(kind, name, &node.data, at, size)
        .with_attr("cbfs-type", type_name(h.typ))
        .with_attr("cbfs-type-code", format!("{:#x}", h.typ))
        .with_attr("cbfs-offset", format!("{p:#x}"))
        .with_attr("data-size", h.len);
    let b = node.bytes();
    let attrs = attributes(b, p, h);
    let mut comp = 0u32;
    for (tag, body) in &attrs {
        match *tag {
            ATTR_COMPRESSION => {
                comp = be32(body, 0, "compression").unwrap_or(0);
                if let Ok(n) = be32(body, 4, "decompressed size") {
                    f.attrs.insert("decompressed-size".into(), n.into());
                }
            }
            ATTR_HASH => {
                if let Ok(t) = be32(body, 0, "hash type") {
                    f.attrs.insert("hash-type".into(), t.into());
                    f.attrs.insert(
                        "hash".into(),
                        hex::encode(body.get(4..).unwrap_or_default()).into(),
                    );
                }
            }
            ATTR_POSITION => {
                if let Ok(v) = be32(body, 0, "position") {
                    f.attrs.insert("position".into(), format!("{v:#x}").into());
                }
            }
            ATTR_ALIGNMENT => {
                if let Ok(v) = be32(body, 0, "alignment") {
                    f.attrs.insert("alignment".into(), format!("{v:#x}").into());
                }
            }
            ATTR_STAGE => {
                if let (Ok(load), Ok(mem), Ok(entry)) = (
                    be64(body, 0, "load"),
                    be32(body, 8, "memlen"),
                    be32(body, 12, "entry"),
                ) {
                    f.attrs.insert("load".into(), format!("{load:#x}").into());
                    f.attrs.insert("memlen".into(), mem.into());
                    f.attrs
                        .insert("entry-offset".into(), format!("{entry:#x}").into());
                }
            }
            _ => {}
        }
    }
    f.attrs
        .insert("compression".into(), compression_name(comp).into());
    if free {
        return f;
    }
    let head = Region::new(RegionKind::Header, "header", &node.data, at, h.data_off);
    let mut data = Region::new(
        RegionKind::Blob,
        "data",
        &node.data,
        at.saturating_add(h.data_off),
        h.len,
    );
    match h.typ {
        TYPE_MASTER => master(&mut data),
        TYPE_LEGACY_STAGE => legacy_stage(ctx, &mut data),
        TYPE_SELF => payload(ctx, &mut data),
        _ => {
            if comp != 0 {
                inflate(ctx, &mut data, comp);
            } else if h.typ != TYPE_STAGE && h.typ != 0x01 {
                crate::formats::descend(ctx, &mut data, Some(&FORMAT), None);
            }
        }
    }
    f.children = vec![head, data];
    f
}

/// The attributes of a file: (tag, body) in header order, ending at an unused tag or a bad length.
fn attributes<'a>(b: &'a [u8], p: u64, h: &Header) -> Vec<(u32, &'a [u8])> {
    let mut out = Vec::new();
    if h.attr_off == 0 {
        return out;
    }
    let end = p.saturating_add(h.data_off);
    let mut q = p.saturating_add(h.attr_off);
    while q.saturating_add(8) <= end {
        let (Ok(tag), Ok(alen)) = (
            be32(b, q, "attribute tag"),
            be32(b, q.saturating_add(4), "len"),
        ) else {
            break;
        };
        let alen = u64::from(alen);
        if tag == 0 || tag == 0xFFFF_FFFF || alen < 8 || q.saturating_add(alen) > end {
            break;
        }
        if let Ok(body) = slice(b, q.saturating_add(8), alen.saturating_sub(8), "attribute") {
            out.push((tag, body));
        }
        q = q.saturating_add(alen);
    }
    out
}

/// The master header (`ORBC`): its fields as attributes.
fn master(data: &mut Region) {
    let b = data.bytes();
    if b.get(..4) != Some(b"ORBC") {
        return;
    }
    let fields = [
        "version",
        "romsize",
        "bootblocksize",
        "align",
        "offset",
        "architecture",
    ];
    let vals: Vec<(&str, u32)> = fields
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let off = (i as u64).saturating_add(1).saturating_mul(4);
            be32(b, off, "master header").ok().map(|v| (*n, v))
        })
        .collect();
    for (n, v) in vals {
        data.attrs.insert(n.into(), format!("{v:#x}").into());
    }
}

/// A legacy stage (type 0x10): the 28-byte little-endian header and the (maybe compressed) body.
fn legacy_stage(ctx: &Ctx, data: &mut Region) {
    let b = data.bytes();
    let (Ok(comp), Ok(entry), Ok(load), Ok(len), Ok(memlen)) = (
        le32(b, 0, "stage compression"),
        le64(b, 4, "stage entry"),
        le64(b, 12, "stage load"),
        le32(b, 20, "stage length"),
        le32(b, 24, "stage memlen"),
    ) else {
        return;
    };
    let avail = (b.len() as u64).saturating_sub(28);
    let body_len = u64::from(len).min(avail);
    let head = Region::new(
        RegionKind::Header,
        "stage-header",
        &data.data,
        data.offset,
        28,
    )
    .with_attr("entry", format!("{entry:#x}"))
    .with_attr("load", format!("{load:#x}"))
    .with_attr("memlen", memlen)
    .with_attr("compression", compression_name(comp));
    let mut body = Region::new(
        RegionKind::Blob,
        "stage-body",
        &data.data,
        data.offset.saturating_add(28),
        body_len,
    );
    if comp != 0 {
        inflate(ctx, &mut body, comp);
    }
    data.children = vec![head, body];
    if u64::from(len) > avail {
        data.notes.push(Note::new(
            crate::finding::Code::Unparsed,
            format!(
                "legacy stage: body of {len:#x} bytes exceeds the {avail:#x} bytes of its file"
            ),
            Some(data.offset),
        ));
    }
}

/// A payload (`simple elf`): the segment table, then each segment's (maybe compressed) bytes.
fn payload(ctx: &Ctx, data: &mut Region) {
    let b = data.bytes();
    let blen = b.len() as u64;
    let mut segs = Vec::new();
    let mut n = 0u64;
    let mut table_end = 0u64;
    while n < MAX_SEGMENTS {
        let at = n.saturating_mul(28);
        let (Ok(typ), Ok(comp), Ok(off), Ok(load), Ok(len), Ok(mem)) = (
            be32(b, at, "segment type"),
            be32(b, at.saturating_add(4), "segment compression"),
            be32(b, at.saturating_add(8), "segment offset"),
            be64(b, at.saturating_add(12), "segment load"),
            be32(b, at.saturating_add(20), "segment length"),
            be32(b, at.saturating_add(24), "segment memlen"),
        ) else {
            break;
        };
        n = n.saturating_add(1);
        table_end = at.saturating_add(28);
        let name = String::from_utf8_lossy(&typ.to_be_bytes())
            .trim()
            .to_string();
        segs.push((
            name.clone(),
            comp,
            u64::from(off),
            load,
            u64::from(len),
            mem,
        ));
        if name == "ENTR" {
            break;
        }
    }
    let mut kids = vec![Region::new(
        RegionKind::Header,
        "segments",
        &data.data,
        data.offset,
        table_end,
    )
    .with_attr("count", segs.len())];
    for (name, comp, off, load, len, mem) in segs {
        let carries = matches!(name.as_str(), "CODE" | "DATA" | "PARA");
        if !carries || len == 0 {
            continue;
        }
        if off < table_end || off.checked_add(len).is_none_or(|e| e > blen) {
            data.notes.push(Note::new(
                crate::finding::Code::Unparsed,
                format!("payload segment {name}: {off:#x}+{len:#x} outside its file"),
                Some(data.offset),
            ));
            continue;
        }
        if !ctx.take_region() {
            break;
        }
        let mut s = Region::new(
            RegionKind::Section,
            format!("segment[{name}]"),
            &data.data,
            data.offset.saturating_add(off),
            len,
        )
        .with_attr("load", format!("{load:#x}"))
        .with_attr("memlen", mem)
        .with_attr("compression", compression_name(comp));
        if comp != 0 {
            inflate(ctx, &mut s, comp);
        }
        kids.push(s);
    }
    crate::formats::adopt(ctx, data, &mut kids);
    data.children = kids;
}

/// Decompresses `node` (LZMA or LZ4) into a `decompressed` child whose content is parsed as a file; a
/// failure or an exhausted budget is a note on `node`, which stays compared by its compressed bytes.
fn inflate(ctx: &Ctx, node: &mut Region, comp: u32) {
    let limit = ctx.decompress_limit();
    let out = match comp {
        1 => decompress::lzma_metered(node.bytes(), limit, ctx),
        2 => decompress::read_metered(lz4_flex::frame::FrameDecoder::new(node.bytes()), limit, ctx),
        c => Err(DError::Failed(format!("unknown CBFS compression {c}"))),
    };
    let algo = compression_name(comp);
    let e = match out {
        Ok(v) => {
            let len = v.len() as u64;
            let d = Arc::new(Data::Owned(v));
            let mut child = Region::new(RegionKind::Blob, "decompressed", &d, 0, len)
                .with_attr("compression", algo);
            crate::formats::descend_file(ctx, &mut child);
            node.children = vec![child];
            return;
        }
        Err(DError::Failed(d)) => ParseError::Decompress {
            offset: node.offset,
            detail: format!("{algo}: {d}"),
        },
        Err(DError::Limit(n)) => ParseError::Limit {
            what: format!("{algo} data would decompress to more than {n} bytes"),
            offset: node.offset,
        },
        Err(e @ DError::Budget) => ParseError::Limit {
            what: format!("{algo}: {e}"),
            offset: node.offset,
        },
    };
    node.notes.push(crate::formats::unparsed_note("cbfs", &e));
}

/// One file for [`build`]: name, type, compression attribute (algorithm, decompressed size), data.
#[cfg(any(test, feature = "fixtures"))]
pub type BuildFile<'a> = (&'a str, u32, Option<(u32, u32)>, &'a [u8]);

/// A CBFS writer for tests and fuzz seeds: `(name, type, compression attribute, data)` per file, each at
/// a 64-byte boundary, then one empty (`null`) file up to `size` bytes.
#[cfg(any(test, feature = "fixtures"))]
#[allow(clippy::arithmetic_side_effects)] // test fixtures of small, known sizes
pub fn build(files: &[BuildFile], size: usize) -> Vec<u8> {
    fn head(out: &mut Vec<u8>, name: &str, typ: u32, comp: Option<(u32, u32)>, len: usize) {
        let name_len = (name.len() + 1).next_multiple_of(16);
        let attrs = if comp.is_some() { 16 } else { 0 };
        let data_off = 24 + name_len + attrs;
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.extend_from_slice(&typ.to_be_bytes());
        let attr_off = if comp.is_some() { 24 + name_len } else { 0 };
        out.extend_from_slice(&(attr_off as u32).to_be_bytes());
        out.extend_from_slice(&(data_off as u32).to_be_bytes());
        let mut n = name.as_bytes().to_vec();
        n.resize(name_len, 0);
        out.extend_from_slice(&n);
        if let Some((algo, full)) = comp {
            out.extend_from_slice(&ATTR_COMPRESSION.to_be_bytes());
            out.extend_from_slice(&16u32.to_be_bytes());
            out.extend_from_slice(&algo.to_be_bytes());
            out.extend_from_slice(&full.to_be_bytes());
        }
    }
    let mut out = Vec::new();
    for (name, typ, comp, data) in files {
        head(&mut out, name, *typ, *comp, data.len());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(ALIGN as usize), 0xFF);
    }
    let rest = size.saturating_sub(out.len()).saturating_sub(24 + 16);
    head(&mut out, "", TYPE_NULL, None, rest);
    out.resize(size.max(out.len()), 0xFF);
    out
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {
    use super::*;
    use crate::formats::ParseOptions;

    fn lzma(data: &[u8]) -> Vec<u8> {
        let opts = liblzma::stream::LzmaOptions::new_preset(6).unwrap();
        let s = liblzma::stream::Stream::new_lzma_encoder(&opts).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut liblzma::read::XzEncoder::new_stream(data, s), &mut out)
            .unwrap();
        out
    }

    pub(crate) fn sample() -> Vec<u8> {
        let text = b"coreboot ".repeat(200);
        let z = lzma(&text);
        let mut payload = Vec::new();
        for (t, off, len) in [(*b"CODE", 56u32, 4u32), (*b"ENTR", 0, 0)] {
            payload.extend_from_slice(&t);
            payload.extend_from_slice(&0u32.to_be_bytes());
            payload.extend_from_slice(&off.to_be_bytes());
            payload.extend_from_slice(&0x1000u64.to_be_bytes());
            payload.extend_from_slice(&len.to_be_bytes());
            payload.extend_from_slice(&len.to_be_bytes());
        }
        payload.extend_from_slice(&[0x90; 4]);
        build(
            &[
                ("raw/plain", 0x50, None, b"plain data"),
                ("raw/lzma", 0x50, Some((1, text.len() as u32)), &z),
                ("fallback/payload", TYPE_SELF, None, &payload),
            ],
            0x1000,
        )
    }

    #[test]
    fn files_attributes_and_payloads() {
        let data = std::sync::Arc::new(crate::input::Data::Owned(sample()));
        let opts = ParseOptions {
            format: Some("cbfs".into()),
            ..ParseOptions::default()
        };
        let t = crate::formats::parse_image(data, &opts);
        let files: Vec<&Region> = t
            .children
            .iter()
            .filter(|c| c.kind != RegionKind::Padding)
            .collect();
        let names: Vec<&str> = files.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["raw/plain", "raw/lzma", "fallback/payload", "empty"]
        );
        assert!(t.children.iter().all(|c| c.notes.is_empty()));
        // The gaps up to each file's 64-byte boundary are blank padding.
        assert!(t
            .children
            .iter()
            .all(|c| c.kind != RegionKind::Padding || c.policy == crate::region::Policy::Blank));
        let z = files[1];
        assert_eq!(z.attrs["compression"], "LZMA");
        assert_eq!(z.children[1].children[0].size, 1800);
        let p = &files[2].children[1];
        let segs: Vec<&str> = p.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(segs, ["segments", "segment[CODE]"]);
        assert_eq!(files[3].kind, RegionKind::FreeSpace);
        // A header whose data runs past the end: the walk stops with a note, the rest is padding.
        let mut bad = sample();
        bad[0x48..0x4C].copy_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
        let data = std::sync::Arc::new(crate::input::Data::Owned(bad));
        let t = crate::formats::parse_image(data, &opts);
        assert_eq!(t.notes[0].code.as_str(), "unparsed");
        crate::formats::util::mutations_stay_in_bounds(&sample(), "cbfs", 2000);
    }
}
