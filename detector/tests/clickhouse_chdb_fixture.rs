//! Writes what `tests/chdb` loads into an in-process modern ClickHouse: the
//! exact RowBinary bytes the sink sends for the incident scenario (captured
//! on the wire), the INSERT statements, both DDLs, the scenario's facts and
//! the values every row must read back as.
//!
//! The directory is `$QALQAN_CHDB_FIXTURES`, or `.work/chdb-fixtures` in the
//! workspace. `tests/chdb/run` runs this test first.

mod clickhouse_support;

use std::path::PathBuf;
use std::time::Duration;

use clickhouse_support::capture::Capture;
use clickhouse_support::scenario;
use qalqan_detector::store::{
    ddl, ip, migrate, BatchPolicy, ClickHouseConfig, ClickHouseSink, Dialect, RetryPolicy,
};
use serde_json::json;

fn fixture_dir() -> PathBuf {
    match std::env::var_os("QALQAN_CHDB_FIXTURES") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => qalqan_testkit::workspace_root()
            .join(".work")
            .join("chdb-fixtures"),
    }
}

/// Sends `rows` through a real sink to the capture endpoint and returns
/// (INSERT statement, body).
async fn capture<R>(table: &str, rows: Vec<R>) -> (String, Vec<u8>)
where
    R: clickhouse::RowOwned + clickhouse::RowWrite,
{
    let cap = Capture::start(0);
    let cfg = ClickHouseConfig {
        url: cap.url.clone(),
        compression: false,
        ..ClickHouseConfig::default()
    };
    let n = rows.len();
    let mut sink: ClickHouseSink<R, ()> = ClickHouseSink::new(
        cfg.client().expect("client"),
        table,
        BatchPolicy {
            max_rows: n + 1,
            max_age: Duration::from_secs(60),
        },
        RetryPolicy {
            max_attempts: 1,
            backoff: Duration::from_millis(10),
            backoff_max: Duration::from_millis(10),
            timeout: Duration::from_secs(10),
        },
    );
    for r in rows {
        sink.push(r, ());
    }
    sink.flush().await.expect("captured insert");
    let reqs = cap.requests();
    assert_eq!(reqs.len(), 1, "one INSERT per batch");
    let sql = reqs[0].sql();
    assert!(sql.starts_with(&format!("INSERT INTO `{table}`(")), "{sql}");
    assert!(sql.ends_with(" FORMAT RowBinary"), "{sql}");
    assert!(reqs[0].body.len() > 100 * n.min(10), "body of {n} rows");
    (sql, reqs[0].body.clone())
}

fn micros_text(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .expect("valid time")
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

#[tokio::test]
async fn write_chdb_fixtures() {
    let dir = fixture_dir();
    std::fs::create_dir_all(&dir).expect("fixture dir");
    let sc = scenario::build();

    let (events_sql, events_bin) = capture("events", sc.event_rows()).await;
    let (alerts_sql, alerts_bin) = capture("alerts", sc.alert_rows()).await;

    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    };
    write("events.rowbinary", &events_bin);
    write("alerts.rowbinary", &alerts_bin);
    write("events.insert.sql", events_sql.as_bytes());
    write("alerts.insert.sql", alerts_sql.as_bytes());
    for dialect in [Dialect::Modern, Dialect::Legacy] {
        // Two databases in one chdb session: `qalqan` (modern) and
        // `qalqan_legacy` (the legacy DDL, as after a server upgrade).
        let opts = ddl::SchemaOptions {
            database: match dialect {
                Dialect::Modern => "qalqan".into(),
                Dialect::Legacy => "qalqan_legacy".into(),
            },
            ..Default::default()
        };
        let stmts = ddl::full_schema(dialect, &opts);
        write(
            &format!("schema_{dialect}.sql"),
            stmts.join(";\n\n").as_bytes(),
        );
    }
    write(
        "facts.json",
        serde_json::to_string_pretty(&json!({
            "facts": sc.facts,
            "schema_version": migrate::latest_version(),
        }))
        .expect("json")
        .as_bytes(),
    );

    // What each row must read back as, in ClickHouse's text forms.
    let mut expected = String::new();
    for s in &sc.events {
        let r = &s.row;
        let line = json!({
            "event_id": r.event_id,
            "timestamp": micros_text(r.timestamp),
            "ingested": micros_text(r.ingested),
            "agency": r.agency,
            "observer_name": r.observer_name,
            "observer_sequence": r.observer_sequence,
            "host_name": r.host_name,
            "source_address": ip::to_text(&r.source_ip),
            "source_port": r.source_port,
            "destination_address": ip::to_text(&r.destination_ip),
            "destination_port": r.destination_port,
            "user_name": r.user_name,
            "process_name": r.process_name,
            "process_pid": r.process_pid,
            "process_command_line": r.process_command_line,
            "event_dataset": r.event_dataset,
            "event_category": r.event_category,
            "event_action": r.event_action,
            "event_outcome": r.event_outcome,
            "url_original": r.url_original,
            "http_request_method": r.http_request_method,
            "http_response_status_code": r.http_response_status_code,
            "user_agent_original": r.user_agent_original,
            "logsource_product": r.logsource_product,
            "logsource_service": r.logsource_service,
            "logsource_category": r.logsource_category,
            "message": r.message,
            "original": r.original,
            "tags": r.tags,
            "fields": r.fields.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        });
        expected.push_str(&line.to_string());
        expected.push('\n');
    }
    write("events.expected.jsonl", expected.as_bytes());

    let mut expected = String::new();
    for a in &sc.alerts {
        let mut r = qalqan_detector::store::AlertRow::from_alert(a);
        if a.id == sc.alerts[1].id {
            r.created += 5_000_000;
        }
        let line = json!({
            "id": r.id,
            "agency": r.agency,
            "rule_id": r.rule_id,
            "rule_title": r.rule_title,
            "rule_author": r.rule_author,
            "rule_level": r.rule_level,
            "rule_tags": r.rule_tags,
            "rule_kind": r.rule_kind,
            "group_key": r.group_key.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "source_ips": r.source_ips,
            "user_names": r.user_names,
            "host_names": r.host_names,
            "urls": r.urls,
            "window_start": micros_text(r.window_start),
            "window_end": micros_text(r.window_end),
            "count": r.count,
            "value": r.value,
            "suppressed": r.suppressed,
            "evidence.event_id": r.evidence_event_id,
            "evidence.timestamp": r.evidence_timestamp.iter().map(|t| micros_text(*t)).collect::<Vec<_>>(),
            "evidence.original": r.evidence_original,
            "created": micros_text(r.created),
        });
        expected.push_str(&line.to_string());
        expected.push('\n');
    }
    write("alerts.expected.jsonl", expected.as_bytes());
    eprintln!("chdb fixtures written to {}", dir.display());
}
