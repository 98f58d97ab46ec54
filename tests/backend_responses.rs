//! What a backend sends back can be ambiguous too (SPEC "Proxying"): a
//! response with both `Content-Length` and `Transfer-Encoding`, an invalid
//! one on a reused connection, a header block too large, a `101` to a
//! protocol nobody asked for.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::raw::{exchange, statuses, Recorder};
use common::Proxy;

#[tokio::test]
async fn a_response_with_length_and_chunks_loses_its_length_and_its_connection() {
    // Chunked body "hello world" (11 bytes) declared with Content-Length: 5.
    let backend = Recorder::answering(Arc::new(|_| {
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n".to_vec()
    }))
    .await;
    let proxy = Proxy::start(&[backend.addr]).await;
    let answer = exchange(
        proxy.addr,
        &[
            b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        ],
        Duration::from_millis(300),
        Duration::from_secs(4),
    )
    .await;
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(!text.contains("content-length: 5"), "{text}");
    // The client gets the whole body, twice (its framing is the proxy's own).
    assert_eq!(text.matches("hello world").count(), 2, "{text}");
    // The backend connection was not reused after the ambiguous response.
    assert_eq!(backend.requests().len(), 2);
    assert_eq!(
        backend.connections(),
        2,
        "a fresh backend connection for the second request"
    );
}

#[tokio::test]
async fn a_get_answered_invalidly_on_a_reused_connection_is_not_sent_twice() {
    let calls = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&calls);
    let backend = Recorder::answering(Arc::new(move |req| {
        if req.target == "/warm" {
            return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
        }
        count.fetch_add(1, Ordering::SeqCst);
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!".to_vec()
    }))
    .await;
    let proxy = Proxy::start(&[backend.addr]).await;
    // Warm a pooled connection, then a GET on it gets an invalid answer.
    let answer = exchange(
        proxy.addr,
        &[
            b"GET /warm HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /bad HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        ],
        Duration::from_millis(300),
        Duration::from_secs(4),
    )
    .await;
    assert_eq!(statuses(&answer), [200, 502]);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the GET reached the backend once"
    );
}

#[tokio::test]
async fn a_response_header_block_over_the_limit_is_a_502() {
    let big = "x".repeat(100 * 1024);
    let backend = Recorder::answering(Arc::new(move |req| {
        let filler = if req.target == "/big" {
            big.as_str()
        } else {
            "small"
        };
        format!("HTTP/1.1 200 OK\r\nX-Filler: {filler}\r\nContent-Length: 2\r\n\r\nok").into_bytes()
    }))
    .await;
    let proxy = Proxy::start(&[backend.addr]).await;
    for _ in 0..3 {
        let answer = exchange(
            proxy.addr,
            &[b"GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"],
            Duration::ZERO,
            Duration::from_secs(4),
        )
        .await;
        assert_eq!(
            statuses(&answer),
            [502],
            "{}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
    }
    let answer = exchange(
        proxy.addr,
        &[b"GET /small HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"],
        Duration::ZERO,
        Duration::from_secs(4),
    )
    .await;
    assert_eq!(statuses(&answer), [200]);
}

#[tokio::test]
async fn a_backend_cannot_switch_a_websocket_request_to_another_protocol() {
    let backend = Recorder::answering(Arc::new(|_| {
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec()
    }))
    .await;
    let proxy = Proxy::start(&[backend.addr]).await;
    let answer = exchange(
        proxy.addr,
        &[b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"],
        Duration::ZERO,
        Duration::from_secs(4),
    )
    .await;
    assert_eq!(
        statuses(&answer),
        [502],
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let requests = Recorder::requests(&backend);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("upgrade"), ["websocket"]);
}
