//! `qalqan-collector`: a thin command line over the library.
//!
//! ```text
//! qalqan-collector --config /etc/qalqan/collector.toml      run
//! qalqan-collector --config FILE --stdin < old.log          replay stdin, exit when delivered
//! qalqan-collector check-config FILE                        validate and exit
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use qalqan_collector::config::Config;

/// Parsing and normalizing is many small short-lived allocations per line;
/// mimalloc handles them markedly faster than glibc's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "qalqan-collector",
    version,
    about = "Collects logs at the edge, parses them and forwards them to Kafka without losing any."
)]
struct Cli {
    /// The TOML config file.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Replay standard input instead of the configured sources; exits once
    /// every line is confirmed by Kafka.
    #[arg(long)]
    stdin: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file (including TLS files and globs) and exit.
    CheckConfig { file: PathBuf },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,librdkafka=warn"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn load(path: &std::path::Path, stdin: bool) -> Result<Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    qalqan_collector::config::load_str(&text, path, stdin).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    // librdkafka's batch and compression buffers come and go with every
    // produce request; kept on glibc's heap they are not faulted in again
    // each time (see `qalqan_core::memory`).
    qalqan_core::memory::tune_allocators_or_warn("qalqan-collector");
    let cli = Cli::parse();
    if let Some(Command::CheckConfig { file }) = &cli.command {
        return match load(file, false)
            .and_then(|c| qalqan_collector::config::deep_check(&c).map(|s| (c, s)))
        {
            Ok((_, summary)) => {
                println!("{}: OK\n{summary}", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        };
    }
    let Some(path) = cli.config else {
        eprintln!(
            "qalqan-collector: --config FILE is required (or: check-config FILE); see --help"
        );
        return ExitCode::from(2);
    };
    init_logging(cli.log_format);
    let cfg = match load(&path, cli.stdin) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let opts = qalqan_collector::app::RunOptions { stdin: cli.stdin };
    let result = rt.block_on(async move {
        let running = qalqan_collector::app::start(cfg, opts).await?;
        running.run_until_signal().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("qalqan-collector: {e:#}");
            ExitCode::from(1)
        }
    }
}
