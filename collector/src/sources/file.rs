//! `type = "file"`: tail files matched by glob patterns.
//!
//! Files are tracked by identity (device, inode), not by name, so a file
//! renamed by log rotation is read to its end under its new name while the
//! new file at the old name is read from its start. A file whose size drops
//! below the read position was truncated (copytruncate rotation) and is
//! read again from the start. Positions are checkpointed per file as
//! (path, device, inode, offset, fingerprint of the first bytes), advanced
//! only once the events before them are confirmed (see [`checkpoint`]), so
//! a restart resumes exactly after the last confirmed line. The fingerprint
//! guards against inode reuse: a different file that got the same inode
//! starts from 0.
//!
//! A last line without its newline is held until the newline arrives, or
//! sent as it is once the file has not grown for `eof_timeout`. Files are
//! polled (every `poll_interval` when idle): it works the same on every
//! file system, including network mounts where inotify does not.
//!
//! [`checkpoint`]: crate::sources::checkpoint

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ack::Ack;
use crate::config::{FileSourceConfig, ReadFrom};
use crate::pipeline::{Batch, Pipeline, RawLine, SourceInfo};
use crate::sources::checkpoint::{self, JsonFile, Update};

const CHUNK: usize = 256 * 1024;
/// Lines per batch: each batch gets its own checkpoint position, and a
/// batch this size fits in one disk-buffer append, so a position is never
/// split across appends.
const BATCH_LINES: usize = 256;
const FINGERPRINT_LEN: u64 = 256;

/// A file's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileKey {
    pub dev: u64,
    pub inode: u64,
}

/// One checkpoint entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub path: String,
    pub offset: u64,
    /// xxh3 of the first `fp_len` bytes.
    pub fp_len: u64,
    pub fp_hash: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CheckpointFile {
    version: u32,
    files: Vec<CheckpointEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointEntry {
    dev: u64,
    inode: u64,
    #[serde(flatten)]
    pos: Position,
}

/// The checkpoint file of a file source.
pub fn checkpoint_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join(crate::state::file_name_for("file-", id, ".checkpoint.json"))
}

/// Loads a file source's checkpoint (empty when absent or unreadable).
pub fn load_checkpoint(path: &Path) -> BTreeMap<FileKey, Position> {
    let file: CheckpointFile = checkpoint::load_json(path);
    file.files
        .into_iter()
        .map(|e| {
            (
                FileKey {
                    dev: e.dev,
                    inode: e.inode,
                },
                e.pos,
            )
        })
        .collect()
}

fn checkpoint_json(map: &BTreeMap<FileKey, Position>) -> Vec<u8> {
    checkpoint::to_json(&CheckpointFile {
        version: 1,
        files: map
            .iter()
            .map(|(k, p)| CheckpointEntry {
                dev: k.dev,
                inode: k.inode,
                pos: p.clone(),
            })
            .collect(),
    })
}

fn key_of(meta: &std::fs::Metadata) -> FileKey {
    FileKey {
        dev: meta.dev(),
        inode: meta.ino(),
    }
}

fn fingerprint(file: &File, len: u64) -> std::io::Result<u64> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        let n = file.read_at(&mut buf[got..], got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(xxhash_rust::xxh3::xxh3_64(&buf))
}

/// One file being read.
struct Tailer {
    path_str: Arc<str>,
    path: PathBuf,
    file: Option<File>,
    /// Offset just after the last complete line handed over.
    committed: u64,
    /// Offset of the next read.
    read_pos: u64,
    /// Bytes of an unfinished line (from `committed` to `read_pos`).
    partial: Vec<u8>,
    /// Dropping the rest of an overlong line.
    skipping: bool,
    last_growth: Instant,
    /// The path no longer leads to this file (renamed or deleted).
    gone_since: Option<Instant>,
    fp_len: u64,
    fp_hash: u64,
    seen_in_scan: bool,
}

impl Tailer {
    fn position(&self) -> Position {
        Position {
            path: self.path_str.to_string(),
            offset: self.committed,
            fp_len: self.fp_len,
            fp_hash: self.fp_hash,
        }
    }

    fn refresh_fingerprint(&mut self) {
        if self.fp_len >= FINGERPRINT_LEN {
            return;
        }
        let want = self.read_pos.min(FINGERPRINT_LEN);
        if want > self.fp_len {
            if let Some(f) = &self.file {
                if let Ok(h) = fingerprint(f, want) {
                    self.fp_len = want;
                    self.fp_hash = h;
                }
            }
        }
    }
}

/// A configured file source.
pub struct FileSource {
    source: Arc<SourceInfo>,
    cfg: FileSourceConfig,
    checkpoint_path: PathBuf,
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
}

impl FileSource {
    pub fn new(
        id: &str,
        cfg: &FileSourceConfig,
        state_dir: &Path,
        parser: Option<qalqan_core::parse::Parser>,
    ) -> anyhow::Result<FileSource> {
        let exclude = cfg
            .exclude
            .iter()
            .map(|p| {
                glob::Pattern::new(p)
                    .map_err(|e| anyhow::anyhow!("sources.{id}.exclude `{p}`: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(FileSource {
            source: SourceInfo::new(id, "file", parser),
            cfg: cfg.clone(),
            checkpoint_path: checkpoint_path(state_dir, id),
            include: cfg.include.clone(),
            exclude,
        })
    }

    /// Starts reading; returns the reader task and the checkpointer task
    /// (which ends after the reader, once the last confirmations are in).
    pub fn start(
        self,
        pipeline: Arc<Pipeline>,
        cancel: CancellationToken,
    ) -> (JoinHandle<()>, JoinHandle<()>) {
        let saved = load_checkpoint(&self.checkpoint_path);
        let (tx, rx) = mpsc::unbounded_channel();
        let store = JsonFile {
            path: self.checkpoint_path.clone(),
            to_json: checkpoint_json,
        };
        let checkpointer = tokio::spawn(checkpoint::run(
            rx,
            saved.clone(),
            store,
            self.cfg.checkpoint_interval,
            pipeline.metrics().clone(),
            self.source.id.clone(),
        ));
        let reader = tokio::spawn(async move {
            let mut r = Reader {
                src: self,
                files: HashMap::new(),
                saved,
                first_scan: true,
                tx,
            };
            r.run(pipeline, cancel).await;
        });
        (reader, checkpointer)
    }
}

struct Reader {
    src: FileSource,
    files: HashMap<FileKey, Tailer>,
    /// Checkpoint entries not yet matched to a file.
    saved: BTreeMap<FileKey, Position>,
    first_scan: bool,
    tx: mpsc::UnboundedSender<Update<FileKey, Position>>,
}

impl Reader {
    async fn run(&mut self, pipeline: Arc<Pipeline>, cancel: CancellationToken) {
        let mut next_scan = Instant::now();
        let mut buf = Vec::with_capacity(CHUNK);
        loop {
            if cancel.is_cancelled() {
                break;
            }
            if Instant::now() >= next_scan {
                self.scan();
                next_scan = Instant::now() + self.src.cfg.glob_interval;
            }
            let mut progressed = false;
            let mut keys: Vec<FileKey> = self.files.keys().copied().collect();
            keys.sort();
            for key in keys {
                if cancel.is_cancelled() {
                    break;
                }
                let Some(t) = self.files.get_mut(&key) else {
                    continue;
                };
                let lines = match read_chunk(t, self.src.cfg.max_line_bytes as usize, &mut buf) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(source = %self.src.source.id, path = %t.path.display(), "read failed: {e}");
                        continue;
                    }
                };
                let mut lines = lines;
                if lines.is_none() {
                    lines = flush_stale_partial(t, self.src.cfg.eof_timeout);
                }
                if let Some(lines) = lines {
                    progressed = true;
                    self.submit(key, lines, &pipeline, &cancel).await;
                }
            }
            self.close_finished();
            if !progressed {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(self.src.cfg.poll_interval) => {}
                }
            }
        }
    }

    async fn submit(
        &mut self,
        key: FileKey,
        lines: Vec<(RawLine, u64)>,
        pipeline: &Arc<Pipeline>,
        cancel: &CancellationToken,
    ) {
        let Some(t) = self.files.get_mut(&key) else {
            return;
        };
        t.refresh_fingerprint();
        let base = t.position();
        let path = t.path_str.clone();
        let mut lines = lines.into_iter().peekable();
        loop {
            let chunk: Vec<(RawLine, u64)> = lines.by_ref().take(BATCH_LINES).collect();
            let last = lines.peek().is_none();
            // The last batch also covers skipped bytes (empty lines).
            let offset = if last {
                base.offset
            } else {
                chunk.last().map_or(base.offset, |(_, o)| *o)
            };
            let position = Position {
                offset,
                ..base.clone()
            };
            let (ack, wait) = Ack::new(chunk.len());
            let batch = Batch {
                source: self.src.source.clone(),
                lines: chunk.into_iter().map(|(l, _)| l).collect(),
                file_path: Some(path.clone()),
                peer: None,
                ack: Some(ack),
            };
            if let Err(e) = pipeline.process(&batch, cancel).await {
                tracing::error!(source = %self.src.source.id, path = %position.path, "batch not accepted: {e}; it will be read again after restart");
            }
            drop(batch);
            let _ = self.tx.send(Update::Advance {
                key,
                value: position,
                wait,
            });
            if last {
                break;
            }
        }
    }

    /// Expands the globs: picks up new files, notices renamed and deleted ones.
    fn scan(&mut self) {
        for t in self.files.values_mut() {
            t.seen_in_scan = false;
        }
        let mut found: Vec<(PathBuf, std::fs::Metadata)> = Vec::new();
        for pattern in &self.src.include {
            let paths = match glob::glob(pattern) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(source = %self.src.source.id, "bad glob `{pattern}`: {e}");
                    continue;
                }
            };
            for path in paths.flatten() {
                if self.src.exclude.iter().any(|x| x.matches_path(&path)) {
                    continue;
                }
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => found.push((path, m)),
                    _ => {}
                }
            }
        }
        let now = Instant::now();
        for (path, meta) in found {
            let key = key_of(&meta);
            if let Some(t) = self.files.get_mut(&key) {
                t.seen_in_scan = true;
                if t.path == path {
                    t.gone_since = None;
                }
                continue;
            }
            if let Some(t) = self.open(&path, key, &meta) {
                self.files.insert(key, t);
            }
        }
        if self.first_scan {
            self.first_scan = false;
            self.recover_rotated_while_down();
            // Checkpoint entries of files that no longer exist are dropped.
            for (key, _) in std::mem::take(&mut self.saved) {
                let _ = self.tx.send(Update::Forget(key));
            }
        }
        for t in self.files.values_mut() {
            let moved = match std::fs::metadata(&t.path) {
                Ok(m) => t
                    .file
                    .as_ref()
                    .and_then(|f| f.metadata().ok())
                    .is_some_and(|fm| key_of(&fm) != key_of(&m)),
                Err(_) => true,
            };
            if (moved || !t.seen_in_scan) && t.gone_since.is_none() {
                tracing::info!(source = %self.src.source.id, path = %t.path.display(), "file rotated or removed: reading it to its end");
                t.gone_since = Some(now);
            }
        }
    }

    /// Files renamed away while the collector was stopped: their recorded
    /// path now holds another file (or nothing), but the old file may still
    /// sit in the same directory with unread lines. Find it by inode.
    fn recover_rotated_while_down(&mut self) {
        let pending: Vec<(FileKey, Position)> = self
            .saved
            .iter()
            .filter(|(k, _)| !self.files.contains_key(k))
            .map(|(k, p)| (*k, p.clone()))
            .collect();
        for (key, pos) in pending {
            let dir = Path::new(&pos.path)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_file() && key_of(&meta) == key {
                    let path = entry.path();
                    if let Some(mut t) = self.open(&path, key, &meta) {
                        tracing::info!(source = %self.src.source.id, path = %path.display(), offset = t.committed, "reading the rest of a file rotated while the collector was stopped");
                        t.path_str = Arc::from(pos.path.as_str());
                        t.gone_since = Some(Instant::now());
                        self.files.insert(key, t);
                    }
                    break;
                }
            }
        }
    }

    fn open(&mut self, path: &Path, key: FileKey, meta: &std::fs::Metadata) -> Option<Tailer> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(source = %self.src.source.id, path = %path.display(), "cannot open: {e}");
                return None;
            }
        };
        let size = meta.len();
        let mut start = 0;
        let mut fp = (0, xxhash_rust::xxh3::xxh3_64(b""));
        match self.saved.remove(&key) {
            Some(pos) => {
                let same = fingerprint(&file, pos.fp_len).ok() == Some(pos.fp_hash);
                if same && pos.offset <= size {
                    start = pos.offset;
                    fp = (pos.fp_len, pos.fp_hash);
                } else if same {
                    tracing::info!(source = %self.src.source.id, path = %path.display(), "file shrank while the collector was stopped (truncated): reading from the start");
                } else {
                    tracing::info!(source = %self.src.source.id, path = %path.display(), "inode reused by a different file: reading from the start");
                }
            }
            None => {
                if self.first_scan && self.src.cfg.read_from == ReadFrom::End {
                    start = size;
                }
            }
        }
        tracing::info!(source = %self.src.source.id, path = %path.display(), offset = start, "tailing file");
        let mut t = Tailer {
            path_str: Arc::from(path.to_string_lossy().as_ref()),
            path: path.to_path_buf(),
            file: Some(file),
            committed: start,
            read_pos: start,
            partial: Vec::new(),
            skipping: false,
            last_growth: Instant::now(),
            gone_since: None,
            fp_len: fp.0,
            fp_hash: fp.1,
            seen_in_scan: true,
        };
        t.refresh_fingerprint();
        if start > 0 && start == size && t.fp_len == 0 {
            t.refresh_fingerprint();
        }
        Some(t)
    }

    /// Closes files that were rotated away and fully read, and forgets them.
    fn close_finished(&mut self) {
        let wait = self.src.cfg.rotate_wait;
        let done: Vec<FileKey> = self
            .files
            .iter()
            .filter(|(_, t)| {
                t.gone_since.is_some_and(|g| g.elapsed() >= wait)
                    && t.last_growth.elapsed() >= wait
                    && t.file
                        .as_ref()
                        .and_then(|f| f.metadata().ok())
                        .is_none_or(|m| m.len() <= t.read_pos)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in done {
            if let Some(t) = self.files.remove(&key) {
                tracing::info!(source = %self.src.source.id, path = %t.path.display(), "finished rotated file");
                let _ = self.tx.send(Update::Forget(key));
            }
        }
    }
}

/// Reads the next chunk of `t` and splits it into lines. `None` when the
/// file has not grown. Handles truncation (size below the read position).
fn read_chunk(
    t: &mut Tailer,
    max_line: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<(RawLine, u64)>>> {
    let Some(file) = &t.file else { return Ok(None) };
    let size = file.metadata()?.len();
    let mut lines = Vec::new();
    if size < t.read_pos {
        tracing::info!(path = %t.path.display(), "file truncated: reading from the start");
        if !t.partial.is_empty() && !t.skipping {
            lines.push((RawLine::new(std::mem::take(&mut t.partial)), 0));
        }
        t.partial.clear();
        t.skipping = false;
        t.committed = 0;
        t.read_pos = 0;
        t.fp_len = 0;
        t.fp_hash = xxhash_rust::xxh3::xxh3_64(b"");
    }
    if size == t.read_pos {
        return Ok(if lines.is_empty() { None } else { Some(lines) });
    }
    let want = ((size - t.read_pos) as usize).min(CHUNK);
    buf.clear();
    buf.resize(want, 0);
    let n = file.read_at(buf, t.read_pos)?;
    buf.truncate(n);
    if n == 0 {
        return Ok(if lines.is_empty() { None } else { Some(lines) });
    }
    let base = t.read_pos;
    t.read_pos += n as u64;
    t.last_growth = Instant::now();
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', buf) {
        if t.skipping {
            t.skipping = false;
        } else {
            let piece = &buf[start..i];
            let mut data = if t.partial.is_empty() {
                piece.to_vec()
            } else {
                let mut p = std::mem::take(&mut t.partial);
                p.extend_from_slice(piece);
                p
            };
            if data.last() == Some(&b'\r') {
                data.pop();
            }
            if data.is_empty() {
                // An empty line carries nothing.
                start = i + 1;
                t.committed = base + i as u64 + 1;
                continue;
            }
            let truncated = data.len() > max_line;
            data.truncate(max_line);
            lines.push((
                RawLine {
                    data,
                    truncated,
                    ..RawLine::default()
                },
                base + i as u64 + 1,
            ));
        }
        start = i + 1;
        t.committed = base + i as u64 + 1;
    }
    if !t.skipping {
        t.partial.extend_from_slice(&buf[start..]);
        if t.partial.len() > max_line {
            let mut data = std::mem::take(&mut t.partial);
            data.truncate(max_line);
            // The position stays at the line's start until its end is seen.
            lines.push((
                RawLine {
                    data,
                    truncated: true,
                    ..RawLine::default()
                },
                t.committed,
            ));
            t.skipping = true;
        }
    }
    Ok(Some(lines))
}

/// A last line without newline, once the file has been quiet for `timeout`.
fn flush_stale_partial(
    t: &mut Tailer,
    timeout: std::time::Duration,
) -> Option<Vec<(RawLine, u64)>> {
    if t.partial.is_empty() || t.skipping || t.last_growth.elapsed() < timeout {
        return None;
    }
    let mut data = std::mem::take(&mut t.partial);
    if data.last() == Some(&b'\r') {
        data.pop();
    }
    t.committed = t.read_pos;
    Some(vec![(RawLine::new(data), t.read_pos)])
}
