//! Parse, stamp and hand over: what happens to every batch a source reads.
//!
//! A source task calls [`Pipeline::process`] with a [`Batch`] of raw lines.
//! Each line is parsed by the shared parser chain, stamped with who
//! collected it (`observer.*`, a sequence number, `event.id`, `input.type`,
//! where it came from), serialized to its JSON wire form and routed to the
//! buffer or Kafka. Parsing runs on the caller's task, so sources with many
//! connections parse in parallel while each connection keeps its order.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use qalqan_core::event::{now_micros, tags, Value, ValueRef};
use qalqan_core::parse::Parser;

use crate::ack::Ack;
use crate::metrics::Metrics;
use crate::router::{RouteError, Router};
use crate::sequence::SequenceAllocator;
use crate::sink::Record;

/// Who collected an event and how: fields written into its wire form
/// beside the parsed ones ([`Event::to_json_string_stamped`]), borrowed
/// rather than copied into every event (they are the same few texts on
/// every event of a batch; as owned fields they were six allocations per
/// event).
///
/// `fixed` are the texts that are the same on every event this collector
/// sends through one source kind (`observer.*`, `input.type`): the encoder
/// keeps their JSON text with its layout. The rest (the sender's address,
/// the file path, the sequence number and id) differ between connections,
/// files or events and are written each time; as fixed texts, every
/// connection would need layouts of its own.
///
/// [`Event::to_json_string_stamped`]: qalqan_core::Event::to_json_string_stamped
struct Stamps<'a> {
    fixed: [(&'static str, &'a str); 5],
    items: [(&'static str, ValueRef<'a>); 4],
    len: usize,
}

impl<'a> Stamps<'a> {
    fn push(&mut self, name: &'static str, value: ValueRef<'a>) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = (name, value);
            self.len += 1;
        }
    }

    fn fixed(&self) -> &[(&'static str, &'a str)] {
        &self.fixed
    }

    fn as_slice(&self) -> &[(&'static str, ValueRef<'a>)] {
        &self.items[..self.len]
    }
}

/// Sets who collected an event and how. What the line itself said under
/// one of these names is dropped (one pass), and the stamps that replace
/// it are returned. `observer.sequence` and `event.id` are added later,
/// once numbered.
fn stamp<'a>(
    f: &mut qalqan_core::event::Fields,
    identity: &'a Identity,
    input: &'static str,
    file_path: Option<&'a str>,
    address: Option<&'a str>,
) -> Stamps<'a> {
    f.retain(|name| !is_stamp(name, address.is_some(), file_path.is_some()));
    let mut s = Stamps {
        fixed: [
            ("observer.name", &identity.name),
            ("observer.hostname", &identity.hostname),
            ("observer.version", crate::VERSION),
            ("observer.type", "collector"),
            ("input.type", input),
        ],
        items: [("", ValueRef::Null); 4],
        len: 0,
    };
    if let Some(p) = file_path {
        s.push("log.file.path", ValueRef::Str(p));
    }
    if let Some(a) = address {
        s.push("log.source.address", ValueRef::Str(a));
    }
    s
}

/// Whether `name` is one the collector sets on every event it sends
/// (`log.source.address` when the sender is known, `log.file.path` for
/// files), so that a line cannot pass itself off as another collector's.
fn is_stamp(name: &str, address: bool, path: bool) -> bool {
    match name {
        "observer.name" | "observer.hostname" | "observer.version" | "observer.type"
        | "observer.sequence" | "input.type" | "event.id" => true,
        "log.source.address" => address,
        "log.file.path" => path,
        _ => false,
    }
}

/// One line (or datagram, or frame) as a source read it.
#[derive(Debug, Clone, Default)]
pub struct RawLine {
    pub data: Vec<u8>,
    /// The source cut it at its frame limit (the rest was skipped).
    pub truncated: bool,
    /// Sender of this line, when it differs per line (UDP).
    pub peer: Option<SocketAddr>,
    /// Event time known from the source itself (journald).
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields the source knows better than the parser (journald metadata).
    pub extra: Vec<(&'static str, Value)>,
}

impl RawLine {
    pub fn new(data: Vec<u8>) -> RawLine {
        RawLine {
            data,
            ..RawLine::default()
        }
    }
}

/// Which configured source a batch comes from.
#[derive(Debug)]
pub struct SourceInfo {
    /// The `[sources.<id>]` id: metrics label.
    pub id: String,
    /// `input.type`: udp, tcp, tls, file, journald, stdin.
    pub input: &'static str,
    /// The source's own parser (`[sources.<id>.parse]`); else the global one.
    pub parser: Option<Parser>,
}

impl SourceInfo {
    pub fn new(id: &str, input: &'static str, parser: Option<Parser>) -> Arc<SourceInfo> {
        Arc::new(SourceInfo {
            id: id.to_owned(),
            input,
            parser,
        })
    }
}

/// Lines read together, from one origin.
pub struct Batch {
    pub source: Arc<SourceInfo>,
    pub lines: Vec<RawLine>,
    /// `log.file.path` for file sources.
    pub file_path: Option<Arc<str>>,
    /// `log.source.address` for connection-oriented sources.
    pub peer: Option<SocketAddr>,
    /// Told when every event of the batch is safe (checkpointing sources).
    pub ack: Option<Ack>,
}

impl Batch {
    /// Whether the source can be held back (TCP, TLS, file, journald,
    /// stdin); UDP cannot, so it is told of a refusal at once and counts a
    /// drop.
    fn may_wait(&self) -> bool {
        self.source.input != "udp"
    }
}

/// Who collects: stamped on every event as `observer.*`.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub hostname: String,
    pub agency: String,
}

/// Why a batch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot persist the sequence counter: {0}")]
    Sequence(std::io::Error),
    #[error(transparent)]
    Route(#[from] RouteError),
}

/// Shared by every source task.
pub struct Pipeline {
    parser: Parser,
    identity: Identity,
    sequence: Mutex<SequenceAllocator>,
    router: Arc<Router>,
    metrics: Arc<Metrics>,
    /// Batches being built on the blocking pool at once, over all sources
    /// (see [`crate::ordered`]): one per core.
    build_slots: Arc<tokio::sync::Semaphore>,
    cores: usize,
}

impl Pipeline {
    pub fn new(
        parser: Parser,
        identity: Identity,
        sequence: SequenceAllocator,
        router: Arc<Router>,
        metrics: Arc<Metrics>,
    ) -> Arc<Pipeline> {
        metrics.last_sequence.set(sequence.last() as i64);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Pipeline {
            parser,
            identity,
            sequence: Mutex::new(sequence),
            router,
            metrics,
            build_slots: Arc::new(tokio::sync::Semaphore::new(cores)),
            cores,
        })
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Permits for building batches off the async workers.
    pub fn build_slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.build_slots
    }

    /// How many batches may be built at once (the machine's cores).
    pub fn cores(&self) -> usize {
        self.cores
    }

    fn with_sequence<T>(&self, f: impl FnOnce(&mut SequenceAllocator) -> T) -> T {
        let mut g = self.sequence.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Last sequence number handed out.
    pub fn last_sequence(&self) -> u64 {
        self.with_sequence(|s| s.last())
    }

    /// (first number of this run, how it was chosen).
    pub fn sequence_start(&self) -> (u64, &'static str) {
        self.with_sequence(|s| (s.first_of_run(), s.resume().as_str()))
    }

    /// Marks the sequence state clean (graceful shutdown).
    pub fn close_sequence(&self) -> std::io::Result<()> {
        self.with_sequence(|s| s.close())
    }

    /// Parses, stamps and routes a batch. Returns once the batch is accepted
    /// (durable in the buffer or handed to the producer); the batch's ack
    /// fires once every event is safe. Sources that can wait are held back
    /// (retrying) while the sequence state cannot be written; the error is
    /// returned only to UDP (which counts a drop) or once `cancel` is set.
    pub async fn process(
        &self,
        batch: &Batch,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<(), ProcessError> {
        let first = self.number(batch, cancel).await?;
        let records = self.build_numbered(batch, first);
        self.route_built(&records, batch).await
    }

    /// Allocates the batch's sequence numbers. Sources that can wait are
    /// held back, retrying every second, while the sequence state cannot be
    /// written; UDP gets the error at once (it counts a drop).
    pub async fn number(
        &self,
        batch: &Batch,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<u64, ProcessError> {
        let may_wait = batch.may_wait();
        loop {
            match self.allocate_sequence(batch.lines.len()) {
                Ok(first) => return Ok(first),
                Err(e) if may_wait && !cancel.is_cancelled() => {
                    tracing::error!(source = %batch.source.id, "{e}; retrying in 1s");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Routes a batch's records once built (the second half of
    /// [`Pipeline::process`]).
    pub async fn route_built(&self, records: &[Record], batch: &Batch) -> Result<(), ProcessError> {
        self.router
            .route(records, batch.ack.clone(), batch.may_wait())
            .await?;
        Ok(())
    }

    /// Hands out `n` consecutive sequence numbers (persisted) and returns the
    /// first. Numbering is separate from building so that batches built on
    /// several cores still carry numbers in the order they were read.
    pub fn allocate_sequence(&self, n: usize) -> Result<u64, ProcessError> {
        if n == 0 {
            return Ok(0);
        }
        let first = self.with_sequence(|s| s.allocate(n as u64)).map_err(|e| {
            self.metrics.state_write_errors.inc();
            ProcessError::Sequence(e)
        })?;
        self.metrics
            .last_sequence
            .set((first + n as u64 - 1) as i64);
        Ok(first)
    }

    /// The synchronous part of [`Pipeline::process`]: parses, stamps and
    /// serializes a batch whose events are numbered from `first` on (see
    /// [`Pipeline::allocate_sequence`]).
    pub fn build_numbered(&self, batch: &Batch, first: u64) -> Vec<Record> {
        let n = batch.lines.len();
        if n == 0 {
            return Vec::new();
        }
        self.metrics
            .received(&batch.source.id, batch.source.input, n as u64);
        let received = now_micros();
        let mut parser_counts: Vec<(&'static str, u64)> = Vec::new();
        let mut flag_counts = [0u64; 4];
        let mut records = Vec::with_capacity(n);
        let name = self.identity.name.as_bytes();
        let parser = batch.source.parser.as_ref().unwrap_or(&self.parser);
        // A connection's lines share one peer: its text is made once.
        let mut peer_text: Option<(std::net::SocketAddr, String, String)> = None;
        for (line, seq) in batch.lines.iter().zip(first..) {
            let parsed = parser.parse(&line.data, received);
            let mut ev = parsed.event;
            match parser_counts.iter_mut().find(|(p, _)| *p == parsed.parser) {
                Some((_, c)) => *c += 1,
                None => parser_counts.push((parsed.parser, 1)),
            }
            if line.truncated {
                ev.add_tag(tags::TRUNCATED);
            }
            // The tags are looked up once for all four flags.
            if let Some(Value::List(list)) = ev.fields.get("tags") {
                for (i, t) in [
                    tags::TRUNCATED,
                    tags::INVALID_UTF8,
                    tags::PARTIAL,
                    tags::UNPARSED,
                ]
                .iter()
                .enumerate()
                {
                    if list.iter().any(|v| v.as_str() == Some(t)) {
                        flag_counts[i] += 1;
                    }
                }
            }
            if let Some(ts) = line.timestamp {
                ev.timestamp = ts;
            }
            for (k, v) in &line.extra {
                ev.fields.insert(*k, v.clone());
            }
            let peer = line.peer.or(batch.peer);
            if let Some(addr) = peer {
                if peer_text.as_ref().is_none_or(|(a, _, _)| *a != addr) {
                    peer_text = Some((addr, addr.to_string(), addr.ip().to_string()));
                }
            }
            let texts = peer
                .and(peer_text.as_ref())
                .map(|(_, full, ip)| (full.as_str(), ip.as_str()));
            let f = &mut ev.fields;
            let mut stamps = stamp(
                f,
                &self.identity,
                batch.source.input,
                batch.file_path.as_deref(),
                texts.map(|(full, _)| full),
            );
            // The Kafka key is host.name, which every event gets.
            let key = match f.get_str("host.name") {
                Some(h) if !h.is_empty() => h.as_bytes().to_vec(),
                _ => {
                    let host = match texts {
                        Some((_, ip)) => ip,
                        None => self.identity.hostname.as_str(),
                    };
                    f.insert("host.name", host);
                    host.as_bytes().to_vec()
                }
            };
            // Numbered and serialized right away, while the event is hot in
            // the cache.
            let mut digits = itoa::Buffer::new();
            let seq_text = digits.format(seq);
            let id = qalqan_core::alert::event_id_text(&[name, seq_text.as_bytes()]);
            let seq_value = Value::from(seq);
            stamps.push("observer.sequence", seq_value.as_ref());
            stamps.push("event.id", ValueRef::Str(id.as_str()));
            records.push(Record {
                key,
                payload: ev
                    .to_json_string_stamped(stamps.fixed(), stamps.as_slice())
                    .into_bytes(),
            });
        }
        for (p, c) in parser_counts {
            self.metrics.events_parsed.with_label_values(&[p]).inc_by(c);
        }
        for (i, name) in ["truncated", "invalid_utf8", "partial", "unparsed"]
            .iter()
            .enumerate()
        {
            if flag_counts[i] > 0 {
                self.metrics
                    .events_flagged
                    .with_label_values(&[name])
                    .inc_by(flag_counts[i]);
            }
        }
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qalqan_core::event::Fields;

    fn identity() -> Identity {
        Identity {
            name: "col-1".into(),
            hostname: "gw.example".into(),
            agency: "mof".into(),
        }
    }

    /// What the wire form shows: the stamps as fields beside the line's.
    fn apply(f: &mut Fields, stamps: &Stamps<'_>) {
        for (k, v) in stamps.fixed() {
            f.push_new(*k, *v);
        }
        for (k, v) in stamps.as_slice() {
            match v {
                ValueRef::Str(s) => f.push_new(*k, *s),
                other => panic!("{k}: not a text stamp: {other:?}"),
            }
        }
    }

    #[test]
    fn a_line_cannot_claim_the_collectors_stamps() {
        let mut f = Fields::new();
        for (k, v) in [
            ("observer.name", "evil"),
            ("observer.sequence", "1"),
            ("event.id", "forged"),
            ("input.type", "file"),
            ("observer.vendor", "Fortinet"),
            ("log.source.address", "10.9.9.9:1"),
            ("log.file.path", "/var/log/claimed"),
            ("user.name", "root"),
        ] {
            f.insert(k, v);
        }
        let id = identity();
        let stamps = stamp(&mut f, &id, "tcp", None, Some("192.0.2.7:514"));
        apply(&mut f, &stamps);
        assert_eq!(f.get_str("observer.name"), Some("col-1"));
        assert_eq!(f.get_str("observer.hostname"), Some("gw.example"));
        assert_eq!(f.get_str("observer.type"), Some("collector"));
        assert_eq!(f.get_str("input.type"), Some("tcp"));
        assert_eq!(f.get_str("log.source.address"), Some("192.0.2.7:514"));
        assert!(!f.contains("observer.sequence") && !f.contains("event.id"));
        // Not stamped this time (no file): the line's own value stays, as
        // do fields the collector never sets.
        assert_eq!(f.get_str("log.file.path"), Some("/var/log/claimed"));
        assert_eq!(f.get_str("observer.vendor"), Some("Fortinet"));
        assert_eq!(f.get_str("user.name"), Some("root"));
        let names: Vec<&str> = f.iter().map(|(k, _)| k).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "every name once: {names:?}");
    }

    /// A pipeline whose producer points where nothing listens (nothing is
    /// sent: only `build_numbered` runs).
    fn pipeline(state: &std::path::Path) -> Arc<Pipeline> {
        use crate::config::{BufferMode, SinkConfig};
        use crate::router::{RouterSettings, Tracker};
        let metrics = Metrics::new("col-1", "mof");
        let (sink, _retries) = crate::sink::KafkaSink::new(
            &qalqan_core::kafka::KafkaSettings::plaintext("127.0.0.1:9"),
            &SinkConfig::default(),
            "test",
            "qalqan.events.mof".into(),
            metrics.clone(),
            Box::new(|_| {}),
        )
        .expect("producer");
        let router = Router::new(
            RouterSettings {
                mode: BufferMode::Off,
                overflow_after: std::time::Duration::from_secs(1),
                append_budget: 1 << 20,
            },
            sink,
            None,
            Arc::new(Mutex::new(Tracker::default())),
            metrics.clone(),
            tokio_util::sync::CancellationToken::new(),
        );
        Pipeline::new(
            Parser::new(Default::default()),
            identity(),
            SequenceAllocator::open(state).expect("sequence"),
            router,
            metrics,
        )
    }

    #[test]
    fn every_sent_event_carries_the_stamps_and_the_parsed_fields() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = pipeline(dir.path());
        let lines = [
            "<38>1 2026-03-01T10:00:00.000123Z web-00 sshd 4242 - - Failed password for invalid user bob from 203.0.113.124 port 1147 ssh2",
            r#"{"observer":{"name":"evil","sequence":1},"event":{"id":"forged"},"input":{"type":"file"},"log":{"source":{"address":"10.9.9.9:1"}},"message":"claims"}"#,
            "no parser claims this line",
        ];
        let peer: SocketAddr = ([192, 0, 2, 7], 51514).into();
        let batch = Batch {
            source: SourceInfo::new("tcp", "tcp", None),
            lines: lines
                .iter()
                .map(|l| RawLine::new(l.as_bytes().to_vec()))
                .collect(),
            file_path: None,
            peer: Some(peer),
            ack: None,
        };
        let first = 1000;
        let records = p.build_numbered(&batch, first);
        assert_eq!(records.len(), lines.len());
        let received = now_micros();
        for ((rec, line), seq) in records.iter().zip(lines).zip(first..) {
            let sent =
                qalqan_core::Event::from_json_bytes(&rec.payload, received).expect("decodes");
            let get = |k: &str| sent.get_str(k).map(str::to_owned);
            assert_eq!(get("observer.name").as_deref(), Some("col-1"), "{line}");
            assert_eq!(get("observer.hostname").as_deref(), Some("gw.example"));
            assert_eq!(get("observer.version").as_deref(), Some(crate::VERSION));
            assert_eq!(get("observer.type").as_deref(), Some("collector"));
            assert_eq!(get("input.type").as_deref(), Some("tcp"));
            assert_eq!(
                get("log.source.address").as_deref(),
                Some("192.0.2.7:51514")
            );
            assert_eq!(
                sent.fields.get("observer.sequence"),
                Some(&Value::from(seq))
            );
            let id = qalqan_core::alert::event_id(&[b"col-1", seq.to_string().as_bytes()]);
            assert_eq!(get("event.id"), Some(id));
            assert_eq!(sent.original, line);
            // Everything else is what the parser made of the line.
            let mut parsed = p.parser.parse(line.as_bytes(), received).event;
            parsed.fields.retain(|k| !is_stamp(k, true, false));
            parsed.fields.insert_if_absent("host.name", "192.0.2.7");
            assert_eq!(
                rec.key,
                parsed
                    .fields
                    .get_str("host.name")
                    .unwrap_or_default()
                    .as_bytes()
            );
            for (k, v) in parsed.fields.iter() {
                assert_eq!(sent.fields.get(k), Some(v), "{k} of {line}");
            }
            assert_eq!(sent.fields.len(), parsed.fields.len() + 8, "{line}");
        }
    }

    #[test]
    fn a_file_line_gets_its_path_and_keeps_a_claimed_address() {
        let mut f = Fields::new();
        f.insert("log.source.address", "10.9.9.9:1");
        f.insert("log.file.path", "/claimed");
        let id = identity();
        let stamps = stamp(&mut f, &id, "file", Some("/var/log/auth.log"), None);
        apply(&mut f, &stamps);
        assert_eq!(f.get_str("log.file.path"), Some("/var/log/auth.log"));
        assert_eq!(f.get_str("log.source.address"), Some("10.9.9.9:1"));
        assert_eq!(f.get_str("input.type"), Some("file"));
    }
}
