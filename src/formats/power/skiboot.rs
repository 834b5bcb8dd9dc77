//! OPAL `skiboot` (OpenPOWER host firmware; `skiboot.lid` in Debian's `qemu-system-data`), the raw image
//! as `objcopy` writes it from its ELF: it starts with a `trap` (0x7FE00008) and at 0x80 holds the
//! big-endian address of its debug descriptor (`include/debug_descriptor.h`: the eye-catcher `OPALdbug`,
//! a u32 version, console log levels and state flags), the structure the service processor finds the
//! memory console and trace buffers by. skiboot runs at address 0, so the address is the file offset.
//!
//! Nodes: `code` (the head and the code before the descriptor), `debug-descriptor` (its fixed 24-byte
//! part) and `data` (the rest).
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::formats::util::{be32, be64, slice};
use crate::formats::{Confidence, Ctx, Format, Parsed, Scope};
use crate::region::{Region, RegionKind};

const TRAP: u32 = 0x7FE0_0008;
const EYE: &[u8] = b"OPALdbug";
/// The fixed part of the descriptor: eye-catcher, version, log levels, flags, reserved words.
const DESC_FIXED: u64 = 24;

fn descriptor(b: &[u8]) -> Option<u64> {
    if be32(b, 0, "trap").ok()? != TRAP {
        return None;
    }
    let d = be64(b, 0x80, "debug descriptor").ok()?;
    (d >= 0x88
        && slice(b, d, DESC_FIXED, "debug descriptor")
            .ok()?
            .starts_with(EYE))
    .then_some(d)
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    descriptor(b).map(|_| Confidence::High)
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "skiboot",
    description: "OpenPOWER skiboot (OPAL) image: head, debug descriptor",
    probe,
    parse,
    scope: Scope::File(Confidence::High),
    component: Some("bios"),
    policy: None,
    not_inside: &["skiboot"],
    payloads: &[],
    package: None,
};

pub fn parse(_ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let len = b.len() as u64;
    let d = descriptor(b).ok_or(ParseError::Invalid {
        what: "skiboot",
        offset: node.offset,
        detail: "no trap at 0 or no OPALdbug descriptor at the address at 0x80".into(),
    })?;
    let version = be32(b, d.saturating_add(8), "descriptor version")?;
    let at = |o: u64| node.offset.saturating_add(o);
    let dend = d.saturating_add(DESC_FIXED);
    let mut kids = vec![
        Region::new(RegionKind::Blob, "code", &node.data, at(0), d),
        Region::new(
            RegionKind::Header,
            "debug-descriptor",
            &node.data,
            at(d),
            DESC_FIXED,
        )
        .with_attr("version", version),
    ];
    if dend < len {
        kids.push(Region::new(
            RegionKind::Blob,
            "data",
            &node.data,
            at(dend),
            len.saturating_sub(dend),
        ));
    }
    Ok(Parsed::from(kids).attr("debug-descriptor-offset", format!("{d:#x}")))
}

/// A skiboot-like image for tests and fuzz seeds: the trap at 0, the descriptor address at 0x80, code,
/// then the `OPALdbug` descriptor (version 1) and some data.
#[cfg(any(test, feature = "fixtures"))]
#[allow(clippy::arithmetic_side_effects)] // test fixtures of small, known sizes
pub fn build() -> Vec<u8> {
    let mut b = vec![0x60u8; 0x400];
    b[..4].copy_from_slice(&TRAP.to_be_bytes());
    b[0x80..0x88].copy_from_slice(&0x300u64.to_be_bytes());
    b[0x300..0x308].copy_from_slice(EYE);
    b[0x308..0x30C].copy_from_slice(&1u32.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_of_a_written_image_and_mutations_stay_in_bounds() {
        let img = build();
        let data = std::sync::Arc::new(crate::input::Data::Owned(img.clone()));
        let t = crate::formats::parse_image(data, &crate::formats::ParseOptions::default());
        let names: Vec<(&str, u64)> = t
            .children
            .iter()
            .map(|c| (c.name.as_str(), c.offset))
            .collect();
        assert_eq!(
            names,
            [("code", 0), ("debug-descriptor", 0x300), ("data", 0x318)]
        );
        assert_eq!(t.children[1].attrs["version"], 1);
        crate::formats::util::mutations_stay_in_bounds(&img, "skiboot", 2000);
    }
}
