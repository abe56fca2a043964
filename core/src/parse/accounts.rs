//! Account management tools from shadow-utils: `useradd`, `usermod`,
//! `userdel`, `groupadd`, `groupmod`, `groupdel`, `gpasswd`, `passwd`,
//! `chpasswd`, `chage`, `newusers`, `adduser`. All land in `event.category:
//! iam` because they change who may log in — the events a SOC must never miss
//! (a new UID 0 user, someone added to `sudo`).
//!
//! | message (examples) | event.action | event.type |
//! |---|---|---|
//! | `new user: name=bob, UID=1001, GID=1001, home=/home/bob, shell=/bin/bash, from=/dev/pts/0` | `user_created` | user, creation |
//! | `new group: name=bob, GID=1001`, `group added to /etc/group: name=devs, GID=1002` | `group_created` | group, creation |
//! | `add 'bob' to group 'sudo'`, `add 'bob' to shadow group 'sudo'`, `user bob added by root to group sudo` | `user_added_to_group` | group, change |
//! | `delete 'bob' from group 'sudo'`, `user bob removed by root from group sudo` | `user_removed_from_group` | group, change |
//! | `delete user 'bob'` | `user_deleted` | user, deletion |
//! | `removed group 'bob' owned by 'bob'`, `group 'devs' removed` | `group_deleted` | group, deletion |
//! | `change user 'bob' password`, `password for 'bob' changed by 'root'`, `changed password expiry for bob` | `password_changed` | user, change |
//! | `change user name 'old' to 'new'` | `user_renamed` | user, change |
//! | `lock user 'bob' password` / `unlock user 'bob' password` | `user_locked` / `user_unlocked` | user, change |
//! | `change user 'bob' shell from '/bin/sh' to '/bin/bash'`, `change user 'bob' UID from …`, other `change user 'U' …` | `user_changed` | user, change |
//!
//! Fields: `user.name`, `user.id`, `user.group.id`, `group.name`, `group.id`,
//! `user.changes.name` (new name on rename), `system.auth.useradd.home`,
//! `system.auth.useradd.shell`, `event.outcome: success` (these tools log
//! only what they did).

use crate::event::Event;

use super::ecs::{categorize, outcome, set_text, Outcome};
use super::text::split_at_str;
use super::Claim;

/// Program names this parser handles.
pub(crate) fn is_account_tool(program: &str) -> bool {
    matches!(
        program,
        "useradd"
            | "usermod"
            | "userdel"
            | "groupadd"
            | "groupmod"
            | "groupdel"
            | "gpasswd"
            | "passwd"
            | "chpasswd"
            | "chage"
            | "newusers"
            | "adduser"
            | "deluser"
            | "addgroup"
            | "delgroup"
    )
}

pub(crate) fn parse(msg: &str, ev: &mut Event) -> Claim {
    let m = msg.trim();
    let claim = classify(m, ev);
    if claim != Claim::No {
        outcome(ev, Outcome::Success);
    }
    claim
}

fn classify(m: &str, ev: &mut Event) -> Claim {
    if let Some(rest) = m.strip_prefix("new user: ") {
        categorize(ev, "iam", &["user", "creation"], "user_created");
        for (k, v) in comma_pairs(rest) {
            match k {
                "name" => set_text(ev, "user.name", v),
                "UID" => set_text(ev, "user.id", v),
                "GID" => set_text(ev, "user.group.id", v),
                "home" => set_text(ev, "system.auth.useradd.home", v),
                "shell" => set_text(ev, "system.auth.useradd.shell", v),
                _ => {}
            }
        }
        return Claim::Full;
    }
    if let Some(rest) = m.strip_prefix("new group: ").or_else(|| {
        split_at_str(m, "group added to ").and_then(|(_, r)| r.split_once(": ").map(|(_, r)| r))
    }) {
        categorize(ev, "iam", &["group", "creation"], "group_created");
        for (k, v) in comma_pairs(rest) {
            match k {
                "name" => set_text(ev, "group.name", v),
                "GID" => set_text(ev, "group.id", v),
                _ => {}
            }
        }
        return Claim::Full;
    }
    if let Some(rest) = m.strip_prefix("add ") {
        // add 'bob' to [shadow ]group 'sudo'
        let mut q = quoted_words(rest);
        if let (Some(user), Some(group)) = (q.next(), q.next()) {
            categorize(ev, "iam", &["group", "change"], "user_added_to_group");
            ev.fields.insert("user.name", user);
            ev.fields.insert("group.name", group);
            return Claim::Full;
        }
    }
    if let Some(rest) = m.strip_prefix("delete user ") {
        categorize(ev, "iam", &["user", "deletion"], "user_deleted");
        set_text(ev, "user.name", rest.trim_matches('\''));
        return Claim::Full;
    }
    if let Some(rest) = m.strip_prefix("delete ") {
        // delete 'bob' from [shadow ]group 'sudo'
        let mut q = quoted_words(rest);
        if let (Some(user), Some(group)) = (q.next(), q.next()) {
            categorize(ev, "iam", &["group", "change"], "user_removed_from_group");
            ev.fields.insert("user.name", user);
            ev.fields.insert("group.name", group);
            return Claim::Full;
        }
    }
    if m.starts_with("removed group ")
        || m.starts_with("removed shadow group ")
        || (m.starts_with("group '") && m.contains("' removed"))
    {
        categorize(ev, "iam", &["group", "deletion"], "group_deleted");
        if let Some(group) = quoted_words(m).next() {
            ev.fields.insert("group.name", group);
        }
        return Claim::Full;
    }
    if let Some(rest) = m.strip_prefix("user ") {
        // gpasswd: user bob added by root to group sudo / removed by root from group sudo
        let mut w = rest.split(' ');
        if let (Some(user), Some(verb), Some("by"), Some(_), Some(_), Some("group"), Some(group)) = (
            w.next(),
            w.next(),
            w.next(),
            w.next(),
            w.next(),
            w.next(),
            w.next(),
        ) {
            let action = match verb {
                "added" => "user_added_to_group",
                "removed" => "user_removed_from_group",
                _ => return Claim::No,
            };
            categorize(ev, "iam", &["group", "change"], action);
            ev.fields.insert("user.name", user);
            ev.fields.insert("group.name", group);
            return Claim::Full;
        }
    }
    if let Some(rest) = m.strip_prefix("change user name ") {
        let mut q = quoted_words(rest);
        if let (Some(old), Some(new)) = (q.next(), q.next()) {
            categorize(ev, "iam", &["user", "change"], "user_renamed");
            ev.fields.insert("user.name", old);
            ev.fields.insert("user.changes.name", new);
            return Claim::Full;
        }
    }
    for (prefix, action) in [
        ("lock user ", "user_locked"),
        ("unlock user ", "user_unlocked"),
    ] {
        if let Some(rest) = m.strip_prefix(prefix) {
            if let Some(user) = quoted_words(rest).next() {
                categorize(ev, "iam", &["user", "change"], action);
                ev.fields.insert("user.name", user);
                return Claim::Full;
            }
        }
    }
    if let Some(rest) = m.strip_prefix("change user ") {
        if let Some(user) = quoted_words(rest).next() {
            let action = if rest.trim_end().ends_with(" password") {
                "password_changed"
            } else {
                "user_changed"
            };
            categorize(ev, "iam", &["user", "change"], action);
            ev.fields.insert("user.name", user);
            return Claim::Full;
        }
    }
    if let Some(rest) = m.strip_prefix("password for ") {
        // passwd: password for 'bob' changed by 'root'
        if let Some(user) = quoted_words(rest).next() {
            categorize(ev, "iam", &["user", "change"], "password_changed");
            ev.fields.insert("user.name", user);
            return Claim::Full;
        }
    }
    if let Some(user) = m.strip_prefix("changed password expiry for ") {
        categorize(ev, "iam", &["user", "change"], "password_changed");
        set_text(ev, "user.name", user);
        return Claim::Full;
    }
    Claim::No
}

/// `k=v, k=v, …`
fn comma_pairs(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split(", ")
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
}

/// The contents of successive `'…'` quotes.
fn quoted_words(s: &str) -> impl Iterator<Item = &str> {
    s.split('\'').skip(1).step_by(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Value;
    use chrono::Utc;

    fn run(msg: &str) -> (Claim, Event) {
        let mut ev = Event::new(String::new(), Utc::now());
        (parse(msg, &mut ev), ev)
    }

    fn get<'a>(ev: &'a Event, k: &str) -> Option<&'a str> {
        ev.fields.get_str(k)
    }

    #[test]
    fn user_and_group_creation() {
        let (c, ev) =
            run("new user: name=bob, UID=0, GID=0, home=/root2, shell=/bin/bash, from=/dev/pts/0");
        assert_eq!(c, Claim::Full);
        assert_eq!(get(&ev, "event.action"), Some("user_created"));
        assert_eq!(get(&ev, "user.name"), Some("bob"));
        assert_eq!(get(&ev, "user.id"), Some("0"));
        assert_eq!(get(&ev, "system.auth.useradd.shell"), Some("/bin/bash"));
        assert_eq!(get(&ev, "event.outcome"), Some("success"));
        assert_eq!(
            ev.fields.get("event.type"),
            Some(&Value::List(vec![
                Value::from("user"),
                Value::from("creation")
            ]))
        );
        let (_, ev) = run("new group: name=bob, GID=1001");
        assert_eq!(get(&ev, "event.action"), Some("group_created"));
        assert_eq!(get(&ev, "group.name"), Some("bob"));
        assert_eq!(get(&ev, "group.id"), Some("1001"));
        let (_, ev) = run("group added to /etc/group: name=devs, GID=1002");
        assert_eq!(get(&ev, "group.name"), Some("devs"));
    }

    #[test]
    fn memberships_and_changes() {
        let (_, ev) = run("add 'bob' to group 'sudo'");
        assert_eq!(get(&ev, "event.action"), Some("user_added_to_group"));
        assert_eq!(
            (get(&ev, "user.name"), get(&ev, "group.name")),
            (Some("bob"), Some("sudo"))
        );
        let (_, ev) = run("add 'bob' to shadow group 'sudo'");
        assert_eq!(get(&ev, "group.name"), Some("sudo"));
        let (_, ev) = run("user bob added by root to group wheel");
        assert_eq!(get(&ev, "group.name"), Some("wheel"));
        let (_, ev) = run("delete 'bob' from group 'sudo'");
        assert_eq!(get(&ev, "event.action"), Some("user_removed_from_group"));
        let (_, ev) = run("delete user 'bob'");
        assert_eq!(get(&ev, "event.action"), Some("user_deleted"));
        assert_eq!(get(&ev, "user.name"), Some("bob"));
        let (_, ev) = run("removed group 'bob' owned by 'bob'");
        assert_eq!(get(&ev, "event.action"), Some("group_deleted"));
        assert_eq!(get(&ev, "group.name"), Some("bob"));
        let (_, ev) = run("change user 'bob' password");
        assert_eq!(get(&ev, "event.action"), Some("password_changed"));
        let (_, ev) = run("change user 'bob' shell from '/bin/sh' to '/bin/bash'");
        assert_eq!(get(&ev, "event.action"), Some("user_changed"));
        let (_, ev) = run("change user name 'bob' to 'robert'");
        assert_eq!(get(&ev, "user.changes.name"), Some("robert"));
        let (_, ev) = run("password for 'bob' changed by 'root'");
        assert_eq!(get(&ev, "event.action"), Some("password_changed"));
        assert_eq!(get(&ev, "user.name"), Some("bob"));
        let (_, ev) = run("lock user 'bob' password");
        assert_eq!(get(&ev, "event.action"), Some("user_locked"));
    }

    #[test]
    fn unknown_lines_are_not_claimed() {
        for m in ["add", "add 'bob'", "delete", "user x", "something else", ""] {
            assert_eq!(run(m).0, Claim::No, "{m:?}");
        }
    }
}
