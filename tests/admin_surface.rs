//! What a web page can make a browser do to the admin side. A page on a
//! name re-pointed at this machine (DNS rebinding) is refused on every
//! route of the admin and metrics listeners, before the token is looked
//! at; IP literals, `localhost` and the names in `admin.allowed_hosts` are
//! served. A write the browser marks cross-site changes nothing unless its
//! origin is in `admin.allowed_origins`. The bearer scheme is
//! case-insensitive.

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use bytes::Bytes;
use common::oneshot::{Api, ALLOWED_ORIGIN, READ_TOKEN, TOKEN};
use common::{Admin, Proxy, Reply};
use http::{header, Method, Request, StatusCode};
use http_body_util::Full;

/// switchyard with a metrics listener and one configured admin name,
/// written the way an operator might (mixed case).
async fn switchyard() -> Proxy {
    Proxy::start_with(&[], |settings| {
        settings.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        settings.admin.allowed_hosts = vec!["Admin.Example.com".into()];
    })
    .await
}

/// `method path` to `to` with this `Host` and, if given, a token.
async fn ask(to: &Admin, method: Method, path: &str, host: &str, token: Option<&str>) -> Reply {
    let mut request = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(header::HOST, host);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = if method == Method::POST {
        request = request.header(header::CONTENT_TYPE, "application/json");
        Bytes::from_static(br#"{"address":"10.0.0.66:80"}"#)
    } else {
        Bytes::new()
    };
    to.send(request.body(Full::new(body)).unwrap()).await
}

fn metrics_of(switchyard: &Proxy) -> Admin {
    let addr: SocketAddr = switchyard.metrics.expect("a metrics listener");
    Admin::new(addr, "")
}

fn assert_host_refused(reply: &Reply, what: &str) {
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "host_not_allowed"),
        "{what}: {}",
        reply.text
    );
    let message = reply.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("admin.allowed_hosts"), "{what}: {message}");
}

#[tokio::test]
async fn a_rebinding_request_is_refused_on_every_route_of_the_admin_listener() {
    let switchyard = switchyard().await;
    let admin = &switchyard.admin;
    let evil = format!("evil.example:{}", admin.addr.port());
    for (method, path) in [
        (Method::GET, "/api/v1/backends"),
        (Method::POST, "/api/v1/backends"),
        (Method::GET, "/api/v1/openapi.json"),
        (Method::GET, "/metrics"),
        (Method::GET, "/"),
        (Method::GET, "/app.js"),
        (Method::GET, "/no-such-file"),
    ] {
        let what = format!("{method} {path}");
        let with_token = ask(admin, method.clone(), path, &evil, Some(&admin.token)).await;
        assert_host_refused(&with_token, &what);
        let message = with_token.json["error"]["message"].as_str().unwrap();
        assert!(message.contains("\"evil.example\""), "{what}: {message}");
        let without = ask(admin, method, path, &evil, None).await;
        assert_host_refused(&without, &format!("{what}, before the token"));
    }
    assert!(
        switchyard.pool.load().backends().is_empty(),
        "the refused POST added nothing"
    );
    // The probes reveal nothing and health checkers call them by any name.
    for probe in ["/healthz", "/readyz"] {
        let checked = ask(admin, Method::GET, probe, "switchyard:9001", None).await;
        assert_eq!(checked.status, StatusCode::OK, "{probe}: {}", checked.text);
    }
    let own = ask(
        admin,
        Method::GET,
        "/healthz",
        &admin.addr.to_string(),
        None,
    )
    .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
}

#[tokio::test]
async fn a_rebinding_request_is_refused_on_the_metrics_listener() {
    let switchyard = switchyard().await;
    let metrics = metrics_of(&switchyard);
    let evil = format!("evil.example:{}", metrics.addr.port());
    for path in ["/metrics", "/api/v1/backends"] {
        let refused = ask(&metrics, Method::GET, path, &evil, None).await;
        assert_host_refused(&refused, path);
    }
    let own = ask(
        &metrics,
        Method::GET,
        "/metrics",
        &metrics.addr.to_string(),
        None,
    )
    .await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(own.text.contains("switchyard_membership_generation "));
}

#[tokio::test]
async fn ip_literals_localhost_and_configured_names_in_any_spelling_are_served() {
    let switchyard = switchyard().await;
    let admin = &switchyard.admin;
    let metrics = metrics_of(&switchyard);
    for (listener, token, path) in [
        (admin, Some(admin.token.as_str()), "/api/v1/stats"),
        (admin, None, "/"),
        (&metrics, None, "/metrics"),
    ] {
        let port = listener.addr.port();
        for host in [
            format!("127.0.0.1:{port}"),
            "127.0.0.1".to_owned(),
            "10.9.8.7:1234".to_owned(),
            format!("[::1]:{port}"),
            "[2001:db8::1]".to_owned(),
            format!("localhost:{port}"),
            "LOCALHOST.".to_owned(),
            format!("admin.example.com:{port}"),
            "admin.example.com".to_owned(),
            format!("ADMIN.Example.COM.:{port}"),
        ] {
            let answer = ask(listener, Method::GET, path, &host, token).await;
            assert_eq!(answer.status, StatusCode::OK, "{path} with Host: {host}");
        }
        for host in ["admin.example.com.evil", "sub.localhost", "example.com"] {
            let refused = ask(listener, Method::GET, path, host, token).await;
            assert_host_refused(&refused, &format!("{path} with Host: {host}"));
        }
    }
}

#[tokio::test]
async fn a_request_without_a_host_is_refused() {
    let switchyard = switchyard().await;
    let metrics = switchyard.metrics.unwrap();
    for (addr, path) in [(switchyard.admin.addr, "/"), (metrics, "/metrics")] {
        let bare = format!("GET {path} HTTP/1.0\r\n\r\n");
        let answer = common::raw_exchange(addr, bare.as_bytes()).await;
        assert_eq!(common::status_of(&answer), 403, "{path}: {answer}");
        assert!(answer.contains(r#""code":"host_not_allowed""#), "{answer}");
        let with_host = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        let answer = common::raw_exchange(addr, with_host.as_bytes()).await;
        assert_eq!(common::status_of(&answer), 200, "{path} with a Host");
    }
}

/// A write to `path` the browser sent with these extra headers.
fn write(method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut request = Api::request(method, path).header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn a_cross_site_write_is_refused_and_changes_nothing() {
    let api = Api::new().await;
    let id = api.add("10.0.0.1:80").await.json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = api.pool.load();
    let one = format!("/api/v1/backends/{id}");
    let cross = ("sec-fetch-site", "cross-site");
    let own_origin = ("origin", "http://127.0.0.1:8081");
    for (method, path, headers, body) in [
        (
            Method::POST,
            "/api/v1/backends",
            vec![cross],
            r#"{"address":"10.0.0.2:80"}"#,
        ),
        (Method::DELETE, one.as_str(), vec![cross], ""),
        (
            Method::PATCH,
            one.as_str(),
            vec![cross],
            r#"{"state":"draining"}"#,
        ),
        (
            Method::PUT,
            "/api/v1/backends",
            vec![cross],
            r#"{"backends":[]}"#,
        ),
        (Method::DELETE, one.as_str(), vec![cross, own_origin], ""),
        (
            Method::PATCH,
            one.as_str(),
            vec![("Sec-Fetch-Site", "CROSS-SITE")],
            r#"{"weight":9}"#,
        ),
    ] {
        let what = format!("{method} {path} {headers:?}");
        let answer = api.send(write(method, path, &headers, body)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::FORBIDDEN, "cross_site_write"),
            "{what}: {}",
            answer.text
        );
        assert!(answer.message().contains("admin.allowed_origins"), "{what}");
    }
    let after = api.pool.load();
    assert_eq!(after.generation(), before.generation(), "nothing published");
    assert_eq!(after.backends(), before.backends(), "the pool is unchanged");
    let listed = api.call(Method::GET, "/api/v1/backends", None).await;
    assert_eq!(listed.json["backends"].as_array().unwrap().len(), 1);
    assert_eq!(listed.json["backends"][0]["state"], "active");
    assert_eq!(listed.json["backends"][0]["weight"], 1);
}

#[tokio::test]
async fn same_origin_direct_and_allowed_origin_writes_still_work() {
    let api = Api::new().await;
    let own = [
        ("sec-fetch-site", "same-origin"),
        ("origin", "http://127.0.0.1:8081"),
    ];
    let typed = [("sec-fetch-site", "none")];
    let allowed = [("sec-fetch-site", "cross-site"), ("origin", ALLOWED_ORIGIN)];
    for (headers, address) in [
        (&own[..], "10.0.0.1:80"),
        (&typed[..], "10.0.0.2:80"),
        (&allowed[..], "10.0.0.3:80"),
    ] {
        let body = format!(r#"{{"address":"{address}"}}"#);
        let added = api
            .send(write(Method::POST, "/api/v1/backends", headers, &body))
            .await;
        assert_eq!(
            added.status,
            StatusCode::CREATED,
            "{headers:?}: {}",
            added.text
        );
        let id = added.json["id"].as_str().unwrap();
        let path = format!("/api/v1/backends/{id}");
        let drained = api
            .send(write(
                Method::PATCH,
                &path,
                headers,
                r#"{"state":"draining"}"#,
            ))
            .await;
        assert_eq!(
            drained.status,
            StatusCode::OK,
            "{headers:?}: {}",
            drained.text
        );
        let removed = api.send(write(Method::DELETE, &path, headers, "")).await;
        assert_eq!(removed.status, StatusCode::NO_CONTENT, "{headers:?}");
    }
    assert!(api.pool.load().backends().is_empty());
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_for_reads_and_writes() {
    let api = Api::new().await;
    let with = |method: Method, path: &str, authorization: String, body: &str| {
        Api::anonymous(method, path)
            .header(header::AUTHORIZATION, authorization)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let new = r#"{"address":"10.0.0.1:80"}"#;
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let read = with(
            Method::GET,
            "/api/v1/backends",
            format!("{scheme} {TOKEN}"),
            "",
        );
        assert_eq!(api.send(read).await.status, StatusCode::OK, "{scheme}");
        let read_only = format!("{scheme} {READ_TOKEN}");
        let read = with(Method::GET, "/api/v1/stats", read_only.clone(), "");
        assert_eq!(api.send(read).await.status, StatusCode::OK, "{scheme}");
        let refused = api
            .send(with(Method::POST, "/api/v1/backends", read_only, new))
            .await;
        assert_eq!(refused.code(), "read_only_token", "{scheme}");
    }
    let added = api
        .send(with(
            Method::POST,
            "/api/v1/backends",
            format!("bearer {TOKEN}"),
            new,
        ))
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let path = format!("/api/v1/backends/{}", added.json["id"].as_str().unwrap());
    let removed = api
        .send(with(Method::DELETE, &path, format!("BEARER {TOKEN}"), ""))
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    for wrong in [
        format!("Basic {TOKEN}"),
        format!("Bearer{TOKEN}"),
        TOKEN.to_owned(),
    ] {
        let answer = api
            .send(with(Method::GET, "/api/v1/backends", wrong, ""))
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
}
