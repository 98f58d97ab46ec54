//! Every admin API failure, as `{"error": {"code": ..., "message": ...}}`
//! with the right status. One enum for the whole boundary.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// Every error code the admin API answers with (stable; programs may match on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// `401`: no token, or a wrong one.
    Unauthorized,
    /// `403`: a `Host` that is not an IP address, `localhost` or a name in
    /// `admin.allowed_hosts` (or no `Host` at all).
    HostNotAllowed,
    /// `403`: a browser page from an origin that is not allowed.
    ForbiddenOrigin,
    /// `403`: a write the browser marks `Sec-Fetch-Site: cross-site`, from an
    /// origin not in `admin.allowed_origins`.
    CrossSiteWrite,
    /// `403`: a change made with the read-only token.
    ReadOnlyToken,
    /// `404`: no such backend, or no such path.
    NotFound,
    /// `409` (or `400` inside one `PUT`): the address is already in the pool.
    DuplicateAddress,
    /// `400`: not `host:port`.
    InvalidAddress,
    /// `400`: not a whole number from 1 to 1000.
    InvalidWeight,
    /// `400`: a `PATCH` with nothing to change.
    EmptyPatch,
    /// `400`: route lookup without `host`.
    MissingHost,
    /// `400`: route lookup with a host that is not a valid host.
    InvalidHost,
    /// `400`: route lookup with a path that does not start with `/`.
    InvalidPath,
    /// `400`: route lookup with characters a request cannot carry.
    InvalidRequest,
    /// `400`: a reload URL whose domain is not valid.
    InvalidReloadDomain,
    /// `400`: an uploaded certificate that cannot be used (unreadable PEM,
    /// a key that does not match, expired, no domain).
    InvalidCertificate,
    /// `409`: this node has no storage key, and stored keys are sealed (its
    /// key would be stored unsealed).
    NoStorageKey,
    /// `409`: deleting a certificate a managed domain holds (stop managing
    /// the domain instead).
    CertificateManaged,
    /// `409`: the domain is already managed.
    DomainExists,
    /// `409`: managed domains need ACME, which is off (no `acme.directory`).
    AcmeDisabled,
    /// `400`: a domain name that is not a valid host name (or a wildcard,
    /// which HTTP-01 cannot prove).
    InvalidDomain,
    /// `400`: a query parameter of the wrong type or range.
    InvalidQuery,
    /// `400`: the body is not JSON.
    MalformedJson,
    /// `422`: an unknown, missing, mistyped or `null` field.
    InvalidBody,
    /// `415`: the body is not sent as `application/json`.
    UnsupportedMediaType,
    /// `413`: the body is larger than 1 MiB.
    BodyTooLarge,
    /// `405`: the path exists, the method does not.
    MethodNotAllowed,
    /// `503`: the membership database cannot be reached; nothing changed.
    StoreUnavailable,
    /// `500`: a bug; the log says more.
    Internal,
}

/// Why an admin request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid bearer token is required: send `Authorization: Bearer <token>`")]
    Unauthorized,
    /// The `Host` as normalized (never the raw header), when it was valid.
    #[error("{}", host_not_allowed(.0.as_deref()))]
    HostNotAllowed(Option<String>),
    #[error("requests from origin {0:?} are not accepted; use the admin UI on this listener or list the origin in admin.allowed_origins")]
    ForbiddenOrigin(String),
    #[error("a page from another site cannot change anything here; use the admin UI on this listener or list the page's origin in admin.allowed_origins")]
    CrossSiteWrite,
    #[error("the read-only token cannot change anything; use the admin token")]
    ReadOnlyToken,
    #[error("{0}")]
    NotFound(String),
    /// `409`: the change conflicts with what exists.
    #[error("{1}")]
    Conflict(ErrorCode, String),
    /// A well-formed request with a value that is not acceptable.
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
    #[error("{0}")]
    MalformedJson(String),
    #[error("{0}")]
    UnprocessableBody(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    BodyTooLarge(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the membership database is unavailable; nothing was changed")]
    StoreUnavailable,
    #[error("internal error; see the switchyard log")]
    Internal,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "duplicate_address",
    "message": "a backend with address 10.0.0.7:8000 already exists"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable code for programs and a sentence for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs.
    pub code: ErrorCode,
    /// A sentence for people.
    #[schema(example = "a backend with address 10.0.0.7:8000 already exists")]
    pub message: String,
}

impl ApiError {
    /// A `400` for an unacceptable value.
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code,
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        use ErrorCode as C;
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, C::Unauthorized),
            ApiError::HostNotAllowed(_) => (StatusCode::FORBIDDEN, C::HostNotAllowed),
            ApiError::ForbiddenOrigin(_) => (StatusCode::FORBIDDEN, C::ForbiddenOrigin),
            ApiError::CrossSiteWrite => (StatusCode::FORBIDDEN, C::CrossSiteWrite),
            ApiError::ReadOnlyToken => (StatusCode::FORBIDDEN, C::ReadOnlyToken),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, C::NotFound),
            ApiError::Conflict(code, _) => (StatusCode::CONFLICT, *code),
            ApiError::Invalid { code, .. } => (StatusCode::BAD_REQUEST, *code),
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, C::MalformedJson),
            ApiError::UnprocessableBody(_) => (StatusCode::UNPROCESSABLE_ENTITY, C::InvalidBody),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, C::UnsupportedMediaType)
            }
            ApiError::BodyTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, C::BodyTooLarge),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, C::MethodNotAllowed),
            ApiError::StoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, C::StoreUnavailable),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, C::Internal),
        }
    }
}

fn host_not_allowed(host: Option<&str>) -> String {
    match host {
        Some(host) => format!(
            "this listener does not answer for the host {host:?} (a guard against DNS \
             rebinding); if that is a name you reach switchyard by, add it to admin.allowed_hosts"
        ),
        None => "the request needs one valid Host header: an IP address, localhost, or a name \
                 listed in admin.allowed_hosts"
            .to_owned(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"switchyard\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::DuplicateAddress(address) => ApiError::Conflict(
                ErrorCode::DuplicateAddress,
                format!("a backend with address {address} already exists"),
            ),
            StoreError::NotFound(id) => ApiError::NotFound(format!("no backend with id {id}")),
            StoreError::CertificateNotFound(id) => {
                ApiError::NotFound(format!("no certificate with id {id}"))
            }
            StoreError::WouldStoreUnsealed => ApiError::Conflict(
                ErrorCode::NoStorageKey,
                StoreError::WouldStoreUnsealed.to_string(),
            ),
            StoreError::DomainExists(name) => ApiError::Conflict(
                ErrorCode::DomainExists,
                format!("{name} is already a managed domain"),
            ),
            StoreError::DomainNotFound(name) => {
                ApiError::NotFound(format!("{name} is not a managed domain"))
            }
            StoreError::Database(err) => {
                tracing::error!(%err, "membership database error");
                ApiError::StoreUnavailable
            }
            err => {
                tracing::error!(%err, "membership store error");
                ApiError::Internal
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = rejection.body_text();
        match rejection.status() {
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::UnprocessableBody(message),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ),
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::BodyTooLarge("the request body is larger than 1 MiB".into())
            }
            _ => ApiError::MalformedJson(message),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::invalid(ErrorCode::InvalidQuery, rejection.body_text())
    }
}

/// `axum::Json`, with its rejections in the API's error shape.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(JsonBody(value))
    }
}
