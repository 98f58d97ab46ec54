//! Upgraded connections (WebSocket and the like): bytes copied both ways
//! between the client and the backend after a `101`, until either side
//! closes, the backend's drain times out, or no byte has moved either way
//! for `timeouts.tunnel_idle`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client_io::InFlight;
use super::on_read::OnRead;
use crate::telemetry::BackendInFlight;

/// Copy bytes both ways between an upgraded client and backend connection.
/// `_open` keeps the tunnel counted on its client connection and backend;
/// `closing` ends it when the backend's drain times out.
pub async fn tunnel(
    client: OnUpgrade,
    backend: OnUpgrade,
    _open: (InFlight, BackendInFlight),
    closing: CancellationToken,
    idle: Duration,
) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(err) => {
            tracing::debug!(%err, "upgrade did not complete");
            return;
        }
    };
    let clock = Activity::default();
    let mut client = watched(TokioIo::new(client), &clock);
    let mut backend = watched(TokioIo::new(backend), &clock);
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut backend) => {
            if let Err(err) = copied {
                tracing::debug!(%err, "tunnel ended with an error");
            }
        }
        () = clock.idle_for(idle) => tracing::debug!(?idle, "tunnel closed: idle"),
        () = closing.cancelled() => tracing::info!("tunnel closed: its backend's drain timed out"),
    }
}

/// When a byte last moved, in ms after `start`.
#[derive(Clone)]
struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: Arc::default(),
        }
    }
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Relaxed);
    }

    /// Resolves once nothing has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Relaxed));
            tokio::time::sleep_until(last + idle).await;
            if Instant::now()
                >= self.start + Duration::from_millis(self.last_ms.load(Relaxed)) + idle
            {
                return;
            }
        }
    }
}

/// `inner`, noting every byte it reads in `clock` (what the tunnel writes
/// on one side it has read on the other).
fn watched<T>(inner: T, clock: &Activity) -> OnRead<T, impl FnMut(usize) + Unpin> {
    let clock = clock.clone();
    OnRead::new(inner, move |_| clock.touch())
}
