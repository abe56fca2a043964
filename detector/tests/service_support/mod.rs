//! Harness for the service tests: a private set of topics (and a private
//! ClickHouse database) on the real local stack, the detector binary run as
//! child processes with a generated config, and an in-process reference run
//! of the same rules that says which alert ids the service must produce.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qalqan_core::Event;
use qalqan_detector::metrics::Metrics;
use qalqan_detector::pipeline::matcher::MatcherSettings;
use qalqan_detector::pipeline::{Correlator, LoadedRules, MatchOutput, Matcher, RuleSources};
use qalqan_testkit::Message;

/// The project's rule pack with its pipelines.
pub fn rule_sources() -> RuleSources {
    let rules = qalqan_testkit::workspace_root().join("rules");
    RuleSources {
        pipelines: qalqan_detector::pipeline::rules::shipped_pipelines(std::slice::from_ref(
            &rules,
        )),
        paths: vec![rules],
        ..RuleSources::default()
    }
}

/// One test's private world on the shared stack.
pub struct World {
    pub agency: String,
    pub brokers: String,
    pub events_topic: String,
    pub raw_topic: String,
    pub signals: String,
    pub signal_partitions: i32,
    pub alerts: String,
    pub deadletter: String,
    pub database: Option<String>,
    pub dir: PathBuf,
}

impl World {
    /// Topics with the given partition counts; a ClickHouse database with
    /// the schema applied when `clickhouse` is set.
    pub fn new(
        tag: &str,
        event_partitions: i32,
        signal_partitions: i32,
        clickhouse: bool,
    ) -> World {
        let brokers = qalqan_testkit::kafka_brokers();
        let agency = qalqan_testkit::unique(tag).replace(['.', '-'], "_");
        let dir = std::env::temp_dir().join(format!("qalqan-svc-{agency}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let w = World {
            events_topic: qalqan_core::topics::events_topic(&agency),
            raw_topic: format!("{}{agency}", qalqan_core::topics::RAW_PREFIX),
            signals: format!("t.{agency}.signals"),
            signal_partitions,
            alerts: format!("t.{agency}.alerts"),
            deadletter: format!("t.{agency}.deadletter"),
            database: clickhouse.then(|| format!("qalqan_{agency}")),
            agency,
            brokers,
            dir,
        };
        qalqan_testkit::create_topic(&w.events_topic, event_partitions);
        qalqan_testkit::create_topic(&w.raw_topic, 1);
        qalqan_testkit::create_topic(&w.signals, signal_partitions);
        qalqan_testkit::create_topic(&w.alerts, 1);
        qalqan_testkit::create_topic(&w.deadletter, 1);
        if clickhouse {
            let url = qalqan_testkit::clickhouse_url();
            let status = Command::new(qalqan_testkit::cargo_bin("qalqan-detector"))
                .args(["schema", "apply", "--url", &url, "--database"])
                .arg(w.database.as_deref().unwrap_or_default())
                .status()
                .expect("run schema apply");
            assert!(status.success(), "schema apply failed");
        }
        w
    }

    /// Writes a detector config for this world; `extra` is appended (TOML).
    pub fn config(&self, name: &str, roles: &[&str], extra: &str) -> PathBuf {
        let sources = rule_sources();
        let list = |ps: &[PathBuf]| {
            ps.iter()
                .map(|p| format!("{:?}", p.display().to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let roles = roles
            .iter()
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Stage 1 hands decoding and rule evaluation to a worker thread
        // here (the default on a 2-core machine evaluates in place), so
        // the end-to-end tests cover the threaded path.
        let mut text = format!(
            "[detector]\nroles = [{roles}]\ngroup_prefix = \"t.{agency}\"\ninstance = \"{name}\"\nbatch_wait = \"20ms\"\nmatch_workers = 1\n\
             [topics]\nevents = '^{events}$'\nraw = '^{raw}$'\nsignals = \"{signals}\"\nalerts = \"{alerts}\"\ndeadletter = \"{dl}\"\n\
             [kafka]\nbrokers = \"{brokers}\"\n\
             [rules]\npaths = [{paths}]\npipelines = [{pipelines}]\nstrict = true\nwatch = false\n\
             [metrics]\nlisten = \"127.0.0.1:{port}\"\n",
            agency = self.agency,
            events = regex_escape(&self.events_topic),
            raw = regex_escape(&self.raw_topic),
            signals = self.signals,
            alerts = self.alerts,
            dl = self.deadletter,
            brokers = self.brokers,
            paths = list(&sources.paths),
            pipelines = list(&sources.pipelines),
            port = free_port(),
        );
        if let Some(db) = &self.database {
            text.push_str(&format!(
                "[clickhouse]\nurl = \"{}\"\ndatabase = \"{db}\"\nflush_interval = \"300ms\"\n",
                qalqan_testkit::clickhouse_url()
            ));
        }
        text.push_str(extra);
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// Reads the alerts topic until `n` distinct ids (or `secs`); returns
    /// every alert message (duplicates included).
    pub fn alerts_until(&self, n: usize, secs: u64) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let msgs =
                qalqan_testkit::consume_all(&self.brokers, &self.alerts, 0, Duration::from_secs(5));
            let alerts: Vec<serde_json::Value> = msgs.iter().map(Message::payload_json).collect();
            let distinct: BTreeSet<&str> = alerts.iter().filter_map(|a| a["id"].as_str()).collect();
            if distinct.len() >= n || Instant::now() >= deadline {
                return alerts;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Polls a ClickHouse query until it returns `want` (or `secs`).
    pub fn clickhouse_until(&self, sql: &str, want: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = qalqan_testkit::clickhouse_try_query(sql).unwrap_or_default();
            if got.trim() == want || Instant::now() >= deadline {
                return got.trim().to_owned();
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(db) = &self.database {
            let _ = qalqan_testkit::clickhouse_try_query(&format!("DROP DATABASE IF EXISTS {db}"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn regex_escape(s: &str) -> String {
    s.replace('.', "\\.")
}

/// The `/metrics` text of the detector started with `config`.
pub fn scrape(config: &Path) -> String {
    use std::io::Read;
    let text = std::fs::read_to_string(config).expect("config");
    let addr = text
        .lines()
        .find_map(|l| l.strip_prefix("listen = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("metrics.listen in the config")
        .to_owned();
    // The endpoint comes up once the rules are loaded: wait for it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stream = loop {
        match std::net::TcpStream::connect(&addr) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => panic!("connect to /metrics at {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).expect("response");
    body
}

/// The sum of the samples of `metric` whose lines contain every one of
/// `labels` (e.g. `agency="mof"`); `None` when there is none.
pub fn sample(metrics: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    let values: Vec<f64> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && labels.iter().all(|x| l.contains(x))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `qalqan-detector run`.
pub struct Detector {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Detector {
    pub fn start(config: &Path, tag: &str) -> Detector {
        let log = config.with_file_name(format!("{tag}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(qalqan_testkit::cargo_bin("qalqan-detector"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("start qalqan-detector");
        Detector {
            child: Some(child),
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGKILL: no chance to commit or flush anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(c.id().to_string())
                .status();
        }
    }
}

impl Drop for Detector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Events as the collector would put them on Kafka: parsed, numbered by
/// one observer. Returns (event, its JSON).
pub fn collector_events(lines: &[String], observer: &str) -> Vec<(Event, String)> {
    let parser = qalqan_core::parse::Parser::default();
    let now = qalqan_core::event::now_micros();
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let mut ev = parser.parse(line.as_bytes(), now).event;
            ev.fields.insert("observer.name", observer.to_owned());
            ev.fields.insert("observer.type", "collector");
            ev.fields.insert(
                "observer.sequence",
                qalqan_core::event::Value::from(i as u64 + 1),
            );
            let json = ev.to_json_string();
            (ev, json)
        })
        .collect()
}

/// The alert ids one uninterrupted in-process detector gives for `events`
/// of `agency` (in this order), with the default settings of the service.
pub fn reference_alert_ids(agency: &str, events: &[Event]) -> BTreeSet<String> {
    reference_alerts(agency, events)
        .into_iter()
        .map(|a| a.id)
        .collect()
}

/// The alerts one in-process pipeline raises for `events` (see
/// [`reference_alert_ids`]).
pub fn reference_alerts(agency: &str, events: &[Event]) -> Vec<qalqan_core::Alert> {
    let rules = Arc::new(LoadedRules::load(&rule_sources()).expect("rules load"));
    assert!(rules.problems.is_empty(), "{:?}", rules.problems);
    let metrics = Arc::new(Metrics::new());
    let mut matcher = Matcher::new(
        Arc::clone(&rules),
        &MatcherSettings::default(),
        Arc::clone(&metrics),
    );
    let mut correlator = Correlator::new(
        Arc::clone(&rules.correlations),
        qalqan_correlation::EngineConfig::default(),
        metrics,
    )
    .expect("engine");
    let mut out = MatchOutput::default();
    let mut alerts = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        let id = qalqan_detector::store::event_id_for(ev, agency, "", 0, i as i64);
        out.clear();
        matcher.process(agency, ev, &id, i as u64, &mut out);
        alerts.append(&mut out.alerts);
        for s in out.signals.drain(..) {
            correlator.process(0, s, &mut alerts);
        }
    }
    correlator.flush(&mut alerts);
    alerts
}

/// One line per alert whose id is in `ids`: rule, group and window, to
/// tell why two runs' ids differ.
pub fn describe_alerts<'a>(
    ids: impl IntoIterator<Item = &'a String>,
    alerts: impl Iterator<Item = serde_json::Value>,
) -> String {
    let wanted: BTreeSet<&str> = ids.into_iter().map(String::as_str).collect();
    alerts
        .filter(|a| a["id"].as_str().is_some_and(|id| wanted.contains(id)))
        .map(|a| {
            format!(
                "  {} {} group={} window={}..{} created={} evidence at {}",
                a["id"].as_str().unwrap_or_default(),
                a["rule"]["title"],
                a["group"],
                a["window_start"],
                a["window_end"],
                a["created"],
                a["evidence"]
                    .as_array()
                    .map(|ev| ev
                        .iter()
                        .map(|e| e["timestamp"].to_string())
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A producer to the world's Kafka as a collector configures one
/// (acks=all, idempotence), for tests that put events on the topics.
pub fn event_producer(
    world: &World,
) -> rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &world.brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "300000")
        .create()
        .expect("producer")
}

/// Queues one record, waiting while the producer's queue is full; any
/// other error fails the test.
pub fn send_waiting(
    producer: &rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    mut record: rdkafka::producer::BaseRecord<'_, str, str>,
) {
    while let Err((e, back)) = producer.send(record) {
        assert!(
            matches!(
                e,
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull
                )
            ),
            "{e}"
        );
        record = back;
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Distinct ids of alert JSON values.
pub fn ids(alerts: &[serde_json::Value]) -> BTreeSet<String> {
    alerts
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_owned))
        .collect()
}

/// Appends a line to a file (for hot-reload tests).
pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(text.as_bytes()).expect("append");
}
