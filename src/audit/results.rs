//! JSON Lines rows of an audit: one `run` header per run, then one `image` row per image and one `skipped`
//! row per entry that is not an image. Each row is serialized first and written with one `write_all`
//! followed by a flush, so a killed audit leaves only complete lines behind.

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::finding::{Code, ErrorInfo, Finding, ToolInfo, Verdict};
use crate::manifest::Product;

use super::catalogue::SelectedBy;
use super::shard::Shard;

/// Schema version of audit rows.
pub const ROW_SCHEMA_VERSION: u32 = 1;

/// Most findings kept in one row (the count of all of them is kept too).
pub const MAX_ROW_FINDINGS: usize = 1000;

/// One line of an audit's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Row {
    Run(RunRow),
    Image(Box<ImageRow>),
    Skipped(SkippedRow),
    /// The last line of a run that finished: a results file without it was cut short (killed run).
    End(EndRow),
}

/// Written after the last result of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndRow {
    /// Image and skipped rows written by this run.
    pub rows: u64,
    pub finished: String,
}

/// The first line of every results file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRow {
    pub schema_version: u32,
    pub tool: ToolInfo,
    pub roots: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    pub manifests_accepted: usize,
    #[serde(default)]
    pub manifests_refused: Vec<RefusedManifest>,
    pub started: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefusedManifest {
    pub path: String,
    pub code: Code,
    pub message: String,
}

/// The manifest an image was compared with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowManifest {
    pub path: String,
    pub product: Product,
    pub sequence: u64,
    pub selected_by: SelectedBy,
    /// Structure score in per mille (`selected_by: structure`, see docs/audit.md), when computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u32>,
    /// False when accepted with `--insecure-unsigned`.
    pub verified: bool,
    pub trust: String,
}

/// The result for one image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRow {
    /// Path relative to its root, `/`-separated (the shard key).
    pub path: String,
    /// The root it was found under, as given.
    pub root: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Detected top-level format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    pub verdict: Verdict,
    pub exit_code: i32,
    pub manifest: Option<RowManifest>,
    pub findings_total: usize,
    pub findings: Vec<Finding>,
    pub error: Option<ErrorInfo>,
    /// Wall time of this image (absent with `--no-timing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
}

/// An entry that was not scanned because it is not an image (FIFO, socket, device, link, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkippedRow {
    pub path: String,
    pub root: String,
    pub reason: String,
}

impl ImageRow {
    /// An error row (the image could not be decided).
    pub fn error(root: &str, rel: &str, size: u64, code: Code, message: String) -> ImageRow {
        ImageRow {
            path: rel.to_string(),
            root: root.to_string(),
            size,
            sha256: None,
            format: None,
            verdict: Verdict::Error,
            exit_code: Verdict::Error.exit_code(),
            manifest: None,
            findings_total: 0,
            findings: Vec::new(),
            error: Some(ErrorInfo { code, message }),
            elapsed_ms: None,
        }
    }

    /// The file's path as the user would type it.
    pub fn file(&self) -> String {
        join_root(&self.root, &self.path)
    }
}

/// `root/rel`.
pub fn join_root(root: &str, rel: &str) -> String {
    if rel.is_empty() {
        root.to_string()
    } else if root.is_empty() {
        rel.to_string()
    } else {
        format!("{}/{}", root.trim_end_matches('/'), rel)
    }
}

impl Row {
    /// One JSON line with its newline.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// Where rows go: each row is written with one `write_all` and flushed.
pub struct RowWriter {
    out: Box<dyn Write + Send>,
    pub rows: u64,
}

impl std::fmt::Debug for RowWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowWriter")
            .field("rows", &self.rows)
            .finish()
    }
}

impl RowWriter {
    /// Rows go to `out` unbuffered (pass a `File` or stdout, not a `BufWriter`).
    pub fn new(out: Box<dyn Write + Send>) -> RowWriter {
        RowWriter { out, rows: 0 }
    }

    pub fn write(&mut self, row: &Row) -> std::io::Result<()> {
        let line = row.to_line();
        self.out.write_all(line.as_bytes())?;
        self.out.flush()?;
        self.rows += 1;
        Ok(())
    }
}

/// Longest line [`read_rows`] accepts (a row holds at most [`MAX_ROW_FINDINGS`] findings).
pub const MAX_LINE: u64 = 64 << 20;

/// Reads rows from JSON Lines text, line by line (bounded memory: lines longer than [`MAX_LINE`] are skipped
/// and reported). Lines that do not parse (e.g. the cut last line of a killed run) are passed to `bad` with
/// their 1-based number.
pub fn read_rows<R: std::io::BufRead>(
    mut r: R,
    mut row: impl FnMut(Row),
    mut bad: impl FnMut(usize, String),
) -> std::io::Result<()> {
    use std::io::{BufRead, Read};
    let mut buf = Vec::new();
    let mut n = 0usize;
    loop {
        buf.clear();
        let got = (&mut r).take(MAX_LINE + 1).read_until(b'\n', &mut buf)?;
        if got == 0 {
            return Ok(());
        }
        n += 1;
        if buf.len() as u64 > MAX_LINE && buf.last() != Some(&b'\n') {
            // Discard the rest of the overlong line.
            loop {
                buf.clear();
                let more = (&mut r).take(1 << 20).read_until(b'\n', &mut buf)?;
                if more == 0 || buf.last() == Some(&b'\n') {
                    break;
                }
            }
            bad(n, format!("line longer than {MAX_LINE} bytes"));
            continue;
        }
        let line = String::from_utf8_lossy(&buf);
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Row>(&line) {
            Ok(r) => row(r),
            Err(e) => bad(n, e.to_string()),
        }
    }
}

impl ImageRow {
    /// This row as the HTML page shows it.
    pub fn fleet_image(&self) -> crate::report::html::FleetImage<'_> {
        let m = self.manifest.as_ref();
        crate::report::html::FleetImage {
            file: self.file(),
            size: self.size,
            exit_code: self.exit_code,
            product: m.map(|m| {
                let p = &m.product;
                format!("{} {} {} {}", p.vendor, p.product, p.component, p.version)
            }),
            manifest: m.map(|m| m.path.as_str()),
            verified: m.map(|m| m.verified),
            selected_by: m.map(|m| {
                serde_json::to_value(m.selected_by)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            }),
            findings: &self.findings,
            findings_total: self.findings_total,
            error: self.error.as_ref(),
            elapsed_ms: self.elapsed_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_bad_lines_are_reported() {
        let a = Row::Skipped(SkippedRow {
            path: "p".into(),
            root: "r".into(),
            reason: "fifo".into(),
        });
        let b = Row::Image(Box::new(ImageRow::error(
            "r",
            "x.bin",
            3,
            Code::ReadError,
            "m".into(),
        )));
        let text = format!("{}\n{}{{\"kind\":\"ima", a.to_line(), b.to_line());
        let mut ok = 0;
        let mut bad = Vec::new();
        read_rows(text.as_bytes(), |_| ok += 1, |n, _| bad.push(n)).unwrap();
        assert_eq!(ok, 2);
        assert_eq!(bad, vec![4]);
    }
}
