//! AMI MegaRAC Flash Module Headers (`$MODULE$`): each module is a partition.
//!
//! Header (little-endian, 64 bytes, at the start of an erase block): `$MODULE$`, version u16, FMH size
//! u16 @10, allocated size u32 @12 (the module's flash extent, header included), location u32 @16,
//! header checksum u8 @23, then module info: name[8] @24, version u16 @32, type u16 @34, module location
//! u32 @36 (relative to the header), module size u32 @40, flags u16 @44, load address u32 @46, CRC32 @50,
//! end signature 0x55AA @62. This follows the structure published in MegaRAC SP-X GPL sources; it has not
//! been checked against many real images, so modules are listed but their CRC is only reported.
#![deny(clippy::arithmetic_side_effects)]

use crate::formats::util::{le16, le32, slice};

pub const SIGNATURE: &[u8; 8] = b"$MODULE$";
/// Erase-block step at which headers are looked for.
pub const STEP: u64 = 0x10000;
/// Most modules read.
pub const MAX_MODULES: usize = 256;

/// One module found.
#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub start: u64,
    pub allocated: u64,
    pub module_location: u64,
    pub module_size: u64,
    pub module_type: u16,
    pub crc32: u32,
}

/// Every `$MODULE$` header at an erase-block boundary of `b`.
pub fn modules(b: &[u8]) -> Vec<Module> {
    let mut out = Vec::new();
    let mut off = 0u64;
    while off < b.len() as u64 && out.len() < MAX_MODULES {
        if slice(b, off, 8, "fmh").ok() == Some(&SIGNATURE[..]) {
            if let Some(m) = module_at(b, off) {
                off = off
                    .saturating_add(m.allocated.max(STEP))
                    .div_ceil(STEP)
                    .saturating_mul(STEP);
                out.push(m);
                continue;
            }
        }
        off = off.saturating_add(STEP);
    }
    out
}

fn module_at(b: &[u8], off: u64) -> Option<Module> {
    let h = slice(b, off, 64, "fmh").ok()?;
    if le16(h, 62, "fmh end").ok()? != 0x55AA {
        return None;
    }
    let name_raw = &h[24..32];
    let name: String = String::from_utf8_lossy(name_raw.split(|&c| c == 0).next().unwrap_or(&[]))
        .trim()
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    Some(Module {
        name: if name.is_empty() {
            "module".into()
        } else {
            name
        },
        start: off,
        allocated: u64::from(le32(h, 12, "fmh allocated").ok()?),
        module_location: u64::from(le32(h, 36, "module location").ok()?),
        module_size: u64::from(le32(h, 40, "module size").ok()?),
        module_type: le16(h, 34, "module type").ok()?,
        crc32: le32(h, 50, "module crc").ok()?,
    })
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {

    use super::*;

    fn fmh(name: &[u8], allocated: u32, module_size: u32) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[..8].copy_from_slice(SIGNATURE);
        h[8..10].copy_from_slice(&0x0100u16.to_le_bytes());
        h[10..12].copy_from_slice(&64u16.to_le_bytes());
        h[12..16].copy_from_slice(&allocated.to_le_bytes());
        h[24..24 + name.len()].copy_from_slice(name);
        h[36..40].copy_from_slice(&64u32.to_le_bytes());
        h[40..44].copy_from_slice(&module_size.to_le_bytes());
        h[62..64].copy_from_slice(&0x55AAu16.to_le_bytes());
        h
    }

    #[test]
    fn modules_are_found_at_erase_blocks_and_bounded() {
        let mut b = vec![0xFFu8; 0x100000];
        b[..64].copy_from_slice(&fmh(b"boot", 0x40000, 0x1000));
        b[0x40000..0x40040].copy_from_slice(&fmh(b"conf\0\0\0\0", 0x20000, 0x10));
        // A header with a bad end signature is ignored; one with an absurd size still advances.
        b[0x60000..0x60040].copy_from_slice(&fmh(b"bad", 0x10000, 0));
        b[0x60000 + 62] = 0;
        b[0x70000..0x70040].copy_from_slice(&fmh(b"huge/x", u32::MAX, u32::MAX));
        let m = modules(&b);
        let names: Vec<_> = m.iter().map(|m| (m.name.as_str(), m.start)).collect();
        assert_eq!(
            names,
            vec![("boot", 0), ("conf", 0x40000), ("huge_x", 0x70000)]
        );
        let d = crate::formats::bmc::discover(&b).unwrap();
        assert_eq!(d.layout.source, "megarac");
        // The oversized module is clipped by the layout, with a note.
        let data = std::sync::Arc::new(crate::input::Data::Owned(b));
        let mut notes = Vec::new();
        let parts = d.layout.apply(&data, &mut notes);
        assert_eq!(parts.len(), 3);
        assert!(notes
            .iter()
            .any(|n| n.code.as_str() == "partition-out-of-bounds"));
    }
}
