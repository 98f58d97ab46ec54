//! What the proxy did, per backend: request counts by status class, errors,
//! requests in flight and upstream latency. The request path only touches
//! atomics (one `DashMap` lookup per request to find its backend's counters);
//! the admin API reads them for `/api/v1/stats` and `/metrics`.
//!
//! Labels are bounded: one series per backend address plus `none` for
//! requests the proxy answered before choosing a backend; never per domain.

pub mod history;
pub mod latency;
mod process;
mod prometheus;
pub mod tls;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use http::StatusCode;

use crate::health::Health;
use crate::proxy::proxy_protocol::Refused;
use crate::routing::{Backend, BackendAddr, BackendPool, Snapshot};

pub use latency::HistogramSnapshot;
pub use prometheus::CONTENT_TYPE;

/// Status classes, in label order.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Counters for one backend (or for the unrouted requests).
#[derive(Debug, Default)]
pub struct BackendStats {
    classes: [AtomicU64; 5],
    connect_errors: AtomicU64,
    failovers: AtomicU64,
    retries: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    in_flight: AtomicI64,
    latency: latency::Histogram,
}

/// A copy of one backend's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Responses per status class, in [`CLASSES`] order.
    pub classes: [u64; 5],
    /// Failed connection attempts (each may have failed over to another backend).
    pub connect_errors: u64,
    /// Requests that went to another candidate because this one was down or
    /// refused the connection.
    pub failovers: u64,
    /// Requests resent on a fresh connection (the keep-alive race).
    pub retries: u64,
    /// Request body bytes sent to the backend.
    pub bytes_in: u64,
    /// Response body bytes sent to clients.
    pub bytes_out: u64,
    pub in_flight: i64,
    /// Time from sending the request to the response head.
    pub latency: HistogramSnapshot,
}

impl StatsSnapshot {
    /// Responses of every class.
    pub fn requests(&self) -> u64 {
        self.classes.iter().sum()
    }

    /// `5xx` responses (from the backend or from the proxy on its behalf).
    pub fn errors(&self) -> u64 {
        self.classes[4]
    }
}

impl BackendStats {
    fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            classes: std::array::from_fn(|i| self.classes[i].load(Relaxed)),
            connect_errors: self.connect_errors.load(Relaxed),
            failovers: self.failovers.load(Relaxed),
            retries: self.retries.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed).max(0),
            latency: self.latency.snapshot(),
        }
    }
}

/// Counts a request as in flight on its backend until dropped (when the
/// response body is done).
#[derive(Debug)]
pub struct BackendInFlight(Arc<BackendStats>, Arc<Backend>);

impl BackendInFlight {
    /// The backend this request went to.
    pub fn address(&self) -> &BackendAddr {
        &self.1.address
    }

    /// Body bytes that went to the backend (`inbound`) or to the client.
    pub fn add_bytes(&self, inbound: u64, outbound: u64) {
        if inbound > 0 {
            self.0.bytes_in.fetch_add(inbound, Relaxed);
        }
        if outbound > 0 {
            self.0.bytes_out.fetch_add(outbound, Relaxed);
        }
    }
}

impl Drop for BackendInFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// How long requests took as their clients saw them (from the request head
/// to the end of the response body), by status class. One per worker
/// thread, so that recording touches no other thread's cache lines.
#[derive(Debug, Default)]
pub struct Durations {
    classes: [latency::Histogram; 5],
}

impl Durations {
    /// Count one request.
    pub fn observe(&self, status: StatusCode, elapsed: Duration) {
        self.classes[class_of(status)].observe(elapsed);
    }
}

fn class_of(status: StatusCode) -> usize {
    usize::from(status.as_u16() / 100).clamp(1, 5) - 1
}

/// Every backend's counters, and the pool they are reported against.
#[derive(Debug)]
pub struct Telemetry {
    backends: DashMap<BackendAddr, Arc<BackendStats>>,
    unrouted: BackendStats,
    pool: Arc<BackendPool>,
    health: Arc<Health>,
    /// Config reloads applied and refused.
    reloads: [AtomicU64; 2],
    /// Client connections open now.
    client_connections: AtomicI64,
    resting_connections: AtomicI64,
    /// Client connections closed before HTTP, by [`Refused::as_str`] reason.
    refused: [AtomicU64; 4],
    /// HTTP/2 connections closed for cancelling too many requests in flight.
    cancel_floods: AtomicU64,
    /// Every worker's request durations.
    durations: std::sync::Mutex<Vec<Arc<Durations>>>,
    /// The last five minutes, per backend.
    pub history: history::History,
    /// TLS handshakes and certificates.
    pub tls: tls::TlsStats,
}

impl Telemetry {
    /// Counters reported against `pool`'s current membership.
    pub fn new(pool: Arc<BackendPool>, health: Arc<Health>) -> Self {
        Telemetry {
            backends: DashMap::new(),
            unrouted: BackendStats::default(),
            pool,
            health,
            reloads: Default::default(),
            client_connections: AtomicI64::new(0),
            resting_connections: AtomicI64::new(0),
            refused: Default::default(),
            cancel_floods: AtomicU64::new(0),
            durations: std::sync::Mutex::default(),
            history: history::History::default(),
            tls: tls::TlsStats::default(),
        }
    }

    /// Request-duration histograms for one more worker thread.
    pub fn worker_durations(&self) -> Arc<Durations> {
        let durations = Arc::new(Durations::default());
        self.durations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&durations));
        durations
    }

    /// Request durations by status class, summed over the workers.
    pub fn durations(&self) -> [HistogramSnapshot; 5] {
        let workers = self.durations.lock().unwrap_or_else(|p| p.into_inner());
        std::array::from_fn(|class| {
            let mut sum = HistogramSnapshot::default();
            for worker in workers.iter() {
                sum.add(&worker.classes[class].snapshot());
            }
            sum
        })
    }

    /// A client connection opened (`true`) or closed.
    pub fn client_connection(&self, opened: bool) {
        self.client_connections
            .fetch_add(if opened { 1 } else { -1 }, Relaxed);
    }

    /// An idle client connection started (`true`) or stopped resting
    /// without hyper's buffers.
    pub fn resting_connection(&self, resting: bool) {
        self.resting_connections
            .fetch_add(if resting { 1 } else { -1 }, Relaxed);
    }

    /// Idle client connections resting now.
    pub fn resting_connections(&self) -> i64 {
        self.resting_connections.load(Relaxed).max(0)
    }

    /// A client connection was closed before HTTP (PROXY protocol).
    pub fn refused(&self, why: Refused) {
        self.refused[why as usize].fetch_add(1, Relaxed);
    }

    /// An HTTP/2 connection was closed for cancelling too many requests.
    pub fn cancel_flood(&self) {
        self.cancel_floods.fetch_add(1, Relaxed);
    }

    /// A config reload was applied (`true`) or refused.
    pub fn reloaded(&self, applied: bool) {
        self.reloads[usize::from(!applied)].fetch_add(1, Relaxed);
    }

    fn stats(&self, address: &BackendAddr) -> Arc<BackendStats> {
        if let Some(stats) = self.backends.get(address) {
            return Arc::clone(&stats);
        }
        Arc::clone(&self.backends.entry(address.clone()).or_default())
    }

    /// A request to `address` starts; it is in flight until the guard drops.
    pub fn start(&self, backend: &Arc<Backend>) -> BackendInFlight {
        let stats = self.stats(&backend.address);
        stats.in_flight.fetch_add(1, Relaxed);
        BackendInFlight(stats, Arc::clone(backend))
    }

    /// `address` refused or timed out a connection.
    pub fn connect_failed(&self, address: &BackendAddr) {
        self.stats(address).connect_errors.fetch_add(1, Relaxed);
    }

    /// A request meant for `address` went to another candidate.
    pub fn failed_over(&self, address: &BackendAddr) {
        self.stats(address).failovers.fetch_add(1, Relaxed);
    }

    /// A request to `address` was resent on a fresh connection.
    pub fn retried(&self, address: &BackendAddr) {
        self.stats(address).retries.fetch_add(1, Relaxed);
    }

    /// The response to one request: from `backend` (with the upstream
    /// latency when its head arrived) or from the proxy before any backend.
    pub fn finish(
        &self,
        backend: Option<&BackendInFlight>,
        status: StatusCode,
        latency: Option<Duration>,
    ) {
        let stats = match backend {
            Some(guard) => &*guard.0,
            None => &self.unrouted,
        };
        stats.classes[class_of(status)].fetch_add(1, Relaxed);
        if let Some(latency) = latency {
            stats.latency.observe(latency);
        }
    }

    /// Counters of one backend (zeros if it never served a request).
    pub fn backend(&self, address: &BackendAddr) -> StatsSnapshot {
        self.backends
            .get(address)
            .map(|s| s.snapshot())
            .unwrap_or_default()
    }

    /// Counters of requests answered before a backend was chosen.
    pub fn unrouted(&self) -> StatsSnapshot {
        self.unrouted.snapshot()
    }

    /// Forget backends that left the membership (bounds memory under churn).
    pub fn retain(&self, snapshot: &Snapshot) {
        let current: std::collections::HashSet<&BackendAddr> =
            snapshot.backends().iter().map(|b| &b.address).collect();
        self.backends.retain(|address, _| current.contains(address));
    }

    /// The pool the counters are reported against.
    pub fn pool(&self) -> &Arc<BackendPool> {
        &self.pool
    }
}
