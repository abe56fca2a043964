//! `replay` subcommand: parse a log file or JSON-lines file the way the
//! collector would and print what the rules match — for trying rules on
//! real data before deploying them.
//!
//! ```text
//! qalqan-detector replay /var/log/auth.log --rules rules/
//! qalqan-detector replay sysmon.jsonl --json-logsource product=windows,service=sysmon
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use qalqan_sigma::Scratch;

use crate::tooling::{EventArgs, EventReader, RuleSetArgs};

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Log file (raw lines or JSON lines); `-` reads standard input.
    pub file: PathBuf,
    /// Rule files or directories (repeatable; default `rules/`).
    #[arg(long = "rules", value_name = "PATH")]
    pub rules_paths: Vec<PathBuf>,
    #[command(flatten)]
    pub rules: RuleSetArgs,
    #[command(flatten)]
    pub events: EventArgs,
    /// Print each match as one JSON object (rule, line number, event) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print only the per-rule summary.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let paths = if a.rules_paths.is_empty() {
        vec![super::default_rules_dir()]
    } else {
        a.rules_paths.clone()
    };
    let (engine, report, _) = a.rules.load(&paths)?;
    eprintln!(
        "loaded {} rules ({} rejected; `rules check` lists them)",
        report.loaded,
        report.rejected.len()
    );
    let reader = EventReader::new(&a.events)?;
    let input: Box<dyn Read> = if a.file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(&a.file)
                .with_context(|| format!("opening {}", a.file.display()))?,
        )
    };
    let mut input = BufReader::new(input);
    let mut scratch = Scratch::new();
    let mut per_rule: BTreeMap<u32, usize> = BTreeMap::new();
    let (mut lines, mut matches) = (0usize, 0usize);
    let started = Instant::now();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = input.read_until(b'\n', &mut buf).context("reading input")?;
        if n == 0 {
            break;
        }
        lines += 1;
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let ev = reader.line(line);
        for idx in engine.evaluate_with(&ev, &mut scratch) {
            matches += 1;
            *per_rule.entry(idx).or_default() += 1;
            if a.quiet {
                continue;
            }
            let r = engine.rule(idx);
            if a.json {
                let out = serde_json::json!({
                    "line": lines,
                    "rule": r.rule_info(),
                    "event": ev.to_json(),
                });
                println!("{out}");
            } else {
                println!(
                    "line {lines}: [{}] {} ({})\n    {}",
                    r.meta.level.as_deref().unwrap_or("-"),
                    r.meta.title,
                    r.meta.id.as_deref().unwrap_or("-"),
                    ev.original
                );
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{lines} lines, {matches} matches from {} rules in {:.2}s ({:.0} lines/s)",
        per_rule.len(),
        secs,
        lines as f64 / secs.max(1e-9)
    );
    let mut by_count: Vec<(usize, u32)> = per_rule.iter().map(|(i, n)| (*n, *i)).collect();
    by_count.sort_by(|a, b| b.cmp(a));
    for (n, idx) in by_count {
        let r = engine.rule(idx);
        eprintln!(
            "{n:>8}  [{}] {}",
            r.meta.level.as_deref().unwrap_or("-"),
            r.meta.title
        );
    }
    Ok(ExitCode::SUCCESS)
}
