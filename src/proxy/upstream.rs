//! Connections to backends: HTTP/1.1 with a keep-alive pool per address.
//!
//! Why not hyper-util's legacy `Client`: failover needs the request back when
//! a connection to the first candidate cannot be made, and the legacy client
//! consumes it. Here connecting ([`Upstreams::checkout`]) and sending are
//! separate steps, so the untouched request goes to the next candidate.
//!
//! Idle connections are kept per backend address (at most
//! [`MAX_IDLE_PER_BACKEND`]), dropped after `backend_idle` seconds or as soon
//! as the backend closes them, and returned to the pool only once hyper says
//! the previous exchange is complete (and never when its response framing was
//! ambiguous). Each connection counts the bytes it received, so that a
//! request is only ever resent when nothing of a response arrived. A
//! response head larger than `limits.max_header_bytes` is refused (`502`).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use super::on_read::OnRead;
use crate::config::SharedSettings;
use crate::health::Fault;
use crate::routing::BackendAddr;

/// Boxed error of proxied bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Body of requests sent to backends.
pub type UpstreamBody = BoxBody<Bytes, BoxError>;
/// The request side of an HTTP/1.1 connection to one backend.
pub type Sender = http1::SendRequest<UpstreamBody>;

/// A connection to one backend: where requests go, and how many bytes of
/// responses it has received so far.
pub struct Conn {
    pub sender: Sender,
    received: Arc<AtomicU64>,
}

impl Conn {
    /// Bytes received on this connection so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// Idle connections kept per backend address.
pub const MAX_IDLE_PER_BACKEND: usize = 256;

/// Why no connection to a backend could be made (nothing was sent).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect timed out")]
    Timeout,
    #[error("connect failed: {0}")]
    Io(#[from] io::Error),
    #[error("HTTP handshake failed: {0}")]
    Handshake(#[from] hyper::Error),
}

impl ConnectError {
    /// The backend's fault this failure is evidence of.
    pub fn fault(&self) -> Fault {
        match self {
            ConnectError::Timeout => Fault::ConnectTimeout,
            ConnectError::Io(err) => Fault::of_connect(err),
            ConnectError::Handshake(_) => Fault::ClosedEarly,
        }
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// The pool of backend connections of one worker, shared by its client
/// connections. (Per worker so that a connection is only ever polled by
/// the thread that reads and writes it.)
pub struct Upstreams {
    idle: Mutex<HashMap<BackendAddr, Vec<Idle>>>,
    /// Connect and idle timeouts are read from here (a reload changes them).
    settings: SharedSettings,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams").finish_non_exhaustive()
    }
}

/// A connection checked out of the pool.
pub struct Checkout {
    /// Send the request with this.
    pub conn: Conn,
    /// Whether it was reused from the pool (vs. freshly connected).
    pub reused: bool,
}

impl Upstreams {
    /// An empty pool whose timeouts follow `settings`.
    pub fn new(settings: SharedSettings) -> Self {
        Upstreams {
            idle: Mutex::new(HashMap::new()),
            settings,
        }
    }

    fn backend_idle_timeout(&self) -> Duration {
        self.settings.load().backend_idle_timeout
    }

    /// An idle connection to `addr` if one is usable, else a new one.
    pub async fn checkout(&self, addr: &BackendAddr) -> Result<Checkout, ConnectError> {
        if let Some(conn) = self.take_idle(addr) {
            return Ok(Checkout { conn, reused: true });
        }
        Ok(Checkout {
            conn: self.connect(addr).await?,
            reused: false,
        })
    }

    fn take_idle(&self, addr: &BackendAddr) -> Option<Conn> {
        let now = Instant::now();
        let idle_timeout = self.backend_idle_timeout();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(addr)?;
        // Newest first: the most recently used connection is the least likely
        // to have been closed by the backend's own idle timeout.
        while let Some(idle) = list.pop() {
            if now.duration_since(idle.since) < idle_timeout && idle.conn.sender.is_ready() {
                return Some(idle.conn);
            }
        }
        None
    }

    /// Open a new connection (TCP_NODELAY, bounded by the connect timeout).
    pub async fn connect(&self, addr: &BackendAddr) -> Result<Conn, ConnectError> {
        let (limit, max_head, recv_buffer) = {
            let settings = self.settings.load();
            (
                settings.connect_timeout,
                settings.max_header_bytes,
                settings.backend_recv_buffer,
            )
        };
        let stream = tokio::time::timeout(limit, connect_tcp(addr, recv_buffer))
            .await
            .map_err(|_| ConnectError::Timeout)??;
        stream.set_nodelay(true)?;
        let received = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&received);
        let counted = OnRead::new(stream, move |n| {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        });
        let (sender, conn) = http1::Builder::new()
            // A larger response head is an error (502), however it arrives.
            .max_header_size(max_head)
            .max_buf_size(max_head.max(8192))
            .handshake(TokioIo::new(counted))
            .await?;
        tokio::spawn(async move {
            if let Err(err) = conn.with_upgrades().await {
                tracing::debug!(%err, "backend connection ended with an error");
            }
        });
        Ok(Conn { sender, received })
    }

    /// Lend `sender` to the response being streamed: it returns to the pool
    /// when the [`Lease`] is dropped (the response body is done).
    pub fn lease(self: &Arc<Self>, addr: BackendAddr, conn: Conn) -> Lease {
        Lease {
            pool: Arc::clone(self),
            addr,
            conn: Some(conn),
        }
    }

    fn put_idle(&self, addr: BackendAddr, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_BACKEND {
            list.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Drop idle connections that expired or were closed by their backend.
    pub fn reap(&self) {
        let now = Instant::now();
        let idle_timeout = self.backend_idle_timeout();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|_, list| {
            list.retain(|c| {
                now.duration_since(c.since) < idle_timeout && !c.conn.sender.is_closed()
            });
            !list.is_empty()
        });
    }
}

/// A TCP connection to the first of `addr`'s addresses that accepts one,
/// with `recv_buffer` as its `SO_RCVBUF` (set before connecting, so that
/// the window scale fits it).
async fn connect_tcp(addr: &BackendAddr, recv_buffer: Option<u32>) -> io::Result<TcpStream> {
    let mut last = None;
    for ip in tokio::net::lookup_host((addr.host(), addr.port())).await? {
        // An address family the host lacks (IPv6 disabled) is one failed
        // address: the next one is tried.
        let connected = async {
            let socket = match ip {
                std::net::SocketAddr::V4(_) => TcpSocket::new_v4()?,
                std::net::SocketAddr::V6(_) => TcpSocket::new_v6()?,
            };
            if let Some(size) = recv_buffer {
                socket.set_recv_buffer_size(size)?;
            }
            socket.connect(ip).await
        }
        .await;
        match connected {
            Ok(stream) => return Ok(stream),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}

/// A backend connection lent to one response; dropping it (when the
/// response body is done or abandoned) returns the connection to the pool
/// once hyper says its exchange is complete.
///
/// Usually the connection is ready by then (hyper finished reading the
/// response before handing over its end), so it goes straight back; if not
/// (a body abandoned midway, or the read still finishing), a small task
/// waits for it and drops it if the backend closes it instead.
pub struct Lease {
    pool: Arc<Upstreams>,
    addr: BackendAddr,
    conn: Option<Conn>,
}

impl Lease {
    /// Close the connection instead of returning it to the pool.
    pub fn discard(&mut self) {
        self.conn = None;
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let addr = self.addr.clone();
        if conn.sender.is_ready() {
            self.pool.put_idle(addr, conn);
            return;
        }
        if conn.sender.is_closed() {
            return;
        }
        let pool = Arc::clone(&self.pool);
        tokio::spawn(async move {
            if conn.sender.ready().await.is_ok() {
                pool.put_idle(addr, conn);
            }
        });
    }
}
