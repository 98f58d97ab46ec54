//! Body wrappers for the two directions of a proxied exchange.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use tokio::sync::oneshot;

use super::client_io::InFlight;
use super::upstream::{BoxError, UpstreamBody};
use crate::telemetry::BackendInFlight;

pin_project_lite::pin_project! {
    /// A response body sent to a client. It keeps its request counted as in
    /// flight (so the connection's idle deadline does not run) until hyper
    /// has sent the last byte or dropped it.
    pub struct ResponseBody {
        #[pin]
        inner: UpstreamBody,
        _in_flight: Option<InFlight>,
        _backend: Option<BackendInFlight>,
    }
}

impl ResponseBody {
    /// Wrap `inner`, holding `in_flight` (and the backend's count of
    /// requests in flight) until the body is done.
    pub fn new(
        inner: UpstreamBody,
        in_flight: Option<InFlight>,
        backend: Option<BackendInFlight>,
    ) -> Self {
        ResponseBody {
            inner,
            _in_flight: in_flight,
            _backend: backend,
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
        self.project().inner.poll_frame(cx)
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
    }
}

impl<B> SentSignal<B> {
    /// Wrap `inner`; the receiver resolves (with `Ok` or `Err`) once the
    /// body has ended or been dropped.
    pub fn new(inner: B) -> (Self, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (
            SentSignal {
                inner,
                done: Some(tx),
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
