//! Comparison of a fresh region tree against a verified baseline: findings with stable codes.
//!
//! The walk is top-down. A subtree that is static all the way down is decided by one digest (or by its
//! per-block digests, checked in parallel); only where digests differ does the walk descend, match children
//! by identity path, and expand compressed nodes that were left unparsed. A clean image therefore costs one
//! hash pass over its static bytes. Changes are reported at the deepest level that explains them; a module
//! (FFS file) collects the changes of its sections into one `module-modified` finding, and header changes
//! that only follow from a deeper change (sizes, checksums) are folded into it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use crate::finding::{ByteRange, Code, Finding, Severity, Verdict};

use crate::hash::{self, Alg};
use crate::manifest::{Node, VerifiedManifest};
use crate::region::{Policy, Region, RegionKind};

pub mod foreign;
mod parts;
pub use parts::{compare_parts, Anchored, Uncovered};

/// What a scan found and what it did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScanResult {
    pub findings: Vec<Finding>,
    /// Regions not compared because of their policy (mutable or ignored).
    pub skipped: Vec<Skipped>,
    pub stats: ScanStats,
    /// Where each part of a baseline was found, when the image was compared part by part
    /// ([`compare_parts`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anchors: Vec<Anchored>,
    /// Regions of the image no baseline part covers (information, not findings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncovered: Vec<Uncovered>,
}

/// A region that was not compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: String,
    pub policy: Policy,
    pub size: u64,
}

/// Work done by a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanStats {
    pub bytes_hashed: u64,
    pub nodes_compared: u64,
    pub nodes_expanded: u64,
}

struct Cx<'a> {
    alg: Alg,
    block: u64,
    blank: u8,
    _m: &'a VerifiedManifest,
    /// Bytes verified by earlier images of the run ([`hash::KnownBytes`]): equal bytes decide a node
    /// without hashing it.
    known: Option<&'a hash::KnownBytes>,
    hashed: AtomicU64,
    compared: AtomicU64,
    expanded: AtomicU64,
    skipped: std::sync::Mutex<Vec<Skipped>>,
    /// Changed blocks of the nodes decided by their per-block digests, by (image node, baseline node)
    /// address and the image node's extent: [`Cx::equal`] is asked again for a node one level further
    /// down the walk, and must not hash its blocks again.
    blocks: std::sync::Mutex<HashMap<(usize, usize), BlocksVerdict>>,
}

/// What the per-block digests of one node said (see [`Cx::blocks`]).
struct BlocksVerdict {
    offset: u64,
    size: u64,
    changed: Vec<(u64, u64)>,
}

impl<'a> Cx<'a> {
    fn new(m: &'a VerifiedManifest, known: Option<&'a hash::KnownBytes>) -> Cx<'a> {
        let man = m.manifest();
        Cx {
            alg: man.hash.algorithm,
            block: man.hash.block_size,
            blank: man.image.blank_byte,
            _m: m,
            known,
            hashed: AtomicU64::new(0),
            compared: AtomicU64::new(0),
            expanded: AtomicU64::new(0),
            skipped: std::sync::Mutex::new(Vec::new()),
            blocks: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn digest(&self, bytes: &[u8]) -> String {
        self.hashed.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        hash::digest(self.alg, bytes)
    }

    /// The digest of `r`'s bytes, computed once per node (selection may have computed it already).
    fn node_digest(&self, r: &Region) -> String {
        let (d, n) = hash::region_digest_counted(self.alg, r);
        self.hashed.fetch_add(n, Ordering::Relaxed);
        d
    }

    fn skip(&self, path: &str, policy: Policy, size: u64) {
        if let Ok(mut s) = self.skipped.lock() {
            s.push(Skipped {
                path: path.to_string(),
                policy,
                size,
            });
        }
    }

    /// Compares `r`'s bytes with the baseline node's (block digests checked in parallel when present). What
    /// was hashed to decide is returned with a difference, so a finding does not hash the bytes again.
    ///
    /// A node whose children tile it exactly as the baseline's children tile the baseline's node (same
    /// number, sizes and relative offsets, in the node's own buffer, every baseline child with a digest) is
    /// decided by its children: its bytes are the concatenation of theirs, so it is equal exactly when each
    /// of them is. Deciding so hashes every byte once however deep the tree is, where hashing the node and
    /// then, when it differs, each level below it again would hash the same bytes once per level. A digest
    /// the node already has (selection computed it) decides at once.
    fn equal(&self, n: &Node, r: &Region) -> Sameness {
        if n.size != r.size && n.blocks.is_empty() {
            return Sameness::Differs(Hashed::default());
        }
        if let Some(d) = hash::remembered(self.alg, r) {
            return if n.size == r.size && n.digest.as_deref() == Some(d) {
                Sameness::Equal
            } else {
                Sameness::Differs(Hashed {
                    digest: Some(d.to_string()),
                    blocks: None,
                })
            };
        }
        if n.size == r.size && tiles(n, r) {
            let all = n
                .children
                .par_iter()
                .zip(r.children.par_iter())
                .all(|(nc, rc)| matches!(self.equal(nc, rc), Sameness::Equal));
            return if all {
                Sameness::Equal
            } else {
                Sameness::Differs(Hashed::default())
            };
        }
        // What the node's bytes would be checked against, as a key of the run's verified bytes.
        let key = match (&n.digest, n.blocks.is_empty()) {
            _ if self.known.is_none() || n.size != r.size => None,
            _ if r.bytes().len() < hash::known::MIN_BYTES => None,
            (_, false) => Some(hash::KnownKey::blocks(self.alg, self.block, &n.blocks)),
            (Some(d), true) => Some(hash::KnownKey::Digest(self.alg, d.clone())),
            (None, true) => None,
        };
        let known = self.known.zip(key);
        if let Some((k, key)) = &known {
            if k.same(key, r.bytes()) == Some(true) {
                if let hash::KnownKey::Digest(_, d) = key {
                    r.remember_digest(self.alg as u8, d.clone());
                }
                return Sameness::Equal;
            }
        }
        if !n.blocks.is_empty() {
            let changed = self.changed_blocks(n, r);
            return if changed.is_empty() && n.size == r.size {
                if let Some((k, key)) = known {
                    k.offer(key, r.bytes());
                }
                Sameness::Equal
            } else {
                Sameness::Differs(Hashed {
                    digest: None,
                    blocks: Some(changed),
                })
            };
        }
        let actual = self.node_digest(r);
        if n.digest.as_deref() == Some(actual.as_str()) {
            if let Some((k, key)) = known {
                k.offer(key, r.bytes());
            }
            Sameness::Equal
        } else {
            Sameness::Differs(Hashed {
                digest: Some(actual),
                blocks: None,
            })
        }
    }
}

impl Cx<'_> {
    /// The blocks of `r` that differ from `n`'s block digests, hashed once per node and comparison.
    fn changed_blocks(&self, n: &Node, r: &Region) -> Vec<(u64, u64)> {
        let key = (r as *const Region as usize, n as *const Node as usize);
        if let Ok(m) = self.blocks.lock() {
            if let Some(v) = m
                .get(&key)
                .filter(|v| v.offset == r.offset && v.size == r.size)
            {
                return v.changed.clone();
            }
        }
        self.hashed.fetch_add(r.size, Ordering::Relaxed);
        let changed = hash::changed_blocks(self.alg, r.bytes(), self.block, &n.blocks);
        if let Ok(mut m) = self.blocks.lock() {
            m.insert(
                key,
                BlocksVerdict {
                    offset: r.offset,
                    size: r.size,
                    changed: changed.clone(),
                },
            );
        }
        changed
    }
}

/// Whether `r`'s children tile `r` as `n`'s children tile `n` (see [`Cx::equal`]): the same number of
/// children, each of the same size at the same offset relative to its parent, all in the parent's own
/// buffer (the baseline's: same space and base), covering it without gap or overlap, and every baseline child
/// with a digest. Then `r`'s bytes equal `n`'s exactly when each child's bytes equal its baseline's.
fn tiles(n: &Node, r: &Region) -> bool {
    if n.children.is_empty() || n.children.len() != r.children.len() || n.size != r.size {
        return false;
    }
    let (mut at_n, mut at_r) = (n.offset, r.offset);
    for (nc, rc) in n.children.iter().zip(&r.children) {
        let same_buffer = nc.space == n.space
            && nc.base == n.base
            && rc.space == r.space
            && rc.base == r.base
            && Arc::ptr_eq(&rc.data, &r.data);
        if !same_buffer
            || nc.digest.is_none()
            || nc.size != rc.size
            || nc.offset != at_n
            || rc.offset != at_r
        {
            return false;
        }
        let (Some(next_n), Some(next_r)) = (at_n.checked_add(nc.size), at_r.checked_add(rc.size))
        else {
            return false;
        };
        (at_n, at_r) = (next_n, next_r);
    }
    n.offset.checked_add(n.size) == Some(at_n) && r.offset.checked_add(r.size) == Some(at_r)
}

/// The outcome of [`Cx::equal`].
enum Sameness {
    Equal,
    Differs(Hashed),
}

/// What deciding a difference already computed.
#[derive(Default)]
struct Hashed {
    digest: Option<String>,
    blocks: Option<Vec<(u64, u64)>>,
}

/// Compares `image` (parsed with the manifest's layout and format) against the verified baseline.
/// Compressed nodes whose digests differ are expanded in place, so the caller can run further checks on
/// what was parsed.
pub fn compare(m: &VerifiedManifest, image: &mut Region) -> ScanResult {
    compare_with(m, image, None)
}

/// [`compare`], deciding nodes whose bytes equal bytes the run verified before ([`hash::KnownBytes`]) by
/// that comparison instead of hashing them, and offering the bytes it verifies by hashing to `known`.
pub fn compare_with(
    m: &VerifiedManifest,
    image: &mut Region,
    known: Option<&hash::KnownBytes>,
) -> ScanResult {
    let man = m.manifest();
    let cx = Cx::new(m, known);
    let mut findings = Vec::new();
    if image.size != man.image.size {
        let mut f = Finding::on(
            Code::SizeMismatch,
            image,
            format!(
                "image is {} bytes, the baseline's is {} bytes ({}{} bytes)",
                image.size,
                man.image.size,
                if image.size > man.image.size {
                    "+"
                } else {
                    "-"
                },
                image.size.abs_diff(man.image.size)
            ),
        );
        f.expected_size = Some(man.image.size);
        f.actual_size = Some(image.size);
        findings.push(f);
    }
    findings.extend(diff(&cx, &man.root, image));
    let mut skipped = cx.skipped.into_inner().unwrap_or_default();
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    // Keep only the outermost skipped regions.
    let mut outer: Vec<Skipped> = Vec::new();
    for s in skipped {
        let inside = outer
            .iter()
            .any(|o| o.path.is_empty() || s.path.starts_with(&format!("{}/", o.path)));
        if !inside {
            outer.push(s);
        }
    }
    let skipped = outer;
    ScanResult {
        findings,
        skipped,
        anchors: Vec::new(),
        uncovered: Vec::new(),
        stats: ScanStats {
            bytes_hashed: cx.hashed.load(Ordering::Relaxed),
            nodes_compared: cx.compared.load(Ordering::Relaxed),
            nodes_expanded: cx.expanded.load(Ordering::Relaxed),
        },
    }
}

/// Which code reports a change of `kind`.
pub fn code_for(kind: RegionKind, what: Change) -> Code {
    use Change::*;
    if kind.is_module() {
        return match what {
            Modified => Code::ModuleModified,
            Added => Code::ModuleAdded,
            Removed => Code::ModuleRemoved,
            Moved => Code::ModuleMoved,
        };
    }
    if kind.is_fs_entry() {
        return match what {
            Modified => Code::FileModified,
            Added => Code::FileAdded,
            Removed => Code::FileRemoved,
            Moved => Code::RegionMoved,
        };
    }
    if matches!(kind, RegionKind::Variable | RegionKind::EnvVariable) && what != Moved {
        return Code::VariableModified;
    }
    match what {
        Modified => Code::RegionModified,
        Added => Code::RegionAdded,
        Removed => Code::RegionRemoved,
        Moved => Code::RegionMoved,
    }
}

/// What happened to a region between a baseline and an image (or two baselines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Modified,
    Added,
    Removed,
    Moved,
}

impl Change {
    /// The change a comparison code reports (`None` for codes that are not changes, e.g. parser notes).
    pub fn of(code: Code) -> Option<Change> {
        Some(match code {
            Code::RegionModified
            | Code::ModuleModified
            | Code::FileModified
            | Code::VariableModified
            | Code::SizeMismatch
            | Code::NotBlank => Change::Modified,
            Code::RegionAdded | Code::ModuleAdded | Code::FileAdded => Change::Added,
            Code::RegionRemoved | Code::ModuleRemoved | Code::FileRemoved => Change::Removed,
            Code::RegionMoved | Code::ModuleMoved => Change::Moved,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Change::Modified => "modified",
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Moved => "moved",
        }
    }
}

/// Differences between two baselines (both without their images), by identity path: what `diff` reports
/// for two manifests. Codes are those a comparison of an image would give.
pub fn manifests(old: &crate::manifest::Manifest, new: &crate::manifest::Manifest) -> Vec<Finding> {
    let mut out = Vec::new();
    if new.image.size != old.image.size {
        let mut f = Finding::general(
            Code::SizeMismatch,
            format!("image size {} -> {} bytes", old.image.size, new.image.size),
        );
        f.expected_size = Some(old.image.size);
        f.actual_size = Some(new.image.size);
        out.push(f);
    }
    node_diff(&old.root, &new.root, &mut out);
    out
}

fn node_diff(old: &Node, new: &Node, out: &mut Vec<Finding>) {
    if matches!(old.policy, Policy::Ignore | Policy::Mutable) && old.children.is_empty() {
        return;
    }
    if old.digest.is_some() && old.digest == new.digest && old.size == new.size {
        return;
    }
    let before = out.len();
    let olds: HashMap<&str, &Node> = old.children.iter().map(|c| (c.path.as_str(), c)).collect();
    let news: HashMap<&str, &Node> = new.children.iter().map(|c| (c.path.as_str(), c)).collect();
    for c in &new.children {
        match olds.get(c.path.as_str()) {
            Some(o) => node_diff(o, c, out),
            None => {
                let mut f = Finding::on(
                    code_for(c.kind, Change::Added),
                    c,
                    "present in NEW, not in OLD",
                );
                f.expected_digest = None;
                f.actual_digest = c.digest.clone();
                f.expected_size = None;
                f.actual_size = Some(c.size);
                out.push(f);
            }
        }
    }
    for c in &old.children {
        if !news.contains_key(c.path.as_str()) {
            out.push(Finding::on(
                code_for(c.kind, Change::Removed),
                c,
                "present in OLD, missing from NEW",
            ));
        }
    }
    if out.len() == before && old.policy == Policy::Static {
        let mut f = Finding::on(code_for(old.kind, Change::Modified), new, "content differs");
        f.expected_digest = old.digest.clone();
        f.actual_digest = new.digest.clone();
        f.expected_size = Some(old.size);
        out.push(f);
    }
}

/// Codes that a module folds into its own `module-modified`.
fn collapsible(c: Code) -> bool {
    matches!(
        c,
        Code::RegionModified
            | Code::RegionAdded
            | Code::RegionRemoved
            | Code::RegionMoved
            | Code::SizeMismatch
    )
}

fn diff(cx: &Cx, n: &Node, r: &mut Region) -> Vec<Finding> {
    cx.compared.fetch_add(1, Ordering::Relaxed);
    let mut differs = match n.policy {
        Policy::Ignore => {
            cx.skip(&n.path, Policy::Ignore, r.size);
            return Vec::new();
        }
        Policy::Blank => return blank_check(cx, r),
        Policy::Static if n.all_static() => match cx.equal(n, r) {
            Sameness::Equal => return Vec::new(),
            Sameness::Differs(h) => Some(h),
        },
        Policy::Mutable => {
            cx.skip(&n.path, Policy::Mutable, r.size);
            None
        }
        // Static with mutable parts: its children decide.
        Policy::Static => None,
    };
    // Descend: the node differs, or holds mutable parts.
    if r.is_lazy() && !n.children.is_empty() && r.expand() {
        cx.expanded.fetch_add(1, Ordering::Relaxed);
    }
    let mut findings = new_notes(n, r);
    findings.extend(svn_check(n, r));
    let child_findings = diff_children(cx, n, r, None);
    let own_static = n.policy == Policy::Static;
    let (headers, structural): (Vec<Finding>, Vec<Finding>) = child_findings
        .into_iter()
        .partition(|f| f.kind == Some(RegionKind::Header) && collapsible(f.code));
    let mut below = if structural.is_empty() {
        headers
    } else {
        structural
    };
    if own_static && below.is_empty() {
        if let Some(h) = differs.take() {
            // Nothing below explains the change (or the node has no children): report the node itself.
            below.push(modified(cx, n, r, h));
        }
    }
    // Modules and (pinned) variables report the changes of their parts as one finding on themselves.
    if r.kind.is_module() || matches!(r.kind, RegionKind::Variable | RegionKind::EnvVariable) {
        let own_code = code_for(r.kind, Change::Modified);
        let (fold, keep): (Vec<Finding>, Vec<Finding>) = below
            .into_iter()
            .partition(|f| collapsible(f.code) && f.path != r.path);
        below = keep;
        let own_modified = below
            .iter()
            .position(|f| f.path == r.path && f.code == own_code);
        if !fold.is_empty() {
            let mut f = match own_modified {
                Some(i) => below.remove(i),
                None => modified(cx, n, r, differs.take().unwrap_or_default()),
            };
            f.changed = fold.iter().map(|c| c.path.clone()).collect();
            f.ranges = fold.iter().flat_map(|c| c.ranges.iter().cloned()).collect();
            f.message = format!(
                "{} changed in {}; {}",
                if r.kind.is_module() {
                    "module"
                } else {
                    "variable"
                },
                f.changed
                    .iter()
                    .map(|p| p.strip_prefix(&r.path).unwrap_or(p).trim_start_matches('/'))
                    .collect::<Vec<_>>()
                    .join(", "),
                f.message
            );
            below.insert(0, f);
        }
    }
    findings.extend(below);
    findings
}

/// A `*-modified` finding for `r` with both digests and changed ranges (from the block digests when the
/// baseline has them).
fn modified(cx: &Cx, n: &Node, r: &Region, hashed: Hashed) -> Finding {
    let actual = hashed.digest.unwrap_or_else(|| cx.node_digest(r));
    let ranges: Vec<(u64, u64)> = match hashed.blocks {
        Some(b) => b,
        None if !n.blocks.is_empty() => cx.changed_blocks(n, r),
        None => vec![(0, r.size.max(n.size))],
    };
    let code = code_for(r.kind, Change::Modified);
    let mut f = Finding::on(code, r, String::new());
    f.expected_digest = n.digest.clone();
    f.actual_digest = Some(actual);
    f.expected_size = Some(n.size);
    f.actual_size = Some(r.size);
    f.ranges = ranges
        .into_iter()
        .map(|(o, l)| ByteRange {
            offset: r.offset.saturating_add(o),
            length: l,
            space: r.space,
            base: r.base.clone(),
        })
        .collect();
    let size_note = if n.size != r.size {
        format!(" (size {} -> {} bytes)", n.size, r.size)
    } else {
        String::new()
    };
    f.message = format!("content differs from the baseline{size_note}");
    if let (Some(old), Some(new)) = (
        n.attrs.get("value").and_then(|v| v.as_str()),
        r.attr_str("value"),
    ) {
        f.message = format!("value `{old}` -> `{new}`");
    }
    f
}

/// The security version a dump node carries against its baseline's (the same attribute: `svn`, `km-svn`,
/// `bpm-svn` or `lowest-supported-version`, which a CoRIM carries as the reference value's svn). A static
/// node's svn is exact: a lower one is `svn-rollback`, a higher one `svn-mismatch`. A per-machine node's is
/// a minimum (it may be updated in the field; the CoRIM export writes it as `#6.553`): only a lower one is
/// a finding. A node whose bytes equal the baseline's never gets here.
fn svn_check(n: &Node, r: &Region) -> Option<Finding> {
    let (attr, want) = crate::manifest::corim::SVN_ATTRS
        .iter()
        .find_map(|k| n.attrs.get(k).and_then(|v| v.as_u64()).map(|v| (*k, v)))?;
    let got = r.attrs.get(attr).and_then(|v| v.as_u64())?;
    let minimum = n.policy == Policy::Mutable;
    let (code, how) = if got < want {
        (Code::SvnRollback, "below")
    } else if got > want && !minimum {
        (Code::SvnMismatch, "above the exact")
    } else {
        return None;
    };
    let mut f = Finding::on(
        code,
        r,
        format!(
            "{attr} {got} is {how} {} {want} of the baseline",
            if minimum { "minimum" } else { "value" }
        ),
    );
    f.expected_digest = n.digest.clone();
    Some(f)
}

fn blank_check(cx: &Cx, r: &Region) -> Vec<Finding> {
    let bytes = r.bytes();
    let Some(first) = crate::region::first_not(bytes, cx.blank) else {
        return Vec::new();
    };
    let last = bytes.iter().rposition(|&b| b != cx.blank).unwrap_or(first);
    let count = bytes.iter().filter(|&&b| b != cx.blank).count();
    let mut f = Finding::on(
        Code::NotBlank,
        r,
        format!(
            "{count} byte(s) are not {:#04x} in a region that must be blank",
            cx.blank
        ),
    );
    f.actual_digest = Some(cx.node_digest(r));
    f.ranges = vec![ByteRange {
        offset: r.offset.saturating_add(first as u64),
        length: (last - first + 1) as u64,
        space: r.space,
        base: r.base.clone(),
    }];
    vec![f]
}

/// Parser notes on `r` that the baseline did not already have.
fn new_notes(n: &Node, r: &Region) -> Vec<Finding> {
    Finding::from_notes(r, &r.notes, &|c| n.notes.iter().any(|a| a == c.as_str())).collect()
}

/// Compares `r`'s children with `n`'s by identity path. With a `span` (absolute image offsets), only
/// `r`'s children inside it take part: the rest belongs to no baseline (see [`compare_parts`]).
fn diff_children(cx: &Cx, n: &Node, r: &mut Region, span: Option<(u64, u64)>) -> Vec<Finding> {
    let mutable_parent = n.policy == Policy::Mutable;
    let inside = |c: &Region| match span {
        None => true,
        Some((start, end)) => {
            c.space != crate::region::Space::Image
                || (c.offset >= start && c.offset.saturating_add(c.size) <= end)
        }
    };
    let by_path: HashMap<&str, usize> = n
        .children
        .iter()
        .enumerate()
        .map(|(i, c)| (c.path.as_str(), i))
        .collect();
    let taking: Vec<bool> = r.children.iter().map(inside).collect();
    let pairs: Vec<Option<usize>> = r
        .children
        .iter()
        .zip(&taking)
        .map(|(c, t)| {
            if *t {
                by_path.get(c.path.as_str()).copied()
            } else {
                None
            }
        })
        .collect();
    let matched: HashSet<usize> = pairs.iter().flatten().copied().collect();
    // Order of matched children: those outside a longest increasing run moved. Blank nodes (alignment
    // padding, free space) have no identity of their own: their occurrence names (`padding#3`) shift
    // whenever a module is inserted or removed before them, so they must not decide what moved.
    let order: Vec<usize> = pairs
        .iter()
        .flatten()
        .copied()
        .filter(|&i| n.children[i].policy != Policy::Blank)
        .collect();
    let stay: HashSet<usize> = longest_increasing(&order).into_iter().collect();

    let mut per_child: Vec<Vec<Finding>> = r
        .children
        .par_iter_mut()
        .zip(pairs.par_iter())
        .zip(taking.par_iter())
        .map(|((rc, p), t)| match p {
            None if !*t => Vec::new(),
            Some(i) => {
                let nc = &n.children[*i];
                let mut out = diff(cx, nc, rc);
                if !stay.contains(i)
                    && nc.all_static()
                    && nc.policy == Policy::Static
                    && out.is_empty()
                {
                    let mut f = Finding::on(
                        code_for(rc.kind, Change::Moved),
                        rc,
                        format!(
                            "same content, moved from offset {:#x} to {:#x}",
                            nc.offset, rc.offset
                        ),
                    );
                    f.expected_digest = nc.digest.clone();
                    out.push(f);
                } else if matches!(rc.kind, RegionKind::FlashRegion | RegionKind::Partition)
                    && nc.offset != rc.offset
                    && out.is_empty()
                {
                    let mut f = Finding::on(
                        Code::RegionMoved,
                        rc,
                        format!(
                            "same content, moved from offset {:#x} to {:#x}",
                            nc.offset, rc.offset
                        ),
                    );
                    f.expected_digest = nc.digest.clone();
                    out.push(f);
                }
                out
            }
            // A pinned variable that appears in an environment the baseline had is a change.
            None => {
                let pinned = rc.attrs.get("pinned").and_then(|v| v.as_bool()) == Some(true);
                added(
                    cx,
                    rc,
                    mutable_parent && !(pinned && n.kind == RegionKind::Environment),
                )
            }
        })
        .collect();
    let mut out: Vec<Finding> = per_child.drain(..).flatten().collect();
    for (i, nc) in n.children.iter().enumerate() {
        if matched.contains(&i) {
            continue;
        }
        let counts = match nc.policy {
            Policy::Static => true,
            Policy::Mutable | Policy::Ignore | Policy::Blank => false,
        };
        if counts {
            out.push(Finding::on(
                code_for(nc.kind, Change::Removed),
                nc,
                "present in the baseline, missing from the image",
            ));
        }
    }
    out
}

fn added(cx: &Cx, r: &Region, mutable_parent: bool) -> Vec<Finding> {
    // New blank space (e.g. a volume's free space that changed size) and additions inside per-machine data
    // are not changes; their contents still must be blank where blank is the rule.
    if r.policy == Policy::Blank || r.kind == RegionKind::FreeSpace {
        return blank_check(cx, r);
    }
    if mutable_parent {
        return Vec::new();
    }
    let mut f = Finding::on(
        code_for(r.kind, Change::Added),
        r,
        "present in the image, not in the baseline",
    );
    f.actual_digest = Some(cx.node_digest(r));
    f.actual_size = Some(r.size);
    f.ranges = vec![ByteRange {
        offset: r.offset,
        length: r.size,
        space: r.space,
        base: r.base.clone(),
    }];
    let mut out = vec![f];
    out.extend(crate::region::note_findings(r));
    out
}

/// Indices (values) of one longest strictly increasing subsequence of `seq`.
fn longest_increasing(seq: &[usize]) -> Vec<usize> {
    // Patience sorting, O(n log n).
    let mut tails: Vec<usize> = Vec::new(); // index into seq
    let mut prev: Vec<Option<usize>> = vec![None; seq.len()];
    for (i, &v) in seq.iter().enumerate() {
        let pos = tails.partition_point(|&t| seq[t] < v);
        if pos > 0 {
            prev[i] = Some(tails[pos - 1]);
        }
        if pos == tails.len() {
            tails.push(i);
        } else {
            tails[pos] = i;
        }
    }
    let mut out = Vec::with_capacity(tails.len());
    let mut cur = tails.last().copied();
    while let Some(i) = cur {
        out.push(seq[i]);
        cur = prev[i];
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Data;
    use crate::manifest::{BaselineOptions, Manifest};
    use std::sync::Arc;

    /// An image of named 4 KiB modules (kind `file`) laid out in the given order, then blank space.
    fn image(modules: &[(&str, u8)]) -> Region {
        let mut bytes = Vec::new();
        for (_, fill) in modules {
            bytes.extend(std::iter::repeat_n(*fill, 4096));
        }
        bytes.extend(std::iter::repeat_n(0xFF, 8 * 4096 - bytes.len()));
        let data = Arc::new(Data::Owned(bytes));
        let mut root = Region::new(RegionKind::Image, "", &data, 0, data.len() as u64);
        for (i, (name, _)) in modules.iter().enumerate() {
            root.children.push(Region::new(
                RegionKind::File,
                format!("file[{name}]"),
                &data,
                i as u64 * 4096,
                4096,
            ));
        }
        crate::region::fill_gaps(
            &data,
            0,
            data.len() as u64,
            &mut root.children,
            0xFF,
            RegionKind::Padding,
        );
        crate::region::finalize(&mut root);
        root
    }

    fn run(golden: &[(&str, u8)], dump: &[(&str, u8)]) -> Vec<(Code, String)> {
        let m = Manifest::from_tree(&image(golden), BaselineOptions::default())
            .unwrap()
            .accept_unsigned_insecure();
        let mut f: Vec<_> = compare(&m, &mut image(dump))
            .findings
            .into_iter()
            .filter(|f| f.code != Code::SizeMismatch)
            .map(|f| (f.code, f.path))
            .collect();
        f.sort();
        f
    }

    /// Issue 24: a dump node's svn against its baseline's. Static: exact (lower `svn-rollback`, higher
    /// `svn-mismatch`); per-machine: a minimum (only lower is a finding).
    #[test]
    fn a_lower_svn_is_a_rollback_and_a_per_machine_svn_is_a_minimum() {
        let with_svn = |fill: u8, svn: u64| {
            let mut r = image(&[("a", fill)]);
            let a = r.children.iter_mut().find(|c| c.path == "file[a]").unwrap();
            a.attrs.insert("svn".into(), svn.into());
            r
        };
        let findings = |mutable: bool, fill: u8, svn: u64| -> Vec<Code> {
            let mut m = Manifest::from_tree(&with_svn(1, 5), BaselineOptions::default()).unwrap();
            if mutable {
                let a = m
                    .root
                    .children
                    .iter_mut()
                    .find(|c| c.path == "file[a]")
                    .unwrap();
                a.policy = Policy::Mutable;
            }
            let m = m.accept_unsigned_insecure();
            let mut c: Vec<Code> = compare(&m, &mut with_svn(fill, svn))
                .findings
                .into_iter()
                .map(|f| f.code)
                .filter(|c| matches!(c, Code::SvnRollback | Code::SvnMismatch))
                .collect();
            c.sort();
            c
        };
        assert_eq!(findings(false, 1, 5), vec![]);
        assert_eq!(findings(false, 2, 4), vec![Code::SvnRollback]);
        assert_eq!(findings(false, 2, 6), vec![Code::SvnMismatch]);
        assert_eq!(findings(false, 2, 5), vec![]);
        assert_eq!(findings(true, 2, 4), vec![Code::SvnRollback]);
        assert_eq!(findings(true, 2, 6), vec![]);
    }

    /// Issue 20: a tree is hashed once, clean or not. The root is tiled by its modules and padding, so a
    /// clean image hashes each module once (and checks the padding blank), and an image with one changed
    /// module does the same (not the root and then every module again); the finding still carries the
    /// module's true digest.
    #[test]
    fn a_tiled_tree_is_hashed_once_and_findings_keep_true_digests() {
        let golden = [("a", 1u8), ("b", 2), ("c", 3)];
        let m = Manifest::from_tree(&image(&golden), BaselineOptions::default())
            .unwrap()
            .accept_unsigned_insecure();
        let mut clean = image(&golden);
        let r = compare(&m, &mut clean);
        assert!(r.findings.is_empty());
        // Clean: the root's digest equals the baseline's, once over every byte.
        assert_eq!(r.stats.bytes_hashed, clean.size);
        // Changed: the root is decided by its tiles, each module hashed once (the padding between them is
        // checked blank, not hashed), never the root and then its modules again.
        let modules = 3 * 4096;
        let mut dump = image(&[("a", 1u8), ("b", 9), ("c", 3)]);
        let r = compare(&m, &mut dump);
        let codes: Vec<_> = r
            .findings
            .iter()
            .map(|f| (f.code, f.path.as_str()))
            .collect();
        assert_eq!(codes, vec![(Code::ModuleModified, "file[b]")]);
        let b = dump.children.iter().find(|c| c.path == "file[b]").unwrap();
        assert_eq!(
            r.findings[0].actual_digest.as_deref(),
            Some(hash::digest(Alg::Sha256, b.bytes()).as_str())
        );
        assert_eq!(r.stats.bytes_hashed, modules);
        // Not tiled (a module the baseline lacks): decided by the root's own digest, as before.
        let mut other = image(&[("a", 1u8), ("b", 2), ("c", 3), ("d", 4)]);
        let r = compare(&m, &mut other);
        assert!(r
            .findings
            .iter()
            .any(|f| f.code == Code::ModuleAdded && f.path == "file[d]"));
    }

    #[test]
    fn an_inserted_module_is_one_added_finding() {
        let golden = [("A", 1), ("B", 2), ("C", 3)];
        let dump = [("A", 1), ("X", 9), ("B", 2), ("C", 3)];
        assert_eq!(
            run(&golden, &dump),
            vec![(Code::ModuleAdded, "file[X]".to_string())]
        );
        assert_eq!(
            run(&dump, &golden),
            vec![(Code::ModuleRemoved, "file[X]".to_string())]
        );
    }

    #[test]
    fn a_reordered_module_is_one_moved_finding() {
        let golden = [("A", 1), ("B", 2), ("C", 3)];
        let dump = [("A", 1), ("C", 3), ("B", 2)];
        let f = run(&golden, &dump);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].0, Code::ModuleMoved);
    }

    #[test]
    fn a_modified_module_is_named() {
        let golden = [("A", 1), ("B", 2), ("C", 3)];
        let dump = [("A", 1), ("B", 7), ("C", 3)];
        assert_eq!(
            run(&golden, &dump),
            vec![(Code::ModuleModified, "file[B]".to_string())]
        );
    }

    #[test]
    fn lis_keeps_order_under_insertion() {
        assert_eq!(longest_increasing(&[0, 1, 2, 3]), vec![0, 1, 2, 3]);
        // 3 moved to the front.
        assert_eq!(longest_increasing(&[3, 0, 1, 2]), vec![0, 1, 2]);
        assert!(longest_increasing(&[]).is_empty());
    }
}
