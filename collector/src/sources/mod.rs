//! Sources: where lines come from. Each source type has its own config
//! struct (see [`crate::config`]) and module; all hand [`Batch`]es to the
//! shared [`Pipeline`].
//!
//! [`Batch`]: crate::pipeline::Batch
//! [`Pipeline`]: crate::pipeline::Pipeline

pub mod checkpoint;
pub mod file;
pub mod framing;
pub mod journald;
pub mod stdin;
pub mod stream;
pub mod tcp;
pub mod udp;
pub mod udp_queue;

use std::path::Path;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ParseSection, SourceConfig};
use crate::pipeline::Pipeline;
use qalqan_core::parse::Parser;

/// A source ready to start: network sources are bound already, so a port
/// conflict fails the start instead of surfacing later.
pub enum Prepared {
    Udp(udp::UdpSource),
    Tcp(tcp::TcpSource),
    File(file::FileSource),
    Journald(journald::JournaldSource),
}

impl Prepared {
    /// Binds / checks one configured source.
    pub async fn prepare(
        id: &str,
        cfg: &SourceConfig,
        global_parse: &ParseSection,
        state_dir: &Path,
    ) -> anyhow::Result<Prepared> {
        let parser = cfg
            .parse()
            .map(|p| Parser::new(p.over(global_parse).options()));
        Ok(match cfg {
            SourceConfig::Udp(c) => Prepared::Udp(udp::UdpSource::bind(id, c, state_dir, parser)?),
            SourceConfig::Tcp(c) => Prepared::Tcp(tcp::TcpSource::bind(id, c, parser).await?),
            SourceConfig::Tls(c) => Prepared::Tcp(tcp::TcpSource::bind_tls(id, c, parser).await?),
            SourceConfig::File(c) => {
                Prepared::File(file::FileSource::new(id, c, state_dir, parser)?)
            }
            SourceConfig::Journald(c) => {
                Prepared::Journald(journald::JournaldSource::new(id, c, state_dir, parser))
            }
        })
    }

    /// The bound address of a network source (useful with port 0 in tests).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Prepared::Udp(u) => u.local_addr(),
            Prepared::Tcp(t) => t.local_addr(),
            _ => None,
        }
    }

    /// Starts the source: (reader task, optional task that persists
    /// positions once the last confirmations are in).
    pub fn start(
        self,
        pipeline: Arc<Pipeline>,
        cancel: CancellationToken,
    ) -> (JoinHandle<()>, Option<JoinHandle<()>>) {
        match self {
            Prepared::Udp(u) => (tokio::spawn(u.run(pipeline, cancel)), None),
            Prepared::Tcp(t) => (tokio::spawn(t.run(pipeline, cancel)), None),
            Prepared::File(f) => {
                let (r, c) = f.start(pipeline, cancel);
                (r, Some(c))
            }
            Prepared::Journald(j) => {
                let (r, c) = j.start(pipeline, cancel);
                (r, Some(c))
            }
        }
    }
}
