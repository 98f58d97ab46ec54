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
