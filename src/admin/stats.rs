//! Counters: per-backend stats since start, their five-minute history and
//! `/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

use super::model::{
    rfc3339, BackendHistory, BackendStatsView, ByClass, Latency, Sample, Stats, StatsHistory,
};
use super::AdminState;
use std::sync::Arc;

use crate::telemetry::{self, history, StatsSnapshot, Telemetry};

/// Per-backend counters since start: requests, errors, in flight, bytes,
/// latency, health.
#[utoipa::path(get, path = "/api/v1/stats", tag = "observability", operation_id = "get_stats",
    responses((status = 200, body = Stats)))]
pub async fn stats(State(state): State<AdminState>) -> Json<Stats> {
    let snapshot = state.pool.load();
    let backends = snapshot
        .backends()
        .iter()
        .map(|b| {
            let s = state.telemetry.backend(&b.address);
            let health = state.health.view(&b.address);
            BackendStatsView {
                id: b.id.clone(),
                address: b.address.to_string(),
                state: b.state.into(),
                requests: s.requests(),
                errors: s.errors(),
                connect_errors: s.connect_errors,
                failovers: s.failovers,
                retries: s.retries,
                health: health.state.into(),
                health_since: rfc3339(health.since),
                health_reason: health.reason,
                in_flight: s.in_flight,
                bytes_in: s.bytes_in,
                bytes_out: s.bytes_out,
                by_class: by_class(&s),
                latency_ms: Latency {
                    p50: s.latency.quantile_ms(0.5),
                    p90: s.latency.quantile_ms(0.9),
                    p99: s.latency.quantile_ms(0.99),
                },
            }
        })
        .collect();
    Json(Stats {
        generation: snapshot.generation(),
        backends,
        unrouted: by_class(&state.telemetry.unrouted()),
    })
}

fn by_class(s: &StatsSnapshot) -> ByClass {
    let [c1, c2, c3, c4, c5] = s.classes;
    ByClass { c1, c2, c3, c4, c5 }
}

/// The last five minutes per backend (requests and errors per interval),
/// sampled by the server.
#[utoipa::path(get, path = "/api/v1/stats/history", tag = "observability",
    operation_id = "get_stats_history",
    responses((status = 200, body = StatsHistory)))]
pub async fn history(State(state): State<AdminState>) -> Json<StatsHistory> {
    let snapshot = state.pool.load();
    let backends = snapshot
        .backends()
        .iter()
        .map(|b| BackendHistory {
            id: b.id.clone(),
            address: b.address.to_string(),
            samples: state
                .telemetry
                .history
                .samples(&b.address)
                .into_iter()
                .map(|s| Sample {
                    at: rfc3339(s.at),
                    requests: s.requests,
                    errors: s.errors,
                })
                .collect(),
        })
        .collect();
    Json(StatsHistory {
        interval_seconds: history::INTERVAL.as_secs(),
        backends,
    })
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "observability", operation_id = "get_metrics",
    responses((status = 200, description = "Prometheus text format (0.0.4)", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    render(&state.telemetry)
}

/// The metrics as a response.
pub fn render(telemetry: &Arc<Telemetry>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, telemetry::CONTENT_TYPE)],
        telemetry.render(),
    )
}
