//! The collector's view of the disk buffer (`crate::buffer`, owned by the
//! buffer component): opening it from config, and reading its stats.
//! Kept in one place so the rest of the collector does not depend on the
//! buffer's internals.

use std::path::Path;
use std::time::Duration;

use crate::buffer::{BufferConfig, BufferError, DiskBuffer, FsyncPolicy};
use crate::config::{BufferSection, FsyncMode};

/// Opens (and recovers) the buffer configured in `[buffer]`.
pub fn open(cfg: &BufferSection, state_dir: &Path) -> anyhow::Result<DiskBuffer> {
    let dir = cfg.dir_in(state_dir);
    let fsync = match cfg.fsync {
        FsyncMode::Always => FsyncPolicy::Always,
        FsyncMode::Interval => FsyncPolicy::Interval(cfg.fsync_interval),
        FsyncMode::Never => FsyncPolicy::Never,
    };
    DiskBuffer::open(BufferConfig {
        dir: dir.clone(),
        max_bytes: cfg.max_bytes,
        segment_bytes: cfg.segment_bytes,
        fsync,
    })
    .map_err(|e| {
        anyhow::anyhow!(
            "buffer.dir {}: cannot open the disk buffer: {e}",
            dir.display()
        )
    })
}

/// (bytes, records, age of the oldest unacknowledged record).
pub fn stats(b: &DiskBuffer) -> (u64, u64, Duration) {
    let s = b.stats();
    (
        s.bytes,
        s.records,
        s.oldest_unacked_age().unwrap_or_default(),
    )
}

/// Whether an append failed only because the buffer is full.
pub fn is_full(e: &BufferError) -> bool {
    matches!(e, BufferError::Full)
}

/// Whether an append error can never succeed on retry.
pub fn is_permanent(e: &BufferError) -> bool {
    matches!(e, BufferError::TooLarge { .. } | BufferError::EmptyBatch)
}

/// The buffer's effective segment size (it keeps at least four segments).
pub fn effective_segment(cfg: &BufferSection) -> u64 {
    cfg.segment_bytes.min(cfg.max_bytes / 4)
}

/// Bytes per append group: half a segment, so a batch never needs more
/// than one segment roll.
pub fn append_budget(cfg: &BufferSection) -> usize {
    (effective_segment(cfg) / 2).max(64 * 1024) as usize
}
