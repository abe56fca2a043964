//! Sigma filters (filters specification): exceptions added to rules without
//! editing them.
//!
//! Semantics follow pySigma, the reference implementation: a filter applies
//! to a rule when the filter's logsource contains the rule's and the rule is
//! named in `rules` by id or name (or `rules: any`). The rule's condition
//! becomes `(condition) and (filter condition)`, with the filter's searches
//! added under fresh names that start with `_` (so `1 of them` in the rule
//! does not pick them up). Filters are therefore written with
//! `condition: not selection`.

use crate::condition::{Cond, OfTarget};
use crate::rule::{SigmaFilter, SigmaRule};

/// Does `filter` name `rule`?
pub fn applies_to(filter: &SigmaFilter, rule: &SigmaRule) -> bool {
    if !filter.logsource.contains(&rule.logsource) {
        return false;
    }
    filter.any_rule
        || filter.rules.iter().any(|r| {
            rule.meta.id.as_deref() == Some(r.as_str())
                || rule.meta.name.as_deref() == Some(r.as_str())
        })
}

/// Adds `filter` to `rule`; `ordinal` keeps names unique per rule.
pub fn apply(filter: &SigmaFilter, rule: &mut SigmaRule, ordinal: usize) {
    let prefix = format!("_filter{ordinal}_");
    for (name, search) in &filter.searches {
        rule.detection
            .searches
            .push((format!("{prefix}{name}"), search.clone()));
    }
    let cond = rename(&filter.condition, &prefix);
    for c in &mut rule.detection.conditions {
        let orig = std::mem::replace(c, Cond::Ident(String::new()));
        *c = Cond::And(vec![orig, cond.clone()]);
    }
}

fn rename(c: &Cond, prefix: &str) -> Cond {
    match c {
        Cond::And(v) => Cond::And(v.iter().map(|x| rename(x, prefix)).collect()),
        Cond::Or(v) => Cond::Or(v.iter().map(|x| rename(x, prefix)).collect()),
        Cond::Not(x) => Cond::Not(Box::new(rename(x, prefix))),
        Cond::Ident(n) => Cond::Ident(format!("{prefix}{n}")),
        Cond::Of { all, target } => Cond::Of {
            all: *all,
            target: OfTarget::Pattern(match target {
                OfTarget::Them => format!("{prefix}*"),
                OfTarget::Pattern(p) => format!("{prefix}{p}"),
            }),
        },
    }
}
