//! The JSON the admin API reads and writes, with its OpenAPI schemas.
//! Request types reject unknown fields; values are checked by the handlers.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::routing::{Backend, BackendState};
use crate::store::{BackendRecord, ChangeRecord};

/// `active` takes new keys; `draining` gets none (requests on it finish).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Active,
    Draining,
}

impl From<State> for BackendState {
    fn from(state: State) -> Self {
        match state {
            State::Active => BackendState::Active,
            State::Draining => BackendState::Draining,
        }
    }
}

impl From<BackendState> for State {
    fn from(state: BackendState) -> Self {
        match state {
            BackendState::Active => State::Active,
            BackendState::Draining => State::Draining,
        }
    }
}

/// Result of health checking (`unknown` until a check has run).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Up,
    Down,
    Unknown,
}

/// A backend of the pool.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct BackendView {
    #[schema(example = "1")]
    pub id: String,
    /// Canonical `host:port`.
    #[schema(example = "10.0.0.7:8000")]
    pub address: String,
    #[schema(minimum = 1, maximum = 1000)]
    pub weight: u32,
    pub state: State,
    pub health: Health,
    /// RFC 3339.
    #[schema(example = "2026-11-25T08:00:00Z")]
    pub created_at: String,
}

impl BackendView {
    /// A stored backend with its current health.
    pub fn new(record: &BackendRecord, health: &crate::health::Health) -> Self {
        BackendView {
            id: record.id.to_string(),
            address: record.address.to_string(),
            weight: record.weight,
            state: record.state.into(),
            health: health.state(&record.address).into(),
            created_at: record.created_at.clone(),
        }
    }
}

impl From<crate::health::HealthState> for Health {
    fn from(state: crate::health::HealthState) -> Self {
        match state {
            crate::health::HealthState::Unknown => Health::Unknown,
            crate::health::HealthState::Up => Health::Up,
            crate::health::HealthState::Down => Health::Down,
        }
    }
}

/// The whole pool at one generation.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackendList {
    /// Bumped by every change.
    pub generation: u64,
    pub backends: Vec<BackendView>,
}

/// `host:port`: IPv4, `[IPv6]` or a DNS name; port 1–65535.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Address(pub String);

const HEX4: &str = "[0-9A-Fa-f]{1,4}";

/// The address syntax as a regular expression for the OpenAPI schema
/// (IPv6 without embedded IPv4; DNS labels of 1–63 letters, digits, `-`).
fn address_pattern() -> String {
    let h = HEX4;
    let ipv6 = [
        format!("({h}:){{7}}{h}"),
        format!("({h}:){{1,7}}:"),
        format!("({h}:){{1,6}}:{h}"),
        format!("({h}:){{1,5}}(:{h}){{1,2}}"),
        format!("({h}:){{1,4}}(:{h}){{1,3}}"),
        format!("({h}:){{1,3}}(:{h}){{1,4}}"),
        format!("({h}:){{1,2}}(:{h}){{1,5}}"),
        format!("{h}:(:{h}){{1,6}}"),
        format!(":((:{h}){{1,7}}|:)"),
    ]
    .join("|");
    let label = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    let port =
        "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
    format!(r"^(\[({ipv6})\]|{label}(\.{label})*):{port}$")
}

impl utoipa::PartialSchema for Address {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "`host:port`: IPv4, `[IPv6]` or a DNS name; port 1–65535.",
            ))
            .pattern(Some(address_pattern()))
            // A DNS name has at most 253 characters.
            .max_length(Some(255))
            .examples(["10.0.0.7:8000"])
            .into()
    }
}

impl utoipa::ToSchema for Address {}

/// `POST /api/v1/backends`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBackend {
    pub address: Address,
    /// 1–1000 (default 1).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(value_type = u32, minimum = 1, maximum = 1000, nullable = false)]
    pub weight: Option<u32>,
}

/// `PATCH /api/v1/backends/{id}`: at least one field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub state: Option<State>,
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(value_type = u32, minimum = 1, maximum = 1000, nullable = false)]
    pub weight: Option<u32>,
}

/// One backend of a `PUT /api/v1/backends` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WantedBackend {
    pub address: Address,
    /// 1–1000 (default 1).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(value_type = u32, minimum = 1, maximum = 1000, nullable = false)]
    pub weight: Option<u32>,
    /// Default `active`.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub state: Option<State>,
}

/// A weight as JSON Schema sees an integer: `3` and `3.0` alike; `null`
/// is refused (leave the field out instead). Values past `u32` saturate so
/// the range check names them; fractions and negatives are refused here.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let number = serde_json::Number::deserialize(d)?;
    let whole = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => n,
        (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 => f.min(u64::MAX as f64) as u64,
        _ => {
            return Err(serde::de::Error::custom(format!(
                "weight {number} is not a whole number from 1 to 1000"
            )))
        }
    };
    Ok(Some(u32::try_from(whole).unwrap_or(u32::MAX)))
}

/// An optional field that, when present, must not be `null`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `PUT /api/v1/backends`: the whole new pool.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replacement {
    pub backends: Vec<WantedBackend>,
}

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

/// A backend as the live routing snapshot has it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteBackend {
    pub id: String,
    pub address: String,
    pub weight: u32,
    pub state: State,
}

impl From<&Backend> for RouteBackend {
    fn from(backend: &Backend) -> Self {
        RouteBackend {
            id: backend.id.clone(),
            address: backend.address.to_string(),
            weight: backend.weight,
            state: backend.state.into(),
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
    /// The backend that gets the request; `null` when no backend is active.
    pub backend: Option<RouteBackend>,
    /// Every active backend in failover order (the first is `backend`).
    pub candidates: Vec<RouteBackend>,
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
    pub in_flight: i64,
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
    /// RFC 3339.
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
    /// Since when (RFC 3339; absent when reachable).
    #[serde(skip_serializing_if = "Option::is_none")]
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
