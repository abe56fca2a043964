//! Appends records to a disk buffer as fast as it can and prints the id of
//! every record whose append returned `Ok`, one line per append:
//! `acked <last_id>`. Used by the crash tests (which kill it with SIGKILL
//! mid-stream and check every printed id survived), and handy for poking at
//! a buffer directory by hand.
//!
//! ```text
//! cargo run -p qalqan-collector --example buffer_writer -- DIR [always|interval|never] [RECORDS] [--disk-full-at BYTES]
//! ```
//!
//! Each payload is `id-<n>` padded to 250 bytes, where `<n>` is the id the
//! record is expected to get, so a reader can check that ids and payloads
//! line up. Only one writer may use the directory (the buffer locks it).
//!
//! `--disk-full-at BYTES` simulates a disk that fills up: files cannot grow
//! past BYTES (RLIMIT_FSIZE) until the first append fails; the writer prints
//! `failed <error>`, lifts the limit ("space was freed") and retries the same
//! records.

use std::io::Write;
use std::time::Duration;

use qalqan_collector::buffer::{BufferConfig, DiskBuffer, FsyncPolicy};

fn usage() -> ! {
    eprintln!("usage: buffer_writer DIR [always|interval|never] [RECORDS] [--disk-full-at BYTES]");
    std::process::exit(2);
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("buffer_writer: {message}");
    std::process::exit(1);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut positional = Vec::new();
    let mut disk_full_at: Option<u64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--disk-full-at" {
            let bytes = args.next().and_then(|b| b.parse().ok());
            disk_full_at = Some(bytes.unwrap_or_else(|| usage()));
        } else {
            positional.push(arg);
        }
    }
    let mut positional = positional.into_iter();
    let Some(dir) = positional.next() else {
        usage()
    };
    let fsync = match positional.next().as_deref() {
        None | Some("interval") => FsyncPolicy::Interval(Duration::from_millis(200)),
        Some("always") => FsyncPolicy::Always,
        Some("never") => FsyncPolicy::Never,
        Some(_) => usage(),
    };
    let limit: u64 = match positional.next() {
        None => u64::MAX,
        Some(n) => n.parse().unwrap_or_else(|_| usage()),
    };

    let mut cfg = BufferConfig::new(dir, 256 * 1024 * 1024);
    cfg.segment_bytes = 1024 * 1024;
    cfg.fsync = fsync;
    let buffer = DiskBuffer::open(cfg).unwrap_or_else(|e| fail(e));
    if let Some(bytes) = disk_full_at {
        set_file_size_limit(bytes);
    }
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
        let result = match buffer.append(&refs).await {
            Err(e) if disk_full_at.take().is_some() => {
                // The simulated disk is full: report, free "space", retry.
                let _ = writeln!(out, "failed {e}").and_then(|()| out.flush());
                set_file_size_limit(u64::MAX);
                buffer.append(&refs).await
            }
            other => other,
        };
        let last = result.unwrap_or_else(|e| fail(e));
        if last != next + batch - 1 {
            fail(format!("expected last id {}, got {last}", next + batch - 1));
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
}

/// `id-<n>` padded with a fixed filler to 250 bytes, like a small event.
fn payload(id: u64) -> Vec<u8> {
    let mut p = format!("id-{id} ").into_bytes();
    p.resize(250, b'x');
    p
}

/// Limits how large this process may make any file (`u64::MAX`: no limit).
/// Writes past it fail with EFBIG, as a full disk fails them with ENOSPC.
fn set_file_size_limit(bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: if bytes == u64::MAX {
            libc::RLIM_INFINITY
        } else {
            bytes
        },
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain system calls on values owned here. SIGXFSZ would kill
    // the process instead of letting the write fail, so it is ignored.
    let rc = unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        libc::setrlimit(libc::RLIMIT_FSIZE, &limit)
    };
    if rc != 0 {
        fail(format!(
            "setrlimit(RLIMIT_FSIZE): {}",
            std::io::Error::last_os_error()
        ));
    }
}
