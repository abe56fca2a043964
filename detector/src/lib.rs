//! qalqan detector: stage 1 (Sigma matching), stage 2 (correlation), the
//! sinks (Kafka, ClickHouse, JSON lines), the standalone pipeline and the
//! rule tooling. The engines themselves live in `qalqan-sigma` and
//! `qalqan-correlation`; this crate wires them to transports and sinks.

pub mod cli;
pub mod config;
pub mod demo;
pub mod health;
pub mod metrics;
pub mod pipeline;
pub mod service;
pub mod sinks;
pub mod standalone;
pub mod store;
pub mod tooling;
