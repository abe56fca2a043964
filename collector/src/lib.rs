//! qalqan collector: sources → parse/normalize → disk buffer → Kafka.

pub mod buffer;

pub mod ack;
pub mod app;
pub mod config;
pub mod disk;
pub mod heartbeat;
pub mod loadgen;
pub mod metrics;
pub mod ordered;
pub mod pipeline;
pub mod router;
pub mod sequence;
pub mod sink;
pub mod sources;
pub mod state;

/// The collector's version (`observer.version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
