//! The data plane: client connections in, backend connections out.
//!
//! - [`workers`]: one thread and single-threaded runtime per worker, each
//!   running [`serve`] on the shared listening sockets (plain and TLS).
//! - [`serve`]: the accept loop (connection limit, TCP_NODELAY, one task per
//!   connection, graceful shutdown), the TLS handshake on the HTTPS
//!   listener ([`crate::tls::handshake`]); [`proxy_protocol`]: the header a
//!   trusted TCP balancer sends first; [`prefixed`]: the bytes read past it.
//! - [`client_io`]: per-connection deadlines (read, write, HTTP/2 window);
//!   [`rest`]: an idle HTTP/1 connection rests without hyper's buffers;
//!   [`conn`]: what a connection's I/O and its requests share;
//!   [`tracker`]: every HTTP/1 head and body followed, one verdict per
//!   request; [`framing`]: one head's checks (ambiguous framing hyper would
//!   accept).
//! - [`admit`]: what is refused or answered before routing; [`prefetch`]:
//!   a body's first bytes judged before the head goes out; [`stall`]: the
//!   idle timer of bodies and writes; [`on_read`]: a stream that reports
//!   its reads (tunnel idle clock, backend byte count).
//! - [`handler`]: the request phases; [`pick`]: candidates by hash order
//!   and health; [`forward`]: failover, safe resends, whose fault a failure is.
//! - [`https`]: `421` for a host the connection's certificate does not
//!   cover, redirects of plain requests to HTTPS, HSTS.
//! - [`request_id`]: `X-Request-Id`, kept or made.
//! - [`headers`]: hop-by-hop and `X-Forwarded-*` rewriting.
//! - [`upstream`]: the keep-alive pool of backend connections.
//! - [`body`], [`error`]: body wrappers; errors and their responses.
//! - [`tunnel`]: upgraded connections, with an idle timeout.
//! - [`drain`]: closes a drained backend's leftovers after `timeouts.drain`.
//! - [`access`]: what a request did ([`access::Trace`]); byte counts,
//!   durations and the access-log line, written when a response body is done.
//!
//! It reads the membership only through [`crate::routing::BackendPool::load`]
//! and never touches the config file, the database or the admin API.

pub mod access;
pub mod admit;
pub mod body;
pub mod client_io;
pub mod conn;
pub mod drain;
pub mod error;
pub mod forward;
pub mod framing;
pub mod handler;
pub mod headers;
pub mod https;
pub mod on_read;
pub mod pick;
pub mod prefetch;
pub mod prefixed;
pub mod proxy_protocol;
pub mod request_id;
pub mod rest;
pub mod stall;
pub mod tracker;
pub mod tunnel;
pub mod upstream;
pub mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use handler::Proxy;

use client_io::{ClientIo, ConnShared, Deadlines};
use conn::TlsConn;
use prefixed::Prefixed;

use crate::config::ProxySettings;
use crate::listen::{accept, Accepted};

/// What a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP/1.x and h2c.
    Http,
    /// TLS (certificate by SNI), then HTTP/1.x or HTTP/2 by ALPN.
    Https,
}

/// Serve proxied HTTP (or HTTPS) on `listener` until `shutdown` fires,
/// then stop accepting and give open connections `shutdown_grace` to finish.
pub async fn serve(
    listener: TcpListener,
    scheme: Scheme,
    proxy: Arc<Proxy>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let permits = Arc::clone(&proxy.connections);
    // Told to finish when this listener stops accepting; the tracker
    // waits for them.
    let stopping = shutdown.child_token();
    let connections = TaskTracker::new();

    while let Some(Accepted { stream, peer, slot }) = accept(&listener, &permits, &shutdown).await {
        // Per connection: a config reload applies to the connections after it.
        let settings = proxy.settings.load_full();
        let proxy = Arc::clone(&proxy);
        let stopping = stopping.clone();
        connections.spawn(async move {
            proxy.telemetry.client_connection(true);
            serve_connection(&proxy, stream, peer, scheme, &settings, &stopping).await;
            proxy.telemetry.client_connection(false);
            drop(slot);
        });
    }

    drop(listener);
    stopping.cancel();
    connections.close();
    tracing::info!(
        ?scheme,
        "proxy stopped accepting; waiting for in-flight requests"
    );
    let grace = proxy.settings.load().shutdown_grace;
    tokio::select! {
        () = connections.wait() => tracing::info!(?scheme, "all client connections closed"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "grace period over; closing remaining connections");
        }
    }
    Ok(())
}

/// One client connection: its PROXY protocol header if its peer is a
/// trusted balancer, the TLS handshake on the HTTPS listener, then HTTP
/// until it closes (or the graceful stop).
async fn serve_connection(
    proxy: &Arc<Proxy>,
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    scheme: Scheme,
    settings: &ProxySettings,
    stopping: &CancellationToken,
) {
    let accepted = tokio::time::Instant::now();
    set_send_limits(&stream, peer, settings);
    let balancers = settings.proxy_protocol.as_deref();
    let from_balancer = balancers.is_some_and(|nets| crate::config::any_contains(nets, peer.ip()));
    let (client, read_ahead) = if from_balancer {
        // Boxed, like the TLS handshake: only while it runs.
        let header = proxy_protocol::read_header(&mut stream, peer, settings.header_read_timeout);
        match Box::pin(header).await {
            Ok(pair) => pair,
            Err(refused) => {
                tracing::debug!(%peer, %refused, "connection closed");
                proxy.telemetry.refused(refused);
                return;
            }
        }
    } else {
        (peer, bytes::Bytes::new())
    };
    let stream = Prefixed::new(read_ahead, stream);
    let deadlines = Deadlines {
        header_read: settings.header_read_timeout,
        idle: settings.idle_timeout,
        send_idle: settings.send_idle_timeout,
        max_head: settings.max_header_bytes,
        refuse_proxy_header: balancers.is_some() && !from_balancer,
    };
    let shared = ConnShared::new(client);
    if scheme == Scheme::Http {
        // Made here, not in `serve_plain`: an async fn keeps its arguments
        // for its whole life, and a resting connection's task should hold
        // two pointers, not the stream's state.
        let shared = Arc::new(shared);
        let io = ClientIo::new(stream, Arc::clone(&shared), deadlines).resting_when_idle();
        return serve_plain(proxy, Box::new(io), shared, settings, stopping).await;
    }
    // Boxed: the handshake's state is large, and a plain connection's task
    // must stay small while it rests.
    Box::pin(serve_tls(
        proxy, stream, shared, deadlines, settings, stopping, accepted,
    ))
    .await;
}

/// `limits.client_send_buffer` and `limits.client_unsent_buffer` on an
/// accepted socket. The unsent limit is what keeps a client that stops
/// reading from taking the kernel's whole send buffer (4 MiB on Debian,
/// which the proxy would fill, copying, at the download's start).
fn set_send_limits(stream: &tokio::net::TcpStream, peer: SocketAddr, settings: &ProxySettings) {
    if let Some(size) = settings.client_send_buffer {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if let Err(err) = rustix::net::sockopt::set_socket_send_buffer_size(stream, size) {
            tracing::debug!(%peer, %err, "cannot set the client send buffer");
        }
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(bytes) = settings.client_unsent_buffer {
        if let Err(err) = socket2::SockRef::from(stream).set_tcp_notsent_lowat(bytes) {
            tracing::debug!(%peer, %err, "cannot set the client unsent limit");
        }
    }
}

/// The TLS handshake, then HTTP over it.
async fn serve_tls(
    proxy: &Arc<Proxy>,
    stream: Prefixed<tokio::net::TcpStream>,
    shared: ConnShared,
    deadlines: Deadlines,
    settings: &ProxySettings,
    stopping: &CancellationToken,
    accepted: tokio::time::Instant,
) {
    let peer = shared.peer;
    // The handshake must finish within header_read of the accept; the
    // first request head then gets its own header_read.
    let deadline = accepted + settings.header_read_timeout;
    if https::speaks_plain_http(&stream, deadline).await {
        tracing::debug!(%peer, "plain HTTP on the HTTPS port: answered 400");
        let err = crate::tls::HandshakeError::PlainHttp;
        proxy.telemetry.tls.handshake_failed(&err);
        return https::answer_plain_http(stream, deadline).await;
    }
    let on_demand = proxy.on_demand.as_deref();
    let certificates = proxy.certificates.certificates();
    match crate::tls::handshake(stream, certificates, deadline, on_demand).await {
        Ok(established) => {
            proxy
                .telemetry
                .tls
                .handshake_done(established.version, established.sni_missed);
            let tls = TlsConn {
                served: established.served,
                version: established.version,
            };
            let io = established.stream;
            serve_http(
                proxy,
                io,
                shared.with_tls(tls),
                deadlines,
                settings,
                stopping,
            )
            .await;
        }
        Err(err) => {
            tracing::debug!(%peer, %err, "TLS handshake failed");
            proxy.telemetry.tls.handshake_failed(&err);
        }
    }
}

/// HTTP on a TLS connection (after its handshake).
async fn serve_http<T>(
    proxy: &Arc<Proxy>,
    stream: T,
    shared: ConnShared,
    deadlines: Deadlines,
    settings: &ProxySettings,
    stopping: &CancellationToken,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(shared);
    let io = TokioIo::new(ClientIo::new(stream, Arc::clone(&shared), deadlines));
    let conn = connection_builder(settings)
        .serve_connection_with_upgrades(io, service(proxy, &shared))
        .into_owned();
    let graceful =
        |conn: std::pin::Pin<&mut _>| auto::UpgradeableConnection::graceful_shutdown(conn);
    if let Err(err) = until_done(Box::pin(conn), stopping, graceful).await {
        tracing::debug!(peer = %shared.peer, %err, "client connection ended with an error");
    }
    finish(proxy, &shared);
}

/// HTTP on a plain connection: served by hyper until it is idle, then
/// resting without hyper's state until the client sends again (see
/// [`rest`]); HTTP/2 (h2c) connections never rest.
async fn serve_plain(
    proxy: &Arc<Proxy>,
    io: Box<ClientIo<Prefixed<tokio::net::TcpStream>>>,
    shared: Arc<ConnShared>,
    settings: &ProxySettings,
    stopping: &CancellationToken,
) {
    let service = service(proxy, &shared);
    let home: rest::Home<_> = Arc::default();
    // The first request may be HTTP/1 or h2c: the auto builder tells.
    let first = connection_builder(settings)
        .serve_connection_with_upgrades(
            TokioIo::new(rest::Lent::new(io, Arc::clone(&home))),
            service.clone(),
        )
        .into_owned();
    let graceful =
        |conn: std::pin::Pin<&mut _>| auto::UpgradeableConnection::graceful_shutdown(conn);
    let mut served = until_done(Box::pin(first), stopping, graceful)
        .await
        .map_err(|e| e.to_string());
    // Boxed hyper connections: the task's own state stays small while the
    // connection rests.
    while served.is_ok() {
        let Some(mut io) = rest::take_home(&home) else {
            break;
        };
        proxy.telemetry.resting_connection(true);
        let woken = rest::wake(&io, stopping).await;
        proxy.telemetry.resting_connection(false);
        if !woken {
            break;
        }
        io.resume();
        let next = http1_builder(settings)
            .serve_connection(
                TokioIo::new(rest::Lent::new(io, Arc::clone(&home))),
                service.clone(),
            )
            .with_upgrades();
        let graceful = |conn: std::pin::Pin<&mut _>| {
            hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(conn)
        };
        served = until_done(Box::pin(next), stopping, graceful)
            .await
            .map_err(|e| e.to_string());
    }
    if let Err(err) = served {
        tracing::debug!(peer = %shared.peer, %err, "client connection ended with an error");
    }
    finish(proxy, &shared);
}

/// One request being handled (boxed: see [`service`]).
type Handling = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<hyper::Response<body::ResponseBody>, error::ClientGone>,
            > + Send,
    >,
>;

/// The request handler for the connection `shared`.
fn service(
    proxy: &Arc<Proxy>,
    shared: &Arc<ConnShared>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = hyper::Response<body::ResponseBody>,
    Error = error::ClientGone,
    Future = Handling,
> + Clone {
    let for_service = Arc::clone(proxy);
    let service_shared = Arc::clone(shared);
    // Boxed: hyper keeps room for one request future per connection for
    // the connection's life, and `handle`'s state machine is ~4 KiB. A
    // box per request costs one allocation; unboxed, every idle
    // keep-alive connection would hold those 4 KiB.
    service_fn(move |req| -> Handling {
        Box::pin(handler::handle(
            Arc::clone(&for_service),
            Arc::clone(&service_shared),
            req,
        ))
    })
}

/// Drive the hyper connection `conn` to its end; when the proxy stops,
/// `graceful` asks it to finish the requests in flight and close.
async fn until_done<C, E>(
    mut conn: std::pin::Pin<Box<C>>,
    stopping: &CancellationToken,
    graceful: impl FnOnce(std::pin::Pin<&mut C>),
) -> Result<(), E>
where
    C: std::future::Future<Output = Result<(), E>>,
{
    tokio::select! {
        // The connection first: a request whose bytes are waiting (a
        // connection just back from rest) is read before the stop, so it
        // is finished, not cut.
        biased;
        done = conn.as_mut() => return done,
        () = stopping.cancelled() => {}
    }
    graceful(conn.as_mut());
    conn.await
}

/// What a closed connection leaves in the metrics and the log.
fn finish(proxy: &Proxy, shared: &ConnShared) {
    shared.mark_ended();
    if shared.cancel_flood() {
        proxy.telemetry.cancel_flood();
    }
    if let Some(refused) = shared.refused() {
        tracing::debug!(peer = %shared.peer, %refused, "connection closed");
        proxy.telemetry.refused(refused);
    }
}

/// HTTP/1.1 + h2c with our limits. The head-size limit is hyper's read
/// buffer limit (a larger head gets `431`); hyper's header timer is off
/// because [`ClientIo`] enforces header-read and idle deadlines itself.
fn connection_builder(settings: &ProxySettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(settings.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.h2_max_streams)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// The HTTP/1 settings of [`connection_builder`], for a connection that
/// rested (it is known to speak HTTP/1).
fn http1_builder(settings: &ProxySettings) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(settings.max_header_bytes)
        .keep_alive(true);
    builder
}

/// Close this worker's idle backend connections past `backend_idle`
/// until `shutdown` fires.
pub async fn reap_pool(proxy: Arc<Proxy>, shutdown: CancellationToken) {
    let period =
        (proxy.settings.load().backend_idle_timeout / 2).max(std::time::Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => proxy.upstreams.reap(),
            () = shutdown.cancelled() => return,
        }
    }
}
