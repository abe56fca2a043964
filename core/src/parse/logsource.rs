//! The Sigma logsource each parser gives its events (SigmaHQ taxonomy,
//! `sigma-appendix-taxonomy.md`). The full table is in the
//! [module docs](super); this file is its single implementation.

use crate::event::{Event, LogSource};

/// `product: linux, service: <service>` — sshd, sudo, auth, cron, syslog.
pub(crate) fn linux(service: &str) -> LogSource {
    LogSource::new(Some("linux"), Some(service), None)
}

/// Kernel netfilter (iptables/nftables) lines: `product: linux,
/// category: firewall`. The category is what SigmaHQ's product-agnostic
/// firewall rules select on; the product keeps Linux-wide keyword rules
/// applying to kernel lines as to every other Linux log.
pub(crate) fn linux_firewall() -> LogSource {
    LogSource::new(Some("linux"), None, Some("firewall"))
}

/// Web access logs: `category: webserver`, with the product configured for
/// the input (`nginx`, `apache`, ...) or none.
pub(crate) fn webserver(product: Option<&str>) -> LogSource {
    LogSource::new(product, None, Some("webserver"))
}

/// CEF and key=value records: `category: firewall` when the record looks
/// like a firewall's (see [`looks_like_firewall`]), otherwise no logsource
/// (only rules without a logsource constraint apply).
pub(crate) fn network_record(ev: &Event, vendor_hint: &str) -> LogSource {
    if looks_like_firewall(ev, vendor_hint) {
        LogSource::new(None, None, Some("firewall"))
    } else {
        LogSource::default()
    }
}

/// The rule for "this CEF/key=value record is a firewall record":
///
/// * it names a network endpoint (`source.ip`, `destination.ip` or
///   `destination.port`) **and** carries a firewall verdict
///   (`event.action` is `accept` or `denied` after normalization), or
/// * the device names itself a firewall: the vendor/product text (CEF
///   header, key=value `devname`/`type`) contains `firewall`, `fortigate`,
///   `pan-os`, `asa`, `checkpoint`, `netscreen`, `pfsense`, `opnsense` or
///   `fw`-prefixed product words, **and** a network endpoint is present.
pub(crate) fn looks_like_firewall(ev: &Event, vendor_hint: &str) -> bool {
    let has_endpoint = ev.fields.contains("source.ip")
        || ev.fields.contains("destination.ip")
        || ev.fields.contains("destination.port");
    if !has_endpoint {
        return false;
    }
    if matches!(ev.fields.get_str("event.action"), Some("accept" | "denied")) {
        return true;
    }
    let hint = vendor_hint.to_ascii_lowercase();
    const NAMES: [&str; 8] = [
        "firewall",
        "fortigate",
        "fortios",
        "pan-os",
        "checkpoint",
        "netscreen",
        "pfsense",
        "opnsense",
    ];
    NAMES.iter().any(|n| hint.contains(n))
        || hint
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w.starts_with("fw") || w == "asa")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn firewall_rule_needs_endpoint_and_verdict_or_vendor() {
        let mut ev = Event::new(String::new(), Utc::now());
        ev.fields.insert("event.action", "denied");
        assert!(!looks_like_firewall(&ev, ""), "verdict without endpoint");
        ev.fields.insert("source.ip", "192.0.2.1");
        assert!(looks_like_firewall(&ev, ""));
        ev.fields.insert("event.action", "login");
        assert!(!looks_like_firewall(&ev, "Acme|Web Portal"));
        assert!(looks_like_firewall(&ev, "Fortinet|FortiGate-100F"));
        assert!(looks_like_firewall(&ev, "Acme|FW-9000"));
    }
}
