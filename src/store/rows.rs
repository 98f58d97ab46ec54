//! Rows of the membership tables.

use sqlx::any::AnyRow;

use super::{column, parse_address, parse_state, StoreError};
use crate::routing::{BackendAddr, BackendState};

/// One row of `backends`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendRecord {
    pub id: i64,
    pub address: BackendAddr,
    pub weight: u32,
    pub state: BackendState,
    /// RFC 3339.
    pub created_at: String,
}

impl BackendRecord {
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let address = parse_address(&column::<String>(row, "address")?)?;
        let weight: i64 = column(row, "weight")?;
        Ok(BackendRecord {
            id: column(row, "id")?,
            address,
            weight: u32::try_from(weight)
                .map_err(|_| StoreError::Invalid(format!("weight {weight}")))?,
            state: parse_state(&column::<String>(row, "state")?)?,
            created_at: column(row, "created_at")?,
        })
    }
}

/// One row of `changes`: what one generation did to one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRecord {
    pub generation: i64,
    pub at: String,
    /// `created`, `updated`, `deleted` or `replaced`.
    pub action: String,
    pub backend_id: i64,
    pub address: String,
    pub detail: String,
}

impl ChangeRecord {
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(ChangeRecord {
            generation: column(row, "generation")?,
            at: column(row, "at")?,
            action: column(row, "action")?,
            backend_id: column(row, "backend_id")?,
            address: column(row, "address")?,
            detail: column(row, "detail")?,
        })
    }
}
