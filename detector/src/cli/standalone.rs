//! `qalqan-detector standalone`: the whole pipeline in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use qalqan_core::parse::ParseOptions;

use crate::metrics::Metrics;
use crate::pipeline::matcher::MatcherSettings;
use crate::pipeline::{LoadedRules, RuleSources};
use crate::sinks::console::ConsoleRenderer;
use crate::standalone::{Input, Standalone};

#[derive(Debug, clap::Args)]
pub struct StandaloneArgs {
    /// Feed the built-in attack scenario: an e-government portal scanned,
    /// brute-forced, broken into and escalated on.
    #[arg(long)]
    pub demo: bool,
    /// Log files to read (syslog, web access, JSON lines, ...); `-` is stdin.
    #[arg(long = "input", value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// Keep reading the input files as they grow, like `tail -f`.
    #[arg(long)]
    pub follow: bool,
    /// Rule files or directories.
    #[arg(long = "rules", value_name = "PATH", default_value = "rules")]
    pub rules: Vec<PathBuf>,
    /// Processing pipelines; by default every `*.yml` in `rules/pipelines`.
    #[arg(long = "pipeline", value_name = "FILE")]
    pub pipelines: Vec<PathBuf>,
    /// Refuse to run if any rule is rejected.
    #[arg(long)]
    pub strict: bool,
    /// Agency the input belongs to.
    #[arg(long, default_value = "demo")]
    pub agency: String,
    /// JSON-lines file the alerts are appended to.
    #[arg(long, default_value = ".work/standalone/alerts.jsonl")]
    pub alerts_out: PathBuf,
    /// JSON-lines file every normalized event is appended to (the stand-in
    /// for ClickHouse); `none` to skip.
    #[arg(long, default_value = ".work/standalone/events.jsonl")]
    pub events_out: PathBuf,
    /// Serve Prometheus metrics here while running; `none` to skip.
    #[arg(long, default_value = "127.0.0.1:19102")]
    pub metrics: String,
    /// Print alerts as JSON lines on stdout instead of the readable form.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: StandaloneArgs) -> anyhow::Result<ExitCode> {
    qalqan_core::telemetry::init_tracing(false);
    if !qalqan_core::topics::valid_agency(&args.agency) {
        anyhow::bail!(
            "--agency {:?}: use 1-64 characters of A-Z, a-z, 0-9, - and _",
            args.agency
        );
    }
    let mut inputs: Vec<Input> = args.inputs.iter().cloned().map(Input::File).collect();
    if args.demo {
        inputs.insert(0, Input::Demo);
    }
    if inputs.is_empty() {
        anyhow::bail!("nothing to read: give --demo, or --input FILE (`-` for stdin)");
    }
    let pipelines = if args.pipelines.is_empty() {
        crate::pipeline::rules::shipped_pipelines(&args.rules)
    } else {
        args.pipelines.clone()
    };
    let rules = LoadedRules::load(&RuleSources {
        paths: args.rules.clone(),
        pipelines,
        ..RuleSources::default()
    })?;
    for p in &rules.problems {
        tracing::warn!("rule rejected: {p}");
    }
    if args.strict && !rules.problems.is_empty() {
        anyhow::bail!(
            "{} rule(s) rejected and --strict is set",
            rules.problems.len()
        );
    }
    eprintln!("qalqan standalone: {}", rules.summary());
    let metrics = Arc::new(Metrics::new());
    metrics
        .rules_loaded
        .with_label_values(&["loaded"])
        .set((rules.detection_loaded + rules.correlation_loaded) as i64);
    metrics
        .rules_loaded
        .with_label_values(&["rejected"])
        .set(rules.problems.len() as i64);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _metrics_server = if args.metrics != "none" {
        let addr: SocketAddr = args
            .metrics
            .parse()
            .map_err(|e| anyhow::anyhow!("--metrics {}: {e}", args.metrics))?;
        let registry = metrics.registry.clone();
        match runtime.block_on(qalqan_core::telemetry::serve_metrics(
            addr,
            registry,
            std::future::pending(),
        )) {
            Ok((bound, handle)) => {
                eprintln!("qalqan standalone: metrics on http://{bound}/metrics");
                Some(handle)
            }
            Err(e) => {
                tracing::warn!("metrics endpoint {addr} not started: {e}");
                None
            }
        }
    } else {
        None
    };
    // Serve metrics from a background thread while the pipeline runs here.
    let rt_thread = std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
    let optional = |p: &PathBuf| (p.as_os_str() != "none").then(|| p.clone());
    let run = Standalone {
        agency: args.agency.clone(),
        inputs,
        follow: args.follow,
        alerts_out: optional(&args.alerts_out),
        events_out: optional(&args.events_out),
        console: (!args.json).then(ConsoleRenderer::for_stdout),
        json_stdout: args.json,
        matcher: MatcherSettings::default(),
        correlation: qalqan_correlation::EngineConfig::default(),
        parse: ParseOptions::default(),
    };
    let summary = run.run(Arc::new(rules), metrics)?;
    drop(rt_thread);
    eprintln!(
        "qalqan standalone: {} lines ({} unparsed), {} alerts; alerts in {}, events in {}",
        summary.lines,
        summary.unparsed,
        summary.alerts,
        args.alerts_out.display(),
        args.events_out.display()
    );
    Ok(ExitCode::SUCCESS)
}
