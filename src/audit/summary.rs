//! The summary of an audit, built from its rows with bounded memory: counters keyed by things whose number
//! does not grow with the fleet (verdicts, codes, products of the catalogue, region paths) and bounded
//! top-N lists. Every collection is ordered by a total order, so the summary does not depend on the order
//! in which rows arrive: the merge of N shards is byte-identical to one unsharded run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::finding::Verdict;

use super::results::{ImageRow, Row, RunRow, SkippedRow};
use super::shard::Shard;

/// Length of the top-N lists.
pub const TOP_N: usize = 10;
/// Most distinct region paths counted (further new paths are counted under `(other)`).
pub const MAX_REGION_KEYS: usize = 50_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictCounts {
    pub clean: u64,
    pub findings: u64,
    pub error: u64,
}

impl VerdictCounts {
    fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Clean => self.clean += 1,
            Verdict::Findings => self.findings += 1,
            Verdict::Error => self.error += 1,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeCount {
    /// Images with at least one finding of this code.
    pub images: u64,
    /// Findings of this code in all images.
    pub findings: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranked {
    pub path: String,
    pub value: u64,
}

/// The fleet summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub images: u64,
    pub bytes: u64,
    pub verdicts: VerdictCounts,
    pub exit_code: i32,
    /// Images compared against a manifest whose signature was NOT verified (`--insecure-unsigned`): their
    /// verdicts prove nothing about the vendor's firmware.
    #[serde(default)]
    pub unverified_baselines: u64,
    /// Why the exit code is 2 when no image could be decided at all, and other run-level problems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    pub skipped: BTreeMap<String, u64>,
    pub findings_by_code: BTreeMap<String, CodeCount>,
    pub errors_by_code: BTreeMap<String, u64>,
    /// `vendor product component version` (or `unknown-firmware`, or `-` when undecided) → verdicts.
    pub by_product: BTreeMap<String, VerdictCounts>,
    /// Region paths with findings in the most images.
    pub regions_failing_most: Vec<Ranked>,
    pub largest: Vec<Ranked>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowest: Option<Vec<Ranked>>,
}

/// Builds a [`Summary`] row by row.
#[derive(Debug, Default)]
pub struct Builder {
    s: Summary,
    regions: BTreeMap<String, u64>,
    slowest: Vec<Ranked>,
    timing: bool,
    shards: Vec<Shard>,
    problems: Vec<String>,
    runs: u64,
    ends: u64,
}

/// Inserts into a bounded top-N list ordered by value descending, then path ascending.
fn push_top(list: &mut Vec<Ranked>, r: Ranked) {
    let pos = list.partition_point(|x| {
        (std::cmp::Reverse(x.value), &x.path) < (std::cmp::Reverse(r.value), &r.path)
    });
    if pos < TOP_N {
        list.insert(pos, r);
        list.truncate(TOP_N);
    }
}

fn product_key(row: &ImageRow) -> String {
    match &row.manifest {
        Some(m) => {
            let p = &m.product;
            format!("{} {} {} {}", p.vendor, p.product, p.component, p.version)
        }
        None if row
            .findings
            .iter()
            .any(|f| f.code == crate::finding::Code::UnknownFirmware) =>
        {
            "unknown-firmware".into()
        }
        None => "-".into(),
    }
}

impl Builder {
    /// `timing`: keep the slowest-images list (it differs between runs, so byte-identical comparisons turn
    /// it off).
    pub fn new(timing: bool) -> Builder {
        Builder {
            timing,
            ..Builder::default()
        }
    }

    pub fn add(&mut self, row: &Row) {
        match row {
            Row::Run(r) => self.run(r),
            Row::Image(r) => self.image(r),
            Row::Skipped(r) => self.skipped(r),
            Row::End(_) => self.ends += 1,
        }
    }

    fn run(&mut self, r: &RunRow) {
        self.runs += 1;
        if let Some(s) = r.shard {
            self.shards.push(s);
        }
    }

    fn skipped(&mut self, r: &SkippedRow) {
        *self.s.skipped.entry(r.reason.clone()).or_default() += 1;
    }

    pub fn image(&mut self, r: &ImageRow) {
        let s = &mut self.s;
        s.images += 1;
        s.bytes = s.bytes.saturating_add(r.size);
        s.verdicts.add(r.verdict);
        if r.manifest.as_ref().is_some_and(|m| !m.verified) {
            s.unverified_baselines += 1;
        }
        s.by_product
            .entry(product_key(r))
            .or_default()
            .add(r.verdict);
        if let Some(e) = &r.error {
            *s.errors_by_code
                .entry(e.code.as_str().to_string())
                .or_default() += 1;
        }
        let mut codes: BTreeMap<&str, u64> = BTreeMap::new();
        let mut paths: Vec<&str> = Vec::new();
        for f in r.findings.iter().filter(|f| f.counts()) {
            *codes.entry(f.code.as_str()).or_default() += 1;
            paths.push(f.path.as_str());
        }
        // Findings beyond the row cap are counted under their image but not by code.
        for (c, n) in codes {
            let e = s.findings_by_code.entry(c.to_string()).or_default();
            e.images += 1;
            e.findings += n;
        }
        paths.sort_unstable();
        paths.dedup();
        for p in paths {
            let key = if p.is_empty() { "/" } else { p };
            if let Some(n) = self.regions.get_mut(key) {
                *n += 1;
            } else if self.regions.len() < MAX_REGION_KEYS {
                self.regions.insert(key.to_string(), 1);
            } else {
                *self.regions.entry("(other)".into()).or_default() += 1;
            }
        }
        push_top(
            &mut s.largest,
            Ranked {
                path: r.file(),
                value: r.size,
            },
        );
        if let (true, Some(ms)) = (self.timing, r.elapsed_ms) {
            push_top(
                &mut self.slowest,
                Ranked {
                    path: r.file(),
                    value: ms,
                },
            );
        }
    }

    /// A run-level problem (unparsable lines, missing shards): makes the exit code 2.
    pub fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    pub fn finish(mut self) -> Summary {
        let mut regions: Vec<Ranked> = Vec::new();
        for (path, value) in std::mem::take(&mut self.regions) {
            push_top(&mut regions, Ranked { path, value });
        }
        self.s.regions_failing_most = regions;
        if self.timing {
            self.s.slowest = Some(self.slowest);
        }
        self.shards.sort_by_key(|s| (s.count, s.index));
        self.shards.dedup();
        if let Some(n) = self.shards.first().map(|s| s.count) {
            if self.shards.iter().any(|s| s.count != n) {
                self.problems
                    .push("results come from shardings with different shard counts".into());
            } else {
                let missing: Vec<String> = (0..n)
                    .filter(|i| !self.shards.iter().any(|s| s.index == *i))
                    .map(|i| format!("{i}/{n}"))
                    .collect();
                if !missing.is_empty() && n > 1 && self.shards.len() > 1 {
                    self.problems.push(format!(
                        "shards missing from the merge: {}",
                        missing.join(", ")
                    ));
                }
            }
        }
        if self.runs > self.ends {
            self.problems.push(format!(
                "{} run(s) did not finish (no end row: killed or still running); their results are incomplete",
                self.runs - self.ends
            ));
        }
        if self.s.images == 0 {
            self.problems.push("nothing scanned".into());
        }
        self.s.problems = self.problems;
        self.s.exit_code = if !self.s.problems.is_empty() || self.s.verdicts.error > 0 {
            2
        } else if self.s.verdicts.findings > 0 {
            1
        } else {
            0
        };
        self.s
    }
}

fn table(o: &mut String, title: &str, head: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n{title}");
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.chars().count());
            }
        }
    }
    let line = |o: &mut String, cells: Vec<String>| {
        let mut s = String::from("  ");
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i].saturating_sub(c.chars().count());
            // Numbers right-aligned, text left-aligned.
            if i > 0 && c.chars().all(|ch| ch.is_ascii_digit()) {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                if i + 1 < cells.len() {
                    s.push_str(&" ".repeat(pad));
                }
            }
            if i + 1 < cells.len() {
                s.push_str("  ");
            }
        }
        let _ = writeln!(o, "{}", s.trim_end());
    };
    line(o, head.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(o, r);
    }
}

impl Summary {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The human summary: a few tables.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let v = &self.verdicts;
        let _ = writeln!(
            o,
            "fwscan audit: {} images ({} bytes): {} clean, {} with findings, {} undecided",
            self.images, self.bytes, v.clean, v.findings, v.error
        );
        if self.unverified_baselines > 0 {
            let _ = writeln!(
                o,
                "trust: UNVERIFIED: {} image(s) compared against manifests whose signatures were not checked",
                self.unverified_baselines
            );
        }
        for p in &self.problems {
            let _ = writeln!(o, "problem: {p}");
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(
                o,
                "skipped (not images): {}",
                self.skipped
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        table(
            &mut o,
            "By product/version:",
            &["PRODUCT", "CLEAN", "FINDINGS", "ERROR"],
            self.by_product
                .iter()
                .map(|(k, c)| {
                    vec![
                        k.clone(),
                        c.clean.to_string(),
                        c.findings.to_string(),
                        c.error.to_string(),
                    ]
                })
                .collect(),
        );
        table(
            &mut o,
            "Findings by code:",
            &["CODE", "IMAGES", "FINDINGS"],
            self.findings_by_code
                .iter()
                .map(|(k, c)| vec![k.clone(), c.images.to_string(), c.findings.to_string()])
                .collect(),
        );
        table(
            &mut o,
            "Undecided images by error code:",
            &["CODE", "IMAGES"],
            self.errors_by_code
                .iter()
                .map(|(k, n)| vec![k.clone(), n.to_string()])
                .collect(),
        );
        let ranked = |l: &[Ranked]| -> Vec<Vec<String>> {
            l.iter()
                .map(|r| vec![r.path.clone(), r.value.to_string()])
                .collect()
        };
        table(
            &mut o,
            "Regions failing most:",
            &["REGION", "IMAGES"],
            ranked(&self.regions_failing_most),
        );
        table(
            &mut o,
            "Largest images:",
            &["IMAGE", "BYTES"],
            ranked(&self.largest),
        );
        if let Some(s) = &self.slowest {
            table(&mut o, "Slowest images:", &["IMAGE", "MS"], ranked(s));
        }
        let _ = writeln!(
            o,
            "\nverdict: {} (exit {})",
            match self.exit_code {
                0 => "CLEAN",
                1 => "FINDINGS",
                _ => "UNDECIDED",
            },
            self.exit_code
        );
        o
    }
}

impl Summary {
    /// This summary as the HTML page of `command` (`audit` or `merge`) shows it.
    pub fn fleet(&self, command: &str) -> crate::report::html::Fleet {
        let ranked = |l: &[Ranked]| -> Vec<(String, u64)> {
            l.iter().map(|r| (r.path.clone(), r.value)).collect()
        };
        crate::report::html::Fleet {
            command: command.to_string(),
            images: self.images,
            bytes: self.bytes,
            clean: self.verdicts.clean,
            findings: self.verdicts.findings,
            error: self.verdicts.error,
            exit_code: self.exit_code,
            unverified: self.unverified_baselines,
            problems: self.problems.clone(),
            skipped: self.skipped.iter().map(|(k, n)| (k.clone(), *n)).collect(),
            by_product: self
                .by_product
                .iter()
                .map(|(k, c)| (k.clone(), [c.clean, c.findings, c.error]))
                .collect(),
            by_code: self
                .findings_by_code
                .iter()
                .map(|(k, c)| (k.clone(), [c.images, c.findings]))
                .collect(),
            errors_by_code: self
                .errors_by_code
                .iter()
                .map(|(k, n)| (k.clone(), *n))
                .collect(),
            regions_failing_most: ranked(&self.regions_failing_most),
            largest: ranked(&self.largest),
            slowest: self.slowest.as_deref().map(ranked),
        }
    }

    /// The trust status of the baselines an audit used: `verified` or `UNVERIFIED`.
    pub fn trust_status(&self) -> &'static str {
        if self.unverified_baselines > 0 {
            "UNVERIFIED"
        } else {
            "verified"
        }
    }

    /// SARIF run `properties` (and JUnit properties) carrying the trust status.
    pub fn trust_properties(&self) -> serde_json::Value {
        serde_json::json!({ "fwscan": {
            "baselines_verified": self.unverified_baselines == 0,
            "trust": self.trust_status(),
            "unverified_images": self.unverified_baselines,
        }})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_is_order_independent() {
        let items: Vec<Ranked> = (0..40)
            .map(|i| Ranked {
                path: format!("p{i:02}"),
                value: (i * 7 % 13) as u64,
            })
            .collect();
        let mut a = Vec::new();
        for r in items.iter().cloned() {
            push_top(&mut a, r);
        }
        let mut b = Vec::new();
        for r in items.iter().rev().cloned() {
            push_top(&mut b, r);
        }
        assert_eq!(a, b);
        assert_eq!(a.len(), TOP_N);
        assert!(a.windows(2).all(|w| w[0].value >= w[1].value));
    }

    #[test]
    fn empty_is_nothing_scanned() {
        let s = Builder::new(false).finish();
        assert_eq!(s.exit_code, 2);
        assert!(s.problems.iter().any(|p| p == "nothing scanned"));
    }
}
