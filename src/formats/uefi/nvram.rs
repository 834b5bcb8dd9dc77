//! NVRAM variable stores: the per-machine part of a BIOS region.
//!
//! Recognised containers (numbers from EDK2's `VariableFormat.h`, `FaultTolerantWrite.h` and UEFITool's
//! `nvram.h`; see `docs/ifd-nvram.md`):
//!
//! * an **NVRAM firmware volume** (`_FVH` at 0x28, file-system GUID FFF12B8D-… or 00504624-…): the FV
//!   header stays a static `header` node; the stores inside it and every gap between them are mutable;
//! * **VSS** stores (`$VSS`, `$SVS`, `$NSS`; 16-byte header) and **VSS2** stores (GUID DDCF3617-…/
//!   DDCF3616-… with plain headers, AAF32C78-… with authenticated headers; 28-byte header). Variables
//!   start with 0x55AA and are 4-byte aligned; plain headers are 32 bytes, authenticated ones 60, Apple's
//!   36 (plain + CRC32);
//! * the **FTW working block** (GUID 9E58292B-7C68-497D-A0CE-6500FD9F1B95);
//! * **AMI NVAR** entries (`NVAR`, 10-byte header, update chains linked by `Next`);
//! * **Phoenix EVSA** stores (entry type 0xEC, `EVSA`).
//!
//! Every variable becomes a `Variable` node: the live copy is `var[VendorGUID:Name]`; deleted,
//! superseded and half-written copies are `var-deleted[VendorGUID:Name]` so that the live copy keeps its
//! identity (and a `--pin 'bios/**/var[*:dbx]'` pins the copy the firmware uses). A variable's children
//! are its `header` (header and name) and its `data`. Stores, variables and free space are
//! `Policy::Mutable`; parsers leave the variable's children static, so a pinned variable is compared
//! byte for byte.
#![deny(clippy::arithmetic_side_effects)]

use std::sync::Arc;

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::util::{self, le16, le32, le64, slice};
use crate::formats::{Confidence, Ctx, Parsed};
use crate::input::Data;
use crate::region::{Note, Policy, Region, RegionKind};

mod evsa;
mod nvar;
mod vss;

use evsa::evsa_store;
use nvar::nvar_store;
pub use vss::vss_state;
use vss::{ftw_store, vss_store};

/// File-system GUIDs of firmware volumes that hold NVRAM.
pub const NVRAM_FV_GUIDS: [&str; 2] = [
    "FFF12B8D-7696-4C8B-A985-2747075B4F50",
    "00504624-8A59-4EEB-BD0F-6B36E96128E0",
];
/// VSS2 store GUIDs with plain variable headers (UEFITool's VSS2 GUID and EDK2's gEfiVariableGuid).
pub const VSS2_GUIDS: [&str; 2] = [
    "DDCF3617-3275-4164-98B6-FE85707FFE7D",
    "DDCF3616-3275-4164-98B6-FE85707FFE7D",
];
/// EDK2 gEfiAuthenticatedVariableGuid: a VSS2 store whose variables all have authenticated headers.
pub const AUTH_VSS2_GUID: &str = "AAF32C78-947B-439A-A180-2E144EC37792";
/// EDK2 gEdkiiWorkingBlockSignatureGuid.
pub const FTW_GUID: &str = "9E58292B-7C68-497D-A0CE-6500FD9F1B95";
pub const EFI_GLOBAL_VARIABLE: &str = "8BE4DF61-93CA-11D2-AA0D-00E098032B8C";
pub const EFI_IMAGE_SECURITY_DATABASE: &str = "D719B2CB-3D3A-4596-A3BC-DAD00E67656F";

const SIG_VSS: u32 = 0x5353_5624; // "$VSS"
const SIG_SVS: u32 = 0x5356_5324; // "$SVS"
const SIG_NSS: u32 = 0x5353_4E24; // "$NSS"
const SIG_NVAR: u32 = 0x5241_564E; // "NVAR"
const SIG_EVSA: u32 = 0x4153_5645; // "EVSA"
const SIG_FVH: u32 = 0x4856_465F; // "_FVH"
const VSS_START_ID: u16 = 0x55AA;

/// Most variables one store may produce (each is at least 32 bytes anyway).
const MAX_VARIABLES: usize = 65_536;
/// Longest variable name decoded, in UCS-2 units (the full size is still covered by the header node).
const MAX_NAME_UNITS: usize = 512;

/// Whether (vendor GUID, name) is a Secure Boot policy variable.
pub fn is_secure_boot(guid: &str, name: &str) -> bool {
    (guid == EFI_GLOBAL_VARIABLE && matches!(name, "PK" | "KEK"))
        || (guid == EFI_IMAGE_SECURITY_DATABASE && matches!(name, "db" | "dbx" | "dbt" | "dbr"))
}

/// Whether `b` starts with a firmware volume header whose file system is an NVRAM one.
pub fn is_nvram_fv(b: &[u8]) -> bool {
    le32(b, 0x28, "fv signature").ok() == Some(SIG_FVH)
        && slice(b, 0x10, 16, "fv guid")
            .map(|g| NVRAM_FV_GUIDS.contains(&util::guid(g).as_str()))
            .unwrap_or(false)
}

/// Registry probe: an NVRAM volume (High when it fills the buffer, Low when more follows, so that a
/// whole-BIOS parser such as `uefi` wins there) or a bare store at offset 0.
pub fn probe(b: &[u8]) -> Option<Confidence> {
    if is_nvram_fv(b) {
        let len = le64(b, 0x20, "fv length").ok()?;
        return Some(if len == b.len() as u64 {
            Confidence::High
        } else {
            Confidence::Low
        });
    }
    store_at(b, 0).map(|_| Confidence::High)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    /// `$VSS`-style store with the given signature.
    Vss(u32),
    /// VSS2 store; true when all headers are authenticated.
    Vss2(bool),
    Ftw,
    Nvar,
    Evsa,
}

/// The first bytes a store header can start with ([`store_at`]): `$` (`$VSS`, `$SVS`, `$NSS`), `N`
/// (`NVAR`), 0xEC (an EVSA header's type) and the first byte of the FTW and VSS2 signature GUIDs. A gap
/// is scanned for these first, so the long blank stretches of a variable store cost a table lookup a byte.
const STORE_FIRST: [bool; 256] = {
    let mut t = [false; 256];
    let firsts = [b'$', b'N', 0xEC, 0x2B, 0x78, 0x17, 0x16];
    let mut i = 0;
    while i < firsts.len() {
        t[firsts[i] as usize] = true;
        i += 1;
    }
    t
};

/// The first offset in `[from, end)` where a store header may start (see [`STORE_FIRST`]), else `end`.
fn next_candidate(b: &[u8], from: u64, end: u64) -> u64 {
    let (Ok(f), Ok(e)) = (usize::try_from(from), usize::try_from(end)) else {
        return end;
    };
    b.get(f..e.min(b.len()))
        .and_then(|w| w.iter().position(|&c| STORE_FIRST[usize::from(c)]))
        .map_or(end, |i| from.saturating_add(i as u64))
}

/// Recognises a store header at `off` (with a size that makes sense).
fn store_at(b: &[u8], off: u64) -> Option<StoreKind> {
    let sig = le32(b, off, "store signature").ok()?;
    match sig {
        SIG_VSS | SIG_SVS | SIG_NSS => {
            let size = le32(b, off.saturating_add(4), "store size").ok()?;
            let fmt = util::u8_at(b, off.saturating_add(8), "store format").ok()?;
            (size > 16 && size != u32::MAX && (fmt == 0x5A || fmt == 0xFF))
                .then_some(StoreKind::Vss(sig))
        }
        SIG_NVAR => {
            let size = le16(b, off.saturating_add(4), "nvar size").ok()?;
            (size >= 10).then_some(StoreKind::Nvar)
        }
        _ => {
            if util::u8_at(b, off, "evsa type").ok() == Some(0xEC)
                && le32(b, off.saturating_add(4), "evsa signature").ok() == Some(SIG_EVSA)
            {
                return Some(StoreKind::Evsa);
            }
            // Cheap prefilter on Data1 before formatting a GUID (this runs at every offset of a gap).
            if !matches!(sig, 0x9E58_292B | 0xAAF3_2C78 | 0xDDCF_3617 | 0xDDCF_3616) {
                return None;
            }
            let g = util::guid(slice(b, off, 16, "store guid").ok()?);
            if g == FTW_GUID {
                return Some(StoreKind::Ftw);
            }
            let auth = g == AUTH_VSS2_GUID;
            if auth || VSS2_GUIDS.contains(&g.as_str()) {
                let size = le32(b, off.saturating_add(16), "store size").ok()?;
                let fmt = util::u8_at(b, off.saturating_add(20), "store format").ok()?;
                if size > 28 && size != u32::MAX && (fmt == 0x5A || fmt == 0xFF) {
                    return Some(StoreKind::Vss2(auth));
                }
            }
            None
        }
    }
}

/// Builds nodes over one buffer: offsets given relative to the parsed node's bytes.
struct Out<'a> {
    data: &'a Arc<Data>,
    base: u64,
    ctx: &'a Ctx,
}

impl Out<'_> {
    fn region(&self, kind: RegionKind, name: impl Into<String>, off: u64, len: u64) -> Region {
        Region::new(kind, name, self.data, self.base.saturating_add(off), len)
    }
    fn free(&self, off: u64, len: u64) -> Region {
        self.region(RegionKind::FreeSpace, "free-space", off, len)
            .with_policy(Policy::Mutable)
    }
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "nvram",
    description: "NVRAM volume or variable store (VSS, VSS2, NVAR, EVSA, FTW)",
    probe,
    parse,
    scope: crate::formats::Scope::Both,
    component: Some("bios"),
    policy: None,
    not_inside: &[],
    payloads: &[],
    package: None,
};

/// The `nvram` parser: an NVRAM volume or a run of bare stores.
pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let out = Out {
        data: &node.data,
        base: node.offset,
        ctx,
    };
    let mut kids = Vec::new();
    let (start, end) = if is_nvram_fv(b) {
        let fv_len = le64(b, 0x20, "fv length")?;
        let hdr_len = u64::from(le16(b, 0x30, "fv header length")?);
        if hdr_len < 0x38 || hdr_len > fv_len {
            return Err(ParseError::Invalid {
                what: "nvram volume header",
                offset: node.offset,
                detail: format!("header length {hdr_len:#x} for a volume of {fv_len:#x} bytes"),
            });
        }
        let end = fv_len.min(b.len() as u64);
        let hdr_bytes = slice(b, 0, hdr_len, "fv header")?;
        let mut header = out
            .region(RegionKind::Header, "header", 0, hdr_len)
            .with_attr("fs-guid", util::guid(&b[0x10..0x20]));
        let sum = hdr_bytes.chunks_exact(2).fold(0u16, |s, w| {
            s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
        });
        if sum != 0 {
            header.notes.push(Note::new(
                Code::FvHeaderChecksum,
                format!("NVRAM volume header checksum is wrong (words sum to {sum:#06x})"),
                Some(node.offset),
            ));
        }
        if fv_len > b.len() as u64 {
            header.notes.push(Note::new(
                Code::PartitionOutOfBounds,
                format!(
                    "volume length {fv_len:#x} is past the end of its {:#x}-byte container",
                    b.len()
                ),
                Some(node.offset),
            ));
        }
        kids.push(header);
        (hdr_len, end)
    } else {
        (0, b.len() as u64)
    };
    scan_stores(b, &out, start, end, &mut kids);
    Ok(kids.into())
}

/// Finds stores in `[start, end)`; every byte in between becomes mutable free space.
// Reviewed: `start <= cursor < end <= b.len()` and `gap_start <= cursor` throughout: the subtractions are non-negative and `cursor + 1` fits.
#[allow(clippy::arithmetic_side_effects)]
fn scan_stores(b: &[u8], out: &Out, start: u64, end: u64, kids: &mut Vec<Region>) {
    let mut cursor = start;
    let mut gap_start = start;
    while cursor < end {
        let Some(kind) = store_at(b, cursor) else {
            cursor = next_candidate(b, cursor + 1, end);
            continue;
        };
        if !out.ctx.take_region() {
            if cursor > gap_start {
                kids.push(out.free(gap_start, cursor - gap_start));
            }
            kids.push(out.ctx.limit_node(
                out.data,
                out.base.saturating_add(cursor),
                end - cursor,
                "nvram",
            ));
            return;
        }
        let (store, store_end) = parse_store(b, out, cursor, end, kind);
        if store_end <= cursor {
            cursor += 1;
            continue;
        }
        if cursor > gap_start {
            kids.push(out.free(gap_start, cursor - gap_start));
        }
        kids.push(store);
        cursor = store_end;
        gap_start = store_end;
    }
    if end > gap_start {
        kids.push(out.free(gap_start, end - gap_start));
    }
}

fn parse_store(b: &[u8], out: &Out, off: u64, end: u64, kind: StoreKind) -> (Region, u64) {
    match kind {
        StoreKind::Vss(sig) => vss_store(b, out, off, end, Some(sig)),
        StoreKind::Vss2(auth) => vss_store(b, out, off, end, if auth { None } else { Some(0) }),
        StoreKind::Ftw => ftw_store(b, out, off, end),
        StoreKind::Nvar => nvar_store(b, out, off, end),
        StoreKind::Evsa => evsa_store(b, out, off, end),
    }
}

/// A store's declared size clipped to `[off, end)`, with a note when it had to be clipped.
fn clip(off: u64, size: u64, end: u64, what: &str, notes: &mut Vec<Note>, abs: u64) -> u64 {
    let avail = end.saturating_sub(off);
    if size > avail {
        notes.push(Note::new(
            Code::PartitionOutOfBounds,
            format!("{what} claims {size:#x} bytes, only {avail:#x} remain"),
            Some(abs),
        ));
        avail
    } else {
        size
    }
}

/// Decodes a NUL-terminated UCS-2 name (lossy, bounded).
pub fn ucs2(b: &[u8]) -> String {
    let units = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .take(MAX_NAME_UNITS);
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// A name usable as one path segment: `/`, `%`, `]`, `#`, `*`, `?`, `[` and control characters are
/// percent-escaped.
pub fn path_safe(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || matches!(c, '/' | '%' | '[' | ']' | '#' | '*' | '?') {
            for byte in c.to_string().bytes() {
                o.push_str(&format!("%{byte:02X}"));
            }
        } else {
            o.push(c);
        }
    }
    o
}

fn var_name(guid: &str, name: &str) -> String {
    format!("var[{guid}:{}]", path_safe(name))
}

/// A variable node with the attributes every store format shares.
#[allow(clippy::too_many_arguments)]
fn variable(
    out: &Out,
    off: u64,
    len: u64,
    header_len: u64,
    guid: &str,
    name: &str,
    state: &str,
    live: bool,
) -> Region {
    let mut v = out
        .region(RegionKind::Variable, var_name(guid, name), off, len)
        .with_policy(Policy::Mutable)
        .with_attr("name", name)
        .with_attr("vendor-guid", guid)
        .with_attr("state", state);
    if !live {
        v.name = format!("var-deleted[{guid}:{}]", path_safe(name));
    }
    if is_secure_boot(guid, name) {
        v = v.with_attr("secure-boot", true);
    }
    let h = header_len.min(len);
    v.children
        .push(out.region(RegionKind::Header, "header", off, h));
    v.children.push(out.region(
        RegionKind::Blob,
        "data",
        off.saturating_add(h),
        len.saturating_sub(h), // `h <= len`
    ));
    v
}

/// Every variable below `root` as (vendor GUID, name, state), in tree order (used by tests and tools).
pub fn variables(root: &Region) -> Vec<(String, String, String)> {
    let mut v = Vec::new();
    root.walk(&mut |r| {
        if r.kind == RegionKind::Variable {
            v.push((
                r.attr_str("vendor-guid").unwrap_or("").to_string(),
                r.attr_str("name").unwrap_or("").to_string(),
                r.attr_str("state").unwrap_or("").to_string(),
            ));
        }
    });
    v
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {
    use super::nvar::{NVAR_ASCII_NAME, NVAR_DATA_ONLY, NVAR_GUID, NVAR_RUNTIME, NVAR_VALID};
    use super::*;
    use crate::formats::ParseOptions;
    use serde_json::json;

    fn guid_bytes(g: &str) -> [u8; 16] {
        let h: String = g.chars().filter(|c| *c != '-').collect();
        let raw: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let mut o = [0u8; 16];
        o[0..4].copy_from_slice(&[raw[3], raw[2], raw[1], raw[0]]);
        o[4..6].copy_from_slice(&[raw[5], raw[4]]);
        o[6..8].copy_from_slice(&[raw[7], raw[6]]);
        o[8..].copy_from_slice(&raw[8..]);
        o
    }

    fn plain_var(state: u8, guid: &str, name: &str, data: &[u8]) -> Vec<u8> {
        let n: Vec<u8> = name
            .encode_utf16()
            .chain([0])
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let mut v = vec![0xAA, 0x55, state, 0];
        v.extend(7u32.to_le_bytes());
        v.extend((n.len() as u32).to_le_bytes());
        v.extend((data.len() as u32).to_le_bytes());
        v.extend(guid_bytes(guid));
        v.extend(n);
        v.extend(data);
        while v.len() % 4 != 0 {
            v.push(0xFF);
        }
        v
    }

    fn vss(vars: &[Vec<u8>], size: usize) -> Vec<u8> {
        let mut s = b"$VSS".to_vec();
        s.extend((size as u32).to_le_bytes());
        s.extend([0x5A, 0xFE, 0, 0, 0, 0, 0, 0]);
        for v in vars {
            s.extend(v);
        }
        s.resize(size, 0xFF);
        s
    }

    fn parse_bytes(b: Vec<u8>) -> Vec<Region> {
        let data = Arc::new(Data::Owned(b));
        let len = data.len() as u64;
        let node = Region::new(RegionKind::Blob, "x", &data, 0, len);
        parse(&Ctx::new(&ParseOptions::default()), &node)
            .unwrap()
            .children
    }

    #[test]
    fn vss_variables_live_and_deleted() {
        let g = "8BE4DF61-93CA-11D2-AA0D-00E098032B8C";
        let b = vss(
            &[
                plain_var(0x3C, g, "Boot0000", b"old"),
                plain_var(0x3F, g, "Boot0000", b"new"),
                plain_var(0x3F, g, "PK", b"key"),
            ],
            0x200,
        );
        assert_eq!(probe(&b), Some(Confidence::High));
        let kids = parse_bytes(b);
        assert_eq!(kids.len(), 1);
        let names: Vec<_> = kids[0].children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "header",
                &format!("var-deleted[{g}:Boot0000]"),
                &format!("var[{g}:Boot0000]"),
                &format!("var[{g}:PK]"),
                "free-space"
            ]
        );
        let pk = &kids[0].children[3];
        assert_eq!(pk.attrs["secure-boot"], json!(true));
        assert_eq!(pk.children[1].name, "data");
        assert_eq!(pk.children[1].bytes(), b"key");
    }

    #[test]
    fn variable_running_past_the_store_is_a_note() {
        let g = "8BE4DF61-93CA-11D2-AA0D-00E098032B8C";
        let mut v = plain_var(0x3F, g, "X", b"abc");
        v[12..16].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes()); // data size
        let kids = parse_bytes(vss(&[v], 0x80));
        let bad = kids[0]
            .children
            .iter()
            .find(|c| c.name == "corrupt")
            .unwrap();
        assert_eq!(bad.notes[0].code.as_str(), "unparsed");
    }

    #[test]
    fn names_are_path_safe() {
        assert_eq!(path_safe("a/b%c]"), "a%2Fb%25c%5D");
    }

    #[test]
    fn nvar_chain_marks_last_entry_live() {
        // Head with GUID + ASCII name, then a data-only update linked by Next.
        let g = "8BE4DF61-93CA-11D2-AA0D-00E098032B8C";
        let mut head = b"NVAR".to_vec();
        let body_len = 16 + 5 + 2;
        head.extend(((10 + body_len) as u16).to_le_bytes());
        let next = (10 + body_len) as u32;
        head.extend(&next.to_le_bytes()[..3]);
        head.push(NVAR_VALID | NVAR_GUID | NVAR_ASCII_NAME | NVAR_RUNTIME);
        head.extend(guid_bytes(g));
        head.extend(b"Test\0");
        head.extend([1, 2]);
        let mut upd = b"NVAR".to_vec();
        upd.extend(12u16.to_le_bytes());
        upd.extend([0xFF, 0xFF, 0xFF]);
        upd.push(NVAR_VALID | NVAR_DATA_ONLY);
        upd.extend([3, 4]);
        let mut b = head;
        b.extend(upd);
        b.resize(0x100, 0xFF);
        let kids = parse_bytes(b);
        let store = &kids[0];
        let vars: Vec<_> = store
            .children
            .iter()
            .filter(|c| c.kind == RegionKind::Variable)
            .collect();
        assert_eq!(vars.len(), 2);
        assert_eq!(vars[0].name, format!("var-deleted[{g}:Test]"));
        assert_eq!(vars[0].attr_str("state"), Some("superseded"));
        assert_eq!(vars[1].name, format!("var[{g}:Test]"));
        assert_eq!(vars[1].children[1].bytes(), &[3, 4]);
    }

    #[test]
    fn evsa_store_resolves_guid_and_name() {
        let g = "8BE4DF61-93CA-11D2-AA0D-00E098032B8C";
        let mut e = vec![0xEC, 0, 20, 0];
        e.extend(SIG_EVSA.to_le_bytes());
        e.extend(0u32.to_le_bytes());
        e.extend(0x100u32.to_le_bytes());
        e.extend(0u32.to_le_bytes());
        e.extend([0xED, 0, 22, 0, 1, 0]);
        e.extend(guid_bytes(g));
        let name: Vec<u8> = "Lang\0"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        e.extend([0xEE, 0, (6 + name.len()) as u8, 0, 7, 0]);
        e.extend(name);
        e.extend([0xEF, 0, 15, 0, 1, 0, 7, 0]);
        e.extend(0x1000_0007u32.to_le_bytes());
        e.extend(b"eng");
        e.resize(0x100, 0xFF);
        let kids = parse_bytes(e);
        let v = kids[0]
            .children
            .iter()
            .find(|c| c.kind == RegionKind::Variable)
            .unwrap();
        assert_eq!(v.name, format!("var[{g}:Lang]"));
        assert_eq!(v.children[1].bytes(), b"eng");
    }

    #[test]
    fn truncated_stores_never_panic() {
        let g = "8BE4DF61-93CA-11D2-AA0D-00E098032B8C";
        let full = vss(
            &[plain_var(0x3F, g, "A", b"x"), plain_var(0x3F, g, "B", b"y")],
            0x80,
        );
        for cut in 0..full.len() {
            let _ = parse_bytes(full[..cut].to_vec());
        }
    }

    #[test]
    fn store_headers_start_only_with_the_listed_bytes() {
        // Every byte value at offset 0, followed by each signature's tail and a plausible size: a store
        // is recognised only where STORE_FIRST says one may start, so skipping the other bytes loses none.
        let tails: [&[u8]; 4] = [b"VSS", b"VAR", b"SVS", b"NSS"];
        for first in 0..=255u8 {
            for tail in tails {
                let mut b = vec![first];
                b.extend_from_slice(tail);
                b.extend_from_slice(&[0x40, 0, 0, 0, 0x5A, 0xFE, 0, 0]);
                b.resize(64, 0xFF);
                if store_at(&b, 0).is_some() {
                    assert!(STORE_FIRST[usize::from(first)], "{first:#x}");
                }
            }
            let mut evsa = vec![first, 0, 0, 0];
            evsa.extend_from_slice(b"EVSA");
            evsa.resize(64, 0);
            if store_at(&evsa, 0).is_some() {
                assert!(STORE_FIRST[usize::from(first)], "{first:#x}");
            }
        }
        for g in [FTW_GUID, AUTH_VSS2_GUID, VSS2_GUIDS[0], VSS2_GUIDS[1]] {
            let first = u32::from_str_radix(&g[..8], 16).unwrap().to_le_bytes()[0];
            assert!(STORE_FIRST[usize::from(first)], "{g}");
        }
        let b = [0xFFu8, 0xFF, b'$', 0xFF, 0x2B];
        assert_eq!(next_candidate(&b, 0, 5), 2);
        assert_eq!(next_candidate(&b, 3, 5), 4);
        assert_eq!(next_candidate(&b, 3, 4), 4);
        assert_eq!(next_candidate(&b, 5, 5), 5);
    }
}
