//! The admin API's contract, driven in-process with `oneshot`: auth, the
//! error shapes, the OpenAPI document, and the read calls.

mod common;

use axum::body::Body;
use common::oneshot::Api;
use http::{header, Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn every_call_but_healthz_needs_the_token() {
    let api = Api::new().await;
    let anonymous = api
        .send(
            Api::anonymous(Method::GET, "/api/v1/backends")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.code(), "unauthorized");
    assert!(anonymous.headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    for path in [
        "/metrics",
        "/api/v1/openapi.json",
        "/api/v1/stats",
        "/api/v1/route?host=a",
    ] {
        let wrong = api
            .send(
                Api::anonymous(Method::GET, path)
                    .header(header::AUTHORIZATION, "Bearer test-token-0123456788")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let health = api
        .send(
            Api::anonymous(Method::GET, "/healthz")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json["status"], "serving");
}

#[tokio::test]
async fn a_foreign_origin_is_refused_even_with_the_token() {
    let api = Api::new().await;
    let forged = Api::request(Method::POST, "/api/v1/backends")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"address":"10.0.0.1:80"}"#))
        .unwrap();
    let answer = api.send(forged).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.code(), "forbidden_origin");
    assert_eq!(api.generation().await, 0, "nothing was added");
    let own = Api::request(Method::GET, "/api/v1/backends")
        .header(header::ORIGIN, "http://127.0.0.1:8081")
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.send(own).await.status, StatusCode::OK);
}

#[tokio::test]
async fn route_lookup_uses_the_proxys_key_rules_on_the_live_snapshot() {
    let api = Api::new().await;
    for port in 1..=4 {
        api.add(&format!("10.0.0.{port}:80")).await;
    }
    let site = api
        .call(
            Method::GET,
            "/api/v1/route?host=IronHand.Example:8080",
            None,
        )
        .await;
    let reload = api
        .call(
            Method::GET,
            "/api/v1/route?host=admin.example&path=/user/fred/webapps/IronHand.Example/reload",
            None,
        )
        .await;
    assert_eq!(site.status, StatusCode::OK, "{}", site.text);
    assert_eq!(
        (site.json["key"].as_str(), site.json["rule"].as_str()),
        (Some("ironhand.example"), Some("host"))
    );
    assert_eq!(
        (reload.json["key"].as_str(), reload.json["rule"].as_str()),
        (Some("ironhand.example"), Some("reload"))
    );
    assert_eq!(
        site.json["backend"], reload.json["backend"],
        "site and reload share a backend"
    );
    let candidates = site.json["candidates"].as_array().unwrap();
    assert_eq!(
        candidates.len(),
        4,
        "every active backend in failover order"
    );
    assert_eq!(candidates[0], site.json["backend"]);

    for (query, code) in [
        ("", "missing_host"),
        ("?host=bad_host!", "invalid_host"),
        ("?host=a.example&path=nope", "invalid_path"),
        (
            "?host=a.example&path=/user/x/webapps/%2500/reload",
            "invalid_reload_domain",
        ),
        ("?host=a.example&path=/a%00b", "invalid_request"),
    ] {
        let answer = api
            .call(Method::GET, &format!("/api/v1/route{query}"), None)
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::BAD_REQUEST, code),
            "{query}: {}",
            answer.text
        );
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_the_error_shape() {
    let api = Api::new().await;
    let missing = api.call(Method::GET, "/api/v1/nothing", None).await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let method = api.call(Method::DELETE, "/api/v1/backends", None).await;
    assert_eq!(
        (method.status, method.code()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_call_and_its_errors() {
    let api = Api::new().await;
    let doc = api
        .call(Method::GET, "/api/v1/openapi.json", None)
        .await
        .json;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let expected = [
        ("/api/v1/backends", &["get", "post", "put"][..]),
        ("/api/v1/backends/{id}", &["get", "patch", "delete"]),
        ("/api/v1/route", &["get"]),
        ("/api/v1/stats", &["get"]),
        ("/api/v1/stats/history", &["get"]),
        ("/api/v1/changes", &["get"]),
        ("/api/v1/openapi.json", &["get"]),
        ("/metrics", &["get"]),
        ("/healthz", &["get"]),
    ];
    let mut ids = std::collections::HashSet::new();
    for (path, methods) in expected {
        for method in methods {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} is described");
            let id = op["operationId"].as_str().unwrap();
            assert!(
                ids.insert(id.to_owned()) && id.len() > 5,
                "{method} {path}: {id}"
            );
            if path != "/healthz" {
                for status in ["401", "403", "500"] {
                    let response = &op["responses"][status];
                    assert!(response.is_object(), "{method} {path} documents {status}");
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody"
                    );
                }
            }
            if *method != "get" {
                let forbidden = op["responses"]["403"]["description"].as_str().unwrap();
                assert!(forbidden.contains("read_only_token"), "{method} {path}");
                assert!(
                    op["responses"]["503"].is_object(),
                    "{method} {path} documents 503"
                );
            }
        }
    }
    assert_eq!(
        doc["paths"]["/api/v1/backends"]["post"]["operationId"],
        "add_backend"
    );
    let codes: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "unauthorized",
        "read_only_token",
        "duplicate_address",
        "store_unavailable",
    ] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    let view = &doc["components"]["schemas"]["BackendView"]["properties"];
    for field in ["created_at", "health_since"] {
        assert_eq!(view[field]["format"], "date-time", "{field}");
    }
    assert!(view["health_reason"]["example"].is_string());
    assert_eq!(
        doc["components"]["schemas"]["NewBackend"]["example"]["address"],
        "10.0.0.7:8000"
    );
    assert!(doc["paths"]["/api/v1/backends"]["post"]["responses"]["409"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    let patch = &doc["components"]["schemas"]["BackendPatch"];
    assert_eq!(
        (patch["minProperties"].as_u64(), patch.get("maxProperties")),
        (Some(1), None)
    );
    assert!(doc["components"]["schemas"]["Address"]["pattern"]
        .as_str()
        .unwrap()
        .starts_with('^'));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn metrics_changes_and_stats_reflect_the_membership() {
    let api = Api::new().await;
    let id = api.add("10.0.0.1:80").await.json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.add("10.0.0.2:80").await;
    api.call(
        Method::PATCH,
        &format!("/api/v1/backends/{id}"),
        Some(json!({"state": "draining"})),
    )
    .await;

    let metrics = api.call(Method::GET, "/metrics", None).await;
    assert!(metrics.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    for line in [
        "switchyard_membership_generation 3",
        "switchyard_backends{state=\"active\"} 1",
        "switchyard_backends{state=\"draining\"} 1",
        "switchyard_requests_total{backend=\"10.0.0.2:80\",class=\"2xx\"} 0",
        "switchyard_upstream_latency_seconds_count{backend=\"10.0.0.1:80\"} 0",
    ] {
        assert!(
            metrics.text.lines().any(|l| l == line),
            "missing {line:?} in\n{}",
            metrics.text
        );
    }

    let changes = api.call(Method::GET, "/api/v1/changes?limit=2", None).await;
    let actions: Vec<&str> = changes.json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["updated", "created"], "newest first, limited");
    let bad = api.call(Method::GET, "/api/v1/changes?limit=0", None).await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );

    let stats = api.call(Method::GET, "/api/v1/stats", None).await;
    assert_eq!(stats.json["generation"], 3);
    let rows = stats.json["backends"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|r| r["requests"] == 0 && r["latency_ms"]["p50"].is_null()));
}

#[tokio::test]
async fn the_ui_is_served_at_the_root_with_types_caching_and_csp() {
    let api = Api::new().await;
    let get = |path: &str, etag: Option<&str>| {
        let mut request = Api::anonymous(Method::GET, path);
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        request.body(Body::empty()).unwrap()
    };
    let page = api.send(get("/", None)).await;
    assert_eq!(page.status, StatusCode::OK, "the UI needs no token");
    assert_eq!(
        page.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert!(page
        .text
        .contains("<script type=\"module\" src=\"app.js\">"));
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-cache");
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let etag = page.headers[header::ETAG].to_str().unwrap().to_owned();
    let again = api.send(get("/", Some(&etag))).await;
    assert_eq!(
        (again.status, again.text.as_str()),
        (StatusCode::NOT_MODIFIED, "")
    );

    for (path, content_type) in [
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let file = api.send(get(path, None)).await;
        assert_eq!(file.status, StatusCode::OK, "{path}");
        assert_eq!(file.headers[header::CONTENT_TYPE], content_type, "{path}");
    }
    for path in ["/nope.js", "/api/v1/nope", "/api/v1/", "/api"] {
        let missing = api.send(get(path, None)).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            missing.json["error"]["code"].is_string(),
            "{path} answers in the API's error shape"
        );
        assert!(
            !missing.text.contains("<html"),
            "{path} never falls through to the UI"
        );
    }
}
