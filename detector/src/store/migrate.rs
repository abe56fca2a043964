//! `schema apply`: create or migrate the schema, idempotently.
//!
//! The history lives in `schema_migrations` (version, dialect, when). A
//! database keeps the dialect it was created with: after a server upgrade
//! the legacy tables keep working and `auto` keeps choosing legacy for them,
//! so nothing changes under a running pipeline. Each migration's statements
//! are idempotent on their own (`IF NOT EXISTS`, column checks), so a run
//! that died half-way is simply run again.

use chrono::{Datelike, NaiveDate};
use clickhouse::Client;

use super::ddl::{self, SchemaOptions, MIGRATIONS as MIGRATIONS_TABLE, RETAINED_TABLES};
use super::{Dialect, DialectChoice, ResultExt, StoreError};

/// One step of the schema's history.
pub struct Migration {
    pub version: u32,
    pub description: &'static str,
    pub statements: fn(Dialect, &SchemaOptions) -> Vec<String>,
}

/// Every migration, oldest first. Append, never edit a released one.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "events, alerts, 5-minute rollups",
    statements: v1,
}];

fn v1(dialect: Dialect, opts: &SchemaOptions) -> Vec<String> {
    vec![
        ddl::create_events(dialect, opts),
        ddl::create_alerts(dialect, opts),
        ddl::create_events_5m(dialect, opts),
        ddl::create_alerts_5m(dialect, opts),
        ddl::create_events_5m_view(opts),
        ddl::create_alerts_5m_view(opts),
    ]
}

/// The schema version this build writes.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// What is on the server now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaState {
    /// `SELECT version()`.
    pub server_version: String,
    /// The dialect recorded in `schema_migrations`, if any.
    pub dialect: Option<Dialect>,
    /// Applied migration versions, ascending.
    pub applied: Vec<u32>,
}

impl SchemaState {
    pub fn current_version(&self) -> u32 {
        self.applied.last().copied().unwrap_or(0)
    }
}

/// What `apply` did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub server_version: String,
    pub dialect: Dialect,
    /// Migrations run now.
    pub applied: Vec<u32>,
    /// Tables whose TTL was changed to the configured retention.
    pub ttl_changed: Vec<String>,
    /// Every statement, in order (executed unless dry).
    pub statements: Vec<String>,
}

/// A client for schema work: the target database may not exist yet, and a
/// client bound to a missing database fails every query.
fn admin(client: &Client) -> Client {
    client.clone().with_database("default")
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Reads the server version and the recorded history.
pub async fn inspect(client: &Client, database: &str) -> Result<SchemaState, StoreError> {
    let client = admin(client);
    let server_version: String = client
        .query("SELECT version()")
        .fetch_one()
        .await
        .ctx("cannot reach ClickHouse (SELECT version())")?;
    let exists: u64 = client
        .query(&format!(
            "SELECT count() FROM system.tables WHERE database = {} AND name = {}",
            quote(database),
            quote(MIGRATIONS_TABLE)
        ))
        .fetch_one()
        .await
        .ctx("cannot read system.tables")?;
    if exists == 0 {
        return Ok(SchemaState {
            server_version,
            dialect: None,
            applied: Vec::new(),
        });
    }
    let rows: Vec<(u32, String)> = client
        .query(&format!(
            "SELECT DISTINCT version, dialect FROM {database}.{MIGRATIONS_TABLE} ORDER BY version"
        ))
        .fetch_all()
        .await
        .ctx("cannot read schema_migrations")?;
    let mut dialect: Option<Dialect> = None;
    let mut applied = Vec::new();
    for (version, d) in rows {
        let d: Dialect = d.parse().map_err(|e| {
            StoreError::Schema(format!(
                "{database}.{MIGRATIONS_TABLE} version {version}: {e}"
            ))
        })?;
        if let Some(prev) = dialect {
            if prev != d {
                return Err(StoreError::Schema(format!(
                    "{database}.{MIGRATIONS_TABLE} records both {prev} and {d} migrations; \
                     the database was written by two dialects and needs a manual look"
                )));
            }
        }
        dialect = Some(d);
        if applied.last() != Some(&version) {
            applied.push(version);
        }
    }
    Ok(SchemaState {
        server_version,
        dialect,
        applied,
    })
}

/// The dialect to use: the database's own once it has one, otherwise the
/// forced choice, otherwise by server version.
pub fn resolve_dialect(
    state: &SchemaState,
    choice: DialectChoice,
    database: &str,
) -> Result<Dialect, StoreError> {
    match (state.dialect, choice.forced()) {
        (Some(existing), Some(forced)) if existing != forced => Err(StoreError::Schema(format!(
            "database {database} was created with the {existing} dialect, but {forced} was \
             asked for; use `dialect = \"auto\"` (or {existing}) for this database, or create \
             a new database for the {forced} schema and move the data"
        ))),
        (Some(existing), _) => Ok(existing),
        (None, Some(forced)) => Ok(forced),
        (None, None) => Dialect::for_version(&state.server_version).map_err(StoreError::Schema),
    }
}

/// Creates the database and tables or brings them to [`latest_version`],
/// then (modern) sets the configured TTLs. With `dry_run`, only reports
/// the statements it would run.
pub async fn apply(
    client: &Client,
    choice: DialectChoice,
    opts: &SchemaOptions,
    dry_run: bool,
) -> Result<ApplyReport, StoreError> {
    let state = inspect(client, &opts.database).await?;
    let dialect = resolve_dialect(&state, choice, &opts.database)?;
    let current = state.current_version();
    if current > latest_version() {
        return Err(StoreError::Schema(format!(
            "database {} is at schema version {current}, newer than this build's {}; \
             upgrade qalqan-detector",
            opts.database,
            latest_version()
        )));
    }
    let admin = admin(client);
    let mut report = ApplyReport {
        server_version: state.server_version.clone(),
        dialect,
        applied: Vec::new(),
        ttl_changed: Vec::new(),
        statements: Vec::new(),
    };
    let mut run = |sql: String| {
        report.statements.push(sql.clone());
        let admin = admin.clone();
        async move {
            if dry_run {
                return Ok(());
            }
            let head: String = sql
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(120)
                .collect();
            admin
                .query(&sql)
                .execute()
                .await
                .ctx(&format!("schema statement failed: {head}"))
        }
    };
    run(ddl::create_database(opts)).await?;
    run(ddl::create_migrations_table(opts)).await?;
    let mut applied_now = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        for sql in (m.statements)(dialect, opts) {
            run(sql).await?;
        }
        run(format!(
            "INSERT INTO {db}.{MIGRATIONS_TABLE} (version, dialect, description, applied_at, tool_version) VALUES ({v}, {d}, {desc}, now(), {tool})",
            db = opts.database,
            v = m.version,
            d = quote(dialect.as_str()),
            desc = quote(m.description),
            tool = quote(env!("CARGO_PKG_VERSION")),
        ))
        .await?;
        tracing::info!(version = m.version, %dialect, description = m.description, "applied schema migration");
        applied_now.push(m.version);
    }
    report.applied = applied_now;
    if dialect == Dialect::Modern && !dry_run {
        report.ttl_changed = reconcile_ttl(&admin, opts).await?;
        report
            .statements
            .extend(report.ttl_changed.iter().map(|t| ttl_statement(opts, t)));
    }
    Ok(report)
}

fn ttl_statement(opts: &SchemaOptions, table: &str) -> String {
    let column = RETAINED_TABLES
        .iter()
        .find(|(t, _)| *t == table)
        .map_or("time", |(_, c)| *c);
    format!(
        "ALTER TABLE {db}.{table} MODIFY TTL {column} + INTERVAL {days} DAY",
        db = opts.database,
        days = opts.ttl_of(table)
    )
}

/// The TTL in days in a table's `engine_full`, as the server prints it
/// (`TTL time + toIntervalDay(90)`).
pub fn ttl_days_in(engine_full: &str) -> Option<u32> {
    let ttl = &engine_full[engine_full.find("TTL ")?..];
    let start = ttl.find("toIntervalDay(")? + "toIntervalDay(".len();
    let digits: String = ttl[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

async fn reconcile_ttl(admin: &Client, opts: &SchemaOptions) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String, String)> = admin
        .query(&format!(
            "SELECT name, engine_full FROM system.tables WHERE database = {}",
            quote(&opts.database)
        ))
        .fetch_all()
        .await
        .ctx("cannot read table definitions")?;
    let mut changed = Vec::new();
    for (table, _) in RETAINED_TABLES {
        let Some((_, engine)) = rows.iter().find(|(n, _)| n == table) else {
            continue;
        };
        if ttl_days_in(engine) != Some(opts.ttl_of(table)) {
            let sql = ttl_statement(opts, table);
            admin
                .query(&sql)
                .execute()
                .await
                .ctx(&format!("cannot change the TTL of {table}"))?;
            tracing::info!(table, days = opts.ttl_of(table), "changed retention");
            changed.push((*table).to_owned());
        }
    }
    Ok(changed)
}

/// Checks that the database is at this build's schema version and returns
/// its dialect; writers call it at start so a missing schema is one clear
/// error instead of failing inserts.
pub async fn ensure_current(client: &Client, database: &str) -> Result<Dialect, StoreError> {
    let state = inspect(client, database).await?;
    match state.dialect {
        Some(d) if state.current_version() >= latest_version() => Ok(d),
        _ => Err(StoreError::Schema(format!(
            "database {database} is at schema version {} but this build needs {}; run \
             `qalqan-detector schema apply` first",
            state.current_version(),
            latest_version()
        ))),
    }
}

/// A partition to drop for retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredPartition {
    pub table: String,
    pub partition: String,
    /// The first day after the partition's data.
    pub ends: NaiveDate,
}

/// The day after the data of a `toYYYYMMDD` or `toYYYYMM` partition.
pub fn partition_end(partition: &str) -> Option<NaiveDate> {
    if !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| partition.get(r)?.parse::<u32>().ok();
    match partition.len() {
        8 => {
            let day = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(4..6)?, num(6..8)?)?;
            day.succ_opt()
        }
        6 => {
            let first = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(4..6)?, 1)?;
            let (y, m) = if first.month() == 12 {
                (first.year() + 1, 1)
            } else {
                (first.year(), first.month() + 1)
            };
            NaiveDate::from_ymd_opt(y, m, 1)
        }
        _ => None,
    }
}

/// Retention for servers without TTL (legacy): drops every partition whose
/// data is entirely older than its table's retention, as of `today`.
pub async fn prune(
    client: &Client,
    opts: &SchemaOptions,
    today: NaiveDate,
    dry_run: bool,
) -> Result<Vec<ExpiredPartition>, StoreError> {
    let admin = admin(client);
    let rows: Vec<(String, String)> = admin
        .query(&format!(
            "SELECT DISTINCT table, partition FROM system.parts WHERE database = {} AND active ORDER BY table, partition",
            quote(&opts.database)
        ))
        .fetch_all()
        .await
        .ctx("cannot list partitions")?;
    let mut expired = Vec::new();
    for (table, partition) in rows {
        if !RETAINED_TABLES.iter().any(|(t, _)| *t == table) {
            continue;
        }
        let Some(ends) = partition_end(&partition) else {
            continue;
        };
        let cutoff = today - chrono::Duration::days(i64::from(opts.ttl_of(&table)));
        if ends <= cutoff {
            expired.push(ExpiredPartition {
                table,
                partition,
                ends,
            });
        }
    }
    if !dry_run {
        for p in &expired {
            admin
                .query(&format!(
                    "ALTER TABLE {}.{} DROP PARTITION {}",
                    opts.database, p.table, p.partition
                ))
                .execute()
                .await
                .ctx(&format!(
                    "cannot drop partition {} of {}",
                    p.partition, p.table
                ))?;
            tracing::info!(table = %p.table, partition = %p.partition, "dropped expired partition");
        }
    }
    Ok(expired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(dialect: Option<Dialect>, version: &str) -> SchemaState {
        SchemaState {
            server_version: version.into(),
            dialect,
            applied: dialect.map(|_| vec![1]).unwrap_or_default(),
        }
    }

    #[test]
    fn the_database_keeps_its_dialect() {
        let legacy_db_on_new_server = state(Some(Dialect::Legacy), "24.8.1");
        assert_eq!(
            resolve_dialect(&legacy_db_on_new_server, DialectChoice::Auto, "q").ok(),
            Some(Dialect::Legacy)
        );
        let e = resolve_dialect(&legacy_db_on_new_server, DialectChoice::Modern, "q")
            .unwrap_err()
            .to_string();
        assert!(e.contains("created with the legacy dialect"), "{e}");
        assert_eq!(
            resolve_dialect(&state(None, "18.16.1"), DialectChoice::Auto, "q").ok(),
            Some(Dialect::Legacy)
        );
        assert_eq!(
            resolve_dialect(&state(None, "18.16.1"), DialectChoice::Modern, "q").ok(),
            Some(Dialect::Modern)
        );
        assert_eq!(
            resolve_dialect(&state(None, "25.3.2"), DialectChoice::Auto, "q").ok(),
            Some(Dialect::Modern)
        );
    }

    #[test]
    fn reads_ttl_as_the_server_prints_it() {
        assert_eq!(
            ttl_days_in("ReplacingMergeTree PARTITION BY toYYYYMMDD(time) ORDER BY (agency, time, event_id) TTL time + toIntervalDay(90) SETTINGS index_granularity = 8192"),
            Some(90)
        );
        assert_eq!(ttl_days_in("MergeTree ORDER BY x SETTINGS a = 1"), None);
    }

    #[test]
    fn partition_ends() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("date");
        assert_eq!(partition_end("20260228"), Some(d(2026, 3, 1)));
        assert_eq!(partition_end("202612"), Some(d(2027, 1, 1)));
        assert_eq!(partition_end("202602"), Some(d(2026, 3, 1)));
        assert_eq!(partition_end("tuple()"), None);
        assert_eq!(partition_end("20261340"), None);
    }

    #[test]
    fn versions_ascend() {
        let mut prev = 0;
        for m in MIGRATIONS {
            assert!(m.version > prev, "migration {} out of order", m.version);
            prev = m.version;
        }
        assert_eq!(latest_version(), prev);
    }
}
