//! The admin router driven in-process with `oneshot`.

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use switchyard::admin::{self, AdminState, AdminToken, AllowedHosts, Origins};
use switchyard::config::Settings;
use switchyard::health::Health;
use switchyard::routing::{BackendPool, Snapshot};
use switchyard::store::Store;
use switchyard::telemetry::Telemetry;
use tower::ServiceExt;

pub const TOKEN: &str = "test-token-0123456789";
/// A browser origin [`Api`] accepts besides its own (`admin.allowed_origins`).
pub const ALLOWED_ORIGIN: &str = "https://admin.example.com";
/// The `Host` every request of [`Api`] carries: the listener's own address,
/// as any HTTP/1.1 client sends it.
pub const HOST: &str = "127.0.0.1:8081";
/// A name [`Api`] answers for besides IP literals and `localhost`
/// (`admin.allowed_hosts`).
pub const ALLOWED_HOST: &str = "admin.example.com";
/// The read-only token of [`Api`].
pub const READ_TOKEN: &str = "read-only-token-0123456789";

pub struct Api {
    pub router: Router,
    pub pool: Arc<BackendPool>,
    _dir: tempfile::TempDir,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }
}

impl Api {
    pub async fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("admin.db").display());
        let store = Store::open(&url).await.unwrap();
        let pool = Arc::new(BackendPool::new(Snapshot::empty()));
        let (proxy_settings, _) = Settings::default().validate().unwrap();
        let health = Arc::new(Health::new(proxy_settings.health.clone()));
        let state = AdminState {
            store,
            telemetry: Arc::new(Telemetry::new(Arc::clone(&pool), Arc::clone(&health))),
            health,
            pool: Arc::clone(&pool),
            settings: Arc::new(arc_swap::ArcSwap::from_pointee(proxy_settings)),
            token: AdminToken::new(TOKEN),
            read_token: Some(AdminToken::new(READ_TOKEN)),
            origins: Arc::new(
                Origins::of("127.0.0.1:8081".parse().unwrap())
                    .with(vec![ALLOWED_ORIGIN.to_owned()]),
            ),
            hosts: Arc::new(AllowedHosts::new(vec![ALLOWED_HOST.to_owned()])),
            db: Arc::default(),
            certificates: Arc::new(switchyard::tls::Keeper::new(
                switchyard::tls::Sessions::new().unwrap(),
                None,
            )),
            acme: None,
        };
        Api {
            router: admin::router(state),
            pool,
            _dir: dir,
        }
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
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

    /// `method path` with `Host` and the admin token.
    pub fn request(method: Method, path: &str) -> http::request::Builder {
        Api::anonymous(method, path).header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
    }

    /// `method path` with `Host` and no token.
    pub fn anonymous(method: Method, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, HOST)
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let builder = Api::request(method, path);
        let request = match body {
            Some(json) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json.to_string())),
            None => builder.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    pub async fn raw_body(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> Answer {
        let request = Api::request(method, path)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.send(request).await
    }

    pub async fn generation(&self) -> u64 {
        let list = self.call(Method::GET, "/api/v1/backends", None).await;
        list.json["generation"].as_u64().unwrap()
    }

    pub async fn add(&self, address: &str) -> Answer {
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
