//! Heartbeats: the collector's pulse, sent through Kafka.
//!
//! The centre usually cannot scrape a collector inside an agency network,
//! so every collector sends a heartbeat event on its agency topic every
//! `heartbeat.interval` (default 30 s), and once more when it stops. A
//! collector whose heartbeats stop has gone dark. Heartbeats bypass the disk
//! buffer (they report the present, not the past) and do not consume
//! `observer.sequence` numbers. The format (a normal event, JSON):
//!
//! | field | meaning |
//! |---|---|
//! | `event.kind` | `state` |
//! | `event.dataset` | `qalqan.heartbeat` |
//! | `event.id` | `event_id([observer.name, "heartbeat", run_id, n])` |
//! | `observer.name`, `.hostname`, `.version`, `.type` | as on events |
//! | `host.name` | the collector's host (also the Kafka key) |
//! | `qalqan.collector.version` | collector version |
//! | `qalqan.collector.run_id` | random per process start |
//! | `qalqan.collector.uptime_seconds` | seconds since start |
//! | `qalqan.collector.stopping` | `true` on the last heartbeat of a clean stop |
//! | `qalqan.collector.last_sequence` | last `observer.sequence` handed out |
//! | `qalqan.collector.sequence_start` | first `observer.sequence` of this run |
//! | `qalqan.collector.sequence_resumed` | `fresh`, `exact`, or `reserved`: after an unclean stop in an earlier boot the sequence resumed after its durable reservation, so numbers between the last one seen and `sequence_start` were skipped, not lost |
//! | `qalqan.collector.events_received` | lines read by all sources |
//! | `qalqan.collector.events_sent` | events confirmed by Kafka |
//! | `qalqan.collector.send_errors` | failed deliveries (all retried) |
//! | `qalqan.collector.udp_dropped` | UDP datagrams lost (kernel + buffer full) |
//! | `qalqan.collector.buffer_mode` | `write_ahead`, `overflow` or `off` |
//! | `qalqan.collector.buffer_bytes`, `buffer_events` | disk buffer backlog |
//! | `qalqan.collector.oldest_unsent_seconds` | age of the oldest unconfirmed event |
//!
//! All counters are totals since the process started (reset on restart;
//! `run_id` tells runs apart).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qalqan_core::event::{now_micros, Event, LogSource, Value};
use tokio_util::sync::CancellationToken;

use crate::config::BufferMode;
use crate::pipeline::Pipeline;
use crate::sink::{Origin, Record, Token};

/// Builds and sends heartbeats.
pub struct Heartbeat {
    pipeline: Arc<Pipeline>,
    started: Instant,
    run_id: String,
    count: AtomicU64,
}

fn mode_name(m: BufferMode) -> &'static str {
    match m {
        BufferMode::WriteAhead => "write_ahead",
        BufferMode::Overflow => "overflow",
        BufferMode::Off => "off",
    }
}

impl Heartbeat {
    pub fn new(pipeline: Arc<Pipeline>) -> Arc<Heartbeat> {
        let seed = format!(
            "{}-{}-{:?}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
            std::thread::current().id()
        );
        Arc::new(Heartbeat {
            pipeline,
            started: Instant::now(),
            run_id: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes())),
            count: AtomicU64::new(0),
        })
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The heartbeat event as it is now.
    pub fn event(&self, stopping: bool) -> Event {
        let p = &self.pipeline;
        let id = p.identity();
        let m = p.metrics();
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        let last = p.last_sequence();
        let (seq_start, resumed) = p.sequence_start();
        let now = now_micros();
        let mut ev = Event::new(
            format!(
                "qalqan-collector heartbeat name={} last_sequence={last} events_sent={}",
                id.name,
                m.events_sent.get()
            ),
            now,
        );
        ev.logsource = LogSource::new(Some("qalqan"), Some("collector"), None);
        let f = &mut ev.fields;
        f.insert("event.kind", "state");
        f.insert("event.dataset", "qalqan.heartbeat");
        f.insert(
            "event.id",
            qalqan_core::alert::event_id(&[
                id.name.as_bytes(),
                b"heartbeat",
                self.run_id.as_bytes(),
                n.to_string().as_bytes(),
            ]),
        );
        f.insert("observer.name", id.name.as_str());
        f.insert("observer.hostname", id.hostname.as_str());
        f.insert("observer.version", crate::VERSION);
        f.insert("observer.type", "collector");
        f.insert("host.name", id.hostname.as_str());
        let c =
            |k: &'static str| -> std::borrow::Cow<'static, str> { std::borrow::Cow::Borrowed(k) };
        f.insert(c("qalqan.collector.version"), crate::VERSION);
        f.insert(c("qalqan.collector.run_id"), self.run_id.as_str());
        f.insert(
            c("qalqan.collector.uptime_seconds"),
            self.started.elapsed().as_secs(),
        );
        f.insert(c("qalqan.collector.stopping"), stopping);
        f.insert(c("qalqan.collector.last_sequence"), last);
        f.insert(c("qalqan.collector.sequence_start"), seq_start);
        f.insert(c("qalqan.collector.sequence_resumed"), resumed);
        f.insert(c("qalqan.collector.events_received"), m.received_total());
        f.insert(c("qalqan.collector.events_sent"), m.events_sent.get());
        f.insert(c("qalqan.collector.send_errors"), m.send_errors.get());
        f.insert(c("qalqan.collector.udp_dropped"), m.udp_dropped_total());
        f.insert(
            c("qalqan.collector.buffer_mode"),
            mode_name(p.router().mode()),
        );
        f.insert(
            c("qalqan.collector.buffer_bytes"),
            Value::Int(m.buffer_bytes.get()),
        );
        f.insert(
            c("qalqan.collector.buffer_events"),
            Value::Int(m.buffer_events.get()),
        );
        f.insert(
            c("qalqan.collector.oldest_unsent_seconds"),
            Value::Float((m.oldest_unsent_seconds.get() * 1000.0).round() / 1000.0),
        );
        ev
    }

    /// Hands a heartbeat to the producer (dropped, with a debug log, if the
    /// producer queue is full: the next one follows).
    pub fn send(&self, stopping: bool) {
        let ev = self.event(stopping);
        let record = Record {
            key: self.pipeline.identity().hostname.as_bytes().to_vec(),
            payload: ev.to_json_string().into_bytes(),
        };
        let sink = self.pipeline.router().sink();
        if sink
            .try_send(
                &record,
                Box::new(Token {
                    origin: Origin::Heartbeat,
                }),
            )
            .is_err()
        {
            tracing::debug!("heartbeat skipped: producer queue full");
        }
    }

    /// Sends a heartbeat now and every `every` until `cancel`.
    pub async fn run(self: Arc<Self>, every: Duration, cancel: CancellationToken) {
        loop {
            self.send(false);
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}
