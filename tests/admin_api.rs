//! The admin API's contract, driven in-process with `oneshot`: auth, the
//! error shapes, validation (nothing half-applied), and every call.

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use switchyard::admin::{self, AdminState, AdminToken, Origins};
use switchyard::routing::{BackendPool, ReloadScope, Snapshot};
use switchyard::store::Store;
use switchyard::telemetry::Telemetry;
use tower::ServiceExt;

const TOKEN: &str = "test-token-0123456789";

struct Api {
    router: Router,
    pool: Arc<BackendPool>,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    json: Value,
    text: String,
}

impl Answer {
    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }
}

impl Api {
    async fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("admin.db").display());
        let store = Store::open(&url).await.unwrap();
        let pool = Arc::new(BackendPool::new(Snapshot::empty()));
        let state = AdminState {
            store,
            telemetry: Arc::new(Telemetry::new(Arc::clone(&pool))),
            pool: Arc::clone(&pool),
            reload_scope: Arc::new(ReloadScope::AnyHost),
            token: AdminToken::new(TOKEN),
            origins: Arc::new(Origins::of("127.0.0.1:8081".parse().unwrap())),
        };
        Api {
            router: admin::router(state),
            pool,
            _dir: dir,
        }
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            headers,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    fn request(method: Method, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let builder = Api::request(method, path);
        let request = match body {
            Some(json) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json.to_string())),
            None => builder.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    async fn raw_body(&self, method: Method, path: &str, content_type: &str, body: &str) -> Answer {
        let request = Api::request(method, path)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.send(request).await
    }

    async fn generation(&self) -> u64 {
        let list = self.call(Method::GET, "/api/v1/backends", None).await;
        list.json["generation"].as_u64().unwrap()
    }

    async fn add(&self, address: &str) -> Answer {
        let answer = self
            .call(
                Method::POST,
                "/api/v1/backends",
                Some(json!({ "address": address })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        answer
    }
}

#[tokio::test]
async fn every_call_but_healthz_needs_the_token() {
    let api = Api::new().await;
    let anonymous = api
        .send(
            Request::get("/api/v1/backends")
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
                Request::get(path)
                    .header(header::AUTHORIZATION, "Bearer test-token-0123456788")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let health = api
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
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
async fn a_created_backend_has_a_location_and_is_routed_at_once() {
    let api = Api::new().await;
    let created = api.add("App1.Internal:8000").await;
    let id = created.json["id"].as_str().unwrap();
    assert_eq!(
        created.json["address"], "app1.internal:8000",
        "canonical form"
    );
    assert_eq!(created.json["weight"], 1);
    assert_eq!(created.json["state"], "active");
    assert_eq!(created.json["health"], "unknown");
    assert!(created.json["created_at"].as_str().unwrap().ends_with('Z'));
    let location = created.headers[header::LOCATION].to_str().unwrap();
    assert_eq!(location, format!("/api/v1/backends/{id}"));
    let fetched = api.call(Method::GET, location, None).await;
    assert_eq!(fetched.json, created.json);
    assert_eq!(api.pool.load().generation(), 1, "published before the 201");
    assert_eq!(api.pool.load().active_len(), 1);
}

#[tokio::test]
async fn invalid_backends_get_clear_errors_and_change_nothing() {
    let api = Api::new().await;
    api.add("10.0.0.1:80").await;
    let cases: [(&str, StatusCode, &str, &str); 8] = [
        (
            r#"{"address":"not-an-address"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_address",
            "host:port",
        ),
        (
            r#"{"address":"10.0.0.2:0"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_address",
            "port",
        ),
        (
            r#"{"address":"::1:80"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_address",
            "brackets",
        ),
        (
            r#"{"address":"10.0.0.2:80","weight":0}"#,
            StatusCode::BAD_REQUEST,
            "invalid_weight",
            "1 to 1000",
        ),
        (
            r#"{"address":"10.0.0.2:80","weight":1001}"#,
            StatusCode::BAD_REQUEST,
            "invalid_weight",
            "1 to 1000",
        ),
        (
            r#"{"address":"10.0.0.2:80","colour":"red"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "colour",
        ),
        (
            r#"{"address":"10.0.0.2:80""#,
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "",
        ),
        (
            r#"{"address":"10.0.0.1:80"}"#,
            StatusCode::CONFLICT,
            "duplicate_address",
            "already exists",
        ),
    ];
    for (body, status, code, hint) in cases {
        let answer = api
            .raw_body(Method::POST, "/api/v1/backends", "application/json", body)
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{body}: {}",
            answer.text
        );
        assert!(
            answer.message().contains(hint),
            "{body}: {}",
            answer.message()
        );
    }
    let plain = api
        .raw_body(
            Method::POST,
            "/api/v1/backends",
            "text/plain",
            r#"{"address":"10.0.0.2:80"}"#,
        )
        .await;
    assert_eq!(
        (plain.status, plain.code()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let huge = format!(
        r#"{{"address":"10.0.0.2:80","pad":"{}"}}"#,
        "x".repeat(2 << 20)
    );
    let too_big = api
        .raw_body(Method::POST, "/api/v1/backends", "application/json", &huge)
        .await;
    assert_eq!(
        (too_big.status, too_big.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    assert_eq!(
        api.generation().await,
        1,
        "no refused request changed anything"
    );
    assert_eq!(api.pool.load().generation(), 1);
}

#[tokio::test]
async fn patch_drains_reweights_and_rejects_nonsense() {
    let api = Api::new().await;
    let a = api.add("10.0.0.1:80").await.json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.add("10.0.0.2:80").await;
    let path = format!("/api/v1/backends/{a}");
    let drained = api
        .call(Method::PATCH, &path, Some(json!({"state": "draining"})))
        .await;
    assert_eq!(drained.status, StatusCode::OK, "{}", drained.text);
    assert_eq!(drained.json["state"], "draining");
    assert_eq!(
        api.pool.load().active_len(),
        1,
        "draining takes no new keys"
    );
    let heavier = api
        .call(Method::PATCH, &path, Some(json!({"weight": 3})))
        .await;
    assert_eq!(
        (
            heavier.json["weight"].as_u64(),
            heavier.json["state"].as_str()
        ),
        (Some(3), Some("draining"))
    );
    let generation = api.generation().await;

    let whole = api
        .call(Method::PATCH, &path, Some(json!({"weight": 2.0})))
        .await;
    assert_eq!(
        whole.json["weight"], 2,
        "2.0 is a whole number: {}",
        whole.text
    );
    let generation = api.generation().await;

    let null = api
        .call(Method::PATCH, &path, Some(json!({"weight": null})))
        .await;
    assert_eq!(
        (null.status, null.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
    );
    let half = api
        .call(Method::PATCH, &path, Some(json!({"weight": 2.5})))
        .await;
    assert_eq!(half.code(), "invalid_body");
    assert!(
        half.message().contains("whole number"),
        "{}",
        half.message()
    );
    let empty = api.call(Method::PATCH, &path, Some(json!({}))).await;
    assert_eq!(
        (empty.status, empty.code()),
        (StatusCode::BAD_REQUEST, "empty_patch")
    );
    let asleep = api
        .call(Method::PATCH, &path, Some(json!({"state": "sleeping"})))
        .await;
    assert_eq!(
        (asleep.status, asleep.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
    );
    let heavy = api
        .call(Method::PATCH, &path, Some(json!({"weight": 5000})))
        .await;
    assert_eq!(heavy.code(), "invalid_weight");
    for missing in [
        "/api/v1/backends/999",
        "/api/v1/backends/abc",
        "/api/v1/backends/-1",
    ] {
        let answer = api
            .call(Method::PATCH, missing, Some(json!({"weight": 2})))
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{missing}"
        );
    }
    assert_eq!(
        api.generation().await,
        generation,
        "refused patches change nothing"
    );
}

#[tokio::test]
async fn delete_answers_204_then_404() {
    let api = Api::new().await;
    let id = api.add("10.0.0.1:80").await.json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/backends/{id}");
    assert_eq!(
        api.call(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.pool.load().backends().len(), 0);
    let again = api.call(Method::DELETE, &path, None).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(
        api.call(Method::GET, &path, None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn put_replaces_the_pool_atomically_or_not_at_all() {
    let api = Api::new().await;
    let kept = api.add("10.0.0.1:80").await.json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.add("10.0.0.2:80").await;
    let bad = [
        (
            json!({"backends": [{"address": "10.0.0.3:80"}, {"address": "nope"}]}),
            "invalid_address",
            "backends[1]",
        ),
        (
            json!({"backends": [{"address": "10.0.0.3:80"}, {"address": "10.0.0.3:80"}]}),
            "duplicate_address",
            "more than once",
        ),
        (
            json!({"backends": [{"address": "10.0.0.3:80", "weight": 0}]}),
            "invalid_weight",
            "backends[0]",
        ),
    ];
    for (body, code, hint) in bad {
        let answer = api.call(Method::PUT, "/api/v1/backends", Some(body)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::BAD_REQUEST, code)
        );
        assert!(answer.message().contains(hint), "{}", answer.message());
    }
    assert_eq!(
        api.generation().await,
        2,
        "refused replacements change nothing"
    );

    let body = json!({"backends": [
        {"address": "10.0.0.1:80", "weight": 2},
        {"address": "10.0.0.9:80", "state": "draining"},
    ]});
    let replaced = api.call(Method::PUT, "/api/v1/backends", Some(body)).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
    assert_eq!(replaced.json["generation"], 3, "one change, one generation");
    let backends = replaced.json["backends"].as_array().unwrap();
    let first = backends
        .iter()
        .find(|b| b["address"] == "10.0.0.1:80")
        .unwrap();
    assert_eq!(
        (first["id"].as_str().unwrap(), first["weight"].as_u64()),
        (kept.as_str(), Some(2))
    );
    assert_eq!(backends.len(), 2);
    let snapshot = api.pool.load();
    assert_eq!(
        (
            snapshot.generation(),
            snapshot.backends().len(),
            snapshot.active_len()
        ),
        (3, 2, 1)
    );
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
        ("/api/v1/changes", &["get"]),
        ("/api/v1/openapi.json", &["get"]),
        ("/metrics", &["get"]),
        ("/healthz", &["get"]),
    ];
    for (path, methods) in expected {
        for method in methods {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} is described");
            if path != "/healthz" {
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path} documents 401"
                );
            }
        }
    }
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
