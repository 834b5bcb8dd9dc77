//! A raw U-Boot binary (U-Boot proper or SPL) at the start of a partition: its code, the control device
//! tree appended to it, and the blank slack after it.
//!
//! A real `u-boot.bin` (and `u-boot-spl.bin`) is `u-boot-nodtb.bin` followed by the control device tree
//! (`CONFIG_OF_SEPARATE`): the FDT whose `totalsize` ends the content. It is found from the structures: the
//! first valid FDT header (not a FIT: no `/images`) at a 4-byte aligned offset whose blob is followed only
//! by blank bytes (or, after blank bytes, by the FIT/uImage of an SPL + `u-boot.img` layout). Nodes:
//! `u-boot-nodtb` (the code; attrs `version`, `stage`), `padding` (blank bytes just before the device
//! tree, if any), `control-dtb` (parsed as a device tree; its `/signature/key-*` keys, the trust anchors
//! of U-Boot's verified boot, are listed on its `fdt` node), what follows after a gap, and `slack`.
//!
//! Without an appended device tree (`CONFIG_OF_EMBED`, `OF_BOARD`) the binary carries no length: the
//! content is taken to end at the first run of at least [`GAP`] blank bytes that is not followed by a FIT
//! or uImage header; everything after it is `slack` that must be blank. A payload appended right after
//! the binary without a blank gap is part of the content, so it is found by the baseline comparison
//! (`region-modified`), not by the slack rule.
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::formats::fit::{slack, UIMAGE_MAGIC};
use crate::formats::{fdt, Confidence, Ctx, Parsed};
use crate::region::{Region, RegionKind};

/// Blank bytes that end the content.
pub const GAP: usize = 0x1000;
/// How far into a partition the version string is looked for.
const VERSION_WINDOW: usize = 1 << 20;

// Reviewed: positions are indices into the slice (below its length, at most isize::MAX) plus small constants: no overflow.
#[allow(clippy::arithmetic_side_effects)]
pub(crate) fn version(b: &[u8]) -> Option<String> {
    let w = &b[..b.len().min(VERSION_WINDOW)];
    let pat = b"U-Boot ";
    for at in memchr::memmem::find_iter(w, pat) {
        let rest = &w[at..w.len().min(at + 96)];
        let text: String = rest
            .iter()
            .take_while(|&&c| (0x20..0x7F).contains(&c))
            .map(|&c| c as char)
            .collect();
        let digit_at = |i: usize| text.as_bytes().get(i).is_some_and(u8::is_ascii_digit);
        let stage = ["SPL ", "TPL ", "VPL "]
            .iter()
            .any(|s| text[7..].starts_with(s) && digit_at(11));
        if text.len() > 12 && (digit_at(7) || stage) {
            return Some(text);
        }
    }
    None
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    if b.len() < 64 || b.iter().take(64).all(|&c| c == 0xFF) {
        return None;
    }
    version(b).map(|_| Confidence::Medium)
}

/// End of the content of `b` (see the module documentation).
// Reviewed: positions are indices into the slice (below its length, at most isize::MAX) plus small constants: no overflow.
#[allow(clippy::arithmetic_side_effects)]
pub fn content_end(b: &[u8], blank: u8) -> usize {
    let mut pos = 0usize;
    loop {
        // First run of GAP blank bytes at or after pos.
        let mut run = 0usize;
        let mut run_start = None;
        let mut i = pos;
        while i < b.len() {
            if b[i] == blank {
                run += 1;
                if run >= GAP {
                    run_start = Some(i + 1 - run);
                    break;
                }
            } else {
                run = 0;
            }
            i += 1;
        }
        let Some(start) = run_start else {
            return b
                .iter()
                .rposition(|&c| c != blank)
                .map(|p| p + 1)
                .unwrap_or(0);
        };
        let Some(next) = b[start..]
            .iter()
            .position(|&c| c != blank)
            .map(|p| p + start)
        else {
            return start;
        };
        let tail = &b[next..];
        let is_image = tail.len() >= 4
            && (u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]) == UIMAGE_MAGIC
                || fdt::probe(tail));
        if !is_image || next <= pos {
            return start;
        }
        pos = next;
    }
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "u-boot",
    description: "raw U-Boot binary (content extent, blank slack)",
    probe,
    parse,
    scope: crate::formats::Scope::File(crate::formats::Confidence::Low),
    component: Some("bmc"),
    policy: Some(crate::region::Policy::Static),
    not_inside: &[],
    payloads: &[],
    package: None,
};

/// Most FDT magics looked at for the appended device tree (bounds the work on hostile input).
const MAX_DTB_CANDIDATES: usize = 256;

/// Whether `tail` is blank, or blank bytes and then a FIT or uImage (an SPL + `u-boot.img` layout).
fn only_blank_or_image(tail: &[u8], blank: u8) -> bool {
    match tail.iter().position(|&c| c != blank) {
        None => true,
        Some(i) => {
            let t = &tail[i..];
            i >= 4
                && t.len() >= 4
                && (u32::from_be_bytes([t[0], t[1], t[2], t[3]]) == UIMAGE_MAGIC || fdt::probe(t))
        }
    }
}

/// `(offset, end)` of the control device tree appended to the code (module documentation).
// Reviewed: offsets are indices into the slice plus an FDT totalsize checked against its length.
#[allow(clippy::arithmetic_side_effects)]
pub fn appended_dtb(b: &[u8], blank: u8) -> Option<(usize, usize)> {
    let magic = fdt::MAGIC.to_be_bytes();
    memchr::memmem::find_iter(b, &magic)
        .filter(|i| i % 4 == 0 && *i > 0)
        .take(MAX_DTB_CANDIDATES)
        .find_map(|i| {
            let blob = &b[i..];
            if !fdt::probe(blob) {
                return None;
            }
            let f = fdt::Fdt::parse(blob).ok()?;
            let end = i.checked_add(usize::try_from(f.totalsize).ok()?)?;
            if end > b.len() || f.root.child("images").is_some() {
                return None;
            }
            only_blank_or_image(&b[end..], blank).then_some((i, end))
        })
}

pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let blank = ctx.opts.blank;
    let at = |o: usize| node.offset.saturating_add(o as u64);
    let (code_end, content_end) = match appended_dtb(b, blank) {
        Some((off, end)) => {
            // Blank bytes right before the device tree are padding, not code.
            let pad = b[..off].iter().rev().take_while(|&&c| c == blank).count();
            (off.saturating_sub(pad), Some((off, end)))
        }
        None => (content_end(b, blank), None),
    };
    let mut code = Region::new(
        RegionKind::Blob,
        "u-boot-nodtb",
        &node.data,
        node.offset,
        code_end as u64,
    )
    .with_attr("format", "u-boot");
    let text = version(b);
    if let Some(v) = &text {
        code.attrs.insert("version".into(), v.clone().into());
        let stage = if v[7..].starts_with("SPL") {
            "spl"
        } else if v[7..].starts_with("TPL") || v[7..].starts_with("VPL") {
            "tpl"
        } else {
            "u-boot"
        };
        code.attrs.insert("stage".into(), stage.into());
    }
    let mut out = vec![code];
    let mut end = code_end;
    if let Some((off, dtb_end)) = content_end {
        if off > code_end {
            out.push(
                Region::new(
                    RegionKind::Padding,
                    "padding",
                    &node.data,
                    at(code_end),
                    off.saturating_sub(code_end) as u64,
                )
                .with_policy(crate::region::Policy::Blank),
            );
        }
        let mut dtb = Region::new(
            RegionKind::Blob,
            "control-dtb",
            &node.data,
            at(off),
            dtb_end.saturating_sub(off) as u64,
        );
        crate::formats::descend(ctx, &mut dtb, None, Some(&crate::formats::dtb::FORMAT));
        out.push(dtb);
        end = dtb_end;
        // An image after a gap (SPL + u-boot.img): its own node, parsed by its format.
        let tail = &b[dtb_end..];
        if let Some(first) = tail.iter().position(|&c| c != blank) {
            let start = dtb_end.saturating_add(first);
            let stop = start.saturating_add(self::content_end(&b[start..], blank));
            let mut img = Region::new(
                RegionKind::Blob,
                "next-image",
                &node.data,
                at(start),
                stop.saturating_sub(start) as u64,
            );
            crate::formats::descend(ctx, &mut img, Some(&FORMAT), None);
            out.push(img);
            end = stop;
        }
    }
    out.extend(slack(&node.data, at(end), node.end(), blank));
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ends_at_a_blank_gap_unless_an_image_follows() {
        let mut b = vec![0xFFu8; 0x10000];
        b[..0x100].fill(1);
        b[0x100..0x180].fill(0xFF); // short blank run inside the binary
        b[0x180..0x200].fill(2);
        assert_eq!(content_end(&b, 0xFF), 0x200);
        b[0x8000..0x8010].fill(3); // payload after a gap: not content
        assert_eq!(content_end(&b, 0xFF), 0x200);
        b[0x8000..0x8004].copy_from_slice(&UIMAGE_MAGIC.to_be_bytes());
        assert_eq!(content_end(&b, 0xFF), 0x8010);
        assert_eq!(content_end(&[0xFF; 10], 0xFF), 0);
    }

    /// U-Boot SPL is recognised by its version string; a DTB appended to it ends the content; a FIT
    /// (`/images`) is never taken for the control DTB; many bogus FDT magics are bounded work.
    #[test]
    fn spl_and_appended_dtb() {
        let mut b = vec![0x11u8; 0x200];
        b[0x40..0x40 + 29].copy_from_slice(b"U-Boot SPL 2023.01 (Jan 1)\0\0\0");
        assert!(version(&b).unwrap().starts_with("U-Boot SPL 2023.01"));
        assert!(probe(&b).is_some());
        // A minimal FDT (header, empty root node, end) appended at 0x200, then blank bytes.
        let mut dtb = Vec::new();
        // magic, totalsize, struct, strings, rsvmap offsets, version 17 (last compatible 16), boot cpu,
        // strings size, struct size.
        let words = [fdt::MAGIC, 0x48, 0x38, 0x48, 0x28, 17, 16, 0, 0, 0x10];
        for w in words {
            dtb.extend_from_slice(&w.to_be_bytes());
        }
        dtb.extend_from_slice(&[0; 16]); // memory reservation map terminator
        for w in [1u32, 0, 2, 9] {
            dtb.extend_from_slice(&w.to_be_bytes());
        }
        let mut img = b.clone();
        img.extend_from_slice(&dtb);
        img.extend_from_slice(&[0xFF; 0x100]);
        fdt::Fdt::parse(&dtb).expect("a valid minimal FDT");
        assert_eq!(appended_dtb(&img, 0xFF), Some((0x200, 0x200 + dtb.len())));
        // Followed by code, not blank: not the appended DTB.
        let mut inner = img.clone();
        let end = 0x200 + dtb.len();
        inner[end..end + 4].fill(0x22);
        assert_eq!(appended_dtb(&inner, 0xFF), None);
        // Thousands of bare magics: bounded, no match.
        let mut junk = Vec::new();
        for _ in 0..5000 {
            junk.extend_from_slice(&fdt::MAGIC.to_be_bytes());
        }
        assert_eq!(appended_dtb(&junk, 0xFF), None);
    }
}
