//! Hot reload of the rule set: on SIGHUP or when a rule file changes, load
//! the new set; if it cannot be used, keep the running one and say why.
//!
//! Workers never block on a reload: they check [`RuleHolder::generation`]
//! between batches and swap in the new `Arc` themselves, so a batch is
//! always evaluated with one rule set. Correlation state of unchanged rules
//! survives (`qalqan_correlation::Engine::replace_rules`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::metrics::Metrics;
use crate::pipeline::{LoadedRules, RuleSources};

/// The current rule set, shared by every worker.
pub struct RuleHolder {
    current: Mutex<Arc<LoadedRules>>,
    generation: AtomicU64,
    sources: RuleSources,
    strict: bool,
    metrics: Arc<Metrics>,
}

impl RuleHolder {
    /// Loads the initial set. With `strict`, any rejected rule is an error.
    pub fn load(
        sources: RuleSources,
        strict: bool,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<RuleHolder> {
        let rules = load_checked(&sources, strict)?;
        for p in &rules.problems {
            tracing::warn!(problem = %p, "rule rejected");
        }
        tracing::info!("{}", rules.summary());
        set_gauges(&metrics, &rules);
        Ok(RuleHolder {
            current: Mutex::new(Arc::new(rules)),
            generation: AtomicU64::new(0),
            sources,
            strict,
            metrics,
        })
    }

    /// Bumped on every successful reload.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn current(&self) -> Arc<LoadedRules> {
        Arc::clone(&self.current.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Loads the rule files again. On failure the running set stays and the
    /// error is returned (and logged, and counted).
    pub fn reload(&self) -> anyhow::Result<()> {
        match load_checked(&self.sources, self.strict) {
            Ok(rules) => {
                for p in &rules.problems {
                    tracing::warn!(problem = %p, "rule rejected in the reloaded set");
                }
                tracing::info!("rules reloaded: {}", rules.summary());
                set_gauges(&self.metrics, &rules);
                *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
                self.generation.fetch_add(1, Ordering::AcqRel);
                self.metrics.rule_reloads.with_label_values(&["ok"]).inc();
                Ok(())
            }
            Err(e) => {
                self.metrics
                    .rule_reloads
                    .with_label_values(&["failed"])
                    .inc();
                tracing::error!("rule reload failed, the running rule set stays: {e:#}");
                Err(e)
            }
        }
    }

    /// Every rule and pipeline file with its modification time and size, to
    /// notice edits without a file-system watcher.
    pub fn fingerprint(&self) -> Vec<(PathBuf, SystemTime, u64)> {
        let mut out = Vec::new();
        for p in self.sources.paths.iter().chain(&self.sources.pipelines) {
            collect(p, &mut out);
        }
        out.sort();
        out
    }
}

fn load_checked(sources: &RuleSources, strict: bool) -> anyhow::Result<LoadedRules> {
    let rules = LoadedRules::load(sources)?;
    if strict && !rules.problems.is_empty() {
        anyhow::bail!(
            "{} rules rejected (rules.strict is on):\n  {}",
            rules.problems.len(),
            rules.problems.join("\n  ")
        );
    }
    if rules.detection_loaded == 0 {
        anyhow::bail!(
            "no detection rule loaded from {:?}: check rules.paths",
            sources.paths
        );
    }
    Ok(rules)
}

fn set_gauges(metrics: &Metrics, rules: &LoadedRules) {
    metrics
        .rules_loaded
        .with_label_values(&["loaded"])
        .set((rules.detection_loaded + rules.correlation_loaded) as i64);
    metrics
        .rules_loaded
        .with_label_values(&["rejected"])
        .set(rules.problems.len() as i64);
}

fn collect(path: &Path, out: &mut Vec<(PathBuf, SystemTime, u64)>) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.is_dir() {
        if let Ok(rd) = std::fs::read_dir(path) {
            for e in rd.flatten() {
                collect(&e.path(), out);
            }
        }
    } else if matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml")
    ) {
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        out.push((path.to_owned(), mtime, meta.len()));
    }
}
