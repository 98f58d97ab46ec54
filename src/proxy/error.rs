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
    /// `TRACE` would reflect the request, cookies included.
    #[error("TRACE is not supported")]
    Trace,
    /// An HTTP/2 field value with leading or trailing whitespace.
    #[error("malformed header value")]
    MalformedHeader,
    /// The client's request body failed on its way (downstream's fault;
    /// never counted against the backend).
    #[error("{0}")]
    Body(#[from] BodyFault),
    /// A TLS request for a host the connection's certificate does not
    /// cover (the client must open a connection for that host).
    #[error("this connection's certificate does not cover the requested host")]
    Misdirected,
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

/// How a client's request body failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyFault {
    /// Bad chunk framing, or a body that does not match its length.
    #[error("malformed request body")]
    Malformed,
    /// Larger than `limits.max_body_bytes`.
    #[error("request body too large")]
    TooLarge,
    /// No byte for `timeouts.body_idle`.
    #[error("request body timed out: no byte for too long")]
    TimedOut,
    /// The client closed or reset the connection (or the stream) mid-body:
    /// there is nobody to answer.
    #[error("the client went away before sending its whole body")]
    Gone,
}

/// Logged (never sent) for a request whose client went away: nginx's
/// "client closed request".
pub const CLIENT_GONE: u16 = 499;

impl BodyFault {
    /// Classify an error that came out of a client's request body.
    pub fn of(err: &(dyn std::error::Error + 'static)) -> BodyFault {
        let mut source = Some(err);
        while let Some(e) = source {
            if let Some(fault) = e.downcast_ref::<BodyFault>() {
                return *fault;
            }
            if e.is::<http_body_util::LengthLimitError>() {
                return BodyFault::TooLarge;
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                // hyper's body decoder: InvalidInput / InvalidData for bad
                // framing, UnexpectedEof when the connection ended mid-body.
                return match io.kind() {
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                        BodyFault::Malformed
                    }
                    _ => BodyFault::Gone,
                };
            }
            if e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_parse)
            {
                return BodyFault::Malformed;
            }
            source = e.source();
        }
        BodyFault::Gone
    }

    fn status(self) -> StatusCode {
        match self {
            BodyFault::Malformed => StatusCode::BAD_REQUEST,
            BodyFault::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyFault::TimedOut => StatusCode::REQUEST_TIMEOUT,
            BodyFault::Gone => StatusCode::from_u16(CLIENT_GONE).expect("499 is a status code"),
        }
    }
}

/// The service error for a request whose client went away: hyper closes
/// the connection without writing a response.
#[derive(Debug, thiserror::Error)]
#[error("the client went away mid-request")]
pub struct ClientGone;

impl ProxyError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Key(_) | ProxyError::Framing(_) | ProxyError::MalformedHeader => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::Connect | ProxyError::Trace => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::Body(fault) => fault.status(),
            ProxyError::Misdirected => StatusCode::MISDIRECTED_REQUEST,
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
            ProxyError::Trace => {
                headers.insert(
                    header::ALLOW,
                    HeaderValue::from_static(super::admit::ALLOWED),
                );
            }
            // After ambiguous framing, an unread body or a refused CONNECT
            // (whose client may already be sending tunnel bytes) the rest of
            // the stream cannot be trusted.
            ProxyError::Framing(_) | ProxyError::Body(_) | ProxyError::Connect => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}
