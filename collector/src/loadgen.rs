//! Load generation for benchmarks, the rsyslog comparison and tests:
//! realistic syslog lines sent over TCP or UDP at a chosen rate, and a
//! Kafka topic's message count (from its watermarks) to see when they
//! arrived. Used by `examples/loadgen.rs`, `examples/kafka_count.rs` and
//! `benches/`.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// How lines are framed on a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpFraming {
    Newline,
    OctetCounting,
}

/// An RFC 5424 sshd line of exactly `size` bytes (at least ~120), unique per
/// (`stream`, `i`): the user name carries both and the padding.
pub fn syslog_line(stream: usize, i: u64, size: usize) -> Vec<u8> {
    let head = format!(
        "<38>1 2026-03-01T10:00:00.{:06}Z web-{:02} sshd 4242 - - Failed password for invalid user u{stream}_{i}",
        i % 1_000_000,
        stream % 100
    );
    let tail = format!(
        " from 203.0.113.{} port {} ssh2",
        i % 250 + 1,
        1024 + i % 60000
    );
    let mut line = head.into_bytes();
    let pad = size.saturating_sub(line.len() + tail.len());
    if pad > 0 {
        line.push(b'_');
        line.extend(std::iter::repeat_n(b'x', pad - 1));
    }
    line.extend_from_slice(tail.as_bytes());
    line
}

/// Paces a sender to `rate` lines/s (0: as fast as possible).
struct Pacer {
    rate: f64,
    start: Instant,
}

impl Pacer {
    fn new(rate: u64) -> Pacer {
        Pacer {
            rate: rate as f64,
            start: Instant::now(),
        }
    }

    fn wait(&self, sent: u64) {
        if self.rate <= 0.0 {
            return;
        }
        let due = Duration::from_secs_f64(sent as f64 / self.rate);
        let el = self.start.elapsed();
        if due > el {
            std::thread::sleep(due - el);
        }
    }
}

/// Sends `lines` lines over each of `connections` TCP connections (in
/// parallel threads) at `rate` lines/s per connection; returns the time taken.
pub fn send_tcp(
    addr: SocketAddr,
    connections: usize,
    lines: u64,
    size: usize,
    framing: TcpFraming,
    rate: u64,
) -> std::io::Result<Duration> {
    let start = Instant::now();
    let handles: Vec<_> = (0..connections)
        .map(|c| {
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut s = TcpStream::connect(addr)?;
                s.set_nodelay(false)?;
                let pacer = Pacer::new(rate);
                let mut buf = Vec::with_capacity(256 * 1024);
                let mut i = 0u64;
                while i < lines {
                    let chunk_end = (i + 512).min(lines);
                    for j in i..chunk_end {
                        let l = syslog_line(c, j, size);
                        match framing {
                            TcpFraming::Newline => {
                                buf.extend_from_slice(&l);
                                buf.push(b'\n');
                            }
                            TcpFraming::OctetCounting => {
                                write!(buf, "{} ", l.len())?;
                                buf.extend_from_slice(&l);
                            }
                        }
                    }
                    s.write_all(&buf)?;
                    buf.clear();
                    i = chunk_end;
                    pacer.wait(i);
                }
                s.flush()?;
                s.shutdown(std::net::Shutdown::Write)?;
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| std::io::Error::other("sender thread panicked"))??;
    }
    Ok(start.elapsed())
}

/// Sends `lines` datagrams at `rate` lines/s in total from `senders`
/// threads (each its own socket and an equal share of lines and rate, like
/// several devices); returns the time taken.
///
/// Datagrams go out 64 per `sendmmsg` call: one `send` per datagram tops
/// out near 100k/s on a small machine, below the rates the UDP benchmark
/// asks for. The senders stand for devices elsewhere on the network, so
/// where allowed they raise their threads' priority (nice -10, as the
/// collector's receive thread does) to offer the asked rate even when the
/// collector and Kafka share their CPUs.
pub fn send_udp(
    addr: SocketAddr,
    senders: usize,
    lines: u64,
    size: usize,
    rate: u64,
) -> std::io::Result<Duration> {
    let senders = senders.max(1) as u64;
    let start = Instant::now();
    let handles: Vec<_> = (0..senders)
        .map(|t| {
            let share = lines / senders + u64::from(t < lines % senders);
            std::thread::spawn(move || {
                send_udp_stream(addr, t as usize, share, size, rate / senders)
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| std::io::Error::other("sender thread panicked"))??;
    }
    Ok(start.elapsed())
}

/// One sender of [`send_udp`]: lines `0..lines` of stream `stream`.
fn send_udp_stream(
    addr: SocketAddr,
    stream: usize,
    lines: u64,
    size: usize,
    rate: u64,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    const VLEN: usize = 64;
    // Refusal is fine: the offered rate is then what the machine allows.
    crate::sources::udp::raise_thread_priority();
    let sock = UdpSocket::bind(if addr.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    })?;
    sock.connect(addr)?;
    let fd = sock.as_raw_fd();
    let pacer = Pacer::new(rate);
    let mut i = 0u64;
    let mut chunk: Vec<Vec<u8>> = Vec::with_capacity(VLEN);
    while i < lines {
        let end = (i + VLEN as u64).min(lines);
        chunk.clear();
        chunk.extend((i..end).map(|j| syslog_line(stream, j, size)));
        let mut iovs: Vec<libc::iovec> = chunk
            .iter()
            .map(|l| libc::iovec {
                iov_base: l.as_ptr() as *mut libc::c_void,
                iov_len: l.len(),
            })
            .collect();
        let mut sent = 0usize;
        while sent < chunk.len() {
            // SAFETY: all-zero is a valid mmsghdr; the connected socket
            // needs no address.
            let mut hdrs: Vec<libc::mmsghdr> = iovs[sent..]
                .iter_mut()
                .map(|iov| {
                    let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                    h.msg_hdr.msg_iov = iov;
                    h.msg_hdr.msg_iovlen = 1;
                    h
                })
                .collect();
            // SAFETY: hdrs holds initialized headers whose iovecs point into
            // `chunk`, alive for the call.
            let n = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), hdrs.len() as libc::c_uint, 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                // ENOBUFS under load: retry shortly rather than lose it here.
                if e.raw_os_error() == Some(libc::ENOBUFS)
                    || e.kind() == std::io::ErrorKind::Interrupted
                {
                    std::thread::sleep(Duration::from_micros(50));
                    continue;
                }
                return Err(e);
            }
            sent += n as usize;
        }
        i = end;
        pacer.wait(i);
    }
    Ok(())
}

/// Messages in `topic` (sum over partitions of high − low watermark).
pub fn topic_message_count(brokers: &str, topic: &str) -> anyhow::Result<u64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "qalqan-loadgen-count")
        .create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut total = 0u64;
    for t in md.topics() {
        for p in t.partitions() {
            let (lo, hi) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
            total += (hi - lo).max(0) as u64;
        }
    }
    Ok(total)
}

/// Creates `topic` with `partitions` partitions (an existing one is fine).
pub fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let res = rt.block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ))?;
    for r in res {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("cannot create topic {t}: {e}"),
        }
    }
    Ok(())
}

/// Polls until `topic` holds at least `expect` messages or `timeout`
/// passes; returns the count and when it was reached.
pub fn wait_for_count(
    brokers: &str,
    topic: &str,
    expect: u64,
    timeout: Duration,
) -> anyhow::Result<(u64, Instant)> {
    wait_for_count_or_stall(brokers, topic, expect, timeout, timeout)
}

/// As [`wait_for_count`], but also gives up once the count has not grown
/// for `stall` (a sender that dropped lines never reaches `expect`); the
/// instant returned is then when the count last grew.
pub fn wait_for_count_or_stall(
    brokers: &str,
    topic: &str,
    expect: u64,
    timeout: Duration,
    stall: Duration,
) -> anyhow::Result<(u64, Instant)> {
    let deadline = Instant::now() + timeout;
    let (mut last, mut grew_at) = (0, Instant::now());
    loop {
        let n = topic_message_count(brokers, topic).unwrap_or(0);
        let now = Instant::now();
        if n != last {
            (last, grew_at) = (n, now);
        }
        if n >= expect || now >= deadline {
            return Ok((n, now));
        }
        if now.duration_since(grew_at) >= stall {
            return Ok((n, grew_at));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_requested_size_and_are_unique() {
        let a = syslog_line(1, 7, 256);
        let b = syslog_line(1, 8, 256);
        assert_eq!(a.len(), 256);
        assert_ne!(a, b);
        assert!(a.starts_with(b"<38>1 "));
    }
}
