//! Body wrappers for the two directions of a proxied exchange.

use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use tokio::sync::oneshot;

use super::access::Completion;
use std::future::Future;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Why a response was cut short.
const DRAINED: &str = "the backend was drained and its drain timeout passed";
use super::client_io::InFlight;
use super::upstream::{BoxError, Lease, UpstreamBody};

/// What a response body holds until it is done (sent or abandoned).
#[derive(Debug, Default)]
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
}

pin_project_lite::pin_project! {
    /// A response body sent to a client, holding its [`BodyEnds`] until
    /// hyper has sent the last byte or dropped it.
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
    }
}

impl ResponseBody {
    /// Wrap `inner`, holding `ends` until the body is done.
    pub fn new(inner: UpstreamBody, ends: BodyEnds) -> Self {
        ResponseBody {
            inner,
            _in_flight: ends.in_flight,
            completion: ends.completion,
            closing: ends.closing,
            closed: None,
            _lease: ends.lease,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if this
            .closing
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
        {
            return Poll::Ready(Some(Err(DRAINED.into())));
        }
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.completion.bytes_out += data.len() as u64;
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

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A request body sent to a backend that reports when it has been sent
    /// completely (or abandoned): the response-header timeout starts then, so
    /// a slow 100 MB upload is not mistaken for a slow backend.
    pub struct SentSignal<B> {
        #[pin]
        inner: B,
        done: Option<oneshot::Sender<()>>,
        sent: Option<Arc<AtomicU64>>,
    }
}

impl<B> SentSignal<B> {
    /// Wrap `inner`; the receiver resolves (with `Ok` or `Err`) once the
    /// body has ended or been dropped. Data bytes are added to `sent`.
    pub fn new(inner: B, sent: Option<Arc<AtomicU64>>) -> (Self, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (
            SentSignal {
                inner,
                done: Some(tx),
                sent,
            },
            rx,
        )
    }
}

impl<B: Body<Data = Bytes>> Body for SentSignal<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(sent)) = (&polled, this.sent.as_ref()) {
            if let Some(data) = frame.data_ref() {
                sent.fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
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
