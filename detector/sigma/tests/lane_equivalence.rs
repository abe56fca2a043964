//! The optimized evaluator against the reference evaluator with the shipped
//! pipelines loaded, on the benchmark's three lanes (syslog lines, web
//! access lines, Sysmon-shaped Windows JSON) and on a synthetic positive for
//! every rule as the pipelines compiled it.
//!
//! `equivalence.rs` checks the corpus without pipelines; only with them do
//! rules carry what the pipelines add (the `EventID` conditions the Windows
//! pipeline gives every category, which the prefilter indexes as number
//! atoms) and only then do the lanes route to the rules the benchmark runs.
//! Windows events are also mutated in the ways number atoms must survive:
//! `EventID` as a string, as a float, as a list, missing, or changed.

mod common;

#[path = "../benches/lanes/mod.rs"]
mod lanes;

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use qalqan_core::parse::{ParseOptions, Parser};
use qalqan_core::{Event, LogSource, Value};
use qalqan_sigma::synth::{positive_event, Rng};
use qalqan_sigma::{Engine, Pipeline};

fn engine_with_pipelines() -> Engine {
    let dirs = [
        "sigma/rules",
        "sigma/rules-emerging-threats",
        "sigma/rules-threat-hunting",
        "sigma/rules-placeholder",
    ];
    let paths: Vec<PathBuf> = dirs.iter().map(|d| common::data_path(d)).collect();
    let mut b = Engine::builder();
    for p in &common::shipped_pipeline_files() {
        b = b.pipeline(Pipeline::from_path(p).expect("pipeline"));
    }
    b.load_paths(&paths).0
}

/// Variants of a Windows event that exercise number atoms.
fn number_variants(ev: &Event, rng: &mut Rng) -> Vec<Event> {
    let mut out = Vec::new();
    let id = match ev.fields.get("EventID") {
        Some(Value::Int(i)) => *i,
        _ => return out,
    };
    let mut with = |v: Option<Value>| {
        let mut m = ev.clone();
        match v {
            Some(v) => {
                m.fields.insert("EventID".to_owned(), v);
            }
            None => {
                m.fields.remove("EventID");
            }
        }
        out.push(m);
    };
    with(Some(Value::Str(id.to_string())));
    with(Some(Value::Str(format!("{id}.0"))));
    with(Some(Value::Str(format!("0x{id:x}"))));
    with(Some(Value::Float(id as f64)));
    with(Some(Value::List(vec![Value::Int(99_999), Value::Int(id)])));
    with(Some(Value::Int(id + 1 + rng.below(30) as i64)));
    with(None);
    out
}

fn assert_same(engine: &Engine, ev: &Event, what: &str) -> usize {
    let fast: Vec<u32> = engine.evaluate(ev).to_vec();
    let naive = engine.evaluate_naive(ev);
    assert_eq!(
        fast, naive,
        "{what}: optimized and reference differ on {ev:?}"
    );
    fast.len()
}

#[test]
fn lanes_with_pipelines_match_the_reference() {
    let engine = engine_with_pipelines();
    let now = Utc
        .with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
        .single()
        .expect("time");
    // release runs cover more events; debug keeps the run short
    let n = if cfg!(debug_assertions) { 600 } else { 5_000 };
    let parser = Parser::new(ParseOptions::default());
    let web_parser = Parser::new(ParseOptions {
        web_product: Some("nginx".into()),
        ..ParseOptions::default()
    });
    let sysmon = LogSource::new(Some("windows"), Some("sysmon"), None);
    let mut rng = Rng::new(7);

    let mut syslog_matches = 0;
    for _ in 0..n {
        let ev = parser
            .parse(lanes::syslog_line(&mut rng).as_bytes(), now)
            .event;
        syslog_matches += assert_same(&engine, &ev, "syslog lane");
    }
    let mut web_matches = 0;
    for _ in 0..n {
        let ev = web_parser
            .parse(lanes::web_line(&mut rng).as_bytes(), now)
            .event;
        web_matches += assert_same(&engine, &ev, "web lane");
    }
    let mut windows_matches = 0;
    for i in 0..n {
        let mut ev = Event::from_json_bytes(lanes::sysmon_json(&mut rng).as_bytes(), now)
            .expect("generated JSON");
        ev.logsource = sysmon.clone();
        windows_matches += assert_same(&engine, &ev, "windows lane");
        if i % 10 == 0 {
            for v in number_variants(&ev, &mut rng) {
                windows_matches += assert_same(&engine, &v, "windows lane, EventID variant");
            }
        }
    }
    println!("matches: syslog {syslog_matches}, web {web_matches}, windows {windows_matches}");
    // the lanes carry attacks: a test that sees no match proves nothing
    assert!(syslog_matches > 0 && web_matches > 0 && windows_matches > 0);
}

#[test]
fn positives_with_pipelines_match_the_reference() {
    let engine = engine_with_pipelines();
    let ts = Utc
        .with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
        .single()
        .expect("time");
    let mut rng = Rng::new(11);
    // debug builds check every 8th rule; release runs check them all
    let step = if cfg!(debug_assertions) { 8 } else { 1 };
    let mut generated = 0usize;
    let mut matches = 0usize;
    for idx in (0..engine.len() as u32).step_by(step) {
        let Some(ev) = positive_event(&engine, idx, 3, 4, ts) else {
            continue;
        };
        generated += 1;
        let n = assert_same(&engine, &ev, "positive");
        assert!(
            engine.evaluate(&ev).contains(&idx),
            "positive for {} does not fire it",
            engine.rule(idx).meta.title
        );
        matches += n;
        for v in number_variants(&ev, &mut rng) {
            matches += assert_same(&engine, &v, "positive, EventID variant");
        }
    }
    println!(
        "positives for {generated} of {} rules checked, {matches} matches",
        engine.len().div_ceil(step)
    );
    assert!(
        generated * step * 100 >= engine.len() * 80,
        "generator regressed: {generated} of {}",
        engine.len().div_ceil(step)
    );
}
