//! One syslog stream connection (TCP or TLS): read, frame, process.
//!
//! Reading and processing run as two tasks joined by a small channel, so a
//! single busy connection uses two cores; when processing falls behind (the
//! buffer is full, Kafka is slow) the channel fills, reading stops and TCP
//! flow control pushes back on the sender.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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
    let (tx, mut rx) = mpsc::channel::<Vec<RawLine>>(4);
    let proc_source = source.clone();
    let proc_cancel = cancel.clone();
    let processor = tokio::spawn(async move {
        while let Some(lines) = rx.recv().await {
            let batch = Batch {
                source: proc_source.clone(),
                lines,
                file_path: None,
                peer: Some(peer),
                ack: None,
            };
            if let Err(e) = pipeline.process(&batch, &proc_cancel).await {
                tracing::error!(
                    source = %proc_source.id,
                    %peer,
                    lost = batch.lines.len(),
                    "events from a stream connection could not be accepted: {e}"
                );
            }
        }
    });
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
        if !send_batches(&tx, &mut out).await {
            break;
        }
    }
    // What the peer sent before closing is still delivered.
    framer.finish(&mut out);
    send_batches(&tx, &mut out).await;
    drop(tx);
    let _ = processor.await;
    // Close cleanly (TLS: close_notify), after what was read is accepted.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), stream.shutdown()).await;
}

async fn send_batches(tx: &mpsc::Sender<Vec<RawLine>>, out: &mut Vec<RawLine>) -> bool {
    while !out.is_empty() {
        let chunk: Vec<RawLine> = if out.len() > MAX_BATCH {
            let rest = out.split_off(MAX_BATCH);
            std::mem::replace(out, rest)
        } else {
            std::mem::take(out)
        };
        if tx.send(chunk).await.is_err() {
            return false;
        }
    }
    true
}
