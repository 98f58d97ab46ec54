//! Who may do what on the admin side: a read-only token reads everything
//! and changes nothing; origins listed in `admin.allowed_origins` may write
//! from a browser (an HTTPS reverse proxy in front of the UI) while others
//! stay refused; `--metrics-listen` serves `/metrics` alone, without a token.

mod common;

use axum::body::Body;
use common::oneshot::{Api, ALLOWED_ORIGIN, READ_TOKEN};
use common::Process;
use http::{header, Method, Request, StatusCode};

fn with_read_token(method: Method, path: &str, body: &str) -> Request<Body> {
    Api::anonymous(method, path)
        .header(header::AUTHORIZATION, format!("Bearer {READ_TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn the_read_only_token_reads_everything_and_changes_nothing() {
    let api = Api::new().await;
    let added = api.add("10.0.0.1:80").await;
    let id = added.json["id"].as_str().unwrap().to_owned();
    let generation = api.generation().await;
    for path in [
        "/api/v1/backends",
        &format!("/api/v1/backends/{id}"),
        "/api/v1/stats",
        "/api/v1/stats/history",
        "/api/v1/route?host=a.example",
        "/api/v1/changes",
        "/api/v1/openapi.json",
        "/metrics",
    ] {
        let answer = api.send(with_read_token(Method::GET, path, "")).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
    }
    let writes = [
        (
            Method::POST,
            "/api/v1/backends".to_owned(),
            r#"{"address":"10.0.0.2:80"}"#,
        ),
        (
            Method::PATCH,
            format!("/api/v1/backends/{id}"),
            r#"{"state":"draining"}"#,
        ),
        (Method::DELETE, format!("/api/v1/backends/{id}"), ""),
        (
            Method::PUT,
            "/api/v1/backends".to_owned(),
            r#"{"backends":[]}"#,
        ),
    ];
    for (method, path, body) in writes {
        let answer = api.send(with_read_token(method.clone(), &path, body)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(answer.code(), "read_only_token");
        assert!(answer.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("admin token"));
    }
    assert_eq!(api.generation().await, generation, "nothing changed");
    let list = api.call(Method::GET, "/api/v1/backends", None).await;
    assert_eq!(list.json["backends"][0]["state"], "active");
}

#[tokio::test]
async fn an_allowed_origin_may_write_and_any_other_stays_refused() {
    let api = Api::new().await;
    let from = |origin: &str, address: &str| {
        Api::request(Method::POST, "/api/v1/backends")
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(format!(r#"{{"address":"{address}"}}"#)))
            .unwrap()
    };
    let allowed = api.send(from(ALLOWED_ORIGIN, "10.0.0.1:80")).await;
    assert_eq!(allowed.status, StatusCode::CREATED, "{}", allowed.text);
    for foreign in [
        "https://evil.example",
        "http://admin.example.com",
        "https://admin.example.com.evil",
    ] {
        let refused = api.send(from(foreign, "10.0.0.2:80")).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{foreign}");
        assert_eq!(refused.code(), "forbidden_origin");
    }
}

#[tokio::test]
async fn the_metrics_listener_serves_metrics_alone_without_a_token() {
    let switchyard = Process::start(&["--metrics-listen", "127.0.0.1:0"]).await;
    let metrics = switchyard.metrics.expect("the metrics address is logged");
    let anonymous = |path: &str| {
        Request::get(path)
            .header(header::HOST, metrics.to_string())
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    let response = common::send(metrics, anonymous("/metrics")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8_lossy(&text);
    for name in [
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
        "switchyard_build_info{version=\"",
        "switchyard_request_duration_seconds_bucket{class=\"2xx\"",
        "switchyard_membership_generation ",
    ] {
        assert!(text.contains(name), "{name} in\n{text}");
    }
    let other = common::send(metrics, anonymous("/api/v1/backends")).await;
    assert_eq!(
        other.status(),
        StatusCode::NOT_FOUND,
        "nothing else is served there"
    );
    let admin_metrics = common::send(switchyard.admin.addr, anonymous("/metrics")).await;
    assert_eq!(
        admin_metrics.status(),
        StatusCode::UNAUTHORIZED,
        "the admin listener still asks"
    );
}

#[tokio::test]
async fn two_origin_lines_are_both_checked() {
    let api = Api::new().await;
    let request = Api::request(Method::POST, "/api/v1/backends")
        .header(header::ORIGIN, ALLOWED_ORIGIN)
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"address":"10.0.0.9:80"}"#))
        .unwrap();
    let answer = api.send(request).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "forbidden_origin")
    );
}

#[tokio::test]
async fn an_admin_client_that_never_finishes_its_head_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = common::Backend::named("b").await;
    let proxy = common::Proxy::start_with(&[backend.addr], |s| s.timeouts.header_read = 0.3).await;
    let mut slow = tokio::net::TcpStream::connect(proxy.admin.addr)
        .await
        .unwrap();
    slow.write_all(b"GET /api/v1/backends HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        slow.read_to_end(&mut rest),
    )
    .await;
    assert!(closed.is_ok(), "the admin listener closed the connection");
    let health = proxy.admin.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK, "and still serves others");
}
