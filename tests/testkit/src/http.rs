//! ClickHouse and Prometheus over HTTP, the way an operator's curl would.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use ureq::Agent;

use crate::paths::unique;
use crate::stack::{clickhouse_url, prometheus_url, stack_dir};

const HTTP_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_BODY: u64 = 256 * 1024 * 1024;

/// An agent that returns 4xx/5xx answers as responses: ClickHouse puts the
/// reason for a failed query in the body, and the test should see it.
fn agent() -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(HTTP_TIMEOUT))
        .build()
        .into()
}

fn read_body(response: &mut ureq::http::Response<ureq::Body>) -> Result<String, String> {
    response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()
        .map_err(|e| format!("reading the response failed: {e}"))
}

/// Run `sql` on the local ClickHouse (HTTP interface, user `default`) and
/// return the response body, or the server's error text.
pub fn clickhouse_try_query(sql: &str) -> Result<String, String> {
    let url = clickhouse_url();
    let mut response = agent()
        .post(format!("{url}/"))
        .send(sql)
        .map_err(|e| format!("ClickHouse at {url} did not answer: {e}"))?;
    let body = read_body(&mut response)?;
    if response.status().is_success() {
        Ok(body)
    } else {
        Err(format!(
            "ClickHouse answered HTTP {}: {}",
            response.status(),
            body.trim()
        ))
    }
}

/// Run `sql` on the local ClickHouse and return the response body (append
/// `FORMAT JSONEachRow` or similar to choose its shape); panics with the
/// query and the server's error when it fails.
pub fn clickhouse_query(sql: &str) -> String {
    clickhouse_try_query(sql).unwrap_or_else(|e| panic!("query failed: {sql}\n{e}"))
}

/// Evaluate an instant PromQL query on the local Prometheus and return the
/// `data` object of the answer (`resultType` and `result`); panics when the
/// query is rejected.
pub fn prometheus_query(promql: &str) -> serde_json::Value {
    let url = prometheus_url();
    let mut response = agent()
        .get(format!("{url}/api/v1/query"))
        .query("query", promql)
        .call()
        .unwrap_or_else(|e| panic!("Prometheus at {url} did not answer: {e}"));
    let body = read_body(&mut response).unwrap_or_else(|e| panic!("{e}"));
    let answer: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("Prometheus answered with non-JSON ({e}): {body}"));
    if answer["status"] != "success" {
        panic!("Prometheus rejected `{promql}`: {body}");
    }
    answer["data"].clone()
}

/// A scrape target registered with the local Prometheus; removed on drop.
#[derive(Debug)]
pub struct ScrapeTarget {
    file: PathBuf,
    /// The value of the `qalqan_test` label on the scraped series.
    pub label: String,
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.file);
    }
}

/// Have the local Prometheus scrape `address` (`host:port`, path `/metrics`)
/// under job `qalqan-dynamic`, with label `qalqan_test` set to a unique name
/// derived from `name`. Prometheus picks the file up within about 5 s and
/// scrapes every 5 s.
pub fn register_scrape_target(name: &str, address: &str) -> ScrapeTarget {
    prometheus_url();
    let dir = stack_dir().join("prometheus").join("targets");
    let label = unique(name);
    let file = dir.join(format!("{label}.json"));
    let body = serde_json::json!([{ "targets": [address], "labels": { "qalqan_test": label } }]);
    let tmp = file.with_extension("tmp");
    fs::create_dir_all(&dir)
        .and_then(|()| fs::write(&tmp, body.to_string()))
        .and_then(|()| fs::rename(&tmp, &file))
        .unwrap_or_else(|e| panic!("cannot write scrape target {}: {e}", file.display()));
    ScrapeTarget { file, label }
}
