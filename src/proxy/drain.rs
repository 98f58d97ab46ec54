//! Draining: a backend set to `draining` (or removed) gets no new keys, but
//! requests and upgraded connections already on it keep going, until
//! `timeouts.drain` after the change; then they are closed.
//!
//! Each request and tunnel takes its backend's [`CancellationToken`] from
//! [`Drains`]; a watcher compares successive snapshots and cancels a
//! backend's token once it has been draining or gone for the drain timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::SharedSettings;
use crate::routing::{BackendAddr, BackendPool, BackendState};

/// How often the watcher looks at the membership.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// The close signal of every backend that has traffic.
#[derive(Debug, Default)]
pub struct Drains {
    tokens: DashMap<BackendAddr, CancellationToken>,
}

impl Drains {
    /// The token that closes `address`'s requests and tunnels when its drain times out.
    pub fn token(&self, address: &BackendAddr) -> CancellationToken {
        if let Some(token) = self.tokens.get(address) {
            return token.clone();
        }
        self.tokens.entry(address.clone()).or_default().clone()
    }

    /// Close everything still open on `address`; later requests (if it
    /// comes back) get a fresh token.
    fn close(&self, address: &BackendAddr) {
        if let Some((_, token)) = self.tokens.remove(address) {
            token.cancel();
        }
    }
}

/// Watch the membership and close drained backends' leftovers on time.
pub fn spawn_watcher(
    drains: Arc<Drains>,
    pool: Arc<BackendPool>,
    settings: SharedSettings,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Backends that stopped taking keys, and since when.
        let mut leaving: HashMap<BackendAddr, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(WATCH_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let snapshot = pool.load();
            let now = Instant::now();
            let active: std::collections::HashSet<&BackendAddr> = snapshot
                .backends()
                .iter()
                .filter(|b| b.state == BackendState::Active)
                .map(|b| &b.address)
                .collect();
            leaving.retain(|address, _| !active.contains(address));
            for entry in drains.tokens.iter() {
                if !active.contains(entry.key()) {
                    leaving.entry(entry.key().clone()).or_insert(now);
                }
            }
            let timeout = settings.load().drain_timeout;
            let due: Vec<BackendAddr> = leaving
                .iter()
                .filter(|(_, since)| now.duration_since(**since) >= timeout)
                .map(|(address, _)| address.clone())
                .collect();
            for address in due {
                tracing::info!(backend = %address, ?timeout, "drain timeout: closing its remaining requests and connections");
                drains.close(&address);
                leaving.remove(&address);
            }
        }
    })
}
