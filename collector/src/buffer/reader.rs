//! The read cursor: delivers records in id order from the segment files,
//! never past what the writer has finished (the visible position).
//!
//! The cursor lives only in memory: after a restart reading starts again
//! right after the persisted ack point, so records that were read but not
//! acked are delivered again (at-least-once).

use super::segment::{Next, SegmentCursor};
use super::state::Position;
use super::{lock, Shared};

pub(crate) struct Reader {
    /// Id of the next record to deliver.
    cursor: u64,
    /// The open segment, positioned at `cursor` when `seg.next_id == cursor`.
    seg: Option<SegmentCursor>,
    /// First id after the open segment, once it is known to be finished.
    seg_end: Option<u64>,
}

impl Reader {
    pub(crate) fn new(cursor: u64) -> Reader {
        Reader {
            cursor,
            seg: None,
            seg_end: None,
        }
    }

    /// Reads up to `max` visible records past the ack point.
    pub(crate) fn read(&mut self, shared: &Shared, max: usize) -> Vec<(u64, Vec<u8>)> {
        let (acked, visible) = {
            let st = lock(&shared.state);
            (st.acked, st.visible)
        };
        if self.cursor <= acked {
            self.cursor = acked + 1;
        }
        let available = visible.next_id.saturating_sub(self.cursor);
        let mut out = Vec::with_capacity(max.min(usize::try_from(available).unwrap_or(max)));
        while out.len() < max && self.cursor < visible.next_id {
            let positioned = matches!(&self.seg, Some(c) if c.next_id == self.cursor);
            if !positioned {
                if self.position(shared, visible) {
                    continue;
                }
                break;
            }
            let Some(seg) = self.seg.as_mut() else { break };
            let active = seg.first_id == visible.segment;
            let end_id = if active {
                visible.next_id
            } else {
                match self.seg_end {
                    Some(end) => end,
                    None => match next_segment_start(shared, seg.first_id) {
                        Some(end) => {
                            self.seg_end = Some(end);
                            end
                        }
                        None => break,
                    },
                }
            };
            if seg.next_id >= end_id {
                self.seg = None;
                self.seg_end = None;
                continue;
            }
            let limit = active.then_some(visible.offset);
            match seg.next(limit) {
                Ok(Next::Record { payload, .. }) => {
                    out.push((self.cursor, payload.to_vec()));
                    self.cursor += 1;
                }
                Ok(Next::End) => {
                    let reason = "segment ends early".to_owned();
                    self.skip_damaged(shared, visible, end_id, active, &reason);
                }
                Ok(Next::Damaged { offset, reason }) => {
                    let reason = format!("{reason} at byte {offset}");
                    self.skip_damaged(shared, visible, end_id, active, &reason);
                }
                Err(e) => {
                    let reason = format!("read error: {e}");
                    self.skip_damaged(shared, visible, end_id, active, &reason);
                }
            }
        }
        out
    }

    /// Opens the segment holding `cursor` and advances to it. False when
    /// there is nothing to read from (the caller stops for now).
    fn position(&mut self, shared: &Shared, visible: Position) -> bool {
        self.seg = None;
        self.seg_end = None;
        if self.cursor == visible.next_id {
            return false;
        }
        let (first, end) = {
            let st = lock(&shared.state);
            if self.cursor <= st.acked {
                self.cursor = st.acked + 1;
            }
            let idx = st.segments.iter().rposition(|s| s.first_id <= self.cursor);
            let Some(idx) = idx else { return false };
            (
                st.segments[idx].first_id,
                st.segments.get(idx + 1).map(|s| s.first_id),
            )
        };
        if self.cursor >= visible.next_id {
            return false;
        }
        let mut seg = match SegmentCursor::open(&shared.dir, first) {
            Ok(seg) => seg,
            Err(e) => {
                if lock(&shared.state).acked >= self.cursor {
                    // Deleted after an ack that overtook the reader.
                    return true;
                }
                let end_id = end.unwrap_or(visible.next_id);
                self.cursor_skip(shared, end_id, &format!("{e}"), first);
                return true;
            }
        };
        let active = first == visible.segment;
        let limit = active.then_some(visible.offset);
        while seg.next_id < self.cursor {
            match seg.next(limit) {
                Ok(Next::Record { .. }) => {}
                other => {
                    let reason = match other {
                        Ok(Next::Damaged { offset, reason }) => {
                            format!("{reason} at byte {offset}")
                        }
                        Err(e) => format!("read error: {e}"),
                        _ => "segment ends early".to_owned(),
                    };
                    let end_id = end.unwrap_or(visible.next_id);
                    self.seg = Some(seg);
                    self.skip_damaged(shared, visible, end_id, active, &reason);
                    return true;
                }
            }
        }
        self.seg = Some(seg);
        self.seg_end = end;
        true
    }

    /// The open segment cannot be read past `cursor`: skip to the next
    /// readable point and report the records that are gone.
    fn skip_damaged(
        &mut self,
        shared: &Shared,
        visible: Position,
        end_id: u64,
        active: bool,
        reason: &str,
    ) {
        let first = self.seg.as_ref().map_or(0, |s| s.first_id);
        if active {
            // Bytes the writer finished cannot go bad in the page cache;
            // if they do anyway, resume at the exact visible position.
            let to = visible.next_id;
            self.cursor_skip(shared, to, reason, first);
            self.seg =
                SegmentCursor::open_at(&shared.dir, visible.segment, visible.offset, to).ok();
            self.seg_end = None;
        } else {
            self.cursor_skip(shared, end_id, reason, first);
            self.seg = None;
            self.seg_end = None;
        }
    }

    fn cursor_skip(&mut self, shared: &Shared, to: u64, reason: &str, segment: u64) {
        let lost = to.saturating_sub(self.cursor);
        let path = super::format::segment_path(&shared.dir, segment);
        tracing::error!(
            file = %path.display(),
            first_lost_id = self.cursor,
            lost_records = lost,
            reason,
            "disk buffer segment is damaged; skipping the records it no longer holds"
        );
        lock(&shared.state).damaged_records += lost;
        self.cursor = self.cursor.max(to);
    }
}

/// First id of the segment after the one starting at `first`, if any.
fn next_segment_start(shared: &Shared, first: u64) -> Option<u64> {
    let st = lock(&shared.state);
    st.segments.iter().map(|s| s.first_id).find(|&f| f > first)
}
