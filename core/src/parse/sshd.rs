//! OpenSSH server messages (`sshd`, `sshd-session`, `sshd-auth`).
//!
//! Messages are matched by their fixed prefix and read from the right where
//! a user name (which attackers fill with spaces and anything else) sits
//! before a fixed tail such as ` from <ip> port <port> ssh2`.
//!
//! | message | event.action | category / type | outcome |
//! |---|---|---|---|
//! | `Failed <method> for [invalid user] U from IP port P ssh2` | `ssh_login` | authentication / start | failure |
//! | `Accepted <method> for U from IP port P ssh2[: KEY SHA256:…]` | `ssh_login` | authentication / start | success |
//! | `Postponed <method> for U from IP port P ssh2` | `ssh_login_postponed` | authentication / info | – |
//! | `Invalid user U from IP [port P]`, `input_userauth_request: invalid user U` | `invalid_user` | authentication / info | failure |
//! | `User U from IP not allowed because …` | `user_not_allowed` | authentication / info | failure |
//! | `error: maximum authentication attempts exceeded for [invalid user] U from IP port P ssh2` | `max_auth_attempts_exceeded` | authentication / info | failure |
//! | `Disconnecting[: | invalid user U IP port P: ]Too many authentication failures [for U]` | `too_many_auth_failures` | authentication / info | failure |
//! | `PAM service(sshd) ignoring max retries; 6 > 3` | `pam_max_retries` | authentication / info | failure |
//! | `Received disconnect from IP[ port P]:CODE: REASON` | `disconnect` | network / end | – |
//! | `Disconnected from [invalid\|authenticating] [user U] IP port P` | `disconnect` | network / end | – |
//! | `Connection closed by [invalid\|authenticating user U] IP [port P]` | `connection_closed` | network / end | – |
//! | `Connection reset by … IP [port P]` | `connection_reset` | network / end | – |
//! | `Connection from IP port P on IP port P` | `connection` | network / start | – |
//! | `Timeout before authentication for IP port P` | `auth_timeout` | network / end | failure |
//! | `Did not receive identification string from IP` | `no_identification` | network / info | failure |
//! | `Bad protocol version identification '…' from IP` / `banner exchange: Connection from IP port P: …` | `bad_protocol` | network / info | failure |
//! | `Unable to negotiate with IP port P: …` | `negotiation_failed` | network / info | failure |
//! | `reverse mapping checking getaddrinfo for H [IP] failed - POSSIBLE BREAK-IN ATTEMPT!` | `reverse_mapping_failed` | network / info | – |
//! | `Address IP maps to H, but this does not map back … POSSIBLE BREAK-IN ATTEMPT!` | `reverse_mapping_failed` | network / info | – |
//! | `Server listening on IP port P.` | `server_listening` | process / start | – |
//! | `Received signal N; terminating.` | `server_stopped` | process / end | – |
//!
//! `pam_*` lines inside sshd go to the [PAM parser](super::pam). Fields:
//! `source.ip` (or `source.domain`), `source.port`, `user.name`,
//! `event.reason` (disconnect reasons), and the Filebeat-compatible
//! `system.auth.ssh.method` (`password`, `publickey`, …),
//! `system.auth.ssh.signature` (`RSA SHA256:…`) and
//! `system.auth.ssh.invalid_user: true` when sshd said the user does not exist.

use crate::event::{Event, Value};

use super::ecs::{self, categorize, outcome, set_address, set_port, Outcome, Side};
use super::text::{leading_number, rsplit_at_str, split_at_str, token};
use super::Claim;

/// Parses one sshd message (after the syslog header).
pub(crate) fn parse(msg: &str, ev: &mut Event) -> Claim {
    let mut m = msg.trim_end();
    for suffix in [" [preauth]", " [postauth]"] {
        if let Some(x) = m.strip_suffix(suffix) {
            m = x;
            break;
        }
    }
    for prefix in ["error: ", "fatal: "] {
        if let Some(x) = m.strip_prefix(prefix) {
            m = x;
            break;
        }
    }
    let Some(first) = m.as_bytes().first() else {
        return Claim::No;
    };
    match first {
        b'A' => {
            if let Some(rest) = m.strip_prefix("Accepted ") {
                return login(rest, ev, Some(Outcome::Success), "ssh_login");
            }
            if m.starts_with("Address ") && m.ends_with("POSSIBLE BREAK-IN ATTEMPT!") {
                return address_maps(&m["Address ".len()..], ev);
            }
        }
        b'B' => {
            if let Some(rest) = m.strip_prefix("Bad protocol version identification ") {
                return bad_protocol(rest, ev);
            }
        }
        b'C' => {
            if let Some(rest) = m.strip_prefix("Connection closed by ") {
                return closed(rest, ev, "connection_closed");
            }
            if let Some(rest) = m.strip_prefix("Connection reset by ") {
                return closed(rest, ev, "connection_reset");
            }
            if let Some(rest) = m.strip_prefix("Connection from ") {
                return connection_from(rest, ev);
            }
        }
        b'D' => {
            if let Some(rest) = m.strip_prefix("Disconnected from ") {
                return closed(rest, ev, "disconnect");
            }
            if let Some(rest) = m.strip_prefix("Did not receive identification string from ") {
                categorize(ev, "network", &["info"], "no_identification");
                outcome(ev, Outcome::Failure);
                return endpoint(rest, ev);
            }
            if m.starts_with("Disconnecting") && m.contains("Too many authentication failures") {
                return too_many_failures(m, ev);
            }
        }
        b'F' => {
            if let Some(rest) = m.strip_prefix("Failed ") {
                return login(rest, ev, Some(Outcome::Failure), "ssh_login");
            }
        }
        b'I' => {
            if let Some(rest) = m.strip_prefix("Invalid user ") {
                return invalid_user(rest, ev);
            }
        }
        b'P' => {
            if let Some(rest) = m.strip_prefix("Postponed ") {
                return login(rest, ev, None, "ssh_login_postponed");
            }
            if m.starts_with("PAM service(") && m.contains("ignoring max retries") {
                categorize(ev, "authentication", &["info"], "pam_max_retries");
                outcome(ev, Outcome::Failure);
                return Claim::Full;
            }
        }
        b'R' => {
            if let Some(rest) = m.strip_prefix("Received disconnect from ") {
                return received_disconnect(rest, ev);
            }
            if m.starts_with("Received signal ") && m.ends_with("terminating.") {
                categorize(ev, "process", &["end"], "server_stopped");
                return Claim::Full;
            }
        }
        b'S' if m.starts_with("Server listening on ") => {
            categorize(ev, "process", &["start"], "server_listening");
            return Claim::Full;
        }
        b'T' => {
            if let Some(rest) = m.strip_prefix("Timeout before authentication for ") {
                categorize(ev, "network", &["end"], "auth_timeout");
                outcome(ev, Outcome::Failure);
                return endpoint(rest, ev);
            }
        }
        b'U' => {
            if let Some(rest) = m.strip_prefix("Unable to negotiate with ") {
                categorize(ev, "network", &["info"], "negotiation_failed");
                outcome(ev, Outcome::Failure);
                return endpoint(rest, ev);
            }
            if let Some(rest) = m.strip_prefix("User ") {
                return user_not_allowed(rest, ev);
            }
        }
        b'b' => {
            if let Some(rest) = m.strip_prefix("banner exchange: Connection from ") {
                categorize(ev, "network", &["info"], "bad_protocol");
                outcome(ev, Outcome::Failure);
                return endpoint(rest, ev);
            }
        }
        b'i' => {
            if let Some(user) = m.strip_prefix("input_userauth_request: invalid user ") {
                categorize(ev, "authentication", &["info"], "invalid_user");
                outcome(ev, Outcome::Failure);
                ev.fields.insert("user.name", user);
                ev.fields
                    .insert("system.auth.ssh.invalid_user", Value::Bool(true));
                return Claim::Full;
            }
        }
        b'm' => {
            if let Some(rest) = m.strip_prefix("maximum authentication attempts exceeded for ") {
                categorize(
                    ev,
                    "authentication",
                    &["info"],
                    "max_auth_attempts_exceeded",
                );
                outcome(ev, Outcome::Failure);
                return user_from(rest, ev);
            }
        }
        b'r' => {
            if let Some(rest) = m.strip_prefix("reverse mapping checking getaddrinfo for ") {
                return reverse_mapping(rest, ev);
            }
        }
        _ => {}
    }
    Claim::No
}

/// `<method> for [invalid user ]U from IP port P ssh2[: KEY SHA256:…]`
fn login(rest: &str, ev: &mut Event, result: Option<Outcome>, action: &'static str) -> Claim {
    let Some((method, rest)) = split_at_str(rest, " for ") else {
        return Claim::No;
    };
    if method.is_empty() || method.contains(' ') {
        return Claim::No;
    }
    let types: &[&'static str] = if result.is_some() {
        &["start"]
    } else {
        &["info"]
    };
    categorize(ev, "authentication", types, action);
    if let Some(o) = result {
        outcome(ev, o);
    }
    ev.fields.insert("system.auth.ssh.method", method);
    user_from(rest, ev)
}

/// `[invalid user ]U from IP[ port P][ ssh2][: signature]` — the user name is
/// everything before the last ` from `.
fn user_from(rest: &str, ev: &mut Event) -> Claim {
    let Some((user, addr)) = rsplit_at_str(rest, " from ") else {
        set_user(rest, ev);
        return Claim::Partial;
    };
    set_user(user, ev);
    let claim = endpoint(addr, ev);
    if let Some((_, sig)) = split_at_str(addr, ": ") {
        if !sig.is_empty() {
            ev.fields.insert("system.auth.ssh.signature", sig);
        }
    }
    claim
}

fn set_user(user: &str, ev: &mut Event) {
    let user = match user.strip_prefix("invalid user ") {
        Some(u) => {
            ev.fields
                .insert("system.auth.ssh.invalid_user", Value::Bool(true));
            u
        }
        None => user,
    };
    ev.fields.insert("user.name", user);
}

/// `IP[ port P][anything]` → `source.ip`/`source.port`. The address may end
/// in `:` (old `Received disconnect from IP: 11: …` form).
fn endpoint(s: &str, ev: &mut Event) -> Claim {
    let (addr, rest) = token(s);
    let addr = addr.strip_suffix(':').unwrap_or(addr);
    let numeric = addr.bytes().all(|c| c.is_ascii_digit() || c == b'.');
    if !set_address(ev, Side::Source, addr) && addr.contains('.') && numeric {
        // Looked like an IPv4 address but was not one (cut short?).
        ev.fields.remove("source.domain");
        return Claim::Partial;
    }
    if let Some(p) = rest.strip_prefix("port ") {
        let digits = p.bytes().take_while(u8::is_ascii_digit).count();
        if !set_port(ev, Side::Source, &p[..digits]) {
            return Claim::Partial;
        }
    }
    Claim::Full
}

/// `U from IP[ port P]`
fn invalid_user(rest: &str, ev: &mut Event) -> Claim {
    categorize(ev, "authentication", &["info"], "invalid_user");
    outcome(ev, Outcome::Failure);
    ev.fields
        .insert("system.auth.ssh.invalid_user", Value::Bool(true));
    match rsplit_at_str(rest, " from ") {
        Some((user, addr)) => {
            ev.fields.insert("user.name", user);
            endpoint(addr, ev)
        }
        None => {
            ev.fields.insert("user.name", rest);
            Claim::Partial
        }
    }
}

/// `U from IP not allowed because …`
fn user_not_allowed(rest: &str, ev: &mut Event) -> Claim {
    let Some((head, reason)) = split_at_str(rest, " not allowed because ") else {
        return Claim::No;
    };
    categorize(ev, "authentication", &["info"], "user_not_allowed");
    outcome(ev, Outcome::Failure);
    ev.fields.insert("event.reason", reason);
    match rsplit_at_str(head, " from ") {
        Some((user, addr)) => {
            ev.fields.insert("user.name", user);
            endpoint(addr, ev)
        }
        None => {
            ev.fields.insert("user.name", head);
            Claim::Full
        }
    }
}

/// `IP[ port P]:CODE: REASON` or (old) `IP: CODE: REASON`
fn received_disconnect(rest: &str, ev: &mut Event) -> Claim {
    categorize(ev, "network", &["end"], "disconnect");
    let claim = endpoint(rest, ev);
    // The reason follows "CODE: " after the address part.
    let after_addr = match split_at_str(rest, " port ") {
        Some((_, p)) => p.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => token(rest).1,
    };
    let after_colon = after_addr.trim_start_matches([':', ' ']);
    if let Some((code, tail)) = leading_number(after_colon) {
        ev.fields
            .insert("system.auth.ssh.disconnect_code", Value::from(code));
        let reason = tail.trim_start_matches([':', ' ']);
        if !reason.is_empty() {
            ev.fields.insert("event.reason", reason);
        }
    }
    claim
}

/// `[invalid user U |authenticating user U |user U ]IP[ port P]`
fn closed(rest: &str, ev: &mut Event, action: &'static str) -> Claim {
    categorize(ev, "network", &["end"], action);
    user_endpoint(rest, ev)
}

/// `[invalid user U |authenticating user U |user U ]IP[ port P]` → user and
/// source fields.
fn user_endpoint(rest: &str, ev: &mut Event) -> Claim {
    let mut s = rest;
    for (prefix, invalid) in [
        ("invalid user ", true),
        ("authenticating user ", false),
        ("user ", false),
    ] {
        if let Some(x) = s.strip_prefix(prefix) {
            // The address is the last word before " port " (or the last word).
            let cut = match rsplit_at_str(x, " port ") {
                Some((before, _)) => before.rfind(' '),
                None => x.rfind(' '),
            };
            let Some(cut) = cut else {
                return Claim::Partial;
            };
            ev.fields.insert("user.name", &x[..cut]);
            if invalid {
                ev.fields
                    .insert("system.auth.ssh.invalid_user", Value::Bool(true));
            }
            s = &x[cut + 1..];
            break;
        }
    }
    endpoint(s, ev)
}

/// `IP port P on IP port P[ rdomain "…"]`
fn connection_from(rest: &str, ev: &mut Event) -> Claim {
    categorize(ev, "network", &["start"], "connection");
    let Some((src, dst)) = split_at_str(rest, " on ") else {
        return endpoint(rest, ev);
    };
    let claim = endpoint(src, ev);
    let (addr, tail) = token(dst);
    ecs::set_ip(ev, Side::Destination, addr);
    if let Some(p) = tail.strip_prefix("port ") {
        set_port(ev, Side::Destination, token(p).0);
    }
    claim
}

/// `'<text>' from IP port P`
fn bad_protocol(rest: &str, ev: &mut Event) -> Claim {
    categorize(ev, "network", &["info"], "bad_protocol");
    outcome(ev, Outcome::Failure);
    match rsplit_at_str(rest, " from ") {
        Some((_, addr)) => endpoint(addr, ev),
        None => Claim::Partial,
    }
}

/// `HOST [IP] failed - POSSIBLE BREAK-IN ATTEMPT!`
fn reverse_mapping(rest: &str, ev: &mut Event) -> Claim {
    categorize(ev, "network", &["info"], "reverse_mapping_failed");
    let (host, tail) = token(rest);
    if !host.is_empty() {
        ev.fields.insert("source.domain", host);
    }
    let ip = tail
        .strip_prefix('[')
        .and_then(|t| t.split_once(']'))
        .map(|(ip, _)| ip);
    match ip {
        Some(ip) if ecs::set_ip(ev, Side::Source, ip) => Claim::Full,
        _ => Claim::Partial,
    }
}

/// `IP maps to HOST, but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!`
fn address_maps(rest: &str, ev: &mut Event) -> Claim {
    categorize(ev, "network", &["info"], "reverse_mapping_failed");
    let (ip, tail) = token(rest);
    let ok = ecs::set_ip(ev, Side::Source, ip);
    if let Some(host) = tail
        .strip_prefix("maps to ")
        .and_then(|t| t.split_once(','))
        .map(|(h, _)| h)
    {
        ev.fields.insert("source.domain", host);
    }
    if ok {
        Claim::Full
    } else {
        Claim::Partial
    }
}

/// `Disconnecting: Too many authentication failures for U`,
/// `Disconnecting invalid user U IP port P: Too many authentication failures`,
/// `Disconnecting authenticating user U IP port P: Too many …`
fn too_many_failures(m: &str, ev: &mut Event) -> Claim {
    categorize(ev, "authentication", &["info"], "too_many_auth_failures");
    outcome(ev, Outcome::Failure);
    if let Some((_, user)) = split_at_str(m, "Too many authentication failures for ") {
        ev.fields.insert("user.name", user);
        return Claim::Full;
    }
    match m
        .strip_prefix("Disconnecting ")
        .and_then(|x| split_at_str(x, ": "))
    {
        Some((who, _)) => user_endpoint(who, ev),
        None => Claim::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn run(msg: &str) -> (Claim, Event) {
        let mut ev = Event::new(String::new(), Utc::now());
        let claim = parse(msg, &mut ev);
        (claim, ev)
    }

    fn s<'a>(ev: &'a Event, name: &str) -> Option<&'a str> {
        ev.fields.get_str(name)
    }

    #[test]
    fn failed_and_accepted_logins() {
        let (c, ev) =
            run("Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2");
        assert_eq!(c, Claim::Full);
        assert_eq!(s(&ev, "event.action"), Some("ssh_login"));
        assert_eq!(s(&ev, "event.outcome"), Some("failure"));
        assert_eq!(s(&ev, "user.name"), Some("webmaster"));
        assert_eq!(s(&ev, "source.ip"), Some("173.234.31.186"));
        assert_eq!(ev.fields.get("source.port"), Some(&Value::Int(38926)));
        assert_eq!(s(&ev, "system.auth.ssh.method"), Some("password"));
        assert_eq!(
            ev.fields.get("system.auth.ssh.invalid_user"),
            Some(&Value::Bool(true))
        );

        let (c, ev) = run("Accepted publickey for alice from 2001:db8::7 port 50022 ssh2: ED25519 SHA256:abcDEF123");
        assert_eq!(c, Claim::Full);
        assert_eq!(s(&ev, "event.outcome"), Some("success"));
        assert_eq!(s(&ev, "source.ip"), Some("2001:db8::7"));
        assert_eq!(
            s(&ev, "system.auth.ssh.signature"),
            Some("ED25519 SHA256:abcDEF123")
        );
        assert_eq!(s(&ev, "system.auth.ssh.method"), Some("publickey"));
        assert!(ev.fields.get("system.auth.ssh.invalid_user").is_none());

        // Attackers put spaces (and " from ") into user names: read from the right.
        let (_, ev) =
            run("Failed password for invalid user  0101 from 5.188.10.180 port 36279 ssh2");
        assert_eq!(s(&ev, "user.name"), Some(" 0101"));
        let (_, ev) = run("Failed none for invalid user a from b from 10.0.0.1 port 1 ssh2");
        assert_eq!(s(&ev, "user.name"), Some("a from b"));
        assert_eq!(s(&ev, "source.ip"), Some("10.0.0.1"));
    }

    #[test]
    fn invalid_users_and_limits() {
        let (c, ev) = run("Invalid user webmaster from 173.234.31.186");
        assert_eq!(c, Claim::Full);
        assert_eq!(s(&ev, "event.action"), Some("invalid_user"));
        assert_eq!(s(&ev, "user.name"), Some("webmaster"));
        assert_eq!(s(&ev, "source.ip"), Some("173.234.31.186"));
        let (_, ev) = run("Invalid user admin from 10.0.0.2 port 4242");
        assert_eq!(ev.fields.get("source.port"), Some(&Value::Int(4242)));
        let (c, ev) = run("input_userauth_request: invalid user webmaster [preauth]");
        assert_eq!(c, Claim::Full);
        assert_eq!(s(&ev, "user.name"), Some("webmaster"));
        let (c, ev) = run("error: maximum authentication attempts exceeded for invalid user oracle from 10.1.1.1 port 5522 ssh2 [preauth]");
        assert_eq!(c, Claim::Full);
        assert_eq!(s(&ev, "event.action"), Some("max_auth_attempts_exceeded"));
        assert_eq!(s(&ev, "user.name"), Some("oracle"));
        assert_eq!(s(&ev, "source.ip"), Some("10.1.1.1"));
        let (_, ev) = run("Disconnecting: Too many authentication failures for root [preauth]");
        assert_eq!(s(&ev, "event.action"), Some("too_many_auth_failures"));
        assert_eq!(s(&ev, "user.name"), Some("root"));
        let (_, ev) = run("Disconnecting invalid user test 10.2.2.2 port 40000: Too many authentication failures [preauth]");
        assert_eq!(s(&ev, "user.name"), Some("test"));
        assert_eq!(s(&ev, "source.ip"), Some("10.2.2.2"));
        let (_, ev) = run("User root from 10.9.9.9 not allowed because not listed in AllowUsers");
        assert_eq!(s(&ev, "event.action"), Some("user_not_allowed"));
        assert_eq!(s(&ev, "source.ip"), Some("10.9.9.9"));
        assert_eq!(s(&ev, "event.reason"), Some("not listed in AllowUsers"));
    }

    #[test]
    fn disconnects_and_connections() {
        let (c, ev) = run("Received disconnect from 139.59.209.18: 11: Bye Bye [preauth]");
        assert_eq!(c, Claim::Full);
        assert_eq!(s(&ev, "event.action"), Some("disconnect"));
        assert_eq!(s(&ev, "source.ip"), Some("139.59.209.18"));
        assert_eq!(s(&ev, "event.reason"), Some("Bye Bye"));
        assert_eq!(
            ev.fields.get("system.auth.ssh.disconnect_code"),
            Some(&Value::Int(11))
        );
        let (_, ev) = run("Received disconnect from 10.0.0.5 port 52000:11: disconnected by user");
        assert_eq!(ev.fields.get("source.port"), Some(&Value::Int(52000)));
        assert_eq!(s(&ev, "event.reason"), Some("disconnected by user"));
        let (_, ev) = run("error: Received disconnect from 103.99.0.122: 14: No more user authentication methods available. [preauth]");
        assert_eq!(s(&ev, "source.ip"), Some("103.99.0.122"));
        let (_, ev) = run("Connection closed by invalid user admin 10.0.0.9 port 33000 [preauth]");
        assert_eq!(s(&ev, "user.name"), Some("admin"));
        assert_eq!(s(&ev, "source.ip"), Some("10.0.0.9"));
        let (_, ev) = run("Connection closed by 10.0.0.9 [preauth]");
        assert_eq!(s(&ev, "event.action"), Some("connection_closed"));
        assert_eq!(s(&ev, "source.ip"), Some("10.0.0.9"));
        let (_, ev) =
            run("Disconnected from authenticating user root 10.3.3.3 port 2222 [preauth]");
        assert_eq!(s(&ev, "user.name"), Some("root"));
        assert_eq!(ev.fields.get("source.port"), Some(&Value::Int(2222)));
        let (_, ev) = run("Connection from 10.4.4.4 port 5555 on 10.0.0.1 port 22 rdomain \"\"");
        assert_eq!(s(&ev, "destination.ip"), Some("10.0.0.1"));
        assert_eq!(ev.fields.get("destination.port"), Some(&Value::Int(22)));
        let (_, ev) = run("Did not receive identification string from 10.5.5.5 port 1234");
        assert_eq!(s(&ev, "event.action"), Some("no_identification"));
        assert_eq!(s(&ev, "source.ip"), Some("10.5.5.5"));
        let (_, ev) = run(
            "Unable to negotiate with 10.6.6.6 port 4444: no matching key exchange method found.",
        );
        assert_eq!(s(&ev, "source.ip"), Some("10.6.6.6"));
    }

    #[test]
    fn break_in_attempts() {
        let (c, ev) = run("reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!");
        assert_eq!(c, Claim::Full);
        assert_eq!(s(&ev, "source.ip"), Some("173.234.31.186"));
        assert_eq!(s(&ev, "source.domain"), Some("ns.marryaldkfaczcz.com"));
        let (c, ev) = run("Address 10.7.7.7 maps to evil.example, but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!");
        assert_eq!(c, Claim::Full);
        assert_eq!(s(&ev, "source.ip"), Some("10.7.7.7"));
        assert_eq!(s(&ev, "source.domain"), Some("evil.example"));
    }

    #[test]
    fn truncated_and_unknown() {
        let (c, ev) = run("Failed password for root from 10.0.0");
        assert_eq!(c, Claim::Partial);
        assert_eq!(s(&ev, "user.name"), Some("root"));
        assert!(s(&ev, "source.ip").is_none());
        assert!(s(&ev, "source.domain").is_none());
        let (c, _) = run("Failed password for root");
        assert_eq!(c, Claim::Partial);
        let (c, _) = run("Failed");
        assert_eq!(c, Claim::No);
        let (c, _) = run("fatal: Write failed: Connection reset by peer [preauth]");
        assert_eq!(c, Claim::No);
        let (c, _) = run("");
        assert_eq!(c, Claim::No);
    }
}
