//! One `alerts` row, from a [`qalqan_core::Alert`].

use qalqan_core::Alert;
use serde::{Deserialize, Serialize};

/// A row of `alerts`, in RowBinary-compatible form for both dialects (see
/// [`super::ddl`]). Field order is the table's stored column order.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct AlertRow {
    /// Deterministic: rule, group key, agency and window (see `alert_id`).
    pub id: String,
    pub agency: String,
    pub rule_id: String,
    pub rule_title: String,
    /// Credited as the SigmaHQ Detection Rule License requires.
    pub rule_author: String,
    pub rule_level: String,
    pub rule_tags: Vec<String>,
    pub rule_kind: String,
    /// The correlation's group-by values, e.g. (`source.ip`, `203.0.113.7`).
    pub group_key: Vec<(String, String)>,
    pub source_ips: Vec<String>,
    pub user_names: Vec<String>,
    pub host_names: Vec<String>,
    pub urls: Vec<String>,
    /// Microseconds since the epoch (UTC).
    pub window_start: i64,
    pub window_end: i64,
    pub count: u64,
    pub value: Option<f64>,
    pub suppressed: u64,
    #[serde(rename = "evidence.event_id")]
    pub evidence_event_id: Vec<String>,
    #[serde(rename = "evidence.timestamp")]
    pub evidence_timestamp: Vec<i64>,
    #[serde(rename = "evidence.original")]
    pub evidence_original: Vec<String>,
    pub created: i64,
}

impl AlertRow {
    /// The row for `alert`. The agency is the alert's own, which the
    /// detector set from the topic the events came in on.
    pub fn from_alert(alert: &Alert) -> AlertRow {
        AlertRow {
            id: alert.id.clone(),
            agency: alert.agency.clone(),
            rule_id: alert.rule.id.clone(),
            rule_title: alert.rule.title.clone(),
            rule_author: alert.rule.author.clone(),
            rule_level: alert.rule.level.clone(),
            rule_tags: alert.rule.tags.clone(),
            rule_kind: alert.rule.kind.clone(),
            group_key: alert
                .group
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            source_ips: alert.entities.source_ips.clone(),
            user_names: alert.entities.users.clone(),
            host_names: alert.entities.hosts.clone(),
            urls: alert.entities.urls.clone(),
            window_start: alert.window_start.timestamp_micros(),
            window_end: alert.window_end.timestamp_micros(),
            count: alert.count,
            value: alert.value,
            suppressed: alert.suppressed,
            evidence_event_id: alert.evidence.iter().map(|e| e.event_id.clone()).collect(),
            evidence_timestamp: alert
                .evidence
                .iter()
                .map(|e| e.timestamp.timestamp_micros())
                .collect(),
            evidence_original: alert.evidence.iter().map(|e| e.original.clone()).collect(),
            created: alert.created.timestamp_micros(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use qalqan_core::alert::{Evidence, RuleInfo};

    #[test]
    fn carries_every_alert_member() {
        let t = Utc
            .timestamp_opt(1_772_359_200, 500_000)
            .single()
            .expect("valid time");
        let mut a = Alert::new(
            RuleInfo {
                id: "r-ssh-bf".into(),
                title: "SSH brute force".into(),
                author: "qalqan".into(),
                level: "high".into(),
                tags: vec!["attack.t1110.001".into()],
                kind: "event_count".into(),
                ..Default::default()
            },
            "mof",
            t,
            t + chrono::Duration::seconds(60),
        );
        a.group.insert("source.ip".into(), "203.0.113.7".into());
        a.refresh_id();
        a.count = 12;
        a.value = Some(12.0);
        a.entities.source_ips.push("203.0.113.7".into());
        a.evidence.push(Evidence {
            event_id: "e1".into(),
            timestamp: t,
            original: "line one".into(),
        });
        let row = AlertRow::from_alert(&a);
        assert_eq!(row.id, a.id);
        assert_eq!(row.rule_author, "qalqan");
        assert_eq!(
            row.group_key,
            vec![("source.ip".into(), "203.0.113.7".into())]
        );
        assert_eq!(row.window_start, 1_772_359_200_000_500);
        assert_eq!(row.window_end - row.window_start, 60_000_000);
        assert_eq!(row.evidence_event_id, vec!["e1".to_string()]);
        assert_eq!(row.evidence_timestamp, vec![row.window_start]);
        assert_eq!(row.value, Some(12.0));
        assert_eq!(row.agency, "mof");
    }

    #[test]
    fn row_columns_match_the_ddl() {
        use clickhouse::Row;
        assert_eq!(
            AlertRow::COLUMN_NAMES.to_vec(),
            super::super::ddl::stored_columns(super::super::ddl::ALERT_COLUMNS)
        );
    }
}
