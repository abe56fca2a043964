//! Acceptance: the demo scenario (detector/src/demo.rs — an e-government
//! portal scanned, brute-forced, broken into and escalated on) makes the
//! rule pack fire every step of the attack, and the citizens' background
//! traffic (198.51.100.x) and the admins' routine work fire nothing.

mod rulepack_support;

use std::collections::{BTreeMap, BTreeSet};

use chrono::DateTime;
use qalqan_core::parse::ParseOptions;
use qalqan_core::Alert;
use qalqan_detector::demo::{scenario, ATTACKER_IP, SPRAYER_IP};
use rulepack_support::{by_rule_and_source, parse_lines, Pack};

/// Every rule title the scenario must fire, and nothing else.
const EXPECTED: &[&str] = &[
    // 1. reconnaissance
    "Port scan from one source",
    "Vulnerability scanner activity from one source",
    "Probe for exposed secrets or admin tools",
    "Burst of HTTP client errors from one source",
    // 2. web attacks
    "SQL injection attempt in a web request",
    "Cross-site scripting attempt in a web request",
    "Path traversal attempt in a web request",
    "Remote command execution probe in a web request",
    "Server-side template injection probe in a web request",
    // 3. password attacks
    "SSH password spraying from one source",
    "SSH brute force from one source",
    "Web login brute force from one source",
    // 4. break-in
    "SSH login succeeded after a burst of failures",
    // 5. escalation and persistence
    "sudo authentication failure",
    "Local account created",
    "Privileged group membership granted through sudo",
    "User added to a privileged group",
    "New account made privileged shortly after creation",
    "Security or audit tool disabled",
    "System logs cleared or truncated",
];

fn run(seed: u64) -> Vec<Alert> {
    let start = DateTime::from_timestamp(1_790_000_000, 0).expect("valid start");
    let lines = scenario(start, seed);
    let options = ParseOptions {
        web_product: Some("nginx".into()),
        ..ParseOptions::default()
    };
    // Each line is received when it is written, as a collector would.
    let events = parse_lines(options, lines.iter().map(|l| (l.line.as_str(), l.at)));
    for (l, e) in lines.iter().zip(&events) {
        assert_eq!(e.timestamp, l.at, "event time of {:?}", l.line);
    }
    Pack::load().run("demo", &events)
}

#[test]
fn the_demo_attack_fires_every_expected_rule_and_nothing_else() {
    let alerts = run(7);
    let fired: BTreeSet<&str> = alerts.iter().map(|a| a.rule.title.as_str()).collect();
    let want: BTreeSet<&str> = EXPECTED.iter().copied().collect();
    assert_eq!(fired, want, "rule titles fired by the demo");

    // Who each correlation fired for.
    let per = by_rule_and_source(&alerts);
    let expect_corr: BTreeMap<(String, String), usize> = [
        ("Port scan from one source", ATTACKER_IP),
        (
            "Vulnerability scanner activity from one source",
            ATTACKER_IP,
        ),
        ("Burst of HTTP client errors from one source", ATTACKER_IP),
        ("SSH password spraying from one source", SPRAYER_IP),
        ("SSH brute force from one source", ATTACKER_IP),
        // The sprayer's fifteen failures in 13 s are a brute force too.
        ("SSH brute force from one source", SPRAYER_IP),
        ("Web login brute force from one source", ATTACKER_IP),
        ("SSH login succeeded after a burst of failures", ATTACKER_IP),
    ]
    .into_iter()
    .map(|(t, ip)| ((t.to_owned(), ip.to_owned()), 1))
    .collect();
    for (key, n) in &expect_corr {
        assert_eq!(per.get(key), Some(n), "{key:?} in {per:#?}");
    }
    let backdoor: Vec<_> = alerts
        .iter()
        .filter(|a| a.rule.title == "New account made privileged shortly after creation")
        .collect();
    assert_eq!(backdoor.len(), 1);
    assert_eq!(
        backdoor[0].group.get("user.name").map(String::as_str),
        Some("sysupdate")
    );
    assert_eq!(
        backdoor[0].group.get("host.name").map(String::as_str),
        Some("egov-app1")
    );

    // Every web and network alert points at one of the two attackers.
    for a in &alerts {
        for ip in &a.entities.source_ips {
            assert!(
                ip == ATTACKER_IP || ip == SPRAYER_IP,
                "{} fired for {ip}",
                a.rule.title
            );
        }
    }
}

#[test]
fn citizens_and_admins_fire_nothing_whatever_the_seed() {
    for seed in [1, 7, 42, 1234, 99_991] {
        for a in run(seed) {
            let innocent = a
                .entities
                .source_ips
                .iter()
                .any(|ip| ip.starts_with("198.51.100."))
                || a.evidence.iter().any(|e| {
                    e.original.contains("198.51.100.")
                        || e.original.contains("for deploy from")
                        || e.original.contains("systemctl restart portal")
                });
            assert!(
                !innocent,
                "seed {seed}: {} fired on background traffic: {a:?}",
                a.rule.title
            );
        }
    }
}
