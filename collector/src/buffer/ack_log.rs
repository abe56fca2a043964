//! The persisted ack point: an append-only log of 16-byte entries, each the
//! highest acknowledged id with its checksum. Appending an entry is one small
//! `write`, cheap enough for every `ack` call and durable against a process
//! crash at once; the fsync policy decides when it reaches the platter. When
//! the log grows past a threshold it is replaced atomically (temp file, fsync,
//! rename, fsync of the directory) by a log holding only the latest entry.
//!
//! Losing the newest entries (power loss before fsync) only means some
//! delivered records are delivered again: never that a record is lost.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::BufferError;
use super::format::{
    decode_ack_entry, encode_ack_entry, ACK_ENTRY_LEN, ACK_LOG_NAME, ACK_LOG_TMP_NAME,
};

/// Size at which the log is compacted to a single entry.
const COMPACT_AT_BYTES: u64 = 256 * 1024;

pub(crate) struct AckLog {
    dir: PathBuf,
    path: PathBuf,
    file: Arc<File>,
    len: u64,
}

impl AckLog {
    /// Opens the log in `dir` (creating it when absent) and returns it with
    /// the highest valid ack point it holds (0: nothing acked yet). A torn or corrupt entry is
    /// skipped with a warning, and the log is rewritten clean.
    pub(crate) fn open(dir: &Path) -> Result<(AckLog, u64), BufferError> {
        let path = dir.join(ACK_LOG_NAME);
        let tmp = dir.join(ACK_LOG_TMP_NAME);
        if tmp.exists() {
            // A compaction was interrupted before its rename: the old log is
            // still complete, the temp file is garbage.
            std::fs::remove_file(&tmp).map_err(|e| BufferError::io("remove", &tmp, e))?;
        }
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)
                    .map_err(|e| BufferError::io("read", &path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BufferError::io("open", &path, e)),
        }
        let mut acked: Option<u64> = None;
        let mut damaged = 0usize;
        for entry in bytes.chunks(ACK_ENTRY_LEN) {
            match decode_ack_entry(entry) {
                Some(id) => acked = Some(acked.map_or(id, |a| a.max(id))),
                None => damaged += 1,
            }
        }
        if damaged > 0 {
            tracing::warn!(
                file = %path.display(),
                damaged_entries = damaged,
                "ack log has torn or corrupt entries (expected after a crash); using the highest valid ack point"
            );
        }
        let needs_rewrite =
            damaged > 0 || bytes.len() as u64 >= COMPACT_AT_BYTES || bytes.is_empty();
        let acked = acked.unwrap_or(0);
        let log = if needs_rewrite {
            let file = write_compacted(dir, &path, acked)?;
            AckLog {
                dir: dir.to_owned(),
                path,
                file: Arc::new(file),
                len: ACK_ENTRY_LEN as u64,
            }
        } else {
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| BufferError::io("open", &path, e))?;
            AckLog {
                dir: dir.to_owned(),
                path,
                file: Arc::new(file),
                len: bytes.len() as u64,
            }
        };
        Ok((log, acked))
    }

    /// Records `acked` as the new ack point.
    pub(crate) fn record(&mut self, acked: u64) -> Result<(), BufferError> {
        if self.len >= COMPACT_AT_BYTES {
            let file = write_compacted(&self.dir, &self.path, acked)?;
            self.file = Arc::new(file);
            self.len = ACK_ENTRY_LEN as u64;
            return Ok(());
        }
        self.file
            .write_all_at(&encode_ack_entry(acked), self.len)
            .map_err(|e| BufferError::io("write", &self.path, e))?;
        self.len += ACK_ENTRY_LEN as u64;
        Ok(())
    }

    /// The current log file, for the fsync thread.
    pub(crate) fn file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }
}

/// Atomically replaces the log with one holding only `acked`.
fn write_compacted(dir: &Path, path: &Path, acked: u64) -> Result<File, BufferError> {
    let tmp = dir.join(ACK_LOG_TMP_NAME);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)
        .map_err(|e| BufferError::io("create", &tmp, e))?;
    f.write_all(&encode_ack_entry(acked))
        .map_err(|e| BufferError::io("write", &tmp, e))?;
    f.sync_all()
        .map_err(|e| BufferError::io("fsync", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| BufferError::io("rename into place", path, e))?;
    sync_dir(dir)?;
    Ok(f)
}

/// Makes creations, renames and deletions in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), BufferError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BufferError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_point_survives_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, acked) = AckLog::open(dir.path()).unwrap();
        assert_eq!(acked, 0);
        log.record(5).unwrap();
        log.record(9).unwrap();
        drop(log);
        let (_, acked) = AckLog::open(dir.path()).unwrap();
        assert_eq!(acked, 9);

        // A half-written entry after a crash is ignored.
        let path = dir.path().join(ACK_LOG_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&encode_ack_entry(99)[..7]);
        std::fs::write(&path, &bytes).unwrap();
        let (mut log, acked) = AckLog::open(dir.path()).unwrap();
        assert_eq!(acked, 9);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            ACK_ENTRY_LEN as u64
        );
        log.record(10).unwrap();
        drop(log);
        assert_eq!(AckLog::open(dir.path()).unwrap().1, 10);
    }

    #[test]
    fn compaction_keeps_the_latest_point() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = AckLog::open(dir.path()).unwrap();
        let entries = COMPACT_AT_BYTES / ACK_ENTRY_LEN as u64 + 10;
        for id in 1..=entries {
            log.record(id).unwrap();
        }
        let len = std::fs::metadata(dir.path().join(ACK_LOG_NAME))
            .unwrap()
            .len();
        assert!(len < COMPACT_AT_BYTES, "log was not compacted: {len} bytes");
        drop(log);
        assert_eq!(AckLog::open(dir.path()).unwrap().1, entries);
        assert!(!dir.path().join(ACK_LOG_TMP_NAME).exists());
    }
}
