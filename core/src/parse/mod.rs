//! The parser library: raw line in, normalized [`Event`] out.
//!
//! Used at the edge by the collector and by the detector for raw lines that
//! third-party producers put on Kafka. Every line becomes an event: a line no
//! parser claims is kept as a message-only event tagged
//! [`tags::UNPARSED`], never dropped. Nothing here panics on any input (see
//! the garbage/prefix tests in `core/tests/parse_robustness.rs`).
//!
//! # How a line is read
//!
//! 1. [`decode_line`]: a trailing `\n`/`\r\n` is dropped, the line is cut at
//!    [`ParseOptions::max_line_bytes`] (tag [`tags::TRUNCATED`]) and decoded
//!    lossily (tag [`tags::INVALID_UTF8`]). The result is `event.original`.
//! 2. **Envelope**: a syslog header ([`syslog`]: RFC 5424, RFC 3164 with or
//!    without PRI, rsyslog ISO 8601, PRI-only) or a journald JSON export
//!    entry ([`json`]). Its program name (`process.name`) picks the program
//!    parser.
//! 3. **Program parsers** on the syslog message: [`sshd`], [`sudo`], [`pam`]
//!    (any program's `pam_*` lines), [`accounts`] (useradd & co.), [`cron`],
//!    [`netfilter`] (kernel iptables/nftables packet logs).
//! 4. **Content parsers**, for lines without an envelope or messages from
//!    other programs: [`cef`], [`json`], [`netfilter`], [`web_access`],
//!    [`kv`] — in that order, each recognizing its shape cheaply first.
//! 5. Common fields are filled in (below) and tags set.
//!
//! A parser that recognizes a line's shape but cannot read all of it (a
//! truncated line, a malformed header) keeps what it read and tags
//! [`tags::PARTIAL`].
//!
//! # Fields every event gets
//!
//! | field | value |
//! |---|---|
//! | `event.original` | the raw line ([`Event::original`]) |
//! | `@timestamp` | the time the line states; the receive time when it states none or an impossible one |
//! | `message` | the syslog MSG / journald `MESSAGE` / JSON `message` or `msg` / CEF `msg` or Name / kv `msg`; otherwise the whole line |
//! | `event.kind` | `event` |
//! | `event.module` | the most specific parser that claimed the line — the same name as [`Parsed::parser`] (`sshd`, `pam`, `web_access`, `syslog3164`, `unparsed`, …) |
//! | `event.dataset` | `<envelope>.<parser>` when a program/content parser ran inside an envelope (`syslog3164.sshd`, `syslog5424.cef`, `journald.sudo`), else the parser name |
//! | `tags` | `qalqan.truncated`, `qalqan.invalid_utf8`, `qalqan.partial`, `qalqan.unparsed` as they apply |
//!
//! `event.kind`, `event.module` and `event.dataset` are only set when the
//! line did not bring its own (ECS JSON from Filebeat/Elastic Agent keeps
//! `event.module: nginx`).
//!
//! From syslog envelopes: `log.syslog.priority`, `log.syslog.facility.code`
//! /`.name`, `log.syslog.severity.code`/`.name`, `log.level`,
//! `host.name`, `process.name`, `process.pid`; RFC 5424 also
//! `log.syslog.version`, `log.syslog.appname`, `log.syslog.procid`,
//! `log.syslog.msgid` and `log.syslog.structured_data.<sd-id>.<param>`;
//! rsyslog's `message repeated N times: [ … ]` gives
//! `log.syslog.repeat_count` and the inner message is parsed.
//!
//! Parser-specific fields are listed in each parser's module docs. Values
//! follow ECS types: ports, status codes, byte counts and pids are integers;
//! `event.category` and `event.type` are always lists; IP addresses are in
//! canonical text (IPv4-mapped IPv6 becomes IPv4); MACs are `AA-BB-CC-…`.
//!
//! # Sigma logsource
//!
//! Following the SigmaHQ taxonomy (`sigma-appendix-taxonomy.md`). A rule's
//! logsource matches an event when each of the rule's product/service/
//! category equals the event's; a rule that names only `product: linux`
//! therefore applies to every Linux event below.
//!
//! | events | product | service | category |
//! |---|---|---|---|
//! | sshd (`sshd`, `sshd-session`, `sshd-auth`), including its `pam_*` lines | `linux` | `sshd` | – |
//! | sudo, including its `pam_*` lines | `linux` | `sudo` | – |
//! | `pam_*` lines of any other program; `su`, `login`, `pkexec`, `polkitd`, `systemd-logind`, `gdm-password`, `lightdm`, `runuser`, `unix_chkpwd`, `chsh`, `chfn`, `newgrp`; account tools (`useradd`, `usermod`, `userdel`, `groupadd`, `groupmod`, `groupdel`, `gpasswd`, `passwd`, `chpasswd`, `chage`, `newusers`, `adduser`, `deluser`, `addgroup`, `delgroup`) | `linux` | `auth` | – |
//! | cron job lines (`cron`, `CRON`, `crond`, `anacron`) | `linux` | `cron` | – |
//! | `vsftpd` / `clamd`, `freshclam` / `guacd` | `linux` | `vsftpd` / `clamav` / `guacamole` | – |
//! | kernel netfilter packet logs (iptables, ufw, nftables), with or without a syslog envelope | `linux` | – | `firewall` |
//! | any other syslog line (incl. other kernel lines) | `linux` | `syslog` | – |
//! | web access logs (combined/common; bare or inside syslog) | [`ParseOptions::web_product`] (default none) | – | `webserver` |
//! | generic JSON lines | [`ParseOptions::json_logsource`] (default none; e.g. `windows`/`sysmon` for forwarded Sysmon JSON) | | |
//! | journald entries | as the syslog rows above, by `SYSLOG_IDENTIFIER` | | |
//! | CEF and key=value records that look like a firewall's (see below) | – | – | `firewall` |
//! | other CEF and key=value records, unparsed lines | – | – | – |
//!
//! "Looks like a firewall" (CEF, key=value): the record names a network
//! endpoint (`source.ip`, `destination.ip` or `destination.port`) and
//! either carries a firewall verdict (`act`/`action` normalized to `accept`
//! or `denied`) or the device names itself a firewall (vendor/product/type
//! text containing `firewall`, `fortigate`, `fortios`, `pan-os`,
//! `checkpoint`, `netscreen`, `pfsense`, `opnsense`, the word `asa`, or a word
//! starting with `fw`).
//!
//! # Sigma field names → ECS (for processing pipelines)
//!
//! | Sigma (logsource) | event field |
//! |---|---|
//! | `c-ip` (webserver) | `source.ip` |
//! | `cs-method` | `http.request.method` |
//! | `cs-uri-stem` | `url.path` |
//! | `cs-uri-query` | `url.query` (SigmaHQ web rules often put the whole URI here: map to `url.original` for those) |
//! | `cs-uri` | `url.original` |
//! | `sc-status` | `http.response.status_code` |
//! | `cs-user-agent` / `cs-referer` / `cs-host` | `user_agent.original` / `http.request.referrer` / `url.domain` |
//! | `src_ip` / `dst_ip` / `src_port` / `dst_port` (firewall) | `source.ip` / `destination.ip` / `source.port` / `destination.port` |
//! | `action` (firewall) | `event.action` (`accept` / `denied` / prefix) |
//! | `USER` (sudo) | `user.effective.name` |
//! | `pam_user` / `pam_rhost` / `pam_message` (auth) | `user.name` / `source.ip` / `message` |
//! | keywords (no field) | `message` and `event.original` |

use chrono::{DateTime, FixedOffset, Offset, Utc};

use crate::event::{tags, Event, Fields, LogSource};

// The parser modules are public for their documentation (each lists the
// lines it reads and the fields it sets); their functions are crate-private
// and reached through [`Parser`].
pub mod accounts;
pub mod cef;
pub mod cron;
mod ecs;
pub mod json;
pub mod kv;
mod logsource;
pub mod netfilter;
pub mod pam;
pub mod sshd;
pub mod sudo;
pub mod syslog;
mod text;
mod timestamp;
pub mod web_access;

/// Default maximum line length: longer lines are truncated and tagged.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;

/// How to read lines from one input.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Lines longer than this are cut here and tagged `qalqan.truncated`.
    pub max_line_bytes: usize,
    /// UTC offset of timestamps that carry no zone: RFC 3164 (BSD syslog)
    /// headers and zone-less times in JSON, CEF and key=value records. Set
    /// it to the senders' clock zone (e.g. `+05:00`); default UTC. See
    /// [`parse_utc_offset`] for config text.
    pub local_offset: FixedOffset,
    /// A fixed year for RFC 3164 timestamps instead of inferring it from the
    /// receive time — for replaying old files (the loghub sample is from
    /// 2015). `None` (default) infers: the year that puts the timestamp
    /// closest to the receive time and not more than one day after it.
    pub rfc3164_year: Option<i32>,
    /// Sigma logsource for generic JSON lines from this input (e.g.
    /// product `windows`, service `sysmon`). Default: none.
    pub json_logsource: LogSource,
    /// Sigma `product` for web access logs from this input (`nginx`,
    /// `apache`, …); their category is always `webserver`. Default: none.
    pub web_product: Option<String>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            local_offset: utc_offset_zero(),
            rfc3164_year: None,
            json_logsource: LogSource::default(),
            web_product: None,
        }
    }
}

/// UTC as a `FixedOffset`.
fn utc_offset_zero() -> FixedOffset {
    Utc.fix()
}

/// Reads a UTC offset as config files write it: `Z`, `UTC`, `+05:00`,
/// `-0130`, `+05`. Errors say what is accepted.
pub fn parse_utc_offset(text: &str) -> Result<FixedOffset, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
        return Ok(utc_offset_zero());
    }
    let b = t.as_bytes();
    let sign = match b.first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => {
            return Err(format!(
                "UTC offset {text:?}: expected Z, UTC or ±HH:MM (e.g. +05:00)"
            ))
        }
    };
    let digits: String = t[1..].chars().filter(|c| *c != ':').collect();
    let bad = || format!("UTC offset {text:?}: expected ±HH:MM with HH ≤ 23 and MM ≤ 59");
    if !digits.bytes().all(|c| c.is_ascii_digit()) || !(digits.len() == 2 || digits.len() == 4) {
        return Err(bad());
    }
    let h: i32 = digits[..2].parse().map_err(|_| bad())?;
    let m: i32 = if digits.len() == 4 {
        digits[2..].parse().map_err(|_| bad())?
    } else {
        0
    };
    if h > 23 || m > 59 {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)
}

/// The result of parsing one line: the event, and which parser produced it
/// (for the per-parser outcome metrics).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub event: Event,
    /// Parser name, e.g. `sshd`, `syslog5424`, `web_access`, `unparsed`.
    /// One of [`PARSER_NAMES`].
    pub parser: &'static str,
}

/// Every value [`Parsed::parser`] can take, so metrics can pre-register
/// their label values.
pub const PARSER_NAMES: &[&str] = &[
    "sshd",
    "sudo",
    "pam",
    "accounts",
    "cron",
    "netfilter",
    "web_access",
    "json",
    "journald",
    "cef",
    "kv",
    "syslog3164",
    "syslog5424",
    "syslog",
    "unparsed",
];

/// At most this many fields per event. Formats whose keys come from the
/// input (JSON, key=value, CEF) stop copying fields here and mark the event
/// partial — the rest stays in `event.original`. Real records have tens of
/// fields (a FortiGate line ~60, a Windows event ~100); the cap keeps a
/// hostile 64 KiB line of `a=1 b=2 …` from costing quadratic time.
pub const MAX_FIELDS: usize = 1024;

/// Field capacity reserved for an event: enough for a BSD-syslog sshd or a
/// web access event (~16–18 fields). 18 entries stay below glibc's 1 KiB
/// "large request" threshold, whose allocations are several times dearer.
const BASE_FIELDS: usize = 18;

/// Field capacity for a syslog event: the base, plus what the header adds,
/// plus room for a packet log, so the vector is sized once.
fn field_capacity(env: &syslog::Envelope<'_>) -> usize {
    let mut n = BASE_FIELDS + env.structured.len();
    if env.pri.is_some() {
        n += 6;
    }
    if env.format == syslog::Format::Rfc5424 {
        n += 4;
    }
    if env.app == Some("kernel") {
        n += 10;
    } else if env.msg.starts_with("CEF:") || env.format == syslog::Format::PriOnly {
        // CEF or key=value: about one field per '='.
        n += memchr::memchr_iter(b'=', env.msg.as_bytes()).count() + 8;
    }
    n.min(MAX_FIELDS)
}

/// An empty event received at `received` with room for `fields` fields.
fn new_event(received: DateTime<Utc>, fields: usize) -> Event {
    Event {
        timestamp: received,
        ingested: received,
        original: String::new(),
        logsource: LogSource::default(),
        fields: Fields::with_capacity(fields),
    }
}

/// How far a parser got with a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Not this parser's line.
    No,
    /// Read completely.
    Full,
    /// Recognized, but only partly readable (truncated, malformed).
    Partial,
}

/// Which parsers handled a line.
#[derive(Debug, Default)]
struct Route {
    envelope: Option<&'static str>,
    parser: Option<&'static str>,
    partial: bool,
}

impl Route {
    fn claim(&mut self, parser: &'static str, claim: Claim) -> bool {
        match claim {
            Claim::No => false,
            Claim::Full => {
                self.parser = Some(parser);
                true
            }
            Claim::Partial => {
                self.parser = Some(parser);
                self.partial = true;
                true
            }
        }
    }
}

/// A configured parser chain. Cheap to clone; `parse` takes `&self`, so one
/// parser can serve many threads.
#[derive(Debug, Clone, Default)]
pub struct Parser {
    pub options: ParseOptions,
}

impl Parser {
    pub fn new(options: ParseOptions) -> Self {
        Parser { options }
    }

    /// Parses one line (a trailing `\n` or `\r\n` is ignored), received at
    /// `received`. Never fails: see the module docs for what every event
    /// carries.
    pub fn parse(&self, raw: &[u8], received: DateTime<Utc>) -> Parsed {
        let raw = strip_line_terminator(raw);
        let (text, truncated, lossy) = decode_line(raw, self.options.max_line_bytes);
        // Parse from the text while filling the event's fields; the text
        // becomes event.original afterwards.
        let (mut event, route) = self.route(&text, received);
        event.original = text;

        if truncated {
            event.add_tag(tags::TRUNCATED);
        }
        if lossy {
            event.add_tag(tags::INVALID_UTF8);
        }
        let parser = finish(&mut event, &route);
        Parsed { event, parser }
    }

    /// Runs the parsers over `line`; returns the event (without its
    /// original, which the caller moves in) and which parsers ran.
    fn route(&self, line: &str, received: DateTime<Utc>) -> (Event, Route) {
        let mut route = Route::default();
        let first = line.as_bytes().first().copied().unwrap_or(b' ');
        if first == b'<' || first.is_ascii_alphabetic() || first.is_ascii_digit() {
            if let Some(env) = syslog::parse(line, &self.options, received) {
                let mut ev = new_event(received, field_capacity(&env));
                syslog::apply(&env, &mut ev);
                route.envelope = Some(env.format.name());
                route.partial = env.partial || env.timestamp == syslog::Stamp::Invalid;
                self.program_message(env.app, env.msg, &mut ev, &mut route);
                return (ev, route);
            }
        }
        let capacity = if line.starts_with("CEF:") || kv::looks_like(line) {
            (BASE_FIELDS + memchr::memchr_iter(b'=', line.as_bytes()).count()).min(MAX_FIELDS)
        } else {
            BASE_FIELDS
        };
        let mut ev = new_event(received, capacity);
        if first == b'{' {
            match json::parse(line, &mut ev, &self.options) {
                Some(json::JsonLine::Generic(claim)) => {
                    route.claim("json", claim);
                    return (ev, route);
                }
                Some(json::JsonLine::Journal { message, program }) => {
                    route.envelope = Some("journald");
                    self.program_message(program.as_deref(), &message, &mut ev, &mut route);
                    return (ev, route);
                }
                None => {}
            }
        }
        self.content(line, &mut ev, &mut route, false);
        (ev, route)
    }

    /// A syslog/journald message: program parser by name, else content.
    fn program_message(&self, program: Option<&str>, msg: &str, ev: &mut Event, route: &mut Route) {
        // The envelope never sets these two, so they can be appended.
        ev.fields.push_new("message", msg);
        let msg = match unwrap_repeated(msg) {
            Some((count, inner)) => {
                ev.fields
                    .push_new("log.syslog.repeat_count", crate::event::Value::from(count));
                inner
            }
            None => msg,
        };
        let program = program.unwrap_or_default();
        if program == "kernel" {
            if let Some(start) = netfilter::locate(msg) {
                route.claim("netfilter", netfilter::parse_at(msg, start, ev));
                ev.logsource = logsource::linux_firewall();
                return;
            }
        }
        let is_pam = pam::is_pam(msg);
        let service = match program {
            "sshd" | "sshd-session" | "sshd-auth" => {
                if !(is_pam && route.claim("pam", pam::parse(msg, ev))) {
                    route.claim("sshd", sshd::parse(msg, ev));
                }
                "sshd"
            }
            "sudo" => {
                if !(is_pam && route.claim("pam", pam::parse(msg, ev))) {
                    route.claim("sudo", sudo::parse(msg, ev));
                }
                "sudo"
            }
            _ if is_pam && route.claim("pam", pam::parse(msg, ev)) => "auth",
            p if accounts::is_account_tool(p) => {
                route.claim("accounts", accounts::parse(msg, ev));
                "auth"
            }
            p if cron::is_cron(p) => {
                route.claim("cron", cron::parse(msg, ev));
                "cron"
            }
            "su" | "login" | "pkexec" | "polkitd" | "systemd-logind" | "gdm-password"
            | "lightdm" | "runuser" | "unix_chkpwd" | "chsh" | "chfn" | "newgrp" => "auth",
            "vsftpd" => "vsftpd",
            "clamd" | "freshclam" => "clamav",
            "guacd" => "guacamole",
            "kernel" => "syslog",
            _ => {
                if self.content(msg, ev, route, true) {
                    return;
                }
                "syslog"
            }
        };
        ev.logsource = logsource::linux(service);
    }

    /// Content parsers. Returns whether one claimed the text (and set the
    /// logsource).
    fn content(&self, text: &str, ev: &mut Event, route: &mut Route, in_envelope: bool) -> bool {
        let Some(&first) = text.as_bytes().first() else {
            return false;
        };
        if text.starts_with("CEF:") {
            let (claim, hint) = cef::parse(text, ev, &self.options);
            if route.claim("cef", claim) {
                ev.logsource = logsource::network_record(ev, &hint);
                return true;
            }
        }
        if first == b'{' && in_envelope {
            if let Some(json::JsonLine::Generic(claim)) = json::parse(text, ev, &self.options) {
                route.claim("json", claim);
                return true;
            }
        }
        if let Some(start) = netfilter::locate(text) {
            if route.claim("netfilter", netfilter::parse_at(text, start, ev)) {
                ev.logsource = logsource::linux_firewall();
                return true;
            }
        }
        if route.claim("web_access", web_access::parse(text, ev, &self.options)) {
            ev.logsource = logsource::webserver(self.options.web_product.as_deref());
            return true;
        }
        if kv::looks_like(text) {
            let (claim, hint) = kv::parse(text, ev, &self.options);
            if route.claim("kv", claim) {
                ev.logsource = logsource::network_record(ev, &hint);
                return true;
            }
        }
        false
    }
}

/// rsyslog's `message repeated N times: [ inner]` → (N, inner).
fn unwrap_repeated(msg: &str) -> Option<(u64, &str)> {
    let rest = msg.strip_prefix("message repeated ")?;
    let (n, rest) = text::leading_number(rest)?;
    let inner = rest.strip_prefix(" times: [")?;
    let inner = inner.strip_suffix(']').unwrap_or(inner);
    Some((n, inner.trim_start()))
}

/// Fills the common fields and tags; returns the parser name.
fn finish(ev: &mut Event, route: &Route) -> &'static str {
    let parser = route.parser.or(route.envelope).unwrap_or("unparsed");
    if !ev.fields.contains("message") {
        let m = ev.original.clone();
        ev.fields.insert("message", m);
    }
    let dataset = match (route.envelope, route.parser) {
        (Some(env), Some(p)) => {
            let mut d = String::with_capacity(env.len() + 1 + p.len());
            d.push_str(env);
            d.push('.');
            d.push_str(p);
            d
        }
        _ => parser.to_owned(),
    };
    if route.parser == Some("json") {
        // A JSON line may bring its own ECS event.kind/module/dataset.
        ev.fields.insert_if_absent("event.kind", "event");
        ev.fields.insert_if_absent("event.module", parser);
        ev.fields.insert_if_absent("event.dataset", dataset);
    } else {
        // No other parser writes these names.
        ev.fields.push_new("event.kind", "event");
        ev.fields.push_new("event.module", parser);
        ev.fields.push_new("event.dataset", dataset);
    }
    if route.partial {
        ev.add_tag(tags::PARTIAL);
    }
    if parser == "unparsed" {
        ev.add_tag(tags::UNPARSED);
    }
    parser
}

/// Drops one trailing `\n`, `\r\n` or `\r` (collectors usually strip the
/// terminator already; this keeps `\r` of CRLF files out of the event).
fn strip_line_terminator(raw: &[u8]) -> &[u8] {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    raw.strip_suffix(b"\r").unwrap_or(raw)
}

/// Cuts `raw` to `max` bytes (on a UTF-8 boundary where possible) and decodes
/// it, replacing invalid bytes with U+FFFD. Returns (text, truncated, lossy).
pub fn decode_line(raw: &[u8], max: usize) -> (String, bool, bool) {
    let truncated = raw.len() > max;
    let cut = if truncated { &raw[..max] } else { raw };
    match std::str::from_utf8(cut) {
        Ok(s) => (s.to_owned(), truncated, false),
        Err(e) if truncated && e.error_len().is_none() => {
            // The cut fell inside a multi-byte character: drop the partial one.
            let valid = e.valid_up_to();
            (
                String::from_utf8_lossy(&cut[..valid]).into_owned(),
                true,
                false,
            )
        }
        Err(_) => {
            // Invalid bytes somewhere; if the cut also split a character at
            // the end, drop that piece rather than count it as invalid input.
            let cut = if truncated {
                trim_partial_char(cut)
            } else {
                cut
            };
            (String::from_utf8_lossy(cut).into_owned(), truncated, true)
        }
    }
}

/// Drops an incomplete UTF-8 sequence at the very end of `b` (at most 3
/// bytes: a lead byte and its continuation bytes without enough followers).
fn trim_partial_char(b: &[u8]) -> &[u8] {
    for back in 1..=3.min(b.len()) {
        let i = b.len() - back;
        let c = b[i];
        if c & 0xC0 == 0x80 {
            continue; // continuation byte: keep looking for the lead
        }
        let need = match c {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return b,
        };
        return if back < need { &b[..i] } else { b };
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_from_config_text() {
        assert_eq!(
            parse_utc_offset("+05:00").map(|o| o.local_minus_utc()),
            Ok(18_000)
        );
        assert_eq!(
            parse_utc_offset("-0130").map(|o| o.local_minus_utc()),
            Ok(-5_400)
        );
        assert_eq!(
            parse_utc_offset("+06").map(|o| o.local_minus_utc()),
            Ok(21_600)
        );
        assert_eq!(parse_utc_offset("UTC").map(|o| o.local_minus_utc()), Ok(0));
        assert_eq!(parse_utc_offset("Z").map(|o| o.local_minus_utc()), Ok(0));
        for bad in [
            "",
            "5",
            "+5",
            "+24:00",
            "+05:60",
            "Asia/Almaty",
            "+05:00:00",
            "+٠٥:00",
        ] {
            assert!(parse_utc_offset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decode_cuts_and_flags() {
        assert_eq!(decode_line(b"abc", 10), ("abc".into(), false, false));
        assert_eq!(decode_line(b"abcdef", 3), ("abc".into(), true, false));
        // "é" is two bytes; a cut after its first byte drops it cleanly.
        assert_eq!(decode_line("aé".as_bytes(), 2), ("a".into(), true, false));
        assert_eq!(
            decode_line(b"a\xffb", 10),
            ("a\u{fffd}b".into(), false, true)
        );
        // Invalid byte and a split character at the cut.
        let raw = [b'a', 0xff, b'b', 0xc3, 0xa9, 0xc3, 0xa9];
        assert_eq!(decode_line(&raw, 6), ("a\u{fffd}bé".into(), true, true));
        assert_eq!(strip_line_terminator(b"x\r\n"), b"x");
        assert_eq!(strip_line_terminator(b"x\n\n"), b"x\n");
    }

    #[test]
    fn repeated_messages_unwrap() {
        assert_eq!(
            unwrap_repeated("message repeated 5 times: [ Failed password for root]"),
            Some((5, "Failed password for root"))
        );
        assert_eq!(unwrap_repeated("message repeated x times: [ a]"), None);
    }
}
