//! The manifest catalogue of an audit, and the automatic choice of a manifest for each image.
//!
//! Every manifest is loaded through one function, [`load_manifest`], which is where signature and trust
//! verification happens. Every accepted manifest is asked whether it is a candidate for an image:
//!
//! | `selected_by` | evidence |
//! |---------------|----------|
//! | `exact-digest` | the image's SHA-256 equals the golden image's (decides alone) |
//! | `match-rules`  | the manifest declares `match` rules and the image satisfies all of them |
//! | `structure`    | no rules: the structure score ([`structure_score`]) reaches [`STRUCTURE_THRESHOLD`] |
//! | `identity`     | no rules: same size, the manifest's version string occurs in the image |
//!
//! Releases of one vendor/product/component/version: the highest `sequence` wins. Candidates of different
//! products or versions are told apart only by unforgeable evidence, the digest of a static region both
//! pin differently ([`static_digest_proof`]); otherwise the image gets an `ambiguous-manifest` error, never
//! a guess (issue 15.3). No candidate at all is an `unknown-firmware` finding. See `docs/audit.md`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::finding::Code;
use crate::formats::{self, ParseOptions};
use crate::input::Data;
use crate::manifest::{Manifest, VerifiedManifest};
use crate::region::{glob_match, Policy, Region, RegionKind};

pub use crate::manifest::{MatchRules, MAX_MATCH_STRING};

/// Whether every rule of `rules` holds for `img`.
pub fn rules_match(rules: &MatchRules, img: &mut ImageFacts<'_>) -> bool {
    if rules.size.is_some_and(|s| s != img.size) {
        return false;
    }
    if rules.format.as_deref().is_some_and(|f| f != img.format) {
        return false;
    }
    if !rules.strings.iter().all(|s| img.contains(s.as_bytes())) {
        return false;
    }
    if !rules.guids.is_empty() {
        let guids = img.guids();
        if !rules
            .guids
            .iter()
            .all(|g| guids.contains(&g.to_ascii_uppercase()))
        {
            return false;
        }
    }
    if !rules.os_release.is_empty() {
        let os = img.os_release();
        if !rules
            .os_release
            .iter()
            .all(|(k, v)| os.get(k).is_some_and(|x| x == v))
        {
            return false;
        }
    }
    true
}

/// What is known about one image while choosing its manifest. Expensive facts are computed lazily.
pub struct ImageFacts<'a> {
    pub data: &'a std::sync::Arc<Data>,
    pub size: u64,
    sha256: std::cell::OnceCell<String>,
    /// Detected top-level format name, or `raw`.
    pub format: String,
    /// `bios` or `bmc` when the format says so.
    pub component: Option<&'static str>,
    guids: Option<HashSet<String>>,
    os_release: Option<BTreeMap<String, String>>,
    decompress_limit: u64,
    max_regions: u64,
    /// The lazily parsed tree (parsed once for GUID evidence; handed to the comparison afterwards).
    tree: Option<Region>,
    /// The pipeline the image is compared with: its parse options (limits, and the layout and format a
    /// manifest asks for, [`crate::scan::Scanner::parse_options`]) are the ones selection parses with, so the
    /// tree selection parsed is the tree the comparison uses.
    scanner: crate::scan::Scanner,
    /// Lazily parsed trees, one per (layout, format) a manifest asked for; selection expands in them only
    /// what differs from a candidate manifest ([`structure_score_lazy`]).
    trees: Vec<(String, Region)>,
    /// The product the machine's hardware identity says ([`Catalogue::identity`]): only manifests of this
    /// product can be chosen.
    pub product: Option<Identity>,
}

/// A machine's hardware identity: the product it is, and where that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub product: String,
    /// `X.bin.product` (the sidecar file) or `--product-map FILE`.
    pub source: String,
}

impl std::fmt::Debug for ImageFacts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageFacts")
            .field("size", &self.size)
            .field("format", &self.format)
            .finish()
    }
}

/// The component a top-level format implies (from the format registry).
pub fn component_of(format: &str) -> Option<&'static str> {
    formats::component_of(format)
}

impl<'a> ImageFacts<'a> {
    pub fn new(data: &'a std::sync::Arc<Data>, decompress_limit: u64) -> Self {
        let format = formats::detect(data, true)
            .map(|f| f.name.to_string())
            .unwrap_or_else(|| "raw".into());
        ImageFacts {
            data,
            size: data.len() as u64,
            sha256: std::cell::OnceCell::new(),
            component: component_of(&format),
            format,
            guids: None,
            os_release: None,
            decompress_limit,
            max_regions: formats::DEFAULT_MAX_REGIONS,
            tree: None,
            scanner: crate::scan::Scanner::new(
                ParseOptions {
                    max_decompressed_total: decompress_limit,
                    ..ParseOptions::default()
                },
                None,
            ),
            trees: Vec::new(),
            product: None,
        }
    }

    /// Sets the region cap of the trees parsed for selection ([`ParseOptions::max_regions`]).
    pub fn with_max_regions(mut self, n: u64) -> Self {
        self.max_regions = n;
        self.scanner.parse.max_regions = n;
        self
    }

    /// Parses the trees selection looks at as `scanner` parses them for a comparison (one parse per image:
    /// the tree of the chosen manifest is handed to [`crate::scan::Scanner::run_tree`]).
    pub fn with_scanner(mut self, scanner: crate::scan::Scanner) -> Self {
        self.decompress_limit = scanner.parse.max_decompressed_total;
        self.max_regions = scanner.parse.max_regions;
        self.scanner = scanner;
        self
    }

    /// SHA-256 of the whole image, computed on first use (one hash pass).
    pub fn sha256(&self) -> &str {
        self.sha256
            .get_or_init(|| crate::hash::digest(crate::hash::Alg::Sha256, self.data))
    }

    /// The digest, if it was computed.
    pub fn sha256_if_computed(&self) -> Option<&str> {
        self.sha256.get().map(String::as_str)
    }

    pub fn contains(&self, needle: &[u8]) -> bool {
        !needle.is_empty() && memchr::memmem::find(self.data, needle).is_some()
    }

    /// The image parsed lazily with default options (detected format, no layout), parsed on first use.
    pub fn lazy_tree(&mut self) -> &Region {
        let t = match self.tree.take() {
            Some(t) => t,
            None => self.tree(false),
        };
        self.tree.insert(t)
    }

    /// Takes the lazily parsed tree, if it was parsed.
    pub fn take_tree(&mut self) -> Option<Region> {
        self.tree.take()
    }

    fn tree(&self, eager: bool) -> Region {
        let opts = ParseOptions {
            eager,
            max_decompressed_total: self.decompress_limit,
            max_regions: self.max_regions,
            cache: self.scanner.parse.cache.clone(),
            ..ParseOptions::default()
        };
        formats::parse_image(std::sync::Arc::clone(self.data), &opts)
    }

    /// The image parsed lazily as the comparison with `m` parses it ([`crate::scan::Scanner::parse_options`]:
    /// `m`'s layout and format); each distinct pair is parsed once, and what selection expands in it stays
    /// expanded for the comparison.
    pub fn tree_for(&mut self, m: &Manifest) -> &mut Region {
        let (key, opts) = self.tree_key(m);
        let i = match self.trees.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                let t = formats::parse_image(std::sync::Arc::clone(self.data), &opts);
                self.trees.push((key, t));
                self.trees.len() - 1
            }
        };
        &mut self.trees[i].1
    }

    fn tree_key(&self, m: &Manifest) -> (String, ParseOptions) {
        let opts = self.scanner.parse_options(Some(m));
        let key = format!(
            "{}\u{0}{}",
            serde_json::to_string(&opts.layout).unwrap_or_default(),
            opts.format.as_deref().unwrap_or("")
        );
        (key, opts)
    }

    /// Takes the tree parsed for `m` ([`ImageFacts::tree_for`]), if selection parsed one: the comparison
    /// with `m` continues on it.
    pub fn take_tree_for(&mut self, m: &Manifest) -> Option<Region> {
        let (key, _) = self.tree_key(m);
        let i = self.trees.iter().position(|(k, _)| *k == key)?;
        Some(self.trees.swap_remove(i).1)
    }

    /// Every `guid`/`fs-guid` attribute in the parsed image (uppercase).
    pub fn guids(&mut self) -> &HashSet<String> {
        if self.guids.is_none() {
            let tree = self.lazy_tree();
            let mut set = HashSet::new();
            tree.walk(&mut |r| {
                for k in ["guid", "fs-guid"] {
                    if let Some(g) = r.attr_str(k) {
                        set.insert(g.to_ascii_uppercase());
                    }
                }
            });
            self.guids = Some(set);
        }
        self.guids.get_or_insert_with(HashSet::new)
    }

    /// `KEY=value` pairs of the first `etc/os-release` (or `usr/lib/os-release`) in the image.
    pub fn os_release(&mut self) -> &BTreeMap<String, String> {
        if self.os_release.is_none() {
            let tree = self.tree(true);
            let mut found: Option<BTreeMap<String, String>> = None;
            tree.walk(&mut |r| {
                if found.is_some() {
                    return;
                }
                let p = r.attr_str("file-path").unwrap_or("");
                if p.ends_with("etc/os-release") || p.ends_with("lib/os-release") {
                    let bytes = r.bytes();
                    if bytes.len() <= 64 * 1024 {
                        found = Some(parse_os_release(&String::from_utf8_lossy(bytes)));
                    }
                }
            });
            self.os_release = Some(found.unwrap_or_default());
        }
        self.os_release.get_or_insert_with(BTreeMap::new)
    }
}

/// Parses `KEY=value` / `KEY="value"` lines.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// How manifests are accepted: the verification options of the run (trust policy, clock read once,
/// state file, `--insecure-unsigned`).
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub verify: crate::manifest::verify::VerifyOptions,
}

impl LoadOptions {
    /// Options that accept manifests without verifying them (`--insecure-unsigned`; tests).
    pub fn insecure_unsigned() -> LoadOptions {
        let mut verify =
            crate::manifest::verify::VerifyOptions::new(None, std::time::SystemTime::now());
        verify.insecure_unsigned = true;
        LoadOptions { verify }
    }
}

/// Why a manifest was not accepted: a finding code (`manifest-invalid`, `manifest-unsigned`, ...) and a
/// message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: Code,
    pub message: String,
}

/// THE one place where audit turns a manifest file into a [`VerifiedManifest`]. Signature verification
/// is done here, through the signature and trust path (`manifest::verify::load_verified`).
pub fn load_manifest(path: &Path, opts: &LoadOptions) -> Result<VerifiedManifest, Refusal> {
    let v = crate::manifest::verify::load_verified(path, &opts.verify).map_err(|e| Refusal {
        code: e.code,
        message: e.to_string(),
    })?;
    if let Some(r) = &v.manifest().r#match {
        r.validate().map_err(|e| Refusal {
            code: Code::ManifestInvalid,
            message: format!("manifest {}: {e}", path.display()),
        })?;
    }
    Ok(v)
}

/// One accepted manifest.
#[derive(Debug)]
pub struct Entry {
    pub path: PathBuf,
    pub verified: VerifiedManifest,
    /// The manifest's identity keys and per-machine cut ([`manifest_identity`]), computed once for the
    /// run rather than once per image.
    pub identity: std::sync::OnceLock<ManifestKeys>,
}

/// A manifest's identity keys, numbered, and the paths below which nothing counts ([`structure_score`]),
/// computed once per catalogue entry so that each image's score costs set operations on numbers: the keys
/// of a subtree whose bytes the image reproduces are the manifest's, taken as a range of numbers instead of
/// being spelled and hashed again for every image.
#[derive(Debug, Default)]
pub struct ManifestKeys {
    /// Each distinct key and its number.
    ids: HashMap<String, u32>,
    /// The numbers of the keys in walk order (preorder, not below per-machine nodes).
    order: Vec<u32>,
    /// For each node that has children (by path): the range of `order` its children's subtrees cover;
    /// `None` for a path two nodes share (names may hold `/`), whose keys are then spelled out.
    below: HashMap<String, Option<std::ops::Range<usize>>>,
    /// The paths where the walk stopped: the manifest's per-machine (`mutable`/`ignore`) nodes.
    cut: HashSet<String>,
}

/// The identity keys an image shares with one manifest, as numbers of the manifest's keys, and the keys
/// the manifest does not have.
struct ImageKeys<'k> {
    m: &'k ManifestKeys,
    shared: Vec<u64>,
    extra: HashSet<String>,
}

impl<'k> ImageKeys<'k> {
    fn new(m: &'k ManifestKeys) -> Self {
        ImageKeys {
            m,
            shared: vec![0; m.ids.len().div_ceil(64)],
            extra: HashSet::new(),
        }
    }

    fn mark(&mut self, id: u32) {
        if let Some(w) = self.shared.get_mut(id as usize / 64) {
            *w |= 1 << (id % 64);
        }
    }

    fn insert(&mut self, key: String) {
        match self.m.ids.get(&key) {
            Some(&id) => self.mark(id),
            None => {
                self.extra.insert(key);
            }
        }
    }

    /// The keys of the manifest's subtrees below `n` (the image's bytes there are the manifest's).
    fn insert_below(&mut self, n: &crate::manifest::Node) {
        let m = self.m;
        match m.below.get(&n.path) {
            Some(Some(r)) => {
                for &id in m.order.get(r.clone()).unwrap_or(&[]) {
                    self.mark(id);
                }
            }
            _ => {
                for c in &n.children {
                    self.insert_subtree(c);
                }
            }
        }
    }

    /// The keys of a manifest subtree, without what lies below its per-machine nodes.
    fn insert_subtree(&mut self, n: &crate::manifest::Node) {
        if identity_kind(n.kind) && !n.path.is_empty() {
            self.insert(identity_key(n.kind, &n.path, &n.attrs));
        }
        if matches!(n.policy, Policy::Mutable | Policy::Ignore) {
            return;
        }
        for c in &n.children {
            self.insert_subtree(c);
        }
    }

    /// The Jaccard index `|M ∩ I| / |M ∪ I|` in per mille; `None` when both sets are empty.
    fn jaccard(&self) -> Option<u32> {
        let shared: u64 = self.shared.iter().map(|w| u64::from(w.count_ones())).sum();
        let union = self.m.ids.len() as u64 + self.extra.len() as u64;
        if union == 0 {
            // Nothing but an opaque image on both sides: structure says nothing.
            return None;
        }
        Some((shared * 1000 / union) as u32)
    }
}

impl Entry {
    pub fn new(path: PathBuf, verified: VerifiedManifest) -> Entry {
        Entry {
            path,
            verified,
            identity: std::sync::OnceLock::new(),
        }
    }
}

/// Where a `--map` line sends images.
#[derive(Debug)]
enum MapTarget {
    Entry(usize),
    Refused(Refusal),
}

/// Accepted manifests, refused ones, and the explicit mapping.
#[derive(Debug, Default)]
pub struct Catalogue {
    pub entries: Vec<Entry>,
    /// Manifest files that were refused (path, why).
    pub refused: Vec<(PathBuf, Refusal)>,
    map: Vec<(String, MapTarget)>,
    /// `--product-map`: path globs and the product of the machines whose dumps they match.
    product_map: Vec<ProductMapEntry>,
    product_map_path: Option<PathBuf>,
}

/// One entry of a `--product-map` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductMapEntry {
    path: String,
    product: String,
}

/// Suffix of the sidecar file that gives a dump's hardware identity: `X.bin.product` for `X.bin`.
pub const PRODUCT_SIDECAR_SUFFIX: &str = ".product";
/// Largest sidecar or product-map file read.
const MAX_IDENTITY_FILE: u64 = 1 << 20;

/// How a manifest was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectedBy {
    Map,
    ExactDigest,
    MatchRules,
    /// The image's parsed tree shares enough of the manifest's identity tree (score in the row).
    Structure,
    Identity,
}

/// The outcome of choosing a manifest for one image.
#[derive(Debug)]
pub enum Selection {
    /// The manifest, how it was chosen, and its structure score (per mille) when one was computed.
    Chosen(usize, SelectedBy, Option<u32>),
    /// No accepted manifest matches.
    Unknown,
    /// Several equally good matches (their indices).
    Ambiguous(Vec<usize>),
    /// The explicit mapping names a manifest that was refused.
    Refused(Refusal),
}

/// Most manifest files a catalogue directory may hold.
pub const MAX_MANIFESTS: usize = 100_000;

impl Catalogue {
    /// Loads every `*.json` file under `dir` (recursively, symlinks not followed, sorted by path).
    pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<Catalogue, crate::Error> {
        let mut files = Vec::new();
        collect_json(dir, 0, &mut files)?;
        files.sort();
        let mut c = Catalogue::default();
        for f in files {
            let _ = c.add(&f, opts);
        }
        Ok(c)
    }

    fn add(&mut self, path: &Path, opts: &LoadOptions) -> Result<usize, Refusal> {
        if let Some(i) = self.entries.iter().position(|e| e.path == path) {
            return Ok(i);
        }
        if let Some((_, r)) = self.refused.iter().find(|(p, _)| p == path) {
            return Err(r.clone());
        }
        match load_manifest(path, opts) {
            Ok(v) => {
                self.entries.push(Entry::new(path.to_path_buf(), v));
                Ok(self.entries.len() - 1)
            }
            Err(r) => {
                self.refused.push((path.to_path_buf(), r.clone()));
                Err(r)
            }
        }
    }

    /// Reads a `path-glob,manifest` CSV (`#` comments, optional header). Relative manifest paths are
    /// relative to the CSV's directory. Manifests it names go through [`load_manifest`] too.
    pub fn load_map(&mut self, csv: &Path, opts: &LoadOptions) -> Result<(), crate::Error> {
        let bytes = crate::input::read_capped(csv, 16 << 20)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| crate::Error::Other(format!("{}: not UTF-8", csv.display())))?;
        let base = csv.parent().unwrap_or(Path::new("."));
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((glob, man)) = line.split_once(',') else {
                return Err(crate::Error::Other(format!(
                    "{}: line {}: expected `path-glob,manifest`",
                    csv.display(),
                    i + 1
                )));
            };
            let (glob, man) = (glob.trim().trim_matches('"'), man.trim().trim_matches('"'));
            if i == 0 && glob == "path-glob" {
                continue;
            }
            let p = Path::new(man);
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            };
            let target = match self.add(&p, opts) {
                Ok(i) => MapTarget::Entry(i),
                Err(r) => MapTarget::Refused(r),
            };
            self.map.push((glob.to_string(), target));
        }
        Ok(())
    }

    /// Reads a `--product-map` file: a JSON array of `{"path": GLOB, "product": NAME}`, first match wins;
    /// globs match the path relative to the root, as `--map` does.
    pub fn load_product_map(&mut self, path: &Path) -> Result<(), crate::Error> {
        let bytes = crate::input::read_capped(path, MAX_IDENTITY_FILE)?;
        let entries: Vec<ProductMapEntry> = serde_json::from_slice(&bytes).map_err(|e| {
            crate::Error::Other(format!(
                "{}: expected a JSON array of {{\"path\": GLOB, \"product\": NAME}}: {e}",
                path.display()
            ))
        })?;
        if let Some(e) = entries.iter().find(|e| e.product.trim().is_empty()) {
            return Err(crate::Error::Other(format!(
                "{}: entry `{}` names no product",
                path.display(),
                e.path
            )));
        }
        self.product_map = entries;
        self.product_map_path = Some(path.to_path_buf());
        Ok(())
    }

    /// The hardware identity of the dump at `path` (`rel` relative to its root): the first non-empty line
    /// (not a `#` comment) of its sidecar file `PATH.product`, else the first `--product-map` entry whose
    /// glob matches `rel`, else none. A sidecar that exists but cannot be read, is not UTF-8 or names no
    /// product is a `read-error`: the identity the collector recorded must not be silently dropped.
    pub fn identity(&self, rel: &str, path: &Path) -> Result<Option<Identity>, Refusal> {
        let mut side = path.as_os_str().to_owned();
        side.push(PRODUCT_SIDECAR_SUFFIX);
        let side = PathBuf::from(side);
        let bad = |message: String| Refusal {
            code: Code::ReadError,
            message: format!("{}: {message}", side.display()),
        };
        match crate::input::symlink_metadata(&side) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(bad(e.to_string())),
            Ok(_) => {
                let bytes = crate::input::read_capped(&side, MAX_IDENTITY_FILE)
                    .map_err(|e| bad(e.to_string()))?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| bad("product file is not UTF-8".into()))?;
                let product = text
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
                    .ok_or_else(|| bad("product file names no product".into()))?;
                return Ok(Some(Identity {
                    product: product.to_string(),
                    source: side
                        .file_name()
                        .map(crate::audit::walk::escape_name)
                        .unwrap_or_default(),
                }));
            }
        }
        Ok(self
            .product_map
            .iter()
            .find(|e| glob_match(&e.path, rel))
            .map(|e| Identity {
                product: e.product.trim().to_string(),
                source: format!(
                    "--product-map {}",
                    self.product_map_path
                        .as_deref()
                        .unwrap_or(Path::new(""))
                        .display()
                ),
            }))
    }

    /// Chooses the manifest for an image at `rel` (path relative to its root).
    ///
    /// When the image carries a hardware identity (`img.product`), only manifests of that product are
    /// looked at, however well another matches by content; a `--map` line naming a manifest of another
    /// product is refused (`manifest-product-mismatch`).
    pub fn select(&self, rel: &str, img: &mut ImageFacts<'_>) -> Selection {
        let bound = img.product.clone();
        let of_product = |i: usize| {
            bound
                .as_ref()
                .is_none_or(|b| self.entries[i].verified.manifest().product.product == b.product)
        };
        for (glob, target) in &self.map {
            if glob_match(glob, rel) {
                return match target {
                    MapTarget::Entry(i) if !of_product(*i) => Selection::Refused(Refusal {
                        code: Code::ManifestProductMismatch,
                        message: format!(
                            "--map names {} for this image, a manifest of product `{}`; the machine is `{}` ({})",
                            self.entries[*i].path.display(),
                            self.entries[*i].verified.manifest().product.product,
                            bound.as_ref().map_or("", |b| b.product.as_str()),
                            bound.as_ref().map_or("", |b| b.source.as_str()),
                        ),
                    }),
                    MapTarget::Entry(i) => Selection::Chosen(*i, SelectedBy::Map, None),
                    MapTarget::Refused(r) => Selection::Refused(r.clone()),
                };
            }
        }
        let mut scored: Vec<Candidate> = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if !of_product(i) {
                continue;
            }
            if let Some(c) = candidate(i, e, img) {
                scored.push(c);
            }
        }
        // Byte-identity with a golden image outranks everything. It costs a hash pass, so it is only looked
        // at when it can change the outcome: several candidates (ties), none, or when asked (`digest`).
        // A golden image satisfies its own rules and structure, so an identical image is a candidate
        // already.
        if scored.len() != 1 || img.sha256_if_computed().is_some() {
            let identical: Vec<usize> = self
                .entries
                .iter()
                .enumerate()
                .filter(|&(i, e)| {
                    let m = e.verified.manifest();
                    of_product(i) && m.image.size == img.size && m.image.sha256 == img.sha256()
                })
                .map(|(i, _)| i)
                .collect();
            if !identical.is_empty() {
                let c = identical
                    .iter()
                    .map(|&index| Candidate {
                        index,
                        by: SelectedBy::ExactDigest,
                        score: None,
                    })
                    .collect();
                return self.decide(c, img);
            }
        }
        if scored.is_empty() {
            return Selection::Unknown;
        }
        // Competitors: manifests of the same size and format that are not candidates, but whose pinned
        // bytes the image reproduces (a large static region: unforgeable). An image whose structure an
        // implant destroyed still carries its vendor's untouched regions; without this, a laxer manifest
        // matched by a string would be the only candidate. A competitor never wins by itself; it only
        // has to be told apart from the candidates by the same digest evidence.
        for (i, e) in self.entries.iter().enumerate() {
            let m = e.verified.manifest();
            // A manifest whose own `match` rules fail has said the image is not its firmware.
            let declines = m.r#match.as_ref().is_some_and(|r| !r.is_empty());
            if declines
                || !of_product(i)
                || scored.iter().any(|c| c.index == i)
                || m.image.size != img.size
            {
                continue;
            }
            if reproduces_pinned_region(m, img) {
                scored.push(Candidate {
                    index: i,
                    by: SelectedBy::Structure,
                    score: None,
                });
            }
        }
        self.decide(scored, img)
    }

    /// Chooses among candidates. Releases of one vendor/product/component/version: the highest `sequence`
    /// (unique) wins. Candidates of different products or versions are told apart only by evidence an
    /// attacker cannot forge: the digest of a static region that both manifests pin with different
    /// contents, and that the image reproduces for exactly one of them ([`static_digest_proof`]).
    /// Strings, structure, rule counts and scores never decide between them: that is
    /// `ambiguous-manifest`.
    fn decide(&self, cands: Vec<Candidate>, img: &mut ImageFacts<'_>) -> Selection {
        let key = |i: usize| {
            let p = &self.entries[i].verified.manifest().product;
            (
                p.vendor.clone(),
                p.product.clone(),
                p.component.clone(),
                p.version.clone(),
            )
        };
        // Group by product release.
        let mut groups: Vec<Vec<Candidate>> = Vec::new();
        for c in cands {
            match groups.iter_mut().find(|g| key(g[0].index) == key(c.index)) {
                Some(g) => g.push(c),
                None => groups.push(vec![c]),
            }
        }
        let winner = if groups.len() == 1 {
            0
        } else {
            // A group wins when the image reproduces one of its pinned digests where every other group pins
            // a different one, and no other group can say the same.
            let proven: Vec<usize> = (0..groups.len())
                .filter(|&g| {
                    (0..groups.len()).filter(|&o| o != g).all(|o| {
                        groups[g].iter().any(|a| {
                            groups[o].iter().all(|b| {
                                static_digest_proof(
                                    self.entries[a.index].verified.manifest(),
                                    self.entries[b.index].verified.manifest(),
                                    img,
                                )
                            })
                        })
                    })
                })
                .collect();
            if proven.len() != 1 {
                return Selection::Ambiguous(groups.iter().flatten().map(|c| c.index).collect());
            }
            proven[0]
        };
        let group = &groups[winner];
        let seq = |i: usize| self.entries[i].verified.manifest().sequence;
        let max = group.iter().map(|c| seq(c.index)).max().unwrap_or(0);
        let newest: Vec<&Candidate> = group.iter().filter(|c| seq(c.index) == max).collect();
        if newest.len() == 1 {
            let c = newest[0];
            return Selection::Chosen(c.index, c.by, c.score);
        }
        Selection::Ambiguous(newest.iter().map(|c| c.index).collect())
    }
}

/// A manifest that may be the image's, and the evidence that made it one.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    index: usize,
    by: SelectedBy,
    /// Structure score (per mille), when that is how it became a candidate.
    score: Option<u32>,
}

/// Whether `m` is a candidate for the image, and why. A manifest that declares `match` rules is a candidate
/// exactly when they all hold. Otherwise it is one when the structure score reaches
/// [`STRUCTURE_THRESHOLD`], or (weakest) when its version string occurs in an image of the same size.
fn candidate(index: usize, e: &Entry, img: &mut ImageFacts<'_>) -> Option<Candidate> {
    let m = e.verified.manifest();
    if let Some(r) = m.r#match.as_ref().filter(|r| !r.is_empty()) {
        return rules_match(r, img).then_some(Candidate {
            index,
            by: SelectedBy::MatchRules,
            score: None,
        });
    }
    if m.image.size != img.size {
        return None;
    }
    let p = &m.product;
    if let (Some(c), false) = (img.component, p.component.is_empty()) {
        if c != p.component {
            return None;
        }
    }
    let keys = e.identity.get_or_init(|| manifest_identity(m));
    let known = img.scanner.known.clone();
    let s = structure_score_lazy_with(m, keys, img.tree_for(m), known.as_deref());
    if s.is_some_and(|s| s >= STRUCTURE_THRESHOLD) {
        return Some(Candidate {
            index,
            by: SelectedBy::Structure,
            score: s,
        });
    }
    if p.version.len() >= 3 && img.contains(p.version.as_bytes()) {
        return Some(Candidate {
            index,
            by: SelectedBy::Identity,
            score: s,
        });
    }
    None
}

/// Lowest structure score (per mille) that makes a manifest a candidate. See [`structure_score`].
pub const STRUCTURE_THRESHOLD: u32 = 900;

/// Region kinds that carry identity: layout and partition names, volumes, modules and their sections,
/// FIT images, file systems and their paths, variable stores and environments (as containers).
fn identity_kind(k: RegionKind) -> bool {
    !matches!(
        k,
        RegionKind::Image
            | RegionKind::Header
            | RegionKind::FreeSpace
            | RegionKind::Padding
            | RegionKind::Variable
            | RegionKind::EnvVariable
    )
}

/// The identity key of a node: kind, region path (names, GUIDs, file paths) and, for code, its machine
/// type (an IA32 and an X64 build of the same tree differ in every module).
fn identity_key(kind: RegionKind, path: &str, attrs: &crate::finding::Attrs) -> String {
    let machine = attrs.get("machine").and_then(|v| v.as_str()).unwrap_or("");
    format!("{}\u{0}{path}\u{0}{machine}", kind.as_str())
}

/// The identity set of a manifest: every identity node that is not per-machine data (nodes below a
/// `mutable` or `ignore` node are left out; the per-machine node itself counts: its name is structure),
/// and the paths where the walk stopped.
fn manifest_identity(m: &Manifest) -> ManifestKeys {
    fn go(n: &crate::manifest::Node, k: &mut ManifestKeys) {
        if identity_kind(n.kind) && !n.path.is_empty() {
            let key = identity_key(n.kind, &n.path, &n.attrs);
            let next = k.ids.len() as u32;
            let id = *k.ids.entry(key).or_insert(next);
            k.order.push(id);
        }
        if matches!(n.policy, Policy::Mutable | Policy::Ignore) {
            k.cut.insert(n.path.clone());
            return;
        }
        if n.children.is_empty() {
            return;
        }
        let start = k.order.len();
        for c in &n.children {
            go(c, k);
        }
        let range = start..k.order.len();
        k.below
            .entry(n.path.clone())
            .and_modify(|r| *r = None)
            .or_insert(Some(range));
    }
    let mut k = ManifestKeys::default();
    go(&m.root, &mut k);
    k
}

/// How much of a manifest's identity tree the image's parsed tree shares, in per mille: the Jaccard index
/// `|M ∩ I| / |M ∪ I|` of the identity keys of the manifest (M) and of the image (I), both without what lies
/// below the manifest's per-machine (`mutable`/`ignore`) nodes. Extra modules in the image lower the score as
/// much as missing ones, so a superset build of another product does not pass for it. `None` when the image
/// is not of the manifest's top-level format.
///
/// `tree` is the image parsed with the manifest's layout and format, eagerly (so that compressed volumes
/// are seen); this is a pure function of the tree and the manifest. Selection computes the same score on
/// a lazily parsed tree, hash first ([`structure_score_lazy`]).
pub fn structure_score(m: &Manifest, tree: &Region) -> Option<u32> {
    let fmt = tree.attr_str("format").unwrap_or("raw");
    if m.image.format != fmt {
        return None;
    }
    // Spelled out with plain sets: the lazy walk's numbered keys are checked against this in the tests.
    let k = manifest_identity(m);
    let (mkeys, cut): (HashSet<String>, _) = (k.ids.into_keys().collect(), k.cut);
    let mut ikeys: HashSet<String> = HashSet::new();
    fn go(r: &Region, cut: &HashSet<String>, keys: &mut HashSet<String>) {
        if identity_kind(r.kind) && !r.path.is_empty() {
            keys.insert(identity_key(r.kind, &r.path, &r.attrs));
        }
        if cut.contains(&r.path) {
            return;
        }
        for c in &r.children {
            go(c, cut, keys);
        }
    }
    go(tree, &cut, &mut ikeys);
    jaccard(&mkeys, &ikeys)
}

/// [`structure_score`] on a lazily parsed tree, hash first: the same score, without decompressing what the
/// image shares with the manifest. The walk goes top-down through what is parsed; at a node left unparsed
/// (a compressed section, a file system), the image's bytes are hashed with the manifest's algorithm and,
/// when they equal the manifest's digest of the node at the same path (and its size), the identity keys
/// below it are the manifest's (same bytes, same parse), so it is not expanded. Only nodes whose bytes
/// differ, or that the manifest does not have, are expanded, in place and within the image's parse budget
/// (the same tree is then compared, which does not expand them again). Below the manifest's per-machine
/// nodes nothing counts and nothing is expanded, as in [`structure_score`].
pub fn structure_score_lazy(m: &Manifest, tree: &mut Region) -> Option<u32> {
    structure_score_lazy_with(m, &manifest_identity(m), tree, None)
}

/// [`structure_score_lazy`] with the manifest's identity keys already computed (once per catalogue entry).
fn structure_score_lazy_with(
    m: &Manifest,
    keys: &ManifestKeys,
    tree: &mut Region,
    known: Option<&crate::hash::KnownBytes>,
) -> Option<u32> {
    let fmt = tree.attr_str("format").unwrap_or("raw");
    if m.image.format != fmt {
        return None;
    }
    let mut ikeys = ImageKeys::new(keys);
    lazy_keys(tree, Some(&m.root), m.hash.algorithm, known, &mut ikeys);
    ikeys.jaccard()
}

/// The identity keys of `r`'s subtree (see [`structure_score_lazy`]); `n` is the manifest's node at `r`'s path.
fn lazy_keys(
    r: &mut Region,
    n: Option<&crate::manifest::Node>,
    alg: crate::hash::Alg,
    known: Option<&crate::hash::KnownBytes>,
    keys: &mut ImageKeys<'_>,
) {
    if identity_kind(r.kind) && !r.path.is_empty() {
        keys.insert(identity_key(r.kind, &r.path, &r.attrs));
    }
    if keys.m.cut.contains(&r.path) {
        return;
    }
    if r.is_lazy() {
        let same = n.is_some_and(|n| {
            n.size == r.size
                && n.digest
                    .as_deref()
                    .is_some_and(|d| crate::hash::region_has_digest(alg, r, d, known))
        });
        if let (true, Some(n)) = (same, n) {
            keys.insert_below(n);
            return;
        }
        r.expand();
    }
    // The manifest's child at the same position is usually the one at the same path; a map is built only
    // when it is not.
    let mut by_path: Option<HashMap<&str, &crate::manifest::Node>> = None;
    for (i, c) in r.children.iter_mut().enumerate() {
        let cn = n.and_then(|n| match n.children.get(i) {
            Some(cn) if cn.path == c.path => Some(cn),
            _ => by_path
                .get_or_insert_with(|| n.children.iter().map(|c| (c.path.as_str(), c)).collect())
                .get(c.path.as_str())
                .copied(),
        });
        lazy_keys(c, cn, alg, known, keys);
    }
}

/// The Jaccard index of two key sets in per mille; `None` when both are empty.
fn jaccard(mkeys: &HashSet<String>, ikeys: &HashSet<String>) -> Option<u32> {
    let shared = mkeys.intersection(ikeys).count() as u64;
    let union = (mkeys.len() + ikeys.len()) as u64 - shared;
    if union == 0 {
        // Nothing but an opaque image on both sides: structure says nothing.
        return None;
    }
    Some((shared * 1000 / union) as u32)
}

/// Expands, in place, the lazily parsed nodes on the way to `path` (nothing else), so that
/// [`Region::find`] reaches a node that lies in compressed data.
fn expand_towards(r: &mut Region, path: &str) {
    if r.path == path {
        return;
    }
    r.expand();
    for c in &mut r.children {
        if crate::region::leads_to(&c.path, path) {
            expand_towards(c, path);
        }
    }
}

/// Path → digest of every node of `m` that is static with all its descendants (its digest covers only
/// bytes the manifest pins).
fn pinned_digests(m: &Manifest) -> BTreeMap<&str, &str> {
    fn go<'a>(n: &'a crate::manifest::Node, out: &mut BTreeMap<&'a str, &'a str>) -> bool {
        let mut all = n.policy == Policy::Static;
        for c in &n.children {
            all &= go(c, out);
        }
        if all {
            if let Some(d) = n.digest.as_deref() {
                out.insert(n.path.as_str(), d);
            }
        }
        all
    }
    let mut out = BTreeMap::new();
    go(&m.root, &mut out);
    out
}

/// Smallest static region whose digest makes a manifest a competitor ([`reproduces_pinned_region`]).
pub const RELATED_MIN_BYTES: u64 = 4096;

/// Whether the image reproduces the digest of a pinned, non-blank region of `m` of at least
/// [`RELATED_MIN_BYTES`] among the top two levels of its tree.
fn reproduces_pinned_region(m: &Manifest, img: &mut ImageFacts<'_>) -> bool {
    let mut nodes: Vec<(&str, &str)> = Vec::new();
    let pinned = pinned_digests(m);
    for top in &m.root.children {
        for n in std::iter::once(top).chain(top.children.iter()) {
            if n.size >= RELATED_MIN_BYTES
                && n.policy == Policy::Static
                && !matches!(n.kind, RegionKind::FreeSpace | RegionKind::Padding)
            {
                if let Some(d) = pinned.get(n.path.as_str()) {
                    nodes.push((n.path.as_str(), d));
                }
            }
        }
    }
    if nodes.is_empty() {
        return false;
    }
    let alg = m.hash.algorithm;
    let known = img.scanner.known.clone();
    let tree = img.tree_for(m);
    nodes.iter().any(|(p, d)| {
        expand_towards(tree, p);
        tree.find(p).is_some_and(|r| {
            r.size >= RELATED_MIN_BYTES
                && r.bytes().first().is_some_and(|&b0| !r.is_blank(b0))
                && crate::hash::region_has_digest(alg, r, d, known.as_deref())
        })
    })
}

/// Unforgeable evidence that the image is `a`'s rather than `b`'s: a region both pin with different
/// digests whose bytes in the image hash to `a`'s digest. An attacker can write strings, GUIDs and
/// per-machine data into an image, but cannot make a region hash to a vendor's digest without putting the
/// vendor's bytes there.
pub fn static_digest_proof(a: &Manifest, b: &Manifest, img: &mut ImageFacts<'_>) -> bool {
    let (da, db) = (pinned_digests(a), pinned_digests(b));
    let differing: Vec<(&str, &str)> = da
        .iter()
        .filter(|(p, d)| db.get(*p).is_some_and(|e| e != *d))
        .map(|(p, d)| (*p, *d))
        .collect();
    if differing.is_empty() {
        return false;
    }
    let alg = a.hash.algorithm;
    let known = img.scanner.known.clone();
    let tree = img.tree_for(a);
    differing.iter().any(|(p, d)| {
        expand_towards(tree, p);
        tree.find(p)
            .is_some_and(|r| crate::hash::region_has_digest(alg, r, d, known.as_deref()))
    })
}

fn collect_json(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) -> Result<(), crate::Error> {
    let io = |source| crate::Error::Io {
        path: dir.to_path_buf(),
        error: source,
    };
    if depth > 16 {
        return Ok(());
    }
    for e in std::fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        let ft = e.file_type().map_err(io)?;
        let p = e.path();
        if ft.is_dir() {
            collect_json(&p, depth + 1, out)?;
        } else if ft.is_file() && p.extension().is_some_and(|x| x == "json" || x == "corim") {
            if out.len() >= MAX_MANIFESTS {
                return Err(crate::Error::Other(format!(
                    "{}: more than {MAX_MANIFESTS} manifests",
                    dir.display()
                )));
            }
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(golden: &[u8], product: &str, version: &str, seq: u64) -> Manifest {
        let data = std::sync::Arc::new(Data::Owned(golden.to_vec()));
        let tree = formats::parse_image(data, &ParseOptions::default());
        let mut o = crate::manifest::BaselineOptions::default();
        o.product.product = product.into();
        o.product.version = version.into();
        o.sequence = seq;
        Manifest::from_tree(&tree, o).unwrap()
    }

    fn cat(ms: Vec<Manifest>) -> Catalogue {
        Catalogue {
            entries: ms
                .into_iter()
                .enumerate()
                .map(|(i, m)| {
                    Entry::new(
                        PathBuf::from(format!("m{i}.json")),
                        m.accept_unsigned_insecure(),
                    )
                })
                .collect(),
            ..Catalogue::default()
        }
    }

    fn pick(c: &Catalogue, img: &[u8]) -> Selection {
        let data = std::sync::Arc::new(Data::Owned(img.to_vec()));
        let mut f = ImageFacts::new(&data, 1 << 20);
        c.select("x.bin", &mut f)
    }

    #[test]
    fn keys_below_a_path_two_nodes_share_are_spelled_out() {
        let m0 = manifest(&[0x11u8; 8192], "P", "1", 1);
        let node = |path: &str, children: Vec<crate::manifest::Node>| {
            let mut n = m0.root.clone();
            n.kind = RegionKind::Volume;
            n.name = path.rsplit('/').next().unwrap_or(path).into();
            n.path = path.into();
            n.policy = Policy::Static;
            n.children = children;
            n
        };
        // `x` holding `y`, and a node named `x/y`: two nodes at the path `x/y`, with other children.
        let a = node("x/y", vec![node("x/y/a", vec![])]);
        let b = node("x/y", vec![node("x/y/b", vec![])]);
        let mut m = m0.clone();
        m.root.children = vec![node("x", vec![a.clone()]), b.clone()];
        let k = manifest_identity(&m);
        assert_eq!(k.below.get("x/y"), Some(&None));
        assert!(matches!(k.below.get("x"), Some(Some(_))));
        for (n, want) in [(&a, "x/y/a"), (&b, "x/y/b")] {
            let mut i = ImageKeys::new(&k);
            i.insert_below(n);
            let marked: Vec<&str> = k
                .ids
                .iter()
                .filter(|(_, &id)| i.shared[id as usize / 64] & (1 << (id % 64)) != 0)
                .filter_map(|(key, _)| key.split('\0').nth(1))
                .collect();
            assert_eq!(marked, vec![want]);
        }
    }

    #[test]
    fn selection_tiers_sequences_and_ties() {
        let mut golden = vec![0x11u8; 8192];
        golden[100..112].copy_from_slice(b"PROD v1.23.4");
        let mut tampered = golden.clone();
        tampered[5000] ^= 1;
        // Two releases of one product version: the newest sequence wins, by digest or by identity.
        let c = cat(vec![
            manifest(&golden, "PROD", "1.23.4", 1),
            manifest(&golden, "PROD", "1.23.4", 2),
            manifest(&[0x22u8; 8192], "OTHER", "9.99", 1),
        ]);
        assert!(matches!(
            pick(&c, &golden),
            Selection::Chosen(1, SelectedBy::ExactDigest, _)
        ));
        assert!(matches!(
            pick(&c, &tampered),
            Selection::Chosen(1, SelectedBy::Identity, _)
        ));
        // Version string absent: nobody's firmware.
        let mut other = golden.clone();
        other[100..112].copy_from_slice(b"PROD v1.99.0");
        assert!(matches!(pick(&c, &other), Selection::Unknown));
        // Different size: identity needs the size.
        assert!(matches!(pick(&c, &tampered[..4096]), Selection::Unknown));
        // Issue 15.3: declared rules do not beat identity between different products; more rules are not
        // more evidence. A manifest of another product whose rules the image satisfies (a string an
        // attacker can write) makes the image ambiguous, never steered to it.
        let mut a = manifest(&golden, "A", "1.0", 1);
        a.r#match = Some(MatchRules {
            strings: vec!["PROD v1.23".into()],
            ..Default::default()
        });
        let c2 = cat(vec![manifest(&golden, "PROD", "1.23.4", 1), a.clone()]);
        assert!(matches!(pick(&c2, &tampered), Selection::Ambiguous(ref v) if v.len() == 2));
        let mut b = a.clone();
        b.product.product = "B".into();
        let c3 = cat(vec![a, b]);
        assert!(matches!(pick(&c3, &tampered), Selection::Ambiguous(ref v) if v.len() == 2));
    }

    #[test]
    fn os_release_is_parsed() {
        let m = parse_os_release("ID=openbmc\nVERSION_ID=\"2.14.0-dev\"\n# c\nNAME='x'\n");
        assert_eq!(m["ID"], "openbmc");
        assert_eq!(m["VERSION_ID"], "2.14.0-dev");
        assert_eq!(m["NAME"], "x");
    }

    #[test]
    fn match_rules_round_trip_and_count() {
        let r = MatchRules {
            size: Some(4096),
            strings: vec!["X11 v1.4".into()],
            ..Default::default()
        };
        assert_eq!(r.len(), 2);
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(j, r#"{"size":4096,"strings":["X11 v1.4"]}"#);
        assert!(serde_json::from_str::<MatchRules>(r#"{"sise":1}"#).is_err());
    }
}
