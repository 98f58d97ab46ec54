//! Idle keep-alive connections rest without hyper's buffers.
//!
//! hyper keeps a read and a write buffer (8 KiB or more each) and its
//! connection state for as long as an HTTP/1 connection lives, idle or not,
//! and has no setting to release them; a platform's edge holds hundreds of
//! thousands of idle browser connections. nginx frees its buffers when a
//! keep-alive connection goes idle; switchyard does the same above hyper:
//!
//! 1. When hyper has waited for the next request on a plain HTTP/1
//!    connection for [`REST_AFTER`](super::client_io::REST_AFTER) (0.5 s)
//!    and nothing of it has arrived (no request in flight, the tracker
//!    between messages, the socket empty), [`ClientIo`] tells hyper the
//!    stream ended. hyper ends the connection cleanly and drops its state;
//!    `ClientIo` ignores hyper's shutdown, and [`Lent`] hands the stream
//!    back to the connection's task instead of closing it.
//! 2. The task waits on the bare socket's readiness ([`wake`]), still under
//!    the idle timeout and the graceful stop.
//! 3. When bytes arrive, a fresh hyper HTTP/1 connection serves them: the
//!    parser stays hyper's, and our per-connection state (deadlines,
//!    framing tracker, counters) carries on.
//!
//! A resting connection holds the socket, `ClientIo` and the task, about 2.3
//! KiB, instead of hyper's ~20 KiB more (`bench/RESULTS.md`).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::client_io::ClientIo;
use super::prefixed::Prefixed;

/// Where a resting stream goes when hyper lets go of it (boxed: the slot
/// and the task that waits hold a pointer, not the stream's state).
pub type Home<T> = Arc<Mutex<Option<Box<ClientIo<T>>>>>;

/// A client stream lent to one hyper connection: when hyper drops it to
/// rest, it goes back [`Home`] (else it closes as usual).
pub struct Lent<T> {
    io: Option<Box<ClientIo<T>>>,
    home: Home<T>,
}

impl<T> Lent<T> {
    pub fn new(io: Box<ClientIo<T>>, home: Home<T>) -> Self {
        Lent { io: Some(io), home }
    }

    fn io(&mut self) -> io::Result<&mut ClientIo<T>> {
        // Only `drop` takes it.
        self.io
            .as_deref_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "stream gone"))
    }
}

impl<T> Drop for Lent<T> {
    fn drop(&mut self) {
        if let Some(io) = self.io.take() {
            if io.resting() {
                *self.home.lock().unwrap_or_else(|p| p.into_inner()) = Some(io);
            }
        }
    }
}

/// The stream back from its last hyper connection, if it is resting.
pub fn take_home<T>(home: &Home<T>) -> Option<Box<ClientIo<T>>> {
    home.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// Wait until a resting connection's client sends something: `false` if
/// it stayed idle past its deadline or the proxy is stopping (then it is
/// closed, as an idle connection is).
pub async fn wake(io: &ClientIo<Prefixed<TcpStream>>, stopping: &CancellationToken) -> bool {
    let deadline = io.idle_deadline();
    tokio::select! {
        // Bytes that arrived as the deadline or the stop came are served.
        biased;
        ready = io.get_ref().readable() => ready.is_ok(),
        () = tokio::time::sleep_until(deadline) => false,
        () = stopping.cancelled() => false,
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Lent<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.io() {
            Ok(io) => Pin::new(io).poll_read(cx, buf),
            Err(err) => Poll::Ready(Err(err)),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Lent<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.io() {
            Ok(io) => Pin::new(io).poll_write(cx, buf),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.io() {
            Ok(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.io() {
            Ok(io) => Pin::new(io).poll_flush(cx),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.io() {
            Ok(io) => Pin::new(io).poll_shutdown(cx),
            Err(err) => Poll::Ready(Err(err)),
        }
    }
}
