//! The collector's disk buffer: a bounded, write-ahead, on-disk FIFO of
//! opaque records (serialized events) between parsing and the Kafka sink.
//!
//! Why it exists: agency links to the centre go down, and a collector must
//! never lose a log because Kafka was unreachable. Every record whose
//! [`DiskBuffer::append`] returned `Ok` survives a crash of the process
//! (SIGKILL included) and, with [`FsyncPolicy::Always`], of the machine; it
//! is delivered by [`DiskBuffer::read_batch`] until [`DiskBuffer::ack`] says
//! Kafka has it.
//!
//! How it works, in one paragraph: records are framed (length, CRC32C,
//! append time, payload) and appended to segment files named after the id of
//! their first record. Appenders encode their records into a shared pending
//! batch under a short lock; whoever then takes the writer lock writes the
//! whole batch in one `write` (group commit), and a dedicated thread fsyncs
//! per the [`FsyncPolicy`], once for everything written since its last
//! fsync. The ack point is an append-only log of checksummed entries; whole
//! segments are deleted once every record in them is acked. On open, the
//! last segment is scanned and a torn tail cut off; reading resumes right
//! after the ack point. See `format.rs` for the byte layout.
//!
//! Failures: a write that fails (a full disk, typically) is rolled back and
//! the append returns [`BufferError::WriteFailed`]; later appends may
//! succeed. Only a failed fsync, after which the kernel may have dropped the
//! data, stops the buffer ([`BufferError::Failed`]) until it is reopened.
//!
//! Blocking: appends and reads do plain `pwrite`/`pread` calls on the
//! calling thread (page-cache copies, microseconds); fsyncs happen on the
//! buffer's own thread, so async callers never wait on the disk except
//! under `Always`, where waiting for the fsync is the point.
//!
//! Module map: `format` (bytes on disk), `segment` (create and read segment
//! files), `writer` (write batches, roll segments), `syncer` (fsync thread),
//! `reader` (read cursor), `ack_log` (persisted ack point), `recovery`
//! (open), `state` (the shared bookkeeping), `dir_lock` (one owner per
//! directory).

mod ack_log;
mod dir_lock;
mod error;
mod format;
mod reader;
mod recovery;
mod segment;
mod state;
mod syncer;
mod writer;

use std::path::PathBuf;
use std::pin::pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

pub use error::BufferError;

use dir_lock::DirLock;
use format::SEGMENT_HEADER_LEN;
use reader::Reader;
use state::{group_bytes, now_ms, Limits, Pending, Reserve, State};
use writer::SegmentWriter;

/// Where and how big the buffer is, and how hard it tries to reach the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferConfig {
    /// Directory holding the segments, the ack log and a lock file. Created
    /// when missing; must not be shared with another buffer.
    pub dir: PathBuf,
    /// Bound on the bytes the buffer keeps on disk. When it is reached,
    /// `append` waits (back-pressure) and `try_append` returns
    /// [`BufferError::Full`] until acks free whole segments.
    pub max_bytes: u64,
    /// Size at which a new segment file is started. Space is freed one
    /// segment at a time, so it is capped at a quarter of `max_bytes`.
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl BufferConfig {
    /// Segment size used when nothing else is said.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
    /// Smallest `max_bytes` accepted.
    pub const MIN_MAX_BYTES: u64 = 16 * 1024;
    /// Smallest `segment_bytes` accepted.
    pub const MIN_SEGMENT_BYTES: u64 = 4 * 1024;

    /// A config with the default segment size and `FsyncPolicy::Interval(1s)`.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> BufferConfig {
        BufferConfig {
            dir: dir.into(),
            max_bytes,
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            fsync: FsyncPolicy::default(),
        }
    }

    fn limits(&self) -> Result<Limits, BufferError> {
        if self.max_bytes < Self::MIN_MAX_BYTES {
            return Err(BufferError::Config {
                key: "max_bytes",
                problem: format!(
                    "{} bytes is too small; use at least {} bytes",
                    self.max_bytes,
                    Self::MIN_MAX_BYTES
                ),
            });
        }
        if self.segment_bytes < Self::MIN_SEGMENT_BYTES {
            return Err(BufferError::Config {
                key: "segment_bytes",
                problem: format!(
                    "{} bytes is too small; use at least {} bytes",
                    self.segment_bytes,
                    Self::MIN_SEGMENT_BYTES
                ),
            });
        }
        if self.fsync == FsyncPolicy::Interval(Duration::ZERO) {
            return Err(BufferError::Config {
                key: "fsync",
                problem: "an fsync interval of 0 means every write; say `always` instead"
                    .to_owned(),
            });
        }
        // At least four segments fit, so acked segments can always be
        // deleted to make room while others fill.
        let segment_bytes = self
            .segment_bytes
            .min(self.max_bytes / 4)
            .min(u64::from(u32::MAX));
        Ok(Limits {
            max_bytes: self.max_bytes,
            segment_bytes,
            max_append_bytes: segment_bytes - SEGMENT_HEADER_LEN,
        })
    }
}

/// When appended data is forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `append` returns only after its records are fsynced (concurrent
    /// appends share one fsync). Survives power loss; slowest.
    Always,
    /// fsync at most this often. `append` returns once the kernel has the
    /// records: a process crash loses nothing, a power cut at most the last
    /// interval. The usual choice.
    Interval(Duration),
    /// Leave it to the kernel's writeback. Survives process crashes only.
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Interval(Duration::from_secs(1))
    }
}

/// A snapshot of the buffer's fill level, for metrics and heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferStats {
    /// Bytes the buffer holds on disk (what `max_bytes` bounds). Includes
    /// acked records of segments not yet wholly acked.
    pub bytes: u64,
    /// The configured bound.
    pub max_bytes: u64,
    /// Records appended and not yet acked.
    pub records: u64,
    /// When the oldest unacked record was appended (to within a second);
    /// `None` when everything is acked.
    pub oldest_unacked_append: Option<SystemTime>,
    /// Segment files on disk.
    pub segments: usize,
    /// Id of the last appended record (0 before the first).
    pub last_id: u64,
    /// Every record up to this id is acked.
    pub acked_id: u64,
    /// Records skipped since open because their bytes on disk were damaged
    /// (logged as errors when it happens). Should stay 0.
    pub damaged_records: u64,
}

impl BufferStats {
    /// Age of the oldest unacked record: the "oldest unsent event" metric.
    pub fn oldest_unacked_age(&self) -> Option<Duration> {
        self.oldest_unacked_append
            .map(|t| SystemTime::now().duration_since(t).unwrap_or_default())
    }
}

/// Handle to an open buffer. Cheap to clone; all clones share one buffer,
/// which is closed when the last clone is dropped.
#[derive(Clone)]
pub struct DiskBuffer {
    handle: Arc<Handle>,
}

/// Owns the fsync thread; stopping it is what closing means.
struct Handle {
    shared: Arc<Shared>,
    syncer: Mutex<Option<JoinHandle<()>>>,
}

/// Everything the handles, the syncer and the reader share.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) limits: Limits,
    pub(crate) policy: FsyncPolicy,
    pub(crate) state: Mutex<State>,
    /// Held while writing a batch: one writer at a time, batches in order.
    writer: Mutex<SegmentWriter>,
    reader: Mutex<Reader>,
    /// Wakes the fsync thread (with `state`).
    pub(crate) syncer_wake: Condvar,
    /// Blocking waiters for an fsync (with `state`).
    pub(crate) synced_cv: Condvar,
    /// Async waiters for an fsync.
    pub(crate) synced_notify: Notify,
    /// Async readers waiting for records.
    pub(crate) data_notify: Notify,
    /// Async appenders waiting for space.
    space_notify: Notify,
    _dir_lock: DirLock,
}

/// Locks a mutex, carrying on if a panicking thread poisoned it: the
/// bookkeeping is updated in steps that leave it consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DiskBuffer {
    /// Opens (creating if needed) the buffer in `cfg.dir` and recovers what
    /// it holds: records appended before a crash or restart and not acked
    /// are delivered again, in order, and ids continue where they stopped.
    pub fn open(cfg: BufferConfig) -> Result<DiskBuffer, BufferError> {
        let limits = cfg.limits()?;
        std::fs::create_dir_all(&cfg.dir)
            .map_err(|e| BufferError::io("create directory", &cfg.dir, e))?;
        let dir_lock = DirLock::acquire(&cfg.dir)?;
        let rec = recovery::recover(&cfg.dir)?;
        let tail_file = Arc::new(rec.tail_file);
        let used_bytes = rec.segments.iter().map(|s| s.size).sum();
        tracing::info!(
            dir = %cfg.dir.display(),
            unacked_records = rec.next_id - 1 - rec.acked,
            bytes = used_bytes,
            segments = rec.segments.len(),
            next_id = rec.next_id,
            "disk buffer opened"
        );
        let state = State {
            next_id: rec.next_id,
            acked: rec.acked,
            segments: rec.segments,
            used_bytes,
            pending: Pending::default(),
            written: rec.tail,
            synced: rec.tail,
            visible: rec.tail,
            unsynced_closed: Vec::new(),
            active_file: Arc::clone(&tail_file),
            dir_dirty: false,
            ack_log: rec.ack_log,
            ack_dirty: false,
            age_samples: rec.age_samples,
            failed: None,
            epoch: 0,
            rollback_points: Vec::new(),
            shutdown: false,
            damaged_records: 0,
        };
        let writer = SegmentWriter {
            first_id: rec.tail.segment,
            file: tail_file,
            offset: rec.tail.offset,
            spare: Vec::new(),
        };
        let shared = Arc::new(Shared {
            dir: cfg.dir.clone(),
            limits,
            policy: cfg.fsync,
            state: Mutex::new(state),
            writer: Mutex::new(writer),
            reader: Mutex::new(Reader::new(rec.acked + 1)),
            syncer_wake: Condvar::new(),
            synced_cv: Condvar::new(),
            synced_notify: Notify::new(),
            data_notify: Notify::new(),
            space_notify: Notify::new(),
            _dir_lock: dir_lock,
        });
        let syncer = if cfg.fsync == FsyncPolicy::Never {
            None
        } else {
            let for_thread = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name("qalqan-buffer-fsync".to_owned())
                .spawn(move || syncer::run(for_thread))
                .map_err(|e| BufferError::io("start fsync thread for", &cfg.dir, e))?;
            Some(thread)
        };
        Ok(DiskBuffer {
            handle: Arc::new(Handle {
                shared,
                syncer: Mutex::new(syncer),
            }),
        })
    }

    /// Appends records atomically as a group (contiguous ids, written
    /// together; concurrent callers are coalesced into one write and one
    /// fsync). Waits while the buffer is full. Returns the id of the last
    /// record; ids are strictly increasing, also across restarts.
    ///
    /// If the future is dropped after it started, the records may or may not
    /// have been appended.
    pub async fn append(&self, records: &[&[u8]]) -> Result<u64, BufferError> {
        let shared = &self.handle.shared;
        let group = shared.check_group(records)?;
        let last = loop {
            let mut space = pin!(shared.space_notify.notified());
            space.as_mut().enable();
            if let Some(reserved) = shared.reserve(records, group)? {
                break reserved;
            }
            space.await;
        };
        let (last, epoch) = last;
        shared.flush(last, epoch)?;
        if shared.policy == FsyncPolicy::Always {
            shared.wait_synced(last).await?;
        }
        Ok(last)
    }

    /// Like [`append`](Self::append) but never waits for space: returns
    /// [`BufferError::Full`] instead (for UDP, which cannot push back).
    /// Under [`FsyncPolicy::Always`] it still blocks for the fsync.
    pub fn try_append(&self, records: &[&[u8]]) -> Result<u64, BufferError> {
        let shared = &self.handle.shared;
        let group = shared.check_group(records)?;
        let Some((last, epoch)) = shared.reserve(records, group)? else {
            return Err(BufferError::Full);
        };
        shared.flush(last, epoch)?;
        if shared.policy == FsyncPolicy::Always {
            shared.wait_synced_blocking(last)?;
        }
        Ok(last)
    }

    /// Up to `max` records (at least one) from the read cursor, in id order,
    /// waiting until at least one is there. Records read but not acked are
    /// delivered again after a restart. Cancel-safe: dropping the future
    /// loses nothing.
    pub async fn read_batch(&self, max: usize) -> Vec<(u64, Vec<u8>)> {
        let shared = &self.handle.shared;
        let max = max.max(1);
        loop {
            let mut data = pin!(shared.data_notify.notified());
            data.as_mut().enable();
            let out = lock(&shared.reader).read(shared, max);
            if !out.is_empty() {
                return out;
            }
            data.await;
        }
    }

    /// Everything up to and including `id` is delivered: persist the ack
    /// point, delete segments that hold only delivered records, and wake
    /// appenders waiting for space. Acking an id at or below the current ack
    /// point does nothing.
    pub fn ack(&self, id: u64) -> Result<(), BufferError> {
        let shared = &self.handle.shared;
        let gone = {
            let mut st = lock(&shared.state);
            if id <= st.acked {
                return Ok(());
            }
            let last = st.visible.next_id - 1;
            if id > last {
                return Err(BufferError::AckBeyondEnd { id, last });
            }
            st.ack_log.record(id)?;
            st.ack_dirty = true;
            st.advance_ack(id, &shared.dir)
        };
        if !gone.is_empty() {
            remove_segments(&gone);
            shared.space_notify.notify_waiters();
        }
        Ok(())
    }

    /// Current fill level.
    pub fn stats(&self) -> BufferStats {
        let st = lock(&self.handle.shared.state);
        BufferStats {
            bytes: st.used_bytes,
            max_bytes: self.handle.shared.limits.max_bytes,
            records: st.unacked(),
            oldest_unacked_append: st.oldest_unacked_append(),
            segments: st.segments.len(),
            last_id: st.next_id - 1,
            acked_id: st.acked,
            damaged_records: st.damaged_records,
        }
    }

    /// Forces everything written and acked so far to stable storage now,
    /// whatever the policy.
    pub fn sync(&self) -> Result<(), BufferError> {
        syncer::sync_round(&self.handle.shared)
    }

    /// Syncs and releases this handle, reporting a failed final fsync (which
    /// dropping cannot). The buffer closes when the last clone is gone.
    pub fn close(self) -> Result<(), BufferError> {
        self.sync()
    }
}

/// Deletes segments whose records are all delivered.
fn remove_segments(paths: &[PathBuf]) {
    for path in paths {
        if let Err(e) = std::fs::remove_file(path) {
            // Harmless: reopening deletes acked segments again.
            tracing::warn!(file = %path.display(), error = %e, "cannot delete a delivered buffer segment");
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.syncer_wake.notify_all();
        if let Some(thread) = lock(&self.syncer).take() {
            // The thread syncs once more on its way out.
            if thread.join().is_err() {
                tracing::error!("disk buffer fsync thread panicked");
            }
        }
    }
}

impl Shared {
    /// Rejects appends that can never succeed, and returns their size.
    fn check_group(&self, records: &[&[u8]]) -> Result<u64, BufferError> {
        if records.is_empty() {
            return Err(BufferError::EmptyBatch);
        }
        let size = group_bytes(records);
        if size > self.limits.max_append_bytes {
            return Err(BufferError::TooLarge {
                size,
                limit: self.limits.max_append_bytes,
            });
        }
        Ok(size)
    }

    /// Encodes the records into the pending batch if they fit: `Some((last
    /// id, epoch))`, or `None` when the buffer is full.
    fn reserve(&self, records: &[&[u8]], group: u64) -> Result<Option<(u64, u64)>, BufferError> {
        let now = now_ms();
        let mut st = lock(&self.state);
        if let Some(msg) = &st.failed {
            return Err(BufferError::Failed(msg.clone()));
        }
        Ok(match st.reserve(records, group, now, &self.limits) {
            Reserve::Done(last, epoch) => Some((last, epoch)),
            Reserve::NoRoom => None,
        })
    }

    /// Makes sure the records up to `last` (reserved in `epoch`) are
    /// written: writes the whole pending batch unless another thread already
    /// did. A failed write is rolled back, so the buffer stays usable (a full
    /// disk is the usual cause and passes).
    fn flush(&self, last: u64, epoch: u64) -> Result<(), BufferError> {
        let mut w = lock(&self.writer);
        let (mut batch, rolls, end_id) = {
            let mut st = lock(&self.state);
            if epoch != st.epoch {
                // A roll-back happened since the reservation: the records
                // were written before it, or discarded by it.
                let (point, error) = usize::try_from(epoch)
                    .ok()
                    .and_then(|e| st.rollback_points.get(e))
                    .cloned()
                    .unwrap_or((0, String::new()));
                return if last < point {
                    Ok(())
                } else {
                    Err(BufferError::WriteFailed(error))
                };
            }
            if st.written.next_id > last {
                return Ok(());
            }
            if let Some(msg) = &st.failed {
                return Err(BufferError::Failed(msg.clone()));
            }
            let spare = std::mem::take(&mut w.spare);
            let bytes = std::mem::replace(&mut st.pending.bytes, spare);
            let rolls = std::mem::take(&mut st.pending.rolls);
            (bytes, rolls, st.next_id)
        };
        let mark = w.mark();
        let result = w.write_batch(&self.dir, &batch, &rolls);
        batch.clear();
        if batch.capacity() <= 8 * 1024 * 1024 {
            w.spare = batch;
        }
        let mut st = lock(&self.state);
        match result {
            Ok(written) => {
                st.written = state::Position {
                    next_id: end_id,
                    segment: w.first_id,
                    offset: w.offset,
                };
                let mut gone = Vec::new();
                if !written.closed.is_empty() {
                    st.active_file = Arc::clone(&w.file);
                    if self.policy != FsyncPolicy::Never {
                        st.unsynced_closed.extend(written.closed);
                        st.dir_dirty = true;
                    }
                    // The segment rolled away from may be wholly acked.
                    gone = st.take_consumed_segments(&self.dir);
                }
                if self.policy == FsyncPolicy::Always {
                    drop(st);
                    self.syncer_wake.notify_all();
                } else {
                    st.visible = st.written;
                    drop(st);
                    self.data_notify.notify_waiters();
                }
                drop(w);
                if !gone.is_empty() {
                    remove_segments(&gone);
                    self.space_notify.notify_waiters();
                }
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                let err = match w.roll_back(&self.dir, mark, &rolls) {
                    Ok(()) => {
                        tracing::error!(error = %message, "disk buffer write failed; the records of this batch were not buffered");
                        st.roll_back_pending(message.clone());
                        BufferError::WriteFailed(message)
                    }
                    Err(undo) => {
                        tracing::error!(error = %message, undo_error = %undo, "disk buffer write failed and could not be undone; appends are refused until restart");
                        let both = format!("{message}; then {undo}");
                        st.failed = Some(both.clone());
                        BufferError::Failed(both)
                    }
                };
                drop(st);
                self.synced_cv.notify_all();
                self.synced_notify.notify_waiters();
                self.space_notify.notify_waiters();
                Err(err)
            }
        }
    }

    /// Waits until the records up to `last` are fsynced.
    async fn wait_synced(&self, last: u64) -> Result<(), BufferError> {
        loop {
            let mut synced = pin!(self.synced_notify.notified());
            synced.as_mut().enable();
            if self.synced_or_failed(&lock(&self.state), last)? {
                return Ok(());
            }
            synced.await;
        }
    }

    fn wait_synced_blocking(&self, last: u64) -> Result<(), BufferError> {
        let mut st = lock(&self.state);
        while !self.synced_or_failed(&st, last)? {
            st = self
                .synced_cv
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        Ok(())
    }

    fn synced_or_failed(&self, st: &State, last: u64) -> Result<bool, BufferError> {
        if st.synced.next_id > last {
            return Ok(true);
        }
        match &st.failed {
            Some(msg) => Err(BufferError::Failed(msg.clone())),
            None => Ok(false),
        }
    }
}
