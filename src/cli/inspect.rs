//! `fwscan inspect`: print the region tree.

use std::path::PathBuf;

use fwscan::{formats, hash, input};

use super::{emit, Format, ParseArgs};

/// Print the region tree of an image (offsets, sizes, kinds, names, digests, parser notes).
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan inspect testdata/layout/image.bin --layout testdata/layout/image.layout\n  fwscan inspect /usr/share/OVMF/OVMF_CODE_4M.fd --format json > tree.json\n  fwscan inspect flash.bin --coverage"
)]
pub struct Args {
    /// Image file.
    pub image: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print which protection covers every byte (Boot Guard IBB, ACM, microcode, ME manifest, vendor
    /// package, baseline only, none) as ranges and totals instead of the tree.
    #[arg(long)]
    pub coverage: bool,
    #[command(flatten)]
    pub parse: ParseArgs,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let opts = a.parse.parse_options()?;
    let data = input::read_image(&a.image, &a.parse.read_options())?;
    let tree = formats::parse_image(data, &opts);
    if a.coverage {
        let cov = fwscan::coverage::compute(&tree);
        match a.format {
            Format::Text => emit(&fwscan::coverage::text(&cov)),
            Format::Json => {
                let doc = serde_json::json!({
                    "schema_version": 1,
                    "tool": fwscan::report::ToolInfo::default(),
                    "image": { "path": a.image.display().to_string(), "size": tree.size },
                    "order": fwscan::coverage::Protection::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                    "coverage": cov,
                });
                emit(&format!("{}\n", serde_json::to_string_pretty(&doc)?));
            }
        }
        return Ok(super::EXIT_CLEAN);
    }
    match a.format {
        Format::Text => {
            let hashed = hash::hash_tree(&tree, hash::Alg::Sha256, u64::MAX);
            emit(&fwscan::report::tree_text(&tree, &hashed));
        }
        Format::Json => {
            // Streamed node by node (issue 15): no copy of the tree is built for the output.
            let out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
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
