//! `fwscan eventlog`: replay a TCG event log, compare it with the PCRs a TPM reports and bind its
//! firmware measurements to dumps (docs/eventlog.md).

use std::path::PathBuf;

use fwscan::compare::ScanResult;
use fwscan::evidence::{self, pcrs};
use fwscan::finding::Code;
use fwscan::formats::tpm::eventlog::Limits;
use fwscan::report::{ImageRef, Report, Shape};

use super::{ParseArgs, ReportFormat, EXIT_ERROR};

/// Replay a TPM event log (TCG PC Client, SHA-1 or crypto-agile) into PCR values per bank, compare them
/// with the PCRs the TPM reports, and bind each firmware measurement to a node of the dump.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan eventlog /sys/kernel/security/tpm0/binary_bios_measurements\n  fwscan eventlog eventlog.bin --image dump.bin --pcrs pcrs.yaml\n  fwscan eventlog eventlog.bin --image golden.bin --predict --format json   # the PCR 0 a dump gives\n  tpm2_pcrread > pcrs.yaml; fwscan eventlog eventlog.bin --pcrs pcrs.yaml --format json\n\n--pcrs takes tpm2_pcrread YAML or `INDEX HEX` lines (bank from the digest length). PCR values from a\nverified TPM quote are what make the comparison meaningful: this command does not verify quotes.\nExit codes: 0 clean, 1 findings (pcr-mismatch, measurement-unexplained, pcr-prediction-mismatch), 2 could\nnot decide (malformed log: eventlog-invalid, unreadable file)."
)]
pub struct Args {
    /// The event log (binary_bios_measurements).
    pub log: PathBuf,
    /// A flash dump the log's firmware measurements are bound to. Repeatable (BIOS and other flash parts).
    #[arg(long, value_name = "DUMP")]
    pub image: Vec<PathBuf>,
    /// PCR values the TPM reports (tpm2_pcrread YAML, or `INDEX HEX` lines).
    #[arg(long, value_name = "FILE")]
    pub pcrs: Option<PathBuf>,
    /// Recompute PCR 0 from the dumps along the log's PCR 0 sequence: each firmware measurement from the
    /// dump's bytes, separators and actions from their data, and the measurements the dump cannot
    /// reproduce from the log (named). A prediction that differs from the TPM's value (or the replay) is
    /// `pcr-prediction-mismatch`.
    #[arg(long, requires = "image")]
    pub predict: bool,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Write the report to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub parse: ParseArgs,
}

/// Reads the log: a regular file through `input::read_image` (size cap, changed-during-read checks); the
/// kernel's `binary_bios_measurements` reports size 0, so a file of size 0 is read as a stream, still
/// bounded by `max`.
fn read_log(path: &std::path::Path, max: u64) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let pseudo = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0);
    if !pseudo {
        let opts = fwscan::input::ReadOptions {
            max_size: max,
            ..Default::default()
        };
        return Ok(fwscan::input::read_image(path, &opts)?.to_vec());
    }
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(max.saturating_add(1))
        .read_to_end(&mut buf)?;
    anyhow::ensure!(
        buf.len() as u64 <= max,
        "larger than the limit of {max} bytes"
    );
    Ok(buf)
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let format = a.format.into();
    let path = a.log.display().to_string();
    let fail = |size, code: Code, msg: String| {
        eprintln!("fwscan: error: {msg}");
        let image = ImageRef {
            path: path.clone(),
            size,
            sha256: None,
        };
        let r = Report::error("eventlog", image, code, msg);
        Ok(
            super::render(format, "eventlog", Shape::One, &[r], a.output.as_deref())
                .unwrap_or(EXIT_ERROR),
        )
    };
    let limits = Limits::default();
    let log = match read_log(&a.log, limits.max_size) {
        Ok(d) => d,
        Err(e) => return fail(0, Code::ReadError, format!("{}: {e}", a.log.display())),
    };
    let reported = match &a.pcrs {
        None => None,
        Some(p) => match std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| pcrs::parse_reported(&t))
        {
            Ok(b) => Some(b),
            Err(e) => {
                return fail(
                    log.len() as u64,
                    Code::ReadError,
                    format!("--pcrs {}: {e}", p.display()),
                )
            }
        },
    };
    let mut opts = a.parse.parse_options()?;
    // EDK2 measures the volumes it decompressed: every compressed section is opened.
    opts.eager = true;
    let mut trees = Vec::new();
    for p in &a.image {
        match fwscan::input::read_image(p, &a.parse.read_options()) {
            Ok(d) => trees.push((
                p.display().to_string(),
                fwscan::formats::parse_image(d, &opts),
            )),
            Err(e) => {
                return fail(
                    log.len() as u64,
                    Code::ReadError,
                    format!("--image {}: {e}", p.display()),
                )
            }
        }
    }
    let inputs = evidence::Inputs {
        log_path: &path,
        log: &log[..],
        images: &trees,
        reported: reported.as_ref(),
        predict: a.predict,
    };
    let (ev, findings) = match evidence::examine(&inputs, &limits) {
        Ok(x) => x,
        Err(e) => {
            return fail(
                log.len() as u64,
                Code::EventlogInvalid,
                format!("{}: malformed event log at {e}", a.log.display()),
            )
        }
    };
    let image = ImageRef {
        path: path.clone(),
        size: log.len() as u64,
        sha256: Some(ev.log.sha256.clone()),
    };
    let result = ScanResult {
        findings,
        ..ScanResult::default()
    };
    let mut r = Report::new("eventlog", image, None, result);
    r.eventlog = Some(Box::new(ev));
    super::render(format, "eventlog", Shape::One, &[r], a.output.as_deref())
}
