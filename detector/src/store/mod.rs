//! ClickHouse storage: the schema, the rows, and the batched writer.
//!
//! * [`ddl`] — the tables (`events`, `alerts`, 5-minute rollups) in a modern
//!   and a legacy dialect that take the same rows; [`dialect`] picks one.
//! * [`migrate`] — `schema apply`: create or migrate idempotently, TTLs,
//!   and `prune` (retention on servers without TTL).
//! * [`EventRow`] / [`AlertRow`] — the rows, from `qalqan_core` events and alerts.
//! * [`ClickHouseSink`] — batches, inserts with retries, and returns the
//!   acknowledgement tokens (Kafka offsets) only after the server confirmed.
//! * [`ClickHouseConfig`] — the `[clickhouse]` config table.

pub mod alert_row;
pub mod config;
pub mod ddl;
pub mod dialect;
pub mod event_row;
pub mod ip;
pub mod migrate;
pub mod sink;

pub use alert_row::AlertRow;
pub use config::ClickHouseConfig;
pub use dialect::{Dialect, DialectChoice};
pub use event_row::{event_id_for, EventRow};
pub use sink::{BatchPolicy, ClickHouseSink, RetryPolicy, SinkStats, SinkStatsSnapshot};

/// What can go wrong talking to ClickHouse.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A query failed; `context` says which and why it mattered.
    #[error("{context}: {source}")]
    ClickHouse {
        context: String,
        #[source]
        source: clickhouse::error::Error,
    },
    /// A batch could not be inserted within the retry policy. Its rows are
    /// still buffered in the sink.
    #[error("insert of {rows} rows into {table} failed after {attempts} attempts: {source}")]
    Insert {
        table: String,
        rows: usize,
        attempts: u32,
        #[source]
        source: clickhouse::error::Error,
    },
    /// The `[clickhouse]` settings cannot be used.
    #[error("{0}")]
    Config(String),
    /// The schema on the server is missing, newer, or inconsistent.
    #[error("{0}")]
    Schema(String),
}

/// Adds context to a ClickHouse error.
pub(crate) trait ResultExt<T> {
    fn ctx(self, context: &str) -> Result<T, StoreError>;
}

impl<T> ResultExt<T> for Result<T, clickhouse::error::Error> {
    fn ctx(self, context: &str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::ClickHouse {
            context: context.to_owned(),
            source,
        })
    }
}

/// A connection to the configured database whose schema is known to be
/// current: the way the service gets its sinks.
#[derive(Clone)]
pub struct ClickHouseStore {
    client: clickhouse::Client,
    dialect: Dialect,
    config: ClickHouseConfig,
}

impl ClickHouseStore {
    /// Connects and checks the schema version (run `schema apply` first).
    pub async fn connect(config: &ClickHouseConfig) -> Result<ClickHouseStore, StoreError> {
        let mut client = config.client()?;
        let dialect = migrate::ensure_current(&client, &config.database).await?;
        if dialect == Dialect::Modern {
            // A retried insert that the server had stored after all is
            // dropped by `events`/`alerts`; this makes the rollups drop it too.
            client = client.with_setting("deduplicate_blocks_in_dependent_materialized_views", "1");
        }
        tracing::info!(url = %config.url, database = %config.database, %dialect, "ClickHouse schema is current");
        Ok(ClickHouseStore {
            client,
            dialect,
            config: config.clone(),
        })
    }

    pub fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    /// The dialect the database was created with.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// A sink for `events`.
    pub fn events_sink<A>(&self) -> ClickHouseSink<EventRow, A> {
        ClickHouseSink::with_config(self.client.clone(), ddl::EVENTS, &self.config)
    }

    /// A sink for `alerts`.
    pub fn alerts_sink<A>(&self) -> ClickHouseSink<AlertRow, A> {
        ClickHouseSink::with_config(self.client.clone(), ddl::ALERTS, &self.config)
    }
}
