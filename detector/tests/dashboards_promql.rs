//! Every PromQL expression of the Grafana dashboards
//! (`dashboards/grafana/dashboards/*.json`) and of the alerting rules
//! (`dashboards/prometheus/*.yml`) names only metrics the services really
//! export: the real `qalqan-collector` sends lines (one no parser claims, a
//! sudo attack, an out-of-order line) and heartbeats through the stack's
//! Kafka to a real `qalqan-detector run` (match, correlate, archive into the
//! stack's ClickHouse), next to hand-made events with a sequence gap and an
//! undecodable message; both `/metrics` endpoints are scraped until every
//! metric name the expressions use is there. Every expression is also
//! evaluated by the stack's Prometheus, which rejects bad syntax.

mod service_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;
use service_support::{collector_events, Detector, World};

/// Series Prometheus makes itself, not the services.
const PROMETHEUS_OWN: &[&str] = &["up"];

/// PromQL words that are not metric names.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
];

/// Grafana's interval variables, as Prometheus would see them.
fn grafana_free(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
}

/// The metric names an expression selects (functions, labels, grouping,
/// ranges, numbers and keywords left out).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let strings = Regex::new(r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"#).expect("regex");
    let matchers = Regex::new(r"\{[^{}]*\}").expect("regex");
    let ranges = Regex::new(r"\[[^\[\]]*\]").expect("regex");
    let grouping = Regex::new(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
        .expect("regex");
    let token = Regex::new(
        r"(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-z]*)|(?P<id>[A-Za-z_:][A-Za-z0-9_:]*)(?P<call>\s*\()?",
    )
    .expect("regex");
    let text = grafana_free(expr);
    let text = strings.replace_all(&text, "\"\"");
    let text = matchers.replace_all(&text, " ");
    let text = ranges.replace_all(&text, " ");
    let text = grouping.replace_all(&text, " ");
    let mut out = BTreeSet::new();
    for c in token.captures_iter(&text) {
        let Some(id) = c.name("id") else { continue };
        let id = id.as_str();
        if c.name("call").is_some() || KEYWORDS.contains(&id.to_ascii_lowercase().as_str()) {
            continue;
        }
        out.insert(id.to_owned());
    }
    out
}

#[test]
fn metric_name_extraction() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (le) (rate(qalqan_detector_detection_latency_seconds_bucket[$__rate_interval])))"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["qalqan_detector_detection_latency_seconds_bucket".to_string()])
    );
    let names = metric_names(
        r#"qalqan_detector_collector_reported{stat="buffer_bytes"} > 64 * 1024 * 1024
            and deriv(qalqan_detector_collector_reported{stat="a{b}"}[15m]) > 0"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["qalqan_detector_collector_reported".to_string()])
    );
    let names = metric_names(
        r#"sum by (instance) (rate(a_total{parser="unparsed"}[10m])) / on (instance) group_left (x) b_total > 0.2e1 unless time() - c > 300"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["a_total".to_string(), "b_total".into(), "c".into()])
    );
    assert_eq!(
        metric_names(r#"up{job=~"qalqan-detector.*"} == 0"#),
        BTreeSet::from(["up".to_string()])
    );
}

/// (where, expression) of every PromQL expression in the dashboards and rules.
fn expressions() -> Vec<(String, String)> {
    let root = qalqan_testkit::workspace_root();
    let mut out = Vec::new();
    let mut boards: Vec<PathBuf> = std::fs::read_dir(root.join("dashboards/grafana/dashboards"))
        .expect("dashboards dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    boards.sort();
    for path in boards {
        let board: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read dashboard"))
                .expect("dashboard JSON");
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let is_prom = |ds: &Value| ds["type"] == "prometheus";
        for panel in board["panels"].as_array().into_iter().flatten() {
            for t in panel["targets"].as_array().into_iter().flatten() {
                let ds = if t["datasource"].is_object() {
                    &t["datasource"]
                } else {
                    &panel["datasource"]
                };
                if is_prom(ds) {
                    let expr = t["expr"].as_str().expect("prometheus target has expr");
                    out.push((format!("{name} / {}", panel["title"]), expr.to_owned()));
                }
            }
        }
        for var in board["templating"]["list"].as_array().into_iter().flatten() {
            if is_prom(&var["datasource"]) {
                let q = var["query"]
                    .as_str()
                    .or_else(|| var["query"]["query"].as_str())
                    .expect("variable query");
                out.push((format!("{name} / ${}", var["name"]), q.to_owned()));
            }
        }
    }
    let mut rules: Vec<PathBuf> = std::fs::read_dir(root.join("dashboards/prometheus"))
        .expect("rules dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    rules.sort();
    for path in rules {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).expect("read rules"))
                .expect("rules YAML");
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        for group in doc["groups"].as_sequence().into_iter().flatten() {
            for rule in group["rules"].as_sequence().into_iter().flatten() {
                let expr = rule["expr"].as_str().expect("rule expr");
                let what = rule["alert"]
                    .as_str()
                    .or_else(|| rule["record"].as_str())
                    .unwrap_or("?");
                out.push((format!("{name} / {what}"), expr.to_owned()));
            }
        }
    }
    out
}

/// Sample names in a text exposition.
fn scrape(addr: &str) -> BTreeSet<String> {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return BTreeSet::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

fn metrics_listen(config: &Path) -> String {
    let text = std::fs::read_to_string(config).expect("config");
    let re = Regex::new(r#"listen = "(127\.0\.0\.1:\d+)""#).expect("regex");
    re.captures(&text)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_owned())
        .expect("metrics listen in config")
}

struct Collector(Child);

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_promql_expression_uses_exported_metrics() {
    // Every expression, with the names it uses; Prometheus parses each.
    let exprs = expressions();
    assert!(exprs.len() >= 30, "{} expressions", exprs.len());
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (at, expr) in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{at}: no metric in `{expr}`");
        for n in names {
            wanted.entry(n).or_default().push(at.clone());
        }
        qalqan_testkit::prometheus_query(&grafana_free(expr));
    }
    let up = qalqan_testkit::prometheus_query(r#"up{job=~"qalqan-detector.*"}"#);
    assert!(
        up["result"].as_array().is_some_and(|r| !r.is_empty()),
        "the stack's Prometheus has a qalqan-detector job for `up` to select: {up}"
    );

    // The real pipeline on the stack.
    let world = World::new("dashprom", 1, 1, true);
    // A small reorder window, so the missing sequence numbers below count
    // as lost as soon as the collector is two numbers past them.
    let config = world.config(
        "det",
        &["match", "correlate", "archive"],
        "[health]\nreorder_window = 2\n",
    );
    let detector_addr = metrics_listen(&config);
    let mut detector = Detector::start(&config, "det");

    let tcp = service_support::free_port();
    let collector_addr = format!("127.0.0.1:{}", service_support::free_port());
    let state = world.dir.join("collector-state");
    let ccfg = world.dir.join("collector.toml");
    std::fs::write(
        &ccfg,
        format!(
            "[collector]\nname = \"dash-col\"\nagency = \"{agency}\"\nstate_dir = \"{state}\"\nshutdown_timeout = \"5s\"\n\
             [kafka]\nbrokers = \"{brokers}\"\n[metrics]\nlisten = \"{collector_addr}\"\n\
             [heartbeat]\ninterval = \"1s\"\n\
             [sources.tcp]\ntype = \"tcp\"\nlisten = \"127.0.0.1:{tcp}\"\n",
            agency = world.agency,
            state = state.display(),
            brokers = world.brokers,
        ),
    )
    .expect("collector config");
    let log = std::fs::File::create(world.dir.join("collector.log")).expect("log");
    let _collector = Collector(
        Command::new(qalqan_testkit::cargo_bin("qalqan-collector"))
            .arg("--config")
            .arg(&ccfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start qalqan-collector"),
    );

    // Lines through the collector: a sudo attack (single-event alerts and
    // a correlation), a line an hour later, then one from before it (late
    // for the correlation), and one no parser claims.
    // Yesterday: a syslog line has no year, and Kafka refuses message
    // timestamps far in the future.
    let day = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%b %e")
        .to_string();
    let sudo = |t: &str, pid: u32| {
        format!("{day} {t} srv1 sudo[{pid}]: mallory : user NOT in sudoers ; TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=/bin/sh")
    };
    let lines = [
        sudo("10:00:00", 8201),
        sudo("10:00:40", 8202),
        sudo("10:01:20", 8203),
        sudo("11:30:00", 8204),
        sudo("10:02:00", 8205),
        "@@@ ~~~ 0xdeadbeef nothing parses this".to_string(),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = loop {
        match TcpStream::connect(("127.0.0.1", tcp)) {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("collector TCP source: {e}"),
        }
    };
    for l in &lines {
        // One at a time, so the late line really arrives after the others.
        writeln!(conn, "{l}").expect("send line");
        conn.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(conn);

    // Events of another collector with sequence numbers 3 and 4 missing,
    // and a message that is no event (dead letter).
    let mut evs = collector_events(
        &(1..=6)
            .map(|i| format!("<13>{day} 09:00:0{i} srv2 app: ordinary line {i}"))
            .collect::<Vec<_>>(),
        "gap-col",
    );
    evs.retain(|(e, _)| {
        !matches!(
            e.fields.get("observer.sequence").and_then(|v| v.as_i64()),
            Some(3 | 4)
        )
    });
    let mut records: Vec<(Option<&str>, String)> =
        evs.into_iter().map(|(_, json)| (None, json)).collect();
    records.push((None, "this is not a qalqan event".to_string()));
    qalqan_testkit::produce(&world.brokers, &world.events_topic, &records);

    // Scrape until every wanted name is exported (or time runs out).
    let deadline = Instant::now() + Duration::from_secs(90);
    let missing = loop {
        let mut seen = scrape(&detector_addr);
        seen.extend(scrape(&collector_addr));
        let missing: Vec<&String> = wanted
            .keys()
            .filter(|n| !seen.contains(*n) && !PROMETHEUS_OWN.contains(&n.as_str()))
            .collect();
        if missing.is_empty() || Instant::now() >= deadline || !detector.is_running() {
            break missing
                .into_iter()
                .map(|n| format!("{n} (used by {})", wanted[n].join(", ")))
                .collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        missing.is_empty(),
        "metrics not exported by the running services:\n  {}\ndetector log:\n{}",
        missing.join("\n  "),
        detector.log_text()
    );
    // Every name the expressions use is a qalqan metric or Prometheus's own.
    for n in wanted.keys() {
        assert!(
            n.starts_with("qalqan_collector_")
                || n.starts_with("qalqan_detector_")
                || PROMETHEUS_OWN.contains(&n.as_str()),
            "{n}"
        );
    }
    detector.stop();
}
