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
//! the previous exchange is complete.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::routing::BackendAddr;

/// Boxed error of proxied bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Body of requests sent to backends.
pub type UpstreamBody = BoxBody<Bytes, BoxError>;
/// A ready-to-use HTTP/1.1 connection to one backend.
pub type Sender = http1::SendRequest<UpstreamBody>;

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

struct Idle {
    sender: Sender,
    since: Instant,
}

/// The pool of backend connections, shared by every client connection.
pub struct Upstreams {
    idle: Mutex<HashMap<BackendAddr, Vec<Idle>>>,
    /// (connect timeout, idle timeout); replaced by a config reload.
    timeouts: arc_swap::ArcSwap<(Duration, Duration)>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("timeouts", &**self.timeouts.load())
            .finish_non_exhaustive()
    }
}

/// A connection checked out of the pool.
pub struct Checkout {
    /// Send the request with this.
    pub sender: Sender,
    /// Whether it was reused from the pool (vs. freshly connected).
    pub reused: bool,
}

impl Upstreams {
    /// An empty pool.
    pub fn new(connect_timeout: Duration, idle_timeout: Duration) -> Self {
        Upstreams {
            idle: Mutex::new(HashMap::new()),
            timeouts: arc_swap::ArcSwap::from_pointee((connect_timeout, idle_timeout)),
        }
    }

    /// New timeouts (a config reload); pooled connections are kept.
    pub fn set_timeouts(&self, connect_timeout: Duration, idle_timeout: Duration) {
        self.timeouts
            .store(std::sync::Arc::new((connect_timeout, idle_timeout)));
    }

    /// An idle connection to `addr` if one is usable, else a new one.
    pub async fn checkout(&self, addr: &BackendAddr) -> Result<Checkout, ConnectError> {
        if let Some(sender) = self.take_idle(addr) {
            return Ok(Checkout {
                sender,
                reused: true,
            });
        }
        Ok(Checkout {
            sender: self.connect(addr).await?,
            reused: false,
        })
    }

    fn take_idle(&self, addr: &BackendAddr) -> Option<Sender> {
        let now = Instant::now();
        let idle_timeout = self.timeouts.load().1;
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(addr)?;
        // Newest first: the most recently used connection is the least likely
        // to have been closed by the backend's own idle timeout.
        while let Some(conn) = list.pop() {
            if now.duration_since(conn.since) < idle_timeout && conn.sender.is_ready() {
                return Some(conn.sender);
            }
        }
        None
    }

    /// Open a new connection (TCP_NODELAY, bounded by the connect timeout).
    pub async fn connect(&self, addr: &BackendAddr) -> Result<Sender, ConnectError> {
        let stream = tokio::time::timeout(
            self.timeouts.load().0,
            TcpStream::connect((addr.host(), addr.port())),
        )
        .await
        .map_err(|_| ConnectError::Timeout)??;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(err) = conn.with_upgrades().await {
                tracing::debug!(%err, "backend connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Return `sender` to the pool once its current exchange has finished.
    pub fn checkin(self: &Arc<Self>, addr: BackendAddr, mut sender: Sender) {
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            if sender.ready().await.is_err() {
                return;
            }
            let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            let list = idle.entry(addr).or_default();
            if list.len() < MAX_IDLE_PER_BACKEND {
                list.push(Idle {
                    sender,
                    since: Instant::now(),
                });
            }
        });
    }

    /// Drop idle connections that expired or were closed by their backend.
    pub fn reap(&self) {
        let now = Instant::now();
        let idle_timeout = self.timeouts.load().1;
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|_, list| {
            list.retain(|c| now.duration_since(c.since) < idle_timeout && !c.sender.is_closed());
            !list.is_empty()
        });
    }
}
