//! Test support for qalqan: the project's real local stack and the small
//! chores every integration test repeats.
//!
//! Integration tests in this project never mock Kafka, ClickHouse or
//! Prometheus. They call [`kafka_brokers`], [`clickhouse_url`] or
//! [`prometheus_url`], which start the service through
//! `deploy/local/stack up <service>` the first time a test process asks
//! (the script is idempotent and serialises concurrent callers with a file
//! lock on `.work/stack/.lock`, so parallel test binaries start it once) and
//! return its endpoint. Setting `QALQAN_KAFKA_BROKERS`,
//! `QALQAN_CLICKHOUSE_URL` or `QALQAN_PROMETHEUS_URL` points the tests at a
//! server you run yourself; the stack script is then not touched.
//!
//! Everything here panics with a message that says what went wrong and what
//! to do: in a test, a panic *is* the error report.
//!
//! ```no_run
//! let brokers = qalqan_testkit::kafka_brokers();
//! let topic = qalqan_testkit::unique("qalqan.events.test");
//! qalqan_testkit::create_topic(&topic, 3);
//! qalqan_testkit::produce(&brokers, &topic, &[(Some("host-1"), "hello")]);
//! let got = qalqan_testkit::consume_all(&brokers, &topic, 1, std::time::Duration::from_secs(30));
//! assert_eq!(got[0].payload_str(), "hello");
//! ```

pub mod bench;
mod http;
mod kafka;
mod paths;
mod stack;

pub use http::{
    clickhouse_query, clickhouse_try_query, prometheus_query, register_scrape_target, ScrapeTarget,
};
pub use kafka::{consume_all, create_topic, produce, Message};
pub use paths::{cargo_bin, shared_data, unique, workspace_root};
pub use stack::{clickhouse_url, kafka_brokers, prometheus_url, stack, stack_dir, Service};
