//! Alert suppression: per rule and group key, "the first N alerts, then
//! silence for T", with the number of silenced alerts carried on the next
//! alert that is sent.
//!
//! Periods are aligned to the Unix epoch in *event time* (`for: 1h` means
//! clock hours of the events' timestamps): the first `first` alerts of a key
//! in each period are sent, the rest are counted, and the first alert of the
//! next period carries that count in `suppressed`. Aligning the periods
//! makes suppression a function of the events alone, so a replay after a
//! restart sends exactly the alerts the first run sent, whatever the
//! arrival order. (A count followed by a period without alerts is not
//! carried further; it is in the `suppressed` metric.)
//!
//! Configured per rule with a custom attribute, or globally in the engine
//! config (the rule's setting wins):
//!
//! ```yaml
//! qalqan:
//!   suppress:
//!     first: 1      # alerts sent per group key and period
//!     for: 1h       # period length: ms, s, m, h or d
//! ```
//!
//! `qalqan: {suppress: off}` turns a global suppression off for one rule.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_yaml::Value as Yaml;

use crate::rule::kind;

/// "Send the first `first` alerts of each `period`, suppress the rest."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressPolicy {
    pub first: u32,
    #[serde(rename = "for", with = "qalqan_core::config::duration")]
    pub period: Duration,
}

/// A rule's own suppression setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SuppressSetting {
    /// No suppression for this rule, even if the engine has a global one.
    Off,
    On(SuppressPolicy),
}

/// Parses the rule's `qalqan:` attribute. Unknown keys are errors, so a
/// typo never silently disables suppression.
pub(crate) fn parse_rule_attribute(q: &Yaml) -> Result<Option<SuppressSetting>, String> {
    let Yaml::Mapping(map) = q else {
        return Err(format!("`qalqan` must be a mapping, got {}", kind(q)));
    };
    let mut setting = None;
    for (k, v) in map {
        match k.as_str() {
            Some("suppress") => setting = Some(parse_suppress(v)?),
            Some(other) => {
                return Err(format!(
                    "unknown attribute `qalqan.{other}`; the only qalqan setting is `suppress`"
                ))
            }
            None => return Err("`qalqan` has a non-text key".into()),
        }
    }
    Ok(setting)
}

fn parse_suppress(v: &Yaml) -> Result<SuppressSetting, String> {
    match v {
        Yaml::Bool(false) => Ok(SuppressSetting::Off),
        Yaml::String(s) if s == "off" => Ok(SuppressSetting::Off),
        Yaml::Mapping(m) => {
            let mut first = None;
            let mut period = None;
            for (k, v) in m {
                match k.as_str() {
                    Some("first") => {
                        first = Some(
                            v.as_u64()
                                .and_then(|n| u32::try_from(n).ok())
                                .filter(|n| *n >= 1)
                                .ok_or("`qalqan.suppress.first` must be a whole number ≥ 1")?,
                        )
                    }
                    Some("for") => {
                        let text = v
                            .as_str()
                            .ok_or("`qalqan.suppress.for` must be a duration such as `1h`")?;
                        let d = qalqan_core::config::parse_duration(text)
                            .map_err(|e| format!("`qalqan.suppress.for`: {e}"))?;
                        if d < Duration::from_millis(1) {
                            return Err("`qalqan.suppress.for` must be at least 1ms".into());
                        }
                        period = Some(d);
                    }
                    Some(other) => {
                        return Err(format!(
                            "unknown `qalqan.suppress.{other}`; expected `first` and `for`"
                        ))
                    }
                    None => return Err("`qalqan.suppress` has a non-text key".into()),
                }
            }
            match (first, period) {
                (Some(first), Some(period)) => {
                    Ok(SuppressSetting::On(SuppressPolicy { first, period }))
                }
                _ => Err("`qalqan.suppress` needs both `first` and `for`".into()),
            }
        }
        other => Err(format!(
            "`qalqan.suppress` must be {{first: N, for: DURATION}} or `off`, got {}",
            kind(other)
        )),
    }
}

/// Per-key suppression bookkeeping.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SuppressState {
    /// Index of the current period (event time / period length).
    period: i64,
    /// Alerts sent in that period.
    sent: u32,
    /// Alerts suppressed in that period.
    silenced: u64,
    /// Alerts suppressed in the period just before, to carry on the first
    /// alert of this one.
    carry: u64,
}

/// What to do with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send it, carrying this many suppressed alerts.
    Send {
        suppressed: u64,
    },
    Suppress,
}

fn period_len(policy: &SuppressPolicy) -> i64 {
    i64::try_from(policy.period.as_micros())
        .unwrap_or(i64::MAX)
        .max(1)
}

impl SuppressState {
    /// Decides for an alert determined at `t_us` (event time, µs). The
    /// first alert of a period carries the count silenced in the period
    /// just before (so the count depends on two periods of history, which
    /// a replay of `2 × period` reproduces); counts from older periods
    /// without a following alert are only in the metrics.
    pub(crate) fn decide(
        state: &mut Option<SuppressState>,
        policy: &SuppressPolicy,
        t_us: i64,
    ) -> Verdict {
        let period = t_us.div_euclid(period_len(policy));
        let s = state.get_or_insert(SuppressState {
            period,
            ..SuppressState::default()
        });
        if s.period != period {
            s.carry = if period == s.period + 1 {
                s.silenced
            } else {
                0
            };
            s.period = period;
            s.sent = 0;
            s.silenced = 0;
        }
        if s.sent < policy.first {
            s.sent += 1;
            Verdict::Send {
                suppressed: std::mem::take(&mut s.carry),
            }
        } else {
            s.silenced += 1;
            Verdict::Suppress
        }
    }

    /// Whether the entry still matters at settled time `now_us`: its period
    /// or the next one (which may carry its count) is not over.
    pub(crate) fn live(&self, policy: &SuppressPolicy, now_us: i64) -> bool {
        now_us.div_euclid(period_len(policy)) <= self.period + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(text: &str) -> Result<Option<SuppressSetting>, String> {
        parse_rule_attribute(&serde_yaml::from_str(text).expect("yaml"))
    }

    #[test]
    fn parses_the_rule_attribute() {
        assert_eq!(
            attr("{suppress: {first: 2, for: 1h}}"),
            Ok(Some(SuppressSetting::On(SuppressPolicy {
                first: 2,
                period: Duration::from_secs(3600)
            })))
        );
        assert_eq!(attr("{suppress: off}"), Ok(Some(SuppressSetting::Off)));
        assert!(attr("{suppress: {first: 0, for: 1h}}").is_err());
        assert!(attr("{suppress: {first: 1}}").is_err());
        assert!(attr("{suppress: {first: 1, for: 1h, every: 2}}").is_err());
        assert!(attr("{supress: {first: 1, for: 1h}}").is_err());
    }

    #[test]
    fn first_n_then_silence_then_carry_the_count() {
        let p = SuppressPolicy {
            first: 2,
            period: Duration::from_secs(60),
        };
        let mut s = None;
        let sec = 1_000_000;
        assert_eq!(
            SuppressState::decide(&mut s, &p, 0),
            Verdict::Send { suppressed: 0 }
        );
        assert_eq!(
            SuppressState::decide(&mut s, &p, sec),
            Verdict::Send { suppressed: 0 }
        );
        assert_eq!(
            SuppressState::decide(&mut s, &p, 2 * sec),
            Verdict::Suppress
        );
        assert_eq!(
            SuppressState::decide(&mut s, &p, 59 * sec),
            Verdict::Suppress
        );
        // Next period: sent again, carrying the two suppressed.
        assert_eq!(
            SuppressState::decide(&mut s, &p, 60 * sec),
            Verdict::Send { suppressed: 2 }
        );
        assert_eq!(
            SuppressState::decide(&mut s, &p, 61 * sec),
            Verdict::Send { suppressed: 0 }
        );
        let st = s.expect("state");
        assert!(st.live(&p, 179 * sec));
        assert!(!st.live(&p, 180 * sec));
        // A period without alerts in between: the old count is not carried.
        assert_eq!(
            SuppressState::decide(&mut s, &p, 62 * sec),
            Verdict::Suppress
        );
        assert_eq!(
            SuppressState::decide(&mut s, &p, 240 * sec),
            Verdict::Send { suppressed: 0 }
        );
    }
}
