//! `rules` subcommand: check, test and explain Sigma rules before they are
//! deployed.
//!
//! ```text
//! qalqan-detector rules check rules/ --strict
//! qalqan-detector rules test rules/ --require-tests
//! qalqan-detector rules explain --rule 6a1f0e0c-… --event 'Dec 10 06:55:46 LabSZ sshd[1]: …' rules/
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::tooling::correlation_tests::{self, CorrelationTests};
use crate::tooling::rule_tests::TestRunner;
use crate::tooling::{print_report, EventArgs, EventReader, RuleSetArgs};

#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// Load rules and report every rejection with file, rule, construct and reason.
    Check(CheckArgs),
    /// Run rule test files (`*.tests.yml`) next to the rules.
    Test(TestArgs),
    /// Show, for one rule and one event, which selections and values matched.
    Explain(ExplainArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Rule files or directories (searched recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub rules: RuleSetArgs,
    /// Exit non-zero when any document is rejected (for CI).
    #[arg(long)]
    pub strict: bool,
    /// Also list the pipelines used and every loaded rule.
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Directories or files holding rules and their `*.tests.yml` files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// More rule paths to load (rules the tests reference that live elsewhere).
    #[arg(long = "rules", value_name = "PATH")]
    pub extra_rules: Vec<PathBuf>,
    #[command(flatten)]
    pub rules: RuleSetArgs,
    /// Fail when a rule under PATHS has no test document.
    #[arg(long)]
    pub require_tests: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// Rule id or name.
    #[arg(long)]
    pub rule: String,
    /// The event: JSON text, a raw log line, or a file holding either
    /// (the first line of a text file, or `--line-number`).
    #[arg(long)]
    pub event: String,
    /// Line of the event file to use (1-based).
    #[arg(long)]
    pub line_number: Option<usize>,
    /// Rule files or directories (default: `rules/`).
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub rules: RuleSetArgs,
    #[command(flatten)]
    pub events: EventArgs,
}

pub fn run(args: RulesCommand) -> anyhow::Result<ExitCode> {
    match args {
        RulesCommand::Check(a) => check(a),
        RulesCommand::Test(a) => test(a),
        RulesCommand::Explain(a) => explain(a),
    }
}

fn check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let (engine, report, pipelines) = a.rules.load(&a.paths)?;
    print_report(&report, &pipelines, a.verbose);
    if a.verbose {
        for r in engine.rules() {
            println!(
                "LOADED {} {} [{}] {}",
                r.meta.id.as_deref().unwrap_or("-"),
                r.meta.title,
                r.meta.level.as_deref().unwrap_or("-"),
                r.source
            );
        }
    }
    let correlation_problems = correlation_tests::problems(&engine);
    for p in &correlation_problems {
        println!("REJECTED {p}");
    }
    let rejected = report.rejected.len() + correlation_problems.len();
    if a.strict && rejected > 0 {
        eprintln!("strict: {rejected} document(s) rejected");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn test(a: TestArgs) -> anyhow::Result<ExitCode> {
    let mut rule_paths = a.paths.clone();
    rule_paths.extend(a.extra_rules.iter().cloned());
    let (engine, report, _) = a.rules.load(&rule_paths)?;
    for e in &report.rejected {
        println!("REJECTED {e}");
    }
    let correlation_problems = correlation_tests::problems(&engine);
    for p in &correlation_problems {
        println!("REJECTED {p}");
    }
    let correlations = CorrelationTests::new();
    let tested_correlations = correlations.tested();
    let summary = TestRunner::new()
        .extension(Box::new(correlations))
        .run(&engine, &a.paths)?;
    for o in &summary.outcomes {
        if o.passed {
            println!("ok   {}", o.label);
        } else {
            println!("FAIL {}\n{}", o.label, indent(&o.detail));
        }
    }
    let mut untested = Vec::new();
    if a.require_tests {
        for (i, r) in engine.rules().iter().enumerate() {
            let under_paths = a.paths.iter().any(|p| r.source.path.starts_with(p));
            if under_paths && summary.tested_rules.binary_search(&(i as u32)).is_err() {
                untested.push(format!("{} ({})", r.meta.title, r.source));
            }
        }
        let tested = tested_correlations
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        untested.extend(correlation_tests::untested(&engine, &a.paths, &tested));
        for u in &untested {
            println!("UNTESTED {u}");
        }
    }
    println!(
        "{} test files, {} documents: {} passed, {} failed{}",
        summary.files,
        summary.documents,
        summary.passed,
        summary.failed,
        if a.require_tests {
            format!(", {} rules without tests", untested.len())
        } else {
            String::new()
        }
    );
    let bad = summary.failed > 0
        || !untested.is_empty()
        || !report.rejected.is_empty()
        || !correlation_problems.is_empty();
    Ok(if bad {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("     {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn explain(a: ExplainArgs) -> anyhow::Result<ExitCode> {
    let paths = if a.paths.is_empty() {
        vec![super::default_rules_dir()]
    } else {
        a.paths.clone()
    };
    let (engine, report, _) = a.rules.load(&paths)?;
    let Some(idx) = engine.find_rule(&a.rule) else {
        let why = report
            .rejected
            .iter()
            .find(|e| e.rule_id.as_deref() == Some(a.rule.as_str()))
            .map(|e| format!(": it was rejected: {e}"))
            .unwrap_or_default();
        anyhow::bail!("rule '{}' is not loaded from {:?}{why}", a.rule, paths);
    };
    let reader = EventReader::new(&a.events)?;
    let event = read_event_arg(&reader, &a.event, a.line_number)?;
    let x = engine.explain(idx, &event);
    println!("{x}");
    let fired = engine.evaluate(&event).contains(&idx);
    if fired != x.fires() {
        anyhow::bail!(
            "internal inconsistency: optimized evaluator says {fired}, explanation says {}",
            x.fires()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--event`: JSON text, a file (JSON, or text lines), or a raw line.
fn read_event_arg(
    reader: &EventReader,
    arg: &str,
    line_number: Option<usize>,
) -> anyhow::Result<qalqan_core::Event> {
    let trimmed = arg.trim_start();
    if trimmed.starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(trimmed).context("--event: JSON text is not valid")?;
        return reader.json(v);
    }
    let path = std::path::Path::new(arg);
    if path.is_file() {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        if let Some(n) = line_number {
            let line = text
                .lines()
                .nth(n.saturating_sub(1))
                .with_context(|| format!("{} has no line {n}", path.display()))?;
            return Ok(reader.line(line.as_bytes()));
        }
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            return reader.json(v);
        }
        let line = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .with_context(|| format!("{} is empty", path.display()))?;
        return Ok(reader.line(line.as_bytes()));
    }
    Ok(reader.line(arg.as_bytes()))
}
