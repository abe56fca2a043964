//! `qalqan-detector run`: the Kafka service (see [`crate::service`]).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::DetectorConfig;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The TOML config (commented example: deploy/detector/qalqan-detector.toml).
    #[arg(long, short, default_value = "/etc/qalqan/detector.toml")]
    pub config: PathBuf,
    /// Validate the config and load the rules, then exit (0 if usable).
    #[arg(long)]
    pub check: bool,
    /// Log as JSON lines (for journald or a log shipper).
    #[arg(long)]
    pub log_json: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    qalqan_core::telemetry::init_tracing(args.log_json);
    let config: DetectorConfig = qalqan_core::config::load(&args.config)?;
    if args.check {
        let rules = crate::pipeline::LoadedRules::load(
            &crate::pipeline::RuleSources::from_config(&config.rules),
        )?;
        for p in &rules.problems {
            eprintln!("rejected: {p}");
        }
        eprintln!("{}: config ok; {}", args.config.display(), rules.summary());
        let refuse = config.rules.strict && !rules.problems.is_empty();
        return Ok(if refuse {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    crate::service::run(config)?;
    Ok(ExitCode::SUCCESS)
}
