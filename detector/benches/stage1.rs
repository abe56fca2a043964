//! Stage 1 of the detector on one core, without Kafka: the CPU cost per
//! event of what the match thread does between polling a message and
//! handing its outputs to the producer.
//!
//! The service benchmark (`service`) measures the whole detector through
//! the real Kafka, where the broker, the transactions and the other stage
//! share the machine; this one isolates the detector's own work so a change
//! to it can be measured in minutes and on a busy machine (rates are per
//! CPU-second of this thread, not wall time). Same events and rules as
//! `service`: the loghub OpenSSH sample and the demo scenario, renumbered
//! like one collector's output, against the project's rule pack plus the
//! SigmaHQ linux, web and network rules.
//!
//! Three passes over `QALQAN_BENCH_EVENTS` (default 200,000) messages:
//! decoding only; decoding and Sigma evaluation; and the whole
//! stage — decode, evaluate, the stateful half (collector health,
//! suppression, alerts, signals), alerts written as JSON and signals encoded
//! into bundles, as the match thread does before producing them.

use std::sync::Arc;

use chrono::Utc;
use qalqan_core::event::now_micros;
use qalqan_core::parse::ParseOptions;
use qalqan_detector::config::TopicsSection;
use qalqan_detector::metrics::Metrics;
use qalqan_detector::pipeline::matcher::{MatchOutput, Matcher, MatcherSettings};
use qalqan_detector::pipeline::rules::LoadedRules;
use qalqan_detector::service::bundle::Bundler;
use qalqan_detector::service::decode::Decoder;
use qalqan_sigma::engine::Scratch;
use qalqan_testkit::bench::{resident_mb, thread_cpu};

mod common;

/// What the detector binary ships with, so the rates are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU time this thread has used (scheduler statistics).
/// Runs `pass` once and prints its rate per CPU-second of this thread.
fn timed<T>(label: &str, events: usize, pass: impl FnOnce() -> T) -> T {
    let start = thread_cpu();
    let out = pass();
    let cpu = (thread_cpu() - start).as_secs_f64();
    println!(
        "{label:<44} {:>9.0} events/s per core  {:>6.2} µs/event  (resident {} MB)",
        events as f64 / cpu,
        cpu * 1e6 / events as f64,
        resident_mb()
    );
    out
}

fn main() {
    let total: usize = std::env::var("QALQAN_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let topic = "qalqan.events.bench";

    let base = common::base_events();
    let t0 = now_micros() - chrono::Duration::hours(2);
    let wire: Vec<String> = (0..total)
        .map(|i| common::numbered(&base, i, t0).to_json_string())
        .collect();
    let wire_bytes: usize = wire.iter().map(String::len).sum();

    let rules = match LoadedRules::load(&common::rule_sources()) {
        Ok(r) => Arc::new(r),
        Err(e) => panic!("rules: {e:#}"),
    };
    let decoder = match Decoder::new(&TopicsSection::default(), ParseOptions::default()) {
        Ok(d) => d,
        Err(e) => panic!("decoder: {e:#}"),
    };
    assert!(decoder.reads(topic), "{topic} is not an event topic");
    println!(
        "stage 1 without Kafka: {total} events (avg {} B on the wire), {} Sigma rules, {} correlations",
        wire_bytes / total.max(1),
        rules.detection_loaded,
        rules.correlation_loaded
    );

    // Each pass decodes and drops one event at a time, as the service
    // does: holding every decoded event would measure page faults.
    let decode = |i: usize, w: &String| match decoder.decode(topic, 0, i as i64, Some(w.as_bytes()))
    {
        Ok(d) => d,
        Err(e) => panic!("a bench event did not decode: {}", e.reason),
    };
    timed("decode (JSON -> event, id)", total, || {
        for (i, w) in wire.iter().enumerate() {
            std::hint::black_box(decode(i, w));
        }
    });
    let mut scratch = Scratch::default();
    let matched = timed("decode + Sigma evaluation", total, || {
        wire.iter()
            .enumerate()
            .map(|(i, w)| {
                rules
                    .sigma
                    .evaluate_with(&decode(i, w).event, &mut scratch)
                    .len()
            })
            .sum::<usize>()
    });

    let metrics = Arc::new(Metrics::new());
    let mut matcher = Matcher::new(Arc::clone(&rules), &MatcherSettings::default(), metrics);
    let mut bundler = Bundler::new(6);
    let mut out = MatchOutput::default();
    let (mut alerts, mut alert_bytes, mut signals, mut bundles) = (0usize, 0usize, 0usize, 0usize);
    timed("whole stage (decode .. bundles and alerts)", total, || {
        for (i, w) in wire.iter().enumerate() {
            let d = decode(i, w);
            let matches = rules.sigma.evaluate_with(&d.event, &mut scratch);
            out.clear();
            matcher.process_evaluated(
                &d.agency,
                &d.event,
                &d.event_id,
                i as u64,
                &matches,
                &mut out,
            );
            for alert in out.alerts.drain(..) {
                alerts += 1;
                alert_bytes += alert.to_json_string().len();
            }
            let now_ms = Utc::now().timestamp_millis();
            for signal in out.signals.drain(..) {
                signals += 1;
                if let Some(full) = bundler.add(&signal, now_ms) {
                    bundles += 1;
                    bundler.recycle(full.payload);
                }
            }
        }
        bundles += bundler.drain().len();
    });
    println!(
        "{matched} Sigma matches; whole stage: {alerts} alerts ({} KB of JSON), {signals} signals in {bundles} bundles",
        alert_bytes / 1024
    );
}
