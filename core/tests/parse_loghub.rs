//! The loghub OpenSSH sample (2,000 real sshd lines from an exposed server)
//! must parse completely, with a known field coverage. The numbers pinned
//! here were measured once and are checked exactly, so any parser change
//! that loses (or gains) a field shows up as a diff to review.
//!
//! Data: `../shared/data/loghub/OpenSSH_2k.log` relative to the workspace
//! root, or `$QALQAN_SHARED_DATA/loghub/OpenSSH_2k.log`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use qalqan_core::event::tags;
use qalqan_core::parse::{ParseOptions, Parser};

fn shared_data() -> PathBuf {
    match std::env::var_os("QALQAN_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    }
}

fn loghub_lines() -> Vec<String> {
    let path = shared_data().join("loghub/OpenSSH_2k.log");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "missing test data {}: {e}. The loghub OpenSSH sample is expected under \
             ../shared/data relative to the workspace root; set QALQAN_SHARED_DATA to \
             the directory that holds loghub/OpenSSH_2k.log",
            path.display()
        )
    });
    text.lines().map(str::to_owned).collect()
}

#[test]
fn loghub_openssh_sample_parses_with_known_coverage() {
    let lines = loghub_lines();
    assert_eq!(lines.len(), 2000, "the sample has 2,000 lines");
    let parser = Parser::new(ParseOptions {
        rfc3164_year: Some(2015),
        ..ParseOptions::default()
    });
    let received = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("time");

    let mut by_parser: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_action: BTreeMap<String, usize> = BTreeMap::new();
    let (mut with_action, mut with_source_ip, mut with_user, mut with_outcome) = (0, 0, 0, 0);
    let mut unclassified = Vec::new();
    for line in &lines {
        let parsed = parser.parse(line.as_bytes(), received);
        let ev = &parsed.event;
        // Every line is an event, keeps its raw text, and is routed to sshd rules.
        assert_eq!(&ev.original, line);
        assert!(!ev.has_tag(tags::UNPARSED), "unparsed: {line}");
        assert!(!ev.has_tag(tags::PARTIAL), "partial: {line}");
        assert_eq!(ev.logsource.product.as_deref(), Some("linux"), "{line}");
        assert_eq!(ev.logsource.service.as_deref(), Some("sshd"), "{line}");
        assert_eq!(ev.get_str("host.name"), Some("LabSZ"));
        assert_eq!(ev.get_str("process.name"), Some("sshd"));
        assert!(ev.fields.get("process.pid").is_some());
        assert!(ev.get_str("message").is_some());
        assert_eq!(ev.timestamp.format("%Y").to_string(), "2015", "{line}");

        *by_parser.entry(parsed.parser).or_default() += 1;
        match ev.get_str("event.action") {
            Some(a) => {
                with_action += 1;
                *by_action.entry(a.to_owned()).or_default() += 1;
            }
            None => unclassified.push(line.clone()),
        }
        with_source_ip += usize::from(ev.get_str("source.ip").is_some());
        with_user += usize::from(ev.get_str("user.name").is_some());
        with_outcome += usize::from(ev.get_str("event.outcome").is_some());
    }
    println!(
        "loghub OpenSSH_2k: event.action on {with_action}/2000 lines, source.ip {with_source_ip}, \
         user.name {with_user}, event.outcome {with_outcome}; parsers {by_parser:?}"
    );

    // Field coverage (verified independently with grep when pinned): every
    // line but one is classified; the one left is
    // "fatal: Write failed: Connection reset by peer [preauth]", which names
    // no peer and has nothing more to extract.
    assert_eq!(with_action, 1999, "lines with event.action");
    assert_eq!(
        unclassified,
        ["Dec 10 11:03:53 LabSZ sshd[25457]: fatal: Write failed: Connection reset by peer [preauth]"]
    );
    // 1,734 lines contain an IPv4-looking string; two of them are reverse-DNS
    // host names ("5.36.59.76.dynamic-dsl-ip.omantel.net.om") that become
    // source.domain instead.
    assert_eq!(with_source_ip, 1732, "lines with source.ip");
    assert_eq!(with_user, 1142, "lines with user.name");
    assert_eq!(with_outcome, 1411, "lines with event.outcome");
    let expected_parsers: BTreeMap<&str, usize> = [("pam", 641), ("sshd", 1358), ("syslog3164", 1)]
        .into_iter()
        .collect();
    assert_eq!(by_parser, expected_parsers);
    let expected_actions: BTreeMap<String, usize> = [
        ("authentication_failure", 504),
        ("connection_closed", 34),
        ("disconnect", 468),
        ("invalid_user", 226),
        ("no_identification", 10),
        ("pam_max_retries", 7),
        ("reverse_mapping_failed", 85),
        ("session_closed", 1),
        ("session_opened", 1),
        ("ssh_login", 525),
        ("too_many_auth_failures", 3),
        ("user_unknown", 135),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(by_action, expected_actions);
}

#[test]
fn loghub_first_lines_in_detail() {
    let lines = loghub_lines();
    let parser = Parser::new(ParseOptions {
        rfc3164_year: Some(2015),
        ..ParseOptions::default()
    });
    let received = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("time");
    let ev = parser.parse(lines[0].as_bytes(), received).event;
    assert_eq!(
        ev.timestamp,
        Utc.with_ymd_and_hms(2015, 12, 10, 6, 55, 46)
            .single()
            .expect("time")
    );
    assert_eq!(ev.get_str("source.ip"), Some("173.234.31.186"));
    assert_eq!(ev.get_str("source.domain"), Some("ns.marryaldkfaczcz.com"));
    assert_eq!(ev.get_str("event.dataset"), Some("syslog3164.sshd"));
    let ev = parser.parse(lines[1].as_bytes(), received).event;
    assert_eq!(ev.get_str("event.action"), Some("invalid_user"));
    assert_eq!(ev.get_str("user.name"), Some("webmaster"));
    assert_eq!(ev.get_str("event.outcome"), Some("failure"));
}
