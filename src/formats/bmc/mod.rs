//! BMC SPI flash images (OpenBMC-style and vendor): layout discovery and partitions.
//!
//! Discovery order (each result records where it came from in `layout-source` on the root and on every
//! partition):
//! 1. a layout given by the user or the manifest (handled by [`crate::formats::parse_image`]);
//! 2. `device-tree`: a `fixed-partitions` node in a device tree (`flat_dt` image) inside a kernel FIT found
//!    at an erase-block boundary; offsets come from `reg`, names from `label` (else the node name); only
//!    when the file is a flash image (the FIT lies after other content, or every partition fits the file):
//!    a stand-alone FIT is never laid out by the layout inside it;
//! 3. `preset:openbmc-32M|64M|128M`: the OpenBMC static layouts, only when the image has the preset's
//!    size and the content confirms it (U-Boot at 0, FIT/uImage at the kernel offset, squashfs at rofs);
//! 4. `megarac`: AMI `$MODULE$` flash module headers, one partition per module;
//! 5. `ubi`: a UBI image (after an optional boot area).
//!
//! Each partition's content is detected and parsed (U-Boot, environment, FIT/uImage, squashfs, JFFS2,
//! UBI); bytes after the content are `slack` that must be blank. Overlapping partitions, partitions past
//! the end of the flash and partitions whose content disagrees with their name are notes
//! (`partition-overlap`, `partition-out-of-bounds`, `layout-mismatch`), never a panic.
#![deny(clippy::arithmetic_side_effects)]

pub mod aspeed;
pub mod dtb;
pub mod fdt;
pub mod fit;
pub mod fit_sig;
pub mod megarac;
pub mod npcm;
pub mod obmc_tar;
pub mod presets;
pub mod supermicro;
pub mod ubi;
pub mod uboot;
pub mod ubootenv;
pub mod zimage;

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::layout::{Layout, LayoutEntry};
use crate::formats::{squashfs, Confidence, Ctx, Parsed};
use crate::region::{Note, Policy, Region, RegionKind};
use fdt::Fdt;

/// Erase-block step at which FITs are looked for.
pub const FIT_STEP: u64 = 0x10000;
/// Smallest and largest images considered BMC flash.
const MIN_FLASH: u64 = 1 << 20;
const MAX_FLASH: u64 = 1 << 30;

/// A discovered layout and notes about it.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub layout: Layout,
    pub notes: Vec<Note>,
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    let len = b.len() as u64;
    if !(MIN_FLASH..=MAX_FLASH).contains(&len) {
        return None;
    }
    discover(b).map(|_| Confidence::High)
}

/// Finds the layout of a BMC flash image (steps 2-5 of the module documentation).
pub fn discover(b: &[u8]) -> Option<Discovered> {
    device_tree_layout(b)
        .or_else(|| preset_layout(b))
        .or_else(|| megarac_layout(b))
        .or_else(|| ubi_layout(b))
}

/// One `fixed-partitions` node: its path, its partitions, and problems with its entries.
pub type PartitionSet = (String, Vec<LayoutEntry>, Vec<String>);

/// Partitions of every `fixed-partitions` node of a device tree blob, with the node's path.
pub fn fixed_partitions(dtb: &[u8]) -> Result<Vec<PartitionSet>, ParseError> {
    let f = Fdt::parse(dtb)?;
    let mut out = Vec::new();
    let mut stack: Vec<(&fdt::Node, String)> = vec![(&f.root, String::new())];
    let mut seen = 0usize;
    while let Some((n, path)) = stack.pop() {
        seen = seen.saturating_add(1);
        if seen > fdt::MAX_NODES {
            break;
        }
        if f.str_list(n, "compatible")
            .iter()
            .any(|c| c == "fixed-partitions")
        {
            let ac = f.u64_prop(n, "#address-cells").unwrap_or(1).clamp(1, 2) as usize;
            let sc = f.u64_prop(n, "#size-cells").unwrap_or(1).clamp(1, 2) as usize;
            let mut entries = Vec::new();
            let mut problems = Vec::new();
            for c in &n.children {
                let cells = f.cells(c, "reg");
                // `ac` and `sc` are 1 or 2 (clamped above): these sums are at most 4.
                let want = ac.saturating_add(sc);
                if cells.len() < want {
                    if c.prop("reg").is_some() {
                        problems.push(format!(
                            "`{}`: reg has {} cells, need {}",
                            c.name,
                            cells.len(),
                            want
                        ));
                    }
                    continue;
                }
                let num = |s: &[u32]| s.iter().fold(0u64, |a, &x| (a << 32) | u64::from(x));
                let start = num(&cells[..ac]);
                let size = num(&cells[ac..want]);
                let label = f
                    .str_prop(c, "label")
                    .unwrap_or_else(|| c.base_name().to_string());
                let name: String = label
                    .chars()
                    .map(|ch| {
                        if ch == '/' || ch.is_whitespace() || ch.is_control() {
                            '_'
                        } else {
                            ch
                        }
                    })
                    .collect();
                if size == 0 {
                    problems.push(format!("`{}`: zero size", c.name));
                    continue;
                }
                // `size > 0` (checked just above).
                let Some(end) = start.checked_add(size.saturating_sub(1)) else {
                    problems.push(format!("`{}`: {start:#x}+{size:#x} overflows", c.name));
                    continue;
                };
                if entries.len() < crate::formats::layout::MAX_ENTRIES {
                    entries.push(LayoutEntry {
                        name: if name.is_empty() {
                            "partition".into()
                        } else {
                            name
                        },
                        start,
                        end,
                        policy: None,
                    });
                }
            }
            out.push((path.clone(), entries, problems));
        }
        for c in n.children.iter().rev() {
            stack.push((c, format!("{path}/{}", c.name)));
        }
    }
    Ok(out)
}

/// The flash layout a kernel FIT carries in its device trees (the first `fixed-partitions` node with
/// partitions), as a release package holds it: `image-kernel` of an OpenBMC tarball, covered by the
/// vendor's signature. Source `package-device-tree`.
pub fn fit_flash_layout(fit_bytes: &[u8]) -> Option<Layout> {
    let images = fit::fit_images(fit_bytes).ok()?;
    images
        .iter()
        .filter(|i| i.typ.as_deref() == Some("flat_dt"))
        .filter_map(|img| {
            let (doff, dlen) = img.data?;
            let dtb = fit_bytes.get(doff as usize..doff.checked_add(dlen)? as usize)?;
            fixed_partitions(dtb).ok()
        })
        .flatten()
        .find(|(_, e, problems)| !e.is_empty() && problems.is_empty())
        .map(|(_, entries, _)| Layout {
            source: "package-device-tree".into(),
            entries,
        })
}

/// The OpenBMC static preset for a flash of `size` bytes (the chip's size: the hardware's, not a structure
/// in the dump), as a layout.
pub fn preset_for_size(size: u64) -> Option<Layout> {
    presets::PRESETS
        .iter()
        .find(|p| p.flash_size == size)
        .map(preset_layout_of)
}

/// A preset as a layout (source `preset:NAME`).
fn preset_layout_of(p: &presets::Preset) -> Layout {
    Layout {
        source: format!("preset:{}", p.name),
        entries: p
            .parts
            .iter()
            .map(|&(n, o, s)| LayoutEntry {
                name: n.into(),
                start: o,
                // Preset tables: constant, non-empty partitions.
                end: o.saturating_add(s).saturating_sub(1),
                policy: None,
            })
            .collect(),
    }
}

fn device_tree_layout(b: &[u8]) -> Option<Discovered> {
    let len = b.len() as u64;
    let mut off = 0u64;
    while off < len {
        let here = &b[off as usize..];
        if here.len() >= 4 && u32::from_be_bytes([here[0], here[1], here[2], here[3]]) == fdt::MAGIC
        {
            if let Ok(images) = fit::fit_images(here) {
                for img in images
                    .iter()
                    .filter(|i| i.typ.as_deref() == Some("flat_dt"))
                {
                    let Some((doff, dlen)) = img.data else {
                        continue;
                    };
                    let Some(dtb) = doff
                        .checked_add(dlen)
                        .and_then(|end| here.get(doff as usize..end as usize))
                    else {
                        continue;
                    };
                    let Ok(found) = fixed_partitions(dtb) else {
                        continue;
                    };
                    // Prefer the partition set that has a partition starting where this FIT lies.
                    let best = found
                        .iter()
                        .find(|(_, e, _)| e.iter().any(|p| p.start == off))
                        .or_else(|| found.iter().find(|(_, e, _)| !e.is_empty()));
                    if let Some((path, entries, problems)) = best {
                        if entries.is_empty() {
                            continue;
                        }
                        // A layout read from a device tree is a flash layout only when the file is a flash
                        // image: the FIT lies after other content, or every partition fits in the file. A
                        // stand-alone kernel FIT is never laid out by the layout it carries.
                        if off == 0 && entries.iter().any(|p| p.end >= len) {
                            continue;
                        }
                        let mut notes: Vec<Note> = problems
                            .iter()
                            .map(|p| {
                                Note::new(
                                    Code::LayoutMismatch,
                                    format!("device tree {path}: {p}"),
                                    Some(off),
                                )
                            })
                            .collect();
                        if !entries.iter().any(|p| p.start == off) {
                            notes.push(Note::new(
                                Code::LayoutMismatch,
                                format!(
                                    "device tree {path} (in FIT image `{}` at {off:#x}) has no partition at the FIT's own offset",
                                    img.name
                                ),
                                Some(off),
                            ));
                        }
                        return Some(Discovered {
                            layout: Layout {
                                source: "device-tree".into(),
                                entries: entries.clone(),
                            },
                            notes,
                        });
                    }
                }
            }
        }
        off = off.saturating_add(FIT_STEP);
    }
    None
}

fn is_kernel(b: &[u8]) -> bool {
    fit::probe_fit(b).is_some() || fit::probe_uimage(b).is_some()
}

fn preset_layout(b: &[u8]) -> Option<Discovered> {
    let len = b.len() as u64;
    for p in presets::PRESETS.iter().filter(|p| p.flash_size == len) {
        let at = |name: &str| {
            p.parts
                .iter()
                .find(|x| x.0 == name)
                .and_then(|&(_, o, s)| b.get(o as usize..o.saturating_add(s) as usize))
        };
        let ok = at("u-boot").is_some_and(|x| uboot::probe(x).is_some() || is_kernel(x))
            && at("kernel").is_some_and(is_kernel)
            && at("rofs").is_some_and(|x| squashfs::probe(x).is_some());
        if ok {
            return Some(Discovered {
                layout: preset_layout_of(p),
                notes: Vec::new(),
            });
        }
    }
    None
}

fn megarac_layout(b: &[u8]) -> Option<Discovered> {
    let mods = megarac::modules(b);
    if mods.is_empty() {
        return None;
    }
    let entries = mods
        .iter()
        .filter(|m| m.allocated > 0)
        .map(|m| LayoutEntry {
            name: m.name.clone(),
            start: m.start,
            end: m.start.saturating_add(m.allocated.saturating_sub(1)),
            policy: None,
        })
        .collect::<Vec<_>>();
    if entries.is_empty() {
        return None;
    }
    Some(Discovered {
        layout: Layout {
            source: "megarac".into(),
            entries,
        },
        notes: Vec::new(),
    })
}

fn ubi_layout(b: &[u8]) -> Option<Discovered> {
    let len = b.len() as u64;
    let mut off = 0u64;
    while off < len {
        if ubi::probe(&b[off as usize..]).is_some() {
            let mut entries = Vec::new();
            if off > 0 {
                // OpenBMC UBI layouts keep U-Boot and its environment in front of the UBI area.
                let env = [0x60000u64, 0xE0000].into_iter().find(|&e| {
                    e < off
                        && crate::formats::ubootenv::probe(&b[e as usize..off as usize]).is_some()
                });
                match env {
                    Some(e) => {
                        entries.push(LayoutEntry {
                            name: "u-boot".into(),
                            start: 0,
                            end: e.saturating_sub(1),
                            policy: None,
                        });
                        entries.push(LayoutEntry {
                            name: "u-boot-env".into(),
                            start: e,
                            end: off.saturating_sub(1),
                            policy: None,
                        });
                    }
                    None => entries.push(LayoutEntry {
                        name: "u-boot".into(),
                        start: 0,
                        end: off.saturating_sub(1),
                        policy: None,
                    }),
                }
            }
            entries.push(LayoutEntry {
                name: "ubi".into(),
                start: off,
                // `off < len`.
                end: len.saturating_sub(1),

                policy: None,
            });
            return Some(Discovered {
                layout: Layout {
                    source: "ubi".into(),
                    entries,
                },
                notes: Vec::new(),
            });
        }
        off = off.saturating_add(FIT_STEP);
    }
    None
}

/// Whether a partition name means per-machine data.
fn per_machine(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("rwfs")
        || n == "rw"
        || n == "data"
        || n.contains("env")
        || n == "nvram"
        || n == "conf"
}

/// What content a partition name promises, for `layout-mismatch`.
fn expected(name: &str) -> Option<&'static [&'static str]> {
    let n = name.to_ascii_lowercase();
    if n == "kernel" || n == "image-kernel" {
        Some(&["fit", "uimage"])
    } else if n == "rofs" || n == "image-rofs" {
        Some(&["squashfs", "ubi"])
    } else if n == "u-boot" || n == "image-u-boot" {
        Some(&[
            "u-boot",
            "fit",
            "uimage",
            aspeed::FORMAT.name,
            npcm::FORMAT.name,
        ])
    } else {
        None
    }
}

/// The content format of a partition: by probe, then by name for environments.
fn content_format(name: &str, b: &[u8]) -> Option<&'static crate::formats::Format> {
    // A whole-flash layout is never looked for inside a partition (`not_inside`).
    if let Some(f) = crate::formats::detect_inside(b, false, Some(&FORMAT)) {
        return Some(f);
    }
    if name.to_ascii_lowercase().contains("env") && !b.iter().all(|&c| c == 0xFF) {
        return Some(&crate::formats::ubootenv::FORMAT);
    }
    None
}

/// Parses `part` (a partition or flash region) by its content; records `layout-mismatch` when the content
/// is not what the name promises. Used for discovered and for user/manifest layouts.
pub fn parse_partition(ctx: &Ctx, part: &mut Region) {
    let fmt = content_format(&part.name, part.bytes());
    let blank = part.bytes().iter().all(|&c| c == ctx.opts.blank);
    if let Some(exp) = expected(&part.name) {
        let got = fmt.map(|f| f.name);
        if !blank && !got.is_some_and(|g| exp.contains(&g)) {
            part.notes.push(Note::new(
                Code::LayoutMismatch,
                format!(
                    "partition `{}` should hold {} but holds {}",
                    part.name,
                    exp.join(" or "),
                    got.unwrap_or("unknown data")
                ),
                Some(part.offset),
            ));
        }
    }
    if per_machine(&part.name) && (fmt.is_none() || blank) {
        part.policy = Policy::Mutable;
    }
    if fmt.is_some() {
        crate::formats::descend(ctx, part, Some(&FORMAT), fmt);
    }
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "bmc",
    description: "BMC SPI flash (device-tree, OpenBMC preset, MegaRAC or UBI layout)",
    probe,
    parse,
    scope: crate::formats::Scope::Flash,
    component: Some("bmc"),
    policy: None,
    not_inside: &["bmc"],
    payloads: &[],
    package: None,
};

/// The `bmc` parser: layout (a verified baseline's, else discovered) → partitions → content.
pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let d = match &ctx.opts.bmc_layout {
        Some(l) => Discovered {
            layout: l.clone(),
            notes: Vec::new(),
        },
        None => discover(b).ok_or(ParseError::Invalid {
            what: "BMC flash layout",
            offset: node.offset,
            detail: "no device tree, preset, MegaRAC or UBI layout matches".into(),
        })?,
    };
    let mut notes = d.notes;
    let mut parts = place(&d.layout, node, &mut notes);
    for p in &mut parts {
        parse_partition(ctx, p);
    }
    // The layout's notes and text are facts of the flash, on its own node.
    Ok(Parsed::from(parts)
        .attr("layout", d.layout.to_flashrom())
        .notes(notes))
}

/// Turns a layout (offsets relative to `node`) into partition nodes over `node`'s buffer: overlaps and
/// partitions past the end of `node` are noted (out-of-bounds ones clipped or dropped), never a panic.
pub fn place(layout: &Layout, node: &Region, notes: &mut Vec<Note>) -> Vec<Region> {
    layout.place(
        &node.data,
        node.offset,
        node.size,
        RegionKind::Partition,
        notes,
    )
}

/// The layout source recorded on a parsed tree's partitions, if any.
pub fn layout_source(root: &Region) -> Option<&str> {
    root.children
        .iter()
        .find_map(|c| c.attr_str("layout-source"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Data;
    use std::sync::Arc;

    /// A 128 MiB flash with U-Boot, a uImage kernel and a squashfs at the preset's offsets.
    fn flash128() -> Vec<u8> {
        let mut b = vec![0xFFu8; 128 << 20];
        b[..0x100].fill(0);
        b[0x100..0x100 + 22].copy_from_slice(b"U-Boot 2019.04 (test)\0");
        b[0x100000..0x100004].copy_from_slice(&fit::UIMAGE_MAGIC.to_be_bytes());
        b[0x100040..0x100080].fill(0);
        b[0xA00000..0xA00004].copy_from_slice(squashfs::MAGIC);
        b[0xA0001C..0xA0001E].copy_from_slice(&4u16.to_le_bytes());
        b
    }

    #[test]
    fn presets_are_chosen_only_when_the_content_confirms_them() {
        let b = flash128();
        let d = discover(&b).unwrap();
        assert_eq!(d.layout.source, "preset:openbmc-128M");
        assert_eq!(d.layout.entries[3].name, "rofs");
        assert_eq!(d.layout.entries[3].start, 0xA00000);
        assert_eq!(d.layout.entries[4].end, (128 << 20) - 1);
        // No squashfs at the rofs offset: no preset (and nothing else matches).
        let mut c = b.clone();
        c[0xA00000] = 0;
        assert!(discover(&c).is_none());
        // Same content in a 64 MiB flash: the 64 MiB preset has its rofs at the same offset.
        let d = discover(&b[..64 << 20]).unwrap();
        assert_eq!(d.layout.source, "preset:openbmc-64M");
        // A flash of another size: no preset.
        assert!(discover(&b[..96 << 20]).is_none());
    }

    #[test]
    fn parsing_a_preset_image_never_panics_on_partial_content() {
        let b = flash128();
        let data = Arc::new(Data::Owned(b));
        let tree = crate::formats::parse_image(data, &crate::formats::ParseOptions::default());
        let names: Vec<&str> = tree.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["u-boot", "u-boot-env", "kernel", "rofs", "rwfs"]);
        // The fake uImage and squashfs are noted, not fatal.
        let notes = crate::region::note_findings(&tree);
        assert!(
            notes.iter().any(|f| f.path.starts_with("kernel")),
            "{notes:?}"
        );
        assert!(
            notes.iter().any(|f| f.path.starts_with("rofs")),
            "{notes:?}"
        );
        // The layout is a fact of the flash: on the parsed node, not on its first partition.
        assert!(tree.attr_str("layout").is_some_and(|l| l.contains("rofs")));
        assert!(tree.children[0].attrs.get("layout").is_none());
    }

    #[test]
    fn layout_notes_are_on_the_flash_node() {
        // A device tree whose partitions overlap: the overlap is a note of the flash, not of `u-boot`.
        let layout = Layout {
            entries: vec![
                LayoutEntry {
                    start: 0,
                    end: 0xFFFF,
                    name: "u-boot".into(),
                    policy: None,
                },
                LayoutEntry {
                    start: 0x8000,
                    end: 0x1FFFF,
                    name: "kernel".into(),
                    policy: None,
                },
            ],
            source: "test".into(),
        };
        let data = Arc::new(Data::Owned(vec![0xFFu8; 0x20000]));
        let node = Region::new(RegionKind::Image, "", &data, 0, 0x20000);
        let opts = crate::formats::ParseOptions {
            bmc_layout: Some(layout),
            ..Default::default()
        };
        let parsed = parse(&Ctx::new(&opts), &node).unwrap();
        assert!(
            parsed
                .notes
                .iter()
                .any(|n| n.code == Code::PartitionOverlap),
            "{:?}",
            parsed.notes
        );
        assert!(parsed
            .children
            .iter()
            .all(|c| c.notes.iter().all(|n| n.code != Code::PartitionOverlap)));
    }
}
