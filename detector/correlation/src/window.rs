//! Per-group-key window state: hop rings and the aggregates of the seven
//! correlation types.
//!
//! Event time is cut into hops of `timespan / HOPS`, aligned to the Unix
//! epoch. A window is `HOPS` consecutive hops — exactly the timespan — so
//! the state of a key is a ring of the last `HOPS` hops. See the crate docs
//! for the firing rules built on top.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};

use crate::evidence::{Record, Ref};
use crate::rule::CorrelationType;

/// Hops per window. A burst shorter than `timespan × (1 − 1/HOPS)` always
/// falls inside one window; longer ones may straddle two.
pub const HOPS: usize = 10;
pub(crate) const B: i64 = HOPS as i64;

/// Ring slot of a hop.
#[inline]
pub(crate) fn slot(hop: i64) -> usize {
    hop.rem_euclid(B) as usize
}

/// Epoch (block of `HOPS` aligned hops) of a hop: at most one alert per
/// key and epoch.
#[inline]
pub(crate) fn epoch(hop: i64) -> i64 {
    hop.div_euclid(B)
}

pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// A group key: 128-bit hash of agency and group values. Two halves rather
/// than a `u128` keep the map entry 8-byte aligned (smaller). It is already
/// a uniform hash, so maps use [`KeyHasher`] instead of hashing it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key(pub u64, pub u64);

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

pub(crate) fn key_of(agency: &str, group: &[String]) -> Key {
    // One-shot hashing of a small stack buffer is several times faster than
    // the streaming hasher's setup for these short keys.
    let len = agency.len() + group.iter().map(|g| g.len() + 1).sum::<usize>();
    let mut stack = [0u8; 256];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    let mut at = agency.len();
    buf[..at].copy_from_slice(agency.as_bytes());
    for v in group {
        buf[at] = 0x1f;
        buf[at + 1..at + 1 + v.len()].copy_from_slice(v.as_bytes());
        at += 1 + v.len();
    }
    let d = xxhash_rust::xxh3::xxh3_128(buf);
    Key(d as u64, (d >> 64) as u64)
}

/// A fast hasher for the engine's small string-keyed maps (rule ids,
/// agencies): FxHash's word-at-a-time mix. Keys there are not chosen by an
/// attacker in a way that matters (ids come from the loaded rules, agencies
/// from topic names).
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

const FX: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(FX);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(FX);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(FX);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn write_i32(&mut self, v: i32) {
        self.write_u64(v as u32 as u64);
    }
}

pub(crate) type FastMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

/// Pass-through hasher for [`Key`].
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `Key`; fold anything else reasonably.
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
}

/// Distinct values of a key, by their 64-bit hash → last hop seen.
pub(crate) type ValueMap = HashMap<u64, i64, std::hash::BuildHasherDefault<KeyHasher>>;

pub(crate) type KeyMap<V> =
    std::collections::HashMap<Key, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// Type-specific aggregate, boxed so event_count keys do not pay for it.
#[derive(Debug)]
pub(crate) enum Agg {
    Count,
    /// value_count: last hop each value was seen, and how many values have
    /// their last sighting in each hop (so a window's distinct count is a
    /// sum over hops).
    Distinct {
        seen: ValueMap,
        per_hop: [u32; HOPS],
    },
    /// value_sum and value_avg.
    Sum {
        sum: [f64; HOPS],
        n: [u32; HOPS],
    },
    /// value_percentile: samples in hop order.
    Samples(VecDeque<(i64, f64)>),
    /// temporal: last hop each referenced rule was seen.
    Temporal(Box<[i64]>),
    /// temporal_ordered: for each prefix of the rule sequence, the start
    /// hop of the latest chain that matched it in order.
    Ordered(Box<[i64]>),
}

impl Agg {
    pub fn new(kind: CorrelationType, n_rules: usize) -> Self {
        use CorrelationType as T;
        match kind {
            T::EventCount => Agg::Count,
            T::ValueCount => Agg::Distinct {
                seen: ValueMap::default(),
                per_hop: [0; HOPS],
            },
            T::ValueSum | T::ValueAvg => Agg::Sum {
                sum: [0.0; HOPS],
                n: [0; HOPS],
            },
            T::ValuePercentile => Agg::Samples(VecDeque::new()),
            T::Temporal => Agg::Temporal(vec![i64::MIN; n_rules].into_boxed_slice()),
            T::TemporalOrdered => Agg::Ordered(vec![i64::MIN; n_rules].into_boxed_slice()),
        }
    }
}

/// State of windows that are evaluated when they end.
#[derive(Debug)]
pub(crate) struct CloseState {
    /// Next window start (hop) not yet evaluated.
    pub next_eval: i64,
    pub agency: String,
    pub group: Vec<String>,
    /// The latest event of the key: the last line of a window at its end.
    pub last: Record,
}

#[derive(Debug)]
pub(crate) struct Extra {
    pub agg: Agg,
    /// Only for nodes judged at the window end (boxed: most nodes fire early).
    pub close: Option<Box<CloseState>>,
}

/// What one event adds to a key.
pub(crate) struct Contribution {
    /// Bitmask of the referenced rules (by position) the event matched.
    pub rules: u64,
    pub distinct: Option<u64>,
    pub number: Option<f64>,
}

/// What adding an event ran into (for counters).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AddOutcome {
    pub missing_value: bool,
    pub overflow: bool,
}

/// The window state of one group key.
#[derive(Debug)]
pub(crate) struct KeyState {
    /// Latest hop with an event; the ring holds hops `last-HOPS+1 ..= last`.
    pub last: i64,
    pub counts: [u32; HOPS],
    /// Latest epoch in which a window of this key fired.
    pub fired_epoch: i64,
    /// Journal references to the first event of epoch(last) and of the
    /// epoch before; 0 = none.
    pub openers: [Ref; 2],
    /// Their hops, as offsets within their epochs.
    pub opener_off: [u8; 2],
    pub extra: Option<Box<Extra>>,
}

/// A window's measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Measure {
    /// Events in the window.
    pub count: u64,
    /// The condition's measure; `None` when undefined (an average or
    /// percentile of no numbers).
    pub value: Option<f64>,
}

impl KeyState {
    pub fn new(hop: i64, extra: Option<Box<Extra>>) -> Self {
        KeyState {
            last: hop,
            counts: [0; HOPS],
            fired_epoch: i64::MIN,
            openers: [0; 2],
            opener_off: [0; 2],
            extra,
        }
    }

    /// First hop of the epoch after the last one that fired: windows may
    /// only start there or later.
    pub fn floor(&self) -> i64 {
        if self.fired_epoch == i64::MIN {
            i64::MIN
        } else {
            self.fired_epoch.saturating_add(1).saturating_mul(B)
        }
    }

    /// Records the journal reference of the first event of a new epoch.
    /// Call before [`KeyState::advance`] with the event's hop; `fresh` is
    /// true for a key created for this event.
    pub fn note_opener(&mut self, hop: i64, fresh: bool, make: impl FnOnce() -> Ref) {
        let off = hop.rem_euclid(B) as u8;
        if fresh {
            self.openers = [make(), 0];
            self.opener_off = [off, 0];
            return;
        }
        let (e_new, e_cur) = (epoch(hop), epoch(self.last));
        if e_new == e_cur {
            if self.openers[0] == 0 {
                self.openers[0] = make();
                self.opener_off[0] = off;
            }
        } else if e_new == e_cur + 1 {
            self.openers = [make(), self.openers[0]];
            self.opener_off = [off, self.opener_off[0]];
        } else if e_new > e_cur {
            self.openers = [make(), 0];
            self.opener_off = [off, 0];
        }
    }

    /// The first kept event inside a window starting at hop `w`.
    pub fn opener_for(&self, w: i64) -> Ref {
        let e = epoch(self.last);
        let hops = [
            (e - 1) * B + i64::from(self.opener_off[1]),
            e * B + i64::from(self.opener_off[0]),
        ];
        let refs = [self.openers[1], self.openers[0]];
        for (r, h) in refs.into_iter().zip(hops) {
            if r != 0 && h >= w {
                return r;
            }
        }
        0
    }

    /// Moves the ring forward to `hop` (≥ last), clearing the hops that
    /// fall out of it.
    pub fn advance(&mut self, hop: i64) {
        if hop <= self.last {
            return;
        }
        let gap = hop - self.last;
        let clear = |h: i64, counts: &mut [u32; HOPS], extra: &mut Option<Box<Extra>>| {
            counts[slot(h)] = 0;
            if let Some(x) = extra {
                match &mut x.agg {
                    Agg::Distinct { per_hop, .. } => per_hop[slot(h)] = 0,
                    Agg::Sum { sum, n } => {
                        sum[slot(h)] = 0.0;
                        n[slot(h)] = 0;
                    }
                    _ => {}
                }
            }
        };
        if gap >= B {
            for h in 0..B {
                clear(h, &mut self.counts, &mut self.extra);
            }
        } else {
            for h in self.last + 1..=hop {
                clear(h, &mut self.counts, &mut self.extra);
            }
        }
        self.last = hop;
        if let Some(x) = &mut self.extra {
            if let Agg::Samples(s) = &mut x.agg {
                while s.front().is_some_and(|&(h, _)| h <= hop - B) {
                    s.pop_front();
                }
            }
        }
    }

    /// Adds one event at hop `hop` (== last, after [`KeyState::advance`]).
    pub fn add(&mut self, hop: i64, c: &Contribution, max_values: usize) -> AddOutcome {
        let mut out = AddOutcome::default();
        let s = slot(hop);
        self.counts[s] = self.counts[s].saturating_add(1);
        let Some(x) = &mut self.extra else {
            return out;
        };
        let oldest = hop - B + 1;
        match &mut x.agg {
            Agg::Count => {}
            Agg::Distinct { seen, per_hop } => match c.distinct {
                None => out.missing_value = true,
                Some(v) => {
                    if let Some(h) = seen.get_mut(&v) {
                        if *h >= oldest {
                            let c = &mut per_hop[slot(*h)];
                            *c = c.saturating_sub(1);
                        }
                        *h = hop;
                        per_hop[s] += 1;
                    } else {
                        let live: u32 = per_hop.iter().sum();
                        if seen.len() >= max_values || seen.len() > 2 * live as usize + 64 {
                            seen.retain(|_, h| *h >= oldest);
                        }
                        if seen.len() >= max_values {
                            out.overflow = true;
                        } else {
                            seen.insert(v, hop);
                            per_hop[s] += 1;
                        }
                    }
                }
            },
            Agg::Sum { sum, n } => match c.number {
                None => out.missing_value = true,
                Some(v) => {
                    sum[s] += v;
                    n[s] += 1;
                }
            },
            Agg::Samples(samples) => match c.number {
                None => out.missing_value = true,
                Some(v) => {
                    samples.push_back((hop, v));
                    if samples.len() > max_values {
                        samples.pop_front();
                        out.overflow = true;
                    }
                }
            },
            Agg::Temporal(last_seen) => {
                for (pos, seen) in last_seen.iter_mut().enumerate() {
                    if c.rules & (1 << pos) != 0 {
                        *seen = hop;
                    }
                }
            }
            Agg::Ordered(best) => {
                // Highest step first, so one event cannot be two steps.
                for pos in (0..best.len()).rev() {
                    if c.rules & (1 << pos) == 0 {
                        continue;
                    }
                    if pos == 0 {
                        best[0] = hop;
                    } else if best[pos - 1] != i64::MIN {
                        best[pos] = best[pos].max(best[pos - 1]);
                    }
                }
            }
        }
        out
    }

    /// The first hop in `lo ..= hi` (within the ring) that has events.
    pub fn first_candidate(&self, lo: i64, hi: i64) -> Option<i64> {
        let lo = lo.max(self.last - B + 1);
        let hi = hi.min(self.last);
        (lo..=hi).find(|&h| self.counts[slot(h)] > 0)
    }

    /// The measure of the window starting at hop `w`, over the events seen
    /// so far (hops `w ..= last`).
    pub fn measure(&self, w: i64, kind: CorrelationType, percentile: Option<f64>) -> Measure {
        let lo = w.max(self.last - B + 1);
        let hops = lo..=self.last;
        let count: u64 = hops.clone().map(|h| u64::from(self.counts[slot(h)])).sum();
        let value = match self.extra.as_deref().map(|x| &x.agg) {
            None | Some(Agg::Count) => Some(count as f64),
            Some(Agg::Distinct { per_hop, .. }) => {
                Some(hops.map(|h| f64::from(per_hop[slot(h)])).sum::<f64>())
            }
            Some(Agg::Sum { sum, n }) => {
                let total: f64 = hops.clone().map(|h| sum[slot(h)]).sum();
                let k: u64 = hops.map(|h| u64::from(n[slot(h)])).sum();
                match kind {
                    CorrelationType::ValueAvg => (k > 0).then(|| total / k as f64),
                    _ => Some(total),
                }
            }
            Some(Agg::Samples(samples)) => {
                let mut v: Vec<f64> = samples
                    .iter()
                    .filter(|(h, _)| *h >= lo)
                    .map(|&(_, x)| x)
                    .collect();
                nearest_rank(&mut v, percentile.unwrap_or(50.0))
            }
            Some(Agg::Temporal(last_seen)) => {
                Some(last_seen.iter().filter(|&&h| h >= lo).count() as f64)
            }
            Some(Agg::Ordered(best)) => Some(
                best.iter()
                    .rposition(|&h| h >= lo && h != i64::MIN)
                    .map_or(0.0, |p| (p + 1) as f64),
            ),
        };
        Measure { count, value }
    }
}

/// The nearest-rank percentile: the smallest value such that at least `p`
/// percent of the values are less than or equal to it (`p = 0` gives the
/// minimum). Always one of the observed values.
pub(crate) fn nearest_rank(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    let idx = rank.clamp(1, n) - 1;
    let (_, v, _) = values.select_nth_unstable_by(idx, f64::total_cmp);
    Some(*v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_matches_the_textbook() {
        // Wikipedia's example: 15, 20, 35, 40, 50.
        let data = [15.0, 20.0, 35.0, 40.0, 50.0];
        let p = |q: f64| nearest_rank(&mut data.clone(), q);
        assert_eq!(p(5.0), Some(15.0));
        assert_eq!(p(30.0), Some(20.0));
        assert_eq!(p(40.0), Some(20.0));
        assert_eq!(p(50.0), Some(35.0));
        assert_eq!(p(100.0), Some(50.0));
        assert_eq!(p(0.0), Some(15.0));
        assert_eq!(nearest_rank(&mut [], 50.0), None);
    }

    #[test]
    fn ring_counts_slide_with_hops() {
        let mut k = KeyState::new(100, None);
        let c = Contribution {
            rules: 1,
            distinct: None,
            number: None,
        };
        for hop in [100, 100, 103, 109] {
            k.advance(hop);
            k.add(hop, &c, 10);
        }
        assert_eq!(k.measure(100, CorrelationType::EventCount, None).count, 4);
        assert_eq!(k.measure(101, CorrelationType::EventCount, None).count, 2);
        k.advance(110); // hop 100 falls out of the ring
        assert_eq!(k.measure(101, CorrelationType::EventCount, None).count, 2);
        assert_eq!(k.first_candidate(i64::MIN, 110), Some(103));
        k.advance(125);
        assert_eq!(k.measure(116, CorrelationType::EventCount, None).count, 0);
    }

    #[test]
    fn distinct_counts_last_sightings() {
        let mut k = KeyState::new(
            0,
            Some(Box::new(Extra {
                agg: Agg::new(CorrelationType::ValueCount, 1),
                close: None,
            })),
        );
        let add = |k: &mut KeyState, hop: i64, v: u64| {
            k.advance(hop);
            k.add(
                hop,
                &Contribution {
                    rules: 1,
                    distinct: Some(v),
                    number: None,
                },
                100,
            )
        };
        add(&mut k, 0, 1);
        add(&mut k, 1, 2);
        add(&mut k, 2, 1); // value 1 again: still two distinct
        let m = |k: &KeyState, w| k.measure(w, CorrelationType::ValueCount, None).value;
        assert_eq!(m(&k, 0), Some(2.0));
        assert_eq!(m(&k, 2), Some(1.0), "only value 1 was seen from hop 2 on");
        add(&mut k, 12, 3); // hops 0..=2 left the ring
        assert_eq!(m(&k, 3), Some(1.0));
        // Capacity: a full set reports overflow instead of growing.
        let mut small = KeyState::new(
            0,
            Some(Box::new(Extra {
                agg: Agg::new(CorrelationType::ValueCount, 1),
                close: None,
            })),
        );
        for v in 0..3 {
            small.advance(0);
            let out = small.add(
                0,
                &Contribution {
                    rules: 1,
                    distinct: Some(v),
                    number: None,
                },
                2,
            );
            assert_eq!(out.overflow, v == 2);
        }
    }

    #[test]
    fn ordered_chains_need_the_order() {
        let mut k = KeyState::new(
            0,
            Some(Box::new(Extra {
                agg: Agg::new(CorrelationType::TemporalOrdered, 3),
                close: None,
            })),
        );
        let step = |k: &mut KeyState, hop: i64, rules: u64| {
            k.advance(hop);
            k.add(
                hop,
                &Contribution {
                    rules,
                    distinct: None,
                    number: None,
                },
                10,
            );
        };
        let m = |k: &KeyState| k.measure(0, CorrelationType::TemporalOrdered, None).value;
        step(&mut k, 0, 0b010); // b before a: no chain
        assert_eq!(m(&k), Some(0.0));
        step(&mut k, 1, 0b001); // a
        assert_eq!(m(&k), Some(1.0));
        step(&mut k, 1, 0b100); // c before b: chain stays at a
        assert_eq!(m(&k), Some(1.0));
        step(&mut k, 2, 0b110); // one event matching b and c counts once
        assert_eq!(m(&k), Some(2.0));
        step(&mut k, 3, 0b100); // c
        assert_eq!(m(&k), Some(3.0));
    }
}
