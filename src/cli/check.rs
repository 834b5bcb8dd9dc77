//! `fwscan check`: baseline-free checks (self-consistency, known threats, Secure Boot).

use std::path::PathBuf;

use fwscan::check::{chipsec, rules, RuleSet};
use fwscan::report::{ImageRef, Report};
use fwscan::{compare, formats, input};

use super::{emit, ParseArgs, ReportFormat};

/// Check images without a baseline: structure self-consistency, known implants and vulnerable
/// components (signature rules), Secure Boot test keys and missing dbx, code hidden outside FFS files.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan check /usr/share/OVMF/OVMF_CODE_4M.fd\n  fwscan check dump1.bin dump2.bin --format json\n  fwscan check dump.bin --signatures-chipsec blockedlist.json\n\nWith one image, --format json prints one report object; with several, a JSON array of reports.\nExit codes: 0 clean, 1 findings, 2 could not decide (unreadable image, bad rule file)."
)]
pub struct Args {
    /// Image files.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    #[command(flatten)]
    pub parse: ParseArgs,
    #[command(flatten)]
    pub rules: RuleArgs,
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
    let opts = a.parse.parse_options()?;
    // Images in parallel (rayon); reports keep the command-line order.
    use rayon::prelude::*;
    let reports: Vec<Report> = a
        .images
        .par_iter()
        .map(|path| {
            let image_ref = |size, sha256| ImageRef {
                path: path.display().to_string(),
                size,
                sha256,
            };
            let report = match input::read_image(path, &a.parse.read_options()) {
                Err(e) => {
                    eprintln!("fwscan: error: {e}");
                    Report::error("check", image_ref(0, None), "read-error", e.to_string())
                }
                Ok(data) => {
                    let sha = fwscan::hash::digest(fwscan::hash::Alg::Sha256, &data);
                    let size = data.len() as u64;
                    let tree = formats::parse_image(data, &opts);
                    let findings = fwscan::check::run(&tree, &rules);
                    Report::new(
                        "check",
                        image_ref(size, Some(sha)),
                        None,
                        compare::ScanResult {
                            findings,
                            ..Default::default()
                        },
                    )
                }
            };
            report
        })
        .collect();
    match a.format {
        ReportFormat::Text => {
            for r in &reports {
                emit(&r.to_text());
            }
        }
        ReportFormat::Json => {
            if let [one] = reports.as_slice() {
                emit(&one.to_json());
            } else {
                emit(&format!("{}\n", serde_json::to_string_pretty(&reports)?));
            }
        }
        ReportFormat::Sarif => {
            // One SARIF run with the results of every image.
            use fwscan::report::sarif;
            let mut w = sarif::SarifWriter::begin(Vec::new(), "check")?;
            for r in &reports {
                for f in &r.findings {
                    w.result(&sarif::finding_result(&r.image.path, Some(r.image.size), f))?;
                }
                if let Some(e) = &r.error {
                    w.result(&sarif::error_result(
                        &r.image.path,
                        None,
                        &e.code,
                        &e.message,
                    ))?;
                }
            }
            let ok = reports.iter().all(|r| r.error.is_none());
            emit(&String::from_utf8_lossy(&w.finish(ok)?));
        }
        ReportFormat::Junit => {
            for r in &reports {
                let err = r
                    .error
                    .as_ref()
                    .map(|e| (e.code.as_str(), e.message.as_str()));
                emit(&fwscan::report::junit::scan_log(
                    &r.image.path,
                    &[],
                    &r.findings,
                    err,
                ));
            }
        }
    }
    Ok(reports.iter().map(|r| r.exit_code).max().unwrap_or(2) as u8)
}
