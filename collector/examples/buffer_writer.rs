//! Appends records to a disk buffer as fast as it can and prints the id of
//! every record whose append returned `Ok`, one line per append:
//! `acked <last_id>`. Used by the SIGKILL test (which kills it mid-stream and
//! checks every printed id survived), and handy for poking at a buffer
//! directory by hand.
//!
//! ```text
//! cargo run -p qalqan-collector --example buffer_writer -- DIR [always|interval|never] [RECORDS]
//! ```
//!
//! Each payload is `id-<n>` padded to about 250 bytes, where `<n>` is the id
//! the record is expected to get, so a reader can check ids and payloads
//! line up. Only one writer may use the directory (the buffer locks it).

use std::io::Write;
use std::time::Duration;

use qalqan_collector::buffer::{BufferConfig, DiskBuffer, FsyncPolicy};

fn usage() -> ! {
    eprintln!("usage: buffer_writer DIR [always|interval|never] [RECORDS]");
    std::process::exit(2);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else { usage() };
    let fsync = match args.next().as_deref() {
        None | Some("interval") => FsyncPolicy::Interval(Duration::from_millis(200)),
        Some("always") => FsyncPolicy::Always,
        Some("never") => FsyncPolicy::Never,
        Some(_) => usage(),
    };
    let limit: u64 = match args.next() {
        None => u64::MAX,
        Some(n) => n.parse().unwrap_or_else(|_| usage()),
    };

    let mut cfg = BufferConfig::new(dir, 256 * 1024 * 1024);
    cfg.segment_bytes = 1024 * 1024;
    cfg.fsync = fsync;
    let buffer = match DiskBuffer::open(cfg) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("buffer_writer: {e}");
            std::process::exit(1);
        }
    };
    let mut next = buffer.stats().last_id + 1;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut written = 0u64;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    while written < limit {
        // xorshift: batch sizes 1..=64 without a dependency.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let batch = (1 + rng % 64).min(limit - written);
        let payloads: Vec<Vec<u8>> = (0..batch).map(|i| payload(next + i)).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        match buffer.append(&refs).await {
            Ok(last) => {
                if last != next + batch - 1 {
                    eprintln!(
                        "buffer_writer: expected last id {}, got {last}",
                        next + batch - 1
                    );
                    std::process::exit(1);
                }
                if writeln!(out, "acked {last}")
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    std::process::exit(1);
                }
                next = last + 1;
                written += batch;
            }
            Err(e) => {
                eprintln!("buffer_writer: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// `id-<n>` padded with a fixed filler to 250 bytes, like a small event.
fn payload(id: u64) -> Vec<u8> {
    let mut p = format!("id-{id} ").into_bytes();
    p.resize(250, b'x');
    p
}
