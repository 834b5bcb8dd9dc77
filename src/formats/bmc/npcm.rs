//! Nuvoton NPCM7xx (Poleg) boot images: the boot block the SoC's ROM code loads from SPI flash offset 0 and
//! the U-Boot image the boot block loads after it, each behind the 512-byte header Nuvoton's image
//! generator (`Nuvoton-Israel/igps`, `ImageGeneration/references/BootBlockAndHeader_*.xml` and
//! `UbootHeader_*.xml`, built by `bingo`) writes, and the boot block code's own version structure.
//!
//! Header (512 bytes, little-endian; `BOOT_HEADER_T` in `Nuvoton-Israel/bootblock` `Src/boot.h`):
//! ```text
//! 0x000  8    start tag: 50 07 55 AA 54 4F 4F 42 (boot block) or "UBOOTBLK" (U-Boot)
//! 0x008  256  RSA-2048 signature over bytes 0x140..end of code (igps signs from 0x140, embeds at 8);
//!             all 0xFF or all zero when the image is not signed
//! 0x108  4    FIU0 DRD_CFG;  0x10C 1 FIU0 clock divider
//! boot block: 0x11C 2 MC frequency (MHz), 0x120 4 UART baud rate
//! U-Boot:     0x10D..0x10F FIU0 CS1..3 enable, 0x110 4 FIU3 DRD_CFG, 0x114 4 FIU3 DWR_CFG,
//!             0x118 1 FIU3 clock divider, 0x119..0x11B FIU3 CS1..3 enable
//! --- signed area from 0x140 ---
//! 0x140  4    destination address;  0x144 4 code size;  0x148 4 version
//! boot block: 0x14C 4 board vendor, 0x150 4 board type, 0x154 2 CPU frequency (MHz), 0x156 1 MC config,
//!             0x157 1 host interface, 0x158 4 FIU0 DWR_CFG, 0x15C 1 security level, 0x164/0x168 4 DQS
//!             input/output, 0x1D7 1 revoked keys, 0x1D8/0x1DC security log offset/size,
//!             0x1E0..0x1FC holes 0-3 (offset, size)
//! U-Boot:     0x14C 4 FIU0 DWR_CFG
//! 0x200       code (code size bytes)
//! ```
//! The U-Boot image starts at the end of the boot block image rounded up to 0x1000 (as the boot block
//! computes it). The boot block code holds `BOOTBLOCK_Version_T` at 0x40: a 0xB0-byte description
//! ("\nBB Basic\n<date>\n<time>\n"), the tag "BOOT" and the version (0x00101018: 10.10.18).
//!
//! Nodes: per image `bootblock` / `u-boot` with `header` (every field above as an attribute, `signed`) and
//! `code`; the boot block's code has `vectors`, `version` and `text`; U-Boot's code is parsed as U-Boot
//! (its control device tree included). A boot block released without the header (igps
//! `ImageGeneration/versions/Poleg_bootblock_*.bin`) is recognised by its version structure alone. The
//! signature is not verified: the keys are the SoC's OTP fuses, not available offline; a changed image
//! is found by comparison.
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::formats::util::{align_up, le16, le32, slice, u8_at};
use crate::formats::{self, Confidence, Ctx, Format, Parsed, Scope};
use crate::region::{Region, RegionKind};

/// The boot block's start tag (`START_TAG_ARR_BOOTBLOCK`: AA55_0750h, "BOOT").
pub const TAG_BOOTBLOCK: [u8; 8] = [0x50, 0x07, 0x55, 0xAA, 0x54, 0x4F, 0x4F, 0x42];
/// U-Boot's start tag (`START_TAG_ARR_UBOOT`).
pub const TAG_UBOOT: [u8; 8] = *b"UBOOTBLK";
/// Header size (`BOOT_HEADER_T`).
pub const HEADER: u64 = 0x200;
/// Where the signature lies in the header, and where the signed area starts.
const SIG_AT: u64 = 8;
const SIG_LEN: u64 = 256;
const SIGNED_FROM: u64 = 0x140;
/// The U-Boot image starts at this alignment after the boot block image.
const UBOOT_ALIGN: u64 = 0x1000;
/// `BOOTBLOCK_Version_T` in the boot block code: description, tag, version.
const VER_AT: u64 = 0x40;
const VER_DESC: u64 = 0xB0;
const VER_TAG: &[u8] = b"BOOT";
const VER_END: u64 = 0xF8;

/// How a header field is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// A number.
    Dec,
    /// A register value or address, `0x%08x`.
    Hex,
}

/// One header field: attribute name, offset, size (1, 2 or 4 bytes), display.
pub type Field = (&'static str, u64, u64, Show);

/// The boot block header's fields (igps `BootBlockAndHeader_EB.xml`, with `boot.h`'s FIU0 DWR_CFG and DQS
/// words), in offset order.
pub const BOOTBLOCK_FIELDS: &[Field] = &[
    ("fiu0-drd-cfg", 0x108, 4, Show::Hex),
    ("fiu0-clk-divider", 0x10C, 1, Show::Dec),
    ("mc-freq-mhz", 0x11C, 2, Show::Dec),
    ("uart-baud-rate", 0x120, 4, Show::Dec),
    ("dest-address", 0x140, 4, Show::Hex),
    ("code-size", 0x144, 4, Show::Dec),
    ("version", 0x148, 4, Show::Hex),
    ("board-vendor", 0x14C, 4, Show::Dec),
    ("board-type", 0x150, 4, Show::Dec),
    ("cpu-freq-mhz", 0x154, 2, Show::Dec),
    ("mc-config", 0x156, 1, Show::Hex),
    ("host-if", 0x157, 1, Show::Hex),
    ("fiu0-dwr-cfg", 0x158, 4, Show::Hex),
    ("security-level", 0x15C, 1, Show::Hex),
    ("dqs-input", 0x164, 4, Show::Hex),
    ("dqs-output", 0x168, 4, Show::Hex),
    ("revoke-keys", 0x1D7, 1, Show::Hex),
    ("security-log", 0x1D8, 4, Show::Hex),
    ("security-log-size", 0x1DC, 4, Show::Hex),
    ("hole0", 0x1E0, 4, Show::Hex),
    ("hole0-size", 0x1E4, 4, Show::Hex),
    ("hole1", 0x1E8, 4, Show::Hex),
    ("hole1-size", 0x1EC, 4, Show::Hex),
    ("hole2", 0x1F0, 4, Show::Hex),
    ("hole2-size", 0x1F4, 4, Show::Hex),
    ("hole3", 0x1F8, 4, Show::Hex),
    ("hole3-size", 0x1FC, 4, Show::Hex),
];

/// The U-Boot header's fields (igps `UbootHeader_EB.xml`), in offset order.
pub const UBOOT_FIELDS: &[Field] = &[
    ("fiu0-drd-cfg", 0x108, 4, Show::Hex),
    ("fiu0-clk-divider", 0x10C, 1, Show::Dec),
    ("fiu0-cs1-en", 0x10D, 1, Show::Dec),
    ("fiu0-cs2-en", 0x10E, 1, Show::Dec),
    ("fiu0-cs3-en", 0x10F, 1, Show::Dec),
    ("fiu3-drd-cfg", 0x110, 4, Show::Hex),
    ("fiu3-dwr-cfg", 0x114, 4, Show::Hex),
    ("fiu3-clk-divider", 0x118, 1, Show::Dec),
    ("fiu3-cs1-en", 0x119, 1, Show::Dec),
    ("fiu3-cs2-en", 0x11A, 1, Show::Dec),
    ("fiu3-cs3-en", 0x11B, 1, Show::Dec),
    ("dest-address", 0x140, 4, Show::Hex),
    ("code-size", 0x144, 4, Show::Dec),
    ("version", 0x148, 4, Show::Hex),
    ("fiu0-dwr-cfg", 0x14C, 4, Show::Hex),
];

/// The value of field `f` of `header` (at least [`HEADER`] bytes).
pub fn field(h: &[u8], f: &Field) -> Result<u32, ParseError> {
    let (name, off, size, _) = *f;
    Ok(match size {
        1 => u32::from(u8_at(h, off, name)?),
        2 => u32::from(le16(h, off, name)?),
        _ => le32(h, off, name)?,
    })
}

fn shown(f: &Field, v: u32) -> serde_json::Value {
    match f.3 {
        Show::Dec => v.into(),
        Show::Hex => format!("{v:#010x}").into(),
    }
}

/// The boot block code's version structure at 0x40: (description, version) when the tag "BOOT" is at
/// 0xF0, the code starts with an ARM instruction (condition "always") and the description is printable
/// text starting with a newline, padded with zeros.
pub fn code_version(code: &[u8]) -> Option<(String, u32)> {
    let first = le32(code, 0, "first instruction").ok()?;
    if first >> 28 != 0xE {
        return None;
    }
    let desc = slice(code, VER_AT, VER_DESC, "version description").ok()?;
    let tag_at = VER_AT.checked_add(VER_DESC)?;
    if slice(code, tag_at, 4, "version tag").ok()? != VER_TAG {
        return None;
    }
    let version = le32(code, tag_at.checked_add(4)?, "boot block version").ok()?;
    let text_len = desc.iter().position(|&c| c == 0)?;
    let (text, rest) = desc.split_at(text_len);
    let printable = |c: &u8| c.is_ascii_graphic() || matches!(c, b' ' | b'\n');
    if text.first() != Some(&b'\n') || text.len() < 4 || !text.iter().all(printable) {
        return None;
    }
    if rest.iter().any(|&c| c != 0) {
        return None;
    }
    let words: Vec<&str> = std::str::from_utf8(text)
        .ok()?
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    Some((words.join(" "), version))
}

/// The boot block version as Nuvoton writes it (0x00101018: "10.10.18"; a debug build sets the top byte).
pub fn version_text(v: u32) -> String {
    let [a, b, c, d] = v.to_le_bytes();
    let base = format!("{c:X}.{b:02X}.{a:02X}");
    if d == 0 {
        base
    } else {
        format!("{base} (debug {d:#04x})")
    }
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    if b.len() < HEADER as usize {
        return None;
    }
    if b.starts_with(&TAG_BOOTBLOCK) || b.starts_with(&TAG_UBOOT) {
        let size = u64::from(le32(b, 0x144, "code size").ok()?);
        return (HEADER.checked_add(size)? <= b.len() as u64).then_some(Confidence::High);
    }
    code_version(b).map(|_| Confidence::High)
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "npcm-bootblock",
    description: "Nuvoton NPCM7xx (Poleg) boot block and U-Boot images: 512-byte signed header (start tag, \
                  RSA signature, FIU settings, destination, code size, version, board), code, boot block \
                  version",
    probe,
    parse,
    scope: Scope::File(Confidence::High),
    component: Some("bmc"),
    policy: None,
    not_inside: &["npcm-bootblock"],
    payloads: &[],
    package: None,
};

/// The `header` node of the image at `at` (absolute offset) whose header bytes are `h`.
fn header_node(node: &Region, at: u64, h: &[u8], uboot: bool) -> Result<Region, ParseError> {
    let mut r = Region::new(RegionKind::Header, "header", &node.data, at, HEADER);
    let fields = if uboot {
        UBOOT_FIELDS
    } else {
        BOOTBLOCK_FIELDS
    };
    for f in fields {
        r.attrs.insert(f.0.into(), shown(f, field(h, f)?));
    }
    let sig = slice(h, SIG_AT, SIG_LEN, "signature")?;
    let signed = !sig.iter().all(|&c| c == 0xFF) && !sig.iter().all(|&c| c == 0);
    r.attrs.insert("signed".into(), signed.into());
    r.attrs
        .insert("signed-from".into(), format!("{SIGNED_FROM:#x}").into());
    Ok(r)
}

/// The children of a boot block's code at `at` (absolute) whose bytes are `code`: `vectors`, `version`,
/// `text`; none when it has no version structure.
fn code_children(node: &Region, at: u64, code: &[u8]) -> Option<(Vec<Region>, String, String)> {
    let (desc, v) = code_version(code)?;
    let len = code.len() as u64;
    let abs = |o: u64| at.saturating_add(o);
    let mut kids = vec![
        Region::new(RegionKind::Blob, "vectors", &node.data, abs(0), VER_AT),
        Region::new(
            RegionKind::Header,
            "version",
            &node.data,
            abs(VER_AT),
            VER_END.saturating_sub(VER_AT),
        )
        .with_attr("bootblock-version", version_text(v))
        .with_attr("description", desc.clone()),
    ];
    if len > VER_END {
        kids.push(Region::new(
            RegionKind::Blob,
            "text",
            &node.data,
            abs(VER_END),
            len.saturating_sub(VER_END),
        ));
    }
    Some((kids, version_text(v), desc))
}

/// One headered image at `off` (relative to `node`): its node, and where it ends (relative).
fn image(ctx: &Ctx, node: &Region, off: u64) -> Result<(Region, u64), ParseError> {
    let b = node.bytes();
    let h = slice(b, off, HEADER, "NPCM image header")?;
    let uboot = h.starts_with(&TAG_UBOOT);
    if !uboot && !h.starts_with(&TAG_BOOTBLOCK) {
        return Err(ParseError::Invalid {
            what: "NPCM image header",
            offset: node.offset.saturating_add(off),
            detail: "no boot block or UBOOTBLK start tag".into(),
        });
    }
    let size = u64::from(le32(h, 0x144, "code size")?);
    let code_at = off.saturating_add(HEADER);
    let code = slice(b, code_at, size, "NPCM image code").map_err(|_| ParseError::Invalid {
        what: "NPCM image header",
        offset: node.offset.saturating_add(off).saturating_add(0x144),
        detail: format!(
            "code size {size:#x} runs past the end ({:#x} bytes after the header)",
            (b.len() as u64).saturating_sub(code_at)
        ),
    })?;
    let abs = node.offset.saturating_add(off);
    let total = HEADER.saturating_add(size);
    let name = if uboot { "u-boot" } else { "bootblock" };
    let mut img = Region::new(RegionKind::Blob, name, &node.data, abs, total);
    let header = header_node(node, abs, h, uboot)?;
    let code_abs = abs.saturating_add(HEADER);
    let mut code_node = Region::new(RegionKind::Blob, "code", &node.data, code_abs, size);
    if uboot {
        // U-Boot proper behind its header: parsed as U-Boot (version, control device tree).
        formats::descend(
            ctx,
            &mut code_node,
            Some(&FORMAT),
            Some(&super::uboot::FORMAT),
        );
    } else if let Some((kids, version, _)) = code_children(node, code_abs, code) {
        code_node.children = kids;
        img.attrs.insert("bootblock-version".into(), version.into());
    }
    img.attrs.insert(
        "start-tag".into(),
        if uboot { "UBOOTBLK" } else { "AA550750 BOOT" }.into(),
    );
    img.children = vec![header, code_node];
    Ok((img, off.saturating_add(total)))
}

pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    if !(b.starts_with(&TAG_BOOTBLOCK) || b.starts_with(&TAG_UBOOT)) {
        // A boot block as released, without the header.
        let (kids, version, desc) =
            code_children(node, node.offset, b).ok_or(ParseError::Invalid {
                what: "NPCM boot block",
                offset: node.offset,
                detail: "no start tag and no boot block version structure at 0x40".into(),
            })?;
        return Ok(Parsed::from(kids)
            .attr("headered", false)
            .attr("bootblock-version", version)
            .attr("description", desc));
    }
    let (first, end) = image(ctx, node, 0)?;
    let is_bootblock = first.name == "bootblock";
    let mut kids = vec![first];
    let mut images = 1u64;
    // After a boot block, U-Boot at the next 0x1000 boundary (as the boot block looks for it).
    if is_bootblock {
        let next = align_up(end, UBOOT_ALIGN, "U-Boot image offset")?;
        if slice(b, next, 8, "U-Boot start tag").ok() == Some(&TAG_UBOOT[..]) {
            let (ub, _) = image(ctx, node, next)?;
            kids.push(ub);
            images = 2;
        }
    }
    Ok(Parsed::from(kids)
        .attr("headered", true)
        .attr("images", images))
}

/// A headered boot block image for tests and fuzz seeds, field values as igps's
/// `BootBlockAndHeader_EB.xml` sets them (unsigned: signature 0xFF), with a code of `code_len` bytes that
/// carries a version structure (10.10.18, "BB Basic"); with `uboot`, a U-Boot image (header as
/// `UbootHeader_EB.xml`, code `uboot`) at the next 0x1000 boundary, pad bytes 0xFF.
#[cfg(any(test, feature = "fixtures"))]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)] // test fixtures of small, known sizes
pub fn build(code_len: usize, uboot: Option<&[u8]>) -> Vec<u8> {
    let mut b = vec![0xFFu8; 0x200];
    b[..8].copy_from_slice(&TAG_BOOTBLOCK);
    for &(name, v) in EB_BOOTBLOCK {
        let f = BOOTBLOCK_FIELDS.iter().find(|f| f.0 == name).unwrap();
        let o = f.1 as usize;
        b[o..o + f.2 as usize].copy_from_slice(&v.to_le_bytes()[..f.2 as usize]);
    }
    b[0x144..0x148].copy_from_slice(&(code_len as u32).to_le_bytes());
    b.extend_from_slice(&bootblock_code(code_len));
    if let Some(u) = uboot {
        b.resize(b.len().next_multiple_of(0x1000), 0xFF);
        let at = b.len();
        b.resize(at + 0x200, 0xFF);
        b[at..at + 8].copy_from_slice(&TAG_UBOOT);
        for &(name, v) in EB_UBOOT {
            let f = UBOOT_FIELDS.iter().find(|f| f.0 == name).unwrap();
            let o = at + f.1 as usize;
            b[o..o + f.2 as usize].copy_from_slice(&v.to_le_bytes()[..f.2 as usize]);
        }
        b[at + 0x144..at + 0x148].copy_from_slice(&(u.len() as u32).to_le_bytes());
        b.extend_from_slice(u);
    }
    b
}

/// A boot block code of `len` (at least 0x100) bytes: an ARM `push`, the version structure, `nop`s.
#[cfg(any(test, feature = "fixtures"))]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)] // test fixtures of small, known sizes
pub fn bootblock_code(len: usize) -> Vec<u8> {
    let mut c = vec![0u8; len.max(0x100)];
    for w in c.chunks_exact_mut(4) {
        w.copy_from_slice(&0xE1A0_0000u32.to_le_bytes());
    }
    c[..4].copy_from_slice(&0xE92D_1FFFu32.to_le_bytes());
    c[0x40..0xF0].fill(0);
    let d = b"\nBB Basic\nJul 27 2023\n11:16:31\n";
    c[0x40..0x40 + d.len()].copy_from_slice(d);
    c[0xF0..0xF4].copy_from_slice(b"BOOT");
    c[0xF4..0xF8].copy_from_slice(&0x0010_1018u32.to_le_bytes());
    c.truncate(len.max(0x100));
    c
}

/// The field values igps's `BootBlockAndHeader_EB.xml` writes (code size aside).
#[cfg(any(test, feature = "fixtures"))]
pub const EB_BOOTBLOCK: &[(&str, u32)] = &[
    ("uart-baud-rate", 115_200),
    ("dest-address", 0xFFFD_5E00),
    ("fiu0-drd-cfg", 0x0300_11BB),
    ("fiu0-clk-divider", 4),
    ("version", 0x0201),
    ("board-vendor", 100),
    ("board-type", 2),
    ("mc-freq-mhz", 800),
    ("cpu-freq-mhz", 800),
    ("mc-config", 0),
    ("host-if", 0),
    ("security-level", 0xFF),
    ("revoke-keys", 0),
    ("security-log", 0x09_0000),
    ("security-log-size", 0x3000),
    ("hole0", 0x0A_0000),
    ("hole0-size", 0xF7_0000),
    ("hole1", 0),
    ("hole1-size", 0),
    ("hole2", 0xFFFF_FFFF),
    ("hole2-size", 0),
    ("hole3", 0),
    ("hole3-size", 0),
];

/// The field values igps's `UbootHeader_EB.xml` writes (code size aside).
#[cfg(any(test, feature = "fixtures"))]
pub const EB_UBOOT: &[(&str, u32)] = &[
    ("dest-address", 0x8000),
    ("fiu0-drd-cfg", 0x0301_11BC),
    ("fiu0-clk-divider", 0),
    ("fiu0-cs1-en", 0),
    ("fiu0-cs2-en", 0),
    ("fiu0-cs3-en", 0),
    ("fiu3-drd-cfg", 0),
    ("fiu3-dwr-cfg", 0),
    ("fiu3-clk-divider", 0),
    ("fiu3-cs1-en", 0),
    ("fiu3-cs2-en", 0),
    ("fiu3-cs3-en", 0),
    ("version", 0),
    ("fiu0-dwr-cfg", 0x0300_1102),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_bytes(img: &[u8]) -> Region {
        let data = std::sync::Arc::new(crate::input::Data::Owned(img.to_vec()));
        crate::formats::parse_image(data, &crate::formats::ParseOptions::default())
    }

    #[test]
    fn headered_boot_block_and_u_boot_and_mutations_stay_in_bounds() {
        let ub = b"\x00\x00\xa0\xe1U-Boot 2019.01 (Jan 01 2020)\x00".repeat(8);
        let img = build(0x300, Some(&ub));
        let t = parse_bytes(&img);
        assert_eq!(t.attrs["format"], "npcm-bootblock");
        let kids: Vec<(&str, u64, u64)> = t
            .children
            .iter()
            .map(|c| (c.name.as_str(), c.offset, c.size))
            .collect();
        assert_eq!(
            kids,
            [
                ("bootblock", 0, 0x500),
                ("padding", 0x500, 0xB00),
                ("u-boot", 0x1000, 0x200 + ub.len() as u64)
            ]
        );
        let bb = &t.children[0];
        assert_eq!(bb.attrs["bootblock-version"], "10.10.18");
        let h = &bb.children[0];
        assert_eq!(h.attrs["dest-address"], "0xfffd5e00");
        assert_eq!(h.attrs["code-size"], 0x300);
        assert_eq!(h.attrs["signed"], false);
        let code: Vec<&str> = bb.children[1]
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(code, ["vectors", "version", "text"]);
        assert_eq!(
            t.children[2].children[0].attrs["dest-address"],
            "0x00008000"
        );
        crate::formats::util::mutations_stay_in_bounds(&img, "npcm-bootblock", 2000);
    }

    #[test]
    fn a_raw_boot_block_is_recognised_by_its_version_structure() {
        let code = bootblock_code(0x400);
        let t = parse_bytes(&code);
        assert_eq!(t.attrs["format"], "npcm-bootblock");
        assert_eq!(t.attrs["bootblock-version"], "10.10.18");
        assert_eq!(t.attrs["description"], "BB Basic Jul 27 2023 11:16:31");
        // Not an ARM instruction first, or text after the description's end: not a boot block.
        let mut bad = code.clone();
        bad[3] = 0x0A;
        assert!(probe(&bad).is_none());
        let mut bad = code;
        bad[0xE0] = b'x';
        assert!(probe(&bad).is_none());
        assert_eq!(version_text(0x8010_0916), "10.09.16 (debug 0x80)");
    }

    #[test]
    fn a_code_size_past_the_end_is_an_error_naming_the_field() {
        let mut img = build(0x300, None);
        img.truncate(0x400);
        assert!(probe(&img).is_none());
        let data = std::sync::Arc::new(crate::input::Data::Owned(img));
        let node = Region::new(RegionKind::Image, "", &data, 0, 0x400);
        let e = parse(&Ctx::new(&crate::formats::ParseOptions::default()), &node).unwrap_err();
        assert_eq!(e.offset(), 0x144);
        assert!(e.to_string().contains("code size 0x300"), "{e}");
    }
}
