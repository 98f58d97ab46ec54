//! The binary: exit codes and signals.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::{Backend, Process};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn switchyard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_config_with_an_unknown_key_exits_2_naming_file_line_and_key() {
    let mut file = tempfile::Builder::new().suffix(".lua").tempfile().unwrap();
    file.write_all(b"return {\n  limits = {\n    max_conections = 5,\n  },\n}\n")
        .unwrap();
    let out = switchyard(&["--config", file.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:3: key `limits.max_conections`", file.path().display());
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn bad_flags_and_bad_values_exit_2() {
    assert_eq!(switchyard(&["--no-such-flag"]).status.code(), Some(2));
    assert_eq!(
        switchyard(&["--listen", "not-an-address"]).status.code(),
        Some(2)
    );
    let out = switchyard(&[
        "--backend",
        "nope",
        "--listen",
        "127.0.0.1:0",
        "--tls-listen",
        "off",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid backend address \"nope\""));
    assert_eq!(
        switchyard(&["--config", "/does/not/exist.lua"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn a_public_admin_listener_without_an_explicit_strong_token_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("db").display());
    let base = [
        "--listen",
        "127.0.0.1:0",
        "--tls-listen",
        "off",
        "--database",
        &database,
    ];
    let public = [&base[..], &["--admin-listen", "0.0.0.0:0"]].concat();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(&public)
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not on loopback"));
    let weak = [&base[..], &["--admin-token", "short"]].concat();
    let out = switchyard(&weak);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));
    assert!(
        !dir.path().join("db").exists(),
        "refused before touching the database"
    );
}

#[test]
fn a_listen_address_in_use_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("db").display());
    let out = switchyard(&[
        "--listen",
        &taken.local_addr().unwrap().to_string(),
        "--database",
        &database,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_request_finish_then_exits_0() {
    let slow = Backend::with_handler(|_| async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        http::Response::new(common::text("finished"))
    })
    .await;
    let mut proxy = Process::start(&["--backend", &slow.addr.to_string()]).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await
        .unwrap();
    assert!(
        common::eventually(Duration::from_secs(5), || slow.hits() == 1).await,
        "request reached the backend"
    );

    proxy.signal("TERM");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("finished"),
        "{answer}"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), proxy.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        TcpStream::connect(proxy.addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn configured_backends_seed_an_empty_store_and_the_store_wins_after_that() {
    let dir = tempfile::tempdir().unwrap();
    let settings = |backend: &str| switchyard::config::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: Some(switchyard::config::DatabaseUrl::new(format!(
            "sqlite://{}",
            dir.path().join("switchyard.db").display()
        ))),
        backends: vec![switchyard::config::BackendEntry::Address(backend.into())],
        admin: switchyard::config::AdminSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        },
        ..Default::default()
    };
    let addresses = |app: &switchyard::App| {
        app.pool()
            .load()
            .backends()
            .iter()
            .map(|b| b.address.to_string())
            .collect::<Vec<_>>()
    };
    let first = switchyard::App::build(&settings("10.0.0.1:80"))
        .await
        .unwrap();
    assert_eq!(addresses(&first), ["10.0.0.1:80"]);
    drop(first);
    let restarted = switchyard::App::build(&settings("10.0.0.2:80"))
        .await
        .unwrap();
    assert_eq!(
        addresses(&restarted),
        ["10.0.0.1:80"],
        "stored membership survives and is not overwritten"
    );
    assert_eq!(restarted.pool().load().generation(), 1);
}
