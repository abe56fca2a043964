//! `schema` subcommand — not built yet.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum SchemaCommand {
    /// Not built yet.
    Todo,
}

pub fn run(_args: SchemaCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`schema` is not built yet")
}
