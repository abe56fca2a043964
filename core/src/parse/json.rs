//! JSON lines: one object per line.
//!
//! **Generic JSON** is flattened into dotted field names the way the event
//! contract does it (`{"source":{"ip":"…"}}` → `source.ip`; arrays kept as
//! lists, objects inside arrays kept as their JSON text; a repeated key keeps
//! its last value), in the order of the line. The flattening streams
//! straight from the JSON text into fields (a serde visitor), with no
//! intermediate JSON tree. The event time is
//! taken from `@timestamp`, else `timestamp`, else `time` (RFC 3339 / ISO
//! 8601 text, or epoch seconds/ms/µs/ns as number or digits); `message` comes
//! from `message`, else `msg`, else the whole line. Keys that would collide
//! with the typed members of the event are not copied (they stay in
//! `event.original`): `@timestamp` (consumed), `schema_version`,
//! `event.original`, `event.ingested`, and a top-level `logsource` object —
//! the logsource of a JSON input is configured per input
//! ([`ParseOptions::json_logsource`](super::ParseOptions::json_logsource)),
//! never taken from the line.
//!
//! **journald export JSON** (`journalctl -o json`: an object with `MESSAGE`
//! and `__REALTIME_TIMESTAMP` or `SYSLOG_IDENTIFIER`) is read as a syslog
//! envelope instead — `SYSLOG_IDENTIFIER` (else `_COMM`) is the program,
//! `_PID`/`SYSLOG_PID` the pid, `_HOSTNAME` the host, `PRIORITY` and
//! `SYSLOG_FACILITY` the PRI, `__REALTIME_TIMESTAMP` the time — and
//! `MESSAGE` then goes through the same program parsers as a syslog line
//! (sshd, sudo, …). `_SYSTEMD_UNIT` → `systemd.unit`, `_TRANSPORT` →
//! `systemd.transport`, `_EXE` → `process.executable`; other journal fields
//! stay in `event.original` only.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

use crate::event::{Event, FieldName, Value};

use super::syslog::{facility_name, severity_name};
use super::text::{concat, parse_uint};
use super::timestamp::{from_epoch, from_epoch_text, parse_iso};
use super::{Claim, ParseOptions, MAX_FIELDS};

/// What the JSON parser made of a line.
pub(crate) enum JsonLine {
    /// A generic object, flattened into the event.
    Generic(Claim),
    /// A journald entry: its envelope fields are on the event; the message
    /// and program are for the program parsers.
    Journal {
        message: String,
        program: Option<String>,
    },
}

/// Flattened fields of one object, in line order.
type Flat = Vec<(FieldName, Value)>;

/// Parses a line that starts with `{`; `None` when it is not a JSON object
/// (then nothing has been written to `ev`).
pub(crate) fn parse(line: &str, ev: &mut Event, opts: &ParseOptions) -> Option<JsonLine> {
    let mut flat: Flat = Vec::with_capacity(24);
    let mut capped = false;
    let mut de = serde_json::Deserializer::from_str(line);
    Object {
        prefix: "",
        out: &mut flat,
        capped: &mut capped,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    let has = |flat: &Flat, k: &str| flat.iter().any(|(n, _)| n == k);
    if has(&flat, "MESSAGE")
        && (has(&flat, "__REALTIME_TIMESTAMP") || has(&flat, "SYSLOG_IDENTIFIER"))
    {
        return Some(journal(flat, ev));
    }
    let claim = generic(flat, ev, opts);
    Some(JsonLine::Generic(if capped {
        Claim::Partial
    } else {
        claim
    }))
}

fn generic(flat: Flat, ev: &mut Event, opts: &ParseOptions) -> Claim {
    let mut claim = Claim::Full;
    let mut time = None;
    let mut fallback_time = None;
    let mut has_message = false;
    let mut msg = None;
    for (name, value) in flat {
        match name.as_ref() {
            "@timestamp" => match json_time(&value, opts) {
                Some(t) => time = Some(t),
                None => claim = Claim::Partial,
            },
            "schema_version" | "event.original" | "event.ingested" => {}
            n if n.starts_with("logsource.") => {}
            n => {
                if (n == "timestamp" || n == "time") && fallback_time.is_none() {
                    fallback_time = json_time(&value, opts);
                }
                if n == "message" {
                    has_message = true;
                } else if n == "msg" {
                    if let Value::Str(s) = &value {
                        msg = Some(s.clone());
                    }
                }
                ev.fields.insert(name, value);
            }
        }
    }
    if let Some(t) = time.or(fallback_time) {
        ev.timestamp = t;
    }
    if let (false, Some(m)) = (has_message, msg) {
        ev.fields.insert("message", m);
    }
    ev.logsource = opts.json_logsource.clone();
    claim
}

/// Streams one JSON object into `out` under `prefix`.
struct Object<'a> {
    prefix: &'a str,
    out: &'a mut Flat,
    /// Set when [`MAX_FIELDS`] was reached and later fields were skipped.
    capped: &'a mut bool,
}

impl<'de> DeserializeSeed<'de> for Object<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Object<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut any = false;
        while let Some(key) = map.next_key_seed(Key)? {
            any = true;
            let name = if self.prefix.is_empty() {
                key.into_owned()
            } else {
                concat(&[self.prefix, ".", &key])
            };
            map.next_value_seed(Field {
                name,
                out: self.out,
                capped: self.capped,
            })?;
        }
        if !any && !self.prefix.is_empty() {
            // An empty nested object is kept as such, like the contract does.
            push(
                self.out,
                self.capped,
                self.prefix.to_owned(),
                Value::from("{}"),
            );
        }
        Ok(())
    }
}

/// A key, borrowed from the line when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// One value under a full dotted name.
struct Field<'a> {
    name: String,
    out: &'a mut Flat,
    capped: &'a mut bool,
}

fn push(out: &mut Flat, capped: &mut bool, name: String, value: Value) {
    if out.len() >= MAX_FIELDS {
        *capped = true;
    } else {
        out.push((Cow::Owned(name), value));
    }
}

impl<'de> DeserializeSeed<'de> for Field<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Field<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        push(self.out, self.capped, self.name, Value::Bool(v));
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        push(self.out, self.capped, self.name, Value::Int(v));
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        push(self.out, self.capped, self.name, Value::from(v));
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        push(self.out, self.capped, self.name, Value::Float(v));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        push(self.out, self.capped, self.name, Value::from(v));
        Ok(())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        push(self.out, self.capped, self.name, Value::Str(v));
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        push(self.out, self.capped, self.name, Value::Null);
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(match item {
                // Objects inside arrays have no dotted name of their own.
                Json::Object(_) => Value::Str(item.to_string()),
                other => to_value(other),
            });
        }
        push(self.out, self.capped, self.name, Value::List(items));
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        Object {
            prefix: &self.name,
            out: self.out,
            capped: self.capped,
        }
        .visit_map(map)
    }
}

fn to_value(j: Json) -> Value {
    match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => n.as_f64().map_or(Value::Null, Value::Float),
        },
        Json::String(s) => Value::Str(s),
        Json::Array(a) => Value::List(
            a.into_iter()
                .map(|v| match v {
                    Json::Object(_) => Value::Str(v.to_string()),
                    other => to_value(other),
                })
                .collect(),
        ),
        Json::Object(_) => Value::Str(j.to_string()),
    }
}

/// A JSON time value: RFC 3339 text (zone-less text at the configured
/// offset), epoch number, or epoch digits as text.
fn json_time(v: &Value, opts: &ParseOptions) -> Option<chrono::DateTime<chrono::Utc>> {
    match v {
        Value::Str(s) => match parse_iso(s.as_bytes(), opts.local_offset) {
            Some((t, n)) if n == s.len() => Some(t),
            _ => from_epoch_text(s),
        },
        Value::Int(i) => from_epoch(*i as f64),
        Value::Float(f) => from_epoch(*f),
        _ => None,
    }
}

fn journal(flat: Flat, ev: &mut Event) -> JsonLine {
    let mut message = String::new();
    let (mut program, mut comm) = (None, None);
    let (mut pid, mut syslog_pid) = (None, None);
    for (name, value) in flat {
        let text = match value {
            Value::Str(s) if !s.is_empty() => s,
            // Non-UTF-8 messages come as an array of byte values.
            Value::List(bytes) if name == "MESSAGE" => {
                let bytes: Vec<u8> = bytes
                    .iter()
                    .filter_map(|v| v.as_i64().and_then(|b| u8::try_from(b).ok()))
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => continue,
        };
        match name.as_ref() {
            "MESSAGE" => message = text,
            "__REALTIME_TIMESTAMP" => {
                if let Some(t) = parse_uint(&text).and_then(chrono::DateTime::from_timestamp_micros)
                {
                    ev.timestamp = t;
                }
            }
            "SYSLOG_IDENTIFIER" => program = Some(text),
            "_COMM" => comm = Some(text),
            "_PID" => pid = parse_uint(&text),
            "SYSLOG_PID" => syslog_pid = parse_uint(&text),
            "_HOSTNAME" => ev.fields.insert("host.name", text),
            "PRIORITY" => {
                if let Some(sev) = text.parse::<u8>().ok().filter(|s| *s < 8) {
                    ev.fields
                        .insert("log.syslog.severity.code", Value::Int(i64::from(sev)));
                    ev.fields
                        .insert("log.syslog.severity.name", severity_name(sev));
                    ev.fields.insert("log.level", severity_name(sev));
                }
            }
            "SYSLOG_FACILITY" => {
                if let Some(fac) = text.parse::<u8>().ok().filter(|f| *f < 24) {
                    ev.fields
                        .insert("log.syslog.facility.code", Value::Int(i64::from(fac)));
                    ev.fields
                        .insert("log.syslog.facility.name", facility_name(fac));
                }
            }
            "_SYSTEMD_UNIT" => ev.fields.insert("systemd.unit", text),
            "_TRANSPORT" => ev.fields.insert("systemd.transport", text),
            "_EXE" => ev.fields.insert("process.executable", text),
            _ => {}
        }
    }
    let program = program.or(comm);
    if let Some(p) = &program {
        ev.fields.insert("process.name", p.as_str());
    }
    if let Some(pid) = pid.or(syslog_pid) {
        ev.fields.insert("process.pid", Value::Int(pid));
    }
    JsonLine::Journal { message, program }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::LogSource;
    use chrono::{TimeZone, Utc};

    fn run(line: &str, opts: &ParseOptions) -> (Option<JsonLine>, Event) {
        let mut ev = Event::new(String::new(), Utc::now());
        let r = parse(line, &mut ev, opts);
        (r, ev)
    }

    #[test]
    fn generic_flattens_and_takes_time() {
        let opts = ParseOptions {
            json_logsource: LogSource::new(Some("windows"), Some("sysmon"), None),
            ..ParseOptions::default()
        };
        let (r, ev) = run(
            r#"{"@timestamp":"2026-03-01T10:00:00Z","EventID":1,"Image":"C:\\x.exe","user":{"name":"bob","roles":["a",{"b":1}]},"score":0.5,"ok":true,"none":null}"#,
            &opts,
        );
        assert!(matches!(r, Some(JsonLine::Generic(Claim::Full))));
        assert_eq!(
            ev.timestamp,
            Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0)
                .single()
                .expect("t")
        );
        assert_eq!(ev.fields.get("EventID"), Some(&Value::Int(1)));
        assert_eq!(ev.fields.get_str("Image"), Some("C:\\x.exe"));
        assert_eq!(ev.fields.get_str("user.name"), Some("bob"));
        assert_eq!(
            ev.fields.get("user.roles"),
            Some(&Value::List(vec![
                Value::from("a"),
                Value::from(r#"{"b":1}"#)
            ]))
        );
        assert_eq!(ev.fields.get("score"), Some(&Value::Float(0.5)));
        assert_eq!(ev.fields.get("ok"), Some(&Value::Bool(true)));
        assert_eq!(ev.fields.get("none"), Some(&Value::Null));
        assert!(ev.fields.get("@timestamp").is_none());
        assert_eq!(ev.logsource.product.as_deref(), Some("windows"));
        assert_eq!(ev.logsource.service.as_deref(), Some("sysmon"));
    }

    #[test]
    fn time_fallbacks_and_reserved_keys() {
        let o = ParseOptions::default();
        let (_, ev) = run(
            r#"{"time":1709287200,"msg":"hi","schema_version":7,"logsource":{"product":"x"},"event":{"original":"fake","kind":"event"}}"#,
            &o,
        );
        assert_eq!(
            ev.timestamp,
            Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0)
                .single()
                .expect("t")
        );
        assert_eq!(ev.fields.get_str("message"), Some("hi"));
        assert!(ev.fields.get("schema_version").is_none());
        assert!(ev.fields.get("logsource.product").is_none());
        assert!(ev.fields.get("event.original").is_none());
        assert_eq!(ev.fields.get_str("event.kind"), Some("event"));
        assert_eq!(ev.logsource, LogSource::default());
        let (r, _) = run(
            r#"{"@timestamp":"not a time","timestamp":"1709287200000"}"#,
            &o,
        );
        assert!(matches!(r, Some(JsonLine::Generic(Claim::Partial))));
    }

    #[test]
    fn journald_entries() {
        let o = ParseOptions::default();
        let (r, ev) = run(
            r#"{"__REALTIME_TIMESTAMP":"1709287200123456","_HOSTNAME":"web1","SYSLOG_IDENTIFIER":"sshd","_PID":"812","PRIORITY":"6","SYSLOG_FACILITY":"4","_SYSTEMD_UNIT":"ssh.service","MESSAGE":"Accepted publickey for bob from 10.0.0.1 port 22 ssh2"}"#,
            &o,
        );
        let Some(JsonLine::Journal { message, program }) = r else {
            panic!("journal expected");
        };
        assert_eq!(program.as_deref(), Some("sshd"));
        assert!(message.starts_with("Accepted publickey"));
        assert_eq!(ev.fields.get_str("host.name"), Some("web1"));
        assert_eq!(ev.fields.get("process.pid"), Some(&Value::Int(812)));
        assert_eq!(ev.fields.get_str("log.syslog.facility.name"), Some("auth"));
        assert_eq!(ev.fields.get_str("systemd.unit"), Some("ssh.service"));
        assert_eq!(ev.timestamp.timestamp_micros(), 1_709_287_200_123_456);
        let (r, _) = run(r#"{"SYSLOG_IDENTIFIER":"x","MESSAGE":[104,105,255]}"#, &o);
        let Some(JsonLine::Journal { message, .. }) = r else {
            panic!("journal expected");
        };
        assert_eq!(message, "hi\u{fffd}");
    }

    #[test]
    fn not_objects() {
        let o = ParseOptions::default();
        for line in ["{", "{\"a\":", "[1,2]", "{} trailing", ""] {
            assert!(run(line, &o).0.is_none(), "{line}");
        }
    }
}
