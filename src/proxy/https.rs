//! What the request path does about HTTPS: on a TLS connection, a request
//! for a host its certificate does not cover gets `421` (no domain
//! fronting from one tenant's certificate to another's site), and
//! responses get the configured HSTS header; on plain HTTP, with
//! `tls.redirect_http`, a request for a host that has a certificate gets
//! `308` to `https://` (ACME HTTP-01 challenges excepted). A client that
//! speaks plain HTTP to the HTTPS port gets a plain `400` saying so.

use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::client_io::ConnShared;
use super::error::ProxyError;
use super::prefixed::Prefixed;
use super::upstream::UpstreamBody;
use crate::acme::Challenges;
use crate::config::{ProxySettings, SharedSettings};
use crate::routing::{request_host_of, RoutingKey, Rule};
use crate::tls::Keeper;

/// The body of the plain `400` for plain HTTP on the HTTPS port.
const PLAIN_HTTP_MESSAGE: &str = "This port speaks HTTPS: use https:// for this address.\n";
/// The most of a plain-HTTP request read (and dropped) after answering it,
/// so that closing does not reset the connection before the answer is read.
const PLAIN_HTTP_DRAIN: usize = 64 * 1024;

/// Whether the client's first byte starts plain HTTP rather than a TLS
/// record (`0x16`): a letter, as every method starts with. Waits for the
/// byte until `deadline`; `false` when none came (the handshake then
/// times out or fails on its own).
pub async fn speaks_plain_http(stream: &Prefixed<TcpStream>, deadline: Instant) -> bool {
    matches!(
        tokio::time::timeout_at(deadline, stream.first_byte()).await,
        Ok(Ok(Some(first))) if first.is_ascii_alphabetic()
    )
}

/// Answer plain HTTP on the HTTPS port with a plain `400` (as nginx does),
/// then close, all by `deadline`.
pub async fn answer_plain_http(mut stream: Prefixed<TcpStream>, deadline: Instant) {
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{PLAIN_HTTP_MESSAGE}",
        PLAIN_HTTP_MESSAGE.len()
    );
    let _ = tokio::time::timeout_at(deadline, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut drained = 0;
        let mut buf = [0u8; 4096];
        while drained < PLAIN_HTTP_DRAIN {
            match stream.read(&mut buf).await? {
                0 => break,
                n => drained += n,
            }
        }
        std::io::Result::Ok(())
    })
    .await;
}

/// Where ACME HTTP-01 challenges are answered (never redirected).
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The ACME challenge token of `req`'s path, if it is one: base64url
/// characters only (so `/.well-known/acme-challenge/../x` is not one).
fn challenge_token<B>(req: &Request<B>) -> Option<&str> {
    let token = req.uri().path().strip_prefix(ACME_CHALLENGE_PREFIX)?;
    let valid = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then_some(token)
}

fn is_challenge<B>(req: &Request<B>) -> bool {
    challenge_token(req).is_some()
}

/// With ACME on, a request under [`ACME_CHALLENGE_PREFIX`] (plain or
/// HTTPS: a CA may follow a redirect) is answered here, before routing and
/// never forwarded: the key authorization of an open challenge (`200`),
/// else `404`.
pub fn acme_challenge<B>(
    req: &Request<B>,
    challenges: Option<&Challenges>,
) -> Option<Response<UpstreamBody>> {
    let challenges = challenges?;
    if !req.uri().path().starts_with(ACME_CHALLENGE_PREFIX) {
        return None;
    }
    let token = challenge_token(req).unwrap_or("");
    let (status, body) = match challenges.answer(token) {
        Some(answer) if req.method() == Method::GET || req.method() == Method::HEAD => {
            (StatusCode::OK, answer.to_string())
        }
        Some(_) => (StatusCode::METHOD_NOT_ALLOWED, String::new()),
        None => (StatusCode::NOT_FOUND, "no such ACME challenge\n".to_owned()),
    };
    let mut response = Response::new(super::body::text(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    Some(response)
}

/// The host a request asks for: the routing key, unless the reload rule
/// took the key from the path.
fn host_of<B>(req: &Request<B>, key: &RoutingKey, rule: Rule) -> Result<RoutingKey, ProxyError> {
    match rule {
        Rule::Host => Ok(key.clone()),
        Rule::Reload => Ok(request_host_of(req)?),
    }
}

/// `421` unless the connection's certificate covers the request's host.
pub fn check_host<B>(
    conn: &ConnShared,
    req: &Request<B>,
    key: &RoutingKey,
    rule: Rule,
) -> Result<(), ProxyError> {
    let Some(tls) = &conn.tls else {
        return Ok(());
    };
    let host = host_of(req, key, rule)?;
    if tls.served.covers(&host) {
        Ok(())
    } else {
        Err(ProxyError::Misdirected)
    }
}

/// The `308` to HTTPS a plain request gets, if `tls.redirect_http` is on
/// and a certificate covers its host.
pub fn redirect<B>(
    conn: &ConnShared,
    req: &Request<B>,
    (key, rule): (&RoutingKey, Rule),
    settings: &ProxySettings,
    keeper: &Keeper,
    https_port: Option<u16>,
) -> Result<Option<Response<UpstreamBody>>, ProxyError> {
    if conn.tls.is_some() || !settings.tls.redirect_http || is_challenge(req) {
        return Ok(None);
    }
    // `OPTIONS *` has no resource to redirect to.
    let Some(target) = req.uri().path_and_query().map(|pq| pq.as_str()) else {
        return Ok(None);
    };
    if !target.starts_with('/') {
        return Ok(None);
    }
    let Some(port) = settings.tls.redirect_port.or(https_port) else {
        return Ok(None);
    };
    let host = host_of(req, key, rule)?;
    if keeper
        .certificates()
        .load()
        .for_host(host.as_str())
        .is_none()
    {
        return Ok(None);
    }
    let authority = match (port, host.as_str().contains(':')) {
        (443, false) => host.as_str().to_owned(),
        (443, true) => format!("[{}]", host.as_str()),
        (port, false) => format!("{}:{port}", host.as_str()),
        (port, true) => format!("[{}]:{port}", host.as_str()),
    };
    let location = format!("https://{authority}{target}");
    let Ok(location) = HeaderValue::from_str(&location) else {
        return Ok(None);
    };
    let mut response = Response::new(super::body::text(""));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(Some(response))
}

/// Add the configured `Strict-Transport-Security` to a response on a TLS
/// connection, unless the backend set its own.
pub fn add_hsts<B>(conn: &ConnShared, settings: &SharedSettings, response: &mut Response<B>) {
    if conn.tls.is_none() {
        return;
    }
    if let Some(value) = &settings.load().tls.hsts {
        let headers = response.headers_mut();
        if !headers.contains_key(header::STRICT_TRANSPORT_SECURITY) {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, value.clone());
        }
    }
}
