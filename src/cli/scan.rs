//! `fwscan scan`: compare an image against a baseline manifest.

use std::path::PathBuf;

use std::sync::Arc;

use fwscan::input;
use fwscan::manifest::verify;
use fwscan::report::{ImageRef, Report, Shape};
use fwscan::scan::{self, Baseline, Scanner};

use super::{ParseArgs, ReportFormat, EXIT_ERROR};

/// Compare an image against a baseline manifest and report every mismatched region.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan scan dump.bin --manifest golden.manifest.json --trust /etc/fwscan/trust.json --state /var/lib/fwscan/state.json\n  fwscan scan dump.bin --manifest golden.manifest.json --insecure-unsigned\n  fwscan scan dump.bin --manifest golden.manifest.json --insecure-unsigned --format json > report.json\n\nExit codes: 0 clean, 1 findings, 2 could not decide."
)]
pub struct Args {
    /// Image file.
    pub image: PathBuf,
    /// Baseline manifest (JSON).
    #[arg(long, short)]
    pub manifest: PathBuf,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Compare against a manifest whose signature is NOT verified. The report says so.
    #[arg(long)]
    pub insecure_unsigned: bool,
    #[command(flatten)]
    pub trust: super::verify::TrustArgs,
    #[command(flatten)]
    pub parse: ParseArgs,
    #[command(flatten)]
    pub rules: super::check::RuleArgs,
    #[command(flatten)]
    pub gate: super::GateArgs,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let path = a.image.display().to_string();
    let image = |size| ImageRef {
        path: path.clone(),
        size,
        sha256: None,
    };
    let format = a.format.into();
    // Verification before comparison: the only way to a VerifiedManifest.
    let verified = match a.trust.options(!a.insecure_unsigned).and_then(|mut o| {
        o.insecure_unsigned = a.insecure_unsigned;
        verify::load_verified(&a.manifest, &o)
    }) {
        Ok(v) => v,
        Err(e) => {
            let r = Report::error("scan", image(0), e.code, e.to_string());
            eprintln!("fwscan: error: {}", super::with_hint(e.code, &e));
            return Ok(super::render(format, "scan", Shape::One, &[r]).unwrap_or(EXIT_ERROR));
        }
    };
    let rules = super::check::load_rules(&a.rules)?;
    let scanner = Scanner::new(a.parse.parse_options()?, Some(Arc::new(rules)))
        .with_fail_policy(a.gate.policy());
    let report = match input::read_image(&a.image, &a.parse.read_options()) {
        Ok(data) => {
            let size = data.len() as u64;
            let manifest_path = a.manifest.display().to_string();
            scanner.run(
                "scan",
                image(size),
                data,
                Baseline::Manifest(&verified, &manifest_path),
            )
        }
        Err(e) => {
            eprintln!("fwscan: error: {e}");
            scan::read_error("scan", image(0), &e)
        }
    };
    super::render(format, "scan", Shape::One, &[report])
}
