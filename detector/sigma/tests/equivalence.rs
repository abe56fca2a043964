//! The prefilter may never drop a true match: over a large set of realistic
//! and adversarial events, the optimized evaluator (routes, Aho-Corasick
//! prefilter, atom short-circuits) returns exactly the reference
//! evaluator's match set.
//!
//! Events: a synthetic positive for every corpus rule (built from the rule's
//! own detection), mutations of each (case changes, truncation, a removed
//! field, values moved between fields and events, a changed logsource), and
//! benign noise.

mod common;

use chrono::{TimeZone, Utc};
use qalqan_core::{Event, LogSource, Value};
use qalqan_sigma::synth::{positive_event, Rng};
use qalqan_sigma::Engine;

fn corpus() -> Engine {
    let dirs = [
        "sigma/rules",
        "sigma/rules-emerging-threats",
        "sigma/rules-threat-hunting",
        "sigma/rules-placeholder",
    ];
    let paths: Vec<_> = dirs.iter().map(|d| common::data_path(d)).collect();
    Engine::builder().load_paths(&paths).0
}

fn mutate(ev: &Event, donor: &Event, rng: &mut Rng) -> Event {
    let mut m = ev.clone();
    let names: Vec<String> = m.fields.iter().map(|(k, _)| k.to_owned()).collect();
    match rng.below(7) {
        0 => {
            // flip case of one field
            if let Some(n) = names.get(rng.below(names.len().max(1))) {
                if let Some(Value::Str(s)) = m.fields.get(n).cloned() {
                    m.fields.insert(
                        n.clone(),
                        s.chars()
                            .map(|c| {
                                if c.is_lowercase() {
                                    c.to_ascii_uppercase()
                                } else {
                                    c.to_ascii_lowercase()
                                }
                            })
                            .collect::<String>(),
                    );
                }
            }
        }
        1 => {
            // truncate one string by one character at either end
            if let Some(n) = names.get(rng.below(names.len().max(1))) {
                if let Some(Value::Str(s)) = m.fields.get(n).cloned() {
                    let t: String = if rng.chance(50) {
                        s.chars().skip(1).collect()
                    } else {
                        let c = s.chars().count();
                        s.chars().take(c.saturating_sub(1)).collect()
                    };
                    m.fields.insert(n.clone(), t);
                }
            }
        }
        2 => {
            if let Some(n) = names.get(rng.below(names.len().max(1))) {
                m.fields.remove(n);
            }
        }
        3 => {
            // graft the donor's fields (same or other logsource)
            for (k, v) in donor.fields.iter() {
                if rng.chance(50) {
                    m.fields.insert(k.to_owned(), v.clone());
                }
            }
            m.original = format!("{} {}", m.original, donor.original);
        }
        4 => {
            m.logsource = donor.logsource.clone();
        }
        5 => {
            // values as lists, with a decoy element
            if let Some(n) = names.get(rng.below(names.len().max(1))) {
                if let Some(v) = m.fields.get(n).cloned() {
                    m.fields
                        .insert(n.clone(), Value::List(vec![Value::Str("decoy".into()), v]));
                }
            }
        }
        _ => {
            // numbers as strings and back
            if let Some(n) = names.get(rng.below(names.len().max(1))) {
                match m.fields.get(n).cloned() {
                    Some(Value::Int(i)) => m.fields.insert(n.clone(), Value::Str(i.to_string())),
                    Some(Value::Str(s)) => {
                        if let Ok(i) = s.parse::<i64>() {
                            m.fields.insert(n.clone(), Value::Int(i));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    m
}

fn noise(rng: &mut Rng, logsources: &[LogSource]) -> Event {
    const WORDS: [&str; 16] = [
        "svchost.exe",
        "C:\\Windows\\System32\\",
        "powershell",
        "-enc",
        "/bin/bash",
        "root",
        "GET /index.php?id=1",
        "Failed password",
        "sshd",
        "cmd.exe /c",
        "user",
        "10.0.0.1",
        "192.168.1.20",
        ".dll",
        "curl",
        "http://",
    ];
    let ts = Utc
        .with_ymd_and_hms(2025, 1, 2, 3, 4, 5)
        .single()
        .expect("time");
    let mut line = String::new();
    for _ in 0..(3 + rng.below(6)) {
        line.push_str(WORDS[rng.below(WORDS.len())]);
        line.push(' ');
    }
    let mut ev = Event::new(line.clone(), ts);
    ev.logsource = logsources[rng.below(logsources.len())].clone();
    for f in [
        "Image",
        "CommandLine",
        "ParentImage",
        "user.name",
        "url.original",
        "message",
        "TargetFilename",
    ] {
        if rng.chance(60) {
            ev.fields
                .insert(f, WORDS[rng.below(WORDS.len())].to_string() + &line);
        }
    }
    ev
}

#[test]
fn optimized_evaluator_equals_reference_evaluator() {
    let engine = corpus();
    let ts = Utc
        .with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
        .single()
        .expect("time");
    let mut positives = Vec::new();
    for idx in 0..engine.len() as u32 {
        if let Some(ev) = positive_event(&engine, idx, 7, 4, ts) {
            positives.push((idx, ev));
        }
    }
    println!(
        "positives generated for {} of {} rules",
        positives.len(),
        engine.len()
    );
    assert!(
        positives.len() * 100 >= engine.len() * 90,
        "generator regressed: {}",
        positives.len()
    );
    let logsources: Vec<LogSource> = {
        let mut v: Vec<LogSource> = positives.iter().map(|(_, e)| e.logsource.clone()).collect();
        v.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        v.dedup();
        v
    };
    let mut rng = Rng::new(42);
    let mut events: Vec<Event> = Vec::new();
    for (i, (_, ev)) in positives.iter().enumerate() {
        events.push(ev.clone());
        let donor = &positives[rng.below(positives.len())].1;
        // in debug builds keep the run short; release runs every mutation
        let n = if cfg!(debug_assertions) {
            usize::from(i % 3 == 0)
        } else {
            3
        };
        for _ in 0..n {
            events.push(mutate(ev, donor, &mut rng));
        }
    }
    for _ in 0..1000 {
        events.push(noise(&mut rng, &logsources));
    }
    let mut total_matches = 0usize;
    for (i, ev) in events.iter().enumerate() {
        let fast: Vec<u32> = engine.evaluate(ev).to_vec();
        let naive = engine.evaluate_naive(ev);
        assert_eq!(fast, naive, "event {i} differs: {ev:?}");
        total_matches += fast.len();
    }
    println!(
        "{} events, {} matches, optimized == reference",
        events.len(),
        total_matches
    );
    // every positive fires its own rule on the optimized path too
    for (idx, ev) in &positives {
        assert!(engine.evaluate(ev).contains(idx));
    }
}
