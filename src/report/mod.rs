//! Renderers: text for people, JSON for machines (schema `schemas/report-v1.schema.json`), SARIF, JUnit, and
//! one self-contained HTML page with a flash map ([`html`], `--format html`).
//!
//! JSON wire format of a scan report (one object):
//!
//! ```text
//! { "schema_version": 1, "tool": {name, version}, "command": "scan"|"check",
//!   "image": {path, size, sha256}, "manifest": {path, product, sequence, created, expires, trust} | null,
//!   "verdict": "clean"|"findings"|"error", "exit_code": 0|1|2,
//!   "summary": {findings, by_code: {code: n}, by_severity: {sev: n}, skipped_regions, bytes_hashed},
//!   "findings": [Finding], "skipped": [{path, policy, size}], "error": {code, message} | null }
//! ```
//! Findings are sorted by path, then code, so output is deterministic.

pub mod coverage;
pub mod html;
pub mod inspect;
pub mod junit;
pub mod sarif;

use std::io::{self, Write};

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::compare::{Anchored, ScanResult, ScanStats, Skipped, Uncovered};
pub use crate::finding::{sort_findings, ErrorInfo, ToolInfo};
use crate::finding::{Code, Finding, Verdict};
use crate::manifest::{Product, Trust, VerifiedManifest};
use crate::region::{Policy, Region, Space};

/// The event-by-event text of `fwscan eventlog`: each event with its digest and the node it is bound to,
/// then the replayed PCRs and their comparison with the TPM's.
fn eventlog_text(ev: &crate::evidence::Evidence) -> String {
    use crate::evidence::Binding;
    use crate::formats::tpm::eventlog::EventData;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "log: {:?} format, banks {}, {} events",
        ev.log.format,
        ev.log.algorithms.join(" "),
        ev.events.len()
    );
    for e in &ev.events {
        let data = match &e.data {
            EventData::FirmwareBlob {
                description,
                base,
                length,
            } => format!(
                "{}base {base:#x} length {length:#x}",
                description
                    .as_deref()
                    .map(|d| format!("`{d}` "))
                    .unwrap_or_default()
            ),
            EventData::Text { text } => format!("`{text}`"),
            EventData::Image {
                device_path_text,
                length,
                ..
            } => format!("{device_path_text} ({length} bytes)"),
            EventData::Variable { guid, name, data } => {
                format!("{guid}:{name} ({} bytes)", data.len())
            }
            EventData::Separator { value } => format!("{value:#x}"),
            EventData::StartupLocality { locality } => format!("StartupLocality {locality}"),
            EventData::SpecId(s) => format!("Spec ID {}", s.signature),
            EventData::Raw { note, data } => format!(
                "{} bytes{}",
                data.len(),
                note.as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ),
            other => serde_json::to_string(other).unwrap_or_default(),
        };
        let digest = e
            .digests
            .get("sha256")
            .or_else(|| e.digests.values().next())
            .map(|d| d.get(..16).unwrap_or(d).to_string())
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  [{}] PCR {:>2} {} {digest} {data}",
            e.index, e.pcr, e.event_type
        );
        match &e.binding {
            Some(Binding::Bound { image, path, by }) => {
                let _ = writeln!(o, "      bound ({by}): {image}: {}", display_path(path));
            }
            Some(Binding::NotInImage { reason }) => {
                let _ = writeln!(o, "      NOT IN IMAGE: {reason}");
            }
            Some(Binding::NotReproducible { reason }) => {
                let _ = writeln!(o, "      not reproducible: {reason}");
            }
            None => {}
        }
    }
    let _ = writeln!(o, "replayed PCRs:");
    for (bank, pcrs) in &ev.pcrs {
        for (i, v) in pcrs {
            let _ = writeln!(o, "  {bank} {i:>2} {v}");
        }
    }
    for b in &ev.not_replayed {
        let _ = writeln!(o, "  {b}: not replayed (algorithm not supported)");
    }
    for c in &ev.compared {
        let _ = writeln!(
            o,
            "TPM {} PCR {:>2}: {}",
            c.bank,
            c.pcr,
            match (&c.replayed, c.equal) {
                (None, _) => "not compared (the log has no such bank)".to_string(),
                (Some(_), true) => "equal".to_string(),
                (Some(r), false) => format!("DIFFERS (TPM {}, log {r})", c.reported),
            }
        );
    }
    if !ev.unmeasured.is_empty() {
        let _ = writeln!(
            o,
            "code volumes no event measured (information): {}",
            ev.unmeasured
                .iter()
                .map(|p| display_path(p))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(p) = &ev.prediction {
        use crate::evidence::predict::Source;
        let _ = writeln!(
            o,
            "PCR {} predicted from the dump ({}):",
            p.pcr,
            if p.deterministic {
                "deterministic: every measurement from the dump or a platform constant"
            } else {
                "not from the dump alone"
            }
        );
        for e in &p.events {
            let from = match &e.source {
                Source::Dump { path, by } => format!("dump ({by}): {}", display_path(path)),
                Source::Constant => "constant (the hash of the event's data)".to_string(),
                Source::Log { reason } => format!("FROM THE LOG: {reason}"),
                Source::Missing { reason } => format!("MISSING: {reason}"),
            };
            let _ = writeln!(
                o,
                "  [{}] {} {} {from}",
                e.index,
                e.event_type,
                if e.equal { "=" } else { "DIFFERS" }
            );
        }
        if p.predicted.is_empty() {
            let _ = writeln!(
                o,
                "  nothing predicted: a measurement has no counterpart in the dump"
            );
        }
        for (bank, v) in &p.predicted {
            let against = p
                .reported
                .get(bank)
                .map(|r| ("TPM", r))
                .or_else(|| p.replayed.get(bank).map(|r| ("log", r)));
            let _ = writeln!(
                o,
                "  {bank} {v}{}",
                match against {
                    Some((who, r)) if r == v => format!(" (equals the {who})"),
                    Some((who, r)) => format!(" (DIFFERS from the {who}: {r})"),
                    None => String::new(),
                }
            );
        }
    }
    o
}

/// Schema version of reports.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRef {
    pub path: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestRef {
    pub path: String,
    pub product: Product,
    pub sequence: u64,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    pub trust: Trust,
    /// Top-level region paths of the baseline (JUnit writes a test case per region).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
}

impl ManifestRef {
    /// The reference to a verified manifest loaded from `path`.
    pub fn of(v: &VerifiedManifest, path: &str) -> ManifestRef {
        let m = v.manifest();
        ManifestRef {
            path: path.to_string(),
            product: m.product.clone(),
            sequence: m.sequence,
            created: m.created.clone(),
            expires: m.expires.clone(),
            trust: v.trust().clone(),
            regions: m.root.children.iter().map(|c| c.path.clone()).collect(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub findings: usize,
    pub by_code: BTreeMap<String, usize>,
    pub by_severity: BTreeMap<String, usize>,
    pub skipped_regions: usize,
    #[serde(default)]
    pub bytes_hashed: u64,
}

/// The report of one image (scan or check).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: ToolInfo,
    pub command: String,
    pub image: ImageRef,
    pub manifest: Option<ManifestRef>,
    pub verdict: Verdict,
    pub exit_code: i32,
    pub summary: Summary,
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// Every baseline, when the image was compared with more than one (`manifest` is the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<ManifestRef>,
    /// Where each baseline part was found, when the image was compared part by part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anchors: Vec<Anchored>,
    /// Regions of the image no baseline covers (information, not findings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncovered: Vec<Uncovered>,
    #[serde(default)]
    pub stats: ScanStats,
    pub error: Option<ErrorInfo>,
    /// The flash map and region tree of the image, for `--format html` (not part of the JSON report).
    #[serde(skip)]
    pub map: Option<std::sync::Arc<html::FlashMap>>,
    /// `fwscan eventlog`: the log, its replayed `pcrs`, its `events` with their bindings (flattened into
    /// the report object).
    #[serde(flatten, skip_deserializing)]
    pub eventlog: Option<Box<crate::evidence::Evidence>>,
}

impl Report {
    /// A report from a finished comparison.
    pub fn new(
        command: &str,
        image: ImageRef,
        manifest: Option<ManifestRef>,
        result: ScanResult,
    ) -> Report {
        let mut findings = result.findings;
        sort_findings(&mut findings);
        let verdict = Verdict::of(&findings);
        let summary = summarize(&findings, result.skipped.len(), result.stats.bytes_hashed);
        Report {
            schema_version: REPORT_SCHEMA_VERSION,
            tool: ToolInfo::default(),
            command: command.into(),
            image,
            manifest,
            verdict,
            exit_code: verdict.exit_code(),
            summary,
            findings,
            skipped: result.skipped,
            manifests: Vec::new(),
            anchors: result.anchors,
            uncovered: result.uncovered,
            stats: result.stats,
            error: None,
            map: None,
            eventlog: None,
        }
    }

    /// The baselines of this report: all of them when there were several, else the one (if any).
    pub fn baselines(&self) -> &[ManifestRef] {
        if self.manifests.is_empty() {
            self.manifest.as_slice()
        } else {
            &self.manifests
        }
    }

    /// A report for an image that could not be decided.
    pub fn error(command: &str, image: ImageRef, code: Code, message: String) -> Report {
        Report {
            schema_version: REPORT_SCHEMA_VERSION,
            tool: ToolInfo::default(),
            command: command.into(),
            image,
            manifest: None,
            verdict: Verdict::Error,
            exit_code: 2,
            summary: Summary::default(),
            findings: Vec::new(),
            skipped: Vec::new(),
            manifests: Vec::new(),
            anchors: Vec::new(),
            uncovered: Vec::new(),
            stats: ScanStats::default(),
            error: Some(ErrorInfo { code, message }),
            map: None,
            eventlog: None,
        }
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The human report.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "fwscan {}: {} ({} bytes)",
            self.command, self.image.path, self.image.size
        );
        for m in self.baselines() {
            let p = &m.product;
            let _ = writeln!(
                o,
                "baseline: {} ({} {} {} {}, sequence {}, created {}{})",
                m.path,
                p.vendor,
                p.product,
                p.component,
                p.version,
                m.sequence,
                m.created,
                m.expires
                    .as_deref()
                    .map(|e| format!(", expires {e}"))
                    .unwrap_or_default()
            );
            let _ = writeln!(o, "trust: {}", m.trust.summary);
        }
        for a in &self.anchors {
            let _ = writeln!(
                o,
                "compared: {} of {} at {} {} (found by {})",
                if a.part.is_empty() {
                    "the baseline".to_string()
                } else {
                    format!("part `{}`", a.part)
                },
                self.baselines()
                    .get(a.manifest)
                    .map_or("?", |m| m.path.as_str()),
                display_path(&a.region),
                span(a.offset, a.size, Space::Image, None),
                a.anchor
            );
        }
        if let Some(ev) = &self.eventlog {
            o.push_str(&eventlog_text(ev));
        }
        if let Some(e) = &self.error {
            let _ = writeln!(o, "ERROR {}: {}", e.code, e.message);
        }
        if !self.findings.is_empty() {
            let _ = writeln!(o, "findings ({}):", self.findings.len());
            for f in &self.findings {
                o.push_str(&finding_line(f));
            }
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(
                o,
                "not compared (per-machine or ignored): {}",
                self.skipped
                    .iter()
                    .map(|s| format!("{} [{}]", display_path(&s.path), s.policy.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if !self.uncovered.is_empty() {
            let _ = writeln!(
                o,
                "not covered by any baseline (information): {}",
                self.uncovered
                    .iter()
                    .map(|u| format!(
                        "{} {}",
                        display_path(&u.path),
                        span(u.offset, u.size, Space::Image, None)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let _ = writeln!(
            o,
            "verdict: {} (exit {})",
            self.verdict.as_str().to_uppercase(),
            self.exit_code
        );
        o
    }
}

/// An output format of reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// For people.
    #[default]
    Text,
    /// `schemas/report-v1.schema.json` objects.
    Json,
    /// SARIF 2.1.0 (GitHub code scanning).
    Sarif,
    /// JUnit XML.
    Junit,
    /// One self-contained HTML page ([`html`]).
    Html,
}

/// The JSON top level of a command's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The command takes one image (`scan`): its report object.
    One,
    /// The command takes any number of images (`check`): an array of report objects, also for one image.
    Many,
}

/// The one renderer entry of `scan` and `check` (and the per-image parts of `audit`): text, JSON, one SARIF
/// log with one run, or one JUnit document with one test suite per image. Every machine format carries the
/// trust status of the baselines used (verified or UNVERIFIED, signer key ids).
pub fn render(
    format: Format,
    command: &str,
    shape: Shape,
    reports: &[Report],
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Text => {
            for r in reports {
                out.write_all(r.to_text().as_bytes())?;
            }
        }
        Format::Json => {
            match (shape, reports) {
                (Shape::One, [one]) => serde_json::to_writer_pretty(&mut *out, one)?,
                _ => serde_json::to_writer_pretty(&mut *out, reports)?,
            }
            out.write_all(b"\n")?;
        }
        Format::Sarif => {
            let mut w = sarif::SarifWriter::begin(&mut *out, command)?;
            for r in reports {
                for f in &r.findings {
                    w.result(&sarif::finding_result(&r.image.path, Some(r.image.size), f))?;
                }
                if let Some(e) = &r.error {
                    w.result(&sarif::error_result(
                        &r.image.path,
                        None,
                        e.code.as_str(),
                        &e.message,
                    ))?;
                }
            }
            let ok = reports.iter().all(|r| r.error.is_none());
            w.finish(ok, &trust_properties(reports))?;
        }
        Format::Junit => {
            let per: Vec<Vec<(String, junit::Outcome)>> = reports
                .iter()
                .map(|r| {
                    let regions = r
                        .manifest
                        .as_ref()
                        .map(|m| m.regions.as_slice())
                        .unwrap_or(&[]);
                    let err = r
                        .error
                        .as_ref()
                        .map(|e| (e.code.as_str(), e.message.as_str()));
                    junit::cases(regions, &r.findings, err)
                })
                .collect();
            let total = per
                .iter()
                .fold(junit::Counts::default(), |t, c| t.plus(junit::count(c)));
            let mut w = junit::JunitWriter::begin(&mut *out, total)?;
            for (r, cases) in reports.iter().zip(&per) {
                w.suite(
                    &format!("fwscan {command} {}", r.image.path),
                    junit::count(cases),
                    &trust_junit(r),
                )?;
                for (name, o) in cases {
                    w.case(&r.image.path, name, None, o)?;
                }
            }
            w.finish()?;
        }
        Format::Html => out.write_all(html::scan_page(command, reports).as_bytes())?,
    }
    out.flush()
}

/// The trust status of one report's baseline: `none` (no baseline), `verified`, or `UNVERIFIED`.
pub fn trust_status(r: &Report) -> &'static str {
    let b = r.baselines();
    if b.is_empty() {
        "none"
    } else if b.iter().all(|m| m.trust.verified) {
        "verified"
    } else {
        "UNVERIFIED"
    }
}

fn signer_ids(r: &Report) -> Vec<String> {
    r.baselines()
        .iter()
        .flat_map(|m| m.trust.signers.iter().map(|s| s.key_id.clone()))
        .collect()
}

fn uncovered_text(r: &Report) -> String {
    r.uncovered
        .iter()
        .map(|u| format!("{}@{:#x}+{:#x}", display_path(&u.path), u.offset, u.size))
        .collect::<Vec<_>>()
        .join(" ")
}

/// SARIF `properties` of a run: per image, the trust status, signer key ids and the trust summary, and
/// for a comparison part by part where each part was found and what no baseline covers.
pub fn trust_properties(reports: &[Report]) -> serde_json::Value {
    let baselines: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            let mut v = serde_json::json!({
                "image": r.image.path,
                "trust": trust_status(r),
                "signers": signer_ids(r),
                "manifest": r.manifest.as_ref().map(|m| m.path.clone()),
                "summary": r.manifest.as_ref().map(|m| m.trust.summary.clone()),
            });
            if !r.manifests.is_empty() {
                v["manifests"] = r.manifests.iter().map(|m| m.path.clone()).collect();
            }
            if !r.anchors.is_empty() {
                v["anchors"] = serde_json::to_value(&r.anchors).unwrap_or_default();
            }
            if !r.uncovered.is_empty() {
                v["uncovered"] = serde_json::to_value(&r.uncovered).unwrap_or_default();
            }
            v
        })
        .collect();
    let all_verified = reports
        .iter()
        .all(|r| r.baselines().iter().all(|m| m.trust.verified));
    serde_json::json!({ "fwscan": { "baselines_verified": all_verified, "baselines": baselines } })
}

fn trust_junit(r: &Report) -> Vec<(&'static str, String)> {
    let mut p = vec![("fwscan.trust", trust_status(r).to_string())];
    if !r.baselines().is_empty() {
        p.push((
            "fwscan.manifest",
            r.baselines()
                .iter()
                .map(|m| m.path.clone())
                .collect::<Vec<_>>()
                .join(" "),
        ));
        p.push(("fwscan.signers", signer_ids(r).join(",")));
        p.push((
            "fwscan.trust.summary",
            r.baselines()
                .iter()
                .map(|m| m.trust.summary.clone())
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    if !r.anchors.is_empty() {
        p.push((
            "fwscan.anchors",
            r.anchors
                .iter()
                .map(|a| {
                    format!(
                        "{}={}@{:#x}+{:#x}",
                        display_path(&a.part),
                        display_path(&a.region),
                        a.offset,
                        a.size
                    )
                })
                .collect::<Vec<_>>()
                .join(" "),
        ));
    }
    if !r.uncovered.is_empty() {
        p.push(("fwscan.uncovered", uncovered_text(r)));
    }
    p
}

/// `/` for the root, the path otherwise.
pub fn display_path(p: &str) -> &str {
    if p.is_empty() {
        "/"
    } else {
        p
    }
}

fn short(d: &str) -> &str {
    d.get(..16).unwrap_or(d)
}

/// One finding for a person: what, where, which bytes, both digests.
pub fn finding_line(f: &Finding) -> String {
    let mut o = String::new();
    let name = f
        .name
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let where_ = match (f.offset, f.size) {
        (Some(off), Some(size)) => format!(" at {}", span(off, size, f.space, f.base.as_deref())),
        _ => String::new(),
    };
    let _ = writeln!(
        o,
        "  {:<7} {:<18} {}{}{}: {}",
        f.severity.as_str().to_uppercase(),
        f.code.as_str(),
        display_path(&f.path),
        name,
        where_,
        f.message
    );
    if !f.ranges.is_empty() {
        let shown: Vec<String> = f
            .ranges
            .iter()
            .take(8)
            .map(|r| {
                format!(
                    "{:#x}..{:#x}{}",
                    r.offset,
                    r.offset.saturating_add(r.length),
                    space_suffix(r.space, r.base.as_deref())
                )
            })
            .collect();
        let more = f.ranges.len().saturating_sub(8);
        let _ = writeln!(
            o,
            "          changed bytes: {}{}",
            shown.join(", "),
            if more > 0 {
                format!(" (+{more} more)")
            } else {
                String::new()
            }
        );
    }
    if f.expected_digest.is_some() || f.actual_digest.is_some() {
        let _ = writeln!(
            o,
            "          expected {}  actual {}",
            f.expected_digest.as_deref().unwrap_or("-"),
            f.actual_digest.as_deref().unwrap_or("-")
        );
    }
    o
}

fn space_suffix(space: Space, base: Option<&str>) -> String {
    match space {
        Space::Image => String::new(),
        Space::Decompressed => {
            format!(" in decompressed {}", base.map(display_path).unwrap_or("?"))
        }
    }
}

fn span(off: u64, size: u64, space: Space, base: Option<&str>) -> String {
    format!("{off:#x}+{size:#x}{}", space_suffix(space, base))
}

/// Counts by code and severity.
pub fn summarize(findings: &[Finding], skipped: usize, bytes_hashed: u64) -> Summary {
    let mut s = Summary {
        findings: findings.len(),
        skipped_regions: skipped,
        bytes_hashed,
        ..Summary::default()
    };
    for f in findings {
        *s.by_code.entry(f.code.as_str().to_string()).or_default() += 1;
        *s.by_severity
            .entry(f.severity.as_str().to_string())
            .or_default() += 1;
    }
    s
}

/// `inspect --format text`: an indented tree.
pub fn tree_text(root: &Region, digests: &crate::hash::HashedNode) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<12} {:<10} {:<13} {:<8} {:<16} PATH",
        "OFFSET", "SIZE", "KIND", "POLICY", "SHA256"
    );
    fn rec(o: &mut String, r: &Region, h: &crate::hash::HashedNode, depth: usize) {
        let off = match r.space {
            Space::Image => format!("{:#010x}", r.offset),
            Space::Decompressed => format!("~{:#09x}", r.offset),
        };
        let label = if r.path.is_empty() {
            "/"
        } else {
            r.name.as_str()
        };
        let extra = crate::finding::display_name(&r.attrs)
            .filter(|n| !label.contains(n.as_str()))
            .map(|n| format!("  \"{n}\""))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "{:<12} {:<10} {:<13} {:<8} {:<16} {}{}{}",
            off,
            format!("{:#x}", r.size),
            r.kind.as_str(),
            policy_str(r.policy),
            short(&h.digests.digest),
            "  ".repeat(depth),
            label,
            extra
        );
        for n in &r.notes {
            let _ = writeln!(
                o,
                "{:>62}{}! {}: {}",
                "",
                "  ".repeat(depth),
                n.code,
                n.message
            );
        }
        for (c, hc) in r.children.iter().zip(&h.children) {
            rec(o, c, hc, depth + 1);
        }
    }
    rec(&mut o, root, digests, 0);
    o
}

fn policy_str(p: Policy) -> &'static str {
    p.as_str()
}
