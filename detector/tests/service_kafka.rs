//! The detector service against the real local Kafka and ClickHouse
//! (started by `deploy/local/stack` through qalqan-testkit).
//!
//! * end to end: collector → Kafka → detector → alerts in Kafka and rows
//!   in ClickHouse, single-event and correlation alerts, with the ids an
//!   uninterrupted in-process run of the same rules gives;
//! * spoofing: an event whose body claims another agency is attributed to
//!   its topic's agency;
//! * bad input: undecodable messages reach the dead-letter topic with a
//!   reason, and the service keeps working (raw lines still alert);
//! * scale-out: three instances in one group, one SIGKILLed mid-stream,
//!   give exactly the ids of one uninterrupted instance;
//! * crash: SIGKILL and restart lose no alert, and ClickHouse holds each
//!   alert once after dedup by id;
//! * reset: stage 2 offsets stored without checkpoints (Kafka's reset
//!   tool) still give whole windows after a restart;
//! * fencing: an instance restarted under its `detector.instance` name
//!   aborts the transaction its killed predecessor left open; and while
//!   such a transaction is open, stage 2 waits for the signals behind it
//!   instead of counting them late;
//! * abort: a batch aborted with outputs outstanding (a rebalance mid-batch)
//!   returns at once and shows none of them;
//! * reload: a broken rule set is refused and the running one stays; rules
//!   reloaded while a backlog streams lose and repeat no event.

mod service_support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use service_support::{
    collector_events, describe_alerts, ids, reference_alert_ids, reference_alerts, Detector, World,
};

/// Switches a world's config to evaluating in place (`match_workers = 0`)
/// instead of on a worker thread (the default on a 2-core machine).
fn in_place(config: &std::path::Path) {
    let text = std::fs::read_to_string(config).expect("config");
    std::fs::write(
        config,
        text.replacen("match_workers = 1\n", "match_workers = 0\n", 1),
    )
    .expect("config");
}

fn kinds(alerts: &[serde_json::Value]) -> BTreeSet<String> {
    alerts
        .iter()
        .filter_map(|a| a["rule"]["kind"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn collector_events_become_alerts_in_kafka_and_clickhouse() {
    // One event partition: the scenario is 15 minutes of history sent in a
    // burst, so only a single ordered partition keeps event time within the
    // default 2 s lateness (the live tests below cover many partitions).
    let world = World::new("e2e", 1, 6, true);
    let config = world.config("all", &["match", "correlate", "archive"], "");
    let mut detector = Detector::start(&config, "all");

    // The collector reads the scenario on stdin and exits once Kafka has
    // confirmed every line.
    let start = qalqan_core::event::now_micros() - chrono::Duration::minutes(15);
    let lines: Vec<String> = qalqan_detector::demo::scenario(start, 7)
        .into_iter()
        .map(|l| l.line)
        .collect();
    let state = world.dir.join("collector-state");
    let collector_config = world.dir.join("collector.toml");
    std::fs::write(
        &collector_config,
        format!(
            "[collector]\nname = \"e2e-col\"\nagency = \"{}\"\nstate_dir = \"{}\"\n[kafka]\nbrokers = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:{}\"\n",
            world.agency,
            state.display(),
            world.brokers,
            service_support::free_port()
        ),
    )
    .expect("collector config");
    let mut collector = Command::new(qalqan_testkit::cargo_bin("qalqan-collector"))
        .args(["--config"])
        .arg(&collector_config)
        .arg("--stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the collector");
    {
        let mut stdin = collector.stdin.take().expect("stdin");
        stdin
            .write_all((lines.join("\n") + "\n").as_bytes())
            .expect("feed the collector");
    }
    let out = collector.wait_with_output().expect("collector exits");
    assert!(
        out.status.success(),
        "collector failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let parser = qalqan_core::parse::Parser::default();
    let now = qalqan_core::event::now_micros();
    let events: Vec<_> = lines
        .iter()
        .map(|l| parser.parse(l.as_bytes(), now).event)
        .collect();
    let expected = reference_alert_ids(&world.agency, &events);
    assert!(
        expected.len() >= 10,
        "the scenario should raise many alerts: {expected:?}"
    );

    let alerts = world.alerts_until(expected.len(), 120);
    let got = ids(&alerts);
    let extra: Vec<String> = alerts
        .iter()
        .filter(|a| !expected.contains(a["id"].as_str().unwrap_or_default()))
        .map(|a| {
            format!(
                "{} {} {} {}",
                a["rule"]["title"], a["window_start"], a["window_end"], a["group"]
            )
        })
        .collect();
    assert_eq!(
        got,
        expected,
        "alert ids differ from the reference run\nmissing: {:?}\nextra: {extra:#?}",
        expected.difference(&got).collect::<Vec<_>>(),
    );
    let k = kinds(&alerts);
    assert!(
        k.contains("detection") && k.iter().any(|k| k != "detection" && k != "health"),
        "both single-event and correlation alerts: {k:?}"
    );
    assert!(alerts.iter().all(|a| a["agency"] == world.agency.as_str()));

    // Every line is archived once (the collector's heartbeats too), every
    // alert once after dedup by id.
    let db = world.database.as_deref().expect("database");
    let sql = format!(
        "SELECT count() FROM (SELECT event_id FROM {db}.events WHERE original != '' AND event_dataset != 'qalqan.heartbeat' GROUP BY event_id)"
    );
    let n = world.clickhouse_until(&sql, &lines.len().to_string(), 60);
    assert_eq!(n, lines.len().to_string(), "events archived");
    let sql = format!("SELECT count(DISTINCT id) FROM {db}.alerts");
    let n = world.clickhouse_until(&sql, &expected.len().to_string(), 60);
    assert_eq!(n, expected.len().to_string(), "alerts archived");
    let wrong = qalqan_testkit::clickhouse_query(&format!(
        "SELECT count() FROM {db}.events WHERE agency != '{}'",
        world.agency
    ));
    assert_eq!(wrong.trim(), "0");

    // Spoofing: the body claims another agency; the topic decides.
    let spoof_line = "198.51.100.77 - - [27/Nov/2026:05:00:01 +0000] \"GET /login?id=1%27%20OR%20%271%27=%271 HTTP/1.1\" 200 10 \"-\" \"sqlmap/1.7\"";
    let mut spoof = qalqan_core::parse::Parser::default()
        .parse(spoof_line.as_bytes(), qalqan_core::event::now_micros())
        .event;
    spoof.fields.insert("organization.id", "moj");
    spoof.fields.insert("agency", "moj");
    let spoof_json = spoof.to_json_string();
    // Bad input: broken JSON, an empty message, bytes that are not UTF-8.
    let bad: Vec<(Option<&str>, Vec<u8>)> = vec![
        (Some("h1"), b"{\"@timestamp\": broken".to_vec()),
        (Some("h2"), Vec::new()),
        (Some("h3"), vec![0xff, 0xfe, 0x00, 0x81]),
    ];
    qalqan_testkit::produce(&world.brokers, &world.events_topic, &bad);
    qalqan_testkit::produce(
        &world.brokers,
        &world.events_topic,
        &[(Some("portal"), spoof_json)],
    );
    // A line stamped two hours ahead (a fast clock): its signal must not
    // be refused by the broker nor stop the service.
    let ahead = (Utc::now() + chrono::Duration::hours(2)).format("%b %e %H:%M:%S");
    let future_line = format!("<85>{ahead} egov-app1 sudo:  mallory : user NOT in sudoers ; TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/bin/bash");
    qalqan_testkit::produce(
        &world.brokers,
        &world.raw_topic,
        &[(Some("egov-app1"), future_line)],
    );
    // A third-party raw line, parsed by the detector.
    let raw_line = "203.0.113.200 - - [27/Nov/2026:05:00:02 +0000] \"GET /news.php?id=1%20UNION%20SELECT%20password%20FROM%20users HTTP/1.1\" 200 10 \"-\" \"Mozilla/5.0\"";
    qalqan_testkit::produce(
        &world.brokers,
        &world.raw_topic,
        &[(Some("portal"), raw_line)],
    );

    let dead = qalqan_testkit::consume_all(
        &world.brokers,
        &world.deadletter,
        3,
        Duration::from_secs(60),
    );
    assert_eq!(dead.len(), 3, "dead letters: {dead:?}");
    for d in &dead {
        let reason =
            String::from_utf8_lossy(d.header("qalqan.reason").expect("reason header")).into_owned();
        assert!(!reason.is_empty());
        assert_eq!(
            d.header("qalqan.source.topic"),
            Some(world.events_topic.as_bytes())
        );
        assert!(d.header("qalqan.source.offset").is_some());
    }
    let reasons: Vec<String> = dead
        .iter()
        .map(|d| {
            String::from_utf8_lossy(d.header("qalqan.reason").unwrap_or_default()).into_owned()
        })
        .collect();
    assert!(reasons.iter().any(|r| r.contains("empty")), "{reasons:?}");
    assert!(
        reasons
            .iter()
            .filter(|r| r.contains("not a qalqan event"))
            .count()
            == 2,
        "{reasons:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let (spoofed, raw) = loop {
        let all = world.alerts_until(0, 0);
        let by_ip = |ip: &str| {
            all.iter()
                .filter(|a| {
                    a["entities"]["source_ips"]
                        .as_array()
                        .is_some_and(|v| v.iter().any(|x| x == ip))
                })
                .cloned()
                .collect::<Vec<_>>()
        };
        let (s, r) = (by_ip("198.51.100.77"), by_ip("203.0.113.200"));
        if (!s.is_empty() && !r.is_empty()) || Instant::now() > deadline {
            break (s, r);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        !spoofed.is_empty(),
        "the spoofed event still alerts: {}",
        detector.log_text()
    );
    assert!(
        spoofed.iter().all(|a| a["agency"] == world.agency.as_str()),
        "{spoofed:?}"
    );
    assert!(!raw.is_empty(), "a raw line alerts after the bad input");
    assert!(detector.is_running(), "bad input must not stop the service");

    // What the service reports about all this.
    let metrics = service_support::scrape(&config);
    let agency_label = format!("agency=\"{}\"", world.agency);
    let events_in =
        service_support::sample(&metrics, "qalqan_detector_events_total", &[&agency_label]);
    // The scenario, the spoofed event and the raw line, plus any collector
    // heartbeats (dead letters are not events).
    assert!(
        events_in.unwrap_or(0.0) >= (lines.len() + 2) as f64,
        "events per agency: {events_in:?}"
    );
    assert_eq!(
        service_support::sample(
            &metrics,
            "qalqan_detector_deadletters_total",
            &["reason=\"undecodable_event\""]
        ),
        Some(2.0)
    );
    assert_eq!(
        service_support::sample(
            &metrics,
            "qalqan_detector_deadletters_total",
            &["reason=\"empty\""]
        ),
        Some(1.0)
    );
    assert!(
        service_support::sample(&metrics, "qalqan_detector_alerts_total", &[&agency_label])
            .unwrap_or(0.0)
            >= expected.len() as f64
    );
    assert!(
        service_support::sample(
            &metrics,
            "qalqan_detector_detection_latency_seconds_count",
            &[]
        )
        .unwrap_or(0.0)
            > 0.0
    );
    assert!(
        service_support::sample(&metrics, "qalqan_detector_raw_parsed_total", &[]).unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        service_support::sample(
            &metrics,
            "qalqan_detector_clickhouse_rows_total",
            &["table=\"events\""]
        )
        .unwrap_or(0.0)
            >= lines.len() as f64
    );
    // librdkafka reports lag every 5 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !service_support::scrape(&config).contains("qalqan_detector_consumer_lag_messages{") {
        assert!(
            Instant::now() < deadline,
            "consumer lag per partition is exported"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        detector.stop(),
        "clean stop on SIGTERM: {}",
        detector.log_text()
    );
}

/// A live workload: `seconds` of SSH brute force and spraying, web attacks
/// and background traffic, each line stamped with the wall clock when it is
/// produced (as a collector would), produced to the world's event topic
/// keyed by host. Calls `at_half` half-way.
fn live_workload(
    world: &World,
    seconds: u64,
    mut at_half: impl FnMut(),
) -> Vec<qalqan_core::Event> {
    use rdkafka::producer::{BaseRecord, Producer};
    let producer = service_support::event_producer(world);
    let mut all = Vec::new();
    let mut seq = 0usize;
    let started = Instant::now();
    let mut tick = 0u64;
    let mut halfway_done = false;
    while started.elapsed() < Duration::from_secs(seconds) {
        let now: DateTime<Utc> = Utc::now();
        let ts = now.format("%b %e %H:%M:%S").to_string();
        let web_ts = now.format("%d/%b/%Y:%H:%M:%S +0000").to_string();
        let mut lines = Vec::new();
        for a in 0..8u64 {
            let host = format!("srv-{}", a % 6);
            let user = if a < 4 {
                "root".to_string()
            } else {
                format!("user{}", tick % 12)
            };
            lines.push((host.clone(), format!(
                "{ts} {host} sshd[{}]: Failed password for invalid user {user} from 203.0.113.{} port {} ssh2",
                1000 + a, 10 + a, 40000 + tick
            )));
        }
        if tick.is_multiple_of(5) {
            let ip = 20 + (tick / 5) % 10;
            lines.push(("portal".into(), format!(
                "198.51.100.{ip} - - [{web_ts}] \"GET /news.php?id=1%20UNION%20SELECT%20password%20FROM%20users HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0\""
            )));
        }
        for b in 0..20u64 {
            lines.push(("portal".into(), format!(
                "10.20.{}.{} - - [{web_ts}] \"GET /services/{b} HTTP/1.1\" 200 2048 \"-\" \"Mozilla/5.0\"",
                b % 4, (tick + b) % 250
            )));
        }
        let texts: Vec<String> = lines.iter().map(|(_, l)| l.clone()).collect();
        let evs = collector_events(&texts, "live-col");
        let mut records = Vec::new();
        for ((host, _), (mut ev, _)) in lines.iter().zip(evs) {
            seq += 1;
            ev.fields.insert(
                "observer.sequence",
                qalqan_core::event::Value::from(seq as u64),
            );
            records.push((Some(host.clone()), ev.to_json_string()));
            all.push(ev);
        }
        for (key, value) in &records {
            let record = BaseRecord::to(&world.events_topic)
                .key(key.as_deref().unwrap_or_default())
                .payload(value.as_str());
            service_support::send_waiting(&producer, record);
        }
        tick += 1;
        if !halfway_done && started.elapsed() >= Duration::from_secs(seconds / 2) {
            halfway_done = true;
            at_half();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    producer
        .flush(Duration::from_secs(120))
        .expect("every event confirmed by Kafka");
    all
}

/// Asserts that the alerts in `world` end up exactly those (by id) of an
/// uninterrupted in-process run of `events`, which must raise at least 8:
/// waits up to `wait_secs` for them, then `settle` for anything extra. A
/// failure describes the missing and the extra alerts, then `logs()`.
/// Returns the alerts read.
fn assert_alerts_of_an_uninterrupted_run(
    world: &World,
    events: &[qalqan_core::Event],
    wait_secs: u64,
    settle: Duration,
    logs: impl Fn() -> String,
) -> Vec<serde_json::Value> {
    let reference = reference_alerts(&world.agency, events);
    let expected: BTreeSet<String> = reference.iter().map(|a| a.id.clone()).collect();
    assert!(
        expected.len() >= 8,
        "the workload should raise alerts: {expected:?}"
    );
    let _ = world.alerts_until(expected.len(), wait_secs);
    std::thread::sleep(settle); // anything extra would show now
    let alerts = world.alerts_until(0, 0);
    let got = ids(&alerts);
    assert_eq!(
        got,
        expected,
        "missing:\n{}\nextra:\n{}\n{}",
        describe_alerts(
            expected.difference(&got),
            reference
                .iter()
                .filter_map(|a| serde_json::to_value(a).ok())
        ),
        describe_alerts(got.difference(&expected), alerts.iter().cloned()),
        logs()
    );
    alerts
}

/// Lateness that covers a rebalance (session timeout 10 s) plus catch-up.
const LIVE_CORRELATION: &str = "[correlation]\nallowed_lateness = \"30s\"\n";

#[test]
fn three_instances_give_the_ids_of_one_even_when_one_is_killed() {
    let world = World::new("scale", 6, 6, false);
    let mut instances: Vec<Detector> = (0..3)
        .map(|i| {
            let config = world.config(
                &format!("inst{i}"),
                &["match", "correlate"],
                LIVE_CORRELATION,
            );
            // Instances 0 and 2 evaluate in place; 1 on a worker thread
            // (the default on two cores): both paths see the SIGKILL and
            // the rebalance.
            if i != 1 {
                in_place(&config);
            }
            Detector::start(&config, &format!("inst{i}"))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(8)); // let the group form
    for (i, d) in instances.iter_mut().enumerate() {
        assert!(
            d.is_running(),
            "instance {i} did not start:\n{}",
            d.log_text()
        );
    }
    let events = live_workload(&world, 24, || instances[1].kill());
    // Alerts become final `allowed_lateness` of idle time after the end.
    let alerts =
        assert_alerts_of_an_uninterrupted_run(&world, &events, 150, Duration::from_secs(5), || {
            instances
                .iter()
                .map(|d| d.log_text())
                .collect::<Vec<_>>()
                .join("\n----\n")
        });
    assert!(kinds(&alerts)
        .iter()
        .any(|k| k.starts_with("event_count") || k.starts_with("value_")));
    for i in [0, 2] {
        assert!(
            instances[i].is_running(),
            "instance {i} died:\n{}",
            instances[i].log_text()
        );
    }
}

#[test]
fn a_killed_and_restarted_detector_loses_no_alert_and_clickhouse_holds_each_once() {
    let world = World::new("crash", 3, 3, true);
    let config = world.config("one", &["match", "correlate", "archive"], LIVE_CORRELATION);
    in_place(&config);
    let mut first = Some(Detector::start(&config, "before"));
    std::thread::sleep(Duration::from_secs(5));
    let mut restarted: Option<Detector> = None;
    let events = live_workload(&world, 20, || {
        if let Some(mut d) = first.take() {
            d.kill();
            restarted = Some(Detector::start(&config, "after"));
        }
    });
    let mut restarted = restarted.expect("restarted half-way");
    let expected = reference_alert_ids(&world.agency, &events);
    assert!(
        expected.len() >= 8,
        "the workload should raise alerts: {expected:?}"
    );
    let alerts = world.alerts_until(expected.len(), 150);
    let got = ids(&alerts);
    assert_eq!(
        got,
        expected,
        "missing: {:?}\nextra: {:?}\n{}",
        expected.difference(&got).collect::<Vec<_>>(),
        got.difference(&expected).collect::<Vec<_>>(),
        restarted.log_text()
    );
    let db = world.database.as_deref().expect("database");
    let distinct = world.clickhouse_until(
        &format!("SELECT count(DISTINCT id) FROM {db}.alerts"),
        &expected.len().to_string(),
        60,
    );
    assert_eq!(distinct, expected.len().to_string());
    // After dedup by id (what FINAL does on the ReplacingMergeTree) there
    // is exactly one row per alert.
    let _ = qalqan_testkit::clickhouse_try_query(&format!("OPTIMIZE TABLE {db}.alerts FINAL"));
    let rows = qalqan_testkit::clickhouse_query(&format!("SELECT count() FROM {db}.alerts FINAL"));
    assert_eq!(rows.trim(), expected.len().to_string());
    let events_rows = world.clickhouse_until(
        &format!("SELECT count(DISTINCT event_id) FROM {db}.events"),
        &events.len().to_string(),
        60,
    );
    assert_eq!(
        events_rows,
        events.len().to_string(),
        "every event archived"
    );
    assert!(restarted.stop());
}

/// Stores the signals topic's end offsets as the correlate group's commits,
/// without checkpoints: what Kafka's own tools do
/// (`kafka-consumer-groups --reset-offsets`). Waits until the group is
/// empty (a commit from outside the group is refused until then). Returns
/// the offsets stored.
fn commit_without_checkpoints(world: &World) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let group = format!("t.{}.correlate", world.agency);
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &world.brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let timeout = Duration::from_secs(10);
    let md = consumer
        .fetch_metadata(Some(&world.signals), timeout)
        .expect("metadata");
    let partitions = md.topics()[0].partitions().len() as i32;
    let mut ends = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(&world.signals, p, timeout)
            .expect("watermarks");
        ends.push(high);
        tpl.add_partition_offset(&world.signals, p, Offset::Offset(high))
            .expect("offset");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("commit outside the group refused for now: {e}");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("cannot commit for {group}: {e}"),
        }
    }
    let stored = consumer
        .committed_offsets(tpl, timeout)
        .expect("committed offsets");
    for el in stored.elements() {
        assert_eq!(el.metadata(), "", "the commit carries no checkpoint");
    }
    ends
}

/// Sleeps until the wall clock's second within its minute is in
/// `from..from + 5`.
fn wait_for_second(from: u32) {
    use chrono::Timelike;
    while !(from..from + 5).contains(&Utc::now().second()) {
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn offsets_reset_without_checkpoints_still_rebuild_the_windows() {
    // The detector is stopped early in the workload, its stage 2 offsets are
    // moved to the end of the signals with no checkpoint (as a reset with
    // Kafka's tools leaves them), and it is started again after the next
    // half-minute boundary. Windows open before the stop must still be
    // whole: the alerts are exactly those of an uninterrupted run (none was
    // final at the stop: lateness is 30 s). Windows start on hop boundaries
    // (30 s for SSH brute force), so a restart from empty windows would
    // give alerts with later windows, hence other ids.
    let world = World::new("reset", 3, 3, false);
    let config = world.config("one", &["match", "correlate"], LIVE_CORRELATION);
    let mut first = Some(Detector::start(&config, "before"));
    std::thread::sleep(Duration::from_secs(5));
    wait_for_second(3);
    let mut restarted: Option<Detector> = None;
    let mut reset_to = Vec::new();
    let events = live_workload(&world, 40, || {
        if let Some(mut d) = first.take() {
            assert!(d.stop(), "clean stop:\n{}", d.log_text());
            reset_to = commit_without_checkpoints(&world);
            wait_for_second(32);
            restarted = Some(Detector::start(&config, "after"));
        }
    });
    let restarted = restarted.expect("restarted half-way");
    assert!(
        reset_to.iter().any(|&o| o > 0),
        "signals were committed past the start: {reset_to:?}"
    );
    assert_alerts_of_an_uninterrupted_run(&world, &events, 150, Duration::from_secs(3), || {
        restarted.log_text()
    });
    let log = restarted.log_text();
    assert!(
        log.contains("committed offset without a checkpoint"),
        "the restart noticed the missing checkpoints:\n{log}"
    );
}

/// How far partition 0 of the signals topic's last stable offset (what a
/// `read_committed` reader such as stage 2 may read up to) is behind its
/// high watermark: the messages held back by open transactions.
fn held_back_by_transactions(world: &World) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let watermark = |isolation: &str| {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &world.brokers)
            .set("isolation.level", isolation)
            .create()
            .expect("consumer");
        consumer
            .fetch_watermarks(&world.signals, 0, Duration::from_secs(10))
            .expect("watermarks")
            .1
    };
    watermark("read_uncommitted") - watermark("read_committed")
}

/// What a stage 1 instance killed in the middle of a batch leaves: a
/// transaction under `transactional_id`, begun, written to (one record on
/// every partition of the signals topic) and never ended; Kafka aborts it
/// `timeout` after it began (checked every 10 s). Keep the producer until
/// the test ends.
fn open_transaction(
    world: &World,
    transactional_id: &str,
    timeout: Duration,
) -> rdkafka::producer::BaseProducer {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &world.brokers)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", timeout.as_millis().to_string())
        .create()
        .expect("producer");
    // A broker that has just started may still be loading its transaction
    // coordinator: retry as a client would.
    let wait = Duration::from_secs(30);
    let deadline = Instant::now() + wait;
    while let Err(e) = producer.init_transactions(wait) {
        assert!(Instant::now() < deadline, "init transactions: {e}");
        eprintln!("init transactions: {e}; retrying");
        std::thread::sleep(Duration::from_millis(500));
    }
    producer.begin_transaction().expect("begin");
    for partition in 0..world.signal_partitions {
        producer
            .send(
                BaseRecord::<(), str>::to(&world.signals)
                    .partition(partition)
                    .payload("left open"),
            )
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(wait).expect("flush");
    let held = held_back_by_transactions(world);
    assert!(held > 0, "the open transaction holds back readers ({held})");
    producer
}

#[test]
fn a_restarted_instance_aborts_the_transaction_its_crashed_predecessor_left_open() {
    let world = World::new("fence", 3, 3, false);
    // Its config names the instance "stable" (`detector.instance`).
    let config = world.config("stable", &["match"], "");
    // What a detector named "stable" killed in the middle of a batch leaves
    // behind: a transaction under its transactional id, begun, written to
    // and never ended. Kafka would abort it only after its timeout (5
    // minutes here, 60 s for the detector's own).
    let _zombie = open_transaction(
        &world,
        &format!("t.{}.match-stable", world.agency),
        Duration::from_secs(300),
    );
    let held = held_back_by_transactions(&world);
    assert!(held > 0, "the open transaction holds back readers ({held})");

    let mut detector = Detector::start(&config, "stable");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut held = held_back_by_transactions(&world);
    while held > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        held = held_back_by_transactions(&world);
    }
    assert_eq!(
        held,
        0,
        "the restarted instance should abort the open transaction as it starts:\n{}",
        detector.log_text()
    );
    assert!(detector.is_running(), "{}", detector.log_text());
    assert!(detector.stop(), "clean stop:\n{}", detector.log_text());
}

#[test]
fn signals_behind_an_open_transaction_are_waited_for_not_counted_late() {
    // Half-way through a live workload a transaction is left open on every
    // signals partition (a stage 1 instance killed mid-batch, never
    // restarted); Kafka aborts it 15-25 s later. Stage 2 reads the signals
    // `read_committed`: until then it sees none of those written after it.
    // It must wait for them, not close its windows on the wall clock and
    // count them late once they can be read.
    let world = World::new("held", 3, 3, false);
    let config = world.config(
        "one",
        &["match", "correlate"],
        "[correlation]\nallowed_lateness = \"5s\"\n",
    );
    let mut detector = Detector::start(&config, "one");
    std::thread::sleep(Duration::from_secs(5));
    let mut zombie = None;
    let events = live_workload(&world, 24, || {
        zombie = Some(open_transaction(
            &world,
            &format!("t.{}.match-gone", world.agency),
            Duration::from_secs(15),
        ));
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while held_back_by_transactions(&world) > 0 {
        assert!(
            Instant::now() < deadline,
            "Kafka should have aborted the transaction"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let alerts =
        assert_alerts_of_an_uninterrupted_run(&world, &events, 60, Duration::from_secs(3), || {
            detector.log_text()
        });
    assert!(alerts.len() >= 8, "the workload should raise alerts");
    let log = detector.log_text();
    assert!(
        log.contains("signals wait behind an open Kafka transaction"),
        "stage 2 should have seen the open transaction:\n{log}"
    );
    assert!(
        !log.contains("late signals"),
        "no signal may be late:\n{log}"
    );
    assert!(detector.stop(), "clean stop:\n{log}");
    drop(zombie);
}

/// A single-event rule on web access lines whose user agent contains `ua`.
fn user_agent_rule(title: &str, ua: &str) -> String {
    format!(
        "title: {title}\nid: 6a1f7a52-1111-4b7a-9d0e-{:012}\nauthor: test\nlevel: high\nlogsource: {{category: webserver}}\ndetection:\n  sel:\n    user_agent.original|contains: {ua}\n  condition: sel\n",
        ua.len()
    )
}

/// A stage 1 config for `world` reading its rules from `world.dir/rules`
/// (made here, holding the "Odd agent" [`user_agent_rule`]); `watch` sets
/// the rule directory's watch (every 500 ms).
fn private_rules_config(world: &World, name: &str, watch: bool) -> std::path::PathBuf {
    let rules = world.dir.join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(
        rules.join("ua.yml"),
        user_agent_rule("Odd agent", "oddagent"),
    )
    .expect("rule");
    let config = world.config(name, &["match"], "");
    let text = std::fs::read_to_string(&config).expect("config");
    let root = qalqan_testkit::workspace_root();
    let mut text = text.replace(
        &format!("paths = [{:?}]", root.join("rules").display().to_string()),
        &format!("paths = [{:?}]", rules.display().to_string()),
    );
    if watch {
        text = text.replace("watch = false", "watch = true\nwatch_interval = \"500ms\"");
    }
    std::fs::write(&config, text).expect("config");
    config
}

/// A collector event for a web access line from `ip` with user agent `ua`,
/// `second` seconds after 2026-11-27 05:00:00 UTC, keyed by its host.
fn web_event(ip: &str, ua: &str, second: i64) -> (Option<String>, String) {
    let at = DateTime::from_timestamp(1_795_755_600 + second, 0).unwrap_or_default();
    let line = format!(
        "{ip} - - [{}] \"GET / HTTP/1.1\" 200 1 \"-\" \"{ua}\"",
        at.format("%d/%b/%Y:%H:%M:%S +0000")
    );
    let ev = qalqan_core::parse::Parser::default()
        .parse(line.as_bytes(), qalqan_core::event::now_micros())
        .event;
    (Some("h".to_string()), ev.to_json_string())
}

#[test]
fn a_broken_rule_set_is_refused_on_reload_and_the_running_one_stays() {
    let world = World::new("reload", 1, 1, false);
    let rules = world.dir.join("rules");
    let config = private_rules_config(&world, "reload", true);
    let rule = user_agent_rule;
    let mut detector = Detector::start(&config, "reload");
    let web = |ip: &str, ua: &str| web_event(ip, ua, 1);
    let wait_for = |ip: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let all = world.alerts_until(0, 0);
            if all.iter().any(|a| a["entities"]["source_ips"][0] == ip) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    qalqan_testkit::produce(
        &world.brokers,
        &world.events_topic,
        &[web("192.0.2.1", "oddagent/1")],
    );
    assert!(wait_for("192.0.2.1"), "{}", detector.log_text());

    // A broken file: the reload is refused, the old rules keep working.
    std::fs::write(rules.join("broken.yml"), "title: broken\ndetection:\n  sel:\n    a|nosuchmodifier: x\n  condition: sel\nlogsource: {category: webserver}\n").expect("broken");
    std::thread::sleep(Duration::from_secs(3));
    qalqan_testkit::produce(
        &world.brokers,
        &world.events_topic,
        &[web("192.0.2.2", "oddagent/2")],
    );
    assert!(wait_for("192.0.2.2"), "{}", detector.log_text());
    assert!(
        detector.log_text().contains("rule reload failed"),
        "{}",
        detector.log_text()
    );

    // Fixed, plus a new rule: picked up without a restart.
    std::fs::remove_file(rules.join("broken.yml")).expect("rm");
    std::fs::write(rules.join("new.yml"), rule("New agent", "newagent-x")).expect("new rule");
    std::thread::sleep(Duration::from_secs(3));
    qalqan_testkit::produce(
        &world.brokers,
        &world.events_topic,
        &[web("192.0.2.3", "newagent-x/1")],
    );
    assert!(wait_for("192.0.2.3"), "{}", detector.log_text());
    assert!(detector.stop());
}

/// Rules reloaded while stage 1 works through a stream: events evaluated
/// with the old rules and not yet released (held for event-time alignment)
/// are dropped and read again with the new ones. Every matching event must
/// still alert exactly once.
#[test]
fn rules_reloaded_while_a_backlog_streams_lose_and_repeat_no_event() {
    let world = World::new("reloadflow", 3, 1, false);
    let config = private_rules_config(&world, "reloadflow", false);
    // A backlog of 120,000 events, ten per second of event time over three
    // partitions: Kafka hands stage 1 each partition's events in large
    // runs, so many wait for the others (event-time alignment) when a
    // reload comes. Every 20th matches, each from its own address: one
    // alert each (suppression is per address).
    const EVENTS: usize = 120_000;
    let producer = service_support::event_producer(&world);
    let mut expected = BTreeSet::new();
    for i in 0..EVENTS {
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        let ua = if i % 20 == 7 {
            expected.insert(ip.clone());
            format!("oddagent/{i}")
        } else {
            "Mozilla/5.0".to_string()
        };
        let (key, json) = web_event(&ip, &ua, (i / 10) as i64);
        let key = key.unwrap_or_default();
        let record = rdkafka::producer::BaseRecord::to(&world.events_topic)
            .key(key.as_str())
            .payload(json.as_str())
            .partition((i % 3) as i32);
        service_support::send_waiting(&producer, record);
    }
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(60)).expect("flush");

    let mut detector = Detector::start(&config, "reloadflow");
    // Reload again and again while the backlog is worked through.
    let reloading = Instant::now();
    while reloading.elapsed() < Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(250));
        detector.signal("HUP");
    }
    let alerts = world.alerts_until(expected.len(), 240);
    let log = detector.log_text();
    let switched = log
        .matches("stage 1 switched to the reloaded rule set")
        .count();
    assert!(switched >= 1, "no reload reached stage 1\n{log}");
    let got: BTreeSet<String> = alerts
        .iter()
        .filter_map(|a| a["entities"]["source_ips"][0].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<_> = expected.difference(&got).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} of {} events lost their alert after {switched} reloads, e.g. {missing:?}",
        expected.difference(&got).count(),
        expected.len()
    );
    assert_eq!(got.len(), expected.len(), "alerts for events never sent");
    assert_eq!(
        alerts.len(),
        ids(&alerts).len(),
        "an alert was written twice"
    );
    assert_eq!(ids(&alerts).len(), expected.len());
    assert!(detector.stop());
}

/// A rebalance in the middle of a batch aborts its transaction with
/// outputs still waiting for their delivery reports. The abort must come
/// back at once: it used to wait its whole 30 s timeout for reports that
/// nothing served, holding stage 1 and its consumer's new partitions (the
/// scale-out test then saw stage 2 count signals late). None of the
/// aborted outputs may become visible.
#[test]
fn aborting_a_batch_with_outputs_outstanding_returns_at_once_and_shows_none() {
    use qalqan_core::kafka::KafkaSettings;
    use qalqan_detector::service::kafka::Outputs;

    let brokers = qalqan_testkit::kafka_brokers();
    let topic = qalqan_testkit::unique("t.abort");
    qalqan_testkit::create_topic(&topic, 1);
    let outputs = Outputs::transactional(
        &KafkaSettings::plaintext(&brokers),
        "abort-test",
        &qalqan_testkit::unique("abort-txn"),
    )
    .expect("a transactional producer");
    outputs.begin_transaction().expect("a transaction begins");
    for i in 0..500 {
        outputs.send(&topic, b"k", format!("aborted {i}").as_bytes(), None, None);
    }
    let started = Instant::now();
    assert!(outputs.abort_transaction(), "the abort failed");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the abort took {took:?} (its timeout is 30 s)"
    );
    qalqan_testkit::produce(&brokers, &topic, &[(Some("k"), "after")]);
    let seen = qalqan_testkit::consume_all(&brokers, &topic, 1, Duration::from_secs(30));
    let payloads: Vec<String> = seen
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(payloads, ["after"], "aborted outputs became visible");
}
