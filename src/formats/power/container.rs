//! An OpenPOWER secure-boot container (`*.stb`: skiboot, the kernel and other PNOR partitions signed for
//! the POWER secure ROM), as skiboot's `libstb/container.h` and `container.c` lay it out: big-endian,
//! packed, 4 KiB of headers before the payload.
//! ```text
//! ROM_container_raw     0x000 magic 0x17082011, version u16, container_size u64, target_hrmor u64,
//!                             stack_pointer u64, three hardware public keys (P-521, 132 bytes each)
//! ROM_prefix_header_raw 0x1AA version u16, hash_alg u8 (1: SHA-512), sig_alg u8 (1: SHA-512/ECDSA-521),
//!                             code_start_offset u64, reserved u64, flags u32, sw_key_count u8 (0x18),
//!                             payload_size u64 (0x19), payload_hash[64] (0x21), ecid_count u8 (0x61),
//!                             ecid_count x 16 bytes
//! prefix data                 three hardware signatures, then sw_key_count software public keys
//! ROM_sw_header_raw           as the prefix header (a reserved byte where the key count was)
//! software signatures         sw_key_count signatures; zeros to 0x1000
//! payload               0x1000 payload_size bytes (the protected code); anything after it is unprotected
//! ```
//! Nodes: `container-header`, `prefix-header`, `prefix-data`, `sw-header`, `sw-signatures`, `reserved`
//! (to 0x1000), `payload` (parsed as what it holds, skiboot for instance) and `unprotected` (if any). The
//! ECDSA signatures are not verified and the payload hash is listed, not checked: the hardware keys' hash
//! is in the processor's SEEPROM, not in the file, and a changed payload is found by comparison.
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::formats::util::{be32, be64, slice, u8_at};
use crate::formats::{self, Confidence, Ctx, Format, Parsed, Scope};
use crate::region::{Region, RegionKind};

/// `ROM_MAGIC_NUMBER`.
pub const MAGIC: u32 = 0x1708_2011;
/// Size of the headers before the payload (`SECURE_BOOT_HEADERS_SIZE`).
pub const HEADERS: u64 = 0x1000;
/// `ROM_container_raw`, `ROM_prefix_header_raw` / `ROM_sw_header_raw` without ECIDs, one ECID, one P-521
/// key or signature.
const CONTAINER: u64 = 0x1AA;
const PREFIX: u64 = 0x62;
const ECID: u64 = 16;
const KEY: u64 = 132;

/// Offsets (from the container's start) of its parts, from its counts.
#[derive(Debug, Clone, Copy)]
struct Parts {
    pd: u64,
    sh: u64,
    ssig: u64,
    ssig_end: u64,
    keys: u64,
    payload_size: u64,
}

fn be16(b: &[u8], off: u64, what: &'static str) -> Result<u16, ParseError> {
    let s = slice(b, off, 2, what)?;
    Ok(u16::from_be_bytes([s[0], s[1]]))
}

// Reviewed: the counts are single bytes (at most 255 ECIDs of 16 bytes, 3 keys of 132 bytes): every offset
// stays below 16 KiB.
#[allow(clippy::arithmetic_side_effects)]
fn parts(b: &[u8]) -> Result<Parts, ParseError> {
    let bad = |o: u64, detail: String| ParseError::Invalid {
        what: "secure-boot container",
        offset: o,
        detail,
    };
    if (b.len() as u64) < HEADERS || be32(b, 0, "container magic")? != MAGIC {
        return Err(bad(0, "no 0x17082011 magic or shorter than 4 KiB".into()));
    }
    let keys = u64::from(u8_at(b, CONTAINER + 0x18, "sw_key_count")?);
    if !(1..=3).contains(&keys) {
        return Err(bad(
            CONTAINER + 0x18,
            format!("{keys} software keys (1 to 3)"),
        ));
    }
    let ph_ecids = u64::from(u8_at(b, CONTAINER + 0x61, "prefix ecid_count")?);
    let pd = CONTAINER + PREFIX + ph_ecids * ECID;
    let sh = pd + 3 * KEY + keys * KEY;
    if sh + PREFIX > HEADERS {
        return Err(bad(
            CONTAINER + 0x61,
            format!("software header at {sh:#x}, past 4 KiB"),
        ));
    }
    let sh_ecids = u64::from(u8_at(b, sh + 0x61, "software header ecid_count")?);
    let ssig = sh + PREFIX + sh_ecids * ECID;
    let ssig_end = ssig + keys * KEY;
    if ssig_end > HEADERS {
        return Err(bad(
            sh + 0x61,
            format!("headers end at {ssig_end:#x}, past 4 KiB"),
        ));
    }
    let payload_size = be64(b, sh + 0x19, "payload_size")?;
    if payload_size > (b.len() as u64).saturating_sub(HEADERS) {
        return Err(bad(
            sh + 0x19,
            format!("payload size {payload_size:#x} runs past the end of the file"),
        ));
    }
    Ok(Parts {
        pd,
        sh,
        ssig,
        ssig_end,
        keys,
        payload_size,
    })
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    let p = parts(b).ok()?;
    // Version 1 and the only algorithms the ROM knows (SHA-512, SHA-512/ECDSA-521), in both headers.
    let ok = |h: u64| {
        be16(b, h, "version").ok() == Some(1)
            && slice(b, h.saturating_add(2), 2, "algorithms").ok() == Some(&[1, 1][..])
    };
    (be16(b, 4, "version").ok() == Some(1) && ok(CONTAINER) && ok(p.sh)).then_some(Confidence::High)
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "stb-container",
    description:
        "OpenPOWER secure-boot container (.stb): ROM container header, prefix header and data, \
                  software header and signatures, payload",
    probe,
    parse,
    scope: Scope::File(Confidence::High),
    component: Some("bios"),
    policy: None,
    not_inside: &["stb-container"],
    payloads: &[],
    package: None,
};

/// The attributes of a prefix or software header at `h`.
fn header_node(
    node: &Region,
    b: &[u8],
    h: u64,
    size: u64,
    name: &str,
) -> Result<Region, ParseError> {
    let at = node.offset.saturating_add(h);
    let f8 = |o: u64, w: &'static str| u8_at(b, h.saturating_add(o), w);
    let f64 = |o: u64, w: &'static str| be64(b, h.saturating_add(o), w);
    let hash = slice(b, h.saturating_add(0x21), 64, "payload_hash")?;
    let mut r = Region::new(RegionKind::Header, name, &node.data, at, size)
        .with_attr("version", be16(b, h, "version")?)
        .with_attr("hash-alg", f8(2, "hash_alg")?)
        .with_attr("sig-alg", f8(3, "sig_alg")?)
        .with_attr(
            "code-start-offset",
            format!("{:#x}", f64(4, "code_start_offset")?),
        )
        .with_attr(
            "flags",
            format!("{:#010x}", be32(b, h.saturating_add(0x14), "flags")?),
        )
        .with_attr("payload-size", f64(0x19, "payload_size")?)
        .with_attr("payload-hash", hex::encode(hash))
        .with_attr("ecid-count", f8(0x61, "ecid_count")?);
    if name == "prefix-header" {
        r.attrs
            .insert("sw-key-count".into(), f8(0x18, "sw_key_count")?.into());
    }
    Ok(r)
}

pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let p = parts(b).map_err(|e| e.rebased(node.offset))?;
    let at = |o: u64| node.offset.saturating_add(o);
    let span = |a: u64, z: u64| z.saturating_sub(a);
    let container = Region::new(
        RegionKind::Header,
        "container-header",
        &node.data,
        at(0),
        CONTAINER,
    )
    .with_attr("version", be16(b, 4, "version")?)
    .with_attr("container-size", be64(b, 6, "container_size")?)
    .with_attr(
        "target-hrmor",
        format!("{:#x}", be64(b, 0xE, "target_hrmor")?),
    )
    .with_attr(
        "stack-pointer",
        format!("{:#x}", be64(b, 0x16, "stack_pointer")?),
    );
    let prefix = header_node(node, b, CONTAINER, span(CONTAINER, p.pd), "prefix-header")?;
    let pdata = Region::new(
        RegionKind::Header,
        "prefix-data",
        &node.data,
        at(p.pd),
        span(p.pd, p.sh),
    )
    .with_attr("hw-signatures", 3)
    .with_attr("sw-keys", p.keys);
    let sw = header_node(node, b, p.sh, span(p.sh, p.ssig), "sw-header")?;
    let ssig = Region::new(
        RegionKind::Header,
        "sw-signatures",
        &node.data,
        at(p.ssig),
        span(p.ssig, p.ssig_end),
    );
    let mut kids = vec![container, prefix, pdata, sw, ssig];
    if p.ssig_end < HEADERS {
        kids.push(Region::new(
            RegionKind::Header,
            "reserved",
            &node.data,
            at(p.ssig_end),
            span(p.ssig_end, HEADERS),
        ));
    }
    let end = HEADERS.saturating_add(p.payload_size);
    if p.payload_size > 0 {
        let mut payload = Region::new(
            RegionKind::Blob,
            "payload",
            &node.data,
            at(HEADERS),
            p.payload_size,
        );
        formats::descend_file(ctx, &mut payload);
        kids.push(payload);
    }
    let len = b.len() as u64;
    if end < len && !b[end as usize..].iter().all(|&c| c == ctx.opts.blank) {
        kids.push(Region::new(
            RegionKind::Blob,
            "unprotected",
            &node.data,
            at(end),
            span(end, len),
        ));
    }
    Ok(Parsed::from(kids)
        .attr("sw-key-count", p.keys)
        .attr("payload-size", p.payload_size))
}

/// A container for tests and fuzz seeds: version 1, SHA-512/ECDSA-521, `keys` software keys (1 to 3), no
/// ECIDs, zero keys and signatures, then `payload`.
#[cfg(any(test, feature = "fixtures"))]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)] // test fixtures of small, known sizes
pub fn build(keys: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 0x1000];
    b[..4].copy_from_slice(&MAGIC.to_be_bytes());
    b[4..6].copy_from_slice(&1u16.to_be_bytes());
    let size = (0x1000 + payload.len()) as u64;
    b[6..14].copy_from_slice(&size.to_be_bytes());
    let ph = CONTAINER as usize;
    let sh = ph + PREFIX as usize + (3 + usize::from(keys)) * KEY as usize;
    for h in [ph, sh] {
        b[h..h + 2].copy_from_slice(&1u16.to_be_bytes());
        b[h + 2] = 1;
        b[h + 3] = 1;
    }
    b[ph + 0x18] = keys;
    b[sh + 0x19..sh + 0x21].copy_from_slice(&(payload.len() as u64).to_be_bytes());
    b.extend_from_slice(payload);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_a_written_container_and_mutations_stay_in_bounds() {
        let img = build(1, &[0x5A; 0x300]);
        let data = std::sync::Arc::new(crate::input::Data::Owned(img.clone()));
        let t = crate::formats::parse_image(data, &crate::formats::ParseOptions::default());
        assert_eq!(t.attrs["format"], "stb-container");
        let kids: Vec<(&str, u64, u64)> = t
            .children
            .iter()
            .map(|c| (c.name.as_str(), c.offset, c.size))
            .collect();
        let sh = 0x1AA + 0x62 + 4 * 132;
        assert_eq!(
            kids,
            [
                ("container-header", 0, 0x1AA),
                ("prefix-header", 0x1AA, 0x62),
                ("prefix-data", 0x20C, 4 * 132),
                ("sw-header", sh, 0x62),
                ("sw-signatures", sh + 0x62, 132),
                ("reserved", sh + 0x62 + 132, 0x1000 - (sh + 0x62 + 132)),
                ("payload", 0x1000, 0x300),
            ]
        );
        assert_eq!(t.children[1].attrs["sw-key-count"], 1);
        assert_eq!(t.children[3].attrs["payload-size"], 0x300);
        crate::formats::util::mutations_stay_in_bounds(&img, "stb-container", 2000);
    }
}
