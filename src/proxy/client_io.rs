//! The client socket as hyper sees it, with our deadlines and head checks.
//!
//! Why a wrapper: hyper's own `header_read_timeout` also runs while a
//! keep-alive connection waits for its next request (so it cannot be both a
//! 10 s header timeout and a 60 s idle timeout), and hyper-util's auto builder
//! reads the HTTP/2 preface with no timeout at all. Here one deadline is armed
//! whenever a read is pending and no request is in flight:
//!
//! | phase | deadline |
//! | --- | --- |
//! | connection accepted, or part of a request head read | `header_read` from the first byte / accept |
//! | idle between requests | `idle` from the end of the last response |
//! | a request in flight | none (the backend timeouts apply) |
//!
//! and, for writes, one more: a client that accepts no byte of what we
//! write for `send_idle` is disconnected, so a reader that stalls cannot
//! pin a response (and its backend connection) forever. Over HTTP/2 a
//! client can also stall a response by granting no flow-control window:
//! then nothing is even written. So an HTTP/2 response body that hyper has
//! not come back to for `send_idle` (it waits for window) fails the
//! connection too ([`ConnShared::body_waiting`]).
//!
//! A missed deadline ends the connection (like nginx, no `408` is sent).
//! For HTTP/1 the wrapper also hands every byte it reads to a
//! [`Tracker`], which checks every request head on the connection, since
//! hyper hides ambiguous framing (see [`super::framing`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub use super::conn::{BodyWaiting, ConnShared, InFlight};
use super::proxy_protocol::{self, Refused};
use super::stall::Stall;
use super::tracker::Tracker;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An idle HTTP/1 connection rests (see [`super::rest`]) after this long:
/// a client sending its next request at once (a busy keep-alive
/// connection) keeps its hyper connection, and the buffers go only when
/// the connection is really idle.
pub const REST_AFTER: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Sniffing,
    Http1,
    Http2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head since `Instant`.
    Head(Instant),
    /// Idle since `Instant`.
    Idle(Instant),
    Busy,
}

/// Timeouts applied by [`ClientIo`].
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    pub header_read: Duration,
    pub idle: Duration,
    /// A pending write (the client reads nothing) for this long fails.
    pub send_idle: Duration,
    /// Largest head scanned for framing problems (hyper refuses larger ones).
    pub max_head: usize,
    /// Close the connection if it starts with a PROXY protocol header (the
    /// peer is not a trusted balancer).
    pub refuse_proxy_header: bool,
}

/// A client stream with phase deadlines and HTTP/1 head checks.
pub struct ClientIo<T> {
    inner: T,
    shared: Arc<ConnShared>,
    deadlines: Deadlines,
    protocol: Protocol,
    phase: Phase,
    sniffed: Vec<u8>,
    /// Follows HTTP/1 heads and bodies (dropped once HTTP/2 is seen).
    tracker: Option<Tracker>,
    timer: Option<Pin<Box<Sleep>>>,
    timer_at: Option<Instant>,
    /// Armed while a write is pending (`send_idle`).
    write_stall: Stall,
    /// The first bytes, while they may still be a PROXY protocol header
    /// that this peer may not send.
    guard: Option<Vec<u8>>,
    /// An idle HTTP/1 connection may rest (see [`super::rest`]).
    may_rest: bool,
    /// Resting: hyper was told the stream ended so that it lets go of its
    /// buffers; the socket itself stays open.
    resting: bool,
    /// Requests started on the connection when the phase was last looked at.
    started_seen: u64,
}

impl<T> ClientIo<T> {
    /// Wrap a freshly accepted stream.
    pub fn new(inner: T, shared: Arc<ConnShared>, deadlines: Deadlines) -> Self {
        let tracker = Tracker::new(deadlines.max_head, Arc::clone(&shared.verdicts));
        ClientIo {
            inner,
            shared,
            deadlines,
            protocol: Protocol::Sniffing,
            phase: Phase::Head(Instant::now()),
            sniffed: Vec::new(),
            tracker: Some(tracker),
            timer: None,
            timer_at: None,
            write_stall: Stall::new(deadlines.send_idle),
            guard: deadlines.refuse_proxy_header.then(Vec::new),
            may_rest: false,
            resting: false,
            started_seen: 0,
        }
    }

    /// Let this connection rest when idle: hyper's connection is then ended
    /// (its buffers freed) while the socket stays open for the next one.
    pub fn resting_when_idle(mut self) -> Self {
        self.may_rest = true;
        self
    }

    /// Whether hyper let go of this stream to rest, not because it ended.
    pub fn resting(&self) -> bool {
        self.resting
    }

    /// The stream goes back to a fresh hyper connection.
    pub fn resume(&mut self) {
        self.resting = false;
    }

    /// When a resting connection has been idle too long.
    pub fn idle_deadline(&self) -> Instant {
        match self.phase {
            Phase::Idle(since) => since + self.deadlines.idle,
            Phase::Head(since) => since + self.deadlines.header_read,
            Phase::Busy => Instant::now() + self.deadlines.idle,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Since when this connection could rest: HTTP/1, no request in
    /// flight, nothing of the next one read.
    fn could_rest(&mut self) -> Option<Instant> {
        let Phase::Idle(since) = self.phase else {
            return None;
        };
        let quiet = self.may_rest
            && self.protocol == Protocol::Http1
            && self.guard.is_none()
            && !self.shared.busy()
            && self.tracker.as_mut().is_some_and(Tracker::at_rest);
        quiet.then_some(since)
    }

    /// hyper lets go of this connection: what only a working connection
    /// needs is given back.
    fn start_resting(&mut self) {
        self.resting = true;
        self.timer = None;
        self.timer_at = None;
        self.sniffed = Vec::new();
        self.write_stall.release();
    }

    /// Update the phase from the shared in-flight count.
    fn refresh_phase(&mut self) {
        // A request answered at once (a redirect, a 404, an ACME answer)
        // may start and end between two reads: it ends the phase too.
        let started = self.shared.started.load(Ordering::Acquire);
        let ended_unseen = started != self.started_seen;
        self.started_seen = started;
        match (self.shared.busy(), self.phase) {
            (true, _) => self.phase = Phase::Busy,
            (false, Phase::Busy) => self.phase = Phase::Idle(Instant::now()),
            (false, _) if ended_unseen => self.phase = Phase::Idle(Instant::now()),
            (false, _) => {}
        }
    }

    /// Whether the first bytes are a PROXY protocol header this peer may
    /// not send (then the connection is refused).
    fn forbidden_header(&mut self, bytes: &[u8]) -> bool {
        let Some(seen) = &mut self.guard else {
            return false;
        };
        seen.extend_from_slice(&bytes[..bytes.len().min(12 - seen.len())]);
        if seen.starts_with(b"PROXY ")
            || seen.len() == 12 && proxy_protocol::starts_with_header(seen)
        {
            let _ = self.shared.refused.set(Refused::Untrusted);
            return true;
        }
        if !proxy_protocol::starts_with_header(seen) || seen.len() == 12 {
            self.guard = None;
        }
        false
    }

    fn on_bytes(&mut self, bytes: &[u8]) {
        if self.protocol == Protocol::Sniffing {
            let want = H2_PREFACE.len() - self.sniffed.len();
            self.sniffed
                .extend_from_slice(&bytes[..bytes.len().min(want)]);
            if !H2_PREFACE.starts_with(&self.sniffed) {
                self.protocol = Protocol::Http1;
            } else if self.sniffed.len() == H2_PREFACE.len() {
                self.protocol = Protocol::Http2;
                self.shared.h2.store(true, Ordering::Relaxed);
                self.tracker = None;
            }
        }
        if let Some(tracker) = &mut self.tracker {
            tracker.feed(bytes);
        }
        if let Phase::Idle(_) = self.phase {
            if self.protocol != Protocol::Http2 {
                self.phase = Phase::Head(Instant::now());
            }
        }
    }

    /// The deadline for a pending read, if one applies now.
    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Busy if self.protocol == Protocol::Http2 => self
                .shared
                .oldest_waiting()
                .map(|since| since + self.deadlines.send_idle),
            Phase::Busy => None,
            // An HTTP/2 connection with no stream open is idle, whatever
            // control frames (PING, SETTINGS) arrive.
            Phase::Head(since) | Phase::Idle(since) if self.protocol == Protocol::Http2 => {
                Some(since + self.deadlines.idle)
            }
            Phase::Head(since) => Some(since + self.deadlines.header_read),
            Phase::Idle(since) => Some(since + self.deadlines.idle),
        }
    }

    /// Leave the task's waker where [`ConnShared::wake_reader`] finds it.
    fn park(&self, cx: &Context<'_>) {
        let mut parked = self
            .shared
            .parked_reader
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !parked.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *parked = Some(cx.waker().clone());
        }
    }

    /// Poll the armed deadline; `Ready` means it passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>, at: Instant) -> Poll<()> {
        if self.timer_at != Some(at) {
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(at),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            self.timer_at = Some(at);
        }
        match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ClientIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.shared.cancel_flood() {
            return cancel_flood();
        }
        this.refresh_phase();
        let before = buf.filled().len();
        let room = buf.remaining() > 0;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = &buf.filled()[before..];
                if this.forbidden_header(filled) {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        Refused::Untrusted,
                    )));
                }
                if !filled.is_empty() {
                    this.on_bytes(filled);
                } else if room {
                    // End of file.
                    this.shared.mark_ended();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                this.shared.mark_ended();
                Poll::Ready(Err(e))
            }
            Poll::Pending => {
                let at = match this.could_rest() {
                    Some(since) if since.elapsed() >= REST_AFTER => {
                        // An end of stream to hyper: it ends the connection
                        // cleanly (between requests) and drops its buffers.
                        this.start_resting();
                        return Poll::Ready(Ok(()));
                    }
                    // Wake up when it may rest (or its idle time is over).
                    Some(since) => Some((since + REST_AFTER).min(since + this.deadlines.idle)),
                    None => this.deadline(),
                };
                // Parked reads are woken when the connection turns idle (to
                // arm its deadline, or rest: also after a request that
                // started and ended while this read was pending, such as
                // one the proxy answered itself) and, on HTTP/2, when the
                // client has cancelled too many requests.
                this.park(cx);
                if this.shared.cancel_flood() {
                    return cancel_flood();
                }
                let Some(at) = at else {
                    // The last request may have ended between the phase check and parking.
                    if !this.shared.busy() {
                        cx.waker().wake_by_ref();
                    }
                    return Poll::Pending;
                };
                match this.poll_deadline(cx, at) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client deadline passed",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

fn cancel_flood<T>() -> Poll<io::Result<T>> {
    Poll::Ready(Err(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the client cancelled too many requests in flight",
    )))
}

fn send_timed_out<T>() -> Poll<io::Result<T>> {
    Poll::Ready(Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "client accepted nothing for send_idle",
    )))
}

impl<T> ClientIo<T> {
    /// A write's outcome, after the send-idle deadline and noting an error.
    fn written<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if self.write_stall.passed(cx, polled.is_pending()) {
            self.shared.mark_ended();
            return send_timed_out();
        }
        if let Poll::Ready(Err(_)) = &polled {
            self.shared.mark_ended();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ClientIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.written(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.written(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.written(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.resting {
            // hyper ends its connection; the socket stays open.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
