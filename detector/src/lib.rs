//! qalqan detector: stage 1 (Sigma matching), stage 2 (correlation), the
//! sinks (Kafka, ClickHouse, JSON lines), the standalone pipeline and the
//! rule tooling. The engines themselves live in `qalqan-sigma` and
//! `qalqan-correlation`; this crate wires them to transports and sinks.

pub mod cli;
