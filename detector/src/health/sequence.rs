//! Loss accounting from the collectors' `observer.sequence`.
//!
//! Every collector numbers its events 1, 2, 3, ... across restarts. Events
//! of one collector reach the detector over several Kafka partitions (the
//! key is the host, not the collector), so numbers arrive out of order. The
//! tracker keeps, per collector, the highest number below which everything
//! has been seen, plus the numbers seen above it. A number still missing
//! once the collector has moved `reorder_window` numbers past it is counted
//! as a gap: a log the centre never received. Numbers seen twice are
//! counted as duplicates (at-least-once delivery after a collector crash).

use std::collections::{BTreeSet, HashMap};

/// Counters for one collector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SequenceStats {
    /// Highest number seen so far.
    pub highest: u64,
    /// Numbers given up on: never arrived within the reorder window.
    pub gaps: u64,
    /// Numbers that arrived more than once (or after being counted as gaps).
    pub duplicates: u64,
    /// Events accounted for.
    pub seen: u64,
}

#[derive(Debug, Default)]
struct CollectorState {
    /// Every number `<= contiguous` is accounted for (seen or counted as a gap).
    contiguous: u64,
    /// Numbers seen above `contiguous`.
    ahead: BTreeSet<u64>,
    stats: SequenceStats,
}

/// What one observation changed, so the caller can bump metrics by deltas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observation {
    pub new_gaps: u64,
    pub duplicate: bool,
}

/// Per-collector sequence tracking with bounded memory.
#[derive(Debug)]
pub struct SequenceTracker {
    reorder_window: u64,
    collectors: HashMap<String, CollectorState>,
}

impl SequenceTracker {
    /// `reorder_window`: how far past a missing number a collector may get
    /// before that number counts as lost. It also bounds memory per collector.
    pub fn new(reorder_window: u64) -> Self {
        SequenceTracker {
            reorder_window: reorder_window.max(1),
            collectors: HashMap::new(),
        }
    }

    /// Records that `collector` sent event number `seq` (numbers start at 1).
    pub fn observe(&mut self, collector: &str, seq: u64) -> Observation {
        let window = self.reorder_window;
        let state = match self.collectors.get_mut(collector) {
            Some(s) => s,
            None => {
                // First sight of this collector: start counting from here, so
                // a detector that starts late does not report history as lost.
                let s = self.collectors.entry(collector.to_owned()).or_default();
                s.contiguous = seq.saturating_sub(1);
                s
            }
        };
        let mut obs = Observation::default();
        state.stats.highest = state.stats.highest.max(seq);
        if seq <= state.contiguous || !state.ahead.insert(seq) {
            state.stats.duplicates += 1;
            obs.duplicate = true;
            return obs;
        }
        state.stats.seen += 1;
        // Advance over what is now contiguous.
        while state.ahead.first() == Some(&(state.contiguous + 1)) {
            state.ahead.pop_first();
            state.contiguous += 1;
        }
        // Give up on numbers the collector has moved well past.
        let give_up_below = state.stats.highest.saturating_sub(window);
        while state.contiguous < give_up_below {
            match state.ahead.first().copied() {
                Some(next) if next <= give_up_below + 1 => {
                    obs.new_gaps += next - state.contiguous - 1;
                    state.ahead.pop_first();
                    state.contiguous = next;
                }
                _ => {
                    obs.new_gaps += give_up_below - state.contiguous;
                    state.contiguous = give_up_below;
                }
            }
            while state.ahead.first() == Some(&(state.contiguous + 1)) {
                state.ahead.pop_first();
                state.contiguous += 1;
            }
        }
        state.stats.gaps += obs.new_gaps;
        obs
    }

    /// Counts as lost whatever is still missing below the highest number seen
    /// (e.g. when a heartbeat says the collector is past it and idle).
    pub fn settle(&mut self, collector: &str, last_sent: u64) -> u64 {
        let Some(state) = self.collectors.get_mut(collector) else {
            return 0;
        };
        let mut gaps = 0;
        while state.contiguous < last_sent {
            match state.ahead.first().copied() {
                Some(next) if next <= last_sent => {
                    gaps += next - state.contiguous - 1;
                    state.ahead.pop_first();
                    state.contiguous = next;
                }
                _ => {
                    gaps += last_sent - state.contiguous;
                    state.contiguous = last_sent;
                }
            }
        }
        state.stats.highest = state.stats.highest.max(last_sent);
        state.stats.gaps += gaps;
        gaps
    }

    pub fn stats(&self, collector: &str) -> Option<&SequenceStats> {
        self.collectors.get(collector).map(|s| &s.stats)
    }

    pub fn collectors(&self) -> impl Iterator<Item = (&str, &SequenceStats)> {
        self.collectors.iter().map(|(k, v)| (k.as_str(), &v.stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_has_no_gaps() {
        let mut t = SequenceTracker::new(100);
        for s in 1..=1000 {
            assert_eq!(t.observe("c1", s), Observation::default());
        }
        let st = t.stats("c1").expect("known");
        assert_eq!(
            (st.gaps, st.duplicates, st.seen, st.highest),
            (0, 0, 1000, 1000)
        );
    }

    #[test]
    fn reordering_within_window_is_not_loss() {
        let mut t = SequenceTracker::new(50);
        let mut order: Vec<u64> = (1..=500).collect();
        // Swap neighbours in blocks of 10: reordered, nothing missing.
        for chunk in order.chunks_mut(10) {
            chunk.reverse();
        }
        for s in order {
            t.observe("c1", s);
        }
        assert_eq!(t.stats("c1").map(|s| s.gaps), Some(0));
    }

    #[test]
    fn missing_numbers_count_once_past_the_window() {
        let mut t = SequenceTracker::new(10);
        for s in (1..=100).filter(|s| *s != 20 && *s != 21 && *s != 60) {
            t.observe("c1", s);
        }
        assert_eq!(t.stats("c1").map(|s| s.gaps), Some(3));
        // A straggler after being given up on is a duplicate, not un-lost.
        assert!(t.observe("c1", 20).duplicate);
    }

    #[test]
    fn duplicates_after_collector_crash_are_counted() {
        let mut t = SequenceTracker::new(10);
        for s in 1..=30 {
            t.observe("c1", s);
        }
        for s in 25..=40 {
            t.observe("c1", s);
        }
        let st = t.stats("c1").expect("known");
        assert_eq!((st.duplicates, st.gaps, st.highest), (6, 0, 40));
    }

    #[test]
    fn settle_counts_the_tail_a_heartbeat_vouches_for() {
        let mut t = SequenceTracker::new(1000);
        for s in 1..=10 {
            t.observe("c1", s);
        }
        assert_eq!(t.settle("c1", 15), 5);
        assert_eq!(t.stats("c1").map(|s| s.gaps), Some(5));
        assert_eq!(t.settle("unknown", 5), 0);
    }

    #[test]
    fn late_starting_detector_does_not_report_history() {
        let mut t = SequenceTracker::new(10);
        t.observe("c1", 1_000_000);
        t.observe("c1", 1_000_001);
        assert_eq!(t.stats("c1").map(|s| s.gaps), Some(0));
    }
}
