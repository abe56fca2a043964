//! Kernel packet-log lines from iptables `LOG`, ufw and nftables `log`:
//!
//! ```text
//! kernel: [ 8457.246354] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:…:08:00 SRC=203.0.113.9 DST=198.51.100.2 LEN=60 TOS=0x00 PREC=0x00 TTL=49 ID=0 DF PROTO=TCP SPT=44226 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0
//! kernel: DROP: IN=eth0 OUT= SRC=… PROTO=UDP SPT=5353 DPT=5353 LEN=40
//! kernel: nft drop in: IN=ens3 OUT= MAC=… SRC=2001:db8::1 DST=2001:db8::2 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=1 SEQ=1
//! ```
//!
//! The log prefix (everything before `IN=`, minus the kernel uptime stamp)
//! is the operator's name for the rule: it goes to `rule.name`, and its verb
//! decides `event.action` and `event.type` (`connection` + `denied` /
//! `allowed`). The verdict vocabulary is SigmaHQ's `category: firewall`
//! one, shared with CEF `act` and key=value `action`:
//!
//! * the text contains drop / deny / block / reject / refuse → `denied`
//! * contains accept / allow / permit / pass → `accept`
//! * anything else → the text lower-cased, non-alphanumerics as `-`
//!   (`[UFW AUDIT]` → `ufw-audit`); no prefix → no `event.action`.
//!
//! | key | field |
//! |---|---|
//! | `IN` / `OUT` | `observer.ingress.interface.name` / `observer.egress.interface.name`; `network.direction` `ingress`/`egress` when only one is set |
//! | `MAC` | `destination.mac`, `source.mac` (Ethernet: dst 6 octets, src 6, type 2) |
//! | `SRC` / `DST` | `source.ip` / `destination.ip`, `network.type` `ipv4`/`ipv6` |
//! | `SPT` / `DPT` | `source.port` / `destination.port` |
//! | `PROTO` | `network.transport` (`tcp`, `udp`, `icmp`, `ipv6-icmp`, …) |
//! | `LEN`, `TTL`/`HOPLIMIT`, `ID`, `WINDOW` | `iptables.length`, `iptables.ttl`, `iptables.id`, `iptables.tcp.window` |
//! | TCP flag words (`SYN`, `ACK`, …) | `iptables.tcp.flags` (list) |
//! | `TYPE` / `CODE` (ICMP) | `iptables.icmp.type` / `iptables.icmp.code` |
//! | `UID` / `GID` (owner match) | `user.id` / `group.id` |
//!
//! Everything after a `[` (the quoted packet inside an ICMP error) is left
//! in the message only.

use crate::event::{Event, Value};

use super::ecs::{firewall_verdict, transport};
use super::text::{canonical_ip, ecs_mac, find, is_ipv6, parse_port, parse_uint};
use super::Claim;

/// Cheap test: does the message carry a packet log (`IN=` … `OUT=` … `SRC=`)?
/// Returns where the `IN=` key starts, for [`parse_at`].
pub(crate) fn locate(msg: &str) -> Option<usize> {
    let i = in_position(msg)?;
    let tail = &msg[i..];
    (find(tail, " OUT=").is_some() && find(tail, " SRC=").is_some()).then_some(i)
}

/// [`locate`] as a yes/no.
#[cfg(test)]
pub(crate) fn looks_like(msg: &str) -> bool {
    locate(msg).is_some()
}

/// Position of the `IN=` key (at the start or after a space).
fn in_position(msg: &str) -> Option<usize> {
    if msg.starts_with("IN=") {
        return Some(0);
    }
    find(msg, " IN=").map(|i| i + 1)
}

#[cfg(test)]
pub(crate) fn parse(msg: &str, ev: &mut Event) -> Claim {
    match in_position(msg) {
        Some(start) => parse_at(msg, start, ev),
        None => Claim::No,
    }
}

/// Parses a packet log whose `IN=` key starts at `start` (from [`locate`]).
pub(crate) fn parse_at(msg: &str, start: usize, ev: &mut Event) -> Claim {
    let prefix = strip_uptime(&msg[..start]).trim();
    let prefix = prefix.trim_end_matches(':').trim();
    let rule = prefix.trim_start_matches('[').trim_end_matches(']').trim();
    // Nothing before this parser sets rule.name or the categorization.
    if !rule.is_empty() {
        ev.fields.push_new("rule.name", rule);
    }
    firewall_verdict(ev, rule);

    let mut has_in = false;
    let mut has_out = false;
    let mut src_ok = false;
    let mut flags: Vec<Value> = Vec::new();
    // Output names already written: a key repeated in the line (or TTL and
    // HOPLIMIT both present) keeps its first value, and every other name can
    // be appended without a lookup.
    let mut seen: u32 = 0;
    let mut first = |slot: u32| {
        let bit = 1u32 << slot;
        let fresh = seen & bit == 0;
        seen |= bit;
        fresh
    };
    let b = msg.as_bytes();
    let mut i = start;
    while i < b.len() {
        // One token: up to the next space; its key ends at the first '='
        // (keys are short, so that scan is too).
        // Tokens are a few bytes: a plain scan beats a SIMD call here.
        let j = b[i..]
            .iter()
            .position(|&c| c == b' ')
            .map_or(b.len(), |k| i + k);
        let tok = &msg[i..j];
        let eq = tok.bytes().position(|c| c == b'=');
        i = j + 1;
        if tok.starts_with('[') {
            break;
        }
        let Some(eq) = eq else {
            if matches!(
                tok,
                "SYN" | "ACK" | "FIN" | "RST" | "PSH" | "URG" | "CWR" | "ECE"
            ) {
                flags.push(Value::from(tok));
            }
            continue;
        };
        let (k, v) = (&tok[..eq], &tok[eq + 1..]);
        if v.is_empty() {
            continue;
        }
        match k {
            "IN" if first(0) => {
                has_in = true;
                ev.fields.push_new("observer.ingress.interface.name", v);
            }
            "OUT" if first(1) => {
                has_out = true;
                ev.fields.push_new("observer.egress.interface.name", v);
            }
            "MAC" if first(2) => macs(v, ev),
            "SRC" if first(3) => {
                if let Some(ip) = canonical_ip(v) {
                    src_ok = true;
                    ev.fields.push_new("source.ip", ip.into_owned());
                    let ty = if is_ipv6(v) { "ipv6" } else { "ipv4" };
                    ev.fields.push_new("network.type", ty);
                }
            }
            "DST" if first(4) => {
                if let Some(ip) = canonical_ip(v) {
                    ev.fields.push_new("destination.ip", ip.into_owned());
                }
            }
            "SPT" if first(5) => port(ev, "source.port", v),
            "DPT" if first(6) => port(ev, "destination.port", v),
            "PROTO" if first(7) => {
                if let Some(t) = transport(v) {
                    ev.fields.push_new("network.transport", t);
                }
            }
            "LEN" if first(8) => int(ev, "iptables.length", v),
            "TTL" | "HOPLIMIT" if first(9) => int(ev, "iptables.ttl", v),
            "ID" if first(10) => int(ev, "iptables.id", v),
            "WINDOW" if first(11) => int(ev, "iptables.tcp.window", v),
            "TYPE" if first(12) => int(ev, "iptables.icmp.type", v),
            "CODE" if first(13) => int(ev, "iptables.icmp.code", v),
            "UID" if first(14) => ev.fields.push_new("user.id", v),
            "GID" if first(15) => ev.fields.push_new("group.id", v),
            _ => {}
        }
    }
    match (has_in, has_out) {
        (true, false) => ev.fields.push_new("network.direction", "ingress"),
        (false, true) => ev.fields.push_new("network.direction", "egress"),
        _ => {}
    }
    if !flags.is_empty() {
        ev.fields.push_new("iptables.tcp.flags", Value::List(flags));
    }
    if src_ok {
        Claim::Full
    } else {
        Claim::Partial
    }
}

/// Drops a leading kernel uptime stamp `[ 8457.246354]`.
fn strip_uptime(s: &str) -> &str {
    let t = s.trim_start();
    if let Some(rest) = t.strip_prefix('[') {
        if let Some((stamp, after)) = super::text::split_byte(rest, b']') {
            if !stamp.is_empty()
                && stamp
                    .bytes()
                    .all(|c| c.is_ascii_digit() || c == b'.' || c == b' ')
            {
                return after;
            }
        }
    }
    s
}

fn macs(v: &str, ev: &mut Event) {
    // dst(17) ':' src(17) ':' ethertype(5)
    if v.len() == 41 {
        if let (Some(dst), Some(src)) = (
            v.get(0..17).and_then(ecs_mac),
            v.get(18..35).and_then(ecs_mac),
        ) {
            ev.fields.push_new("destination.mac", dst);
            ev.fields.push_new("source.mac", src);
        }
    }
}

fn port(ev: &mut Event, name: &'static str, v: &str) {
    if let Some(p) = parse_port(v) {
        ev.fields.push_new(name, Value::Int(i64::from(p)));
    }
}

fn int(ev: &mut Event, name: &'static str, v: &str) {
    if let Some(n) = parse_uint(v) {
        ev.fields.push_new(name, Value::Int(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn run(msg: &str) -> (Claim, Event) {
        let mut ev = Event::new(String::new(), Utc::now());
        (parse(msg, &mut ev), ev)
    }

    #[test]
    fn ufw_block() {
        let m = "[ 8457.246354] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.9 DST=198.51.100.2 LEN=60 TOS=0x00 PREC=0x00 TTL=49 ID=0 DF PROTO=TCP SPT=44226 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0";
        assert!(looks_like(m));
        let (c, ev) = run(m);
        assert_eq!(c, Claim::Full);
        let f = &ev.fields;
        assert_eq!(f.get_str("rule.name"), Some("UFW BLOCK"));
        assert_eq!(f.get_str("event.action"), Some("denied"));
        assert_eq!(f.get_str("source.ip"), Some("203.0.113.9"));
        assert_eq!(f.get_str("destination.ip"), Some("198.51.100.2"));
        assert_eq!(f.get("source.port"), Some(&Value::Int(44226)));
        assert_eq!(f.get("destination.port"), Some(&Value::Int(22)));
        assert_eq!(f.get_str("network.transport"), Some("tcp"));
        assert_eq!(f.get_str("network.type"), Some("ipv4"));
        assert_eq!(f.get_str("network.direction"), Some("ingress"));
        assert_eq!(f.get_str("observer.ingress.interface.name"), Some("eth0"));
        assert!(f.get("observer.egress.interface.name").is_none());
        assert_eq!(f.get_str("source.mac"), Some("52-54-00-65-43-21"));
        assert_eq!(f.get_str("destination.mac"), Some("52-54-00-12-34-56"));
        assert_eq!(f.get("iptables.length"), Some(&Value::Int(60)));
        assert_eq!(
            f.get("iptables.tcp.flags"),
            Some(&Value::List(vec![Value::from("SYN")]))
        );
        assert_eq!(
            f.get("event.type"),
            Some(&Value::List(vec![
                Value::from("connection"),
                Value::from("denied")
            ]))
        );
    }

    #[test]
    fn plain_prefix_nft_and_ipv6() {
        let (_, ev) =
            run("DROP: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=5353 DPT=5353");
        assert_eq!(ev.fields.get_str("rule.name"), Some("DROP"));
        assert_eq!(ev.fields.get_str("event.action"), Some("denied"));
        assert_eq!(ev.fields.get_str("network.transport"), Some("udp"));
        let (_, ev) = run("nft accept ssh: IN=ens3 OUT= SRC=2001:db8::1 DST=2001:db8::2 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=1 SEQ=1");
        assert_eq!(ev.fields.get_str("event.action"), Some("accept"));
        assert_eq!(ev.fields.get_str("network.type"), Some("ipv6"));
        assert_eq!(ev.fields.get_str("network.transport"), Some("ipv6-icmp"));
        assert_eq!(ev.fields.get("iptables.icmp.type"), Some(&Value::Int(128)));
        assert_eq!(ev.fields.get("iptables.ttl"), Some(&Value::Int(64)));
        let (_, ev) = run("IN= OUT=eth1 SRC=10.0.0.1 DST=10.0.0.2 PROTO=47 UID=1000");
        assert!(ev.fields.get("rule.name").is_none());
        assert!(ev.fields.get("event.action").is_none());
        assert_eq!(ev.fields.get_str("network.direction"), Some("egress"));
        assert_eq!(ev.fields.get_str("network.transport"), Some("gre"));
        assert_eq!(ev.fields.get_str("user.id"), Some("1000"));
        let (_, ev) = run("[UFW AUDIT] IN=eth0 OUT=eth1 SRC=10.0.0.1 DST=10.0.0.2 PROTO=ICMP TYPE=3 CODE=1 [SRC=10.0.0.2 DST=10.9.9.9 LEN=1 ]");
        assert_eq!(ev.fields.get_str("event.action"), Some("ufw-audit"));
        assert_eq!(ev.fields.get_str("destination.ip"), Some("10.0.0.2"));
        assert!(ev.fields.get("network.direction").is_none());
    }

    #[test]
    fn truncated_or_not_firewall() {
        let (c, ev) = run("[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00");
        assert_eq!(c, Claim::Partial);
        assert_eq!(
            ev.fields.get_str("observer.ingress.interface.name"),
            Some("eth0")
        );
        assert!(!looks_like("[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00"));
        assert!(!looks_like("usb 1-1: new high-speed USB device"));
        assert!(!looks_like("LOGIN=x OUT=y SRC=z"));
        assert_eq!(run("no packet here").0, Claim::No);
    }
}
