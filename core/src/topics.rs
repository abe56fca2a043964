//! Kafka topic names, and the agency a topic belongs to.
//!
//! Agency identity comes from the topic, never from the event body: each
//! collector's credentials may write only its own `qalqan.events.<agency>`.

/// Prefix of the per-agency normalized event topics.
pub const EVENTS_PREFIX: &str = "qalqan.events.";
/// Prefix of the per-agency raw line topics (third-party producers).
pub const RAW_PREFIX: &str = "qalqan.raw.";
/// Correlation signals, keyed by correlation rule and group key.
pub const SIGNALS: &str = "qalqan.signals";
/// Alerts from both detector stages.
pub const ALERTS: &str = "qalqan.alerts";
/// Messages the detector could not decode, with the reason in a header.
pub const DEADLETTER: &str = "qalqan.deadletter";
/// Regex subscription for every agency's event topic.
pub const EVENTS_PATTERN: &str = r"^qalqan\.events\..+";
/// Regex subscription for every agency's raw topic.
pub const RAW_PATTERN: &str = r"^qalqan\.raw\..+";

/// The events topic of `agency`.
pub fn events_topic(agency: &str) -> String {
    format!("{EVENTS_PREFIX}{agency}")
}

/// The agency of an events or raw topic, or `None` for any other topic.
pub fn agency_of(topic: &str) -> Option<&str> {
    topic
        .strip_prefix(EVENTS_PREFIX)
        .or_else(|| topic.strip_prefix(RAW_PREFIX))
        .filter(|a| !a.is_empty())
}

/// Whether `agency` is a valid agency name: it becomes part of a topic name
/// and of ACLs, so only `[A-Za-z0-9_-]`, 1–64 characters.
pub fn valid_agency(agency: &str) -> bool {
    !agency.is_empty()
        && agency.len() <= 64
        && agency
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agency_comes_from_the_topic() {
        assert_eq!(agency_of("qalqan.events.mof"), Some("mof"));
        assert_eq!(agency_of("qalqan.raw.egov-portal"), Some("egov-portal"));
        assert_eq!(agency_of("qalqan.events."), None);
        assert_eq!(agency_of("qalqan.alerts"), None);
        assert_eq!(events_topic("mof"), "qalqan.events.mof");
    }

    #[test]
    fn agency_names_are_topic_safe() {
        assert!(valid_agency("ministry_of-finance2"));
        assert!(!valid_agency("a.b"));
        assert!(!valid_agency(""));
        assert!(!valid_agency("a b"));
    }
}
