//! Small scanning helpers shared by the parsers.
//!
//! Everything here slices only at the positions of ASCII bytes (which never
//! occur inside a multi-byte UTF-8 sequence) or through `str::get`, so no
//! input can make a slice panic.

use std::borrow::Cow;
use std::net::IpAddr;

/// The first space-delimited token of `s` and the rest after that space.
pub(crate) fn token(s: &str) -> (&str, &str) {
    match memchr::memchr(b' ', s.as_bytes()) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

/// Finds `needle` in `s`: memchr to each candidate of an anchor byte, then
/// a compare. The anchor is the needle's first byte that is not a space
/// (spaces are the most common byte in a log line, letters far rarer). For
/// the short constant needles parsers use this beats building a substring
/// searcher per call; the compare is bounded by the needle length, so it
/// stays linear in `s` for any input.
pub(crate) fn find(s: &str, needle: &str) -> Option<usize> {
    let (h, n) = (s.as_bytes(), needle.as_bytes());
    let off = anchor(n)?;
    let mut from = off;
    while let Some(k) = memchr::memchr(n[off], h.get(from..)?) {
        let i = from + k - off;
        if h.get(i..i + n.len()) == Some(n) {
            return Some(i);
        }
        from += k + 1;
    }
    None
}

/// Finds the last `needle` in `s` (see [`find`]).
pub(crate) fn rfind(s: &str, needle: &str) -> Option<usize> {
    let (h, n) = (s.as_bytes(), needle.as_bytes());
    let off = anchor(n)?;
    // Candidates for the anchor must leave room for the needle after it.
    let mut end = (h.len() + off + 1).checked_sub(n.len())?;
    while let Some(k) = memchr::memrchr(n[off], h.get(..end)?) {
        if k >= off {
            let i = k - off;
            if h.get(i..i + n.len()) == Some(n) {
                return Some(i);
            }
        }
        end = k;
    }
    None
}

/// Index of the first non-space byte of a needle (0 if all spaces);
/// `None` for an empty needle.
fn anchor(n: &[u8]) -> Option<usize> {
    if n.is_empty() {
        return None;
    }
    Some(n.iter().position(|&c| c != b' ').unwrap_or(0))
}

/// Splits around the first `byte` (an ASCII delimiter).
pub(crate) fn split_byte(s: &str, byte: u8) -> Option<(&str, &str)> {
    let i = memchr::memchr(byte, s.as_bytes())?;
    Some((&s[..i], &s[i + 1..]))
}

/// The space-separated words of `s` (empty words between double spaces
/// included, like `str::split(' ')`), found with memchr.
pub(crate) fn words(s: &str) -> Words<'_> {
    Words { s: Some(s) }
}

pub(crate) struct Words<'a> {
    s: Option<&'a str>,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.s?;
        match memchr::memchr(b' ', s.as_bytes()) {
            Some(i) => {
                self.s = Some(&s[i + 1..]);
                Some(&s[..i])
            }
            None => {
                self.s = None;
                Some(s)
            }
        }
    }
}

/// Concatenates `parts` into one exactly-sized string — field names built
/// from input (`kv.<key>`, `a.b.c`) on the hot path, where `format!` costs
/// several times more.
pub(crate) fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

/// Splits around the first `needle`.
pub(crate) fn split_at_str<'a>(s: &'a str, needle: &str) -> Option<(&'a str, &'a str)> {
    let i = find(s, needle)?;
    Some((&s[..i], s.get(i + needle.len()..)?))
}

/// Splits around the last `needle`.
pub(crate) fn rsplit_at_str<'a>(s: &'a str, needle: &str) -> Option<(&'a str, &'a str)> {
    let i = rfind(s, needle)?;
    Some((&s[..i], s.get(i + needle.len()..)?))
}

/// Leading ASCII digits of `s` as a number that fits `u64`, and the rest.
pub(crate) fn leading_number(s: &str) -> Option<(u64, &str)> {
    let b = s.as_bytes();
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 19 {
        return None;
    }
    let v = s[..n].parse().ok()?;
    Some((v, &s[n..]))
}

/// A TCP/UDP port: 1–5 digits, at most 65535.
pub(crate) fn parse_port(s: &str) -> Option<u16> {
    if s.len() > 5 {
        return None;
    }
    parse_uint(s).and_then(|v| u16::try_from(v).ok())
}

/// A non-negative integer field value (byte counts, lengths, ids).
pub(crate) fn parse_uint(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// The canonical text of an IP address, or `None` when `s` is not one.
///
/// IPv4 is kept as written (std rejects non-canonical forms such as leading
/// zeros). IPv6 is rewritten in its canonical compressed lower-case form, an
/// IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, as dual-stack daemons log
/// IPv4 peers) becomes the plain IPv4 address, and a zone (`%eth0`) is
/// dropped, so one address always has one spelling for rules and pivots.
pub(crate) fn canonical_ip(s: &str) -> Option<Cow<'_, str>> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 64 {
        return None;
    }
    if is_canonical_ipv4(b) {
        return Some(Cow::Borrowed(s));
    }
    // Cheap pre-check: an IP starts with a hex digit or ':'.
    if !(b[0].is_ascii_hexdigit() || b[0] == b':') {
        return None;
    }
    let core = match memchr::memchr(b'%', b) {
        Some(i) => &s[..i],
        None => s,
    };
    match core.parse::<IpAddr>().ok()? {
        IpAddr::V4(_) if core.len() == s.len() => Some(Cow::Borrowed(s)),
        IpAddr::V4(v4) => Some(Cow::Owned(v4.to_string())),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(Cow::Owned(v4.to_string())),
            None => Some(Cow::Owned(v6.to_string())),
        },
    }
}

/// Fast path for the common case: a dotted quad in canonical form (four
/// decimal octets ≤ 255, no leading zeros). Anything else goes through std.
fn is_canonical_ipv4(b: &[u8]) -> bool {
    if b.len() < 7 || b.len() > 15 {
        return false;
    }
    let mut octets = 0;
    let mut value: u32 = 0;
    let mut digits = 0;
    for &c in b {
        match c {
            b'0'..=b'9' => {
                if digits == 1 && value == 0 {
                    return false; // leading zero
                }
                value = value * 10 + u32::from(c - b'0');
                digits += 1;
                if digits > 3 || value > 255 {
                    return false;
                }
            }
            b'.' => {
                if digits == 0 {
                    return false;
                }
                octets += 1;
                value = 0;
                digits = 0;
            }
            _ => return false,
        }
    }
    octets == 3 && digits > 0
}

/// Whether `s` looks like an IPv6 address (for `network.type`).
pub(crate) fn is_ipv6(s: &str) -> bool {
    memchr::memchr(b':', s.as_bytes()).is_some()
}

/// A MAC address in ECS form (`00-00-5E-00-53-23`) from the colon- or
/// dash-separated forms logs write; `None` if `s` is not six hex octets.
pub(crate) fn ecs_mac(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() != 17 {
        return None;
    }
    let ok = b.chunks(3).all(|octet| {
        octet[0].is_ascii_hexdigit()
            && octet[1].is_ascii_hexdigit()
            && !matches!(octet.get(2), Some(&sep) if sep != b':' && sep != b'-')
    });
    if !ok {
        return None;
    }
    let bytes: Vec<u8> = b
        .iter()
        .map(|&c| {
            if c == b':' {
                b'-'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    String::from_utf8(bytes).ok()
}

/// Reads a double-quoted string starting at `s[0] == '"'`, honouring
/// backslash escapes (kept as written). Returns (content, rest after the
/// closing quote) or `None` if unterminated.
pub(crate) fn quoted(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some((&s[1..i], &s[i + 1..])),
            _ => {
                // Jump to the next quote or backslash.
                match memchr::memchr2(b'"', b'\\', &b[i..]) {
                    Some(k) => i += k,
                    None => return None,
                }
            }
        }
    }
    None
}

/// Removes backslash escapes (`\"` → `"`, `\\` → `\`); borrows when there
/// are none.
pub(crate) fn unescape_backslashes(s: &str) -> Cow<'_, str> {
    if memchr::memchr(b'\\', s.as_bytes()).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether `s` is a plausible field key: ASCII letters, digits and `_ . - :`,
/// starting with a letter or underscore, at most 64 bytes.
pub(crate) fn is_key(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ips() {
        assert_eq!(canonical_ip("192.0.2.1").as_deref(), Some("192.0.2.1"));
        assert_eq!(
            canonical_ip("::ffff:192.0.2.1").as_deref(),
            Some("192.0.2.1")
        );
        assert_eq!(
            canonical_ip("2001:DB8:0:0::1").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(canonical_ip("fe80::1%eth0").as_deref(), Some("fe80::1"));
        assert_eq!(canonical_ip("192.0.2.1%x").as_deref(), Some("192.0.2.1"));
        assert_eq!(canonical_ip("0.0.0.0").as_deref(), Some("0.0.0.0"));
        assert_eq!(
            canonical_ip("255.255.255.255").as_deref(),
            Some("255.255.255.255")
        );
        for bad in [
            "1.2.3.4.",
            ".1.2.3",
            "1..2.3",
            "1.2.3.4.5",
            "1000.2.3.4",
            "",
            "host.example",
            "192.0.2",
            "192.0.2.256",
            "01.2.3.4",
            "-",
        ] {
            assert!(canonical_ip(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ports_and_numbers() {
        assert_eq!(parse_port("22"), Some(22));
        assert_eq!(parse_port("65535"), Some(65535));
        assert_eq!(parse_port("65536"), None);
        assert_eq!(parse_port("2a"), None);
        assert_eq!(parse_port(""), None);
        assert_eq!(leading_number("11: Bye"), Some((11, ": Bye")));
        assert_eq!(leading_number("x"), None);
        assert_eq!(leading_number("99999999999999999999999"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quoted(r#""a b" rest"#), Some(("a b", " rest")));
        assert_eq!(quoted(r#""a \"b\"" x"#), Some((r#"a \"b\""#, " x")));
        assert_eq!(quoted(r#""unterminated"#), None);
        assert_eq!(quoted(r#""ends in backslash\"#), None);
        assert_eq!(unescape_backslashes(r#"a \"b\" \\"#), r#"a "b" \"#);
    }

    #[test]
    fn finding() {
        assert_eq!(find("a from b from c", " from "), Some(1));
        assert_eq!(rfind("a from b from c", " from "), Some(8));
        assert_eq!(find("aaa", "aaaa"), None);
        assert_eq!(rfind("aaa", "aaaa"), None);
        assert_eq!(find("x", ""), None);
        assert_eq!(find("ab", "b"), Some(1));
        assert_eq!(rfind("ba", "b"), Some(0));
        assert_eq!(find(" from x", " from "), Some(0));
        assert_eq!(find("xfrom  from ", " from "), Some(6));
        assert_eq!(rfind(" from x from", " from "), Some(0));
        assert_eq!(rfind("from ", " from "), None);
        assert_eq!(find("   ", "  "), Some(0));
        assert_eq!(rfind("   ", "  "), Some(1));
        assert_eq!(find("a IN=x", " IN="), Some(1));
        assert_eq!(split_byte("k=v=w", b'='), Some(("k", "v=w")));
        let w: Vec<&str> = words("a  b c").collect();
        assert_eq!(w, ["a", "", "b", "c"]);
        assert_eq!(words("").collect::<Vec<_>>(), [""]);
    }

    #[test]
    fn macs_and_keys() {
        assert_eq!(
            ecs_mac("00:1a:2b:3c:4d:5e").as_deref(),
            Some("00-1A-2B-3C-4D-5E")
        );
        assert_eq!(ecs_mac("00:1a:2b:3c:4d"), None);
        assert!(is_key("srcip"));
        assert!(is_key("ad.user_name"));
        assert!(!is_key("1abc"));
        assert!(!is_key("a b"));
    }
}
