//! The first-run trap is closed: `--demo` keeps its backends in its own
//! database, so a later real run never inherits them; and configured
//! backends that differ from a non-empty store are named in a warning
//! that says how to apply them (`--replace-backends` does).

mod common;

use common::{Backend, Process};
use http::StatusCode;

const TOKEN: &str = "first-run-token-0123456789";

#[tokio::test]
async fn a_demo_run_leaves_nothing_for_a_later_real_run_to_inherit() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Process::start_without_database(dir, &["--demo", "--admin-token", TOKEN]).await;
    let (status, body) = common::Proxy::get_at(demo.addr, "www.example.com", "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("demo-"), "{body}");
    let dir = demo.stop().await;
    assert!(dir.path().join("switchyard-demo.db").exists());
    assert!(
        !dir.path().join("switchyard.db").exists(),
        "the real store is untouched"
    );

    let mine = Backend::named("mine").await;
    let backend = mine.addr.to_string();
    let real =
        Process::start_without_database(dir, &["--backend", &backend, "--admin-token", TOKEN])
            .await;
    let (status, body) = common::Proxy::get_at(real.addr, "www.example.com", "/").await;
    assert_eq!(
        (status, body.split(' ').next()),
        (StatusCode::OK, Some("mine")),
        "the flag's backend serves: {body}"
    );
    assert!(
        !real.logged(&["differ"]),
        "a fresh store has nothing to differ from"
    );
}

#[tokio::test]
async fn configured_backends_that_differ_from_the_store_are_named_and_can_replace_it() {
    let first = Backend::named("first").await;
    let second = Backend::named("second").await;
    let (a, b) = (first.addr.to_string(), second.addr.to_string());
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("pool.db").display());
    let run = |dir, args: Vec<String>| {
        let database = database.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Process::start_with_database(dir, &database, &args).await
        }
    };
    let token = ["--admin-token".to_owned(), TOKEN.to_owned()];
    let seeded = run(
        dir,
        [vec!["--backend".into(), a.clone()], token.to_vec()].concat(),
    )
    .await;
    let dir = seeded.stop().await;

    let warned = run(
        dir,
        [vec!["--backend".into(), b.clone()], token.to_vec()].concat(),
    )
    .await;
    assert!(
        warned.logged(&[
            "WARN",
            "differ",
            &format!("configured=[{b}]"),
            &format!("stored=[{a}]"),
            "--replace-backends",
            "PUT /api/v1/backends"
        ]),
        "{:#?}",
        warned.log.lock().unwrap()
    );
    let (_, body) = common::Proxy::get_at(warned.addr, "x.example", "/").await;
    assert!(body.starts_with("first"), "the store wins: {body}");
    let dir = warned.stop().await;

    let replaced = run(
        dir,
        [
            vec!["--backend".into(), b.clone(), "--replace-backends".into()],
            token.to_vec(),
        ]
        .concat(),
    )
    .await;
    let (_, body) = common::Proxy::get_at(replaced.addr, "x.example", "/").await;
    assert!(body.starts_with("second"), "replaced: {body}");
    assert_eq!(replaced.admin.addresses().await, [b]);
}

#[tokio::test]
async fn a_start_that_fails_changes_nothing_in_the_store() {
    let first = Backend::named("first").await;
    let second = Backend::named("second").await;
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("pool.db").display());
    let a = first.addr.to_string();
    let running =
        Process::start_with_database(dir, &database, &["--backend", &a, "--admin-token", TOKEN])
            .await;
    // A second node on the same store, told to replace the pool, but its
    // port is taken: it must fail before it touches the store.
    let taken = running.addr.to_string();
    let b = second.addr.to_string();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "--listen",
            &taken,
            "--admin-listen",
            "127.0.0.1:0",
            "--database",
            &database,
        ])
        .args([
            "--backend",
            &b,
            "--replace-backends",
            "--admin-token",
            TOKEN,
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
    assert_eq!(
        running.admin.addresses().await,
        [a],
        "the pool is untouched"
    );
}
