//! The fsync thread. Appenders only hand data to the kernel; this thread
//! makes it durable, one fsync for everything written since the last one:
//! under `Always` as soon as there is something to sync (appends wait for
//! it, so concurrent appends share one fsync), under `Interval(d)` every `d`.
//!
//! It runs on its own OS thread because fsync blocks for milliseconds and
//! must not stall the async runtime.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ack_log::sync_dir;
use super::error::BufferError;
use super::format::{segment_path, ACK_LOG_NAME};
use super::{lock, FsyncPolicy, Shared};

/// Under `Always`, how long an ack-log write may wait for its fsync. A lost
/// ack only causes re-delivery, so it need not cost an fsync per ack.
const ACK_SYNC_EVERY: Duration = Duration::from_secs(1);

pub(crate) fn run(shared: Arc<Shared>) {
    let mut last_round = Instant::now();
    loop {
        let exiting = {
            let mut st = lock(&shared.state);
            loop {
                if st.shutdown {
                    break true;
                }
                let data_dirty =
                    st.written != st.synced || st.dir_dirty || !st.unsynced_closed.is_empty();
                let since = last_round.elapsed();
                let (due, wait) = match shared.policy {
                    FsyncPolicy::Always => (
                        data_dirty || (st.ack_dirty && since >= ACK_SYNC_EVERY),
                        ACK_SYNC_EVERY,
                    ),
                    FsyncPolicy::Interval(every) => (
                        (data_dirty || st.ack_dirty) && since >= every,
                        if since >= every { every } else { every - since },
                    ),
                    FsyncPolicy::Never => (false, Duration::from_secs(3600)),
                };
                if due {
                    break false;
                }
                st = match shared.syncer_wake.wait_timeout(st, wait) {
                    Ok((guard, _)) => guard,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
        };
        if let Err(e) = sync_round(&shared) {
            tracing::error!(error = %e, "disk buffer fsync failed; appends are refused until restart");
        }
        last_round = Instant::now();
        if exiting {
            return;
        }
    }
}

/// Makes everything written so far, and the ack log, durable. Used by the
/// thread and by explicit `sync`/`close` calls.
pub(crate) fn sync_round(shared: &Shared) -> Result<(), BufferError> {
    let (target, closed, active, dir_dirty, ack_file) = {
        let mut st = lock(&shared.state);
        let active = (st.written != st.synced).then(|| Arc::clone(&st.active_file));
        let ack_file = std::mem::take(&mut st.ack_dirty).then(|| st.ack_log.file());
        (
            st.written,
            std::mem::take(&mut st.unsynced_closed),
            active,
            std::mem::take(&mut st.dir_dirty),
            ack_file,
        )
    };
    let result = (|| -> Result<(), BufferError> {
        for (first, file) in &closed {
            file.sync_data()
                .map_err(|e| BufferError::io("fsync", segment_path(&shared.dir, *first), e))?;
        }
        if let Some(file) = &active {
            file.sync_data().map_err(|e| {
                BufferError::io("fsync", segment_path(&shared.dir, target.segment), e)
            })?;
        }
        if dir_dirty {
            sync_dir(&shared.dir)?;
        }
        if let Some(file) = &ack_file {
            file.sync_data()
                .map_err(|e| BufferError::io("fsync", shared.dir.join(ACK_LOG_NAME), e))?;
        }
        Ok(())
    })();
    {
        let mut st = lock(&shared.state);
        match &result {
            Ok(()) => {
                if target.next_id > st.synced.next_id {
                    st.synced = target;
                }
                if shared.policy == FsyncPolicy::Always && target.next_id > st.visible.next_id {
                    st.visible = target;
                }
            }
            Err(e) => {
                // After a failed fsync the kernel may have dropped the dirty
                // pages: what is on disk is unknown, so stop taking records.
                if st.failed.is_none() {
                    st.failed = Some(e.to_string());
                }
            }
        }
    }
    shared.synced_cv.notify_all();
    shared.synced_notify.notify_waiters();
    shared.data_notify.notify_waiters();
    result
}
