//! What operators see: `/metrics` counts exactly the traffic sent, and the
//! access log writes one line per (sampled) request with its fields.

mod common;

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use common::{Backend, Process, Proxy};
use http::StatusCode;
use http_body_util::{BodyExt, Full};

/// The value of the metric line starting with `series ` in `text`.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse::<f64>()
        .unwrap() as u64
}

#[tokio::test]
async fn metrics_match_the_traffic_sent_exactly() {
    let a = Backend::named("a").await;
    let b = Backend::named("b").await;
    let proxy = Proxy::start(&[a.addr, b.addr]).await;
    let mut body_bytes = std::collections::HashMap::<String, u64>::new();
    let mut requests = std::collections::HashMap::<String, u64>::new();
    for i in 0..30 {
        let host = format!("user{i}.example");
        let route = proxy.admin.get(&format!("/api/v1/route?host={host}")).await;
        let backend = route.json["backend"]["address"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, body) = proxy.get(&host, "/page").await;
        assert_eq!(status, StatusCode::OK);
        *requests.entry(backend.clone()).or_default() += 1;
        *body_bytes.entry(backend).or_default() += body.len() as u64;
    }
    let upload = Bytes::from(vec![b'x'; 1000]);
    let route = proxy.admin.get("/api/v1/route?host=upload.example").await;
    let upload_backend = route.json["backend"]["address"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..4 {
        let request = http::Request::post("/upload")
            .header("host", "upload.example")
            .body(Full::new(upload.clone()))
            .unwrap();
        let response = common::send(proxy.addr, request).await;
        let body = response.into_body().collect().await.unwrap().to_bytes();
        *requests.entry(upload_backend.clone()).or_default() += 1;
        *body_bytes.entry(upload_backend.clone()).or_default() += body.len() as u64;
    }
    for _ in 0..3 {
        let answer = proxy
            .raw(b"GET / HTTP/1.1\r\nHost: bad_host!\r\nConnection: close\r\n\r\n")
            .await;
        assert_eq!(common::status_of(&answer), 400);
    }
    // Counters are updated when each response body is done; give the last one a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let text = proxy.admin.get("/metrics").await.text;
    for (backend, count) in &requests {
        let series = format!("switchyard_requests_total{{backend=\"{backend}\",class=\"2xx\"}}");
        assert_eq!(metric(&text, &series), *count, "{series}");
        let sent = format!("switchyard_backend_sent_bytes_total{{backend=\"{backend}\"}}");
        assert_eq!(metric(&text, &sent), body_bytes[backend], "{sent}");
        let latency = format!("switchyard_upstream_latency_seconds_count{{backend=\"{backend}\"}}");
        assert_eq!(metric(&text, &latency), *count, "{latency}");
    }
    let received =
        format!("switchyard_backend_received_bytes_total{{backend=\"{upload_backend}\"}}");
    assert_eq!(metric(&text, &received), 4000);
    assert_eq!(
        metric(
            &text,
            "switchyard_requests_total{backend=\"none\",class=\"4xx\"}"
        ),
        3
    );
    assert_eq!(metric(&text, "switchyard_backends{state=\"active\"}"), 2);
    assert_eq!(
        metric(&text, "switchyard_client_connections"),
        0,
        "every test connection closed"
    );
    for backend in requests.keys() {
        assert_eq!(
            metric(
                &text,
                &format!("switchyard_backend_in_flight{{backend=\"{backend}\"}}")
            ),
            0
        );
        assert_eq!(
            metric(
                &text,
                &format!("switchyard_backend_up{{backend=\"{backend}\"}}")
            ),
            1
        );
    }
}

fn config(lua: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".lua").tempfile().unwrap();
    file.write_all(lua.as_bytes()).unwrap();
    file
}

async fn access_lines(process: &Process, wanted: usize) -> Vec<String> {
    let log = &process.log;
    common::eventually(Duration::from_secs(3), || {
        log.lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("switchyard::access"))
            .count()
            >= wanted
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    log.lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("switchyard::access"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_access_log_writes_one_line_per_request_and_can_sample_or_stay_quiet() {
    let backend = Backend::named("app").await;
    let addr = backend.addr.to_string();
    let everything = Process::start(&["--backend", &addr]).await;
    for i in 0..4 {
        let (status, _) =
            Proxy::get_at(everything.addr, "IronHand.Example", &format!("/p{i}")).await;
        assert_eq!(status, StatusCode::OK);
    }
    let forged = http::Request::get("/p4")
        .header("host", "IronHand.Example")
        .header(
            "user-agent",
            http::HeaderValue::from_bytes(
                "curl status=200 request_id=FAKE \u{85}\u{202e}".as_bytes(),
            )
            .unwrap(),
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    common::send(everything.addr, forged).await;
    let lines = access_lines(&everything, 5).await;
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(
        lines[4].contains(r#"user_agent="curl status=200 request_id=FAKE \u{85}\u{202e}""#),
        "a client's text is quoted and escaped: {}",
        lines[4]
    );
    assert_eq!(
        lines[4].matches("request_id=").count(),
        2,
        "one real, one quoted"
    );
    for field in [
        "method=GET",
        "host=\"IronHand.Example\"",
        "path=/p3",
        "key=ironhand.example",
        "rule=host",
        &format!("backend={addr}"),
        "status=200",
        "bytes_in=0",
        "bytes_out=",
        "duration_ms=",
        "client=127.0.0.1:",
    ] {
        assert!(lines[3].contains(field), "{field} missing in {}", lines[3]);
    }

    let half = config("return { access_log = { sample = 0.5 } }");
    let sampled = Process::start(&[
        "--backend",
        &addr,
        "--config",
        half.path().to_str().unwrap(),
    ])
    .await;
    for _ in 0..10 {
        Proxy::get_at(sampled.addr, "a.example", "/").await;
    }
    assert_eq!(
        access_lines(&sampled, 5).await.len(),
        5,
        "exactly every second request"
    );

    let off = config("return { access_log = { enabled = false } }");
    let quiet =
        Process::start(&["--backend", &addr, "--config", off.path().to_str().unwrap()]).await;
    for _ in 0..5 {
        Proxy::get_at(quiet.addr, "a.example", "/").await;
    }
    assert!(access_lines(&quiet, 1).await.is_empty());
}

/// The access-log lines of `process` (JSON logs), parsed.
async fn access_json(process: &Process, wanted: usize) -> Vec<serde_json::Value> {
    access_lines(process, wanted)
        .await
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[tokio::test]
async fn access_lines_carry_the_query_version_agent_referer_request_id_and_failed_backend() {
    let backend = Backend::named("app").await;
    let addr = backend.addr.to_string();
    let switchyard = Process::start(&["--backend", &addr, "--log-format", "json"]).await;
    let request = |path: &str, id: Option<&str>| {
        let mut req = http::Request::get(path)
            .header("host", "shop.example")
            .header("user-agent", "probe/1.0 (tests)")
            .header("referer", "https://ref.example/page");
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    common::send(
        switchyard.addr,
        request("/search?q=rust%20lang&page=2", Some("req-abc-123")),
    )
    .await;
    common::send(switchyard.addr, request("/plain", None)).await;
    common::send(switchyard.addr, request("/bad-id", Some("has space"))).await;
    let mut named = request("/named", Some("keep-me-1"));
    named
        .headers_mut()
        .insert("connection", http::HeaderValue::from_static("X-Request-Id"));
    common::send(switchyard.addr, named).await;
    let lines = access_json(&switchyard, 4).await;
    let fields: Vec<&serde_json::Value> = lines.iter().map(|l| &l["fields"]).collect();
    let first = fields[0];
    assert_eq!(first["query"], "q=rust%20lang&page=2");
    assert_eq!(first["version"], "HTTP/1.1");
    assert_eq!(first["user_agent"], "probe/1.0 (tests)");
    assert_eq!(first["referer"], "https://ref.example/page");
    assert_eq!(
        first["request_id"], "req-abc-123",
        "a sane incoming id is kept"
    );
    assert_eq!(first["failed"], "-");
    let seen = backend.seen.lock().unwrap().clone();
    assert_eq!(seen[0].headers["x-request-id"], "req-abc-123");
    assert_eq!(
        seen[3].headers["x-request-id"], "keep-me-1",
        "an id `Connection` names still reaches the backend"
    );
    for (line, seen) in fields[1..3].iter().zip(&seen[1..3]) {
        let id = line["request_id"].as_str().unwrap();
        assert_eq!(id.len(), 32, "generated: {line}");
        assert_eq!(seen.headers["x-request-id"], id, "and sent to the backend");
        assert_eq!(seen.headers.get_all("x-request-id").iter().count(), 1);
    }
    for line in &fields {
        let duration = line["duration_ms"].as_f64().unwrap();
        let micros = duration * 1000.0;
        assert!(
            (micros - micros.round()).abs() < 1e-6,
            "rounded to µs: {duration}"
        );
        assert!(line["upstream_ms"].as_f64().unwrap() <= duration);
    }

    let dead = common::dead_address().await.to_string();
    let failing = Process::start(&["--backend", &dead, "--log-format", "json"]).await;
    let answer = common::send(failing.addr, request("/x", None)).await;
    assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
    let line = &access_json(&failing, 1).await[0]["fields"];
    assert_eq!(line["status"], 502);
    assert_eq!(
        line["failed"],
        dead.as_str(),
        "names the backend that failed: {line}"
    );
}
