//! A client's fault never counts against a backend: uploads abandoned
//! mid-body, bodies with broken chunk framing and crowds of slow uploaders
//! that give up leave every backend in traffic, with its keys where they
//! were. Broken framing gets a `400` the client can read.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

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
