//! Request smuggling and framing abuse, as raw bytes over TCP (SPEC
//! "Proxying"): for every case, the statuses the client got and exactly
//! what the backend received: nothing, or well-formed requests only.

mod common;

use std::time::Duration;

use common::raw::{exchange, statuses, ParsedRequest, Recorder};
use common::Proxy;

/// One attack: bytes written (in separate writes, 150 ms apart), the
/// statuses the client must get, and the `METHOD target body` of every
/// request the backend must receive (none: nothing at all).
struct Case {
    name: &'static str,
    writes: Vec<&'static [u8]>,
    statuses: Vec<u16>,
    backend: Vec<&'static str>,
}

fn case(
    name: &'static str,
    bytes: &'static [u8],
    statuses: &[u16],
    backend: &[&'static str],
) -> Case {
    split(name, vec![bytes], statuses, backend)
}

fn split(
    name: &'static str,
    writes: Vec<&'static [u8]>,
    statuses: &[u16],
    backend: &[&'static str],
) -> Case {
    Case {
        name,
        writes,
        statuses: statuses.to_vec(),
        backend: backend.to_vec(),
    }
}

fn seen(request: &ParsedRequest) -> String {
    let line = format!("{} {}", request.method, request.target);
    match request.body.is_empty() {
        true => line,
        false => format!("{line} {}", String::from_utf8_lossy(&request.body)),
    }
}

/// Run every case against one proxy and one recording backend; collect
/// every mismatch so one run shows them all.
async fn run(cases: Vec<Case>) {
    let backend = Recorder::start().await;
    let proxy = Proxy::start_with(&[backend.addr], |s| {
        s.timeouts.idle = 1.0;
        s.timeouts.header_read = 1.0;
    })
    .await;
    let mut failures = Vec::new();
    for case in cases {
        backend.requests.lock().unwrap().clear();
        let answer = exchange(
            proxy.addr,
            &case.writes,
            Duration::from_millis(150),
            Duration::from_secs(4),
        )
        .await;
        // Let the backend finish reading what the proxy sent.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = statuses(&answer);
        let requests = backend.requests();
        let received: Vec<String> = requests.iter().map(seen).collect();
        if got != case.statuses || received != case.backend {
            failures.push(format!(
                "{}: statuses {got:?} (want {:?}), backend got {received:?} (want {:?})\n{}",
                case.name,
                case.statuses,
                case.backend,
                String::from_utf8_lossy(&answer[..answer.len().min(300)])
            ));
        }
        // Whatever reached the backend is one well-formed request per
        // exchange, with one framing header at most, and nothing else.
        for request in &requests {
            let framing =
                request.header("content-length").len() + request.header("transfer-encoding").len();
            assert!(framing <= 1, "{}: {:?}", case.name, request.headers);
        }
        let leftover = backend.leftover();
        assert!(
            leftover.is_empty(),
            "{}: backend got stray bytes {:?}",
            case.name,
            String::from_utf8_lossy(&leftover)
        );
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn classic_smuggling_corpus_is_refused_and_never_forwarded() {
    run(vec![
        case("CL.TE", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", &[400], &[]),
        case("TE.CL", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", &[400], &[]),
        case("CL.CL equal", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi", &[400], &[]),
        case("CL.CL different", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nhiyou", &[400], &[]),
        case("CL list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\nhi", &[400], &[]),
        case("CL sign", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +2\r\n\r\nhi", &[400], &[]),
        case("CL hex", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x2\r\n\r\nhi", &[400], &[]),
        case("TE xchunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", &[400], &[]),
        case("TE quoted", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", &[400], &[]),
        case("TE space before colon", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", &[400], &[]),
        case("TE chunked, chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", &[400], &[]),
        case("TE twice", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", &[400], &[]),
        case("TE chunked then identity", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", &[400], &[]),
        case("TE gzip, chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", &[400], &[]),
        case("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", &[400], &[]),
        case("TE obs-fold", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", &[400], &[]),
        case("TE tab and case are fine", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tcHuNkEd\r\nConnection: close\r\n\r\n2\r\nhi\r\n0\r\n\r\n", &[200], &["POST / hi"]),
        case("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n", &[400], &[]),
        case("bare LF", b"GET / HTTP/1.1\nHost: a\n\n", &[400], &[]),
        case("bare LF in one line", b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", &[400], &[]),
        case("bare CR", b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", &[400], &[]),
        case("NUL in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", &[400], &[]),
        case("NUL in a name", b"GET / HTTP/1.1\r\nHost: a\r\nX\0: b\r\n\r\n", &[400], &[]),
    ])
    .await;
}

#[tokio::test]
async fn chunk_size_tricks_get_400_and_nothing_is_forwarded() {
    let te = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let leak = |body: &str| -> &'static [u8] {
        Box::leak(format!("{te}{body}").into_bytes().into_boxed_slice())
    };
    run(vec![
        case(
            "size not hex",
            leak("zz\r\nhello\r\n0\r\n\r\n"),
            &[400],
            &[],
        ),
        case(
            "size 0x prefix",
            leak("0x5\r\nhello\r\n0\r\n\r\n"),
            &[400],
            &[],
        ),
        case(
            "negative size",
            leak("-5\r\nhello\r\n0\r\n\r\n"),
            &[400],
            &[],
        ),
        case(
            "leading space",
            leak(" 5\r\nhello\r\n0\r\n\r\n"),
            &[400],
            &[],
        ),
        case(
            "size overflow",
            leak("10000000000000000\r\nhello\r\n0\r\n\r\n"),
            &[400],
            &[],
        ),
        case(
            "data longer than size",
            leak("3\r\nhello\r\n0\r\n\r\n"),
            &[400],
            &[],
        ),
        case(
            "bare LF after size",
            leak("5\nhello\r\n0\r\n\r\n"),
            &[400],
            &[],
        ),
        case(
            "bare LF in extension",
            leak("5;a\nb\r\nhello\r\n0\r\n\r\n"),
            &[400],
            &[],
        ),
        case(
            "second chunk bad",
            leak("5\r\nhello\r\nqq\r\nworld\r\n0\r\n\r\n"),
            &[400],
            &[],
        ),
        case(
            "bad chunk in a later write",
            leak("5\r\nhello\r\nqq\r\n"),
            &[400],
            &[],
        ),
        case(
            "extension and whitespace are fine",
            leak("5 ;name=value\r\nhello\r\n0\r\n\r\n"),
            &[200],
            &["POST / hello"],
        ),
    ])
    .await;
}

#[tokio::test]
async fn request_line_target_and_host_tricks_get_400() {
    run(vec![
        case("double space", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", &[400], &[]),
        case("tab separator", b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", &[400], &[]),
        case("extra token", b"GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", &[400], &[]),
        case("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", &[400], &[]),
        case("fragment", b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", &[400], &[]),
        case("absolute-form without Host", b"GET http://a.example/x HTTP/1.1\r\n\r\n", &[400], &[]),
        case("absolute-form, other Host", b"GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n", &[400], &[]),
        case("absolute-form, same Host", b"GET http://a.example/x HTTP/1.1\r\nHost: A.example\r\nConnection: close\r\n\r\n", &[200], &["GET /x"]),
        case("two Hosts", b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", &[400], &[]),
        case("Host list", b"GET / HTTP/1.1\r\nHost: a.example, b.example\r\n\r\n", &[400], &[]),
        case("Host userinfo", b"GET / HTTP/1.1\r\nHost: a.example@b.example\r\n\r\n", &[400], &[]),
        case("Host port 99999", b"GET / HTTP/1.1\r\nHost: a.example:99999\r\n\r\n", &[400], &[]),
        case("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", &[400], &[]),
        case("CONNECT", b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", &[405], &[]),
        case("TRACE", b"TRACE / HTTP/1.1\r\nHost: a.example\r\nCookie: secret=1\r\n\r\n", &[405], &[]),
        case("OPTIONS Max-Forwards 0", b"OPTIONS / HTTP/1.1\r\nHost: a.example\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n", &[200], &[]),
        case("OPTIONS Max-Forwards 1", b"OPTIONS / HTTP/1.1\r\nHost: a.example\r\nMax-Forwards: 1\r\nConnection: close\r\n\r\n", &[200], &["OPTIONS /"]),
    ])
    .await;
}

#[tokio::test]
async fn every_pipelined_head_is_checked_however_it_arrives() {
    let good = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
    run(vec![
        case("CL.TE behind a good request", b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", &[200, 400], &["GET /1"]),
        case("duplicate CL behind a good request", b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", &[200, 400], &["GET /1"]),
        case("bare LF behind a good request", b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\nHost: a\n\n", &[200, 400], &["GET /1"]),
        split("CL.TE in a later read", vec![good, b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"], &[200, 400], &["GET /1"]),
        split("CL.TE split over two reads", vec![b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Len", b"gth: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"], &[200, 400], &["GET /1"]),
        case("CL.TE after a 400", b"GET / HTTP/1.1\r\nHost: a..b\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", &[400, 400], &[]),
        case("a request hidden in a body is a body", b"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 33\r\n\r\nGET /hidden HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &[200, 200], &["POST /1 GET /hidden HTTP/1.1\r\nHost: a\r\n\r\n", "GET /3"]),
        case("three good ones", b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &[200, 200, 200], &["GET /1", "POST /2 hi", "GET /3"]),
        split("a GET body in a later write still goes", vec![b"GET /g HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n"], &[200], &["GET /g hello"]),
        case("a GET body with its head goes too", b"GET /g HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", &[200], &["GET /g hello"]),
        case("after an upgrade nothing is parsed", b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", &[200], &["GET /ws"]),
    ])
    .await;
}

#[tokio::test]
async fn hop_by_hop_abuse_cannot_strip_framing_or_forwarding_headers() {
    let backend = Recorder::start().await;
    let proxy = Proxy::start(&[backend.addr]).await;
    let answer = exchange(
        proxy.addr,
        &[b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close, Content-Length, Host, X-Forwarded-For, Transfer-Encoding\r\nX-Forwarded-For: 6.6.6.6\r\n\r\nhello"],
        Duration::ZERO,
        Duration::from_secs(4),
    )
    .await;
    assert_eq!(statuses(&answer), [200]);
    let requests = backend.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.body, b"hello");
    assert_eq!(
        request.header("content-length"),
        ["5"],
        "{:?}",
        request.headers
    );
    assert_eq!(request.header("host"), ["a"]);
    assert_eq!(request.header("x-forwarded-for"), ["127.0.0.1"]);
    assert!(request
        .header("connection")
        .iter()
        .all(|v| !v.to_lowercase().contains("content-length")));
    // The exact bytes: nothing the client named in Connection, nothing it
    // could use to frame a second request.
    let text = String::from_utf8_lossy(&request.raw);
    assert!(text.starts_with("POST /p HTTP/1.1\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nhello"), "{text}");
    assert!(!text.to_lowercase().contains("transfer-encoding"), "{text}");
}

#[tokio::test]
async fn upgrade_to_anything_but_one_allowed_protocol_is_a_plain_request() {
    let backend = Recorder::start().await;
    let proxy = Proxy::start(&[backend.addr]).await;
    for upgrade in [
        "Upgrade: websocket\r\nUpgrade: h2c\r\n",
        "Upgrade: h2c\r\nUpgrade: websocket\r\n",
        "Upgrade: websocket, h2c\r\n",
        "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n",
        "Upgrade: irc/6.9\r\n",
    ] {
        backend.requests.lock().unwrap().clear();
        let request = format!(
            "GET /u HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n{upgrade}\r\n"
        );
        let answer = exchange(
            proxy.addr,
            &[request.as_bytes()],
            Duration::ZERO,
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(statuses(&answer), [200], "{upgrade}");
        let requests = backend.requests();
        assert_eq!(requests.len(), 1, "{upgrade}");
        assert!(
            requests[0].header("upgrade").is_empty(),
            "{upgrade}: {:?}",
            requests[0].headers
        );
        assert!(
            requests[0].header("connection").is_empty(),
            "{upgrade}: {:?}",
            requests[0].headers
        );
        // The tracker stops after a head that names Upgrade: the answer closes.
        assert!(
            String::from_utf8_lossy(&answer)
                .to_lowercase()
                .contains("connection: close"),
            "{upgrade}"
        );
    }
}

#[tokio::test]
async fn a_bad_chunk_after_the_head_went_out_gets_400_and_no_complete_request() {
    let backend = Recorder::start().await;
    let proxy = Proxy::start(&[backend.addr]).await;
    let answer = exchange(
        proxy.addr,
        &[
            b"POST /late HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            b"qq\r\nworld\r\n0\r\n\r\n",
        ],
        Duration::from_millis(300),
        Duration::from_secs(4),
    )
    .await;
    // The head (and the good chunk) had to go first; the bad one is the
    // client's fault: 400, and the backend never got a complete request.
    assert_eq!(
        statuses(&answer),
        [400],
        "{}",
        String::from_utf8_lossy(&answer)
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(backend.requests().is_empty(), "{:?}", backend.requests());
    let partial = String::from_utf8_lossy(&backend.leftover()).into_owned();
    assert!(
        !partial.contains("world"),
        "nothing after the bad chunk: {partial}"
    );
}
