//! Managed domains: what to add, and what is shown of one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::unix_rfc3339;
use crate::store::{DomainRecord, DomainStatus};

/// `POST /api/v1/domains`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "www.foo.com"}))]
pub struct NewDomain {
    /// A host name (any case, IDNA allowed); normalized like a routing key.
    pub name: String,
}

/// A managed domain and its certificate's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainView {
    #[schema(example = "www.foo.com")]
    pub name: String,
    pub status: DomainStatus,
    /// RFC 3339.
    pub created_at: String,
    /// The certificate in force (`valid`).
    pub certificate_id: Option<String>,
    /// RFC 3339: when that certificate expires.
    pub not_after: Option<String>,
    /// RFC 3339: when it is renewed.
    pub renews_at: Option<String>,
    /// The last order's failure, in words (a failed renewal keeps `valid`).
    pub error: Option<String>,
    /// RFC 3339: when the next order starts after a failure.
    pub retry_at: Option<String>,
    /// Orders started for this domain, by any node.
    pub orders: i64,
}

/// Every managed domain, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainList {
    pub domains: Vec<DomainView>,
}

impl From<DomainRecord> for DomainView {
    fn from(record: DomainRecord) -> Self {
        DomainView {
            name: record.name,
            status: record.status,
            created_at: record.created_at,
            certificate_id: record.certificate_id.map(|id| id.to_string()),
            not_after: record.not_after.map(unix_rfc3339),
            renews_at: record.renews_at.map(unix_rfc3339),
            error: record.error,
            retry_at: record.retry_at.map(unix_rfc3339),
            orders: record.orders,
        }
    }
}
