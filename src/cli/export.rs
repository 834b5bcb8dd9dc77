//! `fwscan export`: an image's tree in another tool's format.

use std::path::PathBuf;

use fwscan::{formats, input};

use super::{emit, ParseArgs};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// The JSON `chipsec_main -m tools.uefi.scan_image -a generate,OUT,IMAGE` writes (executables by
    /// SHA-256 of their section body).
    ChipsecEfilist,
    /// The image's top-level regions as a flashrom layout (`start:end name`).
    FlashromLayout,
}

/// Write an image's executables or regions in another tool's format (CHIPSEC allowlist, flashrom layout).
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan export OVMF_CODE_4M.fd --format chipsec-efilist -o efilist.json\n  fwscan export dump.bin --format flashrom-layout > dump.layout && flashrom -p internal --layout dump.layout -i bios -r bios.bin"
)]
pub struct Args {
    /// Image file.
    pub image: PathBuf,
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Write here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub parse: ParseArgs,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let opts = a.parse.parse_options()?;
    let data = input::read_image(&a.image, &a.parse.read_options())?;
    let tree = formats::parse_image(data, &opts);
    let text = match a.format {
        ExportFormat::ChipsecEfilist => fwscan::export::chipsec_efilist(&tree),
        ExportFormat::FlashromLayout => fwscan::export::flashrom_layout(&tree),
    };
    match &a.output {
        Some(p) => std::fs::write(p, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?,
        None => emit(&text),
    }
    Ok(super::EXIT_CLEAN)
}
