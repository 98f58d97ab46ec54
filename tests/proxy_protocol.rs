//! Behind a TCP balancer: with `proxy_protocol` on, a trusted balancer's
//! connections start with a PROXY header (v1 or v2) naming the real client,
//! which is what the backend sees in `X-Forwarded-For`; a trusted peer
//! without a header, or a header from anyone else, is closed unanswered.

mod common;

use std::time::Duration;

use common::{raw_exchange, status_of, Backend, Proxy};

const GET: &[u8] = b"GET /pp HTTP/1.1\r\nHost: pp.example\r\nConnection: close\r\n\r\n";

async fn proxy_trusting(trusted: &str, backend: &Backend) -> Proxy {
    let trusted = trusted.to_owned();
    Proxy::start_with(&[backend.addr], move |s| {
        s.proxy_protocol.enabled = true;
        s.proxy_protocol.trusted = vec![trusted];
    })
    .await
}

fn forwarded_for(backend: &Backend) -> String {
    let seen = backend.seen.lock().unwrap();
    let last = seen.last().expect("the backend got the request");
    last.headers["x-forwarded-for"].to_str().unwrap().to_owned()
}

fn v2_tcp4(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend_from_slice(&source);
    header.extend_from_slice(&[127, 0, 0, 1]);
    header.extend_from_slice(&port.to_be_bytes());
    header.extend_from_slice(&80u16.to_be_bytes());
    header
}

/// Wait until `/metrics` has `line` (a closed connection is counted just
/// after the client sees it close).
async fn counted(proxy: &Proxy, line: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let metrics = proxy.admin.get("/metrics").await.text;
        if metrics.contains(line) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{line} in\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_trusted_balancers_header_names_the_client_the_backend_sees() {
    let backend = Backend::named("b").await;
    let proxy = proxy_trusting("127.0.0.0/8", &backend).await;

    let v1 = [&b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 80\r\n"[..], GET].concat();
    let answer = raw_exchange(proxy.addr, &v1).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(forwarded_for(&backend), "203.0.113.7");

    let v2 = [&v2_tcp4([198, 51, 100, 4], 50000)[..], GET].concat();
    let answer = raw_exchange(proxy.addr, &v2).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(forwarded_for(&backend), "198.51.100.4");

    // A real peer: curl's --haproxy-protocol sends a v1 header.
    let url = format!("http://{}/curl", proxy.addr);
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--haproxy-protocol",
            &url,
        ])
        .output()
        .await;
    match out {
        Ok(out) => {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
            assert_eq!(forwarded_for(&backend), "127.0.0.1");
        }
        Err(err) => common::skipped("curl --haproxy-protocol", &format!("no curl: {err}")),
    }

    // The balancer forgot the header: closed, nothing forwarded.
    let before = backend.hits();
    let answer = raw_exchange(proxy.addr, GET).await;
    assert_eq!(answer, "", "closed unanswered");
    let malformed = raw_exchange(proxy.addr, b"PROXY TCP4 who knows\r\n\r\n").await;
    assert_eq!(malformed, "");
    assert_eq!(backend.hits(), before);
    for line in [
        "switchyard_client_connections_refused_total{reason=\"missing\"} 1",
        "switchyard_client_connections_refused_total{reason=\"malformed\"} 1",
    ] {
        counted(&proxy, line).await;
    }
}

#[tokio::test]
async fn anyone_else_is_a_direct_client_and_may_not_send_a_header() {
    let backend = Backend::named("b").await;
    let proxy = proxy_trusting("10.0.0.0/8", &backend).await;
    let answer = raw_exchange(proxy.addr, GET).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(forwarded_for(&backend), "127.0.0.1", "its own address");

    let before = backend.hits();
    for header in [
        b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 80\r\n".to_vec(),
        v2_tcp4([203, 0, 113, 7], 51000),
    ] {
        let answer = raw_exchange(proxy.addr, &[&header[..], GET].concat()).await;
        assert_eq!(answer, "", "a header from an untrusted peer is refused");
    }
    assert_eq!(backend.hits(), before, "nothing forwarded");
    counted(
        &proxy,
        "switchyard_client_connections_refused_total{reason=\"untrusted\"} 2",
    )
    .await;
}

#[tokio::test]
async fn a_balancer_that_sends_nothing_is_cut_off_at_the_header_read_timeout() {
    let backend = Backend::named("b").await;
    let proxy = Proxy::start_with(&[backend.addr], |s| {
        s.proxy_protocol.enabled = true;
        s.proxy_protocol.trusted = vec!["127.0.0.1".into()];
        s.timeouts.header_read = 0.3;
    })
    .await;
    let mut silent = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::io::AsyncReadExt::read(&mut silent, &mut buf),
    )
    .await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
}
