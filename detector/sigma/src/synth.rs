//! Synthetic events from a rule's own detection: a positive example for
//! each rule, used by the conformance and equivalence tests and by the
//! benchmarks to seed realistic lanes with true matches.
//!
//! Generation walks the compiled condition, picks one way to satisfy it and
//! builds field values that match the chosen matchers (regular expressions
//! through a small generator over their syntax tree). The result is then
//! checked with the reference evaluator; several random choices are tried,
//! and a rule whose conditions cannot be satisfied this way yields `None`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use qalqan_core::{Event, LogSource, Value};
use regex_syntax::hir::{Class, Hir, HirKind};

use crate::compile::{
    CmpOp, Expr, FieldId, Item, Matcher, SearchExpr, FIELD_INGESTED, FIELD_ORIGINAL,
    FIELD_TIMESTAMP,
};
use crate::engine::Engine;
use crate::pattern::{GlobTok, StrPattern};
use crate::route::RuleIdx;

/// A tiny deterministic generator (xorshift64*), so tests are reproducible
/// without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

#[derive(Debug, Default, Clone)]
struct FieldPlan {
    exact: Option<Value>,
    prefix: Vec<String>,
    middle: Vec<String>,
    suffix: Vec<String>,
    absent: bool,
}

#[derive(Debug, Default)]
struct Plan {
    fields: BTreeMap<FieldId, FieldPlan>,
}

impl Plan {
    fn field(&mut self, f: FieldId) -> &mut FieldPlan {
        self.fields.entry(f).or_default()
    }
}

/// A positive event for rule `idx`, or `None` when none was found in
/// `attempts` random tries. `ts` is the event time.
pub fn positive_event(
    engine: &Engine,
    idx: RuleIdx,
    seed: u64,
    attempts: usize,
    ts: DateTime<Utc>,
) -> Option<Event> {
    let rule = engine.rule(idx);
    let mut rng = Rng::new(seed ^ u64::from(idx).wrapping_mul(0x1000_0001));
    for _ in 0..attempts {
        let mut plan = Plan::default();
        expr(
            &rule.compiled.condition,
            &rule.compiled.searches,
            &mut plan,
            &mut rng,
        );
        let ev = build(engine, idx, &plan, ts);
        if std::env::var_os("QALQAN_SYNTH_DEBUG").is_some() {
            eprintln!("candidate: {ev:?}");
        }
        if engine.matches_rule(idx, &ev) {
            return Some(ev);
        }
    }
    None
}

/// The event a plan describes, with the rule's logsource.
fn build(engine: &Engine, idx: RuleIdx, plan: &Plan, ts: DateTime<Utc>) -> Event {
    let rule = engine.rule(idx);
    let mut ev = Event::new(String::new(), ts);
    ev.logsource = LogSource::new(
        rule.logsource.product.as_deref(),
        rule.logsource.service.as_deref(),
        rule.logsource.category.as_deref(),
    );
    let mut original = Vec::new();
    for (&f, p) in &plan.fields {
        if p.absent
            && p.exact.is_none()
            && p.prefix.is_empty()
            && p.middle.is_empty()
            && p.suffix.is_empty()
        {
            continue;
        }
        let value = match &p.exact {
            Some(v) => v.clone(),
            None => {
                let mut s = String::new();
                s.push_str(&p.prefix.concat());
                if !p.middle.is_empty() {
                    if !s.is_empty() {
                        s.push(' ');
                    }
                    s.push_str(&p.middle.join(" "));
                    if !p.suffix.is_empty() {
                        s.push(' ');
                    }
                }
                s.push_str(&p.suffix.concat());
                Value::Str(s)
            }
        };
        match f {
            FIELD_ORIGINAL => original.push(value.to_string()),
            FIELD_TIMESTAMP | FIELD_INGESTED => {}
            _ => ev.fields.insert(engine.field_name(f).to_owned(), value),
        }
    }
    ev.original = if original.is_empty() {
        format!("synthetic event for {}", rule.meta.title)
    } else {
        original.join(" ")
    };
    ev
}

fn expr(e: &Expr, searches: &[SearchExpr], plan: &mut Plan, rng: &mut Rng) {
    match e {
        Expr::And(v) => v.iter().for_each(|x| expr(x, searches, plan, rng)),
        Expr::Or(v) => {
            let i = rng.below(v.len());
            expr(&v[i], searches, plan, rng)
        }
        Expr::Not(x) => falsify_expr(x, searches, plan, rng),
        Expr::Search(i) => search(&searches[*i as usize], plan, rng),
    }
}

/// Makes a negated part false where that needs a value: `field: null` and
/// `exists` checks. Other negated matchers are left alone (a value they
/// would match is unlikely; verification catches collisions).
fn falsify_expr(e: &Expr, searches: &[SearchExpr], plan: &mut Plan, rng: &mut Rng) {
    match e {
        Expr::And(v) => {
            let i = rng.below(v.len());
            falsify_expr(&v[i], searches, plan, rng)
        }
        Expr::Or(v) => v.iter().for_each(|x| falsify_expr(x, searches, plan, rng)),
        Expr::Not(x) => expr(x, searches, plan, rng),
        Expr::Search(i) => falsify_search(&searches[*i as usize], plan, rng),
    }
}

fn falsify_search(s: &SearchExpr, plan: &mut Plan, rng: &mut Rng) {
    match s {
        SearchExpr::And(v) => {
            // prefer an item that needs a value to be false
            let pick = v
                .iter()
                .position(|x| matches!(x, SearchExpr::Item(i) if i.values.iter().all(|v| v.alts.iter().all(|m| matches!(m, Matcher::Null | Matcher::Exists(_))))))
                .unwrap_or_else(|| rng.below(v.len()));
            falsify_search(&v[pick], plan, rng)
        }
        SearchExpr::Or(v) => v.iter().for_each(|x| falsify_search(x, plan, rng)),
        SearchExpr::Item(i) => {
            for v in &i.values {
                for m in &v.alts {
                    let p = plan.field(i.field);
                    let empty = p.exact.is_none()
                        && p.prefix.is_empty()
                        && p.middle.is_empty()
                        && p.suffix.is_empty();
                    match m {
                        Matcher::Null | Matcher::Exists(false) if empty => {
                            p.middle.push("present".into())
                        }
                        Matcher::Exists(true) => p.absent = true,
                        _ => {}
                    }
                }
            }
        }
    }
}

fn search(s: &SearchExpr, plan: &mut Plan, rng: &mut Rng) {
    match s {
        SearchExpr::And(v) => v.iter().for_each(|x| search(x, plan, rng)),
        SearchExpr::Or(v) => {
            let i = rng.below(v.len());
            search(&v[i], plan, rng)
        }
        SearchExpr::Item(i) => item(i, plan, rng),
    }
}

fn item(i: &Item, plan: &mut Plan, rng: &mut Rng) {
    if i.values.is_empty() {
        return;
    }
    if i.all {
        for v in &i.values {
            let alt = &v.alts[rng.below(v.alts.len())];
            matcher(i.field, alt, plan, rng);
        }
    } else {
        let v = &i.values[rng.below(i.values.len())];
        let alt = &v.alts[rng.below(v.alts.len())];
        matcher(i.field, alt, plan, rng);
    }
}

fn glob_text(t: &[GlobTok]) -> String {
    t.iter()
        .map(|x| match x {
            GlobTok::Lit(s) => s.clone(),
            GlobTok::Star => String::new(),
            GlobTok::One => "x".into(),
            GlobTok::Dash => "-".into(),
        })
        .collect()
}

fn matcher(f: FieldId, m: &Matcher, plan: &mut Plan, rng: &mut Rng) {
    let p = plan.field(f);
    match m {
        Matcher::Str(s) => match &s.pattern {
            StrPattern::Exact(x) => p.exact = Some(Value::Str(x.clone())),
            StrPattern::Prefix(x) => p.prefix.push(x.clone()),
            StrPattern::Suffix(x) => p.suffix.push(x.clone()),
            StrPattern::Contains(c) => p.middle.push(c.needle.clone()),
            StrPattern::Any => p.middle.push("any".into()),
            StrPattern::Glob(t) => {
                let anchored_start = !matches!(t.first(), Some(GlobTok::Star));
                let anchored_end = !matches!(t.last(), Some(GlobTok::Star));
                let text = glob_text(t);
                match (anchored_start, anchored_end) {
                    (true, true) => p.exact = Some(Value::Str(text)),
                    (true, false) => p.prefix.push(text),
                    (false, true) => p.suffix.push(text),
                    (false, false) => p.middle.push(text),
                }
            }
        },
        Matcher::Num(n) => {
            p.exact = Some(if n.fract() == 0.0 && n.abs() < 1e15 {
                Value::Int(*n as i64)
            } else {
                Value::Float(*n)
            })
        }
        Matcher::Bool(b) => p.exact = Some(Value::Bool(*b)),
        Matcher::Null | Matcher::Exists(false) => p.absent = true,
        Matcher::Exists(true) => {
            if p.exact.is_none()
                && p.middle.is_empty()
                && p.prefix.is_empty()
                && p.suffix.is_empty()
            {
                p.middle.push("present".into());
            }
        }
        Matcher::Regex(r) => {
            let src = r.regex.as_str();
            if let Ok(hir) = regex_syntax::ParserBuilder::new().build().parse(src) {
                let mut out = String::new();
                gen_hir(&hir, &mut out, rng);
                // an unanchored search may sit among other pieces of the value
                if src.starts_with('^') || src.starts_with("\\A") || src.ends_with('$') {
                    p.exact = Some(Value::Str(out));
                } else {
                    p.middle.push(out);
                }
            }
        }
        Matcher::Cidr(c) => {
            let text = match c.addr {
                std::net::IpAddr::V4(a) => {
                    let host = if c.prefix < 32 { 1 } else { 0 };
                    std::net::Ipv4Addr::from(u32::from(a) | host).to_string()
                }
                std::net::IpAddr::V6(a) => {
                    let host = if c.prefix < 128 { 1 } else { 0 };
                    std::net::Ipv6Addr::from(u128::from(a) | host).to_string()
                }
            };
            p.exact = Some(Value::Str(text));
        }
        Matcher::Cmp(op, n) => {
            let v = match op {
                CmpOp::Lt => n - 1.0,
                CmpOp::Gt => n + 1.0,
                _ => *n,
            };
            p.exact = Some(Value::Int(v as i64));
        }
        Matcher::Time(..) | Matcher::FieldRef { .. } => {}
        Matcher::Not(_) => p.exact = Some(Value::Str(format!("other-{}", rng.below(1000)))),
    }
}

/// Appends a string the expression matches (first alternatives, minimum
/// repetitions, lowest class members).
fn gen_hir(h: &Hir, out: &mut String, rng: &mut Rng) {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(l) => out.push_str(&String::from_utf8_lossy(&l.0)),
        HirKind::Class(Class::Unicode(c)) => {
            let printable = c
                .ranges()
                .iter()
                .find_map(|r| (r.start()..=r.end()).find(|ch| ch.is_ascii_alphanumeric()));
            if let Some(ch) = printable.or_else(|| c.ranges().first().map(|r| r.start())) {
                out.push(ch);
            }
        }
        HirKind::Class(Class::Bytes(c)) => {
            if let Some(r) = c.ranges().first() {
                out.push(char::from(r.start()));
            }
        }
        HirKind::Repetition(r) => {
            let n = r.min.max(u32::from(r.min == 0 && rng.chance(50)));
            for _ in 0..n.min(1000) {
                gen_hir(&r.sub, out, rng);
            }
        }
        HirKind::Capture(c) => gen_hir(&c.sub, out, rng),
        HirKind::Concat(v) => v.iter().for_each(|x| gen_hir(x, out, rng)),
        HirKind::Alternation(v) => {
            let i = rng.below(v.len());
            gen_hir(&v[i], out, rng)
        }
    }
}
