//! Parsing one correlation document (a `serde_yaml::Value`) into a
//! [`CorrelationRule`], rejecting with a reason anything the engine could
//! not honour in full.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::{Mapping, Value as Yaml};

use crate::condition::{Condition, Op};
use crate::suppress::SuppressSetting;

/// The longest accepted `timespan`. Windows are kept in memory for this
/// long, so a year-long window is almost certainly a mistake.
pub const MAX_TIMESPAN: Duration = Duration::from_secs(30 * 86_400);

/// How many rules one correlation may reference (they are kept as a bitmask).
pub const MAX_REFERENCED_RULES: usize = 64;

/// The seven Sigma correlation types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CorrelationType {
    EventCount,
    ValueCount,
    Temporal,
    TemporalOrdered,
    ValueSum,
    ValueAvg,
    ValuePercentile,
}

impl CorrelationType {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "event_count" => Self::EventCount,
            "value_count" => Self::ValueCount,
            "temporal" => Self::Temporal,
            "temporal_ordered" => Self::TemporalOrdered,
            "value_sum" => Self::ValueSum,
            "value_avg" => Self::ValueAvg,
            "value_percentile" => Self::ValuePercentile,
            _ => return None,
        })
    }

    /// The name as written in rules; also the alert's `rule.kind`.
    pub fn name(self) -> &'static str {
        match self {
            Self::EventCount => "event_count",
            Self::ValueCount => "value_count",
            Self::Temporal => "temporal",
            Self::TemporalOrdered => "temporal_ordered",
            Self::ValueSum => "value_sum",
            Self::ValueAvg => "value_avg",
            Self::ValuePercentile => "value_percentile",
        }
    }

    /// Types whose condition names a `field` to aggregate.
    pub fn needs_field(self) -> bool {
        matches!(
            self,
            Self::ValueCount | Self::ValueSum | Self::ValueAvg | Self::ValuePercentile
        )
    }

    /// Types whose aggregate is numeric (the field must hold numbers).
    pub fn numeric(self) -> bool {
        matches!(
            self,
            Self::ValueSum | Self::ValueAvg | Self::ValuePercentile
        )
    }

    /// Whether the window's measure can only grow as events are added, so a
    /// lower-bound condition can fire as soon as it holds. value_sum counts as
    /// growing: see the crate docs for what that means with negative values.
    pub fn measure_grows(self) -> bool {
        !matches!(self, Self::ValueAvg | Self::ValuePercentile)
    }
}

/// Where a rule came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleSource {
    pub path: PathBuf,
    /// Zero-based index of the YAML document in the file.
    pub index: usize,
}

impl fmt::Display for RuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index == 0 {
            write!(f, "{}", self.path.display())
        } else {
            write!(f, "{} (document {})", self.path.display(), self.index + 1)
        }
    }
}

/// A correlation rule the engine cannot honour: the file, the rule and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: correlation `{rule}`: {reason}")]
pub struct RuleError {
    pub file: RuleSource,
    /// The rule's id, or its title when it has no id.
    pub rule: String,
    pub reason: String,
}

/// The descriptive attributes an alert carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleMeta {
    pub title: String,
    pub author: String,
    pub level: String,
    pub tags: Vec<String>,
    pub description: String,
    pub references: Vec<String>,
    pub falsepositives: Vec<String>,
    pub status: Option<String>,
}

/// A parsed and locally validated correlation rule. References are still
/// names or ids as written; [`crate::CorrelationSet`] resolves them.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelationRule {
    pub source: RuleSource,
    pub id: String,
    pub name: Option<String>,
    pub meta: RuleMeta,
    pub kind: CorrelationType,
    /// Referenced rules (ids or names), in order (the order matters for
    /// temporal_ordered).
    pub rules: Vec<String>,
    /// alias name → (rule reference as written → field in that rule's events).
    pub aliases: BTreeMap<String, BTreeMap<String, String>>,
    /// Group-by names (fields or aliases); empty means one group per agency.
    pub group_by: Vec<String>,
    pub timespan: Duration,
    pub condition: Condition,
    /// The aggregated field(s) for value_* types (several only for
    /// value_count, where they form a tuple).
    pub fields: Vec<String>,
    /// Which percentile value_percentile compares (0–100).
    pub percentile: Option<f64>,
    /// Whether the referenced rules also alert on their own.
    pub generate: bool,
    /// Per-rule suppression (`qalqan: {suppress: ...}`); `None` follows the
    /// engine's global setting.
    pub suppress: Option<SuppressSetting>,
}

impl CorrelationRule {
    /// Parses one correlation document.
    pub fn parse(path: &Path, index: usize, doc: &Yaml) -> Result<Self, RuleError> {
        let source = RuleSource {
            path: path.to_path_buf(),
            index,
        };
        let map = doc.as_mapping();
        let label = map
            .and_then(|m| str_of(m, "id").or_else(|| str_of(m, "title")))
            .unwrap_or("<untitled>")
            .to_owned();
        let fail = |reason: String| RuleError {
            file: source.clone(),
            rule: label.clone(),
            reason,
        };
        let map = map.ok_or_else(|| fail("the document is not a YAML mapping".into()))?;
        parse_rule(map, source.clone()).map_err(fail)
    }

    /// The type-specific measure's name, for messages and docs.
    pub fn measure_name(&self) -> &'static str {
        match self.kind {
            CorrelationType::EventCount => "event count",
            CorrelationType::ValueCount => "distinct value count",
            CorrelationType::Temporal => "number of referenced rules seen",
            CorrelationType::TemporalOrdered => "number of referenced rules seen in order",
            CorrelationType::ValueSum => "sum",
            CorrelationType::ValueAvg => "average",
            CorrelationType::ValuePercentile => "percentile",
        }
    }

    /// The field name this rule uses for `name` (a group-by name or value
    /// field) in events of the referenced rule written as `reference`:
    /// the alias target when `name` is an alias, else `name` itself.
    pub fn field_for<'a>(&'a self, name: &'a str, reference: &str) -> Option<&'a str> {
        match self.aliases.get(name) {
            Some(per_rule) => per_rule.get(reference).map(String::as_str),
            None => Some(name),
        }
    }
}

fn str_of<'a>(map: &'a Mapping, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Yaml::as_str)
}

const LEVELS: &[&str] = &["informational", "low", "medium", "high", "critical"];

fn parse_rule(map: &Mapping, source: RuleSource) -> Result<CorrelationRule, String> {
    let title = req_str(map, "title")?;
    if title.chars().count() > 256 {
        return Err("`title` is longer than 256 characters".into());
    }
    let id = match map.get("id") {
        Some(Yaml::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Yaml::String(_)) | None => {
            return Err(
                "has no `id`; qalqan needs a stable id to derive deterministic \
                 alert ids and to partition state by rule"
                    .into(),
            )
        }
        Some(other) => return Err(format!("`id` must be a string, got {}", kind(other))),
    };
    let name = opt_str(map, "name")?;
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err("`name` is empty".into());
    }
    for key in map.keys() {
        if let Some(k) = key.as_str() {
            if k.starts_with("qalqan") && k != "qalqan" {
                return Err(format!(
                    "unknown attribute `{k}`; qalqan's own settings go under `qalqan:`"
                ));
            }
        }
    }
    // Other custom attributes are allowed by Sigma and kept out of the way.
    let level = match opt_str(map, "level")? {
        Some(l) if LEVELS.contains(&l.as_str()) => l,
        Some(l) => {
            return Err(format!(
                "`level: {l}` is not one of informational, low, medium, high, critical"
            ))
        }
        None => "medium".to_owned(),
    };
    let meta = RuleMeta {
        title: title.clone(),
        author: opt_str(map, "author")?.unwrap_or_default(),
        level,
        tags: str_list(map, "tags")?,
        description: opt_str(map, "description")?.unwrap_or_default(),
        references: str_list(map, "references")?,
        falsepositives: str_list(map, "falsepositives")?,
        status: opt_str(map, "status")?,
    };
    let generate = match map.get("generate") {
        None => false,
        Some(Yaml::Bool(b)) => *b,
        Some(other) => {
            return Err(format!(
                "`generate` must be true or false, got {}",
                kind(other)
            ))
        }
    };
    let suppress = match map.get("qalqan") {
        None => None,
        Some(q) => crate::suppress::parse_rule_attribute(q)?,
    };

    let corr = match map.get("correlation") {
        Some(Yaml::Mapping(m)) => m,
        Some(other) => {
            return Err(format!(
                "`correlation` must be a mapping, got {}",
                kind(other)
            ))
        }
        None => return Err("has no `correlation` section".into()),
    };
    for key in corr.keys() {
        let k = key.as_str().unwrap_or("<non-string key>");
        if !matches!(
            k,
            "type" | "rules" | "aliases" | "group-by" | "timespan" | "condition" | "generate"
        ) {
            return Err(format!(
                "unknown attribute `correlation.{k}`; expected type, rules, aliases, group-by, \
                 timespan, condition"
            ));
        }
    }
    let type_name = req_str(corr, "type").map_err(|e| format!("correlation.{e}"))?;
    let kind_ = CorrelationType::from_name(&type_name).ok_or_else(|| {
        format!(
            "unknown `correlation.type: {type_name}`; expected event_count, value_count, \
             temporal, temporal_ordered, value_sum, value_avg or value_percentile"
        )
    })?;
    // `generate` is a top-level attribute in the specification; accept it
    // inside `correlation:` too, as some tools write it there.
    let generate = match corr.get("generate") {
        None => generate,
        Some(Yaml::Bool(b)) => *b || generate,
        Some(other) => {
            return Err(format!(
                "`correlation.generate` must be true or false, got {}",
                kind(other)
            ))
        }
    };

    let rules = match corr.get("rules") {
        Some(Yaml::Sequence(seq)) if !seq.is_empty() => {
            let mut out = Vec::with_capacity(seq.len());
            for item in seq {
                let s = scalar_string(item).ok_or_else(|| {
                    format!(
                        "`correlation.rules` entries must be rule ids or names, got {}",
                        kind(item)
                    )
                })?;
                if out.contains(&s) {
                    return Err(format!("`correlation.rules` lists `{s}` twice"));
                }
                out.push(s);
            }
            out
        }
        Some(Yaml::String(s)) => vec![s.clone()],
        Some(Yaml::Sequence(_)) | None => {
            return Err(
                "`correlation.rules` is missing or empty: name the rules to correlate".into(),
            )
        }
        Some(other) => {
            return Err(format!(
                "`correlation.rules` must be a list, got {}",
                kind(other)
            ))
        }
    };
    if rules.len() > MAX_REFERENCED_RULES {
        return Err(format!(
            "`correlation.rules` lists {} rules; at most {MAX_REFERENCED_RULES} are supported",
            rules.len()
        ));
    }

    let group_by = match corr.get("group-by") {
        None | Some(Yaml::Null) => Vec::new(),
        Some(Yaml::String(s)) => vec![s.clone()],
        Some(Yaml::Sequence(seq)) => {
            let mut out: Vec<String> = Vec::with_capacity(seq.len());
            for item in seq {
                let s = item.as_str().ok_or_else(|| {
                    format!(
                        "`correlation.group-by` entries must be field names, got {}",
                        kind(item)
                    )
                })?;
                if s.is_empty() {
                    return Err("`correlation.group-by` has an empty field name".into());
                }
                if out.iter().any(|x| x == s) {
                    return Err(format!("`correlation.group-by` lists `{s}` twice"));
                }
                out.push(s.to_owned());
            }
            out
        }
        Some(other) => {
            return Err(format!(
                "`correlation.group-by` must be a list of field names, got {}",
                kind(other)
            ))
        }
    };

    let timespan_text = match corr.get("timespan") {
        Some(Yaml::String(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "`correlation.timespan` must be text like `5m`, got {}",
                kind(other)
            ))
        }
        None => return Err("`correlation.timespan` is missing".into()),
    };
    let timespan = parse_timespan(&timespan_text)?;

    let aliases = parse_aliases(corr, &rules)?;

    let (condition, fields, percentile) = parse_condition(corr, kind_, rules.len())?;

    Ok(CorrelationRule {
        source,
        id,
        name,
        meta,
        kind: kind_,
        rules,
        aliases,
        group_by,
        timespan,
        condition,
        fields,
        percentile,
        generate,
        suppress,
    })
}

/// Parses a Sigma timespan: a whole number and one of `s`, `m`, `h`, `d`.
pub fn parse_timespan(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad =
        || format!("`timespan: {t}` is not a whole number followed by s, m, h or d (e.g. `90m`)");
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => return Err(bad()),
    }
    .ok_or_else(bad)?;
    if secs == 0 {
        return Err(format!("`timespan: {t}` is zero"));
    }
    let d = Duration::from_secs(secs);
    if d > MAX_TIMESPAN {
        return Err(format!(
            "`timespan: {t}` is longer than the supported 30 days"
        ));
    }
    Ok(d)
}

fn parse_aliases(
    corr: &Mapping,
    rules: &[String],
) -> Result<BTreeMap<String, BTreeMap<String, String>>, String> {
    let mut out = BTreeMap::new();
    let Some(raw) = corr.get("aliases") else {
        return Ok(out);
    };
    let Yaml::Mapping(raw) = raw else {
        return Err(format!(
            "`correlation.aliases` must be a mapping of alias → rule → field, got {}",
            kind(raw)
        ));
    };
    for (alias, per_rule) in raw {
        let alias = alias
            .as_str()
            .ok_or("`correlation.aliases` keys must be alias names")?;
        let Yaml::Mapping(per_rule) = per_rule else {
            return Err(format!(
                "`correlation.aliases.{alias}` must map rule names to field names"
            ));
        };
        let mut fields = BTreeMap::new();
        for (rule, field) in per_rule {
            let rule = scalar_string(rule)
                .ok_or_else(|| format!("`correlation.aliases.{alias}` has a non-text rule key"))?;
            let field = field.as_str().ok_or_else(|| {
                format!("`correlation.aliases.{alias}.{rule}` must be a field name")
            })?;
            if !rules.contains(&rule) {
                return Err(format!(
                    "`correlation.aliases.{alias}` names rule `{rule}`, which is not in \
                     `correlation.rules`"
                ));
            }
            fields.insert(rule, field.to_owned());
        }
        for r in rules {
            if !fields.contains_key(r) {
                return Err(format!(
                    "alias `{alias}` has no field for referenced rule `{r}`; map every \
                     referenced rule"
                ));
            }
        }
        out.insert(alias.to_owned(), fields);
    }
    Ok(out)
}

type ParsedCondition = (Condition, Vec<String>, Option<f64>);

fn parse_condition(
    corr: &Mapping,
    kind_: CorrelationType,
    n_rules: usize,
) -> Result<ParsedCondition, String> {
    use CorrelationType as T;
    let raw = match corr.get("condition") {
        None | Some(Yaml::Null) => None,
        Some(Yaml::Mapping(m)) => Some(m),
        Some(other) => {
            return Err(format!(
                "`correlation.condition` must be a mapping such as {{gte: 10}}, got {}",
                kind(other)
            ))
        }
    };
    let Some(raw) = raw else {
        return match kind_ {
            T::Temporal | T::TemporalOrdered => {
                Ok((Condition::at_least(n_rules as f64), Vec::new(), None))
            }
            _ => Err(format!(
                "`correlation.condition` is required for {}",
                kind_.name()
            )),
        };
    };
    let mut bounds = Vec::new();
    let mut fields = Vec::new();
    let mut percentile = None;
    for (key, value) in raw {
        let key = key.as_str().unwrap_or("<non-string key>");
        if let Some(op) = Op::from_key(key) {
            let t = number(value).ok_or_else(|| {
                format!(
                    "`correlation.condition.{key}` must be a number, got {}",
                    kind(value)
                )
            })?;
            bounds.push((op, t));
            continue;
        }
        match key {
            "field" => {
                fields =
                    match value {
                        Yaml::String(s) if !s.is_empty() => vec![s.clone()],
                        Yaml::Sequence(seq) if !seq.is_empty() => seq
                            .iter()
                            .map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                            .ok_or("`correlation.condition.field` entries must be field names")?,
                        _ => return Err(
                            "`correlation.condition.field` must be a field name or a list of them"
                                .into(),
                        ),
                    };
            }
            "percentile" => {
                let p = number(value).ok_or_else(|| {
                    format!(
                        "`correlation.condition.percentile` must be a number from 0 to 100, got {}",
                        kind(value)
                    )
                })?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(format!(
                        "`correlation.condition.percentile: {p}` is outside 0–100"
                    ));
                }
                percentile = Some(p);
            }
            other => {
                return Err(format!(
                    "unknown `correlation.condition.{other}`; expected gt, gte, lt, lte, eq, neq{}",
                    if kind_.needs_field() { ", field" } else { "" }
                ))
            }
        }
    }
    if bounds.is_empty() {
        return Err(
            "`correlation.condition` has no comparison (gt, gte, lt, lte, eq or neq)".into(),
        );
    }
    let condition = Condition::new(bounds);
    if kind_.needs_field() {
        if fields.is_empty() {
            return Err(format!(
                "{} needs `correlation.condition.field`: the field to aggregate",
                kind_.name()
            ));
        }
        if kind_ != T::ValueCount && fields.len() > 1 {
            return Err(format!(
                "{} aggregates one numeric field; `correlation.condition.field` lists {}",
                kind_.name(),
                fields.len()
            ));
        }
    } else if !fields.is_empty() {
        return Err(format!(
            "`correlation.condition.field` has no meaning for {}",
            kind_.name()
        ));
    }
    match (kind_, percentile) {
        (T::ValuePercentile, None) => {
            return Err(
                "value_percentile needs `correlation.condition.percentile` (0–100): which \
                 percentile of the field to compare; qalqan computes the nearest-rank \
                 percentile of the window's numeric values"
                    .into(),
            )
        }
        (T::ValuePercentile, Some(_)) | (_, None) => {}
        (_, Some(_)) => {
            return Err(format!(
                "`correlation.condition.percentile` only applies to value_percentile, not {}",
                kind_.name()
            ))
        }
    }
    let satisfiable = match kind_ {
        T::Temporal | T::TemporalOrdered => condition.satisfiable_by_count(Some(n_rules as u64)),
        T::EventCount | T::ValueCount => condition.satisfiable_by_count(None),
        T::ValueSum | T::ValueAvg | T::ValuePercentile => condition.satisfiable_by_real(),
    };
    if !satisfiable {
        let range = match kind_ {
            T::Temporal | T::TemporalOrdered => format!(" (it counts 1 to {n_rules} rules)"),
            _ => String::new(),
        };
        return Err(format!(
            "`correlation.condition` ({condition}) can never be satisfied{range}"
        ));
    }
    Ok((condition, fields, percentile))
}

fn number(v: &Yaml) -> Option<f64> {
    match v {
        Yaml::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn scalar_string(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) if !s.is_empty() => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn req_str(map: &Mapping, key: &str) -> Result<String, String> {
    match map.get(key) {
        Some(Yaml::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Yaml::String(_)) => Err(format!("`{key}` is empty")),
        Some(other) => Err(format!("`{key}` must be text, got {}", kind(other))),
        None => Err(format!("`{key}` is missing")),
    }
}

fn opt_str(map: &Mapping, key: &str) -> Result<Option<String>, String> {
    match map.get(key) {
        None | Some(Yaml::Null) => Ok(None),
        Some(Yaml::String(s)) => Ok(Some(s.clone())),
        Some(Yaml::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!("`{key}` must be text, got {}", kind(other))),
    }
}

fn str_list(map: &Mapping, key: &str) -> Result<Vec<String>, String> {
    match map.get(key) {
        None | Some(Yaml::Null) => Ok(Vec::new()),
        Some(Yaml::String(s)) => Ok(vec![s.clone()]),
        Some(Yaml::Sequence(seq)) => seq
            .iter()
            .map(|v| match v {
                Yaml::String(s) => Ok(s.clone()),
                Yaml::Number(n) => Ok(n.to_string()),
                other => Err(format!("`{key}` entries must be text, got {}", kind(other))),
            })
            .collect(),
        Some(other) => Err(format!("`{key}` must be a list, got {}", kind(other))),
    }
}

pub(crate) fn kind(v: &Yaml) -> &'static str {
    match v {
        Yaml::Null => "nothing",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "text",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CorrelationRule, RuleError> {
        let doc: Yaml = serde_yaml::from_str(text).expect("yaml");
        CorrelationRule::parse(Path::new("r.yml"), 0, &doc)
    }

    #[test]
    fn parses_the_specification_example() {
        let r = parse(
            "title: Many failed logins\nid: 0e95725d-7320-415d-80f7-004da920fc11\n\
             correlation:\n  type: event_count\n  rules:\n    - 5638f7c0-ac70-491d-8465-2a65075e0d86\n\
             \x20 group-by:\n    - ComputerName\n  timespan: 1h\n  condition:\n    gte: 100\n",
        )
        .expect("valid");
        assert_eq!(r.kind, CorrelationType::EventCount);
        assert_eq!(r.timespan, Duration::from_secs(3600));
        assert_eq!(r.group_by, vec!["ComputerName"]);
        assert!(r.condition.holds(100.0) && !r.condition.holds(99.0));
        assert_eq!(r.meta.level, "medium");
        assert!(!r.generate);
    }

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_timespan("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_timespan("1.5h").is_err());
        assert!(parse_timespan("0s").is_err());
        assert!(parse_timespan("5M").is_err());
        assert!(parse_timespan("31d").is_err());
        assert!(parse_timespan("m").is_err());
    }

    #[test]
    fn rejections_say_why() {
        let cases = [
            ("title: t\ncorrelation: {type: event_count, rules: [a], timespan: 1m, condition: {gte: 2}}", "has no `id`"),
            ("title: t\nid: x\ncorrelation: {type: event_sum, rules: [a], timespan: 1m}", "unknown `correlation.type"),
            ("title: t\nid: x\ncorrelation: {type: event_count, rules: [a], timespan: 1m}", "condition` is required"),
            ("title: t\nid: x\ncorrelation: {type: value_count, rules: [a], timespan: 1m, condition: {gte: 2}}", "needs `correlation.condition.field`"),
            ("title: t\nid: x\ncorrelation: {type: event_count, rules: [a], timespan: 1m, condition: {gte: 2, field: f}}", "no meaning"),
            ("title: t\nid: x\ncorrelation: {type: event_count, rules: [a], timespan: 1m, condition: {gt: 5, lt: 6}}", "never be satisfied"),
            ("title: t\nid: x\ncorrelation: {type: temporal, rules: [a, b], timespan: 1m, condition: {gte: 3}}", "never be satisfied"),
            ("title: t\nid: x\ncorrelation: {type: value_percentile, rules: [a], timespan: 1m, condition: {field: f, lte: 1}}", "needs `correlation.condition.percentile`"),
            ("title: t\nid: x\ncorrelation: {type: event_count, rules: [a, a], timespan: 1m, condition: {gte: 1}}", "twice"),
            ("title: t\nid: x\ncorrelation: {type: event_count, rules: [a], timespan: 1w, condition: {gte: 1}}", "timespan"),
            ("title: t\nid: x\ncorrelation: {type: event_count, rules: [a], timespan: 1m, condition: {gte: 1}, window: 3}", "unknown attribute `correlation.window`"),
            ("title: t\nid: x\ncorrelation: {type: temporal, rules: [a, b], timespan: 1m, group-by: [ip], aliases: {ip: {a: source.ip}}}", "no field for referenced rule `b`"),
            ("title: t\nid: x\ncorrelation: {type: temporal, rules: [a, b], timespan: 1m, aliases: {ip: {a: x, b: y, c: z}}}", "not in `correlation.rules`"),
            ("title: t\nid: x\nlevel: severe\ncorrelation: {type: temporal, rules: [a, b], timespan: 1m}", "not one of"),
            ("title: t\nid: x\ncorrelation: {type: value_sum, rules: [a], timespan: 1m, condition: {field: [f, g], gt: 1}}", "one numeric field"),
            ("title: t\nid: x\nqalqan_suppress: 1\ncorrelation: {type: temporal, rules: [a, b], timespan: 1m}", "unknown attribute `qalqan_suppress`"),
        ];
        for (text, reason) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.reason.contains(reason), "{text}\n→ {err}");
            assert!(err.to_string().starts_with("r.yml: correlation `"), "{err}");
        }
    }

    #[test]
    fn temporal_defaults_to_all_rules() {
        let r = parse("title: t\nid: x\ncorrelation: {type: temporal_ordered, rules: [a, b, c], timespan: 5m}")
            .expect("valid");
        assert!(r.condition.holds(3.0) && !r.condition.holds(2.0));
    }

    #[test]
    fn aliases_resolve_per_rule() {
        let r = parse(
            "title: t\nid: x\ncorrelation:\n  type: temporal\n  rules: [internal_error, new_network_connection]\n\
             \x20 group-by: [internal_ip, remote_ip]\n  timespan: 10s\n  aliases:\n\
             \x20   internal_ip: {internal_error: destination.ip, new_network_connection: source.ip}\n\
             \x20   remote_ip: {internal_error: source.ip, new_network_connection: destination.ip}\n",
        )
        .expect("valid");
        assert_eq!(
            r.field_for("internal_ip", "internal_error"),
            Some("destination.ip")
        );
        assert_eq!(
            r.field_for("remote_ip", "new_network_connection"),
            Some("destination.ip")
        );
        assert_eq!(
            r.field_for("user.name", "internal_error"),
            Some("user.name")
        );
    }

    #[test]
    fn percentile_and_float_thresholds() {
        let r = parse(
            "title: t\nid: x\ncorrelation: {type: value_percentile, rules: [a], timespan: 1h, \
             group-by: [host.name], condition: {field: duration, percentile: 95, gt: 2.5}}",
        )
        .expect("valid");
        assert_eq!(r.percentile, Some(95.0));
        assert!(r.condition.holds(2.6));
    }
}
