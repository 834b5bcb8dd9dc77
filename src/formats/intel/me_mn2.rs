//! ME 6-10 code partitions: the `$MN2` manifest at the partition start and its `$MME` module entries.
//!
//! Layout (me_cleaner, MEAnalyzer; proved on the Lumpy ME 8 fixture): the manifest ([`crate::formats::me_manifest`])
//! is followed, 12 bytes after the signature (partition name and reserved bytes), at 0x290, by `count`
//! (manifest 0x20) module entries of 0x60 bytes (0x80 in some versions: the size is told by where the next
//! `$MME` tag is): `$MME`, name[16], SHA-256[32] (byte-reversed), u32 load base (0x34), u32 offset from the
//! partition start (0x38), u32 uncompressed size (0x3C), u32 stored size (0x40), ..., u32 flags (0x50; bits
//! 6:4 compression: 0 none, 1 Huffman, 2 LZMA).
//!
//! The module hash covers the uncompressed module. Uncompressed modules are hashed as stored; LZMA modules
//! (an LZMA "alone" stream) are decompressed within the parse budget and hashed, which the fixture proves
//! (every LZMA module of both Lumpy code partitions matches); Huffman modules share one `LLUT` chunk table
//! whose dictionaries are not public, so their `me-module-hash` evidence is not verified and the `LLUT`
//! area is one node listing them.
#![deny(clippy::arithmetic_side_effects)]

use sha2::{Digest, Sha256};

use crate::error::ParseError;
use crate::finding::{Code, Evidence, Scheme, Status};
use crate::formats::decompress;
use crate::formats::me_manifest::{self, module_evidence, stored_hash};
use crate::formats::util::{le32, slice};
use crate::formats::Ctx;
use crate::region::{self, Note, Region, RegionKind};

/// Where the `$MME` entries start (after the 0x284-byte RSA-2048 header, the partition name and 8 bytes).
pub const MME_OFFSET: u64 = 0x290;
/// Most module entries read (real manifests have fewer than 64).
pub const MAX_MODULES: u64 = 256;

/// Whether a code partition starts with an ME 6-10 manifest.
pub fn probe(b: &[u8]) -> bool {
    me_manifest::looks_like(b)
}

struct Module {
    name: String,
    hash: String,
    off: u64,
    usize_: u64,
    size: u64,
    comp: u32,
    at: u64,
}

/// The `$MME` entry size: 0x60, or 0x80 when the second tag is there; 0 without entries.
// Reviewed: small constants added to MME_OFFSET.
#[allow(clippy::arithmetic_side_effects)]
fn entry_size(b: &[u8], declared: u64) -> u64 {
    let tag_at = |o: u64| slice(b, o, 4, "$MME").ok() == Some(b"$MME".as_slice());
    if !tag_at(MME_OFFSET) {
        0
    } else if declared == 1 || tag_at(MME_OFFSET + 0x60) {
        0x60
    } else if tag_at(MME_OFFSET + 0x80) {
        0x80
    } else {
        0
    }
}

/// The manifest's `$MME` module entries; malformed tables are notes on the manifest node `mnode`.
// Reviewed: the entry count is bounded by what fits in the manifest (`fits`), so `MME_OFFSET + i * esize` stays inside it; `base` plus an offset inside the partition fits.
#[allow(clippy::arithmetic_side_effects)]
fn module_entries(
    b: &[u8],
    base: u64,
    man: &me_manifest::Manifest,
    mnode: &mut Region,
) -> Result<Vec<Module>, ParseError> {
    let declared = u64::from(man.modules);
    let esize = entry_size(b, declared);
    let mut mods = Vec::new();
    if esize == 0 {
        if declared > 0 {
            mnode.notes.push(Note::new(
                Code::Unparsed,
                format!(
                    "manifest declares {declared} modules but no $MME entries at {MME_OFFSET:#x}"
                ),
                Some(base + MME_OFFSET),
            ));
        }
        return Ok(mods);
    }
    let fits = man
        .size
        .saturating_sub(MME_OFFSET)
        .checked_div(esize)
        .unwrap_or(0);
    let count = declared.min(fits).min(MAX_MODULES);
    if declared > count {
        mnode.notes.push(Note::new(
            Code::LimitExceeded,
            format!(
                "manifest declares {declared} modules; {count} fit in it (limit {MAX_MODULES})"
            ),
            Some(base + 0x20),
        ));
    }
    for i in 0..count {
        let e = MME_OFFSET + i * esize;
        let raw = slice(b, e, esize, "$MME entry")?;
        if &raw[..4] != b"$MME" {
            mnode.notes.push(Note::new(
                Code::Unparsed,
                format!("module entry {i} at {e:#x} has no $MME tag"),
                Some(base + e),
            ));
            break;
        }
        mods.push(Module {
            name: crate::formats::me_cpd::entry_name(&raw[4..20]),
            hash: stored_hash(&raw[0x14..0x34]),
            off: u64::from(le32(raw, 0x38, "offset")?),
            usize_: u64::from(le32(raw, 0x3C, "uncompressed size")?),
            size: u64::from(le32(raw, 0x40, "size")?),
            comp: (le32(raw, 0x50, "flags")? >> 4) & 7,
            at: base + e,
        });
    }
    Ok(mods)
}

/// The `llut` node of the Huffman modules: from their shared offset to the next other module (or the
/// end). Their hashes cover decompressed data whose dictionaries are not public: `me-module-hash` is
/// not verified. Under a trusted manifest the area still counts as the manifest's (`me-manifest`
/// evidence, as docs/intel-me.md says: the ME checks the hashes when it loads the modules).
// Reviewed: `start < end <= len` before the size is computed; `base` plus an offset inside the partition fits.
#[allow(clippy::arithmetic_side_effects)]
fn llut_node(
    part: &Region,
    mods: &[Module],
    man_size: u64,
    man_evidence: &[Evidence],
    trusted: bool,
) -> Option<Region> {
    let b = part.bytes();
    let len = b.len() as u64;
    let base = part.offset;
    let huff: Vec<&Module> = mods.iter().filter(|m| m.comp == 1).collect();
    let start = huff.first()?.off;
    let end = mods
        .iter()
        .filter(|m| m.comp != 1 && m.off > start)
        .map(|m| m.off)
        .min()
        .unwrap_or(len)
        .min(len);
    if start < man_size || start >= end {
        return None;
    }
    let names: Vec<String> = huff.iter().map(|m| m.name.clone()).collect();
    let mut n = Region::new(
        RegionKind::Blob,
        "llut",
        &part.data,
        base + start,
        end - start,
    )
    .with_attr("entry", "huffman-chunks")
    .with_attr("compression", "huffman")
    .with_attr("modules", names.join(","));
    if slice(b, start, 4, "LLUT").ok() != Some(b"LLUT".as_slice()) {
        n.notes.push(Note::new(
            Code::Unparsed,
            "Huffman modules point at bytes that are not an LLUT chunk table",
            Some(base + start),
        ));
        return Some(n);
    }
    if trusted {
        n.evidence.extend(
            man_evidence
                .iter()
                .filter(|e| e.scheme == Scheme::MeManifest)
                .cloned(),
        );
    }
    n.evidence.push(module_evidence(
        Status::NotVerified(
            "Huffman modules: their hashes cover decompressed data, whose dictionaries are not public"
                .into(),
        ),
        trusted,
    ));
    Some(n)
}

/// The SHA-256 of module `m`'s uncompressed bytes (`data`: as stored). Err((definite, why)): definite when
/// the stored bytes cannot produce any hash (a corrupt stream).
fn module_hash(ctx: &Ctx, m: &Module, data: &[u8], at: u64) -> Result<String, (bool, String)> {
    match m.comp {
        0 => Ok(hex::encode(Sha256::digest(data))),
        2 => {
            let limit = ctx.decompress_limit().min(m.usize_);
            match decompress::lzma(data, limit) {
                Ok(out) => ctx
                    .charge(out.len() as u64, at)
                    .map(|()| hex::encode(Sha256::digest(&out)))
                    .map_err(|e| (false, e.to_string())),
                Err(decompress::Error::Limit(n)) if n < m.usize_ => {
                    Err((false, format!("decompression budget of {n} bytes reached")))
                }
                Err(e) => Err((true, format!("LZMA: {e}"))),
            }
        }
        c => Err((false, format!("unknown compression {c}"))),
    }
}

/// The node of an uncompressed or LZMA module at `base + m.off` (bytes `data`), its hash checked:
/// `me-module-hash` evidence, a finding when it differs or the stream is corrupt.
// Reviewed: `base` plus an offset inside the partition fits.
#[allow(clippy::arithmetic_side_effects)]
fn module_node(ctx: &Ctx, part: &Region, m: &Module, data: &[u8], trusted: bool) -> Region {
    let base = part.offset;
    let mut n = Region::new(
        RegionKind::Blob,
        m.name.clone(),
        &part.data,
        base + m.off,
        m.size,
    )
    .with_attr("entry", "module");
    n.attrs.insert(
        "compression".into(),
        match m.comp {
            0 => "none".into(),
            2 => "lzma".into(),
            c => format!("unknown-{c}"),
        }
        .into(),
    );
    let differs = || Status::Invalid("its hash differs from the one its manifest lists".into());
    match module_hash(ctx, m, data, base + m.off) {
        Ok(h) if h == m.hash => n.evidence.push(module_evidence(Status::Valid, trusted)),
        Ok(h) => {
            n.evidence.push(module_evidence(differs(), trusted));
            n.notes.push(Note::new(
                Code::MeModuleHashMismatch,
                format!(
                    "module {} hashes to {h}; the manifest lists {}",
                    m.name, m.hash
                ),
                Some(n.offset),
            ));
        }
        Err((true, e)) => {
            n.evidence.push(module_evidence(differs(), trusted));
            n.notes.push(Note::new(
                Code::MeModuleHashMismatch,
                format!(
                    "module {} does not decompress ({e}), so it cannot match the manifest's hash {}",
                    m.name, m.hash
                ),
                Some(n.offset),
            ));
        }
        Err((false, e)) => n
            .evidence
            .push(module_evidence(Status::NotVerified(e), trusted)),
    }
    n
}

/// Parses the code partition `part` (manifest, module entries, `LLUT`, modules) into children with image
/// offsets.
// Reviewed: module offsets and sizes are 32-bit values in u64, checked against the partition (`len`) before their sum is used.
#[allow(clippy::arithmetic_side_effects)]
pub fn parse(ctx: &Ctx, part: &Region) -> Result<Vec<Region>, ParseError> {
    let b = part.bytes();
    let len = b.len() as u64;
    let base = part.offset;
    let man = me_manifest::parse(b).map_err(|e| ParseError::Invalid {
        what: "$MN2 manifest",
        offset: base,
        detail: e.to_string(),
    })?;
    let mut mnode = Region::new(RegionKind::Header, "manifest", &part.data, base, man.size)
        .with_attr("entry", "manifest");
    man.describe(&mut mnode);
    let trusted = man.trusted();
    let mods = module_entries(b, base, &man, &mut mnode)?;

    let mut placed: Vec<(u64, u64, String)> = vec![(0, man.size, "manifest".into())];
    let llut = llut_node(part, &mods, man.size, &mnode.evidence, trusted);
    let mut kids = vec![mnode];
    if let Some(n) = llut {
        placed.push((n.offset - base, n.end() - base, "llut".into()));
        kids.push(n);
    }
    for m in mods.iter().filter(|m| m.comp != 1) {
        let end = m.off.checked_add(m.size).filter(|&e| e <= len);
        let Some(end) = end else {
            kids[0].notes.push(Note::new(
                Code::PartitionOutOfBounds,
                format!(
                    "module {} ({:#x}+{:#x}) extends past the {len:#x}-byte partition",
                    m.name, m.off, m.size
                ),
                Some(m.at),
            ));
            continue;
        };
        if m.size == 0 {
            continue;
        }
        if let Some((_, _, other)) = placed.iter().find(|(s, e, _)| m.off < *e && *s < end) {
            kids[0].notes.push(Note::new(
                Code::PartitionOverlap,
                format!(
                    "module {} ({:#x}+{:#x}) overlaps {other}",
                    m.name, m.off, m.size
                ),
                Some(m.at),
            ));
            continue;
        }
        placed.push((m.off, end, m.name.clone()));
        let data = &b[m.off as usize..end as usize];
        kids.push(module_node(ctx, part, m, data, trusted));
    }
    region::fill_gaps(
        &part.data,
        part.offset,
        part.end(),
        &mut kids,
        ctx.opts.blank,
        RegionKind::Padding,
    );
    Ok(kids)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {

    use super::*;
    use crate::formats::ParseOptions;
    use crate::input::Data;
    use std::sync::Arc;

    /// A partition: manifest with `mods` `$MME` entries (name, offset, size, compression), in `len` bytes.
    fn part(mods: &[(&str, u32, u32, u32)], len: usize) -> Vec<u8> {
        let msize = MME_OFFSET as usize + mods.len() * 0x60;
        let mut b = vec![0xFFu8; len];
        b[..msize].copy_from_slice(&super::super::me_manifest::tests::manifest(msize));
        b[0x20..0x24].copy_from_slice(&(mods.len() as u32).to_le_bytes());
        for (i, (n, o, s, c)) in mods.iter().enumerate() {
            let e = MME_OFFSET as usize + i * 0x60;
            b[e..e + 0x60].fill(0);
            b[e..e + 4].copy_from_slice(b"$MME");
            b[e + 4..e + 4 + n.len()].copy_from_slice(n.as_bytes());
            b[e + 0x38..e + 0x3C].copy_from_slice(&o.to_le_bytes());
            b[e + 0x3C..e + 0x40].copy_from_slice(&(s * 2).to_le_bytes());
            b[e + 0x40..e + 0x44].copy_from_slice(&s.to_le_bytes());
            b[e + 0x50..e + 0x54].copy_from_slice(&(c << 4).to_le_bytes());
        }
        b
    }

    fn run(b: &[u8]) -> Result<Vec<Region>, ParseError> {
        let data = Arc::new(Data::Owned(b.to_vec()));
        let p = Region::new(RegionKind::Partition, "FTPR", &data, 0, b.len() as u64);
        parse(&Ctx::new(&ParseOptions::default()), &p)
    }

    fn notes(kids: &[Region]) -> Vec<(String, &'static str)> {
        kids.iter()
            .flat_map(|k| k.notes.iter().map(|n| (k.name.clone(), n.code.as_str())))
            .collect()
    }

    #[test]
    fn modules_are_hashed_and_bad_ones_reported() {
        // Zeroed hashes: an uncompressed module and a corrupt LZMA stream both mismatch.
        let b = part(
            &[("PLAIN", 0x400, 0x40, 0), ("PACKED", 0x440, 0x40, 2)],
            0x600,
        );
        let kids = run(&b).unwrap();
        let n = notes(&kids);
        assert!(
            n.contains(&("PLAIN".into(), "me-module-hash-mismatch")),
            "{n:?}"
        );
        assert!(
            n.contains(&("PACKED".into(), "me-module-hash-mismatch")),
            "{n:?}"
        );
        // The right hash (stored byte-reversed) verifies.
        let mut b = b;
        let mut h = Sha256::digest(&b[0x400..0x440]).to_vec();
        h.reverse();
        b[MME_OFFSET as usize + 0x14..MME_OFFSET as usize + 0x34].copy_from_slice(&h);
        let kids = run(&b).unwrap();
        let plain = kids.iter().find(|k| k.name == "PLAIN").unwrap();
        let hash = |k: &Region| {
            k.evidence
                .iter()
                .find(|e| e.scheme == Scheme::MeModuleHash)
                .map(|e| e.status.as_str())
        };
        assert_eq!(hash(plain), Some("valid"));
        // Untrusted manifest: verified hash, but no coverage.
        assert!(plain.evidence.iter().all(|e| e.protects().is_none()));
    }

    #[test]
    fn malformed_module_tables_become_notes() {
        let mut b = part(&[("A", 0x400, 0x40, 0)], 0x600);
        b[0x20..0x24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(run(&b).is_ok());
        let b = part(
            &[
                ("PAST", 0x500, 0x1000, 0),
                ("WRAP", 0xFFFF_FFF0, 0x20, 2),
                ("OVER", 0x10, 0x20, 0),
                ("H1", 0x5F0, 0x100, 1),
            ],
            0x600,
        );
        let kids = run(&b).unwrap();
        let n: Vec<&str> = notes(&kids).into_iter().map(|x| x.1).collect();
        assert_eq!(
            n.iter()
                .filter(|&&c| c == "partition-out-of-bounds")
                .count(),
            2,
            "{n:?}"
        );
        assert!(n.contains(&"partition-overlap"), "{n:?}");
        assert!(n.contains(&"unparsed"), "{n:?}"); // Huffman without an LLUT
        let b = part(&[("A", 0x400, 0x40, 0), ("B", 0x440, 0x40, 2)], 0x600);
        for cut in 0..b.len() {
            if let Ok(kids) = run(&b[..cut]) {
                assert!(kids.iter().all(|k| k.end() <= cut as u64), "cut {cut}");
            }
        }
    }
}
