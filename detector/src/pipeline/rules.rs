//! Loading the rule set: Sigma detection rules, then the correlation rules
//! found among them, resolved against the detection rules' ids and names.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use qalqan_correlation::set::{BaseRule, CorrelationDoc, LoadOptions};
use qalqan_correlation::CorrelationSet;
use qalqan_sigma::{Engine, Pipeline};

/// Where rules and pipelines come from.
#[derive(Debug, Clone, Default)]
pub struct RuleSources {
    pub paths: Vec<PathBuf>,
    pub pipelines: Vec<PathBuf>,
    /// Values for `%name%` placeholders under `|expand`; a rule using a
    /// placeholder without values is rejected (Sigma specification).
    pub placeholders: BTreeMap<String, Vec<String>>,
}

impl RuleSources {
    /// The service's `[rules]` section: without `pipelines`, the shipped
    /// ones next to the first rule path, so SigmaHQ rules map onto the
    /// event's ECS names just as `rules check` and `standalone` map them.
    pub fn from_config(section: &crate::config::RulesSection) -> RuleSources {
        RuleSources {
            paths: section.paths.clone(),
            pipelines: section
                .pipelines
                .clone()
                .unwrap_or_else(|| shipped_pipelines(&section.paths)),
            placeholders: section.placeholders.clone(),
        }
    }
}

/// Every `*.yml`/`*.yaml` file in `<first rule path>/pipelines`, sorted:
/// the pipelines shipped with the rule pack (`rules/pipelines`).
pub fn shipped_pipelines(rule_paths: &[PathBuf]) -> Vec<PathBuf> {
    let Some(dir) = rule_paths.first().map(|r| r.join("pipelines")) else {
        return Vec::new();
    };
    // A rule pack without a pipelines directory simply has none.
    Pipeline::files_in(&dir).unwrap_or_default()
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
            let pipeline = Pipeline::from_path(p)
                .map_err(|e| anyhow::anyhow!("pipeline {}: {e}", p.display()))?;
            builder = builder.pipeline(pipeline);
        }
        for (name, values) in &sources.placeholders {
            builder = builder.placeholder(name, values.clone());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RulesSection;

    fn repo_rules() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules")
    }

    #[test]
    fn the_service_uses_the_shipped_pipelines_unless_told_otherwise() {
        let section = RulesSection {
            paths: vec![repo_rules()],
            ..RulesSection::default()
        };
        let sources = RuleSources::from_config(&section);
        let names: Vec<String> = sources
            .pipelines
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        assert_eq!(
            names,
            [
                "qalqan-linux.yml",
                "qalqan-network.yml",
                "qalqan-web.yml",
                "qalqan-windows.yml"
            ]
        );
        let none = RuleSources::from_config(&RulesSection {
            paths: vec![repo_rules()],
            pipelines: Some(vec![]),
            ..RulesSection::default()
        });
        assert!(none.pipelines.is_empty());
    }

    #[test]
    fn placeholders_from_the_config_expand_and_missing_ones_reject_the_rule() {
        let dir = std::env::temp_dir().join(format!("qalqan-placeholders-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(
            dir.join("admins.yml"),
            "title: logon from an admin workstation\nid: 5d0a3c2e-0b1f-4d55-9a53-3f6f8f1d7e01\n\
             logsource: {product: windows, service: security}\n\
             detection:\n  sel:\n    WorkstationName|expand: '%Admins_Workstations%'\n  condition: sel\n",
        )
        .expect("write rule");
        let mut sources = RuleSources {
            paths: vec![dir.clone()],
            ..RuleSources::default()
        };
        let without = LoadedRules::load(&sources).expect("loads");
        assert_eq!(without.detection_loaded, 0);
        assert!(
            without
                .problems
                .iter()
                .any(|p| p.contains("Admins_Workstations")),
            "{:?}",
            without.problems
        );
        sources.placeholders.insert(
            "Admins_Workstations".into(),
            vec!["ADM-WS01".into(), "ADM-WS02".into()],
        );
        let with = LoadedRules::load(&sources).expect("loads");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(with.problems.is_empty(), "{:?}", with.problems);
        let mut ev = qalqan_core::Event::new("4624".into(), chrono::Utc::now());
        ev.logsource = qalqan_core::LogSource::new(Some("windows"), Some("security"), None);
        ev.fields.insert("WorkstationName", "adm-ws02");
        assert_eq!(with.sigma.evaluate(&ev).len(), 1);
        ev.fields.insert("WorkstationName", "HR-WS07");
        assert!(with.sigma.evaluate(&ev).is_empty());
    }
}
