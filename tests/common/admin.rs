//! A small client for the admin API.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

/// The admin API of a running switchyard and its token.
#[derive(Clone, Debug)]
pub struct Admin {
    pub addr: SocketAddr,
    pub token: String,
}

/// One admin API answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as JSON (`Value::Null` when empty or not JSON).
    pub json: Value,
    pub text: String,
}

impl Reply {
    fn new(status: StatusCode, headers: HeaderMap, body: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(body).into_owned();
        Reply {
            status,
            headers,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// `error.code` of an error answer.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

impl Admin {
    pub fn new(addr: SocketAddr, token: &str) -> Admin {
        Admin {
            addr,
            token: token.to_owned(),
        }
    }

    /// `method path` with the token and, if given, a JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.send(self.request(method, path, body)).await
    }

    /// [`Admin::call`] for a process that may die at any moment: a refused
    /// or cut connection, an answer cut short, or no whole answer `within`
    /// is an `Err` (the call was not acknowledged).
    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        within: std::time::Duration,
    ) -> Result<Reply, String> {
        let req = self.request(method, path, body);
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(conn);
            let response = sender
                .send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok(Reply::new(status, headers, &bytes))
        };
        tokio::time::timeout(within, exchange)
            .await
            .map_err(|_| format!("no whole answer within {within:?}"))?
    }

    fn request(&self, method: Method, path: &str, body: Option<Value>) -> Request<Full<Bytes>> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {}", self.token));
        let body = match body {
            Some(json) => {
                req = req.header("content-type", "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        req.body(Full::new(body)).unwrap()
    }

    /// Send a request exactly as built (for auth and header tests).
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        let response = super::send(self.addr, req).await;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply::new(status, headers, &bytes)
    }

    /// `address`'s entry in `GET /api/v1/backends`.
    pub async fn backend(&self, address: SocketAddr) -> Value {
        let list = self.get("/api/v1/backends").await.json;
        list["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["address"] == address.to_string())
            .cloned()
            .unwrap_or_else(|| panic!("{address} is listed: {list}"))
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    /// Add a backend; panics unless the answer is `201`. Returns its id.
    pub async fn add(&self, address: &str) -> String {
        let reply = self
            .call(
                Method::POST,
                "/api/v1/backends",
                Some(serde_json::json!({ "address": address })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.json["id"].as_str().unwrap().to_owned()
    }

    /// Remove a backend; panics unless the answer is `204`.
    pub async fn remove(&self, id: &str) {
        let reply = self
            .call(Method::DELETE, &format!("/api/v1/backends/{id}"), None)
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    }

    /// The addresses in `GET /api/v1/backends`, sorted.
    pub async fn addresses(&self) -> Vec<String> {
        let reply = self.get("/api/v1/backends").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let mut list: Vec<String> = reply.json["backends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["address"].as_str().unwrap().to_owned())
            .collect();
        list.sort();
        list
    }
}
