//! ACME in the store: the managed domains (their status, the certificate
//! in force, the last failure and the lease of the node ordering one), the
//! HTTP-01 challenge answers every node serves, and the account key every
//! node shares. Every write to domains or challenges bumps
//! `acme_generation` and notifies the other nodes on [`ACME_CHANNEL`].

use sqlx::{Any, Row, Transaction};

use super::seal;
use super::sql::{bump, counter};
use super::{CertSource, Store, StoreError};

/// The PostgreSQL channel that carries new ACME generations.
pub const ACME_CHANNEL: &str = "switchyard_acme";

/// The AAD of a sealed account key (certificate rows use their ids, from 1).
const ACCOUNT_KEY_AAD: i64 = -1;

/// Where a managed domain stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DomainStatus {
    /// No certificate yet; an order is due or running.
    Pending,
    /// A certificate is served (a renewal may have failed: see `error`).
    Valid,
    /// The last order failed and there is no certificate; see `error`, `retry_at`.
    Failed,
}

impl DomainStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainStatus::Pending => "pending",
            DomainStatus::Valid => "valid",
            DomainStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "pending" => Ok(DomainStatus::Pending),
            "valid" => Ok(DomainStatus::Valid),
            "failed" => Ok(DomainStatus::Failed),
            other => Err(StoreError::Invalid(format!(
                "unknown domain status {other:?}"
            ))),
        }
    }
}

/// One row of `domains`. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainRecord {
    pub name: String,
    pub status: DomainStatus,
    /// RFC 3339.
    pub created_at: String,
    pub certificate_id: Option<i64>,
    pub not_after: Option<i64>,
    pub renews_at: Option<i64>,
    pub error: Option<String>,
    pub retry_at: Option<i64>,
    /// Failed orders in a row.
    pub failures: i64,
    /// Orders started for this domain (successful or not).
    pub orders: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    /// Whether `certificate_id` is still in the store (read in the same
    /// statement: a node never judges it from its own, maybe older, copy).
    pub certificate_present: bool,
}

/// Every domain and challenge answer at one generation.
#[derive(Clone, Debug, Default)]
pub struct AcmeState {
    pub generation: u64,
    pub domains: Vec<DomainRecord>,
    /// `(token, key authorization)`.
    pub challenges: Vec<(String, String)>,
}

const SELECT_DOMAINS: &str = "SELECT name, status, created_at, certificate_id, not_after, \
    renews_at, error, retry_at, failures, orders, lease_owner, lease_until, \
    (SELECT COUNT(*) FROM certificates c WHERE c.id = domains.certificate_id) AS present \
    FROM domains";

impl Store {
    /// Every domain and challenge answer, read in one transaction.
    pub async fn acme_state(&self) -> Result<AcmeState, StoreError> {
        let mut tx = self.pool.begin().await?;
        let generation = counter(&mut tx, "acme_generation").await?;
        let rows = sqlx::query(&format!("{SELECT_DOMAINS} ORDER BY name"))
            .fetch_all(&mut *tx)
            .await?;
        let challenges = sqlx::query("SELECT token, key_authorization FROM acme_challenges")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(AcmeState {
            generation,
            domains: rows.iter().map(domain).collect::<Result<_, _>>()?,
            challenges: challenges
                .iter()
                .map(|row| Ok((row.try_get("token")?, row.try_get("key_authorization")?)))
                .collect::<Result<_, sqlx::Error>>()?,
        })
    }

    /// The committed ACME generation.
    pub async fn acme_generation(&self) -> Result<u64, StoreError> {
        self.counter("acme_generation").await
    }

    /// One domain.
    pub async fn domain(&self, name: &str) -> Result<DomainRecord, StoreError> {
        let row = sqlx::query(&format!("{SELECT_DOMAINS} WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::DomainNotFound(name.to_owned()))?;
        domain(&row)
    }

    /// Manage `name` (normalized by the caller): `pending`, ordered next.
    pub async fn add_domain(&self, name: &str) -> Result<DomainRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let created_at =
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let inserted = sqlx::query(
            "INSERT INTO domains (name, status, created_at) VALUES ($1, 'pending', $2)",
        )
        .bind(name)
        .bind(&created_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::DomainExists(name.to_owned()))
            }
            other => other?,
        };
        self.acme_changed(&mut tx).await?;
        tx.commit().await?;
        self.domain(name).await
    }

    /// Stop managing `name`: its challenges and its ACME certificate go too.
    pub async fn delete_domain(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let certificate: Option<Option<i64>> =
            sqlx::query_scalar("SELECT certificate_id FROM domains WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(certificate) = certificate else {
            return Err(StoreError::DomainNotFound(name.to_owned()));
        };
        for statement in [
            "DELETE FROM domains WHERE name = $1",
            "DELETE FROM acme_challenges WHERE domain = $1",
        ] {
            sqlx::query(statement).bind(name).execute(&mut *tx).await?;
        }
        if let Some(id) = certificate {
            self.remove_certificate(&mut tx, id).await?;
        }
        self.acme_changed(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Take the lease on ordering `name` for `owner` for `seconds`, unless
    /// another node holds a lease that has not run out. Counts the order it
    /// starts. Times are the database's clock, so nodes whose clocks differ
    /// still agree on when a lease runs out.
    pub async fn take_lease(
        &self,
        name: &str,
        owner: &str,
        seconds: i64,
    ) -> Result<bool, StoreError> {
        let now = self.database_now().await?;
        let taken = sqlx::query(
            "UPDATE domains SET lease_owner = $1, lease_until = $2, orders = orders + 1 \
             WHERE name = $3 AND (lease_until IS NULL OR lease_until < $4 OR lease_owner = $1)",
        )
        .bind(owner)
        .bind(now + seconds)
        .bind(name)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Extend `owner`'s lease on `name` to `seconds` from now (database
    /// clock); `false` if `owner` no longer holds it.
    pub async fn extend_lease(
        &self,
        name: &str,
        owner: &str,
        seconds: i64,
    ) -> Result<bool, StoreError> {
        let now = self.database_now().await?;
        let extended =
            sqlx::query("UPDATE domains SET lease_until = $1 WHERE name = $2 AND lease_owner = $3")
                .bind(now + seconds)
                .bind(name)
                .bind(owner)
                .execute(&self.pool)
                .await?;
        Ok(extended.rows_affected() == 1)
    }

    /// The database's clock, in Unix seconds.
    async fn database_now(&self) -> Result<i64, StoreError> {
        let query = match self.postgres_url() {
            Some(_) => "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS BIGINT)",
            None => "SELECT CAST(strftime('%s', 'now') AS INTEGER)",
        };
        Ok(sqlx::query_scalar(query).fetch_one(&self.pool).await?)
    }

    /// Publish the answer to an HTTP-01 challenge for `domain`.
    pub async fn add_challenge(
        &self,
        token: &str,
        key_authorization: &str,
        domain: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM acme_challenges WHERE token = $1")
            .bind(token)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO acme_challenges (token, key_authorization, domain, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token)
        .bind(key_authorization)
        .bind(domain)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        self.acme_changed(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// An order for `name` succeeded: store its certificate (replacing the
    /// domain's previous one in the same transaction, so a certificate
    /// always serves), mark the domain valid and release the lease. The
    /// new certificate's id.
    pub async fn domain_issued(
        &self,
        name: &str,
        owner: &str,
        (chain_pem, key_pem): (&str, &str),
        not_after: i64,
        renews_at: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let previous: Option<Option<i64>> =
            sqlx::query_scalar("SELECT certificate_id FROM domains WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(previous) = previous else {
            // Deleted while ordering: keep nothing, not even its challenges.
            self.finish_order(tx, name).await?;
            return Err(StoreError::DomainNotFound(name.to_owned()));
        };
        let id = self
            .insert_certificate(&mut tx, chain_pem, key_pem, CertSource::Acme)
            .await?;
        if let Some(previous) = previous {
            self.remove_certificate(&mut tx, previous).await?;
        }
        let updated = sqlx::query(
            "UPDATE domains SET status = 'valid', certificate_id = $1, not_after = $2, \
             renews_at = $3, error = NULL, retry_at = NULL, failures = 0, \
             lease_owner = NULL, lease_until = NULL \
             WHERE name = $4 AND lease_owner = $5",
        )
        .bind(id)
        .bind(not_after)
        .bind(renews_at)
        .bind(name)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            // Another node holds the lease now, or the domain was deleted
            // and added again: keep its state (the transaction, this
            // certificate included, rolls back).
            return Err(StoreError::LeaseLost(name.to_owned()));
        }
        self.finish_order(tx, name).await?;
        Ok(id)
    }

    /// An order for `name` failed: say why and when the next one starts
    /// (`failed` only if no certificate serves), release the lease.
    pub async fn domain_failed(
        &self,
        name: &str,
        owner: &str,
        error: &str,
        retry_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE domains SET status = CASE WHEN certificate_id IS NULL THEN 'failed' \
             ELSE status END, error = $1, retry_at = $2, failures = failures + 1, \
             lease_owner = NULL, lease_until = NULL \
             WHERE name = $3 AND lease_owner = $4",
        )
        .bind(error)
        .bind(retry_at)
        .bind(name)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            // Another node holds the lease now, or the domain was deleted
            // and added again: leave its challenges alone.
            return Err(StoreError::LeaseLost(name.to_owned()));
        }
        self.finish_order(tx, name).await
    }

    /// Whether this node may store private keys: it has a storage key, or
    /// no stored key is sealed (else it would store one unsealed).
    pub async fn can_store_keys(&self) -> Result<bool, StoreError> {
        if self.sealer.is_some() {
            return Ok(true);
        }
        let sealed: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM certificates WHERE key_pem LIKE 'sealed:%'")
                .fetch_one(&self.pool)
                .await?;
        Ok(sealed == 0)
    }

    /// The managed domain whose certificate is `id`, if any.
    pub async fn domain_of_certificate(&self, id: i64) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT name FROM domains WHERE certificate_id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// How many domains are managed (a node with ACME off warns about them).
    pub async fn domain_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM domains")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The account key (PKCS#8 DER, hex) for `directory`: the stored
    /// one, else `fresh` (stored now). Every node ends up with the first
    /// key stored, so every node uses one account.
    pub async fn acme_account_key(
        &self,
        directory: &str,
        fresh: &str,
    ) -> Result<String, StoreError> {
        let created_at =
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let sealed = seal::store(self.sealer.as_deref(), ACCOUNT_KEY_AAD, fresh);
        let inserted = sqlx::query(
            "INSERT INTO acme_accounts (directory, key_pkcs8, created_at) VALUES ($1, $2, $3)",
        )
        .bind(directory)
        .bind(sealed)
        .bind(created_at)
        .execute(&self.pool)
        .await;
        match inserted {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
            other => {
                other?;
            }
        }
        let stored: String =
            sqlx::query_scalar("SELECT key_pkcs8 FROM acme_accounts WHERE directory = $1")
                .bind(directory)
                .fetch_one(&self.pool)
                .await?;
        seal::open(self.sealer.as_deref(), ACCOUNT_KEY_AAD, &stored).map_err(|e| {
            StoreError::Invalid(format!("the stored ACME account key cannot be opened: {e}"))
        })
    }

    /// The end of an order's write: its challenges go, the change is
    /// announced, the transaction commits.
    async fn finish_order(
        &self,
        mut tx: Transaction<'static, Any>,
        name: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM acme_challenges WHERE domain = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        self.acme_changed(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn acme_changed(&self, tx: &mut Transaction<'static, Any>) -> Result<(), StoreError> {
        let generation = bump(tx, "acme_generation").await?;
        self.notify(tx, ACME_CHANNEL, generation).await
    }
}

fn domain(row: &sqlx::any::AnyRow) -> Result<DomainRecord, StoreError> {
    Ok(DomainRecord {
        name: row.try_get("name")?,
        status: DomainStatus::parse(&row.try_get::<String, _>("status")?)?,
        created_at: row.try_get("created_at")?,
        certificate_id: row.try_get("certificate_id")?,
        not_after: row.try_get("not_after")?,
        renews_at: row.try_get("renews_at")?,
        error: row.try_get("error")?,
        retry_at: row.try_get("retry_at")?,
        failures: row.try_get("failures")?,
        orders: row.try_get("orders")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row.try_get("lease_until")?,
        certificate_present: row.try_get::<i64, _>("present")? > 0,
    })
}
