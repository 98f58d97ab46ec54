//! One proxied request, in named phases that read top to bottom:
//! [`admit`] → [`routing_key_of`] → [`pick_backend`] → [`prepare_request`]
//! (and [`prefetch`]) → `forward` → [`prepare_response`] → `log` (when the
//! response body is done, see [`super::access`]).

use std::sync::Arc;
use std::time::Instant;

use http::{header, HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::access::{AccessRecord, Pending, Sampler, Trace};
use super::admit::admit;
use super::body::{BodyProgress, Pace, RequestBody, ResponseBody};
use super::client_io::ConnShared;
use super::drain::Drains;
use super::error::{BodyFault, ClientGone, ProxyError};
use super::headers::{self, PeerIp};
use super::https;
use super::pick::pick_backend;
use super::prefetch::prefetch;
use super::request_id;
use super::tunnel::tunnel;
use super::upstream::{UpstreamBody, Upstreams};
use crate::acme::Challenges;
use crate::config::{LogFormat, ProxySettings, SharedSettings};
use crate::health::Health;
use crate::routing::{routing_key_of, BackendPool, KeyError};
use crate::telemetry::{Durations, Telemetry};
use crate::tls::{Keeper, OnDemand};

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
    /// This worker's request-duration histograms (summed on a scrape).
    pub durations: Arc<Durations>,
    /// The certificates the HTTPS listener serves.
    pub certificates: Arc<Keeper>,
    /// The HTTPS listener's port (redirects of plain requests), if there is one.
    pub https_port: Option<u16>,
    /// HTTP-01 answers, when ACME is on (`/.well-known/acme-challenge/`
    /// is then answered here, never forwarded).
    pub challenges: Option<Arc<Challenges>>,
    /// Certificates obtained during the handshake (`acme.ask`).
    pub on_demand: Option<Arc<dyn OnDemand>>,
}

impl Proxy {
    /// A proxy over `pool` with `settings`; the connection limit comes from
    /// `limits.max_connections`, drain signals and backend connections start empty.
    pub fn new(
        pool: Arc<BackendPool>,
        settings: SharedSettings,
        (telemetry, health): (Arc<Telemetry>, Arc<Health>),
        certificates: Arc<Keeper>,
        https_port: Option<u16>,
    ) -> Self {
        let max_connections = settings.load().max_connections;
        Proxy {
            upstreams: Arc::new(Upstreams::new(Arc::clone(&settings))),
            pool,
            settings,
            connections: Arc::new(tokio::sync::Semaphore::new(max_connections)),
            health,
            sampler: Arc::default(),
            drains: Arc::default(),
            durations: telemetry.worker_durations(),
            telemetry,
            certificates,
            https_port,
            challenges: None,
            on_demand: None,
        }
    }

    /// With ACME on: answer HTTP-01 challenges from `acme`'s answers, and
    /// obtain certificates on demand if `acme.ask` is set.
    pub fn with_acme(mut self, acme: Option<&Arc<crate::acme::Acme>>) -> Self {
        self.challenges = acme.map(|acme| Arc::clone(&acme.challenges));
        self.on_demand = acme
            .filter(|acme| acme.asks())
            .map(|acme| Arc::clone(acme) as Arc<dyn OnDemand>);
        self
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
            durations: self.telemetry.worker_durations(),
            certificates: Arc::clone(&self.certificates),
            https_port: self.https_port,
            challenges: self.challenges.clone(),
            on_demand: self.on_demand.clone(),
        }
    }
}

/// The hyper service entry point for one request. A client that went away
/// mid-body gets no response (hyper closes the connection); it is counted
/// and logged as `499` all the same, as is a request hyper drops because
/// its client left.
pub async fn handle(
    proxy: Arc<Proxy>,
    conn: Arc<ConnShared>,
    mut req: Request<Incoming>,
) -> Result<Response<ResponseBody>, ClientGone> {
    let in_flight = conn.start_request();
    let started = Instant::now();
    let request_id = request_id::ensure(req.headers_mut());
    let settings = proxy.settings.load();
    let access = settings
        .access_log_sample
        .filter(|&rate| proxy.sampler.sample(rate))
        .map(|_| {
            let quote = settings.log_format == LogFormat::Text;
            AccessRecord::of(&req, conn.peer, &request_id, quote)
        });
    drop(settings);
    let mut pending = Pending::new(
        (&proxy.telemetry, &proxy.health),
        &proxy.durations,
        started,
        access,
    );
    let (verdict, admission) = admit(&conn, &mut req);
    let answered = match admission {
        Ok(None) => proxy.proxy_request(&conn, req, &mut pending.trace).await,
        Ok(Some(answer)) => Ok(answer),
        Err(err) => Err(err),
    };
    let (mut response, gone) = match answered {
        Ok(response) => (response, false),
        Err(err) => {
            tracing::debug!(peer = %conn.peer, error = %err, "answered by the proxy");
            let gone = matches!(err, ProxyError::Body(BodyFault::Gone));
            (err.into_response(), gone)
        }
    };
    // Every response on a TLS connection, the proxy's own included.
    https::add_hsts(&conn, &proxy.settings, &mut response);
    // The tracker cannot follow this connection past this request.
    if verdict.is_some_and(|v| v.last()) && response.status() != StatusCode::SWITCHING_PROTOCOLS {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let ends = pending.answered(response.status(), in_flight);
    if gone {
        return Err(ClientGone);
    }
    let stall = proxy.settings.load().response_body_idle_timeout;
    Ok(response.map(|body| ResponseBody::new(body, ends, stall)))
}

impl Proxy {
    async fn proxy_request(
        &self,
        conn: &Arc<ConnShared>,
        mut req: Request<Incoming>,
        trace: &mut Trace,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        // Guards from `load()` must not live across an await (arc-swap's
        // fast path has a few slots per thread): settings are read before
        // and after the prefetch, and the snapshot is an `Arc` held for
        // failover.
        if let Some(answer) = https::acme_challenge(&req, self.challenges.as_deref()) {
            return Ok(answer);
        }
        let settings = self.settings.load();
        let (key, rule) = routing_key_of(&req, &settings.reload_scope)?;
        https::check_host(conn, &req, &key, rule)?;
        let redirect = (&key, rule);
        if let Some(to_https) = https::redirect(
            conn,
            &req,
            redirect,
            &settings,
            &self.certificates,
            self.https_port,
        )? {
            return Ok(to_https);
        }
        if trace.log {
            trace.key = Some((key.clone(), rule));
        }
        let snapshot = self.pool.load();
        let picked = pick_backend(self, &snapshot, &key)?;
        let protocol = (req.version() == Version::HTTP_11)
            .then(|| headers::upgrade_protocol(req.headers(), &settings.upgrade_protocols))
            .flatten();
        let client_upgrade = protocol.is_some().then(|| hyper::upgrade::on(&mut req));
        let max_body = settings.max_body_bytes;
        drop(settings);
        let (parts, body) = req.into_parts();
        let body: UpstreamBody = body.map_err(Into::into).boxed();
        let body = match body.is_end_stream() {
            true => body,
            false => {
                trace.body = Some(Arc::default());
                prefetch(body, max_body)
                    .await
                    .map_err(|err| ProxyError::Body(BodyFault::of(&*err)))?
            }
        };
        let settings = self.settings.load();
        let (req, body_sent) = prepare_request(
            Request::from_parts(parts, body),
            (&conn.peer_ip, conn.tls.is_some()),
            &settings,
            protocol.clone(),
            trace.body.clone(),
        )?;
        drop(settings);
        if conn.is_h2() {
            // hyper looks for the client's RST_STREAM only while the handler
            // is pending: yielding once before any backend work makes a
            // stream reset in the same read as its HEADERS cost nothing.
            tokio::task::yield_now().await;
        }
        // Until the response body ends, a reset counts as a cancel.
        let exchange = conn.exchange_started();
        let forwarded = self
            .forward(&snapshot, &key, picked, req, body_sent, trace)
            .await;
        match (&forwarded, exchange) {
            (Ok(_), exchange) => trace.exchange = exchange,
            // The client reset its stream while its body was on the way.
            (Err(ProxyError::Body(BodyFault::Gone)), exchange) => drop(exchange),
            (Err(_), Some(exchange)) => exchange.done(),
            (Err(_), None) => {}
        }
        let (backend, mut response) = forwarded?;
        let upgraded = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if upgraded
            && !protocol
                .as_ref()
                .is_some_and(|p| headers::switched_to(response.headers(), p))
        {
            tracing::warn!(backend = %backend.address, "backend switched protocols it was not asked to");
            trace.lease = None;
            return Err(ProxyError::BadGateway);
        }
        if framed_twice(response.headers()) {
            // RFC 9112 §6.3: the length is dropped, and the connection is
            // not reused (its framing cannot be trusted).
            response.headers_mut().remove(header::CONTENT_LENGTH);
            if let Some(lease) = &mut trace.lease {
                lease.discard();
            }
        }
        if let (true, Some(client)) = (upgraded, client_upgrade) {
            let backend_side = hyper::upgrade::on(&mut response);
            let open = (conn.start_request(), self.telemetry.start(&backend));
            let closing = self.drains.token(&backend.address);
            let idle = self.settings.load().tunnel_idle_timeout;
            tokio::spawn(tunnel(client, backend_side, open, closing, idle));
        }
        tracing::debug!(peer = %conn.peer, key = key.as_str(), rule = rule.as_str(), backend = %backend.address,
            status = response.status().as_u16(), "proxied");
        Ok(prepare_response(response, upgraded))
    }
}

/// Phase 3: the request as the backend sees it: same method, path, query,
/// `Host` and body; origin-form target; hop-by-hop headers removed;
/// `X-Forwarded-*` set. Returns a receiver that fires once the body is sent.
pub fn prepare_request(
    req: Request<UpstreamBody>,
    (peer, https): (&PeerIp, bool),
    settings: &ProxySettings,
    upgrade: Option<HeaderValue>,
    progress: Option<Arc<BodyProgress>>,
) -> Result<(Request<UpstreamBody>, tokio::sync::oneshot::Receiver<()>), ProxyError> {
    let (mut parts, body) = req.into_parts();
    if let (Some(limit), Some(length)) = (settings.max_body_bytes, declared_length(&parts.headers))
    {
        if length > limit {
            return Err(BodyFault::TooLarge.into());
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
    // The request id reaches the backend whatever `Connection` names.
    let request_id = parts.headers.get(&request_id::X_REQUEST_ID).cloned();
    headers::remove_hop_by_hop(&mut parts.headers, upgrade);
    if let Some(id) = request_id {
        parts.headers.insert(request_id::X_REQUEST_ID.clone(), id);
    }
    if !settings.forward_underscore_headers {
        headers::remove_underscore_headers(&mut parts.headers);
    }
    headers::set_forwarded(
        &mut parts.headers,
        (peer, https),
        Some(&host),
        &settings.trusted_proxies,
    );
    if parts.version == Version::HTTP_2 {
        headers::join_cookies(&mut parts.headers);
    }
    parts.headers.insert(header::HOST, host);
    parts.uri = origin_form(&parts.uri);
    parts.version = Version::HTTP_11;
    // A body of unknown length goes out chunked whatever the method (hyper
    // would drop a GET's), one of known length with its length.
    if !body.is_end_stream()
        && body.size_hint().exact().is_none()
        && !parts.headers.contains_key(header::CONTENT_LENGTH)
    {
        parts.headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    let body: UpstreamBody = match settings.max_body_bytes {
        Some(limit) => Limited::new(body, limit as usize).boxed(),
        None => body,
    };
    let pace = Pace {
        idle: settings.body_idle_timeout,
        min_rate: settings.min_body_rate,
    };
    let (body, sent) = RequestBody::new(body, progress, pace);
    Ok((Request::from_parts(parts, body.boxed()), sent))
}

/// A response with both `Transfer-Encoding` and `Content-Length`.
fn framed_twice(headers: &http::HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING) && headers.contains_key(header::CONTENT_LENGTH)
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
    let protocol = upgraded
        .then(|| parts.headers.get(header::UPGRADE).cloned())
        .flatten();
    headers::remove_hop_by_hop(&mut parts.headers, protocol);
    Response::from_parts(parts, body.map_err(Into::into).boxed())
}
