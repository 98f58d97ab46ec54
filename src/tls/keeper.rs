//! The stored certificates as this node serves them: each read and checked
//! once (a certificate row never changes), turned into the snapshot the
//! handshakes read, and kept for the admin API's list.
//!
//! Like the routing snapshot, the certificate snapshot only moves forward:
//! a store read older than the one applied is ignored (the admin API's own
//! writes and the follower's notifications can finish in any order).

use std::sync::{Arc, Mutex};

use super::certificate::{describe, load_stored, Described, ParsedCertificate};
use super::snapshot::{CertSnapshot, Certificates, Served, Sessions};
use crate::routing::RoutingKey;
use crate::store::{CertSource, CertificateRecord, StoredCertificates};

/// One stored certificate as this node has it.
#[derive(Debug)]
pub struct Entry {
    pub id: i64,
    pub source: CertSource,
    pub created_at: String,
    /// Served, or why this node cannot serve it (an unreadable key).
    pub loaded: Result<Loaded, String>,
    /// The chain's facts when it cannot be served (for the list).
    pub described: Option<Described>,
}

/// A stored certificate this node serves.
#[derive(Debug)]
pub struct Loaded {
    pub parsed: ParsedCertificate,
    pub served: Arc<Served>,
}

#[derive(Debug, Default)]
struct State {
    /// The store generation applied (`None`: nothing applied yet).
    generation: Option<u64>,
    default: Option<RoutingKey>,
    entries: Vec<Arc<Entry>>,
    /// The earliest expiry still ahead at the last publish: past it, the
    /// snapshot is rebuilt (an expired certificate stops winning its names).
    next_expiry: Option<i64>,
}

/// Applies store reads and the default certificate to the live snapshot.
#[derive(Debug)]
pub struct Keeper {
    certificates: Arc<Certificates>,
    sessions: Sessions,
    state: Mutex<State>,
}

impl Keeper {
    /// A keeper with no certificate yet, serving `default` (a domain) to
    /// clients without SNI once a certificate covers it.
    pub fn new(sessions: Sessions, default: Option<RoutingKey>) -> Self {
        Keeper {
            certificates: Arc::default(),
            sessions,
            state: Mutex::new(State {
                default,
                ..State::default()
            }),
        }
    }

    /// The snapshot handshakes read.
    pub fn certificates(&self) -> &Arc<Certificates> {
        &self.certificates
    }

    /// Apply a store read unless a newer one was applied; returns whether
    /// it was. Certificates already loaded are reused, new ones are read
    /// and checked (as of now).
    pub fn apply(&self, stored: StoredCertificates) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.generation.is_some_and(|g| g >= stored.generation) {
            return false;
        }
        let now = unix_now();
        let entries: Vec<Arc<Entry>> = stored
            .certificates
            .into_iter()
            .map(
                |record| match state.entries.iter().find(|e| e.id == record.id) {
                    Some(entry) => Arc::clone(entry),
                    None => Arc::new(self.load(record, now)),
                },
            )
            .collect();
        state.entries = entries;
        state.generation = Some(stored.generation);
        self.publish(&mut state);
        true
    }

    /// A new default certificate domain (a config reload).
    pub fn set_default(&self, default: Option<RoutingKey>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.default != default {
            state.default = default;
            self.publish(&mut state);
        }
    }

    /// The generation applied (0 before the first read).
    pub fn generation(&self) -> u64 {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.generation.unwrap_or(0)
    }

    /// Every stored certificate, oldest first.
    pub fn entries(&self) -> Vec<Arc<Entry>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.entries.clone()
    }

    fn load(&self, record: CertificateRecord, now: i64) -> Entry {
        let loaded = record
            .key_pem
            .map_err(|e| e.to_string())
            .and_then(|key| load_stored(&record.chain_pem, &key, now).map_err(|e| e.to_string()))
            .and_then(|parsed| {
                let served = Served::new(record.id.to_string(), &parsed, &self.sessions)
                    .map_err(|e| format!("cannot serve it: {e}"))?;
                Ok(Loaded {
                    parsed,
                    served: Arc::new(served),
                })
            });
        let described = loaded
            .is_err()
            .then(|| describe(&record.chain_pem))
            .flatten();
        if let Err(why) = &loaded {
            tracing::error!(id = record.id, %why, "a stored certificate cannot be served");
        }
        Entry {
            id: record.id,
            source: record.source,
            created_at: record.created_at,
            loaded,
            described,
        }
    }

    /// Rebuild the snapshot if a certificate expired since it was built.
    pub fn refresh(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.next_expiry.is_some_and(|at| at < unix_now()) {
            self.publish(&mut state);
        }
    }

    fn publish(&self, state: &mut State) {
        let now = unix_now();
        state.next_expiry = state
            .entries
            .iter()
            .filter_map(|e| e.loaded.as_ref().ok())
            .map(|l| l.served.not_after)
            .filter(|&at| at >= now)
            .min();
        let served = state
            .entries
            .iter()
            .filter_map(|e| e.loaded.as_ref().ok())
            .map(|l| Arc::clone(&l.served))
            .collect();
        self.certificates
            .publish(CertSnapshot::of(served, state.default.as_ref()));
    }
}

/// Call [`Keeper::refresh`] every `every` until `shutdown`.
pub fn spawn_refresher(
    keeper: Arc<Keeper>,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => keeper.refresh(),
                () = shutdown.cancelled() => return,
            }
        }
    })
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
