//! Sends realistic RFC 5424 sshd lines to a syslog receiver.
//!
//! ```text
//! cargo run --release -p qalqan-collector --example loadgen -- \
//!     --proto tcp --addr 127.0.0.1:5514 --connections 4 --lines 250000 --size 256
//! ```
//! `--lines` is per connection for TCP. `--rate` is lines/s per connection
//! (0 = as fast as the receiver takes them).

use clap::{Parser, ValueEnum};
use qalqan_collector::loadgen::{send_tcp, send_udp, TcpFraming};

#[derive(Clone, Copy, ValueEnum)]
enum Proto {
    Tcp,
    TcpOctet,
    Udp,
}

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum, default_value = "tcp")]
    proto: Proto,
    #[arg(long)]
    addr: std::net::SocketAddr,
    /// TCP connections, each sending `lines`; for UDP, sender threads
    /// sharing `lines` and `rate`.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    #[arg(long, default_value_t = 100_000)]
    lines: u64,
    #[arg(long, default_value_t = 256)]
    size: usize,
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let (took, total) = match a.proto {
        Proto::Tcp => (
            send_tcp(
                a.addr,
                a.connections,
                a.lines,
                a.size,
                TcpFraming::Newline,
                a.rate,
            )?,
            a.lines * a.connections as u64,
        ),
        Proto::TcpOctet => (
            send_tcp(
                a.addr,
                a.connections,
                a.lines,
                a.size,
                TcpFraming::OctetCounting,
                a.rate,
            )?,
            a.lines * a.connections as u64,
        ),
        Proto::Udp => (
            send_udp(a.addr, a.connections, a.lines, a.size, a.rate)?,
            a.lines,
        ),
    };
    println!(
        "sent {total} lines in {:.3}s ({:.0} lines/s)",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
    Ok(())
}
