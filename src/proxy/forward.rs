//! Phase 4, forward: the request goes to the picked candidate, failing over
//! to the key's next ones while connecting fails, and comes back with the
//! response head.
//!
//! - A connection that cannot be made costs nothing but time: the untouched
//!   request goes to the next candidate (`failover.tries` in all).
//! - A request is sent again only when that cannot duplicate it: hyper gave
//!   it back unsent, or it is idempotent, has no body and went out on a
//!   reused keep-alive connection that the backend closed without sending
//!   a single byte of a response (the keep-alive race). Then once, on a
//!   fresh connection. A POST is never sent twice, nor a request whose
//!   response was invalid or cut short.
//! - Every outcome is sorted by whose fault it is. The backend's own
//!   failures (refused or reset connections, invalid responses, timeouts,
//!   `failure_statuses`) are health evidence; a client whose body breaks or
//!   who goes away is answered (`400`, `413`) or dropped, and the backend's
//!   health is not touched.

use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use tokio::sync::oneshot;

use super::access::Trace;
use super::body::BodyProgress;
use super::error::{BodyFault, ProxyError};
use super::pick::next_candidate;
use super::upstream::{Conn, UpstreamBody};
use super::Proxy;
use crate::health::{Fault, Pass};
use crate::routing::{Backend, RoutingKey, Snapshot};

type SendResult = Result<Response<Incoming>, TrySendError<Request<UpstreamBody>>>;

/// Why an exchange gave up.
enum Failure {
    /// The backend could not be reached and the request was not sent (it
    /// can go to the next candidate).
    Unreachable(Box<Request<UpstreamBody>>, Fault),
    /// The backend failed after the request went out.
    Backend(Fault, ProxyError),
    /// The client's body failed: the client's fault, not the backend's.
    Client(BodyFault),
    /// The backend broke off while the client was still sending its body:
    /// its own timeout for a slow client, or a refusal of a request it
    /// could not take. Answered, but no evidence either way.
    Unclear(ProxyError),
}

impl Proxy {
    /// Send `req` to `first` (let through as `pass`), failing over to the
    /// key's next candidates while connecting fails.
    pub(super) async fn forward(
        &self,
        snapshot: &Snapshot,
        key: &RoutingKey,
        (first, pass): (Arc<Backend>, Pass),
        mut req: Request<UpstreamBody>,
        body_sent: oneshot::Receiver<()>,
        trace: &mut Trace,
    ) -> Result<(Arc<Backend>, Response<Incoming>), ProxyError> {
        let (mut backend, mut pass) = (first, pass);
        let mut body_sent = Some(body_sent);
        loop {
            let fault = match self.upstreams.checkout(&backend.address).await {
                Ok(checkout) => {
                    trace.backend = Some(self.telemetry.start(&backend));
                    trace.closing = Some(self.drains.token(&backend.address));
                    // Until the outcome is evidence, this request holds the
                    // backend's trial (given back if it ends without any).
                    trace.trial = (pass == Pass::Trial).then(|| backend.address.clone());
                    let started = Instant::now();
                    let result = self
                        .exchange(
                            &backend,
                            checkout.conn,
                            checkout.reused,
                            req,
                            &mut body_sent,
                        )
                        .await
                        .map_err(|failure| blame(failure, trace.body.as_deref()));
                    match result {
                        Ok((response, conn)) => {
                            trace.trial = None;
                            self.health.request_answered(
                                &backend.address,
                                pass,
                                response.status().as_u16(),
                            );
                            // An upgraded connection belongs to its tunnel.
                            if response.status() != StatusCode::SWITCHING_PROTOCOLS {
                                trace.lease =
                                    Some(self.upstreams.lease(backend.address.clone(), conn));
                            }
                            trace.upstream_latency = Some(started.elapsed());
                            return Ok((backend, response));
                        }
                        Err(Failure::Client(fault)) => return Err(fault.into()),
                        Err(Failure::Unclear(err)) => {
                            tracing::info!(backend = %backend.address,
                                "the backend gave up on a request whose body was still arriving");
                            trace.failed.push(backend);
                            return Err(err);
                        }
                        Err(Failure::Backend(fault, err)) => {
                            tracing::warn!(backend = %backend.address, %fault, "backend exchange failed");
                            trace.trial = None;
                            self.health.request_failed(&backend.address, pass, fault);
                            trace.failed.push(backend);
                            return Err(err);
                        }
                        Err(Failure::Unreachable(unsent, fault)) => {
                            trace.backend = None;
                            trace.trial = None;
                            req = *unsent;
                            fault
                        }
                    }
                }
                Err(err) => err.fault(),
            };
            self.telemetry.connect_failed(&backend.address);
            self.health.request_failed(&backend.address, pass, fault);
            trace.failed.push(Arc::clone(&backend));
            let next = (trace.failed.len() < self.settings.load().tries)
                .then(|| next_candidate(self, snapshot, key, &trace.failed))
                .flatten();
            let Some(next) = next else {
                tracing::warn!(backend = %backend.address, %fault, "backend unreachable; no candidate left");
                // The 502 is counted against the backend the key belongs to.
                trace.backend = Some(self.telemetry.start(&trace.failed[0]));
                return Err(ProxyError::BadGateway);
            };
            tracing::warn!(backend = %backend.address, %fault, next = %next.0.address,
                "backend unreachable; failing over");
            self.telemetry.failed_over(&backend.address);
            (backend, pass) = next;
        }
    }

    /// One exchange on `sender`; resent once on a fresh connection when
    /// that cannot duplicate the request (see the module notes).
    async fn exchange(
        &self,
        backend: &Backend,
        mut conn: Conn,
        reused: bool,
        req: Request<UpstreamBody>,
        body_sent: &mut Option<oneshot::Receiver<()>>,
    ) -> Result<(Response<Incoming>, Conn), Failure> {
        let resendable = reused && is_idempotent(req.method()) && req.body().is_end_stream();
        let head = resendable.then(|| head_of(&req));
        let received = conn.received();
        let first = self.send(&mut conn, req, body_sent).await?;
        let (result, conn) = match first {
            Err(mut err) => {
                // Nothing of a response arrived: the backend closed a
                // connection it considered idle.
                let raced = conn.received() == received
                    && !err.error().is_parse()
                    && !err.error().is_timeout();
                let again = err
                    .take_message()
                    .or_else(|| head.filter(|_| raced).map(|h| h.map(|()| empty())));
                let Some(req) = again else {
                    return Err(exchange_failed(&err.into_error()));
                };
                tracing::debug!(backend = %backend.address, err = %err.error(), "resending on a fresh connection");
                self.telemetry.retried(&backend.address);
                let mut fresh = match self.upstreams.connect(&backend.address).await {
                    Ok(fresh) => fresh,
                    Err(e) => return Err(Failure::Unreachable(Box::new(req), e.fault())),
                };
                let result = self.send(&mut fresh, req, body_sent).await?;
                (result, fresh)
            }
            ok => (ok, conn),
        };
        let response = result.map_err(|err| exchange_failed(&err.into_error()))?;
        Ok((response, conn))
    }

    /// Send and wait for the response head. The response-header timeout
    /// starts once the request body is sent (or at once if it already was).
    async fn send(
        &self,
        conn: &mut Conn,
        req: Request<UpstreamBody>,
        body_sent: &mut Option<oneshot::Receiver<()>>,
    ) -> Result<SendResult, Failure> {
        let response = conn.sender.try_send_request(req);
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
            .map_err(|_| Failure::Backend(Fault::ResponseTimeout, ProxyError::GatewayTimeout))
    }
}

/// Whose fault a failed exchange is: when the client's body failed on its
/// way, the client's, whatever hyper made of it; when the backend broke off
/// while the body was still arriving, nobody can tell.
fn blame(failure: Failure, body: Option<&BodyProgress>) -> Failure {
    let Some(body) = body else {
        return failure;
    };
    match (failure, body.fault()) {
        (Failure::Backend(..), Some(fault)) => Failure::Client(fault),
        (Failure::Backend(_, err), None) if !body.ended() => Failure::Unclear(err),
        (failure, _) => failure,
    }
}

/// A failed exchange, as the backend's fault (see [`blame`] for the client's).
fn exchange_failed(err: &hyper::Error) -> Failure {
    let fault = if err.is_parse() {
        Fault::InvalidResponse
    } else if err.is_timeout() {
        Fault::ResponseTimeout
    } else {
        Fault::ClosedEarly
    };
    tracing::debug!(%err, "exchange failed");
    Failure::Backend(fault, ProxyError::BadGateway)
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
