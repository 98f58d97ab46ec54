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
use crate::tls::Served;

/// State shared between a connection's I/O wrapper and its request handler.
#[derive(Debug)]
pub struct ConnShared {
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's IP as `X-Forwarded-For` writes it.
    pub peer_ip: PeerIp,
    pub(super) in_flight: AtomicUsize,
    /// Requests started on this connection so far (a request answered
    /// before the reader could see it in flight still ends a busy phase).
    pub(super) started: AtomicU64,
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
    /// HTTP/2 requests cancelled by the client while their backend
    /// exchange was under way (see [`ConnShared::exchange_started`]).
    cancels: Mutex<CancelBudget>,
    /// Set once the client cancelled more than its budget: the next read
    /// fails and the connection closes.
    pub(super) cancel_flood: AtomicBool,
    /// Set once the client's side ended (EOF, an error): the requests
    /// dropped then were not cancelled one by one.
    ended: AtomicBool,
    /// The TLS session, on the HTTPS listener.
    pub tls: Option<TlsConn>,
}

/// What a TLS connection's handshake settled.
#[derive(Debug)]
pub struct TlsConn {
    /// The certificate it was given (a request for a host it does not
    /// cover gets `421`).
    pub served: Arc<Served>,
    /// `TLSv1_3` or `TLSv1_2`.
    pub version: &'static str,
}

/// Cancelled exchanges an HTTP/2 connection may have in a burst (each may
/// cost a backend connection: hyper closes one whose request was
/// abandoned), and how many more it earns per second. A browser that
/// navigates away cancels a page's worth, a map scrolled fast a few dozen
/// a second; a rapid-reset attack thousands a second.
const CANCEL_BURST: f64 = 100.0;
const CANCEL_REFILL_PER_SEC: f64 = 50.0;

#[derive(Debug)]
struct CancelBudget {
    left: f64,
    at: Instant,
}

impl CancelBudget {
    /// Spend one cancellation; `false` once the budget is exhausted.
    fn spend(&mut self, now: Instant) -> bool {
        let earned = now.duration_since(self.at).as_secs_f64() * CANCEL_REFILL_PER_SEC;
        self.left = (self.left + earned).min(CANCEL_BURST) - 1.0;
        self.at = now;
        self.left >= 0.0
    }
}

impl ConnShared {
    /// The state of a connection just accepted from `peer`.
    pub fn new(peer: SocketAddr) -> Self {
        ConnShared {
            peer,
            peer_ip: PeerIp::new(peer.ip()),
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            verdicts: Arc::default(),
            refused: OnceLock::new(),
            parked_reader: Mutex::default(),
            h2: AtomicBool::new(false),
            waiting: Mutex::default(),
            next_body: AtomicU64::new(0),
            cancels: Mutex::new(CancelBudget {
                left: CANCEL_BURST,
                at: Instant::now(),
            }),
            cancel_flood: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            tls: None,
        }
    }

    /// The state of a connection whose TLS handshake settled `tls`.
    pub fn with_tls(mut self, tls: TlsConn) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The client's side of the connection ended.
    pub(super) fn mark_ended(&self) {
        self.ended.store(true, Ordering::Release);
    }

    /// Whether the connection speaks HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.h2.load(Ordering::Relaxed)
    }

    /// A backend exchange starts for an HTTP/2 request: if the client
    /// cancels the stream before [`Exchange::done`] (called when the
    /// response body ends, or the exchange fails), that counts against the
    /// connection's cancel budget, and the connection closes once it is
    /// spent (the paced rapid reset: each cancelled exchange can cost a
    /// backend connection). Cancels after the client's side ended do not
    /// count. `None` on HTTP/1, where a cancel closes the connection anyway.
    pub fn exchange_started(self: &Arc<Self>) -> Option<Exchange> {
        self.is_h2().then(|| Exchange(Some(Arc::clone(self))))
    }

    fn cancelled(&self) {
        if self.ended.load(Ordering::Acquire) {
            return;
        }
        let spent = !self
            .cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spend(Instant::now());
        if spent && !self.cancel_flood.swap(true, Ordering::AcqRel) {
            // Debug: an attacker would choose the rate of an INFO line.
            tracing::debug!(peer = %self.peer, "closing an HTTP/2 connection that cancelled too many requests in flight");
            self.wake_reader();
        }
    }

    /// Whether the client cancelled more requests than its budget.
    pub fn cancel_flood(&self) -> bool {
        self.cancel_flood.load(Ordering::Acquire)
    }

    /// Mark a request as started; the returned guard ends it when dropped
    /// (after the response body has been sent or abandoned).
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Ordering::AcqRel);
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

/// An HTTP/2 request's backend exchange under way (see
/// [`ConnShared::exchange_started`]); dropped without [`Exchange::done`]
/// means the client cancelled it.
#[derive(Debug)]
pub struct Exchange(Option<Arc<ConnShared>>);

impl Exchange {
    /// The exchange ended (with a response or an error): not a cancel.
    pub fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            conn.cancelled();
        }
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
