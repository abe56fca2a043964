//! The `[clickhouse]` table of the detector's config, and the client it builds.

use std::path::PathBuf;
use std::time::Duration;

use qalqan_core::config::{duration, Invalid, Validate};
use serde::{Deserialize, Serialize};

use super::ddl::{SchemaOptions, DEFAULT_ALERTS_TTL_DAYS, DEFAULT_TTL_DAYS};
use super::{DialectChoice, StoreError};

/// Where and how events and alerts are written to ClickHouse.
///
/// ```toml
/// [clickhouse]
/// url = "http://127.0.0.1:8123"      # HTTP interface; https:// uses the system CA store
/// database = "qalqan"
/// user = "qalqan"                    # optional; default user when absent
/// password_file = "/etc/qalqan/clickhouse.password"   # optional; first line is the password
/// dialect = "auto"                   # auto | modern | legacy
/// batch_rows = 20000                 # insert when this many rows are buffered ...
/// flush_interval = "1s"              # ... or when the oldest buffered row is this old
/// ttl_days = 90                      # events retention
/// alerts_ttl_days = 365              # alerts and rollups retention
/// max_attempts = 0                   # per batch; 0 = retry until ClickHouse accepts
/// retry_backoff = "200ms"            # first wait between attempts, doubling ...
/// retry_backoff_max = "10s"          # ... up to this
/// insert_timeout = "60s"             # one attempt's limit, server work included
/// compression = true                 # LZ4 on the wire
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    pub dialect: DialectChoice,
    pub batch_rows: usize,
    #[serde(with = "duration")]
    pub flush_interval: Duration,
    pub ttl_days: u32,
    pub alerts_ttl_days: u32,
    pub max_attempts: u32,
    #[serde(with = "duration")]
    pub retry_backoff: Duration,
    #[serde(with = "duration")]
    pub retry_backoff_max: Duration,
    #[serde(with = "duration")]
    pub insert_timeout: Duration,
    pub compression: bool,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: "http://127.0.0.1:8123".into(),
            database: "qalqan".into(),
            user: None,
            password_file: None,
            dialect: DialectChoice::Auto,
            batch_rows: 20_000,
            flush_interval: Duration::from_secs(1),
            ttl_days: DEFAULT_TTL_DAYS,
            alerts_ttl_days: DEFAULT_ALERTS_TTL_DAYS,
            max_attempts: 0,
            retry_backoff: Duration::from_millis(200),
            retry_backoff_max: Duration::from_secs(10),
            insert_timeout: Duration::from_secs(60),
            compression: true,
        }
    }
}

/// Database names go into DDL unquoted: keep them to what needs no quoting.
pub fn valid_database(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Validate for ClickHouseConfig {
    fn validate(&self) -> Result<(), Invalid> {
        let key = |k: &str| format!("clickhouse.{k}");
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(Invalid::new(
                key("url"),
                format!("`{}` is not an HTTP URL", self.url),
                "write the HTTP interface, e.g. `http://127.0.0.1:8123` (not the native port 9000)",
            ));
        }
        if self.url.contains('?') {
            return Err(Invalid::new(
                key("url"),
                "contains a query string",
                "give the database in `database` and credentials in `user`/`password_file`",
            ));
        }
        if !valid_database(&self.database) {
            return Err(Invalid::new(
                key("database"),
                format!("`{}` is not a plain identifier", self.database),
                "use letters, digits and `_`, not starting with a digit",
            ));
        }
        if let Some(u) = &self.user {
            if u.is_empty() {
                return Err(Invalid::new(
                    key("user"),
                    "is empty",
                    "remove it to use the server's default user",
                ));
            }
        }
        if let Some(p) = &self.password_file {
            if p.as_os_str().is_empty() {
                return Err(Invalid::new(
                    key("password_file"),
                    "is empty",
                    "give the path of a file whose first line is the password, or remove the key",
                ));
            }
        }
        if self.batch_rows == 0 || self.batch_rows > 10_000_000 {
            return Err(Invalid::new(
                key("batch_rows"),
                format!("{} is out of range", self.batch_rows),
                "use 1 to 10000000; ClickHouse prefers batches of 10000 rows or more",
            ));
        }
        if self.flush_interval.is_zero() {
            return Err(Invalid::new(
                key("flush_interval"),
                "is zero",
                "use e.g. `1s`: rows wait at most this long before they are inserted",
            ));
        }
        for (name, days) in [
            ("ttl_days", self.ttl_days),
            ("alerts_ttl_days", self.alerts_ttl_days),
        ] {
            if days == 0 || days > 36_500 {
                return Err(Invalid::new(
                    key(name),
                    format!("{days} is out of range"),
                    "use 1 to 36500 days",
                ));
            }
        }
        if self.retry_backoff.is_zero() || self.retry_backoff_max < self.retry_backoff {
            return Err(Invalid::new(
                key("retry_backoff"),
                "is zero or larger than retry_backoff_max",
                "use e.g. retry_backoff = \"200ms\" and retry_backoff_max = \"10s\"",
            ));
        }
        if self.insert_timeout < Duration::from_secs(1) {
            return Err(Invalid::new(
                key("insert_timeout"),
                "is under one second",
                "use e.g. `60s`: an insert includes the server's work on materialized views",
            ));
        }
        Ok(())
    }
}

impl ClickHouseConfig {
    /// The DDL inputs this config implies.
    pub fn schema_options(&self) -> SchemaOptions {
        SchemaOptions {
            database: self.database.clone(),
            ttl_days: self.ttl_days,
            alerts_ttl_days: self.alerts_ttl_days,
        }
    }

    /// Reads the password file: its first line, without the line end.
    pub fn password(&self) -> Result<Option<String>, StoreError> {
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            StoreError::Config(format!(
                "clickhouse.password_file: cannot read {}: {e}",
                path.display()
            ))
        })?;
        Ok(Some(text.lines().next().unwrap_or("").to_owned()))
    }

    /// A client for this server and database.
    ///
    /// Row validation is off: 18.16 has no `RowBinaryWithNamesAndTypes`,
    /// and the tests check the rows against both DDLs instead.
    pub fn client(&self) -> Result<clickhouse::Client, StoreError> {
        let mut client = clickhouse::Client::default()
            .with_url(self.url.trim_end_matches('/'))
            .with_database(&self.database)
            .with_validation(false)
            .with_compression(if self.compression {
                clickhouse::Compression::Lz4
            } else {
                clickhouse::Compression::None
            });
        if let Some(user) = &self.user {
            client = client.with_user(user);
        }
        if let Some(password) = self.password()? {
            client = client.with_password(password);
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<ClickHouseConfig, String> {
        qalqan_core::config::from_str::<ClickHouseConfig>(text, Path::new("detector.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_valid_and_keys_parse() {
        let cfg = parse("").expect("defaults");
        assert_eq!(cfg, ClickHouseConfig::default());
        let cfg = parse(
            "url = \"http://ch:8123/\"\ndatabase = \"soc\"\ndialect = \"legacy\"\nbatch_rows = 500\nflush_interval = \"250ms\"\nttl_days = 30",
        )
        .expect("valid");
        assert_eq!(cfg.dialect, DialectChoice::Legacy);
        assert_eq!(cfg.flush_interval, Duration::from_millis(250));
        assert_eq!(cfg.schema_options().ttl_days, 30);
    }

    #[test]
    fn errors_name_the_key_and_fix() {
        let e = parse("url = \"127.0.0.1:9000\"").unwrap_err();
        assert!(e.contains("clickhouse.url") && e.contains("HTTP"), "{e}");
        let e = parse("database = \"qalqan; DROP\"").unwrap_err();
        assert!(e.contains("clickhouse.database"), "{e}");
        let e = parse("batch_rows = 0").unwrap_err();
        assert!(e.contains("clickhouse.batch_rows"), "{e}");
        let e = parse("ttl_days = 0").unwrap_err();
        assert!(e.contains("clickhouse.ttl_days"), "{e}");
        let e = parse("dialect = \"newest\"").unwrap_err();
        assert!(e.contains("dialect"), "{e}");
        let e = parse("batch_size = 3").unwrap_err();
        assert!(e.contains("batch_size"), "{e}");
        let e = parse("flush_interval = \"0s\"").unwrap_err();
        assert!(e.contains("clickhouse.flush_interval"), "{e}");
    }

    #[test]
    fn password_file_first_line_is_the_password() {
        let dir = std::env::temp_dir().join(format!("qalqan-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("pw");
        std::fs::write(&path, "s3cret\nignored\n").expect("write");
        let cfg = ClickHouseConfig {
            password_file: Some(path.clone()),
            ..Default::default()
        };
        assert_eq!(cfg.password().expect("readable").as_deref(), Some("s3cret"));
        let missing = ClickHouseConfig {
            password_file: Some(dir.join("absent")),
            ..Default::default()
        };
        let e = missing.password().unwrap_err().to_string();
        assert!(e.contains("password_file"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
