//! The detector service through the real local Kafka (`make bench` runs it
//! inside `deploy/local/with-stack`), with the project's rule pack plus the
//! SigmaHQ linux, web and network rules.
//!
//! 1. Throughput: `QALQAN_BENCH_EVENTS` (default 1,000,000) collector-style
//!    events — the loghub OpenSSH sample and the demo scenario's portal,
//!    firewall and host logs, renumbered and spread in event time — are put
//!    on a 6-partition topic first; then one detector (stage 1 and 2) is
//!    started and timed until both consumer groups have committed the end.
//! 2. Latency: events produced at a fixed `QALQAN_BENCH_RATE` (default
//!    20,000/s) for `QALQAN_BENCH_SECONDS` (default 20), 1% of them SQL
//!    injection probes from distinct addresses; each alert's delay from the
//!    event's receive time to the alert being readable in Kafka, p50/p99.
//!
//! `QALQAN_BENCH_BATCH`, `QALQAN_BENCH_WAIT` (e.g. `250ms`) and
//! `QALQAN_BENCH_WORKERS` set the detector's `batch_size`, `batch_wait` and
//! `match_workers` (unset: the detector's defaults),
//! `QALQAN_BENCH_LATENESS` its allowed lateness (default 2s) and
//! `QALQAN_BENCH_ALIGN=false` turns stage 1's event-time alignment off;
//! `QALQAN_BENCH_LOG` its `RUST_LOG` (default `warn`; e.g.
//! `qalqan_detector::service=debug` shows each batch's processing and
//! commit time). `QALQAN_BENCH_DETECTOR` runs another detector binary
//! (default: the one built with this bench), e.g. a saved build for an
//! interleaved before/after comparison.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use qalqan_core::event::{now_micros, Value};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

mod common;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn producer(brokers: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "2000000")
        .set("message.timeout.ms", "300000")
        .create()
        .expect("producer")
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, key: &str, value: &str) {
    let mut record = BaseRecord::to(topic).key(key).payload(value);
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// The local stack's Kafka broker, when this bench runs against it (its pid
/// file under `.work/stack/kafka`), for its CPU time.
fn stack_broker_pid() -> Option<u32> {
    let file = qalqan_testkit::workspace_root().join(".work/stack/kafka/pid");
    let pid: u32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(pid)
}

/// A client that reads a group's committed offsets. Made once per group:
/// a new client per poll (five a second) cost the broker and this process
/// CPU the detector then did not get.
fn group_client(brokers: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("consumer")
}

/// Sum of a group's committed offsets on `topic` (partitions 0..n).
fn committed(c: &BaseConsumer, topic: &str, partitions: i32) -> i64 {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    match c.committed_offsets(tpl, Duration::from_secs(10)) {
        Ok(t) => t
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum(),
        Err(_) => 0,
    }
}

fn end_offsets(brokers: &str, topic: &str, partitions: i32) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("consumer");
    (0..partitions)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .map(|(_, high)| high)
                .unwrap_or(0)
        })
        .sum()
}

/// CPU seconds (user + system, all threads) a process has used so far:
/// on a shared 2-core machine, CPU per event is the figure that does not
/// depend on what else runs.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    // utime and stime are fields 14 and 15 of the line: 12 and 13 here.
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / hz,
        _ => f64::NAN,
    }
}

struct Names {
    agency: String,
    events: String,
    signals: String,
    alerts: String,
    group: String,
}

/// A free loopback port for the detector's metrics.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The sum of a metric's samples on the detector's `/metrics`.
fn metric_sum(port: u16, metric: &str) -> f64 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return f64::NAN;
    };
    let mut body = String::new();
    if s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").is_err()
        || s.read_to_string(&mut body).is_err()
    {
        return f64::NAN;
    }
    body.lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

fn start_detector(brokers: &str, n: &Names, metrics_port: u16) -> std::process::Child {
    let dir = std::env::temp_dir().join(format!("qalqan-bench-{}", n.agency));
    std::fs::create_dir_all(&dir).expect("dir");
    let rules = common::rule_sources();
    let quoted = |paths: &[std::path::PathBuf]| -> Vec<String> {
        paths
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect()
    };
    let (paths, pipelines) = (quoted(&rules.paths), quoted(&rules.pipelines));
    // The default allowed lateness (2 s) holds in this catch-up: stage 1
    // releases the events in event-time order across the partitions (the
    // loghub sample is one host, so about 93% of the events sit in one of
    // the six partitions, which would otherwise run minutes ahead of the
    // others). `QALQAN_BENCH_LATENESS` sets another, e.g. "10m".
    let config = format!(
        "[detector]\nroles = [\"match\", \"correlate\"]\ngroup_prefix = \"{group}\"\nbatch_size = {batch}\nalign_event_time = {align}\n{workers}{wait}\
         [topics]\nevents = '^{ev}$'\nraw = '^{ev}\\.raw$'\nsignals = \"{sig}\"\nalerts = \"{al}\"\ndeadletter = \"{al}.dl\"\n\
         [kafka]\nbrokers = \"{brokers}\"\n[rules]\npaths = [{paths}]\npipelines = [{pipelines}]\nwatch = false\n\
         [correlation]\nallowed_lateness = \"{lateness}\"\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
        group = n.group,
        batch = env_usize("QALQAN_BENCH_BATCH", 20000),
        workers = std::env::var("QALQAN_BENCH_WORKERS")
            .map(|n| format!("match_workers = {n}\n"))
            .unwrap_or_default(),
        wait = std::env::var("QALQAN_BENCH_WAIT")
            .map(|w| format!("batch_wait = \"{w}\"\n"))
            .unwrap_or_default(),
        ev = n.events.replace('.', "\\."),
        sig = n.signals,
        al = n.alerts,
        paths = paths.join(", "),
        pipelines = pipelines.join(", "),
        lateness = std::env::var("QALQAN_BENCH_LATENESS").unwrap_or_else(|_| "2s".into()),
        align = std::env::var("QALQAN_BENCH_ALIGN").unwrap_or_else(|_| "true".into()),
    );
    let path = dir.join("bench.toml");
    std::fs::write(&path, config).expect("config");
    let binary = std::env::var_os("QALQAN_BENCH_DETECTOR")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_qalqan-detector").into());
    Command::new(binary)
        .args(["run", "--config"])
        .arg(&path)
        .env(
            "RUST_LOG",
            std::env::var("QALQAN_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the detector")
}

fn main() {
    let brokers = qalqan_testkit::kafka_brokers();
    let total = env_usize("QALQAN_BENCH_EVENTS", 1_000_000);
    let rate = env_usize("QALQAN_BENCH_RATE", 20_000);
    let seconds = env_usize("QALQAN_BENCH_SECONDS", 20);
    let agency = qalqan_testkit::unique("bench").replace(['.', '-'], "_");
    let names = Names {
        events: qalqan_core::topics::events_topic(&agency),
        signals: format!("bench.{agency}.signals"),
        alerts: format!("bench.{agency}.alerts"),
        group: format!("bench.{agency}"),
        agency,
    };
    qalqan_testkit::create_topic(&names.events, 6);
    qalqan_testkit::create_topic(&names.signals, 6);
    qalqan_testkit::create_topic(&names.alerts, 1);
    qalqan_testkit::create_topic(&format!("{}.dl", names.alerts), 1);
    qalqan_testkit::create_topic(&format!("{}.raw", names.events), 1);

    // 1. Throughput.
    let base = common::base_events();
    let t0 = now_micros() - chrono::Duration::hours(2);
    let p = producer(&brokers);
    let started = Instant::now();
    for i in 0..total {
        let ev = common::numbered(&base, i, t0);
        let host = ev.get_str("host.name").unwrap_or("h").to_owned();
        send(&p, &names.events, &host, &ev.to_json_string());
    }
    p.flush(Duration::from_secs(300)).expect("all produced");
    let produced_in = started.elapsed();
    println!(
        "produced {total} events in {:.1}s ({:.0} events/s, producer only)",
        produced_in.as_secs_f64(),
        total as f64 / produced_in.as_secs_f64()
    );

    let metrics_port = free_port();
    let mut detector = start_detector(&brokers, &names, metrics_port);
    let match_group = group_client(&brokers, &format!("{}.match", names.group));
    let corr_group = group_client(&brokers, &format!("{}.correlate", names.group));
    let broker = stack_broker_pid();
    let broker_cpu = || broker.map_or(f64::NAN, cpu_seconds);
    let mut first_progress: Option<(Instant, f64, f64)> = None;
    let begin = Instant::now();
    let (match_done, cpu_at_done, broker_at_done) = loop {
        let c = committed(&match_group, &names.events, 6);
        if c > 0 && first_progress.is_none() {
            first_progress = Some((Instant::now(), cpu_seconds(detector.id()), broker_cpu()));
        }
        if c >= total as i64 {
            break (Instant::now(), cpu_seconds(detector.id()), broker_cpu());
        }
        assert!(
            begin.elapsed() < Duration::from_secs(1800),
            "stage 1 did not finish: {c}/{total}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let signals = end_offsets(&brokers, &names.signals, 6);
    let corr_done = loop {
        let c = committed(&corr_group, &names.signals, 6);
        if c >= signals {
            break Instant::now();
        }
        assert!(
            begin.elapsed() < Duration::from_secs(1800),
            "stage 2 did not finish: {c}/{signals}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let (from, cpu_from, broker_from) = first_progress.unwrap_or((begin, 0.0, f64::NAN));
    let stage1 = match_done.duration_since(from).as_secs_f64();
    let both = corr_done.duration_since(from).as_secs_f64();
    println!(
        "detector: stage 1 {total} events in {stage1:.1}s = {:.0} events/s; with stage 2 ({signals} signal bundles) done {both:.1}s = {:.0} events/s sustained (start-up and rule loading excluded: {:.1}s)",
        total as f64 / stage1,
        total as f64 / both,
        from.duration_since(begin).as_secs_f64()
    );
    println!(
        "correlation signals counted late: {:.0} of {:.0}; stage 1 paused partitions {:.0} times to stay within its hold budget",
        metric_sum(metrics_port, "qalqan_detector_late_events_total"),
        metric_sum(metrics_port, "qalqan_detector_signals_produced_total"),
        metric_sum(metrics_port, "qalqan_detector_align_pauses_total"),
    );
    let cpu = cpu_at_done - cpu_from;
    println!(
        "detector CPU during stage 1: {cpu:.1}s = {:.1} µs/event, {:.0} events per CPU-second (both stages' threads)",
        cpu * 1e6 / total as f64,
        total as f64 / cpu
    );
    let broker_cpu = broker_at_done - broker_from;
    if broker_cpu.is_finite() {
        println!(
            "Kafka broker CPU meanwhile: {broker_cpu:.1}s = {:.1} µs/event (serving the detector: events fetched, signals, transactions, commits)",
            broker_cpu * 1e6 / total as f64
        );
    }

    // 2. Latency at a fixed rate.
    let alerts_consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("{}.latency", names.group))
        .set("auto.offset.reset", "latest")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    alerts_consumer
        .subscribe(&[names.alerts.as_str()])
        .expect("subscribe");
    let _ = alerts_consumer.poll(Duration::from_secs(3));
    let parser = qalqan_core::parse::Parser::default();
    let web_probe = |ip: u32| {
        let line = format!(
            "10.{}.{}.{} - - [27/Nov/2026:05:00:01 +0000] \"GET /news.php?id=1%20UNION%20SELECT%20password%20FROM%20users HTTP/1.1\" 200 10 \"-\" \"Mozilla/5.0\"",
            (ip >> 16) & 255,
            (ip >> 8) & 255,
            ip & 255
        );
        parser.parse(line.as_bytes(), now_micros()).event
    };
    let mut latencies: Vec<f64> = Vec::new();
    let mut seen = BTreeSet::new();
    let start = Instant::now();
    let mut sent = 0usize;
    let mut seq = total as u64;
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    while start.elapsed() < Duration::from_secs(seconds as u64) {
        let due = start + tick * (sent / per_tick) as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for _ in 0..per_tick {
            let now = now_micros();
            let mut ev = if sent.is_multiple_of(100) {
                web_probe(sent as u32)
            } else {
                base[sent % base.len()].clone()
            };
            ev.timestamp = now;
            ev.ingested = now;
            seq += 1;
            ev.fields.insert("observer.name", "bench-col");
            ev.fields.insert("observer.sequence", Value::from(seq));
            send(&p, &names.events, &sent.to_string(), &ev.to_json_string());
            sent += 1;
        }
        while let Some(Ok(m)) = alerts_consumer.poll(Duration::ZERO) {
            record_latency(&m, &mut latencies, &mut seen);
        }
    }
    let drain_until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < drain_until {
        if let Some(Ok(m)) = alerts_consumer.poll(Duration::from_millis(100)) {
            record_latency(&m, &mut latencies, &mut seen);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "latency at {rate} events/s for {seconds}s ({sent} events, {} alerts timed): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (event received -> alert readable in Kafka)",
        latencies.len(),
        pct(0.50) * 1000.0,
        pct(0.99) * 1000.0,
        latencies.last().copied().unwrap_or(f64::NAN) * 1000.0
    );
    let _ = detector.kill();
    let _ = detector.wait();
}

/// Single-event alerts carry their event's time as evidence; in the latency
/// phase that is the moment the event was produced.
fn record_latency(
    m: &rdkafka::message::BorrowedMessage<'_>,
    out: &mut Vec<f64>,
    seen: &mut BTreeSet<String>,
) {
    let Some(Ok(alert)) = m
        .payload()
        .map(serde_json::from_slice::<qalqan_core::Alert>)
    else {
        return;
    };
    if alert.rule.kind != "detection" || !seen.insert(alert.id.clone()) {
        return;
    }
    if let Some(ev) = alert.evidence.first() {
        let delay = (Utc::now() - ev.timestamp).num_microseconds().unwrap_or(0) as f64 / 1e6;
        out.push(delay);
    }
}
