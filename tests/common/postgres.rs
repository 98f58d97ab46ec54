//! A fresh PostgreSQL database per test run, when a server is reachable.

/// A fresh database for `test`, or `None` after printing why the test is
/// skipped (no server answers).
pub async fn postgres_or_skip(test: &str) -> Option<String> {
    match fresh_postgres().await {
        Ok(url) => Some(url),
        Err(why) => {
            super::skipped(test, &format!("PostgreSQL server unavailable ({why})"));
            None
        }
    }
}

/// A fresh database on `DATABASE_URL` (a server URL such as
/// `postgres://postgres@127.0.0.1:5432/postgres`, the default), or the
/// reason there is none.
async fn fresh_postgres() -> Result<String, String> {
    use sqlx::Connection;
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "switchyard_test_{}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .map_err(|e| e.to_string())?;
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

/// Best-effort cleanup of a database made by [`fresh_postgres`].
pub async fn drop_database(url: &str) {
    use sqlx::Connection;
    let (base, name) = url.rsplit_once('/').unwrap();
    if let Ok(mut admin) = sqlx::PgConnection::connect(&format!("{base}/postgres")).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}

/// Wait until no session is connected to `url`'s database, or `within`
/// passes; returns how many are left. A killed client's sessions end when
/// the server notices the closed socket; until then a `COMMIT` it sent may
/// still land, so what is durable is only known after.
pub async fn sessions_ended(url: &str, within: std::time::Duration) -> i64 {
    use sqlx::Connection;
    let (base, name) = url.rsplit_once('/').unwrap();
    let mut admin = sqlx::PgConnection::connect(&format!("{base}/postgres"))
        .await
        .expect("the PostgreSQL server answers");
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                .bind(name)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        if left == 0 || tokio::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
