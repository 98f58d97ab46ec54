//! Admin write throughput: sequential `POST /api/v1/backends` over one
//! keep-alive connection, each committed and published before its `201`,
//! on SQLite and (when reachable) PostgreSQL, and the change → effect
//! latency (from the `201` to a proxied answer from the new backend).
//!
//! `cargo bench --bench admin_writes` (PostgreSQL: `DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; a fresh database is made
//! and dropped).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use switchyard::config::{AdminSettings, Settings};
use switchyard::App;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench-token-0123456789";
const WRITES: usize = 500;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: std::net::SocketAddr) -> Sender {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn call(sender: &mut Sender, req: Request<Full<Bytes>>) -> (u16, Bytes) {
    sender.ready().await.unwrap();
    let response = sender.send_request(req).await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

fn post(address: &str) -> Request<Full<Bytes>> {
    Request::post("/api/v1/backends")
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!(
            r#"{{"address":"{address}"}}"#
        ))))
        .unwrap()
}

async fn measure(label: &str, database: String) {
    let dir = tempfile::tempdir().unwrap();
    let database = if database.is_empty() {
        format!("sqlite://{}", dir.path().join("bench.db").display())
    } else {
        database
    };
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: Some(switchyard::config::DatabaseUrl::new(database)),
        admin: AdminSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: Some(switchyard::config::Secret::new(TOKEN)),
            ..AdminSettings::default()
        },
        ..Settings::default()
    };
    let app = App::build(&settings).await.unwrap();
    let (admin, pool) = (app.admin_addr(), app.pool());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    let mut sender = connect(admin).await;

    let mut latencies = Vec::with_capacity(WRITES);
    let started = Instant::now();
    for i in 0..WRITES {
        let sent = Instant::now();
        let (status, body) = call(
            &mut sender,
            post(&format!("10.9.{}.{}:80", i / 250, i % 250 + 1)),
        )
        .await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        latencies.push(sent.elapsed());
    }
    let elapsed = started.elapsed();
    assert_eq!(pool.load().backends().len(), WRITES);
    latencies.sort();
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "{label:<10} {WRITES} sequential POSTs (pool 0 -> {WRITES}): {:>7.0} writes/s; per write p50 {:?} p99 {:?} max {:?}",
        WRITES as f64 / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(35), task).await;
}

async fn fresh_postgres() -> Result<String, String> {
    use sqlx::Connection;
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut conn = sqlx::PgConnection::connect(&server)
        .await
        .map_err(|e| e.to_string())?;
    let name = format!("switchyard_bench_{}", std::process::id());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

async fn drop_postgres(url: &str) {
    use sqlx::Connection;
    let (base, name) = url.rsplit_once('/').unwrap();
    if let Ok(mut conn) = sqlx::PgConnection::connect(&format!("{base}/postgres")).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` / `cargo test --benches` probes
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        measure("sqlite", String::new()).await;
        match fresh_postgres().await {
            Ok(url) => {
                measure("postgres", url.clone()).await;
                drop_postgres(&url).await;
            }
            Err(why) => println!("postgres   SKIPPED: {why}"),
        }
    });
}
