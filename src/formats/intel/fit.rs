//! The Intel Firmware Interface Table (not U-Boot's FIT, see `formats::fit`): a table of 16-byte entries
//! that the CPU reads before the first instruction to find microcode updates, the startup ACM and the Boot
//! Guard manifests. The pointer at 4 GiB - 0x40 (the last 0x40 bytes of the BIOS region, which the chipset
//! maps below 4 GiB) gives the table's physical address; the first entry is the header (address
//! `_FIT_   `, size = number of entries, version 0x0100, type 0). Each entry: address u64, size u24 (in
//! 16-byte units; in bytes for KM and BPM), reserved u8, version u16, type u7 + checksum-valid bit,
//! checksum u8. With the header's checksum-valid bit set, the bytes of the whole table sum to zero.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::sync::OnceLock;

/// `_FIT_   `
pub const FIT_SIGNATURE: &[u8; 8] = b"_FIT_   ";
/// Most entries accepted (the size field allows 2^24; real tables have a few dozen).
pub const MAX_ENTRIES: u64 = 1024;

pub const TYPE_HEADER: u8 = 0x00;
pub const TYPE_MICROCODE: u8 = 0x01;
pub const TYPE_STARTUP_ACM: u8 = 0x02;
pub const TYPE_KEY_MANIFEST: u8 = 0x0B;
pub const TYPE_BOOT_POLICY: u8 = 0x0C;
pub const TYPE_SKIP: u8 = 0x7F;

/// One FIT entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub address: u64,
    pub size: u32,
    pub version: u16,
    pub kind: u8,
    pub checksum_valid: bool,
    pub checksum: u8,
}

impl Entry {
    fn read(b: &[u8]) -> Entry {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        Entry {
            address: u64::from_le_bytes(a),
            size: u32::from_le_bytes([b[8], b[9], b[10], 0]),
            version: u16::from_le_bytes([b[12], b[13]]),
            kind: b[14] & 0x7F,
            checksum_valid: b[14] & 0x80 != 0,
            checksum: b[15],
        }
    }

    /// Size of the target in bytes as the entry states it (0 when the target's own header gives it).
    pub fn size_bytes(&self) -> u64 {
        match self.kind {
            TYPE_KEY_MANIFEST | TYPE_BOOT_POLICY => self.size as u64,
            // A 24-bit field times 16: at most 2^28.
            _ => (self.size as u64).saturating_mul(16),
        }
    }
}

/// A parsed table.
#[derive(Debug, Clone)]
pub struct Table {
    /// Offset of the table in the buffer given to [`parse`].
    pub offset: u64,
    pub entries: Vec<Entry>,
    /// `Some(ok)` when the header says the checksum is valid.
    pub checksum_ok: Option<bool>,
}

/// Why there is no usable FIT at a pointer (code `fit-invalid`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FitError {
    #[error("offset too large")]
    OffsetTooLarge,
    #[error("FIT pointer 0x{offset:x} is outside the image")]
    Outside { offset: u64 },
    #[error("no _FIT_ signature at 0x{offset:x}")]
    NoSignature { offset: u64 },
    #[error("FIT header says {count} entries")]
    Count { count: u64 },
    #[error("FIT of {count} entries runs past the end of the image")]
    PastEnd { count: u64 },
}

/// Parses the table at `offset` of `b`.
pub fn parse(b: &[u8], offset: u64) -> Result<Table, FitError> {
    let o = usize::try_from(offset).map_err(|_| FitError::OffsetTooLarge)?;
    let head = b
        .get(o..o.saturating_add(16))
        .filter(|h| h.len() == 16)
        .ok_or(FitError::Outside { offset })?;
    if &head[..8] != FIT_SIGNATURE {
        return Err(FitError::NoSignature { offset });
    }
    let header = Entry::read(head);
    let count = header.size as u64;
    if count == 0 || count > MAX_ENTRIES {
        return Err(FitError::Count { count });
    }
    // `count <= MAX_ENTRIES` (checked above).
    let len = count.saturating_mul(16) as usize;
    let table = b
        .get(o..o.saturating_add(len))
        .filter(|t| t.len() == len)
        .ok_or(FitError::PastEnd { count })?;
    let entries = table.chunks_exact(16).map(Entry::read).collect();
    let checksum_ok = header
        .checksum_valid
        .then(|| table.iter().fold(0u8, |a, &x| a.wrapping_add(x)) == 0);
    Ok(Table {
        offset,
        entries,
        checksum_ok,
    })
}

fn names() -> &'static HashMap<u8, (String, String)> {
    static NAMES: OnceLock<HashMap<u8, (String, String)>> = OnceLock::new();
    NAMES.get_or_init(|| {
        include_str!("../../../signatures/intel-fit-types.csv")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let mut it = l.splitn(3, ',');
                let t = u8::from_str_radix(it.next()?.trim().trim_start_matches("0x"), 16).ok()?;
                Some((
                    t,
                    (it.next()?.trim().to_string(), it.next()?.trim().to_string()),
                ))
            })
            .collect()
    })
}

/// Short name (path segment) of an entry type.
pub fn type_name(t: u8) -> String {
    names()
        .get(&t)
        .map(|(s, _)| s.clone())
        .unwrap_or_else(|| format!("type-{t:02x}"))
}

/// Description of an entry type.
pub fn type_description(t: u8) -> String {
    names()
        .get(&t)
        .map(|(_, d)| d.clone())
        .unwrap_or_else(|| "reserved or unknown FIT entry type".into())
}
