//! Memo of prefilter scans across events.
//!
//! The atoms a field scan finds depend on the route and the field's text
//! alone, and most fields of an event source repeat their values from event
//! to event: a Sysmon host runs the same few hundred images under the same
//! users, companies and parent processes. The memo remembers, per (route,
//! field, text), which of the scan's patterns were found, so a repeated
//! value is replayed from the memo instead of being lower-cased and walked
//! through the automaton again. Only single-string values are memoized, and
//! a field whose values rarely repeat (raw lines, hashes, file names with
//! random parts) stops using the memo for a while, so it pays little for a
//! lookup that does not help.

use std::cell::Cell;
use std::hash::Hasher;

use rustc_hash::FxHasher;

use crate::compile::FieldId;

/// Entries of the memo (direct-mapped; a power of two).
const SLOTS: usize = 2048;
/// Longest text memoized: longer values rarely repeat, and copying them
/// into the memo would cost more than it saves.
const MAX_TEXT: usize = 512;
/// Lookups of a field between two looks at its hit rate.
const WINDOW: u32 = 256;
/// A field whose window had fewer hits than this skips the memo ...
const MIN_HITS: u32 = WINDOW / 8;
/// ... for this many of its values, then tries again.
const PAUSE: u32 = 16 * WINDOW;

#[derive(Debug, Default)]
struct Slot {
    /// Route id (see [`crate::route::Route::id`]); 0 = empty.
    route: u64,
    field: FieldId,
    text: String,
    /// Indices into the field scan's patterns of the atoms found.
    pats: Vec<u32>,
    /// Names this entry's text (see [`ValueId`]).
    stamp: ValueId,
}

/// Hit-rate bookkeeping of one field.
#[derive(Debug, Default, Clone, Copy)]
struct FieldStats {
    lookups: u32,
    hits: u32,
    /// Values left to skip before the field uses the memo again.
    paused: u32,
}

/// The memo (one per [`crate::Scratch`]).
#[derive(Debug, Default)]
pub struct ScanMemo {
    slots: Vec<Slot>,
    stats: Vec<FieldStats>,
    /// Last [`ValueId`] handed out.
    stamps: u64,
}

/// Names a memoized (route, field, text) for as long as the memo holds it:
/// a new entry gets a new id, so results remembered under an evicted
/// entry's id are never found again. 0 names nothing.
pub type ValueId = u64;

/// What [`ScanMemo::lookup`] found.
pub enum Lookup<'m> {
    /// The patterns found in this text before.
    Hit(&'m [u32], ValueId),
    /// Not known: scan, and push the patterns found onto this list.
    Miss(&'m mut Vec<u32>, ValueId),
    /// The field does not use the memo now: scan without recording.
    Off,
}

impl ScanMemo {
    /// The memo entry for `text` of `field` on route `route`. Inlined into
    /// the scan loop: called for most fields of every event, its call and
    /// the enum it returns through memory cost as much as its hash.
    #[inline]
    pub fn lookup(&mut self, route: u64, field: FieldId, text: &str) -> Lookup<'_> {
        if route == 0 || text.len() > MAX_TEXT || !self.use_field(field) {
            return Lookup::Off;
        }
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, Slot::default);
        }
        let mut h = FxHasher::default();
        h.write_u64(route);
        h.write_u32(field);
        h.write(text.as_bytes());
        let Some(slot) = self.slots.get_mut((h.finish() >> 32) as usize % SLOTS) else {
            return Lookup::Off;
        };
        let st = &mut self.stats[field as usize];
        st.lookups += 1;
        if slot.route == route && slot.field == field && slot.text == text {
            st.hits += 1;
            return Lookup::Hit(&slot.pats, slot.stamp);
        }
        self.stamps += 1;
        slot.stamp = self.stamps;
        slot.route = route;
        slot.field = field;
        slot.text.clear();
        slot.text.push_str(text);
        slot.pats.clear();
        Lookup::Miss(&mut slot.pats, slot.stamp)
    }

    /// Whether `field` uses the memo for its next value (see [`PAUSE`]).
    #[inline]
    fn use_field(&mut self, field: FieldId) -> bool {
        let i = field as usize;
        if self.stats.len() <= i {
            self.stats.resize(i + 1, FieldStats::default());
        }
        let st = &mut self.stats[i];
        if st.paused > 0 {
            st.paused -= 1;
            return false;
        }
        if st.lookups >= WINDOW {
            if st.hits < MIN_HITS {
                st.paused = PAUSE;
            }
            st.lookups = 0;
            st.hits = 0;
            return st.paused == 0;
        }
        true
    }
}

/// Entries of the item memo (direct-mapped; a power of two).
const ITEM_SLOTS: usize = 4096;

#[derive(Debug, Default, Clone, Copy)]
struct ItemSlot {
    /// Address of the [`crate::compile::Item`] (0 = empty).
    item: usize,
    value: ValueId,
    result: bool,
}

/// Results of detection items per field value, across events.
///
/// An item that reads only its own field (see
/// [`crate::compile::Item::memo`]) gives the same result whenever that
/// field holds the same text, whatever the rest of the event. With the
/// field's [`ValueId`] from the scan memo, a repeated value decides such an
/// item with one lookup instead of its string compares or regular
/// expressions. Entries are keyed by the item's address: items are boxed
/// and live as long as their engine, and the memo is dropped with the
/// [`crate::Scratch`] when the scratch moves to another engine.
#[derive(Debug, Default)]
pub struct ItemMemo {
    slots: Vec<Cell<ItemSlot>>,
}

impl ItemMemo {
    fn index(item: usize, value: ValueId) -> usize {
        let h = (item as u64 ^ value.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 40) as usize % ITEM_SLOTS
    }

    /// The result remembered for `item` on the value `value`.
    #[inline]
    pub fn get(&self, item: usize, value: ValueId) -> Option<bool> {
        let s = self.slots.get(Self::index(item, value))?.get();
        (s.item == item && s.value == value).then_some(s.result)
    }

    /// Remembers the result of `item` on the value `value`.
    #[inline]
    pub fn set(&self, item: usize, value: ValueId, result: bool) {
        if let Some(s) = self.slots.get(Self::index(item, value)) {
            s.set(ItemSlot {
                item,
                value,
                result,
            });
        }
    }

    /// Allocates the table (on first use, so an idle scratch stays small).
    pub fn ensure(&mut self) {
        if self.slots.is_empty() {
            self.slots = vec![Cell::new(ItemSlot::default()); ITEM_SLOTS];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_patterns_per_route_field_and_text() {
        let mut m = ScanMemo::default();
        match m.lookup(1, 5, "cmd.exe") {
            Lookup::Miss(p, _) => p.extend([3, 7]),
            _ => panic!("first lookup must miss"),
        }
        assert!(matches!(m.lookup(1, 5, "cmd.exe"), Lookup::Hit(&[3, 7], 1)));
        assert!(matches!(m.lookup(2, 5, "cmd.exe"), Lookup::Miss(_, 2)));
        assert!(matches!(m.lookup(1, 6, "cmd.exe"), Lookup::Miss(_, 3)));
        assert!(matches!(m.lookup(1, 5, "cmd.EXE"), Lookup::Miss(_, 4)));
    }

    #[test]
    fn item_results_are_kept_per_item_and_value() {
        let mut m = ItemMemo::default();
        assert_eq!(m.get(8, 1), None);
        m.ensure();
        assert_eq!(m.get(8, 1), None);
        m.set(8, 1, true);
        m.set(16, 1, false);
        assert_eq!(m.get(8, 1), Some(true));
        assert_eq!(m.get(16, 1), Some(false));
        assert_eq!(m.get(8, 2), None);
    }

    #[test]
    fn a_field_whose_values_never_repeat_pauses() {
        let mut m = ScanMemo::default();
        let mut off = 0;
        for i in 0..2 * WINDOW {
            if matches!(m.lookup(1, 5, &format!("value {i}")), Lookup::Off) {
                off += 1;
            }
        }
        assert!(off > 0);
        assert!(matches!(m.lookup(1, 6, "x"), Lookup::Miss(..)));
    }
}
