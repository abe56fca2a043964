//! Prometheus metrics of the detector (`qalqan_detector_` prefix, units in
//! names). One registry per process so tests can run several detectors.
//!
//! Label sets are bounded: agencies and collectors are operator-defined and
//! few; rule labels are capped at [`MAX_RULE_LABELS`] distinct rules, after
//! which matches are counted under `rule="other"`, so a corpus of 4,000
//! rules cannot blow up the time-series database.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// Distinct rule ids that get their own `rule` label value.
pub const MAX_RULE_LABELS: usize = 500;

/// Every metric the detector exports.
pub struct Metrics {
    pub registry: Registry,
    pub events_in: IntCounterVec,
    pub raw_parsed: IntCounterVec,
    pub rule_matches: IntCounterVec,
    pub alerts: IntCounterVec,
    pub alerts_suppressed: IntCounterVec,
    pub signals_out: IntCounter,
    pub signals_in: IntCounter,
    pub late_events: IntCounterVec,
    pub state_evictions: IntCounter,
    pub state_keys: IntGauge,
    pub consumer_lag: IntGaugeVec,
    pub aligned_held: IntGauge,
    pub aligned_pauses: IntCounter,
    pub detection_latency: Histogram,
    pub stage_latency: HistogramVec,
    pub clickhouse_rows: IntCounterVec,
    pub clickhouse_errors: IntCounterVec,
    pub deadletters: IntCounterVec,
    pub sequence_gaps: IntCounterVec,
    pub sequence_duplicates: IntCounterVec,
    pub collector_last_seen: GaugeVec,
    pub collector_stat: GaugeVec,
    pub agency_silent: IntGaugeVec,
    pub rules_loaded: IntGaugeVec,
    pub rule_reloads: IntCounterVec,
    pub build_info: IntGaugeVec,
    pub start_time: Gauge,
    rule_labels: Mutex<HashSet<String>>,
}

macro_rules! reg {
    ($r:expr, $m:expr) => {{
        let m = $m.unwrap_or_else(|e| unreachable!("metric definition is static and valid: {e}"));
        if let Err(e) = $r.register(Box::new(m.clone())) {
            tracing::error!("metric registration failed: {e}");
        }
        m
    }};
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(format!("qalqan_detector_{name}"), help)
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let latency_buckets = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ];
        let m = Metrics {
            events_in: reg!(r, IntCounterVec::new(opts("events_total", "Events read, by agency (from the topic name)."), &["agency"])),
            raw_parsed: reg!(r, IntCounterVec::new(opts("raw_parsed_total", "Raw third-party lines parsed, by parser."), &["parser"])),
            rule_matches: reg!(r, IntCounterVec::new(opts("rule_matches_total", "Detection rule matches, by rule id (capped label set)."), &["rule"])),
            alerts: reg!(r, IntCounterVec::new(opts("alerts_total", "Alerts produced, by level and agency."), &["level", "agency"])),
            alerts_suppressed: reg!(r, IntCounterVec::new(opts("alerts_suppressed_total", "Alerts silenced by suppression, by level."), &["level"])),
            signals_out: reg!(r, IntCounter::new("qalqan_detector_signals_produced_total", "Correlation signals produced by stage 1.")),
            signals_in: reg!(r, IntCounter::new("qalqan_detector_signals_consumed_total", "Correlation signals processed by stage 2.")),
            late_events: reg!(r, IntCounterVec::new(opts("late_events_total", "Signals later than watermark minus allowed lateness, by rule; reported, not silently lost."), &["rule"])),
            state_evictions: reg!(r, IntCounter::new("qalqan_detector_state_evictions_total", "Correlation keys evicted to respect state bounds.")),
            state_keys: reg!(r, IntGauge::new("qalqan_detector_state_keys", "Active correlation group keys held in memory.")),
            consumer_lag: reg!(r, IntGaugeVec::new(opts("consumer_lag_messages", "Messages between the committed position and the end of each partition."), &["group", "topic", "partition"])),
            aligned_held: reg!(r, IntGauge::new("qalqan_detector_align_held_events", "Events stage 1 holds to release each agency's events in event-time order across partitions.")),
            aligned_pauses: reg!(r, IntCounter::new("qalqan_detector_align_pauses_total", "Partitions stage 1 paused because the events it held reached detector.align_budget.")),
            detection_latency: reg!(r, Histogram::with_opts(HistogramOpts::new("qalqan_detector_detection_latency_seconds", "From event.ingested (collector receive) to alert produced.").buckets(latency_buckets.clone()))),
            stage_latency: reg!(r, HistogramVec::new(HistogramOpts::new("qalqan_detector_batch_seconds", "Time to process one batch, by stage.").buckets(latency_buckets), &["stage"])),
            clickhouse_rows: reg!(r, IntCounterVec::new(opts("clickhouse_rows_total", "Rows confirmed by ClickHouse, by table."), &["table"])),
            clickhouse_errors: reg!(r, IntCounterVec::new(opts("clickhouse_insert_errors_total", "Failed ClickHouse inserts (retried), by table."), &["table"])),
            deadletters: reg!(r, IntCounterVec::new(opts("deadletters_total", "Messages sent to the dead-letter topic, by reason."), &["reason"])),
            sequence_gaps: reg!(r, IntCounterVec::new(opts("collector_sequence_gaps_total", "Events a collector numbered that never arrived (lost logs)."), &["agency", "collector"])),
            sequence_duplicates: reg!(r, IntCounterVec::new(opts("collector_sequence_duplicates_total", "Events that arrived more than once (at-least-once redelivery)."), &["agency", "collector"])),
            collector_last_seen: reg!(r, GaugeVec::new(opts("collector_last_heartbeat_timestamp_seconds", "Unix time of the last heartbeat from each collector."), &["agency", "collector"])),
            collector_stat: reg!(r, GaugeVec::new(opts("collector_reported", "Counters a collector reported in its last heartbeat (buffer_bytes, udp_dropped, oldest_unsent_seconds, ...)."), &["agency", "collector", "stat"])),
            agency_silent: reg!(r, IntGaugeVec::new(opts("agency_silent", "1 while no collector of the agency has sent a heartbeat within the limit."), &["agency"])),
            rules_loaded: reg!(r, IntGaugeVec::new(opts("rules", "Rules in the active rule set, by state (loaded, rejected)."), &["state"])),
            rule_reloads: reg!(r, IntCounterVec::new(opts("rule_reloads_total", "Rule set reloads, by outcome (ok, failed)."), &["outcome"])),
            build_info: reg!(r, IntGaugeVec::new(opts("build_info", "Always 1; labels carry the version."), &["version"])),
            start_time: reg!(r, Gauge::new("qalqan_detector_start_time_seconds", "Unix time the process started.")),
            registry: r,
            rule_labels: Mutex::new(HashSet::new()),
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m.start_time.set(chrono::Utc::now().timestamp() as f64);
        m
    }

    /// Counts a match of `rule_id`, respecting the label cap.
    pub fn count_match(&self, rule_id: &str) {
        self.rule_match_counter(rule_id).inc();
    }

    /// The counter matches of `rule_id` go to, respecting the label cap.
    /// A rule keeps the counter it was first given (the label set only
    /// grows), so callers may keep it instead of looking it up per match.
    pub fn rule_match_counter(&self, rule_id: &str) -> IntCounter {
        let label = {
            let mut seen = self.rule_labels.lock().unwrap_or_else(|p| p.into_inner());
            if seen.contains(rule_id) {
                rule_id
            } else if seen.len() < MAX_RULE_LABELS {
                seen.insert(rule_id.to_owned());
                rule_id
            } else {
                "other"
            }
        };
        self.rule_matches.with_label_values(&[label])
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_labels_are_capped() {
        let m = Metrics::new();
        for i in 0..(MAX_RULE_LABELS + 10) {
            m.count_match(&format!("rule-{i}"));
        }
        m.count_match("rule-0");
        assert_eq!(m.rule_matches.with_label_values(&["other"]).get(), 10);
        assert_eq!(m.rule_matches.with_label_values(&["rule-0"]).get(), 2);
        let families = m.registry.gather();
        assert!(families
            .iter()
            .all(|f| f.name().starts_with("qalqan_detector_")));
    }
}
