//! Parser: YAML documents into the rule AST.
//!
//! One file may hold several YAML documents. Each is a detection rule
//! (`detection:`), a Sigma filter (`filter:`), or a correlation rule
//! (`correlation:`). Correlations are not compiled here — they are handed
//! out raw ([`RawCorrelation`]) to the correlation engine, which resolves the
//! rules they reference through [`crate::RuleSet::find_rule`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_yaml::{Mapping, Value as Yaml};

use crate::condition::{self, Cond};
use crate::modifier::{split_key, Modifier};

/// Where a document came from: file and position among the file's documents.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceRef {
    pub path: Arc<PathBuf>,
    /// Zero-based index of the YAML document in the file.
    pub index: usize,
}

impl SourceRef {
    pub fn new(path: &Path, index: usize) -> Self {
        SourceRef {
            path: Arc::new(path.to_path_buf()),
            index,
        }
    }
}

impl std::fmt::Display for SourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.index == 0 {
            write!(f, "{}", self.path.display())
        } else {
            write!(f, "{} (document {})", self.path.display(), self.index + 1)
        }
    }
}

/// A `related:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    pub id: String,
    pub kind: String,
}

/// Every document attribute of a Sigma rule except logsource and detection.
/// Attributes the specification does not name are kept in `custom`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleMeta {
    pub title: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub related: Vec<Related>,
    pub taxonomy: Option<String>,
    pub status: Option<String>,
    pub description: Option<String>,
    pub license: Option<String>,
    pub author: Option<String>,
    pub references: Vec<String>,
    pub date: Option<String>,
    pub modified: Option<String>,
    pub fields: Vec<String>,
    pub falsepositives: Vec<String>,
    pub level: Option<String>,
    pub tags: Vec<String>,
    pub scope: Vec<String>,
    /// Arbitrary custom attributes, as written.
    pub custom: Mapping,
}

/// The `logsource:` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LogsourceSpec {
    pub category: Option<String>,
    pub product: Option<String>,
    pub service: Option<String>,
    pub definition: Option<String>,
}

impl LogsourceSpec {
    /// pySigma's containment: every attribute `self` sets equals `other`'s.
    pub fn contains(&self, other: &LogsourceSpec) -> bool {
        fn part(a: &Option<String>, b: &Option<String>) -> bool {
            match a {
                None => true,
                Some(a) => b.as_deref().is_some_and(|b| a.eq_ignore_ascii_case(b)),
            }
        }
        part(&self.category, &other.category)
            && part(&self.product, &other.product)
            && part(&self.service, &other.service)
    }
}

/// A scalar value as written in a detection.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

impl std::fmt::Display for RawValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawValue::Str(s) => write!(f, "'{s}'"),
            RawValue::Int(i) => write!(f, "{i}"),
            RawValue::Float(x) => write!(f, "{x}"),
            RawValue::Bool(b) => write!(f, "{b}"),
            RawValue::Null => f.write_str("null"),
        }
    }
}

/// One `field|modifiers: values` entry, or a keyword list (field `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionItem {
    pub field: Option<String>,
    pub modifiers: Vec<Modifier>,
    pub values: Vec<RawValue>,
}

impl DetectionItem {
    /// The key as a rule would write it (`field|mod|mod`).
    pub fn key(&self) -> String {
        let mut k = self.field.clone().unwrap_or_default();
        for m in &self.modifiers {
            k.push('|');
            k.push_str(m.name());
        }
        k
    }
}

/// A search identifier's definition: maps are AND, lists are OR.
#[derive(Debug, Clone, PartialEq)]
pub enum Search {
    And(Vec<Search>),
    Or(Vec<Search>),
    Item(DetectionItem),
}

impl Search {
    /// Visits every detection item.
    pub fn items(&self) -> Vec<&DetectionItem> {
        let mut out = Vec::new();
        fn walk<'a>(s: &'a Search, out: &mut Vec<&'a DetectionItem>) {
            match s {
                Search::And(v) | Search::Or(v) => v.iter().for_each(|s| walk(s, out)),
                Search::Item(i) => out.push(i),
            }
        }
        walk(self, &mut out);
        out
    }

    /// Mutable visit of every detection item.
    pub fn items_mut(&mut self) -> Vec<&mut DetectionItem> {
        let mut out = Vec::new();
        fn walk<'a>(s: &'a mut Search, out: &mut Vec<&'a mut DetectionItem>) {
            match s {
                Search::And(v) | Search::Or(v) => v.iter_mut().for_each(|s| walk(s, out)),
                Search::Item(i) => out.push(i),
            }
        }
        walk(self, &mut out);
        out
    }
}

/// The `detection:` section: named searches (in file order) and conditions
/// (several conditions are OR-ed, per the specification).
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub searches: Vec<(String, Search)>,
    pub conditions: Vec<Cond>,
}

impl Detection {
    pub fn search(&self, name: &str) -> Option<&Search> {
        self.searches
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }
}

/// A parsed detection rule.
#[derive(Debug, Clone, PartialEq)]
pub struct SigmaRule {
    pub source: SourceRef,
    pub meta: RuleMeta,
    pub logsource: LogsourceSpec,
    pub detection: Detection,
}

/// A parsed Sigma filter (filters specification): its searches and
/// condition are AND-ed onto every rule it names (pySigma semantics:
/// `(rule condition) and (filter condition)`, so filters are written with
/// `condition: not selection`).
#[derive(Debug, Clone, PartialEq)]
pub struct SigmaFilter {
    pub source: SourceRef,
    pub title: String,
    pub id: Option<String>,
    pub description: Option<String>,
    pub logsource: LogsourceSpec,
    /// Rule ids or names; empty with `any_rule` set for `rules: any`.
    pub rules: Vec<String>,
    /// `rules: any` / `rules: all` (pySigma): every rule whose logsource the
    /// filter's logsource contains.
    pub any_rule: bool,
    pub searches: Vec<(String, Search)>,
    pub condition: Cond,
}

/// A correlation rule document, unparsed: the correlation engine owns it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawCorrelation {
    pub source: SourceRef,
    pub doc: Yaml,
}

impl RawCorrelation {
    pub fn path(&self) -> &Path {
        &self.source.path
    }
    /// Index of the document in its file.
    pub fn index(&self) -> usize {
        self.source.index
    }
}

/// One YAML document, classified.
#[derive(Debug, Clone)]
pub enum Document {
    Rule(Box<SigmaRule>),
    Filter(Box<SigmaFilter>),
    Correlation(Box<RawCorrelation>),
}

/// Why a document was rejected at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The rule id, when the document got far enough to have one.
    pub rule_id: Option<String>,
    pub title: Option<String>,
    /// The construct at fault (`detection.selection.Image|foo`, `condition`, ...).
    pub construct: String,
    pub reason: String,
    /// A Sigma 1.0 aggregation (for the "use correlation rules" report).
    pub legacy_aggregation: bool,
}

/// Why documents of a Sigma 1.0 rule collection are rejected.
pub const COLLECTION_REASON: &str = "Sigma 1.0 rule collections (`action: global/reset/repeat`) \
are not part of Sigma 2.1; write each rule as its own complete document";

fn perr(construct: impl Into<String>, reason: impl Into<String>) -> ParseError {
    ParseError {
        rule_id: None,
        title: None,
        construct: construct.into(),
        reason: reason.into(),
        legacy_aggregation: false,
    }
}

/// Parses every document of a file. A YAML syntax error rejects the rest of
/// the file (the parser cannot resynchronize); other errors reject only
/// their document.
pub fn parse_file(path: &Path, text: &str) -> Vec<(SourceRef, Result<Document, ParseError>)> {
    use serde::Deserialize;
    let mut out = Vec::new();
    let mut collection = false;
    for (index, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let src = SourceRef::new(path, index);
        match Yaml::deserialize(de) {
            Ok(Yaml::Null) => continue, // empty document (e.g. a trailing `---`)
            Ok(doc) => {
                // Documents after `action: global` only make sense merged into
                // it; report them under the collection's reason.
                collection |= doc.get("action").is_some();
                let r = if collection && doc.get("action").is_none() {
                    Err(ParseError {
                        rule_id: doc.get("id").and_then(scalar_string),
                        title: doc.get("title").and_then(scalar_string),
                        ..perr("action", COLLECTION_REASON)
                    })
                } else {
                    parse_document(&src, doc)
                };
                out.push((src, r));
            }
            Err(e) => {
                out.push((src, Err(perr("yaml", format!("invalid YAML: {e}")))));
                break;
            }
        }
    }
    out
}

/// Classifies and parses one document.
pub fn parse_document(src: &SourceRef, doc: Yaml) -> Result<Document, ParseError> {
    let Yaml::Mapping(map) = doc else {
        return Err(perr("document", "a Sigma document must be a YAML mapping"));
    };
    let title = map.get("title").and_then(scalar_string);
    let id = map.get("id").and_then(scalar_string);
    let with_ids = |mut e: ParseError| {
        e.rule_id = id.clone();
        e.title = title.clone();
        e
    };
    if map.contains_key("correlation") {
        return Ok(Document::Correlation(Box::new(RawCorrelation {
            source: src.clone(),
            doc: Yaml::Mapping(map),
        })));
    }
    if map.contains_key("action") {
        return Err(with_ids(perr("action", COLLECTION_REASON)));
    }
    if map.contains_key("filter") && !map.contains_key("detection") {
        return parse_filter(src, &map)
            .map(|f| Document::Filter(Box::new(f)))
            .map_err(with_ids);
    }
    if map.contains_key("detection") {
        return parse_rule(src, map)
            .map(|r| Document::Rule(Box::new(r)))
            .map_err(with_ids);
    }
    Err(with_ids(perr(
        "document",
        "not a Sigma rule, filter or correlation: no `detection`, `filter` or `correlation` section",
    )))
}

const KNOWN_ATTRIBUTES: [&str; 20] = [
    "title",
    "id",
    "name",
    "related",
    "taxonomy",
    "status",
    "description",
    "license",
    "author",
    "references",
    "date",
    "modified",
    "logsource",
    "detection",
    "fields",
    "falsepositives",
    "level",
    "tags",
    "scope",
    "reference", // the specification's section header spells it so; keep it with references
];

fn parse_rule(src: &SourceRef, map: Mapping) -> Result<SigmaRule, ParseError> {
    let title = match map.get("title") {
        Some(v) => scalar_string(v).ok_or_else(|| perr("title", "title must be a string"))?,
        None => return Err(perr("title", "a rule needs a title")),
    };
    let mut meta = RuleMeta {
        title,
        id: map.get("id").and_then(scalar_string),
        name: map.get("name").and_then(scalar_string),
        taxonomy: map.get("taxonomy").and_then(scalar_string),
        status: map.get("status").and_then(scalar_string),
        description: map.get("description").and_then(scalar_string),
        license: map.get("license").and_then(scalar_string),
        author: map.get("author").and_then(scalar_string),
        date: map.get("date").and_then(scalar_string),
        modified: map.get("modified").and_then(scalar_string),
        level: map.get("level").and_then(scalar_string),
        references: string_list(map.get("references"))
            .into_iter()
            .chain(string_list(map.get("reference")))
            .collect(),
        fields: string_list(map.get("fields")),
        falsepositives: string_list(map.get("falsepositives")),
        tags: string_list(map.get("tags")),
        scope: string_list(map.get("scope")),
        ..RuleMeta::default()
    };
    if let Some(Yaml::Sequence(rel)) = map.get("related") {
        for r in rel {
            let id = r.get("id").and_then(scalar_string);
            let kind = r.get("type").and_then(scalar_string);
            if let (Some(id), Some(kind)) = (id, kind) {
                meta.related.push(Related { id, kind });
            }
        }
    }
    for (k, v) in &map {
        if let Some(k) = k.as_str() {
            if !KNOWN_ATTRIBUTES.contains(&k) {
                meta.custom.insert(Yaml::String(k.to_owned()), v.clone());
            }
        }
    }
    let logsource = parse_logsource(map.get("logsource"))?;
    let Some(Yaml::Mapping(det)) = map.get("detection") else {
        return Err(perr("detection", "detection must be a mapping"));
    };
    let mut searches = Vec::new();
    let mut conditions = Vec::new();
    for (k, v) in det {
        let Some(name) = k.as_str() else {
            return Err(perr(
                "detection",
                format!("search identifier {k:?} is not a string"),
            ));
        };
        match name {
            "condition" => conditions = parse_conditions(v)?,
            "timeframe" => {
                return Err(ParseError {
                    legacy_aggregation: true,
                    ..perr(
                        "detection.timeframe",
                        "`timeframe` belongs to Sigma 1.0 aggregations: express the time window \
                         as a Sigma correlation rule's `timespan` referencing this rule",
                    )
                })
            }
            _ => searches.push((name.to_owned(), parse_search(name, v)?)),
        }
    }
    if conditions.is_empty() {
        return Err(perr(
            "detection.condition",
            "the detection has no condition",
        ));
    }
    Ok(SigmaRule {
        source: src.clone(),
        meta,
        logsource,
        detection: Detection {
            searches,
            conditions,
        },
    })
}

fn parse_conditions(v: &Yaml) -> Result<Vec<Cond>, ParseError> {
    let texts: Vec<String> = match v {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Sequence(seq) => seq
            .iter()
            .map(|c| {
                c.as_str().map(str::to_owned).ok_or_else(|| {
                    perr(
                        "detection.condition",
                        "condition list entries must be strings",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(perr(
                "detection.condition",
                "condition must be a string or a list of strings",
            ))
        }
    };
    if texts.is_empty() {
        return Err(perr("detection.condition", "empty condition list"));
    }
    texts
        .iter()
        .map(|t| {
            condition::parse(t).map_err(|e| ParseError {
                legacy_aggregation: e.legacy_aggregation,
                ..perr(format!("detection.condition `{}`", t.trim()), e.message)
            })
        })
        .collect()
}

fn parse_logsource(v: Option<&Yaml>) -> Result<LogsourceSpec, ParseError> {
    let Some(v) = v else {
        return Err(perr("logsource", "a rule needs a logsource"));
    };
    let Yaml::Mapping(m) = v else {
        return Err(perr("logsource", "logsource must be a mapping"));
    };
    let get = |k: &str| -> Result<Option<String>, ParseError> {
        match m.get(k) {
            None | Some(Yaml::Null) => Ok(None),
            Some(v) => scalar_string(v)
                .map(Some)
                .ok_or_else(|| perr(format!("logsource.{k}"), "must be a string")),
        }
    };
    Ok(LogsourceSpec {
        category: get("category")?.map(|s| s.to_ascii_lowercase()),
        product: get("product")?.map(|s| s.to_ascii_lowercase()),
        service: get("service")?.map(|s| s.to_ascii_lowercase()),
        definition: get("definition")?,
    })
}

/// Parses a search identifier's definition.
pub fn parse_search(name: &str, v: &Yaml) -> Result<Search, ParseError> {
    let at = format!("detection.{name}");
    match v {
        Yaml::Mapping(m) => parse_map(&at, m),
        Yaml::Sequence(seq) => {
            if seq.is_empty() {
                return Err(perr(at, "empty list"));
            }
            let mut keywords = Vec::new();
            let mut alternatives = Vec::new();
            for e in seq {
                match e {
                    Yaml::Mapping(m) => alternatives.push(parse_map(&at, m)?),
                    Yaml::Sequence(_) => {
                        return Err(perr(at, "a list inside a list is not valid Sigma"))
                    }
                    other => keywords.push(raw_value(&at, other)?),
                }
            }
            if !keywords.is_empty() {
                if keywords.iter().any(|k| matches!(k, RawValue::Null)) {
                    return Err(perr(at, "null is not a keyword"));
                }
                alternatives.insert(
                    0,
                    Search::Item(DetectionItem {
                        field: None,
                        modifiers: Vec::new(),
                        values: keywords,
                    }),
                );
            }
            Ok(if alternatives.len() == 1 {
                alternatives.remove(0)
            } else {
                Search::Or(alternatives)
            })
        }
        Yaml::Null => Err(perr(at, "search identifier has no definition")),
        other => {
            let v = raw_value(&at, other)?;
            if matches!(v, RawValue::Null) {
                return Err(perr(at, "null is not a keyword"));
            }
            Ok(Search::Item(DetectionItem {
                field: None,
                modifiers: Vec::new(),
                values: vec![v],
            }))
        }
    }
}

fn parse_map(at: &str, m: &Mapping) -> Result<Search, ParseError> {
    if m.is_empty() {
        return Err(perr(at, "empty mapping"));
    }
    let mut items = Vec::new();
    for (k, v) in m {
        let key = match k {
            Yaml::String(s) => s.clone(),
            Yaml::Number(n) => n.to_string(),
            Yaml::Bool(b) => b.to_string(),
            _ => return Err(perr(at, format!("field key {k:?} is not a string"))),
        };
        let construct = format!("{at}.{key}");
        let (field, modifiers) =
            split_key(&key).map_err(|m| perr(&construct, format!("unknown modifier '{m}'")))?;
        let values = match v {
            Yaml::Sequence(seq) => {
                if seq.is_empty() {
                    return Err(perr(&construct, "empty value list"));
                }
                seq.iter()
                    .map(|e| raw_value(&construct, e))
                    .collect::<Result<Vec<_>, _>>()?
            }
            other => vec![raw_value(&construct, other)?],
        };
        if values.len() > 1 && values.iter().any(|v| matches!(v, RawValue::Null)) {
            return Err(perr(
                &construct,
                "null cannot be part of a value list (specification: write a separate selection)",
            ));
        }
        items.push(Search::Item(DetectionItem {
            field,
            modifiers,
            values,
        }));
    }
    Ok(if items.len() == 1 {
        items.remove(0)
    } else {
        Search::And(items)
    })
}

fn raw_value(at: &str, v: &Yaml) -> Result<RawValue, ParseError> {
    Ok(match v {
        Yaml::Null => RawValue::Null,
        Yaml::Bool(b) => RawValue::Bool(*b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                RawValue::Int(i)
            } else if let Some(f) = n.as_f64() {
                RawValue::Float(f)
            } else {
                RawValue::Str(n.to_string())
            }
        }
        Yaml::String(s) => RawValue::Str(s.clone()),
        Yaml::Mapping(_) => {
            return Err(perr(at, "a mapping is not a valid value here (maps belong directly under a search identifier or in a list of maps)"))
        }
        Yaml::Sequence(_) => return Err(perr(at, "a list inside a value list is not valid Sigma")),
        Yaml::Tagged(t) => return raw_value(at, &t.value),
    })
}

fn parse_filter(src: &SourceRef, map: &Mapping) -> Result<SigmaFilter, ParseError> {
    let title = map
        .get("title")
        .and_then(scalar_string)
        .ok_or_else(|| perr("title", "a filter needs a title"))?;
    let logsource = parse_logsource(map.get("logsource"))?;
    let Some(Yaml::Mapping(f)) = map.get("filter") else {
        return Err(perr("filter", "filter must be a mapping"));
    };
    let (rules, any_rule) = match f.get("rules") {
        Some(Yaml::String(s)) if s.eq_ignore_ascii_case("any") || s.eq_ignore_ascii_case("all") => {
            (Vec::new(), true)
        }
        Some(Yaml::String(s)) => (vec![s.clone()], false),
        Some(Yaml::Sequence(seq)) if seq.is_empty() => (Vec::new(), true),
        Some(Yaml::Sequence(seq)) => (
            seq.iter()
                .map(|r| {
                    scalar_string(r)
                        .ok_or_else(|| perr("filter.rules", "rule references must be strings"))
                })
                .collect::<Result<_, _>>()?,
            false,
        ),
        _ => {
            return Err(perr(
                "filter.rules",
                "a filter needs `rules`: a list of rule ids or names, or `any`",
            ))
        }
    };
    let condition = match f.get("condition") {
        Some(Yaml::String(s)) => condition::parse(s).map_err(|e| ParseError {
            legacy_aggregation: e.legacy_aggregation,
            ..perr("filter.condition", e.message)
        })?,
        _ => {
            return Err(perr(
                "filter.condition",
                "a filter needs one condition string",
            ))
        }
    };
    let mut searches = Vec::new();
    for (k, v) in f {
        let Some(name) = k.as_str() else { continue };
        if name == "rules" || name == "condition" {
            continue;
        }
        searches.push((name.to_owned(), parse_search(name, v)?));
    }
    if searches.is_empty() {
        return Err(perr(
            "filter.selection",
            "a filter needs at least one selection",
        ));
    }
    Ok(SigmaFilter {
        source: src.clone(),
        title,
        id: map.get("id").and_then(scalar_string),
        description: map.get("description").and_then(scalar_string),
        logsource,
        rules,
        any_rule,
        searches,
        condition,
    })
}

/// A scalar as a string (numbers and booleans as written).
pub fn scalar_string(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Tagged(t) => scalar_string(&t.value),
        _ => None,
    }
}

/// A list of strings; a single string counts as a one-element list.
fn string_list(v: Option<&Yaml>) -> Vec<String> {
    match v {
        Some(Yaml::Sequence(seq)) => seq.iter().filter_map(scalar_string).collect(),
        Some(other) => scalar_string(other).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Custom attributes as plain strings where they are scalars (for display).
pub fn custom_strings(meta: &RuleMeta) -> BTreeMap<String, String> {
    meta.custom
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), scalar_string(v)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_one(text: &str) -> Result<Document, ParseError> {
        let mut docs = parse_file(Path::new("t.yml"), text);
        assert_eq!(docs.len(), 1);
        docs.remove(0).1
    }

    #[test]
    fn keeps_every_attribute() {
        let doc = parse_one(
            "title: T\nid: 1\nname: n\nstatus: test\nlevel: high\nauthor: A, B\n\
             tags: [attack.t1110]\nreferences: [r1]\nfalsepositives: [fp]\nfields: [f]\n\
             related: [{id: x, type: derived}]\ndate: 2024-01-02\nmodified: 2024/01/03\n\
             license: DRL-1.1\ndescription: d\nscope: [server]\ntaxonomy: sigma\nmy_custom: 7\n\
             logsource: {product: Linux, service: sshd}\n\
             detection: {sel: {a: 1}, condition: sel}\n",
        )
        .unwrap();
        let Document::Rule(r) = doc else {
            panic!("not a rule")
        };
        assert_eq!(r.meta.id.as_deref(), Some("1"));
        assert_eq!(r.meta.name.as_deref(), Some("n"));
        assert_eq!(r.meta.related[0].kind, "derived");
        assert_eq!(r.meta.modified.as_deref(), Some("2024/01/03"));
        assert_eq!(r.meta.scope, vec!["server"]);
        assert_eq!(r.logsource.product.as_deref(), Some("linux"));
        assert_eq!(
            custom_strings(&r.meta).get("my_custom").map(String::as_str),
            Some("7")
        );
    }

    #[test]
    fn classifies_documents() {
        let docs = parse_file(
            Path::new("m.yml"),
            "title: r\nid: r1\nlogsource: {product: x}\ndetection: {k: [a], condition: k}\n---\n\
             title: c\ncorrelation: {type: event_count, rules: [r1]}\n---\n\
             title: f\nlogsource: {product: x}\nfilter: {rules: [r1], selection: {u: a}, condition: not selection}\n",
        );
        assert_eq!(docs.len(), 3);
        assert!(matches!(docs[0].1, Ok(Document::Rule(_))));
        assert!(matches!(docs[1].1, Ok(Document::Correlation(_))));
        assert_eq!(docs[1].0.index, 1);
        assert!(matches!(docs[2].1, Ok(Document::Filter(_))));
    }

    #[test]
    fn rejects_with_construct_and_reason() {
        let e = parse_one(
            "title: t\nid: x\nlogsource: {}\ndetection: {s: {a|nope: 1}, condition: s}\n",
        )
        .unwrap_err();
        assert_eq!(e.rule_id.as_deref(), Some("x"));
        assert_eq!(e.construct, "detection.s.a|nope");
        assert!(e.reason.contains("unknown modifier 'nope'"));
        let e =
            parse_one("title: t\nlogsource: {}\ndetection: {s: {a: [x, null]}, condition: s}\n")
                .unwrap_err();
        assert!(e.reason.contains("null"));
        let e = parse_one(
            "title: t\nlogsource: {}\ndetection: {s: {a: 1}, condition: s | count() > 5}\n",
        )
        .unwrap_err();
        assert!(e.legacy_aggregation);
        let e = parse_one(
            "title: t\nlogsource: {}\ndetection: {s: {a: 1}, timeframe: 5m, condition: s}\n",
        )
        .unwrap_err();
        assert!(e.legacy_aggregation);
        assert!(parse_one("action: global\ntitle: t\n").is_err());
    }

    #[test]
    fn lists_of_maps_and_keywords() {
        let Document::Rule(r) = parse_one(
            "title: t\nlogsource: {}\ndetection:\n  k: [a, 2]\n  m:\n    - {x: 1}\n    - {y: 2}\n  condition: k\n",
        )
        .unwrap() else {
            panic!()
        };
        assert!(
            matches!(r.detection.search("k"), Some(Search::Item(i)) if i.field.is_none() && i.values.len() == 2)
        );
        assert!(matches!(r.detection.search("m"), Some(Search::Or(v)) if v.len() == 2));
    }
}
