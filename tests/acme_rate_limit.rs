//! A CA that rate-limits: its `429` with `Retry-After` is heard. A stub
//! ACME server (HTTPS, a directory, nonces, an account) refuses every new
//! order with `urn:ietf:params:acme:error:rateLimited`, once with
//! `Retry-After` and once without; the domain ends `failed` with the CA's
//! words and a next try no earlier than the CA asked (an hour at least when
//! it did not say), and the CA is not asked again meanwhile.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
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

/// What the stub CA was asked, and whether its refusals say when to retry.
#[derive(Default)]
struct Ca {
    orders: AtomicUsize,
    says_when: AtomicBool,
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
        (&Method::POST, "/order") => {
            ca.orders.fetch_add(1, SeqCst);
            let mut response = reply(
                StatusCode::TOO_MANY_REQUESTS,
                json!({
                    "type": "urn:ietf:params:acme:error:rateLimited",
                    "detail": "too many certificates already issued for this name",
                    "status": 429,
                }),
            );
            if ca.says_when.load(SeqCst) {
                let after = RETRY_AFTER.to_string().parse().unwrap();
                response.headers_mut().insert("retry-after", after);
            }
            response
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

/// Poll the domain until it is `failed`; its JSON.
async fn failed_domain(switchyard: &Process, name: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reply = switchyard
            .admin
            .get(&format!("/api/v1/domains/{name}"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        if reply.json["status"] == "failed" {
            return reply.json;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never failed: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Seconds from now to the domain's `retry_at`.
fn retry_in(domain: &serde_json::Value) -> i64 {
    let at = humantime::parse_rfc3339(domain["retry_at"].as_str().unwrap()).unwrap();
    let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    secs(at) - secs(SystemTime::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_order_waits_as_long_as_the_ca_says_and_an_hour_when_it_does_not() {
    let pki = TestCa::new("stub ACME CA");
    let ca = Arc::new(Ca::default());
    ca.says_when.store(true, SeqCst);
    let directory = stub_ca(Arc::clone(&ca), &pki).await;
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &pki.root_pem).unwrap();
    let mut config = tempfile::NamedTempFile::new().unwrap();
    write!(
        config,
        "return {{ acme = {{ directory = {directory:?}, ca_file = {:?} }} }}",
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

    let add = |name: &'static str| {
        let admin = &switchyard.admin;
        async move {
            let reply = admin
                .call(Method::POST, "/api/v1/domains", Some(json!({"name": name})))
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        }
    };

    // The CA says when: the next try is no earlier.
    add("told.example").await;
    let told = failed_domain(&switchyard, "told.example").await;
    let error = told["error"].as_str().unwrap();
    assert!(
        error.contains("too many certificates already issued"),
        "{error}"
    );
    let wait = retry_in(&told);
    assert!(
        (RETRY_AFTER as i64 - 30..=RETRY_AFTER as i64 + 5).contains(&wait),
        "the CA said {RETRY_AFTER} s, the next try is in {wait} s"
    );

    // The CA does not say: an hour at least (plus up to a tenth of jitter).
    ca.says_when.store(false, SeqCst);
    add("untold.example").await;
    let untold = failed_domain(&switchyard, "untold.example").await;
    let wait = retry_in(&untold);
    assert!(
        (3600 - 30..=3960 + 5).contains(&wait),
        "rate limited without a time: the next try is in {wait} s"
    );

    // Neither domain is ordered again meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ca.orders.load(SeqCst), 2, "one order per domain");
    switchyard.stop().await;
}
