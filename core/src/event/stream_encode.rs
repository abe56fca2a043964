//! Writes an event's wire form (nested ECS JSON) straight from the flat
//! field list.
//!
//! Every event a collector sends is encoded once, so this is the
//! collector's hottest step after parsing. Building a `serde_json::Value`
//! tree first (a map per nesting level, every key and value copied) cost
//! several times the parse. Here the dotted names are sorted segment by
//! segment, so each JSON object's members are adjacent, and the text is
//! written in one pass with no intermediate values.
//!
//! A name that is both a value and a parent (`a` and `a.b`) keeps both:
//! `"a": 1, "a.b": 2` at that level, which reads back as the same two
//! fields. Fields named like the typed members (`schema_version`,
//! `@timestamp`, `event.ingested`, `event.original`, `logsource...`) are
//! left out: the typed members stand for them.
//!
//! Fields that exist only on the wire (the collector's stamps, the same
//! few texts on every event) can be passed beside the event as borrowed
//! values, so they need no owned copy in the event's field list. Those
//! whose text is the same on every event (`observer.*`, `input.type`, a
//! connection's `log.source.address`) are passed as *fixed*: their JSON
//! text becomes part of the plan, written with the keys around it in one
//! copy, as are the logsource's values (the plan is chosen by them too).

use std::cmp::Ordering;

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::{format_ts, Event, LogSource, Value, ValueRef, SCHEMA_VERSION};

/// Fields written beside an event's own: (name, value).
pub(super) type Extra<'a> = [(&'static str, ValueRef<'a>)];

/// Text fields written beside an event's own whose values repeat from
/// event to event: (name, value). Their text is kept in the plan.
pub(super) type Fixed<'a> = [(&'static str, &'a str)];

/// Where a value in the text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    /// The `i`-th entry of the event's field list.
    Field(usize),
    /// The `i`-th extra field.
    Extra(usize),
    /// The `i`-th fixed field: written into the plan's text.
    Fixed(usize),
    Timestamp,
    Ingested,
    Original,
}

struct Entry<'a> {
    /// [`segment_prefix`] of `name`, computed once.
    prefix: u64,
    name: &'a str,
    src: Src,
}

impl<'a> Entry<'a> {
    fn new(name: &'a str, src: Src) -> Self {
        Entry {
            prefix: segment_prefix(name),
            name,
            src,
        }
    }
}

/// The text of an event with given field names, as fixed fragments (keys,
/// braces, commas) between values: events of one parser share it, so it
/// is worked out once and reused (see [`PlanCache`]).
///
/// Values that have been the same on every event written with the plan
/// are part of its text too (most of a parser's fields repeat from line to
/// line: the syslog facility and severity, the program, `event.kind`,
/// `event.category`, ...). A plan starts with all of its first event's
/// values as text; a later event whose value differs makes that field a
/// written value from then on (the plan is laid out again, once per field
/// at most). Checking that a value is unchanged costs a comparison, where
/// writing it meant escaping and copying it between its quotes.
struct Plan {
    /// The field names it was made for, in field-list order.
    names: Vec<std::borrow::Cow<'static, str>>,
    /// The extra fields' names, in order.
    extra: Vec<&'static str>,
    /// The fixed fields, names and values, in order: their text is in the
    /// fragments.
    fixed: Vec<(&'static str, String)>,
    /// The logsource the plan was made for: its values are in the text.
    logsource: LogSource,
    /// Per field of the list, the value every event so far had, when it is
    /// part of the text; `None` for a value written each time.
    field_consts: Vec<Option<Value>>,
    /// The same for the extra fields.
    extra_consts: Vec<Option<Value>>,
    parts: Vec<(String, Src)>,
    tail: String,
    /// Bytes of text in `parts` and `tail`.
    text_len: usize,
}

/// Room a written value takes, about (escapes may take more: the text then
/// grows once).
fn value_room(v: ValueRef<'_>) -> usize {
    match v {
        ValueRef::Str(s) => s.len() + 8,
        ValueRef::List(l) => l.len() * 24 + 8,
        _ => 24,
    }
}

/// An owned copy of a borrowed value.
fn owned(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Bool(b) => Value::Bool(b),
        ValueRef::Int(i) => Value::Int(i),
        ValueRef::Float(f) => Value::Float(f),
        ValueRef::Str(s) => Value::Str(s.to_owned()),
        ValueRef::List(l) => Value::List(l.to_vec()),
    }
}

/// Plans of the most recent field-name shapes, most recent first.
#[derive(Default)]
struct PlanCache {
    plans: Vec<Plan>,
    times: TimeTexts,
}

/// The last `@timestamp` and `event.ingested` written, with their text:
/// every event of a collector batch has the same `event.ingested`, and
/// log lines of the same second often share `@timestamp`.
#[derive(Default)]
struct TimeTexts {
    last: [Option<(DateTime<Utc>, String)>; 2],
}

impl TimeTexts {
    /// Appends the text of `ts` (slot 0: `@timestamp`, 1: `event.ingested`).
    fn push(&mut self, buf: &mut String, slot: usize, ts: &DateTime<Utc>) {
        let Some(last) = self.last.get_mut(slot) else {
            push_ts(buf, ts);
            return;
        };
        match last {
            Some((at, text)) if at == ts => buf.push_str(text),
            Some((at, text)) => {
                let start = buf.len();
                push_ts(buf, ts);
                *at = *ts;
                text.clear();
                text.push_str(&buf[start..]);
            }
            None => {
                let start = buf.len();
                push_ts(buf, ts);
                *last = Some((*ts, buf[start..].to_owned()));
            }
        }
    }
}

/// Shapes kept per thread: a collector sees a handful of line shapes per
/// parser; foreign JSON with ever-new keys just cycles through.
const PLANS_KEPT: usize = 32;

thread_local! {
    static PLANS: std::cell::RefCell<PlanCache> = std::cell::RefCell::new(PlanCache::default());
}

/// Same name: static names (what parsers set) are one and the same text,
/// so the address decides before any byte is compared.
fn same_name(a: &str, b: &str) -> bool {
    (std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()) || a == b
}

impl Plan {
    fn fits(&self, ev: &Event, fixed: &Fixed<'_>, extra: &Extra<'_>) -> bool {
        self.names.len() == ev.fields.0.len()
            && self.extra.len() == extra.len()
            && self.fixed.len() == fixed.len()
            && self.logsource == ev.logsource
            && self
                .names
                .iter()
                .zip(&ev.fields.0)
                .all(|(a, (b, _))| same_name(a, b))
            && self
                .extra
                .iter()
                .zip(extra)
                .all(|(a, (b, _))| same_name(a, b))
            && self
                .fixed
                .iter()
                .zip(fixed)
                .all(|((a, x), (b, y))| same_name(a, b) && same_name(x, y))
    }

    /// Whether every value kept as text is the event's value too.
    fn consts_hold(&self, ev: &Event, extra: &Extra<'_>) -> bool {
        self.field_consts
            .iter()
            .zip(&ev.fields.0)
            .all(|(c, (_, v))| c.as_ref().is_none_or(|c| c == v))
            && self
                .extra_consts
                .iter()
                .zip(extra)
                .all(|(c, (_, v))| c.as_ref().is_none_or(|c| c.as_ref() == *v))
    }

    /// Turns the kept values that `ev` does not share into written ones
    /// and lays the plan out again.
    fn demote(&mut self, ev: &Event, fixed: &Fixed<'_>, extra: &Extra<'_>) {
        let mut field_consts = std::mem::take(&mut self.field_consts);
        for (c, (_, v)) in field_consts.iter_mut().zip(&ev.fields.0) {
            if c.as_ref().is_some_and(|c| c != v) {
                *c = None;
            }
        }
        let mut extra_consts = std::mem::take(&mut self.extra_consts);
        for (c, (_, v)) in extra_consts.iter_mut().zip(extra) {
            if c.as_ref().is_some_and(|c| c.as_ref() != *v) {
                *c = None;
            }
        }
        *self = Plan::make(ev, fixed, extra, field_consts, extra_consts);
    }

    /// A plan for `ev`'s shape with every value of `ev` kept as text.
    fn first(ev: &Event, fixed: &Fixed<'_>, extra: &Extra<'_>) -> Plan {
        let field_consts = ev.fields.0.iter().map(|(_, v)| Some(v.clone())).collect();
        let extra_consts = extra.iter().map(|(_, v)| Some(owned(*v))).collect();
        Plan::make(ev, fixed, extra, field_consts, extra_consts)
    }

    /// Lays out the text: `field_consts`/`extra_consts` (one per field,
    /// as in [`Plan`]) say which values are written into it.
    fn make(
        ev: &Event,
        fixed: &Fixed<'_>,
        extra: &Extra<'_>,
        field_consts: Vec<Option<Value>>,
        extra_consts: Vec<Option<Value>>,
    ) -> Plan {
        let mut entries: Vec<Entry<'_>> =
            Vec::with_capacity(ev.fields.len() + extra.len() + fixed.len() + 2);
        for (i, (name, _)) in ev.fields.0.iter().enumerate() {
            if !is_reserved(name) {
                entries.push(Entry::new(name, Src::Field(i)));
            }
        }
        for (i, (name, _)) in extra.iter().enumerate() {
            if !is_reserved(name) {
                entries.push(Entry::new(name, Src::Extra(i)));
            }
        }
        for (i, (name, _)) in fixed.iter().enumerate() {
            if !is_reserved(name) {
                entries.push(Entry::new(name, Src::Fixed(i)));
            }
        }
        entries.push(Entry::new("event.ingested", Src::Ingested));
        entries.push(Entry::new("event.original", Src::Original));
        // The first eight bytes decide most comparisons in one integer compare.
        entries.sort_unstable_by(|a, b| {
            a.prefix
                .cmp(&b.prefix)
                .then_with(|| by_segments(a.name, b.name))
        });
        let mut rec = Recorder {
            fixed,
            field_consts: &field_consts,
            extra_consts: &extra_consts,
            ..Recorder::default()
        };
        rec.text.push_str("{\"schema_version\":");
        let _ = write!(rec.text, "{SCHEMA_VERSION}");
        rec.text.push_str(",\"@timestamp\":");
        rec.value(Src::Timestamp);
        rec.text.push(',');
        write_level(&mut rec, &entries, 0);
        rec.text.push_str(",\"logsource\":{");
        let mut first = true;
        for (k, value) in [
            ("product", &ev.logsource.product),
            ("service", &ev.logsource.service),
            ("category", &ev.logsource.category),
        ] {
            if let Some(v) = value {
                if !first {
                    rec.text.push(',');
                }
                first = false;
                write_str(&mut rec.text, k);
                rec.text.push(':');
                write_str(&mut rec.text, v);
            }
        }
        rec.text.push_str("}}");
        Plan {
            names: ev.fields.0.iter().map(|(k, _)| k.clone()).collect(),
            extra: extra.iter().map(|(k, _)| *k).collect(),
            fixed: fixed.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            logsource: ev.logsource.clone(),
            text_len: rec.parts.iter().map(|(t, _)| t.len()).sum::<usize>() + rec.text.len(),
            parts: rec.parts,
            tail: rec.text,
            field_consts,
            extra_consts,
        }
    }

    /// Room for the text of `ev`: the plan's own text and the values
    /// written into it, so the text is not reallocated and copied as it
    /// grows.
    fn room(&self, ev: &Event, extra: &Extra<'_>) -> usize {
        let values: usize = self
            .parts
            .iter()
            .map(|(_, src)| match *src {
                Src::Field(i) => ev
                    .fields
                    .0
                    .get(i)
                    .map_or(0, |(_, v)| value_room(v.as_ref())),
                Src::Extra(i) => extra.get(i).map_or(0, |(_, v)| value_room(*v)),
                Src::Timestamp | Src::Ingested => 32,
                Src::Original => ev.original.len() + 8,
                Src::Fixed(_) => 0,
            })
            .sum();
        self.text_len + values
    }

    fn render(&self, ev: &Event, extra: &Extra<'_>, times: &mut TimeTexts, buf: &mut String) {
        buf.reserve(self.room(ev, extra));
        for (text, src) in &self.parts {
            buf.push_str(text);
            match *src {
                Src::Field(i) => {
                    if let Some((_, v)) = ev.fields.0.get(i) {
                        write_value(buf, v);
                    }
                }
                Src::Extra(i) => {
                    if let Some((_, v)) = extra.get(i) {
                        write_value_ref(buf, *v);
                    }
                }
                Src::Timestamp => {
                    buf.push('"');
                    times.push(buf, 0, &ev.timestamp);
                    buf.push('"');
                }
                Src::Ingested => {
                    buf.push('"');
                    times.push(buf, 1, &ev.ingested);
                    buf.push('"');
                }
                Src::Original => write_str(buf, &ev.original),
                // Written into the fragments when the plan was made.
                Src::Fixed(_) => {}
            }
        }
        buf.push_str(&self.tail);
    }
}

/// Collects a plan's fragments while the layout is walked.
#[derive(Default)]
struct Recorder<'f> {
    parts: Vec<(String, Src)>,
    text: String,
    /// The fixed fields, whose text goes straight into the fragments.
    fixed: &'f Fixed<'f>,
    /// The values kept as text (see [`Plan`]).
    field_consts: &'f [Option<Value>],
    extra_consts: &'f [Option<Value>],
}

impl Recorder<'_> {
    fn value(&mut self, src: Src) {
        let kept = match src {
            Src::Fixed(i) => {
                if let Some((_, v)) = self.fixed.get(i) {
                    write_str(&mut self.text, v);
                }
                return;
            }
            Src::Field(i) => self.field_consts.get(i),
            Src::Extra(i) => self.extra_consts.get(i),
            _ => None,
        };
        if let Some(Some(v)) = kept {
            write_value(&mut self.text, v);
            return;
        }
        self.parts.push((std::mem::take(&mut self.text), src));
    }
}

/// Appends the wire form of `ev`, with `fixed` and `extra` fields, to `buf`.
pub(super) fn encode(ev: &Event, fixed: &Fixed<'_>, extra: &Extra<'_>, buf: &mut String) {
    PLANS.with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            // Only reachable re-entrantly; no cache then.
            Plan::first(ev, fixed, extra).render(ev, extra, &mut TimeTexts::default(), buf);
            return;
        };
        let PlanCache { plans, times } = &mut *cache;
        match plans.iter().position(|p| p.fits(ev, fixed, extra)) {
            Some(0) => {}
            Some(i) => {
                let plan = plans.remove(i);
                plans.insert(0, plan);
            }
            None => {
                if plans.len() >= PLANS_KEPT {
                    plans.pop();
                }
                plans.insert(0, Plan::first(ev, fixed, extra));
            }
        }
        if let Some(plan) = plans.first_mut() {
            if !plan.consts_hold(ev, extra) {
                plan.demote(ev, fixed, extra);
            }
            plan.render(ev, extra, times, buf);
        }
    });
}

/// Appends [`format_ts`]'s text (`2026-11-27T05:00:01.123456Z`) without
/// going through `fmt`: two per event, and `fmt` made them a tenth of the
/// encoding. Years outside 0..=9999 and leap seconds take `format_ts`.
fn push_ts(buf: &mut String, ts: &DateTime<Utc>) {
    let (date, time) = (ts.date_naive(), ts.time());
    let year = date.year();
    let nanos = time.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        buf.push_str(&format_ts(ts));
        return;
    }
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, date.month());
    put(8, 2, date.day());
    put(11, 2, time.hour());
    put(14, 2, time.minute());
    put(17, 2, time.second());
    put(20, 6, nanos / 1000);
    // Only ASCII digits were written into an ASCII template.
    buf.push_str(std::str::from_utf8(&text).unwrap_or_default());
}

fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "schema_version" | "@timestamp" | "event.ingested" | "event.original" | "logsource"
    ) || name.starts_with("logsource.")
}

/// The first eight bytes of `name` as a big-endian integer, `.` mapped
/// below every other byte and the end of the name below that: the same
/// order as [`by_segments`] on those bytes.
fn segment_prefix(name: &str) -> u64 {
    let mut key = 0u64;
    for (i, &b) in name.as_bytes().iter().take(8).enumerate() {
        let mapped = match b {
            b'.' => 1,
            0 | 1 => 2,
            b => u64::from(b.saturating_add(1)).max(2),
        };
        key |= mapped << (56 - 8 * i);
    }
    key
}

/// Orders dotted names segment by segment: a segment's end sorts before
/// any byte, so `a`, `a.b`, `a.c`, `a-b` come in that order and every
/// object's members are adjacent.
fn by_segments(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'.' { 0u16 } else { u16::from(c) + 1 };
    let (a, b) = (a.as_bytes(), b.as_bytes());
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => key(a[i]).cmp(&key(b[i])),
        None => a.len().cmp(&b.len()),
    }
}

/// Lays out the members of one object (without braces): `entries` all
/// share the first `from` bytes of their names, which name this object.
fn write_level(rec: &mut Recorder, entries: &[Entry<'_>], from: usize) {
    let mut i = 0;
    let mut first = true;
    while i < entries.len() {
        let rest = &entries[i].name[from..];
        let segment = match memchr::memchr(b'.', rest.as_bytes()) {
            Some(dot) => &rest[..dot],
            None => rest,
        };
        // The run of entries under this segment.
        let mut end = i + 1;
        while end < entries.len() && same_segment(&entries[end].name[from..], segment) {
            end += 1;
        }
        if !first {
            rec.text.push(',');
        }
        first = false;
        let run = &entries[i..end];
        if run.iter().any(|e| e.name.len() == from + segment.len()) {
            // A value here: it and anything below it are written flat,
            // the longer names as literal dotted keys.
            for (k, e) in run.iter().enumerate() {
                if k > 0 {
                    rec.text.push(',');
                }
                write_str(&mut rec.text, &e.name[from..]);
                rec.text.push(':');
                rec.value(e.src);
            }
        } else {
            write_str(&mut rec.text, segment);
            rec.text.push_str(":{");
            write_level(rec, run, from + segment.len() + 1);
            rec.text.push('}');
        }
        i = end;
    }
}

/// Whether `rest` starts with the whole `segment`.
fn same_segment(rest: &str, segment: &str) -> bool {
    rest.starts_with(segment)
        && (rest.len() == segment.len() || rest.as_bytes()[segment.len()] == b'.')
}

fn write_value(buf: &mut String, v: &Value) {
    write_value_ref(buf, v.as_ref())
}

/// [`write_value`] for a borrowed value (the extra fields, and every
/// owned value through [`Value::as_ref`]).
fn write_value_ref(buf: &mut String, v: ValueRef<'_>) {
    match v {
        ValueRef::Str(s) => write_str(buf, s),
        ValueRef::Int(i) => write_int(buf, i),
        ValueRef::Float(f) => write_float(buf, f),
        ValueRef::Bool(b) => write_bool(buf, b),
        ValueRef::Null => buf.push_str("null"),
        ValueRef::List(items) => write_list(buf, items),
    }
}

fn write_bool(buf: &mut String, b: bool) {
    buf.push_str(if b { "true" } else { "false" });
}

/// `fmt` took a tenth of the encoding for the handful of numbers an event
/// has.
fn write_int(buf: &mut String, i: i64) {
    buf.push_str(itoa::Buffer::new().format(i));
}

fn write_float(buf: &mut String, f: f64) {
    match serde_json::Number::from_f64(f) {
        Some(n) => {
            let _ = write!(buf, "{n}");
        }
        None => buf.push_str("null"),
    }
}

fn write_list(buf: &mut String, items: &[Value]) {
    buf.push('[');
    for (k, item) in items.iter().enumerate() {
        if k > 0 {
            buf.push(',');
        }
        write_value(buf, item);
    }
    buf.push(']');
}

/// A JSON string literal, escaped as RFC 8259 requires.
fn write_str(buf: &mut String, s: &str) {
    buf.push('"');
    let bytes = s.as_bytes();
    // Runs that need no escape are copied whole; most values are one run.
    let mut start = 0;
    while let Some(i) = next_escape(bytes, start) {
        // Escaped bytes are ASCII, so these are char boundaries.
        buf.push_str(&s[start..i]);
        match bytes[i] {
            b'"' => buf.push_str("\\\""),
            b'\\' => buf.push_str("\\\\"),
            b'\n' => buf.push_str("\\n"),
            b'\r' => buf.push_str("\\r"),
            b'\t' => buf.push_str("\\t"),
            0x08 => buf.push_str("\\b"),
            0x0c => buf.push_str("\\f"),
            b => {
                let _ = write!(buf, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    buf.push_str(&s[start..]);
    buf.push('"');
}

/// Whether a JSON string must escape `b`.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The index of the first byte at or after `from` that needs an escape.
/// Sixteen bytes are tested at a time: a fixed-size block with no early
/// exit compiles to a few vector compares, where a byte loop took about
/// five instructions a byte (the string scan was half of encoding). The
/// last, partial block is tested as the sixteen bytes that end the string
/// (overlapping the block before), or padded when the string is shorter.
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    let first = |part: &[u8], at: usize| {
        part.iter()
            .position(|&b| needs_escape(b))
            .map(|p| from + at + p)
    };
    if rest.len() < 16 {
        let mut block = [b' '; 16];
        block[..rest.len()].copy_from_slice(rest);
        return if block_needs_escape(&block) {
            first(rest, 0)
        } else {
            None
        };
    }
    let mut at = 0;
    while let Some(block) = rest.get(at..at + 16) {
        if block_needs_escape(block.try_into().ok()?) {
            return first(block, at);
        }
        at += 16;
    }
    let tail = rest.get(rest.len() - 16..)?;
    if at < rest.len() && block_needs_escape(tail.try_into().ok()?) {
        return first(&rest[at..], at);
    }
    None
}

#[inline(always)]
fn block_needs_escape(block: &[u8; 16]) -> bool {
    let mut any = 0u8;
    for &b in block {
        any |= u8::from(b < 0x20) | u8::from(b == b'"') | u8::from(b == b'\\');
    }
    any != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Fields, LogSource};
    use chrono::{TimeZone, Utc};
    use serde_json::Value as Json;

    fn event(fields: &[(&str, Value)]) -> Event {
        let at = Utc
            .timestamp_opt(1_764_219_601, 123_456_000)
            .single()
            .unwrap_or_default();
        let mut ev = Event::new("line \"quoted\"\n\u{1}ü".into(), at);
        ev.logsource = LogSource::new(Some("linux"), Some("sshd"), None);
        let mut f = Fields::new();
        for (k, v) in fields {
            f.insert(k.to_string(), v.clone());
        }
        ev.fields = f;
        ev
    }

    #[test]
    fn the_text_is_the_value_tree_path_as_json() {
        let ev = event(&[
            ("source.ip", Value::from("203.0.113.9")),
            ("source.port", Value::Int(4242)),
            ("user.name", Value::from("röot\t")),
            ("event.kind", Value::from("event")),
            ("tags", Value::List(vec![Value::from("a"), Value::Int(1)])),
            ("ratio", Value::Float(0.25)),
            ("nan", Value::Float(f64::NAN)),
            ("flag", Value::Bool(true)),
            ("none", Value::Null),
            ("a-b", Value::from("dash")),
            ("a.b.c", Value::from("deep")),
            ("a.b.d", Value::from("deep2")),
        ]);
        let mut text = String::new();
        encode(&ev, &[], &[], &mut text);
        let streamed: Json = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(streamed, ev.to_json(), "{text}");
    }

    #[test]
    fn a_value_that_is_also_a_parent_keeps_both_and_reads_back() {
        let ev = event(&[
            ("a", Value::from("top")),
            ("a.b", Value::from("child")),
            ("x.y", Value::Int(1)),
            ("x.y.z", Value::Int(2)),
            ("logsource.extra", Value::from("dropped")),
            ("@timestamp", Value::from("dropped")),
        ]);
        let mut text = String::new();
        encode(&ev, &[], &[], &mut text);
        let back = Event::from_json_bytes(text.as_bytes(), Utc::now()).expect("reads back");
        assert_eq!(back.get_str("a"), Some("top"));
        assert_eq!(back.get_str("a.b"), Some("child"));
        assert_eq!(back.fields.get("x.y"), Some(&Value::Int(1)));
        assert_eq!(back.fields.get("x.y.z"), Some(&Value::Int(2)));
        assert!(back.fields.get("logsource.extra").is_none());
        assert_eq!(back.timestamp, ev.timestamp);
        assert_eq!(back.ingested, ev.ingested);
        assert_eq!(back.original, ev.original);
        assert_eq!(back.logsource, ev.logsource);
        assert_eq!(back.fields.len(), 4, "{text}");
    }

    #[test]
    fn grouping_holds_for_names_that_differ_only_around_dots() {
        // Names over a tiny alphabet, so prefixes, dashes (just below the
        // dot in ASCII) and long shared heads collide as often as possible.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let segments = ["a", "ab", "a-b", "abcdefghij", "abcdefghik", "b", "-"];
        for _ in 0..300 {
            let mut names = Vec::new();
            for _ in 0..(2 + next(10)) {
                let depth = 1 + next(4);
                let name: Vec<&str> = (0..depth)
                    .map(|_| segments[next(segments.len() as u64) as usize])
                    .collect();
                names.push(name.join("."));
            }
            // Only names that are not parents of others: the tree path
            // cannot hold both, so it is no reference for those.
            let leaves: Vec<(&str, Value)> = names
                .iter()
                .filter(|n| !names.iter().any(|m| m.starts_with(&format!("{n}."))))
                .map(|n| (n.as_str(), Value::from(n.as_str())))
                .collect();
            let ev = event(&leaves);
            let mut text = String::new();
            encode(&ev, &[], &[], &mut text);
            let streamed: Json = serde_json::from_str(&text).expect("valid JSON");
            assert_eq!(streamed, ev.to_json(), "{text}");
            assert_eq!(
                text.matches('{').count(),
                ev.to_json().to_string().matches('{').count(),
                "one object per parent name: {text}"
            );
        }
    }

    #[test]
    fn a_reused_layout_writes_each_event_its_own_values() {
        // More shapes than the cache keeps, each seen twice with new values,
        // and one shape whose logsource members differ.
        let shape = |k: usize, v: i64| {
            let mut ev = event(&[
                ("source.ip", Value::from(format!("10.0.0.{v}"))),
                ("source.port", Value::Int(v)),
                (
                    ["user.name", "user.id", "host.name"][k % 3],
                    Value::from(format!("u{v}")),
                ),
                ("tags", Value::List(vec![Value::Int(v)])),
            ]);
            ev.fields.insert(format!("extra.k{k}"), Value::Int(v * 10));
            if k.is_multiple_of(5) {
                ev.logsource = LogSource::new(None, Some("sshd"), Some("auth"));
            }
            ev.original = format!("line {k} {v}");
            ev
        };
        for round in 0..2 {
            for k in 0..(PLANS_KEPT + 8) {
                let ev = shape(k, (round * 1000 + k) as i64);
                let mut text = String::new();
                encode(&ev, &[], &[], &mut text);
                let streamed: Json = serde_json::from_str(&text).expect("valid JSON");
                assert_eq!(streamed, ev.to_json(), "{text}");
            }
        }
    }

    #[test]
    fn extra_fields_write_as_if_they_were_the_events_own() {
        let base = [
            ("source.ip", Value::from("203.0.113.9")),
            ("log.level", Value::from("info")),
            ("message", Value::from("m")),
            ("tags", Value::List(vec![Value::from("t")])),
        ];
        let extra: [(&'static str, ValueRef<'_>); 6] = [
            ("observer.name", ValueRef::Str("col \"1\"")),
            ("log.source.address", ValueRef::Str("192.0.2.7:514")),
            ("observer.sequence", ValueRef::Int(42)),
            ("input.type", ValueRef::Str("tcp")),
            ("log", ValueRef::Bool(true)),
            ("event.original", ValueRef::Str("left out: a typed member")),
        ];
        let mut all: Vec<(&str, Value)> = base.to_vec();
        for (k, v) in &extra[..5] {
            all.push((
                k,
                match v {
                    ValueRef::Str(s) => Value::from(*s),
                    ValueRef::Int(i) => Value::Int(*i),
                    ValueRef::Bool(b) => Value::Bool(*b),
                    _ => Value::Null,
                },
            ));
        }
        let reference = event(&all);
        let ev = event(&base);
        // Twice each: the first makes the layout, the second reuses it; a
        // different set of extra names must not reuse the first layout.
        for _ in 0..2 {
            for n in [extra.len(), 3, 0] {
                let mut text = String::new();
                encode(&ev, &[], &extra[..n], &mut text);
                let mut want = String::new();
                let mut r = ev.clone();
                r.fields = Fields::new();
                for (k, v) in reference.fields.iter() {
                    let own = base.iter().any(|(b, _)| *b == k);
                    let shown = extra[..n.min(5)].iter().any(|(e, _)| *e == k);
                    if own || shown {
                        r.fields.insert(k.to_string(), v.clone());
                    }
                }
                encode(&r, &[], &[], &mut want);
                let got: Json = serde_json::from_str(&text).expect("valid JSON");
                let want: Json = serde_json::from_str(&want).expect("valid JSON");
                assert_eq!(got, want, "{text}");
            }
        }
    }

    #[test]
    fn values_kept_in_the_layout_give_way_to_each_events_own() {
        // One shape, values changing a field at a time and back, NaN (never
        // equal to itself), lists and an extra field: every text must be
        // the event's own.
        let values = |k: usize| {
            [
                ("log.level", Value::from(["info", "warn"][(k / 3) % 2])),
                ("process.pid", Value::Int([42, 43, 42][k % 3])),
                ("ratio", Value::Float(if k == 4 { f64::NAN } else { 0.5 })),
                (
                    "event.type",
                    Value::List(vec![Value::from(["start", "end"][(k / 5) % 2])]),
                ),
                ("message", Value::from(format!("m{}", k / 7))),
                ("flag", Value::Bool(k.is_multiple_of(4))),
            ]
        };
        for k in 0..20 {
            let ev = event(&values(k));
            let seq = (k / 2) as i64;
            let extra = [
                ("observer.sequence", ValueRef::Int(seq)),
                ("event.id", ValueRef::Str(["a", "b"][k % 2])),
            ];
            let mut text = String::new();
            encode(&ev, &[], &extra, &mut text);
            let got: Json = serde_json::from_str(&text).expect("valid JSON");
            assert_eq!(got, ev_with(&ev, &extra).to_json(), "{text}");
        }
    }

    #[test]
    fn fixed_fields_and_logsources_write_as_extra_fields_do() {
        // Fixed values change between calls (another connection, another
        // collector name) and logsources differ with the same field names:
        // each must get a plan of its own, never a stale text.
        let hosts = ["a", "b \"quoted\"", "a"];
        let sources = [
            LogSource::new(Some("linux"), Some("sshd"), None),
            LogSource::new(Some("linux"), Some("sudo"), None),
            LogSource::new(None, None, Some("firewall")),
        ];
        for round in 0..3 {
            for (k, host) in hosts.iter().enumerate() {
                let mut ev = event(&[("source.ip", Value::from("203.0.113.9"))]);
                ev.logsource = sources[(k + round) % sources.len()].clone();
                let address = format!("192.0.2.{k}:514");
                let fixed = [
                    ("observer.hostname", *host),
                    ("log.source.address", address.as_str()),
                    ("@timestamp", "left out"),
                ];
                let extra = [("observer.sequence", ValueRef::Int(k as i64))];
                let mut text = String::new();
                encode(&ev, &fixed, &extra, &mut text);
                let as_extra: Vec<(&'static str, ValueRef<'_>)> = fixed
                    .iter()
                    .map(|(k, v)| (*k, ValueRef::Str(v)))
                    .chain(extra)
                    .collect();
                let mut want = String::new();
                encode(&ev, &[], &as_extra, &mut want);
                let got: Json = serde_json::from_str(&text).expect("valid JSON");
                let want: Json = serde_json::from_str(&want).expect("valid JSON");
                assert_eq!(got, want, "{text}");
                assert_eq!(got, ev_with(&ev, &as_extra).to_json(), "{text}");
            }
        }
    }

    /// `ev` with `extra` as owned fields (text and integers only).
    fn ev_with(ev: &Event, extra: &[(&'static str, ValueRef<'_>)]) -> Event {
        let mut r = ev.clone();
        for (k, v) in extra {
            if is_reserved(k) {
                continue;
            }
            match v {
                ValueRef::Str(s) => r.fields.insert(*k, *s),
                ValueRef::Int(i) => r.fields.insert(*k, Value::Int(*i)),
                _ => {}
            }
        }
        r
    }

    #[test]
    fn remembered_time_texts_follow_each_events_times() {
        let at = |s: i64, us: u32| DateTime::from_timestamp(s, us * 1000).unwrap_or_default();
        let times = [
            (at(1_764_219_601, 1), at(1_764_219_700, 5)),
            (at(1_764_219_601, 1), at(1_764_219_700, 5)),
            (at(1_764_219_601, 2), at(1_764_219_700, 5)),
            (at(1_764_219_602, 2), at(1_764_219_701, 5)),
            (at(1_764_219_601, 1), at(1_764_219_701, 5)),
        ];
        for (timestamp, ingested) in times {
            let mut ev = event(&[("a", Value::Int(1))]);
            ev.timestamp = timestamp;
            ev.ingested = ingested;
            let mut text = String::new();
            encode(&ev, &[], &[], &mut text);
            let back = Event::from_json_bytes(text.as_bytes(), Utc::now()).expect("reads back");
            assert_eq!(
                (back.timestamp, back.ingested),
                (timestamp, ingested),
                "{text}"
            );
        }
    }

    #[test]
    fn timestamps_read_as_format_ts_writes_them() {
        let mut t = DateTime::from_timestamp_micros(-62_000_000_000_000_000).unwrap_or_default();
        while t.timestamp() < 260_000_000_000 {
            let mut fast = String::new();
            push_ts(&mut fast, &t);
            assert_eq!(fast, format_ts(&t));
            t += chrono::Duration::microseconds(987_654_321_123_457);
        }
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 1_500_000))
            .map(|n| n.and_utc())
            .unwrap_or_default();
        let mut fast = String::new();
        push_ts(&mut fast, &leap);
        assert_eq!(fast, format_ts(&leap));
    }

    #[test]
    fn escapes_land_where_serde_json_puts_them_at_every_block_offset() {
        // Strings around the 16-byte scan blocks, with a byte that needs
        // escaping (or a multi-byte char, which needs none) at each place.
        for len in 0..50 {
            for at in 0..=len {
                for special in ["\"", "\\", "\n", "\u{1}", "\u{1f}", "é", "\u{7f}"] {
                    let s: String = (0..len)
                        .map(|i| if i == at { special } else { "x" })
                        .collect();
                    let s = format!("{s}{}", if at == len { special } else { "" });
                    let mut ours = String::new();
                    write_str(&mut ours, &s);
                    let theirs = serde_json::to_string(&s).unwrap_or_default();
                    let back: String = serde_json::from_str(&ours).unwrap_or_default();
                    assert_eq!(back, s, "{ours}");
                    assert_eq!(ours.len(), theirs.len(), "{ours} vs {theirs}");
                }
            }
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut s = String::new();
        write_str(&mut s, "a\u{0}b\u{1f}\"\\\u{7f}é");
        assert_eq!(s, "\"a\\u0000b\\u001f\\\"\\\\\u{7f}é\"");
        let back: String = serde_json::from_str(&s).expect("valid");
        assert_eq!(back, "a\u{0}b\u{1f}\"\\\u{7f}é");
    }
}
