//! Standalone mode: collector parsing, both detector stages and the sinks
//! in one process, with in-process hand-over instead of Kafka and JSON-lines
//! files instead of ClickHouse. The embedded default: the README's first
//! command, small sites, and rule development.
//!
//! The same [`Matcher`] and [`Correlator`] run here as in the Kafka
//! service; only the transport differs. Events are processed in arrival
//! order on one thread, which makes a run repeatable: the same input gives
//! the same alerts with the same ids.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use qalqan_core::alert::event_id;
use qalqan_core::event::{now_micros, Value};
use qalqan_core::parse::{ParseOptions, Parser};
use qalqan_core::{Alert, Event};
use qalqan_correlation::EngineConfig;

use crate::metrics::Metrics;
use crate::pipeline::matcher::MatcherSettings;
use crate::pipeline::{Correlator, LoadedRules, MatchOutput, Matcher};
use crate::sinks::console::ConsoleRenderer;
use crate::sinks::jsonl::JsonLinesFile;

/// Where lines come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// The built-in attack scenario (see [`crate::demo`]).
    Demo,
    /// A log file (syslog, web access, JSON lines, ...); `-` is stdin.
    File(PathBuf),
}

/// A standalone run.
pub struct Standalone {
    pub agency: String,
    pub inputs: Vec<Input>,
    /// Keep reading files as they grow (like `tail -f`) instead of stopping at their end.
    pub follow: bool,
    pub alerts_out: Option<PathBuf>,
    pub events_out: Option<PathBuf>,
    /// Print alerts readably on stdout.
    pub console: Option<ConsoleRenderer>,
    /// Print alerts as JSON lines on stdout.
    pub json_stdout: bool,
    pub matcher: MatcherSettings,
    pub correlation: EngineConfig,
    pub parse: ParseOptions,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub lines: u64,
    pub unparsed: u64,
    pub alerts: u64,
    pub alert_ids: Vec<String>,
}

struct Sinks<'a> {
    alerts: Option<JsonLinesFile>,
    events: Option<JsonLinesFile>,
    console: Option<ConsoleRenderer>,
    json_stdout: bool,
    summary: &'a mut RunSummary,
}

impl Sinks<'_> {
    fn alert(&mut self, alert: &Alert) -> anyhow::Result<()> {
        self.summary.alerts += 1;
        self.summary.alert_ids.push(alert.id.clone());
        if let Some(f) = &mut self.alerts {
            f.write_line(&alert.to_json_string())?;
        }
        if self.console.is_some() || self.json_stdout {
            use std::io::Write;
            let text = match &self.console {
                Some(c) => c.render(alert),
                None => format!("{}\n", alert.to_json_string()),
            };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        for f in [&mut self.alerts, &mut self.events].into_iter().flatten() {
            f.flush()?;
        }
        Ok(())
    }
}

impl Standalone {
    /// Runs until every input is exhausted (or forever with `follow`).
    pub fn run(
        &self,
        rules: Arc<LoadedRules>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<RunSummary> {
        let mut summary = RunSummary::default();
        let mut matcher = Matcher::new(Arc::clone(&rules), &self.matcher, Arc::clone(&metrics));
        let mut correlator = Correlator::new(
            Arc::clone(&rules.correlations),
            self.correlation.clone(),
            Arc::clone(&metrics),
        )?;
        let mut sinks = Sinks {
            alerts: self
                .alerts_out
                .as_deref()
                .map(JsonLinesFile::append)
                .transpose()?,
            events: self
                .events_out
                .as_deref()
                .map(JsonLinesFile::append)
                .transpose()?,
            console: self.console,
            json_stdout: self.json_stdout,
            summary: &mut summary,
        };
        let parser = Parser::new(self.parse.clone());
        let observer = format!("standalone-{}", hostname());
        let mut seq: u64 = 0;
        let mut out = MatchOutput::default();
        let mut alerts = Vec::new();
        let mut last_tick = Instant::now();

        let mut handle_line = |raw: &[u8], received, sinks: &mut Sinks<'_>| -> anyhow::Result<()> {
            seq += 1;
            let parsed = parser.parse(raw, received);
            let mut event: Event = parsed.event;
            if parsed.parser == "unparsed" {
                sinks.summary.unparsed += 1;
            }
            sinks.summary.lines += 1;
            let id = event_id(&[observer.as_bytes(), &seq.to_le_bytes()]);
            event.fields.insert("event.id", id.clone());
            event.fields.insert("observer.name", observer.clone());
            event.fields.insert("observer.type", "standalone");
            event.fields.insert("observer.sequence", Value::from(seq));
            event.fields.insert("organization.id", self.agency.clone());
            if let Some(f) = &mut sinks.events {
                f.write_line(&event.to_json_string())?;
            }
            out.clear();
            matcher.process(&self.agency, &event, &id, seq, &mut out);
            for a in out.alerts.drain(..) {
                sinks.alert(&a)?;
            }
            for s in out.signals.drain(..) {
                correlator.process(0, s, &mut alerts);
            }
            for a in alerts.drain(..) {
                sinks.alert(&a)?;
            }
            if last_tick.elapsed() > Duration::from_millis(100) {
                last_tick = Instant::now();
                correlator.tick(&mut alerts);
                for a in alerts.drain(..) {
                    sinks.alert(&a)?;
                }
                sinks.flush()?;
            }
            Ok(())
        };

        for input in &self.inputs {
            match input {
                Input::Demo => {
                    let start = now_micros() - chrono::Duration::minutes(15);
                    for line in crate::demo::scenario(start, 0x5eed) {
                        handle_line(line.line.as_bytes(), line.at, &mut sinks)?;
                    }
                }
                Input::File(path) if path.as_os_str() == "-" => {
                    let stdin = std::io::stdin();
                    read_lines(stdin.lock(), false, |l| {
                        handle_line(l, now_micros(), &mut sinks)
                    })?;
                }
                Input::File(path) => {
                    let file = std::fs::File::open(path).map_err(|e| {
                        anyhow::anyhow!("cannot open input {}: {e}", path.display())
                    })?;
                    read_lines(
                        std::io::BufReader::with_capacity(1 << 20, file),
                        self.follow,
                        |l| handle_line(l, now_micros(), &mut sinks),
                    )?;
                }
            }
        }
        // End of input: close every window so the last correlations fire.
        correlator.flush(&mut alerts);
        for a in alerts.drain(..) {
            sinks.alert(&a)?;
        }
        for a in matcher.check_silence(Utc::now()) {
            sinks.alert(&a)?;
        }
        sinks.flush()?;
        Ok(summary)
    }
}

/// Calls `f` for every line (without its terminator; `\r\n` too). With
/// `follow`, waits for more at the end instead of returning.
fn read_lines<R: BufRead>(
    mut reader: R,
    follow: bool,
    mut f: impl FnMut(&[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            if follow {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            return Ok(());
        }
        let mut line: &[u8] = &buf;
        if line.last() == Some(&b'\n') {
            line = &line[..line.len() - 1];
        }
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if line.is_empty() {
            continue;
        }
        f(line)?;
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_lines_strips_terminators_and_skips_blank_lines() {
        let data = b"a\r\nb\n\nc";
        let mut got = Vec::new();
        read_lines(&data[..], false, |l| {
            got.push(String::from_utf8_lossy(l).into_owned());
            Ok(())
        })
        .expect("reads");
        assert_eq!(got, ["a", "b", "c"]);
    }
}
