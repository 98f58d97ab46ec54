//! HTTP/2 rapid reset (CVE-2023-44487), paced under h2's own limit on
//! streams reset before they are accepted: each stream a client opens and
//! cancels must not cost a backend connection, and a client that keeps
//! cancelling requests whose backend exchange is under way is disconnected.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::h2raw::{frame, literal, PREFACE};
use common::raw::Recorder;
use common::{text, Backend, Proxy};
use http::{Method, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const END_STREAM_AND_HEADERS: u8 = 0x5;
const CANCEL: u32 = 0x8;

/// The header block of a `method` request for `a.example`.
fn request_block(method: &str) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", method),
        (":scheme", "http"),
        (":authority", "a.example"),
        (":path", "/reset"),
    ] {
        literal(&mut block, name, value);
    }
    block
}

/// A GET for `a.example` on `stream`, then (optionally) its RST_STREAM(CANCEL).
fn get(stream: u32, reset: bool) -> Vec<u8> {
    let mut out = frame(
        HEADERS,
        END_STREAM_AND_HEADERS,
        stream,
        &request_block("GET"),
    );
    if reset {
        out.extend(frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes()));
    }
    out
}

async fn h2_connect(proxy: &Proxy) -> TcpStream {
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    client.write_all(&hello).await.unwrap();
    client
}

/// Whether the proxy closed `client` (EOF or reset) within `within`,
/// whatever it wrote before.
async fn closed_within(client: &mut TcpStream, within: Duration) -> bool {
    let mut sink = [0u8; 16384];
    let read_to_end = async {
        loop {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_to_end).await.is_ok()
}

/// Whether `backend` has seen `count` requests within 2 s (checked every
/// millisecond: the budget refills with time, so the loop must be quick).
async fn reached_backend(backend: &Backend, count: usize) -> bool {
    for _ in 0..2000 {
        if backend.hits() >= count {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}

/// A backend slow enough (2 s) that every request is still in flight when
/// its client cancels it.
async fn slow_backend() -> Backend {
    Backend::with_handler(|_| async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Response::new(text("slow"))
    })
    .await
}

#[tokio::test]
async fn streams_reset_as_they_open_cost_no_backend_connection() {
    let backend = Recorder::start().await;
    let proxy = Proxy::start(&[backend.addr]).await;
    let mut client = h2_connect(&proxy).await;

    // 300 streams, HEADERS + RST_STREAM in pairs, ten pairs per write,
    // 2 ms apart: the paced attack.
    let mut stream = 1;
    for _ in 0..30 {
        let mut batch = Vec::new();
        for _ in 0..10 {
            batch.extend(get(stream, true));
            stream += 2;
        }
        if client.write_all(&batch).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert!(
        backend.connections() <= 3,
        "300 streams reset with their HEADERS opened {} backend connections",
        backend.connections()
    );
    // The proxy itself is fine.
    let (status, _) = proxy.get("a.example", "/after").await;
    assert_eq!(status, 200);
    proxy.stop().await;
}

#[tokio::test]
async fn a_client_that_keeps_cancelling_requests_in_flight_is_disconnected() {
    let backend = slow_backend().await;
    let proxy = Proxy::start(&[backend.addr]).await;
    let mut client = h2_connect(&proxy).await;

    // Open a stream, wait until its request reached the backend, cancel it.
    let mut cancelled = 0;
    let mut stream = 1;
    while cancelled < 400 {
        if client.write_all(&get(stream, false)).await.is_err() {
            break;
        }
        if !reached_backend(&backend, cancelled + 1).await {
            break; // the proxy stopped forwarding: closed
        }
        let reset = frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes());
        if client.write_all(&reset).await.is_err() {
            break;
        }
        cancelled += 1;
        stream += 2;
    }
    assert!(
        (100..400).contains(&cancelled),
        "the connection should close once about 100 requests in flight were cancelled; \
         it was still forwarding after {cancelled}"
    );
    assert!(closed_within(&mut client, Duration::from_secs(5)).await);
    let metrics = proxy.admin.call(Method::GET, "/metrics", None).await;
    assert!(
        metrics
            .text
            .contains("switchyard_h2_cancel_floods_total 1\n"),
        "{}",
        metrics.text
    );

    // Another connection (a browser that cancels now and then) is served.
    let mut polite = h2_connect(&proxy).await;
    polite.write_all(&get(1, false)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    polite
        .write_all(&frame(RST_STREAM, 0, 1, &CANCEL.to_be_bytes()))
        .await
        .unwrap();
    assert!(!closed_within(&mut polite, Duration::from_millis(300)).await);
    let (status, body) = proxy.get("a.example", "/after").await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "slow"));
    // (It would hold the graceful stop: it never acknowledges the PING.)
    drop(polite);
    proxy.stop().await;
}

/// A backend that writes `answer` (if any) for each request head it reads,
/// then nothing more; counts its connections.
async fn counting_backend(
    answer: Option<&'static [u8]>,
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let head_ends = buf[..n].windows(4).any(|w| w == b"\r\n\r\n");
                    if let (true, Some(answer)) = (head_ends, answer) {
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// A response head and the first bytes of a long body, then nothing.
const HEAD_THEN_SILENCE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nfirst";

/// Read frames until the response HEADERS of every stream in `streams`
/// came; `false` on EOF or after 5 s of silence.
async fn response_heads(client: &mut TcpStream, streams: &[u32], buf: &mut Vec<u8>) -> bool {
    let mut waiting: std::collections::HashSet<u32> = streams.iter().copied().collect();
    let mut chunk = [0u8; 16384];
    while !waiting.is_empty() {
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let (kind, id) = (buf[3], u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]));
            buf.drain(..9 + len);
            if kind == HEADERS {
                waiting.remove(&id);
            }
        }
        if waiting.is_empty() {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return false,
        }
    }
    true
}

#[tokio::test]
async fn a_reset_while_the_response_body_streams_counts_as_a_cancel() {
    let (backend, connections) = counting_backend(Some(HEAD_THEN_SILENCE)).await;
    let proxy = Proxy::start(&[backend]).await;
    let mut client = h2_connect(&proxy).await;
    let mut buf = Vec::new();
    // Rounds of 50 downloads: open them, wait for every response head,
    // then cancel them all.
    let mut cancelled = 0;
    let mut next = 1;
    for _ in 0..8 {
        let streams: Vec<u32> = (0..50).map(|i| next + 2 * i).collect();
        next += 100;
        let opened: Vec<u8> = streams.iter().flat_map(|&s| get(s, false)).collect();
        if client.write_all(&opened).await.is_err() {
            break;
        }
        if !response_heads(&mut client, &streams, &mut buf).await {
            break;
        }
        let resets: Vec<u8> = streams
            .iter()
            .flat_map(|&s| frame(RST_STREAM, 0, s, &CANCEL.to_be_bytes()))
            .collect();
        if client.write_all(&resets).await.is_err() {
            break;
        }
        cancelled += streams.len();
    }
    assert!(
        (100..=200).contains(&cancelled),
        "after {cancelled} downloads cancelled midway the connection should be closed"
    );
    assert!(closed_within(&mut client, Duration::from_secs(5)).await);
    assert!(connections.load(Ordering::SeqCst) <= cancelled + 1);
    proxy.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_with_many_requests_in_flight_is_no_flood() {
    let backend = slow_backend().await;
    let proxy = Proxy::start_with(&[backend.addr], |s| s.limits.h2_max_streams = 250).await;
    let mut client = h2_connect(&proxy).await;
    let mut all = Vec::new();
    for stream in (1..500).step_by(2) {
        all.extend(get(stream, false));
    }
    client.write_all(&all).await.unwrap();
    assert!(reached_backend(&backend, 200).await);
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = proxy.admin.call(Method::GET, "/metrics", None).await;
    assert!(
        metrics
            .text
            .contains("switchyard_h2_cancel_floods_total 0\n"),
        "{}",
        metrics.text
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_reset_while_the_request_body_uploads_counts_as_a_cancel() {
    const DATA: u8 = 0x0;
    const END_HEADERS: u8 = 0x4;
    let (backend, connections) = counting_backend(None).await;
    let proxy = Proxy::start(&[backend]).await;
    let mut client = h2_connect(&proxy).await;
    let block = request_block("POST");
    // Start an upload, wait until its head reached the backend, then send
    // more of the body and the reset in one write.
    let mut cancelled = 0;
    let mut stream = 1;
    while cancelled < 400 {
        let mut start = frame(HEADERS, END_HEADERS, stream, &block);
        start.extend(frame(DATA, 0, stream, b"first part"));
        if client.write_all(&start).await.is_err() {
            break;
        }
        let reached = async {
            while connections.load(Ordering::SeqCst) <= cancelled {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(2), reached)
            .await
            .is_err()
        {
            break; // the proxy stopped forwarding: closed
        }
        let mut rest = frame(DATA, 0, stream, b"more");
        rest.extend(frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes()));
        if client.write_all(&rest).await.is_err() {
            break;
        }
        cancelled += 1;
        stream += 2;
    }
    assert!(
        (100..400).contains(&cancelled),
        "after {cancelled} uploads reset midway the connection should be closed"
    );
    assert!(closed_within(&mut client, Duration::from_secs(5)).await);
    proxy.stop().await;
}
