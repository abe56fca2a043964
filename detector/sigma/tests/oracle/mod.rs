//! An independent reading of Sigma detection rules, written from the
//! specification for the tests: the rule's YAML and the pipelines' field
//! mappings are read here directly and evaluated naively, sharing nothing
//! with the engine's parser, compiler, prefilter or evaluators.
//!
//! It covers what the SigmaHQ rules for the collector's logsources use
//! (Linux, web, proxy, firewall, DNS, network devices): maps and lists,
//! keywords, wildcards with escapes, `contains`, `startswith`, `endswith`,
//! `all`, `re`, `cidr`, null, numbers, and the whole condition grammar.
//! Anything else is refused with `Err`, so a rule the oracle cannot read is
//! reported instead of being judged wrongly.
//!
//! Where the specification leaves a choice, the oracle follows the decisions
//! documented in `qalqan_sigma`'s crate docs (keywords search the raw line
//! as substrings, `null` matches a missing field, numbers equal their plain
//! decimal spelling).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use qalqan_core::event::ValueRef;
use qalqan_core::Event;
use serde::Deserialize;
use serde_yaml::Value as Yaml;

/// One rule as the oracle reads it.
pub struct OracleRule {
    pub title: String,
    logsource: [Option<String>; 3],
    searches: BTreeMap<String, Search>,
    condition: Cond,
}

enum Search {
    /// Field-less values: any (or, with `all`, every) must occur in the raw line.
    Keywords { checks: Vec<Check> },
    /// A list of maps: any map matches; in a map every field check holds.
    Maps(Vec<Vec<FieldCheck>>),
}

struct FieldCheck {
    field: String,
    check: Check,
}

/// Values with their modifiers, compiled: any value (every value with
/// `all`) matches.
struct Check {
    values: Vec<Matcher>,
    all: bool,
}

enum Matcher {
    Null,
    /// A number: equal numbers, or text spelling it as a plain decimal.
    Num(f64),
    Bool(bool),
    /// Wildcards, `contains`/`startswith`/`endswith` and `re`, as a regex
    /// over the text (lower-cased unless the regex is the rule's own).
    Text {
        re: regex::Regex,
        lower: bool,
    },
    Cidr(String),
}

enum Cond {
    Search(String),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    /// `1 of` (false) or `all of` (true) over a pattern or `them`.
    Of(bool, String),
}

/// Field-name mappings from pipeline YAML: (logsource condition, mapping).
pub struct Mappings(Vec<([Option<String>; 3], BTreeMap<String, String>)>);

impl Mappings {
    /// Reads the `field_name_mapping` transformations of pipeline files.
    pub fn read(files: &[std::path::PathBuf]) -> Result<Mappings, String> {
        let mut out = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(f).map_err(|e| e.to_string())?;
            let doc: Yaml = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
            let Some(Yaml::Sequence(ts)) = doc.get("transformations") else {
                continue;
            };
            for t in ts {
                if t.get("type").and_then(Yaml::as_str) != Some("field_name_mapping") {
                    continue;
                }
                let mut map = BTreeMap::new();
                for (k, v) in t
                    .get("mapping")
                    .and_then(Yaml::as_mapping)
                    .ok_or("mapping")?
                {
                    let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                        return Err(format!("{}: only one-to-one mappings", f.display()));
                    };
                    map.insert(k.to_owned(), v.to_owned());
                }
                let mut cond = [None, None, None];
                if let Some(Yaml::Sequence(cs)) = t.get("rule_conditions") {
                    for c in cs {
                        if c.get("type").and_then(Yaml::as_str) != Some("logsource") {
                            return Err(format!("{}: only logsource conditions", f.display()));
                        }
                        cond = logsource_of(c);
                    }
                }
                out.push((cond, map));
            }
        }
        Ok(Mappings(out))
    }

    fn map(&self, ls: &[Option<String>; 3], field: &str) -> String {
        for (cond, map) in &self.0 {
            let applies = cond
                .iter()
                .zip(ls)
                .all(|(c, r)| c.is_none() || c.as_deref() == r.as_deref());
            if let Some(to) = map.get(field).filter(|_| applies) {
                return to.clone();
            }
        }
        field.to_owned()
    }
}

fn logsource_of(y: &Yaml) -> [Option<String>; 3] {
    ["product", "service", "category"]
        .map(|k| y.get(k).and_then(Yaml::as_str).map(str::to_ascii_lowercase))
}

impl OracleRule {
    /// Reads document `index` of the file at `path`.
    pub fn read(path: &Path, index: usize, maps: &Mappings) -> Result<OracleRule, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let de = serde_yaml::Deserializer::from_str(&text)
            .nth(index)
            .ok_or("no such document")?;
        let doc = Yaml::deserialize(de).map_err(|e| e.to_string())?;
        let title = doc
            .get("title")
            .and_then(Yaml::as_str)
            .unwrap_or("?")
            .to_owned();
        let logsource = doc.get("logsource").map(logsource_of).unwrap_or_default();
        let det = doc
            .get("detection")
            .and_then(Yaml::as_mapping)
            .ok_or("no detection")?;
        let mut searches = BTreeMap::new();
        let mut condition = None;
        for (k, v) in det {
            let k = k.as_str().ok_or("detection key")?;
            if k == "condition" {
                let text = match v {
                    Yaml::String(s) => s.clone(),
                    Yaml::Sequence(list) if list.len() == 1 => {
                        list[0].as_str().ok_or("condition")?.to_owned()
                    }
                    _ => return Err("condition lists are read as or".into()),
                };
                condition = Some(parse_condition(&text)?);
            } else if k == "timeframe" {
                return Err("timeframe".into());
            } else {
                searches.insert(k.to_owned(), read_search(v, &logsource, maps)?);
            }
        }
        Ok(OracleRule {
            title,
            logsource,
            searches,
            condition: condition.ok_or("no condition")?,
        })
    }

    /// The (mapped) event fields the rule's detection reads.
    pub fn fields(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .searches
            .values()
            .flat_map(|s| match s {
                Search::Keywords { .. } => Vec::new(),
                Search::Maps(maps) => maps.iter().flatten().map(|fc| fc.field.clone()).collect(),
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Does the rule apply to the event's logsource and match it?
    pub fn matches(&self, ev: &Event) -> bool {
        let ls = [
            ev.logsource.product.as_deref(),
            ev.logsource.service.as_deref(),
            ev.logsource.category.as_deref(),
        ];
        let routed = self
            .logsource
            .iter()
            .zip(ls)
            .all(|(r, e)| r.is_none() || r.as_deref() == e);
        routed && self.eval(&self.condition, ev)
    }

    fn eval(&self, c: &Cond, ev: &Event) -> bool {
        match c {
            Cond::Search(name) => match self.searches.get(name) {
                Some(s) => search_matches(s, ev),
                None => panic!("{}: condition names unknown search {name}", self.title),
            },
            Cond::Not(c) => !self.eval(c, ev),
            Cond::And(cs) => cs.iter().all(|c| self.eval(c, ev)),
            Cond::Or(cs) => cs.iter().any(|c| self.eval(c, ev)),
            Cond::Of(all, pattern) => {
                let chosen: Vec<&Search> = self
                    .searches
                    .iter()
                    .filter(|(name, _)| {
                        if pattern == "them" {
                            !name.starts_with('_')
                        } else {
                            glob(pattern, name)
                        }
                    })
                    .map(|(_, s)| s)
                    .collect();
                assert!(
                    !chosen.is_empty(),
                    "{}: {pattern} selects nothing",
                    self.title
                );
                if *all {
                    chosen.iter().all(|s| search_matches(s, ev))
                } else {
                    chosen.iter().any(|s| search_matches(s, ev))
                }
            }
        }
    }
}

fn read_search(v: &Yaml, ls: &[Option<String>; 3], maps: &Mappings) -> Result<Search, String> {
    match v {
        Yaml::Mapping(m) => {
            // a map whose only key starts with `|` is a keyword list with modifiers
            if m.len() == 1 {
                if let Some((k, v)) = m.iter().next() {
                    if let Some(mods) = k.as_str().and_then(|k| k.strip_prefix('|')) {
                        return Ok(Search::Keywords {
                            checks: vec![read_check(mods, v, true)?],
                        });
                    }
                }
            }
            Ok(Search::Maps(vec![read_map(m, ls, maps)?]))
        }
        Yaml::Sequence(items) if items.iter().all(|i| i.is_mapping()) => Ok(Search::Maps(
            items
                .iter()
                .filter_map(Yaml::as_mapping)
                .map(|m| read_map(m, ls, maps))
                .collect::<Result<_, _>>()?,
        )),
        Yaml::Sequence(_) | Yaml::String(_) | Yaml::Number(_) => Ok(Search::Keywords {
            checks: vec![read_check("", v, true)?],
        }),
        _ => Err("search of an unexpected shape".into()),
    }
}

fn read_map(
    m: &serde_yaml::Mapping,
    ls: &[Option<String>; 3],
    maps: &Mappings,
) -> Result<Vec<FieldCheck>, String> {
    m.iter()
        .map(|(k, v)| {
            let k = k.as_str().ok_or("field name")?;
            let (field, mods) = k.split_once('|').unwrap_or((k, ""));
            Ok(FieldCheck {
                field: maps.map(ls, field),
                check: read_check(mods, v, false)?,
            })
        })
        .collect()
}

fn read_check(mods: &str, v: &Yaml, keyword: bool) -> Result<Check, String> {
    let mut op = "equals";
    let mut all = false;
    for m in mods.split('|').filter(|m| !m.is_empty()) {
        match m {
            "contains" | "startswith" | "endswith" | "re" | "cidr" => op = m,
            "all" => all = true,
            other => return Err(format!("modifier {other} is outside the oracle")),
        }
    }
    let one = |v: &Yaml| -> Result<Matcher, String> {
        let text = match v {
            Yaml::Null => return Ok(Matcher::Null),
            Yaml::Bool(b) if op == "equals" => return Ok(Matcher::Bool(*b)),
            Yaml::Number(n) if op == "equals" && !keyword => {
                return Ok(Matcher::Num(n.as_f64().ok_or("number")?))
            }
            Yaml::String(s) => s.clone(),
            Yaml::Number(n) => n.to_string(),
            Yaml::Bool(b) => b.to_string(),
            _ => return Err("value of an unexpected shape".into()),
        };
        Ok(match op {
            "re" => Matcher::Text {
                re: regex::Regex::new(&text).map_err(|e| e.to_string())?,
                lower: false,
            },
            "cidr" => Matcher::Cidr(text),
            _ => {
                // keywords are substrings of the raw line unless anchored
                let (pre, post) = match (op, keyword) {
                    ("contains", _) | ("equals", true) => ("*", "*"),
                    ("startswith", _) => ("", "*"),
                    ("endswith", _) => ("*", ""),
                    _ => ("", ""),
                };
                Matcher::Text {
                    re: wildcard_regex(&format!("{pre}{text}{post}"))?,
                    lower: true,
                }
            }
        })
    };
    let values = match v {
        Yaml::Sequence(list) => list.iter().map(one).collect::<Result<_, _>>()?,
        v => vec![one(v)?],
    };
    Ok(Check { values, all })
}

fn search_matches(s: &Search, ev: &Event) -> bool {
    match s {
        Search::Keywords { checks } => checks
            .iter()
            .all(|c| check_matches(c, Some(ValueRef::Str(&ev.original)))),
        Search::Maps(maps) => maps.iter().any(|m| {
            m.iter()
                .all(|fc| check_matches(&fc.check, ev.get(&fc.field)))
        }),
    }
}

fn check_matches(c: &Check, field: Option<ValueRef<'_>>) -> bool {
    let one = |m: &Matcher| matcher_matches(m, field);
    if c.all {
        c.values.iter().all(one)
    } else {
        c.values.iter().any(one)
    }
}

/// One rule value against a field (any element of a list field).
fn matcher_matches(m: &Matcher, field: Option<ValueRef<'_>>) -> bool {
    if let Matcher::Null = m {
        return matches!(field, None | Some(ValueRef::Null));
    }
    let Some(field) = field else {
        return false;
    };
    if let ValueRef::List(items) = field {
        return items.iter().any(|i| matcher_matches(m, Some(i.as_ref())));
    }
    let text = match field {
        ValueRef::Str(s) => s.to_owned(),
        ValueRef::Int(i) => i.to_string(),
        ValueRef::Float(f) => f.to_string(),
        ValueRef::Bool(b) => b.to_string(),
        ValueRef::Null | ValueRef::List(_) => return false,
    };
    match m {
        Matcher::Null => unreachable!("handled above"),
        Matcher::Num(n) => {
            text.bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
                && text.parse::<f64>().is_ok_and(|t| t == *n)
        }
        Matcher::Bool(b) => text == b.to_string(),
        Matcher::Text { re, lower: false } => re.is_match(&text),
        Matcher::Text { re, lower: true } => {
            let lowered: String = text.chars().flat_map(char::to_lowercase).collect();
            re.is_match(&lowered)
        }
        Matcher::Cidr(net) => in_cidr(net, &text),
    }
}

/// Sigma wildcards over lower-cased text: `*` any run, `?` one character,
/// `\*`, `\?` and `\\` the characters themselves; any other backslash is a
/// backslash.
fn wildcard_regex(pattern: &str) -> Result<regex::Regex, String> {
    let mut re = String::from("(?s)^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&n @ ('*' | '?' | '\\')) => {
                    chars.next();
                    re.push_str(&regex::escape(&n.to_string()));
                }
                _ => re.push_str(r"\\"),
            },
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_lowercase().to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| format!("wildcard {pattern:?}: {e}"))
}

fn in_cidr(net: &str, text: &str) -> bool {
    let Some((addr, bits)) = net.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits), Ok(ip)) = (
        addr.parse::<IpAddr>(),
        bits.parse::<u32>(),
        text.trim().parse::<IpAddr>(),
    ) else {
        return false;
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - bits.min(32)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - bits.min(128)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

fn glob(pattern: &str, name: &str) -> bool {
    let re = format!("^{}$", regex::escape(pattern).replace(r"\*", ".*"));
    regex::Regex::new(&re).is_ok_and(|r| r.is_match(name))
        && (pattern.starts_with('_') || !name.starts_with('_'))
}

/// Condition grammar: `or` binds loosest, then `and`, then `not`;
/// parentheses; `1 of`/`any of`/`all of` a pattern or `them`.
fn parse_condition(text: &str) -> Result<Cond, String> {
    let spaced = text.replace('(', " ( ").replace(')', " ) ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut pos = 0;
    let c = parse_or(&tokens, &mut pos)?;
    if pos != tokens.len() {
        return Err(format!("condition {text:?}: trailing {:?}", &tokens[pos..]));
    }
    Ok(c)
}

fn parse_or(t: &[&str], pos: &mut usize) -> Result<Cond, String> {
    parse_joined(t, pos, "or", parse_and, Cond::Or)
}

fn parse_and(t: &[&str], pos: &mut usize) -> Result<Cond, String> {
    parse_joined(t, pos, "and", parse_not, Cond::And)
}

/// Terms of the next tighter level joined by `word`; one term stands alone.
fn parse_joined(
    t: &[&str],
    pos: &mut usize,
    word: &str,
    term: fn(&[&str], &mut usize) -> Result<Cond, String>,
    join: fn(Vec<Cond>) -> Cond,
) -> Result<Cond, String> {
    let mut terms = vec![term(t, pos)?];
    while t.get(*pos) == Some(&word) {
        *pos += 1;
        terms.push(term(t, pos)?);
    }
    Ok(if terms.len() == 1 {
        terms.remove(0)
    } else {
        join(terms)
    })
}

fn parse_not(t: &[&str], pos: &mut usize) -> Result<Cond, String> {
    match t.get(*pos).copied() {
        Some("not") => {
            *pos += 1;
            Ok(Cond::Not(Box::new(parse_not(t, pos)?)))
        }
        Some("(") => {
            *pos += 1;
            let c = parse_or(t, pos)?;
            if t.get(*pos) != Some(&")") {
                return Err("unclosed parenthesis".into());
            }
            *pos += 1;
            Ok(c)
        }
        Some(q @ ("1" | "any" | "all")) if t.get(*pos + 1) == Some(&"of") => {
            let target = t.get(*pos + 2).ok_or("x of what?")?;
            *pos += 3;
            Ok(Cond::Of(q == "all", (*target).to_owned()))
        }
        Some(name) if !matches!(name, "and" | "or" | ")") => {
            *pos += 1;
            Ok(Cond::Search(name.to_owned()))
        }
        other => Err(format!("unexpected {other:?}")),
    }
}
