//! Active health checks: one task per backend of the current snapshot,
//! each sending `GET <path>` every `interval` on a fresh connection and
//! feeding the verdict to [`Health`]. A supervisor starts and stops tasks as
//! the membership (or the config) changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Fault, Health};
use crate::config::ActiveCheck;
use crate::routing::{BackendAddr, BackendPool};

/// How often the supervisor compares its tasks with the membership.
const RECONCILE_EVERY: Duration = Duration::from_millis(200);

/// Run active checks for every backend of `pool` until `shutdown` fires.
pub fn spawn(
    health: Arc<Health>,
    pool: Arc<BackendPool>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tasks: HashMap<BackendAddr, JoinHandle<()>> = HashMap::new();
        let mut tick = tokio::time::interval(RECONCILE_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => break,
            }
            let enabled = health.config().active.is_some();
            let snapshot = pool.load();
            let wanted: Vec<&BackendAddr> = if enabled {
                snapshot.backends().iter().map(|b| &b.address).collect()
            } else {
                Vec::new()
            };
            tasks.retain(|address, task| {
                let keep = wanted.contains(&address) && !task.is_finished();
                if !keep {
                    task.abort();
                }
                keep
            });
            for address in wanted {
                if !tasks.contains_key(address) {
                    let task = tokio::spawn(check_loop(Arc::clone(&health), address.clone()));
                    tasks.insert(address.clone(), task);
                }
            }
        }
        for task in tasks.into_values() {
            task.abort();
        }
    })
}

async fn check_loop(health: Arc<Health>, address: BackendAddr) {
    loop {
        let config = health.config();
        let Some(check) = config.active.as_ref() else {
            return;
        };
        match check_once(&address, check).await {
            Ok(status) => health.check_passed(&address, check.healthy_threshold, status),
            Err(fault) => {
                tracing::debug!(backend = %address, %fault, "active health check failed");
                health.check_failed(&address, check.unhealthy_threshold, fault);
            }
        }
        tokio::time::sleep(check.interval).await;
    }
}

/// One `GET` on a new connection, bounded by the check's timeout; the
/// status if it is in `expect_status`.
pub async fn check_once(address: &BackendAddr, check: &ActiveCheck) -> Result<u16, Fault> {
    let deadline = tokio::time::Instant::now() + check.timeout;
    let connect = TcpStream::connect((address.host(), address.port()));
    let stream = tokio::time::timeout_at(deadline, connect)
        .await
        .map_err(|_| Fault::ConnectTimeout)?
        .map_err(|e| Fault::of_connect(&e))?;
    let exchange = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| Fault::ClosedEarly)?;
        tokio::spawn(conn);
        let host = check.host.clone().unwrap_or_else(|| address.to_string());
        let request = Request::get(check.path.as_str())
            .header(header::HOST, host)
            .header(header::USER_AGENT, "switchyard-health-check")
            .header(header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .expect("a validated path and host make a request");
        let response = sender.send_request(request).await.map_err(|e| {
            if e.is_parse() {
                Fault::InvalidResponse
            } else {
                Fault::ClosedEarly
            }
        })?;
        let status = response.status().as_u16();
        if check.expect_status.contains(&status) {
            Ok(status)
        } else {
            Err(Fault::Status(status))
        }
    };
    tokio::time::timeout_at(deadline, exchange)
        .await
        .map_err(|_| Fault::ResponseTimeout)?
}
