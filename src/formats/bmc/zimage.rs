//! Linux kernel images of their own: the 32-bit ARM `zImage` (magic 0x016F2818 at 0x24, then the start and
//! end addresses of the image: its length is `end - start`, `arch/arm/boot/compressed/head.S`) and the
//! arm64 `Image` (magic `ARM\x64` at 0x38, `image_size` at 0x10, `Documentation/arch/arm64/booting.rst`).
//!
//! One node `kernel` (kind `blob`) over the image's extent; bytes after it are an `appended-dtb` (parsed
//! as a device tree) or `trailing` bytes. An extent past the end of the file is a `partition-out-of-bounds` note and is clipped.
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::util::{le32, le64, slice};
use crate::formats::{Confidence, Ctx, Format, Parsed, Scope};
use crate::region::{Note, Policy, Region, RegionKind};

const ZIMAGE_MAGIC: u32 = 0x016F_2818;
const ARM64_MAGIC: &[u8] = b"ARM\x64";

fn extent(b: &[u8]) -> Option<(&'static str, u64)> {
    if le32(b, 0x24, "zImage magic").ok()? == ZIMAGE_MAGIC {
        let start = le32(b, 0x28, "zImage start").ok()?;
        let end = le32(b, 0x2C, "zImage end").ok()?;
        let len = u64::from(end.checked_sub(start)?);
        return (len >= 0x30).then_some(("arm-zimage", len));
    }
    if slice(b, 0x38, 4, "arm64 magic").ok()? == ARM64_MAGIC {
        let len = le64(b, 0x10, "arm64 image_size").ok()?;
        // image_size 0 means "unknown" (kernels before 3.17): the whole file.
        let len = if len == 0 { b.len() as u64 } else { len };
        return (len >= 0x40).then_some(("arm64-image", len));
    }
    None
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    extent(b).map(|_| Confidence::Medium)
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "zimage",
    description: "ARM Linux zImage (self-decompressing kernel, extent from its header)",
    probe,
    parse,
    scope: Scope::File(Confidence::Low),
    component: Some("bmc"),
    policy: Some(Policy::Static),
    not_inside: &[],
    payloads: &[],
    package: None,
};

pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let (kind, claimed) = extent(b).ok_or(ParseError::Invalid {
        what: "kernel image",
        offset: node.offset,
        detail: "no zImage or arm64 Image header".into(),
    })?;
    let have = b.len() as u64;
    let mut k = Region::new(
        RegionKind::Blob,
        "kernel",
        &node.data,
        node.offset,
        claimed.min(have),
    )
    .with_attr("kernel-format", kind)
    .with_attr("image-size", claimed);
    if claimed > have {
        k.notes.push(Note::new(
            Code::PartitionOutOfBounds,
            format!("{kind}: header says {claimed:#x} bytes, the file has {have:#x}"),
            Some(node.offset),
        ));
    }
    // `claimed.min(have)` is at most the node's size, so `end <= node.end()`.
    let end = node.offset.saturating_add(claimed.min(have));
    let mut out = vec![k];
    if end < node.end() {
        // What follows: an appended device tree (CONFIG_ARM_APPENDED_DTB), else static trailing bytes
        // (blank ones become `blank` padding).
        let rest = b
            .get(end.saturating_sub(node.offset) as usize..)
            .unwrap_or(&[]);
        let mut t = Region::new(
            RegionKind::Blob,
            "trailing",
            &node.data,
            end,
            node.end().saturating_sub(end),
        );
        if crate::formats::fdt::probe(rest) {
            t.name = "appended-dtb".into();
            crate::formats::descend(ctx, &mut t, None, Some(&crate::formats::dtb::FORMAT));
        } else if t.is_blank(ctx.opts.blank) {
            t.kind = RegionKind::Padding;
            t.policy = Policy::Blank;
        }
        out.push(t);
    }
    Ok(out.into())
}
