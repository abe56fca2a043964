//! The bookkeeping every part of the buffer shares, kept under one mutex:
//! ids, segment sizes, the records encoded but not yet written, how far data
//! is written, synced and visible to the reader, and the ack point.
//!
//! Only quick in-memory work happens under this lock; file I/O is done by the
//! writer, the syncer and the reader with the lock released.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ack_log::AckLog;
use super::format::{encode_frame, frame_len, segment_path, SEGMENT_HEADER_LEN};

/// A point in the queue: every record before `next_id` lies before byte
/// `offset` of the segment that starts at id `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) next_id: u64,
    pub(crate) segment: u64,
    pub(crate) offset: u64,
}

/// A segment as the bookkeeping sees it. `size` includes bytes reserved by
/// appends that the writer has not written yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentMeta {
    pub(crate) first_id: u64,
    pub(crate) size: u64,
}

/// Encoded frames waiting for the writer, with the points where a new
/// segment starts (byte offset into `bytes`, first id of the new segment).
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) bytes: Vec<u8>,
    pub(crate) rolls: Vec<(usize, u64)>,
}

/// Limits derived from the config once at open.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_bytes: u64,
    pub(crate) segment_bytes: u64,
    /// Largest encoded append (one segment minus its header), so a segment
    /// never holds more than `segment_bytes` and space can always be freed.
    pub(crate) max_append_bytes: u64,
}

/// How often the oldest-record-age bookkeeping takes a time sample.
const AGE_SAMPLE_MS: u64 = 1000;

pub(crate) struct State {
    /// Id the next appended record gets.
    pub(crate) next_id: u64,
    /// Every record up to and including this id is delivered.
    pub(crate) acked: u64,
    /// Oldest first; the last is the segment being appended to.
    pub(crate) segments: VecDeque<SegmentMeta>,
    /// Sum of `segments[..].size`: what the bound applies to.
    pub(crate) used_bytes: u64,
    pub(crate) pending: Pending,
    /// End of the data handed to the kernel.
    pub(crate) written: Position,
    /// End of the data known to be on stable storage.
    pub(crate) synced: Position,
    /// End of the data the reader may deliver: `written`, or `synced` under
    /// `FsyncPolicy::Always` so nothing is delivered that a power cut could
    /// still take back.
    pub(crate) visible: Position,
    /// Segment files (first id, file) the writer finished but the syncer
    /// has not fsynced yet.
    pub(crate) unsynced_closed: Vec<(u64, Arc<File>)>,
    /// The file the writer appends to, for the syncer.
    pub(crate) active_file: Arc<File>,
    /// A segment was created since the directory was last fsynced.
    pub(crate) dir_dirty: bool,
    pub(crate) ack_log: AckLog,
    /// The ack log was written since it was last fsynced.
    pub(crate) ack_dirty: bool,
    /// (first id, append time in ms) samples, oldest first, at most one per
    /// `AGE_SAMPLE_MS`: enough to tell the age of the oldest unacked record
    /// to within that, without remembering every record.
    pub(crate) age_samples: VecDeque<(u64, u64)>,
    /// Set when an fsync failed or a failed write could not be undone;
    /// appends are refused from then on.
    pub(crate) failed: Option<String>,
    /// Bumped each time a failed batch write is rolled back. A reservation
    /// remembers the epoch it was made in, because after a roll-back its ids
    /// are handed out again.
    pub(crate) epoch: u64,
    /// `rollback_points[e]`: the first id discarded by the roll-back that
    /// ended epoch `e`, with the error that caused it.
    pub(crate) rollback_points: Vec<(u64, String)>,
    pub(crate) shutdown: bool,
    /// Records the reader had to skip because their bytes were damaged.
    pub(crate) damaged_records: u64,
}

/// Outcome of trying to reserve room for an append.
pub(crate) enum Reserve {
    /// Encoded into `pending`: the id of the last record, and the epoch.
    Done(u64, u64),
    /// Not enough room now.
    NoRoom,
}

impl State {
    /// Encodes `records` into `pending` and assigns their ids, if they fit
    /// under the byte bound. The caller has checked the group size against
    /// `max_append_bytes`.
    pub(crate) fn reserve(
        &mut self,
        records: &[&[u8]],
        group_bytes: u64,
        now_ms: u64,
        limits: &Limits,
    ) -> Reserve {
        let tail_size = self.segments.back().map_or(0, |s| s.size);
        let roll = self.segments.is_empty()
            || (tail_size > SEGMENT_HEADER_LEN && tail_size + group_bytes > limits.segment_bytes);
        let needed = group_bytes + if roll { SEGMENT_HEADER_LEN } else { 0 };
        if self.used_bytes + needed > limits.max_bytes {
            return Reserve::NoRoom;
        }
        if roll {
            self.pending
                .rolls
                .push((self.pending.bytes.len(), self.next_id));
            self.segments.push_back(SegmentMeta {
                first_id: self.next_id,
                size: SEGMENT_HEADER_LEN,
            });
        }
        for r in records {
            encode_frame(&mut self.pending.bytes, r, now_ms);
        }
        if let Some(tail) = self.segments.back_mut() {
            tail.size += group_bytes;
        }
        self.used_bytes += needed;
        let first = self.next_id;
        self.next_id += records.len() as u64;
        match self.age_samples.back() {
            Some(&(_, ms)) if now_ms < ms + AGE_SAMPLE_MS => {}
            _ => self.age_samples.push_back((first, now_ms)),
        }
        Reserve::Done(self.next_id - 1, self.epoch)
    }

    /// Forgets every record from `written.next_id` on (a failed batch and
    /// whatever was reserved after it), so the ids and the bytes can be
    /// used again, and starts a new epoch.
    pub(crate) fn roll_back_pending(&mut self, error: String) {
        let point = self.written.next_id;
        self.rollback_points.push((point, error));
        self.epoch += 1;
        self.next_id = point;
        self.pending.bytes.clear();
        self.pending.rolls.clear();
        while self
            .segments
            .back()
            .is_some_and(|s| s.first_id > self.written.segment)
        {
            self.segments.pop_back();
        }
        if let Some(tail) = self.segments.back_mut() {
            tail.size = self.written.offset;
        }
        self.used_bytes = self.segments.iter().map(|s| s.size).sum();
        self.age_samples.retain(|&(first, _)| first < point);
    }

    /// Moves the ack point to `id` (which the caller checked is written) and
    /// returns the segment files that no longer hold an unacked record. The
    /// segment being appended to is kept: it carries the id sequence.
    pub(crate) fn advance_ack(&mut self, id: u64, dir: &std::path::Path) -> Vec<PathBuf> {
        if id > self.acked {
            self.acked = id;
        }
        while let Some(&(_, _)) = self.age_samples.front() {
            match self.age_samples.get(1) {
                Some(&(next_first, _)) if next_first <= self.acked + 1 => {
                    self.age_samples.pop_front();
                }
                _ => break,
            }
        }
        self.take_consumed_segments(dir)
    }

    /// Removes from the bookkeeping every segment whose records are all
    /// acked and returns their paths for deletion. Only segments before the
    /// one the writer appends to go, so the directory always keeps the
    /// newest segment: its name carries the id sequence across restarts.
    pub(crate) fn take_consumed_segments(&mut self, dir: &std::path::Path) -> Vec<PathBuf> {
        let mut gone = Vec::new();
        while self.segments.len() > 1 {
            let next_first = self.segments[1].first_id;
            if next_first > self.acked + 1 || self.segments[0].first_id >= self.written.segment {
                break;
            }
            if let Some(seg) = self.segments.pop_front() {
                self.used_bytes -= seg.size;
                gone.push(segment_path(dir, seg.first_id));
            }
        }
        gone
    }

    /// Number of appended records not yet acked.
    pub(crate) fn unacked(&self) -> u64 {
        self.next_id - 1 - self.acked
    }

    /// Append time of the oldest unacked record (to within a second).
    pub(crate) fn oldest_unacked_append(&self) -> Option<SystemTime> {
        if self.unacked() == 0 {
            return None;
        }
        let oldest = self.acked + 1;
        let ms = self
            .age_samples
            .iter()
            .take_while(|(first, _)| *first <= oldest)
            .last()
            .or(self.age_samples.front())
            .map(|&(_, ms)| ms)?;
        Some(UNIX_EPOCH + Duration::from_millis(ms))
    }
}

/// Milliseconds since the Unix epoch, the append time stored in each frame.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Encoded size of an append (frames with their headers).
pub(crate) fn group_bytes(records: &[&[u8]]) -> u64 {
    records.iter().map(|r| frame_len(r.len())).sum()
}
