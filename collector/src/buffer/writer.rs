//! The segment writer: turns a batch of encoded frames into file writes,
//! starting new segment files where the bookkeeping decided to roll.
//!
//! Only one thread writes at a time (it holds the writer mutex); appenders
//! that arrive meanwhile add their frames to the pending batch, and whoever
//! takes the writer mutex next writes all of them with one `write` per
//! segment: that is the "group" in group commit.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::error::BufferError;
use super::format::{segment_path, SEGMENT_HEADER_LEN};
use super::segment::create_segment;

pub(crate) struct SegmentWriter {
    /// First id of the segment being appended to.
    pub(crate) first_id: u64,
    pub(crate) file: Arc<File>,
    /// End of the data written to `file`.
    pub(crate) offset: u64,
    /// Spare batch buffer, swapped with the pending one to avoid allocation.
    pub(crate) spare: Vec<u8>,
}

/// Where the writer stood before a batch, to return there if it fails.
pub(crate) struct Mark {
    first_id: u64,
    file: Arc<File>,
    offset: u64,
}

/// What a batch write changed, for the bookkeeping.
pub(crate) struct Written {
    /// Segment files (first id, file) finished (rolled away from) by this batch.
    pub(crate) closed: Vec<(u64, Arc<File>)>,
}

impl SegmentWriter {
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            first_id: self.first_id,
            file: Arc::clone(&self.file),
            offset: self.offset,
        }
    }

    /// Undoes a failed batch: deletes the segments it started and cuts the
    /// segment it appended to back to where it was. Errors mean the disk
    /// state is unknown.
    pub(crate) fn roll_back(
        &mut self,
        dir: &Path,
        mark: Mark,
        rolls: &[(usize, u64)],
    ) -> Result<(), BufferError> {
        for &(_, first_id) in rolls {
            let path = segment_path(dir, first_id);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(BufferError::io("delete unfinished segment", path, e)),
            }
        }
        self.first_id = mark.first_id;
        self.file = mark.file;
        self.offset = mark.offset;
        self.file
            .set_len(self.offset)
            .map_err(|e| BufferError::io("truncate", segment_path(dir, self.first_id), e))
    }

    /// Writes `bytes`, starting a new segment at each roll point.
    pub(crate) fn write_batch(
        &mut self,
        dir: &Path,
        bytes: &[u8],
        rolls: &[(usize, u64)],
    ) -> Result<Written, BufferError> {
        let mut closed = Vec::new();
        let mut start = 0usize;
        for &(at, first_id) in rolls {
            self.write(dir, &bytes[start..at])?;
            let file = create_segment(dir, first_id)?;
            let old = std::mem::replace(&mut self.file, Arc::new(file));
            closed.push((self.first_id, old));
            self.first_id = first_id;
            self.offset = SEGMENT_HEADER_LEN;
            start = at;
        }
        self.write(dir, &bytes[start..])?;
        Ok(Written { closed })
    }

    fn write(&mut self, dir: &Path, bytes: &[u8]) -> Result<(), BufferError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.file
            .write_all_at(bytes, self.offset)
            .map_err(|e| BufferError::io("write", segment_path(dir, self.first_id), e))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }
}
