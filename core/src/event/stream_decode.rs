//! Reads an event's wire form straight into the flat field list.
//!
//! The detector decodes every message of every agency, so this is its
//! hottest path. Going through a `serde_json::Value` tree first (a map per
//! nesting level, a `String` per key, then a second walk that joins dotted
//! names with `format!`) cost more than matching the event against every
//! rule. This reader walks the JSON once: nested keys are appended to one
//! reusable name buffer, scalars become [`Value`]s directly, and the typed
//! members (`@timestamp`, `event.ingested`, `event.original`, `logsource`,
//! `schema_version`) are picked out on the way.
//!
//! It gives the same event as [`Event::from_json_map`] (tested below on
//! every shape the wire form can take), except that fields come out sorted
//! by name, and a name given twice keeps its last value.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde::Deserialize as _;

use super::{fast_decode, parse_ts_str, DecodeError, Event, LogSource, Value, SCHEMA_VERSION};

/// Decodes one JSON object into an event; see [`Event::from_json_bytes`].
pub(super) fn decode(bytes: &[u8], ingested: DateTime<Utc>) -> Result<Event, DecodeError> {
    // Valid UTF-8 (every message a collector writes) is checked once here,
    // in one fast pass, so the readers can skip checking each string on its
    // own; that per-string check cost as much as finding the strings' ends.
    // Invalid input goes through serde's checking reader, which names the
    // spot. simdutf8 checks 2-3 times faster than the standard library here
    // (from_utf8 was ~5% of stage 1's thread in a profile).
    let text = simdutf8::basic::from_utf8(bytes).ok();
    if let Some(ev) = text.and_then(|text| fast_decode::decode(text, ingested)) {
        return Ok(ev);
    }
    serde_decode(bytes, text, ingested)
}

/// The serde reader: any JSON, and the error messages that name the spot.
/// `text` is `bytes` when they are valid UTF-8.
pub(super) fn serde_decode(
    bytes: &[u8],
    text: Option<&str>,
    ingested: DateTime<Utc>,
) -> Result<Event, DecodeError> {
    let mut state = State::new(ingested);
    let outcome = match text {
        Some(text) => walk(serde_json::Deserializer::from_str(text), &mut state),
        None => walk(serde_json::Deserializer::from_slice(bytes), &mut state),
    };
    if let Some(problem) = state.problem.take() {
        return Err(problem);
    }
    outcome?;
    Ok(state.finish(bytes))
}

/// Reads the whole input as one event object and nothing after it.
fn walk<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    state: &mut State,
) -> Result<(), serde_json::Error> {
    Root { state }.deserialize(&mut de)?;
    de.end()
}

/// The event being read, shared by both readers.
pub(super) struct State {
    pub(super) ev: Event,
    /// Dotted name of the member being read.
    pub(super) name: String,
    /// A typed member that is present but wrong; reported after the walk
    /// so the JSON error (if any) does not hide it.
    pub(super) problem: Option<DecodeError>,
}

impl State {
    pub(super) fn new(ingested: DateTime<Utc>) -> State {
        State {
            ev: Event {
                timestamp: ingested,
                ingested,
                original: String::new(),
                logsource: LogSource::default(),
                // Room for a collector event's fields: growing the list
                // from 16 cost a reallocation and a copy per event.
                fields: super::Fields::with_capacity(32),
            },
            name: String::with_capacity(64),
            problem: None,
        }
    }

    fn fail(&mut self, problem: DecodeError) {
        self.problem.get_or_insert(problem);
    }

    /// Stores a scalar or list read under the current name.
    pub(super) fn put(&mut self, value: Value) {
        match self.name.as_str() {
            "event.original" => {
                self.ev.original = match value {
                    Value::Str(s) => s,
                    other => other.to_json().to_string(),
                }
            }
            "event.ingested" => {
                if let Some(ts) = ts_of(&value) {
                    self.ev.ingested = ts;
                }
            }
            _ => self.ev.fields.0.push((field_name(&self.name), value)),
        }
    }

    /// The top-level `schema_version`.
    pub(super) fn schema_version(&mut self, v: Value) {
        match v {
            Value::Int(n) if n == i64::from(SCHEMA_VERSION) => {}
            Value::Int(n) if n >= 0 => self.fail(DecodeError::SchemaVersion(n as u64)),
            _ => self.fail(DecodeError::Field {
                field: "schema_version",
                reason: "not a non-negative integer".into(),
            }),
        }
    }

    /// The top-level `@timestamp`.
    pub(super) fn timestamp(&mut self, v: Value) {
        match ts_of(&v) {
            Some(ts) => self.ev.timestamp = ts,
            None => self.fail(DecodeError::Field {
                field: "@timestamp",
                reason: format!(
                    "not an RFC 3339 time or epoch milliseconds: {}",
                    v.to_json()
                ),
            }),
        }
    }

    /// The event read: fields in name order, and the input as
    /// `event.original` when it had none.
    pub(super) fn finish(self, bytes: &[u8]) -> Event {
        let mut ev = self.ev;
        ev.fields.sort_dedup_keep_last();
        if ev.original.is_empty() {
            ev.original = String::from_utf8_lossy(bytes).into_owned();
        }
        ev
    }
}

/// Slots of a thread's name table (a power of two).
const NAME_SLOTS: usize = 4096;
/// Names a thread keeps, at most half its slots so that probes stay short.
const NAMES_KEPT: usize = NAME_SLOTS / 2;
/// Longer names are not kept: ECS names are short, and a long one is more
/// likely junk than a name the next event repeats.
const NAME_MAX: usize = 96;
/// Bytes of names kept by all threads together, for the life of the
/// process: names come from untrusted input, so what is kept is bounded.
const NAME_BYTES_KEPT: usize = 4 << 20;

static NAME_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The field names a thread has read, each stored once for the life of the
/// process. Events repeat a few dozen names; storing each once saves an
/// allocation, a copy and a free per field of every event decoded.
struct NameTable {
    slots: Vec<Option<&'static str>>,
    kept: usize,
}

thread_local! {
    static NAMES: std::cell::RefCell<NameTable> = std::cell::RefCell::new(NameTable {
        slots: vec![None; NAME_SLOTS],
        kept: 0,
    });
}

/// `name` as a field name: the kept copy when there is one or room for
/// one, else an owned copy.
fn field_name(name: &str) -> Cow<'static, str> {
    let kept = if name.len() > NAME_MAX {
        None
    } else {
        NAMES
            .try_with(|table| table.try_borrow_mut().ok()?.get(name))
            .ok()
            .flatten()
    };
    kept.map_or_else(|| Cow::Owned(name.to_owned()), Cow::Borrowed)
}

impl NameTable {
    /// The kept copy of `name`, kept now if there is room.
    fn get(&mut self, name: &str) -> Option<&'static str> {
        use std::sync::atomic::Ordering;
        let mask = NAME_SLOTS - 1;
        let mut i = xxhash_rust::xxh3::xxh3_64(name.as_bytes()) as usize & mask;
        loop {
            match self.slots[i] {
                Some(kept) if kept == name => return Some(kept),
                Some(_) => i = (i + 1) & mask,
                None => {
                    let room = self.kept < NAMES_KEPT
                        && NAME_BYTES.fetch_add(name.len(), Ordering::Relaxed) + name.len()
                            <= NAME_BYTES_KEPT;
                    if !room {
                        return None;
                    }
                    let kept: &'static str = Box::leak(name.into());
                    self.slots[i] = Some(kept);
                    self.kept += 1;
                    return Some(kept);
                }
            }
        }
    }
}

/// `@timestamp` and `event.ingested`: RFC 3339 text or epoch milliseconds.
fn ts_of(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Str(s) => parse_ts_str(s),
        Value::Int(ms) => DateTime::from_timestamp_millis(*ms),
        _ => None,
    }
}

/// The top-level object.
struct Root<'s> {
    state: &'s mut State,
}

impl<'de> DeserializeSeed<'de> for Root<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Root<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.state;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "schema_version" => state.schema_version(map.next_value_seed(Scalar)?),
                "@timestamp" => state.timestamp(map.next_value_seed(Scalar)?),
                "logsource" => {
                    state.ev.logsource = map.next_value_seed(LogSourceSeed)?;
                }
                name => {
                    state.name.clear();
                    state.name.push_str(name);
                    map.next_value_seed(Member { state: &mut *state })?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.state.fail(DecodeError::NotObject);
        Err(A::Error::custom("not a JSON object"))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.not_object()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.not_object()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.not_object()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.not_object()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.not_object()
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.not_object()
    }
}

impl Root<'_> {
    fn not_object<E: serde::de::Error>(self) -> Result<(), E> {
        self.state.fail(DecodeError::NotObject);
        Err(E::custom("not a JSON object"))
    }
}

/// A member under `state.name`: an object extends the name, anything else
/// is stored under it.
struct Member<'s> {
    state: &'s mut State,
}

impl<'de> DeserializeSeed<'de> for Member<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Member<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.state;
        let base = state.name.len();
        let mut empty = true;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            empty = false;
            state.name.truncate(base);
            state.name.push('.');
            state.name.push_str(&key.0);
            map.next_value_seed(Member { state: &mut *state })?;
        }
        state.name.truncate(base);
        if empty {
            // An empty object has no dotted children: keep it as its text.
            state.put(Value::Str("{}".into()));
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let list = ListVisitor.visit_seq(seq)?;
        self.state.put(list);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.state.put(Value::Null);
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.state.put(Value::Bool(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.state.put(Value::Int(v));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.state.put(int_or_float(v));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.state.put(Value::Float(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.state.put(Value::Str(v.to_owned()));
        Ok(())
    }
    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.state.put(Value::Str(v));
        Ok(())
    }
}

fn int_or_float(v: u64) -> Value {
    match i64::try_from(v) {
        Ok(i) => Value::Int(i),
        Err(_) => Value::Float(v as f64),
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A value read whole (typed members; list elements).
pub(super) struct Scalar;

impl<'de> DeserializeSeed<'de> for Scalar {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ListVisitor)
    }
}

/// Any JSON value as a [`Value`]: objects (which have no dotted name inside
/// a list) are kept as their JSON text so nothing is lost.
struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(int_or_float(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
        while let Some(v) = seq.next_element_seed(Scalar)? {
            out.push(v);
        }
        Ok(Value::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        let json =
            serde_json::Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(Value::Str(json.to_string()))
    }
}

/// The `logsource` attribute a key names; `None` for a key the wire form
/// ignores there.
pub(super) fn logsource_slot<'l>(
    ls: &'l mut LogSource,
    key: &str,
) -> Option<&'l mut Option<String>> {
    match key {
        "product" => Some(&mut ls.product),
        "service" => Some(&mut ls.service),
        "category" => Some(&mut ls.category),
        _ => None,
    }
}

/// A `logsource` attribute's value: only text counts.
pub(super) fn logsource_text(v: Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

/// `logsource`: the three Sigma attributes; anything else in it (or a
/// logsource that is not an object) is ignored, as the wire form defines.
struct LogSourceSeed;

impl<'de> DeserializeSeed<'de> for LogSourceSeed {
    type Value = LogSource;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<LogSource, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LogSourceSeed {
    type Value = LogSource;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a logsource object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LogSource, A::Error> {
        let mut ls = LogSource::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let Some(slot) = logsource_slot(&mut ls, &key.0) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            *slot = logsource_text(map.next_value_seed(Scalar)?);
        }
        Ok(ls)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LogSource, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(LogSource::default())
    }
    fn visit_unit<E>(self) -> Result<LogSource, E> {
        Ok(LogSource::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<LogSource, E> {
        Ok(LogSource::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<LogSource, E> {
        Ok(LogSource::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<LogSource, E> {
        Ok(LogSource::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<LogSource, E> {
        Ok(LogSource::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<LogSource, E> {
        Ok(LogSource::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value as Json;

    /// The reference: the `serde_json::Value` path, fields sorted.
    fn reference(bytes: &[u8]) -> Result<Event, String> {
        let json: Json = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let Json::Object(map) = json else {
            return Err(DecodeError::NotObject.to_string());
        };
        let now = DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap_or_default();
        let mut ev = Event::from_json_map(map, now).map_err(|e| e.to_string())?;
        if ev.original.is_empty() {
            ev.original = String::from_utf8_lossy(bytes).into_owned();
        }
        ev.fields.sort_dedup_keep_last();
        Ok(ev)
    }

    fn streamed(bytes: &[u8]) -> Result<Event, String> {
        let now = DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap_or_default();
        decode(bytes, now).map_err(|e| e.to_string())
    }

    #[test]
    fn repeated_names_share_one_kept_copy_and_a_full_table_still_decodes() {
        std::thread::spawn(|| {
            let line = br#"{"source":{"ip":"10.0.0.1"},"user":{"name":"root"}}"#;
            let (a, b) = (streamed(line), streamed(line));
            let (Ok(a), Ok(b)) = (a, b) else {
                panic!("decodes")
            };
            assert_eq!(a, b);
            for ((na, _), (nb, _)) in a.fields.0.iter().zip(&b.fields.0) {
                assert!(matches!((na, nb), (Cow::Borrowed(_), Cow::Borrowed(_))));
                assert!(std::ptr::eq(na.as_ptr(), nb.as_ptr()), "{na} kept once");
            }
            // Fill this thread's table with junk names: later names are
            // owned copies, and decoding is unchanged.
            for i in 0..NAMES_KEPT {
                let junk = format!(r#"{{"junk{i}":1}}"#);
                assert!(streamed(junk.as_bytes()).is_ok());
            }
            let late = br#"{"late":{"name":"x"}}"#;
            let ev = streamed(late).expect("decodes");
            assert_eq!(ev.get_str("late.name"), Some("x"));
            assert!(matches!(ev.fields.0[0].0, Cow::Owned(_)));
            let long = format!(r#"{{"{}":1}}"#, "n".repeat(NAME_MAX + 1));
            let ev = streamed(long.as_bytes()).expect("decodes");
            assert!(matches!(ev.fields.0[0].0, Cow::Owned(_)));
        })
        .join()
        .expect("the check thread");
    }

    #[test]
    fn streaming_decode_equals_the_value_tree_path() {
        let cases: &[&str] = &[
            r#"{"schema_version":1,"@timestamp":"2026-11-27T05:00:01.123456Z","event":{"original":"raw line","ingested":"2026-11-27T05:00:02Z","kind":"event"},"logsource":{"product":"linux","service":"sshd","x":[1]},"source":{"ip":"203.0.113.9","port":4242},"user":{"name":"r\u00f6ot"}}"#,
            r#"{"EventID":1,"Image":"C:\\Windows\\System32\\cmd.exe","CommandLine":"cmd /c \"whoami\"","Hashes":["a","b",{"x":1}],"Nested":{"Deep":{"Deeper":true}},"Empty":{},"Null":null,"Big":18446744073709551615,"Neg":-5,"F":1.5}"#,
            r#"{"@timestamp":1700000000123,"a":{"b":1},"a.b":2}"#,
            r#"{"dup":1,"dup":2}"#,
            r#"{"event":{"original":{"not":"text"}}}"#,
            r#"{"logsource":"weird","message":"x"}"#,
            r#"{"list":[[1,2],[3,[4]]],"esc\"key":"v"}"#,
            r#"{}"#,
        ];
        for case in cases {
            assert_eq!(
                streamed(case.as_bytes()),
                reference(case.as_bytes()),
                "{case}"
            );
        }
    }

    #[test]
    fn bad_wire_forms_are_refused_with_the_reference_reason() {
        for case in [
            r#"{"schema_version":99}"#,
            r#"{"schema_version":"1"}"#,
            r#"{"schema_version":-1}"#,
            r#"{"@timestamp":"yesterday"}"#,
            r#"{"@timestamp":true}"#,
            "[1,2]",
        ] {
            let got = streamed(case.as_bytes());
            assert!(got.is_err(), "{case} accepted: {got:?}");
            assert_eq!(got, reference(case.as_bytes()), "{case}");
        }
        // Not JSON at all: refused as such.
        for case in ["{not json", r#"{"a":1} trailing"#, "", "\"text\""] {
            let got = streamed(case.as_bytes());
            assert!(got.is_err(), "{case} accepted: {got:?}");
            assert!(reference(case.as_bytes()).is_err(), "{case}");
        }
        // Invalid UTF-8 inside a string: refused, saying where.
        let bad = b"{\"user\":{\"name\":\"r\xffot\"}}";
        let got = streamed(bad);
        assert!(
            got.as_ref().is_err_and(|e| e.contains("line 1 column")),
            "{got:?}"
        );
        assert!(reference(bad).is_err());
    }
}
