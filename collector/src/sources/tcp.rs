//! `type = "tcp"` and `type = "tls"`: syslog over TCP, plain or TLS.

use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::{TcpSourceConfig, TlsSourceConfig};
use crate::pipeline::{Pipeline, SourceInfo};
use crate::sources::framing::Framing;
use crate::sources::stream;
use qalqan_core::parse::Parser;

/// A bound TCP syslog source, ready to serve.
pub struct TcpSource {
    pub(crate) listener: TcpListener,
    pub(crate) source: Arc<SourceInfo>,
    pub(crate) max_frame: usize,
    pub(crate) max_connections: usize,
    pub(crate) tls: Option<(TlsAcceptor, Duration)>,
}

impl TcpSource {
    pub async fn bind(
        id: &str,
        cfg: &TcpSourceConfig,
        parser: Option<Parser>,
    ) -> anyhow::Result<TcpSource> {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| anyhow::anyhow!("sources.{id}.listen {}: cannot bind: {e}", cfg.listen))?;
        Ok(TcpSource {
            listener,
            source: SourceInfo::new(id, "tcp", parser),
            max_frame: cfg.max_frame_bytes as usize,
            max_connections: cfg.max_connections,
            tls: None,
        })
    }

    pub async fn bind_tls(
        id: &str,
        cfg: &TlsSourceConfig,
        parser: Option<Parser>,
    ) -> anyhow::Result<TcpSource> {
        let acceptor = tls_acceptor(id, cfg)?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| anyhow::anyhow!("sources.{id}.listen {}: cannot bind: {e}", cfg.listen))?;
        Ok(TcpSource {
            listener,
            source: SourceInfo::new(id, "tls", parser),
            max_frame: cfg.max_frame_bytes as usize,
            max_connections: cfg.max_connections,
            tls: Some((acceptor, cfg.handshake_timeout)),
        })
    }

    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Accepts connections until `cancel`, then waits for open connections
    /// to hand over what they have read.
    pub async fn run(self, pipeline: Arc<Pipeline>, cancel: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let mut conns = tokio::task::JoinSet::new();
        let gauge = pipeline
            .metrics()
            .connections
            .with_label_values(&[&self.source.id]);
        loop {
            // Hold back accepting while every slot is taken.
            let permit = tokio::select! {
                _ = cancel.cancelled() => break,
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                a = self.listener.accept() => a,
            };
            let (sock, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(source = %self.source.id, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = sock.set_nodelay(true);
            let source = self.source.clone();
            let pipeline = pipeline.clone();
            let cancel = cancel.clone();
            let max_frame = self.max_frame;
            let tls = self.tls.clone();
            let gauge = gauge.clone();
            conns.spawn(async move {
                let _permit = permit;
                gauge.inc();
                match tls {
                    None => {
                        stream::serve(sock, peer, source, Framing::Auto, max_frame, pipeline, cancel)
                            .await
                    }
                    Some((acceptor, timeout)) => {
                        match tokio::time::timeout(timeout, acceptor.accept(sock)).await {
                            Ok(Ok(tls)) => {
                                stream::serve(
                                    tls, peer, source, Framing::Auto, max_frame, pipeline, cancel,
                                )
                                .await
                            }
                            Ok(Err(e)) => {
                                tracing::warn!(source = %source.id, %peer, "TLS handshake failed: {e}")
                            }
                            Err(_) => {
                                tracing::warn!(source = %source.id, %peer, "TLS handshake timed out")
                            }
                        }
                    }
                }
                gauge.dec();
            });
            while conns.try_join_next().is_some() {}
        }
        while conns.join_next().await.is_some() {}
    }
}

fn read_pem(
    id: &str,
    key: &str,
    path: &std::path::Path,
) -> anyhow::Result<BufReader<std::fs::File>> {
    let f = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("sources.{id}.{key} {}: {e}", path.display()))?;
    Ok(BufReader::new(f))
}

/// Builds the rustls server config: certificate chain and key, and client
/// certificate verification against `client_ca` when configured.
pub fn tls_acceptor(id: &str, cfg: &TlsSourceConfig) -> anyhow::Result<TlsAcceptor> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut read_pem(id, "cert", &cfg.cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("sources.{id}.cert {}: not PEM: {e}", cfg.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "sources.{id}.cert {}: no certificate found; use a PEM file with the server certificate (and chain)",
            cfg.cert.display()
        );
    }
    let key = rustls_pemfile::private_key(&mut read_pem(id, "key", &cfg.key)?)
        .map_err(|e| anyhow::anyhow!("sources.{id}.key {}: not PEM: {e}", cfg.key.display()))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "sources.{id}.key {}: no private key found (PKCS#8, PKCS#1 or SEC1 PEM)",
                cfg.key.display()
            )
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS setup: {e}"))?;
    let builder = match &cfg.client_ca {
        Some(ca_path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut read_pem(id, "client_ca", ca_path)?) {
                let cert = cert.map_err(|e| {
                    anyhow::anyhow!("sources.{id}.client_ca {}: not PEM: {e}", ca_path.display())
                })?;
                roots.add(cert).map_err(|e| {
                    anyhow::anyhow!("sources.{id}.client_ca {}: {e}", ca_path.display())
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = if cfg.require_client_cert {
                verifier.build()
            } else {
                verifier.allow_unauthenticated().build()
            }
            .map_err(|e| anyhow::anyhow!("sources.{id}.client_ca: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("sources.{id}.key: does not match the certificate: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
