//! The compact binary form of a [`Signal`], as stage 1 sends it to stage 2.
//!
//! Signals are produced for a large share of events (every failed login
//! feeds a brute-force correlation), and writing and reading them as JSON
//! cost stage 1 and stage 2 more CPU than matching those events did:
//! every string escaped, every field name written and matched again.
//! Here a signal is its fields in a fixed order, strings as a length and
//! their bytes, so encoding is a few copies and decoding a few allocations
//! and UTF-8 checks.
//!
//! Layout, in order (`str` = LEB128 length + UTF-8 bytes, `opt` = one byte
//! 0 or 1 then the value, `list` = LEB128 count then items):
//! correlation `str`, root `opt str`, rules `list str`, agency `str`,
//! group `list str`, root_group `list str`, timestamp (microseconds since
//! the epoch, `i64` LE), ordinal (LEB128), event_id `str`, value
//! `opt str`, number `opt f64` LE, entities (source_ip, user, host, url,
//! each `opt str`), original `str`.
//!
//! The format carries no field names, so a change to [`Signal`] needs a new
//! version of it (the bundle's magic says which one a message holds).

use chrono::{DateTime, Utc};

use crate::signal::{Signal, SignalEntities};

/// Why bytes are not a signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("signal ends early, in `{0}`")]
    Truncated(&'static str),
    #[error("`{0}` is not UTF-8")]
    NotUtf8(&'static str),
    #[error("`{field}` has a bad presence byte {byte}")]
    BadOption { field: &'static str, byte: u8 },
    #[error("`{0}` is too long for this machine")]
    TooLong(&'static str),
    #[error("timestamp {0} µs is out of range")]
    BadTimestamp(i64),
    #[error("{0} bytes left over after the signal")]
    Trailing(usize),
}

impl Signal {
    /// Appends the binary form of this signal to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        put_str(out, &self.correlation);
        put_opt_str(out, self.root.as_deref());
        put_list(out, &self.rules);
        put_str(out, &self.agency);
        put_list(out, &self.group);
        put_list(out, &self.root_group);
        out.extend_from_slice(&self.timestamp.timestamp_micros().to_le_bytes());
        put_varint(out, self.ordinal);
        put_str(out, &self.event_id);
        put_opt_str(out, self.value.as_deref());
        match self.number {
            Some(n) => {
                out.push(1);
                out.extend_from_slice(&n.to_le_bytes());
            }
            None => out.push(0),
        }
        let e = &self.entities;
        for v in [&e.source_ip, &e.user, &e.host, &e.url] {
            put_opt_str(out, v.as_deref());
        }
        put_str(out, &self.original);
    }

    /// Reads a signal written by [`Signal::encode_into`]; all of `bytes`
    /// must be that one signal.
    pub fn decode(bytes: &[u8]) -> Result<Signal, WireError> {
        let mut r = Reader { rest: bytes };
        let correlation = r.string("correlation")?;
        let root = r.opt_string("root")?;
        let rules = r.list("rules")?;
        let agency = r.string("agency")?;
        let group = r.list("group")?;
        let root_group = r.list("root_group")?;
        let micros = i64::from_le_bytes(r.array("timestamp")?);
        let timestamp = DateTime::<Utc>::from_timestamp_micros(micros)
            .ok_or(WireError::BadTimestamp(micros))?;
        let ordinal = r.varint("ordinal")?;
        let event_id = r.string("event_id")?;
        let value = r.opt_string("value")?;
        let number = match r.presence("number")? {
            true => Some(f64::from_le_bytes(r.array("number")?)),
            false => None,
        };
        let entities = SignalEntities {
            source_ip: r.opt_string("entities.source_ip")?,
            user: r.opt_string("entities.user")?,
            host: r.opt_string("entities.host")?,
            url: r.opt_string("entities.url")?,
        };
        let original = r.string("original")?;
        if !r.rest.is_empty() {
            return Err(WireError::Trailing(r.rest.len()));
        }
        Ok(Signal {
            correlation,
            root,
            rules,
            agency,
            group,
            root_group,
            timestamp,
            ordinal,
            event_id,
            value,
            number,
            entities,
            original,
        })
    }
}

/// Appends `v` as an unsigned LEB128 number (7 bits per byte, low first).
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

fn put_list(out: &mut Vec<u8>, items: &[String]) {
    put_varint(out, items.len() as u64);
    for item in items {
        put_str(out, item);
    }
}

/// A cursor over untrusted bytes: every read checks what is left.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// An unsigned LEB128 number of at most 64 bits.
    fn varint(&mut self, field: &'static str) -> Result<u64, WireError> {
        let mut v = 0u64;
        for (i, &b) in self.rest.iter().enumerate().take(10) {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok(v);
            }
        }
        Err(if self.rest.len() >= 10 {
            WireError::TooLong(field)
        } else {
            WireError::Truncated(field)
        })
    }

    /// The next `n` bytes.
    fn take(&mut self, n: u64, field: &'static str) -> Result<&'a [u8], WireError> {
        let n = usize::try_from(n).map_err(|_| WireError::TooLong(field))?;
        if n > self.rest.len() {
            return Err(WireError::Truncated(field));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        let bytes = self.take(N as u64, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(bytes);
        Ok(a)
    }

    fn string(&mut self, field: &'static str) -> Result<String, WireError> {
        let n = self.varint(field)?;
        let bytes = self.take(n, field)?;
        // simdutf8: a signal carries its event's raw line, and checking it
        // with the standard library's validator showed in stage 2 profiles.
        simdutf8::basic::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| WireError::NotUtf8(field))
    }

    fn presence(&mut self, field: &'static str) -> Result<bool, WireError> {
        match self.take(1, field)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(WireError::BadOption { field, byte }),
        }
    }

    fn opt_string(&mut self, field: &'static str) -> Result<Option<String>, WireError> {
        match self.presence(field)? {
            true => self.string(field).map(Some),
            false => Ok(None),
        }
    }

    fn list(&mut self, field: &'static str) -> Result<Vec<String>, WireError> {
        let n = self.varint(field)?;
        // Every item takes at least one byte: a count beyond what is left
        // is a lie, and must not size an allocation.
        if n > self.rest.len() as u64 {
            return Err(WireError::Truncated(field));
        }
        (0..n).map(|_| self.string(field)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn full() -> Signal {
        Signal {
            correlation: "brute-force".into(),
            root: Some("brute-then-success".into()),
            rules: vec!["r1".into(), "r2".into()],
            agency: "minfin".into(),
            group: vec!["10.0.0.1".into(), "ünïcode".into()],
            root_group: vec!["10.0.0.1".into()],
            timestamp: Utc
                .timestamp_opt(1_764_219_601, 123_456_000)
                .single()
                .unwrap_or_default(),
            ordinal: 300_000_000_000,
            event_id: "e-1".into(),
            value: Some("a\u{1f}b".into()),
            number: Some(-12.5),
            entities: SignalEntities {
                source_ip: Some("10.0.0.1".into()),
                user: Some("root".into()),
                host: Some("web-01".into()),
                url: Some("/login?x=\"1\"".into()),
            },
            original: "Nov 27 05:00:01 web-01 sshd[1]: Failed password for root".into(),
        }
    }

    fn sparse() -> Signal {
        Signal {
            root: None,
            rules: vec![],
            group: vec![],
            root_group: vec![],
            value: None,
            number: None,
            entities: SignalEntities::default(),
            original: String::new(),
            ordinal: 0,
            ..full()
        }
    }

    #[test]
    fn round_trips_with_every_field_set_and_with_none() {
        for s in [full(), sparse()] {
            let mut bytes = Vec::new();
            s.encode_into(&mut bytes);
            assert_eq!(Signal::decode(&bytes), Ok(s));
        }
    }

    #[test]
    fn every_cut_short_signal_is_an_error_never_a_panic() {
        let mut bytes = Vec::new();
        full().encode_into(&mut bytes);
        for len in 0..bytes.len() {
            let e = Signal::decode(&bytes[..len]).expect_err("cut short");
            assert!(matches!(e, WireError::Truncated(_)), "{len}: {e}");
        }
        bytes.push(0);
        assert_eq!(Signal::decode(&bytes), Err(WireError::Trailing(1)));
    }

    #[test]
    fn bad_utf8_and_presence_bytes_name_the_field() {
        let mut bytes = Vec::new();
        sparse().encode_into(&mut bytes);
        // correlation is first: its length byte, then its text.
        let mut bad = bytes.clone();
        bad[1] = 0xff;
        assert_eq!(Signal::decode(&bad), Err(WireError::NotUtf8("correlation")));
        // root's presence byte follows the correlation id.
        let at = 1 + "brute-force".len();
        let mut bad = bytes;
        bad[at] = 7;
        assert_eq!(
            Signal::decode(&bad),
            Err(WireError::BadOption {
                field: "root",
                byte: 7
            })
        );
    }

    #[test]
    fn a_huge_list_count_is_refused_before_allocating() {
        let mut bytes = Vec::new();
        put_str(&mut bytes, "c");
        bytes.push(0);
        put_varint(&mut bytes, u64::MAX >> 1);
        assert_eq!(Signal::decode(&bytes), Err(WireError::Truncated("rules")));
    }

    #[test]
    fn varints_round_trip_at_their_edges() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader { rest: &out };
            assert_eq!(r.varint("v"), Ok(v));
            assert!(r.rest.is_empty());
        }
        let mut r = Reader { rest: &[0xff; 11] };
        assert_eq!(r.varint("v"), Err(WireError::TooLong("v")));
    }
}
