//! Helpers that write ECS fields the same way in every parser, so that a
//! source IP, a port or an outcome always has one name and one type.

use crate::event::{Event, Value};

use super::text::{canonical_ip, parse_port};

/// ECS `event.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Failure,
}

/// Sets `event.category` and `event.type` (ECS keyword arrays; always lists
/// here so consumers see one type) and `event.action`.
pub(crate) fn categorize(
    ev: &mut Event,
    category: &'static str,
    types: &[&'static str],
    action: &'static str,
) {
    classify(ev, category, types);
    ev.fields.insert("event.action", action);
}

/// Sets `event.category` and `event.type` only.
pub(crate) fn classify(ev: &mut Event, category: &'static str, types: &[&'static str]) {
    ev.fields
        .insert("event.category", Value::List(vec![Value::from(category)]));
    ev.fields.insert(
        "event.type",
        Value::List(types.iter().map(|t| Value::from(*t)).collect()),
    );
}

pub(crate) fn outcome(ev: &mut Event, outcome: Outcome) {
    ev.fields.insert(
        "event.outcome",
        match outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        },
    );
}

/// Sets a text field unless the value is empty or the `-` placeholder logs
/// use for "none".
pub(crate) fn set_text(ev: &mut Event, name: &'static str, value: &str) {
    if !value.is_empty() && value != "-" {
        ev.fields.insert(name, value);
    }
}

/// Sets `<side>.ip` when `value` is an IP address, otherwise `<side>.domain`
/// (daemons log a host name when reverse lookups are on). Returns whether it
/// was an IP.
pub(crate) fn set_address(ev: &mut Event, side: Side, value: &str) -> bool {
    if value.is_empty() || value == "-" {
        return false;
    }
    match canonical_ip(value) {
        Some(ip) => {
            ev.fields.insert(side.ip(), ip.into_owned());
            true
        }
        None => {
            ev.fields.insert(side.domain(), value);
            false
        }
    }
}

/// Sets `<side>.ip` only when `value` is an IP address; returns whether it was.
pub(crate) fn set_ip(ev: &mut Event, side: Side, value: &str) -> bool {
    match canonical_ip(value) {
        Some(ip) => {
            ev.fields.insert(side.ip(), ip.into_owned());
            true
        }
        None => false,
    }
}

/// Sets `<side>.port` when `value` is a port number; returns whether it was.
pub(crate) fn set_port(ev: &mut Event, side: Side, value: &str) -> bool {
    match parse_port(value) {
        Some(p) => {
            ev.fields.insert(side.port(), Value::Int(i64::from(p)));
            true
        }
        None => false,
    }
}

/// The two ends of a network exchange, for the `source.*`/`destination.*`
/// field families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Source,
    Destination,
}

impl Side {
    pub(crate) fn ip(self) -> &'static str {
        match self {
            Side::Source => "source.ip",
            Side::Destination => "destination.ip",
        }
    }
    pub(crate) fn domain(self) -> &'static str {
        match self {
            Side::Source => "source.domain",
            Side::Destination => "destination.domain",
        }
    }
    pub(crate) fn port(self) -> &'static str {
        match self {
            Side::Source => "source.port",
            Side::Destination => "destination.port",
        }
    }
}

/// `network.transport` from a protocol name or IANA number as firewalls
/// write it (`TCP`, `udp`, `6`, `ICMPv6`, `58`): lower-case ECS names.
pub(crate) fn transport(proto: &str) -> Option<String> {
    let named = match proto {
        "6" => "tcp",
        "17" => "udp",
        "1" => "icmp",
        "58" => "ipv6-icmp",
        "47" => "gre",
        "50" => "esp",
        "51" => "ah",
        "132" => "sctp",
        "2" => "igmp",
        _ => "",
    };
    if !named.is_empty() {
        return Some(named.to_owned());
    }
    if proto.is_empty() || proto == "-" || proto.len() > 16 {
        return None;
    }
    if proto.eq_ignore_ascii_case("icmpv6") || proto.eq_ignore_ascii_case("ipv6-icmp") {
        return Some("ipv6-icmp".to_owned());
    }
    Some(proto.to_ascii_lowercase())
}

/// What a firewall did, in the vocabulary SigmaHQ's `category: firewall`
/// rules use for `action` (`accept`, `denied`), from whatever the device
/// wrote (an iptables log prefix like `[UFW BLOCK]`, CEF `act=blocked`,
/// FortiGate `action="deny"`):
///
/// * contains drop / deny / denied / block / reject → `denied`
/// * contains accept / allow / permit / pass → `accept`
/// * anything else → the text lower-cased, non-alphanumerics as `-`
///
/// Returns also whether the verdict was a denial (`Some(true)`), an accept
/// (`Some(false)`) or unknown (`None`), for `event.type`.
pub(crate) fn firewall_action(raw: &str) -> (String, Option<bool>) {
    let raw = raw.trim();
    const DENY: [&str; 5] = ["drop", "deny", "block", "reject", "refuse"];
    const ALLOW: [&str; 4] = ["accept", "allow", "permit", "pass"];
    // Lower-case once (verdict words are ASCII; longer texts are scanned
    // as they are, case-insensitively).
    let mut buf = [0u8; 64];
    let lower: &[u8] = if raw.len() <= buf.len() {
        for (d, s) in buf.iter_mut().zip(raw.bytes()) {
            *d = s.to_ascii_lowercase();
        }
        &buf[..raw.len()]
    } else {
        raw.as_bytes()
    };
    let has = |w: &str| contains_ignore_case(lower, w.as_bytes());
    if DENY.iter().any(|w| has(w)) {
        return ("denied".to_owned(), Some(true));
    }
    if ALLOW.iter().any(|w| has(w)) {
        return ("accept".to_owned(), Some(false));
    }
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    (out, None)
}

/// Whether `hay` contains the lower-case ASCII `needle`, ignoring case.
fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Sets `event.action` and `event.type` from a firewall verdict (see
/// [`firewall_action`]), with `event.category: network`. For an event that
/// has none of these fields yet (they are appended).
pub(crate) fn firewall_verdict(ev: &mut Event, raw: &str) {
    let (action, denied) = firewall_action(raw);
    let types = match denied {
        Some(true) => vec![Value::from("connection"), Value::from("denied")],
        Some(false) => vec![Value::from("connection"), Value::from("allowed")],
        None => vec![Value::from("connection")],
    };
    ev.fields
        .push_new("event.category", Value::List(vec![Value::from("network")]));
    ev.fields.push_new("event.type", Value::List(types));
    if !action.is_empty() {
        ev.fields.push_new("event.action", action);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firewall_actions_normalize() {
        assert_eq!(firewall_action("[UFW BLOCK]").0, "denied");
        assert_eq!(firewall_action("DROP:").0, "denied");
        assert_eq!(firewall_action("blocked").0, "denied");
        assert_eq!(firewall_action("deny").0, "denied");
        assert_eq!(firewall_action("ACCEPT").0, "accept");
        assert_eq!(firewall_action("[UFW ALLOW]").1, Some(false));
        assert_eq!(
            firewall_action("[UFW AUDIT]"),
            ("ufw-audit".to_owned(), None)
        );
        assert_eq!(
            firewall_action("nft ssh-in: "),
            ("nft-ssh-in".to_owned(), None)
        );
        assert_eq!(firewall_action(""), (String::new(), None));
    }

    #[test]
    fn transports() {
        assert_eq!(transport("TCP").as_deref(), Some("tcp"));
        assert_eq!(transport("17").as_deref(), Some("udp"));
        assert_eq!(transport("ICMPv6").as_deref(), Some("ipv6-icmp"));
        assert_eq!(transport("-"), None);
    }
}
