//! The detection pipeline, independent of transport: the same code runs in
//! the Kafka service and in standalone mode, only the queues and sinks
//! differ (DESIGN.md, "Standalone mode").
//!
//! * [`rules`] loads Sigma detection rules and correlation rules together,
//!   so a correlation can reference any detection rule by id or name.
//! * [`matcher`] is stage 1: one event in, single-event alerts and
//!   correlation signals out. Stateless but for suppression and health.
//! * [`correlator`] is stage 2: signals in, correlation alerts out, with
//!   the keyed event-time state of `qalqan-correlation`.

pub mod correlator;
pub mod matcher;
pub mod rules;

pub use correlator::Correlator;
pub use matcher::{MatchOutput, Matcher};
pub use rules::{LoadedRules, RuleSources};
