//! Command-line surface. Each subcommand lives in its own module.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod replay;
pub mod rules;
pub mod schema;
pub mod service;
pub mod standalone;

#[derive(Debug, Parser)]
#[command(
    name = "qalqan-detector",
    version,
    about = "qalqan detector: Sigma detection and correlation for SOC pipelines"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the detector service against Kafka (and ClickHouse).
    Run(service::RunArgs),
    /// Run collector, both detector stages and the sinks in one process, no Kafka needed.
    Standalone(standalone::StandaloneArgs),
    /// Rule tooling: check, test and explain Sigma rules.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Parse a log or JSON-lines file and print what the rules match.
    Replay(replay::ReplayArgs),
    /// ClickHouse schema management.
    #[command(subcommand)]
    Schema(schema::SchemaCommand),
}

/// Runs a parsed command line and maps the outcome to an exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Run(a) => service::run(a),
        Command::Standalone(a) => standalone::run(a),
        Command::Rules(c) => rules::run(c),
        Command::Replay(a) => replay::run(a),
        Command::Schema(c) => schema::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("qalqan-detector: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Default locations shared by several subcommands.
pub fn default_rules_dir() -> PathBuf {
    PathBuf::from("rules")
}
