//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use qalqan_core::{Event, LogSource, Value};
use qalqan_sigma::{Engine, LoadReport};

/// `../shared/data` relative to the workspace root, or `QALQAN_SHARED_DATA`.
pub fn shared_data() -> PathBuf {
    if let Ok(p) = std::env::var("QALQAN_SHARED_DATA") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// A path under the shared data, failing loudly when it is absent.
pub fn data_path(rel: &str) -> PathBuf {
    let p = shared_data().join(rel);
    assert!(
        p.exists(),
        "test data missing: {} (set QALQAN_SHARED_DATA to the directory holding loghub/, sigma/ and sigma-specification/)",
        p.display()
    );
    p
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shipped processing pipelines (`rules/pipelines/*.yml`), sorted as
/// the detector loads them; fails loudly when there are none.
pub fn shipped_pipeline_files() -> Vec<PathBuf> {
    let dir = workspace().join("rules/pipelines");
    let files = qalqan_sigma::Pipeline::files_in(&dir).expect("rules/pipelines exists");
    assert!(!files.is_empty(), "no pipelines in {}", dir.display());
    files
}

/// An event with fields, logsource product `test`.
pub fn event(original: &str, fields: &[(&str, Value)]) -> Event {
    let ts = Utc
        .with_ymd_and_hms(2025, 3, 14, 15, 9, 26)
        .single()
        .expect("valid time");
    let mut ev = Event::new(original.to_owned(), ts);
    ev.logsource = LogSource::new(Some("test"), None, None);
    for (k, v) in fields {
        ev.fields.insert(k.to_string(), v.clone());
    }
    ev
}

pub fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

/// A rule for product `test` with the given detection block (YAML,
/// indented by 4 spaces under `detection:`).
pub fn rule_yaml(detection: &str) -> String {
    let mut out = String::from("title: conformance\nid: 00000000-0000-0000-0000-000000000001\nlogsource:\n    product: test\ndetection:\n");
    for line in detection.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Loads one rule, panicking with the report if it did not load.
pub fn engine(detection: &str) -> Engine {
    let (e, report) = Engine::builder().load_str("conformance.yml", &rule_yaml(detection));
    assert_eq!(
        report.loaded, 1,
        "rule did not load: {:#?}",
        report.rejected
    );
    e
}

/// The load report of one rule.
pub fn load(detection: &str) -> LoadReport {
    Engine::builder()
        .load_str("conformance.yml", &rule_yaml(detection))
        .1
}

/// Does the rule match the event? Checks the optimized and the reference
/// evaluator agree, so every conformance test also tests the prefilter.
pub fn matches(e: &Engine, ev: &Event) -> bool {
    let fast = !e.evaluate(ev).is_empty();
    let naive = !e.evaluate_naive(ev).is_empty();
    assert_eq!(
        fast, naive,
        "optimized and reference evaluator disagree on {ev:?}"
    );
    fast
}

/// Shorthand: compile `detection` and match one event.
pub fn hit(detection: &str, ev: &Event) -> bool {
    matches(&engine(detection), ev)
}
