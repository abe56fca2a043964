//! One busy source's batches built on several cores, routed in order.
//!
//! A single syslog relay connection can carry a whole agency's traffic.
//! Parsing and serializing it on one task would cap the collector at one
//! core while the others idle. Here batches are numbered (sequence numbers)
//! in the order they were read, built on the blocking pool — at most one
//! batch per core over all sources, through the pipeline's build slots — and
//! routed strictly in read order, so per-connection order, sequence order
//! and back-pressure are exactly those of processing one batch at a time.
//! A batch is built inline when handing it to another thread would not pay:
//! when it is small (a trickling connection) or when nothing else waits
//! behind it (the connection is not busy enough to need a second core; the
//! batch then stays in this core's cache).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{Batch, Pipeline, ProcessError};
use crate::sink::Record;

/// Batches with fewer lines are built on the receiving task.
const INLINE_BELOW: usize = 64;

/// A batch on its way to the router, in read order.
enum Job {
    Built(Batch, Vec<Record>),
    Building(JoinHandle<(Batch, Vec<Record>)>),
}

/// Processes every batch `batches` yields, building up to one per core of
/// them at once, and returns once all are routed (or refused). `on_error` hears
/// of every batch that could not be accepted, with the reason.
pub async fn process_in_order(
    pipeline: Arc<Pipeline>,
    mut batches: mpsc::Receiver<Batch>,
    cancel: CancellationToken,
    on_error: impl Fn(&Batch, &ProcessError) + Send + 'static,
) {
    let (jobs_tx, mut jobs_rx) = mpsc::channel::<Job>(pipeline.cores().max(1));
    let router_side = pipeline.clone();
    let router_task = tokio::spawn(async move {
        while let Some(job) = jobs_rx.recv().await {
            let (batch, records) = match job {
                Job::Built(b, r) => (b, r),
                Job::Building(handle) => match handle.await {
                    Ok(done) => done,
                    Err(e) => {
                        // Only a bug (a panic while building) gets here.
                        tracing::error!("building a batch failed: {e}");
                        continue;
                    }
                },
            };
            if let Err(e) = router_side.route_built(&records, &batch).await {
                on_error(&batch, &e);
            }
        }
    });
    while let Some(batch) = batches.recv().await {
        let first = match pipeline.number(&batch, &cancel).await {
            Ok(first) => first,
            Err(e) => {
                tracing::error!(
                    source = %batch.source.id,
                    lost = batch.lines.len(),
                    "events could not be numbered: {e}"
                );
                continue;
            }
        };
        let job = if batch.lines.len() < INLINE_BELOW || batches.is_empty() {
            let records = pipeline.build_numbered(&batch, first);
            pipeline
                .metrics()
                .batches_built
                .with_label_values(&["inline"])
                .inc();
            Job::Built(batch, records)
        } else {
            pipeline
                .metrics()
                .batches_built
                .with_label_values(&["pool"])
                .inc();
            let Ok(slot) = pipeline.build_slots().clone().acquire_owned().await else {
                break; // closed: never happens, the pipeline owns it
            };
            let builder = pipeline.clone();
            Job::Building(tokio::task::spawn_blocking(move || {
                let records = builder.build_numbered(&batch, first);
                drop(slot);
                (batch, records)
            }))
        };
        if jobs_tx.send(job).await.is_err() {
            break;
        }
    }
    drop(jobs_tx);
    let _ = router_task.await;
}
