//! A CA that refuses with a time: its `Retry-After` is heard. A stub ACME
//! server (HTTPS, a directory, nonces, an account) refuses every new order:
//! rate limited without a time (the next try an hour away at least), rate
//! limited for 90 minutes (exactly then), and "down for maintenance" for a
//! day (no later than the longest backoff, 6 h, so a certificate cannot run
//! out meanwhile). The account's contact update is refused with a day's
//! `Retry-After` too: that refusal is only logged and must not set any
//! order's time. Each domain is ordered once.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::pki::TestCa;
use common::Process;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::net::TcpListener;

const TOKEN: &str = "acme-rate-limit-token-0123456789";
const RETRY_AFTER: u64 = 5400;

/// How the stub CA refuses orders.
const SILENT: u8 = 0;
const RATE_LIMITED_FOR_90_MIN: u8 = 1;
const MAINTENANCE_FOR_A_DAY: u8 = 2;

/// What the stub CA was asked, and how it refuses.
#[derive(Default)]
struct Ca {
    orders: AtomicUsize,
    mode: AtomicU8,
}

/// A problem document response with an optional `Retry-After`.
fn problem(
    ca: &Ca,
    status: StatusCode,
    kind: &str,
    detail: &str,
    after: Option<u64>,
) -> Response<Full<Bytes>> {
    let body = json!({"type": format!("urn:ietf:params:acme:error:{kind}"), "detail": detail});
    let mut response = Response::builder()
        .status(status)
        .header("replay-nonce", format!("nonce-{}", ca.orders.load(SeqCst)))
        .header("content-type", "application/problem+json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    if let Some(after) = after {
        let value = after.to_string().parse().unwrap();
        response.headers_mut().insert("retry-after", value);
    }
    response
}

/// One answer of the stub CA; every answer carries a fresh nonce.
fn answer(ca: &Ca, base: &str, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: serde_json::Value| {
        Response::builder()
            .status(status)
            .header("replay-nonce", format!("nonce-{}", ca.orders.load(SeqCst)))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    };
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/directory") => reply(
            StatusCode::OK,
            json!({
                "newNonce": format!("{base}/nonce"),
                "newAccount": format!("{base}/account"),
                "newOrder": format!("{base}/order"),
            }),
        ),
        (&Method::HEAD, "/nonce") => reply(StatusCode::OK, json!({})),
        (&Method::POST, "/account") => {
            let mut response = reply(StatusCode::CREATED, json!({"status": "valid"}));
            let location = format!("{base}/account/1").parse().unwrap();
            response.headers_mut().insert("location", location);
            response
        }
        (&Method::POST, "/account/1") => problem(
            ca,
            StatusCode::SERVICE_UNAVAILABLE,
            "serverInternal",
            "contacts cannot be changed today",
            Some(86_400),
        ),
        (&Method::POST, "/order") => {
            ca.orders.fetch_add(1, SeqCst);
            let limited = "too many certificates already issued for this name";
            match ca.mode.load(SeqCst) {
                SILENT => problem(
                    ca,
                    StatusCode::TOO_MANY_REQUESTS,
                    "rateLimited",
                    limited,
                    None,
                ),
                RATE_LIMITED_FOR_90_MIN => problem(
                    ca,
                    StatusCode::TOO_MANY_REQUESTS,
                    "rateLimited",
                    limited,
                    Some(RETRY_AFTER),
                ),
                _ => problem(
                    ca,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "serverInternal",
                    "down for maintenance",
                    Some(86_400),
                ),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, json!({"detail": "no such resource"})),
    }
}

/// Serve the stub CA over HTTPS on a loopback port; its directory URL.
async fn stub_ca(ca: Arc<Ca>, pki: &TestCa) -> String {
    let site = pki.site(&["127.0.0.1"]);
    let chain = CertificateDer::pem_slice_iter(site.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(site.key_pem.as_bytes()).unwrap();
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let base = format!("https://{addr}");
    let served = base.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, ca, base) = (acceptor.clone(), Arc::clone(&ca), served.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request| {
                    let response = answer(&ca, &base, &request);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    format!("{base}/directory")
}

/// Seconds from now to the domain's `retry_at`.
fn retry_in(domain: &serde_json::Value) -> i64 {
    let at = humantime::parse_rfc3339(domain["retry_at"].as_str().unwrap()).unwrap();
    let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    secs(at) - secs(SystemTime::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_order_waits_as_long_as_the_ca_says_within_bounds() {
    let pki = TestCa::new("stub ACME CA");
    let ca = Arc::new(Ca::default());
    let directory = stub_ca(Arc::clone(&ca), &pki).await;
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &pki.root_pem).unwrap();
    let mut config = tempfile::NamedTempFile::new().unwrap();
    write!(
        config,
        "return {{ acme = {{ directory = {directory:?}, ca_file = {:?}, email = 'ops@example.com' }} }}",
        ca_file.path().to_str().unwrap()
    )
    .unwrap();
    let args = [
        "--config",
        config.path().to_str().unwrap(),
        "--admin-token",
        TOKEN,
    ];
    let switchyard = Process::start(&args).await;

    // Each case: the CA's mode, a domain, the next try's bounds (seconds
    // from now) and what the error says.
    let cases: [(u8, &str, std::ops::RangeInclusive<i64>, &str); 3] = [
        // The first order also registers the account, whose contact update
        // is refused with a day's Retry-After: ignored, not this order's.
        (
            SILENT,
            "untold.example",
            3600 - 30..=3960 + 5,
            "too many certificates",
        ),
        (
            RATE_LIMITED_FOR_90_MIN,
            "told.example",
            RETRY_AFTER as i64 - 30..=RETRY_AFTER as i64 + 5,
            "too many certificates",
        ),
        (
            MAINTENANCE_FOR_A_DAY,
            "maintenance.example",
            6 * 3600 - 30..=6 * 3600 + 5,
            "maintenance",
        ),
    ];
    for (mode, name, bounds, says) in cases {
        ca.mode.store(mode, SeqCst);
        let reply = switchyard
            .admin
            .call(Method::POST, "/api/v1/domains", Some(json!({"name": name})))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let (domain, _) = switchyard
            .until_domain_status(name, "failed", Duration::from_secs(30))
            .await;
        let error = domain["error"].as_str().unwrap();
        assert!(error.contains(says), "{name}: {error}");
        let wait = retry_in(&domain);
        assert!(
            bounds.contains(&wait),
            "{name}: next try in {wait} s, wanted {bounds:?}"
        );
    }

    // No domain is ordered again meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ca.orders.load(SeqCst), 3, "one order per domain");
    switchyard.stop().await;
}
