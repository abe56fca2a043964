//! Logsource routes and the literal prefilter.
//!
//! A route holds the rules that apply to one event logsource, plus one
//! Aho-Corasick automaton per field over the atoms those rules need. For an
//! event, each scanned field's lower-cased value is searched once (all
//! overlapping occurrences, so no atom is ever missed). Each rule's trigger
//! is a conjunction of clauses (see [`crate::compile::CompiledRule::trigger`]);
//! an atom found marks the clauses it belongs to, and a rule becomes a
//! candidate once all its clauses are marked. Only candidates — plus the
//! rules without a trigger, which run always — are evaluated.

use std::collections::BTreeMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use rustc_hash::FxHashMap;

use crate::compile::{AtomId, AtomTable, CompiledRule, FieldId};

/// Index of a rule in its engine.
pub type RuleIdx = u32;

/// Automata whose patterns add up to at most this many bytes are built as
/// DFAs (fastest scans); larger ones as contiguous NFAs (compact).
pub const DFA_MAX_PATTERN_BYTES: usize = 24 * 1024;

/// One pattern of a field scan.
#[derive(Debug, Clone)]
pub struct PatInfo {
    pub atom: AtomId,
    /// Range into [`Route::postings`]: the (rule, clause) pairs this atom marks.
    pub postings: (u32, u32),
}

/// The automaton for one field.
#[derive(Debug, Clone)]
pub struct FieldScan {
    pub field: FieldId,
    pub ac: AhoCorasick,
    pub pats: Vec<PatInfo>,
}

/// A clause mark: route-local rule index and clause number.
#[derive(Debug, Clone, Copy)]
pub struct Posting {
    pub rule: u32,
    pub clause: u8,
}

/// Rules and prefilter for one event logsource.
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// False when an automaton could not be built: every rule of the route
    /// is then evaluated without the prefilter.
    pub prefilter: bool,
    /// Bitset over the engine's atoms: the ones this route's automata find.
    /// Matchers may rely on an atom's absence only when it was scanned for.
    pub scanned: Vec<u64>,
    /// Every rule of the route, ascending (route-local index → engine index).
    pub rules: Vec<RuleIdx>,
    /// Rules without a trigger: evaluated for every event.
    pub always: Vec<RuleIdx>,
    /// Number of clauses of each route-local rule (0 for `always` rules).
    pub clauses: Vec<u8>,
    /// Fields to lower-case before evaluation.
    pub lower_fields: Vec<FieldId>,
    pub scans: Vec<FieldScan>,
    pub postings: Vec<Posting>,
}

impl Route {
    /// Builds the route for `rules` (ascending engine indices).
    pub fn build(rules: Vec<RuleIdx>, compiled: &[&CompiledRule], atoms: &AtomTable) -> Route {
        let mut per_field: BTreeMap<FieldId, Vec<AtomId>> = BTreeMap::new();
        let mut posting_map: FxHashMap<AtomId, Vec<Posting>> = FxHashMap::default();
        let mut always = Vec::new();
        let mut clauses = Vec::with_capacity(rules.len());
        let mut lower = Vec::new();
        // Only trigger atoms are scanned: other atoms (filters, clauses cut by
        // the clause limit) are checked by their matchers directly, which
        // keeps the automata small and the matches per event few.
        for (local, (&idx, r)) in rules.iter().zip(compiled).enumerate() {
            match &r.trigger {
                Some(cs) if !cs.is_empty() => {
                    for (ci, c) in cs.iter().enumerate() {
                        for &a in c {
                            per_field
                                .entry(atoms.atoms[a as usize].0)
                                .or_default()
                                .push(a);
                            posting_map.entry(a).or_default().push(Posting {
                                rule: local as u32,
                                clause: ci as u8,
                            });
                        }
                    }
                    clauses.push(cs.len() as u8);
                }
                _ => {
                    always.push(idx);
                    clauses.push(0);
                }
            }
            lower.extend_from_slice(&r.lower_fields);
        }
        let mut postings = Vec::new();
        let mut scans = Vec::new();
        let mut prefilter = true;
        let mut scanned = vec![0u64; atoms.len().div_ceil(64)];
        for (field, mut list) in per_field {
            list.sort_unstable();
            list.dedup();
            lower.push(field);
            let lits: Vec<&str> = list
                .iter()
                .map(|&a| atoms.atoms[a as usize].1.as_str())
                .collect();
            let bytes: usize = lits.iter().map(|l| l.len()).sum();
            let mut b = AhoCorasickBuilder::new();
            b.match_kind(MatchKind::Standard);
            if bytes <= DFA_MAX_PATTERN_BYTES {
                b.kind(Some(AhoCorasickKind::DFA));
            }
            let ac = match b.build(&lits) {
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
            for &a in &list {
                scanned[(a / 64) as usize] |= 1u64 << (a % 64);
            }
            let pats = list
                .iter()
                .map(|&a| {
                    let start = postings.len() as u32;
                    if let Some(ps) = posting_map.get(&a) {
                        postings.extend_from_slice(ps);
                    }
                    PatInfo {
                        atom: a,
                        postings: (start, postings.len() as u32),
                    }
                })
                .collect();
            scans.push(FieldScan { field, ac, pats });
        }
        always.sort_unstable();
        lower.sort_unstable();
        lower.dedup();
        Route {
            prefilter,
            scanned,
            rules,
            always,
            clauses,
            lower_fields: lower,
            scans,
            postings,
        }
    }

    /// Approximate heap bytes of the automata.
    pub fn memory_usage(&self) -> usize {
        self.scans.iter().map(|s| s.ac.memory_usage()).sum()
    }
}

/// Per-event clause marks of a route's rules (reused across events).
#[derive(Debug, Default)]
pub struct ClauseMarks {
    gen: u32,
    stamp: Vec<u32>,
    mask: Vec<u8>,
}

impl ClauseMarks {
    /// Starts an event for a route of `n` rules.
    pub fn begin(&mut self, n: usize) {
        if self.stamp.len() < n {
            self.stamp.resize(n, 0);
            self.mask.resize(n, 0);
        }
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.gen = 1;
        }
    }

    /// Marks the postings of a newly found atom; pushes rules whose clauses
    /// are now all marked onto `cands` (engine indices).
    #[inline]
    pub fn mark(&mut self, route: &Route, range: (u32, u32), cands: &mut Vec<RuleIdx>) {
        for p in &route.postings[range.0 as usize..range.1 as usize] {
            let r = p.rule as usize;
            if self.stamp[r] != self.gen {
                self.stamp[r] = self.gen;
                self.mask[r] = 0;
            }
            let bit = 1u8 << p.clause;
            if self.mask[r] & bit == 0 {
                self.mask[r] |= bit;
                if self.mask[r].count_ones() == u32::from(route.clauses[r]) {
                    cands.push(route.rules[r]);
                }
            }
        }
    }
}
