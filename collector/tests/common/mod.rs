//! Shared test harness: a unique agency topic on the real local Kafka, the
//! collector binary run as a child process, and small helpers.
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn collector_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_qalqan-collector"))
}

/// A free loopback port (TCP; UDP on the same number is free in practice).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let p = l.local_addr().expect("addr").port();
    let u = std::net::UdpSocket::bind(("127.0.0.1", p));
    if u.is_err() {
        return free_port();
    }
    p
}

/// One test's world: a temp dir, a unique agency and its topic.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub agency: String,
    pub topic: String,
    pub brokers: String,
}

impl Setup {
    pub fn new(partitions: i32) -> Setup {
        let brokers = qalqan_testkit::kafka_brokers();
        let agency = qalqan_testkit::unique("t").replace('.', "_");
        let topic = qalqan_core::topics::events_topic(&agency);
        qalqan_testkit::create_topic(&topic, partitions);
        Setup {
            dir: tempfile::tempdir().expect("tempdir"),
            agency,
            topic,
            brokers,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A config: the collector, Kafka and metrics tables, then `body`.
    pub fn config(&self, name: &str, body: &str) -> String {
        self.config_with_brokers(name, &self.brokers.clone(), body)
    }

    pub fn config_with_brokers(&self, name: &str, brokers: &str, body: &str) -> String {
        format!(
            "[collector]\nname = \"{name}\"\nagency = \"{}\"\nstate_dir = \"{}\"\nshutdown_timeout = \"20s\"\n\
             [kafka]\nbrokers = \"{brokers}\"\n[metrics]\nlisten = \"127.0.0.1:{}\"\n{body}\n",
            self.agency,
            self.path("state").display(),
            free_port(),
        )
    }

    /// Reads the topic until `n` messages (or `secs`), as JSON events.
    pub fn consume(&self, n: usize, secs: u64) -> Vec<qalqan_testkit::Message> {
        qalqan_testkit::consume_all(&self.brokers, &self.topic, n, Duration::from_secs(secs))
    }
}

/// A collector child process.
pub struct Proc {
    child: Option<Child>,
    pub log: PathBuf,
    pub metrics: SocketAddr,
}

fn metrics_addr(config: &str) -> SocketAddr {
    let line = config
        .lines()
        .find(|l| l.starts_with("listen = \"127.0.0.1:") && config.contains("[metrics]"))
        .expect("metrics listen line");
    let addr = line.trim_start_matches("listen = \"").trim_end_matches('"');
    addr.parse().expect("metrics addr")
}

impl Proc {
    /// Starts `qalqan-collector --config` and waits until it says it started.
    pub fn start(setup: &Setup, config: &str, tag: &str) -> Proc {
        Self::start_with(setup, config, tag, &[], None)
    }

    pub fn start_with(
        setup: &Setup,
        config: &str,
        tag: &str,
        extra_args: &[&str],
        path_prefix: Option<&Path>,
    ) -> Proc {
        let cfg_path = setup.path(&format!("{tag}.toml"));
        std::fs::write(&cfg_path, config).expect("write config");
        let log = setup.path(&format!("{tag}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut cmd = Command::new(collector_bin());
        cmd.arg("--config").arg(&cfg_path).args(extra_args);
        cmd.env("RUST_LOG", "info,librdkafka=warn")
            .stdout(Stdio::null())
            .stderr(log_file);
        if let Some(p) = path_prefix {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", p.display()));
        }
        if extra_args.contains(&"--stdin") {
            cmd.stdin(Stdio::piped());
        } else {
            cmd.stdin(Stdio::null());
        }
        let child = cmd.spawn().expect("spawn qalqan-collector");
        let mut p = Proc {
            child: Some(child),
            log,
            metrics: metrics_addr(config),
        };
        if !extra_args.contains(&"--stdin") {
            p.wait_started();
        }
        p
    }

    fn wait_started(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.log_text().contains("started") {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("collector exited at start ({status}):\n{}", self.log_text());
                }
            }
            assert!(
                Instant::now() < deadline,
                "collector did not start:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn stdin(&mut self) -> std::process::ChildStdin {
        self.child
            .as_mut()
            .and_then(|c| c.stdin.take())
            .expect("stdin piped")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sum of a metric over its label sets (NaN when the endpoint is down).
    pub fn metric(&self, name: &str) -> f64 {
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&self.metrics, Duration::from_secs(2))
        else {
            return f64::NAN;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut body = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut body);
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits until `metric` reaches `at_least`.
    pub fn wait_metric(&self, name: &str, at_least: f64, secs: u64) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.metric(name);
            if v >= at_least || Instant::now() >= deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, sig: i32) {
        let pid = self.pid() as i32;
        if pid > 0 {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn term(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait(Duration::from_secs(90))
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.wait(Duration::from_secs(10));
    }

    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().expect("running");
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return s;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!(
                    "collector did not exit in {timeout:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The events (JSON) of the messages, heartbeats left out.
pub fn events(msgs: &[qalqan_testkit::Message]) -> Vec<Value> {
    msgs.iter()
        .map(|m| m.payload_json())
        .filter(|v| v["event"]["dataset"] != "qalqan.heartbeat")
        .collect()
}

/// A dotted field of a nested JSON event.
pub fn field<'a>(ev: &'a Value, dotted: &str) -> &'a Value {
    let mut v = ev;
    for part in dotted.split('.') {
        v = &v[part];
    }
    v
}

pub fn s<'a>(ev: &'a Value, dotted: &str) -> &'a str {
    field(ev, dotted).as_str().unwrap_or("")
}

/// An auth.log-style sshd line whose user name is `user`.
pub fn sshd_line(host: &str, user: &str) -> String {
    format!(
        "Mar  1 10:00:00 {host} sshd[4242]: Failed password for invalid user {user} from 203.0.113.7 port 50022 ssh2"
    )
}

/// Appends lines to a file.
pub fn append_lines(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    let mut buf = String::new();
    for l in lines {
        buf.push_str(&l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes()).expect("append");
}

pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}
