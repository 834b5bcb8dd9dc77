//! Supermicro (ATEN) BMC firmware images: X8/X9 boards (Winbond/Nuvoton WPCM450) and X10/X11 boards
//! (ASPEED AST2400/AST2500), the layout that Supermicro's `.bin` releases and flash dumps share.
//!
//! * **X8/X9 image footers.** The 64 KiB bootloader, then images, each described by a 64-byte footer in the
//!   last bytes of a 64 KiB block: 12 bytes of padding, then (little-endian) image number, base address
//!   (flash at 0x40000000 on the WPCM450), length, load address, exec address, name (16 bytes), image
//!   checksum, signature `9F FF FF A0`, type (bit 0 active, 1 copy to RAM, 2 exec, 3 file system,
//!   4 compressed) and a footer checksum over the 48 bytes before it. Both checksums are the bootloader's:
//!   0xFFFFFFFF minus every little-endian word with end-around borrow ([`checksum`]).
//! * **X10/X11 index.** A text block at 0x1FC0000, one line per image: `[img]: START LENGTH CRC32 NAME`
//!   (hexadecimal), and an NVRAM area at 0x100000..0x400000 (per-machine).
//! * **`ATENs_FW` global footer.** Version 1: major, minor, a checksum; version 2: major, minor, 0x71,
//!   CRC-32 of the images' CRC-32s (little-endian words, by image number), 0x17; version 3 (X10): major,
//!   minor, the first four hexadecimal digits of the root file system's CRC-32 and length, 0x71, the same
//!   for the web file system, 0x17.
//!
//! Tree: `bootloader` (X9), `image[NAME]` partitions (content parsed: cramfs root and web file systems,
//! the kernel as a ZIP archive whose members are listed with their bytes, or any content format),
//! `footer[NAME]` headers, `img-index` and `nvram` (X10), `ATENs_FW`. Checks: every image checksum
//! (`smc-image-checksum`), every footer checksum and the global footer's CRC or its copies of the index's
//! values (`smc-footer-checksum`). A version 1 global footer's checksum is not checked (its rule is not
//! published); the attribute `checksum-verified` says so. The layout follows devicenull's
//! `ipmi_firmware_tools` (README, `ipmifw/*.py`), checked on the parts of Supermicro's X9 SDK (docs/bmc.md).
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::decompress;
use crate::formats::fs::tree::{Added, Kind, Tree};
use crate::formats::util::{le16, le32, slice};
use crate::formats::{Confidence, Ctx, Parsed};
use crate::region::{Note, Policy, Region, RegionKind};

/// Where the WPCM450 maps the flash: footers' base addresses are above it.
pub const FLASH_BASE: u64 = 0x4000_0000;
/// The footer signature as stored.
pub const SIGNATURE: [u8; 4] = [0x9F, 0xFF, 0xFF, 0xA0];
pub const GLOBAL: &[u8; 8] = b"ATENs_FW";
/// The X10/X11 image index.
pub const X10_INDEX: u64 = 0x1FC_0000;
/// The X10/X11 NVRAM area.
pub const X10_NVRAM: (u64, u64) = (0x10_0000, 0x40_0000);
/// The WPCM450 bootloader's block.
pub const BOOTLOADER: u64 = 0x1_0000;
/// Most images read.
pub const MAX_IMAGES: usize = 64;
/// Most ZIP members listed.
pub const MAX_MEMBERS: usize = 4096;

/// The bootloader's checksum: 0xFFFFFFFF minus each byte shifted to its place in a little-endian word,
/// a borrow wrapping around (ones' complement style).
pub fn checksum(data: &[u8]) -> u32 {
    let mut c: u32 = 0xFFFF_FFFF;
    for (i, &byte) in data.iter().enumerate() {
        let v = u32::from(byte) << ((i & 3) << 3);
        c = if v > c {
            c.wrapping_sub(v).wrapping_sub(1)
        } else {
            c.wrapping_sub(v)
        };
    }
    c
}

/// One X9 image footer (at `at`, the start of its 64-byte chunk).
#[derive(Debug, Clone)]
pub struct Footer {
    pub at: u64,
    pub number: u32,
    pub base: u32,
    pub length: u32,
    pub load: u32,
    pub exec: u32,
    pub name: String,
    pub image_checksum: u32,
    pub typ: u32,
    pub footer_checksum: u32,
    pub footer_ok: bool,
}

impl Footer {
    /// The image's offset in the flash.
    pub fn start(&self) -> u64 {
        let b = u64::from(self.base);
        if b >= FLASH_BASE {
            b.saturating_sub(FLASH_BASE)
        } else {
            b
        }
    }
}

fn clean_name(raw: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(raw.split(|&c| c == 0).next().unwrap_or(&[]))
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '/' && c != '[' && c != ']' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "unnamed".into()
    } else {
        s
    }
}

/// Every X9 footer: 64-byte chunks with the signature at byte 52, as the SDK's tools look for them.
/// The signature is searched for (SIMD `memmem`) and only its occurrences at byte 52 of a 64-byte chunk
/// are read: the same footers as reading every chunk, without touching each one.
pub fn footers(b: &[u8]) -> Vec<Footer> {
    let mut out = Vec::new();
    for at in memchr::memmem::find_iter(b, &SIGNATURE) {
        if out.len() >= MAX_IMAGES {
            break;
        }
        let Some(c) = at.checked_sub(52).filter(|c| c % 64 == 0) else {
            continue;
        };
        if let Some(f) = footer_at(b, c as u64) {
            out.push(f);
        }
    }
    out
}

fn footer_at(b: &[u8], c: u64) -> Option<Footer> {
    let f = slice(b, c.saturating_add(12), 52, "footer").ok()?;
    if f.get(40..44)? != SIGNATURE {
        return None;
    }
    let w = |o: u64| le32(f, o, "footer").ok();
    let length = w(8)?;
    let footer_checksum = w(48)?;
    Some(Footer {
        at: c,
        number: w(0)?,
        base: w(4)?,
        length,
        load: w(12)?,
        exec: w(16)?,
        name: clean_name(f.get(20..36)?),
        image_checksum: w(36)?,
        typ: w(44)?,
        footer_checksum,
        footer_ok: checksum(f.get(..48)?) == footer_checksum,
    })
}

/// One X10 index line.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub start: u64,
    pub length: u64,
    pub crc: u32,
    pub name: String,
}

/// The X10/X11 `[img]:` index at 0x1FC0000: its lines and the length of its text.
pub fn index(b: &[u8]) -> Option<(Vec<IndexEntry>, u64)> {
    let rest = b.get(X10_INDEX as usize..)?;
    let text = rest.get(..rest.len().min(0x1_0000))?;
    if !text.starts_with(b"[img]: ") {
        return None;
    }
    let end = text
        .iter()
        .position(|&c| c == 0 || c == 0xFF)
        .unwrap_or(text.len());
    let s = String::from_utf8_lossy(text.get(..end)?);
    let mut out = Vec::new();
    for part in s.split("[img]: ").skip(1) {
        let mut it = part.split_whitespace();
        let (Some(a), Some(l), Some(c), Some(n)) = (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let (Ok(start), Ok(length), Ok(crc)) = (
            u64::from_str_radix(a, 16),
            u64::from_str_radix(l, 16),
            u32::from_str_radix(c, 16),
        ) else {
            continue;
        };
        if out.len() < MAX_IMAGES {
            out.push(IndexEntry {
                start,
                length,
                crc,
                name: clean_name(n.as_bytes()),
            });
        }
    }
    (!out.is_empty()).then_some((out, end as u64))
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    if index(b).is_some() {
        return Some(Confidence::High);
    }
    // An X9 image: at least one footer whose own checksum holds and whose image lies in the file.
    let len = b.len() as u64;
    footers(b)
        .iter()
        .any(|f| {
            f.footer_ok
                && f.start()
                    .checked_add(u64::from(f.length))
                    .is_some_and(|e| e <= len)
        })
        .then_some(Confidence::High)
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "supermicro",
    description:
        "Supermicro BMC firmware (X9 WPCM450 image footers, X10/X11 [img] index, ATENs_FW)",
    probe,
    parse,
    scope: crate::formats::Scope::Flash,
    component: Some("bmc"),
    policy: None,
    not_inside: &["supermicro", "bmc"],
    payloads: &[],
    package: None,
};

/// A part found: (offset, size, node).
type Part = (u64, u64, Region);

fn image_node(node: &Region, start: u64, len: u64, name: &str) -> Region {
    Region::new(
        RegionKind::Partition,
        format!("image[{name}]"),
        &node.data,
        node.offset.saturating_add(start),
        len,
    )
    .with_attr("layout-source", "supermicro")
}

/// The `supermicro` parser.
pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let at = node.offset;
    let len = b.len() as u64;
    let mut parts: Vec<Part> = Vec::new();
    let mut notes: Vec<Note> = Vec::new();
    let mut crcs: Vec<(u32, u32, String)> = Vec::new();
    let mut by_number: HashMap<u32, (u64, u32)> = HashMap::new();
    let x10 = index(b);
    let generation = if x10.is_some() { "x10" } else { "x9" };
    if let Some((entries, text_len)) = &x10 {
        parts.push((
            X10_INDEX,
            *text_len,
            Region::new(
                RegionKind::Header,
                "img-index",
                &node.data,
                at.saturating_add(X10_INDEX),
                *text_len,
            ),
        ));
        if len >= X10_NVRAM.1 {
            parts.push((
                X10_NVRAM.0,
                X10_NVRAM.1.saturating_sub(X10_NVRAM.0),
                Region::new(
                    RegionKind::Partition,
                    "nvram",
                    &node.data,
                    at.saturating_add(X10_NVRAM.0),
                    X10_NVRAM.1.saturating_sub(X10_NVRAM.0),
                )
                .with_policy(Policy::Mutable),
            ));
        }
        for (n, e) in entries.iter().enumerate() {
            let Some(bytes) = e
                .start
                .checked_add(e.length)
                .filter(|&x| x <= len)
                .and_then(|_| slice(b, e.start, e.length, "image").ok())
            else {
                notes.push(Note::new(
                    Code::PartitionOutOfBounds,
                    format!(
                        "index image `{}` at {:#x}+{:#x} is outside the image",
                        e.name, e.start, e.length
                    ),
                    Some(at.saturating_add(X10_INDEX)),
                ));
                continue;
            };
            let crc = crc32fast::hash(bytes);
            let mut img = image_node(node, e.start, e.length, &e.name)
                .with_attr("image-number", n.saturating_add(1))
                .with_attr("checksum", format!("{:#010x}", e.crc))
                .with_attr("checksum-kind", "crc32");
            if crc != e.crc {
                img.notes.push(Note::new(
                    Code::SmcImageChecksum,
                    format!(
                        "image `{}`: CRC-32 {crc:#010x}, the index says {:#010x}",
                        e.name, e.crc
                    ),
                    Some(img.offset),
                ));
            }
            by_number.insert(
                u32::try_from(n.saturating_add(1)).unwrap_or(0),
                (e.length, e.crc),
            );
            crcs.push((u32::try_from(n).unwrap_or(0), crc, e.name.clone()));
            parts.push((e.start, e.length, img));
        }
    } else {
        for f in footers(b) {
            let mut hdr = Region::new(
                RegionKind::Header,
                format!("footer[{}]", f.name),
                &node.data,
                at.saturating_add(f.at).saturating_add(12),
                52,
            )
            .with_attr("image-number", f.number)
            .with_attr("footer-checksum", format!("{:#010x}", f.footer_checksum));
            if !f.footer_ok {
                hdr.notes.push(Note::new(
                    Code::SmcFooterChecksum,
                    format!("the footer of image `{}` has a wrong checksum", f.name),
                    Some(hdr.offset),
                ));
            }
            parts.push((f.at.saturating_add(12), 52, hdr));
            let start = f.start();
            let length = u64::from(f.length);
            let Some(bytes) = start
                .checked_add(length)
                .filter(|&x| x <= len)
                .and_then(|_| slice(b, start, length, "image").ok())
            else {
                notes.push(Note::new(
                    Code::PartitionOutOfBounds,
                    format!(
                        "image `{}` at {start:#x}+{length:#x} is outside the image",
                        f.name
                    ),
                    Some(at.saturating_add(f.at)),
                ));
                continue;
            };
            let mut flags = Vec::new();
            for (bit, s) in [
                (1, "active"),
                (2, "copy2ram"),
                (4, "exec"),
                (8, "file"),
                (16, "compressed"),
            ] {
                if f.typ & bit != 0 {
                    flags.push(s);
                }
            }
            let mut img = image_node(node, start, length, &f.name)
                .with_attr("image-number", f.number)
                .with_attr("base-address", format!("{:#x}", f.base))
                .with_attr("load-address", format!("{:#x}", f.load))
                .with_attr("exec-address", format!("{:#x}", f.exec))
                .with_attr("type", flags.join(","))
                .with_attr("checksum", format!("{:#010x}", f.image_checksum))
                .with_attr("checksum-kind", "wpcm450");
            let computed = checksum(bytes);
            if computed != f.image_checksum {
                img.notes.push(Note::new(
                    Code::SmcImageChecksum,
                    format!(
                        "image `{}`: checksum {computed:#010x}, the footer says {:#010x}",
                        f.name, f.image_checksum
                    ),
                    Some(img.offset),
                ));
            }
            crcs.push((f.number, crc32fast::hash(bytes), f.name.clone()));
            parts.push((start, length, img));
        }
        // The bootloader: the first 64 KiB block when no image claims it.
        if !parts.iter().any(|(o, _, _)| *o < BOOTLOADER) && len >= BOOTLOADER {
            parts.push((
                0,
                BOOTLOADER,
                Region::new(
                    RegionKind::Partition,
                    "bootloader",
                    &node.data,
                    at,
                    BOOTLOADER,
                )
                .with_attr("layout-source", "supermicro"),
            ));
        }
    }
    // The global footer: outside every image when there is one such (X9), else the last one (X10, inside
    // the last image).
    let mut global_attrs: Vec<(&'static str, serde_json::Value)> = Vec::new();
    let hits: Vec<u64> = memchr::memmem::find_iter(b, GLOBAL)
        .take(256)
        .map(|x| x as u64)
        .collect();
    let inside = |o: u64| {
        parts
            .iter()
            .any(|(s, l, r)| r.kind == RegionKind::Partition && o >= *s && o < s.saturating_add(*l))
    };
    let pick = hits
        .iter()
        .rev()
        .copied()
        .find(|&o| !inside(o))
        .map(|o| (o, false))
        .or_else(|| hits.last().map(|&o| (o, true)));
    if let Some((g, within)) = pick {
        let tail = b
            .get(usize::try_from(g.saturating_add(8)).unwrap_or(usize::MAX)..)
            .unwrap_or(&[]);
        let tail = tail.get(..tail.len().min(20)).unwrap_or(&[]);
        let (version, glen) = if tail.len() >= 8 && tail[2] == 0x71 && tail[7] == 0x17 {
            (2, 16u64)
        } else if tail.len() >= 20 && tail[10] == 0x71 && tail[19] == 0x17 {
            (3, 28)
        } else {
            (1, 14)
        };
        let mut gnotes = Vec::new();
        let (maj, min) = (
            tail.first().copied().unwrap_or(0),
            tail.get(1).copied().unwrap_or(0),
        );
        global_attrs.push(("firmware-version", format!("{maj}.{min:02}").into()));
        global_attrs.push(("footer-version", version.into()));
        let mut verified = false;
        match version {
            2 => {
                let stored = le32(tail, 3, "ATENs_FW crc")?;
                let mut sorted = crcs.clone();
                sorted.sort_by_key(|c| c.0);
                let words: Vec<u8> = sorted.iter().flat_map(|c| c.1.to_le_bytes()).collect();
                let computed = crc32fast::hash(&words);
                verified = true;
                if computed != stored {
                    gnotes.push(Note::new(
                        Code::SmcFooterChecksum,
                        format!("ATENs_FW: CRC-32 of the image CRCs is {computed:#010x}, the footer says {stored:#010x}"),
                        Some(at.saturating_add(g)),
                    ));
                }
            }
            3 => {
                let hex4 = |v: u64| {
                    let s = format!("{v:x}");
                    s.chars().take(4).collect::<String>()
                };
                let field = |o: usize| {
                    String::from_utf8_lossy(tail.get(o..o.saturating_add(4)).unwrap_or(&[]))
                        .into_owned()
                };
                for (what, num, crc_at, len_at) in
                    [("root", 2u32, 2usize, 6usize), ("web", 4, 11, 15)]
                {
                    let Some(&(l, c)) = by_number.get(&num) else {
                        gnotes.push(Note::new(
                            Code::SmcFooterChecksum,
                            format!(
                                "ATENs_FW names a {what} file system, the index has no image {num}"
                            ),
                            Some(at.saturating_add(g)),
                        ));
                        continue;
                    };
                    if field(crc_at) != hex4(u64::from(c)) || field(len_at) != hex4(l) {
                        gnotes.push(Note::new(
                            Code::SmcFooterChecksum,
                            format!("ATENs_FW: the {what} file system's CRC or length disagrees with the index"),
                            Some(at.saturating_add(g)),
                        ));
                    }
                }
                verified = true;
            }
            _ => {}
        }
        global_attrs.push(("checksum-verified", verified.into()));
        if !within && g.saturating_add(glen) <= len {
            let mut r = Region::new(
                RegionKind::Header,
                "ATENs_FW",
                &node.data,
                at.saturating_add(g),
                glen,
            );
            for (k, v) in &global_attrs {
                r.attrs.insert((*k).into(), v.clone());
            }
            r.notes = gnotes;
            parts.push((g, glen, r));
        } else {
            notes.extend(gnotes);
        }
    } else {
        notes.push(Note::new(
            Code::Unparsed,
            "no ATENs_FW global footer: the image set's checksum could not be checked",
            Some(at),
        ));
    }
    // Children in flash order; an overlap is a note and the later part is left out.
    parts.sort_by_key(|p| (p.0, std::cmp::Reverse(p.1)));
    let mut children: Vec<Region> = Vec::new();
    let mut end = 0u64;
    for (o, l, mut r) in parts {
        if o < end {
            notes.push(Note::new(
                Code::PartitionOverlap,
                format!("`{}` at {o:#x} overlaps the part before it", r.name),
                Some(at.saturating_add(o)),
            ));
            continue;
        }
        end = o.saturating_add(l);
        if r.kind == RegionKind::Partition && r.policy != Policy::Mutable {
            if r.bytes().starts_with(b"PK\x03\x04") {
                r = r.with_attr("format", "zip");
                crate::formats::now_or_later(ctx, &mut r, "zip", zip_members);
            } else {
                crate::formats::descend(ctx, &mut r, Some(&FORMAT), None);
            }
        }
        children.push(r);
    }
    let mut p = Parsed::from(children)
        .attr("generation", generation)
        .attr("layout-source", "supermicro")
        .notes(notes);
    for (k, v) in global_attrs {
        p = p.attr(k, v);
    }
    Ok(p)
}

/// The members of a ZIP archive (the X9 kernel image), from its central directory: stored or deflated
/// bytes (inflated through the image's budget), each CRC-32 checked (`fs-checksum` when wrong).
pub fn zip_members(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let at = node.offset;
    let len = b.len() as u64;
    let from = len.saturating_sub(0x1_0000 + 22);
    let window = slice(b, from, len.saturating_sub(from), "zip")?;
    let eocd = memchr::memmem::rfind(window, b"PK\x05\x06")
        .map(|x| from.saturating_add(x as u64))
        .ok_or(ParseError::Invalid {
            what: "zip",
            offset: at,
            detail: "no end of central directory record".into(),
        })?;
    let count = le16(b, eocd.saturating_add(10), "zip entries")?;
    let mut cd = u64::from(le32(b, eocd.saturating_add(16), "zip central directory")?);
    let mut tree = Tree::new(ctx, at);
    tree.files_paid = true;
    let mut dirs: HashMap<String, usize> = HashMap::new();
    for _ in 0..usize::from(count).min(MAX_MEMBERS) {
        if slice(b, cd, 4, "zip central header")? != b"PK\x01\x02" {
            tree.note(Note::new(
                Code::Unparsed,
                format!("no central directory header at {cd:#x}"),
                Some(at.saturating_add(cd)),
            ));
            break;
        }
        let method = le16(b, cd.saturating_add(10), "zip method")?;
        let crc = le32(b, cd.saturating_add(16), "zip crc")?;
        let csize = u64::from(le32(b, cd.saturating_add(20), "zip csize")?);
        let usize_ = u64::from(le32(b, cd.saturating_add(24), "zip size")?);
        let nlen = u64::from(le16(b, cd.saturating_add(28), "zip name")?);
        let xlen = u64::from(le16(b, cd.saturating_add(30), "zip extra")?);
        let clen = u64::from(le16(b, cd.saturating_add(32), "zip comment")?);
        let local = u64::from(le32(b, cd.saturating_add(42), "zip offset")?);
        let name = slice(b, cd.saturating_add(46), nlen, "zip name")?.to_vec();
        cd = cd
            .saturating_add(46)
            .saturating_add(nlen)
            .saturating_add(xlen)
            .saturating_add(clen);
        // The data follows the local header.
        let lnlen = u64::from(le16(b, local.saturating_add(26), "zip local name")?);
        let lxlen = u64::from(le16(b, local.saturating_add(28), "zip local extra")?);
        let data_at = local
            .saturating_add(30)
            .saturating_add(lnlen)
            .saturating_add(lxlen);
        let (content, why) = match slice(b, data_at, csize, "zip data") {
            Err(e) => (Vec::new(), Some(e.to_string())),
            Ok(raw) => match method {
                0 => {
                    ctx.charge(raw.len() as u64, at)?;
                    (raw.to_vec(), None)
                }
                8 => {
                    let limit = usize_.min(ctx.decompress_limit());
                    match decompress::read_metered(
                        flate2::read::DeflateDecoder::new(raw),
                        limit,
                        ctx,
                    ) {
                        Ok(d) => (d, None),
                        Err(decompress::Error::Budget) => {
                            return Err(ParseError::Invalid {
                                what: "zip",
                                offset: at.saturating_add(data_at),
                                detail: "the image's decompression budget is spent".into(),
                            })
                        }
                        Err(e) => (Vec::new(), Some(e.to_string())),
                    }
                }
                m => (
                    Vec::new(),
                    Some(format!("compression method {m} is not read")),
                ),
            },
        };
        // Directories along the member's path.
        let segs: Vec<&[u8]> = name
            .split(|&c| c == b'/')
            .filter(|s| !s.is_empty())
            .collect();
        let Some((last, parents)) = segs.split_last() else {
            continue;
        };
        let mut parent: Option<usize> = None;
        let mut key = String::new();
        let mut full = false;
        for s in parents {
            key.push('/');
            key.push_str(&String::from_utf8_lossy(s));
            if let Some(&i) = dirs.get(&key) {
                parent = Some(i);
                continue;
            }
            match tree.add(parent, s, Kind::Dir, 0o40755, 0, 0, &[])? {
                Added::Yes(i) => {
                    dirs.insert(key.clone(), i);
                    parent = Some(i);
                }
                Added::Skipped => break,
                Added::Full => {
                    full = true;
                    break;
                }
            }
        }
        if full {
            break;
        }
        if name.ends_with(b"/") {
            let _ = tree.add(parent, last, Kind::Dir, 0o40755, 0, 0, &[])?;
            continue;
        }
        match tree.add(parent, last, Kind::File, 0o100644, 0, 0, &content)? {
            Added::Yes(i) => {
                let p = tree.path(i).to_string();
                tree.entry_attr(
                    i,
                    "compression",
                    if method == 8 { "deflate" } else { "stored" },
                );
                tree.entry_attr(i, "crc32", format!("{crc:#010x}"));
                if let Some(w) = why {
                    tree.entry_note(
                        i,
                        Note::new(
                            Code::DecompressFailed,
                            format!("{p}: {w}"),
                            Some(at.saturating_add(data_at)),
                        ),
                    );
                } else if crc32fast::hash(&content) != crc || content.len() as u64 != usize_ {
                    tree.entry_note(
                        i,
                        Note::new(
                            Code::FsChecksum,
                            format!("{p}: the member's CRC-32 or size disagrees with the archive's directory"),
                            Some(at.saturating_add(data_at)),
                        ),
                    );
                }
            }
            Added::Skipped => {}
            Added::Full => break,
        }
    }
    tree.finish()
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // test code: fixed-size fixtures
mod tests {
    use super::*;

    /// The checksum as `ipmi_firmware_tools` writes it (its Python loop), on a few short inputs.
    #[test]
    fn checksum_borrows_around() {
        assert_eq!(checksum(&[]), 0xFFFF_FFFF);
        assert_eq!(checksum(&[1]), 0xFFFF_FFFE);
        // 0xFFFFFFFF - 0xFFFFFFFF = 0, then 0 - 1 wraps to 0xFFFFFFFF and borrows one.
        assert_eq!(checksum(&[0xFF, 0xFF, 0xFF, 0xFF, 1]), 0xFFFF_FFFE);
    }
}
