//! SigmaHQ rules for the logsources the collector produces (Linux services,
//! web servers, proxies, firewalls, DNS, network devices) with the shipped
//! pipelines: they fire where they should and nowhere else.
//!
//! * Every in-scope rule gets a synthetic positive built from its own
//!   detection (in the ECS names its pipeline maps to); it must fire.
//! * Keyword rules for sshd/syslog are also fired end to end: a real syslog
//!   line through `qalqan_core::parse::Parser`, so the parser's logsource and
//!   the rule's routing must agree.
//! * Benign traffic (ordinary logins, sudo, cron, web requests, firewall
//!   accepts) fires nothing.
//! * The loghub OpenSSH sample fires exactly what an independent keyword
//!   oracle (written here from the rules' YAML) says.
#![allow(clippy::type_complexity, clippy::match_like_matches_macro)] // test oracles, written to be read against the spec

mod common;
mod oracle;

#[path = "../benches/lanes/mod.rs"]
#[allow(dead_code)] // the Windows lane is out of this file's scope
mod lanes;

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use qalqan_core::parse::{ParseOptions, Parser};
use qalqan_core::Event;
use qalqan_sigma::synth::positive_event;
use qalqan_sigma::{Engine, LogsourceSpec, Pipeline};

fn pipelines() -> Vec<Pipeline> {
    common::shipped_pipeline_files()
        .iter()
        .map(|p| Pipeline::from_path(p).expect("shipped pipeline loads"))
        .collect()
}

fn corpus_engine() -> Engine {
    let dirs = [
        "sigma/rules",
        "sigma/rules-emerging-threats",
        "sigma/rules-threat-hunting",
        "sigma/rules-placeholder",
    ];
    let paths: Vec<_> = dirs.iter().map(|d| common::data_path(d)).collect();
    let mut b = Engine::builder();
    for p in pipelines() {
        b = b.pipeline(p);
    }
    let (e, report) = b.load_paths(&paths);
    assert_eq!(
        report.loaded,
        3752,
        "shipped pipelines must not change what loads: {:?}",
        report.rejected.iter().take(5).collect::<Vec<_>>()
    );
    e
}

/// The logsources the collector's parsers produce (plus network devices).
fn in_scope(ls: &LogsourceSpec) -> bool {
    let p = ls.product.as_deref();
    let s = ls.service.as_deref();
    let c = ls.category.as_deref();
    match (p, s, c) {
        (
            Some("linux"),
            Some("sshd" | "sudo" | "auth" | "syslog" | "cron" | "vsftpd" | "clamav" | "guacamole"),
            None,
        ) => true,
        (Some("linux"), None, None) => true,
        (_, _, Some("webserver" | "proxy" | "firewall" | "dns")) => true,
        (None, Some("apache" | "nginx"), None) => true,
        (Some("cisco" | "juniper" | "huawei"), _, None) => true,
        _ => false,
    }
}

fn parser() -> Parser {
    Parser::new(ParseOptions {
        rfc3164_year: Some(2015),
        ..ParseOptions::default()
    })
}

#[test]
fn every_in_scope_rule_fires_on_its_synthetic_positive() {
    let engine = corpus_engine();
    let ts = Utc
        .with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
        .single()
        .expect("time");
    let scope: Vec<u32> = (0..engine.len() as u32)
        .filter(|&i| in_scope(&engine.rule(i).logsource))
        .collect();
    assert_eq!(scope.len(), 204, "in-scope rules changed");
    let mut missing = Vec::new();
    let mut co_fires = 0usize;
    for &idx in &scope {
        match positive_event(&engine, idx, 11, 8, ts) {
            Some(ev) => {
                let fast = engine.evaluate(&ev);
                assert!(
                    fast.contains(&idx),
                    "rule {} did not fire on its positive",
                    engine.rule(idx).meta.title
                );
                assert_eq!(fast.to_vec(), engine.evaluate_naive(&ev));
                co_fires += fast.len() - 1;
            }
            None => missing.push(engine.rule(idx).meta.title.clone()),
        }
    }
    println!(
        "in-scope rules {}, positives {}, co-firing rules {}",
        scope.len(),
        scope.len() - missing.len(),
        co_fires
    );
    assert!(
        missing.is_empty(),
        "no positive could be built for: {missing:?}"
    );
}

/// Variants of a positive that should each change what fires, or not:
/// every field the rule reads set to an address or a word; every field
/// removed in turn; every text field changed to an unrelated
/// value, upper-cased, or given text before or after it (which breaks
/// exact, prefix and suffix matches but not substrings); addresses moved in
/// and out of private ranges; the raw line replaced or upper-cased.
fn near_misses(ev: &Event, rule_fields: &[String]) -> Vec<Event> {
    let mut out = Vec::new();
    // every field the rule reads, its filters' too, set to an address in or
    // out of the private ranges, or to a word
    for f in rule_fields {
        for v in ["10.20.30.40", "8.8.4.4", "fd00::1", "unrelated-value"] {
            let mut m = ev.clone();
            m.fields
                .insert(f.clone(), qalqan_core::Value::Str(v.to_owned()));
            out.push(m);
        }
    }
    let names: Vec<String> = ev.fields.iter().map(|(k, _)| k.to_owned()).collect();
    for n in &names {
        let mut m = ev.clone();
        m.fields.remove(n);
        out.push(m);
        if let Some(qalqan_core::Value::Str(s)) = ev.fields.get(n) {
            let mut variants = vec![
                "unrelated-value".to_owned(),
                s.to_uppercase(),
                format!("head-{s}"),
                format!("{s}-tail"),
            ];
            if s.parse::<std::net::IpAddr>().is_ok() {
                // addresses inside and outside the private ranges rules filter on
                for ip in [
                    "10.20.30.40",
                    "192.168.1.7",
                    "127.0.0.1",
                    "fd00::1",
                    "8.8.4.4",
                ] {
                    variants.push(ip.to_owned());
                }
            }
            for changed in variants {
                let mut m = ev.clone();
                m.fields.insert(n.clone(), qalqan_core::Value::Str(changed));
                out.push(m);
            }
        }
    }
    for original in [
        "an ordinary log line".to_owned(),
        ev.original.to_uppercase(),
    ] {
        let mut m = ev.clone();
        m.original = original;
        out.push(m);
    }
    out
}

/// The oracle's reading of every in-scope rule of `engine`, by rule index.
fn oracles(engine: &Engine) -> Vec<(u32, oracle::OracleRule)> {
    let maps = oracle::Mappings::read(&common::shipped_pipeline_files())
        .expect("pipelines readable by the oracle");
    let mut unreadable = Vec::new();
    let oracles: Vec<(u32, oracle::OracleRule)> = (0..engine.len() as u32)
        .filter(|&i| in_scope(&engine.rule(i).logsource))
        .filter_map(|idx| {
            let src = &engine.rule(idx).source;
            match oracle::OracleRule::read(&src.path, src.index, &maps) {
                Ok(o) => Some((idx, o)),
                Err(e) => {
                    unreadable.push(format!("{}: {e}", src.path.display()));
                    None
                }
            }
        })
        .collect();
    assert!(
        unreadable.is_empty(),
        "the oracle cannot read: {unreadable:#?}"
    );
    assert_eq!(oracles.len(), 204);
    oracles
}

/// Engine and oracle agree on everything that fires on `ev`.
fn assert_agree(
    engine: &Engine,
    oracles: &[(u32, oracle::OracleRule)],
    ev: &Event,
    what: &str,
) -> usize {
    let title = |i: &u32| engine.rule(*i).meta.title.clone();
    let expected: BTreeSet<u32> = oracles
        .iter()
        .filter(|(_, o)| o.matches(ev))
        .map(|(i, _)| *i)
        .collect();
    let actual: BTreeSet<u32> = engine.evaluate(ev).iter().copied().collect();
    if actual != expected {
        panic!(
            "{what}: engine and oracle disagree\n  only the engine: {:?}\n  only the oracle: {:?}\n  event: {ev:?}",
            actual.difference(&expected).map(title).collect::<Vec<_>>(),
            expected.difference(&actual).map(title).collect::<Vec<_>>(),
        );
    }
    actual.len()
}

#[test]
fn in_scope_rules_fire_where_an_independent_reading_says_and_nowhere_else() {
    let engine = corpus_engine();
    let oracles = oracles(&engine);
    let ts = Utc
        .with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
        .single()
        .expect("time");
    let title = |i: &u32| engine.rule(*i).meta.title.clone();
    let mut checked = 0usize;
    let mut fired_total = 0usize;
    for &(idx, ref own) in &oracles {
        let positive = positive_event(&engine, idx, 11, 8, ts)
            .unwrap_or_else(|| panic!("no positive for {}", title(&idx)));
        assert!(
            own.matches(&positive),
            "{}: the oracle does not accept the synthetic positive {positive:?}",
            own.title
        );
        let variants = near_misses(&positive, &own.fields());
        for ev in std::iter::once(positive.clone()).chain(variants) {
            fired_total += assert_agree(
                &engine,
                &oracles,
                &ev,
                &format!("near miss of {}", own.title),
            );
            checked += 1;
        }
    }
    println!(
        "{} in-scope rules read by the oracle; {checked} events (positives and near misses) agree; {fired_total} matches",
        oracles.len()
    );
}

#[test]
fn realistic_syslog_and_web_lanes_fire_what_the_independent_reading_says() {
    let engine = corpus_engine();
    let oracles = oracles(&engine);
    let now = Utc
        .with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
        .single()
        .expect("time");
    let n = if cfg!(debug_assertions) {
        3_000
    } else {
        20_000
    };
    let syslog = Parser::new(ParseOptions::default());
    let web = Parser::new(ParseOptions {
        web_product: Some("nginx".into()),
        ..ParseOptions::default()
    });
    let mut rng = qalqan_sigma::synth::Rng::new(23);
    let (mut syslog_matches, mut web_matches) = (0, 0);
    for _ in 0..n {
        let line = lanes::syslog_line(&mut rng);
        syslog_matches += assert_agree(
            &engine,
            &oracles,
            &syslog.parse(line.as_bytes(), now).event,
            &line,
        );
        let line = lanes::web_line(&mut rng);
        web_matches += assert_agree(
            &engine,
            &oracles,
            &web.parse(line.as_bytes(), now).event,
            &line,
        );
    }
    println!("lanes: {n} syslog lines ({syslog_matches} matches), {n} web lines ({web_matches} matches) agree");
    assert!(
        syslog_matches > 0 && web_matches > 0,
        "the lanes carry attacks"
    );
}

#[test]
fn keyword_rules_fire_end_to_end_through_the_parser() {
    let engine = corpus_engine();
    let parser = parser();
    let now = Utc
        .with_ymd_and_hms(2015, 12, 31, 0, 0, 0)
        .single()
        .expect("time");
    let mut checked = 0;
    for idx in 0..engine.len() as u32 {
        let r = engine.rule(idx);
        let ls = &r.logsource;
        let program = match (
            ls.product.as_deref(),
            ls.service.as_deref(),
            ls.category.as_deref(),
        ) {
            (Some("linux"), Some("sshd"), None) => "sshd",
            (Some("linux"), Some("syslog"), None) => "systemd",
            (Some("linux"), None, None) => "kernel",
            _ => continue,
        };
        let Some(ev) = positive_event(&engine, idx, 3, 8, now) else {
            continue;
        };
        if ev.fields.iter().next().is_some() {
            continue; // field rules are covered by the synthetic-positive test
        }
        let line = format!("Dec 10 06:55:46 LabSZ {program}[24200]: {}", ev.original);
        let parsed = parser.parse(line.as_bytes(), now).event;
        let fired = engine.evaluate(&parsed);
        assert!(
            fired.contains(&idx),
            "{} did not fire end to end on {line:?} (parsed logsource {:?})",
            r.meta.title,
            parsed.logsource
        );
        checked += 1;
    }
    println!("keyword rules fired end to end: {checked}");
    assert!(checked >= 15, "{checked}");
}

#[test]
fn benign_traffic_fires_nothing() {
    let engine = corpus_engine();
    let parser = Parser::new(ParseOptions {
        rfc3164_year: Some(2025),
        web_product: Some("nginx".into()),
        ..ParseOptions::default()
    });
    let now = Utc
        .with_ymd_and_hms(2025, 12, 31, 0, 0, 0)
        .single()
        .expect("time");
    let lines = [
        "Mar  3 10:00:01 web1 sshd[811]: Accepted publickey for deploy from 10.1.2.3 port 52311 ssh2: ED25519 SHA256:abc",
        "Mar  3 10:00:02 web1 sshd[811]: pam_unix(sshd:session): session opened for user deploy(uid=1001) by (uid=0)",
        "Mar  3 10:00:05 web1 sshd[812]: Failed password for alice from 10.1.2.4 port 50000 ssh2",
        "Mar  3 10:00:09 web1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx",
        "Mar  3 10:01:00 web1 CRON[900]: (root) CMD (run-parts /etc/cron.hourly)",
        "Mar  3 10:02:00 web1 kernel: [ 8457.246354] [UFW ALLOW] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=10.1.2.3 DST=10.1.2.9 LEN=60 TOS=0x00 PREC=0x00 TTL=49 ID=0 DF PROTO=TCP SPT=44226 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0",
        "Mar  3 10:03:00 web1 systemd[1]: Started Daily apt upgrade and clean activities.",
        "203.0.113.9 - - [03/Mar/2025:10:04:00 +0000] \"GET /index.html HTTP/1.1\" 200 2326 \"https://example.org/\" \"Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0\"",
        "203.0.113.9 - - [03/Mar/2025:10:04:01 +0000] \"GET /search?q=tax+forms&page=2 HTTP/1.1\" 200 9911 \"-\" \"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0\"",
        "198.51.100.7 - bob [03/Mar/2025:10:04:02 +0000] \"POST /api/v1/forms HTTP/1.1\" 201 77 \"https://portal.gov.example/\" \"Mozilla/5.0 (Macintosh) Safari/605.1.15\"",
    ];
    for line in lines {
        let ev = parser.parse(line.as_bytes(), now).event;
        let fired: Vec<String> = engine
            .evaluate(&ev)
            .iter()
            .map(|&i| engine.rule(i).meta.title.clone())
            .collect();
        assert!(
            fired.is_empty(),
            "benign line fired {fired:?}: {line}\n{ev:?}"
        );
        assert!(
            ev.logsource != qalqan_core::LogSource::default(),
            "parser gave no logsource: {line}"
        );
    }
}

/// Keyword oracle, independent of the engine: the rule's own YAML, read
/// here. A search is a keyword list (any keyword occurs in the raw line,
/// case-insensitively) or an `'|all'` list (every keyword occurs); the
/// condition is `a` or `a and not b`.
fn keyword_oracle(path: &std::path::Path, index: usize) -> Option<Box<dyn Fn(&str) -> bool>> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).ok()?;
    let doc = serde_yaml::Value::deserialize(serde_yaml::Deserializer::from_str(&text).nth(index)?)
        .ok()?;
    let det = doc.get("detection")?.as_mapping()?;
    let search = |name: &str| -> Option<(Vec<String>, bool)> {
        match det.get(name)? {
            serde_yaml::Value::Sequence(seq) => Some((
                seq.iter()
                    .map(|v| v.as_str().map(str::to_lowercase))
                    .collect::<Option<_>>()?,
                false,
            )),
            serde_yaml::Value::Mapping(m) if m.len() == 1 => {
                let (k, v) = m.iter().next()?;
                (k.as_str()? == "|all").then_some(())?;
                Some((
                    v.as_sequence()?
                        .iter()
                        .map(|v| v.as_str().map(str::to_lowercase))
                        .collect::<Option<_>>()?,
                    true,
                ))
            }
            _ => None,
        }
    };
    let cond = det.get("condition")?.as_str()?.trim().to_owned();
    // terms joined by `and`: `a`, `not a`, `all of p*`, `1 of p*`
    let names: Vec<String> = det
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .filter(|k| k != "condition")
        .collect();
    let mut terms: Vec<(bool, bool, Vec<(Vec<String>, bool)>)> = Vec::new(); // (negated, all, searches)
    let words: Vec<&str> = cond.split_whitespace().collect();
    let mut i = 0;
    while i < words.len() {
        let (neg, rest) = if words[i] == "not" {
            (true, i + 1)
        } else {
            (false, i)
        };
        let (all, chosen, next) = match words.get(rest..rest + 3) {
            Some([q @ ("all" | "1"), "of", pat]) => {
                let prefix = pat.strip_suffix('*')?;
                let chosen: Vec<String> = names
                    .iter()
                    .filter(|n| n.starts_with(prefix))
                    .cloned()
                    .collect();
                (*q == "all", chosen, rest + 3)
            }
            _ => (true, vec![words.get(rest)?.to_string()], rest + 1),
        };
        terms.push((
            neg,
            all,
            chosen.iter().map(|n| search(n)).collect::<Option<_>>()?,
        ));
        i = next;
        match words.get(i) {
            None => {}
            Some(&"and") => i += 1,
            Some(_) => return None,
        }
    }
    // `*` in a keyword: its pieces occur in order
    let occurs = |k: &str, line: &str| {
        let mut rest = line;
        for piece in k.split('*') {
            match rest.find(piece) {
                Some(p) => rest = &rest[p + piece.len()..],
                None => return false,
            }
        }
        true
    };
    let test = move |(kws, all): &(Vec<String>, bool), line: &str| {
        if *all {
            kws.iter().all(|k| occurs(k, line))
        } else {
            kws.iter().any(|k| occurs(k, line))
        }
    };
    Some(Box::new(move |line: &str| {
        let line = line.to_lowercase();
        terms.iter().all(|(neg, all, searches)| {
            let v = if *all {
                searches.iter().all(|s| test(s, &line))
            } else {
                searches.iter().any(|s| test(s, &line))
            };
            v != *neg
        })
    }))
}

#[test]
fn loghub_openssh_sample_fires_exactly_the_expected_rules() {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sshd_keywords.yml");
    for (engine, min_expected) in [
        (corpus_engine(), 0),
        (Engine::builder().load_paths(&[local]).0, 3),
    ] {
        check_loghub(&engine, min_expected);
    }
}

fn check_loghub(engine: &Engine, min_expected: usize) {
    let parser = parser();
    let text =
        std::fs::read_to_string(common::data_path("loghub/OpenSSH_2k.log")).expect("loghub sample");
    let now = Utc
        .with_ymd_and_hms(2015, 12, 31, 0, 0, 0)
        .single()
        .expect("time");
    let events: Vec<Event> = text
        .lines()
        .map(|l| parser.parse(l.as_bytes(), now).event)
        .collect();
    assert_eq!(events.len(), 2000);
    // every line is sshd's
    assert!(events
        .iter()
        .all(|e| e.logsource.product.as_deref() == Some("linux")
            && e.logsource.service.as_deref() == Some("sshd")));
    let applicable = engine.rules_for(&events[0].logsource);
    let mut expected: BTreeSet<(usize, u32)> = BTreeSet::new();
    for &idx in &applicable {
        let r = engine.rule(idx);
        let oracle = keyword_oracle(&r.source.path, r.source.index).unwrap_or_else(|| {
            panic!(
                "rule {} applies to sshd events but is not a plain keyword rule: extend the oracle",
                r.meta.title
            )
        });
        for (i, e) in events.iter().enumerate() {
            if oracle(&e.original) {
                expected.insert((i, idx));
            }
        }
    }
    let mut actual = BTreeSet::new();
    for (i, e) in events.iter().enumerate() {
        for idx in engine.evaluate(e) {
            actual.insert((i, idx));
        }
    }
    let mut per_rule: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (_, idx) in &actual {
        *per_rule
            .entry(engine.rule(*idx).meta.title.as_str())
            .or_default() += 1;
    }
    println!(
        "loghub: {} applicable rules, {} expected matches, {} actual: {per_rule:?}",
        applicable.len(),
        expected.len(),
        actual.len()
    );
    assert_eq!(actual, expected);
    assert!(actual.len() >= min_expected);
    let fired_rules: BTreeSet<u32> = actual.iter().map(|(_, r)| *r).collect();
    assert!(fired_rules.len() >= min_expected.min(3));
}
