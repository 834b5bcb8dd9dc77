//! AMI NVAR entries: 10-byte header (`NVAR`, u16 size, u24 next, u8 attributes), GUID or GUID-store
//! index, ASCII or UCS-2 name, data; updates are chained through `next`.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;

use super::*;

pub(super) const NVAR_RUNTIME: u8 = 0x01;
pub(super) const NVAR_ASCII_NAME: u8 = 0x02;
pub(super) const NVAR_GUID: u8 = 0x04;
pub(super) const NVAR_DATA_ONLY: u8 = 0x08;
pub(super) const NVAR_AUTH_WRITE: u8 = 0x40;
pub(super) const NVAR_VALID: u8 = 0x80;

struct NvarEntry {
    off: u64,
    len: u64,
    hdr_len: u64,
    next: u32,
    attrs: u8,
    guid: Option<String>,
    name: Option<String>,
}

// Reviewed: `off <= end <= b.len()`; in the loop `cursor + 10 <= end` and `cursor + size <= end` (checked before use); `p` moves past `cursor` by at most the entry's bytes plus 2 and is clipped to `entry_end` before subtracting; a chain target is an offset plus a 24-bit value.
#[allow(clippy::arithmetic_side_effects)]
pub(super) fn nvar_store(b: &[u8], out: &Out, off: u64, end: u64) -> (Region, u64) {
    let mut store = out
        .region(RegionKind::NvramStore, "nvar", off, end - off)
        .with_policy(Policy::Mutable)
        .with_attr("store-format", "nvar");
    let mut entries: Vec<NvarEntry> = Vec::new();
    let mut cursor = off;
    while cursor.saturating_add(10) <= end && entries.len() < MAX_VARIABLES {
        if le32(b, cursor, "nvar signature").ok() != Some(SIG_NVAR) {
            break;
        }
        let size = u64::from(le16(b, cursor + 4, "nvar size").unwrap_or(0));
        if size < 10 || cursor + size > end {
            let mut bad = out
                .region(RegionKind::Blob, "corrupt", cursor, end - cursor)
                .with_policy(Policy::Mutable);
            bad.notes.push(Note::new(
                Code::Unparsed,
                format!(
                    "NVAR entry size {size:#x} is invalid ({:#x} bytes left)",
                    end - cursor
                ),
                Some(out.base + cursor),
            ));
            store.children.push(bad);
            cursor = end;
            break;
        }
        let next = le32(b, cursor + 6, "nvar next").unwrap_or(0) & 0x00FF_FFFF;
        let attrs = util::u8_at(b, cursor + 9, "nvar attributes").unwrap_or(0);
        let entry_end = cursor + size;
        let mut p = cursor + 10;
        let (mut guid, mut name) = (None, None);
        if attrs & NVAR_DATA_ONLY == 0 {
            if attrs & NVAR_GUID != 0 {
                guid = slice(b, p, 16, "").ok().map(util::guid);
                p += 16;
            } else if let Ok(idx) = util::u8_at(b, p, "nvar guid index") {
                // The GUID store grows down from the end of the NVAR area.
                let g = 16u64
                    .checked_mul(u64::from(idx) + 1)
                    .and_then(|d| end.checked_sub(d))
                    .filter(|&g| g >= cursor)
                    .and_then(|g| slice(b, g, 16, "").ok())
                    .map(util::guid);
                guid = Some(g.unwrap_or_else(|| format!("guid-index-{idx}")));
                p += 1;
            }
            let rest = slice(b, p.min(entry_end), entry_end - p.min(entry_end), "").unwrap_or(&[]);
            if attrs & NVAR_ASCII_NAME != 0 {
                let n = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
                name = Some(String::from_utf8_lossy(&rest[..n.min(MAX_NAME_UNITS)]).into_owned());
                p += n as u64 + 1;
            } else {
                let s = ucs2(rest);
                let units = rest
                    .chunks_exact(2)
                    .position(|c| c == [0, 0])
                    .unwrap_or(rest.len() / 2);
                p += units as u64 * 2 + 2;
                name = Some(s);
            }
        }
        entries.push(NvarEntry {
            off: cursor,
            len: size,
            hdr_len: p.min(entry_end) - cursor,
            next,
            attrs,
            guid,
            name,
        });
        cursor = entry_end;
    }
    // Chains: a head names its updates; the last valid entry of a chain is the live one.
    let by_off: HashMap<u64, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.off, i))
        .collect();
    let mut key: Vec<Option<(String, String)>> = vec![None; entries.len()];
    let mut live = vec![false; entries.len()];
    for i in 0..entries.len() {
        let (Some(g), Some(n)) = (&entries[i].guid, &entries[i].name) else {
            continue;
        };
        if key[i].is_some() {
            continue;
        }
        let mut chain = vec![i];
        let mut j = i;
        while entries[j].next != 0x00FF_FFFF && chain.len() < entries.len() {
            let target = entries[j].off + u64::from(entries[j].next);
            match by_off.get(&target) {
                Some(&k) if k > j && key[k].is_none() => {
                    chain.push(k);
                    j = k;
                }
                _ => break,
            }
        }
        for &c in &chain {
            key[c] = Some((g.clone(), n.clone()));
        }
        if let Some(&l) = chain
            .iter()
            .rev()
            .find(|&&c| entries[c].attrs & NVAR_VALID != 0)
        {
            live[l] = true;
        }
    }
    for (i, e) in entries.iter().enumerate() {
        let (g, n) = key[i]
            .clone()
            .unwrap_or_else(|| ("unknown".into(), format!("orphan-{:x}", e.off)));
        let state = if e.attrs & NVAR_VALID == 0 {
            "deleted"
        } else if live[i] {
            "added"
        } else {
            "superseded"
        };
        let v = variable(out, e.off, e.len, e.hdr_len, &g, &n, state, live[i])
            .with_attr("attributes", format!("{:#04x}", e.attrs))
            .with_attr("runtime", e.attrs & NVAR_RUNTIME != 0)
            .with_attr("authenticated", e.attrs & NVAR_AUTH_WRITE != 0)
            .with_attr("data-only", e.attrs & NVAR_DATA_ONLY != 0);
        store.children.push(v);
    }
    if entries.len() >= MAX_VARIABLES {
        store.notes.push(Note::new(
            Code::LimitExceeded,
            format!("more than {MAX_VARIABLES} NVAR entries"),
            Some(out.base + cursor),
        ));
    }
    if end > cursor {
        store.children.push(out.free(cursor, end - cursor));
    }
    store.children.sort_by_key(|c| c.offset);
    let n = store
        .children
        .iter()
        .filter(|c| c.kind == RegionKind::Variable)
        .count();
    (store.with_attr("variables", n), end)
}
