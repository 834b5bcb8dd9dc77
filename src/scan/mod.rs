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
        match ms {
            [] => Baseline::None,
            [(v, path)] => {
                let m = v.manifest();
                let forced = opts.format.is_some() || opts.layout.is_some() || m.layout.is_some();
                if m.parts.is_empty() || forced {
                    return Baseline::Manifest(v, path);
                }
                // Detected once, only for a manifest with parts.
                let same_format =
                    formats::detect_file(bytes).map_or("raw", |f| f.name) == m.image.format;
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
}

impl Scanner {
    pub fn new(parse: ParseOptions, rules: Option<Arc<RuleSet>>) -> Scanner {
        Scanner {
            parse,
            rules,
            fail: crate::finding::FailPolicy::default(),
        }
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

    /// Parses an image with its own layout, lazily (a comparison part by part).
    fn parse_own(&self, data: Arc<Data>) -> Region {
        let mut o = self.parse.clone();
        o.eager = false;
        formats::parse_image(data, &o)
    }

    /// The whole pipeline on an image's bytes.
    pub fn run(&self, command: &str, image: ImageRef, data: Arc<Data>, b: Baseline<'_>) -> Report {
        // One manifest of a file of the same format but another size (a BIOS region against a dump with
        // an extra NVRAM volume): part by part when every part is found there, else as a whole (a
        // truncated or damaged dump is reported against the whole baseline, with its size).
        if let Baseline::Parts([(v, path)], true) = b {
            let report = self.run_tree(command, image.clone(), self.parse_own(data.clone()), b);
            if !report
                .findings
                .iter()
                .any(|f| f.code == Code::AnchorNotFound)
            {
                return report;
            }
            return self.run(command, image, data, Baseline::Manifest(v, path));
        }
        let tree = match b {
            Baseline::Manifest(v, _) => self.parse(data, Some(v.manifest())),
            Baseline::None => self.parse(data, None),
            // The image's own layout: the baselines' formats and layouts describe other files.
            Baseline::Parts(..) => self.parse_own(data),
        };
        self.run_tree(command, image, tree, b)
    }

    /// The pipeline on a tree already parsed with [`Scanner::parse_options`] for the same baseline (an audit
    /// hands over the tree it parsed to choose the manifest).
    pub fn run_tree(
        &self,
        command: &str,
        image: ImageRef,
        mut tree: Region,
        b: Baseline<'_>,
    ) -> Report {
        let (mut result, manifest) = match b {
            Baseline::Manifest(v, path) => {
                let mut r = compare::compare(v, &mut tree);
                r.findings.extend(self.checks(&tree, true));
                (r, Some(ManifestRef::of(v, path)))
            }
            Baseline::Parts(ms, _) => {
                let vs: Vec<&VerifiedManifest> = ms.iter().map(|(v, _)| *v).collect();
                let mut r = compare::compare_parts(&vs, &mut tree);
                r.findings.extend(self.checks(&tree, true));
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
            Baseline::None => (
                ScanResult {
                    findings: self.checks(&tree, false),
                    ..ScanResult::default()
                },
                None,
            ),
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

/// A report for an image that could not be read.
pub fn read_error(command: &str, image: ImageRef, e: &crate::Error) -> Report {
    let code = match e {
        crate::Error::FileChanged { .. } => Code::FileChanged,
        _ => Code::ReadError,
    };
    Report::error(command, image, code, e.to_string())
}
