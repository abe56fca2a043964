//! `qalqan-detector`: the detector service, the standalone pipeline and the
//! rule tooling, as subcommands of one small binary.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = qalqan_detector::cli::Cli::parse();
    qalqan_detector::cli::run(cli)
}
