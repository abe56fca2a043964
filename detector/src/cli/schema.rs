//! `schema` subcommand: create, migrate, show and prune the ClickHouse schema.
//!
//! Connection settings come from the `[clickhouse]` table of `--config`
//! (when given), overridden by `QALQAN_CLICKHOUSE_URL`, then by the flags.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use qalqan_core::config::Validate;

use crate::store::ddl::{self, SchemaOptions};
use crate::store::migrate;
use crate::store::{ClickHouseConfig, Dialect, DialectChoice};

#[derive(Debug, clap::Subcommand)]
pub enum SchemaCommand {
    /// Create the database and tables, or migrate them to this build's
    /// version. Safe to run again; picks the dialect by server version.
    Apply(ApplyArgs),
    /// Print the DDL of a dialect without connecting.
    Print(PrintArgs),
    /// Show the server version, the database's dialect and schema version.
    Status(ConnArgs),
    /// Drop partitions older than the retention (for servers without TTL).
    Prune(PruneArgs),
}

/// Where the server is.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnArgs {
    /// Detector config file; its `[clickhouse]` table gives the defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// ClickHouse HTTP URL, e.g. http://127.0.0.1:8123 (default:
    /// $QALQAN_CLICKHOUSE_URL, then the config file, then http://127.0.0.1:8123).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Database (default `qalqan`).
    #[arg(long, value_name = "DB")]
    pub database: Option<String>,
    /// ClickHouse user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// File whose first line is the password.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Events retention in days (default 90).
    #[arg(long, value_name = "DAYS")]
    pub ttl_days: Option<u32>,
    /// Alerts and rollups retention in days (default 365).
    #[arg(long, value_name = "DAYS")]
    pub alerts_ttl_days: Option<u32>,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// auto (the database's own, or by server version), modern or legacy.
    #[arg(long, value_name = "DIALECT")]
    pub dialect: Option<DialectChoice>,
    /// Print the statements apply would run, without running them.
    #[arg(long)]
    pub print: bool,
}

#[derive(Debug, clap::Args)]
pub struct PrintArgs {
    /// modern (ClickHouse ≥ 22.1) or legacy (older, e.g. Debian's 18.16).
    #[arg(long, value_name = "DIALECT")]
    pub dialect: Dialect,
    /// Database (default `qalqan`).
    #[arg(long, value_name = "DB", default_value = "qalqan")]
    pub database: String,
    /// Events retention in days.
    #[arg(long, value_name = "DAYS", default_value_t = ddl::DEFAULT_TTL_DAYS)]
    pub ttl_days: u32,
    /// Alerts and rollups retention in days.
    #[arg(long, value_name = "DAYS", default_value_t = ddl::DEFAULT_ALERTS_TTL_DAYS)]
    pub alerts_ttl_days: u32,
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// List what would be dropped, drop nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: SchemaCommand) -> anyhow::Result<ExitCode> {
    match args {
        SchemaCommand::Print(a) => print(a),
        SchemaCommand::Apply(a) => block_on(apply(a)),
        SchemaCommand::Status(c) => block_on(status(c)),
        SchemaCommand::Prune(a) => block_on(prune(a)),
    }
}

fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    f: F,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

/// Reads the `[clickhouse]` table of a detector config file; the rest of
/// the file belongs to the service and is not looked at here.
fn clickhouse_section(path: &Path) -> anyhow::Result<ClickHouseConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("config {} is not TOML", path.display()))?;
    match doc.get("clickhouse") {
        None => Ok(ClickHouseConfig::default()),
        Some(section) => section
            .clone()
            .try_into()
            .with_context(|| format!("config {}: [clickhouse]", path.display())),
    }
}

impl ConnArgs {
    /// The effective settings: file, then environment and flags.
    pub fn resolve(&self) -> anyhow::Result<ClickHouseConfig> {
        let mut cfg = match &self.config {
            Some(path) => clickhouse_section(path)?,
            None => ClickHouseConfig::default(),
        };
        let from_env = std::env::var("QALQAN_CLICKHOUSE_URL")
            .ok()
            .filter(|v| !v.is_empty());
        if let Some(v) = self.url.clone().or(from_env) {
            cfg.url = v;
        }
        if let Some(v) = &self.database {
            cfg.database = v.clone();
        }
        if let Some(v) = &self.user {
            cfg.user = Some(v.clone());
        }
        if let Some(v) = &self.password_file {
            cfg.password_file = Some(v.clone());
        }
        if let Some(v) = self.ttl_days {
            cfg.ttl_days = v;
        }
        if let Some(v) = self.alerts_ttl_days {
            cfg.alerts_ttl_days = v;
        }
        cfg.validate()
            .map_err(|i| anyhow::anyhow!("setting `{}`: {}; {}", i.key, i.problem, i.fix))?;
        Ok(cfg)
    }
}

fn print(a: PrintArgs) -> anyhow::Result<ExitCode> {
    let cfg = ClickHouseConfig {
        database: a.database,
        ttl_days: a.ttl_days,
        alerts_ttl_days: a.alerts_ttl_days,
        ..Default::default()
    };
    cfg.validate()
        .map_err(|i| anyhow::anyhow!("setting `{}`: {}; {}", i.key, i.problem, i.fix))?;
    println!(
        "-- qalqan ClickHouse schema v{}, {} dialect",
        migrate::latest_version(),
        a.dialect
    );
    for stmt in ddl::full_schema(a.dialect, &cfg.schema_options()) {
        println!("{stmt};\n");
    }
    Ok(ExitCode::SUCCESS)
}

fn retention_note(dialect: Dialect, opts: &SchemaOptions) -> Option<String> {
    (dialect == Dialect::Legacy).then(|| {
        format!(
            "note: this server has no TTL; run `qalqan-detector schema prune` daily \
             (e.g. from a systemd timer) to keep {} days of events and {} days of alerts",
            opts.ttl_days, opts.alerts_ttl_days
        )
    })
}

async fn apply(a: ApplyArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = a.conn.resolve()?;
    if let Some(d) = a.dialect {
        cfg.dialect = d;
    }
    let client = cfg.client()?;
    let opts = cfg.schema_options();
    let report = migrate::apply(&client, cfg.dialect, &opts, a.print).await?;
    if a.print {
        for stmt in &report.statements {
            println!("{stmt};\n");
        }
        println!(
            "-- dry run: ClickHouse {} at {}, database {}, {} dialect; nothing was executed",
            report.server_version, cfg.url, cfg.database, report.dialect
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "ClickHouse {} at {}: database {}, {} dialect",
        report.server_version, cfg.url, cfg.database, report.dialect
    );
    for v in &report.applied {
        let what = migrate::MIGRATIONS
            .iter()
            .find(|m| m.version == *v)
            .map_or("", |m| m.description);
        println!("applied migration {v}: {what}");
    }
    for t in &report.ttl_changed {
        println!("changed the retention of {t} to {} days", opts.ttl_of(t));
    }
    if report.applied.is_empty() && report.ttl_changed.is_empty() {
        println!(
            "schema is current (version {}); nothing to do",
            migrate::latest_version()
        );
    } else {
        println!("schema is at version {}", migrate::latest_version());
    }
    if let Some(note) = retention_note(report.dialect, &opts) {
        println!("{note}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(c: ConnArgs) -> anyhow::Result<ExitCode> {
    let cfg = c.resolve()?;
    let client = cfg.client()?;
    let state = migrate::inspect(&client, &cfg.database).await?;
    println!(
        "server:   ClickHouse {} at {}",
        state.server_version, cfg.url
    );
    println!("database: {}", cfg.database);
    match state.dialect {
        None => {
            println!("schema:   not created; run `qalqan-detector schema apply`");
            return Ok(ExitCode::from(1));
        }
        Some(d) => println!("dialect:  {d}"),
    }
    let latest = migrate::latest_version();
    let current = state.current_version();
    println!(
        "version:  {current} (this build: {latest}){}",
        if current < latest {
            " — run `qalqan-detector schema apply`"
        } else {
            ""
        }
    );
    Ok(if current < latest {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn prune(a: PruneArgs) -> anyhow::Result<ExitCode> {
    let cfg = a.conn.resolve()?;
    let client = cfg.client()?;
    let opts = cfg.schema_options();
    let today = chrono::Utc::now().date_naive();
    let expired = migrate::prune(&client, &opts, today, a.dry_run).await?;
    let verb = if a.dry_run { "would drop" } else { "dropped" };
    for p in &expired {
        println!(
            "{verb} {}.{} partition {} (data before {})",
            cfg.database, p.table, p.partition, p.ends
        );
    }
    if expired.is_empty() {
        println!(
            "nothing older than the retention ({} days events, {} days alerts and rollups)",
            opts.ttl_days, opts.alerts_ttl_days
        );
    }
    Ok(ExitCode::SUCCESS)
}
