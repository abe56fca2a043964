//! One `events` row, from a normalized [`Event`].
//!
//! The ECS fields a responder filters on become typed columns
//! (`source.ip` → `source_ip`, `user.name` → `user_name`, ...). Every other
//! field goes to the `fields` map as text, and so does a promoted field whose
//! value does not fit its column (a `source.ip` that is a host name, a port
//! of 70000): nothing in the event is dropped.

use qalqan_core::event::Value;
use qalqan_core::Event;
use serde::{Deserialize, Serialize};

use super::ip;

/// A row of `events`, in RowBinary-compatible form for both dialects (see
/// [`super::ddl`]). Field order is the table's stored column order.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct EventRow {
    /// `@timestamp`, microseconds since the epoch (UTC).
    pub timestamp: i64,
    /// `event.ingested`, microseconds since the epoch (UTC).
    pub ingested: i64,
    /// From the Kafka topic, never from the event body.
    pub agency: String,
    /// Stable across redelivery: see [`event_id_for`].
    pub event_id: String,
    pub observer_name: String,
    /// 0 when the event has none.
    pub observer_sequence: u64,
    pub host_name: String,
    /// IPv4-mapped IPv6 bytes; `::` when absent.
    pub source_ip: [u8; 16],
    /// 0 when absent.
    pub source_port: u16,
    pub destination_ip: [u8; 16],
    pub destination_port: u16,
    pub user_name: String,
    pub process_name: String,
    pub process_pid: u32,
    pub process_command_line: String,
    pub event_dataset: String,
    pub event_category: Vec<String>,
    pub event_action: String,
    pub event_outcome: String,
    pub url_original: String,
    pub http_request_method: String,
    pub http_response_status_code: u16,
    pub user_agent_original: String,
    pub logsource_product: String,
    pub logsource_service: String,
    pub logsource_category: String,
    pub message: String,
    /// `event.original`: the raw line, always present.
    pub original: String,
    pub tags: Vec<String>,
    /// Every other field as (dotted ECS name, text).
    pub fields: Vec<(String, String)>,
}

/// The ECS names that have a column of their own.
const PROMOTED: &[&str] = &[
    "observer.name",
    "observer.sequence",
    "host.name",
    "source.ip",
    "source.port",
    "destination.ip",
    "destination.port",
    "user.name",
    "process.name",
    "process.pid",
    "process.command_line",
    "event.dataset",
    "event.category",
    "event.action",
    "event.outcome",
    "url.original",
    "http.request.method",
    "http.response.status_code",
    "user_agent.original",
    "message",
    "tags",
];

/// The stable id of an event: from its collector's name and sequence number
/// (which never repeat, see the collector's `sequence` module) when it has
/// them, otherwise from where it was read in Kafka. A redelivered event gets
/// the same id, so `events` (ReplacingMergeTree) collapses the duplicate,
/// and alert evidence can point at the row.
pub fn event_id_for(
    event: &Event,
    agency: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> String {
    let observer = event.get_str("observer.name");
    let sequence = event
        .fields
        .get("observer.sequence")
        .and_then(Value::as_i64);
    match (observer, sequence) {
        (Some(name), Some(seq)) if !name.is_empty() && seq > 0 => qalqan_core::alert::event_id(&[
            b"obs",
            agency.as_bytes(),
            name.as_bytes(),
            &seq.to_le_bytes(),
        ]),
        _ => qalqan_core::alert::event_id(&[
            b"kafka",
            topic.as_bytes(),
            &partition.to_le_bytes(),
            &offset.to_le_bytes(),
        ]),
    }
}

/// A value as text for the `fields` map: strings as they are, lists as JSON.
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Str(s) => Some(s.clone()),
        Value::List(items) => Some(json_list(items)),
        other => Some(other.to_string()),
    }
}

fn json_list(items: &[Value]) -> String {
    fn to_json(v: &Value) -> serde_json::Value {
        match v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => s.as_str().into(),
            Value::List(l) => serde_json::Value::Array(l.iter().map(to_json).collect()),
        }
    }
    serde_json::Value::Array(items.iter().map(to_json).collect()).to_string()
}

fn int_in<T: TryFrom<i64>>(v: &Value) -> Option<T> {
    v.as_i64().and_then(|i| T::try_from(i).ok())
}

fn string_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Str(s) => Some(vec![s.clone()]),
        Value::List(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

impl EventRow {
    /// The row for `event`, read from `agency`'s topic, with id `event_id`
    /// (see [`event_id_for`]).
    pub fn from_event(event: &Event, agency: &str, event_id: String) -> EventRow {
        let mut row = EventRow {
            timestamp: event.timestamp.timestamp_micros(),
            ingested: event.ingested.timestamp_micros(),
            agency: agency.to_owned(),
            event_id,
            observer_name: String::new(),
            observer_sequence: 0,
            host_name: String::new(),
            source_ip: ip::UNSPECIFIED,
            source_port: 0,
            destination_ip: ip::UNSPECIFIED,
            destination_port: 0,
            user_name: String::new(),
            process_name: String::new(),
            process_pid: 0,
            process_command_line: String::new(),
            event_dataset: String::new(),
            event_category: Vec::new(),
            event_action: String::new(),
            event_outcome: String::new(),
            url_original: String::new(),
            http_request_method: String::new(),
            http_response_status_code: 0,
            user_agent_original: String::new(),
            logsource_product: event.logsource.product.clone().unwrap_or_default(),
            logsource_service: event.logsource.service.clone().unwrap_or_default(),
            logsource_category: event.logsource.category.clone().unwrap_or_default(),
            message: String::new(),
            original: event.original.clone(),
            tags: Vec::new(),
            fields: Vec::with_capacity(event.fields.len()),
        };
        for (name, value) in event.fields.iter() {
            let stored = PROMOTED.contains(&name) && row.promote(name, value);
            if stored {
                continue;
            }
            // The agency the detector set from the topic is the column; a
            // different claim in the body is kept as evidence of spoofing.
            if name == "organization.id" && value.as_str() == Some(agency) {
                continue;
            }
            if let Some(text) = value_text(value) {
                row.fields.push((name.to_owned(), text));
            }
        }
        row
    }

    /// Puts a promoted field into its column; false when the value does not
    /// fit (it then goes to `fields`).
    fn promote(&mut self, name: &str, value: &Value) -> bool {
        let text = || value.as_str().map(str::to_owned);
        macro_rules! set {
            ($slot:expr, $v:expr) => {
                match $v {
                    Some(v) => {
                        $slot = v;
                        true
                    }
                    None => false,
                }
            };
        }
        match name {
            "observer.name" => set!(self.observer_name, text()),
            "observer.sequence" => set!(self.observer_sequence, int_in::<u64>(value)),
            "host.name" => set!(self.host_name, text()),
            "source.ip" => set!(self.source_ip, value.as_str().and_then(ip::parse)),
            "source.port" => set!(self.source_port, int_in::<u16>(value)),
            "destination.ip" => set!(self.destination_ip, value.as_str().and_then(ip::parse)),
            "destination.port" => set!(self.destination_port, int_in::<u16>(value)),
            "user.name" => set!(self.user_name, text()),
            "process.name" => set!(self.process_name, text()),
            "process.pid" => set!(self.process_pid, int_in::<u32>(value)),
            "process.command_line" => set!(self.process_command_line, text()),
            "event.dataset" => set!(self.event_dataset, text()),
            "event.category" => set!(self.event_category, string_list(value)),
            "event.action" => set!(self.event_action, text()),
            "event.outcome" => set!(self.event_outcome, text()),
            "url.original" => set!(self.url_original, text()),
            "http.request.method" => set!(self.http_request_method, text()),
            "http.response.status_code" => {
                set!(self.http_response_status_code, int_in::<u16>(value))
            }
            "user_agent.original" => set!(self.user_agent_original, text()),
            "message" => set!(self.message, text()),
            "tags" => set!(self.tags, string_list(value)),
            _ => false,
        }
    }

    /// The value of `name` in the `fields` map.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use qalqan_core::event::{tags, LogSource};

    fn sshd_event() -> Event {
        let t = Utc
            .timestamp_opt(1_772_359_200, 123_456_000)
            .single()
            .expect("valid time");
        let mut ev = Event::new(
            "Mar  1 10:00:00 web1 sshd[4242]: Failed password for invalid user admin from 203.0.113.7 port 50022 ssh2".into(),
            t + chrono::Duration::milliseconds(40),
        );
        ev.timestamp = t;
        ev.logsource = LogSource::new(Some("linux"), Some("sshd"), Some("authentication"));
        ev.fields.insert("observer.name", "col-mof-1");
        ev.fields.insert("observer.sequence", 41u64);
        ev.fields.insert("host.name", "web1");
        ev.fields.insert("source.ip", "203.0.113.7");
        ev.fields.insert("source.port", 50022u16);
        ev.fields.insert("user.name", "admin");
        ev.fields.insert("process.name", "sshd");
        ev.fields.insert("process.pid", 4242u32);
        ev.fields
            .insert("event.category", Value::List(vec!["authentication".into()]));
        ev.fields.insert("event.outcome", "failure");
        ev.fields.insert("event.dataset", "sshd");
        ev.fields.insert("organization.id", "mof");
        ev.fields.insert("user.invalid", true);
        ev.add_tag(tags::TRUNCATED);
        ev
    }

    #[test]
    fn promotes_ecs_fields_to_columns() {
        let ev = sshd_event();
        let row = EventRow::from_event(&ev, "mof", "abc".into());
        assert_eq!(row.timestamp, 1_772_359_200_123_456);
        assert_eq!(row.ingested, row.timestamp + 40_000);
        assert_eq!(row.agency, "mof");
        assert_eq!(row.observer_name, "col-mof-1");
        assert_eq!(row.observer_sequence, 41);
        assert_eq!(ip::to_text(&row.source_ip), "203.0.113.7");
        assert_eq!(row.source_port, 50022);
        assert_eq!(row.destination_ip, ip::UNSPECIFIED);
        assert_eq!(row.user_name, "admin");
        assert_eq!(row.process_pid, 4242);
        assert_eq!(row.event_category, vec!["authentication".to_string()]);
        assert_eq!(row.event_outcome, "failure");
        assert_eq!(row.logsource_service, "sshd");
        assert_eq!(row.tags, vec![tags::TRUNCATED.to_string()]);
        assert_eq!(row.original, ev.original);
        // Not promoted: kept as text. The topic's agency is not repeated.
        assert_eq!(row.field("user.invalid"), Some("true"));
        assert_eq!(row.field("organization.id"), None);
        assert_eq!(row.field("source.ip"), None);
    }

    #[test]
    fn values_that_do_not_fit_stay_in_fields() {
        let mut ev = sshd_event();
        ev.fields.insert("source.ip", "scanner.example.net");
        ev.fields.insert("destination.port", Value::Int(70_000));
        ev.fields.insert("organization.id", "mvd");
        ev.fields
            .insert("dns.answers", Value::List(vec!["a".into(), Value::Int(2)]));
        ev.fields.insert("empty", Value::Null);
        let row = EventRow::from_event(&ev, "mof", "abc".into());
        assert_eq!(row.source_ip, ip::UNSPECIFIED);
        assert_eq!(row.field("source.ip"), Some("scanner.example.net"));
        assert_eq!(row.field("destination.port"), Some("70000"));
        assert_eq!(
            row.field("organization.id"),
            Some("mvd"),
            "spoofed claim kept"
        );
        assert_eq!(row.field("dns.answers"), Some(r#"["a",2]"#));
        assert_eq!(row.field("empty"), None);
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let ev = sshd_event();
        let a = event_id_for(&ev, "mof", "qalqan.events.mof", 3, 100);
        assert_eq!(a, event_id_for(&ev, "mof", "qalqan.events.mof", 4, 999));
        assert_ne!(a, event_id_for(&ev, "mvd", "qalqan.events.mvd", 3, 100));
        let bare = Event::new("x".into(), Utc::now());
        let b = event_id_for(&bare, "mof", "qalqan.raw.mof", 3, 100);
        assert_eq!(b, event_id_for(&bare, "mof", "qalqan.raw.mof", 3, 100));
        assert_ne!(b, event_id_for(&bare, "mof", "qalqan.raw.mof", 3, 101));
    }

    #[test]
    fn row_columns_match_the_ddl() {
        use clickhouse::Row;
        assert_eq!(
            EventRow::COLUMN_NAMES.to_vec(),
            super::super::ddl::stored_columns(super::super::ddl::EVENT_COLUMNS)
        );
    }
}
