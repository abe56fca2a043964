//! The signal: one base-rule match that feeds one correlation, as stage 1
//! puts it on Kafka `qalqan.signals` and stage 2 consumes it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use qalqan_core::alert::{ts_micros, Entities};
use qalqan_core::Event;

/// The entities of the one event behind a signal (each at most one value).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalEntities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl SignalEntities {
    /// The ECS fields an analyst pivots on: `source.ip`, `user.name`,
    /// `host.name`, `url.original` (the same ones [`Entities::absorb`] reads).
    pub fn of(event: &Event) -> Self {
        let get = |name: &str| {
            event
                .get_str(name)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        SignalEntities {
            source_ip: get("source.ip"),
            user: get("user.name"),
            host: get("host.name"),
            url: get("url.original"),
        }
    }

    /// Adds these entities to an alert's, keeping its bound and order.
    pub fn add_to(&self, entities: &mut Entities) {
        const MAX_EACH: usize = 16;
        let add = |list: &mut Vec<String>, v: &Option<String>| {
            if let Some(v) = v {
                if list.len() < MAX_EACH && !list.iter().any(|x| x == v) {
                    list.push(v.clone());
                }
            }
        };
        add(&mut entities.source_ips, &self.source_ip);
        add(&mut entities.users, &self.user);
        add(&mut entities.hosts, &self.host);
        add(&mut entities.urls, &self.url);
    }
}

/// One match of a referenced rule, addressed to one correlation.
///
/// Stage 1 produces signals with [`crate::CorrelationSet::signals`]; the
/// Kafka message key is [`Signal::signal_key`], so every signal that can
/// affect one group's state lands in the same partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// The correlation rule this signal feeds (its id).
    pub correlation: String,
    /// The outermost correlation of the chain, when `correlation` is an inner
    /// one referenced by another correlation. A whole chain is evaluated in
    /// the partition of its outermost group key (see the crate docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// The referenced rule ids this event matched (usually one).
    pub rules: Vec<String>,
    /// From the Kafka topic the event came in on, never from its body.
    pub agency: String,
    /// Values of the correlation's group-by names (after aliases), in
    /// group-by order.
    #[serde(default)]
    pub group: Vec<String>,
    /// Values of the outermost correlation's group-by, when `root` is set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_group: Vec<String>,
    /// Event time.
    #[serde(with = "ts_micros")]
    pub timestamp: DateTime<Utc>,
    /// Position of the event in its source (Kafka offset, collector
    /// sequence); orders events with equal timestamps.
    #[serde(default)]
    pub ordinal: u64,
    pub event_id: String,
    /// value_count: the value (several fields joined by U+001F).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// value_sum, value_avg, value_percentile: the field as a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<f64>,
    #[serde(default)]
    pub entities: SignalEntities,
    /// The raw line (`event.original`), possibly shortened; for evidence.
    pub original: String,
}

impl Signal {
    /// The partition key: outermost correlation id, agency and its group
    /// values. Every signal that touches one correlation group key shares it.
    pub fn signal_key(&self) -> String {
        let (id, values) = match &self.root {
            Some(root) => (root.as_str(), &self.root_group),
            None => (self.correlation.as_str(), &self.group),
        };
        let len =
            id.len() + self.agency.len() + 1 + values.iter().map(|v| v.len() + 1).sum::<usize>();
        let mut key = String::with_capacity(len);
        key.push_str(id);
        key.push('\u{1e}');
        key.push_str(&self.agency);
        for v in values {
            key.push('\u{1f}');
            key.push_str(v);
        }
        key
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample() -> Signal {
        Signal {
            correlation: "c1".into(),
            root: None,
            rules: vec!["r1".into()],
            agency: "mof".into(),
            group: vec!["10.0.0.1".into()],
            root_group: vec![],
            timestamp: Utc
                .timestamp_opt(1_700_000_000, 123_000)
                .single()
                .expect("ts"),
            ordinal: 7,
            event_id: "e1".into(),
            value: None,
            number: Some(12.5),
            entities: SignalEntities {
                source_ip: Some("10.0.0.1".into()),
                ..Default::default()
            },
            original: "raw line".into(),
        }
    }

    #[test]
    fn json_round_trip() {
        let s = sample();
        let back = Signal::from_json(s.to_json().expect("json").as_bytes()).expect("decodes");
        assert_eq!(back, s);
    }

    #[test]
    fn key_is_the_outermost_group() {
        let mut s = sample();
        let own = s.signal_key();
        assert!(own.starts_with("c1"));
        s.root = Some("outer".into());
        s.root_group = vec!["10.0.0.1".into()];
        let outer = s.signal_key();
        assert!(outer.starts_with("outer"));
        assert_ne!(own, outer);
        s.agency = "moh".into();
        assert_ne!(outer, s.signal_key(), "agency is part of the key");
    }
}
