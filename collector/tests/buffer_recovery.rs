//! Disk buffer across restarts and crashes: clean close, drop without close,
//! torn and corrupt tails written by the test, damaged segments, foreign
//! files, and a real SIGKILL of a writer process. Real files, no mocks.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use qalqan_collector::buffer::{BufferConfig, BufferError, DiskBuffer, FsyncPolicy};

fn open(dir: &Path) -> DiskBuffer {
    let mut cfg = BufferConfig::new(dir, 1 << 20);
    cfg.segment_bytes = 64 * 1024;
    cfg.fsync = FsyncPolicy::Interval(Duration::from_millis(50));
    reopen(cfg)
}

/// Opens a buffer directory this test closed a moment ago.
///
/// The directory lock is an `flock`, which belongs to the open file, not to
/// the descriptor. While another test in this binary spawns a child process,
/// the child holds copies of every descriptor between its fork and its exec
/// (close-on-exec closes them only at exec), so a lock the test just dropped
/// can outlive the drop by that instant. Waiting it out, bounded, keeps the
/// test about recovery; `buffer_queue` tests that a held lock is refused.
fn try_reopen(cfg: BufferConfig) -> Result<DiskBuffer, BufferError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match DiskBuffer::open(cfg.clone()) {
            Err(BufferError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn reopen(cfg: BufferConfig) -> DiskBuffer {
    try_reopen(cfg).unwrap()
}

fn record(n: u64) -> Vec<u8> {
    let mut r = format!("record-{n} ").into_bytes();
    r.resize(250, b'.');
    r
}

async fn append_n(buf: &DiskBuffer, from: u64, count: u64) {
    for n in from..from + count {
        let id = buf.append(&[&record(n)]).await.unwrap();
        assert_eq!(id, n, "ids follow the appends");
    }
}

/// Reads everything currently deliverable (the buffer must hold `expected`).
async fn read_all(buf: &DiskBuffer, expected: u64) -> Vec<(u64, Vec<u8>)> {
    let mut got = Vec::new();
    while (got.len() as u64) < expected {
        let batch = tokio::time::timeout(Duration::from_secs(10), buf.read_batch(1000))
            .await
            .unwrap_or_else(|_| panic!("only {} of {expected} records delivered", got.len()));
        got.extend(batch);
    }
    got
}

fn assert_records(got: &[(u64, Vec<u8>)], ids: std::ops::RangeInclusive<u64>) {
    let want: Vec<u64> = ids.collect();
    let have: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
    assert_eq!(have, want);
    for (id, payload) in got {
        assert_eq!(payload, &record(*id), "payload of record {id}");
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn last_segment(dir: &Path) -> PathBuf {
    segments(dir).pop().expect("a segment file")
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    std::io::Write::write_all(&mut &f, bytes).unwrap();
}

#[tokio::test]
async fn clean_close_resumes_after_the_ack_point_and_redelivers_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let buf = open(dir.path());
    append_n(&buf, 1, 100).await;
    let got = read_all(&buf, 100).await;
    assert_records(&got, 1..=100);
    buf.ack(60).unwrap();
    buf.close().unwrap();

    let buf = open(dir.path());
    let stats = buf.stats();
    assert_eq!(
        (stats.records, stats.acked_id, stats.last_id),
        (40, 60, 100)
    );
    assert!(
        stats.oldest_unacked_append.is_some(),
        "age known after restart"
    );
    let got = read_all(&buf, 40).await;
    assert_records(&got, 61..=100);
    append_n(&buf, 101, 5).await;
    let got = read_all(&buf, 5).await;
    assert_records(&got, 101..=105);
}

#[tokio::test]
async fn drop_without_close_loses_nothing_that_append_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let buf = open(dir.path());
    append_n(&buf, 1, 500).await;
    read_all(&buf, 500).await;
    buf.ack(123).unwrap();
    drop(buf);

    let buf = open(dir.path());
    let got = read_all(&buf, 377).await;
    assert_records(&got, 124..=500);
}

#[tokio::test]
async fn ids_continue_after_everything_was_acked() {
    let dir = tempfile::tempdir().unwrap();
    let buf = open(dir.path());
    append_n(&buf, 1, 10).await;
    read_all(&buf, 10).await;
    buf.ack(10).unwrap();
    drop(buf);
    let buf = open(dir.path());
    assert_eq!(buf.stats().records, 0);
    append_n(&buf, 11, 3).await;
    assert_records(&read_all(&buf, 3).await, 11..=13);
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_every_complete_record_kept() {
    for (name, garbage) in [
        // A frame header promising 250 bytes, followed by only 10 of them.
        ("torn frame", {
            let mut g = vec![0xAB; 4]; // checksum
            g.extend_from_slice(&250u32.to_le_bytes()); // length
            g.extend_from_slice(&[0xCD; 8 + 10]); // time, 10 payload bytes
            g
        }),
        // Zeros: what a crash can leave when the size grew but data did not land.
        ("zero fill", vec![0u8; 4096]),
        // Half a frame header.
        ("short header", vec![1, 2, 3, 4, 5, 6]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let buf = open(dir.path());
        append_n(&buf, 1, 50).await;
        drop(buf);
        let seg = last_segment(dir.path());
        let good_len = std::fs::metadata(&seg).unwrap().len();
        append_bytes(&seg, &garbage);

        let buf = open(dir.path());
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len(),
            good_len,
            "{name}: tail not cut back to the last complete record"
        );
        assert_records(&read_all(&buf, 50).await, 1..=50);
        append_n(&buf, 51, 2).await;
        assert_records(&read_all(&buf, 2).await, 51..=52);
        drop(buf);
        // And the repaired directory reopens cleanly.
        let buf = open(dir.path());
        assert_records(&read_all(&buf, 52).await, 1..=52);
    }
}

#[tokio::test]
async fn a_corrupt_last_record_is_cut_and_the_ones_before_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let buf = open(dir.path());
    append_n(&buf, 1, 30).await;
    drop(buf);
    let seg = last_segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    // Flip a byte inside the payload of the last record (record 30).
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, len - 5).unwrap();
    f.write_all_at(&[byte[0] ^ 0x20], len - 5).unwrap();
    drop(f);

    let buf = open(dir.path());
    assert_eq!(buf.stats().last_id, 29);
    assert_records(&read_all(&buf, 29).await, 1..=29);
    // The id of the cut record is handed out again: it was never delivered.
    assert_eq!(buf.append(&[&record(30)]).await.unwrap(), 30);
}

#[tokio::test]
async fn a_damaged_older_segment_is_skipped_counted_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = BufferConfig::new(dir.path(), 1 << 20);
    cfg.segment_bytes = 8 * 1024; // 30 records of 266 bytes per segment
    cfg.fsync = FsyncPolicy::Never;
    let buf = DiskBuffer::open(cfg.clone()).unwrap();
    append_n(&buf, 1, 100).await;
    drop(buf);
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    // Damage record 11 of the first segment (ids 1..=30).
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segs[0])
        .unwrap();
    f.write_all_at(b"GARBAGE", 32 + 10 * 266 + 40).unwrap();
    drop(f);

    let buf = reopen(cfg);
    let mut got = Vec::new();
    while got.last().map(|(id, _)| *id) != Some(100) {
        got.extend(
            tokio::time::timeout(Duration::from_secs(10), buf.read_batch(1000))
                .await
                .expect("reader stuck at a damaged segment"),
        );
    }
    let ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
    let want: Vec<u64> = (1..=10).chain(31..=100).collect();
    assert_eq!(ids, want);
    for (id, payload) in &got {
        assert_eq!(payload, &record(*id));
    }
    assert_eq!(buf.stats().damaged_records, 20);
}

#[tokio::test]
async fn foreign_files_are_ignored_and_a_bad_segment_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let buf = open(dir.path());
    append_n(&buf, 1, 5).await;
    drop(buf);
    std::fs::write(dir.path().join("notes.txt"), "an operator's notes").unwrap();
    std::fs::create_dir(dir.path().join("old")).unwrap();
    std::fs::write(dir.path().join("12.seg"), "not our naming").unwrap();
    let buf = open(dir.path());
    assert_records(&read_all(&buf, 5).await, 1..=5);
    drop(buf);
    assert!(
        dir.path().join("notes.txt").exists(),
        "foreign files are left alone"
    );

    // A file named like a segment that is not one: a clear error naming it,
    // and nothing deleted.
    let bogus = dir.path().join("00000000000000000900.seg");
    std::fs::write(&bogus, vec![b'z'; 100]).unwrap();
    let mut cfg = BufferConfig::new(dir.path(), 1 << 20);
    cfg.segment_bytes = 64 * 1024;
    let err = try_reopen(cfg.clone())
        .err()
        .expect("bogus segment accepted");
    assert!(matches!(err, BufferError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains("00000000000000000900.seg"),
        "{err}"
    );
    assert!(bogus.exists());
    std::fs::remove_file(&bogus).unwrap();
    let buf = reopen(cfg);
    assert_records(&read_all(&buf, 5).await, 1..=5);
}

#[tokio::test]
async fn an_ack_log_ahead_of_the_data_never_reuses_ids() {
    // A power cut under a relaxed fsync policy can keep the ack log's newest
    // entry but lose the newest records. Simulate it by cutting the segment.
    let dir = tempfile::tempdir().unwrap();
    let buf = open(dir.path());
    append_n(&buf, 1, 20).await;
    read_all(&buf, 20).await;
    buf.ack(20).unwrap();
    drop(buf);
    let seg = last_segment(dir.path());
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(32 + 5 * 266).unwrap();
    drop(f);

    let buf = open(dir.path());
    assert_eq!(buf.stats().records, 0);
    assert_eq!(buf.append(&[&record(21)]).await.unwrap(), 21);
    assert_records(&read_all(&buf, 1).await, 21..=21);
}

/// Locates the `buffer_writer` example next to this test binary, building it
/// first (a no-op when `cargo test` already did).
fn writer_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let target_dir = profile_dir.parent().unwrap();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "-q",
        "-p",
        "qalqan-collector",
        "--example",
        "buffer_writer",
    ])
    .arg("--target-dir")
    .arg(target_dir);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .expect("run cargo to build the buffer_writer example");
    assert!(
        status.success(),
        "building the buffer_writer example failed"
    );
    let bin = profile_dir.join("examples").join("buffer_writer");
    assert!(bin.exists(), "{} missing after the build", bin.display());
    bin
}

/// Runs the writer until it has acknowledged at least `min_acked` records,
/// kills it with SIGKILL, and returns the highest id it acknowledged.
fn run_and_kill(bin: &Path, dir: &Path, policy: &str, min_acked: u64) -> u64 {
    let mut child = Command::new(bin)
        .arg(dir)
        .arg(policy)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut acked = 0u64;
    let started = Instant::now();
    while acked < min_acked {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("writer exited after acknowledging {acked} records"))
            .unwrap();
        acked = line.strip_prefix("acked ").unwrap().parse().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "writer too slow"
        );
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    // Lines already in the pipe were acknowledged before the kill too.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(id) = line.strip_prefix("acked ") {
            acked = acked.max(id.parse().unwrap());
        }
    }
    acked
}

/// Reopens the directory and checks it holds records 1..=N (N ≥ `acked`),
/// each with the payload the writer gave it, and nothing damaged.
fn verify_writer_output(dir: &Path, acked: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let buf = open(dir);
        let stats = buf.stats();
        assert!(
            stats.last_id >= acked,
            "acknowledged up to {acked} but the buffer ends at {}",
            stats.last_id
        );
        let got = read_all(&buf, stats.last_id).await;
        for (i, (id, payload)) in got.iter().enumerate() {
            assert_eq!(*id, i as u64 + 1, "records missing before {id}");
            let text = String::from_utf8_lossy(payload);
            let claimed = text.split(' ').next().unwrap();
            assert_eq!(claimed, format!("id-{id}"), "payload of record {id}");
        }
        assert_eq!(got.len() as u64, stats.last_id);
        assert_eq!(buf.stats().damaged_records, 0);
    });
}

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_record() {
    let bin = writer_binary();
    let dir = tempfile::tempdir().unwrap();
    let mut acked = 0;
    // Two kills: the second writer recovers what the first left and goes on.
    for (policy, more) in [("interval", 20_000), ("never", 20_000)] {
        acked = run_and_kill(&bin, dir.path(), policy, acked + more);
        verify_writer_output(dir.path(), acked);
    }
}

#[test]
fn a_write_failing_for_lack_of_space_is_undone_and_appends_resume() {
    let bin = writer_binary();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(&bin)
        .arg(dir.path())
        .args(["interval", "3000", "--disk-full-at", "200000"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "writer failed: {stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let failures: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("failed "))
        .collect();
    assert_eq!(
        failures.len(),
        1,
        "expected one simulated full disk: {stdout}"
    );
    assert!(failures[0].contains("not buffered"), "{}", failures[0]);
    // The writer checks each retried append got the ids right after the
    // last acknowledged one: the failed batch left no trace.
    assert_eq!(stdout.lines().last(), Some("acked 3000"));
    verify_writer_output(dir.path(), 3000);
}
