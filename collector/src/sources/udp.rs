//! `type = "udp"`: syslog over UDP, one message per datagram.
//!
//! UDP cannot push back, so this source is built not to fall behind: a
//! large kernel receive buffer (SO_RCVBUF, 32 MiB by default) rides out
//! bursts, a dedicated thread drains the socket with `recvmmsg` (up to 64
//! datagrams per system call) and hands batches to parallel parse workers
//! through a queue that never makes it wait (memory, then a spool file: see
//! [`super::udp_queue`]). Every loss is counted: datagrams the kernel
//! dropped because the socket buffer overflowed (read from `/proc/net/udp`,
//! per socket), batches the queue had no room for, and batches the disk
//! buffer had no room for.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::UdpSourceConfig;
use crate::pipeline::ProcessError;
use crate::pipeline::{Batch, Pipeline, SourceInfo};
use crate::router::RouteError;
use crate::sources::udp_queue::{queue, Datagrams, QueueLimits, QueueSender};
use qalqan_core::parse::Parser;

const VLEN: usize = 64;
const MAX_DATAGRAM: usize = 65536;
const BATCH: usize = 1024;

/// A bound UDP syslog source.
pub struct UdpSource {
    socket: std::net::UdpSocket,
    source: Arc<SourceInfo>,
    workers: usize,
    limits: QueueLimits,
    /// Where the spool file goes (the collector's state directory).
    spool_dir: PathBuf,
}

impl UdpSource {
    pub fn bind(
        id: &str,
        cfg: &UdpSourceConfig,
        state_dir: &std::path::Path,
        parser: Option<Parser>,
    ) -> anyhow::Result<UdpSource> {
        let key = format!("sources.{id}.listen {}", cfg.listen);
        let socket = Socket::new(
            Domain::for_address(cfg.listen),
            Type::DGRAM,
            Some(Protocol::UDP),
        )
        .map_err(|e| anyhow::anyhow!("{key}: cannot create socket: {e}"))?;
        let want = cfg.receive_buffer as usize;
        let _ = socket.set_recv_buffer_size(want);
        let mut got = socket.recv_buffer_size().unwrap_or(0);
        // Linux reports double the requested size (bookkeeping); below the
        // request means net.core.rmem_max capped it: try the privileged way.
        if got < want {
            force_rcvbuf(&socket, want);
            got = socket.recv_buffer_size().unwrap_or(got);
        }
        if got < want {
            tracing::warn!(
                source = id,
                requested = want,
                granted = got,
                "UDP receive buffer capped by the kernel; raise net.core.rmem_max (sysctl) to avoid drops under bursts"
            );
        }
        socket
            .bind(&cfg.listen.into())
            .map_err(|e| anyhow::anyhow!("{key}: cannot bind: {e}"))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
        Ok(UdpSource {
            socket: socket.into(),
            source: SourceInfo::new(id, "udp", parser),
            workers: cfg.workers,
            limits: QueueLimits {
                memory: cfg.queue,
                spool: cfg.spool,
            },
            spool_dir: state_dir.to_path_buf(),
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }

    /// Receives until `cancel`, then processes what was already read.
    pub async fn run(self, pipeline: Arc<Pipeline>, cancel: CancellationToken) {
        let (tx, rx) = match queue(
            &self.source.id,
            &self.limits,
            &self.spool_dir,
            pipeline.metrics().clone(),
        ) {
            Ok(q) => q,
            Err(e) => {
                tracing::error!(source = %self.source.id, "UDP source not started: {e}");
                return;
            }
        };
        let rx = Arc::new(Mutex::new(rx));
        let stop = Arc::new(AtomicBool::new(false));
        let inode = socket_inode(&self.socket);
        let port = self.local_addr().map(|a| a.port()).unwrap_or(0);
        let socket = self.socket;
        let id = self.source.id.clone();
        let thread_stop = stop.clone();
        let receiver = std::thread::Builder::new()
            .name(format!("udp-{id}"))
            .spawn(move || receive_loop(&socket, &tx, &thread_stop));
        if let Err(e) = &receiver {
            tracing::error!(source = %id, "cannot start the UDP receive thread: {e}");
        }
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.workers {
            let rx = rx.clone();
            let pipeline = pipeline.clone();
            let source = self.source.clone();
            let cancel = cancel.clone();
            workers.spawn(async move {
                loop {
                    let datagrams = { rx.lock().await.next().await };
                    let Some(datagrams) = datagrams else { break };
                    let lines = datagrams.into_lines();
                    let n = lines.len() as u64;
                    let batch = Batch {
                        source: source.clone(),
                        lines,
                        file_path: None,
                        peer: None,
                        ack: None,
                    };
                    match pipeline.process(&batch, &cancel).await {
                        Ok(()) => {}
                        Err(ProcessError::Route(RouteError::BufferFull(lost))) => pipeline
                            .metrics()
                            .udp_drop(&source.id, "buffer_full", lost as u64),
                        Err(e) => {
                            tracing::error!(source = %source.id, "UDP batch dropped: {e}");
                            pipeline.metrics().udp_drop(&source.id, "error", n)
                        }
                    }
                }
            });
        }
        // Kernel drops, counted per socket.
        let metrics = pipeline.metrics().clone();
        let drops_cancel = cancel.clone();
        let source_id = self.source.id.clone();
        let drops = tokio::spawn(async move {
            let mut last = kernel_drops(inode, port).unwrap_or(0);
            loop {
                let stop = tokio::select! {
                    _ = drops_cancel.cancelled() => true,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => false,
                };
                if let Some(now) = kernel_drops(inode, port) {
                    metrics.udp_drop(&source_id, "kernel", now.saturating_sub(last));
                    last = now;
                }
                if stop {
                    break;
                }
            }
        });
        cancel.cancelled().await;
        stop.store(true, Ordering::Release);
        if let Ok(handle) = receiver {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        // The receive thread is gone and with it the queue's sender: the
        // workers finish what is queued and stop.
        while workers.join_next().await.is_some() {}
        let _ = drops.await;
    }
}

/// Runs the calling thread (only it) at nice -10, ahead of the parse
/// workers and of other processes, when allowed (RLIMIT_NICE of 30 or
/// more, as the systemd unit sets, or CAP_SYS_NICE): a reader waiting for
/// a CPU is a full kernel buffer and lost datagrams, while the work behind
/// it can wait in the queue. Returns whether it was allowed; harmless when
/// refused. The load generator's senders use it too.
pub(crate) fn raise_thread_priority() -> bool {
    // SAFETY: plain system calls on the calling thread's id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, -10) == 0
    }
}

/// Asks for the receive buffer with SO_RCVBUFFORCE (needs CAP_NET_ADMIN;
/// harmless when refused).
fn force_rcvbuf(socket: &Socket, want: usize) {
    let val = want.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: setsockopt with a valid fd, a c_int option value and its size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn socket_inode(socket: &std::net::UdpSocket) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))
        .map(|m| m.ino())
        .unwrap_or(0)
}

/// The kernel's drop counter for our socket, from `/proc/net/udp{,6}`.
fn kernel_drops(inode: u64, port: u16) -> Option<u64> {
    let want_port = format!(":{port:04X}");
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 13 {
                continue;
            }
            let matches = if inode != 0 {
                cols[9].parse::<u64>().ok() == Some(inode)
            } else {
                cols[1].ends_with(&want_port)
            };
            if matches {
                return cols[12].parse().ok();
            }
        }
    }
    None
}

fn to_socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin: &libc::sockaddr_in = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6: &libc::sockaddr_in6 =
                unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The receive thread: `recvmmsg` in a loop, batches to the workers.
fn receive_loop(socket: &std::net::UdpSocket, queue: &QueueSender, stop: &AtomicBool) {
    if !raise_thread_priority() {
        tracing::debug!("UDP receive thread keeps normal priority (RLIMIT_NICE below 30)");
    }
    let fd = socket.as_raw_fd();
    let mut bufs: Vec<Vec<u8>> = (0..VLEN).map(|_| vec![0u8; MAX_DATAGRAM]).collect();
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut addrs: Vec<libc::sockaddr_storage> =
        (0..VLEN).map(|_| unsafe { std::mem::zeroed() }).collect();
    let mut iovs: Vec<libc::iovec> = Vec::with_capacity(VLEN);
    // SAFETY: as above.
    let mut hdrs: Vec<libc::mmsghdr> = (0..VLEN).map(|_| unsafe { std::mem::zeroed() }).collect();
    for buf in bufs.iter_mut() {
        iovs.push(libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        });
    }
    let mut batch = Datagrams::default();
    while !stop.load(Ordering::Acquire) {
        for i in 0..VLEN {
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            hdrs[i].msg_len = 0;
        }
        // SAFETY: hdrs points at VLEN initialized mmsghdr whose buffers
        // (iovs → bufs, addrs) outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                VLEN as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            match err.kind() {
                std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted => {}
                _ => {
                    tracing::warn!("UDP receive failed: {err}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            if !batch.is_empty() {
                queue.push(std::mem::take(&mut batch));
            }
            continue;
        }
        let n = n as usize;
        for i in 0..n {
            let len = (hdrs[i].msg_len as usize).min(MAX_DATAGRAM);
            let mut data = &bufs[i][..len];
            while let Some(rest) = data
                .strip_suffix(b"\n")
                .or_else(|| data.strip_suffix(b"\r"))
                .or_else(|| data.strip_suffix(b"\0"))
            {
                data = rest;
            }
            if data.is_empty() {
                continue;
            }
            batch.push(
                data,
                hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                to_socket_addr(&addrs[i]),
            );
        }
        // Hand over when the batch is full or the socket is drained.
        if (batch.len() >= BATCH || n < VLEN) && !batch.is_empty() {
            queue.push(std::mem::take(&mut batch));
        }
    }
    if !batch.is_empty() {
        queue.push(batch);
    }
}
