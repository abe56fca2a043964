//! Kafka plumbing shared by the roles: client settings, the confirming
//! output producer, offset bookkeeping and the consumer-lag metric.
//!
//! Every role follows one rhythm: poll a batch, hand its outputs to the
//! producer (or ClickHouse), wait until every output is confirmed, and only
//! then commit the batch's offsets. A crash anywhere in between means the
//! batch is read again, never lost; deterministic alert and event ids make
//! the repetition collapse downstream.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qalqan_core::kafka::KafkaSettings;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::metrics::Metrics;

/// librdkafka properties common to every client of the detector. The
/// settings' `extra` table comes last in `client_properties`, so it wins;
/// the role defaults set later never override a key it names.
fn base_config(kafka: &KafkaSettings, client_id: &str) -> anyhow::Result<ClientConfig> {
    let mut cc = ClientConfig::new();
    cc.set("client.id", client_id);
    cc.set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in kafka.client_properties().map_err(|e| anyhow::anyhow!(e))? {
        cc.set(k, v);
    }
    Ok(cc)
}

/// A consumer in `group` that never commits on its own: offsets are
/// committed by the role once its outputs are confirmed.
pub fn consumer_config(
    kafka: &KafkaSettings,
    group: &str,
    client_id: &str,
) -> anyhow::Result<ClientConfig> {
    let mut cc = base_config(kafka, client_id)?;
    let defaults = [
        ("group.id", group),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        // A new group reads everything that is still retained: nothing
        // that reached Kafka before the first detector started is skipped.
        ("auto.offset.reset", "earliest"),
        ("enable.partition.eof", "false"),
        // New agency topics are picked up by the regex subscription this soon.
        ("topic.metadata.refresh.interval.ms", "10000"),
        // A killed instance's partitions move to the others this soon.
        ("session.timeout.ms", "10000"),
        ("heartbeat.interval.ms", "2000"),
        ("statistics.interval.ms", "5000"),
        ("fetch.wait.max.ms", "50"),
        // Once its local queue is over librdkafka's thresholds (100,000
        // messages a partition, 64 MB), a partition's next fetch waits this
        // long; librdkafka's 1 s left stage 1 with nothing to read for
        // 200-300 ms of every second of a backlog (a third of its time).
        ("fetch.queue.backoff.ms", "20"),
    ];
    for (k, v) in defaults {
        if !kafka.extra.contains_key(k) {
            cc.set(k, v);
        }
    }
    Ok(cc)
}

/// The next message of the batch being collected, or `None` when the batch
/// ends: nothing arrived within `idle` (an empty batch), or `wait` has
/// passed since the batch's first message. Consumer errors are logged and
/// skipped. Every role collects its batches this way.
pub fn next_in_batch<'c, C: ConsumerContext>(
    consumer: &'c BaseConsumer<C>,
    deadline: &mut Option<Instant>,
    idle: Duration,
    wait: Duration,
    role: &str,
) -> Option<BorrowedMessage<'c>> {
    loop {
        let timeout = match *deadline {
            None => idle,
            // A backlog would otherwise keep a batch open until it is full:
            // its alerts would wait for the whole batch to commit.
            Some(d) => d.checked_duration_since(Instant::now())?,
        };
        match consumer.poll(timeout)? {
            Ok(msg) => {
                deadline.get_or_insert_with(|| Instant::now() + wait);
                return Some(msg);
            }
            Err(e) => tracing::warn!("{role} consumer: {e}"),
        }
    }
}

/// The high watermark librdkafka last saw for a partition in a fetch
/// response: no network call, so cheap enough to ask often. `None` when
/// it has not fetched the partition yet.
pub fn cached_high_watermark<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid for the consumer's lifetime; the
    // topic is a NUL-terminated string that outlives the call; librdkafka
    // only writes the two offsets.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// Pauses (or resumes) fetching one partition. A paused partition resumes
/// after the last message the application polled from it.
pub fn set_paused<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    paused: bool,
) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let r = if paused {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    };
    if let Err(e) = r {
        // Not assigned here any more: its next owner starts it afresh.
        tracing::debug!(%topic, partition, paused, "pause/resume: {e}");
    }
}

/// Counts consumer lag per partition from librdkafka's statistics.
pub struct LagReporter {
    pub group: String,
    pub metrics: Arc<Metrics>,
}

impl LagReporter {
    pub fn report(&self, stats: &Statistics) {
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                // -1 is librdkafka's "unknown" (e.g. not assigned here).
                if p.partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                self.metrics
                    .consumer_lag
                    .with_label_values(&[
                        self.group.as_str(),
                        topic.as_str(),
                        &partition.to_string(),
                    ])
                    .set(p.consumer_lag);
            }
        }
    }
}

/// Consumer context of the roles without custom rebalancing; counts
/// rebalances, so a transactional batch spanning one is aborted.
pub struct PlainContext {
    pub lag: LagReporter,
    /// Rebalances so far: a role that keeps polled messages across
    /// batches drops them when this moves (eager rebalancing restarts
    /// every partition from its committed offset).
    pub rebalances: AtomicU64,
}

impl PlainContext {
    pub fn new(lag: LagReporter) -> PlainContext {
        PlainContext {
            lag,
            rebalances: AtomicU64::new(0),
        }
    }
}

impl ClientContext for PlainContext {
    fn stats(&self, statistics: Statistics) {
        self.lag.report(&statistics);
    }
}

impl ConsumerContext for PlainContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        tracing::info!("rebalance: {rebalance:?}");
        self.rebalances.fetch_add(1, Ordering::AcqRel);
    }
}

/// Delivery outcomes of one producer.
#[derive(Default)]
pub struct DeliveryState {
    failed: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

/// Producer context: records failed deliveries so the batch that produced
/// them is not committed.
pub struct OutputContext {
    state: Arc<DeliveryState>,
}

impl ClientContext for OutputContext {}

impl ProducerContext for OutputContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.state.failed.fetch_add(1, Ordering::AcqRel);
            let mut last = self
                .state
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *last = Some(e.to_string());
        }
    }
}

/// Why a batch's outputs could not be confirmed.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error("{count} outputs were not delivered (last error: {last})")]
    Failed { count: u64, last: String },
    #[error("stopped before the outputs were confirmed")]
    Stopped,
}

/// The producer of alerts, signals and dead letters: idempotent, `acks=all`,
/// retrying without a deadline (a broker outage stalls the detector, which
/// then does not commit, instead of dropping alerts).
pub struct Outputs {
    producer: BaseProducer<OutputContext>,
    state: Arc<DeliveryState>,
    transactional: bool,
}

/// How long a transaction call may take before the batch is given up.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an abort first serves delivery reports (milliseconds while the
/// brokers are well; longer only when they are not).
const ABORT_DRAIN: Duration = Duration::from_secs(5);

impl Outputs {
    pub fn new(kafka: &KafkaSettings, client_id: &str) -> anyhow::Result<Outputs> {
        Self::build(kafka, client_id, None)
    }

    /// A transactional producer: a batch's outputs and its input offsets
    /// are committed together ([`Outputs::commit_transaction`]), so a crash
    /// or rebalance never lets a consumer of the outputs (stage 2 reads
    /// `read_committed`) see a signal twice. `transactional_id` must be
    /// unique per running instance.
    pub fn transactional(
        kafka: &KafkaSettings,
        client_id: &str,
        transactional_id: &str,
    ) -> anyhow::Result<Outputs> {
        let out = Self::build(kafka, client_id, Some(transactional_id))?;
        out.producer
            .init_transactions(TXN_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("cannot initialise Kafka transactions: {e}"))?;
        Ok(out)
    }

    fn build(
        kafka: &KafkaSettings,
        client_id: &str,
        transactional_id: Option<&str>,
    ) -> anyhow::Result<Outputs> {
        let mut cc = base_config(kafka, client_id)?;
        if let Some(id) = transactional_id {
            cc.set("transactional.id", id);
            cc.set("transaction.timeout.ms", "60000");
            // The first send of a transaction races the broker's completion
            // of the previous commit (CONCURRENT_TRANSACTIONS) and is
            // retried after this backoff; librdkafka's 100 ms default put
            // that much latency on every batch.
            if !kafka.extra.contains_key("retry.backoff.ms") {
                cc.set("retry.backoff.ms", "5");
            }
        }
        let defaults = [
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("compression.type", "lz4"),
            ("linger.ms", "5"),
            ("message.timeout.ms", "0"),
            ("queue.buffering.max.messages", "1000000"),
        ];
        for (k, v) in defaults {
            if !kafka.extra.contains_key(k) {
                cc.set(k, v);
            }
        }
        let state = Arc::new(DeliveryState::default());
        let producer = cc
            .create_with_context(OutputContext {
                state: Arc::clone(&state),
            })
            .map_err(|e| anyhow::anyhow!("cannot create the Kafka producer: {e}"))?;
        Ok(Outputs {
            producer,
            state,
            transactional: transactional_id.is_some(),
        })
    }

    pub fn begin_transaction(&self) -> Result<(), KafkaError> {
        self.producer.begin_transaction()
    }

    /// Commits the open transaction with the consumer's `offsets`.
    pub fn commit_transaction<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        offsets: &TopicPartitionList,
    ) -> anyhow::Result<()> {
        // Delivered first: librdkafka's own wait inside the commit only
        // ends once the application has served the delivery reports.
        self.wait_delivered(TXN_TIMEOUT)?;
        if offsets.count() > 0 {
            let cgm = consumer
                .group_metadata()
                .ok_or_else(|| anyhow::anyhow!("the consumer has no group metadata"))?;
            self.producer
                .send_offsets_to_transaction(offsets, &cgm, TXN_TIMEOUT)?;
        }
        self.producer.commit_transaction(TXN_TIMEOUT)?;
        let failed = self.state.failed.swap(0, Ordering::AcqRel);
        if failed > 0 {
            tracing::warn!("{failed} outputs of a committed transaction reported failure");
        }
        Ok(())
    }

    /// Aborts the open transaction: none of its outputs become visible.
    /// False when the producer cannot go on (make a new one).
    pub fn abort_transaction(&self) -> bool {
        // librdkafka's abort waits until every message of the transaction
        // has had its delivery report served, and this producer's reports
        // are served only by polling it, which nothing does while the abort
        // blocks. A rebalance in the middle of a batch then held the stage
        // for the whole TXN_TIMEOUT (30 s), and with it the consumer's new
        // partitions: stage 2 counted their signals late. Served here
        // first, the messages are delivered (into the aborted transaction,
        // invisible to read_committed consumers) and the abort finds
        // nothing outstanding.
        if self.wait_delivered(ABORT_DRAIN).is_err() {
            tracing::warn!("outputs still unconfirmed before an abort; the abort waits for them");
        }
        self.state.failed.store(0, Ordering::Release);
        match self.producer.abort_transaction(TXN_TIMEOUT) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("aborting the Kafka transaction failed: {e}");
                false
            }
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.transactional
    }

    /// Queues one message; waits while librdkafka's queue is full.
    pub fn send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        timestamp_ms: Option<i64>,
        headers: Option<OwnedHeaders>,
    ) {
        self.send_to(topic, None, key, payload, timestamp_ms, headers)
    }

    /// [`Outputs::send`] to an explicit partition (`None`: by key).
    pub fn send_to(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &[u8],
        payload: &[u8],
        timestamp_ms: Option<i64>,
        headers: Option<OwnedHeaders>,
    ) {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(ts) = timestamp_ms {
            record = record.timestamp(ts);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::ZERO);
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    // Not retriable at all (e.g. larger than message.max.bytes):
                    // counted as failed so the batch is not committed.
                    self.state.failed.fetch_add(1, Ordering::AcqRel);
                    let mut last = self
                        .state
                        .last_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    *last = Some(e.to_string());
                    return;
                }
            }
        }
    }

    /// Sends `payload` to the dead-letter topic with the reason and where it
    /// came from in headers.
    #[allow(clippy::too_many_arguments)]
    pub fn dead_letter(
        &self,
        topic: &str,
        reason: &str,
        stage: &str,
        source_topic: &str,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        payload: &[u8],
    ) {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "qalqan.reason",
                value: Some(reason),
            })
            .insert(Header {
                key: "qalqan.stage",
                value: Some(stage),
            })
            .insert(Header {
                key: "qalqan.source.topic",
                value: Some(source_topic),
            })
            .insert(Header {
                key: "qalqan.source.partition",
                value: Some(&partition.to_string()),
            })
            .insert(Header {
                key: "qalqan.source.offset",
                value: Some(&offset.to_string()),
            });
        self.send(topic, key.unwrap_or_default(), payload, None, Some(headers));
    }

    /// Partitions of `topic`, from the brokers' metadata.
    pub fn partition_count(&self, topic: &str) -> anyhow::Result<i32> {
        let md = self
            .producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(15))
            .map_err(|e| anyhow::anyhow!("metadata of {topic}: {e}"))?;
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        if n == 0 {
            anyhow::bail!(
                "topic {topic} has no partitions (create it: deploy/kafka/qalqan-kafka topics)"
            );
        }
        Ok(n as i32)
    }

    /// Serves delivery reports without waiting.
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Serves delivery reports until every message sent so far has one.
    ///
    /// Not `Producer::flush`: rdkafka's `BaseProducer::poll(t)` keeps
    /// polling (busily) until `t` has passed even once the queue is empty,
    /// and its flush polls in 100 ms steps, which put 100 ms on every batch.
    fn wait_delivered(&self, timeout: Duration) -> Result<(), KafkaError> {
        let deadline = Instant::now() + timeout;
        while self.producer.in_flight_count() > 0 {
            if Instant::now() >= deadline {
                return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
            }
            // Serve what is there, then sleep: `poll` with a timeout spins.
            self.producer.poll(Duration::ZERO);
            if self.producer.in_flight_count() > 0 {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        Ok(())
    }

    /// Waits until everything sent so far is confirmed by the brokers.
    pub fn confirm(&self, stop: &AtomicBool) -> Result<(), ConfirmError> {
        loop {
            match self.wait_delivered(Duration::from_millis(500)) {
                Ok(()) => break,
                Err(_) if stop.load(Ordering::Acquire) => return Err(ConfirmError::Stopped),
                Err(_) => continue,
            }
        }
        let failed = self.state.failed.swap(0, Ordering::AcqRel);
        if failed > 0 {
            let last = self
                .state
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or_default();
            return Err(ConfirmError::Failed {
                count: failed,
                last,
            });
        }
        Ok(())
    }
}

/// The next offset to commit per (topic, partition) of the current batch.
#[derive(Debug, Default)]
pub struct Progress {
    /// One entry per partition seen in the batch: a handful, so a scan
    /// (starting at the partition of the previous message) beats a map
    /// whose key would be allocated for every message.
    parts: Vec<PartitionProgress>,
    last: usize,
}

#[derive(Debug)]
struct PartitionProgress {
    topic: String,
    partition: i32,
    /// Offset of the batch's first message here: where to rewind to.
    first: i64,
    /// Offset after the last handled message: what to commit.
    next: i64,
}

impl Progress {
    /// Notes that the message at `offset` is handled.
    pub fn handled(&mut self, topic: &str, partition: i32, offset: i64) {
        let same = |p: &PartitionProgress| p.partition == partition && p.topic == topic;
        let at = match self.parts.get(self.last) {
            Some(p) if same(p) => Some(self.last),
            _ => self.parts.iter().position(same),
        };
        match at {
            Some(i) => {
                let p = &mut self.parts[i];
                p.first = p.first.min(offset);
                p.next = p.next.max(offset + 1);
                self.last = i;
            }
            None => {
                self.parts.push(PartitionProgress {
                    topic: topic.to_owned(),
                    partition,
                    first: offset,
                    next: offset + 1,
                });
                self.last = self.parts.len() - 1;
            }
        }
    }

    /// Where the batch began in each partition, to rewind an aborted batch.
    pub fn first_offsets(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.parts
            .iter()
            .map(|p| (p.topic.as_str(), p.partition, p.first))
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The next offset to commit per partition, in (topic, partition) order.
    pub fn partitions(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        let mut list: Vec<(&str, i32, i64)> = self
            .parts
            .iter()
            .map(|p| (p.topic.as_str(), p.partition, p.next))
            .collect();
        list.sort_unstable();
        list.into_iter()
    }

    /// Keeps only the partitions `keep` says yes to (e.g. forgets one that
    /// was revoked, whose offsets belong to its new owner now).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, i32) -> bool) {
        self.parts.retain(|p| keep(&p.topic, p.partition));
        self.last = 0;
    }

    /// Forgets the noted offsets (after an aborted batch).
    pub fn clear(&mut self) {
        self.parts.clear();
        self.last = 0;
    }

    /// Commits the noted offsets (synchronously), with optional commit
    /// metadata per partition, and forgets them. Partitions revoked in the
    /// meantime fail to commit; their new owner reads them again.
    pub fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        metadata: impl Fn(&str, i32) -> Option<String>,
    ) -> Result<(), KafkaError> {
        if self.parts.is_empty() {
            return Ok(());
        }
        let tpl = self.to_list(metadata);
        self.clear();
        consumer.commit(&tpl, CommitMode::Sync)
    }

    /// The noted offsets as a partition list.
    pub fn to_list(&self, metadata: impl Fn(&str, i32) -> Option<String>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, offset) in self.partitions() {
            let elem = tpl.add_partition_offset(topic, partition, Offset::Offset(offset));
            if let Err(e) = elem {
                tracing::warn!("offset {offset} of {topic}/{partition} not committable: {e}");
                continue;
            }
            if let Some(md) = metadata(topic, partition) {
                if let Some(mut el) = tpl.find_partition(topic, partition) {
                    el.set_metadata(md);
                }
            }
        }
        tpl
    }
}

/// The agency of a topic: its last dot-separated part, when that is a valid
/// agency name. Taken from the topic, never from the body (DESIGN.md).
pub fn agency_of_topic(topic: &str) -> Option<&str> {
    let agency = topic.rsplit('.').next()?;
    (agency != topic && qalqan_core::topics::valid_agency(agency)).then_some(agency)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agency_is_the_topic_suffix() {
        assert_eq!(agency_of_topic("qalqan.events.mof"), Some("mof"));
        assert_eq!(
            agency_of_topic("qalqan.raw.egov-portal"),
            Some("egov-portal")
        );
        assert_eq!(agency_of_topic("t1.events.a_b"), Some("a_b"));
        assert_eq!(agency_of_topic("events"), None);
        assert_eq!(agency_of_topic("qalqan.events."), None);
        assert_eq!(agency_of_topic("qalqan.events.a b"), None);
    }

    #[test]
    fn progress_keeps_the_next_offset_per_partition() {
        let mut p = Progress::default();
        p.handled("a", 0, 5);
        p.handled("a", 0, 3);
        p.handled("a", 1, 7);
        let got: Vec<_> = p
            .partitions()
            .map(|(t, p, o)| (t.to_owned(), p, o))
            .collect();
        assert_eq!(got, vec![("a".into(), 0, 6), ("a".into(), 1, 8)]);
        let first: Vec<_> = p.first_offsets().map(|(_, p, o)| (p, o)).collect();
        assert_eq!(first, vec![(0, 3), (1, 7)]);
        p.retain(|_, partition| partition != 0);
        let left: Vec<_> = p.partitions().map(|(_, p, o)| (p, o)).collect();
        assert_eq!(left, vec![(1, 8)]);
        p.handled("a", 1, 9);
        assert_eq!(
            p.partitions().map(|(_, _, o)| o).collect::<Vec<_>>(),
            vec![10]
        );
        p.clear();
        assert!(p.is_empty());
    }
}
