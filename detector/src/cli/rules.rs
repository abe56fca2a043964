//! `rules` subcommand — not built yet.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// Not built yet.
    Todo,
}

pub fn run(_args: RulesCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`rules` is not built yet")
}
