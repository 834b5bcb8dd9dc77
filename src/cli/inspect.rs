//! `fwscan inspect`: print the region tree.

use std::path::{Path, PathBuf};

use fwscan::finding::Scheme;
use fwscan::{formats, hash, input};

use super::ParseArgs;

/// Output format of `inspect`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    /// One self-contained page: the flash map coloured by protection class and the region tree.
    Html,
}

/// Print the region tree of an image (offsets, sizes, kinds, names, digests, parser notes).
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan inspect testdata/layout/image.bin --layout testdata/layout/image.layout\n  fwscan inspect /usr/share/OVMF/OVMF_CODE_4M.fd --format json > tree.json\n  fwscan inspect flash.bin --coverage\n  fwscan inspect flash.bin --format html -o tree.html\n  fwscan inspect flash.bin --coverage --trust trust.json   # Boot Guard KM pinned by bootguard-km-hash"
)]
pub struct Args {
    /// Image file.
    pub image: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write to FILE instead of stdout (e.g. `--format html -o tree.html`).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print which protection covers every byte (Boot Guard IBB, ACM, microcode, ME manifest, vendor
    /// package, baseline only, none) as ranges and totals instead of the tree.
    #[arg(long)]
    pub coverage: bool,
    /// Trust policy whose platform keys are used: `bootguard-km-hash` pins the Boot Guard OEM key hash (a
    /// verified IBB then counts as `bootguard-ibb` instead of `bootguard-self-signed`), `aspeed-otp` OTP
    /// images and `fit` U-Boot verified-boot keys. Default:
    /// $FWSCAN_TRUST, then /etc/fwscan/trust.json if it exists; none is required, and a default one that
    /// cannot be read is skipped with a warning.
    #[arg(long, value_name = "POLICY")]
    pub trust: Option<PathBuf>,
    #[command(flatten)]
    pub parse: ParseArgs,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let mut opts = a.parse.parse_options()?;
    add_platform_keys(&mut opts, a.trust.as_deref())?;
    let data = input::read_image(&a.image, &a.parse.read_options())?;
    let tree = formats::parse_image(data, &opts);
    let out = a.output.as_deref();
    if a.format == Format::Html {
        // The page shows the coverage (the map) and the tree together.
        let mut m = fwscan::report::html::FlashMap::of(&tree);
        let notes = fwscan::region::note_findings(&tree);
        m.place(&tree, &notes);
        let page = fwscan::report::html::inspect_page(
            &a.image.display().to_string(),
            tree.size,
            &m,
            &notes,
        );
        super::emit_to(out, &page)?;
        return Ok(super::EXIT_CLEAN);
    }
    if a.coverage {
        let cov = fwscan::report::coverage::compute(&tree);
        match a.format {
            Format::Text | Format::Html => {
                super::emit_to(out, &fwscan::report::coverage::text(&cov))?
            }
            Format::Json => {
                let doc = serde_json::json!({
                    "schema_version": 1,
                    "tool": fwscan::report::ToolInfo::default(),
                    "image": { "path": a.image.display().to_string(), "size": tree.size },
                    "order": fwscan::report::coverage::Protection::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                    "coverage": cov,
                });
                super::emit_to(out, &format!("{}\n", serde_json::to_string_pretty(&doc)?))?;
            }
        }
        return Ok(super::EXIT_CLEAN);
    }
    match a.format {
        Format::Text | Format::Html => {
            let hashed = hash::hash_tree(&tree, hash::Alg::Sha256, u64::MAX);
            super::emit_to(out, &fwscan::report::tree_text(&tree, &hashed))?;
        }
        Format::Json => {
            // Streamed node by node (issue 15): no copy of the tree is built for the output.
            let out: Box<dyn std::io::Write> = match out {
                None => Box::new(std::io::BufWriter::with_capacity(
                    1 << 16,
                    std::io::stdout().lock(),
                )),
                Some(_) => super::writer(out)?,
            };
            let path = a.image.display().to_string();
            match fwscan::report::inspect::write_inspect_json(out, &path, &tree) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => anyhow::bail!("writing the tree: {e}"),
            }
        }
    }
    Ok(super::EXIT_CLEAN)
}

/// Adds the platform keys of the trust policy ([`policy`]) to the parse options: Boot Guard OEM key pins,
/// ASPEED OTP images and U-Boot FIT keys, all of them (`inspect` and `check` know no product); release-package
/// keys still come from --openbmc-key/--capsule-cert.
pub(super) fn add_platform_keys(
    opts: &mut fwscan::formats::ParseOptions,
    given: Option<&Path>,
) -> anyhow::Result<()> {
    if let Some(policy) = policy(given) {
        let ring = policy?.key_ring(None, None);
        opts.keys.extend(
            ring.iter()
                .filter(|k| {
                    matches!(
                        k.scheme(),
                        Scheme::BootguardKm | Scheme::AspeedRot | Scheme::FitSignature
                    )
                })
                .cloned(),
        );
    }
    Ok(())
}

/// The trust policy of `inspect` and `check`: `--trust`, then `$FWSCAN_TRUST` (either must load), then the default
/// policy if it exists (skipped with a warning when it cannot be read); `None` when there is none.
fn policy(given: Option<&Path>) -> Option<anyhow::Result<fwscan::manifest::trust::TrustPolicy>> {
    let explicit =
        given.is_some() || std::env::var_os("FWSCAN_TRUST").is_some_and(|v| !v.is_empty());
    let path = super::verify::policy_path(given)?;
    match super::verify::load_policy(&path) {
        Ok(p) => Some(Ok(p)),
        Err(e) if explicit => Some(Err(anyhow::anyhow!("{e}"))),
        Err(e) => {
            eprintln!("fwscan: warning: {e}; inspecting without it");
            None
        }
    }
}
