//! The baseline manifest, schema v1 (`schemas/manifest-v1.schema.json`).
//!
//! A manifest is read in two stages, as cargo-deny does with its configuration: bytes → [`Manifest`]
//! (size-capped, unknown fields rejected, every invariant checked by [`Manifest::parse`]) → a
//! [`VerifiedManifest`], the only type comparison code accepts. A `VerifiedManifest` can only be built in
//! this module: by the signature and trust path, or explicitly by
//! [`Manifest::accept_unsigned_insecure`] (the CLI's `--insecure-unsigned`), which every report shows.

mod matching;
pub use matching::{MatchRules, MatchRulesError, MAX_MATCH_STRING};
pub mod corim;
pub mod minisign;
pub mod package;
pub use package::{Anchor, CopyPlace, Part, VendorSignature};
pub mod secure;
pub mod state;
pub mod trust;
pub mod verify;

use std::collections::HashSet;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::formats::Layout;
use crate::hash::{self, Alg, HashedNode};
use crate::region::{self, Attrs, Policy, Region, RegionKind, Space};

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;
/// Manifests larger than this are refused before parsing.
pub const MAX_MANIFEST_SIZE: u64 = 64 << 20;
/// Deepest region tree a manifest holds (the root is level 1). One region level is two JSON levels (the
/// node object and its `children` array) and serde_json reads at most 128, so 60 levels leave room for the
/// manifest object and nested attribute values. `baseline` refuses a deeper tree rather than write a
/// manifest that `sign`, `verify` and `scan` could not read (issue 15).
pub const MAX_REGION_DEPTH: usize = 60;
/// Most nodes a manifest may hold.
pub const MAX_NODES: usize = 2_000_000;

/// Who made the firmware and which build it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub vendor: String,
    pub product: String,
    /// `bios`, `bmc`, `ec`, `me`, ... (lowercase).
    pub component: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
}

/// Facts about the whole image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageInfo {
    pub size: u64,
    pub blank_byte: u8,
    /// SHA-256 of the whole golden image.
    pub sha256: String,
    /// Top-level format (`raw`, `layout`, or a registry name).
    pub format: String,
}

/// Digest parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashParams {
    pub algorithm: Alg,
    pub block_size: u64,
}

/// Path globs that were applied when the baseline was made (kept so audits can see the policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyRules {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mutable: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pinned: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
}

/// One node of the baseline region tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    pub path: String,
    pub kind: RegionKind,
    #[serde(default)]
    pub space: Space,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    pub offset: u64,
    pub size: u64,
    pub policy: Policy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<String>,
    #[serde(default, skip_serializing_if = "Attrs::is_empty")]
    pub attrs: Attrs,
    /// Codes of parser notes present in the golden image (accepted, not reported again by `scan`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Node>,
}

impl crate::finding::Located for Node {
    fn path(&self) -> &str {
        &self.path
    }
    fn kind(&self) -> RegionKind {
        self.kind
    }
    fn attrs(&self) -> &crate::finding::Attrs {
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
    fn baseline_digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
}

impl Node {
    /// True when this node and all its descendants are static or blank: one digest decides them all.
    pub fn all_static(&self) -> bool {
        matches!(self.policy, Policy::Static | Policy::Blank)
            && self.children.iter().all(Node::all_static)
    }

    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Node)) {
        f(self);
        for c in &self.children {
            c.walk(f);
        }
    }

    pub fn count(&self) -> usize {
        1 + self.children.iter().map(Node::count).sum::<usize>()
    }
}

/// A baseline manifest that has passed schema validation (not yet signature verification).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema_version: u32,
    pub product: Product,
    /// Monotonic release counter, for anti-rollback.
    pub sequence: u64,
    /// RFC 3339 UTC.
    pub created: String,
    /// RFC 3339 UTC; absent means no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    pub image: ImageInfo,
    pub hash: HashParams,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    #[serde(default)]
    pub policy: PolicyRules,
    /// Rules `audit` uses to pick this manifest for an image (see `docs/audit.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<MatchRules>,
    /// Parts of the tree anchored by identity, so that an image laid out otherwise (a flash dump of what a
    /// release package holds) is compared part by part (see [`package`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    /// The flash layout the parts' `partition` anchors refer to, from the vendor-signed package (an
    /// OpenBMC kernel FIT's device tree). A dump is laid out by it, never by a layout it declares itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flash_layout: Option<Layout>,
    /// The vendor signatures of the release package the baseline was made from, as verified then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vendor_signatures: Vec<VendorSignature>,
    pub root: Node,
}

/// Inputs of [`Manifest::from_tree`].
#[derive(Debug, Clone)]
pub struct BaselineOptions {
    pub product: Product,
    pub sequence: u64,
    pub alg: Alg,
    pub block_size: u64,
    pub now: SystemTime,
    pub expires: Option<SystemTime>,
    pub layout: Option<Layout>,
    pub rules: PolicyRules,
    pub blank: u8,
}

impl Default for BaselineOptions {
    fn default() -> Self {
        BaselineOptions {
            product: Product {
                vendor: "unknown".into(),
                product: "unknown".into(),
                component: "bios".into(),
                version: "0".into(),
                build_id: None,
            },
            sequence: 1,
            alg: Alg::Sha256,
            block_size: hash::DEFAULT_BLOCK_SIZE,
            now: SystemTime::now(),
            expires: None,
            layout: None,
            rules: PolicyRules::default(),
            blank: 0xFF,
        }
    }
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::Manifest {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// RFC 3339 (UTC, seconds) of a time.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A time that is not RFC 3339.
#[derive(Debug, Clone, thiserror::Error)]
#[error("bad time `{text}`: {error}")]
#[non_exhaustive]
pub struct TimeError {
    pub text: String,
    pub error: humantime::TimestampError,
}

/// Parses an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<SystemTime, TimeError> {
    humantime::parse_rfc3339_weak(s).map_err(|error| TimeError {
        text: s.to_string(),
        error,
    })
}

impl Manifest {
    /// Builds a manifest from a golden image's tree: applies the policy globs, hashes every node.
    pub fn from_tree(tree: &Region, opts: BaselineOptions) -> Result<Manifest, Error> {
        let tree = policy_tree(tree, &opts)?;
        let hashed = hash::hash_tree(&tree, opts.alg, opts.block_size);
        let root = to_node(&tree, Some(&hashed));
        let whole = if opts.alg == Alg::Sha256 {
            hashed.digests.digest.clone()
        } else {
            hash::digest(Alg::Sha256, tree.bytes())
        };
        let format = tree.attr_str("format").unwrap_or("raw").to_string();
        let m = Manifest {
            schema_version: SCHEMA_VERSION,
            product: opts.product,
            sequence: opts.sequence,
            created: rfc3339(opts.now),
            expires: opts.expires.map(rfc3339),
            image: ImageInfo {
                size: tree.size,
                blank_byte: opts.blank,
                sha256: whole,
                format,
            },
            hash: HashParams {
                algorithm: opts.alg,
                block_size: opts.block_size,
            },
            layout: opts.layout,
            policy: opts.rules,
            r#match: None,
            parts: package::parts_of(&tree),
            flash_layout: package::flash_layout_of(&tree),
            vendor_signatures: Vec::new(),
            root,
        };
        m.validate(Path::new("<new manifest>"))?;
        Ok(m)
    }

    /// Reads and validates a manifest file (size-capped before reading).
    pub fn load(path: &Path) -> Result<Manifest, Error> {
        let bytes = crate::input::read_capped(path, MAX_MANIFEST_SIZE)?;
        Manifest::parse(&bytes, path)
    }

    /// Parses and validates manifest bytes; `path` names the file in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Manifest, Error> {
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(bad(path, format!("larger than {MAX_MANIFEST_SIZE} bytes")));
        }
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(path, e.to_string()))?;
        m.validate(path)?;
        Ok(m)
    }

    /// Serializes as pretty JSON with a trailing newline (the bytes that get signed).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Checks every invariant the comparison relies on.
    pub fn validate(&self, path: &Path) -> Result<(), Error> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(bad(
                path,
                format!(
                    "schema_version {} is not supported (this build reads {SCHEMA_VERSION})",
                    self.schema_version
                ),
            ));
        }
        let p = &self.product;
        for (field, v) in [
            ("vendor", &p.vendor),
            ("product", &p.product),
            ("version", &p.version),
        ] {
            if v.is_empty() || v.len() > 256 || v.chars().any(char::is_control) {
                return Err(bad(
                    path,
                    format!("product.{field} must be 1-256 printable characters"),
                ));
            }
        }
        if p.component.is_empty()
            || !p
                .component
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad(
                path,
                "product.component must be lowercase kebab-case (bios, bmc, ...)",
            ));
        }
        parse_time(&self.created).map_err(|e| bad(path, format!("created: {e}")))?;
        if let Some(e) = &self.expires {
            parse_time(e).map_err(|e| bad(path, format!("expires: {e}")))?;
        }
        let bs = self.hash.block_size;
        if !bs.is_power_of_two() || !(4096..=(16 << 20)).contains(&bs) {
            return Err(bad(
                path,
                "hash.block_size must be a power of two from 4096 to 16 MiB",
            ));
        }
        if !is_hex(&self.image.sha256, 64) {
            return Err(bad(path, "image.sha256 must be 64 lowercase hex digits"));
        }
        if self.root.path.is_empty() && self.root.kind != RegionKind::Image {
            return Err(bad(path, "root node must be of kind `image`"));
        }
        if !self.root.path.is_empty() || self.root.size != self.image.size || self.root.offset != 0
        {
            return Err(bad(
                path,
                "root node must have an empty path, offset 0 and the image size",
            ));
        }
        if self.parts.len() > package::MAX_PARTS {
            return Err(bad(path, format!("more than {} parts", package::MAX_PARTS)));
        }
        for p in &self.parts {
            if self.node(&p.path).is_none() {
                return Err(bad(
                    path,
                    format!("part `{}` is not a node of the tree", p.path),
                ));
            }
            match &p.anchor {
                Anchor::Partition { name } => {
                    if name.is_empty() || name.len() > 64 || name.contains('/') {
                        return Err(bad(path, format!("part `{}`: bad partition name", p.path)));
                    }
                }
                // UBI_VOL_NAME_MAX is 127 bytes.
                Anchor::UbiVolume { name, .. } => {
                    if name.is_empty() || name.len() > 127 || name.chars().any(char::is_control) {
                        return Err(bad(path, format!("part `{}`: bad UBI volume name", p.path)));
                    }
                }
                Anchor::Volumes => {}
            }
            if p.copies.len() > package::MAX_COPIES {
                return Err(bad(
                    path,
                    format!(
                        "part `{}`: more than {} copies",
                        p.path,
                        package::MAX_COPIES
                    ),
                ));
            }
            for (i, c) in p.copies.iter().enumerate() {
                if let CopyPlace::Partition(name) = c {
                    if name.is_empty() || name.len() > 64 || name.contains('/') {
                        return Err(bad(
                            path,
                            format!("part `{}`: copy {}: bad partition name", p.path, i + 1),
                        ));
                    }
                }
                if p.copies[..i].contains(c) {
                    return Err(bad(
                        path,
                        format!("part `{}`: copy {} declared twice", p.path, i + 1),
                    ));
                }
            }
        }
        let count = self.root.count();
        if count > MAX_NODES {
            return Err(bad(path, format!("{count} nodes, more than {MAX_NODES}")));
        }
        self.validate_node(&self.root, path)
    }

    fn validate_node(&self, n: &Node, path: &Path) -> Result<(), Error> {
        let hex_len = self.hash.algorithm.hex_len();
        let at = |msg: String| bad(path, format!("node `{}`: {msg}", n.path));
        if let Some(d) = &n.digest {
            if !is_hex(d, hex_len) {
                return Err(at(format!("digest must be {hex_len} lowercase hex digits")));
            }
        } else if n.policy == Policy::Static {
            return Err(at("a static node needs a digest".into()));
        }
        if !n.blocks.is_empty() {
            let want = n.size.div_ceil(self.hash.block_size);
            if n.blocks.len() as u64 != want {
                return Err(at(format!(
                    "has {} block digests, its size needs {want}",
                    n.blocks.len()
                )));
            }
            if let Some(b) = n.blocks.iter().find(|b| !is_hex(b, hex_len)) {
                return Err(at(format!("bad block digest `{b}`")));
            }
        }
        if n.space == Space::Image
            && n.offset
                .checked_add(n.size)
                .is_none_or(|e| e > self.image.size)
        {
            return Err(at("extends past the end of the image".into()));
        }
        let mut names = HashSet::new();
        for c in &n.children {
            if c.name.is_empty() || !names.insert(c.name.as_str()) {
                return Err(at(format!("duplicate or empty child name `{}`", c.name)));
            }
            if c.path != region::join(&n.path, &c.name) {
                return Err(at(format!(
                    "child path `{}` does not match its name",
                    c.path
                )));
            }
            self.validate_node(c, path)?;
        }
        Ok(())
    }

    /// The node at an identity path (empty: the root).
    pub fn node(&self, path: &str) -> Option<&Node> {
        let mut cur = &self.root;
        // Names may hold `/` (tar members): descend by path prefix, not by splitting.
        while cur.path != path {
            cur = cur
                .children
                .iter()
                .find(|c| region::leads_to(&c.path, path))?;
        }
        Some(cur)
    }

    /// Expiry as a time, if any.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires.as_deref().and_then(|e| parse_time(e).ok())
    }

    /// Accepts this manifest **without** any signature check. Only for `--insecure-unsigned`; every report
    /// made with the result says that the baseline was not verified.
    pub fn accept_unsigned_insecure(self) -> VerifiedManifest {
        VerifiedManifest {
            manifest: self,
            trust: Trust::unsigned(),
        }
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Children of mutable (or ignored) nodes inherit that policy unless pinned.
fn inherit_policy(r: &mut Region, parent: Option<Policy>, pinned: &HashSet<String>) {
    // Parsers pin nodes inside per-machine data (e.g. `bootcmd` in a U-Boot environment) with the
    // `pinned` attribute; users pin with `--pin GLOB`.
    let parser_pinned = r.attrs.get("pinned").and_then(|v| v.as_bool()) == Some(true);
    if pinned.contains(&r.path) || (parser_pinned && r.policy == Policy::Static) {
        r.policy = Policy::Static;
    } else if let Some(p @ (Policy::Mutable | Policy::Ignore)) = parent {
        if r.policy != Policy::Ignore {
            r.policy = p;
        }
    }
    let mine = match r.policy {
        Policy::Mutable | Policy::Ignore => Some(r.policy),
        _ => None,
    };
    for c in &mut r.children {
        inherit_policy(c, mine, pinned);
    }
}

/// Levels of a region tree (a leaf root is 1), without recursion.
pub fn region_depth(root: &Region) -> usize {
    let mut max = 0usize;
    let mut stack = vec![(root, 1usize)];
    while let Some((r, d)) = stack.pop() {
        max = max.max(d);
        stack.extend(r.children.iter().map(|c| (c, d.saturating_add(1))));
    }
    max
}

/// `tree` with a baseline's policies applied (`opts.rules` globs, pins, inherited per-machine and ignore
/// policies), refused when deeper than a manifest holds.
fn policy_tree(tree: &Region, opts: &BaselineOptions) -> Result<Region, Error> {
    let mut tree = tree.clone();
    for g in &opts.rules.ignore {
        region::apply_policy(&mut tree, g, Policy::Ignore);
    }
    for g in &opts.rules.mutable {
        region::apply_policy(&mut tree, g, Policy::Mutable);
    }
    let mut pinned = HashSet::new();
    for g in &opts.rules.pinned {
        tree.walk(&mut |r| {
            if region::glob_match(g, &r.path) {
                pinned.insert(r.path.clone());
            }
        });
    }
    inherit_policy(&mut tree, None, &pinned);
    let depth = region_depth(&tree);
    if depth > MAX_REGION_DEPTH {
        return Err(bad(
                Path::new("<baseline>"),
                format!(
                    "the region tree is {depth} levels deep; a manifest holds at most {MAX_REGION_DEPTH} (mark the deep part --ignore or --mutable, or raise the parser's depth limits)"
                ),
            ));
    }
    Ok(tree)
}

/// The node tree a baseline of `tree` would have (the same policies and depth limit as
/// [`Manifest::from_tree`]) without its digests: what deciding which nodes a baseline pins needs, without
/// hashing the image.
pub fn pinned_structure(tree: &Region, opts: &BaselineOptions) -> Result<Node, Error> {
    Ok(to_node(&policy_tree(tree, opts)?, None))
}

fn to_node(r: &Region, h: Option<&HashedNode>) -> Node {
    let digest = match (r.policy, h) {
        (Policy::Ignore, _) | (_, None) => None,
        (_, Some(h)) => Some(h.digests.digest.clone()),
    };
    let mut notes: Vec<String> = r
        .notes
        .iter()
        .map(|n| n.code.as_str().to_string())
        .collect();
    notes.sort();
    notes.dedup();
    Node {
        name: r.name.clone(),
        path: r.path.clone(),
        kind: r.kind,
        space: r.space,
        base: r.base.clone(),
        offset: r.offset,
        size: r.size,
        policy: r.policy,
        digest,
        blocks: match h {
            Some(h) if r.policy == Policy::Static => h.digests.blocks.clone(),
            _ => Vec::new(),
        },
        attrs: r.attrs.clone(),
        notes,
        children: r
            .children
            .iter()
            .enumerate()
            .map(|(i, c)| to_node(c, h.and_then(|h| h.children.get(i))))
            .collect(),
    }
}

/// Who vouched for a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signer {
    pub key_id: String,
    pub role: String,
}

/// The outcome of verification, carried by every report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    /// False only for `--insecure-unsigned`.
    pub verified: bool,
    pub signers: Vec<Signer>,
    /// The time expiry was evaluated at (RFC 3339), and whether it was given with `--at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_at: Option<String>,
    #[serde(default)]
    pub at_override: bool,
    pub summary: String,
}

impl Trust {
    fn unsigned() -> Trust {
        Trust {
            verified: false,
            signers: Vec::new(),
            evaluated_at: None,
            at_override: false,
            summary: "UNVERIFIED: manifest signature not checked (verification explicitly waived)"
                .into(),
        }
    }
}

/// A manifest whose signature, signer, freshness and version were verified (or explicitly accepted
/// unsigned). Only this module can build one.
#[derive(Debug, Clone)]
pub struct VerifiedManifest {
    manifest: Manifest,
    trust: Trust,
}

impl VerifiedManifest {
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }
}

/// A digest-annotated description of a tree (no block digests), used by `inspect --format json`.
pub fn describe(tree: &Region, alg: Alg) -> Node {
    let hashed = hash::hash_tree(tree, alg, u64::MAX);
    to_node(tree, Some(&hashed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Data;
    use std::sync::Arc;

    fn tree(bytes: Vec<u8>) -> Region {
        let data = Arc::new(Data::Owned(bytes));
        crate::formats::parse_image(data, &crate::formats::ParseOptions::default())
    }

    #[test]
    fn round_trips_and_rejects_unknown_fields() {
        let m = Manifest::from_tree(&tree(vec![1; 70000]), BaselineOptions::default()).unwrap();
        assert_eq!(m.root.blocks.len(), 2);
        let json = m.to_json();
        let back = Manifest::parse(json.as_bytes(), Path::new("m.json")).unwrap();
        assert_eq!(back, m);
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["surprise"] = 1.into();
        let e = Manifest::parse(v.to_string().as_bytes(), Path::new("m.json")).unwrap_err();
        assert!(e.to_string().contains("surprise"), "{e}");
    }

    #[test]
    fn invariants_are_checked() {
        let m = Manifest::from_tree(&tree(vec![1; 100]), BaselineOptions::default()).unwrap();
        let mut bad_digest = m.clone();
        bad_digest.root.digest = Some("zz".into());
        assert!(bad_digest.validate(Path::new("x")).is_err());
        let mut bad_version = m.clone();
        bad_version.schema_version = 2;
        assert!(bad_version.validate(Path::new("x")).is_err());
        let mut bad_size = m;
        bad_size.root.size = 5;
        assert!(bad_size.validate(Path::new("x")).is_err());
    }
}
