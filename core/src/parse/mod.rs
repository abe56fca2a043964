//! The parser library: raw line in, normalized [`Event`] out.
//!
//! Used at the edge by the collector and by the detector for raw lines that
//! third-party producers put on Kafka. Every line becomes an event: a line no
//! parser claims is kept as a message-only event tagged
//! [`tags::UNPARSED`](crate::event::tags::UNPARSED), never dropped.
//!
//! STUB — the parsers are being written; see the module list below.

use chrono::{DateTime, Utc};

use crate::event::{tags, Event};

/// Default maximum line length: longer lines are truncated and tagged.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;

/// How to read lines from one input.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Lines longer than this are cut here and tagged `qalqan.truncated`.
    pub max_line_bytes: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// The result of parsing one line: the event, and which parser produced it
/// (for the per-parser outcome metrics).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub event: Event,
    /// Parser name, e.g. `sshd`, `syslog5424`, `web_access`, `unparsed`.
    pub parser: &'static str,
}

/// A configured parser chain.
#[derive(Debug, Clone, Default)]
pub struct Parser {
    pub options: ParseOptions,
}

impl Parser {
    pub fn new(options: ParseOptions) -> Self {
        Parser { options }
    }

    /// Parses one line (without its line terminator), received at `received`.
    pub fn parse(&self, raw: &[u8], received: DateTime<Utc>) -> Parsed {
        let (text, truncated, lossy) = decode_line(raw, self.options.max_line_bytes);
        let mut event = Event::new(text, received);
        if truncated {
            event.add_tag(tags::TRUNCATED);
        }
        if lossy {
            event.add_tag(tags::INVALID_UTF8);
        }
        event.fields.insert("message", event.original.clone());
        event.add_tag(tags::UNPARSED);
        Parsed {
            event,
            parser: "unparsed",
        }
    }
}

/// Cuts `raw` to `max` bytes (on a UTF-8 boundary where possible) and decodes
/// it, replacing invalid bytes with U+FFFD. Returns (text, truncated, lossy).
pub fn decode_line(raw: &[u8], max: usize) -> (String, bool, bool) {
    let truncated = raw.len() > max;
    let cut = if truncated { &raw[..max] } else { raw };
    match std::str::from_utf8(cut) {
        Ok(s) => (s.to_owned(), truncated, false),
        Err(e) if truncated && e.error_len().is_none() => {
            // The cut fell inside a multi-byte character: drop the partial one.
            let valid = e.valid_up_to();
            (
                String::from_utf8_lossy(&cut[..valid]).into_owned(),
                true,
                false,
            )
        }
        Err(_) => (String::from_utf8_lossy(cut).into_owned(), truncated, true),
    }
}
