//! Stage 2: correlation signals in, correlation alerts out.
//!
//! A thin wrapper over `qalqan_correlation::Engine` that exports the
//! engine's counters as Prometheus metrics and reports late signals, so
//! that nothing late is silently lost: each one is counted per rule and
//! logged with its rule, key and how late it was.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use qalqan_core::Alert;
use qalqan_correlation::{CorrelationSet, Engine, EngineConfig, Output, Signal};

use crate::metrics::Metrics;

/// Stage 2 worker: owns the keyed state of the partitions it is given.
pub struct Correlator {
    engine: Engine,
    out: Output,
    metrics: Arc<Metrics>,
    /// Engine counters already exported, to turn totals into increments.
    exported_evictions: u64,
    /// Late signals not yet mentioned in the log, and when it last was.
    late_unlogged: u64,
    late_logged_at: Instant,
}

impl Correlator {
    pub fn new(
        set: Arc<CorrelationSet>,
        config: EngineConfig,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Correlator> {
        let engine = Engine::new(set, config).map_err(|errors| {
            let lines: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: rule {}: {}", e.file, e.rule, e.reason))
                .collect();
            anyhow::anyhow!(
                "correlation rules rejected by the engine:\n  {}",
                lines.join("\n  ")
            )
        })?;
        Ok(Correlator {
            engine,
            out: Output::default(),
            metrics,
            exported_evictions: 0,
            late_unlogged: 0,
            late_logged_at: Instant::now()
                .checked_sub(std::time::Duration::from_secs(2))
                .unwrap_or_else(Instant::now),
        })
    }

    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Processes one signal from `partition` (0 in standalone mode) and
    /// appends the alerts that became final.
    pub fn process(&mut self, partition: i32, signal: Signal, alerts: &mut Vec<Alert>) {
        self.metrics.signals_in.inc();
        self.engine.process(partition, &signal, &mut self.out);
        self.drain(alerts);
    }

    /// Advances idle inputs with the wall clock (call every ~100 ms).
    pub fn tick(&mut self, alerts: &mut Vec<Alert>) {
        self.engine.tick(Instant::now(), &mut self.out);
        self.drain(alerts);
        self.export_state_metrics();
    }

    /// End of input: closes every window (replays and tests).
    pub fn flush(&mut self, alerts: &mut Vec<Alert>) {
        self.engine.flush(&mut self.out);
        self.drain(alerts);
        self.export_state_metrics();
    }

    /// Swaps in a new correlation rule set; state of unchanged rules survives.
    pub fn replace_rules(&mut self, set: Arc<CorrelationSet>) -> anyhow::Result<()> {
        self.engine.replace_rules(set).map_err(|errors| {
            let lines: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: rule {}: {}", e.file, e.rule, e.reason))
                .collect();
            anyhow::anyhow!("new correlation rules rejected:\n  {}", lines.join("\n  "))
        })
    }

    fn drain(&mut self, alerts: &mut Vec<Alert>) {
        // Most signals finish no alert: the clock is read only when one does.
        if !self.out.alerts.is_empty() {
            let now = Utc::now();
            for a in self.out.alerts.drain(..) {
                self.metrics
                    .alerts
                    .with_label_values(&[a.rule.level.as_str(), a.agency.as_str()])
                    .inc();
                let latency =
                    (now - a.window_end).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
                // Correlation alerts are final `allowed_lateness` after their last
                // event; measured against event time, as the analyst sees it.
                self.metrics
                    .stage_latency
                    .with_label_values(&["correlate_event_to_alert"])
                    .observe(latency);
                alerts.push(a);
            }
        }
        for late in self.out.late.drain(..) {
            self.metrics
                .late_events
                .with_label_values(&[late.signal.correlation.as_str()])
                .inc();
            // A replay or a lagging partition can make thousands late at
            // once: log one line per second with the number since the last.
            self.late_unlogged += 1;
            if self.late_logged_at.elapsed() >= std::time::Duration::from_secs(1) {
                tracing::warn!(
                    late_signals = self.late_unlogged,
                    rule = %late.signal.correlation,
                    agency = %late.signal.agency,
                    event_time = %late.signal.timestamp,
                    horizon = %late.horizon,
                    event_id = %late.signal.event_id,
                    "late signals: older than their input's settled horizon; counted in qalqan_detector_late_events_total, not correlated (this one is an example)"
                );
                self.late_unlogged = 0;
                self.late_logged_at = Instant::now();
            }
        }
        for rejected in self.out.rejected.drain(..) {
            self.metrics
                .deadletters
                .with_label_values(&["signal_rejected"])
                .inc();
            tracing::warn!(rule = %rejected.signal.correlation, reason = %rejected.reason, "signal rejected by the correlation engine");
        }
        self.out.clear();
    }

    /// Engine gauges and counters into Prometheus. Building the snapshot
    /// walks every rule, so it runs on ticks, not per signal.
    fn export_state_metrics(&mut self) {
        let m = self.engine.metrics();
        self.metrics.state_keys.set(m.keys_total as i64);
        let evictions: u64 = m.rules.iter().map(|r| r.counters.evictions).sum();
        if evictions > self.exported_evictions {
            self.metrics
                .state_evictions
                .inc_by(evictions - self.exported_evictions);
            self.exported_evictions = evictions;
        }
    }
}
