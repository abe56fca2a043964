//! Signals travel to stage 2 in bundles: every signal of a batch bound for
//! the same `qalqan.signals` partition goes in one Kafka message, one JSON
//! signal per line. The partition is a stable hash of the signal's key
//! ([`qalqan_correlation::Signal::signal_key`]), so every signal of one
//! correlation group still lands in one partition, whichever stage 1
//! instance produced it — but the broker handles a few messages per batch
//! instead of one per signal, which on a small machine is the difference
//! between Kafka and the detector being the bottleneck.
//!
//! A bundle's Kafka timestamp is the newest event time in it (never ahead
//! of now), so stage 2's seek-back by time (`offsets_for_times`) finds
//! every bundle holding a signal at or after the time it asks for.

use qalqan_correlation::Signal;

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
        }
    }

    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// Adds a signal; returns a bundle when its partition's is full.
    pub fn add(
        &mut self,
        signal: &Signal,
        now_ms: i64,
    ) -> Result<Option<Bundle>, serde_json::Error> {
        let p = partition_of(&signal.signal_key(), self.partitions);
        let slot = &mut self.pending[p as usize];
        // Written in place; a failed write leaves the bundle as it was.
        let before = slot.payload.len();
        if let Err(e) = serde_json::to_writer(&mut slot.payload, signal) {
            slot.payload.truncate(before);
            return Err(e);
        }
        slot.payload.push(b'\n');
        slot.newest_ms = slot
            .newest_ms
            .max(signal.timestamp.timestamp_millis().min(now_ms));
        slot.signals += 1;
        Ok((slot.payload.len() >= MAX_BUNDLE_BYTES).then(|| Self::take(p, slot)))
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

/// The signals of a bundle, each decoded on its own: one bad line does not
/// take the others with it.
///
/// A bundle is checked for UTF-8 once, as a whole (fast for the mostly
/// ASCII text it is); its lines are then read as text, which spares the
/// JSON reader from validating every string again. A bundle that is not
/// UTF-8 is read line by line as bytes, so the bad line says so.
pub fn signals_of(
    payload: &[u8],
) -> Box<dyn Iterator<Item = Result<Signal, serde_json::Error>> + '_> {
    let blank = |l: &[u8]| l.iter().all(u8::is_ascii_whitespace);
    match std::str::from_utf8(payload) {
        Ok(text) => Box::new(
            text.split('\n')
                .filter(move |l| !blank(l.as_bytes()))
                .map(serde_json::from_str::<Signal>),
        ),
        Err(_) => Box::new(
            payload
                .split(|b| *b == b'\n')
                .filter(move |l| !blank(l))
                .map(Signal::from_json),
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
                .expect("encodes")
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
    fn a_full_bundle_is_handed_out_and_bad_lines_stay_alone() {
        let mut b = Bundler::new(1);
        let mut full = None;
        for i in 0..100_000 {
            if let Some(x) = b.add(&signal("g", i), i64::MAX).expect("encodes") {
                full = Some(x);
                break;
            }
        }
        let full = full.expect("a bundle fills up");
        assert!(
            full.payload.len() >= MAX_BUNDLE_BYTES && full.payload.len() < MAX_BUNDLE_BYTES + 4096
        );
        let mixed = b"{\"broken\n\n"
            .iter()
            .chain(full.payload.iter())
            .copied()
            .collect::<Vec<u8>>();
        let results: Vec<_> = signals_of(&mixed).collect();
        assert!(results[0].is_err());
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), full.signals);
        // A line that is not UTF-8 spoils only itself too.
        let mut bytes = b"{\"correlation\":\"\xff\"}\n".to_vec();
        bytes.extend_from_slice(&full.payload);
        let results: Vec<_> = signals_of(&bytes).collect();
        assert!(results[0].is_err());
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), full.signals);
    }
}
