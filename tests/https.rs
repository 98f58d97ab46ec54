//! HTTPS end to end: certificates uploaded through the admin API are served
//! by SNI on the TLS listener without a restart, requests are proxied over
//! HTTP/1.1 and HTTP/2 (ALPN) with `X-Forwarded-Proto: https`, a Host the
//! certificate does not cover gets `421`, bad uploads get `400` and store
//! nothing, a deleted certificate stops new handshakes but not open
//! connections, plain requests redirect to HTTPS when asked, and real
//! clients (curl, openssl s_client) agree.

mod common;

use bytes::Bytes;
use common::pki::{connect, get_https, Site, TestCa};
use common::{Backend, Proxy};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

/// Upload `site` through the admin API; returns the reply.
async fn upload(proxy: &Proxy, site: &Site) -> common::Reply {
    let body = json!({"certificate": site.chain_pem, "private_key": site.key_pem});
    proxy
        .admin
        .call(Method::POST, "/api/v1/certificates", Some(body))
        .await
}

#[tokio::test]
async fn an_uploaded_certificate_is_served_by_sni_and_requests_are_proxied_as_https() {
    let backend = Backend::named("app").await;
    let proxy = Proxy::start(&[backend.addr]).await;
    let tls = proxy.tls.unwrap();
    let ca = TestCa::new("HTTPS Test Root");
    let client = ca.client(&[b"http/1.1"]);
    // Before any upload: the handshake fails (unrecognized_name).
    assert!(connect(&client, tls, "www.foo.example").await.is_err());

    let reply = upload(&proxy, &ca.site(&["www.foo.example", "*.bar.example"])).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(
        reply.json["domains"],
        json!(["www.foo.example", "*.bar.example"])
    );
    assert_eq!(reply.json["source"], "uploaded");
    assert!(reply.json["days_left"].as_i64().unwrap() >= 88);
    assert!(
        !reply.text.contains("PRIVATE KEY"),
        "the key is never returned"
    );

    for sni in ["www.foo.example", "WWW.Foo.Example.", "api.bar.example"] {
        let host = sni.to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        let (status, _, body) = get_https(&client, tls, sni, host, "/x").await;
        assert_eq!(status, StatusCode::OK, "{sni}");
        assert_eq!(body, format!("app {host} /x"));
    }
    let proto = backend.seen.lock().unwrap().last().unwrap().headers["x-forwarded-proto"].clone();
    assert_eq!(proto, "https");
    // A wildcard covers one label only.
    assert!(connect(&client, tls, "a.b.bar.example").await.is_err());
    // The refusal is counted just after its alert is sent: wait for it.
    let started = std::time::Instant::now();
    let mut metrics = proxy.admin.get("/metrics").await.text;
    while !metrics.contains("switchyard_tls_sni_misses_total 2")
        && started.elapsed() < std::time::Duration::from_secs(2)
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        metrics = proxy.admin.get("/metrics").await.text;
    }
    assert!(
        metrics.contains(r#"switchyard_tls_handshakes_total{result="ok",version="TLSv1_3"} 3"#),
        "{metrics}"
    );
    assert!(metrics.contains(
        "switchyard_certificate_expiry_timestamp_seconds{id=\"1\",domain=\"www.foo.example\"}"
    ));
    assert!(
        metrics.contains("switchyard_tls_sni_misses_total 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn http2_is_chosen_by_alpn_and_a_host_the_certificate_does_not_cover_gets_421() {
    let backend = Backend::named("app").await;
    let proxy = Proxy::start(&[backend.addr]).await;
    let tls = proxy.tls.unwrap();
    let ca = TestCa::new("HTTPS Test Root");
    assert_eq!(
        upload(&proxy, &ca.site(&["www.foo.example"])).await.status,
        StatusCode::CREATED
    );
    let stream = connect(&ca.client(&[b"h2", b"http/1.1"]), tls, "www.foo.example")
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut ask = |authority: &str, path: &str| {
        let req = Request::get(format!("https://{authority}{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        sender.send_request(req)
    };
    let ok = ask("www.foo.example", "/h2").await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.version(), http::Version::HTTP_2);
    // Domain fronting: another tenant's host on this certificate's connection.
    let fronted = ask("other.example", "/").await.unwrap();
    assert_eq!(fronted.status(), StatusCode::MISDIRECTED_REQUEST);
    // The reload URL routes by the domain in its path; the Host is covered.
    let reload = ask("www.foo.example", "/user/fred/webapps/Other.Example/reload")
        .await
        .unwrap();
    assert_eq!(reload.status(), StatusCode::OK);
    let body = reload.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).starts_with("app www.foo.example"));
    assert_eq!(
        backend
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.headers["host"] == "other.example")
            .count(),
        0,
        "nothing fronted reached the backend"
    );
}

#[tokio::test]
async fn bad_uploads_get_400_with_a_plain_message_and_store_nothing() {
    let proxy = Proxy::start(&[]).await;
    let ca = TestCa::new("HTTPS Test Root");
    let good = ca.site(&["www.foo.example"]);
    let other = ca.site(&["www.foo.example"]);
    let expired = ca.site_with(&["old.example"], |p| {
        p.not_before = common::pki::time_now() - time::Duration::days(30);
        p.not_after = common::pki::time_now() - time::Duration::days(1);
    });
    let future = ca.site_with(&["new.example"], |p| {
        p.not_before = common::pki::time_now() + time::Duration::days(10);
        p.not_after = common::pki::time_now() + time::Duration::days(100);
    });
    let cases = [
        (
            "not PEM",
            "hello".to_owned(),
            good.key_pem.clone(),
            "no certificate found",
        ),
        (
            "key of another certificate",
            good.chain_pem.clone(),
            other.key_pem.clone(),
            "does not belong",
        ),
        (
            "no key",
            good.chain_pem.clone(),
            String::new(),
            "no private key",
        ),
        ("expired", expired.chain_pem, expired.key_pem, "expired"),
        (
            "not valid yet",
            future.chain_pem,
            future.key_pem,
            "not valid until",
        ),
        (
            // It would be stored unsealed in the certificate column.
            "a key in the certificate field",
            format!("{}{}", good.key_pem, good.chain_pem),
            good.key_pem.clone(),
            "contains a private key",
        ),
        (
            "a CA bundle pasted behind the certificate",
            format!("{}{}", good.leaf_pem, ca.root_pem.repeat(12)),
            good.key_pem.clone(),
            "at most 10",
        ),
        (
            "an encrypted key",
            good.chain_pem.clone(),
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
                .to_owned(),
            "decrypt it first",
        ),
        (
            "the CA's certificate first",
            format!("{}{}", ca.root_pem, good.leaf_pem),
            good.key_pem.clone(),
            "put the site's certificate first",
        ),
    ];
    for (what, certificate, key, says) in cases {
        let body = json!({"certificate": certificate, "private_key": key});
        let reply = proxy
            .admin
            .call(Method::POST, "/api/v1/certificates", Some(body))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            reply.text
        );
        assert_eq!(reply.code(), "invalid_certificate", "{what}");
        assert!(reply.text.contains(says), "{what}: {}", reply.text);
        if let Some(key_material) = key.lines().nth(1) {
            assert!(
                !reply.text.contains(key_material),
                "{what}: the key is never echoed"
            );
        }
    }
    let list = proxy.admin.get("/api/v1/certificates").await;
    assert_eq!(list.json["certificates"], json!([]));
    // Only the site's certificate: accepted, with a warning saying what is missing.
    let body = json!({"certificate": good.leaf_pem, "private_key": good.key_pem});
    let reply = proxy
        .admin
        .call(Method::POST, "/api/v1/certificates", Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert!(reply.json["warnings"][0]
        .as_str()
        .unwrap()
        .contains("intermediate certificate"));
}

#[tokio::test]
async fn a_deleted_certificate_stops_new_handshakes_but_not_open_connections() {
    let backend = Backend::named("app").await;
    let proxy = Proxy::start(&[backend.addr]).await;
    let tls = proxy.tls.unwrap();
    let ca = TestCa::new("HTTPS Test Root");
    let reply = upload(&proxy, &ca.site(&["www.foo.example"])).await;
    let id = reply.json["id"].as_str().unwrap().to_owned();
    let client = ca.client(&[b"http/1.1"]);
    let stream = connect(&client, tls, "www.foo.example").await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let get = |path: &str| {
        Request::get(path)
            .header("host", "www.foo.example")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    assert_eq!(sender.send_request(get("/1")).await.unwrap().status(), 200);
    let deleted = proxy
        .admin
        .call(Method::DELETE, &format!("/api/v1/certificates/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(connect(&client, tls, "www.foo.example").await.is_err());
    assert_eq!(sender.send_request(get("/2")).await.unwrap().status(), 200);
    let gone = proxy.admin.get(&format!("/api/v1/certificates/{id}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn plain_requests_for_a_host_with_a_certificate_redirect_to_https_and_get_hsts() {
    let backend = Backend::named("app").await;
    let proxy = Proxy::start_with(&[backend.addr], |s| {
        s.tls.redirect_http = true;
        s.tls.hsts.max_age = Some(600);
    })
    .await;
    let tls = proxy.tls.unwrap();
    let ca = TestCa::new("HTTPS Test Root");
    upload(&proxy, &ca.site(&["www.foo.example"])).await;
    let answer = proxy
        .raw(b"GET /a?b=1 HTTP/1.1\r\nHost: WWW.foo.example\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(common::status_of(&answer), 308, "{answer}");
    let location = format!("location: https://www.foo.example:{}/a?b=1", tls.port());
    assert!(answer.to_ascii_lowercase().contains(&location), "{answer}");
    // ACME challenges and hosts without a certificate are proxied as before.
    let (status, body) = proxy
        .get("www.foo.example", "/.well-known/acme-challenge/tok")
        .await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::OK,
            "app www.foo.example /.well-known/acme-challenge/tok"
        )
    );
    assert_eq!(proxy.get("plain.example", "/").await.0, StatusCode::OK);
    let (status, headers, _) = get_https(
        &ca.client(&[b"http/1.1"]),
        tls,
        "www.foo.example",
        "www.foo.example",
        "/",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["strict-transport-security"], "max-age=600");
}

#[tokio::test]
async fn curl_and_openssl_verify_the_chain_and_speak_h2() {
    let backend = Backend::named("app").await;
    let proxy = Proxy::start(&[backend.addr]).await;
    let tls = proxy.tls.unwrap();
    let ca = TestCa::new("HTTPS Test Root");
    upload(&proxy, &ca.site(&["www.foo.example"])).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, &ca.root_pem).unwrap();
    let port = tls.port();
    let curl = tokio::process::Command::new("curl")
        .args(["-sS", "--http2", "--cacert"])
        .arg(&root)
        .args(["--resolve", &format!("www.foo.example:{port}:127.0.0.1")])
        .args(["-w", "\n%{http_version} %{http_code}"])
        .arg(format!("https://www.foo.example:{port}/curl"))
        .output()
        .await;
    match curl {
        Err(err) => common::skipped("curl part", &format!("curl cannot run: {err}")),
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{text} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(text, format!("app www.foo.example:{port} /curl\n2 200"));
        }
    }
    let openssl = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &tls.to_string(),
            "-servername",
            "www.foo.example",
        ])
        .args(["-alpn", "h2", "-verify_return_error", "-CAfile"])
        .arg(&root)
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    match openssl {
        Err(err) => common::skipped("openssl part", &format!("openssl cannot run: {err}")),
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("ALPN protocol: h2"), "{text}");
            assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
        }
    }
}
