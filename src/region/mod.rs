//! The region tree: what an image is made of.
//!
//! Every node has a **stable identity path** built from names, never from offsets (`bios/fv[GUID]/
//! file[GUID:DxeCore]/pe32`), so that inserting one module is one `added` finding rather than every later
//! module "moved". Siblings with the same name get an occurrence suffix (`pad#2`, `file[GUID]#2`).
//! Every byte of a container belongs to one of its children: parsers return the children they understand
//! and [`fill_gaps`] turns what is left into `padding` (or `free-space`) nodes, which are hashed too.

use std::collections::HashMap;
use std::sync::Arc;

use crate::finding::Finding;
use crate::input::Data;

pub use crate::finding::{AttrKey, Attrs, Note, Policy, RegionKind, Space};

/// What a lazily parsed node carries to parse itself later: the parser and the parse context of its image
/// (limits, depth, and the image's shared decompression budget), so that the limits of one image hold
/// however many nodes are expanded, eagerly during parsing or lazily during a comparison.
pub trait Expander: Send + Sync {
    /// Parses `node` (which was left unparsed): sets its children, and its attributes, notes and evidence.
    fn expand(&self, node: &mut Region) -> Result<(), crate::error::ParseError>;
    /// What is expanded (a format name), for notes.
    fn what(&self) -> &'static str;
}

/// One node of the region tree.
#[derive(Clone)]
pub struct Region {
    pub kind: RegionKind,
    /// Path segment, unique among siblings once [`finalize`] has run.
    pub name: String,
    /// Full identity path, filled by [`finalize`].
    pub path: String,
    pub space: Space,
    /// Path of the node whose decompressed bytes hold this one (when `space` is decompressed).
    pub base: Option<String>,
    /// Offset in `data` (absolute in the image when `space` is image).
    pub offset: u64,
    pub size: u64,
    pub policy: Policy,
    /// Format-specific facts (GUID, type, UI name, PE details, ...), shown by `inspect`.
    pub attrs: Attrs,
    pub notes: Vec<Note>,
    /// What signature and digest checks established about this node's bytes (or byte ranges it names).
    pub evidence: Vec<crate::finding::Evidence>,
    pub children: Vec<Region>,
    /// The buffer the node's bytes live in.
    pub data: Arc<Data>,
    /// Set on nodes whose children were not parsed yet (compressed, scanned lazily): see [`Region::expand`].
    pub expand: Option<Arc<dyn Expander>>,
    /// The digest of the node's bytes once the hash engine computed it (`crate::hash::region_digest`), so
    /// that selection, comparison and reports hash each node at most once.
    pub memo: DigestMemo,
}

/// A digest of a node's bytes, kept on the node by the hash engine. It is bound to what it was computed
/// over (algorithm tag, offset, size, buffer): a node whose range or buffer changed afterwards gets no
/// answer from it, so a stale digest is never believed.
#[derive(Clone, Default)]
pub struct DigestMemo(std::sync::OnceLock<(MemoKey, String)>);

impl std::fmt::Debug for DigestMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "DigestMemo(set)"
        } else {
            "DigestMemo(empty)"
        })
    }
}

/// What a [`DigestMemo`] was computed over.
#[derive(Clone, Copy, PartialEq, Eq)]
struct MemoKey {
    tag: u8,
    offset: u64,
    size: u64,
    buffer: usize,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("space", &self.space)
            .field("offset", &self.offset)
            .field("size", &self.size)
            .field("policy", &self.policy)
            .field("attrs", &self.attrs)
            .field("notes", &self.notes)
            .field("evidence", &self.evidence)
            .field("children", &self.children)
            .finish()
    }
}

impl Region {
    /// A node over `size` bytes at `offset` of `data`.
    pub fn new(
        kind: RegionKind,
        name: impl Into<String>,
        data: &Arc<Data>,
        offset: u64,
        size: u64,
    ) -> Region {
        Region {
            kind,
            name: name.into(),
            path: String::new(),
            space: Space::Image,
            base: None,
            offset,
            size,
            policy: Policy::Static,
            attrs: Attrs::new(),
            notes: Vec::new(),
            evidence: Vec::new(),
            children: Vec::new(),
            data: Arc::clone(data),
            expand: None,
            memo: DigestMemo::default(),
        }
    }

    fn memo_key(&self, tag: u8) -> MemoKey {
        MemoKey {
            tag,
            offset: self.offset,
            size: self.size,
            buffer: Arc::as_ptr(&self.data) as usize,
        }
    }

    /// The digest the hash engine remembered for the node's current bytes under algorithm `tag`.
    pub fn remembered_digest(&self, tag: u8) -> Option<&str> {
        let key = self.memo_key(tag);
        self.memo
            .0
            .get()
            .filter(|(k, _)| *k == key)
            .map(|(_, d)| d.as_str())
    }

    /// Remembers the digest of the node's current bytes under algorithm `tag` (the first one stays).
    pub fn remember_digest(&self, tag: u8, digest: String) {
        let _ = self.memo.0.set((self.memo_key(tag), digest));
    }

    /// The digest of the node's current bytes under algorithm `tag`: the remembered one, or `compute`'s,
    /// which is then remembered. `compute` runs at most once per node: a second thread asking while the
    /// first computes waits for its answer rather than hashing the same bytes again. The flag says whether
    /// this call computed it. A memo that holds another key (another algorithm, or a range changed after
    /// hashing) is never believed: the digest is computed and not remembered.
    pub fn digest_once(&self, tag: u8, compute: impl FnOnce() -> String) -> (String, bool) {
        let key = self.memo_key(tag);
        let mut compute = Some(compute);
        let mut computed = false;
        let (k, d) = self.memo.0.get_or_init(|| {
            computed = true;
            (key, compute.take().map(|f| f()).unwrap_or_default())
        });
        if *k == key {
            return (d.clone(), computed);
        }
        (compute.map(|f| f()).unwrap_or_default(), true)
    }

    pub fn with_policy(mut self, policy: Policy) -> Region {
        self.policy = policy;
        self
    }

    pub fn with_attr(
        mut self,
        key: impl Into<AttrKey>,
        value: impl Into<serde_json::Value>,
    ) -> Region {
        self.attrs.insert(key.into(), value.into());
        self
    }

    /// The node with one more piece of evidence.
    pub fn with_evidence(mut self, e: crate::finding::Evidence) -> Region {
        self.evidence.push(e);
        self
    }

    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).and_then(|v| v.as_str())
    }

    /// The node's bytes. Parsers only create nodes inside their buffer; a node that does not fit (which
    /// would be a parser bug) yields an empty slice rather than a panic.
    pub fn bytes(&self) -> &[u8] {
        let start = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let len = usize::try_from(self.size).unwrap_or(usize::MAX);
        start
            .checked_add(len)
            .and_then(|end| self.data.get(start..end))
            .unwrap_or(&[])
    }

    /// Whether the node's children are still to be parsed.
    pub fn is_lazy(&self) -> bool {
        self.expand.is_some()
    }

    /// Parses the children of a lazily parsed node in place, with the parse context of its image, and
    /// gives them paths under it. A failure becomes a note on the node. Returns whether anything was
    /// expanded.
    pub fn expand(&mut self) -> bool {
        let Some(x) = self.expand.take() else {
            return false;
        };
        match x.expand(self) {
            Ok(()) => finalize(self),
            Err(e) => self.notes.push(Note::new(
                e.code(),
                format!("{}: {e}", x.what()),
                Some(e.offset()),
            )),
        }
        true
    }

    /// End offset (exclusive), saturating.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.size)
    }

    /// Visits this node and all descendants, depth first, parents before children.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Region)) {
        f(self);
        for c in &self.children {
            c.walk(f);
        }
    }

    pub fn walk_mut(&mut self, f: &mut dyn FnMut(&mut Region)) {
        f(self);
        for c in &mut self.children {
            c.walk_mut(f);
        }
    }

    /// Number of nodes in this subtree.
    pub fn count(&self) -> usize {
        1 + self.children.iter().map(Region::count).sum::<usize>()
    }

    /// Finds a descendant (or self) by full path.
    pub fn find(&self, path: &str) -> Option<&Region> {
        if self.path == path {
            return Some(self);
        }
        self.children.iter().find_map(|c| {
            let p = c.path.as_str();
            if path == p || (path.starts_with(p) && path.as_bytes().get(p.len()) == Some(&b'/')) {
                c.find(path)
            } else {
                None
            }
        })
    }

    /// True when every byte of the node equals `blank`.
    pub fn is_blank(&self, blank: u8) -> bool {
        first_not(self.bytes(), blank).is_none()
    }
}

impl crate::finding::Located for Region {
    fn path(&self) -> &str {
        &self.path
    }
    fn kind(&self) -> RegionKind {
        self.kind
    }
    fn attrs(&self) -> &Attrs {
        &self.attrs
    }
    fn offset(&self) -> u64 {
        self.offset
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn space(&self) -> Space {
        self.space
    }
    fn base(&self) -> Option<&str> {
        self.base.as_deref()
    }
}

/// Every parser note in a subtree, as findings (for `check`, and for regions a baseline does not have).
pub fn note_findings(r: &Region) -> Vec<Finding> {
    let mut out = Vec::new();
    r.walk(&mut |x| out.extend(Finding::from_notes(x, &x.notes, &|_| false)));
    out
}

/// GUID of the UEFI Volume Top File: the file whose last bytes hold the x86 reset vector, at the top of the
/// boot volume (PI spec, vol. 3). Parsers name it; the part-by-part comparison anchors the volume holding
/// it where the CPU starts (issue 19).
pub const VTF_GUID: &str = "1BA0062E-C779-4582-8566-336AE8F78F09";

/// The attribute a UBI parser gives each volume it reassembled: the volume's name in the UBI volume table
/// (what U-Boot and Linux find the volume by). Its parent is the UBI area. The part-by-part comparison
/// anchors a release package's images in the volumes by this name (issue 21).
pub const UBI_VOLUME_ATTR: &str = "ubi-volume";

/// The offset of the first byte of `b` that is not `v` (erased flash is most of an image, and a byte loop
/// with an early exit does not vectorise).
pub fn first_not(b: &[u8], v: u8) -> Option<usize> {
    // 64 bytes at a time without an early exit inside a block (so the compiler vectorises it), then the
    // byte within the first block that differs.
    const BLOCK: usize = 64;
    let pattern = u64::from_ne_bytes([v; 8]);
    let mut chunks = b.chunks_exact(BLOCK);
    let mut at = 0usize;
    for c in &mut chunks {
        let mut acc = 0u64;
        for w in c.chunks_exact(8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            acc |= u64::from_ne_bytes(word) ^ pattern;
        }
        if acc != 0 {
            return c.iter().position(|&x| x != v).map(|p| at + p);
        }
        at += BLOCK;
    }
    chunks
        .remainder()
        .iter()
        .position(|&x| x != v)
        .map(|p| at + p)
}

/// Joins a parent path and a child name (the root's path is empty).
/// True when the node at path `node` is `target` or one of its ancestors. Names may hold `/` (tar
/// members), so a path is found by descending through the children this holds for, never by splitting.
pub fn leads_to(node: &str, target: &str) -> bool {
    target
        .strip_prefix(node)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        // Exact capacity: `format!` would reserve about twice the length (issue 15: one path per node).
        let mut s = String::with_capacity(parent.len() + 1 + name.len());
        s.push_str(parent);
        s.push('/');
        s.push_str(name);
        s
    }
}

/// Assigns occurrence suffixes to duplicate sibling names and computes full paths and decompressed bases,
/// recursively. Call once on the root after parsing (and on a subtree after lazy expansion, with its
/// parent's path).
pub fn finalize(root: &mut Region) {
    let path = root.path.clone();
    let base = root.base.clone();
    finalize_children(root, &path, base.as_deref());
}

fn finalize_children(node: &mut Region, path: &str, base: Option<&str>) {
    // Children are kept in offset order inside one buffer; decompressed children keep parser order.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let parent_data = Arc::clone(&node.data);
    // The tree lives for the whole run: no spare capacity in its vectors.
    node.children.shrink_to_fit();
    node.notes.shrink_to_fit();
    for child in &mut node.children {
        let n = seen.entry(child.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            let mut s = format!("{}#{}", child.name, n);
            s.shrink_to_fit();
            child.name = s;
        }
        child.path = join(path, &child.name);
        if Arc::ptr_eq(&child.data, &parent_data) {
            child.base = base.map(str::to_string);
            if base.is_some() {
                child.space = Space::Decompressed;
            }
        } else {
            // Child lives in a buffer decompressed from the parent's bytes.
            child.base = Some(path.to_string());
            child.space = Space::Decompressed;
        }
        child.attrs.shrink_to_fit();
        let (p, b) = (child.path.clone(), child.base.clone());
        finalize_children(child, &p, b.as_deref());
    }
}

/// Sorts `children` by offset and inserts padding nodes for every byte of `[start, end)` of `data` that no
/// child covers. Gap nodes whose bytes are all `blank` get the `blank` policy; others stay `static` (and
/// carry a `padding-not-empty` note when `note_non_blank` is set). Overlapping children are left as they are
/// (the parser reports overlaps).
pub fn fill_gaps(
    data: &Arc<Data>,
    start: u64,
    end: u64,
    children: &mut Vec<Region>,
    blank: u8,
    kind: RegionKind,
) {
    children.sort_by_key(|c| (c.offset, c.size));
    // Count the gaps first: the vector is kept for the life of the tree, so it is allocated once at its
    // final size (a volume of many files would otherwise keep twice its children's space).
    let mut gaps = 0usize;
    let mut cursor = start;
    for c in children.iter().filter(|c| Arc::ptr_eq(&c.data, data)) {
        if c.offset > cursor {
            gaps += 1;
        }
        cursor = cursor.max(c.end());
    }
    if cursor < end {
        gaps += 1;
    }
    let mut out = Vec::with_capacity(children.len() + gaps);
    let mut cursor = start;
    for c in children.drain(..) {
        if c.offset > cursor && Arc::ptr_eq(&c.data, data) {
            out.push(gap(data, cursor, c.offset.min(end), blank, kind));
        }
        if Arc::ptr_eq(&c.data, data) {
            cursor = cursor.max(c.end());
        }
        out.push(c);
    }
    if cursor < end {
        out.push(gap(data, cursor, end, blank, kind));
    }
    *children = out;
}

fn gap(data: &Arc<Data>, from: u64, to: u64, blank: u8, kind: RegionKind) -> Region {
    let name = match kind {
        RegionKind::FreeSpace => "free-space",
        _ => "padding",
    };
    let mut r = Region::new(kind, name, data, from, to.saturating_sub(from));
    r.policy = if r.is_blank(blank) {
        Policy::Blank
    } else {
        Policy::Static
    };
    r
}

/// Applies a user policy to every node whose path matches `pattern` (a glob where `*` matches within one
/// path segment and `**` across segments).
pub fn apply_policy(root: &mut Region, pattern: &str, policy: Policy) -> usize {
    let mut n = 0;
    root.walk_mut(&mut |r| {
        if glob_match(pattern, &r.path) {
            r.policy = policy;
            n += 1;
        }
    });
    n
}

/// Minimal path glob: `*` any run of characters except `/`, `**` any run including `/`, `?` one character.
/// Brackets are literal (identity paths use them).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    // Iterative matcher with backtracking points; O(len(p) * len(t)) worst case.
    fn rec(
        p: &[u8],
        t: &[u8],
        memo: &mut HashMap<(usize, usize), bool>,
        i: usize,
        j: usize,
    ) -> bool {
        if let Some(&v) = memo.get(&(i, j)) {
            return v;
        }
        let v = if i == p.len() {
            j == t.len()
        } else if p[i] == b'*' {
            let double = p.get(i + 1) == Some(&b'*');
            let next = if double { i + 2 } else { i + 1 };
            // `**/` may also match nothing at all.
            let skip_slash = double && p.get(next) == Some(&b'/');
            (skip_slash && rec(p, t, memo, next + 1, j))
                || rec(p, t, memo, next, j)
                || (j < t.len() && (double || t[j] != b'/') && rec(p, t, memo, i, j + 1))
        } else if j < t.len() && (p[i] == b'?' && t[j] != b'/' || p[i] == t[j]) {
            rec(p, t, memo, i + 1, j + 1)
        } else {
            false
        };
        memo.insert((i, j), v);
        v
    }
    rec(p, t, &mut HashMap::new(), 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(bytes: Vec<u8>) -> Arc<Data> {
        Arc::new(Data::Owned(bytes))
    }

    #[test]
    fn gaps_cover_every_byte() {
        let mut bytes = vec![0xFFu8; 100];
        bytes[95] = 1;
        let d = data(bytes);
        let mut kids = vec![Region::new(RegionKind::Blob, "b", &d, 10, 20)];
        fill_gaps(&d, 0, 100, &mut kids, 0xFF, RegionKind::Padding);
        let spans: Vec<_> = kids.iter().map(|k| (k.offset, k.size, k.policy)).collect();
        assert_eq!(
            spans,
            vec![
                (0, 10, Policy::Blank),
                (10, 20, Policy::Static),
                (30, 70, Policy::Static)
            ]
        );
    }

    #[test]
    fn duplicate_names_get_occurrence_suffixes() {
        let d = data(vec![0; 10]);
        let mut root = Region::new(RegionKind::Image, "", &d, 0, 10);
        root.children = vec![
            Region::new(RegionKind::Blob, "x", &d, 0, 5),
            Region::new(RegionKind::Blob, "x", &d, 5, 5),
        ];
        finalize(&mut root);
        assert_eq!(root.children[0].path, "x");
        assert_eq!(root.children[1].path, "x#2");
        assert!(root.find("x#2").is_some());
    }

    #[test]
    fn first_not_finds_the_first_other_byte() {
        for len in [0usize, 1, 7, 8, 9, 63, 64, 65, 100, 130, 200] {
            assert_eq!(first_not(&vec![0xFF; len], 0xFF), None);
            for at in 0..len {
                let mut b = vec![0xFF; len];
                b[at] = 0;
                assert_eq!(first_not(&b, 0xFF), Some(at), "len {len} at {at}");
            }
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match(
            "bios/**/file[*:Setup]",
            "bios/fv[A]/fv[B]/file[C:Setup]"
        ));
        assert!(glob_match("nvram", "nvram"));
        assert!(!glob_match("nvram", "nvram/x"));
        assert!(glob_match("nvram/**", "nvram/x/y"));
        assert!(glob_match("**/pe32", "pe32"));
        assert!(!glob_match("a/*", "a/b/c"));
    }
}
