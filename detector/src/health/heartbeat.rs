//! Collector heartbeats: how the centre learns an agency went dark.
//!
//! The centre usually cannot scrape a collector inside an agency network,
//! so each collector sends a heartbeat event (`event.dataset =
//! "qalqan.heartbeat"`) through Kafka. This module keeps the last heartbeat
//! of every collector, exposes it for metrics, and raises one alert per
//! silence when an agency's collectors have all been quiet for longer than
//! the configured limit.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use qalqan_core::alert::{Alert, RuleInfo};
use qalqan_core::Event;

/// `event.dataset` of heartbeat events.
pub const HEARTBEAT_DATASET: &str = "qalqan.heartbeat";
/// Id of the built-in rule that fires when an agency falls silent.
pub const SILENT_AGENCY_RULE_ID: &str = "6c0f5a52-8e0b-4c1e-9d59-2f3a1b7c9e01";

/// The last heartbeat of one collector.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorHealth {
    pub agency: String,
    pub collector: String,
    /// When the detector received the heartbeat (its clock, not the collector's).
    pub last_seen: DateTime<Utc>,
    pub version: String,
    pub uptime_seconds: f64,
    pub last_sequence: u64,
    /// The collector's counters as reported (`qalqan.collector.*` numbers).
    pub counters: BTreeMap<String, f64>,
}

/// Whether `event` is a collector heartbeat.
pub fn is_heartbeat(event: &Event) -> bool {
    event.get_str("event.dataset") == Some(HEARTBEAT_DATASET)
}

/// Tracks heartbeats and detects silent agencies.
#[derive(Debug)]
pub struct HeartbeatTracker {
    silence_after: Duration,
    collectors: HashMap<(String, String), CollectorHealth>,
    /// Agencies already alerted for their current silence (cleared on a new heartbeat).
    alerted: HashMap<String, DateTime<Utc>>,
}

impl HeartbeatTracker {
    pub fn new(silence_after: std::time::Duration) -> Self {
        HeartbeatTracker {
            silence_after: Duration::from_std(silence_after).unwrap_or(Duration::minutes(5)),
            collectors: HashMap::new(),
            alerted: HashMap::new(),
        }
    }

    /// Records a heartbeat from `agency` (taken from the topic) received at `now`.
    pub fn observe(
        &mut self,
        agency: &str,
        event: &Event,
        now: DateTime<Utc>,
    ) -> Option<&CollectorHealth> {
        let collector = event.get_str("observer.name")?.to_owned();
        let mut counters = BTreeMap::new();
        for (name, value) in event.fields.iter() {
            if let Some(key) = name.strip_prefix("qalqan.collector.") {
                if let Some(n) = value.as_f64() {
                    counters.insert(key.to_owned(), n);
                }
            }
        }
        let health = CollectorHealth {
            agency: agency.to_owned(),
            collector: collector.clone(),
            last_seen: now,
            version: event
                .get_str("observer.version")
                .or_else(|| event.get_str("qalqan.collector.version"))
                .unwrap_or("")
                .to_owned(),
            uptime_seconds: counters.get("uptime_seconds").copied().unwrap_or(0.0),
            last_sequence: counters.get("last_sequence").copied().unwrap_or(0.0) as u64,
            counters,
        };
        self.alerted.remove(agency);
        let key = (agency.to_owned(), collector);
        self.collectors.insert(key.clone(), health);
        self.collectors.get(&key)
    }

    pub fn collectors(&self) -> impl Iterator<Item = &CollectorHealth> {
        self.collectors.values()
    }

    /// Agencies whose every collector has been silent longer than the limit,
    /// with an alert for each that has not been alerted for this silence yet.
    pub fn check(&mut self, now: DateTime<Utc>) -> Vec<Alert> {
        let mut last_by_agency: HashMap<&str, DateTime<Utc>> = HashMap::new();
        for h in self.collectors.values() {
            let e = last_by_agency
                .entry(h.agency.as_str())
                .or_insert(h.last_seen);
            if h.last_seen > *e {
                *e = h.last_seen;
            }
        }
        let mut alerts = Vec::new();
        for (agency, last) in last_by_agency {
            if now - last <= self.silence_after || self.alerted.contains_key(agency) {
                continue;
            }
            let mut alert = Alert::new(silent_rule(), agency, last, now);
            alert
                .group
                .insert("organization.id".into(), agency.to_owned());
            alert.count = 0;
            alert.refresh_id();
            alerts.push(alert);
        }
        for a in &alerts {
            self.alerted.insert(a.agency.clone(), now);
        }
        alerts.sort_by(|a, b| a.agency.cmp(&b.agency));
        alerts
    }

    /// Agencies currently silent (for the `agency_silent` gauge).
    pub fn silent_agencies(&self) -> impl Iterator<Item = &str> {
        self.alerted.keys().map(String::as_str)
    }
}

fn silent_rule() -> RuleInfo {
    RuleInfo {
        id: SILENT_AGENCY_RULE_ID.into(),
        title: "Agency collectors fell silent".into(),
        author: "qalqan".into(),
        level: "high".into(),
        tags: vec!["attack.defense-evasion".into(), "attack.t1562.006".into()],
        kind: "health".into(),
        description: "No heartbeat from any collector of the agency within the configured limit: the agency's logs are not reaching the centre (link down, collector stopped, or logging disabled by an intruder).".into(),
        references: vec![],
        falsepositives: vec!["Planned maintenance or network outage at the agency".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qalqan_core::Value;

    fn hb(collector: &str, seq: u64) -> Event {
        let mut e = Event::new(String::new(), Utc::now());
        e.fields.insert("event.dataset", HEARTBEAT_DATASET);
        e.fields.insert("observer.name", collector.to_owned());
        e.fields
            .insert("qalqan.collector.last_sequence", Value::from(seq));
        e.fields
            .insert("qalqan.collector.buffer_bytes", Value::Int(4096));
        e
    }

    #[test]
    fn silent_agency_alerts_once_per_silence() {
        let t0 = Utc::now();
        let mut t = HeartbeatTracker::new(std::time::Duration::from_secs(60));
        assert!(is_heartbeat(&hb("c1", 1)));
        t.observe("mof", &hb("c1", 10), t0);
        t.observe("mof", &hb("c2", 5), t0 + Duration::seconds(50));
        t.observe("moh", &hb("c9", 5), t0);
        assert!(t
            .check(t0 + Duration::seconds(90))
            .iter()
            .all(|a| a.agency != "mof"));
        let alerts = t.check(t0 + Duration::seconds(111));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].agency, "mof");
        assert!(
            t.check(t0 + Duration::seconds(200)).is_empty(),
            "alerted once"
        );
        // A new heartbeat ends the silence; a later silence alerts again.
        t.observe("mof", &hb("c1", 11), t0 + Duration::seconds(300));
        let again = t.check(t0 + Duration::seconds(400));
        assert_eq!(again.len(), 1);
        assert_ne!(again[0].id, alerts[0].id);
    }

    #[test]
    fn counters_are_read_from_the_heartbeat() {
        let mut t = HeartbeatTracker::new(std::time::Duration::from_secs(60));
        let h = t
            .observe("mof", &hb("c1", 42), Utc::now())
            .cloned()
            .expect("tracked");
        assert_eq!(h.last_sequence, 42);
        assert_eq!(h.counters.get("buffer_bytes"), Some(&4096.0));
        assert!(t
            .observe("mof", &Event::new(String::new(), Utc::now()), Utc::now())
            .is_none());
    }
}
