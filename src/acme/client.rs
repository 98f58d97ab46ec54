//! The HTTP client the ACME account talks to the CA through: the crate's
//! own stack (hyper-util's client over hyper-rustls, HTTPS only), wrapped
//! so that a `Retry-After` on a CA's *error* response is not lost.
//! `instant-acme` reads `Retry-After` only on success paths; a CA that
//! rate-limits us (RFC 8555 §6.6: `429` + `Retry-After`) says when to come
//! back, and the order's failure must carry it. Every response the CA
//! sends sets a slot owned by the task that runs the order
//! ([`remembering`]): its `Retry-After` if it is a refusal, else nothing.
//! A failed step stops at the refusal that failed it, so the slot holds
//! that refusal's time; one that was retried or only logged is overwritten
//! by the next response. Orders running side by side never see each
//! other's.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{HeaderMap, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, Error, HttpClient};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

tokio::task_local! {
    static CA_RETRY_AFTER: Cell<Option<SystemTime>>;
}

/// Run `work` (an account lookup and an order) with its own slot for the
/// `Retry-After` of the CA's refusals.
pub async fn remembering<T>(work: impl Future<Output = T>) -> T {
    CA_RETRY_AFTER.scope(Cell::new(None), work).await
}

/// The `Retry-After` of the CA's last response (a refusal), if any; the
/// slot is emptied.
pub fn take() -> Option<SystemTime> {
    CA_RETRY_AFTER.try_with(Cell::take).ok().flatten()
}

/// The client for a CA whose certificate chains to the system's roots
/// (`ca_file` unset) or to the roots in `ca_file`.
pub fn for_ca(ca_file: Option<&std::path::Path>) -> Result<Box<dyn HttpClient>, String> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match ca_file {
        Some(path) => {
            let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| failed(&e))? {
                roots
                    .add(cert.map_err(|e| failed(&e))?)
                    .map_err(|e| failed(&e))?;
            }
            if roots.is_empty() {
                return Err(failed(&"no certificate in it"));
            }
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder.with_tls_config(tls)
        }
        None => builder
            .with_provider_and_platform_verifier(provider)
            .map_err(|e| e.to_string())?,
    };
    let connector = builder.https_only().enable_http1().enable_http2().build();
    let inner: Client<_, BodyWrapper<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    Ok(Box::new(SeesRetryAfter(Box::new(inner))))
}

/// Passes every exchange through, noting in the running order's slot the
/// `Retry-After` of a refusal, or that the last response was none.
struct SeesRetryAfter(Box<dyn HttpClient>);

impl HttpClient for SeesRetryAfter {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, Error>> + Send>> {
        let exchange = self.0.request(req);
        Box::pin(async move {
            let response = exchange.await?;
            let status = response.parts.status;
            let refused = status.is_client_error() || status.is_server_error();
            let at = refused
                .then(|| retry_after(&response.parts.headers, SystemTime::now()))
                .flatten();
            // Outside an order (nothing to tell): ignored.
            let _ = CA_RETRY_AFTER.try_with(|slot| slot.set(at));
            Ok(response)
        })
    }
}

/// A week: a CA's limits are hourly or weekly, and a wild value must not
/// park a domain for years.
const LONGEST: Duration = Duration::from_secs(7 * 86_400);

/// `Retry-After` (RFC 9110 §10.2.3): seconds, or an HTTP date; at most
/// [`LONGEST`] ahead; none if it is not in the future (no time said).
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<SystemTime> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let at = match value.parse::<u64>() {
        Ok(seconds) => now + Duration::from_secs(seconds).min(LONGEST),
        Err(_) => httpdate::parse_http_date(value).ok()?.min(now + LONGEST),
    };
    (at > now).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(RETRY_AFTER, value.parse().unwrap());
        map
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_ignores_the_rest() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            retry_after(&headers("3600"), now),
            Some(now + Duration::from_secs(3600))
        );
        assert_eq!(
            retry_after(&headers(" 99999999999 "), now),
            Some(now + Duration::from_secs(7 * 86_400)),
            "capped at a week"
        );
        assert_eq!(
            retry_after(&headers("Fri, 15 Jan 2027 10:00:00 GMT"), now),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + 2 * 3600))
        );
        assert_eq!(
            retry_after(&headers("Fri, 31 Dec 9999 23:59:59 GMT"), now),
            Some(now + LONGEST),
            "a date far ahead is capped at a week"
        );
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:49:37 GMT"), now),
            None,
            "a date in the past says nothing"
        );
        assert_eq!(retry_after(&headers("0"), now), None);
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
