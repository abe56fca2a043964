//! The alert record: one per rule firing, on `qalqan.alerts`, in ClickHouse
//! `alerts`, in the standalone JSON-lines file.
//!
//! The id is deterministic — a hash of rule id, group key and window start —
//! so a replay after a crash or a rebalance produces the same ids, and
//! ClickHouse (`ReplacingMergeTree` by id) collapses the duplicates.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::SCHEMA_VERSION;

/// How many raw lines an alert carries at most (first and last of the window).
pub const MAX_EVIDENCE: usize = 4;

/// The rule that fired, with what the SigmaHQ Detection Rule License asks us
/// to credit (author) and what analysts triage by (level, tags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RuleInfo {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// informational, low, medium, high, critical.
    pub level: String,
    /// ATT&CK and other Sigma tags, as written in the rule (`attack.t1110.001`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// `detection`, or the correlation type (`event_count`, `temporal_ordered`, ...).
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub falsepositives: Vec<String>,
}

/// The entities an analyst pivots on, pulled from the events that fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Entities {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

impl Entities {
    /// Adds the entity values found in `event` (bounded to a few each).
    pub fn absorb(&mut self, event: &crate::Event) {
        const MAX_EACH: usize = 16;
        let add = |list: &mut Vec<String>, v: Option<&str>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                if list.len() < MAX_EACH && !list.iter().any(|x| x == v) {
                    list.push(v.to_owned());
                }
            }
        };
        add(&mut self.source_ips, event.get_str("source.ip"));
        add(&mut self.users, event.get_str("user.name"));
        add(&mut self.hosts, event.get_str("host.name"));
        add(&mut self.urls, event.get_str("url.original"));
    }
}

/// One raw line that contributed to the alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub event_id: String,
    #[serde(with = "ts_micros")]
    pub timestamp: DateTime<Utc>,
    pub original: String,
}

/// An alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub schema_version: u32,
    /// Deterministic id: see [`alert_id`].
    pub id: String,
    pub rule: RuleInfo,
    /// From the Kafka topic the events came in on, never from their bodies.
    pub agency: String,
    /// Values of the correlation's group-by fields (empty for single events).
    #[serde(default)]
    pub group: BTreeMap<String, String>,
    #[serde(default)]
    pub entities: Entities,
    #[serde(with = "ts_micros")]
    pub window_start: DateTime<Utc>,
    #[serde(with = "ts_micros")]
    pub window_end: DateTime<Utc>,
    /// Events (or correlated rule matches) in the window.
    pub count: u64,
    /// Aggregate for value_sum/avg/percentile/count correlations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Alerts for this rule and key silenced since the previous one was sent.
    #[serde(default)]
    pub suppressed: u64,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    /// When the detector produced it (not part of the id).
    #[serde(with = "ts_micros")]
    pub created: DateTime<Utc>,
}

impl Alert {
    pub fn new(
        rule: RuleInfo,
        agency: &str,
        window_start: DateTime<Utc>,
        window_end: DateTime<Utc>,
    ) -> Self {
        let mut alert = Alert {
            schema_version: SCHEMA_VERSION,
            id: String::new(),
            rule,
            agency: agency.to_owned(),
            group: BTreeMap::new(),
            entities: Entities::default(),
            window_start,
            window_end,
            count: 1,
            value: None,
            suppressed: 0,
            evidence: Vec::new(),
            created: crate::event::now_micros(),
        };
        alert.refresh_id();
        alert
    }

    /// Recomputes the id after `group`, the agency or the window changed.
    /// The agency is part of the key: the same rule firing for the same
    /// address in two agencies is two alerts.
    pub fn refresh_id(&mut self) {
        let mut key = self.group.clone();
        key.insert("\u{0}agency".into(), self.agency.clone());
        self.id = alert_id(&self.rule.id, &key, &self.window_start);
    }

    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// The deterministic alert id: 128-bit xxh3 of rule id, the sorted group key
/// and the window start in microseconds, as 32 hex digits.
pub fn alert_id(
    rule_id: &str,
    group: &BTreeMap<String, String>,
    window_start: &DateTime<Utc>,
) -> String {
    let mut buf = Vec::with_capacity(128);
    buf.extend_from_slice(rule_id.as_bytes());
    for (k, v) in group {
        buf.push(0x1f);
        buf.extend_from_slice(k.as_bytes());
        buf.push(0x1e);
        buf.extend_from_slice(v.as_bytes());
    }
    buf.push(0x1d);
    buf.extend_from_slice(&window_start.timestamp_micros().to_le_bytes());
    hex(&xxhash_rust::xxh3::xxh3_128(&buf).to_be_bytes())
}

/// A stable id for an event from where it came from (collector name and
/// sequence, or topic/partition/offset), so evidence can point at it.
pub fn event_id(parts: &[&[u8]]) -> String {
    event_id_text(parts).as_str().to_owned()
}

/// [`event_id`] held on the stack: the collector stamps one on every
/// event, and the two allocations of the `String` form (the hashed bytes
/// and the text) were among the event's dearest steps after parsing.
pub fn event_id_text(parts: &[&[u8]]) -> EventId {
    let total: usize = parts.iter().map(|p| p.len() + 1).sum();
    let mut stack = [0u8; 128];
    let mut heap = Vec::new();
    let buf: &mut [u8] = match stack.get_mut(..total) {
        Some(b) => b,
        None => {
            heap.resize(total, 0);
            &mut heap
        }
    };
    let mut at = 0;
    for p in parts {
        buf[at..at + p.len()].copy_from_slice(p);
        buf[at + p.len()] = 0x1f;
        at += p.len() + 1;
    }
    let hash = xxhash_rust::xxh3::xxh3_64(buf);
    let mut text = [0u8; 16];
    for (pair, &b) in text.chunks_exact_mut(2).zip(&hash.to_be_bytes()) {
        pair.copy_from_slice(&hex_pair(b));
    }
    EventId(text)
}

/// An event id's text (16 lower-case hex digits), see [`event_id_text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventId([u8; 16]);

impl EventId {
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Lower-case hex of `bytes`, most significant first (what `{:0Nx}` prints
/// for the integer they encode), without the formatting machinery: the
/// collector stamps an id on every event.
fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.extend(hex_pair(b).map(char::from));
    }
    out
}

/// The two lower-case hex digits of `b`, most significant first.
fn hex_pair(b: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0x0f)]]
}

/// Serde for timestamps as RFC 3339 with microseconds, matching events.
pub mod ts_micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::event::format_ts(ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn id_depends_on_rule_group_and_window_only() {
        let t = Utc
            .timestamp_opt(1_700_000_000, 0)
            .single()
            .unwrap_or_default();
        let mut g = BTreeMap::new();
        g.insert("source.ip".to_string(), "10.0.0.1".to_string());
        let a = alert_id("r1", &g, &t);
        assert_eq!(a, alert_id("r1", &g, &t));
        assert_eq!(a.len(), 32);
        assert_ne!(a, alert_id("r2", &g, &t));
        assert_ne!(a, alert_id("r1", &BTreeMap::new(), &t));
        assert_ne!(a, alert_id("r1", &g, &(t + chrono::Duration::seconds(1))));
    }

    #[test]
    fn ids_print_as_the_formatter_did_so_stored_ids_stay_valid() {
        for v in [0u64, 1, 0xff, 0x0123_4567_89ab_cdef, u64::MAX, 1 << 63] {
            assert_eq!(hex(&v.to_be_bytes()), format!("{v:016x}"));
            let w = (u128::from(v) << 64) | u128::from(v.rotate_left(7));
            assert_eq!(hex(&w.to_be_bytes()), format!("{w:032x}"));
        }
        let id = event_id(&[b"col-1", b"42"]);
        let expected = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(b"col-1\x1f42\x1f"));
        assert_eq!(id, expected);
        // Parts too long for the stack buffer hash the same bytes.
        let long = vec![b'n'; 300];
        let mut joined = long.clone();
        joined.extend_from_slice(b"\x1f7\x1f");
        assert_eq!(
            event_id(&[&long, b"7"]),
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&joined))
        );
    }

    #[test]
    fn alert_json_round_trip() {
        let t = Utc
            .timestamp_opt(1_700_000_000, 5_000)
            .single()
            .unwrap_or_default();
        let mut a = Alert::new(
            RuleInfo {
                id: "x".into(),
                title: "X".into(),
                level: "high".into(),
                kind: "detection".into(),
                ..Default::default()
            },
            "mof",
            t,
            t,
        );
        a.group.insert("user.name".into(), "root".into());
        a.refresh_id();
        let back: Alert = serde_json::from_str(&a.to_json_string()).expect("decodes");
        assert_eq!(back, a);
    }
}
