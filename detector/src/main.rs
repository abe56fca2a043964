//! `qalqan-detector`: the detector service, the standalone pipeline and the
//! rule tooling, as subcommands of one small binary.

use std::process::ExitCode;

use clap::Parser;

/// Events, signals and alerts are many small short-lived allocations;
/// mimalloc handles them markedly faster than glibc's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    qalqan_core::memory::tune_allocators_or_warn("qalqan-detector");
    let cli = qalqan_detector::cli::Cli::parse();
    qalqan_detector::cli::run(cli)
}
