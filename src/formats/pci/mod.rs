//! PCI expansion (option) ROMs: the 0x55AA image headers, their PCI data structures (`PCIR`) and the
//! images they chain, legacy x86 or UEFI.
//!
//! Layouts from the PCI Firmware Specification 3.0 (ROM header, PCI data structure) and UEFI 2.x
//! `EFI_PCI_EXPANSION_ROM_HEADER`:
//!
//! | offset | legacy image | EFI image |
//! |---|---|---|
//! | 0x00 | 0x55 0xAA | 0x55 0xAA |
//! | 0x02 | size in 512-byte units | initialization size (512-byte units, u16) |
//! | 0x03 | entry point (a jump) | — |
//! | 0x04 | — | EFI signature 0x0EF1 (u32) |
//! | 0x08 | — | subsystem, machine type, compression type (0 none, 1 EFI compression) |
//! | 0x16 | — | offset of the PE image |
//! | 0x18 | offset of the PCI data structure | offset of the PCI data structure |
//!
//! `PCIR`: vendor ID (0x04), device ID (0x06), structure length (0x0A), revision (0x0C), class code
//! (0x0D, 3 bytes), image length in 512-byte units (0x10), code revision (0x12), code type (0x14: 0 x86,
//! 1 Open Firmware, 2 PA-RISC, 3 EFI), indicator (0x15, bit 7: last image).
//!
//! Each image is a `file` node `image[N]` (compared one by one like a firmware module) with the PCIR fields as
//! attributes, its `header`, its `pcir` and its code: the x86 `code`, or the EFI `pe` image (decompressed
//! with the EFI 1.1 codec when the header says so) described like other PE modules (machine, subsystem,
//! Authenticode SHA-256 of the body). Bytes after the last image are padding.
#![deny(clippy::arithmetic_side_effects)]

use std::sync::Arc;

use crate::error::ParseError;
use crate::formats::decompress::efi::{decompress_metered, Version};
use crate::formats::decompress::Error as DError;
use crate::formats::util::{le16, le32, slice, u8_at};
use crate::formats::{Confidence, Ctx, Format, Parsed, Scope};
use crate::input::Data;
use crate::region::{Region, RegionKind};

const UNIT: u64 = 512;
/// Most images one ROM may chain (real ones hold one to four).
const MAX_IMAGES: u64 = 64;
const EFI_SIGNATURE: u32 = 0x0EF1;

/// The PCI data structure of the image at `at`, validated: (its offset in the image, image length).
fn pcir(b: &[u8], at: u64) -> Option<(u64, u64)> {
    if slice(b, at, 2, "ROM signature").ok()? != [0x55, 0xAA] {
        return None;
    }
    let p = u64::from(le16(b, at.checked_add(0x18)?, "PCIR pointer").ok()?);
    if p < 0x1A || slice(b, at.checked_add(p)?, 4, "PCIR").ok()? != b"PCIR" {
        return None;
    }
    let units = u64::from(le16(b, at.checked_add(p)?.checked_add(0x10)?, "image length").ok()?);
    let len = units.checked_mul(UNIT)?;
    (len > p).then_some((p, len))
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    let (_, len) = pcir(b, 0)?;
    (len <= b.len() as u64).then_some(Confidence::High)
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "optionrom",
    description: "PCI option ROM (0x55AA images, PCIR chain, legacy x86 and EFI images)",
    probe,
    parse,
    scope: Scope::File(Confidence::High),
    component: Some("bios"),
    policy: None,
    not_inside: &["optionrom"],
    payloads: &[],
    package: None,
};

fn code_type(t: u8) -> &'static str {
    match t {
        0 => "x86",
        1 => "open-firmware",
        2 => "pa-risc",
        3 => "efi",
        _ => "unknown",
    }
}

pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let len = b.len() as u64;
    let mut kids = Vec::new();
    let mut at = 0u64;
    let mut n = 0u64;
    while n < MAX_IMAGES {
        let Some((p, ilen)) = pcir(b, at) else {
            if n == 0 {
                return Err(ParseError::Invalid {
                    what: "PCI option ROM",
                    offset: node.offset,
                    detail: "no 0x55AA header with a PCIR structure".into(),
                });
            }
            break;
        };
        let size = ilen.min(len.saturating_sub(at));
        if !ctx.take_region() {
            kids.push(ctx.limit_node(
                &node.data,
                node.offset.saturating_add(at),
                size,
                "option ROM",
            ));
            break;
        }
        let img = image(ctx, node, at, p, size, n)?;
        let last = img.attrs.get("last").and_then(serde_json::Value::as_bool) == Some(true);
        kids.push(img);
        n = n.saturating_add(1);
        at = at.saturating_add(ilen);
        if last || at >= len {
            break;
        }
    }
    Ok(Parsed::from(kids).attr("images", n))
}

/// One image of the chain at `at` (PCIR at `at + p`, `size` bytes).
fn image(
    ctx: &Ctx,
    node: &Region,
    at: u64,
    p: u64,
    size: u64,
    n: u64,
) -> Result<Region, ParseError> {
    let b = node.bytes();
    let pc = at.saturating_add(p);
    let vendor = le16(b, pc.saturating_add(4), "vendor")?;
    let device = le16(b, pc.saturating_add(6), "device")?;
    let plen = u64::from(le16(b, pc.saturating_add(0x0A), "PCIR length")?).clamp(0x18, 0x40);
    let class = slice(b, pc.saturating_add(0x0D), 3, "class code")?;
    let code_rev = le16(b, pc.saturating_add(0x12), "code revision")?;
    let ty = u8_at(b, pc.saturating_add(0x14), "code type")?;
    let ind = u8_at(b, pc.saturating_add(0x15), "indicator")?;
    let base = node.offset.saturating_add(at);
    let mut img = Region::new(
        RegionKind::File,
        format!("image[{n}]"),
        &node.data,
        base,
        size,
    )
    .with_attr("vendor-id", format!("{vendor:#06x}"))
    .with_attr("device-id", format!("{device:#06x}"))
    .with_attr(
        "class-code",
        format!("{:02x}{:02x}{:02x}", class[2], class[1], class[0]),
    )
    .with_attr("code-revision", format!("{code_rev:#06x}"))
    .with_attr("code-type", code_type(ty))
    .with_attr("last", ind & 0x80 != 0);
    let pcir_end = p.saturating_add(plen).min(size);
    let mut kids = vec![Region::new(
        RegionKind::Header,
        "pcir",
        &node.data,
        pc,
        pcir_end.saturating_sub(p),
    )];
    let efi = ty == 3 && le32(b, at.saturating_add(4), "EFI signature").ok() == Some(EFI_SIGNATURE);
    if efi {
        let sub = le16(b, at.saturating_add(8), "EFI subsystem")?;
        let machine = le16(b, at.saturating_add(0x0A), "EFI machine")?;
        let comp = le16(b, at.saturating_add(0x0C), "EFI compression")?;
        let pe_off = u64::from(le16(b, at.saturating_add(0x16), "PE offset")?);
        let init = u64::from(le16(b, at.saturating_add(2), "init size")?).saturating_mul(UNIT);
        img.attrs.insert("efi-subsystem".into(), sub.into());
        img.attrs
            .insert("efi-machine".into(), format!("{machine:#06x}").into());
        img.attrs.insert("compressed".into(), (comp == 1).into());
        // The ROM header, up to the PCIR (or the PE image, when that comes first).
        kids.push(Region::new(
            RegionKind::Header,
            "header",
            &node.data,
            base,
            p.min(pe_off.max(0x1A)),
        ));
        // The PE image runs from its offset to the end of the initialization size (or of the image).
        let end = if init > pe_off && init <= size {
            init
        } else {
            size
        };
        if pe_off >= 0x1A && pe_off < end && (pe_off < p || pe_off >= pcir_end) {
            let mut pe = Region::new(
                RegionKind::Section,
                "pe",
                &node.data,
                base.saturating_add(pe_off),
                end.saturating_sub(pe_off),
            );
            if comp == 1 {
                efi_decompress(ctx, &mut pe);
            } else {
                describe(&mut pe);
            }
            kids.push(pe);
        }
    } else {
        // The ROM header up to the PCIR (entry jump, vendor data, the PnP header pointer at 0x1A).
        kids.push(Region::new(
            RegionKind::Header,
            "header",
            &node.data,
            base,
            p,
        ));
        if size > pcir_end {
            kids.push(Region::new(
                RegionKind::Blob,
                "code",
                &node.data,
                base.saturating_add(pcir_end),
                size.saturating_sub(pcir_end),
            ));
        }
    }
    crate::formats::adopt(ctx, &img, &mut kids);
    img.children = kids;
    Ok(img)
}

/// PE attributes (machine, subsystem, Authenticode SHA-256 of the body) on `r`.
fn describe(r: &mut Region) {
    for (k, v) in crate::formats::pe::describe(r.bytes(), false) {
        r.attrs.insert(k.into(), v);
    }
}

/// An EFI-compressed PE image: decompressed (EFI 1.1 codec, within the budget) into a `decompressed`
/// child described as a PE image; a failure is a note, the compressed bytes stay compared.
fn efi_decompress(ctx: &Ctx, r: &mut Region) {
    match decompress_metered(r.bytes(), Version::Efi11, ctx.decompress_limit(), ctx) {
        Ok(v) => {
            let len = v.len() as u64;
            let d = Arc::new(Data::Owned(v));
            let mut c = Region::new(RegionKind::Section, "decompressed", &d, 0, len)
                .with_attr("compression", "efi");
            describe(&mut c);
            r.children = vec![c];
        }
        Err(e) => {
            let err = match e {
                DError::Failed(d) => ParseError::Decompress {
                    offset: r.offset,
                    detail: d,
                },
                DError::Limit(n) => ParseError::Limit {
                    what: format!("EFI-compressed image would exceed {n} bytes"),
                    offset: r.offset,
                },
                DError::Budget => ParseError::Limit {
                    what: "EFI-compressed image: decompression budget spent".into(),
                    offset: r.offset,
                },
            };
            r.notes
                .push(crate::formats::unparsed_note("optionrom", &err));
        }
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {
    use super::*;
    use crate::formats::ParseOptions;

    /// One image of `units` x 512 bytes: 0x55AA, PCIR at 0x1C, code type `ty`, `last` flag.
    fn image(units: u16, ty: u8, last: bool) -> Vec<u8> {
        let mut b = vec![0u8; usize::from(units) * 512];
        b[0] = 0x55;
        b[1] = 0xAA;
        b[2] = units as u8;
        b[0x18] = 0x1C;
        b[0x1C..0x20].copy_from_slice(b"PCIR");
        b[0x20..0x22].copy_from_slice(&0x8086u16.to_le_bytes());
        b[0x22..0x24].copy_from_slice(&0x100Eu16.to_le_bytes());
        b[0x26] = 0x18;
        b[0x2C..0x2E].copy_from_slice(&units.to_le_bytes());
        b[0x30] = ty;
        b[0x31] = if last { 0x80 } else { 0 };
        b
    }

    #[test]
    fn images_of_the_chain() {
        let mut rom = image(2, 0, false);
        rom.extend(image(1, 0, true));
        let data = std::sync::Arc::new(crate::input::Data::Owned(rom.clone()));
        let opts = ParseOptions {
            format: Some("optionrom".into()),
            ..ParseOptions::default()
        };
        let t = crate::formats::parse_image(data, &opts);
        let imgs: Vec<(&str, u64, u64)> = t
            .children
            .iter()
            .map(|c| (c.name.as_str(), c.offset, c.size))
            .collect();
        assert_eq!(imgs, [("image[0]", 0, 1024), ("image[1]", 1024, 512)]);
        assert_eq!(t.children[1].attrs["last"], true);
        assert_eq!(t.children[0].attrs["vendor-id"], "0x8086");
        let kids: Vec<&str> = t.children[0]
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(kids, ["header", "pcir", "code"]);
        assert!(
            probe(&rom[..512]).is_none(),
            "an image longer than the file"
        );
        crate::formats::util::mutations_stay_in_bounds(&rom, "optionrom", 2000);
    }
}
