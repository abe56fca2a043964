//! Logging and the `/metrics` endpoint, the same for every qalqan process.

use std::future::Future;
use std::net::SocketAddr;

use prometheus::{Encoder, Registry, TextEncoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Starts `tracing` output to stderr, filtered by `RUST_LOG` (default
/// `info`). `json = true` writes one JSON object per line for log shippers.
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests, embedded use) is harmless: keep the first.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Binds `addr` and serves the registry in the Prometheus text format on
/// `GET /metrics` (and `200 ok` on `/health`) until `shutdown` completes.
/// Returns the bound address (useful with port 0) once listening.
pub async fn serve_metrics<F>(
    addr: SocketAddr,
    registry: Registry,
    shutdown: F,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)>
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    let Ok((mut stream, _)) = accepted else { continue };
                    let registry = registry.clone();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 2048];
                        let n = match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await {
                            Ok(Ok(n)) => n,
                            _ => return,
                        };
                        let head = String::from_utf8_lossy(&buf[..n]);
                        let path = head.split_whitespace().nth(1).unwrap_or("/");
                        let (status, ctype, body) = match path {
                            "/metrics" => {
                                let mut out = Vec::with_capacity(16 * 1024);
                                let enc = TextEncoder::new();
                                match enc.encode(&registry.gather(), &mut out) {
                                    Ok(()) => ("200 OK", enc.format_type().to_owned(), out),
                                    Err(e) => ("500 Internal Server Error", "text/plain".into(), e.to_string().into_bytes()),
                                }
                            }
                            "/health" | "/" => ("200 OK", "text/plain".into(), b"ok\n".to_vec()),
                            _ => ("404 Not Found", "text/plain".into(), b"not found\n".to_vec()),
                        };
                        let header = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(header.as_bytes()).await;
                        let _ = stream.write_all(&body).await;
                        let _ = stream.shutdown().await;
                    });
                }
            }
        }
    });
    Ok((local, handle))
}
