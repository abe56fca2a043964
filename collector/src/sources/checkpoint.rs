//! Persisted read positions that advance only behind confirmed events.
//!
//! A source sends one [`Update`] per batch, in read order, carrying the
//! batch's [`AckWait`]. The checkpointer awaits them in that order and only
//! then records the new position, so a persisted position never runs ahead
//! of what Kafka (or the disk buffer) holds. A batch that was abandoned
//! (shutdown without Kafka) freezes that stream's position: everything from
//! there is read again after a restart (at-least-once).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::ack::AckWait;
use crate::metrics::Metrics;
use crate::state;

/// A message to the checkpointer, in read order.
pub enum Update<K, V> {
    /// Once `wait` resolves, `key` is at `value`.
    Advance { key: K, value: V, wait: AckWait },
    /// Stop tracking `key` (file gone and fully read).
    Forget(K),
}

/// How the positions map is stored on disk.
pub trait Store<K, V>: Send + 'static {
    fn save(&self, map: &BTreeMap<K, V>) -> std::io::Result<()>;
}

/// JSON file written atomically.
pub struct JsonFile<F> {
    pub path: PathBuf,
    pub to_json: F,
}

impl<K, V, F> Store<K, V> for JsonFile<F>
where
    F: Fn(&BTreeMap<K, V>) -> Vec<u8> + Send + 'static,
{
    fn save(&self, map: &BTreeMap<K, V>) -> std::io::Result<()> {
        state::write_atomic(&self.path, &(self.to_json)(map))
    }
}

/// Runs until the sender side is dropped and every pending wait resolved,
/// then saves once more. Saves at most every `every` while busy.
pub async fn run<K, V, S>(
    mut rx: mpsc::UnboundedReceiver<Update<K, V>>,
    mut map: BTreeMap<K, V>,
    store: S,
    every: Duration,
    metrics: Arc<Metrics>,
    label: String,
) where
    K: Ord + Clone + Debug + Send + 'static,
    V: Send + 'static,
    S: Store<K, V>,
{
    let mut stuck: BTreeSet<K> = BTreeSet::new();
    let mut dirty = false;
    let mut last_save = Instant::now();
    let save = |map: &BTreeMap<K, V>| {
        if let Err(e) = store.save(map) {
            metrics.state_write_errors.inc();
            tracing::error!(source = %label, "cannot save the checkpoint: {e}");
            false
        } else {
            true
        }
    };
    loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = tokio::time::sleep(every), if dirty => {
                if save(&map) { dirty = false; last_save = Instant::now(); }
                continue;
            }
        };
        let Some(msg) = msg else { break };
        match msg {
            Update::Advance { key, value, wait } => {
                // Keep saving what is confirmed while this batch is pending.
                let mut pending = std::pin::pin!(wait.wait());
                let ok = loop {
                    tokio::select! {
                        ok = &mut pending => break ok,
                        _ = tokio::time::sleep(every), if dirty => {
                            if save(&map) { dirty = false; last_save = Instant::now(); }
                        }
                    }
                };
                if ok {
                    if !stuck.contains(&key) {
                        map.insert(key, value);
                        dirty = true;
                    }
                } else if stuck.insert(key.clone()) {
                    tracing::warn!(source = %label, ?key, "events not confirmed: position frozen, they will be read again after restart");
                }
            }
            Update::Forget(key) => {
                if !stuck.contains(&key) {
                    map.remove(&key);
                    dirty = true;
                }
            }
        }
        if dirty && last_save.elapsed() >= every && save(&map) {
            dirty = false;
            last_save = Instant::now();
        }
    }
    if dirty {
        save(&map);
    }
}

/// Serializes with serde_json (pretty, for operators who look at it).
pub fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap_or_default()
}

/// Reads a JSON state file; a corrupt one is reported and ignored (the
/// source then starts per `read_from`), never fatal.
pub fn load_json<T: DeserializeOwned + Default>(path: &std::path::Path) -> T {
    match state::read_optional(path) {
        Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(
                    "checkpoint {} is unreadable ({e}); starting without it",
                    path.display()
                );
                T::default()
            }
        },
        Ok(None) => T::default(),
        Err(e) => {
            tracing::error!("cannot read checkpoint {}: {e}", path.display());
            T::default()
        }
    }
}
