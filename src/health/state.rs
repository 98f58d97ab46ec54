//! One backend's health: the evidence counters (atomics, read on the
//! request path) and the verdict with since when and why (changed only on
//! a transition, under a small lock so the three always agree).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::SystemTime;

use super::{Fault, HealthState, HealthView, Pass};
use crate::routing::BackendAddr;

/// The reason shown before any evidence.
pub(super) const NO_EVIDENCE: &str = "no check or request yet";

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// The passive settings and the clock, for one failed request.
pub(super) struct Cause {
    /// Failures in a row that take the backend out.
    pub threshold: u32,
    pub now_ms: u64,
    pub cooldown_ms: u64,
}

#[derive(Debug)]
struct Detail {
    since: SystemTime,
    reason: String,
}

/// Evidence and verdict of one backend.
#[derive(Debug)]
pub(super) struct BackendHealth {
    /// `UNKNOWN`, `UP` or `DOWN`: what operators see and routing obeys.
    verdict: AtomicU8,
    /// The active checks' own verdict.
    active: AtomicU8,
    passes: AtomicU32,
    fails: AtomicU32,
    /// Failed requests in a row.
    passive_failures: AtomicU32,
    /// Whether the last request evidence was an answer.
    answered: AtomicBool,
    /// While taken out by passive checks: when the next trial request may
    /// go (ms after [`super::Health`]'s epoch). 0 when not taken out.
    retry_at_ms: AtomicU64,
    detail: Mutex<Detail>,
}

impl BackendHealth {
    pub fn new() -> Self {
        BackendHealth {
            verdict: AtomicU8::new(UNKNOWN),
            active: AtomicU8::new(UNKNOWN),
            passes: AtomicU32::new(0),
            fails: AtomicU32::new(0),
            passive_failures: AtomicU32::new(0),
            answered: AtomicBool::new(false),
            retry_at_ms: AtomicU64::new(0),
            detail: Mutex::new(Detail {
                since: SystemTime::now(),
                reason: NO_EVIDENCE.to_owned(),
            }),
        }
    }

    pub fn state(&self) -> HealthState {
        match self.verdict.load(Relaxed) {
            UP => HealthState::Up,
            DOWN => HealthState::Down,
            _ => HealthState::Unknown,
        }
    }

    pub fn view(&self) -> HealthView {
        let detail = self.detail.lock().unwrap_or_else(|p| p.into_inner());
        HealthView {
            state: self.state(),
            since: detail.since,
            reason: detail.reason.clone(),
        }
    }

    /// Whether a request may go to this down backend: not while active
    /// checks hold it down; after a passive ejection, one request per
    /// cooldown (the trial). `cooldown_ms` is `None` when passive checks
    /// were turned off since (then the ejection no longer applies).
    pub fn admit(&self, now_ms: u64, cooldown_ms: Option<u64>) -> Option<Pass> {
        if self.active.load(Relaxed) == DOWN {
            return None;
        }
        let retry_at = self.retry_at_ms.load(Relaxed);
        let Some(cooldown) = cooldown_ms.filter(|_| retry_at != 0) else {
            return Some(Pass::Normal);
        };
        if now_ms < retry_at {
            return None;
        }
        // Only one request wins the trial; the next one waits a cooldown.
        self.retry_at_ms
            .compare_exchange(retry_at, now_ms + cooldown.max(1), Relaxed, Relaxed)
            .is_ok()
            .then_some(Pass::Trial)
    }

    /// Give back a trial that ended without evidence (unless the backend
    /// came back meanwhile).
    pub fn release_trial(&self, now_ms: u64) {
        let retry_at = self.retry_at_ms.load(Relaxed);
        if retry_at > now_ms {
            let _ = self
                .retry_at_ms
                .compare_exchange(retry_at, now_ms.max(1), Relaxed, Relaxed);
        }
    }

    pub fn request_succeeded(&self, address: &BackendAddr, pass: Pass, status: u16) {
        let settled = self.verdict.load(Relaxed) == UP
            && self.passive_failures.load(Relaxed) == 0
            && self.answered.load(Relaxed);
        if settled && pass == Pass::Normal {
            return;
        }
        self.passive_failures.store(0, Relaxed);
        self.answered.store(true, Relaxed);
        if pass == Pass::Trial {
            // An answer to a request sent after the ejection: it is back.
            self.retry_at_ms.store(0, Relaxed);
        }
        self.settle(address, || match pass {
            Pass::Trial => format!("trial request answered: status {status}"),
            Pass::Normal => format!("request answered: status {status}"),
        });
    }

    pub fn request_failed(&self, address: &BackendAddr, pass: Pass, fault: Fault, cause: &Cause) {
        if pass == Pass::Trial {
            // Still out (`admit` already moved the next trial a cooldown away).
            self.answered.store(false, Relaxed);
            let mut detail = self.lock_detail();
            if self.verdict.load(Relaxed) == DOWN {
                detail.reason = format!("trial request failed: {fault}");
            }
            return;
        }
        if self.retry_at_ms.load(Relaxed) != 0 {
            return; // already out; a request sent before the ejection
        }
        let failures = self
            .passive_failures
            .fetch_add(1, Relaxed)
            .saturating_add(1);
        if failures < cause.threshold {
            return;
        }
        let until = cause.now_ms + cause.cooldown_ms.max(1);
        if self
            .retry_at_ms
            .compare_exchange(0, until, Relaxed, Relaxed)
            .is_err()
        {
            return; // another thread took it out just now
        }
        self.passive_failures.store(0, Relaxed);
        self.answered.store(false, Relaxed);
        self.settle(address, || {
            format!("{failures} {} failed: {fault}", plural(failures, "request"))
        });
    }

    pub fn check_passed(&self, address: &BackendAddr, threshold: u32, status: u16) {
        self.fails.store(0, Relaxed);
        let passes = self.passes.fetch_add(1, Relaxed).saturating_add(1);
        let active = self.active.load(Relaxed);
        let ejected = self.retry_at_ms.load(Relaxed) != 0;
        if active == UP && !ejected {
            return;
        }
        // The first verdict needs one pass; coming back from down needs `threshold`.
        if active == UNKNOWN || (active == DOWN && passes >= threshold) {
            self.active.store(UP, Relaxed);
        }
        if ejected {
            // One passed check ends a passive ejection.
            self.retry_at_ms.store(0, Relaxed);
            self.passive_failures.store(0, Relaxed);
        }
        self.settle(address, || format!("check passed: status {status}"));
    }

    pub fn check_failed(&self, address: &BackendAddr, threshold: u32, fault: Fault) {
        self.passes.store(0, Relaxed);
        let fails = self.fails.fetch_add(1, Relaxed).saturating_add(1);
        if fails < threshold || self.active.swap(DOWN, Relaxed) == DOWN {
            return;
        }
        self.settle(address, || {
            format!("{fails} {} failed: {fault}", plural(fails, "check"))
        });
    }

    /// Active checks were turned off: their verdict no longer applies, and
    /// an answer from before they took the backend down is no evidence.
    pub fn forget_checks(&self, address: &BackendAddr) {
        self.passes.store(0, Relaxed);
        self.fails.store(0, Relaxed);
        if self.active.swap(UNKNOWN, Relaxed) != UNKNOWN {
            self.answered.store(false, Relaxed);
            self.settle(address, || "active checks turned off".to_owned());
        }
    }

    /// Passive checks were turned off: their ejection no longer applies.
    pub fn forget_requests(&self, address: &BackendAddr) {
        self.passive_failures.store(0, Relaxed);
        self.answered.store(false, Relaxed);
        if self.retry_at_ms.swap(0, Relaxed) != 0 {
            self.settle(address, || "passive checks turned off".to_owned());
        }
    }

    fn lock_detail(&self) -> std::sync::MutexGuard<'_, Detail> {
        self.detail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Recompute the verdict from the evidence; on a change, record since
    /// when and why, and log it.
    fn settle(&self, address: &BackendAddr, reason: impl FnOnce() -> String) {
        let mut detail = self.lock_detail();
        let active = self.active.load(Relaxed);
        let next = if active == DOWN || self.retry_at_ms.load(Relaxed) != 0 {
            DOWN
        } else if active == UP || self.answered.load(Relaxed) {
            UP
        } else {
            UNKNOWN
        };
        if self.verdict.swap(next, Relaxed) == next {
            return;
        }
        detail.since = SystemTime::now();
        detail.reason = reason();
        match next {
            DOWN => tracing::warn!(backend = %address, reason = %detail.reason, "backend is down"),
            UP => tracing::info!(backend = %address, reason = %detail.reason, "backend is up"),
            _ => {
                tracing::info!(backend = %address, reason = %detail.reason, "backend health unknown")
            }
        }
    }
}

fn plural(n: u32, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}
