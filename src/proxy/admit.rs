//! Phase 0, admit: what is refused or answered before a request is routed.
//!
//! - HTTP/1: the [`Verdict`] of the request's head (ambiguous framing,
//!   a body already known to be malformed, a stream the tracker lost);
//! - `CONNECT` (not a forward proxy) and `TRACE` (it would echo cookies and
//!   credentials back, nginx refuses it too): `405`;
//! - `OPTIONS` with `Max-Forwards: 0` is answered here (RFC 9110 §7.6.2),
//!   with a larger value it is decremented on its way;
//! - HTTP/1.1 without `Host`, absolute-form or not (RFC 9112 §3.2): `400`;
//! - HTTP/2 field values with leading or trailing whitespace (RFC 9113
//!   §8.2.1): `400`.

use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};

use super::body::text;
use super::client_io::ConnShared;
use super::error::{BodyFault, ProxyError};
use super::tracker::Verdict;
use super::upstream::UpstreamBody;
use crate::routing::KeyError;

/// Methods the proxy forwards, as an `OPTIONS` answered here lists them.
pub const ALLOWED: &str = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS";

/// What [`admit`] decided: `Ok(None)` lets the request through,
/// `Ok(Some(response))` is an answer made here.
pub type Admission = Result<Option<Response<UpstreamBody>>, ProxyError>;

/// Refuse or answer `req` before routing. Also returns its HTTP/1 verdict
/// (whose `last` decides whether the response closes the connection),
/// whatever the decision.
pub fn admit<B>(conn: &ConnShared, req: &mut Request<B>) -> (Option<Arc<Verdict>>, Admission) {
    match req.version() {
        Version::HTTP_2 => (
            None,
            check_h2_values(req.headers()).and_then(|()| rules(req)),
        ),
        _ => match conn.take_verdict() {
            Err(unchecked) => (None, Err(unchecked.into())),
            Ok(verdict) => {
                let decision = match (verdict.head(), verdict.body_malformed()) {
                    (Err(problem), _) => Err(problem.into()),
                    (Ok(()), true) => Err(BodyFault::Malformed.into()),
                    (Ok(()), false) => rules(req),
                };
                (Some(verdict), decision)
            }
        },
    }
}

/// Method and `Host` rules, for both protocols.
fn rules<B>(req: &mut Request<B>) -> Admission {
    let method = req.method().as_str();
    if method.eq_ignore_ascii_case("CONNECT") {
        return Err(ProxyError::Connect);
    }
    // `trace` is another method to HTTP, not to every backend.
    if method.eq_ignore_ascii_case("TRACE") {
        return Err(ProxyError::Trace);
    }
    if *req.method() == Method::OPTIONS {
        if let Some(answer) = max_forwards(req.headers_mut()) {
            return Ok(Some(answer));
        }
    }
    if req.version() == Version::HTTP_11 && !req.headers().contains_key(header::HOST) {
        return Err(KeyError::MissingHost.into());
    }
    Ok(None)
}

/// `Max-Forwards` of an `OPTIONS`: `0` is answered here, more is decremented.
fn max_forwards(headers: &mut http::HeaderMap) -> Option<Response<UpstreamBody>> {
    let value = headers.get(header::MAX_FORWARDS)?;
    let hops: u64 = value.to_str().ok()?.trim().parse().ok()?;
    if hops > 0 {
        headers.insert(header::MAX_FORWARDS, HeaderValue::from(hops - 1));
        return None;
    }
    let mut response = Response::new(text(""));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOWED));
    Some(response)
}

fn check_h2_values(headers: &http::HeaderMap) -> Result<(), ProxyError> {
    let padded = |v: &HeaderValue| {
        let b = v.as_bytes();
        matches!(b.first(), Some(b' ' | b'\t')) || matches!(b.last(), Some(b' ' | b'\t'))
    };
    if headers.values().any(padded) {
        return Err(ProxyError::MalformedHeader);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_with_no_hops_left_is_answered_and_others_are_decremented() {
        let mut h = http::HeaderMap::new();
        h.insert(header::MAX_FORWARDS, HeaderValue::from_static("0"));
        let answer = max_forwards(&mut h).expect("answered here");
        assert_eq!(answer.headers()[header::ALLOW], ALLOWED);
        h.insert(header::MAX_FORWARDS, HeaderValue::from_static("3"));
        assert!(max_forwards(&mut h).is_none());
        assert_eq!(h[header::MAX_FORWARDS], "2");
    }

    #[test]
    fn padded_h2_values_are_malformed() {
        let mut h = http::HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("ok value"));
        assert!(check_h2_values(&h).is_ok());
        h.insert("x-b", HeaderValue::from_static("bad "));
        assert!(check_h2_values(&h).is_err());
    }
}
