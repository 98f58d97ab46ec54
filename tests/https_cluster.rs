//! HTTPS across nodes on one PostgreSQL database: a certificate uploaded on
//! one node is served by another within the multi-node latency, a delete on
//! the other node reaches the first, keys are sealed at rest, and a node
//! started with another storage key says it cannot read the key instead of
//! serving. Needs the PostgreSQL server (`DATABASE_URL` or 127.0.0.1:5432);
//! without it the test prints `SKIPPED` and the reason.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pki::{connect, get_https, TestCa};
use common::{drop_database, postgres_or_skip, Backend, Process};
use http::{Method, StatusCode};
use serde_json::json;

const TOKEN: &str = "https-cluster-token-0123456789";
const STORAGE_KEY: &str = "8f1c2b7d9e0a4c6b3d5f7a9c1e3b5d7f9a0c2e4b6d8f0a1c3e5b7d9f1a2c4e6b";
const OTHER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

async fn node(url: &str, name: &str, storage_key: &str, backends: &[&str]) -> Process {
    let url = format!("{url}?application_name={name}");
    let mut args = vec!["--admin-token", TOKEN, "--storage-key", storage_key];
    for backend in backends {
        args.extend(["--backend", backend]);
    }
    Process::start_with_database(tempfile::tempdir().unwrap(), &url, &args).await
}

/// Wait until a handshake with `sni` at `addr` succeeds (or fails, when
/// `served` is false); how long that took.
async fn until_handshake(
    config: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    sni: &str,
    served: bool,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if connect(config, addr, sni).await.is_ok() == served {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_uploaded_on_one_node_is_served_by_every_node_that_can_read_its_key() {
    let test = "a_certificate_uploaded_on_one_node_is_served_by_every_node_that_can_read_its_key";
    let Some(url) = postgres_or_skip(test).await else {
        return;
    };
    let backend = Backend::named("a").await;
    let address = backend.addr.to_string();
    let one = node(&url, "tls-one", STORAGE_KEY, &[&address]).await;
    let two = node(&url, "tls-two", STORAGE_KEY, &[]).await;
    let ca = TestCa::new("cluster root");
    let client = ca.client(&[b"http/1.1"]);
    let site = ca.site(&["shop.example", "*.shop.example"]);
    let tls_two = two.tls.expect("node two serves HTTPS");
    assert!(
        connect(&client, tls_two, "www.shop.example").await.is_err(),
        "no certificate yet"
    );

    // Uploaded on node one, served by node two.
    let body = json!({"certificate": site.chain_pem, "private_key": site.key_pem});
    let reply = one
        .admin
        .call(Method::POST, "/api/v1/certificates", Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reply.json["id"].as_str().unwrap().to_owned();
    let delay = until_handshake(&client, tls_two, "www.shop.example", true)
        .await
        .expect("node two serves node one's certificate within 10 s");
    println!("certificate uploaded on node one served by node two after {delay:?}");
    let (status, _, body) = get_https(
        &client,
        tls_two,
        "www.shop.example",
        "www.shop.example",
        "/",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("a "), "proxied to the backend: {body}");
    let listed = two.admin.get("/api/v1/certificates").await;
    assert_eq!(listed.json["certificates"][0]["id"], id.as_str());
    assert_eq!(listed.json["certificates"][0]["served"], true);

    // At rest the key is sealed: no PEM in the database.
    let sealed = stored_keys(&url).await;
    assert_eq!(sealed.len(), 1);
    assert!(
        sealed[0].starts_with("sealed:v1:"),
        "sealed: {}",
        &sealed[0][..20]
    );
    assert!(!sealed[0].contains("PRIVATE KEY"));

    // A node with another storage key lists the certificate and says why it
    // cannot serve it, rather than failing to start or serving garbage.
    let three = node(&url, "tls-three", OTHER_KEY, &[]).await;
    let listed = three.admin.get("/api/v1/certificates").await;
    let entry = &listed.json["certificates"][0];
    assert_eq!(entry["served"], false, "{entry}");
    assert_eq!(
        entry["domains"],
        json!(["shop.example", "*.shop.example"]),
        "{entry}"
    );
    let problem = entry["problem"].as_str().unwrap();
    assert!(problem.contains("storage key"), "{problem}");
    assert!(!listed.text.contains("PRIVATE KEY"), "{}", listed.text);
    assert!(connect(&client, three.tls.unwrap(), "www.shop.example")
        .await
        .is_err());
    // ... and is not ready: a balancer should not send it those names.
    let ready = three.admin.get("/readyz").await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.text
    );
    assert!(ready.json["reason"]
        .as_str()
        .unwrap()
        .contains("cannot be served"));
    let metrics = three.admin.get("/metrics").await.text;
    assert!(
        metrics.contains("switchyard_certificates_unservable 1"),
        "{metrics}"
    );

    // A node without a storage key may not store a key unsealed next to sealed ones.
    let keyless = Process::start_with_database(
        tempfile::tempdir().unwrap(),
        &format!("{url}?application_name=tls-keyless"),
        &["--admin-token", TOKEN],
    )
    .await;
    let another = ca.site(&["other.example"]);
    let body = json!({"certificate": another.chain_pem, "private_key": another.key_pem});
    let reply = keyless
        .admin
        .call(Method::POST, "/api/v1/certificates", Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert_eq!(reply.code(), "no_storage_key");
    assert_eq!(stored_keys(&url).await.len(), 1, "nothing stored");

    // Deleted on node two: node one, which served it, stops serving it.
    let tls_one = one.tls.unwrap();
    until_handshake(&client, tls_one, "www.shop.example", true)
        .await
        .expect("node one serves its own upload");
    let reply = two
        .admin
        .call(Method::DELETE, &format!("/api/v1/certificates/{id}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    let delay = until_handshake(&client, tls_one, "www.shop.example", false)
        .await
        .expect("node one drops the certificate deleted on node two within 10 s");
    println!("certificate deleted on node two refused by node one after {delay:?}");
    drop((one, two, three, keyless));
    drop_database(&url).await;
}

/// The `key_pem` column of every stored certificate.
async fn stored_keys(url: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    let mut db = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("SELECT key_pem FROM certificates ORDER BY id")
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>("key_pem"))
        .collect()
}
