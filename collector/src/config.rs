//! The collector's TOML configuration: one struct per component, Vector-style.
//!
//! Every table denies unknown keys (a typo is an error naming the key), and
//! [`Validate`] checks what types cannot, naming the key and the fix. The
//! fully commented example is `deploy/collector/qalqan-collector.toml`; keep
//! the two in step.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use qalqan_core::config::{self as core_config, Invalid, Validate};
use qalqan_core::kafka::KafkaSettings;
use serde::Deserialize;

/// The whole collector config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub collector: CollectorSection,
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub sink: SinkConfig,
    #[serde(default)]
    pub buffer: BufferSection,
    #[serde(default)]
    pub parse: ParseSection,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub heartbeat: HeartbeatConfig,
    /// `[sources.<id>]` tables; the id labels metrics and names state files.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
}

/// `[collector]`: who this collector is and where it keeps state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorSection {
    /// `observer.name`: unique per collector; sequence numbers are counted per name.
    pub name: String,
    /// The agency: events go to `qalqan.events.<agency>`.
    pub agency: String,
    /// Sequence counter, file checkpoints, journald cursors, default buffer dir.
    pub state_dir: PathBuf,
    /// `observer.hostname`; defaults to the machine's host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// How long a graceful shutdown waits for Kafka to confirm what is in flight.
    #[serde(default = "default_shutdown_timeout", with = "core_config::duration")]
    pub shutdown_timeout: Duration,
}

fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `[sink]`: producer tuning for the Kafka output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// librdkafka `linger.ms`: how long to wait to fill a batch.
    #[serde(default = "default_linger", with = "core_config::duration")]
    pub linger: Duration,
    /// librdkafka `batch.size` in bytes.
    #[serde(
        default = "default_batch_bytes",
        deserialize_with = "core_config::size::deserialize"
    )]
    pub batch_bytes: u64,
    /// zstd level (1–19; librdkafka `compression.level`).
    #[serde(default = "default_zstd_level")]
    pub compression_level: i32,
    /// Events handed to the producer but not yet confirmed, at most.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight_events: usize,
    /// Wait before re-sending an event whose delivery failed.
    #[serde(default = "default_retry_backoff", with = "core_config::duration")]
    pub retry_backoff: Duration,
}

fn default_linger() -> Duration {
    Duration::from_millis(20)
}
fn default_batch_bytes() -> u64 {
    1 << 20
}
/// Level 1: on event streams it is about 1.6x faster than 3 and compresses
/// no worse (events repeat their structure; see the example config).
fn default_zstd_level() -> i32 {
    1
}
fn default_max_in_flight() -> usize {
    100_000
}
fn default_retry_backoff() -> Duration {
    Duration::from_secs(1)
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            linger: default_linger(),
            batch_bytes: default_batch_bytes(),
            compression_level: default_zstd_level(),
            max_in_flight_events: default_max_in_flight(),
            retry_backoff: default_retry_backoff(),
        }
    }
}

/// Where the disk buffer sits in the path to Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferMode {
    /// Every event is written to disk before it is sent: nothing accepted is
    /// lost even on a crash or power cut, at the cost of disk I/O.
    WriteAhead,
    /// Events go straight to Kafka; only when Kafka is down or slow do they
    /// spill to disk. Faster, but a crash loses what was in memory.
    Overflow,
    /// No disk buffer: back-pressure (or UDP drops) when Kafka is down.
    Off,
}

/// When the buffer syncs its writes to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    Always,
    Interval,
    Never,
}

/// `[buffer]`: the on-disk queue between parsing and Kafka.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferSection {
    #[serde(default = "default_buffer_mode")]
    pub mode: BufferMode,
    /// Defaults to `<state_dir>/buffer`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(
        default = "default_buffer_max",
        deserialize_with = "core_config::size::deserialize"
    )]
    pub max_bytes: u64,
    #[serde(
        default = "default_segment",
        deserialize_with = "core_config::size::deserialize"
    )]
    pub segment_bytes: u64,
    #[serde(default = "default_fsync")]
    pub fsync: FsyncMode,
    #[serde(default = "default_fsync_interval", with = "core_config::duration")]
    pub fsync_interval: Duration,
    /// Overflow mode: spill to disk once Kafka has confirmed nothing for this long.
    #[serde(default = "default_overflow_after", with = "core_config::duration")]
    pub overflow_after: Duration,
}

fn default_buffer_mode() -> BufferMode {
    BufferMode::WriteAhead
}
fn default_buffer_max() -> u64 {
    4 << 30
}
fn default_segment() -> u64 {
    64 << 20
}
fn default_fsync() -> FsyncMode {
    FsyncMode::Interval
}
fn default_fsync_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_overflow_after() -> Duration {
    Duration::from_secs(5)
}

impl Default for BufferSection {
    fn default() -> Self {
        BufferSection {
            mode: default_buffer_mode(),
            dir: None,
            max_bytes: default_buffer_max(),
            segment_bytes: default_segment(),
            fsync: default_fsync(),
            fsync_interval: default_fsync_interval(),
            overflow_after: default_overflow_after(),
        }
    }
}

impl BufferSection {
    /// The buffer directory, defaulting under the state dir.
    pub fn dir_in(&self, state_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| state_dir.join("buffer"))
    }
}

/// `[parse]` (and `[sources.<id>.parse]`): options of the shared parser
/// chain. A source's own table overrides the keys it sets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseSection {
    /// Longer lines are cut and tagged `qalqan.truncated` (default 64KiB).
    #[serde(default, deserialize_with = "opt_size")]
    pub max_line_bytes: Option<u64>,
    /// UTC offset of timestamps without a zone (RFC 3164): `+05:00`, `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Fixed year for RFC 3164 timestamps (replays of old files); default:
    /// inferred from the receive time.
    #[serde(default)]
    pub rfc3164_year: Option<i32>,
    /// Sigma `product` of web access logs (`nginx`, `apache`).
    #[serde(default)]
    pub web_product: Option<String>,
    /// Sigma logsource of generic JSON lines.
    #[serde(default)]
    pub json_product: Option<String>,
    #[serde(default)]
    pub json_service: Option<String>,
    #[serde(default)]
    pub json_category: Option<String>,
}

fn opt_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    core_config::size::deserialize(d).map(Some)
}

impl ParseSection {
    /// This table with unset keys taken from `global`.
    pub fn over(&self, global: &ParseSection) -> ParseSection {
        ParseSection {
            max_line_bytes: self.max_line_bytes.or(global.max_line_bytes),
            timezone: self.timezone.clone().or_else(|| global.timezone.clone()),
            rfc3164_year: self.rfc3164_year.or(global.rfc3164_year),
            web_product: self
                .web_product
                .clone()
                .or_else(|| global.web_product.clone()),
            json_product: self
                .json_product
                .clone()
                .or_else(|| global.json_product.clone()),
            json_service: self
                .json_service
                .clone()
                .or_else(|| global.json_service.clone()),
            json_category: self
                .json_category
                .clone()
                .or_else(|| global.json_category.clone()),
        }
    }

    pub fn max_line(&self) -> usize {
        self.max_line_bytes.unwrap_or(default_max_line()) as usize
    }

    /// The parser options these keys stand for (validated first).
    pub fn options(&self) -> qalqan_core::parse::ParseOptions {
        let mut o = qalqan_core::parse::ParseOptions {
            max_line_bytes: self.max_line(),
            ..Default::default()
        };
        if let Some(tz) = &self.timezone {
            if let Ok(off) = qalqan_core::parse::parse_utc_offset(tz) {
                o.local_offset = off;
            }
        }
        o.rfc3164_year = self.rfc3164_year;
        o.web_product = self.web_product.clone();
        o.json_logsource = qalqan_core::event::LogSource::new(
            self.json_product.as_deref(),
            self.json_service.as_deref(),
            self.json_category.as_deref(),
        );
        o
    }

    fn validate(&self, prefix: &str) -> Result<(), Invalid> {
        if let Some(v) = self.max_line_bytes {
            if !(256..=(16 << 20)).contains(&v) {
                return Err(bad(
                    format!("{prefix}.max_line_bytes"),
                    format!("{v} is out of range"),
                    "use a size from 256 B to 16MiB (default 64KiB)",
                ));
            }
        }
        if let Some(tz) = &self.timezone {
            if let Err(e) = qalqan_core::parse::parse_utc_offset(tz) {
                return Err(bad(
                    format!("{prefix}.timezone"),
                    e,
                    "write e.g. \"+05:00\" or \"UTC\"",
                ));
            }
        }
        if let Some(y) = self.rfc3164_year {
            if !(1970..=9999).contains(&y) {
                return Err(bad(
                    format!("{prefix}.rfc3164_year"),
                    format!("{y} is not a plausible year"),
                    "remove it to infer the year, or give a year such as 2015",
                ));
            }
        }
        Ok(())
    }
}

fn default_max_line() -> u64 {
    qalqan_core::parse::DEFAULT_MAX_LINE_BYTES as u64
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_metrics_listen")]
    pub listen: SocketAddr,
}

fn yes() -> bool {
    true
}
fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 19101))
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: default_metrics_listen(),
        }
    }
}

/// `[heartbeat]`: the liveness event sent through Kafka.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_heartbeat", with = "core_config::duration")]
    pub interval: Duration,
}

fn default_heartbeat() -> Duration {
    Duration::from_secs(30)
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            enabled: true,
            interval: default_heartbeat(),
        }
    }
}

/// One `[sources.<id>]` table, chosen by its `type` key.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    Udp(UdpSourceConfig),
    Tcp(TcpSourceConfig),
    Tls(TlsSourceConfig),
    File(FileSourceConfig),
    Journald(JournaldSourceConfig),
}

impl SourceConfig {
    /// The `input.type` this source stamps on its events.
    pub fn input_type(&self) -> &'static str {
        match self {
            SourceConfig::Udp(_) => "udp",
            SourceConfig::Tcp(_) => "tcp",
            SourceConfig::Tls(_) => "tls",
            SourceConfig::File(_) => "file",
            SourceConfig::Journald(_) => "journald",
        }
    }

    /// The source's own `[sources.<id>.parse]` table, if any.
    pub fn parse(&self) -> Option<&ParseSection> {
        match self {
            SourceConfig::Udp(c) => c.parse.as_ref(),
            SourceConfig::Tcp(c) => c.parse.as_ref(),
            SourceConfig::Tls(c) => c.parse.as_ref(),
            SourceConfig::File(c) => c.parse.as_ref(),
            SourceConfig::Journald(c) => c.parse.as_ref(),
        }
    }

    fn listen(&self) -> Option<SocketAddr> {
        match self {
            SourceConfig::Udp(c) => Some(c.listen),
            SourceConfig::Tcp(c) => Some(c.listen),
            SourceConfig::Tls(c) => Some(c.listen),
            _ => None,
        }
    }
}

/// `type = "udp"`: syslog over UDP, one message per datagram.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpSourceConfig {
    pub listen: SocketAddr,
    /// Kernel receive buffer (SO_RCVBUF); large to ride out bursts.
    #[serde(
        default = "default_rcvbuf",
        deserialize_with = "core_config::size::deserialize"
    )]
    pub receive_buffer: u64,
    /// Parallel parse tasks behind the receiving thread.
    #[serde(default = "default_udp_workers")]
    pub workers: usize,
    /// Memory for datagrams received and not yet parsed: absorbs bursts
    /// faster than parsing and sending, where the kernel buffer alone holds
    /// well under a second.
    #[serde(
        default = "default_udp_queue",
        deserialize_with = "core_config::size::deserialize"
    )]
    pub queue: u64,
    /// Beyond `queue`, a spool file in the state directory takes the
    /// burst (0: none). Beyond both, datagrams are dropped and counted
    /// (`reason="queue_full"`).
    #[serde(
        default = "default_udp_spool",
        deserialize_with = "core_config::size::deserialize"
    )]
    pub spool: u64,
    /// Parser options for this source only (override `[parse]`).
    #[serde(default)]
    pub parse: Option<ParseSection>,
}

fn default_rcvbuf() -> u64 {
    32 << 20
}
fn default_udp_queue() -> u64 {
    256 << 20
}
fn default_udp_spool() -> u64 {
    1 << 30
}
fn default_udp_workers() -> usize {
    2
}

/// `type = "tcp"`: syslog over TCP, RFC 6587 octet counting or newline framing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSourceConfig {
    pub listen: SocketAddr,
    /// Frames longer than this are cut, tagged `qalqan.truncated`, the rest skipped.
    #[serde(
        default = "default_max_line",
        deserialize_with = "core_config::size::deserialize"
    )]
    pub max_frame_bytes: u64,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Parser options for this source only (override `[parse]`).
    #[serde(default)]
    pub parse: Option<ParseSection>,
}

fn default_max_connections() -> usize {
    1024
}

/// `type = "tls"`: syslog over TLS (RFC 5425 framing, i.e. octet counting; newline also accepted).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSourceConfig {
    pub listen: SocketAddr,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA bundle (PEM) that signs client certificates.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Refuse clients without a certificate signed by `client_ca`.
    #[serde(default)]
    pub require_client_cert: bool,
    #[serde(
        default = "default_max_line",
        deserialize_with = "core_config::size::deserialize"
    )]
    pub max_frame_bytes: u64,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A client that has not finished its TLS handshake by then is dropped.
    #[serde(default = "default_handshake_timeout", with = "core_config::duration")]
    pub handshake_timeout: Duration,
    /// Parser options for this source only (override `[parse]`).
    #[serde(default)]
    pub parse: Option<ParseSection>,
}

fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Where to start in a file (or journal) that has no checkpoint yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    Beginning,
    End,
}

/// `type = "file"`: tail files matched by glob patterns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Absolute glob patterns, e.g. `/var/log/nginx/*.log`.
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default = "default_file_read_from")]
    pub read_from: ReadFrom,
    #[serde(default = "default_poll", with = "core_config::duration")]
    pub poll_interval: Duration,
    #[serde(default = "default_glob_interval", with = "core_config::duration")]
    pub glob_interval: Duration,
    /// A last line without newline is sent once the file has not grown for this long.
    #[serde(default = "default_eof_timeout", with = "core_config::duration")]
    pub eof_timeout: Duration,
    /// A file renamed away or deleted is still read this long after it stopped growing.
    #[serde(default = "default_rotate_wait", with = "core_config::duration")]
    pub rotate_wait: Duration,
    #[serde(
        default = "default_max_line",
        deserialize_with = "core_config::size::deserialize"
    )]
    pub max_line_bytes: u64,
    /// How often confirmed positions are saved while lines keep coming.
    #[serde(
        default = "default_checkpoint_interval",
        with = "core_config::duration"
    )]
    pub checkpoint_interval: Duration,
    /// Parser options for this source only (override `[parse]`).
    #[serde(default)]
    pub parse: Option<ParseSection>,
}

/// A position saved this often bounds what a crash (SIGKILL, power cut)
/// makes the collector send again to about this much time's worth of
/// confirmed events; a clean stop saves the exact position. Each save is a
/// small file written and fsynced, so saving four times a second is cheap.
fn default_checkpoint_interval() -> Duration {
    Duration::from_millis(250)
}

fn default_file_read_from() -> ReadFrom {
    ReadFrom::Beginning
}
fn default_poll() -> Duration {
    Duration::from_millis(250)
}
fn default_glob_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_eof_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_rotate_wait() -> Duration {
    Duration::from_secs(10)
}

/// `type = "journald"`: follow the systemd journal through `journalctl`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournaldSourceConfig {
    /// The `journalctl` program (looked up on PATH unless absolute).
    #[serde(default = "default_journalctl")]
    pub command: String,
    /// Only these units (`journalctl --unit`); empty = everything.
    #[serde(default)]
    pub units: Vec<String>,
    #[serde(default = "default_journal_read_from")]
    pub read_from: ReadFrom,
    /// Extra arguments passed to journalctl as they are (e.g. `--directory=...`).
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// How often the confirmed cursor is saved while entries keep coming.
    #[serde(
        default = "default_checkpoint_interval",
        with = "core_config::duration"
    )]
    pub checkpoint_interval: Duration,
    /// Parser options for this source only (override `[parse]`).
    #[serde(default)]
    pub parse: Option<ParseSection>,
}

fn default_journalctl() -> String {
    "journalctl".into()
}
fn default_journal_read_from() -> ReadFrom {
    ReadFrom::End
}

fn bad(key: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Invalid {
    Invalid::new(key, problem, fix)
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Validate for Config {
    fn validate(&self) -> Result<(), Invalid> {
        self.validate_with(false)
    }
}

impl Config {
    /// Validation; `stdin_replay` allows a config without sources.
    pub fn validate_with(&self, stdin_replay: bool) -> Result<(), Invalid> {
        let c = &self.collector;
        if !name_ok(&c.name) {
            return Err(bad(
                "collector.name",
                format!(
                    "`{}` is empty or has characters other than A-Z a-z 0-9 - _ .",
                    c.name
                ),
                "give each collector a unique name such as `mof-dc1-col1`",
            ));
        }
        if !qalqan_core::topics::valid_agency(&c.agency) {
            return Err(bad(
                "collector.agency",
                format!("`{}` is not a valid agency name", c.agency),
                "use 1-64 characters from A-Z a-z 0-9 - _ (it becomes part of the topic name)",
            ));
        }
        if c.state_dir.as_os_str().is_empty() {
            return Err(bad(
                "collector.state_dir",
                "is empty",
                "set a writable directory such as /var/lib/qalqan-collector",
            ));
        }
        if let Some(h) = &c.hostname {
            if h.trim().is_empty() {
                return Err(bad(
                    "collector.hostname",
                    "is empty",
                    "remove the key to use the machine's host name",
                ));
            }
        }
        self.kafka.validate()?;
        self.validate_sink()?;
        self.validate_buffer()?;
        self.parse.validate("parse")?;
        if self.heartbeat.interval < Duration::from_secs(1) {
            return Err(bad(
                "heartbeat.interval",
                "is shorter than 1s",
                "use e.g. `30s`",
            ));
        }
        if self.sources.is_empty() && !stdin_replay {
            return Err(bad(
                "sources",
                "no source is configured",
                "add at least one [sources.<id>] table with type = udp, tcp, tls, file or journald",
            ));
        }
        let mut listens: BTreeMap<(SocketAddr, bool), &str> = BTreeMap::new();
        for (id, src) in &self.sources {
            let key = format!("sources.{id}");
            if !name_ok(id) {
                return Err(bad(
                    &key,
                    "the source id has characters other than A-Z a-z 0-9 - _ .",
                    "rename the table, e.g. [sources.syslog_udp]",
                ));
            }
            if let Some(addr) = src.listen() {
                let is_udp = matches!(src, SourceConfig::Udp(_));
                if let Some(other) = listens.insert((addr, is_udp), id) {
                    return Err(bad(
                        format!("{key}.listen"),
                        format!("{addr} is also used by sources.{other}"),
                        "give each network source its own address or port",
                    ));
                }
            }
            if let Some(p) = src.parse() {
                p.validate(&format!("{key}.parse"))?;
            }
            validate_source(&key, src)?;
        }
        Ok(())
    }

    fn validate_sink(&self) -> Result<(), Invalid> {
        let s = &self.sink;
        if s.linger > Duration::from_secs(5) {
            return Err(bad("sink.linger", "is longer than 5s", "use e.g. `20ms`"));
        }
        if !(1024..=(64 << 20)).contains(&s.batch_bytes) {
            return Err(bad(
                "sink.batch_bytes",
                format!("{} is out of range", s.batch_bytes),
                "use a size from 1KiB to 64MiB (default 1MiB)",
            ));
        }
        if !(1..=19).contains(&s.compression_level) {
            return Err(bad(
                "sink.compression_level",
                format!("{} is not a zstd level", s.compression_level),
                "use 1 to 19 (default 3)",
            ));
        }
        if !(100..=10_000_000).contains(&s.max_in_flight_events) {
            return Err(bad(
                "sink.max_in_flight_events",
                format!("{} is out of range", s.max_in_flight_events),
                "use 100 to 10000000 (default 100000)",
            ));
        }
        if s.retry_backoff < Duration::from_millis(10) {
            return Err(bad(
                "sink.retry_backoff",
                "is shorter than 10ms",
                "use e.g. `1s`",
            ));
        }
        Ok(())
    }

    fn validate_buffer(&self) -> Result<(), Invalid> {
        let b = &self.buffer;
        if b.mode == BufferMode::Off {
            return Ok(());
        }
        if b.segment_bytes < (1 << 20) {
            return Err(bad(
                "buffer.segment_bytes",
                "is smaller than 1MiB",
                "use e.g. `64MiB`",
            ));
        }
        if b.max_bytes < 2 * b.segment_bytes {
            return Err(bad(
                "buffer.max_bytes",
                format!(
                    "{} is less than two segments ({} each)",
                    b.max_bytes, b.segment_bytes
                ),
                "raise buffer.max_bytes or lower buffer.segment_bytes",
            ));
        }
        // One event (its JSON may be several times its line) must fit in
        // one buffer segment.
        let seg = b.segment_bytes.min(b.max_bytes / 4);
        let mut max_line = self.parse.max_line() as u64;
        for src in self.sources.values() {
            if let Some(p) = src.parse() {
                max_line = max_line.max(p.over(&self.parse).max_line() as u64);
            }
        }
        if seg < 7 * max_line {
            return Err(bad(
                "buffer.segment_bytes",
                format!(
                    "segments of {seg} bytes (min of segment_bytes and max_bytes/4) cannot hold an event of a {max_line}-byte line"
                ),
                "raise buffer.segment_bytes and buffer.max_bytes to at least 7x and 28x parse.max_line_bytes",
            ));
        }
        if b.fsync == FsyncMode::Interval && b.fsync_interval < Duration::from_millis(1) {
            return Err(bad(
                "buffer.fsync_interval",
                "is shorter than 1ms",
                "use e.g. `1s`, or fsync = \"always\"",
            ));
        }
        if b.overflow_after < Duration::from_millis(100) {
            return Err(bad(
                "buffer.overflow_after",
                "is shorter than 100ms",
                "use e.g. `5s`",
            ));
        }
        Ok(())
    }
}

/// A config for a stdin replay: like [`Config`], but sources are optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
struct ReplayConfig(Config);

impl Validate for ReplayConfig {
    fn validate(&self) -> Result<(), Invalid> {
        self.0.validate_with(true)
    }
}

/// Parses and validates config text; `stdin_replay` allows no sources.
pub fn load_str(
    text: &str,
    path: &Path,
    stdin_replay: bool,
) -> Result<Config, core_config::ConfigError> {
    if stdin_replay {
        core_config::from_str::<ReplayConfig>(text, path).map(|r| r.0)
    } else {
        core_config::from_str::<Config>(text, path)
    }
}

/// Checks what only trying can show (TLS certificates and keys load and
/// match) and returns a summary of the effective configuration.
pub fn deep_check(cfg: &Config) -> Result<String, String> {
    let mut out = format!(
        "collector {} (agency {}) -> Kafka {} topic {}\nbuffer: {:?}{}\nstate: {}\n",
        cfg.collector.name,
        cfg.collector.agency,
        cfg.kafka.brokers,
        qalqan_core::topics::events_topic(&cfg.collector.agency),
        cfg.buffer.mode,
        match cfg.buffer.mode {
            BufferMode::Off => String::new(),
            _ => format!(
                " in {} (max {} bytes, fsync {:?})",
                cfg.buffer.dir_in(&cfg.collector.state_dir).display(),
                cfg.buffer.max_bytes,
                cfg.buffer.fsync
            ),
        },
        cfg.collector.state_dir.display()
    );
    for (id, src) in &cfg.sources {
        if let SourceConfig::Tls(t) = src {
            crate::sources::tcp::tls_acceptor(id, t).map_err(|e| e.to_string())?;
        }
        let what = match src {
            SourceConfig::Udp(u) => format!("udp {}", u.listen),
            SourceConfig::Tcp(t) => format!("tcp {}", t.listen),
            SourceConfig::Tls(t) => format!(
                "tls {}{}",
                t.listen,
                if t.require_client_cert {
                    " (client certificates required)"
                } else {
                    ""
                }
            ),
            SourceConfig::File(f) => format!("file {}", f.include.join(", ")),
            SourceConfig::Journald(j) => format!("journald via {}", j.command),
        };
        out.push_str(&format!("source {id}: {what}\n"));
    }
    Ok(out)
}

fn validate_frame(key: &str, v: u64) -> Result<(), Invalid> {
    if !(256..=(16 << 20)).contains(&v) {
        return Err(bad(
            key,
            format!("{v} is out of range"),
            "use a size from 256 B to 16MiB (default 64KiB)",
        ));
    }
    Ok(())
}

fn validate_source(key: &str, src: &SourceConfig) -> Result<(), Invalid> {
    match src {
        SourceConfig::Udp(u) => {
            if !(64 << 10..=1 << 30).contains(&u.receive_buffer) {
                return Err(bad(
                    format!("{key}.receive_buffer"),
                    format!("{} is out of range", u.receive_buffer),
                    "use 64KiB to 1GiB (default 32MiB)",
                ));
            }
            if !(1..=64).contains(&u.workers) {
                return Err(bad(
                    format!("{key}.workers"),
                    format!("{} is out of range", u.workers),
                    "use 1 to 64 (default 2)",
                ));
            }
        }
        SourceConfig::Tcp(t) => {
            validate_frame(&format!("{key}.max_frame_bytes"), t.max_frame_bytes)?;
            if t.max_connections == 0 {
                return Err(bad(
                    format!("{key}.max_connections"),
                    "is 0",
                    "allow at least 1 connection (default 1024)",
                ));
            }
        }
        SourceConfig::Tls(t) => {
            validate_frame(&format!("{key}.max_frame_bytes"), t.max_frame_bytes)?;
            if t.max_connections == 0 {
                return Err(bad(
                    format!("{key}.max_connections"),
                    "is 0",
                    "allow at least 1 connection (default 1024)",
                ));
            }
            for (name, path) in [
                ("cert", Some(&t.cert)),
                ("key", Some(&t.key)),
                ("client_ca", t.client_ca.as_ref()),
            ] {
                if let Some(p) = path {
                    if let Err(e) = std::fs::metadata(p) {
                        return Err(bad(
                            format!("{key}.{name}"),
                            format!("cannot read {}: {e}", p.display()),
                            "point it at a readable PEM file",
                        ));
                    }
                }
            }
            if t.require_client_cert && t.client_ca.is_none() {
                return Err(bad(
                    format!("{key}.client_ca"),
                    "require_client_cert = true but no client_ca is set",
                    "set client_ca to the PEM bundle that signs client certificates",
                ));
            }
        }
        SourceConfig::File(f) => {
            if f.include.is_empty() {
                return Err(bad(
                    format!("{key}.include"),
                    "is empty",
                    "list at least one absolute glob such as /var/log/auth.log",
                ));
            }
            for (name, list) in [("include", &f.include), ("exclude", &f.exclude)] {
                for (i, pat) in list.iter().enumerate() {
                    let k = format!("{key}.{name}[{i}]");
                    if !pat.starts_with('/') {
                        return Err(bad(
                            k,
                            format!("`{pat}` is not absolute"),
                            "start the pattern with /",
                        ));
                    }
                    if let Err(e) = glob::Pattern::new(pat) {
                        return Err(bad(
                            k,
                            format!("`{pat}` is not a glob: {e}"),
                            "fix the pattern",
                        ));
                    }
                }
            }
            validate_frame(&format!("{key}.max_line_bytes"), f.max_line_bytes)?;
            validate_interval(
                &format!("{key}.poll_interval"),
                f.poll_interval,
                "use e.g. `250ms`",
            )?;
            validate_checkpoint_interval(key, f.checkpoint_interval)?;
            if f.glob_interval < Duration::from_millis(10) {
                return Err(bad(
                    format!("{key}.glob_interval"),
                    "is shorter than 10ms",
                    "use e.g. `1s`",
                ));
            }
        }
        SourceConfig::Journald(j) => {
            if j.command.trim().is_empty() {
                return Err(bad(
                    format!("{key}.command"),
                    "is empty",
                    "remove it to use `journalctl` from PATH",
                ));
            }
            validate_checkpoint_interval(key, j.checkpoint_interval)?;
        }
    }
    Ok(())
}

fn validate_checkpoint_interval(key: &str, every: Duration) -> Result<(), Invalid> {
    validate_interval(
        &format!("{key}.checkpoint_interval"),
        every,
        "use e.g. `250ms`; longer means more events sent again after a crash",
    )
}

/// A source's polling or saving interval: 10 ms to a minute.
fn validate_interval(key: &str, every: Duration, fix: &str) -> Result<(), Invalid> {
    if every < Duration::from_millis(10) || every > Duration::from_secs(60) {
        return Err(bad(key, "is outside 10ms..60s", fix));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[collector]
name = "c1"
agency = "mof"
state_dir = "/tmp/x"
[kafka]
brokers = "127.0.0.1:19092"
"#;

    fn load(extra: &str) -> Result<Config, qalqan_core::config::ConfigError> {
        core_config::from_str(&format!("{BASE}{extra}"), Path::new("t.toml"))
    }

    #[test]
    fn minimal_config_with_a_source_loads_with_defaults() {
        let c = load("[sources.s]\ntype = \"udp\"\nlisten = \"127.0.0.1:5514\"\n").expect("valid");
        assert_eq!(c.buffer.mode, BufferMode::WriteAhead);
        assert_eq!(c.heartbeat.interval, Duration::from_secs(30));
        match &c.sources["s"] {
            SourceConfig::Udp(u) => assert_eq!(u.receive_buffer, 32 << 20),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_the_key() {
        let e = load("[sources.s]\ntype = \"tcp\"\nlisten = \"127.0.0.1:5514\"\nmax_frame = 3\n")
            .unwrap_err();
        assert!(e.to_string().contains("max_frame"), "{e}");
        let e =
            load("[sources.s]\ntype = \"tcp\"\nlisten = \"127.0.0.1:5514\"\nmax_frame_bytes = 3\n")
                .unwrap_err();
        assert!(
            e.to_string().contains("key `sources.s.max_frame_bytes`"),
            "{e}"
        );
        let e = load("[sources.s]\ntype = \"file\"\ninclude = [\"var/log/*.log\"]\n").unwrap_err();
        assert!(e.to_string().contains("key `sources.s.include[0]`"), "{e}");
        let e = load("[buffer]\nmode = \"sometimes\"\n[sources.s]\ntype = \"udp\"\nlisten = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(e.to_string().contains("sometimes"), "{e}");
        let e = load("").unwrap_err();
        assert!(e.to_string().contains("key `sources`"), "{e}");
        let e = load("[sources.a]\ntype = \"udp\"\nlisten = \"127.0.0.1:1\"\n[sources.b]\ntype = \"udp\"\nlisten = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(e.to_string().contains("key `sources.b.listen`"), "{e}");
        let e = load("[sources.s]\ntype = \"file\"\ninclude = [\"/var/log/x.log\"]\ncheckpoint_interval = \"5ms\"\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("key `sources.s.checkpoint_interval`"),
            "{e}"
        );
        let e =
            load("[sources.j]\ntype = \"journald\"\ncheckpoint_interval = \"2m\"\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("key `sources.j.checkpoint_interval`"),
            "{e}"
        );
    }

    #[test]
    fn positions_are_saved_four_times_a_second_by_default() {
        let c = load("[sources.f]\ntype = \"file\"\ninclude = [\"/var/log/x.log\"]\n[sources.j]\ntype = \"journald\"\n").expect("valid");
        match (&c.sources["f"], &c.sources["j"]) {
            (SourceConfig::File(f), SourceConfig::Journald(j)) => {
                assert_eq!(f.checkpoint_interval, Duration::from_millis(250));
                assert_eq!(j.checkpoint_interval, Duration::from_millis(250));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn agency_must_be_topic_safe() {
        let text = BASE.replace("agency = \"mof\"", "agency = \"m.o.f\"");
        let e = core_config::from_str::<Config>(&text, Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("key `collector.agency`"), "{e}");
    }
}
