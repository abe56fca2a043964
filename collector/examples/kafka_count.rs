//! Waits until a Kafka topic holds at least N messages and prints when.
//!
//! ```text
//! cargo run --release -p qalqan-collector --example kafka_count -- \
//!     --brokers 127.0.0.1:19092 --topic qalqan.events.bench --expect 1000000 --timeout 300
//! ```
//! Prints `count=<n> seconds=<since start>`; exits 1 if the count was not reached.

use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:19092")]
    brokers: String,
    #[arg(long)]
    topic: String,
    #[arg(long)]
    expect: u64,
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Give up once the count has not grown for this many seconds (a
    /// sender that dropped messages never reaches `expect`).
    #[arg(long)]
    stall: Option<u64>,
    /// Create the topic with this many partitions first (if missing).
    #[arg(long)]
    create: Option<i32>,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if let Some(p) = a.create {
        qalqan_collector::loadgen::create_topic(&a.brokers, &a.topic, p)?;
        if a.expect == 0 {
            return Ok(());
        }
    }
    let start = Instant::now();
    let (n, at) = qalqan_collector::loadgen::wait_for_count_or_stall(
        &a.brokers,
        &a.topic,
        a.expect,
        Duration::from_secs(a.timeout),
        Duration::from_secs(a.stall.unwrap_or(a.timeout)),
    )?;
    println!("count={n} seconds={:.3}", (at - start).as_secs_f64());
    if n < a.expect {
        std::process::exit(1);
    }
    Ok(())
}
