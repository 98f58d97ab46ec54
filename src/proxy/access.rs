//! The end of a request: what it did ([`Trace`]), its byte counts and
//! duration for the counters, and, when the access log is on (and the
//! request is sampled), one line on the `switchyard::access` tracing target,
//! written when the response body is done so that it has the bytes and the
//! full duration.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, HeaderValue, Method, Request, StatusCode, Version};
use tokio_util::sync::CancellationToken;

use super::body::{BodyEnds, BodyProgress};
use super::client_io::InFlight;
use super::conn::Exchange;
use super::error::CLIENT_GONE;
use super::upstream::Lease;
use crate::health::Health;
use crate::routing::{Backend, BackendAddr, RoutingKey, Rule};
use crate::telemetry::{BackendInFlight, Durations, Telemetry};

/// What one request did, filled in as its phases run.
#[derive(Debug, Default)]
pub struct Trace {
    /// Whether the access log writes this request (then `key` is kept).
    pub log: bool,
    pub key: Option<(RoutingKey, Rule)>,
    /// The backend that got the request (counted in flight until the
    /// response body is done).
    pub backend: Option<BackendInFlight>,
    /// Time from sending the request to the backend's response head.
    pub upstream_latency: Option<Duration>,
    /// The request body's progress (only for requests with a body).
    pub body: Option<Arc<BodyProgress>>,
    /// The backend's drain-timeout signal.
    pub closing: Option<CancellationToken>,
    /// The backend connection, back to the pool when the body is done.
    pub lease: Option<Lease>,
    /// HTTP/2: the exchange, counted as cancelled if the client resets the
    /// stream before the response body ends.
    pub exchange: Option<Exchange>,
    /// Backends that failed this request (could not connect, or broke the
    /// exchange), in the order tried.
    pub failed: Vec<Arc<Backend>>,
    /// The down backend whose one trial this request holds, until its
    /// outcome is evidence; a request that ends without any gives it back.
    pub trial: Option<BackendAddr>,
}

/// What the access log says about one request.
#[derive(Debug)]
pub struct AccessRecord {
    pub client: SocketAddr,
    pub method: Method,
    pub version: Version,
    pub host: String,
    pub path: String,
    /// The query string without `?` (empty when there is none).
    pub query: String,
    pub user_agent: String,
    pub referer: String,
    pub request_id: String,
    pub key: String,
    pub rule: &'static str,
    pub backend: String,
    /// Backends that failed this request, comma-separated (`-` for none).
    pub failed: String,
    pub upstream: Option<Duration>,
    /// Quote the values the client chose (the text log format).
    pub quote: bool,
}

impl AccessRecord {
    /// The fields known before routing.
    pub fn of<B>(
        req: &Request<B>,
        client: SocketAddr,
        request_id: &HeaderValue,
        quote: bool,
    ) -> AccessRecord {
        let text = |name: header::HeaderName| {
            req.headers().get(name).map_or_else(
                || "-".to_owned(),
                |h| String::from_utf8_lossy(h.as_bytes()).into_owned(),
            )
        };
        let host = req
            .headers()
            .get(header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        AccessRecord {
            client,
            method: req.method().clone(),
            version: req.version(),
            host,
            path: req.uri().path().to_owned(),
            query: req.uri().query().unwrap_or_default().to_owned(),
            user_agent: text(header::USER_AGENT),
            referer: text(header::REFERER),
            request_id: String::from_utf8_lossy(request_id.as_bytes()).into_owned(),
            key: String::new(),
            rule: "-",
            backend: "-".to_owned(),
            failed: "-".to_owned(),
            upstream: None,
            quote,
        }
    }
}

/// A request until its response head is ready. If hyper drops it first
/// (its client closed the connection or reset the stream), it is still
/// counted and logged, as `499`.
pub struct Pending<'a> {
    /// Filled in by the request's phases.
    pub trace: Trace,
    started: Instant,
    telemetry: &'a Telemetry,
    health: &'a Health,
    durations: &'a Arc<Durations>,
    access: Option<AccessRecord>,
    answered: bool,
}

impl<'a> Pending<'a> {
    /// A request that started at `started`; `access` when it is logged.
    pub fn new(
        (telemetry, health): (&'a Telemetry, &'a Health),
        durations: &'a Arc<Durations>,
        started: Instant,
        access: Option<AccessRecord>,
    ) -> Self {
        let trace = Trace {
            log: access.is_some(),
            ..Trace::default()
        };
        Pending {
            trace,
            started,
            telemetry,
            health,
            durations,
            access,
            answered: false,
        }
    }

    /// The response head is ready with `status`: count it, and hand its
    /// body what it holds until it is done.
    pub fn answered(mut self, status: StatusCode, in_flight: InFlight) -> BodyEnds {
        let completion = self.finish(status);
        BodyEnds {
            in_flight: Some(in_flight),
            completion,
            closing: self.trace.closing.take(),
            lease: self.trace.lease.take(),
            exchange: self.trace.exchange.take(),
        }
    }

    fn finish(&mut self, status: StatusCode) -> Completion {
        self.answered = true;
        let trace = &mut self.trace;
        if let Some(address) = trace.trial.take() {
            self.health.release_trial(&address);
        }
        self.telemetry
            .finish(trace.backend.as_ref(), status, trace.upstream_latency);
        let access = self.access.take().map(|mut record| {
            if let Some((key, rule)) = &trace.key {
                record.key = key.as_str().to_owned();
                record.rule = rule.as_str();
            }
            if let Some(backend) = &trace.backend {
                record.backend = backend.address().to_string();
            }
            if !trace.failed.is_empty() {
                let failed: Vec<&str> = trace.failed.iter().map(|b| b.address.as_str()).collect();
                record.failed = failed.join(",");
            }
            record.upstream = trace.upstream_latency;
            Box::new(record)
        });
        Completion {
            started: self.started,
            status,
            backend: trace.backend.take(),
            body: trace.body.take(),
            bytes_out: 0,
            durations: Arc::clone(self.durations),
            access,
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.answered {
            let gone = StatusCode::from_u16(CLIENT_GONE).expect("499 is a status code");
            drop(self.finish(gone));
        }
    }
}

/// Held by the response body; on drop (body sent or abandoned) it counts
/// the bytes and the duration and writes the access-log line.
#[derive(Debug)]
pub struct Completion {
    pub started: Instant,
    pub status: StatusCode,
    pub backend: Option<BackendInFlight>,
    /// The request body's progress (bytes sent to the backend).
    pub body: Option<Arc<BodyProgress>>,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// This worker's request-duration histograms.
    pub durations: Arc<Durations>,
    pub access: Option<Box<AccessRecord>>,
}

impl Drop for Completion {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        self.durations.observe(self.status, elapsed);
        let bytes_in = self.body.as_ref().map_or(0, |b| b.bytes.load(Relaxed));
        if let Some(backend) = &self.backend {
            backend.add_bytes(bytes_in, self.bytes_out);
        }
        if let Some(r) = self.access.take() {
            tracing::info!(
                target: "switchyard::access",
                client = %r.client,
                method = %r.method,
                version = ?r.version,
                host = %Shown(&r.host, r.quote),
                // hyper admits no space or control byte in a target.
                path = %r.path,
                query = %r.query,
                user_agent = %Shown(&r.user_agent, r.quote),
                referer = %Shown(&r.referer, r.quote),
                request_id = %r.request_id,
                key = %r.key,
                rule = %r.rule,
                backend = %r.backend,
                failed = %r.failed,
                status = self.status.as_u16(),
                bytes_in,
                bytes_out = self.bytes_out,
                upstream_ms = r.upstream.map(millis),
                duration_ms = millis(elapsed),
            );
        }
    }
}

/// A value the client chose, as the access log shows it: quoted and
/// escaped (`"curl \"x\" status=200"`, `\u{1b}`) in the text format, so
/// it cannot pose as other fields or drive a terminal; as is in JSON,
/// whose encoder escapes it.
struct Shown<'a>(&'a str, bool);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.1 {
            write!(f, "{:?}", self.0)
        } else {
            f.write_str(self.0)
        }
    }
}

/// Milliseconds, rounded to the microsecond.
fn millis(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
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

    #[test]
    fn values_a_client_chose_are_quoted_in_the_text_format() {
        let forged = "curl status=200 \u{1b}[31m\u{202e}\u{85}";
        let text = Shown(forged, true).to_string();
        assert_eq!(text, r#""curl status=200 \u{1b}[31m\u{202e}\u{85}""#);
        assert_eq!(
            Shown(forged, false).to_string(),
            forged,
            "JSON escapes it itself"
        );
    }

    #[test]
    fn durations_are_rounded_to_the_microsecond() {
        assert_eq!(millis(Duration::from_nanos(1_234_567)), 1.234);
        assert_eq!(millis(Duration::from_micros(7)), 0.007);
    }
}
