//! The membership store on SQLite and, when reachable, PostgreSQL.
//!
//! PostgreSQL: `DATABASE_URL` (a server URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`) or that default; each run
//! creates a fresh database. When the server is not reachable the PostgreSQL
//! tests print why and skip.

mod common;

use common::{drop_database, postgres_or_skip};
use switchyard::routing::{BackendAddr, BackendState};
use switchyard::store::{Store, StoreError};

fn addr(s: &str) -> BackendAddr {
    s.parse().unwrap()
}

/// The behaviour every engine must have.
async fn membership_suite(store: &Store, reopen: impl std::future::Future<Output = Store>) {
    let empty = store.membership().await.unwrap();
    assert_eq!((empty.generation, empty.backends.len()), (0, 0));

    let (after_a, a) = store.create(&addr("10.0.0.1:80"), 1).await.unwrap();
    assert_eq!(after_a.generation, 1);
    assert_eq!(after_a.backends, vec![a.clone()]);
    let (after_b, b) = store.create(&addr("10.0.0.2:80"), 3).await.unwrap();
    assert_eq!(after_b.generation, 2);
    assert_ne!(a.id, b.id);

    let duplicate = store.create(&addr("10.0.0.1:80"), 5).await.unwrap_err();
    assert!(
        matches!(duplicate, StoreError::DuplicateAddress(ref a) if a == "10.0.0.1:80"),
        "{duplicate}"
    );
    assert_eq!(
        store.membership().await.unwrap(),
        after_b,
        "a refused write changes nothing, not even the generation"
    );

    let (after_drain, drained) = store
        .update(a.id, Some(BackendState::Draining), None)
        .await
        .unwrap();
    assert_eq!(
        (drained.state, drained.weight, after_drain.generation),
        (BackendState::Draining, 1, 3)
    );
    assert_eq!(after_drain.snapshot().unwrap().active_len(), 1);
    assert!(matches!(
        store.update(9999, None, Some(2)).await,
        Err(StoreError::NotFound(9999))
    ));

    let after_delete = store.delete(b.id).await.unwrap();
    assert_eq!(
        after_delete
            .backends
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        vec![a.id]
    );
    assert!(matches!(
        store.delete(b.id).await,
        Err(StoreError::NotFound(_))
    ));

    let replaced = store
        .replace(&[
            (addr("10.0.0.1:80"), 2, BackendState::Active),
            (addr("10.0.0.9:80"), 1, BackendState::Active),
        ])
        .await
        .unwrap();
    assert_eq!(replaced.generation, 5);
    let kept = replaced
        .backends
        .iter()
        .find(|r| r.address.as_str() == "10.0.0.1:80")
        .unwrap();
    assert_eq!(
        (kept.id, kept.weight, kept.state),
        (a.id, 2, BackendState::Active),
        "a kept address keeps its id"
    );
    assert_eq!(replaced.backends.len(), 2);
    let dup = store
        .replace(&[
            (addr("10.0.0.3:80"), 1, BackendState::Active),
            (addr("10.0.0.3:80"), 2, BackendState::Active),
        ])
        .await;
    assert!(matches!(dup, Err(StoreError::DuplicateAddress(_))));

    let changes = store.recent_changes(50).await.unwrap();
    assert_eq!(changes.first().unwrap().generation, 5, "newest first");
    let actions: Vec<(i64, &str)> = changes
        .iter()
        .rev()
        .map(|c| (c.generation, c.action.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            (1, "created"),
            (2, "created"),
            (3, "updated"),
            (4, "deleted"),
            (5, "replaced"),
            (5, "replaced")
        ]
    );

    let again = reopen.await;
    assert_eq!(
        again.membership().await.unwrap(),
        replaced,
        "membership survives a reopen"
    );
}

#[tokio::test]
async fn sqlite_store_keeps_membership_generations_and_changes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("switchyard.db").display());
    let store = Store::open(&url).await.unwrap();
    membership_suite(&store, async { Store::open(&url).await.unwrap() }).await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    assert!(matches!(
        Store::open("mysql://x").await,
        Err(StoreError::UnsupportedUrl(_))
    ));
}

#[tokio::test]
async fn postgres_store_keeps_membership_generations_and_changes() {
    let Some(url) =
        postgres_or_skip("postgres_store_keeps_membership_generations_and_changes").await
    else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    membership_suite(&store, async { Store::open(&url).await.unwrap() }).await;
    store.close().await;
    drop_database(&url).await;
}

/// An ACME order lease: one holder at a time, extended only by its holder,
/// timed by the database's clock (a lease of -1 s has run out for anyone).
async fn lease_suite(store: &Store) {
    store.add_domain("lease.example").await.unwrap();
    assert!(store.take_lease("lease.example", "one", 300).await.unwrap());
    assert!(
        !store.take_lease("lease.example", "two", 300).await.unwrap(),
        "a running lease is not taken by another node"
    );
    assert!(store
        .extend_lease("lease.example", "one", 300)
        .await
        .unwrap());
    assert!(
        !store
            .extend_lease("lease.example", "two", 300)
            .await
            .unwrap(),
        "only the holder extends a lease"
    );
    let held = store.domain("lease.example").await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let until = held.lease_until.unwrap();
    assert!((now + 290..=now + 310).contains(&until), "{until} vs {now}");
    assert_eq!(held.lease_owner.as_deref(), Some("one"));

    // Holder "one" sets a lease that has already run out: "two" takes it
    // and "one" can no longer extend it.
    assert!(store
        .extend_lease("lease.example", "one", -1)
        .await
        .unwrap());
    assert!(store.take_lease("lease.example", "two", 300).await.unwrap());
    assert!(!store
        .extend_lease("lease.example", "one", 300)
        .await
        .unwrap());
    assert_eq!(store.domain("lease.example").await.unwrap().orders, 2);
}

#[tokio::test]
async fn sqlite_order_leases_have_one_holder() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("switchyard.db").display());
    lease_suite(&Store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_order_leases_have_one_holder() {
    let Some(url) = postgres_or_skip("postgres_order_leases_have_one_holder").await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    lease_suite(&store).await;
    store.close().await;
    drop_database(&url).await;
}
