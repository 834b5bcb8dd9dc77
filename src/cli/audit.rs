//! `fwscan audit`: scan every image under directory trees, each against the manifest chosen for it.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use fwscan::audit::catalogue::{Catalogue, LoadOptions};
use fwscan::audit::results::{self, Row, RowWriter};
use fwscan::audit::shard::Shard;
use fwscan::audit::summary::Summary;
use fwscan::audit::walk::WalkOptions;
use fwscan::audit::{self as lib, AuditOptions, Observer};
use fwscan::finding::Verdict;
use fwscan::report::junit::{self, Counts, JunitWriter, Outcome};
use fwscan::report::sarif::{self, SarifWriter};

use super::{emit_to, ReportFormat};

/// Audit a fleet: scan every image under ROOT... against the manifest chosen for it from a catalogue.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan audit /srv/dumps --manifests /srv/manifests --trust trust.json -o results.jsonl\n  fwscan audit /srv/dumps --manifests m/ --insecure-unsigned --format sarif -o results.jsonl > audit.sarif\n  fwscan audit /srv/dumps --manifests m/ --trust trust.json --shard $JOB_COMPLETION_INDEX/8 -o shard-$JOB_COMPLETION_INDEX.jsonl\n  fwscan merge shard-*.jsonl\n\nRows (JSON Lines, one per image, flushed as each image finishes) go to --output; the summary goes to\nstdout (to stderr when the rows go to stdout). See docs/audit.md.\n\nExit codes: 0 all clean, 1 findings (including unknown-firmware), 2 anything undecided or nothing scanned."
)]
pub struct Args {
    /// Directories (or files) to audit.
    #[arg(required = true)]
    pub roots: Vec<PathBuf>,
    /// Directory of manifests (`*.json`, searched recursively).
    #[arg(long, value_name = "DIR")]
    pub manifests: PathBuf,
    #[command(flatten)]
    pub trust: super::verify::TrustArgs,
    #[command(flatten)]
    pub rules: super::check::RuleArgs,
    #[command(flatten)]
    pub gate: super::GateArgs,
    /// Use manifests whose signature is NOT verified. Every row says so.
    #[arg(long)]
    pub insecure_unsigned: bool,
    /// Explicit mapping, CSV lines `path-glob,manifest` (first match wins; overrides automatic choice).
    #[arg(long, value_name = "CSV")]
    pub map: Option<PathBuf>,
    /// Hardware identity of the machines: JSON array of `{"path": GLOB, "product": NAME}` (first match
    /// wins). A dump is only ever compared with manifests of its machine's product. A sidecar file
    /// `X.bin.product` next to a dump names its product too, and takes precedence.
    #[arg(long, value_name = "JSON")]
    pub product_map: Option<PathBuf>,
    /// Write result rows (JSON Lines) here; `-` is stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Summary format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Scan only shard I of N (0-based), by a stable hash of each path relative to its root.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Follow symbolic links (loops are detected and skipped).
    #[arg(long)]
    pub follow: bool,
    /// Only files matching this glob (file name, or relative path when it contains `/`). Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out files and directories matching this glob. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Largest image file, in MiB (larger files are undecided, exit 2).
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub max_size: u64,
    /// Cap on all decompressed data of one image, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub max_decompressed: u64,
    /// Most regions (files, sections, variables, file-system entries) built for one image; past it the
    /// rest of a container is one opaque, hashed node with a `limit-exceeded` finding.
    #[arg(long, value_name = "N", default_value_t = fwscan::formats::DEFAULT_MAX_REGIONS)]
    pub max_regions: u64,
    /// Keep decoded compressed sections in DIR across runs and shards (content-addressed, authenticated
    /// with DIR/secret, bounded by --cache-max-bytes; see docs/audit.md). Without it they are shared in
    /// memory within the run only.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Decode every compressed section and hash every static byte of every image, sharing nothing
    /// between images (by default, decoded sections and static bytes verified in one image are reused
    /// for the next: equal bytes are compared instead of hashed).
    #[arg(long, conflicts_with = "cache")]
    pub no_cache: bool,
    /// Bound of the --cache directory, in bytes (least recently used entries go first).
    #[arg(long, value_name = "BYTES", default_value_t = fwscan::formats::cache::DEFAULT_DISK_MAX_BYTES, requires = "cache")]
    pub cache_max_bytes: u64,
    /// Images scanned in parallel (default: number of CPUs).
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// Record the SHA-256 of every image in its row (costs one more hash pass over images that are not
    /// byte-identical to a golden image).
    #[arg(long)]
    pub image_digests: bool,
    /// Leave out per-image timings (the summary is then byte-identical between runs).
    #[arg(long)]
    pub no_timing: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Log every image on stderr.
    #[arg(short, long)]
    pub verbose: bool,
}

struct Progress {
    bar: Option<indicatif::ProgressBar>,
    verbose: bool,
    found: AtomicU64,
    done: AtomicU64,
}

impl Observer for Progress {
    fn found(&self, size: u64) {
        let n = self.found.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(b) = &self.bar {
            b.inc_length(size);
            b.set_message(format!("{}/{n} images", self.done.load(Ordering::Relaxed)));
        }
    }

    fn row(&self, row: &Row) {
        let (size, line) = match row {
            Row::Image(r) => {
                let what = match (&r.error, &r.manifest) {
                    (Some(e), _) => format!("{} {}", e.code, e.message),
                    (None, Some(m)) => format!(
                        "{} finding(s) against {} ({} {} {})",
                        r.findings_total,
                        m.path,
                        m.product.product,
                        m.product.version,
                        if m.verified { "verified" } else { "UNVERIFIED" }
                    ),
                    (None, None) => format!("{} finding(s)", r.findings_total),
                };
                (
                    r.size,
                    format!("{:<8} {}: {what}", r.verdict.as_str(), r.file()),
                )
            }
            Row::Skipped(s) => (
                0,
                format!(
                    "skipped  {}: {}",
                    results::join_root(&s.root, &s.path),
                    s.reason
                ),
            ),
            Row::Run(_) | Row::End(_) => return,
        };
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(b) = &self.bar {
            b.inc(size);
            b.set_message(format!(
                "{done}/{} images",
                self.found.load(Ordering::Relaxed)
            ));
            if self.verbose {
                b.println(&line);
            }
        } else if self.verbose {
            eprintln!("fwscan: {line}");
        }
    }
}

/// A temporary spool for rows when SARIF/JUnit is requested without `--output`.
struct Spool(PathBuf);
impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    if let Some(j) = a.jobs {
        // Only the first call configures the global pool; later calls are harmless errors.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(j.max(1))
            .build_global();
    }
    // One set of verification options for the whole run: the policy is read and the clock read once.
    let mut verify = a
        .trust
        .options(!a.insecure_unsigned)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    verify.insecure_unsigned = a.insecure_unsigned;
    let load = LoadOptions { verify };
    let mut cat = Catalogue::load_dir(&a.manifests, &load)
        .with_context(|| format!("reading manifests from {}", a.manifests.display()))?;
    if let Some(m) = &a.map {
        cat.load_map(m, &load)?;
    }
    if let Some(m) = &a.product_map {
        cat.load_product_map(m)?;
    }
    for (p, r) in &cat.refused {
        eprintln!(
            "fwscan: manifest {} refused ({}): {}",
            p.display(),
            r.code,
            r.message
        );
    }
    if a.insecure_unsigned && !cat.entries.is_empty() {
        eprintln!("fwscan: WARNING: --insecure-unsigned: manifests are used without signature verification");
    }
    let machine = matches!(
        a.format,
        ReportFormat::Sarif | ReportFormat::Junit | ReportFormat::Html
    );
    let mut spool: Option<Spool> = None;
    let rows_path: Option<PathBuf> = match &a.output {
        Some(p) if p.as_os_str() == "-" => None,
        Some(p) => Some(p.clone()),
        None if machine => {
            let p = std::env::temp_dir().join(format!("fwscan-audit-{}.jsonl", std::process::id()));
            spool = Some(Spool(p.clone()));
            Some(p)
        }
        None => None,
    };
    let rows_to_stdout = a.output.as_ref().is_some_and(|p| p.as_os_str() == "-");
    if rows_to_stdout && a.format != ReportFormat::Text {
        anyhow::bail!("--output - (rows on stdout) cannot be combined with --format {:?}; write the rows to a file", a.format);
    }
    let mut skip_files = Vec::new();
    let out: Box<dyn Write + Send> = match &rows_path {
        Some(p) => {
            let f =
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            // The results file may live under a root: never audit it.
            if let Ok(m) = f.metadata() {
                use std::os::unix::fs::MetadataExt;
                skip_files.push((m.dev(), m.ino()));
            }
            Box::new(f)
        }
        None if rows_to_stdout => Box::new(std::io::stdout()),
        None => Box::new(std::io::sink()),
    };
    let bar = (!a.quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {msg} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ) {
            b.set_style(style);
        }
        b
    });
    let progress = Progress {
        bar,
        verbose: a.verbose,
        found: AtomicU64::new(0),
        done: AtomicU64::new(0),
    };
    let opts = AuditOptions {
        roots: a.roots.clone(),
        walk: WalkOptions {
            follow: a.follow,
            max_size: a.max_size.saturating_mul(1 << 20),
            include: a.include.clone(),
            exclude: a.exclude.clone(),
            skip_files,
            ..WalkOptions::default()
        },
        shard: a.shard,
        max_decompressed: a.max_decompressed.saturating_mul(1 << 20),
        max_regions: a.max_regions,
        timing: !a.no_timing,
        rules: Some(std::sync::Arc::new(super::check::load_rules(&a.rules)?)),
        image_digests: a.image_digests,
        before_read: None,
        fail_policy: a.gate.policy(),
        cache: match (&a.cache, a.no_cache) {
            (_, true) => None,
            (Some(dir), false) => Some(std::sync::Arc::new(
                fwscan::formats::cache::DecompressCache::open(dir, a.cache_max_bytes)?,
            )),
            (None, false) => Some(std::sync::Arc::new(
                fwscan::formats::cache::DecompressCache::memory(),
            )),
        },
        known: (!a.no_cache).then(|| std::sync::Arc::new(fwscan::hash::KnownBytes::default())),
    };
    let summary = lib::run(&opts, &cat, RowWriter::new(out), &progress);
    if let (Some(c), true) = (&opts.cache, a.verbose || a.cache.is_some()) {
        let s = c.stats();
        if !a.quiet {
            eprintln!(
                "decompression cache: memory-hits={} disk-hits={} misses={} written={} rejected={} evicted={}",
                s.memory_hits, s.disk_hits, s.misses, s.written, s.rejected, s.evicted
            );
        }
    }
    if let (Some(k), true, false) = (&opts.known, a.verbose, a.quiet) {
        eprintln!(
            "verified bytes: stored={} compared-instead-of-hashed={}",
            k.stored_bytes(),
            k.matched_bytes()
        );
    }
    if let Some(b) = &progress.bar {
        b.finish_and_clear();
    }
    let files: Vec<PathBuf> = rows_path.iter().cloned().collect();
    render(
        &summary,
        a.format,
        &files,
        !a.no_timing,
        rows_to_stdout,
        None,
        "audit",
    )?;
    drop(spool);
    Ok(summary.exit_code as u8)
}

/// Prints the summary in `format` to `output` (stdout when `None`); SARIF, JUnit and HTML stream the rows
/// of `files` again.
pub fn render(
    summary: &Summary,
    format: ReportFormat,
    files: &[PathBuf],
    _timing: bool,
    to_stderr: bool,
    output: Option<&std::path::Path>,
    command: &str,
) -> anyhow::Result<()> {
    match format {
        ReportFormat::Text if to_stderr => eprint!("{}", summary.to_text()),
        ReportFormat::Text => emit_to(output, &summary.to_text())?,
        ReportFormat::Json => emit_to(output, &summary.to_json())?,
        ReportFormat::Html => {
            let mut page = fwscan::report::html::FleetPage::new(&summary.fleet(command));
            each_row(
                files,
                |r| {
                    page.image(&r.fleet_image());
                    Ok(())
                },
                |_| Ok(()),
            )?;
            emit_to(output, &page.finish())?;
        }
        ReportFormat::Sarif => {
            let mut w = SarifWriter::begin(super::writer(output)?, "audit")?;
            each_row(
                files,
                |r| {
                    let file = r.file();
                    if let Some(e) = &r.error {
                        let size = (r.size > 0).then_some(r.size);
                        w.result(&sarif::error_result(
                            &file,
                            size,
                            e.code.as_str(),
                            &e.message,
                        ))?;
                    }
                    for f in &r.findings {
                        w.result(&sarif::finding_result(&file, Some(r.size), f))?;
                    }
                    Ok(())
                },
                |_| Ok(()),
            )?;
            w.finish(summary.exit_code != 2, &summary.trust_properties())?;
        }
        ReportFormat::Junit => {
            let skipped: u64 = summary.skipped.values().sum();
            let c = Counts {
                tests: summary.images + skipped,
                failures: summary.verdicts.findings,
                errors: summary.verdicts.error,
                skipped,
            };
            let mut w = JunitWriter::begin(super::writer(output)?, c)?;
            w.suite(
                "fwscan audit",
                c,
                &[
                    ("fwscan.trust", summary.trust_status().to_string()),
                    (
                        "fwscan.unverified_images",
                        summary.unverified_baselines.to_string(),
                    ),
                ],
            )?;
            let mut skip_rows: Vec<(String, String)> = Vec::new();
            each_row(
                files,
                |r| {
                    let class = match &r.manifest {
                        Some(m) => format!(
                            "{}.{}.{}",
                            m.product.vendor, m.product.product, m.product.version
                        ),
                        None => "unmatched".into(),
                    };
                    let o = match (&r.error, r.verdict) {
                        (Some(e), _) => Outcome::Error {
                            code: e.code.as_str().to_string(),
                            message: e.message.clone(),
                        },
                        (None, Verdict::Clean) => Outcome::Passed,
                        _ => {
                            let refs: Vec<&fwscan::finding::Finding> = r.findings.iter().collect();
                            junit::findings_outcome(&refs, r.findings_total)
                        }
                    };
                    w.case(
                        &class,
                        &r.file(),
                        r.elapsed_ms.map(|m| m as f64 / 1000.0),
                        &o,
                    )?;
                    Ok(())
                },
                |s| {
                    // Bounded: skipped entries are written after the images, at most 10,000 of them.
                    if skip_rows.len() < 10_000 {
                        skip_rows.push((results::join_root(&s.root, &s.path), s.reason.clone()));
                    }
                    Ok(())
                },
            )?;
            for (p, reason) in skip_rows {
                w.case(
                    "skipped",
                    &p,
                    None,
                    &Outcome::Skipped {
                        message: format!("not an image: {reason}"),
                    },
                )?;
            }
            w.finish()?;
        }
    }
    Ok(())
}

/// Streams the image rows (deduplicated like `merge`) and skipped rows of results files.
fn each_row(
    files: &[PathBuf],
    mut image: impl FnMut(&results::ImageRow) -> std::io::Result<()>,
    mut skipped: impl FnMut(&results::SkippedRow) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    for f in files {
        let file = std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?;
        let mut err: Option<std::io::Error> = None;
        results::read_rows(
            std::io::BufReader::new(file),
            |row| {
                if err.is_some() {
                    return;
                }
                let r = match &row {
                    Row::Image(r) => {
                        let k = fwscan::hash::sha256(format!("{}\0{}", r.root, r.path).as_bytes());
                        if !seen.insert(k) {
                            return;
                        }
                        image(r)
                    }
                    Row::Skipped(s) => skipped(s),
                    Row::Run(_) | Row::End(_) => Ok(()),
                };
                if let Err(e) = r {
                    err = Some(e);
                }
            },
            |_, _| {},
        )?;
        if let Some(e) = err {
            return Err(e.into());
        }
    }
    Ok(())
}
