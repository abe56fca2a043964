//! Acceptance: the rule pack on the loghub OpenSSH sample (2,000 lines of a
//! real Internet-facing server, 10 Dec 2015, 06:55–11:04).
//!
//! The expected alerts were worked out independently of the engines, from
//! the raw log and the rules' thresholds (the derivation is in
//! rules/README.md, "Acceptance on the loghub sample"):
//!
//! * 524 failed logins (`Failed <method> for …` lines, a `message repeated`
//!   line counting once) from 24 addresses. The busiest five-minute
//!   windows per address: 183.62.140.253 146, 187.141.143.180 56,
//!   103.99.0.122 30, 112.95.230.3 26, 5.188.10.180 20, 185.190.58.151 17,
//!   then 123.235.32.19 with 7 — the brute-force threshold (10 in 5 min)
//!   separates the first six from the rest with a wide margin.
//! * Distinct accounts per address in any ten minutes: 187.141.143.180 28,
//!   103.99.0.122 19, 183.62.140.253 10, 5.188.10.180 7, then
//!   185.190.58.151 with 4 — the spraying threshold (6) takes the first four.
//! * Alerts per address: one per clock hour with a firing (suppression
//!   `first: 1, for: 1h`). 183.62.140.253 attacks across 11:00 (10:54–11:04)
//!   and 103.99.0.122 comes back two hours later (09:11–09:12 and
//!   11:03–11:04): two brute-force alerts each, and 103.99.0.122 two
//!   spraying alerts (12 accounts in its second burst). 183.62.140.253
//!   tries ten accounts by 10:56 but only root after 11:00, so it has one
//!   spraying alert.
//! * One accepted login (fztu from 119.137.62.142), with no failure from
//!   that address before it: the success-after-failures rule stays silent.
//!
//! The test runs the whole pack, so "no others" covers every rule in it.

mod rulepack_support;

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use qalqan_core::parse::ParseOptions;
use rulepack_support::{by_rule_and_source, parse_lines, shared_data, Pack};

const BRUTE_FORCE: &str = "SSH brute force from one source";
const SPRAYING: &str = "SSH password spraying from one source";
const SUCCESS_AFTER_FAILURES: &str = "SSH login succeeded after a burst of failures";

#[test]
fn the_pack_fires_for_the_right_addresses_on_the_loghub_sample() {
    let text = std::fs::read_to_string(shared_data("loghub/OpenSSH_2k.log"))
        .expect("read the loghub sample");
    let received = Utc
        .with_ymd_and_hms(2015, 12, 11, 0, 0, 0)
        .single()
        .expect("valid time");
    let options = ParseOptions {
        rfc3164_year: Some(2015),
        ..ParseOptions::default()
    };
    let events = parse_lines(options, text.lines().map(|l| (l, received)));
    assert_eq!(events.len(), 2000);

    // The parsers agree with the independent count of failed logins.
    let failures = events
        .iter()
        .filter(|e| {
            e.get_str("event.action") == Some("ssh_login")
                && e.get_str("event.outcome") == Some("failure")
        })
        .count();
    assert_eq!(failures, 524, "failed-login events from the parsers");

    let pack = Pack::load();
    let alerts = pack.run("labsz", &events);
    let got = by_rule_and_source(&alerts);

    let mut want: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (ip, n) in [
        ("183.62.140.253", 2),
        ("187.141.143.180", 1),
        ("103.99.0.122", 2),
        ("112.95.230.3", 1),
        ("5.188.10.180", 1),
        ("185.190.58.151", 1),
    ] {
        want.insert((BRUTE_FORCE.into(), ip.into()), n);
    }
    for (ip, n) in [
        ("187.141.143.180", 1),
        ("103.99.0.122", 2),
        ("183.62.140.253", 1),
        ("5.188.10.180", 1),
    ] {
        want.insert((SPRAYING.into(), ip.into()), n);
    }
    assert_eq!(
        got, want,
        "alerts by (rule, source address) over the whole pack"
    );
    assert!(
        !got.keys().any(|(rule, _)| rule == SUCCESS_AFTER_FAILURES),
        "no address logged in after failing"
    );

    // Each alert fired at its threshold, early (the window was still open).
    for a in &alerts {
        match a.rule.title.as_str() {
            BRUTE_FORCE => assert_eq!(a.count, 10, "{a:?}"),
            SPRAYING => assert_eq!(a.value, Some(6.0), "{a:?}"),
            other => panic!("unexpected rule {other}"),
        }
        assert_eq!(a.rule.author, "qalqan project");
        assert!(a.evidence.len() == 2, "first and last line: {a:?}");
    }
    // The second-hour alert of a continuing attack carries what was silenced.
    let late_183: Vec<_> = alerts
        .iter()
        .filter(|a| {
            a.rule.title == BRUTE_FORCE
                && a.group.get("source.ip").map(String::as_str) == Some("183.62.140.253")
        })
        .map(|a| a.suppressed)
        .collect();
    assert_eq!(late_183.iter().sum::<u64>(), 1, "{late_183:?}");
}
