//! `fwscan merge`: rebuild the summary and exit code of one audit from the rows of its shards.

use std::path::PathBuf;

use super::ReportFormat;

/// Merge audit results (JSON Lines from `audit --output`, e.g. one file per shard) into one summary.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan merge shard-0.jsonl shard-1.jsonl shard-2.jsonl shard-3.jsonl\n  fwscan merge results/*.jsonl --format sarif > audit.sarif\n  fwscan merge results/*.jsonl --format html -o audit.html\n\nThe summary and exit code are those one unsharded run would have given. Missing shards, duplicate rows and\nlines that do not parse (a killed run) are reported and make the exit code 2."
)]
pub struct Args {
    /// Results files (JSON Lines).
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Write the summary to FILE instead of stdout (e.g. `--format html -o audit.html`).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Leave out the slowest-images list (timings differ between runs).
    #[arg(long)]
    pub no_timing: bool,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let summary = fwscan::audit::merge(&a.results, !a.no_timing)?;
    super::audit::render(
        &summary,
        a.format,
        &a.results,
        !a.no_timing,
        false,
        a.output.as_deref(),
        "merge",
    )?;
    Ok(summary.exit_code as u8)
}
