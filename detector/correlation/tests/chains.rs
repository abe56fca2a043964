//! Stage 1 (events → signals) and correlations over correlations, through
//! real `qalqan_core::Event`s.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use qalqan_core::{Event, Value};
use qalqan_correlation::{
    BaseRule, CorrelationDoc, CorrelationSet, EngineConfig, LoadOptions, MatchedEvent, Output,
    Signal,
};

const FAILED: &str = "53ba33fd-95ad-4468-a5ef-c583635cfa92";
const SUCCESS: &str = "4d0a2c83-c62c-4ed4-b475-c7e23a9269b8";

/// The specification's example, with `User` mapped to ECS `user.name` the
/// way a processing pipeline would.
fn spec_example(generate: bool) -> String {
    format!(
        "title: Correlation - Multiple Failed Logins Followed by Successful Login
id: b180ead8-d58f-40b2-ae54-c8940995b9b6
status: experimental
author: Florian Roth (Nextron Systems)
generate: {generate}
correlation:
    type: temporal_ordered
    rules:
        - multiple_failed_login
        - successful_login
    group-by:
        - User
    timespan: 10m
falsepositives:
    - Unlikely
level: high
---
title: Multiple failed logons
id: a8418a5a-5fc4-46b5-b23b-6c73beb19d41
name: multiple_failed_login
correlation:
    type: event_count
    rules:
        - failed_login
    group-by:
        - User
    timespan: 10m
    condition:
        gte: 10
"
    )
}

fn load_mapped(yaml: &str, base: &[(&str, Option<&str>)]) -> Arc<CorrelationSet> {
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .collect();
    let cdocs: Vec<CorrelationDoc<'_>> = docs
        .iter()
        .enumerate()
        .map(|(index, doc)| CorrelationDoc {
            path: Path::new("rules/spec.yml"),
            index,
            doc,
        })
        .collect();
    let base: Vec<BaseRule<'_>> = base
        .iter()
        .map(|&(id, name)| BaseRule { id, name })
        .collect();
    let options = LoadOptions {
        field_mapping: Some(Arc::new(|_rule: &str, field: &str| match field {
            "User" => "user.name".to_string(),
            other => other.to_string(),
        })),
        ..LoadOptions::default()
    };
    let report = CorrelationSet::load(&cdocs, &base, &options);
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    Arc::new(report.set)
}

fn login(user: &str, secs: f64) -> Event {
    let mut ev = Event::new(format!("login for {user} at {secs}"), at(secs));
    ev.timestamp = at(secs);
    ev.fields.insert("user.name", user);
    ev.fields.insert("source.ip", "198.51.100.9");
    ev
}

/// Stage 1 for one event: the signals of the rules it matched.
fn stage1(set: &CorrelationSet, ev: &Event, n: u64, matched: &[&str]) -> Vec<Signal> {
    let id = format!("ev{n}");
    let mut out = Vec::new();
    set.signals(
        MatchedEvent {
            event: ev,
            agency: "egov",
            event_id: &id,
            ordinal: n,
        },
        matched,
        &mut out,
    );
    out
}

fn scenario(set: &CorrelationSet) -> Vec<Signal> {
    let mut signals = Vec::new();
    let mut n = 0;
    let mut push = |ev: Event, rule: &str| {
        n += 1;
        signals.extend(stage1(set, &ev, n, &[rule]));
    };
    for i in 0..12 {
        push(login("alice", f64::from(i)), FAILED);
        push(login("carol", f64::from(i)), FAILED);
    }
    push(login("alice", 30.0), SUCCESS);
    for i in 0..3 {
        push(login("bob", f64::from(i)), FAILED);
    }
    push(login("bob", 5.0), SUCCESS);
    // dave succeeds before his tenth failure: wrong order.
    for i in 0..5 {
        push(login("dave", f64::from(i)), FAILED);
    }
    push(login("dave", 6.0), SUCCESS);
    for i in 7..12 {
        push(login("dave", f64::from(i)), FAILED);
    }
    signals.sort_by_key(|s| (s.timestamp, s.ordinal));
    signals
}

const BASE: &[(&str, Option<&str>)] = &[
    (FAILED, Some("failed_login")),
    (SUCCESS, Some("successful_login")),
];

#[test]
fn failed_logins_followed_by_success() {
    let set = load_mapped(&spec_example(false), BASE);
    assert!(!set.emits_own_alerts(FAILED), "generate is off by default");
    assert!(!set.emits_own_alerts("a8418a5a-5fc4-46b5-b23b-6c73beb19d41"));
    assert!(set.emits_own_alerts("some-unreferenced-rule"));
    let signals = scenario(&set);
    let alerts = alerts(&set, EngineConfig::default(), signals);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a.rule.id, "b180ead8-d58f-40b2-ae54-c8940995b9b6");
    assert_eq!(a.rule.kind, "temporal_ordered");
    assert_eq!(a.rule.author, "Florian Roth (Nextron Systems)");
    assert_eq!(a.agency, "egov");
    assert_eq!(a.group["User"], "alice");
    assert_eq!(a.entities.users, vec!["alice"]);
    assert_eq!(
        a.evidence.last().map(|e| e.original.as_str()),
        Some("login for alice at 30")
    );
}

#[test]
fn generate_makes_the_inner_correlation_alert_too() {
    let set = load_mapped(&spec_example(true), BASE);
    // `generate` covers the rules the correlation refers to directly.
    assert!(set.emits_own_alerts("a8418a5a-5fc4-46b5-b23b-6c73beb19d41"));
    assert!(!set.emits_own_alerts(FAILED));
    let alerts = alerts(&set, EngineConfig::default(), scenario(&set));
    let mut fired: Vec<(String, String)> = alerts
        .iter()
        .map(|a| (a.rule.title.clone(), a.group["User"].clone()))
        .collect();
    fired.sort();
    assert_eq!(
        fired,
        vec![
            (
                "Correlation - Multiple Failed Logins Followed by Successful Login".into(),
                "alice".into()
            ),
            ("Multiple failed logons".into(), "alice".into()),
            ("Multiple failed logons".into(), "carol".into()),
            ("Multiple failed logons".into(), "dave".into()),
        ]
    );
    let inner = alerts
        .iter()
        .find(|a| a.rule.kind == "event_count")
        .expect("inner");
    assert_eq!(inner.count, 10);
}

#[test]
fn a_chain_shares_the_outer_partition_key() {
    let set = load_mapped(&spec_example(false), BASE);
    let failed = stage1(&set, &login("alice", 1.0), 1, &[FAILED]);
    let success = stage1(&set, &login("alice", 2.0), 2, &[SUCCESS]);
    assert_eq!(failed.len(), 1);
    assert_eq!(success.len(), 1);
    let f = &failed[0];
    assert_eq!(f.correlation, "a8418a5a-5fc4-46b5-b23b-6c73beb19d41");
    assert_eq!(
        f.root.as_deref(),
        Some("b180ead8-d58f-40b2-ae54-c8940995b9b6")
    );
    assert_eq!(f.root_group, vec!["alice"]);
    assert_eq!(success[0].root, None);
    assert_eq!(f.signal_key(), success[0].signal_key());
    let other = stage1(&set, &login("bob", 1.0), 3, &[FAILED]);
    assert_ne!(other[0].signal_key(), f.signal_key());
}

#[test]
fn aliases_join_different_fields() {
    let yaml = "title: Internal error then connection back
id: alias-1
correlation:
    type: temporal
    rules:
        - internal_error
        - new_network_connection
    group-by:
        - internal_ip
        - remote_ip
    timespan: 10s
    aliases:
        internal_ip:
            internal_error: destination.ip
            new_network_connection: source.ip
        remote_ip:
            internal_error: source.ip
            new_network_connection: destination.ip
";
    let set = set(
        yaml,
        &[
            ("ie", Some("internal_error")),
            ("nc", Some("new_network_connection")),
        ],
    );
    let ev = |secs: f64, src: &str, dst: &str| {
        let mut e = Event::new(format!("{src} -> {dst}"), at(secs));
        e.timestamp = at(secs);
        e.fields.insert("source.ip", src);
        e.fields.insert("destination.ip", dst);
        e
    };
    let mut signals = Vec::new();
    signals.extend(stage1(
        &set,
        &ev(1.0, "203.0.113.5", "10.1.1.1"),
        1,
        &["ie"],
    ));
    signals.extend(stage1(
        &set,
        &ev(3.0, "10.1.1.1", "203.0.113.5"),
        2,
        &["nc"],
    ));
    // A connection to another remote address is another group.
    signals.extend(stage1(
        &set,
        &ev(2.0, "10.1.1.1", "203.0.113.77"),
        3,
        &["nc"],
    ));
    assert_eq!(signals[0].group, vec!["10.1.1.1", "203.0.113.5"]);
    assert_eq!(signals[1].group, vec!["10.1.1.1", "203.0.113.5"]);
    let alerts = alerts(&set, EngineConfig::default(), signals);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].group["internal_ip"], "10.1.1.1");
    assert_eq!(alerts[0].group["remote_ip"], "203.0.113.5");
}

#[test]
fn stage1_extracts_groups_values_and_counts_misses() {
    let yaml = "title: Spray
id: spray
correlation: {type: value_count, rules: [r1, r2], group-by: [source.ip], timespan: 5m,
              condition: {field: [user.name, host.name], gte: 3}}
---
title: Exfil
id: exfil
correlation: {type: value_sum, rules: [r1], group-by: [source.ip], timespan: 1h,
              condition: {field: source.bytes, gt: 1000000}}
";
    let report = load(yaml, &[("r1", None), ("r2", None)]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let set = report.set;
    let mut ev = Event::new("x".repeat(5000), at(1.0));
    ev.timestamp = at(1.0);
    ev.fields.insert("source.ip", "192.0.2.1");
    ev.fields.insert("user.name", "root");
    ev.fields.insert("host.name", "web1");
    ev.fields.insert("source.bytes", "12345");
    // Matching both referenced rules of `spray` gives one signal.
    let signals = stage1(&set, &ev, 1, &["r1", "r2"]);
    assert_eq!(signals.len(), 2);
    let spray = signals
        .iter()
        .find(|s| s.correlation == "spray")
        .expect("spray");
    assert_eq!(spray.rules, vec!["r1", "r2"]);
    assert_eq!(spray.value.as_deref(), Some("root\u{1f}web1"));
    assert_eq!(spray.entities.user.as_deref(), Some("root"));
    assert!(spray.original.len() <= LoadOptions::default().max_original_bytes);
    assert!(spray.original.ends_with('…'));
    let exfil = signals
        .iter()
        .find(|s| s.correlation == "exfil")
        .expect("exfil");
    assert_eq!(exfil.number, Some(12345.0));
    assert_eq!(exfil.group, vec!["192.0.2.1"]);

    // No source.ip: nothing to group by, counted.
    let mut bare = Event::new("no ip".into(), at(2.0));
    bare.fields.insert("user.name", "root");
    assert!(stage1(&set, &bare, 2, &["r1"]).is_empty());
    let missing: u64 = set
        .signal_counters()
        .iter()
        .map(|c| c.missing_group_field)
        .sum();
    assert_eq!(missing, 2, "both correlations missed their group field");
    // Unreferenced rules produce nothing.
    assert!(stage1(&set, &ev, 3, &["r9"]).is_empty());
    assert!(set.is_referenced("r1") && !set.is_referenced("r9"));
    // Group values of other types are their text.
    let mut num = ev.clone();
    num.fields.insert("source.ip", Value::Int(7));
    assert_eq!(stage1(&set, &num, 4, &["r1"])[0].group, vec!["7"]);
}

#[test]
fn unknown_signals_are_rejected_with_a_reason() {
    let set = load_mapped(&spec_example(false), BASE);
    let mut e = engine(&set, EngineConfig::default());
    let mut out = Output::default();
    e.process(0, &sig("nope", FAILED, &["x"], 1.0).build(), &mut out);
    e.process(
        0,
        &sig("a8418a5a-5fc4-46b5-b23b-6c73beb19d41", FAILED, &["x"], 1.0).build(),
        &mut out,
    );
    e.process(
        0,
        &sig(
            "b180ead8-d58f-40b2-ae54-c8940995b9b6",
            "r-other",
            &["x"],
            1.0,
        )
        .build(),
        &mut out,
    );
    e.process(
        0,
        &sig(
            "b180ead8-d58f-40b2-ae54-c8940995b9b6",
            SUCCESS,
            &["x", "y"],
            1.0,
        )
        .build(),
        &mut out,
    );
    let reasons: Vec<&str> = out.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons[0].contains("no correlation `nope`"));
    assert!(
        reasons[1].contains("no correlation"),
        "inner without its root: {}",
        reasons[1]
    );
    assert!(reasons[2].contains("none of which"));
    assert!(reasons[3].contains("group values"));
    assert_eq!(e.metrics().rejected_signals, 4);
}
