//! The collector's in-process hot path, with no broker: a TCP read's bytes
//! are framed, parsed, normalized, stamped, encoded and handed to the
//! Kafka producer (librdkafka copies each message into its queue), exactly
//! as a syslog TCP connection with the buffer off does it. Printed, not
//! asserted.
//!
//! The producer points at a port where nothing listens, so messages only
//! queue; each round's messages are purged afterwards (outside the timing).
//! What a broker adds (batching, zstd, the network, delivery reports) is
//! not here: `benches/pipeline.rs` measures that against the real stack.
//!
//! Lines: the 256-byte RFC 5424 sshd lines of `benches/pipeline.rs`
//! ([`syslog_line`]), or with `QALQAN_BENCH_INPUT=loghub` the loghub
//! OpenSSH sample (`../shared/data/loghub/OpenSSH_2k.log`, or
//! `$QALQAN_SHARED_DATA`). `QALQAN_BENCH_EVENTS` events per round (default
//! 50000), `QALQAN_BENCH_ROUNDS` rounds (default 6; the first warms up).
//!
//! Rates are events per CPU-second of the bench thread. For instruction
//! counts: `valgrind --tool=callgrind` on the bench binary with
//! `QALQAN_BENCH_ROUNDS=2`, then `callgrind_annotate --inclusive=yes` and
//! read `hot_round` (framing + `Pipeline::process`), divided by events.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qalqan_collector::config::{BufferMode, SinkConfig};
use qalqan_collector::loadgen::syslog_line;
use qalqan_collector::metrics::Metrics;
use qalqan_collector::pipeline::{Batch, Identity, Pipeline, RawLine, SourceInfo};
use qalqan_collector::router::{Router, RouterSettings, Tracker};
use qalqan_collector::sequence::SequenceAllocator;
use qalqan_collector::sink::KafkaSink;
use qalqan_collector::sources::framing::{Framer, Framing};
use qalqan_collector::sources::stream::MAX_BATCH;
use qalqan_core::kafka::KafkaSettings;
use qalqan_core::parse::{ParseOptions, Parser};
use qalqan_testkit::bench::thread_cpu;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// The byte stream a sender would write: `events` newline-framed lines.
fn stream_bytes(events: u64) -> Vec<u8> {
    let input = std::env::var("QALQAN_BENCH_INPUT").unwrap_or_default();
    let mut out = Vec::new();
    if input == "loghub" {
        let dir = std::env::var("QALQAN_SHARED_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
            });
        let path = dir.join("loghub/OpenSSH_2k.log");
        let text =
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let lines: Vec<&[u8]> = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        for i in 0..events as usize {
            out.extend_from_slice(lines[i % lines.len()]);
            out.push(b'\n');
        }
    } else {
        for i in 0..events {
            out.extend_from_slice(&syslog_line(0, i, 256));
            out.push(b'\n');
        }
    }
    out
}

/// One round: the stream read in 64 KiB chunks, framed, batched and
/// processed as `sources::stream` does. Returns events processed.
#[inline(never)]
fn hot_round(
    rt: &tokio::runtime::Runtime,
    pipeline: &Arc<Pipeline>,
    source: &Arc<SourceInfo>,
    bytes: &[u8],
    cancel: &CancellationToken,
) -> u64 {
    let peer = ([192, 0, 2, 7], 51514).into();
    let mut framer = Framer::new(Framing::Auto, 64 * 1024);
    let mut out: Vec<RawLine> = Vec::new();
    let mut n = 0u64;
    for chunk in bytes.chunks(64 * 1024) {
        framer.push(chunk);
        framer.drain_frames(&mut out);
        while !out.is_empty() {
            let lines: Vec<RawLine> = if out.len() > MAX_BATCH {
                let rest = out.split_off(MAX_BATCH);
                std::mem::replace(&mut out, rest)
            } else {
                std::mem::take(&mut out)
            };
            n += lines.len() as u64;
            let batch = Batch {
                source: source.clone(),
                lines,
                file_path: None,
                peer: Some(peer),
                ack: None,
            };
            if let Err(e) = rt.block_on(pipeline.process(&batch, cancel)) {
                panic!("batch refused: {e}");
            }
        }
    }
    n
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let events = env_u64("QALQAN_BENCH_EVENTS", 50_000);
    let rounds = env_u64("QALQAN_BENCH_ROUNDS", 6).max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let state = tempfile::tempdir().expect("tmp");
    let metrics = Metrics::new("bench", "bench");
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let sink_cfg = SinkConfig {
        max_in_flight_events: events as usize * 2,
        ..SinkConfig::default()
    };
    let t2 = tracker.clone();
    let (sink, _retry_rx) = rt
        .block_on(async {
            KafkaSink::new(
                // Nothing listens there: messages only queue.
                &KafkaSettings::plaintext("127.0.0.1:9"),
                &sink_cfg,
                "qalqan-collector-bench",
                "qalqan.events.bench".into(),
                metrics.clone(),
                Box::new(move |id| {
                    t2.lock().unwrap_or_else(|p| p.into_inner()).confirmed(id);
                }),
            )
        })
        .expect("producer");
    let router = Router::new(
        RouterSettings {
            mode: BufferMode::Off,
            overflow_after: Duration::from_secs(60),
            append_budget: 1 << 20,
        },
        sink.clone(),
        None,
        tracker,
        metrics.clone(),
        CancellationToken::new(),
    );
    let identity = Identity {
        name: "bench".into(),
        hostname: "collector.example".into(),
        agency: "bench".into(),
    };
    let pipeline = Pipeline::new(
        Parser::new(ParseOptions::default()),
        identity,
        SequenceAllocator::open(state.path()).expect("sequence"),
        router,
        metrics,
    );
    let source = SourceInfo::new("tcp", "tcp", None);
    let bytes = stream_bytes(events);
    let cancel = CancellationToken::new();
    println!(
        "collector hot path (frame, parse, stamp, encode, hand to librdkafka), {events} events of {:.0} bytes per round",
        bytes.len() as f64 / events as f64 - 1.0
    );
    for round in 0..rounds {
        let cpu = thread_cpu();
        let wall = std::time::Instant::now();
        let n = hot_round(&rt, &pipeline, &source, &bytes, &cancel);
        let (cpu, wall) = (thread_cpu() - cpu, wall.elapsed());
        let purged = sink.purge().len();
        println!(
            "round {round}{}: {n} events, {:.0} events/s per CPU-second ({:.0}/s wall), {purged} purged",
            if round == 0 { " (warm-up)" } else { "" },
            n as f64 / cpu.as_secs_f64(),
            n as f64 / wall.as_secs_f64(),
        );
    }
}
