//! A client's fault never counts against a backend: uploads abandoned
//! mid-body, bodies with broken chunk framing and crowds of slow uploaders
//! that give up leave every backend in traffic, with its keys where they
//! were. Broken framing gets a `400` the client can read.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::raw::read_head;
use common::{hosts_of, status_of, Backend, Proxy};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Send a head announcing 100,000 bytes, `sent` of them, then hang up.
async fn abandon_upload(proxy: SocketAddr, host: &str, sent: usize) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let head = format!("POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100000\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'x'; sent]).await.unwrap();
    // Let the head and the first bytes reach the backend before leaving.
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(stream);
}

/// A chunked upload whose second chunk size is not hex; returns the answer.
async fn broken_chunks(proxy: SocketAddr, host: &str) -> String {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.write_all(b"ZZ\r\nworld\r\n0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn health_of(proxy: &Proxy, backend: SocketAddr) -> String {
    let view = proxy.admin.backend(backend).await;
    view["health"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn abandoned_uploads_and_broken_chunks_never_take_a_backend_out() {
    let a = Backend::named("a").await;
    let b = Backend::named("b").await;
    let members = [a.addr, b.addr];
    let proxy = Proxy::start_with(&members, |s| {
        s.health.passive.failures = 3;
        s.health.passive.cooldown = 60.0;
    })
    .await;
    let host = &hosts_of(a.addr, &members, 1)[0];
    let (status, body) = proxy.get(host, "/").await;
    assert_eq!((status, &body[..2]), (StatusCode::OK, "a "));

    for _ in 0..6 {
        abandon_upload(proxy.addr, host, 1000).await;
    }
    for attempt in 0..6 {
        let answer = broken_chunks(proxy.addr, host).await;
        assert_eq!(status_of(&answer), 400, "attempt {attempt}: {answer}");
        assert!(answer.contains("malformed request body"), "{answer}");
    }

    assert_eq!(health_of(&proxy, a.addr).await, "up");
    let (status, body) = proxy.get(host, "/after").await;
    assert_eq!(
        (status, &body[..2]),
        (StatusCode::OK, "a "),
        "the key still lands on its backend"
    );
    let stats = proxy.admin.get("/api/v1/stats").await.json;
    let a_stats = stats["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["address"] == a.addr.to_string())
        .unwrap()
        .clone();
    assert_eq!(a_stats["failovers"], 0, "{a_stats}");
    assert_eq!(
        a_stats["by_class"]["5xx"], 0,
        "no 502 was made of it: {a_stats}"
    );
    assert_eq!(
        a_stats["by_class"]["4xx"], 12,
        "6 gone (499) + 6 malformed (400): {a_stats}"
    );
}

#[tokio::test]
async fn fifty_slow_uploaders_that_give_up_leave_every_backend_in_traffic() {
    let backends = [
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    ];
    let members: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let proxy = Proxy::start(&members).await;
    let hosts: Vec<String> = members
        .iter()
        .flat_map(|&m| hosts_of(m, &members, 17))
        .collect();
    let uploads: Vec<_> = hosts
        .iter()
        .take(50)
        .map(|host| {
            let (addr, host) = (proxy.addr, host.clone());
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let head = format!(
                    "PUT /big HTTP/1.1\r\nHost: {host}\r\nContent-Length: 10000000\r\n\r\n"
                );
                stream.write_all(head.as_bytes()).await.unwrap();
                for _ in 0..5 {
                    stream.write_all(&[b'y'; 100]).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    for upload in uploads {
        upload.await.unwrap();
    }
    for (backend, name) in backends.iter().zip(["a", "b", "c"]) {
        assert_ne!(health_of(&proxy, backend.addr).await, "down", "{name}");
        let host = &hosts_of(backend.addr, &members, 1)[0];
        let (status, body) = proxy.get(host, "/").await;
        assert_eq!((status, &body[..1]), (StatusCode::OK, name));
    }
}

/// A raw backend like an app server with a 200 ms body timeout: it answers
/// requests without a body, and closes, without a word, a connection whose
/// body does not arrive in time.
async fn impatient_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let Some(head) = read_head(&mut stream).await else {
                    return;
                };
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if text.contains("content-length:") {
                    let mut sink = [0u8; 4096];
                    let _ = tokio::time::timeout(Duration::from_millis(200), async {
                        loop {
                            if stream.read(&mut sink).await.unwrap_or(0) == 0 {
                                break;
                            }
                        }
                    })
                    .await;
                    return; // gives up on the slow body: closes
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_backend_that_gives_up_on_a_slow_upload_is_not_blamed_for_it() {
    let impatient = impatient_backend().await;
    let other = Backend::named("other").await;
    let members = [impatient, other.addr];
    let proxy = Proxy::start_with(&members, |s| {
        s.health.passive.failures = 2;
        s.health.passive.cooldown = 60.0;
    })
    .await;
    let host = &hosts_of(impatient, &members, 1)[0];
    for _ in 0..3 {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        let head = format!("POST /up HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\n\r\nx");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
        assert_eq!(status_of(&String::from_utf8_lossy(&answer)), 502);
    }
    assert_ne!(health_of(&proxy, impatient).await, "down");
    let (status, body) = proxy.get(host, "/").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "ok"),
        "its keys stay"
    );
}

#[tokio::test]
async fn a_silent_upload_is_cut_off_at_body_idle_with_408() {
    let backend = Backend::named("b").await;
    let proxy = Proxy::start_with(&[backend.addr], |s| {
        s.timeouts.body_idle = 0.3;
        s.health.passive.failures = 1;
    })
    .await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let head = "PUT /up HTTP/1.1\r\nHost: quiet.example\r\nContent-Length: 100\r\n\r\n0123456789";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(
        health_of(&proxy, backend.addr).await,
        "down",
        "one failure would do"
    );
}

#[tokio::test]
async fn an_apps_own_503s_do_not_take_its_backend_out_by_default() {
    let shared = Backend::with_handler(|seen| async move {
        let mut response = http::Response::new(common::text(seen.uri.clone()));
        if seen.uri == "/overloaded" {
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        response
    })
    .await;
    let other = Backend::named("other").await;
    let members = [shared.addr, other.addr];
    let proxy = Proxy::start(&members).await;
    let host = &hosts_of(shared.addr, &members, 1)[0];
    for _ in 0..10 {
        let (status, _) = proxy.get(host, "/overloaded").await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "the app's answer passes through"
        );
    }
    assert_eq!(
        health_of(&proxy, shared.addr).await,
        "up",
        "answered: the backend works"
    );
    let (status, body) = proxy.get(host, "/fine").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "/fine"),
        "its keys stay"
    );
}
