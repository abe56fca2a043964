//! TOML configuration loading shared by every binary.
//!
//! Config structs derive `Deserialize` with `deny_unknown_fields`, so a typo
//! is an error naming the key rather than a silently ignored setting; then
//! [`Validate`] checks what types cannot (ranges, paths, combinations) and
//! names the key and the fix.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A configuration problem, with enough context for the operator to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: key `{key}`: {problem}; {fix}")]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
        fix: String,
    },
}

/// A problem found by [`Validate::validate`]: the key, what is wrong, the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub problem: String,
    pub fix: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Invalid {
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// Semantic checks run after parsing.
pub trait Validate {
    fn validate(&self) -> Result<(), Invalid>;
}

/// Reads, parses and validates a TOML config file.
pub fn load<T: DeserializeOwned + Validate>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    from_str(&text, path)
}

/// Parses and validates TOML text; `path` is only used in messages.
pub fn from_str<T: DeserializeOwned + Validate>(text: &str, path: &Path) -> Result<T, ConfigError> {
    let cfg: T = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    cfg.validate().map_err(|i| ConfigError::Invalid {
        path: path.to_owned(),
        key: i.key,
        problem: i.problem,
        fix: i.fix,
    })?;
    Ok(cfg)
}

/// Parses a human duration such as `500ms`, `30s`, `5m`, `2h`, `7d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(|| format!("`{t}` has no unit; write e.g. `30s`, `5m`, `500ms`"))?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{t}` does not start with a number"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => {
            return Err(format!(
                "`{t}`: unknown unit `{unit}`; use ms, s, m, h or d"
            ))
        }
    };
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Serde adapter for durations written as `"30s"` in TOML.
pub mod duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }
}

/// Parses a byte size such as `64KiB`, `512MiB`, `2GiB` or a plain number.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{t}` does not start with a whole number"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        u => return Err(format!("`{t}`: unknown unit `{u}`; use B, KiB, MiB or GiB")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{t}` is too large"))
}

/// Serde adapter for sizes written as `"64KiB"` (or a bare integer) in TOML.
pub mod size {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(n),
            Raw::Text(s) => super::parse_size(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Demo {
        port: u16,
        #[serde(with = "duration")]
        every: std::time::Duration,
    }
    impl Validate for Demo {
        fn validate(&self) -> Result<(), Invalid> {
            if self.port == 0 {
                return Err(Invalid::new(
                    "port",
                    "is 0",
                    "choose a port from 1 to 65535",
                ));
            }
            Ok(())
        }
    }

    #[test]
    fn errors_name_the_key() {
        let p = Path::new("demo.toml");
        let e = from_str::<Demo>("port = 1\nevery = \"1s\"\nprot = 2", p).unwrap_err();
        assert!(e.to_string().contains("prot"), "{e}");
        let e = from_str::<Demo>("port = 0\nevery = \"1s\"", p).unwrap_err();
        assert!(e.to_string().contains("key `port`"), "{e}");
        let e = from_str::<Demo>("port = 1\nevery = \"1 fortnight\"", p).unwrap_err();
        assert!(e.to_string().contains("unknown unit"), "{e}");
        let ok = from_str::<Demo>("port = 1\nevery = \"250ms\"", p).expect("valid");
        assert_eq!(ok.every, std::time::Duration::from_millis(250));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("3"), Ok(3));
        assert!(parse_size("3 parsecs").is_err());
    }
}
