//! Conformance: every value modifier, every condition form and every decided
//! ambiguity, written from the Sigma 2.1 specification (rules specification,
//! modifiers appendix, filters specification). Every check runs through both
//! the optimized evaluator and the reference evaluator (see `common::matches`).

mod common;

use common::{engine, event, hit, load, matches, s};
use qalqan_core::Value;
use qalqan_sigma::{Engine, Pipeline, RejectKind};

fn ev(fields: &[(&str, Value)]) -> qalqan_core::Event {
    event("raw line", fields)
}

fn rejected_reason(detection: &str) -> String {
    let r = load(detection);
    assert_eq!(r.loaded, 0, "expected a rejection");
    let e = &r.rejected[0];
    format!("{}: {}", e.construct, e.reason)
}

// ---------------------------------------------------------------- values

#[test]
fn plain_values_are_case_insensitive_equality() {
    let d = "sel:\n    Image: 'C:\\Windows\\System32\\whoami.exe'\ncondition: sel";
    assert!(hit(
        d,
        &ev(&[("Image", s(r"c:\windows\system32\WHOAMI.EXE"))])
    ));
    assert!(!hit(
        d,
        &ev(&[("Image", s(r"c:\windows\system32\whoami.exe.bak"))])
    ));
    assert!(!hit(
        d,
        &ev(&[("Image", s(r"x c:\windows\system32\whoami.exe"))])
    ));
}

#[test]
fn wildcards_star_and_question_mark() {
    let d = "sel:\n    Image: 'prog?.exe'\ncondition: sel";
    assert!(hit(d, &ev(&[("Image", s("progA.exe"))])));
    assert!(!hit(d, &ev(&[("Image", s("prog.exe"))])));
    assert!(!hit(d, &ev(&[("Image", s("progAB.exe"))])));
    let d = "sel:\n    Image: 'antivirus_V*.exe'\ncondition: sel";
    assert!(hit(d, &ev(&[("Image", s("antivirus_V21.2.1.exe"))])));
    assert!(hit(d, &ev(&[("Image", s("antivirus_V.exe"))])));
    assert!(!hit(d, &ev(&[("Image", s("antivirus_V21.dll"))])));
}

#[test]
fn escaping_wildcards_and_backslashes() {
    // \* is a plain star
    let d = "sel:\n    F: 'a\\*b'\ncondition: sel";
    assert!(hit(d, &ev(&[("F", s("a*b"))])));
    assert!(!hit(d, &ev(&[("F", s("axxb"))])));
    // \\* is a backslash followed by a wildcard
    let d = "sel:\n    F: 'a\\\\*'\ncondition: sel";
    assert!(hit(d, &ev(&[("F", s("a\\anything"))])));
    assert!(!hit(d, &ev(&[("F", s("a*"))])));
    // \\\* is a backslash and a plain star
    let d = "sel:\n    F: 'a\\\\\\*'\ncondition: sel";
    assert!(hit(d, &ev(&[("F", s("a\\*"))])));
    assert!(!hit(d, &ev(&[("F", s("a\\x"))])));
    // a single backslash not followed by a wildcard is plain; \\\\ is two
    let d = "sel:\n    F: 'C:\\Windows'\ncondition: sel";
    assert!(hit(d, &ev(&[("F", s("C:\\Windows"))])));
    let d = "sel:\n    F: 'a\\\\\\\\b'\ncondition: sel";
    assert!(hit(d, &ev(&[("F", s("a\\\\b"))])));
    // \? is a plain question mark
    let d = "sel:\n    F: 'what\\?'\ncondition: sel";
    assert!(hit(d, &ev(&[("F", s("what?"))])));
    assert!(!hit(d, &ev(&[("F", s("whatx"))])));
}

#[test]
fn lists_are_or_maps_are_and() {
    let d =
        "sel:\n    EventLog: Security\n    EventID:\n        - 517\n        - 1102\ncondition: sel";
    assert!(hit(
        d,
        &ev(&[("EventLog", s("Security")), ("EventID", Value::Int(1102))])
    ));
    assert!(!hit(
        d,
        &ev(&[("EventLog", s("Security")), ("EventID", Value::Int(4624))])
    ));
    assert!(!hit(
        d,
        &ev(&[("EventLog", s("System")), ("EventID", Value::Int(517))])
    ));
    // list of maps: OR of ANDs
    let d = "sel:\n    - Image|endswith: '\\example.exe'\n    - Description|contains: 'Test executable'\ncondition: sel";
    assert!(hit(d, &ev(&[("Image", s("C:\\x\\example.exe"))])));
    assert!(hit(d, &ev(&[("Description", s("a test EXECUTABLE b"))])));
    assert!(!hit(d, &ev(&[("Image", s("C:\\x\\other.exe"))])));
}

#[test]
fn decided_null_matches_missing_or_json_null() {
    let d = "sel:\n    EventID: 4738\nfilter:\n    PasswordLastSet: null\ncondition: sel and not filter";
    assert!(hit(
        d,
        &ev(&[
            ("EventID", Value::Int(4738)),
            ("PasswordLastSet", s("2024"))
        ])
    ));
    assert!(
        !hit(d, &ev(&[("EventID", Value::Int(4738))])),
        "missing is null"
    );
    assert!(!hit(
        d,
        &ev(&[
            ("EventID", Value::Int(4738)),
            ("PasswordLastSet", Value::Null)
        ])
    ));
    // an empty string is not null
    assert!(hit(
        d,
        &ev(&[("EventID", Value::Int(4738)), ("PasswordLastSet", s(""))])
    ));
}

#[test]
fn decided_empty_string_matches_only_empty() {
    let d = "sel:\n    FieldB: ''\ncondition: sel";
    assert!(hit(d, &ev(&[("FieldB", s(""))])));
    assert!(!hit(d, &ev(&[])), "missing is not empty");
    assert!(!hit(d, &ev(&[("FieldB", Value::Null)])));
    assert!(!hit(d, &ev(&[("FieldB", s(" "))])));
}

#[test]
fn null_in_a_value_list_is_rejected() {
    let why = rejected_reason("sel:\n    FieldB:\n        - ''\n        - null\ncondition: sel");
    assert!(why.contains("null"), "{why}");
}

#[test]
fn decided_numbers_versus_strings() {
    let num = "sel:\n    EventID: 4624\ncondition: sel";
    assert!(hit(num, &ev(&[("EventID", Value::Int(4624))])));
    assert!(
        hit(num, &ev(&[("EventID", s("4624"))])),
        "string spelling the number"
    );
    assert!(hit(num, &ev(&[("EventID", Value::Float(4624.0))])));
    assert!(hit(num, &ev(&[("EventID", s("4624.0"))])));
    assert!(!hit(num, &ev(&[("EventID", s("4624x"))])));
    assert!(
        !hit(num, &ev(&[("EventID", s("0x1210"))])),
        "hex is not decimal"
    );
    let text = "sel:\n    DestinationPort: '443'\ncondition: sel";
    assert!(
        hit(text, &ev(&[("DestinationPort", Value::Int(443))])),
        "string value vs number"
    );
    assert!(hit(text, &ev(&[("DestinationPort", s("443"))])));
    assert!(!hit(text, &ev(&[("DestinationPort", Value::Int(4433))])));
    // string modifiers on a number use its decimal text
    let c = "sel:\n    Port|startswith: 44\ncondition: sel";
    assert!(hit(c, &ev(&[("Port", Value::Int(443))])));
    // booleans
    let b = "sel:\n    Initiated: true\ncondition: sel";
    assert!(hit(b, &ev(&[("Initiated", Value::Bool(true))])));
    assert!(hit(b, &ev(&[("Initiated", s("True"))])));
    assert!(!hit(b, &ev(&[("Initiated", Value::Bool(false))])));
    let bs = "sel:\n    Initiated: 'true'\ncondition: sel";
    assert!(hit(bs, &ev(&[("Initiated", Value::Bool(true))])));
}

#[test]
fn decided_field_names_are_case_sensitive() {
    let d = "sel:\n    CommandLine|contains: whoami\ncondition: sel";
    assert!(hit(d, &ev(&[("CommandLine", s("whoami /all"))])));
    assert!(!hit(d, &ev(&[("commandline", s("whoami /all"))])));
}

#[test]
fn decided_event_lists_match_any_element() {
    let d = "sel:\n    tags: admin\ncondition: sel";
    let list = Value::List(vec![s("user"), s("ADMIN")]);
    assert!(hit(d, &ev(&[("tags", list.clone())])));
    assert!(!hit(d, &ev(&[("tags", Value::List(vec![s("user")]))])));
    // `all` values may match different elements
    let d = "sel:\n    tags|contains|all:\n        - adm\n        - use\ncondition: sel";
    assert!(hit(d, &ev(&[("tags", list)])));
    // numbers inside lists
    let d = "sel:\n    ports: 22\ncondition: sel";
    assert!(hit(
        d,
        &ev(&[("ports", Value::List(vec![Value::Int(80), Value::Int(22)]))])
    ));
}

#[test]
fn decided_keywords_search_the_raw_line_as_substrings() {
    let d = "keywords:\n    - 'EVILSERVICE'\n    - 'svchost.exe -n evil'\ncondition: keywords";
    let e = engine(d);
    assert!(matches(
        &e,
        &event("Mar 1 host x: started evilservice now", &[])
    ));
    assert!(matches(&e, &event("run SVCHOST.EXE -n evil", &[])));
    assert!(
        !matches(&e, &event("nothing", &[("message", s("EVILSERVICE"))])),
        "only event.original"
    );
    // keyword with wildcards inside
    let d = "keywords:\n    - 'failed*root'\ncondition: keywords";
    assert!(hit(d, &event("Failed password for root from", &[])));
    // |all over keywords
    let d = "keywords_cmdlet:\n    '|all':\n        - 'OabVirtualDirectory'\n        - ' -ExternalUrl '\ncondition: keywords_cmdlet";
    assert!(hit(
        d,
        &event("Set-OabVirtualDirectory -ExternalUrl http://x", &[])
    ));
    assert!(!hit(d, &event("Set-OabVirtualDirectory", &[])));
    // a single scalar keyword and keyword modifiers
    let d = "kw: 'only one'\ncondition: kw";
    assert!(hit(d, &event("this is only one line", &[])));
    let d = "kw:\n    '|startswith': 'Mar'\ncondition: kw";
    assert!(hit(d, &event("Mar 1 x", &[])));
    assert!(!hit(d, &event("1 Mar x", &[])));
    let d = "kw:\n    '|re': '^sshd\\[\\d+\\]'\ncondition: kw";
    assert!(hit(d, &event("sshd[42]: ok", &[])));
}

// -------------------------------------------------------------- modifiers

#[test]
fn modifier_contains_startswith_endswith() {
    let e = ev(&[("CommandLine", s("powershell.exe -NoP -Enc AAAA"))]);
    assert!(hit(
        "sel:\n    CommandLine|contains: ' -enc '\ncondition: sel",
        &e
    ));
    assert!(hit(
        "sel:\n    CommandLine|startswith: 'POWERSHELL'\ncondition: sel",
        &e
    ));
    assert!(hit(
        "sel:\n    CommandLine|endswith: 'aaaa'\ncondition: sel",
        &e
    ));
    assert!(!hit(
        "sel:\n    CommandLine|startswith: 'AAAA'\ncondition: sel",
        &e
    ));
    assert!(!hit(
        "sel:\n    CommandLine|endswith: 'powershell'\ncondition: sel",
        &e
    ));
    assert!(!hit(
        "sel:\n    CommandLine|contains: 'cmd'\ncondition: sel",
        &e
    ));
    // wildcards keep working inside contains
    assert!(hit(
        "sel:\n    CommandLine|contains: 'nop*aa'\ncondition: sel",
        &e
    ));
}

#[test]
fn modifier_all() {
    let d =
        "sel:\n    CommandLine|contains|all:\n        - ' -a '\n        - ' -b '\ncondition: sel";
    assert!(hit(d, &ev(&[("CommandLine", s("x -b  -a y"))])));
    assert!(!hit(d, &ev(&[("CommandLine", s("x -a y"))])));
}

#[test]
fn modifier_re_and_flags() {
    let d = "sel:\n    F|re: 'ab+c'\ncondition: sel";
    assert!(hit(d, &ev(&[("F", s("xxabbbcxx"))])), "unanchored search");
    assert!(
        !hit(d, &ev(&[("F", s("ABBC"))])),
        "case-sensitive by default"
    );
    assert!(hit(
        "sel:\n    F|re|i: 'ab+c'\ncondition: sel",
        &ev(&[("F", s("ABBC"))])
    ));
    assert!(hit(
        "sel:\n    F|re|ignorecase: 'ab+c'\ncondition: sel",
        &ev(&[("F", s("ABBC"))])
    ));
    assert!(!hit(
        "sel:\n    F|re: '^b$'\ncondition: sel",
        &ev(&[("F", s("a\nb\nc"))])
    ));
    assert!(hit(
        "sel:\n    F|re|m: '^b$'\ncondition: sel",
        &ev(&[("F", s("a\nb\nc"))])
    ));
    assert!(hit(
        "sel:\n    F|re|multiline: '^b$'\ncondition: sel",
        &ev(&[("F", s("a\nb\nc"))])
    ));
    assert!(!hit(
        "sel:\n    F|re: 'a.c'\ncondition: sel",
        &ev(&[("F", s("a\nc"))])
    ));
    assert!(hit(
        "sel:\n    F|re|s: 'a.c'\ncondition: sel",
        &ev(&[("F", s("a\nc"))])
    ));
    assert!(hit(
        "sel:\n    F|re|dotall: 'a.c'\ncondition: sel",
        &ev(&[("F", s("a\nc"))])
    ));
    // regex on numbers uses their text
    assert!(hit(
        "sel:\n    P|re: '^44[0-9]$'\ncondition: sel",
        &ev(&[("P", Value::Int(443))])
    ));
    // startswith/endswith anchor the expression
    assert!(!hit(
        "sel:\n    F|re|startswith: 'b'\ncondition: sel",
        &ev(&[("F", s("abc"))])
    ));
    assert!(hit(
        "sel:\n    F|re|endswith: 'c'\ncondition: sel",
        &ev(&[("F", s("abc"))])
    ));
}

#[test]
fn modifier_re_rejects_backtracking_constructs() {
    for re in ["a(?=b)", "(?<!x)y", "(a)\\\\1", "(?>ab)"] {
        let why = rejected_reason(&format!("sel:\n    F|re: \"{re}\"\ncondition: sel"));
        assert!(
            why.contains("rejected rather than approximated"),
            "{re}: {why}"
        );
    }
    let why = rejected_reason("sel:\n    F|re: 'a[b'\ncondition: sel");
    assert!(why.contains("invalid regular expression"), "{why}");
    let why = rejected_reason("sel:\n    F|i: 'x'\ncondition: sel");
    assert!(why.contains("need the 're' modifier"), "{why}");
}

#[test]
fn modifier_base64() {
    // "whoami" → d2hvYW1p
    let d = "sel:\n    F|base64: 'whoami'\ncondition: sel";
    assert!(hit(d, &ev(&[("F", s("d2hvYW1p"))])));
    assert!(!hit(d, &ev(&[("F", s("whoami"))])));
    let d = "sel:\n    F|base64|contains: 'whoami'\ncondition: sel";
    assert!(hit(d, &ev(&[("F", s("xx d2hvYW1p yy"))])));
    let why = rejected_reason("sel:\n    F|base64: 'who*'\ncondition: sel");
    assert!(why.contains("cannot encode wildcards"), "{why}");
}

#[test]
fn modifier_base64offset() {
    let d = "sel:\n    F|base64offset|contains: '/bin/bash'\ncondition: sel";
    for prefix in ["", "a", "ab"] {
        use base64::Engine as _;
        let enc =
            base64::engine::general_purpose::STANDARD.encode(format!("{prefix}/bin/bash -c id"));
        assert!(hit(d, &ev(&[("F", s(&enc))])), "offset {}", prefix.len());
    }
    use base64::Engine as _;
    let other = base64::engine::general_purpose::STANDARD.encode("/bin/sh -c id");
    assert!(!hit(d, &ev(&[("F", s(&other))])));
}

#[test]
fn modifier_utf16_family() {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let le: Vec<u8> = "cmd".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let be: Vec<u8> = "cmd".encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    let mut bom = vec![0xFF, 0xFE];
    bom.extend_from_slice(&le);
    assert!(hit(
        "sel:\n    F|utf16le|base64: 'cmd'\ncondition: sel",
        &ev(&[("F", s(&b64(&le)))])
    ));
    assert!(hit(
        "sel:\n    F|wide|base64: 'cmd'\ncondition: sel",
        &ev(&[("F", s(&b64(&le)))])
    ));
    assert!(hit(
        "sel:\n    F|utf16be|base64: 'cmd'\ncondition: sel",
        &ev(&[("F", s(&b64(&be)))])
    ));
    assert!(hit(
        "sel:\n    F|utf16|base64: 'cmd'\ncondition: sel",
        &ev(&[("F", s(&b64(&bom)))])
    ));
    assert!(!hit(
        "sel:\n    F|utf16be|base64: 'cmd'\ncondition: sel",
        &ev(&[("F", s(&b64(&le)))])
    ));
    // wide without base64 matches text with NUL characters
    assert!(hit(
        "sel:\n    F|wide|contains: 'cmd'\ncondition: sel",
        &ev(&[("F", s("x c\0m\0d\0 y"))])
    ));
    // UTF-16 of non-ASCII text is not text: rejected, not silently dead
    let why = rejected_reason("sel:\n    F|utf16be: 'ü'\ncondition: sel");
    assert!(why.contains("not valid UTF-8"), "{why}");
}

#[test]
fn decided_windash_characters() {
    let d = "sel:\n    CommandLine|contains|windash: ' -enc '\ncondition: sel";
    for dash in ["-", "/", "\u{2013}", "\u{2014}", "\u{2015}"] {
        assert!(
            hit(
                d,
                &ev(&[("CommandLine", s(&format!("powershell {dash}enc x")))])
            ),
            "{dash}"
        );
    }
    assert!(!hit(d, &ev(&[("CommandLine", s("powershell +enc x"))])));
    // a dash inside a word is not a parameter dash (pySigma: \B[-/]\b)
    let d = "sel:\n    CommandLine|contains|windash: 'x-y'\ncondition: sel";
    assert!(hit(d, &ev(&[("CommandLine", s("a x-y b"))])));
    assert!(!hit(d, &ev(&[("CommandLine", s("a x/y b"))])));
}

#[test]
fn modifier_cidr_v4_and_v6() {
    let d = "sel:\n    DestinationIp|cidr:\n        - '10.0.0.0/8'\n        - 'fe80::/10'\ncondition: sel";
    assert!(hit(d, &ev(&[("DestinationIp", s("10.20.30.40"))])));
    assert!(hit(d, &ev(&[("DestinationIp", s("fe80::1"))])));
    assert!(
        hit(d, &ev(&[("DestinationIp", s("::ffff:10.1.1.1"))])),
        "IPv4-mapped"
    );
    assert!(!hit(d, &ev(&[("DestinationIp", s("11.0.0.1"))])));
    assert!(!hit(d, &ev(&[("DestinationIp", s("not an ip"))])));
    let why = rejected_reason("sel:\n    Ip|cidr: '10.0.0.0/40'\ncondition: sel");
    assert!(why.contains("CIDR"), "{why}");
}

#[test]
fn modifier_exists() {
    let yes = "sel:\n    EventID: 4738\n    PasswordLastSet|exists: true\ncondition: sel";
    let no = "sel:\n    EventID: 4738\n    PasswordLastSet|exists: false\ncondition: sel";
    let with = ev(&[("EventID", Value::Int(4738)), ("PasswordLastSet", s(""))]);
    let null = ev(&[
        ("EventID", Value::Int(4738)),
        ("PasswordLastSet", Value::Null),
    ]);
    let without = ev(&[("EventID", Value::Int(4738))]);
    assert!(hit(yes, &with), "empty values exist");
    assert!(hit(yes, &null), "null values exist");
    assert!(!hit(yes, &without));
    assert!(hit(no, &without));
    assert!(!hit(no, &with));
    let why = rejected_reason("sel:\n    F|exists: maybe\ncondition: sel");
    assert!(why.contains("true or false"), "{why}");
}

#[test]
fn modifier_cased() {
    let d = "sel:\n    F|cased: 'CamelCase'\ncondition: sel";
    assert!(hit(d, &ev(&[("F", s("CamelCase"))])));
    assert!(!hit(d, &ev(&[("F", s("camelcase"))])));
    let d = "sel:\n    F|contains|cased: 'Mimi'\ncondition: sel";
    assert!(hit(d, &ev(&[("F", s("x Mimikatz"))])));
    assert!(!hit(d, &ev(&[("F", s("x mimikatz"))])));
}

#[test]
fn decided_neq() {
    let d = "sel:\n    F|neq: 'abc'\ncondition: sel";
    assert!(hit(d, &ev(&[("F", s("abd"))])));
    assert!(
        !hit(d, &ev(&[("F", s("ABC"))])),
        "case-insensitive like equality"
    );
    assert!(!hit(d, &ev(&[])), "a missing field is not 'different'");
    assert!(!hit(d, &ev(&[("F", Value::Null)])));
    let n = "sel:\n    Port|neq: 443\ncondition: sel";
    assert!(hit(n, &ev(&[("Port", Value::Int(80))])));
    assert!(!hit(n, &ev(&[("Port", Value::Int(443))])));
    // a list of values is OR-ed like every list; neq|all means "differs from all"
    let any = "sel:\n    Port|neq:\n        - 80\n        - 443\ncondition: sel";
    assert!(hit(any, &ev(&[("Port", Value::Int(443))])));
    let all = "sel:\n    Port|neq|all:\n        - 80\n        - 443\ncondition: sel";
    assert!(!hit(all, &ev(&[("Port", Value::Int(443))])));
    assert!(hit(all, &ev(&[("Port", Value::Int(22))])));
}

#[test]
fn modifier_numeric_comparisons() {
    let e = ev(&[
        ("Count", Value::Int(10)),
        ("Text", s("10")),
        ("Float", Value::Float(2.5)),
    ]);
    assert!(hit("sel:\n    Count|lt: 11\ncondition: sel", &e));
    assert!(!hit("sel:\n    Count|lt: 10\ncondition: sel", &e));
    assert!(hit("sel:\n    Count|lte: 10\ncondition: sel", &e));
    assert!(hit("sel:\n    Count|gt: 9\ncondition: sel", &e));
    assert!(!hit("sel:\n    Count|gt: 10\ncondition: sel", &e));
    assert!(hit("sel:\n    Count|gte: 10\ncondition: sel", &e));
    assert!(
        hit("sel:\n    Text|gte: 10\ncondition: sel", &e),
        "numeric strings compare"
    );
    assert!(hit("sel:\n    Float|gt: 2.25\ncondition: sel", &e));
    assert!(!hit("sel:\n    Missing|gt: 0\ncondition: sel", &e));
    let why = rejected_reason("sel:\n    Count|gt: ten\ncondition: sel");
    assert!(why.contains("need a number"), "{why}");
}

#[test]
fn modifier_time_parts() {
    // common::event sets @timestamp to 2025-03-14T15:09:26Z (ISO week 11)
    let e = ev(&[("UtcTime", s("2019-03-02 08:51:00.008"))]);
    for (m, n) in [
        ("minute", 9),
        ("hour", 15),
        ("day", 14),
        ("week", 11),
        ("month", 3),
        ("year", 2025),
    ] {
        assert!(
            hit(
                &format!("sel:\n    '@timestamp|{m}': {n}\ncondition: sel"),
                &e
            ),
            "{m}"
        );
        assert!(
            !hit(
                &format!("sel:\n    '@timestamp|{m}': {}\ncondition: sel", n + 1),
                &e
            ),
            "{m}+1"
        );
    }
    assert!(hit("sel:\n    UtcTime|hour: 8\ncondition: sel", &e));
    assert!(hit("sel:\n    UtcTime|minute: 51\ncondition: sel", &e));
    assert!(hit("sel:\n    UtcTime|year: 2019\ncondition: sel", &e));
    // as written, no time-zone conversion
    let tz = ev(&[("T", s("2024-01-01T23:30:00+05:00"))]);
    assert!(hit("sel:\n    T|hour: 23\ncondition: sel", &tz));
    // with a comparison: outside office hours
    assert!(hit(
        "sel:\n    '@timestamp|hour|gte': 15\ncondition: sel",
        &e
    ));
    assert!(!hit(
        "sel:\n    '@timestamp|hour|lt': 15\ncondition: sel",
        &e
    ));
    assert!(!hit(
        "sel:\n    T|hour: 1\ncondition: sel",
        &ev(&[("T", s("not a date"))])
    ));
}

#[test]
fn modifier_expand_with_pipeline_vars_and_engine_lists() {
    let rule = common::rule_yaml("sel:\n    User|expand: '%Admins%'\ncondition: sel");
    // no values → rejected (specification)
    let (_, r) = Engine::builder().load_str("r.yml", &rule);
    assert_eq!(r.loaded, 0);
    assert!(
        r.rejected[0]
            .reason
            .contains("placeholder %Admins% has no values"),
        "{}",
        r.rejected[0].reason
    );
    // engine-level placeholder lists
    let (e, r) = Engine::builder()
        .placeholder("Admins", vec!["root".into(), "adm_*".into()])
        .load_str("r.yml", &rule);
    assert_eq!(r.loaded, 1, "{:?}", r.rejected);
    assert!(matches(&e, &ev(&[("User", s("root"))])));
    assert!(matches(&e, &ev(&[("User", s("adm_bob"))])));
    assert!(!matches(&e, &ev(&[("User", s("bob"))])));
    // pipeline vars with value_placeholders
    let p = Pipeline::from_yaml(
        "vars:\n  Admins: [toor]\ntransformations:\n- type: value_placeholders\n",
        "p",
    )
    .unwrap();
    let (e, r) = Engine::builder().pipeline(p).load_str("r.yml", &rule);
    assert_eq!(r.loaded, 1, "{:?}", r.rejected);
    assert!(matches(&e, &ev(&[("User", s("TOOR"))])));
    // without expand, %x% is literal; escaped percent under expand
    assert!(hit(
        "sel:\n    F: '%Admins%'\ncondition: sel",
        &ev(&[("F", s("%Admins%"))])
    ));
    let (e, _) = Engine::builder()
        .placeholder("n", vec!["v".into()])
        .load_str(
            "r.yml",
            &common::rule_yaml("sel:\n    F|expand: '\\%plain%n%'\ncondition: sel"),
        );
    assert!(matches(&e, &ev(&[("F", s("%plainv"))])));
}

#[test]
fn modifier_fieldref() {
    let d = "sel:\n    SourceUser|fieldref: TargetUser\ncondition: sel";
    assert!(hit(
        d,
        &ev(&[("SourceUser", s("Bob")), ("TargetUser", s("bob"))])
    ));
    assert!(!hit(
        d,
        &ev(&[("SourceUser", s("bob")), ("TargetUser", s("alice"))])
    ));
    assert!(
        !hit(d, &ev(&[("SourceUser", s("bob"))])),
        "missing reference"
    );
    let neq = "sel:\n    SourceUser|fieldref|neq: TargetUser\ncondition: sel";
    assert!(hit(
        neq,
        &ev(&[("SourceUser", s("bob")), ("TargetUser", s("alice"))])
    ));
    assert!(!hit(
        neq,
        &ev(&[("SourceUser", s("bob")), ("TargetUser", s("BOB"))])
    ));
    let c = "sel:\n    CommandLine|fieldref|contains: User\ncondition: sel";
    assert!(hit(
        c,
        &ev(&[("CommandLine", s("net user bob /add")), ("User", s("bob"))])
    ));
    let cased = "sel:\n    A|fieldref|cased: B\ncondition: sel";
    assert!(!hit(cased, &ev(&[("A", s("Bob")), ("B", s("bob"))])));
    let n = "sel:\n    A|fieldref: B\ncondition: sel";
    assert!(hit(n, &ev(&[("A", Value::Int(5)), ("B", s("5"))])));
}

#[test]
fn unknown_modifiers_are_errors() {
    let why = rejected_reason("sel:\n    F|containz: x\ncondition: sel");
    assert!(why.contains("unknown modifier 'containz'"), "{why}");
    let r = load("sel:\n    F|Contains: x\ncondition: sel");
    assert_eq!(r.rejected[0].kind, RejectKind::Parse);
}

#[test]
fn modifier_combination_errors_are_loud() {
    assert!(
        rejected_reason("sel:\n    F|contains|re: 'x'\ncondition: sel").contains("must come first")
    );
    assert!(
        rejected_reason("sel:\n    F|re|windash: 'x'\ncondition: sel")
            .contains("cannot be followed")
    );
    assert!(rejected_reason("kw:\n    '|exists': true\ncondition: kw").contains("needs a field"));
    assert!(
        rejected_reason("sel:\n    F|cidr|contains: '10.0.0.0/8'\ncondition: sel")
            .contains("cannot be followed")
    );
    assert!(rejected_reason("sel:\n    F|gt|lt: 5\ncondition: sel").contains("at most one"));
    assert!(
        rejected_reason("sel:\n    F|contains: null\ncondition: sel")
            .contains("null takes no modifiers")
    );
}

// -------------------------------------------------------------- conditions

fn abc() -> String {
    "a:\n    A: 1\nb:\n    B: 1\nc:\n    C: 1\n".to_owned()
}

fn abc_ev(a: bool, b: bool, c: bool) -> qalqan_core::Event {
    let mut f = Vec::new();
    if a {
        f.push(("A", Value::Int(1)));
    }
    if b {
        f.push(("B", Value::Int(1)));
    }
    if c {
        f.push(("C", Value::Int(1)));
    }
    ev(&f)
}

fn truth(cond: &str, f: impl Fn(bool, bool, bool) -> bool) {
    let e = engine(&format!("{}condition: {cond}", abc()));
    for bits in 0..8u8 {
        let (a, b, c) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0);
        assert_eq!(
            matches(&e, &abc_ev(a, b, c)),
            f(a, b, c),
            "{cond} with a={a} b={b} c={c}"
        );
    }
}

#[test]
// The closures mirror the conditions literally, on purpose.
#[allow(clippy::nonminimal_bool)]
fn condition_and_or_not_and_precedence() {
    truth("a and b", |a, b, _| a && b);
    truth("a or b", |a, b, _| a || b);
    truth("not a", |a, _, _| !a);
    truth("a or b and c", |a, b, c| a || (b && c));
    truth("a and b or c", |a, b, c| (a && b) || c);
    truth("not a and b", |a, b, _| !a && b);
    truth("not a or b", |a, b, _| !a || b);
    truth("not (a or b)", |a, b, _| !(a || b));
    truth("(a or b) and c", |a, b, c| (a || b) && c);
    truth("a and not (b or not c)", |a, b, c| a && !(b || !c));
    truth("not not a", |a, _, _| a);
}

#[test]
fn condition_selectors() {
    truth("1 of them", |a, b, c| a || b || c);
    truth("all of them", |a, b, c| a && b && c);
    truth("any of them", |a, b, c| a || b || c);
    let d = "selection_1:\n    A: 1\nselection_2:\n    B: 1\nfilter_x:\n    C: 1\n";
    let e = engine(&format!(
        "{d}condition: 1 of selection_* and not 1 of filter*"
    ));
    assert!(matches(&e, &abc_ev(true, false, false)));
    assert!(matches(&e, &abc_ev(false, true, false)));
    assert!(!matches(&e, &abc_ev(true, false, true)));
    let e = engine(&format!("{d}condition: all of selection_*"));
    assert!(matches(&e, &abc_ev(true, true, false)));
    assert!(!matches(&e, &abc_ev(true, false, false)));
    // wildcards at arbitrary positions, whole-name match
    let e = engine(&format!("{d}condition: 1 of *_x"));
    assert!(matches(&e, &abc_ev(false, false, true)));
    assert!(!matches(&e, &abc_ev(true, false, false)));
    // selection without a wildcard names exactly one identifier
    let e = engine(&format!("{d}condition: 1 of selection_1"));
    assert!(!matches(&e, &abc_ev(false, true, false)));
}

#[test]
fn decided_underscore_identifiers_are_not_them() {
    let d = "sel:\n    A: 1\n_helper:\n    B: 1\n";
    let e = engine(&format!("{d}condition: all of them"));
    assert!(
        matches(&e, &abc_ev(true, false, false)),
        "_helper is not part of them"
    );
    let e = engine(&format!("{d}condition: all of *"));
    assert!(matches(&e, &abc_ev(true, false, false)), "nor of patterns");
    let e = engine(&format!("{d}condition: 1 of _help*"));
    assert!(
        matches(&e, &abc_ev(false, true, false)),
        "unless the pattern starts with _"
    );
    let e = engine(&format!("{d}condition: sel and _helper"));
    assert!(
        !matches(&e, &abc_ev(true, false, false)),
        "named directly it counts"
    );
}

#[test]
fn condition_list_is_or() {
    let e = engine(&format!("{}condition:\n    - a and b\n    - c", abc()));
    assert!(matches(&e, &abc_ev(true, true, false)));
    assert!(matches(&e, &abc_ev(false, false, true)));
    assert!(!matches(&e, &abc_ev(true, false, false)));
}

#[test]
fn condition_errors() {
    assert!(rejected_reason(&format!("{}condition: a and d", abc())).contains("'d' is not defined"));
    assert!(rejected_reason(&format!("{}condition: 1 of z*", abc()))
        .contains("selects no search identifier"));
    assert!(rejected_reason(&format!("{}condition: a and (b", abc())).contains("expected ')'"));
    let r = load(&format!("{}condition: a | count() by A > 5", abc()));
    assert_eq!(r.rejected[0].kind, RejectKind::LegacyAggregation);
    assert!(r.rejected[0].reason.contains("correlation rule"));
}

#[test]
fn identifiers_with_dots_and_odd_keys() {
    // SigmaHQ has `filter_main_mdadm.conf` and `select_tree_execution|endswith`
    let d = "select_x|endswith:\n    Image: '/tree'\nfilter_main_a.conf:\n    B: 1\ncondition: 1 of select* and not 1 of filter_main_*";
    let e = engine(d);
    assert!(matches(&e, &ev(&[("Image", s("/tree"))])));
    assert!(
        !matches(&e, &ev(&[("Image", s("/usr/bin/tree"))])),
        "the key's |endswith is part of the name"
    );
}

// ------------------------------------------------------- filters, pipelines

const FILTERED_RULE: &str = "title: Rar usage\nid: 6f3e2987-db24-4c78-a860-b4f4095a7095\nlogsource:\n    category: process_creation\n    product: windows\ndetection:\n    sel:\n        Image|endswith: '\\rar.exe'\n    condition: sel\n";

fn pc_event(image: &str, user: &str) -> qalqan_core::Event {
    let mut e = event("x", &[("Image", s(image)), ("User", s(user))]);
    e.logsource = qalqan_core::LogSource::new(Some("windows"), None, Some("process_creation"));
    e
}

#[test]
fn filters_add_exceptions_without_editing_rules() {
    let filter = "title: Filter admins\nlogsource:\n    category: process_creation\n    product: windows\nfilter:\n    rules:\n        - 6f3e2987-db24-4c78-a860-b4f4095a7095\n    selection:\n        User|startswith: 'adm_'\n    condition: not selection\n";
    let (e, r) = Engine::builder().load_sources(vec![
        qalqan_sigma::RuleText {
            path: "rule.yml".into(),
            text: FILTERED_RULE.into(),
        },
        qalqan_sigma::RuleText {
            path: "mf_admins.yml".into(),
            text: filter.into(),
        },
    ]);
    assert_eq!((r.loaded, r.filters), (1, 1), "{:?}", r.rejected);
    assert!(matches(&e, &pc_event("C:\\x\\rar.exe", "bob")));
    assert!(!matches(&e, &pc_event("C:\\x\\rar.exe", "adm_bob")));
    assert_eq!(e.rule(0).filters, vec!["Filter admins".to_string()]);
}

#[test]
fn filters_respect_logsource_and_rule_references() {
    let other_ls = "title: F\nlogsource:\n    product: linux\nfilter:\n    rules: [6f3e2987-db24-4c78-a860-b4f4095a7095]\n    selection:\n        User: bob\n    condition: not selection\n";
    let (e, r) = Engine::builder().load_sources(vec![
        qalqan_sigma::RuleText {
            path: "rule.yml".into(),
            text: FILTERED_RULE.into(),
        },
        qalqan_sigma::RuleText {
            path: "f.yml".into(),
            text: other_ls.into(),
        },
    ]);
    assert!(
        matches(&e, &pc_event("C:\\rar.exe", "bob")),
        "filter for another logsource does not apply"
    );
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("applies to no loaded rule")));
    let any = "title: F\nlogsource:\n    product: windows\nfilter:\n    rules: any\n    selection:\n        User: bob\n    condition: not selection\n";
    let (e, _) = Engine::builder().load_sources(vec![
        qalqan_sigma::RuleText {
            path: "rule.yml".into(),
            text: FILTERED_RULE.into(),
        },
        qalqan_sigma::RuleText {
            path: "f.yml".into(),
            text: any.into(),
        },
    ]);
    assert!(!matches(&e, &pc_event("C:\\rar.exe", "bob")), "rules: any");
}

#[test]
fn pipelines_map_fields_at_compile_time() {
    let p = Pipeline::from_yaml(
        "name: t\ntransformations:\n- type: field_name_mapping\n  mapping:\n    Image: [process.executable, process.name]\n    User: user.name\n  rule_conditions: [{type: logsource, product: windows}]\n",
        "t",
    )
    .unwrap();
    let (e, r) = Engine::builder()
        .pipeline(p)
        .load_str("rule.yml", FILTERED_RULE);
    assert_eq!(r.loaded, 1);
    let mut ev1 = event("x", &[("process.name", s("C:\\rar.exe"))]);
    ev1.logsource = qalqan_core::LogSource::new(Some("windows"), None, Some("process_creation"));
    assert!(matches(&e, &ev1));
    let mut ev2 = event("x", &[("Image", s("C:\\rar.exe"))]);
    ev2.logsource = ev1.logsource.clone();
    assert!(!matches(&e, &ev2), "the Sigma name is gone after mapping");
}

#[test]
fn logsource_routing() {
    let (e, _) = Engine::builder().load_str("rule.yml", FILTERED_RULE);
    let mut ev = event("x", &[("Image", s("C:\\rar.exe"))]);
    ev.logsource = qalqan_core::LogSource::new(Some("windows"), None, None);
    assert!(!matches(&e, &ev), "category missing on the event");
    ev.logsource =
        qalqan_core::LogSource::new(Some("windows"), Some("sysmon"), Some("process_creation"));
    assert!(matches(&e, &ev), "extra service on the event is fine");
    ev.logsource = qalqan_core::LogSource::new(Some("Windows"), None, Some("PROCESS_CREATION"));
    assert!(matches(&e, &ev), "logsource compares case-insensitively");
    ev.logsource = qalqan_core::LogSource::new(Some("linux"), None, Some("process_creation"));
    assert!(!matches(&e, &ev));
}

#[test]
fn correlations_are_handed_out_raw_and_rules_found_by_id_or_name() {
    let text = format!(
        "{FILTERED_RULE}name: rar_usage\n---\ntitle: many rars\ncorrelation:\n    type: event_count\n    rules: [rar_usage]\n    group-by: [User]\n    timespan: 1h\n    condition: {{gte: 5}}\n"
    );
    let (e, r) = Engine::builder().load_str("multi.yml", &text);
    assert_eq!((r.loaded, r.correlations), (1, 1), "{:?}", r.rejected);
    assert_eq!(e.correlations()[0].index(), 1);
    assert_eq!(e.find_rule("rar_usage"), Some(0));
    assert_eq!(e.find_rule("6f3e2987-db24-4c78-a860-b4f4095a7095"), Some(0));
    assert!(e.correlations()[0].doc.get("correlation").is_some());
}

#[test]
fn duplicate_ids_are_rejected() {
    let (_, r) = Engine::builder().load_sources(vec![
        qalqan_sigma::RuleText {
            path: "a.yml".into(),
            text: FILTERED_RULE.into(),
        },
        qalqan_sigma::RuleText {
            path: "b.yml".into(),
            text: FILTERED_RULE.into(),
        },
    ]);
    assert_eq!(r.loaded, 1);
    assert_eq!(r.rejected[0].kind, RejectKind::Duplicate);
}

#[test]
fn explain_names_what_matched() {
    let e = engine(
        "sel:\n    A: 1\n    B|contains: x\nfilter:\n    C: 1\ncondition: sel and not filter",
    );
    let x = e.explain(0, &ev(&[("A", Value::Int(1)), ("B", s("yyy"))]));
    assert!(!x.condition_holds);
    let text = x.to_string();
    assert!(text.contains("search sel [no"), "{text}");
    assert!(text.contains("B|contains"), "{text}");
    assert!(text.contains("(missing)"), "{text}");
    let x = e.explain(0, &ev(&[("A", Value::Int(1)), ("B", s("x"))]));
    assert!(x.fires());
}

#[test]
fn spec_example_rules_parse() {
    // the specification's schema examples
    let dir = common::data_path("sigma-specification/tests/schema");
    // both examples share one id, so load them one at a time
    for f in ["rule_1.yml", "rule_ecs.yml"] {
        let (_, r) = Engine::builder().load_paths(&[dir.join("rules").join(f)]);
        assert_eq!(r.loaded, 1, "{f}: {:?}", r.rejected);
    }
    let (_, r) = Engine::builder().load_paths(&[dir.join("filter")]);
    assert_eq!(r.filters, 2, "{:?}", r.rejected);
    let (_, r) = Engine::builder().load_paths(&[dir.join("correlation")]);
    assert_eq!(r.correlations, 8, "{:?}", r.rejected);
}
