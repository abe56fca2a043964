//! Compiler: rule AST (after filters and pipelines) into matcher trees.
//!
//! Each detection item becomes an [`Item`]: one event field, a list of values
//! linked by OR (or AND under `all`), each value a list of alternatives
//! (expansions of `base64offset`, placeholders ...) linked by OR. Modifiers
//! are applied in the order written, as the specification says. Anything the
//! engine cannot honour exactly is a [`Reject`] naming the construct.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::OnceLock;

use base64::Engine as _;
use regex::{Regex, RegexBuilder};
use rustc_hash::FxHashMap;

use crate::condition::{self, Cond};
use crate::literal::{best_run, regex_atoms, MIN_ATOM_BYTES};
use crate::modifier::{Modifier, TimePart};
use crate::pattern::{GlobTok, StrPattern};
use crate::rule::{DetectionItem, RawValue, Search, SigmaRule};
use crate::value::{lowercase, SigmaStr, Tok, WINDASH_CHARS};

/// Index of a field name in the engine's field table.
pub type FieldId = u32;
/// Index of an atom (field, lower-cased literal) in the engine's atom table.
pub type AtomId = u32;

/// `event.original`: the raw line, target of keyword searches.
pub const FIELD_ORIGINAL: FieldId = 0;
/// `@timestamp`, the typed event time.
pub const FIELD_TIMESTAMP: FieldId = 1;
/// `event.ingested`, the typed receive time.
pub const FIELD_INGESTED: FieldId = 2;

/// Regex compile limits: a rule may not make the engine allocate without bound.
pub const REGEX_SIZE_LIMIT: usize = 8 << 20;
pub const REGEX_DFA_SIZE_LIMIT: usize = 2 << 20;

/// Interned field names.
#[derive(Debug, Default)]
pub struct FieldTable {
    names: Vec<String>,
    index: FxHashMap<String, FieldId>,
}

impl FieldTable {
    pub fn new() -> Self {
        let mut t = FieldTable::default();
        t.intern("event.original");
        t.intern("@timestamp");
        t.intern("event.ingested");
        t
    }
    pub fn intern(&mut self, name: &str) -> FieldId {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = self.names.len() as FieldId;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), id);
        id
    }
    pub fn get(&self, name: &str) -> Option<FieldId> {
        self.index.get(name).copied()
    }
    pub fn name(&self, id: FieldId) -> &str {
        &self.names[id as usize]
    }
    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Interned atoms.
///
/// Most atoms are substrings (a lower-cased literal that occurs in the
/// field's lower-cased text). Number atoms stand for "some element of the
/// field is numerically equal to this number", the exact condition of a
/// [`Matcher::Num`]: they let the prefilter index rules by exact values such
/// as the `EventID` the Windows pipeline adds to every category, which no
/// substring atom can express (`1` is too short to scan for).
#[derive(Debug, Default)]
pub struct AtomTable {
    /// (field, text): the lower-cased literal, or for number atoms a
    /// display form (`=4624`).
    pub atoms: Vec<(FieldId, String)>,
    /// Per atom: `Some(key)` for a number atom (see [`num_key`]).
    pub nums: Vec<Option<u64>>,
    index: FxHashMap<(FieldId, String), AtomId>,
    num_index: FxHashMap<(FieldId, u64), AtomId>,
}

/// The hash key of a number for number atoms: equal numbers (`0.0` and
/// `-0.0` included) get equal keys; NaN, which equals nothing, gets none.
pub fn num_key(x: f64) -> Option<u64> {
    if x.is_nan() {
        None
    } else if x == 0.0 {
        Some(0f64.to_bits())
    } else {
        Some(x.to_bits())
    }
}

impl AtomTable {
    pub fn intern(&mut self, field: FieldId, lit: String) -> AtomId {
        if let Some(&id) = self.index.get(&(field, lit.clone())) {
            return id;
        }
        let id = self.atoms.len() as AtomId;
        self.atoms.push((field, lit.clone()));
        self.nums.push(None);
        self.index.insert((field, lit), id);
        id
    }

    /// The number atom for "an element of `field` equals `n`", if `n` can
    /// equal anything.
    pub fn intern_num(&mut self, field: FieldId, n: f64) -> Option<AtomId> {
        let key = num_key(n)?;
        if let Some(&id) = self.num_index.get(&(field, key)) {
            return Some(id);
        }
        let id = self.atoms.len() as AtomId;
        self.atoms.push((field, format!("={n}")));
        self.nums.push(Some(key));
        self.num_index.insert((field, key), id);
        Some(id)
    }

    /// The existing number atom for `n` on `field`.
    pub fn num_atom(&self, field: FieldId, n: f64) -> Option<AtomId> {
        self.num_index.get(&(field, num_key(n)?)).copied()
    }

    /// The key of a number atom, `None` for substring atoms.
    pub fn num_of(&self, a: AtomId) -> Option<u64> {
        self.nums.get(a as usize).copied().flatten()
    }
    pub fn len(&self) -> usize {
        self.atoms.len()
    }
    pub fn is_empty(&self) -> bool {
        self.atoms.is_empty()
    }
}

/// Comparison operators of the numeric and time modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl CmpOp {
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Lt => a < b,
            CmpOp::Lte => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Gte => a >= b,
        }
    }
    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
        }
    }
}

/// How a field reference compares (`fieldref` with contains/startswith/endswith).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefMode {
    Exact,
    Prefix,
    Suffix,
    Contains,
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::/n`, or a bare address (one host). Host bits
    /// below the prefix are ignored, as most network tools do.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|&p| p <= max)?,
            None => max,
        };
        Some(Cidr { addr, prefix })
    }

    /// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) count as their IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                (u32::from(n) & mask) == (u32::from(a) & mask)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                (u128::from(n) & mask) == (u128::from(a) & mask)
            }
            _ => false,
        }
    }
}

/// A string matcher with its prefilter atoms.
#[derive(Debug, Clone)]
pub struct StrMatcher {
    pub pattern: StrPattern,
    /// Compare against the value as is instead of lower-cased.
    pub cased: bool,
    /// Lower-cased literal that occurs in every matching value, if any.
    pub atom: Option<AtomId>,
    /// True when "the atom occurs in the field" is exactly "the pattern matches".
    pub atom_decides: bool,
}

/// A compiled regular expression with its prefilter atoms.
#[derive(Debug, Clone)]
pub struct RegexMatcher {
    pub regex: Regex,
    /// The expression as written, for explanations.
    pub source: String,
    /// One of these occurs (lower-cased) in every matching value; empty = none known.
    pub atoms: Vec<AtomId>,
    /// An expression that matches somewhere in a text exactly when `regex`
    /// does, with its edges trimmed (see [`trim_for_search`]); `None` when
    /// nothing could be trimmed. `-k\s\w{1,64}(?:\s?(?:-p|-s))?` becomes
    /// `-k\s\w`: the bounded Unicode repetition made the lazy DFA give up
    /// and fall back to a slow engine on every svchost process. Used on the
    /// optimized path only; the reference evaluator runs `regex`, so the
    /// equivalence tests compare the two.
    pub search: Option<Box<Regex>>,
}

/// For unanchored "does it match anywhere" searches: drops trailing and
/// leading parts of a top-level concatenation that can match the empty
/// string, and cuts a bounded repetition at either edge to its minimum. A
/// match of `A X{n,m}` starts with a match of `A X{n}`, and a match of
/// `A X{n}` is one of `A X{n,m}`; `A X?` matches where `A` does. Anchors
/// and other look-arounds stop the trimming.
pub fn trim_for_search(hir: &regex_syntax::hir::Hir) -> Option<regex_syntax::hir::Hir> {
    use regex_syntax::hir::{Hir, HirKind, Repetition};
    let HirKind::Concat(parts) = hir.kind() else {
        return None;
    };
    let mut parts = parts.clone();
    let mut changed = false;
    for trailing in [true, false] {
        let edge = |parts: &[Hir]| -> Option<usize> {
            match parts.len() {
                0 => None,
                n if trailing => Some(n - 1),
                _ => Some(0),
            }
        };
        while let Some(at) = edge(&parts) {
            let HirKind::Repetition(r) = parts[at].kind() else {
                break;
            };
            if r.min == 0 {
                parts.remove(at);
                changed = true;
                continue;
            }
            if r.max != Some(r.min) {
                parts[at] = Hir::repetition(Repetition {
                    min: r.min,
                    max: Some(r.min),
                    greedy: r.greedy,
                    sub: r.sub.clone(),
                });
                changed = true;
            }
            break;
        }
    }
    // an expression reduced to nothing matches everywhere: leave it alone
    (changed && !parts.is_empty()).then(|| Hir::concat(parts))
}

/// What one value (alternative) of a detection item checks.
// Matchers sit in contiguous vectors walked per event; boxing the large
// string variant would add a pointer chase on the hottest path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Matcher {
    Str(StrMatcher),
    /// Numeric equality (numbers, and strings that spell a decimal number).
    Num(f64),
    Bool(bool),
    /// The field is missing or null.
    Null,
    /// `exists: true/false`.
    Exists(bool),
    Regex(RegexMatcher),
    Cidr(Cidr),
    Cmp(CmpOp, f64),
    Time(TimePart, CmpOp, f64),
    FieldRef {
        other: FieldId,
        mode: RefMode,
        cased: bool,
    },
    /// `neq`: the field is present, not null, and some element does not match.
    Not(Box<Matcher>),
}

/// One value of an item: its alternatives, OR-ed.
#[derive(Debug, Clone)]
pub struct ValueMatch {
    pub display: String,
    pub alts: Vec<Matcher>,
}

/// A compiled detection item.
#[derive(Debug, Clone)]
pub struct Item {
    pub field: FieldId,
    /// The key as written (for explanations).
    pub key: String,
    /// `all`: every value must match, else any.
    pub all: bool,
    pub values: Vec<ValueMatch>,
    /// For an item that is a list of plain case-insensitive `contains`
    /// values (no `all`): one SIMD search for all needles instead of one
    /// substring search per value. Lists of dozens of short needles
    /// (`CommandLine|contains: ['^^', ',;,', ...]`) run on every process
    /// creation, and one pass over the text beats a pass per needle. Used
    /// on the optimized path only; the reference evaluator checks each
    /// value, so the two are compared by the equivalence tests.
    ///
    /// `Some` when the item qualifies; the searcher is built the first time
    /// the item runs, so the memory goes only to the items events reach
    /// (a few hundred of the corpus's thousands).
    pub any_contains: Option<OnceLock<Option<AnyContains>>>,
    /// The item's result is remembered per field value across events (see
    /// [`crate::memo::ItemMemo`]): it reads only its own field, and is
    /// costly enough that a lookup is cheaper than evaluating it again.
    pub memo: bool,
}

/// Several lower-cased needles searched at once (see [`Item::any_contains`]).
#[derive(Debug, Clone)]
pub struct AnyContains {
    // boxed: every qualifying item carries the (usually empty) slot
    searcher: Box<aho_corasick::packed::Searcher>,
}

/// Fewest needles for which an item gets an [`AnyContains`].
pub const ANY_CONTAINS_MIN: usize = 3;
/// Most needles one packed searcher takes (the crate's Teddy limit).
pub const ANY_CONTAINS_MAX: usize = 64;

impl AnyContains {
    /// Whether an item with these values gets an [`AnyContains`].
    fn qualifies(all: bool, values: &[ValueMatch]) -> bool {
        !all && Self::needles(values)
            .is_some_and(|n| (ANY_CONTAINS_MIN..=ANY_CONTAINS_MAX).contains(&n.len()))
    }

    /// The needles, when every alternative of every value is a plain
    /// case-insensitive `contains`.
    fn needles(values: &[ValueMatch]) -> Option<Vec<&str>> {
        let mut needles: Vec<&str> = Vec::new();
        for v in values {
            for m in &v.alts {
                match m {
                    Matcher::Str(StrMatcher {
                        pattern: StrPattern::Contains(f),
                        cased: false,
                        ..
                    }) if !f.needle.is_empty() => needles.push(&f.needle),
                    _ => return None,
                }
            }
        }
        Some(needles)
    }

    /// The searcher for an item's values (see [`AnyContains::qualifies`]).
    pub fn build(all: bool, values: &[ValueMatch]) -> Option<AnyContains> {
        if !Self::qualifies(all, values) {
            return None;
        }
        let needles = Self::needles(values)?;
        let mut cfg = aho_corasick::packed::Config::new();
        cfg.match_kind(aho_corasick::packed::MatchKind::LeftmostFirst);
        let searcher = Box::new(cfg.builder().extend(needles).build()?);
        Some(AnyContains { searcher })
    }

    /// Whether any needle occurs in `lower` (lower-cased text).
    #[inline]
    pub fn is_match(&self, lower: &str) -> bool {
        self.searcher.find(lower.as_bytes()).is_some()
    }
}

/// Fewest alternatives of an item that make it worth memoizing when none
/// of them is a regular expression or a glob.
pub const MEMO_MIN_ALTS: usize = 3;

/// Whether an item's result may be memoized per value of its field (see
/// [`Item::memo`]): an event field (not the raw line or a timestamp), no
/// field references (they read a second field), and either a regular
/// expression, a glob, or several alternatives to try.
fn worth_memo(field: FieldId, values: &[ValueMatch]) -> bool {
    fn inner(m: &Matcher) -> &Matcher {
        match m {
            Matcher::Not(x) => inner(x),
            other => other,
        }
    }
    if field <= FIELD_INGESTED {
        return false;
    }
    let alts = || values.iter().flat_map(|v| v.alts.iter()).map(inner);
    if alts().any(|m| matches!(m, Matcher::FieldRef { .. })) {
        return false;
    }
    alts().count() >= MEMO_MIN_ALTS
        || alts().any(|m| {
            matches!(
                m,
                Matcher::Regex(_)
                    | Matcher::Str(StrMatcher {
                        pattern: StrPattern::Glob(_),
                        ..
                    })
            )
        })
}

/// A compiled search identifier.
#[derive(Debug, Clone)]
pub enum SearchExpr {
    And(Vec<SearchExpr>),
    Or(Vec<SearchExpr>),
    Item(Box<Item>),
}

/// The compiled condition: searches are referenced by index.
#[derive(Debug, Clone)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Search(u32),
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub search_names: Vec<String>,
    pub searches: Vec<SearchExpr>,
    pub condition: Expr,
    /// Prefilter trigger in conjunctive form: `None` when the rule can match
    /// without any atom occurring; otherwise every clause has at least one
    /// atom that occurs in every matching event (at most [`MAX_CLAUSES`]).
    pub trigger: Option<Vec<Vec<AtomId>>>,
    /// Every atom its matchers consult.
    pub atoms: Vec<AtomId>,
    /// Fields whose lower-cased text the matchers read.
    pub lower_fields: Vec<FieldId>,
}

/// A rule that cannot be honoured: the construct and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub construct: String,
    pub reason: String,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.construct, self.reason)
    }
}

fn reject(construct: impl Into<String>, reason: impl Into<String>) -> Reject {
    Reject {
        construct: construct.into(),
        reason: reason.into(),
    }
}

/// Tables the compiler interns into, shared by all rules of an engine.
pub struct Compiler<'a> {
    pub fields: &'a mut FieldTable,
    pub atoms: &'a mut AtomTable,
    /// Engine-level placeholder values (applied after pipelines' own vars).
    pub placeholders: &'a BTreeMap<String, Vec<String>>,
    /// Non-fatal notes about rules (reported by `rules check`).
    pub warnings: Vec<String>,
}

impl Compiler<'_> {
    /// Compiles a rule.
    pub fn compile(&mut self, rule: &SigmaRule) -> Result<CompiledRule, Reject> {
        let mut search_names = Vec::new();
        let mut searches = Vec::new();
        let mut index = FxHashMap::default();
        for (name, search) in &rule.detection.searches {
            let compiled = self.search(name, search)?;
            index.insert(name.clone(), searches.len() as u32);
            search_names.push(name.clone());
            searches.push(compiled);
        }
        let names: Vec<&str> = search_names.iter().map(String::as_str).collect();
        let mut conds = Vec::new();
        for c in &rule.detection.conditions {
            conds.push(resolve_condition(c, &index, &names)?);
        }
        let condition = if conds.len() == 1 {
            conds.remove(0)
        } else {
            Expr::Or(conds)
        };
        let mut atoms = Vec::new();
        let mut lower_fields = Vec::new();
        for s in &searches {
            collect_atoms(s, &mut atoms, &mut lower_fields);
        }
        atoms.sort_unstable();
        atoms.dedup();
        lower_fields.sort_unstable();
        lower_fields.dedup();
        let trigger = expr_clauses(&condition, &searches, self.atoms);
        Ok(CompiledRule {
            search_names,
            searches,
            condition,
            trigger,
            atoms,
            lower_fields,
        })
    }

    fn search(&mut self, name: &str, s: &Search) -> Result<SearchExpr, Reject> {
        Ok(match s {
            Search::And(v) => SearchExpr::And(
                v.iter()
                    .map(|x| self.search(name, x))
                    .collect::<Result<_, _>>()?,
            ),
            Search::Or(v) => SearchExpr::Or(
                v.iter()
                    .map(|x| self.search(name, x))
                    .collect::<Result<_, _>>()?,
            ),
            Search::Item(i) => SearchExpr::Item(Box::new(self.item(name, i)?)),
        })
    }

    /// Compiles one detection item.
    pub fn item(&mut self, search: &str, item: &DetectionItem) -> Result<Item, Reject> {
        let key = item.key();
        let construct = format!(
            "detection.{search}.{}",
            if key.is_empty() { "<keywords>" } else { &key }
        );
        let field = match &item.field {
            Some(f) => self.fields.intern(f),
            None => FIELD_ORIGINAL,
        };
        let flags = Flags::from(&item.modifiers);
        if item.field.is_none() {
            for m in &item.modifiers {
                if matches!(
                    m,
                    Modifier::Exists
                        | Modifier::FieldRef
                        | Modifier::Cidr
                        | Modifier::Lt
                        | Modifier::Lte
                        | Modifier::Gt
                        | Modifier::Gte
                        | Modifier::Neq
                ) || m.time_part().is_some()
                {
                    return Err(reject(
                        &construct,
                        format!("modifier '{m}' needs a field; keyword searches have none"),
                    ));
                }
            }
        }
        if flags.all && item.values.len() == 1 {
            self.warnings.push(format!(
                "{construct}: 'all' on a single value has no effect (the specification disallows it)"
            ));
        }
        if flags.all && item.modifiers.contains(&Modifier::Exists) {
            return Err(reject(&construct, "'all' cannot combine with 'exists'"));
        }
        let mut values = Vec::new();
        for raw in &item.values {
            let alts = self
                .value(field, item.field.is_none(), &item.modifiers, &flags, raw)
                .map_err(|r| reject(&construct, format!("value {raw}: {r}")))?;
            values.push(ValueMatch {
                display: raw.to_string(),
                alts,
            });
        }
        let any_contains = AnyContains::qualifies(flags.all, &values).then(OnceLock::new);
        let memo = worth_memo(field, &values);
        Ok(Item {
            field,
            key: if key.is_empty() {
                "<keywords>".into()
            } else {
                key
            },
            all: flags.all,
            values,
            any_contains,
            memo,
        })
    }

    /// Applies the modifier chain to one raw value.
    fn value(
        &mut self,
        field: FieldId,
        keyword: bool,
        mods: &[Modifier],
        flags: &Flags,
        raw: &RawValue,
    ) -> Result<Vec<Matcher>, String> {
        let transforming: Vec<Modifier> = mods
            .iter()
            .copied()
            .filter(|m| {
                !matches!(
                    m,
                    Modifier::All
                        | Modifier::Cased
                        | Modifier::Neq
                        | Modifier::Expand
                        | Modifier::ReIgnoreCase
                        | Modifier::ReMultiline
                        | Modifier::ReDotAll
                )
            })
            .collect();
        let has = |m: Modifier| mods.contains(&m);
        if (has(Modifier::ReIgnoreCase) || has(Modifier::ReMultiline) || has(Modifier::ReDotAll))
            && !has(Modifier::Re)
        {
            return Err("regular expression flags (i, m, s) need the 're' modifier".into());
        }
        // Modifiers that take the raw value and must come first.
        if let Some(first) = transforming.first().copied() {
            let later = &transforming[1..];
            match first {
                Modifier::Re => return self.regex_value(field, flags, later, raw).map(|m| vec![m]),
                Modifier::Cidr => {
                    if !later.is_empty() {
                        return Err(format!("'cidr' cannot be followed by '{}'", later[0]));
                    }
                    let RawValue::Str(s) = raw else {
                        return Err("'cidr' needs a network such as 10.0.0.0/8".into());
                    };
                    let c = Cidr::parse(s)
                        .ok_or_else(|| format!("'{s}' is not a valid IPv4 or IPv6 CIDR network"))?;
                    return wrap_neq(flags, Matcher::Cidr(c)).map(|m| vec![m]);
                }
                Modifier::Exists => {
                    if !later.is_empty() || flags.neq || flags.cased {
                        return Err("'exists' takes a boolean and no other modifiers".into());
                    }
                    let b = match raw {
                        RawValue::Bool(b) => *b,
                        RawValue::Str(s) if s.eq_ignore_ascii_case("true") => true,
                        RawValue::Str(s) if s.eq_ignore_ascii_case("false") => false,
                        _ => return Err("'exists' takes true or false".into()),
                    };
                    return Ok(vec![Matcher::Exists(b)]);
                }
                Modifier::FieldRef => {
                    let RawValue::Str(name) = raw else {
                        return Err("'fieldref' takes a field name".into());
                    };
                    let mut mode = RefMode::Exact;
                    for m in later {
                        mode = match (m, mode) {
                            (Modifier::Contains, _) => RefMode::Contains,
                            (Modifier::StartsWith, RefMode::Suffix)
                            | (Modifier::EndsWith, RefMode::Prefix) => RefMode::Contains,
                            (Modifier::StartsWith, RefMode::Exact) => RefMode::Prefix,
                            (Modifier::EndsWith, RefMode::Exact) => RefMode::Suffix,
                            (Modifier::StartsWith | Modifier::EndsWith, m) => m,
                            (other, _) => {
                                return Err(format!("'fieldref' cannot be followed by '{other}'"))
                            }
                        };
                    }
                    let other = self.fields.intern(name);
                    return wrap_neq(
                        flags,
                        Matcher::FieldRef {
                            other,
                            mode,
                            cased: flags.cased,
                        },
                    )
                    .map(|m| vec![m]);
                }
                _ => {}
            }
            if let Some(bad) = later.iter().find(|m| {
                matches!(
                    m,
                    Modifier::Re | Modifier::Cidr | Modifier::Exists | Modifier::FieldRef
                )
            }) {
                return Err(format!(
                    "'{bad}' applies only to the unmodified value and must come first"
                ));
            }
        }
        // Numeric comparisons and time parts.
        let cmp_of = |m: Modifier| match m {
            Modifier::Lt => Some(CmpOp::Lt),
            Modifier::Lte => Some(CmpOp::Lte),
            Modifier::Gt => Some(CmpOp::Gt),
            Modifier::Gte => Some(CmpOp::Gte),
            _ => None,
        };
        let time = transforming.iter().find_map(|m| m.time_part());
        let cmps: Vec<CmpOp> = transforming.iter().filter_map(|m| cmp_of(*m)).collect();
        if time.is_some() || !cmps.is_empty() {
            if cmps.len() > 1 {
                return Err("at most one of lt, lte, gt, gte".into());
            }
            let others: Vec<&Modifier> = transforming
                .iter()
                .filter(|m| m.time_part().is_none() && cmp_of(**m).is_none())
                .collect();
            if let Some(o) = others.first() {
                return Err(format!(
                    "'{o}' cannot combine with numeric or time comparisons"
                ));
            }
            if transforming
                .iter()
                .filter(|m| m.time_part().is_some())
                .count()
                > 1
            {
                return Err("at most one time-part modifier".into());
            }
            let n = number_of(raw).ok_or("numeric comparisons and time parts need a number")?;
            let op = cmps.first().copied().unwrap_or(CmpOp::Eq);
            let m = match time {
                Some(p) => Matcher::Time(p, op, n),
                None => Matcher::Cmp(op, n),
            };
            return wrap_neq(flags, m).map(|m| vec![m]);
        }
        // String-shaped values.
        let mut vals: Vec<SigmaStr> = match raw {
            RawValue::Null => {
                if !transforming.is_empty() || flags.neq || flags.cased {
                    return Err(
                        "null takes no modifiers (write `not` in the condition instead)".into(),
                    );
                }
                return Ok(vec![Matcher::Null]);
            }
            RawValue::Bool(b) if transforming.is_empty() && !keyword => {
                return wrap_neq(flags, Matcher::Bool(*b)).map(|m| vec![m]);
            }
            RawValue::Int(_) | RawValue::Float(_) if transforming.is_empty() && !keyword => {
                let n = number_of(raw).ok_or("not a number")?;
                if !flags.neq {
                    self.atoms.intern_num(field, n);
                }
                return wrap_neq(flags, Matcher::Num(n)).map(|m| vec![m]);
            }
            RawValue::Str(s) => vec![SigmaStr::parse(s, flags.expand)],
            RawValue::Int(i) => vec![SigmaStr::plain(&i.to_string())],
            RawValue::Float(f) => vec![SigmaStr::plain(&f.to_string())],
            RawValue::Bool(b) => vec![SigmaStr::plain(&b.to_string())],
        };
        vals = self.resolve_placeholders(vals)?;
        if keyword
            && !transforming.iter().any(|m| {
                matches!(
                    m,
                    Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith
                )
            })
        {
            // keywords search anywhere in the raw message: implicit contains
            for v in &mut vals {
                add_stars(v, true, true);
            }
        }
        for m in &transforming {
            let mut next = Vec::with_capacity(vals.len());
            for v in vals {
                match m {
                    Modifier::Contains => next.push(with_stars(v, true, true)),
                    Modifier::StartsWith => next.push(with_stars(v, false, true)),
                    Modifier::EndsWith => next.push(with_stars(v, true, false)),
                    Modifier::Windash => next.push(windash(v)),
                    Modifier::Base64 => {
                        let plain = plain_bytes(&v, "base64")?;
                        next.push(SigmaStr::plain(
                            &base64::engine::general_purpose::STANDARD.encode(plain),
                        ));
                    }
                    Modifier::Base64Offset => {
                        for alt in expand_dashes(v)? {
                            let plain = plain_bytes(&alt, "base64offset")?;
                            for s in base64_offsets(&plain) {
                                next.push(SigmaStr::plain(&s));
                            }
                        }
                    }
                    Modifier::Utf16Le | Modifier::Utf16Be | Modifier::Utf16 => {
                        for alt in expand_dashes(v)? {
                            next.push(utf16(&alt, *m)?);
                        }
                    }
                    other => {
                        return Err(format!(
                            "modifier '{other}' does not apply to a string value"
                        ))
                    }
                }
            }
            if next.len() > 4096 {
                return Err("value expands to more than 4096 alternatives".into());
            }
            vals = next;
        }
        let mut out = Vec::with_capacity(vals.len());
        for v in vals {
            let m = self.string_matcher(field, v, flags.cased)?;
            out.push(wrap_neq(flags, m)?);
        }
        Ok(out)
    }

    fn resolve_placeholders(&self, vals: Vec<SigmaStr>) -> Result<Vec<SigmaStr>, String> {
        let mut out = Vec::new();
        for v in vals {
            if !v.has_placeholders() {
                out.push(v);
                continue;
            }
            let mut combos = vec![SigmaStr::default()];
            for t in v.toks {
                match t {
                    Tok::Placeholder(name) => {
                        let Some(values) = self.placeholders.get(&name) else {
                            return Err(format!(
                                "placeholder %{name}% has no values: give them under [rules.placeholders] in the \
                                 detector's config (`--placeholder {name}=v1,v2` for the rule tools) or in a \
                                 pipeline's `vars` with a value_placeholders transformation"
                            ));
                        };
                        if values.is_empty() {
                            return Err(format!("placeholder %{name}% has an empty value list"));
                        }
                        let mut next = Vec::new();
                        for c in &combos {
                            for val in values {
                                let mut n = c.clone();
                                for t in SigmaStr::parse(val, false).toks {
                                    n.push(t);
                                }
                                next.push(n);
                            }
                        }
                        combos = next;
                    }
                    other => combos.iter_mut().for_each(|c| c.push(other.clone())),
                }
            }
            out.extend(combos);
        }
        Ok(out)
    }

    fn string_matcher(
        &mut self,
        field: FieldId,
        v: SigmaStr,
        cased: bool,
    ) -> Result<Matcher, String> {
        let mut toks = Vec::with_capacity(v.toks.len());
        for t in v.toks {
            toks.push(match t {
                Tok::Lit(b) => {
                    let s = String::from_utf8(b).map_err(|_| {
                        "the encoded value is not valid UTF-8 text, so it can never occur in an event \
                         (encode it further, e.g. with base64)"
                            .to_string()
                    })?;
                    GlobTok::Lit(if cased { s } else { lowercase(&s) })
                }
                Tok::Star => GlobTok::Star,
                Tok::One => GlobTok::One,
                Tok::Dash => GlobTok::Dash,
                Tok::Placeholder(n) => return Err(format!("unresolved placeholder %{n}%")),
            });
        }
        // merge adjacent stars, they mean the same as one
        toks.dedup_by(|a, b| matches!((a, b), (GlobTok::Star, GlobTok::Star)));
        let pattern = StrPattern::from_tokens(toks);
        let atom_text = best_run(pattern.literal_runs());
        let atom = atom_text
            .as_ref()
            .map(|t| self.atoms.intern(field, t.clone()));
        let atom_decides = !cased
            && pattern.is_plain_contains()
            && atom_text
                .as_deref()
                .is_some_and(|t| pattern.literal_runs().first() == Some(&t));
        Ok(Matcher::Str(StrMatcher {
            pattern,
            cased,
            atom,
            atom_decides,
        }))
    }

    fn regex_value(
        &mut self,
        field: FieldId,
        flags: &Flags,
        later: &[Modifier],
        raw: &RawValue,
    ) -> Result<Matcher, String> {
        let RawValue::Str(src) = raw else {
            return Err("'re' needs a string".into());
        };
        if flags.expand {
            return Err("'expand' inside regular expressions is not supported".into());
        }
        let (mut start, mut end) = (false, false);
        for m in later {
            match m {
                Modifier::Contains => {}
                Modifier::StartsWith => start = true,
                Modifier::EndsWith => end = true,
                other => return Err(format!("'re' cannot be followed by '{other}'")),
            }
        }
        let mut pat = src.clone();
        if start || end {
            pat = format!(
                "{}(?:{src}){}",
                if start { r"\A" } else { "" },
                if end { r"\z" } else { "" }
            );
        }
        if let Some(c) = unsupported_regex_construct(src) {
            return Err(format!(
                "regular expression uses {c}, which needs a backtracking engine; the linear-time \
                 `regex` crate cannot run it and the rule is rejected rather than approximated"
            ));
        }
        let regex = RegexBuilder::new(&pat)
            .case_insensitive(flags.re_i)
            .multi_line(flags.re_m)
            .dot_matches_new_line(flags.re_s)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
            .build()
            .map_err(|e| match e {
                regex::Error::CompiledTooBig(n) => {
                    format!("regular expression exceeds the {n}-byte compile limit")
                }
                e => format!(
                    "invalid regular expression: {}",
                    e.to_string().lines().last().unwrap_or("?")
                ),
            })?;
        let hir = regex_syntax::ParserBuilder::new()
            .case_insensitive(flags.re_i)
            .multi_line(flags.re_m)
            .dot_matches_new_line(flags.re_s)
            .build()
            .parse(&pat)
            .map_err(|e| format!("invalid regular expression: {e}"))?;
        let atoms = regex_atoms(&hir)
            .unwrap_or_default()
            .into_iter()
            .map(|a| self.atoms.intern(field, a))
            .collect();
        // the trimmed form carries its flags in the HIR (case folding is
        // already applied to its classes), so it is built without them
        let search = trim_for_search(&hir).and_then(|t| {
            RegexBuilder::new(&t.to_string())
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
                .build()
                .ok()
                .map(Box::new)
        });
        wrap_neq(
            flags,
            Matcher::Regex(RegexMatcher {
                regex,
                source: src.clone(),
                atoms,
                search,
            }),
        )
    }
}

/// Modifier flags that apply to the whole item.
#[derive(Debug, Default)]
struct Flags {
    all: bool,
    cased: bool,
    neq: bool,
    expand: bool,
    re_i: bool,
    re_m: bool,
    re_s: bool,
}

impl From<&Vec<Modifier>> for Flags {
    fn from(mods: &Vec<Modifier>) -> Self {
        let has = |m| mods.contains(&m);
        Flags {
            all: has(Modifier::All),
            cased: has(Modifier::Cased),
            neq: has(Modifier::Neq),
            expand: has(Modifier::Expand),
            re_i: has(Modifier::ReIgnoreCase),
            re_m: has(Modifier::ReMultiline),
            re_s: has(Modifier::ReDotAll),
        }
    }
}

fn wrap_neq(flags: &Flags, m: Matcher) -> Result<Matcher, String> {
    if flags.neq {
        Ok(Matcher::Not(Box::new(m)))
    } else {
        Ok(m)
    }
}

fn number_of(raw: &RawValue) -> Option<f64> {
    match raw {
        RawValue::Int(i) => Some(*i as f64),
        RawValue::Float(f) => Some(*f),
        RawValue::Str(s) => parse_decimal(s),
        _ => None,
    }
}

/// Strict decimal number: `[+-]?digits[.digits]` (no exponent, no spaces,
/// no hex). Event strings that spell a number this way compare numerically.
pub fn parse_decimal(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let digits_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == digits_start {
        return None;
    }
    if i < b.len() {
        if b[i] != b'.' {
            return None;
        }
        i += 1;
        let frac = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == frac || i != b.len() {
            return None;
        }
    }
    s.parse().ok()
}

fn add_stars(v: &mut SigmaStr, front: bool, back: bool) {
    if front && !v.starts_with_star() {
        v.toks.insert(0, Tok::Star);
    }
    if back && !v.ends_with_star() {
        v.toks.push(Tok::Star);
    }
}

fn with_stars(mut v: SigmaStr, front: bool, back: bool) -> SigmaStr {
    add_stars(&mut v, front, back);
    v
}

fn plain_bytes(v: &SigmaStr, modifier: &str) -> Result<Vec<u8>, String> {
    v.as_plain_bytes().ok_or_else(|| {
        format!("'{modifier}' cannot encode wildcards; apply contains/startswith/endswith after it")
    })
}

/// pySigma's base64offset: the value encoded at byte offsets 0, 1 and 2 of
/// a longer string, keeping only the characters that do not depend on the
/// neighbouring bytes.
fn base64_offsets(plain: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    const END_CUT: [usize; 3] = [0, 3, 2];
    let mut out = Vec::new();
    for i in 0..3 {
        let mut buf = vec![b' '; i];
        buf.extend_from_slice(plain);
        let enc = base64::engine::general_purpose::STANDARD.encode(&buf);
        let cut = END_CUT[(plain.len() + i) % 3];
        let end = enc.len().saturating_sub(cut);
        if START[i] < end {
            let s = enc[START[i]..end].to_owned();
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

fn utf16(v: &SigmaStr, m: Modifier) -> Result<SigmaStr, String> {
    let mut out = SigmaStr::default();
    if m == Modifier::Utf16 {
        out.push_bytes(&[0xFF, 0xFE]);
    }
    for t in &v.toks {
        match t {
            Tok::Lit(b) => {
                let s = std::str::from_utf8(b).map_err(|_| format!("'{m}' needs text input"))?;
                let mut bytes = Vec::with_capacity(s.len() * 2);
                for unit in s.encode_utf16() {
                    if m == Modifier::Utf16Be {
                        bytes.extend_from_slice(&unit.to_be_bytes());
                    } else {
                        bytes.extend_from_slice(&unit.to_le_bytes());
                    }
                }
                out.push_bytes(&bytes);
            }
            other => out.push(other.clone()),
        }
    }
    Ok(out)
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// pySigma's windash: a `-` or `/` that starts a word (regex `\B[-/]\b`,
/// i.e. not preceded by a word character and followed by one) becomes a
/// position matching any of [`WINDASH_CHARS`]. Each literal run is looked at
/// on its own, as pySigma does with the parts between wildcards.
fn windash(v: SigmaStr) -> SigmaStr {
    let mut out = SigmaStr::default();
    for t in v.toks {
        let Tok::Lit(b) = t else {
            out.push(t);
            continue;
        };
        let Ok(s) = String::from_utf8(b.clone()) else {
            out.push(Tok::Lit(b));
            continue;
        };
        let chars: Vec<char> = s.chars().collect();
        let mut run = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let prev_word = i > 0 && is_word(chars[i - 1]);
            let next_word = chars.get(i + 1).is_some_and(|&n| is_word(n));
            if (c == '-' || c == '/') && !prev_word && next_word {
                out.push_bytes(run.as_bytes());
                run.clear();
                out.push(Tok::Dash);
            } else {
                run.push(c);
            }
        }
        out.push_bytes(run.as_bytes());
    }
    out
}

/// Expands `windash` positions into concrete strings (for modifiers that
/// must see plain text, such as base64).
fn expand_dashes(v: SigmaStr) -> Result<Vec<SigmaStr>, String> {
    let n = v.toks.iter().filter(|t| matches!(t, Tok::Dash)).count();
    if n == 0 {
        return Ok(vec![v]);
    }
    if n > 4 {
        return Err("windash before an encoding modifier expands to too many variants".into());
    }
    let mut out = vec![SigmaStr::default()];
    for t in v.toks {
        if let Tok::Dash = t {
            let mut next = Vec::new();
            for o in &out {
                for c in WINDASH_CHARS {
                    let mut n = o.clone();
                    n.push_bytes(c.to_string().as_bytes());
                    next.push(n);
                }
            }
            out = next;
        } else {
            out.iter_mut().for_each(|o| o.push(t.clone()));
        }
    }
    Ok(out)
}

/// Constructs the `regex` crate cannot run (it guarantees linear time).
fn unsupported_regex_construct(p: &str) -> Option<&'static str> {
    let b = p.as_bytes();
    let mut i = 0;
    let mut in_class = false;
    let mut after_quantifier = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            if let Some(&n) = b.get(i + 1) {
                if !in_class && n.is_ascii_digit() && n != b'0' {
                    return Some("a back-reference (\\1 ...)");
                }
                if !in_class
                    && (n == b'k' || n == b'g')
                    && matches!(b.get(i + 2), Some(b'<' | b'{' | b'\''))
                {
                    return Some("a named back-reference");
                }
            }
            after_quantifier = false;
            i += 2;
            continue;
        }
        if in_class {
            if c == b']' {
                in_class = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'[' => in_class = true,
            b'(' => {
                let rest = &p[i..];
                if rest.starts_with("(?=") || rest.starts_with("(?!") {
                    return Some("look-ahead (?= / (?!");
                }
                if rest.starts_with("(?<=") || rest.starts_with("(?<!") {
                    return Some("look-behind (?<= / (?<!");
                }
                if rest.starts_with("(?>") {
                    return Some("an atomic group (?>");
                }
            }
            b'+' if after_quantifier => return Some("a possessive quantifier"),
            _ => {}
        }
        after_quantifier = matches!(c, b'*' | b'+' | b'?' | b'}');
        i += 1;
    }
    None
}

fn resolve_condition(
    c: &Cond,
    index: &FxHashMap<String, u32>,
    names: &[&str],
) -> Result<Expr, Reject> {
    Ok(match c {
        Cond::And(v) => Expr::And(
            v.iter()
                .map(|x| resolve_condition(x, index, names))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Or(v) => Expr::Or(
            v.iter()
                .map(|x| resolve_condition(x, index, names))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Not(x) => Expr::Not(Box::new(resolve_condition(x, index, names)?)),
        Cond::Ident(n) => Expr::Search(*index.get(n).ok_or_else(|| {
            reject(
                "detection.condition",
                format!("search identifier '{n}' is not defined"),
            )
        })?),
        Cond::Of { all, target } => {
            let chosen = condition::select(target, names.iter().copied());
            if chosen.is_empty() {
                return Err(reject(
                    "detection.condition",
                    format!("'{c}' selects no search identifier"),
                ));
            }
            let v: Vec<Expr> = chosen.iter().map(|n| Expr::Search(index[*n])).collect();
            if *all {
                Expr::And(v)
            } else {
                Expr::Or(v)
            }
        }
    })
}

fn collect_atoms(s: &SearchExpr, atoms: &mut Vec<AtomId>, lower: &mut Vec<FieldId>) {
    match s {
        SearchExpr::And(v) | SearchExpr::Or(v) => {
            v.iter().for_each(|x| collect_atoms(x, atoms, lower))
        }
        SearchExpr::Item(i) => {
            for v in &i.values {
                for m in &v.alts {
                    matcher_needs(m, i.field, atoms, lower);
                }
            }
        }
    }
}

fn matcher_needs(m: &Matcher, field: FieldId, atoms: &mut Vec<AtomId>, lower: &mut Vec<FieldId>) {
    match m {
        Matcher::Str(s) => {
            atoms.extend(s.atom);
            lower.push(field);
        }
        Matcher::Regex(r) => atoms.extend(r.atoms.iter().copied()),
        Matcher::FieldRef { other, .. } => {
            lower.push(field);
            lower.push(*other);
        }
        Matcher::Not(inner) => matcher_needs(inner, field, atoms, lower),
        _ => {}
    }
}

/// Trigger of a matcher on `field`: atoms of which one must occur when it
/// matches.
fn matcher_trigger(m: &Matcher, field: FieldId, atoms: &AtomTable) -> Option<Vec<AtomId>> {
    match m {
        Matcher::Str(s) => s.atom.map(|a| vec![a]),
        Matcher::Regex(r) if !r.atoms.is_empty() => Some(r.atoms.clone()),
        Matcher::Num(n) => atoms.num_atom(field, *n).map(|a| vec![a]),
        _ => None,
    }
}

fn union(parts: impl Iterator<Item = Option<Vec<AtomId>>>) -> Option<Vec<AtomId>> {
    let mut out = Vec::new();
    for p in parts {
        out.extend(p?);
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// Most clauses a rule's trigger keeps: more would cost bit tests per
/// candidate for little extra selectivity.
pub const MAX_CLAUSES: usize = 6;
/// Largest CNF an OR may multiply out to before it falls back to one clause.
const MAX_PRODUCT: usize = 8;

/// A conjunction of clauses; each clause is a set of atoms of which at
/// least one occurs in every matching event. `None`: no such guarantee.
type Clauses = Option<Vec<Vec<AtomId>>>;

/// Estimated chance that a clause fires on a random event: longer literals
/// are rarer; keyword atoms scan the whole raw line, so they fire more often
/// than field atoms of the same length.
pub fn clause_cost(set: &[AtomId], atoms: &AtomTable) -> f64 {
    set.iter()
        .map(|&a| {
            if atoms.num_of(a).is_some() {
                // an exact value such as an EventID: common in its route
                return NUM_ATOM_COST;
            }
            let (field, lit) = &atoms.atoms[a as usize];
            let len = lit.len().clamp(MIN_ATOM_BYTES, 16) as i32;
            let base = 0.5f64.powi(len);
            if *field == FIELD_ORIGINAL {
                base * 4.0
            } else {
                base
            }
        })
        .sum()
}

/// [`clause_cost`] of a number atom.
const NUM_ATOM_COST: f64 = 0.25;

/// Keeps the cheapest clauses, without duplicates.
fn prune(mut clauses: Vec<Vec<AtomId>>, atoms: &AtomTable) -> Vec<Vec<AtomId>> {
    for c in &mut clauses {
        c.sort_unstable();
        c.dedup();
    }
    clauses.sort();
    clauses.dedup();
    clauses.sort_by(|a, b| clause_cost(a, atoms).total_cmp(&clause_cost(b, atoms)));
    clauses.truncate(MAX_CLAUSES);
    clauses
}

/// AND: every part's clauses hold.
fn and_clauses(parts: impl Iterator<Item = Clauses>, atoms: &AtomTable) -> Clauses {
    let all: Vec<Vec<AtomId>> = parts.flatten().flatten().collect();
    (!all.is_empty()).then(|| prune(all, atoms))
}

/// OR: (A1∧A2)∨(B1∧B2) = (A1∨B1)∧(A1∨B2)∧(A2∨B1)∧(A2∨B2), multiplied out
/// while small; beyond that the union of each side's cheapest clause.
fn or_clauses(parts: impl Iterator<Item = Clauses>, atoms: &AtomTable) -> Clauses {
    let mut acc: Option<Vec<Vec<AtomId>>> = None;
    for p in parts {
        let p = p?;
        acc = Some(match acc {
            None => p,
            Some(a) if a.len() * p.len() <= MAX_PRODUCT => {
                let mut out = Vec::with_capacity(a.len() * p.len());
                for x in &a {
                    for y in &p {
                        let mut c = x.clone();
                        c.extend_from_slice(y);
                        out.push(c);
                    }
                }
                prune(out, atoms)
            }
            Some(a) => {
                let cheapest = |v: &[Vec<AtomId>]| {
                    v.iter()
                        .min_by(|x, y| clause_cost(x, atoms).total_cmp(&clause_cost(y, atoms)))
                        .cloned()
                        .unwrap_or_default()
                };
                let mut c = cheapest(&a);
                c.extend(cheapest(&p));
                vec![c]
            }
        });
    }
    acc.map(|c| prune(c, atoms))
}

fn item_clauses(i: &Item, atoms: &AtomTable) -> Clauses {
    let per_value = i
        .values
        .iter()
        .map(|v| union(v.alts.iter().map(|m| matcher_trigger(m, i.field, atoms))).map(|u| vec![u]));
    if i.all {
        and_clauses(per_value, atoms)
    } else {
        or_clauses(per_value, atoms)
    }
}

fn search_clauses(s: &SearchExpr, atoms: &AtomTable) -> Clauses {
    match s {
        SearchExpr::And(v) => and_clauses(v.iter().map(|x| search_clauses(x, atoms)), atoms),
        SearchExpr::Or(v) => or_clauses(v.iter().map(|x| search_clauses(x, atoms)), atoms),
        SearchExpr::Item(i) => item_clauses(i, atoms),
    }
}

/// The rule's prefilter trigger (see [`CompiledRule::trigger`]).
fn expr_clauses(e: &Expr, searches: &[SearchExpr], atoms: &AtomTable) -> Clauses {
    match e {
        Expr::And(v) => and_clauses(v.iter().map(|x| expr_clauses(x, searches, atoms)), atoms),
        Expr::Or(v) => or_clauses(v.iter().map(|x| expr_clauses(x, searches, atoms)), atoms),
        Expr::Not(_) => None,
        Expr::Search(i) => search_clauses(&searches[*i as usize], atoms),
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Str(s) => {
                let c = if s.cased { " (cased)" } else { "" };
                match &s.pattern {
                    StrPattern::Exact(x) => write!(f, "equals '{x}'{c}"),
                    StrPattern::Prefix(x) => write!(f, "starts with '{x}'{c}"),
                    StrPattern::Suffix(x) => write!(f, "ends with '{x}'{c}"),
                    StrPattern::Contains(x) => write!(f, "contains '{}'{c}", x.needle),
                    StrPattern::Any => write!(f, "any string"),
                    StrPattern::Glob(t) => {
                        f.write_str("matches '")?;
                        for x in t {
                            match x {
                                GlobTok::Lit(s) => f.write_str(s)?,
                                GlobTok::Star => f.write_str("*")?,
                                GlobTok::One => f.write_str("?")?,
                                GlobTok::Dash => f.write_str("[-/–—―]")?,
                            }
                        }
                        write!(f, "'{c}")
                    }
                }
            }
            Matcher::Num(n) => write!(f, "== {n}"),
            Matcher::Bool(b) => write!(f, "is {b}"),
            Matcher::Null => f.write_str("is null or missing"),
            Matcher::Exists(b) => write!(f, "exists: {b}"),
            Matcher::Regex(r) => write!(f, "matches /{}/", r.source),
            Matcher::Cidr(c) => write!(f, "in {}/{}", c.addr, c.prefix),
            Matcher::Cmp(op, n) => write!(f, "{} {n}", op.symbol()),
            Matcher::Time(p, op, n) => write!(f, "{p:?} {} {n}", op.symbol()),
            Matcher::FieldRef { mode, cased, .. } => {
                write!(
                    f,
                    "{mode:?} another field{}",
                    if *cased { " (cased)" } else { "" }
                )
            }
            Matcher::Not(m) => write!(f, "not ({m})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64offset_matches_pysigma() {
        // pySigma's documented example values for "/bin/bash"
        let v = base64_offsets(b"/bin/bash");
        assert_eq!(v, vec!["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]);
    }

    #[test]
    fn windash_marks_word_starting_dashes() {
        let v = windash(SigmaStr::parse(" -enc -x-y /c a-b", false));
        let shown = v.to_string();
        assert_eq!(shown, " [-/–—―]enc [-/–—―]x-y [-/–—―]c a-b");
    }

    #[test]
    fn decimal_parsing_is_strict() {
        assert_eq!(parse_decimal("42"), Some(42.0));
        assert_eq!(parse_decimal("-1.5"), Some(-1.5));
        assert_eq!(parse_decimal("+7"), Some(7.0));
        assert_eq!(parse_decimal("1e3"), None);
        assert_eq!(parse_decimal(" 1"), None);
        assert_eq!(parse_decimal("0x10"), None);
        assert_eq!(parse_decimal("1."), None);
    }

    #[test]
    fn cidr() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        let c6 = Cidr::parse("fe80::/10").unwrap();
        assert!(c6.contains("fe80::1".parse().unwrap()));
        assert!(!c6.contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nonsense").is_none());
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn trimmed_regexes_match_where_the_originals_do() {
        let cases = [
            (r"-k\s\w{1,64}(?:\s?(?:-p|-s))?", Some(r"-k\s\w")),
            (
                r"\w+`(?:\w+|-|.)`[\w+|\s]",
                Some(r"\w`(?:\w+|-|.)`[\w+|\s]"),
            ),
            (r"(?i)a{2,5}b", Some(r"(?i)a{2}b")),
            (r"\Aab{1,3}", Some(r"\Aab")),
            (r"ab{1,3}$", None),
            (r"abc", None),
            (r"(ab{1,3})", None),
            (r"x?", None),
        ];
        let hays = [
            "svchost.exe -k netsvcs -p -s Schedule",
            "svchost.exe -k",
            "svchost.exe -k ",
            "svchost.exe -k é",
            "IN`V`o`Ke-eXp`ResSIOn",
            "aab",
            "AAB",
            "ab",
            "abbbbbb",
            "xabbb",
            "",
        ];
        for (src, want) in cases {
            let hir = regex_syntax::ParserBuilder::new()
                .build()
                .parse(src)
                .unwrap();
            let trimmed = trim_for_search(&hir);
            match (want, &trimmed) {
                (None, None) => continue,
                (Some(w), Some(t)) => {
                    let expect = regex_syntax::ParserBuilder::new().build().parse(w).unwrap();
                    assert_eq!(t, &expect, "{src}");
                }
                _ => panic!("{src}: got {trimmed:?}"),
            }
            let (orig, fast) = (
                Regex::new(src).unwrap(),
                Regex::new(&trimmed.unwrap().to_string()).unwrap(),
            );
            for h in hays {
                assert_eq!(orig.is_match(h), fast.is_match(h), "{src} on {h:?}");
            }
        }
    }

    #[test]
    fn regex_constructs() {
        assert!(unsupported_regex_construct("a(?=b)").is_some());
        assert!(unsupported_regex_construct("(?<!x)y").is_some());
        assert!(unsupported_regex_construct(r"(a)\1").is_some());
        assert!(unsupported_regex_construct("a*+").is_some());
        assert!(unsupported_regex_construct(r"[(?=]x\d+").is_none());
        assert!(unsupported_regex_construct(r"\\1").is_none());
        assert!(unsupported_regex_construct(r"(?i)a+b").is_none());
    }
}
