//! The certificates a TLS listener serves: an immutable snapshot, swapped
//! whole when the store changes (like the routing snapshot), read on every
//! handshake without a lock and never from the database.
//!
//! Each certificate has its own rustls `ServerConfig` (built once, when a
//! snapshot is built), so the handshake knows which certificate it chose
//! before it starts: the name is looked up from the ClientHello's SNI, and
//! the connection keeps the names its certificate covers (a request for
//! any other host gets `421`). All configs share one session-ticket key
//! (rotated by rustls every 6 hours) and one session cache, so a session
//! resumes on any worker thread and with any certificate's config.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{
    ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache,
    StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::certificate::ParsedCertificate;
use super::names::{CertName, NameIndex};
use crate::routing::RoutingKey;

/// Sessions kept for TLS 1.2 resumption by session id (TLS 1.3 uses tickets).
const SESSION_CACHE: usize = 16 * 1024;

/// One certificate as served.
#[derive(Debug)]
pub struct Served {
    /// Its id in the store.
    pub id: String,
    pub names: Vec<CertName>,
    pub not_after: i64,
    /// The handshake's config: this certificate, ALPN `h2` and `http/1.1`.
    pub config: Arc<ServerConfig>,
}

impl Served {
    /// `parsed`, ready to serve as certificate `id`.
    pub fn new(
        id: String,
        parsed: &ParsedCertificate,
        sessions: &Sessions,
    ) -> Result<Self, rustls::Error> {
        Ok(Served {
            config: server_config(parsed, sessions)?,
            id,
            names: parsed.names.clone(),
            not_after: parsed.not_after,
        })
    }

    /// Whether this certificate covers `host` (normalized).
    pub fn covers(&self, host: &RoutingKey) -> bool {
        self.names.iter().any(|name| name.covers(host))
    }
}

/// What every certificate's config shares: the crypto provider, the
/// session-ticket key and the session cache.
#[derive(Debug, Clone)]
pub struct Sessions {
    provider: Arc<CryptoProvider>,
    ticketer: Arc<dyn ProducesTickets>,
    cache: Arc<dyn StoresServerSessions>,
}

impl Sessions {
    /// The crypto provider, a fresh ticket key (rotated by rustls) and an
    /// empty session cache.
    pub fn new() -> Result<Self, rustls::Error> {
        Ok(Sessions {
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            ticketer: rustls::crypto::aws_lc_rs::Ticketer::new()?,
            cache: ServerSessionMemoryCache::new(SESSION_CACHE),
        })
    }
}

/// The certificates in force.
#[derive(Debug, Default)]
pub struct CertSnapshot {
    index: NameIndex<Served>,
    default: Option<Arc<Served>>,
    all: Vec<Arc<Served>>,
}

impl CertSnapshot {
    /// Index `certificates` (oldest first: where two claim a name, the
    /// newer wins); `default_domain` names the certificate for clients that
    /// send no SNI or an unknown name.
    pub fn build(
        certificates: Vec<(String, ParsedCertificate)>,
        default_domain: Option<&RoutingKey>,
        sessions: &Sessions,
    ) -> Result<Self, rustls::Error> {
        let served = certificates
            .into_iter()
            .map(|(id, parsed)| Served::new(id, &parsed, sessions).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::of(served, default_domain))
    }

    /// Index certificates already made ready to serve (oldest first).
    /// Where two claim a name, an unexpired one beats an expired one, then
    /// the newer wins: a stored certificate that expired never hides a
    /// valid one.
    pub fn of(served: Vec<Arc<Served>>, default_domain: Option<&RoutingKey>) -> Self {
        let now = super::unix_now();
        let mut snapshot = CertSnapshot::default();
        let (valid, expired): (Vec<_>, Vec<_>) =
            served.iter().partition(|served| served.not_after >= now);
        for served in expired.into_iter().chain(valid) {
            snapshot.index.insert(&served.names, served);
        }
        snapshot.all = served;
        snapshot.default = default_domain.and_then(|d| snapshot.index.find(d).cloned());
        snapshot
    }

    /// The certificate for a ClientHello's SNI (normalized like a routing
    /// key; exact name, then wildcard), else the default one. `None`: the
    /// handshake fails with `unrecognized_name`.
    pub fn for_sni(&self, sni: Option<&str>) -> Option<&Arc<Served>> {
        self.choose(sni).0
    }

    /// [`CertSnapshot::for_sni`], and whether the SNI named no certificate
    /// (the default one, if any, stands in).
    pub fn choose(&self, sni: Option<&str>) -> (Option<&Arc<Served>>, bool) {
        let named = sni.and_then(|name| self.index.find_raw(name));
        let missed = sni.is_some() && named.is_none();
        (named.or(self.default.as_ref()), missed)
    }

    /// The certificate a request for `host` would get (the UI's "which
    /// certificate would this domain get").
    pub fn for_host(&self, host: &str) -> Option<&Arc<Served>> {
        self.index.find_raw(host)
    }

    /// Every certificate served, oldest first.
    pub fn all(&self) -> &[Arc<Served>] {
        &self.all
    }
}

fn server_config(
    parsed: &ParsedCertificate,
    sessions: &Sessions,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(Arc::clone(&sessions.provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(Arc::clone(&parsed.certified))));
    // `http/1.0` too: a client offering only that must not fail the
    // handshake (it is served as HTTP/1).
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    config.ticketer = Arc::clone(&sessions.ticketer);
    config.session_storage = Arc::clone(&sessions.cache);
    Ok(Arc::new(config))
}

/// The one certificate of a config (chosen before the handshake started).
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// The live certificate snapshot, shared by every listener and worker.
#[derive(Debug)]
pub struct Certificates {
    current: ArcSwap<CertSnapshot>,
    /// Counts publishes (a handshake held for an on-demand certificate
    /// waits on it).
    published: tokio::sync::watch::Sender<u64>,
}

impl Default for Certificates {
    fn default() -> Self {
        Certificates {
            current: ArcSwap::from_pointee(CertSnapshot::default()),
            published: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Certificates {
    /// The snapshot in force (hold it for one handshake).
    pub fn load(&self) -> Arc<CertSnapshot> {
        self.current.load_full()
    }

    /// Replace the snapshot whole.
    pub fn publish(&self, snapshot: CertSnapshot) {
        self.current.store(Arc::new(snapshot));
        self.published.send_modify(|count| *count += 1);
    }

    /// Wakes on every publish after this call.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }
}
