//! Helpers shared by the integration tests: rule sets from YAML text,
//! signals at given seconds, a seeded shuffle.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use qalqan_core::Alert;
use qalqan_correlation::{
    BaseRule, CorrelationDoc, CorrelationSet, Engine, EngineConfig, LoadOptions, LoadReport,
    Output, Signal, SignalEntities,
};

/// 2026-03-01T00:00:00Z — a round epoch-aligned start.
pub const T0: i64 = 1_772_323_200;

pub fn at(secs: f64) -> DateTime<Utc> {
    let us = T0 * 1_000_000 + (secs * 1_000_000.0).round() as i64;
    Utc.timestamp_micros(us).single().expect("valid time")
}

/// Loads correlation documents (multi-document YAML) against detection
/// rules given as (id, name).
pub fn load(yaml: &str, base: &[(&str, Option<&str>)]) -> LoadReport {
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .collect();
    let cdocs: Vec<CorrelationDoc<'_>> = docs
        .iter()
        .enumerate()
        .map(|(index, doc)| CorrelationDoc {
            path: Path::new("rules/test.yml"),
            index,
            doc,
        })
        .collect();
    let base: Vec<BaseRule<'_>> = base
        .iter()
        .map(|&(id, name)| BaseRule { id, name })
        .collect();
    CorrelationSet::load(&cdocs, &base, &LoadOptions::default())
}

/// Loads and insists on no errors.
pub fn set(yaml: &str, base: &[(&str, Option<&str>)]) -> Arc<CorrelationSet> {
    let report = load(yaml, base);
    assert!(
        report.errors.is_empty(),
        "unexpected errors: {:#?}",
        report.errors
    );
    Arc::new(report.set)
}

pub fn engine(set: &Arc<CorrelationSet>, cfg: EngineConfig) -> Engine {
    Engine::new(Arc::clone(set), cfg).expect("engine accepts the rules")
}

pub fn cfg_lateness(secs: u64) -> EngineConfig {
    EngineConfig {
        allowed_lateness: std::time::Duration::from_secs(secs),
        ..EngineConfig::default()
    }
}

/// A signal builder with sensible defaults.
#[derive(Clone)]
pub struct S {
    pub s: Signal,
}

pub fn sig(correlation: &str, rule: &str, group: &[&str], secs: f64) -> S {
    let ts = at(secs);
    S {
        s: Signal {
            correlation: correlation.into(),
            root: None,
            rules: vec![rule.into()],
            agency: "mof".into(),
            group: group.iter().map(|g| g.to_string()).collect(),
            root_group: vec![],
            timestamp: ts,
            ordinal: (secs * 1000.0) as u64,
            event_id: format!("{rule}-{}-{}", group.join("/"), ts.timestamp_micros()),
            value: None,
            number: None,
            entities: SignalEntities {
                source_ip: group.first().map(|g| g.to_string()),
                ..Default::default()
            },
            original: format!("line {rule} {} at {secs}", group.join(" ")),
        },
    }
}

impl S {
    pub fn value(mut self, v: &str) -> S {
        self.s.value = Some(v.into());
        self
    }
    pub fn number(mut self, n: f64) -> S {
        self.s.number = Some(n);
        self
    }
    pub fn agency(mut self, a: &str) -> S {
        self.s.agency = a.into();
        self
    }
    pub fn root(mut self, root: &str, group: &[&str]) -> S {
        self.s.root = Some(root.into());
        self.s.root_group = group.iter().map(|g| g.to_string()).collect();
        self
    }
    pub fn id(mut self, id: &str) -> S {
        self.s.event_id = id.into();
        self
    }
    pub fn build(self) -> Signal {
        self.s
    }
}

/// Feeds signals in the given order on partition 0, then flushes.
pub fn run(engine: &mut Engine, signals: impl IntoIterator<Item = Signal>) -> Output {
    let mut out = Output::default();
    for s in signals {
        engine.process(0, &s, &mut out);
    }
    engine.flush(&mut out);
    out
}

/// Runs a fresh engine over the signals, fed in event-time order, and
/// returns the alerts.
pub fn alerts(
    set: &Arc<CorrelationSet>,
    cfg: EngineConfig,
    mut signals: Vec<Signal>,
) -> Vec<Alert> {
    signals.sort_by_key(|s| s.timestamp);
    let mut e = engine(set, cfg);
    let out = run(&mut e, signals);
    assert!(out.late.is_empty(), "late: {:?}", out.late);
    assert!(out.rejected.is_empty(), "rejected: {:?}", out.rejected);
    out.alerts
}

/// xorshift64*: a tiny deterministic generator for shuffles.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Reorders signals as a network within `lateness` might: each signal
/// arrives at its event time plus a random delay below the lateness.
pub fn disorder(mut signals: Vec<Signal>, lateness_us: i64, seed: u64) -> Vec<Signal> {
    let mut rng = Rng(seed | 1);
    let mut keyed: Vec<(i64, u64, Signal)> = signals
        .drain(..)
        .map(|s| {
            let delay = rng.below(lateness_us.max(1) as u64) as i64;
            (s.timestamp.timestamp_micros() + delay, rng.next(), s)
        })
        .collect();
    keyed.sort_by_key(|(arrive, tie, _)| (*arrive, *tie));
    keyed.into_iter().map(|(_, _, s)| s).collect()
}

/// Alert ids, sorted.
pub fn ids(alerts: &[Alert]) -> Vec<String> {
    let mut v: Vec<String> = alerts.iter().map(|a| a.id.clone()).collect();
    v.sort();
    v
}

// A mixed workload shared by the time and rebuild tests.

pub const MIXED_BASE: &[(&str, Option<&str>)] = &[
    ("r1", Some("failed")),
    ("r2", Some("success")),
    ("r3", Some("download")),
];

/// Five rules of different types and firing modes over r1..r3.
pub const MIXED: &str = "
title: Brute force
id: bf
qalqan: {suppress: {first: 1, for: 2m}}
correlation: {type: event_count, rules: [failed], group-by: [source.ip], timespan: 60s, condition: {gte: 8}}
---
title: Spraying
id: spray
correlation: {type: value_count, rules: [failed], group-by: [source.ip], timespan: 2m, condition: {field: user.name, gte: 4}}
---
title: Success after failures
id: saf
correlation: {type: temporal_ordered, rules: [failed, success], group-by: [source.ip], timespan: 30s}
---
title: Big average download
id: avg
correlation: {type: value_avg, rules: [download], group-by: [source.ip], timespan: 60s, condition: {field: bytes, gt: 5000}}
---
title: Quiet source
id: quiet
correlation: {type: event_count, rules: [success], group-by: [source.ip], timespan: 60s, condition: {lte: 2}}
---
title: Recon trio
id: trio
correlation: {type: temporal, rules: [failed, success, download], group-by: [source.ip], timespan: 45s, condition: {gte: 3}}
";

/// Builds one signal per (correlation, rule) that the MIXED set has for a
/// base rule, the way stage 1 would.
pub fn signals_for(rule: &str, ip: &str, user: &str, bytes: f64, secs: f64, n: u64) -> Vec<Signal> {
    let corr: &[&str] = match rule {
        "r1" => &["bf", "spray", "saf", "trio"],
        "r2" => &["saf", "quiet", "trio"],
        _ => &["avg", "trio"],
    };
    corr.iter()
        .map(|c| {
            let mut s = sig(c, rule, &[ip], secs).id(&format!("ev{n}"));
            s.s.ordinal = n;
            if *c == "spray" {
                s = s.value(user);
            }
            if *c == "avg" {
                s = s.number(bytes);
            }
            s.build()
        })
        .collect()
}

/// A seeded random workload: 30 addresses, 10 minutes, all three rules.
pub fn workload(seed: u64, events: u64) -> Vec<Signal> {
    workload_over(seed, events, 600)
}

/// Like [`workload`], over `span` seconds.
pub fn workload_over(seed: u64, events: u64, span: u64) -> Vec<Signal> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for n in 0..events {
        let secs = rng.below(span * 1000) as f64 / 1000.0;
        let ip = format!("10.0.0.{}", rng.below(30));
        let user = format!("u{}", rng.below(6));
        let rule = match rng.below(10) {
            0..=5 => "r1",
            6..=7 => "r2",
            _ => "r3",
        };
        let bytes = (rng.below(12_000)) as f64;
        out.extend(signals_for(rule, &ip, &user, bytes, secs, n));
    }
    out.sort_by_key(|s| (s.timestamp, s.ordinal));
    out
}

/// Everything of an alert but its creation time.
pub fn essence(a: &Alert) -> String {
    let mut a = a.clone();
    a.created = at(0.0);
    a.to_json_string()
}

pub fn sorted(mut alerts: Vec<Alert>) -> Vec<String> {
    let mut v: Vec<String> = alerts.drain(..).map(|a| essence(&a)).collect();
    v.sort();
    v
}
