//! The events both detector benchmarks feed: the loghub OpenSSH sample and
//! the demo scenario's portal, firewall and host logs, as one collector
//! would send them.

use chrono::{DateTime, Utc};
use qalqan_core::event::{now_micros, Value};
use qalqan_core::Event;

/// Parsed base events: loghub OpenSSH plus the demo scenario.
pub fn base_events() -> Vec<Event> {
    let parser = qalqan_core::parse::Parser::default();
    let now = now_micros();
    let path = qalqan_testkit::shared_data("loghub/OpenSSH_2k.log");
    let text = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the benchmark needs ../shared/data/loghub)",
            path.display()
        )
    });
    let mut out: Vec<Event> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| parser.parse(l, now).event)
        .collect();
    let start = now - chrono::Duration::minutes(20);
    out.extend(
        qalqan_detector::demo::scenario(start, 42)
            .into_iter()
            .map(|l| parser.parse(l.line.as_bytes(), l.at).event),
    );
    out
}

/// The `i`-th event of the stream: a base event spread in event time (two
/// per millisecond from `t0`) and numbered like one collector's output.
pub fn numbered(base: &[Event], i: usize, t0: DateTime<Utc>) -> Event {
    let mut ev = base[i % base.len()].clone();
    ev.timestamp = t0 + chrono::Duration::milliseconds(i as i64 / 2);
    ev.fields.insert("observer.name", "bench-col");
    ev.fields
        .insert("observer.sequence", Value::from(i as u64 + 1));
    ev
}

/// The rule set both benchmarks load: the project's rule pack plus the
/// SigmaHQ linux, web and network rules, with the shipped pipelines.
pub fn rule_sources() -> qalqan_detector::pipeline::rules::RuleSources {
    let root = qalqan_testkit::workspace_root();
    let sigma = qalqan_testkit::shared_data("sigma/rules");
    qalqan_detector::pipeline::rules::RuleSources {
        paths: vec![
            root.join("rules"),
            sigma.join("linux"),
            sigma.join("web"),
            sigma.join("network"),
        ],
        pipelines: qalqan_detector::pipeline::rules::shipped_pipelines(&[root.join("rules")]),
        ..Default::default()
    }
}
