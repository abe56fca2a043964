//! Parse+normalize throughput, single-threaded, per lane of realistic lines.
//!
//! Run: `cargo bench -p qalqan-core --bench parse` (release profile). Prints
//! lines/s and MB/s per lane. The sshd lane is the loghub OpenSSH sample
//! (`../shared/data/loghub/OpenSSH_2k.log`, or `$QALQAN_SHARED_DATA`) plus
//! synthetic sshd/PAM lines in BSD and RFC 5424 envelopes; the other lanes
//! are generated here with varied addresses, users, paths and agents so no
//! two consecutive lines are alike. `QALQAN_BENCH_SECS` sets the time per
//! lane (default 2); `QALQAN_BENCH_LANE=sshd` runs only lanes whose name
//! contains that text.
//!
//! Each lane also times the two other per-event steps of the hot path on
//! the same events: encoding the wire form (`Event::to_json_string`, the
//! collector's output) and decoding it (`Event::from_json_bytes`, the
//! detector's input).
//!
//! Rates are lines per CPU-second of the benchmark thread (from
//! `/proc/thread-self/schedstat`), so a busy machine slows the run down
//! rather than the number; the wall-clock rate is printed alongside. Most of
//! the per-line cost beyond parsing is allocation (every field value is an
//! owned `String` in the event contract), so the benchmark runs with the
//! allocator both binaries ship with (mimalloc); glibc's malloc is ~20–30%
//! slower on events of more than ~18 fields (packet logs, CEF).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use qalqan_testkit::bench::thread_cpu;

use chrono::{TimeZone, Utc};
use qalqan_core::parse::{ParseOptions, Parser};
use qalqan_core::Event;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Deterministic pseudo-random numbers for varied synthetic lines.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn ip(&mut self) -> String {
        format!(
            "{}.{}.{}.{}",
            1 + self.below(222),
            self.below(256),
            self.below(256),
            1 + self.below(254)
        )
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const USERS: &[&str] = &[
    "root", "admin", "oracle", "test", "ubuntu", "git", "postgres", "deploy", "alice", "user1",
];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn bsd_stamp(rng: &mut Rng) -> String {
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        rng.pick(MONTHS),
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
        rng.below(60)
    )
}

fn shared_data() -> PathBuf {
    match std::env::var_os("QALQAN_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    }
}

fn sshd_lines(rng: &mut Rng) -> Vec<String> {
    let path = shared_data().join("loghub/OpenSSH_2k.log");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "missing bench data {}: {e} (set QALQAN_SHARED_DATA to the directory holding loghub/)",
            path.display()
        )
    });
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for n in 0..8_000 {
        let (ip, user, port, pid) = (
            rng.ip(),
            rng.pick(USERS),
            1024 + rng.below(64_000),
            1000 + rng.below(60_000),
        );
        let msg = match n % 8 {
            0 => format!("Failed password for {user} from {ip} port {port} ssh2"),
            1 => format!("Failed password for invalid user {user}{n} from {ip} port {port} ssh2"),
            2 => format!("Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:Zm9vYmFyYmF6cXV4{n}"),
            3 => format!("Invalid user {user}{n} from {ip} port {port}"),
            4 => format!("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}"),
            5 => format!("Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"),
            6 => format!("Connection closed by authenticating user {user} {ip} port {port} [preauth]"),
            _ => format!("Disconnected from invalid user {user} {ip} port {port} [preauth]"),
        };
        if n % 4 == 0 {
            lines.push(format!(
                "<38>1 2026-03-{:02}T{:02}:{:02}:{:02}.{:06}+06:00 host{} sshd {pid} - - {msg}",
                1 + rng.below(28),
                rng.below(24),
                rng.below(60),
                rng.below(60),
                rng.below(1_000_000),
                rng.below(50)
            ));
        } else {
            lines.push(format!(
                "{} host{} sshd[{pid}]: {msg}",
                bsd_stamp(rng),
                rng.below(50)
            ));
        }
    }
    lines
}

fn web_lines(rng: &mut Rng) -> Vec<String> {
    const PATHS: &[&str] = &[
        "/",
        "/index.php",
        "/wp-login.php",
        "/api/v1/users",
        "/static/app.js",
        "/images/logo.png",
        "/search",
        "/.env",
        "/cgi-bin/luci",
    ];
    const AGENTS: &[&str] = &[
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0 Safari/537.36",
        "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
        "curl/8.5.0",
        "python-requests/2.31.0",
        "Mozilla/5.0 zgrab/0.x",
    ];
    const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "HEAD", "PUT"];
    (0..10_000)
        .map(|n| {
            let query = if n % 3 == 0 { format!("?id={}&q=test%20{}", rng.below(10_000), n) } else { String::new() };
            let user = if n % 10 == 0 { "alice" } else { "-" };
            format!(
                "{} - {user} [{:02}/Mar/2026:{:02}:{:02}:{:02} +0600] \"{} {}{query} HTTP/1.1\" {} {} \"{}\" \"{}\"",
                rng.ip(),
                1 + rng.below(28),
                rng.below(24),
                rng.below(60),
                rng.below(60),
                rng.pick(METHODS),
                rng.pick(PATHS),
                rng.pick(&["200", "200", "200", "301", "404", "403", "500"]),
                rng.below(100_000),
                rng.pick(&["-", "https://example.gov.kz/", "https://www.google.com/"]),
                rng.pick(AGENTS),
            )
        })
        .collect()
}

fn firewall_lines(rng: &mut Rng) -> Vec<String> {
    (0..10_000)
        .map(|n| {
            let prefix = rng.pick(&["[UFW BLOCK] ", "[UFW ALLOW] ", "DROP: ", "nft drop in: ", "IPTABLES-INPUT-DROP: "]);
            let proto = rng.pick(&["TCP", "UDP", "TCP"]);
            let tail = if proto == "TCP" {
                format!("PROTO=TCP SPT={} DPT={} WINDOW=64240 RES=0x00 SYN URGP=0", 1024 + rng.below(60_000), rng.pick(&["22", "23", "445", "3389", "80"]))
            } else {
                format!("PROTO=UDP SPT={} DPT={} LEN=40", 1024 + rng.below(60_000), rng.pick(&["53", "123", "161", "1900"]))
            };
            format!(
                "{} fw{} kernel: [{}.{:06}] {prefix}IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:{:02x}:08:00 SRC={} DST=10.0.{}.{} LEN=60 TOS=0x00 PREC=0x00 TTL={} ID={} DF {tail}",
                bsd_stamp(rng),
                n % 7,
                rng.below(1_000_000),
                rng.below(1_000_000),
                rng.below(256),
                rng.ip(),
                rng.below(256),
                1 + rng.below(254),
                32 + rng.below(96),
                rng.below(65_536),
            )
        })
        .collect()
}

fn json_lines(rng: &mut Rng) -> Vec<String> {
    (0..10_000)
        .map(|n| {
            format!(
                r#"{{"@timestamp":"2026-03-01T{:02}:{:02}:{:02}.{:03}Z","log":{{"level":"info"}},"message":"request handled {n}","service":{{"name":"portal"}},"source":{{"ip":"{}","port":{}}},"user":{{"name":"{}"}},"http":{{"request":{{"method":"GET"}},"response":{{"status_code":200}}}},"url":{{"path":"/api/v1/items/{}"}},"event":{{"duration":{}}},"tags":["prod","kz"]}}"#,
                rng.below(24),
                rng.below(60),
                rng.below(60),
                rng.below(1000),
                rng.ip(),
                1024 + rng.below(60_000),
                rng.pick(USERS),
                rng.below(100_000),
                rng.below(10_000_000),
            )
        })
        .collect()
}

fn cef_lines(rng: &mut Rng) -> Vec<String> {
    (0..10_000)
        .map(|n| {
            format!(
                "<134>{} fw-hq CEF:0|Fortinet|FortiGate-100F|7.2.5|00013|traffic:forward {}|3|src={} spt={} dst=10.0.{}.{} dpt={} proto=6 act={} suser={} deviceInboundInterface=wan1 rt={} cs1Label=policy cs1=rule {} msg=session {n} closed",
                bsd_stamp(rng),
                rng.pick(&["deny", "accept"]),
                rng.ip(),
                1024 + rng.below(60_000),
                rng.below(256),
                1 + rng.below(254),
                rng.pick(&["22", "443", "3389", "445"]),
                rng.pick(&["deny", "accept", "close"]),
                rng.pick(USERS),
                1_772_359_200_000u64 + rng.below(86_400_000),
                rng.below(100),
            )
        })
        .collect()
}

fn syslog5424_256(rng: &mut Rng) -> Vec<String> {
    (0..10_000)
        .map(|n| {
            let mut line = format!(
                "<165>1 2026-03-01T10:{:02}:{:02}.{:06}Z app{}.example.gov.kz portal {} ID{} [meta seq=\"{n}\"] user {} fetched document {} from {}",
                rng.below(60),
                rng.below(60),
                rng.below(1_000_000),
                rng.below(20),
                1000 + rng.below(60_000),
                rng.below(100),
                rng.pick(USERS),
                rng.below(1_000_000),
                rng.ip(),
            );
            while line.len() < 256 {
                line.push('.');
            }
            line.truncate(256);
            line
        })
        .collect()
}

/// CPU time this thread has used, from `/proc/thread-self/schedstat`
/// (nanoseconds on Linux). On a shared, busy machine wall-clock rates
/// measure the neighbours; CPU time measures the parser. `None` elsewhere.
fn run_lane(name: &str, parser: &Parser, lines: &[String], budget: Duration) {
    if let Ok(only) = std::env::var("QALQAN_BENCH_LANE") {
        if !name.contains(only.as_str()) {
            return;
        }
    }
    let received = Utc
        .with_ymd_and_hms(2026, 3, 2, 0, 0, 0)
        .single()
        .expect("time");
    let bytes_per_pass: usize = lines.iter().map(|l| l.len() + 1).sum();
    let (n, cpu, wall) = timed(budget, lines.len(), || {
        for l in lines {
            black_box(parser.parse(black_box(l.as_bytes()), received));
        }
    });
    println!(
        "{name:<22} {:>10.0} lines/s per core  {:>6.1} MB/s  (wall {:>9.0} lines/s; {} lines, avg {} B)",
        n as f64 / cpu,
        (n as f64 / lines.len() as f64) * bytes_per_pass as f64 / cpu / 1e6,
        n as f64 / wall,
        n,
        bytes_per_pass / lines.len().max(1)
    );
    let events: Vec<Event> = lines
        .iter()
        .map(|l| parser.parse(l.as_bytes(), received).event)
        .collect();
    let (n, cpu, _) = timed(budget / 2, events.len(), || {
        for ev in &events {
            black_box(black_box(ev).to_json_string());
        }
    });
    let wire: Vec<String> = events.iter().map(Event::to_json_string).collect();
    let wire_bytes: usize = wire.iter().map(String::len).sum();
    println!(
        "{:<22} {:>10.0} events/s per core (encode wire form, avg {} B)",
        "",
        n as f64 / cpu,
        wire_bytes / wire.len().max(1)
    );
    let (n, cpu, _) = timed(budget / 2, wire.len(), || {
        for w in &wire {
            black_box(Event::from_json_bytes(black_box(w.as_bytes()), received).is_ok());
        }
    });
    println!(
        "{:<22} {:>10.0} events/s per core (decode wire form)",
        "",
        n as f64 / cpu
    );
}

/// Runs `pass` (which handles `per_pass` items) after one warm-up pass
/// until `budget` of this thread's CPU time is spent; returns the items
/// handled, CPU seconds and wall seconds.
fn timed(budget: Duration, per_pass: usize, mut pass: impl FnMut()) -> (u64, f64, f64) {
    pass();
    let start = Instant::now();
    let cpu_start = thread_cpu();
    // The budget is CPU time when available, so a busy machine only makes
    // the run longer, not shorter.
    let spent = |start: Instant| match thread_cpu().saturating_sub(cpu_start) {
        cpu if cpu.is_zero() => start.elapsed(), // no thread clock here
        cpu => cpu,
    };
    let mut n = 0u64;
    while spent(start) < budget {
        pass();
        n += per_pass as u64;
    }
    (n, spent(start).as_secs_f64(), start.elapsed().as_secs_f64())
}
fn main() {
    let secs: f64 = std::env::var("QALQAN_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let budget = Duration::from_secs_f64(secs);
    let parser = Parser::new(ParseOptions {
        web_product: Some("nginx".into()),
        ..ParseOptions::default()
    });
    let mut rng = Rng(0x5EED_1234_ABCD_9876);
    println!("qalqan parse+normalize, single thread, {secs}s per lane");
    run_lane(
        "sshd (loghub+synth)",
        &parser,
        &sshd_lines(&mut rng),
        budget,
    );
    run_lane("web access combined", &parser, &web_lines(&mut rng), budget);
    run_lane(
        "firewall iptables/nft",
        &parser,
        &firewall_lines(&mut rng),
        budget,
    );
    run_lane("json", &parser, &json_lines(&mut rng), budget);
    run_lane("cef (in syslog)", &parser, &cef_lines(&mut rng), budget);
    run_lane(
        "syslog5424 256B",
        &parser,
        &syslog5424_256(&mut rng),
        budget,
    );
}
