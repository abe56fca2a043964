//! Web server access logs in the Common and Combined Log Formats, as nginx
//! and Apache write them by default:
//!
//! ```text
//! 203.0.113.9 - alice [10/Oct/2023:13:55:36 +0000] "GET /a.php?id=1 HTTP/1.1" 200 2326 "https://ref/" "curl/8.0"
//! ```
//!
//! Tolerated variations: a leading virtual host (`example.org:443 …`, Apache
//! `vhost_combined`, or nginx `$host` first), a trailing request time or any
//! other extra fields after the user agent, `-` for absent values, escaped
//! quotes inside quoted fields, and request lines that are not HTTP (TLS
//! handshakes sent to a plain-text port show up as `"\x16\x03\x01…"`).
//!
//! | part | field |
//! |---|---|
//! | client | `source.ip` (or `source.domain` with `HostnameLookups On`) |
//! | auth user | `user.name` |
//! | time | `@timestamp` |
//! | request | `http.request.method`, `url.original`, `url.path`, `url.query`, `http.version` |
//! | status, bytes | `http.response.status_code`, `http.response.body.bytes` |
//! | referrer, user agent | `http.request.referrer`, `user_agent.original` |
//! | virtual host | `url.domain`, `url.port` |
//!
//! Plus `event.category: web`, `event.type: access`, and `event.outcome`
//! `success` for status < 400, `failure` otherwise.

use crate::event::{Event, Value};

use super::ecs::{classify, set_address, set_text, Side};
use super::text::{find, parse_port, quoted, words};
use super::timestamp::parse_clf;
use super::{Claim, ParseOptions};

pub(crate) fn parse(line: &str, ev: &mut Event, opts: &ParseOptions) -> Claim {
    let b = line.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphanumeric() || *c == b':' => {}
        _ => return Claim::No,
    }
    // The head before " [time]" has 3 words (client ident user) or 4 (vhost first).
    let Some(open) = find(line, " [") else {
        return Claim::No;
    };
    let head = &line[..open];
    let mut head_words = [""; 4];
    let mut n = 0;
    for w in words(head) {
        if n == 4 {
            return Claim::No;
        }
        head_words[n] = w;
        n += 1;
    }
    let (vhost, client, user) = match n {
        3 => (None, head_words[0], head_words[2]),
        4 => (Some(head_words[0]), head_words[1], head_words[3]),
        _ => return Claim::No,
    };
    if client.is_empty() {
        return Claim::No;
    }
    let after_open = &line[open + 2..];
    let Some(close) = memchr::memchr(b']', after_open.as_bytes()) else {
        return Claim::No;
    };
    let Some(time) = parse_clf(&after_open.as_bytes()[..close], opts.local_offset) else {
        return Claim::No;
    };
    // The shape is an access log from here on; what is missing is partial.
    ev.timestamp = time;
    set_address(ev, Side::Source, client);
    set_text(ev, "user.name", user);
    if let Some(v) = vhost {
        vhost_fields(v, ev);
    }
    classify(ev, "web", &["access"]);

    let rest = &after_open[close + 1..];
    let Some((request, rest)) = rest.strip_prefix(' ').and_then(quoted) else {
        return Claim::Partial;
    };
    request_fields(request, ev);

    // " status bytes"
    let mut tail = rest.strip_prefix(' ').unwrap_or(rest).splitn(3, ' ');
    let status = tail.next().unwrap_or_default();
    let code = if status.len() == 3 {
        status.parse::<u16>().ok()
    } else {
        None
    };
    let Some(code) = code else {
        return Claim::Partial;
    };
    ev.fields
        .insert("http.response.status_code", Value::Int(i64::from(code)));
    ev.fields.insert(
        "event.outcome",
        if code < 400 { "success" } else { "failure" },
    );
    let Some(bytes) = tail.next() else {
        return Claim::Partial;
    };
    match bytes {
        "-" => {}
        _ => match bytes.parse::<u64>() {
            Ok(n) => ev.fields.insert("http.response.body.bytes", Value::from(n)),
            Err(_) => return Claim::Partial,
        },
    }
    // Combined: ` "referrer" "user agent"`; anything after is tolerated.
    let Some(rest) = tail.next() else {
        return Claim::Full; // Common Log Format ends here.
    };
    let Some((referrer, rest)) = quoted(rest) else {
        return Claim::Full; // extra non-quoted fields after CLF
    };
    set_text(ev, "http.request.referrer", referrer);
    let Some((agent, _)) = rest.strip_prefix(' ').and_then(quoted) else {
        return if rest.is_empty() {
            Claim::Full
        } else {
            Claim::Partial
        };
    };
    set_text(ev, "user_agent.original", agent);
    Claim::Full
}

/// `METHOD target HTTP/x.y`; anything else leaves only what can be trusted.
fn request_fields(request: &str, ev: &mut Event) {
    let mut parts = words(request);
    let (Some(method), Some(target), Some(proto), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    if method.is_empty() || !method.bytes().all(|c| c.is_ascii_alphabetic()) {
        return;
    }
    ev.fields.insert("http.request.method", method);
    ev.fields.insert("url.original", target);
    if let Some(v) = proto.strip_prefix("HTTP/") {
        ev.fields.insert("http.version", v);
    }
    let path_and_query = if target.starts_with('/') {
        Some(target)
    } else if let Some(i) = target.find("://") {
        // Absolute form (proxies): the path starts at the first '/' after the host.
        let after = &target[i + 3..];
        Some(after.find('/').map_or("/", |j| &after[j..]))
    } else {
        None // "*" (OPTIONS) or "host:port" (CONNECT)
    };
    if let Some(pq) = path_and_query {
        let (path, query) = match pq.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (pq, None),
        };
        ev.fields.insert("url.path", path);
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            ev.fields.insert("url.query", q);
        }
    }
}

/// `host[:port]`
fn vhost_fields(v: &str, ev: &mut Event) {
    match v.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            set_text(ev, "url.domain", host);
            if let Some(p) = parse_port(port) {
                ev.fields.insert("url.port", Value::Int(i64::from(p)));
            }
        }
        _ => set_text(ev, "url.domain", v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn run(line: &str) -> (Claim, Event) {
        let mut ev = Event::new(String::new(), Utc::now());
        let c = parse(line, &mut ev, &ParseOptions::default());
        (c, ev)
    }

    fn get<'a>(ev: &'a Event, k: &str) -> Option<&'a str> {
        ev.fields.get_str(k)
    }

    #[test]
    fn combined() {
        let (c, ev) = run(
            r#"203.0.113.9 - alice [10/Oct/2023:13:55:36 -0700] "GET /index.php?id=1%27%20OR%201=1 HTTP/1.1" 200 2326 "http://example.com/start.html" "Mozilla/5.0 (X11; Linux x86_64)""#,
        );
        assert_eq!(c, Claim::Full);
        assert_eq!(get(&ev, "source.ip"), Some("203.0.113.9"));
        assert_eq!(get(&ev, "user.name"), Some("alice"));
        assert_eq!(get(&ev, "http.request.method"), Some("GET"));
        assert_eq!(
            get(&ev, "url.original"),
            Some("/index.php?id=1%27%20OR%201=1")
        );
        assert_eq!(get(&ev, "url.path"), Some("/index.php"));
        assert_eq!(get(&ev, "url.query"), Some("id=1%27%20OR%201=1"));
        assert_eq!(get(&ev, "http.version"), Some("1.1"));
        assert_eq!(
            ev.fields.get("http.response.status_code"),
            Some(&Value::Int(200))
        );
        assert_eq!(
            ev.fields.get("http.response.body.bytes"),
            Some(&Value::Int(2326))
        );
        assert_eq!(
            get(&ev, "http.request.referrer"),
            Some("http://example.com/start.html")
        );
        assert_eq!(
            get(&ev, "user_agent.original"),
            Some("Mozilla/5.0 (X11; Linux x86_64)")
        );
        assert_eq!(get(&ev, "event.outcome"), Some("success"));
        assert_eq!(
            ev.timestamp,
            Utc.with_ymd_and_hms(2023, 10, 10, 20, 55, 36)
                .single()
                .expect("t")
        );
    }

    #[test]
    fn common_vhost_and_suffixes() {
        let (c, ev) =
            run(r#"2001:db8::5 - - [10/Oct/2023:13:55:36 +0000] "POST /login HTTP/1.0" 401 -"#);
        assert_eq!(c, Claim::Full);
        assert_eq!(get(&ev, "source.ip"), Some("2001:db8::5"));
        assert!(ev.fields.get("user.name").is_none());
        assert!(ev.fields.get("http.response.body.bytes").is_none());
        assert_eq!(get(&ev, "event.outcome"), Some("failure"));
        let (c, ev) = run(
            r#"shop.example.org:443 198.51.100.7 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/2.0" 304 0 "-" "-" 0.004"#,
        );
        assert_eq!(c, Claim::Full);
        assert_eq!(get(&ev, "url.domain"), Some("shop.example.org"));
        assert_eq!(ev.fields.get("url.port"), Some(&Value::Int(443)));
        assert!(ev.fields.get("http.request.referrer").is_none());
        assert!(ev.fields.get("user_agent.original").is_none());
        let (c, ev) = run(
            r#"198.51.100.7 - - [10/Oct/2023:13:55:36 +0000] "GET /x HTTP/1.1" 200 5 "-" "a \"quoted\" agent" rt=0.001 uct="0.000""#,
        );
        assert_eq!(c, Claim::Full);
        assert_eq!(
            get(&ev, "user_agent.original"),
            Some(r#"a \"quoted\" agent"#)
        );
        let (_, ev) = run(
            r#"198.51.100.7 - - [10/Oct/2023:13:55:36 +0000] "GET http://proxy.test/p?q=1 HTTP/1.1" 200 5"#,
        );
        assert_eq!(get(&ev, "url.path"), Some("/p"));
        assert_eq!(get(&ev, "url.query"), Some("q=1"));
    }

    #[test]
    fn junk_requests_and_truncation() {
        let (c, ev) = run(
            r#"198.51.100.7 - - [10/Oct/2023:13:55:36 +0000] "\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03" 400 157 "-" "-""#,
        );
        assert_eq!(c, Claim::Full);
        assert!(ev.fields.get("http.request.method").is_none());
        assert_eq!(
            ev.fields.get("http.response.status_code"),
            Some(&Value::Int(400))
        );
        let (c, ev) = run(r#"198.51.100.7 - - [10/Oct/2023:13:55:36 +0000] "GET /very/long/pa"#);
        assert_eq!(c, Claim::Partial);
        assert_eq!(get(&ev, "source.ip"), Some("198.51.100.7"));
        let (c, _) = run(r#"198.51.100.7 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 2"#);
        assert_eq!(c, Claim::Partial);
        for not_web in [
            "hello world",
            "a b c d e [10/Oct/2023:13:55:36 +0000] \"GET / HTTP/1.1\" 200 1",
            "198.51.100.7 - - [yesterday] \"GET / HTTP/1.1\" 200 1",
            "198.51.100.7 - - [10/Oct/2023:13:55:36 +0000",
            "",
        ] {
            assert_eq!(run(not_web).0, Claim::No, "{not_web}");
        }
    }
}
