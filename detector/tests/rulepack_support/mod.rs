//! Runs the project's rule pack (`rules/`) over raw lines the way the
//! detector does: the collector's parsers, the Sigma engine with the
//! shipped pipelines, correlation signals, and the correlation engine in
//! event time. Shared by the rule-pack acceptance tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use qalqan_core::alert::event_id;
use qalqan_core::parse::{ParseOptions, Parser};
use qalqan_core::{Alert, Event};
use qalqan_correlation::{
    BaseRule, CorrelationDoc, CorrelationSet, Engine as CorrelationEngine, EngineConfig,
    LoadOptions, MatchedEvent, Output,
};
use qalqan_sigma::{Engine, Pipeline};

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file of the shared test data (`../shared/data`, or `QALQAN_SHARED_DATA`).
pub fn shared_data(rel: &str) -> PathBuf {
    let root = std::env::var_os("QALQAN_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/data"));
    let p = root.join(rel);
    assert!(
        p.exists(),
        "test data missing: {} (set QALQAN_SHARED_DATA to the directory holding loghub/)",
        p.display()
    );
    p
}

/// The pack, loaded with the shipped pipelines; panics on any rejected rule.
pub struct Pack {
    pub sigma: Engine,
    pub correlations: Arc<CorrelationSet>,
}

impl Pack {
    pub fn load() -> Pack {
        let rules = workspace().join("rules");
        let mut builder = Engine::builder();
        let mut pipelines: Vec<PathBuf> = std::fs::read_dir(rules.join("pipelines"))
            .expect("rules/pipelines exists")
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "yml"))
            .collect();
        pipelines.sort();
        for p in &pipelines {
            builder = builder.pipeline(Pipeline::from_path(p).expect("shipped pipeline loads"));
        }
        let (sigma, report) = builder.load_paths(&[&rules]);
        assert!(
            report.rejected.is_empty(),
            "rejected rules: {:#?}",
            report.rejected
        );
        let base: Vec<BaseRule<'_>> = sigma
            .rules()
            .iter()
            .map(|r| BaseRule {
                id: r.meta.id.as_deref().expect("every pack rule has an id"),
                name: r.meta.name.as_deref(),
            })
            .collect();
        let docs: Vec<CorrelationDoc<'_>> = sigma
            .correlations()
            .iter()
            .map(|c| CorrelationDoc {
                path: c.path(),
                index: c.index(),
                doc: &c.doc,
            })
            .collect();
        let loaded = CorrelationSet::load(&docs, &base, &LoadOptions::default());
        assert!(
            loaded.errors.is_empty(),
            "rejected correlations: {:#?}",
            loaded.errors
        );
        assert!(
            !loaded.set.rules().is_empty(),
            "the pack has no correlation rules"
        );
        Pack {
            sigma,
            correlations: Arc::new(loaded.set),
        }
    }

    /// Runs `events` (in the given order) through both stages for one
    /// agency and returns every alert: single-event alerts of the rules that
    /// alert on their own, then the correlation alerts.
    pub fn run(&self, agency: &str, events: &[Event]) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let mut engine =
            CorrelationEngine::new(Arc::clone(&self.correlations), EngineConfig::default())
                .expect("the correlation engine accepts the pack");
        let mut out = Output::default();
        let mut signals = Vec::new();
        for (ordinal, ev) in events.iter().enumerate() {
            let ordinal = ordinal as u64;
            let id = event_id(&[ev.original.as_bytes(), &ordinal.to_be_bytes()]);
            let mut correlated: Vec<&str> = Vec::new();
            for idx in self.sigma.evaluate(ev) {
                let rule = self.sigma.rule(idx);
                let rule_id = rule.meta.id.as_deref().expect("every pack rule has an id");
                if self.correlations.is_referenced(rule_id) {
                    correlated.push(rule_id);
                }
                if self.correlations.emits_own_alerts(rule_id) {
                    let mut a = Alert::new(rule.rule_info(), agency, ev.timestamp, ev.timestamp);
                    a.entities.absorb(ev);
                    a.evidence.push(qalqan_core::alert::Evidence {
                        event_id: id.clone(),
                        timestamp: ev.timestamp,
                        original: ev.original.clone(),
                    });
                    alerts.push(a);
                }
            }
            if correlated.is_empty() {
                continue;
            }
            signals.clear();
            self.correlations.signals(
                MatchedEvent {
                    event: ev,
                    agency,
                    event_id: &id,
                    ordinal,
                },
                &correlated,
                &mut signals,
            );
            for s in signals.drain(..) {
                engine.process(0, &s, &mut out);
            }
        }
        engine.flush(&mut out);
        assert!(out.late.is_empty(), "late signals: {:?}", out.late.len());
        assert!(
            out.rejected.is_empty(),
            "rejected signals: {:?}",
            out.rejected.len()
        );
        alerts.extend(out.alerts);
        alerts
    }
}

/// Parses raw lines, each received at the given time.
pub fn parse_lines<'a>(
    options: ParseOptions,
    lines: impl IntoIterator<Item = (&'a str, DateTime<Utc>)>,
) -> Vec<Event> {
    let parser = Parser::new(options);
    lines
        .into_iter()
        .map(|(line, received)| parser.parse(line.as_bytes(), received).event)
        .collect()
}

/// Alerts counted by (rule title, value of `group_field` or the alert's
/// first source address).
pub fn by_rule_and_source(alerts: &[Alert]) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for a in alerts {
        let source = a
            .group
            .get("source.ip")
            .cloned()
            .or_else(|| a.entities.source_ips.first().cloned())
            .unwrap_or_default();
        *m.entry((a.rule.title.clone(), source)).or_insert(0) += 1;
    }
    m
}
