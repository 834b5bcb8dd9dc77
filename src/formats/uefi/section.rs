//! FFS sections: `EFI_COMMON_SECTION_HEADER` (`size[3]`, type) and `EFI_COMMON_SECTION_HEADER2` (size
//! 0xFFFFFF, then u32 extended size), 4-byte aligned. Encapsulation sections (compression, GUID-defined,
//! FV image) hold more sections or a volume; compressed ones are decompressed within the image's budget,
//! or left with an expander when parsing lazily.
#![deny(clippy::arithmetic_side_effects)]

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::decompress::{self, Error as DError};
use crate::formats::util::{guid, le16, le24, le32, slice};
use crate::formats::{self, Ctx, Parsed};
use crate::input::Data;
use crate::region::{Note, Region, RegionKind};

use super::{fv, guids};

/// `EFI_GUIDED_SECTION_PROCESSING_REQUIRED`.
pub const GUIDED_PROCESSING_REQUIRED: u16 = 0x01;

/// Path segment (and `type` attribute) of a section type.
pub fn type_name(t: u8) -> &'static str {
    match t {
        0x01 => "compressed",
        0x02 => "guided",
        0x03 => "disposable",
        0x10 => "pe32",
        0x11 => "pic",
        0x12 => "te",
        0x13 => "depex",
        0x14 => "version",
        0x15 => "ui",
        0x16 => "compat16",
        0x17 => "fv-image",
        0x18 => "freeform",
        0x19 => "raw",
        0x1B => "pei-depex",
        0x1C => "mm-depex",
        _ => "unknown",
    }
}

/// Parsed section header.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub typ: u8,
    pub size: u64,
    /// Common header size (4 or 8).
    pub hsize: u64,
}

/// Reads a section header at `off` of `b`.
// Reviewed: `off` was just read (le24) inside `b`, so `off + 3` and `off + 4` fit.
#[allow(clippy::arithmetic_side_effects)]
pub fn header(b: &[u8], off: u64) -> Result<Header, ParseError> {
    let size = u64::from(le24(b, off, "section size")?);
    let typ = slice(b, off + 3, 1, "section type")?[0];
    let (size, hsize) = if size == 0xFF_FFFF {
        (u64::from(le32(b, off + 4, "extended section size")?), 8)
    } else {
        (size, 4)
    };
    if size < hsize {
        return Err(ParseError::Invalid {
            what: "section size",
            offset: off,
            detail: format!("{size} bytes is smaller than its {hsize}-byte header"),
        });
    }
    Ok(Header { typ, size, hsize })
}

fn ucs2(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// A UI name made safe for a path segment.
fn path_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '/' | '[' | ']' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .take(128)
        .collect()
}

/// Parses the sections in `data[start..start+len]`; returns them and the UI name found among them.
// Reviewed: `pos <= len` (aligned up by at most 3 from a position inside the buffer) and a section is taken only when `pos + size <= len` (size >= its 4-byte header: progress); `start + pos` is inside the data.
#[allow(clippy::arithmetic_side_effects)]
pub fn sections(
    ctx: &Ctx,
    data: &Arc<Data>,
    start: u64,
    len: u64,
) -> (Vec<Region>, Option<String>) {
    let mut out = Vec::new();
    let mut ui = None;
    let Ok(b) = slice(data, start, len, "sections") else {
        return (out, ui);
    };
    let mut pos = 0u64;
    loop {
        pos = (pos + 3) & !3;
        if pos + 4 > len {
            break;
        }
        let h = match header(b, pos) {
            Ok(h) if pos + h.size <= len => h,
            Ok(h) => {
                out.push(unparsed(
                    data,
                    start + pos,
                    len - pos,
                    ParseError::Invalid {
                        what: "section size",
                        offset: start + pos,
                        detail: format!("{:#x} bytes runs past the end of its file", h.size),
                    },
                ));
                break;
            }
            Err(e) => {
                out.push(unparsed(data, start + pos, len - pos, e));
                break;
            }
        };
        if !ctx.take_region() {
            out.push(ctx.limit_node(data, start + pos, len - pos, "section"));
            break;
        }
        let s = section(ctx, data, start + pos, h);
        if s.attr_str("type") == Some("ui") && ui.is_none() {
            ui = s
                .attr_str("ui-name")
                .map(path_safe)
                .filter(|s| !s.is_empty());
        }
        out.push(s);
        pos += h.size;
    }
    (out, ui)
}

fn unparsed(data: &Arc<Data>, off: u64, len: u64, e: ParseError) -> Region {
    let mut r = Region::new(RegionKind::Blob, "unparsed", data, off, len);
    r.notes.push(formats::unparsed_note("section", &e));
    r
}

/// Builds the node of one section (whose header was read) and its children.
pub fn section(ctx: &Ctx, data: &Arc<Data>, off: u64, h: Header) -> Region {
    let tname = type_name(h.typ);
    let mut s = Region::new(RegionKind::Section, tname, data, off, h.size)
        .with_attr("type", tname)
        .with_attr("section-type", format!("{:#04x}", h.typ));
    let b = slice(data, off, h.size, "section").unwrap_or(&[]);
    let body = b.get(h.hsize as usize..).unwrap_or(&[]);
    match h.typ {
        0x10..=0x12 | 0x16 | 0x15 | 0x14 | 0x18 => leaf(&mut s, h.typ, body),
        0x17 => fv_image(ctx, data, off, h, body, &mut s),
        0x01 => compression(ctx, data, off, h, body, &mut s),
        0x02 => guid_defined(ctx, data, off, h, b, &mut s),
        0x19 => raw(ctx, data, off, h, body, &mut s),
        _ => {}
    }
    s
}

/// A raw section (`EFI_SECTION_RAW`): a PCI option ROM (as vendors store a NIC's or GPU's ROM in a
/// freeform file) or an Intel STM in it is parsed as one ([`embedded`]); other raw data stays a leaf.
fn raw(ctx: &Ctx, data: &Arc<Data>, off: u64, h: Header, body: &[u8], s: &mut Region) {
    let body_off = off.saturating_add(h.hsize);
    if let Some(rom) = embedded(ctx, data, body_off, body) {
        let mut kids = vec![
            Region::new(RegionKind::Header, "header", data, off, h.hsize),
            rom,
        ];
        formats::adopt(ctx, s, &mut kids);
        s.children = kids;
    }
}

/// The node over `body` (at `at` of `data`) when it holds an image that firmware volumes carry in raw
/// files and raw sections, parsed by its own format: a PCI option ROM (0x55AA, PCIR: `optionrom`) or an
/// Intel SMI Transfer Monitor (its `STM_HEADER`: `stm`, as edk2 platforms ship `StmBin` in a raw file).
pub fn embedded(ctx: &Ctx, data: &Arc<Data>, at: u64, body: &[u8]) -> Option<Region> {
    let (name, format) = if formats::pci::probe(body).is_some() {
        ("optionrom", &formats::pci::FORMAT)
    } else if formats::intel::stm::probe(body).is_some() {
        ("stm", &formats::intel::stm::FORMAT)
    } else {
        return None;
    };
    let mut r = Region::new(RegionKind::Blob, name, data, at, body.len() as u64);
    formats::descend(ctx, &mut r, None, Some(format));
    Some(r)
}

/// Attributes of a leaf section (PI spec vol. 3, 3.2.5): PE32/PIC/TE and COMPATIBILITY16 body digests,
/// the UI name, the version string, the freeform subtype GUID.
fn leaf(s: &mut Region, typ: u8, body: &[u8]) {
    match typ {
        0x10..=0x12 => {
            for (k, v) in crate::formats::pe::describe(body, typ == 0x12) {
                s.attrs.insert(k.into(), v);
            }
            // The digest CHIPSEC's `tools.uefi.scan_image` allowlists key on (body without header).
            s.attrs.insert(
                "body-sha256".into(),
                hex::encode(Sha256::digest(body)).into(),
            );
        }
        0x16 => {
            s.attrs.insert(
                "body-sha256".into(),
                hex::encode(Sha256::digest(body)).into(),
            );
        }
        0x15 => {
            let name = ucs2(body);
            s.attrs.insert("ui-name".into(), name.into());
        }
        0x14 => {
            if let Ok(n) = le16(body, 0, "build number") {
                s.attrs.insert("build-number".into(), n.into());
                s.attrs
                    .insert("version".into(), ucs2(body.get(2..).unwrap_or(&[])).into());
            }
        }
        0x18 if body.len() >= 16 => {
            s.attrs
                .insert("subtype-guid".into(), guid(&body[..16]).into());
        }
        _ => {}
    }
}

/// Children of an `EFI_SECTION_FIRMWARE_VOLUME_IMAGE` (PI spec vol. 3, 3.2.5): its header and the volume.
// Reviewed: `off + h.hsize` lies inside the data and `h.hsize <= h.size` (header() and sections() checked both).
#[allow(clippy::arithmetic_side_effects)]
fn fv_image(ctx: &Ctx, data: &Arc<Data>, off: u64, h: Header, body: &[u8], s: &mut Region) {
    let body_off = off + h.hsize;
    let hdr = Region::new(RegionKind::Header, "header", data, off, h.hsize);
    let vlen = h.size - h.hsize;
    let mut kids = vec![hdr];
    match ctx.deeper(off) {
        Ok(c) => match fv::header_ok(body) {
            Some((fv_len, _)) => {
                let (l, t) = if fv_len > vlen {
                    (vlen, true)
                } else {
                    (fv_len, false)
                };
                kids.push(fv::volume(&c, data, body_off, l, t));
            }
            None => s.notes.push(Note::new(
                Code::Unparsed,
                "FV image section does not hold a valid volume header",
                Some(body_off),
            )),
        },
        Err(e) => s.notes.push(formats::unparsed_note("section", &e)),
    }
    formats::adopt(ctx, s, &mut kids);
    s.children = kids;
}

/// An `EFI_COMPRESSION_SECTION` (PI spec vol. 3, 3.2.5): `UncompressedLength`, `CompressionType`; the
/// sections inside when stored uncompressed, else decompressed now or later by [`expand`].
// Reviewed: `off + h.hsize` lies inside the data and `h.hsize + 5` is a small header size; the body is sized with saturating_sub.
#[allow(clippy::arithmetic_side_effects)]
fn compression(ctx: &Ctx, data: &Arc<Data>, off: u64, h: Header, body: &[u8], s: &mut Region) {
    let body_off = off + h.hsize;
    // EFI_COMPRESSION_SECTION: u32 UncompressedLength, u8 CompressionType.
    let (Ok(ulen), Ok(ct)) = (
        le32(body, 0, "uncompressed length"),
        slice(body, 4, 1, "type"),
    ) else {
        s.notes.push(Note::new(
            Code::Unparsed,
            "compression section header truncated",
            Some(off),
        ));
        return;
    };
    let ct = ct[0];
    s.attrs.insert("uncompressed-size".into(), ulen.into());
    s.attrs.insert(
        "compression".into(),
        match ct {
            0 => "none",
            1 => "efi-standard",
            2 => "lzma",
            _ => "unknown",
        }
        .into(),
    );
    if ct == 0 {
        let hdr = Region::new(RegionKind::Header, "header", data, off, h.hsize + 5);
        let (secs, _) = match ctx.deeper(off) {
            // The 5-byte header was read from the body: `h.size - h.hsize >= 5`.
            Ok(c) => sections(
                &c,
                data,
                body_off.saturating_add(5),
                h.size.saturating_sub(h.hsize).saturating_sub(5),
            ),

            Err(e) => {
                s.notes.push(formats::unparsed_note("section", &e));
                (vec![], None)
            }
        };
        let mut kids = vec![hdr];
        kids.extend(secs);
        formats::adopt(ctx, s, &mut kids);
        s.children = kids;
    } else {
        formats::now_or_later(ctx, s, "section", expand);
    }
}

/// An `EFI_GUID_DEFINED_SECTION` (PI spec vol. 3, 3.2.5): `SectionDefinitionGuid`, `DataOffset`,
/// `Attributes`; CRC32 checked, sections inside parsed when no processing is required, known compressions
/// decompressed now or later by [`expand`].
// Reviewed: `off + h.size` lies inside the data (sections() checked it); the data offset `doff` is compared with `h.hsize + 20` and `h.size` before `h.size - doff` and `off + doff`; `off + h.hsize + 16/20` are header fields inside the section.
#[allow(clippy::arithmetic_side_effects)]
fn guid_defined(ctx: &Ctx, data: &Arc<Data>, off: u64, h: Header, b: &[u8], s: &mut Region) {
    let body = b.get(h.hsize as usize..).unwrap_or(&[]);
    // EFI_GUID_DEFINED_SECTION: GUID, u16 DataOffset, u16 Attributes.
    let (Ok(g), Ok(doff), Ok(attr)) = (
        slice(body, 0, 16, "section GUID"),
        le16(body, 16, "data offset"),
        le16(body, 18, "attributes"),
    ) else {
        s.notes.push(Note::new(
            Code::Unparsed,
            "GUID-defined section header truncated",
            Some(off),
        ));
        return;
    };
    let g = guid(g);
    s.name = format!("guided[{g}]");
    s.attrs.insert("guid".into(), g.clone().into());
    if let Some(n) = guids::name(&g) {
        s.attrs.insert("guid-name".into(), n.into());
    }
    let doff = u64::from(doff);
    if doff < h.hsize + 20 || doff > h.size {
        s.notes.push(Note::new(
            Code::Unparsed,
            format!("GUID-defined section data offset {doff:#x} is out of bounds"),
            Some(off + h.hsize + 16),
        ));
        return;
    }
    let known = [
        guids::LZMA,
        guids::LZMAF86,
        guids::TIANO,
        guids::BROTLI,
        guids::GZIP,
    ];
    if attr & GUIDED_PROCESSING_REQUIRED == 0 || g == guids::CRC32 {
        if g == guids::CRC32 {
            if let Ok(want) = le32(body, 20, "CRC32") {
                let mut c = flate2::Crc::new();
                c.update(b.get(doff as usize..).unwrap_or(&[]));
                if c.sum() != want {
                    s.notes.push(Note::new(
                        Code::GuidedSectionCrc32,
                        format!("CRC32 is {want:#010x}, data gives {:#010x}", c.sum()),
                        Some(off + h.hsize + 20),
                    ));
                }
            }
        }
        let hdr = Region::new(RegionKind::Header, "header", data, off, doff);
        let (secs, _) = match ctx.deeper(off) {
            Ok(c) => sections(&c, data, off + doff, h.size - doff),
            Err(e) => {
                s.notes.push(formats::unparsed_note("section", &e));
                (vec![], None)
            }
        };
        let mut kids = vec![hdr];
        kids.extend(secs);
        formats::adopt(ctx, s, &mut kids);
        s.children = kids;
    } else if known.contains(&g.as_str()) {
        formats::now_or_later(ctx, s, "section", expand);
    }
}

/// Decompresses a compression or GUID-defined section and parses the sections inside. Used eagerly and as
/// the node's expander in lazy mode.
// Reviewed: header fields at small constant offsets; sizes subtract with saturating_sub.
#[allow(clippy::arithmetic_side_effects)]
pub fn expand(ctx: &Ctx, s: &Region) -> Result<Parsed, ParseError> {
    let b = s.bytes();
    let h = header(b, 0)?;
    let (payload, algo): (&[u8], &str) = match h.typ {
        0x01 => {
            let ct = slice(b, h.hsize + 4, 1, "compression type")?[0];
            let p = slice(
                b,
                h.hsize + 5,
                h.size.saturating_sub(h.hsize + 5),
                "compressed data",
            )?;
            match ct {
                1 => (p, "efi"),
                2 => (p, "lzma"),
                _ => {
                    return Err(ParseError::Invalid {
                        what: "compression type",
                        offset: s.offset + h.hsize + 4,
                        detail: format!("unknown type {ct}"),
                    })
                }
            }
        }
        0x02 => {
            let g = guid(slice(b, h.hsize, 16, "section GUID")?);
            let doff = u64::from(le16(b, h.hsize + 16, "data offset")?);
            let p = slice(b, doff, h.size.saturating_sub(doff), "guided data")?;
            let a = match g.as_str() {
                guids::LZMA => "lzma",
                guids::LZMAF86 => "lzmaf86",
                guids::TIANO => "tiano",
                guids::BROTLI => "brotli",
                guids::GZIP => "gzip",
                _ => {
                    return Err(ParseError::Invalid {
                        what: "GUID-defined section",
                        offset: s.offset,
                        detail: format!("no decoder for {g}"),
                    })
                }
            };
            (p, a)
        }
        _ => {
            return Err(ParseError::Invalid {
                what: "section",
                offset: s.offset,
                detail: "not a compressed section".into(),
            })
        }
    };
    let c = ctx.deeper(s.offset)?;
    // Every attempt pays what it produced to the image's budget as it decodes (ctx is the meter), so a
    // stream that fails or overruns the per-section cap still costs its output, and decoding stops once
    // the budget is spent (issue 15).
    let limit = ctx.decompress_limit();
    let spent = || ParseError::Limit {
        what: format!(
            "{algo}: the image's decompression budget of {} bytes is spent",
            ctx.opts.max_decompressed_total
        ),
        offset: s.offset,
    };
    if limit == 0 {
        return Err(spent());
    }
    let out = match decode_cached(ctx, algo, payload, limit) {
        Ok(v) => v,
        // A limit below the per-section cap is what was left of the image's budget.
        Err(DError::Limit(n)) if n < ctx.opts.max_decompressed_section => return Err(spent()),
        Err(DError::Limit(n)) => {
            return Err(ParseError::Limit {
                what: format!("{algo} stream would decompress to more than {n} bytes"),
                offset: s.offset,
            })
        }
        Err(DError::Budget) => return Err(spent()),
        Err(DError::Failed(d)) => {
            return Err(ParseError::Decompress {
                offset: s.offset,
                detail: d,
            })
        }
    };
    let len = out.len() as u64;
    let d = Arc::new(Data::Owned(out));
    let (kids, _) = sections(&c, &d, 0, len);
    Ok(kids.into())
}

fn decode(
    algo: &str,
    payload: &[u8],
    limit: u64,
    meter: &dyn decompress::Meter,
) -> Result<Vec<u8>, DError> {
    match algo {
        "lzma" => decompress::lzma_metered(payload, limit, meter),
        "lzmaf86" => decompress::lzma_f86_metered(payload, limit, meter),
        "brotli" => decompress::brotli_metered(payload, limit, meter),
        "gzip" => decompress::gzip_metered(payload, limit, meter),
        "tiano" => decompress::efi::decompress_metered(
            payload,
            decompress::efi::Version::Tiano,
            limit,
            meter,
        ),
        _ => efi_standard(payload, limit, meter),
    }
}

/// Counts what a decoding paid the image's budget, so that a cached output later pays the same.
struct Counting<'a> {
    inner: &'a dyn decompress::Meter,
    paid: std::sync::atomic::AtomicU64,
}

impl decompress::Meter for Counting<'_> {
    fn pay(&self, n: u64) -> bool {
        self.paid.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        self.inner.pay(n)
    }
}

/// Decodes `payload`, or takes the output of an earlier decoding of the same bytes from the fleet cache
/// ([`crate::formats::cache`]). A cached output is served only when it fits `limit` and what its decoding
/// cost fits the budget left; it then pays that cost, so budgets and verdicts are those of a real decoding.
fn decode_cached(ctx: &Ctx, algo: &str, payload: &[u8], limit: u64) -> Result<Vec<u8>, DError> {
    let Some(cache) = ctx.opts.cache.as_deref() else {
        return decode(algo, payload, limit, ctx);
    };
    let key = crate::formats::cache::Key::new(algo, payload);
    if let Some(e) = cache.get(&key, limit) {
        if e.cost <= ctx.decompress_budget_left() {
            use decompress::Meter;
            if !ctx.pay(e.cost) {
                return Err(DError::Budget);
            }
            return Ok(e.output.to_vec());
        }
    }
    let counting = Counting {
        inner: ctx,
        paid: std::sync::atomic::AtomicU64::new(0),
    };
    let out = decode(algo, payload, limit, &counting)?;
    let cost = counting.paid.load(std::sync::atomic::Ordering::Relaxed);
    let e = cache.put(key, out, cost);
    Ok(Arc::try_unwrap(e.output).unwrap_or_else(|a| a.to_vec()))
}

/// Compression type 1 is EFI 1.1 or Tiano and the stream does not say which. Both decoders can
/// "succeed" on the wrong variant with garbage output, so like UEFITool try both and keep the output that
/// is a well-formed run of sections (Tiano first when both are).
fn efi_standard(
    payload: &[u8],
    limit: u64,
    ctx: &dyn decompress::Meter,
) -> Result<Vec<u8>, DError> {
    use decompress::efi::{decompress_metered as efi, Version};
    let t = efi(payload, Version::Tiano, limit, ctx);
    if matches!(&t, Ok(v) if sections_fit(v)) || t == Err(DError::Budget) {
        return t;
    }
    let e = efi(payload, Version::Efi11, limit, ctx);
    if e == Err(DError::Budget) {
        return e;
    }
    match (t, e) {
        (_, Ok(e)) if sections_fit(&e) => Ok(e),
        (Ok(t), _) => Ok(t),
        (Err(_), Ok(e)) => Ok(e),
        (Err(te), Err(_)) => Err(te),
    }
}

/// Whether `b` is exactly a sequence of 4-byte aligned sections.
// Reviewed: as sections(): positions below `len` plus at most 3, sizes checked against `len - pos`.
#[allow(clippy::arithmetic_side_effects)]
fn sections_fit(b: &[u8]) -> bool {
    let len = b.len() as u64;
    let mut pos = 0u64;
    loop {
        pos = (pos + 3) & !3;
        if pos >= len {
            return true;
        }
        match header(b, pos) {
            Ok(h) if pos + h.size <= len => pos += h.size,
            _ => return false,
        }
    }
}

/// A section's body (header excluded).
pub fn body(s: &Region) -> Option<&[u8]> {
    let b = s.bytes();
    let h = header(b, 0).ok()?;
    b.get(h.hsize as usize..)
}

/// SHA-256 of a section's body (header excluded), as CHIPSEC lists executables.
pub fn body_sha256(s: &Region) -> Option<String> {
    let b = s.bytes();
    let h = header(b, 0).ok()?;
    Some(hex::encode(Sha256::digest(b.get(h.hsize as usize..)?)))
}
