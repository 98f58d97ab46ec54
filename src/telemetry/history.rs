//! Five minutes of per-backend request and error counts, sampled by the
//! control plane every [`INTERVAL`], so the admin UI shows the recent past
//! as soon as it opens (and after a reload), not only what it saw itself.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Telemetry;
use crate::routing::BackendAddr;

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept per backend (five minutes).
pub const KEEP: usize = 60;

/// What one backend did in one interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The end of the interval.
    pub at: SystemTime,
    pub requests: u64,
    pub errors: u64,
}

#[derive(Debug, Default)]
struct Series {
    /// Totals at the previous sample.
    last: (u64, u64),
    samples: VecDeque<Sample>,
}

/// The recent samples of every backend of the membership.
#[derive(Debug, Default)]
pub struct History {
    series: Mutex<HashMap<BackendAddr, Series>>,
}

impl History {
    /// Take one sample of every backend (backends that left are forgotten;
    /// a new one starts with its next interval).
    pub fn record(&self, telemetry: &Telemetry, at: SystemTime) {
        let snapshot = telemetry.pool().load();
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.retain(|address, _| snapshot.backends().iter().any(|b| b.address == *address));
        for backend in snapshot.backends() {
            let stats = telemetry.backend(&backend.address);
            let totals = (stats.requests(), stats.errors());
            let Some(one) = series.get_mut(&backend.address) else {
                let first = Series {
                    last: totals,
                    samples: VecDeque::with_capacity(KEEP),
                };
                series.insert(backend.address.clone(), first);
                continue;
            };
            if one.samples.len() == KEEP {
                one.samples.pop_front();
            }
            one.samples.push_back(Sample {
                at,
                requests: totals.0.saturating_sub(one.last.0),
                errors: totals.1.saturating_sub(one.last.1),
            });
            one.last = totals;
        }
    }

    /// `address`'s samples, oldest first.
    pub fn samples(&self, address: &BackendAddr) -> Vec<Sample> {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series
            .get(address)
            .map(|s| s.samples.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// Sample every [`INTERVAL`] until `shutdown` fires.
pub fn spawn(telemetry: Arc<Telemetry>, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => telemetry.history.record(&telemetry, SystemTime::now()),
                () = shutdown.cancelled() => return,
            }
        }
    })
}
