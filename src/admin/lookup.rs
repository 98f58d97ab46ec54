//! Read-only calls: route lookup (the proxy's own key code on the live
//! snapshot), the change log, `/healthz` and `/readyz`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, Request, StatusCode};
use axum::Json;
use std::time::SystemTime;

use super::error::{ApiError, ErrorBody, ErrorCode};
use super::model::{
    ChangeList, ChangesQuery, Health, Healthz, Readyz, Route, RouteBackend, RouteCertificate,
    RouteQuery,
};
use super::AdminState;
use crate::routing::{request_host_of, routing_key_of, KeyError};
use crate::tls::Served;

/// Which backend a request for `host` and `path` reaches now, and the
/// failover order behind it.
#[utoipa::path(get, path = "/api/v1/route", tag = "routing", operation_id = "look_up_route",
    params(RouteQuery),
    responses((status = 200, body = Route),
        (status = 400, description = "`missing_host`, `invalid_host`, `invalid_path`, `invalid_request`, `invalid_reload_domain` or `invalid_query`", body = ErrorBody)))]
pub async fn route(
    State(state): State<AdminState>,
    query: Result<Query<RouteQuery>, QueryRejection>,
) -> Result<Json<Route>, ApiError> {
    let Query(query) = query?;
    let host = query.host.filter(|h| !h.is_empty()).ok_or_else(|| {
        ApiError::invalid(ErrorCode::MissingHost, "give the request's host: ?host=...")
    })?;
    let path = query.path.unwrap_or_else(|| "/".to_owned());
    if !path.starts_with('/') {
        return Err(ApiError::invalid(
            ErrorCode::InvalidPath,
            "the path must start with /",
        ));
    }
    // Build the request the proxy would see and ask the proxy's phase 1.
    let request = Request::builder()
        .uri(path.as_str())
        .header(header::HOST, host.as_str())
        .body(())
        .map_err(|_| {
            ApiError::invalid(
                ErrorCode::InvalidRequest,
                "the host or path contains characters a request cannot carry",
            )
        })?;
    let (key, rule) =
        routing_key_of(&request, &state.settings.load().reload_scope).map_err(|e| {
            let code = match e {
                KeyError::InvalidReloadDomain => ErrorCode::InvalidReloadDomain,
                _ => ErrorCode::InvalidHost,
            };
            ApiError::invalid(code, e.to_string())
        })?;
    let snapshot = state.pool.load();
    let candidates: Vec<RouteBackend> = snapshot
        .candidates(&key, usize::MAX)
        .into_iter()
        .map(|b| RouteBackend::new(b, &state.health))
        .collect();
    // What the proxy would do now (without taking a down backend's trial).
    let backend = candidates
        .iter()
        .find(|c| c.health != Health::Down)
        .or(candidates.first())
        .cloned();
    // The name a browser sends as SNI is the request's host, whatever the path.
    let certificate = request_host_of(&request).ok().and_then(|host| {
        let certificates = state.certificates.certificates().load();
        let (served, missed) = certificates.choose(Some(host.as_str()));
        served.map(|served| RouteCertificate::new(served, missed))
    });
    Ok(Json(Route {
        key: key.as_str().to_owned(),
        rule: rule.as_str().to_owned(),
        generation: snapshot.generation(),
        backend,
        candidates,
        certificate,
    }))
}

impl RouteCertificate {
    fn new(served: &Served, by_default: bool) -> Self {
        RouteCertificate {
            id: served.id.clone(),
            domains: served.names.iter().map(ToString::to_string).collect(),
            matched: if by_default { "default" } else { "name" }.to_owned(),
            not_after: super::model::unix_rfc3339(served.not_after),
        }
    }
}

/// The newest membership changes, newest first.
#[utoipa::path(get, path = "/api/v1/changes", tag = "backends", operation_id = "list_changes",
    params(ChangesQuery),
    responses((status = 200, body = ChangeList),
        (status = 400, description = "`invalid_query`: a limit outside 1–1000", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody)))]
pub async fn changes(
    State(state): State<AdminState>,
    query: Result<Query<ChangesQuery>, QueryRejection>,
) -> Result<Json<ChangeList>, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(
            ErrorCode::InvalidQuery,
            "limit must be from 1 to 1000",
        ));
    }
    let changes = state.store.recent_changes(limit).await?;
    Ok(Json(ChangeList {
        changes: changes.into_iter().map(Into::into).collect(),
    }))
}

/// `200` while switchyard is serving (no token needed).
#[utoipa::path(get, path = "/healthz", tag = "observability", operation_id = "healthz", security(()),
    responses((status = 200, body = Healthz)))]
pub async fn healthz(State(state): State<AdminState>) -> Json<Healthz> {
    Json(Healthz {
        status: "serving".to_owned(),
        generation: state.pool.load().generation(),
    })
}

/// `200` when the membership database is reachable and this node follows
/// its changes; `503` (`degraded`) when not, or when a stored certificate
/// cannot be served here (its key sealed with another storage key). A degraded node still routes,
/// on its last membership; admin writes answer `503` until it recovers.
/// No token needed (for load balancers and orchestrators).
#[utoipa::path(get, path = "/readyz", tag = "observability", operation_id = "readyz", security(()),
    responses((status = 200, description = "Ready", body = Readyz),
        (status = 503, description = "Degraded: routing on the last membership, the database cannot be reached; or a stored certificate cannot be served by this node", body = Readyz)))]
pub async fn readyz(State(state): State<AdminState>) -> (StatusCode, Json<Readyz>) {
    let ping = tokio::time::timeout(READY_PING_TIMEOUT, state.store.generation()).await;
    let problem = match ping {
        Ok(Ok(_)) => state.db.problem(),
        Ok(Err(err)) => Some((SystemTime::now(), err.to_string())),
        Err(_) => Some((
            SystemTime::now(),
            "the database did not answer in time".to_owned(),
        )),
    };
    let generation = state.pool.load().generation();
    let unservable = state
        .certificates
        .entries()
        .iter()
        .filter(|e| e.loaded.is_err())
        .count();
    if problem.is_none() && unservable > 0 {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readyz {
                status: "degraded".to_owned(),
                database: "reachable".to_owned(),
                reason: Some(format!(
                    "{unservable} stored certificate(s) cannot be served by this node \
                     (see GET /api/v1/certificates: problem); their names fail here"
                )),
                since: None,
                generation,
            }),
        );
    }
    let (status, body) = match problem {
        None => (
            StatusCode::OK,
            Readyz {
                status: "ready".to_owned(),
                database: "reachable".to_owned(),
                reason: None,
                since: None,
                generation,
            },
        ),
        Some((since, reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Readyz {
                status: "degraded".to_owned(),
                database: "unreachable".to_owned(),
                reason: Some(reason),
                since: Some(humantime::format_rfc3339_seconds(since).to_string()),
                generation,
            },
        ),
    };
    (status, Json(body))
}

/// How long `/readyz` waits for the database.
const READY_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
