//! Stage 2: the correlation engine. Feed it signals; it returns alerts,
//! late signals and rejected signals.

mod input;
mod wheel;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use qalqan_core::alert::{Alert, RuleInfo};

use crate::config::EngineConfig;
use crate::evidence::Journal;
use crate::metrics::{EngineMetrics, InputMetrics, NodeCounters, RuleMetrics};
use crate::rule::{CorrelationType, RuleError};
use crate::set::CorrelationSet;
use crate::signal::Signal;
use crate::window::{from_micros, key_of, FastMap, KeyState, HOPS};

use crate::packed::Packed;
use input::{Ctx, Header, Input, Item, NodeInfo, NodeState};

/// What a call into the engine produced. Reuse one across calls and drain
/// it after each.
#[derive(Debug, Default)]
pub struct Output {
    /// Alerts, in the order they became final.
    pub alerts: Vec<Alert>,
    /// Signals that arrived after their input's settled horizon: counted in
    /// `late_events` and handed back here, never dropped silently.
    pub late: Vec<LateSignal>,
    /// Signals this rule set cannot process (unknown correlation, wrong
    /// group shape, no referenced rule).
    pub rejected: Vec<RejectedSignal>,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.late.is_empty() && self.rejected.is_empty()
    }

    pub fn clear(&mut self) {
        self.alerts.clear();
        self.late.clear();
        self.rejected.clear();
    }
}

/// A signal that came too late to be correlated.
#[derive(Debug, Clone, PartialEq)]
pub struct LateSignal {
    pub partition: i32,
    /// The input's settled horizon when it arrived: everything before it
    /// had already been finalized.
    pub horizon: DateTime<Utc>,
    pub signal: Signal,
}

/// A signal the engine could not process.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedSignal {
    pub partition: i32,
    pub reason: String,
    pub signal: Signal,
}

/// How to rebuild a partition's state without repeating its alerts: replay
/// its signals from `horizon − replay_lookback()` and do not emit alerts
/// that became final before the horizon (they were emitted by the previous
/// owner), nor any alert whose id is listed in `emitted`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildPlan {
    /// Per agency: the settled horizon the previous owner had committed.
    pub until: BTreeMap<String, DateTime<Utc>>,
    /// For agencies not in `until`.
    pub default_until: Option<DateTime<Utc>>,
    /// Alert ids known to have been emitted already (e.g. read back from
    /// the alerts topic); optional.
    pub emitted: HashSet<String>,
}

impl RebuildPlan {
    /// A plan from a checkpoint stored with the partition's offsets.
    pub fn from_checkpoint(cp: &Checkpoint) -> Self {
        RebuildPlan {
            until: cp
                .horizons
                .iter()
                .map(|(a, us)| (a.clone(), from_micros(*us)))
                .collect(),
            default_until: None,
            emitted: HashSet::new(),
        }
    }
}

/// A partition's settled horizons per agency: every alert that became final
/// before its agency's horizon has been produced. Store it with the Kafka
/// offset commit (commit metadata) once those alerts are confirmed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// agency → settled horizon, µs since the Unix epoch.
    pub horizons: BTreeMap<String, i64>,
}

impl Checkpoint {
    pub fn to_metadata(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_metadata(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The earliest horizon (where a replay must start from, minus the
    /// lookback).
    pub fn earliest(&self) -> Option<DateTime<Utc>> {
        self.horizons.values().min().map(|&us| from_micros(us))
    }
}

/// Engine parts shared by all inputs.
struct Shared {
    set: Arc<CorrelationSet>,
    config: EngineConfig,
    info: Vec<NodeInfo>,
    journal: Journal,
    counters: Vec<NodeCounters>,
    /// Counters of rules removed by reloads, kept so metrics never go back.
    retired: BTreeMap<String, NodeCounters>,
    keys_per_node: Vec<usize>,
    keys_total: usize,
    rejected: u64,
    forced: u64,
    lateness_us: i64,
}

impl Shared {
    fn cx<'a>(&'a mut self, out: &'a mut Output) -> Ctx<'a> {
        Ctx {
            set: &self.set,
            config: &self.config,
            info: &self.info,
            journal: &mut self.journal,
            counters: &mut self.counters,
            keys_per_node: &mut self.keys_per_node,
            keys_total: &mut self.keys_total,
            out,
        }
    }
}

/// The correlation engine (stage 2). Single-threaded by design: one engine
/// per detector worker; Kafka partitions spread the load across workers.
pub struct Engine {
    shared: Shared,
    inputs: FastMap<i32, FastMap<String, Input>>,
    plans: HashMap<i32, Arc<RebuildPlan>>,
    /// Partitions whose unread signals wait behind an open transaction
    /// ([`Engine::hold_back`]).
    held: HashSet<i32>,
}

fn node_info(set: &CorrelationSet, config: &EngineConfig) -> Vec<NodeInfo> {
    (0..set.nodes().len())
        .map(|n| {
            let r = set.node_rule(n);
            NodeInfo {
                rule_info: RuleInfo {
                    id: r.id.clone(),
                    title: r.meta.title.clone(),
                    author: r.meta.author.clone(),
                    level: r.meta.level.clone(),
                    tags: r.meta.tags.clone(),
                    kind: r.kind.name().to_owned(),
                    description: r.meta.description.clone(),
                    references: r.meta.references.clone(),
                    falsepositives: r.meta.falsepositives.clone(),
                },
                suppress: r.effective_suppress(config.suppress),
            }
        })
        .collect()
}

/// Rules this engine configuration cannot honour.
fn check_rules(set: &CorrelationSet, config: &EngineConfig) -> Vec<RuleError> {
    let mut errors = Vec::new();
    for r in set.rules() {
        if r.kind == CorrelationType::ValueCount {
            let cap = config.max_values_per_key as f64;
            if let Some((op, t)) = r.condition.bounds().iter().find(|(_, t)| *t >= cap) {
                errors.push(RuleError {
                    file: r.source.clone(),
                    rule: r.id.clone(),
                    reason: format!(
                        "condition `{}: {t}` reaches max_values_per_key ({}); distinct values \
                         beyond it are not kept, so the count could not be trusted — raise \
                         the bound or lower the threshold",
                        op.key(),
                        config.max_values_per_key
                    ),
                });
            }
        }
    }
    errors
}

impl Engine {
    /// An engine for a rule set. Fails with the rules the configuration
    /// cannot honour (e.g. a value_count threshold above the value bound).
    pub fn new(set: Arc<CorrelationSet>, config: EngineConfig) -> Result<Self, Vec<RuleError>> {
        let errors = check_rules(&set, &config);
        if !errors.is_empty() {
            return Err(errors);
        }
        let n = set.nodes().len();
        let lateness_us = i64::try_from(config.allowed_lateness.as_micros()).unwrap_or(i64::MAX);
        Ok(Engine {
            shared: Shared {
                info: node_info(&set, &config),
                journal: Journal::new(config.evidence_budget),
                counters: vec![NodeCounters::default(); n],
                retired: BTreeMap::new(),
                keys_per_node: vec![0; n],
                keys_total: 0,
                rejected: 0,
                forced: 0,
                lateness_us,
                set,
                config,
            },
            inputs: FastMap::default(),
            plans: HashMap::new(),
            held: HashSet::new(),
        })
    }

    pub fn rule_set(&self) -> &Arc<CorrelationSet> {
        &self.shared.set
    }

    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Processes one signal from `partition` (use 0 in standalone mode).
    /// The input is the pair (partition, signal's agency): each has its own
    /// watermark, so a collector that reconnects and backfills an agency's
    /// logs is not late relative to other agencies.
    ///
    /// The signal is read, not kept: the engine copies what it needs into
    /// one packed buffer, so a consumer can decode every message into the
    /// same `Signal` (e.g. with `Deserialize::deserialize_in_place`).
    pub fn process(&mut self, partition: i32, signal: &Signal, out: &mut Output) {
        let header = match resolve(&self.shared.set, signal) {
            Ok(header) => header,
            Err(reason) => {
                self.shared.rejected += 1;
                out.rejected.push(RejectedSignal {
                    partition,
                    reason,
                    signal: signal.clone(),
                });
                return;
            }
        };
        let n_nodes = self.shared.set.nodes().len();
        let by_agency = self.inputs.entry(partition).or_default();
        if !by_agency.contains_key(signal.agency.as_str()) {
            let mut input = Input::new(partition, &signal.agency, n_nodes);
            if let Some(plan) = self.plans.get(&partition) {
                attach_plan(&mut input, plan);
            }
            by_agency.insert(signal.agency.clone(), input);
        }
        let Some(input) = by_agency.get_mut(signal.agency.as_str()) else {
            return;
        };
        let shared = &mut self.shared;
        if header.ts < input.settled {
            shared.counters[header.node].late_events += 1;
            out.late.push(LateSignal {
                partition,
                horizon: from_micros(input.settled),
                signal: signal.clone(),
            });
            return;
        }
        input.arrivals += 1;
        input.watermark = input.watermark.max(header.ts);
        input.enqueue(header, Packed::of(signal));
        let mut target = input.watermark.saturating_sub(shared.lateness_us);
        let max_pending = shared.config.max_pending_per_input;
        if input.pending_len() > max_pending {
            let excess = input.pending_len() - max_pending;
            if let Some(ts) = input.nth_pending_ts(excess - 1) {
                target = target.max(ts.saturating_add(1));
                shared.forced += excess as u64;
            }
        }
        input.settle(target, &mut shared.cx(out));
        self.enforce_limits(out);
    }

    /// Processes a batch of signals from one partition.
    pub fn process_batch<'s>(
        &mut self,
        partition: i32,
        signals: impl IntoIterator<Item = &'s Signal>,
        out: &mut Output,
    ) {
        for s in signals {
            self.process(partition, s, out);
        }
    }

    /// Moves the watermark of a partition's inputs (all agencies, or one)
    /// forward to `to`, e.g. from a source that reports its progress.
    pub fn advance_watermark(
        &mut self,
        partition: i32,
        agency: Option<&str>,
        to: DateTime<Utc>,
        out: &mut Output,
    ) {
        let to = to.timestamp_micros();
        let shared = &mut self.shared;
        if let Some(by_agency) = self.inputs.get_mut(&partition) {
            for (a, input) in by_agency.iter_mut() {
                if agency.is_some_and(|x| x != a) {
                    continue;
                }
                input.watermark = input.watermark.max(to);
                let target = input.watermark.saturating_sub(shared.lateness_us);
                input.settle(target, &mut shared.cx(out));
            }
        }
        self.enforce_limits(out);
    }

    /// Call periodically (e.g. every 100 ms) with the wall clock. An input
    /// without signals for `idle_timeout` has its watermark advanced by the
    /// wall time since its last signal, so its last windows close and fire
    /// even when nothing more arrives.
    pub fn tick(&mut self, now: Instant, out: &mut Output) {
        let shared = &mut self.shared;
        let idle_after = shared.config.idle_timeout;
        for (partition, by_agency) in self.inputs.iter_mut() {
            let held = self.held.contains(partition);
            for input in by_agency.values_mut() {
                // A held partition counts as active: its idle time starts
                // again once the hold ends.
                if held || input.arrivals > 0 || input.last_active.is_none() {
                    input.arrivals = 0;
                    input.last_active = Some(now);
                    input.watermark_at_active = input.watermark;
                    continue;
                }
                let Some(since) = input.last_active else {
                    continue;
                };
                let idle = now.saturating_duration_since(since);
                if idle < idle_after || input.watermark_at_active == i64::MIN {
                    continue;
                }
                let idle_us = i64::try_from(idle.as_micros()).unwrap_or(i64::MAX);
                let w = input.watermark_at_active.saturating_add(idle_us);
                if w > input.watermark {
                    input.watermark = w;
                    let target = w.saturating_sub(shared.lateness_us);
                    input.settle(target, &mut shared.cx(out));
                }
            }
        }
        self.enforce_limits(out);
    }

    /// Marks a partition as held back, or no longer: while held, [`tick`]
    /// does not move its inputs' watermarks with the wall clock. For a
    /// partition whose unread signals wait behind an open Kafka transaction
    /// (a stage 1 instance killed mid-batch): it is not idle, its signals
    /// are only not readable yet, and closing windows on the wall clock
    /// would make every one of them late once they are.
    ///
    /// [`tick`]: Engine::tick
    pub fn hold_back(&mut self, partition: i32, held: bool) {
        if held {
            self.held.insert(partition);
        } else {
            self.held.remove(&partition);
        }
    }

    /// End of input (replays, tests, the CLI): processes everything pending
    /// and closes every window as if time ran on forever, then forgets all
    /// inputs. Later signals start fresh.
    pub fn flush(&mut self, out: &mut Output) {
        let shared = &mut self.shared;
        for (_, mut by_agency) in self.inputs.drain() {
            let mut agencies: Vec<_> = by_agency.drain().collect();
            agencies.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, mut input) in agencies {
                let mut cx = shared.cx(out);
                input.settle(i64::MAX, &mut cx);
                input.clear(&mut cx);
            }
        }
    }

    /// The partition was revoked: drop its state without emitting anything.
    pub fn drop_partition(&mut self, partition: i32) {
        let mut sink = Output::default();
        if let Some(mut by_agency) = self.inputs.remove(&partition) {
            for input in by_agency.values_mut() {
                input.clear(&mut self.shared.cx(&mut sink));
            }
        }
        self.plans.remove(&partition);
        self.held.remove(&partition);
    }

    /// The settled horizons of a partition, to store with its offsets.
    pub fn checkpoint(&self, partition: i32) -> Checkpoint {
        Checkpoint {
            horizons: self
                .inputs
                .get(&partition)
                .map(|m| {
                    m.iter()
                        .filter(|(_, i)| i.settled > i64::MIN)
                        .map(|(a, i)| (a.clone(), i.settled))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Starts rebuilding a partition: call before replaying its signals
    /// from `earliest horizon − replay_lookback()`. Alerts that the plan
    /// says were already emitted are recomputed (and counted as
    /// `rebuild_skipped`) but not emitted again.
    pub fn begin_rebuild(&mut self, partition: i32, plan: RebuildPlan) {
        let plan = Arc::new(plan);
        if let Some(by_agency) = self.inputs.get_mut(&partition) {
            for input in by_agency.values_mut() {
                attach_plan(input, &plan);
            }
        }
        self.plans.insert(partition, plan);
    }

    /// Forgets a partition's rebuild plan (optional; once the replay has
    /// passed the horizons the plan no longer withholds anything but ids
    /// listed in `emitted`).
    pub fn end_rebuild(&mut self, partition: i32) {
        self.plans.remove(&partition);
        if let Some(by_agency) = self.inputs.get_mut(&partition) {
            for input in by_agency.values_mut() {
                input.rebuild = None;
                input.rebuild_until = i64::MIN;
            }
        }
    }

    /// How far before a checkpoint's horizon a replay must start for the
    /// rebuilt state, alert ids and suppression to be exactly those of an
    /// uninterrupted run: two windows plus a hop (a window's firing depends
    /// on the epoch before it), plus two suppression periods (the count
    /// carried from the previous period), plus the allowed lateness.
    pub fn replay_lookback(&self) -> Duration {
        let set = &self.shared.set;
        let mut windows = Duration::ZERO;
        let mut suppression = Duration::ZERO;
        for (n, info) in self.shared.info.iter().enumerate() {
            let t = set.node_rule(n).timespan;
            windows = windows.max(t * 2 + t / HOPS as u32);
            if let Some(p) = &info.suppress {
                suppression = suppression.max(p.period * 2);
            }
        }
        windows + suppression + self.shared.config.allowed_lateness
    }

    /// Swaps in a new rule set. State of correlations whose definition and
    /// place in their chain are unchanged survives; other state is dropped.
    pub fn replace_rules(&mut self, set: Arc<CorrelationSet>) -> Result<(), Vec<RuleError>> {
        let errors = check_rules(&set, &self.shared.config);
        if !errors.is_empty() {
            return Err(errors);
        }
        let old_set = Arc::clone(&self.shared.set);
        let by_print: HashMap<u64, usize> = old_set
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, n)| (n.fingerprint, i))
            .collect();
        let mapping: Vec<Option<usize>> = set
            .nodes()
            .iter()
            .map(|n| by_print.get(&n.fingerprint).copied())
            .collect();
        let mut old_to_new = vec![None; old_set.nodes().len()];
        for (new, old) in mapping.iter().enumerate() {
            if let Some(old) = *old {
                old_to_new[old] = Some(new);
            }
        }
        let n_new = set.nodes().len();
        let mut counters = vec![NodeCounters::default(); n_new];
        let mut keys_per_node = vec![0usize; n_new];
        let mut kept_old = vec![false; old_set.nodes().len()];
        for (new, old) in mapping.iter().enumerate() {
            if let Some(old) = *old {
                counters[new] = self.shared.counters[old];
                keys_per_node[new] = self.shared.keys_per_node[old];
                kept_old[old] = true;
            }
        }
        for (old, kept) in kept_old.iter().enumerate() {
            if !*kept {
                self.shared
                    .retired
                    .entry(old_set.node_rule(old).id.clone())
                    .or_default()
                    .add(&self.shared.counters[old]);
            }
        }
        for by_agency in self.inputs.values_mut() {
            for input in by_agency.values_mut() {
                let mut old_nodes: Vec<Option<NodeState>> = std::mem::take(&mut input.nodes)
                    .into_iter()
                    .map(Some)
                    .collect();
                input.nodes = mapping
                    .iter()
                    .map(|m| m.and_then(|o| old_nodes[o].take()).unwrap_or_default())
                    .collect();
                // Pending signals were resolved against the old set: map them.
                input.remap_pending(&old_to_new);
                input.refresh_timers(&set);
            }
        }
        self.shared.keys_total = self
            .inputs
            .values()
            .flat_map(|m| m.values())
            .map(Input::keys)
            .sum();
        self.shared.info = node_info(&set, &self.shared.config);
        self.shared.counters = counters;
        self.shared.keys_per_node = keys_per_node;
        self.shared.set = set;
        Ok(())
    }

    /// Keeps the state bounds: when a rule or the total goes over its key
    /// limit, the least recently active keys are evicted until usage is 1%
    /// under the limit (so eviction work is amortized).
    fn enforce_limits(&mut self, out: &mut Output) {
        let max_rule = self.shared.config.max_keys_per_rule;
        let max_total = self.shared.config.max_keys_total;
        for node in 0..self.shared.keys_per_node.len() {
            if self.shared.keys_per_node[node] > max_rule {
                let goal = max_rule - max_rule / 100;
                tracing::debug!(
                    rule = %self.shared.set.node_rule(node).id,
                    keys = self.shared.keys_per_node[node],
                    goal,
                    "correlation keys over max_keys_per_rule; evicting the least recently active"
                );
                while self.shared.keys_per_node[node] > goal {
                    if !self.evict_one(Some(node), out) {
                        break;
                    }
                }
            }
        }
        if self.shared.keys_total > max_total {
            let goal = max_total - max_total / 100;
            tracing::debug!(
                keys = self.shared.keys_total,
                goal,
                "correlation keys over max_keys_total; evicting the least recently active"
            );
            while self.shared.keys_total > goal {
                if !self.evict_one(None, out) {
                    break;
                }
            }
        }
    }

    /// Evicts the least recently active key of `node` (or of any node).
    fn evict_one(&mut self, node: Option<usize>, out: &mut Output) -> bool {
        let set = Arc::clone(&self.shared.set);
        let mut best: Option<(i64, i32, String, usize)> = None;
        for (&p, by_agency) in &self.inputs {
            for (a, input) in by_agency {
                let nodes: Vec<usize> = match node {
                    Some(n) => vec![n],
                    None => (0..set.nodes().len()).collect(),
                };
                for n in nodes {
                    if let Some(d) = input.oldest_deadline(n, &set) {
                        if best.as_ref().is_none_or(|b| d < b.0) {
                            best = Some((d, p, a.clone(), n));
                        }
                    }
                }
            }
        }
        let Some((_, p, a, n)) = best else {
            return false;
        };
        let Some(input) = self.inputs.get_mut(&p).and_then(|m| m.get_mut(&a)) else {
            return false;
        };
        let mut cx = self.shared.cx(out);
        if input.evict_oldest(n, &mut cx) {
            return true;
        }
        // Only stale timer entries were left for that node; they are gone
        // now, so the next round looks elsewhere.
        input.refresh_timers(&set);
        self.shared.keys_per_node[n] > 0 || self.shared.keys_total > 0
    }

    /// A snapshot of the engine's counters and gauges.
    pub fn metrics(&self) -> EngineMetrics {
        let set = &self.shared.set;
        let mut by_rule: BTreeMap<String, RuleMetrics> = BTreeMap::new();
        for (id, c) in &self.shared.retired {
            by_rule.insert(
                id.clone(),
                RuleMetrics {
                    rule_id: id.clone(),
                    keys: 0,
                    counters: *c,
                },
            );
        }
        for n in 0..set.nodes().len() {
            let id = &set.node_rule(n).id;
            let m = by_rule.entry(id.clone()).or_insert_with(|| RuleMetrics {
                rule_id: id.clone(),
                keys: 0,
                counters: NodeCounters::default(),
            });
            m.keys += self.shared.keys_per_node[n] as u64;
            m.counters.add(&self.shared.counters[n]);
        }
        let mut inputs: Vec<InputMetrics> = self
            .inputs
            .values()
            .flat_map(|m| m.values())
            .map(|i| InputMetrics {
                partition: i.partition,
                agency: i.agency.clone(),
                watermark: (i.watermark > i64::MIN).then(|| from_micros(i.watermark)),
                settled: (i.settled > i64::MIN).then(|| from_micros(i.settled)),
                pending: i.pending_len(),
                keys: i.keys() as u64,
            })
            .collect();
        inputs.sort_by(|a, b| (a.partition, &a.agency).cmp(&(b.partition, &b.agency)));
        let pending_total: u64 = inputs.iter().map(|i| i.pending as u64).sum();
        let wheel: usize = self
            .inputs
            .values()
            .flat_map(|m| m.values())
            .map(Input::wheel_entries)
            .sum();
        let per_key = (std::mem::size_of::<KeyState>() + 16 + 1) * 8 / 7;
        let estimate = self.shared.keys_total * per_key
            + wheel * 16
            + pending_total as usize * (std::mem::size_of::<Item>() + 256)
            + self.shared.journal.bytes();
        EngineMetrics {
            rules: by_rule.into_values().collect(),
            inputs,
            keys_total: self.shared.keys_total as u64,
            pending_total,
            rejected_signals: self.shared.rejected,
            forced_settles: self.shared.forced,
            evidence_bytes: self.shared.journal.bytes() as u64,
            evidence_records: self.shared.journal.len() as u64,
            evidence_dropped: self.shared.journal.dropped,
            state_bytes_estimate: estimate as u64,
        }
    }
}

fn attach_plan(input: &mut Input, plan: &Arc<RebuildPlan>) {
    input.rebuild_until = plan
        .until
        .get(&input.agency)
        .copied()
        .or(plan.default_until)
        .map_or(i64::MIN, |t| t.timestamp_micros());
    input.rebuild = Some(Arc::clone(plan));
}

/// Resolves a signal against the rule set: the node it feeds, its group
/// key and the referenced rules it matched; or why it cannot be processed.
fn resolve(set: &CorrelationSet, signal: &Signal) -> Result<Header, String> {
    let Some(node) = set.node_of(&signal.correlation, signal.root.as_deref()) else {
        return Err(match &signal.root {
            Some(root) => format!(
                "no correlation `{}` inside `{root}` in the loaded rules",
                signal.correlation
            ),
            None => format!(
                "no correlation `{}` in the loaded rules",
                signal.correlation
            ),
        });
    };
    let n = &set.nodes()[node];
    let rule = set.node_rule(node);
    if signal.group.len() != rule.group_by.len() {
        return Err(format!(
            "carries {} group values; `{}` groups by {} field(s)",
            signal.group.len(),
            rule.id,
            rule.group_by.len()
        ));
    }
    let mut rules = 0u64;
    for r in &signal.rules {
        if let Some(p) = n.ref_ids.iter().position(|x| x == r) {
            rules |= 1 << p;
        }
    }
    if rules == 0 {
        return Err(format!(
            "matched {:?}, none of which `{}` references",
            signal.rules, rule.id
        ));
    }
    Ok(Header {
        ts: signal.timestamp.timestamp_micros(),
        ordinal: signal.ordinal,
        number: signal.number,
        node,
        key: key_of(&signal.agency, &signal.group),
        rules,
        distinct: signal
            .value
            .as_ref()
            .map(|v| xxhash_rust::xxh3::xxh3_64(v.as_bytes())),
    })
}
