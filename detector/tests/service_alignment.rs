//! Catching up on a backlog against the real local Kafka: stage 1 releases
//! an agency's events in event-time order across its partitions, so the
//! default two seconds of allowed lateness hold and no correlation signal
//! is late, and the alerts are those of one in-order run. The same backlog
//! with the alignment switched off shows what it prevents.
//!
//! The backlog: five attacker addresses failing SSH logins for about an
//! hour of event time on two servers whose logs sit in different
//! partitions, a busy one (an event every 2 s) and a quiet one (every
//! 20 s), then a successful login on the quiet one.

mod service_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use qalqan_core::event::Value;
use qalqan_core::Event;
use rdkafka::producer::{BaseRecord, Producer};
use service_support::{
    event_producer, ids, reference_alert_ids, sample, scrape, send_waiting, Detector, World,
};

/// (partition, event) of the backlog, in production order per partition.
fn backlog() -> Vec<(i32, Event)> {
    let parser = qalqan_core::parse::Parser::default();
    let t0: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap();
    let mut out = Vec::new();
    let mut line = |partition: i32, host: &str, secs: i64, text: &str, seq: u64| {
        let mut ev = parser
            .parse(
                format!("Nov 20 09:00:00 {host} sshd[4242]: {text}").as_bytes(),
                qalqan_core::event::now_micros(),
            )
            .event;
        ev.timestamp = t0 + chrono::Duration::seconds(secs);
        ev.fields.insert("observer.name", format!("col-{host}"));
        ev.fields.insert("observer.type", "collector");
        ev.fields.insert("observer.sequence", Value::from(seq));
        out.push((partition, ev));
    };
    // Five attacker addresses, taking turns.
    let failed = |i: i64| {
        format!(
            "Failed password for invalid user admin from 203.0.113.{} port 50522 ssh2",
            70 + i % 5
        )
    };
    for i in 0..1800 {
        line(0, "portal-web", i * 2, &failed(i), i as u64 + 1);
    }
    for i in 0..180 {
        line(1, "registry-db", i * 20, &failed(i), i as u64 + 1);
    }
    line(
        1,
        "registry-db",
        3601,
        "Accepted password for dbadmin from 203.0.113.70 port 50600 ssh2",
        181,
    );
    out
}

fn produce(world: &World, events: &[(i32, Event)]) {
    let producer = event_producer(world);
    for (partition, ev) in events {
        let json = ev.to_json_string();
        let host = ev.get_str("host.name").unwrap_or_default().to_owned();
        let record = BaseRecord::to(&world.events_topic)
            .partition(*partition)
            .key(host.as_str())
            .payload(json.as_str());
        send_waiting(&producer, record);
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("every event confirmed by Kafka");
}

/// Runs one detector (both stages, default lateness) over the backlog in
/// a world of its own; returns the world's agency, the alert ids and the
/// late-signal count once the alerts are final (idle inputs settle
/// `allowed_lateness` after the end).
fn run(tag: &str, align: bool) -> (String, BTreeSet<String>, f64, String) {
    let world = World::new(tag, 2, 1, false);
    let events = backlog();
    produce(&world, &events);
    let config = world.config(tag, &["match", "correlate"], "");
    let text = std::fs::read_to_string(&config).expect("config");
    // Aligned, in place (the default on two cores); not aligned, on the
    // worker thread the other service tests also use.
    let text = text.replacen(
        "match_workers = 1\n",
        &format!(
            "match_workers = {}\nalign_event_time = {align}\n",
            if align { 0 } else { 1 }
        ),
        1,
    );
    std::fs::write(&config, text).expect("config");
    let detector = Detector::start(&config, tag);
    // Until stage 1 has read every event and stage 2 every signal.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let m = scrape(&config);
        let value = |name: &str| sample(&m, name, &[]).unwrap_or(0.0);
        let signals = value("qalqan_detector_signals_produced_total");
        if value("qalqan_detector_events_total") >= events.len() as f64
            && signals > 0.0
            && value("qalqan_detector_signals_consumed_total") >= signals
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog was not processed in time\n{}",
            detector.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Idle inputs settle `allowed_lateness` after the end: let them.
    std::thread::sleep(Duration::from_secs(8));
    let got = ids(&world.alerts_until(0, 0));
    let metrics = scrape(&config);
    let late = sample(&metrics, "qalqan_detector_late_events_total", &[]).unwrap_or(0.0);
    (world.agency.clone(), got, late, detector.log_text())
}

/// The alert ids of one in-order, in-process run over the backlog sorted
/// by event time.
fn expected_for(agency: &str) -> BTreeSet<String> {
    let mut in_time_order: Vec<Event> = backlog().into_iter().map(|(_, e)| e).collect();
    in_time_order.sort_by_key(|e| e.timestamp);
    reference_alert_ids(agency, &in_time_order)
}

#[test]
fn a_backlog_over_partitions_is_correlated_in_event_time_order() {
    let probe = expected_for("probe");
    assert!(
        probe.len() >= 5,
        "the backlog should raise alerts: {probe:?}"
    );
    let (agency, got, late, log) = run("align", true);
    let expected = expected_for(&agency);
    assert_eq!(late, 0.0, "signals counted late despite alignment\n{log}");
    assert_eq!(
        got,
        expected,
        "missing: {:?}\nextra: {:?}\n{log}",
        expected.difference(&got).collect::<Vec<_>>(),
        got.difference(&expected).collect::<Vec<_>>(),
    );
}

#[test]
fn without_alignment_the_same_backlog_makes_signals_late() {
    let (_, _, late, log) = run("noalign", false);
    assert!(late > 0.0, "expected late signals without alignment\n{log}");
}
