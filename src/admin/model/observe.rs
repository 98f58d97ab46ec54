//! The JSON of read-only calls: route lookup, stats and their history, the
//! change log, `/healthz` and `/readyz`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Health, State};
use crate::routing::Backend;
use crate::store::ChangeRecord;

/// `GET /api/v1/route` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RouteQuery {
    /// The request's `Host` (any case, optional port).
    #[param(required = true, min_length = 1, example = "IronHand.example")]
    pub host: Option<String>,
    /// The request path (default `/`), e.g. `/user/fred/webapps/www.foo.com/reload`.
    #[param(pattern = "^/", example = "/user/fred/webapps/IronHand.example/reload")]
    pub path: Option<String>,
}

/// A backend as the live routing snapshot has it, with its health now.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RouteBackend {
    pub id: String,
    pub address: String,
    pub weight: u32,
    pub state: State,
    /// A `down` candidate is skipped (see `backend`).
    pub health: Health,
}

impl RouteBackend {
    pub fn new(backend: &Backend, health: &crate::health::Health) -> Self {
        RouteBackend {
            id: backend.id.clone(),
            address: backend.address.to_string(),
            weight: backend.weight,
            state: backend.state.into(),
            health: health.state(&backend.address).into(),
        }
    }
}

/// Which backend a request would reach, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct Route {
    /// The normalized routing key.
    #[schema(example = "ironhand.example")]
    pub key: String,
    /// `host` or `reload`.
    #[schema(example = "reload")]
    pub rule: String,
    /// Generation of the snapshot that answered.
    pub generation: u64,
    /// The backend that gets the request now: the first candidate that is
    /// not down (the first candidate if all are); `null` when no backend
    /// is active.
    pub backend: Option<RouteBackend>,
    /// Every active backend in the key's hash order (its failover order).
    pub candidates: Vec<RouteBackend>,
    /// The certificate an HTTPS request for this host would get (chosen by
    /// the request's host, even for a reload URL); `null` when the
    /// handshake would fail (no certificate covers it and no default).
    pub certificate: Option<RouteCertificate>,
}

/// Which certificate an HTTPS handshake for a host gets.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteCertificate {
    #[schema(example = "3")]
    pub id: String,
    /// The names it covers.
    pub domains: Vec<String>,
    /// `name`: it covers the host; `default`: none does, and
    /// `tls.default_certificate` stands in (clients will refuse it for this host).
    #[schema(example = "name")]
    pub matched: String,
    /// RFC 3339.
    pub not_after: String,
}

/// Estimated upstream latency percentiles in milliseconds (`null` before
/// the first response).
#[derive(Debug, Serialize, ToSchema)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

/// Responses per status class.
#[derive(Debug, Serialize, ToSchema)]
pub struct ByClass {
    #[serde(rename = "1xx")]
    pub c1: u64,
    #[serde(rename = "2xx")]
    pub c2: u64,
    #[serde(rename = "3xx")]
    pub c3: u64,
    #[serde(rename = "4xx")]
    pub c4: u64,
    #[serde(rename = "5xx")]
    pub c5: u64,
}

/// Counters of one backend since this process started.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackendStatsView {
    pub id: String,
    pub address: String,
    pub state: State,
    /// Responses of every status.
    pub requests: u64,
    /// `5xx` responses (from the backend, or from the proxy on its behalf).
    pub errors: u64,
    /// Failed connection attempts.
    pub connect_errors: u64,
    /// Requests sent to another candidate instead (down or unreachable).
    pub failovers: u64,
    /// Requests resent on a fresh connection (keep-alive race).
    pub retries: u64,
    pub health: Health,
    /// When the backend entered its health state.
    #[schema(format = DateTime, example = "2026-11-25T08:00:05Z")]
    pub health_since: String,
    /// Why it is in that state.
    #[schema(example = "request answered: status 200")]
    pub health_reason: String,
    /// Requests sent whose response has not finished.
    pub in_flight: i64,
    /// Request body bytes sent to the backend.
    pub bytes_in: u64,
    /// Response body bytes from the backend sent to clients.
    pub bytes_out: u64,
    pub by_class: ByClass,
    pub latency_ms: Latency,
}

/// `GET /api/v1/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub generation: u64,
    pub backends: Vec<BackendStatsView>,
    /// Requests answered before a backend was chosen (bad host, no backends).
    pub unrouted: ByClass,
}

/// `GET /api/v1/stats/history`: the last five minutes, sampled by the
/// server (so a reloaded page keeps its charts).
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsHistory {
    /// Seconds between samples.
    pub interval_seconds: u64,
    pub backends: Vec<BackendHistory>,
}

/// One backend's samples, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackendHistory {
    pub id: String,
    pub address: String,
    pub samples: Vec<Sample>,
}

/// What happened in one interval.
#[derive(Debug, Serialize, ToSchema)]
pub struct Sample {
    /// The end of the interval.
    #[schema(format = DateTime, example = "2026-11-25T08:00:05Z")]
    pub at: String,
    /// Responses in the interval.
    pub requests: u64,
    /// `5xx` responses in the interval.
    pub errors: u64,
}

/// `GET /api/v1/changes` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// How many (1–1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// One entry of the membership change log.
#[derive(Debug, Serialize, ToSchema)]
pub struct Change {
    pub generation: i64,
    #[schema(format = DateTime, example = "2026-11-25T08:00:00.123Z")]
    pub at: String,
    /// `created`, `updated`, `deleted` or `replaced`.
    pub action: String,
    pub backend_id: String,
    pub address: String,
    pub detail: String,
}

impl From<ChangeRecord> for Change {
    fn from(c: ChangeRecord) -> Self {
        Change {
            generation: c.generation,
            at: c.at,
            action: c.action,
            backend_id: c.backend_id.to_string(),
            address: c.address,
            detail: c.detail,
        }
    }
}

/// `GET /api/v1/changes`: newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeList {
    pub changes: Vec<Change>,
}

/// `GET /readyz`: `200` when ready, `503` when degraded.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readyz {
    /// `ready` or `degraded` (still routing, on the last membership).
    #[schema(example = "ready")]
    pub status: String,
    /// `reachable` or `unreachable`.
    #[schema(example = "reachable")]
    pub database: String,
    /// Why the database is unreachable (absent when it is reachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Since when (absent when reachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, example = "2026-11-25T08:00:00Z")]
    pub since: Option<String>,
    /// The membership generation being routed.
    pub generation: u64,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Healthz {
    #[schema(example = "serving")]
    pub status: String,
    pub generation: u64,
}
