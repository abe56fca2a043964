//! Rule test files: input events or raw lines with the matches and
//! non-matches a rule must give, run by `qalqan-detector rules test`.
//!
//! # Format
//!
//! A test file sits next to the rules it tests and is named
//! `<anything>.tests.yml` (the rule loader skips such files). Each YAML
//! document tests one rule:
//!
//! ```yaml
//! rule: 6a1f0e0c-3a54-4a0e-9f35-0c6f4d2a7a01   # id or name of the rule
//! # optional: how raw lines are read (as the collector's input would)
//! parser:
//!   year: 2015                     # RFC 3164 lines carry no year
//!   web_product: nginx             # product of web access lines
//!   json_logsource: {product: windows, service: sysmon}
//! # optional: logsource for events that end up without one
//! logsource: {product: linux, service: sshd}
//! match:                           # each case must fire the rule
//!   - 'Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for x [1.2.3.4] failed - POSSIBLE BREAK-IN ATTEMPT!'
//!   - json: {EventID: 1, Image: 'C:\Windows\System32\whoami.exe'}
//!     logsource: {product: windows, category: process_creation}   # per case
//! nomatch:                         # none of these may fire it
//!   - 'Dec 10 06:55:48 LabSZ sshd[24202]: Accepted password for fztu from 1.2.3.4 port 2222 ssh2'
//! ```
//!
//! A case is a raw line (a string, or `line: ...`), read with the same
//! parser library as the collector, or a JSON event (`json:` with an object
//! or its text): qalqan's wire form or foreign JSON such as Sysmon's.
//!
//! # Extending
//!
//! Other kinds of tests (correlation rules: expected alert counts and group
//! keys) plug in through [`TestExtension`]: an extension claims top-level
//! keys of a test document (e.g. `correlation`) and runs those documents
//! with the loaded [`Engine`] and the same event reading ([`TestContext`]).
//! Register it with [`TestRunner::extension`].

use std::path::{Path, PathBuf};

use anyhow::Context;
use qalqan_core::{Event, LogSource};
use qalqan_sigma::Engine;
use serde::Deserialize;
use serde_yaml::{Mapping, Value as Yaml};

use super::{EventArgs, EventReader};

/// The outcome of one test case.
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    /// `file:document` and a short label (`match #2`).
    pub label: String,
    pub passed: bool,
    /// Why it failed (with an explanation of the rule on the event).
    pub detail: String,
}

/// What an extension gets to run a test document.
pub struct TestContext<'a> {
    pub engine: &'a Engine,
    pub file: &'a Path,
    pub document: usize,
    /// Reads cases the way the sigma tests do (`parser:`/`logsource:` applied).
    pub reader: &'a EventReader,
}

impl TestContext<'_> {
    /// Reads one case (raw line string, `line:`, or `json:`).
    pub fn read_case(&self, case: &Yaml) -> anyhow::Result<Event> {
        read_case(self.reader, case)
    }
}

/// A kind of test document other than single-rule match tests.
pub trait TestExtension {
    /// Top-level keys that mark a document as this extension's.
    fn keys(&self) -> &'static [&'static str];
    /// Runs one document.
    fn run(&self, ctx: &TestContext<'_>, doc: &Mapping) -> anyhow::Result<Vec<CaseOutcome>>;
}

/// Finds and runs test files.
#[derive(Default)]
pub struct TestRunner {
    extensions: Vec<Box<dyn TestExtension>>,
}

/// Totals over all files.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub files: usize,
    pub documents: usize,
    pub passed: usize,
    pub failed: usize,
    /// Ids/titles of the tested rules (for `--require-tests`).
    pub tested_rules: Vec<u32>,
    pub outcomes: Vec<CaseOutcome>,
}

impl TestRunner {
    pub fn new() -> Self {
        TestRunner::default()
    }

    /// Adds an extension (e.g. correlation tests).
    pub fn extension(mut self, e: Box<dyn TestExtension>) -> Self {
        self.extensions.push(e);
        self
    }

    /// Runs every `*.tests.yml` under `paths`.
    pub fn run(&self, engine: &Engine, paths: &[PathBuf]) -> anyhow::Result<Summary> {
        let mut files = Vec::new();
        for p in paths {
            collect_tests(p, &mut files)?;
        }
        let mut summary = Summary {
            files: files.len(),
            ..Summary::default()
        };
        for f in &files {
            self.run_file(engine, f, &mut summary)?;
        }
        summary.passed = summary.outcomes.iter().filter(|o| o.passed).count();
        summary.failed = summary.outcomes.len() - summary.passed;
        summary.tested_rules.sort_unstable();
        summary.tested_rules.dedup();
        Ok(summary)
    }

    fn run_file(&self, engine: &Engine, file: &Path, summary: &mut Summary) -> anyhow::Result<()> {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for (index, de) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let doc = match Yaml::deserialize(de) {
                Ok(Yaml::Null) => continue,
                Ok(Yaml::Mapping(m)) => m,
                Ok(_) => {
                    summary.outcomes.push(fail(
                        file,
                        index,
                        "document",
                        "a test document must be a mapping".into(),
                    ));
                    continue;
                }
                Err(e) => {
                    summary
                        .outcomes
                        .push(fail(file, index, "yaml", format!("invalid YAML: {e}")));
                    break;
                }
            };
            summary.documents += 1;
            let reader = match reader_for(&doc) {
                Ok(r) => r,
                Err(e) => {
                    summary
                        .outcomes
                        .push(fail(file, index, "parser", format!("{e:#}")));
                    continue;
                }
            };
            let ctx = TestContext {
                engine,
                file,
                document: index,
                reader: &reader,
            };
            let ext = self
                .extensions
                .iter()
                .find(|e| e.keys().iter().any(|k| doc.contains_key(*k)));
            match ext {
                Some(ext) => match ext.run(&ctx, &doc) {
                    Ok(o) => summary.outcomes.extend(o),
                    Err(e) => {
                        summary
                            .outcomes
                            .push(fail(file, index, "extension", format!("{e:#}")))
                    }
                },
                None => {
                    summary
                        .outcomes
                        .extend(rule_document(&ctx, &doc, &mut summary.tested_rules))
                }
            }
        }
        Ok(())
    }
}

fn fail(file: &Path, index: usize, what: &str, detail: String) -> CaseOutcome {
    CaseOutcome {
        label: format!("{}:{} {what}", file.display(), index + 1),
        passed: false,
        detail,
    }
}

fn collect_tests(p: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .with_context(|| format!("listing {}", p.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            collect_tests(&e, out)?;
        }
    } else {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.ends_with(".tests.yml") || name.ends_with(".tests.yaml") {
            out.push(p.to_path_buf());
        }
    }
    Ok(())
}

fn logsource_of(v: &Yaml) -> anyhow::Result<LogSource> {
    let get = |k: &str| {
        v.get(k)
            .and_then(Yaml::as_str)
            .map(|s| s.to_ascii_lowercase())
    };
    if !v.is_mapping() {
        anyhow::bail!("logsource must be a mapping of product/service/category");
    }
    Ok(LogSource {
        product: get("product"),
        service: get("service"),
        category: get("category"),
    })
}

fn reader_for(doc: &Mapping) -> anyhow::Result<EventReader> {
    let mut args = EventArgs::default();
    if let Some(p) = doc.get("parser") {
        let m = p.as_mapping().context("parser: must be a mapping")?;
        for (k, v) in m {
            match k.as_str().unwrap_or_default() {
                "year" => args.year = Some(v.as_i64().context("parser.year: a number")? as i32),
                "web_product" => args.web_product = v.as_str().map(str::to_owned),
                "json_logsource" => {
                    let ls = logsource_of(v)?;
                    args.json_logsource = Some(logsource_text(&ls));
                }
                other => anyhow::bail!(
                    "parser.{other}: unknown option (year, web_product, json_logsource)"
                ),
            }
        }
    }
    if let Some(ls) = doc.get("logsource") {
        args.logsource = Some(logsource_text(&logsource_of(ls)?));
    }
    EventReader::new(&args)
}

fn logsource_text(ls: &LogSource) -> String {
    [
        ("product", &ls.product),
        ("service", &ls.service),
        ("category", &ls.category),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect::<Vec<_>>()
    .join(",")
}

/// Reads one case: a raw line, `line:`, or `json:` (object or text), with an
/// optional per-case `logsource`.
pub fn read_case(reader: &EventReader, case: &Yaml) -> anyhow::Result<Event> {
    let mut ev = match case {
        Yaml::String(line) => return Ok(reader.line(line.as_bytes())),
        Yaml::Mapping(m) => {
            if let Some(Yaml::String(line)) = m.get("line") {
                reader.line(line.as_bytes())
            } else if let Some(j) = m.get("json") {
                let value: serde_json::Value = match j {
                    Yaml::String(text) => {
                        serde_json::from_str(text).context("json: not valid JSON text")?
                    }
                    other => {
                        serde_json::to_value(other).context("json: not representable as JSON")?
                    }
                };
                reader.json(value)?
            } else {
                anyhow::bail!("a case is a raw line, `line: ...` or `json: ...`");
            }
        }
        _ => anyhow::bail!("a case is a raw line, `line: ...` or `json: ...`"),
    };
    if let Some(ls) = case.get("logsource") {
        ev.logsource = logsource_of(ls)?;
    }
    Ok(ev)
}

fn rule_document(ctx: &TestContext<'_>, doc: &Mapping, tested: &mut Vec<u32>) -> Vec<CaseOutcome> {
    for k in doc.keys() {
        let k = k.as_str().unwrap_or_default();
        if !matches!(
            k,
            "rule" | "match" | "nomatch" | "parser" | "logsource" | "description"
        ) {
            return vec![fail(
                ctx.file,
                ctx.document,
                "document",
                format!("unknown key '{k}' (rule tests use rule, match, nomatch, parser, logsource; no extension claims it)"),
            )];
        }
    }
    let Some(rule_ref) = doc.get("rule").and_then(|r| {
        r.as_str()
            .map(str::to_owned)
            .or_else(|| r.as_u64().map(|n| n.to_string()))
    }) else {
        return vec![fail(
            ctx.file,
            ctx.document,
            "rule",
            "a test document needs `rule:` (id or name)".into(),
        )];
    };
    let Some(idx) = ctx.engine.find_rule(&rule_ref) else {
        return vec![fail(
            ctx.file,
            ctx.document,
            "rule",
            format!("rule '{rule_ref}' is not loaded (missing, or rejected: run `rules check`)"),
        )];
    };
    tested.push(idx);
    let mut out = Vec::new();
    for (key, want) in [("match", true), ("nomatch", false)] {
        let Some(cases) = doc.get(key) else { continue };
        let Some(cases) = cases.as_sequence() else {
            out.push(fail(
                ctx.file,
                ctx.document,
                key,
                format!("`{key}` must be a list"),
            ));
            continue;
        };
        for (i, case) in cases.iter().enumerate() {
            let label = format!(
                "{}:{} {rule_ref} {key} #{}",
                ctx.file.display(),
                ctx.document + 1,
                i + 1
            );
            let outcome = match ctx.read_case(case) {
                Err(e) => CaseOutcome {
                    label,
                    passed: false,
                    detail: format!("{e:#}"),
                },
                Ok(ev) => {
                    let fired = ctx.engine.evaluate(&ev).contains(&idx);
                    CaseOutcome {
                        label,
                        passed: fired == want,
                        detail: if fired == want {
                            String::new()
                        } else {
                            format!(
                                "expected the rule {} but it {}\n{}",
                                if want { "to fire" } else { "not to fire" },
                                if fired { "fired" } else { "did not fire" },
                                ctx.engine.explain(idx, &ev)
                            )
                        },
                    }
                }
            };
            out.push(outcome);
        }
    }
    if out.is_empty() {
        out.push(fail(
            ctx.file,
            ctx.document,
            "cases",
            "no `match` or `nomatch` cases".into(),
        ));
    }
    out
}
