//! Errors of the proxy boundary and the one place they become responses.

use http::{header, HeaderValue, Response, StatusCode};

use super::body::text;
use super::framing::FramingError;
use super::upstream::UpstreamBody;
use crate::routing::KeyError;

/// Why a request was answered by the proxy itself instead of a backend.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The routing key could not be derived (downstream's fault).
    #[error("{0}")]
    Key(#[from] KeyError),
    /// Ambiguous framing in the request head (downstream's fault).
    #[error("{0}")]
    Framing(#[from] FramingError),
    /// `CONNECT`: switchyard is not a forward proxy.
    #[error("CONNECT is not supported")]
    Connect,
    /// The request body is larger than `limits.max_body_bytes`.
    #[error("request body too large")]
    BodyTooLarge,
    /// No backend is active.
    #[error("no backend available")]
    NoBackends,
    /// Every candidate failed before answering (upstream's fault).
    #[error("no backend could be reached")]
    BadGateway,
    /// The backend did not send its response head in time.
    #[error("backend timed out")]
    GatewayTimeout,
}

impl ProxyError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Key(_) | ProxyError::Framing(_) => StatusCode::BAD_REQUEST,
            ProxyError::Connect => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::NoBackends => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::BadGateway => StatusCode::BAD_GATEWAY,
            ProxyError::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// A short plain-text response that never echoes internals.
    pub fn into_response(self) -> Response<UpstreamBody> {
        let status = self.status();
        let mut response = Response::new(text(format!("{}: {self}\n", status.as_u16())));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        match self {
            ProxyError::NoBackends => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            // After ambiguous framing, an unread body or a refused CONNECT
            // (whose client may already be sending tunnel bytes) the rest of
            // the stream cannot be trusted.
            ProxyError::Framing(_) | ProxyError::BodyTooLarge | ProxyError::Connect => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}
