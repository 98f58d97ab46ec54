//! Every phase of an exchange has a timeout (SPEC "Proxying"): a body
//! trickled too slowly, a client that reads nothing of its response, a
//! backend that stops in the middle of its body.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::raw::Recorder;
use common::{status_of, Backend, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Read until EOF (or `limit`); the bytes read and when the EOF came.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut chunk),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, Some(started.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Err(_) => return (got, None),
        }
    }
}

#[tokio::test]
async fn a_body_trickled_a_byte_at_a_time_is_cut_off_with_408() {
    let backend = Backend::named("a").await;
    let proxy = Proxy::start_with(&[backend.addr], |s| {
        s.timeouts.body_idle = 2.0;
        s.limits.min_body_rate = 100;
    })
    .await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"POST /up HTTP/1.1\r\nHost: a.example\r\nContent-Length: 1000\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // One byte every 400 ms never trips body_idle (2 s), only the rate.
    let mut answer = Vec::new();
    for _ in 0..40 {
        if stream.write_all(b"x").await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(400), stream.read(&mut buf)).await
        {
            answer.extend_from_slice(&buf[..n]);
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(&text), 408, "{text}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "cut off after {took:?}");
    // The client's slowness is not the backend's fault.
    let health = proxy.admin.backend(backend.addr).await;
    assert_ne!(health["health"], "down", "{health}");
}

#[tokio::test]
async fn a_client_that_reads_nothing_is_disconnected_after_send_idle() {
    let body = Arc::new(vec![b'z'; 32 * 1024 * 1024]);
    let backend = Recorder::answering(Arc::new(move |_| {
        let mut answer =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        answer.extend_from_slice(&body);
        answer
    }))
    .await;
    let proxy = Proxy::start_with(&[backend.addr], |s| s.timeouts.send_idle = 1.0).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // Read nothing for 4 s: the proxy gives up on us after about 1 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (got, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "the connection is closed");
    assert!(
        got.len() < 32 * 1024 * 1024,
        "only part of the body was sent: {}",
        got.len()
    );
}

#[tokio::test]
async fn a_backend_that_stalls_mid_body_is_cut_off_after_response_body_idle() {
    let backend = Recorder::answering(Arc::new(|_| {
        // Promises 1000 bytes, sends 5, then nothing (the connection stays open).
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello".to_vec()
    }))
    .await;
    let proxy = Proxy::start_with(&[backend.addr], |s| s.timeouts.response_body_idle = 1.0).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = read_until_closed(&mut stream, Duration::from_secs(8)).await;
    let closed = closed.expect("the client's connection is closed");
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(6),
        "{closed:?}"
    );
    assert!(
        String::from_utf8_lossy(&got).ends_with("hello"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn an_http2_client_that_grants_no_window_is_disconnected_after_send_idle() {
    use common::h2raw::{frame, literal, PREFACE};
    let backend = Recorder::start().await;
    let proxy = Proxy::start_with(&[backend.addr], |s| s.timeouts.send_idle = 1.0).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let mut out = PREFACE.to_vec();
    // SETTINGS_INITIAL_WINDOW_SIZE (4) = 0: no response byte may be sent.
    out.extend(frame(0x4, 0, 0, &[0, 4, 0, 0, 0, 0]));
    for id in [1, 3, 5] {
        let mut block = Vec::new();
        for (name, value) in [
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "a.example"),
            (":path", "/"),
        ] {
            literal(&mut block, name, value);
        }
        out.extend(frame(0x1, 0x4 | 0x1, id, &block));
    }
    stream.write_all(&out).await.unwrap();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let closed = closed.expect("the connection is closed");
    assert!(closed >= Duration::from_millis(900), "{closed:?}");
    assert_eq!(
        backend.requests().len(),
        3,
        "the backend answered all three"
    );
}
