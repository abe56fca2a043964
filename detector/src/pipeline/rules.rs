//! Loading the rule set: Sigma detection rules, then the correlation rules
//! found among them, resolved against the detection rules' ids and names.

use std::path::PathBuf;
use std::sync::Arc;

use qalqan_correlation::set::{BaseRule, CorrelationDoc, LoadOptions};
use qalqan_correlation::CorrelationSet;
use qalqan_sigma::Engine;

/// Where rules and pipelines come from.
#[derive(Debug, Clone, Default)]
pub struct RuleSources {
    pub paths: Vec<PathBuf>,
    pub pipelines: Vec<PathBuf>,
}

/// A compiled, ready rule set, shared by every worker.
pub struct LoadedRules {
    pub sigma: Engine,
    pub correlations: Arc<CorrelationSet>,
    /// Every problem, one line each: file, rule and reason.
    pub problems: Vec<String>,
    pub detection_loaded: usize,
    pub correlation_loaded: usize,
}

impl LoadedRules {
    /// Loads and compiles everything; problems are collected, not fatal
    /// (the caller decides, e.g. `strict` refuses any problem). A pipeline
    /// that cannot be read is an error: rules compiled without their field
    /// mapping would silently never match.
    pub fn load(sources: &RuleSources) -> anyhow::Result<LoadedRules> {
        let mut builder = Engine::builder();
        for p in &sources.pipelines {
            let pipeline = qalqan_sigma::Pipeline::from_path(p)
                .map_err(|e| anyhow::anyhow!("pipeline {}: {e}", p.display()))?;
            builder = builder.pipeline(pipeline);
        }
        for p in &sources.paths {
            if !p.exists() {
                anyhow::bail!("rule path {} does not exist", p.display());
            }
        }
        let (sigma, report) = builder.load_paths(&sources.paths);
        let mut problems: Vec<String> = report.rejected.iter().map(|e| e.to_string()).collect();
        let base: Vec<BaseRule<'_>> = sigma
            .rules()
            .iter()
            .filter_map(|r| {
                Some(BaseRule {
                    id: r.meta.id.as_deref()?,
                    name: r.meta.name.as_deref(),
                })
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
        let corr = CorrelationSet::load(&docs, &base, &LoadOptions::default());
        problems.extend(
            corr.errors
                .iter()
                .map(|e| format!("{}: rule {}: {}", e.file, e.rule, e.reason)),
        );
        let correlation_loaded = corr.set.rules().len();
        Ok(LoadedRules {
            detection_loaded: report.loaded,
            correlation_loaded,
            correlations: Arc::new(corr.set),
            sigma,
            problems,
        })
    }

    /// One line for logs and the terminal.
    pub fn summary(&self) -> String {
        format!(
            "{} detection rules, {} correlation rules loaded; {} rejected",
            self.detection_loaded,
            self.correlation_loaded,
            self.problems.len()
        )
    }
}
