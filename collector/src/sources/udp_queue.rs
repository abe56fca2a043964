//! The queue between the UDP receive thread and the parse workers.
//!
//! UDP cannot push back, so the receive thread must never wait: a reader
//! that waits is a full kernel buffer, and the kernel's buffer holds well
//! under a second at 200k lines/s. Bursts faster than parsing and sending
//! therefore wait here, in two tiers:
//!
//! 1. memory, bounded in bytes (`queue`, 256 MiB by default);
//! 2. beyond that, a spool file in the state directory (`spool`, 1 GiB by
//!    default), written and read sequentially, emptied whenever the workers
//!    catch up.
//!
//! One FIFO channel carries both tiers in arrival order: a batch held in
//! memory travels in the channel itself, a spooled one as a token that
//! tells a worker to read the next batch from the spool. Only when both
//! tiers are full is a batch dropped, counted as `reason="queue_full"`.
//!
//! The spool is not durable (no fsync, cleared at start): a crash loses
//! what it holds, as it loses what sits in the kernel's socket buffer. It
//! exists to absorb bursts, not to survive them.

use std::fs::File;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::pipeline::RawLine;

/// A batch of datagrams as received: their bytes in one buffer, so the
/// receive thread does not allocate per datagram and a queued burst costs
/// little memory beyond its bytes (the workers make the per-line values).
#[derive(Default, Debug, PartialEq)]
pub struct Datagrams {
    bytes: Vec<u8>,
    items: Vec<Datagram>,
    /// Distinct senders in arrival order; consecutive datagrams from one
    /// sender share an entry.
    peers: Vec<Option<SocketAddr>>,
}

#[derive(Debug, PartialEq)]
struct Datagram {
    end: u32,
    peer: u32,
    truncated: bool,
}

impl Datagrams {
    pub fn push(&mut self, data: &[u8], truncated: bool, peer: Option<SocketAddr>) {
        if self.peers.last() != Some(&peer) {
            self.peers.push(peer);
        }
        self.bytes.extend_from_slice(data);
        self.items.push(Datagram {
            // A batch holds at most a thousand datagrams of at most 64 KiB.
            end: self.bytes.len() as u32,
            peer: (self.peers.len() - 1) as u32,
            truncated,
        });
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Memory held: the bytes plus the bookkeeping.
    fn cost(&self) -> u64 {
        (self.bytes.capacity()
            + self.items.capacity() * std::mem::size_of::<Datagram>()
            + self.peers.capacity() * std::mem::size_of::<Option<SocketAddr>>()) as u64
    }

    pub fn into_lines(self) -> Vec<RawLine> {
        let mut start = 0usize;
        self.items
            .iter()
            .map(|d| {
                let end = (d.end as usize).clamp(start, self.bytes.len());
                let line = RawLine {
                    data: self.bytes[start..end].to_vec(),
                    truncated: d.truncated,
                    peer: self.peers.get(d.peer as usize).copied().flatten(),
                    ..RawLine::default()
                };
                start = end;
                line
            })
            .collect()
    }

    /// The spool's record: a header of three counts, then the items, the
    /// peers and the bytes.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER + self.items.len() * ITEM + self.peers.len() * PEER + self.bytes.len(),
        );
        for n in [self.items.len(), self.peers.len(), self.bytes.len()] {
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        for d in &self.items {
            out.extend_from_slice(&d.end.to_le_bytes());
            out.extend_from_slice(&d.peer.to_le_bytes());
            out.push(d.truncated as u8);
        }
        for p in &self.peers {
            let (tag, ip, port) = match p {
                None => (0u8, Ipv6Addr::UNSPECIFIED, 0),
                Some(SocketAddr::V4(a)) => (4, a.ip().to_ipv6_mapped(), a.port()),
                Some(SocketAddr::V6(a)) => (6, *a.ip(), a.port()),
            };
            out.push(tag);
            out.extend_from_slice(&ip.octets());
            out.extend_from_slice(&port.to_le_bytes());
        }
        out.extend_from_slice(&self.bytes);
        out
    }

    /// The body's length, from a record's header.
    fn body_len(header: &[u8; HEADER]) -> usize {
        let [items, peers, bytes] = counts(header);
        items * ITEM + peers * PEER + bytes
    }

    fn decode(header: &[u8; HEADER], body: &[u8]) -> Datagrams {
        let [items, peers, bytes] = counts(header);
        let u32_at =
            |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut out = Datagrams {
            bytes: Vec::with_capacity(bytes),
            items: Vec::with_capacity(items),
            peers: Vec::with_capacity(peers),
        };
        let mut at = 0;
        for _ in 0..items {
            out.items.push(Datagram {
                end: u32_at(body, at),
                peer: u32_at(body, at + 4),
                truncated: body[at + 8] != 0,
            });
            at += ITEM;
        }
        for _ in 0..peers {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&body[at + 1..at + 17]);
            let ip = Ipv6Addr::from(ip);
            let port = u16::from_le_bytes([body[at + 17], body[at + 18]]);
            out.peers.push(match body[at] {
                4 => ip
                    .to_ipv4_mapped()
                    .map(|v4| SocketAddr::new(IpAddr::V4(v4), port)),
                6 => Some(SocketAddr::new(IpAddr::V6(ip), port)),
                _ => None,
            });
            at += PEER;
        }
        out.bytes.extend_from_slice(&body[at..at + bytes]);
        out
    }
}

const HEADER: usize = 12;
const ITEM: usize = 9;
const PEER: usize = 19;

fn counts(header: &[u8; HEADER]) -> [usize; 3] {
    let n = |i: usize| {
        u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]) as usize
    };
    [n(0), n(4), n(8)]
}

/// What travels in the channel, in arrival order.
enum Item {
    Memory(Datagrams),
    /// The next batch is in the spool.
    Spooled,
}

/// The spool file: appended by the receive thread, read in order by the
/// workers, cut back to empty whenever they have read everything.
struct Spool {
    file: File,
    path: PathBuf,
    limit: u64,
    write_at: u64,
    read_at: u64,
    pending: u64,
}

impl Spool {
    fn append(&mut self, batch: &Datagrams) -> std::io::Result<bool> {
        let record = batch.encode();
        if self.write_at + record.len() as u64 > self.limit {
            return Ok(false);
        }
        self.file.write_all_at(&record, self.write_at)?;
        self.write_at += record.len() as u64;
        self.pending += 1;
        Ok(true)
    }

    fn take(&mut self) -> std::io::Result<Datagrams> {
        let mut header = [0u8; HEADER];
        self.file.read_exact_at(&mut header, self.read_at)?;
        let mut body = vec![0u8; Datagrams::body_len(&header)];
        self.file
            .read_exact_at(&mut body, self.read_at + HEADER as u64)?;
        self.read_at += (HEADER + body.len()) as u64;
        self.pending = self.pending.saturating_sub(1);
        if self.pending == 0 {
            // Caught up: start the file over.
            self.file.set_len(0)?;
            self.write_at = 0;
            self.read_at = 0;
        }
        Ok(Datagrams::decode(&header, &body))
    }
}

/// Limits of the two tiers.
pub struct QueueLimits {
    /// Bytes of datagrams held in memory.
    pub memory: u64,
    /// Bytes the spool file may grow to; 0 turns spooling off.
    pub spool: u64,
}

/// The receive thread's end: never blocks.
pub struct QueueSender {
    tx: mpsc::UnboundedSender<Item>,
    shared: Arc<Shared>,
}

/// The workers' end (shared between them behind a lock).
pub struct QueueReceiver {
    rx: mpsc::UnboundedReceiver<Item>,
    shared: Arc<Shared>,
}

struct Shared {
    memory_bytes: AtomicU64,
    memory_limit: u64,
    spool: Option<Mutex<Spool>>,
    metrics: Arc<Metrics>,
    source: String,
}

/// Creates the queue of UDP source `source`; the spool file (if any) lives
/// in `dir` and starts empty.
pub fn queue(
    source: &str,
    limits: &QueueLimits,
    dir: &Path,
    metrics: Arc<Metrics>,
) -> anyhow::Result<(QueueSender, QueueReceiver)> {
    let spool = if limits.spool > 0 {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("UDP spool directory {}: {e}", dir.display()))?;
        let path = dir.join(format!("udp-{source}.spool"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("UDP spool {}: {e}", path.display()))?;
        Some(Mutex::new(Spool {
            file,
            path,
            limit: limits.spool,
            write_at: 0,
            read_at: 0,
            pending: 0,
        }))
    } else {
        None
    };
    let shared = Arc::new(Shared {
        memory_bytes: AtomicU64::new(0),
        memory_limit: limits.memory,
        spool,
        metrics,
        source: source.to_string(),
    });
    let (tx, rx) = mpsc::unbounded_channel();
    Ok((
        QueueSender {
            tx,
            shared: shared.clone(),
        },
        QueueReceiver { rx, shared },
    ))
}

impl QueueSender {
    /// Queues a batch in memory, else in the spool, else drops it and
    /// counts it.
    pub fn push(&self, batch: Datagrams) {
        let s = &self.shared;
        let n = batch.len() as u64;
        let cost = batch.cost();
        if s.memory_bytes.load(Ordering::Relaxed) + cost <= s.memory_limit {
            s.memory_bytes.fetch_add(cost, Ordering::Relaxed);
            if self.tx.send(Item::Memory(batch)).is_err() {
                s.memory_bytes.fetch_sub(cost, Ordering::Relaxed);
                s.metrics.udp_drop(&s.source, "error", n);
            }
            return;
        }
        let Some(spool) = &s.spool else {
            s.metrics.udp_drop(&s.source, "queue_full", n);
            return;
        };
        let Ok(mut spool) = spool.lock() else {
            s.metrics.udp_drop(&s.source, "error", n);
            return;
        };
        match spool.append(&batch) {
            Ok(true) => {
                // Sent under the lock, so tokens and records keep one order.
                if self.tx.send(Item::Spooled).is_err() {
                    s.metrics.udp_drop(&s.source, "error", n);
                } else {
                    s.metrics
                        .udp_spooled
                        .with_label_values(&[s.source.as_str()])
                        .inc_by(n);
                }
            }
            Ok(false) => s.metrics.udp_drop(&s.source, "queue_full", n),
            Err(e) => {
                tracing::error!(
                    source = %s.source,
                    "UDP spool {}: write failed: {e}",
                    spool.path.display()
                );
                s.metrics.udp_drop(&s.source, "error", n);
            }
        }
    }
}

impl QueueReceiver {
    /// The next batch, oldest first; `None` once the sender is gone and
    /// everything was taken.
    pub async fn next(&mut self) -> Option<Datagrams> {
        loop {
            match self.rx.recv().await? {
                Item::Memory(batch) => {
                    self.shared
                        .memory_bytes
                        .fetch_sub(batch.cost(), Ordering::Relaxed);
                    return Some(batch);
                }
                Item::Spooled => {
                    let s = &self.shared;
                    let Some(Ok(mut spool)) = s.spool.as_ref().map(|m| m.lock()) else {
                        continue;
                    };
                    match spool.take() {
                        Ok(batch) => return Some(batch),
                        Err(e) => tracing::error!(
                            source = %s.source,
                            "UDP spool {}: read failed, a batch is lost: {e}",
                            spool.path.display()
                        ),
                    }
                }
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(spool) = self.spool.take() {
            if let Ok(spool) = spool.into_inner() {
                let _ = std::fs::remove_file(&spool.path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([192, 0, 2, 1], port)))
    }

    fn batch(tag: &str, n: usize) -> Datagrams {
        let mut b = Datagrams::default();
        for i in 0..n {
            b.push(format!("{tag} line {i}").as_bytes(), i % 7 == 0, addr(9));
        }
        b
    }

    fn lines(b: Datagrams) -> Vec<String> {
        b.into_lines()
            .iter()
            .map(|l| String::from_utf8_lossy(&l.data).into_owned())
            .collect()
    }

    #[test]
    fn datagrams_come_back_as_lines_with_their_sender_and_flags() {
        let mut b = Datagrams::default();
        b.push(b"first", false, addr(1));
        b.push(b"second", true, addr(1));
        b.push(b"", false, None);
        b.push(b"third", false, addr(2));
        assert_eq!(
            b.peers.len(),
            3,
            "consecutive datagrams share a sender entry"
        );
        let lines = b.into_lines();
        let got: Vec<(&[u8], bool, Option<SocketAddr>)> = lines
            .iter()
            .map(|l| (l.data.as_slice(), l.truncated, l.peer))
            .collect();
        assert_eq!(
            got,
            vec![
                (&b"first"[..], false, addr(1)),
                (&b"second"[..], true, addr(1)),
                (&b""[..], false, None),
                (&b"third"[..], false, addr(2)),
            ]
        );
    }

    #[test]
    fn a_spool_record_decodes_to_the_same_batch() {
        let mut b = batch("x", 5);
        b.push(
            b"v6",
            false,
            Some("[2001:db8::7]:514".parse().expect("addr")),
        );
        b.push(b"none", true, None);
        let record = b.encode();
        let header: [u8; HEADER] = record[..HEADER].try_into().expect("header");
        assert_eq!(Datagrams::body_len(&header), record.len() - HEADER);
        assert_eq!(Datagrams::decode(&header, &record[HEADER..]), b);
    }

    #[tokio::test]
    async fn without_a_spool_a_full_queue_drops_whole_batches_and_counts_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let metrics = Metrics::new("test", "agency");
        let one = batch("a", 100).cost();
        let limits = QueueLimits {
            memory: one * 2,
            spool: 0,
        };
        let (tx, mut rx) = queue("udp", &limits, dir.path(), metrics.clone()).expect("queue");
        tx.push(batch("a", 100));
        tx.push(batch("b", 100));
        tx.push(batch("c", 100)); // over the limit
        assert_eq!(metrics.udp_dropped_total(), 100);
        assert_eq!(lines(rx.next().await.expect("a"))[0], "a line 0");
        tx.push(batch("d", 100)); // room again
        assert_eq!(metrics.udp_dropped_total(), 100);
        drop(tx);
        let mut rest = Vec::new();
        while let Some(b) = rx.next().await {
            rest.push(lines(b)[0].clone());
        }
        assert_eq!(rest, ["b line 0", "d line 0"]);
        let text = String::from_utf8(metrics.render()).expect("utf-8");
        assert!(
            text.contains(
                r#"qalqan_collector_udp_dropped_total{reason="queue_full",source="udp"} 100"#
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn beyond_memory_batches_go_to_the_spool_and_come_back_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let metrics = Metrics::new("test", "agency");
        let one = batch("m0", 50).cost();
        let record = batch("s0", 50).encode().len() as u64;
        let limits = QueueLimits {
            memory: one * 2,
            spool: record * 3,
        };
        let (tx, mut rx) = queue("udp", &limits, dir.path(), metrics.clone()).expect("queue");
        let spool_file = dir.path().join("udp-udp.spool");
        for i in 0..6 {
            tx.push(batch(&format!("b{i}"), 50));
        }
        // Two in memory, three spooled, one dropped.
        assert_eq!(metrics.udp_dropped_total(), 50);
        assert_eq!(metrics.udp_spooled.with_label_values(&["udp"]).get(), 150);
        assert!(std::fs::metadata(&spool_file).expect("spool").len() >= record * 3);
        let mut firsts = Vec::new();
        for _ in 0..5 {
            let b = rx.next().await.expect("batch");
            assert_eq!(b.len(), 50);
            firsts.push(lines(b)[0].clone());
        }
        assert_eq!(
            firsts,
            [
                "b0 line 0",
                "b1 line 0",
                "b2 line 0",
                "b3 line 0",
                "b4 line 0"
            ]
        );
        // Caught up: the spool starts over and has its whole room again.
        assert_eq!(std::fs::metadata(&spool_file).expect("spool").len(), 0);
        for i in 0..5 {
            tx.push(batch(&format!("c{i}"), 50));
        }
        assert_eq!(metrics.udp_dropped_total(), 50);
        drop(tx);
        let mut n = 0;
        while let Some(b) = rx.next().await {
            n += b.len();
        }
        assert_eq!(n, 250);
        drop(rx);
        assert!(
            !spool_file.exists(),
            "the spool is removed when the source stops"
        );
    }
}
