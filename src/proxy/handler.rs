//! One proxied request, in named phases that read top to bottom:
//! [`routing_key_of`] → [`pick_backend`] → [`prepare_request`] → `forward`
//! → [`prepare_response`] → `log`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::access::{AccessRecord, Completion, Sampler};
use super::body::{BodyEnds, ResponseBody, SentSignal};
use super::client_io::{ConnShared, InFlight};
use super::drain::Drains;
use super::error::ProxyError;
use super::forward::pick_backend;
use super::headers::{self, PeerIp};
use super::upstream::{Lease, UpstreamBody, Upstreams};
use crate::config::{ProxySettings, SharedSettings};
use crate::health::Health;
use crate::routing::{routing_key, BackendPool, KeyError, KeyInput, ReloadScope, RoutingKey, Rule};
use crate::telemetry::{BackendInFlight, Telemetry};

/// Everything the request path reads: the pool, the settings, the
/// connections, and the counters it updates.
#[derive(Debug)]
pub struct Proxy {
    pub pool: Arc<BackendPool>,
    pub settings: SharedSettings,
    /// Client connection slots (`limits.max_connections`).
    pub connections: Arc<tokio::sync::Semaphore>,
    /// Backend connections (one pool per worker: see [`Proxy::for_worker`]).
    pub upstreams: Arc<Upstreams>,
    pub telemetry: Arc<Telemetry>,
    pub health: Arc<Health>,
    /// Picks the requests the access log writes.
    pub sampler: Arc<Sampler>,
    /// Drain-timeout signals per backend.
    pub drains: Arc<Drains>,
}

impl Proxy {
    /// A proxy over `pool` with `settings`; the connection limit comes from
    /// `limits.max_connections`, drain signals and backend connections start empty.
    pub fn new(
        pool: Arc<BackendPool>,
        settings: SharedSettings,
        telemetry: Arc<Telemetry>,
        health: Arc<Health>,
    ) -> Self {
        let max_connections = settings.load().max_connections;
        Proxy {
            upstreams: Arc::new(Upstreams::new(Arc::clone(&settings))),
            pool,
            settings,
            connections: Arc::new(tokio::sync::Semaphore::new(max_connections)),
            telemetry,
            health,
            sampler: Arc::default(),
            drains: Arc::default(),
        }
    }

    /// The same proxy for one more worker thread: everything shared but
    /// the backend connection pool.
    pub fn for_worker(&self) -> Self {
        Proxy {
            pool: Arc::clone(&self.pool),
            settings: Arc::clone(&self.settings),
            connections: Arc::clone(&self.connections),
            upstreams: Arc::new(Upstreams::new(Arc::clone(&self.settings))),
            telemetry: Arc::clone(&self.telemetry),
            health: Arc::clone(&self.health),
            sampler: Arc::clone(&self.sampler),
            drains: Arc::clone(&self.drains),
        }
    }
}

/// What one request did, for the counters and the access log.
#[derive(Debug, Default)]
pub(super) struct Trace {
    /// Whether the access log writes this request (then `key` is kept).
    pub log: bool,
    pub key: Option<(RoutingKey, Rule)>,
    /// The backend that got the request (counted in flight until the
    /// response body is done).
    pub backend: Option<BackendInFlight>,
    /// Time from sending the request to the backend's response head.
    pub upstream_latency: Option<Duration>,
    /// Request body bytes sent (only for requests with a body).
    pub bytes_in: Option<Arc<AtomicU64>>,
    /// The backend's drain-timeout signal.
    pub closing: Option<tokio_util::sync::CancellationToken>,
    /// The backend connection, back to the pool when the body is done.
    pub lease: Option<Lease>,
}

/// The hyper service entry point for one request.
pub async fn handle(
    proxy: Arc<Proxy>,
    conn: Arc<ConnShared>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let peer = conn.peer;
    let in_flight = conn.start_request();
    let started = Instant::now();
    let method = req.method().clone();
    let mut trace = Trace::default();
    let access: Option<AccessRecord> = proxy
        .settings
        .load()
        .access_log_sample
        .filter(|&rate| proxy.sampler.sample(rate))
        .map(|_| access_record(&req, peer, started));
    trace.log = access.is_some();
    let response = match proxy.proxy_request(&conn, req, &mut trace).await {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(%peer, %method, error = %err, "answered by the proxy");
            err.into_response()
        }
    };
    proxy.telemetry.finish(
        trace.backend.as_ref(),
        response.status(),
        trace.upstream_latency,
    );
    let access = access.map(|mut record| {
        if let Some((key, rule)) = &trace.key {
            record.key = key.as_str().to_owned();
            record.rule = rule.as_str();
        }
        if let Some(backend) = &trace.backend {
            record.backend = backend.address().to_string();
        }
        record.status = response.status();
        Box::new(record)
    });
    let completion = Completion {
        backend: trace.backend,
        bytes_in: trace.bytes_in,
        bytes_out: 0,
        access,
    };
    let ends = BodyEnds {
        in_flight: Some(in_flight),
        completion,
        closing: trace.closing,
        lease: trace.lease,
    };
    Ok(response.map(|body| ResponseBody::new(body, ends)))
}

/// The access-log fields known before routing.
fn access_record<B>(req: &Request<B>, client: SocketAddr, started: Instant) -> AccessRecord {
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    AccessRecord {
        started,
        client,
        method: req.method().clone(),
        host,
        path: req.uri().path().to_owned(),
        key: String::new(),
        rule: "-",
        backend: "-".to_owned(),
        status: StatusCode::OK,
    }
}

impl Proxy {
    async fn proxy_request(
        &self,
        conn: &Arc<ConnShared>,
        mut req: Request<Incoming>,
        trace: &mut Trace,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        if let Some(problem) = conn.take_framing_error() {
            return Err(problem.into());
        }
        if req.method() == Method::CONNECT {
            return Err(ProxyError::Connect);
        }
        // Guards from `load()` must not live across an await (arc-swap's
        // fast path has a few slots per thread): settings are read up to
        // here, and the snapshot is an `Arc` held for failover.
        let settings = self.settings.load();
        let (key, rule) = routing_key_of(&req, &settings.reload_scope)?;
        if trace.log {
            trace.key = Some((key.clone(), rule));
        }
        let snapshot = self.pool.load();
        let first = pick_backend(self, &snapshot, &key)?;
        let client_upgrade = (req.version() == Version::HTTP_11
            && headers::wants_upgrade(req.headers()))
        .then(|| hyper::upgrade::on(&mut req));
        if !req.body().is_end_stream() {
            trace.bytes_in = Some(Arc::default());
        }
        let (req, body_sent) = prepare_request(
            req,
            &conn.peer_ip,
            &settings,
            client_upgrade.is_some(),
            trace.bytes_in.clone(),
        )?;
        drop(settings);
        let (backend, mut response) = self
            .forward(&snapshot, &key, first, req, body_sent, trace)
            .await?;
        let upgraded = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if let (true, Some(client)) = (upgraded, client_upgrade) {
            let backend_side = hyper::upgrade::on(&mut response);
            let open = (conn.start_request(), self.telemetry.start(&backend));
            let closing = self.drains.token(&backend.address);
            tokio::spawn(tunnel(client, backend_side, open, closing));
        }
        tracing::debug!(peer = %conn.peer, key = key.as_str(), rule = rule.as_str(), backend = %backend.address,
            status = response.status().as_u16(), "proxied");
        Ok(prepare_response(response, upgraded))
    }
}

/// Phase 1: the routing key, from the request's target, `Host` and path.
pub fn routing_key_of<B>(
    req: &Request<B>,
    scope: &ReloadScope,
) -> Result<(RoutingKey, Rule), KeyError> {
    let mut hosts = req
        .headers()
        .get_all(header::HOST)
        .iter()
        .map(HeaderValue::as_bytes);
    let first_two = [hosts.next(), hosts.next()];
    let host_headers: &[&[u8]] = match first_two {
        [None, _] => &[],
        [Some(a), None] => &[a][..],
        [Some(a), Some(b)] => &[a, b][..],
    };
    let authority = req.uri().authority().map(|a| a.as_str().as_bytes());
    let is_h2 = req.version() == Version::HTTP_2;
    let input = KeyInput {
        absolute_authority: if is_h2 { None } else { authority },
        h2_authority: if is_h2 { authority } else { None },
        host_headers,
        path: req.uri().path().as_bytes(),
    };
    routing_key(&input, scope)
}

/// Phase 3: the request as the backend sees it: same method, path, query,
/// `Host` and body; origin-form target; hop-by-hop headers removed;
/// `X-Forwarded-*` set. Returns a receiver that fires once the body is sent.
pub fn prepare_request(
    req: Request<Incoming>,
    peer: &PeerIp,
    settings: &ProxySettings,
    upgrade: bool,
    bytes_sent: Option<Arc<AtomicU64>>,
) -> Result<(Request<UpstreamBody>, tokio::sync::oneshot::Receiver<()>), ProxyError> {
    let (mut parts, body) = req.into_parts();
    if let (Some(limit), Some(length)) = (settings.max_body_bytes, declared_length(&parts.headers))
    {
        if length > limit {
            return Err(ProxyError::BodyTooLarge);
        }
    }
    let host = match parts.headers.get(header::HOST) {
        Some(host) => host.clone(),
        // HTTP/2 carries the host in `:authority`; HTTP/1.1 backends need `Host`.
        None => parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .ok_or(ProxyError::Key(KeyError::MissingHost))?,
    };
    headers::remove_hop_by_hop(&mut parts.headers, upgrade);
    if !settings.forward_underscore_headers {
        headers::remove_underscore_headers(&mut parts.headers);
    }
    headers::set_forwarded(
        &mut parts.headers,
        peer,
        Some(&host),
        &settings.trusted_proxies,
    );
    if parts.version == Version::HTTP_2 {
        headers::join_cookies(&mut parts.headers);
    }
    parts.headers.insert(header::HOST, host);
    parts.uri = origin_form(&parts.uri);
    parts.version = Version::HTTP_11;
    let body: UpstreamBody = match settings.max_body_bytes {
        Some(limit) => Limited::new(body, limit as usize).boxed(),
        None => body.map_err(Into::into).boxed(),
    };
    let (body, sent) = SentSignal::new(body, bytes_sent);
    Ok((Request::from_parts(parts, body.boxed()), sent))
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn origin_form(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(pq) if uri.authority().is_some() => Uri::from(pq.clone()),
        Some(_) => uri.clone(),
        None => Uri::from_static("/"),
    }
}

/// Phase 5: the backend's response with hop-by-hop headers removed.
pub fn prepare_response(response: Response<Incoming>, upgraded: bool) -> Response<UpstreamBody> {
    let (mut parts, body) = response.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers, upgraded);
    Response::from_parts(parts, body.map_err(Into::into).boxed())
}

/// Copy bytes both ways between an upgraded client and backend connection.
/// `_open` keeps the tunnel counted on its client connection and backend;
/// `closing` ends it when the backend's drain times out.
async fn tunnel(
    client: OnUpgrade,
    backend: OnUpgrade,
    _open: (InFlight, BackendInFlight),
    closing: tokio_util::sync::CancellationToken,
) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(err) => {
            tracing::debug!(%err, "upgrade did not complete");
            return;
        }
    };
    let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut backend) => {
            if let Err(err) = copied {
                tracing::debug!(%err, "tunnel ended with an error");
            }
        }
        () = closing.cancelled() => tracing::info!("tunnel closed: its backend's drain timed out"),
    }
}
