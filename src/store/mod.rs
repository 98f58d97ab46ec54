//! Durable membership: backends, the generation counter and the change log,
//! in SQLite (default) or PostgreSQL through sqlx, with `migrations/` applied
//! at open.
//!
//! Every write is one transaction that bumps the generation, changes the
//! `backends` rows and appends to `changes`; it is committed before the
//! caller sees the result, and the caller turns the returned [`Membership`]
//! into the next routing snapshot. Nothing here runs on the request path.
//!
//! On PostgreSQL a write also sends `NOTIFY switchyard_membership, '<generation>'`
//! inside its transaction (delivered exactly when it commits); every node
//! listens (see [`crate::sync`]). Writers are serialized by the row lock on
//! the generation counter, so concurrent writes on several nodes never lose
//! an update, and the unique address column refuses duplicates.

mod acme;
mod certs;
mod rows;
mod seal;
mod sql;

use std::str::FromStr;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Connection, Row, Transaction};

use sql::{bump, find, generation, insert, log, remove, set_state_and_weight};

use crate::config::DatabaseUrl;
use crate::routing::{Backend, BackendAddr, BackendState, PoolError, Snapshot};

pub use acme::{AcmeState, DomainRecord, DomainStatus, ACME_CHANNEL};
pub use certs::{CertSource, CertificateRecord, StoredCertificates, CERT_CHANNEL};
pub use rows::{BackendRecord, ChangeRecord};
pub use seal::{SealError, Sealer};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The PostgreSQL channel that carries new generations.
pub const CHANNEL: &str = "switchyard_membership";

/// How long a caller waits for a database connection before the store
/// answers "unavailable" (an admin write then gets a `503` within this).
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

const SELECT_BACKENDS: &str = "SELECT id, address, weight, state, created_at FROM backends";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a backend with address {0} already exists")]
    DuplicateAddress(String),
    #[error("no backend with id {0}")]
    NotFound(i64),
    #[error("no certificate with id {0}")]
    CertificateNotFound(i64),
    #[error("other certificates' keys are sealed with a storage key and this node has none: start it with SWITCHYARD_STORAGE_KEY (the same as the other nodes') so that this key is sealed too")]
    WouldStoreUnsealed,
    #[error("{0} is already a managed domain")]
    DomainExists(String),
    #[error("{0} is not a managed domain")]
    DomainNotFound(String),
    #[error("another node holds the order lease of {0}")]
    LeaseLost(String),
    #[error("unsupported database URL {}: use sqlite://PATH or postgres://...", crate::config::redact_url(.0))]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored membership is invalid: {0}")]
    Invalid(String),
}

/// The whole membership at one generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub generation: u64,
    pub backends: Vec<BackendRecord>,
}

impl Membership {
    /// The routing snapshot for this membership.
    pub fn snapshot(&self) -> Result<Snapshot, PoolError> {
        Snapshot::new(self.generation, self.routed())
    }

    /// The routing snapshot for this membership, derived from `previous`
    /// (cheaper when few backends changed; same result).
    pub fn snapshot_after(&self, previous: &Snapshot) -> Result<Snapshot, PoolError> {
        previous.next(self.generation, self.routed())
    }

    fn routed(&self) -> Vec<Backend> {
        self.backends
            .iter()
            .map(BackendRecord::to_backend)
            .collect()
    }
}

/// A connection pool to the membership database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// The PostgreSQL URL (for the notification listener), if PostgreSQL;
    /// redacted when printed.
    postgres: Option<DatabaseUrl>,
    /// Seals private keys at rest, when a storage key is configured.
    sealer: Option<std::sync::Arc<Sealer>>,
}

impl Store {
    /// Open `url` (`sqlite://PATH`, created if missing, WAL mode; or
    /// `postgres://...`) and apply pending migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = if let Some(path) = url.strip_prefix("sqlite://") {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("sqlite://{path}{sep}mode=rwc")
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url.to_owned()
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let sqlite = url.starts_with("sqlite:");
        if !sqlite {
            // The pool reports only "timed out" when it cannot connect; one
            // direct attempt first says why (refused, authentication...).
            let first = tokio::time::timeout(ACQUIRE_TIMEOUT, sqlx::AnyConnection::connect(&url))
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??;
            first.close().await?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL: readers never block the writer; a writer waits
                        // for another instead of failing at once.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = FULL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        MIGRATOR.run(&pool).await?;
        let postgres = (!sqlite).then(|| DatabaseUrl::new(url));
        Ok(Store {
            pool,
            postgres,
            sealer: None,
        })
    }

    /// Seal the private keys this store writes with `sealer` (and open
    /// sealed ones with it).
    pub fn with_sealer(mut self, sealer: Sealer) -> Self {
        self.sealer = Some(std::sync::Arc::new(sealer));
        self
    }

    /// The PostgreSQL URL, when the store is PostgreSQL (nodes can share it).
    pub fn postgres_url(&self) -> Option<&str> {
        self.postgres.as_ref().map(DatabaseUrl::expose)
    }

    /// The committed generation (one small query).
    pub async fn generation(&self) -> Result<u64, StoreError> {
        self.counter("generation").await
    }

    /// A committed `meta` counter (one small query).
    async fn counter(&self, key: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let value = sql::counter(&mut tx, key).await?;
        tx.commit().await?;
        Ok(value)
    }

    /// Close every pooled connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The current membership, read in one transaction.
    pub async fn membership(&self) -> Result<Membership, StoreError> {
        let mut tx = self.pool.begin().await?;
        let generation = generation(&mut tx).await?;
        let backends = sqlx::query(&format!("{SELECT_BACKENDS} ORDER BY id"))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(BackendRecord::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(Membership {
            generation,
            backends,
        })
    }

    /// Add a backend (active). Fails on a duplicate address.
    pub async fn create(
        &self,
        address: &BackendAddr,
        weight: u32,
    ) -> Result<(Membership, BackendRecord), StoreError> {
        let mut tx = self.pool.begin().await?;
        let generation = bump(&mut tx, "generation").await?;
        let record = insert(&mut tx, address, weight, BackendState::Active).await?;
        log(
            &mut tx,
            generation,
            0,
            "created",
            &record,
            &format!("weight {weight}"),
        )
        .await?;
        self.commit_and_read(tx, generation)
            .await
            .map(|m| (m, record))
    }

    /// Change a backend's state and/or weight.
    pub async fn update(
        &self,
        id: i64,
        state: Option<BackendState>,
        weight: Option<u32>,
    ) -> Result<(Membership, BackendRecord), StoreError> {
        let mut tx = self.pool.begin().await?;
        let generation = bump(&mut tx, "generation").await?;
        let mut record = find(&mut tx, id).await?;
        record.state = state.unwrap_or(record.state);
        record.weight = weight.unwrap_or(record.weight);
        set_state_and_weight(&mut tx, &record).await?;
        let detail = format!("state {}, weight {}", record.state.as_str(), record.weight);
        log(&mut tx, generation, 0, "updated", &record, &detail).await?;
        self.commit_and_read(tx, generation)
            .await
            .map(|m| (m, record))
    }

    /// Remove a backend.
    pub async fn delete(&self, id: i64) -> Result<Membership, StoreError> {
        let mut tx = self.pool.begin().await?;
        let generation = bump(&mut tx, "generation").await?;
        let record = find(&mut tx, id).await?;
        remove(&mut tx, id).await?;
        log(&mut tx, generation, 0, "deleted", &record, "").await?;
        self.commit_and_read(tx, generation).await
    }

    /// Replace the whole pool atomically: addresses that stay keep their id.
    pub async fn replace(
        &self,
        wanted: &[(BackendAddr, u32, BackendState)],
    ) -> Result<Membership, StoreError> {
        let mut seen = std::collections::HashSet::new();
        if let Some((dup, ..)) = wanted.iter().find(|(a, ..)| !seen.insert(a.clone())) {
            return Err(StoreError::DuplicateAddress(dup.to_string()));
        }
        let mut tx = self.pool.begin().await?;
        let generation = bump(&mut tx, "generation").await?;
        let current = sqlx::query(SELECT_BACKENDS)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(BackendRecord::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let mut seq = 0;
        for old in current
            .iter()
            .filter(|old| !wanted.iter().any(|(a, ..)| *a == old.address))
        {
            remove(&mut tx, old.id).await?;
            log(&mut tx, generation, seq, "deleted", old, "replaced").await?;
            seq += 1;
        }
        for (address, weight, state) in wanted {
            let record = match current.iter().find(|old| old.address == *address) {
                Some(old) if old.weight == *weight && old.state == *state => continue,
                Some(old) => {
                    let record = BackendRecord {
                        weight: *weight,
                        state: *state,
                        ..old.clone()
                    };
                    set_state_and_weight(&mut tx, &record).await?;
                    record
                }
                None => insert(&mut tx, address, *weight, *state).await?,
            };
            let detail = format!("state {}, weight {}", state.as_str(), weight);
            log(&mut tx, generation, seq, "replaced", &record, &detail).await?;
            seq += 1;
        }
        self.commit_and_read(tx, generation).await
    }

    /// The newest `limit` changes, newest first.
    pub async fn recent_changes(&self, limit: u32) -> Result<Vec<ChangeRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT generation, seq, at, action, backend_id, address, detail FROM changes \
             ORDER BY generation DESC, seq DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ChangeRecord::from_row).collect()
    }

    async fn commit_and_read(
        &self,
        mut tx: Transaction<'static, Any>,
        generation: i64,
    ) -> Result<Membership, StoreError> {
        self.notify(&mut tx, CHANNEL, generation).await?;
        tx.commit().await?;
        // Read after commit: the membership a caller publishes is exactly what
        // is durable, including changes other writers committed just before.
        self.membership().await
    }
}

impl Store {
    /// On PostgreSQL, tell every node that `channel` moved to `generation`
    /// (queued by PostgreSQL and sent to every listener at commit).
    async fn notify(
        &self,
        tx: &mut Transaction<'static, Any>,
        channel: &str,
        generation: i64,
    ) -> Result<(), StoreError> {
        if self.postgres.is_some() {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(generation.to_string())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

fn parse_state(text: &str) -> Result<BackendState, StoreError> {
    match text {
        "active" => Ok(BackendState::Active),
        "draining" => Ok(BackendState::Draining),
        other => Err(StoreError::Invalid(format!("unknown state {other:?}"))),
    }
}

fn parse_address(text: &str) -> Result<BackendAddr, StoreError> {
    BackendAddr::from_str(text).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn column<'r, T: sqlx::Decode<'r, Any> + sqlx::Type<Any>>(
    row: &'r AnyRow,
    name: &str,
) -> Result<T, StoreError> {
    row.try_get(name).map_err(Into::into)
}

/// Backend rows as the router sees them.
impl BackendRecord {
    /// The routing view of this row.
    pub fn to_backend(&self) -> Backend {
        Backend {
            id: self.id.to_string(),
            address: self.address.clone(),
            weight: self.weight,
            state: self.state,
        }
    }
}
