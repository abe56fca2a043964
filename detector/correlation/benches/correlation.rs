//! Correlation throughput (signals/s on one core) and state memory per
//! active group key, for event_count, value_count and temporal_ordered with
//! 10k, 100k and 1M active keys.
//!
//! Run: `cargo bench -p qalqan-correlation --bench correlation`
//! (optionally `-- event_count 100000` to run one case).
//!
//! Memory is measured with a counting global allocator: live heap bytes
//! after the keys are populated and settled, minus before, divided by the
//! number of keys. The evidence journal (first raw lines, a fixed budget)
//! is reported separately from the window state.

use std::alloc::{GlobalAlloc, Layout};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qalqan_testkit::bench::thread_cpu;

use chrono::{DateTime, TimeZone, Utc};
use qalqan_correlation::{
    BaseRule, CorrelationDoc, CorrelationSet, Engine, EngineConfig, LoadOptions, Output, Signal,
    SignalEntities,
};

struct Counting;

/// The allocator underneath the counting: the system's (glibc), or
/// mimalloc with `--features mimalloc` — what a service binary might pick.
#[cfg(not(feature = "mimalloc"))]
static INNER: std::alloc::System = std::alloc::System;
#[cfg(feature = "mimalloc")]
static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ALLOCATOR: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "system (glibc)"
};

static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Counting costs an atomic add per allocation; it is on only while the
/// memory is measured, so the throughput phase runs with the plain
/// allocator's speed.
static COUNTING: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { INNER.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { INNER.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        unsafe { INNER.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// CPU time of this thread: the machine may be busy with other work, so
/// rates are signals per second of CPU actually spent, i.e. per core.
fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

const RULES: &str = "
title: SSH brute force
id: bf
correlation: {type: event_count, rules: [failed], group-by: [source.ip], timespan: 10m, condition: {gte: 100}}
---
title: Password spraying
id: spray
correlation: {type: value_count, rules: [failed], group-by: [source.ip], timespan: 10m, condition: {field: user.name, gte: 50}}
---
title: Success after failures
id: saf
correlation: {type: temporal_ordered, rules: [failed, success], group-by: [source.ip], timespan: 10m}
";

fn rule_set() -> Arc<CorrelationSet> {
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(RULES)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .collect();
    let cdocs: Vec<CorrelationDoc<'_>> = docs
        .iter()
        .enumerate()
        .map(|(index, doc)| CorrelationDoc {
            path: Path::new("bench.yml"),
            index,
            doc,
        })
        .collect();
    let base = [
        BaseRule {
            id: "r-failed",
            name: Some("failed"),
        },
        BaseRule {
            id: "r-success",
            name: Some("success"),
        },
    ];
    let report = CorrelationSet::load(&cdocs, &base, &LoadOptions::default());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    Arc::new(report.set)
}

/// 2026-03-01T00:00:00Z.
const T0: i64 = 1_772_323_200_000_000;

fn ts(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(T0 + us).single().expect("time")
}

struct Gen {
    state: u64,
    n: u64,
}

impl Gen {
    fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// One signal as stage 1 would make it for an sshd line.
    fn signal(&mut self, corr: &str, key: u64, at_us: i64) -> Signal {
        self.n += 1;
        let ip = format!(
            "10.{}.{}.{}",
            (key >> 16) & 255,
            (key >> 8) & 255,
            key & 255
        );
        let user = format!("user{}", self.next() % 200);
        // sshd: about one login in ten succeeds.
        let success = corr == "saf" && self.next().is_multiple_of(10);
        let rule = if success { "r-success" } else { "r-failed" };
        let port = 30000 + self.next() % 30000;
        Signal {
            correlation: corr.to_owned(),
            root: None,
            rules: vec![rule.to_owned()],
            agency: "egov".to_owned(),
            group: vec![ip.clone()],
            root_group: Vec::new(),
            timestamp: ts(at_us),
            ordinal: self.n,
            event_id: format!("{:016x}", self.next()),
            value: (corr == "spray").then(|| user.clone()),
            number: None,
            entities: SignalEntities {
                source_ip: Some(ip.clone()),
                user: Some(user.clone()),
                host: None,
                url: None,
            },
            original: format!(
                "Dec 10 06:55:48 LabSZ sshd[24200]: {} password for invalid user {user} from {ip} port {port} ssh2",
                if success { "Accepted" } else { "Failed" }
            ),
        }
    }
}

struct Result {
    rate: f64,
    drop_ns: f64,
    state_bytes: f64,
    journal_bytes: f64,
    rss_bytes: f64,
    alerts: usize,
}

fn run(corr: &str, keys: u64, measured: u64) -> Result {
    let set = rule_set();
    let cfg = EngineConfig {
        allowed_lateness: Duration::from_secs(1),
        max_keys_per_rule: 2_000_000,
        max_keys_total: 4_000_000,
        ..EngineConfig::default()
    };
    let mut gen = Gen {
        state: 0x9e37_79b9_7f4a_7c15 ^ keys,
        n: 0,
    };
    let mut out = Output::default();
    // Everything allocated from here to the measurement is the engine's or
    // the signals' (which are all freed by then except those pending).
    COUNTING.store(true, Ordering::Relaxed);
    let before = live();
    let rss_before = rss_kib();
    let mut engine = Engine::new(set, cfg).expect("engine");

    // Populate: every key gets one event, over the first 150 s.
    const BATCH: u64 = 100_000;
    let step = 150_000_000 / keys as i64;
    let mut t = 0i64;
    let mut k = 0u64;
    while k < keys {
        let n = BATCH.min(keys - k);
        let batch: Vec<Signal> = (0..n)
            .map(|i| {
                t += step;
                gen.signal(corr, k + i, t)
            })
            .collect();
        for s in batch {
            engine.process(0, &s, &mut out);
        }
        k += n;
    }
    // Settle what waits for the lateness, so only state remains.
    engine.advance_watermark(0, None, ts(t + 2_000_000), &mut out);
    let m = engine.metrics();
    assert_eq!(m.keys_total, keys, "all keys live");
    let journal = m.evidence_bytes as f64;
    let state = (live() - before) as f64 - journal;
    let rss = match (rss_before, rss_kib()) {
        (Some(a), Some(b)) => (b.saturating_sub(a) * 1024) as f64,
        _ => f64::NAN,
    };
    COUNTING.store(false, Ordering::Relaxed);
    out.clear();

    // Measure: random keys over the next 150 s of event time, in batches
    // of 256 signals as a Kafka consumer would hand them over (decode a
    // poll's worth, process). Only `process` is timed: it includes packing
    // each signal and, later, freeing the packed copy.
    const POLL: u64 = 256;
    let step = 150_000_000 / measured as i64;
    let mut done = 0u64;
    let mut busy = Duration::ZERO;
    let mut alerts = 0;
    // One reused buffer: freeing a large buffer per poll would make glibc
    // consolidate its free lists every time and measure that instead.
    let mut batch: Vec<Signal> = Vec::with_capacity(POLL as usize);
    while done < measured {
        let n = POLL.min(measured - done);
        batch.extend((0..n).map(|_| {
            t += step;
            let key = gen.next() % keys;
            gen.signal(corr, key, t)
        }));
        let start = thread_cpu();
        for s in &batch {
            engine.process(0, s, &mut out);
        }
        busy += thread_cpu() - start;
        // The caller's signals are the decoder's business (a consumer can
        // decode into one reused `Signal`); free them outside the timing.
        batch.clear();
        alerts += out.alerts.len();
        out.clear();
        done += n;
    }
    // For reference: what freeing a decoded `Signal` costs the caller in the
    // same pattern (not inside `rate`).
    let rounds = 2000;
    let mut dropping = Duration::ZERO;
    for _ in 0..rounds {
        batch.extend((0..POLL).map(|_| {
            let key = gen.next() % keys;
            gen.signal(corr, key, t)
        }));
        let start = thread_cpu();
        batch.clear();
        dropping += thread_cpu() - start;
    }
    Result {
        drop_ns: dropping.as_nanos() as f64 / (rounds * POLL) as f64,
        rate: measured as f64 / busy.as_secs_f64(),
        state_bytes: state / keys as f64,
        journal_bytes: journal / keys as f64,
        rss_bytes: rss / keys as f64,
        alerts,
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let kinds = [
        ("event_count", "bf"),
        ("value_count", "spray"),
        ("temporal_ordered", "saf"),
    ];
    println!("qalqan-correlation: one engine on one thread; allocator {ALLOCATOR}; signals built outside the timing; rate = signals per CPU-second spent in process()");
    println!(
        "{:<17} {:>9} {:>12} {:>10} {:>12} {:>15} {:>10} {:>8}",
        "type",
        "keys",
        "signals/s",
        "drop ns",
        "state B/key",
        "evidence B/key",
        "RSS B/key",
        "alerts"
    );
    for (kind, corr) in kinds {
        if args.first().is_some_and(|a| a != kind) {
            continue;
        }
        for keys in [10_000u64, 100_000, 1_000_000] {
            if args
                .get(1)
                .is_some_and(|a| a.parse::<u64>().ok() != Some(keys))
            {
                continue;
            }
            let measured = args
                .get(2)
                .and_then(|a| a.parse().ok())
                .unwrap_or(2_000_000);
            let r = run(corr, keys, measured);
            println!(
                "{:<17} {:>9} {:>12.0} {:>10.0} {:>12.0} {:>15.0} {:>10.0} {:>8}",
                kind,
                keys,
                r.rate,
                r.drop_ns,
                r.state_bytes,
                r.journal_bytes,
                r.rss_bytes,
                r.alerts
            );
        }
    }
}
