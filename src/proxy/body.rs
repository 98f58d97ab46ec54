//! Body wrappers for the two directions of a proxied exchange.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use tokio::sync::oneshot;

use std::future::Future;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::access::Completion;
use super::client_io::{BodyWaiting, InFlight};
use super::conn::Exchange;
use super::error::BodyFault;
use super::stall::Stall;

/// Why a response was cut short.
const DRAINED: &str = "the backend was drained and its drain timeout passed";
const STALLED: &str = "the backend sent no byte of its response body for response_body_idle";
use super::upstream::{BoxError, Lease, UpstreamBody};

/// What a response body holds until it is done (sent or abandoned).
#[derive(Debug)]
pub struct BodyEnds {
    /// Keeps the request counted as in flight on its client connection (so
    /// the connection's idle deadline does not run).
    pub in_flight: Option<InFlight>,
    /// The backend's count of requests in flight, byte counts, the access-log line.
    pub completion: Completion,
    /// The backend's drain-timeout signal: when it fires first, the body
    /// ends with an error (the client sees the connection cut).
    pub closing: Option<CancellationToken>,
    /// The backend connection, returned to the pool at the end.
    pub lease: Option<Lease>,
    /// HTTP/2: the exchange, done when the body ends (else the client
    /// cancelled it: see [`ConnShared::exchange_started`]).
    pub exchange: Option<Exchange>,
}

pin_project_lite::pin_project! {
    /// A response body sent to a client, holding its [`BodyEnds`] until
    /// hyper has sent the last byte or dropped it.
    #[project = ResponseBodyProj]
    pub struct ResponseBody {
        // Dropped first, so the backend connection has seen the end of its
        // response before the lease returns it.
        #[pin]
        inner: UpstreamBody,
        _in_flight: Option<InFlight>,
        completion: Completion,
        closing: Option<CancellationToken>,
        // The drain signal's waiter, once needed.
        closed: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
        _lease: Option<Lease>,
        // Armed while the backend has no byte for us.
        stall: Stall,
        // HTTP/2: set while hyper has not come back for the next frame.
        waiting: Option<BodyWaiting>,
        exchange: Option<Exchange>,
    }
}

impl ResponseBody {
    /// Wrap `inner`, holding `ends` until the body is done; a body that has
    /// nothing for `idle` ends with an error.
    pub fn new(inner: UpstreamBody, ends: BodyEnds, idle: Duration) -> Self {
        // hyper's HTTP/2 side waits for window before it polls at all.
        let waiting = ends
            .in_flight
            .as_ref()
            .filter(|_| !inner.is_end_stream())
            .and_then(|f| f.conn().body_waiting());
        let mut exchange = ends.exchange;
        if inner.is_end_stream() {
            done(&mut exchange);
        }
        ResponseBody {
            waiting,
            inner,
            _in_flight: ends.in_flight,
            completion: ends.completion,
            closing: ends.closing,
            closed: None,
            _lease: ends.lease,
            stall: Stall::new(idle),
            exchange,
        }
    }
}

/// The response ended on the proxy's or the backend's side: its exchange is
/// not a cancel.
fn done(exchange: &mut Option<Exchange>) {
    if let Some(exchange) = exchange.take() {
        exchange.done();
    }
}

/// How fast a client must send its request body.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// No byte for this long: cut off.
    pub idle: Duration,
    /// Fewer bytes per second of waiting than this, once the backend has
    /// waited `idle` (at most [`PACE_GRACE`]) in all: cut off (`0`: no minimum).
    pub min_rate: u64,
}

/// Longest waiting time after which `min_body_rate` applies.
pub const PACE_GRACE: Duration = Duration::from_secs(10);

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let polled = next_frame(&mut this, cx);
        // Ended (trailers are the last frame: hyper's HTTP/2 side does not
        // poll again after them), or cut off by the backend, a drain or a
        // stall: not a cancel by the client.
        let over = match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => true,
            Poll::Ready(Some(Ok(frame))) => frame.is_trailers() || this.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if over {
            done(this.exchange);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The next frame of the backend's body, unless a drain or a stall cuts it
/// off first.
fn next_frame(
    this: &mut ResponseBodyProj<'_>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    *this.waiting = None;
    if this
        .closing
        .as_ref()
        .is_some_and(CancellationToken::is_cancelled)
    {
        return Poll::Ready(Some(Err(DRAINED.into())));
    }
    let polled = this.inner.as_mut().poll_frame(cx);
    if this.stall.passed(cx, polled.is_pending()) {
        return Poll::Ready(Some(Err(STALLED.into())));
    }
    match &polled {
        Poll::Ready(Some(Ok(frame))) => {
            if let Some(data) = frame.data_ref() {
                this.completion.bytes_out += data.len() as u64;
                // hyper holds the frame until the client grants window,
                // then polls again (or, after the last one, drops us).
                *this.waiting = this
                    ._in_flight
                    .as_ref()
                    .and_then(|f| f.conn().body_waiting());
            }
        }
        Poll::Pending => {
            if let Some(token) = this.closing.as_ref() {
                let closed = this
                    .closed
                    .get_or_insert_with(|| Box::pin(token.clone().cancelled_owned()));
                if closed.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(DRAINED.into())));
                }
            }
        }
        _ => {}
    }
    polled
}

/// What became of a request body on its way to a backend: the bytes sent,
/// whether it ended, and, if the client's side of it failed, why. Read
/// after a failed exchange to tell a client's fault from the backend's.
#[derive(Debug, Default)]
pub struct BodyProgress {
    /// Data bytes sent to the backend.
    pub bytes: AtomicU64,
    ended: AtomicBool,
    fault: OnceLock<BodyFault>,
}

impl BodyProgress {
    /// Why the client's body failed, if it did.
    pub fn fault(&self) -> Option<BodyFault> {
        self.fault.get().copied()
    }

    /// Whether the whole body went out.
    pub fn ended(&self) -> bool {
        self.ended.load(Relaxed)
    }
}

pin_project_lite::pin_project! {
    /// A client's request body on its way to a backend. It reports when it
    /// has been sent completely (or abandoned), so the response-header
    /// timeout starts then and a slow 100 MB upload is not mistaken for a
    /// slow backend; it cuts off a client that sends nothing for
    /// `timeouts.body_idle` while the backend waits for more; and it records
    /// the client's failures in its [`BodyProgress`] as they pass.
    pub struct RequestBody<B> {
        #[pin]
        inner: B,
        done: Option<oneshot::Sender<()>>,
        progress: Option<Arc<BodyProgress>>,
        // Armed while the backend waits for a byte the client has not sent.
        stall: Stall,
        min_rate: u64,
        bytes: u64,
    }
}

impl<B> RequestBody<B> {
    /// Wrap `inner`; the receiver resolves (with `Ok` or `Err`) once the
    /// body has ended or been dropped.
    pub fn new(
        inner: B,
        progress: Option<Arc<BodyProgress>>,
        pace: Pace,
    ) -> (Self, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let body = RequestBody {
            inner,
            done: Some(tx),
            progress,
            stall: Stall::new(pace.idle),
            min_rate: pace.min_rate,
            bytes: 0,
        };
        (body, rx)
    }
}

impl<B: Body<Data = Bytes, Error = BoxError>> Body for RequestBody<B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let mut polled = this.inner.poll_frame(cx);
        if this.stall.passed(cx, polled.is_pending()) {
            polled = Poll::Ready(Some(Err(BodyFault::TimedOut.into())));
        }
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            *this.bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
            let waited = this.stall.waited();
            // A trickle (a byte every few seconds) never trips `idle`.
            if *this.min_rate > 0
                && waited >= this.stall.idle().min(PACE_GRACE)
                && (*this.bytes as f64) < *this.min_rate as f64 * waited.as_secs_f64()
            {
                polled = Poll::Ready(Some(Err(BodyFault::TimedOut.into())));
            }
        }
        match (&polled, this.progress.as_ref()) {
            (Poll::Ready(Some(Ok(frame))), Some(progress)) => {
                if let Some(data) = frame.data_ref() {
                    progress.bytes.fetch_add(data.len() as u64, Relaxed);
                }
            }
            (Poll::Ready(Some(Err(err))), Some(progress)) => {
                // Every error here comes from the client's side: record it
                // before hyper turns it into a failed exchange.
                let _ = progress.fault.set(BodyFault::of(&**err));
            }
            (Poll::Ready(None), Some(progress)) => progress.ended.store(true, Relaxed),
            _ => {}
        }
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            if let Some(tx) = this.done.take() {
                let _ = tx.send(());
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A short plain-text body.
pub fn text(message: impl Into<Bytes>) -> UpstreamBody {
    Full::new(message.into())
        .map_err(|never| match never {})
        .boxed()
}
