//! Whether each backend is fit for traffic, from active checks (a periodic
//! `GET`, see [`checker`]) and passive observation (consecutive failures of
//! real requests take a backend out for a cool-down).
//!
//! The state is per backend, in atomics behind a `DashMap` keyed by address;
//! it never touches the routing snapshot. The proxy asks
//! [`Health::is_down`] for its first choice and, if it is down, takes the
//! key's next candidate in hash order; when the backend is back, its keys
//! return by themselves.

pub mod checker;

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use dashmap::DashMap;

use crate::config::HealthConfig;
use crate::routing::{BackendAddr, Snapshot};

/// What the checks say about a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthState {
    /// No active check has finished (and nothing passive happened).
    Unknown,
    Up,
    Down,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unknown => "unknown",
            HealthState::Up => "up",
            HealthState::Down => "down",
        }
    }
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// One backend's health counters.
#[derive(Debug, Default)]
struct BackendHealth {
    /// Active verdict: `UNKNOWN`, `UP` or `DOWN`.
    active: AtomicU8,
    passes: AtomicU32,
    fails: AtomicU32,
    /// Consecutive passive failures.
    passive_failures: AtomicU32,
    /// Out of traffic until this many ms after `Health::epoch` (0: not out).
    ejected_until_ms: AtomicU64,
}

/// Every backend's health, and the settings that judge it.
#[derive(Debug)]
pub struct Health {
    backends: DashMap<BackendAddr, Arc<BackendHealth>>,
    config: ArcSwap<HealthConfig>,
    epoch: Instant,
}

impl Health {
    pub fn new(config: HealthConfig) -> Self {
        Health {
            backends: DashMap::new(),
            config: ArcSwap::from_pointee(config),
            epoch: Instant::now(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> Arc<HealthConfig> {
        self.config.load_full()
    }

    /// Apply new settings (a config reload); counters are kept.
    pub fn set_config(&self, config: HealthConfig) {
        self.config.store(Arc::new(config));
    }

    fn entry(&self, address: &BackendAddr) -> Arc<BackendHealth> {
        if let Some(h) = self.backends.get(address) {
            return Arc::clone(&h);
        }
        Arc::clone(&self.backends.entry(address.clone()).or_default())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether `address` should get no new requests now.
    pub fn is_down(&self, address: &BackendAddr) -> bool {
        let Some(h) = self.backends.get(address) else {
            return false;
        };
        h.active.load(Relaxed) == DOWN || self.now_ms() < h.ejected_until_ms.load(Relaxed)
    }

    /// The verdict shown to operators.
    pub fn state(&self, address: &BackendAddr) -> HealthState {
        match self.backends.get(address) {
            None => HealthState::Unknown,
            Some(_) if self.is_down(address) => HealthState::Down,
            Some(h) => match h.active.load(Relaxed) {
                UP => HealthState::Up,
                _ if self.config.load().active.is_some() => HealthState::Unknown,
                // Without active checks, "not taken out" is all there is to know.
                _ => HealthState::Up,
            },
        }
    }

    /// An active check passed; returns whether the backend came back into
    /// traffic (from active down, or early from a passive cool-down).
    pub fn check_passed(&self, address: &BackendAddr, threshold: u32) -> bool {
        let h = self.entry(address);
        h.fails.store(0, Relaxed);
        let passes = h.passes.fetch_add(1, Relaxed).saturating_add(1);
        let before = h.active.load(Relaxed);
        // The first verdict needs one pass; coming back from down needs `threshold`.
        // Enough passes since a passive ejection end its cool-down early.
        let ejected = self.now_ms() < h.ejected_until_ms.load(Relaxed);
        if ejected && passes >= threshold {
            h.ejected_until_ms.store(0, Relaxed);
            h.passive_failures.store(0, Relaxed);
        }
        if before == UNKNOWN || (before == DOWN && passes >= threshold) {
            h.active.store(UP, Relaxed);
            return before == DOWN || ejected;
        }
        ejected && passes >= threshold
    }

    /// An active check failed; returns whether the backend just went down.
    pub fn check_failed(&self, address: &BackendAddr, threshold: u32) -> bool {
        let h = self.entry(address);
        h.passes.store(0, Relaxed);
        let fails = h.fails.fetch_add(1, Relaxed).saturating_add(1);
        if fails >= threshold && h.active.swap(DOWN, Relaxed) != DOWN {
            return true;
        }
        false
    }

    /// A real request to `address` succeeded (resets the passive count).
    pub fn request_succeeded(&self, address: &BackendAddr) {
        if let Some(h) = self.backends.get(address) {
            h.passive_failures.store(0, Relaxed);
        }
    }

    /// A real request to `address` failed: could not connect, or the status
    /// is one of `failure_statuses`. Returns whether it took the backend out.
    pub fn request_failed(&self, address: &BackendAddr) -> bool {
        let config = self.config();
        let Some(passive) = &config.passive else {
            return false;
        };
        let h = self.entry(address);
        let failures = h.passive_failures.fetch_add(1, Relaxed).saturating_add(1);
        if failures < passive.failures {
            return false;
        }
        h.passive_failures.store(0, Relaxed);
        // Active checks must pass again from here to end the cool-down early.
        h.passes.store(0, Relaxed);
        let until = self.now_ms() + u64::try_from(passive.cooldown.as_millis()).unwrap_or(u64::MAX);
        h.ejected_until_ms.store(until, Relaxed);
        tracing::warn!(backend = %address, failures, cooldown = ?passive.cooldown,
            "backend taken out of traffic after consecutive failures");
        true
    }

    /// Whether `status` from a backend counts as a passive failure.
    pub fn is_failure_status(&self, status: u16) -> bool {
        self.config
            .load()
            .passive
            .as_ref()
            .is_some_and(|p| p.failure_statuses.contains(&status))
    }

    /// Forget backends that left the membership.
    pub fn retain(&self, snapshot: &Snapshot) {
        let current: std::collections::HashSet<&BackendAddr> =
            snapshot.backends().iter().map(|b| &b.address).collect();
        self.backends.retain(|address, _| current.contains(address));
    }
}
