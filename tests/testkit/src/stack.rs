//! The local stack, started once per test process through
//! `deploy/local/stack`.
//!
//! The script does the real work (install, start, wait until ready) and is
//! safe to call from many processes at once: it holds a file lock while it
//! starts or stops anything, and a second `up` only reports. This module adds
//! the per-process memo and turns the script's failure output into a panic
//! message a developer can act on.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::paths::workspace_root;

/// How long `stack up` may take: the first run installs Debian packages and
/// fetches Kafka's jars from Maven Central, which can take minutes.
const STACK_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// A server of the local stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Apache Kafka (KRaft, one node).
    Kafka,
    /// Debian's clickhouse-server 18.16.
    ClickHouse,
    /// Debian's Prometheus.
    Prometheus,
}

impl Service {
    /// The name the stack script knows the service by.
    pub fn name(self) -> &'static str {
        match self {
            Service::Kafka => "kafka",
            Service::ClickHouse => "clickhouse",
            Service::Prometheus => "prometheus",
        }
    }

    /// The variable that points tests at a server run by someone else.
    pub fn env_var(self) -> &'static str {
        match self {
            Service::Kafka => "QALQAN_KAFKA_BROKERS",
            Service::ClickHouse => "QALQAN_CLICKHOUSE_URL",
            Service::Prometheus => "QALQAN_PROMETHEUS_URL",
        }
    }

    /// Where `deploy/local/stack` runs the service.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Service::Kafka => "127.0.0.1:19092",
            Service::ClickHouse => "http://127.0.0.1:18123",
            Service::Prometheus => "http://127.0.0.1:19090",
        }
    }

    fn slot(self) -> &'static OnceLock<Result<(), String>> {
        static KAFKA: OnceLock<Result<(), String>> = OnceLock::new();
        static CLICKHOUSE: OnceLock<Result<(), String>> = OnceLock::new();
        static PROMETHEUS: OnceLock<Result<(), String>> = OnceLock::new();
        match self {
            Service::Kafka => &KAFKA,
            Service::ClickHouse => &CLICKHOUSE,
            Service::Prometheus => &PROMETHEUS,
        }
    }
}

/// Kafka bootstrap address (`host:port`), after making sure the broker runs.
pub fn kafka_brokers() -> String {
    endpoint(Service::Kafka)
}

/// ClickHouse HTTP base URL (`http://host:port`), after making sure it runs.
pub fn clickhouse_url() -> String {
    endpoint(Service::ClickHouse)
}

/// Prometheus base URL (`http://host:port`), after making sure it runs.
pub fn prometheus_url() -> String {
    endpoint(Service::Prometheus)
}

/// The stack's work directory (`.work/stack`, or `$QALQAN_STACK_DIR`), where
/// each service keeps its config, data, logs and pid file.
pub fn stack_dir() -> PathBuf {
    match std::env::var_os("QALQAN_STACK_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join(".work").join("stack"),
    }
}

/// Run `deploy/local/stack ARGS...` and return its standard output; panics
/// with the script's output when it fails.
///
/// For tests that stop and restart a server on purpose (broker outages):
/// `stack(&["down", "kafka"])`, then `stack(&["up", "kafka"])`. Cargo runs
/// the tests of one binary in parallel threads, so keep such a test in a
/// binary of its own (or serialise it) lest it pull the broker from under
/// its neighbours.
pub fn stack(args: &[&str]) -> String {
    match run_stack(args) {
        Ok(stdout) => stdout,
        Err(message) => panic!("{message}"),
    }
}

fn endpoint(service: Service) -> String {
    if let Ok(value) = std::env::var(service.env_var()) {
        if !value.trim().is_empty() {
            return value.trim().to_string();
        }
    }
    let started = service
        .slot()
        .get_or_init(|| run_stack(&["up", service.name()]).map(|_| ()));
    if let Err(message) = started {
        panic!(
            "the local {name} is not available.\n{message}\n\
             Fix the cause above and re-run, or point the tests at your own server with {var}=...",
            name = service.name(),
            var = service.env_var(),
        );
    }
    service.default_endpoint().to_string()
}

fn run_stack(args: &[&str]) -> Result<String, String> {
    let script = workspace_root().join("deploy").join("local").join("stack");
    let shown = format!("{} {}", script.display(), args.join(" "));
    let mut child = Command::new(&script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run `{shown}`: {e}"))?;

    // Drain both pipes while waiting, so a chatty script cannot block on a
    // full pipe; the services themselves never hold these pipes.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + STACK_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "`{shown}` did not finish within {} minutes and was killed",
                    STACK_TIMEOUT.as_secs() / 60
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(100)),
            Err(e) => break Err(format!("waiting for `{shown}` failed: {e}")),
        }
    };
    let stdout = stdout.map(join_output).unwrap_or_default();
    let stderr = stderr.map(join_output).unwrap_or_default();
    let status = status.map_err(|e| format!("{e}\n{stdout}{stderr}"))?;
    if status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "`{shown}` failed ({status}):\n{stdout}{stderr}\
             Run it by hand to retry; `deploy/local/stack logs SERVICE` shows a server's log."
        ))
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn join_output(handle: thread::JoinHandle<String>) -> String {
    handle.join().unwrap_or_default()
}
