//! `observer.sequence`: a per-collector counter that never repeats and,
//! as far as the machine allows, never skips.
//!
//! Downstream counts gaps in the sequence to detect lost events, so the
//! counter must survive restarts exactly:
//!
//! * `sequence.state` holds the last number handed out. It is overwritten in
//!   place (one small `pwrite`, no fsync) *before* the numbers are used, so
//!   after a process crash (even SIGKILL) the page cache still holds the exact
//!   value and the next run continues without a gap.
//! * The page cache does not survive a power cut or kernel crash, so numbers
//!   are also reserved in blocks in `sequence.reserved`, which is fsynced
//!   before any number of the block is used.
//! * On start, the exact value is trusted when it was written by a clean
//!   shutdown (fsynced, `clean=1`) or during the current boot of the machine
//!   (same `/proc/sys/kernel/random/boot_id`). Otherwise the collector resumes
//!   after the reserved block: numbers are skipped but never reused, and the
//!   heartbeat reports `sequence_resumed = "reserved"` and this run's
//!   `sequence_start`, so the detector can tell that jump from loss.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::state;

/// Numbers reserved durably at a time (one fsync per block).
pub const RESERVE_BLOCK: u64 = 1 << 20;
const RECORD_LEN: usize = 128;

/// How this run's first number was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// No earlier state: the sequence starts at 1.
    Fresh,
    /// Continued exactly after the last number used.
    Exact,
    /// The exact value could not be trusted (unclean shutdown in an earlier
    /// boot): continued after the reserved block, skipping at most this many.
    Reserved { skipped_at_most: u64 },
}

impl Resume {
    pub fn as_str(&self) -> &'static str {
        match self {
            Resume::Fresh => "fresh",
            Resume::Exact => "exact",
            Resume::Reserved { .. } => "reserved",
        }
    }
}

/// Hands out sequence numbers and persists them.
pub struct SequenceAllocator {
    file: File,
    reserved_path: PathBuf,
    boot_id: String,
    /// Last number handed out (0: none yet).
    last: u64,
    /// Numbers up to and including this one are durably reserved.
    reserved: u64,
    first_of_run: u64,
    resume: Resume,
}

struct Exact {
    last: u64,
    clean: bool,
    boot: String,
}

fn parse_record(bytes: &[u8]) -> Option<Exact> {
    let text = std::str::from_utf8(bytes).ok()?;
    let line = text.lines().next()?;
    let mut it = line.split_whitespace();
    if it.next()? != "qalqan-sequence" || it.next()? != "v1" {
        return None;
    }
    let mut last = None;
    let mut clean = None;
    let mut boot = String::new();
    for part in it {
        let (k, v) = part.split_once('=')?;
        match k {
            "last" => last = v.parse().ok(),
            "clean" => clean = Some(v == "1"),
            "boot" => boot = v.to_owned(),
            _ => {}
        }
    }
    Some(Exact {
        last: last?,
        clean: clean?,
        boot,
    })
}

fn current_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl SequenceAllocator {
    /// Opens (or creates) the sequence state under `state_dir`.
    pub fn open(state_dir: &Path) -> anyhow::Result<SequenceAllocator> {
        let state_path = state_dir.join("sequence.state");
        let reserved_path = state_dir.join("sequence.reserved");
        let reserved = match state::read_optional(&reserved_path)? {
            None => 0,
            Some(b) => String::from_utf8_lossy(&b).trim().parse::<u64>().map_err(|_| {
                anyhow::anyhow!(
                    "{} is corrupt (expected one number); restore it from a backup, or write a number larger than any observer.sequence this collector has sent",
                    reserved_path.display()
                )
            })?,
        };
        let exact = state::read_optional(&state_path)?.and_then(|b| parse_record(&b));
        let boot_id = current_boot_id();
        let (last, resume) = match exact {
            None if reserved == 0 => (0, Resume::Fresh),
            None => (
                reserved,
                Resume::Reserved {
                    skipped_at_most: RESERVE_BLOCK,
                },
            ),
            Some(e) if e.clean || (!boot_id.is_empty() && e.boot == boot_id) => {
                (e.last, Resume::Exact)
            }
            Some(e) => (
                reserved.max(e.last),
                Resume::Reserved {
                    skipped_at_most: reserved.saturating_sub(e.last),
                },
            ),
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&state_path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", state_path.display()))?;
        let mut alloc = SequenceAllocator {
            file,
            reserved_path,
            boot_id,
            last,
            reserved: reserved.max(last),
            first_of_run: last + 1,
            resume,
        };
        alloc.write_exact(false)?;
        alloc.file.sync_all()?;
        alloc.reserve_beyond(last)?;
        Ok(alloc)
    }

    fn write_exact(&self, clean: bool) -> std::io::Result<()> {
        let mut rec = format!(
            "qalqan-sequence v1 last={} clean={} boot={}",
            self.last,
            u8::from(clean),
            if self.boot_id.is_empty() {
                "-"
            } else {
                &self.boot_id
            }
        )
        .into_bytes();
        rec.resize(RECORD_LEN - 1, b' ');
        rec.push(b'\n');
        self.file.write_all_at(&rec, 0)
    }

    fn reserve_beyond(&mut self, upto: u64) -> std::io::Result<()> {
        if upto < self.reserved && self.reserved > 0 {
            return Ok(());
        }
        let new = upto.saturating_add(RESERVE_BLOCK);
        state::write_atomic(&self.reserved_path, format!("{new}\n").as_bytes())?;
        self.reserved = new;
        Ok(())
    }

    /// Hands out `n` consecutive numbers and returns the first. The numbers
    /// are persisted before this returns.
    pub fn allocate(&mut self, n: u64) -> std::io::Result<u64> {
        let first = self.last + 1;
        let last = self.last + n;
        if last >= self.reserved {
            self.reserve_beyond(last)?;
        }
        self.last = last;
        self.write_exact(false)?;
        Ok(first)
    }

    /// Last number handed out (0 when none ever was).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The first number this run hands out.
    pub fn first_of_run(&self) -> u64 {
        self.first_of_run
    }

    pub fn resume(&self) -> Resume {
        self.resume
    }

    /// Marks a clean shutdown: the exact value is fsynced and trusted on the
    /// next start, even after a reboot.
    pub fn close(&mut self) -> std::io::Result<()> {
        self.write_exact(true)?;
        self.file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_exactly_after_clean_close_and_after_crash() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut a = SequenceAllocator::open(dir.path()).expect("open");
        assert_eq!(a.resume(), Resume::Fresh);
        assert_eq!(a.allocate(10).expect("alloc"), 1);
        assert_eq!(a.allocate(5).expect("alloc"), 11);
        a.close().expect("close");
        drop(a);
        let mut b = SequenceAllocator::open(dir.path()).expect("open");
        assert_eq!(b.resume(), Resume::Exact);
        assert_eq!(b.allocate(1).expect("alloc"), 16);
        // No close: a crash in the same boot still continues exactly.
        drop(b);
        let mut c = SequenceAllocator::open(dir.path()).expect("open");
        assert_eq!(c.resume(), Resume::Exact);
        assert_eq!(c.allocate(1).expect("alloc"), 17);
    }

    #[test]
    fn unclean_state_from_another_boot_resumes_after_the_reservation() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut a = SequenceAllocator::open(dir.path()).expect("open");
        a.allocate(100).expect("alloc");
        drop(a);
        // Simulate a power cut: the exact record is stale and from another boot.
        let rec = format!(
            "qalqan-sequence v1 last=40 clean=0 boot=other-boot{}\n",
            " ".repeat(60)
        );
        std::fs::write(dir.path().join("sequence.state"), rec).expect("write");
        let mut b = SequenceAllocator::open(dir.path()).expect("open");
        assert!(matches!(b.resume(), Resume::Reserved { .. }));
        let next = b.allocate(1).expect("alloc");
        assert!(next > 100, "never reuses a number: {next}");
        assert_eq!(next, RESERVE_BLOCK + 1);
    }

    #[test]
    fn crossing_a_block_extends_the_reservation() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut a = SequenceAllocator::open(dir.path()).expect("open");
        a.allocate(RESERVE_BLOCK + 5).expect("alloc");
        let reserved: u64 = std::fs::read_to_string(dir.path().join("sequence.reserved"))
            .expect("read")
            .trim()
            .parse()
            .expect("number");
        assert!(reserved > RESERVE_BLOCK + 5);
    }
}
