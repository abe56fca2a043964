//! A tiny HTTP endpoint that records what the `clickhouse` client sends:
//! the exact RowBinary bytes of an insert (for the chdb fixtures), and a
//! way to fail the first requests (to check that a retry re-sends the same
//! bytes). It is not a ClickHouse stand-in: the live tests use the real server.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// Path and query string (the SQL is in `query=`).
    pub target: String,
    pub body: Vec<u8>,
}

impl Request {
    /// The `query` parameter, URL-decoded.
    pub fn sql(&self) -> String {
        let q = self.target.split_once('?').map_or("", |(_, q)| q);
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "query")
            .map(|(_, v)| decode(v))
            .unwrap_or_default()
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The recording endpoint; stops with the test process.
pub struct Capture {
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Capture {
    /// Starts on a free loopback port; the first `fail_first` requests get
    /// HTTP 500 with a ClickHouse-style exception text.
    pub fn start(fail_first: usize) -> Capture {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            let mut served = 0usize;
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                serve(stream, &seen, &mut served, fail_first);
            }
        });
        Capture { url, requests }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("capture lock").clone()
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Request>>, served: &mut usize, fail_first: usize) {
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut length: Option<usize> = None;
        let mut chunked = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().ok();
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).expect("chunk size");
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                    .expect("hex chunk size");
                let mut chunk = vec![0; n + 2];
                reader.read_exact(&mut chunk).expect("chunk");
                body.extend_from_slice(&chunk[..n]);
                if n == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            reader.read_exact(&mut body).expect("body");
        }
        seen.lock()
            .expect("capture lock")
            .push(Request { target, body });
        *served += 1;
        let response = if *served <= fail_first {
            let msg = "Code: 999, e.displayText() = DB::Exception: injected failure\n";
            format!(
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nX-ClickHouse-Exception-Code: 999\r\n\r\n{msg}",
                msg.len()
            )
        } else {
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_owned()
        };
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
