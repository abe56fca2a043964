//! End-to-end throughput against the real local Kafka (acks=all,
//! idempotence, zstd), printed, not asserted:
//!
//! * syslog over TCP (256-byte RFC 5424 lines, newline framing) →
//!   collector → Kafka, with 1 and 4 connections, buffer off and
//!   write-ahead: events/s from the first line sent to the last one
//!   confirmed in the topic;
//! * UDP at 200k lines/s for 10 s: the share received, the drops counted
//!   (kernel, queue full and buffer full), and the share that reached Kafka.
//!
//! `cargo bench -p qalqan-collector --bench pipeline`. Knobs:
//! `QALQAN_BENCH_LINES` (TCP lines per case, default 400000),
//! `QALQAN_BENCH_UDP_RATE` (default 200000), `QALQAN_BENCH_UDP_SECS` (10),
//! `QALQAN_BENCH_UDP_SENDERS` (sender threads, default 2),
//! `QALQAN_BENCH_ONLY` (`tcp` or `udp`: run only those cases).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qalqan_collector::loadgen::{
    send_tcp, send_udp, topic_message_count, wait_for_count, TcpFraming,
};

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    l.local_addr().expect("addr").port()
}

struct Collector {
    child: Child,
    metrics: SocketAddr,
}

impl Collector {
    fn start(dir: &Path, config: String, metrics: SocketAddr) -> Collector {
        let cfg = dir.join("c.toml");
        std::fs::write(&cfg, config).expect("config");
        let log = std::fs::File::create(dir.join("c.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_qalqan-collector"))
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn collector");
        let c = Collector { child, metrics };
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.metric("qalqan_collector_build_info").is_nan() {
            assert!(
                Instant::now() < deadline,
                "collector did not start; see {}",
                dir.join("c.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    fn metric(&self, name: &str) -> f64 {
        let Ok(mut s) = std::net::TcpStream::connect(self.metrics) else {
            return f64::NAN;
        };
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        let vals: Vec<f64> = body
            .lines()
            .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        if vals.is_empty() {
            f64::NAN
        } else {
            vals.iter().sum()
        }
    }

    fn metric_labeled(&self, name: &str, label: &str) -> f64 {
        let Ok(mut s) = std::net::TcpStream::connect(self.metrics) else {
            return f64::NAN;
        };
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.lines()
            .filter(|l| l.starts_with(name) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn stop(mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

fn config(
    dir: &Path,
    agency: &str,
    brokers: &str,
    metrics: SocketAddr,
    buffer: &str,
    source: &str,
) -> String {
    format!(
        "[collector]\nname = \"bench\"\nagency = \"{agency}\"\nstate_dir = \"{}\"\n\
         [kafka]\nbrokers = \"{brokers}\"\n[metrics]\nlisten = \"{metrics}\"\n[heartbeat]\nenabled = false\n\
         [buffer]\nmode = \"{buffer}\"\n{source}\n",
        dir.join("state").display()
    )
}

fn tcp_case(brokers: &str, connections: usize, buffer: &str, lines: u64) {
    let dir = tempfile::tempdir().expect("tmp");
    let agency = qalqan_testkit::unique("bench").replace('.', "_");
    let topic = qalqan_core::topics::events_topic(&agency);
    qalqan_testkit::create_topic(&topic, 6);
    let port = free_port();
    let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let source = format!("[sources.tcp]\ntype = \"tcp\"\nlisten = \"127.0.0.1:{port}\"\n");
    let c = Collector::start(
        dir.path(),
        config(dir.path(), &agency, brokers, metrics, buffer, &source),
        metrics,
    );
    let per_conn = lines / connections as u64;
    let total = per_conn * connections as u64;
    let t0 = Instant::now();
    let sender = std::thread::spawn(move || {
        send_tcp(
            ([127, 0, 0, 1], port).into(),
            connections,
            per_conn,
            256,
            TcpFraming::Newline,
            0,
        )
    });
    let (n, at) = wait_for_count(brokers, &topic, total, Duration::from_secs(600)).expect("count");
    let _ = sender.join();
    let secs = (at - t0).as_secs_f64();
    println!(
        "tcp -> collector -> kafka  connections={connections} buffer={buffer:<11} {n}/{total} events in {secs:.2}s = {:.0} events/s",
        n as f64 / secs
    );
    c.stop();
}

fn udp_case(brokers: &str, rate: u64, secs: u64) {
    let dir = tempfile::tempdir().expect("tmp");
    let agency = qalqan_testkit::unique("benchudp").replace('.', "_");
    let topic = qalqan_core::topics::events_topic(&agency);
    qalqan_testkit::create_topic(&topic, 6);
    let port = free_port();
    let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let source = format!("[sources.udp]\ntype = \"udp\"\nlisten = \"127.0.0.1:{port}\"\n");
    let c = Collector::start(
        dir.path(),
        config(
            dir.path(),
            &agency,
            brokers,
            metrics,
            "write_ahead",
            &source,
        ),
        metrics,
    );
    let lines = rate * secs;
    // Two senders, like two devices: one thread alone cannot offer 200k
    // datagrams/s on a 2-core machine it shares with the collector and Kafka.
    let senders = env_u64("QALQAN_BENCH_UDP_SENDERS", 2) as usize;
    let t0 = std::time::Instant::now();
    let took =
        send_udp(([127, 0, 0, 1], port).into(), senders, lines, 256, rate).expect("udp send");
    // Let the collector finish what the kernel holds.
    let mut last = -1.0;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let r = c.metric("qalqan_collector_events_received_total");
        if r == last {
            break;
        }
        last = r;
    }
    std::thread::sleep(Duration::from_millis(1200));
    let received = c.metric("qalqan_collector_events_received_total");
    let kernel = c.metric_labeled("qalqan_collector_udp_dropped_total", "reason=\"kernel\"");
    let full = c.metric_labeled(
        "qalqan_collector_udp_dropped_total",
        "reason=\"buffer_full\"",
    );
    let queue_full = c.metric_labeled(
        "qalqan_collector_udp_dropped_total",
        "reason=\"queue_full\"",
    );
    let spooled = c.metric("qalqan_collector_udp_spooled_total");
    let (delivered, done) =
        wait_for_count(brokers, &topic, received as u64, Duration::from_secs(300)).expect("count");
    let delivered = delivered.max(topic_message_count(brokers, &topic).unwrap_or(0));
    println!(
        "udp {rate} lines/s for {secs}s: sent {lines} in {:.2}s ({:.0}/s); received {received} = {:.3}%; dropped kernel {kernel} + queue_full {queue_full} + buffer_full {full}; unaccounted {}; in Kafka {delivered} = {:.3}%, all there {:.1}s after the first datagram; {spooled} waited in the spool",
        took.as_secs_f64(),
        lines as f64 / took.as_secs_f64(),
        100.0 * received / lines as f64,
        lines as f64 - received - kernel - queue_full - full,
        100.0 * delivered as f64 / lines as f64,
        (done - t0).as_secs_f64(),
    );
    c.stop();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` runs benches only with --benches.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let brokers = qalqan_testkit::kafka_brokers();
    let lines = env_u64("QALQAN_BENCH_LINES", 400_000);
    println!("end-to-end rates (acks=all, enable.idempotence=true, compression zstd), {lines} lines of 256 bytes per TCP case");
    // QALQAN_BENCH_ONLY=tcp|udp runs one kind of case.
    let only = std::env::var("QALQAN_BENCH_ONLY").unwrap_or_default();
    for (connections, buffer) in [
        (1, "off"),
        (4, "off"),
        (1, "write_ahead"),
        (4, "write_ahead"),
    ] {
        if only != "udp" {
            tcp_case(&brokers, connections, buffer, lines);
        }
    }
    if only == "tcp" {
        return;
    }
    udp_case(
        &brokers,
        env_u64("QALQAN_BENCH_UDP_RATE", 200_000),
        env_u64("QALQAN_BENCH_UDP_SECS", 10),
    );
}
