//! On-demand certificates (`acme.ask`): a handshake for a name no
//! certificate covers asks `GET <ask>?domain=<name>`; `200` makes it a
//! managed domain and holds the handshake (at most [`HOLD`], and never past
//! its deadline) until the certificate is served. One ask per name at a
//! time (concurrent handshakes wait for its answer); refusals are
//! remembered for [`REFUSED_FOR`] (errors for [`FAILED_FOR`]), so a scanner
//! trying names cannot make us call the ask service in a loop.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Acme;
use crate::routing::normalize_host;
use crate::store::StoreError;
use crate::tls::OnDemand;

/// The longest a handshake waits for its certificate.
const HOLD: Duration = Duration::from_secs(10);
/// How long a name the ask service refused is not asked about again.
const REFUSED_FOR: Duration = Duration::from_secs(600);
/// How long a name whose ask failed (no answer) is not asked about again.
const FAILED_FOR: Duration = Duration::from_secs(30);
/// The ask service must answer within this.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);
/// Remembered refusals at most (a scanner's names must not grow memory).
const REMEMBERED: usize = 10_000;

/// What this node knows about names asked for.
#[derive(Debug, Default)]
pub struct Asked {
    /// Names not to ask about until then.
    refused: Mutex<HashMap<String, Instant>>,
    /// Asks in flight: their answer, once known.
    asking: Mutex<HashMap<String, watch::Receiver<Option<bool>>>>,
    /// Calls made to the ask service (for tests and metrics).
    pub calls: std::sync::atomic::AtomicU64,
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
        let Some(ask) = self.config().ask.clone() else {
            return false;
        };
        let Ok(name) = normalize_host(raw.as_bytes()) else {
            return false;
        };
        let name = name.as_str().to_owned();
        if name.parse::<std::net::IpAddr>().is_ok() || !name.contains('.') {
            return false;
        }
        let limit = deadline.min(Instant::now() + HOLD);
        if !self.is_managed(&name) {
            if !self.allowed(&ask, &name).await {
                return false;
            }
            match self.store().add_domain(&name).await {
                Ok(_) | Err(StoreError::DomainExists(_)) => {}
                Err(err) => {
                    tracing::warn!(domain = %name, %err, "ACME on demand: cannot add the domain");
                    return false;
                }
            }
            tracing::info!(domain = %name, "ACME on demand: allowed; ordering");
            if let Err(err) = self.resync().await {
                tracing::warn!(domain = %name, %err, "ACME on demand: cannot read the domains");
            }
        }
        self.served_by(&name, limit).await
    }

    /// Whether the ask service allows `name` (remembered, one ask at a time).
    async fn allowed(&self, ask: &http::Uri, name: &str) -> bool {
        let asked = &self.asked;
        {
            let mut refused = asked.refused.lock().unwrap_or_else(|p| p.into_inner());
            match refused.get(name) {
                Some(until) if *until > Instant::now() => return false,
                Some(_) => {
                    refused.remove(name);
                }
                None => {}
            }
        }
        // Join an ask in flight, or start one.
        let joined = {
            let mut asking = asked.asking.lock().unwrap_or_else(|p| p.into_inner());
            match asking.get(name) {
                Some(answer) => Err(answer.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    asking.insert(name.to_owned(), rx);
                    Ok(tx)
                }
            }
        };
        let tx = match joined {
            Ok(tx) => tx,
            Err(mut answer) => {
                return answer
                    .wait_for(Option::is_some)
                    .await
                    .is_ok_and(|a| *a == Some(true))
            }
        };
        asked
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let verdict = ask_service(ask, name).await;
        let allowed = verdict == Ok(true);
        if !allowed {
            let wait = if verdict.is_ok() {
                REFUSED_FOR
            } else {
                FAILED_FOR
            };
            let mut refused = asked.refused.lock().unwrap_or_else(|p| p.into_inner());
            if refused.len() >= REMEMBERED {
                let now = Instant::now();
                refused.retain(|_, until| *until > now);
                if refused.len() >= REMEMBERED {
                    refused.clear();
                }
            }
            refused.insert(name.to_owned(), Instant::now() + wait);
            if let Err(err) = &verdict {
                tracing::warn!(domain = %name, %err, "ACME on demand: the ask service did not answer");
            }
        }
        let _ = tx.send(Some(allowed));
        asked
            .asking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        allowed
    }

    /// Wait until a certificate covering `name` is served (by `limit`).
    async fn served_by(&self, name: &str, limit: Instant) -> bool {
        let certificates = self.keeper().certificates();
        let mut published = certificates.subscribe();
        loop {
            if certificates.load().for_host(name).is_some() {
                return true;
            }
            match tokio::time::timeout_at(limit, published.changed()).await {
                Ok(Ok(())) => {}
                _ => return false,
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
    let authority = ask.authority().map_or(host, |a| a.as_str()).to_owned();
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
