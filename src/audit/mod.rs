//! Fleet audits: walk directory trees of images, choose the right verified manifest for each image,
//! compare, and stream one JSON Lines row per image; then summarize with bounded memory.
//!
//! ```text
//! walk (one thread, sorted, shard filter) --bounded channel--> N workers (one image each): read → identify →
//!   select manifest → parse → compare::scan → row --mutex--> write_all + flush, summary counters
//! ```
//!
//! Nothing of an image is kept after its row is written: memory is bounded by the images in flight (one
//! per worker), the catalogue, and the summary's counters.

pub mod catalogue;
pub mod results;
pub mod shard;
pub mod summary;
pub mod walk;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::finding::ToolInfo;
use crate::finding::{Code, ErrorInfo, Finding, Verdict};
use crate::formats::ParseOptions;
use crate::hash;
use crate::input::{self, ReadOptions};

use catalogue::{Catalogue, ImageFacts, SelectedBy, Selection};
use results::{ImageRow, RefusedManifest, Row, RowManifest, RowWriter, RunRow, SkippedRow};
use shard::Shard;
use summary::{Builder, Summary};
use walk::{Entry, FileId, WalkOptions};

/// A hook called with each image's path just before it is read (tests use it to change files).
pub type BeforeRead = Arc<dyn Fn(&Path) + Send + Sync>;

/// Options of [`run`].
#[derive(Clone, Default)]
pub struct AuditOptions {
    pub roots: Vec<PathBuf>,
    pub walk: WalkOptions,
    pub shard: Option<Shard>,
    /// Cap on all decompressed data of one image.
    pub max_decompressed: u64,
    /// Most regions built for one image ([`ParseOptions::max_regions`]; 0 means the default).
    pub max_regions: u64,
    /// Record per-image wall time (and the slowest list).
    pub timing: bool,
    /// Record the SHA-256 of every image (one more hash pass over images that are compared region by
    /// region); otherwise it is recorded only where manifest selection needed it.
    pub image_digests: bool,
    pub before_read: Option<BeforeRead>,
    /// Baseline-free checks (signature rules, Secure Boot) run beside each comparison.
    pub rules: Option<std::sync::Arc<crate::check::RuleSet>>,
    /// What fails the run (`--fail-on`, `--ignore-category`); applied to each row's findings.
    pub fail_policy: crate::finding::FailPolicy,
    /// Decoder outputs shared by the run's images (in memory, and on disk with `--cache`):
    /// [`crate::formats::cache`].
    pub cache: Option<std::sync::Arc<crate::formats::cache::DecompressCache>>,
    /// Static bytes verified by earlier images of the run, which decide equal nodes of later images
    /// by comparison instead of hashing ([`crate::hash::KnownBytes`]; off with `--no-cache`).
    pub known: Option<std::sync::Arc<crate::hash::KnownBytes>>,
}

impl AuditOptions {
    /// The region cap of one image ([`AuditOptions::max_regions`], or the default when 0).
    pub fn regions(&self) -> u64 {
        if self.max_regions == 0 {
            crate::formats::DEFAULT_MAX_REGIONS
        } else {
            self.max_regions
        }
    }
}

impl std::fmt::Debug for AuditOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditOptions")
            .field("roots", &self.roots)
            .field("walk", &self.walk)
            .field("shard", &self.shard)
            .finish()
    }
}

/// Progress callbacks (progress bar, `--verbose`). Called from worker threads.
pub trait Observer: Send + Sync {
    /// An entry was found by the walk (its size, 0 when not a file).
    fn found(&self, _size: u64) {}
    /// A row was written.
    fn row(&self, _row: &Row) {}
}

/// An observer that does nothing.
#[derive(Debug)]
pub struct Quiet;
impl Observer for Quiet {}

struct Sink {
    out: RowWriter,
    builder: Builder,
    write_error: Option<String>,
}

/// The root label used in rows: the directory as given, or the parent of a root that is a file.
fn root_label(root: &Path) -> String {
    if root.is_dir() {
        root.display().to_string()
    } else {
        root.parent()
            .map(|p| p.display().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".into())
    }
}

/// Runs an audit: writes the header row and every result row to `out`, returns the summary.
pub fn run(
    opts: &AuditOptions,
    cat: &Catalogue,
    out: RowWriter,
    observer: &dyn Observer,
) -> Summary {
    let labels: Vec<String> = opts.roots.iter().map(|r| root_label(r)).collect();
    let header = Row::Run(RunRow {
        schema_version: results::ROW_SCHEMA_VERSION,
        tool: ToolInfo::default(),
        roots: labels.clone(),
        shard: opts.shard,
        manifests_accepted: cat.entries.len(),
        manifests_refused: cat
            .refused
            .iter()
            .map(|(p, r)| RefusedManifest {
                path: p.display().to_string(),
                code: r.code,
                message: r.message.clone(),
            })
            .collect(),
        started: crate::manifest::rfc3339(std::time::SystemTime::now()),
    });
    let sink = Mutex::new(Sink {
        out,
        builder: Builder::new(opts.timing),
        write_error: None,
    });
    let emit = |row: Row| {
        observer.row(&row);
        let mut s = match sink.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if let Err(e) = s.out.write(&row) {
            if s.write_error.is_none() {
                s.write_error = Some(format!("writing results: {e}"));
            }
        }
        s.builder.add(&row);
    };
    emit(header);

    let (tx, rx) = std::sync::mpsc::sync_channel::<Entry>(64);
    let shard = opts.shard;
    let walk_opts = opts.walk.clone();
    let roots = opts.roots.clone();
    // One image per worker at a time: dedicated threads pull from the channel, so a worker waiting inside
    // a parallel hash never picks up a second image (rayon's work stealing would), and the images in
    // memory are bounded by the worker count (`--jobs`).
    let rx = Mutex::new(rx);
    let handle = |e: Entry| -> Row {
        match e {
            Entry::File {
                root,
                rel,
                path,
                meta,
            } => {
                // A bug on one image (a parser panic) must not end the audit of the fleet.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    scan_one(cat, opts, &labels[root], &rel, &path, meta)
                }));
                Row::Image(Box::new(r.unwrap_or_else(|p| {
                    let what = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".into());
                    ImageRow::error(
                        &labels[root],
                        &rel,
                        meta.size,
                        Code::InternalError,
                        format!("{}: internal error: {what}", path.display()),
                    )
                })))
            }
            Entry::Skipped {
                root, rel, reason, ..
            } => Row::Skipped(SkippedRow {
                path: rel,
                root: labels[root].clone(),
                reason: reason.into(),
            }),
            Entry::Error {
                root,
                rel,
                code,
                message,
                ..
            } => Row::Image(Box::new(ImageRow::error(
                &labels[root],
                &rel,
                0,
                code,
                message,
            ))),
        }
    };
    std::thread::scope(|scope| {
        scope.spawn(move || {
            walk::walk(&roots, &walk_opts, |e| {
                if shard.is_some_and(|s| !s.contains(e.rel())) {
                    return true;
                }
                observer.found(match &e {
                    Entry::File { meta, .. } => meta.size,
                    _ => 0,
                });
                tx.send(e).is_ok()
            });
        });
        for _ in 0..rayon::current_num_threads().max(1) {
            let (rx, handle, emit) = (&rx, &handle, &emit);
            scope.spawn(move || loop {
                let next = match rx.lock() {
                    Ok(r) => r.recv(),
                    Err(p) => p.into_inner().recv(),
                };
                let Ok(e) = next else { break };
                emit(handle(e));
            });
        }
    });
    let written = match sink.lock() {
        Ok(s) => s.out.rows,
        Err(p) => p.into_inner().out.rows,
    };
    emit(Row::End(results::EndRow {
        rows: written.saturating_sub(1),
        finished: crate::manifest::rfc3339(std::time::SystemTime::now()),
    }));
    let s = match sink.into_inner() {
        Ok(s) => s,
        Err(p) => p.into_inner(),
    };
    let mut b = s.builder;
    if let Some(e) = s.write_error {
        b.problem(e);
    }
    b.finish()
}

/// Scans one image file into its row. Never panics on bad input; every failure is an error row.
pub fn scan_one(
    cat: &Catalogue,
    opts: &AuditOptions,
    root: &str,
    rel: &str,
    path: &Path,
    listed: FileId,
) -> ImageRow {
    let t0 = Instant::now();
    let mut row = match read_listed(opts, path, &listed) {
        Ok(data) => {
            let row = scan_inner(cat, opts, root, rel, path, &data);
            // Everything of this image that referred to its bytes is gone: its worker's next image is
            // read into the same memory.
            input::recycle(data);
            row
        }
        Err(e) => ImageRow::error(root, rel, listed.size, e.code, e.message),
    };
    if opts.timing {
        row.elapsed_ms = Some(t0.elapsed().as_millis() as u64);
    }
    row
}

fn scan_inner(
    cat: &Catalogue,
    opts: &AuditOptions,
    root: &str,
    rel: &str,
    path: &Path,
    data: &Arc<input::Data>,
) -> ImageRow {
    let size = data.len() as u64;
    // One pipeline, one parse: selection parses the image as the comparison with each candidate will
    // (the Scanner's parse options), and the chosen manifest's tree is compared.
    let scanner = crate::scan::Scanner::new(
        ParseOptions {
            max_decompressed_total: opts.max_decompressed,
            max_regions: opts.regions(),
            cache: opts.cache.clone(),
            ..ParseOptions::default()
        },
        opts.rules.clone(),
    )
    .with_fail_policy(opts.fail_policy.clone())
    .with_known(opts.known.clone());
    let mut facts = ImageFacts::new(data, opts.max_decompressed).with_scanner(scanner.clone());
    if opts.image_digests {
        facts.sha256();
    }
    let format = facts.format.clone();
    let mut row = ImageRow::error(root, rel, size, Code::InternalError, String::new());
    row.format = Some(format.clone());
    facts.product = match cat.identity(rel, path) {
        Ok(p) => p,
        Err(r) => return undecided(row, r.code, r.message),
    };
    let selection = cat.select(rel, &mut facts);
    row.sha256 = facts.sha256_if_computed().map(str::to_string);
    let (idx, how, score) = match selection {
        Selection::Chosen(i, how, score) => (i, how, score),
        Selection::Ambiguous(ix) => return ambiguous_row(cat, row, &ix),
        Selection::Refused(r) => return undecided(row, r.code, r.message),
        Selection::Unknown => return unknown_row(cat, row, &facts, size, &format),
    };
    let entry = &cat.entries[idx];
    let v = &entry.verified;
    let man = v.manifest();
    row.error = None;
    row.manifest = Some(RowManifest {
        path: entry.path.display().to_string(),
        product: man.product.clone(),
        sequence: man.sequence,
        selected_by: how,
        score,
        verified: v.trust().verified,
        trust: v.trust().summary.clone(),
    });
    let mut findings = if how == SelectedBy::ExactDigest {
        // Byte-identical to the golden image: the comparison cannot find anything.
        Vec::new()
    } else {
        compare_chosen(&scanner, entry, facts, data, rel, size, &format)
    };
    // The dump's boot event log, when one lies beside it: the dump is clean only if the log binds.
    match eventlog_sidecar(path, data, opts) {
        Ok(f) => findings.extend(f),
        Err(e) => return undecided(row, e.code, e.message),
    }
    crate::finding::sort_findings(&mut findings);
    row.verdict = Verdict::of(&findings);
    row.exit_code = row.verdict.exit_code();
    row.findings_total = findings.len();
    findings.truncate(results::MAX_ROW_FINDINGS);
    row.findings = findings;
    row
}

/// The suffix of a dump's boot event log sidecar: `X.bin.eventlog` (the TCG event log of the boot that
/// ran the firmware `X.bin` was read from; docs/eventlog.md).
pub const EVENTLOG_SIDECAR_SUFFIX: &str = ".eventlog";

/// The suffix of the PCR values sidecar `X.bin.pcrs`: the PCRs the TPM reported for that boot (from a
/// verified quote; `tpm2_pcrread` YAML or `INDEX HEX` lines), compared with the replay of `X.bin.eventlog`
/// as `fwscan eventlog --pcrs` does (`pcr-mismatch`).
pub const PCRS_SIDECAR_SUFFIX: &str = ".pcrs";

/// Binds the event log sidecar of `path`, if there is one, to the image: its findings
/// (`measurement-unexplained`), and with a PCR sidecar, the comparison of the replay with the TPM's values
/// (`pcr-mismatch`). A sidecar that cannot be read or parsed makes the row undecided, as does a PCR sidecar
/// without a log.
fn eventlog_sidecar(
    path: &Path,
    data: &Arc<input::Data>,
    opts: &AuditOptions,
) -> Result<Vec<Finding>, ErrorInfo> {
    let mut side = path.as_os_str().to_owned();
    side.push(EVENTLOG_SIDECAR_SUFFIX);
    let side = PathBuf::from(side);
    let mut pcrs_side = path.as_os_str().to_owned();
    pcrs_side.push(PCRS_SIDECAR_SUFFIX);
    let pcrs_side = PathBuf::from(pcrs_side);
    if !side.exists() {
        if pcrs_side.exists() {
            // PCR values were recorded to be compared with the boot's log: without the log nothing can be.
            return Err(ErrorInfo {
                code: Code::ReadError,
                message: format!(
                    "{}: PCR values without the event log they are compared with ({} is missing)",
                    pcrs_side.display(),
                    side.display()
                ),
            });
        }
        return Ok(Vec::new());
    }
    let reported = if pcrs_side.exists() {
        let read = ReadOptions {
            max_size: 1 << 20,
            allow_mmap: false,
        };
        let text = input::read_image(&pcrs_side, &read)
            .map_err(|e| e.to_string())
            .and_then(|d| String::from_utf8(d.to_vec()).map_err(|_| "not UTF-8 text".to_string()))
            .and_then(|t| crate::evidence::pcrs::parse_reported(&t))
            .map_err(|e| ErrorInfo {
                code: Code::ReadError,
                message: format!("{}: {e}", pcrs_side.display()),
            })?;
        Some(text)
    } else {
        None
    };
    let limits = crate::formats::tpm::eventlog::Limits::default();
    let read = ReadOptions {
        max_size: limits.max_size,
        allow_mmap: false,
    };
    let log = input::read_image(&side, &read).map_err(|e| ErrorInfo {
        code: Code::ReadError,
        message: e.to_string(),
    })?;
    // EDK2 measures the volumes it decompressed: the binding parses eagerly.
    let tree = crate::formats::parse_image(
        Arc::clone(data),
        &ParseOptions {
            eager: true,
            max_decompressed_total: opts.max_decompressed,
            max_regions: opts.regions(),
            ..ParseOptions::default()
        },
    );
    let images = [(path.display().to_string(), tree)];
    let side_name = side.display().to_string();
    let inputs = crate::evidence::Inputs {
        log_path: &side_name,
        log: &log[..],
        images: &images,
        reported: reported.as_ref(),
        predict: false,
    };
    crate::evidence::examine(&inputs, &limits)
        .map(|(_, f)| f)
        .map_err(|e| ErrorInfo {
            code: Code::EventlogInvalid,
            message: format!("{side_name}: malformed event log at {e}"),
        })
}

/// Reads the image and makes sure the file read is the file the walk listed (same inode, size and
/// modification time): a file replaced, modified or removed in between is a `file-changed` error, never
/// scanned as if it were the one listed. A read failure is a `read-error`.
fn read_listed(
    opts: &AuditOptions,
    path: &Path,
    listed: &FileId,
) -> Result<Arc<input::Data>, ErrorInfo> {
    if let Some(h) = &opts.before_read {
        h(path);
    }
    let read = ReadOptions {
        max_size: opts.walk.max_size,
        allow_mmap: true,
    };
    let error = |code, message| ErrorInfo { code, message };
    let data = match input::read_image(path, &read) {
        Ok(d) => d,
        Err(e @ crate::Error::FileChanged { .. }) => {
            return Err(error(Code::FileChanged, e.to_string()))
        }
        Err(e) => return Err(error(Code::ReadError, e.to_string())),
    };
    // The file read must be the file listed: same inode, size and modification time.
    let now = input::metadata(path).map(|m| FileId::of(&m));
    if now.as_ref().ok() != Some(listed) || data.len() as u64 != listed.size {
        let what = match now {
            Ok(n) if (n.dev, n.ino) != (listed.dev, listed.ino) => "replaced".to_string(),
            Ok(n) => format!("modified (size {} -> {} bytes)", listed.size, n.size),
            Err(e) => format!("removed ({e})"),
        };
        return Err(error(
            Code::FileChanged,
            format!(
                "{}: file {what} between listing and reading",
                path.display()
            ),
        ));
    }
    Ok(data)
}

/// The row of an image no manifest could be chosen for, undecided: the error says why, and the verdict
/// stays the error row's (never clean).
fn undecided(mut row: ImageRow, code: Code, message: String) -> ImageRow {
    row.error = Some(ErrorInfo { code, message });
    row
}

/// The row of an image several manifests match equally well: undecided, naming them all.
fn ambiguous_row(cat: &Catalogue, row: ImageRow, ix: &[usize]) -> ImageRow {
    let names: Vec<String> = ix
        .iter()
        .map(|&i| cat.entries[i].path.display().to_string())
        .collect();
    undecided(
        row,
        Code::AmbiguousManifest,
        format!(
            "{} manifests match equally well: {}",
            names.len(),
            names.join(", ")
        ),
    )
}

/// The row of an image no accepted manifest matches. When the catalogue refused a manifest, that one
/// might have been the image's: undecided, not unknown. Otherwise an `unknown-firmware` finding, with the
/// image's SHA-256 (computed now if selection did not).
fn unknown_row(
    cat: &Catalogue,
    mut row: ImageRow,
    facts: &ImageFacts<'_>,
    size: u64,
    format: &str,
) -> ImageRow {
    if let Some((p, r)) = cat.refused.first() {
        // A refused manifest might have been the one for this image: undecided, not unknown.
        return undecided(
            row,
            r.code,
            format!(
                "no accepted manifest matches; {} manifest(s) of the catalogue were refused, e.g. {}: {}",
                cat.refused.len(),
                p.display(),
                r.message
            ),
        );
    }
    row.error = None;
    row.verdict = Verdict::Findings;
    row.exit_code = Verdict::Findings.exit_code();
    let sha = facts.sha256().to_string();
    row.sha256 = Some(sha.clone());
    row.findings = vec![Finding::general(
        Code::UnknownFirmware,
        match &facts.product {
            None => format!(
                "no approved manifest matches this image ({size} bytes, format {format}, sha256 {sha})"
            ),
            Some(p) => format!(
                "no approved manifest of product `{}` (the machine's identity, {}) matches this image ({size} bytes, format {format}, sha256 {sha})",
                p.product, p.source
            ),
        },
    )];
    row.findings_total = 1;
    row
}

/// Compares the image with the chosen manifest through the one scan pipeline; the findings, unsorted.
fn compare_chosen(
    scanner: &crate::scan::Scanner,
    entry: &catalogue::Entry,
    mut facts: ImageFacts<'_>,
    data: &Arc<input::Data>,
    rel: &str,
    size: u64,
    format: &str,
) -> Vec<Finding> {
    let v = &entry.verified;
    let man = v.manifest();
    // The tree selection parsed for this manifest (with the Scanner's options for it, and whatever
    // selection expanded in it) is the tree to compare. Without one (chosen by rules or by the map),
    // the tree parsed for the rules' GUIDs when it was parsed the way the manifest asks (no layout, the
    // same top-level format); otherwise the image is parsed now.
    let popts = scanner.parse_options(Some(man));
    let tree = facts.take_tree_for(man).or_else(|| {
        facts
            .take_tree()
            .filter(|_| popts.layout.is_none() && popts.format.as_deref() == Some(format))
    });
    let manifest_path = entry.path.display().to_string();
    let image = crate::report::ImageRef {
        path: rel.to_string(),
        size,
        sha256: None,
    };
    // A manifest of an image laid out otherwise (a release package's baseline) is compared part by
    // part, on the image parsed with its own layout.
    let pair = [(v, manifest_path.as_str())];
    // Top-level detection ran once, for the facts ("raw": nothing found; then the standalone formats
    // are tried by `choose`).
    let detected = Some(format).filter(|f| *f != "raw");
    let b = crate::scan::Baseline::choose_detected(&pair, &data[..], &scanner.parse, detected);
    let tree = tree.filter(|_| matches!(b, crate::scan::Baseline::Manifest(..)));
    // The whole file's SHA-256 (the exact-digest tier computed it) is the root's digest: a comparison
    // that needs it does not hash the image again.
    if let (Some(t), Some(d)) = (&tree, facts.sha256_if_computed()) {
        hash::remember_for(hash::Alg::Sha256, t, &data[..], d);
    }
    let report = match tree {
        Some(t) => scanner.run_tree("audit", image, t, b),
        None => {
            // The trees selection parsed are freed before the image is parsed again.
            drop(facts);
            scanner.run("audit", image, Arc::clone(data), b)
        }
    };
    report.findings
}

/// Merges results files: rebuilds the summary exactly as one unsharded run would have. Lines that do not
/// parse and duplicate images are run-level problems (exit 2).
pub fn merge(files: &[PathBuf], timing: bool) -> Result<Summary, crate::Error> {
    let mut b = Builder::new(timing);
    let mut seen: std::collections::HashSet<[u8; 16]> = std::collections::HashSet::new();
    let mut dups = 0u64;
    for f in files {
        let file = std::fs::File::open(f).map_err(|source| crate::Error::Io {
            path: f.clone(),
            error: source,
        })?;
        let mut bad: Vec<String> = Vec::new();
        results::read_rows(
            std::io::BufReader::new(file),
            |row| {
                if let Row::Image(r) = &row {
                    let key = hash::sha256(format!("{}\0{}", r.root, r.path).as_bytes());
                    let mut k = [0u8; 16];
                    k.copy_from_slice(&key[..16]);
                    if !seen.insert(k) {
                        dups += 1;
                        return;
                    }
                }
                b.add(&row);
            },
            |line, e| bad.push(format!("{}: line {line} does not parse: {e}", f.display())),
        )
        .map_err(|source| crate::Error::Io {
            path: f.clone(),
            error: source,
        })?;
        for p in bad.into_iter().take(10) {
            b.problem(p);
        }
    }
    if dups > 0 {
        b.problem(format!(
            "{dups} image rows appear more than once (the same results merged twice?)"
        ));
    }
    Ok(b.finish())
}
