//! No input makes the parser panic, and every input yields a well-formed
//! event. Three generators: random bytes biased towards the delimiters the
//! parsers look for, every byte prefix of realistic lines (a truncated line
//! is the most common damage in practice), and random mutations of
//! realistic lines. Deterministic (fixed seeds), so a failure reproduces.

use chrono::{TimeZone, Utc};
use qalqan_core::event::{tags, Event};
use qalqan_core::parse::{ParseOptions, Parser, PARSER_NAMES};

/// Realistic lines of every format the library reads, incl. multi-byte text.
const SAMPLES: &[&str] = &[
    "Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
    "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2",
    "Dec 10 07:13:56 LabSZ sshd[24227]: message repeated 5 times: [ Failed password for root from 5.36.59.76 port 42393 ssh2]",
    "Dec 10 09:32:20 LabSZ sshd[24680]: Accepted password for fztu from 119.137.62.142 port 49116 ssh2",
    "Dec 10 07:07:38 LabSZ sshd[24206]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=52.80.34.196  user=root",
    "Dec 10 11:03:40 LabSZ sshd[25448]: Received disconnect from 183.62.140.253: 11: Bye Bye [preauth]",
    "<38>1 2026-03-01T10:00:00.250+06:00 bastion sshd 4242 - [origin ip=\"10.0.0.1\" x=\"a\\\"b\\]c\"] Accepted publickey for deploy from 2001:db8::20 port 41000 ssh2: ED25519 SHA256:Zm9v",
    "2026-03-01T10:00:00.123456+05:00 web1 sudo:    alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/алиса ; USER=root ; COMMAND=/bin/cat /etc/shadow",
    "Mar  1 10:00:02 web1 su[999]: pam_unix(su:session): session opened for user root(uid=0) by alice(uid=1000)",
    "Mar  1 10:00:04 web1 useradd[3001]: new user: name=backdoor, UID=0, GID=0, home=/root, shell=/bin/bash, from=/dev/pts/1",
    "Mar  1 10:00:05 web1 usermod[3002]: add 'backdoor' to shadow group 'sudo'",
    "Mar  1 10:00:00 fw1 kernel: [ 8457.246354] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.9 DST=198.51.100.2 LEN=60 TOS=0x00 PREC=0x00 TTL=49 ID=0 DF PROTO=TCP SPT=44226 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0",
    "nft drop: IN=ens3 OUT= SRC=2001:db8::1 DST=2001:db8::2 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=1 SEQ=1",
    "shop.example.kz:443 203.0.113.9 - - [01/Mar/2026:10:00:00 +0600] \"GET /поиск?q=%D0%B0 HTTP/1.1\" 200 5120 \"https://ref.example/\" \"Mozilla/5.0 \\\"x\\\"\" 0.012",
    "203.0.113.9 - - [01/Mar/2026:10:00:00 +0600] \"\\x16\\x03\\x01\" 400 157 \"-\" \"-\"",
    "{\"@timestamp\":\"2026-03-01T09:00:00Z\",\"process\":{\"command_line\":\"cmd /c whoami\"},\"tags\":[\"a\",{\"b\":1}],\"n\":1.5e3}",
    "{\"__REALTIME_TIMESTAMP\":\"1772359200000000\",\"SYSLOG_IDENTIFIER\":\"sudo\",\"MESSAGE\":\"bob : user NOT in sudoers ; TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/sh\"}",
    "<134>Mar  1 10:00:00 relay CEF:0|Sec\\|urity|threat\\\\manager|1.0|100|worm stopped|10|src=10.0.0.1 dst=2.1.2.2 msg=a\\=b\\nc act=blocked rt=Mar 01 2026 10:00:00",
    "<189>date=2026-03-01 time=10:00:00 devname=\"FGT\" srcip=203.0.113.9 srcport=5 dstip=10.0.0.5 dstport=3389 proto=6 action=\"deny\" msg=\"quoted \\\"text\\\"\" tz=\"+0500\"",
    "Mar  1 10:00:03 web1 CRON[2002]: (root) CMD (/usr/local/bin/backup.sh --ключ)",
    "şimdi hiçbir ayrıştırıcının tanımadığı bir satır — 日本語 — 🙂",
];

fn parser() -> Parser {
    Parser::default()
}

/// Invariants every parse result must satisfy.
fn check(p: &Parser, input: &[u8]) {
    let received = Utc
        .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("time");
    let parsed = p.parse(input, received);
    let ev = &parsed.event;
    assert!(PARSER_NAMES.contains(&parsed.parser), "{}", parsed.parser);
    assert!(ev.get_str("message").is_some(), "no message for {input:?}");
    assert!(ev.get_str("event.kind").is_some());
    assert!(ev.get_str("event.dataset").is_some());
    assert!(
        ev.original.len() <= p.options.max_line_bytes.max(1) * 3,
        "bounded"
    );
    if input.len() > p.options.max_line_bytes + 2 {
        assert!(ev.has_tag(tags::TRUNCATED));
    }
    if parsed.parser == "unparsed" {
        assert!(ev.has_tag(tags::UNPARSED));
    }
    // The event always serializes and reads back.
    let json = ev.to_json_string();
    let back = Event::from_json_bytes(json.as_bytes(), received).expect("wire form reads back");
    // (An empty original is replaced by the JSON text on read — contract behaviour.)
    if !ev.original.is_empty() {
        assert_eq!(back.original, ev.original);
    }
}

/// xorshift64*: tiny, deterministic, good enough to shake out panics.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A byte that parsers care about, a random byte, or a printable one.
fn interesting_byte(rng: &mut Rng) -> u8 {
    const SPECIAL: &[u8] = b"<>[]{}()\"'=|\\:;,. -_/0123456789TZ+\n\r\t\x00";
    match rng.below(4) {
        0 => SPECIAL[rng.below(SPECIAL.len())],
        1 => (rng.next() & 0xff) as u8,
        2 => 0x80 | (rng.next() & 0x3f) as u8, // UTF-8 continuation / lead bytes
        _ => b' ' + rng.below(95) as u8,
    }
}

#[test]
fn random_bytes_never_panic() {
    let p = parser();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let len = rng.below(200);
        let mut buf: Vec<u8> = (0..len).map(|_| interesting_byte(&mut rng)).collect();
        // Give a third of them a real prefix so the inner parsers get exercised.
        if rng.below(3) == 0 {
            let sample = SAMPLES[rng.below(SAMPLES.len())].as_bytes();
            let cut = rng.below(sample.len());
            let mut v = sample[..cut].to_vec();
            v.extend_from_slice(&buf);
            buf = v;
        }
        check(&p, &buf);
    }
}

#[test]
fn every_prefix_of_realistic_lines() {
    let p = parser();
    for sample in SAMPLES {
        let bytes = sample.as_bytes();
        for cut in 0..=bytes.len() {
            check(&p, &bytes[..cut]);
        }
    }
}

#[test]
fn mutated_realistic_lines() {
    let p = parser();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for sample in SAMPLES {
        for _ in 0..800 {
            let mut bytes = sample.as_bytes().to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len() + 1);
                match rng.below(3) {
                    0 if at < bytes.len() => bytes[at] = interesting_byte(&mut rng),
                    1 => bytes.insert(at, interesting_byte(&mut rng)),
                    _ if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => {}
                }
            }
            check(&p, &bytes);
        }
    }
}

#[test]
fn tiny_line_limits_cut_anywhere() {
    for max in [0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89] {
        let p = Parser::new(ParseOptions {
            max_line_bytes: max,
            ..ParseOptions::default()
        });
        for sample in SAMPLES {
            check(&p, sample.as_bytes());
        }
    }
}

#[test]
fn pathological_repetitions_stay_fast_enough() {
    // Inputs that would be quadratic for a careless scanner: many '=', many
    // quotes, many brackets, long runs without delimiters. 64 KiB each; the
    // test only checks they finish (debug build, well under a second each).
    let p = parser();
    let patterns: [&[u8]; 8] = [
        b"=", b"a=", b"\"", b"[", b"CEF:0|", b"k=v ", b"x\\", b" from ",
    ];
    for pat in patterns {
        let line: Vec<u8> = pat.iter().copied().cycle().take(64 * 1024).collect();
        check(&p, &line);
        let mut cef = b"CEF:0|a|b|c|d|e|f|".to_vec();
        cef.extend_from_slice(&line);
        check(&p, &cef);
        let mut sshd = b"Mar  1 10:00:00 h sshd[1]: Failed password for ".to_vec();
        sshd.extend_from_slice(&line);
        check(&p, &sshd);
    }
}
