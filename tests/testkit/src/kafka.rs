//! Kafka chores for tests: create a topic, produce records with broker
//! confirmation, read a whole topic back.

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use futures_executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::paths::unique;
use crate::stack::kafka_brokers;

/// How long topic creation may take before the test fails.
const TOPIC_TIMEOUT: Duration = Duration::from_secs(30);

/// One record read back from Kafka, owned, with everything a test may check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The record key, if any.
    pub key: Option<Vec<u8>>,
    /// The record value, if any (`None` for a tombstone).
    pub payload: Option<Vec<u8>>,
    /// Headers in the order the producer set them; a null value is `None`.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The partition the record was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// The record timestamp in milliseconds since the epoch, if set.
    pub timestamp_ms: Option<i64>,
}

impl Message {
    /// The payload as UTF-8 text (lossy; empty when there is none).
    pub fn payload_str(&self) -> String {
        String::from_utf8_lossy(self.payload.as_deref().unwrap_or_default()).into_owned()
    }

    /// The key as UTF-8 text (lossy), if there is one.
    pub fn key_str(&self) -> Option<String> {
        self.key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
    }

    /// The payload parsed as JSON; panics with the payload when it is not.
    pub fn payload_json(&self) -> serde_json::Value {
        let bytes = self.payload.as_deref().unwrap_or_default();
        serde_json::from_slice(bytes).unwrap_or_else(|e| {
            panic!(
                "message at partition {} offset {} is not JSON ({e}): {}",
                self.partition,
                self.offset,
                self.payload_str()
            )
        })
    }

    /// The value of the first header named `name`, if present and not null.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Create `name` with `partitions` partitions (replication 1) on the local
/// broker and wait until every partition has a leader, so producers and
/// consumers can use it at once. An existing topic is accepted as it is.
pub fn create_topic(name: &str, partitions: i32) {
    let brokers = kafka_brokers();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap_or_else(|e| panic!("cannot create a Kafka admin client for {brokers}: {e}"));
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new()
        .operation_timeout(Some(TOPIC_TIMEOUT))
        .request_timeout(Some(TOPIC_TIMEOUT));
    let results = block_on(admin.create_topics([&topic], &options))
        .unwrap_or_else(|e| panic!("creating topic {name} on {brokers} failed: {e}"));
    let mut existed = false;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => existed = true,
            Err((topic, code)) => panic!("creating topic {topic} on {brokers} failed: {code}"),
        }
    }
    // An existing topic keeps its own partition count; wait for any leader.
    let wanted = if existed {
        1
    } else {
        partitions.max(1) as usize
    };
    wait_for_leaders(&brokers, name, wanted);
}

fn wait_for_leaders(brokers: &str, name: &str, partitions: usize) {
    let consumer = metadata_client(brokers);
    let deadline = Instant::now() + TOPIC_TIMEOUT;
    loop {
        if let Ok(ids) = partition_ids(&consumer, name, true) {
            if ids.len() >= partitions {
                return;
            }
        }
        if Instant::now() >= deadline {
            panic!(
                "topic {name} was created but has no leader for all {partitions} partitions \
                 after {}s; see `deploy/local/stack logs kafka`",
                TOPIC_TIMEOUT.as_secs()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Produce `records` (key, value) to `topic` with `acks=all` and wait until
/// the broker has confirmed every one; panics on the first failure.
pub fn produce<K, V>(brokers: &str, topic: &str, records: &[(Option<K>, V)])
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap_or_else(|e| panic!("cannot create a Kafka producer for {brokers}: {e}"));
    let mut pending = Vec::with_capacity(records.len());
    for (index, (key, value)) in records.iter().enumerate() {
        let mut record = FutureRecord::to(topic).payload(value.as_ref());
        if let Some(key) = key {
            record = record.key(key.as_ref());
        }
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push((index, delivery));
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => panic!("producing record {index} to {topic} failed: {e}"),
            }
        }
    }
    for (index, delivery) in pending {
        match block_on(delivery) {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => panic!("record {index} to {topic} was not delivered: {e}"),
            Err(_) => panic!("record {index} to {topic}: the producer went away before confirming"),
        }
    }
}

/// Read `topic` from the beginning of every partition until at least
/// `expected` messages have arrived *and* every partition has been read to
/// its end, or until `timeout`.
///
/// Returns everything read, in arrival order (ordered within a partition),
/// so duplicates beyond `expected` are returned too. On timeout it returns
/// what it has, after a note on stderr; callers assert the count. It reads
/// without a consumer group (manual assignment), so it commits nothing and
/// sees no rebalance delay. Only committed transactional records are read.
pub fn consume_all(brokers: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<Message> {
    let started = Instant::now();
    let deadline = started + timeout;
    let consumer = metadata_client(brokers);

    // The topic may not exist yet when the producer under test creates it.
    let partitions = loop {
        match partition_ids(&consumer, topic, false) {
            Ok(ids) if !ids.is_empty() => break ids,
            _ if Instant::now() >= deadline => {
                eprintln!(
                    "consume_all: topic {topic} did not appear on {brokers} within {:?}",
                    timeout
                );
                return Vec::new();
            }
            _ => thread::sleep(Duration::from_millis(200)),
        }
    };
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap_or_else(|e| panic!("cannot assign {topic}/{partition}: {e}"));
    }
    consumer
        .assign(&assignment)
        .unwrap_or_else(|e| panic!("cannot assign the partitions of {topic}: {e}"));

    let mut messages = Vec::with_capacity(expected);
    let mut at_end: HashSet<i32> = HashSet::new();
    loop {
        if messages.len() >= expected && at_end.len() == partitions.len() {
            return messages;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "consume_all: read {} of {expected} expected messages from {topic} in {:?}",
                messages.len(),
                timeout
            );
            return messages;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                at_end.remove(&message.partition());
                messages.push(Message {
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec),
                    headers: message
                        .headers()
                        .map(|headers| {
                            headers
                                .iter()
                                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                                .collect()
                        })
                        .unwrap_or_default(),
                    partition: message.partition(),
                    offset: message.offset(),
                    timestamp_ms: message.timestamp().to_millis(),
                });
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(e)) => eprintln!("consume_all: {topic}: {e} (retrying)"),
        }
    }
}

/// A group-less consumer: used for metadata and manual-assignment reads.
fn metadata_client(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("qalqan-testkit"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap_or_else(|e| panic!("cannot create a Kafka consumer for {brokers}: {e}"))
}

/// Partition ids of `topic` (only those with a leader when `with_leader`), or
/// an error when the topic is unknown (yet).
fn partition_ids(
    consumer: &BaseConsumer,
    topic: &str,
    with_leader: bool,
) -> Result<Vec<i32>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let entry = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| format!("no metadata for {topic}"))?;
    if let Some(error) = entry.error() {
        return Err(format!("{topic}: {error:?}"));
    }
    let mut ids: Vec<i32> = entry
        .partitions()
        .iter()
        .filter(|p| !with_leader || (p.leader() >= 0 && p.error().is_none()))
        .map(|p| p.id())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}
