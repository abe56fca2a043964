//! One input's reorder buffer, watermark and window state, and the
//! processing of settled signals in event-time order.
//!
//! An input is one stream with its own event-time progress: a Kafka
//! partition's signals of one agency (stage 2), or one agency (standalone).
//! Signals wait in `pending`, sorted, until the watermark minus the allowed
//! lateness passes them; then they are applied in order, interleaved with
//! the window timers at exactly the instants the timers fall due. Everything
//! downstream of `settle` therefore sees one deterministic sequence.

use std::collections::VecDeque;
use std::sync::Arc;

use qalqan_core::alert::{Alert, RuleInfo};

use crate::config::EngineConfig;
use crate::engine::wheel::Wheel;
use crate::engine::{Output, RebuildPlan};
use crate::evidence::{Journal, Record, Ref};
use crate::metrics::NodeCounters;
use crate::packed::{Packed, Parts};
use crate::set::CorrelationSet;
use crate::suppress::{SuppressPolicy, SuppressState, Verdict};
use crate::window::{
    epoch, from_micros, key_of, Agg, CloseState, Contribution, Extra, Key, KeyMap, KeyState,
    Measure, B,
};

/// What the engine derives from a signal before queueing it.
pub(crate) struct Header {
    pub ts: i64,
    pub ordinal: u64,
    pub node: usize,
    pub key: Key,
    pub rules: u64,
    pub distinct: Option<u64>,
    pub number: Option<f64>,
}

/// A signal ready for the window state: the hashes and numbers the
/// windows need, and its text packed for evidence.
pub(crate) struct Item {
    pub ts: i64,
    pub ordinal: u64,
    pub node: usize,
    pub key: Key,
    pub rules: u64,
    pub distinct: Option<u64>,
    pub number: Option<f64>,
    pub packed: Packed,
}

impl Item {
    fn record(&self) -> Record {
        Record {
            ts_us: self.ts,
            ordinal: self.ordinal,
            packed: self.packed.clone(),
        }
    }
}

/// Per node: static facts the engine needs on every firing.
pub(crate) struct NodeInfo {
    pub rule_info: RuleInfo,
    pub suppress: Option<SuppressPolicy>,
}

/// Shared, mutable engine parts an input works with.
pub(crate) struct Ctx<'a> {
    pub set: &'a CorrelationSet,
    pub config: &'a EngineConfig,
    pub info: &'a [NodeInfo],
    pub journal: &'a mut Journal,
    pub counters: &'a mut [NodeCounters],
    pub keys_per_node: &'a mut [usize],
    pub keys_total: &'a mut usize,
    pub out: &'a mut Output,
}

/// State of one node in one input.
#[derive(Default)]
pub(crate) struct NodeState {
    pub keys: KeyMap<KeyState>,
    pub wheel: Wheel,
    pub suppress: KeyMap<SuppressState>,
    suppress_gc_at: usize,
}

pub(crate) struct Input {
    pub partition: i32,
    pub agency: String,
    /// Newest event time seen (µs); `i64::MIN` before the first signal.
    pub watermark: i64,
    /// Every event before this instant has been applied and every timer at
    /// or before it has run; a signal older than it is late.
    pub settled: i64,
    /// Signals waiting for the watermark, in processing order.
    pub pending: VecDeque<Item>,
    /// Signals that arrived far out of order (a lagging partition, a
    /// replay): kept aside instead of being inserted into the middle of
    /// `pending` (an O(n) move each), sorted in reverse only when the
    /// settled horizon reaches one of them, and merged while settling.
    stray: Vec<Item>,
    stray_sorted: bool,
    /// Earliest event time in `stray` while it is unsorted, so that
    /// settling does not scan it each time to learn whether it is due.
    stray_min: i64,
    pub nodes: Vec<NodeState>,
    /// Earliest timer deadline over all nodes (µs), `i64::MAX` if none.
    next_timer: i64,
    pub rebuild: Option<Arc<RebuildPlan>>,
    pub rebuild_until: i64,
    /// Signals since the last tick, and the wall-clock idle tracking.
    pub arrivals: u64,
    pub last_active: Option<std::time::Instant>,
    pub watermark_at_active: i64,
    /// Reused stack of signals derived for outer correlations.
    derived: Vec<Item>,
}

/// A window that fired.
struct Firing {
    node: usize,
    key: Key,
    window: i64,
    determined: i64,
    measure: Measure,
    first: Ref,
    last: Record,
    ordinal: u64,
    agency: String,
    group: Vec<String>,
}

/// Processing order of waiting signals: event time, ordinal, event id, node.
fn order(a: &Item, b: &Item) -> std::cmp::Ordering {
    (a.ts, a.ordinal)
        .cmp(&(b.ts, b.ordinal))
        .then_with(|| (a.packed.event_id_bytes(), a.node).cmp(&(b.packed.event_id_bytes(), b.node)))
}

impl Input {
    pub fn new(partition: i32, agency: &str, n_nodes: usize) -> Self {
        Input {
            partition,
            agency: agency.to_owned(),
            watermark: i64::MIN,
            settled: i64::MIN,
            pending: VecDeque::new(),
            stray: Vec::new(),
            stray_sorted: true,
            stray_min: i64::MAX,
            nodes: (0..n_nodes).map(|_| NodeState::default()).collect(),
            next_timer: i64::MAX,
            rebuild: None,
            rebuild_until: i64::MIN,
            arrivals: 0,
            last_active: None,
            watermark_at_active: i64::MIN,
            derived: Vec::new(),
        }
    }

    /// Queues a signal (not late) in processing order: (event time,
    /// ordinal, event id, node).
    pub fn enqueue(&mut self, h: Header, packed: Packed) {
        // The event id only breaks ties of time and ordinal, which are rare:
        // it is read from the packed text (and checked as UTF-8) only then.
        let before = |p: &Item| match (h.ts, h.ordinal).cmp(&(p.ts, p.ordinal)) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => {
                (packed.event_id(), h.node) < (p.packed.event_id(), p.node)
            }
        };
        // Signals mostly arrive in order: scan back from the end.
        let len = self.pending.len();
        let mut at = len;
        let mut far = false;
        while at > 0 && before(&self.pending[at - 1]) {
            at -= 1;
            if len - at > 32 {
                far = true;
                break;
            }
        }
        let item = Item {
            ts: h.ts,
            ordinal: h.ordinal,
            node: h.node,
            key: h.key,
            rules: h.rules,
            distinct: h.distinct,
            number: h.number,
            packed,
        };
        if far {
            if self.stray_sorted {
                // Sorted in reverse: the earliest is last.
                self.stray_min = self.stray.last().map_or(i64::MAX, |i| i.ts);
            }
            self.stray_min = self.stray_min.min(item.ts);
            self.stray.push(item);
            self.stray_sorted = false;
        } else if at == len {
            self.pending.push_back(item);
        } else {
            self.pending.insert(at, item);
        }
    }

    /// Signals waiting, in both queues.
    pub fn pending_len(&self) -> usize {
        self.pending.len() + self.stray.len()
    }

    /// The event time of the `n`-th waiting signal in processing order
    /// (0-based); merges the stray signals into `pending` first (rare: only
    /// when an input exceeds its bound).
    pub fn nth_pending_ts(&mut self, n: usize) -> Option<i64> {
        if !self.stray.is_empty() {
            let mut all: Vec<Item> = std::mem::take(&mut self.pending).into();
            all.append(&mut self.stray);
            all.sort_by(order);
            self.pending = all.into();
            self.stray_sorted = true;
        }
        self.pending.get(n).map(|i| i.ts)
    }

    /// Re-addresses queued items after a reload (`map[old node] = new`);
    /// items of nodes that did not survive are dropped with their state.
    pub fn remap_pending(&mut self, map: &[Option<usize>]) {
        let remap = |item: &mut Item| match map.get(item.node).copied().flatten() {
            Some(n) => {
                item.node = n;
                true
            }
            None => false,
        };
        self.pending.retain_mut(remap);
        self.stray.retain_mut(remap);
        // Node numbers are part of the order.
        self.stray_sorted = self.stray.is_empty();
        self.stray_min = self.stray.iter().map(|i| i.ts).min().unwrap_or(i64::MAX);
        self.pending.make_contiguous().sort_by(order);
    }

    /// Applies every pending signal before `target` and every timer due at
    /// or before it, in event-time order; then `settled = target`.
    pub fn settle(&mut self, target: i64, cx: &mut Ctx<'_>) {
        if target <= self.settled {
            return;
        }
        // Items are applied where they lie and dropped in bulk afterwards:
        // moving each ~400-byte item out of the queue costs more than the
        // window update itself.
        let pending = std::mem::take(&mut self.pending);
        let mut stray = std::mem::take(&mut self.stray);
        if !self.stray_sorted && self.stray_min < target {
            // Reverse order, so the next one is popped from the end.
            stray.sort_by(|a, b| order(b, a));
            self.stray_sorted = true;
        }
        let mut done = 0;
        loop {
            let next = pending.get(done).filter(|i| i.ts < target);
            let next_stray = if self.stray_sorted {
                stray.last().filter(|i| i.ts < target)
            } else {
                None
            };
            let from_stray = match (next, next_stray) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(p), Some(s)) => order(s, p) == std::cmp::Ordering::Less,
            };
            if from_stray {
                if let Some(item) = stray.pop() {
                    self.run_timers(item.ts, cx);
                    self.apply_chain(&item, cx);
                }
            } else {
                let item = &pending[done];
                self.run_timers(item.ts, cx);
                self.apply_chain(item, cx);
                done += 1;
            }
        }
        self.run_timers(target, cx);
        let mut pending = pending;
        pending.drain(..done);
        self.pending = pending;
        self.stray = stray;
        self.settled = target;
    }

    /// Applies an item and, depth first, the signals its firings derive
    /// for outer correlations.
    fn apply_chain(&mut self, item: &Item, cx: &mut Ctx<'_>) {
        let mut stack = std::mem::take(&mut self.derived);
        self.apply(item, cx, &mut stack);
        while let Some(item) = stack.pop() {
            self.apply(&item, cx, &mut stack);
        }
        self.derived = stack;
    }

    fn register(&mut self, node: usize, hop: i64, key: Key, cx: &Ctx<'_>) {
        self.nodes[node].wheel.add(hop, key);
        let deadline = hop.saturating_mul(cx.set.nodes()[node].hop_us);
        self.next_timer = self.next_timer.min(deadline);
    }

    fn recompute_next_timer(&mut self, cx: &Ctx<'_>) {
        let nodes = cx.set.nodes();
        self.next_timer = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(n, ns)| {
                ns.wheel
                    .next_hop()
                    .map(|h| h.saturating_mul(nodes[n].hop_us))
            })
            .min()
            .unwrap_or(i64::MAX);
    }

    /// Runs, in deadline order, every timer due at or before `limit`.
    fn run_timers(&mut self, limit: i64, cx: &mut Ctx<'_>) {
        while self.next_timer <= limit {
            // The node with the earliest slot (ties: lowest node index).
            let nodes = cx.set.nodes();
            let mut best: Option<(i64, usize)> = None;
            for (n, ns) in self.nodes.iter().enumerate() {
                if let Some(h) = ns.wheel.next_hop() {
                    let d = h.saturating_mul(nodes[n].hop_us);
                    if best.is_none_or(|(bd, _)| d < bd) {
                        best = Some((d, n));
                    }
                }
            }
            let Some((deadline, node)) = best else {
                self.next_timer = i64::MAX;
                return;
            };
            if deadline > limit {
                self.next_timer = deadline;
                return;
            }
            let Some((hop, keys)) = self.nodes[node].wheel.pop_due(i64::MAX) else {
                self.recompute_next_timer(cx);
                continue;
            };
            self.recompute_next_timer(cx);
            for &key in &keys {
                let mut stack = Vec::new();
                self.visit(node, hop, key, cx, &mut stack);
                while let Some(item) = stack.pop() {
                    self.apply(&item, cx, &mut stack);
                }
            }
            self.nodes[node].wheel.recycle(keys);
        }
    }

    /// A key's timer at hop `d`: evaluate windows that ended, expire the
    /// key when all its windows are over, or skip a stale registration.
    fn visit(&mut self, node: usize, d: i64, key: Key, cx: &mut Ctx<'_>, stack: &mut Vec<Item>) {
        let set = cx.set;
        let n = &set.nodes()[node];
        let ns = &mut self.nodes[node];
        let Some(state) = ns.keys.get_mut(&key) else {
            return;
        };
        let due = due_hop(state, n.early);
        if due > d {
            return; // stale: registered again later
        }
        let mut firings = Vec::new();
        if !n.early {
            evaluate_closed(state, d, node, key, cx, &mut firings);
        }
        if state.last + B <= d {
            ns.keys.remove(&key);
            cx.keys_per_node[node] -= 1;
            *cx.keys_total -= 1;
            cx.counters[node].expired += 1;
        } else {
            let due = due_hop(state, n.early);
            self.register(node, due, key, cx);
        }
        for f in firings {
            self.emit(f, cx, stack);
        }
    }

    /// Applies one settled item to its node's key.
    fn apply(&mut self, item: &Item, cx: &mut Ctx<'_>, stack: &mut Vec<Item>) {
        let node = item.node;
        let set = cx.set;
        let n = &set.nodes()[node];
        let rule = set.node_rule(node);
        let hop = item.ts.div_euclid(n.hop_us);
        let key = item.key;
        let ns = &mut self.nodes[node];
        let mut firings: Vec<Firing> = Vec::new();

        let (state, fresh) = match ns.keys.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => (o.into_mut(), false),
            std::collections::hash_map::Entry::Vacant(v) => {
                let extra = if n.early && matches!(rule.kind, crate::CorrelationType::EventCount) {
                    None
                } else {
                    Some(Box::new(Extra {
                        agg: Agg::new(rule.kind, rule.rules.len()),
                        close: (!n.early).then(|| {
                            Box::new(CloseState {
                                next_eval: hop,
                                agency: item.packed.agency().to_owned(),
                                group: item.packed.group(),
                                last: item.record(),
                            })
                        }),
                    }))
                };
                cx.keys_per_node[node] += 1;
                *cx.keys_total += 1;
                (v.insert(KeyState::new(hop, extra)), true)
            }
        };
        let due_before = (!fresh).then(|| due_hop(state, n.early));

        // Windows that ended before this event (normally already done by
        // the timers; kept as a guarantee).
        if !n.early && !fresh {
            evaluate_closed(state, hop, node, key, cx, &mut firings);
        }

        let journal = &mut *cx.journal;
        state.note_opener(hop, fresh, || journal.push(item.record()));
        state.advance(hop);
        let outcome = state.add(
            hop,
            &Contribution {
                rules: item.rules,
                distinct: item.distinct,
                number: item.number,
            },
            cx.config.max_values_per_key,
        );
        if outcome.missing_value {
            cx.counters[node].missing_values += 1;
        }
        if outcome.overflow {
            cx.counters[node].value_overflows += 1;
        }
        if let Some(close) = state.extra.as_mut().and_then(|x| x.close.as_mut()) {
            close.last = item.record();
        }

        if n.early {
            let lo = (hop - B + 1).max(state.floor());
            if let Some(w) = state.first_candidate(lo, hop) {
                let m = state.measure(w, rule.kind, rule.percentile);
                if m.value.is_some_and(|v| rule.condition.holds(v)) {
                    state.fired_epoch = epoch(w);
                    firings.push(Firing {
                        node,
                        key,
                        window: w,
                        determined: item.ts,
                        measure: m,
                        first: state.opener_for(w),
                        last: item.record(),
                        ordinal: item.ordinal,
                        agency: item.packed.agency().to_owned(),
                        group: item.packed.group(),
                    });
                }
            }
        }

        let due_after = due_hop(state, n.early);
        if due_before != Some(due_after) {
            self.register(node, due_after, key, cx);
        }
        for f in firings {
            self.emit(f, cx, stack);
        }
    }

    /// Turns a firing into a signal for the outer correlation (if any) and
    /// an alert (if this node alerts, after suppression and rebuild).
    fn emit(&mut self, f: Firing, cx: &mut Ctx<'_>, stack: &mut Vec<Item>) {
        let set = cx.set;
        let n = &set.nodes()[f.node];
        let rule = set.node_rule(f.node);

        if let Some(link) = &n.parent {
            let group: Vec<String> = link
                .group_from_child
                .iter()
                .map(|&i| f.group.get(i).cloned().unwrap_or_default())
                .collect();
            let value = (!link.value_from_child.is_empty()).then(|| {
                link.value_from_child
                    .iter()
                    .map(|&i| f.group.get(i).map(String::as_str).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\u{1f}")
            });
            let packed = Packed::build(Parts {
                agency: &f.agency,
                event_id: f.last.event_id(),
                original: f.last.packed.original(),
                entities: &f.last.entities(),
                group: &group,
            });
            stack.push(Item {
                ts: f.determined,
                ordinal: f.ordinal,
                node: link.node,
                key: key_of(&f.agency, &group),
                rules: 1 << link.ref_pos,
                distinct: value.map(|v| xxhash_rust::xxh3::xxh3_64(v.as_bytes())),
                number: None,
                packed,
            });
        }

        if !n.alerts {
            return;
        }
        let infos = cx.info;
        let info = &infos[f.node];
        let suppressed = match &info.suppress {
            None => 0,
            Some(policy) => {
                let ns = &mut self.nodes[f.node];
                let mut st = ns.suppress.get(&f.key).copied();
                let verdict = SuppressState::decide(&mut st, policy, f.determined);
                if let Some(st) = st {
                    ns.suppress.insert(f.key, st);
                }
                if ns.suppress.len() > ns.suppress_gc_at {
                    let now = self.settled;
                    ns.suppress.retain(|_, s| s.live(policy, now));
                    ns.suppress_gc_at = ns.suppress.len() * 2 + 1024;
                }
                match verdict {
                    Verdict::Suppress => {
                        cx.counters[f.node].suppressed += 1;
                        return;
                    }
                    Verdict::Send { suppressed } => suppressed,
                }
            }
        };

        let hop_us = n.hop_us;
        let mut alert = Alert::new(
            info.rule_info.clone(),
            &f.agency,
            from_micros(f.window.saturating_mul(hop_us)),
            from_micros((f.window + B).saturating_mul(hop_us)),
        );
        for (name, value) in rule.group_by.iter().zip(&f.group) {
            alert.group.insert(name.clone(), value.clone());
        }
        alert.refresh_id();
        alert.count = f.measure.count;
        alert.value = match rule.kind {
            crate::CorrelationType::EventCount => None,
            _ => f.measure.value,
        };
        alert.suppressed = suppressed;
        if f.first != 0 {
            match cx.journal.get(f.first) {
                Some(first) => {
                    if first.event_id() != f.last.event_id() {
                        alert.evidence.push(first.evidence());
                        first.entities().add_to(&mut alert.entities);
                    }
                }
                None => cx.counters[f.node].evidence_lost += 1,
            }
        }
        alert.evidence.push(f.last.evidence());
        f.last.entities().add_to(&mut alert.entities);

        if let Some(plan) = &self.rebuild {
            if f.determined < self.rebuild_until || plan.emitted.contains(&alert.id) {
                cx.counters[f.node].rebuild_skipped += 1;
                return;
            }
        }
        cx.counters[f.node].alerts += 1;
        cx.out.alerts.push(alert);
    }

    /// Drops all state (partition revoked, or the engine flushed).
    pub fn clear(&mut self, cx: &mut Ctx<'_>) {
        for (node, ns) in self.nodes.iter_mut().enumerate() {
            cx.keys_per_node[node] -= ns.keys.len();
            *cx.keys_total -= ns.keys.len();
            ns.keys.clear();
            ns.wheel.clear();
            ns.suppress.clear();
        }
        self.pending.clear();
        self.stray.clear();
        self.stray_sorted = true;
        self.next_timer = i64::MAX;
    }

    /// Evicts the key of `node` with the oldest registration (the least
    /// recently active); false if the node has no keys here.
    pub fn evict_oldest(&mut self, node: usize, cx: &mut Ctx<'_>) -> bool {
        let set = cx.set;
        let early = set.nodes()[node].early;
        let ns = &mut self.nodes[node];
        while let Some((hop, key)) = ns.wheel.pop_front_entry() {
            let Some(state) = ns.keys.get(&key) else {
                continue;
            };
            if due_hop(state, early) != hop {
                continue; // stale entry; the key is registered later
            }
            ns.keys.remove(&key);
            cx.keys_per_node[node] -= 1;
            *cx.keys_total -= 1;
            cx.counters[node].evictions += 1;
            return true;
        }
        false
    }

    /// Deadline (µs) of the oldest registration of `node`, if any.
    pub fn oldest_deadline(&self, node: usize, set: &CorrelationSet) -> Option<i64> {
        self.nodes[node]
            .wheel
            .next_hop()
            .map(|h| h.saturating_mul(set.nodes()[node].hop_us))
    }

    pub fn keys(&self) -> usize {
        self.nodes.iter().map(|n| n.keys.len()).sum()
    }

    pub fn wheel_entries(&self) -> usize {
        self.nodes.iter().map(|n| n.wheel.entries()).sum()
    }

    /// Rebuilds `next_timer` after nodes were moved in from a reload.
    pub fn refresh_timers(&mut self, set: &CorrelationSet) {
        let nodes = set.nodes();
        self.next_timer = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(n, ns)| {
                ns.wheel
                    .next_hop()
                    .map(|h| h.saturating_mul(nodes[n].hop_us))
            })
            .min()
            .unwrap_or(i64::MAX);
    }
}

/// The hop at which a key next needs a visit: for early-firing nodes when
/// its last event leaves the window span (expiry); for end-of-window nodes
/// the end of the next aligned window with events, else expiry.
pub(crate) fn due_hop(state: &KeyState, early: bool) -> i64 {
    if early {
        return state.last + B;
    }
    let next_eval = state
        .extra
        .as_ref()
        .and_then(|x| x.close.as_ref())
        .map_or(i64::MIN, |c| c.next_eval);
    match state.first_candidate(next_eval, state.last) {
        Some(h) => epoch(h) * B + B,
        None => state.last + B,
    }
}

/// Evaluates, in order, every aligned window of an end-of-window key that
/// ended at or before hop `d`. These windows are the timespan-aligned ones
/// (the "bins" of SIEM backends): a condition that more events could undo
/// is judged once, on a whole window, and every event belongs to exactly
/// one judged window.
fn evaluate_closed(
    state: &mut KeyState,
    d: i64,
    node: usize,
    key: Key,
    cx: &mut Ctx<'_>,
    firings: &mut Vec<Firing>,
) {
    let set = cx.set;
    let rule = set.node_rule(node);
    let hop_us = set.nodes()[node].hop_us;
    loop {
        let Some(close) = state.extra.as_ref().and_then(|x| x.close.as_ref()) else {
            return;
        };
        let Some(h) = state.first_candidate(close.next_eval, state.last) else {
            return;
        };
        let w = epoch(h) * B;
        if w + B > d {
            return;
        }
        let m = state.measure(w, rule.kind, rule.percentile);
        let first = state.opener_for(w);
        let Some(close) = state.extra.as_mut().and_then(|x| x.close.as_mut()) else {
            return;
        };
        close.next_eval = w + B;
        if m.value.is_some_and(|v| rule.condition.holds(v)) {
            state.fired_epoch = epoch(w);
            let Some(close) = state.extra.as_ref().and_then(|x| x.close.as_ref()) else {
                return;
            };
            firings.push(Firing {
                node,
                key,
                window: w,
                determined: (w + B).saturating_mul(hop_us) - 1,
                measure: m,
                first,
                last: close.last.clone(),
                ordinal: close.last.ordinal,
                agency: close.agency.clone(),
                group: close.group.clone(),
            });
        }
    }
}
