//! PAM messages, whichever program logs them (`sshd`, `sudo`, `su`,
//! `login`, `cron`, `passwd`, …): `pam_<module>(<service>:<type>): <text>`
//! and the `PAM <n> more authentication failures; …` summary.
//!
//! | text | event.action | category / type | outcome |
//! |---|---|---|---|
//! | `authentication failure; logname= uid= euid= tty= ruser= rhost= user=` | `authentication_failure` | authentication / info | failure |
//! | `PAM N more authentication failure(s); …` | `authentication_failure` | authentication / info | failure |
//! | `check pass; user unknown` | `user_unknown` | authentication / info | failure |
//! | `bad username [U]` | `user_unknown` | authentication / info | failure |
//! | `requirement "…" not met by user "U"` | `requirement_not_met` | authentication / info | failure |
//! | `Consecutive login failures for user U account temporarily locked`, `user U (N) tally N, deny N` | `account_locked` | authentication / info | failure |
//! | `session opened for user U[(uid=N)] by [B](uid=N)` | `session_opened` | session / start | success |
//! | `session closed for user U` | `session_closed` | session / end | – |
//! | `password changed for U` | `password_changed` | iam / user, change | success |
//! | anything else from a `pam_*` module | – (module fields only) | – | – |
//!
//! Fields: `user.name`, `user.id` (a session's uid), `source.ip` or
//! `source.domain` (from `rhost`), `pam.module`, `pam.service`, `pam.type`,
//! `pam.logname`, `pam.uid`, `pam.euid`, `pam.tty`, `pam.ruser`,
//! `pam.by_user` (who opened a session), `pam.more_failures`.

use crate::event::{Event, Value};

use super::ecs::{categorize, outcome, set_address, set_text, Outcome, Side};
use super::text::{leading_number, split_at_str, split_byte, words};
use super::Claim;

/// Whether a message is PAM's.
pub(crate) fn is_pam(msg: &str) -> bool {
    msg.starts_with("pam_") || msg.starts_with("PAM ")
}

pub(crate) fn parse(msg: &str, ev: &mut Event) -> Claim {
    let msg = msg.trim_end();
    if let Some(rest) = msg.strip_prefix("PAM ") {
        return summary(rest, ev);
    }
    // pam_unix(sshd:auth): text
    let Some((head, text)) = split_at_str(msg, "): ") else {
        return Claim::No;
    };
    let Some((module, svc)) = head.split_once('(') else {
        return Claim::No;
    };
    if module.contains(' ') {
        return Claim::No;
    }
    ev.fields.insert("pam.module", module);
    match svc.split_once(':') {
        Some((service, kind)) => {
            set_text(ev, "pam.service", service);
            set_text(ev, "pam.type", kind);
        }
        None => set_text(ev, "pam.service", svc),
    }
    body(text, ev)
}

fn body(text: &str, ev: &mut Event) -> Claim {
    if let Some(rest) = text.strip_prefix("authentication failure") {
        categorize(ev, "authentication", &["info"], "authentication_failure");
        outcome(ev, Outcome::Failure);
        if let Some((_, kv)) = rest.split_once(';') {
            key_values(kv, ev);
        }
        return Claim::Full;
    }
    if let Some(rest) = text.strip_prefix("session opened for user ") {
        categorize(ev, "session", &["start"], "session_opened");
        outcome(ev, Outcome::Success);
        let (user, by) = match split_at_str(rest, " by ") {
            Some((u, b)) => (u, Some(b)),
            None => (rest, None),
        };
        set_user_with_uid(user, ev);
        if let Some(by) = by {
            let name = by.split('(').next().unwrap_or_default();
            set_text(ev, "pam.by_user", name);
        }
        return Claim::Full;
    }
    if let Some(user) = text.strip_prefix("session closed for user ") {
        categorize(ev, "session", &["end"], "session_closed");
        set_user_with_uid(user, ev);
        return Claim::Full;
    }
    if let Some(user) = text.strip_prefix("password changed for ") {
        categorize(ev, "iam", &["user", "change"], "password_changed");
        outcome(ev, Outcome::Success);
        ev.fields.insert("user.name", user);
        return Claim::Full;
    }
    if let Some(rest) = text.strip_prefix("check pass; user ") {
        categorize(ev, "authentication", &["info"], "user_unknown");
        outcome(ev, Outcome::Failure);
        if rest != "unknown" {
            ev.fields.insert("user.name", rest);
        }
        return Claim::Full;
    }
    if let Some(rest) = text.strip_prefix("bad username [") {
        categorize(ev, "authentication", &["info"], "user_unknown");
        outcome(ev, Outcome::Failure);
        ev.fields
            .insert("user.name", rest.strip_suffix(']').unwrap_or(rest));
        return Claim::Full;
    }
    if let Some(rest) = text.strip_prefix("requirement ") {
        if let Some((_, user)) = split_at_str(rest, " not met by user ") {
            categorize(ev, "authentication", &["info"], "requirement_not_met");
            outcome(ev, Outcome::Failure);
            ev.fields.insert("user.name", user.trim_matches('"'));
            return Claim::Full;
        }
    }
    if let Some(rest) = text.strip_prefix("Consecutive login failures for user ") {
        categorize(ev, "authentication", &["info"], "account_locked");
        outcome(ev, Outcome::Failure);
        let user = rest.split(' ').next().unwrap_or_default();
        set_text(ev, "user.name", user);
        return Claim::Full;
    }
    if let Some(rest) = text.strip_prefix("user ") {
        if rest.contains(" tally ") && rest.contains(", deny ") {
            categorize(ev, "authentication", &["info"], "account_locked");
            outcome(ev, Outcome::Failure);
            set_text(ev, "user.name", rest.split(' ').next().unwrap_or_default());
            return Claim::Full;
        }
    }
    // Another pam_* message: the module fields are all we can say.
    Claim::Full
}

/// `U` or `U(uid=N)`.
fn set_user_with_uid(user: &str, ev: &mut Event) {
    match user.split_once("(uid=") {
        Some((name, uid)) => {
            set_text(ev, "user.name", name);
            set_text(ev, "user.id", uid.trim_end_matches(')'));
        }
        None => set_text(ev, "user.name", user),
    }
}

/// `N more authentication failure(s); logname= uid= …`
fn summary(rest: &str, ev: &mut Event) -> Claim {
    let Some((n, tail)) = leading_number(rest) else {
        return Claim::No;
    };
    if !tail.starts_with(" more authentication failure") {
        return Claim::No;
    }
    categorize(ev, "authentication", &["info"], "authentication_failure");
    outcome(ev, Outcome::Failure);
    ev.fields.insert("pam.more_failures", Value::from(n));
    if let Some((_, kv)) = tail.split_once(';') {
        key_values(kv, ev);
    }
    Claim::Full
}

/// ` logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root` — values
/// never contain spaces; empty values are skipped.
fn key_values(kv: &str, ev: &mut Event) {
    for pair in words(kv) {
        let Some((k, v)) = split_byte(pair, b'=') else {
            continue;
        };
        if v.is_empty() {
            continue;
        }
        match k {
            "user" => {
                ev.fields.insert("user.name", v);
            }
            "rhost" => {
                set_address(ev, Side::Source, v);
            }
            "logname" => ev.fields.insert("pam.logname", v),
            "uid" => ev.fields.insert("pam.uid", v),
            "euid" => ev.fields.insert("pam.euid", v),
            "tty" => ev.fields.insert("pam.tty", v),
            "ruser" => ev.fields.insert("pam.ruser", v),
            _ => {}
        }
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
    fn authentication_failures() {
        let (c, ev) = run("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=112.95.230.3  user=root");
        assert_eq!(c, Claim::Full);
        assert_eq!(
            ev.fields.get_str("event.action"),
            Some("authentication_failure")
        );
        assert_eq!(ev.fields.get_str("event.outcome"), Some("failure"));
        assert_eq!(ev.fields.get_str("user.name"), Some("root"));
        assert_eq!(ev.fields.get_str("source.ip"), Some("112.95.230.3"));
        assert_eq!(ev.fields.get_str("pam.module"), Some("pam_unix"));
        assert_eq!(ev.fields.get_str("pam.service"), Some("sshd"));
        assert_eq!(ev.fields.get_str("pam.type"), Some("auth"));
        assert_eq!(ev.fields.get_str("pam.tty"), Some("ssh"));
        assert!(ev.fields.get("pam.ruser").is_none());

        let (_, ev) = run("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=ec2-52-80-34-196.cn-north-1.compute.amazonaws.com.cn ");
        assert_eq!(
            ev.fields.get_str("source.domain"),
            Some("ec2-52-80-34-196.cn-north-1.compute.amazonaws.com.cn")
        );
        assert!(ev.fields.get("user.name").is_none());

        let (c, ev) = run("PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=10.0.0.1  user=root");
        assert_eq!(c, Claim::Full);
        assert_eq!(ev.fields.get("pam.more_failures"), Some(&Value::Int(2)));
        assert_eq!(ev.fields.get_str("source.ip"), Some("10.0.0.1"));
        let (c, _) = run("PAM service(sshd) ignoring max retries; 6 > 3");
        assert_eq!(c, Claim::No, "left to the sshd parser");
    }

    #[test]
    fn sessions_and_passwords() {
        let (_, ev) = run("pam_unix(sshd:session): session opened for user fztu by (uid=0)");
        assert_eq!(ev.fields.get_str("event.action"), Some("session_opened"));
        assert_eq!(ev.fields.get_str("user.name"), Some("fztu"));
        assert!(ev.fields.get("pam.by_user").is_none());
        let (_, ev) =
            run("pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)");
        assert_eq!(ev.fields.get_str("user.name"), Some("root"));
        assert_eq!(ev.fields.get_str("user.id"), Some("0"));
        assert_eq!(ev.fields.get_str("pam.by_user"), Some("alice"));
        let (_, ev) = run("pam_unix(sshd:session): session closed for user fztu");
        assert_eq!(ev.fields.get_str("event.action"), Some("session_closed"));
        assert_eq!(ev.fields.get_str("user.name"), Some("fztu"));
        let (_, ev) = run("pam_unix(passwd:chauthtok): password changed for bob");
        assert_eq!(ev.fields.get_str("event.action"), Some("password_changed"));
        assert_eq!(ev.fields.get_str("user.name"), Some("bob"));
        let (_, ev) = run("pam_unix(sshd:auth): check pass; user unknown");
        assert_eq!(ev.fields.get_str("event.action"), Some("user_unknown"));
        assert!(ev.fields.get("user.name").is_none());
        let (_, ev) = run("pam_faillock(sshd:auth): Consecutive login failures for user root account temporarily locked");
        assert_eq!(ev.fields.get_str("event.action"), Some("account_locked"));
        assert_eq!(ev.fields.get_str("user.name"), Some("root"));
        let (_, ev) =
            run(r#"pam_succeed_if(sshd:auth): requirement "uid >= 1000" not met by user "root""#);
        assert_eq!(ev.fields.get_str("user.name"), Some("root"));
    }

    #[test]
    fn other_and_malformed() {
        let (c, ev) =
            run("pam_systemd(sshd:session): Failed to release session: Interrupted system call");
        assert_eq!(c, Claim::Full);
        assert_eq!(ev.fields.get_str("pam.module"), Some("pam_systemd"));
        assert!(ev.fields.get("event.action").is_none());
        for bad in ["pam_unix", "pam_unix(", "pam_unix(sshd:auth)", "PAM x", ""] {
            assert_eq!(run(bad).0, Claim::No, "{bad:?}");
        }
    }
}
