//! Errors of the disk buffer. Each names the file or the setting involved so
//! an operator can act on it without reading the code.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// No room for the records right now (only from `try_append`; `append`
    /// waits instead). The caller decides: drop and count (UDP) or retry.
    #[error("disk buffer is full")]
    Full,
    /// The records can never fit: one append may take at most one segment.
    #[error("append of {size} bytes can never fit in the disk buffer: one append may take at most {limit} bytes (raise buffer segment/max size or append fewer records at once)")]
    TooLarge { size: u64, limit: u64 },
    /// `append` and `try_append` need at least one record.
    #[error("append called with no records")]
    EmptyBatch,
    /// A setting that cannot work, with the reason.
    #[error("disk buffer setting `{key}`: {problem}")]
    Config { key: &'static str, problem: String },
    /// An operating-system error on a named file or directory.
    #[error("disk buffer: cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A file in the buffer directory that looks like a segment but cannot be
    /// used. Nothing is deleted: the operator decides what to do with it.
    #[error("disk buffer segment {path} is unreadable: {reason} (move the file away to start without it)")]
    Corrupt { path: PathBuf, reason: String },
    /// Another process (or another `DiskBuffer` in this one) owns the directory.
    #[error(
        "disk buffer directory {dir} is in use by another process (lock file {dir}/LOCK is held)"
    )]
    Locked { dir: PathBuf },
    /// `ack` named a record that was never appended.
    #[error("ack of record {id}, but the last appended record is {last}")]
    AckBeyondEnd { id: u64, last: u64 },
    /// Writing the records failed (typically a full disk) and they were not
    /// buffered; the buffer is consistent and a later append may succeed.
    #[error("disk buffer write failed, the records were not buffered: {0}")]
    WriteFailed(String),
    /// An earlier fsync (or the clean-up after a failed write) failed, so the on-disk queue may no longer
    /// match what was acknowledged; appends are refused until the buffer is
    /// reopened (which recovers from what is on disk).
    #[error("disk buffer stopped accepting records after an I/O failure ({0}); restart the collector to recover")]
    Failed(String),
}

impl BufferError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        BufferError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
