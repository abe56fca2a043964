//! The demo scenario behind the README's first command: an e-government
//! portal being scanned, brute-forced, broken into and escalated on, mixed
//! into ordinary citizen traffic.
//!
//! Lines are written the way the real daemons write them (BSD syslog as in
//! `/var/log/auth.log`, nginx combined access logs, iptables kernel lines),
//! so the demo exercises the same parsers and rules as production. All
//! addresses are from the documentation ranges (RFC 5737), and the output
//! is a pure function of the start time and the seed, so a run is
//! repeatable.

use chrono::{DateTime, Duration, Utc};

/// The attacker's address in the scenario.
pub const ATTACKER_IP: &str = "203.0.113.66";
/// A second attacker that sprays passwords across many accounts.
pub const SPRAYER_IP: &str = "203.0.113.99";
/// The portal's web server and its application server.
pub const WEB_HOST: &str = "egov-web1";
pub const APP_HOST: &str = "egov-app1";

/// One line of the scenario and the event time it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoLine {
    pub at: DateTime<Utc>,
    /// Which log it would be in: `auth`, `kern` or `access`.
    pub log: &'static str,
    pub line: String,
}

/// Small deterministic generator (xorshift), so the demo needs no RNG crate
/// and repeats exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn syslog(at: DateTime<Utc>, host: &str, prog: &str, pid: u32, msg: &str) -> String {
    format!(
        "{} {host} {prog}[{pid}]: {msg}",
        at.format("%b %e %H:%M:%S")
    )
}

fn kernel(at: DateTime<Utc>, host: &str, msg: &str) -> String {
    format!("{} {host} kernel: {msg}", at.format("%b %e %H:%M:%S"))
}

fn access(
    at: DateTime<Utc>,
    ip: &str,
    method: &str,
    path: &str,
    status: u16,
    bytes: u32,
    ua: &str,
) -> String {
    format!(
        "{ip} - - [{}] \"{method} {path} HTTP/1.1\" {status} {bytes} \"-\" \"{ua}\"",
        at.format("%d/%b/%Y:%H:%M:%S +0000")
    )
}

const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
];
const PORTAL_PAGES: &[&str] = &[
    "/",
    "/services",
    "/services/passport",
    "/services/tax/declaration",
    "/news?page=2",
    "/static/app.js",
    "/static/style.css",
    "/api/v1/queue/status",
    "/login",
];

/// Generates the scenario starting at `start`. Roughly 1,600 lines over
/// twenty minutes of event time, in time order.
pub fn scenario(start: DateTime<Utc>, seed: u64) -> Vec<DemoLine> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(2048);
    let mut push =
        |at: DateTime<Utc>, log: &'static str, line: String| out.push(DemoLine { at, log, line });

    // Background: citizens using the portal, admins working, all along.
    for i in 0..900 {
        let at = start + Duration::milliseconds(i * 1300);
        let ip = format!("198.51.100.{}", 10 + rng.below(200));
        let page = rng.pick(PORTAL_PAGES);
        let status = if rng.below(40) == 0 { 404 } else { 200 };
        push(
            at,
            "access",
            access(
                at,
                &ip,
                "GET",
                page,
                status,
                512 + rng.below(40_000) as u32,
                rng.pick(BROWSERS),
            ),
        );
        if i % 120 == 0 {
            let at = at + Duration::milliseconds(200);
            push(at, "auth", syslog(at, APP_HOST, "sshd", 4100 + i as u32, "Accepted publickey for deploy from 192.0.2.10 port 40022 ssh2: ED25519 SHA256:q5Zk0t2dmFkYjJmZjE0MGI4"));
        }
        if i % 300 == 7 {
            let at = at + Duration::milliseconds(300);
            push(at, "auth", syslog(at, APP_HOST, "sudo", 5200 + i as u32, "  deploy : TTY=pts/0 ; PWD=/srv/portal ; USER=root ; COMMAND=/usr/bin/systemctl restart portal"));
        }
    }

    // 1. Reconnaissance (minute 2): a SYN scan of the web server's ports.
    let t = start + Duration::minutes(2);
    for (n, port) in [
        21u16, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 443, 445, 993, 995, 1433, 1521, 2049,
        3306, 3389, 5432, 5900, 6379, 8080, 8443, 9200, 11211, 27017,
    ]
    .iter()
    .enumerate()
    {
        let at = t + Duration::milliseconds(n as i64 * 40);
        push(at, "kern", kernel(at, WEB_HOST, &format!(
            "[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC={ATTACKER_IP} DST=192.0.2.80 LEN=44 TOS=0x00 PREC=0x00 TTL=49 ID=54321 PROTO=TCP SPT=61000 DPT={port} WINDOW=1024 RES=0x00 SYN URGP=0"
        )));
    }

    // 2. Web probing (minutes 3-4): scanner, traversal, SQL injection, XSS, RCE probes.
    let t = start + Duration::minutes(3);
    let probes: &[(&str, u16, &str)] = &[
        ("/.env", 404, "Nikto/2.5.0"),
        ("/wp-admin/setup-config.php", 404, "Nikto/2.5.0"),
        ("/phpmyadmin/index.php", 404, "Nikto/2.5.0"),
        ("/.git/config", 404, "Nikto/2.5.0"),
        ("/static/../../../../etc/passwd", 400, "Nikto/2.5.0"),
        ("/download?file=..%2F..%2F..%2Fetc%2Fshadow", 403, "Nikto/2.5.0"),
        ("/services/search?q=%27%20OR%201%3D1--", 500, "sqlmap/1.8#stable (https://sqlmap.org)"),
        ("/services/search?q=1%27%20UNION%20SELECT%20username,password%20FROM%20users--", 500, "sqlmap/1.8#stable (https://sqlmap.org)"),
        ("/news?id=1%20AND%20SLEEP(5)", 200, "sqlmap/1.8#stable (https://sqlmap.org)"),
        ("/feedback?msg=%3Cscript%3Ealert(document.cookie)%3C/script%3E", 200, "Mozilla/5.0"),
        ("/api/v1/render?tpl=%7B%7B7*7%7D%7D", 200, "Mozilla/5.0"),
        ("/cgi-bin/status?cmd=;cat%20/etc/passwd", 404, "Mozilla/5.0"),
        ("/index.php?s=/index/think/app/invokefunction&function=call_user_func_array&vars[0]=system&vars[1][]=id", 404, "Mozilla/5.0"),
    ];
    for round in 0..4 {
        for (n, (path, status, ua)) in probes.iter().enumerate() {
            let at = t + Duration::milliseconds((round * probes.len() + n) as i64 * 700);
            push(
                at,
                "access",
                access(at, ATTACKER_IP, "GET", path, *status, 162, ua),
            );
        }
    }

    // 3a. Password spraying on SSH (minute 6): one source, many accounts.
    let t = start + Duration::minutes(6);
    let users = [
        "admin", "oracle", "postgres", "test", "ubuntu", "guest", "backup", "ftpuser", "support",
        "operator", "nagios", "git", "jenkins", "www", "minister",
    ];
    for (n, user) in users.iter().enumerate() {
        let at = t + Duration::milliseconds(n as i64 * 900);
        push(
            at,
            "auth",
            syslog(
                at,
                APP_HOST,
                "sshd",
                7000 + n as u32,
                &format!("Invalid user {user} from {SPRAYER_IP} port {}", 40000 + n),
            ),
        );
        push(
            at,
            "auth",
            syslog(
                at,
                APP_HOST,
                "sshd",
                7000 + n as u32,
                &format!(
                    "Failed password for invalid user {user} from {SPRAYER_IP} port {} ssh2",
                    40000 + n
                ),
            ),
        );
    }

    // 3b. Brute force on the portal's admin account (minutes 8-10), over SSH and the web login.
    let t = start + Duration::minutes(8);
    for n in 0..40 {
        let at = t + Duration::milliseconds(n * 2500);
        push(
            at,
            "auth",
            syslog(
                at,
                APP_HOST,
                "sshd",
                8000 + n as u32,
                &format!(
                    "Failed password for egovadmin from {ATTACKER_IP} port {} ssh2",
                    50000 + n
                ),
            ),
        );
        push(
            at,
            "access",
            access(
                at,
                ATTACKER_IP,
                "POST",
                "/login",
                401,
                87,
                "python-requests/2.31.0",
            ),
        );
    }

    // 4. The password is found (minute 10): success right after the failures.
    let at = start + Duration::minutes(10) + Duration::seconds(5);
    push(
        at,
        "auth",
        syslog(
            at,
            APP_HOST,
            "sshd",
            8100,
            &format!("Accepted password for egovadmin from {ATTACKER_IP} port 50100 ssh2"),
        ),
    );
    push(
        at,
        "auth",
        syslog(
            at,
            APP_HOST,
            "sshd",
            8100,
            "pam_unix(sshd:session): session opened for user egovadmin(uid=1001) by (uid=0)",
        ),
    );

    // 5. Escalation and persistence (minutes 11-13).
    let mut at = start + Duration::minutes(11);
    let mut step = |secs: i64| {
        at += Duration::seconds(secs);
        at
    };
    let a = step(0);
    push(a, "auth", syslog(a, APP_HOST, "sudo", 8200, "pam_unix(sudo:auth): authentication failure; logname=egovadmin uid=1001 euid=0 tty=/dev/pts/1 ruser=egovadmin rhost=  user=egovadmin"));
    let a = step(4);
    push(a, "auth", syslog(a, APP_HOST, "sudo", 8201, "egovadmin : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/egovadmin ; USER=root ; COMMAND=/bin/bash"));
    let a = step(20);
    push(a, "auth", syslog(a, APP_HOST, "sudo", 8202, "egovadmin : TTY=pts/1 ; PWD=/home/egovadmin ; USER=root ; COMMAND=/usr/sbin/useradd -m -s /bin/bash sysupdate"));
    let a = step(1);
    push(a, "auth", syslog(a, APP_HOST, "useradd", 8203, "new user: name=sysupdate, UID=1002, GID=1002, home=/home/sysupdate, shell=/bin/bash, from=/dev/pts/1"));
    let a = step(15);
    push(a, "auth", syslog(a, APP_HOST, "sudo", 8204, "egovadmin : TTY=pts/1 ; PWD=/home/egovadmin ; USER=root ; COMMAND=/usr/sbin/usermod -aG sudo sysupdate"));
    let a = step(1);
    push(
        a,
        "auth",
        syslog(
            a,
            APP_HOST,
            "usermod",
            8205,
            "add 'sysupdate' to group 'sudo'",
        ),
    );
    let a = step(30);
    push(a, "auth", syslog(a, APP_HOST, "sudo", 8206, "egovadmin : TTY=pts/1 ; PWD=/home/egovadmin ; USER=root ; COMMAND=/usr/bin/systemctl stop auditd"));
    let a = step(40);
    push(a, "auth", syslog(a, APP_HOST, "sudo", 8207, "egovadmin : TTY=pts/1 ; PWD=/home/egovadmin ; USER=root ; COMMAND=/usr/bin/truncate -s 0 /var/log/auth.log"));

    // Every format here has whole seconds: report the time the line carries.
    for l in &mut out {
        l.at = DateTime::from_timestamp(l.at.timestamp(), 0).unwrap_or(l.at);
    }
    out.sort_by_key(|l| l.at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_is_repeatable_and_ordered() {
        let start = DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        let a = scenario(start, 7);
        assert_eq!(a, scenario(start, 7));
        assert!(a.len() > 1000);
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(a
            .iter()
            .any(|l| l.line.contains("Accepted password for egovadmin")));
        assert!(a.iter().all(|l| !l.line.contains('\n')));
    }
}
