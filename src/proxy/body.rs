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
use super::client_io::InFlight;
use super::upstream::{BoxError, UpstreamBody};

pin_project_lite::pin_project! {
    /// A response body sent to a client. It keeps its request counted as in
    /// flight (so the connection's idle deadline does not run) until hyper
    /// has sent the last byte or dropped it.
    pub struct ResponseBody {
        #[pin]
        inner: UpstreamBody,
        _in_flight: Option<InFlight>,
        completion: Completion,
    }
}

impl ResponseBody {
    /// Wrap `inner`, holding `in_flight` and `completion` (the backend's
    /// count of requests in flight, byte counts, the access-log line) until
    /// the body is done.
    pub fn new(inner: UpstreamBody, in_flight: Option<InFlight>, completion: Completion) -> Self {
        ResponseBody {
            inner,
            _in_flight: in_flight,
            completion,
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
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.completion.bytes_out += data.len() as u64;
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
