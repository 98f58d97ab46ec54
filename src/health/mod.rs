//! Whether each backend is fit for traffic, from evidence only: active
//! checks (a periodic `GET`, see [`checker`]) and the outcome of real
//! requests (passive checks).
//!
//! | state | when |
//! | --- | --- |
//! | `unknown` | no check has finished and no request has been answered |
//! | `up` | an active check passed, or the last proxied request was answered |
//! | `down` | `unhealthy_threshold` checks failed, or `failures` requests in a row |
//!
//! A backend that is `down` stays down until evidence says otherwise
//! (half-open): after a passive ejection, one trial request every
//! `cooldown` (or one passed active check) decides; after failed active
//! checks, `healthy_threshold` passed checks do. Only the backend's own
//! failures count ([`Fault`]); a client's never do.
//!
//! The state is per backend, in atomics behind a `DashMap` keyed by address
//! (the request path reads one atomic; transitions take a small lock to
//! record since when and why). It never touches the routing snapshot: the
//! proxy asks [`Health::admit`] for each candidate in the key's hash order.

pub mod checker;
mod evidence;
mod state;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use dashmap::DashMap;

use crate::config::{HealthConfig, PassiveCheck};
use crate::routing::{BackendAddr, Snapshot};

pub use evidence::{Fault, Pass};
use state::{BackendHealth, Cause};

/// What the evidence says about a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthState {
    /// No evidence yet.
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

/// A backend's health as shown to operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthView {
    pub state: HealthState,
    /// When it entered this state.
    pub since: SystemTime,
    /// Why, in words: "3 checks failed: status 503", "request answered: status 200".
    pub reason: String,
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

    /// Apply new settings (a config reload); states are kept, except that
    /// turning active or passive checks off drops what they concluded.
    pub fn set_config(&self, config: HealthConfig) {
        let (checks_off, requests_off) = (config.active.is_none(), config.passive.is_none());
        self.config.store(Arc::new(config));
        for entry in &self.backends {
            if checks_off {
                entry.value().forget_checks(entry.key());
            }
            if requests_off {
                entry.value().forget_requests(entry.key());
            }
        }
    }

    fn entry(&self, address: &BackendAddr) -> Arc<BackendHealth> {
        if let Some(h) = self.backends.get(address) {
            return Arc::clone(&h);
        }
        Arc::clone(
            &self
                .backends
                .entry(address.clone())
                .or_insert_with(|| Arc::new(BackendHealth::new())),
        )
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Follow the membership: new backends start `unknown` (since now),
    /// backends that left are forgotten.
    pub fn track(&self, snapshot: &Snapshot) {
        let current: std::collections::HashSet<&BackendAddr> =
            snapshot.backends().iter().map(|b| &b.address).collect();
        self.backends.retain(|address, _| current.contains(address));
        for address in current {
            self.entry(address);
        }
    }

    /// Whether `address` is down now (no side effects; for lookups and displays).
    pub fn is_down(&self, address: &BackendAddr) -> bool {
        self.backends
            .get(address)
            .is_some_and(|h| h.state() == HealthState::Down)
    }

    /// Whether a request may go to `address` now, and how: backends that
    /// are not down take every request; a down backend takes none, except
    /// one trial request each `cooldown` after a passive ejection.
    pub fn admit(&self, address: &BackendAddr) -> Option<Pass> {
        let Some(h) = self.backends.get(address) else {
            return Some(Pass::Normal);
        };
        if h.state() != HealthState::Down {
            return Some(Pass::Normal);
        }
        let cooldown = self
            .config
            .load()
            .passive
            .as_ref()
            .map(|p| millis(p.cooldown));
        h.admit(self.now_ms(), cooldown)
    }

    /// A trial request to `address` ended without evidence (its client went
    /// away or broke its body): the next request may be the trial.
    pub fn release_trial(&self, address: &BackendAddr) {
        if let Some(h) = self.backends.get(address) {
            h.release_trial(self.now_ms());
        }
    }

    /// The state, since when and why.
    pub fn view(&self, address: &BackendAddr) -> HealthView {
        match self.backends.get(address) {
            Some(h) => h.view(),
            None => HealthView {
                state: HealthState::Unknown,
                since: SystemTime::now(),
                reason: state::NO_EVIDENCE.to_owned(),
            },
        }
    }

    /// The state only.
    pub fn state(&self, address: &BackendAddr) -> HealthState {
        self.backends
            .get(address)
            .map_or(HealthState::Unknown, |h| h.state())
    }

    /// An active check passed with `status`.
    pub fn check_passed(&self, address: &BackendAddr, threshold: u32, status: u16) {
        self.entry(address).check_passed(address, threshold, status);
    }

    /// An active check failed.
    pub fn check_failed(&self, address: &BackendAddr, threshold: u32, fault: Fault) {
        self.entry(address).check_failed(address, threshold, fault);
    }

    /// `address` answered a proxied request with `status`: a success,
    /// unless the status is one of `failure_statuses`. Ignored while
    /// passive checks are off.
    pub fn request_answered(&self, address: &BackendAddr, pass: Pass, status: u16) {
        let config = self.config.load();
        let Some(passive) = config.passive.as_ref() else {
            return;
        };
        if passive.failure_statuses.contains(&status) {
            self.count_failure(address, pass, Fault::Status(status), passive);
        } else {
            self.entry(address).request_succeeded(address, pass, status);
        }
    }

    /// A proxied request failed because of `address` itself. Enough of
    /// them in a row take it out of traffic (passive checks).
    pub fn request_failed(&self, address: &BackendAddr, pass: Pass, fault: Fault) {
        if let Some(passive) = self.config.load().passive.as_ref() {
            self.count_failure(address, pass, fault, passive);
        }
    }

    fn count_failure(
        &self,
        address: &BackendAddr,
        pass: Pass,
        fault: Fault,
        passive: &PassiveCheck,
    ) {
        let cause = Cause {
            threshold: passive.failures,
            now_ms: self.now_ms(),
            cooldown_ms: millis(passive.cooldown),
        };
        self.entry(address)
            .request_failed(address, pass, fault, &cause);
    }
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
