//! File tailing: rotation by rename and by truncation, rotation while the
//! collector is stopped, checkpoint resume, and back-pressure when the disk
//! buffer is full — against the real local Kafka.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

fn numbered(from: usize, to: usize) -> impl Iterator<Item = String> {
    (from..to).map(|i| sshd_line("filehost", &format!("f_{i}")))
}

fn line_number(ev: &serde_json::Value) -> usize {
    s(ev, "user.name")
        .strip_prefix("f_")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a numbered line: {ev}"))
}

/// Every number in `0..n` exactly once.
fn assert_exactly_once(evs: &[serde_json::Value], n: usize) {
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for e in evs {
        *counts.entry(line_number(e)).or_default() += 1;
    }
    let missing: Vec<usize> = (0..n).filter(|i| !counts.contains_key(i)).collect();
    let dups: Vec<(usize, usize)> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(i, c)| (*i, *c))
        .collect();
    assert!(
        missing.is_empty(),
        "{} missing lines, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        dups.is_empty(),
        "{} duplicated lines, e.g. {:?}",
        dups.len(),
        &dups[..dups.len().min(10)]
    );
    assert_eq!(evs.len(), n);
}

#[test]
fn rotation_by_rename_and_truncate_and_restart_lose_nothing() {
    let setup = Setup::new(1);
    let logs = setup.path("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let app = logs.join("app.log");
    let body = format!(
        "[heartbeat]\nenabled = false\n[sources.app]\ntype = \"file\"\ninclude = [\"{}\"]\npoll_interval = \"20ms\"\nglob_interval = \"100ms\"\nrotate_wait = \"1s\"\neof_timeout = \"1s\"\n",
        app.display()
    );
    let cfg = setup.config("file-col", &body);
    let proc = Proc::start(&setup, &cfg, "c");
    let sent = |p: &Proc, n: f64| p.wait_metric("qalqan_collector_events_sent_total", n, 60);

    append_lines(&app, numbered(0, 100));
    assert_eq!(sent(&proc, 100.0), 100.0);
    // Rename rotation: the writer still appends to the renamed file for a
    // moment, then a new app.log starts.
    std::fs::rename(&app, logs.join("app.log.1")).expect("rename");
    append_lines(&logs.join("app.log.1"), numbered(100, 150));
    append_lines(&app, numbered(150, 250));
    assert_eq!(sent(&proc, 250.0), 250.0);
    // copytruncate rotation.
    std::fs::copy(&app, logs.join("app.log.2")).expect("copy");
    std::fs::File::create(&app).expect("truncate");
    std::thread::sleep(Duration::from_millis(300));
    append_lines(&app, numbered(250, 300));
    assert_eq!(sent(&proc, 300.0), 300.0);
    // A last line without newline goes out after eof_timeout.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&app)
            .expect("open");
        write!(f, "{}", sshd_line("filehost", "f_300")).expect("partial line");
    }
    assert_eq!(sent(&proc, 301.0), 301.0);
    assert!(proc.term().success());

    // While stopped: more lines, then a rotation, then more lines.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&app)
            .expect("open");
        f.write_all(b"\n").expect("newline");
    }
    append_lines(&app, numbered(301, 350));
    std::fs::rename(&app, logs.join("app.log.3")).expect("rename");
    append_lines(&app, numbered(350, 400));
    let checkpoint =
        std::fs::read_to_string(setup.path("state/file-app.checkpoint.json")).expect("checkpoint");
    assert!(checkpoint.contains("\"offset\""), "{checkpoint}");

    let proc = Proc::start(&setup, &cfg, "c2");
    assert_eq!(sent(&proc, 99.0), 99.0, "{}", proc.log_text());
    std::thread::sleep(Duration::from_millis(500));
    assert!(proc.term().success());

    let evs = events(&setup.consume(400, 60));
    assert_exactly_once(&evs, 400);
    assert!(evs
        .iter()
        .all(|e| s(e, "log.file.path") == app.to_string_lossy()));
    // Resumed exactly: sequence numbers continue without gap or reuse.
    let mut seqs: Vec<u64> = evs
        .iter()
        .filter_map(|e| field(e, "observer.sequence").as_u64())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=400).collect::<Vec<_>>());
}

#[test]
fn full_buffer_stops_reading_and_everything_arrives_later() {
    let setup = Setup::new(1);
    let logs = setup.path("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let total = 20_000;
    append_lines(&logs.join("big.log"), numbered(0, total));
    let file_size = std::fs::metadata(logs.join("big.log")).expect("size").len();
    let body = format!(
        "[heartbeat]\nenabled = false\n[buffer]\nmode = \"write_ahead\"\nmax_bytes = \"2MiB\"\nsegment_bytes = \"1MiB\"\n\
         [sources.big]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\npoll_interval = \"20ms\"\n",
        logs.display()
    );
    // Kafka unreachable: a port nobody listens on.
    let dead = format!("127.0.0.1:{}", free_port());
    let cfg_down = setup.config_with_brokers("bp-col", &dead, &body);
    let proc = Proc::start(&setup, &cfg_down, "down");
    std::thread::sleep(Duration::from_secs(4));
    let received = proc.metric("qalqan_collector_events_received_total");
    let buffered = proc.metric("qalqan_collector_buffer_bytes");
    std::thread::sleep(Duration::from_secs(2));
    let received_later = proc.metric("qalqan_collector_events_received_total");
    assert!(
        received > 0.0 && received < total as f64,
        "reading must stop early: {received}"
    );
    assert_eq!(
        received, received_later,
        "no reading while the buffer is full"
    );
    assert!(
        buffered <= (2 << 20) as f64,
        "buffer bound respected: {buffered}"
    );
    assert!(
        buffered > (1 << 20) as f64,
        "buffer actually filled: {buffered}"
    );
    // The checkpoint never runs ahead of what is durable.
    let status = proc.term();
    assert!(status.success(), "{status}");
    let cp =
        std::fs::read_to_string(setup.path("state/file-big.checkpoint.json")).unwrap_or_default();
    let offset: u64 = cp
        .split("\"offset\":")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        offset < file_size,
        "checkpoint {offset} must stay behind the unread data ({file_size})"
    );

    // Kafka back: the buffer drains, reading resumes, nothing lost or doubled.
    let proc = Proc::start(&setup, &setup.config("bp-col", &body), "up");
    let evs = events(&setup.consume(total, 120));
    assert!(proc.term().success());
    assert_exactly_once(&evs, total);
    let order: Vec<usize> = evs.iter().map(line_number).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in file order");
}
