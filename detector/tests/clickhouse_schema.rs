//! `schema apply` against the stack's real ClickHouse (Debian's 18.16):
//! dialect choice, idempotence, the columns the rows need, the CLI, and
//! retention by `prune`.

mod clickhouse_support;

use std::collections::BTreeMap;
use std::process::Command;

use chrono::{Duration, Utc};
use clickhouse_support::TestDb;
use qalqan_core::Event;
use qalqan_detector::store::ddl::{self, Origin};
use qalqan_detector::store::{
    migrate, ClickHouseSink, ClickHouseStore, Dialect, DialectChoice, EventRow,
};

fn server_dialect(db: &TestDb) -> Dialect {
    let version = db.query("SELECT version()");
    Dialect::for_version(version.trim()).expect("server version parses")
}

/// The type part of a declaration: `DateTime('UTC') MATERIALIZED ...` → `DateTime('UTC')`.
fn declared_type(decl: &str) -> &str {
    [" MATERIALIZED ", " ALIAS ", " CODEC("]
        .iter()
        .filter_map(|kw| decl.find(kw))
        .min()
        .map_or(decl, |i| &decl[..i])
}

fn described(db: &TestDb, table: &str) -> BTreeMap<String, String> {
    db.query(&format!("DESCRIBE TABLE {{db}}.{table} FORMAT TSV"))
        .lines()
        .map(|l| {
            let mut cols = l.split('\t');
            let name = cols.next().unwrap_or_default().to_owned();
            let ty = cols.next().unwrap_or_default().replace("\\'", "'");
            (name, ty)
        })
        .collect()
}

#[tokio::test]
async fn apply_creates_the_schema_once_and_again_changes_nothing() {
    let db = TestDb::new("qalqan_schema");
    let dialect = server_dialect(&db);

    let first = db.apply().await;
    assert_eq!(first.dialect, dialect);
    assert_eq!(first.applied, vec![1]);

    let second = db.apply().await;
    assert_eq!(second.dialect, dialect);
    assert!(
        second.applied.is_empty(),
        "second apply re-ran {:?}",
        second.applied
    );
    assert!(second.ttl_changed.is_empty());
    assert_eq!(
        db.count("SELECT count() FROM {db}.schema_migrations"),
        1,
        "one history row per migration"
    );
    let state = migrate::inspect(&db.client(), &db.name)
        .await
        .expect("inspect");
    assert_eq!(state.dialect, Some(dialect));
    assert_eq!(state.applied, vec![1]);

    let tables = db.query(&format!(
        "SELECT name FROM system.tables WHERE database = '{}' ORDER BY name FORMAT TSV",
        db.name
    ));
    let tables: Vec<&str> = tables.lines().collect();
    for t in [
        "alerts",
        "alerts_5m",
        "alerts_5m_mv",
        "events",
        "events_5m",
        "events_5m_mv",
        "schema_migrations",
    ] {
        assert!(tables.contains(&t), "missing table {t}: {tables:?}");
    }

    // Every column of the DDL exists with the declared type of this
    // dialect: what the rows' RowBinary encoding relies on.
    for (table, columns) in [
        ("events", ddl::EVENT_COLUMNS),
        ("alerts", ddl::ALERT_COLUMNS),
    ] {
        let have = described(&db, table);
        for c in columns {
            let decl = match dialect {
                Dialect::Modern => c.modern,
                Dialect::Legacy => c.legacy,
            };
            let want = declared_type(decl);
            assert_eq!(
                have.get(c.name).map(String::as_str),
                Some(want),
                "{table}.{} ({:?})",
                c.name,
                c.origin
            );
        }
        let stored = columns
            .iter()
            .filter(|c| c.origin == Origin::Stored)
            .count();
        assert!(stored > 10, "{table} has its stored columns");
    }
}

#[tokio::test]
async fn a_database_keeps_its_dialect() {
    let db = TestDb::new("qalqan_dialect");
    let created = db.apply().await.dialect;
    let other = match created {
        Dialect::Modern => DialectChoice::Legacy,
        Dialect::Legacy => DialectChoice::Modern,
    };
    let err = migrate::apply(&db.client(), other, &db.config.schema_options(), false)
        .await
        .expect_err("switching dialects is refused");
    assert!(
        err.to_string()
            .contains(&format!("created with the {created} dialect")),
        "{err}"
    );
}

#[tokio::test]
async fn writers_refuse_a_database_without_schema() {
    let db = TestDb::new("qalqan_noschema");
    let err = match ClickHouseStore::connect(&db.config).await {
        Ok(_) => panic!("connect must fail before `schema apply`"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("schema apply"), "{err}");
    db.apply().await;
    let store = ClickHouseStore::connect(&db.config)
        .await
        .expect("connects after apply");
    assert_eq!(store.dialect(), server_dialect(&db));
}

fn detector() -> Command {
    Command::new(env!("CARGO_BIN_EXE_qalqan-detector"))
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run qalqan-detector");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_apply_status_print() {
    let db = TestDb::new("qalqan_cli");
    let url = db.config.url.clone();
    let conn = ["--url", url.as_str(), "--database", db.name.as_str()];

    // A dry run shows the statements and creates nothing.
    let (ok, out, err) = run(detector().args(["schema", "apply", "--print"]).args(conn));
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("CREATE TABLE IF NOT EXISTS {}.events", db.name)),
        "{out}"
    );
    assert!(out.contains("nothing was executed"), "{out}");
    assert_eq!(
        db.count(&format!(
            "SELECT count() FROM system.databases WHERE name = '{}'",
            db.name
        )),
        0
    );

    let (ok, out, err) = run(detector().args(["schema", "status"]).args(conn));
    assert!(!ok, "status of a missing schema fails: {out}{err}");
    assert!(out.contains("not created"), "{out}");

    let (ok, out, err) = run(detector().args(["schema", "apply"]).args(conn));
    assert!(ok, "{err}");
    assert!(out.contains("applied migration 1"), "{out}");
    let (ok, out, err) = run(detector().args(["schema", "apply"]).args(conn));
    assert!(ok, "{err}");
    assert!(out.contains("nothing to do"), "{out}");

    let (ok, out, err) = run(detector().args(["schema", "status"]).args(conn));
    assert!(ok, "{err}");
    assert!(out.contains("version:  1"), "{out}");

    let (ok, out, _) = run(detector().args(["schema", "print", "--dialect", "modern"]));
    assert!(ok);
    assert!(out.contains("DateTime64(6, 'UTC')") && out.contains("TTL time + INTERVAL 90 DAY"));
    let (ok, out, _) = run(detector().args(["schema", "print", "--dialect", "legacy"]));
    assert!(ok);
    assert!(out.contains("source_ip FixedString(16)") && !out.contains("TTL"));

    let (ok, _, err) = run(detector().args(["schema", "apply", "--url", "localhost:9000"]));
    assert!(!ok);
    assert!(err.contains("clickhouse.url"), "{err}");
}

fn event_at(t: chrono::DateTime<Utc>, n: usize) -> EventRow {
    let mut ev = Event::new(format!("line {n}"), t);
    ev.timestamp = t;
    EventRow::from_event(&ev, "mof", format!("ev-{n}"))
}

#[tokio::test]
async fn prune_drops_partitions_older_than_the_retention() {
    let mut db = TestDb::new("qalqan_prune");
    db.config.ttl_days = 30;
    db.config.alerts_ttl_days = 60;
    db.apply().await;

    let now = Utc::now();
    let mut sink: ClickHouseSink<EventRow, ()> =
        ClickHouseSink::with_config(db.client(), "events", &db.config);
    for (i, age_days) in [200i64, 45, 10, 0].iter().enumerate() {
        sink.push(event_at(now - Duration::days(*age_days), i), ());
    }
    sink.flush().await.expect("insert");

    let today = now.date_naive();
    let opts = db.config.schema_options();
    let planned = migrate::prune(&db.client(), &opts, today, true)
        .await
        .expect("dry run");
    // events keep 30 days: the 200- and 45-day-old partitions go; the
    // rollups keep 60 days: only the 200-day-old bucket's month goes.
    let events_dropped: Vec<_> = planned.iter().filter(|p| p.table == "events").collect();
    assert_eq!(events_dropped.len(), 2, "{planned:?}");
    assert!(
        planned.iter().any(|p| p.table == "events_5m"),
        "{planned:?}"
    );
    assert_eq!(
        db.count("SELECT count() FROM {db}.events"),
        4,
        "dry run drops nothing"
    );

    migrate::prune(&db.client(), &opts, today, false)
        .await
        .expect("prune");
    assert_eq!(db.count("SELECT count() FROM {db}.events"), 2);
    let left = db.query("SELECT original FROM {db}.events ORDER BY time FORMAT TSV");
    assert_eq!(left.lines().collect::<Vec<_>>(), vec!["line 2", "line 3"]);
}
