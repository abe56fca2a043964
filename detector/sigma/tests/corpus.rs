//! The SigmaHQ corpus: every rule loads, or is rejected only for a true
//! limitation of the rule or the specification. The counts are pinned so a
//! change in what loads is a visible, reviewed change.

mod common;

use std::collections::BTreeMap;

use qalqan_sigma::{Engine, LoadError, LoadReport, RejectKind};

const RULE_DIRS: [&str; 4] = [
    "sigma/rules",
    "sigma/rules-emerging-threats",
    "sigma/rules-threat-hunting",
    "sigma/rules-placeholder",
];

fn load(dirs: &[&str]) -> LoadReport {
    let paths: Vec<_> = dirs.iter().map(|d| common::data_path(d)).collect();
    let (_, report) = Engine::builder().load_paths(&paths);
    report
}

/// The reasons a corpus rule may be rejected for. Anything else is a bug.
fn allowed(e: &LoadError) -> Option<&'static str> {
    let r = e.reason.as_str();
    match e.kind {
        RejectKind::Compile if r.contains("placeholder %") && r.contains("has no values") => {
            Some("placeholder without configured values (specification: reject)")
        }
        RejectKind::Compile if r.contains("needs a backtracking engine") => {
            Some("regex needs look-around/back-references (linear-time engine)")
        }
        RejectKind::LegacyAggregation => Some("Sigma 1.0 aggregation: use a correlation rule"),
        _ => None,
    }
}

fn summarize(report: &LoadReport) -> BTreeMap<&'static str, Vec<String>> {
    let mut by_reason: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut unexpected = Vec::new();
    for e in &report.rejected {
        match allowed(e) {
            Some(why) => by_reason.entry(why).or_default().push(e.to_string()),
            None => unexpected.push(e.to_string()),
        }
    }
    for (why, list) in &by_reason {
        println!("{} × {why}", list.len());
        for l in list {
            println!("    {l}");
        }
    }
    assert!(
        unexpected.is_empty(),
        "rejections outside the allowed set:\n{}",
        unexpected.join("\n")
    );
    by_reason
}

#[test]
fn sigmahq_corpus_loads_or_is_rejected_for_true_limitations() {
    let report = load(&RULE_DIRS);
    println!(
        "files {} loaded {} rejected {} correlations {} filters {}",
        report.files,
        report.loaded,
        report.rejected.len(),
        report.correlations,
        report.filters
    );
    let by_reason = summarize(&report);
    let count = |k: &str| {
        by_reason
            .iter()
            .filter(|(w, _)| w.contains(k))
            .map(|(_, v)| v.len())
            .sum::<usize>()
    };
    // Pinned counts: update them (and the report) when the corpus or the engine changes.
    assert_eq!(report.files, 3777);
    assert_eq!(report.loaded, 3752);
    assert_eq!(count("placeholder"), 25);
    assert_eq!(count("regex"), 0);
    assert_eq!(report.rejected.len(), 25);
}

#[test]
fn unsupported_rules_point_to_correlations() {
    let report = load(&["sigma/unsupported"]);
    println!(
        "unsupported/: files {} loaded {} rejected {}",
        report.files,
        report.loaded,
        report.rejected.len()
    );
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &report.rejected {
        println!("    {e}");
        let kind = match e.kind {
            RejectKind::LegacyAggregation => {
                assert!(e.reason.contains("correlation rule"), "{e}");
                "legacy aggregation"
            }
            RejectKind::Parse if e.construct == "action" => "Sigma 1.0 collection",
            RejectKind::Parse if e.construct.starts_with("detection.condition") => {
                "pseudo-code condition"
            }
            _ => panic!("unexpected rejection in unsupported/: {e}"),
        };
        *kinds.entry(kind).or_default() += 1;
    }
    println!("{kinds:?}");
    // every file with a `| count()`/`near` condition or a timeframe is rejected
    let rejected: std::collections::BTreeSet<_> =
        report.rejected.iter().map(|e| e.path.clone()).collect();
    for p in walk(&common::data_path("sigma/unsupported")) {
        let t = std::fs::read_to_string(&p).unwrap_or_default();
        let legacy = t
            .lines()
            .any(|l| l.trim_start().starts_with("condition:") && l.contains('|'))
            || t.lines().any(|l| l.trim_start().starts_with("timeframe:"));
        if legacy {
            assert!(
                rejected.contains(&p),
                "{} has a legacy aggregation but loaded",
                p.display()
            );
        }
    }
    assert_eq!(report.files, 87);
    assert_eq!(kinds.get("legacy aggregation"), Some(&56));
    assert_eq!(kinds.get("Sigma 1.0 collection"), Some(&8));
    assert_eq!(kinds.get("pseudo-code condition"), Some(&3));
    assert_eq!(report.loaded, 25);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if p.extension().is_some_and(|x| x == "yml") {
                out.push(p);
            }
        }
    }
    out
}
