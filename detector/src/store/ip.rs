//! IP addresses as ClickHouse stores them: 16 bytes in network order, IPv4
//! as IPv4-mapped IPv6 (`::ffff:a.b.c.d`), which is what the modern `IPv6`
//! type and the legacy `FixedString(16)` both hold.

use std::net::{IpAddr, Ipv6Addr};

/// The "no address" value (`::`); `source_address` shows it as `''`.
pub const UNSPECIFIED: [u8; 16] = [0; 16];

/// Parses an address as events carry it: plain IPv4 or IPv6 text, also
/// bracketed (`[2001:db8::1]`) or with an IPv6 zone (`fe80::1%eth0`, the
/// zone dropped). `None` when the text is not an address.
pub fn parse(text: &str) -> Option<[u8; 16]> {
    let t = text.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(t);
    let t = t.split_once('%').map_or(t, |(addr, _zone)| addr);
    match t.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => Some(v4.to_ipv6_mapped().octets()),
        IpAddr::V6(v6) => Some(v6.octets()),
    }
}

/// The text ClickHouse's `source_address` alias shows for stored bytes.
pub fn to_text(bytes: &[u8; 16]) -> String {
    if *bytes == UNSPECIFIED {
        return String::new();
    }
    let v6 = Ipv6Addr::from(*bytes);
    match v6.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => v6.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_mapped_and_ipv6_kept() {
        let v4 = parse("203.0.113.7").expect("ipv4");
        assert_eq!(&v4[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(&v4[12..], &[203, 0, 113, 7]);
        assert_eq!(to_text(&v4), "203.0.113.7");
        let v6 = parse("[2001:db8::1]").expect("bracketed ipv6");
        assert_eq!(to_text(&v6), "2001:db8::1");
        assert_eq!(parse("fe80::1%eth0"), parse("fe80::1"));
        assert_eq!(to_text(&UNSPECIFIED), "");
    }

    #[test]
    fn non_addresses_are_rejected() {
        for bad in ["", "evil.example", "999.1.1.1", "1.2.3", "::g"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
