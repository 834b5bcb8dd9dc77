//! Arm Trusted Firmware-A Firmware Image Package (FIP).
//!
//! ```text
//! ToC header (16 bytes): name u32 = 0xAA640001, serial_number u32, flags u64
//! ToC entries (40 bytes each): uuid[16], offset_address u64, size u64, flags u64
//! ... terminated by an entry whose UUID is all zeros (its offset marks the end of the payloads)
//! ```
//!
//! Offsets are relative to the start of the package. Every entry becomes a node named after its image
//! (`BL2`, `BL31`, `BL33`, `soc-fw-cert`, ...; names and UUIDs are data in `signatures/fip-uuids.csv`), so
//! a changed byte in BL31 is a finding about `fip/BL31`. A payload that is itself a known format (BL33 as
//! a UEFI firmware volume, U-Boot) is parsed by that format through the registry. Trusted-board-boot
//! certificates (X.509, DER) are listed with their subject, and every hash extension they carry is
//! compared with the image it covers: `fip-hash` evidence on that image names the certificate and says
//! `valid` or `invalid` (with a `fip-hash-mismatch` note). The certificate signatures themselves are not
//! verified here (the root of trust key hash lives in the SoC's fuses, not in the flash), so that evidence
//! protects nothing: it is consistency, not coverage.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::sync::OnceLock;

use sha2::Digest as _;

use crate::error::ParseError;
use crate::finding::{Code, Evidence, Scheme, Status};
use crate::formats::util::{le32, le64, slice};
use crate::formats::{self, Confidence, Ctx, Parsed};
use crate::region::{Note, Region, RegionKind};

/// `TOC_HEADER_NAME`.
pub const TOC_NAME: u32 = 0xAA64_0001;
/// ToC header size.
pub const HEADER: u64 = 16;
/// ToC entry size.
pub const ENTRY: u64 = 40;
/// Most entries read from one ToC (TF-A knows about 40 image types; a FIP holds far fewer).
pub const MAX_ENTRIES: u64 = 4096;
/// The arc of the TBBR object identifiers (`1.3.6.1.4.1.4128.2100.`).
pub const TBBR_OID_PREFIX: &str = "1.3.6.1.4.1.4128.2100.";

const CSV: &str = include_str!("../../../signatures/fip-uuids.csv");

/// One known image type.
#[derive(Debug, Clone)]
pub struct ImageType {
    pub uuid: String,
    /// Short name (`BL31`, `soc-fw-cert`).
    pub name: String,
    /// `fiptool` option (`soc-fw`).
    pub option: String,
    /// The TBBR OID of the certificate extension that holds this image's hash.
    pub hash_oid: Option<String>,
    pub description: String,
}

/// The UUID table of `signatures/fip-uuids.csv`, by UUID.
pub fn image_types() -> &'static HashMap<String, ImageType> {
    static T: OnceLock<HashMap<String, ImageType>> = OnceLock::new();
    T.get_or_init(|| {
        CSV.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let mut it = l.splitn(5, ',');
                let uuid = it.next()?.trim().to_ascii_uppercase();
                let name = it.next()?.trim().to_string();
                let option = it.next()?.trim().to_string();
                let oid = it.next()?.trim();
                let description = it.next()?.trim().to_string();
                Some((
                    uuid.clone(),
                    ImageType {
                        uuid,
                        name,
                        option,
                        hash_oid: (!oid.is_empty()).then(|| format!("{TBBR_OID_PREFIX}{oid}")),
                        description,
                    },
                ))
            })
            .collect()
    })
}

/// A UUID in the byte order it is stored in (TF-A writes its UUIDs as byte arrays).
pub fn uuid(b: &[u8]) -> String {
    let h: Vec<String> = b.iter().map(|x| format!("{x:02X}")).collect();
    let h = h.concat();
    if h.len() != 32 {
        return h;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// One ToC entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub uuid: String,
    pub offset: u64,
    pub size: u64,
    pub flags: u64,
}

/// The ToC of a package: its entries (terminator excluded), the ToC's own length and the end of the
/// furthest payload, or why it is not a FIP.
#[derive(Debug, Clone)]
pub struct Toc {
    pub serial: u32,
    pub flags: u64,
    pub entries: Vec<Entry>,
    pub toc_len: u64,
    /// Where the package ends: the furthest payload end, or the terminator's offset if larger.
    pub extent: u64,
}

/// Reads the ToC at the start of `b`. Entry offsets and sizes are only checked for overflow here; the
/// parser reports entries that run past the package.
pub fn read_toc(b: &[u8]) -> Result<Toc, ParseError> {
    let name = le32(b, 0, "FIP ToC name")?;
    if name != TOC_NAME {
        return Err(ParseError::Invalid {
            what: "FIP ToC header",
            offset: 0,
            detail: format!("name {name:#010x} is not {TOC_NAME:#010x}"),
        });
    }
    let serial = le32(b, 4, "FIP serial number")?;
    let flags = le64(b, 8, "FIP flags")?;
    // Entries cannot outnumber what the buffer holds.
    let max = ((b.len() as u64).saturating_sub(HEADER) / ENTRY).min(MAX_ENTRIES);
    let mut entries = Vec::new();
    let mut pos = HEADER;
    let mut extent = 0u64;
    let mut terminated = false;
    for _ in 0..=max {
        let e = slice(b, pos, ENTRY, "FIP ToC entry")?;
        let u = &e[..16];
        let offset = le64(e, 16, "entry offset")?;
        let size = le64(e, 24, "entry size")?;
        let eflags = le64(e, 32, "entry flags")?;
        // The entry was read at `pos` (slice() checked it lies inside `b`).
        pos = pos.saturating_add(ENTRY);
        if u.iter().all(|&x| x == 0) {
            terminated = true;
            extent = extent.max(offset);
            break;
        }
        let end = offset.checked_add(size).ok_or(ParseError::Overflow {
            what: "FIP entry end",
            offset: pos.saturating_sub(ENTRY),
        })?;
        extent = extent.max(end);
        entries.push(Entry {
            uuid: uuid(u),
            offset,
            size,
            flags: eflags,
        });
    }
    if !terminated {
        return Err(ParseError::Invalid {
            what: "FIP ToC",
            offset: pos,
            detail: "no terminating null-UUID entry".into(),
        });
    }
    Ok(Toc {
        serial,
        flags,
        entries,
        toc_len: pos,
        extent: extent.max(pos),
    })
}

/// A FIP at the start of the buffer: the ToC name, a terminated ToC, and every payload after the ToC.
/// When data follows the package (a flash with firmware volumes after its FIP), the confidence is low, so
/// that the `uefi` format takes the image and places the FIP in front of its first volume.
pub fn probe(b: &[u8]) -> Option<Confidence> {
    let ext = extent(b)?;
    let rest = b.get(ext as usize..).unwrap_or(&[]);
    Some(if rest.iter().all(|&x| x == 0xFF || x == 0x00) {
        Confidence::High
    } else {
        Confidence::Low
    })
}

/// The length of the FIP at the start of `b`: the ToC name, a terminated ToC, at least one entry, and
/// every payload after the ToC and inside `b`.
pub fn extent(b: &[u8]) -> Option<u64> {
    let toc = read_toc(b).ok()?;
    let sane = !toc.entries.is_empty()
        && toc
            .entries
            .iter()
            .all(|e| e.offset >= toc.toc_len && e.offset.saturating_add(e.size) <= b.len() as u64);
    sane.then_some(toc.extent.min(b.len() as u64))
}

/// A hash extension of a certificate: which OID, the digest algorithm and the digest.
#[derive(Debug, Clone)]
pub struct CertHash {
    pub oid: String,
    pub alg: &'static str,
    pub digest: Vec<u8>,
}

/// Reads a DER length at `b[*i]`.
// Reviewed: `*i` indexes `b` (checked by get()); the length has at most 4 bytes, below 2^32.
#[allow(clippy::arithmetic_side_effects)]
fn der_len(b: &[u8], i: &mut usize) -> Option<usize> {
    let first = *b.get(*i)?;
    *i += 1;
    if first < 0x80 {
        return Some(first as usize);
    }
    let n = (first & 0x7F) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for _ in 0..n {
        len = (len << 8) | *b.get(*i)? as usize;
        *i += 1;
    }
    Some(len)
}

/// Reads one DER TLV of tag `tag` at `b[*i]`, returning its contents.
// Reviewed: positions are indices into the slice (below its length, at most isize::MAX) plus small constants: no overflow.
#[allow(clippy::arithmetic_side_effects)]
fn der_tlv<'a>(b: &'a [u8], i: &mut usize, tag: u8) -> Option<&'a [u8]> {
    if *b.get(*i)? != tag {
        return None;
    }
    *i += 1;
    let len = der_len(b, i)?;
    let v = b.get(*i..i.checked_add(len)?)?;
    *i += len;
    Some(v)
}

/// Parses a TBBR hash extension value: `DigestInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING }`.
pub fn digest_info(v: &[u8]) -> Option<(&'static str, Vec<u8>)> {
    let mut i = 0;
    let seq = der_tlv(v, &mut i, 0x30)?;
    let mut j = 0;
    let alg = der_tlv(seq, &mut j, 0x30)?;
    let mut k = 0;
    let oid = der_tlv(alg, &mut k, 0x06)?;
    let digest = der_tlv(seq, &mut j, 0x04)?;
    let name = match oid {
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01] => "sha256",
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02] => "sha384",
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03] => "sha512",
        _ => return None,
    };
    Some((name, digest.to_vec()))
}

/// The digest of `data` with a TBBR hash algorithm.
pub fn digest(alg: &str, data: &[u8]) -> Option<Vec<u8>> {
    Some(match alg {
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha384" => sha2::Sha384::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

/// Subject and hash extensions of a DER certificate.
pub fn cert_hashes(
    der: &[u8],
) -> Result<(String, Vec<CertHash>), x509_parser::nom::Err<x509_parser::error::X509Error>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)?;
    let mut out = Vec::new();
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        if !oid.starts_with(TBBR_OID_PREFIX) {
            continue;
        }
        if let Some((alg, d)) = digest_info(ext.value) {
            out.push(CertHash {
                oid,
                alg,
                digest: d,
            });
        }
    }
    Ok((cert.subject().to_string(), out))
}

/// The registry entry.
pub const FORMAT: formats::Format = formats::Format {
    name: "fip",
    description: "Arm TF-A firmware image package (ToC, BL2/BL31/BL33..., TBBR certificates)",
    probe,
    parse,
    scope: formats::Scope::Both,
    component: Some("bios"),
    policy: None,
    not_inside: &[],
    // Boot-loader payloads only (BL33 as UEFI firmware volumes or U-Boot, ...).
    payloads: &["uefi", "u-boot", "fit", "uimage"],
    package: None,
};

/// The registry parser, in the order of the package: the ToC header, one node per ToC entry, the
/// trusted-board-boot certificates' hashes compared with the images they cover (`fip-hash` evidence),
/// payloads parsed by their own format. Problems of the ToC are notes on the package node.
pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let toc = read_toc(node.bytes())?;
    let mut notes = Vec::new();
    let mut out = vec![toc_node(node, &toc)];
    out.extend(entries(node, &toc, &mut notes));
    certificates(&mut out);
    // Payloads in their own formats (BL33 as UEFI firmware volumes or U-Boot, ...); only the formats of
    // `FORMAT.payloads`: configuration blobs and random data must not be taken for an environment or a
    // filesystem by a loose probe.
    for r in out.iter_mut().skip(1).filter(|r| !is_certificate(r)) {
        formats::descend(ctx, r, Some(&FORMAT), None);
    }
    Ok(Parsed::from(out).notes(notes))
}

/// The ToC header node: serial number, flags, entry count.
fn toc_node(node: &Region, toc: &Toc) -> Region {
    Region::new(
        RegionKind::Header,
        "toc",
        &node.data,
        node.offset,
        toc.toc_len.min(node.size),
    )
    .with_attr("serial-number", format!("{:#010x}", toc.serial))
    .with_attr("flags", format!("{:#018x}", toc.flags))
    .with_attr("entries", toc.entries.len() as u64)
}

/// One node per ToC entry that lies inside the package after its ToC and overlaps no earlier entry
/// (the others are notes naming the entry), named after its image type.
fn entries(node: &Region, toc: &Toc, notes: &mut Vec<Note>) -> Vec<Region> {
    let types = image_types();
    let mut out = Vec::new();
    let mut claimed: Vec<(u64, u64)> = Vec::new();
    for (i, e) in toc.entries.iter().enumerate() {
        let entry_off = (i as u64).saturating_mul(ENTRY).saturating_add(HEADER);
        let at = Some(node.offset.saturating_add(entry_off));
        let ty = types.get(&e.uuid);
        let name = ty.map_or_else(|| format!("image[{}]", e.uuid), |t| t.name.clone());
        let end = e.offset.saturating_add(e.size);
        if e.offset < toc.toc_len || end > node.size {
            notes.push(Note::new(
                Code::PartitionOutOfBounds,
                format!(
                    "FIP entry {name} ({:#x}+{:#x}) lies outside the package's {:#x} bytes after its ToC",
                    e.offset, e.size, node.size
                ),
                at,
            ));
            continue;
        }
        if claimed
            .iter()
            .any(|&(o, n)| e.offset < o.saturating_add(n) && o < end)
        {
            notes.push(Note::new(
                Code::PartitionOverlap,
                format!("FIP entry {name} overlaps another entry"),
                at,
            ));
            continue;
        }
        if e.size == 0 {
            continue;
        }
        claimed.push((e.offset, e.size));
        let mut r = Region::new(
            RegionKind::FitImage,
            &name,
            &node.data,
            // `e.offset + e.size <= node.size` (checked above).
            node.offset.saturating_add(e.offset),
            e.size,
        )
        .with_attr("name", name.clone())
        .with_attr("uuid", e.uuid.clone())
        .with_attr("flags", format!("{:#018x}", e.flags));
        if let Some(t) = ty {
            r.attrs
                .insert("fiptool-option".into(), t.option.clone().into());
            r.attrs
                .insert("description".into(), t.description.clone().into());
        }
        out.push(r);
    }
    out
}

/// Whether an entry node is a trusted-board-boot certificate.
fn is_certificate(r: &Region) -> bool {
    r.attr_str("fiptool-option")
        .is_some_and(|o| o.ends_with("cert"))
}

/// Reads every certificate's subject and hash extensions and checks each hash against the image it
/// covers: `fip-hash` evidence on the image, valid or invalid (with a `fip-hash-mismatch` note). The
/// certificates' own signatures are not verified (the root of trust key hash lives in the SoC's fuses),
/// so the evidence names its certificate as signer, trusts nothing, and protects nothing: a dump that
/// rewrites an image can rewrite its certificate's hash too.
fn certificates(out: &mut [Region]) {
    let types = image_types();
    let by_oid: HashMap<&str, usize> = out
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let t = types.get(r.attr_str("uuid")?)?;
            Some((t.hash_oid.as_deref()?, i))
        })
        .collect();
    let mut checks: Vec<(usize, String, CertHash)> = Vec::new();
    for r in out.iter_mut().filter(|r| is_certificate(r)) {
        match cert_hashes(r.bytes()) {
            Ok((subject, hashes)) => {
                r.attrs.insert("x509-subject".into(), subject.into());
                let list: Vec<serde_json::Value> = hashes
                    .iter()
                    .map(|h| {
                        serde_json::json!({"oid": h.oid, "alg": h.alg, "digest": hex::encode(&h.digest)})
                    })
                    .collect();
                r.attrs.insert("hashes".into(), list.into());
                for h in hashes {
                    if let Some(&img) = by_oid.get(h.oid.as_str()) {
                        checks.push((img, r.name.clone(), h));
                    }
                }
            }
            Err(e) => r.notes.push(Note::new(
                Code::Unparsed,
                format!("certificate {}: not a DER X.509 certificate ({e})", r.name),
                Some(r.offset),
            )),
        }
    }
    for (img, cert, want) in checks {
        let Some(r) = out.get_mut(img) else {
            continue;
        };
        let status = match digest(want.alg, r.bytes()) {
            None => Status::NotVerified(format!("{cert}: unsupported digest {}", want.alg)),
            Some(got) if got == want.digest => Status::Valid,
            Some(got) => {
                let why = format!(
                    "{}: {} is {}, but {cert} says {}",
                    r.name,
                    want.alg,
                    hex::encode(got),
                    hex::encode(&want.digest)
                );
                let o = r.offset;
                r.notes
                    .push(Note::new(Code::FipHashMismatch, why.clone(), Some(o)));
                Status::Invalid(why)
            }
        };
        r.evidence
            .push(Evidence::on_node(Scheme::FipHash, status).with_signer(cert));
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {

    use super::*;

    /// A FIP of `(uuid bytes, payload)` entries, payloads back to back after the ToC.
    pub fn build(entries: &[([u8; 16], Vec<u8>)]) -> Vec<u8> {
        let toc_len = HEADER as usize + (entries.len() + 1) * ENTRY as usize;
        let mut v = Vec::new();
        v.extend_from_slice(&TOC_NAME.to_le_bytes());
        v.extend_from_slice(&0x1234_5678u32.to_le_bytes());
        v.extend_from_slice(&0u64.to_le_bytes());
        let mut off = toc_len as u64;
        for (u, p) in entries {
            v.extend_from_slice(u);
            v.extend_from_slice(&off.to_le_bytes());
            v.extend_from_slice(&(p.len() as u64).to_le_bytes());
            v.extend_from_slice(&0u64.to_le_bytes());
            off += p.len() as u64;
        }
        v.extend_from_slice(&[0u8; 16]);
        v.extend_from_slice(&off.to_le_bytes());
        v.extend_from_slice(&[0u8; 16]);
        for (_, p) in entries {
            v.extend_from_slice(p);
        }
        v
    }

    fn bl31() -> [u8; 16] {
        let mut u = [0u8; 16];
        hex::decode_to_slice("47D4086D4CFE98469B952950CBBD5A00", &mut u).unwrap();
        u
    }

    fn tree(b: Vec<u8>) -> Region {
        let data = std::sync::Arc::new(crate::input::Data::Owned(b));
        let opts = formats::ParseOptions {
            format: Some("fip".into()),
            ..Default::default()
        };
        formats::parse_image(data, &opts)
    }

    #[test]
    fn entries_are_named_from_the_uuid_table() {
        let t = tree(build(&[
            (bl31(), vec![7u8; 100]),
            ([9u8; 16], vec![1u8; 10]),
        ]));
        let names: Vec<&str> = t.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["toc", "BL31", "image[09090909-0909-0909-0909-090909090909]"]
        );
        assert!(t.children.iter().all(|c| c.notes.is_empty()));
    }

    #[test]
    fn malformed_tocs_are_bounded_and_never_panic() {
        let good = build(&[(bl31(), vec![7u8; 100])]);
        // Every truncation parses to a tree (an unparsed note at worst).
        for n in 0..good.len() {
            let _ = tree(good[..n].to_vec());
            let _ = read_toc(&good[..n]);
        }
        // Absurd offsets and sizes: notes, no panic, no payload node.
        for (off, size) in [(u64::MAX, 1u64), (16, u64::MAX), (0, 10), (96, 1 << 40)] {
            let mut b = good.clone();
            b[32..40].copy_from_slice(&off.to_le_bytes());
            b[40..48].copy_from_slice(&size.to_le_bytes());
            let t = tree(b);
            assert!(t.find("BL31").is_none(), "{off:#x}+{size:#x}");
            // What is wrong with the ToC is a note on the package node, never on its `toc` child.
            assert!(!t.notes.is_empty(), "{off:#x}+{size:#x}");
            assert!(t.children.iter().all(|c| c.notes.is_empty()));
        }
        // No terminator: a ToC of only non-null entries is rejected, whatever its length.
        let mut b = TOC_NAME.to_le_bytes().to_vec();
        b.extend(vec![0x11u8; 12 + 40 * 1000]);
        assert!(read_toc(&b).is_err());
        assert!(probe(&b).is_none());
    }

    #[test]
    fn digest_info_reads_tbbr_hash_extensions() {
        let mut v = vec![
            0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ];
        v.extend([0xAB; 32]);
        let (alg, d) = digest_info(&v).unwrap();
        assert_eq!((alg, d), ("sha256", vec![0xAB; 32]));
        for n in 0..v.len() {
            assert!(digest_info(&v[..n]).is_none());
        }
    }

    /// Deterministic mutations: no panic, every node inside the input.
    #[test]
    fn random_mutations_never_panic_and_stay_in_bounds() {
        crate::formats::util::mutations_stay_in_bounds(
            &build(&[(bl31(), vec![7u8; 100]), ([9u8; 16], vec![1u8; 10])]),
            "fip",
            300,
        );
    }
}
