//! Logsource routes and the literal prefilter.
//!
//! A route holds the rules that apply to one event logsource, plus one
//! Aho-Corasick automaton per field over the atoms those rules need. For an
//! event, each scanned field's lower-cased value is first checked with a
//! packed SIMD (Teddy) search where the field has few enough atoms, and
//! searched with the automaton (all overlapping occurrences, so no atom is
//! ever missed) only from the first occurrence on. Fields with a small
//! atom set and no presence check walk a dense table that folds ASCII case
//! ([`DenseScan`]): their pure-ASCII values are scanned as they are in the
//! event, without a lower-cased copy. Number atoms (exact
//! numeric values such as `EventID`) are looked up in a hash map per field.
//! Each rule's trigger is a conjunction of clauses (see
//! [`crate::compile::CompiledRule::trigger`]); the rule is posted under the
//! atoms of one primary clause, and once one of them is found its other
//! clauses are checked against the atoms found. Only rules whose clauses all
//! hold — plus the rules without a trigger, which run always — are
//! evaluated.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use rustc_hash::FxHashMap;

use crate::compile::{clause_cost, AtomId, AtomTable, CompiledRule, FieldId};
use crate::dense::DenseScan;

/// Index of a rule in its engine.
pub type RuleIdx = u32;

/// Automata whose patterns add up to at most this many bytes may be built
/// as DFAs (fastest scans: a [`DenseScan`], or the crate's DFA where that
/// cannot be built); larger ones are contiguous NFAs (compact).
pub const DFA_MAX_PATTERN_BYTES: usize = 24 * 1024;

/// Pattern bytes of one route's automata that may be built as DFAs, smallest
/// automata first; the rest are contiguous NFAs. A DFA's table is states ×
/// byte classes words, some 300 bytes per pattern byte: built for every
/// field, the Sysmon route's DFAs came to 22 MB (5 MB for `TargetFilename`
/// alone), and an event that walks a dozen of them misses the cache on most
/// transitions, so there the compact NFAs scanned faster in time. About 4 MB
/// of DFAs (the whole web route's) still pays off.
pub const ROUTE_DFA_PATTERN_BYTES: usize = 12 * 1024;

/// Fields of `per_field` whose automaton is built as a DFA (see
/// [`ROUTE_DFA_PATTERN_BYTES`]).
fn dfa_fields(per_field: &BTreeMap<FieldId, Vec<AtomId>>, atoms: &AtomTable) -> Vec<FieldId> {
    let mut sizes: Vec<(usize, FieldId)> = per_field
        .iter()
        .map(|(&f, list)| {
            let mut list = list.clone();
            list.sort_unstable();
            list.dedup();
            let bytes = list
                .iter()
                .filter(|&&a| atoms.num_of(a).is_none())
                .map(|&a| atoms.atoms[a as usize].1.len())
                .sum();
            (bytes, f)
        })
        .filter(|&(bytes, _)| bytes > 0 && bytes <= DFA_MAX_PATTERN_BYTES)
        .collect();
    sizes.sort_unstable();
    let mut total = 0;
    let mut out = Vec::new();
    for (bytes, f) in sizes {
        total += bytes;
        if total > ROUTE_DFA_PATTERN_BYTES {
            break;
        }
        out.push(f);
    }
    out.sort_unstable();
    out
}

/// One pattern of a field scan.
#[derive(Debug, Clone)]
pub struct PatInfo {
    pub atom: AtomId,
    /// Range into [`Route::postings`]: the (rule, clause) pairs this atom marks.
    pub postings: (u32, u32),
}

/// Most patterns one packed (Teddy) searcher takes with the crate's
/// heuristics on; larger sets are split into chunks of this size.
pub const PACKED_CHUNK: usize = 64;
/// Fields with more atoms than this get no packed presence check: the
/// chunks would cost more than the automaton walk they may save.
pub const PACKED_MAX_ATOMS: usize = 4 * PACKED_CHUNK;

/// The automaton for one field.
#[derive(Debug, Clone)]
pub struct FieldScan {
    pub field: FieldId,
    pub ac: Automaton,
    pub pats: Vec<PatInfo>,
    /// SIMD (Teddy) presence check over the same atoms, in chunks: the
    /// leftmost occurrence of any atom, or none. Most field values contain
    /// no atom at all, and a packed search is several times faster than the
    /// byte-at-a-time automaton walk, so the overlapping scan runs only when
    /// some atom occurs, and only from the first occurrence on (no
    /// occurrence can start earlier). Empty: no check, scan everything.
    pub presence: Vec<aho_corasick::packed::Searcher>,
    /// Shortest value the presence check runs on: the largest
    /// [`aho_corasick::packed::Searcher::minimum_len`] of its chunks. On a
    /// shorter value Teddy falls back to Rabin-Karp, which with a chunk of
    /// 64 atoms verified candidates at nearly every position: over 3,000
    /// cycles for a 16-byte `ParentCommandLine`, where the automaton walks
    /// the whole value in a few hundred.
    pub presence_min_len: usize,
    /// Pure-ASCII text is scanned as it is in the event: the automaton
    /// folds ASCII case, and there is no presence check that would need the
    /// lower-cased copy.
    pub direct: bool,
}

/// The automaton of a field scan.
#[derive(Debug, Clone)]
pub enum Automaton {
    /// Small atom sets: a dense table walk that folds ASCII case.
    Dense(Box<DenseScan>),
    /// Large atom sets: the `aho-corasick` crate's compact automaton.
    Ac(AhoCorasick),
}

impl Automaton {
    /// Calls `f` with the pattern id of every (overlapping) occurrence.
    #[inline]
    pub fn for_each_match(&self, hay: &[u8], mut f: impl FnMut(u32)) {
        match self {
            Automaton::Dense(d) => d.for_each_match(hay, f),
            Automaton::Ac(ac) => {
                for m in ac.find_overlapping_iter(hay) {
                    f(m.pattern().as_u32());
                }
            }
        }
    }

    /// Approximate heap bytes.
    pub fn memory_usage(&self) -> usize {
        match self {
            Automaton::Dense(d) => d.memory_usage(),
            Automaton::Ac(ac) => ac.memory_usage(),
        }
    }
}

impl FieldScan {
    /// Where the overlapping scan of `hay` must start: `None` when no atom
    /// occurs in `hay`.
    #[inline]
    pub fn scan_start(&self, hay: &[u8]) -> Option<usize> {
        if self.presence.is_empty() || hay.len() < self.presence_min_len {
            return Some(0);
        }
        self.presence
            .iter()
            .filter_map(|p| p.find(hay).map(|m| m.start()))
            .min()
    }
}

/// Packed presence searchers for `lits` (see [`FieldScan::presence`]);
/// empty when the set is too large or Teddy is unavailable on this CPU.
fn presence_check(lits: &[&str]) -> Vec<aho_corasick::packed::Searcher> {
    if lits.len() > PACKED_MAX_ATOMS {
        return Vec::new();
    }
    let mut out = Vec::new();
    for chunk in lits.chunks(PACKED_CHUNK) {
        let mut cfg = aho_corasick::packed::Config::new();
        cfg.match_kind(aho_corasick::packed::MatchKind::LeftmostFirst);
        match cfg.builder().extend(chunk.iter()).build() {
            Some(s) => out.push(s),
            // all or nothing: a missing chunk would hide its atoms
            None => return Vec::new(),
        }
    }
    out
}

/// Most packed presence chunks a field with a [`DenseScan`] keeps. One
/// chunk (up to 64 atoms) over the lower-cased copy finds nothing in most
/// short Sysmon values at a fraction of the walk's cost; with more chunks
/// (the raw line of the web and syslog routes, 150–160 atoms) the chunks
/// and the copy cost more than walking the original text once (callgrind,
/// instructions per event: syslog 4.8k -> 3.2k, web 6.5k -> 5.7k, Windows
/// unchanged with one chunk kept, 25.2k with none).
pub const DENSE_PRESENCE_CHUNKS: usize = 1;

/// Number atoms of one field: looked up by the key of each numeric element
/// (see [`crate::compile::num_key`]) instead of scanned for.
#[derive(Debug, Clone)]
pub struct NumScan {
    pub field: FieldId,
    pub keys: FxHashMap<u64, PatInfo>,
}

/// A posting: the route-local rule whose primary clause holds the atom.
#[derive(Debug, Clone, Copy)]
pub struct Posting {
    pub rule: u32,
}

static NEXT_ROUTE_ID: AtomicU64 = AtomicU64::new(1);

/// Marks a field of [`Route::scan_of`] that is not scanned.
pub const NO_SCAN: u32 = u32::MAX;

/// Rules and prefilter for one event logsource.
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// Unique among the routes of the process, never 0 for a built route
    /// (keys the [`crate::memo::ScanMemo`]).
    pub id: u64,
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
    /// Per route-local rule: range into [`Route::clause_spans`] of its
    /// trigger clauses other than the primary one (checked once the primary
    /// clause has an atom present).
    pub rest: Vec<(u32, u32)>,
    /// Ranges into [`Route::clause_atoms`], one per clause.
    pub clause_spans: Vec<(u32, u32)>,
    pub clause_atoms: Vec<AtomId>,
    /// The scanned fields, lower-cased up front on a route without a
    /// prefilter (with one, a field is lower-cased for its scan unless
    /// [`FieldScan::direct`] scans its ASCII text as it is). Fields only matchers read are
    /// lower-cased once a rule that reads them is about to run, so events
    /// that trigger nothing pay for the scan alone.
    pub lower_fields: Vec<FieldId>,
    pub scans: Vec<FieldScan>,
    /// Per field id: index into [`Route::scans`], or [`NO_SCAN`]. The scan
    /// walks the few fields an event carries and looks each up here,
    /// instead of trying each of the route's scanned fields (44 on the
    /// Sysmon route, most of them absent from any one event).
    pub scan_of: Vec<u32>,
    /// Fields with number atoms.
    pub num_scans: Vec<NumScan>,
    pub postings: Vec<Posting>,
}

impl Route {
    /// Builds the route for `rules` (ascending engine indices).
    ///
    /// Each rule is posted under the atoms of one clause of its trigger, its
    /// primary clause: the one least likely to fire, estimated per atom as
    /// [`clause_cost`] (shorter literals occur more often) times the number
    /// of rules of the route that share the atom (a shared atom is a common
    /// one, and marks all its rules whenever it occurs). An atom shared by
    /// hundreds of rules (the `EventID` every process-creation rule gets
    /// from the Windows pipeline) would otherwise walk hundreds of postings
    /// on every event that carries it; as a secondary clause it costs one
    /// bit test per candidate. Counting sharing alone posted web rules under
    /// `http.request.method` `get`, which every request carries, and then
    /// tested their long URL clauses on every event.
    pub fn build(rules: Vec<RuleIdx>, compiled: &[&CompiledRule], atoms: &AtomTable) -> Route {
        let mut per_field: BTreeMap<FieldId, Vec<AtomId>> = BTreeMap::new();
        let mut posting_map: FxHashMap<AtomId, Vec<Posting>> = FxHashMap::default();
        let mut always = Vec::new();
        let mut rest = Vec::with_capacity(rules.len());
        let mut clause_spans = Vec::new();
        let mut clause_atoms = Vec::new();
        let mut lower = Vec::new();
        // how many rules' triggers name each atom
        let mut share: FxHashMap<AtomId, u32> = FxHashMap::default();
        for r in compiled {
            for c in r.trigger.iter().flatten() {
                for &a in c {
                    *share.entry(a).or_default() += 1;
                }
            }
        }
        // Only trigger atoms are scanned: other atoms (filters, clauses cut by
        // the clause limit) are checked by their matchers directly, which
        // keeps the automata small and the matches per event few.
        for (local, (&idx, r)) in rules.iter().zip(compiled).enumerate() {
            match &r.trigger {
                Some(cs) if !cs.is_empty() && cs.iter().all(|c| !c.is_empty()) => {
                    let weight = |c: &Vec<AtomId>| -> f64 {
                        c.iter()
                            .map(|&a| {
                                clause_cost(&[a], atoms)
                                    * f64::from(share.get(&a).copied().unwrap_or(0).max(1))
                            })
                            .sum()
                    };
                    let primary = (0..cs.len())
                        .min_by(|&i, &j| weight(&cs[i]).total_cmp(&weight(&cs[j])))
                        .unwrap_or(0);
                    let start = clause_spans.len() as u32;
                    for (ci, c) in cs.iter().enumerate() {
                        for &a in c {
                            per_field
                                .entry(atoms.atoms[a as usize].0)
                                .or_default()
                                .push(a);
                        }
                        if ci == primary {
                            for &a in c {
                                posting_map
                                    .entry(a)
                                    .or_default()
                                    .push(Posting { rule: local as u32 });
                            }
                        } else {
                            let a0 = clause_atoms.len() as u32;
                            clause_atoms.extend_from_slice(c);
                            clause_spans.push((a0, clause_atoms.len() as u32));
                        }
                    }
                    rest.push((start, clause_spans.len() as u32));
                }
                _ => {
                    always.push(idx);
                    rest.push((0, 0));
                }
            }
        }
        let mut postings = Vec::new();
        let mut scans = Vec::new();
        let mut prefilter = true;
        let mut scanned = vec![0u64; atoms.len().div_ceil(64)];
        let posting_range = |a: AtomId, postings: &mut Vec<Posting>| {
            let start = postings.len() as u32;
            if let Some(ps) = posting_map.get(&a) {
                postings.extend_from_slice(ps);
            }
            PatInfo {
                atom: a,
                postings: (start, postings.len() as u32),
            }
        };
        let mut num_scans = Vec::new();
        let dfa = dfa_fields(&per_field, atoms);
        for (field, mut list) in per_field {
            list.sort_unstable();
            list.dedup();
            let (nums, list): (Vec<AtomId>, Vec<AtomId>) =
                list.into_iter().partition(|&a| atoms.num_of(a).is_some());
            if !nums.is_empty() {
                let mut keys = FxHashMap::default();
                for a in nums {
                    if let Some(k) = atoms.num_of(a) {
                        scanned[(a / 64) as usize] |= 1u64 << (a % 64);
                        keys.insert(k, posting_range(a, &mut postings));
                    }
                }
                num_scans.push(NumScan { field, keys });
            }
            if list.is_empty() {
                continue;
            }
            lower.push(field);
            let lits: Vec<&str> = list
                .iter()
                .map(|&a| atoms.atoms[a as usize].1.as_str())
                .collect();
            // DFA fields get the dense table walk, which also folds ASCII
            // case so that ASCII text needs no lower-cased copy
            let dense_wanted = dfa.binary_search(&field).is_ok();
            let dense = if dense_wanted {
                let bytes: Vec<&[u8]> = lits.iter().map(|l| l.as_bytes()).collect();
                DenseScan::new(&bytes)
            } else {
                None
            };
            let built = match dense {
                Some(d) => Ok(Automaton::Dense(Box::new(d))),
                None => {
                    let mut b = AhoCorasickBuilder::new();
                    b.match_kind(MatchKind::Standard);
                    b.kind(Some(if dense_wanted {
                        AhoCorasickKind::DFA
                    } else {
                        AhoCorasickKind::ContiguousNFA
                    }));
                    b.build(&lits).map(Automaton::Ac)
                }
            };
            let ac = match built {
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
                .map(|&a| posting_range(a, &mut postings))
                .collect();
            let dense = matches!(ac, Automaton::Dense(_));
            let presence = if dense && lits.len() > DENSE_PRESENCE_CHUNKS * PACKED_CHUNK {
                Vec::new()
            } else {
                presence_check(&lits)
            };
            let direct = dense && presence.is_empty();
            let presence_min_len = presence
                .iter()
                .map(aho_corasick::packed::Searcher::minimum_len)
                .max()
                .unwrap_or(0);
            scans.push(FieldScan {
                field,
                ac,
                pats,
                presence,
                presence_min_len,
                direct,
            });
        }
        always.sort_unstable();
        lower.sort_unstable();
        lower.dedup();
        let fields = scans
            .iter()
            .map(|s| s.field as usize + 1)
            .max()
            .unwrap_or(0);
        let mut scan_of = vec![NO_SCAN; fields];
        for (i, s) in scans.iter().enumerate() {
            scan_of[s.field as usize] = i as u32;
        }
        Route {
            id: NEXT_ROUTE_ID.fetch_add(1, Ordering::Relaxed),
            prefilter,
            scanned,
            rules,
            always,
            rest,
            clause_spans,
            clause_atoms,
            lower_fields: lower,
            scans,
            scan_of,
            num_scans,
            postings,
        }
    }

    /// The scan of field `f`, if the route scans it.
    #[inline]
    pub fn scan_for(&self, f: FieldId) -> Option<&FieldScan> {
        match self.scan_of.get(f as usize) {
            Some(&i) if i != NO_SCAN => self.scans.get(i as usize),
            _ => None,
        }
    }

    /// Approximate heap bytes of the automata.
    pub fn memory_usage(&self) -> usize {
        self.scans.iter().map(|s| s.ac.memory_usage()).sum()
    }
}

/// Per-event marks of a route's rules whose primary clause has an atom
/// present (reused across events).
#[derive(Debug, Default)]
pub struct ClauseMarks {
    gen: u32,
    stamp: Vec<u32>,
    /// Route-local rules marked this event.
    pending: Vec<u32>,
}

impl ClauseMarks {
    /// Starts an event for a route of `n` rules.
    pub fn begin(&mut self, n: usize) {
        if self.stamp.len() < n {
            self.stamp.resize(n, 0);
        }
        self.pending.clear();
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.gen = 1;
        }
    }

    /// Marks the rules posted under a newly found atom.
    #[inline]
    pub fn mark(&mut self, route: &Route, range: (u32, u32)) {
        for p in &route.postings[range.0 as usize..range.1 as usize] {
            let r = p.rule as usize;
            if self.stamp[r] != self.gen {
                self.stamp[r] = self.gen;
                self.pending.push(p.rule);
            }
        }
    }

    /// After every field was scanned: pushes the marked rules whose other
    /// clauses each have an atom present onto `cands` (engine indices).
    pub fn finish(&self, route: &Route, is_hit: impl Fn(AtomId) -> bool, cands: &mut Vec<RuleIdx>) {
        for &r in &self.pending {
            let (a, b) = route.rest[r as usize];
            let ok = route.clause_spans[a as usize..b as usize]
                .iter()
                .all(|&(x, y)| {
                    route.clause_atoms[x as usize..y as usize]
                        .iter()
                        .any(|&at| is_hit(at))
                });
            if ok {
                cands.push(route.rules[r as usize]);
            }
        }
    }
}
