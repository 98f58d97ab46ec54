//! An uploaded certificate: read (PEM chain and key), checked, and
//! described (domains, issuer, validity, warnings).
//!
//! Refused: unreadable PEM, no key, an encrypted key or a key that does
//! not sign for the certificate, a key in the certificate field (it would
//! be stored unsealed), a chain of more than [`MAX_CHAIN`] certificates, an
//! expired certificate or one not valid yet, one that names no domain.
//! Accepted with a warning, in words for the person who uploaded it:
//! a chain with a gap or only the site's own certificate (clients without
//! the intermediate fail), a SHA-1 signature anywhere in the chain
//! (browsers refuse it), a certificate not valid yet.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::names::CertName;

/// Why an upload is refused (each a `400` with this message).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    #[error("no certificate found: the certificate must be PEM (-----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    #[error("unreadable PEM: {0}")]
    BadPem(String),
    #[error("no private key found: the key must be PEM (-----BEGIN PRIVATE KEY-----, RSA or EC)")]
    NoKey,
    #[error(
        "the private key cannot be used: use RSA of 2048 bits or more, ECDSA (P-256, P-384, P-521) or Ed25519"
    )]
    UnsupportedKey,
    #[error("the private key is encrypted: decrypt it first (openssl pkey -in key.pem -out plain-key.pem)")]
    EncryptedKey,
    #[error("the certificate field contains a private key: put only certificates there, and the key in private_key")]
    KeyInChain,
    #[error("the chain holds {0} certificates; at most {MAX_CHAIN} are accepted (the site's certificate and its intermediates, not a CA bundle)")]
    ChainTooLong(usize),
    #[error("the first certificate is a CA's, not the site's: put the site's certificate first, then its intermediates")]
    CaFirst,
    #[error("the certificate is not valid until {0}: upload it then")]
    NotYetValid(String),
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    #[error("certificate {index} of the chain is not a valid X.509 certificate: {reason}")]
    BadCertificate { index: usize, reason: String },
    #[error("the certificate expired on {0}")]
    Expired(String),
    #[error("the certificate names no domain clients can match (no usable DNS name in its subjectAltName)")]
    NoNames,
}

/// A certificate ready to serve, with what the API shows about it.
#[derive(Debug, Clone)]
pub struct ParsedCertificate {
    pub certified: Arc<CertifiedKey>,
    pub names: Vec<CertName>,
    pub issuer: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub warnings: Vec<String>,
}

/// The most certificates a chain may hold (real chains have 2 to 4).
pub const MAX_CHAIN: usize = 10;
/// How far in the future an upload's `not_before` may be (clock skew).
const SKEW: i64 = 300;

/// Signature algorithms that use SHA-1 (RSA, ECDSA, DSA).
const SHA1_SIGNATURES: [&str; 3] = [
    "1.2.840.113549.1.1.5",
    "1.2.840.10045.4.1",
    "1.2.840.10040.4.3",
];

/// Read and check a PEM chain (the site's certificate first) and its key,
/// as of `now` (Unix seconds): an upload.
pub fn parse(chain_pem: &str, key_pem: &str, now: i64) -> Result<ParsedCertificate, CertError> {
    read(chain_pem, key_pem, now, Expiry::Refuse)
}

/// Read a stored certificate: one that expired since it was stored still
/// loads (and is still served, with a warning in the list: refusing it
/// would only turn the client's expiry error into a handshake failure).
pub fn load_stored(
    chain_pem: &str,
    key_pem: &str,
    now: i64,
) -> Result<ParsedCertificate, CertError> {
    read(chain_pem, key_pem, now, Expiry::Warn)
}

#[derive(PartialEq)]
enum Expiry {
    Refuse,
    Warn,
}

fn read(
    chain_pem: &str,
    key_pem: &str,
    now: i64,
    expiry: Expiry,
) -> Result<ParsedCertificate, CertError> {
    // PEM pasted from an indented file (YAML, a config) still reads.
    let (chain_pem, key_pem) = (&dedent(chain_pem), &dedent(key_pem));
    // A key pasted into the certificate field would be stored unsealed.
    if chain_pem.contains("PRIVATE KEY-----") {
        return Err(CertError::KeyInChain);
    }
    if key_pem.contains("ENCRYPTED PRIVATE KEY-----") || key_pem.contains("Proc-Type: 4,ENCRYPTED")
    {
        return Err(CertError::EncryptedKey);
    }
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::BadPem(e.to_string()))?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate);
    }
    if chain.len() > MAX_CHAIN {
        return Err(CertError::ChainTooLong(chain.len()));
    }
    let key = match PrivateKeyDer::from_pem_slice(key_pem.as_bytes()) {
        Ok(key) => key,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => return Err(CertError::NoKey),
        Err(e) => return Err(CertError::BadPem(e.to_string())),
    };
    let parsed: Vec<X509Certificate<'_>> = chain
        .iter()
        .enumerate()
        .map(|(index, der)| {
            X509Certificate::from_der(der)
                .map(|(_, cert)| cert)
                .map_err(|e| CertError::BadCertificate {
                    index: index + 1,
                    reason: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    let leaf = &parsed[0];
    let not_before = leaf.validity().not_before.timestamp();
    let not_after = leaf.validity().not_after.timestamp();
    let expired = not_after < now;
    if expiry == Expiry::Refuse {
        if expired {
            return Err(CertError::Expired(leaf.validity().not_after.to_string()));
        }
        if not_before > now + SKEW {
            return Err(CertError::NotYetValid(
                leaf.validity().not_before.to_string(),
            ));
        }
    }
    let (names, ignored) = names_of(leaf);
    if names.is_empty() {
        let ca = leaf
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|constraints| constraints.value.ca);
        return Err(if ca {
            CertError::CaFirst
        } else {
            CertError::NoNames
        });
    }
    let signing_key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|_| CertError::UnsupportedKey)?;
    let certified = CertifiedKey::new(chain.clone(), signing_key);
    certified.keys_match().map_err(|_| CertError::KeyMismatch)?;
    let mut warnings = chain_warnings(&parsed);
    warnings.dedup();
    if !ignored.is_empty() {
        warnings.push(format!(
            "the certificate also names {}, which clients never match (a wildcard over a \
             top-level domain, a port, a trailing dot or a name not in ASCII): ignored",
            ignored.join(", ")
        ));
    }
    Ok(ParsedCertificate {
        certified: Arc::new(certified),
        names,
        issuer: leaf.issuer().to_string(),
        not_before,
        not_after,
        warnings,
    })
}

/// What clients do with a certificate valid from `not_before` to
/// `not_after` (Unix seconds) at `now`: nothing to say, or a warning
/// (computed when shown, so it is never stale).
pub fn validity_warnings(not_before: i64, not_after: i64, now: i64) -> Vec<String> {
    let at = |unix: i64| {
        let time =
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0).unsigned_abs());
        humantime::format_rfc3339_seconds(time).to_string()
    };
    if not_after < now {
        vec![format!(
            "the certificate expired on {}: clients refuse it. Upload a renewed one",
            at(not_after)
        )]
    } else if not_before > now {
        vec![format!(
            "the certificate is not valid until {}: clients refuse it until then",
            at(not_before)
        )]
    } else {
        Vec::new()
    }
}

/// Every line without its leading and trailing blanks.
fn dedent(pem: &str) -> String {
    pem.lines().map(str::trim).collect::<Vec<_>>().join("\n")
}

/// What a stored certificate that cannot be served shows (its key cannot
/// be opened here): the chain's own facts.
#[derive(Debug, Clone)]
pub struct Described {
    pub names: Vec<CertName>,
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
}

/// The facts of a PEM chain's first certificate, without its key.
pub fn describe(chain_pem: &str) -> Option<Described> {
    let first = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()?
        .ok()?;
    let (_, leaf) = X509Certificate::from_der(&first).ok()?;
    Some(Described {
        names: names_of(&leaf).0,
        issuer: leaf.issuer().to_string(),
        not_before: leaf.validity().not_before.timestamp(),
        not_after: leaf.validity().not_after.timestamp(),
    })
}

/// The DNS names of the leaf's subjectAltName that a client can match, and
/// those it cannot (quoted, for a warning).
fn names_of(leaf: &X509Certificate<'_>) -> (Vec<CertName>, Vec<String>) {
    let mut names = Vec::new();
    let mut ignored = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                match CertName::parse(dns) {
                    Some(name) if names.contains(&name) => {}
                    Some(name) => names.push(name),
                    None => ignored.push(format!("{dns:?}")),
                }
            }
        }
    }
    (names, ignored)
}

fn chain_warnings(chain: &[X509Certificate<'_>]) -> Vec<String> {
    let mut warnings = Vec::new();
    for cert in chain {
        let self_signed = cert.subject() == cert.issuer();
        let algorithm = cert.signature_algorithm.algorithm.to_id_string();
        // A root's own signature is never checked by clients.
        if !self_signed && SHA1_SIGNATURES.contains(&algorithm.as_str()) {
            warnings.push(format!(
                "\"{}\" is signed with SHA-1, which browsers no longer accept: visitors \
                 will see a security error. Get a certificate signed with SHA-256",
                cert.subject()
            ));
        }
    }
    for pair in chain.windows(2) {
        if pair[0].issuer() != pair[1].subject() {
            warnings.push(format!(
                "the chain has a gap or is out of order: \"{}\" was issued by \"{}\", but the \
                 next certificate is \"{}\". Upload the site's certificate first, then each \
                 intermediate in order",
                pair[0].subject(),
                pair[0].issuer(),
                pair[1].subject()
            ));
        }
    }
    let leaf = &chain[0];
    if chain.len() == 1 && leaf.subject() != leaf.issuer() {
        warnings.push(format!(
            "the chain holds only the site's certificate: the intermediate certificate of \
             \"{}\" is missing. Browsers may cope, but phones, curl and other servers that \
             do not already have it will refuse the connection. Append the intermediate \
             (your CA's \"chain\" or \"fullchain\" file)",
            leaf.issuer()
        ));
    }
    warnings
}
