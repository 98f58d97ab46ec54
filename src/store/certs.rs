//! Certificates in the store: inserted and deleted, never changed; every
//! write bumps `cert_generation` (and notifies the other nodes on
//! PostgreSQL, on [`CERT_CHANNEL`], like membership changes).

use sqlx::{Any, Row, Transaction};

use super::seal::{self, SealError};
use super::sql::{bump, counter};
use super::{Store, StoreError};

/// The PostgreSQL channel that carries new certificate generations.
pub const CERT_CHANNEL: &str = "switchyard_certificates";

/// Who put a certificate in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CertSource {
    Uploaded,
    Acme,
}

impl CertSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CertSource::Uploaded => "uploaded",
            CertSource::Acme => "acme",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "uploaded" => Ok(CertSource::Uploaded),
            "acme" => Ok(CertSource::Acme),
            other => Err(StoreError::Invalid(format!(
                "unknown certificate source {other:?}"
            ))),
        }
    }
}

/// One row of `certificates`, its key opened.
#[derive(Clone)]
pub struct CertificateRecord {
    pub id: i64,
    pub chain_pem: String,
    /// The PEM key, or why this node cannot read it.
    pub key_pem: Result<String, SealError>,
    pub source: CertSource,
    /// RFC 3339.
    pub created_at: String,
}

impl std::fmt::Debug for CertificateRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateRecord")
            .field("id", &self.id)
            .field("source", &self.source)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// Every certificate at one generation, oldest first.
#[derive(Clone, Debug)]
pub struct StoredCertificates {
    pub generation: u64,
    pub certificates: Vec<CertificateRecord>,
}

impl Store {
    /// Every certificate, oldest first, read in one transaction.
    pub async fn certificates(&self) -> Result<StoredCertificates, StoreError> {
        let mut tx = self.pool.begin().await?;
        let generation = counter(&mut tx, "cert_generation").await?;
        let rows = sqlx::query(
            "SELECT id, chain_pem, key_pem, source, created_at FROM certificates ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let certificates = rows
            .iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                let stored: String = row.try_get("key_pem")?;
                Ok(CertificateRecord {
                    id,
                    chain_pem: row.try_get("chain_pem")?,
                    key_pem: seal::open(self.sealer.as_deref(), id, &stored),
                    source: CertSource::parse(&row.try_get::<String, _>("source")?)?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(StoredCertificates {
            generation,
            certificates,
        })
    }

    /// The committed certificate generation.
    pub async fn certificate_generation(&self) -> Result<u64, StoreError> {
        self.counter("cert_generation").await
    }

    /// Store a certificate (already checked by the caller); its key sealed
    /// if a storage key is configured. Returns its id and everything stored.
    pub async fn add_certificate(
        &self,
        chain_pem: &str,
        key_pem: &str,
        source: CertSource,
    ) -> Result<(i64, StoredCertificates), StoreError> {
        let mut tx = self.pool.begin().await?;
        let id = self
            .insert_certificate(&mut tx, chain_pem, key_pem, source)
            .await?;
        tx.commit().await?;
        Ok((id, self.certificates().await?))
    }

    /// Insert a certificate inside `tx` (and notify at its commit); its id.
    pub(super) async fn insert_certificate(
        &self,
        tx: &mut Transaction<'static, Any>,
        chain_pem: &str,
        key_pem: &str,
        source: CertSource,
    ) -> Result<i64, StoreError> {
        if self.sealer.is_none() {
            let sealed: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM certificates WHERE key_pem LIKE 'sealed:%'",
            )
            .fetch_one(&mut **tx)
            .await?;
            if sealed > 0 {
                return Err(StoreError::WouldStoreUnsealed);
            }
        }
        let generation = bump(tx, "cert_generation").await?;
        let id = bump(tx, "next_cert_id").await?;
        let created_at =
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        sqlx::query(
            "INSERT INTO certificates (id, chain_pem, key_pem, source, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(chain_pem)
        .bind(seal::store(self.sealer.as_deref(), id, key_pem))
        .bind(source.as_str())
        .bind(created_at)
        .execute(&mut **tx)
        .await?;
        self.notify(tx, CERT_CHANNEL, generation).await?;
        Ok(id)
    }

    /// Delete certificate `id` inside `tx` (and notify at its commit);
    /// whether it existed.
    pub(super) async fn remove_certificate(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: i64,
    ) -> Result<bool, StoreError> {
        let generation = bump(tx, "cert_generation").await?;
        let deleted = sqlx::query("DELETE FROM certificates WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        self.notify(tx, CERT_CHANNEL, generation).await?;
        Ok(deleted.rows_affected() > 0)
    }

    /// Delete certificate `id`.
    pub async fn delete_certificate(&self, id: i64) -> Result<StoredCertificates, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !self.remove_certificate(&mut tx, id).await? {
            return Err(StoreError::CertificateNotFound(id));
        }
        tx.commit().await?;
        self.certificates().await
    }
}
