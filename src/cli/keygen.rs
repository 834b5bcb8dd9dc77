//! `fwscan keygen`: make a minisign key pair.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use fwscan::manifest::minisign::{KdfLimits, SecretKey};

/// Make a minisign-compatible signing key pair (secret key encrypted with a password unless --unencrypted).
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan keygen --secret-key release.key --public-key release.pub\n  FWSCAN_PASSWORD=... fwscan keygen -s ci.key -p ci.pub --role release-ci\n  fwscan keygen -s test.key -p test.pub --unencrypted\n\nThe password comes from --password-file, else $FWSCAN_PASSWORD, else a prompt on a terminal.\nThe key files work with minisign (minisign -S -s KEY, minisign -V -p PUB).\nPrints a trust-policy key entry on stdout."
)]
pub struct Args {
    /// Where to write the secret key.
    #[arg(short, long, value_name = "FILE", default_value = "fwscan.key")]
    pub secret_key: PathBuf,
    /// Where to write the public key.
    #[arg(short, long, value_name = "FILE", default_value = "fwscan.pub")]
    pub public_key: PathBuf,
    /// Do not encrypt the secret key (for tests or keys kept in an HSM-less vault).
    #[arg(long)]
    pub unencrypted: bool,
    /// Read the password from the first line of this file.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// scrypt memory in MiB for the key encryption (minisign's default is 1024).
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub kdf_memory: u64,
    /// Role written in the printed trust-policy entry.
    #[arg(long, default_value = "vendor")]
    pub role: String,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
}

fn write_new(path: &Path, text: &str, secret: bool, force: bool) -> anyhow::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let _ = secret;
    let mut f = o
        .open(path)
        .with_context(|| format!("writing {} (use --force to overwrite)", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let password = if a.unencrypted {
        None
    } else {
        Some(super::verify::read_password(
            a.password_file.as_deref(),
            true,
        )?)
    };
    if password.as_ref().is_some_and(|p| p.is_empty()) {
        anyhow::bail!("empty password; use --unencrypted for a key without a password");
    }
    let sk = SecretKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = sk
        .to_file(
            password.as_ref().map(|p| p.as_bytes()),
            KdfLimits::with_memory_mib(a.kdf_memory),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pk = sk.public();
    write_new(&a.secret_key, &text, true, a.force)?;
    write_new(&a.public_key, &pk.to_file(), false, a.force)?;
    eprintln!(
        "fwscan: wrote {} ({}) and {}; key id {}",
        a.secret_key.display(),
        if a.unencrypted {
            "NOT encrypted"
        } else {
            "encrypted"
        },
        a.public_key.display(),
        pk.id
    );
    let entry = serde_json::json!({
        "id": pk.id.to_hex(),
        "public_key": pk.to_base64(),
        "role": a.role,
    });
    super::emit(&(serde_json::to_string_pretty(&entry)? + "\n"));
    Ok(super::EXIT_CLEAN)
}
