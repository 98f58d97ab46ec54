//! The admin API (axum) on its own listener: membership changes, route
//! lookups, stats, `/metrics`, `/healthz`, `/readyz` and the OpenAPI description.
//!
//! - [`router`]: every route, built by one function.
//! - [`auth`]: the bearer token (flag, file or generated) and the `Origin` check.
//! - [`backends`]: list/create/get/patch/delete/replace; each change is
//!   committed to the [`Store`] and published to the routing snapshot before
//!   the response.
//! - [`lookup`]: route lookup, change log, `/healthz`, `/readyz`.
//! - [`stats`]: per-backend stats, their five-minute history, `/metrics`.
//! - [`model`], [`error`], [`openapi`]: the JSON, its errors and its schema.
//! - [`ui`]: the embedded admin UI (`admin-ui/`) at `/`; it only uses the API.
//! - [`serve`]: the HTTP server of the admin and metrics listeners.

pub mod auth;
mod backends;
pub mod error;
mod lookup;
pub mod model;
pub mod openapi;
mod server;
mod stats;
pub mod ui;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;

use crate::config::SharedSettings;
use crate::health::Health;
use crate::routing::BackendPool;
use crate::store::{Membership, Store};
use crate::sync::{DbStatus, Publisher};
use crate::telemetry::Telemetry;

pub use auth::{AdminToken, Origins};
pub use backends::{validate_new, validate_patch, validate_replacement};
use error::ApiError;
pub use server::serve;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Everything the admin handlers share.
#[derive(Clone, Debug)]
pub struct AdminState {
    pub store: Store,
    pub pool: Arc<BackendPool>,
    pub telemetry: Arc<Telemetry>,
    pub health: Arc<Health>,
    /// The running proxy settings (route lookup uses their reload rule).
    pub settings: SharedSettings,
    pub token: AdminToken,
    /// The read-only token, if configured.
    pub read_token: Option<AdminToken>,
    pub origins: Arc<Origins>,
    /// Whether the database is reachable (`/readyz`).
    pub db: Arc<DbStatus>,
}

/// The admin API: `/healthz` and `/readyz` open, everything else behind the token and
/// the `Origin` check.
pub fn router(state: AdminState) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/backends",
            get(backends::list)
                .post(backends::create)
                .put(backends::replace),
        )
        .route(
            "/api/v1/backends/{id}",
            get(backends::get)
                .patch(backends::update)
                .delete(backends::delete),
        )
        .route("/api/v1/route", get(lookup::route))
        .route("/api/v1/stats", get(stats::stats))
        .route("/api/v1/stats/history", get(stats::history))
        .route("/api/v1/changes", get(lookup::changes))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/metrics", get(stats::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(lookup::healthz))
        .route("/readyz", get(lookup::readyz))
        .merge(api)
        .route("/", get(ui::asset))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// `--metrics-listen`: `/metrics` alone, without a token (for a Prometheus
/// that should not hold a key to the admin API).
pub fn metrics_router(telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let telemetry = Arc::clone(&telemetry);
                async move { stats::render(&telemetry) }
            }),
        )
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::NotFound(format!("only /metrics is served here, not {}", uri.path()))
        })
}

/// Unknown API paths get the API's `404`; anything else may be a UI file.
async fn fallback(
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path();
    let api = path.starts_with("/api/") || path == "/api" || path == "/metrics";
    if api || (method != axum::http::Method::GET && method != axum::http::Method::HEAD) {
        return ApiError::NotFound(format!("there is no {method} {path} in the admin API"))
            .into_response();
    }
    ui::asset(uri, headers).await
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

impl AdminState {
    /// Make a committed `membership` the routing snapshot (unless a newer
    /// generation is already live: see [`Publisher::publish`]).
    pub async fn publish(&self, membership: Membership) -> Result<(), ApiError> {
        self.publisher().publish(membership).await.map_err(|err| {
            tracing::error!(%err, "committed membership cannot be published");
            ApiError::Internal
        })?;
        Ok(())
    }

    /// What publishes memberships to this node's routing snapshot.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            pool: Arc::clone(&self.pool),
            telemetry: Arc::clone(&self.telemetry),
            health: Arc::clone(&self.health),
        }
    }
}
