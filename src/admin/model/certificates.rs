//! Certificates: an upload, and what is shown of a stored one (never its key).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::CertSource;
use crate::tls::Entry;

/// `POST /api/v1/certificates`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCertificate {
    /// PEM: the site's certificate first, then its intermediates.
    pub certificate: String,
    /// PEM private key (PKCS#8, RSA or EC). Stored (sealed when a storage
    /// key is configured), never returned.
    pub private_key: String,
}

impl std::fmt::Debug for NewCertificate {
    /// Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCertificate")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

/// A stored certificate.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    #[schema(example = "3")]
    pub id: String,
    /// The names it covers (`*.example.com` covers one label).
    pub domains: Vec<String>,
    pub issuer: String,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    /// Whole days until `not_after` (negative once expired).
    pub days_left: i64,
    pub source: CertSource,
    /// RFC 3339.
    pub created_at: String,
    /// Problems clients may have with it, in words.
    pub warnings: Vec<String>,
    /// Whether this node serves it (`false`: see `problem`).
    pub served: bool,
    /// Why this node cannot serve it (e.g. its key is sealed with another storage key).
    pub problem: Option<String>,
}

/// Every stored certificate, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateList {
    pub certificates: Vec<CertificateView>,
}

impl CertificateView {
    /// What `entry` shows, as of `now` (Unix seconds).
    pub fn new(entry: &Entry, now: i64) -> Self {
        let mut view = CertificateView {
            id: entry.id.to_string(),
            domains: Vec::new(),
            issuer: String::new(),
            not_before: String::new(),
            not_after: String::new(),
            days_left: 0,
            source: entry.source,
            created_at: entry.created_at.clone(),
            warnings: Vec::new(),
            served: entry.loaded.is_ok(),
            problem: entry.loaded.as_ref().err().cloned(),
        };
        if let Ok(loaded) = &entry.loaded {
            let parsed = &loaded.parsed;
            view.domains = parsed.names.iter().map(ToString::to_string).collect();
            view.issuer = parsed.issuer.clone();
            view.not_before = unix_rfc3339(parsed.not_before);
            view.not_after = unix_rfc3339(parsed.not_after);
            view.days_left = (parsed.not_after - now).div_euclid(86_400);
            view.warnings = crate::tls::validity_warnings(parsed.not_before, parsed.not_after, now);
            view.warnings.extend(parsed.warnings.iter().cloned());
        } else if let Some(described) = &entry.described {
            view.domains = described.names.iter().map(ToString::to_string).collect();
            view.issuer = described.issuer.clone();
            view.not_before = unix_rfc3339(described.not_before);
            view.not_after = unix_rfc3339(described.not_after);
            view.days_left = (described.not_after - now).div_euclid(86_400);
        }
        view
    }
}

/// Unix seconds (never before 1970) as RFC 3339.
pub fn unix_rfc3339(unix: i64) -> String {
    super::rfc3339(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0).unsigned_abs()),
    )
}
