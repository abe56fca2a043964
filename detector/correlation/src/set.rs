//! The loaded rule set: correlation rules with their references resolved,
//! arranged in chains ("trees"), and the stage-1 side that turns a matched
//! event into signals.
//!
//! A correlation that no other correlation references is the root of a
//! tree; the correlations it references (and theirs) are its inner nodes. A
//! correlation referenced by two roots appears in both trees with separate
//! state, because each tree is evaluated in the partition of its own root's
//! group key.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_yaml::Value as Yaml;

use qalqan_core::event::{Value, ValueRef};
use qalqan_core::Event;

use crate::rule::{CorrelationRule, CorrelationType, RuleError, RuleSource};
use crate::signal::{Signal, SignalEntities};
use crate::suppress::SuppressSetting;
use crate::window::{FastMap, HOPS};

/// How deep correlations may reference correlations.
pub const MAX_CHAIN_DEPTH: usize = 8;

/// One correlation document as the Sigma loader hands it over.
#[derive(Debug, Clone, Copy)]
pub struct CorrelationDoc<'a> {
    pub path: &'a Path,
    /// Zero-based index of the document in its file.
    pub index: usize,
    pub doc: &'a Yaml,
}

/// A detection rule that correlations may reference, by id or name.
#[derive(Debug, Clone, Copy)]
pub struct BaseRule<'a> {
    pub id: &'a str,
    pub name: Option<&'a str>,
}

/// Maps a Sigma field name, as a correlation writes it for events of a
/// detection rule, to the event's field name (the processing pipelines'
/// field mapping). The default is the identity. An error rejects the
/// correlation (e.g. a field the pipelines map to several event fields:
/// a group-by needs exactly one).
pub trait FieldMapping: Send + Sync {
    fn event_field(&self, base_rule_id: &str, sigma_field: &str) -> Result<String, String>;
}

impl<F: Fn(&str, &str) -> String + Send + Sync> FieldMapping for F {
    fn event_field(&self, base_rule_id: &str, sigma_field: &str) -> Result<String, String> {
        Ok(self(base_rule_id, sigma_field))
    }
}

/// Options for [`CorrelationSet::load`].
#[derive(Clone)]
pub struct LoadOptions {
    /// Raw lines longer than this are shortened in signals (and so in
    /// evidence); the full line stays in the events store.
    pub max_original_bytes: usize,
    pub field_mapping: Option<Arc<dyn FieldMapping>>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_original_bytes: 2048,
            field_mapping: None,
        }
    }
}

/// The result of loading: the rules that can be honoured, and the rejected
/// ones with their reasons. A strict caller fails when `errors` is not empty.
pub struct LoadReport {
    pub set: CorrelationSet,
    pub errors: Vec<RuleError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    Base(usize),
    Corr(usize),
}

/// How an inner node's firing becomes a signal for its parent.
#[derive(Debug, Clone)]
pub(crate) struct ParentLink {
    pub node: usize,
    /// Position of the child in the parent's `rules`.
    pub ref_pos: usize,
    /// For each parent group-by name, the index of the child group value.
    pub group_from_child: Vec<usize>,
    /// For the parent's value field(s), the indices of child group values.
    pub value_from_child: Vec<usize>,
}

/// One correlation in one tree.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub rule: usize,
    /// Node index of the tree's root.
    pub root: usize,
    pub parent: Option<ParentLink>,
    /// Whether firings of this node become alerts.
    pub alerts: bool,
    /// Hop length in µs (timespan / HOPS).
    pub hop_us: i64,
    /// Fires as soon as the condition holds (lower bounds on a growing
    /// measure), rather than when the window ends.
    pub early: bool,
    /// For each root group-by name, the index of this node's group value.
    pub root_from_node: Vec<usize>,
    /// Stable across reloads while the node's definition and place in its
    /// tree are unchanged; state survives a reload under the same print.
    pub fingerprint: u64,
    /// Resolved id of each referenced rule, by position in `rules`.
    pub ref_ids: Vec<String>,
}

/// A referenced detection rule feeding a node.
#[derive(Debug, Clone)]
struct Feed {
    node: usize,
    /// Event field for each group-by name.
    group_fields: Vec<String>,
    /// Event field(s) of the aggregated value.
    value_fields: Vec<String>,
}

/// The loaded correlation rules.
pub struct CorrelationSet {
    rules: Vec<CorrelationRule>,
    nodes: Vec<Node>,
    feeds: HashMap<String, Vec<Feed>>,
    /// correlation id → nodes (one per tree it appears in).
    by_id: FastMap<String, Vec<usize>>,
    /// Rule ids (detection or correlation) referenced by some correlation,
    /// with whether any referencing correlation sets `generate: true`.
    referenced: HashMap<String, bool>,
    max_original_bytes: usize,
    missing_group: Vec<AtomicU64>,
}

impl std::fmt::Debug for CorrelationSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorrelationSet")
            .field("rules", &self.rules.len())
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

/// Stage-1 counters of one correlation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalCounters {
    pub correlation: String,
    /// Matches dropped because the event lacks a group-by field.
    pub missing_group_field: u64,
}

/// The event-side input of [`CorrelationSet::signals`].
#[derive(Debug, Clone, Copy)]
pub struct MatchedEvent<'a> {
    pub event: &'a Event,
    /// From the topic name, never from the event body.
    pub agency: &'a str,
    /// A stable id of the event (see `qalqan_core::alert::event_id`).
    pub event_id: &'a str,
    /// Position in its source (Kafka offset, collector sequence).
    pub ordinal: u64,
}

impl CorrelationSet {
    /// An empty set.
    pub fn empty() -> Self {
        CorrelationSet {
            rules: Vec::new(),
            nodes: Vec::new(),
            feeds: HashMap::new(),
            by_id: FastMap::default(),
            referenced: HashMap::new(),
            max_original_bytes: LoadOptions::default().max_original_bytes,
            missing_group: Vec::new(),
        }
    }

    /// Parses, resolves and validates correlation documents against the
    /// detection rules they may reference.
    pub fn load(
        docs: &[CorrelationDoc<'_>],
        base: &[BaseRule<'_>],
        options: &LoadOptions,
    ) -> LoadReport {
        Loader::new(base, options).load(docs)
    }

    /// The accepted rules.
    pub fn rules(&self) -> &[CorrelationRule] {
        &self.rules
    }

    pub fn rule(&self, id: &str) -> Option<&CorrelationRule> {
        self.by_id
            .get(id)
            .and_then(|nodes| nodes.first())
            .map(|&n| &self.rules[self.nodes[n].rule])
    }

    pub(crate) fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub(crate) fn node_rule(&self, node: usize) -> &CorrelationRule {
        &self.rules[self.nodes[node].rule]
    }

    /// The node a signal addresses, or `None` if this rule set has no such
    /// correlation (e.g. it was removed by a reload).
    pub(crate) fn node_of(&self, correlation: &str, root: Option<&str>) -> Option<usize> {
        let nodes = self.by_id.get(correlation)?;
        nodes.iter().copied().find(|&n| {
            let r = self.nodes[n].root;
            match root {
                None => r == n,
                Some(root) => r != n && self.rules[self.nodes[r].rule].id == root,
            }
        })
    }

    /// Whether a rule (detection or correlation) is referenced by a
    /// correlation: stage 1 needs to produce signals for it.
    pub fn is_referenced(&self, rule_id: &str) -> bool {
        self.referenced.contains_key(rule_id)
    }

    /// Whether a detection rule (or an inner correlation) alerts on its own:
    /// yes unless every correlation referencing it leaves `generate` off
    /// (the Sigma default: only the correlation alerts).
    pub fn emits_own_alerts(&self, rule_id: &str) -> bool {
        self.referenced.get(rule_id).copied().unwrap_or(true)
    }

    /// The longest timespan of any rule (for sizing replays).
    pub fn longest_timespan(&self) -> std::time::Duration {
        self.rules
            .iter()
            .map(|r| r.timespan)
            .max()
            .unwrap_or_default()
    }

    /// Stage-1 counters per correlation (summed over trees).
    pub fn signal_counters(&self) -> Vec<SignalCounters> {
        let mut by_rule: BTreeMap<&str, u64> = BTreeMap::new();
        for (n, node) in self.nodes.iter().enumerate() {
            *by_rule.entry(&self.rules[node.rule].id).or_default() +=
                self.missing_group[n].load(Ordering::Relaxed);
        }
        by_rule
            .into_iter()
            .map(|(id, missing)| SignalCounters {
                correlation: id.to_owned(),
                missing_group_field: missing,
            })
            .collect()
    }

    /// Stage 1: the signals an event produces, given the ids of the
    /// detection rules it matched. One signal per correlation node and group
    /// key; an event that matched several referenced rules of one
    /// correlation yields one signal listing them all. Matches whose event
    /// lacks a group-by field produce no signal and are counted
    /// ([`CorrelationSet::signal_counters`]). Returns how many were added.
    pub fn signals(&self, ev: MatchedEvent<'_>, matched: &[&str], out: &mut Vec<Signal>) -> usize {
        let start = out.len();
        let mut shared: Option<(SignalEntities, String)> = None;
        // (node, index in `out`) of the signals made for this event.
        let mut made: Vec<(usize, usize)> = Vec::new();
        for rule_id in matched {
            let Some(feeds) = self.feeds.get(*rule_id) else {
                continue;
            };
            for feed in feeds {
                let node = &self.nodes[feed.node];
                let Some(group) = feed
                    .group_fields
                    .iter()
                    .map(|f| ev.event.get(f).and_then(value_text))
                    .collect::<Option<Vec<String>>>()
                else {
                    self.missing_group[feed.node].fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if let Some(&(_, at)) = made
                    .iter()
                    .find(|&&(n, at)| n == feed.node && out[at].group == group)
                {
                    let existing = &mut out[at];
                    if !existing.rules.iter().any(|r| r == rule_id) {
                        existing.rules.push((*rule_id).to_owned());
                    }
                    continue;
                }
                made.push((feed.node, out.len()));
                let rule = &self.rules[node.rule];
                let (value, number) = extract_value(ev.event, rule.kind, &feed.value_fields);
                let (entities, original) = shared
                    .get_or_insert_with(|| {
                        (
                            SignalEntities::of(ev.event),
                            shorten(&ev.event.original, self.max_original_bytes),
                        )
                    })
                    .clone();
                let (root, root_group) = if node.root == feed.node {
                    (None, Vec::new())
                } else {
                    (
                        Some(self.rules[self.nodes[node.root].rule].id.clone()),
                        node.root_from_node
                            .iter()
                            .map(|&i| group[i].clone())
                            .collect(),
                    )
                };
                out.push(Signal {
                    correlation: rule.id.clone(),
                    root,
                    rules: vec![(*rule_id).to_owned()],
                    agency: ev.agency.to_owned(),
                    group,
                    root_group,
                    timestamp: ev.event.timestamp,
                    ordinal: ev.ordinal,
                    event_id: ev.event_id.to_owned(),
                    value,
                    number,
                    entities,
                    original,
                });
            }
        }
        out.len() - start
    }
}

/// The text of a field value for grouping and distinct counting; `None` for
/// null, so a null group-by field counts as missing.
pub(crate) fn value_text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Str(s) => Some(s.to_owned()),
        ValueRef::Int(i) => Some(i.to_string()),
        ValueRef::Float(f) => Some(f.to_string()),
        ValueRef::Bool(b) => Some(b.to_string()),
        ValueRef::List(l) => Some(Value::List(l.to_vec()).to_string()),
    }
}

fn value_number(v: ValueRef<'_>) -> Option<f64> {
    match v {
        ValueRef::Int(i) => Some(i as f64),
        ValueRef::Float(f) if f.is_finite() => Some(f),
        ValueRef::Str(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn extract_value(
    event: &Event,
    kind: CorrelationType,
    fields: &[String],
) -> (Option<String>, Option<f64>) {
    match kind {
        CorrelationType::ValueCount => {
            let parts: Option<Vec<String>> = fields
                .iter()
                .map(|f| event.get(f).and_then(value_text))
                .collect();
            (parts.map(|p| p.join("\u{1f}")), None)
        }
        k if k.numeric() => (
            None,
            fields
                .first()
                .and_then(|f| event.get(f))
                .and_then(value_number),
        ),
        _ => (None, None),
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut s = String::with_capacity(cut + 3);
    s.push_str(&text[..cut]);
    s.push('…');
    s
}

/// Resolution and validation, in one place so the rules are easy to read.
struct Loader<'a> {
    base: &'a [BaseRule<'a>],
    options: &'a LoadOptions,
    errors: Vec<RuleError>,
}

impl<'a> Loader<'a> {
    fn new(base: &'a [BaseRule<'a>], options: &'a LoadOptions) -> Self {
        Loader {
            base,
            options,
            errors: Vec::new(),
        }
    }

    fn reject(&mut self, rule: &CorrelationRule, reason: String) {
        self.errors.push(RuleError {
            file: rule.source.clone(),
            rule: rule.id.clone(),
            reason,
        });
    }

    fn load(mut self, docs: &[CorrelationDoc<'_>]) -> LoadReport {
        // 1. Parse.
        let mut rules: Vec<CorrelationRule> = Vec::new();
        let mut rejected_ids: HashMap<String, RuleSource> = HashMap::new();
        for d in docs {
            match CorrelationRule::parse(d.path, d.index, d.doc) {
                Ok(r) => rules.push(r),
                Err(e) => {
                    if let Some(id) = d
                        .doc
                        .as_mapping()
                        .and_then(|m| m.get("id"))
                        .and_then(Yaml::as_str)
                    {
                        rejected_ids.insert(id.to_owned(), e.file.clone());
                    }
                    self.errors.push(e);
                }
            }
        }
        let mut valid = vec![true; rules.len()];

        // 2. Ids must be unique across detection and correlation rules.
        let mut ids: HashMap<String, Target> = HashMap::new();
        for (i, b) in self.base.iter().enumerate() {
            ids.entry(b.id.to_owned()).or_insert(Target::Base(i));
        }
        for i in 0..rules.len() {
            let id = rules[i].id.clone();
            match ids.get(&id) {
                Some(Target::Base(_)) => {
                    let r = rules[i].clone();
                    self.reject(&r, format!("id `{id}` is also the id of a detection rule"));
                    valid[i] = false;
                }
                Some(Target::Corr(j)) => {
                    let other = rules[*j].source.to_string();
                    let r = rules[i].clone();
                    self.reject(
                        &r,
                        format!("id `{id}` is already used by the correlation in {other}"),
                    );
                    valid[i] = false;
                }
                None => {
                    ids.insert(id, Target::Corr(i));
                }
            }
        }
        let mut names: HashMap<String, Vec<Target>> = HashMap::new();
        for (i, b) in self.base.iter().enumerate() {
            if let Some(n) = b.name {
                names.entry(n.to_owned()).or_default().push(Target::Base(i));
            }
        }
        for (i, r) in rules.iter().enumerate() {
            if let (Some(n), true) = (&r.name, valid[i]) {
                names.entry(n.clone()).or_default().push(Target::Corr(i));
            }
        }

        // 3. Resolve references.
        let mut targets: Vec<Vec<Target>> = vec![Vec::new(); rules.len()];
        for i in 0..rules.len() {
            if !valid[i] {
                continue;
            }
            let mut resolved = Vec::with_capacity(rules[i].rules.len());
            let mut problem = None;
            for reference in &rules[i].rules {
                let t = match (ids.get(reference), names.get(reference).map(Vec::as_slice)) {
                    (Some(t), _) => Ok(*t),
                    (None, Some([t])) => Ok(*t),
                    (None, Some(many)) if many.len() > 1 => Err(format!(
                        "reference `{reference}` is ambiguous: {} rules have that name",
                        many.len()
                    )),
                    _ => Err(match rejected_ids.get(reference) {
                        Some(src) => format!(
                            "references correlation `{reference}` ({src}), which was rejected"
                        ),
                        None => format!(
                            "references `{reference}`, which is no loaded rule's id or name"
                        ),
                    }),
                };
                match t {
                    Ok(Target::Corr(j)) if j == i => {
                        problem = Some(format!("references itself (`{reference}`)"));
                        break;
                    }
                    Ok(t) => {
                        if resolved.contains(&t) {
                            problem =
                                Some(format!("references the same rule twice (`{reference}`)"));
                            break;
                        }
                        resolved.push(t)
                    }
                    Err(e) => {
                        problem = Some(e);
                        break;
                    }
                }
            }
            match problem {
                Some(p) => {
                    let r = rules[i].clone();
                    self.reject(&r, p);
                    valid[i] = false;
                }
                None => targets[i] = resolved,
            }
        }

        // 4. Cycles and depth, then validity propagated up from children:
        // visit in dependency order (children first).
        let order = self.dependency_order(&rules, &targets, &mut valid);
        for &i in &order {
            if !valid[i] {
                continue;
            }
            let reason = self.check_links(&rules, &targets, &valid, i);
            if let Some(reason) = reason {
                let r = rules[i].clone();
                self.reject(&r, reason);
                valid[i] = false;
            }
        }

        // 5. Trees.
        let mut referenced_by: Vec<Vec<usize>> = vec![Vec::new(); rules.len()];
        let mut referenced: HashMap<String, bool> = HashMap::new();
        for i in 0..rules.len() {
            if !valid[i] {
                continue;
            }
            for t in &targets[i] {
                let id = match *t {
                    Target::Base(b) => self.base[b].id.to_owned(),
                    Target::Corr(c) => {
                        referenced_by[c].push(i);
                        rules[c].id.clone()
                    }
                };
                let g = referenced.entry(id).or_insert(false);
                *g |= rules[i].generate;
            }
        }
        let mut set = CorrelationSet::empty();
        set.max_original_bytes = self.options.max_original_bytes.max(16);
        let mut index_of = vec![usize::MAX; rules.len()];
        let mut kept = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if valid[i] {
                index_of[i] = kept.len();
                kept.push(r.clone());
            }
        }
        let mut primary_done: HashSet<usize> = HashSet::new();
        for i in 0..rules.len() {
            if valid[i] && referenced_by[i].is_empty() {
                self.build_tree(
                    &rules,
                    &targets,
                    &index_of,
                    &referenced,
                    i,
                    None,
                    usize::MAX,
                    &mut set,
                    &mut primary_done,
                );
            }
        }
        set.rules = kept;
        set.referenced = referenced;
        set.missing_group = (0..set.nodes.len()).map(|_| AtomicU64::new(0)).collect();
        LoadReport {
            set,
            errors: self.errors,
        }
    }

    /// Topological order (children before parents); rejects members of
    /// reference cycles and chains deeper than [`MAX_CHAIN_DEPTH`].
    fn dependency_order(
        &mut self,
        rules: &[CorrelationRule],
        targets: &[Vec<Target>],
        valid: &mut [bool],
    ) -> Vec<usize> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut mark = vec![Mark::New; rules.len()];
        let mut depth = vec![1usize; rules.len()];
        let mut order = Vec::with_capacity(rules.len());
        let mut in_cycle = vec![false; rules.len()];
        fn visit(
            i: usize,
            targets: &[Vec<Target>],
            mark: &mut [Mark],
            depth: &mut [usize],
            order: &mut Vec<usize>,
            stack: &mut Vec<usize>,
            in_cycle: &mut [bool],
        ) {
            mark[i] = Mark::Active;
            stack.push(i);
            for t in &targets[i] {
                if let Target::Corr(c) = *t {
                    match mark[c] {
                        Mark::New => {
                            visit(c, targets, mark, depth, order, stack, in_cycle);
                        }
                        Mark::Active => {
                            if let Some(pos) = stack.iter().position(|&s| s == c) {
                                for &s in &stack[pos..] {
                                    in_cycle[s] = true;
                                }
                            }
                        }
                        Mark::Done => {}
                    }
                    depth[i] = depth[i].max(depth[c].saturating_add(1));
                }
            }
            stack.pop();
            mark[i] = Mark::Done;
            order.push(i);
        }
        let mut stack = Vec::new();
        for i in 0..rules.len() {
            if valid[i] && mark[i] == Mark::New {
                visit(
                    i,
                    targets,
                    &mut mark,
                    &mut depth,
                    &mut order,
                    &mut stack,
                    &mut in_cycle,
                );
            }
        }
        for i in 0..rules.len() {
            if valid[i] && in_cycle[i] {
                self.reject(
                    &rules[i],
                    "is part of a reference cycle between correlations".into(),
                );
                valid[i] = false;
            } else if valid[i] && depth[i] > MAX_CHAIN_DEPTH {
                self.reject(
                    &rules[i],
                    format!("correlation chain is deeper than {MAX_CHAIN_DEPTH} levels"),
                );
                valid[i] = false;
            }
        }
        order
    }

    /// Checks that every group-by name and value field can be resolved for
    /// every referenced rule; for a referenced correlation, the name must
    /// be one of its group-by names (its firing only carries those).
    fn check_links(
        &self,
        rules: &[CorrelationRule],
        targets: &[Vec<Target>],
        valid: &[bool],
        i: usize,
    ) -> Option<String> {
        let r = &rules[i];
        for (reference, t) in r.rules.iter().zip(&targets[i]) {
            if let (Target::Base(b), Some(m)) = (*t, &self.options.field_mapping) {
                let base_id = self.base[b].id;
                for name in r.group_by.iter().chain(&r.fields) {
                    let field = r.field_for(name, reference).unwrap_or(name);
                    if let Err(e) = m.event_field(base_id, field) {
                        return Some(format!("field `{field}` for rule `{reference}`: {e}"));
                    }
                }
            }
            let Target::Corr(c) = *t else { continue };
            if !valid[c] {
                return Some(format!(
                    "references correlation `{reference}`, which was rejected"
                ));
            }
            let child = &rules[c];
            for name in r.group_by.iter().chain(&r.fields) {
                let field = r.field_for(name, reference).unwrap_or(name);
                if !child.group_by.iter().any(|g| g == field) {
                    return Some(format!(
                        "uses `{field}` of correlation `{reference}`, which does not group by \
                         it; a correlation's firing carries only its group-by values ({})",
                        if child.group_by.is_empty() {
                            "none".to_owned()
                        } else {
                            child.group_by.join(", ")
                        }
                    ));
                }
            }
            if r.kind.numeric() {
                return Some(format!(
                    "{} over correlation `{reference}` has no numeric field to aggregate",
                    r.kind.name()
                ));
            }
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn build_tree(
        &self,
        rules: &[CorrelationRule],
        targets: &[Vec<Target>],
        index_of: &[usize],
        referenced: &HashMap<String, bool>,
        i: usize,
        parent: Option<ParentLink>,
        root: usize,
        set: &mut CorrelationSet,
        primary_done: &mut HashSet<usize>,
    ) -> usize {
        let r = &rules[i];
        let me = set.nodes.len();
        let root = if root == usize::MAX { me } else { root };
        let hop_us = i64::try_from(r.timespan.as_micros()).unwrap_or(i64::MAX) / HOPS as i64;
        let root_from_node = match &parent {
            None => (0..r.group_by.len()).collect(),
            Some(link) => set.nodes[link.node]
                .root_from_node
                .iter()
                .map(|&pi| link.group_from_child[pi])
                .collect(),
        };
        let is_root = parent.is_none();
        let alerts =
            is_root || (referenced.get(&r.id).copied().unwrap_or(false) && primary_done.insert(i));
        let mut fp = xxhash_rust::xxh3::Xxh3::new();
        fp.update(
            format!(
                "{:?}",
                (r.kind, &r.id, &r.rules, &r.aliases, &r.group_by, r.timespan)
            )
            .as_bytes(),
        );
        fp.update(format!("{:?}", (&r.condition, &r.fields, r.percentile, alerts)).as_bytes());
        if let Some(link) = &parent {
            fp.update(&set.nodes[link.node].fingerprint.to_le_bytes());
            fp.update(&(link.ref_pos as u64).to_le_bytes());
        }
        set.nodes.push(Node {
            rule: index_of[i],
            root,
            parent: parent.clone(),
            alerts,
            hop_us: hop_us.max(1),
            early: r.kind.measure_grows() && r.condition.lower_bounds_only(),
            root_from_node,
            fingerprint: fp.digest(),
            ref_ids: Vec::with_capacity(r.rules.len()),
        });
        set.by_id.entry(r.id.clone()).or_default().push(me);
        for (pos, (reference, t)) in r.rules.iter().zip(&targets[i]).enumerate() {
            match *t {
                Target::Base(b) => {
                    let base_id = self.base[b].id;
                    let map = |name: &String| {
                        let field = r.field_for(name, reference).unwrap_or(name);
                        match &self.options.field_mapping {
                            // Checked in `check_links`; an error cannot
                            // reach here, keep the name as written if it did.
                            Some(m) => m
                                .event_field(base_id, field)
                                .unwrap_or_else(|_| field.to_owned()),
                            None => field.to_owned(),
                        }
                    };
                    set.nodes[me].ref_ids.push(base_id.to_owned());
                    set.feeds.entry(base_id.to_owned()).or_default().push(Feed {
                        node: me,
                        group_fields: r.group_by.iter().map(map).collect(),
                        value_fields: r.fields.iter().map(map).collect(),
                    });
                }
                Target::Corr(c) => {
                    let child = &rules[c];
                    set.nodes[me].ref_ids.push(child.id.clone());
                    let index_in_child = |name: &String| {
                        let field = r.field_for(name, reference).unwrap_or(name);
                        child.group_by.iter().position(|g| g == field).unwrap_or(0)
                    };
                    let link = ParentLink {
                        node: me,
                        ref_pos: pos,
                        group_from_child: r.group_by.iter().map(index_in_child).collect(),
                        value_from_child: r.fields.iter().map(index_in_child).collect(),
                    };
                    self.build_tree(
                        rules,
                        targets,
                        index_of,
                        referenced,
                        c,
                        Some(link),
                        root,
                        set,
                        primary_done,
                    );
                }
            }
        }
        me
    }
}

impl CorrelationRule {
    /// The effective suppression setting given the engine's global one.
    pub fn effective_suppress(
        &self,
        global: Option<crate::SuppressPolicy>,
    ) -> Option<crate::SuppressPolicy> {
        match self.suppress {
            Some(SuppressSetting::Off) => None,
            Some(SuppressSetting::On(p)) => Some(p),
            None => global,
        }
    }
}
