//! fwscan: a firmware integrity scanner.
//!
//! The library is the product; the `fwscan` binary is one client of it. Data flows one way:
//!
//! ```text
//! input (bytes) → formats (region tree) → hash → manifest → compare (findings) → report
//! ```
//!
//! * [`input`] reads image files safely (size caps; memory-mapped only where truncation cannot happen).
//! * [`formats`] turns bytes into a [`region::Region`] tree: a registry of format parsers, each with the
//!   same signature, plus raw and flashrom-layout splitting.
//! * [`region`] is the tree: stable identity paths, offsets, policies; every byte belongs to a node.
//! * [`hash`] computes SHA-256/384 digests in parallel, whole-region and per block.
//! * [`manifest`] is the baseline: schema v1, validation, and (later) signatures and trust.
//! * [`compare`] walks a verified manifest against a fresh tree top-down and yields [`compare::Finding`]s
//!   with stable codes.
//! * [`check`] runs the checks that need no baseline: parser notes, known-threat rules, Secure Boot.
//! * [`report`] renders findings as text or JSON.
//!
//! ```no_run
//! use fwscan::{formats, input, manifest, compare};
//! let data = input::read_image(std::path::Path::new("image.bin"), &input::ReadOptions::default())?;
//! let tree = formats::parse_image(data, &formats::ParseOptions::default());
//! let m = manifest::Manifest::from_tree(&tree, manifest::BaselineOptions::default())?;
//! let verified = m.accept_unsigned_insecure();
//! let mut tree = tree;
//! let result = compare::scan(&verified, &mut tree, &compare::ScanOptions::default());
//! assert!(result.findings.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod audit;
pub mod check;
pub mod compare;
pub mod coverage;
pub mod error;
pub mod finding;
pub mod formats;
pub mod hash;
pub mod input;
pub mod manifest;
pub mod region;
pub mod report;
pub mod scan;

pub use error::{Error, ParseError};
