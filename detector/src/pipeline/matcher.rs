//! Stage 1: Sigma matching on one event at a time.
//!
//! For each event (agency given by the transport, never read from the
//! body) the matcher
//! 1. accounts for collector health: heartbeats update the per-collector
//!    view and are not matched against rules; `observer.sequence` feeds the
//!    loss counter;
//! 2. evaluates the Sigma rules routed to the event's logsource;
//! 3. turns matches of rules that alert on their own into single-event
//!    alerts (subject to suppression), and matches of rules referenced by
//!    correlations into signals for stage 2.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use qalqan_core::alert::{Alert, Evidence};
use qalqan_core::Event;
use qalqan_correlation::set::MatchedEvent;
use qalqan_correlation::{Signal, SuppressPolicy};
use qalqan_sigma::engine::{Matches, Scratch, DEFAULT_LEVEL};
use qalqan_sigma::RuleIdx;

use crate::health::{is_heartbeat, HeartbeatTracker, SequenceTracker};
use crate::metrics::Metrics;
use crate::pipeline::rules::LoadedRules;

/// Raw lines kept as evidence in a single-event alert, at most.
const MAX_EVIDENCE_BYTES: usize = 8 * 1024;
/// Suppression keys kept before old periods are forgotten.
const MAX_SUPPRESSION_KEYS: usize = 1_000_000;

/// What one event produced.
#[derive(Debug, Default)]
pub struct MatchOutput {
    pub alerts: Vec<Alert>,
    pub signals: Vec<Signal>,
}

impl MatchOutput {
    pub fn clear(&mut self) {
        self.alerts.clear();
        self.signals.clear();
    }
}

/// Stage 1 worker. One per thread; the rule set is shared.
pub struct Matcher {
    rules: Arc<LoadedRules>,
    scratch: Scratch,
    suppressor: DetectionSuppressor,
    pub heartbeats: HeartbeatTracker,
    pub sequences: SequenceTracker,
    metrics: Arc<Metrics>,
    /// `events_total` per agency.
    events_in: LabelCounters,
    /// `alerts_suppressed_total` per level: under a flood most single-event
    /// matches are suppressed.
    suppressed: LabelCounters,
    /// `rule_matches_total` per rule index of the current rule set, looked
    /// up on a rule's first match instead of on every match.
    rule_matches: Vec<Option<prometheus::IntCounter>>,
}

/// Settings of stage 1.
#[derive(Debug, Clone)]
pub struct MatcherSettings {
    /// Default suppression of single-event alerts, per rule, agency and
    /// primary entity (source address, else user, else host). A rule's own
    /// `qalqan.suppress` attribute overrides it.
    pub suppress: Option<SuppressPolicy>,
    pub silence_after: std::time::Duration,
    pub reorder_window: u64,
}

impl Default for MatcherSettings {
    fn default() -> Self {
        MatcherSettings {
            suppress: Some(SuppressPolicy {
                first: 1,
                period: std::time::Duration::from_secs(300),
            }),
            silence_after: std::time::Duration::from_secs(300),
            reorder_window: 100_000,
        }
    }
}

impl Matcher {
    pub fn new(
        rules: Arc<LoadedRules>,
        settings: &MatcherSettings,
        metrics: Arc<Metrics>,
    ) -> Matcher {
        Matcher {
            suppressor: DetectionSuppressor::new(&rules, settings.suppress),
            rules,
            scratch: Scratch::new(),
            heartbeats: HeartbeatTracker::new(settings.silence_after),
            sequences: SequenceTracker::new(settings.reorder_window),
            metrics,
            events_in: LabelCounters::default(),
            suppressed: LabelCounters::default(),
            rule_matches: Vec::new(),
        }
    }

    /// Swaps in a new rule set (hot reload). Suppression state is kept for
    /// rules whose id is unchanged.
    pub fn replace_rules(&mut self, rules: Arc<LoadedRules>, settings: &MatcherSettings) {
        self.suppressor.reconfigure(&rules, settings.suppress);
        self.rules = rules;
        self.rule_matches.clear();
    }

    pub fn rules(&self) -> &Arc<LoadedRules> {
        &self.rules
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Processes one event of `agency`. `event_id` identifies the event
    /// (its `event.id`, or one derived from its position); `ordinal` is its
    /// position in its source, used to order simultaneous events.
    pub fn process(
        &mut self,
        agency: &str,
        event: &Event,
        event_id: &str,
        ordinal: u64,
        out: &mut MatchOutput,
    ) {
        let matches = if is_heartbeat(event) {
            Matches::new()
        } else {
            self.rules.sigma.evaluate_with(event, &mut self.scratch)
        };
        self.process_evaluated(agency, event, event_id, ordinal, &matches, out);
    }

    /// [`Matcher::process`] for an event whose Sigma matches were found
    /// elsewhere (stage 1's worker threads) with this matcher's rule set,
    /// [`Matcher::rules`]: everything that keeps state happens here, in
    /// event order.
    pub fn process_evaluated(
        &mut self,
        agency: &str,
        event: &Event,
        event_id: &str,
        ordinal: u64,
        matches: &[RuleIdx],
        out: &mut MatchOutput,
    ) {
        self.events_in.inc(&self.metrics.events_in, agency);
        if is_heartbeat(event) {
            self.observe_heartbeat(agency, event);
            return;
        }
        if let (Some(collector), Some(seq)) = (
            event.get_str("observer.name"),
            event
                .fields
                .get("observer.sequence")
                .and_then(|v| v.as_i64()),
        ) {
            let obs = self.sequences.observe(collector, seq.max(0) as u64);
            if obs.new_gaps > 0 {
                self.metrics
                    .sequence_gaps
                    .with_label_values(&[agency, collector])
                    .inc_by(obs.new_gaps);
            }
            if obs.duplicate {
                self.metrics
                    .sequence_duplicates
                    .with_label_values(&[agency, collector])
                    .inc();
            }
        }
        let rules = Arc::clone(&self.rules);
        if matches.is_empty() {
            return;
        }
        let mut correlated: Vec<&str> = Vec::new();
        for &idx in matches.iter() {
            let entry = rules.sigma.rule(idx);
            let id = entry
                .meta
                .id
                .as_deref()
                .unwrap_or(entry.meta.title.as_str());
            self.count_match(idx, id);
            if rules.correlations.is_referenced(id) {
                correlated.push(id);
            }
            if !rules.correlations.emits_own_alerts(id) {
                continue;
            }
            let entity = primary_entity(event);
            let Some(decision) =
                self.suppressor
                    .decide(idx_key(idx), agency, entity, event.timestamp)
            else {
                let level = entry.meta.level.as_deref().unwrap_or(DEFAULT_LEVEL);
                self.suppressed.inc(&self.metrics.alerts_suppressed, level);
                continue;
            };
            // Built only for alerts that are raised: it copies every
            // descriptive attribute of the rule.
            let info = entry.rule_info();
            let mut alert = Alert::new(info, agency, event.timestamp, event.timestamp);
            match decision.slot {
                // Under suppression the alert stands for "the n-th alert of
                // this rule for this entity in this period": its id does not
                // depend on which event came first, so a replay after a crash
                // or on another instance gives the same id.
                Some((period_start, n)) => {
                    alert.group.insert("entity".into(), entity.to_owned());
                    alert.group.insert(
                        "suppress.period".into(),
                        qalqan_core::event::format_ts(&period_start),
                    );
                    alert.group.insert("suppress.slot".into(), n.to_string());
                    let mut key = alert.group.clone();
                    key.insert("\u{0}agency".into(), alert.agency.clone());
                    alert.id = qalqan_core::alert::alert_id(&alert.rule.id, &key, &period_start);
                    // The window starts with the period, so a replay in
                    // which another event of the period comes first gives
                    // the same id *and* the same time: ClickHouse's
                    // ReplacingMergeTree, keyed by (agency, time, id),
                    // then collapses the two. The event's own time stays
                    // in `window_end` and the evidence.
                    alert.window_start = period_start.min(event.timestamp);
                }
                None => {
                    alert.group.insert("event.id".into(), event_id.to_owned());
                    alert.refresh_id();
                }
            }
            let suppressed = decision.carry;
            alert.entities.absorb(event);
            alert.suppressed = suppressed;
            alert.evidence.push(Evidence {
                event_id: event_id.to_owned(),
                timestamp: event.timestamp,
                original: clip(&event.original, MAX_EVIDENCE_BYTES),
            });
            self.record_alert(&alert, event.ingested);
            out.alerts.push(alert);
        }
        if !correlated.is_empty() {
            let before = out.signals.len();
            rules.correlations.signals(
                MatchedEvent {
                    event,
                    agency,
                    event_id,
                    ordinal,
                },
                &correlated,
                &mut out.signals,
            );
            self.metrics
                .signals_out
                .inc_by((out.signals.len() - before) as u64);
        }
    }

    fn count_match(&mut self, idx: RuleIdx, id: &str) {
        let i = idx as usize;
        if self.rule_matches.len() <= i {
            self.rule_matches.resize(i + 1, None);
        }
        let metrics = &self.metrics;
        self.rule_matches[i]
            .get_or_insert_with(|| metrics.rule_match_counter(id))
            .inc();
    }

    fn record_alert(&self, alert: &Alert, ingested: DateTime<Utc>) {
        self.metrics
            .alerts
            .with_label_values(&[alert.rule.level.as_str(), alert.agency.as_str()])
            .inc();
        let latency = (Utc::now() - ingested)
            .num_microseconds()
            .unwrap_or(0)
            .max(0) as f64
            / 1e6;
        self.metrics.detection_latency.observe(latency);
    }

    fn observe_heartbeat(&mut self, agency: &str, event: &Event) {
        let now = Utc::now();
        let Some(h) = self.heartbeats.observe(agency, event, now).cloned() else {
            return;
        };
        let labels = [h.agency.as_str(), h.collector.as_str()];
        self.metrics
            .collector_last_seen
            .with_label_values(&labels)
            .set(now.timestamp() as f64);
        for (stat, value) in &h.counters {
            self.metrics
                .collector_stat
                .with_label_values(&[h.agency.as_str(), h.collector.as_str(), stat.as_str()])
                .set(*value);
        }
        self.metrics
            .agency_silent
            .with_label_values(&[agency])
            .set(0);
        if h.last_sequence > 0 {
            let gaps = self.sequences.settle(&h.collector, h.last_sequence);
            if gaps > 0 {
                self.metrics
                    .sequence_gaps
                    .with_label_values(&labels)
                    .inc_by(gaps);
            }
        }
    }

    /// Alerts for agencies whose collectors fell silent (call periodically).
    pub fn check_silence(&mut self, now: DateTime<Utc>) -> Vec<Alert> {
        let alerts = self.heartbeats.check(now);
        for a in &alerts {
            self.metrics
                .agency_silent
                .with_label_values(&[a.agency.as_str()])
                .set(1);
            self.metrics
                .alerts
                .with_label_values(&[a.rule.level.as_str(), a.agency.as_str()])
                .inc();
        }
        alerts
    }
}

/// Counters of a one-label metric, each looked up once per label value
/// instead of hashing the label on every increment. Label sets here are
/// small (agencies, levels), so a list beats a map.
#[derive(Default)]
struct LabelCounters(Vec<(String, prometheus::IntCounter)>);

impl LabelCounters {
    fn inc(&mut self, metric: &prometheus::IntCounterVec, label: &str) {
        match self.0.iter().find(|(l, _)| l == label) {
            Some((_, counter)) => counter.inc(),
            None => {
                let counter = metric.with_label_values(&[label]);
                counter.inc();
                self.0.push((label.to_owned(), counter));
            }
        }
    }
}

fn idx_key(idx: qalqan_sigma::RuleIdx) -> usize {
    idx as usize
}

/// The entity single-event suppression is keyed by.
fn primary_entity(event: &Event) -> &str {
    event
        .get_str("source.ip")
        .or_else(|| event.get_str("user.name"))
        .or_else(|| event.get_str("host.name"))
        .unwrap_or("")
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// "First N per period, then silence", for single-event alerts, with the
/// same event-time-aligned periods as correlation suppression (see
/// `qalqan_correlation::suppress`), so replays suppress identically.
struct DetectionSuppressor {
    /// Per rule index: its policy (rule attribute, else the default).
    policies: Vec<Option<SuppressPolicy>>,
    /// By rule id rather than index, so state survives a reload.
    ids: Vec<String>,
    state: HashMap<(String, String, String), PeriodState>,
}

#[derive(Debug, Clone, Copy)]
struct PeriodState {
    period: i64,
    sent: u32,
    silenced: u64,
    carry: u64,
}

impl DetectionSuppressor {
    fn new(rules: &LoadedRules, default: Option<SuppressPolicy>) -> Self {
        let mut s = DetectionSuppressor {
            policies: Vec::new(),
            ids: Vec::new(),
            state: HashMap::new(),
        };
        s.reconfigure(rules, default);
        s
    }

    fn reconfigure(&mut self, rules: &LoadedRules, default: Option<SuppressPolicy>) {
        self.policies.clear();
        self.ids.clear();
        for entry in rules.sigma.rules() {
            self.ids.push(
                entry
                    .meta
                    .id
                    .clone()
                    .unwrap_or_else(|| entry.meta.title.clone()),
            );
            self.policies
                .push(rule_policy(&entry.meta.custom).unwrap_or(default));
        }
    }

    /// `Some` to send (with the count carried from the previous period),
    /// `None` to suppress.
    fn decide(
        &mut self,
        rule: usize,
        agency: &str,
        entity: &str,
        at: DateTime<Utc>,
    ) -> Option<Decision> {
        let Some(Some(policy)) = self.policies.get(rule).copied() else {
            return Some(Decision {
                carry: 0,
                slot: None,
            });
        };
        let len = i64::try_from(policy.period.as_micros())
            .unwrap_or(i64::MAX)
            .max(1);
        let period = at.timestamp_micros().div_euclid(len);
        if self.state.len() >= MAX_SUPPRESSION_KEYS {
            // Bounded state: forget keys whose periods cannot matter any more.
            self.state.retain(|_, s| s.period + 1 >= period);
            if self.state.len() >= MAX_SUPPRESSION_KEYS {
                self.state.clear();
            }
        }
        let key = (self.ids[rule].clone(), agency.to_owned(), entity.to_owned());
        let s = self.state.entry(key).or_insert(PeriodState {
            period,
            sent: 0,
            silenced: 0,
            carry: 0,
        });
        if s.period != period {
            s.carry = if period == s.period + 1 {
                s.silenced
            } else {
                0
            };
            s.period = period;
            s.sent = 0;
            s.silenced = 0;
        }
        if s.sent < policy.first {
            s.sent += 1;
            let start =
                DateTime::<Utc>::from_timestamp_micros(period.saturating_mul(len)).unwrap_or(at);
            Some(Decision {
                carry: std::mem::take(&mut s.carry),
                slot: Some((start, s.sent)),
            })
        } else {
            s.silenced += 1;
            None
        }
    }
}

/// A suppressor's verdict for an alert it lets through.
struct Decision {
    /// Alerts silenced in the previous period, carried on this one.
    carry: u64,
    /// The period's start and which of its first N alerts this is; `None`
    /// when the rule is not suppressed.
    slot: Option<(DateTime<Utc>, u32)>,
}

/// A rule's own `qalqan: {suppress: ...}` setting: `Some(None)` for `off`,
/// `Some(Some(policy))` for a policy, `None` when the rule says nothing.
fn rule_policy(custom: &serde_yaml::Mapping) -> Option<Option<SuppressPolicy>> {
    let q = custom.get("qalqan")?;
    let s = q.get("suppress")?;
    match s {
        serde_yaml::Value::Bool(false) => Some(None),
        serde_yaml::Value::String(t) if t == "off" => Some(None),
        other => serde_yaml::from_value::<SuppressPolicy>(other.clone())
            .ok()
            .map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::rules::RuleSources;
    use qalqan_core::parse::Parser;

    const RULE: &str = r#"
title: Scanner user agent
id: 0d2c1b7e-0000-4000-8000-000000000001
author: test
level: medium
tags: [attack.reconnaissance, attack.t1595.002]
logsource: {category: webserver}
detection:
  sel:
    user_agent.original|contains: nikto
  condition: sel
"#;

    fn rules(extra: &str) -> Arc<LoadedRules> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("qalqan-matcher-{}-{n}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        std::fs::write(dir.join("r.yml"), format!("{RULE}{extra}")).expect("write rule");
        let loaded = LoadedRules::load(&RuleSources {
            paths: vec![dir.clone()],
            pipelines: vec![],
            ..RuleSources::default()
        })
        .expect("loads");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        Arc::new(loaded)
    }

    fn web(ip: &str, ua: &str, secs: i64) -> Event {
        let line = format!(
            "{ip} - - [27/Nov/2026:05:00:{secs:02} +0000] \"GET / HTTP/1.1\" 404 10 \"-\" \"{ua}\""
        );
        Parser::default().parse(line.as_bytes(), Utc::now()).event
    }

    #[test]
    fn single_event_alerts_are_suppressed_per_entity_and_carry_the_count() {
        let metrics = Arc::new(Metrics::new());
        let mut m = Matcher::new(rules(""), &MatcherSettings::default(), Arc::clone(&metrics));
        let mut out = MatchOutput::default();
        for i in 0..5 {
            m.process(
                "mof",
                &web("203.0.113.5", "Nikto/2.5", i),
                &format!("e{i}"),
                i as u64,
                &mut out,
            );
        }
        m.process(
            "mof",
            &web("203.0.113.6", "Nikto/2.5", 9),
            "e9",
            9,
            &mut out,
        );
        m.process(
            "mof",
            &web("203.0.113.6", "Mozilla/5.0", 9),
            "e10",
            10,
            &mut out,
        );
        assert_eq!(
            out.alerts.len(),
            2,
            "one per source address within the period"
        );
        let a = &out.alerts[0];
        assert_eq!(a.agency, "mof");
        assert_eq!(a.rule.author, "test");
        assert_eq!(a.entities.source_ips, vec!["203.0.113.5".to_string()]);
        assert_eq!(a.evidence.len(), 1);
        assert!(out.signals.is_empty());
        // The four later matches of the first address are counted as
        // suppressed under the rule's level, and nothing under another.
        let suppressed = |level: &str| metrics.alerts_suppressed.with_label_values(&[level]).get();
        assert_eq!(suppressed("medium"), 4);
        assert_eq!(suppressed("high"), 0);
    }

    #[test]
    fn suppressed_alert_ids_do_not_depend_on_which_event_came_first() {
        // A replay after a crash (or another instance) starts mid-period:
        // the alert it sends must carry the id the first run gave.
        let mut full = Matcher::new(
            rules(""),
            &MatcherSettings::default(),
            Arc::new(Metrics::new()),
        );
        let mut resumed = Matcher::new(
            rules(""),
            &MatcherSettings::default(),
            Arc::new(Metrics::new()),
        );
        let (mut a, mut b) = (MatchOutput::default(), MatchOutput::default());
        for i in 0..6 {
            let ev = web("203.0.113.5", "Nikto/2.5", i);
            full.process("mof", &ev, &format!("e{i}"), i as u64, &mut a);
            if i >= 3 {
                resumed.process("mof", &ev, &format!("e{i}"), i as u64, &mut b);
            }
        }
        assert_eq!(a.alerts.len(), 1);
        assert_eq!(b.alerts.len(), 1);
        assert_eq!(a.alerts[0].id, b.alerts[0].id);
        assert_ne!(
            a.alerts[0].evidence[0].event_id,
            b.alerts[0].evidence[0].event_id
        );
        assert_eq!(
            a.alerts[0].group.get("entity").map(String::as_str),
            Some("203.0.113.5")
        );
    }

    #[test]
    fn alert_ids_are_deterministic_and_agency_scoped() {
        let settings = MatcherSettings {
            suppress: None,
            ..MatcherSettings::default()
        };
        let ev = web("203.0.113.5", "Nikto", 1);
        let mut ids = Vec::new();
        for agency in ["mof", "mof", "moh"] {
            let mut m = Matcher::new(rules(""), &settings, Arc::new(Metrics::new()));
            let mut out = MatchOutput::default();
            m.process(agency, &ev, "e1", 1, &mut out);
            ids.push(out.alerts[0].id.clone());
        }
        assert_eq!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[2]);
    }

    #[test]
    fn rule_attribute_overrides_default_suppression() {
        let extra = "qalqan:\n  suppress: off\n";
        let mut m = Matcher::new(
            rules(extra),
            &MatcherSettings::default(),
            Arc::new(Metrics::new()),
        );
        let mut out = MatchOutput::default();
        for i in 0..3 {
            m.process(
                "mof",
                &web("203.0.113.5", "Nikto", i),
                &format!("e{i}"),
                i as u64,
                &mut out,
            );
        }
        assert_eq!(out.alerts.len(), 3);
    }

    #[test]
    fn heartbeats_are_not_matched_and_gaps_are_counted() {
        let metrics = Arc::new(Metrics::new());
        let mut m = Matcher::new(
            rules(""),
            &MatcherSettings {
                reorder_window: 2,
                ..Default::default()
            },
            Arc::clone(&metrics),
        );
        let mut out = MatchOutput::default();
        for seq in [1i64, 2, 3, 6, 7, 8, 9] {
            let mut e = web("203.0.113.5", "Mozilla", 1);
            e.fields.insert("observer.name", "c1");
            e.fields
                .insert("observer.sequence", qalqan_core::Value::Int(seq));
            m.process("mof", &e, "x", seq as u64, &mut out);
        }
        assert_eq!(
            metrics
                .sequence_gaps
                .with_label_values(&["mof", "c1"])
                .get(),
            2
        );
        let mut hb = Event::new(String::new(), Utc::now());
        hb.fields
            .insert("event.dataset", crate::health::heartbeat::HEARTBEAT_DATASET);
        hb.fields.insert("observer.name", "c1");
        hb.fields.insert("user_agent.original", "nikto");
        m.process("mof", &hb, "hb", 0, &mut out);
        assert!(out.alerts.is_empty());
        assert!(
            metrics
                .collector_last_seen
                .with_label_values(&["mof", "c1"])
                .get()
                > 0.0
        );
    }
}
