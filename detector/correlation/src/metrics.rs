//! Engine metrics as plain numbers; the detector service exports them to
//! Prometheus (`qalqan_detector_correlation_*`).

use chrono::{DateTime, Utc};

/// Cumulative counters of one correlation rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCounters {
    /// Alerts emitted.
    pub alerts: u64,
    /// Alerts withheld by suppression.
    pub suppressed: u64,
    /// Signals that arrived behind the settled horizon (reported in
    /// [`crate::Output::late`], not correlated).
    pub late_events: u64,
    /// Keys dropped because a state bound was reached.
    pub evictions: u64,
    /// Keys dropped because all their windows ended (normal).
    pub expired: u64,
    /// Signals whose aggregated field was missing or not a number.
    pub missing_values: u64,
    /// Distinct values or samples not kept because a key was full.
    pub value_overflows: u64,
    /// Alerts recomputed during a state rebuild and not emitted again.
    pub rebuild_skipped: u64,
    /// Alerts whose first-line evidence had left the evidence journal.
    pub evidence_lost: u64,
}

impl NodeCounters {
    pub(crate) fn add(&mut self, o: &NodeCounters) {
        self.alerts += o.alerts;
        self.suppressed += o.suppressed;
        self.late_events += o.late_events;
        self.evictions += o.evictions;
        self.expired += o.expired;
        self.missing_values += o.missing_values;
        self.value_overflows += o.value_overflows;
        self.rebuild_skipped += o.rebuild_skipped;
        self.evidence_lost += o.evidence_lost;
    }
}

/// Per correlation rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMetrics {
    pub rule_id: String,
    /// Group keys with live state (gauge).
    pub keys: u64,
    pub counters: NodeCounters,
}

/// Per input (partition and agency).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputMetrics {
    pub partition: i32,
    pub agency: String,
    /// Newest event time seen.
    pub watermark: Option<DateTime<Utc>>,
    /// Everything before this is final.
    pub settled: Option<DateTime<Utc>>,
    /// Signals waiting for the watermark.
    pub pending: usize,
    pub keys: u64,
}

/// A snapshot of everything the engine counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineMetrics {
    pub rules: Vec<RuleMetrics>,
    pub inputs: Vec<InputMetrics>,
    pub keys_total: u64,
    pub pending_total: u64,
    /// Signals whose correlation or group shape this rule set does not know.
    pub rejected_signals: u64,
    /// Signals processed early because an input's reorder buffer was full.
    pub forced_settles: u64,
    pub evidence_bytes: u64,
    pub evidence_records: u64,
    /// Evidence records dropped to stay within the budget.
    pub evidence_dropped: u64,
    /// Rough total of state memory (keys, timers, pending signals, evidence).
    pub state_bytes_estimate: u64,
}
