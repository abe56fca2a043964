//! Completion tracking: tells a source when its events are safe.
//!
//! File checkpoints and journald cursors may only advance once every event
//! read before that point is either confirmed by Kafka or durable in the
//! disk buffer. A source hands each batch an [`Ack`]; the pipeline marks each
//! event done as it becomes safe, and the source awaits the matching
//! [`AckWait`] (in order) before it persists its position. If an event is
//! abandoned (its `Ack` dropped before it was marked), the wait resolves to
//! `false` and the position must not move past it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

struct Inner {
    remaining: AtomicUsize,
    done_tx: Mutex<Option<oneshot::Sender<()>>>,
}

/// The pipeline's side: cheap to clone (one per event in flight).
#[derive(Clone)]
pub struct Ack(Arc<Inner>);

/// The source's side: resolves when every event of the batch is safe.
pub struct AckWait(oneshot::Receiver<()>);

impl Ack {
    /// A tracker for `count` events. A batch of 0 events is done at once.
    pub fn new(count: usize) -> (Ack, AckWait) {
        let (tx, rx) = oneshot::channel();
        let ack = Ack(Arc::new(Inner {
            remaining: AtomicUsize::new(count),
            done_tx: Mutex::new(Some(tx)),
        }));
        if count == 0 {
            ack.fire();
        }
        (ack, AckWait(rx))
    }

    /// Marks `n` events safe.
    pub fn done(&self, n: usize) {
        if n == 0 {
            return;
        }
        let before = self.0.remaining.fetch_sub(n, Ordering::AcqRel);
        if before == n {
            self.fire();
        }
    }

    fn fire(&self) {
        let tx = match self.0.done_tx.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
    }
}

impl AckWait {
    /// `true` when every event was marked safe; `false` when some were
    /// abandoned (e.g. the collector is shutting down without Kafka).
    pub async fn wait(self) -> bool {
        self.0.await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_after_all_events() {
        let (ack, wait) = Ack::new(3);
        let a2 = ack.clone();
        ack.done(1);
        a2.done(2);
        assert!(wait.wait().await);
    }

    #[tokio::test]
    async fn abandoned_batch_reports_false() {
        let (ack, wait) = Ack::new(2);
        ack.done(1);
        drop(ack);
        assert!(!wait.wait().await);
    }

    #[tokio::test]
    async fn empty_batch_is_done_at_once() {
        let (_ack, wait) = Ack::new(0);
        assert!(wait.wait().await);
    }
}
