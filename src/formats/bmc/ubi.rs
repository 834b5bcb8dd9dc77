//! UBI images: erase-counter headers (`UBI#`), volume-id headers (`UBI!`) and the volume table (the
//! layout volume 0x7FFFEFFF, 172-byte records). The raw UBI area (`ubi`) is per-machine: erase counters
//! change on every erase and wear levelling moves blocks. Each volume is reassembled from its logical
//! erase blocks (newest copy by sequence number, LEB order) into its own buffer, `volume[NAME]`, and its
//! content is parsed; volumes holding read-only images (squashfs, FIT, uImage) are pinned static, the
//! others (UBIFS, environments) are per-machine. The `volumes` attribute lists every volume (id, name,
//! type, reserved PEBs, LEBs found).
#![deny(clippy::arithmetic_side_effects)]

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::ParseError;
use crate::formats::util::{be32, slice};
use crate::formats::{Confidence, Ctx, Parsed};
use crate::input::Data;
use crate::region::{Policy, Region, RegionKind};

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

/// One logical erase block found: where its data is and how new it is.
#[derive(Debug, Clone, Copy)]
struct Leb {
    data: u64,
    len: u64,
    sqnum: u64,
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "ubi",
    description: "UBI image (volumes listed)",
    probe,
    parse,
    scope: crate::formats::Scope::File(crate::formats::Confidence::Low),
    component: Some("bmc"),
    policy: None,
    not_inside: &["bmc", "ubi", "u-boot"],
    payloads: &[],
    package: None,
};

// Reviewed: `peb` is a power of two in 16 KiB..=2 MiB (peb_size), `vid_off + 64 <= peb` and `data_off < peb` (checked above), `i < b.len() / peb` so every PEB offset is inside the node; the volume table index is below MAX_VOLUMES and names at most 128 bytes: no overflow.
#[allow(clippy::arithmetic_side_effects)]
pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let peb = peb_size(b).ok_or(ParseError::Invalid {
        what: "UBI",
        offset: node.offset,
        detail: "no second erase-counter header found (PEB size unknown)".into(),
    })?;
    let vid_off = u64::from(be32(b, 16, "ubi vid_hdr_offset")?);
    let data_off = u64::from(be32(b, 20, "ubi data_offset")?);
    if vid_off.saturating_add(64) > peb || data_off >= peb {
        return Err(ParseError::Invalid {
            what: "UBI EC header",
            offset: node.offset,
            detail: format!(
                "VID header {vid_off:#x} / data {data_off:#x} outside the {peb:#x}-byte PEB"
            ),
        });
    }
    let pebs = b.len() as u64 / peb;
    // (volume, lnum) -> newest copy.
    let mut lebs: BTreeMap<(u32, u32), Leb> = BTreeMap::new();
    let mut table: Option<u64> = None;
    for i in 0..pebs {
        let p = i * peb;
        let vid = p + vid_off;
        if slice(b, vid, 4, "vid").ok() != Some(&VID_MAGIC[..]) {
            continue;
        }
        let vol = be32(b, vid + 8, "vol_id")?;
        let lnum = be32(b, vid + 12, "lnum")?;
        let data_size = u64::from(be32(b, vid + 20, "data_size")?);
        let data_pad = u64::from(be32(b, vid + 28, "data_pad")?);
        let sqnum = crate::formats::util::be64(b, vid + 40, "sqnum")?;
        let leb_size = (peb - data_off).saturating_sub(data_pad);
        let vol_type = b.get((vid + 5) as usize).copied().unwrap_or(0);
        let len = if vol_type == 2 {
            data_size.min(leb_size) // static volume: valid bytes of this LEB
        } else {
            leb_size
        };
        if vol == LAYOUT_VOLUME {
            table.get_or_insert(p + data_off);
            continue;
        }
        let leb = Leb {
            data: node.offset + p + data_off,
            len,
            sqnum,
        };
        let e = lebs.entry((vol, lnum)).or_insert(leb);
        if sqnum > e.sqnum {
            *e = leb;
        }
    }
    let mut info = Vec::new();
    let mut children = Vec::new();
    if let Some(t) = table {
        for i in 0..MAX_VOLUMES as u32 {
            let Ok(rec) = slice(b, t + u64::from(i) * 172, 172, "ubi vtbl record") else {
                break;
            };
            let reserved = u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]);
            if reserved == 0 {
                continue;
            }
            let name_len = usize::from(u16::from_be_bytes([rec[14], rec[15]])).min(128);
            let name = String::from_utf8_lossy(&rec[16..16 + name_len]).into_owned();
            let typ = if rec[12] == 1 { "dynamic" } else { "static" };
            let found: Vec<(u32, Leb)> = lebs
                .range((i, 0)..=(i, u32::MAX))
                .map(|(&(_, l), &leb)| (l, leb))
                .collect();
            info.push(serde_json::json!({
                "id": i,
                "name": name,
                "type": typ,
                "reserved-pebs": reserved,
                "lebs-found": found.len(),
            }));
            match volume(ctx, node, i, &name, typ, &found) {
                Ok(Some(v)) => children.push(v),
                Ok(None) => {}
                Err(e) => {
                    let mut v = Region::new(
                        RegionKind::Filesystem,
                        format!("volume[{}]", clean(&name)),
                        &node.data,
                        node.offset,
                        0,
                    )
                    .with_policy(Policy::Mutable)
                    .with_attr(crate::region::UBI_VOLUME_ATTR, name.clone());
                    v.notes
                        .push(crate::formats::unparsed_note("ubi volume", &e));
                    children.push(v);
                }
            }
        }
    }
    let mut r = Region::new(
        RegionKind::Filesystem,
        "ubi",
        &node.data,
        node.offset,
        node.size,
    )
    .with_policy(Policy::Mutable)
    .with_attr("format", "ubi")
    .with_attr("peb-size", peb)
    .with_attr("volumes", info);
    r.children = children;
    Ok(Parsed::from(vec![r]))
}

fn clean(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    if s.is_empty() {
        "unnamed".into()
    } else {
        s
    }
}

/// Reassembles one volume from its LEBs (in LEB order; unmapped LEBs read as blank) into a new buffer,
/// and parses its content. Volumes holding a read-only image (squashfs, FIT, uImage) are pinned static
/// inside the (mutable) UBI area, whose raw bytes change with erase counters and wear levelling; others
/// (UBIFS, environments) are per-machine.
// Reviewed: `leb_size.max(1)` is never 0; `next < lnum` (u32) before it is incremented; each resize is charged to the image's budget first, so `buf.len()` stays below it.
#[allow(clippy::arithmetic_side_effects)]
fn volume(
    ctx: &Ctx,
    node: &Region,
    id: u32,
    name: &str,
    typ: &str,
    found: &[(u32, Leb)],
) -> Result<Option<Region>, ParseError> {
    let Some(&(last, _)) = found.last() else {
        return Ok(None);
    };
    let leb_size = found.iter().map(|(_, l)| l.len).max().unwrap_or(0);
    if u64::from(last) > node.size / leb_size.max(1) {
        return Err(ParseError::Limit {
            what: format!("UBI volume {id}: LEB {last} beyond the UBI area"),
            offset: node.offset,
        });
    }
    let data = &node.data;
    let mut buf = Vec::new();
    let mut next = 0u32;
    for &(lnum, leb) in found {
        if typ == "dynamic" && leb_size > 0 {
            while next < lnum {
                ctx.charge(leb_size, node.offset)?;
                buf.resize(buf.len() + leb_size as usize, 0xFF);
                next += 1;
            }
        }
        let start = usize::try_from(leb.data).unwrap_or(usize::MAX);
        let bytes = start
            .checked_add(leb.len as usize)
            .and_then(|e| data.get(start..e))
            .ok_or(ParseError::Truncated {
                what: "UBI LEB",
                offset: leb.data,
                need: leb.len,
                have: 0,
            })?;
        ctx.charge(leb.len, leb.data)?;
        buf.extend_from_slice(bytes);
        next = lnum.saturating_add(1);
    }
    let len = buf.len() as u64;
    let vbuf = Arc::new(Data::Owned(buf));
    let mut v = Region::new(
        RegionKind::Filesystem,
        format!("volume[{}]", clean(name)),
        &vbuf,
        0,
        len,
    )
    .with_attr("name", name.to_string())
    .with_attr(crate::region::UBI_VOLUME_ATTR, name.to_string())
    .with_attr("volume-id", id)
    .with_attr("type", typ.to_string());
    // A static volume (a kernel, a read-only file system) is pinned inside the mutable UBI area, whose
    // wear levelling moves blocks around; anything else in a volume is per-machine.
    let fmt = crate::formats::detect_inside(v.bytes(), false, Some(&FORMAT));
    if fmt.is_some_and(|f| f.policy == Some(Policy::Static)) {
        v.attrs.insert("pinned".into(), true.into());
    } else {
        v.policy = Policy::Mutable;
    }
    if fmt.is_some() {
        crate::formats::descend(ctx, &mut v, Some(&FORMAT), fmt);
    }
    Ok(Some(v))
}
