//! Rule tooling shared by the `rules` and `replay` subcommands: loading a
//! rule set the way the detector does (rule paths plus processing
//! pipelines), reading events from raw lines or JSON, and the rule test
//! runner ([`rule_tests`], with correlation tests in [`correlation_tests`]).

pub mod correlation_tests;
pub mod rule_tests;

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::Utc;
use qalqan_core::parse::{ParseOptions, Parser};
use qalqan_core::{Event, LogSource};
use qalqan_sigma::{Engine, LoadReport, Pipeline};

/// Where the shipped processing pipelines live, relative to the working
/// directory (the repository root or an installation's share directory).
pub const DEFAULT_PIPELINES_DIR: &str = "rules/pipelines";

/// How to build a rule set from the command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RuleSetArgs {
    /// Processing pipeline file or directory of pipelines (repeatable).
    /// The shipped pipelines in `rules/pipelines/` are used too unless
    /// `--no-default-pipelines` is given.
    #[arg(long = "pipeline", value_name = "PATH")]
    pub pipelines: Vec<PathBuf>,
    /// Do not add the shipped pipelines from `rules/pipelines/`.
    #[arg(long)]
    pub no_default_pipelines: bool,
    /// Values for a placeholder used with `|expand`: `NAME=v1,v2` (repeatable).
    #[arg(long = "placeholder", value_name = "NAME=V1,V2")]
    pub placeholders: Vec<String>,
}

impl RuleSetArgs {
    /// Pipeline files to load, sorted within each directory.
    pub fn pipeline_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut dirs: Vec<PathBuf> = Vec::new();
        if !self.no_default_pipelines && Path::new(DEFAULT_PIPELINES_DIR).is_dir() {
            dirs.push(PathBuf::from(DEFAULT_PIPELINES_DIR));
        }
        for p in &self.pipelines {
            if p.is_dir() {
                dirs.push(p.clone());
            } else if p.is_file() {
                out.push(p.clone());
            } else {
                anyhow::bail!("pipeline {} does not exist", p.display());
            }
        }
        for d in dirs {
            let files =
                Pipeline::files_in(&d).with_context(|| format!("listing {}", d.display()))?;
            for f in files {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }

    /// Loads the rules under `paths` with the pipelines and placeholders.
    pub fn load(&self, paths: &[PathBuf]) -> anyhow::Result<(Engine, LoadReport, Vec<PathBuf>)> {
        let files = self.pipeline_files()?;
        let mut b = Engine::builder();
        for f in &files {
            b = b.pipeline(Pipeline::from_path(f)?);
        }
        for p in &self.placeholders {
            let (name, values) = p
                .split_once('=')
                .with_context(|| format!("--placeholder {p:?}: expected NAME=v1,v2"))?;
            b = b.placeholder(
                name.trim(),
                values.split(',').map(|v| v.trim().to_owned()).collect(),
            );
        }
        let (engine, report) = b.load_paths(paths);
        Ok((engine, report, files))
    }
}

/// How raw lines become events.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EventArgs {
    /// Year for RFC 3164 timestamps (they carry none), e.g. 2015 for old files.
    #[arg(long)]
    pub year: Option<i32>,
    /// Sigma product for web access lines (`nginx`, `apache`).
    #[arg(long)]
    pub web_product: Option<String>,
    /// Logsource for generic JSON lines: `product=windows,service=sysmon`.
    #[arg(long, value_name = "K=V,...")]
    pub json_logsource: Option<String>,
    /// Logsource for events that end up with none: `product=...,service=...,category=...`.
    #[arg(long, value_name = "K=V,...")]
    pub logsource: Option<String>,
}

/// Parses `product=x,service=y,category=z` (any subset).
pub fn parse_logsource(text: &str) -> anyhow::Result<LogSource> {
    let mut ls = LogSource::default();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("logsource {text:?}: expected key=value pairs"))?;
        let v = Some(v.trim().to_ascii_lowercase());
        match k.trim() {
            "product" => ls.product = v,
            "service" => ls.service = v,
            "category" => ls.category = v,
            other => {
                anyhow::bail!("logsource key {other:?}: expected product, service or category")
            }
        }
    }
    Ok(ls)
}

/// Turns raw lines and JSON into events, as the collector would.
pub struct EventReader {
    parser: Parser,
    fallback: Option<LogSource>,
}

impl EventReader {
    pub fn new(args: &EventArgs) -> anyhow::Result<EventReader> {
        let mut opts = ParseOptions {
            rfc3164_year: args.year,
            web_product: args.web_product.clone(),
            ..ParseOptions::default()
        };
        if let Some(j) = &args.json_logsource {
            opts.json_logsource = parse_logsource(j)?;
        }
        Ok(EventReader {
            parser: Parser::new(opts),
            fallback: args.logsource.as_deref().map(parse_logsource).transpose()?,
        })
    }

    /// One line: a qalqan event in wire form (it has `schema_version`), or
    /// anything the parser library reads (syslog, web access, JSON, CEF ...).
    pub fn line(&self, line: &[u8]) -> Event {
        let now = Utc::now();
        let trimmed = line.trim_ascii();
        let mut ev = if trimmed.starts_with(b"{") && memchr_schema(trimmed) {
            match Event::from_json_bytes(trimmed, now) {
                Ok(ev) => ev,
                Err(_) => self.parser.parse(line, now).event,
            }
        } else {
            self.parser.parse(line, now).event
        };
        self.fill_logsource(&mut ev);
        ev
    }

    /// A JSON object given directly (test files, `--event '{...}'`): the
    /// wire form, or foreign JSON such as a Sysmon event.
    pub fn json(&self, value: serde_json::Value) -> anyhow::Result<Event> {
        let serde_json::Value::Object(map) = value else {
            anyhow::bail!("an event must be a JSON object");
        };
        let text = serde_json::Value::Object(map.clone()).to_string();
        let mut ev = Event::from_json_map(map, Utc::now())?;
        if ev.original.is_empty() {
            ev.original = text;
        }
        self.fill_logsource(&mut ev);
        Ok(ev)
    }

    fn fill_logsource(&self, ev: &mut Event) {
        if let Some(fb) = &self.fallback {
            let ls = &mut ev.logsource;
            if ls.product.is_none() && ls.service.is_none() && ls.category.is_none() {
                *ls = fb.clone();
            }
        }
    }
}

fn memchr_schema(b: &[u8]) -> bool {
    b.windows(16).any(|w| w == b"\"schema_version\"")
}

/// Prints a load report: counts, then every rejection with its reason.
pub fn print_report(report: &LoadReport, pipelines: &[PathBuf], verbose: bool) {
    println!(
        "files {}  loaded {}  rejected {}  filters {}  correlations {}  pipelines {}",
        report.files,
        report.loaded,
        report.rejected.len(),
        report.filters,
        report.correlations,
        pipelines.len()
    );
    if verbose {
        for p in pipelines {
            println!("  pipeline {}", p.display());
        }
    }
    let counts = report.counts();
    if !counts.is_empty() {
        let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k:?} {n}")).collect();
        println!("rejected by kind: {}", parts.join(", "));
    }
    for e in &report.rejected {
        println!("REJECTED {e}");
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
}
