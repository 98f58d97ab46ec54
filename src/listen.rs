//! Accepting connections under a bound, for every listener (proxy, admin,
//! metrics): a connection slot first (more clients wait in the listen
//! backlog), then the connection; accept errors such as `EMFILE` back off
//! instead of spinning.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// An accepted connection and the slot it holds until dropped.
pub struct Accepted {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub slot: OwnedSemaphorePermit,
}

/// The next connection on `listener` (`TCP_NODELAY` set) once one of
/// `slots` is free; `None` once `shutdown` fires.
pub async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> Option<Accepted> {
    let slot = tokio::select! {
        slot = Arc::clone(slots).acquire_owned() => slot.expect("the semaphore is never closed"),
        () = shutdown.cancelled() => return None,
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return Some(Accepted { stream, peer, slot });
                }
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = shutdown.cancelled() => return None,
        }
    }
}
