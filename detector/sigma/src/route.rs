//! Logsource routes and the literal prefilter.
//!
//! A route holds the rules that apply to one event logsource, plus one
//! Aho-Corasick automaton per field over the atoms those rules need. For an
//! event, each scanned field's lower-cased value is searched once (all
//! overlapping occurrences, so no atom is ever missed); the atoms found mark
//! their rules as candidates, and only candidates — plus the rules that have
//! no atom and must always run — are evaluated.

use std::collections::BTreeMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use rustc_hash::FxHashMap;

use crate::compile::{AtomId, AtomTable, CompiledRule, FieldId};

/// Index of a rule in its engine.
pub type RuleIdx = u32;

/// One pattern of a field scan.
#[derive(Debug, Clone)]
pub struct PatInfo {
    pub atom: AtomId,
    /// Range into [`Route::trigger_rules`] of the rules this atom triggers.
    pub triggers: (u32, u32),
}

/// The automaton for one field.
#[derive(Debug, Clone)]
pub struct FieldScan {
    pub field: FieldId,
    pub ac: AhoCorasick,
    pub pats: Vec<PatInfo>,
}

/// Rules and prefilter for one event logsource.
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// False when an automaton could not be built: every rule of the route
    /// is then evaluated without the prefilter.
    pub prefilter: bool,
    /// Every rule of the route, ascending.
    pub rules: Vec<RuleIdx>,
    /// Rules without a trigger: evaluated for every event.
    pub always: Vec<RuleIdx>,
    /// Fields to lower-case before evaluation.
    pub lower_fields: Vec<FieldId>,
    pub scans: Vec<FieldScan>,
    pub trigger_rules: Vec<RuleIdx>,
}

impl Route {
    /// Builds the route for `rules` (ascending engine indices).
    pub fn build(rules: Vec<RuleIdx>, compiled: &[&CompiledRule], atoms: &AtomTable) -> Route {
        let mut per_field: BTreeMap<FieldId, Vec<AtomId>> = BTreeMap::new();
        let mut triggers: FxHashMap<AtomId, Vec<RuleIdx>> = FxHashMap::default();
        let mut always = Vec::new();
        let mut lower = Vec::new();
        for (&idx, r) in rules.iter().zip(compiled) {
            for &a in &r.atoms {
                per_field
                    .entry(atoms.atoms[a as usize].0)
                    .or_default()
                    .push(a);
            }
            match &r.trigger {
                Some(t) => {
                    for &a in t {
                        triggers.entry(a).or_default().push(idx);
                    }
                }
                None => always.push(idx),
            }
            lower.extend_from_slice(&r.lower_fields);
        }
        let mut trigger_rules = Vec::new();
        let mut scans = Vec::new();
        let mut prefilter = true;
        for (field, mut list) in per_field {
            list.sort_unstable();
            list.dedup();
            lower.push(field);
            let lits: Vec<&str> = list
                .iter()
                .map(|&a| atoms.atoms[a as usize].1.as_str())
                .collect();
            let ac = match AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .build(&lits)
            {
                Ok(ac) => ac,
                Err(e) => {
                    // Only beyond the crate's size limits. Without a complete
                    // prefilter the route falls back to evaluating every rule
                    // without atoms: slower, never wrong.
                    tracing::warn!(error = %e, "prefilter automaton too large; route runs unfiltered");
                    prefilter = false;
                    continue;
                }
            };
            let pats = list
                .iter()
                .map(|&a| {
                    let start = trigger_rules.len() as u32;
                    if let Some(rs) = triggers.get(&a) {
                        trigger_rules.extend_from_slice(rs);
                    }
                    PatInfo {
                        atom: a,
                        triggers: (start, trigger_rules.len() as u32),
                    }
                })
                .collect();
            scans.push(FieldScan { field, ac, pats });
        }
        always.sort_unstable();
        always.dedup();
        lower.sort_unstable();
        lower.dedup();
        Route {
            prefilter,
            rules,
            always,
            lower_fields: lower,
            scans,
            trigger_rules,
        }
    }
}
