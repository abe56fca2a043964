//! Wiring: builds every component from the config, runs them, and shuts
//! them down in the order that loses nothing.
//!
//! Shutdown (SIGTERM/SIGINT, or the end of a stdin replay):
//! 1. sources stop reading and hand over what they have read;
//! 2. a last heartbeat (`stopping = true`) is queued;
//! 3. the buffer drain stops, and Kafka gets `shutdown_timeout` to confirm
//!    what is in flight;
//! 4. whatever is still unconfirmed is purged from the producer: events that
//!    came straight from sources are written to the disk buffer (overflow
//!    mode), events read from the buffer stay there unacknowledged;
//! 5. the buffer learns the final ack point, file checkpoints and journald
//!    cursors are saved, the sequence counter is marked clean.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qalqan_core::parse::Parser;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{BufferMode, Config};
use crate::heartbeat::Heartbeat;
use crate::metrics::{self, Metrics};
use crate::pipeline::{Identity, Pipeline};
use crate::router::{Router, RouterSettings, Tracker};
use crate::sequence::SequenceAllocator;
use crate::sink::KafkaSink;
use crate::sources::Prepared;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Replay stdin instead of the configured sources; exit once it is all
    /// confirmed by Kafka.
    pub stdin: bool,
}

/// A started collector.
pub struct Running {
    cfg: Config,
    pipeline: Arc<Pipeline>,
    router: Arc<Router>,
    sink: Arc<KafkaSink>,
    heartbeat: Arc<Heartbeat>,
    stop_sources: CancellationToken,
    stop_drain: CancellationToken,
    stop_retries: CancellationToken,
    stop_background: CancellationToken,
    sources: Vec<JoinHandle<()>>,
    finishers: Vec<JoinHandle<()>>,
    drain: Option<JoinHandle<()>>,
    retries: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
    stdin: Option<JoinHandle<u64>>,
    replay: bool,
    _lock: std::fs::File,
    /// Bound address of each network source, by id.
    pub source_addrs: BTreeMap<String, SocketAddr>,
    /// Bound address of the metrics endpoint.
    pub metrics_addr: Option<SocketAddr>,
    pub metrics: Arc<Metrics>,
}

/// The machine's host name.
pub fn machine_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..end]).trim().to_owned();
        if !name.is_empty() {
            return name;
        }
    }
    "localhost".into()
}

/// Starts everything; returns once sources are bound and running.
pub async fn start(cfg: Config, opts: RunOptions) -> anyhow::Result<Running> {
    let c = &cfg.collector;
    crate::state::ensure_dir(&c.state_dir)?;
    let lock = crate::state::lock_dir(&c.state_dir)?;
    let metrics = Metrics::new(&c.name, &c.agency);
    let sequence = SequenceAllocator::open(&c.state_dir)?;
    tracing::info!(
        resumed = sequence.resume().as_str(),
        next = sequence.first_of_run(),
        "sequence counter ready"
    );
    if let crate::sequence::Resume::Reserved { skipped_at_most } = sequence.resume() {
        tracing::warn!(
            skipped_at_most,
            "unclean stop in an earlier boot: observer.sequence resumes after its durable reservation (a reported jump, not loss)"
        );
    }
    let buffer = match cfg.buffer.mode {
        BufferMode::Off => None,
        _ => Some(crate::disk::open(&cfg.buffer, &c.state_dir)?),
    };
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let t2 = tracker.clone();
    let topic = qalqan_core::topics::events_topic(&c.agency);
    let (sink, retry_rx) = KafkaSink::new(
        &cfg.kafka,
        &cfg.sink,
        &format!("qalqan-collector-{}", c.name),
        topic.clone(),
        metrics.clone(),
        Box::new(move |id| t2.lock().unwrap_or_else(|p| p.into_inner()).confirmed(id)),
    )?;
    let stop_sources = CancellationToken::new();
    let router = Router::new(
        RouterSettings {
            mode: cfg.buffer.mode,
            overflow_after: cfg.buffer.overflow_after,
            append_budget: crate::disk::append_budget(&cfg.buffer),
        },
        sink.clone(),
        buffer,
        tracker,
        metrics.clone(),
        stop_sources.clone(),
    );
    let identity = Identity {
        name: c.name.clone(),
        hostname: c.hostname.clone().unwrap_or_else(machine_hostname),
        agency: c.agency.clone(),
    };
    let parser = Parser::new(cfg.parse.options());
    let pipeline = Pipeline::new(parser, identity, sequence, router.clone(), metrics.clone());

    // Bind everything before anything runs, so a bad port fails the start.
    let mut prepared = Vec::new();
    let mut source_addrs = BTreeMap::new();
    if !opts.stdin {
        for (id, sc) in &cfg.sources {
            let p = Prepared::prepare(id, sc, &cfg.parse, &c.state_dir).await?;
            if let Some(a) = p.local_addr() {
                source_addrs.insert(id.clone(), a);
            }
            prepared.push(p);
        }
    }
    let stop_background = CancellationToken::new();
    let mut background = Vec::new();
    let mut metrics_addr = None;
    if cfg.metrics.enabled && !opts.stdin {
        let listener = metrics::bind(cfg.metrics.listen).await?;
        metrics_addr = listener.local_addr().ok();
        background.push(tokio::spawn(metrics::serve(
            listener,
            metrics.clone(),
            stop_background.clone(),
        )));
    }
    let stop_retries = CancellationToken::new();
    let retries = tokio::spawn(sink.clone().run_retries(retry_rx, stop_retries.clone()));
    let stop_drain = CancellationToken::new();
    let drain = match cfg.buffer.mode {
        BufferMode::Off => None,
        _ => Some(tokio::spawn(router.clone().run_drain(stop_drain.clone()))),
    };
    background.push(tokio::spawn(
        router
            .clone()
            .run_acker(Duration::from_millis(50), stop_background.clone()),
    ));
    let heartbeat = Heartbeat::new(pipeline.clone());
    if cfg.heartbeat.enabled && !opts.stdin {
        background.push(tokio::spawn(
            heartbeat
                .clone()
                .run(cfg.heartbeat.interval, stop_background.clone()),
        ));
    }
    let mut sources = Vec::new();
    let mut finishers = Vec::new();
    for p in prepared {
        let (reader, finisher) = p.start(pipeline.clone(), stop_sources.clone());
        sources.push(reader);
        finishers.extend(finisher);
    }
    let stdin = opts.stdin.then(|| {
        tokio::spawn(crate::sources::stdin::run(
            pipeline.clone(),
            cfg.parse.max_line(),
            stop_sources.clone(),
        ))
    });
    tracing::info!(
        name = %c.name,
        topic = %topic,
        buffer = ?cfg.buffer.mode,
        sources = cfg.sources.len(),
        run_id = heartbeat.run_id(),
        "qalqan-collector {} started",
        crate::VERSION
    );
    Ok(Running {
        cfg,
        pipeline,
        router,
        sink,
        heartbeat,
        stop_sources,
        stop_drain,
        stop_retries,
        stop_background,
        sources,
        finishers,
        drain,
        retries,
        background,
        stdin,
        replay: opts.stdin,
        _lock: lock,
        source_addrs,
        metrics_addr,
        metrics,
    })
}

impl Running {
    /// Runs until SIGTERM/SIGINT (or, for a stdin replay, until stdin ended
    /// and everything is confirmed), then shuts down gracefully.
    pub async fn run_until_signal(mut self) -> anyhow::Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let replay_done = async {
            match self.stdin.as_mut() {
                Some(h) => {
                    let n = h.await.unwrap_or(0);
                    tracing::info!(
                        lines = n,
                        "stdin ended; waiting for Kafka to confirm everything"
                    );
                    self.router.wait_idle(&self.stop_background).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            _ = replay_done => {}
        }
        // A second signal means "now".
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            tracing::warn!("second signal: exiting without waiting");
            std::process::exit(130);
        });
        self.stdin = None;
        self.shutdown().await
    }

    /// Graceful shutdown; see the module docs for the order.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let timeout = self.cfg.collector.shutdown_timeout;
        self.stop_sources.cancel();
        for mut h in self.sources {
            if tokio::time::timeout(timeout, &mut h).await.is_err() {
                tracing::error!("a source did not stop within {timeout:?} (is Kafka down and the buffer full?); its unsaved lines are read again after restart");
                h.abort();
            }
        }
        if let Some(h) = self.stdin {
            h.abort();
        }
        if self.cfg.heartbeat.enabled && !self.replay {
            self.heartbeat.send(true);
        }
        self.stop_drain.cancel();
        if let Some(d) = self.drain {
            let _ = d.await;
        }
        if !self.sink.flush(timeout).await {
            tracing::warn!(
                in_flight = self.sink.in_flight(),
                "Kafka did not confirm everything within {timeout:?}"
            );
        }
        self.stop_retries.cancel();
        let _ = self.retries.await;
        let returned = self.sink.purge();
        let lost = self.router.keep_returned(returned).await;
        if lost > 0 {
            tracing::error!(
                events = lost,
                "events were not confirmed by Kafka and there is no disk buffer to keep them (buffer.mode = \"off\")"
            );
        }
        self.router.final_ack();
        for f in self.finishers {
            if tokio::time::timeout(Duration::from_secs(10), f)
                .await
                .is_err()
            {
                tracing::error!("a checkpoint was not saved in time");
            }
        }
        if let Err(e) = self.pipeline.close_sequence() {
            tracing::error!("cannot mark the sequence state clean: {e}");
        }
        self.stop_background.cancel();
        for b in self.background {
            let _ = b.await;
        }
        tracing::info!(
            sent = self.metrics.events_sent.get(),
            last_sequence = self.pipeline.last_sequence(),
            "qalqan-collector stopped"
        );
        Ok(())
    }
}
