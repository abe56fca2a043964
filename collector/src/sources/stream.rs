//! One syslog stream connection (TCP or TLS): read, frame, process.
//!
//! Reading and processing run as separate tasks joined by a small channel,
//! and processing builds several batches at once (see [`crate::ordered`]),
//! so a single busy connection uses every core; when processing falls behind
//! (the buffer is full, Kafka is slow) the channel fills, reading stops and
//! TCP flow control pushes back on the sender.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ordered::process_in_order;
use crate::pipeline::{Batch, Pipeline, RawLine, SourceInfo};
use crate::sources::framing::{Framer, Framing};

const READ_CHUNK: usize = 64 * 1024;
/// Frames per batch at most; a read is split into batches of this size.
pub const MAX_BATCH: usize = 2048;

/// Serves one connection until EOF, error or `cancel`.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    source: Arc<SourceInfo>,
    framing: Framing,
    max_frame: usize,
    pipeline: Arc<Pipeline>,
    cancel: CancellationToken,
) {
    let (tx, rx) = mpsc::channel::<Batch>(4);
    let proc_source = source.clone();
    let processor = tokio::spawn(process_in_order(
        pipeline,
        rx,
        cancel.clone(),
        move |batch, e| {
            tracing::error!(
                source = %proc_source.id,
                %peer,
                lost = batch.lines.len(),
                "events from a stream connection could not be accepted: {e}"
            );
        },
    ));
    let mut framer = Framer::new(framing, max_frame);
    let mut out = Vec::new();
    loop {
        let spare = framer.spare(READ_CHUNK);
        let read = tokio::select! {
            _ = cancel.cancelled() => None,
            r = stream.read(spare) => Some(r),
        };
        let n = match read {
            None => {
                framer.filled(READ_CHUNK, 0);
                break;
            }
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                framer.filled(READ_CHUNK, 0);
                tracing::debug!(source = %source.id, %peer, "connection read error: {e}");
                break;
            }
        };
        framer.filled(READ_CHUNK, n);
        if n == 0 {
            break;
        }
        framer.drain_frames(&mut out);
        if !send_batches(&tx, &mut out, &source, peer).await {
            break;
        }
    }
    // What the peer sent before closing is still delivered.
    framer.finish(&mut out);
    send_batches(&tx, &mut out, &source, peer).await;
    drop(tx);
    let _ = processor.await;
    // Close cleanly (TLS: close_notify), after what was read is accepted.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), stream.shutdown()).await;
}

async fn send_batches(
    tx: &mpsc::Sender<Batch>,
    out: &mut Vec<RawLine>,
    source: &Arc<SourceInfo>,
    peer: SocketAddr,
) -> bool {
    while !out.is_empty() {
        let chunk: Vec<RawLine> = if out.len() > MAX_BATCH {
            let rest = out.split_off(MAX_BATCH);
            std::mem::replace(out, rest)
        } else {
            std::mem::take(out)
        };
        let batch = Batch {
            source: source.clone(),
            lines: chunk,
            file_path: None,
            peer: Some(peer),
            ack: None,
        };
        if tx.send(batch).await.is_err() {
            return false;
        }
    }
    true
}
