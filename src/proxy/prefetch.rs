//! The part of a request body that is already here, read before the head
//! goes to a backend.
//!
//! A request head has to go out before the rest of a streamed body can be
//! judged, so a body that turns out malformed (a bad chunk size, an HTTP/2
//! `DATA` longer than its `content-length`) would reach the backend in part.
//! What arrived together with the head can be judged first: [`prefetch`]
//! takes the frames that are ready without waiting (letting hyper's
//! connection task run a few times, since it decodes what is buffered only
//! when asked), up to [`PREFETCH_LIMIT`] bytes. A body that fails there is
//! answered `400`/`413` and nothing is forwarded; one that ends there is
//! sent whole, with its length.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::error::BodyFault;
use super::upstream::{BoxError, UpstreamBody};

/// Most bytes held back before the head goes out.
pub const PREFETCH_LIMIT: usize = 64 * 1024;

/// Rounds of letting hyper decode more without anything new arriving.
const IDLE_ROUNDS: usize = 2;

/// Read what of `body` is ready now; an error is the body's own (one over
/// `max` bytes is [`BodyFault::TooLarge`]).
pub async fn prefetch(mut body: UpstreamBody, max: Option<u64>) -> Result<UpstreamBody, BoxError> {
    let mut ready = VecDeque::new();
    let mut bytes = 0;
    let mut idle = 0;
    while bytes < PREFETCH_LIMIT && idle < IDLE_ROUNDS {
        let polled =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
        match polled {
            Poll::Ready(Some(frame)) => {
                let frame = frame?;
                bytes += frame.data_ref().map_or(0, Bytes::len);
                if max.is_some_and(|max| bytes as u64 > max) {
                    return Err(BodyFault::TooLarge.into());
                }
                ready.push_back(frame);
                idle = 0;
            }
            Poll::Ready(None) => {
                return Ok(Prefetched {
                    ready,
                    rest: None,
                    bytes: bytes as u64,
                }
                .boxed())
            }
            Poll::Pending => {
                idle += 1;
                tokio::task::yield_now().await;
            }
        }
    }
    if ready.is_empty() {
        return Ok(body);
    }
    Ok(Prefetched {
        ready,
        rest: Some(body),
        bytes: bytes as u64,
    }
    .boxed())
}

/// Frames read ahead, then the rest of the body.
struct Prefetched {
    ready: VecDeque<Frame<Bytes>>,
    rest: Option<UpstreamBody>,
    /// Data bytes still in `ready`.
    bytes: u64,
}

impl Body for Prefetched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.ready.pop_front() {
            self.bytes -= frame.data_ref().map_or(0, Bytes::len) as u64;
            return Poll::Ready(Some(Ok(frame)));
        }
        match &mut self.rest {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ready.is_empty() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.rest {
            None => SizeHint::with_exact(self.bytes),
            Some(rest) => {
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + self.bytes);
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + self.bytes);
                }
                hint
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn boxed<B>(body: B) -> UpstreamBody
    where
        B: Body<Data = Bytes, Error = BoxError> + Send + Sync + 'static,
    {
        body.boxed()
    }

    #[tokio::test]
    async fn a_body_that_is_all_here_is_sent_whole_with_its_length() {
        let body = boxed(Full::new(Bytes::from_static(b"hello")).map_err(|n| match n {}));
        let body = prefetch(body, None).await.unwrap();
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
    }

    #[tokio::test]
    async fn a_body_that_fails_with_its_head_fails_here() {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"ok"))),
            Err("bad chunk".into()),
        ];
        let body = boxed(StreamBody::new(futures_util::stream::iter(frames)));
        assert!(prefetch(body, None).await.is_err());
    }

    #[tokio::test]
    async fn a_body_still_arriving_keeps_what_came_and_streams_the_rest() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        tx.send(Ok(Frame::data(Bytes::from_static(b"first "))))
            .await
            .unwrap();
        let stream = tokio_stream_of(rx);
        let body = prefetch(boxed(StreamBody::new(stream)), None)
            .await
            .unwrap();
        tx.send(Ok(Frame::data(Bytes::from_static(b"second"))))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "first second");
    }

    fn tokio_stream_of<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> + Send + Sync {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
