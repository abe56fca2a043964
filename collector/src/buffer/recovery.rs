//! Opening a buffer directory: find the segments, check them, cut a torn
//! tail, and work out the ids and the ack point to resume from.
//!
//! The rules, in the order they are applied:
//! - Files that are not ours are left alone, with a warning.
//! - Every segment header is checked; one that cannot be read is an error
//!   naming the file (nothing is deleted behind the operator's back).
//! - The last segment is scanned record by record; the first torn or corrupt
//!   frame and everything after it is cut off, with a warning. Records before
//!   it are complete (length and checksum agree), so nothing that an append
//!   acknowledged is lost.
//! - The ack point is the highest of the ack log and "everything before the
//!   first remaining segment" (a deletion may reach the disk before the ack
//!   log entry that allowed it).
//! - Segments whose records are all acked are deleted.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::ack_log::{sync_dir, AckLog};
use super::error::BufferError;
use super::format::{
    encode_segment_header, parse_segment_file_name, segment_path, ACK_LOG_NAME, ACK_LOG_TMP_NAME,
    LOCK_NAME, SEGMENT_HEADER_LEN,
};
use super::segment::{create_segment, Next, SegmentCursor};
use super::state::{Position, SegmentMeta};

/// What the directory holds after recovery.
pub(crate) struct Recovered {
    pub(crate) segments: VecDeque<SegmentMeta>,
    pub(crate) next_id: u64,
    pub(crate) acked: u64,
    /// End of the valid data: where appending resumes.
    pub(crate) tail: Position,
    pub(crate) tail_file: File,
    pub(crate) ack_log: AckLog,
    /// (first id, append ms) samples for the oldest-unacked age.
    pub(crate) age_samples: VecDeque<(u64, u64)>,
}

pub(crate) fn recover(dir: &Path) -> Result<Recovered, BufferError> {
    let (ack_log, persisted_ack) = AckLog::open(dir)?;
    let mut firsts = list_segments(dir)?;
    for &first in firsts.iter().rev().skip(1) {
        // Checks the header; the file is read for real only when delivered.
        SegmentCursor::open(dir, first)?;
    }

    let mut acked = persisted_ack;
    if let Some(&first) = firsts.first() {
        acked = acked.max(first - 1);
    }

    let mut tail = None;
    if let Some(&last) = firsts.last() {
        tail = Some(recover_tail(dir, last)?);
    }
    let data_next = tail.as_ref().map_or(1, |t| t.first_id + t.records);
    let next_id = data_next.max(acked + 1);
    if next_id > data_next && !firsts.is_empty() {
        // The ack log is ahead of the data: the data lost its newest records
        // (power cut under a relaxed fsync policy) after they were
        // delivered. Everything on disk is acked; start afresh after it so
        // no id is ever handed out twice.
        tracing::warn!(
            dir = %dir.display(),
            acked,
            data_ends_at = data_next - 1,
            "buffer data ends before the ack point; all segments are delivered, starting a new one"
        );
        for first in firsts.drain(..) {
            remove_segment(dir, first)?;
        }
        tail = None;
    }

    // Segments whose records are all acked (all but the last can be).
    while firsts.len() > 1 && firsts[1] <= acked + 1 {
        let first = firsts.remove(0);
        remove_segment(dir, first)?;
    }

    let (tail_file, tail_pos) = match tail {
        Some(t) => (
            t.file,
            Position {
                next_id,
                segment: t.first_id,
                offset: t.end,
            },
        ),
        None => {
            let file = create_segment(dir, next_id)?;
            file.sync_all()
                .map_err(|e| BufferError::io("fsync", segment_path(dir, next_id), e))?;
            sync_dir(dir)?;
            firsts = vec![next_id];
            (
                file,
                Position {
                    next_id,
                    segment: next_id,
                    offset: SEGMENT_HEADER_LEN,
                },
            )
        }
    };

    let mut segments = VecDeque::with_capacity(firsts.len());
    for &first in &firsts {
        let size = if first == tail_pos.segment {
            tail_pos.offset
        } else {
            let path = segment_path(dir, first);
            std::fs::metadata(&path)
                .map_err(|e| BufferError::io("stat", &path, e))?
                .len()
        };
        segments.push_back(SegmentMeta {
            first_id: first,
            size,
        });
    }
    let age_samples = age_samples(dir, &firsts, acked, next_id);

    Ok(Recovered {
        segments,
        next_id,
        acked,
        tail: tail_pos,
        tail_file,
        ack_log,
        age_samples,
    })
}

/// Segment first ids in the directory, sorted; warns about foreign files.
fn list_segments(dir: &Path) -> Result<Vec<u64>, BufferError> {
    let entries = std::fs::read_dir(dir).map_err(|e| BufferError::io("list", dir, e))?;
    let mut firsts = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| BufferError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            tracing::warn!(file = ?entry.path(), "ignoring a file that is not part of the disk buffer");
            continue;
        };
        if let Some(first) = parse_segment_file_name(name) {
            let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
            if !is_file || first == 0 {
                return Err(BufferError::Corrupt {
                    path: entry.path(),
                    reason: if first == 0 {
                        "record ids start at 1, so no segment can start at 0".to_owned()
                    } else {
                        "named like a segment but not a regular file".to_owned()
                    },
                });
            }
            firsts.push(first);
        } else if name != ACK_LOG_NAME && name != ACK_LOG_TMP_NAME && name != LOCK_NAME {
            tracing::warn!(file = %entry.path().display(), "ignoring a file that is not part of the disk buffer");
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

struct Tail {
    first_id: u64,
    records: u64,
    end: u64,
    file: File,
}

/// Scans the last segment and cuts off a torn or corrupt end.
fn recover_tail(dir: &Path, first_id: u64) -> Result<Tail, BufferError> {
    let path = segment_path(dir, first_id);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| BufferError::io("open segment", &path, e))?;
    let len = file
        .metadata()
        .map_err(|e| BufferError::io("stat", &path, e))?
        .len();
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    let header_len = len.min(SEGMENT_HEADER_LEN) as usize;
    file.read_exact_at(&mut header[..header_len], 0)
        .map_err(|e| BufferError::io("read header of", &path, e))?;
    if len < SEGMENT_HEADER_LEN || header.iter().all(|&b| b == 0) {
        // Created but the header never reached the disk: a crash right
        // after the segment was started. It holds no record.
        tracing::warn!(
            file = %path.display(),
            bytes = len,
            "last buffer segment has no complete header (crash while it was created); rewriting it empty"
        );
        file.set_len(0)
            .and_then(|()| file.write_all_at(&encode_segment_header(first_id), 0))
            .and_then(|()| file.sync_all())
            .map_err(|e| BufferError::io("rewrite header of", &path, e))?;
        return Ok(Tail {
            first_id,
            records: 0,
            end: SEGMENT_HEADER_LEN,
            file,
        });
    }

    let mut cursor = SegmentCursor::open(dir, first_id)?;
    let damage = loop {
        match cursor.next(None) {
            Ok(Next::Record { .. }) => {}
            Ok(Next::End) => break None,
            Ok(Next::Damaged { offset, reason }) => break Some((offset, reason)),
            Err(e) => return Err(BufferError::io("read", &path, e)),
        }
    };
    let end = cursor.offset();
    if let Some((offset, reason)) = damage {
        tracing::warn!(
            file = %path.display(),
            offset,
            cut_bytes = len - offset,
            reason = %reason,
            "cutting a torn or corrupt tail off the last buffer segment (expected after a crash); every complete record before it is kept"
        );
        file.set_len(offset)
            .and_then(|()| file.sync_all())
            .map_err(|e| BufferError::io("truncate", &path, e))?;
    }
    Ok(Tail {
        first_id,
        records: cursor.next_id - first_id,
        end,
        file,
    })
}

fn remove_segment(dir: &Path, first_id: u64) -> Result<(), BufferError> {
    let path = segment_path(dir, first_id);
    std::fs::remove_file(&path).map_err(|e| BufferError::io("delete delivered segment", &path, e))
}

/// Append times of the oldest unacked record and of the first record of each
/// later segment, so the age metric is right straight after a restart. Best
/// effort: a record that cannot be read just gives no sample.
fn age_samples(dir: &Path, firsts: &[u64], acked: u64, next_id: u64) -> VecDeque<(u64, u64)> {
    let mut samples = VecDeque::new();
    let oldest = acked + 1;
    if oldest >= next_id {
        return samples;
    }
    for (i, &first) in firsts.iter().enumerate() {
        let end = firsts.get(i + 1).copied().unwrap_or(next_id);
        if end <= oldest {
            continue;
        }
        let target = first.max(oldest);
        let Ok(cursor) = SegmentCursor::open(dir, first) else {
            continue;
        };
        let mut cursor = if target == first {
            cursor.with_chunk(4096)
        } else {
            cursor
        };
        while cursor.next_id <= target {
            let id = cursor.next_id;
            match cursor.next(None) {
                Ok(Next::Record { append_ms, .. }) if id == target => {
                    samples.push_back((target, append_ms));
                }
                Ok(Next::Record { .. }) => {}
                _ => break,
            }
        }
    }
    samples
}
