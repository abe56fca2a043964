//! End to end against the real local Kafka: lines over UDP, TCP (both
//! framings), TLS (client certificates required) and a tailed file arrive
//! in Kafka exactly once, parsed and stamped; heartbeats; stdin replay;
//! journald through a fake `journalctl`; config errors name the key.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::Value;

struct Pki {
    ca_pem: String,
    server_cert: String,
    server_key: String,
    client_cert: rustls::pki_types::CertificateDer<'static>,
    client_key: rustls::pki_types::PrivateKeyDer<'static>,
    ca_der: rustls::pki_types::CertificateDer<'static>,
}

/// A throwaway CA, a server certificate for 127.0.0.1/localhost and a
/// client certificate.
fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "qalqan test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    let srv_key = KeyPair::generate().expect("server key");
    let srv = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    let srv_cert = srv
        .signed_by(&srv_key, &ca_cert, &ca_key)
        .expect("server cert");
    let cli_key = KeyPair::generate().expect("client key");
    let mut cli = CertificateParams::new(Vec::<String>::new()).expect("client params");
    cli.distinguished_name.push(DnType::CommonName, "web-tls");
    cli.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cli_cert = cli
        .signed_by(&cli_key, &ca_cert, &ca_key)
        .expect("client cert");
    Pki {
        ca_pem: ca_cert.pem(),
        server_cert: srv_cert.pem(),
        server_key: srv_key.serialize_pem(),
        client_cert: cli_cert.der().clone(),
        client_key: rustls::pki_types::PrivateKeyDer::Pkcs8(cli_key.serialize_der().into()),
        ca_der: ca_cert.der().clone(),
    }
}

/// Sends `data` over TLS; with `client_auth` false no certificate is shown.
fn tls_send(
    addr: std::net::SocketAddr,
    pki: &Pki,
    client_auth: bool,
    data: &[u8],
) -> std::io::Result<()> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = if client_auth {
        builder
            .with_client_auth_cert(vec![pki.client_cert.clone()], pki.client_key.clone_key())
            .expect("client cert")
    } else {
        builder.with_no_client_auth()
    };
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let sock = TcpStream::connect(addr)?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(data)?;
    tls.flush()?;
    // Read until the server closes or times out, so a refused handshake
    // surfaces as an error here.
    tls.conn.send_close_notify();
    tls.flush()?;
    tls.sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 16];
    match std::io::Read::read(&mut tls, &mut buf) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

const N: usize = 200;

#[test]
fn every_source_delivers_each_line_exactly_once_with_fields() {
    let setup = Setup::new(3);
    let pki = pki();
    for (name, text) in [
        ("ca.pem", &pki.ca_pem),
        ("srv.pem", &pki.server_cert),
        ("srv.key", &pki.server_key),
    ] {
        std::fs::write(setup.path(name), text).expect("write pem");
    }
    std::fs::create_dir_all(setup.path("logs")).expect("logs dir");
    let (udp, tcp, tls) = (free_port(), free_port(), free_port());
    let body = format!(
        r#"
[heartbeat]
enabled = false
[sources.udp]
type = "udp"
listen = "127.0.0.1:{udp}"
[sources.tcp]
type = "tcp"
listen = "127.0.0.1:{tcp}"
[sources.tls]
type = "tls"
listen = "127.0.0.1:{tls}"
cert = "{cert}"
key = "{key}"
client_ca = "{ca}"
require_client_cert = true
[sources.files]
type = "file"
include = ["{logs}/*.log"]
poll_interval = "50ms"
glob_interval = "100ms"
"#,
        cert = setup.path("srv.pem").display(),
        key = setup.path("srv.key").display(),
        ca = setup.path("ca.pem").display(),
        logs = setup.path("logs").display(),
    );
    let proc = Proc::start(&setup, &setup.config("e2e-col", &body), "c");

    let line = |kind: &str, i: usize| {
        format!(
            "<38>{}",
            sshd_line(&format!("host-{kind}"), &format!("{kind}_{i}"))
        )
    };
    // UDP: one datagram per line, paced a little to stay far from any kernel limit.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    for i in 0..N {
        sock.send_to(line("udp", i).as_bytes(), ("127.0.0.1", udp))
            .expect("send udp");
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // TCP, newline framing, in odd-sized writes.
    let mut data = Vec::new();
    for i in 0..N {
        data.extend_from_slice(line("tcpnl", i).as_bytes());
        data.extend_from_slice(if i % 2 == 0 { b"\n" } else { b"\r\n" });
    }
    let mut conn = TcpStream::connect(("127.0.0.1", tcp)).expect("tcp");
    for chunk in data.chunks(777) {
        conn.write_all(chunk).expect("write");
    }
    drop(conn);
    // TCP, octet counting.
    let mut data = Vec::new();
    for i in 0..N {
        let l = line("tcpoc", i);
        data.extend_from_slice(format!("{} {l}", l.len()).as_bytes());
    }
    TcpStream::connect(("127.0.0.1", tcp))
        .expect("tcp")
        .write_all(&data)
        .expect("write");
    // TLS with a client certificate, octet counting (RFC 5425).
    let mut data = Vec::new();
    for i in 0..N {
        let l = line("tls", i);
        data.extend_from_slice(format!("{} {l}", l.len()).as_bytes());
    }
    tls_send(
        std::net::SocketAddr::from(([127, 0, 0, 1], tls)),
        &pki,
        true,
        &data,
    )
    .expect("tls send");
    // TLS without a client certificate is refused; its line never arrives.
    let refused = tls_send(
        std::net::SocketAddr::from(([127, 0, 0, 1], tls)),
        &pki,
        false,
        line("tlsnocert", 0).as_bytes(),
    );
    // A tailed file (auth.log style, no syslog priority).
    append_lines(
        &setup.path("logs/auth.log"),
        (0..N).map(|i| sshd_line("host-file", &format!("file_{i}"))),
    );

    let total = 5 * N;
    let msgs = setup.consume(total, 90);
    let evs = events(&msgs);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut seqs = Vec::new();
    for (m, ev) in msgs.iter().zip(&evs) {
        let user = s(ev, "user.name").to_string();
        *seen.entry(user.clone()).or_default() += 1;
        let kind = user.split('_').next().unwrap_or_default().to_string();
        assert_eq!(s(ev, "observer.name"), "e2e-col");
        assert_eq!(s(ev, "observer.type"), "collector");
        assert!(!s(ev, "observer.version").is_empty());
        assert!(!s(ev, "observer.hostname").is_empty());
        let expected_input = match kind.as_str() {
            "tcpnl" | "tcpoc" => "tcp",
            k => k,
        };
        assert_eq!(s(ev, "input.type"), expected_input, "{ev}");
        assert_eq!(s(ev, "source.ip"), "203.0.113.7", "{ev}");
        assert_eq!(field(ev, "source.port"), &Value::from(50022), "{ev}");
        assert_eq!(s(ev, "event.outcome"), "failure", "{ev}");
        assert_eq!(s(ev, "host.name"), format!("host-{kind}"), "{ev}");
        assert_eq!(s(ev, "logsource.service"), "sshd", "{ev}");
        assert!(s(ev, "event.original").contains(&user), "{ev}");
        assert_eq!(
            m.key_str().as_deref(),
            Some(s(ev, "host.name")),
            "key = host.name"
        );
        if kind == "file" {
            assert_eq!(
                s(ev, "log.file.path"),
                setup.path("logs/auth.log").to_string_lossy()
            );
        } else {
            assert!(
                s(ev, "log.source.address").starts_with("127.0.0.1:"),
                "{ev}"
            );
        }
        let seq = field(ev, "observer.sequence").as_u64().expect("sequence");
        assert_eq!(
            s(ev, "event.id"),
            qalqan_core::alert::event_id(&[b"e2e-col", seq.to_string().as_bytes()])
        );
        seqs.push(seq);
    }
    for kind in ["udp", "tcpnl", "tcpoc", "tls", "file"] {
        for i in 0..N {
            let k = format!("{kind}_{i}");
            assert_eq!(seen.get(&k), Some(&1), "{k} must arrive exactly once");
        }
    }
    assert_eq!(
        evs.len(),
        total,
        "no extra events: {:?}",
        seen.keys()
            .filter(|k| k.starts_with("tlsnocert"))
            .collect::<Vec<_>>()
    );
    assert!(
        refused.is_err() || !seen.contains_key("tlsnocert_0"),
        "a client without certificate was accepted"
    );
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=total as u64).collect::<Vec<_>>(),
        "observer.sequence is contiguous from 1"
    );
    assert_eq!(
        proc.metric("qalqan_collector_events_sent_total"),
        total as f64
    );
    assert_eq!(
        proc.metric("qalqan_collector_events_received_total"),
        total as f64
    );
    assert!(proc.metric("qalqan_collector_events_parsed_total") >= total as f64);
    assert!(proc.term().success());
}

/// One connection carrying a relay's worth of lines is built on several
/// cores (batches of hundreds of lines go to the build pool), yet its
/// events reach Kafka in the order they were sent and are numbered in that
/// order, with small trickled batches (built inline) mixed in between.
#[test]
fn one_busy_connection_keeps_its_order_while_built_in_parallel() {
    const LINES: usize = 30_000;
    // (user, trickled): every 5000 lines, three lines sent one by one with
    // a pause, so the next reads are small batches, built inline while big
    // ones may still be building. This is also the order expected in Kafka.
    let mut plan: Vec<(String, bool)> = Vec::new();
    for i in 0..LINES {
        plan.push((format!("u_{i}"), false));
        if i % 5000 == 4999 {
            plan.extend((0..3).map(|j| (format!("u_{i}_{j}"), true)));
        }
    }
    let setup = Setup::new(1);
    let tcp = free_port();
    let body = format!(
        "[heartbeat]\nenabled = false\n[sources.tcp]\ntype = \"tcp\"\nlisten = \"127.0.0.1:{tcp}\"\n"
    );
    let proc = Proc::start(&setup, &setup.config("order-col", &body), "c");
    let mut conn = TcpStream::connect(("127.0.0.1", tcp)).expect("tcp");
    let mut data = Vec::new();
    for (user, trickled) in &plan {
        let line = format!("<38>{}\n", sshd_line("relay", user));
        if *trickled {
            conn.write_all(&data).expect("write");
            data.clear();
            conn.write_all(line.as_bytes()).expect("write");
            std::thread::sleep(Duration::from_millis(20));
        } else {
            data.extend_from_slice(line.as_bytes());
        }
    }
    conn.write_all(&data).expect("write");
    drop(conn);
    let total = plan.len();
    let msgs = setup.consume(total, 120);
    let evs = events(&msgs);
    assert_eq!(evs.len(), total, "every line arrives");
    let first_out_of_order = evs
        .iter()
        .zip(&plan)
        .position(|(e, (user, _))| s(e, "user.name") != user);
    assert_eq!(first_out_of_order, None, "events arrive in the order sent");
    let seqs: Vec<u64> = evs
        .iter()
        .map(|e| field(e, "observer.sequence").as_u64().expect("sequence"))
        .collect();
    assert_eq!(
        seqs,
        (1..=total as u64).collect::<Vec<_>>(),
        "numbered in the order sent"
    );
    // Both ways of building ran: the bulk on the pool, the trickle inline.
    let pool = proc.metric("qalqan_collector_batches_built_total{where=\"pool\"}");
    let inline = proc.metric("qalqan_collector_batches_built_total{where=\"inline\"}");
    assert!(pool >= 1.0 && inline >= 1.0, "pool {pool}, inline {inline}");
    assert!(proc.term().success());
}

/// A burst far beyond a tiny memory queue waits in the spool file and
/// arrives whole: nothing dropped, each line once.
#[test]
fn a_udp_burst_beyond_the_memory_queue_is_spooled_and_arrives_whole() {
    const N: u64 = 20_000;
    let setup = Setup::new(3);
    let udp = free_port();
    let body = format!(
        "[heartbeat]\nenabled = false\n[sources.udp]\ntype = \"udp\"\nlisten = \"127.0.0.1:{udp}\"\nqueue = \"64KiB\"\nworkers = 1\n"
    );
    let proc = Proc::start(&setup, &setup.config("e2e-spool", &body), "c");
    // Paced below anything a loaded machine's kernel buffer would drop.
    qalqan_collector::loadgen::send_udp(([127, 0, 0, 1], udp).into(), 1, N, 256, 50_000)
        .expect("send");
    let msgs = setup.consume(N as usize, 120);
    let evs = events(&msgs);
    let mut users: Vec<String> = evs.iter().map(|e| s(e, "user.name").to_string()).collect();
    users.sort_unstable();
    users.dedup();
    assert_eq!(evs.len() as u64, N, "every datagram arrives");
    assert_eq!(users.len() as u64, N, "each exactly once");
    assert_eq!(proc.metric("qalqan_collector_udp_dropped_total"), 0.0);
    let spooled = proc.metric("qalqan_collector_udp_spooled_total");
    assert!(
        spooled > 0.0,
        "a 64 KiB memory queue overflows into the spool"
    );
    assert!(setup.path("state/udp-udp.spool").exists());
    assert!(proc.term().success());
    assert!(
        !setup.path("state/udp-udp.spool").exists(),
        "the spool file is removed at shutdown"
    );
}

#[test]
fn heartbeats_carry_state_and_take_no_sequence_numbers() {
    let setup = Setup::new(1);
    let tcp = free_port();
    let body = format!(
        "[heartbeat]\ninterval = \"1s\"\n[sources.tcp]\ntype = \"tcp\"\nlisten = \"127.0.0.1:{tcp}\"\n"
    );
    let proc = Proc::start(&setup, &setup.config("hb-col", &body), "c");
    let mut conn = TcpStream::connect(("127.0.0.1", tcp)).expect("tcp");
    for i in 0..3 {
        writeln!(conn, "<13>Mar  1 10:00:00 h1 app: line {i}").expect("write");
    }
    drop(conn);
    proc.wait_metric("qalqan_collector_events_sent_total", 3.0, 30);
    std::thread::sleep(Duration::from_millis(2500));
    let status = proc.term();
    assert!(status.success());
    let msgs = setup.consume(7, 30);
    let hbs: Vec<Value> = msgs
        .iter()
        .map(|m| m.payload_json())
        .filter(|v| v["event"]["dataset"] == "qalqan.heartbeat")
        .collect();
    assert!(
        hbs.len() >= 3,
        "at least start + 1s ticks + stop: {}",
        hbs.len()
    );
    let last = hbs.last().expect("a heartbeat");
    assert_eq!(s(last, "event.kind"), "state");
    assert_eq!(s(last, "observer.name"), "hb-col");
    let c = &last["qalqan"]["collector"];
    assert_eq!(c["stopping"], Value::Bool(true), "{last}");
    assert_eq!(c["last_sequence"], 3, "{last}");
    assert_eq!(c["events_received"], 3);
    assert_eq!(c["events_sent"], 3);
    assert_eq!(c["buffer_mode"], "write_ahead");
    assert!(c["uptime_seconds"].as_u64().is_some());
    assert!(c["run_id"].as_str().is_some_and(|r| r.len() == 16));
    for h in &hbs {
        assert!(
            h["observer"].get("sequence").is_none(),
            "heartbeats have no sequence"
        );
    }
    let evs = events(&msgs);
    let mut seqs: Vec<u64> = evs
        .iter()
        .filter_map(|e| field(e, "observer.sequence").as_u64())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, vec![1, 2, 3]);
}

#[test]
fn stdin_replay_exits_after_everything_is_confirmed() {
    let setup = Setup::new(2);
    let mut proc = Proc::start_with(
        &setup,
        &setup.config("replay-col", ""),
        "c",
        &["--stdin"],
        None,
    );
    let mut stdin = proc.stdin();
    let n = 3000;
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&sshd_line("replayhost", &format!("r_{i}")));
        text.push('\n');
    }
    text.push_str("last line without newline");
    stdin.write_all(text.as_bytes()).expect("write stdin");
    drop(stdin);
    let status = proc.wait(Duration::from_secs(120));
    assert!(status.success(), "{}", proc.log_text());
    // Exited: so everything must already be in Kafka.
    let msgs = setup.consume(n + 1, 30);
    let evs = events(&msgs);
    assert_eq!(evs.len(), n + 1);
    assert!(evs.iter().all(|e| s(e, "input.type") == "stdin"));
    assert!(evs
        .iter()
        .any(|e| s(e, "event.original") == "last line without newline"));
}

fn journal_entry(i: usize) -> String {
    serde_json::json!({
        "__CURSOR": format!("s=8f9c2d0e4b1a4c7e9d5f6a3b2c1d0e9f;i={i:x};b=4a1b2c3d4e5f60718293a4b5c6d7e8f9;m={:x};t=61e2f3a4b5c6d;x=1f2e3d4c5b6a7988", 1000 + i),
        "__REALTIME_TIMESTAMP": format!("{}", 1_767_261_600_000_000u64 + i as u64 * 1000),
        "__MONOTONIC_TIMESTAMP": format!("{}", 5_000_000 + i),
        "_BOOT_ID": "4a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "_MACHINE_ID": "0123456789abcdef0123456789abcdef",
        "_HOSTNAME": "jhost",
        "_TRANSPORT": "syslog",
        "PRIORITY": "6",
        "SYSLOG_FACILITY": "10",
        "SYSLOG_IDENTIFIER": "sshd",
        "SYSLOG_PID": "811",
        "_PID": "811",
        "_UID": "0",
        "_GID": "0",
        "_COMM": "sshd",
        "_EXE": "/usr/sbin/sshd",
        "_CMDLINE": "sshd: root [priv]",
        "_SYSTEMD_UNIT": "ssh.service",
        "MESSAGE": format!("Failed password for invalid user j_{i} from 203.0.113.7 port 50022 ssh2"),
    })
    .to_string()
}

const FAKE_JOURNALCTL: &str = r#"#!/bin/bash
# Fake journalctl: prints the entries of $FAKE_JOURNAL after --after-cursor
# (all with --lines=all, none with --lines=0), then follows forever.
after=""; lines=""
for a in "$@"; do
  case "$a" in
    --after-cursor=*) after="${a#--after-cursor=}" ;;
    --lines=*) lines="${a#--lines=}" ;;
  esac
done
echo "$*" >> "$FAKE_JOURNAL.args"
if [ -n "$after" ]; then
  awk -v c="\"__CURSOR\":\"$after\"" 'found { print } index($0, c) > 0 { found = 1 }' "$FAKE_JOURNAL"
elif [ "$lines" != "0" ]; then
  cat "$FAKE_JOURNAL"
fi
exec sleep 3600
"#;

#[test]
fn journald_entries_arrive_once_and_the_cursor_survives_restart() {
    use std::os::unix::fs::PermissionsExt;
    let setup = Setup::new(1);
    let bin = setup.path("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let fake = bin.join("journalctl");
    std::fs::write(&fake, FAKE_JOURNALCTL).expect("fake journalctl");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let journal = setup.path("journal.json");
    append_lines(&journal, (0..40).map(journal_entry));
    std::env::set_var("FAKE_JOURNAL", &journal);
    let body = "[heartbeat]\nenabled = false\n[sources.journal]\ntype = \"journald\"\nread_from = \"beginning\"\nunits = [\"ssh.service\"]\n";
    let cfg = setup.config("j-col", body);
    let proc = Proc::start_with(&setup, &cfg, "c", &[], Some(&bin));
    assert_eq!(
        proc.wait_metric("qalqan_collector_events_sent_total", 40.0, 60),
        40.0,
        "{}",
        proc.log_text()
    );
    assert!(proc.term().success());
    append_lines(&journal, (40..65).map(journal_entry));
    let proc = Proc::start_with(&setup, &cfg, "c2", &[], Some(&bin));
    assert_eq!(
        proc.wait_metric("qalqan_collector_events_sent_total", 25.0, 60),
        25.0,
        "{}",
        proc.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(proc.term().success());
    let args = std::fs::read_to_string(setup.path("journal.json.args")).expect("args");
    let mut arg_lines = args.lines();
    assert!(
        arg_lines.next().is_some_and(|l| l.contains("--output=json")
            && l.contains("--follow")
            && l.contains("--lines=all")
            && l.contains("--unit=ssh.service")),
        "{args}"
    );
    assert!(
        arg_lines.next().is_some_and(|l| l.contains(&format!(
            "--after-cursor=s=8f9c2d0e4b1a4c7e9d5f6a3b2c1d0e9f;i={:x};",
            39
        ))),
        "{args}"
    );
    let evs = events(&setup.consume(65, 30));
    assert_eq!(evs.len(), 65);
    let mut users: Vec<String> = evs.iter().map(|e| s(e, "user.name").to_string()).collect();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), 65, "each entry exactly once");
    let e0 = evs
        .iter()
        .find(|e| s(e, "user.name") == "j_0")
        .expect("j_0");
    assert_eq!(s(e0, "input.type"), "journald");
    assert_eq!(s(e0, "host.name"), "jhost");
    assert_eq!(s(e0, "process.name"), "sshd");
    assert_eq!(field(e0, "process.pid"), &Value::from(811));
    assert_eq!(s(e0, "source.ip"), "203.0.113.7");
    assert_eq!(s(e0, "@timestamp"), "2026-01-01T10:00:00.000000Z");
}

#[test]
fn check_config_names_the_key_and_accepts_the_example() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = |text: &str| {
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).expect("write");
        std::process::Command::new(collector_bin())
            .arg("check-config")
            .arg(&p)
            .output()
            .expect("run check-config")
    };
    let base = "[collector]\nname = \"c\"\nagency = \"mof\"\nstate_dir = \"/tmp/x\"\n[kafka]\nbrokers = \"127.0.0.1:19092\"\n";
    for (extra, key) in [
        ("[sources.a]\ntype = \"tcp\"\nlisten = \"127.0.0.1:1\"\nmax_frame_bytes = \"1B\"\n", "sources.a.max_frame_bytes"),
        ("[sources.a]\ntype = \"tls\"\nlisten = \"127.0.0.1:1\"\ncert = \"/nonexistent.pem\"\nkey = \"/nonexistent.key\"\n", "sources.a.cert"),
        ("[buffer]\nmax_bytes = \"1MiB\"\n[sources.a]\ntype = \"udp\"\nlisten = \"127.0.0.1:1\"\n", "buffer.max_bytes"),
        ("[sources.a]\ntype = \"file\"\ninclude = [\"/var/log/[x\"]\n", "sources.a.include[0]"),
        ("[parse]\ntimezone = \"Mars/Olympus\"\n[sources.a]\ntype = \"udp\"\nlisten = \"127.0.0.1:1\"\n", "parse.timezone"),
        ("[sources.a]\ntype = \"udp\"\nlisten = \"127.0.0.1:1\"\nworkerz = 2\n", "workerz"),
    ] {
        let out = run(&format!("{base}{extra}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra}: {err}");
        assert!(err.contains(key), "error for {extra} must name `{key}`: {err}");
    }
    // The shipped example is valid once its TLS files exist.
    let pki = pki();
    std::fs::write(dir.path().join("srv.pem"), &pki.server_cert).expect("pem");
    std::fs::write(dir.path().join("srv.key"), &pki.server_key).expect("key");
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/collector/qalqan-collector.toml"),
    )
    .expect("example config")
    .replace(
        "/etc/qalqan/tls/collector.pem",
        &dir.path().join("srv.pem").to_string_lossy(),
    )
    .replace(
        "/etc/qalqan/tls/collector.key",
        &dir.path().join("srv.key").to_string_lossy(),
    );
    let out = run(&example);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("source syslog_tls: tls"));
}
