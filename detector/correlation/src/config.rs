//! Engine settings: lateness, state bounds, evidence budget, global
//! suppression. Embedded as a `[correlation]` table in the detector's TOML.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use qalqan_core::config::{Invalid, Validate};

use crate::suppress::SuppressPolicy;

/// Engine settings. Every field has a default; see each for why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// How far behind an input's newest event time another event may arrive
    /// and still be correlated exactly as if it had come in order. Alerts
    /// wait this long (in event time) before they are final, so it adds to
    /// alert latency.
    #[serde(with = "qalqan_core::config::duration")]
    pub allowed_lateness: Duration,
    /// After this much wall time without signals, an input's watermark
    /// advances with the wall clock, so its last windows close and fire.
    #[serde(with = "qalqan_core::config::duration")]
    pub idle_timeout: Duration,
    /// Signals held back for reordering per input; beyond this the oldest
    /// are processed early (counted as `forced_settles`).
    pub max_pending_per_input: usize,
    /// Group keys kept per correlation rule (over all inputs).
    pub max_keys_per_rule: usize,
    /// Group keys kept in total.
    pub max_keys_total: usize,
    /// Distinct values (value_count) or samples (value_percentile) kept per
    /// key; value_count rules with a threshold at or above it are rejected.
    pub max_values_per_key: usize,
    /// Bytes of raw lines kept for first-line evidence (see `evidence`).
    #[serde(with = "size_bytes")]
    pub evidence_budget: usize,
    /// Suppression for rules without their own `qalqan.suppress`.
    pub suppress: Option<SuppressPolicy>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            allowed_lateness: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(2),
            max_pending_per_input: 1_000_000,
            max_keys_per_rule: 1_000_000,
            max_keys_total: 4_000_000,
            max_values_per_key: 10_000,
            evidence_budget: 64 << 20,
            suppress: None,
        }
    }
}

impl Validate for EngineConfig {
    fn validate(&self) -> Result<(), Invalid> {
        if self.allowed_lateness > Duration::from_secs(3600) {
            return Err(Invalid::new(
                "allowed_lateness",
                "is longer than 1h",
                "events that late are better replayed; choose at most 1h (a few seconds is typical)",
            ));
        }
        if self.idle_timeout < Duration::from_millis(10) {
            return Err(Invalid::new(
                "idle_timeout",
                "is shorter than 10ms",
                "choose about the allowed lateness, e.g. \"2s\"",
            ));
        }
        for (key, v) in [
            ("max_pending_per_input", self.max_pending_per_input),
            ("max_keys_per_rule", self.max_keys_per_rule),
            ("max_keys_total", self.max_keys_total),
            ("max_values_per_key", self.max_values_per_key),
        ] {
            if v == 0 {
                return Err(Invalid::new(key, "is 0", "choose a positive bound"));
            }
        }
        if self.evidence_budget < 1 << 16 {
            return Err(Invalid::new(
                "evidence_budget",
                "is below 64KiB",
                "choose at least \"1MiB\"; the default is \"64MiB\"",
            ));
        }
        if let Some(s) = &self.suppress {
            if s.first == 0 || s.period.is_zero() {
                return Err(Invalid::new(
                    "suppress",
                    "needs first ≥ 1 and a non-zero `for`",
                    "e.g. suppress = { first = 1, for = \"1h\" }",
                ));
            }
        }
        Ok(())
    }
}

mod size_bytes {
    use serde::{Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        let n = qalqan_core::config::size::deserialize(d)?;
        usize::try_from(n).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(v: &usize, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*v as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        correlation: EngineConfig,
    }
    impl Validate for Outer {
        fn validate(&self) -> Result<(), Invalid> {
            self.correlation.validate().map_err(|mut i| {
                i.key = format!("correlation.{}", i.key);
                i
            })
        }
    }

    #[test]
    fn reads_toml_with_defaults() {
        let cfg: Outer = qalqan_core::config::from_str(
            "[correlation]\nallowed_lateness = \"5s\"\nevidence_budget = \"8MiB\"\n\
             suppress = { first = 2, for = \"30m\" }\n",
            Path::new("d.toml"),
        )
        .expect("valid");
        let c = cfg.correlation;
        assert_eq!(c.allowed_lateness, Duration::from_secs(5));
        assert_eq!(c.evidence_budget, 8 << 20);
        assert_eq!(c.max_keys_total, EngineConfig::default().max_keys_total);
        assert_eq!(
            c.suppress,
            Some(SuppressPolicy {
                first: 2,
                period: Duration::from_secs(1800)
            })
        );
    }

    #[test]
    fn rejects_bad_values_naming_the_key() {
        let e = qalqan_core::config::from_str::<Outer>(
            "[correlation]\nmax_keys_total = 0\n",
            Path::new("d.toml"),
        )
        .expect_err("invalid");
        assert!(e.to_string().contains("correlation.max_keys_total"), "{e}");
        let e = qalqan_core::config::from_str::<Outer>(
            "[correlation]\nlateness = \"1s\"\n",
            Path::new("d.toml"),
        )
        .expect_err("unknown key");
        assert!(e.to_string().contains("lateness"), "{e}");
    }
}
