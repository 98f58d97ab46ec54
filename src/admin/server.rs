//! The HTTP server of the admin and metrics listeners: HTTP/1.1 (all the
//! API and the UI need), a deadline for every request head (also the idle
//! time between requests) and a bound on open connections, so that a port
//! others can reach cannot hold the process's file descriptors.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::listen::{accept, Accepted};

/// Open connections per listener; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 256;

/// Serve `router` on `listener` until `shutdown` fires; open connections
/// then get `grace` to finish. A request head must arrive within
/// `header_read` (`timeouts.header_read`), which also bounds how long a
/// kept-alive connection may sit idle.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    (grace, header_read): (Duration, Duration),
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    while let Some(Accepted { stream, peer, slot }) = accept(&listener, &slots, &shutdown).await {
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read)
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(router.clone()),
            );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%peer, %err, "admin connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("admin connections still open after the grace period; closing them");
        }
    }
    Ok(())
}
