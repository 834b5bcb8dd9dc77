//! CSE code partition directories (`$CPD`: ME 11+, SPS 4+, TXE 3+) with their manifest, metadata and modules.
//!
//! Layout (fwupd `fu-ifwi-cpd`, MEAnalyzer, me_cleaner, unME11; proved on the Purley SPS 4 fixture and
//! cross-checked with `fwupdtool firmware-parse FILE ifwi-cpd`):
//! - header: `$CPD`, u32 entry count, u8 header version, u8 entry version, u8 header length (0x10 for
//!   version 1, 0x14 for version 2), u8 checksum (version 1: the header's bytes sum to 0 mod 256; version 2
//!   has a CRC32 at 0x0C instead, not verified here), then the 4-character partition name (last 4 bytes of
//!   the header);
//! - entries of 0x18 bytes: name[12], u32 offset from the `$CPD` start (bits 24:0; bit 25 = Huffman
//!   compressed), u32 length, u32 reserved.
//!
//! `NAME.man` is the partition manifest ([`crate::formats::me_manifest`]); its extensions 3 (partition info) and 15
//! (package info) list every module's metadata file `NAME.met` with its SHA-256. A `.met` holds extension 10
//! (module attributes: u8 compression 0 none / 1 Huffman / 2 LZMA, u32 uncompressed and compressed size,
//! the module's SHA-256). fwscan checks the chain manifest signature → `.met` hash → module hash where the
//! hashed bytes are the stored bytes (uncompressed modules), and records each step as `me-module-hash`
//! evidence on the `.met` or module node; Huffman and LZMA modules get it `not-verified` (their hash covers
//! decompressed data), as do entries the chain does not reach (not listed, no verified metadata).
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::error::ParseError;
use crate::finding::{Code, Status};
use crate::formats::me_manifest::{self, module_evidence, stored_hash, Manifest};
use crate::formats::util::{le32, slice, u8_at};
use crate::region::{self, Note, Region, RegionKind};

const CPD_SIG: &[u8; 4] = b"$CPD";
/// Most directory entries read (real directories have a few dozen).
pub const MAX_ENTRIES: u64 = 1024;
/// Most manifest extensions walked.
const MAX_EXTENSIONS: usize = 256;

pub fn probe(b: &[u8]) -> bool {
    b.get(..4) == Some(CPD_SIG)
}

/// A module list entry of manifest extension 3 or 15: the SHA-256 of `NAME.met`.
struct MetHash {
    size: u64,
    hash: String,
}

/// The module attributes (extension 10) of one `.met` file.
struct ModAttr {
    compression: u8,
    hash: String,
}

/// Entry name as a path segment (printable ASCII kept, anything else hex-escaped).
pub(crate) fn entry_name(raw: &[u8]) -> String {
    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    let n: String = raw[..end]
        .iter()
        .map(|&c| {
            if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.') {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect();
    if n.is_empty() {
        "unnamed".into()
    } else {
        n
    }
}

/// Walks the extensions in `m[from..to]`: calls `f(type, extension bytes)`; a malformed one ends the walk
/// with an error message.
// Reviewed: `o + 8 <= to` before the fields are read and `o + l <= to` (`l` a 32-bit value in u64) before the slice and the step; at most MAX_EXTENSIONS steps.
#[allow(clippy::arithmetic_side_effects)]
fn extensions(m: &[u8], from: u64, to: u64, f: &mut dyn FnMut(u32, &[u8])) -> Option<String> {
    let mut o = from;
    for _ in 0..MAX_EXTENSIONS {
        if o.saturating_add(8) > to {
            return None;
        }
        let (Ok(t), Ok(l)) = (le32(m, o, "ext type"), le32(m, o + 4, "ext length")) else {
            return Some(format!("extension at {o:#x} truncated"));
        };
        let l = u64::from(l);
        if l < 8 || o + l > to {
            return Some(format!(
                "extension {t} at {o:#x} has length {l:#x} (outside 8..={:#x})",
                to - o
            ));
        }
        f(t, &m[o as usize..(o + l) as usize]);
        o += l;
    }
    Some(format!("more than {MAX_EXTENSIONS} extensions"))
}

/// `.met` hashes listed by a manifest's extensions 3 and 15 (name → size and SHA-256).
// Reviewed: `e + 0x34 <= ext.len()` before each entry is read.
#[allow(clippy::arithmetic_side_effects)]
fn met_hashes(m: &[u8], man: &Manifest, notes: &mut Vec<String>) -> HashMap<String, MetHash> {
    let mut out = HashMap::new();
    let err = extensions(m, man.body, man.size, &mut |t, ext| {
        let first = match t {
            3 => 0x58usize,
            15 => 0x34,
            _ => return,
        };
        let mut e = first;
        while e + 0x34 <= ext.len() {
            let name = entry_name(&ext[e..e + 12]);
            let size = u64::from(u32::from_le_bytes([
                ext[e + 16],
                ext[e + 17],
                ext[e + 18],
                ext[e + 19],
            ]));
            let hash = stored_hash(&ext[e + 20..e + 52]);
            out.insert(format!("{name}.met"), MetHash { size, hash });
            e += 0x34;
        }
    });
    if let Some(e) = err {
        notes.push(e);
    }
    out
}

/// Extension 10 of a `.met` file.
fn mod_attr(met: &[u8]) -> Option<ModAttr> {
    let mut found = None;
    extensions(met, 0, met.len() as u64, &mut |t, ext| {
        if t == 10 && ext.len() >= 0x38 && found.is_none() {
            found = Some(ModAttr {
                compression: ext[8],
                hash: stored_hash(&ext[0x18..0x38]),
            });
        }
    });
    found
}

/// A directory entry inside the partition.
struct Ent {
    name: String,
    /// Offset from the `$CPD` start.
    off: u64,
    size: u64,
    /// Offset bit 25: Huffman-compressed.
    huffman: bool,
    /// Image offset of the entry in the table.
    at: u64,
}

/// Checks a `.met` file (node `n`, its bytes `data`) against the hash the manifest lists for it (`want`,
/// `None`: not listed): `me-module-hash` evidence, a finding on a mismatch. Returns its module attributes
/// when it verified under a trusted manifest (the module's own hash can then be checked).
fn metadata(
    n: &mut Region,
    e: &Ent,
    data: &[u8],
    want: Option<&MetHash>,
    trusted: bool,
) -> Option<Option<ModAttr>> {
    let Some(want) = want else {
        n.evidence.push(module_evidence(
            Status::NotVerified("not listed in the manifest".into()),
            false,
        ));
        return None;
    };
    let got = hex::encode(Sha256::digest(data));
    if got == want.hash && want.size == e.size {
        n.evidence.push(module_evidence(Status::Valid, trusted));
        return trusted.then(|| mod_attr(data));
    }
    n.evidence.push(module_evidence(
        Status::Invalid("its hash differs from the one its manifest lists".into()),
        trusted,
    ));
    n.notes.push(Note::new(
        Code::MeModuleHashMismatch,
        format!(
            "metadata {} ({:#x} bytes) has SHA-256 {got}; the manifest lists {} ({:#x} bytes)",
            e.name, e.size, want.hash, want.size
        ),
        Some(n.offset),
    ));
    None
}

/// Checks a module (node `n`, its bytes `data`) against the module attributes of its verified `.met`
/// (`attr`: `None` when its `.met` did not verify under a trusted manifest): `me-module-hash` evidence,
/// a finding on a mismatch.
fn module(n: &mut Region, huffman: bool, data: &[u8], attr: Option<&Option<ModAttr>>) {
    let Some(attr) = attr else {
        n.evidence.push(module_evidence(
            Status::NotVerified("no verified metadata (.met) lists its hash".into()),
            false,
        ));
        return;
    };
    let Some(attr) = attr else {
        n.evidence.push(module_evidence(
            Status::NotVerified("its metadata has no module attributes".into()),
            true,
        ));
        return;
    };
    let comp = if huffman { 1 } else { attr.compression };
    n.attrs.insert(
        "compression".into(),
        match comp {
            0 => "none".into(),
            1 => "huffman".into(),
            2 => "lzma".into(),
            c => format!("unknown-{c}"),
        }
        .into(),
    );
    if comp != 0 {
        n.evidence.push(module_evidence(
            Status::NotVerified("the manifest's hash covers the decompressed module".into()),
            true,
        ));
        return;
    }
    let got = hex::encode(Sha256::digest(data));
    if got == attr.hash {
        n.evidence.push(module_evidence(Status::Valid, true));
        return;
    }
    n.evidence.push(module_evidence(
        Status::Invalid("its hash differs from the one its manifest lists".into()),
        true,
    ));
    n.notes.push(Note::new(
        Code::MeModuleHashMismatch,
        format!(
            "module {} has SHA-256 {got}; its metadata ({}.met) lists {}",
            n.name, n.name, attr.hash
        ),
        Some(n.offset),
    ));
}

/// The directory header of the partition `part`: the `cpd` node (checksum, count), the partition name, the
/// header length and the number of entries read.
// Reviewed: the header length is 0x10..=0x40 and was sliced out of `b`; the entry count is bounded by what fits after it.
#[allow(clippy::arithmetic_side_effects)]
fn header(part: &Region) -> Result<(Region, String, u64, u64), ParseError> {
    let b = part.bytes();
    let len = b.len() as u64;
    let base = part.offset;
    let invalid = |detail: String| ParseError::Invalid {
        what: "$CPD directory",
        offset: base,
        detail,
    };
    if !probe(b) {
        return Err(invalid("no $CPD signature".into()));
    }
    let declared = u64::from(le32(b, 4, "$CPD entry count")?);
    let hdr_ver = u8_at(b, 8, "$CPD header version")?;
    let hdr_len = u64::from(u8_at(b, 10, "$CPD header length")?);
    if !(0x10..=0x40).contains(&hdr_len) {
        return Err(invalid(format!("header length {hdr_len:#x}")));
    }
    let header = slice(b, 0, hdr_len, "$CPD header")?;
    let pname = entry_name(&header[hdr_len as usize - 4..]);
    let fits = (len - hdr_len) / 0x18;
    let count = declared.min(fits).min(MAX_ENTRIES);
    let table_end = hdr_len + count * 0x18;
    let mut table = Region::new(RegionKind::Header, "cpd", &part.data, base, table_end)
        .with_attr("partition-name", pname.clone())
        .with_attr("entries", declared)
        .with_attr("header-version", hdr_ver);
    if declared > count {
        table.notes.push(Note::new(
            if declared > MAX_ENTRIES && fits > MAX_ENTRIES {
                Code::LimitExceeded
            } else {
                Code::PartitionOutOfBounds
            },
            format!("$CPD declares {declared} entries; {count} fit (limit {MAX_ENTRIES})"),
            Some(base + 4),
        ));
    }
    if hdr_ver == 1 {
        let sum = header.iter().fold(0u8, |a, &c| a.wrapping_add(c));
        if sum != 0 {
            table.notes.push(Note::new(
                Code::CpdHeaderChecksum,
                format!("$CPD header bytes sum to {sum:#04x}, not 0"),
                Some(base + 11),
            ));
        } else {
            table.attrs.insert("checksum".into(), "valid".into());
        }
    } else {
        table
            .attrs
            .insert("checksum".into(), "not verified (CRC32)".into());
    }

    Ok((table, pname, hdr_len, count))
}

/// The directory's entries, in offset order: those outside the partition or overlapping the directory or
/// an earlier entry are reported on the `cpd` node `table` and left out.
// Reviewed: entries are 32-bit offsets and sizes in u64, kept only when `off + size <= len` (checked_add); `hdr_len + count * 0x18` is the table end computed in `header`; `base` plus an offset inside the partition fits.
#[allow(clippy::arithmetic_side_effects)]
fn entries(
    part: &Region,
    hdr_len: u64,
    count: u64,
    table: &mut Region,
) -> Result<Vec<Ent>, ParseError> {
    let b = part.bytes();
    let len = b.len() as u64;
    let base = part.offset;
    let table_end = hdr_len + count * 0x18;
    // Entries, in table order.
    let mut ents = Vec::new();
    for i in 0..count {
        let e = hdr_len + i * 0x18;
        let raw = slice(b, e, 0x18, "$CPD entry")?;
        let name = entry_name(&raw[..12]);
        let off_raw = le32(raw, 12, "offset")?;
        let size = u64::from(le32(raw, 16, "length")?);
        let off = u64::from(off_raw & 0x01FF_FFFF);
        if size == 0 {
            continue;
        }
        if off.checked_add(size).is_none_or(|end| end > len) || off < table_end {
            table.notes.push(Note::new(
                Code::PartitionOutOfBounds,
                format!(
                    "$CPD entry {name} ({off:#x}+{size:#x}) is outside the {len:#x}-byte partition or overlaps the directory"
                ),
                Some(base + e),
            ));
            continue;
        }
        ents.push(Ent {
            name,
            off,
            size,
            huffman: off_raw & (1 << 25) != 0,
            at: base + e,
        });
    }
    // Overlapping entries: the later one (by offset) is reported and dropped.
    ents.sort_by_key(|e| (e.off, e.size));
    let mut kept: Vec<Ent> = Vec::new();
    for e in ents {
        if let Some(prev) = kept.last() {
            if e.off < prev.off + prev.size {
                table.notes.push(Note::new(
                    Code::PartitionOverlap,
                    format!(
                        "$CPD entry {} ({:#x}+{:#x}) overlaps {} ({:#x}+{:#x})",
                        e.name, e.off, e.size, prev.name, prev.off, prev.size
                    ),
                    Some(e.at),
                ));
                continue;
            }
        }
        kept.push(e);
    }
    Ok(kept)
}

/// Parses the `$CPD` directory at the start of partition `part` into its children (offsets in the image):
/// header, entries, the manifest, `.met` files, modules.
// Reviewed: entries were bounded by `entries` (`off + size <= len`); `base` plus an offset inside the partition fits.
#[allow(clippy::arithmetic_side_effects)]
pub fn parse(part: &Region, blank: u8) -> Result<Vec<Region>, ParseError> {
    let b = part.bytes();
    let base = part.offset;
    let (mut table, pname, hdr_len, count) = header(part)?;
    let kept = entries(part, hdr_len, count, &mut table)?;
    let bytes_of = |e: &Ent| &b[e.off as usize..(e.off + e.size) as usize];

    // The manifest: `<partition>.man`, or the only `.man`.
    let man_idx = kept
        .iter()
        .position(|e| e.name == format!("{pname}.man"))
        .or_else(|| kept.iter().position(|e| e.name.ends_with(".man")));
    let mut man_note: Option<Note> = None;
    let mut man_info: Option<Manifest> = None;
    let mut met_list = HashMap::new();
    let mut ext_errors = Vec::new();
    if let Some(i) = man_idx {
        match me_manifest::parse(bytes_of(&kept[i])) {
            Ok(m) => {
                met_list = met_hashes(bytes_of(&kept[i]), &m, &mut ext_errors);
                man_info = Some(m);
            }
            Err(e) => {
                man_note = Some(Note::new(
                    Code::Unparsed,
                    format!("manifest {}: {e}", kept[i].name),
                    Some(base + kept[i].off),
                ))
            }
        }
    }
    let trusted = man_info.as_ref().is_some_and(Manifest::trusted);

    // `.met` files: verified against the manifest's list; their module attributes by module name.
    let mut met_ok: HashMap<String, Option<ModAttr>> = HashMap::new();
    let mut kids = Vec::new();
    let mut nodes: Vec<Region> = Vec::with_capacity(kept.len());
    for (i, e) in kept.iter().enumerate() {
        let kind = if Some(i) == man_idx {
            RegionKind::Header
        } else {
            RegionKind::Blob
        };
        let mut n = Region::new(kind, e.name.clone(), &part.data, base + e.off, e.size);
        if Some(i) == man_idx {
            if let Some(m) = &man_info {
                m.describe(&mut n);
                n.attrs.insert("entry".into(), "manifest".into());
                for err in &ext_errors {
                    n.notes.push(Note::new(
                        Code::Unparsed,
                        format!("manifest extensions: {err}"),
                        Some(n.offset),
                    ));
                }
            }
            if let Some(note) = man_note.take() {
                n.notes.push(note);
            }
        } else if let Some(module) = e.name.strip_suffix(".met") {
            n.attrs.insert("entry".into(), "metadata".into());
            let data = bytes_of(e);
            if let Some(attr) = metadata(&mut n, e, data, met_list.get(&e.name), trusted) {
                met_ok.insert(module.to_string(), attr);
            }
        }
        nodes.push(n);
    }
    // Modules: checked against their verified `.met`.
    for (e, n) in kept.iter().zip(nodes.iter_mut()) {
        if n.attrs.contains_key("entry") || e.name.ends_with(".man") {
            continue;
        }
        n.attrs.insert("entry".into(), "module".into());
        module(n, e.huffman, bytes_of(e), met_ok.get(&e.name));
    }
    kids.push(table);
    kids.extend(nodes);
    region::fill_gaps(
        &part.data,
        part.offset,
        part.end(),
        &mut kids,
        blank,
        RegionKind::Padding,
    );
    Ok(kids)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {

    use super::*;
    use crate::input::Data;
    use std::sync::Arc;

    /// A version-1 `$CPD` "TEST" with entries (name, offset, length), checksum fixed, in `len` bytes.
    fn cpd(entries: &[(&str, u32, u32)], len: usize) -> Vec<u8> {
        let mut b = vec![0xFFu8; len];
        b[0..4].copy_from_slice(CPD_SIG);
        b[4..8].copy_from_slice(&(entries.len() as u32).to_le_bytes());
        b[8] = 1;
        b[9] = 1;
        b[10] = 0x10;
        b[11] = 0;
        b[12..16].copy_from_slice(b"TEST");
        for (i, (n, o, l)) in entries.iter().enumerate() {
            let e = 0x10 + i * 0x18;
            b[e..e + 0x18].fill(0);
            b[e..e + n.len()].copy_from_slice(n.as_bytes());
            b[e + 12..e + 16].copy_from_slice(&o.to_le_bytes());
            b[e + 16..e + 20].copy_from_slice(&l.to_le_bytes());
        }
        fix(&mut b);
        b
    }

    fn fix(b: &mut [u8]) {
        b[11] = 0;
        let s = b[..0x10].iter().fold(0u8, |a, &c| a.wrapping_add(c));
        b[11] = s.wrapping_neg();
    }

    fn run(b: &[u8]) -> Result<Vec<Region>, ParseError> {
        let data = Arc::new(Data::Owned(b.to_vec()));
        let p = Region::new(RegionKind::Partition, "TEST", &data, 0, b.len() as u64);
        parse(&p, 0xFF)
    }

    fn codes(kids: &[Region]) -> Vec<&'static str> {
        let mut v = Vec::new();
        for k in kids {
            v.extend(k.notes.iter().map(|n| n.code.as_str()));
        }
        v
    }

    #[test]
    fn entries_checksum_and_manifest() {
        let mut man = super::super::me_manifest::tests::manifest(0x300);
        // One well-formed extension (type 0x32) fills the rest of the manifest.
        man[0x284..0x288].copy_from_slice(&0x32u32.to_le_bytes());
        man[0x288..0x28C].copy_from_slice(&0x7Cu32.to_le_bytes());
        let mut b = cpd(&[("TEST.man", 0x100, 0x300), ("mod", 0x400, 0x100)], 0x800);
        b[0x100..0x400].copy_from_slice(&man);
        let kids = run(&b).unwrap();
        let names: Vec<&str> = kids.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["cpd", "padding", "TEST.man", "mod", "padding"]);
        // Garbage key and signature: both findings, and nothing is covered.
        assert_eq!(
            codes(&kids),
            ["me-manifest-signature-invalid", "me-manifest-untrusted-key"]
        );
        assert!(kids
            .iter()
            .all(|k| k.evidence.iter().all(|e| e.protects().is_none())));
        b[13] ^= 1;
        assert!(codes(&run(&b).unwrap()).contains(&"cpd-header-checksum"));
    }

    #[test]
    fn malformed_directories_become_notes() {
        // 2^32 - 1 entries.
        let mut b = cpd(&[("a", 0x100, 0x10)], 0x200);
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        fix(&mut b);
        assert!(codes(&run(&b).unwrap()).contains(&"partition-out-of-bounds"));
        // Past the end, overlapping, inside the directory.
        let b = cpd(
            &[
                ("a", 0x100, 0x1000),
                ("b", 0x100, 0x20),
                ("c", 0x110, 0x20),
                ("d", 0x8, 0x20),
                ("e", 0xFFFF_FFFF, 0xFFFF_FFFF),
            ],
            0x200,
        );
        let kids = run(&b).unwrap();
        let c = codes(&kids);
        assert_eq!(
            c.iter()
                .filter(|&&x| x == "partition-out-of-bounds")
                .count(),
            3,
            "{c:?}"
        );
        assert!(c.contains(&"partition-overlap"));
        // A manifest whose extension has length 0, and one whose extension runs past the manifest.
        for (t, l) in [(3u32, 0u32), (15, 0x1000)] {
            let mut man = super::super::me_manifest::tests::manifest(0x300);
            man[0x284..0x288].copy_from_slice(&t.to_le_bytes());
            man[0x288..0x28C].copy_from_slice(&l.to_le_bytes());
            let mut b = cpd(&[("TEST.man", 0x100, 0x300)], 0x400);
            b[0x100..0x400].copy_from_slice(&man);
            assert!(codes(&run(&b).unwrap()).contains(&"unparsed"));
        }
        // Every truncation: no panic, every node inside.
        let man = super::super::me_manifest::tests::manifest(0x300);
        let mut b = cpd(&[("TEST.man", 0x100, 0x300), ("x.met", 0x400, 0x40)], 0x480);
        b[0x100..0x400].copy_from_slice(&man);
        for cut in 0..b.len() {
            if let Ok(kids) = run(&b[..cut]) {
                assert!(kids.iter().all(|k| k.end() <= cut as u64), "cut {cut}");
            }
        }
    }
}
