//! fwscan: a firmware integrity scanner.
//!
//! The library is the product; the `fwscan` binary is one client of it. Data flows one way, each module
//! importing only the floors below it (checked by `tests/layering.rs`):
//!
//! ```text
//! finding → error → input → region → hash → formats → manifest → compare → check → report → scan → audit
//! ```
//!
//! * [`finding`] is the shared vocabulary: finding codes, severities, findings, verdicts, region kinds.
//! * [`input`] reads image files safely (size caps; memory-mapped only where truncation cannot happen).
//! * [`region`] is the tree: stable identity paths, offsets, policies; every byte belongs to a node; a lazily
//!   parsed node expands itself within its image's limits.
//! * [`hash`] computes SHA-256/384 digests in parallel, whole-region and per block.
//! * [`formats`] turns bytes into a [`region::Region`] tree: a registry of formats, each entry with its
//!   probe, parser and behaviour, plus flashrom-layout splitting.
//! * [`manifest`] is the baseline: schema v1, match rules, signatures, trust policy, anti-rollback.
//! * [`compare`] walks a verified manifest against a fresh tree top-down and yields findings.
//! * [`check`] runs the checks that need no baseline: parser notes, known-threat rules, Secure Boot.
//! * [`evidence`] replays a TPM event log and binds its measurements to a dump's tree (`fwscan eventlog`).
//! * [`report`] holds the per-image [`report::Report`] and renders reports ([`report::render`]).
//! * [`scan`] is the one pipeline ([`scan::Scanner`]) that `scan`, `check`, `audit` and `diff` use.
//! * [`audit`] scans fleets of images.
//!
//! ```no_run
//! use fwscan::{formats, input, manifest, report, scan};
//! let data = input::read_image(std::path::Path::new("image.bin"), &input::ReadOptions::default())?;
//! let tree = formats::parse_image(data.clone(), &formats::ParseOptions::default());
//! let m = manifest::Manifest::from_tree(&tree, manifest::BaselineOptions::default())?;
//! let verified = m.accept_unsigned_insecure();
//! let scanner = scan::Scanner::new(formats::ParseOptions::default(), None);
//! let image = report::ImageRef { path: "image.bin".into(), size: data.len() as u64, sha256: None };
//! let r = scanner.run("scan", image, data, scan::Baseline::Manifest(&verified, "m.json"));
//! assert!(r.findings.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod audit;
pub mod check;
pub mod compare;
pub mod error;
pub mod evidence;
pub mod export;
pub mod finding;
pub mod formats;
pub mod hash;
pub mod input;
pub mod manifest;
pub mod region;
pub mod report;
pub mod scan;

pub use error::{Error, ParseError};
