//! VSS and VSS2 variable stores (EDK2 `VariableFormat.h`, UEFITool `nvram.h`) and the FTW working block.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;

use super::*;

/// `sig`: `Some($VSS-signature)`, `Some(0)` for a plain VSS2 store, `None` for an authenticated VSS2 one.
// Reviewed: `off < end <= b.len()`, `size` is clipped to `end - off` and the header is at least 16 bytes; in the loop `cursor + 2 <= store_end` and a variable's length fits what is left (vss_variable); `out.base` plus an offset inside the node fits.
#[allow(clippy::arithmetic_side_effects)]
pub(super) fn vss_store(
    b: &[u8],
    out: &Out,
    off: u64,
    end: u64,
    sig: Option<u32>,
) -> (Region, u64) {
    let (hdr_len, size_off, fmt_name, name) = match sig {
        Some(SIG_VSS) => (16, 4, "vss", "vss"),
        Some(SIG_SVS) => (16, 4, "vss", "svs"),
        Some(SIG_NSS) => (16, 4, "vss", "nss"),
        Some(_) => (28, 16, "vss2", "vss2"),
        None => (28, 16, "vss2-auth", "vss2"),
    };
    let mut notes = Vec::new();
    let declared = u64::from(le32(b, off + size_off, "store size").unwrap_or(0));
    let size = clip(
        off,
        declared,
        end,
        "variable store",
        &mut notes,
        out.base + off,
    );
    let store_end = off + size;
    let mut store = out
        .region(RegionKind::NvramStore, name, off, size)
        .with_policy(Policy::Mutable)
        .with_attr("store-format", fmt_name);
    store.notes = notes;
    if let Ok(f) = util::u8_at(b, off + hdr_len - 8, "store format") {
        store = store.with_attr("store-format-byte", f).with_attr(
            "store-state",
            util::u8_at(b, off + hdr_len - 7, "").unwrap_or(0),
        );
    }
    let hdr = hdr_len.min(size);
    store
        .children
        .push(out.region(RegionKind::Header, "header", off, hdr));
    let mut vars = Vec::new();
    let mut cursor = off + hdr;
    while cursor.saturating_add(2) <= store_end && vars.len() < MAX_VARIABLES {
        if le16(b, cursor, "variable start").ok() != Some(VSS_START_ID) {
            break;
        }
        if !out.ctx.take_region() {
            store.notes.push(Note::new(
                Code::LimitExceeded,
                format!(
                    "more than {} regions in this image; the store's remaining variables stay in it unparsed",
                    out.ctx.opts.max_regions
                ),
                Some(out.base.saturating_add(cursor)),
            ));
            break;
        }
        match vss_variable(b, out, cursor, store_end, sig.is_none()) {
            Ok((v, len)) => {
                vars.push(v);
                // Progress: len >= 32.
                match util::align_up(cursor + len, 4, "variable end") {
                    Ok(next) => cursor = next.min(store_end),
                    Err(_) => break,
                }
            }
            Err(e) => {
                let mut bad = out
                    .region(RegionKind::Blob, "corrupt", cursor, store_end - cursor)
                    .with_policy(Policy::Mutable);
                bad.notes.push(Note::new(
                    Code::Unparsed,
                    format!("variable store: {e}"),
                    Some(out.base + cursor),
                ));
                vars.push(bad);
                cursor = store_end;
            }
        }
    }
    if vars.len() >= MAX_VARIABLES {
        store.notes.push(Note::new(
            Code::LimitExceeded,
            format!("more than {MAX_VARIABLES} variables in one store"),
            Some(out.base + cursor),
        ));
    }
    name_live_copies(&mut vars);
    store.children.extend(vars);
    if store_end > cursor {
        store.children.push(out.free(cursor, store_end - cursor));
    }
    let n = store
        .children
        .iter()
        .filter(|c| c.kind == RegionKind::Variable)
        .count();
    store = store.with_attr("variables", n);
    (store, store_end)
}

/// The state byte of a VSS variable (bits are cleared as the variable goes through its life).
pub fn vss_state(v: u8) -> &'static str {
    match v {
        _ if v & 0x02 == 0 => "deleted",
        0x3F => "added",
        0x3E => "in-transition",
        0x7F | 0x7E => "header-valid",
        _ => "invalid",
    }
}

// Reviewed: `off + 2 <= end <= b.len()` (caller); header fields are small constants past `off`; the variable's length is a checked sum, compared with `end` before use.
#[allow(clippy::arithmetic_side_effects)]
fn vss_variable(
    b: &[u8],
    out: &Out,
    off: u64,
    end: u64,
    auth_store: bool,
) -> Result<(Region, u64), ParseError> {
    let state_byte = util::u8_at(b, off + 2, "variable state")?;
    let attributes = le32(b, off + 4, "variable attributes")?;
    // Header flavour: authenticated stores always; otherwise the attribute bits tell (as UEFITool does).
    let (hdr, kind) = if auth_store || attributes & 0x30 != 0 {
        (60u64, "auth")
    } else if attributes & 0x8000_0000 != 0 {
        (36, "apple")
    } else {
        (32, "plain")
    };
    let sizes = if hdr == 60 { off + 36 } else { off + 8 };
    let name_size = u64::from(le32(b, sizes, "variable name size")?);
    let data_size = u64::from(le32(b, sizes + 4, "variable data size")?);
    let guid = util::guid(slice(b, sizes + 8, 16, "variable vendor guid")?);
    let len = hdr
        .checked_add(name_size)
        .and_then(|l| l.checked_add(data_size))
        .ok_or(ParseError::Overflow {
            what: "variable size",
            offset: out.base + off,
        })?;
    if off.saturating_add(len) > end {
        return Err(ParseError::Invalid {
            what: "variable",
            offset: out.base + off,
            detail: format!(
                "header+name+data = {len:#x} bytes runs past the end of the store ({:#x} left)",
                end - off
            ),
        });
    }
    let name = ucs2(slice(b, off + hdr, name_size, "variable name")?);
    let state = vss_state(state_byte);
    let live = matches!(state, "added" | "in-transition");
    let mut v = variable(out, off, len, hdr + name_size, &guid, &name, state, live)
        .with_attr("attributes", format!("{attributes:#010x}"))
        .with_attr("state-byte", format!("{state_byte:#04x}"))
        .with_attr("header-format", kind)
        .with_attr("authenticated", hdr == 60);
    if hdr == 60 {
        let t = slice(b, off + 16, 16, "timestamp")?;
        v = v
            .with_attr("monotonic-count", le64(b, off + 8, "monotonic count")?)
            .with_attr(
                "timestamp",
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                    u16::from_le_bytes([t[0], t[1]]),
                    t[2],
                    t[3],
                    t[4],
                    t[5],
                    t[6]
                ),
            )
            .with_attr("pubkey-index", le32(b, off + 32, "pubkey index")?);
    }
    Ok((v, len))
}

/// A key's live copy keeps `var[...]`; when an in-transition copy and an added copy of the same key
/// coexist, the added one is live.
fn name_live_copies(vars: &mut [Region]) {
    let mut has_added: HashMap<String, bool> = HashMap::new();
    for v in vars.iter() {
        if v.attr_str("state") == Some("added") {
            has_added.insert(v.name.clone(), true);
        }
    }
    for v in vars.iter_mut() {
        if v.attr_str("state") == Some("in-transition") && has_added.contains_key(&v.name) {
            if let Some(rest) = v.name.strip_prefix("var[") {
                v.name = format!("var-deleted[{rest}");
            }
        }
    }
}

// Reviewed: `off < end <= b.len()` and `size` is clipped to `end - off`.
#[allow(clippy::arithmetic_side_effects)]
pub(super) fn ftw_store(b: &[u8], out: &Out, off: u64, end: u64) -> (Region, u64) {
    // EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER: GUID, CRC32, state, 3 reserved, WriteQueueSize (u64 in
    // EDK2; some vendors use u32).
    let q64 = le64(b, off + 24, "ftw queue size").ok();
    let (hdr, queue) = match q64 {
        Some(q) if q >> 32 == 0 => (32u64, q),
        _ => (
            28,
            u64::from(le32(b, off + 24, "ftw queue size").unwrap_or(0)),
        ),
    };
    let mut notes = Vec::new();
    let size = clip(
        off,
        hdr.saturating_add(queue),
        end,
        "FTW working block",
        &mut notes,
        out.base + off,
    );
    let mut r = out
        .region(RegionKind::NvramStore, "ftw", off, size)
        .with_policy(Policy::Mutable)
        .with_attr("store-format", "ftw")
        .with_attr("write-queue-size", queue);
    if let Ok(crc) = le32(b, off + 16, "ftw crc") {
        r = r.with_attr("crc32", format!("{crc:#010x}"));
    }
    r.notes = notes;
    (r, off + size)
}
