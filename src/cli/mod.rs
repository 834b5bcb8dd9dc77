//! Command-line interface: one file per subcommand. Exit codes: 0 clean, 1 findings, 2 could not decide.

mod audit;
mod baseline;
mod check;
mod completions;
mod diff;
mod eventlog;
mod export;
mod inspect;
mod keygen;
mod merge;
mod scan;
mod sign;
mod verify;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use fwscan::formats::{Layout, ParseOptions};

/// Exit code: clean.
pub const EXIT_CLEAN: u8 = 0;
/// Exit code: findings.
#[allow(dead_code)]
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code: could not decide (bad input, bad manifest, I/O error).
pub const EXIT_ERROR: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "fwscan",
    version,
    about = "Firmware integrity scanner: split BIOS/UEFI and BMC flash images into regions, hash them, compare against a vendor-signed baseline",
    after_help = "Exit codes: 0 clean, 1 findings, 2 could not decide (bad input, bad or untrusted manifest, I/O error).\nSee README.md for finding codes and the manifest format."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Inspect(inspect::Args),
    Baseline(Box<baseline::Args>),
    Scan(scan::Args),
    Check(check::Args),
    Keygen(keygen::Args),
    Sign(sign::Args),
    Verify(verify::Args),
    Audit(Box<audit::Args>),
    Merge(merge::Args),
    Diff(diff::Args),
    Eventlog(eventlog::Args),
    Export(Box<export::Args>),
    Completions(completions::Args),
    /// Print the manual page (roff) to stdout.
    Man(completions::ManArgs),
}

/// Output format of reports.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Output format of scan and audit reports (machine formats for CI gating).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReportFormat {
    #[default]
    Text,
    Json,
    /// SARIF 2.1.0 (GitHub code scanning).
    Sarif,
    /// JUnit XML.
    Junit,
    /// One self-contained HTML page (flash map, findings, region tree); see docs/report.md.
    Html,
}

impl From<ReportFormat> for fwscan::report::Format {
    fn from(f: ReportFormat) -> Self {
        match f {
            ReportFormat::Text => fwscan::report::Format::Text,
            ReportFormat::Json => fwscan::report::Format::Json,
            ReportFormat::Sarif => fwscan::report::Format::Sarif,
            ReportFormat::Junit => fwscan::report::Format::Junit,
            ReportFormat::Html => fwscan::report::Format::Html,
        }
    }
}

/// Renders reports to `output` (stdout when `None`) and returns the exit code: the worst verdict, or 2
/// when the output could not be written (a closed pipe is not an error: the verdict stands).
pub fn render(
    format: fwscan::report::Format,
    command: &str,
    shape: fwscan::report::Shape,
    reports: &[fwscan::report::Report],
    output: Option<&Path>,
) -> anyhow::Result<u8> {
    let code = reports.iter().map(|r| r.exit_code).max().unwrap_or(2) as u8;
    let mut out = match writer(output) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("fwscan: error: {e:#}");
            return Ok(EXIT_ERROR);
        }
    };
    match fwscan::report::render(format, command, shape, reports, &mut out) {
        Ok(()) => Ok(code),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(code),
        Err(e) => {
            eprintln!("fwscan: error: writing the report: {e}");
            Ok(EXIT_ERROR)
        }
    }
}

/// Parsing options shared by the commands that read images.
#[derive(clap::Args, Debug, Clone)]
pub struct ParseArgs {
    /// Flash layout in flashrom format (`start:end name`, hex, inclusive end).
    #[arg(long, value_name = "LAYOUT")]
    pub layout: Option<PathBuf>,
    /// Cap on all decompressed data of one image, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub max_decompressed: u64,
    /// Most regions (files, sections, variables, file-system entries) built for one image; past it the
    /// rest of a container is one opaque, hashed node with a `limit-exceeded` finding.
    #[arg(long, value_name = "N", default_value_t = fwscan::formats::DEFAULT_MAX_REGIONS)]
    pub max_regions: u64,
    /// Largest file read, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub max_image_size: u64,
    /// OpenBMC system key that signs update tarballs' MANIFEST and publickey, as
    /// `KEYTYPE=PEMFILE` or `KEYTYPE:HASHTYPE=PEMFILE` (HashType defaults to RSA-SHA256); repeatable.
    /// Without one a tarball is only checked against its own publickey and its signer is not trusted.
    #[arg(long = "openbmc-key", value_name = "KEYTYPE[:HASH]=PEM")]
    pub openbmc_keys: Vec<String>,
    /// Vendor X.509 certificate or CA (PEM or DER) a UEFI capsule's PKCS#7 signer must chain to;
    /// repeatable. Without one a capsule's signature is checked against its own signer certificate and
    /// the signer is not trusted.
    #[arg(long = "capsule-cert", value_name = "CERT")]
    pub capsule_certs: Vec<PathBuf>,
    /// The extendedKeyUsage a capsule signer chaining to a --capsule-cert must allow: code-signing (when
    /// the signer has the extension, id-kp-codeSigning or anyExtendedKeyUsage) or any (as EDK2).
    #[arg(long, value_name = "EKU", value_parser = ["code-signing", "any"], default_value = "code-signing")]
    pub capsule_cert_eku: String,
    /// Whether certificate validity periods on a path to a --capsule-cert are checked (at the current
    /// time) or ignored (as EDK2, which has no trusted clock).
    #[arg(long, value_name = "CHECK", value_parser = ["check", "ignore"], default_value = "check")]
    pub capsule_cert_validity: String,
    /// ASPEED OTP image (otptool/socsec format) of the BMC's AST2600/AST10x0: the boot image at offset 0
    /// (a signed SPL, the first partition of the flash) is checked as the boot ROM checks it, with the
    /// OTP's keys, retired keys and signing mode; repeatable (one image must verify with one of them).
    #[arg(long = "aspeed-otp", value_name = "OTP")]
    pub aspeed_otps: Vec<PathBuf>,
    /// Public key of U-Boot's verified boot: a PEM public key (RSA 2048-4096, P-256, P-384) or a U-Boot
    /// control device tree with /signature keys; FIT signatures are checked with it besides the keys of
    /// the image's own control DTB (a PEM key is taken as required for configurations); repeatable.
    #[arg(long = "fit-key", value_name = "KEY")]
    pub fit_keys: Vec<PathBuf>,
}

impl ParseArgs {
    pub fn parse_options(&self) -> anyhow::Result<ParseOptions> {
        let layout = match &self.layout {
            Some(p) => Some(read_layout(p)?),
            None => None,
        };
        use fwscan::formats::keys::{Eku, KeyRing, Rules, Validity, VendorCert};
        let mut keys = KeyRing::new();
        for spec in &self.openbmc_keys {
            keys.add_openbmc(format!("--openbmc-key {spec}"), read_openbmc_key(spec)?);
        }
        let rules = Rules {
            eku: if self.capsule_cert_eku == "any" {
                Eku::Any
            } else {
                Eku::CodeSigning
            },
            validity: if self.capsule_cert_validity == "ignore" {
                Validity::Ignore
            } else {
                Validity::Check
            },
        };
        for p in &self.capsule_certs {
            keys.add_x509(
                format!("--capsule-cert {}", p.display()),
                VendorCert {
                    der: read_cert(p)?,
                    rules,
                },
            );
        }
        for p in &self.aspeed_otps {
            keys.add(fwscan::formats::keys::RingKey {
                id: p.display().to_string(),
                scope: Default::default(),
                key: fwscan::formats::keys::VendorKey::AspeedOtp(read_aspeed_otp(p)?),
            });
        }
        for p in &self.fit_keys {
            keys.add(fwscan::formats::keys::RingKey {
                id: p.display().to_string(),
                scope: Default::default(),
                key: fwscan::formats::keys::VendorKey::Fit(read_fit_key(p)?),
            });
        }
        Ok(ParseOptions {
            max_decompressed_total: self.max_decompressed.saturating_mul(1 << 20),
            max_regions: self.max_regions,
            layout,
            keys,
            ..ParseOptions::default()
        })
    }

    pub fn read_options(&self) -> fwscan::input::ReadOptions {
        fwscan::input::ReadOptions {
            max_size: self.max_image_size.saturating_mul(1 << 20),
            ..Default::default()
        }
    }
}

/// What fails the run (scan, check, audit). See README "What fails the run".
#[derive(clap::Args, Debug, Clone)]
pub struct GateArgs {
    /// Least severity that fails the run: `warning` (default: every warning and error) or `error`
    /// (warnings are still reported, as info).
    #[arg(long, value_enum, value_name = "SEVERITY", default_value_t = FailOnArg::Warning)]
    pub fail_on: FailOnArg,
    /// A finding category that is reported but never fails the run (repeatable): parse,
    /// configuration, trust, input. `integrity` cannot be ignored.
    #[arg(long, value_name = "CATEGORY", value_parser = parse_category)]
    pub ignore_category: Vec<fwscan::finding::Category>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOnArg {
    Warning,
    Error,
}

/// Why a `--ignore-category` value is refused.
#[derive(Debug, thiserror::Error)]
enum CategoryArgError {
    #[error(transparent)]
    Refused(#[from] fwscan::finding::FailPolicyError),
    #[error(
        "unknown category `{name}` (one of: {})",
        fwscan::finding::Category::ALL
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )]
    Unknown { name: String },
}

fn parse_category(s: &str) -> Result<fwscan::finding::Category, CategoryArgError> {
    use fwscan::finding::{Category, FailPolicyError};
    match Category::parse(s) {
        Some(Category::Integrity) => Err(FailPolicyError::IntegrityIgnored.into()),
        Some(c) => Ok(c),
        None => Err(CategoryArgError::Unknown {
            name: s.to_string(),
        }),
    }
}

impl GateArgs {
    pub fn policy(&self) -> fwscan::finding::FailPolicy {
        let fail_on = match self.fail_on {
            FailOnArg::Warning => fwscan::finding::FailOn::Warning,
            FailOnArg::Error => fwscan::finding::FailOn::Error,
        };
        fwscan::finding::FailPolicy {
            fail_on,
            ignore: self.ignore_category.iter().copied().collect(),
        }
    }
}

/// Reads a flashrom layout file.
pub fn read_layout(path: &Path) -> anyhow::Result<Layout> {
    let bytes = fwscan::input::read_capped(path, 1 << 20)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("layout {}: not UTF-8 text", path.display()))?;
    Layout::parse_flashrom(&text, "user").map_err(|(line, message)| {
        fwscan::Error::Layout {
            path: path.to_path_buf(),
            line,
            message,
        }
        .into()
    })
}

/// What the user can do about a refusal, in the CLI's words (the library's messages name no flags).
pub fn hint(code: fwscan::finding::Code) -> Option<&'static str> {
    use fwscan::finding::Code;
    Some(match code {
        Code::ManifestUnsigned => {
            "sign the manifest with `fwscan sign`, or pass --insecure-unsigned to compare without verification"
        }
        Code::TrustPolicyInvalid => {
            "give a trust policy with --trust POLICY or $FWSCAN_TRUST, or pass --insecure-unsigned to compare without verification"
        }
        Code::ManifestLegacySignature => "pass --allow-legacy to accept legacy signatures",
        Code::ManifestExpired | Code::ManifestNotYetValid | Code::KeyExpired => {
            "--at TIME evaluates expiry at another time (historical audits)"
        }
        _ => return None,
    })
}

/// A refusal's message with the CLI's hint appended.
pub fn with_hint(code: fwscan::finding::Code, message: impl std::fmt::Display) -> String {
    match hint(code) {
        Some(h) => format!("{message} ({h})"),
        None => message.to_string(),
    }
}

/// The report's destination: the `-o FILE` given (created or truncated), else stdout.
pub fn writer(output: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match output {
        Some(p) if p.as_os_str() != "-" => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", p.display()))?,
        )),
        _ => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

/// Writes `s` to `output` (stdout when `None`; a closed pipe is not an error).
pub fn emit_to(output: Option<&Path>, s: &str) -> anyhow::Result<()> {
    if output.is_none() {
        emit(s);
        return Ok(());
    }
    let mut w = writer(output)?;
    w.write_all(s.as_bytes())
        .and_then(|_| w.flush())
        .map_err(|e| anyhow::anyhow!("writing the report: {e}"))
}

/// Writes to stdout; a closed pipe is not an error (exit as decided).
pub fn emit(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes()).and_then(|_| out.flush());
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => inspect::run(a),
        Command::Baseline(a) => baseline::run(*a),
        Command::Scan(a) => scan::run(a),
        Command::Check(a) => check::run(a),
        Command::Keygen(a) => keygen::run(a),
        Command::Sign(a) => sign::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Audit(a) => audit::run(*a),
        Command::Merge(a) => merge::run(a),
        Command::Diff(a) => diff::run(a),
        Command::Eventlog(a) => eventlog::run(a),
        Command::Export(a) => export::run(*a),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => completions::man(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("fwscan: error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Reads an `--openbmc-key KEYTYPE[:HASHTYPE]=PEMFILE` argument; the key must parse as RSA.
fn read_openbmc_key(spec: &str) -> anyhow::Result<fwscan::formats::keys::OpenbmcKey> {
    let (ty, path) = spec.split_once('=').ok_or_else(|| {
        anyhow::anyhow!("--openbmc-key `{spec}`: expected KEYTYPE[:HASHTYPE]=PEMFILE")
    })?;
    let (key_type, hash_type) = match ty.split_once(':') {
        Some((k, h)) => (k.to_string(), h.to_string()),
        None => (ty.to_string(), "RSA-SHA256".to_string()),
    };
    let len = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("--openbmc-key {path}: {e}"))?
        .len();
    if len > 64 << 10 {
        anyhow::bail!("--openbmc-key {path}: {len} bytes is too large for a public key");
    }
    let pem =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("--openbmc-key {path}: {e}"))?;
    let key = fwscan::formats::obmc_tar::public_key(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("--openbmc-key {path}: {e}"))?;
    fwscan::formats::x509::rsa_key_strength(&key)
        .map_err(|e| anyhow::anyhow!("--openbmc-key {path}: {e} (vendor-key-weak)"))?;
    Ok(fwscan::formats::keys::OpenbmcKey {
        key_type,
        hash_type,
        pem,
    })
}

/// Reads a `--capsule-cert` file: one X.509 certificate, PEM or DER; returns its DER.
/// Reads and validates a key given with `--fit-key` (PEM public key or control device tree).
fn read_fit_key(path: &Path) -> anyhow::Result<fwscan::formats::keys::FitKeyData> {
    use fwscan::formats::bmc::fit_sig;
    use fwscan::formats::keys::FitKeyData;
    let bytes = fwscan::input::read_capped(path, 1 << 20)
        .map_err(|e| anyhow::anyhow!("--fit-key {}: {e}", path.display()))?;
    let bad = |e: String| anyhow::anyhow!("--fit-key {}: {e}", path.display());
    if fwscan::formats::fdt::probe(&bytes) {
        let f = fwscan::formats::fdt::Fdt::parse(&bytes).map_err(|e| bad(e.to_string()))?;
        let (keys, _) = fit_sig::keys_from_dtb(&f, "");
        if keys.is_empty() {
            return Err(bad("the device tree has no /signature/key-NAME node".into()));
        }
        if let Some(e) = keys.iter().find_map(|k| k.material.as_ref().err()) {
            return Err(bad(e.to_string()));
        }
        return Ok(FitKeyData::Dtb(bytes));
    }
    let pem =
        String::from_utf8(bytes).map_err(|_| bad("neither a PEM key nor a device tree".into()))?;
    fit_sig::key_from_pem(&pem).map_err(|e| bad(e.to_string()))?;
    Ok(FitKeyData::Pem(pem))
}

/// Reads and validates an OTP image given with `--aspeed-otp`.
fn read_aspeed_otp(path: &Path) -> anyhow::Result<Vec<u8>> {
    use fwscan::formats::bmc::aspeed::otp;
    let bytes = fwscan::input::read_capped(path, otp::MAX_SIZE as u64)
        .map_err(|e| anyhow::anyhow!("--aspeed-otp {}: {e}", path.display()))?;
    otp::parse(&bytes).map_err(|e| anyhow::anyhow!("--aspeed-otp {}: {e}", path.display()))?;
    Ok(bytes)
}

fn read_cert(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use x509_cert::der::{Decode, DecodePem, Encode};
    let len = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("--capsule-cert {}: {e}", path.display()))?
        .len();
    if len > 1 << 20 {
        anyhow::bail!(
            "--capsule-cert {}: {len} bytes is too large for a certificate",
            path.display()
        );
    }
    let bytes = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("--capsule-cert {}: {e}", path.display()))?;
    let cert = x509_cert::Certificate::from_der(&bytes)
        .or_else(|_| x509_cert::Certificate::from_pem(&bytes))
        .map_err(|e| {
            anyhow::anyhow!(
                "--capsule-cert {}: not an X.509 certificate: {e}",
                path.display()
            )
        })?;
    cert.to_der()
        .map_err(|e| anyhow::anyhow!("--capsule-cert {}: {e}", path.display()))
}
