//! HTTP/2 abuse (h2c prior knowledge, frames written by hand): pseudo-header
//! and connection-header tricks, lying lengths, padded values. For each, what
//! the client got and what the backend received: nothing, or one
//! well-formed HTTP/1.1 request.

mod common;

use common::h2raw::{h2_exchange, Frame, H2Outcome};
use common::raw::{ParsedRequest, Recorder};
use common::Proxy;

const PROTOCOL_ERROR: u32 = 1;

/// A name, the header fields of stream 1, and what must come back.
type Case = (&'static str, Vec<(&'static str, &'static str)>, H2Outcome);

fn get(extra: &'static [(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut fields = vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "a.example"),
        (":path", "/h2"),
    ];
    fields.extend_from_slice(extra);
    fields
}

/// Send `frames` and check the outcome and what the backend got.
async fn check(
    proxy: &Proxy,
    backend: &Recorder,
    name: &str,
    frames: &[Frame<'_>],
    want: H2Outcome,
    forwarded: Option<&dyn Fn(&ParsedRequest)>,
    failures: &mut Vec<String>,
) {
    backend.requests.lock().unwrap().clear();
    let got = h2_exchange(proxy.addr, frames).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let requests = backend.requests();
    let ok_outcome = got == want;
    let ok_backend = match forwarded {
        None => requests.is_empty(),
        Some(verify) => {
            requests.len() == 1 && {
                verify(&requests[0]);
                true
            }
        }
    };
    if !ok_outcome || !ok_backend {
        failures.push(format!(
            "{name}: got {got:?} (want {want:?}), backend got {:?}",
            requests
                .iter()
                .map(|r| String::from_utf8_lossy(&r.raw).into_owned())
                .collect::<Vec<_>>()
        ));
    }
    assert!(
        backend.leftover().is_empty(),
        "{name}: stray bytes at the backend"
    );
}

#[tokio::test]
async fn malformed_http2_requests_never_reach_the_backend() {
    let backend = Recorder::start().await;
    let proxy = Proxy::start(&[backend.addr]).await;
    let mut failures = Vec::new();
    let reset = H2Outcome::Reset(PROTOCOL_ERROR);
    // Fields the header decoder itself refuses end the whole connection.
    let goaway = H2Outcome::GoAway(PROTOCOL_ERROR);
    let cases: Vec<Case> = vec![
        (
            "pseudo-header after a regular one",
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                ("x-a", "1"),
                (":authority", "a.example"),
                (":path", "/"),
            ],
            reset,
        ),
        ("duplicate :path", get(&[(":path", "/other")]), reset),
        (
            "missing :method",
            vec![
                (":scheme", "http"),
                (":authority", "a.example"),
                (":path", "/"),
            ],
            reset,
        ),
        ("unknown pseudo-header", get(&[(":smuggle", "1")]), goaway),
        ("uppercase name", get(&[("X-Upper", "1")]), goaway),
        (
            "connection header",
            get(&[("connection", "keep-alive")]),
            reset,
        ),
        (
            "transfer-encoding header",
            get(&[("transfer-encoding", "chunked")]),
            reset,
        ),
        ("upgrade header", get(&[("upgrade", "websocket")]), reset),
        (
            "keep-alive header",
            get(&[("keep-alive", "timeout=5")]),
            reset,
        ),
        ("te other than trailers", get(&[("te", "gzip")]), reset),
        ("CR LF in a value", get(&[("x-a", "1\r\nx-b: 2")]), goaway),
        (
            "leading space in a value",
            get(&[("x-a", " padded")]),
            H2Outcome::Status(400),
        ),
        (
            "trailing tab in a value",
            get(&[("x-a", "padded\t")]),
            H2Outcome::Status(400),
        ),
        (
            "host differs from :authority",
            get(&[("host", "b.example")]),
            H2Outcome::Status(400),
        ),
        (
            "authority port 99999",
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "a.example:99999"),
                (":path", "/"),
            ],
            H2Outcome::Status(400),
        ),
    ];
    for (name, fields, want) in &cases {
        let frames = [Frame::Headers {
            fields,
            end_stream: true,
        }];
        check(&proxy, &backend, name, &frames, *want, None, &mut failures).await;
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn http2_bodies_that_lie_about_their_length_are_not_forwarded() {
    let backend = Recorder::start().await;
    let proxy = Proxy::start(&[backend.addr]).await;
    let mut failures = Vec::new();
    let post = |len: &'static str| {
        vec![
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "a.example"),
            (":path", "/up"),
            ("content-length", len),
        ]
    };
    let (short, long) = (post("10"), post("3"));
    for (name, fields) in [
        ("DATA shorter than content-length", &short),
        ("DATA longer than content-length", &long),
    ] {
        let frames = [
            Frame::Headers {
                fields,
                end_stream: false,
            },
            Frame::Data {
                bytes: b"hello",
                end_stream: true,
            },
        ];
        // The h2 layer refuses the stream: a reset, or no answer at all.
        backend.requests.lock().unwrap().clear();
        let got = h2_exchange(proxy.addr, &frames).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if !matches!(got, H2Outcome::Reset(_) | H2Outcome::Status(400))
            || !backend.requests().is_empty()
        {
            failures.push(format!(
                "{name}: got {got:?}, backend got {} requests",
                backend.requests().len()
            ));
        }
        assert!(
            backend.leftover().is_empty(),
            "{name}: stray bytes at the backend"
        );
    }
    // A well-formed one goes through as exactly one HTTP/1.1 request.
    let fields = post("5");
    let frames = [
        Frame::Headers {
            fields: &fields,
            end_stream: false,
        },
        Frame::Data {
            bytes: b"hello",
            end_stream: true,
        },
    ];
    let verify = |r: &ParsedRequest| {
        assert_eq!(r.body, b"hello");
        assert_eq!(r.header("content-length"), ["5"]);
        assert_eq!(r.header("host"), ["a.example"]);
        assert!(r.header("transfer-encoding").is_empty());
    };
    check(
        &proxy,
        &backend,
        "well-formed POST",
        &frames,
        H2Outcome::Status(200),
        Some(&verify),
        &mut failures,
    )
    .await;
    // Split cookies are joined for the HTTP/1.1 backend.
    let fields = get(&[("cookie", "a=1"), ("cookie", "b=2")]);
    let verify = |r: &ParsedRequest| assert_eq!(r.header("cookie"), ["a=1; b=2"]);
    let frames = [Frame::Headers {
        fields: &fields,
        end_stream: true,
    }];
    check(
        &proxy,
        &backend,
        "split cookies",
        &frames,
        H2Outcome::Status(200),
        Some(&verify),
        &mut failures,
    )
    .await;
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
