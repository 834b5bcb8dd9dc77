//! AMD flash images: the Embedded Firmware Structure (EFS, also "firmware entry table"), PSP directories
//! (`$PSP`, `$PL2`), BIOS directories (`$BHD`, `$BL2`) and combo directories (`2PSP`, `2BHD`).
//!
//! Layouts (coreboot `util/amdfwtool`, PSPTool, fiano `pkg/amd`):
//! ```text
//! EFS   0x00 signature 0x55AA55AA, then u32 pointers: 0x04 IMC, 0x08 GbE, 0x0C xHCI, 0x10 PSP directory
//!       (legacy), 0x14 PSP or combo directory, 0x18/0x1C/0x20 BIOS directories (per family), 0x24
//!       second-generation flag, 0x28 BIOS directory, ... at 0x20000 (or 0xFA0000, 0xF20000, 0xE20000,
//!       0xC20000, 0x820000, 0x120000) from the start of a 16 MiB window.
//! PSP/BIOS directory header (16): cookie[4], checksum u32 (Fletcher-32 of everything after it), entry
//!       count u32, additional info u32 (bits 29-30 address mode).
//! PSP entry (16): type u8, subprogram u8, flags u16, size u32, address u64 (bits 62-63: address mode).
//! BIOS entry (24): type u8, region type u8, flags u8 (bit 0 reset image, 1 copy, 2 read-only,
//!       3 compressed), subprogram u8, size u32, source u64, destination u64.
//! Combo header (32): cookie[4], checksum, count, lookup, 16 reserved; entry (16): id select u32,
//!       id u32, directory address u64.
//! ```
//! Addresses are x86 physical (the flash mapped below 4 GiB: the low 24 bits within a 16 MiB window) or
//! flash offsets; both map to an image offset by masking to the window. Every pointer that lands on a
//! directory magic is followed (as PSPTool does), L2 pointers (PSP types 0x40/0x48/0x49/0x4A, BIOS type
//! 0x70) included, each directory once. Every entry with data in the flash becomes a node named after its
//! type (`signatures/amd-entry-types.csv`), so a changed PSP entry is a finding naming it; the BIOS
//! reset image (type 0x62 with the reset flag) and the APCB (0x60/0x68) are marked (`role`), and a BIOS
//! image that holds firmware volumes is parsed as such. PSP entries that start with the 256-byte `$PS1`
//! header are marked `signed` with their key id; their RSA signatures are not verified (AMD's keys are
//! not public offline; their `amd-psp` evidence is `not-verified` and says so).
#![deny(clippy::arithmetic_side_effects)]

pub mod psp;

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::util::{le32, slice};
use crate::formats::{self, Confidence, Ctx, Parsed};
use crate::region::{Note, Region, RegionKind};

/// EFS signature as stored (0x55AA55AA little-endian).
pub const EFS_SIG: [u8; 4] = [0xAA, 0x55, 0xAA, 0x55];
/// Offsets of the EFS within a 16 MiB window, in the order firmware and PSPTool try them.
pub const EFS_OFFSETS: [u64; 7] = [
    0x020000, 0xFA0000, 0xF20000, 0xE20000, 0xC20000, 0x820000, 0x120000,
];
/// Bytes of the EFS read (its pointer words; the SPI-mode bytes after 0x40 are not pointers).
pub const EFS_SIZE: u64 = 0x4A;
/// Most directories followed in one image.
pub const MAX_DIRS: usize = 64;
/// Most entries read from one directory.
pub const MAX_ENTRIES: u64 = 1024;

const CSV: &str = include_str!("../../../signatures/amd-entry-types.csv");

fn types() -> &'static HashMap<(bool, u8), String> {
    static T: OnceLock<HashMap<(bool, u8), String>> = OnceLock::new();
    T.get_or_init(|| {
        CSV.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let mut it = l.split(',');
                let bios = it.next()?.trim() == "bios";
                let t = u8::from_str_radix(it.next()?.trim().trim_start_matches("0x"), 16).ok()?;
                Some(((bios, t), it.next()?.trim().to_string()))
            })
            .collect()
    })
}

/// The name of an entry type (`bios` for BIOS directories; BIOS directories also use PSP numbers for
/// keys and signatures).
pub fn type_name(bios: bool, t: u8) -> String {
    let tb = types();
    tb.get(&(bios, t))
        .or_else(|| tb.get(&(!bios, t)))
        .cloned()
        .unwrap_or_else(|| format!("type-{t:#04x}"))
}

/// AMD's Fletcher-32 over 16-bit little-endian words (as amdfwtool and PSPTool compute it).
// Reviewed: 16-bit words summed for at most 360 steps between folds: c0 < 2^25 and c1 < 2^34, far from u64::MAX.
#[allow(clippy::arithmetic_side_effects)]
pub fn fletcher32(b: &[u8]) -> u32 {
    let mut c0: u64 = 0xFFFF;
    let mut c1: u64 = 0xFFFF;
    for (i, w) in b.chunks(2).enumerate() {
        let v = u64::from(u16::from_le_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        c0 += v;
        c1 += c0;
        if i % 360 == 0 {
            c0 = (c0 & 0xFFFF) + (c0 >> 16);
            c1 = (c1 & 0xFFFF) + (c1 >> 16);
        }
    }
    for _ in 0..2 {
        c0 = (c0 & 0xFFFF) + (c0 >> 16);
        c1 = (c1 & 0xFFFF) + (c1 >> 16);
    }
    ((c1 as u32) << 16) | (c0 as u32 & 0xFFFF)
}

/// The image offset an EFS or directory pointer designates, if any: 0, 0xFFFFFFFF and 0xFFFFFFFE mean
/// none; x86 physical addresses and flash offsets are masked to the 16 MiB window (or to the image size
/// when it is a smaller power of two).
// Reviewed: `len > 0`, so the window (a power of two, at most 2^24, or len's next power of two) is at least 1.
#[allow(clippy::arithmetic_side_effects)]
pub fn map_addr(p: u64, len: u64) -> Option<u64> {
    if p == 0 || p == 0xFFFF_FFFF || p == 0xFFFF_FFFE || len == 0 {
        return None;
    }
    let p = p & 0x3FFF_FFFF_FFFF_FFFF;
    if p < len && p < 1 << 32 && p < 0xFF00_0000 {
        return Some(p);
    }
    let window = if len >= 1 << 24 {
        1 << 24
    } else {
        len.next_power_of_two()
    };
    let off = p & (window - 1);
    (off < len).then_some(off)
}

/// Where the EFS is: the first of [`EFS_OFFSETS`] (masked to the image when it is smaller than 16 MiB)
/// holding the signature and at least one pointer to a directory.
// Reviewed: `len` is a power of two (so at least 1) when it is masked; EFS offsets and pointer indices are small constants.
#[allow(clippy::arithmetic_side_effects)]
pub fn find_efs(b: &[u8]) -> Option<u64> {
    let len = b.len() as u64;
    for &o in &EFS_OFFSETS {
        let o = if len < 1 << 24 && len.is_power_of_two() {
            o & (len - 1)
        } else {
            o
        };
        if slice(b, o, 4, "EFS").ok() == Some(&EFS_SIG[..]) {
            let points = (1..EFS_SIZE / 4).any(|i| {
                le32(b, o + i * 4, "EFS pointer")
                    .ok()
                    .and_then(|p| map_addr(u64::from(p), len))
                    .and_then(|t| slice(b, t, 4, "magic").ok())
                    .is_some_and(|m| dir_kind(m).is_some())
            });
            if points {
                return Some(o);
            }
        }
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirKind {
    Psp { l2: bool },
    Bios { l2: bool },
    Combo { bios: bool },
}

fn dir_kind(m: &[u8]) -> Option<DirKind> {
    Some(match m {
        b"$PSP" => DirKind::Psp { l2: false },
        b"$PL2" => DirKind::Psp { l2: true },
        b"$BHD" => DirKind::Bios { l2: false },
        b"$BL2" => DirKind::Bios { l2: true },
        b"2PSP" => DirKind::Combo { bios: false },
        b"2BHD" => DirKind::Combo { bios: true },
        _ => return None,
    })
}

/// An EFS with at least one directory.
pub fn probe(b: &[u8]) -> Option<Confidence> {
    find_efs(b).map(|_| Confidence::High)
}

/// A data entry found in a directory (kept until all directories are read, to drop duplicates).
struct Item {
    region: Region,
}

struct Walker<'a> {
    node: &'a Region,
    b: &'a [u8],
    len: u64,
    seen: HashSet<u64>,
    queue: Vec<(u64, &'static str)>,
    dirs: Vec<Region>,
    items: Vec<Item>,
    notes: Vec<Note>,
}

/// A directory header as read, with the directory's bytes (header and entries).
struct DirHeader<'a> {
    kind: DirKind,
    name: &'static str,
    off: u64,
    hsize: u64,
    esize: u64,
    n: u64,
    /// Address mode (additional info bits 29-30, or 24-25 when bit 31 is set).
    mode: u32,
    body: &'a [u8],
}

impl<'a> Walker<'a> {
    fn follow(&mut self, p: u64, from: &'static str) {
        if let Some(t) = map_addr(p, self.len) {
            if slice(self.b, t, 4, "magic")
                .ok()
                .and_then(dir_kind)
                .is_some()
            {
                self.queue.push((t, from));
            }
        }
    }

    /// Reads the directory at `off` (reached from `from`) once: its node, its entries and the directories
    /// they point to.
    // Reviewed: entries index the directory's slice (`hsize + n * esize` bytes, dir_header() bounded `n`).
    #[allow(clippy::arithmetic_side_effects)]
    fn dir(&mut self, off: u64, from: &'static str) {
        if !self.seen.insert(off) || self.seen.len() > MAX_DIRS {
            return;
        }
        let Some((h, mut d)) = self.dir_header(off, from) else {
            return;
        };
        let mut values = Vec::new();
        for i in 0..h.n {
            let e =
                &h.body[(h.hsize + i * h.esize) as usize..(h.hsize + (i + 1) * h.esize) as usize];
            match h.kind {
                DirKind::Combo { .. } => self.combo_entry(&h, e, &mut values),
                DirKind::Psp { .. } | DirKind::Bios { .. } => self.entry(&h, i, e, &mut values),
            }
        }
        if !values.is_empty() {
            d.attrs.insert("values".into(), values.into());
        }
        self.dirs.push(d);
    }

    /// The PSP, BIOS or combo directory header at `off` (cookie, Fletcher-32 checksum, entry count,
    /// additional info; combo: 32 bytes) and the directory's node, or `None` when it does not fit.
    // Reviewed: `off` holds a directory magic inside the image (`off + 4 <= len`); the entry count is bounded by what fits after it (`avail`, MAX_ENTRIES) before `hsize + n * esize`; node offsets plus offsets inside the node fit.
    #[allow(clippy::arithmetic_side_effects)]
    fn dir_header(&mut self, off: u64, from: &'static str) -> Option<(DirHeader<'a>, Region)> {
        let kind = slice(self.b, off, 4, "magic").ok().and_then(dir_kind)?;
        let (Ok(count), Ok(sum), Ok(info)) = (
            le32(self.b, off + 8, "entry count"),
            le32(self.b, off + 4, "checksum"),
            le32(self.b, off + 12, "additional info"),
        ) else {
            return None;
        };
        let (hsize, esize, name) = match kind {
            DirKind::Psp { l2: false } => (16u64, 16u64, "psp-directory"),
            DirKind::Psp { l2: true } => (16, 16, "psp-l2-directory"),
            DirKind::Bios { l2: false } => (16, 24, "bios-directory"),
            DirKind::Bios { l2: true } => (16, 24, "bios-l2-directory"),
            DirKind::Combo { bios: false } => (32, 16, "psp-combo-directory"),
            DirKind::Combo { bios: true } => (32, 16, "bios-combo-directory"),
        };
        let avail = (self.len - off).saturating_sub(hsize) / esize;
        let n = u64::from(count);
        if n > avail.min(MAX_ENTRIES) {
            self.notes.push(Note::new(
                Code::Unparsed,
                format!("{name} at {off:#x}: {n} entries do not fit in the image"),
                Some(self.node.offset + off),
            ));
            return None;
        }
        let size = hsize + n * esize;
        let body = slice(self.b, off, size, "directory").ok()?;
        let mut d = Region::new(
            RegionKind::Header,
            name,
            &self.node.data,
            self.node.offset + off,
            size,
        );
        d.attrs.insert(
            "cookie".into(),
            String::from_utf8_lossy(&body[..4]).into_owned().into(),
        );
        d.attrs.insert("entries".into(), n.into());
        d.attrs.insert("found-via".into(), from.into());
        let calc = fletcher32(&body[8..]);
        if calc != sum {
            d.notes.push(Note::new(
                Code::AmdDirectoryChecksum,
                format!("{name} at {off:#x}: checksum {sum:#010x}, computed {calc:#010x}"),
                Some(self.node.offset + off + 4),
            ));
        }
        let mode = if info >> 31 == 1 {
            (info >> 24) & 3
        } else {
            (info >> 29) & 3
        };
        let h = DirHeader {
            kind,
            name,
            off,
            hsize,
            esize,
            n,
            mode,
            body,
        };
        Some((h, d))
    }

    /// A combo directory entry (16 bytes: id select, PSP id, directory address): a value, and the
    /// directory it points to.
    fn combo_entry(&mut self, h: &DirHeader<'_>, e: &[u8], values: &mut Vec<serde_json::Value>) {
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let addr = u64::from_le_bytes([e[8], e[9], e[10], e[11], e[12], e[13], e[14], e[15]]);
        values.push(
            serde_json::json!({"psp-id": format!("{id:#010x}"), "address": format!("{addr:#x}")}),
        );
        self.follow(addr, h.name);
    }

    /// Entry `i` of a PSP (16 bytes) or BIOS (24 bytes) directory: a pointer to an L2 directory (followed),
    /// a value (size 0 or 0xFFFFFFFF), or data in the flash (an item).
    // Reviewed: an entry's target is taken only when `start + size <= len` (checked_add); the note offset is inside the directory (entry `i < n`); `t + 16` is a small offset past a position inside the image.
    #[allow(clippy::arithmetic_side_effects)]
    fn entry(&mut self, h: &DirHeader<'_>, i: u64, e: &[u8], values: &mut Vec<serde_json::Value>) {
        let name = h.name;
        let bios = matches!(h.kind, DirKind::Bios { .. });
        let t = e[0];
        let esize32 = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let addr = u64::from_le_bytes([e[8], e[9], e[10], e[11], e[12], e[13], e[14], e[15]]);
        let tname = type_name(bios, t);
        // Pointers to further directories.
        let is_dir_ptr = if bios {
            t == 0x70
        } else {
            matches!(t, 0x40 | 0x48 | 0x49 | 0x4A)
        };
        let emode = if h.mode >= 2 {
            addr >> 62
        } else {
            u64::from(h.mode)
        };
        let target = if emode == 2 {
            (addr & 0x3FFF_FFFF_FFFF_FFFF).checked_add(h.off)
        } else {
            map_addr(addr, self.len)
        };
        if is_dir_ptr {
            if let Some(t) = target {
                let m = slice(self.b, t, 4, "magic").ok();
                if m.and_then(dir_kind).is_some() {
                    self.queue.push((t, name));
                } else if let Ok(p) = le32(self.b, t + 16, "indirect directory") {
                    // PSP L2A/L2B: a header holding the directory's address at +16.
                    self.follow(u64::from(p), name);
                }
            }
            return;
        }
        if esize32 == 0xFFFF_FFFF || esize32 == 0 {
            values.push(serde_json::json!({"type": format!("{t:#04x}"), "name": tname, "value": format!("{addr:#x}")}));
            return;
        }
        let Some(start) = target.filter(|&s| {
            s.checked_add(u64::from(esize32))
                .is_some_and(|end| end <= self.len)
        }) else {
            if !(bios && t == 0x61) {
                self.notes.push(Note::new(
                    Code::PartitionOutOfBounds,
                    format!("{name} entry {tname} ({addr:#x}+{esize32:#x}) lies outside the image"),
                    Some(self.node.offset + h.off + h.hsize + i * h.esize),
                ));
            }
            return;
        };
        let r = self.entry_region(h, e, start, esize32, &tname, addr);
        self.items.push(Item { region: r });
    }

    /// The node of a PSP or BIOS directory entry's data (`size` bytes at `start`), with the entry's fields:
    /// BIOS region type, destination and flags (reset, copy, read-only, compressed, instance); PSP
    /// subprogram, flags and `$PS1` header.
    // Reviewed: `start + size <= len` (entry()), so the node offset plus `start` fits.
    #[allow(clippy::arithmetic_side_effects)]
    fn entry_region(
        &self,
        h: &DirHeader<'_>,
        e: &[u8],
        start: u64,
        size: u32,
        tname: &str,
        addr: u64,
    ) -> Region {
        let name = h.name;
        let bios = matches!(h.kind, DirKind::Bios { .. });
        let t = e[0];
        let mut r = Region::new(
            RegionKind::FitImage,
            tname,
            &self.node.data,
            self.node.offset + start,
            u64::from(size),
        );
        r.attrs.insert("name".into(), tname.to_owned().into());
        r.attrs.insert("type".into(), format!("{t:#04x}").into());
        r.attrs.insert("directory".into(), name.into());
        r.attrs
            .insert("address".into(), format!("{addr:#x}").into());
        if bios {
            let flags = e[2];
            let dest = u64::from_le_bytes([e[16], e[17], e[18], e[19], e[20], e[21], e[22], e[23]]);
            r.attrs.insert("region-type".into(), e[1].into());
            r.attrs
                .insert("destination".into(), format!("{dest:#x}").into());
            r.attrs.insert("reset".into(), (flags & 1 != 0).into());
            r.attrs.insert("copy".into(), (flags & 2 != 0).into());
            r.attrs.insert("read-only".into(), (flags & 4 != 0).into());
            r.attrs.insert("compressed".into(), (flags & 8 != 0).into());
            r.attrs.insert("instance".into(), (flags >> 4).into());
            if t == 0x62 && flags & 1 != 0 {
                r.attrs.insert("role".into(), "bios-reset-image".into());
            } else if t == 0x60 || t == 0x68 {
                r.attrs.insert("role".into(), "apcb".into());
            }
        } else {
            r.attrs.insert("subprogram".into(), e[1].into());
            let flags = u16::from_le_bytes([e[2], e[3]]);
            r.attrs
                .insert("flags".into(), format!("{flags:#06x}").into());
            mark_signed(&mut r);
        }
        r
    }
}

/// Marks a PSP entry that starts with the 256-byte PSP header (`$PS1` at 0x10): `signed` (the u32 at
/// 0x30), the signing key's id (0x38..0x48) and that the signature was not verified.
fn mark_signed(r: &mut Region) {
    let b = r.bytes();
    if r.size < 0x100 || b.get(0x10..0x14) != Some(b"$PS1") {
        return;
    }
    let signed = le32(b, 0x30, "signed").unwrap_or(0);
    let key = b.get(0x38..0x48).map(hex::encode).unwrap_or_default();
    let size_signed = le32(b, 0x14, "size signed").unwrap_or(0);
    r.attrs.insert("psp-header".into(), true.into());
    r.attrs.insert("signed".into(), (signed == 1).into());
    if signed == 1 {
        r.attrs.insert("signing-key-id".into(), key.clone().into());
        r.attrs.insert("size-signed".into(), size_signed.into());
        r.evidence.push(
            crate::finding::Evidence::on_node(
                crate::finding::Scheme::AmdPsp,
                crate::finding::Status::NotVerified(
                    "AMD's signing keys are not available offline; compared by digest".into(),
                ),
            )
            .with_signer(key),
        );
    }
}

/// The registry entry.
pub const FORMAT: formats::Format = formats::Format {
    name: "amd",
    description: "AMD flash image (Embedded Firmware Structure, PSP and BIOS directories)",
    probe,
    parse,
    scope: formats::Scope::Both,
    component: Some("bios"),
    policy: None,
    not_inside: &[],
    // The BIOS image holds firmware volumes.
    payloads: &["uefi"],
    package: None,
};

/// The registry parser.
// Reviewed: `efs < len` (find_efs); EFS field offsets are small constants; regions pushed are inside the node (offset >= node.offset), their spans inside it too; `steps` is bounded by the loop.
#[allow(clippy::arithmetic_side_effects)]
pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let efs = find_efs(b).ok_or(ParseError::Invalid {
        what: "AMD Embedded Firmware Structure",
        offset: node.offset,
        detail: "no 0x55AA55AA signature pointing at a directory at the documented offsets".into(),
    })?;
    let len = b.len() as u64;
    let efs_len = EFS_SIZE.min(len - efs);
    let mut w = Walker {
        node,
        b,
        len,
        seen: HashSet::new(),
        queue: Vec::new(),
        dirs: Vec::new(),
        items: Vec::new(),
        notes: Vec::new(),
    };
    let mut e = Region::new(
        RegionKind::Header,
        "efs",
        &node.data,
        node.offset + efs,
        efs_len,
    );
    let fields = [
        (0x04, "imc"),
        (0x08, "gbe"),
        (0x0C, "xhci"),
        (0x10, "psp-directory-legacy"),
        (0x14, "psp-directory"),
        (0x18, "bios-directory-f15-60"),
        (0x1C, "bios-directory-f17-00"),
        (0x20, "bios-directory-f17-30"),
        (0x24, "second-gen-efs"),
        (0x28, "bios-directory-f17-60"),
    ];
    for (o, f) in fields {
        if let Ok(p) = le32(b, efs + o, "EFS field") {
            e.attrs.insert(f.into(), format!("{p:#010x}").into());
        }
    }
    for i in 1..efs_len / 4 {
        if let Ok(p) = le32(b, efs + i * 4, "EFS pointer") {
            w.follow(u64::from(p), "efs");
        }
    }
    let mut steps = 0;
    while let Some((off, from)) = w.queue.pop() {
        steps += 1;
        if steps > MAX_DIRS * 4 {
            break;
        }
        w.dir(off, from);
    }
    // Nodes: EFS, directories, entries; the same blob referenced twice is one node, and a region that
    // overlaps another is reported and left to the one found first.
    let mut out = vec![e];
    let mut spans: Vec<(u64, u64)> = vec![(efs, efs_len)];
    let mut notes = std::mem::take(&mut w.notes);
    let mut push = |r: Region, out: &mut Vec<Region>, notes: &mut Vec<Note>| {
        let (o, n) = (r.offset - node.offset, r.size);
        if spans.contains(&(o, n)) {
            return;
        }
        if spans.iter().any(|&(so, sn)| o < so + sn && so < o + n) {
            notes.push(Note::new(
                Code::PartitionOverlap,
                format!(
                    "{} at {:#x}+{:#x} overlaps another AMD structure",
                    r.name, r.offset, r.size
                ),
                Some(r.offset),
            ));
            return;
        }
        spans.push((o, n));
        out.push(r);
    };
    for d in std::mem::take(&mut w.dirs) {
        push(d, &mut out, &mut notes);
    }
    for it in std::mem::take(&mut w.items) {
        push(it.region, &mut out, &mut notes);
    }
    // Payloads in their own formats: the BIOS image holds firmware volumes.
    for r in out.iter_mut().skip(1) {
        if r.kind != RegionKind::FitImage {
            continue;
        }
        formats::descend(ctx, r, Some(&FORMAT), None);
    }
    // Problems of the directories are facts of the flash image: notes on its own node.
    Ok(Parsed::from(out).notes(notes))
}

/// Writers for test images (public layout), used by the unit and integration tests and the fuzz seeds;
/// only with the `fixtures` feature or in unit tests, never in the shipped library.
#[cfg(any(test, feature = "fixtures"))]
// Reviewed: writes well-formed fixtures from its caller's data (tests, fixture generators); never given
// parsed input.
#[allow(clippy::arithmetic_side_effects)]
pub mod build {
    use super::fletcher32;

    /// A directory: `cookie`, entries as raw bytes (16 for PSP/combo, 24 for BIOS), with its checksum.
    pub fn directory(cookie: &[u8; 4], entries: &[Vec<u8>], combo: bool) -> Vec<u8> {
        let mut v = cookie.to_vec();
        v.extend_from_slice(&[0; 4]);
        v.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        if combo {
            v.extend_from_slice(&[0; 16]);
        }
        for e in entries {
            v.extend_from_slice(e);
        }
        let sum = fletcher32(&v[8..]);
        v[4..8].copy_from_slice(&sum.to_le_bytes());
        v
    }

    /// A PSP directory entry.
    pub fn psp_entry(t: u8, size: u32, addr: u64) -> Vec<u8> {
        let mut e = vec![t, 0, 0, 0];
        e.extend_from_slice(&size.to_le_bytes());
        e.extend_from_slice(&addr.to_le_bytes());
        e
    }

    /// A BIOS directory entry.
    pub fn bios_entry(t: u8, flags: u8, size: u32, src: u64, dest: u64) -> Vec<u8> {
        let mut e = vec![t, 0, flags, 0];
        e.extend_from_slice(&size.to_le_bytes());
        e.extend_from_slice(&src.to_le_bytes());
        e.extend_from_slice(&dest.to_le_bytes());
        e
    }

    /// A combo directory entry pointing at a directory.
    pub fn combo_entry(psp_id: u32, addr: u64) -> Vec<u8> {
        let mut e = 0u32.to_le_bytes().to_vec();
        e.extend_from_slice(&psp_id.to_le_bytes());
        e.extend_from_slice(&addr.to_le_bytes());
        e
    }

    /// A PSP entry: the 256-byte `$PS1` header (signed with key id `key`, RSA-2048 signature type 0,
    /// body size at 0x14, whole entry size at 0x6C, version at 0x60), a body of `len - 0x200` bytes and
    /// a 256-byte signature slot.
    pub fn signed_body(seed: u8, len: usize, key: [u8; 16]) -> Vec<u8> {
        assert!(len >= 0x300);
        let mut b: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect();
        b[..0x100].fill(0);
        b[0x10..0x14].copy_from_slice(b"$PS1");
        b[0x14..0x18].copy_from_slice(&((len - 0x200) as u32).to_le_bytes());
        b[0x30..0x34].copy_from_slice(&1u32.to_le_bytes());
        b[0x38..0x48].copy_from_slice(&key);
        b[0x60..0x64].copy_from_slice(&[seed, 0, 1, 0]);
        b[0x6C..0x70].copy_from_slice(&(len as u32).to_le_bytes());
        b
    }

    /// A 16 MiB-window image of `size` bytes (0xFF) with an EFS at 0x20000 whose PSP pointer (0x14)
    /// and BIOS pointer (0x28) are `psp` and `bios` (x86 physical addresses), plus `blobs` placed at
    /// their offsets.
    pub fn image(size: usize, psp: u32, bios: u32, blobs: &[(usize, Vec<u8>)]) -> Vec<u8> {
        let mut v = vec![0xFFu8; size];
        let efs = 0x20000;
        v[efs..efs + 4].copy_from_slice(&super::EFS_SIG);
        for o in (4..0x40).step_by(4) {
            v[efs + o..efs + o + 4].copy_from_slice(&0u32.to_le_bytes());
        }
        v[efs + 0x14..efs + 0x18].copy_from_slice(&psp.to_le_bytes());
        v[efs + 0x24..efs + 0x28].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
        v[efs + 0x28..efs + 0x2C].copy_from_slice(&bios.to_le_bytes());
        for (o, b) in blobs {
            v[*o..*o + b.len()].copy_from_slice(b);
        }
        v
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {
    use super::build::*;
    use super::*;

    /// 1 MiB image: EFS -> $PSP (boot loader signed, SMU firmware, L2 pointer) -> $PL2 (ABL0); BIOS
    /// $BHD with APCB and the reset image.
    fn sample() -> Vec<u8> {
        let base = 0xFF00_0000u64; // x86 address of offset 0 in a 16 MiB window
        let psp = directory(
            b"$PSP",
            &[
                psp_entry(0x01, 0x400, base + 0x30000),
                psp_entry(0x08, 0x200, base + 0x31000),
                psp_entry(0x0B, 0xFFFF_FFFF, 1),
                psp_entry(0x40, 0x1000, base + 0x40000),
            ],
            false,
        );
        let pl2 = directory(b"$PL2", &[psp_entry(0x30, 0x300, base + 0x41000)], false);
        let bhd = directory(
            b"$BHD",
            &[
                bios_entry(0x60, 0, 0x100, base + 0x50000, 0),
                bios_entry(0x61, 0, 0x1000, 0, 0x0400_0000),
                bios_entry(0x62, 1, 0x800, base + 0x60000, 0x0900_0000),
            ],
            false,
        );
        image(
            0x10_0000,
            (base + 0x21000) as u32,
            (base + 0x22000) as u32,
            &[
                (0x21000, psp),
                (0x22000, bhd),
                (0x30000, signed_body(1, 0x400, [0x5A; 16])),
                (0x31000, vec![0x42; 0x200]),
                (0x40000, pl2),
                (0x41000, vec![0x43; 0x300]),
                (0x50000, vec![0x44; 0x100]),
                (0x60000, vec![0x45; 0x800]),
            ],
        )
    }

    fn tree(b: Vec<u8>) -> Region {
        let data = std::sync::Arc::new(crate::input::Data::Owned(b));
        formats::parse_image(data, &formats::ParseOptions::default())
    }

    #[test]
    fn every_directory_and_entry_is_a_named_node() {
        let t = tree(sample());
        assert_eq!(t.attr_str("format"), Some("amd"));
        let names: Vec<&str> = t
            .children
            .iter()
            .filter(|c| c.kind != RegionKind::Padding)
            .map(|c| c.name.as_str())
            .collect();
        for want in [
            "efs",
            "psp-directory",
            "psp-l2-directory",
            "bios-directory",
            "psp-boot-loader",
            "smu-firmware",
            "abl0",
            "apcb",
            "bios-image",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let bl = t.find("psp-boot-loader").unwrap();
        assert_eq!(bl.attrs["signed"], true);
        assert_eq!(
            bl.attr_str("signing-key-id"),
            Some("5a".repeat(16).as_str())
        );
        assert_eq!(
            t.find("bios-image").unwrap().attr_str("role"),
            Some("bios-reset-image")
        );
        let mut notes = Vec::new();
        t.walk(&mut |r| notes.extend(r.notes.iter().map(|n| n.code.as_str().to_string())));
        assert!(notes.is_empty(), "{notes:?}");
        // A wrong directory checksum is reported.
        let mut b = sample();
        b[0x21004] ^= 1;
        let mut notes = Vec::new();
        tree(b).walk(&mut |r| notes.extend(r.notes.iter().map(|n| n.code.as_str().to_string())));
        assert_eq!(notes, vec!["amd-directory-checksum".to_string()]);
    }

    #[test]
    fn fletcher32_matches_amdfwtool() {
        // Values computed with PSPTool 3.7's `utils.fletcher32` (little-endian bytes of the result).
        assert_eq!(fletcher32(&[]), 0xFFFF_FFFF);
        assert_eq!(fletcher32(&[1, 0]), 0x0001_0001);
        let data: Vec<u8> = (0..10).flat_map(|_| 0..=255u8).collect();
        assert_eq!(fletcher32(&data).to_le_bytes(), [0x82, 0x7d, 0xf0, 0xfa]);
    }

    #[test]
    fn malformed_images_are_bounded_and_never_panic() {
        let good = sample();
        // Absurd counts, sizes and addresses in every directory field.
        for at in [
            0x21008usize,
            0x2100C,
            0x21014,
            0x21018,
            0x22008,
            0x40008,
            0x2201C,
        ] {
            for v in [0u32, 1, 0xFFFF_FFFF, 0x8000_0000, 0x00FF_FFF0] {
                let mut b = good.clone();
                b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                let _ = tree(b);
            }
        }
        // Directories pointing at themselves and at each other: each is read once.
        let mut b = good.clone();
        let self_ptr = psp_entry(0x40, 0x10, 0xFF02_1000);
        b[0x21040..0x21050].copy_from_slice(&self_ptr);
        let _ = tree(b);
        // Truncations of the whole image.
        for n in [
            0x20003usize,
            0x20010,
            0x21008,
            0x21020,
            0x22010,
            0x30100,
            0x60100,
        ] {
            let _ = tree(good[..n].to_vec());
        }
    }

    /// Deterministic mutations: no panic, every node inside the input.
    #[test]
    fn random_mutations_never_panic_and_stay_in_bounds() {
        crate::formats::util::mutations_stay_in_bounds(&sample(), "amd", 300);
    }
}
