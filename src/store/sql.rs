//! The statements inside the store's write transactions.

use sqlx::{Any, Transaction};

use super::{BackendRecord, StoreError, SELECT_BACKENDS};
use crate::routing::{BackendAddr, BackendState};

pub(super) async fn generation(tx: &mut Transaction<'static, Any>) -> Result<u64, StoreError> {
    counter(tx, "generation").await
}

/// A `meta` counter's value.
pub(super) async fn counter(
    tx: &mut Transaction<'static, Any>,
    key: &str,
) -> Result<u64, StoreError> {
    let value: i64 = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
        .bind(key)
        .fetch_one(&mut **tx)
        .await?;
    u64::try_from(value).map_err(|_| StoreError::Invalid(format!("negative {key} {value}")))
}

/// Increment a `meta` counter; in PostgreSQL the row lock serializes writers.
pub(super) async fn bump(tx: &mut Transaction<'static, Any>, key: &str) -> Result<i64, StoreError> {
    let value: i64 =
        sqlx::query_scalar("UPDATE meta SET value = value + 1 WHERE key = $1 RETURNING value")
            .bind(key)
            .fetch_one(&mut **tx)
            .await?;
    Ok(value)
}

pub(super) async fn insert(
    tx: &mut Transaction<'static, Any>,
    address: &BackendAddr,
    weight: u32,
    state: BackendState,
) -> Result<BackendRecord, StoreError> {
    let id = bump(tx, "next_id").await?;
    let record = BackendRecord {
        id,
        address: address.clone(),
        weight,
        state,
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    };
    let inserted = sqlx::query(
        "INSERT INTO backends (id, address, weight, state, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(record.address.as_str())
    .bind(i64::from(weight))
    .bind(state.as_str())
    .bind(&record.created_at)
    .execute(&mut **tx)
    .await;
    match inserted {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::DuplicateAddress(record.address.to_string()))
        }
        other => other.map(|_| record).map_err(Into::into),
    }
}

pub(super) async fn set_state_and_weight(
    tx: &mut Transaction<'static, Any>,
    record: &BackendRecord,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE backends SET state = $1, weight = $2 WHERE id = $3")
        .bind(record.state.as_str())
        .bind(i64::from(record.weight))
        .bind(record.id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn remove(tx: &mut Transaction<'static, Any>, id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM backends WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn find(
    tx: &mut Transaction<'static, Any>,
    id: i64,
) -> Result<BackendRecord, StoreError> {
    let row = sqlx::query(&format!("{SELECT_BACKENDS} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref()
        .map(BackendRecord::from_row)
        .transpose()?
        .ok_or(StoreError::NotFound(id))
}

pub(super) async fn log(
    tx: &mut Transaction<'static, Any>,
    generation: i64,
    seq: i32,
    action: &str,
    record: &BackendRecord,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO changes (generation, seq, at, action, backend_id, address, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(generation)
    .bind(seq)
    .bind(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string())
    .bind(action)
    .bind(record.id)
    .bind(record.address.as_str())
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
