//! FIT images (U-Boot's Flattened Image Tree) and legacy uImages.
//!
//! A FIT is a device tree: `/images/NAME { data | data-offset/data-position + data-size; type; arch;
//! compression; hash-N { algo; value; }; signature-N {...} }` and `/configurations`. Each image becomes a
//! region `image[NAME]` (kind `fit-image`) over its data, with its facts as attributes; every `hash-N` is
//! recomputed (sha1, sha256, sha384, sha512, md5, crc32) and a stale one is a `fit-hash-mismatch` note,
//! with or without a baseline. The FDT bytes around the images are `fdt` header nodes. The FIT's content
//! extent is `totalsize` (plus external data); the rest of the partition is `slack` that must be blank.
//!
//! A legacy uImage is a 64-byte big-endian header (magic 0x27051956, header CRC32, data CRC32, name[32])
//! followed by `ih_size` data bytes: nodes `header` and `image[NAME]`; wrong CRCs are `uimage-header-crc` /
//! `uimage-data-crc` notes. Reference: `dumpimage -l`.

#![deny(clippy::arithmetic_side_effects)]

use std::sync::Arc;

use sha2::Digest as _;

use crate::error::ParseError;
use crate::finding::{Code, Evidence, Scheme, Status};
use crate::formats::fdt::{self, Fdt};
use crate::formats::util::{be32, slice};
use crate::formats::{Confidence, Ctx, Parsed};
use crate::input::Data;
use crate::region::{Note, Policy, Region, RegionKind};

pub const UIMAGE_MAGIC: u32 = 0x2705_1956;
/// Most images one FIT may describe.
pub const MAX_IMAGES: usize = 4096;

pub fn probe_fit(b: &[u8]) -> Option<Confidence> {
    if !fdt::probe(b) {
        return None;
    }
    let f = Fdt::parse(b).ok()?;
    f.root.child("images")?;
    Some(Confidence::High)
}

pub fn probe_uimage(b: &[u8]) -> Option<Confidence> {
    if be32(b, 0, "uimage").ok()? != UIMAGE_MAGIC || b.len() < 64 {
        return None;
    }
    Some(Confidence::High)
}

/// The facts of one FIT image, for `inspect` and for layout discovery.
#[derive(Debug, Clone)]
pub struct FitImage {
    pub name: String,
    pub typ: Option<String>,
    /// Offset and length of the data inside the FIT buffer.
    pub data: Option<(u64, u64)>,
}

/// The images of the FIT at the start of `b`, with their data ranges (for layout discovery).
pub fn fit_images(b: &[u8]) -> Result<Vec<FitImage>, ParseError> {
    let f = Fdt::parse(b)?;
    let images = f.root.child("images").ok_or(ParseError::Invalid {
        what: "FIT",
        offset: 0,
        detail: "no /images node".into(),
    })?;
    let mut out = Vec::new();
    for img in images.children.iter().take(MAX_IMAGES) {
        let data = image_data(&f, img, b.len() as u64).ok().flatten();
        out.push(FitImage {
            name: img.name.clone(),
            typ: f.str_prop(img, "type"),
            data,
        });
    }
    Ok(out)
}

/// Why an image's external data cannot be located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ImageDataError {
    #[error("data-size without data-offset or data-position")]
    NoOffset,
    #[error("external data {start:#x}+{size:#x} lies outside the {have:#x} bytes available")]
    Outside { start: u64, size: u64, have: u64 },
}

/// Where an image's data lies: embedded `data`, or external `data-position` / `data-offset` + `data-size`.
fn image_data(f: &Fdt, img: &fdt::Node, have: u64) -> Result<Option<(u64, u64)>, ImageDataError> {
    if let Some(p) = img.prop("data") {
        return Ok(Some((p.offset, p.len)));
    }
    let Some(size) = f.u64_prop(img, "data-size") else {
        return Ok(None);
    };
    let start = if let Some(pos) = f.u64_prop(img, "data-position") {
        pos
    } else if let Some(off) = f.u64_prop(img, "data-offset") {
        (f.totalsize.saturating_add(3) & !3).saturating_add(off)
    } else {
        return Err(ImageDataError::NoOffset);
    };
    match start.checked_add(size) {
        Some(end) if end <= have => Ok(Some((start, size))),
        _ => Err(ImageDataError::Outside { start, size, have }),
    }
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    let s = s.trim().to_string();
    if s.is_empty() {
        "unnamed".into()
    } else {
        s
    }
}

/// Computes `algo` over `data`; `None` for algorithms this build does not know.
pub fn compute_hash(algo: &str, data: &[u8]) -> Option<Vec<u8>> {
    Some(match algo {
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha384" => sha2::Sha384::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        "sha1" => {
            use sha1::Digest as _;
            sha1::Sha1::digest(data).to_vec()
        }
        "md5" => {
            use md5::Digest as _;
            md5::Md5::digest(data).to_vec()
        }
        "crc32" => crc32fast::hash(data).to_be_bytes().to_vec(),
        _ => return None,
    })
}

/// Fills `[start, end)` of `data` around `children` with nodes of `kind`/`name`/`policy`.
pub fn fill(
    data: &Arc<Data>,
    start: u64,
    end: u64,
    children: &mut Vec<Region>,
    kind: RegionKind,
    name: &str,
    policy: Policy,
) {
    children.sort_by_key(|c| (c.offset, c.size));
    let mut out = Vec::with_capacity(children.len().saturating_mul(2).saturating_add(1));
    let mut cursor = start;
    for c in children.drain(..) {
        let to = c.offset.min(end);
        if to > cursor && Arc::ptr_eq(&c.data, data) {
            out.push(
                Region::new(kind, name, data, cursor, to.saturating_sub(cursor))
                    .with_policy(policy),
            );
        }
        if Arc::ptr_eq(&c.data, data) {
            cursor = cursor.max(c.end());
        }
        out.push(c);
    }
    if cursor < end {
        out.push(
            Region::new(kind, name, data, cursor, end.saturating_sub(cursor)).with_policy(policy),
        );
    }
    *children = out;
}

/// Index of the first byte that is not `blank` (word-at-a-time: slack is most of a flash image).
pub fn first_non_blank(b: &[u8], blank: u8) -> Option<usize> {
    let word = u64::from_ne_bytes([blank; 8]);
    let mut chunks = b.chunks_exact(64);
    let mut base = 0usize;
    for c in &mut chunks {
        let all = c
            .chunks_exact(8)
            .all(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) == word);
        if !all {
            return c
                .iter()
                .position(|&x| x != blank)
                .map(|p| base.saturating_add(p));
        }
        base = base.saturating_add(64);
    }
    chunks
        .remainder()
        .iter()
        .position(|&x| x != blank)
        .map(|p| base.saturating_add(p))
}

/// The blank slack node after a partition's content (`not-blank` note when it holds data).
pub fn slack(data: &Arc<Data>, start: u64, end: u64, blank: u8) -> Option<Region> {
    if end <= start {
        return None;
    }
    let mut r = Region::new(
        RegionKind::FreeSpace,
        "slack",
        data,
        start,
        end.saturating_sub(start),
    )
    .with_policy(Policy::Blank);
    let b = r.bytes();
    if let Some(first) = first_non_blank(b, blank) {
        let count = b.iter().filter(|&&x| x != blank).count();
        r.notes.push(Note::new(
            Code::NotBlank,
            format!(
                "{count} non-blank byte(s) in the slack after the content (first at {:#x})",
                start.saturating_add(first as u64)
            ),
            Some(start.saturating_add(first as u64)),
        ));
    }
    Some(r)
}

/// The registry entry.
pub const FORMAT_FIT: crate::formats::Format = crate::formats::Format {
    name: "fit",
    description: "U-Boot FIT image (flattened device tree with /images)",
    probe: probe_fit,
    parse: parse_fit,
    scope: crate::formats::Scope::File(crate::formats::Confidence::Low),
    component: Some("bmc"),
    policy: Some(crate::region::Policy::Static),
    not_inside: &["bmc"],
    payloads: &[],
    package: None,
};

/// Parser for a partition (or any container) that starts with a FIT: the `fit` node over the tree and its
/// images (header and `/images`, one node per image with its hashes checked, `/configurations`), then
/// the blank `slack` after it.
pub fn parse_fit(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let f = Fdt::parse(b)?;
    let images = f.root.child("images").ok_or(ParseError::Invalid {
        what: "FIT",
        offset: node.offset,
        detail: "no /images node".into(),
    })?;
    let base = node.offset;
    let mut extent = (f.totalsize.saturating_add(3) & !3).min(b.len() as u64);
    let mut kids = Vec::new();
    let mut notes = Vec::new();
    if images.children.len() > MAX_IMAGES {
        notes.push(Note::new(
            Code::LimitExceeded,
            format!(
                "FIT lists {} images; only the first {MAX_IMAGES} are read",
                images.children.len()
            ),
            Some(base),
        ));
    }
    let listed = images.children.iter().take(MAX_IMAGES);
    let names: Vec<String> = listed.clone().map(|img| img.name.clone()).collect();
    for img in listed {
        if let Some((r, external_end)) = image_node(&f, img, node, &mut notes)? {
            extent = extent.max(external_end);
            kids.push(r);
        }
    }
    // Overlapping image data (two images sharing bytes) is noted; both nodes are kept and hashed.
    kids.sort_by_key(|k| (k.offset, k.size));
    for w in kids.windows(2) {
        if w[1].offset < w[0].end() {
            notes.push(Note::new(
                Code::PartitionOverlap,
                format!("FIT images `{}` and `{}` overlap", w[0].name, w[1].name),
                Some(w[1].offset),
            ));
        }
    }
    fill(
        &node.data,
        base,
        base.saturating_add(extent),
        &mut kids,
        RegionKind::Header,
        "fdt",
        Policy::Static,
    );
    let mut fit = Region::new(RegionKind::FitImage, "fit", &node.data, base, extent)
        .with_attr("format", "fit")
        .with_attr("images", names)
        .with_attr("totalsize", f.totalsize);
    if let Some(d) = f.str_prop(&f.root, "description") {
        fit.attrs.insert("description".into(), d.into());
    }
    configurations(&f, &mut fit);
    fit.notes = notes;
    fit.children = kids;
    let mut out = vec![fit];
    out.extend(slack(
        &node.data,
        base.saturating_add(extent),
        node.end(),
        ctx.opts.blank,
    ));
    Ok(out.into())
}

/// The node of one `/images` entry over its data, with its facts as attributes and its `hash-N` and
/// `signature-N` subnodes as evidence, and where external data ends (0 for embedded data); `None`, with a
/// note, for an image without data or with data outside the buffer.
fn image_node(
    f: &Fdt,
    img: &fdt::Node,
    node: &Region,
    notes: &mut Vec<Note>,
) -> Result<Option<(Region, u64)>, ParseError> {
    let b = node.bytes();
    let base = node.offset;
    let (off, len) = match image_data(f, img, b.len() as u64) {
        Ok(Some(r)) => r,
        Ok(None) => {
            notes.push(Note::new(
                Code::Unparsed,
                format!("FIT image `{}` has no data", img.name),
                Some(base),
            ));
            return Ok(None);
        }
        Err(e) => {
            notes.push(Note::new(
                Code::PartitionOutOfBounds,
                format!("FIT image `{}`: {e}", img.name),
                Some(base),
            ));
            return Ok(None);
        }
    };
    let external = img.prop("data").is_none();
    let mut r = Region::new(
        RegionKind::FitImage,
        format!("image[{}]", sanitize(&img.name)),
        &node.data,
        base.saturating_add(off),
        len,
    )
    .with_attr("name", img.name.clone());
    for key in ["type", "arch", "os", "compression", "description"] {
        if let Some(v) = f.str_prop(img, key) {
            r.attrs.insert(key.into(), v.into());
        }
    }
    for key in ["load", "entry"] {
        if let Some(v) = f.u64_prop(img, key) {
            r.attrs.insert(key.into(), format!("{v:#x}").into());
        }
    }
    if external {
        r.attrs.insert("external-data".into(), true.into());
    }
    let data = slice(b, off, len, "FIT image data")?;
    image_checks(f, img, data, &mut r);
    let external_end = if external { off.saturating_add(len) } else { 0 };
    Ok(Some((r, external_end)))
}

/// Checks an image's `hash-N` subnodes against its data: `fit-hash` evidence on the image node (`valid`,
/// `invalid` with a `fit-hash-mismatch` note, or `not-verified` for an algorithm this build does not
/// compute), and the declared digests as the `hashes` attribute (`node`, `algo`, `value`, as `dumpimage
/// -l` lists them). A `signature-N` subnode is `fit-signature` evidence, `not-verified`. Both digests sit
/// in the bytes they describe: whoever rewrites the data rewrites them, so they protect nothing.
fn image_checks(f: &Fdt, img: &fdt::Node, data: &[u8], r: &mut Region) {
    let mut hashes = Vec::new();
    for h in &img.children {
        let bn = h.base_name();
        if bn.starts_with("hash") {
            let algo = f.str_prop(h, "algo").unwrap_or_default();
            let stored = h
                .prop("value")
                .map(|p| f.value(p).to_vec())
                .unwrap_or_default();
            let status = match compute_hash(&algo, data) {
                None => Status::NotVerified(format!("{}: unsupported algorithm `{algo}`", h.name)),
                Some(c) if c == stored => Status::Valid,
                Some(c) => {
                    let why = format!(
                        "FIT image `{}` {}: stored {algo} {} but the data hashes to {}",
                        img.name,
                        h.name,
                        hex::encode(&stored),
                        hex::encode(c)
                    );
                    r.notes.push(Note::new(
                        Code::FitHashMismatch,
                        why.clone(),
                        Some(r.offset),
                    ));
                    Status::Invalid(why)
                }
            };
            r.evidence.push(Evidence::on_node(Scheme::FitHash, status));
            hashes.push(serde_json::json!({
                "node": h.name,
                "algo": algo,
                "value": hex::encode(&stored),
            }));
        } else if bn.starts_with("signature") {
            r.evidence.push(signature_evidence(f, h, "image"));
        }
    }
    if !hashes.is_empty() {
        r.attrs.insert("hashes".into(), hashes.into());
    }
}

/// A FIT `signature-N` node as evidence: `fit-signature`, `not-verified` (fwscan holds no FIT keys; U-Boot
/// checks them against the public keys in its own device tree), naming the key hint as signer.
fn signature_evidence(f: &Fdt, s: &fdt::Node, over: &str) -> Evidence {
    let algo = f.str_prop(s, "algo").unwrap_or_else(|| "unknown".into());
    let e = Evidence::on_node(
        Scheme::FitSignature,
        Status::NotVerified(format!(
            "{over} {} ({algo}): FIT signatures are not verified",
            s.name
        )),
    );
    match f.str_prop(s, "key-name-hint") {
        Some(k) => e.with_signer(k),
        None => e,
    }
}

/// The `/configurations` node: each configuration's images as the `configurations` attribute, the
/// default, and every configuration signature as `fit-signature` evidence on the FIT node.
fn configurations(f: &Fdt, fit: &mut Region) {
    let Some(cfgs) = f.root.child("configurations") else {
        return;
    };
    let mut list = Vec::new();
    for c in cfgs.children.iter().take(MAX_IMAGES) {
        let mut o = serde_json::Map::new();
        o.insert("name".into(), c.name.clone().into());
        for key in ["kernel", "fdt", "ramdisk", "firmware", "loadables"] {
            let v = f.str_list(c, key);
            if !v.is_empty() {
                o.insert(key.into(), v.into());
            }
        }
        for s in c
            .children
            .iter()
            .filter(|s| s.base_name().starts_with("signature"))
        {
            let over = format!("configuration `{}`", c.name);
            fit.evidence.push(signature_evidence(f, s, &over));
        }
        list.push(serde_json::Value::Object(o));
    }
    fit.attrs.insert("configurations".into(), list.into());
    if let Some(d) = f.str_prop(cfgs, "default") {
        fit.attrs.insert("default-configuration".into(), d.into());
    }
}

fn uimage_os(v: u8) -> &'static str {
    match v {
        5 => "linux",
        17 => "u-boot",
        27 => "arm-trusted-firmware",
        _ => "other",
    }
}

fn uimage_arch(v: u8) -> &'static str {
    match v {
        2 => "arm",
        3 => "x86",
        5 => "mips",
        7 => "powerpc",
        20 => "x86_64",
        22 => "arm64",
        26 => "riscv",
        _ => "other",
    }
}

fn uimage_type(v: u8) -> &'static str {
    match v {
        1 => "standalone",
        2 => "kernel",
        3 => "ramdisk",
        4 => "multi",
        5 => "firmware",
        6 => "script",
        7 => "filesystem",
        8 => "flat_dt",
        _ => "other",
    }
}

fn uimage_comp(v: u8) -> &'static str {
    match v {
        0 => "none",
        1 => "gzip",
        2 => "bzip2",
        3 => "lzma",
        4 => "lzo",
        5 => "lz4",
        6 => "zstd",
        _ => "other",
    }
}

/// The registry entry.
pub const FORMAT_UIMAGE: crate::formats::Format = crate::formats::Format {
    name: "uimage",
    description: "legacy U-Boot uImage (64-byte header, CRC32s)",
    probe: probe_uimage,
    parse: parse_uimage,
    scope: crate::formats::Scope::File(crate::formats::Confidence::Low),
    component: Some("bmc"),
    policy: Some(crate::region::Policy::Static),
    not_inside: &["bmc"],
    payloads: &[],
    package: None,
};

/// Parser for a partition that starts with a legacy uImage.
pub fn parse_uimage(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let base = node.offset;
    let hdr = slice(b, 0, 64, "uImage header")?;
    if be32(hdr, 0, "uImage magic")? != UIMAGE_MAGIC {
        return Err(ParseError::Invalid {
            what: "uImage magic",
            offset: base,
            detail: "not 0x27051956".into(),
        });
    }
    let hcrc = be32(hdr, 4, "uImage hcrc")?;
    let size = u64::from(be32(hdr, 12, "uImage size")?);
    let dcrc = be32(hdr, 24, "uImage dcrc")?;
    let mut zeroed = hdr.to_vec();
    zeroed[4..8].fill(0);
    let name_raw = &hdr[32..64];
    let name =
        String::from_utf8_lossy(name_raw.split(|&c| c == 0).next().unwrap_or(&[])).into_owned();
    let mut header = Region::new(RegionKind::Header, "header", &node.data, base, 64)
        .with_attr("load", format!("{:#x}", be32(hdr, 16, "load")?))
        .with_attr("entry", format!("{:#x}", be32(hdr, 20, "entry")?));
    let computed_h = crc32fast::hash(&zeroed);
    let status = if computed_h != hcrc {
        let why =
            format!("uImage header CRC is {hcrc:#010x}, the header hashes to {computed_h:#010x}");
        header.notes.push(Note::new(
            Code::UimageHeaderCrc,
            why.clone(),
            Some(base.saturating_add(4)),
        ));
        Status::Invalid(why)
    } else {
        Status::Valid
    };
    header
        .evidence
        .push(Evidence::on_node(Scheme::UimageCrc, status));
    let mut container_notes = Vec::new();
    let avail = (b.len() as u64).saturating_sub(64);
    let dlen = if size > avail {
        container_notes.push(Note::new(
            Code::PartitionOutOfBounds,
            format!("uImage data size {size:#x} exceeds the {avail:#x} bytes available"),
            Some(base.saturating_add(12)),
        ));
        avail
    } else {
        size
    };
    let mut img = Region::new(
        RegionKind::FitImage,
        format!("image[{}]", sanitize(&name)),
        &node.data,
        base.saturating_add(64),
        dlen,
    )
    .with_attr("name", name.clone())
    .with_attr("os", uimage_os(hdr[28]))
    .with_attr("arch", uimage_arch(hdr[29]))
    .with_attr("type", uimage_type(hdr[30]))
    .with_attr("compression", uimage_comp(hdr[31]))
    .with_attr("data-crc", format!("{dcrc:#010x}"));
    let status = if dlen == size {
        let computed = crc32fast::hash(img.bytes());
        if computed != dcrc {
            let why =
                format!("uImage data CRC is {dcrc:#010x}, the data hashes to {computed:#010x}");
            img.notes.push(Note::new(
                Code::UimageDataCrc,
                why.clone(),
                Some(base.saturating_add(64)),
            ));
            Status::Invalid(why)
        } else {
            Status::Valid
        }
    } else {
        Status::NotVerified(format!(
            "the data is cut short ({dlen:#x} of {size:#x} bytes): its CRC is not computed"
        ))
    };
    img.evidence
        .push(Evidence::on_node(Scheme::UimageCrc, status));
    let extent = dlen.saturating_add(64);
    let mut u = Region::new(RegionKind::FitImage, "uimage", &node.data, base, extent)
        .with_attr("format", "uimage")
        .with_attr("name", name);
    u.notes = container_notes;
    u.children = vec![header, img];
    let mut out = vec![u];
    out.extend(slack(
        &node.data,
        base.saturating_add(extent),
        node.end(),
        ctx.opts.blank,
    ));
    Ok(out.into())
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn first_non_blank_finds_every_position() {
        for len in [0usize, 1, 7, 63, 64, 65, 200] {
            let b = vec![0xFFu8; len];
            assert_eq!(first_non_blank(&b, 0xFF), None);
            for at in 0..len {
                let mut c = b.clone();
                c[at] = 0x7F;
                if at + 1 < len {
                    c[len - 1] = 0;
                }
                assert_eq!(first_non_blank(&c, 0xFF), Some(at), "len {len} at {at}");
            }
        }
    }

    #[test]
    fn uimage_header_fields_and_crcs() {
        let data = b"kernel bytes".to_vec();
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(&UIMAGE_MAGIC.to_be_bytes());
        h[12..16].copy_from_slice(&(data.len() as u32).to_be_bytes());
        h[24..28].copy_from_slice(&crc32fast::hash(&data).to_be_bytes());
        h[28..32].copy_from_slice(&[5, 2, 2, 0]);
        h[32..36].copy_from_slice(b"test");
        let crc = crc32fast::hash(&h);
        h[4..8].copy_from_slice(&crc.to_be_bytes());
        let mut img = h.clone();
        img.extend_from_slice(&data);
        img.extend_from_slice(&[0xFF; 20]);
        let d = Arc::new(Data::Owned(img));
        let node = Region::new(RegionKind::Partition, "kernel", &d, 0, d.len() as u64);
        let ctx = Ctx::new(&crate::formats::ParseOptions::default());
        let out = parse_uimage(&ctx, &node).unwrap().children;
        let u = &out[0];
        assert_eq!(u.children[1].name, "image[test]");
        assert_eq!(u.children[1].attr_str("arch"), Some("arm"));
        assert!(u.children.iter().all(|c| c.notes.is_empty()));
        // Both CRCs checked: `uimage-crc` evidence, valid, protecting nothing.
        for c in &u.children {
            assert_eq!(c.evidence.len(), 1, "{}", c.name);
            assert_eq!(c.evidence[0].scheme, Scheme::UimageCrc);
            assert!(c.evidence[0].status.is_valid());
            assert_eq!(c.evidence[0].protects(), None);
        }
        // A flipped data byte: invalid data CRC evidence (and the note), the header still valid.
        let mut bad = d.to_vec();
        bad[64] ^= 1;
        let bad = Arc::new(Data::Owned(bad));
        let node = Region::new(RegionKind::Partition, "kernel", &bad, 0, bad.len() as u64);
        let out = parse_uimage(&ctx, &node).unwrap().children;
        let (h, i) = (&out[0].children[0], &out[0].children[1]);
        assert!(h.evidence[0].status.is_valid());
        assert!(matches!(&i.evidence[0].status, Status::Invalid(w) if w.contains("data CRC")));
        assert_eq!(i.notes[0].code, Code::UimageDataCrc);
        assert_eq!(out[1].name, "slack");
        assert_eq!(out[1].size, 20);
        // Truncated data is noted, not a panic.
        let short = Arc::new(Data::Owned(d[..70].to_vec()));
        let node = Region::new(RegionKind::Partition, "kernel", &short, 0, 70);
        let out = parse_uimage(&ctx, &node).unwrap().children;
        assert_eq!(out[0].notes[0].code.as_str(), "partition-out-of-bounds");
        let img = &out[0].children[1];
        assert!(matches!(img.evidence[0].status, Status::NotVerified(_)));
    }
}
