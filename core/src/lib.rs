//! qalqan-core: what the collector and the detector must agree on.
//!
//! * [`event`] — the normalized event (ECS field names, `schema_version`,
//!   the raw line always kept) and its JSON wire form on Kafka.
//! * [`alert`] — the alert record both detector stages emit and every sink stores.
//! * [`parse`] — the parser library (syslog, sshd, sudo, PAM, firewall, web
//!   access, JSON, CEF, key=value), used at the edge by the collector and by the
//!   detector for raw lines that third parties put on Kafka.
//! * [`config`] — TOML loading with errors that name the key and the fix.
//! * [`kafka`] — Kafka client settings shared by every producer and consumer.
//! * [`telemetry`] — logging set-up and the `/metrics` endpoint.
//! * [`topics`] — topic names, and the agency taken from a topic name.

pub mod alert;
pub mod config;
pub mod event;
pub mod kafka;
pub mod memory;
pub mod parse;
pub mod telemetry;
pub mod topics;

pub use alert::Alert;
pub use event::{Event, Fields, LogSource, Value, SCHEMA_VERSION};
