//! The broker is stopped for 30 s (a real `deploy/local/stack down kafka`)
//! while a file is tailed at load, then started again: every line arrives,
//! in file order, none lost. Kept in its own test binary so no other test
//! runs while the broker is down.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn broker_down_for_30s_loses_nothing_and_keeps_order() {
    let setup = Setup::new(1);
    let logs = setup.path("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let path = logs.join("app.log");
    let body = format!(
        "[heartbeat]\ninterval = \"5s\"\n[sources.app]\ntype = \"file\"\ninclude = [\"{}\"]\npoll_interval = \"20ms\"\n",
        path.display()
    );
    let proc = Proc::start(&setup, &setup.config("outage-col", &body), "c");
    let rate_per_tick = 200; // lines per 50 ms = 4k lines/s
    let total_secs = 45;
    let total = rate_per_tick * 20 * total_secs;
    let start = Instant::now();
    let mut written = 0usize;
    let mut stopped = false;
    let mut restarted = false;
    while written < total {
        let end = written + rate_per_tick;
        append_lines(
            &path,
            (written..end).map(|i| sshd_line("outagehost", &format!("f_{i}"))),
        );
        written = end;
        std::thread::sleep(Duration::from_millis(50));
        let t = start.elapsed();
        if !stopped && t >= Duration::from_secs(5) {
            qalqan_testkit::stack(&["down", "kafka"]);
            stopped = true;
            eprintln!("kafka stopped at {t:?}");
        }
        if stopped && !restarted && t >= Duration::from_secs(35) {
            // Still writing while the broker comes back.
            qalqan_testkit::stack(&["up", "kafka"]);
            restarted = true;
            eprintln!("kafka started again at {:?}", start.elapsed());
        }
    }
    if !restarted {
        qalqan_testkit::stack(&["up", "kafka"]);
    }
    let buffered_peak = proc.metric("qalqan_collector_buffer_events");
    let msgs = setup.consume(total, 600);
    let errors = proc.metric("qalqan_collector_send_errors_total");
    assert!(proc.term().success());
    let evs = events(&msgs);
    let nums: Vec<usize> = evs
        .iter()
        .map(|e| {
            s(e, "user.name")
                .trim_start_matches("f_")
                .parse()
                .expect("numbered")
        })
        .collect();
    let unique: BTreeSet<usize> = nums.iter().copied().collect();
    let missing = (0..total).filter(|i| !unique.contains(i)).count();
    let duplicates = nums.len() - unique.len();
    eprintln!(
        "outage: {} lines written, {} delivered, {duplicates} duplicates, {missing} missing, send errors {errors}, buffer at end of writing {buffered_peak}",
        total,
        nums.len()
    );
    assert_eq!(missing, 0, "lines lost during the outage");
    // Order per file: the first delivery of each line comes in file order.
    let mut seen = BTreeSet::new();
    let firsts: Vec<usize> = nums.into_iter().filter(|n| seen.insert(*n)).collect();
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "lines out of file order"
    );
    // Heartbeats kept flowing after the outage.
    let hbs = msgs
        .iter()
        .filter(|m| m.payload_json()["event"]["dataset"] == "qalqan.heartbeat")
        .count();
    assert!(hbs >= 2, "heartbeats: {hbs}");
}
