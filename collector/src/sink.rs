//! The Kafka sink: a librdkafka producer with per-message delivery callbacks.
//!
//! An event counts as delivered only when the broker has confirmed it
//! (`acks=all`, idempotence on, zstd). Each message carries a [`Token`] that
//! says what to do on confirmation: mark a source's batch safe, let the disk
//! buffer free the record, or count a heartbeat. Failed deliveries are
//! retried after a back-off, never dropped; messages purged at shutdown are
//! handed back so the router can keep them on disk.
//!
//! The producer's own timeout is infinite (`message.timeout.ms=0`): while
//! the broker is down librdkafka keeps retrying in order, and the router
//! bounds memory with an in-flight window.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qalqan_core::kafka::KafkaSettings;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::ClientContext;
use tokio::sync::{mpsc, Notify};

use crate::ack::Ack;
use crate::config::SinkConfig;
use crate::metrics::Metrics;

/// One Kafka message: key (= `host.name`) and the event's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Record {
    /// The disk buffer's record form: `u32 LE key length, key, payload`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.key.len() + self.payload.len());
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.key.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.payload);
    }

    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            key: &self.key,
            payload: &self.payload,
        }
    }
}

/// A record borrowed from wherever it lies (a buffer read, a batch): the
/// producer copies what it sends, so the drain need not copy it first.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub key: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// Reads the disk buffer's record form in place.
    pub fn decode(bytes: &'a [u8]) -> Option<RecordRef<'a>> {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        Some(RecordRef {
            key: bytes.get(4..4usize.checked_add(len)?)?,
            payload: bytes.get(4 + len..)?,
        })
    }
}

/// What a message is, so its confirmation lands in the right place.
pub enum Origin {
    /// Sent straight from a source (buffer `overflow` or `off` modes).
    Direct(Option<Ack>),
    /// Read from the disk buffer under this record id.
    Buffered(u64),
    /// A heartbeat: not tracked, not retried, not counted as an event.
    Heartbeat,
}

/// The delivery opaque of every message.
pub struct Token {
    pub origin: Origin,
}

/// A message that failed (to be retried) or was purged (to be kept).
pub struct Returned {
    pub record: Record,
    pub token: Box<Token>,
}

/// State shared between the producer callbacks and the router.
pub struct SinkShared {
    metrics: Arc<Metrics>,
    epoch: Instant,
    in_flight: AtomicUsize,
    window: Notify,
    last_progress_ms: AtomicU64,
    retry_tx: mpsc::UnboundedSender<Returned>,
    purged: Mutex<Vec<Returned>>,
    purging: AtomicBool,
    /// Buffer record ids confirmed by Kafka go here (the router's tracker).
    buffered_done: Box<dyn Fn(u64) + Send + Sync>,
}

impl SinkShared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn finished(&self) {
        let before = self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.metrics.in_flight.set(before.saturating_sub(1) as i64);
        self.window.notify_waiters();
    }
}

/// librdkafka callbacks.
pub struct SinkContext {
    shared: Arc<SinkShared>,
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac} {msg}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac} {msg}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{fac} {msg}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac} {msg}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", "kafka client error: {error}: {reason}");
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = Box<Token>;

    fn delivery(&self, result: &DeliveryResult<'_>, token: Box<Token>) {
        let s = &self.shared;
        match result {
            Ok(_) => {
                match &token.origin {
                    Origin::Heartbeat => {
                        s.metrics.heartbeats_sent.inc();
                        return;
                    }
                    Origin::Direct(ack) => {
                        if let Some(ack) = ack {
                            ack.done(1);
                        }
                    }
                    Origin::Buffered(id) => (s.buffered_done)(*id),
                }
                s.metrics.events_sent.inc();
                s.last_progress_ms.store(s.now_ms(), Ordering::Relaxed);
                s.finished();
            }
            Err((err, msg)) => {
                if matches!(token.origin, Origin::Heartbeat) {
                    tracing::debug!("heartbeat not delivered: {err}");
                    return;
                }
                let record = Record {
                    key: msg.key().unwrap_or_default().to_vec(),
                    payload: msg.payload().unwrap_or_default().to_vec(),
                };
                let purged = matches!(
                    err,
                    KafkaError::MessageProduction(
                        RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight
                    )
                );
                if purged || s.purging.load(Ordering::Acquire) {
                    s.finished();
                    match s.purged.lock() {
                        Ok(mut p) => p.push(Returned { record, token }),
                        Err(p) => p.into_inner().push(Returned { record, token }),
                    }
                    return;
                }
                s.metrics.send_errors.inc();
                tracing::warn!(
                    "kafka delivery failed, will retry: {err} (topic {}, partition {})",
                    msg.topic(),
                    msg.partition()
                );
                if let Err(e) = s.retry_tx.send(Returned { record, token }) {
                    // The retry task is gone: we are shutting down; keep it for the purge list.
                    s.finished();
                    match s.purged.lock() {
                        Ok(mut p) => p.push(e.0),
                        Err(p) => p.into_inner().push(e.0),
                    }
                }
            }
        }
    }
}

/// The Kafka producer for one agency topic.
pub struct KafkaSink {
    producer: ThreadedProducer<SinkContext>,
    shared: Arc<SinkShared>,
    topic: String,
    max_in_flight: usize,
    retry_backoff: Duration,
}

/// librdkafka properties for the collector's producer.
pub fn producer_properties(
    kafka: &KafkaSettings,
    sink: &SinkConfig,
    client_id: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut props = vec![
        ("client.id".to_string(), client_id.to_string()),
        ("acks".into(), "all".into()),
        ("enable.idempotence".into(), "true".into()),
        ("compression.type".into(), "zstd".into()),
        (
            "compression.level".into(),
            sink.compression_level.to_string(),
        ),
        ("linger.ms".into(), sink.linger.as_millis().to_string()),
        ("batch.size".into(), sink.batch_bytes.to_string()),
        ("message.timeout.ms".into(), "0".into()),
        (
            "queue.buffering.max.messages".into(),
            (sink.max_in_flight_events + 10_000).to_string(),
        ),
        ("queue.buffering.max.kbytes".into(), (1 << 20).to_string()),
        ("max.in.flight.requests.per.connection".into(), "5".into()),
        ("retry.backoff.ms".into(), "100".into()),
        ("retry.backoff.max.ms".into(), "2000".into()),
        ("socket.keepalive.enable".into(), "true".into()),
        ("partitioner".into(), "murmur2_random".into()),
    ];
    // The operator's [kafka] table (security, extra) comes last and wins.
    props.extend(kafka.client_properties()?);
    Ok(props)
}

impl KafkaSink {
    /// Creates the producer. `buffered_done` receives the buffer record ids
    /// Kafka confirms. Returns the sink and the receiver of failed messages
    /// (drive it with [`KafkaSink::run_retries`]).
    pub fn new(
        kafka: &KafkaSettings,
        cfg: &SinkConfig,
        client_id: &str,
        topic: String,
        metrics: Arc<Metrics>,
        buffered_done: Box<dyn Fn(u64) + Send + Sync>,
    ) -> anyhow::Result<(Arc<KafkaSink>, mpsc::UnboundedReceiver<Returned>)> {
        let (retry_tx, retry_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(SinkShared {
            metrics,
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            window: Notify::new(),
            last_progress_ms: AtomicU64::new(0),
            retry_tx,
            purged: Mutex::new(Vec::new()),
            purging: AtomicBool::new(false),
            buffered_done,
        });
        let mut cc = ClientConfig::new();
        for (k, v) in producer_properties(kafka, cfg, client_id).map_err(|e| anyhow::anyhow!(e))? {
            cc.set(k, v);
        }
        let producer: ThreadedProducer<SinkContext> = cc
            .create_with_context(SinkContext {
                shared: shared.clone(),
            })
            .map_err(|e| anyhow::anyhow!("cannot create the Kafka producer: {e}"))?;
        Ok((
            Arc::new(KafkaSink {
                producer,
                shared,
                topic,
                max_in_flight: cfg.max_in_flight_events,
                retry_backoff: cfg.retry_backoff,
            }),
            retry_rx,
        ))
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Events handed to the producer and not yet confirmed (retries included).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    /// Whether `n` more events fit in the in-flight window now.
    pub fn has_room(&self, n: usize) -> bool {
        let cur = self.in_flight();
        cur == 0 || cur + n <= self.max_in_flight
    }

    /// Waits until `n` more events fit in the in-flight window.
    pub async fn wait_for_room(&self, n: usize) {
        loop {
            let notified = self.shared.window.notified();
            if self.has_room(n) {
                return;
            }
            // Notify may be missed between the check and the await under
            // heavy churn; the timeout bounds that to a millisecond.
            let _ = tokio::time::timeout(Duration::from_millis(5), notified).await;
        }
    }

    /// Kafka has had events in flight and confirmed none of them for `after`.
    pub fn stalled(&self, after: Duration) -> bool {
        self.in_flight() > 0 && self.unconfirmed_for() > after
    }

    /// How long the oldest in-flight event has waited, at least (0 when idle).
    pub fn unconfirmed_for(&self) -> Duration {
        if self.in_flight() == 0 {
            return Duration::ZERO;
        }
        let last = self.shared.last_progress_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.shared.now_ms().saturating_sub(last))
    }

    /// Hands one event to the producer (librdkafka copies it), or gives the
    /// token back when librdkafka's queue is full (the caller waits or spills).
    pub fn try_send(&self, record: &Record, token: Box<Token>) -> Result<(), Box<Token>> {
        let counted = !matches!(token.origin, Origin::Heartbeat);
        self.produce(record.as_ref(), token, counted)
            .map_err(|(t, _)| t)
    }

    /// `count`: add the event to the in-flight window (false for a retry,
    /// which is still counted from its first attempt). The error carries
    /// whether librdkafka's queue was full (else it is some other refusal).
    fn produce(
        &self,
        record: RecordRef<'_>,
        token: Box<Token>,
        count: bool,
    ) -> Result<(), (Box<Token>, bool)> {
        if count {
            let before = self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
            if before == 0 {
                self.shared
                    .last_progress_ms
                    .store(self.shared.now_ms(), Ordering::Relaxed);
            }
            self.shared.metrics.in_flight.set(before as i64 + 1);
        }
        let rec = BaseRecord::with_opaque_to(&self.topic, token)
            .key(record.key)
            .payload(record.payload);
        match self.producer.send(rec) {
            Ok(()) => Ok(()),
            Err((err, rec)) => {
                if count {
                    self.shared.finished();
                }
                let queue_full = matches!(
                    err,
                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
                );
                if !queue_full {
                    self.shared.metrics.send_errors.inc();
                    tracing::warn!("kafka produce refused, will retry: {err}");
                }
                Err((rec.delivery_opaque, queue_full))
            }
        }
    }

    /// Sends, waiting while librdkafka's queue is full.
    pub async fn send(&self, record: RecordRef<'_>, token: Box<Token>) {
        let count = !matches!(token.origin, Origin::Heartbeat);
        self.send_inner(record, token, count).await
    }

    async fn send_inner(&self, record: RecordRef<'_>, token: Box<Token>, count: bool) {
        let mut token = token;
        loop {
            match self.produce(record, token, count) {
                Ok(()) => return,
                Err((t, queue_full)) => {
                    token = t;
                    let wait = if queue_full {
                        Duration::from_millis(2)
                    } else {
                        self.retry_backoff
                    };
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Re-sends failed deliveries after the back-off until `cancel`; then
    /// moves what is left to the purge list (see [`KafkaSink::purge`]).
    pub async fn run_retries(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Returned>,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => break,
                r = rx.recv() => match r { Some(r) => r, None => break },
            };
            tokio::select! {
                _ = cancel.cancelled() => {
                    self.keep_for_purge(first);
                    break;
                }
                _ = tokio::time::sleep(self.retry_backoff) => {}
            }
            let mut batch = vec![first];
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            for r in batch {
                // Still counted in flight from its first attempt.
                self.send_inner(r.record.as_ref(), r.token, false).await;
            }
        }
        rx.close();
        while let Ok(r) = rx.try_recv() {
            self.keep_for_purge(r);
        }
    }

    fn keep_for_purge(&self, r: Returned) {
        self.shared.finished();
        match self.shared.purged.lock() {
            Ok(mut p) => p.push(r),
            Err(p) => p.into_inner().push(r),
        }
    }

    /// Waits (up to `timeout`) until Kafka confirmed everything in flight
    /// (heartbeats included).
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.in_flight() > 0 || self.producer.in_flight_count() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Takes back everything still queued or in flight. Returns those
    /// messages (the caller keeps them on disk where it can).
    pub fn purge(&self) -> Vec<Returned> {
        self.shared.purging.store(true, Ordering::Release);
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
        let _ = self.producer.flush(Duration::from_secs(2));
        match self.shared.purged.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        }
    }
}
