//! ArcSight Common Event Format:
//! `CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension`
//!
//! Header fields escape `|` and `\` with a backslash. The extension is
//! `key=value` pairs separated by spaces, where values may contain spaces
//! (a value runs until the next ` key=`) and escape `=`, `\`, `\n`, `\r`.
//!
//! | CEF | field |
//! |---|---|
//! | Version | `cef.version` |
//! | Device Vendor / Product / Version | `observer.vendor` / `observer.product` / `observer.version` |
//! | Signature ID | `event.code` |
//! | Name | `cef.name`, and `message` when there is no `msg` |
//! | Severity | `event.severity` (number; `Low`=3, `Medium`=6, `High`=8, `Very-High`=10), `cef.severity` as written |
//! | `src` / `dst` | `source.ip` / `destination.ip` |
//! | `spt` / `dpt` | `source.port` / `destination.port` |
//! | `shost` / `dhost` | `source.domain` / `destination.domain` |
//! | `smac` / `dmac` | `source.mac` / `destination.mac` |
//! | `suser` / `duser` | `source.user.name` and `user.name` / `destination.user.name` |
//! | `suid` / `duid` | `source.user.id` / `destination.user.id` |
//! | `act` | `event.action` (firewall verdicts normalized to `accept`/`denied`, see the [netfilter](super::netfilter) docs); as written in `cef.extensions.act` |
//! | `outcome` | `event.outcome` when it says success/failure, as written in `cef.extensions.outcome` |
//! | `proto` / `app` | `network.transport` / `network.protocol` |
//! | `in` / `out` | `source.bytes` / `destination.bytes` |
//! | `request`, `requestMethod`, `requestClientApplication`, `requestContext` | `url.original`, `http.request.method`, `user_agent.original`, `http.request.referrer` |
//! | `msg`, `reason` | `message`, `event.reason` |
//! | `rt`, `start`, `end` | `@timestamp`, `event.start`, `event.end` (epoch ms or `MMM dd yyyy HH:mm:ss`) |
//! | `dvc`, `dvchost` | `observer.ip`, `observer.hostname` |
//! | `externalId` | `event.id` |
//! | `fname`, `filePath`, `fsize`, `fileHash` | `file.name`, `file.path`, `file.size`, `file.hash.sha256` if 64 hex chars |
//! | `sproc`, `spid` | `process.name`, `process.pid` |
//! | `deviceInboundInterface` / `deviceOutboundInterface` | `observer.ingress.interface.name` / `observer.egress.interface.name` |
//! | `sourceTranslatedAddress`/`Port`, `destinationTranslatedAddress`/`Port` | `source.nat.ip`/`port`, `destination.nat.ip`/`port` |
//! | anything else (incl. `cs1`…`cs6` and their labels) | `cef.extensions.<key>` |

use std::borrow::Cow;

use crate::event::{Event, Value};

use super::ecs::{firewall_action, set_address, set_port, set_text, transport, Side};
use super::text::{canonical_ip, concat, ecs_mac, is_key, parse_port, parse_uint};
use super::timestamp::{from_epoch_text, month_from_abbrev, parse_iso};
use super::{Claim, ParseOptions, MAX_FIELDS};

/// Parses a CEF record (the text starting at `CEF:`). Returns the claim and
/// the vendor/product text for the firewall-likeness rule.
pub(crate) fn parse(text: &str, ev: &mut Event, opts: &ParseOptions) -> (Claim, String) {
    let Some(body) = text.strip_prefix("CEF:") else {
        return (Claim::No, String::new());
    };
    let mut header: [Cow<'_, str>; 7] = Default::default();
    let mut rest = body;
    for slot in header.iter_mut() {
        match header_field(rest) {
            Some((value, after)) => {
                *slot = value;
                rest = after;
            }
            None => {
                // Fewer than 7 pipes: not CEF unless the version and vendor are there.
                return partial_header(body, ev);
            }
        }
    }
    let [version, vendor, product, dev_version, sig, name, severity] = header;
    if version.is_empty() || !version.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        return (Claim::No, String::new());
    }
    ev.fields.insert("cef.version", version.as_ref());
    set_text(ev, "observer.vendor", &vendor);
    set_text(ev, "observer.product", &product);
    set_text(ev, "observer.version", &dev_version);
    set_text(ev, "event.code", &sig);
    set_text(ev, "cef.name", &name);
    if !severity.is_empty() {
        ev.fields.insert("cef.severity", severity.as_ref());
        let sev = match severity.as_ref() {
            s if s.bytes().all(|c| c.is_ascii_digit()) => s.parse::<i64>().ok(),
            s if s.eq_ignore_ascii_case("low") => Some(3),
            s if s.eq_ignore_ascii_case("medium") => Some(6),
            s if s.eq_ignore_ascii_case("high") => Some(8),
            s if s.eq_ignore_ascii_case("very-high") => Some(10),
            _ => None,
        };
        if let Some(n) = sev {
            ev.fields.insert("event.severity", Value::Int(n));
        }
    }
    let claim = extensions(rest, ev, opts);
    if !ev.fields.contains("message") && !name.is_empty() {
        ev.fields.insert("message", name.as_ref());
    }
    (claim, concat(&[&vendor, "|", &product]))
}

/// A header cut short (truncated line): keep what is there, marked partial.
fn partial_header(body: &str, ev: &mut Event) -> (Claim, String) {
    let mut parts = body.split('|');
    let version = parts.next().unwrap_or_default();
    if version.is_empty() || !version.bytes().all(|c| c.is_ascii_digit()) {
        return (Claim::No, String::new());
    }
    ev.fields.insert("cef.version", version);
    let vendor = parts.next().unwrap_or_default();
    set_text(ev, "observer.vendor", vendor);
    let product = parts.next().unwrap_or_default();
    set_text(ev, "observer.product", product);
    (Claim::Partial, concat(&[vendor, "|", product]))
}

/// One `|`-terminated header field with `\|` and `\\` unescaped.
fn header_field(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut escaped = false;
    loop {
        match b.get(i)? {
            b'\\' => {
                escaped = true;
                i += 2;
            }
            b'|' => break,
            _ => i += 1,
        }
    }
    let raw = s.get(..i)?;
    let rest = s.get(i + 1..)?;
    let value = if escaped {
        Cow::Owned(raw.replace("\\|", "|").replace("\\\\", "\\"))
    } else {
        Cow::Borrowed(raw)
    };
    Some((value, rest))
}

/// Splits the extension into (key, raw value) pairs: a key is a word
/// followed by an unescaped `=`, and a value runs until the space before
/// the next key.
fn split_extension(s: &str) -> Vec<(&str, &str)> {
    let b = s.as_bytes();
    // Positions of unescaped '=' that end a key.
    let mut keys: Vec<(usize, usize)> = Vec::new(); // (key start, '=' index)
    let mut word_start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b' ' => {
                word_start = i + 1;
                i += 1;
            }
            b'=' => {
                if word_start < i && is_key(&s[word_start..i]) {
                    keys.push((word_start, i));
                }
                // A second '=' in the same word is part of a value.
                word_start = usize::MAX;
                i += 1;
            }
            _ => i += 1,
        }
    }
    let mut out = Vec::with_capacity(keys.len());
    for (n, (start, eq)) in keys.iter().enumerate() {
        let end = match keys.get(n + 1) {
            Some((next_start, _)) => next_start.saturating_sub(1),
            None => b.len(),
        };
        let value = s.get(eq + 1..end.max(eq + 1)).unwrap_or_default();
        out.push((&s[*start..*eq], value.trim_end()));
    }
    out
}

/// CEF extension value escapes: `\=`, `\\`, `\n`, `\r`, `\|`.
fn unescape_value(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

fn extensions(ext: &str, ev: &mut Event, opts: &ParseOptions) -> Claim {
    let mut claim = Claim::Full;
    for (key, raw) in split_extension(ext) {
        if ev.fields.len() >= MAX_FIELDS {
            return Claim::Partial;
        }
        let v = unescape_value(raw);
        let v = v.as_ref();
        if v.is_empty() {
            continue;
        }
        let mapped = match key {
            "src" => {
                set_address(ev, Side::Source, v);
                true
            }
            "dst" => {
                set_address(ev, Side::Destination, v);
                true
            }
            "spt" => set_port(ev, Side::Source, v),
            "dpt" => set_port(ev, Side::Destination, v),
            "shost" => text(ev, "source.domain", v),
            "dhost" => text(ev, "destination.domain", v),
            "smac" => mac(ev, "source.mac", v),
            "dmac" => mac(ev, "destination.mac", v),
            "suser" => {
                ev.fields.insert("source.user.name", v);
                ev.fields.insert("user.name", v);
                true
            }
            "duser" => text(ev, "destination.user.name", v),
            "suid" => text(ev, "source.user.id", v),
            "duid" => text(ev, "destination.user.id", v),
            "act" => {
                let (action, _) = firewall_action(v);
                if !action.is_empty() {
                    ev.fields.insert("event.action", action);
                }
                false // also kept as written
            }
            "outcome" => {
                let lower = v.to_ascii_lowercase();
                if ["success", "succeeded", "allowed", "accept"]
                    .iter()
                    .any(|w| lower.contains(w))
                {
                    ev.fields.insert("event.outcome", "success");
                } else if ["fail", "denied", "blocked", "reject"]
                    .iter()
                    .any(|w| lower.contains(w))
                {
                    ev.fields.insert("event.outcome", "failure");
                }
                false
            }
            "proto" => match transport(v) {
                Some(t) => {
                    ev.fields.insert("network.transport", t);
                    true
                }
                None => false,
            },
            "app" => text(ev, "network.protocol", &v.to_ascii_lowercase()),
            "in" => int(ev, "source.bytes", v),
            "out" => int(ev, "destination.bytes", v),
            "request" => text(ev, "url.original", v),
            "requestMethod" => text(ev, "http.request.method", v),
            "requestClientApplication" => text(ev, "user_agent.original", v),
            "requestContext" => text(ev, "http.request.referrer", v),
            "msg" => text(ev, "message", v),
            "reason" => text(ev, "event.reason", v),
            "rt" => match cef_time(v, opts) {
                Some(t) => {
                    ev.timestamp = t;
                    true
                }
                None => {
                    claim = Claim::Partial;
                    false
                }
            },
            "start" | "end" => match cef_time(v, opts) {
                Some(t) => {
                    let name = if key == "start" {
                        "event.start"
                    } else {
                        "event.end"
                    };
                    ev.fields.insert(name, crate::event::format_ts(&t));
                    true
                }
                None => false,
            },
            "dvc" => match canonical_ip(v) {
                Some(ip) => text(ev, "observer.ip", &ip),
                None => false,
            },
            "dvchost" => text(ev, "observer.hostname", v),
            "externalId" => text(ev, "event.id", v),
            "fname" => text(ev, "file.name", v),
            "filePath" => text(ev, "file.path", v),
            "fsize" => int(ev, "file.size", v),
            "fileHash" if v.len() == 64 && v.bytes().all(|c| c.is_ascii_hexdigit()) => {
                text(ev, "file.hash.sha256", v)
            }
            "sproc" => text(ev, "process.name", v),
            "spid" => int(ev, "process.pid", v),
            "deviceInboundInterface" => text(ev, "observer.ingress.interface.name", v),
            "deviceOutboundInterface" => text(ev, "observer.egress.interface.name", v),
            "sourceTranslatedAddress" => text_ip(ev, "source.nat.ip", v),
            "destinationTranslatedAddress" => text_ip(ev, "destination.nat.ip", v),
            "sourceTranslatedPort" => port(ev, "source.nat.port", v),
            "destinationTranslatedPort" => port(ev, "destination.nat.port", v),
            _ => false,
        };
        if !mapped {
            ev.fields.insert(concat(&["cef.extensions.", key]), v);
        }
    }
    claim
}

fn text(ev: &mut Event, name: &'static str, v: &str) -> bool {
    ev.fields.insert(name, v);
    true
}

fn text_ip(ev: &mut Event, name: &'static str, v: &str) -> bool {
    match canonical_ip(v) {
        Some(ip) => text(ev, name, &ip),
        None => false,
    }
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

fn port(ev: &mut Event, name: &'static str, v: &str) -> bool {
    match parse_port(v) {
        Some(p) => {
            ev.fields.insert(name, Value::Int(i64::from(p)));
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

/// CEF times: epoch milliseconds, ISO 8601, or `MMM dd yyyy HH:mm:ss[.SSS]`
/// (zone-less, read at the configured offset; a trailing zone name is ignored).
fn cef_time(v: &str, opts: &ParseOptions) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Some(t) = from_epoch_text(v) {
        return Some(t);
    }
    if let Some((t, _)) = parse_iso(v.as_bytes(), opts.local_offset) {
        return Some(t);
    }
    // MMM dd yyyy HH:mm:ss
    let b = v.as_bytes();
    let month = month_from_abbrev(b.get(..3)?)?;
    let mut parts = v.get(4..)?.split(' ');
    let day: u32 = parts.next()?.parse().ok()?;
    let year: i32 = parts.next()?.parse().ok()?;
    let time = parts.next()?;
    let iso = format!("{year:04}-{month:02}-{day:02}T{time}");
    parse_iso(iso.as_bytes(), opts.local_offset).map(|(t, _)| t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn run(line: &str) -> (Claim, String, Event) {
        let mut ev = Event::new(String::new(), Utc::now());
        let (c, hint) = parse(line, &mut ev, &ParseOptions::default());
        (c, hint, ev)
    }

    #[test]
    fn header_and_mapped_extensions() {
        let (c, hint, ev) = run(
            r"CEF:0|Fortinet|FortiGate-100F|7.2.5|0000000013|traffic:forward deny|3|src=203.0.113.9 spt=51514 dst=198.51.100.2 dpt=3389 proto=6 act=deny suser=bob rt=1709287200000 deviceInboundInterface=port1 cs1Label=policy cs1=block rdp msg=RDP from outside\=bad",
        );
        assert_eq!(c, Claim::Full);
        assert_eq!(hint, "Fortinet|FortiGate-100F");
        let f = &ev.fields;
        assert_eq!(f.get_str("cef.version"), Some("0"));
        assert_eq!(f.get_str("observer.vendor"), Some("Fortinet"));
        assert_eq!(f.get_str("observer.product"), Some("FortiGate-100F"));
        assert_eq!(f.get_str("event.code"), Some("0000000013"));
        assert_eq!(f.get("event.severity"), Some(&Value::Int(3)));
        assert_eq!(f.get_str("source.ip"), Some("203.0.113.9"));
        assert_eq!(f.get("source.port"), Some(&Value::Int(51514)));
        assert_eq!(f.get_str("destination.ip"), Some("198.51.100.2"));
        assert_eq!(f.get("destination.port"), Some(&Value::Int(3389)));
        assert_eq!(f.get_str("network.transport"), Some("tcp"));
        assert_eq!(f.get_str("event.action"), Some("denied"));
        assert_eq!(f.get_str("cef.extensions.act"), Some("deny"));
        assert_eq!(f.get_str("user.name"), Some("bob"));
        assert_eq!(f.get_str("cef.extensions.cs1"), Some("block rdp"));
        assert_eq!(f.get_str("cef.extensions.cs1Label"), Some("policy"));
        assert_eq!(f.get_str("message"), Some("RDP from outside=bad"));
        assert_eq!(f.get_str("observer.ingress.interface.name"), Some("port1"));
        assert_eq!(
            ev.timestamp,
            Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0)
                .single()
                .expect("t")
        );
    }

    #[test]
    fn escapes_and_text_severity() {
        let (c, _, ev) = run(
            r"CEF:0|Sec\|urity|threat\\manager|1.0|100|worm successfully stopped|High|src=10.0.0.1 request=http://x/a?b=c cs2=line1\nline2 rt=Mar 01 2024 10:00:00",
        );
        assert_eq!(c, Claim::Full);
        assert_eq!(ev.fields.get_str("observer.vendor"), Some("Sec|urity"));
        assert_eq!(
            ev.fields.get_str("observer.product"),
            Some(r"threat\manager")
        );
        assert_eq!(ev.fields.get("event.severity"), Some(&Value::Int(8)));
        assert_eq!(ev.fields.get_str("url.original"), Some("http://x/a?b=c"));
        assert_eq!(
            ev.fields.get_str("cef.extensions.cs2"),
            Some("line1\nline2")
        );
        assert_eq!(
            ev.fields.get_str("message"),
            Some("worm successfully stopped")
        );
        assert_eq!(
            ev.timestamp,
            Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0)
                .single()
                .expect("t")
        );
    }

    #[test]
    fn truncated_and_not_cef() {
        let (c, _, ev) = run("CEF:0|Vendor|Prod");
        assert_eq!(c, Claim::Partial);
        assert_eq!(ev.fields.get_str("observer.vendor"), Some("Vendor"));
        let (c, _, _) = run("CEF:0|V|P|1|2|n|5|");
        assert_eq!(c, Claim::Full);
        let (c, _, _) = run("CEF:0|V|P|1|2|n|5|rt=garbage");
        assert_eq!(c, Claim::Partial);
        for bad in ["CEF:", "CEF:x|a|b|c|d|e|f|", "CEF", "hello"] {
            assert_eq!(run(bad).0, Claim::No, "{bad}");
        }
        assert!(split_extension("a=1 b c=2 =x d\\=e=3")
            .iter()
            .any(|(k, v)| *k == "a" && *v == "1 b"));
    }
}
