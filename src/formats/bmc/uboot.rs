//! A raw U-Boot binary at the start of a partition: its content extent and the blank slack after it.
//!
//! `u-boot.bin` carries no length field. The content is taken to end at the first run of at least
//! [`GAP`] blank bytes that is not followed by a FIT or uImage header (SPL + `u-boot.img` layouts pad with
//! blank bytes between the two); everything after it is `slack` that must be blank. A payload appended
//! right after the binary without a blank gap is part of the content, so it is found by the baseline
//! comparison (`region-modified` on `binary`), not by the slack rule.
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
    let mut from = 0;
    while let Some(i) = w[from..].iter().position(|&c| c == b'U') {
        let at = from + i;
        if !w[at..].starts_with(pat) {
            from = at + 1;
            continue;
        }
        let rest = &w[at..w.len().min(at + 96)];
        let text: String = rest
            .iter()
            .take_while(|&&c| (0x20..0x7F).contains(&c))
            .map(|&c| c as char)
            .collect();
        if text.len() > 12 && text.as_bytes().get(7).is_some_and(u8::is_ascii_digit) {
            return Some(text);
        }
        from = at + 1;
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

pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let end = content_end(b, ctx.opts.blank) as u64;
    let mut bin = Region::new(RegionKind::Blob, "binary", &node.data, node.offset, end)
        .with_attr("format", "u-boot");
    if let Some(v) = version(b) {
        bin.attrs.insert("version".into(), v.into());
    }
    let mut out = vec![bin];
    out.extend(slack(
        &node.data,
        node.offset.saturating_add(end),
        node.end(),
        ctx.opts.blank,
    ));
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
}
