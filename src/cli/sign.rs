//! `fwscan sign`: write a minisign signature of a manifest.

use std::path::PathBuf;

use anyhow::Context;
use fwscan::manifest::minisign::{secret_key_is_encrypted, SecretKey, SigAlg};
use fwscan::manifest::state::write_atomic;
use fwscan::manifest::verify::{next_signature_path, trusted_comment};
use fwscan::manifest::{Manifest, MAX_MANIFEST_SIZE};

/// Sign a manifest: writes MANIFEST.minisig (prehashed Ed25519, trusted comment with product, component,
/// version, sequence and digest).
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan sign golden.manifest.json --key release.key\n  fwscan sign golden.manifest.json --key owner.key --add      # second signature: golden.manifest.json.2.minisig\n  minisign -S -s release.key -m golden.manifest.json -t \"$(fwscan sign golden.manifest.json --print-comment)\"\n\nThe password comes from --password-file, else $FWSCAN_PASSWORD, else a prompt on a terminal."
)]
pub struct Args {
    /// Manifest file (JSON).
    pub manifest: PathBuf,
    /// minisign secret key.
    #[arg(
        long,
        short = 's',
        value_name = "KEY",
        required_unless_present = "print_comment"
    )]
    pub key: Option<PathBuf>,
    /// Signature file to write (default MANIFEST.minisig).
    #[arg(long, short, value_name = "FILE", conflicts_with = "add")]
    pub output: Option<PathBuf>,
    /// Add a signature for a k-of-n threshold: write the first free MANIFEST.N.minisig.
    #[arg(long)]
    pub add: bool,
    /// Read the password from the first line of this file.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Untrusted comment.
    #[arg(long, default_value = "signature from fwscan secret key")]
    pub comment: String,
    /// Replace the trusted comment (normally derived from the manifest; a mismatch is refused by verify).
    #[arg(long, value_name = "TEXT")]
    pub trusted_comment: Option<String>,
    /// Print the trusted comment for this manifest (for `minisign -t`) and exit.
    #[arg(long)]
    pub print_comment: bool,
    /// Make a legacy non-prehashed `Ed` signature (only for compatibility testing).
    #[arg(long, hide = true)]
    pub legacy: bool,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let bytes = fwscan::input::read_capped(&a.manifest, MAX_MANIFEST_SIZE)?;
    let m = Manifest::parse(&bytes, &a.manifest)?;
    let comment = a
        .trusted_comment
        .clone()
        .unwrap_or_else(|| trusted_comment(&m, &bytes));
    if a.print_comment {
        super::emit(&(comment + "\n"));
        return Ok(super::EXIT_CLEAN);
    }
    let key_path = a.key.as_ref().context("--key is required")?;
    let text = String::from_utf8(fwscan::input::read_capped(
        key_path,
        fwscan::manifest::minisign::MAX_KEY_FILE,
    )?)
    .map_err(|_| anyhow::anyhow!("{}: not a text file", key_path.display()))?;
    let encrypted = secret_key_is_encrypted(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?;
    let password = if encrypted {
        Some(super::verify::read_password(
            a.password_file.as_deref(),
            false,
        )?)
    } else {
        None
    };
    let sk = SecretKey::parse_file(&text, password.as_ref().map(|p| p.as_bytes()))
        .map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?;
    let alg = if a.legacy {
        SigAlg::Legacy
    } else {
        SigAlg::Prehashed
    };
    let sig = sk
        .sign(&bytes, alg, &a.comment, &comment)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let out = match &a.output {
        Some(o) => o.clone(),
        None => next_signature_path(&a.manifest, a.add)
            .context("no free MANIFEST.N.minisig slot (at most 16 signature files)")?,
    };
    write_atomic(&out, sig.to_file().as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "fwscan: wrote {} (key {}, trusted comment: {comment})",
        out.display(),
        sk.id
    );
    Ok(super::EXIT_CLEAN)
}
