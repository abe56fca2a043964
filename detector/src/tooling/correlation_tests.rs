//! Correlation rule tests: a sequence of raw lines (or JSON events) with
//! their own timestamps goes through the parsers, the Sigma engine and the
//! correlation engine, and the alerts of one correlation rule are compared
//! with the expected ones. A [`TestExtension`] of `rules test`.
//!
//! # Format
//!
//! A test document is a correlation test when it has a `correlation` key:
//!
//! ```yaml
//! correlation: 2c6b…        # id or name of the correlation rule under test
//! description: ten failures from one address within five minutes
//! parser: {year: 2026}      # as for rule tests (RFC 3164 lines carry no year)
//! input:                    # fed in event-time order (stable for equal times)
//!   - 'Nov 27 10:00:00 srv1 sshd[1]: Accepted password for bob from 192.0.2.7 port 50000 ssh2'
//!   - line: 'Nov 27 10:00:00 srv1 sshd[2]: Failed password for root from 203.0.113.5 port 4{n} ssh2'
//!     repeat: 12            # twelve copies; `{n}` becomes 1, 2, … 12
//!     every: 5s             # copy i is shifted by (i − 1) × 5s in event time
//! alerts:                   # exactly these alerts of the rule, in any order
//!   - group: {source.ip: 203.0.113.5}   # the alert's group key, all of it
//!     count: 10             # optional: events in the window when it fired
//!     value: 6              # optional: the aggregate (value_* and temporal types)
//!     suppressed: 0         # optional: suppressed alerts carried by this one
//! ```
//!
//! `alerts: []` is a negative test: the input must not make the rule fire.
//! Alerts of other rules are ignored, so one input can be shared by
//! several documents. A case is anything a rule test accepts (a raw line,
//! `line:`, `json:`, with an optional `logsource:`), plus `repeat`/`every`.
//! `{n}` is replaced in `line` and in the text of `json`.
//!
//! The rule under test runs with the correlations it references (and
//! theirs), but without the rules that reference it: a building block
//! that never alerts in the full set (an inner correlation) alerts here,
//! so it can be tested on its own. The engine runs with its default
//! settings; suppression follows each rule's `qalqan.suppress` attribute
//! only (no global policy); the agency is `test`. The input ends with a
//! flush: every window closes as if time ran on.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use qalqan_core::alert::event_id;
use qalqan_core::{Alert, Event};
use qalqan_correlation::{
    BaseRule, CorrelationDoc, CorrelationRule, CorrelationSet, Engine as CorrelationEngine,
    EngineConfig, LoadOptions, MatchedEvent, Output,
};
use qalqan_sigma::Engine;
use serde_yaml::{Mapping, Value as Yaml};

use super::rule_tests::{CaseOutcome, TestContext, TestExtension};

/// Keys a correlation test document may have.
const KEYS: &[&str] = &[
    "correlation",
    "description",
    "parser",
    "logsource",
    "input",
    "alerts",
];

/// At most this many copies per repeated case (keeps a typo from eating memory).
const MAX_REPEAT: u64 = 100_000;

/// The agency every test event belongs to.
const AGENCY: &str = "test";

/// Runs correlation test documents. Remembers which correlation rules were
/// tested, for `rules test --require-tests` ([`CorrelationTests::tested`]).
#[derive(Default)]
pub struct CorrelationTests {
    /// The correlation set built from the engine's documents, once.
    set: OnceLock<Result<Arc<CorrelationSet>, String>>,
    tested: Arc<Mutex<Vec<String>>>,
}

impl CorrelationTests {
    pub fn new() -> Self {
        CorrelationTests::default()
    }

    /// A handle on the ids of the correlation rules tests were run for;
    /// read it after the runner is done.
    pub fn tested(&self) -> Arc<Mutex<Vec<String>>> {
        Arc::clone(&self.tested)
    }

    fn set(&self, engine: &Engine) -> Result<Arc<CorrelationSet>, String> {
        self.set
            .get_or_init(|| {
                let report = load_correlations(engine);
                if report.errors.is_empty() {
                    Ok(Arc::new(report.set))
                } else {
                    Err(report
                        .errors
                        .iter()
                        .map(|e| format!("{}: rule {}: {}", e.file, e.rule, e.reason))
                        .collect::<Vec<_>>()
                        .join("\n"))
                }
            })
            .clone()
    }
}

/// Loads the correlation documents found by the Sigma engine against its
/// detection rules, exactly as the detector does (no field mapping: the
/// correlations name event fields).
pub fn load_correlations(engine: &Engine) -> qalqan_correlation::LoadReport {
    let docs: Vec<CorrelationDoc<'_>> = engine
        .correlations()
        .iter()
        .map(|c| CorrelationDoc {
            path: c.path(),
            index: c.index(),
            doc: &c.doc,
        })
        .collect();
    CorrelationSet::load(&docs, &base_rules(engine), &LoadOptions::default())
}

/// Correlation documents that do not load (for `rules check`), one line
/// each with file, rule and reason. The Sigma loader hands correlations
/// over unparsed; this is where they are validated.
pub fn problems(engine: &Engine) -> Vec<String> {
    load_correlations(engine)
        .errors
        .iter()
        .map(|e| format!("{}: rule {}: {}", e.file, e.rule, e.reason))
        .collect()
}

/// The correlation `id` with the correlations it references, transitively,
/// and nothing that references it: `id` is the root of its own tree.
fn load_alone(engine: &Engine, id: &str) -> anyhow::Result<CorrelationSet> {
    let all = engine.correlations();
    let names_of = |doc: &Yaml| -> [Option<String>; 2] {
        [
            doc.get("id").and_then(Yaml::as_str).map(str::to_owned),
            doc.get("name").and_then(Yaml::as_str).map(str::to_owned),
        ]
    };
    let mut chosen: Vec<usize> = Vec::new();
    let mut queue: Vec<String> = vec![id.to_owned()];
    while let Some(reference) = queue.pop() {
        for (i, c) in all.iter().enumerate() {
            if chosen.contains(&i) || !names_of(&c.doc).iter().flatten().any(|n| *n == reference) {
                continue;
            }
            chosen.push(i);
            let refs = c
                .doc
                .get("correlation")
                .and_then(|k| k.get("rules"))
                .and_then(Yaml::as_sequence);
            queue.extend(
                refs.into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str().map(str::to_owned)),
            );
        }
    }
    chosen.sort_unstable();
    let docs: Vec<CorrelationDoc<'_>> = chosen
        .iter()
        .map(|&i| CorrelationDoc {
            path: all[i].path(),
            index: all[i].index(),
            doc: &all[i].doc,
        })
        .collect();
    let report = CorrelationSet::load(&docs, &base_rules(engine), &LoadOptions::default());
    if let Some(e) = report.errors.first() {
        anyhow::bail!(
            "correlation {id} does not load on its own: {}: {}",
            e.rule,
            e.reason
        );
    }
    Ok(report.set)
}

fn base_rules(engine: &Engine) -> Vec<BaseRule<'_>> {
    engine
        .rules()
        .iter()
        .filter_map(|r| {
            Some(BaseRule {
                id: r.meta.id.as_deref()?,
                name: r.meta.name.as_deref(),
            })
        })
        .collect()
}

/// Correlation rules loaded from files under `paths` that no test
/// document named (for `--require-tests`), as `title (file)`.
pub fn untested(engine: &Engine, paths: &[PathBuf], tested: &[String]) -> Vec<String> {
    let report = load_correlations(engine);
    report
        .set
        .rules()
        .iter()
        .filter(|r| paths.iter().any(|p| r.source.path.starts_with(p)))
        .filter(|r| !tested.contains(&r.id))
        .map(|r| format!("{} ({})", r.meta.title, r.source.path.display()))
        .collect()
}

impl TestExtension for CorrelationTests {
    fn keys(&self) -> &'static [&'static str] {
        &["correlation"]
    }

    fn run(&self, ctx: &TestContext<'_>, doc: &Mapping) -> anyhow::Result<Vec<CaseOutcome>> {
        for k in doc.keys() {
            let k = k.as_str().unwrap_or_default();
            if !KEYS.contains(&k) {
                anyhow::bail!(
                    "unknown key '{k}' in a correlation test (expected {})",
                    KEYS.join(", ")
                );
            }
        }
        let reference = doc
            .get("correlation")
            .and_then(Yaml::as_str)
            .context("`correlation:` must be the id or name of a correlation rule")?;
        let set = self
            .set(ctx.engine)
            .map_err(|e| anyhow::anyhow!("the correlation rules do not load:\n{e}"))?;
        let rule = find_rule(&set, reference).with_context(|| {
            format!("correlation rule '{reference}' is not loaded (missing, or rejected: run `rules check`)")
        })?;
        if let Ok(mut tested) = self.tested.lock() {
            tested.push(rule.id.clone());
        }
        let label = format!(
            "{}:{} correlation {}",
            ctx.file.display(),
            ctx.document + 1,
            rule.meta.title
        );
        let events = read_input(ctx, doc.get("input"))?;
        let expected = parse_expected(doc.get("alerts"))?;
        let alone = Arc::new(load_alone(ctx.engine, &rule.id)?);
        let actual = run_events(ctx.engine, &alone, &events)?;
        let actual: Vec<Alert> = actual
            .into_iter()
            .filter(|a| a.rule.id == rule.id)
            .collect();
        let detail = compare(&expected, &actual);
        Ok(vec![CaseOutcome {
            label,
            passed: detail.is_none(),
            detail: detail.unwrap_or_default(),
        }])
    }
}

fn find_rule<'a>(set: &'a CorrelationSet, reference: &str) -> Option<&'a CorrelationRule> {
    set.rules()
        .iter()
        .find(|r| r.id == reference || r.name.as_deref() == Some(reference))
}

/// Reads every case of `input`, expanding `repeat`, in event-time order.
fn read_input(ctx: &TestContext<'_>, input: Option<&Yaml>) -> anyhow::Result<Vec<Event>> {
    let cases = input
        .and_then(Yaml::as_sequence)
        .context("`input:` must be a list of cases")?;
    let mut events = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let n = i + 1;
        let (repeat, every) = repetition(case).with_context(|| format!("input #{n}"))?;
        for copy in 1..=repeat {
            let instance = if repeat > 1 || mentions_counter(case) {
                substitute(case, copy).with_context(|| format!("input #{n}"))?
            } else {
                case.clone()
            };
            let mut ev = ctx
                .read_case(&instance)
                .with_context(|| format!("input #{n}"))?;
            let shift = every
                .checked_mul(u32::try_from(copy - 1).unwrap_or(u32::MAX))
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .context("`repeat` × `every` is too long")?;
            ev.timestamp += shift;
            events.push(ev);
        }
    }
    // Stable: equal times keep the order of the file.
    events.sort_by_key(|e| e.timestamp);
    Ok(events)
}

/// `repeat` (default 1) and `every` (default 1s) of a case.
fn repetition(case: &Yaml) -> anyhow::Result<(u64, Duration)> {
    let Some(m) = case.as_mapping() else {
        return Ok((1, Duration::from_secs(1)));
    };
    let repeat = match m.get("repeat") {
        None => 1,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=MAX_REPEAT).contains(n))
            .with_context(|| format!("`repeat` must be a whole number from 1 to {MAX_REPEAT}"))?,
    };
    let every = match m.get("every") {
        None => Duration::from_secs(1),
        Some(v) => {
            let text = v
                .as_str()
                .context("`every` must be a duration such as `5s`")?;
            qalqan_core::config::parse_duration(text)
                .map_err(|e| anyhow::anyhow!("`every`: {e}"))?
        }
    };
    Ok((repeat, every))
}

fn mentions_counter(case: &Yaml) -> bool {
    match case {
        Yaml::String(s) => s.contains("{n}"),
        Yaml::Mapping(m) => m
            .get("line")
            .and_then(Yaml::as_str)
            .is_some_and(|s| s.contains("{n}")),
        _ => false,
    }
}

/// The case with `{n}` replaced by `copy` in its line or JSON text, and
/// without the repetition keys (which a rule-test case does not know).
fn substitute(case: &Yaml, copy: u64) -> anyhow::Result<Yaml> {
    let n = copy.to_string();
    match case {
        Yaml::String(s) => Ok(Yaml::String(s.replace("{n}", &n))),
        Yaml::Mapping(m) => {
            let mut out = Mapping::new();
            for (k, v) in m {
                match k.as_str() {
                    Some("repeat") | Some("every") => {}
                    Some("line") => {
                        let line = v.as_str().context("`line` must be text")?;
                        out.insert(k.clone(), Yaml::String(line.replace("{n}", &n)));
                    }
                    Some("json") => {
                        let text = match v {
                            Yaml::String(t) => t.clone(),
                            other => serde_json::to_string(
                                &serde_json::to_value(other)
                                    .context("json: not representable as JSON")?,
                            )?,
                        };
                        out.insert(k.clone(), Yaml::String(text.replace("{n}", &n)));
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            Ok(Yaml::Mapping(out))
        }
        _ => anyhow::bail!("a case is a raw line, `line: ...` or `json: ...`"),
    }
}

/// Runs events through both stages and returns every correlation alert.
fn run_events(
    engine: &Engine,
    set: &Arc<CorrelationSet>,
    events: &[Event],
) -> anyhow::Result<Vec<Alert>> {
    let mut correlation = CorrelationEngine::new(Arc::clone(set), EngineConfig::default())
        .map_err(|errors| {
            anyhow::anyhow!(
                "the correlation engine refused the rules: {}",
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.rule, e.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })?;
    let mut out = Output::default();
    let mut signals = Vec::new();
    for (ordinal, ev) in events.iter().enumerate() {
        let matched: Vec<&str> = engine
            .evaluate(ev)
            .iter()
            .filter_map(|&idx| engine.rule(idx).meta.id.as_deref())
            .filter(|id| set.is_referenced(id))
            .collect();
        if matched.is_empty() {
            continue;
        }
        let ordinal = ordinal as u64;
        let id = event_id(&[ev.original.as_bytes(), &ordinal.to_be_bytes()]);
        signals.clear();
        set.signals(
            MatchedEvent {
                event: ev,
                agency: AGENCY,
                event_id: &id,
                ordinal,
            },
            &matched,
            &mut signals,
        );
        for s in signals.drain(..) {
            correlation.process(0, &s, &mut out);
        }
    }
    correlation.flush(&mut out);
    if let Some(late) = out.late.first() {
        anyhow::bail!(
            "{} signal(s) arrived late (first: rule {} at {}); this should not happen with sorted input",
            out.late.len(),
            late.signal.correlation,
            late.signal.timestamp
        );
    }
    if let Some(r) = out.rejected.first() {
        anyhow::bail!("a signal was rejected: {}", r.reason);
    }
    Ok(out.alerts)
}

/// One expected alert.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    group: BTreeMap<String, String>,
    count: Option<u64>,
    value: Option<f64>,
    suppressed: Option<u64>,
}

fn parse_expected(v: Option<&Yaml>) -> anyhow::Result<Vec<Expected>> {
    let list = v
        .and_then(Yaml::as_sequence)
        .context("`alerts:` must be a list of expected alerts (`[]` for none)")?;
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let n = i + 1;
        let m = item
            .as_mapping()
            .with_context(|| format!("alerts #{n}: must be a mapping"))?;
        let mut e = Expected {
            group: BTreeMap::new(),
            count: None,
            value: None,
            suppressed: None,
        };
        for (k, v) in m {
            match k.as_str().unwrap_or_default() {
                "group" => {
                    let g = v.as_mapping().with_context(|| {
                        format!("alerts #{n}: `group` must map fields to values")
                    })?;
                    for (gk, gv) in g {
                        let key = gk
                            .as_str()
                            .with_context(|| format!("alerts #{n}: group keys are field names"))?;
                        let value = scalar_text(gv).with_context(|| {
                            format!("alerts #{n}: group.{key} must be a scalar")
                        })?;
                        e.group.insert(key.to_owned(), value);
                    }
                }
                "count" => {
                    e.count =
                        Some(v.as_u64().with_context(|| {
                            format!("alerts #{n}: `count` must be a whole number")
                        })?)
                }
                "value" => {
                    e.value = Some(
                        v.as_f64()
                            .with_context(|| format!("alerts #{n}: `value` must be a number"))?,
                    )
                }
                "suppressed" => {
                    e.suppressed = Some(v.as_u64().with_context(|| {
                        format!("alerts #{n}: `suppressed` must be a whole number")
                    })?)
                }
                other => anyhow::bail!(
                    "alerts #{n}: unknown key '{other}' (expected group, count, value, suppressed)"
                ),
            }
        }
        out.push(e);
    }
    Ok(out)
}

fn scalar_text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn satisfies(e: &Expected, a: &Alert) -> bool {
    e.group == a.group
        && e.count.is_none_or(|c| c == a.count)
        && e.value.is_none_or(|v| {
            a.value
                .is_some_and(|x| (x - v).abs() <= 1e-9 * v.abs().max(1.0))
        })
        && e.suppressed.is_none_or(|s| s == a.suppressed)
}

/// `None` when the alerts are exactly the expected ones (each expected
/// alert matched by a different actual one, none left over); otherwise what
/// differs, with every actual alert listed.
fn compare(expected: &[Expected], actual: &[Alert]) -> Option<String> {
    let mut used = vec![false; actual.len()];
    let mut missing = Vec::new();
    for e in expected {
        match (0..actual.len()).find(|&i| !used[i] && satisfies(e, &actual[i])) {
            Some(i) => used[i] = true,
            None => missing.push(e),
        }
    }
    let extra: Vec<&Alert> = actual
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(a, _)| a)
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return None;
    }
    let mut s = format!(
        "expected {} alert(s), the rule gave {}\n",
        expected.len(),
        actual.len()
    );
    for e in missing {
        s.push_str(&format!(
            "  missing: group {:?}{}{}{}\n",
            e.group,
            e.count.map(|c| format!(" count {c}")).unwrap_or_default(),
            e.value.map(|v| format!(" value {v}")).unwrap_or_default(),
            e.suppressed
                .map(|v| format!(" suppressed {v}"))
                .unwrap_or_default()
        ));
    }
    for a in extra {
        s.push_str(&format!("  unexpected: {}\n", describe(a)));
    }
    s.push_str("  all alerts of the rule:\n");
    for a in actual {
        s.push_str(&format!("    {}\n", describe(a)));
    }
    Some(s)
}

fn describe(a: &Alert) -> String {
    format!(
        "group {:?} count {}{} suppressed {} window {} .. {}",
        a.group,
        a.count,
        a.value.map(|v| format!(" value {v}")).unwrap_or_default(),
        a.suppressed,
        a.window_start.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        a.window_end.format("%Y-%m-%dT%H:%M:%S%.3fZ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tooling::rule_tests::TestRunner;

    const RULES: &str = r#"
title: failed login
id: 00000000-0000-4000-8000-000000000001
name: failed
logsource: {product: linux, service: sshd}
detection:
  selection: {event.action: ssh_login, event.outcome: failure}
  condition: selection
---
title: burst
id: 00000000-0000-4000-8000-000000000002
name: burst
correlation: {type: event_count, rules: [failed], group-by: [source.ip], timespan: 1m, condition: {gte: 3}}
---
title: burst then more
id: 00000000-0000-4000-8000-000000000003
name: outer
correlation: {type: event_count, rules: [burst], group-by: [source.ip], timespan: 10m, condition: {gte: 2}}
"#;

    const FAIL: &str =
        "Nov 27 10:00:00 srv1 sshd[1]: Failed password for root from 203.0.113.5 port 4{n} ssh2";

    fn yaml(text: &str) -> Yaml {
        serde_yaml::from_str(text).expect("yaml")
    }

    /// Runs one test file's text against RULES; returns (passed, failed, details).
    fn run(tests: &str) -> (usize, usize, String) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "qalqan-correlation-tests-{}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("r.yml"), RULES).expect("write rules");
        std::fs::write(dir.join("r.tests.yml"), tests).expect("write tests");
        let (engine, report) = Engine::builder().load_paths(&[&dir]);
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        let ext = CorrelationTests::new();
        let tested = ext.tested();
        let summary = TestRunner::new()
            .extension(Box::new(ext))
            .run(&engine, std::slice::from_ref(&dir))
            .expect("runs");
        let _ = std::fs::remove_dir_all(&dir);
        let details: Vec<String> = summary
            .outcomes
            .iter()
            .filter(|o| !o.passed)
            .map(|o| format!("{}: {}", o.label, o.detail))
            .collect();
        assert!(!tested.lock().expect("lock").is_empty() || summary.failed > 0);
        (summary.passed, summary.failed, details.join("\n"))
    }

    #[test]
    fn a_matching_expectation_passes_and_a_wrong_one_fails() {
        let doc = format!(
            "correlation: burst\nparser: {{year: 2026}}\ninput:\n  - line: '{FAIL}'\n    repeat: 4\n    every: 5s\nalerts:\n  - group: {{source.ip: 203.0.113.5}}\n    count: 3\n"
        );
        assert_eq!(run(&doc), (1, 0, String::new()));
        let wrong = doc.replace("count: 3", "count: 4");
        let (passed, failed, details) = run(&wrong);
        assert_eq!((passed, failed), (0, 1));
        assert!(details.contains("missing: group"), "{details}");
        assert!(details.contains("unexpected: group"), "{details}");
    }

    #[test]
    fn an_empty_expectation_fails_when_the_rule_fires() {
        let doc = format!(
            "correlation: burst\nparser: {{year: 2026}}\ninput:\n  - line: '{FAIL}'\n    repeat: 3\nalerts: []\n"
        );
        let (_, failed, details) = run(&doc);
        assert_eq!(failed, 1, "{details}");
        let quiet = doc.replace("repeat: 3", "repeat: 2");
        assert_eq!(run(&quiet).1, 0);
    }

    #[test]
    fn an_inner_correlation_alerts_when_tested_on_its_own() {
        // In the full set `burst` only feeds `outer`; tested alone it alerts.
        let doc = format!(
            "correlation: burst\nparser: {{year: 2026}}\ninput:\n  - line: '{FAIL}'\n    repeat: 3\nalerts:\n  - group: {{source.ip: 203.0.113.5}}\n---\ncorrelation: outer\nparser: {{year: 2026}}\ninput:\n  - line: '{FAIL}'\n    repeat: 12\n    every: 10s\nalerts:\n  - group: {{source.ip: 203.0.113.5}}\n    count: 2\n"
        );
        assert_eq!(run(&doc), (2, 0, String::new()));
    }

    #[test]
    fn bad_documents_fail_with_a_reason() {
        for (doc, why) in [
            ("correlation: nosuch\ninput: []\nalerts: []\n", "not loaded"),
            (
                "correlation: burst\ninput: []\nalerts: []\ncolour: red\n",
                "unknown key 'colour'",
            ),
            (
                "correlation: burst\ninput: x\nalerts: []\n",
                "`input:` must be a list",
            ),
            (
                "correlation: burst\ninput: []\n",
                "`alerts:` must be a list",
            ),
            (
                "correlation: burst\ninput: []\nalerts: [{group: {a: 1}, colour: 2}]\n",
                "unknown key 'colour'",
            ),
            (
                "correlation: burst\ninput: [{line: x, repeat: 0}]\nalerts: []\n",
                "`repeat` must be",
            ),
            (
                "correlation: burst\ninput: [{line: x, every: soon}]\nalerts: []\n",
                "`every`",
            ),
        ] {
            let (passed, failed, details) = run(doc);
            assert_eq!((passed, failed), (0, 1), "{doc}");
            assert!(details.contains(why), "{doc}: {details}");
        }
    }

    #[test]
    fn repeated_cases_count_and_shift() {
        let case = yaml("{line: 'a {n} b', repeat: 3, every: 2s, logsource: {product: x}}");
        assert_eq!(repetition(&case).expect("ok"), (3, Duration::from_secs(2)));
        let second = substitute(&case, 2).expect("ok");
        assert_eq!(second.get("line").and_then(Yaml::as_str), Some("a 2 b"));
        assert!(second.get("repeat").is_none() && second.get("every").is_none());
        assert!(second.get("logsource").is_some());
        let json = yaml("{json: {user: 'u{n}'}, repeat: 2}");
        let text = substitute(&json, 2).expect("ok");
        assert_eq!(
            text.get("json").and_then(Yaml::as_str),
            Some(r#"{"user":"u2"}"#)
        );
        assert_eq!(repetition(&yaml("'plain line'")).expect("ok").0, 1);
    }
}
