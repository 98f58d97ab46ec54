//! The data plane: client connections in, backend connections out.
//!
//! - [`workers`]: one thread and single-threaded runtime per worker, each
//!   running [`serve`] on the shared listening sockets (plain and TLS).
//! - [`serve`]: the accept loop (connection limit, TCP_NODELAY, one task per
//!   connection, graceful shutdown), the TLS handshake on the HTTPS
//!   listener ([`crate::tls::handshake`]); [`proxy_protocol`]: the header a
//!   trusted TCP balancer sends first; [`prefixed`]: the bytes read past it.
//! - [`client_io`]: per-connection deadlines (read, write, HTTP/2 window);
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
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
    let graceful = GracefulShutdown::new();

    while let Some(Accepted { stream, peer, slot }) = accept(&listener, &permits, &shutdown).await {
        // Per connection: a config reload applies to the connections after it.
        let settings = proxy.settings.load_full();
        let proxy = Arc::clone(&proxy);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            proxy.telemetry.client_connection(true);
            serve_connection(&proxy, stream, peer, scheme, &settings, watcher).await;
            proxy.telemetry.client_connection(false);
            drop(slot);
        });
    }

    drop(listener);
    tracing::info!(
        ?scheme,
        "proxy stopped accepting; waiting for in-flight requests"
    );
    let grace = proxy.settings.load().shutdown_grace;
    tokio::select! {
        () = graceful.shutdown() => tracing::info!(?scheme, "all client connections closed"),
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
    watcher: Watcher,
) {
    let accepted = tokio::time::Instant::now();
    if let Some(size) = settings.client_send_buffer {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if let Err(err) = rustix::net::sockopt::set_socket_send_buffer_size(&stream, size) {
            tracing::debug!(%peer, %err, "cannot set the client send buffer");
        }
    }
    let balancers = settings.proxy_protocol.as_deref();
    let from_balancer = balancers.is_some_and(|nets| crate::config::any_contains(nets, peer.ip()));
    let (client, read_ahead) = if from_balancer {
        match proxy_protocol::read_header(&mut stream, peer, settings.header_read_timeout).await {
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
        return serve_http(proxy, stream, shared, deadlines, settings, watcher).await;
    }
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
                watcher,
            )
            .await;
        }
        Err(err) => {
            tracing::debug!(%peer, %err, "TLS handshake failed");
            proxy.telemetry.tls.handshake_failed(&err);
        }
    }
}

/// HTTP on a connection (after its TLS handshake, if any).
async fn serve_http<T>(
    proxy: &Arc<Proxy>,
    stream: T,
    shared: ConnShared,
    deadlines: Deadlines,
    settings: &ProxySettings,
    watcher: Watcher,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(shared);
    let peer = shared.peer;
    let io = TokioIo::new(ClientIo::new(stream, Arc::clone(&shared), deadlines));
    let for_service = Arc::clone(proxy);
    let service_shared = Arc::clone(&shared);
    // Boxed: hyper keeps room for one request future per connection for
    // the connection's life, and `handle`'s state machine is ~4 KiB. A
    // box per request costs one allocation; unboxed, every idle
    // keep-alive connection would hold those 4 KiB.
    let service = service_fn(move |req| {
        Box::pin(handler::handle(
            Arc::clone(&for_service),
            Arc::clone(&service_shared),
            req,
        ))
    });
    let conn = connection_builder(settings)
        .serve_connection_with_upgrades(io, service)
        .into_owned();
    if let Err(err) = watcher.watch(conn).await {
        tracing::debug!(%peer, %err, "client connection ended with an error");
    }
    shared.mark_ended();
    if shared.cancel_flood() {
        proxy.telemetry.cancel_flood();
    }
    if let Some(refused) = shared.refused() {
        tracing::debug!(%peer, %refused, "connection closed");
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
