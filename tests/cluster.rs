//! Several switchyard processes on one PostgreSQL database: a change made
//! through any node is routed by every node, a node that loses the database
//! keeps routing and catches up when it is back, concurrent writers on two
//! nodes lose nothing, and every node maps every key to the same backend.
//! Needs the PostgreSQL server (`DATABASE_URL` or 127.0.0.1:5432); without it
//! each test prints `SKIPPED` and the reason.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{drop_database, postgres_or_skip, Admin, Backend, Cuttable, Process, Proxy};
use http::{Method, StatusCode};
use serde_json::json;

const TOKEN: &str = "cluster-test-token-0123456789";

/// A node on `url`, named for `pg_stat_activity` (`application_name`).
async fn node(url: &str, name: &str, backends: &[&str]) -> Process {
    let url = format!("{url}?application_name={name}");
    let mut args = vec!["--admin-token", TOKEN];
    for backend in backends {
        args.extend(["--backend", backend]);
    }
    Process::start_with_database(tempfile::tempdir().unwrap(), &url, &args).await
}

/// Backends answering with their names `a`, `b` and `c`.
async fn three_backends() -> (Backend, Backend, Backend) {
    (
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    )
}

/// The membership generation a node routes with (from `/healthz`).
async fn generation(admin: &Admin) -> u64 {
    let reply = admin.get("/healthz").await;
    reply.json["generation"]
        .as_u64()
        .expect("healthz has a generation")
}

/// Wait until `admin` routes with at least `wanted`; how long that took.
async fn until_generation(admin: &Admin, wanted: u64, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if generation(admin).await >= wanted {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    None
}

/// The backend a node's route lookup picks for `host`.
async fn routed(admin: &Admin, host: &str) -> String {
    let reply = admin.get(&format!("/api/v1/route?host={host}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json["backend"]["address"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_node_is_routed_by_the_other_within_milliseconds() {
    let Some(url) =
        postgres_or_skip("a_change_on_one_node_is_routed_by_the_other_within_milliseconds").await
    else {
        return;
    };
    let (a_backend, b_backend, c_backend) = three_backends().await;
    let (a, b) = (a_backend.addr.to_string(), b_backend.addr.to_string());
    let one = node(&url, "node-one", &[&a, &b]).await;
    let two = node(&url, "node-two", &[]).await;
    assert_eq!(one.admin.addresses().await, two.admin.addresses().await);

    // Routed through node two's proxy, a host of c goes to c once node one adds it.
    let all = [a_backend.addr, b_backend.addr, c_backend.addr];
    let host = common::hosts_of(c_backend.addr, &all, 1).remove(0);
    let (_, before) = Proxy::get_at(two.addr, &host, "/").await;
    assert!(!before.starts_with("c "), "c is not a member yet: {before}");
    let c_id = one.admin.add(&c_backend.addr.to_string()).await;
    let wanted = generation(&one.admin).await;
    until_generation(&two.admin, wanted, Duration::from_secs(5))
        .await
        .expect("node two applies node one's change");
    let (status, after) = Proxy::get_at(two.addr, &host, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(after.starts_with("c "), "node two routes to c: {after}");
    one.admin.remove(&c_id).await;

    // 200 changes on node one (add, then remove, a fourth address), each
    // timed from node one's answer to node two routing with it.
    let mut delays = Vec::new();
    let mut id = None;
    for n in 0..200 {
        match id.take() {
            None => id = Some(one.admin.add("127.0.0.1:9").await),
            Some(existing) => one.admin.remove(&existing).await,
        }
        let answered = Instant::now();
        let wanted = generation(&one.admin).await;
        until_generation(&two.admin, wanted, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("change {n} (generation {wanted}) never reached node two"));
        delays.push(answered.elapsed());
    }
    delays.sort();
    println!(
        "propagation node one -> node two over {} changes: p50 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        percentile(&delays, 50.0),
        percentile(&delays, 99.0),
        delays.last().unwrap()
    );
    assert_eq!(one.admin.addresses().await, two.admin.addresses().await);
    drop((one, two));
    drop_database(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_maps_every_key_to_the_same_backend() {
    let Some(url) = postgres_or_skip("every_node_maps_every_key_to_the_same_backend").await else {
        return;
    };
    let backends: Vec<Backend> =
        futures_util::future::join_all(["a", "b", "c", "d", "e"].into_iter().map(Backend::named))
            .await;
    let addresses: Vec<String> = backends.iter().map(|b| b.addr.to_string()).collect();
    let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let one = node(&url, "node-one", &refs[..3]).await;
    let two = node(&url, "node-two", &[]).await;
    // Grow the pool through node two (one weight 3), then drain one through node one.
    for address in &refs[3..] {
        two.admin.add(address).await;
    }
    let listed = two.admin.get("/api/v1/backends").await;
    let first_id = listed.json["backends"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let last_id = listed.json["backends"][4]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch = |id: String, body| {
        let admin = two.admin.clone();
        async move {
            let reply = admin
                .call(Method::PATCH, &format!("/api/v1/backends/{id}"), Some(body))
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        }
    };
    patch(last_id, json!({"weight": 3})).await;
    patch(first_id, json!({"state": "draining"})).await;
    let wanted = generation(&two.admin).await;
    until_generation(&one.admin, wanted, Duration::from_secs(5))
        .await
        .expect("node one applies node two's changes");

    let mut same = 0;
    let mut spread: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..10_000 {
        let host = format!("user{i}.Example.COM");
        let (on_one, on_two) = (
            routed(&one.admin, &host).await,
            routed(&two.admin, &host).await,
        );
        assert_eq!(
            on_one, on_two,
            "{host}: node one {on_one}, node two {on_two}"
        );
        same += 1;
        *spread.entry(on_one).or_default() += 1;
    }
    // And through the proxies themselves, for a sample.
    for i in 0..300 {
        let host = format!("user{i}.example.com");
        let (_, via_one) = Proxy::get_at(one.addr, &host, "/").await;
        let (_, via_two) = Proxy::get_at(two.addr, &host, "/").await;
        let name = |body: &str| body.split(' ').next().unwrap_or_default().to_owned();
        assert_eq!(name(&via_one), name(&via_two), "{host}");
    }
    println!("identical routing on both nodes: {same}/10000 domains; per backend: {spread:?}");
    assert_eq!(
        spread.len(),
        4,
        "the drained backend gets no keys: {spread:?}"
    );
    drop((one, two));
    drop_database(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_its_database_keeps_routing_and_catches_up() {
    let Some(url) =
        postgres_or_skip("a_node_without_its_database_keeps_routing_and_catches_up").await
    else {
        return;
    };
    let (a_backend, b_backend, c_backend) = three_backends().await;
    let one = node(
        &url,
        "node-one",
        &[&a_backend.addr.to_string(), &b_backend.addr.to_string()],
    )
    .await;
    // Node two reaches the database through a forwarder the test can cut.
    let server: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let forwarder = Cuttable::to(server).await;
    let via_forwarder = url.replacen("127.0.0.1:5432", &forwarder.addr.to_string(), 1);
    assert_ne!(
        via_forwarder, url,
        "the test database URL names 127.0.0.1:5432"
    );
    let two = node(&via_forwarder, "node-two", &[]).await;
    assert_eq!(two.admin.get("/readyz").await.status, StatusCode::OK);
    let host = "kept.example";
    let (_, before) = Proxy::get_at(two.addr, host, "/").await;

    forwarder.cut();
    let cut_at = Instant::now();
    let readyz = loop {
        let reply = two.admin.get("/readyz").await;
        if reply.status == StatusCode::SERVICE_UNAVAILABLE
            || cut_at.elapsed() > Duration::from_secs(10)
        {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        readyz.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        readyz.text
    );
    assert_eq!(readyz.json["status"], "degraded");
    assert_eq!(readyz.json["database"], "unreachable");
    assert!(readyz.json["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert_eq!(two.admin.get("/healthz").await.status, StatusCode::OK);
    let refused = two
        .admin
        .call(
            Method::POST,
            "/api/v1/backends",
            Some(json!({"address": "127.0.0.1:7"})),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text
    );
    assert_eq!(refused.code(), "store_unavailable");
    let (status, during) = Proxy::get_at(two.addr, host, "/").await;
    assert_eq!(
        (status, during.clone()),
        (StatusCode::OK, before),
        "routing on the last snapshot"
    );

    // Meanwhile node one changes the membership.
    one.admin.add(&c_backend.addr.to_string()).await;
    let listed = one.admin.get("/api/v1/backends").await;
    let a_id = listed.json["backends"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    one.admin.remove(&a_id).await;
    let wanted = generation(&one.admin).await;
    assert!(generation(&two.admin).await < wanted);

    forwarder.heal();
    let healed = Instant::now();
    let caught_up = until_generation(&two.admin, wanted, Duration::from_secs(15))
        .await
        .expect("node two catches up after the database is back");
    println!(
        "database cut for {:?}; node two converged {caught_up:?} after it was back (generation {wanted})",
        healed - cut_at
    );
    assert_eq!(one.admin.addresses().await, two.admin.addresses().await);
    let ready = tokio::time::timeout(Duration::from_secs(10), async {
        while two.admin.get("/readyz").await.status != StatusCode::OK {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(ready.is_ok(), "node two is ready again");
    drop((one, two));
    drop_database(&url).await;
}

/// Terminate a node's database sessions the way an operator or a failover would.
async fn terminate_sessions(url: &str, name: &str) -> u64 {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    killed.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_sessions_miss_no_change_and_concurrent_writers_converge() {
    let Some(url) =
        postgres_or_skip("terminated_sessions_miss_no_change_and_concurrent_writers_converge")
            .await
    else {
        return;
    };
    let one = node(&url, "node-one", &["127.0.0.1:20000"]).await;
    let two = node(&url, "node-two", &[]).await;
    let three = node(&url, "node-three", &[]).await;

    // Kill node three's sessions (its listener among them) and change the
    // membership on node one while it reconnects.
    let killed = terminate_sessions(&url, "node-three").await;
    assert!(killed >= 1, "node three had a session");
    let terminated = Instant::now();
    for port in 20001..20004 {
        one.admin.add(&format!("127.0.0.1:{port}")).await;
    }
    let wanted = generation(&one.admin).await;
    until_generation(&three.admin, wanted, Duration::from_secs(15))
        .await
        .expect("node three converges after its sessions were terminated");
    println!(
        "{killed} sessions of node three terminated; it converged to generation {wanted} {:?} after the kill",
        terminated.elapsed()
    );

    // Random adds and removes on nodes one and two at once.
    let start = generation(&one.admin).await;
    let writers = [one.admin.clone(), two.admin.clone()].map(|admin| {
        tokio::spawn(async move {
            let mut succeeded = 0u64;
            let mut seed = admin.addr.port() as u64;
            for _ in 0..60 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let port = 20000 + (seed >> 33) % 12;
                let reply = if (seed >> 20) % 2 == 0 {
                    admin
                        .call(
                            Method::POST,
                            "/api/v1/backends",
                            Some(json!({"address": format!("127.0.0.1:{port}")})),
                        )
                        .await
                } else {
                    let listed = admin.get("/api/v1/backends").await;
                    let id = listed.json["backends"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|b| b["address"] == format!("127.0.0.1:{port}"))
                        .map(|b| b["id"].as_str().unwrap().to_owned());
                    match id {
                        Some(id) => {
                            admin
                                .call(Method::DELETE, &format!("/api/v1/backends/{id}"), None)
                                .await
                        }
                        None => continue,
                    }
                };
                match reply.status {
                    StatusCode::CREATED | StatusCode::NO_CONTENT => succeeded += 1,
                    // Lost a race with the other node: a clean refusal, nothing changed.
                    StatusCode::CONFLICT | StatusCode::NOT_FOUND => {}
                    other => panic!("unexpected {other}: {}", reply.text),
                }
            }
            succeeded
        })
    });
    let mut writes = 0;
    for writer in writers {
        writes += writer.await.unwrap();
    }
    let committed: i64 = {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'generation'")
            .fetch_one(&mut db)
            .await
            .unwrap()
    };
    assert_eq!(
        committed as u64,
        start + writes,
        "every successful write is one generation"
    );
    let table: Vec<String> = {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT address FROM backends ORDER BY address")
            .fetch_all(&mut db)
            .await
            .unwrap()
    };
    for node in [&one, &two, &three] {
        until_generation(&node.admin, committed as u64, Duration::from_secs(5))
            .await
            .expect("every node reaches the committed generation");
        let stats = node.admin.get("/api/v1/stats").await;
        let mut routed: Vec<String> = stats.json["backends"]
            .as_array()
            .expect("stats lists the live snapshot's backends")
            .iter()
            .map(|b| b["address"].as_str().unwrap().to_owned())
            .collect();
        routed.sort();
        assert_eq!(routed, table, "live snapshot = table");
        assert_eq!(node.admin.addresses().await, table, "listed = table");
    }
    println!("concurrent writers: {writes} changes committed, generation {committed}, 3 nodes equal to the table ({} backends)", table.len());
    drop((one, two, three));
    drop_database(&url).await;
}
