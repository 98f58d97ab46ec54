//! Malformed, ambiguous, oversized and slow requests (SPEC "Proxying").

mod common;

use std::time::{Duration, Instant};

use common::{status_of, Backend, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn proxy_with_backend() -> (Proxy, Backend) {
    let backend = Backend::named("backend").await;
    (Proxy::start(&[backend.addr]).await, backend)
}

#[tokio::test]
async fn an_oversized_header_block_gets_431() {
    let (proxy, backend) = proxy_with_backend().await;
    let big = "x".repeat(70 * 1024);
    let answer = proxy
        .raw(format!("GET / HTTP/1.1\r\nHost: a.example\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await;
    assert_eq!(status_of(&answer), 431, "{answer}");
    // Just under the limit passes.
    let fits = "x".repeat(60 * 1024);
    let answer = proxy
        .raw(
            format!(
                "GET / HTTP/1.1\r\nHost: a.example\r\nX-Big: {fits}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(
        status_of(&answer),
        200,
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn host_problems_get_400_and_reach_no_backend() {
    let (proxy, backend) = proxy_with_backend().await;
    for (request, reason) in [
        (&b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"[..], "missing Host"),
        (b"GET / HTTP/1.0\r\n\r\n", "missing Host"),
        (b"GET / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n", "empty Host"),
        (b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n", "more than one Host"),
        (b"GET / HTTP/1.1\r\nHost: a..example\r\nConnection: close\r\n\r\n", "invalid host"),
        (b"GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n", "does not match"),
        (b"GET /user/x/webapps/a%20b/reload HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n", "reload URL"),
    ] {
        let answer = proxy.raw(request).await;
        assert_eq!(status_of(&answer), 400, "{}", String::from_utf8_lossy(request));
        assert!(answer.contains(reason), "body says why ({reason}): {answer}");
        assert!(answer.to_lowercase().contains("content-type: text/plain"), "{answer}");
    }
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn content_length_with_transfer_encoding_gets_400_and_nothing_is_forwarded() {
    let (proxy, backend) = proxy_with_backend().await;
    for request in [
        &b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    ] {
        let answer = proxy.raw(request).await;
        assert_eq!(status_of(&answer), 400, "{}", String::from_utf8_lossy(request));
        assert!(answer.to_lowercase().contains("connection: close"), "{answer}");
    }
    // A smuggling attempt after a clean first request on the same connection.
    let answer = proxy
        .raw(b"GET /first HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(status_of(&answer), 200);
    let hits_before = backend.hits();
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /ok HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&buf[..n])), 200);
    stream
        .write_all(b"POST /smuggle HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert_eq!(status_of(&String::from_utf8_lossy(&rest)), 400);
    assert_eq!(
        backend.hits(),
        hits_before + 1,
        "only /ok reached the backend"
    );
    assert!(backend
        .seen
        .lock()
        .unwrap()
        .iter()
        .all(|s| s.uri != "/smuggle"));
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let backend = Backend::named("b").await;
    let proxy = Proxy::start_with(&[backend.addr], |s| s.limits.max_body_bytes = Some(1000)).await;
    let body = "y".repeat(2000);
    let declared = proxy
        .raw(
            format!("POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 2000\r\n\r\n{body}")
                .as_bytes(),
        )
        .await;
    assert_eq!(status_of(&declared), 413);
    let chunked = proxy
        .raw(format!("POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n{body}\r\n0\r\n\r\n").as_bytes())
        .await;
    assert_eq!(status_of(&chunked), 413, "{chunked}");
    let small = proxy
        .raw(b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
        .await;
    assert_eq!(status_of(&small), 200);
}

/// Read until the proxy closes the connection; returns how long that took.
async fn time_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), stream.read(&mut buf))
            .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_disconnected() {
    let backend = Backend::named("b").await;
    let proxy = Proxy::start_with(&[backend.addr], |s| {
        s.timeouts.header_read = 0.3;
        s.timeouts.idle = 30.0;
    })
    .await;
    // Nothing at all (this also covers the HTTP/2 preface sniffing).
    let mut silent = TcpStream::connect(proxy.addr).await.unwrap();
    let closed = time_until_closed(&mut silent, Duration::from_secs(10)).await;
    assert!(
        closed.is_some_and(|t| t >= Duration::from_millis(250)),
        "silent client: {closed:?}"
    );
    // Half a head, then silence.
    let mut slow = TcpStream::connect(proxy.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a.exa")
        .await
        .unwrap();
    assert!(time_until_closed(&mut slow, Duration::from_secs(10))
        .await
        .is_some());
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let backend = Backend::named("b").await;
    let proxy = Proxy::start_with(&[backend.addr], |s| {
        s.timeouts.header_read = 30.0;
        s.timeouts.idle = 0.5;
    })
    .await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&buf[..n])), 200);
    let closed = time_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(
        closed.is_some_and(|t| t >= Duration::from_millis(400)),
        "idle close after ~0.5 s: {closed:?}"
    );
}

#[tokio::test]
async fn underscore_headers_and_h2c_upgrades_are_not_forwarded() {
    let (proxy, backend) = proxy_with_backend().await;
    let answer = proxy
        .raw(b"GET / HTTP/1.1\r\nHost: a.example\r\nX_Forwarded_For: 6.6.6.6\r\nUpgrade: h2c\r\n\
            HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\r\n")
        .await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    let seen = backend.seen.lock().unwrap()[0].headers.clone();
    assert!(seen.get("x_forwarded_for").is_none());
    assert!(
        seen.get("upgrade").is_none() && seen.get("http2-settings").is_none(),
        "{seen:?}"
    );
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test]
async fn connect_is_refused() {
    let (proxy, backend) = proxy_with_backend().await;
    let answer = proxy
        .raw(b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n")
        .await;
    assert_eq!(status_of(&answer), 405, "{answer}");
    assert_eq!(backend.hits(), 0);
}

/// `skmem` of the established TCP sockets `ss` finds with `filter`.
fn socket_memory(filter: &str) -> Vec<String> {
    let out = std::process::Command::new("ss")
        .args(["-tmnH", "state", "established", filter])
        .output()
        .expect("ss (iproute2) runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("skmem:(").map(str::to_owned))
        .collect()
}

/// The value of `field` (`tb`, `rb`) in an `ss` skmem line.
fn skmem_field(skmem: &str, field: &str) -> u64 {
    skmem
        .split(',')
        .find_map(|f| f.strip_prefix(field)?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {skmem}"))
}

#[tokio::test]
async fn socket_buffers_follow_the_limits() {
    let backend = Backend::named("backend").await;
    let proxy = Proxy::start_with(&[backend.addr], |s| {
        s.limits.client_send_buffer = 65_536;
        s.limits.backend_recv_buffer = 32_768;
    })
    .await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = client.read(&mut answer).await.unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&answer[..n])), 200);

    // Both connections stay open (keep-alive, pooled). Linux doubles what
    // is set, for its own bookkeeping.
    let client_port = client.local_addr().unwrap().port();
    let accepted = socket_memory(&format!(
        "( sport = :{} and dport = :{client_port} )",
        proxy.addr.port()
    ));
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(skmem_field(&accepted[0], "tb"), 2 * 65_536);
    let to_backend = socket_memory(&format!("( dport = :{} )", backend.addr.port()));
    assert!(!to_backend.is_empty());
    for skmem in &to_backend {
        assert_eq!(skmem_field(skmem, "rb"), 2 * 32_768, "{skmem}");
    }
    proxy.stop().await;
}

/// Bytes queued in the proxy's socket towards `client_port` and not yet
/// acknowledged by the client (`ss`'s Send-Q).
fn queued_towards(proxy_port: u16, client_port: u16) -> u64 {
    let out = std::process::Command::new("ss")
        .args(["-tnH", "state", "established"])
        .arg(format!(
            "( sport = :{proxy_port} and dport = :{client_port} )"
        ))
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    fields
        .get(1)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no Send-Q in {text:?}"))
}

/// What one client that stops reading an 8 MiB download leaves queued in
/// the proxy's socket, and whether the whole body still arrives when it
/// reads again.
async fn queued_for_a_stalled_reader(unsent_limit: u32) -> u64 {
    const SIZE: usize = 8 << 20;
    let pattern = |i: usize| (i % 251) as u8;
    let backend = Backend::with_handler(move |_| async move {
        let body: Vec<u8> = (0..SIZE).map(pattern).collect();
        hyper::Response::new(common::text(body))
    })
    .await;
    let proxy = Proxy::start_with(&[backend.addr], |s| {
        s.limits.client_unsent_buffer = unsent_limit;
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut client = socket.connect(proxy.addr).await.unwrap();
    client
        .write_all(b"GET /big HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await
        .unwrap();
    let head = common::raw::read_head(&mut client).await.expect("a head");
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    // The client stops reading; the proxy writes until its socket takes
    // no more. Wait until the queue stops growing.
    let port = client.local_addr().unwrap().port();
    let mut queued = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = queued_towards(proxy.addr.port(), port);
        if now == queued && now > 0 {
            break;
        }
        queued = now;
    }
    // Reading again, every byte arrives in order.
    let mut body = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while body.len() < SIZE {
        let n = client.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed after {} bytes", body.len());
        body.extend_from_slice(&buf[..n]);
    }
    assert_eq!(body.len(), SIZE);
    assert!(
        body.iter().enumerate().all(|(i, &b)| b == pattern(i)),
        "body intact"
    );
    proxy.stop().await;
    queued
}

#[tokio::test]
async fn a_client_that_stops_reading_holds_only_the_unsent_limit() {
    let limited = queued_for_a_stalled_reader(64 * 1024).await;
    // The largest value: no limit, whatever the system's default.
    let unlimited = queued_for_a_stalled_reader(i32::MAX as u32).await;
    println!("queued towards a stalled reader: {limited} B limited, {unlimited} B without a limit");
    // In flight to a client with a 4 KiB window is small; the rest is the
    // unsent queue, which the limit bounds (plus the write that crossed it).
    assert!(limited <= 64 * 1024 + 192 * 1024, "{limited} B queued");
    assert!(
        unlimited > 4 * limited,
        "without the limit the kernel takes more: {unlimited} B vs {limited} B"
    );
}
