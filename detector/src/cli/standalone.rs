//! `standalone` subcommand — not built yet.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct StandaloneArgs {}

pub fn run(_args: StandaloneArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`standalone` is not built yet")
}
