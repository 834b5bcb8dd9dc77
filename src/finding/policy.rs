//! What fails a run: finding categories and the [`FailPolicy`] of `--fail-on` / `--ignore-category`.
//!
//! Every code has a category. A gate may decide that warnings do not fail the run (`--fail-on error`), or
//! that a whole category does not (`--ignore-category configuration`: a missing `dbx` must not fail a
//! gate that is about integrity). The policy is applied to the findings once, in the library
//! ([`FailPolicy::apply`]): a finding that does not fail the run is kept and reported, with severity
//! `info` and a note saying why, so the verdict, the exit code, SARIF levels (`note`) and JUnit failures
//! all follow from the same findings and cannot disagree.
//!
//! The default policy is today's behaviour: every `warning` and `error` fails, no category is ignored.
//! Integrity is never ignorable, and codes default to it: a new code fails runs until it is classified.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Code, Finding, Severity, Verdict};

/// What kind of problem a code reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// The firmware differs from what was approved, or carries a known threat.
    Integrity,
    /// A structure could not be parsed or is inconsistent in itself.
    Parse,
    /// A security setting of otherwise unmodified firmware (Secure Boot databases and keys).
    Configuration,
    /// A manifest, signature, key, trust policy or anti-rollback state was refused.
    Trust,
    /// The input could not be read or decided (unreadable, changed, ambiguous, internal error).
    Input,
}

impl Category {
    pub const ALL: &'static [Category] = &[
        Category::Integrity,
        Category::Parse,
        Category::Configuration,
        Category::Trust,
        Category::Input,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Integrity => "integrity",
            Category::Parse => "parse",
            Category::Configuration => "configuration",
            Category::Trust => "trust",
            Category::Input => "input",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Codes that are not `integrity`, by category (the README's category table is checked against this).
const CATEGORIES: &[(Category, &[Code])] = &[
    (
        Category::Parse,
        &[
            Code::Unparsed,
            Code::DecompressFailed,
            Code::LimitExceeded,
            Code::PartitionOverlap,
            Code::PartitionOutOfBounds,
            Code::LayoutMismatch,
            Code::DuplicateGuid,
            Code::GbeChecksum,
        ],
    ),
    (
        Category::Configuration,
        &[Code::DbxMissing, Code::SecureBootTestKey],
    ),
    (
        Category::Trust,
        &[
            Code::ManifestInvalid,
            Code::ManifestUnsigned,
            Code::ManifestTooLarge,
            Code::SignatureMalformed,
            Code::ManifestSignatureInvalid,
            Code::ManifestUntrustedKey,
            Code::ManifestKeyIdMismatch,
            Code::ManifestKeyRevoked,
            Code::ManifestKeyNotAllowed,
            Code::ManifestThresholdNotMet,
            Code::ManifestLegacySignature,
            Code::ManifestExpired,
            Code::ManifestNotYetValid,
            Code::ManifestRollback,
            Code::ManifestCommentMismatch,
            Code::KeyExpired,
            Code::TrustPolicyInvalid,
            Code::TrustStateInvalid,
        ],
    ),
    (
        Category::Input,
        &[
            Code::ReadError,
            Code::AmbiguousManifest,
            Code::UnrecognizedImage,
            Code::InternalError,
            Code::FileChanged,
            Code::EventlogInvalid,
        ],
    ),
];

impl Code {
    /// The code's category; `integrity` unless listed otherwise.
    pub fn category(self) -> Category {
        CATEGORIES
            .iter()
            .find(|(_, codes)| codes.contains(&self))
            .map(|(c, _)| *c)
            .unwrap_or(Category::Integrity)
    }
}

/// The least severity that fails a run (`--fail-on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailOn {
    /// Warnings and errors fail the run (the default).
    #[default]
    Warning,
    /// Only errors fail the run; warnings are reported as `info`.
    Error,
}

/// Why a [`FailPolicy`] is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FailPolicyError {
    #[error("the integrity category cannot be ignored")]
    IntegrityIgnored,
}

/// What fails a run: the least failing severity and the categories that never fail it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailPolicy {
    pub fail_on: FailOn,
    /// Categories whose findings are reported but never fail the run (`integrity` cannot be ignored).
    pub ignore: BTreeSet<Category>,
}

impl FailPolicy {
    /// A policy; refuses to ignore `integrity`.
    pub fn new(fail_on: FailOn, ignore: &[Category]) -> Result<FailPolicy, FailPolicyError> {
        if ignore.contains(&Category::Integrity) {
            return Err(FailPolicyError::IntegrityIgnored);
        }
        Ok(FailPolicy {
            fail_on,
            ignore: ignore.iter().copied().collect(),
        })
    }

    /// True for the default policy (nothing is waived).
    pub fn is_default(&self) -> bool {
        *self == FailPolicy::default()
    }

    /// Whether `f` fails the run under this policy.
    pub fn fails(&self, f: &Finding) -> bool {
        if !f.counts() {
            return false;
        }
        if self.fail_on == FailOn::Error && f.severity < Severity::Error {
            return false;
        }
        !self.ignore.contains(&f.code.category())
    }

    /// Waives the findings that do not fail the run: they stay in the report with severity `info` and a
    /// note naming their original severity and the option that waived them.
    pub fn apply(&self, findings: &mut [Finding]) {
        if self.is_default() {
            return;
        }
        for f in findings.iter_mut() {
            if f.counts() && !self.fails(f) {
                let why = if self.ignore.contains(&f.code.category()) {
                    format!("--ignore-category {}", f.code.category())
                } else {
                    "--fail-on error".to_string()
                };
                f.message = format!(
                    "{} [{} {}, waived by {why}: does not fail the run]",
                    f.message,
                    f.code.category(),
                    f.severity.as_str()
                );
                f.severity = Severity::Info;
            }
        }
    }

    /// The verdict of findings after [`FailPolicy::apply`].
    pub fn verdict(&self, findings: &[Finding]) -> Verdict {
        if findings.iter().any(|f| self.fails(f)) {
            Verdict::Findings
        } else {
            Verdict::Clean
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_has_one_category_and_integrity_cannot_be_ignored() {
        let mut seen = BTreeSet::new();
        for (_, codes) in CATEGORIES {
            for c in *codes {
                assert!(seen.insert(c.as_str()), "{c} listed twice");
            }
        }
        assert_eq!(Code::DbxMissing.category(), Category::Configuration);
        assert_eq!(Code::ModuleModified.category(), Category::Integrity);
        assert!(FailPolicy::new(FailOn::Warning, &[Category::Integrity]).is_err());
    }

    #[test]
    fn policy_waives_exactly_what_it_says() {
        let f = |c: Code| Finding::general(c, "x");
        let mut v = vec![
            f(Code::DbxMissing),
            f(Code::ModuleModified),
            f(Code::DuplicateGuid),
        ];
        let default = FailPolicy::default();
        assert!(v.iter().all(|x| default.fails(x)));
        let ignore_cfg = FailPolicy::new(FailOn::Warning, &[Category::Configuration]).unwrap();
        let mut w = v.clone();
        ignore_cfg.apply(&mut w);
        assert_eq!(w[0].severity, Severity::Info);
        assert!(w[0].message.contains("--ignore-category configuration"));
        assert_eq!(w[1].severity, Severity::Error);
        assert_eq!(ignore_cfg.verdict(&w), Verdict::Findings);
        let errors_only = FailPolicy::new(FailOn::Error, &[]).unwrap();
        errors_only.apply(&mut v);
        // dbx-missing and duplicate-guid are warnings; module-modified is an error.
        assert_eq!(
            v.iter().map(|x| x.severity).collect::<Vec<_>>(),
            vec![Severity::Info, Severity::Error, Severity::Info]
        );
        let mut only_warnings = vec![f(Code::DbxMissing)];
        errors_only.apply(&mut only_warnings);
        assert_eq!(Verdict::of(&only_warnings), Verdict::Clean);
    }
}
