//! State rebuild after a restart: replaying the recent input with the
//! checkpoint gives exactly the alerts an uninterrupted run gives, none
//! twice.

mod common;

use std::collections::HashSet;

use common::*;
use qalqan_correlation::{Output, RebuildPlan, Signal};

const LATENESS: u64 = 5;

/// The arrival order a Kafka partition would have: event time plus jitter.
fn stream() -> Vec<Signal> {
    disorder(
        workload_over(11, 8000, 1800),
        LATENESS as i64 * 1_000_000,
        99,
    )
}

#[test]
fn replay_from_a_checkpoint_neither_loses_nor_repeats() {
    let set = set(MIXED, MIXED_BASE);
    let cfg = cfg_lateness(LATENESS);
    let stream = stream();
    let reference = {
        let mut e = engine(&set, cfg.clone());
        let out = run(&mut e, stream.clone());
        assert!(out.late.is_empty());
        out.alerts
    };
    let reference_ids: HashSet<String> = reference.iter().map(|a| a.id.clone()).collect();
    assert_eq!(reference_ids.len(), reference.len(), "ids are unique");
    assert!(
        e_has_suppressed(&reference),
        "the workload exercises suppression"
    );

    let n = stream.len();
    for cut in [n / 2, 2 * n / 3, 5 * n / 6] {
        // First owner: processes a prefix, commits a checkpoint, dies.
        let mut first = engine(&set, cfg.clone());
        let mut out1 = Output::default();
        for s in &stream[..cut] {
            first.process(0, s, &mut out1);
        }
        let checkpoint = first.checkpoint(0);
        let metadata = checkpoint.to_metadata();
        let lookback = first.replay_lookback();
        drop(first);

        // Second owner: seeks back by time, replays, continues.
        let checkpoint = qalqan_correlation::Checkpoint::from_metadata(&metadata).expect("reads");
        let start = checkpoint.earliest().expect("a horizon") - lookback;
        let from = stream
            .iter()
            .position(|s| s.timestamp >= start)
            .unwrap_or(0);
        assert!(
            from > 0,
            "cut {cut}: the replay must not start at the beginning"
        );
        let mut second = engine(&set, cfg.clone());
        second.begin_rebuild(0, RebuildPlan::from_checkpoint(&checkpoint));
        let out2 = run(&mut second, stream[from..].iter().cloned());
        assert!(out2.late.is_empty());

        let ids1: HashSet<String> = out1.alerts.iter().map(|a| a.id.clone()).collect();
        let ids2: HashSet<String> = out2.alerts.iter().map(|a| a.id.clone()).collect();
        assert!(
            ids1.is_disjoint(&ids2),
            "cut {cut}: an alert was emitted twice"
        );
        let mut combined = out1.alerts.clone();
        combined.extend(out2.alerts.clone());
        let got: HashSet<String> = sorted(combined).into_iter().collect();
        let want: HashSet<String> = sorted(reference.clone()).into_iter().collect();
        let extra: Vec<_> = got.difference(&want).take(3).collect();
        let missing: Vec<_> = want.difference(&got).take(3).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "cut {cut}: extra {extra:#?}\nmissing {missing:#?}"
        );
        let skipped: u64 = second
            .metrics()
            .rules
            .iter()
            .map(|r| r.counters.rebuild_skipped)
            .sum();
        assert!(skipped > 0, "cut {cut}: the replay recomputed old alerts");
    }
}

fn e_has_suppressed(alerts: &[qalqan_core::Alert]) -> bool {
    alerts.iter().any(|a| a.suppressed > 0)
}

#[test]
fn without_a_plan_a_replay_repeats_ids_which_makes_duplicates_checkable() {
    let set = set(MIXED, MIXED_BASE);
    let cfg = cfg_lateness(LATENESS);
    let stream = stream();
    let mut first = engine(&set, cfg.clone());
    let mut out1 = Output::default();
    for s in &stream[..stream.len() / 2] {
        first.process(0, s, &mut out1);
    }
    let mut second = engine(&set, cfg);
    let out2 = run(&mut second, stream[stream.len() / 3..].iter().cloned());
    let ids1: HashSet<String> = out1.alerts.iter().map(|a| a.id.clone()).collect();
    let repeated = out2.alerts.iter().filter(|a| ids1.contains(&a.id)).count();
    assert!(repeated > 0, "the same windows get the same ids");
}

#[test]
fn a_list_of_emitted_ids_also_withholds_alerts() {
    let set = set(MIXED, MIXED_BASE);
    let cfg = cfg_lateness(LATENESS);
    let stream = stream();
    let mut e = engine(&set, cfg.clone());
    let all = run(&mut e, stream.clone()).alerts;
    let half: HashSet<String> = all
        .iter()
        .take(all.len() / 2)
        .map(|a| a.id.clone())
        .collect();
    let mut again = engine(&set, cfg);
    again.begin_rebuild(
        0,
        RebuildPlan {
            emitted: half.clone(),
            ..RebuildPlan::default()
        },
    );
    let rest = run(&mut again, stream).alerts;
    assert_eq!(rest.len(), all.len() - half.len());
    assert!(rest.iter().all(|a| !half.contains(&a.id)));
}
