//! Where alerts (and, in standalone mode, events) go besides Kafka and
//! ClickHouse: a JSON-lines file and a readable terminal feed.

pub mod console;
pub mod jsonl;
