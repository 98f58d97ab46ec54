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

/// Why an admin request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid bearer token is required: send `Authorization: Bearer <token>`")]
    Unauthorized,
    #[error("requests from origin {0:?} are not accepted; use the admin UI on this listener or list the origin in admin.allowed_origins")]
    ForbiddenOrigin(String),
    #[error("the read-only token cannot change anything; use the admin token")]
    ReadOnlyToken,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A well-formed request with a value that is not acceptable.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
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
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable code for programs and a sentence for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `snake_case` and stable, e.g. `duplicate_address`.
    pub code: String,
    pub message: String,
}

impl ApiError {
    /// A `400` for an unacceptable value.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code,
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::ForbiddenOrigin(_) => (StatusCode::FORBIDDEN, "forbidden_origin"),
            ApiError::ReadOnlyToken => (StatusCode::FORBIDDEN, "read_only_token"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "duplicate_address"),
            ApiError::Invalid { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::UnprocessableBody(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::BodyTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::StoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
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
            StoreError::DuplicateAddress(address) => {
                ApiError::Conflict(format!("a backend with address {address} already exists"))
            }
            StoreError::NotFound(id) => ApiError::NotFound(format!("no backend with id {id}")),
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
        ApiError::invalid("invalid_query", rejection.body_text())
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
