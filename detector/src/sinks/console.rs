//! The readable alert feed on the terminal: what a newcomer sees first.
//!
//! One block per alert: time, level, title, agency, the entities an analyst
//! would pivot on, the window and count, ATT&CK tags, the rule author (the
//! Detection Rule License asks for credit) and one line of evidence.

use std::fmt::Write as _;

use qalqan_core::Alert;

/// Renders alerts, with ANSI colours when writing to a terminal.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleRenderer {
    pub color: bool,
}

impl ConsoleRenderer {
    /// Colour when stdout is a terminal and `NO_COLOR` is not set.
    pub fn for_stdout() -> Self {
        use std::io::IsTerminal;
        ConsoleRenderer {
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// The alert as a few lines of text, ending with a newline.
    pub fn render(&self, a: &Alert) -> String {
        let level = a.rule.level.to_ascii_uppercase();
        let color = match a.rule.level.as_str() {
            "critical" => "1;35",
            "high" => "1;31",
            "medium" => "1;33",
            "low" => "1;36",
            _ => "2",
        };
        // When the alert became true: its last evidence (a correlation
        // window may extend past it), else the window end.
        let at = a
            .evidence
            .iter()
            .map(|e| e.timestamp)
            .max()
            .unwrap_or(a.window_end)
            .min(a.window_end);
        let mut out = String::with_capacity(256);
        let _ = write!(
            out,
            "{} {} {}  agency={}",
            at.format("%H:%M:%S"),
            self.paint(color, &format!("{level:<8}")),
            self.paint("1", &a.rule.title),
            a.agency
        );
        let e = &a.entities;
        for (name, list) in [
            ("src", &e.source_ips),
            ("user", &e.users),
            ("host", &e.hosts),
            ("url", &e.urls),
        ] {
            if !list.is_empty() {
                let shown: Vec<&str> = list.iter().take(3).map(String::as_str).collect();
                let more = if list.len() > 3 {
                    format!(" +{}", list.len() - 3)
                } else {
                    String::new()
                };
                let _ = write!(out, "  {name}={}{more}", shown.join(","));
            }
        }
        out.push('\n');
        let attack: Vec<&str> = a
            .rule
            .tags
            .iter()
            .filter(|t| t.starts_with("attack.t"))
            .map(|t| t.trim_start_matches("attack."))
            .collect();
        if a.count == 1 {
            // One event (a single-event rule): its time, not the window,
            // which for suppressed rules starts with the suppression period.
            let _ = write!(
                out,
                "         1 event at {}",
                a.window_end.format("%H:%M:%S")
            );
        } else {
            let _ = write!(
                out,
                "         {} events {}–{}",
                a.count,
                a.window_start.format("%H:%M:%S"),
                a.window_end.format("%H:%M:%S")
            );
        }
        if let Some(v) = a.value {
            let _ = write!(out, "  value={v}");
        }
        if !attack.is_empty() {
            let _ = write!(out, "  ATT&CK {}", attack.join(",").to_ascii_uppercase());
        }
        if a.suppressed > 0 {
            let _ = write!(out, "  (+{} suppressed)", a.suppressed);
        }
        if !a.rule.author.is_empty() {
            let _ = write!(out, "  rule by {}", a.rule.author);
        }
        let _ = writeln!(out, "  id={}", &a.id[..a.id.len().min(12)]);
        if let Some(ev) = a.evidence.last() {
            let line: String = ev.original.chars().take(160).collect();
            let _ = writeln!(out, "         {}", self.paint("2", &format!("> {line}")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use qalqan_core::alert::{Evidence, RuleInfo};

    #[test]
    fn renders_what_an_analyst_needs() {
        let now = Utc::now();
        let mut a = Alert::new(
            RuleInfo {
                id: "r".into(),
                title: "SSH brute force".into(),
                author: "qalqan".into(),
                level: "high".into(),
                tags: vec!["attack.credential-access".into(), "attack.t1110.001".into()],
                kind: "event_count".into(),
                ..Default::default()
            },
            "demo",
            now,
            now,
        );
        a.count = 40;
        a.entities.source_ips.push("203.0.113.66".into());
        a.evidence.push(Evidence {
            event_id: "e".into(),
            timestamp: now,
            original: "sshd: Failed password".into(),
        });
        let text = ConsoleRenderer { color: false }.render(&a);
        for needle in [
            "HIGH",
            "SSH brute force",
            "agency=demo",
            "src=203.0.113.66",
            "40 events",
            "T1110.001",
            "rule by qalqan",
            "> sshd: Failed password",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
        assert!(!text.contains("\x1b["));
        assert!(ConsoleRenderer { color: true }
            .render(&a)
            .contains("\x1b[1;31m"));
        // A single event shows its own time, not its suppression period.
        a.count = 1;
        a.window_start = now - chrono::Duration::minutes(4);
        let text = ConsoleRenderer { color: false }.render(&a);
        let at = format!("1 event at {}", now.format("%H:%M:%S"));
        assert!(text.contains(&at), "{at} missing in {text}");
        assert!(!text.contains("events"), "{text}");
    }
}
