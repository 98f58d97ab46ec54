//! SIGHUP: the config file is re-read and applied without dropping a
//! connection; a broken file changes nothing.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Backend, Process};
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;

fn write(path: &std::path::Path, lua: &str) {
    std::fs::write(path, lua).unwrap();
}

async fn log_has(process: &Process, needle: &str, times: usize) -> bool {
    common::eventually(Duration::from_secs(5), || {
        process
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
            >= times
    })
    .await
}

fn access_lines(process: &Process) -> usize {
    process
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("switchyard::access"))
        .count()
}

#[tokio::test]
async fn sighup_applies_a_new_config_without_dropping_connections_and_refuses_a_broken_one() {
    let backend = Backend::named("app").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchyard.lua");
    write(&config, "return { access_log = { enabled = true } }");
    let process = Process::start(&[
        "--backend",
        &backend.addr.to_string(),
        "--config",
        config.to_str().unwrap(),
    ])
    .await;

    // A keep-alive connection opened before the reload.
    let stream = tokio::net::TcpStream::connect(process.addr).await.unwrap();
    let (mut open, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let get = || {
        Request::get("/")
            .header("host", "a.example")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    assert_eq!(
        open.send_request(get()).await.unwrap().status(),
        StatusCode::OK
    );
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: a.example\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "x".repeat(10_000)
    );
    assert_eq!(
        common::status_of(&common::raw_exchange(process.addr, big_head.as_bytes()).await),
        200
    );
    assert!(log_has(&process, "switchyard::access", 2).await);

    write(
        &config,
        "return { access_log = { enabled = false }, limits = { max_header_bytes = 8192 } }",
    );
    process.signal("HUP");
    assert!(
        log_has(&process, "config reloaded", 1).await,
        "{:?}",
        process.log.lock().unwrap()
    );
    let logged = access_lines(&process);
    open.ready().await.unwrap();
    assert_eq!(
        open.send_request(get()).await.unwrap().status(),
        StatusCode::OK,
        "the connection opened before the reload still serves"
    );
    let answer = common::raw_exchange(process.addr, big_head.as_bytes()).await;
    assert_eq!(
        common::status_of(&answer),
        431,
        "the new head limit applies"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(access_lines(&process), logged, "the access log is off now");

    write(&config, "return { limits = { max_header_bytes = 'lots' } ");
    process.signal("HUP");
    assert!(log_has(&process, "config reload refused", 1).await);
    write(&config, "return { limits = { max_conections = 5 } }");
    process.signal("HUP");
    assert!(log_has(&process, "config reload refused", 2).await);
    let refusal = process
        .log
        .lock()
        .unwrap()
        .iter()
        .rfind(|l| l.contains("config reload refused"))
        .cloned()
        .unwrap();
    assert!(
        refusal.contains("limits.max_conections"),
        "the reason names the key: {refusal}"
    );
    let answer = common::raw_exchange(process.addr, big_head.as_bytes()).await;
    assert_eq!(common::status_of(&answer), 431, "the running config stayed");
    open.ready().await.unwrap();
    assert_eq!(
        open.send_request(get()).await.unwrap().status(),
        StatusCode::OK
    );

    let metrics = process.admin.get("/metrics").await.text;
    assert!(
        metrics.contains("switchyard_config_reloads_total{result=\"applied\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("switchyard_config_reloads_total{result=\"refused\"} 2"));
}
