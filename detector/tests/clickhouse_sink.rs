//! The batched writer against the stack's real ClickHouse: rows survive the
//! trip bit for bit, tokens come back only after the server confirmed,
//! failed batches stay buffered and are retried, duplicates collapse, and
//! the rollups fill.

mod clickhouse_support;

use std::time::Duration;

use clickhouse_support::capture::Capture;
use clickhouse_support::{scenario, TestDb};
use qalqan_detector::store::{
    AlertRow, BatchPolicy, ClickHouseConfig, ClickHouseSink, ClickHouseStore, EventRow,
    RetryPolicy, StoreError,
};

async fn store(db: &TestDb) -> ClickHouseStore {
    db.apply().await;
    ClickHouseStore::connect(&db.config).await.expect("connect")
}

#[tokio::test]
async fn events_and_alerts_round_trip_exactly() {
    let mut db = TestDb::new("qalqan_roundtrip");
    db.config.batch_rows = 250;
    let store = store(&db).await;
    let sc = scenario::build();

    let mut events = store.events_sink::<usize>();
    let mut confirmed = Vec::new();
    for (i, row) in sc.event_rows().into_iter().enumerate() {
        confirmed.extend(events.write(row, i).await.expect("write"));
    }
    confirmed.extend(events.flush().await.expect("flush"));
    assert_eq!(
        confirmed,
        (0..sc.events.len()).collect::<Vec<_>>(),
        "every token, in order"
    );
    let stats = events.stats().snapshot();
    assert_eq!(stats.rows_inserted, sc.events.len() as u64);
    assert_eq!(
        stats.batches_inserted as usize,
        sc.events.len().div_ceil(250),
        "batches of 250: {stats:?}"
    );
    assert_eq!(stats.insert_errors, 0);
    assert_eq!(stats.buffered_rows, 0);

    let mut back: Vec<EventRow> = store
        .client()
        .query("SELECT ?fields FROM events ORDER BY event_id")
        .fetch_all()
        .await
        .expect("read events back");
    let mut sent = sc.event_rows();
    sent.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    back.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    assert_eq!(back.len(), sent.len());
    for (b, s) in back.iter().zip(&sent) {
        assert_eq!(b, s, "event {} changed in storage", s.event_id);
    }

    // The derived columns read the same in every dialect.
    let row = db.rows(&format!(
        "SELECT toString(time) AS time, source_address, destination_address, fields_values[indexOf(fields_keys, 'http.version')] AS http_version FROM {{db}}.events WHERE event_id = '{}'",
        sc.events.iter().find(|s| s.row.url_original == "/.env").expect("scan event").row.event_id
    ));
    let scan_second = scenario::day0() + chrono::Duration::seconds(10 * 3600 + 5);
    assert_eq!(row[0]["time"], scenario::fmt(scan_second));
    assert_eq!(row[0]["source_address"], scenario::ATTACKER);
    assert_eq!(row[0]["destination_address"], "");
    assert_eq!(row[0]["http_version"], "1.1");

    let mut alerts = store.alerts_sink::<()>();
    for row in sc.alert_rows() {
        alerts.push(row, ());
    }
    alerts.flush().await.expect("alerts");
    let back: Vec<AlertRow> = store
        .client()
        .query("SELECT ?fields FROM alerts FINAL ORDER BY id")
        .fetch_all()
        .await
        .expect("read alerts back");
    assert_eq!(back.len(), sc.alerts.len(), "the replayed alert collapsed");
    for a in &sc.alerts {
        let mut want = AlertRow::from_alert(a);
        if a.id == sc.alerts[1].id {
            want.created += 5_000_000; // the replay is newer and wins
        }
        let got = back.iter().find(|r| r.id == a.id).expect("alert stored");
        assert_eq!(*got, want);
    }
}

#[tokio::test]
async fn duplicates_collapse_and_rollups_fill() {
    let db = TestDb::new("qalqan_dedup");
    let store = store(&db).await;
    let sc = scenario::build();

    let mut events = store.events_sink::<()>();
    for row in sc.event_rows() {
        events.push(row, ());
    }
    events.flush().await.expect("events");
    // Redelivery of the first 100 events (a crash before the offset commit).
    for row in sc.event_rows().into_iter().take(100) {
        events.push(row, ());
    }
    events.flush().await.expect("redelivered events");
    let mut alerts = store.alerts_sink::<()>();
    for row in sc.alert_rows() {
        alerts.push(row, ());
    }
    alerts.flush().await.expect("alerts");

    let total = sc.facts.total_events;
    assert_eq!(db.count("SELECT count() FROM {db}.events FINAL"), total);
    db.query("OPTIMIZE TABLE {db}.events FINAL");
    db.query("OPTIMIZE TABLE {db}.alerts FINAL");
    assert_eq!(
        db.count("SELECT count() FROM {db}.events"),
        total,
        "merged away"
    );
    assert_eq!(
        db.count("SELECT count() FROM {db}.alerts"),
        sc.alerts.len() as u64
    );
    let newest: AlertRow = store
        .client()
        .query("SELECT ?fields FROM alerts WHERE id = ?")
        .bind(sc.alerts[1].id.as_str())
        .fetch_one()
        .await
        .expect("the replayed alert");
    assert_eq!(
        newest.created,
        sc.alerts[1].created.timestamp_micros() + 5_000_000,
        "the newest copy survives the merge"
    );

    // events_5m counts inserts (a redelivered event counts twice there);
    // alerts_5m counts distinct ids.
    let per_agency = db.rows(
        "SELECT agency, sum(events) AS events, sum(unparsed) AS unparsed FROM {db}.events_5m GROUP BY agency ORDER BY agency",
    );
    let expect = |agency: &str| sc.events.iter().filter(|s| s.agency == agency).count() as u64;
    let redelivered = |agency: &str| {
        sc.events
            .iter()
            .take(100)
            .filter(|s| s.agency == agency)
            .count() as u64
    };
    for r in &per_agency {
        let agency = r["agency"].as_str().expect("agency");
        let events: u64 = r["events"].as_str().map_or_else(
            || r["events"].as_u64().expect("number"),
            |s| s.parse().expect("number"),
        );
        assert_eq!(events, expect(agency) + redelivered(agency), "{agency}");
    }
    assert_eq!(per_agency.len(), 2);
    assert_eq!(
        db.count("SELECT sum(unparsed) FROM {db}.events_5m"),
        1,
        "the garbled line"
    );
    let alerts = db.rows(
        "SELECT agency, uniqExactMerge(alerts) AS n FROM {db}.alerts_5m GROUP BY agency ORDER BY agency",
    );
    for r in &alerts {
        let agency = r["agency"].as_str().expect("agency");
        let n: u64 = r["n"].as_str().map_or_else(
            || r["n"].as_u64().expect("number"),
            |s| s.parse().expect("number"),
        );
        assert_eq!(Some(&n), sc.facts.alerts.get(agency), "{agency}");
    }
    assert_eq!(alerts.len(), sc.facts.alerts.len());
}

#[tokio::test]
async fn a_failed_batch_stays_buffered_and_its_tokens_wait() {
    let db = TestDb::new("qalqan_retry");
    // No schema yet: every insert fails.
    let mut sink: ClickHouseSink<EventRow, u64> =
        ClickHouseSink::with_config(db.client(), "events", &db.config);
    let sc = scenario::build();
    for (i, row) in sc.event_rows().into_iter().take(50).enumerate() {
        assert!(!sink.push(row, i as u64));
    }
    match sink.flush().await {
        Err(StoreError::Insert { attempts, rows, .. }) => {
            assert_eq!(attempts, 3);
            assert_eq!(rows, 50);
        }
        other => panic!("expected an insert error, got {other:?}"),
    }
    assert_eq!(sink.len(), 50, "rows are kept for the next attempt");
    let s = sink.stats().snapshot();
    assert_eq!((s.insert_errors, s.retries, s.rows_inserted), (3, 2, 0));

    // The schema appears while the sink keeps retrying: the same batch goes in.
    let mut patient: ClickHouseSink<EventRow, u64> = ClickHouseSink::new(
        db.client(),
        "events",
        BatchPolicy {
            max_rows: 1000,
            max_age: Duration::from_secs(1),
        },
        RetryPolicy {
            max_attempts: 0,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
            timeout: Duration::from_secs(10),
        },
    );
    for (i, row) in sc.event_rows().into_iter().skip(50).take(10).enumerate() {
        patient.push(row, 50 + i as u64);
    }
    let config = db.config.clone();
    let creator = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        qalqan_detector::store::migrate::apply(
            &config.client().expect("client"),
            Default::default(),
            &config.schema_options(),
            false,
        )
        .await
        .expect("apply")
    });
    let tokens = patient
        .flush()
        .await
        .expect("succeeds once the table exists");
    creator.await.expect("creator task");
    assert_eq!(tokens, (50..60).collect::<Vec<u64>>());
    assert!(patient.stats().snapshot().retries >= 1);

    let tokens = sink.flush().await.expect("the kept batch goes in now");
    assert_eq!(tokens, (0..50).collect::<Vec<u64>>());
    assert_eq!(db.count("SELECT count() FROM {db}.events"), 60);
}

#[tokio::test]
async fn batches_flush_by_size_and_by_age() {
    let db = TestDb::new("qalqan_batch");
    db.apply().await;
    let mut sink: ClickHouseSink<EventRow, u32> = ClickHouseSink::new(
        db.client(),
        "events",
        BatchPolicy {
            max_rows: 3,
            max_age: Duration::from_millis(300),
        },
        RetryPolicy {
            max_attempts: 2,
            backoff: Duration::from_millis(50),
            backoff_max: Duration::from_millis(50),
            timeout: Duration::from_secs(10),
        },
    );
    let rows = scenario::build().event_rows();
    assert!(sink.write(rows[0].clone(), 1).await.expect("w").is_empty());
    assert!(sink.write(rows[1].clone(), 2).await.expect("w").is_empty());
    assert_eq!(db.count("SELECT count() FROM {db}.events"), 0, "not yet");
    assert_eq!(
        sink.write(rows[2].clone(), 3).await.expect("w"),
        vec![1, 2, 3]
    );
    assert_eq!(
        db.count("SELECT count() FROM {db}.events"),
        3,
        "stored when returned"
    );

    sink.push(rows[3].clone(), 4);
    assert!(!sink.is_due());
    assert!(sink.flush_if_due().await.expect("not due").is_empty());
    let deadline = sink.deadline().expect("a row is waiting");
    tokio::time::sleep_until(deadline).await;
    assert!(sink.is_due());
    assert_eq!(sink.flush_if_due().await.expect("due"), vec![4]);
    assert!(sink.deadline().is_none());
}

#[tokio::test]
async fn a_retry_resends_the_identical_bytes() {
    // Two injected failures, then success: three requests with one body.
    let capture = Capture::start(2);
    let cfg = ClickHouseConfig {
        url: capture.url.clone(),
        database: "qalqan".into(),
        compression: false,
        ..ClickHouseConfig::default()
    };
    let mut sink: ClickHouseSink<AlertRow, ()> = ClickHouseSink::new(
        cfg.client().expect("client"),
        "alerts",
        BatchPolicy {
            max_rows: 100,
            max_age: Duration::from_secs(1),
        },
        RetryPolicy {
            max_attempts: 5,
            backoff: Duration::from_millis(10),
            backoff_max: Duration::from_millis(20),
            timeout: Duration::from_secs(5),
        },
    );
    for row in scenario::build().alert_rows() {
        sink.push(row, ());
    }
    sink.flush().await.expect("third attempt succeeds");
    let reqs = capture.requests();
    assert_eq!(reqs.len(), 3);
    assert!(!reqs[0].body.is_empty());
    assert!(
        reqs.iter().all(|r| r.body == reqs[0].body),
        "same bytes each time"
    );
    assert!(
        reqs[0].sql().starts_with("INSERT INTO"),
        "{}",
        reqs[0].sql()
    );
    assert!(
        reqs[0].sql().ends_with("FORMAT RowBinary"),
        "{}",
        reqs[0].sql()
    );
    let s = sink.stats().snapshot();
    assert_eq!((s.insert_errors, s.retries, s.batches_inserted), (2, 2, 1));
}
