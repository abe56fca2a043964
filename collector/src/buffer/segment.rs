//! Segment files: creating them, and reading their frames in order.
//!
//! [`SegmentCursor`] is the one place that turns segment bytes into records;
//! recovery uses it to find the valid end of the last segment and the reader
//! uses it to deliver records.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::error::BufferError;
use super::format::{
    decode_frame, decode_segment_header, encode_segment_header, segment_path, Frame,
    SEGMENT_HEADER_LEN,
};

/// How much a cursor reads from the file at once.
const READ_CHUNK: usize = 256 * 1024;
/// Sanity bound for a record length read from disk. Real records are bounded
/// by the segment size; this only stops a corrupt length from being trusted.
const MAX_RECORD_BYTES: u64 = u32::MAX as u64;

/// Creates the segment file for `first_id` with its header. Fails if the file
/// already exists: ids are never reused, so an existing file means trouble.
pub(crate) fn create_segment(dir: &Path, first_id: u64) -> Result<File, BufferError> {
    let path = segment_path(dir, first_id);
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| BufferError::io("create segment", &path, e))?;
    file.write_all_at(&encode_segment_header(first_id), 0)
        .map_err(|e| BufferError::io("write header of", &path, e))?;
    Ok(file)
}

/// One step of reading a segment.
#[derive(Debug)]
pub(crate) enum Next<'a> {
    /// A valid record; its id is the cursor's `next_id` before the call.
    Record { payload: &'a [u8], append_ms: u64 },
    /// No more bytes before the limit (or end of file).
    End,
    /// The bytes at `offset` are not a valid frame: torn write or corruption.
    Damaged { offset: u64, reason: String },
}

/// Sequential, buffered reader of one segment's frames.
pub(crate) struct SegmentCursor {
    pub(crate) first_id: u64,
    /// Id of the record the next call to [`SegmentCursor::next`] returns.
    pub(crate) next_id: u64,
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_off: u64,
    pos: usize,
    /// How much to read at once; small when only the first record matters.
    chunk: usize,
}

impl SegmentCursor {
    /// Opens a segment, checks its header, and positions at its first record.
    pub(crate) fn open(dir: &Path, first_id: u64) -> Result<SegmentCursor, BufferError> {
        let path = segment_path(dir, first_id);
        let file = File::open(&path).map_err(|e| BufferError::io("open segment", &path, e))?;
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        let n = read_full_at(&file, &mut header, 0)
            .map_err(|e| BufferError::io("read header of", &path, e))?;
        let declared =
            decode_segment_header(&header[..n]).map_err(|reason| BufferError::Corrupt {
                path: path.clone(),
                reason,
            })?;
        if declared != first_id {
            return Err(BufferError::Corrupt {
                path,
                reason: format!("header says first record {declared}, file name says {first_id}"),
            });
        }
        Ok(SegmentCursor {
            first_id,
            next_id: first_id,
            file,
            buf: Vec::new(),
            buf_off: SEGMENT_HEADER_LEN,
            pos: 0,
            chunk: READ_CHUNK,
        })
    }

    /// Opens a segment positioned at a known frame boundary (`offset`, the
    /// start of record `next_id`), skipping the scan from the beginning.
    pub(crate) fn open_at(
        dir: &Path,
        first_id: u64,
        offset: u64,
        next_id: u64,
    ) -> Result<SegmentCursor, BufferError> {
        let mut c = SegmentCursor::open(dir, first_id)?;
        c.buf_off = offset;
        c.next_id = next_id;
        Ok(c)
    }

    /// Reads in chunks of `bytes` instead of the default (for peeking at
    /// the first record without reading a large chunk).
    pub(crate) fn with_chunk(mut self, bytes: usize) -> SegmentCursor {
        self.chunk = bytes.max(1);
        self
    }

    /// File offset of the next frame.
    pub(crate) fn offset(&self) -> u64 {
        self.buf_off + self.pos as u64
    }

    /// Reads the next frame, reading no byte at or past `limit` (the end of
    /// the data other threads have finished writing), or up to end of file.
    pub(crate) fn next(&mut self, limit: Option<u64>) -> std::io::Result<Next<'_>> {
        let mut needed = 0usize;
        loop {
            let avail = self.buf.len() - self.pos;
            if needed > avail && !self.fill(needed, limit)? {
                let avail = self.buf.len() - self.pos;
                return Ok(if avail == 0 {
                    Next::End
                } else {
                    Next::Damaged {
                        offset: self.offset(),
                        reason: format!(
                            "incomplete record: {avail} bytes left where the record needs {needed}"
                        ),
                    }
                });
            }
            match decode_frame(&self.buf[self.pos..], MAX_RECORD_BYTES) {
                Frame::Record { len, append_ms, .. } => {
                    let start = self.pos;
                    self.pos += len;
                    self.next_id += 1;
                    let payload = &self.buf[start + super::format::FRAME_HEADER_LEN..start + len];
                    return Ok(Next::Record { payload, append_ms });
                }
                Frame::Incomplete { needed: n } => needed = n,
                Frame::Corrupt { reason } => {
                    return Ok(Next::Damaged {
                        offset: self.offset(),
                        reason,
                    })
                }
            }
        }
    }

    /// Reads until at least `needed` bytes are buffered past `pos`; false
    /// when the limit or end of file comes first.
    fn fill(&mut self, needed: usize, limit: Option<u64>) -> std::io::Result<bool> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.buf_off += self.pos as u64;
            self.pos = 0;
        }
        let want_total = needed.max(self.chunk);
        while self.buf.len() < needed {
            let file_pos = self.buf_off + self.buf.len() as u64;
            let mut want = want_total - self.buf.len();
            if let Some(limit) = limit {
                let room = limit.saturating_sub(file_pos);
                want = want.min(usize::try_from(room).unwrap_or(usize::MAX));
            }
            if want == 0 {
                return Ok(false);
            }
            let old_len = self.buf.len();
            self.buf.resize(old_len + want, 0);
            let n = read_full_at(&self.file, &mut self.buf[old_len..], file_pos);
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    self.buf.truncate(old_len);
                    return Err(e);
                }
            };
            self.buf.truncate(old_len + n);
            if n < want {
                // End of file.
                return Ok(self.buf.len() >= needed);
            }
        }
        Ok(true)
    }
}

/// `read_at` until `buf` is full or end of file; returns the bytes read.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::format::encode_frame;

    #[test]
    fn cursor_reads_frames_respects_limit_and_reports_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let file = create_segment(dir.path(), 10).unwrap();
        let mut frames = Vec::new();
        encode_frame(&mut frames, b"one", 1);
        let first_end = SEGMENT_HEADER_LEN + frames.len() as u64;
        encode_frame(&mut frames, b"two", 2);
        frames.extend_from_slice(&[7, 0, 0]); // torn start of a third frame
        file.write_all_at(&frames, SEGMENT_HEADER_LEN).unwrap();

        let mut c = SegmentCursor::open(dir.path(), 10).unwrap();
        match c.next(Some(first_end)).unwrap() {
            Next::Record { payload, append_ms } => {
                assert_eq!((payload, append_ms), (&b"one"[..], 1))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(c.next(Some(first_end)).unwrap(), Next::End));
        assert_eq!(c.next_id, 11);
        assert!(matches!(
            c.next(None).unwrap(),
            Next::Record {
                payload: b"two",
                ..
            }
        ));
        assert!(matches!(c.next(None).unwrap(), Next::Damaged { .. }));

        let mut at = SegmentCursor::open_at(dir.path(), 10, first_end, 11).unwrap();
        assert!(matches!(
            at.next(None).unwrap(),
            Next::Record {
                payload: b"two",
                ..
            }
        ));
        assert_eq!(at.next_id, 12);

        assert!(
            create_segment(dir.path(), 10).is_err(),
            "ids are never reused"
        );
        assert!(matches!(
            SegmentCursor::open(dir.path(), 11),
            Err(BufferError::Io { .. })
        ));
    }
}
