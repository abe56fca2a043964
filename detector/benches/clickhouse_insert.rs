//! Throughput of the ClickHouse path, on realistic events: the OpenSSH log
//! from the shared test data through the project's parsers, plus the
//! incident scenario's web, sudo and firewall events, cycled to `ROWS` rows.
//!
//! Prints, each in rows/s:
//! * convert — `Event` → `EventRow`;
//! * encode+send — the sink's RowBinary encoding (LZ4) and HTTP transfer to a
//!   loopback endpoint that discards the body (no database work);
//! * insert — `ClickHouseSink` into the stack's ClickHouse (Debian 18.16),
//!   batches of `BATCH` rows, materialized rollups included.
//!
//! Run: `cargo bench -p qalqan-detector --bench clickhouse_insert`
//! (env `QALQAN_BENCH_ROWS`, `QALQAN_BENCH_BATCH` to change the sizes).

#[path = "../tests/clickhouse_support/scenario.rs"]
mod scenario;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use chrono::Utc;
use qalqan_core::Event;
use qalqan_detector::store::{
    event_id_for, migrate, BatchPolicy, ClickHouseConfig, ClickHouseSink, DialectChoice, EventRow,
    RetryPolicy,
};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (agency, event) pairs: parsed sshd lines and the scenario's events.
fn base_events() -> Vec<(String, Event)> {
    let path = qalqan_testkit::shared_data("loghub/OpenSSH_2k.log");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parser = qalqan_core::parse::Parser::default();
    let now = Utc::now();
    let mut out: Vec<(String, Event)> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| ("mof".to_string(), parser.parse(l, now).event))
        .collect();
    out.extend(
        scenario::build()
            .events
            .into_iter()
            .map(|s| (s.agency, s.event)),
    );
    out
}

fn make_events(rows: usize) -> Vec<(String, Event)> {
    let base = base_events();
    let agencies = ["mof", "egov", "mvd", "minzdrav", "akimat-almaty"];
    (0..rows)
        .map(|i| {
            let (_, ev) = &base[i % base.len()];
            let mut ev = ev.clone();
            let round = (i / base.len()) as i64;
            ev.timestamp += chrono::Duration::seconds(round * 3);
            ev.fields.insert("observer.name", "bench-collector");
            ev.fields.insert("observer.sequence", i as u64 + 1);
            (agencies[i % agencies.len()].to_string(), ev)
        })
        .collect()
}

fn convert(events: &[(String, Event)]) -> Vec<EventRow> {
    events
        .iter()
        .enumerate()
        .map(|(i, (agency, ev))| {
            let topic = format!("qalqan.events.{agency}");
            let id = event_id_for(ev, agency, &topic, 0, i as i64);
            EventRow::from_event(ev, agency, id)
        })
        .collect()
}

/// An HTTP endpoint that reads each request fully, discards it and answers 200.
fn discard_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = stream.try_clone().expect("clone");
                let mut r = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut chunked = false;
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = h.trim_end().to_ascii_lowercase();
                        if l.is_empty() {
                            break;
                        }
                        chunked |= l.starts_with("transfer-encoding:") && l.contains("chunked");
                        if let Some(v) = l.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    if chunked {
                        loop {
                            let mut size = String::new();
                            if r.read_line(&mut size).unwrap_or(0) == 0 {
                                return;
                            }
                            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                            let mut sink = vec![0; n + 2];
                            if r.read_exact(&mut sink).is_err() {
                                return;
                            }
                            if n == 0 {
                                break;
                            }
                        }
                    } else {
                        let mut sink = vec![0; len];
                        if r.read_exact(&mut sink).is_err() {
                            return;
                        }
                    }
                    if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    url
}

async fn send_all(client: clickhouse::Client, rows: &[EventRow], batch: usize) -> (Duration, u64) {
    let mut sink: ClickHouseSink<EventRow, ()> = ClickHouseSink::new(
        client,
        "events",
        BatchPolicy {
            max_rows: batch,
            max_age: Duration::from_secs(3600),
        },
        RetryPolicy {
            max_attempts: 3,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            timeout: Duration::from_secs(120),
        },
    );
    let start = Instant::now();
    for row in rows {
        sink.write(row.clone(), ()).await.expect("insert");
    }
    sink.flush().await.expect("flush");
    (start.elapsed(), sink.stats().snapshot().batches_inserted)
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:>10.0} rows/s", n as f64 / d.as_secs_f64())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rows = env_usize("QALQAN_BENCH_ROWS", 300_000);
    let batch = env_usize("QALQAN_BENCH_BATCH", 20_000);
    let events = make_events(rows);
    let raw_bytes: usize = events.iter().map(|(_, e)| e.original.len()).sum();

    let start = Instant::now();
    let converted = convert(&events);
    let t_convert = start.elapsed();
    println!(
        "clickhouse_insert: {rows} events ({:.0} B raw line avg), batch {batch}",
        raw_bytes as f64 / rows as f64
    );
    println!("  convert Event -> EventRow   {}", rate(rows, t_convert));

    // The clone inside `send_all` is part of every run, so it is measured too.
    let discard = ClickHouseConfig {
        url: discard_endpoint(),
        ..ClickHouseConfig::default()
    };
    let (t_send, _) = send_all(discard.client().expect("client"), &converted, batch).await;
    println!("  encode+send (LZ4, discard)  {}", rate(rows, t_send));

    let db_name = format!("qalqan_bench_{}", std::process::id());
    let cfg = ClickHouseConfig {
        url: qalqan_testkit::clickhouse_url(),
        database: db_name.clone(),
        ..ClickHouseConfig::default()
    };
    let client = cfg.client().expect("client");
    let report = migrate::apply(&client, DialectChoice::Auto, &cfg.schema_options(), false)
        .await
        .expect("schema");
    let (t_insert, batches) = send_all(client.clone(), &converted, batch).await;
    println!(
        "  insert into ClickHouse {} ({}) {}  ({batches} inserts, {:.1} MB/s of raw lines)",
        report.server_version,
        report.dialect,
        rate(rows, t_insert),
        raw_bytes as f64 / t_insert.as_secs_f64() / 1e6
    );
    let stored: u64 = client
        .query("SELECT count() FROM events")
        .fetch_one()
        .await
        .expect("count");
    assert_eq!(stored, rows as u64, "every row stored");
    let _ = client
        .clone()
        .with_database("default")
        .query(&format!("DROP DATABASE IF EXISTS {db_name}"))
        .execute()
        .await;
}
