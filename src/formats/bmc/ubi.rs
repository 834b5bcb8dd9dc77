//! UBI images: erase-counter headers (`UBI#`), volume-id headers (`UBI!`) and the volume table (the
//! layout volume 0x7FFFEFFF, 172-byte records). The volumes are listed (name, type, reserved PEBs, LEBs
//! found) in the `volumes` attribute of the `ubi` node; the UBI area is hashed as one static region (UBI
//! moves blocks when wear-levelling, so per-volume hashing would need LEB reassembly: not done yet).

use crate::error::ParseError;
use crate::formats::util::{be32, slice};
use crate::formats::{Confidence, Ctx};
use crate::region::{Region, RegionKind};

pub const EC_MAGIC: &[u8; 4] = b"UBI#";
pub const VID_MAGIC: &[u8; 4] = b"UBI!";
const LAYOUT_VOLUME: u32 = 0x7FFF_EFFF;
const MAX_VOLUMES: usize = 128;

pub fn probe(b: &[u8]) -> Option<Confidence> {
    (b.get(..4)? == EC_MAGIC && b.get(4) == Some(&1)).then_some(Confidence::High)
}

/// The physical erase block size: distance to the next `UBI#` header (16 KiB to 2 MiB).
pub fn peb_size(b: &[u8]) -> Option<u64> {
    let mut s = 0x4000u64;
    while s <= 0x20_0000 {
        if slice(b, s, 4, "ubi").ok() == Some(&EC_MAGIC[..]) {
            return Some(s);
        }
        s <<= 1;
    }
    None
}

pub fn parse(_ctx: &Ctx, node: &Region) -> Result<Vec<Region>, ParseError> {
    let b = node.bytes();
    let peb = peb_size(b).ok_or(ParseError::Invalid {
        what: "UBI",
        offset: node.offset,
        detail: "no second erase-counter header found (PEB size unknown)".into(),
    })?;
    let vid_off = u64::from(be32(b, 16, "ubi vid_hdr_offset")?);
    let data_off = u64::from(be32(b, 20, "ubi data_offset")?);
    if vid_off >= peb || data_off >= peb {
        return Err(ParseError::Invalid {
            what: "UBI EC header",
            offset: node.offset,
            detail: format!(
                "VID header {vid_off:#x} / data {data_off:#x} outside the {peb:#x}-byte PEB"
            ),
        });
    }
    let pebs = b.len() as u64 / peb;
    let mut lebs: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    let mut table: Option<u64> = None;
    for i in 0..pebs {
        let p = i * peb;
        if slice(b, p + vid_off, 4, "vid").ok() != Some(&VID_MAGIC[..]) {
            continue;
        }
        let vol = be32(b, p + vid_off + 8, "vol_id")?;
        if vol == LAYOUT_VOLUME {
            table.get_or_insert(p + data_off);
        } else {
            *lebs.entry(vol).or_insert(0) += 1;
        }
    }
    let mut vols = Vec::new();
    if let Some(t) = table {
        for i in 0..MAX_VOLUMES as u64 {
            let Ok(rec) = slice(b, t + i * 172, 172, "ubi vtbl record") else {
                break;
            };
            let reserved = u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]);
            if reserved == 0 {
                continue;
            }
            let name_len = usize::from(u16::from_be_bytes([rec[14], rec[15]])).min(128);
            let name = String::from_utf8_lossy(&rec[16..16 + name_len]).into_owned();
            vols.push(serde_json::json!({
                "id": i,
                "name": name,
                "type": if rec[12] == 1 { "dynamic" } else { "static" },
                "reserved-pebs": reserved,
                "lebs-found": lebs.get(&(i as u32)).copied().unwrap_or(0),
            }));
        }
    }
    let r = Region::new(
        RegionKind::Filesystem,
        "ubi",
        &node.data,
        node.offset,
        node.size,
    )
    .with_attr("format", "ubi")
    .with_attr("peb-size", peb)
    .with_attr("volumes", vols);
    Ok(vec![r])
}
