//! Draining: no new keys, but a WebSocket already open on the drained
//! backend keeps working until `timeouts.drain`, and is closed then.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Proxy};
use futures_util::{SinkExt, StreamExt};
use http::Method;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket echo backend that also answers plain GETs with "ws <path>".
async fn websocket_backend() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() && ws.send(message).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_backends_websocket_lives_until_the_drain_timeout() {
    let ws_backend = websocket_backend().await;
    let other = Backend::named("other").await;
    let proxy = Proxy::start_with(&[ws_backend, other.addr], |s| s.timeouts.drain = 1.5).await;
    // A host whose key is on the WebSocket backend.
    let mut host = String::new();
    for i in 0.. {
        host = format!("chat{i}.example");
        let route = proxy.admin.get(&format!("/api/v1/route?host={host}")).await;
        if route.json["backend"]["address"] == ws_backend.to_string() {
            break;
        }
    }
    let id = proxy
        .admin
        .get(&format!("/api/v1/route?host={host}"))
        .await
        .json["backend"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async(format!("ws://{host}/socket"), stream)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);

    let drained = proxy
        .admin
        .call(
            Method::PATCH,
            &format!("/api/v1/backends/{id}"),
            Some(json!({"state": "draining"})),
        )
        .await;
    assert_eq!(drained.status, 200);
    let since = Instant::now();
    let (_, body) = proxy.get(&host, "/").await;
    assert!(
        body.starts_with("other "),
        "new requests avoid the drained backend: {body}"
    );

    // Inside the drain timeout the open WebSocket keeps working.
    while since.elapsed() < Duration::from_millis(1_000) {
        ws.send(Message::text("still here")).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text("still here")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // After it, the proxy closes the tunnel.
    let ended = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if ws.send(Message::text("anyone?")).await.is_err() {
                return;
            }
            match ws.next().await {
                Some(Ok(Message::Text(_))) => tokio::time::sleep(Duration::from_millis(100)).await,
                _ => return,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the tunnel was closed after the drain timeout"
    );
    let closed_after = since.elapsed();
    assert!(
        closed_after >= Duration::from_millis(1_500),
        "not before the timeout: {closed_after:?}"
    );
    println!("MEASURE drain: WebSocket open {closed_after:?} after the drain (timeout 1.5 s)");
}

#[tokio::test]
async fn a_websocket_that_goes_quiet_for_tunnel_idle_is_closed_and_a_chatty_one_is_not() {
    let backend = websocket_backend().await;
    let proxy = Proxy::start_with(&[backend], |s| s.timeouts.tunnel_idle = 0.5).await;
    let open = || async {
        let stream = TcpStream::connect(proxy.addr).await.unwrap();
        let (ws, response) = tokio_tungstenite::client_async("ws://chat.example/socket", stream)
            .await
            .unwrap();
        assert_eq!(response.status(), 101);
        ws
    };
    // Chatty: a message every 200 ms for 1.5 s, three idle timeouts' worth.
    let mut chatty = open().await;
    for i in 0..8 {
        chatty.send(Message::text(format!("m{i}"))).await.unwrap();
        assert_eq!(
            chatty.next().await.unwrap().unwrap(),
            Message::text(format!("m{i}"))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Quiet: closed by the proxy within about the idle timeout.
    let mut quiet = open().await;
    let started = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(5), quiet.next()).await;
    assert!(
        matches!(
            end,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_))))
        ),
        "{end:?}"
    );
    let waited = started.elapsed();
    assert!(
        (Duration::from_millis(400)..Duration::from_secs(3)).contains(&waited),
        "{waited:?}"
    );
}
