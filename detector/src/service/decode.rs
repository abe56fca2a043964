//! From a Kafka message to an event: the agency from the topic name, the
//! event from the collector's JSON or, on raw topics, from the same parsers
//! the collector runs. Shared by stage 1 and the archiver so both give an
//! event the same id.

use qalqan_core::event::now_micros;
use qalqan_core::parse::{ParseOptions, Parser};
use qalqan_core::Event;
use regex::Regex;

use crate::config::TopicsSection;
use crate::service::kafka::agency_of_topic;
use crate::store::event_id_for;

/// A decoded message.
pub struct Decoded {
    pub agency: String,
    pub event: Event,
    pub event_id: String,
    /// The parser that read a raw line; `None` for normalized events.
    pub parser: Option<&'static str>,
}

/// Why a message could not be decoded: the dead-letter reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    /// Short, fixed label for metrics.
    pub kind: &'static str,
    /// The whole reason, for the dead-letter header and the log.
    pub reason: String,
}

/// Decodes messages of the event and raw topics.
pub struct Decoder {
    events: Regex,
    raw: Regex,
    parser: Parser,
}

impl Decoder {
    pub fn new(topics: &TopicsSection, parse: ParseOptions) -> anyhow::Result<Decoder> {
        Ok(Decoder {
            events: Regex::new(&topics.events)
                .map_err(|e| anyhow::anyhow!("topics.events: {e}"))?,
            raw: Regex::new(&topics.raw).map_err(|e| anyhow::anyhow!("topics.raw: {e}"))?,
            parser: Parser::new(parse),
        })
    }

    /// Whether `topic` is one this decoder reads.
    pub fn reads(&self, topic: &str) -> bool {
        self.events.is_match(topic) || self.raw.is_match(topic)
    }

    pub fn decode(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        payload: Option<&[u8]>,
    ) -> Result<Decoded, Undecodable> {
        let Some(agency) = agency_of_topic(topic) else {
            return Err(Undecodable {
                kind: "topic_without_agency",
                reason: format!("topic {topic} does not end in a valid agency name"),
            });
        };
        let payload = match payload {
            Some(p) if !p.is_empty() => p,
            _ => {
                return Err(Undecodable {
                    kind: "empty",
                    reason: "empty message".into(),
                })
            }
        };
        let now = now_micros();
        let (event, parser) = if self.raw.is_match(topic) && !self.events.is_match(topic) {
            let parsed = self.parser.parse(payload, now);
            (parsed.event, Some(parsed.parser))
        } else {
            let event = Event::from_json_bytes(payload, now).map_err(|e| Undecodable {
                kind: "undecodable_event",
                reason: format!("not a qalqan event: {e}"),
            })?;
            (event, None)
        };
        let event_id = event_id_for(&event, agency, topic, partition, offset);
        Ok(Decoded {
            agency: agency.to_owned(),
            event,
            event_id,
            parser,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder() -> Decoder {
        Decoder::new(&TopicsSection::default(), ParseOptions::default()).expect("default topics")
    }

    #[test]
    fn raw_lines_are_parsed_and_events_decoded() {
        let d = decoder();
        let line = b"<38>Nov 27 05:00:01 web1 sshd[7]: Failed password for root from 203.0.113.9 port 4242 ssh2";
        let raw = d
            .decode("qalqan.raw.mof", 0, 5, Some(line))
            .expect("raw line parses");
        assert_eq!(raw.agency, "mof");
        assert_eq!(raw.event.get_str("source.ip"), Some("203.0.113.9"));
        assert!(raw.parser.is_some());
        let json = raw.event.to_json_string();
        let ev = d
            .decode("qalqan.events.mof", 0, 5, Some(json.as_bytes()))
            .expect("event decodes");
        assert_eq!(ev.event.get_str("source.ip"), Some("203.0.113.9"));
        assert!(ev.parser.is_none());
    }

    #[test]
    fn undecodable_messages_say_why() {
        let d = decoder();
        let e = d
            .decode("qalqan.events.mof", 0, 1, Some(b"{not json"))
            .err()
            .expect("broken JSON is refused");
        assert_eq!(e.kind, "undecodable_event");
        assert!(e.reason.contains("not a qalqan event"), "{}", e.reason);
        let e = d
            .decode("qalqan.events.mof", 0, 1, None)
            .err()
            .expect("empty");
        assert_eq!(e.kind, "empty");
        let e = d
            .decode("qalqan.events.mof", 0, 1, Some(b"[1,2]"))
            .err()
            .expect("not an object");
        assert_eq!(e.kind, "undecodable_event");
    }
}
