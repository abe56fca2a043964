//! `--stdin`: replay lines from standard input.
//!
//! Reads newline-framed lines until EOF; the collector then waits until
//! every event is confirmed by Kafka before it exits, so a replay that
//! exits 0 has delivered everything.

use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{Batch, Pipeline, SourceInfo};
use crate::sources::framing::{Framer, Framing};
use crate::sources::stream::MAX_BATCH;

const CHUNK: usize = 256 * 1024;

/// Reads stdin to its end (or `cancel`); returns the number of lines read.
pub async fn run(pipeline: Arc<Pipeline>, max_line: usize, cancel: CancellationToken) -> u64 {
    let source = SourceInfo::new("stdin", "stdin", None);
    let mut stdin = tokio::io::stdin();
    let mut framer = Framer::new(Framing::Newline, max_line);
    let mut out = Vec::new();
    let mut total = 0u64;
    loop {
        let spare = framer.spare(CHUNK);
        let read = tokio::select! {
            _ = cancel.cancelled() => { framer.filled(CHUNK, 0); return total; }
            r = stdin.read(spare) => r,
        };
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                framer.filled(CHUNK, 0);
                tracing::error!("reading stdin: {e}");
                break;
            }
        };
        framer.filled(CHUNK, n);
        if n == 0 {
            break;
        }
        framer.drain_frames(&mut out);
        total += submit(&pipeline, &source, &mut out, &cancel).await;
    }
    framer.finish(&mut out);
    total += submit(&pipeline, &source, &mut out, &cancel).await;
    total
}

async fn submit(
    pipeline: &Arc<Pipeline>,
    source: &Arc<crate::pipeline::SourceInfo>,
    out: &mut Vec<crate::pipeline::RawLine>,
    cancel: &CancellationToken,
) -> u64 {
    let mut n = 0;
    while !out.is_empty() {
        let rest = if out.len() > MAX_BATCH {
            out.split_off(MAX_BATCH)
        } else {
            Vec::new()
        };
        let lines = std::mem::replace(out, rest);
        n += lines.len() as u64;
        let batch = Batch {
            source: source.clone(),
            lines,
            file_path: None,
            peer: None,
            ack: None,
        };
        if let Err(e) = pipeline.process(&batch, cancel).await {
            tracing::error!("stdin batch not accepted: {e}");
        }
    }
    n
}
