//! The evidence journal: raw lines kept for alerts, outside the per-key
//! window state.
//!
//! An alert shows the first and the last raw line of its window. The last
//! one is at hand when the window fires; the first one must be kept from the
//! moment the window opened. Keeping a raw line inside every group key's
//! state would make a key cost hundreds of bytes, most of them for keys that
//! never fire. Instead each key holds an 8-byte reference into this journal:
//! a FIFO of records with a byte budget. Under normal load a reference
//! outlives its window many times over; under extreme load (millions of keys
//! opening windows faster than the budget holds their first lines) the
//! oldest records go first, the alert then carries only its last line, and
//! `evidence_lost` counts it. Memory stays bounded either way.

use std::collections::VecDeque;

use qalqan_core::alert::Evidence;

use crate::packed::Packed;
use crate::signal::SignalEntities;

/// A kept event: what an alert shows of it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub ts_us: i64,
    pub ordinal: u64,
    pub packed: Packed,
}

impl Record {
    /// Approximate bytes, for the budget.
    fn cost(&self) -> usize {
        std::mem::size_of::<Record>() + self.packed.bytes()
    }

    pub fn event_id(&self) -> &str {
        self.packed.event_id()
    }

    pub fn entities(&self) -> SignalEntities {
        self.packed.entities()
    }

    pub fn evidence(&self) -> Evidence {
        Evidence {
            event_id: self.packed.event_id().to_owned(),
            timestamp: crate::window::from_micros(self.ts_us),
            original: self.packed.original().to_owned(),
        }
    }
}

/// Reference to a journal record; 0 means none.
pub(crate) type Ref = u64;

/// FIFO of [`Record`]s under a byte budget.
#[derive(Debug)]
pub(crate) struct Journal {
    records: VecDeque<Record>,
    /// Sequence number of `records[0]` (sequence numbers start at 1).
    front_seq: u64,
    bytes: usize,
    budget: usize,
    /// Records dropped to stay within the budget.
    pub dropped: u64,
}

impl Journal {
    pub fn new(budget: usize) -> Self {
        Journal {
            records: VecDeque::new(),
            front_seq: 1,
            bytes: 0,
            budget,
            dropped: 0,
        }
    }

    /// Keeps a record; returns its reference.
    pub fn push(&mut self, record: Record) -> Ref {
        self.bytes += record.cost();
        self.records.push_back(record);
        while self.bytes > self.budget && self.records.len() > 1 {
            if let Some(old) = self.records.pop_front() {
                self.bytes -= old.cost();
                self.front_seq += 1;
                self.dropped += 1;
            }
        }
        self.front_seq + self.records.len() as u64 - 1
    }

    /// The record, if it is still kept.
    pub fn get(&self, r: Ref) -> Option<&Record> {
        if r < self.front_seq {
            return None;
        }
        self.records.get(usize::try_from(r - self.front_seq).ok()?)
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: usize) -> Record {
        Record {
            ts_us: i as i64,
            ordinal: 0,
            packed: Packed::build(crate::packed::Parts {
                agency: "a",
                event_id: &format!("e{i}"),
                original: &"x".repeat(100),
                entities: &SignalEntities::default(),
                group: &[],
            }),
        }
    }

    #[test]
    fn keeps_within_budget_and_forgets_oldest_first() {
        let one = rec(0).cost();
        let mut j = Journal::new(one * 3);
        let refs: Vec<Ref> = (0..5).map(|i| j.push(rec(i))).collect();
        assert_eq!(refs, vec![1, 2, 3, 4, 5]);
        assert!(j.bytes() <= one * 3);
        assert_eq!(j.get(1), None);
        assert_eq!(j.get(2), None);
        assert_eq!(
            j.get(3).map(|r| r.event_id().to_owned()).as_deref(),
            Some("e2")
        );
        assert_eq!(
            j.get(5).map(|r| r.event_id().to_owned()).as_deref(),
            Some("e4")
        );
        assert_eq!(j.get(6), None);
        assert_eq!(j.get(0), None);
        assert_eq!(j.dropped, 2);
    }
}
