//! JSON lines: one object per line.
//!
//! **Generic JSON** is flattened into dotted field names the way the event
//! contract does it (`{"source":{"ip":"…"}}` → `source.ip`; arrays kept as
//! lists, objects inside arrays kept as their JSON text). The event time is
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

use serde_json::{Map, Value as Json};

use crate::event::{Event, Value};

use super::syslog::{facility_name, severity_name};
use super::text::parse_uint;
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

/// Parses a line that starts with `{`; `None` when it is not a JSON object.
pub(crate) fn parse(line: &str, ev: &mut Event, opts: &ParseOptions) -> Option<JsonLine> {
    let Json::Object(map) = serde_json::from_str::<Json>(line).ok()? else {
        return None;
    };
    if map.contains_key("MESSAGE")
        && (map.contains_key("__REALTIME_TIMESTAMP") || map.contains_key("SYSLOG_IDENTIFIER"))
    {
        return Some(journal(map, ev));
    }
    Some(JsonLine::Generic(generic(map, ev, opts)))
}

fn generic(mut map: Map<String, Json>, ev: &mut Event, opts: &ParseOptions) -> Claim {
    let mut claim = Claim::Full;
    let mut time_found = false;
    if let Some(ts) = map.remove("@timestamp") {
        match json_time(&ts, opts) {
            Some(t) => {
                ev.timestamp = t;
                time_found = true;
            }
            None => claim = Claim::Partial,
        }
    }
    if !time_found {
        for key in ["timestamp", "time"] {
            if let Some(t) = map.get(key).and_then(|v| json_time(v, opts)) {
                ev.timestamp = t;
                break;
            }
        }
    }
    for key in ["schema_version", "event.original", "event.ingested"] {
        map.remove(key);
    }
    if matches!(map.get("logsource"), Some(Json::Object(_))) {
        map.remove("logsource");
    }
    let message = match (map.get("message"), map.get("msg")) {
        (Some(_), _) => None,
        (None, Some(Json::String(m))) => Some(m.clone()),
        _ => None,
    };
    for (k, v) in map {
        if !flatten(Cow::Owned(k), v, ev) {
            claim = Claim::Partial;
            break;
        }
    }
    // Nested `event.original`/`event.ingested` would shadow the typed members.
    ev.fields.remove("event.original");
    ev.fields.remove("event.ingested");
    if let Some(m) = message {
        ev.fields.insert("message", m);
    }
    ev.logsource = opts.json_logsource.clone();
    claim
}

/// Copies `value` under `name`; false once the event has [`MAX_FIELDS`].
fn flatten(name: Cow<'static, str>, value: Json, ev: &mut Event) -> bool {
    match value {
        Json::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                if !flatten(Cow::Owned(format!("{name}.{k}")), v, ev) {
                    return false;
                }
            }
            true
        }
        _ if ev.fields.len() >= MAX_FIELDS => false,
        other => {
            ev.fields.insert(name, to_value(other));
            true
        }
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
fn json_time(v: &Json, opts: &ParseOptions) -> Option<chrono::DateTime<chrono::Utc>> {
    match v {
        Json::String(s) => match parse_iso(s.as_bytes(), opts.local_offset) {
            Some((t, n)) if n == s.len() => Some(t),
            _ => from_epoch_text(s),
        },
        Json::Number(n) => n.as_f64().and_then(from_epoch),
        _ => None,
    }
}

fn journal(mut map: Map<String, Json>, ev: &mut Event) -> JsonLine {
    let message = match map.remove("MESSAGE") {
        Some(Json::String(s)) => s,
        // Non-UTF-8 messages come as an array of byte values.
        Some(Json::Array(a)) => {
            let bytes: Vec<u8> = a
                .iter()
                .filter_map(|v| v.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let text = |map: &mut Map<String, Json>, k: &str| match map.remove(k) {
        Some(Json::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    };
    if let Some(t) = text(&mut map, "__REALTIME_TIMESTAMP")
        .and_then(|us| parse_uint(&us))
        .and_then(chrono::DateTime::from_timestamp_micros)
    {
        ev.timestamp = t;
    }
    let program = text(&mut map, "SYSLOG_IDENTIFIER").or_else(|| text(&mut map, "_COMM"));
    if let Some(p) = &program {
        ev.fields.insert("process.name", p.as_str());
    }
    if let Some(pid) = text(&mut map, "_PID")
        .or_else(|| text(&mut map, "SYSLOG_PID"))
        .and_then(|p| parse_uint(&p))
    {
        ev.fields.insert("process.pid", Value::Int(pid));
    }
    if let Some(h) = text(&mut map, "_HOSTNAME") {
        ev.fields.insert("host.name", h);
    }
    let severity = text(&mut map, "PRIORITY").and_then(|p| p.parse::<u8>().ok());
    if let Some(sev) = severity.filter(|s| *s < 8) {
        ev.fields
            .insert("log.syslog.severity.code", Value::Int(i64::from(sev)));
        ev.fields
            .insert("log.syslog.severity.name", severity_name(sev));
        ev.fields.insert("log.level", severity_name(sev));
    }
    if let Some(fac) = text(&mut map, "SYSLOG_FACILITY").and_then(|p| p.parse::<u8>().ok()) {
        if fac < 24 {
            ev.fields
                .insert("log.syslog.facility.code", Value::Int(i64::from(fac)));
            ev.fields
                .insert("log.syslog.facility.name", facility_name(fac));
        }
    }
    for (key, field) in [
        ("_SYSTEMD_UNIT", "systemd.unit"),
        ("_TRANSPORT", "systemd.transport"),
        ("_EXE", "process.executable"),
    ] {
        if let Some(v) = text(&mut map, key) {
            ev.fields.insert(field, v);
        }
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
