//! Pipeline health seen from the centre: lost logs (sequence gaps) and
//! collectors that fell silent (heartbeats).

pub mod heartbeat;
pub mod sequence;

pub use heartbeat::{is_heartbeat, HeartbeatTracker};
pub use sequence::SequenceTracker;
