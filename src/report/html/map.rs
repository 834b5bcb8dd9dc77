//! The flash map of one image: its labelled spans (flash regions, partitions, volumes: the image-space
//! nodes of the first [`SPAN_DEPTH`] levels), every byte's protection class, and the findings placed on
//! it; and the bounded region tree shown under it.
//!
//! The classes are those of [`coverage`] (`inspect --coverage`), with its `none` split by why nothing
//! protects the bytes: `per-machine` (a mutable or ignored node: NVRAM, an environment, a writable
//! partition), `blank` (free space, erased padding) and `not-covered` (bytes no node of the tree holds).

use std::sync::Arc;

use rayon::prelude::*;

use crate::finding::{Finding, Protection};
use crate::hash::{self, Alg};
use crate::region::{Policy, Region, Space};

use super::super::coverage::{self, Coverage};

/// Levels of image-space nodes drawn as spans below the image itself.
pub const SPAN_DEPTH: usize = 3;
/// Most spans drawn; smaller ones are counted instead.
pub const MAX_SPANS: usize = 3_000;
/// Most coverage ranges drawn; past it neighbouring ranges are drawn as one range of their widest class.
pub const MAX_COVERAGE_RANGES: usize = 20_000;
/// Most finding markers drawn per image.
pub const MAX_MARKERS: usize = 2_000;
/// Most nodes of the region tree shown (breadth first: every level gets its share before deeper ones).
pub const MAX_TREE_NODES: usize = 4_000;
/// Most children shown under one node.
pub const MAX_CHILDREN: usize = 400;

/// The protection class of a byte on the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// A protection of [`coverage`] other than `none` (vendor signatures by kind, self-signed Boot Guard,
    /// baseline-only).
    Protected(Protection),
    /// Mutable or ignored data (per-machine: NVRAM, environments, writable partitions).
    PerMachine,
    /// Free space, erased padding.
    Blank,
    /// Bytes no node of the tree holds.
    NotCovered,
}

impl Class {
    /// Every class, strongest first.
    pub fn all() -> Vec<Class> {
        let mut v: Vec<Class> = Protection::ALL
            .iter()
            .filter(|p| **p != Protection::None)
            .map(|p| Class::Protected(*p))
            .collect();
        v.extend([Class::PerMachine, Class::Blank, Class::NotCovered]);
        v
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Protected(p) => p.as_str(),
            Class::PerMachine => "per-machine",
            Class::Blank => "blank",
            Class::NotCovered => "not-covered",
        }
    }

    /// What the class means, for the legend.
    pub fn meaning(self) -> &'static str {
        match self {
            Class::Protected(Protection::BootguardIbb) => {
                "Boot Guard IBB, key manifest pinned by the trust policy (hardware-rooted)"
            }
            Class::Protected(Protection::Acm) => "Intel ACM, RSA signature verified",
            Class::Protected(Protection::Microcode) => "microcode update (CPU-verified)",
            Class::Protected(Protection::MeManifest) => "ME/CSME partition manifest signature",
            Class::Protected(Protection::VendorPackage) => "vendor release package signature",
            Class::Protected(Protection::BootguardSelfSigned) => {
                "Boot Guard IBB under a key nothing pins (self-signed)"
            }
            Class::Protected(Protection::BaselineOnly) => "only the fwscan baseline protects it",
            Class::Protected(Protection::None) | Class::NotCovered => {
                "no node of the parsed tree holds these bytes"
            }
            Class::PerMachine => "per-machine or mutable data, not compared",
            Class::Blank => "free space or erased padding",
        }
    }

    /// Fill colour (a fixed table: nothing from the image reaches a style).
    pub fn colour(self) -> &'static str {
        match self {
            Class::Protected(Protection::BootguardIbb) => "#1a7f37",
            Class::Protected(Protection::Acm) => "#4cae4f",
            Class::Protected(Protection::Microcode) => "#9bd67c",
            Class::Protected(Protection::MeManifest) => "#2f6fb3",
            Class::Protected(Protection::VendorPackage) => "#6fb3e0",
            Class::Protected(Protection::BootguardSelfSigned) => "#e9c84a",
            Class::Protected(Protection::BaselineOnly) => "#a99bd1",
            Class::PerMachine => "#f2a65a",
            Class::Blank => "#eeeeee",
            Class::Protected(Protection::None) | Class::NotCovered => "#d9534f",
        }
    }
}

/// One range of one class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassRange {
    pub offset: u64,
    pub size: u64,
    pub class: Class,
}

/// A labelled span: an image-space node of the first levels.
#[derive(Debug, Clone)]
pub struct Span {
    pub path: String,
    pub label: String,
    pub kind: &'static str,
    /// 1 for the image's children.
    pub depth: usize,
    pub offset: u64,
    pub size: u64,
    pub digest: String,
}

/// A finding placed on the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// Index of the finding in its report.
    pub finding: usize,
    pub offset: u64,
    pub size: u64,
    /// False when the finding's bytes are not in image space (inside decompressed data) and the marker
    /// sits on the image-space node that holds them.
    pub exact: bool,
}

/// One node of the shown region tree.
#[derive(Debug, Clone)]
pub struct TreeNode {
    pub label: String,
    pub path: String,
    pub kind: &'static str,
    pub offset: u64,
    pub size: u64,
    pub decompressed: bool,
    pub policy: &'static str,
    pub digest: String,
    pub evidence: Vec<String>,
    pub notes: Vec<String>,
    pub children: Vec<TreeNode>,
    /// Descendants not shown (over the node or children budget), counted.
    pub hidden: u64,
}

/// Everything the page draws of one parsed image.
#[derive(Debug, Clone)]
pub struct FlashMap {
    pub size: u64,
    pub spans: Vec<Span>,
    /// Spans not drawn (too many, or narrower than the map shows), counted.
    pub spans_hidden: u64,
    pub classes: Vec<ClassRange>,
    /// Bytes per class, every class listed (strongest first).
    pub totals: Vec<(Class, u64)>,
    /// The coverage notes (why a range got a weaker class than its structure suggests).
    pub notes: Vec<String>,
    pub markers: Vec<Marker>,
    pub tree: TreeNode,
    /// Nodes in the whole tree.
    pub nodes: u64,
}

impl FlashMap {
    /// The map of a finalized tree (digests are computed for the spans and shown nodes).
    pub fn of(root: &Region) -> FlashMap {
        let cov = coverage::compute(root);
        let classes = bound(split_none(root, &cov));
        let mut totals: Vec<(Class, u64)> = Class::all().into_iter().map(|c| (c, 0)).collect();
        for r in &classes {
            if let Some(t) = totals.iter_mut().find(|t| t.0 == r.class) {
                t.1 = t.1.saturating_add(r.size);
            }
        }
        let (spans, spans_hidden) = spans(root);
        FlashMap {
            size: root.size,
            spans,
            spans_hidden,
            classes,
            totals,
            notes: cov.notes,
            markers: Vec::new(),
            tree: tree(root),
            nodes: root.count() as u64,
        }
    }

    /// Places `findings` (a report's, in its order) on the map: by their image-space bytes, else on the
    /// image-space node holding their decompressed bytes or their node.
    pub fn place(&mut self, root: &Region, findings: &[Finding]) {
        self.markers = markers(Some(root), root.size, findings);
    }
}

/// Markers of findings without a tree (audit rows): image-space findings only.
pub fn markers(root: Option<&Region>, size: u64, findings: &[Finding]) -> Vec<Marker> {
    let mut out = Vec::new();
    for (i, f) in findings.iter().enumerate() {
        if out.len() >= MAX_MARKERS {
            break;
        }
        let m = match (f.space, f.offset, f.size) {
            (Space::Image, Some(o), Some(s)) if o < size => Some((o, s, true)),
            _ => root.and_then(|r| {
                let at = f.base.as_deref().unwrap_or(&f.path);
                in_image(r, at).map(|(o, s)| (o, s, false))
            }),
        };
        if let Some((offset, s, exact)) = m {
            let s = s.min(size - offset).max(1);
            out.push(Marker {
                finding: i,
                offset,
                size: s,
                exact,
            });
        }
    }
    out
}

/// The image-space span holding the node at `path` (climbing through the bases of decompressed nodes).
fn in_image(root: &Region, path: &str) -> Option<(u64, u64)> {
    let mut path = path.to_string();
    for _ in 0..32 {
        if path.is_empty() {
            return None;
        }
        let n = root.find(&path)?;
        match n.space {
            Space::Image if Arc::ptr_eq(&n.data, &root.data) && n.offset < root.size => {
                return Some((n.offset, n.size))
            }
            _ => path = n.base.clone()?,
        }
    }
    None
}

fn label(r: &Region) -> String {
    if r.path.is_empty() {
        return "/".into();
    }
    match crate::finding::display_name(&r.attrs) {
        Some(n) if !r.name.contains(n.as_str()) => format!("{} \"{n}\"", r.name),
        _ => r.name.clone(),
    }
}

fn image_children<'a>(root: &'a Region, r: &'a Region) -> impl Iterator<Item = &'a Region> {
    r.children
        .iter()
        .filter(move |c| c.space == Space::Image && Arc::ptr_eq(&c.data, &root.data))
}

/// The image-space nodes of the first [`SPAN_DEPTH`] levels that are at least 1/4000 of the image.
fn spans(root: &Region) -> (Vec<Span>, u64) {
    let mut picked: Vec<(&Region, usize)> = Vec::new();
    let mut hidden = 0u64;
    let min = root.size / 4000;
    let mut level: Vec<&Region> = vec![root];
    for depth in 1..=SPAN_DEPTH {
        let mut next = Vec::new();
        for r in level {
            for c in image_children(root, r) {
                if c.size == 0 {
                    continue;
                }
                if picked.len() >= MAX_SPANS || c.size < min {
                    hidden += 1;
                    continue;
                }
                picked.push((c, depth));
                next.push(c);
            }
        }
        level = next;
    }
    let spans = picked
        .par_iter()
        .map(|(r, depth)| Span {
            path: r.path.clone(),
            label: label(r),
            kind: r.kind.as_str(),
            depth: *depth,
            offset: r.offset,
            size: r.size,
            digest: hash::digest(Alg::Sha256, r.bytes()),
        })
        .collect();
    (spans, hidden)
}

/// Splits the `none` ranges of a coverage by why nothing protects them, and merges neighbours of one
/// class (the map shows classes, not which node gives them).
fn split_none(root: &Region, cov: &Coverage) -> Vec<ClassRange> {
    // Every byte's default class from the deepest image-space node holding it: a leaf's as the coverage
    // fold assigns it; the bytes of a node that no child holds (headers, gaps) per-machine or blank by
    // the node, else not covered (the coverage fold leaves them at `none` too).
    let mut leaves: Vec<(u64, u64, Class)> = Vec::new();
    fn rec(
        root: &Region,
        r: &Region,
        mutable: bool,
        pinned: bool,
        out: &mut Vec<(u64, u64, Class)>,
    ) {
        let mutable = mutable || matches!(r.policy, Policy::Mutable | Policy::Ignore);
        let pinned = pinned || r.attrs.get("pinned").and_then(|v| v.as_bool()) == Some(true);
        let (s, e) = (r.offset.min(root.size), r.end().min(root.size));
        let own = if r.policy == Policy::Blank {
            Class::Blank
        } else if mutable && !pinned {
            Class::PerMachine
        } else {
            Class::NotCovered
        };
        let mut kids: Vec<&Region> = image_children(root, r).collect();
        if kids.is_empty() {
            if s < e {
                let class = match own {
                    Class::NotCovered => Class::Protected(Protection::BaselineOnly),
                    c => c,
                };
                out.push((s, e, class));
            }
            return;
        }
        kids.sort_by_key(|c| c.offset);
        let mut at = s;
        for c in kids {
            let cs = c.offset.min(root.size).max(at);
            if cs > at && at < e {
                out.push((at, cs.min(e), own));
            }
            rec(root, c, mutable, pinned, out);
            at = at.max(c.end().min(root.size));
        }
        if at < e {
            out.push((at, e, own));
        }
    }
    rec(root, root, false, false, &mut leaves);
    leaves.sort_unstable_by_key(|l| (l.0, l.1));
    let mut out: Vec<ClassRange> = Vec::new();
    let mut push = |offset: u64, end: u64, class: Class| {
        if end <= offset {
            return;
        }
        if let Some(l) = out.last_mut() {
            if l.class == class && l.offset + l.size == offset {
                l.size += end - offset;
                return;
            }
        }
        out.push(ClassRange {
            offset,
            size: end - offset,
            class,
        });
    };
    let mut k = 0usize;
    for r in &cov.ranges {
        let (start, end) = (r.offset, r.offset.saturating_add(r.size));
        if r.protection != Protection::None {
            push(start, end, Class::Protected(r.protection));
            continue;
        }
        while k < leaves.len() && leaves[k].1 <= start {
            k += 1;
        }
        let mut at = start;
        let mut j = k;
        while at < end {
            match leaves.get(j) {
                Some(&(ls, le, c)) if ls < end => {
                    if ls > at {
                        push(at, ls, Class::NotCovered);
                        at = ls;
                    }
                    let e = le.min(end);
                    if e > at {
                        // Bytes the coverage left at `none` are blank, per-machine or not covered;
                        // a leaf it gave the baseline default cannot be `none` (overlapping nodes):
                        // name those bytes not covered.
                        let class = match c {
                            Class::Blank | Class::PerMachine => c,
                            _ => Class::NotCovered,
                        };
                        push(at, e, class);
                        at = e;
                    }
                    j += 1;
                }
                _ => {
                    push(at, end, Class::NotCovered);
                    at = end;
                }
            }
        }
    }
    out
}

/// At most [`MAX_COVERAGE_RANGES`] ranges: past it, ranges are merged into equal buckets drawn with the
/// class holding most of each bucket's bytes.
fn bound(ranges: Vec<ClassRange>) -> Vec<ClassRange> {
    if ranges.len() <= MAX_COVERAGE_RANGES {
        return ranges;
    }
    let end = ranges.last().map_or(0, |r| r.offset + r.size);
    let n = (MAX_COVERAGE_RANGES / 2) as u64;
    let width = end.div_ceil(n).max(1);
    let mut out: Vec<ClassRange> = Vec::new();
    let mut k = 0usize;
    let mut b = 0u64;
    while b < end {
        let be = b.saturating_add(width).min(end);
        let mut by: Vec<(Class, u64)> = Vec::new();
        while k < ranges.len() && ranges[k].offset < be {
            let r = &ranges[k];
            let (s, e) = (r.offset.max(b), (r.offset + r.size).min(be));
            match by.iter_mut().find(|x| x.0 == r.class) {
                Some(x) => x.1 += e.saturating_sub(s),
                None => by.push((r.class, e.saturating_sub(s))),
            }
            if r.offset + r.size > be {
                break;
            }
            k += 1;
        }
        let class = by
            .iter()
            .max_by_key(|x| x.1)
            .map_or(Class::NotCovered, |x| x.0);
        match out.last_mut() {
            Some(l) if l.class == class => l.size += be - b,
            _ => out.push(ClassRange {
                offset: b,
                size: be - b,
                class,
            }),
        }
        b = be;
    }
    out
}

/// The evidence of a node, one line each.
fn evidence_lines(r: &Region) -> Vec<String> {
    r.evidence
        .iter()
        .map(|e| {
            let mut s = format!("{} {}", e.scheme.as_str(), e.status.as_str());
            if let Some(w) = e.status.why() {
                s.push_str(&format!(" ({w})"));
            }
            if let Some(p) = e.protection {
                s.push_str(&format!(", class {}", p.as_str()));
            }
            if let Some(sg) = &e.signer {
                s.push_str(&format!(", signer {sg}"));
            }
            s.push_str(&format!(", trust {}", e.trust.as_str()));
            if let crate::finding::evidence::Covers::Ranges(rs) = &e.covers {
                s.push_str(&format!(", covers {} range(s)", rs.len()));
            }
            s
        })
        .collect()
}

/// The region tree, breadth first within [`MAX_TREE_NODES`] and [`MAX_CHILDREN`].
fn tree(root: &Region) -> TreeNode {
    struct Flat<'a> {
        r: &'a Region,
        children: Vec<usize>,
        hidden: u64,
    }
    let mut arena: Vec<Flat> = vec![Flat {
        r: root,
        children: Vec::new(),
        hidden: 0,
    }];
    let mut queue = std::collections::VecDeque::from([0usize]);
    while let Some(i) = queue.pop_front() {
        let r = arena[i].r;
        for (k, c) in r.children.iter().enumerate() {
            if k >= MAX_CHILDREN || arena.len() >= MAX_TREE_NODES {
                arena[i].hidden += c.count() as u64;
                continue;
            }
            arena.push(Flat {
                r: c,
                children: Vec::new(),
                hidden: 0,
            });
            let j = arena.len() - 1;
            arena[i].children.push(j);
            queue.push_back(j);
        }
    }
    let digests: Vec<String> = arena
        .par_iter()
        .map(|f| hash::digest(Alg::Sha256, f.r.bytes()))
        .collect();
    fn build(arena: &[Flat], digests: &[String], i: usize) -> TreeNode {
        let f = &arena[i];
        let r = f.r;
        TreeNode {
            label: label(r),
            path: r.path.clone(),
            kind: r.kind.as_str(),
            offset: r.offset,
            size: r.size,
            decompressed: r.space == Space::Decompressed,
            policy: r.policy.as_str(),
            digest: digests[i].clone(),
            evidence: evidence_lines(r),
            notes: r
                .notes
                .iter()
                .map(|n| format!("{}: {}", n.code, n.message))
                .collect(),
            children: f
                .children
                .iter()
                .map(|&j| build(arena, digests, j))
                .collect(),
            hidden: f.hidden,
        }
    }
    build(&arena, &digests, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Data;
    use crate::region::RegionKind;

    #[test]
    fn none_is_split_into_blank_per_machine_and_not_covered() {
        let data = Arc::new(Data::Owned(vec![0u8; 100]));
        let mut root = Region::new(RegionKind::Image, "", &data, 0, 100);
        let a = Region::new(RegionKind::Blob, "a", &data, 0, 20);
        // A mutable node whose header (20..24) no child holds: per-machine, as its data.
        let mut b = Region::new(RegionKind::Blob, "b", &data, 20, 30).with_policy(Policy::Mutable);
        b.children = vec![Region::new(RegionKind::Blob, "v", &data, 24, 26)];
        let c = Region::new(RegionKind::Blob, "c", &data, 60, 20).with_policy(Policy::Blank);
        root.children = vec![a, b, c];
        crate::region::finalize(&mut root);
        let m = FlashMap::of(&root);
        let got: Vec<(u64, u64, &str)> = m
            .classes
            .iter()
            .map(|r| (r.offset, r.size, r.class.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (0, 20, "baseline-only"),
                (20, 30, "per-machine"),
                (50, 10, "not-covered"),
                (60, 20, "blank"),
                (80, 20, "not-covered"),
            ]
        );
        assert_eq!(m.totals.iter().map(|t| t.1).sum::<u64>(), 100);
        assert_eq!(m.spans.len(), 4);
        assert_eq!(m.tree.children.len(), 3);
    }

    #[test]
    fn bounded_ranges_keep_the_image_size() {
        let ranges: Vec<ClassRange> = (0..50_000u64)
            .map(|i| ClassRange {
                offset: i * 10,
                size: 10,
                class: if i % 2 == 0 {
                    Class::Blank
                } else {
                    Class::PerMachine
                },
            })
            .collect();
        let b = bound(ranges);
        assert!(b.len() <= MAX_COVERAGE_RANGES);
        assert_eq!(b.iter().map(|r| r.size).sum::<u64>(), 500_000);
        assert_eq!(b.first().map(|r| r.offset), Some(0));
    }
}
