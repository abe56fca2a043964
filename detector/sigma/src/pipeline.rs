//! Processing pipelines: pySigma's YAML format, applied to parsed rules when
//! they are compiled (never per event).
//!
//! ```yaml
//! name: qalqan linux
//! priority: 20                 # pipelines run in ascending priority
//! vars:                        # placeholder values for `|expand`
//!   Administrators: [root, 'adm_*']
//! transformations:
//!   - id: sshd_fields
//!     type: field_name_mapping
//!     mapping:
//!       User: user.name
//!       Image: [process.executable, process.name]   # several → OR
//!     rule_conditions:
//!       - type: logsource
//!         product: linux
//!         service: sshd
//! ```
//!
//! Transformations: `field_name_mapping`, `field_name_prefix_mapping`,
//! `field_name_prefix`, `field_name_suffix`, `add_condition`,
//! `change_logsource`, `value_placeholders`, `wildcard_placeholders`,
//! `drop_detection_item`, `rule_failure`, `detection_item_failure`.
//! Rule conditions: `logsource`, `tag`, `processing_item_applied`,
//! `contains_detection_item`, `is_sigma_rule`, combined with `rule_cond_op`
//! (`and`/`or`) and `rule_cond_not`. Field-name conditions: `include_fields`
//! and `exclude_fields` (`type: plain` or `re`), with `field_name_cond_op`
//! and `field_name_cond_not`. Anything else is an error when the pipeline
//! loads — a pipeline we cannot run faithfully must not half-apply.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_yaml::{Mapping, Value as Yaml};

use crate::condition::Cond;
use crate::rule::{
    parse_search, scalar_string, DetectionItem, LogsourceSpec, RawValue, Search, SigmaRule,
};
use crate::value::{SigmaStr, Tok};

/// A loaded processing pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub priority: i64,
    pub source: Option<PathBuf>,
    /// Placeholder values (`vars:`).
    pub vars: BTreeMap<String, Vec<String>>,
    pub items: Vec<ProcessingItem>,
}

/// One transformation with the conditions that gate it.
#[derive(Debug, Clone)]
pub struct ProcessingItem {
    pub id: Option<String>,
    pub transform: Transform,
    pub rule_conditions: Vec<RuleCondition>,
    pub rule_cond_or: bool,
    pub rule_cond_not: bool,
    pub field_conditions: Vec<FieldCondition>,
    pub field_cond_or: bool,
    pub field_cond_not: bool,
}

/// The transformations this engine runs.
#[derive(Debug, Clone)]
pub enum Transform {
    /// Sigma field → one or more event fields (several are OR-ed).
    FieldNameMapping(BTreeMap<String, Vec<String>>),
    /// Field-name prefix → replacement prefix(es).
    FieldNamePrefixMapping(BTreeMap<String, Vec<String>>),
    FieldNamePrefix(String),
    FieldNameSuffix(String),
    /// AND a search onto the rule (`negated` → AND NOT).
    AddCondition {
        search: Search,
        negated: bool,
    },
    /// Replaces the rule's logsource (pySigma sets all three attributes).
    ChangeLogsource(LogsourceSpec),
    /// Expands placeholders from `vars`.
    ValuePlaceholders {
        include: Option<Vec<String>>,
        exclude: Option<Vec<String>>,
    },
    /// Replaces placeholders with `*` (pySigma's last resort).
    WildcardPlaceholders {
        include: Option<Vec<String>>,
        exclude: Option<Vec<String>>,
    },
    DropDetectionItem,
    RuleFailure(String),
    DetectionItemFailure(String),
}

/// Gate on the rule.
#[derive(Debug, Clone)]
pub enum RuleCondition {
    Logsource(LogsourceSpec),
    Tag(String),
    ProcessingItemApplied(String),
    ContainsDetectionItem {
        field: String,
        value: Option<String>,
    },
    IsSigmaRule,
}

/// Gate on a detection item's field.
#[derive(Debug, Clone)]
pub enum FieldCondition {
    Include(FieldSet),
    Exclude(FieldSet),
}

/// A set of field names, plain or regular expressions.
#[derive(Debug, Clone)]
pub enum FieldSet {
    Plain(BTreeSet<String>),
    Regex(Vec<Regex>),
}

impl FieldSet {
    fn contains(&self, field: &str) -> bool {
        match self {
            FieldSet::Plain(s) => s.contains(field),
            FieldSet::Regex(rs) => rs.iter().any(|r| r.is_match(field)),
        }
    }
}

/// A pipeline that could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("pipeline {source_name}: {message}")]
pub struct PipelineError {
    pub source_name: String,
    pub message: String,
}

impl Pipeline {
    /// The pipeline files in `dir` (`*.yml`, `*.yaml`), sorted by name: the
    /// order a rule pack's `pipelines/` directory is applied in, the same
    /// for the service, the rule tools, the tests and the benchmark.
    pub fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Loads a pipeline file.
    pub fn from_path(path: &Path) -> Result<Pipeline, PipelineError> {
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError {
            source_name: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        let mut p = Pipeline::from_yaml(&text, &path.display().to_string())?;
        p.source = Some(path.to_path_buf());
        Ok(p)
    }

    /// Parses pipeline YAML; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Pipeline, PipelineError> {
        let fail = |m: String| PipelineError {
            source_name: origin.to_owned(),
            message: m,
        };
        let doc: Yaml =
            serde_yaml::from_str(text).map_err(|e| fail(format!("invalid YAML: {e}")))?;
        let Yaml::Mapping(map) = doc else {
            return Err(fail("a pipeline must be a YAML mapping".into()));
        };
        for k in map.keys() {
            let k = k.as_str().unwrap_or_default();
            if !matches!(
                k,
                "name"
                    | "priority"
                    | "vars"
                    | "transformations"
                    | "postprocessing"
                    | "finalizers"
                    | "description"
                    | "allowed_backends"
            ) {
                return Err(fail(format!("unknown pipeline key '{k}'")));
            }
        }
        if map.get("postprocessing").is_some_and(|v| !v.is_null())
            || map.get("finalizers").is_some_and(|v| !v.is_null())
        {
            return Err(fail(
                "postprocessing/finalizers shape query text for conversion backends; this engine \
                 matches events and has no query to post-process"
                    .into(),
            ));
        }
        let name = map
            .get("name")
            .and_then(scalar_string)
            .unwrap_or_else(|| origin.to_owned());
        let priority = match map.get("priority") {
            None => 0,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| fail("priority must be an integer".into()))?,
        };
        let mut vars = BTreeMap::new();
        if let Some(v) = map.get("vars") {
            let Yaml::Mapping(m) = v else {
                return Err(fail("vars must be a mapping of name → value list".into()));
            };
            for (k, v) in m {
                let k = scalar_string(k).ok_or_else(|| fail("vars keys must be strings".into()))?;
                let vals = match v {
                    Yaml::Sequence(seq) => seq
                        .iter()
                        .map(|e| {
                            scalar_string(e)
                                .ok_or_else(|| fail(format!("vars.{k}: values must be scalars")))
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    other => vec![scalar_string(other)
                        .ok_or_else(|| fail(format!("vars.{k}: values must be scalars")))?],
                };
                vars.insert(k, vals);
            }
        }
        let mut items = Vec::new();
        if let Some(t) = map.get("transformations") {
            let Yaml::Sequence(seq) = t else {
                return Err(fail("transformations must be a list".into()));
            };
            for (i, t) in seq.iter().enumerate() {
                let Yaml::Mapping(tm) = t else {
                    return Err(fail(format!("transformation {} is not a mapping", i + 1)));
                };
                let label = tm
                    .get("id")
                    .and_then(scalar_string)
                    .unwrap_or_else(|| format!("#{}", i + 1));
                items.push(
                    parse_item(tm).map_err(|m| fail(format!("transformation {label}: {m}")))?,
                );
            }
        }
        Ok(Pipeline {
            name,
            priority,
            source: None,
            vars,
            items,
        })
    }
}

fn opt_list(m: &Mapping, key: &str) -> Result<Option<Vec<String>>, String> {
    match m.get(key) {
        None | Some(Yaml::Null) => Ok(None),
        Some(Yaml::Sequence(seq)) => seq
            .iter()
            .map(|e| scalar_string(e).ok_or_else(|| format!("{key}: entries must be strings")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => scalar_string(v)
            .map(|s| Some(vec![s]))
            .ok_or_else(|| format!("{key} must be a list of strings")),
    }
}

fn string_or_list(v: &Yaml, what: &str) -> Result<Vec<String>, String> {
    match v {
        Yaml::Sequence(seq) => seq
            .iter()
            .map(|e| scalar_string(e).ok_or_else(|| format!("{what}: entries must be strings")))
            .collect(),
        other => scalar_string(other)
            .map(|s| vec![s])
            .ok_or_else(|| format!("{what}: must be a string or a list of strings")),
    }
}

fn mapping_of_lists(m: &Mapping, key: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let Some(Yaml::Mapping(mm)) = m.get(key) else {
        return Err(format!("needs a `{key}` mapping"));
    };
    let mut out = BTreeMap::new();
    for (k, v) in mm {
        let k = scalar_string(k).ok_or_else(|| format!("{key}: keys must be strings"))?;
        let targets = string_or_list(v, &format!("{key}.{k}"))?;
        if targets.is_empty() {
            return Err(format!("{key}.{k}: maps to no field"));
        }
        out.insert(k, targets);
    }
    Ok(out)
}

fn parse_logsource_cond(m: &Mapping) -> Result<LogsourceSpec, String> {
    let get = |k: &str| {
        m.get(k)
            .and_then(scalar_string)
            .map(|s| s.to_ascii_lowercase())
    };
    Ok(LogsourceSpec {
        category: get("category"),
        product: get("product"),
        service: get("service"),
        definition: None,
    })
}

fn parse_item(tm: &Mapping) -> Result<ProcessingItem, String> {
    const KNOWN: [&str; 20] = [
        "id",
        "type",
        "rule_conditions",
        "rule_cond_op",
        "rule_cond_not",
        "field_name_conditions",
        "field_name_cond_op",
        "field_name_cond_not",
        "mapping",
        "prefix",
        "suffix",
        "conditions",
        "negated",
        "category",
        "product",
        "service",
        "include",
        "exclude",
        "message",
        "detection_item_conditions",
    ];
    for k in tm.keys() {
        let k = k.as_str().unwrap_or_default();
        if !KNOWN.contains(&k) {
            return Err(format!("unsupported key '{k}'"));
        }
    }
    if tm.contains_key("detection_item_conditions") {
        return Err(
            "detection_item_conditions are not supported; gate on field names or rule conditions"
                .into(),
        );
    }
    let kind = tm
        .get("type")
        .and_then(Yaml::as_str)
        .ok_or("needs a `type`")?;
    let transform = match kind {
        "field_name_mapping" => Transform::FieldNameMapping(mapping_of_lists(tm, "mapping")?),
        "field_name_prefix_mapping" => {
            Transform::FieldNamePrefixMapping(mapping_of_lists(tm, "mapping")?)
        }
        "field_name_prefix" => Transform::FieldNamePrefix(
            tm.get("prefix")
                .and_then(scalar_string)
                .ok_or("needs a `prefix`")?,
        ),
        "field_name_suffix" => Transform::FieldNameSuffix(
            tm.get("suffix")
                .and_then(scalar_string)
                .ok_or("needs a `suffix`")?,
        ),
        "add_condition" => {
            let conds = tm.get("conditions").ok_or("needs `conditions`")?;
            if !conds.is_mapping() {
                return Err("`conditions` must be a mapping of field: value".into());
            }
            let search = parse_search("add_condition", conds).map_err(|e| e.reason)?;
            let negated = tm.get("negated").and_then(Yaml::as_bool).unwrap_or(false);
            Transform::AddCondition { search, negated }
        }
        "change_logsource" => Transform::ChangeLogsource(parse_logsource_cond(tm)?),
        "value_placeholders" => Transform::ValuePlaceholders {
            include: opt_list(tm, "include")?,
            exclude: opt_list(tm, "exclude")?,
        },
        "wildcard_placeholders" => Transform::WildcardPlaceholders {
            include: opt_list(tm, "include")?,
            exclude: opt_list(tm, "exclude")?,
        },
        "drop_detection_item" => Transform::DropDetectionItem,
        "rule_failure" => Transform::RuleFailure(
            tm.get("message")
                .and_then(scalar_string)
                .unwrap_or_else(|| "rejected by pipeline".into()),
        ),
        "detection_item_failure" => Transform::DetectionItemFailure(
            tm.get("message")
                .and_then(scalar_string)
                .unwrap_or_else(|| "rejected by pipeline".into()),
        ),
        other => return Err(format!("unsupported transformation type '{other}'")),
    };
    let mut rule_conditions = Vec::new();
    if let Some(rc) = tm.get("rule_conditions") {
        let Yaml::Sequence(seq) = rc else {
            return Err("rule_conditions must be a list".into());
        };
        for c in seq {
            let Yaml::Mapping(cm) = c else {
                return Err("rule condition must be a mapping".into());
            };
            let t = cm
                .get("type")
                .and_then(Yaml::as_str)
                .ok_or("rule condition needs a type")?;
            rule_conditions.push(match t {
                "logsource" => RuleCondition::Logsource(parse_logsource_cond(cm)?),
                "tag" => RuleCondition::Tag(
                    cm.get("tag")
                        .and_then(scalar_string)
                        .ok_or("tag condition needs `tag`")?,
                ),
                "processing_item_applied" => RuleCondition::ProcessingItemApplied(
                    cm.get("processing_item_id")
                        .and_then(scalar_string)
                        .ok_or("processing_item_applied needs `processing_item_id`")?,
                ),
                "contains_detection_item" => RuleCondition::ContainsDetectionItem {
                    field: cm
                        .get("field")
                        .and_then(scalar_string)
                        .ok_or("contains_detection_item needs `field`")?,
                    value: cm.get("value").and_then(scalar_string),
                },
                "is_sigma_rule" => RuleCondition::IsSigmaRule,
                other => return Err(format!("unsupported rule condition type '{other}'")),
            });
        }
    }
    let mut field_conditions = Vec::new();
    if let Some(fc) = tm.get("field_name_conditions") {
        let Yaml::Sequence(seq) = fc else {
            return Err("field_name_conditions must be a list".into());
        };
        for c in seq {
            let Yaml::Mapping(cm) = c else {
                return Err("field name condition must be a mapping".into());
            };
            let t = cm
                .get("type")
                .and_then(Yaml::as_str)
                .ok_or("field name condition needs a type")?;
            let fields = string_or_list(
                cm.get("fields")
                    .ok_or("field name condition needs `fields`")?,
                "fields",
            )?;
            let set = match cm.get("mode").or(cm.get("matching")).and_then(Yaml::as_str) {
                Some("re") => FieldSet::Regex(
                    fields
                        .iter()
                        .map(|f| {
                            Regex::new(&format!("^(?:{f})$"))
                                .map_err(|e| format!("field regex '{f}': {e}"))
                        })
                        .collect::<Result<_, _>>()?,
                ),
                None | Some("plain") => FieldSet::Plain(fields.into_iter().collect()),
                Some(other) => return Err(format!("unsupported field condition mode '{other}'")),
            };
            field_conditions.push(match t {
                "include_fields" => FieldCondition::Include(set),
                "exclude_fields" => FieldCondition::Exclude(set),
                other => return Err(format!("unsupported field name condition type '{other}'")),
            });
        }
    }
    let op = |k: &str| -> Result<bool, String> {
        match tm.get(k).and_then(Yaml::as_str) {
            None | Some("and") => Ok(false),
            Some("or") => Ok(true),
            Some(o) => Err(format!("{k} must be 'and' or 'or', not '{o}'")),
        }
    };
    Ok(ProcessingItem {
        id: tm.get("id").and_then(scalar_string),
        transform,
        rule_conditions,
        rule_cond_or: op("rule_cond_op")?,
        rule_cond_not: tm
            .get("rule_cond_not")
            .and_then(Yaml::as_bool)
            .unwrap_or(false),
        field_conditions,
        field_cond_or: op("field_name_cond_op")?,
        field_cond_not: tm
            .get("field_name_cond_not")
            .and_then(Yaml::as_bool)
            .unwrap_or(false),
    })
}

/// Per-rule state while pipelines run.
#[derive(Debug, Default)]
pub struct ApplyState {
    /// Ids of processing items that applied to the rule.
    pub applied: BTreeSet<String>,
    /// Counter for names of added searches.
    added: usize,
}

impl ProcessingItem {
    fn rule_matches(&self, rule: &SigmaRule, state: &ApplyState) -> bool {
        if self.rule_conditions.is_empty() {
            return true;
        }
        let eval = |c: &RuleCondition| match c {
            RuleCondition::Logsource(ls) => ls.contains(&rule.logsource),
            RuleCondition::Tag(t) => rule.meta.tags.iter().any(|x| x.eq_ignore_ascii_case(t)),
            RuleCondition::ProcessingItemApplied(id) => state.applied.contains(id),
            RuleCondition::ContainsDetectionItem { field, value } => {
                rule.detection.searches.iter().any(|(_, s)| {
                    s.items().iter().any(|i| {
                        i.field.as_deref() == Some(field.as_str())
                            && value.as_ref().is_none_or(|v| {
                                i.values.iter().any(|x| match x {
                                    RawValue::Str(s) => s == v,
                                    other => other.to_string() == *v,
                                })
                            })
                    })
                })
            }
            RuleCondition::IsSigmaRule => true,
        };
        let r = if self.rule_cond_or {
            self.rule_conditions.iter().any(eval)
        } else {
            self.rule_conditions.iter().all(eval)
        };
        r != self.rule_cond_not
    }

    fn field_matches(&self, field: Option<&str>) -> bool {
        if self.field_conditions.is_empty() {
            return true;
        }
        let Some(field) = field else {
            // keyword items have no field name: field conditions never select them
            return false;
        };
        let eval = |c: &FieldCondition| match c {
            FieldCondition::Include(s) => s.contains(field),
            FieldCondition::Exclude(s) => !s.contains(field),
        };
        let r = if self.field_cond_or {
            self.field_conditions.iter().any(eval)
        } else {
            self.field_conditions.iter().all(eval)
        };
        r != self.field_cond_not
    }
}

/// Orders pipelines by priority (stable for equal priorities).
pub fn sort_pipelines(pipelines: &mut [Pipeline]) {
    pipelines.sort_by_key(|p| p.priority);
}

/// Applies `pipelines` (already sorted) to `rule`. An `Err` is a rejection
/// reason (pipeline name, transformation id and why).
pub fn apply(pipelines: &[Pipeline], rule: &mut SigmaRule) -> Result<ApplyState, String> {
    let mut state = ApplyState::default();
    for p in pipelines {
        for (i, item) in p.items.iter().enumerate() {
            if !item.rule_matches(rule, &state) {
                continue;
            }
            let label = item.id.clone().unwrap_or_else(|| format!("#{}", i + 1));
            apply_item(p, item, rule, &mut state)
                .map_err(|m| format!("pipeline '{}' transformation {label}: {m}", p.name))?;
            if let Some(id) = &item.id {
                state.applied.insert(id.clone());
            }
        }
    }
    Ok(state)
}

fn apply_item(
    p: &Pipeline,
    item: &ProcessingItem,
    rule: &mut SigmaRule,
    state: &mut ApplyState,
) -> Result<(), String> {
    match &item.transform {
        Transform::FieldNameMapping(map) => rewrite_fields(rule, item, |f| map.get(f).cloned()),
        Transform::FieldNamePrefixMapping(map) => rewrite_fields(rule, item, |f| {
            map.iter()
                .filter(|(prefix, _)| f.starts_with(prefix.as_str()))
                .max_by_key(|(prefix, _)| prefix.len())
                .map(|(prefix, targets)| {
                    targets
                        .iter()
                        .map(|t| format!("{t}{}", &f[prefix.len()..]))
                        .collect()
                })
        }),
        Transform::FieldNamePrefix(pre) => {
            rewrite_fields(rule, item, |f| Some(vec![format!("{pre}{f}")]))
        }
        Transform::FieldNameSuffix(suf) => {
            rewrite_fields(rule, item, |f| Some(vec![format!("{f}{suf}")]))
        }
        Transform::AddCondition { search, negated } => {
            state.added += 1;
            let name = format!("_cond_{}", state.added);
            rule.detection.searches.push((name.clone(), search.clone()));
            let added = if *negated {
                Cond::Not(Box::new(Cond::Ident(name)))
            } else {
                Cond::Ident(name)
            };
            for c in &mut rule.detection.conditions {
                let orig = std::mem::replace(c, Cond::Ident(String::new()));
                *c = Cond::And(vec![added.clone(), orig]);
            }
            Ok(())
        }
        Transform::ChangeLogsource(ls) => {
            rule.logsource.category = ls.category.clone();
            rule.logsource.product = ls.product.clone();
            rule.logsource.service = ls.service.clone();
            Ok(())
        }
        Transform::ValuePlaceholders { include, exclude } => {
            expand_placeholders(rule, item, include, exclude, |name| {
                p.vars.get(name).map(|vals| {
                    vals.iter()
                        .map(|v| SigmaStr::parse(v, false))
                        .collect::<Vec<_>>()
                })
            })
        }
        Transform::WildcardPlaceholders { include, exclude } => {
            expand_placeholders(rule, item, include, exclude, |_| {
                Some(vec![SigmaStr {
                    toks: vec![Tok::Star],
                }])
            })
        }
        Transform::DropDetectionItem => {
            for (name, search) in &mut rule.detection.searches {
                if drop_items(search, item) {
                    return Err(format!(
                        "dropping detection items left search identifier '{name}' empty"
                    ));
                }
            }
            Ok(())
        }
        Transform::RuleFailure(msg) => Err(msg.clone()),
        Transform::DetectionItemFailure(msg) => {
            for (_, s) in &rule.detection.searches {
                for i in s.items() {
                    if item.field_matches(i.field.as_deref()) {
                        return Err(format!("{msg} (field {})", i.key()));
                    }
                }
            }
            Ok(())
        }
    }
}

/// Renames the field of every gated item with `f`; several targets turn the
/// item into an OR over copies. Field references (`|fieldref` values) are
/// renamed too, which needs a single target.
fn rewrite_fields(
    rule: &mut SigmaRule,
    item: &ProcessingItem,
    f: impl Fn(&str) -> Option<Vec<String>>,
) -> Result<(), String> {
    fn walk(
        s: &mut Search,
        item: &ProcessingItem,
        f: &dyn Fn(&str) -> Option<Vec<String>>,
    ) -> Result<(), String> {
        match s {
            Search::And(v) | Search::Or(v) => {
                for x in v {
                    walk(x, item, f)?;
                }
                Ok(())
            }
            Search::Item(di) => {
                if di.modifiers.contains(&crate::modifier::Modifier::FieldRef) {
                    for v in &mut di.values {
                        if let RawValue::Str(name) = v {
                            if item.field_matches(Some(name)) {
                                if let Some(t) = f(name) {
                                    if t.len() != 1 {
                                        return Err(format!(
                                            "field reference '{name}' maps to {} fields; a reference needs exactly one",
                                            t.len()
                                        ));
                                    }
                                    *name = t[0].clone();
                                }
                            }
                        }
                    }
                }
                let Some(field) = di.field.clone() else {
                    return Ok(());
                };
                if !item.field_matches(Some(&field)) {
                    return Ok(());
                }
                if let Some(targets) = f(&field) {
                    if targets.len() == 1 {
                        di.field = Some(targets[0].clone());
                    } else {
                        let copies = targets
                            .into_iter()
                            .map(|t| {
                                Search::Item(DetectionItem {
                                    field: Some(t),
                                    ..di.clone()
                                })
                            })
                            .collect();
                        *s = Search::Or(copies);
                    }
                }
                Ok(())
            }
        }
    }
    for (_, s) in &mut rule.detection.searches {
        walk(s, item, &f)?;
    }
    Ok(())
}

/// Resolves placeholders of `|expand` values in place: the value becomes one
/// value per combination (the compiler turns each value's alternatives into
/// an OR, as pySigma's expansion does).
fn expand_placeholders(
    rule: &mut SigmaRule,
    item: &ProcessingItem,
    include: &Option<Vec<String>>,
    exclude: &Option<Vec<String>>,
    lookup: impl Fn(&str) -> Option<Vec<SigmaStr>>,
) -> Result<(), String> {
    let selected = |name: &str| {
        include.as_ref().is_none_or(|i| i.iter().any(|x| x == name))
            && !exclude
                .as_ref()
                .is_some_and(|e| e.iter().any(|x| x == name))
    };
    for (_, s) in &mut rule.detection.searches {
        for di in s.items_mut() {
            if !di.modifiers.contains(&crate::modifier::Modifier::Expand) {
                continue;
            }
            if di.field.is_some() && !item.field_matches(di.field.as_deref()) {
                continue;
            }
            let mut new_values = Vec::new();
            for v in &di.values {
                let RawValue::Str(text) = v else {
                    new_values.push(v.clone());
                    continue;
                };
                let parsed = SigmaStr::parse(text, true);
                let mut combos: Vec<SigmaStr> = vec![SigmaStr::default()];
                for t in &parsed.toks {
                    match t {
                        Tok::Placeholder(name) if selected(name) => {
                            if let Some(alts) = lookup(name) {
                                if alts.is_empty() {
                                    return Err(format!(
                                        "placeholder %{name}% has an empty value list"
                                    ));
                                }
                                let mut next = Vec::with_capacity(combos.len() * alts.len());
                                for c in &combos {
                                    for a in &alts {
                                        let mut n = c.clone();
                                        for at in &a.toks {
                                            n.push(at.clone());
                                        }
                                        next.push(n);
                                    }
                                }
                                if next.len() > 4096 {
                                    return Err("placeholder expansion exceeds 4096 values".into());
                                }
                                combos = next;
                                continue;
                            }
                            for c in &mut combos {
                                c.push(t.clone());
                            }
                        }
                        other => {
                            for c in &mut combos {
                                c.push(other.clone());
                            }
                        }
                    }
                }
                for c in combos {
                    new_values.push(RawValue::Str(encode_expanded(&c)));
                }
            }
            di.values = new_values;
        }
    }
    Ok(())
}

/// Writes an expanded value back in Sigma notation with `expand` escaping
/// (`%` as `\%` unless it is a remaining placeholder).
fn encode_expanded(s: &SigmaStr) -> String {
    let mut out = String::new();
    for t in &s.toks {
        match t {
            Tok::Lit(b) => {
                for c in String::from_utf8_lossy(b).chars() {
                    match c {
                        '*' | '?' | '%' => {
                            out.push('\\');
                            out.push(c);
                        }
                        '\\' => out.push_str("\\\\"),
                        c => out.push(c),
                    }
                }
            }
            Tok::Star => out.push('*'),
            Tok::One => out.push('?'),
            Tok::Dash => out.push('-'),
            Tok::Placeholder(n) => {
                out.push('%');
                out.push_str(n);
                out.push('%');
            }
        }
    }
    out
}

/// Removes gated items; returns true when `s` itself became empty.
fn drop_items(s: &mut Search, item: &ProcessingItem) -> bool {
    match s {
        Search::Item(di) => di.field.is_some() && item.field_matches(di.field.as_deref()),
        Search::And(v) | Search::Or(v) => {
            v.retain_mut(|x| !drop_items(x, item));
            v.is_empty()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{parse_file, Document};

    fn rule(text: &str) -> SigmaRule {
        match parse_file(Path::new("t.yml"), text).remove(0).1 {
            Ok(Document::Rule(r)) => *r,
            other => panic!("{other:?}"),
        }
    }

    const R: &str = "title: t\ntags: [attack.x]\nlogsource: {product: windows, category: process_creation}\n\
        detection:\n  sel:\n    Image|endswith: a.exe\n    User|expand: '%Admins%'\n  condition: sel\n";

    #[test]
    fn mapping_condition_and_placeholders() {
        let p = Pipeline::from_yaml(
            r#"name: p
vars: {Admins: [root, 'adm_*']}
transformations:
- id: m
  type: field_name_mapping
  mapping: {Image: [process.executable, process.name]}
  rule_conditions: [{type: logsource, product: windows}]
- type: field_name_mapping
  mapping: {User: user.name}
  rule_conditions: [{type: processing_item_applied, processing_item_id: m}]
- type: value_placeholders
- type: add_condition
  conditions: {EventID: 1}
- type: change_logsource
  product: windows
  service: sysmon
"#,
            "p",
        )
        .unwrap();
        let mut r = rule(R);
        let st = apply(&[p], &mut r).unwrap();
        assert!(st.applied.contains("m"));
        let sel = r.detection.search("sel").unwrap();
        let items = sel.items();
        let fields: Vec<_> = items.iter().map(|i| i.field.clone().unwrap()).collect();
        assert_eq!(
            fields,
            vec!["process.executable", "process.name", "user.name"]
        );
        assert_eq!(items[2].values.len(), 2);
        assert_eq!(r.detection.searches.last().unwrap().0, "_cond_1");
        assert!(matches!(&r.detection.conditions[0], Cond::And(v) if v.len() == 2));
        assert_eq!(r.logsource.service.as_deref(), Some("sysmon"));
        assert_eq!(r.logsource.category, None);
    }

    #[test]
    fn gates_and_failures() {
        let p = Pipeline::from_yaml(
            "transformations:\n- type: rule_failure\n  message: no linux here\n  rule_conditions: [{type: logsource, product: linux}]\n",
            "p",
        )
        .unwrap();
        let mut r = rule(R);
        assert!(apply(std::slice::from_ref(&p), &mut r).is_ok());
        let p2 = Pipeline::from_yaml(
            "transformations:\n- type: detection_item_failure\n  message: no users\n  field_name_conditions: [{type: include_fields, fields: [User]}]\n",
            "p",
        )
        .unwrap();
        assert!(apply(&[p2], &mut r).unwrap_err().contains("no users"));
        assert!(Pipeline::from_yaml("transformations:\n- type: bogus\n", "p").is_err());
        assert!(Pipeline::from_yaml("bogus: 1\n", "p").is_err());
    }

    #[test]
    fn drop_items_and_prefix() {
        let p = Pipeline::from_yaml(
            "transformations:\n- type: drop_detection_item\n  field_name_conditions: [{type: include_fields, fields: [User]}]\n\
             - type: field_name_prefix\n  prefix: 'winlog.event_data.'\n",
            "p",
        )
        .unwrap();
        let mut r = rule(R);
        apply(&[p], &mut r).unwrap();
        let items = r.detection.search("sel").unwrap().items();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].field.as_deref(), Some("winlog.event_data.Image"));
    }
}
