//! On-demand certificates (`acme.ask`): a handshake for a name no
//! certificate covers asks `GET <ask>?domain=<name>`; `200` makes it a
//! managed domain and holds the handshake (at most [`HOLD`], and ending a
//! second before its deadline, so the handshake can still finish) while its
//! order is pending; a failed order ends the wait at once.
//!
//! The ask and the domain's creation run once per name, as a task on the
//! main runtime (not on the worker's, and not cancelled with a handshake);
//! concurrent handshakes wait for its answer. At most [`ASKS_AT_ONCE`] asks
//! run at once (more fail their handshake without asking). Refusals are
//! remembered for [`REFUSED_FOR`] (no answer: [`FAILED_FOR`]); when
//! [`REMEMBERED`] names are remembered, new names are not asked about at
//! all until some expire: a scanner trying names cannot make us call the
//! ask service in a loop, nor wipe what we remember.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use super::{managed_name, Acme};
use crate::store::{DomainStatus, StoreError};
use crate::tls::{unix_now, OnDemand};

/// The longest a handshake waits for its certificate.
const HOLD: Duration = Duration::from_secs(10);
/// Left for the rest of the handshake after the wait.
const FINISH: Duration = Duration::from_secs(1);
/// How long a name the ask service refused is not asked about again.
const REFUSED_FOR: Duration = Duration::from_secs(600);
/// How long a name whose ask failed (no answer) is not asked about again.
const FAILED_FOR: Duration = Duration::from_secs(30);
/// The ask service must answer within this.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);
/// Remembered refusals at most.
const REMEMBERED: usize = 10_000;
/// Asks running at once at most.
const ASKS_AT_ONCE: usize = 16;

/// What this node knows about names asked for.
#[derive(Debug)]
pub struct Asked {
    /// Names not to ask about until then.
    refused: Mutex<HashMap<String, Instant>>,
    /// Asks in flight: their verdict, once known.
    asking: Mutex<HashMap<String, watch::Receiver<Option<bool>>>>,
    slots: Arc<Semaphore>,
    /// Calls made to the ask service.
    pub calls: std::sync::atomic::AtomicU64,
}

impl Default for Asked {
    fn default() -> Self {
        Asked {
            refused: Mutex::default(),
            asking: Mutex::default(),
            slots: Arc::new(Semaphore::new(ASKS_AT_ONCE)),
            calls: Default::default(),
        }
    }
}

impl OnDemand for Acme {
    fn obtain<'a>(
        &'a self,
        name: &'a str,
        deadline: Instant,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(self.on_demand(name, deadline))
    }
}

impl Acme {
    async fn on_demand(&self, raw: &str, deadline: Instant) -> bool {
        if self.config().ask.is_none() {
            return false;
        }
        let Ok(name) = managed_name(raw) else {
            return false;
        };
        let limit = deadline
            .checked_sub(FINISH)
            .unwrap_or(deadline)
            .min(Instant::now() + HOLD);
        if self.managed_status(&name).is_none() {
            let Some(mut verdict) = self.verdict_for(&name) else {
                return false;
            };
            let decided = tokio::time::timeout_at(limit, verdict.wait_for(Option::is_some)).await;
            if !matches!(decided, Ok(Ok(ref v)) if **v == Some(true)) {
                return false;
            }
        }
        self.served_by(&name, limit).await
    }

    /// The verdict on `name`: the one being reached, or a new ask started
    /// (on the main runtime); `None` when it may not be asked about now.
    fn verdict_for(&self, name: &str) -> Option<watch::Receiver<Option<bool>>> {
        let asked = &self.asked;
        {
            let mut refused = asked.refused.lock().unwrap_or_else(|p| p.into_inner());
            match refused.get(name) {
                Some(until) if *until > Instant::now() => return None,
                Some(_) => {
                    refused.remove(name);
                }
                None => {}
            }
            if refused.len() >= REMEMBERED {
                let now = Instant::now();
                refused.retain(|_, until| *until > now);
                if refused.len() >= REMEMBERED {
                    // Under a scan: ask about nothing new until names expire.
                    return None;
                }
            }
        }
        let mut asking = asked.asking.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(verdict) = asking.get(name) {
            return Some(verdict.clone());
        }
        let slot = Arc::clone(&asked.slots).try_acquire_owned().ok()?;
        let (tx, rx) = watch::channel(None);
        asking.insert(name.to_owned(), rx.clone());
        let me = self.me()?;
        let name = name.to_owned();
        self.main_runtime().spawn(async move {
            let allowed = me.admit(&name).await;
            drop(slot);
            let _ = tx.send(Some(allowed));
            me.asked
                .asking
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&name);
        });
        Some(rx)
    }

    /// Ask about `name`; if allowed, make it a managed domain (ordered next).
    async fn admit(&self, name: &str) -> bool {
        let Some(ask) = self.config().ask.clone() else {
            return false;
        };
        self.asked
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let verdict = ask_service(&ask, name).await;
        if verdict != Ok(true) {
            let wait = if verdict.is_ok() {
                REFUSED_FOR
            } else {
                FAILED_FOR
            };
            if let Err(err) = &verdict {
                tracing::warn!(domain = %name, %err, "ACME on demand: the ask service did not answer");
            }
            self.asked
                .refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_owned(), Instant::now() + wait);
            return false;
        }
        match self.store().add_domain(name).await {
            Ok(_) | Err(StoreError::DomainExists(_)) => {}
            Err(err) => {
                tracing::warn!(domain = %name, %err, "ACME on demand: cannot add the domain");
                self.asked
                    .refused
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.to_owned(), Instant::now() + FAILED_FOR);
                return false;
            }
        }
        tracing::info!(domain = %name, "ACME on demand: allowed; ordering");
        if let Err(err) = self.resync().await {
            tracing::warn!(domain = %name, %err, "ACME on demand: cannot read the domains");
        }
        true
    }

    /// Wait until a certificate covering `name` is served (by `limit`);
    /// give up at once when its order failed.
    async fn served_by(&self, name: &str, limit: Instant) -> bool {
        let certificates = self.keeper().certificates();
        let mut published = certificates.subscribe();
        loop {
            if certificates.load().for_host(name).is_some() {
                return true;
            }
            if let Some((DomainStatus::Failed, retry_at)) = self.managed_status(name) {
                if retry_at.is_none_or(|at| at > unix_now()) {
                    return false;
                }
            }
            let wake = (Instant::now() + Duration::from_millis(250)).min(limit);
            match tokio::time::timeout_at(wake, published.changed()).await {
                Ok(Err(_)) => return false,
                _ if Instant::now() >= limit => return false,
                _ => {}
            }
        }
    }
}

/// `GET <ask>?domain=<name>`: `Ok(true)` for `200`, `Ok(false)` for any
/// other status, `Err` when the service did not answer.
async fn ask_service(ask: &http::Uri, name: &str) -> Result<bool, String> {
    let host = ask.host().ok_or("no host")?;
    let port = ask.port_u16().unwrap_or(80);
    let path = ask.path();
    let query = match ask.query() {
        Some(q) => format!("{q}&domain={name}"),
        None => format!("domain={name}"),
    };
    let target = format!("{path}?{query}");
    let authority = match ask.port_u16() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let call = async {
        let stream = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = http::Request::get(target)
            .header(http::header::HOST, authority)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(response.status() == http::StatusCode::OK)
    };
    tokio::time::timeout(ASK_TIMEOUT, call)
        .await
        .map_err(|_| "no answer within 3 s".to_owned())?
}
