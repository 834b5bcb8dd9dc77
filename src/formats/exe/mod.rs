//! Stand-alone executables (issue 22.5): a PE32/PE32+ or TE file of its own (a UEFI driver or application,
//! a boot loader such as shim, GRUB or systemd-boot) and an ELF file (TF-A's `bl31.elf`, U-Boot's ELF,
//! OpenSBI's `fw_dynamic.elf`, OpenBIOS), read with goblin and listed with their headers, sections and
//! segments as nodes.
//!
//! Both are [`crate::formats::Scope::File`] formats: found as a file of their own and as content. The PE
//! module attributes (machine, subsystem, Authenticode SHA-256) come from [`crate::formats::pe`], shared with
//! the PE32/TE sections of firmware volumes; `body-sha256` is the SHA-256 of the whole file, the digest
//! CHIPSEC's `tools.uefi.scan_image` keys a PE32/TE section's body on, so a module is known by one digest
//! whether it is a file or inside a volume.
#![deny(clippy::arithmetic_side_effects)]

pub mod elf;
pub mod pe_file;

use std::sync::Arc;

use crate::input::Data;
use crate::region::{self, Region, RegionKind};

/// Why the headers of an executable cannot be read (goblin's message, or the TE check done before goblin).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeaderError {
    #[error(transparent)]
    Goblin(#[from] goblin::error::Error),
    #[error("not a TE image")]
    NotTe,
}

/// How deep [`nest`] puts nodes inside each other (segment > section > ...); deeper ones are left out
/// (their bytes stay covered by the node that contains them).
const MAX_NEST: u32 = 4;

/// Turns a flat list of nodes of one buffer (headers, segments, sections, which may contain each other)
/// into a tree: a node that lies wholly inside an earlier one (by offset, larger first) becomes its child.
/// A node that only partly overlaps another cannot be placed without two nodes owning the same bytes: it is
/// left out and its name returned (the caller records it). Gaps inside each parent are filled with padding.
pub fn nest(data: &Arc<Data>, mut nodes: Vec<Region>, blank: u8) -> (Vec<Region>, Vec<String>) {
    nodes.sort_by(|a, b| a.offset.cmp(&b.offset).then(b.size.cmp(&a.size)));
    let mut dropped = Vec::new();
    let mut it = nodes.into_iter().peekable();
    let out = build(data, &mut it, u64::MAX, 0, blank, &mut dropped);
    (out, dropped)
}

fn build(
    data: &Arc<Data>,
    it: &mut std::iter::Peekable<std::vec::IntoIter<Region>>,
    limit: u64,
    depth: u32,
    blank: u8,
    dropped: &mut Vec<String>,
) -> Vec<Region> {
    let mut out: Vec<Region> = Vec::new();
    let mut last_end = 0u64;
    while let Some(next) = it.peek() {
        if next.offset >= limit {
            break;
        }
        let Some(mut n) = it.next() else { break };
        if n.end() > limit || n.offset < last_end || depth >= MAX_NEST {
            dropped.push(n.name);
            continue;
        }
        let kids = build(data, it, n.end(), depth.saturating_add(1), blank, dropped);
        if !kids.is_empty() {
            n.children = kids;
            region::fill_gaps(
                data,
                n.offset,
                n.end(),
                &mut n.children,
                blank,
                RegionKind::Padding,
            );
        }
        last_end = n.end();
        out.push(n);
    }
    out
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn nodes_nest_by_containment_and_partial_overlaps_are_left_out() {
        let d = Arc::new(Data::Owned(vec![0u8; 100]));
        let n = |name: &str, o: u64, s: u64| Region::new(RegionKind::Section, name, &d, o, s);
        let (t, dropped) = nest(
            &d,
            vec![
                n("a", 10, 5),
                n("seg", 0, 50),
                n("b", 20, 10),
                n("odd", 45, 10),
                n("c", 60, 10),
                n("same", 60, 10),
            ],
            0xFF,
        );
        let top: Vec<&str> = t.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(top, ["seg", "c"]);
        let inner: Vec<(&str, u64)> = t[0]
            .children
            .iter()
            .map(|r| (r.name.as_str(), r.offset))
            .collect();
        assert_eq!(
            inner,
            [
                ("padding", 0),
                ("a", 10),
                ("padding", 15),
                ("b", 20),
                ("padding", 30)
            ]
        );
        assert_eq!(t[1].children[0].name, "same");
        assert_eq!(dropped, ["odd"]);
    }
}
