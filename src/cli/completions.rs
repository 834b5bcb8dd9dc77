//! `fwscan completions SHELL` and `fwscan man`: generated from the same clap definitions as `--help`.

use clap::CommandFactory;

use super::Cli;

/// Print a shell completion script (bash, zsh, fish, powershell, elvish) to stdout.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Install (bash):  fwscan completions bash > /usr/share/bash-completion/completions/fwscan\nInstall (zsh):   fwscan completions zsh > \"${fpath[1]}/_fwscan\"\nInstall (fish):  fwscan completions fish > ~/.config/fish/completions/fwscan.fish"
)]
pub struct Args {
    /// Target shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "fwscan", &mut out);
    super::emit(&String::from_utf8_lossy(&out));
    Ok(super::EXIT_CLEAN)
}

/// Print the manual page (roff) to stdout: `fwscan man > /usr/share/man/man1/fwscan.1`.
#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write one page per subcommand (`fwscan.1`, `fwscan-scan.1`, ...) into this directory instead.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

pub fn man(a: ManArgs) -> anyhow::Result<u8> {
    let cmd = Cli::command();
    match a.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(cmd, &dir)?;
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            super::emit(&String::from_utf8_lossy(&out));
        }
    }
    Ok(super::EXIT_CLEAN)
}
