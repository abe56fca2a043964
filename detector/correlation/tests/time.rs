//! Event time: lateness, out-of-order input, idle inputs, and the
//! determinism of alerts under reordering.

mod common;

use std::time::{Duration, Instant};

use common::*;
use qalqan_correlation::{Engine, EngineConfig, Output};

#[test]
fn same_alerts_in_any_order_within_lateness() {
    let set = set(MIXED, MIXED_BASE);
    let lateness = 5;
    let cfg = cfg_lateness(lateness);
    let ordered = workload(7, 3000);
    let reference = alerts(&set, cfg.clone(), ordered.clone());
    // The workload must exercise every rule, or the comparison proves little.
    for id in ["bf", "spray", "saf", "avg", "quiet", "trio"] {
        assert!(
            reference.iter().any(|a| a.rule.id == id),
            "rule {id} never fired in the reference run"
        );
    }
    let reference = sorted(reference);
    for seed in [1, 2, 3, 4, 5] {
        let shuffled = disorder(ordered.clone(), lateness as i64 * 1_000_000, seed);
        assert_ne!(shuffled, ordered, "the shuffle must reorder");
        let mut e = engine(&set, cfg.clone());
        let out = run(&mut e, shuffled);
        assert!(out.late.is_empty(), "seed {seed}: {} late", out.late.len());
        assert_eq!(sorted(out.alerts), reference, "seed {seed}");
    }
}

#[test]
fn far_out_of_order_input_gives_the_same_alerts() {
    // Displacements of hundreds of positions (a lagging partition, a
    // replay) take the engine's stray-signal path; the alerts must not change.
    let set = set(MIXED, MIXED_BASE);
    let ordered = workload(7, 3000);
    for lateness in [60, 600] {
        let cfg = cfg_lateness(lateness);
        let reference = sorted(alerts(&set, cfg.clone(), ordered.clone()));
        assert!(!reference.is_empty());
        for seed in [11, 12, 13] {
            let shuffled = disorder(ordered.clone(), lateness as i64 * 1_000_000, seed);
            let far = shuffled
                .iter()
                .zip(&ordered)
                .filter(|(a, b)| a.event_id != b.event_id)
                .count();
            assert!(far > 1000, "the shuffle must move most signals: {far}");
            let mut e = engine(&set, cfg.clone());
            let out = run(&mut e, shuffled);
            assert!(
                out.late.is_empty(),
                "lateness {lateness} seed {seed}: {} late",
                out.late.len()
            );
            assert_eq!(
                sorted(out.alerts),
                reference,
                "lateness {lateness} seed {seed}"
            );
        }
    }
}

#[test]
fn disorder_beyond_lateness_is_reported_not_lost() {
    let set = set(MIXED, MIXED_BASE);
    let cfg = cfg_lateness(2);
    let mut e = engine(&set, cfg);
    let mut out = Output::default();
    for t in [10.0, 11.0, 20.0] {
        e.process(0, &sig("bf", "r1", &["A"], t).build(), &mut out);
    }
    // Settled horizon is now 20 − 2 = 18 s; an event from 5 s is late.
    let late = sig("bf", "r1", &["A"], 5.0).build();
    e.process(0, &late, &mut out);
    assert_eq!(out.late.len(), 1);
    assert_eq!(out.late[0].signal, late);
    assert_eq!(out.late[0].horizon, at(18.0));
    // Within lateness (19 s > 18 s) is fine.
    e.process(0, &sig("bf", "r1", &["A"], 19.0).build(), &mut out);
    assert_eq!(out.late.len(), 1);
    let m = e.metrics();
    let bf = m.rules.iter().find(|r| r.rule_id == "bf").expect("bf");
    assert_eq!(bf.counters.late_events, 1);
    let input = &m.inputs[0];
    assert_eq!((input.partition, input.agency.as_str()), (0, "mof"));
    assert_eq!(input.watermark, Some(at(20.0)));
    assert_eq!(input.settled, Some(at(18.0)));
}

#[test]
fn each_agency_has_its_own_watermark() {
    let set = set(MIXED, MIXED_BASE);
    let mut e = engine(&set, cfg_lateness(1));
    let mut out = Output::default();
    e.process(0, &sig("bf", "r1", &["A"], 3600.0).build(), &mut out);
    // An agency whose collector was offline for an hour backfills: not late.
    e.process(
        0,
        &sig("bf", "r1", &["A"], 10.0).agency("moh").build(),
        &mut out,
    );
    assert!(out.late.is_empty());
    // The same partition and agency would have been.
    e.process(0, &sig("bf", "r1", &["A"], 10.0).build(), &mut out);
    assert_eq!(out.late.len(), 1);
}

/// An engine (lateness 1 s, idle after 2 s) that has one "quiet" signal
/// at 30 s on partition 0 and a first tick at the returned instant.
/// "quiet" (lte 2 per aligned minute) can only be judged when the minute
/// is over, so the minute's alert shows when the watermark passes 61 s.
fn quiet_signal_at_30s() -> (Engine, Output, Instant) {
    let set = set(MIXED, MIXED_BASE);
    let cfg = EngineConfig {
        allowed_lateness: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        ..EngineConfig::default()
    };
    let mut e = engine(&set, cfg);
    let mut out = Output::default();
    let now = Instant::now();
    e.process(0, &sig("quiet", "r2", &["A"], 30.0).build(), &mut out);
    e.tick(now, &mut out);
    (e, out, now)
}

#[test]
fn idle_inputs_advance_with_the_wall_clock() {
    let (mut e, mut out, now) = quiet_signal_at_30s();
    e.tick(now + Duration::from_secs(1), &mut out);
    assert!(out.alerts.is_empty(), "not idle long enough");
    e.tick(now + Duration::from_secs(20), &mut out);
    assert!(
        out.alerts.is_empty(),
        "watermark at 50 s: the minute is not over"
    );
    e.tick(now + Duration::from_secs(32), &mut out);
    assert_eq!(out.alerts.len(), 1, "watermark at 62 s closes [0, 60)");
    assert_eq!(out.alerts[0].rule.id, "quiet");
    // A signal behind the advanced horizon is late, and reported.
    e.process(0, &sig("quiet", "r2", &["A"], 40.0).build(), &mut out);
    assert_eq!(out.late.len(), 1);
}

#[test]
fn a_held_back_partition_does_not_advance_while_held_nor_jump_after() {
    let (mut e, mut out, now) = quiet_signal_at_30s();
    // Its next signals wait behind an open transaction for 40 s: without
    // the hold, the wall clock would close the minute and make them late.
    e.hold_back(0, true);
    e.tick(now + Duration::from_secs(40), &mut out);
    assert!(out.alerts.is_empty(), "held: the watermark stays at 30 s");
    e.hold_back(0, false);
    // Released: idle time counts from the last tick, not from before the
    // hold, so the waiting signals are read in time.
    e.tick(now + Duration::from_secs(41), &mut out);
    e.process(0, &sig("quiet", "r2", &["A"], 35.0).build(), &mut out);
    assert!(out.late.is_empty(), "{:?}", out.late);
    assert!(out.alerts.is_empty());
    // Idle from here on, the minute closes with both signals in it.
    e.tick(now + Duration::from_secs(42), &mut out);
    e.tick(now + Duration::from_secs(70), &mut out);
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].count, 2);
}

#[test]
fn alerts_become_final_after_the_lateness() {
    let set = set(MIXED, MIXED_BASE);
    let mut e = engine(&set, cfg_lateness(3));
    let mut out = Output::default();
    for t in 1..=8 {
        e.process(0, &sig("bf", "r1", &["A"], f64::from(t)).build(), &mut out);
    }
    assert!(
        out.alerts.is_empty(),
        "the 8th event (8 s) waits for the watermark to reach 11 s"
    );
    e.process(0, &sig("bf", "r1", &["B"], 10.9).build(), &mut out);
    assert!(out.alerts.is_empty());
    e.process(0, &sig("bf", "r1", &["B"], 11.1).build(), &mut out);
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].count, 8);
}

#[test]
fn a_full_reorder_buffer_settles_early_and_counts_it() {
    let set = set(MIXED, MIXED_BASE);
    let cfg = EngineConfig {
        allowed_lateness: Duration::from_secs(3600),
        max_pending_per_input: 10,
        ..EngineConfig::default()
    };
    let mut e = engine(&set, cfg);
    let mut out = Output::default();
    for t in 0..25 {
        e.process(0, &sig("bf", "r1", &["A"], f64::from(t)).build(), &mut out);
    }
    let m = e.metrics();
    assert!(m.pending_total <= 10, "{}", m.pending_total);
    assert_eq!(m.forced_settles, 15);
    assert_eq!(
        out.alerts.len(),
        1,
        "the 8 events it takes were processed early"
    );
}
