//! Certificates: upload (checked first: refused with `400` and a plain
//! message, or accepted with warnings), list, get, delete. Each change is
//! committed to the store, then applied to this node's certificate
//! snapshot before the response; other nodes follow the notification.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::error::{ApiError, ErrorBody, ErrorCode, JsonBody};
use super::model::{CertificateList, CertificateView, NewCertificate};
use super::AdminState;
use crate::store::{CertSource, StoredCertificates};
use crate::tls::unix_now;

/// Every stored certificate, oldest first (never a key).
#[utoipa::path(get, path = "/api/v1/certificates", tag = "certificates", operation_id = "list_certificates",
    responses((status = 200, body = CertificateList)))]
pub async fn list(State(state): State<AdminState>) -> Json<CertificateList> {
    let now = unix_now();
    let certificates = state
        .certificates
        .entries()
        .iter()
        .map(|e| CertificateView::new(e, now))
        .collect();
    Json(CertificateList { certificates })
}

/// Upload a certificate (PEM chain and key); served by every node without a restart.
#[utoipa::path(post, path = "/api/v1/certificates", tag = "certificates", operation_id = "add_certificate",
    request_body = NewCertificate,
    responses(
        (status = 201, body = CertificateView, headers(("Location" = String, description = "The new certificate's URL"))),
        (status = 400, description = "`invalid_certificate`: unreadable PEM, an encrypted key or one that does not match, a key in the certificate field, more than 10 certificates, an expired certificate or one not valid yet, or one that names no domain; `malformed_json`", body = ErrorBody),
        (status = 409, description = "`no_storage_key`: other keys are sealed and this node has no storage key", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_body`: an unknown, missing or mistyped field", body = ErrorBody),
        (status = 503, description = "`store_unavailable`: nothing was stored", body = ErrorBody)))]
pub async fn create(
    State(state): State<AdminState>,
    JsonBody(body): JsonBody<NewCertificate>,
) -> Result<impl IntoResponse, ApiError> {
    let parsed = crate::tls::parse(&body.certificate, &body.private_key, unix_now())
        .map_err(|e| ApiError::invalid(ErrorCode::InvalidCertificate, e.to_string()))?;
    let (id, stored) = state
        .store
        .add_certificate(&body.certificate, &body.private_key, CertSource::Uploaded)
        .await?;
    apply(&state, stored).await?;
    let entry = state
        .certificates
        .entries()
        .into_iter()
        .find(|e| e.id == id);
    let mut view = match entry {
        Some(entry) => CertificateView::new(&entry, unix_now()),
        // Deleted by someone else in between.
        None => return Err(ApiError::NotFound(format!("no certificate with id {id}"))),
    };
    view.warnings = parsed.warnings;
    let location = format!("/api/v1/certificates/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    ))
}

/// One certificate.
#[utoipa::path(get, path = "/api/v1/certificates/{id}", tag = "certificates", operation_id = "get_certificate",
    params(("id" = String, Path, description = "Certificate id", example = "3")),
    responses((status = 200, body = CertificateView),
        (status = 404, description = "`not_found`", body = ErrorBody)))]
pub async fn get(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<CertificateView>, ApiError> {
    let id = parse_id(&id)?;
    state
        .certificates
        .entries()
        .iter()
        .find(|e| e.id == id)
        .map(|e| Json(CertificateView::new(e, unix_now())))
        .ok_or_else(|| ApiError::NotFound(format!("no certificate with id {id}")))
}

/// Delete a certificate; open connections keep it, new ones no longer get it.
#[utoipa::path(delete, path = "/api/v1/certificates/{id}", tag = "certificates", operation_id = "delete_certificate",
    params(("id" = String, Path, description = "Certificate id", example = "3")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`certificate_managed`: it belongs to a managed domain", body = ErrorBody),
        (status = 503, description = "`store_unavailable`: nothing was changed", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    if let Some(domain) = state.store.domain_of_certificate(id).await? {
        return Err(ApiError::Conflict(
            ErrorCode::CertificateManaged,
            format!(
                "certificate {id} belongs to the managed domain {domain}, which would order a new \
                 one at once; stop managing it instead: DELETE /api/v1/domains/{domain}"
            ),
        ));
    }
    let stored = state.store.delete_certificate(id).await?;
    apply(&state, stored).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound(format!("no certificate with id {id:?}")))
}

/// Serve what the store now holds (reading new certificates is CPU work).
async fn apply(state: &AdminState, stored: StoredCertificates) -> Result<(), ApiError> {
    let keeper = std::sync::Arc::clone(&state.certificates);
    tokio::task::spawn_blocking(move || keeper.apply(stored))
        .await
        .map_err(|_| ApiError::Internal)?;
    Ok(())
}
