//! `type = "journald"`: follow the systemd journal.
//!
//! Runs `journalctl --output=json --follow` (the stable, documented
//! interface; no libsystemd linking) and resumes from the last confirmed
//! `__CURSOR`, persisted in `<state_dir>/journald-<id>.cursor`. Each entry
//! becomes an RFC 5424 line (`<PRI>1 TIME HOST IDENT PID - - MESSAGE`) so the
//! shared parsers (sshd, sudo, PAM, ...) recognize it exactly as they would
//! over syslog; the entry's own fields then override what a line cannot
//! carry precisely: `@timestamp` from `__REALTIME_TIMESTAMP` (microseconds),
//! `host.name` from `_HOSTNAME`, `process.name` from `SYSLOG_IDENTIFIER`,
//! `process.pid` from `_PID`, `log.syslog.severity.code` from `PRIORITY`,
//! and `systemd.unit` from `_SYSTEMD_UNIT`. MESSAGE given as a byte array
//! (binary or non-UTF-8) is decoded lossily and flagged by the parser.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use qalqan_core::event::Value;
use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ack::Ack;
use crate::config::{JournaldSourceConfig, ReadFrom};
use crate::pipeline::{Batch, Pipeline, RawLine, SourceInfo};
use crate::sources::checkpoint::{self, Store, Update};
use crate::state;

/// Entries per batch (one cursor position each; fits one buffer append).
const MAX_BATCH: usize = 256;
const MAX_ENTRY: usize = 1 << 20;

/// The cursor file of a journald source.
pub fn cursor_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join(state::file_name_for("journald-", id, ".cursor"))
}

struct CursorStore(PathBuf);

impl Store<(), String> for CursorStore {
    fn save(&self, map: &BTreeMap<(), String>) -> std::io::Result<()> {
        match map.get(&()) {
            Some(c) => state::write_atomic(&self.0, format!("{c}\n").as_bytes()),
            None => Ok(()),
        }
    }
}

/// A configured journald source.
pub struct JournaldSource {
    source: Arc<SourceInfo>,
    cfg: JournaldSourceConfig,
    cursor_path: PathBuf,
}

impl JournaldSource {
    pub fn new(
        id: &str,
        cfg: &JournaldSourceConfig,
        state_dir: &Path,
        parser: Option<qalqan_core::parse::Parser>,
    ) -> JournaldSource {
        JournaldSource {
            source: SourceInfo::new(id, "journald", parser),
            cfg: cfg.clone(),
            cursor_path: cursor_path(state_dir, id),
        }
    }

    /// Starts following; returns the reader and the cursor-saving task.
    pub fn start(
        self,
        pipeline: Arc<Pipeline>,
        cancel: CancellationToken,
    ) -> (JoinHandle<()>, JoinHandle<()>) {
        let saved = state::read_optional(&self.cursor_path)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .filter(|c| !c.is_empty());
        let (tx, rx) = mpsc::unbounded_channel();
        let mut initial = BTreeMap::new();
        if let Some(c) = &saved {
            initial.insert((), c.clone());
        }
        let saver = tokio::spawn(checkpoint::run(
            rx,
            initial,
            CursorStore(self.cursor_path.clone()),
            self.cfg.checkpoint_interval,
            pipeline.metrics().clone(),
            self.source.id.clone(),
        ));
        let reader = tokio::spawn(async move { self.follow(saved, tx, pipeline, cancel).await });
        (reader, saver)
    }

    fn command(&self, cursor: Option<&str>) -> Command {
        let mut cmd = Command::new(&self.cfg.command);
        cmd.arg("--output=json").arg("--follow").arg("--no-pager");
        match cursor {
            Some(c) => {
                cmd.arg(format!("--after-cursor={c}"));
            }
            None => {
                cmd.arg(match self.cfg.read_from {
                    ReadFrom::Beginning => "--lines=all",
                    ReadFrom::End => "--lines=0",
                });
            }
        }
        for u in &self.cfg.units {
            cmd.arg(format!("--unit={u}"));
        }
        cmd.args(&self.cfg.extra_args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    async fn follow(
        self,
        mut cursor: Option<String>,
        tx: mpsc::UnboundedSender<Update<(), String>>,
        pipeline: Arc<Pipeline>,
        cancel: CancellationToken,
    ) {
        let mut backoff = Duration::from_millis(500);
        while !cancel.is_cancelled() {
            let mut child = match self.command(cursor.as_deref()).spawn() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(source = %self.source.id, command = %self.cfg.command, "cannot start journalctl: {e}");
                    if sleep_or_cancel(backoff, &cancel).await {
                        break;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            if let Some(stderr) = child.stderr.take() {
                let id = self.source.id.clone();
                tokio::spawn(async move {
                    let mut lines = BufReader::new(stderr).lines();
                    while let Ok(Some(l)) = lines.next_line().await {
                        tracing::warn!(source = %id, "journalctl: {l}");
                    }
                });
            }
            let Some(stdout) = child.stdout.take() else {
                break;
            };
            let mut reader = BufReader::with_capacity(256 * 1024, stdout);
            let read_any = self
                .read_entries(&mut reader, &mut cursor, &tx, &pipeline, &cancel)
                .await;
            let _ = child.start_kill();
            let status = child.wait().await;
            if cancel.is_cancelled() {
                break;
            }
            tracing::warn!(source = %self.source.id, ?status, "journalctl exited; restarting");
            if read_any {
                backoff = Duration::from_millis(500);
            }
            if sleep_or_cancel(backoff, &cancel).await {
                break;
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// Reads entries until EOF or cancel; returns whether any was read.
    async fn read_entries<R: tokio::io::AsyncRead + Unpin>(
        &self,
        reader: &mut BufReader<R>,
        cursor: &mut Option<String>,
        tx: &mpsc::UnboundedSender<Update<(), String>>,
        pipeline: &Arc<Pipeline>,
        cancel: &CancellationToken,
    ) -> bool {
        let mut any = false;
        let mut line = Vec::with_capacity(4096);
        loop {
            let mut lines = Vec::new();
            let mut last_cursor = None;
            // Wait for one entry, then take what is already buffered.
            loop {
                line.clear();
                let read = {
                    let mut limited = (&mut *reader).take(MAX_ENTRY as u64);
                    tokio::select! {
                        _ = cancel.cancelled() => None,
                        r = limited.read_until(b'\n', &mut line) => Some(r),
                    }
                };
                let Some(read) = read else { return any };
                match read {
                    Ok(0) | Err(_) => {
                        if !lines.is_empty() {
                            self.submit(lines, last_cursor.take(), cursor, tx, pipeline, cancel)
                                .await;
                        }
                        return any;
                    }
                    Ok(_) => {}
                }
                if line.last() != Some(&b'\n') && line.len() >= MAX_ENTRY {
                    tracing::warn!(source = %self.source.id, "journal entry over 1 MiB skipped to the next line");
                    let mut sink = Vec::new();
                    let _ = reader.read_until(b'\n', &mut sink).await;
                    continue;
                }
                any = true;
                match entry_to_line(&line) {
                    Some((raw, c)) => {
                        lines.push(raw);
                        if c.is_some() {
                            last_cursor = c;
                        }
                    }
                    None => {
                        tracing::warn!(source = %self.source.id, "journalctl printed a line that is not a JSON entry; skipped")
                    }
                }
                if lines.len() >= MAX_BATCH || !reader.buffer().contains(&b'\n') {
                    break;
                }
            }
            self.submit(lines, last_cursor, cursor, tx, pipeline, cancel)
                .await;
        }
    }

    async fn submit(
        &self,
        lines: Vec<RawLine>,
        new_cursor: Option<String>,
        cursor: &mut Option<String>,
        tx: &mpsc::UnboundedSender<Update<(), String>>,
        pipeline: &Arc<Pipeline>,
        cancel: &CancellationToken,
    ) {
        let (ack, wait) = Ack::new(lines.len());
        let batch = Batch {
            source: self.source.clone(),
            lines,
            file_path: None,
            peer: None,
            ack: Some(ack),
        };
        if let Err(e) = pipeline.process(&batch, cancel).await {
            tracing::error!(source = %self.source.id, "batch not accepted: {e}; it will be read again after restart");
        }
        drop(batch);
        if let Some(c) = new_cursor {
            *cursor = Some(c.clone());
            let _ = tx.send(Update::Advance {
                key: (),
                value: c,
                wait,
            });
        }
    }
}

async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// A journal field as text: strings as they are, byte arrays decoded, the
/// first of repeated fields.
fn field_bytes(v: &Json) -> Option<Vec<u8>> {
    match v {
        Json::String(s) => Some(s.as_bytes().to_vec()),
        Json::Array(a) if a.iter().all(Json::is_number) => Some(
            a.iter()
                .filter_map(|n| n.as_u64())
                .map(|n| n as u8)
                .collect(),
        ),
        Json::Array(a) => a.first().and_then(field_bytes),
        Json::Number(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

fn field_str(obj: &serde_json::Map<String, Json>, k: &str) -> Option<String> {
    obj.get(k)
        .and_then(field_bytes)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .filter(|s| !s.is_empty())
}

/// RFC 5424 header fields must be printable ASCII without spaces.
fn header_token(s: Option<&str>, max: usize) -> String {
    match s {
        Some(s) if !s.is_empty() => s
            .chars()
            .take(max)
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .collect(),
        _ => "-".into(),
    }
}

/// One journal JSON entry → the line for the parsers, plus its cursor.
pub fn entry_to_line(json: &[u8]) -> Option<(RawLine, Option<String>)> {
    let Json::Object(obj) = serde_json::from_slice::<Json>(json).ok()? else {
        return None;
    };
    let cursor = field_str(&obj, "__CURSOR");
    let message = obj.get("MESSAGE").and_then(field_bytes).unwrap_or_default();
    let host = field_str(&obj, "_HOSTNAME");
    let ident = field_str(&obj, "SYSLOG_IDENTIFIER").or_else(|| field_str(&obj, "_COMM"));
    let pid = field_str(&obj, "_PID").or_else(|| field_str(&obj, "SYSLOG_PID"));
    let priority: u8 = field_str(&obj, "PRIORITY")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p <= 7)
        .unwrap_or(6);
    let facility: u8 = field_str(&obj, "SYSLOG_FACILITY")
        .and_then(|f| f.parse().ok())
        .filter(|f| *f <= 23)
        .unwrap_or(if ident.as_deref() == Some("kernel") {
            0
        } else {
            3
        });
    let ts: Option<DateTime<Utc>> = field_str(&obj, "__REALTIME_TIMESTAMP")
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_micros);
    let mut data = format!(
        "<{}>1 {} {} {} {} - - ",
        u16::from(facility) * 8 + u16::from(priority),
        ts.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
            .unwrap_or_else(|| "-".into()),
        header_token(host.as_deref(), 255),
        header_token(ident.as_deref(), 48),
        header_token(pid.as_deref(), 128),
    )
    .into_bytes();
    data.extend_from_slice(&message);
    let mut extra: Vec<(&'static str, Value)> = Vec::new();
    if let Some(h) = host {
        extra.push(("host.name", Value::from(h)));
    }
    if let Some(i) = ident {
        extra.push(("process.name", Value::from(i)));
    }
    if let Some(p) = pid.and_then(|p| p.parse::<i64>().ok()) {
        extra.push(("process.pid", Value::Int(p)));
    }
    extra.push(("log.syslog.severity.code", Value::Int(i64::from(priority))));
    extra.push(("log.syslog.facility.code", Value::Int(i64::from(facility))));
    if let Some(u) = field_str(&obj, "_SYSTEMD_UNIT") {
        extra.push(("systemd.unit", Value::from(u)));
    }
    Some((
        RawLine {
            data,
            truncated: false,
            peer: None,
            timestamp: ts,
            extra,
        },
        cursor,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_entry_becomes_a_5424_line_with_fields() {
        let entry = br#"{"__CURSOR":"s=abc;i=1","__REALTIME_TIMESTAMP":"1767261600123456","_HOSTNAME":"web1","SYSLOG_IDENTIFIER":"sshd","_PID":"4242","PRIORITY":"6","SYSLOG_FACILITY":"10","MESSAGE":"Accepted password for bob from 203.0.113.9 port 50022 ssh2","_SYSTEMD_UNIT":"ssh.service"}"#;
        let (line, cursor) = entry_to_line(entry).expect("entry");
        assert_eq!(cursor.as_deref(), Some("s=abc;i=1"));
        let text = String::from_utf8(line.data).expect("utf8");
        assert_eq!(
            text,
            "<86>1 2026-01-01T10:00:00.123456Z web1 sshd 4242 - - Accepted password for bob from 203.0.113.9 port 50022 ssh2"
        );
        assert_eq!(
            line.timestamp.map(|t| t.timestamp_micros()),
            Some(1767261600123456)
        );
        assert!(line.extra.contains(&("process.pid", Value::Int(4242))));
        assert!(line.extra.contains(&("host.name", Value::from("web1"))));
    }

    #[test]
    fn binary_message_and_missing_fields() {
        let entry = br#"{"__CURSOR":"c","MESSAGE":[104,105,255]}"#;
        let (line, _) = entry_to_line(entry).expect("entry");
        assert!(line.data.starts_with(b"<30>1 - - - - - - hi"));
        assert_eq!(line.data.last(), Some(&255));
        assert!(entry_to_line(b"not json").is_none());
    }
}
