//! Intel microcode updates: the 48-byte header (header version 1, revision, BCD date, processor signature,
//! checksum, loader version 1, platform flags, data and total size), the checksum (all dwords of the
//! update sum to zero) and the extended signature table (count, checksum, 12-byte signatures) whose own
//! checksum and per-signature checksums are verified too. Updates are named by CPUID signature and
//! revision; CPU names come from `signatures/intel-cpuids.csv`.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::sync::OnceLock;

/// File GUID of the microcode file in EDK2 firmware volumes.
pub const MICROCODE_FILE_GUID: &str = "197DB236-F856-4924-90F8-CDF12FB875F3";
const HEADER: usize = 48;

/// One parsed update.
#[derive(Debug, Clone)]
pub struct Update {
    pub revision: u32,
    pub date: String,
    pub signature: u32,
    pub platform_flags: u32,
    pub data_size: u32,
    pub total_size: u32,
    pub checksum_ok: bool,
    /// Extended signatures (signature, flags).
    pub extended: Vec<(u32, u32)>,
    pub problems: Vec<String>,
}

fn dw(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(o..o.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn sum(b: &[u8]) -> u32 {
    b.chunks_exact(4).fold(0u32, |a, c| {
        a.wrapping_add(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    })
}

/// (data size, total size) when `b` starts with a plausible update header that fits in `b`.
// Reviewed: 32-bit sizes summed in u64; the BCD shifts are below 32.
#[allow(clippy::arithmetic_side_effects)]
pub fn header_sizes(b: &[u8]) -> Option<(u32, u32)> {
    if dw(b, 0)? != 1 || dw(b, 20)? != 1 {
        return None;
    }
    let data = match dw(b, 28)? {
        0 => 2000,
        n => n,
    };
    let total = match dw(b, 32)? {
        0 => 2048,
        n => n,
    };
    let fits = data % 4 == 0
        && total % 1024 == 0
        && (data as u64) + (HEADER as u64) <= total as u64
        && total as usize <= b.len();
    // The date is BCD.
    let date = dw(b, 8)?;
    let bcd = (0..8).all(|i| (date >> (i * 4)) & 0xF <= 9);
    (fits && bcd).then_some((data, total))
}

/// Parses one update at the start of `b` (call [`header_sizes`] first).
// Reviewed: `data_size + HEADER <= total_size <= b.len()` (header_sizes) and the table count is bounded by the extension's length before it is multiplied.
#[allow(clippy::arithmetic_side_effects)]
pub fn parse(b: &[u8]) -> Option<Update> {
    let (data_size, total_size) = header_sizes(b)?;
    let upd = &b[..total_size as usize];
    let date = dw(b, 8)?;
    let mut problems = Vec::new();
    let checksum_ok = sum(upd) == 0;
    if !checksum_ok {
        problems.push("update checksum does not sum to zero".to_string());
    }
    let mut extended = Vec::new();
    let ext_off = HEADER + data_size as usize;
    if (total_size as usize) > ext_off {
        let ext = &upd[ext_off..];
        match dw(ext, 0) {
            Some(count) if ext.len() >= 20 && (count as usize) <= (ext.len() - 20) / 12 => {
                let table = &ext[..20 + 12 * count as usize];
                if sum(table) != 0 {
                    problems.push("extended signature table checksum is wrong".to_string());
                }
                let (sig, flags, ck) = (dw(b, 12)?, dw(b, 24)?, dw(b, 16)?);
                for i in 0..count as usize {
                    let e = 20 + 12 * i;
                    let (s, f, c) = (dw(table, e)?, dw(table, e + 4)?, dw(table, e + 8)?);
                    // Replacing the header's signature, flags and checksum by these keeps the sum zero.
                    let expect = ck
                        .wrapping_add(sig)
                        .wrapping_add(flags)
                        .wrapping_sub(s)
                        .wrapping_sub(f);
                    if c != expect {
                        problems.push(format!("extended signature {s:#x} has a wrong checksum"));
                    }
                    extended.push((s, f));
                }
            }
            _ => problems.push("extended signature table does not fit".to_string()),
        }
    }
    Some(Update {
        revision: dw(b, 4)?,
        date: format!(
            "{:04x}-{:02x}-{:02x}",
            date & 0xFFFF,
            date >> 24,
            (date >> 16) & 0xFF
        ),
        signature: dw(b, 12)?,
        platform_flags: dw(b, 24)?,
        data_size,
        total_size,
        checksum_ok,
        extended,
        problems,
    })
}

/// Updates in a buffer (a microcode file's data): (offset, update). Between updates, the scan moves on at
/// 16-byte steps, so padding and unknown bytes are skipped in linear time.
// Reviewed: positions are indices into the slice (below its length, at most isize::MAX) plus small constants: no overflow.
#[allow(clippy::arithmetic_side_effects)]
pub fn scan(b: &[u8]) -> Vec<(usize, Update)> {
    let mut out = Vec::new();
    let mut o = 0usize;
    while o + HEADER <= b.len() {
        match parse(&b[o..]) {
            Some(u) => {
                let t = u.total_size as usize;
                out.push((o, u));
                o += t;
            }
            None => o += 16,
        }
    }
    out
}

fn cpu_names() -> &'static HashMap<u32, String> {
    static NAMES: OnceLock<HashMap<u32, String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        include_str!("../../../signatures/intel-cpuids.csv")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (sig, name) = l.split_once(',')?;
                let sig = u32::from_str_radix(sig.trim().trim_start_matches("0x"), 16).ok()?;
                Some((sig, name.trim().to_string()))
            })
            .collect()
    })
}

/// Name of a CPUID signature (family/model/stepping), from the data file.
pub fn cpu_name(signature: u32) -> Option<&'static str> {
    cpu_names().get(&signature).map(String::as_str)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {

    use super::*;

    fn update(sig: u32, rev: u32, total: usize) -> Vec<u8> {
        let mut b = vec![0u8; total];
        b[0] = 1;
        b[4..8].copy_from_slice(&rev.to_le_bytes());
        b[8..12].copy_from_slice(&0x0102_2020u32.to_le_bytes());
        b[12..16].copy_from_slice(&sig.to_le_bytes());
        b[20] = 1;
        b[28..32].copy_from_slice(&((total - 48) as u32).to_le_bytes());
        b[32..36].copy_from_slice(&(total as u32).to_le_bytes());
        b[100] = 0x5A;
        let s = sum(&b);
        b[16..20].copy_from_slice(&0u32.wrapping_sub(s).to_le_bytes());
        b
    }

    #[test]
    fn checksum_and_scan() {
        let mut buf = update(0x806EA, 0xB4, 2048);
        buf.extend(vec![0xFF; 64]);
        buf.extend(update(0x906EA, 0xDE, 1024));
        let found = scan(&buf);
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|(_, u)| u.checksum_ok));
        assert_eq!(found[1].0, 2048 + 64);
        buf[200] ^= 1;
        assert!(!scan(&buf)[0].1.checksum_ok);
        assert!(cpu_name(0x806EA).is_some());
    }

    #[test]
    fn hostile_sizes_are_bounded() {
        let mut b = update(0x806EA, 1, 1024);
        b[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&b).is_none());
        let mut b = update(0x806EA, 1, 2048);
        // extended table with 2^32-1 entries
        b[28..32].copy_from_slice(&1024u32.to_le_bytes());
        b[48 + 1024..48 + 1028].copy_from_slice(&u32::MAX.to_le_bytes());
        let u = parse(&b).unwrap();
        assert!(!u.problems.is_empty());
    }
}
