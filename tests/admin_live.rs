//! The admin API against a running switchyard on real sockets: a change is
//! live for the very next request, removals never cut requests short,
//! concurrent writers lose nothing, and membership survives restarts and
//! `kill -9`. Each scenario runs on SQLite and on PostgreSQL (a fresh
//! database per test; skipped with a printed reason when there is no server).

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{drop_database, hosts_of, postgres_or_skip, text, Admin, Backend, Process, Proxy};
use http::{Method, Response, StatusCode};
use serde_json::json;

const TOKEN: &str = "live-test-token-0123456789";

async fn start(database: Option<&str>, backends: &[SocketAddr]) -> Proxy {
    Proxy::start_with(backends, |settings| {
        if let Some(url) = database {
            settings.database_url = Some(switchyard::config::DatabaseUrl::new(url));
        }
        settings.admin.token = Some(switchyard::config::Secret::new(TOKEN));
    })
    .await
}

async fn an_added_backend_takes_the_very_next_request(database: Option<&str>) {
    let (a, b, c) = (
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    );
    let proxy = start(database, &[a.addr, b.addr]).await;
    let host = hosts_of(c.addr, &[a.addr, b.addr, c.addr], 1).remove(0);
    let (_, before) = proxy.get(&host, "/").await;
    assert!(!before.starts_with("c "), "c is not in the pool yet");

    let mut effect = Vec::new();
    for _ in 0..20 {
        let id = proxy.admin.add(&c.addr.to_string()).await;
        let created = Instant::now();
        let (status, body) = proxy.get(&host, "/").await;
        effect.push(created.elapsed());
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.starts_with("c "),
            "the request right after the 201 reached c: {body}"
        );
        proxy.admin.remove(&id).await;
        let (_, after) = proxy.get(&host, "/").await;
        assert!(
            !after.starts_with("c "),
            "the request right after the 204 avoided c"
        );
    }
    effect.sort();
    println!(
        "MEASURE change->effect ({}): median {:?}, max {:?} over {} adds",
        if database.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
        effect[effect.len() / 2],
        effect[effect.len() - 1],
        effect.len()
    );
    proxy.stop().await;
}

async fn a_removed_backends_request_in_flight_completes(database: Option<&str>) {
    const BODY: usize = 256 * 1024;
    let slow = Backend::with_handler(|_| async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        Response::new(text(vec![b's'; BODY]))
    })
    .await;
    let fast = Backend::named("fast").await;
    let proxy = start(database, &[slow.addr, fast.addr]).await;
    let host = hosts_of(slow.addr, &[slow.addr, fast.addr], 1).remove(0);
    let id = {
        let route = proxy.admin.get(&format!("/api/v1/route?host={host}")).await;
        assert_eq!(route.json["backend"]["address"], slow.addr.to_string());
        route.json["backend"]["id"].as_str().unwrap().to_owned()
    };
    let in_flight = {
        let proxy_addr = proxy.addr;
        let host = host.clone();
        tokio::spawn(async move {
            let req = http::Request::get("/")
                .header("host", host)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            let response = common::send(proxy_addr, req).await;
            let status = response.status();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, body.len())
        })
    };
    assert!(common::eventually(Duration::from_secs(5), || slow.hits() == 1).await);
    proxy.admin.remove(&id).await;
    let (status, body) = proxy.get(&host, "/").await;
    assert_eq!(
        (status, body.split(' ').next()),
        (StatusCode::OK, Some("fast"))
    );
    let (status, length) = in_flight.await.unwrap();
    assert_eq!(
        (status, length),
        (StatusCode::OK, BODY),
        "the removed backend's request finished whole"
    );
    proxy.stop().await;
}

async fn concurrent_writers_lose_nothing_while_traffic_flows(database: Option<&str>) {
    const WRITERS: usize = 20;
    const ROUNDS: usize = 3;
    let stable = [Backend::named("s1").await, Backend::named("s2").await];
    let mut writers = Vec::new();
    for i in 0..WRITERS {
        writers.push(Backend::named(&format!("w{i}")).await);
    }
    let proxy = start(database, &[stable[0].addr, stable[1].addr]).await;
    let start_generation = proxy.pool.load().generation();

    let done = Arc::new(AtomicBool::new(false));
    let failures: Arc<Mutex<Vec<(String, StatusCode, String)>>> = Arc::default();
    let mut traffic = Vec::new();
    for t in 0..4 {
        let (addr, done, failures) = (proxy.addr, Arc::clone(&done), Arc::clone(&failures));
        traffic.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut sent = 0u32;
            while !done.load(Ordering::Relaxed) && sent < 20_000 && Instant::now() < deadline {
                let host = format!("t{t}-{}.example", sent % 97);
                let (status, body) = common::Proxy::get_at(addr, &host, "/").await;
                if status != StatusCode::OK {
                    failures.lock().unwrap().push((host, status, body));
                }
                sent += 1;
            }
            sent
        }));
    }

    let mut tasks = Vec::new();
    for (i, backend) in writers.iter().enumerate() {
        let (admin, address) = (proxy.admin.clone(), backend.addr.to_string());
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let id = admin.add(&address).await;
                admin.remove(&id).await;
            }
            if i % 2 == 0 {
                admin.add(&address).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for task in traffic {
        sent += task.await.unwrap();
    }

    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "proxy errors during membership churn: {failures:?}"
    );
    assert!(sent > 0);
    let expected: BTreeSet<String> = stable
        .iter()
        .chain(writers.iter().step_by(2))
        .map(|b| b.addr.to_string())
        .collect();
    let listed: BTreeSet<String> = proxy.admin.addresses().await.into_iter().collect();
    assert_eq!(
        listed, expected,
        "the final list is exactly the writers' net effect"
    );
    let writes = (WRITERS * ROUNDS * 2 + WRITERS / 2) as u64;
    let list = proxy.admin.get("/api/v1/backends").await;
    assert_eq!(
        list.json["generation"].as_u64(),
        Some(start_generation + writes),
        "every write got its own generation"
    );
    let snapshot = proxy.pool.load();
    assert_eq!(
        snapshot.generation(),
        start_generation + writes,
        "the newest generation is live"
    );
    let live: BTreeSet<String> = snapshot
        .backends()
        .iter()
        .map(|b| b.address.to_string())
        .collect();
    assert_eq!(live, expected);
    println!("MEASURE churn ({}): {writes} writes by {WRITERS} clients, {sent} proxied requests, 0 errors",
        if database.is_some() { "postgres" } else { "sqlite" });
    proxy.stop().await;
}

macro_rules! on_both_databases {
    ($($scenario:ident => $sqlite:ident, $postgres:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $sqlite() {
            $scenario(None).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $postgres() {
            if let Some(url) = postgres_or_skip(stringify!($postgres)).await {
                $scenario(Some(&url)).await;
                drop_database(&url).await;
            }
        }
    )*};
}

on_both_databases! {
    an_added_backend_takes_the_very_next_request
        => sqlite_an_added_backend_takes_the_very_next_request,
           postgres_an_added_backend_takes_the_very_next_request;
    a_removed_backends_request_in_flight_completes
        => sqlite_a_removed_backends_request_in_flight_completes,
           postgres_a_removed_backends_request_in_flight_completes;
    concurrent_writers_lose_nothing_while_traffic_flows
        => sqlite_concurrent_writers_lose_nothing_while_traffic_flows,
           postgres_concurrent_writers_lose_nothing_while_traffic_flows;
}

/// Restart (SIGTERM, then `kill -9` right after a `201`) and compare.
async fn membership_survives_restarts(database: Option<&str>) {
    let (a, b, c) = (
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let launch = |dir: tempfile::TempDir| async move {
        match database {
            Some(url) => Process::start_with_database(dir, url, &[]).await,
            None => Process::start_in(dir, &[]).await,
        }
    };
    let first = launch(dir).await;
    let a_id = first.admin.add(&a.addr.to_string()).await;
    first.admin.add(&b.addr.to_string()).await;
    let drained = first
        .admin
        .call(
            Method::PATCH,
            &format!("/api/v1/backends/{a_id}"),
            Some(json!({"state": "draining"})),
        )
        .await;
    assert_eq!(drained.status, StatusCode::OK);
    let printed = first
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("#token="));
    assert!(
        printed,
        "a generated token is printed with the UI URL on first start"
    );
    let before = durable(first.admin.get("/api/v1/backends").await.json);
    let token = first.admin.token.clone();

    first.signal("TERM");
    let mut first = first;
    assert!(first.child.wait().await.unwrap().success());
    let second = launch(first.dir).await;
    assert_eq!(second.admin.token, token, "the token file is reused");
    assert!(
        !second
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("#token=")),
        "printed only once"
    );
    assert_eq!(
        durable(second.admin.get("/api/v1/backends").await.json),
        before,
        "intact after a clean restart"
    );

    let c_id = second.admin.add(&c.addr.to_string()).await;
    let after_c = durable(second.admin.get("/api/v1/backends").await.json);
    let dir = second.kill().await;
    let third = launch(dir).await;
    let listed = durable(third.admin.get("/api/v1/backends").await.json);
    assert_eq!(listed, after_c, "intact after kill -9 right after a 201");
    assert!(listed["backends"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["id"] == c_id.as_str()));
    let (status, body) = Proxy::get_at(third.addr, "anything.example", "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.starts_with("b ") || body.starts_with("c "),
        "only active backends serve: {body}"
    );
}

/// A backend list without its health, which is evidence gathered by each
/// process, not stored membership.
fn durable(mut list: serde_json::Value) -> serde_json::Value {
    for backend in list["backends"].as_array_mut().unwrap() {
        let fields = backend.as_object_mut().unwrap();
        for health in ["health", "health_since", "health_reason"] {
            assert!(fields.remove(health).is_some(), "{health} is listed");
        }
    }
    list
}

#[tokio::test]
async fn sqlite_membership_survives_restart_and_kill_9() {
    membership_survives_restarts(None).await;
}

#[tokio::test]
async fn postgres_membership_survives_restart_and_kill_9() {
    if let Some(url) = postgres_or_skip("postgres_membership_survives_restart_and_kill_9").await {
        membership_survives_restarts(Some(&url)).await;
        drop_database(&url).await;
    }
}

#[tokio::test]
async fn the_admin_client_sees_the_same_token_as_the_process() {
    let process = Process::start(&["--admin-token", TOKEN]).await;
    let ok = process.admin.get("/api/v1/backends").await;
    assert_eq!(ok.status, StatusCode::OK);
    let wrong = Admin::new(process.admin.addr, "wrong-token-0123456789")
        .get("/api/v1/backends")
        .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
}
