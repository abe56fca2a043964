//! Evaluator: matcher trees against one event.
//!
//! Before any rule runs, the event is prepared once: its fields are looked up
//! in the engine's field table (through small caches: a remembered event
//! shape resolves all its fields at once, see [`resolve_fields`]), the values
//! that case-insensitive matchers read are lower-cased once into a shared
//! buffer, and — on the optimized path — the prefilter scan marks which atoms
//! occur. Matchers then read that state; nothing is lower-cased or looked up
//! twice.

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use qalqan_core::{Event, Value};
use smallvec::SmallVec;

use crate::compile::{
    parse_decimal, AnyContains, AtomId, CompiledRule, Expr, FieldId, Item, Matcher, RefMode,
    RegexMatcher, SearchExpr, StrMatcher, FIELD_INGESTED, FIELD_ORIGINAL, FIELD_TIMESTAMP,
};
use crate::memo::{ItemMemo, ValueId};
use crate::modifier::TimePart;
use crate::value::lowercase_into;

/// One field of an event as it holds them (name, value): the evaluator
/// reads a field's value through its index in `event.fields.entries()`.
pub type Entry = (qalqan_core::event::FieldName, Value);

/// A field's value as the evaluator sees it.
#[derive(Debug, Clone, Copy)]
pub enum FieldVal<'a> {
    Value(&'a Value),
    Str(&'a str),
    Time(DateTime<Utc>),
}

/// A field prepared for matching (see [`Ctx::view`]).
#[derive(Debug, Default)]
pub struct FieldView<'a> {
    pub present: bool,
    /// The value is JSON null.
    pub null: bool,
    /// Elements with their lower-cased text when it was prepared for this
    /// event (None otherwise, and for null elements).
    pub elems: SmallVec<[(Elem<'a>, Option<&'a str>); 2]>,
}

/// One element of a (possibly list) value.
#[derive(Debug, Clone, Copy)]
pub enum Elem<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Time(DateTime<Utc>),
}

impl FieldVal<'_> {
    fn is_null(&self) -> bool {
        matches!(self, FieldVal::Value(Value::Null))
    }
}

fn push_elems<'a>(v: &'a Value, out: &mut SmallVec<[Elem<'a>; 4]>) {
    match v {
        Value::Null => out.push(Elem::Null),
        Value::Bool(b) => out.push(Elem::Bool(*b)),
        Value::Int(i) => out.push(Elem::Int(*i)),
        Value::Float(f) => out.push(Elem::Float(*f)),
        Value::Str(s) => out.push(Elem::Str(s)),
        Value::List(l) => l.iter().for_each(|x| push_elems(x, out)),
    }
}

/// The one element of a value that is not a list (None for a list).
#[inline]
fn scalar_elem(v: FieldVal<'_>) -> Option<Elem<'_>> {
    Some(match v {
        FieldVal::Value(Value::Null) => Elem::Null,
        FieldVal::Value(Value::Bool(b)) => Elem::Bool(*b),
        FieldVal::Value(Value::Int(i)) => Elem::Int(*i),
        FieldVal::Value(Value::Float(f)) => Elem::Float(*f),
        FieldVal::Value(Value::Str(s)) => Elem::Str(s),
        FieldVal::Value(Value::List(_)) => return None,
        FieldVal::Str(s) => Elem::Str(s),
        FieldVal::Time(t) => Elem::Time(t),
    })
}

fn elems(v: FieldVal<'_>) -> SmallVec<[Elem<'_>; 4]> {
    let mut out = SmallVec::new();
    match v {
        FieldVal::Value(v) => push_elems(v, &mut out),
        FieldVal::Str(s) => out.push(Elem::Str(s)),
        FieldVal::Time(t) => out.push(Elem::Time(t)),
    }
    out
}

/// Text of a non-null element (numbers as decimal, booleans as true/false,
/// times as RFC 3339 with microseconds).
pub fn render_elem(e: Elem<'_>, out: &mut String) -> bool {
    use std::fmt::Write;
    match e {
        Elem::Str(s) => out.push_str(s),
        Elem::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Elem::Float(f) => {
            let _ = write!(out, "{f}");
        }
        Elem::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Elem::Time(t) => out.push_str(&qalqan_core::event::format_ts(&t)),
        Elem::Null => return false,
    }
    true
}

const NO_TEXT: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    gen: u32,
    val: u32,
    lower_gen: u32,
    span_start: u32,
    span_len: u32,
    /// The value's name in the scan memo this event (0: none).
    memo: ValueId,
}

/// Per-event working memory, reused across events (one per thread).
#[derive(Debug, Default)]
pub struct EventState {
    gen: u32,
    slots: Vec<Slot>,
    spans: Vec<(u32, u32)>,
    lower: String,
    hits: Vec<u64>,
    touched: Vec<AtomId>,
    scratch_text: String,
    /// Recently seen event field names with their field ids (see
    /// [`resolve_fields`]), direct-mapped by [`name_slot`].
    names: Vec<(Box<str>, u32)>,
    /// Field ids of `'static` names by address (pointer, length, id; see
    /// [`static_field`]), in front of `names`.
    static_names: Vec<(usize, usize, u32)>,
    /// Fields the event carries, in event order (each once).
    present: Vec<FieldId>,
    /// Recent event shapes (see [`Shape`]), direct-mapped by
    /// [`shape_slot`].
    shapes: Vec<Shape>,
}

/// The field names of one kind of event, all `'static`, in order (address
/// and length each, as [`static_field`] keys them), with the field id of
/// each name the field table knows. A parser writes the same names in the
/// same order for every line of one kind (a web access line, an sshd
/// failure), so an event whose names match a remembered shape address by
/// address resolves without a name lookup per field, and visits only the
/// fields some rule names: on the web lane 7 of its 16 fields.
#[derive(Debug, Default, Clone)]
struct Shape {
    names: Vec<(usize, usize)>,
    /// (index into the event's fields, field id) of the known fields.
    known: Vec<(u32, FieldId)>,
}

/// Slots of [`EventState::shapes`].
const SHAPE_SLOTS: usize = 16;

/// The address and length of a `'static` name (None for an owned one,
/// whose address says nothing about its text).
#[inline]
fn static_key(name: &qalqan_core::event::FieldName) -> Option<(usize, usize)> {
    match name {
        std::borrow::Cow::Borrowed(s) => Some((s.as_ptr() as usize, s.len())),
        std::borrow::Cow::Owned(_) => None,
    }
}

/// Slot of an event's shape in [`EventState::shapes`]: its number of
/// fields and the addresses of its first and last names.
#[inline]
fn shape_slot(entries: &[(qalqan_core::event::FieldName, Value)]) -> usize {
    let at = |i: usize| {
        entries
            .get(i)
            .and_then(|e| static_key(&e.0))
            .map_or(0, |k| k.0)
    };
    let h = (entries.len() as u64)
        ^ (at(0) as u64).rotate_left(17)
        ^ (at(entries.len().wrapping_sub(1)) as u64).rotate_left(41);
    (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 59) as usize % SHAPE_SLOTS
}

impl Shape {
    /// Whether `entries` carries exactly this shape's names, in order.
    #[inline]
    fn matches(&self, entries: &[(qalqan_core::event::FieldName, Value)]) -> bool {
        self.names.len() == entries.len()
            && self
                .names
                .iter()
                .zip(entries)
                .all(|(&n, e)| static_key(&e.0) == Some(n))
    }
}

/// Slots of [`EventState::names`].
const NAME_SLOTS: usize = 256;
/// Field id of a name the field table does not know.
const NO_FIELD: u32 = u32::MAX;

/// Slot of `name` in [`EventState::names`]: a hash of its length and three
/// of its bytes, far cheaper than hashing the whole name, and enough to
/// tell apart the few dozen names one kind of event carries.
#[inline]
fn name_slot(name: &str) -> usize {
    let b = name.as_bytes();
    let (first, mid, last) = match (b.first(), b.get(b.len() / 2), b.last()) {
        (Some(&f), Some(&m), Some(&l)) => (f, m, l),
        _ => return 0,
    };
    let h = (b.len() as u32).wrapping_mul(0x9E37_79B9)
        ^ u32::from(first)
        ^ (u32::from(mid) << 8)
        ^ (u32::from(last) << 16);
    (h.wrapping_mul(0x85EB_CA6B) >> 24) as usize % NAME_SLOTS
}

impl EventState {
    pub fn new(fields: usize, atoms: usize) -> Self {
        let mut s = EventState::default();
        s.ensure(fields, atoms);
        s
    }

    #[inline]
    pub fn ensure(&mut self, fields: usize, atoms: usize) {
        if self.slots.len() < fields {
            self.slots.resize(fields, Slot::default());
        }
        let words = atoms.div_ceil(64);
        if self.hits.len() < words {
            self.hits.resize(words, 0);
        }
    }

    /// Starts a new event: invalidates every slot in O(1) (generations).
    #[inline]
    pub fn begin(&mut self) {
        for a in self.touched.drain(..) {
            self.hits[(a / 64) as usize] &= !(1u64 << (a % 64));
        }
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.slots.iter_mut().for_each(|s| *s = Slot::default());
            self.gen = 1;
        }
        self.spans.clear();
        self.lower.clear();
        self.present.clear();
    }

    /// The fields the event carries (after [`resolve_fields`]), each once.
    pub fn present(&self) -> &[FieldId] {
        &self.present
    }

    /// Records that `field` holds entry `val` of the event's fields; the
    /// first occurrence wins, as with [`Event::get`].
    pub fn set_field(&mut self, field: FieldId, val: u32) {
        let s = &mut self.slots[field as usize];
        if s.gen != self.gen {
            self.present.push(field);
            *s = Slot {
                gen: self.gen,
                val,
                lower_gen: 0,
                span_start: 0,
                span_len: 0,
                memo: 0,
            };
        }
    }

    /// Records the scan memo's name for the value of `field` (see
    /// [`crate::memo::ItemMemo`]).
    #[inline]
    pub fn set_value_id(&mut self, field: FieldId, id: ValueId) {
        if let Some(s) = self.slots.get_mut(field as usize) {
            if s.gen == self.gen {
                s.memo = id;
            }
        }
    }

    /// The scan memo's name for the value of `field` this event (0: none).
    #[inline]
    pub fn value_id(&self, field: FieldId) -> ValueId {
        match self.slots.get(field as usize) {
            Some(s) if s.gen == self.gen => s.memo,
            _ => 0,
        }
    }

    /// Marks an atom as present; returns true the first time.
    #[inline]
    pub fn hit(&mut self, a: AtomId) -> bool {
        let w = &mut self.hits[(a / 64) as usize];
        let bit = 1u64 << (a % 64);
        if *w & bit != 0 {
            return false;
        }
        *w |= bit;
        self.touched.push(a);
        true
    }

    /// Calls `f` with each lower-cased element text of `field` (if it was
    /// lower-cased this event) and a function that marks an atom as present
    /// (true the first time).
    pub fn scan_field(
        &mut self,
        field: FieldId,
        mut f: impl FnMut(&str, &mut dyn FnMut(AtomId) -> bool),
    ) {
        let Some(slot) = self.slots.get(field as usize) else {
            return;
        };
        if slot.lower_gen != self.gen {
            return;
        }
        let spans =
            &self.spans[slot.span_start as usize..(slot.span_start + slot.span_len) as usize];
        let hits = &mut self.hits;
        let touched = &mut self.touched;
        let mut hit = |a: AtomId| {
            let w = &mut hits[(a / 64) as usize];
            let bit = 1u64 << (a % 64);
            if *w & bit != 0 {
                return false;
            }
            *w |= bit;
            touched.push(a);
            true
        };
        for &(a, b) in spans {
            if a != NO_TEXT {
                f(&self.lower[a as usize..b as usize], &mut hit);
            }
        }
    }

    #[inline]
    pub fn is_hit(&self, a: AtomId) -> bool {
        self.hits[(a / 64) as usize] & (1u64 << (a % 64)) != 0
    }
}

/// An event with its prepared state.
pub struct Ctx<'a> {
    pub event: &'a Event,
    pub vals: &'a [Entry],
    pub st: &'a EventState,
    /// Atoms the route scanned for (optimized path): a matcher whose atom
    /// was scanned for and not found cannot match. `None` on the reference
    /// path, which checks every matcher in full.
    pub scanned: Option<&'a [u64]>,
    /// Item results of earlier events (optimized path only).
    pub items: Option<&'a ItemMemo>,
}

#[inline]
fn bit(set: &[u64], a: AtomId) -> bool {
    set.get((a / 64) as usize)
        .is_some_and(|w| w & (1u64 << (a % 64)) != 0)
}

/// `a == b` for short names without a call to `memcmp`: two overlapping
/// 8-byte words cover names of 8 to 16 bytes, four cover 16 to 32 (ECS
/// names such as `http.response.status_code` are longer than 16).
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    let word = |s: &[u8], at: usize| -> Option<u64> {
        s.get(at..at + 8)
            .and_then(|w| w.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if (8..=16).contains(&n) {
        return word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8);
    }
    if (17..=32).contains(&n) {
        return word(a, 0) == word(b, 0)
            && word(a, 8) == word(b, 8)
            && word(a, n - 16) == word(b, n - 16)
            && word(a, n - 8) == word(b, n - 8);
    }
    a == b
}

/// The field id of `name` through the name cache: two ways per set, so two
/// names of a source that share a set (`process.name` and `event.action`
/// on syslog, `Description` and `DestinationHostname` on Sysmon) no longer
/// evict each other on every event, at a key allocation and a field-table
/// lookup each time. A new name goes into the first way, pushing the
/// previous one into the second.
#[inline]
fn cached_field(
    names: &mut [(Box<str>, u32)],
    table: &crate::compile::FieldTable,
    name: &str,
) -> u32 {
    let set = name_slot(name) & !1;
    let Some(ways) = names.get_mut(set..set + 2) else {
        return table.get(name).unwrap_or(NO_FIELD);
    };
    if name.is_empty() {
        return table.get(name).unwrap_or(NO_FIELD);
    }
    for (n, fid) in ways.iter() {
        if same_name(n, name) {
            return *fid;
        }
    }
    let fid = table.get(name).unwrap_or(NO_FIELD);
    ways.swap(0, 1);
    ways[0] = (Box::from(name), fid);
    fid
}

/// The field id of a `'static` name by its address: parsers and the wire
/// decoder name fields with `'static` strings, so the same name arrives at
/// the same address event after event, and an address and a length that
/// match are the same name (a `'static` string is never freed or changed).
/// Cheaper than hashing and comparing the bytes; a miss falls back to
/// [`cached_field`].
#[inline]
fn static_field(
    by_address: &mut [(usize, usize, u32)],
    names: &mut [(Box<str>, u32)],
    table: &crate::compile::FieldTable,
    name: &'static str,
) -> u32 {
    let at = name.as_ptr() as usize;
    let slot = ((at >> 3) ^ (at >> 11)) % STATIC_NAME_SLOTS;
    let Some(entry) = by_address.get_mut(slot) else {
        return cached_field(names, table, name);
    };
    if entry.0 == at && entry.1 == name.len() {
        return entry.2;
    }
    let fid = cached_field(names, table, name);
    *entry = (at, name.len(), fid);
    fid
}

/// Slots of [`EventState::static_names`].
const STATIC_NAME_SLOTS: usize = 256;

/// Fills the field slots for `event`: each field the table knows points
/// at its entry in `event.fields.entries()` (the `vals` of [`Ctx`]).
pub fn resolve_fields(event: &Event, table: &crate::compile::FieldTable, st: &mut EventState) {
    if st.names.len() < NAME_SLOTS {
        st.names = vec![(Box::from(""), NO_FIELD); NAME_SLOTS];
    }
    if st.static_names.len() < STATIC_NAME_SLOTS {
        // Address 0 is never a string's: the slots start out empty.
        st.static_names = vec![(0, 0, NO_FIELD); STATIC_NAME_SLOTS];
    }
    if st.shapes.len() < SHAPE_SLOTS {
        st.shapes = vec![Shape::default(); SHAPE_SLOTS];
    }
    let entries = event.fields.entries();
    let slot = shape_slot(entries);
    let mut shapes = std::mem::take(&mut st.shapes);
    if let Some(shape) = shapes.get_mut(slot) {
        if shape.matches(entries) {
            for &(i, fid) in &shape.known {
                st.set_field(fid, i);
            }
        } else {
            // remember this shape if all its names are `'static`
            shape.names.clear();
            shape.known.clear();
            let mut all_static = true;
            for (i, (name, _)) in entries.iter().enumerate() {
                // The field table holds thousands of names; the few dozen an
                // event source uses are remembered in small tables that stay
                // in cache. (The slots start out empty, so an empty name is
                // never a hit.)
                let fid = match name {
                    std::borrow::Cow::Borrowed(s) => {
                        shape.names.push((s.as_ptr() as usize, s.len()));
                        static_field(&mut st.static_names, &mut st.names, table, s)
                    }
                    std::borrow::Cow::Owned(s) => {
                        all_static = false;
                        cached_field(&mut st.names, table, s)
                    }
                };
                if fid != NO_FIELD && fid > FIELD_INGESTED {
                    shape.known.push((i as u32, fid));
                    st.set_field(fid, i as u32);
                }
            }
            if !all_static {
                // never matches: an owned name has no address to compare
                shape.names.clear();
                shape.names.push((0, 0));
                shape.known.clear();
            }
        }
    }
    st.shapes = shapes;
}

pub(crate) fn field_val<'a>(
    event: &'a Event,
    vals: &'a [Entry],
    st: &EventState,
    f: FieldId,
) -> Option<FieldVal<'a>> {
    match f {
        FIELD_ORIGINAL => Some(FieldVal::Str(&event.original)),
        FIELD_TIMESTAMP => Some(FieldVal::Time(event.timestamp)),
        FIELD_INGESTED => Some(FieldVal::Time(event.ingested)),
        _ => {
            let s = st.slots.get(f as usize)?;
            (s.gen == st.gen).then(|| FieldVal::Value(&vals[s.val as usize].1))
        }
    }
}

/// The value of event field `f` when it is a single string (what
/// [`crate::memo::ScanMemo`] memoizes).
#[inline]
pub fn single_str<'a>(vals: &'a [Entry], st: &EventState, f: FieldId) -> Option<&'a str> {
    let s = st.slots.get(f as usize)?;
    if f <= FIELD_INGESTED || s.gen != st.gen {
        return None;
    }
    match vals.get(s.val as usize) {
        Some((_, Value::Str(v))) => Some(v),
        _ => None,
    }
}

/// Calls `each` with the number-atom key of every element of `v` that
/// [`Matcher::Num`] would compare as a number (see
/// [`crate::compile::num_key`]), in element order. Takes the value already
/// looked up, so that `each` may mark atoms in the event state; inlined
/// into the prefilter's number scan, with no list of keys in between.
#[inline]
pub fn number_keys(v: FieldVal<'_>, mut each: impl FnMut(u64)) {
    // a single value (`http.response.status_code`, `EventID`): no element
    // list to build
    if let Some(e) = scalar_elem(v) {
        if let Some(k) = elem_number(e).and_then(crate::compile::num_key) {
            each(k);
        }
        return;
    }
    for e in elems(v) {
        if let Some(k) = elem_number(e).and_then(crate::compile::num_key) {
            each(k);
        }
    }
}

/// Lower-cases the elements of `f` into the shared buffer (once per event).
pub fn lower_field(event: &Event, vals: &[Entry], st: &mut EventState, f: FieldId) {
    let Some(v) = field_val(event, vals, st, f) else {
        return;
    };
    if st.slots[f as usize].lower_gen == st.gen {
        return;
    }
    let span_start = st.spans.len() as u32;
    if let FieldVal::Value(Value::Str(s)) = v {
        // the common case: one string, no element list to build
        let start = st.lower.len() as u32;
        lowercase_into(s, &mut st.lower);
        st.spans.push((start, st.lower.len() as u32));
    } else {
        lower_elems(v, st);
    }
    let gen = st.gen;
    let slot = &mut st.slots[f as usize];
    slot.lower_gen = gen;
    slot.span_start = span_start;
    slot.span_len = st.spans.len() as u32 - span_start;
}

/// [`lower_field`] for values other than a single string.
fn lower_elems(v: FieldVal<'_>, st: &mut EventState) {
    let mut tmp = std::mem::take(&mut st.scratch_text);
    for e in elems(v) {
        if let Elem::Str(s) = e {
            // strings go straight into the buffer, without a copy in between
            let start = st.lower.len() as u32;
            lowercase_into(s, &mut st.lower);
            st.spans.push((start, st.lower.len() as u32));
            continue;
        }
        tmp.clear();
        if render_elem(e, &mut tmp) {
            let start = st.lower.len() as u32;
            lowercase_into(&tmp, &mut st.lower);
            st.spans.push((start, st.lower.len() as u32));
        } else {
            st.spans.push((NO_TEXT, 0));
        }
    }
    st.scratch_text = tmp;
}

impl<'a> Ctx<'a> {
    pub fn get(&self, f: FieldId) -> Option<FieldVal<'a>> {
        field_val(self.event, self.vals, self.st, f)
    }

    /// Lower-cased texts of the field's elements, in element order (None for
    /// null elements), if they were prepared.
    fn lower_texts(&self, f: FieldId) -> Option<impl Iterator<Item = Option<&'a str>> + 'a> {
        let s = self.st.slots.get(f as usize)?;
        if s.lower_gen != self.st.gen {
            return None;
        }
        let lower: &'a str = &self.st.lower;
        let spans = &self.st.spans[s.span_start as usize..(s.span_start + s.span_len) as usize];
        Some(
            spans
                .iter()
                .map(move |&(a, b)| (a != NO_TEXT).then(|| &lower[a as usize..b as usize])),
        )
    }

    /// The field prepared for matching: its elements with lower-cased text.
    pub fn view(&self, f: FieldId) -> FieldView<'a> {
        let Some(v) = self.get(f) else {
            return FieldView::default();
        };
        let null = matches!(v, FieldVal::Value(Value::Null));
        let es = elems(v);
        let mut out = SmallVec::with_capacity(es.len());
        match self.lower_texts(f) {
            Some(texts) => {
                for (e, t) in es.into_iter().zip(texts) {
                    out.push((e, t));
                }
            }
            // not prepared: matchers that need the text compute it themselves
            None => out.extend(es.into_iter().map(|e| (e, None))),
        }
        FieldView {
            present: true,
            null,
            elems: out,
        }
    }

    pub fn eval_rule(&self, r: &CompiledRule) -> bool {
        self.eval_expr(&r.condition, r)
    }

    pub fn eval_expr(&self, e: &Expr, r: &CompiledRule) -> bool {
        match e {
            Expr::And(v) => v.iter().all(|x| self.eval_expr(x, r)),
            Expr::Or(v) => v.iter().any(|x| self.eval_expr(x, r)),
            Expr::Not(x) => !self.eval_expr(x, r),
            Expr::Search(i) => self.eval_search(&r.searches[*i as usize]),
        }
    }

    pub fn eval_search(&self, s: &SearchExpr) -> bool {
        match s {
            SearchExpr::And(v) => v.iter().all(|x| self.eval_search(x)),
            SearchExpr::Or(v) => v.iter().any(|x| self.eval_search(x)),
            SearchExpr::Item(i) => self.eval_item(i),
        }
    }

    /// An item: values OR-ed (AND-ed under `all`), each value's
    /// alternatives OR-ed. The field is prepared once, and only when a
    /// matcher cannot be decided from the prefilter atoms alone.
    pub fn eval_item(&self, i: &Item) -> bool {
        if let (true, Some(memo)) = (i.memo, self.items) {
            let value = self.st.value_id(i.field);
            if value != 0 {
                let key = i as *const Item as usize;
                if let Some(r) = memo.get(key, value) {
                    return r;
                }
                let r = self.eval_item_now(i);
                memo.set(key, value, r);
                return r;
            }
        }
        self.eval_item_now(i)
    }

    /// [`Ctx::eval_item`] without the memo.
    fn eval_item_now(&self, i: &Item) -> bool {
        if let (Some(cell), Some(_)) = (&i.any_contains, self.scanned) {
            let Some(any) = cell.get_or_init(|| AnyContains::build(i.all, &i.values)) else {
                return self.eval_values(i);
            };
            let v = self.view(i.field);
            let mut buf = String::new();
            return v.elems.iter().any(|(e, low)| match low {
                Some(t) => any.is_match(t),
                None => {
                    text_of(*e, &mut buf).is_some_and(|t| any.is_match(&crate::value::lowercase(t)))
                }
            });
        }
        self.eval_values(i)
    }

    /// [`Ctx::eval_item`] value by value.
    fn eval_values(&self, i: &Item) -> bool {
        let mut view: Option<FieldView<'a>> = None;
        for v in &i.values {
            let mut hit = false;
            for m in &v.alts {
                if self.matcher_with(i.field, m, &mut view) {
                    hit = true;
                    break;
                }
            }
            if i.all != hit {
                // all: one value failed; any: one value matched
                return hit;
            }
        }
        i.all
    }

    /// One matcher against the field (see [`Ctx::eval_item`]).
    pub fn eval_matcher(&self, field: FieldId, m: &Matcher) -> bool {
        self.matcher_with(field, m, &mut None)
    }

    fn matcher_with(&self, field: FieldId, m: &Matcher, view: &mut Option<FieldView<'a>>) -> bool {
        // Decide from the prefilter when possible.
        if let Some(scanned) = self.scanned {
            match m {
                Matcher::Str(s) => {
                    if let Some(a) = s.atom {
                        if bit(scanned, a) {
                            if !self.st.is_hit(a) {
                                return false;
                            }
                            if s.atom_decides {
                                return true;
                            }
                        }
                    }
                }
                Matcher::Regex(r)
                    if !r.atoms.is_empty()
                        && r.atoms.iter().all(|&a| bit(scanned, a))
                        && !r.atoms.iter().any(|&a| self.st.is_hit(a)) =>
                {
                    return false;
                }
                _ => {}
            }
        }
        if let Matcher::FieldRef { other, mode, cased } = m {
            return self.field_ref(field, *other, *mode, *cased);
        }
        if view.is_none() && is_elem_matcher(m) {
            // element-level matcher on a field that is absent or holds one
            // value: no view to build
            match self.get(field) {
                None => return false,
                Some(FieldVal::Value(Value::List(_))) => {}
                Some(v) => return self.scalar_match(field, v, m),
            }
        }
        let v = view.get_or_insert_with(|| self.view(field));
        match m {
            Matcher::Null => !v.present || v.null,
            Matcher::Exists(b) => v.present == *b,
            Matcher::Not(inner) => {
                if !v.present || v.null {
                    return false;
                }
                if let Matcher::FieldRef { other, .. } = **inner {
                    return self.get(other).is_some_and(|o| !o.is_null())
                        && !self.eval_matcher(field, inner);
                }
                v.elems
                    .iter()
                    .any(|(e, low)| !matches!(e, Elem::Null) && !elem_match(inner, *e, *low))
            }
            Matcher::Regex(RegexMatcher {
                search: Some(fast), ..
            }) if self.scanned.is_some() => {
                let mut buf = String::new();
                v.elems
                    .iter()
                    .any(|(e, _)| text_of(*e, &mut buf).is_some_and(|t| fast.is_match(t)))
            }
            other => v.elems.iter().any(|(e, low)| elem_match(other, *e, *low)),
        }
    }

    /// An element-level matcher (see [`is_elem_matcher`]) against a field
    /// whose value `v` is not a list: exactly what the view path computes
    /// for its single element.
    fn scalar_match(&self, field: FieldId, v: FieldVal<'a>, m: &Matcher) -> bool {
        // lists take the view path
        let Some(e) = scalar_elem(v) else {
            return false;
        };
        if let Matcher::Regex(RegexMatcher {
            search: Some(fast), ..
        }) = m
        {
            if self.scanned.is_some() {
                let mut buf = String::new();
                return text_of(e, &mut buf).is_some_and(|t| fast.is_match(t));
            }
        }
        let low = self
            .lower_texts(field)
            .and_then(|mut texts| texts.next())
            .flatten();
        elem_match(m, e, low)
    }

    fn field_ref(&self, field: FieldId, other: FieldId, mode: RefMode, cased: bool) -> bool {
        let (a, b) = (self.view(field), self.view(other));
        if !a.present || !b.present {
            return false;
        }
        // Borrow the prepared lower-cased text (or the string itself when
        // cased) instead of rendering and allocating per element: fieldref
        // rules such as "Image equals ParentImage" run on every process
        // creation.
        let text = |e: &Elem<'a>, low: &Option<&'a str>| -> Option<Cow<'a, str>> {
            match (cased, e, low) {
                (false, _, Some(l)) => return Some(Cow::Borrowed(*l)),
                (true, Elem::Str(s), _) => return Some(Cow::Borrowed(*s)),
                _ => {}
            }
            let mut raw = String::new();
            if !render_elem(*e, &mut raw) {
                return None;
            }
            if cased {
                Some(Cow::Owned(raw))
            } else {
                Some(Cow::Owned(crate::value::lowercase(&raw)))
            }
        };
        let bs: SmallVec<[Cow<'a, str>; 2]> =
            b.elems.iter().filter_map(|(e, l)| text(e, l)).collect();
        a.elems.iter().filter_map(|(e, l)| text(e, l)).any(|t| {
            bs.iter().any(|b| match mode {
                RefMode::Exact => t == *b,
                RefMode::Prefix => t.starts_with(b.as_ref()),
                RefMode::Suffix => t.ends_with(b.as_ref()),
                RefMode::Contains => t.contains(b.as_ref()),
            })
        })
    }
}

/// Matchers decided element by element ([`elem_match`]), which on a field
/// holding a single value need no [`FieldView`].
fn is_elem_matcher(m: &Matcher) -> bool {
    matches!(
        m,
        Matcher::Str(_)
            | Matcher::Num(_)
            | Matcher::Bool(_)
            | Matcher::Regex(_)
            | Matcher::Cidr(_)
            | Matcher::Cmp(..)
            | Matcher::Time(..)
    )
}

fn text_of<'a>(e: Elem<'a>, buf: &'a mut String) -> Option<&'a str> {
    match e {
        Elem::Str(s) => Some(s),
        Elem::Null => None,
        other => {
            buf.clear();
            render_elem(other, buf);
            Some(buf.as_str())
        }
    }
}

fn str_elem(s: &StrMatcher, e: Elem<'_>, low: Option<&str>) -> bool {
    let mut buf = String::new();
    if s.cased {
        return text_of(e, &mut buf).is_some_and(|t| s.pattern.is_match(t));
    }
    match low {
        Some(t) => s.pattern.is_match(t),
        // text not prepared (explanations): lower-case it here
        None => {
            text_of(e, &mut buf).is_some_and(|t| s.pattern.is_match(&crate::value::lowercase(t)))
        }
    }
}

fn elem_number(e: Elem<'_>) -> Option<f64> {
    match e {
        Elem::Int(i) => Some(i as f64),
        Elem::Float(f) => Some(f),
        Elem::Str(s) => parse_decimal(s),
        _ => None,
    }
}

/// Element-level match for matchers that look at one element at a time.
pub fn elem_match(m: &Matcher, e: Elem<'_>, low: Option<&str>) -> bool {
    match m {
        Matcher::Str(s) => str_elem(s, e, low),
        Matcher::Num(n) => elem_number(e).is_some_and(|x| x == *n),
        Matcher::Bool(b) => match e {
            Elem::Bool(x) => x == *b,
            Elem::Str(s) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
            _ => false,
        },
        Matcher::Regex(r) => {
            let mut buf = String::new();
            text_of(e, &mut buf).is_some_and(|t| r.regex.is_match(t))
        }
        Matcher::Cidr(c) => match e {
            Elem::Str(s) => s.parse::<IpAddr>().is_ok_and(|ip| c.contains(ip)),
            _ => false,
        },
        Matcher::Cmp(op, n) => elem_number(e).is_some_and(|x| op.holds(x, *n)),
        Matcher::Time(part, op, n) => {
            elem_time(e).is_some_and(|t| op.holds(time_part(&t, *part), *n))
        }
        Matcher::Not(inner) => !matches!(e, Elem::Null) && !elem_match(inner, e, low),
        // field-level matchers never reach here
        Matcher::Null | Matcher::Exists(_) | Matcher::FieldRef { .. } => false,
    }
}

/// Date and time as written in the value (no time-zone conversion, as the
/// modifiers appendix says): RFC 3339, `YYYY-MM-DD[ T]HH:MM:SS[.frac]`, or a
/// bare date.
pub fn elem_time(e: Elem<'_>) -> Option<NaiveDateTime> {
    match e {
        Elem::Time(t) => Some(t.naive_utc()),
        Elem::Str(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.naive_local());
            }
            for fmt in [
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%dT%H:%M:%S",
            ] {
                if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
                    return Some(t);
                }
            }
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        }
        _ => None,
    }
}

/// The part a time modifier extracts; `week` is the ISO 8601 week (1–53).
pub fn time_part(t: &NaiveDateTime, p: TimePart) -> f64 {
    f64::from(match p {
        TimePart::Minute => t.minute(),
        TimePart::Hour => t.hour(),
        TimePart::Day => t.day(),
        TimePart::Week => t.iso_week().week(),
        TimePart::Month => t.month(),
        TimePart::Year => return f64::from(t.year()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_is_string_equality() {
        let names = [
            "",
            "a",
            "Image",
            "EventID",
            "Hashes12",
            "CommandLine",
            "CommandLinf",
            "ParentCommandLine",
            "url.original",
            "user_agent.original",
            "user_agent.originaL",
            "http.response.status_code",
            "http.response.status_codf",
            "http.responsE.status_code",
            "0123456789abcdef",
            "0123456789abcdeF",
            "0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdeF",
            "0123456789abcdef0123456789abcdef!",
        ];
        for a in names {
            for b in names {
                assert_eq!(same_name(a, b), a == b, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn static_names_resolve_by_address_to_the_same_ids_as_by_content() {
        let mut table = crate::compile::FieldTable::new();
        let (a, b) = (table.intern("process.name"), table.intern("url.original"));
        let mut by_address = vec![(0, 0, NO_FIELD); STATIC_NAME_SLOTS];
        let mut names = vec![(Box::from(""), NO_FIELD); NAME_SLOTS];
        // The same text at another address (leaked, so `'static` too).
        let other: &'static str = Box::leak(String::from("process.name").into_boxed_str());
        for _ in 0..2 {
            for (name, want) in [
                ("process.name", a),
                (other, a),
                ("url.original", b),
                ("user.name", NO_FIELD),
                ("", NO_FIELD),
            ] {
                let got = static_field(&mut by_address, &mut names, &table, name);
                assert_eq!(got, want, "{name:?}");
            }
        }
        // A prefix of a cached name at the same address is another name.
        let prefix: &'static str = &"process.name"[..7];
        assert_eq!(
            static_field(&mut by_address, &mut names, &table, prefix),
            NO_FIELD
        );
        // An engine with other ids starts from an empty table (a new
        // scratch), never from these entries.
        let empty = crate::compile::FieldTable::new();
        let mut fresh = vec![(0, 0, NO_FIELD); STATIC_NAME_SLOTS];
        let mut fresh_names = vec![(Box::from(""), NO_FIELD); NAME_SLOTS];
        assert_eq!(
            static_field(&mut fresh, &mut fresh_names, &empty, "process.name"),
            NO_FIELD
        );
    }

    /// Fields resolved through a remembered shape point at the same values
    /// as a fresh lookup would, whatever shapes came before: the same
    /// names again, a shape of the same length whose first and last names
    /// agree but whose middle name differs, owned names and an empty
    /// event.
    #[test]
    fn fields_resolve_alike_through_remembered_shapes() {
        use qalqan_core::event::Fields;
        let mut table = crate::compile::FieldTable::new();
        let names = [
            "url.original",
            "url.path",
            "user.name",
            "user_agent.original",
        ];
        let ids: Vec<u32> = names.iter().map(|n| table.intern(n)).collect();
        let event = |fields: &[(&'static str, bool, &str)]| {
            let mut ev = Event::new(String::new(), chrono::Utc::now());
            let mut f = Fields::new();
            for &(name, owned, value) in fields {
                if owned {
                    f.push_new(name.to_owned(), value);
                } else {
                    f.push_new(name, value);
                }
            }
            ev.fields = f;
            ev
        };
        let events = [
            event(&[
                ("url.original", false, "/a?b"),
                ("url.path", false, "/a"),
                ("user_agent.original", false, "curl"),
            ]),
            event(&[
                ("url.original", false, "/c?d"),
                ("url.path", false, "/c"),
                ("user_agent.original", false, "wget"),
            ]),
            event(&[
                ("url.original", false, "/e"),
                ("user.name", false, "bob"),
                ("user_agent.original", false, "ua"),
            ]),
            event(&[
                ("url.original", false, "/f"),
                ("unknown.field", false, "x"),
                ("user_agent.original", false, "ub"),
            ]),
            event(&[
                ("url.original", true, "/g"),
                ("url.path", false, "/g"),
                ("user_agent.original", true, "uc"),
            ]),
            event(&[
                ("url.original", false, "/h"),
                ("url.path", false, "/h"),
                ("user_agent.original", false, "ud"),
            ]),
            event(&[]),
            event(&[
                ("url.original", false, "/i"),
                ("url.path", false, "/i"),
                ("user_agent.original", false, "ue"),
            ]),
        ];
        let mut st = EventState::new(table.len(), 0);
        for _ in 0..2 {
            for ev in &events {
                st.begin();
                resolve_fields(ev, &table, &mut st);
                let vals = ev.fields.entries();
                for (name, &id) in names.iter().zip(&ids) {
                    assert_eq!(
                        single_str(vals, &st, id),
                        ev.fields.get_str(name),
                        "{name} of {ev:?}"
                    );
                }
                let want: Vec<u32> = ev
                    .fields
                    .entries()
                    .iter()
                    .filter_map(|(n, _)| table.get(n))
                    .collect();
                assert_eq!(st.present(), want.as_slice(), "{ev:?}");
            }
        }
    }

    #[test]
    fn two_names_of_one_set_both_stay_cached() {
        let mut table = crate::compile::FieldTable::new();
        let (a, b) = (table.intern("process.name"), table.intern("event.action"));
        assert_eq!(
            name_slot("process.name") & !1,
            name_slot("event.action") & !1
        );
        let mut names = vec![(Box::from(""), NO_FIELD); NAME_SLOTS];
        assert_eq!(cached_field(&mut names, &table, "process.name"), a);
        assert_eq!(cached_field(&mut names, &table, "event.action"), b);
        let empty = crate::compile::FieldTable::new();
        // both answered from the cache now, not from the (empty) table
        assert_eq!(cached_field(&mut names, &empty, "process.name"), a);
        assert_eq!(cached_field(&mut names, &empty, "event.action"), b);
        assert_eq!(cached_field(&mut names, &empty, "url.path"), NO_FIELD);
        assert_eq!(cached_field(&mut names, &empty, ""), NO_FIELD);
    }

    #[test]
    fn name_slots_are_in_range() {
        for n in ["", "x", "Image", "ParentCommandLine", "ü", "url.original"] {
            assert!(name_slot(n) < NAME_SLOTS);
        }
    }
}
