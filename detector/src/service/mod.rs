//! The detector service on Kafka (DESIGN.md, "Shape"): one process runs
//! any of three roles, each in its own thread and consumer group.
//!
//! * [`match_stage`] — stage 1: `qalqan.events.*` and `qalqan.raw.*` in;
//!   single-event alerts, correlation signals and dead letters out.
//! * [`correlate_stage`] — stage 2: `qalqan.signals` in, correlation alerts
//!   out, keyed state rebuilt on every assignment.
//! * [`archive`] — events and alerts into ClickHouse.
//!
//! Around them: [`reload`] (SIGHUP and rule-file changes), the metrics
//! endpoint, and a clean stop on SIGTERM/SIGINT that lets each role finish
//! (or abandon, uncommitted) its batch.

pub mod align;
pub mod archive;
pub mod bundle;
pub mod correlate_stage;
pub mod decode;
pub mod kafka;
pub mod match_stage;
pub mod match_workers;
pub mod reload;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qalqan_core::parse::ParseOptions;

use crate::config::{DetectorConfig, Role};
use crate::metrics::Metrics;
use crate::pipeline::RuleSources;
use reload::RuleHolder;

/// What every role thread shares.
pub struct Shared {
    pub config: DetectorConfig,
    pub rules: Arc<RuleHolder>,
    pub metrics: Arc<Metrics>,
    /// Set once to stop every role.
    pub stop: Arc<AtomicBool>,
    /// Prefix of the Kafka client ids of this process and suffix of stage
    /// 1's transactional id: `detector.instance`, else `host-pid`.
    pub instance: String,
}

impl Shared {
    pub fn parse_options(&self) -> ParseOptions {
        ParseOptions {
            max_line_bytes: self.config.raw.max_line_bytes as usize,
            ..ParseOptions::default()
        }
    }
}

/// How long a stopping role may take to finish its batch before the
/// process exits anyway (its uncommitted batch is read again next time).
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Runs the configured roles until SIGTERM/SIGINT, or until a role fails.
pub fn run(config: DetectorConfig) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let rules = Arc::new(RuleHolder::load(
        RuleSources::from_config(&config.rules),
        config.rules.strict,
        Arc::clone(&metrics),
    )?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (bound, _server) = runtime
        .block_on(qalqan_core::telemetry::serve_metrics(
            config.metrics.listen,
            metrics.registry.clone(),
            std::future::pending(),
        ))
        .map_err(|e| anyhow::anyhow!("metrics.listen {}: {e}", config.metrics.listen))?;
    tracing::info!("metrics on http://{bound}/metrics");

    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        instance: config
            .detector
            .instance
            .clone()
            .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id())),
        config,
        rules,
        metrics,
        stop: Arc::clone(&stop),
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(Role, anyhow::Result<()>)>();
    let mut workers = Vec::new();
    let mut roles = shared.config.detector.roles.clone();
    roles.dedup();
    for role in roles {
        let shared = Arc::clone(&shared);
        let done = done_tx.clone();
        let name = format!("qalqan-{role:?}").to_lowercase();
        let handle = std::thread::Builder::new().name(name).spawn(move || {
            let result = match role {
                Role::Match => match_stage::run(Arc::clone(&shared)),
                Role::Correlate => correlate_stage::run(Arc::clone(&shared)),
                Role::Archive => archive::run(Arc::clone(&shared)),
            };
            let _ = done.send((role, result));
        })?;
        workers.push(handle);
    }
    drop(done_tx);

    let outcome = runtime.block_on(supervise(Arc::clone(&shared), done_rx));
    stop.store(true, Ordering::Release);
    let deadline = Instant::now() + STOP_GRACE;
    while workers.iter().any(|w| !w.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if workers.iter().any(|w| !w.is_finished()) {
        tracing::warn!(
            "a role did not stop within {STOP_GRACE:?}; exiting, its batch will be read again"
        );
    }
    outcome
}

/// Waits for a stop signal or a failed role; reloads rules on SIGHUP and on
/// file changes meanwhile.
async fn supervise(
    shared: Arc<Shared>,
    done: std::sync::mpsc::Receiver<(Role, anyhow::Result<()>)>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let watch = shared.config.rules.watch;
    let mut interval = tokio::time::interval(if watch {
        shared.config.rules.watch_interval
    } else {
        Duration::from_secs(1)
    });
    let mut fingerprint = shared.rules.fingerprint();
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); return Ok(()); }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); return Ok(()); }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading rules");
                let _ = shared.rules.reload();
                fingerprint = shared.rules.fingerprint();
            }
            _ = interval.tick() => {
                match done.try_recv() {
                    Ok((role, Err(e))) => return Err(e.context(format!("role {role:?} failed"))),
                    Ok((role, Ok(()))) => {
                        if !shared.stop.load(Ordering::Acquire) {
                            anyhow::bail!("role {role:?} stopped unexpectedly");
                        }
                    }
                    Err(_) => {}
                }
                if watch {
                    let now = shared.rules.fingerprint();
                    if now != fingerprint {
                        tracing::info!("rule files changed: reloading");
                        let _ = shared.rules.reload();
                        fingerprint = now;
                    }
                }
            }
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "detector".into())
}
