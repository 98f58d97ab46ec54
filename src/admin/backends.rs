//! Membership changes. Each handler validates the whole request first, then
//! makes one store transaction (committed before the response), then
//! publishes the committed membership to the routing snapshot.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::error::{ApiError, ErrorBody, ErrorCode, JsonBody};
use super::model::{BackendList, BackendPatch, BackendView, NewBackend, Replacement};
use super::AdminState;
use crate::health::Health;
use crate::routing::pool::MAX_WEIGHT;
use crate::routing::{BackendAddr, BackendState};
use crate::store::Membership;

/// List every backend.
#[utoipa::path(get, path = "/api/v1/backends", tag = "backends", operation_id = "list_backends",
    responses((status = 200, body = BackendList),
        (status = 503, description = "The membership database cannot be reached", body = ErrorBody)))]
pub async fn list(State(state): State<AdminState>) -> Result<Json<BackendList>, ApiError> {
    Ok(Json(list_of(
        &state.store.membership().await?,
        &state.health,
    )))
}

/// Add a backend; it takes keys as soon as the response is sent.
#[utoipa::path(post, path = "/api/v1/backends", tag = "backends", operation_id = "add_backend",
    request_body = NewBackend,
    responses(
        (status = 201, body = BackendView, headers(("Location" = String, description = "The new backend's URL"))),
        (status = 400, description = "`invalid_address`, `invalid_weight` or `malformed_json`", body = ErrorBody),
        (status = 409, description = "`duplicate_address`: the address is already in the pool", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_body`: an unknown, missing or mistyped field", body = ErrorBody),
        (status = 503, description = "`store_unavailable`: nothing was changed", body = ErrorBody)))]
pub async fn create(
    State(state): State<AdminState>,
    JsonBody(body): JsonBody<NewBackend>,
) -> Result<impl IntoResponse, ApiError> {
    let (address, weight) = validate_new(&body)?;
    let (membership, record) = state.store.create(&address, weight).await?;
    state.publish(membership).await?;
    let location = format!("/api/v1/backends/{}", record.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(BackendView::new(&record, &state.health)),
    ))
}

/// One backend.
#[utoipa::path(get, path = "/api/v1/backends/{id}", tag = "backends", operation_id = "get_backend",
    params(("id" = String, Path, description = "Backend id", example = "3")),
    responses((status = 200, body = BackendView),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody)))]
pub async fn get(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<BackendView>, ApiError> {
    let id = parse_id(&id)?;
    let membership = state.store.membership().await?;
    membership
        .backends
        .iter()
        .find(|b| b.id == id)
        .map(|b| Json(BackendView::new(b, &state.health)))
        .ok_or_else(|| not_found(id))
}

/// Drain or reactivate a backend, or change its weight.
#[utoipa::path(patch, path = "/api/v1/backends/{id}", tag = "backends", operation_id = "update_backend",
    request_body = BackendPatch,
    params(("id" = String, Path, description = "Backend id", example = "3")),
    responses((status = 200, body = BackendView),
        (status = 400, description = "`empty_patch`, `invalid_weight` or `malformed_json`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_body`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`: nothing was changed", body = ErrorBody)))]
pub async fn update(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<BackendPatch>,
) -> Result<Json<BackendView>, ApiError> {
    let id = parse_id(&id)?;
    let (state_change, weight) = validate_patch(&patch)?;
    let (membership, record) = state.store.update(id, state_change, weight).await?;
    state.publish(membership).await?;
    Ok(Json(BackendView::new(&record, &state.health)))
}

/// Remove a backend; requests already on it finish.
#[utoipa::path(delete, path = "/api/v1/backends/{id}", tag = "backends", operation_id = "remove_backend",
    params(("id" = String, Path, description = "Backend id", example = "3")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`: nothing was changed", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let membership = state.store.delete(id).await?;
    state.publish(membership).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the whole pool atomically (addresses that stay keep their id).
#[utoipa::path(put, path = "/api/v1/backends", tag = "backends", operation_id = "replace_backends",
    request_body = Replacement,
    responses((status = 200, body = BackendList),
        (status = 400, description = "`invalid_address`, `duplicate_address` (listed twice), `invalid_weight` or `malformed_json`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_body`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`: nothing was changed", body = ErrorBody)))]
pub async fn replace(
    State(state): State<AdminState>,
    JsonBody(body): JsonBody<Replacement>,
) -> Result<Json<BackendList>, ApiError> {
    let wanted = validate_replacement(&body)?;
    let membership = state.store.replace(&wanted).await?;
    let list = list_of(&membership, &state.health);
    state.publish(membership).await?;
    Ok(Json(list))
}

/// A `POST` body as the handler checks it: the canonical address and the weight.
pub fn validate_new(body: &NewBackend) -> Result<(BackendAddr, u32), ApiError> {
    Ok((parse_address(&body.address.0)?, check_weight(body.weight)?))
}

/// A `PATCH` body as the handler checks it: the new state and weight, at
/// least one of them.
pub fn validate_patch(
    patch: &BackendPatch,
) -> Result<(Option<BackendState>, Option<u32>), ApiError> {
    if patch.state.is_none() && patch.weight.is_none() {
        return Err(ApiError::invalid(
            ErrorCode::EmptyPatch,
            "nothing to change: give `state` (\"active\" or \"draining\") and/or `weight`",
        ));
    }
    let weight = patch.weight.map(|w| check_weight(Some(w))).transpose()?;
    Ok((patch.state.map(BackendState::from), weight))
}

/// A `PUT` body as the handler checks it: the whole new pool, each address
/// once.
pub fn validate_replacement(
    body: &Replacement,
) -> Result<Vec<(BackendAddr, u32, BackendState)>, ApiError> {
    let mut seen = HashSet::new();
    let mut wanted = Vec::with_capacity(body.backends.len());
    for (i, entry) in body.backends.iter().enumerate() {
        let address = parse_address(&entry.address.0).map_err(|e| {
            ApiError::invalid(ErrorCode::InvalidAddress, format!("backends[{i}]: {e}"))
        })?;
        let weight = check_weight(entry.weight).map_err(|e| {
            ApiError::invalid(ErrorCode::InvalidWeight, format!("backends[{i}]: {e}"))
        })?;
        if !seen.insert(address.clone()) {
            return Err(ApiError::invalid(
                ErrorCode::DuplicateAddress,
                format!("backends[{i}]: {address} is listed more than once"),
            ));
        }
        let state = entry.state.map_or(BackendState::Active, Into::into);
        wanted.push((address, weight, state));
    }
    Ok(wanted)
}

fn list_of(membership: &Membership, health: &Health) -> BackendList {
    BackendList {
        generation: membership.generation,
        backends: membership
            .backends
            .iter()
            .map(|b| BackendView::new(b, health))
            .collect(),
    }
}

fn parse_address(text: &str) -> Result<BackendAddr, ApiError> {
    text.parse()
        .map_err(|e| ApiError::invalid(ErrorCode::InvalidAddress, format!("{e}")))
}

fn check_weight(weight: Option<u32>) -> Result<u32, ApiError> {
    match weight.unwrap_or(1) {
        w @ 1..=MAX_WEIGHT => Ok(w),
        w => Err(ApiError::invalid(
            ErrorCode::InvalidWeight,
            format!("weight {w} is out of range; use 1 to {MAX_WEIGHT}"),
        )),
    }
}

/// Ids are positive integers; anything else names no backend.
fn parse_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::NotFound(format!("no backend with id {text:?}")))
}

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no backend with id {id}"))
}
