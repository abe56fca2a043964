//! Bounded state, eviction, suppression and hot reload.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use qalqan_correlation::{Engine, EngineConfig, Output, SuppressPolicy};

const BASE: &[(&str, Option<&str>)] = &[("r1", None), ("r2", None)];

fn count_rule(id: &str, gte: u32, extra: &str) -> String {
    format!(
        "title: {id}\nid: {id}\n{extra}correlation: {{type: event_count, rules: [r1], \
         group-by: [source.ip], timespan: 60s, condition: {{gte: {gte}}}}}\n"
    )
}

#[test]
fn eviction_drops_the_least_recently_active_keys() {
    let set = set(&count_rule("c1", 2, ""), BASE);
    let cfg = EngineConfig {
        max_keys_per_rule: 100,
        allowed_lateness: Duration::ZERO,
        ..EngineConfig::default()
    };
    let mut e = engine(&set, cfg);
    let mut out = Output::default();
    // 1000 keys, one event each, spread over 50 s (oldest first).
    for k in 0..1000 {
        let t = f64::from(k) * 0.05;
        e.process(
            0,
            &sig("c1", "r1", &[&format!("k{k}")], t).build(),
            &mut out,
        );
    }
    let m = e.metrics();
    assert!(m.keys_total <= 100, "{} keys", m.keys_total);
    assert!(m.rules[0].counters.evictions >= 900);
    // The newest key still has its state and fires on its second event;
    // the oldest was evicted, so its second event starts over.
    e.process(0, &sig("c1", "r1", &["k999"], 50.0).build(), &mut out);
    e.process(0, &sig("c1", "r1", &["k0"], 50.1).build(), &mut out);
    e.flush(&mut out);
    let fired: Vec<_> = out
        .alerts
        .iter()
        .map(|a| a.group["source.ip"].clone())
        .collect();
    assert_eq!(fired, vec!["k999"]);
}

#[test]
fn the_total_bound_spans_rules() {
    let set = set(
        &format!(
            "{}---\n{}",
            count_rule("c1", 2, ""),
            count_rule("c2", 2, "")
        ),
        BASE,
    );
    let cfg = EngineConfig {
        max_keys_total: 50,
        allowed_lateness: Duration::ZERO,
        ..EngineConfig::default()
    };
    let mut e = engine(&set, cfg);
    let mut out = Output::default();
    for k in 0..200 {
        let t = f64::from(k) * 0.1;
        let c = if k % 2 == 0 { "c1" } else { "c2" };
        e.process(0, &sig(c, "r1", &[&format!("k{k}")], t).build(), &mut out);
    }
    let m = e.metrics();
    assert!(m.keys_total <= 50, "{}", m.keys_total);
    let evictions: u64 = m.rules.iter().map(|r| r.counters.evictions).sum();
    // 199 keys were admitted (the last signal waits for a later one).
    assert_eq!(evictions + m.keys_total, 199);
    assert!(
        m.rules.iter().all(|r| r.keys > 0),
        "both rules keep recent keys"
    );
}

#[test]
fn expired_windows_free_their_keys() {
    let set = set(&count_rule("c1", 5, ""), BASE);
    let mut e = engine(&set, cfg_lateness(0));
    let mut out = Output::default();
    for k in 0..100 {
        e.process(
            0,
            &sig("c1", "r1", &[&format!("k{k}")], 1.0).build(),
            &mut out,
        );
    }
    // Events at the watermark itself wait: another one with the same time
    // may still come. A later event settles them.
    assert_eq!(e.metrics().keys_total, 0);
    e.process(0, &sig("c1", "r1", &["other"], 2.0).build(), &mut out);
    assert_eq!(e.metrics().keys_total, 100);
    // Once the watermark is a full timespan past their last event, keys go.
    e.process(0, &sig("c1", "r1", &["late-key"], 200.0).build(), &mut out);
    let m = e.metrics();
    assert_eq!(m.keys_total, 0, "late-key itself still waits");
    assert_eq!(m.rules[0].counters.expired, 101);
    assert_eq!(m.pending_total, 1);
    assert!(m.state_bytes_estimate > 0);
}

#[test]
fn value_bounds_are_enforced_and_counted() {
    let yaml = "title: p\nid: p\ncorrelation: {type: value_percentile, rules: [r1], group-by: [host.name], \
                timespan: 60s, condition: {field: d, percentile: 50, gt: 100}}\n";
    let set = set(yaml, BASE);
    let cfg = EngineConfig {
        max_values_per_key: 10,
        allowed_lateness: Duration::ZERO,
        ..EngineConfig::default()
    };
    let mut e = engine(&set, cfg.clone());
    let signals: Vec<_> = (0..15)
        .map(|i| {
            sig("p", "r1", &["h"], f64::from(i))
                .number(f64::from(i))
                .build()
        })
        .collect();
    run(&mut e, signals);
    assert_eq!(e.metrics().rules[0].counters.value_overflows, 5);

    // A value_count threshold the bound cannot reach is refused up front.
    let vc = set_of(
        "title: v\nid: v\ncorrelation: {type: value_count, rules: [r1], group-by: [source.ip], \
                timespan: 60s, condition: {field: user.name, gte: 10}}\n",
    );
    let err = Engine::new(vc, cfg).err().expect("refused");
    assert!(err[0].reason.contains("max_values_per_key"), "{}", err[0]);
}

fn set_of(yaml: &str) -> Arc<qalqan_correlation::CorrelationSet> {
    set(yaml, BASE)
}

/// One firing per aligned minute: an event per second for `minutes`.
fn steady(corr: &str, minutes: u32, from: f64) -> Vec<qalqan_correlation::Signal> {
    (0..minutes * 60)
        .map(|t| sig(corr, "r1", &["A"], from + f64::from(t)).build())
        .collect()
}

#[test]
fn suppression_sends_the_first_then_carries_the_count() {
    let set = set(
        &count_rule("c1", 5, "qalqan: {suppress: {first: 2, for: 1h}}\n"),
        BASE,
    );
    let mut signals = steady("c1", 10, 0.0);
    signals.extend(steady("c1", 1, 3600.0));
    let mut e = engine(&set, cfg_lateness(0));
    let out = run(&mut e, signals);
    let summary: Vec<_> = out
        .alerts
        .iter()
        .map(|a| (a.window_start, a.suppressed))
        .collect();
    assert_eq!(
        summary,
        vec![(at(0.0), 0), (at(60.0), 0), (at(3600.0), 8)],
        "two sent, eight silenced, the next hour's first carries them"
    );
    let m = e.metrics();
    assert_eq!(m.rules[0].counters.suppressed, 8);
    assert_eq!(m.rules[0].counters.alerts, 3);
}

#[test]
fn global_suppression_and_per_rule_opt_out() {
    let yaml = format!(
        "{}---\n{}",
        count_rule("quiet", 5, ""),
        count_rule("loud", 5, "qalqan: {suppress: off}\n")
    );
    let set = set(&yaml, BASE);
    let cfg = EngineConfig {
        suppress: Some(SuppressPolicy {
            first: 1,
            period: Duration::from_secs(3600),
        }),
        allowed_lateness: Duration::ZERO,
        ..EngineConfig::default()
    };
    let mut signals = steady("quiet", 5, 0.0);
    signals.extend(steady("loud", 5, 0.0));
    signals.sort_by_key(|s| s.timestamp);
    let alerts = alerts(&set, cfg, signals);
    let n = |id: &str| alerts.iter().filter(|a| a.rule.id == id).count();
    assert_eq!(n("quiet"), 1);
    assert_eq!(n("loud"), 5);
}

#[test]
fn reload_keeps_state_of_unchanged_rules() {
    let v1 = format!(
        "{}---\n{}",
        count_rule("keep", 4, ""),
        count_rule("edit", 4, "")
    );
    let v2 = format!(
        "{}---\n{}",
        count_rule("keep", 4, ""),
        count_rule("edit", 3, "")
    );
    let set1 = set(&v1, BASE);
    let mut e = engine(&set1, cfg_lateness(0));
    let mut out = Output::default();
    for t in 1..=3 {
        e.process(
            0,
            &sig("keep", "r1", &["A"], f64::from(t)).build(),
            &mut out,
        );
        e.process(
            0,
            &sig("edit", "r1", &["A"], f64::from(t)).build(),
            &mut out,
        );
    }
    e.replace_rules(set(&v2, BASE)).expect("reload");
    e.process(0, &sig("keep", "r1", &["A"], 4.0).build(), &mut out);
    e.process(0, &sig("edit", "r1", &["A"], 4.0).build(), &mut out);
    e.flush(&mut out);
    let fired: Vec<_> = out
        .alerts
        .iter()
        .map(|a| (a.rule.id.clone(), a.count))
        .collect();
    // "keep" kept its three events; "edit" changed and started over.
    assert_eq!(fired, vec![("keep".to_string(), 4)]);
    assert_eq!(e.metrics().rules.len(), 2);
}
