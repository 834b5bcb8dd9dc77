//! An Intel SMI Transfer Monitor (STM) image: the 4 KiB `STM_HEADER` the BIOS copies to MSEG, then the
//! static image. Layout as edk2 defines it (`MdePkg/Include/Register/Intel/StmApi.h` and
//! `ArchitecturalMsr.h`, after Intel's STM User Guide 1.00 and the SDM's MSEG header); the STM reference
//! implementation (`jyao1/STM`, `StmPkg/Core/Init/StmInit.c`) prints the same fields:
//! ```text
//! HwStmHdr (MSEG_HEADER, 2 KiB):
//!   0x00 MsegHeaderRevision   0x04 MonitorFeatures (bit 0: IA-32e; bits 31:1 zero)
//!   0x08 GdtrLimit            0x0C GdtrBaseOffset     0x10 CsSelector
//!   0x14 EipOffset            0x18 EspOffset          0x1C Cr3Offset      then reserved to 0x800
//! SwStmHdr (SOFTWARE_STM_HEADER, at 0x800):
//!   0x800 StmSpecVerMajor u8 (1)  0x801 StmSpecVerMinor u8  0x802 reserved u16 (0)
//!   0x804 StaticImageSize     0x808 PerProcDynamicMemorySize  0x80C AdditionalDynamicMemorySize
//!   0x810 StmFeatures (bit 0 Intel64ModeSupported, bit 1 EptSupported)
//!   0x814 NumberOfRevIDs      0x818 StmSmmRevID[NumberOfRevIDs]; the header is 4 KiB in all
//! ```
//! The image is recognised by this header alone (stand-alone, and inside an FFS file or CBFS file, where
//! platforms ship it: edk2's `StmPlatformSmm` loads it from an FFS file, coreboot from CBFS `stm.bin`): spec
//! version 1, the reserved word zero, a static image size within the file, an entry point inside it, a
//! GDT inside it, a code selector that is a GDT selector. Nodes: `hw-header` (the MSEG header),
//! `sw-header` (to the end of the 4 KiB), `static-image` (to `StaticImageSize`); bytes after it are padding.
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::formats::util::{le32, slice, u8_at};
use crate::formats::{Confidence, Ctx, Format, Parsed, Scope};
use crate::region::{Region, RegionKind};

/// Size of the hardware part (MSEG header) and of the whole STM header.
const HW: u64 = 0x800;
const HEADER: u64 = 0x1000;
/// Most SMM revision ids the 4 KiB header can hold.
const MAX_REV_IDS: u32 = ((HEADER - 0x818) / 4) as u32;

/// The header fields, read.
#[derive(Debug, Clone)]
pub struct StmHeader {
    pub mseg_revision: u32,
    pub monitor_features: u32,
    pub gdtr_limit: u32,
    pub gdtr_base_offset: u32,
    pub cs_selector: u32,
    pub eip_offset: u32,
    pub esp_offset: u32,
    pub cr3_offset: u32,
    pub spec_major: u8,
    pub spec_minor: u8,
    pub static_image_size: u32,
    pub per_proc_dynamic_memory_size: u32,
    pub additional_dynamic_memory_size: u32,
    pub stm_features: u32,
    pub rev_ids: Vec<u32>,
}

/// Reads the header of `b`, or why it is not an STM header.
pub fn header(b: &[u8]) -> Result<StmHeader, ParseError> {
    let h = slice(b, 0, HEADER, "STM header")?;
    let f = |o: u64, w: &'static str| le32(h, o, w);
    let bad = |o: u64, detail: String| ParseError::Invalid {
        what: "STM header",
        offset: o,
        detail,
    };
    let n = f(0x814, "NumberOfRevIDs")?;
    if n > MAX_REV_IDS {
        return Err(bad(
            0x814,
            format!("{n} SMM revision ids do not fit the header"),
        ));
    }
    let rev_ids = (0..u64::from(n))
        .map(|i| f(0x818u64.saturating_add(i.saturating_mul(4)), "StmSmmRevID"))
        .collect::<Result<Vec<u32>, ParseError>>()?;
    let s = StmHeader {
        mseg_revision: f(0, "MsegHeaderRevision")?,
        monitor_features: f(4, "MonitorFeatures")?,
        gdtr_limit: f(8, "GdtrLimit")?,
        gdtr_base_offset: f(0xC, "GdtrBaseOffset")?,
        cs_selector: f(0x10, "CsSelector")?,
        eip_offset: f(0x14, "EipOffset")?,
        esp_offset: f(0x18, "EspOffset")?,
        cr3_offset: f(0x1C, "Cr3Offset")?,
        spec_major: u8_at(h, HW, "StmSpecVerMajor")?,
        spec_minor: u8_at(h, 0x801, "StmSpecVerMinor")?,
        static_image_size: f(0x804, "StaticImageSize")?,
        per_proc_dynamic_memory_size: f(0x808, "PerProcDynamicMemorySize")?,
        additional_dynamic_memory_size: f(0x80C, "AdditionalDynamicMemorySize")?,
        stm_features: f(0x810, "StmFeatures")?,
        rev_ids,
    };
    let reserved = u16::from_le_bytes([h[0x802], h[0x803]]);
    let size = u64::from(s.static_image_size);
    if s.spec_major != 1 || reserved != 0 {
        return Err(bad(
            HW,
            format!(
                "spec version {}.{} / reserved {reserved:#x}: not STM 1.x",
                s.spec_major, s.spec_minor
            ),
        ));
    }
    if s.monitor_features & !1 != 0 {
        return Err(bad(
            4,
            format!(
                "MonitorFeatures {:#x} sets reserved bits",
                s.monitor_features
            ),
        ));
    }
    if size < HEADER || size > b.len() as u64 {
        return Err(bad(
            0x804,
            format!(
                "static image size {size:#x} outside the header..file ({:#x})",
                b.len()
            ),
        ));
    }
    let eip = u64::from(s.eip_offset);
    if !(HEADER..size).contains(&eip) {
        return Err(bad(
            0x14,
            format!("entry point {eip:#x} outside the static image"),
        ));
    }
    let gdt_end = u64::from(s.gdtr_base_offset).saturating_add(u64::from(s.gdtr_limit));
    if s.gdtr_limit == 0 || gdt_end >= size {
        return Err(bad(
            0xC,
            format!(
                "GDT {:#x}+{:#x} outside the static image",
                s.gdtr_base_offset, s.gdtr_limit
            ),
        ));
    }
    if s.cs_selector == 0
        || s.cs_selector & 7 != 0
        || u64::from(s.cs_selector) > u64::from(s.gdtr_limit)
    {
        return Err(bad(
            0x10,
            format!("CS selector {:#x} is not a GDT entry", s.cs_selector),
        ));
    }
    Ok(s)
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    header(b).ok().map(|_| Confidence::Medium)
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "stm",
    description:
        "Intel SMI Transfer Monitor image: STM_HEADER (MSEG header: GDT, CS, EIP, ESP, CR3; \
                  software header: spec version, sizes, features, SMM revision ids), static image",
    probe,
    parse,
    scope: Scope::File(Confidence::Medium),
    component: Some("bios"),
    policy: None,
    not_inside: &["stm"],
    payloads: &[],
    package: None,
};

pub fn parse(_ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let s = header(b).map_err(|e| e.rebased(node.offset))?;
    let at = |o: u64| node.offset.saturating_add(o);
    let hx = |v: u32| format!("{v:#x}");
    let size = u64::from(s.static_image_size);
    let hw = Region::new(RegionKind::Header, "hw-header", &node.data, at(0), HW)
        .with_attr("mseg-header-revision", hx(s.mseg_revision))
        .with_attr("monitor-features", hx(s.monitor_features))
        .with_attr("ia32e", s.monitor_features & 1 == 1)
        .with_attr("gdtr-limit", hx(s.gdtr_limit))
        .with_attr("gdtr-base-offset", hx(s.gdtr_base_offset))
        .with_attr("cs-selector", hx(s.cs_selector))
        .with_attr("eip-offset", hx(s.eip_offset))
        .with_attr("esp-offset", hx(s.esp_offset))
        .with_attr("cr3-offset", hx(s.cr3_offset));
    let revs: Vec<serde_json::Value> = s.rev_ids.iter().map(|&r| hx(r).into()).collect();
    let sw = Region::new(
        RegionKind::Header,
        "sw-header",
        &node.data,
        at(HW),
        HEADER.saturating_sub(HW),
    )
    .with_attr("spec-version", format!("{}.{}", s.spec_major, s.spec_minor))
    .with_attr("static-image-size", hx(s.static_image_size))
    .with_attr(
        "per-proc-dynamic-memory-size",
        hx(s.per_proc_dynamic_memory_size),
    )
    .with_attr(
        "additional-dynamic-memory-size",
        hx(s.additional_dynamic_memory_size),
    )
    .with_attr("stm-features", hx(s.stm_features))
    .with_attr("intel64-mode-supported", s.stm_features & 1 == 1)
    .with_attr("ept-supported", s.stm_features & 2 == 2)
    .with_attr("smm-rev-ids", revs);
    let mut kids = vec![hw, sw];
    if size > HEADER {
        kids.push(Region::new(
            RegionKind::Blob,
            "static-image",
            &node.data,
            at(HEADER),
            size.saturating_sub(HEADER),
        ));
    }
    Ok(Parsed::from(kids)
        .attr("stm-header", true)
        .attr("spec-version", format!("{}.{}", s.spec_major, s.spec_minor))
        .attr("static-image-size", size))
}

/// An STM image for tests and fuzz seeds, written by the layout above: MSEG revision 0, IA-32e, GDT at
/// 0x1000 (limit 0x47), CS 0x38, entry 0x1100, stack 0x4000, CR3 0x5000, spec 1.0, static image
/// `size` bytes (at least 0x2000) of `int3`, per-CPU 0x2000, additional 0x8000, Intel64 + EPT, one
/// revision id 0x80010100 (`STM_SMM_REV_ID`).
#[cfg(any(test, feature = "fixtures"))]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)] // test fixtures of small, known sizes
pub fn build(size: usize) -> Vec<u8> {
    let size = size.max(0x2000);
    let mut b = vec![0u8; size];
    b[0x1000..].fill(0xCC);
    let mut w = |o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    for (o, v) in [
        (0x00, 0),
        (0x04, 1),
        (0x08, 0x47),
        (0x0C, 0x1000),
        (0x10, 0x38),
        (0x14, 0x1100),
        (0x18, 0x4000),
        (0x1C, 0x5000),
        (0x804, size as u32),
        (0x808, 0x2000),
        (0x80C, 0x8000),
        (0x810, 3),
        (0x814, 1),
        (0x818, 0x8001_0100),
    ] {
        w(o, v);
    }
    b[0x800] = 1;
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_nodes_and_mutations_stay_in_bounds() {
        let img = build(0x3000);
        let data = std::sync::Arc::new(crate::input::Data::Owned(img.clone()));
        let t = crate::formats::parse_image(data, &crate::formats::ParseOptions::default());
        assert_eq!(t.attrs["format"], "stm");
        let kids: Vec<(&str, u64, u64)> = t
            .children
            .iter()
            .map(|c| (c.name.as_str(), c.offset, c.size))
            .collect();
        assert_eq!(
            kids,
            [
                ("hw-header", 0, 0x800),
                ("sw-header", 0x800, 0x800),
                ("static-image", 0x1000, 0x2000)
            ]
        );
        assert_eq!(t.children[0].attrs["eip-offset"], "0x1100");
        assert_eq!(t.children[1].attrs["smm-rev-ids"][0], "0x80010100");
        // Each rule of the header rejects: spec version, reserved bits, sizes, entry, GDT, selector.
        for (o, v) in [
            (0x800usize, 2u32),
            (0x04, 2),
            (0x804, 0x800),
            (0x804, 0x4000),
            (0x14, 0x20),
            (0x08, 0),
            (0x10, 0x3A),
            (0x814, 0x1000),
        ] {
            let mut m = img.clone();
            if o == 0x800 {
                m[o] = v as u8;
            } else {
                m[o..o + 4].copy_from_slice(&v.to_le_bytes());
            }
            assert!(probe(&m).is_none(), "{o:#x}={v:#x}");
        }
        crate::formats::util::mutations_stay_in_bounds(&img, "stm", 2000);
    }
}
