//! Stage 2 on Kafka: signals in, correlation alerts out, with each
//! partition's state living in the instance that owns it.
//!
//! Offsets are committed with the partition's settled horizons
//! ([`qalqan_correlation::Checkpoint`]) as commit metadata, after the alerts
//! that became final before them are confirmed. Whoever is assigned the
//! partition next (after a rebalance, a restart or a crash) reads that
//! metadata, seeks back by the engine's replay lookback with
//! `offsets_for_times` (signals carry their event time as Kafka timestamp)
//! and replays, withholding the alerts the previous owner already produced.
//! Alerts it cannot prove were produced are produced again with the same
//! id, which ClickHouse and consumers collapse.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use qalqan_correlation::{Checkpoint, RebuildPlan};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use crate::pipeline::Correlator;
use crate::service::bundle::signals_of;
use crate::service::kafka::{
    consumer_config, next_in_batch, ConfirmError, LagReporter, Outputs, Progress,
};
use crate::service::match_stage::send_alert;
use crate::service::Shared;

/// A partition assignment as the worker must apply it to its engine.
#[derive(Debug)]
enum Change {
    Assigned {
        partition: i32,
        plan: Option<RebuildPlan>,
    },
    Revoked(Vec<i32>),
}

/// Consumer context that places newly assigned partitions where their
/// rebuild must start, before any of their messages is fetched.
struct RebuildContext {
    lag: LagReporter,
    /// The engine's replay lookback, refreshed when rules change.
    lookback: Mutex<Duration>,
    changes: Mutex<Vec<Change>>,
    signals: String,
    /// Signals partitions whose last stable offset was behind their high
    /// watermark in the latest statistics: unread signals wait behind an
    /// open transaction (a stage 1 instance killed mid-batch leaves one
    /// until Kafka times it out).
    held: Mutex<BTreeMap<i32, Hold>>,
}

/// A partition held back by an open transaction, since when.
#[derive(Debug, Clone, Copy)]
struct Hold {
    since: Instant,
    logged: bool,
}

/// Longest a partition counts as held back: a little over Kafka's default
/// `transaction.timeout.ms` (60 s) and its abort check (every 10 s). Past
/// it, its windows close on the wall clock again, so statistics that never
/// clear cannot stall a partition's alerts for good.
const MAX_HOLD: Duration = Duration::from_secs(90);

/// How often stage 2's consumer reports statistics (which carry each
/// partition's last stable offset).
const STATS_INTERVAL_MS: &str = "1000";

impl ClientContext for RebuildContext {
    fn stats(&self, statistics: Statistics) {
        self.lag.report(&statistics);
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let previous = std::mem::take(&mut *held);
        let Some(topic) = statistics.topics.get(&self.signals) else {
            return;
        };
        for (&partition, p) in &topic.partitions {
            // -1001 is librdkafka's "not known yet".
            if partition < 0 || p.ls_offset < 0 || p.hi_offset <= p.ls_offset {
                continue;
            }
            let mut hold = previous.get(&partition).copied().unwrap_or(Hold {
                since: now,
                logged: false,
            });
            let waited = now.saturating_duration_since(hold.since);
            if !hold.logged && waited >= Duration::from_secs(10) {
                hold.logged = true;
                tracing::warn!(
                    partition,
                    held_back = p.hi_offset - p.ls_offset,
                    "stage 2: signals wait behind an open Kafka transaction (a stage 1 instance killed mid-batch?); this partition's windows wait for them, for at most {}s",
                    MAX_HOLD.as_secs()
                );
            }
            held.insert(partition, hold);
        }
    }
}

impl RebuildContext {
    /// Whether a partition's idle time must not close its windows now.
    fn holds_back(&self, partition: i32, now: Instant) -> bool {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(&partition)
            .is_some_and(|h| now.saturating_duration_since(h.since) < MAX_HOLD)
    }
}

impl ConsumerContext for RebuildContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let lookback = *self.lookback.lock().unwrap_or_else(|p| p.into_inner());
                let changes = place_for_rebuild(consumer, tpl, lookback);
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!("stage 2 assign failed: {e}");
                }
                self.changes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(changes);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(partitions = ?parts, "stage 2 partitions revoked");
                self.changes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Change::Revoked(parts));
                if let Err(e) = consumer.unassign() {
                    tracing::error!("stage 2 unassign failed: {e}");
                }
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                tracing::error!("stage 2 rebalance error: {code}");
                let _ = consumer.unassign();
            }
        }
    }
}

/// Sets each assigned partition's start offset: from its checkpoint minus
/// the lookback when it has one; from the lookback before now when only an
/// offset is committed (never later than that offset); from the start of
/// the partition for a new group, or when the lookups fail.
fn place_for_rebuild(
    consumer: &BaseConsumer<RebuildContext>,
    tpl: &mut TopicPartitionList,
    lookback: Duration,
) -> Vec<Change> {
    let timeout = Duration::from_secs(10);
    let committed = match consumer
        .committed_offsets(tpl.clone(), timeout)
        .or_else(|_| consumer.committed_offsets(tpl.clone(), timeout))
    {
        Ok(c) => c,
        Err(e) => {
            // Starting at the group's positions would correlate from empty
            // windows and miss alerts; the whole partition is replayed
            // instead, and alerts already sent go out again with their ids.
            tracing::error!("stage 2 cannot read committed offsets ({e}); replaying the assigned partitions from their beginning (alerts may repeat, with the same ids)");
            let mut changes = Vec::new();
            for el in tpl.clone().elements() {
                let _ = tpl.set_partition_offset(el.topic(), el.partition(), Offset::Beginning);
                changes.push(Change::Assigned {
                    partition: el.partition(),
                    plan: None,
                });
            }
            return changes;
        }
    };
    let mut changes = Vec::new();
    let mut seek_times = TopicPartitionList::new();
    for el in committed.elements() {
        let (topic, partition) = (el.topic().to_owned(), el.partition());
        let checkpoint = match el.metadata() {
            "" => None,
            md => match Checkpoint::from_metadata(md) {
                Ok(cp) => Some(cp),
                Err(e) => {
                    tracing::warn!(
                        partition,
                        "unreadable checkpoint in commit metadata ({e}); treated as none"
                    );
                    None
                }
            },
        };
        let plan = match (el.offset(), checkpoint.as_ref().and_then(|c| c.earliest())) {
            (Offset::Offset(_), Some(horizon)) => {
                let from = horizon - chrono::Duration::from_std(lookback).unwrap_or_default();
                let _ = seek_times.add_partition_offset(
                    &topic,
                    partition,
                    Offset::Offset(from.timestamp_millis().max(0)),
                );
                checkpoint.as_ref().map(RebuildPlan::from_checkpoint)
            }
            (Offset::Offset(o), None) if o > 0 => {
                // An offset without horizons (reset with Kafka's tools, or
                // stored by an older version): where the windows stood is
                // unknown. Replaying the last lookback of wall-clock time
                // rebuilds them; alerts in it may go out again, with the
                // same ids.
                tracing::warn!(
                    partition,
                    committed = o,
                    lookback_s = lookback.as_secs(),
                    "stage 2: committed offset without a checkpoint; replaying the lookback's signals to rebuild the windows (alerts in it may repeat, with the same ids)"
                );
                let from = Utc::now() - chrono::Duration::from_std(lookback).unwrap_or_default();
                let _ = seek_times.add_partition_offset(
                    &topic,
                    partition,
                    Offset::Offset(from.timestamp_millis().max(0)),
                );
                None
            }
            (offset, _) => {
                tracing::info!(
                    partition,
                    committed = ?offset,
                    "stage 2 takes the partition with nothing committed: it reads from the start"
                );
                None
            }
        };
        if let Offset::Offset(o) = el.offset() {
            let _ = tpl.set_partition_offset(&topic, partition, Offset::Offset(o));
        }
        changes.push(Change::Assigned { partition, plan });
    }
    if seek_times.count() > 0 {
        let found = consumer
            .offsets_for_times(seek_times.clone(), timeout)
            .or_else(|_| consumer.offsets_for_times(seek_times.clone(), timeout))
            .map_err(|e| tracing::error!("stage 2 offsets_for_times failed ({e}); the partitions to rebuild are replayed from their beginning"))
            .ok();
        for el in seek_times.elements() {
            let committed_at = committed
                .find_partition(el.topic(), el.partition())
                .map(|c| c.offset());
            let Some(Offset::Offset(c)) = committed_at else {
                continue;
            };
            let back = found
                .as_ref()
                .and_then(|f| f.find_partition(el.topic(), el.partition()))
                .filter(|f| f.error().is_ok())
                .map(|f| f.offset());
            // The replay starts at the earlier of the two; a time past the
            // end of the partition means "from the commit". A partition
            // whose lookup failed is replayed whole: starting at its commit
            // would correlate from empty windows.
            let start = match back {
                Some(Offset::Offset(back)) => Offset::Offset(back.min(c)),
                Some(Offset::End) => Offset::Offset(c),
                _ => Offset::Beginning,
            };
            let _ = tpl.set_partition_offset(el.topic(), el.partition(), start);
            tracing::info!(
                partition = el.partition(),
                committed = c,
                replay_from = ?start,
                "stage 2 rebuilding partition state"
            );
        }
    }
    changes
}

/// Runs stage 2 until `shared.stop` is set.
pub fn run(shared: Arc<Shared>) -> anyhow::Result<()> {
    let cfg = &shared.config;
    let metrics = &shared.metrics;
    let group = format!("{}.correlate", cfg.detector.group_prefix);
    let rules = shared.rules.current();
    let mut generation = shared.rules.generation();
    let mut correlator = Correlator::new(
        Arc::clone(&rules.correlations),
        cfg.correlation.clone(),
        Arc::clone(metrics),
    )?;
    let mut consumer_settings = consumer_config(
        &cfg.kafka,
        &group,
        &format!("{}-correlate", shared.instance),
    )?;
    if !cfg.kafka.extra.contains_key("statistics.interval.ms") {
        consumer_settings.set("statistics.interval.ms", STATS_INTERVAL_MS);
    }
    let consumer: BaseConsumer<RebuildContext> = consumer_settings
        .create_with_context(RebuildContext {
            lag: LagReporter {
                group: group.clone(),
                metrics: Arc::clone(metrics),
            },
            lookback: Mutex::new(correlator.engine().replay_lookback()),
            changes: Mutex::new(Vec::new()),
            signals: cfg.topics.signals.clone(),
            held: Mutex::new(BTreeMap::new()),
        })
        .map_err(|e| anyhow::anyhow!("cannot create the stage 2 consumer: {e}"))?;
    consumer
        .subscribe(&[cfg.topics.signals.as_str()])
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", cfg.topics.signals))?;
    let outputs = Outputs::new(&cfg.kafka, &format!("{}-correlate-out", shared.instance))?;
    let mut progress = Progress::default();
    let mut owned: BTreeSet<i32> = BTreeSet::new();
    let mut alerts = Vec::new();
    let mut last_tick = Instant::now();
    let mut last_commit = Instant::now();
    let mut unconfirmed = false;
    tracing::info!(%group, signals = %cfg.topics.signals, "stage 2 (correlate) started");

    while !shared.stop.load(Ordering::Acquire) {
        if shared.rules.generation() != generation {
            generation = shared.rules.generation();
            match correlator.replace_rules(Arc::clone(&shared.rules.current().correlations)) {
                Ok(()) => {
                    *consumer
                        .context()
                        .lookback
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = correlator.engine().replay_lookback();
                    tracing::info!("stage 2 switched to the reloaded rule set");
                }
                Err(e) => tracing::error!("stage 2 keeps its rule set: {e:#}"),
            }
        }
        let started = Instant::now();
        let mut handled = 0usize;
        let mut deadline: Option<Instant> = None;
        while handled < cfg.detector.batch_size {
            let next = next_in_batch(
                &consumer,
                &mut deadline,
                Duration::from_millis(100),
                cfg.detector.batch_wait,
                "stage 2",
            );
            // Assignments and revocations of that poll reach the engine
            // before any message of theirs.
            apply_changes(&consumer, &mut correlator, &mut owned, &mut progress);
            let Some(msg) = next else { break };
            let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
            let payload = msg.payload().unwrap_or_default();
            let mut bad: Vec<String> = Vec::new();
            for decoded in signals_of(payload) {
                match decoded {
                    Ok(signal) => correlator.process(partition, signal, &mut alerts),
                    Err(e) => bad.push(format!("not a correlation signal: {e}")),
                }
            }
            if payload.is_empty() {
                bad.push("empty message".to_owned());
            }
            if !bad.is_empty() {
                // The good signals of the bundle were used; the message goes
                // to the dead letters whole, with every reason.
                let reason = bad.join("; ");
                metrics
                    .deadletters
                    .with_label_values(&["undecodable_signal"])
                    .inc();
                tracing::warn!(%topic, partition, offset, %reason, "signal bundle sent to the dead-letter topic");
                outputs.dead_letter(
                    &cfg.topics.deadletter,
                    &reason,
                    "correlate",
                    topic,
                    partition,
                    offset,
                    msg.key(),
                    payload,
                );
                unconfirmed = true;
            }
            progress.handled(topic, partition, offset);
            handled += 1;
        }
        if last_tick.elapsed() >= Duration::from_millis(100) {
            last_tick = Instant::now();
            // A partition whose signals wait behind an open transaction is
            // not idle: its windows must not close on the wall clock.
            for &p in &owned {
                let held = consumer.context().holds_back(p, last_tick);
                correlator.engine().hold_back(p, held);
            }
            correlator.tick(&mut alerts);
        }
        for alert in alerts.drain(..) {
            send_alert(&outputs, &cfg.topics.alerts, &alert);
            unconfirmed = true;
        }
        // Commit what was read, and at least every second while windows
        // close on ticks, so the stored horizons follow the alerts produced.
        let due = handled > 0 || (unconfirmed && last_commit.elapsed() >= Duration::from_secs(1));
        if !due {
            outputs.poll();
            continue;
        }
        match outputs.confirm(&shared.stop) {
            Ok(()) => unconfirmed = false,
            Err(ConfirmError::Stopped) => break,
            Err(e) => anyhow::bail!("stage 2 outputs failed, offsets not committed: {e}"),
        }
        // Commit each owned partition at the consumer's position: past the
        // last signal handled and past the transaction markers stage 1's
        // transactions leave (which are never delivered as messages), and
        // also for partitions whose horizons only moved on ticks.
        for &p in &owned {
            if let Ok(Offset::Offset(pos)) = position_of(&consumer, &cfg.topics.signals, p) {
                progress.handled(&cfg.topics.signals, p, pos - 1);
            }
        }
        let engine = correlator.engine();
        let commits = committable(&mut progress, &owned, |p| engine.checkpoint(p));
        let committed = match commits.count() {
            0 => Ok(()),
            _ => consumer.commit(&commits, CommitMode::Sync),
        };
        if let Err(e) = committed {
            tracing::warn!("stage 2 offset commit failed (signals will be replayed): {e}");
        }
        last_commit = Instant::now();
        metrics
            .stage_latency
            .with_label_values(&["correlate"])
            .observe(started.elapsed().as_secs_f64());
    }
    tracing::info!("stage 2 (correlate) stopped");
    Ok(())
}

/// Forgets the offsets noted for partitions that changed hands: they were
/// read under the previous assignment.
fn forget_changed(progress: &mut Progress, changes: &[Change]) {
    for change in changes {
        let touched: &[i32] = match change {
            Change::Assigned { partition, .. } => std::slice::from_ref(partition),
            Change::Revoked(parts) => parts,
        };
        progress.retain(|_, p| !touched.contains(&p));
    }
}

/// What a batch may commit: the noted offsets of the partitions owned now
/// whose settled horizons the engine holds, each with its checkpoint as
/// metadata; `progress` is emptied.
///
/// An offset stored without horizons would make the next owner start
/// there with empty windows (no rebuild), losing every signal before it.
/// So a partition revoked since its offsets were noted is left to its new
/// owner (a commit made while the group prepares its next generation is
/// still accepted), and one just (re)assigned keeps its last commit until
/// its first signal is replayed.
fn committable(
    progress: &mut Progress,
    owned: &BTreeSet<i32>,
    checkpoint: impl Fn(i32) -> Checkpoint,
) -> TopicPartitionList {
    let checkpoints: BTreeMap<i32, String> = owned
        .iter()
        .map(|&p| (p, checkpoint(p)))
        .filter(|(_, cp)| !cp.horizons.is_empty())
        .map(|(p, cp)| (p, cp.to_metadata()))
        .collect();
    progress.retain(|_, p| checkpoints.contains_key(&p));
    let list = progress.to_list(|_, p| checkpoints.get(&p).cloned());
    progress.clear();
    list
}

fn position_of(
    consumer: &BaseConsumer<RebuildContext>,
    topic: &str,
    partition: i32,
) -> Result<Offset, rdkafka::error::KafkaError> {
    let pos = consumer.position()?;
    Ok(pos
        .find_partition(topic, partition)
        .map(|e| e.offset())
        .unwrap_or(Offset::Invalid))
}

/// Applies assignments and revocations noted by the rebalance callback,
/// and forgets the offsets the batch noted for those partitions
/// ([`forget_changed`]).
fn apply_changes(
    consumer: &BaseConsumer<RebuildContext>,
    correlator: &mut Correlator,
    owned: &mut BTreeSet<i32>,
    progress: &mut Progress,
) {
    let changes: Vec<Change> = std::mem::take(
        &mut *consumer
            .context()
            .changes
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    forget_changed(progress, &changes);
    for change in changes {
        match change {
            Change::Assigned { partition, plan } => {
                correlator.engine().drop_partition(partition);
                if let Some(plan) = plan {
                    correlator.engine().begin_rebuild(partition, plan);
                }
                owned.insert(partition);
            }
            Change::Revoked(parts) => {
                for p in parts {
                    correlator.engine().drop_partition(p);
                    owned.remove(&p);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "qalqan.signals";

    fn checkpoint_at(us: i64) -> Checkpoint {
        Checkpoint {
            horizons: [("mof".to_owned(), us)].into_iter().collect(),
        }
    }

    fn listed(tpl: &TopicPartitionList) -> Vec<(i32, Offset, String)> {
        tpl.elements()
            .iter()
            .map(|e| (e.partition(), e.offset(), e.metadata().to_owned()))
            .collect()
    }

    #[test]
    fn a_revoked_partition_is_never_committed_without_its_horizons() {
        // Partition 1 was read in this batch, then revoked: its offset must
        // not be stored (the old code stored it with empty metadata, and
        // the next owner then started there with empty windows).
        let mut progress = Progress::default();
        progress.handled(TOPIC, 0, 41);
        progress.handled(TOPIC, 1, 99);
        forget_changed(&mut progress, &[Change::Revoked(vec![1])]);
        let owned: BTreeSet<i32> = [0].into_iter().collect();
        let list = committable(&mut progress, &owned, |_| checkpoint_at(7));
        assert_eq!(
            listed(&list),
            vec![(0, Offset::Offset(42), checkpoint_at(7).to_metadata())]
        );
        assert!(progress.is_empty());
    }

    #[test]
    fn a_partition_without_horizons_keeps_its_last_commit() {
        // Partition 2 was revoked and assigned back in one batch: its engine
        // state is being rebuilt and holds no horizons yet.
        let mut progress = Progress::default();
        progress.handled(TOPIC, 2, 500);
        progress.handled(TOPIC, 3, 10);
        forget_changed(
            &mut progress,
            &[
                Change::Revoked(vec![2, 3]),
                Change::Assigned {
                    partition: 2,
                    plan: None,
                },
            ],
        );
        // The replay of partition 2 is under way at offset 0.
        progress.handled(TOPIC, 2, 0);
        let owned: BTreeSet<i32> = [2].into_iter().collect();
        assert_eq!(
            listed(&committable(
                &mut progress,
                &owned,
                |_| Checkpoint::default()
            )),
            vec![]
        );
        progress.handled(TOPIC, 2, 0);
        assert_eq!(
            listed(&committable(&mut progress, &owned, |_| checkpoint_at(5))),
            vec![(2, Offset::Offset(1), checkpoint_at(5).to_metadata())]
        );
    }
}
