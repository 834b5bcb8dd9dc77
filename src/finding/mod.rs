//! The ground floor: the vocabulary every stage speaks.
//!
//! Finding codes and severities ([`Code`], [`Severity`]), findings and the byte ranges they point at
//! ([`Finding`], [`ByteRange`]), parser notes ([`Note`]), verdicts ([`Verdict`]), and the kinds, policies and
//! offset spaces of regions ([`RegionKind`], [`Policy`], [`Space`]), and the [`Evidence`] signature and digest
//! checks leave on the tree. This module imports nothing else of the
//! crate, so parsers, the region tree, manifests, the comparison, checks, audits and reports can all use it
//! without importing each other (cargo-deny's `diag.rs` plays the same role).

mod attrs;
mod codes;
pub mod evidence;
mod kinds;
pub mod policy;

use serde::{Deserialize, Serialize};

pub use attrs::{AttrKey, Attrs};
pub use codes::{Code, Severity};
pub use evidence::{Covers, Evidence, Protection, Scheme, Status, Trust};
pub use kinds::{Policy, RegionKind, Space};
pub use policy::{Category, FailOn, FailPolicy, FailPolicyError};

/// A problem noticed while parsing a node: becomes a finding in `scan`, `check` and `inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Stable finding code.
    pub code: Code,
    pub message: String,
    /// Offset the note refers to, in the node's space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl Note {
    pub fn new(code: Code, message: impl Into<String>, offset: Option<u64>) -> Note {
        Note {
            code,
            message: message.into(),
            offset,
        }
    }
}

/// A byte range that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    /// Offset in `space` (absolute in the image, or inside the decompressed bytes of `base`).
    pub offset: u64,
    pub length: u64,
    pub space: Space,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

/// Where a finding points: implemented by the region tree's nodes and by baseline manifest nodes, so a
/// finding can be made about either without this module knowing them.
pub trait Located {
    /// Identity path (`""` is the whole image).
    fn path(&self) -> &str;
    fn kind(&self) -> RegionKind;
    fn attrs(&self) -> &Attrs;
    fn offset(&self) -> u64;
    fn size(&self) -> u64;
    fn space(&self) -> Space;
    fn base(&self) -> Option<&str>;
    /// The baseline digest, for nodes of a baseline (a finding about them expects it).
    fn baseline_digest(&self) -> Option<&str> {
        None
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    /// Identity path of the region (`""` is the whole image).
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<RegionKind>,
    /// Human name (UI name, GUID, file path, variable name) where one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default)]
    pub space: Space,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_size: Option<u64>,
    /// Changed byte ranges, where known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<ByteRange>,
    /// Paths below `path` that changed (module findings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// The signature rule that produced the finding (`known-threat` and other rule findings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl Finding {
    /// A finding about a region of the image or a node of a baseline (kind, offset, size, space filled in;
    /// for a baseline node also the expected digest and size).
    pub fn on(code: Code, at: &(impl Located + ?Sized), message: impl Into<String>) -> Finding {
        let expected_digest = at.baseline_digest().map(str::to_string);
        let expected_size = expected_digest.as_ref().map(|_| at.size());
        Finding {
            path: at.path().to_string(),
            kind: Some(at.kind()),
            name: display_name(at.attrs()),
            offset: Some(at.offset()),
            size: Some(at.size()),
            space: at.space(),
            base: at.base().map(str::to_string),
            expected_digest,
            expected_size,
            ..Finding::general(code, message)
        }
    }

    /// A finding with no region (whole-file problems).
    pub fn general(code: Code, message: impl Into<String>) -> Finding {
        Finding {
            code,
            severity: code.severity(),
            path: String::new(),
            kind: None,
            name: None,
            message: message.into(),
            offset: None,
            size: None,
            space: Space::Image,
            base: None,
            expected_digest: None,
            actual_digest: None,
            expected_size: None,
            actual_size: None,
            ranges: Vec::new(),
            changed: Vec::new(),
            rule: None,
        }
    }

    /// Findings for the notes of one node (`accepted` codes, e.g. notes a baseline already had, are left
    /// out). A note's offset becomes a one-byte range in the node's space.
    pub fn from_notes<'a>(
        at: &'a (impl Located + ?Sized),
        notes: &'a [Note],
        accepted: &'a dyn Fn(Code) -> bool,
    ) -> impl Iterator<Item = Finding> + 'a {
        notes
            .iter()
            .filter(move |n| !accepted(n.code))
            .map(move |note| {
                let mut f = Finding::on(note.code, at, note.message.clone());
                if let Some(o) = note.offset {
                    f.ranges = vec![ByteRange {
                        offset: o,
                        length: 1,
                        space: at.space(),
                        base: at.base().map(str::to_string),
                    }];
                }
                f
            })
    }

    /// Whether the finding makes an image fail (everything but `info`).
    pub fn counts(&self) -> bool {
        self.severity > Severity::Info
    }
}

/// The human name of a node: `ui-name`, `name`, `file-path` or `guid` attribute.
pub fn display_name(attrs: &Attrs) -> Option<String> {
    ["ui-name", "name", "file-path", "guid"]
        .iter()
        .find_map(|k| attrs.get(k).and_then(|v| v.as_str()).map(str::to_string))
}

/// The program that made a report or results file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

impl Default for ToolInfo {
    fn default() -> Self {
        ToolInfo {
            name: "fwscan".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Why an image or input could not be decided.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: Code,
    pub message: String,
}

/// Sorts findings deterministically (path, code, offset).
pub fn sort_findings(f: &mut [Finding]) {
    f.sort_by(|a, b| {
        (a.path.as_str(), a.code.as_str(), a.offset).cmp(&(
            b.path.as_str(),
            b.code.as_str(),
            b.offset,
        ))
    });
}

/// The verdict of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Clean,
    Findings,
    Error,
}

impl Verdict {
    pub fn of(findings: &[Finding]) -> Verdict {
        if findings.iter().any(Finding::counts) {
            Verdict::Findings
        } else {
            Verdict::Clean
        }
    }

    /// The process exit code: 0 clean, 1 findings, 2 could not decide.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Clean => 0,
            Verdict::Findings => 1,
            Verdict::Error => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Findings => "findings",
            Verdict::Error => "error",
        }
    }
}
