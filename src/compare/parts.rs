//! Comparison part by part: baselines anchored by identity (issue 11).
//!
//! A baseline made from a release package (or from a BIOS region, a firmware volume file) describes only
//! part of what a flash dump holds, laid out otherwise. Each part of such a manifest carries an
//! [`Anchor`]; here every part is looked up in the image by its anchor, its subtree is moved onto the
//! region found (paths and offsets re-rooted) and compared with the ordinary walk, and what no part of
//! any manifest covers is listed as [`Uncovered`]: information, never a finding.
//!
//! - `partition NAME`: the dump's partition (or flash region) of that name. The part's content lies at its
//!   start; what the partition holds beyond it (erased space after the image file) must be blank, and
//!   anything else in it is reported as added.
//! - `volumes`: the part's firmware volumes, found by name and size among the image's volumes; the
//!   position most of them agree on places the whole part. Only the image's regions inside the part's
//!   span take part, so an NVRAM volume in front of it (or a descriptor, ME, GbE region around it) is not
//!   a finding but uncovered.
//! - `ubi-volume NAME`: the volume of that name in the dump's UBI area (the volume table names it, as
//!   U-Boot and Linux find it), compared with its content reassembled from its logical erase blocks. The
//!   UBI container (erase counters, VID headers, which PEB holds which LEB) changes with every erase and is
//!   not compared byte-wise; a volume the parser marks per-machine (UBIFS `rwfs`) is not compared with a
//!   package file that is no read-only image. Once one volume of a UBI area is anchored, the area is
//!   covered, and every other volume in it is a `not-covered` finding: nothing the package does not hold
//!   hides in the UBI area.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::{diff_children, Cx, ScanResult, ScanStats, Skipped};
use crate::finding::{ByteRange, Code, Finding};
use crate::manifest::{Anchor, CopyPlace, Manifest, Node, Part, VerifiedManifest};
use crate::region::{self, Policy, Region, RegionKind, Space};

/// Where one part of a baseline was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchored {
    /// Which manifest (its index in the scan's list; the report names it).
    pub manifest: usize,
    /// The part's path in the baseline (empty: its root).
    pub part: String,
    /// How it was found (`partition `kernel``, `firmware volumes`).
    pub anchor: String,
    /// The image region it was compared with (empty: the image).
    pub region: String,
    /// The span of the image it covers.
    pub offset: u64,
    pub size: u64,
}

/// A region of the image that no baseline part covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uncovered {
    pub path: String,
    pub offset: u64,
    pub size: u64,
}

/// The BMC partition the SoC boots from, at flash offset 0.
const BOOT_PARTITION: &str = "u-boot";

/// Deepest level of the image searched for an anchor.
const MAX_SEARCH_DEPTH: usize = 8;

/// A region of the image an anchor can find (a partition, a flash region, a volume).
struct Candidate {
    kind: RegionKind,
    name: String,
    path: String,
    offset: u64,
    size: u64,
}

/// The image's partitions, flash regions and volumes outside decompressed data, breadth first, down to
/// [`MAX_SEARCH_DEPTH`]: built once per scan, whatever the number of parts.
fn candidates(root: &Region) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut level = vec![root];
    for _ in 0..MAX_SEARCH_DEPTH {
        let mut next = Vec::new();
        for r in level {
            if matches!(
                r.kind,
                RegionKind::Partition | RegionKind::FlashRegion | RegionKind::Volume
            ) {
                out.push(Candidate {
                    kind: r.kind,
                    name: r.name.clone(),
                    path: r.path.clone(),
                    offset: r.offset,
                    size: r.size,
                });
            }
            next.extend(r.children.iter().filter(|c| c.space == Space::Image));
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    out
}

/// A name without its occurrence suffix (`fv[X]#2` → `fv[X]`).
fn base_name(name: &str) -> &str {
    match name.rsplit_once('#') {
        Some((b, n)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => b,
        _ => name,
    }
}

/// Where an anchor puts a part: the image region to compare with and the span of the image it covers.
struct Place {
    region: String,
    start: u64,
    end: u64,
    /// Added to the baseline's image offsets to get the image's.
    shift: i128,
    /// Only the region's children inside the span take part, and only the part's children inside this
    /// span of the baseline (its volumes, without a package header around them).
    span_only: Option<(u64, u64)>,
}

/// Where the x86 CPU's reset vector is in the image: the top of the descriptor's BIOS region (the chipset
/// maps it below 4 GiB), else the top of the file (a dump of the BIOS alone). The region path and the top.
/// Both come from the hardware's view of the flash, never from a volume or file found in it.
fn reset_top(root: &Region) -> (String, u64) {
    root.children
        .iter()
        .find(|c| c.kind == RegionKind::FlashRegion && c.name.eq_ignore_ascii_case("bios"))
        .map_or((String::new(), root.size), |b| (b.path.clone(), b.end()))
}

/// The end, relative to the part's start, of the part's volume holding the Volume Top File (the x86 reset
/// vector ends that volume), if it has one.
fn vtf_end(part: &Node) -> Option<u64> {
    part.children
        .iter()
        .filter(|v| v.kind == RegionKind::Volume && v.space == Space::Image)
        .filter(|v| {
            v.children.iter().any(|f| {
                f.kind == RegionKind::File
                    && f.attrs.get("guid").and_then(serde_json::Value::as_str)
                        == Some(region::VTF_GUID)
            })
        })
        .filter_map(|v| v.offset.checked_add(v.size)?.checked_sub(part.offset))
        .max()
}

/// The part's volumes as (name without occurrence suffix, size, offset relative to the part).
fn part_volumes(part: &Node) -> Vec<(&str, u64, u64)> {
    part.children
        .iter()
        .filter(|c| c.kind == RegionKind::Volume && c.space == Space::Image)
        .filter_map(|c| {
            Some((
                base_name(&c.name),
                c.size,
                c.offset.checked_sub(part.offset)?,
            ))
        })
        .collect()
}

/// The image's volumes that are copies of the part's (same name and size) outside the spans where the
/// part was placed (its anchor's and those of the copies its baseline declares): a second copy of a
/// baselined part is ambiguous, whichever one the hardware runs.
fn copies_elsewhere<'a>(
    index: &'a [Candidate],
    part: &Node,
    spans: &[(u64, u64)],
) -> Vec<&'a Candidate> {
    let ids: std::collections::HashSet<(&str, u64)> = part_volumes(part)
        .into_iter()
        .map(|(n, s, _)| (n, s))
        .collect();
    index
        .iter()
        .filter(|d| d.kind == RegionKind::Volume && ids.contains(&(base_name(&d.name), d.size)))
        .filter(|d| {
            !spans
                .iter()
                .any(|&(s, e)| d.offset >= s && d.offset.saturating_add(d.size) <= e)
        })
        .collect()
}

/// Where a copy the baseline declares (`copies`) begins in the image: the flash offset it names, or the
/// start of the partition or flash region it names. Never found by searching the dump for the content.
fn copy_start(index: &[Candidate], c: &CopyPlace) -> Option<u64> {
    match c {
        CopyPlace::Offset(o) => Some(*o),
        CopyPlace::Partition(name) => index
            .iter()
            .find(|r| {
                matches!(r.kind, RegionKind::Partition | RegionKind::FlashRegion)
                    && r.name.eq_ignore_ascii_case(name)
            })
            .map(|r| r.offset),
    }
}

/// Where a declared copy of a part is compared, or `None` when its place does not exist or does not hold
/// it (no partition of that name or at that offset; none of a `volumes` part's volumes, by name and size,
/// where the declaration puts them).
fn locate_copy(
    index: &[Candidate],
    image_size: u64,
    part: &Node,
    anchor: &Anchor,
    c: &CopyPlace,
) -> Option<Place> {
    match anchor {
        Anchor::Partition { .. } => {
            let d = match c {
                CopyPlace::Partition(name) => index.iter().find(|r| {
                    matches!(r.kind, RegionKind::Partition | RegionKind::FlashRegion)
                        && r.name.eq_ignore_ascii_case(name)
                })?,
                CopyPlace::Offset(o) => index.iter().find(|r| {
                    matches!(r.kind, RegionKind::Partition | RegionKind::FlashRegion)
                        && r.offset == *o
                })?,
            };
            Some(Place {
                region: d.path.clone(),
                start: d.offset,
                end: d.offset.saturating_add(d.size),
                shift: i128::from(d.offset) - i128::from(part.offset),
                span_only: None,
            })
        }
        // A UBI volume is found by its name only ([`compare_ubi_volume`]); a flash offset or partition
        // names no second copy of it.
        Anchor::UbiVolume { .. } => None,
        Anchor::Volumes => {
            let mine = part_volumes(part);
            let first = mine.iter().map(|m| m.2).min()?;
            let last = mine.iter().filter_map(|m| m.2.checked_add(m.1)).max()?;
            let at = copy_start(index, c)?;
            // The image position of the part's own offset 0 for this copy.
            let origin = at.checked_sub(first)?;
            let end = origin.checked_add(last)?;
            if end > image_size {
                return None;
            }
            let present = mine.iter().any(|(name, size, rel)| {
                origin.checked_add(*rel).is_some_and(|o| {
                    index.iter().any(|d| {
                        d.kind == RegionKind::Volume
                            && d.offset == o
                            && d.size == *size
                            && base_name(&d.name) == *name
                    })
                })
            });
            if !present {
                return None;
            }
            // Compared within the innermost partition or flash region holding the whole copy (the BIOS
            // region of a descriptor image), else within the image.
            let region = index
                .iter()
                .rev()
                .filter(|r| matches!(r.kind, RegionKind::Partition | RegionKind::FlashRegion))
                .find(|r| r.offset <= at && r.offset.saturating_add(r.size) >= end)
                .map_or_else(String::new, |r| r.path.clone());
            Some(Place {
                region,
                start: at,
                end,
                shift: i128::from(origin) - i128::from(part.offset),
                span_only: Some((
                    part.offset.saturating_add(first),
                    part.offset.saturating_add(last),
                )),
            })
        }
    }
}

/// Where the part's anchor places it. `not_at`: image positions of the part's offset 0 that its declared
/// copies take; a vote for one of them is a vote for a copy, not for the part's own place.
fn locate(
    index: &[Candidate],
    top: &(String, u64),
    part: &Node,
    anchor: &Anchor,
    not_at: &[u64],
) -> Option<Place> {
    match anchor {
        // The SoC boots from flash offset 0: U-Boot is compared with what is there, whatever the layout
        // calls it.
        Anchor::Partition { name } => {
            let d = if name.eq_ignore_ascii_case(BOOT_PARTITION) {
                index
                    .iter()
                    .find(|r| r.kind == RegionKind::Partition && r.offset == 0)?
            } else {
                index.iter().find(|r| {
                    matches!(r.kind, RegionKind::Partition | RegionKind::FlashRegion)
                        && r.name.eq_ignore_ascii_case(name)
                })?
            };
            Some(Place {
                region: d.path.clone(),
                start: d.offset,
                end: d.offset.saturating_add(d.size),
                shift: i128::from(d.offset) - i128::from(part.offset),
                span_only: None,
            })
        }
        // Placed by [`compare_ubi_volume`], in the decompressed space of the volume.
        Anchor::UbiVolume { .. } => None,
        Anchor::Volumes => {
            let mine = part_volumes(part);
            // The volumes' extent, not the part's: a capsule's header is not in the flash.
            let first = mine.iter().map(|m| m.2).min()?;
            let last = mine.iter().filter_map(|m| m.2.checked_add(m.1)).max()?;
            // x86: the volume with the reset vector lies at the top of the BIOS region, where the CPU runs
            // it, whatever else the dump holds; the other volumes where the baseline's layout puts them.
            if let Some(rel_top) = vtf_end(part) {
                let start = top.1.checked_sub(rel_top)?;
                return Some(Place {
                    region: top.0.clone(),
                    start: start.checked_add(first)?,
                    end: start.checked_add(last)?,
                    shift: i128::from(start) - i128::from(part.offset),
                    span_only: Some((
                        part.offset.saturating_add(first),
                        part.offset.saturating_add(last),
                    )),
                });
            }
            // The part's offsets of its volumes by name and size: one lookup per volume of the image.
            let mut by_id: HashMap<(&str, u64), Vec<u64>> = HashMap::new();
            for (name, size, rel) in &mine {
                by_id.entry((name, *size)).or_default().push(*rel);
            }
            // Votes for a start of the part: each volume found by name and size at some offset.
            let mut votes: BTreeMap<(u64, &str), usize> = BTreeMap::new();
            for d in index.iter().filter(|r| r.kind == RegionKind::Volume) {
                let parent = d.path.rsplit_once('/').map_or("", |(p, _)| p);
                for rel in by_id
                    .get(&(base_name(&d.name), d.size))
                    .map_or(&[][..], Vec::as_slice)
                {
                    if let Some(start) = d.offset.checked_sub(*rel) {
                        if !not_at.contains(&start) {
                            *votes.entry((start, parent)).or_default() += 1;
                        }
                    }
                }
            }
            let best = votes.values().copied().max()?;
            let ((start, parent), _) = votes.into_iter().find(|(_, v)| *v == best)?;
            Some(Place {
                region: parent.to_string(),
                start: start.saturating_add(first),
                end: start.saturating_add(last),
                shift: i128::from(start) - i128::from(part.offset),
                span_only: Some((
                    part.offset.saturating_add(first),
                    part.offset.saturating_add(last),
                )),
            })
        }
    }
}

/// Moves a baseline subtree from path `from` to path `to`, offsets by `shift`.
fn reroot(n: &Node, from: &str, to: &str, shift: i128) -> Node {
    let move_path = |p: &str| -> String {
        let rest = if from.is_empty() {
            p
        } else {
            p.strip_prefix(from).unwrap_or(p).trim_start_matches('/')
        };
        region::join(to, rest)
    };
    let offset = if n.space == Space::Image {
        u64::try_from(i128::from(n.offset).saturating_add(shift)).unwrap_or(0)
    } else {
        n.offset
    };
    Node {
        name: n.name.clone(),
        path: move_path(&n.path),
        kind: n.kind,
        space: n.space,
        base: n.base.as_deref().map(move_path),
        offset,
        size: n.size,
        policy: n.policy,
        digest: n.digest.clone(),
        blocks: n.blocks.clone(),
        attrs: n.attrs.clone(),
        notes: n.notes.clone(),
        children: n
            .children
            .iter()
            .map(|c| reroot(c, from, to, shift))
            .collect(),
    }
}

/// A baseline child under the name the image's child at its offset has, when the two differ only in the
/// occurrence suffix (`fv[X]` and `fv[X]#2`: the image holds another copy in front of the anchored one).
fn same_occurrence(c: Node, d: &Region) -> Node {
    let Some(ic) = d.children.iter().find(|ic| {
        ic.offset == c.offset
            && ic.space == c.space
            && ic.name != c.name
            && base_name(&ic.name) == base_name(&c.name)
    }) else {
        return c;
    };
    fn repath(n: &mut Node, from: &str, to: &str) {
        let moved = |p: &str| match p.strip_prefix(from) {
            Some("") => Some(to.to_string()),
            Some(rest) if rest.starts_with('/') => Some(format!("{to}{rest}")),
            _ => None,
        };
        if let Some(p) = moved(&n.path) {
            n.path = p;
        }
        if let Some(b) = n.base.as_deref().and_then(moved) {
            n.base = Some(b);
        }
        for k in &mut n.children {
            repath(k, from, to);
        }
    }
    let mut n = c;
    let from = n.path.clone();
    repath(&mut n, &from, &ic.path);
    n.name = ic.name.clone();
    n
}

fn find_mut<'a>(root: &'a mut Region, path: &str) -> Option<&'a mut Region> {
    let mut cur = root;
    while cur.path != path {
        cur = cur
            .children
            .iter_mut()
            .find(|c| region::leads_to(&c.path, path))?;
    }
    Some(cur)
}

/// Compares one part with the region its anchor found.
fn compare_part(cx: &Cx, part: &Node, place: &Place, d: &mut Region) -> Vec<Finding> {
    if d.is_lazy() {
        d.expand();
    }
    let mut out = Vec::new();
    if part.children.is_empty() {
        // An opaque part (a U-Boot binary fwscan did not split): its bytes at the start of the region.
        let len = usize::try_from(part.size).unwrap_or(usize::MAX);
        let bytes = d.bytes();
        let actual = bytes.get(..len).map(|b| cx.digest(b));
        if actual.is_none() || actual != part.digest {
            let mut f = Finding::on(
                super::code_for(d.kind, super::Change::Modified),
                d,
                format!(
                    "the first {} bytes differ from the baseline's `{}`",
                    part.size, part.path
                ),
            );
            f.expected_digest = part.digest.clone();
            f.actual_digest = actual;
            f.expected_size = Some(part.size);
            f.ranges = vec![ByteRange {
                offset: d.offset,
                length: part.size.min(d.size),
                space: d.space,
                base: d.base.clone(),
            }];
            out.push(f);
        }
        if let Some(rest) = bytes.get(len..) {
            if let Some(first) = region::first_not(rest, cx.blank) {
                let mut f = Finding::on(
                    Code::NotBlank,
                    d,
                    format!(
                        "data after the baseline's `{}` in a region that must be blank there",
                        part.path
                    ),
                );
                f.ranges = vec![ByteRange {
                    offset: d
                        .offset
                        .saturating_add(part.size)
                        .saturating_add(first as u64),
                    length: (rest.len() - first) as u64,
                    space: d.space,
                    base: d.base.clone(),
                }];
                out.push(f);
            }
        }
        return out;
    }
    if part.policy == Policy::Ignore {
        cx.skip(&d.path, part.policy, d.size);
        return out;
    }
    let synth = Node {
        name: d.name.clone(),
        path: d.path.clone(),
        kind: d.kind,
        space: d.space,
        base: d.base.clone(),
        offset: d.offset,
        size: d.size,
        policy: part.policy,
        digest: None,
        blocks: Vec::new(),
        attrs: part.attrs.clone(),
        notes: part.notes.clone(),
        children: part
            .children
            .iter()
            .filter(|c| match place.span_only {
                None => true,
                Some((s, e)) => {
                    c.space != Space::Image
                        || (c.offset >= s && c.offset.saturating_add(c.size) <= e)
                }
            })
            .map(|c| reroot(c, &part.path, &d.path, place.shift))
            .map(|c| same_occurrence(c, d))
            .collect(),
    };
    let span = place.span_only.map(|_| (place.start, place.end));
    out.extend(diff_children(cx, &synth, d, span));
    out
}

/// One part of one baseline being placed and compared: what every step reports against.
struct PartJob<'a> {
    /// The manifest's index in the scan's list.
    manifest: usize,
    man: &'a Manifest,
    part: &'a Part,
    /// The part's node in the verified baseline.
    node: &'a Node,
    /// `part `PATH`` (or `the whole` for the root), for messages.
    name: String,
}

/// A copy of a part the baseline declares, found where it declares it: its number (from 1), the
/// declaration, and where it is compared.
type DeclaredCopy<'a> = (usize, &'a CopyPlace, Place);

/// What comparing part by part accumulates over all parts of all manifests, in the order found.
#[derive(Default)]
struct Tally {
    findings: Vec<Finding>,
    anchors: Vec<Anchored>,
    /// The image spans compared: each part's own place and its declared copies.
    covered: Vec<(u64, u64)>,
    /// The paths of the UBI volumes parts were anchored in.
    ubi_anchored: Vec<String>,
}

/// Compares an image with one or more manifests part by part (each manifest's [`Part`]s, or its whole
/// tree as one `volumes` part when it lists none but holds firmware volumes). Every part is compared where
/// its anchor finds it; a part that cannot be found is an `anchor-not-found` finding; regions no part
/// covers are listed in [`ScanResult::uncovered`].
pub fn compare_parts(ms: &[&VerifiedManifest], image: &mut Region) -> ScanResult {
    let mut t = Tally::default();
    let mut skipped = Vec::new();
    let mut stats = ScanStats::default();
    // Anchors look among the image's own regions, which comparing (expanding compressed nodes) does not
    // change: listed once for all parts.
    let index = candidates(image);
    let top = reset_top(image);
    for (i, v) in ms.iter().enumerate() {
        let man = v.manifest();
        let cx = Cx::new(v, None);
        let implied;
        let parts: &[Part] = if man.parts.is_empty() {
            implied = vec![Part {
                path: String::new(),
                anchor: Anchor::Volumes,
                signature: None,
                copies: Vec::new(),
            }];
            &implied
        } else {
            &man.parts
        };
        for p in parts {
            let Some(node) = man.node(&p.path) else {
                continue;
            };
            let name = if p.path.is_empty() {
                "the whole".to_string()
            } else {
                format!("part `{}`", p.path)
            };
            let job = PartJob {
                manifest: i,
                man,
                part: p,
                node,
                name,
            };
            compare_one(&cx, &index, &top, &job, image, &mut t);
        }
        fold_counters(cx, &mut stats, &mut skipped);
    }
    ubi_areas_covered(image, &mut t);
    // Sorted once: the overlap check and the not-covered walk below both read the spans in order.
    t.covered.sort_unstable();
    t.findings.extend(overlapping_parts(&t.covered));
    let mut uncovered = Vec::new();
    not_covered(image, &t.covered, &mut uncovered);
    // Fail closed: uncovered bytes that are neither blank nor per-machine by structure are findings.
    let blank = ms.first().map_or(0xFF, |v| v.manifest().image.blank_byte);
    t.findings
        .extend(unaccounted_findings(image, &t.covered, &uncovered, blank));
    skipped.sort_by(|a: &Skipped, b| a.path.cmp(&b.path));
    ScanResult {
        findings: t.findings,
        skipped,
        stats,
        anchors: t.anchors,
        uncovered,
    }
}

/// One part, in its steps: placed by its own anchor, its declared copies placed, the copies and names
/// the dump adds beside them reported, then compared at every place found. A part its anchor cannot
/// place is reported and not compared anywhere.
fn compare_one(
    cx: &Cx,
    index: &[Candidate],
    top: &(String, u64),
    job: &PartJob<'_>,
    image: &mut Region,
    t: &mut Tally,
) {
    if let Anchor::UbiVolume { name, per_machine } = &job.part.anchor {
        compare_ubi_volume(cx, job, name, *per_machine, image, t);
        return;
    }
    let Some(place) = anchor_part(index, top, job, &mut t.findings) else {
        return;
    };
    let copies = declared_copies(index, image.size, job, &place, &mut t.findings);
    t.findings
        .extend(copies_outside_places(index, job, &place, &copies));
    t.findings.extend(boot_layout_mismatch(index, job, &place));
    compare_places(cx, image, job, place, copies, t);
}

/// Where the part's own anchor places it ([`locate`]): the volume holding the x86 reset vector at the
/// top of the BIOS region, the SoC's boot partition at flash offset 0, a partition by name, or the
/// position the part's volumes vote for. The image positions the verified baseline's declared copies
/// take do not vote, so a copy cannot stand in for the part's own place. `None` when the anchor finds
/// nothing; an `anchor-not-found` finding then says so, and the part is compared nowhere.
fn anchor_part(
    index: &[Candidate],
    top: &(String, u64),
    job: &PartJob<'_>,
    findings: &mut Vec<Finding>,
) -> Option<Place> {
    let (man, p, node) = (job.man, job.part, job.node);
    // The copies the verified baseline declares, where it declares them; their own anchor does
    // not vote for them.
    let first = part_volumes(node).iter().map(|m| m.2).min();
    let not_at: Vec<u64> = p
        .copies
        .iter()
        .filter_map(|c| copy_start(index, c)?.checked_sub(first?))
        .collect();
    let Some(place) = locate(index, top, node, &p.anchor, &not_at) else {
        let mut f = Finding::general(
            Code::AnchorNotFound,
            format!(
                "{} of the baseline `{}` ({} {}): not found in the image",
                job.name,
                man.product.product,
                man.product.component,
                p.anchor.describe()
            ),
        );
        f.path = p.path.clone();
        f.expected_digest = node.digest.clone();
        f.expected_size = Some(node.size);
        findings.push(f);
        return None;
    };
    Some(place)
}

/// The copies of the part the verified baseline declares, each placed where the baseline puts it (a
/// flash offset or a partition name; never found by searching the dump for the content), in declared
/// order. A copy not there, or overlapping the part's own place, is a `copy-missing` finding and is
/// not compared.
fn declared_copies<'a>(
    index: &[Candidate],
    image_size: u64,
    job: &PartJob<'a>,
    place: &Place,
    findings: &mut Vec<Finding>,
) -> Vec<DeclaredCopy<'a>> {
    let (man, p, node): (_, &'a Part, _) = (job.man, job.part, job.node);
    let mut copies = Vec::new();
    for (k, c) in p.copies.iter().enumerate() {
        let k = k.saturating_add(1);
        let found = locate_copy(index, image_size, node, &p.anchor, c);
        let why = match &found {
            None => "not found there",
            Some(cp) if cp.start < place.end && place.start < cp.end => {
                "it overlaps the place the part's own anchor found, so no separate copy is there"
            }
            Some(_) => "",
        };
        match found {
            Some(cp) if why.is_empty() => copies.push((k, c, cp)),
            _ => {
                let mut f = Finding::general(
                    Code::CopyMissing,
                    format!(
                        "declared copy {k} ({}) of {} of the baseline `{}` ({}): {why}",
                        c.describe(),
                        job.name,
                        man.product.product,
                        man.product.component,
                    ),
                );
                f.path = p.path.clone();
                if let CopyPlace::Offset(o) = c {
                    f.offset = Some(*o);
                }
                f.expected_digest = node.digest.clone();
                f.expected_size = Some(node.size);
                findings.push(f);
            }
        }
    }
    copies
}

/// For a `volumes` part: an `anchor-ambiguous` finding for every volume of the image that is a copy of
/// one of the part's (same name and size) outside the part's own place and its declared copies. The
/// baseline vouches for the places the hardware's anchor and the baseline itself give, never for a
/// copy the dump holds elsewhere, whichever copy the hardware runs.
fn copies_outside_places(
    index: &[Candidate],
    job: &PartJob<'_>,
    place: &Place,
    copies: &[DeclaredCopy<'_>],
) -> Vec<Finding> {
    let mut out = Vec::new();
    if job.part.anchor != Anchor::Volumes {
        return out;
    }
    let man = job.man;
    let spans: Vec<(u64, u64)> = std::iter::once((place.start, place.end))
        .chain(copies.iter().map(|(_, _, cp)| (cp.start, cp.end)))
        .collect();
    for c in copies_elsewhere(index, job.node, &spans) {
        let mut f = Finding::general(
            Code::AnchorAmbiguous,
            format!(
                "`{}` at {:#x} ({} bytes) is a copy of a volume of the baseline ({} {}) outside \
                 the span {:#x}-{:#x} where the hardware's anchor places it{}; that copy is not what the \
                 baseline vouches for",
                c.path,
                c.offset,
                c.size,
                man.product.product,
                man.product.component,
                place.start,
                place.end,
                if copies.is_empty() {
                    String::new()
                } else {
                    format!(
                        " and the {} cop{} the baseline declares",
                        copies.len(),
                        if copies.len() == 1 { "y" } else { "ies" }
                    )
                }
            ),
        );
        f.path = c.path.clone();
        f.kind = Some(c.kind);
        f.offset = Some(c.offset);
        f.size = Some(c.size);
        out.push(f);
    }
    out
}

/// For a `partition` part: a `layout-mismatch` finding when the region it was placed in has another
/// name in the dump's own layout. The boot partition is placed at flash offset 0, where the SoC boots,
/// whatever the dump's layout calls that region; the name the dump gives it does not move the part.
fn boot_layout_mismatch(index: &[Candidate], job: &PartJob<'_>, place: &Place) -> Option<Finding> {
    let Anchor::Partition { name } = &job.part.anchor else {
        return None;
    };
    let there = index.iter().find(|c| c.path == place.region);
    let c = there.filter(|c| !c.name.eq_ignore_ascii_case(name))?;
    let mut f = Finding::general(
        Code::LayoutMismatch,
        format!(
            "the SoC boots from flash offset 0, where the image's layout has `{}`, not `{name}`: \
             it is compared with the baseline's `{}`",
            c.name, job.part.path
        ),
    );
    f.path = c.path.clone();
    f.kind = Some(c.kind);
    f.offset = Some(c.offset);
    f.size = Some(c.size);
    Some(f)
}

/// Compares the part at its own place, then at each declared copy found; every finding on a copy says
/// which copy it is. Each place compared is recorded as covered and as anchored; a place whose region
/// is not in the image tree is skipped.
fn compare_places(
    cx: &Cx,
    image: &mut Region,
    job: &PartJob<'_>,
    place: Place,
    copies: Vec<DeclaredCopy<'_>>,
    t: &mut Tally,
) {
    let p = job.part;
    let places = std::iter::once((None, place))
        .chain(copies.into_iter().map(|(k, c, cp)| (Some((k, c)), cp)));
    for (copy, place) in places {
        let Some(d) = find_mut(image, &place.region) else {
            continue;
        };
        let mut found = compare_part(cx, job.node, &place, d);
        let mut anchor = p.anchor.describe();
        if let Some((k, c)) = copy {
            // Every finding on a copy says which copy it is.
            for f in &mut found {
                f.message.push_str(&format!(
                    " [declared copy {k} ({}) of {} of the baseline]",
                    c.describe(),
                    job.name
                ));
            }
            anchor = format!("{anchor}, declared copy {k} ({})", c.describe());
        }
        t.findings.extend(found);
        t.covered.push((place.start, place.end));
        t.anchors.push(Anchored {
            manifest: job.manifest,
            part: p.path.clone(),
            anchor,
            region: place.region.clone(),
            offset: place.start,
            size: place.end.saturating_sub(place.start),
        });
    }
}

/// One UBI volume of the image: its path, name, size, and the path and span of the UBI area holding it.
struct UbiVolume {
    path: String,
    name: String,
    size: u64,
    area: String,
    area_offset: u64,
    area_size: u64,
}

/// The UBI volumes of the image (nodes the UBI parser marked with [`region::UBI_VOLUME_ATTR`]), found
/// under its own partitions, flash regions and file systems down to [`MAX_SEARCH_DEPTH`], expanding the
/// lazily parsed ones on the way (a UBI area is parsed when first needed).
fn ubi_volumes(image: &mut Region) -> Vec<UbiVolume> {
    fn walk(r: &mut Region, depth: usize, out: &mut Vec<UbiVolume>) {
        if depth > MAX_SEARCH_DEPTH || r.space != Space::Image {
            return;
        }
        // A UBI area is the content of a partition or flash region (or the whole file); file systems are
        // searched only as far as they are parsed already.
        if r.is_lazy()
            && matches!(
                r.kind,
                RegionKind::Image | RegionKind::Partition | RegionKind::FlashRegion
            )
        {
            r.expand();
        }
        for c in &r.children {
            if let Some(name) = c
                .attrs
                .get(region::UBI_VOLUME_ATTR)
                .and_then(serde_json::Value::as_str)
            {
                out.push(UbiVolume {
                    path: c.path.clone(),
                    name: name.to_string(),
                    size: c.size,
                    area: r.path.clone(),
                    area_offset: r.offset,
                    area_size: r.size,
                });
            }
        }
        for c in &mut r.children {
            if matches!(
                c.kind,
                RegionKind::Partition | RegionKind::FlashRegion | RegionKind::Filesystem
            ) {
                walk(c, depth.saturating_add(1), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(image, 0, &mut out);
    out
}

/// A `ubi-volume` part: compared with the volume of its name (`anchor-not-found` when there is none,
/// `anchor-ambiguous` for a second UBI area holding one too, `copy-missing` for copies the baseline
/// declares, which a UBI volume cannot have). A per-machine part (a package's UBIFS `rwfs`) in a volume
/// the UBI parser marks per-machine (no read-only image in it) is anchored but not compared.
fn compare_ubi_volume(
    cx: &Cx,
    job: &PartJob<'_>,
    name: &str,
    per_machine: bool,
    image: &mut Region,
    t: &mut Tally,
) {
    let (man, p, node) = (job.man, job.part, job.node);
    for (k, c) in p.copies.iter().enumerate() {
        let mut f = Finding::general(
            Code::CopyMissing,
            format!(
                "declared copy {} ({}) of {} of the baseline `{}` ({}): a UBI volume is found by its \
                 name only, never at a flash offset or partition",
                k.saturating_add(1),
                c.describe(),
                job.name,
                man.product.product,
                man.product.component,
            ),
        );
        f.path = p.path.clone();
        f.expected_digest = node.digest.clone();
        f.expected_size = Some(node.size);
        t.findings.push(f);
    }
    let found: Vec<UbiVolume> = ubi_volumes(image)
        .into_iter()
        .filter(|v| v.name == name)
        .collect();
    let Some(v) = found.first() else {
        let mut f = Finding::general(
            Code::AnchorNotFound,
            format!(
                "{} of the baseline `{}` ({} {}): not found in the image",
                job.name,
                man.product.product,
                man.product.component,
                p.anchor.describe()
            ),
        );
        f.path = p.path.clone();
        f.expected_digest = node.digest.clone();
        f.expected_size = Some(node.size);
        t.findings.push(f);
        return;
    };
    for other in &found[1..] {
        let mut f = Finding::general(
            Code::AnchorAmbiguous,
            format!(
                "`{}` ({} bytes) is a second UBI volume named `{name}` (in `{}`); {} of the baseline `{}` \
                 ({}) is compared with `{}`, the first UBI area's",
                other.path,
                other.size,
                other.area,
                job.name,
                man.product.product,
                man.product.component,
                v.path
            ),
        );
        f.path = other.path.clone();
        f.offset = Some(other.area_offset);
        t.findings.push(f);
    }
    let Some(d) = find_mut(image, &v.path) else {
        // The volume was just listed from this tree; if it cannot be reached again, the part was not
        // compared, and that is said, not passed.
        let mut f = Finding::general(
            Code::AnchorNotFound,
            format!(
                "{} of the baseline `{}` ({}): UBI volume `{}` could not be reached for comparison",
                job.name, man.product.product, man.product.component, v.path
            ),
        );
        f.path = p.path.clone();
        f.expected_digest = node.digest.clone();
        t.findings.push(f);
        return;
    };
    if per_machine && d.policy == Policy::Mutable {
        // Per-machine by structure (UBIFS): the package file is its initial content only.
        cx.skip(&d.path, Policy::Mutable, d.size);
    } else {
        let place = Place {
            region: v.path.clone(),
            start: 0,
            end: v.size,
            // The part's image offsets (in the package file) onto the volume's own bytes.
            shift: -i128::from(node.offset),
            span_only: None,
        };
        t.findings.extend(compare_part(cx, node, &place, d));
    }
    t.ubi_anchored.push(v.path.clone());
    t.anchors.push(Anchored {
        manifest: job.manifest,
        part: p.path.clone(),
        anchor: p.anchor.describe(),
        region: v.path.clone(),
        offset: v.area_offset,
        size: v.size,
    });
}

/// Every UBI area in which a part was anchored is covered as a whole (its container structure is
/// per-machine, its volumes compared one by one); each of its volumes no part was anchored in is a
/// `not-covered` finding naming it.
fn ubi_areas_covered(image: &mut Region, t: &mut Tally) {
    if t.ubi_anchored.is_empty() {
        return;
    }
    let vols = ubi_volumes(image);
    let mut areas: Vec<(&str, u64, u64)> = vols
        .iter()
        .filter(|v| t.ubi_anchored.contains(&v.path))
        .map(|v| (v.area.as_str(), v.area_offset, v.area_size))
        .collect();
    areas.sort_unstable();
    areas.dedup();
    for &(area, offset, size) in &areas {
        t.covered.push((offset, offset.saturating_add(size)));
        for v in vols
            .iter()
            .filter(|v| v.area == area && !t.ubi_anchored.contains(&v.path))
        {
            let mut f = Finding::general(
                Code::NotCovered,
                format!(
                    "UBI volume `{}` ({} bytes) in `{area}`: no verified baseline part is anchored in it",
                    v.name, v.size
                ),
            );
            f.path = v.path.clone();
            f.offset = Some(offset);
            f.size = Some(v.size);
            t.findings.push(f);
        }
    }
}

/// Adds one manifest's comparison counters and skipped nodes to the scan's.
fn fold_counters(cx: Cx<'_>, stats: &mut ScanStats, skipped: &mut Vec<Skipped>) {
    stats.bytes_hashed = stats
        .bytes_hashed
        .saturating_add(cx.hashed.load(Ordering::Relaxed));
    stats.nodes_compared = stats
        .nodes_compared
        .saturating_add(cx.compared.load(Ordering::Relaxed));
    stats.nodes_expanded = stats
        .nodes_expanded
        .saturating_add(cx.expanded.load(Ordering::Relaxed));
    skipped.extend(cx.skipped.into_inner().unwrap_or_default());
}

/// Two parts on one span: they overlap, so which baseline decides is ambiguous. One finding per
/// overlapping neighbour pair of `covered`, which must be sorted.
fn overlapping_parts(covered: &[(u64, u64)]) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in covered.windows(2) {
        if w[1].0 < w[0].1 {
            let mut f = Finding::general(
                Code::AmbiguousManifest,
                format!(
                    "two baseline parts cover the same bytes ({:#x}-{:#x} and {:#x}-{:#x})",
                    w[0].0, w[0].1, w[1].0, w[1].1
                ),
            );
            f.offset = Some(w[1].0);
            out.push(f);
        }
    }
    out
}

/// Bytes of `[start, end)` inside the covered spans.
fn overlap(covered: &[(u64, u64)], start: u64, end: u64) -> u64 {
    covered
        .iter()
        .map(|&(s, e)| e.min(end).saturating_sub(s.max(start)))
        .sum()
}

/// The outermost regions no part covers; a leaf covered in part contributes its uncovered stretches.
fn not_covered(r: &Region, covered: &[(u64, u64)], out: &mut Vec<Uncovered>) {
    if r.space != Space::Image || r.size == 0 {
        return;
    }
    let end = r.offset.saturating_add(r.size);
    let o = overlap(covered, r.offset, end);
    if o == 0 {
        out.push(Uncovered {
            path: r.path.clone(),
            offset: r.offset,
            size: r.size,
        });
        return;
    }
    if o >= r.size {
        return;
    }
    let kids: Vec<&Region> = r
        .children
        .iter()
        .filter(|c| c.space == Space::Image)
        .collect();
    if kids.is_empty() {
        let mut at = r.offset;
        for &(s, e) in covered {
            if e <= at || s >= end {
                continue;
            }
            if s > at {
                out.push(Uncovered {
                    path: r.path.clone(),
                    offset: at,
                    size: s - at,
                });
            }
            at = at.max(e);
        }
        if at < end {
            out.push(Uncovered {
                path: r.path.clone(),
                offset: at,
                size: end - at,
            });
        }
        return;
    }
    for c in kids {
        not_covered(c, covered, out);
    }
}

/// Most byte ranges one `not-covered` finding lists.
const MAX_RANGES: usize = 64;

/// Appends to `out` the stretches of `r` that no part covers and nothing else accounts for: bytes that are
/// not blank and not per-machine by structure (a node its parser marked `mutable`: NVRAM stores, U-Boot
/// environments, rwfs, GbE MAC and configuration words, ME data partitions). A container's headers (its
/// `header` children and the bytes between its parsed children) are its structure, which its parser
/// validated; a leaf's bytes (code, data, padding between known structures) are judged byte by byte.
fn unaccounted(r: &Region, covered: &[(u64, u64)], blank: u8, out: &mut Vec<(u64, u64)>) {
    if r.space != Space::Image || r.size == 0 {
        return;
    }
    let end = r.end();
    // Per-machine by structure; a container's header (validated by its parser) is its structure.
    if overlap(covered, r.offset, end) >= r.size
        || r.policy == Policy::Mutable
        || r.kind == RegionKind::Header
    {
        return;
    }
    let mut kids = r
        .children
        .iter()
        .filter(|c| c.space == Space::Image)
        .peekable();
    if kids.peek().is_some() {
        for c in kids {
            unaccounted(c, covered, blank, out);
        }
        return;
    }
    // A leaf: its stretches outside the covered spans, from their first non-blank byte.
    let mut at = r.offset;
    let mut stretches = Vec::new();
    for &(s, e) in covered {
        if e <= at || s >= end {
            continue;
        }
        if s > at {
            stretches.push((at, s));
        }
        at = at.max(e);
    }
    if at < end {
        stretches.push((at, end));
    }
    let bytes = r.bytes();
    for (s, e) in stretches {
        let (Some(from), Some(to)) = (s.checked_sub(r.offset), e.checked_sub(r.offset)) else {
            continue;
        };
        let Some(b) = bytes.get(from as usize..to as usize) else {
            continue;
        };
        if let Some(first) = region::first_not(b, blank) {
            let start = s.saturating_add(first as u64);
            match out.last_mut() {
                Some(last) if last.0.saturating_add(last.1) == start => {
                    last.1 = last.1.saturating_add(e - start)
                }
                _ => out.push((start, e - start)),
            }
        }
    }
}

/// What a region is, for a `not-covered` message.
fn what(r: &Region) -> String {
    match r.kind {
        RegionKind::Padding | RegionKind::Blob | RegionKind::Image => "unknown data".to_string(),
        RegionKind::Volume => format!("firmware volume `{}`", r.name),
        RegionKind::File => format!("firmware file `{}`", r.name),
        k => format!("{} `{}`", k.as_str(), r.name),
    }
}

/// One `not-covered` finding per outermost uncovered region holding bytes nothing accounts for.
fn unaccounted_findings(
    image: &Region,
    covered: &[(u64, u64)],
    uncovered: &[Uncovered],
    blank: u8,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for u in uncovered {
        let Some(r) = image.find(&u.path) else {
            continue;
        };
        let mut stretches = Vec::new();
        unaccounted(r, covered, blank, &mut stretches);
        let u_end = u.offset.saturating_add(u.size);
        stretches.retain(|&(s, l)| s < u_end && s.saturating_add(l) > u.offset);
        if stretches.is_empty() {
            continue;
        }
        let total: u64 = stretches.iter().map(|s| s.1).sum();
        let n = stretches.len();
        let mut f = Finding::on(
            Code::NotCovered,
            r,
            format!(
                "{total} non-blank bytes of {} in {n} range(s) from {:#x}: no verified baseline part covers \
                 them and no per-machine structure accounts for them",
                what(r),
                stretches[0].0
            ),
        );
        f.offset = Some(u.offset);
        f.size = Some(u.size);
        f.ranges = stretches
            .into_iter()
            .take(MAX_RANGES)
            .map(|(offset, length)| ByteRange {
                offset,
                length,
                space: Space::Image,
                base: None,
            })
            .collect();
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Data;
    use std::sync::Arc;

    fn tree() -> Region {
        let data = Arc::new(Data::Owned(vec![0xFF; 0x4000]));
        let mut root = Region::new(RegionKind::Image, "", &data, 0, 0x4000);
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            root.children.push(Region::new(
                RegionKind::Partition,
                *name,
                &data,
                i as u64 * 0x1000,
                0x1000,
            ));
        }
        region::finalize(&mut root);
        root
    }

    #[test]
    fn what_no_part_covers_is_listed_outermost_and_in_stretches() {
        let t = tree();
        let mut out = Vec::new();
        // `b` whole, half of `c`.
        not_covered(&t, &[(0x1000, 0x2000), (0x2000, 0x2800)], &mut out);
        let got: Vec<(String, u64, u64)> = out
            .into_iter()
            .map(|u| (u.path, u.offset, u.size))
            .collect();
        assert_eq!(
            got,
            [
                ("a".to_string(), 0, 0x1000),
                ("c".to_string(), 0x2800, 0x800),
                ("d".to_string(), 0x3000, 0x1000)
            ]
        );
        let mut out = Vec::new();
        not_covered(&t, &[(0, 0x4000)], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_partition_anchor_finds_its_partition_and_shifts_offsets() {
        let t = tree();
        let part = Node {
            name: "image-c".into(),
            path: "image-c".into(),
            kind: RegionKind::File,
            space: Space::Image,
            base: None,
            offset: 0x200,
            size: 0x100,
            policy: Policy::Static,
            digest: None,
            blocks: Vec::new(),
            attrs: Default::default(),
            notes: Vec::new(),
            children: Vec::new(),
        };
        let p = locate(
            &candidates(&t),
            &reset_top(&t),
            &part,
            &Anchor::Partition { name: "C".into() },
            &[],
        )
        .expect("found, case ignored");
        assert_eq!((p.region.as_str(), p.start, p.end), ("c", 0x2000, 0x3000));
        let mut child = part.clone();
        child.path = "image-c/x".into();
        child.offset = 0x210;
        let moved = reroot(&child, "image-c", "c", p.shift);
        assert_eq!((moved.path.as_str(), moved.offset), ("c/x", 0x2010));
        assert!(locate(
            &candidates(&t),
            &reset_top(&t),
            &part,
            &Anchor::Partition { name: "e".into() },
            &[],
        )
        .is_none());
        // A declared copy: by partition name or by the offset a partition starts at; nothing else.
        let idx = candidates(&t);
        let anchor = Anchor::Partition { name: "c".into() };
        let by_name = locate_copy(
            &idx,
            t.size,
            &part,
            &anchor,
            &CopyPlace::Partition("D".into()),
        )
        .expect("partition d");
        assert_eq!((by_name.region.as_str(), by_name.start), ("d", 0x3000));
        let by_offset = locate_copy(&idx, t.size, &part, &anchor, &CopyPlace::Offset(0x1000))
            .expect("partition at 0x1000");
        assert_eq!(by_offset.region.as_str(), "b");
        assert!(locate_copy(&idx, t.size, &part, &anchor, &CopyPlace::Offset(0x1800)).is_none());
        assert!(locate_copy(
            &idx,
            t.size,
            &part,
            &anchor,
            &CopyPlace::Partition("z".into())
        )
        .is_none());
        assert_eq!(base_name("fv[X]#2"), "fv[X]");
        assert_eq!(base_name("a#b"), "a#b");
    }
}
