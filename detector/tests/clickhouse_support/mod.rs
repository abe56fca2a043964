//! Shared by the `clickhouse_*` integration tests: a throw-away database on
//! the stack's real ClickHouse, the incident scenario, the request capture,
//! and the cookbook runner.

#![allow(dead_code)]

pub mod capture;
pub mod scenario;

use std::path::PathBuf;
use std::time::Duration;

use qalqan_detector::store::migrate;
use qalqan_detector::store::{ClickHouseConfig, DialectChoice};

/// A database of its own on the stack's ClickHouse, dropped afterwards.
pub struct TestDb {
    pub name: String,
    pub config: ClickHouseConfig,
}

impl TestDb {
    pub fn new(prefix: &str) -> TestDb {
        let url = qalqan_testkit::clickhouse_url();
        let name: String = qalqan_testkit::unique(prefix)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let config = ClickHouseConfig {
            url,
            database: name.clone(),
            batch_rows: 1000,
            flush_interval: Duration::from_millis(200),
            max_attempts: 3,
            retry_backoff: Duration::from_millis(50),
            retry_backoff_max: Duration::from_millis(200),
            ..ClickHouseConfig::default()
        };
        TestDb { name, config }
    }

    pub fn client(&self) -> clickhouse::Client {
        self.config.client().expect("client from config")
    }

    /// Runs the real `apply` (the dialect the server calls for).
    pub async fn apply(&self) -> migrate::ApplyReport {
        migrate::apply(
            &self.client(),
            DialectChoice::Auto,
            &self.config.schema_options(),
            false,
        )
        .await
        .expect("schema apply")
    }

    /// Runs SQL with `{db}` replaced by this database; returns the body.
    pub fn query(&self, sql: &str) -> String {
        qalqan_testkit::clickhouse_query(&sql.replace("{db}", &self.name))
    }

    /// Runs SQL and parses `FORMAT JSONEachRow` output.
    pub fn rows(&self, sql: &str) -> Vec<serde_json::Value> {
        let body = self.query(&format!("{sql} FORMAT JSONEachRow"));
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON row {l}: {e}")))
            .collect()
    }

    pub fn count(&self, sql: &str) -> u64 {
        self.query(sql)
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("`{sql}` did not return a number: {e}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ =
            qalqan_testkit::clickhouse_try_query(&format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

/// The cookbook directory.
pub fn cookbook_dir() -> PathBuf {
    qalqan_testkit::workspace_root()
        .join("docs")
        .join("cookbook")
}

/// Every cookbook query: (file name, SQL).
pub fn cookbook() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dir = cookbook_dir();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "sql") {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let sql = std::fs::read_to_string(&path).expect("read cookbook query");
            out.push((name, sql));
        }
    }
    out.sort();
    out
}
