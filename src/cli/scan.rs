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
    /// Baseline manifest (JSON, or a signed CoRIM). Repeatable: several manifests (e.g. BIOS, ME and BMC
    /// parts of one release, or a release package's baseline against a whole flash dump) are each compared
    /// where their parts are found, and what none covers is listed as not covered. Another producer's
    /// CoRIM (not fwscan's profile) is given alone: its reference values are located in the image by GUID
    /// or path (docs/corim.md).
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
    // Verification before comparison: the only way to a VerifiedManifest. (Reading the image on a second
    // thread meanwhile was measured slower on a quiet machine: two threads faulting fresh pages in at once
    // cost more system time than the overlap saved.)
    let (verified, foreign, mut otp_keys) = match load_manifests(&a) {
        Ok(v) => v,
        Err((path, e)) => {
            let r = Report::error("scan", image(0), e.code, format!("{}: {e}", path.display()));
            eprintln!("fwscan: error: {}", super::with_hint(e.code, &e));
            return Ok(
                super::render(format, "scan", Shape::One, &[r], a.output.as_deref())
                    .unwrap_or(EXIT_ERROR),
            );
        }
    };
    let read = input::read_image(&a.image, &a.parse.read_options());
    let rules = super::check::load_rules(&a.rules)?;
    let mut opts = a.parse.parse_options()?;
    otp_keys.dedup();
    opts.keys.extend(otp_keys);
    // Certificate validity (capsule signing paths) is evaluated at --at, like manifest expiry.
    opts.at = a.trust.at;
    let scanner = Scanner::new(opts, Some(Arc::new(rules)))
        .with_fail_policy(a.gate.policy())
        .with_map(a.format == ReportFormat::Html);
    let report = match read {
        Ok(data) => {
            let size = data.len() as u64;
            let ms: Vec<_> = verified.iter().map(|(v, p)| (v, p.as_str())).collect();
            let b = match &foreign {
                Some((c, p)) => Baseline::Foreign(c, p.as_str()),
                None => Baseline::choose(&ms, &data[..], &scanner.parse),
            };
            scanner.run("scan", image(size), data, b)
        }
        Err(e) => {
            eprintln!("fwscan: error: {e}");
            scan::read_error("scan", image(0), &e)
        }
    };
    let code = super::render(format, "scan", Shape::One, &[report], a.output.as_deref());
    // The process ends here: freeing a large manifest's node tree node by node is work nobody waits for.
    std::mem::forget(verified);
    std::mem::forget(foreign);
    code
}

/// The verified manifests (with the paths they came from), another producer's verified CoRIM (which is
/// compared alone), and the trust policy's ASPEED OTP images scoped to their products; the first manifest
/// refused, with its path, ends the scan.
#[allow(clippy::type_complexity)]
fn load_manifests(
    a: &Args,
) -> Result<
    (
        Vec<(fwscan::manifest::VerifiedManifest, String)>,
        Option<(Box<verify::VerifiedCorim>, String)>,
        Vec<fwscan::formats::keys::RingKey>,
    ),
    (&PathBuf, verify::TrustError),
> {
    let mut verified = Vec::new();
    let mut foreign = None;
    let mut otp_keys = Vec::new();
    for path in &a.manifest {
        let v = a
            .trust
            .options(!a.insecure_unsigned)
            .and_then(|mut o| {
                o.insecure_unsigned = a.insecure_unsigned;
                let v = match verify::load_baseline(path, &o)? {
                    verify::Loaded::Manifest(v) => *v,
                    verify::Loaded::Corim(c) if a.manifest.len() == 1 => {
                        foreign = Some((c, path.display().to_string()));
                        return Ok(None);
                    }
                    verify::Loaded::Corim(_) => {
                        return Err(verify::TrustError {
                            code: fwscan::finding::Code::ManifestInvalid,
                            path: path.clone(),
                            message: "another producer's CoRIM (no fwscan region tree) is compared alone: give it as the only --manifest".into(),
                        })
                    }
                };
                if let Some(p) = &o.policy {
                    let pr = &v.manifest().product;
                    otp_keys.extend(
                        p.key_ring(Some(&pr.product), Some(&pr.component))
                            .for_scheme(fwscan::finding::Scheme::AspeedRot)
                            .cloned(),
                    );
                }
                Ok(Some(v))
            })
            .map_err(|e| (path, e))?;
        if let Some(v) = v {
            verified.push((v, path.display().to_string()));
        }
    }
    Ok((verified, foreign, otp_keys))
}
