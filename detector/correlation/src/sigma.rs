//! Glue to the Sigma engine (qalqan-sigma): load the correlation documents
//! it found against the detection rules it compiled, with correlation field
//! names mapped by the same processing pipelines.

use std::collections::HashMap;
use std::sync::Arc;

use qalqan_sigma::condition::Cond;
use qalqan_sigma::pipeline::{self, Pipeline};
use qalqan_sigma::rule::{
    Detection, DetectionItem, LogsourceSpec, RawValue, RuleMeta, Search, SigmaRule, SourceRef,
};

use crate::set::{BaseRule, CorrelationDoc, CorrelationSet, FieldMapping, LoadOptions, LoadReport};

/// The id stage 1 uses for a detection rule (its `id`, or its title when it
/// has none — as `RuleEntry::rule_info` does), and the id to pass as
/// "matched" to [`CorrelationSet::signals`].
pub fn rule_id(entry: &qalqan_sigma::RuleEntry) -> String {
    entry.rule_info().id
}

/// Loads the Sigma engine's correlation documents. `pipelines` must be the
/// ones the engine was built with: a correlation's `group-by` and `field`
/// names are mapped through them for each referenced rule, exactly as that
/// rule's own detection fields were.
pub fn load_from_sigma(
    engine: &qalqan_sigma::Engine,
    pipelines: &[Pipeline],
    options: &LoadOptions,
) -> LoadReport {
    let ids: Vec<String> = engine.rules().iter().map(rule_id).collect();
    let base: Vec<BaseRule<'_>> = engine
        .rules()
        .iter()
        .zip(&ids)
        .map(|(r, id)| BaseRule {
            id,
            name: r.meta.name.as_deref(),
        })
        .collect();
    let docs: Vec<CorrelationDoc<'_>> = engine
        .correlations()
        .iter()
        .map(|c| CorrelationDoc {
            path: c.path(),
            index: c.index(),
            doc: &c.doc,
        })
        .collect();
    let mut sorted = pipelines.to_vec();
    pipeline::sort_pipelines(&mut sorted);
    let mapping = PipelineFields {
        pipelines: sorted,
        rules: engine
            .rules()
            .iter()
            .zip(&ids)
            .map(|(r, id)| {
                (
                    id.clone(),
                    (
                        r.meta.clone(),
                        r.original_logsource.clone(),
                        r.source.clone(),
                    ),
                )
            })
            .collect(),
    };
    let options = LoadOptions {
        field_mapping: Some(Arc::new(mapping)),
        ..options.clone()
    };
    CorrelationSet::load(&docs, &base, &options)
}

/// Field mapping by running the pipelines over a one-item stand-in of the
/// referenced rule (its metadata and logsource as written, one detection
/// item on the field), so every gate — logsource, tags, applied items,
/// field-name conditions — decides as it did for the rule itself. (A gate
/// on the rule's other detection items sees only the stand-in's.)
struct PipelineFields {
    pipelines: Vec<Pipeline>,
    rules: HashMap<String, (RuleMeta, LogsourceSpec, SourceRef)>,
}

impl FieldMapping for PipelineFields {
    fn event_field(&self, base_rule_id: &str, field: &str) -> Result<String, String> {
        let Some((meta, logsource, source)) = self.rules.get(base_rule_id) else {
            return Ok(field.to_owned());
        };
        let mut rule = SigmaRule {
            source: source.clone(),
            meta: meta.clone(),
            logsource: logsource.clone(),
            detection: Detection {
                searches: vec![(
                    "correlation_field".to_owned(),
                    Search::Item(DetectionItem {
                        field: Some(field.to_owned()),
                        modifiers: Vec::new(),
                        values: vec![RawValue::Str("x".to_owned())],
                    }),
                )],
                conditions: vec![Cond::Ident("correlation_field".to_owned())],
            },
        };
        pipeline::apply(&self.pipelines, &mut rule)?;
        let mapped: Vec<String> = rule
            .detection
            .search("correlation_field")
            .map(|s| s.items().iter().filter_map(|i| i.field.clone()).collect())
            .unwrap_or_default();
        match mapped.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err("the processing pipelines drop it".to_owned()),
            many => Err(format!(
                "the processing pipelines map it to several event fields ({}); a \
                 correlation needs exactly one",
                many.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "
title: SSH failed password
id: ssh-failed
name: ssh_failed
logsource: {product: linux, service: sshd}
detection:
    selection: {event.outcome: failure}
    condition: selection
---
title: SSH brute force
id: ssh-bf
correlation:
    type: event_count
    rules: [ssh_failed]
    group-by: [src_ip]
    timespan: 5m
    condition: {gte: 10}
";

    const PIPELINE: &str = "
name: test
priority: 10
transformations:
  - id: sshd_fields
    type: field_name_mapping
    mapping:
      src_ip: source.ip
      user: [user.name, user.target.name]
    rule_conditions: [{type: logsource, product: linux, service: sshd}]
";

    #[test]
    fn correlation_fields_follow_the_rule_pipelines() {
        let pipeline = Pipeline::from_yaml(PIPELINE, "test.yml").expect("pipeline");
        let (engine, report) = qalqan_sigma::Engine::builder()
            .pipeline(pipeline.clone())
            .load_str("rules.yml", RULES);
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        let loaded = load_from_sigma(
            &engine,
            std::slice::from_ref(&pipeline),
            &LoadOptions::default(),
        );
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let set = loaded.set;
        assert!(set.is_referenced("ssh-failed"));
        assert!(!set.emits_own_alerts("ssh-failed"));
        let mut ev = qalqan_core::Event::new("Failed password".into(), chrono::Utc::now());
        ev.fields.insert("source.ip", "203.0.113.9");
        let mut out = Vec::new();
        set.signals(
            crate::MatchedEvent {
                event: &ev,
                agency: "a",
                event_id: "e",
                ordinal: 1,
            },
            &["ssh-failed"],
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].group,
            vec!["203.0.113.9"],
            "src_ip was mapped to source.ip"
        );

        // A field the pipelines map to two event fields cannot be grouped on.
        let (engine, _) = qalqan_sigma::Engine::builder()
            .pipeline(pipeline.clone())
            .load_str("rules.yml", &RULES.replace("[src_ip]", "[user]"));
        let loaded = load_from_sigma(&engine, &[pipeline], &LoadOptions::default());
        assert_eq!(loaded.errors.len(), 1);
        assert!(
            loaded.errors[0].reason.contains("several event fields"),
            "{}",
            loaded.errors[0]
        );
    }
}
