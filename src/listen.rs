//! Accepting connections under a bound, for every listener (proxy, admin,
//! metrics): a connection slot first (more clients wait in the listen
//! backlog), then the connection; accept errors such as `EMFILE` back off
//! instead of spinning. [`raise_open_file_limit`] lifts the soft limit on
//! file descriptors to the hard one at start.

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

/// Raise the soft limit on open files to the hard limit (the usual soft
/// limit, 1,024, would make `accept` fail with `EMFILE` long before
/// `limits.max_connections`), and warn when even the hard limit is below
/// what `max_connections` needs: a client and a backend connection each.
/// Returns the limit in force.
pub fn raise_open_file_limit(max_connections: usize) -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = match (limit.current, limit.maximum) {
        (Some(soft), Some(hard)) if soft < hard => {
            let raised = Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => {
                    tracing::debug!(from = soft, to = hard, "open-file limit raised");
                    Some(hard)
                }
                Err(err) => {
                    tracing::warn!(%err, soft, hard, "cannot raise the open-file limit");
                    Some(soft)
                }
            }
        }
        (Some(soft), _) => Some(soft),
        (None, _) => None,
    };
    let needed = (max_connections as u64).saturating_mul(2);
    if let Some(soft) = soft.filter(|&soft| soft < needed) {
        tracing::warn!(
            limit = soft,
            needed,
            "the open-file limit is below what limits.max_connections needs \
             (two per connection); raise it (ulimit -n, LimitNOFILE=) or lower max_connections"
        );
    }
    soft
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::process::{getrlimit, Resource};

    #[test]
    fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
        let before = getrlimit(Resource::Nofile);
        let now = raise_open_file_limit(10);
        let after = getrlimit(Resource::Nofile);
        assert_eq!(after.current, before.maximum);
        assert_eq!(now, after.current);
        assert_eq!(after.maximum, before.maximum, "the hard limit is untouched");
    }
}
