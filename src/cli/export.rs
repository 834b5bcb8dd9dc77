//! `fwscan export`: an image's tree in another tool's format.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fwscan::manifest::corim;
use fwscan::{formats, input};

use super::{emit, ParseArgs};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// The JSON `chipsec_main -m tools.uefi.scan_image -a generate,OUT,IMAGE` writes (executables by
    /// SHA-256 of their section body).
    ChipsecEfilist,
    /// The image's top-level regions as a flashrom layout (`start:end name`).
    FlashromLayout,
    /// A signed CoRIM (IETF draft-ietf-rats-corim, COSE_Sign1): the reference values of exactly the
    /// nodes `baseline` pins, for a RATS verifier (Veraison) or `fwscan scan --manifest`. Needs --key
    /// and -o; takes `baseline`'s identity and policy options. See docs/corim.md.
    Corim,
}

/// Write an image's executables or regions in another tool's format (CHIPSEC allowlist, flashrom
/// layout), or its reference values as a signed CoRIM.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan export OVMF_CODE_4M.fd --format chipsec-efilist -o efilist.json\n  fwscan export dump.bin --format flashrom-layout > dump.layout && flashrom -p internal --layout dump.layout -i bios -r bios.bin\n  fwscan export golden.bin --format corim --key signer.pem -o golden.corim --vendor Acme --product X11 --component bios --version 1.4 --expires 365d"
)]
pub struct Args {
    /// Image file.
    pub image: PathBuf,
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Write here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// `--format corim`: the signing key, PEM PKCS#8 (EC P-256 -> ES256, P-384 -> ES384, Ed25519 -> EdDSA).
    #[arg(long, value_name = "KEY.pem")]
    pub key: Option<PathBuf>,
    /// `--format corim`: the signer's X.509 certificate chain (PEM, leaf first, the leaf's key being
    /// --key's), written in the COSE `x5chain` header for a trust policy that pins a CA.
    #[arg(long, value_name = "CHAIN.pem")]
    pub x5chain: Option<PathBuf>,
    /// `--format corim`: write the CoRIM unsigned to `OUT.payload.cbor` and, at OUT, a COSE hash envelope
    /// (draft-ietf-cose-hash-envelope) signing its SHA-256, for very large trees. `scan`/`verify` take OUT.
    #[arg(long)]
    pub hash_envelope: bool,
    /// `--format corim`: the signer name in corim-meta (default: the vendor).
    #[arg(long, value_name = "NAME")]
    pub signer: Option<String>,
    #[command(flatten)]
    pub id: super::baseline::Identity,
    #[command(flatten)]
    pub parse: ParseArgs,
}

/// The time a CoRIM is made at: `$SOURCE_DATE_EPOCH` when set (reproducible builds), else the start of
/// the current UTC day, so that exporting the same image with the same key gives the same bytes.
fn creation_time() -> anyhow::Result<SystemTime> {
    if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        let secs: u64 = s
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("SOURCE_DATE_EPOCH `{s}` is not a number of seconds"))?;
        return Ok(UNIX_EPOCH + Duration::from_secs(secs));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(UNIX_EPOCH + Duration::from_secs(now - now % 86_400))
}

/// `--x5chain`: PEM certificates, leaf first, at most [`corim::chain::MAX_X5CHAIN`]; the leaf's key must
/// be the signing key's.
fn x5chain(path: &std::path::Path, key: &corim::cose::SigningKey) -> anyhow::Result<Vec<Vec<u8>>> {
    use x509_cert::der::Encode;
    let pem =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let certs = x509_cert::Certificate::load_pem_chain(&pem)
        .map_err(|e| anyhow::anyhow!("{}: not PEM X.509 certificates: {e}", path.display()))?;
    if certs.is_empty() || certs.len() > corim::chain::MAX_X5CHAIN {
        anyhow::bail!(
            "{}: {} certificates (1 to {} are written)",
            path.display(),
            certs.len(),
            corim::chain::MAX_X5CHAIN
        );
    }
    let ders = certs
        .iter()
        .map(|c| c.to_der())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let leaf_key = certs[0]
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .ok()
        .and_then(|spki| corim::cose::VerifyingKey::from_der(&spki).ok());
    if leaf_key != Some(key.verifying_key()) {
        anyhow::bail!(
            "{}: the first certificate (`{}`) is not the signing key's (x5chain is leaf first)",
            path.display(),
            certs[0].tbs_certificate.subject
        );
    }
    Ok(ders)
}

fn export_corim(a: &Args) -> anyhow::Result<u8> {
    let (Some(key_path), Some(out)) = (&a.key, &a.output) else {
        anyhow::bail!("--format corim needs --key KEY.pem and -o OUT.corim");
    };
    let pem = std::fs::read_to_string(key_path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", key_path.display()))?;
    let key = corim::cose::SigningKey::from_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?;
    let now = creation_time()?;
    let (m, _) = match super::baseline::manifest_of(&a.image, &a.id, &a.parse, now)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let opts = corim::ExportOptions {
        signer: a.signer.clone().unwrap_or_else(|| m.product.vendor.clone()),
        not_before: now,
        not_after: m.expires_at(),
        x5chain: match &a.x5chain {
            Some(p) => x5chain(p, &key)?,
            None => Vec::new(),
        },
    };
    let bytes = if a.hash_envelope {
        let name = out
            .file_name()
            .map(|n| format!("{}.payload.cbor", n.to_string_lossy()))
            .ok_or_else(|| anyhow::anyhow!("-o {}: not a file name", out.display()))?;
        let (envelope, payload) = corim::export_envelope(&m, &key, &opts, &name);
        let pre = out.with_file_name(&name);
        std::fs::write(&pre, &payload)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", pre.display()))?;
        eprintln!(
            "fwscan: wrote {} (the unsigned CoRIM, {} bytes; the hash envelope at {} signs its SHA-256)",
            pre.display(),
            payload.len(),
            out.display()
        );
        envelope
    } else {
        corim::export(&m, &key, &opts)
    };
    std::fs::write(out, &bytes).map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    eprintln!(
        "fwscan: wrote {} ({} bytes, {} reference values, {}, image sha256 {})",
        out.display(),
        bytes.len(),
        corim::measurements_of(&m).len(),
        corim::cose::alg_name(i128::from(key.alg())),
        m.image.sha256
    );
    Ok(super::EXIT_CLEAN)
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let tree = || -> anyhow::Result<_> {
        let opts = a.parse.parse_options()?;
        let data = input::read_image(&a.image, &a.parse.read_options())?;
        Ok(formats::parse_image(data, &opts))
    };
    let text = match a.format {
        ExportFormat::ChipsecEfilist => fwscan::export::chipsec_efilist(&tree()?),
        ExportFormat::FlashromLayout => fwscan::export::flashrom_layout(&tree()?),
        ExportFormat::Corim => return export_corim(&a),
    };
    match &a.output {
        Some(p) => std::fs::write(p, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?,
        None => emit(&text),
    }
    Ok(super::EXIT_CLEAN)
}
