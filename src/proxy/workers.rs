//! Worker threads: the data plane runs on `workers` OS threads, each with
//! its own single-threaded tokio runtime, its own accept loop on the shared
//! listening socket and its own pool of backend connections.
//!
//! Why not one multi-threaded runtime: a proxied request hops between the
//! client connection's task and the backend connection's task several
//! times; on a work-stealing runtime every hop is an atomic handoff that
//! may cross threads, and a backend connection opened on one thread may be
//! polled by another. Here a request and the backend connection it uses
//! live on one thread from accept to the last byte (the model nginx and
//! HAProxy use), and the threads share only read-mostly state (the routing
//! snapshot, settings, counters). The control plane (admin API, health
//! checks, drain timeouts, signals) stays on the main runtime.
//!
//! Every worker registers a duplicate of the listening socket in its own
//! epoll set; whichever worker is free accepts first (the others see
//! `EAGAIN`), which spreads connections by load without SO_REUSEPORT's
//! fixed hash.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{reap_pool, serve, Proxy, Scheme};

/// Serve on `listener` with `workers` threads until `shutdown` fires and
/// every worker has finished its graceful stop.
pub async fn serve_on_workers(
    listeners: Vec<(TcpListener, Scheme)>,
    proxy: &Proxy,
    workers: usize,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listeners = listeners
        .into_iter()
        .map(|(l, scheme)| l.into_std().map(|l| (l, scheme)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut finished = Vec::with_capacity(workers);
    for n in 0..workers.max(1) {
        let listeners = listeners
            .iter()
            .map(|(l, scheme)| l.try_clone().map(|l| (l, *scheme)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let proxy = Arc::new(proxy.for_worker());
        let shutdown = shutdown.clone();
        let (done, finished_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("switchyard-worker-{n}"))
            .spawn(move || {
                let _ = done.send(run_worker(listeners, proxy, shutdown));
            })?;
        finished.push(finished_rx);
    }
    drop(listeners);
    let mut result = Ok(());
    for worker in finished {
        let outcome = worker
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("a proxy worker thread panicked")));
        if let Err(err) = outcome {
            tracing::error!(%err, "proxy worker failed");
            result = Err(err);
        }
    }
    result
}

/// One worker: every listener served on one runtime, sharing one pool of
/// backend connections (and its reaper).
fn run_worker(
    listeners: Vec<(std::net::TcpListener, Scheme)>,
    proxy: Arc<Proxy>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let reaper = tokio::spawn(reap_pool(Arc::clone(&proxy), shutdown.clone()));
        let mut served = tokio::task::JoinSet::new();
        for (listener, scheme) in listeners {
            let listener = TcpListener::from_std(listener)?;
            served.spawn(serve(
                listener,
                scheme,
                Arc::clone(&proxy),
                shutdown.clone(),
            ));
        }
        let mut result = Ok(());
        while let Some(outcome) = served.join_next().await {
            if let Err(err) = outcome.unwrap_or_else(|e| Err(std::io::Error::other(e))) {
                result = Err(err);
            }
        }
        reaper.abort();
        result
    })
}
