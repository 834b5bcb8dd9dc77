//! The one pipeline: parse an image once, compare it with a verified baseline (if any), run the
//! baseline-free checks once on the final tree, and return one [`Report`]. `scan`, `check`, `audit` and
//! `diff` all go through [`Scanner`], so they cannot drift apart.
//!
//! ```text
//! bytes ─ parse (options from the manifest: layout, format; lazy) ─ compare (expands only what differs,
//!   inside the image's own parse budget) ─ checks on the final tree (rules, Secure Boot, hidden code) ─ Report
//! ```
//! Nothing is done twice: the tree is parsed once and never cloned, the rule pass runs once after the
//! comparison (on what it expanded too), and a leaf whose digest differs is not hashed again for its finding.

use std::sync::Arc;

use crate::check::RuleSet;
use crate::compare::{self, ScanResult};
use crate::finding::{Code, Finding};
use crate::formats::{self, ParseOptions};
use crate::input::Data;
use crate::manifest::verify::VerifiedCorim;
use crate::manifest::{Manifest, VerifiedManifest};
use crate::region::Region;
use crate::report::{ImageRef, ManifestRef, Report};

/// What the image is compared against.
#[derive(Debug, Clone, Copy)]
pub enum Baseline<'a> {
    /// No baseline: the baseline-free checks only (`check`).
    None,
    /// A verified manifest, and the path it was loaded from (for the report).
    Manifest(&'a VerifiedManifest, &'a str),
    /// Several manifests, or one made from an image laid out otherwise (a release package, a BIOS region
    /// against a whole flash dump): each part found by its anchor and compared there
    /// ([`compare::compare_parts`]). The flag: one manifest of a file of the image's own format, compared as
    /// a whole instead when one of its parts is not found.
    Parts(&'a [(&'a VerifiedManifest, &'a str)], bool),
    /// Another producer's verified CoRIM (no region tree): the image is parsed by its own structure and
    /// each reference value located by its key ([`compare::foreign`]).
    Foreign(&'a VerifiedCorim, &'a str),
}

impl<'a> Baseline<'a> {
    /// How to compare `bytes` with `ms`: one manifest of an image laid out like this one (same size and
    /// format, or a manifest without parts, or a layout or format the user forced) is compared whole;
    /// otherwise part by part.
    pub fn choose(
        ms: &'a [(&'a VerifiedManifest, &'a str)],
        bytes: &[u8],
        opts: &ParseOptions,
    ) -> Baseline<'a> {
        Baseline::choose_detected(ms, bytes, opts, None)
    }

    /// [`Baseline::choose`] when the caller already ran top-level detection ([`formats::detect`]) on
    /// `bytes`: `detected` is the format it found (`None`: not run, or nothing found), so an audit does not
    /// detect the image's format twice.
    pub fn choose_detected(
        ms: &'a [(&'a VerifiedManifest, &'a str)],
        bytes: &[u8],
        opts: &ParseOptions,
        detected: Option<&str>,
    ) -> Baseline<'a> {
        match ms {
            [] => Baseline::None,
            [(v, path)] => {
                let m = v.manifest();
                let forced = opts.format.is_some() || opts.layout.is_some() || m.layout.is_some();
                if m.parts.is_empty() || forced {
                    return Baseline::Manifest(v, path);
                }
                // Detected once, only for a manifest with parts.
                let format = match detected {
                    Some(f) => f,
                    None => formats::detect_file(bytes).map_or("raw", |f| f.name),
                };
                let same_format = format == m.image.format;
                if same_format && bytes.len() as u64 == m.image.size {
                    Baseline::Manifest(v, path)
                } else {
                    Baseline::Parts(ms, same_format)
                }
            }
            _ => Baseline::Parts(ms, false),
        }
    }
}

/// The scan pipeline with its options. Cheap to share between threads (`audit` runs one per worker).
#[derive(Debug, Clone)]
pub struct Scanner {
    /// Parse limits and the user's layout/format overrides. A manifest's own layout and format apply where
    /// the user gave none.
    pub parse: ParseOptions,
    /// Signature rules of the baseline-free checks; `None` runs no rule checks.
    pub rules: Option<Arc<RuleSet>>,
    /// What fails the run (`--fail-on`, `--ignore-category`): applied to every report's findings.
    pub fail: crate::finding::FailPolicy,
    /// Attach the flash map and region tree to every decided report (`--format html`).
    pub map: bool,
    /// Bytes verified by earlier images of the run (an audit's): equal bytes decide a node without
    /// hashing it ([`crate::hash::KnownBytes`]). `None`: every node is hashed.
    pub known: Option<Arc<crate::hash::KnownBytes>>,
}

impl Scanner {
    pub fn new(parse: ParseOptions, rules: Option<Arc<RuleSet>>) -> Scanner {
        Scanner {
            parse,
            rules,
            fail: crate::finding::FailPolicy::default(),
            map: false,
            known: None,
        }
    }

    /// The same scanner, sharing `known` verified bytes with the other images of the run.
    pub fn with_known(mut self, known: Option<Arc<crate::hash::KnownBytes>>) -> Scanner {
        self.known = known;
        self
    }

    /// The same scanner, attaching the flash map and region tree to its reports (for `--format html`).
    pub fn with_map(mut self, map: bool) -> Scanner {
        self.map = map;
        self
    }

    /// The same scanner with a fail policy.
    pub fn with_fail_policy(mut self, fail: crate::finding::FailPolicy) -> Scanner {
        self.fail = fail;
        self
    }

    /// The parse options for an image compared against `m` (or checked without a baseline): the user's
    /// layout, else the manifest's; the manifest's top-level format; lazy expansion when comparing.
    pub fn parse_options(&self, m: Option<&Manifest>) -> ParseOptions {
        let mut o = self.parse.clone();
        match m {
            Some(m) => {
                if o.layout.is_none() {
                    o.layout = m.layout.clone();
                }
                if o.format.is_none() {
                    o.format = Some(m.image.format.clone()).filter(|f| f != "layout");
                }
                o.eager = false;
            }
            None => o.eager = true,
        }
        o
    }

    /// Parses an image as the comparison with `m` (or a check, with `None`) needs it.
    pub fn parse(&self, data: Arc<Data>, m: Option<&Manifest>) -> Region {
        formats::parse_image(data, &self.parse_options(m))
    }

    /// Parses an image for a comparison part by part, lazily: a BMC flash compared with an OpenBMC
    /// package's baseline is laid out by the baseline ([`trusted_bmc_layout`]); anything else by its own
    /// structure. Also returns the finding when the layout the dump declares disagrees with the trusted one.
    fn parse_own(
        &self,
        data: Arc<Data>,
        ms: &[(&VerifiedManifest, &str)],
    ) -> (Region, Option<Finding>) {
        let mut o = self.parse.clone();
        o.eager = false;
        let mut mismatch = None;
        if o.layout.is_none() && o.format.is_none() {
            if let Some(l) = trusted_bmc_layout(ms, data.len() as u64) {
                mismatch = layout_mismatch(&l, &data[..]);
                o.format = Some(formats::bmc::FORMAT.name.into());
                o.bmc_layout = Some(l);
            }
        }
        (formats::parse_image(data, &o), mismatch)
    }

    /// The whole pipeline on an image's bytes.
    pub fn run(&self, command: &str, image: ImageRef, data: Arc<Data>, b: Baseline<'_>) -> Report {
        // One manifest of a file of the same format but another size (a BIOS region against a dump with
        // an extra NVRAM volume): part by part when every part is found there, else as a whole (a
        // truncated or damaged dump is reported against the whole baseline, with its size).
        if let Baseline::Parts(ms @ [(v, path)], true) = b {
            let (tree, extra) = self.parse_own(data.clone(), ms);
            let report = self.run_tree_with(command, image.clone(), tree, b, extra);
            if !report
                .findings
                .iter()
                .any(|f| f.code == Code::AnchorNotFound)
            {
                return report;
            }
            return self.run(command, image, data, Baseline::Manifest(v, path));
        }
        let (tree, extra) = match b {
            Baseline::Manifest(v, _) => (self.parse(data, Some(v.manifest())), None),
            // Parsed whole, by its own structure: every node a reference value may name, and every node
            // coverage must account for.
            Baseline::None | Baseline::Foreign(..) => (self.parse(data, None), None),
            // The image's own structure (the baselines' formats and layouts describe other files), a BMC
            // flash laid out by the baseline.
            Baseline::Parts(ms, _) => self.parse_own(data, ms),
        };
        self.run_tree_with(command, image, tree, b, extra)
    }

    /// The pipeline on a tree already parsed with [`Scanner::parse_options`] for the same baseline (an audit
    /// hands over the tree it parsed to choose the manifest).
    pub fn run_tree(
        &self,
        command: &str,
        image: ImageRef,
        tree: Region,
        b: Baseline<'_>,
    ) -> Report {
        self.run_tree_with(command, image, tree, b, None)
    }

    /// [`Scanner::run_tree`] with a finding of the parse step (a dump's own layout that disagrees with
    /// the trusted one); with the flash map of the tree as the comparison left it when asked for.
    fn run_tree_with(
        &self,
        command: &str,
        image: ImageRef,
        mut tree: Region,
        b: Baseline<'_>,
        extra: Option<Finding>,
    ) -> Report {
        let mut report = self.decide(command, image, &mut tree, b, extra);
        if self.map && report.error.is_none() {
            let mut m = crate::report::html::FlashMap::of(&tree);
            m.place(&tree, &report.findings);
            report.map = Some(Arc::new(m));
        }
        report
    }

    /// The comparison (or check) of a parsed tree, and its report.
    fn decide(
        &self,
        command: &str,
        image: ImageRef,
        tree: &mut Region,
        b: Baseline<'_>,
        extra: Option<Finding>,
    ) -> Report {
        // Nothing recognised is not clean: an empty or erased dump (a failed flash read) is not compared,
        // and a check that found nothing in an image where no parser recognised anything is undecided.
        if !matches!(b, Baseline::None) {
            if let Some(why) = unrecognized(tree, false) {
                return Report::error(command, image, Code::UnrecognizedImage, why);
            }
        }
        let (mut result, manifest) = match b {
            Baseline::Manifest(v, path) => {
                let mut r = compare::compare_with(v, tree, self.known.as_deref());
                r.findings.extend(self.checks(tree, true));
                (r, Some(ManifestRef::of(v, path)))
            }
            Baseline::Foreign(v, path) => {
                match compare::foreign::compare(v, tree, self.parse.blank) {
                    Ok(mut r) => {
                        // Nothing vouched for the parser's notes: they are findings, as in `check`.
                        r.findings.extend(self.checks(tree, false));
                        (r, Some(ManifestRef::of(v.identity(), path)))
                    }
                    Err(why) => {
                        return Report::error(command, image, Code::InternalError, why.to_string())
                    }
                }
            }
            Baseline::Parts(ms, _) => {
                let vs: Vec<&VerifiedManifest> = ms.iter().map(|(v, _)| *v).collect();
                let mut r = compare::compare_parts(&vs, tree);
                r.findings.extend(self.checks(tree, true));
                r.findings.extend(extra);
                let refs: Vec<ManifestRef> = ms
                    .iter()
                    .enumerate()
                    .map(|(i, (v, path))| {
                        let mut m = ManifestRef::of(v, path);
                        m.regions = r
                            .anchors
                            .iter()
                            .filter(|a| a.manifest == i)
                            .map(|a| a.region.clone())
                            .collect();
                        m
                    })
                    .collect();
                self.fail.apply(&mut r.findings);
                let mut report = Report::new(command, image, refs.first().cloned(), r);
                if refs.len() > 1 {
                    report.manifests = refs;
                }
                return report;
            }
            Baseline::None => {
                let findings = self.checks(tree, false);
                if findings.is_empty() {
                    if let Some(why) = unrecognized(tree, true) {
                        return Report::error(command, image, Code::UnrecognizedImage, why);
                    }
                }
                (
                    ScanResult {
                        findings,
                        ..ScanResult::default()
                    },
                    None,
                )
            }
        };
        self.fail.apply(&mut result.findings);
        Report::new(command, image, manifest, result)
    }

    /// The baseline-free checks on a final tree. After a comparison, parser notes were already judged by
    /// it (notes the baseline accepted are not findings), so only the other checks run.
    fn checks(&self, tree: &Region, compared: bool) -> Vec<Finding> {
        match (&self.rules, compared) {
            (Some(r), true) => crate::check::run_for_scan(tree, r),
            (Some(r), false) => crate::check::run(tree, r),
            (None, true) => Vec::new(),
            (None, false) => crate::check::run(tree, &RuleSet::empty()),
        }
    }
}

/// The layout a BMC flash of `size` bytes is laid out by when compared with an OpenBMC package's
/// baseline: the layout in the vendor-signed package (its kernel FIT's device tree) when it fits the flash,
/// else the OpenBMC preset of the flash's size. `None` when no baseline is an OpenBMC package's or neither
/// applies (then the dump's own layout is used, U-Boot still compared at offset 0).
pub fn trusted_bmc_layout(
    ms: &[(&VerifiedManifest, &str)],
    size: u64,
) -> Option<crate::formats::layout::Layout> {
    let m = ms
        .iter()
        .map(|(v, _)| v.manifest())
        .find(|m| crate::manifest::package::is_openbmc_parts(&m.parts))?;
    // The static presets place `kernel`/`rofs`/`rwfs` partitions where a UBI layout has its UBI area: a
    // package of a UBI layout (parts anchored in UBI volumes) uses its own layout or the dump's structure
    // (U-Boot at offset 0, where the SoC boots; the UBI area after it), whose volumes the anchors find.
    let ubi = m
        .parts
        .iter()
        .any(|p| matches!(p.anchor, crate::manifest::Anchor::UbiVolume { .. }));
    m.flash_layout
        .clone()
        .filter(|l| !l.entries.is_empty() && l.entries.iter().all(|e| e.end < size))
        .or_else(|| {
            if ubi {
                None
            } else {
                formats::bmc::preset_for_size(size)
            }
        })
}

/// A `layout-mismatch` finding when the layout a BMC dump declares (a device tree in a FIT, a preset its
/// content matches, ...) differs from the trusted layout it is compared by.
fn layout_mismatch(trusted: &crate::formats::layout::Layout, bytes: &[u8]) -> Option<Finding> {
    let own = formats::bmc::discover(bytes)?.layout;
    // A layout inferred from the dump's structure (the UBI area found by its erase-counter headers, U-Boot
    // and its environment in front) declares no names, only where things are: its spans are compared.
    let named = own.source != formats::bmc::ubi::FORMAT.name;
    let key = |l: &crate::formats::layout::Layout| {
        let mut v: Vec<(String, u64, u64)> = l
            .entries
            .iter()
            .map(|e| {
                let name = if named {
                    e.name.to_ascii_lowercase()
                } else {
                    String::new()
                };
                (name, e.start, e.end)
            })
            .collect();
        v.sort();
        v
    };
    if key(&own) == key(trusted) {
        return None;
    }
    let mut f = Finding::general(
        Code::LayoutMismatch,
        format!(
            "the dump declares its own flash layout ({}: {}) that differs from the verified baseline's ({}: {}); \
             the dump is laid out by the baseline's",
            own.source,
            own.to_flashrom().trim_end().replace('\n', ", "),
            trusted.source,
            trusted.to_flashrom().trim_end().replace('\n', ", ")
        ),
    );
    f.offset = Some(0);
    Some(f)
}

/// Why nothing in `tree` can be checked, if so: an empty file; a dump of one repeated byte, 0x00 or 0xFF
/// (an erased chip, or a flash read that failed); and, when `need_structure` (a check without a baseline),
/// a file no parser recognised anything in (`raw` with no region found). Such an image is never CLEAN:
/// [`Code::UnrecognizedImage`], exit 2.
pub fn unrecognized(tree: &Region, need_structure: bool) -> Option<String> {
    let bytes = tree.bytes();
    let Some(&first) = bytes.first() else {
        return Some("the file is empty: nothing was checked".into());
    };
    if (first == 0x00 || first == 0xFF) && crate::region::first_not(bytes, first).is_none() {
        return Some(format!(
            "all {} bytes are {first:#04x} (an erased chip or a failed flash read): nothing was checked",
            bytes.len()
        ));
    }
    if need_structure && tree.children.is_empty() && tree.attr_str("format") == Some("raw") {
        return Some(format!(
            "no known structure in {} bytes (no flash descriptor, firmware volume, capsule, BMC layout or \
             other format fwscan reads): nothing was checked",
            bytes.len()
        ));
    }
    None
}

/// A report for an image that could not be read.
pub fn read_error(command: &str, image: ImageRef, e: &crate::Error) -> Report {
    let code = match e {
        crate::Error::FileChanged { .. } => Code::FileChanged,
        _ => Code::ReadError,
    };
    Report::error(command, image, code, e.to_string())
}
