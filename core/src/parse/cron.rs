//! cron's job lines: `(root) CMD (/usr/local/bin/backup.sh)` →
//! `user.name`, `process.command_line`, `event.action: cron_command`
//! (category process / start). cron's PAM lines go to the
//! [PAM parser](super::pam).

use crate::event::Event;

use super::ecs::{categorize, set_text};
use super::Claim;

pub(crate) fn is_cron(program: &str) -> bool {
    matches!(program, "cron" | "CRON" | "crond" | "anacron")
}

pub(crate) fn parse(msg: &str, ev: &mut Event) -> Claim {
    let Some(rest) = msg.trim().strip_prefix('(') else {
        return Claim::No;
    };
    let Some((user, rest)) = rest.split_once(") CMD (") else {
        return Claim::No;
    };
    categorize(ev, "process", &["start"], "cron_command");
    set_text(ev, "user.name", user);
    let cmd = rest.strip_suffix(')').unwrap_or(rest);
    set_text(ev, "process.command_line", cmd);
    if rest.ends_with(')') {
        Claim::Full
    } else {
        Claim::Partial
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn cron_commands() {
        let mut ev = Event::new(String::new(), Utc::now());
        assert_eq!(
            parse(
                "(root) CMD (cd / && run-parts --report /etc/cron.hourly)",
                &mut ev
            ),
            Claim::Full
        );
        assert_eq!(ev.fields.get_str("user.name"), Some("root"));
        assert_eq!(
            ev.fields.get_str("process.command_line"),
            Some("cd / && run-parts --report /etc/cron.hourly")
        );
        let mut ev = Event::new(String::new(), Utc::now());
        assert_eq!(parse("(root) CMD (cut sho", &mut ev), Claim::Partial);
        let mut ev = Event::new(String::new(), Utc::now());
        assert_eq!(parse("(CRON) info (No MTA installed)", &mut ev), Claim::No);
    }
}
