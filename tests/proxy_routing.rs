//! Requests routed through a real switchyard to real backends on loopback.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{dead_address, raw_exchange, status_of, Backend, Proxy};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use switchyard::routing::key::normalize_host;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn three_backends() -> Vec<Backend> {
    vec![
        Backend::named("alpha").await,
        Backend::named("bravo").await,
        Backend::named("charlie").await,
    ]
}

fn name_of(body: &str) -> &str {
    body.split(' ').next().unwrap()
}

#[tokio::test]
async fn mixed_case_host_and_reload_url_land_on_the_same_backend() {
    let backends = three_backends().await;
    let proxy = Proxy::start(&backends.iter().map(|b| b.addr).collect::<Vec<_>>()).await;

    for domain in [
        "IronHand.Example",
        "www.Foo.com",
        "MiXeD.CaSe.Example",
        "bücher.example",
    ] {
        let (status, site) = proxy.get(domain, "/").await;
        assert_eq!(status, StatusCode::OK, "{domain}");
        let (_, lower) = proxy.get(&domain.to_lowercase(), "/index.html").await;
        let reload_path = format!("/user/fred/webapps/{}/reload", urlencode(domain));
        let (status, reload) = proxy.get("www.pythonanywhere.com", &reload_path).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            name_of(&site),
            name_of(&lower),
            "{domain}: site vs lowercase site"
        );
        assert_eq!(
            name_of(&site),
            name_of(&reload),
            "{domain}: site vs reload URL"
        );
        assert!(
            reload.ends_with(&reload_path),
            "the backend sees the reload URL itself: {reload}"
        );
    }
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
        .to_string()
        .replace("%2E", ".")
}

#[tokio::test]
async fn different_domains_spread_over_the_backends() {
    let backends = three_backends().await;
    let proxy = Proxy::start(&backends.iter().map(|b| b.addr).collect::<Vec<_>>()).await;
    for i in 0..60 {
        let (status, _) = proxy.get(&format!("site{i}.example"), "/").await;
        assert_eq!(status, StatusCode::OK);
    }
    for b in &backends {
        assert!(
            b.hits() > 5,
            "each backend gets a share: {:?}",
            backends.iter().map(Backend::hits).collect::<Vec<_>>()
        );
    }
}

/// A raw TCP backend that records the exact bytes of one request.
async fn raw_backend() -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
            if let Some(end) = switchyard::proxy::framing::head_end(&got) {
                let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if got.len() >= end + length {
                    break;
                }
            }
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await
            .unwrap();
        got
    });
    (addr, task)
}

#[tokio::test]
async fn the_reload_request_reaches_the_backend_byte_for_byte() {
    let (backend, received) = raw_backend().await;
    let proxy = Proxy::start(&[backend]).await;
    let request = b"POST /user/Fred/webapps/IronHand.Example/reload?force=1&x=%41 HTTP/1.1\r\n\
        Host: www.PythonAnywhere.com\r\n\
        X-Custom: Kept As Is\r\n\
        Connection: keep-alive, X-Hop\r\n\
        X-Hop: dropped\r\n\
        X-Forwarded-For: 6.6.6.6\r\n\
        Content-Length: 11\r\n\r\n\
        hello=world";
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client.write_all(request).await.unwrap();
    let mut answer = [0u8; 256];
    let n = client.read(&mut answer).await.unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&answer[..n])), 200);

    let got = String::from_utf8(received.await.unwrap()).unwrap();
    let mut lines = got.split("\r\n");
    assert_eq!(
        lines.next(),
        Some("POST /user/Fred/webapps/IronHand.Example/reload?force=1&x=%41 HTTP/1.1")
    );
    let headers: Vec<&str> = lines.by_ref().take_while(|l| !l.is_empty()).collect();
    let has = |want: &str| headers.iter().any(|h| h.eq_ignore_ascii_case(want));
    assert!(
        has("host: www.PythonAnywhere.com"),
        "Host value unchanged: {headers:?}"
    );
    assert!(has("x-custom: Kept As Is"), "{headers:?}");
    assert!(
        has("x-forwarded-for: 127.0.0.1"),
        "client IP replaces an untrusted value: {headers:?}"
    );
    assert!(
        has("x-forwarded-proto: http") && has("x-forwarded-host: www.PythonAnywhere.com"),
        "{headers:?}"
    );
    assert!(
        !headers
            .iter()
            .any(|h| h.to_lowercase().starts_with("x-hop")),
        "Connection-named header dropped"
    );
    assert!(
        got.ends_with("\r\n\r\nhello=world"),
        "body unchanged: {got:?}"
    );
}

#[tokio::test]
async fn no_backends_gives_503_with_retry_after() {
    let proxy = Proxy::start(&[]).await;
    let answer = proxy
        .raw(b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(status_of(&answer), 503, "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 5"), "{answer}");
}

#[tokio::test]
async fn a_dead_backend_fails_over_to_the_keys_next_candidate() {
    let live = Backend::named("live").await;
    let dead = dead_address().await;
    let proxy = Proxy::start(&[dead, live.addr]).await;
    // A domain whose first choice is the dead backend.
    let snapshot = proxy.pool.load();
    let domain = (0..)
        .map(|i| format!("victim{i}.example"))
        .find(|d| {
            snapshot
                .pick(&normalize_host(d.as_bytes()).unwrap())
                .unwrap()
                .address
                .to_string()
                == dead.to_string()
        })
        .unwrap();
    let (status, body) = proxy.get(&domain, "/").await;
    assert_eq!((status, name_of(&body)), (StatusCode::OK, "live"));
    assert_eq!(live.hits(), 1);
}

#[tokio::test]
async fn when_every_candidate_is_dead_the_answer_is_502() {
    let proxy = Proxy::start(&[dead_address().await, dead_address().await]).await;
    let (status, body) = proxy.get("a.example", "/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        !body.contains("127.0.0.1"),
        "no internals in error pages: {body}"
    );
}

#[tokio::test]
async fn a_slow_backend_gives_504() {
    let slow = Backend::with_handler(|_| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        http::Response::new(common::text("late"))
    })
    .await;
    let proxy = Proxy::start_with(&[slow.addr], |s| s.timeouts.response_header = 0.3).await;
    let (status, _) = proxy.get("a.example", "/").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn http2_prior_knowledge_clients_are_routed_by_authority() {
    let backends = three_backends().await;
    let proxy = Proxy::start(&backends.iter().map(|b| b.addr).collect::<Vec<_>>()).await;
    let (_, over_h1) = proxy.get("IronHand.Example", "/").await;

    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://ironhand.example/h2")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(
        name_of(&body),
        name_of(&over_h1),
        "same backend over HTTP/2"
    );
    assert!(
        body.contains("ironhand.example /h2"),
        "the backend got Host from :authority: {body}"
    );
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let backend = Backend::named("only").await;
    let proxy = Proxy::start(&[backend.addr]).await;
    let answer = raw_exchange(
        proxy.addr,
        b"GET /one HTTP/1.1\r\nHost: a.example\r\n\r\nGET /two HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    let one = answer.find("only a.example /one").expect("first answer");
    let two = answer.find("only b.example /two").expect("second answer");
    assert!(one < two);
}

#[tokio::test]
async fn backend_connections_are_kept_alive_and_reused() {
    let backend = Backend::named("pooled").await;
    let proxy = Proxy::start(&[backend.addr]).await;
    for i in 0..20 {
        // A new client connection each time: reuse is on the backend side.
        let (status, _) = proxy.get("a.example", &format!("/{i}")).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(backend.hits(), 20);
    let opened = backend
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        opened <= 2,
        "20 sequential requests opened {opened} backend connections"
    );
}
