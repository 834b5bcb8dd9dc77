//! `fwscan check`: baseline-free checks (self-consistency, known threats, Secure Boot).

use std::path::PathBuf;

use std::sync::Arc;

use fwscan::check::{chipsec, rules, RuleSet};
use fwscan::input;
use fwscan::report::{ImageRef, Report, Shape};
use fwscan::scan::{self, Baseline, Scanner};

use super::{ParseArgs, ReportFormat};

/// Check images without a baseline: structure self-consistency, known implants and vulnerable
/// components (signature rules), Secure Boot test keys and missing dbx, code hidden outside FFS files.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan check /usr/share/OVMF/OVMF_CODE_4M.fd\n  fwscan check dump1.bin dump2.bin --format json\n  fwscan check dump.bin --signatures-chipsec blockedlist.json\n\n--format json prints a JSON array of report objects (also for one image); sarif one log, junit one\ndocument with one test suite per image; html one page with a section per image.\nExit codes: 0 clean, 1 findings, 2 could not decide (unreadable image, bad rule file)."
)]
pub struct Args {
    /// Image files.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Write the report to FILE instead of stdout (e.g. `--format html -o report.html`).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Trust policy whose platform keys (`bootguard-km-hash`, `aspeed-otp`, `fit`) the checks use, as
    /// `inspect --trust`. Default: $FWSCAN_TRUST, then /etc/fwscan/trust.json if it exists; none is required.
    #[arg(long, value_name = "POLICY")]
    pub trust: Option<PathBuf>,
    #[command(flatten)]
    pub parse: ParseArgs,
    #[command(flatten)]
    pub rules: RuleArgs,
    #[command(flatten)]
    pub gate: super::GateArgs,
}

/// Where signature rules come from.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RuleArgs {
    /// Use the `*.toml` rule files of DIR instead of the built-in rules.
    #[arg(long, value_name = "DIR")]
    pub signatures: Option<PathBuf>,
    /// Also load a CHIPSEC blockedlist.json. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub signatures_chipsec: Vec<PathBuf>,
}

/// Loads and compiles the rules the arguments name.
pub fn load_rules(a: &RuleArgs) -> anyhow::Result<RuleSet> {
    let mut all = match &a.signatures {
        Some(dir) => rules::load_dir(dir)?,
        None => rules::builtin()?,
    };
    for f in &a.signatures_chipsec {
        all.extend(chipsec::load(f)?);
    }
    RuleSet::new(all).map_err(|e| anyhow::anyhow!("signature rules: {e}"))
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let rules = load_rules(&a.rules)?;
    let mut opts = a.parse.parse_options()?;
    super::inspect::add_platform_keys(&mut opts, a.trust.as_deref())?;
    let scanner = Scanner::new(opts, Some(Arc::new(rules)))
        .with_fail_policy(a.gate.policy())
        .with_map(a.format == ReportFormat::Html);
    // Images in parallel (rayon); reports keep the command-line order.
    use rayon::prelude::*;
    let reports: Vec<Report> = a
        .images
        .par_iter()
        .map(|path| {
            let image = |size, sha256| ImageRef {
                path: path.display().to_string(),
                size,
                sha256,
            };
            match input::read_image(path, &a.parse.read_options()) {
                Err(e) => {
                    eprintln!("fwscan: error: {e}");
                    scan::read_error("check", image(0, None), &e)
                }
                Ok(data) => {
                    let sha = fwscan::hash::digest(fwscan::hash::Alg::Sha256, &data);
                    let size = data.len() as u64;
                    scanner.run("check", image(size, Some(sha)), data, Baseline::None)
                }
            }
        })
        .collect();
    super::render(
        a.format.into(),
        "check",
        Shape::Many,
        &reports,
        a.output.as_deref(),
    )
}
