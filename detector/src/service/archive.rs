//! The archiver: every event and every alert into ClickHouse, in its own
//! consumer group (`<prefix>.archive`) so storage never slows detection.
//!
//! Each batch of messages becomes at most one insert per table; offsets are
//! committed only after ClickHouse confirmed both. While ClickHouse is down
//! the same rows are retried and nothing new is read, so memory stays
//! bounded by one batch.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qalqan_core::Alert;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;

use crate::service::decode::Decoder;
use crate::service::kafka::{consumer_config, next_in_batch, LagReporter, PlainContext, Progress};
use crate::service::Shared;
use crate::store::{AlertRow, ClickHouseSink, ClickHouseStore, EventRow, SinkStats};

/// Runs the archiver until `shared.stop` is set.
pub fn run(shared: Arc<Shared>) -> anyhow::Result<()> {
    let cfg = &shared.config;
    let Some(ch) = cfg.clickhouse.clone() else {
        anyhow::bail!("the archive role needs a [clickhouse] table");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = runtime
        .block_on(ClickHouseStore::connect(&ch))
        .map_err(|e| anyhow::anyhow!("{e} (run `qalqan-detector schema apply` first)"))?;
    let mut events: ClickHouseSink<EventRow, ()> = store.events_sink();
    let mut alerts: ClickHouseSink<AlertRow, ()> = store.alerts_sink();
    let metrics = &shared.metrics;
    let group = format!("{}.archive", cfg.detector.group_prefix);
    let consumer: BaseConsumer<PlainContext> =
        consumer_config(&cfg.kafka, &group, &format!("{}-archive", shared.instance))?
            .create_with_context(PlainContext::new(LagReporter {
                group: group.clone(),
                metrics: Arc::clone(metrics),
            }))
            .map_err(|e| anyhow::anyhow!("cannot create the archive consumer: {e}"))?;
    let alerts_subscription = format!("^{}$", regex::escape(&cfg.topics.alerts));
    consumer
        .subscribe(&[
            cfg.topics.events.as_str(),
            cfg.topics.raw.as_str(),
            alerts_subscription.as_str(),
        ])
        .map_err(|e| anyhow::anyhow!("cannot subscribe the archiver: {e}"))?;
    let decoder = Decoder::new(&cfg.topics, shared.parse_options())?;
    let mut progress = Progress::default();
    let mut exported = (0u64, 0u64, 0u64, 0u64);
    tracing::info!(%group, "archiver started");

    while !shared.stop.load(Ordering::Acquire) {
        let mut deadline: Option<Instant> = None;
        let mut handled = 0usize;
        while handled < ch.batch_rows {
            let Some(msg) = next_in_batch(
                &consumer,
                &mut deadline,
                Duration::from_millis(200),
                ch.flush_interval,
                "archive",
            ) else {
                break;
            };
            let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
            if topic == cfg.topics.alerts {
                match msg
                    .payload()
                    .map(serde_json::from_slice::<Alert>)
                    .transpose()
                {
                    Ok(Some(alert)) => {
                        alerts.push(AlertRow::from_alert(&alert), ());
                    }
                    Ok(None) | Err(_) => {
                        tracing::warn!(%topic, partition, offset, "not an alert; not archived");
                    }
                }
            } else {
                // Stage 1 dead-letters what cannot be decoded; here it is
                // only skipped.
                if let Ok(d) = decoder.decode(topic, partition, offset, msg.payload()) {
                    events.push(EventRow::from_event(&d.event, &d.agency, d.event_id), ());
                }
            }
            progress.handled(topic, partition, offset);
            handled += 1;
        }
        if progress.is_empty() {
            continue;
        }
        // Both tables confirmed, or nothing committed: retry until stored.
        loop {
            let stored = runtime.block_on(async {
                events.flush().await?;
                alerts.flush().await
            });
            match stored {
                Ok(_) => break,
                Err(e) if shared.stop.load(Ordering::Acquire) => {
                    tracing::error!("stopping with rows not stored (they will be read again): {e}");
                    return Ok(());
                }
                Err(e) => {
                    tracing::error!("ClickHouse insert failed, retrying the same rows: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        export_stats(metrics, &events.stats(), &alerts.stats(), &mut exported);
        if let Err(e) = progress.commit(&consumer, |_, _| None) {
            tracing::warn!("archive offset commit failed (rows will be inserted again and collapse by id): {e}");
        }
    }
    tracing::info!("archiver stopped");
    Ok(())
}

/// Turns the sinks' running totals into counter increments.
fn export_stats(
    metrics: &crate::metrics::Metrics,
    events: &SinkStats,
    alerts: &SinkStats,
    exported: &mut (u64, u64, u64, u64),
) {
    let (e, a) = (events.snapshot(), alerts.snapshot());
    let bump = |counter: &prometheus::IntCounter, now: u64, seen: &mut u64| {
        if now > *seen {
            counter.inc_by(now - *seen);
            *seen = now;
        }
    };
    bump(
        &metrics.clickhouse_rows.with_label_values(&["events"]),
        e.rows_inserted,
        &mut exported.0,
    );
    bump(
        &metrics.clickhouse_rows.with_label_values(&["alerts"]),
        a.rows_inserted,
        &mut exported.1,
    );
    bump(
        &metrics.clickhouse_errors.with_label_values(&["events"]),
        e.insert_errors,
        &mut exported.2,
    );
    bump(
        &metrics.clickhouse_errors.with_label_values(&["alerts"]),
        a.insert_errors,
        &mut exported.3,
    );
}
