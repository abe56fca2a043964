//! qalqan collector: sources → parse/normalize → disk buffer → Kafka.

pub mod buffer;
