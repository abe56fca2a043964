//! End-to-end parser tests through the public API: realistic lines of every
//! format, the Sigma logsource and common fields they get, and damaged input
//! (truncated, oversized, non-UTF-8, malformed).

use chrono::{DateTime, Duration, TimeZone, Utc};
use qalqan_core::event::{tags, Event, LogSource, Value};
use qalqan_core::parse::{
    parse_utc_offset, ParseOptions, Parsed, Parser, MAX_FIELDS, PARSER_NAMES,
};

fn received() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("time")
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("time")
}

fn parse(line: &str) -> Parsed {
    Parser::default().parse(line.as_bytes(), received())
}

fn ls(product: Option<&str>, service: Option<&str>, category: Option<&str>) -> LogSource {
    LogSource::new(product, service, category)
}

/// The fields every event must have, whatever the line.
fn assert_common(p: &Parsed) {
    let ev = &p.event;
    assert!(PARSER_NAMES.contains(&p.parser), "{}", p.parser);
    assert!(
        ev.get_str("message").is_some(),
        "message on {:?}",
        ev.original
    );
    assert!(ev.get_str("event.kind").is_some());
    assert!(ev.get_str("event.module").is_some());
    assert!(ev.get_str("event.dataset").is_some());
    // The wire form round-trips.
    let back = Event::from_json_bytes(ev.to_json_string().as_bytes(), Utc::now()).expect("json");
    // (The contract fills an *empty* event.original with the JSON text on
    // read, so an empty line does not round-trip its empty original.)
    if !ev.original.is_empty() {
        assert_eq!(back.original, ev.original);
    }
    assert_eq!(back.logsource, ev.logsource);
}

fn s<'a>(p: &'a Parsed, name: &str) -> Option<&'a str> {
    p.event.get_str(name)
}

fn i(p: &Parsed, name: &str) -> Option<i64> {
    p.event.fields.get(name).and_then(Value::as_i64)
}

#[test]
fn sshd_over_bsd_syslog() {
    let p = parse("<38>Mar  1 10:00:00 web1 sshd[812]: Failed password for root from 203.0.113.9 port 50022 ssh2");
    assert_common(&p);
    assert_eq!(p.parser, "sshd");
    assert_eq!(p.event.logsource, ls(Some("linux"), Some("sshd"), None));
    assert_eq!(p.event.timestamp, at(2026, 3, 1, 10, 0, 0));
    assert_eq!(s(&p, "event.module"), Some("sshd"));
    assert_eq!(s(&p, "event.dataset"), Some("syslog3164.sshd"));
    assert_eq!(s(&p, "event.kind"), Some("event"));
    assert_eq!(s(&p, "event.action"), Some("ssh_login"));
    assert_eq!(s(&p, "event.outcome"), Some("failure"));
    assert_eq!(s(&p, "source.ip"), Some("203.0.113.9"));
    assert_eq!(i(&p, "source.port"), Some(50022));
    assert_eq!(s(&p, "user.name"), Some("root"));
    assert_eq!(s(&p, "host.name"), Some("web1"));
    assert_eq!(s(&p, "process.name"), Some("sshd"));
    assert_eq!(i(&p, "process.pid"), Some(812));
    assert_eq!(i(&p, "log.syslog.facility.code"), Some(4));
    assert_eq!(s(&p, "log.syslog.facility.name"), Some("auth"));
    assert_eq!(i(&p, "log.syslog.severity.code"), Some(6));
    assert_eq!(s(&p, "log.syslog.severity.name"), Some("informational"));
    assert_eq!(
        s(&p, "message"),
        Some("Failed password for root from 203.0.113.9 port 50022 ssh2")
    );
    assert_eq!(p.event.fields.get("tags"), None, "no damage tags");
    assert_eq!(
        p.event.fields.get("event.category"),
        Some(&Value::List(vec![Value::from("authentication")]))
    );
}

#[test]
fn sshd_over_rfc5424_with_structured_data() {
    let p = parse(
        r#"<86>1 2026-03-01T10:00:00.250+06:00 bastion.gov.example sshd 4242 - [origin ip="10.0.0.1" software="rsyslogd"][meta sequenceId="17"] Accepted publickey for deploy from 198.51.100.20 port 41000 ssh2: ED25519 SHA256:Zm9vYmFy"#,
    );
    assert_common(&p);
    assert_eq!(p.parser, "sshd");
    assert_eq!(s(&p, "event.dataset"), Some("syslog5424.sshd"));
    assert_eq!(
        p.event.timestamp,
        at(2026, 3, 1, 4, 0, 0) + Duration::milliseconds(250)
    );
    assert_eq!(s(&p, "event.outcome"), Some("success"));
    assert_eq!(s(&p, "user.name"), Some("deploy"));
    assert_eq!(s(&p, "log.syslog.appname"), Some("sshd"));
    assert_eq!(s(&p, "log.syslog.procid"), Some("4242"));
    assert_eq!(s(&p, "log.syslog.version"), Some("1"));
    assert_eq!(
        s(&p, "log.syslog.structured_data.origin.ip"),
        Some("10.0.0.1")
    );
    assert_eq!(
        s(&p, "log.syslog.structured_data.meta.sequenceId"),
        Some("17")
    );
    assert_eq!(
        s(&p, "system.auth.ssh.signature"),
        Some("ED25519 SHA256:Zm9vYmFy")
    );
    assert_eq!(s(&p, "log.syslog.facility.name"), Some("authpriv"));
}

#[test]
fn sudo_pam_and_account_tools() {
    let p = parse("2026-03-01T10:00:00.123456+00:00 web1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/cat /etc/shadow");
    assert_common(&p);
    assert_eq!(p.parser, "sudo");
    assert_eq!(p.event.logsource, ls(Some("linux"), Some("sudo"), None));
    assert_eq!(s(&p, "user.name"), Some("alice"));
    assert_eq!(s(&p, "user.effective.name"), Some("root"));
    assert_eq!(
        s(&p, "process.command_line"),
        Some("/usr/bin/cat /etc/shadow")
    );

    let p = parse("Mar  1 10:00:01 web1 sudo: pam_unix(sudo:auth): authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=alice");
    assert_eq!(p.parser, "pam");
    assert_eq!(p.event.logsource, ls(Some("linux"), Some("sudo"), None));
    assert_eq!(s(&p, "event.outcome"), Some("failure"));

    let p = parse("Mar  1 10:00:02 web1 su[999]: pam_unix(su:session): session opened for user root(uid=0) by alice(uid=1000)");
    assert_eq!(p.parser, "pam");
    assert_eq!(p.event.logsource, ls(Some("linux"), Some("auth"), None));
    assert_eq!(s(&p, "event.action"), Some("session_opened"));

    let p = parse(
        "Mar  1 10:00:03 web1 CRON[2001]: pam_unix(cron:session): session closed for user root",
    );
    assert_eq!(p.event.logsource, ls(Some("linux"), Some("auth"), None));
    let p = parse("Mar  1 10:00:03 web1 CRON[2002]: (root) CMD (/usr/local/bin/backup.sh)");
    assert_eq!(p.parser, "cron");
    assert_eq!(p.event.logsource, ls(Some("linux"), Some("cron"), None));

    let p = parse("Mar  1 10:00:04 web1 useradd[3001]: new user: name=backdoor, UID=0, GID=0, home=/root, shell=/bin/bash, from=/dev/pts/1");
    assert_common(&p);
    assert_eq!(p.parser, "accounts");
    assert_eq!(p.event.logsource, ls(Some("linux"), Some("auth"), None));
    assert_eq!(s(&p, "event.action"), Some("user_created"));
    assert_eq!(s(&p, "user.id"), Some("0"));
    let p = parse("Mar  1 10:00:05 web1 usermod[3002]: add 'backdoor' to group 'sudo'");
    assert_eq!(s(&p, "group.name"), Some("sudo"));
    let p = parse("Mar  1 10:00:06 web1 passwd[3003]: pam_unix(passwd:chauthtok): password changed for backdoor");
    assert_eq!(p.parser, "pam");
    assert_eq!(s(&p, "event.action"), Some("password_changed"));
    assert_eq!(p.event.logsource, ls(Some("linux"), Some("auth"), None));

    let p = parse("Mar  1 10:00:07 web1 pkexec[4000]: alice: Error executing command as another user: Not authorized [USER=root] [TTY=/dev/pts/0] [CWD=/home/alice] [COMMAND=/bin/sh]");
    assert_eq!(p.parser, "syslog3164");
    assert_eq!(p.event.logsource, ls(Some("linux"), Some("auth"), None));
}

#[test]
fn kernel_lines() {
    let p = parse("Mar  1 10:00:00 fw1 kernel: [ 8457.246354] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.9 DST=198.51.100.2 LEN=60 TOS=0x00 PREC=0x00 TTL=49 ID=0 DF PROTO=TCP SPT=44226 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0");
    assert_common(&p);
    assert_eq!(p.parser, "netfilter");
    assert_eq!(p.event.logsource, ls(Some("linux"), None, Some("firewall")));
    assert_eq!(s(&p, "event.dataset"), Some("syslog3164.netfilter"));
    assert_eq!(s(&p, "event.action"), Some("denied"));
    assert_eq!(i(&p, "destination.port"), Some(22));
    // Without an envelope (dmesg, journald MESSAGE forwarded as a line).
    let p =
        parse("[UFW ALLOW] IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=52 PROTO=TCP SPT=1 DPT=443");
    assert_eq!(p.parser, "netfilter");
    assert_eq!(s(&p, "event.action"), Some("accept"));
    let p = parse("Mar  1 10:00:00 fw1 kernel: [    0.000000] Linux version 6.1.0-18-amd64");
    assert_eq!(p.parser, "syslog3164");
    assert_eq!(p.event.logsource, ls(Some("linux"), Some("syslog"), None));
}

#[test]
fn web_access_bare_and_in_syslog() {
    let opts = ParseOptions {
        web_product: Some("nginx".into()),
        ..ParseOptions::default()
    };
    let parser = Parser::new(opts);
    let line = r#"203.0.113.9 - - [01/Mar/2026:10:00:00 +0600] "GET /wp-login.php?action=register HTTP/1.1" 404 162 "-" "Mozilla/5.0 zgrab/0.x""#;
    let p = parser.parse(line.as_bytes(), received());
    assert_common(&p);
    assert_eq!(p.parser, "web_access");
    assert_eq!(
        p.event.logsource,
        ls(Some("nginx"), None, Some("webserver"))
    );
    assert_eq!(p.event.timestamp, at(2026, 3, 1, 4, 0, 0));
    assert_eq!(s(&p, "url.path"), Some("/wp-login.php"));
    assert_eq!(s(&p, "url.query"), Some("action=register"));
    assert_eq!(i(&p, "http.response.status_code"), Some(404));
    assert_eq!(s(&p, "message"), Some(line));
    assert_eq!(s(&p, "event.dataset"), Some("web_access"));

    let p = parse(
        r#"<190>Mar  1 10:00:00 web1 nginx: 198.51.100.1 - bob [01/Mar/2026:10:00:00 +0000] "POST /api HTTP/2.0" 201 0 "-" "curl/8.5.0""#,
    );
    assert_eq!(p.parser, "web_access");
    assert_eq!(s(&p, "event.dataset"), Some("syslog3164.web_access"));
    assert_eq!(p.event.logsource, ls(None, None, Some("webserver")));
    assert_eq!(s(&p, "user.name"), Some("bob"));
    assert_eq!(s(&p, "host.name"), Some("web1"));
}

#[test]
fn json_and_journald() {
    let parser = Parser::new(ParseOptions {
        json_logsource: LogSource::new(Some("windows"), Some("sysmon"), None),
        ..ParseOptions::default()
    });
    let p = parser.parse(
        br#"{"@timestamp":"2026-03-01T09:00:00Z","event":{"code":1,"module":"sysmon"},"process":{"executable":"C:\\Windows\\System32\\cmd.exe","command_line":"cmd /c whoami"},"host":{"name":"ws7"}}"#,
        received(),
    );
    assert_common(&p);
    assert_eq!(p.parser, "json");
    assert_eq!(p.event.logsource, ls(Some("windows"), Some("sysmon"), None));
    assert_eq!(p.event.timestamp, at(2026, 3, 1, 9, 0, 0));
    assert_eq!(s(&p, "process.command_line"), Some("cmd /c whoami"));
    assert_eq!(
        s(&p, "event.module"),
        Some("sysmon"),
        "the line's own module wins"
    );
    assert_eq!(i(&p, "event.code"), Some(1));

    let p = parse(
        r#"{"__REALTIME_TIMESTAMP":"1772359200000000","_HOSTNAME":"web1","SYSLOG_IDENTIFIER":"sshd","_PID":"77","PRIORITY":"6","SYSLOG_FACILITY":"4","MESSAGE":"Invalid user admin from 203.0.113.5 port 4000"}"#,
    );
    assert_common(&p);
    assert_eq!(p.parser, "sshd");
    assert_eq!(s(&p, "event.dataset"), Some("journald.sshd"));
    assert_eq!(p.event.logsource, ls(Some("linux"), Some("sshd"), None));
    assert_eq!(s(&p, "user.name"), Some("admin"));
    assert_eq!(
        s(&p, "message"),
        Some("Invalid user admin from 203.0.113.5 port 4000")
    );
    assert_eq!(p.event.timestamp, at(2026, 3, 1, 10, 0, 0));
}

#[test]
fn cef_and_key_value() {
    let p = parse("CEF:0|Check Point|VPN-1 & FireWall-1|R81|4|Drop|5|src=203.0.113.9 dst=10.0.0.5 spt=4444 dpt=445 proto=TCP act=Drop");
    assert_common(&p);
    assert_eq!(p.parser, "cef");
    assert_eq!(p.event.logsource, ls(None, None, Some("firewall")));
    assert_eq!(s(&p, "event.action"), Some("denied"));
    assert_eq!(s(&p, "message"), Some("Drop"));

    let p = parse("<134>Mar  1 10:00:00 siem-relay CEF:0|Trend Micro|Deep Security Agent|20|4000000|Eicar_test_file|6|cn1=1 fname=eicar.com filePath=/tmp/eicar.com suser=bob");
    assert_eq!(p.parser, "cef");
    assert_eq!(s(&p, "event.dataset"), Some("syslog3164.cef"));
    assert_eq!(
        p.event.logsource,
        LogSource::default(),
        "not a firewall record"
    );
    assert_eq!(s(&p, "file.path"), Some("/tmp/eicar.com"));

    let fortigate = r#"<189>date=2026-03-01 time=10:00:00 devname="FGT-HQ" devid="FG100F" type="traffic" subtype="forward" srcip=203.0.113.9 srcport=51514 dstip=10.0.0.5 dstport=3389 proto=6 action="deny" policyid=7"#;
    let p = parse(fortigate);
    assert_common(&p);
    assert_eq!(p.parser, "kv");
    assert_eq!(s(&p, "event.dataset"), Some("syslog.kv"));
    assert_eq!(p.event.logsource, ls(None, None, Some("firewall")));
    assert_eq!(i(&p, "log.syslog.priority"), Some(189));
    assert_eq!(i(&p, "destination.port"), Some(3389));
    assert_eq!(p.event.timestamp, at(2026, 3, 1, 10, 0, 0));

    let p = parse("user=bob action=login status=ok");
    assert_eq!(p.parser, "kv");
    assert_eq!(p.event.logsource, LogSource::default());
}

#[test]
fn unparsed_and_empty_lines_are_kept() {
    let p = parse("something nobody recognizes, 42");
    assert_common(&p);
    assert_eq!(p.parser, "unparsed");
    assert!(p.event.has_tag(tags::UNPARSED));
    assert_eq!(s(&p, "message"), Some("something nobody recognizes, 42"));
    assert_eq!(s(&p, "event.module"), Some("unparsed"));
    assert_eq!(p.event.logsource, LogSource::default());
    assert_eq!(p.event.timestamp, received());

    let p = parse("");
    assert_common(&p);
    assert!(p.event.has_tag(tags::UNPARSED));
    assert_eq!(s(&p, "message"), Some(""));

    // A syslog line from an unknown program is still a syslog event.
    let p = parse("Mar  1 10:00:00 db1 postgres[55]: LOG:  checkpoint starting: time");
    assert_eq!(p.parser, "syslog3164");
    assert!(!p.event.has_tag(tags::UNPARSED));
    assert_eq!(p.event.logsource, ls(Some("linux"), Some("syslog"), None));
}

#[test]
fn oversized_lines_are_truncated_and_tagged() {
    let user = "x".repeat(100 * 1024);
    let line = format!("Mar  1 10:00:00 web1 sshd[1]: Invalid user {user} from 203.0.113.9");
    let p = Parser::default().parse(line.as_bytes(), received());
    assert_common(&p);
    assert!(p.event.has_tag(tags::TRUNCATED));
    assert_eq!(p.event.original.len(), 64 * 1024);
    assert_eq!(p.parser, "sshd", "still recognized");
    assert!(
        p.event.has_tag(tags::PARTIAL),
        "the source address was cut off"
    );
    assert!(s(&p, "source.ip").is_none());

    let small = Parser::new(ParseOptions {
        max_line_bytes: 40,
        ..ParseOptions::default()
    });
    let p = small.parse(
        "Mar  1 10:00:00 web1 sshd[1]: Invalid user é".as_bytes(),
        received(),
    );
    assert!(p.event.has_tag(tags::TRUNCATED));
    assert!(p.event.original.len() <= 40);
}

#[test]
fn invalid_utf8_is_decoded_lossily_and_tagged() {
    let mut line = b"Mar  1 10:00:00 web1 sshd[1]: Failed password for invalid user ad".to_vec();
    line.extend_from_slice(&[0xff, 0xfe]);
    line.extend_from_slice(b"min from 203.0.113.9 port 22 ssh2\r\n");
    let p = Parser::default().parse(&line, received());
    assert_common(&p);
    assert!(p.event.has_tag(tags::INVALID_UTF8));
    assert!(!p.event.has_tag(tags::TRUNCATED));
    assert_eq!(s(&p, "user.name"), Some("ad\u{fffd}\u{fffd}min"));
    assert_eq!(s(&p, "source.ip"), Some("203.0.113.9"));
    assert!(!p.event.original.ends_with('\r'), "CRLF terminator dropped");
}

#[test]
fn malformed_headers_are_partial() {
    let p = parse("<13>1 2026-03-01T10:00:00Z host app 1 ID [broken sd");
    assert_common(&p);
    assert!(p.event.has_tag(tags::PARTIAL));
    assert_eq!(s(&p, "host.name"), Some("host"));
    let p = parse("Feb 30 10:00:00 host app: impossible date");
    assert!(p.event.has_tag(tags::PARTIAL));
    assert_eq!(
        p.event.timestamp,
        received(),
        "falls back to the receive time"
    );
    let p = parse("CEF:0|Vendor|Prod");
    assert_eq!(p.parser, "cef");
    assert!(p.event.has_tag(tags::PARTIAL));
}

#[test]
fn bsd_year_and_zone_options_end_to_end() {
    // December line received on 1 January: last year.
    let jan1 = at(2027, 1, 1, 0, 0, 30);
    let p = Parser::default().parse(
        b"Dec 31 23:59:50 h sshd[1]: Server listening on 0.0.0.0 port 22.",
        jan1,
    );
    assert_eq!(p.event.timestamp, at(2026, 12, 31, 23, 59, 50));
    // The configured zone applies to BSD stamps.
    let plus5 = Parser::new(ParseOptions {
        local_offset: parse_utc_offset("+05:00").expect("offset"),
        ..ParseOptions::default()
    });
    let p = plus5.parse(
        b"Mar  1 10:00:00 h sshd[1]: Server listening on 0.0.0.0 port 22.",
        received(),
    );
    assert_eq!(p.event.timestamp, at(2026, 3, 1, 5, 0, 0));
    // rsyslog "message repeated" wrapper: inner message parsed, count kept.
    let p = parse("Mar  1 10:00:00 h sshd[1]: message repeated 5 times: [ Failed password for root from 5.36.59.76 port 42393 ssh2]");
    assert_eq!(i(&p, "log.syslog.repeat_count"), Some(5));
    assert_eq!(s(&p, "source.ip"), Some("5.36.59.76"));
}

#[test]
fn hostile_field_counts_are_capped() {
    let kv: String = (0..5000).map(|i| format!("k{i}=v ")).collect();
    let p = parse(&kv);
    assert_common(&p);
    assert_eq!(p.parser, "kv");
    assert!(p.event.has_tag(tags::PARTIAL));
    assert!(
        p.event.fields.len() <= MAX_FIELDS + 8,
        "{}",
        p.event.fields.len()
    );

    let keys: Vec<String> = (0..5000).map(|i| format!("\"k{i}\":{i}")).collect();
    let json = format!("{{{}}}", keys.join(","));
    let p = parse(&json);
    assert_eq!(p.parser, "json");
    assert!(p.event.has_tag(tags::PARTIAL));
    assert!(p.event.fields.len() <= MAX_FIELDS + 8);
    assert_eq!(i(&p, "k0"), Some(0));

    // A repeated JSON key keeps its last value, once.
    let p = parse(r#"{"a":1,"b":{"c":true},"a":2,"e":{}}"#);
    assert_eq!(i(&p, "a"), Some(2));
    assert_eq!(p.event.fields.iter().filter(|(k, _)| *k == "a").count(), 1);
    assert_eq!(p.event.fields.get("b.c"), Some(&Value::Bool(true)));
    assert_eq!(s(&p, "e"), Some("{}"));
}
