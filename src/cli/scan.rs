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
    after_help = "Examples:\n  fwscan scan dump.bin --manifest golden.manifest.json --trust /etc/fwscan/trust.json --state /var/lib/fwscan/state.json\n  fwscan scan dump.bin --manifest golden.manifest.json --insecure-unsigned\n  fwscan scan dump.bin --manifest golden.manifest.json --insecure-unsigned --format json > report.json\n  fwscan scan dump.bin --manifest golden.manifest.json --trust trust.json --format html -o report.html\n\nExit codes: 0 clean, 1 findings, 2 could not decide."
)]
pub struct Args {
    /// Image file.
    pub image: PathBuf,
    /// Baseline manifest (JSON). Repeatable: several manifests (e.g. BIOS, ME and BMC parts of one
    /// release, or a release package's baseline against a whole flash dump) are each compared where their
    /// parts are found, and what none covers is listed as not covered.
    #[arg(long, short, required = true)]
    pub manifest: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Write the report to FILE instead of stdout (e.g. `--format html -o report.html`).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
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
    let mut verified = Vec::new();
    // The trust policy's ASPEED OTP images, scoped to the products the manifests are for.
    let mut otp_keys = Vec::new();
    for path in &a.manifest {
        match a.trust.options(!a.insecure_unsigned).and_then(|mut o| {
            o.insecure_unsigned = a.insecure_unsigned;
            let v = verify::load_verified(path, &o)?;
            if let Some(p) = &o.policy {
                let pr = &v.manifest().product;
                otp_keys.extend(
                    p.key_ring(Some(&pr.product), Some(&pr.component))
                        .for_scheme(fwscan::finding::Scheme::AspeedRot)
                        .cloned(),
                );
            }
            Ok(v)
        }) {
            Ok(v) => verified.push((v, path.display().to_string())),
            Err(e) => {
                let r = Report::error("scan", image(0), e.code, format!("{}: {e}", path.display()));
                eprintln!("fwscan: error: {}", super::with_hint(e.code, &e));
                return Ok(
                    super::render(format, "scan", Shape::One, &[r], a.output.as_deref())
                        .unwrap_or(EXIT_ERROR),
                );
            }
        }
    }
    let rules = super::check::load_rules(&a.rules)?;
    let mut opts = a.parse.parse_options()?;
    otp_keys.dedup();
    opts.keys.extend(otp_keys);
    // Certificate validity (capsule signing paths) is evaluated at --at, like manifest expiry.
    opts.at = a.trust.at;
    let scanner = Scanner::new(opts, Some(Arc::new(rules)))
        .with_fail_policy(a.gate.policy())
        .with_map(a.format == ReportFormat::Html);
    let report = match input::read_image(&a.image, &a.parse.read_options()) {
        Ok(data) => {
            let size = data.len() as u64;
            let ms: Vec<_> = verified.iter().map(|(v, p)| (v, p.as_str())).collect();
            let b = Baseline::choose(&ms, &data[..], &scanner.parse);
            scanner.run("scan", image(size), data, b)
        }
        Err(e) => {
            eprintln!("fwscan: error: {e}");
            scan::read_error("scan", image(0), &e)
        }
    };
    super::render(format, "scan", Shape::One, &[report], a.output.as_deref())
}
