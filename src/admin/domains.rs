//! Managed domains: switchyard obtains and renews their certificates over
//! ACME (`acme.directory`); add, list, get, stop managing. A change is
//! committed to the store and this node's manager is woken; other nodes
//! follow the notification.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::error::{ApiError, ErrorBody, ErrorCode, JsonBody};
use super::model::{DomainList, DomainView, NewDomain};
use super::AdminState;
use crate::acme::Acme;

/// Every managed domain, by name.
#[utoipa::path(get, path = "/api/v1/domains", tag = "certificates", operation_id = "list_domains",
    responses((status = 200, body = DomainList),
        (status = 503, description = "`store_unavailable`", body = ErrorBody)))]
pub async fn list(State(state): State<AdminState>) -> Result<Json<DomainList>, ApiError> {
    let acme = state.store.acme_state().await?;
    Ok(Json(DomainList {
        domains: acme.domains.into_iter().map(Into::into).collect(),
    }))
}

/// Manage a domain: a certificate is ordered at once and renewed before it expires.
#[utoipa::path(post, path = "/api/v1/domains", tag = "certificates", operation_id = "add_domain",
    request_body = NewDomain,
    responses(
        (status = 201, body = DomainView, headers(("Location" = String, description = "The domain's URL"))),
        (status = 400, description = "`invalid_domain`: not a host name, an IP address or a wildcard; `malformed_json`", body = ErrorBody),
        (status = 409, description = "`domain_exists`; `acme_disabled`: no acme.directory is configured", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_body`: an unknown, missing or mistyped field", body = ErrorBody),
        (status = 503, description = "`store_unavailable`: nothing was stored", body = ErrorBody)))]
pub async fn create(
    State(state): State<AdminState>,
    JsonBody(body): JsonBody<NewDomain>,
) -> Result<impl IntoResponse, ApiError> {
    let acme = enabled(&state)?;
    let name = domain_name(&body.name)?;
    let record = state.store.add_domain(&name).await?;
    // Stored: the answer is 201 even if waking the manager fails (its
    // periodic look finds the domain).
    if let Err(err) = acme.resync().await {
        tracing::warn!(domain = %name, %err, "ACME: cannot read the domains after an add");
    }
    let location = format!("/api/v1/domains/{name}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(DomainView::from(record)),
    ))
}

/// One managed domain.
#[utoipa::path(get, path = "/api/v1/domains/{name}", tag = "certificates", operation_id = "get_domain",
    params(("name" = String, Path, description = "The domain (any case)", example = "www.foo.com")),
    responses((status = 200, body = DomainView),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody)))]
pub async fn get(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<DomainView>, ApiError> {
    let name = known_name(&name)?;
    Ok(Json(state.store.domain(&name).await?.into()))
}

/// Stop managing a domain: its ACME certificate is deleted too.
#[utoipa::path(delete, path = "/api/v1/domains/{name}", tag = "certificates", operation_id = "delete_domain",
    params(("name" = String, Path, description = "The domain (any case)", example = "www.foo.com")),
    responses((status = 204, description = "No longer managed"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`: nothing was changed", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = known_name(&name)?;
    state.store.delete_domain(&name).await?;
    // Deleted: the answer is 204 even if applying it here fails now (the
    // follower or the next change applies it).
    match state.store.certificates().await {
        Ok(stored) => {
            let keeper = std::sync::Arc::clone(&state.certificates);
            let _ = tokio::task::spawn_blocking(move || keeper.apply(stored)).await;
        }
        Err(err) => {
            tracing::warn!(domain = %name, %err, "cannot read the certificates after a delete")
        }
    }
    if let Some(acme) = &state.acme {
        if let Err(err) = acme.resync().await {
            tracing::warn!(domain = %name, %err, "ACME: cannot read the domains after a delete");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

fn enabled(state: &AdminState) -> Result<&Acme, ApiError> {
    state.acme.as_deref().ok_or_else(|| {
        ApiError::Conflict(
            ErrorCode::AcmeDisabled,
            "managed domains need ACME: set acme.directory (and restart)".into(),
        )
    })
}

/// A name a certificate can be ordered for (see [`crate::acme::managed_name`]).
fn domain_name(raw: &str) -> Result<String, ApiError> {
    crate::acme::managed_name(raw)
        .map_err(|why| ApiError::invalid(ErrorCode::InvalidDomain, format!("{raw:?} {why}")))
}

/// A path's name, normalized; any name that cannot be managed is not found.
fn known_name(raw: &str) -> Result<String, ApiError> {
    domain_name(raw).map_err(|_| ApiError::NotFound(format!("{raw} is not a managed domain")))
}
