//! HTTPS: certificates and how a TLS connection gets one.
//!
//! - [`certificate`]: an uploaded PEM chain and key, read and checked
//!   (refusals and warnings in words for whoever uploaded it).
//! - [`names`]: the names a certificate covers (normalized like routing
//!   keys; wildcards cover one label) and the index that finds the
//!   certificate for a name.
//! - [`snapshot`]: the certificates in force, swapped whole; each with its
//!   own handshake config, sharing session tickets and cache.
//! - [`keeper`]: the stored certificates as this node serves them (read
//!   once each, published as snapshots; the admin API lists them).
//! - [`accept`]: one connection's handshake: SNI read from the ClientHello
//!   picks the certificate, `unrecognized_name` when none fits.
//!
//! Crypto provider: aws-lc-rs (rustls's default). Its RSA and ECDSA
//! signing, which every full handshake does, is close to OpenSSL's, which
//! is what nginx and HAProxy use; ring is slower at RSA. It builds from C
//! sources with the C compiler a fresh Debian needs anyway (`gcc`; no
//! cmake, Go or NASM on x86-64 Linux).

pub mod accept;
pub mod certificate;
pub mod keeper;
pub mod names;
pub mod snapshot;

pub use accept::{handshake, Established, HandshakeError, OnDemand};
pub use certificate::{load_stored, parse, validity_warnings, CertError, ParsedCertificate};
pub use keeper::{unix_now, Entry, Keeper, Loaded};
pub use names::{CertName, NameIndex};
pub use snapshot::{CertSnapshot, Certificates, Served, Sessions};
