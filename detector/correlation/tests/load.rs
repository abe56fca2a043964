//! Rule-set loading: what is rejected, with file, rule and reason.

mod common;

use common::*;

const BASE: &[(&str, Option<&str>)] = &[
    ("r1", Some("one")),
    ("r2", Some("two")),
    ("r3", Some("two")),
];

fn errors(yaml: &str) -> Vec<String> {
    load(yaml, BASE)
        .errors
        .iter()
        .map(|e| e.to_string())
        .collect()
}

fn assert_rejected(yaml: &str, rule: &str, reason: &str) {
    let errs = errors(yaml);
    assert!(
        errs.iter()
            .any(|e| e.contains(&format!("`{rule}`")) && e.contains(reason)),
        "expected `{rule}` rejected for \"{reason}\", got {errs:#?}"
    );
    assert!(
        errs.iter().all(|e| e.starts_with("rules/test.yml")),
        "{errs:?}"
    );
}

#[test]
fn references_must_resolve() {
    assert_rejected(
        "title: a\nid: a\ncorrelation: {type: event_count, rules: [nothing], timespan: 1m, condition: {gte: 2}}",
        "a",
        "no loaded rule's id or name",
    );
    assert_rejected(
        "title: a\nid: a\ncorrelation: {type: event_count, rules: [two], timespan: 1m, condition: {gte: 2}}",
        "a",
        "ambiguous",
    );
    assert_rejected(
        "title: a\nid: a\ncorrelation: {type: event_count, rules: [a], timespan: 1m, condition: {gte: 2}}",
        "a",
        "references itself",
    );
    assert_rejected(
        "title: a\nid: a\ncorrelation: {type: event_count, rules: [one, r1], timespan: 1m, condition: {gte: 2}}",
        "a",
        "same rule twice",
    );
}

#[test]
fn ids_are_unique() {
    let yaml = "title: a\nid: a\ncorrelation: {type: event_count, rules: [r1], timespan: 1m, condition: {gte: 2}}
---
title: b\nid: a\ncorrelation: {type: event_count, rules: [r1], timespan: 1m, condition: {gte: 2}}
---
title: c\nid: r1\ncorrelation: {type: event_count, rules: [r2], timespan: 1m, condition: {gte: 2}}
";
    let report = load(yaml, BASE);
    let errs: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].contains("document 2") && errs[0].contains("already used"));
    assert!(errs[1].contains("id of a detection rule"));
    assert_eq!(report.set.rules().len(), 1, "the first `a` stays");
}

#[test]
fn cycles_and_their_dependants_are_rejected() {
    let yaml = "title: a\nid: a\ncorrelation: {type: temporal, rules: [b, r1], group-by: [x], timespan: 1m}
---
title: b\nid: b\ncorrelation: {type: temporal, rules: [a, r2], group-by: [x], timespan: 1m}
---
title: c\nid: c\ncorrelation: {type: temporal, rules: [a, r1], group-by: [x], timespan: 1m}
";
    let errs = errors(yaml);
    assert!(
        errs.iter()
            .any(|e| e.contains("`a`") && e.contains("cycle")),
        "{errs:#?}"
    );
    assert!(errs
        .iter()
        .any(|e| e.contains("`b`") && e.contains("cycle")));
    assert!(errs
        .iter()
        .any(|e| e.contains("`c`") && e.contains("rejected")));
}

#[test]
fn a_rejected_inner_correlation_takes_its_outer_along() {
    let yaml = "title: outer\nid: outer\ncorrelation: {type: temporal, rules: [inner, r1], group-by: [x], timespan: 1m}
---
title: inner\nid: inner\ncorrelation: {type: event_count, rules: [r2], group-by: [x], timespan: 1m}
";
    assert_rejected(yaml, "inner", "condition` is required");
    assert_rejected(yaml, "outer", "`inner`");
}

#[test]
fn outer_groups_must_be_carried_by_the_inner_firing() {
    let yaml = "title: outer\nid: outer\ncorrelation: {type: temporal_ordered, rules: [inner, r1], group-by: [user.name], timespan: 1m}
---
title: inner\nid: inner\nname: inner_name\ncorrelation: {type: event_count, rules: [r2], group-by: [source.ip], timespan: 1m, condition: {gte: 5}}
";
    assert_rejected(yaml, "outer", "does not group by");
    // With an alias mapping the inner's group field, it is fine.
    let ok = "title: outer\nid: outer\ncorrelation: {type: temporal_ordered, rules: [inner_name, r1], group-by: [ip], timespan: 1m,
  aliases: {ip: {inner_name: source.ip, r1: client.ip}}}
---
title: inner\nid: inner\nname: inner_name\ncorrelation: {type: event_count, rules: [r2], group-by: [source.ip], timespan: 1m, condition: {gte: 5}}
";
    let report = load(ok, BASE);
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    assert_eq!(report.set.rules().len(), 2);
    // Sums over a correlation have no number to add.
    let sum = "title: outer\nid: outer\ncorrelation: {type: value_sum, rules: [inner], group-by: [source.ip], timespan: 1m, condition: {field: source.ip, gt: 1}}
---
title: inner\nid: inner\ncorrelation: {type: event_count, rules: [r2], group-by: [source.ip], timespan: 1m, condition: {gte: 5}}
";
    assert_rejected(sum, "outer", "no numeric field");
}

#[test]
fn valid_rules_load_beside_rejected_ones() {
    let yaml = "title: good\nid: good\ncorrelation: {type: event_count, rules: [one], group-by: [source.ip], timespan: 5m, condition: {gte: 10}}
---
title: bad\nid: bad\ncorrelation: {type: event_count, rules: [one], timespan: 5 minutes, condition: {gte: 10}}
";
    let report = load(yaml, BASE);
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.errors[0].rule, "bad");
    assert_eq!(report.errors[0].file.index, 1);
    assert!(report.set.rule("good").is_some());
    assert!(report.set.rule("bad").is_none());
    assert_eq!(
        report.set.longest_timespan(),
        std::time::Duration::from_secs(300)
    );
}
