//! Disk buffer as a queue: order, ids, acks, the byte bound and
//! back-pressure, and concurrent producers with a draining reader. Real files
//! in temporary directories.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use qalqan_collector::buffer::{BufferConfig, BufferError, DiskBuffer, FsyncPolicy};

fn config(dir: &Path, max_bytes: u64, fsync: FsyncPolicy) -> BufferConfig {
    let mut cfg = BufferConfig::new(dir, max_bytes);
    cfg.fsync = fsync;
    cfg
}

fn record(n: u64) -> Vec<u8> {
    let mut r = format!("record-{n} ").into_bytes();
    r.resize(250, b'.');
    r
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".seg")
        })
        .count()
}

async fn drain(buf: &DiskBuffer, expected: usize) -> Vec<(u64, Vec<u8>)> {
    let mut got = Vec::new();
    while got.len() < expected {
        let batch = tokio::time::timeout(Duration::from_secs(10), buf.read_batch(100))
            .await
            .expect("records expected but none arrived within 10 s");
        got.extend(batch);
    }
    got
}

#[tokio::test]
async fn records_come_out_in_order_with_contiguous_increasing_ids() {
    let dir = tempfile::tempdir().unwrap();
    let buf = DiskBuffer::open(config(dir.path(), 1 << 20, FsyncPolicy::Never)).unwrap();
    let mut next = 0u64;
    let mut expected_last_ids = Vec::new();
    for group in [1usize, 3, 7, 1, 20] {
        let records: Vec<Vec<u8>> = (0..group).map(|i| record(next + i as u64)).collect();
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let last = buf.append(&refs).await.unwrap();
        next += group as u64;
        expected_last_ids.push(last);
        assert_eq!(last, next, "ids start at 1 and are contiguous");
    }
    assert_eq!(expected_last_ids, vec![1, 4, 11, 12, 32]);
    let got = drain(&buf, 32).await;
    for (i, (id, payload)) in got.iter().enumerate() {
        assert_eq!(*id, i as u64 + 1);
        assert_eq!(payload, &record(i as u64));
    }
    let stats = buf.stats();
    assert_eq!((stats.records, stats.last_id, stats.acked_id), (32, 32, 0));
    assert!(stats.oldest_unacked_append.is_some());
}

#[tokio::test]
async fn ack_frees_space_by_deleting_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    // max 64 KiB → segments of 16 KiB (a quarter), ~61 records each.
    let mut cfg = config(
        dir.path(),
        64 * 1024,
        FsyncPolicy::Interval(Duration::from_millis(50)),
    );
    cfg.segment_bytes = 16 * 1024;
    let buf = DiskBuffer::open(cfg).unwrap();
    for n in 0..180 {
        buf.append(&[&record(n)]).await.unwrap();
    }
    assert_eq!(segment_files(dir.path()), 3);
    let full = buf.stats();
    assert_eq!(full.segments, 3);
    assert!(full.bytes > 180 * 266, "bytes {} too small", full.bytes);

    let got = drain(&buf, 180).await;
    assert_eq!(got.len(), 180);
    // Acking inside the first segment frees nothing yet.
    buf.ack(10).unwrap();
    assert_eq!(segment_files(dir.path()), 3);
    assert_eq!(buf.stats().bytes, full.bytes);
    assert_eq!(buf.stats().records, 170);
    // Acking past the second segment deletes the first two.
    buf.ack(150).unwrap();
    assert_eq!(segment_files(dir.path()), 1);
    let after = buf.stats();
    assert!(
        after.bytes < full.bytes / 2,
        "{} !< {}/2",
        after.bytes,
        full.bytes
    );
    assert_eq!((after.records, after.acked_id), (30, 150));
    // Acking everything keeps the segment being written (it carries the ids).
    buf.ack(180).unwrap();
    assert_eq!(segment_files(dir.path()), 1);
    assert_eq!(buf.stats().records, 0);
    assert_eq!(buf.stats().oldest_unacked_append, None);
    // Acks are idempotent; acking the future is an error.
    buf.ack(100).unwrap();
    assert!(matches!(
        buf.ack(181),
        Err(BufferError::AckBeyondEnd { id: 181, last: 180 })
    ));
}

#[tokio::test]
async fn try_append_says_full_and_append_waits_until_an_ack_frees_space() {
    let dir = tempfile::tempdir().unwrap();
    let buf = DiskBuffer::open(config(dir.path(), 16 * 1024, FsyncPolicy::Never)).unwrap();
    let mut appended = 0u64;
    loop {
        match buf.try_append(&[&record(appended)]) {
            Ok(id) => {
                appended += 1;
                assert_eq!(id, appended);
            }
            Err(BufferError::Full) => break,
            Err(e) => panic!("unexpected error {e}"),
        }
        assert!(appended < 1000, "a 16 KiB buffer never filled up");
    }
    assert!(appended > 30, "only {appended} records fit in 16 KiB");
    assert!(buf.stats().bytes <= 16 * 1024);

    let blocked = {
        let buf = buf.clone();
        let next = record(appended);
        tokio::spawn(async move { buf.append(&[&next]).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !blocked.is_finished(),
        "append must wait while the buffer is full"
    );

    let got = drain(&buf, appended as usize).await;
    assert_eq!(got.last().unwrap().0, appended);
    buf.ack(appended).unwrap();
    let id = tokio::time::timeout(Duration::from_secs(5), blocked)
        .await
        .expect("append still blocked 5 s after the ack freed space")
        .unwrap()
        .unwrap();
    assert_eq!(id, appended + 1);
    let last = drain(&buf, 1).await;
    assert_eq!(last, vec![(appended + 1, record(appended))]);
}

#[tokio::test]
async fn impossible_appends_and_bad_settings_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let buf = DiskBuffer::open(config(dir.path(), 64 * 1024, FsyncPolicy::Never)).unwrap();
    assert!(matches!(
        buf.append(&[]).await,
        Err(BufferError::EmptyBatch)
    ));
    let huge = vec![0u8; 20 * 1024];
    let err = buf.append(&[&huge]).await.unwrap_err();
    assert!(matches!(err, BufferError::TooLarge { .. }), "{err}");
    assert!(matches!(
        buf.try_append(&[&huge]),
        Err(BufferError::TooLarge { .. })
    ));
    // Nothing was appended by the refused calls.
    assert_eq!(buf.append(&[b"x".as_slice()]).await.unwrap(), 1);

    let other = tempfile::tempdir().unwrap();
    let err = DiskBuffer::open(config(other.path(), 1024, FsyncPolicy::Never))
        .err()
        .unwrap();
    assert!(err.to_string().contains("max_bytes"), "{err}");
    let err = DiskBuffer::open(config(
        other.path(),
        1 << 20,
        FsyncPolicy::Interval(Duration::ZERO),
    ))
    .err()
    .unwrap();
    assert!(err.to_string().contains("fsync"), "{err}");
}

#[tokio::test]
async fn a_directory_has_one_owner_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = DiskBuffer::open(config(dir.path(), 1 << 20, FsyncPolicy::Never)).unwrap();
    let err = DiskBuffer::open(config(dir.path(), 1 << 20, FsyncPolicy::Never))
        .err()
        .unwrap();
    assert!(matches!(err, BufferError::Locked { .. }), "{err}");
    drop(first);
    DiskBuffer::open(config(dir.path(), 1 << 20, FsyncPolicy::Never)).unwrap();
}

#[tokio::test]
async fn read_batch_waits_for_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let buf = DiskBuffer::open(config(dir.path(), 1 << 20, FsyncPolicy::Always)).unwrap();
    let reader = {
        let buf = buf.clone();
        tokio::spawn(async move { buf.read_batch(10).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !reader.is_finished(),
        "read_batch returned with nothing to read"
    );
    buf.append(&[b"late".as_slice()]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("reader not woken by the append")
        .unwrap();
    assert_eq!(got, vec![(1, b"late".to_vec())]);
}

#[tokio::test]
async fn stats_track_unacked_records_and_their_age() {
    let dir = tempfile::tempdir().unwrap();
    let buf = DiskBuffer::open(config(dir.path(), 1 << 20, FsyncPolicy::Never)).unwrap();
    assert_eq!(buf.stats().records, 0);
    assert_eq!(buf.stats().oldest_unacked_age(), None);
    let before = std::time::SystemTime::now();
    buf.append(&[b"a".as_slice(), b"b".as_slice()])
        .await
        .unwrap();
    let stats = buf.stats();
    assert_eq!(stats.records, 2);
    let oldest = stats.oldest_unacked_append.unwrap();
    let skew = before
        .duration_since(oldest)
        .unwrap_or_else(|e| e.duration());
    assert!(skew < Duration::from_secs(2), "append time off by {skew:?}");
    buf.read_batch(10).await;
    buf.ack(2).unwrap();
    assert_eq!(buf.stats().records, 0);
    assert_eq!(buf.stats().oldest_unacked_append, None);
}

/// Many tasks append (in small groups, through a small buffer so
/// back-pressure kicks in) while one reader drains and acks: every record
/// arrives exactly once, in per-producer order, under each fsync policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_producers_and_a_reader_deliver_every_record_exactly_once_in_order() {
    for (fsync, per_producer) in [
        (FsyncPolicy::Never, 3000u64),
        (FsyncPolicy::Interval(Duration::from_millis(20)), 3000),
        (FsyncPolicy::Always, 300),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let buf = DiskBuffer::open(config(dir.path(), 128 * 1024, fsync)).unwrap();
        let producers = 8u64;
        let mut tasks = Vec::new();
        for p in 0..producers {
            let buf = buf.clone();
            tasks.push(tokio::spawn(async move {
                let mut seq = 0u64;
                while seq < per_producer {
                    let group = (1 + (seq + p) % 5).min(per_producer - seq);
                    let records: Vec<Vec<u8>> = (seq..seq + group)
                        .map(|s| format!("{p}:{s}").into_bytes())
                        .collect();
                    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
                    buf.append(&refs).await.unwrap();
                    seq += group;
                }
            }));
        }
        let total = producers * per_producer;
        let reader = {
            let buf = buf.clone();
            tokio::spawn(async move {
                let mut seen = Vec::with_capacity(total as usize);
                let mut last_id = 0;
                while (seen.len() as u64) < total {
                    let batch = tokio::time::timeout(Duration::from_secs(20), buf.read_batch(37))
                        .await
                        .expect("reader starved");
                    for (id, payload) in batch {
                        assert!(id > last_id, "ids must increase: {id} after {last_id}");
                        last_id = id;
                        seen.push(String::from_utf8(payload).unwrap());
                    }
                    buf.ack(last_id).unwrap();
                }
                seen
            })
        };
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("producer stuck")
                .unwrap();
        }
        let seen = tokio::time::timeout(Duration::from_secs(60), reader)
            .await
            .expect("reader stuck")
            .unwrap();
        let mut next_seq: HashMap<u64, u64> = HashMap::new();
        for rec in &seen {
            let (p, s) = rec.split_once(':').unwrap();
            let (p, s): (u64, u64) = (p.parse().unwrap(), s.parse().unwrap());
            let expected = next_seq.entry(p).or_insert(0);
            assert_eq!(
                s, *expected,
                "producer {p} out of order or duplicated ({fsync:?})"
            );
            *expected += 1;
        }
        assert_eq!(seen.len() as u64, total);
        assert!(next_seq.values().all(|&n| n == per_producer));
        let stats = buf.stats();
        assert_eq!(stats.records, 0, "{fsync:?}");
        assert!(stats.bytes <= 128 * 1024);
        assert_eq!(stats.damaged_records, 0);
    }
}
