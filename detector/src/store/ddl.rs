//! The ClickHouse schema, written once per dialect.
//!
//! Every stored column is declared with a modern and a legacy type that have
//! the same RowBinary encoding, so [`super::EventRow`] and
//! [`super::AlertRow`] insert into either:
//!
//! | modern (≥ 22.1)              | legacy (18.16 …)                      | encoding                 |
//! |------------------------------|---------------------------------------|--------------------------|
//! | `DateTime64(6, 'UTC')`       | `Int64` (microseconds)                | i64 LE                   |
//! | `LowCardinality(String)`     | `String`                              | varint length + bytes    |
//! | `IPv6`                       | `FixedString(16)`                     | 16 bytes, network order  |
//! | `Map(String, String)`        | `Tuple(Array(Tuple(String, String)))` | varint n + n (k, v)      |
//!
//! 18.16 flattens a top-level `Array(Tuple(..))` into one array per element
//! (which would change the encoding); wrapping it in a one-element `Tuple`
//! keeps the bytes identical to `Map`.
//!
//! Both dialects add the same derived columns so that queries read the same:
//! `time` (the event time as a second-resolution `DateTime`, materialized,
//! used by partitions, sort keys and the cookbook), `source_address` /
//! `destination_address` (the IP as text, `''` when absent), and
//! `fields_keys` / `fields_values` (the map as two arrays, so
//! `fields_values[indexOf(fields_keys, 'http.version')]` works everywhere).
//! In legacy tables `timestamp` is an integer: compare `time`, not
//! `timestamp`, with dates.

use super::Dialect;

/// The tables qalqan writes, by name.
pub const EVENTS: &str = "events";
pub const ALERTS: &str = "alerts";
pub const EVENTS_5M: &str = "events_5m";
pub const ALERTS_5M: &str = "alerts_5m";
pub const MIGRATIONS: &str = "schema_migrations";

/// Default retention of events, in days.
pub const DEFAULT_TTL_DAYS: u32 = 90;
/// Default retention of alerts and rollups, in days: they are small and
/// responders look back further for alerts than for raw events.
pub const DEFAULT_ALERTS_TTL_DAYS: u32 = 365;

/// Inputs to the DDL besides the dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaOptions {
    /// Database the tables live in; `[A-Za-z0-9_]+`, checked by the config.
    pub database: String,
    /// Retention of `events`, in days (modern: TTL; legacy: `schema prune`).
    pub ttl_days: u32,
    /// Retention of `alerts` and the rollups, in days.
    pub alerts_ttl_days: u32,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        SchemaOptions {
            database: "qalqan".into(),
            ttl_days: DEFAULT_TTL_DAYS,
            alerts_ttl_days: DEFAULT_ALERTS_TTL_DAYS,
        }
    }
}

impl SchemaOptions {
    /// Retention in days of one of qalqan's tables.
    pub fn ttl_of(&self, table: &str) -> u32 {
        if table == EVENTS {
            self.ttl_days
        } else {
            self.alerts_ttl_days
        }
    }
}

/// How a column gets its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Sent by the writer: part of the row type, in this order.
    Stored,
    /// Computed by the server (`MATERIALIZED` or `ALIAS`).
    Derived,
}

/// One column: its name and its declaration in each dialect.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub modern: &'static str,
    pub legacy: &'static str,
    pub origin: Origin,
}

const fn stored(name: &'static str, modern: &'static str, legacy: &'static str) -> Column {
    Column {
        name,
        modern,
        legacy,
        origin: Origin::Stored,
    }
}

const fn derived(name: &'static str, modern: &'static str, legacy: &'static str) -> Column {
    Column {
        name,
        modern,
        legacy,
        origin: Origin::Derived,
    }
}

impl Column {
    fn declaration(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Modern => self.modern,
            Dialect::Legacy => self.legacy,
        }
    }
}

// Shared spellings.
const TS: &str = "DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1))";
const LC: &str = "LowCardinality(String)";
const STR: &str = "String";
const ZSTR: &str = "String CODEC(ZSTD(1))";
const IP: &str = "IPv6";
const FS16: &str = "FixedString(16)";
const MAP: &str = "Map(String, String) CODEC(ZSTD(1))";
const TUPLE_MAP: &str = "Tuple(Array(Tuple(String, String)))";

/// The text of an IP column, `''` when absent, IPv4 without `::ffff:`.
macro_rules! address_alias {
    ($col:literal) => {
        concat!(
            "String ALIAS replaceRegexpOne(replaceRegexpOne(IPv6NumToString(",
            $col,
            "), '^::$', ''), '^::ffff:([0-9.]+)$', '\\\\1')"
        )
    };
}

/// `events`: every normalized event, the raw line always kept.
pub const EVENT_COLUMNS: &[Column] = &[
    stored("timestamp", TS, "Int64"),
    derived(
        "time",
        "DateTime('UTC') MATERIALIZED toDateTime(timestamp) CODEC(DoubleDelta, ZSTD(1))",
        "DateTime('UTC') MATERIALIZED toDateTime(intDiv(timestamp, 1000000))",
    ),
    stored(
        "ingested",
        "DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1))",
        "Int64",
    ),
    stored("agency", LC, STR),
    stored("event_id", ZSTR, STR),
    stored("observer_name", LC, STR),
    stored(
        "observer_sequence",
        "UInt64 CODEC(Delta, ZSTD(1))",
        "UInt64",
    ),
    stored("host_name", LC, STR),
    stored("source_ip", IP, FS16),
    stored("source_port", "UInt16", "UInt16"),
    stored("destination_ip", IP, FS16),
    stored("destination_port", "UInt16", "UInt16"),
    stored("user_name", ZSTR, STR),
    stored("process_name", LC, STR),
    stored("process_pid", "UInt32", "UInt32"),
    stored("process_command_line", ZSTR, STR),
    stored("event_dataset", LC, STR),
    stored(
        "event_category",
        "Array(LowCardinality(String))",
        "Array(String)",
    ),
    stored("event_action", LC, STR),
    stored("event_outcome", LC, STR),
    stored("url_original", ZSTR, STR),
    stored("http_request_method", LC, STR),
    stored("http_response_status_code", "UInt16", "UInt16"),
    stored("user_agent_original", ZSTR, STR),
    stored("logsource_product", LC, STR),
    stored("logsource_service", LC, STR),
    stored("logsource_category", LC, STR),
    stored("message", "String CODEC(ZSTD(3))", STR),
    stored("original", "String CODEC(ZSTD(3))", STR),
    stored("tags", "Array(LowCardinality(String))", "Array(String)"),
    stored("fields", MAP, TUPLE_MAP),
    derived(
        "source_address",
        address_alias!("source_ip"),
        address_alias!("source_ip"),
    ),
    derived(
        "destination_address",
        address_alias!("destination_ip"),
        address_alias!("destination_ip"),
    ),
    derived(
        "fields_keys",
        "Array(String) ALIAS mapKeys(fields)",
        "Array(String) ALIAS arrayMap(f -> f.1, fields.1)",
    ),
    derived(
        "fields_values",
        "Array(String) ALIAS mapValues(fields)",
        "Array(String) ALIAS arrayMap(f -> f.2, fields.1)",
    ),
];

/// Modern skip indexes on `events`: the pivots responders run over 90 days
/// of every agency (an IP, a user, an event id from an alert's evidence).
const EVENT_INDEXES: &[&str] = &[
    "INDEX source_ip_bloom source_ip TYPE bloom_filter(0.01) GRANULARITY 4",
    "INDEX destination_ip_bloom destination_ip TYPE bloom_filter(0.01) GRANULARITY 4",
    "INDEX user_name_bloom user_name TYPE bloom_filter(0.01) GRANULARITY 4",
    "INDEX event_id_bloom event_id TYPE bloom_filter(0.01) GRANULARITY 4",
];

/// `alerts`: the `qalqan_core::Alert` model, duplicates by id collapsing.
pub const ALERT_COLUMNS: &[Column] = &[
    stored("id", STR, STR),
    derived(
        "time",
        "DateTime('UTC') MATERIALIZED toDateTime(window_start)",
        "DateTime('UTC') MATERIALIZED toDateTime(intDiv(window_start, 1000000))",
    ),
    derived(
        "time_end",
        "DateTime('UTC') MATERIALIZED toDateTime(window_end)",
        "DateTime('UTC') MATERIALIZED toDateTime(intDiv(window_end, 1000000))",
    ),
    stored("agency", LC, STR),
    stored("rule_id", LC, STR),
    stored("rule_title", LC, STR),
    stored("rule_author", LC, STR),
    stored("rule_level", LC, STR),
    stored(
        "rule_tags",
        "Array(LowCardinality(String))",
        "Array(String)",
    ),
    stored("rule_kind", LC, STR),
    stored("group_key", MAP, TUPLE_MAP),
    stored("source_ips", "Array(String)", "Array(String)"),
    stored("user_names", "Array(String)", "Array(String)"),
    stored("host_names", "Array(String)", "Array(String)"),
    stored("urls", "Array(String)", "Array(String)"),
    stored("window_start", "DateTime64(6, 'UTC')", "Int64"),
    stored("window_end", "DateTime64(6, 'UTC')", "Int64"),
    stored("count", "UInt64", "UInt64"),
    stored("value", "Nullable(Float64)", "Nullable(Float64)"),
    stored("suppressed", "UInt64", "UInt64"),
    stored("evidence.event_id", "Array(String)", "Array(String)"),
    stored(
        "evidence.timestamp",
        "Array(DateTime64(6, 'UTC'))",
        "Array(Int64)",
    ),
    stored("evidence.original", "Array(String)", "Array(String)"),
    stored("created", "DateTime64(6, 'UTC')", "Int64"),
    derived(
        "group_keys",
        "Array(String) ALIAS mapKeys(group_key)",
        "Array(String) ALIAS arrayMap(f -> f.1, group_key.1)",
    ),
    derived(
        "group_values",
        "Array(String) ALIAS mapValues(group_key)",
        "Array(String) ALIAS arrayMap(f -> f.2, group_key.1)",
    ),
];

/// The stored column names of a table, in row order (what a writer sends).
pub fn stored_columns(columns: &[Column]) -> Vec<&'static str> {
    columns
        .iter()
        .filter(|c| c.origin == Origin::Stored)
        .map(|c| c.name)
        .collect()
}

/// `a`.`b` is how Nested columns are declared: `evidence Nested(...)`.
/// Everything else is `name type`.
fn column_list(columns: &[Column], dialect: Dialect, extra: &[&str]) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut nested: Option<(String, Vec<String>)> = None;
    for c in columns {
        if let Some((parent, child)) = c.name.split_once('.') {
            let decl = c.declaration(dialect);
            // Inside Nested(...) the element type is given, not the array.
            let inner = decl
                .strip_prefix("Array(")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or(decl);
            match &mut nested {
                Some((p, children)) if p == parent => children.push(format!("{child} {inner}")),
                _ => {
                    if let Some((p, children)) = nested.take() {
                        lines.push(format!("{p} Nested({})", children.join(", ")));
                    }
                    nested = Some((parent.to_owned(), vec![format!("{child} {inner}")]));
                }
            }
            continue;
        }
        if let Some((p, children)) = nested.take() {
            lines.push(format!("{p} Nested({})", children.join(", ")));
        }
        lines.push(format!("{} {}", c.name, c.declaration(dialect)));
    }
    if let Some((p, children)) = nested.take() {
        lines.push(format!("{p} Nested({})", children.join(", ")));
    }
    lines.extend(extra.iter().map(|s| (*s).to_owned()));
    lines
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join(",\n")
}

fn ttl_clause(dialect: Dialect, column: &str, days: u32) -> String {
    match dialect {
        Dialect::Modern => format!("\nTTL {column} + INTERVAL {days} DAY"),
        Dialect::Legacy => String::new(),
    }
}

/// Modern tables drop a re-sent identical insert (a retry after a lost
/// response) like replicated tables do; so do the rollups, when the insert
/// runs with `deduplicate_blocks_in_dependent_materialized_views = 1` (the
/// [`ClickHouseStore`](super::ClickHouseStore) sets it on modern servers).
/// Legacy tables rely on the ReplacingMergeTree keys instead.
fn settings(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Modern => "\nSETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1, index_granularity = 8192",
        Dialect::Legacy => "\nSETTINGS index_granularity = 8192",
    }
}

/// `CREATE DATABASE`.
pub fn create_database(opts: &SchemaOptions) -> String {
    format!("CREATE DATABASE IF NOT EXISTS {}", opts.database)
}

/// The version table `schema apply` keeps its history in.
pub fn create_migrations_table(opts: &SchemaOptions) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS} (\n    version UInt32,\n    dialect String,\n    description String,\n    applied_at DateTime('UTC'),\n    tool_version String\n) ENGINE = MergeTree\nORDER BY version",
        db = opts.database
    )
}

/// `events`. ReplacingMergeTree keyed by (agency, time, event_id): an event
/// delivered twice (at-least-once from Kafka) collapses on merge, and
/// `FINAL` hides the duplicate before that.
pub fn create_events(dialect: Dialect, opts: &SchemaOptions) -> String {
    let indexes: &[&str] = match dialect {
        Dialect::Modern => EVENT_INDEXES,
        Dialect::Legacy => &[],
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{EVENTS} (\n{cols}\n) ENGINE = ReplacingMergeTree\nPARTITION BY toYYYYMMDD(time)\nORDER BY (agency, time, event_id){ttl}{settings}",
        db = opts.database,
        cols = column_list(EVENT_COLUMNS, dialect, indexes),
        ttl = ttl_clause(dialect, "time", opts.ttl_days),
        settings = settings(dialect),
    )
}

/// `alerts`. The id is deterministic (rule, group, window), so a replayed
/// alert has the same key and the newest `created` wins.
pub fn create_alerts(dialect: Dialect, opts: &SchemaOptions) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{ALERTS} (\n{cols}\n) ENGINE = ReplacingMergeTree(created)\nPARTITION BY toYYYYMM(time)\nORDER BY (agency, time, id){ttl}{settings}",
        db = opts.database,
        cols = column_list(ALERT_COLUMNS, dialect, &[]),
        ttl = ttl_clause(dialect, "time", opts.alerts_ttl_days),
        settings = settings(dialect),
    )
}

fn lc(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Modern => LC,
        Dialect::Legacy => STR,
    }
}

/// `events_5m`: events per 5 minutes, agency, dataset, outcome and
/// logsource — what dashboards chart without scanning raw events.
/// `unparsed` counts lines no parser understood; `bytes` the raw volume.
pub fn create_events_5m(dialect: Dialect, opts: &SchemaOptions) -> String {
    let lc = lc(dialect);
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{EVENTS_5M} (\n    bucket DateTime('UTC'),\n    agency {lc},\n    event_dataset {lc},\n    event_outcome {lc},\n    logsource_product {lc},\n    logsource_service {lc},\n    events UInt64,\n    unparsed UInt64,\n    bytes UInt64\n) ENGINE = SummingMergeTree\nPARTITION BY toYYYYMM(bucket)\nORDER BY (agency, bucket, event_dataset, event_outcome, logsource_product, logsource_service){ttl}{settings}",
        db = opts.database,
        ttl = ttl_clause(dialect, "bucket", opts.alerts_ttl_days),
        settings = settings(dialect),
    )
}

/// Fills `events_5m` from every insert into `events`.
pub fn create_events_5m_view(opts: &SchemaOptions) -> String {
    format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{EVENTS_5M}_mv TO {db}.{EVENTS_5M} AS\nSELECT\n    toStartOfFiveMinute(time) AS bucket,\n    agency,\n    event_dataset,\n    event_outcome,\n    logsource_product,\n    logsource_service,\n    count() AS events,\n    countIf(has(tags, 'qalqan.unparsed')) AS unparsed,\n    sum(length(original)) AS bytes\nFROM {db}.{EVENTS}\nGROUP BY bucket, agency, event_dataset, event_outcome, logsource_product, logsource_service",
        db = opts.database
    )
}

/// `alerts_5m`: distinct alerts per 5 minutes, agency, level and rule.
/// `uniqExact(id)` states, so a replayed alert is not counted twice:
/// read with `uniqExactMerge(alerts)`.
pub fn create_alerts_5m(dialect: Dialect, opts: &SchemaOptions) -> String {
    let lc = lc(dialect);
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{ALERTS_5M} (\n    bucket DateTime('UTC'),\n    agency {lc},\n    rule_level {lc},\n    rule_id {lc},\n    rule_title {lc},\n    alerts AggregateFunction(uniqExact, String)\n) ENGINE = AggregatingMergeTree\nPARTITION BY toYYYYMM(bucket)\nORDER BY (agency, bucket, rule_level, rule_id, rule_title){ttl}{settings}",
        db = opts.database,
        ttl = ttl_clause(dialect, "bucket", opts.alerts_ttl_days),
        settings = settings(dialect),
    )
}

/// Fills `alerts_5m` from every insert into `alerts`.
pub fn create_alerts_5m_view(opts: &SchemaOptions) -> String {
    format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{ALERTS_5M}_mv TO {db}.{ALERTS_5M} AS\nSELECT\n    toStartOfFiveMinute(time) AS bucket,\n    agency,\n    rule_level,\n    rule_id,\n    rule_title,\n    uniqExactState(id) AS alerts\nFROM {db}.{ALERTS}\nGROUP BY bucket, agency, rule_level, rule_id, rule_title",
        db = opts.database
    )
}

/// The tables that carry a retention (TTL or `schema prune`), with the
/// column it is measured on.
pub const RETAINED_TABLES: &[(&str, &str)] = &[
    (EVENTS, "time"),
    (ALERTS, "time"),
    (EVENTS_5M, "bucket"),
    (ALERTS_5M, "bucket"),
];

/// The whole schema as `schema print` shows it, statement by statement.
pub fn full_schema(dialect: Dialect, opts: &SchemaOptions) -> Vec<String> {
    let mut out = vec![create_database(opts), create_migrations_table(opts)];
    for m in super::migrate::MIGRATIONS {
        out.extend((m.statements)(dialect, opts));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SchemaOptions {
        SchemaOptions {
            database: "qalqan_t".into(),
            ttl_days: 30,
            alerts_ttl_days: 400,
        }
    }

    #[test]
    fn legacy_ddl_uses_only_what_18_16_has() {
        let text = full_schema(Dialect::Legacy, &opts()).join(";\n");
        for modern_only in [
            "DateTime64",
            "LowCardinality",
            "IPv6 ",
            " Map(",
            "TTL",
            "CODEC",
            "INDEX",
            "mapKeys",
        ] {
            assert!(
                !text.contains(modern_only),
                "legacy DDL contains {modern_only}:\n{text}"
            );
        }
        assert!(text.contains("source_ip FixedString(16)"));
        assert!(text.contains("fields Tuple(Array(Tuple(String, String)))"));
    }

    #[test]
    fn modern_ddl_has_ttl_codecs_and_indexes() {
        let events = create_events(Dialect::Modern, &opts());
        assert!(events.contains("TTL time + INTERVAL 30 DAY"), "{events}");
        assert!(events.contains("timestamp DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1))"));
        assert!(events.contains("source_ip IPv6"));
        assert!(events.contains("INDEX source_ip_bloom source_ip TYPE bloom_filter"));
        assert!(events.contains("fields Map(String, String)"));
        let alerts = create_alerts(Dialect::Modern, &opts());
        assert!(alerts.contains("TTL time + INTERVAL 400 DAY"), "{alerts}");
        assert!(alerts.contains("ReplacingMergeTree(created)"));
    }

    #[test]
    fn nested_evidence_is_declared_once() {
        let alerts = create_alerts(Dialect::Legacy, &opts());
        assert!(
            alerts.contains("evidence Nested(event_id String, timestamp Int64, original String)"),
            "{alerts}"
        );
        let alerts = create_alerts(Dialect::Modern, &opts());
        assert!(
            alerts.contains(
                "evidence Nested(event_id String, timestamp DateTime64(6, 'UTC'), original String)"
            ),
            "{alerts}"
        );
    }

    #[test]
    fn every_statement_names_the_database() {
        for d in [Dialect::Modern, Dialect::Legacy] {
            for stmt in full_schema(d, &opts()) {
                assert!(stmt.contains("qalqan_t"), "{stmt}");
                assert!(stmt.contains("IF NOT EXISTS"), "not idempotent: {stmt}");
            }
        }
    }
}
