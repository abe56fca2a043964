//! `key=value` records (FortiGate, Palo Alto and Check Point exports,
//! Juniper, many appliances and applications):
//!
//! ```text
//! date=2024-03-01 time=10:00:00 devname="fw1" type="traffic" srcip=203.0.113.9 srcport=51514 dstip=10.0.0.5 dstport=22 proto=6 action="deny" policyid=7
//! ```
//!
//! A line is key=value when it starts with `key=` and has at least two
//! pairs. Values are unquoted (up to the next space; a following word that is
//! not itself `key=value` is appended, so `msg=disk full now x=1` keeps
//! `disk full now`) or double/single quoted with backslash escapes.
//!
//! Well-known keys are mapped; every other key is kept as `kv.<key>`:
//!
//! | keys | field |
//! |---|---|
//! | `src` `srcip` `src_ip` `source_ip` `sip` `client_ip` | `source.ip` (or `source.domain`) |
//! | `dst` `dstip` `dst_ip` `destination_ip` `dip` | `destination.ip` (or `destination.domain`) |
//! | `spt` `srcport` `src_port` `sport` `source_port` | `source.port` |
//! | `dpt` `dstport` `dst_port` `dport` `destination_port` | `destination.port` |
//! | `proto` `protocol` | `network.transport` (numbers become names) |
//! | `action` `act` | `event.action` (firewall verdicts normalized to `accept`/`denied`); as written in `kv.action` |
//! | `user` `username` `usrName` `srcuser` `src_user` `suser` | `user.name` |
//! | `dstuser` `dst_user` `duser` | `destination.user.name` |
//! | `srcintf` `inintf` `in_if` / `dstintf` `outintf` `out_if` | `observer.ingress.interface.name` / `observer.egress.interface.name` |
//! | `srczone` `from_zone` / `dstzone` `to_zone` | `observer.ingress.zone` / `observer.egress.zone` |
//! | `srcmac` / `dstmac` | `source.mac` / `destination.mac` |
//! | `sentbyte` `bytes_sent` `sent_bytes` / `rcvdbyte` `bytes_recv` `rcvd_bytes` | `source.bytes` / `destination.bytes` |
//! | `msg` `message` | `message` |
//! | `devname` `hostname` `devid` | `observer.name` `observer.hostname` `observer.serial_number` |
//! | `url` | `url.original` |
//! | `policyid` `rule_id` / `policyname` `rule` `rule_name` | `rule.id` / `rule.name` |
//! | `level` `severity` | `log.level` |
//! | `eventtime` (epoch s/ms/µs/ns), else `date`+`time` (read at `tz` if given, else the configured offset), else `timestamp`/`time` (ISO 8601 or epoch) | `@timestamp` |

use std::borrow::Cow;

use crate::event::{Event, Value};

use super::ecs::{firewall_action, set_address, set_port, transport, Side};
use super::text::{concat, ecs_mac, is_key, parse_uint, unescape_backslashes};
use super::timestamp::{from_epoch_text, parse_iso};
use super::{Claim, ParseOptions, MAX_FIELDS};

/// Whether `s` starts with `key=` and has at least two pairs.
pub(crate) fn looks_like(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(eq) = memchr::memchr(b'=', b) else {
        return false;
    };
    if eq == 0 || eq > 64 || !is_key(&s[..eq]) {
        return false;
    }
    // A second " key=" somewhere after the first value.
    pairs(s).nth(1).is_some()
}

/// Iterates `(key, raw value, quoted)` pairs.
fn pairs(s: &str) -> Pairs<'_> {
    Pairs { s, i: 0 }
}

struct Pairs<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, &'a str, bool);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s;
        let b = s.as_bytes();
        loop {
            while b.get(self.i) == Some(&b' ') {
                self.i += 1;
            }
            if self.i >= b.len() {
                return None;
            }
            let word_end = memchr::memchr(b' ', &b[self.i..]).map_or(b.len(), |k| self.i + k);
            let word = &s[self.i..word_end];
            let Some(eq) = memchr::memchr(b'=', word.as_bytes()) else {
                // A stray word: skip it (values absorb such words below).
                self.i = word_end;
                continue;
            };
            let key = &word[..eq];
            if !is_key(key) {
                self.i = word_end;
                continue;
            }
            let vstart = self.i + eq + 1;
            match b.get(vstart) {
                Some(q @ (b'"' | b'\'')) => {
                    let q = *q;
                    let mut j = vstart + 1;
                    while j < b.len() && b[j] != q {
                        j += if b[j] == b'\\' { 2 } else { 1 };
                    }
                    if j >= b.len() {
                        // Unterminated quote (cut line): the rest is the value.
                        self.i = b.len();
                        return Some((key, s.get(vstart + 1..).unwrap_or_default(), true));
                    }
                    self.i = j + 1;
                    return Some((key, &s[vstart + 1..j], true));
                }
                _ => {
                    // Unquoted: up to the next word that is itself key=value.
                    let mut end = word_end;
                    loop {
                        let next_start = end + 1;
                        if next_start >= b.len() {
                            break;
                        }
                        let next_end = memchr::memchr(b' ', &b[next_start..])
                            .map_or(b.len(), |k| next_start + k);
                        let next = &s[next_start..next_end];
                        let is_pair = memchr::memchr(b'=', next.as_bytes())
                            .is_some_and(|e| is_key(&next[..e]));
                        if is_pair || next.is_empty() {
                            break;
                        }
                        end = next_end;
                    }
                    self.i = end;
                    return Some((key, &s[vstart..end], false));
                }
            }
        }
    }
}

/// Parses a key=value record; returns the claim and a vendor hint for the
/// firewall-likeness rule.
pub(crate) fn parse(s: &str, ev: &mut Event, opts: &ParseOptions) -> (Claim, String) {
    let mut hint = String::new();
    let mut date = None;
    let mut time = None;
    let mut tz = None;
    let mut eventtime = None;
    let mut timestamp = None;
    let mut count = 0usize;
    let mut claim = Claim::Full;
    for (key, raw, quoted) in pairs(s) {
        if ev.fields.len() >= MAX_FIELDS {
            claim = Claim::Partial;
            break;
        }
        count += 1;
        let value: Cow<'_, str> = if quoted {
            unescape_backslashes(raw)
        } else {
            Cow::Borrowed(raw)
        };
        let v = value.as_ref();
        let mapped = match key {
            "src" | "srcip" | "src_ip" | "source_ip" | "sip" | "client_ip" => {
                set_address(ev, Side::Source, v);
                true
            }
            "dst" | "dstip" | "dst_ip" | "destination_ip" | "dip" => {
                set_address(ev, Side::Destination, v);
                true
            }
            "spt" | "srcport" | "src_port" | "sport" | "source_port" => {
                set_port(ev, Side::Source, v)
            }
            "dpt" | "dstport" | "dst_port" | "dport" | "destination_port" => {
                set_port(ev, Side::Destination, v)
            }
            "proto" | "protocol" => match transport(v) {
                Some(t) => {
                    ev.fields.insert("network.transport", t);
                    true
                }
                None => false,
            },
            "action" | "act" => {
                let (action, _) = firewall_action(v);
                if !action.is_empty() {
                    ev.fields.insert("event.action", action);
                }
                false // also kept as written
            }
            "user" | "username" | "usrName" | "srcuser" | "src_user" | "suser" => {
                text(ev, "user.name", v)
            }
            "dstuser" | "dst_user" | "duser" => text(ev, "destination.user.name", v),
            "srcintf" | "inintf" | "in_if" => text(ev, "observer.ingress.interface.name", v),
            "dstintf" | "outintf" | "out_if" => text(ev, "observer.egress.interface.name", v),
            "srczone" | "from_zone" => text(ev, "observer.ingress.zone", v),
            "dstzone" | "to_zone" => text(ev, "observer.egress.zone", v),
            "srcmac" => mac(ev, "source.mac", v),
            "dstmac" => mac(ev, "destination.mac", v),
            "sentbyte" | "bytes_sent" | "sent_bytes" => int(ev, "source.bytes", v),
            "rcvdbyte" | "bytes_recv" | "rcvd_bytes" => int(ev, "destination.bytes", v),
            "msg" | "message" => text(ev, "message", v),
            "devname" => {
                hint.push_str(v);
                hint.push('|');
                text(ev, "observer.name", v)
            }
            "hostname" => text(ev, "observer.hostname", v),
            "devid" => {
                hint.push_str(v);
                hint.push('|');
                text(ev, "observer.serial_number", v)
            }
            "url" => text(ev, "url.original", v),
            "policyid" | "rule_id" => text(ev, "rule.id", v),
            "policyname" | "rule" | "rule_name" => text(ev, "rule.name", v),
            "level" | "severity" => text(ev, "log.level", v),
            "date" => {
                date = Some(value.clone().into_owned());
                false
            }
            "time" => {
                time = Some(value.clone().into_owned());
                false
            }
            "tz" => {
                tz = Some(value.clone().into_owned());
                false
            }
            "eventtime" => {
                eventtime = Some(value.clone().into_owned());
                false
            }
            "timestamp" => {
                timestamp = Some(value.clone().into_owned());
                false
            }
            _ => false,
        };
        if key == "type" || key == "subtype" {
            hint.push_str(v);
            hint.push('|');
        }
        if !mapped && !v.is_empty() {
            ev.fields.insert(concat(&["kv.", key]), v);
        }
    }
    if count == 0 {
        return (Claim::No, hint);
    }
    if let Some(t) = record_time(eventtime, date, time, tz, timestamp, opts) {
        ev.timestamp = t;
    }
    (claim, hint)
}

fn record_time(
    eventtime: Option<String>,
    date: Option<String>,
    time: Option<String>,
    tz: Option<String>,
    timestamp: Option<String>,
    opts: &ParseOptions,
) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Some(t) = eventtime.as_deref().and_then(from_epoch_text) {
        return Some(t);
    }
    let offset = tz
        .as_deref()
        .and_then(|z| super::parse_utc_offset(z).ok())
        .unwrap_or(opts.local_offset);
    if let (Some(d), Some(t)) = (&date, &time) {
        let iso = format!("{d}T{t}");
        if let Some((ts, n)) = parse_iso(iso.as_bytes(), offset) {
            if n == iso.len() {
                return Some(ts);
            }
        }
    }
    for candidate in [timestamp.as_deref(), time.as_deref()]
        .into_iter()
        .flatten()
    {
        if let Some((ts, n)) = parse_iso(candidate.as_bytes(), offset) {
            if n == candidate.len() {
                return Some(ts);
            }
        }
        if let Some(ts) = from_epoch_text(candidate) {
            return Some(ts);
        }
    }
    None
}

fn text(ev: &mut Event, name: &'static str, v: &str) -> bool {
    if v.is_empty() {
        return true;
    }
    ev.fields.insert(name, v);
    true
}

fn int(ev: &mut Event, name: &'static str, v: &str) -> bool {
    match parse_uint(v) {
        Some(n) => {
            ev.fields.insert(name, Value::Int(n));
            true
        }
        None => false,
    }
}

fn mac(ev: &mut Event, name: &'static str, v: &str) -> bool {
    match ecs_mac(v) {
        Some(m) => {
            ev.fields.insert(name, m);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn run(s: &str) -> (Claim, String, Event) {
        let mut ev = Event::new(String::new(), Utc::now());
        let (c, h) = parse(s, &mut ev, &ParseOptions::default());
        (c, h, ev)
    }

    #[test]
    fn fortigate_traffic() {
        let line = r#"date=2024-03-01 time=10:00:00 devname="FGT-HQ" devid="FG100FTK1" logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" srcip=203.0.113.9 srcport=51514 srcintf="wan1" dstip=10.0.0.5 dstport=22 dstintf="internal" proto=6 action="deny" policyid=7 service="SSH" sentbyte=0 rcvdbyte=0 tz="+0500""#;
        assert!(looks_like(line));
        let (c, hint, ev) = run(line);
        assert_eq!(c, Claim::Full);
        assert!(hint.contains("traffic"));
        let f = &ev.fields;
        assert_eq!(f.get_str("source.ip"), Some("203.0.113.9"));
        assert_eq!(f.get("source.port"), Some(&Value::Int(51514)));
        assert_eq!(f.get_str("destination.ip"), Some("10.0.0.5"));
        assert_eq!(f.get("destination.port"), Some(&Value::Int(22)));
        assert_eq!(f.get_str("network.transport"), Some("tcp"));
        assert_eq!(f.get_str("event.action"), Some("denied"));
        assert_eq!(f.get_str("kv.action"), Some("deny"));
        assert_eq!(f.get_str("observer.name"), Some("FGT-HQ"));
        assert_eq!(f.get_str("observer.ingress.interface.name"), Some("wan1"));
        assert_eq!(f.get_str("rule.id"), Some("7"));
        assert_eq!(f.get_str("kv.service"), Some("SSH"));
        assert_eq!(f.get_str("kv.logid"), Some("0000000013"));
        assert_eq!(f.get("source.bytes"), Some(&Value::Int(0)));
        assert_eq!(
            ev.timestamp,
            Utc.with_ymd_and_hms(2024, 3, 1, 5, 0, 0)
                .single()
                .expect("t")
        );
    }

    #[test]
    fn quoting_and_stray_words() {
        let (_, _, ev) = run(r#"user='bob smith' msg=disk full now x="a \"q\"" y="#);
        assert_eq!(ev.fields.get_str("user.name"), Some("bob smith"));
        assert_eq!(ev.fields.get_str("message"), Some("disk full now"));
        assert_eq!(ev.fields.get_str("kv.x"), Some(r#"a "q""#));
        assert!(ev.fields.get("kv.y").is_none());
        let (c, _, ev) = run(r#"a=1 b="unterminated value"#);
        assert_eq!(c, Claim::Full);
        assert_eq!(ev.fields.get_str("kv.b"), Some("unterminated value"));
    }

    #[test]
    fn detection() {
        assert!(looks_like("a=1 b=2"));
        assert!(!looks_like("a=1"));
        assert!(!looks_like("hello a=1 b=2"));
        assert!(!looks_like("=1 b=2"));
        assert!(!looks_like(""));
        assert!(!looks_like("1a=1 b=2"));
    }
}
