//! Signals travel to stage 2 in bundles: every signal of a batch bound for
//! the same `qalqan.signals` partition goes in one Kafka message. The
//! partition is a stable hash of the signal's key
//! ([`qalqan_correlation::Signal::signal_key`]), so every signal of one
//! correlation group still lands in one partition, whichever stage 1
//! instance produced it — but the broker handles a few messages per batch
//! instead of one per signal, which on a small machine is the difference
//! between Kafka and the detector being the bottleneck.
//!
//! A bundle is [`BUNDLE_MAGIC`] and then each signal in its binary form
//! ([`qalqan_correlation::wire`]) behind a 4-byte little-endian length, so
//! a signal that does not decode spoils only itself. Bundles written as
//! JSON lines (before the binary form) are still read: the magic tells
//! them apart, since JSON text never starts with a NUL byte.
//!
//! A bundle's Kafka timestamp is the newest event time in it (never ahead
//! of now), so stage 2's seek-back by time (`offsets_for_times`) finds
//! every bundle holding a signal at or after the time it asks for.

use qalqan_correlation::wire::WireError;
use qalqan_correlation::Signal;

/// The first bytes of a bundle in the binary form, version 1.
pub const BUNDLE_MAGIC: &[u8; 4] = b"\0QB1";

/// Room reserved for a bundle when its first signal arrives: most batches'
/// bundles fit, and growing from empty cost page faults on every doubling.
const BUNDLE_START_BYTES: usize = 64 * 1024;

/// Why one signal of a bundle could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("{0}")]
    Binary(#[from] WireError),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("a signal of {len} bytes runs past the end of the bundle ({left} left)")]
    Frame { len: usize, left: usize },
}

/// Largest bundle payload before it is sent on its own (well under the
/// brokers' default 1 MiB message limit).
pub const MAX_BUNDLE_BYTES: usize = 512 * 1024;

/// The `qalqan.signals` partition of a signal key, out of `partitions`.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    let n = partitions.max(1) as u64;
    (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % n) as i32
}

/// One partition's bundle in the making.
#[derive(Default)]
struct Pending {
    payload: Vec<u8>,
    newest_ms: i64,
    signals: usize,
}

/// Collects a batch's signals per partition.
pub struct Bundler {
    partitions: i32,
    pending: Vec<Pending>,
    /// Payload buffers of sent bundles, kept for the next ones: a fresh
    /// buffer growing to half a megabyte faulted in new pages every time.
    spare: Vec<Vec<u8>>,
}

/// A bundle ready to send.
pub struct Bundle {
    pub partition: i32,
    pub payload: Vec<u8>,
    pub timestamp_ms: i64,
    pub signals: usize,
}

impl Bundler {
    pub fn new(partitions: i32) -> Bundler {
        Bundler {
            partitions: partitions.max(1),
            pending: (0..partitions.max(1)).map(|_| Pending::default()).collect(),
            spare: Vec::new(),
        }
    }

    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// Adds a signal; returns a bundle when its partition's is full.
    pub fn add(&mut self, signal: &Signal, now_ms: i64) -> Option<Bundle> {
        let p = partition_of(&signal.signal_key(), self.partitions);
        let slot = &mut self.pending[p as usize];
        if slot.payload.is_empty() {
            match self.spare.pop() {
                Some(buffer) => slot.payload = buffer,
                None => slot.payload.reserve(BUNDLE_START_BYTES),
            }
            slot.payload.extend_from_slice(BUNDLE_MAGIC);
        }
        // The length goes in front once the signal is written.
        let at = slot.payload.len();
        slot.payload.extend_from_slice(&[0; 4]);
        signal.encode_into(&mut slot.payload);
        let len = (slot.payload.len() - at - 4) as u32;
        slot.payload[at..at + 4].copy_from_slice(&len.to_le_bytes());
        slot.newest_ms = slot
            .newest_ms
            .max(signal.timestamp.timestamp_millis().min(now_ms));
        slot.signals += 1;
        (slot.payload.len() >= MAX_BUNDLE_BYTES).then(|| Self::take(p, slot))
    }

    /// Every non-empty bundle (end of batch).
    pub fn drain(&mut self) -> Vec<Bundle> {
        self.pending
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| s.signals > 0)
            .map(|(p, s)| Self::take(p as i32, s))
            .collect()
    }

    /// Takes back the payload of a bundle that was handed to the producer
    /// (which copies it), to be filled again.
    pub fn recycle(&mut self, mut payload: Vec<u8>) {
        if self.spare.len() < self.pending.len() && payload.capacity() > 0 {
            payload.clear();
            self.spare.push(payload);
        }
    }

    /// Forgets everything collected (aborted batch).
    pub fn clear(&mut self) {
        for s in &mut self.pending {
            *s = Pending::default();
        }
    }

    fn take(partition: i32, slot: &mut Pending) -> Bundle {
        let s = std::mem::take(slot);
        Bundle {
            partition,
            payload: s.payload,
            timestamp_ms: s.newest_ms,
            signals: s.signals,
        }
    }
}

/// The signals of a bundle, each decoded on its own: one bad signal does
/// not take the others with it.
pub fn signals_of(payload: &[u8]) -> Box<dyn Iterator<Item = Result<Signal, SignalError>> + '_> {
    match payload.strip_prefix(BUNDLE_MAGIC.as_slice()) {
        Some(records) => Box::new(BinarySignals { rest: records }),
        None => json_lines(payload),
    }
}

/// Walks the length-framed signals of a binary bundle. A length that runs
/// past the end is reported once and ends the walk: nothing after it can
/// be framed.
struct BinarySignals<'a> {
    rest: &'a [u8],
}

impl Iterator for BinarySignals<'_> {
    type Item = Result<Signal, SignalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some((len, body)) = self.rest.split_first_chunk::<4>() else {
            let left = self.rest.len();
            self.rest = &[];
            return Some(Err(SignalError::Frame { len: 4, left }));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > body.len() {
            self.rest = &[];
            return Some(Err(SignalError::Frame {
                len,
                left: body.len(),
            }));
        }
        let (one, rest) = body.split_at(len);
        self.rest = rest;
        Some(Signal::decode(one).map_err(SignalError::from))
    }
}

/// The signals of a bundle written as JSON lines.
///
/// A bundle is checked for UTF-8 once, as a whole (fast for the mostly
/// ASCII text it is); its lines are then read as text, which spares the
/// JSON reader from validating every string again. A bundle that is not
/// UTF-8 is read line by line as bytes, so the bad line says so.
fn json_lines(payload: &[u8]) -> Box<dyn Iterator<Item = Result<Signal, SignalError>> + '_> {
    let blank = |l: &[u8]| l.iter().all(u8::is_ascii_whitespace);
    match std::str::from_utf8(payload) {
        Ok(text) => Box::new(
            text.split('\n')
                .filter(move |l| !blank(l.as_bytes()))
                .map(|l| serde_json::from_str::<Signal>(l).map_err(SignalError::from)),
        ),
        Err(_) => Box::new(
            payload
                .split(|b| *b == b'\n')
                .filter(move |l| !blank(l))
                .map(|l| Signal::from_json(l).map_err(SignalError::from)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn signal(group: &str, secs: i64) -> Signal {
        Signal {
            correlation: "bf".into(),
            root: None,
            rules: vec!["r".into()],
            agency: "mof".into(),
            group: vec![group.into()],
            root_group: Vec::new(),
            timestamp: chrono::Utc
                .timestamp_opt(1_700_000_000 + secs, 0)
                .single()
                .expect("time"),
            ordinal: secs as u64,
            event_id: format!("e{secs}"),
            value: None,
            number: None,
            entities: Default::default(),
            original: "line".into(),
        }
    }

    #[test]
    fn one_group_one_partition_and_bundles_round_trip() {
        let mut b = Bundler::new(6);
        let now = 1_800_000_000_000;
        for i in 0..50 {
            assert!(b
                .add(&signal(&format!("10.0.0.{}", i % 5), i), now)
                .is_none());
        }
        let bundles = b.drain();
        assert!(bundles.len() <= 5, "five groups, at most five bundles");
        let mut seen = 0;
        for bundle in &bundles {
            let decoded: Vec<Signal> = signals_of(&bundle.payload)
                .map(|s| s.expect("decodes"))
                .collect();
            assert_eq!(decoded.len(), bundle.signals);
            for s in &decoded {
                assert_eq!(partition_of(&s.signal_key(), 6), bundle.partition);
            }
            let newest = decoded.iter().map(|s| s.timestamp.timestamp_millis()).max();
            assert_eq!(Some(bundle.timestamp_ms), newest);
            seen += decoded.len();
        }
        assert_eq!(seen, 50);
        assert!(b.drain().is_empty());
    }

    #[test]
    fn a_full_bundle_is_handed_out_and_a_bad_signal_stays_alone() {
        let mut b = Bundler::new(1);
        let mut full = None;
        for i in 0..100_000 {
            if let Some(x) = b.add(&signal("g", i), i64::MAX) {
                full = Some(x);
                break;
            }
        }
        let full = full.expect("a bundle fills up");
        assert!(
            full.payload.len() >= MAX_BUNDLE_BYTES && full.payload.len() < MAX_BUNDLE_BYTES + 4096
        );
        // Spoil the second signal's correlation id (its first text byte).
        let mut spoiled = full.payload.clone();
        let first_len = u32::from_le_bytes(spoiled[4..8].try_into().expect("4 bytes")) as usize;
        let second = 4 + 4 + first_len;
        spoiled[second + 4 + 1] = 0xff;
        let results: Vec<_> = signals_of(&spoiled).collect();
        assert_eq!(results.len(), full.signals);
        assert!(matches!(
            &results[1],
            Err(SignalError::Binary(WireError::NotUtf8("correlation")))
        ));
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            full.signals - 1
        );
        // Cut short: everything before the cut still reads, the cut is said.
        let cut = &full.payload[..full.payload.len() - 3];
        let results: Vec<_> = signals_of(cut).collect();
        assert_eq!(results.len(), full.signals);
        assert!(matches!(
            results.last(),
            Some(Err(SignalError::Frame { .. }))
        ));
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            full.signals - 1
        );
    }

    #[test]
    fn a_recycled_buffer_carries_nothing_over() {
        let mut b = Bundler::new(1);
        for i in 0..10 {
            assert!(b.add(&signal("old", i), i64::MAX).is_none());
        }
        for bundle in b.drain() {
            b.recycle(bundle.payload);
        }
        assert_eq!(b.spare.len(), 1);
        let fresh: Vec<Signal> = (100..103).map(|i| signal("new", i)).collect();
        for s in &fresh {
            assert!(b.add(s, i64::MAX).is_none());
        }
        assert!(b.spare.is_empty(), "the spare buffer was taken");
        let bundles = b.drain();
        assert_eq!(bundles.len(), 1);
        let read: Vec<Signal> = signals_of(&bundles[0].payload)
            .map(|s| s.expect("decodes"))
            .collect();
        assert_eq!(read, fresh);
    }

    #[test]
    fn bundles_of_json_lines_are_still_read_a_bad_line_alone() {
        let good: Vec<Signal> = (0..3).map(|i| signal("g", i)).collect();
        let mut payload = b"{\"broken\n\n".to_vec();
        for s in &good {
            payload.extend_from_slice(s.to_json().expect("json").as_bytes());
            payload.push(b'\n');
        }
        let results: Vec<_> = signals_of(&payload).collect();
        assert!(matches!(results[0], Err(SignalError::Json(_))));
        let read: Vec<Signal> = results.into_iter().filter_map(Result::ok).collect();
        assert_eq!(read, good);
        // A line that is not UTF-8 spoils only itself too.
        let mut bytes = b"{\"correlation\":\"\xff\"}\n".to_vec();
        bytes.extend_from_slice(&payload[10..]);
        let results: Vec<_> = signals_of(&bytes).collect();
        assert!(results[0].is_err());
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), good.len());
    }
}
