//! Timer wheel of one correlation node in one input: which keys are due at
//! which hop (a window to evaluate at its end, or a key to expire).
//!
//! A key is registered again each time its due hop moves later; the old
//! entries stay behind and are recognised as stale when their slot comes
//! up. Slots lie between the settled hop and `HOPS + 1` hops after it, so
//! the map stays small. The front slot holds the keys with the oldest
//! activity, which makes it the eviction order too.

use std::collections::BTreeMap;

use crate::window::Key;

#[derive(Debug, Default)]
pub(crate) struct Wheel {
    slots: BTreeMap<i64, Vec<Key>>,
    spare: Vec<Vec<Key>>,
    entries: usize,
}

impl Wheel {
    pub fn add(&mut self, hop: i64, key: Key) {
        let spare = &mut self.spare;
        self.slots
            .entry(hop)
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .push(key);
        self.entries += 1;
    }

    /// The earliest hop with registrations.
    pub fn next_hop(&self) -> Option<i64> {
        self.slots.keys().next().copied()
    }

    /// Removes and returns the earliest slot if it is at or before `hop`.
    pub fn pop_due(&mut self, hop: i64) -> Option<(i64, Vec<Key>)> {
        let (&first, _) = self.slots.iter().next()?;
        if first > hop {
            return None;
        }
        let (h, keys) = self.slots.pop_first()?;
        self.entries -= keys.len();
        Some((h, keys))
    }

    /// Returns a drained slot's vector for reuse.
    pub fn recycle(&mut self, mut keys: Vec<Key>) {
        keys.clear();
        if self.spare.len() < 4 && keys.capacity() <= 1 << 16 {
            self.spare.push(keys);
        }
    }

    /// Takes one entry from the earliest slot (for eviction).
    pub fn pop_front_entry(&mut self) -> Option<(i64, Key)> {
        loop {
            let mut first = self.slots.first_entry()?;
            let hop = *first.key();
            match first.get_mut().pop() {
                Some(k) => {
                    self.entries -= 1;
                    if first.get().is_empty() {
                        let v = first.remove();
                        self.recycle(v);
                    }
                    return Some((hop, k));
                }
                None => {
                    let v = first.remove();
                    self.recycle(v);
                }
            }
        }
    }

    pub fn entries(&self) -> usize {
        self.entries
    }

    pub fn clear(&mut self) {
        self.slots.clear();
        self.entries = 0;
    }
}
