//! The admin API (axum) on its own listener: membership changes, route
//! lookups, stats, `/metrics`, `/healthz`, `/readyz` and the OpenAPI description.
//!
//! - [`router`]: every route, built by one function.
//! - [`browser`]: what a web page may make a browser do: the `Host`
//!   allow-list on every route of both listeners (DNS rebinding), the
//!   `Origin` check and `Sec-Fetch-Site` on writes.
//! - [`auth`]: the bearer tokens (flag, file or generated).
//! - [`backends`]: list/create/get/patch/delete/replace; each change is
//!   committed to the [`Store`] and published to the routing snapshot before
//!   the response.
//! - [`certificates`]: upload (checked, with warnings), list, get, delete
//!   TLS certificates; applied to the certificate snapshot like backends.
//! - [`domains`]: the domains switchyard obtains certificates for over ACME.
//! - [`lookup`]: route lookup, change log, `/healthz`, `/readyz`.
//! - [`stats`]: per-backend stats, their five-minute history, `/metrics`.
//! - [`model`], [`error`], [`openapi`]: the JSON, its errors and its schema.
//! - [`ui`]: the embedded admin UI (`admin-ui/`) at `/`; it only uses the API.
//! - [`serve`]: the HTTP server of the admin and metrics listeners.

pub mod auth;
mod backends;
pub mod browser;
mod certificates;
mod domains;
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
use crate::tls::Keeper;

pub use auth::AdminToken;
pub use backends::{validate_new, validate_patch, validate_replacement};
pub use browser::{AllowedHosts, Origins};
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
    /// The names, besides IP literals and `localhost`, allowed in `Host`.
    pub hosts: Arc<AllowedHosts>,
    /// Whether the database is reachable (`/readyz`).
    pub db: Arc<DbStatus>,
    /// The certificates this node serves.
    pub certificates: Arc<Keeper>,
    /// Automatic certificates, if `acme.directory` is set.
    pub acme: Option<Arc<crate::acme::Acme>>,
}

/// The admin API: every route behind the `Host` allow-list; `/healthz`,
/// `/readyz` and the UI open, everything else behind the `Origin` and
/// `Sec-Fetch-Site` rules and then the token.
pub fn router(state: AdminState) -> Router {
    use axum::middleware::from_fn_with_state;
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
        .route(
            "/api/v1/certificates",
            get(certificates::list).post(certificates::create),
        )
        .route(
            "/api/v1/certificates/{id}",
            get(certificates::get).delete(certificates::delete),
        )
        .route("/api/v1/domains", get(domains::list).post(domains::create))
        .route(
            "/api/v1/domains/{name}",
            get(domains::get).delete(domains::delete),
        )
        .route("/api/v1/route", get(lookup::route))
        .route("/api/v1/stats", get(stats::stats))
        .route("/api/v1/stats/history", get(stats::history))
        .route("/api/v1/changes", get(lookup::changes))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/metrics", get(stats::metrics))
        .route_layer(from_fn_with_state(state.clone(), auth::require_token))
        .route_layer(from_fn_with_state(
            Arc::clone(&state.origins),
            browser::refuse_foreign_pages,
        ));
    let hosts = Arc::clone(&state.hosts);
    Router::new()
        .route("/healthz", get(lookup::healthz))
        .route("/readyz", get(lookup::readyz))
        .merge(api)
        .route("/", get(ui::asset))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        // Outermost, so it also covers the fallbacks: nothing answers a
        // request for a host that is not allowed.
        .layer(from_fn_with_state(hosts, browser::require_allowed_host))
}

/// `--metrics-listen`: `/metrics` alone, without a token (for a Prometheus
/// that should not hold a key to the admin API), behind the same `Host`
/// allow-list as the admin listener.
pub fn metrics_router(telemetry: Arc<Telemetry>, hosts: Arc<AllowedHosts>) -> Router {
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
        .layer(axum::middleware::from_fn_with_state(
            hosts,
            browser::require_allowed_host,
        ))
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
            certificates: Arc::clone(&self.certificates),
            acme: self.acme.clone(),
        }
    }
}
