//! Phase 4, forward: the request goes to the key's first candidate that is
//! not down and accepts a connection, and comes back with the response head.
//!
//! - Candidates are taken in the key's hash order, skipping backends that
//!   health checks took out (if every candidate is down, the first is tried
//!   anyway: better a try than a certain `503`).
//! - A connection that cannot be made costs nothing but time: the untouched
//!   request goes to the next candidate (`failover.tries` in all).
//! - A request is sent again only when that cannot duplicate it: hyper gave
//!   it back unsent, or it is idempotent, has no body and went out on a
//!   reused keep-alive connection that the backend closed before answering
//!   (the keep-alive race). Then once, on a fresh connection. A POST is
//!   never sent twice.

use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use tokio::sync::oneshot;

use super::error::ProxyError;
use super::handler::Trace;
use super::upstream::{Sender, UpstreamBody};
use super::Proxy;
use crate::routing::{Backend, RoutingKey, Snapshot};

type SendResult = Result<Response<Incoming>, TrySendError<Request<UpstreamBody>>>;

/// Why an exchange gave up.
enum Failure {
    /// The backend could not be reached and the request was not sent (it
    /// can go to the next candidate).
    Unreachable(Box<Request<UpstreamBody>>),
    Failed(ProxyError),
}

impl From<ProxyError> for Failure {
    fn from(err: ProxyError) -> Self {
        Failure::Failed(err)
    }
}

/// The key's first candidate that is not down (or the first, if all are).
pub fn pick_backend(
    proxy: &Proxy,
    snapshot: &Snapshot,
    key: &RoutingKey,
) -> Result<Arc<Backend>, ProxyError> {
    let first = snapshot.pick(key).ok_or(ProxyError::NoBackends)?;
    if !proxy.health.is_down(&first.address) {
        return Ok(Arc::clone(first));
    }
    proxy.telemetry.failed_over(&first.address);
    let up = snapshot
        .candidates(key, usize::MAX)
        .into_iter()
        .find(|b| !proxy.health.is_down(&b.address));
    Ok(Arc::clone(up.unwrap_or(first)))
}

impl Proxy {
    /// Send `req` to `first`, failing over to the key's next candidates
    /// while connecting fails.
    pub(super) async fn forward(
        &self,
        snapshot: &Snapshot,
        key: &RoutingKey,
        first: Arc<Backend>,
        mut req: Request<UpstreamBody>,
        body_sent: oneshot::Receiver<()>,
        trace: &mut Trace,
    ) -> Result<(Arc<Backend>, Response<Incoming>), ProxyError> {
        let mut backend = first;
        let mut tried: Vec<Arc<Backend>> = Vec::new();
        let mut body_sent = Some(body_sent);
        loop {
            let connected = self.upstreams.checkout(&backend.address).await;
            let err = match connected {
                Ok(checkout) => {
                    trace.backend = Some(self.telemetry.start(&backend));
                    trace.closing = Some(self.drains.token(&backend.address));
                    let started = Instant::now();
                    let result = self
                        .exchange(
                            &backend,
                            checkout.sender,
                            checkout.reused,
                            req,
                            &mut body_sent,
                        )
                        .await;
                    match result {
                        Ok((response, sender)) => {
                            self.observe(&backend, Ok(response.status()));
                            // An upgraded connection belongs to its tunnel.
                            if response.status() != StatusCode::SWITCHING_PROTOCOLS {
                                trace.lease =
                                    Some(self.upstreams.lease(backend.address.clone(), sender));
                            }
                            trace.upstream_latency = Some(started.elapsed());
                            return Ok((backend, response));
                        }
                        Err(Failure::Failed(err)) => {
                            self.observe(&backend, Err(&err));
                            return Err(err);
                        }
                        Err(Failure::Unreachable(unsent)) => {
                            trace.backend = None;
                            req = *unsent;
                            "the kept-alive connection closed and a new one failed".to_owned()
                        }
                    }
                }
                Err(err) => err.to_string(),
            };
            self.telemetry.connect_failed(&backend.address);
            self.health.request_failed(&backend.address);
            tried.push(Arc::clone(&backend));
            let next = (tried.len() < self.settings.load().tries)
                .then(|| self.next_candidate(snapshot, key, &tried))
                .flatten();
            let Some(next) = next else {
                tracing::warn!(backend = %backend.address, %err, "backend unreachable; no candidate left");
                return Err(ProxyError::BadGateway);
            };
            tracing::warn!(backend = %backend.address, %err, next = %next.address,
                "backend unreachable; failing over");
            self.telemetry.failed_over(&backend.address);
            backend = next;
        }
    }

    /// The key's next candidate that was not tried and is not down.
    fn next_candidate(
        &self,
        snapshot: &Snapshot,
        key: &RoutingKey,
        tried: &[Arc<Backend>],
    ) -> Option<Arc<Backend>> {
        snapshot
            .candidates(key, usize::MAX)
            .into_iter()
            .find(|b| {
                !tried.iter().any(|t| t.address == b.address) && !self.health.is_down(&b.address)
            })
            .cloned()
    }

    /// Feed the outcome of an exchange to passive health checks.
    fn observe(&self, backend: &Backend, outcome: Result<StatusCode, &ProxyError>) {
        let failed = match outcome {
            Ok(status) => self.health.is_failure_status(status.as_u16()),
            Err(ProxyError::BadGateway | ProxyError::GatewayTimeout) => true,
            Err(_) => false,
        };
        if failed {
            self.health.request_failed(&backend.address);
        } else {
            self.health.request_succeeded(&backend.address);
        }
    }

    /// One exchange on `sender`; resent once on a fresh connection when
    /// that cannot duplicate the request (see the module notes).
    async fn exchange(
        &self,
        backend: &Backend,
        mut sender: Sender,
        reused: bool,
        req: Request<UpstreamBody>,
        body_sent: &mut Option<oneshot::Receiver<()>>,
    ) -> Result<(Response<Incoming>, Sender), Failure> {
        let resendable = reused && is_idempotent(req.method()) && req.body().is_end_stream();
        let head = resendable.then(|| head_of(&req));
        let first = self.send(&mut sender, req, body_sent).await?;
        let (result, sender) = match first {
            Err(mut err) => {
                let again = err
                    .take_message()
                    .or_else(|| head.map(|h| h.map(|()| empty())));
                let Some(req) = again else {
                    return Err(classify_send_error(backend, &err.into_error()).into());
                };
                tracing::debug!(backend = %backend.address, err = %err.error(), "resending on a fresh connection");
                self.telemetry.retried(&backend.address);
                let Ok(mut fresh) = self.upstreams.connect(&backend.address).await else {
                    return Err(Failure::Unreachable(Box::new(req)));
                };
                let result = self.send(&mut fresh, req, body_sent).await?;
                (result, fresh)
            }
            ok => (ok, sender),
        };
        let response =
            result.map_err(|err| Failure::from(classify_send_error(backend, &err.into_error())))?;
        Ok((response, sender))
    }

    /// Send and wait for the response head. The response-header timeout
    /// starts once the request body is sent (or at once if it already was).
    async fn send(
        &self,
        sender: &mut Sender,
        req: Request<UpstreamBody>,
        body_sent: &mut Option<oneshot::Receiver<()>>,
    ) -> Result<SendResult, ProxyError> {
        let response = sender.try_send_request(req);
        tokio::pin!(response);
        if let Some(signal) = body_sent.as_mut() {
            tokio::select! {
                result = &mut response => return Ok(result),
                _ = signal => *body_sent = None,
            }
        }
        let limit = self.settings.load().response_header_timeout;
        tokio::time::timeout(limit, response)
            .await
            .map_err(|_| ProxyError::GatewayTimeout)
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A copy of the request head (no extensions), to resend with an empty body.
fn head_of(req: &Request<UpstreamBody>) -> Request<()> {
    let mut head = Request::new(());
    *head.method_mut() = req.method().clone();
    *head.uri_mut() = req.uri().clone();
    *head.version_mut() = req.version();
    *head.headers_mut() = req.headers().clone();
    head
}

fn empty() -> UpstreamBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

fn classify_send_error(backend: &Backend, err: &hyper::Error) -> ProxyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return ProxyError::BodyTooLarge;
        }
        source = e.source();
    }
    tracing::warn!(backend = %backend.address, %err, "backend exchange failed");
    ProxyError::BadGateway
}
