//! The JSON of membership calls: backends, their states and health, and
//! the bodies that add, change and replace them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::routing::BackendState;
use crate::store::BackendRecord;

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

/// What the evidence says: `unknown` until an active check or a proxied
/// request says something; `up` after a passed check or an answered
/// request; `down` after failures, until a trial request or check succeeds.
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
    /// When the backend entered its health state.
    #[schema(format = DateTime, example = "2026-11-25T08:00:05Z")]
    pub health_since: String,
    /// Why it is in that state.
    #[schema(example = "3 checks failed: status 503")]
    pub health_reason: String,
    #[schema(format = DateTime, example = "2026-11-25T08:00:00Z")]
    pub created_at: String,
}

impl BackendView {
    /// A stored backend with its current health.
    pub fn new(record: &BackendRecord, health: &crate::health::Health) -> Self {
        let view = health.view(&record.address);
        BackendView {
            id: record.id.to_string(),
            address: record.address.to_string(),
            weight: record.weight,
            state: record.state.into(),
            health: view.state.into(),
            health_since: rfc3339(view.since),
            health_reason: view.reason,
            created_at: record.created_at.clone(),
        }
    }
}

/// A time as RFC 3339 (UTC, whole seconds).
pub fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
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
#[schema(example = json!({"address": "10.0.0.7:8000", "weight": 2}))]
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
#[schema(example = json!({"state": "draining"}))]
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
#[schema(example = json!({"backends": [
    {"address": "10.0.0.7:8000"},
    {"address": "10.0.0.8:8000", "weight": 3},
    {"address": "10.0.0.9:8000", "state": "draining"}]}))]
pub struct Replacement {
    pub backends: Vec<WantedBackend>,
}
