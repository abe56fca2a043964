//! A signal's text fields packed into one allocation.
//!
//! The engine holds every signal for the allowed lateness and keeps some as
//! evidence. A [`crate::Signal`] has ten-odd separate strings; copying them
//! into one length-prefixed buffer costs one allocation and one copy, makes
//! queued items small to move, and frees with one call. The hot path never
//! reads the text: it works on the precomputed key hash; fields are decoded
//! only for evidence, alerts and tie-breaking.

use crate::signal::{Signal, SignalEntities};

/// Field order in the buffer. Entities are optional (length `u32::MAX`
/// means absent); group values follow, as many as remain.
const AGENCY: usize = 0;
const EVENT_ID: usize = 1;
const ORIGINAL: usize = 2;
const SOURCE_IP: usize = 3;
const USER: usize = 4;
const HOST: usize = 5;
const URL: usize = 6;
const FIXED: usize = 7;

const ABSENT: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packed(Box<[u8]>);

/// The parts a packed signal is built from.
pub(crate) struct Parts<'a> {
    pub agency: &'a str,
    pub event_id: &'a str,
    pub original: &'a str,
    pub entities: &'a SignalEntities,
    pub group: &'a [String],
}

impl Packed {
    pub fn of(s: &Signal) -> Packed {
        Packed::build(Parts {
            agency: &s.agency,
            event_id: &s.event_id,
            original: &s.original,
            entities: &s.entities,
            group: &s.group,
        })
    }

    pub fn build(p: Parts<'_>) -> Packed {
        let e = p.entities;
        let opt = [&e.source_ip, &e.user, &e.host, &e.url];
        let len = 4 * (FIXED + p.group.len())
            + p.agency.len()
            + p.event_id.len()
            + p.original.len()
            + opt
                .iter()
                .map(|o| o.as_ref().map_or(0, String::len))
                .sum::<usize>()
            + p.group.iter().map(String::len).sum::<usize>();
        let mut buf = Vec::with_capacity(len);
        let mut put = |v: Option<&str>| match v {
            Some(v) => {
                // Fields over 4 GiB cannot occur (lines are bounded far
                // below); clamp rather than wrap if one ever did.
                let n = u32::try_from(v.len()).unwrap_or(ABSENT - 1);
                buf.extend_from_slice(&n.to_le_bytes());
                buf.extend_from_slice(&v.as_bytes()[..n as usize]);
            }
            None => buf.extend_from_slice(&ABSENT.to_le_bytes()),
        };
        put(Some(p.agency));
        put(Some(p.event_id));
        put(Some(p.original));
        for o in opt {
            put(o.as_deref());
        }
        for g in p.group {
            put(Some(g));
        }
        Packed(buf.into_boxed_slice())
    }

    /// The fields in order (`None` for an absent entity).
    fn fields(&self) -> impl Iterator<Item = Option<&str>> {
        self.raw_fields()
            .map(|f| f.map(|v| std::str::from_utf8(v).unwrap_or("")))
    }

    /// The fields' bytes, not checked for UTF-8 (they were `&str` when
    /// packed): for comparisons, which need no text.
    fn raw_fields(&self) -> impl Iterator<Item = Option<&[u8]>> {
        let mut rest: &[u8] = &self.0;
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let n = u32::from_le_bytes(*len);
            if n == ABSENT {
                rest = tail;
                return Some(None);
            }
            let n = (n as usize).min(tail.len());
            let (v, tail) = tail.split_at(n);
            rest = tail;
            Some(Some(v))
        })
    }

    /// Field `i`'s bytes (`None` when absent); the fields before it are
    /// skipped without checking their text.
    fn raw_field(&self, i: usize) -> Option<&[u8]> {
        self.raw_fields().nth(i).flatten()
    }

    fn field(&self, i: usize) -> Option<&str> {
        self.raw_field(i)
            .map(|v| std::str::from_utf8(v).unwrap_or(""))
    }

    pub fn agency(&self) -> &str {
        self.field(AGENCY).unwrap_or_default()
    }

    pub fn event_id(&self) -> &str {
        self.field(EVENT_ID).unwrap_or_default()
    }

    /// The event id's bytes: they order exactly as the text does (`str`
    /// compares bytewise), without checking UTF-8 on every comparison of
    /// a sort, where the text form showed in stage 2 profiles.
    pub fn event_id_bytes(&self) -> &[u8] {
        self.raw_field(EVENT_ID).unwrap_or_default()
    }

    pub fn original(&self) -> &str {
        self.field(ORIGINAL).unwrap_or_default()
    }

    pub fn entities(&self) -> SignalEntities {
        let f: Vec<Option<&str>> = self.fields().take(FIXED).collect();
        let get = |i: usize| f.get(i).copied().flatten().map(str::to_owned);
        SignalEntities {
            source_ip: get(SOURCE_IP),
            user: get(USER),
            host: get(HOST),
            url: get(URL),
        }
    }

    pub fn group(&self) -> Vec<String> {
        self.fields()
            .skip(FIXED)
            .map(|v| v.unwrap_or_default().to_owned())
            .collect()
    }

    pub fn bytes(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_bytes_are_the_event_id() {
        let entities = SignalEntities::default();
        let p = Packed::build(Parts {
            agency: "mof",
            event_id: "ev-ä1",
            original: "line",
            entities: &entities,
            group: &[],
        });
        assert_eq!(p.event_id_bytes(), "ev-ä1".as_bytes());
    }

    #[test]
    fn round_trips_every_field() {
        let entities = SignalEntities {
            source_ip: Some("10.0.0.1".into()),
            user: None,
            host: Some(String::new()),
            url: Some("/login".into()),
        };
        let group = vec!["a".to_string(), String::new(), "ü".to_string()];
        let p = Packed::build(Parts {
            agency: "mof",
            event_id: "e1",
            original: "raw line",
            entities: &entities,
            group: &group,
        });
        assert_eq!(p.agency(), "mof");
        assert_eq!(p.event_id(), "e1");
        assert_eq!(p.original(), "raw line");
        assert_eq!(p.entities(), entities);
        assert_eq!(p.group(), group);
        let none = Packed::build(Parts {
            agency: "",
            event_id: "",
            original: "",
            entities: &SignalEntities::default(),
            group: &[],
        });
        assert_eq!(none.group(), Vec::<String>::new());
        assert_eq!(none.entities(), SignalEntities::default());
    }
}
