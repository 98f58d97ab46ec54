//! The end of a request: body byte counts go to the backend's counters and,
//! when the access log is on (and the request is sampled), one line goes to
//! the `switchyard::access` tracing target, written when the response body
//! is done so that it has the bytes and the full duration.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use http::{Method, StatusCode};

use crate::telemetry::BackendInFlight;

/// What the access log says about one request (filled in as phases run).
#[derive(Debug)]
pub struct AccessRecord {
    pub started: Instant,
    pub client: SocketAddr,
    pub method: Method,
    pub host: String,
    pub path: String,
    pub key: String,
    pub rule: &'static str,
    pub backend: String,
    pub status: StatusCode,
}

/// Held by the response body; on drop (body sent or abandoned) it counts
/// the bytes and writes the access-log line.
#[derive(Debug, Default)]
pub struct Completion {
    pub backend: Option<BackendInFlight>,
    /// Request body bytes sent to the backend (counted by the request body).
    pub bytes_in: Option<Arc<AtomicU64>>,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    pub access: Option<Box<AccessRecord>>,
}

impl Drop for Completion {
    fn drop(&mut self) {
        let bytes_in = self.bytes_in.as_ref().map_or(0, |b| b.load(Relaxed));
        if let Some(backend) = &self.backend {
            backend.add_bytes(bytes_in, self.bytes_out);
        }
        if let Some(r) = self.access.take() {
            tracing::info!(
                target: "switchyard::access",
                client = %r.client,
                method = %r.method,
                host = %r.host,
                path = %r.path,
                key = %r.key,
                rule = r.rule,
                backend = %r.backend,
                status = r.status.as_u16(),
                bytes_in,
                bytes_out = self.bytes_out,
                duration_ms = r.started.elapsed().as_secs_f64() * 1000.0,
            );
        }
    }
}

/// Exact-rate sampling without randomness: request `n` is logged when
/// `floor((n + 1) * rate)` passes an integer.
#[derive(Debug, Default)]
pub struct Sampler {
    seen: AtomicU64,
}

impl Sampler {
    /// Whether this request is logged at `rate` (0.0–1.0).
    pub fn sample(&self, rate: f64) -> bool {
        if rate >= 1.0 {
            return true;
        }
        let n = self.seen.fetch_add(1, Relaxed) as f64;
        ((n + 1.0) * rate).floor() > (n * rate).floor()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_logs_exactly_the_rate() {
        let sampler = Sampler::default();
        let logged = (0..1000).filter(|_| sampler.sample(0.1)).count();
        assert_eq!(logged, 100);
        assert!((0..10).all(|_| sampler.sample(1.0)));
    }
}
