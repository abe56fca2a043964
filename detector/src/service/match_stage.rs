//! Stage 1 on Kafka: events (and third-party raw lines) in; single-event
//! alerts, correlation signals and dead letters out.
//!
//! Stateless but for suppression and collector health, so any number of
//! instances share the work through the `<prefix>.match` consumer group.
//! Signals are bundled per partition of the signals topic, chosen by a
//! stable hash of [`qalqan_correlation::Signal::signal_key`] and stamped
//! with event time (see [`crate::service::bundle`]), so stage 2 finds every
//! signal of one group key in one partition and can seek back by time.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use qalqan_core::Alert;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset};

use crate::config::DetectorConfig;
use crate::metrics::Metrics;
use crate::pipeline::matcher::MatcherSettings;
use crate::pipeline::{MatchOutput, Matcher};
use crate::service::align::Aligner;
use crate::service::bundle::{Bundle, Bundler};
use crate::service::decode::Decoder;
use crate::service::kafka::{
    cached_high_watermark, consumer_config, next_in_batch, set_paused, LagReporter, Outputs,
    PlainContext, Progress,
};
use crate::service::match_workers::{
    MatchWorkers, MessageView, Outcome, OwnedMessage, Spent, CHUNK,
};
use crate::service::Shared;

/// Sends a bundle of signals to its partition of the signals topic; its
/// buffer goes back to the bundler.
fn send_bundle(outputs: &Outputs, topic: &str, bundle: Bundle, bundler: &mut Bundler) {
    outputs.send_to(
        topic,
        Some(bundle.partition),
        &[],
        &bundle.payload,
        Some(bundle.timestamp_ms),
        None,
    );
    bundler.recycle(bundle.payload);
}

/// Sends an alert to the alerts topic, keyed by its id.
pub fn send_alert(outputs: &Outputs, topic: &str, alert: &Alert) {
    let json = alert.to_json_string();
    outputs.send(
        topic,
        alert.id.as_bytes(),
        json.as_bytes(),
        Some(Utc::now().timestamp_millis()),
        None,
    );
}

/// Seeks every partition of an aborted batch back to its first message
/// not committed: the first polled or released in the batch, or the first
/// still held. Held events and the batch's noted offsets are dropped; they
/// come again.
fn rewind(
    consumer: &BaseConsumer<PlainContext>,
    polled: &mut Progress,
    released: &mut Progress,
    aligner: &mut Aligner<Held>,
) {
    let (held, paused) = aligner.clear();
    let mut to: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    let firsts = polled.first_offsets().chain(released.first_offsets());
    for (topic, partition, offset) in
        firsts.chain(held.iter().map(|(t, p, o)| (t.as_str(), *p, *o)))
    {
        let at = to.entry((topic, partition)).or_insert(offset);
        *at = (*at).min(offset);
    }
    for ((topic, partition), offset) in to {
        seek(consumer, topic, partition, Offset::Offset(offset));
    }
    for (topic, partition) in &paused {
        set_paused(consumer, topic, *partition, false);
    }
    polled.clear();
    released.clear();
}

fn seek(consumer: &BaseConsumer<PlainContext>, topic: &str, partition: i32, offset: Offset) {
    if let Err(e) = consumer.seek(topic, partition, offset, Duration::from_secs(10)) {
        tracing::warn!(%topic, partition, "seek to {offset:?} failed: {e}");
    }
}

/// The partitions assigned here, with their committed offsets (`None`:
/// nothing committed yet, read from the beginning).
fn assigned_from(consumer: &BaseConsumer<PlainContext>) -> Vec<(String, i32, Option<i64>)> {
    let assigned = match consumer.assignment() {
        Ok(a) if a.count() > 0 => a,
        Ok(_) => return Vec::new(),
        Err(e) => {
            tracing::warn!("stage 1 cannot read its assignment: {e}");
            return Vec::new();
        }
    };
    match consumer.committed_offsets(assigned, Duration::from_secs(10)) {
        Ok(tpl) => tpl
            .elements()
            .iter()
            .map(|e| {
                let from = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                };
                (e.topic().to_owned(), e.partition(), from)
            })
            .collect(),
        Err(e) => {
            tracing::warn!("stage 1 cannot read its committed offsets: {e}");
            Vec::new()
        }
    }
}

/// Drops the held events (after a rebalance, or a rule reload: then
/// `read_again` seeks their partitions back to them) and resumes what the
/// alignment paused.
fn forget_held(
    consumer: &BaseConsumer<PlainContext>,
    aligner: &mut Aligner<Held>,
    read_again: bool,
) {
    let (held, paused) = aligner.clear();
    if read_again {
        for (topic, partition, offset) in &held {
            seek(consumer, topic, *partition, Offset::Offset(*offset));
        }
    }
    for (topic, partition) in &paused {
        set_paused(consumer, topic, *partition, false);
    }
}

/// Tells the aligner which partitions are at their end and carries out
/// the pauses and resumptions it asks for.
fn refresh_alignment(
    consumer: &BaseConsumer<PlainContext>,
    aligner: &mut Aligner<Held>,
    metrics: &Metrics,
) {
    let resume = aligner.refresh(
        |topic, partition| cached_high_watermark(consumer, topic, partition),
        Utc::now().timestamp_micros(),
    );
    for part in resume {
        let (topic, partition) = aligner.partition(part);
        set_paused(consumer, topic, partition, false);
    }
    for part in aligner.take_pauses() {
        let (topic, partition) = aligner.partition(part);
        tracing::debug!(%topic, partition, held = aligner.queued(), "stage 1 pauses a partition running ahead");
        metrics.aligned_pauses.inc();
        set_paused(consumer, topic, partition, true);
    }
    metrics.aligned_held.set(aligner.queued() as i64);
}

/// An evaluated message waiting in the [`Aligner`]: the key and payload
/// are kept only for a dead letter.
struct Held {
    outcome: Outcome,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
}

impl Held {
    fn of(m: MessageView<'_>, outcome: Outcome) -> Held {
        let bad = outcome.is_err();
        Held {
            outcome,
            key: m.key.filter(|_| bad).map(<[u8]>::to_vec),
            payload: m.payload.filter(|_| bad).map(<[u8]>::to_vec),
        }
    }

    fn time_us(&self) -> Option<i64> {
        self.outcome
            .as_ref()
            .ok()
            .map(|(d, _)| d.event.timestamp.timestamp_micros())
    }
}

/// What an event released to the stateful half goes through.
struct Sinks<'a> {
    cfg: &'a DetectorConfig,
    outputs: &'a Outputs,
    bundler: &'a mut Bundler,
    matcher: &'a mut Matcher,
    out: &'a mut MatchOutput,
    /// Events done with, to be freed on a worker ([`MatchWorkers::recycle`]);
    /// `None` when evaluating in place (they are freed at once).
    spent: Option<&'a mut Vec<Spent>>,
}

/// The stateful half of stage 1 for finished chunks, in message order.
struct Finish<'a> {
    sinks: Sinks<'a>,
    aligner: &'a mut Aligner<Held>,
    /// Offsets of the messages released in this batch: what it commits.
    released: &'a mut Progress,
}

impl Finish<'_> {
    /// Finishes the workers' chunks, oldest first, until at most `keep`
    /// are outstanding. A chunk lost with its worker is noted in `lost`
    /// (the batch is then aborted) and the rest are still taken back.
    fn take_back(
        &mut self,
        workers: &mut MatchWorkers,
        keep: usize,
        lost: &mut Option<anyhow::Error>,
    ) {
        while workers.outstanding() > keep {
            match workers.next_done() {
                Ok(Some(done)) => {
                    let now = Instant::now();
                    for item in done {
                        self.evaluated(item.message.view(), item.outcome, now);
                    }
                    self.free_spent(workers);
                }
                Ok(None) => break,
                Err(e) => {
                    lost.get_or_insert(e);
                }
            }
        }
    }

    /// Hands the events the sinks are done with to a worker to free.
    fn free_spent(&mut self, workers: &mut MatchWorkers) {
        if let Some(spent) = self.sinks.spent.as_deref_mut() {
            workers.recycle(std::mem::take(spent));
        }
    }

    /// Takes one evaluated message, in poll order: released at once, or
    /// queued for the event-time merge and released when its turn comes.
    fn evaluated(&mut self, m: MessageView<'_>, outcome: Outcome, now: Instant) {
        if !self.aligner.enabled() {
            self.released.handled(m.topic, m.partition, m.offset);
            self.sinks.one(m, outcome);
            return;
        }
        let held = Held::of(m, outcome);
        let time = held.time_us();
        self.aligner
            .push(m.topic, m.partition, m.offset, time, held, now);
        self.release(now);
    }

    /// Releases every queued event whose turn has come.
    fn release(&mut self, now: Instant) {
        while let Some(r) = self.aligner.pop(now) {
            let (topic, partition) = self.aligner.partition(r.part);
            self.released.handled(topic, partition, r.offset);
            let Held {
                outcome,
                key,
                payload,
            } = r.item;
            let m = MessageView {
                topic,
                partition,
                offset: r.offset,
                key: key.as_deref(),
                payload: payload.as_deref(),
            };
            self.sinks.one(m, outcome);
        }
    }
}

impl Sinks<'_> {
    fn one(&mut self, m: MessageView<'_>, outcome: Outcome) {
        let cfg = self.cfg;
        let metrics = self.matcher.metrics();
        match outcome {
            Err(bad) => {
                metrics.deadletters.with_label_values(&[bad.kind]).inc();
                tracing::warn!(topic = %m.topic, partition = m.partition, offset = m.offset, reason = %bad.reason, "message sent to the dead-letter topic");
                self.outputs.dead_letter(
                    &cfg.topics.deadletter,
                    &bad.reason,
                    "match",
                    m.topic,
                    m.partition,
                    m.offset,
                    m.key,
                    m.payload.unwrap_or_default(),
                );
            }
            Ok((d, matches)) => {
                if let Some(parser) = d.parser {
                    metrics.raw_parsed.with_label_values(&[parser]).inc();
                }
                self.out.clear();
                self.matcher.process_evaluated(
                    &d.agency,
                    &d.event,
                    &d.event_id,
                    m.offset.max(0) as u64,
                    &matches,
                    self.out,
                );
                for alert in self.out.alerts.drain(..) {
                    send_alert(self.outputs, &cfg.topics.alerts, &alert);
                }
                // Read once per event, and only for events with signals.
                let mut now_ms = None;
                for signal in self.out.signals.drain(..) {
                    let now_ms = *now_ms.get_or_insert_with(|| Utc::now().timestamp_millis());
                    if let Some(full) = self.bundler.add(&signal, now_ms) {
                        send_bundle(self.outputs, &cfg.topics.signals, full, self.bundler);
                    }
                }
                if let Some(spent) = self.spent.as_deref_mut() {
                    spent.push((d, matches));
                }
            }
        }
    }
}

/// Runs stage 1 until `shared.stop` is set.
pub fn run(shared: Arc<Shared>) -> anyhow::Result<()> {
    let cfg = &shared.config;
    let metrics = &shared.metrics;
    let group = format!("{}.match", cfg.detector.group_prefix);
    let consumer: BaseConsumer<PlainContext> =
        consumer_config(&cfg.kafka, &group, &format!("{}-match", shared.instance))?
            .create_with_context(PlainContext::new(LagReporter {
                group: group.clone(),
                metrics: Arc::clone(metrics),
            }))
            .map_err(|e| anyhow::anyhow!("cannot create the stage 1 consumer: {e}"))?;
    consumer
        .subscribe(&[cfg.topics.events.as_str(), cfg.topics.raw.as_str()])
        .map_err(|e| anyhow::anyhow!("cannot subscribe to the event topics: {e}"))?;
    // Signals, alerts and dead letters are committed in one transaction
    // with the offsets of the events that caused them: a crash or a
    // rebalance never duplicates a signal (which would count an event twice
    // in a correlation) nor loses one.
    // A new producer with the same transactional id also fences off one
    // that became unusable.
    let new_outputs = || {
        Outputs::transactional(
            &cfg.kafka,
            &format!("{}-match-out", shared.instance),
            &format!("{group}-{}", shared.instance),
        )
    };
    let mut outputs = new_outputs()?;
    let decoder = Arc::new(Decoder::new(&cfg.topics, shared.parse_options())?);
    let mut workers = MatchWorkers::new(cfg.detector.match_workers(), Arc::clone(&decoder))?;
    let mut bundler = Bundler::new(outputs.partition_count(&cfg.topics.signals)?);
    let mut partitions_checked = Instant::now();
    let settings = MatcherSettings {
        suppress: cfg.detection.suppress,
        silence_after: cfg.health.silence_after,
        reorder_window: cfg.health.reorder_window,
    };
    let mut generation = shared.rules.generation();
    let mut matcher = Matcher::new(shared.rules.current(), &settings, Arc::clone(metrics));
    let mut out = MatchOutput::default();
    let mut spent: Vec<Spent> = Vec::with_capacity(CHUNK);
    // Offsets polled in this batch (where an aborted batch reads again
    // from) and released in it (what it commits): with event-time
    // alignment, events polled in one batch may be released in a later one.
    let mut polled = Progress::default();
    let mut released = Progress::default();
    let mut aligner: Aligner<Held> = Aligner::new(
        cfg.detector
            .align_settings(cfg.correlation.allowed_lateness),
    );
    let mut rebalances = consumer.context().rebalances.load(Ordering::Acquire);
    let mut last_silence_check = Instant::now();
    tracing::info!(%group, events = %cfg.topics.events, raw = %cfg.topics.raw, workers = cfg.detector.match_workers(), align = aligner.enabled(), "stage 1 (match) started");

    while !shared.stop.load(Ordering::Acquire) {
        let seen = consumer.context().rebalances.load(Ordering::Acquire);
        if seen != rebalances {
            // Every partition goes back to its committed offset (that of
            // its first held event, if any): held events are dropped, they
            // come again, and nothing polled since the assignment (in a
            // batch the rebalance aborted) is skipped.
            rebalances = seen;
            forget_held(&consumer, &mut aligner, false);
            let now = Instant::now();
            for (topic, partition, from) in assigned_from(&consumer) {
                let offset = from.map_or(Offset::Beginning, Offset::Offset);
                seek(&consumer, &topic, partition, offset);
                if aligner.enabled() {
                    aligner.expect(&topic, partition, from.unwrap_or(0), now);
                }
            }
        }
        if shared.rules.generation() != generation {
            generation = shared.rules.generation();
            // Held events were evaluated with the old rules: read them again.
            forget_held(&consumer, &mut aligner, true);
            matcher.replace_rules(shared.rules.current(), &settings);
            tracing::info!("stage 1 switched to the reloaded rule set");
        }
        let started = Instant::now();
        let mut clock = started;
        let mut handled = 0usize;
        let mut in_txn = false;
        let mut deadline: Option<Instant> = None;
        let mut lost: Option<anyhow::Error> = None;
        let mut chunk: Vec<OwnedMessage> = Vec::with_capacity(CHUNK);
        let mut fin = Finish {
            sinks: Sinks {
                cfg,
                outputs: &outputs,
                bundler: &mut bundler,
                matcher: &mut matcher,
                out: &mut out,
                spent: (!workers.in_place()).then_some(&mut spent),
            },
            aligner: &mut aligner,
            released: &mut released,
        };
        if fin.aligner.queued() > 0 {
            // Partitions found at their end or silent since the last batch
            // may let held events go.
            refresh_alignment(&consumer, fin.aligner, metrics);
            outputs.begin_transaction()?;
            in_txn = true;
            fin.release(Instant::now());
        }
        while handled < cfg.detector.batch_size && lost.is_none() {
            let Some(msg) = next_in_batch(
                &consumer,
                &mut deadline,
                Duration::from_millis(100),
                cfg.detector.batch_wait,
                "stage 1",
            ) else {
                break;
            };
            if !in_txn {
                outputs.begin_transaction()?;
                in_txn = true;
            }
            // Offsets are noted as messages are read: an aborted batch
            // reads again from the first of them.
            polled.handled(msg.topic(), msg.partition(), msg.offset());
            handled += 1;
            if fin.aligner.enabled() && handled.is_multiple_of(CHUNK) {
                // The clock is read here, not per message (it showed in
                // profiles): the alignment's idle limit is seconds.
                clock = Instant::now();
                refresh_alignment(&consumer, fin.aligner, metrics);
            }
            if workers.in_place() {
                // One message at a time, straight from the consumer's
                // buffer: no copy, and its event is read while still hot.
                let m = MessageView::of(&msg);
                let outcome = workers.evaluate_now(fin.sinks.matcher.rules(), m);
                fin.evaluated(m, outcome, clock);
                continue;
            }
            chunk.push(workers.own(&msg));
            if chunk.len() >= CHUNK {
                workers.submit(
                    fin.sinks.matcher.rules(),
                    std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)),
                );
                // Room for one more chunk before the next is handed out.
                let keep = workers.capacity() - 1;
                fin.take_back(&mut workers, keep, &mut lost);
            }
        }
        workers.submit(fin.sinks.matcher.rules(), chunk);
        fin.take_back(&mut workers, 0, &mut lost);
        if fin.aligner.queued() > 0 {
            refresh_alignment(&consumer, fin.aligner, metrics);
            fin.release(Instant::now());
        }
        fin.free_spent(&mut workers);
        if let Some(e) = lost {
            tracing::error!("{e:#}; the batch is aborted and read again");
            if in_txn && !outputs.abort_transaction() {
                outputs = new_outputs()?;
            }
            rewind(&consumer, &mut polled, &mut released, &mut aligner);
            // Signals bundled in the aborted batch would otherwise go out
            // with the next one, counted twice once it is read again.
            bundler.clear();
            workers = MatchWorkers::new(cfg.detector.match_workers(), Arc::clone(&decoder))?;
            continue;
        }
        if last_silence_check.elapsed() >= cfg.detector.silence_check_interval {
            last_silence_check = Instant::now();
            for alert in matcher.check_silence(Utc::now()) {
                if !in_txn {
                    outputs.begin_transaction()?;
                    in_txn = true;
                }
                tracing::warn!(agency = %alert.agency, "{}", alert.rule.title);
                send_alert(&outputs, &cfg.topics.alerts, &alert);
            }
        }
        for full in bundler.drain() {
            send_bundle(&outputs, &cfg.topics.signals, full, &mut bundler);
        }
        if !in_txn {
            outputs.poll();
            if partitions_checked.elapsed() >= Duration::from_secs(300) {
                // Partitions added to the signals topic: keys move, like
                // Kafka's own partitioner would move them.
                partitions_checked = Instant::now();
                match outputs.partition_count(&cfg.topics.signals) {
                    Ok(n) if n != bundler.partitions() => {
                        tracing::warn!(
                            partitions = n,
                            "{} changed its partition count",
                            cfg.topics.signals
                        );
                        bundler = Bundler::new(n);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("{e}"),
                }
            }
            continue;
        }
        if consumer.context().rebalances.load(Ordering::Acquire) != rebalances {
            // The partitions were handed out again and restart from their
            // committed offsets; this batch's outputs must not appear.
            tracing::info!("rebalance during a batch: aborting it, its events are read again");
            if !outputs.abort_transaction() {
                outputs = new_outputs()?;
            }
            // The next round sees the rebalance and seeks every partition
            // back to its committed offset.
            polled.clear();
            released.clear();
            continue;
        }
        let offsets = released.to_list(|_, _| None);
        let t_commit = Instant::now();
        let r = outputs.commit_transaction(&consumer, &offsets);
        tracing::debug!(
            messages = handled,
            held = aligner.queued(),
            process_ms = t_commit.duration_since(started).as_millis() as u64,
            commit_ms = t_commit.elapsed().as_millis() as u64,
            "stage 1 batch"
        );
        if let Err(e) = r {
            tracing::warn!("stage 1 transaction not committed ({e:#}); the batch is read again");
            if !outputs.abort_transaction() {
                // The producer is unusable (fatal error): a new one with the
                // same transactional id fences the old one off.
                outputs = new_outputs()?;
            }
            rewind(&consumer, &mut polled, &mut released, &mut aligner);
            continue;
        }
        polled.clear();
        released.clear();
        metrics
            .stage_latency
            .with_label_values(&["match"])
            .observe(started.elapsed().as_secs_f64());
    }
    tracing::info!("stage 1 (match) stopped");
    Ok(())
}
