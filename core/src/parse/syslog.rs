//! Syslog envelopes: the header around a program's message.
//!
//! Recognized shapes (the PRI `<n>` is optional except for RFC 5424):
//!
//! | shape | example |
//! |---|---|
//! | RFC 5424 | `<165>1 2024-03-01T10:00:00.003Z web1 app 42 ID47 [ex@32473 k="v"] msg` |
//! | RFC 3164 (BSD) | `<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed` |
//! | BSD without PRI, as in `/var/log/auth.log` | `Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user …` |
//! | rsyslog ISO 8601 (RSYSLOG_FileFormat / ForwardFormat), with or without PRI | `2024-03-01T10:00:00.123456+06:00 web1 sshd[7]: …` |
//! | PRI followed directly by content (FortiGate and other appliances) | `<189>date=2024-03-01 time=10:00:00 devname="fw1" …` |
//!
//! The BSD timestamp has no year and no zone. The zone is
//! [`ParseOptions::local_offset`](super::ParseOptions::local_offset)
//! (default UTC). The year is
//! [`ParseOptions::rfc3164_year`](super::ParseOptions::rfc3164_year) when
//! set (replays of old files), else a year written in the stamp (Cisco's
//! `Mmm dd yyyy hh:mm:ss`), else inferred from the receive time: of the
//! candidate years (receive year + 1 down to − 8, enough for any 29
//! February), the first whose instant is not more than one day after the
//! receive time. That is the candidate closest to the receive time that is
//! not in the future beyond clock skew, and it handles the December→January
//! rollover both ways: `Dec 31 23:59:58` received on 1 January is last
//! year's; `Jan  1 00:00:01` received just before midnight on 31 December
//! (sender clock ahead) is next year's. A date that exists in no candidate
//! year (`Feb 30`) leaves the receive time as `@timestamp` and tags the
//! event partial.
//!
//! Host names are optional in BSD lines: when the first word after the
//! timestamp already has the shape of a tag (`sshd[42]:` or `kernel:`), the
//! line is read as having no host.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::event::{Event, Value};

use super::timestamp::{parse_bsd, parse_iso, resolve_bsd};
use super::ParseOptions;

/// Which envelope a line had; its name is the parser name for metrics and
/// `event.dataset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Rfc3164,
    Rfc5424,
    /// Only a PRI, then content.
    PriOnly,
}

impl Format {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Rfc3164 => "syslog3164",
            Format::Rfc5424 => "syslog5424",
            Format::PriOnly => "syslog",
        }
    }
}

/// The event time the header gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stamp {
    /// No timestamp (RFC 5424 nil value, or PRI-only lines).
    Absent,
    At(DateTime<Utc>),
    /// A timestamp was there but is not a real time (`Feb 30`, `25:00:00`).
    Invalid,
}

/// A parsed syslog header; the message is borrowed from the line.
#[derive(Debug, Clone)]
pub(crate) struct Envelope<'a> {
    pub format: Format,
    pub pri: Option<u8>,
    pub version: Option<&'a str>,
    pub timestamp: Stamp,
    pub hostname: Option<&'a str>,
    pub app: Option<&'a str>,
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    /// RFC 5424 structured data as (SD-ID, param name, unescaped value).
    pub structured: Vec<(&'a str, &'a str, Cow<'a, str>)>,
    pub msg: &'a str,
    /// The header was recognized but could not be read completely.
    pub partial: bool,
}

impl<'a> Envelope<'a> {
    fn new(format: Format, pri: Option<u8>, msg: &'a str) -> Self {
        Envelope {
            format,
            pri,
            version: None,
            timestamp: Stamp::Absent,
            hostname: None,
            app: None,
            procid: None,
            msgid: None,
            structured: Vec::new(),
            msg,
            partial: false,
        }
    }
}

/// Reads a syslog header; `None` when the line has none of the shapes above.
pub(crate) fn parse<'a>(
    line: &'a str,
    opts: &ParseOptions,
    received: DateTime<Utc>,
) -> Option<Envelope<'a>> {
    if line.as_bytes().first() == Some(&b'<') {
        let (pri, rest) = parse_pri(line)?;
        if let Some(env) = parse_5424(pri, rest, opts) {
            return Some(env);
        }
        if let Some(env) = parse_3164(Some(pri), rest, opts, received) {
            return Some(env);
        }
        return Some(Envelope::new(Format::PriOnly, Some(pri), rest));
    }
    parse_3164(None, line, opts, received)
}

/// `<n>` with 1–3 digits and n ≤ 191 (facility 23, severity 7).
fn parse_pri(line: &str) -> Option<(u8, &str)> {
    let b = line.as_bytes();
    let close = b.iter().take(5).position(|c| *c == b'>')?;
    if close < 2 {
        return None;
    }
    let digits = &line[1..close];
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let pri: u16 = digits.parse().ok()?;
    let pri = u8::try_from(pri).ok().filter(|p| *p <= 191)?;
    Some((pri, &line[close + 1..]))
}

/// RFC 5424 after the PRI: `VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP
/// PROCID SP MSGID SP STRUCTURED-DATA [SP MSG]`. Recognized by the version
/// (1–2 digits, not 0, then a space); a header cut short is kept as far as
/// it goes and marked partial.
fn parse_5424<'a>(pri: u8, s: &'a str, opts: &ParseOptions) -> Option<Envelope<'a>> {
    let b = s.as_bytes();
    let vlen = b.iter().take(3).take_while(|c| c.is_ascii_digit()).count();
    if vlen == 0 || vlen > 2 || b[0] == b'0' || b.get(vlen) != Some(&b' ') {
        return None;
    }
    let mut env = Envelope::new(Format::Rfc5424, Some(pri), "");
    env.version = Some(&s[..vlen]);
    let mut rest = &s[vlen + 1..];

    let Some(ts) = next_token(&mut rest) else {
        env.partial = true;
        return Some(env);
    };
    env.timestamp = match ts {
        "-" => Stamp::Absent,
        _ => match parse_iso(ts.as_bytes(), opts.local_offset) {
            Some((t, n)) if n == ts.len() => Stamp::At(t),
            _ => Stamp::Invalid,
        },
    };
    let mut header = [None; 4];
    for slot in header.iter_mut() {
        match next_token(&mut rest) {
            Some(tok) => *slot = Some(tok).filter(|t| *t != "-" && !t.is_empty()),
            None => {
                env.partial = true;
                break;
            }
        }
    }
    [env.hostname, env.app, env.procid, env.msgid] = header;
    if env.partial {
        return Some(env);
    }
    match structured_data(rest, &mut env.structured) {
        Some(msg) => env.msg = msg.strip_prefix('\u{feff}').unwrap_or(msg),
        None => {
            // Malformed SD: we cannot know where MSG starts; keep it all.
            env.partial = true;
            env.msg = rest;
        }
    }
    Some(env)
}

/// The next space-delimited token, advancing `rest`; `None` at the end.
fn next_token<'a>(rest: &mut &'a str) -> Option<&'a str> {
    if rest.is_empty() {
        return None;
    }
    let (tok, after) = super::text::token(rest);
    *rest = after;
    Some(tok)
}

/// Reads STRUCTURED-DATA at the start of `s` into `out`; returns the MSG
/// after it, or `None` when the SD is malformed.
fn structured_data<'a>(
    s: &'a str,
    out: &mut Vec<(&'a str, &'a str, Cow<'a, str>)>,
) -> Option<&'a str> {
    let b = s.as_bytes();
    match b.first() {
        None => return Some(""),
        Some(b'-') => {
            return match b.get(1) {
                None => Some(""),
                Some(b' ') => Some(&s[2..]),
                Some(_) => None,
            }
        }
        Some(b'[') => {}
        Some(_) => return None,
    }
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        i += 1;
        let id_start = i;
        while let Some(c) = b.get(i) {
            if matches!(c, b' ' | b']' | b'=' | b'"') {
                break;
            }
            i += 1;
        }
        let sd_id = &s[id_start..i];
        if sd_id.is_empty() {
            return None;
        }
        loop {
            match b.get(i)? {
                b']' => {
                    i += 1;
                    break;
                }
                b' ' => i += 1,
                _ => {
                    let name_start = i;
                    while let Some(c) = b.get(i) {
                        if matches!(c, b'=' | b' ' | b']' | b'"') {
                            break;
                        }
                        i += 1;
                    }
                    let name = &s[name_start..i];
                    if name.is_empty() || b.get(i) != Some(&b'=') || b.get(i + 1) != Some(&b'"') {
                        return None;
                    }
                    i += 2;
                    let value_start = i;
                    let mut escaped = false;
                    loop {
                        match b.get(i)? {
                            b'\\' => {
                                escaped = true;
                                i += 2;
                            }
                            b'"' => break,
                            _ => i += 1,
                        }
                    }
                    let raw = s.get(value_start..i)?;
                    i += 1;
                    let value = if escaped {
                        Cow::Owned(unescape_param(raw))
                    } else {
                        Cow::Borrowed(raw)
                    };
                    out.push((sd_id, name, value));
                }
            }
        }
    }
    match b.get(i) {
        None => Some(""),
        Some(b' ') => Some(&s[i + 1..]),
        Some(_) => None,
    }
}

/// RFC 5424 §6.3.3: `\"`, `\\` and `\]` stand for the character; any other
/// backslash is kept as written.
fn unescape_param(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&n) = chars.peek() {
                if matches!(n, '"' | '\\' | ']') {
                    out.push(n);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

/// BSD header after an optional PRI: timestamp (BSD or ISO 8601), host,
/// tag. `None` when there is no timestamp.
fn parse_3164<'a>(
    pri: Option<u8>,
    s: &'a str,
    opts: &ParseOptions,
    received: DateTime<Utc>,
) -> Option<Envelope<'a>> {
    let b = s.as_bytes();
    let (timestamp, n) = if let Some((stamp, n)) = parse_bsd(b) {
        let t = resolve_bsd(&stamp, opts.local_offset, opts.rfc3164_year, received);
        (t.map_or(Stamp::Invalid, Stamp::At), n)
    } else if let Some((t, n)) = parse_iso(b, opts.local_offset) {
        (Stamp::At(t), n)
    } else {
        return None;
    };
    let mut env = Envelope::new(Format::Rfc3164, pri, "");
    env.timestamp = timestamp;
    match b.get(n) {
        None => return Some(env),
        Some(b' ') => {}
        Some(_) => return None,
    }
    let rest = &s[n + 1..];
    let (first, after_first) = super::text::token(rest);
    if first.starts_with("CEF:") || first.starts_with("LEEF:") {
        env.msg = rest;
    } else if looks_like_tag(first) {
        read_tag(rest, &mut env);
    } else {
        env.hostname = Some(first).filter(|h| !h.is_empty());
        read_tag(after_first, &mut env);
    }
    Some(env)
}

/// Whether a word is a complete tag (`sshd[42]:`, `sshd:`, `CRON[9]`),
/// which means the line has no host name.
fn looks_like_tag(word: &str) -> bool {
    let b = word.as_bytes();
    match b.last() {
        Some(b':') => b.len() > 1 && !word.starts_with("CEF") && !word.starts_with("LEEF"),
        Some(b']') => memchr::memchr(b'[', b).is_some_and(|i| i > 0),
        _ => false,
    }
}

/// Reads `tag[pid]: msg`, `tag: msg` or, when there is no tag, just `msg`.
fn read_tag<'a>(s: &'a str, env: &mut Envelope<'a>) {
    let b = s.as_bytes();
    env.msg = s;
    if s.starts_with("CEF:") || s.starts_with("LEEF:") {
        return;
    }
    let end = b
        .iter()
        .take(129)
        .position(|c| matches!(c, b' ' | b'[' | b':'));
    let Some(end) = end.filter(|e| *e > 0) else {
        return;
    };
    match b[end] {
        b'[' => {
            let Some(close) = memchr::memchr(b']', &b[end..]).map(|k| end + k) else {
                return;
            };
            let pid = &s[end + 1..close];
            if pid.is_empty() || pid.len() > 128 || pid.contains(' ') {
                return;
            }
            let mut i = close + 1;
            if b.get(i) == Some(&b':') {
                i += 1;
            }
            match b.get(i) {
                None => {}
                Some(b' ') => i += 1,
                Some(_) => return,
            }
            env.app = Some(&s[..end]);
            env.procid = Some(pid);
            env.msg = &s[i..];
        }
        b':' => {
            let mut i = end + 1;
            match b.get(i) {
                None => {}
                Some(b' ') => i += 1,
                Some(_) => return, // "http://…", "10:00" — not a tag
            }
            env.app = Some(&s[..end]);
            env.msg = &s[i..];
        }
        _ => {}
    }
}

/// ECS `log.syslog.facility.name` for a facility code.
pub(crate) fn facility_name(code: u8) -> &'static str {
    const NAMES: [&str; 24] = [
        "kern",
        "user",
        "mail",
        "daemon",
        "auth",
        "syslog",
        "lpr",
        "news",
        "uucp",
        "cron",
        "authpriv",
        "ftp",
        "ntp",
        "security",
        "console",
        "solaris-cron",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    ];
    NAMES.get(usize::from(code)).copied().unwrap_or("unknown")
}

/// ECS `log.syslog.severity.name` (RFC 5424 keywords) for a severity code.
pub(crate) fn severity_name(code: u8) -> &'static str {
    const NAMES: [&str; 8] = [
        "emergency",
        "alert",
        "critical",
        "error",
        "warning",
        "notice",
        "informational",
        "debug",
    ];
    NAMES.get(usize::from(code)).copied().unwrap_or("unknown")
}

/// Writes the header's fields onto a fresh event (not the message: the
/// content parser decides that). Each name is written once, so they are
/// appended without a lookup; structured data names come from the input and
/// are inserted.
pub(crate) fn apply(env: &Envelope<'_>, ev: &mut Event) {
    if let Some(pri) = env.pri {
        let (facility, severity) = (pri >> 3, pri & 7);
        ev.fields
            .push_new("log.syslog.priority", Value::Int(i64::from(pri)));
        ev.fields
            .push_new("log.syslog.facility.code", Value::Int(i64::from(facility)));
        ev.fields
            .push_new("log.syslog.facility.name", facility_name(facility));
        ev.fields
            .push_new("log.syslog.severity.code", Value::Int(i64::from(severity)));
        ev.fields
            .push_new("log.syslog.severity.name", severity_name(severity));
        ev.fields.push_new("log.level", severity_name(severity));
    }
    if let Some(v) = env.version {
        ev.fields.push_new("log.syslog.version", v);
    }
    if let Stamp::At(t) = env.timestamp {
        ev.timestamp = t;
    }
    if let Some(h) = env.hostname {
        ev.fields.push_new("host.name", h);
    }
    if let Some(app) = env.app {
        ev.fields.push_new("process.name", app);
        if env.format == Format::Rfc5424 {
            ev.fields.push_new("log.syslog.appname", app);
        }
    }
    if let Some(procid) = env.procid {
        if let Some(pid) = super::text::parse_uint(procid) {
            ev.fields.push_new("process.pid", Value::Int(pid));
        }
        if env.format == Format::Rfc5424 {
            ev.fields.push_new("log.syslog.procid", procid);
        }
    }
    if let Some(msgid) = env.msgid {
        ev.fields.push_new("log.syslog.msgid", msgid);
    }
    for (id, name, value) in &env.structured {
        ev.fields.insert(
            super::text::concat(&["log.syslog.structured_data.", id, ".", name]),
            value.as_ref(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn received() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0)
            .single()
            .expect("valid")
    }

    fn env(line: &str) -> Envelope<'_> {
        parse(line, &ParseOptions::default(), received()).expect("syslog")
    }

    #[test]
    fn rfc5424_full() {
        let e = env(
            r#"<165>1 2026-03-01T10:00:00.003Z web1.example evntslog 8710 ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] ﻿An application event"#,
        );
        assert_eq!(e.format, Format::Rfc5424);
        assert_eq!(e.pri, Some(165));
        assert_eq!(
            e.timestamp,
            Stamp::At(
                Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0)
                    .single()
                    .expect("t")
                    + chrono::Duration::milliseconds(3)
            )
        );
        assert_eq!(e.hostname, Some("web1.example"));
        assert_eq!(e.app, Some("evntslog"));
        assert_eq!(e.procid, Some("8710"));
        assert_eq!(e.msgid, Some("ID47"));
        assert_eq!(e.structured.len(), 4);
        assert_eq!(e.structured[3].0, "examplePriority@32473");
        assert_eq!(e.structured[3].2, "high");
        assert_eq!(e.msg, "An application event");
        assert!(!e.partial);
    }

    #[test]
    fn rfc5424_nil_values_and_escapes() {
        let e =
            env(r#"<13>1 - - - - - [x@1 a="q\"uote" b="back\\slash" c="br\]acket" d="keep\n"] m"#);
        assert_eq!(e.timestamp, Stamp::Absent);
        assert_eq!(
            (e.hostname, e.app, e.procid, e.msgid),
            (None, None, None, None)
        );
        let values: Vec<&str> = e.structured.iter().map(|(_, _, v)| v.as_ref()).collect();
        assert_eq!(values, [r#"q"uote"#, r"back\slash", "br]acket", r"keep\n"]);
        assert_eq!(e.msg, "m");
        let e = env("<13>1 - host app - - -");
        assert_eq!(e.msg, "");
        assert!(!e.partial);
    }

    #[test]
    fn rfc5424_malformed_is_partial_not_lost() {
        let e = env("<13>1 2026-03-01T10:00:00Z host app");
        assert!(e.partial);
        assert_eq!(e.app, Some("app"));
        let e = env(r#"<13>1 2026-03-01T10:00:00Z host app 1 ID [broken sd"#);
        assert!(e.partial);
        assert_eq!(e.msg, "[broken sd");
        let e = env("<13>1 yesterday host app 1 ID - msg");
        assert_eq!(e.timestamp, Stamp::Invalid);
        assert_eq!(e.msg, "msg");
    }

    #[test]
    fn bsd_with_and_without_pri() {
        let e = env("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(e.format, Format::Rfc3164);
        assert_eq!(e.pri, Some(34));
        assert_eq!(e.hostname, Some("mymachine"));
        assert_eq!(e.app, Some("su"));
        assert_eq!(e.procid, None);
        assert_eq!(e.msg, "'su root' failed for lonvick on /dev/pts/8");
        // Received 2 March 2026: October is in the past year.
        assert_eq!(
            e.timestamp,
            Stamp::At(
                Utc.with_ymd_and_hms(2025, 10, 11, 22, 14, 15)
                    .single()
                    .expect("t")
            )
        );

        let e =
            env("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186");
        assert_eq!(e.pri, None);
        assert_eq!(
            (e.hostname, e.app, e.procid),
            (Some("LabSZ"), Some("sshd"), Some("24200"))
        );
        assert_eq!(e.msg, "Invalid user webmaster from 173.234.31.186");
    }

    #[test]
    fn bsd_without_host_or_tag() {
        let e = env("<13>Mar  1 10:00:00 sshd[12]: hello");
        assert_eq!(
            (e.hostname, e.app, e.procid),
            (None, Some("sshd"), Some("12"))
        );
        let e = env("<13>Mar  1 10:00:00 kernel: [ 1.2] boot");
        assert_eq!((e.hostname, e.app), (None, Some("kernel")));
        assert_eq!(e.msg, "[ 1.2] boot");
        let e = env("Mar  1 10:00:00 host last message repeated 3 times");
        assert_eq!((e.hostname, e.app), (Some("host"), None));
        assert_eq!(e.msg, "last message repeated 3 times");
        let e = env("Mar  1 10:00:00 host see http://x/y");
        assert_eq!(e.app, None);
        let e = env("Mar  1 10:00:00 fw CEF:0|Vendor|Product|1|100|name|5|src=1.2.3.4");
        assert_eq!((e.hostname, e.app), (Some("fw"), None));
        assert!(e.msg.starts_with("CEF:0|"));
        let e = env("Mar  1 10:00:00 host postfix/smtpd[99]: connect");
        assert_eq!(e.app, Some("postfix/smtpd"));
        let e = env("Mar  1 10:00:00");
        assert_eq!((e.hostname, e.msg), (None, ""));
    }

    #[test]
    fn rsyslog_iso_and_pri_only() {
        let e = env("2026-03-01T10:00:00.123456+06:00 web1 sudo:   alice : TTY=pts/0");
        assert_eq!(e.format, Format::Rfc3164);
        assert_eq!(
            e.timestamp,
            Stamp::At(
                Utc.with_ymd_and_hms(2026, 3, 1, 4, 0, 0)
                    .single()
                    .expect("t")
                    + chrono::Duration::microseconds(123_456)
            )
        );
        assert_eq!((e.hostname, e.app), (Some("web1"), Some("sudo")));
        assert_eq!(e.msg, "  alice : TTY=pts/0");
        let e = env("<30>2026-03-01T10:00:00Z web1 app: x");
        assert_eq!((e.pri, e.app), (Some(30), Some("app")));
        let e = env(r#"<189>date=2026-03-01 time=10:00:00 devname="fw1""#);
        assert_eq!(e.format, Format::PriOnly);
        assert!(e.msg.starts_with("date="));
    }

    #[test]
    fn not_syslog() {
        let o = ParseOptions::default();
        for line in [
            "",
            "<",
            "<>",
            "<1234>x",
            "<192>Mar  1 10:00:00 h a: m",
            "<x>",
            "hello world",
            "192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 1",
        ] {
            assert!(parse(line, &o, received()).is_none(), "{line:?}");
        }
    }

    #[test]
    fn pri_decomposes() {
        assert_eq!(facility_name(165 >> 3), "local4");
        assert_eq!(severity_name(165 & 7), "notice");
        assert_eq!(facility_name(10), "authpriv");
    }
}
