//! Each correlation type and each condition operator, end to end through
//! the engine.

mod common;

use common::*;
use qalqan_core::Alert;
use qalqan_correlation::{EngineConfig, Output};

const BASE: &[(&str, Option<&str>)] = &[
    ("r1", Some("failed_login")),
    ("r2", Some("successful_login")),
    ("r3", Some("new_user")),
];

/// A one-rule correlation over r1 with a 60 s timespan (6 s hops).
fn rule(kind: &str, cond: &str, group: &str) -> String {
    format!(
        "title: Test {kind}\nid: c1\nlevel: high\nauthor: Tester\ntags: [attack.t1110]\n\
         correlation:\n  type: {kind}\n  rules: [r1]\n  group-by: [{group}]\n  timespan: 60s\n  \
         condition: {cond}\n"
    )
}

#[test]
fn event_count_fires_once_with_window_and_evidence() {
    let set = set(&rule("event_count", "{gte: 5}", "source.ip"), BASE);
    let mut signals = Vec::new();
    for t in 1..=5 {
        signals.push(sig("c1", "r1", &["10.0.0.1"], t as f64).build());
    }
    for t in 1..=4 {
        signals.push(sig("c1", "r1", &["10.0.0.2"], t as f64).build());
    }
    let alerts = alerts(&set, cfg_lateness(0), signals);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(
        a.group.get("source.ip").map(String::as_str),
        Some("10.0.0.1")
    );
    assert_eq!(a.count, 5);
    assert_eq!(a.value, None);
    assert_eq!(a.window_start, at(0.0));
    assert_eq!(a.window_end, at(60.0));
    assert_eq!(a.agency, "mof");
    assert_eq!(a.rule.id, "c1");
    assert_eq!(a.rule.author, "Tester");
    assert_eq!(a.rule.level, "high");
    assert_eq!(a.rule.kind, "event_count");
    assert_eq!(a.rule.tags, vec!["attack.t1110"]);
    let lines: Vec<&str> = a.evidence.iter().map(|e| e.original.as_str()).collect();
    assert_eq!(
        lines,
        vec!["line r1 10.0.0.1 at 1", "line r1 10.0.0.1 at 5"]
    );
    assert_eq!(a.evidence[0].timestamp, at(1.0));
    assert_eq!(a.entities.source_ips, vec!["10.0.0.1"]);
    // The id is the documented function of rule, agency, group and window.
    let mut expect = Alert::new(a.rule.clone(), "mof", at(0.0), at(60.0));
    expect.group = a.group.clone();
    expect.refresh_id();
    assert_eq!(a.id, expect.id);
}

#[test]
fn hopping_windows_catch_a_burst_across_the_aligned_boundary() {
    let set = set(&rule("event_count", "{gte: 5}", "source.ip"), BASE);
    // Five events within 7 s, straddling the aligned minute at 60 s:
    // a tumbling window would see 4 + 1.
    let signals = [55.0, 56.0, 57.0, 58.0, 62.0]
        .iter()
        .map(|&t| sig("c1", "r1", &["10.0.0.1"], t).build())
        .collect();
    let alerts = alerts(&set, cfg_lateness(0), signals);
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].window_start,
        at(54.0),
        "window starts at the first event's hop"
    );
    assert_eq!(alerts[0].window_end, at(114.0));
}

#[test]
fn at_most_one_alert_per_key_and_timespan() {
    let set = set(&rule("event_count", "{gte: 5}", "source.ip"), BASE);
    // One event per second for two minutes.
    let signals = (1..120)
        .map(|t| sig("c1", "r1", &["10.0.0.1"], t as f64).build())
        .collect();
    let alerts = alerts(&set, cfg_lateness(0), signals);
    let starts: Vec<_> = alerts.iter().map(|a| a.window_start).collect();
    assert_eq!(starts, vec![at(0.0), at(60.0)]);
    assert!(alerts.iter().all(|a| a.count == 5));
}

/// Keys k1..k5 with exactly 1..5 events inside one hop; returns which fired
/// and with what count.
fn operator_outcome(cond: &str) -> Vec<(u32, u64)> {
    let set = set(&rule("event_count", cond, "source.ip"), BASE);
    let mut signals = Vec::new();
    for k in 1..=5u32 {
        for i in 0..k {
            signals.push(sig("c1", "r1", &[&format!("k{k}")], 12.0 + f64::from(i) * 0.1).build());
        }
    }
    let alerts = alerts(&set, cfg_lateness(0), signals);
    let mut fired: Vec<(u32, u64)> = alerts
        .iter()
        .map(|a| {
            let k: u32 = a.group["source.ip"][1..].parse().expect("k");
            (k, a.count)
        })
        .collect();
    fired.sort();
    fired
}

#[test]
fn every_operator() {
    // Lower bounds fire early, at the event that satisfies them.
    assert_eq!(operator_outcome("{gt: 3}"), vec![(4, 4), (5, 4)]);
    assert_eq!(operator_outcome("{gte: 3}"), vec![(3, 3), (4, 3), (5, 3)]);
    // Anything else is judged on the whole aligned window at its end.
    assert_eq!(operator_outcome("{lt: 3}"), vec![(1, 1), (2, 2)]);
    assert_eq!(operator_outcome("{lte: 3}"), vec![(1, 1), (2, 2), (3, 3)]);
    assert_eq!(operator_outcome("{eq: 3}"), vec![(3, 3)]);
    assert_eq!(
        operator_outcome("{neq: 3}"),
        vec![(1, 1), (2, 2), (4, 4), (5, 5)]
    );
    assert_eq!(operator_outcome("{gt: 2, lte: 4}"), vec![(3, 3), (4, 4)]);
    assert_eq!(
        operator_outcome("{gte: 2, neq: 4}"),
        vec![(2, 2), (3, 3), (5, 5)]
    );
}

#[test]
fn end_of_window_conditions_wait_for_the_window_end() {
    let set = set(&rule("event_count", "{lt: 3}", "source.ip"), BASE);
    let mut e = engine(&set, cfg_lateness(0));
    let mut out = Output::default();
    e.process(0, &sig("c1", "r1", &["a"], 10.0).build(), &mut out);
    e.process(0, &sig("c1", "r1", &["b"], 59.0).build(), &mut out);
    assert!(out.alerts.is_empty(), "the window [0, 60) has not ended");
    e.process(0, &sig("c1", "r1", &["b"], 61.0).build(), &mut out);
    let fired: Vec<_> = out
        .alerts
        .iter()
        .map(|a| a.group["source.ip"].clone())
        .collect();
    assert_eq!(
        fired,
        vec!["a", "b"],
        "both keys' first windows ended at 60 s"
    );
    assert_eq!(out.alerts[0].window_start, at(0.0));
    assert_eq!(out.alerts[0].window_end, at(60.0));
}

#[test]
fn value_count_counts_distinct_values() {
    let set = set(
        &rule("value_count", "{field: user.name, gte: 3}", "source.ip"),
        BASE,
    );
    let mut signals = Vec::new();
    for (t, u) in [
        (1.0, "u1"),
        (2.0, "u2"),
        (3.0, "u1"),
        (4.0, "u3"),
        (5.0, "u4"),
    ] {
        signals.push(sig("c1", "r1", &["A"], t).value(u).build());
    }
    for t in 1..=6 {
        signals.push(sig("c1", "r1", &["B"], t as f64).value("u1").build());
    }
    let alerts = alerts(&set, cfg_lateness(0), signals);
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a.group["source.ip"], "A");
    assert_eq!(a.value, Some(3.0), "fires at the third distinct user");
    assert_eq!(a.count, 4, "four events in the window by then");
    assert_eq!(a.rule.kind, "value_count");
}

const THREE: &str = "title: Recon\nid: c1\ncorrelation:\n  type: temporal\n  \
    rules: [failed_login, successful_login, new_user]\n  group-by: [user.name]\n  timespan: 60s\n";

#[test]
fn temporal_needs_every_rule_in_any_order() {
    let set = set(THREE, BASE);
    let signals = vec![
        sig("c1", "r3", &["alice"], 1.0).build(),
        sig("c1", "r1", &["alice"], 10.0).build(),
        sig("c1", "r2", &["alice"], 20.0).build(),
        sig("c1", "r1", &["bob"], 1.0).build(),
        sig("c1", "r2", &["bob"], 2.0).build(),
        sig("c1", "r2", &["bob"], 3.0).build(),
        // carol's three are more than a timespan apart.
        sig("c1", "r1", &["carol"], 1.0).build(),
        sig("c1", "r2", &["carol"], 30.0).build(),
        sig("c1", "r3", &["carol"], 80.0).build(),
    ];
    let alerts = alerts(&set, cfg_lateness(0), signals);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].group["user.name"], "alice");
    assert_eq!(alerts[0].value, Some(3.0));
    assert_eq!(alerts[0].count, 3);
    assert_eq!(alerts[0].evidence.len(), 2);
    assert_eq!(alerts[0].evidence[1].original, "line r2 alice at 20");
}

#[test]
fn temporal_condition_relaxes_how_many_rules() {
    let set = set(&format!("{THREE}  condition: {{gte: 2}}\n"), BASE);
    let signals = vec![
        sig("c1", "r1", &["bob"], 1.0).build(),
        sig("c1", "r1", &["bob"], 2.0).build(),
        sig("c1", "r2", &["bob"], 3.0).build(),
        sig("c1", "r1", &["dan"], 1.0).build(),
        sig("c1", "r1", &["dan"], 2.0).build(),
    ];
    let alerts = alerts(&set, cfg_lateness(0), signals);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].group["user.name"], "bob");
    assert_eq!(alerts[0].value, Some(2.0));
}

#[test]
fn temporal_ordered_needs_the_order() {
    let set = set(
        "title: Success after failure\nid: c1\ncorrelation:\n  type: temporal_ordered\n  \
         rules: [failed_login, successful_login]\n  group-by: [user.name]\n  timespan: 60s\n",
        BASE,
    );
    let mut both = sig("c1", "r1", &["dave"], 3.0).build();
    both.rules.push("r2".into());
    let signals = vec![
        sig("c1", "r1", &["alice"], 1.0).build(),
        sig("c1", "r2", &["alice"], 5.0).build(),
        sig("c1", "r2", &["bob"], 1.0).build(),
        sig("c1", "r1", &["bob"], 5.0).build(),
        sig("c1", "r1", &["carol"], 1.0).build(),
        sig("c1", "r2", &["carol"], 65.0).build(),
        // One event matching both rules is not a sequence of two.
        both,
    ];
    let alerts = alerts(&set, cfg_lateness(0), signals);
    let users: Vec<_> = alerts
        .iter()
        .map(|a| a.group["user.name"].as_str())
        .collect();
    assert_eq!(users, vec!["alice"]);
    assert_eq!(alerts[0].value, Some(2.0));
    assert_eq!(alerts[0].rule.kind, "temporal_ordered");
}

#[test]
fn value_sum_adds_the_field() {
    let set = set(
        &rule("value_sum", "{field: bytes, gt: 1000}", "source.ip"),
        BASE,
    );
    let signals = vec![
        sig("c1", "r1", &["A"], 1.0).number(400.0).build(),
        sig("c1", "r1", &["A"], 2.0).build(), // no number: counted, not summed
        sig("c1", "r1", &["A"], 3.0).number(400.0).build(),
        sig("c1", "r1", &["A"], 4.0).number(300.0).build(),
        sig("c1", "r1", &["B"], 1.0).number(500.0).build(),
        sig("c1", "r1", &["B"], 2.0).number(400.0).build(),
    ];
    let mut e = engine(&set, cfg_lateness(0));
    let out = run(&mut e, signals);
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].group["source.ip"], "A");
    assert_eq!(out.alerts[0].value, Some(1100.0));
    assert_eq!(out.alerts[0].count, 4);
    let m = e.metrics();
    assert_eq!(m.rules[0].counters.missing_values, 1);
}

#[test]
fn value_avg_is_judged_on_the_whole_window() {
    let set = set(
        &rule("value_avg", "{field: bytes, gt: 500}", "source.ip"),
        BASE,
    );
    let signals = vec![
        // A: the first value alone averages 1000, the window 600.
        sig("c1", "r1", &["A"], 1.0).number(1000.0).build(),
        sig("c1", "r1", &["A"], 2.0).number(200.0).build(),
        // B: starts high, averages 400.
        sig("c1", "r1", &["B"], 1.0).number(900.0).build(),
        sig("c1", "r1", &["B"], 2.0).number(100.0).build(),
        sig("c1", "r1", &["B"], 3.0).number(200.0).build(),
    ];
    let alerts = alerts(&set, cfg_lateness(0), signals);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].group["source.ip"], "A");
    assert_eq!(alerts[0].value, Some(600.0));
    assert_eq!(alerts[0].window_start, at(0.0));
}

#[test]
fn value_percentile_uses_nearest_rank() {
    let set = set(
        &rule(
            "value_percentile",
            "{field: duration, percentile: 50, gt: 100}",
            "host.name",
        ),
        BASE,
    );
    let mut signals = Vec::new();
    for (i, v) in [10.0, 20.0, 30.0, 150.0].iter().enumerate() {
        signals.push(sig("c1", "r1", &["web1"], i as f64).number(*v).build());
    }
    for (i, v) in [160.0, 10.0, 150.0].iter().enumerate() {
        signals.push(sig("c1", "r1", &["web2"], i as f64).number(*v).build());
    }
    let alerts = alerts(&set, cfg_lateness(0), signals);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].group["host.name"], "web2");
    assert_eq!(
        alerts[0].value,
        Some(150.0),
        "median of 10, 150, 160 by nearest rank"
    );
}

#[test]
fn no_group_by_means_one_group_per_agency() {
    let set = set(
        "title: Any\nid: c1\ncorrelation: {type: event_count, rules: [r1], timespan: 60s, \
         condition: {gte: 3}}\n",
        BASE,
    );
    let signals = vec![
        sig("c1", "r1", &[], 1.0).build(),
        sig("c1", "r1", &[], 2.0).build(),
        sig("c1", "r1", &[], 3.0).agency("moh").build(),
        sig("c1", "r1", &[], 4.0).build(),
    ];
    let alerts = alerts(&set, EngineConfig::default(), signals);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].agency, "mof");
    assert!(alerts[0].group.is_empty());
}

#[test]
fn agencies_never_share_a_group() {
    let set = set(&rule("event_count", "{gte: 3}", "source.ip"), BASE);
    let signals = vec![
        sig("c1", "r1", &["A"], 1.0).build(),
        sig("c1", "r1", &["A"], 2.0).agency("moh").build(),
        sig("c1", "r1", &["A"], 3.0).build(),
        sig("c1", "r1", &["A"], 4.0).agency("moh").build(),
    ];
    assert!(alerts(&set, EngineConfig::default(), signals).is_empty());
}

#[test]
fn one_event_matching_two_rules_counts_for_both_in_temporal() {
    let set = set(
        "title: Both\nid: c1\ncorrelation: {type: temporal, rules: [r1, r2], group-by: [user.name], timespan: 60s}\n",
        BASE,
    );
    let mut both = sig("c1", "r1", &["eve"], 1.0).build();
    both.rules.push("r2".into());
    let alerts = alerts(&set, cfg_lateness(0), vec![both]);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].count, 1);
}
