//! The router: where a parsed batch goes on its way to Kafka.
//!
//! * `write_ahead` — every batch is appended to the disk buffer (group
//!   commit); the batch is safe once the append returns. A drain task reads
//!   the buffer in order, sends to Kafka, and frees records once Kafka has
//!   confirmed them (contiguously, so a restart re-sends at most the
//!   in-flight window).
//! * `overflow` — batches go straight to the producer while Kafka keeps up.
//!   When Kafka stalls (nothing confirmed for `overflow_after`) or the
//!   in-flight window is full, batches spill to the disk buffer; once the
//!   buffer is drained the router goes direct again. Order is kept: while
//!   anything waits on disk, new batches queue behind it.
//! * `off` — straight to the producer; sources wait when the window is full.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ack::Ack;
use crate::buffer::DiskBuffer;
use crate::config::BufferMode;
use crate::metrics::Metrics;
use crate::sink::{KafkaSink, Origin, Record, RecordRef, Returned, Token};

/// Why a batch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The disk buffer is full and the source cannot wait (UDP): this
    /// many events of the batch were not kept.
    #[error("disk buffer full ({0} events not kept)")]
    BufferFull(usize),
    #[error("disk buffer: {0}")]
    Buffer(String),
}

/// Buffer records sent to Kafka and not yet confirmed, so the buffer is only
/// told "delivered up to N" once everything up to N is confirmed.
#[derive(Default)]
pub struct Tracker {
    outstanding: BTreeSet<u64>,
    highest: Option<u64>,
}

impl Tracker {
    pub fn produced(&mut self, id: u64) {
        self.outstanding.insert(id);
        self.highest = Some(self.highest.map_or(id, |h| h.max(id)));
    }

    pub fn confirmed(&mut self, id: u64) {
        self.outstanding.remove(&id);
    }

    /// The highest id such that it and every id before it were confirmed.
    pub fn ack_point(&self) -> Option<u64> {
        match self.outstanding.first() {
            Some(&first) => first.checked_sub(1),
            None => self.highest,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.outstanding.is_empty()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How the router uses the buffer (from `[buffer]`).
#[derive(Debug, Clone, Copy)]
pub struct RouterSettings {
    pub mode: BufferMode,
    /// Overflow mode: spill once Kafka confirmed nothing for this long.
    pub overflow_after: Duration,
    /// Bytes per buffer append (big batches are split).
    pub append_budget: usize,
}

/// Routes batches to the buffer or the sink, per [`BufferMode`].
pub struct Router {
    mode: BufferMode,
    sink: Arc<KafkaSink>,
    buffer: Option<DiskBuffer>,
    overflow_after: Duration,
    spilling: Mutex<bool>,
    /// Records appended (or about to be) and not yet handed to the producer.
    pending_in_buffer: AtomicI64,
    tracker: Arc<Mutex<Tracker>>,
    metrics: Arc<Metrics>,
    /// Set when the collector stops: appends stop retrying.
    stop: CancellationToken,
    /// Bytes per buffer append (big batches are split).
    append_budget: usize,
}

impl Router {
    /// `buffer` must be `Some` unless `settings.mode` is `off`; `tracker` is
    /// the one the sink reports confirmed buffer records to.
    pub fn new(
        settings: RouterSettings,
        sink: Arc<KafkaSink>,
        buffer: Option<DiskBuffer>,
        tracker: Arc<Mutex<Tracker>>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Arc<Router> {
        let RouterSettings {
            mode,
            overflow_after,
            append_budget,
        } = settings;
        let backlog = buffer
            .as_ref()
            .map(|b| crate::disk::stats(b).1 as i64)
            .unwrap_or(0);
        Arc::new(Router {
            mode,
            sink,
            buffer,
            overflow_after,
            spilling: Mutex::new(backlog > 0),
            pending_in_buffer: AtomicI64::new(backlog),
            tracker,
            metrics,
            stop,
            append_budget,
        })
    }

    pub fn mode(&self) -> BufferMode {
        self.mode
    }

    pub fn sink(&self) -> &Arc<KafkaSink> {
        &self.sink
    }

    /// Routes one batch. `may_wait`: the source can be held back (TCP, file,
    /// journald, stdin); UDP cannot and gets [`RouteError::BufferFull`].
    pub async fn route(
        &self,
        records: &[Record],
        ack: Option<Ack>,
        may_wait: bool,
    ) -> Result<(), RouteError> {
        if records.is_empty() {
            return Ok(());
        }
        match self.mode {
            BufferMode::WriteAhead => {
                self.pending_in_buffer
                    .fetch_add(records.len() as i64, Ordering::AcqRel);
                self.append(records, ack, may_wait).await
            }
            BufferMode::Off => {
                self.sink.wait_for_room(records.len()).await;
                for r in records {
                    self.sink
                        .send(
                            r.as_ref(),
                            Box::new(Token {
                                origin: Origin::Direct(ack.clone()),
                            }),
                        )
                        .await;
                }
                Ok(())
            }
            BufferMode::Overflow => self.route_overflow(records, ack, may_wait).await,
        }
    }

    async fn route_overflow(
        &self,
        records: &[Record],
        ack: Option<Ack>,
        may_wait: bool,
    ) -> Result<(), RouteError> {
        let n = records.len();
        let spill = {
            let mut spilling = lock(&self.spilling);
            if !*spilling && (self.sink.stalled(self.overflow_after) || !self.sink.has_room(n)) {
                *spilling = true;
                tracing::warn!(
                    in_flight = self.sink.in_flight(),
                    "Kafka is not keeping up: spilling events to the disk buffer"
                );
            }
            if *spilling {
                self.pending_in_buffer.fetch_add(n as i64, Ordering::AcqRel);
            }
            *spilling
        };
        if spill {
            self.metrics.events_spilled.inc_by(n as u64);
            return self.append(records, ack, may_wait).await;
        }
        for (i, r) in records.iter().enumerate() {
            let token = Box::new(Token {
                origin: Origin::Direct(ack.clone()),
            });
            if self.sink.try_send(r, token).is_err() {
                // librdkafka's queue is full: the rest of the batch spills,
                // behind what was sent, so order is kept.
                let rest = &records[i..];
                {
                    let mut spilling = lock(&self.spilling);
                    *spilling = true;
                    self.pending_in_buffer
                        .fetch_add(rest.len() as i64, Ordering::AcqRel);
                }
                self.metrics.events_spilled.inc_by(rest.len() as u64);
                return self.append(rest, ack, may_wait).await;
            }
        }
        Ok(())
    }

    async fn append(
        &self,
        records: &[Record],
        ack: Option<Ack>,
        may_wait: bool,
    ) -> Result<(), RouteError> {
        let Some(buffer) = &self.buffer else {
            self.pending_in_buffer
                .fetch_sub(records.len() as i64, Ordering::AcqRel);
            return Err(RouteError::Buffer("no disk buffer configured".into()));
        };
        // One append must fit in a buffer segment: split big batches into
        // groups, appended in order.
        let mut start = 0;
        while start < records.len() {
            let mut end = start;
            let mut bytes = 0usize;
            while end < records.len() {
                let len = records[end].key.len() + records[end].payload.len() + 64;
                if end > start && bytes + len > self.append_budget {
                    break;
                }
                bytes += len;
                end += 1;
            }
            if let Err(e) = self
                .append_group(buffer, &records[start..end], may_wait)
                .await
            {
                self.pending_in_buffer
                    .fetch_sub((records.len() - start) as i64, Ordering::AcqRel);
                return Err(match e {
                    RouteError::BufferFull(_) => RouteError::BufferFull(records.len() - start),
                    other => other,
                });
            }
            if let Some(ack) = &ack {
                ack.done(end - start);
            }
            start = end;
        }
        Ok(())
    }

    async fn append_group(
        &self,
        buffer: &DiskBuffer,
        records: &[Record],
        may_wait: bool,
    ) -> Result<(), RouteError> {
        let encoded: Vec<Vec<u8>> = records.iter().map(Record::encode).collect();
        let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        loop {
            let res = if may_wait {
                buffer.append(&refs).await
            } else {
                buffer.try_append(&refs)
            };
            match res {
                Ok(_) => return Ok(()),
                Err(e) if crate::disk::is_full(&e) => {
                    return Err(RouteError::BufferFull(records.len()))
                }
                Err(e) if crate::disk::is_permanent(&e) => {
                    tracing::error!(events = records.len(), "events cannot be buffered: {e}");
                    return Err(RouteError::Buffer(e.to_string()));
                }
                Err(e) => {
                    if !may_wait || self.stop.is_cancelled() {
                        return Err(RouteError::Buffer(e.to_string()));
                    }
                    // A sick disk: hold the source back and try again.
                    tracing::error!("disk buffer append failed, retrying in 1s: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Everything accepted so far has been confirmed by Kafka.
    pub fn is_idle(&self) -> bool {
        self.pending_in_buffer.load(Ordering::Acquire) <= 0
            && self.sink.in_flight() == 0
            && lock(&self.tracker).is_empty()
    }

    /// Waits until [`Router::is_idle`] (stdin replays exit after that).
    pub async fn wait_idle(&self, cancel: &CancellationToken) {
        while !self.is_idle() && !cancel.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reads the disk buffer in order and sends it to Kafka, until `cancel`.
    pub async fn run_drain(self: Arc<Self>, cancel: CancellationToken) {
        let Some(buffer) = self.buffer.clone() else {
            return;
        };
        loop {
            let batch = tokio::select! {
                _ = cancel.cancelled() => return,
                b = buffer.read_batch(1024) => b,
            };
            // Room for the whole batch first, and all its ids marked as
            // produced under one lock: an id marked and not yet sent (the
            // collector stopping mid-batch) is simply never acknowledged,
            // so it is sent again after a restart.
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.sink.wait_for_room(batch.len()) => {}
            }
            {
                let mut tracker = lock(&self.tracker);
                for (id, _) in &batch {
                    tracker.produced(*id);
                }
            }
            for (id, bytes) in &batch {
                if cancel.is_cancelled() {
                    return;
                }
                // Sent straight from the read buffer: the producer copies it.
                match RecordRef::decode(bytes) {
                    Some(record) => {
                        self.sink
                            .send(
                                record,
                                Box::new(Token {
                                    origin: Origin::Buffered(*id),
                                }),
                            )
                            .await
                    }
                    None => {
                        tracing::error!(
                            id,
                            len = bytes.len(),
                            "disk buffer record is not a collector record; skipped"
                        );
                        lock(&self.tracker).confirmed(*id);
                    }
                }
                self.pending_in_buffer.fetch_sub(1, Ordering::AcqRel);
            }
            if self.mode == BufferMode::Overflow {
                let mut spilling = lock(&self.spilling);
                if *spilling
                    && self.pending_in_buffer.load(Ordering::Acquire) <= 0
                    && !self.sink.stalled(self.overflow_after)
                {
                    *spilling = false;
                    tracing::info!("disk buffer drained: sending directly to Kafka again");
                }
            }
        }
    }

    /// Tells the buffer what Kafka confirmed, and refreshes the buffer and
    /// age metrics, every `every` until `cancel` (then once more).
    pub async fn run_acker(self: Arc<Self>, every: Duration, cancel: CancellationToken) {
        let mut last_acked: Option<u64> = None;
        loop {
            let stop = tokio::select! {
                _ = cancel.cancelled() => true,
                _ = tokio::time::sleep(every) => false,
            };
            last_acked = self.ack_confirmed(last_acked);
            if stop {
                return;
            }
        }
    }

    fn ack_confirmed(&self, last_acked: Option<u64>) -> Option<u64> {
        let mut oldest = self.sink.unconfirmed_for();
        let mut acked = last_acked;
        if let Some(buffer) = &self.buffer {
            let point = lock(&self.tracker).ack_point();
            if let Some(p) = point {
                if last_acked.is_none_or(|l| p > l) {
                    match buffer.ack(p) {
                        Ok(()) => acked = Some(p),
                        Err(e) => tracing::error!("disk buffer ack {p}: {e}"),
                    }
                }
            }
            let (bytes, records, age) = crate::disk::stats(buffer);
            self.metrics.buffer_bytes.set(bytes as i64);
            self.metrics.buffer_events.set(records as i64);
            oldest = oldest.max(age);
        }
        self.metrics.oldest_unsent_seconds.set(oldest.as_secs_f64());
        acked
    }

    /// Final ack to the buffer (after the sink is flushed/purged).
    pub fn final_ack(&self) {
        self.ack_confirmed(None);
    }

    /// Keeps events the producer gave back at shutdown: direct events go to
    /// the disk buffer when there is one (and are then safe); events read
    /// from the buffer stay there unacknowledged and are sent after restart.
    /// Returns how many direct events could not be kept.
    pub async fn keep_returned(&self, returned: Vec<Returned>) -> usize {
        let mut direct: Vec<(Record, Option<Ack>)> = Vec::new();
        for r in returned {
            if let Origin::Direct(ack) = r.token.origin {
                direct.push((r.record, ack));
            }
        }
        if direct.is_empty() {
            return 0;
        }
        let Some(buffer) = &self.buffer else {
            return direct.len();
        };
        let mut lost = 0;
        let mut kept = 0;
        let mut i = 0;
        while i < direct.len() {
            let mut end = i;
            let mut bytes = 0;
            while end < direct.len() {
                let len = direct[end].0.key.len() + direct[end].0.payload.len() + 64;
                if end > i && bytes + len > self.append_budget {
                    break;
                }
                bytes += len;
                end += 1;
            }
            let encoded: Vec<Vec<u8>> = direct[i..end].iter().map(|(r, _)| r.encode()).collect();
            let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
            match buffer.try_append(&refs) {
                Ok(_) => {
                    for (_, ack) in &direct[i..end] {
                        if let Some(a) = ack {
                            a.done(1);
                        }
                    }
                    kept += end - i;
                }
                Err(e) => {
                    tracing::error!(
                        "cannot keep {} unsent events in the disk buffer: {e}",
                        end - i
                    );
                    lost += end - i;
                }
            }
            i = end;
        }
        if kept > 0 {
            tracing::info!(events = kept, "kept unsent events in the disk buffer");
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_acks_only_contiguous_confirmations() {
        let mut t = Tracker::default();
        assert_eq!(t.ack_point(), None);
        for id in 10..15 {
            t.produced(id);
        }
        assert_eq!(t.ack_point(), Some(9));
        t.confirmed(12);
        t.confirmed(11);
        assert_eq!(t.ack_point(), Some(9));
        t.confirmed(10);
        assert_eq!(t.ack_point(), Some(12));
        t.confirmed(13);
        t.confirmed(14);
        assert_eq!(t.ack_point(), Some(14));
        assert!(t.is_empty());
    }
}
