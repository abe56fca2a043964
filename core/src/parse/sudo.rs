//! sudo's own log lines (PAM lines from sudo go to the [PAM parser](super::pam)):
//!
//! ```text
//! alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt update
//! alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash
//! mallory : user NOT in sudoers ; TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=/bin/sh
//! ```
//!
//! | reason before the fields | event.action | category / type | outcome |
//! |---|---|---|---|
//! | none | `sudo_command` | process / start | success |
//! | `N incorrect password attempt(s)` | `sudo_incorrect_password` | authentication / info | failure |
//! | `user NOT in sudoers` | `sudo_not_in_sudoers` | authentication / info | failure |
//! | anything else (`command not allowed`, `a password is required`, …) | `sudo_denied` | authentication / info | failure |
//!
//! Fields: `user.name` (who ran sudo), `user.effective.name` (`USER=`),
//! `user.effective.group.name` (`GROUP=`), `process.command_line`
//! (`COMMAND=`), `process.executable` (its first word),
//! `process.working_directory` (`PWD=`), `event.reason`,
//! `system.auth.sudo.tty`, `system.auth.sudo.attempts`.

use crate::event::{Event, Value};

use super::ecs::{categorize, outcome, set_text, Outcome};
use super::text::{leading_number, split_at_str};
use super::Claim;

pub(crate) fn parse(msg: &str, ev: &mut Event) -> Claim {
    let m = msg.trim();
    let Some((user, rest)) = split_at_str(m, " : ") else {
        return Claim::No;
    };
    if user.is_empty() || user.contains(' ') {
        return Claim::No;
    }
    // COMMAND= comes last and may itself contain " ; ".
    let (fields, command) = match split_at_str(rest, "COMMAND=") {
        Some((f, c)) => (f, Some(c)),
        None => (rest, None),
    };
    let mut reason = None;
    let mut saw_field = command.is_some();
    for part in fields.split(" ; ") {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        match part.split_once('=') {
            Some((k, v)) if k.bytes().all(|c| c.is_ascii_uppercase()) && !k.is_empty() => {
                saw_field = true;
                match k {
                    "TTY" => set_text(ev, "system.auth.sudo.tty", v),
                    "PWD" => set_text(ev, "process.working_directory", v),
                    "USER" => set_text(ev, "user.effective.name", v),
                    "GROUP" => set_text(ev, "user.effective.group.name", v),
                    _ => {}
                }
            }
            _ if reason.is_none() => reason = Some(part),
            _ => {}
        }
    }
    if !saw_field {
        return Claim::No;
    }
    ev.fields.insert("user.name", user);
    if let Some(cmd) = command {
        let cmd = cmd.trim_end();
        set_text(ev, "process.command_line", cmd);
        let exe = cmd.split(' ').next().unwrap_or_default();
        set_text(ev, "process.executable", exe);
    }
    match reason {
        None => {
            categorize(ev, "process", &["start"], "sudo_command");
            outcome(ev, Outcome::Success);
        }
        Some(r) => {
            let action = if r.contains("incorrect password attempt") {
                if let Some((n, _)) = leading_number(r) {
                    ev.fields
                        .insert("system.auth.sudo.attempts", Value::from(n));
                }
                "sudo_incorrect_password"
            } else if r.contains("NOT in sudoers") {
                "sudo_not_in_sudoers"
            } else {
                "sudo_denied"
            };
            categorize(ev, "authentication", &["info"], action);
            outcome(ev, Outcome::Failure);
            ev.fields.insert("event.reason", r);
        }
    }
    Claim::Full
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
    fn command_runs() {
        let (c, ev) = run("   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt update ; echo x");
        assert_eq!(c, Claim::Full);
        let f = &ev.fields;
        assert_eq!(f.get_str("user.name"), Some("alice"));
        assert_eq!(f.get_str("user.effective.name"), Some("root"));
        assert_eq!(
            f.get_str("process.command_line"),
            Some("/usr/bin/apt update ; echo x")
        );
        assert_eq!(f.get_str("process.executable"), Some("/usr/bin/apt"));
        assert_eq!(f.get_str("process.working_directory"), Some("/home/alice"));
        assert_eq!(f.get_str("system.auth.sudo.tty"), Some("pts/0"));
        assert_eq!(f.get_str("event.action"), Some("sudo_command"));
        assert_eq!(f.get_str("event.outcome"), Some("success"));
        // CVE-2019-14287 style target user.
        let (_, ev) = run("bob : TTY=pts/1 ; PWD=/ ; USER=#-1 ; COMMAND=/bin/id");
        assert_eq!(ev.fields.get_str("user.effective.name"), Some("#-1"));
    }

    #[test]
    fn failures() {
        let (_, ev) = run("alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash");
        assert_eq!(
            ev.fields.get_str("event.action"),
            Some("sudo_incorrect_password")
        );
        assert_eq!(ev.fields.get_str("event.outcome"), Some("failure"));
        assert_eq!(
            ev.fields.get("system.auth.sudo.attempts"),
            Some(&Value::Int(3))
        );
        let (_, ev) = run(
            "mallory : user NOT in sudoers ; TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=/bin/sh",
        );
        assert_eq!(
            ev.fields.get_str("event.action"),
            Some("sudo_not_in_sudoers")
        );
        assert_eq!(ev.fields.get_str("user.name"), Some("mallory"));
        assert_eq!(
            ev.fields.get_str("event.reason"),
            Some("user NOT in sudoers")
        );
        let (_, ev) = run(
            "eve : command not allowed ; TTY=pts/2 ; PWD=/ ; USER=root ; COMMAND=/bin/rm -rf /",
        );
        assert_eq!(ev.fields.get_str("event.action"), Some("sudo_denied"));
    }

    #[test]
    fn not_sudo_lines() {
        for m in [
            "unable to resolve host web1: Name or service not known",
            "alice : nothing here",
            "",
            " : TTY=x",
        ] {
            assert_eq!(run(m).0, Claim::No, "{m:?}");
        }
        // Cut short before COMMAND: still the fields it has.
        let (c, ev) = run("alice : TTY=pts/0 ; PWD=/ho");
        assert_eq!(c, Claim::Full);
        assert_eq!(ev.fields.get_str("process.working_directory"), Some("/ho"));
    }
}
