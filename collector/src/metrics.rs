//! Prometheus metrics (`qalqan_collector_` prefix, units in names) and the
//! tiny HTTP endpoint that serves them on `/metrics`.
//!
//! One registry per process, so tests can run several collectors side by
//! side. The heartbeat reads the same numbers, which is why the totals it
//! needs are kept here too.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Every metric the collector exports.
pub struct Metrics {
    pub registry: Registry,
    pub events_received: IntCounterVec,
    pub events_parsed: IntCounterVec,
    pub events_flagged: IntCounterVec,
    pub batches_built: IntCounterVec,
    pub events_sent: IntCounter,
    pub send_errors: IntCounter,
    pub events_spilled: IntCounter,
    pub buffer_bytes: IntGauge,
    pub buffer_events: IntGauge,
    pub udp_dropped: IntCounterVec,
    pub udp_spooled: IntCounterVec,
    pub oldest_unsent_seconds: Gauge,
    pub in_flight: IntGauge,
    pub last_sequence: IntGauge,
    pub heartbeats_sent: IntCounter,
    pub connections: IntGaugeVec,
    pub state_write_errors: IntCounter,
    pub start_time_seconds: Gauge,
    received_total: AtomicU64,
    udp_dropped_total: AtomicU64,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let v = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name} is statically valid: {e}"));
    register(r, Box::new(v.clone()));
    v
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help)
        .unwrap_or_else(|e| unreachable!("metric {name} is statically valid: {e}"));
    register(r, Box::new(c.clone()));
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help)
        .unwrap_or_else(|e| unreachable!("metric {name} is statically valid: {e}"));
    register(r, Box::new(g.clone()));
    g
}

fn register(r: &Registry, c: Box<dyn prometheus::core::Collector>) {
    if let Err(e) = r.register(c) {
        tracing::error!("metric registration failed: {e}");
    }
}

impl Metrics {
    /// Creates the registry with every metric, and `build_info`.
    pub fn new(name: &str, agency: &str) -> Arc<Metrics> {
        let r = Registry::new();
        let p = "qalqan_collector_";
        let m = Metrics {
            events_received: counter_vec(
                &r,
                &format!("{p}events_received_total"),
                "Events read from each source.",
                &["source", "input"],
            ),
            events_parsed: counter_vec(
                &r,
                &format!("{p}events_parsed_total"),
                "Events by the parser that produced them (`unparsed` when none recognized the line).",
                &["parser"],
            ),
            events_flagged: counter_vec(
                &r,
                &format!("{p}events_flagged_total"),
                "Events whose raw line was damaged: truncated, invalid_utf8, partial, unparsed.",
                &["flag"],
            ),
            batches_built: counter_vec(
                &r,
                &format!("{p}batches_built_total"),
                "Batches of a busy connection built on the build pool (`pool`, another core) or on the reading task (`inline`). Many `pool` batches: a connection needs more than one core.",
                &["where"],
            ),
            events_sent: counter(
                &r,
                &format!("{p}events_sent_total"),
                "Events confirmed by Kafka.",
            ),
            send_errors: counter(
                &r,
                &format!("{p}send_errors_total"),
                "Failed Kafka deliveries (each is retried; none is dropped).",
            ),
            events_spilled: counter(
                &r,
                &format!("{p}events_spilled_total"),
                "Events written to the disk buffer because Kafka was down or slow (overflow mode).",
            ),
            buffer_bytes: gauge(
                &r,
                &format!("{p}buffer_bytes"),
                "Bytes in the disk buffer not yet confirmed by Kafka.",
            ),
            buffer_events: gauge(
                &r,
                &format!("{p}buffer_events"),
                "Events in the disk buffer not yet confirmed by Kafka.",
            ),
            udp_dropped: counter_vec(
                &r,
                &format!("{p}udp_dropped_total"),
                "UDP datagrams lost: `kernel` (socket buffer overflow), `queue_full` (memory queue and spool full), `buffer_full` (disk buffer full) or `error`.",
                &["source", "reason"],
            ),
            udp_spooled: counter_vec(
                &r,
                &format!("{p}udp_spooled_total"),
                "UDP datagrams that waited in the spool file because the memory queue was full (a burst beyond `queue`).",
                &["source"],
            ),
            oldest_unsent_seconds: {
                let g = Gauge::new(
                    format!("{p}oldest_unsent_event_age_seconds"),
                    "Age of the oldest event not yet confirmed by Kafka.",
                )
                .unwrap_or_else(|e| unreachable!("static metric: {e}"));
                register(&r, Box::new(g.clone()));
                g
            },
            in_flight: gauge(
                &r,
                &format!("{p}events_in_flight"),
                "Events handed to the Kafka producer and not yet confirmed.",
            ),
            last_sequence: gauge(
                &r,
                &format!("{p}last_sequence"),
                "Last observer.sequence handed out.",
            ),
            heartbeats_sent: counter(
                &r,
                &format!("{p}heartbeats_sent_total"),
                "Heartbeat events confirmed by Kafka.",
            ),
            connections: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        format!("{p}connections"),
                        "Open TCP/TLS connections per source.",
                    ),
                    &["source"],
                )
                .unwrap_or_else(|e| unreachable!("static metric: {e}"));
                register(&r, Box::new(g.clone()));
                g
            },
            state_write_errors: counter(
                &r,
                &format!("{p}state_write_errors_total"),
                "Failed writes of checkpoints, cursors or the sequence state.",
            ),
            start_time_seconds: {
                let g = Gauge::new(
                    format!("{p}start_time_seconds"),
                    "Unix time the collector started.",
                )
                .unwrap_or_else(|e| unreachable!("static metric: {e}"));
                register(&r, Box::new(g.clone()));
                g
            },
            received_total: AtomicU64::new(0),
            udp_dropped_total: AtomicU64::new(0),
            registry: r,
        };
        let info = IntGaugeVec::new(
            Opts::new(
                format!("{p}build_info"),
                "Always 1; labels carry the version, collector name and agency.",
            ),
            &["version", "name", "agency"],
        )
        .unwrap_or_else(|e| unreachable!("static metric: {e}"));
        info.with_label_values(&[crate::VERSION, name, agency])
            .set(1);
        register(&m.registry, Box::new(info));
        m.start_time_seconds
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        Arc::new(m)
    }

    /// Counts `n` events read by `source`.
    pub fn received(&self, source: &str, input: &str, n: u64) {
        self.events_received
            .with_label_values(&[source, input])
            .inc_by(n);
        self.received_total.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` UDP datagrams lost for `reason`.
    pub fn udp_drop(&self, source: &str, reason: &str, n: u64) {
        if n == 0 {
            return;
        }
        self.udp_dropped
            .with_label_values(&[source, reason])
            .inc_by(n);
        self.udp_dropped_total.fetch_add(n, Ordering::Relaxed);
    }

    pub fn received_total(&self) -> u64 {
        self.received_total.load(Ordering::Relaxed)
    }

    pub fn udp_dropped_total(&self) -> u64 {
        self.udp_dropped_total.load(Ordering::Relaxed)
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8192);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!("metrics encoding failed: {e}");
        }
        out
    }
}

/// Binds the metrics endpoint (so a taken port fails the start, not later).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics.listen {addr}: cannot bind: {e}"))
}

/// Serves `GET /metrics` (and `GET /health`) until cancelled.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let (mut stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("metrics accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut req = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                loop {
                    let n = stream.read(&mut chunk).await?;
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&chunk[..n]);
                    if req.windows(4).any(|w| w == b"\r\n\r\n") || req.len() > 8192 {
                        break;
                    }
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let line = req.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line);
            let mut parts = line.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (status, ctype, body) = match (method, path.split('?').next().unwrap_or("")) {
                ("GET", "/metrics") => (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    metrics.render(),
                ),
                ("GET", "/health") => ("200 OK", "text/plain", b"ok\n".to_vec()),
                _ => ("404 Not Found", "text/plain", b"try /metrics\n".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        });
    }
}
