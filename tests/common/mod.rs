//! Test helpers: backends and a switchyard on port 0, and small clients.
#![allow(dead_code, unused_imports)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use switchyard::config::{AdminSettings, BackendEntry, DatabaseUrl, Settings, TlsListen};
use switchyard::routing::BackendPool;
use switchyard::App;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod admin;
mod cut;
pub mod h2raw;
pub mod oneshot;
pub mod pebble;
pub mod pki;
mod postgres;
mod process;
pub mod raw;
mod rng;

pub use admin::{Admin, Reply};
pub use cut::Cuttable;
pub use postgres::{drop_database, postgres_or_skip, sessions_ended};
pub use process::Process;
pub use rng::Rng;

pub type TestBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// Report a skipped test on the real stderr: libtest captures `println!`
/// of passing tests, and a skip must never be silent.
pub fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// A response body from text.
pub fn text(s: impl Into<Bytes>) -> TestBody {
    Full::new(s.into()).boxed()
}

/// A request as a backend received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// An HTTP backend on 127.0.0.1:0 that records what it receives.
pub struct Backend {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// TCP connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    task: JoinHandle<()>,
    /// Tasks serving accepted connections (aborted by [`Backend::kill`]).
    open: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Backend {
    /// A backend that answers `"<name> <host> <path>"` and records each request.
    pub async fn named(name: &str) -> Backend {
        let name = name.to_owned();
        Backend::with_handler(move |seen: Seen| {
            let host = seen
                .headers
                .get("host")
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
                .unwrap_or_default();
            let reply = format!("{name} {host} {}", seen.uri);
            async move { Response::new(text(reply)) }
        })
        .await
    }

    /// A backend whose responses come from `handler` (body fully read first).
    pub async fn with_handler<F, Fut>(handler: F) -> Backend
    where
        F: Fn(Seen) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send,
    {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = Arc::clone(&seen);
        Backend::serve(
            move |req: Request<Incoming>| {
                let handler = handler.clone();
                let record = Arc::clone(&record);
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let request = Seen {
                        method: parts.method.to_string(),
                        uri: parts.uri.to_string(),
                        headers: parts.headers,
                        body,
                    };
                    record.lock().unwrap().push(request.clone());
                    handler(request).await
                }
            },
            seen,
        )
        .await
    }

    /// A backend running an arbitrary hyper service (with upgrades).
    pub async fn serve<S, Fut>(service: S, seen: Arc<Mutex<Vec<Seen>>>) -> Backend
    where
        S: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Backend::serve_on(listener, service, seen)
    }

    /// [`Backend::named`] on a given address (to restart a killed backend);
    /// it reads a request's whole body before answering.
    pub async fn named_at(name: &str, addr: SocketAddr) -> Backend {
        let listener = TcpListener::bind(addr).await.unwrap();
        let name = name.to_owned();
        Backend::serve_on(
            listener,
            move |req: Request<Incoming>| {
                let reply = format!("{name} {}", req.uri());
                async move {
                    let _ = req.into_body().collect().await;
                    Response::new(text(reply))
                }
            },
            Arc::default(),
        )
    }

    /// Stop like a crashed process: no more accepts, every open connection cut.
    pub fn kill(&self) {
        self.task.abort();
        for conn in self.open.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    fn serve_on<S, Fut>(listener: TcpListener, service: S, seen: Arc<Mutex<Vec<Seen>>>) -> Backend
    where
        S: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        let addr = listener.local_addr().unwrap();
        let connections: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let accepted = Arc::clone(&connections);
        let open: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let tracked = Arc::clone(&open);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let service = service.clone();
                let conn = tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let fut = service(req);
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
                tracked.lock().unwrap().push(conn.abort_handle());
            }
        });
        Backend {
            addr,
            seen,
            connections,
            task,
            open,
        }
    }

    /// How many requests reached this backend.
    pub fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// An address on which nothing listens (bound, then released).
pub async fn dead_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// switchyard running in this process on 127.0.0.1:0.
pub struct Proxy {
    pub addr: SocketAddr,
    pub pool: Arc<BackendPool>,
    /// The admin API, with its token.
    pub admin: Admin,
    /// The `metrics_listen` address, when one was set.
    pub metrics: Option<SocketAddr>,
    /// The HTTPS listener (on port 0 unless the test turned it off).
    pub tls: Option<SocketAddr>,
    /// Holds the temporary SQLite database.
    _dir: tempfile::TempDir,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Proxy {
    /// Start switchyard in front of `backends` with default settings.
    pub async fn start(backends: &[SocketAddr]) -> Proxy {
        Proxy::start_with(backends, |_| {}).await
    }

    /// Start switchyard in front of `backends`, after `adjust`ing the settings.
    pub async fn start_with(backends: &[SocketAddr], adjust: impl FnOnce(&mut Settings)) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: Some(DatabaseUrl::new(format!(
                "sqlite://{}",
                dir.path().join("switchyard.db").display()
            ))),
            admin: AdminSettings {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..AdminSettings::default()
            },
            backends: backends
                .iter()
                .map(|a| BackendEntry::Address(a.to_string()))
                .collect(),
            ..Settings::default()
        };
        settings.tls.listen = TlsListen::On("127.0.0.1:0".parse().unwrap());
        adjust(&mut settings);
        let app = App::build(&settings).await.expect("switchyard builds");
        let (addr, pool) = (app.proxy_addr(), app.pool());
        let admin = Admin::new(app.admin_addr(), app.admin_token());
        let metrics = app.metrics_addr();
        let tls = app.tls_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        Proxy {
            addr,
            pool,
            admin,
            metrics,
            tls,
            _dir: dir,
            shutdown,
            task,
        }
    }

    /// Stop gracefully and wait for the serve loop to return.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }

    /// `GET path` with `Host: host`; returns status and body text.
    pub async fn get(&self, host: &str, path: &str) -> (StatusCode, String) {
        Proxy::get_at(self.addr, host, path).await
    }

    /// `GET path` with `Host: host` from the proxy at `addr`.
    pub async fn get_at(addr: SocketAddr, host: &str, path: &str) -> (StatusCode, String) {
        let req = Request::get(path)
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = send(addr, req).await;
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Send raw bytes and read the whole answer (until the proxy closes or 5 s pass).
    pub async fn raw(&self, request: &[u8]) -> String {
        raw_exchange(self.addr, request).await
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn send<B>(addr: SocketAddr, req: Request<B>) -> Response<Incoming>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender.send_request(req).await.unwrap()
}

/// Write `request` on a new connection and read until EOF (at most 5 s).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status code of a raw HTTP/1.x answer.
pub fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Poll `check` until it is true or `within` passes.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// Hosts whose keys go to `target` first in a pool of `members`.
pub fn hosts_of(target: SocketAddr, members: &[SocketAddr], count: usize) -> Vec<String> {
    let snapshot = switchyard::routing::Snapshot::new(
        1,
        members
            .iter()
            .map(|a| switchyard::routing::Backend {
                id: a.to_string(),
                address: a.to_string().parse().unwrap(),
                weight: 1,
                state: switchyard::routing::BackendState::Active,
            })
            .collect(),
    )
    .unwrap();
    (0..)
        .map(|i| format!("site-{i}.example"))
        .filter(|h| {
            let key = switchyard::routing::key::normalize_host(h.as_bytes()).unwrap();
            snapshot.pick(&key).unwrap().address.as_str() == target.to_string()
        })
        .take(count)
        .collect()
}
