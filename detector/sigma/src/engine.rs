//! The engine: loading (parse → filters → pipelines → compile), logsource
//! routing and evaluation.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use qalqan_core::alert::RuleInfo;
use qalqan_core::{Event, LogSource};
use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

use crate::compile::{
    AtomId, AtomTable, CompiledRule, Compiler, FieldId, FieldTable, FIELD_ORIGINAL,
};
use crate::eval::{
    field_val, lower_field, number_keys, resolve_fields, single_str, Ctx, Entry, EventState,
};
use crate::filter;
use crate::memo::{ItemMemo, Lookup, ScanMemo};
use crate::pipeline::{self, Pipeline};
use crate::route::{ClauseMarks, FieldScan, Route, RuleIdx};
use crate::rule::{
    parse_file, Document, LogsourceSpec, RawCorrelation, RuleMeta, SigmaFilter, SigmaRule,
    SourceRef,
};

/// Rules an event matched, ascending by rule index.
pub type Matches = SmallVec<[RuleIdx; 4]>;

/// Why a document did not load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectKind {
    /// The file could not be read.
    Io,
    /// Not valid YAML.
    Yaml,
    /// Valid YAML, invalid Sigma (or a construct outside Sigma 2.1).
    Parse,
    /// A Sigma 1.0 aggregation (`| count()`, `timeframe`, `near`): use correlation rules.
    LegacyAggregation,
    /// A processing pipeline refused or failed on the rule.
    Pipeline,
    /// The rule is valid Sigma but this engine cannot honour it exactly.
    Compile,
    /// Another rule already uses this id or name.
    Duplicate,
}

/// (product, service, category) of a logsource, as routing keys.
type LogsourceKey = (Option<String>, Option<String>, Option<String>);

/// One rejected document: where, which rule, which construct and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub path: PathBuf,
    /// Index of the YAML document in the file.
    pub document: usize,
    pub rule_id: Option<String>,
    pub title: Option<String>,
    pub kind: RejectKind,
    pub construct: String,
    pub reason: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.document > 0 {
            write!(f, " (document {})", self.document + 1)?;
        }
        match (&self.rule_id, &self.title) {
            (Some(id), Some(t)) => write!(f, " rule {id} \"{t}\"")?,
            (Some(id), None) => write!(f, " rule {id}")?,
            (None, Some(t)) => write!(f, " rule \"{t}\"")?,
            (None, None) => {}
        }
        write!(f, ": {}: {}", self.construct, self.reason)
    }
}

/// What loading produced besides the engine.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub files: usize,
    /// Detection rules compiled and active.
    pub loaded: usize,
    pub filters: usize,
    pub correlations: usize,
    /// Documents skipped on purpose (processing pipelines found among rules).
    pub skipped: usize,
    pub rejected: Vec<LoadError>,
    /// Non-fatal notes (a filter that names no loaded rule, ...).
    pub warnings: Vec<String>,
}

impl LoadReport {
    /// Rejection counts by kind.
    pub fn counts(&self) -> BTreeMap<RejectKind, usize> {
        let mut m = BTreeMap::new();
        for e in &self.rejected {
            *m.entry(e.kind).or_insert(0) += 1;
        }
        m
    }
}

/// A loaded, compiled detection rule.
#[derive(Debug, Clone)]
pub struct RuleEntry {
    pub meta: RuleMeta,
    /// Logsource after pipelines (what routes the rule).
    pub logsource: LogsourceSpec,
    /// Logsource as written in the rule.
    pub original_logsource: LogsourceSpec,
    pub source: SourceRef,
    /// Titles of the filters applied to the rule.
    pub filters: Vec<String>,
    /// Ids of the pipeline transformations that applied.
    pub pipeline_items: Vec<String>,
    pub compiled: CompiledRule,
}

impl RuleEntry {
    /// The alert's rule block (`kind: detection`).
    pub fn rule_info(&self) -> RuleInfo {
        RuleInfo {
            id: self
                .meta
                .id
                .clone()
                .unwrap_or_else(|| self.meta.title.clone()),
            title: self.meta.title.clone(),
            author: self.meta.author.clone().unwrap_or_default(),
            level: self
                .meta
                .level
                .clone()
                .unwrap_or_else(|| DEFAULT_LEVEL.into()),
            tags: self.meta.tags.clone(),
            kind: "detection".into(),
            description: self.meta.description.clone().unwrap_or_default(),
            references: self.meta.references.clone(),
            falsepositives: self.meta.falsepositives.clone(),
        }
    }
}

/// The level an alert of a rule that states none is raised at, and
/// counted under in the metrics.
pub const DEFAULT_LEVEL: &str = "medium";

/// Builds an [`Engine`].
#[derive(Debug, Clone, Default)]
pub struct EngineBuilder {
    pipelines: Vec<Pipeline>,
    placeholders: BTreeMap<String, Vec<String>>,
}

/// A source of rule text for [`EngineBuilder::load_sources`].
#[derive(Debug, Clone)]
pub struct RuleText {
    pub path: PathBuf,
    pub text: String,
}

impl EngineBuilder {
    pub fn new() -> Self {
        EngineBuilder::default()
    }

    /// Adds a processing pipeline (they run in ascending priority).
    pub fn pipeline(mut self, p: Pipeline) -> Self {
        self.pipelines.push(p);
        self
    }

    /// Adds processing pipelines from files.
    pub fn pipeline_paths<P: AsRef<Path>>(
        mut self,
        paths: &[P],
    ) -> Result<Self, pipeline::PipelineError> {
        for p in paths {
            self.pipelines.push(Pipeline::from_path(p.as_ref())?);
        }
        Ok(self)
    }

    /// Values for a placeholder (`%name%` under `|expand`), applied after the
    /// pipelines' own `vars`.
    pub fn placeholder(mut self, name: &str, values: Vec<String>) -> Self {
        self.placeholders.insert(name.to_owned(), values);
        self
    }

    /// Loads every `.yml`/`.yaml` file under `paths` (directories
    /// recursively, in sorted order). Files named `*.tests.yml` are rule
    /// tests, not rules, and are skipped.
    pub fn load_paths<P: AsRef<Path>>(self, paths: &[P]) -> (Engine, LoadReport) {
        let mut files = Vec::new();
        let mut io_errors = Vec::new();
        for p in paths {
            collect_files(p.as_ref(), &mut files, &mut io_errors);
        }
        let mut texts = Vec::new();
        for f in files {
            match std::fs::read(&f) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => texts.push(RuleText { path: f, text }),
                    Err(_) => io_errors.push(io_error(
                        &f,
                        "not valid UTF-8 (Sigma rules are UTF-8)".into(),
                    )),
                },
                Err(e) => io_errors.push(io_error(&f, format!("cannot read: {e}"))),
            }
        }
        let (engine, mut report) = self.load_sources(texts);
        report.rejected.extend(io_errors);
        (engine, report)
    }

    /// Loads rules from text (tests, embedded rules).
    pub fn load_str(self, name: &str, text: &str) -> (Engine, LoadReport) {
        self.load_sources(vec![RuleText {
            path: PathBuf::from(name),
            text: text.to_owned(),
        }])
    }

    /// Parses, filters, runs pipelines and compiles.
    pub fn load_sources(mut self, sources: Vec<RuleText>) -> (Engine, LoadReport) {
        let mut report = LoadReport {
            files: sources.len(),
            ..LoadReport::default()
        };
        let mut rules: Vec<SigmaRule> = Vec::new();
        let mut filters: Vec<SigmaFilter> = Vec::new();
        let mut correlations = Vec::new();
        for src in &sources {
            for (at, doc) in parse_file(&src.path, &src.text) {
                match doc {
                    Ok(Document::Rule(r)) => rules.push(*r),
                    Ok(Document::Filter(f)) => filters.push(*f),
                    Ok(Document::Correlation(c)) => correlations.push(*c),
                    Err(e) if e.construct == "document" && is_pipeline_doc(&src.text, at.index) => {
                        report.skipped += 1;
                    }
                    Err(e) => report.rejected.push(LoadError {
                        path: at.path.to_path_buf(),
                        document: at.index,
                        rule_id: e.rule_id,
                        title: e.title,
                        kind: if e.legacy_aggregation {
                            RejectKind::LegacyAggregation
                        } else if e.construct == "yaml" {
                            RejectKind::Yaml
                        } else {
                            RejectKind::Parse
                        },
                        construct: e.construct,
                        reason: e.reason,
                    }),
                }
            }
        }
        report.filters = filters.len();
        report.correlations = correlations.len();

        // Unique ids and names (correlations reference rules by either).
        let mut seen: HashMap<String, SourceRef> = HashMap::new();
        let mut unique = Vec::with_capacity(rules.len());
        for r in rules {
            let mut dup = None;
            for key in [r.meta.id.clone(), r.meta.name.clone()]
                .into_iter()
                .flatten()
            {
                if let Some(first) = seen.get(&key) {
                    dup = Some((key, first.clone()));
                    break;
                }
            }
            if let Some((key, first)) = dup {
                report.rejected.push(LoadError {
                    path: r.source.path.to_path_buf(),
                    document: r.source.index,
                    rule_id: r.meta.id.clone(),
                    title: Some(r.meta.title.clone()),
                    kind: RejectKind::Duplicate,
                    construct: "id".into(),
                    reason: format!("id or name '{key}' is already used by {first}"),
                });
                continue;
            }
            for key in [r.meta.id.clone(), r.meta.name.clone()]
                .into_iter()
                .flatten()
            {
                seen.insert(key, r.source.clone());
            }
            unique.push(r);
        }

        // Filters, then pipelines (pySigma order), then compilation.
        let mut applied_filters: Vec<Vec<String>> = vec![Vec::new(); unique.len()];
        for f in &filters {
            let mut hits = 0;
            for (i, r) in unique.iter_mut().enumerate() {
                if filter::applies_to(f, r) {
                    filter::apply(f, r, applied_filters[i].len());
                    applied_filters[i].push(f.title.clone());
                    hits += 1;
                }
            }
            if hits == 0 {
                report.warnings.push(format!(
                    "filter \"{}\" ({}) applies to no loaded rule (check its rule ids/names and logsource)",
                    f.title, f.source
                ));
            }
        }
        pipeline::sort_pipelines(&mut self.pipelines);
        let mut fields = FieldTable::new();
        let mut atoms = AtomTable::default();
        let mut entries = Vec::new();
        let mut compiler = Compiler {
            fields: &mut fields,
            atoms: &mut atoms,
            placeholders: &self.placeholders,
            warnings: Vec::new(),
        };
        for (mut r, filters_applied) in unique.into_iter().zip(applied_filters) {
            let original_logsource = r.logsource.clone();
            let fail = |kind, construct: String, reason: String, r: &SigmaRule| LoadError {
                path: r.source.path.to_path_buf(),
                document: r.source.index,
                rule_id: r.meta.id.clone(),
                title: Some(r.meta.title.clone()),
                kind,
                construct,
                reason,
            };
            let state = match pipeline::apply(&self.pipelines, &mut r) {
                Ok(s) => s,
                Err(reason) => {
                    report
                        .rejected
                        .push(fail(RejectKind::Pipeline, "pipeline".into(), reason, &r));
                    continue;
                }
            };
            let warn_before = compiler.warnings.len();
            match compiler.compile(&r) {
                Ok(compiled) => {
                    for w in compiler.warnings.drain(warn_before..).collect::<Vec<_>>() {
                        report.warnings.push(format!(
                            "{} ({}): {w}",
                            r.source,
                            r.meta.id.as_deref().unwrap_or(&r.meta.title)
                        ));
                    }
                    entries.push(RuleEntry {
                        meta: r.meta,
                        logsource: r.logsource,
                        original_logsource,
                        source: r.source,
                        filters: filters_applied,
                        pipeline_items: state.applied.into_iter().collect(),
                        compiled,
                    })
                }
                Err(rej) => {
                    compiler.warnings.truncate(warn_before);
                    report
                        .rejected
                        .push(fail(RejectKind::Compile, rej.construct, rej.reason, &r));
                }
            }
        }
        report.loaded = entries.len();
        report
            .rejected
            .sort_by(|a, b| (&a.path, a.document).cmp(&(&b.path, b.document)));
        (Engine::new(entries, correlations, fields, atoms), report)
    }
}

fn io_error(path: &Path, reason: String) -> LoadError {
    LoadError {
        path: path.to_path_buf(),
        document: 0,
        rule_id: None,
        title: None,
        kind: RejectKind::Io,
        construct: "file".into(),
        reason,
    }
}

/// True when document `index` of `text` is a processing pipeline
/// (`transformations:` at top level) — pipelines may live next to rules.
fn is_pipeline_doc(text: &str, index: usize) -> bool {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .nth(index)
        .and_then(|d| serde_yaml::Value::deserialize(d).ok())
        .is_some_and(|v| v.get("transformations").is_some())
}

fn collect_files(p: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<LoadError>) {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(p) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                errors.push(io_error(p, format!("cannot list directory: {e}")));
                return;
            }
        };
        entries.sort();
        for e in entries {
            if e.is_dir() {
                collect_files(&e, out, errors);
            } else if is_rule_file(&e) {
                out.push(e);
            }
        }
    } else if p.exists() {
        out.push(p.to_path_buf());
    } else {
        errors.push(io_error(p, "no such file or directory".into()));
    }
}

fn is_rule_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    (name.ends_with(".yml") || name.ends_with(".yaml"))
        && !name.ends_with(".tests.yml")
        && !name.ends_with(".tests.yaml")
}

/// Route key: the event's logsource, each part lower-cased and reduced to
/// `None` when no rule names it (which selects exactly the same rules).
type RouteKey = (Option<Box<str>>, Option<Box<str>>, Option<Box<str>>);

/// Routes a [`Scratch`] remembers (see [`Engine::route_cached`]).
const RECENT_ROUTES: usize = 8;

static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

/// The compiled rule set.
///
/// `Engine` is `Send + Sync`; share it behind an `Arc` across threads. Each
/// thread evaluates with its own [`Scratch`] (or the thread-local one used by
/// [`Engine::evaluate`]).
#[derive(Debug)]
pub struct Engine {
    id: u64,
    rules: Vec<RuleEntry>,
    correlations: Vec<RawCorrelation>,
    fields: FieldTable,
    atoms: AtomTable,
    by_ref: FxHashMap<String, RuleIdx>,
    /// Rules grouped by their exact (product, service, category).
    groups: FxHashMap<LogsourceKey, Vec<RuleIdx>>,
    products: FxHashSet<String>,
    services: FxHashSet<String>,
    categories: FxHashSet<String>,
    routes: RwLock<FxHashMap<RouteKey, Arc<Route>>>,
    /// Fields any rule lower-cases (for the naive path).
    all_lower: Vec<u32>,
}

/// Per-thread evaluation memory. Reusing it makes evaluation allocation-free.
#[derive(Debug, Default)]
pub struct Scratch {
    engine: u64,
    state: EventState,
    marks: ClauseMarks,
    candidates: Vec<RuleIdx>,
    /// Routes of the last few logsources, most recent first (see
    /// [`Engine::route_cached`]).
    routes: Vec<(LogSource, Arc<Route>)>,
    memo: ScanMemo,
    items: ItemMemo,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch::default()
    }

    /// How many rules the last evaluation ran in full (prefilter candidates
    /// plus rules without a trigger) — for benchmarks and tuning.
    pub fn last_candidates(&self) -> usize {
        self.candidates.len()
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Engine {
    fn new(
        rules: Vec<RuleEntry>,
        correlations: Vec<RawCorrelation>,
        fields: FieldTable,
        atoms: AtomTable,
    ) -> Engine {
        let mut by_ref = FxHashMap::default();
        let mut groups: FxHashMap<_, Vec<RuleIdx>> = FxHashMap::default();
        let (mut products, mut services, mut categories) = (
            FxHashSet::default(),
            FxHashSet::default(),
            FxHashSet::default(),
        );
        let mut all_lower = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let i = i as RuleIdx;
            for key in [&r.meta.id, &r.meta.name].into_iter().flatten() {
                by_ref.entry(key.clone()).or_insert(i);
            }
            let ls = &r.logsource;
            products.extend(ls.product.clone());
            services.extend(ls.service.clone());
            categories.extend(ls.category.clone());
            groups
                .entry((ls.product.clone(), ls.service.clone(), ls.category.clone()))
                .or_default()
                .push(i);
            all_lower.extend_from_slice(&r.compiled.lower_fields);
        }
        all_lower.sort_unstable();
        all_lower.dedup();
        Engine {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            rules,
            correlations,
            fields,
            atoms,
            by_ref,
            groups,
            products,
            services,
            categories,
            routes: RwLock::new(FxHashMap::default()),
            all_lower,
        }
    }

    /// Shorthand: `EngineBuilder::new()`.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::new()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rule(&self, idx: RuleIdx) -> &RuleEntry {
        &self.rules[idx as usize]
    }

    pub fn rules(&self) -> &[RuleEntry] {
        &self.rules
    }

    /// A rule by id or name — how correlation rules reference rules.
    pub fn find_rule(&self, id_or_name: &str) -> Option<RuleIdx> {
        self.by_ref.get(id_or_name).copied()
    }

    /// Correlation documents found while loading, for the correlation engine.
    pub fn correlations(&self) -> &[RawCorrelation] {
        &self.correlations
    }

    /// Name of a field id (for explanations and tooling).
    pub fn field_name(&self, id: u32) -> &str {
        self.fields.name(id)
    }

    pub fn field_id(&self, name: &str) -> Option<u32> {
        self.fields.get(name)
    }

    /// Number of distinct prefilter atoms.
    pub fn atom_count(&self) -> usize {
        self.atoms.len()
    }

    /// The rules that apply to events of `ls` (logsource routing), ascending.
    pub fn rules_for(&self, ls: &LogSource) -> Vec<RuleIdx> {
        self.route(ls).rules.clone()
    }

    /// Statistics of the route for `ls`: (rules, rules evaluated for every event).
    pub fn route_stats(&self, ls: &LogSource) -> (usize, usize) {
        let r = self.route(ls);
        (r.rules.len(), r.always.len())
    }

    /// The rules of the route for `ls` that have no prefilter trigger and run
    /// for every event.
    pub fn route_always(&self, ls: &LogSource) -> Vec<RuleIdx> {
        self.route(ls).always.clone()
    }

    /// Per scanned field of the route for `ls`: field name, number of
    /// atoms, their total bytes, and the automaton's heap bytes.
    pub fn route_scans(&self, ls: &LogSource) -> Vec<(String, usize, usize, usize)> {
        let r = self.route(ls);
        r.scans
            .iter()
            .map(|s| {
                let bytes = s
                    .pats
                    .iter()
                    .map(|p| self.atoms.atoms[p.atom as usize].1.len())
                    .sum();
                (
                    self.fields.name(s.field).to_owned(),
                    s.pats.len(),
                    bytes,
                    s.ac.memory_usage(),
                )
            })
            .collect()
    }

    fn route_key(&self, ls: &LogSource) -> RouteKey {
        let norm = |v: &Option<String>, known: &FxHashSet<String>| -> Option<Box<str>> {
            let v = v.as_deref()?;
            if known.contains(v) {
                return Some(v.into());
            }
            let low = v.to_ascii_lowercase();
            known.contains(&low).then(|| low.into_boxed_str())
        };
        (
            norm(&ls.product, &self.products),
            norm(&ls.service, &self.services),
            norm(&ls.category, &self.categories),
        )
    }

    fn route(&self, ls: &LogSource) -> Arc<Route> {
        let key = self.route_key(ls);
        if let Ok(map) = self.routes.read() {
            if let Some(r) = map.get(&key) {
                return r.clone();
            }
        }
        let (p, s, c) = &key;
        let mut rules = Vec::new();
        for gp in [None, p.as_deref()] {
            for gs in [None, s.as_deref()] {
                for gc in [None, c.as_deref()] {
                    let k = (
                        gp.map(str::to_owned),
                        gs.map(str::to_owned),
                        gc.map(str::to_owned),
                    );
                    if let Some(v) = self.groups.get(&k) {
                        rules.extend_from_slice(v);
                    }
                }
            }
        }
        rules.sort_unstable();
        rules.dedup();
        let compiled: Vec<&CompiledRule> = rules
            .iter()
            .map(|&i| &self.rules[i as usize].compiled)
            .collect();
        let route = Arc::new(Route::build(rules, &compiled, &self.atoms));
        match self.routes.write() {
            Ok(mut map) => map.entry(key).or_insert(route).clone(),
            Err(_) => route,
        }
    }

    /// The route for `ls` through the scratch's list of recent routes.
    /// A stream interleaves a few logsources (sshd, cron, sudo, kernel ...
    /// on one syslog input); looking each up in the engine's map costs
    /// three allocations for the key, a lock and a hash, and replacing a
    /// single remembered route on every switch three more.
    fn route_cached(
        &self,
        ls: &LogSource,
        recent: &mut Vec<(LogSource, Arc<Route>)>,
    ) -> Arc<Route> {
        if let Some(i) = recent.iter().position(|(l, _)| l == ls) {
            if i > 0 {
                recent[..=i].rotate_right(1);
            }
            return recent[0].1.clone();
        }
        let r = self.route(ls);
        if recent.len() == RECENT_ROUTES {
            recent.pop();
        }
        recent.insert(0, (ls.clone(), r.clone()));
        r
    }

    /// The rules `event` matches, ascending (thread-local scratch).
    pub fn evaluate(&self, event: &Event) -> Matches {
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => self.evaluate_with(event, &mut s),
            Err(_) => self.evaluate_with(event, &mut Scratch::new()),
        })
    }

    /// The rules `event` matches, ascending, using `scratch`.
    pub fn evaluate_with(&self, event: &Event, scratch: &mut Scratch) -> Matches {
        if scratch.engine != self.id {
            *scratch = Scratch {
                engine: self.id,
                ..Scratch::default()
            };
        }
        let route = self.route_cached(&event.logsource, &mut scratch.routes);
        let mut out = Matches::new();
        if route.rules.is_empty() {
            return out;
        }
        let st = &mut scratch.state;
        st.ensure(self.fields.len(), self.atoms.len());
        st.begin();
        let vals = event.fields.entries();
        resolve_fields(event, &self.fields, st);
        let cands = &mut scratch.candidates;
        cands.clear();
        if route.prefilter {
            scratch.marks.begin(route.rules.len());
            // the raw line is no event field: scanned when the route wants it
            let mut at = usize::MAX;
            while let Some((f, fs)) = next_scanned(&route, st.present(), &mut at) {
                let memo = single_str(vals, st, f)
                    .map(|text| scratch.memo.lookup(route.id, f, text))
                    .unwrap_or(Lookup::Off);
                match memo {
                    Lookup::Hit(pats, id) => {
                        st.set_value_id(f, id);
                        replay(&route, fs, pats, st, &mut scratch.marks);
                    }
                    Lookup::Miss(found, id) => {
                        st.set_value_id(f, id);
                        scan_value(&route, fs, event, vals, st, &mut scratch.marks, Some(found));
                    }
                    Lookup::Off => {
                        scan_value(&route, fs, event, vals, st, &mut scratch.marks, None);
                    }
                }
            }
            scan_numbers(&route, event, vals, st, &mut scratch.marks);
            scratch.marks.finish(&route, |a| st.is_hit(a), cands);
            cands.extend_from_slice(&route.always);
            cands.sort_unstable();
        } else {
            for &f in &route.lower_fields {
                lower_field(event, vals, st, f);
            }
            cands.extend_from_slice(&route.rules);
        }
        for &r in cands.iter() {
            for &f in &self.rules[r as usize].compiled.lower_fields {
                lower_field(event, vals, st, f);
            }
        }
        scratch.items.ensure();
        let ctx = Ctx {
            event,
            vals,
            st,
            scanned: route.prefilter.then_some(route.scanned.as_slice()),
            items: Some(&scratch.items),
        };
        for &r in cands.iter() {
            if ctx.eval_rule(&self.rules[r as usize].compiled) {
                out.push(r);
            }
        }
        out
    }

    /// Reference evaluator: every rule whose logsource applies, without the
    /// prefilter or routes. Slow; tests compare it with [`Engine::evaluate`].
    pub fn evaluate_naive(&self, event: &Event) -> Vec<RuleIdx> {
        let mut st = EventState::new(self.fields.len(), self.atoms.len());
        st.begin();
        let vals = event.fields.entries();
        resolve_fields(event, &self.fields, &mut st);
        for &f in &self.all_lower {
            lower_field(event, vals, &mut st, f);
        }
        let ctx = Ctx {
            event,
            vals,
            st: &st,
            scanned: None,
            items: None,
        };
        let ev_ls = LogsourceSpec {
            category: event.logsource.category.clone(),
            product: event.logsource.product.clone(),
            service: event.logsource.service.clone(),
            definition: None,
        };
        (0..self.rules.len() as RuleIdx)
            .filter(|&i| {
                let r = &self.rules[i as usize];
                r.logsource.contains(&ev_ls) && ctx.eval_rule(&r.compiled)
            })
            .collect()
    }

    /// Reference evaluation of one rule (logsource honoured, no prefilter).
    pub fn matches_rule(&self, idx: RuleIdx, event: &Event) -> bool {
        let r = &self.rules[idx as usize];
        let ev_ls = LogsourceSpec {
            category: event.logsource.category.clone(),
            product: event.logsource.product.clone(),
            service: event.logsource.service.clone(),
            definition: None,
        };
        r.logsource.contains(&ev_ls) && self.with_naive_ctx(event, |ctx| ctx.eval_rule(&r.compiled))
    }

    /// Runs `f` with an evaluation context for `event` that does not use the
    /// prefilter (explanations).
    pub(crate) fn with_naive_ctx<T>(&self, event: &Event, f: impl FnOnce(&Ctx<'_>) -> T) -> T {
        let mut st = EventState::new(self.fields.len(), self.atoms.len());
        st.begin();
        let vals = event.fields.entries();
        resolve_fields(event, &self.fields, &mut st);
        for &f in &self.all_lower {
            lower_field(event, vals, &mut st, f);
        }
        let ctx = Ctx {
            event,
            vals,
            st: &st,
            scanned: None,
            items: None,
        };
        f(&ctx)
    }
}

/// Looks up the numeric elements of the route's number-atom fields and
/// collects candidate rules (the exact condition of [`crate::compile::Matcher::Num`]).
fn scan_numbers(
    route: &Route,
    event: &Event,
    vals: &[Entry],
    st: &mut EventState,
    marks: &mut ClauseMarks,
) {
    for ns in &route.num_scans {
        let Some(v) = field_val(event, vals, st, ns.field) else {
            continue;
        };
        number_keys(v, |k| {
            if let Some(p) = ns.keys.get(&k) {
                if st.hit(p.atom) && p.postings.0 != p.postings.1 {
                    marks.mark(route, p.postings);
                }
            }
        });
    }
}

/// The next field to scan after position `at` of the walk (`usize::MAX`
/// before the first), with its scan: the raw line first if the route scans
/// it, then the event's fields the route scans, in event order.
#[inline]
fn next_scanned<'r>(
    route: &'r Route,
    present: &[FieldId],
    at: &mut usize,
) -> Option<(FieldId, &'r FieldScan)> {
    if *at == usize::MAX {
        *at = 0;
        if let Some(fs) = route.scan_for(FIELD_ORIGINAL) {
            return Some((FIELD_ORIGINAL, fs));
        }
    }
    while let Some(&f) = present.get(*at) {
        *at += 1;
        if let Some(fs) = route.scan_for(f) {
            return Some((f, fs));
        }
    }
    None
}

/// Scans field `fs.field` of the event. Where the field's automaton folds
/// ASCII case ([`FieldScan::direct`]), a pure-ASCII single string (or raw
/// line) is scanned as it is in the event: lower-casing it would change
/// exactly the ASCII capitals the automaton folds, so the atoms found are
/// the same, without the copy. Any other value — non-ASCII text, whose
/// lower-casing may change its length or turn characters into ASCII
/// (`K`, the Kelvin sign, becomes `k`), lists, numbers — is lower-cased
/// into the event's buffer and scanned there, as before.
fn scan_value(
    route: &Route,
    fs: &FieldScan,
    event: &Event,
    vals: &[Entry],
    st: &mut EventState,
    marks: &mut ClauseMarks,
    found: Option<&mut Vec<u32>>,
) {
    let f = fs.field;
    if fs.direct {
        let text = if f == FIELD_ORIGINAL {
            Some(event.original.as_str())
        } else {
            single_str(vals, st, f)
        };
        if let Some(text) = text.filter(|t| crate::value::is_ascii(t.as_bytes())) {
            scan_bytes(route, fs, text.as_bytes(), &mut |a| st.hit(a), marks, found);
            return;
        }
    }
    lower_field(event, vals, st, f);
    scan(route, fs, st, marks, found);
}

/// The automaton walk of [`scan`] over one text.
#[inline]
fn scan_bytes(
    route: &Route,
    fs: &FieldScan,
    hay: &[u8],
    hit: &mut dyn FnMut(AtomId) -> bool,
    marks: &mut ClauseMarks,
    mut found: Option<&mut Vec<u32>>,
) {
    fs.ac.for_each_match(hay, |i| {
        let Some(p) = fs.pats.get(i as usize) else {
            return;
        };
        if hit(p.atom) {
            if let Some(found) = found.as_deref_mut() {
                found.push(i);
            }
            if p.postings.0 != p.postings.1 {
                marks.mark(route, p.postings);
            }
        }
    });
}

/// Scans one field of the route and collects candidate rules; the
/// patterns found go onto `found` for the memo.
fn scan(
    route: &Route,
    fs: &FieldScan,
    st: &mut EventState,
    marks: &mut ClauseMarks,
    mut found: Option<&mut Vec<u32>>,
) {
    st.scan_field(fs.field, |hay, hit| {
        let hay = hay.as_bytes();
        if let Some(start) = fs.scan_start(hay) {
            scan_bytes(route, fs, &hay[start..], hit, marks, found.as_deref_mut());
        }
    });
}

/// What [`scan`] does for a text the memo knows: the same atoms found, the
/// same rules marked, without lower-casing or scanning the text.
fn replay(
    route: &Route,
    fs: &FieldScan,
    pats: &[u32],
    st: &mut EventState,
    marks: &mut ClauseMarks,
) {
    for &i in pats {
        if let Some(p) = fs.pats.get(i as usize) {
            if st.hit(p.atom) && p.postings.0 != p.postings.1 {
                marks.mark(route, p.postings);
            }
        }
    }
}
