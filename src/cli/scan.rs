//! `fwscan scan`: compare an image against a baseline manifest.

use std::path::PathBuf;

use fwscan::compare::{self, ScanOptions};
use fwscan::manifest::verify;
use fwscan::report::{ImageRef, ManifestRef, Report};
use fwscan::{formats, input};

use super::{emit, ParseArgs, ReportFormat};

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
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let image_ref = |size| ImageRef {
        path: a.image.display().to_string(),
        size,
        sha256: None,
    };
    let fail = |code: &str, msg: String| -> anyhow::Result<u8> {
        match a.format {
            ReportFormat::Json => {
                emit(&Report::error("scan", image_ref(0), code, msg.clone()).to_json())
            }
            ReportFormat::Sarif => emit(&fwscan::report::sarif::scan_log(
                &a.image.display().to_string(),
                None,
                &[],
                Some((code, &msg)),
            )),
            ReportFormat::Junit => emit(&fwscan::report::junit::scan_log(
                &a.image.display().to_string(),
                &[],
                &[],
                Some((code, &msg)),
            )),
            ReportFormat::Text => {}
        }
        Err(anyhow::anyhow!(msg))
    };
    // Verification before comparison: the only way to a VerifiedManifest.
    let verified = match a.trust.options(!a.insecure_unsigned).and_then(|mut o| {
        o.insecure_unsigned = a.insecure_unsigned;
        verify::load_verified(&a.manifest, &o)
    }) {
        Ok(v) => v,
        Err(e) => return fail(e.code.as_str(), super::with_hint(e.code, &e)),
    };
    let man = verified.manifest();
    let mut opts = a.parse.parse_options()?;
    if opts.layout.is_none() {
        opts.layout = man.layout.clone();
    }
    opts.format = Some(man.image.format.clone()).filter(|f| f != "layout");
    opts.eager = false;
    let data = match input::read_image(&a.image, &a.parse.read_options()) {
        Ok(d) => d,
        Err(e) => return fail("read-error", e.to_string()),
    };
    let size = data.len() as u64;
    let rules = super::check::load_rules(&a.rules)?;
    let mut tree = formats::parse_image(data, &opts);
    // The rule checks run on the parsed tree while the comparison runs (both mostly hash). The comparison
    // may expand compressed nodes that differ; then the rules run again on the expanded tree, so they
    // always see everything the scan parsed.
    let parsed = tree.clone();
    let (mut result, early) = rayon::join(
        || compare::scan(&verified, &mut tree, &ScanOptions { parse: opts }),
        || fwscan::check::run_for_scan(&parsed, &rules),
    );
    let checks = if result.stats.nodes_expanded == 0 {
        early
    } else {
        fwscan::check::run_for_scan(&tree, &rules)
    };
    result.findings.extend(checks);
    let report = Report::new(
        "scan",
        image_ref(size),
        Some(ManifestRef {
            path: a.manifest.display().to_string(),
            product: man.product.clone(),
            sequence: man.sequence,
            created: man.created.clone(),
            expires: man.expires.clone(),
            trust: verified.trust().clone(),
        }),
        result,
    );
    let image = a.image.display().to_string();
    match a.format {
        ReportFormat::Text => emit(&report.to_text()),
        ReportFormat::Json => emit(&report.to_json()),
        ReportFormat::Sarif => emit(&fwscan::report::sarif::scan_log(
            &image,
            Some(size),
            &report.findings,
            None,
        )),
        ReportFormat::Junit => {
            let regions: Vec<String> = man.root.children.iter().map(|c| c.path.clone()).collect();
            emit(&fwscan::report::junit::scan_log(
                &image,
                &regions,
                &report.findings,
                None,
            ))
        }
    }
    Ok(report.exit_code as u8)
}
