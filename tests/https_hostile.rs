//! What the internet sends to an HTTPS port besides TLS: plain HTTP gets a
//! plain `400` that says so; garbage is refused at once; a ClientHello
//! trickled a byte at a time, a handshake left half done, and a silent
//! connection are all cut at the header-read deadline. Each is counted by
//! result in `switchyard_tls_handshakes_total`, and none disturbs a real
//! client's handshake.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::pki::{get_https, TestCa};
use common::{Backend, Proxy};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The header-read timeout of these tests (it bounds the whole handshake).
const HEADER_READ: Duration = Duration::from_millis(800);

async fn proxy_with_a_certificate(ca: &TestCa) -> (Proxy, Backend) {
    let backend = Backend::named("a").await;
    let proxy = Proxy::start_with(&[backend.addr], |s| {
        s.timeouts.header_read = HEADER_READ.as_secs_f64();
    })
    .await;
    let site = ca.site(&["shop.example"]);
    let body = serde_json::json!({"certificate": site.chain_pem, "private_key": site.key_pem});
    let reply = proxy
        .admin
        .call(http::Method::POST, "/api/v1/certificates", Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    (proxy, backend)
}

/// Everything the server sends until it closes, and how long it kept the
/// connection open (at most 5 s).
async fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(5) {
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    (got, started.elapsed())
}

/// The bytes of a real ClientHello for `sni`.
fn client_hello(ca: &TestCa, sni: &str) -> Vec<u8> {
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let mut client = rustls::ClientConnection::new(ca.client(&[b"http/1.1"]), name).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    hello
}

/// The handshake counter with `result` from `/metrics`.
async fn handshakes(proxy: &Proxy, result: &str) -> u64 {
    let metrics = proxy.admin.get("/metrics").await.text;
    let prefix = format!("switchyard_tls_handshakes_total{{result=\"{result}\"");
    metrics
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Wait (at most 2 s) until the counter with `result` reaches `wanted`:
/// the proxy counts a failed handshake just after it closes the socket.
async fn until_handshakes(proxy: &Proxy, result: &str, wanted: u64) -> u64 {
    let started = Instant::now();
    loop {
        let count = handshakes(proxy, result).await;
        if count >= wanted || started.elapsed() > Duration::from_secs(2) {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

#[tokio::test]
async fn plain_http_sent_to_the_https_port_gets_a_plain_400_that_says_so() {
    let ca = TestCa::new("hostile root");
    let (proxy, backend) = proxy_with_a_certificate(&ca).await;
    let tls = proxy.tls.unwrap();
    let mut plain = connect(tls).await;
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: shop.example\r\nCookie: secret\r\n\r\n")
        .await
        .unwrap();
    let (answer, held) = read_until_closed(&mut plain).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(
        answer.ends_with("use https:// for this address.\n"),
        "{answer}"
    );
    assert!(held < HEADER_READ, "answered and closed at once: {held:?}");
    assert_eq!(backend.hits(), 0, "nothing reached a backend");
    assert_eq!(until_handshakes(&proxy, "plain_http", 1).await, 1);
}

#[tokio::test]
async fn garbage_is_refused_at_once_and_counted_as_failed() {
    let ca = TestCa::new("hostile root");
    let (proxy, _backend) = proxy_with_a_certificate(&ca).await;
    let tls = proxy.tls.unwrap();
    let mut rng = common::Rng::new(0x5eed);
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "binary noise",
            (0..512).map(|_| rng.below(128) as u8 | 0x80).collect(),
        ),
        // A handshake record header announcing 65,535 bytes, then junk.
        (
            "oversized record",
            [&[0x16, 0x03, 0x01, 0xff, 0xff][..], &[0xAB; 300]].concat(),
        ),
        // A record that says ClientHello but holds nonsense.
        ("mangled hello", {
            let mut hello = client_hello(&ca, "shop.example");
            for byte in hello.iter_mut().skip(9).step_by(3) {
                *byte ^= 0x5a;
            }
            hello
        }),
    ];
    for (name, bytes) in &cases {
        let mut stream = connect(tls).await;
        stream.write_all(bytes).await.unwrap();
        let (answer, held) = read_until_closed(&mut stream).await;
        assert!(
            held < HEADER_READ,
            "{name}: closed at once, not at the deadline: {held:?}"
        );
        assert!(
            answer.len() <= 7,
            "{name}: at most an alert comes back, got {} bytes",
            answer.len()
        );
    }
    let failed = until_handshakes(&proxy, "failed", cases.len() as u64).await;
    assert_eq!(failed, cases.len() as u64);
    assert_eq!(handshakes(&proxy, "ok").await, 0);
}

#[tokio::test]
async fn a_trickled_hello_a_half_done_handshake_and_silence_are_cut_at_the_deadline() {
    let ca = TestCa::new("hostile root");
    let (proxy, _backend) = proxy_with_a_certificate(&ca).await;
    let tls = proxy.tls.unwrap();
    let hello = client_hello(&ca, "shop.example");

    // A ClientHello trickled one byte every 50 ms (it would take seconds).
    let trickle = async {
        let mut stream = connect(tls).await;
        let started = Instant::now();
        for byte in &hello {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if started.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
        read_until_closed(&mut stream).await;
        started.elapsed()
    };
    // A whole ClientHello, then nothing: the server's flight is never answered.
    let half_done = async {
        let mut stream = connect(tls).await;
        stream.write_all(&hello).await.unwrap();
        let (answer, held) = read_until_closed(&mut stream).await;
        assert!(answer.len() > 100, "the server sent its first flight");
        held
    };
    // Nothing at all.
    let silent = async {
        let mut stream = connect(tls).await;
        read_until_closed(&mut stream).await.1
    };
    let (trickled, half_done, silent) = tokio::join!(trickle, half_done, silent);
    for (name, held) in [
        ("trickled", trickled),
        ("half done", half_done),
        ("silent", silent),
    ] {
        assert!(
            held >= HEADER_READ - Duration::from_millis(100) && held < HEADER_READ * 3,
            "{name}: cut at the {HEADER_READ:?} deadline, held {held:?}"
        );
    }
    assert_eq!(until_handshakes(&proxy, "timed_out", 3).await, 3);

    // Meanwhile a real client is served as usual.
    let client = ca.client(&[b"http/1.1"]);
    let (status, _, body) = get_https(&client, tls, "shop.example", "shop.example", "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("a "), "{body}");
    assert_eq!(handshakes(&proxy, "ok").await, 1);
}
