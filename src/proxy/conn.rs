//! What a client connection's I/O wrapper ([`super::client_io::ClientIo`])
//! and its requests share: the peer, the requests in flight, the tracker's
//! verdicts, and the HTTP/2 response bodies waiting for window.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Waker;

use tokio::time::Instant;

use super::framing::FramingError;
use super::headers::PeerIp;
use super::proxy_protocol::Refused;
use super::tracker::{Verdict, Verdicts};

/// State shared between a connection's I/O wrapper and its request handler.
#[derive(Debug)]
pub struct ConnShared {
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's IP as `X-Forwarded-For` writes it.
    pub peer_ip: PeerIp,
    pub(super) in_flight: AtomicUsize,
    pub(super) verdicts: Arc<Verdicts>,
    /// Why the wrapper closed the connection, if it did.
    pub(super) refused: OnceLock<Refused>,
    /// The read that was left pending while busy: woken when the connection
    /// turns idle so that the idle deadline gets armed.
    pub(super) parked_reader: Mutex<Option<Waker>>,
    /// Whether the connection speaks HTTP/2.
    pub(super) h2: AtomicBool,
    /// HTTP/2 response bodies waiting for hyper to poll them (for window),
    /// with since when.
    pub(super) waiting: Mutex<Vec<(u64, Instant)>>,
    pub(super) next_body: AtomicU64,
}

impl ConnShared {
    /// The state of a connection just accepted from `peer`.
    pub fn new(peer: SocketAddr) -> Self {
        ConnShared {
            peer,
            peer_ip: PeerIp::new(peer.ip()),
            in_flight: AtomicUsize::new(0),
            verdicts: Arc::default(),
            refused: OnceLock::new(),
            parked_reader: Mutex::default(),
            h2: AtomicBool::new(false),
            waiting: Mutex::default(),
            next_body: AtomicU64::new(0),
        }
    }

    /// Mark a request as started; the returned guard ends it when dropped
    /// (after the response body has been sent or abandoned).
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// What the tracker found about the HTTP/1 request now starting
    /// (`Unchecked` if it could not follow the stream up to it).
    pub fn take_verdict(&self) -> Result<Arc<Verdict>, FramingError> {
        self.verdicts.take()
    }

    /// Why the connection was refused before HTTP, if it was.
    pub fn refused(&self) -> Option<Refused> {
        self.refused.get().copied()
    }

    pub(super) fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// An HTTP/2 response body now waits for hyper to poll it; `None` on
    /// HTTP/1 (where a stalled reader shows as a pending write). Dropping
    /// the guard ends the wait.
    pub fn body_waiting(self: &Arc<Self>) -> Option<BodyWaiting> {
        if !self.h2.load(Ordering::Relaxed) {
            return None;
        }
        let id = self.next_body.fetch_add(1, Ordering::Relaxed);
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.push((id, Instant::now()));
        if waiting.len() == 1 {
            drop(waiting);
            // The read side may be parked without a deadline.
            self.wake_reader();
        }
        Some(BodyWaiting {
            conn: Arc::clone(self),
            id,
        })
    }

    /// Wake the read left pending while busy, so that it re-arms its deadline.
    pub(super) fn wake_reader(&self) {
        let parked = self
            .parked_reader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(waker) = parked {
            waker.wake();
        }
    }

    /// Since when the longest-waiting HTTP/2 response body has waited.
    pub(super) fn oldest_waiting(&self) -> Option<Instant> {
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.iter().map(|&(_, since)| since).min()
    }
}

/// An HTTP/2 response body waiting for hyper (see [`ConnShared::body_waiting`]).
#[derive(Debug)]
pub struct BodyWaiting {
    conn: Arc<ConnShared>,
    id: u64,
}

impl Drop for BodyWaiting {
    fn drop(&mut self) {
        self.conn
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|&(id, _)| id != self.id);
    }
}

/// Keeps a request counted as in flight until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<ConnShared>);

impl InFlight {
    /// The connection the request is on.
    pub fn conn(&self) -> &Arc<ConnShared> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.wake_reader();
        }
    }
}
