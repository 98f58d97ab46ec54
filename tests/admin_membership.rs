//! Membership changes through the admin API, driven in-process with
//! `oneshot`: create, validation (nothing half-applied), patch, delete and
//! atomic replace.

mod common;

use common::oneshot::Api;
use http::{header, Method, StatusCode};
use serde_json::json;

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
