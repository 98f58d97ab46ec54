//! Large bodies both ways, slow readers, and upgraded connections.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Backend, Process, Proxy};
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

const CHUNK: usize = 64 * 1024;

/// Chunk `k` of a deterministic body: every chunk differs, so a lost,
/// duplicated or reordered chunk changes the SHA-256.
fn chunk(k: usize) -> Bytes {
    (0..CHUNK)
        .map(|j| (k.wrapping_mul(131) ^ j.wrapping_mul(7) ^ (j >> 8)) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn sha_of_chunks(n: usize) -> String {
    let mut hash = Sha256::new();
    (0..n).for_each(|k| hash.update(chunk(k)));
    hex(&hash.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A body of `n` chunks, produced as the reader pulls.
fn chunked_body(n: usize) -> common::TestBody {
    let frames =
        futures_util::stream::iter((0..n).map(|k| Ok::<_, Infallible>(Frame::data(chunk(k)))));
    BodyExt::boxed(StreamBody::new(frames))
}

#[tokio::test]
async fn a_slow_client_downloading_50_mb_gets_every_byte_and_the_proxy_stays_small() {
    let chunks = 50 * 1024 * 1024 / CHUNK;
    let backend = Backend::with_handler(move |_| async move {
        let mut response = Response::new(chunked_body(chunks));
        response
            .headers_mut()
            .insert("content-length", (chunks * CHUNK).into());
        response
    })
    .await;
    let proxy = Process::start(&["--backend", &backend.addr.to_string(), "--workers", "2"]).await;
    let baseline = proxy.rss_kib();

    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: downloads.example\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    let body_start = loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the head");
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = switchyard::proxy::framing::head_end(&head) {
            break end;
        }
    };
    assert!(head.starts_with(b"HTTP/1.1 200"));
    let mut hash = Sha256::new();
    hash.update(&head[body_start..]);
    let mut received = head.len() - body_start;
    let (started, mut peak_rss) = (Instant::now(), baseline);
    let rate = 2.0 * 1024.0 * 1024.0; // bytes per second
    while received < chunks * CHUNK {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed after {received} bytes");
        hash.update(&buf[..n]);
        received += n;
        // Read no faster than ~2 MB/s.
        let due = Duration::from_secs_f64(received as f64 / rate);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        peak_rss = peak_rss.max(proxy.rss_kib());
    }
    let elapsed = started.elapsed();
    assert_eq!(received, chunks * CHUNK);
    assert_eq!(
        hex(&hash.finalize()),
        sha_of_chunks(chunks),
        "body arrived intact and in order"
    );
    println!(
        "slow download: 50 MiB in {:.1} s; proxy RSS baseline {} KiB, peak {} KiB (+{} KiB)",
        elapsed.as_secs_f64(),
        baseline,
        peak_rss,
        peak_rss - baseline
    );
    assert!(
        elapsed >= Duration::from_secs(20),
        "the client really was slow"
    );
    assert!(
        peak_rss - baseline < 16 * 1024,
        "proxy memory must not grow with the body: +{} KiB",
        peak_rss - baseline
    );
}

#[tokio::test]
async fn a_100_mb_upload_arrives_intact() {
    let hashes: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = Arc::clone(&hashes);
    let backend = Backend::serve(
        move |req: Request<hyper::body::Incoming>| {
            let record = Arc::clone(&record);
            async move {
                let mut body = req.into_body();
                let (mut hash, mut size) = (Sha256::new(), 0usize);
                while let Some(frame) = body.frame().await {
                    if let Ok(data) = frame.unwrap().into_data() {
                        size += data.len();
                        hash.update(&data);
                    }
                }
                let digest = hex(&hash.finalize());
                record.lock().unwrap().push(digest.clone());
                Response::new(common::text(format!("{size} {digest}")))
            }
        },
        Arc::default(),
    )
    .await;
    let proxy = Proxy::start(&[backend.addr]).await;
    let chunks = 100 * 1024 * 1024 / CHUNK;
    let request = Request::post("/upload")
        .header("host", "uploads.example")
        .body(chunked_body(chunks))
        .unwrap();
    let response = common::send(proxy.addr, request).await;
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let expected = sha_of_chunks(chunks);
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("{} {expected}", chunks * CHUNK)
    );
    assert_eq!(*hashes.lock().unwrap(), vec![expected]);
}

#[tokio::test]
async fn websocket_messages_round_trip_through_the_proxy() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        while let Some(Ok(message)) = ws.next().await {
            if message.is_text() || message.is_binary() {
                ws.send(message).await.unwrap();
            }
        }
    });
    let proxy = Proxy::start(&[backend]).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async("ws://chat.example/socket", stream)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..20 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text(format!("hello {i}"))
        );
    }
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
    ws.close(None).await.unwrap();
}
