//! Every ClickHouse query of the provisioned Grafana dashboards
//! (`dashboards/grafana/dashboards/*.json`, panels and query variables),
//! with the plugin's macros expanded by `dashboards/tools/panel_sql.py`, on
//! the stack's real ClickHouse (18.16: legacy dialect), over the incident
//! scenario written through the real sink — plus an agency whose collector
//! fell silent, with the alert the detector's heartbeat tracker raises for
//! it. The same queries run on the modern dialect in
//! `tests/chdb/test_dashboards.py`.

mod clickhouse_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use clickhouse_support::{scenario, TestDb};
use qalqan_core::event::LogSource;
use qalqan_core::Event;
use qalqan_detector::health::HeartbeatTracker;
use qalqan_detector::store::{event_id_for, AlertRow, ClickHouseStore, EventRow};
use serde_json::Value;

const SILENT_AGENCY: &str = "mvd";

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("number"),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {s}")),
        other => panic!("not a number: {other}"),
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().expect("string").to_owned())
        .collect()
}

fn secs(text: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .and_utc()
        .timestamp()
}

/// One expanded query, as `panel_sql.py` prints it.
#[derive(Debug, Clone)]
struct Query {
    dashboard: String,
    panel: String,
    sql: String,
}

/// Every ClickHouse query of every dashboard, expanded for this range.
fn expanded(from: i64, to: i64, vars: &[(&str, &str)]) -> Vec<Query> {
    let tool = qalqan_testkit::workspace_root().join("dashboards/tools/panel_sql.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&tool)
        .args(["--from", &from.to_string(), "--to", &to.to_string()])
        .args(["--interval", "300"]);
    for (k, v) in vars {
        cmd.args(["--var", &format!("{k}={v}")]);
    }
    let out = cmd
        .output()
        .expect("run dashboards/tools/panel_sql.py (needs python3)");
    assert!(
        out.status.success(),
        "panel_sql.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).expect("panel_sql.py JSON");
    list.iter()
        .map(|q| Query {
            dashboard: q["dashboard"].as_str().expect("dashboard").to_owned(),
            panel: q["panel"].as_str().expect("panel").to_owned(),
            sql: q["sql"].as_str().expect("sql").to_owned(),
        })
        .collect()
}

struct Runner {
    client: clickhouse::Client,
    queries: Vec<Query>,
    tested: BTreeSet<(String, String)>,
}

impl Runner {
    async fn run_all(&self) {
        for q in &self.queries {
            self.exec(q).await;
        }
    }

    async fn exec(&self, q: &Query) -> Vec<Value> {
        let mut cursor = self
            .client
            .query(&q.sql)
            .fetch_bytes("JSONEachRow")
            .unwrap_or_else(|e| panic!("{} / {}: {e}", q.dashboard, q.panel));
        let bytes = cursor.collect().await.unwrap_or_else(|e| {
            panic!(
                "{} / {} failed on ClickHouse 18.16: {e}\n{}",
                q.dashboard, q.panel, q.sql
            )
        });
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("JSON row"))
            .collect()
    }

    async fn rows(&mut self, dashboard: &str, panel: &str) -> Vec<Value> {
        let q = self
            .queries
            .iter()
            .find(|q| q.dashboard == dashboard && q.panel == panel)
            .unwrap_or_else(|| panic!("{dashboard} has no ClickHouse panel {panel:?}"))
            .clone();
        self.tested.insert((dashboard.to_owned(), panel.to_owned()));
        self.exec(&q).await
    }
}

/// Sums `value` per `key` over time-series rows.
fn totals(rows: &[Value], key: &str, value: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in rows {
        *out.entry(r[key].as_str().expect("key").to_owned())
            .or_insert(0) += num(&r[value]) as u64;
    }
    out
}

fn heartbeat(t: DateTime<Utc>) -> Event {
    let mut ev = Event::new(String::new(), t);
    ev.timestamp = t;
    ev.logsource = LogSource::default();
    ev.fields.insert("event.kind", "state");
    ev.fields.insert("event.dataset", "qalqan.heartbeat");
    ev.fields.insert("observer.name", "col-mvd-1");
    ev.fields.insert("host.name", "mvd-col1");
    ev.fields.insert("qalqan.collector.last_sequence", 0u64);
    ev.original = ev.to_json_string();
    ev
}

#[tokio::test]
async fn every_dashboard_query_runs_on_18_16_and_shows_the_incident() {
    let db = TestDb::new("qalqan_dash");
    db.apply().await;
    let store = ClickHouseStore::connect(&db.config).await.expect("connect");
    let sc = scenario::build();
    let f = &sc.facts;
    let day0 = secs(&f.incident_from);

    // A third agency whose only collector sent one heartbeat at 08:00 and
    // then nothing: the real tracker raises the silence alert.
    let hb_time = scenario::day0() + Duration::hours(8);
    let hb = heartbeat(hb_time);
    let mut tracker = HeartbeatTracker::new(std::time::Duration::from_secs(15 * 60));
    assert!(tracker.observe(SILENT_AGENCY, &hb, hb_time).is_some());
    let silence = tracker.check(hb_time + Duration::minutes(20));
    assert_eq!(silence.len(), 1, "the tracker raises one silence alert");

    let mut event_rows = sc.event_rows();
    let topic = format!("qalqan.events.{SILENT_AGENCY}");
    let hb_id = event_id_for(&hb, SILENT_AGENCY, &topic, 0, 1);
    event_rows.push(EventRow::from_event(&hb, SILENT_AGENCY, hb_id));
    let mut alert_rows = sc.alert_rows();
    alert_rows.push(AlertRow::from_alert(&silence[0]));

    let mut events = store.events_sink::<()>();
    for row in event_rows.clone() {
        events.push(row, ());
    }
    events.flush().await.expect("events");
    let mut alerts = store.alerts_sink::<()>();
    for row in alert_rows.clone() {
        alerts.push(row, ());
    }
    alerts.flush().await.expect("alerts");

    let (from, to) = (day0, secs(&f.incident_to));
    let vars = [("agency", "egov"), ("silence_minutes", "30")];
    let mut r = Runner {
        client: db.client(),
        queries: expanded(from, to, &vars),
        tested: BTreeSet::new(),
    };
    assert!(r.queries.len() >= 15, "{} queries", r.queries.len());
    // Everything runs on 18.16 (the assertions below say what it finds).
    r.run_all().await;

    // What the scenario holds, from the rows themselves.
    let distinct: BTreeMap<&str, &AlertRow> =
        alert_rows.iter().map(|a| (a.id.as_str(), a)).collect();
    let in_range = |us: i64| (from..=to).contains(&(us.div_euclid(1_000_000)));
    let bucket_in_range = |us: i64| {
        let s = us.div_euclid(1_000_000);
        (from..=to).contains(&(s - s.rem_euclid(300)))
    };
    let by = |key: fn(&AlertRow) -> &str| {
        let mut m = BTreeMap::new();
        for a in distinct.values().filter(|a| in_range(a.window_start)) {
            *m.entry(key(a).to_owned()).or_insert(0u64) += 1;
        }
        m
    };

    // ---- SOC overview
    let soc = "soc-overview.json";
    let rows = r.rows(soc, "Alerts by level").await;
    let levels = by(|a| a.rule_level.as_str());
    assert_eq!(totals(&rows, "level", "alerts"), levels);
    assert_eq!(levels["critical"], 1);
    let rows = r.rows(soc, "Alerts by agency").await;
    assert_eq!(
        totals(&rows, "agency", "alerts"),
        by(|a| a.agency.as_str()),
        "the replayed brute-force alert counts once"
    );
    assert!(rows
        .iter()
        .all(|x| secs(x["t"].as_str().expect("t")) % 300 == 0));

    let rows = r.rows(soc, "Top rules").await;
    let titles: BTreeSet<String> = rows
        .iter()
        .map(|x| x["rule_title"].as_str().expect("title").to_owned())
        .collect();
    assert_eq!(
        titles,
        distinct.values().map(|a| a.rule_title.clone()).collect()
    );
    assert!(rows.iter().all(|x| num(&x["alerts"]) == 1.0), "{rows:?}");

    let rows = r.rows(soc, "Top attacking sources").await;
    assert_eq!(rows[0]["source"], f.attacker.as_str(), "{rows:?}");
    let attacker_alerts: Vec<&&AlertRow> = distinct
        .values()
        .filter(|a| a.source_ips.contains(&f.attacker))
        .collect();
    assert_eq!(num(&rows[0]["alerts"]) as usize, attacker_alerts.len());
    assert_eq!(attacker_alerts.len(), 3);
    assert_eq!(
        num(&rows[0]["events"]) as u64,
        attacker_alerts.iter().map(|a| a.count).sum::<u64>()
    );
    assert_eq!(strs(&rows[0]["agencies"]), vec!["egov".to_string()]);
    let sprayer = rows
        .iter()
        .find(|x| x["source"] == f.sprayer.as_str())
        .expect("the sprayer is listed");
    assert_eq!(strs(&sprayer["agencies"]), vec!["mof".to_string()]);

    let rows = r.rows(soc, "Top targeted hosts").await;
    let mut hosts: BTreeMap<String, u64> = BTreeMap::new();
    for a in distinct.values() {
        for h in &a.host_names {
            *hosts.entry(h.clone()).or_insert(0) += 1;
        }
    }
    let got: BTreeMap<String, u64> = rows
        .iter()
        .map(|x| {
            (
                x["host"].as_str().expect("host").to_owned(),
                num(&x["alerts"]) as u64,
            )
        })
        .collect();
    assert_eq!(got, hosts);
    assert_eq!(rows[0]["host"], scenario::PORTAL);

    let rows = r.rows(soc, "Top targeted URLs (error responses)").await;
    let scanned: BTreeSet<&str> = event_rows
        .iter()
        .filter(|e| e.http_response_status_code >= 400 && in_range(e.timestamp))
        .map(|e| e.url_original.as_str())
        .collect();
    assert_eq!(rows.len(), scanned.len());
    assert!(rows.iter().any(|x| x["url"] == "/wp-login.php"));
    for x in &rows {
        assert!(scanned.contains(x["url"].as_str().expect("url")));
        assert_eq!(num(&x["requests"]), 4.0, "{x}");
        assert_eq!(strs(&x["sample_sources"]), vec![f.attacker.clone()]);
    }

    let rows = r.rows(soc, "Latest critical alerts").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["rule_title"], "Successful login after brute force");
    assert_eq!(rows[0]["sources"], f.attacker.as_str());
    let evidence = rows[0]["evidence"].as_str().expect("evidence");
    assert!(
        evidence.contains("Accepted password for deploy"),
        "{evidence}"
    );
    assert!(evidence.contains("Failed password"), "{evidence}");

    // Silent agencies: at 12:30 only mvd (quiet since 08:00, one silence
    // alert); six hours after the day, every agency.
    let silent = |rows: &[Value]| -> BTreeMap<String, (u64, u64)> {
        rows.iter()
            .map(|x| {
                (
                    x["agency"].as_str().expect("agency").to_owned(),
                    (
                        num(&x["silent_minutes"]) as u64,
                        num(&x["silence_alerts"]) as u64,
                    ),
                )
            })
            .collect()
    };
    let noon = expanded(from, day0 + 12 * 3600 + 30 * 60, &vars);
    let q = noon
        .iter()
        .find(|q| q.panel == "Agencies that went silent")
        .expect("silent panel");
    assert_eq!(
        silent(&r.exec(q).await),
        BTreeMap::from([(SILENT_AGENCY.to_string(), (4 * 60 + 30, 1))])
    );
    let late = expanded(from, to + 6 * 3600, &vars);
    let q = late
        .iter()
        .find(|q| q.panel == "Agencies that went silent")
        .expect("silent panel");
    let rows = r.exec(q).await;
    let got = silent(&rows);
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["egov".to_string(), "mof".into(), SILENT_AGENCY.into()])
    );
    let mof_last = rows.iter().find(|x| x["agency"] == "mof").expect("mof")["last_event"].clone();
    assert_eq!(
        secs(mof_last.as_str().expect("time")),
        day0 + 23 * 3600 + 17 * 60,
        "mof's last event is the 23:17 cron run"
    );
    assert_eq!(got["mof"], (6 * 60 + 43, 0));
    r.tested
        .insert((soc.to_owned(), "Agencies that went silent".to_owned()));

    // ---- Agency drill-down (egov)
    let ag = "agency-drilldown.json";
    let rows = r.rows(ag, "var:agency").await;
    let agencies: Vec<String> = rows
        .iter()
        .map(|x| x["agency"].as_str().expect("agency").to_owned())
        .collect();
    assert_eq!(agencies, vec!["egov", "mof", SILENT_AGENCY]);

    let egov: Vec<&EventRow> = event_rows.iter().filter(|e| e.agency == "egov").collect();
    let rollup_events = egov.iter().filter(|e| bucket_in_range(e.timestamp)).count() as u64;
    let rows = r.rows(ag, "Events by dataset").await;
    let datasets = totals(&rows, "dataset", "events");
    assert_eq!(datasets.values().sum::<u64>(), rollup_events);
    for d in [
        "nginx.access",
        "system.auth",
        "sudo",
        "cron",
        "iptables",
        "(none)",
    ] {
        assert!(datasets.contains_key(d), "{d} missing: {datasets:?}");
    }

    let rows = r.rows(ag, "Alerts by level").await;
    let mut egov_levels = BTreeMap::new();
    for a in distinct.values().filter(|a| a.agency == "egov") {
        *egov_levels.entry(a.rule_level.clone()).or_insert(0u64) += 1;
    }
    assert_eq!(totals(&rows, "level", "alerts"), egov_levels);

    let rows = r.rows(ag, "Parse quality").await;
    assert_eq!(num(&rows[0]["total_events"]) as u64, rollup_events);
    assert_eq!(num(&rows[0]["unparsed_lines"]), 1.0, "the garbled line");
    let pct = num(&rows[0]["parsed_percent"]);
    assert!(pct > 99.0 && pct < 100.0, "{pct}");

    let rows = r.rows(ag, "Parse quality by source").await;
    assert_eq!(num(&rows[0]["unparsed"]), 1.0, "{rows:?}");
    assert_eq!(rows[0]["dataset"], "(none)");

    let rows = r.rows(ag, "Collectors").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let in_day: Vec<&&EventRow> = egov.iter().filter(|e| in_range(e.timestamp)).collect();
    assert_eq!(rows[0]["collector"], "col-egov-1");
    assert_eq!(num(&rows[0]["events"]) as usize, in_day.len());
    assert_eq!(num(&rows[0]["heartbeats"]), 0.0);
    // Numbers missing among the range's events: here the one DNS event the
    // scenario numbered in the middle but timed after midnight.
    let seqs: BTreeSet<u64> = in_day.iter().map(|e| e.observer_sequence).collect();
    let (lo, hi) = (
        *seqs.first().expect("events"),
        *seqs.last().expect("events"),
    );
    let missing = hi - lo + 1 - seqs.len() as u64;
    assert_eq!(num(&rows[0]["sequence_gaps"]) as u64, missing);
    assert_eq!(
        missing, 1,
        "the event numbered inside but timed outside the range"
    );
    assert_eq!(num(&rows[0]["last_sequence"]) as u64, hi);

    let rows = r.rows(ag, "Alerts").await;
    assert_eq!(rows.len() as u64, egov_levels.values().sum::<u64>());
    assert!(rows
        .iter()
        .all(|x| !x["evidence"].as_str().expect("evidence").is_empty()));

    let rows = r.rows(ag, "Top sources").await;
    assert_eq!(rows[0]["source"], f.attacker.as_str(), "{rows:?}");
    assert_eq!(num(&rows[0]["successes"]), 1.0, "the break-in");
    assert_eq!(
        num(&rows[0]["events"]) as u64,
        f.attacker_events["egov"],
        "{rows:?}"
    );

    let rows = r.rows(ag, "Unparsed lines").await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0]["original"]
        .as_str()
        .expect("raw")
        .contains("garbled line"));

    // The silent agency's collector, by its heartbeat.
    let mvd = expanded(
        from,
        to,
        &[("agency", SILENT_AGENCY), ("silence_minutes", "30")],
    );
    let q = mvd
        .iter()
        .find(|q| q.dashboard == ag && q.panel == "Collectors")
        .expect("collectors panel");
    let rows = r.exec(q).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["collector"], "col-mvd-1");
    assert_eq!(num(&rows[0]["heartbeats"]), 1.0);
    assert_eq!(num(&rows[0]["events"]), 0.0);

    let all: BTreeSet<(String, String)> = r
        .queries
        .iter()
        .map(|q| (q.dashboard.clone(), q.panel.clone()))
        .collect();
    assert_eq!(r.tested, all, "every dashboard query has assertions here");
}
