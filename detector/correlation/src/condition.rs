//! The `condition` of a correlation: a conjunction of comparisons
//! (`gt`, `gte`, `lt`, `lte`, `eq`, `neq`) against the window's measure.
//!
//! The measure is the event count (event_count), the number of distinct
//! values (value_count), the number of referenced rules seen (temporal) or
//! matched in order (temporal_ordered), or the sum, average or percentile of
//! a numeric field (value_sum, value_avg, value_percentile).

use std::fmt;

/// One comparison operator of a Sigma correlation condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Neq,
}

impl Op {
    /// The operator for a condition key, or `None` for any other key.
    pub fn from_key(key: &str) -> Option<Op> {
        Some(match key {
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "eq" => Op::Eq,
            "neq" => Op::Neq,
            _ => return None,
        })
    }

    pub fn key(self) -> &'static str {
        match self {
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Eq => "eq",
            Op::Neq => "neq",
        }
    }

    fn holds(self, x: f64, t: f64) -> bool {
        match self {
            Op::Gt => x > t,
            Op::Gte => x >= t,
            Op::Lt => x < t,
            Op::Lte => x <= t,
            Op::Eq => x == t,
            Op::Neq => x != t,
        }
    }
}

/// A conjunction of comparisons; at most one per operator (a YAML mapping
/// cannot repeat a key).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    bounds: Vec<(Op, f64)>,
}

impl Condition {
    /// A condition from its comparisons. Empty means "always true" and is
    /// only built internally; rules always carry at least one comparison.
    pub fn new(bounds: Vec<(Op, f64)>) -> Self {
        Condition { bounds }
    }

    /// `gte: n` — the default for temporal correlations without a condition.
    pub fn at_least(n: f64) -> Self {
        Condition {
            bounds: vec![(Op::Gte, n)],
        }
    }

    pub fn bounds(&self) -> &[(Op, f64)] {
        &self.bounds
    }

    /// Whether the measure `x` satisfies every comparison.
    pub fn holds(&self, x: f64) -> bool {
        self.bounds.iter().all(|&(op, t)| op.holds(x, t))
    }

    /// True when the condition only has lower bounds (`gt`, `gte`): once a
    /// non-decreasing measure satisfies it, more events cannot undo that, so
    /// the window may fire as soon as it is satisfied instead of at its end.
    pub fn lower_bounds_only(&self) -> bool {
        self.bounds
            .iter()
            .all(|(op, _)| matches!(op, Op::Gt | Op::Gte))
    }

    /// Whether some whole number in `1..=max` (or `1..` without a maximum)
    /// satisfies the condition. A count condition that no count can satisfy
    /// is a rule that can never fire, which is rejected at load.
    pub fn satisfiable_by_count(&self, max: Option<u64>) -> bool {
        if let Some(max) = max.filter(|m| *m <= 4096) {
            return (1..=max).any(|n| self.holds(n as f64));
        }
        // The satisfying set is an interval minus at most one point (`neq`),
        // so if it has a whole number, it has one within two of a threshold
        // or of 1.
        let mut candidates = vec![1.0];
        for &(_, t) in &self.bounds {
            let f = t.floor();
            for d in -2..=3 {
                candidates.push(f + f64::from(d));
            }
        }
        candidates
            .into_iter()
            .filter(|c| *c >= 1.0 && max.is_none_or(|m| *c <= m as f64))
            .any(|c| self.holds(c))
    }

    /// Whether some real number satisfies the condition (value_sum, value_avg
    /// and value_percentile measure real numbers).
    pub fn satisfiable_by_real(&self) -> bool {
        let mut lo = (f64::NEG_INFINITY, false); // (value, inclusive)
        let mut hi = (f64::INFINITY, false);
        let mut not = None;
        for &(op, t) in &self.bounds {
            match op {
                Op::Gt if t >= lo.0 => lo = (t, false),
                Op::Gte if t > lo.0 => lo = (t, true),
                Op::Lt if t <= hi.0 => hi = (t, false),
                Op::Lte if t < hi.0 => hi = (t, true),
                Op::Eq => {
                    if !self.holds(t) {
                        return false;
                    }
                    return true;
                }
                Op::Neq => not = Some(t),
                _ => {}
            }
        }
        if lo.0 < hi.0 {
            return true;
        }
        lo.0 == hi.0 && lo.1 && hi.1 && not != Some(lo.0)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (op, t)) in self.bounds.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            write!(f, "{} {}", op.key(), t)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(bounds: &[(Op, f64)]) -> Condition {
        Condition::new(bounds.to_vec())
    }

    #[test]
    fn every_operator_compares_as_named() {
        let cases = [
            (Op::Gt, [false, false, true]),
            (Op::Gte, [false, true, true]),
            (Op::Lt, [true, false, false]),
            (Op::Lte, [true, true, false]),
            (Op::Eq, [false, true, false]),
            (Op::Neq, [true, false, true]),
        ];
        for (op, expect) in cases {
            let cond = c(&[(op, 10.0)]);
            let got = [cond.holds(9.0), cond.holds(10.0), cond.holds(11.0)];
            assert_eq!(got, expect, "{}", op.key());
        }
    }

    #[test]
    fn ranges_are_conjunctions() {
        let r = c(&[(Op::Gt, 100.0), (Op::Lte, 200.0)]);
        assert!(!r.holds(100.0));
        assert!(r.holds(101.0));
        assert!(r.holds(200.0));
        assert!(!r.holds(201.0));
        assert!(!r.lower_bounds_only());
        assert!(c(&[(Op::Gt, 1.0), (Op::Gte, 3.0)]).lower_bounds_only());
    }

    #[test]
    fn unsatisfiable_conditions_are_detected() {
        assert!(!c(&[(Op::Gt, 5.0), (Op::Lt, 6.0)]).satisfiable_by_count(None));
        assert!(c(&[(Op::Gt, 5.0), (Op::Lt, 7.0)]).satisfiable_by_count(None));
        assert!(!c(&[(Op::Lt, 1.0)]).satisfiable_by_count(None));
        assert!(c(&[(Op::Gt, 5.0), (Op::Neq, 6.0)]).satisfiable_by_count(None));
        assert!(!c(&[(Op::Gte, 4.0)]).satisfiable_by_count(Some(3)));
        assert!(c(&[(Op::Gt, 5.0), (Op::Lt, 6.0)]).satisfiable_by_real());
        assert!(!c(&[(Op::Gt, 6.0), (Op::Lt, 5.0)]).satisfiable_by_real());
        assert!(!c(&[(Op::Gte, 5.0), (Op::Lte, 5.0), (Op::Neq, 5.0)]).satisfiable_by_real());
        assert!(c(&[(Op::Gte, 5.0), (Op::Lte, 5.0)]).satisfiable_by_real());
    }
}
