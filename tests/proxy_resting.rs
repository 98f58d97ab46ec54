//! Idle keep-alive connections rest without hyper's buffers (SPEC
//! "Limits": an idle connection costs about a kilobyte) and come back
//! unchanged: the next request on the same socket is served, whatever it
//! is (a split head, a body, a WebSocket upgrade, a smuggling attempt);
//! a resting connection still closes at `timeouts.idle` and at once when
//! the proxy stops.

mod common;

use std::time::{Duration, Instant};

use common::raw::read_head;
use common::{Backend, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `switchyard_client_connections_resting` now.
async fn resting(proxy: &Proxy) -> u64 {
    let metrics = proxy.admin.get("/metrics").await.text;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("switchyard_client_connections_resting "))
        .map(|value| value.trim().parse().unwrap())
        .expect("the resting gauge is exported")
}

/// Wait until `wanted` connections rest (at most 5 s).
async fn until_resting(proxy: &Proxy, wanted: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = resting(proxy).await;
        if now == wanted {
            return;
        }
        assert!(Instant::now() < deadline, "{now} resting, wanted {wanted}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Read one response (head and a `Content-Length` body): status and body.
async fn response(stream: &mut TcpStream) -> (u16, String) {
    let got = tokio::time::timeout(Duration::from_secs(5), read_head(stream))
        .await
        .expect("a response within 5 s")
        .expect("a whole head before the connection closed");
    let head = String::from_utf8(got).unwrap();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8(body).unwrap())
}

/// `GET /` for `a.example` on `client`: the response's status.
async fn get(client: &mut TcpStream) -> u16 {
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await
        .unwrap();
    response(client).await.0
}

async fn proxy_with(backend: &Backend, idle: f64) -> Proxy {
    Proxy::start_with(&[backend.addr], |s| s.timeouts.idle = idle).await
}

#[tokio::test]
async fn an_idle_connection_rests_and_its_next_requests_are_served() {
    let backend = Backend::named("a").await;
    let proxy = proxy_with(&backend, 60.0).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client
        .write_all(b"GET /one HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        response(&mut client).await,
        (200, "a a.example /one".into())
    );
    until_resting(&proxy, 1).await;

    // A head split over two writes: a connection that has read part of a
    // head does not rest.
    client.write_all(b"GET /two HTTP/1.1\r\nHo").await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(resting(&proxy).await, 0, "a half-read head never rests");
    client.write_all(b"st: a.example\r\n\r\n").await.unwrap();
    assert_eq!(
        response(&mut client).await,
        (200, "a a.example /two".into())
    );
    until_resting(&proxy, 1).await;

    // A body, then two pipelined requests in one write.
    client
        .write_all(b"POST /three HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    assert_eq!(
        response(&mut client).await,
        (200, "a a.example /three".into())
    );
    until_resting(&proxy, 1).await;
    client
        .write_all(b"GET /four HTTP/1.1\r\nHost: a.example\r\n\r\nGET /five HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        response(&mut client).await,
        (200, "a a.example /four".into())
    );
    assert_eq!(
        response(&mut client).await,
        (200, "a a.example /five".into())
    );
    let seen: Vec<String> = backend
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.uri.clone())
        .collect();
    assert_eq!(seen, ["/one", "/two", "/three", "/four", "/five"]);
    assert_eq!(backend.seen.lock().unwrap()[2].body.as_ref(), b"hello");
    until_resting(&proxy, 1).await;
    drop(client);
    until_resting(&proxy, 0).await;
    proxy.stop().await;
}

#[tokio::test]
async fn a_request_after_rest_gets_the_same_framing_checks() {
    let backend = Backend::named("a").await;
    let proxy = proxy_with(&backend, 60.0).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    assert_eq!(get(&mut client).await, 200);
    until_resting(&proxy, 1).await;
    client
        .write_all(
            b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    assert_eq!(
        response(&mut client).await.0,
        400,
        "CL+TE is refused after a rest too"
    );
    assert_eq!(
        backend.seen.lock().unwrap().len(),
        1,
        "nothing more reached the backend"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_resting_connection_closes_at_the_idle_timeout_and_when_the_proxy_stops() {
    let backend = Backend::named("a").await;
    let proxy = proxy_with(&backend, 1.0).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    assert_eq!(get(&mut client).await, 200);
    let idle_since = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed by the proxy: {read:?}"
    );
    let after = idle_since.elapsed();
    assert!(
        after >= Duration::from_millis(700) && after < Duration::from_secs(3),
        "closed after {after:?}, idle is 1 s"
    );

    // A graceful stop closes a resting connection at once (grace is 30 s).
    let proxy_stopping = proxy_with(&backend, 60.0).await;
    let mut client = TcpStream::connect(proxy_stopping.addr).await.unwrap();
    assert_eq!(get(&mut client).await, 200);
    until_resting(&proxy_stopping, 1).await;
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), proxy_stopping.stop())
        .await
        .expect("the stop does not wait for a resting connection");
    let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
    assert!(stopping.elapsed() < Duration::from_secs(5));
    proxy.stop().await;
}

/// A raw backend: plain requests get `200 plain`; a WebSocket upgrade gets
/// `101` and then its bytes echoed.
async fn upgrading_backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                loop {
                    let Some(head) = read_head(&mut stream).await else {
                        return;
                    };
                    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    if !head.contains("upgrade: websocket") {
                        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain";
                        if stream.write_all(reply).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    let reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                        Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
                    if stream.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_websocket_upgrade_after_a_rest_is_tunnelled() {
    let backend = upgrading_backend().await;
    let proxy = Proxy::start_with(&[backend], |_| {}).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: chat.example\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(response(&mut client).await, (200, "plain".into()));
    until_resting(&proxy, 1).await;
    client
        .write_all(
            b"GET /socket HTTP/1.1\r\nHost: chat.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    assert_eq!(response(&mut client).await.0, 101);
    client.write_all(b"through the tunnel").await.unwrap();
    let mut echoed = [0u8; 18];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut echoed))
        .await
        .expect("echo within 5 s")
        .unwrap();
    assert_eq!(&echoed, b"through the tunnel");
    // Quiet for longer than a connection takes to rest: the tunnel stays.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(resting(&proxy).await, 0, "a tunnel never rests");
    client.write_all(b"still there").await.unwrap();
    let mut echoed = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut echoed))
        .await
        .expect("echo within 5 s")
        .unwrap();
    assert_eq!(&echoed, b"still there");
    proxy.stop().await;
}

#[tokio::test]
async fn a_connection_rests_only_after_half_a_second_without_a_request() {
    let backend = Backend::named("a").await;
    let proxy = proxy_with(&backend, 60.0).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await
        .unwrap();
    let answered = Instant::now();
    assert_eq!(response(&mut client).await.0, 200);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let early = resting(&proxy).await;
    if answered.elapsed() < Duration::from_millis(450) {
        assert_eq!(
            early, 0,
            "a connection idle for less than 0.5 s keeps hyper's state"
        );
    }
    until_resting(&proxy, 1).await;
    assert!(answered.elapsed() >= Duration::from_millis(500));
    proxy.stop().await;
}

#[tokio::test]
async fn a_request_the_proxy_answers_itself_also_lets_the_connection_rest() {
    let backend = Backend::named("a").await;
    let proxy = proxy_with(&backend, 60.0).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    // TRACE is answered by the proxy (405) without any backend work: the
    // request starts and ends between two reads of the connection.
    client
        .write_all(b"TRACE / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(response(&mut client).await.0, 405);
    until_resting(&proxy, 1).await;
    assert_eq!(
        get(&mut client).await,
        200,
        "and it serves the next request"
    );
    assert_eq!(backend.seen.lock().unwrap().len(), 1);
    proxy.stop().await;
}
