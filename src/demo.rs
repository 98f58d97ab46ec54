//! `--demo`: three tiny backends on loopback so a new user sees routing work.
//!
//! Each answers every request with its name and the `Host` and path it saw.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::routing::{Backend, BackendState};

/// Where the demo backends listen.
pub const DEMO_ADDRS: [&str; 3] = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];

/// The running demo backends; they stop when this is dropped.
pub struct DemoBackends {
    tasks: Vec<JoinHandle<()>>,
    addrs: Vec<SocketAddr>,
}

impl DemoBackends {
    /// Bind and start `demo-1`..`demo-3` on [`DEMO_ADDRS`].
    pub async fn start() -> anyhow::Result<Self> {
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        for (i, addr) in DEMO_ADDRS.iter().enumerate() {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot start demo backend on {addr}: {e}"))?;
            addrs.push(listener.local_addr()?);
            tasks.push(tokio::spawn(serve_demo(
                listener,
                format!("demo-{}", i + 1),
            )));
        }
        Ok(DemoBackends { tasks, addrs })
    }

    /// The demo backends as pool members.
    pub fn backends(&self) -> Vec<Backend> {
        self.addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| Backend {
                id: format!("demo-{}", i + 1),
                address: addr
                    .to_string()
                    .parse()
                    .expect("socket address is a valid backend address"),
                weight: 1,
                state: BackendState::Active,
            })
            .collect()
    }
}

impl Drop for DemoBackends {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

async fn serve_demo(listener: TcpListener, name: String) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let name = name.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let host = req
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("-");
                let text = format!("{name} saw Host: {host}, path: {}\n", req.uri());
                async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text)))) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
