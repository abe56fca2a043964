//! The responder cookbook (`docs/cookbook/*.sql`) against the stack's real
//! ClickHouse (18.16: legacy dialect), run through `docs/cookbook/run-query`
//! (which substitutes the parameters as the cookbook README describes), on
//! the incident scenario written through the real sink. The same queries run on the modern dialect in
//! `tests/chdb` with native query parameters and the same facts.

mod clickhouse_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use clickhouse_support::{cookbook, cookbook_dir, scenario, TestDb};
use qalqan_detector::store::ClickHouseStore;
use serde_json::Value;

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

struct Cookbook {
    db: TestDb,
    queries: BTreeMap<String, String>,
    facts: scenario::Facts,
    tested: std::cell::RefCell<BTreeSet<String>>,
}

impl Cookbook {
    /// Runs a cookbook query the way a responder would: through
    /// `docs/cookbook/run-query`, which substitutes the parameters on this
    /// server (18.16 has no query parameters).
    fn run(&self, file: &str, params: &[(&str, &str)]) -> Vec<Value> {
        assert!(self.queries.contains_key(file), "cookbook has no {file}");
        let mut args = vec![
            format!("from={}", self.facts.incident_from),
            format!("to={}", self.facts.incident_to),
        ];
        args.extend(params.iter().map(|(k, v)| format!("{k}={v}")));
        self.tested.borrow_mut().insert(file.to_owned());
        let out = Command::new(cookbook_dir().join("run-query"))
            .args(["--url", &self.db.config.url, "--database", &self.db.name])
            .args(["--format", "JSONEachRow", file])
            .args(&args)
            .output()
            .expect("run docs/cookbook/run-query (needs python3)");
        assert!(
            out.status.success(),
            "{file} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("JSON row"))
            .collect()
    }
}

#[tokio::test]
async fn every_cookbook_query_finds_the_incident() {
    let db = TestDb::new("qalqan_cookbook");
    db.apply().await;
    let store = ClickHouseStore::connect(&db.config).await.expect("connect");
    let sc = scenario::build();
    let mut events = store.events_sink::<()>();
    for row in sc.event_rows() {
        events.push(row, ());
    }
    events.flush().await.expect("events");
    let mut alerts = store.alerts_sink::<()>();
    for row in sc.alert_rows() {
        alerts.push(row, ());
    }
    alerts.flush().await.expect("alerts");

    let cb = Cookbook {
        queries: cookbook().into_iter().collect(),
        facts: sc.facts.clone(),
        db,
        tested: Default::default(),
    };
    let f = &cb.facts;

    // 01: everything the attacker did, in both agencies, oldest first.
    let rows = cb.run("01-ip-activity.sql", &[("ip", &f.attacker)]);
    let total: u64 = f.attacker_events.values().sum();
    assert_eq!(rows.len() as u64, total);
    let agencies: BTreeSet<&str> = rows
        .iter()
        .map(|r| r["agency"].as_str().expect("agency"))
        .collect();
    assert_eq!(
        agencies,
        f.attacker_events.keys().map(String::as_str).collect()
    );
    assert!(rows
        .iter()
        .all(|r| r["role"] == "source" && r["source_address"] == f.attacker.as_str()));
    assert_eq!(
        rows[0]["url_original"], "/wp-login.php",
        "the scan came first"
    );
    assert!(rows[0]["original"].as_str().expect("raw").contains("Nikto"));
    let c2 = cb.run("01-ip-activity.sql", &[("ip", &f.c2)]);
    assert_eq!(c2.len() as u64, f.beacon_connections);
    assert!(c2
        .iter()
        .all(|r| r["role"] == "destination" && r["source_address"] == f.portal_ip.as_str()));

    // 02: per agency, with the alerts that name the address.
    let rows = cb.run("02-ip-summary.sql", &[("ip", &f.attacker)]);
    assert_eq!(rows.len(), 2);
    let egov = rows
        .iter()
        .find(|r| r["agency"] == "egov")
        .expect("egov row");
    assert_eq!(num(&egov["events"]) as u64, f.attacker_events["egov"]);
    assert_eq!(num(&egov["successes"]) as u64, 1, "the break-in");
    assert_eq!(strs(&egov["users"]), f.brute_force_users);
    assert_eq!(
        strs(&egov["alert_titles"]),
        vec![
            "SSH brute force".to_string(),
            "Successful login after brute force".into(),
            "Web vulnerability scanner".into()
        ]
    );
    let mof = rows.iter().find(|r| r["agency"] == "mof").expect("mof row");
    assert_eq!(num(&mof["events"]) as u64, f.attacker_events["mof"]);
    assert!(strs(&mof["alert_titles"]).is_empty());

    // 03: the account the intruder used.
    let rows = cb.run("03-user-activity.sql", &[("user", "deploy")]);
    assert_eq!(rows.len(), 1 + f.rare_commands.len());
    assert_eq!(rows[0]["event_outcome"], "success");
    assert_eq!(rows[0]["source_address"], f.attacker.as_str());
    let cmds: BTreeSet<String> = rows[1..]
        .iter()
        .map(|r| r["process_command_line"].as_str().expect("cmd").to_owned())
        .collect();
    assert_eq!(cmds, f.rare_commands.iter().cloned().collect());

    // 04: one brute force that succeeded, one spraying that did not.
    let rows = cb.run(
        "04-brute-force-and-spraying.sql",
        &[("min_failures", "10"), ("spray_min_users", "10")],
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["source_address"], f.attacker.as_str());
    assert_eq!(rows[0]["pattern"], "brute force");
    assert_eq!(num(&rows[0]["failures"]) as u64, f.brute_force_failures);
    assert_eq!(num(&rows[0]["compromised"]) as u64, 1);
    assert_eq!(strs(&rows[0]["succeeded_as"]), vec!["deploy".to_string()]);
    assert_eq!(rows[1]["source_address"], f.sprayer.as_str());
    assert_eq!(rows[1]["pattern"], "spraying");
    assert_eq!(num(&rows[1]["users"]) as u64, f.spray_users);
    assert_eq!(num(&rows[1]["compromised"]) as u64, 0);

    // 05: new sources on the incident day, per agency.
    let rows = cb.run("05-first-seen-sources.sql", &[("lookback_days", "7")]);
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &rows {
        seen.entry(r["agency"].as_str().expect("agency").to_owned())
            .or_default()
            .push(r["source_address"].as_str().expect("addr").to_owned());
    }
    for v in seen.values_mut() {
        v.sort();
    }
    assert_eq!(seen, f.first_seen);

    // 06: what the intruder ran, and nothing routine.
    let rows = cb.run(
        "06-rare-processes.sql",
        &[("lookback_days", "7"), ("max_runs", "2")],
    );
    let mut cmds: Vec<String> = rows
        .iter()
        .map(|r| r["process_command_line"].as_str().expect("cmd").to_owned())
        .collect();
    cmds.sort();
    assert_eq!(cmds, f.rare_commands);
    assert!(rows
        .iter()
        .all(|r| r["agency"] == "egov" && strs(&r["hosts"]) == vec![scenario::PORTAL.to_string()]));

    // 07: the implant's minute timer, not the irregular DNS traffic.
    let rows = cb.run(
        "07-beaconing.sql",
        &[
            ("min_connections", "10"),
            ("min_interval_s", "10"),
            ("max_jitter", "0.1"),
        ],
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["destination_address"], f.c2.as_str());
    assert_eq!(num(&rows[0]["destination_port"]) as u64, 443);
    assert_eq!(num(&rows[0]["connections"]) as u64, f.beacon_connections);
    assert!((num(&rows[0]["mean_gap_s"]) - f.beacon_interval_s as f64).abs() < 1.0);
    assert!(num(&rows[0]["jitter"]) < 0.05);

    // 08: the incident's alerts in order, the replayed one shown once.
    let rows = cb.run(
        "08-incident-alert-timeline.sql",
        &[("agency", "egov"), ("entity", "")],
    );
    let titles: Vec<String> = rows
        .iter()
        .map(|r| r["rule_title"].as_str().expect("title").to_owned())
        .collect();
    assert_eq!(titles, f.egov_alert_titles);
    assert!(rows.iter().all(|r| r["rule_author"] == "qalqan project"));
    assert!(rows.iter().all(|r| !strs(&r["evidence"]).is_empty()));
    assert_eq!(rows[1]["grouped_by"], format!("source.ip={}", f.attacker));
    let rows = cb.run(
        "08-incident-alert-timeline.sql",
        &[("agency", ""), ("entity", &f.sprayer)],
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["agency"], "mof");

    let all: BTreeSet<String> = cb.queries.keys().cloned().collect();
    assert_eq!(
        *cb.tested.borrow(),
        all,
        "every cookbook query has assertions here"
    );
}
