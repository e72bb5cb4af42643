//! `exitwise completions` and `exitwise man`: shell completions and a man page, generated from
//! the same clap definitions as the parser.

use clap::CommandFactory as _;

use crate::cli::{Cli, EXIT_OK, output};

/// Arguments of `exitwise completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Writes the completion script for a shell to stdout.
pub fn run_completions(args: &CompletionsArgs) -> anyhow::Result<u8> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "exitwise", &mut script);
    output::print(&String::from_utf8_lossy(&script))?;
    Ok(EXIT_OK)
}

/// Writes the man page (roff) to stdout.
pub fn run_man() -> anyhow::Result<u8> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    output::print(&String::from_utf8_lossy(&page))?;
    Ok(EXIT_OK)
}
