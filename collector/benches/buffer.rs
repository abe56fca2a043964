//! Disk buffer throughput: append + read + ack of ~250-byte records (the size
//! of a small serialized event), for append batches of 1, 64 and 512 records
//! under each fsync policy, plus many concurrent single-record appenders
//! (where group commit matters). Prints records/s and MB/s of payload.
//!
//! ```text
//! cargo bench -p qalqan-collector --bench buffer            # all cases
//! cargo bench -p qalqan-collector --bench buffer -- interval # filter by name
//! ```
//!
//! Data goes to a temporary directory under the target directory (a real
//! disk, unlike a tmpfs /tmp), or under `QALQAN_BENCH_DIR` when set.
//! The target for write-ahead use is ≥ 300k records/s with `interval(1s)`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qalqan_collector::buffer::{BufferConfig, DiskBuffer, FsyncPolicy};

const RECORD_BYTES: usize = 250;
/// How long each case appends for.
const RUN_FOR: Duration = Duration::from_secs(3);
const READ_BATCH: usize = 512;

struct Case {
    name: String,
    fsync: FsyncPolicy,
    batch: usize,
    producers: usize,
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let policies = [
        ("always", FsyncPolicy::Always),
        (
            "interval(1s)",
            FsyncPolicy::Interval(Duration::from_secs(1)),
        ),
        ("never", FsyncPolicy::Never),
    ];
    let mut cases = Vec::new();
    for (pname, fsync) in policies {
        for batch in [1usize, 64, 512] {
            cases.push(Case {
                name: format!("{pname} batch={batch}"),
                fsync,
                batch,
                producers: 1,
            });
        }
        cases.push(Case {
            name: format!("{pname} batch=1 producers=16"),
            fsync,
            batch: 1,
            producers: 16,
        });
    }
    let base = std::env::var_os("QALQAN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).expect("create bench directory");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "disk buffer: append+read+ack, {RECORD_BYTES}-byte records, {}s per case, dir {}",
        RUN_FOR.as_secs(),
        base.display()
    );
    println!("{:<34} {:>14} {:>10}", "case", "records/s", "MB/s");
    for case in cases {
        if !filter.is_empty() && !filter.iter().any(|f| case.name.contains(f.as_str())) {
            continue;
        }
        let dir = tempfile::tempdir_in(&base).expect("temp dir");
        let (records, elapsed) = runtime.block_on(run_case(&case, dir.path().to_owned()));
        let secs = elapsed.as_secs_f64();
        println!(
            "{:<34} {:>14.0} {:>10.1}",
            case.name,
            records as f64 / secs,
            (records * RECORD_BYTES as u64) as f64 / secs / 1e6
        );
    }
}

/// Producers append for `RUN_FOR` while one reader reads and acks; returns
/// the records that made it all the way through and the time it took.
async fn run_case(case: &Case, dir: PathBuf) -> (u64, Duration) {
    let mut cfg = BufferConfig::new(dir, 1024 * 1024 * 1024);
    cfg.fsync = case.fsync;
    let buffer = DiskBuffer::open(cfg).expect("open buffer");
    let record = {
        let mut r = br#"{"@timestamp":"2024-05-01T10:00:00Z","event.original":"May  1 10:00:00 web01 sshd[4242]: Failed password for invalid user admin from 203.0.113.7 port 51234 ssh2","source.ip":"203.0.113.7","user.name":"admin"}"#.to_vec();
        r.resize(RECORD_BYTES, b' ');
        r
    };
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut producers = Vec::new();
    for _ in 0..case.producers {
        let buffer = buffer.clone();
        let stop = Arc::clone(&stop);
        let record = record.clone();
        let batch = case.batch;
        producers.push(tokio::spawn(async move {
            let group: Vec<&[u8]> = vec![record.as_slice(); batch];
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) {
                last = buffer.append(&group).await.expect("append");
            }
            last
        }));
    }
    let producers_done = Arc::new(AtomicBool::new(false));
    let reader = {
        let buffer = buffer.clone();
        let done = Arc::clone(&producers_done);
        tokio::spawn(async move {
            let mut read = 0u64;
            let mut last_id = 0;
            loop {
                if done.load(Ordering::Acquire) && buffer.stats().records == 0 {
                    return read;
                }
                let got =
                    tokio::time::timeout(Duration::from_millis(100), buffer.read_batch(READ_BATCH))
                        .await
                        .unwrap_or_default();
                for (id, payload) in &got {
                    assert_eq!(payload.len(), RECORD_BYTES);
                    last_id = *id;
                }
                read += got.len() as u64;
                if !got.is_empty() {
                    buffer.ack(last_id).expect("ack");
                }
            }
        })
    };
    tokio::time::sleep(RUN_FOR).await;
    stop.store(true, Ordering::Relaxed);
    let mut last = 0;
    for p in producers {
        last = last.max(p.await.expect("producer"));
    }
    producers_done.store(true, Ordering::Release);
    let read = reader.await.expect("reader");
    let elapsed = start.elapsed();
    assert_eq!(read, last, "every appended record read exactly once");
    (read, elapsed)
}
