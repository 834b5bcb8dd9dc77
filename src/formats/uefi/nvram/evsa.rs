//! Phoenix EVSA stores: a 20-byte store entry (type 0xEC, `EVSA`), then GUID (0xED/0xE1), name
//! (0xEE/0xE2) and data (0xEF/0xE3, 0x83 = deleted) entries.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;

use super::*;

// Reviewed: `off < end <= b.len()` and `size` is clipped to `end - off`; in the loop `cursor + 4 <= store_end`, so the small field offsets and `store_end - cursor` cannot overflow, and `cursor + len <= store_end` before `cursor` advances; `out.base` plus an offset in the node fits.
#[allow(clippy::arithmetic_side_effects)]
pub(super) fn evsa_store(b: &[u8], out: &Out, off: u64, end: u64) -> (Region, u64) {
    let mut notes = Vec::new();
    let declared = u64::from(le32(b, off + 12, "evsa store size").unwrap_or(0));
    let size = clip(
        off,
        declared.max(20),
        end,
        "EVSA store",
        &mut notes,
        out.base + off,
    );
    let store_end = off + size;
    let mut store = out
        .region(RegionKind::NvramStore, "evsa", off, size)
        .with_policy(Policy::Mutable)
        .with_attr("store-format", "evsa");
    store.notes = notes;
    store
        .children
        .push(out.region(RegionKind::Header, "header", off, 20.min(size)));
    let mut guids: HashMap<u16, String> = HashMap::new();
    let mut names: HashMap<u16, String> = HashMap::new();
    struct Data {
        off: u64,
        len: u64,
        hdr: u64,
        guid_id: u16,
        var_id: u16,
        attrs: u32,
        live: bool,
    }
    let mut datas: Vec<Data> = Vec::new();
    let mut others: Vec<Region> = Vec::new();
    let mut cursor = off + 20;
    let mut count = 0usize;
    while cursor.saturating_add(4) <= store_end && count < MAX_VARIABLES {
        let ty = util::u8_at(b, cursor, "evsa entry type").unwrap_or(0xFF);
        let esize = u64::from(le16(b, cursor + 2, "evsa entry size").unwrap_or(0));
        if !matches!(ty, 0xED | 0xE1 | 0xEE | 0xE2 | 0xEF | 0xE3 | 0x83) || esize < 4 {
            break;
        }
        let mut len = esize;
        match ty {
            0xED | 0xE1 => {
                if let (Ok(id), Ok(g)) = (
                    le16(b, cursor + 4, "evsa guid id"),
                    slice(b, cursor + 6, 16, "evsa guid"),
                ) {
                    guids.insert(id, util::guid(g));
                }
            }
            0xEE | 0xE2 => {
                if let Ok(id) = le16(b, cursor + 4, "evsa var id") {
                    let n = slice(b, cursor + 6, esize.saturating_sub(6), "evsa name")
                        .map(ucs2)
                        .unwrap_or_default();
                    names.insert(id, n);
                }
            }
            _ => {
                let attrs = le32(b, cursor + 8, "evsa attributes").unwrap_or(0);
                let mut hdr = 12;
                if attrs & 0x1000_0000 == 0 {
                    let ds = u64::from(le32(b, cursor + 12, "evsa data size").unwrap_or(u32::MAX));
                    hdr = 16;
                    len = 16u64.saturating_add(ds);
                }
                datas.push(Data {
                    off: cursor,
                    len: 0,
                    hdr,
                    guid_id: le16(b, cursor + 4, "").unwrap_or(0),
                    var_id: le16(b, cursor + 6, "").unwrap_or(0),
                    attrs,
                    live: ty != 0x83,
                });
            }
        }
        if cursor.saturating_add(len) > store_end {
            let mut bad = out
                .region(RegionKind::Blob, "corrupt", cursor, store_end - cursor)
                .with_policy(Policy::Mutable);
            bad.notes.push(Note::new(
                Code::Unparsed,
                format!(
                    "EVSA entry of {len:#x} bytes runs past the store ({:#x} left)",
                    store_end - cursor
                ),
                Some(out.base + cursor),
            ));
            if matches!(ty, 0xEF | 0xE3 | 0x83) {
                datas.pop();
            }
            others.push(bad);
            cursor = store_end;
            break;
        }
        if let Some(d) = datas.last_mut().filter(|d| d.off == cursor) {
            d.len = len;
        } else {
            let what = if matches!(ty, 0xED | 0xE1) {
                "guid-entry"
            } else {
                "name-entry"
            };
            others.push(
                out.region(RegionKind::Header, what, cursor, len)
                    .with_policy(Policy::Mutable),
            );
        }
        count += 1;
        cursor += len;
    }
    for d in &datas {
        let g = guids
            .get(&d.guid_id)
            .cloned()
            .unwrap_or_else(|| format!("guid-id-{}", d.guid_id));
        let n = names
            .get(&d.var_id)
            .cloned()
            .unwrap_or_else(|| format!("var-id-{}", d.var_id));
        let state = if d.live { "added" } else { "deleted" };
        others.push(
            variable(out, d.off, d.len, d.hdr, &g, &n, state, d.live)
                .with_attr("attributes", format!("{:#010x}", d.attrs)),
        );
    }
    others.sort_by_key(|r| r.offset);
    store.children.extend(others);
    if store_end > cursor {
        store.children.push(out.free(cursor, store_end - cursor));
    }
    (store.with_attr("variables", datas.len()), store_end)
}
