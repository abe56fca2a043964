//! The batched, retrying writer of one table.
//!
//! Rows arrive with an acknowledgement token (for the detector: the Kafka
//! partition and offset they came from). A flush inserts the whole batch in
//! one `INSERT`, retrying the *same* rows with backoff until the server
//! confirms, and only then hands the tokens back: the caller commits its
//! Kafka offsets after that, so a crash at any point means redelivery, never
//! loss. Redelivered rows collapse: `alerts` and `events` are
//! ReplacingMergeTree tables keyed by deterministic ids, and modern servers
//! also drop an identical re-sent insert (`non_replicated_deduplication_window`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clickhouse::{Client, RowOwned, RowWrite};
use tokio::time::Instant;

use super::{ClickHouseConfig, StoreError};

/// When a batch is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Flush when this many rows are buffered.
    pub max_rows: usize,
    /// Flush when the oldest buffered row has waited this long.
    pub max_age: Duration,
}

/// How failed inserts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per batch; 0 = until the server accepts.
    pub max_attempts: u32,
    /// First wait; doubles per attempt ...
    pub backoff: Duration,
    /// ... up to this.
    pub backoff_max: Duration,
    /// Limit of one attempt (sending and the server's work).
    pub timeout: Duration,
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempts count from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(self.backoff_max)
    }
}

/// Counters of one sink, shared with whoever exports metrics
/// (`qalqan_detector_clickhouse_*`). Plain atomics, read with [`SinkStats::snapshot`].
#[derive(Debug, Default)]
pub struct SinkStats {
    rows_inserted: AtomicU64,
    batches_inserted: AtomicU64,
    insert_errors: AtomicU64,
    retries: AtomicU64,
    buffered_rows: AtomicU64,
}

/// A point-in-time copy of [`SinkStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStatsSnapshot {
    /// Rows the server confirmed.
    pub rows_inserted: u64,
    /// Inserts the server confirmed.
    pub batches_inserted: u64,
    /// Failed insert attempts (each retry that fails counts).
    pub insert_errors: u64,
    /// Attempts after the first, over all batches.
    pub retries: u64,
    /// Rows waiting in the buffer now (a gauge).
    pub buffered_rows: u64,
}

impl SinkStats {
    pub fn snapshot(&self) -> SinkStatsSnapshot {
        SinkStatsSnapshot {
            rows_inserted: self.rows_inserted.load(Ordering::Relaxed),
            batches_inserted: self.batches_inserted.load(Ordering::Relaxed),
            insert_errors: self.insert_errors.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            buffered_rows: self.buffered_rows.load(Ordering::Relaxed),
        }
    }
}

/// Batched writer of rows `R` into one table, handing back acknowledgement
/// tokens `A` once their rows are stored.
///
/// Drive it from the consumer loop: [`push`](Self::push) or
/// [`write`](Self::write) each row, and call
/// [`flush_if_due`](Self::flush_if_due) when [`deadline`](Self::deadline)
/// passes; commit the tokens each flush returns.
pub struct ClickHouseSink<R, A = ()> {
    client: Client,
    table: String,
    batch: BatchPolicy,
    retry: RetryPolicy,
    rows: Vec<R>,
    acks: Vec<A>,
    oldest: Option<Instant>,
    stats: Arc<SinkStats>,
}

impl<R, A> ClickHouseSink<R, A>
where
    R: RowOwned + RowWrite,
{
    pub fn new(client: Client, table: &str, batch: BatchPolicy, retry: RetryPolicy) -> Self {
        ClickHouseSink {
            client,
            table: table.to_owned(),
            batch,
            retry,
            rows: Vec::with_capacity(batch.max_rows.min(100_000)),
            acks: Vec::with_capacity(batch.max_rows.min(100_000)),
            oldest: None,
            stats: Arc::new(SinkStats::default()),
        }
    }

    /// A sink with the batching and retry settings of `[clickhouse]`.
    pub fn with_config(client: Client, table: &str, cfg: &ClickHouseConfig) -> Self {
        Self::new(
            client,
            table,
            BatchPolicy {
                max_rows: cfg.batch_rows,
                max_age: cfg.flush_interval,
            },
            RetryPolicy {
                max_attempts: cfg.max_attempts,
                backoff: cfg.retry_backoff,
                backoff_max: cfg.retry_backoff_max,
                timeout: cfg.insert_timeout,
            },
        )
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The counters, to export as metrics.
    pub fn stats(&self) -> Arc<SinkStats> {
        Arc::clone(&self.stats)
    }

    /// Rows buffered, not yet confirmed.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Buffers a row; true when the batch is full and should be flushed.
    pub fn push(&mut self, row: R, ack: A) -> bool {
        if self.oldest.is_none() {
            self.oldest = Some(Instant::now());
        }
        self.rows.push(row);
        self.acks.push(ack);
        self.stats
            .buffered_rows
            .store(self.rows.len() as u64, Ordering::Relaxed);
        self.rows.len() >= self.batch.max_rows
    }

    /// Buffers a row and flushes when the batch is full. Returns the tokens
    /// of the rows stored by that flush (usually none).
    pub async fn write(&mut self, row: R, ack: A) -> Result<Vec<A>, StoreError> {
        if self.push(row, ack) {
            self.flush().await
        } else {
            Ok(Vec::new())
        }
    }

    /// When the buffered rows must be flushed at the latest; `None` when empty.
    pub fn deadline(&self) -> Option<Instant> {
        self.oldest.map(|t| t + self.batch.max_age)
    }

    /// Whether the batch is full or its oldest row has waited long enough.
    pub fn is_due(&self) -> bool {
        self.rows.len() >= self.batch.max_rows
            || self.deadline().is_some_and(|d| d <= Instant::now())
    }

    /// Flushes if [`is_due`](Self::is_due).
    pub async fn flush_if_due(&mut self) -> Result<Vec<A>, StoreError> {
        if self.is_due() {
            self.flush().await
        } else {
            Ok(Vec::new())
        }
    }

    /// Inserts every buffered row, retrying per the policy, and returns their
    /// tokens once the server confirmed. On error the rows stay buffered:
    /// nothing is lost, and a later flush tries them again. Cancel-safe:
    /// dropping the future (e.g. on shutdown) also keeps the rows.
    pub async fn flush(&mut self) -> Result<Vec<A>, StoreError> {
        if self.rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut attempt = 1u32;
        loop {
            match self.insert_once().await {
                Ok(()) => break,
                Err(e) => {
                    self.stats.insert_errors.fetch_add(1, Ordering::Relaxed);
                    let give_up =
                        self.retry.max_attempts != 0 && attempt >= self.retry.max_attempts;
                    if give_up {
                        tracing::error!(table = %self.table, rows = self.rows.len(), attempt, error = %e, "insert failed; giving up for now, rows stay buffered");
                        return Err(StoreError::Insert {
                            table: self.table.clone(),
                            rows: self.rows.len(),
                            attempts: attempt,
                            source: e,
                        });
                    }
                    let delay = self.retry.delay(attempt);
                    tracing::warn!(table = %self.table, rows = self.rows.len(), attempt, retry_in_ms = delay.as_millis() as u64, error = %e, "insert failed; retrying the same batch");
                    tokio::time::sleep(delay).await;
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    attempt += 1;
                }
            }
        }
        let n = self.rows.len();
        self.rows.clear();
        self.oldest = None;
        self.stats
            .rows_inserted
            .fetch_add(n as u64, Ordering::Relaxed);
        self.stats.batches_inserted.fetch_add(1, Ordering::Relaxed);
        self.stats.buffered_rows.store(0, Ordering::Relaxed);
        tracing::debug!(table = %self.table, rows = n, attempts = attempt, "batch stored");
        Ok(std::mem::take(&mut self.acks))
    }

    async fn insert_once(&self) -> Result<(), clickhouse::error::Error> {
        let timeout = Some(self.retry.timeout);
        let mut insert = self
            .client
            .insert::<R>(&self.table)
            .await?
            .with_timeouts(timeout, timeout);
        for row in &self.rows {
            insert.write(row).await?;
        }
        insert.end().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 0,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(200));
        assert_eq!(p.delay(4), Duration::from_millis(800));
        assert_eq!(p.delay(5), Duration::from_secs(1));
        assert_eq!(p.delay(200), Duration::from_secs(1));
    }
}
