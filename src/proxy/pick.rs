//! Phase 2, pick_backend: the key's candidates in hash order, filtered by
//! health. A down backend is skipped unless this request is its trial (see
//! [`Health::admit`](crate::health::Health::admit)); when every candidate is
//! down, the first is tried anyway (better a try than a certain `503`), and
//! its outcome is evidence like a trial's.

use std::sync::Arc;

use super::error::ProxyError;
use super::Proxy;
use crate::health::Pass;
use crate::routing::{Backend, RoutingKey, Snapshot};

/// The key's first candidate that admits a request.
pub fn pick_backend(
    proxy: &Proxy,
    snapshot: &Snapshot,
    key: &RoutingKey,
) -> Result<(Arc<Backend>, Pass), ProxyError> {
    let first = snapshot.pick(key).ok_or(ProxyError::NoBackends)?;
    if let Some(pass) = proxy.health.admit(&first.address) {
        return Ok((Arc::clone(first), pass));
    }
    proxy.telemetry.failed_over(&first.address);
    let next = next_candidate(proxy, snapshot, key, std::slice::from_ref(first));
    Ok(next.unwrap_or_else(|| (Arc::clone(first), Pass::Trial)))
}

/// The key's next candidate that was not `tried` and admits a request.
pub fn next_candidate(
    proxy: &Proxy,
    snapshot: &Snapshot,
    key: &RoutingKey,
    tried: &[Arc<Backend>],
) -> Option<(Arc<Backend>, Pass)> {
    snapshot
        .candidates(key, usize::MAX)
        .into_iter()
        .filter(|b| !tried.iter().any(|t| t.address == b.address))
        .find_map(|b| Some((Arc::clone(b), proxy.health.admit(&b.address)?)))
}
