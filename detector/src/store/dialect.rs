//! Which SQL dialect a ClickHouse server gets.
//!
//! qalqan targets modern ClickHouse (`DateTime64`, `LowCardinality`, `IPv6`,
//! `Map`, TTL, codecs, skip indexes). Debian bookworm still ships 18.16,
//! which has none of those in stable form, so older servers get a legacy
//! dialect whose column types have the *same RowBinary encoding*: one Rust
//! row type writes to both (see [`super::ddl`] for the type pairs).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The first release on which every modern feature the schema uses is
/// generally available: `Map` left experimental in the 21.x series, and 22.1
/// also has `non_replicated_deduplication_window` and `ttl_only_drop_parts`.
/// Older servers (20.x, 21.x) run the legacy DDL fine; an operator who knows
/// better can force `modern`.
pub const MODERN_SINCE: (u32, u32) = (22, 1);

/// The dialect the schema is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// ClickHouse ≥ 22.1: DateTime64, LowCardinality, IPv6, Map, TTL, codecs.
    Modern,
    /// Older servers such as Debian's 18.16: plain types with the same
    /// binary encoding, retention by `schema prune` instead of TTL.
    Legacy,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Modern => "modern",
            Dialect::Legacy => "legacy",
        }
    }

    /// The dialect for a server reporting `version` (`SELECT version()`).
    pub fn for_version(version: &str) -> Result<Dialect, String> {
        let (major, minor) = parse_version(version)?;
        Ok(if (major, minor) >= MODERN_SINCE {
            Dialect::Modern
        } else {
            Dialect::Legacy
        })
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "modern" => Ok(Dialect::Modern),
            "legacy" => Ok(Dialect::Legacy),
            other => Err(format!("unknown dialect `{other}`; use modern or legacy")),
        }
    }
}

/// What the operator asked for: a fixed dialect or detection by version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DialectChoice {
    /// Use the dialect the database was created with; for a new database,
    /// pick by `SELECT version()`.
    #[default]
    Auto,
    Modern,
    Legacy,
}

impl DialectChoice {
    /// The forced dialect, if any.
    pub fn forced(self) -> Option<Dialect> {
        match self {
            DialectChoice::Auto => None,
            DialectChoice::Modern => Some(Dialect::Modern),
            DialectChoice::Legacy => Some(Dialect::Legacy),
        }
    }
}

impl FromStr for DialectChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(DialectChoice::Auto),
            "modern" => Ok(DialectChoice::Modern),
            "legacy" => Ok(DialectChoice::Legacy),
            other => Err(format!(
                "unknown dialect `{other}`; use auto, modern or legacy"
            )),
        }
    }
}

impl fmt::Display for DialectChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DialectChoice::Auto => "auto",
            DialectChoice::Modern => "modern",
            DialectChoice::Legacy => "legacy",
        })
    }
}

/// `major.minor` of a version string such as `18.16.1` or `24.8.4.13`.
pub fn parse_version(version: &str) -> Result<(u32, u32), String> {
    let mut parts = version.trim().split('.');
    let mut next = |what: &str| -> Result<u32, String> {
        parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("cannot read the {what} version from `{version}`"))
    };
    Ok((next("major")?, next("minor")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_legacy_for_debian_and_modern_for_current_servers() {
        assert_eq!(Dialect::for_version("18.16.1"), Ok(Dialect::Legacy));
        assert_eq!(Dialect::for_version("21.8.15.7"), Ok(Dialect::Legacy));
        assert_eq!(Dialect::for_version("22.1.3.7"), Ok(Dialect::Modern));
        assert_eq!(Dialect::for_version("26.9.2.1"), Ok(Dialect::Modern));
        assert!(Dialect::for_version("banana").is_err());
        assert!(Dialect::for_version("24").is_err());
    }

    #[test]
    fn choices_parse_and_print() {
        for c in ["auto", "modern", "legacy"] {
            let parsed: DialectChoice = c.parse().expect("valid");
            assert_eq!(parsed.to_string(), c);
        }
        assert!("newest".parse::<DialectChoice>().is_err());
        assert_eq!(DialectChoice::Auto.forced(), None);
        assert_eq!(DialectChoice::Legacy.forced(), Some(Dialect::Legacy));
    }
}
