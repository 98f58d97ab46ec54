//! Automatic certificates against Pebble (Let's Encrypt's test CA): a
//! domain added through the admin API is validated over HTTP-01 on
//! switchyard's own plain listener, becomes `valid` and is served over TLS
//! with a chain that verifies against Pebble's root; a domain Pebble cannot
//! reach ends `failed` with the CA's reason and a next try. Without Pebble
//! each test prints SKIPPED and why.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::pebble::Pebble;
use common::pki::get_https;
use common::{Backend, Process};
use http::{Method, StatusCode};
use serde_json::json;

const TOKEN: &str = "acme-test-token-0123456789";

/// A Lua config with `acme` pointed at `pebble`, plus `extra` keys of the table.
fn acme_config(pebble: &Pebble, extra: &str) -> tempfile::NamedTempFile {
    let mut config = tempfile::NamedTempFile::new().unwrap();
    write!(
        config,
        "return {{ acme = {{ directory = {:?}, ca_file = {:?}, email = 'ops@example.com' {extra} }} }}",
        pebble.directory,
        pebble.ca_file.to_str().unwrap(),
    )
    .unwrap();
    config
}

/// A switchyard with `acme` pointed at `pebble`, then Pebble started
/// validating on its plain port.
async fn switchyard_with(
    pebble: &mut Pebble,
    backend: &Backend,
    extra: &str,
) -> (Process, tempfile::NamedTempFile) {
    let config = acme_config(pebble, extra);
    let address = backend.addr.to_string();
    let args = [
        "--config",
        config.path().to_str().unwrap(),
        "--admin-token",
        TOKEN,
        "--backend",
        &address,
    ];
    let switchyard = Process::start(&args).await;
    pebble.start(switchyard.addr.port()).await;
    (switchyard, config)
}

/// Manage `name` through `switchyard`'s admin API.
async fn add_domain(switchyard: &Process, name: &str) -> common::Reply {
    switchyard
        .admin
        .call(Method::POST, "/api/v1/domains", Some(json!({"name": name})))
        .await
}

fn client_trusting(root_pem: &str) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every handshake a full one: a resumed session would show the
    // certificate of the session it resumes.
    config.resumption = rustls::client::Resumption::disabled();
    std::sync::Arc::new(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_domain_becomes_valid_and_is_served_with_a_chain_from_the_ca() {
    let test = "a_managed_domain_becomes_valid_and_is_served_with_a_chain_from_the_ca";
    let Some(mut pebble) = Pebble::prepare_or_skip(test, 3600) else {
        return;
    };
    let backend = Backend::named("app").await;
    let (switchyard, _config) = switchyard_with(&mut pebble, &backend, "").await;

    let reply = add_domain(&switchyard, "Shop.Example").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(
        reply.json["name"], "shop.example",
        "normalized like a routing key"
    );
    assert_eq!(reply.json["status"], "pending");
    let (domain, took) = switchyard
        .until_domain_status("SHOP.example", "valid", Duration::from_secs(60))
        .await;
    println!("shop.example valid {took:?} after it was added");
    assert!(domain["error"].is_null(), "{domain}");
    assert!(
        domain["not_after"].is_string() && domain["renews_at"].is_string(),
        "{domain}"
    );
    assert_eq!(domain["orders"], 1);

    // Served over TLS with the chain Pebble issued, to a client that trusts only Pebble's root.
    let root = pebble.root_pem().await.expect("Pebble's root");
    let client = client_trusting(&root);
    let tls = switchyard.tls.unwrap();
    let (status, _, body) = get_https(&client, tls, "shop.example", "shop.example", "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("app "), "proxied: {body}");
    let certificates = switchyard.admin.get("/api/v1/certificates").await;
    let listed = &certificates.json["certificates"][0];
    assert_eq!(listed["source"], "acme", "{listed}");
    assert_eq!(listed["domains"], json!(["shop.example"]));
    assert_eq!(
        listed["id"].as_str(),
        domain["certificate_id"].as_str(),
        "{listed} {domain}"
    );

    // The challenge path is answered by switchyard, never forwarded, on
    // either listener.
    let hits = backend.hits();
    let (status, _) = common::Proxy::get_at(
        switchyard.addr,
        "shop.example",
        "/.well-known/acme-challenge/nope",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get_https(
        &client,
        tls,
        "shop.example",
        "shop.example",
        "/.well-known/acme-challenge/nope",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(backend.hits(), hits, "nothing forwarded");
    // Its certificate is the domain's: deleting it alone is refused.
    let id = domain["certificate_id"].as_str().unwrap();
    let refused = switchyard
        .admin
        .call(Method::DELETE, &format!("/api/v1/certificates/{id}"), None)
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.code(), "certificate_managed");
    assert!(
        refused.text.contains("DELETE /api/v1/domains/shop.example"),
        "{}",
        refused.text
    );
    let metrics = switchyard.admin.get("/metrics").await.text;
    assert!(
        metrics.contains("switchyard_acme_orders_total{result=\"ok\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_the_ca_cannot_validate_fails_with_its_reason_and_a_next_try() {
    let test = "a_domain_the_ca_cannot_validate_fails_with_its_reason_and_a_next_try";
    let Some(mut pebble) = Pebble::prepare_or_skip(test, 3600) else {
        return;
    };
    let backend = Backend::named("app").await;
    let (switchyard, _config) = switchyard_with(&mut pebble, &backend, "").await;
    // Nothing listens on 127.0.0.2: Pebble's HTTP-01 request is refused.
    pebble.resolve("elsewhere.example", "127.0.0.2").await;
    let reply = add_domain(&switchyard, "elsewhere.example").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let (domain, _) = switchyard
        .until_domain_status("elsewhere.example", "failed", Duration::from_secs(60))
        .await;
    let error = domain["error"].as_str().unwrap();
    assert!(
        error.contains("could not validate elsewhere.example"),
        "{error}"
    );
    assert!(error.contains("127.0.0.2"), "the CA's own reason: {error}");
    let retry_at = humantime::parse_rfc3339(domain["retry_at"].as_str().unwrap()).unwrap();
    assert!(
        retry_at > std::time::SystemTime::now(),
        "a next try ahead: {domain}"
    );
    assert!(domain["certificate_id"].is_null());
    // Bad names are refused before anything is ordered.
    for (name, says) in [
        ("*.wild.example", "wildcard"),
        ("10.0.0.1", "IP address"),
        ("localhost", "no dot"),
        ("foo_bar.example", "letters, digits and hyphens"),
        ("-foo.example", "letters, digits and hyphens"),
        ("1.2.3", "letters, digits and hyphens"),
    ] {
        let reply = add_domain(&switchyard, name).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            reply.text
        );
        assert_eq!(reply.code(), "invalid_domain");
        assert!(reply.text.contains(says), "{name}: {}", reply.text);
    }
    let again = add_domain(&switchyard, "Elsewhere.Example").await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "domain_exists");
    let deleted = switchyard
        .admin
        .call(Method::DELETE, "/api/v1/domains/elsewhere.example", None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let list = switchyard.admin.get("/api/v1/domains").await;
    assert_eq!(list.json["domains"], json!([]));
}

/// The leaf certificate a TLS handshake for `sni` is given (DER).
async fn served_leaf(
    client: &std::sync::Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
    sni: &str,
) -> Vec<u8> {
    let tls = common::pki::connect(client, addr, sni)
        .await
        .expect("handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_renewed_before_it_expires_and_an_open_connection_keeps_working() {
    let test = "a_certificate_is_renewed_before_it_expires_and_an_open_connection_keeps_working";
    // 30-second certificates, and a renew_before far longer than that:
    // capped at half the lifetime, so one renewal after ~15 s, not a loop.
    let Some(mut pebble) = Pebble::prepare_or_skip(test, 30) else {
        return;
    };
    let backend = Backend::named("app").await;
    let (switchyard, _config) =
        switchyard_with(&mut pebble, &backend, ", renew_before = 100000").await;
    assert_eq!(
        add_domain(&switchyard, "renew.example").await.status,
        StatusCode::CREATED
    );
    let (first, _) = switchyard
        .until_domain_status("renew.example", "valid", Duration::from_secs(60))
        .await;
    let client = client_trusting(&pebble.root_pem().await.unwrap());
    let tls = switchyard.tls.unwrap();
    let before = served_leaf(&client, tls, "renew.example").await;

    // A connection opened on the first certificate.
    let stream = common::pki::connect(&client, tls, "renew.example")
        .await
        .unwrap();
    let (mut open, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let get = || {
        http::Request::get("/")
            .header("host", "renew.example")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    assert_eq!(
        open.send_request(get()).await.unwrap().status(),
        StatusCode::OK
    );

    // Renewed: a new certificate id, a new leaf for new handshakes.
    let started = Instant::now();
    let renewed = loop {
        let reply = switchyard.admin.get("/api/v1/domains/renew.example").await;
        if reply.json["certificate_id"] != first["certificate_id"] {
            break reply.json;
        }
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "not renewed: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("renewed after {:?}: {renewed}", started.elapsed());
    assert_eq!(renewed["status"], "valid");
    assert_eq!(renewed["orders"], 2);
    assert_ne!(served_leaf(&client, tls, "renew.example").await, before);
    // The connection opened before the renewal still works.
    let response = open
        .send_request(get())
        .await
        .expect("the open connection survives");
    assert_eq!(response.status(), StatusCode::OK);
    let certificates = switchyard.admin.get("/api/v1/certificates").await;
    assert_eq!(
        certificates.json["certificates"].as_array().unwrap().len(),
        1,
        "the old certificate is gone: {}",
        certificates.text
    );
    let metrics = switchyard.admin.get("/metrics").await.text;
    assert!(
        metrics.contains("switchyard_acme_renewals_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_order_once_and_both_serve_the_certificate() {
    let test = "two_nodes_on_one_database_order_once_and_both_serve_the_certificate";
    let Some(url) = common::postgres_or_skip(test).await else {
        return;
    };
    let Some(mut pebble) = Pebble::prepare_or_skip(test, 3600) else {
        return;
    };
    let backend = Backend::named("app").await;
    let config = acme_config(&pebble, "");
    let address = backend.addr.to_string();
    let node = |name: &'static str| {
        let url = format!("{url}?application_name={name}");
        let config = config.path().to_str().unwrap().to_owned();
        let address = address.clone();
        async move {
            let args = [
                "--config",
                &config,
                "--admin-token",
                TOKEN,
                "--backend",
                &address,
            ];
            Process::start_with_database(tempfile::tempdir().unwrap(), &url, &args).await
        }
    };
    let one = node("acme-one").await;
    let two = node("acme-two").await;
    // Pebble validates on node one's port only: whichever node orders, the
    // answer must reach node one through the database.
    pebble.start(one.addr.port()).await;
    assert_eq!(
        add_domain(&two, "both.example").await.status,
        StatusCode::CREATED
    );
    let (domain, took) = one
        .until_domain_status("both.example", "valid", Duration::from_secs(60))
        .await;
    println!("valid on both nodes {took:?} after it was added on node two");
    assert_eq!(domain["orders"], 1, "one order for both nodes: {domain}");
    let client = client_trusting(&pebble.root_pem().await.unwrap());
    for (name, node) in [("one", &one), ("two", &two)] {
        let tls = node.tls.unwrap();
        let started = Instant::now();
        while common::pki::connect(&client, tls, "both.example")
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "node {name} serves it"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (status, _, body) = get_https(&client, tls, "both.example", "both.example", "/").await;
        assert_eq!(status, StatusCode::OK, "node {name}");
        assert!(body.starts_with("app "), "node {name}: {body}");
    }
    let orders = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("switchyard_acme_orders_total{result=\"ok\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let made = orders(&one.admin.get("/metrics").await.text)
        + orders(&two.admin.get("/metrics").await.text);
    assert_eq!(made, 1, "exactly one node ordered");
    drop((one, two));
    common::drop_database(&url).await;
}

/// An `acme.ask` service: `200` for the `allowed` names, `403` otherwise;
/// counts the asks per name.
async fn ask_service(
    allowed: &'static [&'static str],
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
) {
    use hyper::service::service_fn;
    let asks: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>> =
        std::sync::Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counted = std::sync::Arc::clone(&asks);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counted = std::sync::Arc::clone(&counted);
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let domain = req
                        .uri()
                        .query()
                        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("domain=")))
                        .unwrap_or("")
                        .to_owned();
                    *counted.lock().unwrap().entry(domain.clone()).or_default() += 1;
                    let status = if allowed.contains(&domain.as_str()) {
                        StatusCode::OK
                    } else {
                        StatusCode::FORBIDDEN
                    };
                    async move {
                        let mut response =
                            http::Response::new(http_body_util::Full::new(bytes::Bytes::new()));
                        *response.status_mut() = status;
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (addr, asks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_a_handshake_for_an_allowed_name_waits_for_its_certificate_and_a_refused_one_is_asked_once(
) {
    let test = "on_demand_a_handshake_for_an_allowed_name_waits_for_its_certificate_and_a_refused_one_is_asked_once";
    let Some(mut pebble) = Pebble::prepare_or_skip(test, 3600) else {
        return;
    };
    let (ask, asks) = ask_service(&["yes.example", "unreachable.example"]).await;
    let backend = Backend::named("app").await;
    let ask = format!(", ask = 'http://{ask}/allowed'");
    let (switchyard, _config) = switchyard_with(&mut pebble, &backend, &ask).await;
    let client = client_trusting(&pebble.root_pem().await.unwrap());
    let tls = switchyard.tls.unwrap();

    // Three clients at once for an allowed name: one ask, one order, all served.
    let started = Instant::now();
    let handshakes = (0..3).map(|_| get_https(&client, tls, "yes.example", "yes.example", "/"));
    for (status, _, body) in futures_util::future::join_all(handshakes).await {
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with("app "), "{body}");
    }
    println!(
        "on-demand handshakes held {:?} until the certificate was served",
        started.elapsed()
    );
    let domain = switchyard.admin.get("/api/v1/domains/yes.example").await;
    assert_eq!(domain.json["status"], "valid", "{}", domain.text);
    assert_eq!(domain.json["orders"], 1);
    assert_eq!(
        asks.lock().unwrap().get("yes.example"),
        Some(&1),
        "asked once"
    );

    // A refused name fails at once, and is not asked about again for a while.
    for _ in 0..3 {
        assert!(common::pki::connect(&client, tls, "no.example")
            .await
            .is_err());
    }
    assert_eq!(
        asks.lock().unwrap().get("no.example"),
        Some(&1),
        "remembered"
    );

    // Allowed, but the CA cannot validate it: the handshake ends when the
    // order fails, not at the 10 s hold, and the next one does not wait.
    pebble.resolve("unreachable.example", "127.0.0.2").await;
    let started = Instant::now();
    assert!(common::pki::connect(&client, tls, "unreachable.example")
        .await
        .is_err());
    let first = started.elapsed();
    let started = Instant::now();
    assert!(common::pki::connect(&client, tls, "unreachable.example")
        .await
        .is_err());
    let second = started.elapsed();
    println!("a failing on-demand order held its handshake {first:?}, the next {second:?}");
    assert!(first < Duration::from_secs(8), "{first:?}");
    assert!(second < Duration::from_secs(2), "{second:?}");
    let domain = switchyard
        .admin
        .get("/api/v1/domains/unreachable.example")
        .await;
    assert_eq!(domain.json["status"], "failed", "{}", domain.text);
    let listed = switchyard.admin.get("/api/v1/domains").await;
    assert_eq!(
        listed.json["domains"].as_array().unwrap().len(),
        2,
        "{}",
        listed.text
    );
}

/// The report, run by hand (`cargo test --release --test acme --
/// --ignored --nocapture`): time from `POST /api/v1/domains` to the first
/// successful HTTPS request (median of 10), orders per domain when two
/// nodes share the database, and HTTPS traffic through a renewal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn report() {
    let Some(url) = common::postgres_or_skip("report").await else {
        return;
    };
    let Some(mut pebble) = Pebble::prepare_or_skip("report", 30) else {
        return;
    };
    let backend = Backend::named("app").await;
    let config = acme_config(&pebble, "");
    let address = backend.addr.to_string();
    let start = |name: &'static str| {
        let url = format!("{url}?application_name={name}");
        let config = config.path().to_str().unwrap().to_owned();
        let address = address.clone();
        async move {
            let args = [
                "--config",
                &config,
                "--admin-token",
                TOKEN,
                "--backend",
                &address,
            ];
            Process::start_with_database(tempfile::tempdir().unwrap(), &url, &args).await
        }
    };
    let one = start("report-one").await;
    let two = start("report-two").await;
    pebble.start(one.addr.port()).await;
    let client = client_trusting(&pebble.root_pem().await.unwrap());
    let tls = one.tls.unwrap();

    // POST (alternating nodes) -> first HTTPS request that succeeds on node one.
    let mut took = Vec::new();
    for n in 0..10 {
        let name = format!("site{n}.example");
        let node = if n % 2 == 0 { &one } else { &two };
        let posted = Instant::now();
        assert_eq!(add_domain(node, &name).await.status, StatusCode::CREATED);
        loop {
            if common::pki::connect(&client, tls, &name).await.is_ok() {
                break;
            }
            assert!(
                posted.elapsed() < Duration::from_secs(60),
                "{name} never served"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (status, _, _) = get_https(&client, tls, &name, &name, "/").await;
        assert_eq!(status, StatusCode::OK);
        took.push(posted.elapsed());
    }
    took.sort();
    println!(
        "POST -> first HTTPS 200, 10 domains: min {:?}, median {:?}, max {:?}",
        took[0], took[5], took[9]
    );
    let domains = one.admin.get("/api/v1/domains").await;
    let orders: Vec<i64> = domains.json["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["orders"].as_i64().unwrap())
        .collect();
    println!("orders per domain over two nodes: {orders:?}");

    // HTTPS requests during a renewal (30 s certificates renew ~10 s before expiry).
    let first = one.admin.get("/api/v1/domains/site0.example").await.json["certificate_id"].clone();
    let started = Instant::now();
    let (mut ok, mut failed) = (0u64, 0u64);
    while started.elapsed() < Duration::from_secs(40) {
        let renewed =
            one.admin.get("/api/v1/domains/site0.example").await.json["certificate_id"] != first;
        match common::pki::connect(&client, tls, "site0.example").await {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
        if renewed && started.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    println!(
        "HTTPS handshakes across the renewal of site0.example: {ok} ok, {failed} failed, {:?}",
        started.elapsed()
    );
    drop((one, two));
    common::drop_database(&url).await;
}
