//! The backend pool: one immutable [`Snapshot`] behind an `ArcSwap`.
//!
//! The data plane does one [`BackendPool::load`] per request and uses that
//! snapshot to the end. The control plane builds a whole new snapshot and
//! [`BackendPool::publish`]es it: one swap per logical change, so no reader
//! ever sees a half-updated table.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::address::BackendAddr;
use super::hrw::{self, Member};
use super::key::RoutingKey;

/// Largest accepted weight.
pub const MAX_WEIGHT: u32 = 1000;

/// Whether a backend takes new keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendState {
    /// Takes new keys.
    Active,
    /// Gets no new keys; requests already on it finish.
    Draining,
}

impl BackendState {
    /// `"active"` or `"draining"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendState::Active => "active",
            BackendState::Draining => "draining",
        }
    }
}

/// One backend as the router sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Stable identifier (assigned by whoever owns membership).
    pub id: String,
    /// Where to connect.
    pub address: BackendAddr,
    /// Relative share of keys, 1..=[`MAX_WEIGHT`].
    pub weight: u32,
    /// Active or draining.
    pub state: BackendState,
}

/// Why a set of backends cannot become a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("backend address {0} is listed more than once")]
    DuplicateAddress(String),
    #[error("backend {address} has weight {weight}; weights must be 1 to {MAX_WEIGHT}")]
    InvalidWeight { address: String, weight: u32 },
}

/// An immutable view of the membership and its hash table.
#[derive(Debug)]
pub struct Snapshot {
    generation: u64,
    /// Every backend, sorted by address.
    backends: Vec<Arc<Backend>>,
    /// Positions in `backends` of the active ones (sorted by address).
    active: Vec<usize>,
    /// HRW inputs for the active ones, parallel to `active`.
    members: Vec<Member>,
    /// Bucket → index into `active`; empty when no backend is active.
    table: Box<[u32]>,
}

impl Snapshot {
    /// Build a snapshot (validates weights and address uniqueness).
    pub fn new(generation: u64, backends: Vec<Backend>) -> Result<Self, PoolError> {
        Snapshot::empty().next(generation, backends)
    }

    /// The snapshot for `backends`, derived from this one: when only a few
    /// active backends joined or left (the usual admin change) only their
    /// buckets are recomputed. Same result as [`Snapshot::new`].
    pub fn next(&self, generation: u64, backends: Vec<Backend>) -> Result<Self, PoolError> {
        let (backends, active, members) = Snapshot::members(backends)?;
        let old: std::collections::HashMap<(&str, u32), u32> = self
            .active
            .iter()
            .zip(0u32..)
            .map(|(&i, old)| {
                (
                    (self.backends[i].address.as_str(), self.backends[i].weight),
                    old,
                )
            })
            .collect();
        let mut old_to_new = vec![None; self.active.len()];
        let mut added = Vec::new();
        for (new, &i) in active.iter().enumerate() {
            match old.get(&(backends[i].address.as_str(), backends[i].weight)) {
                Some(&o) => old_to_new[o as usize] = Some(new as u32),
                None => added.push(new),
            }
        }
        let removed = old_to_new.iter().filter(|n| n.is_none()).count();
        // Past a few changes a fresh build is as cheap.
        let incremental = !self.table.is_empty()
            && !members.is_empty()
            && (added.len() + removed) * 4 <= members.len().max(4);
        let table = if members.is_empty() {
            Box::default()
        } else if incremental {
            hrw::update_table(&self.table, &old_to_new, &members, &added)
        } else {
            hrw::build_table(&members)
        };
        Ok(Snapshot {
            generation,
            backends: backends.into_iter().map(Arc::new).collect(),
            active,
            members,
            table,
        })
    }

    /// Sorted, validated backends; positions of the active ones; their HRW inputs.
    #[allow(clippy::type_complexity)]
    fn members(
        mut backends: Vec<Backend>,
    ) -> Result<(Vec<Backend>, Vec<usize>, Vec<Member>), PoolError> {
        backends.sort_by(|a, b| a.address.cmp(&b.address));
        for pair in backends.windows(2) {
            if pair[0].address == pair[1].address {
                return Err(PoolError::DuplicateAddress(pair[0].address.to_string()));
            }
        }
        if let Some(b) = backends
            .iter()
            .find(|b| !(1..=MAX_WEIGHT).contains(&b.weight))
        {
            return Err(PoolError::InvalidWeight {
                address: b.address.to_string(),
                weight: b.weight,
            });
        }
        let active: Vec<usize> = (0..backends.len())
            .filter(|&i| backends[i].state == BackendState::Active)
            .collect();
        let members: Vec<Member> = active
            .iter()
            .map(|&i| Member {
                hash: hrw::stable_hash(backends[i].address.as_str().as_bytes()),
                weight: backends[i].weight,
            })
            .collect();
        Ok((backends, active, members))
    }

    /// An empty pool at generation 0.
    pub fn empty() -> Self {
        Snapshot {
            generation: 0,
            backends: Vec::new(),
            active: Vec::new(),
            members: Vec::new(),
            table: Box::default(),
        }
    }

    /// Membership generation this snapshot was built from.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every backend (active and draining), sorted by address.
    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// Number of backends that take new keys.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// The backend for `key`: O(1), one hash and one table read.
    pub fn pick(&self, key: &RoutingKey) -> Option<&Arc<Backend>> {
        if self.table.is_empty() {
            return None;
        }
        let bucket = hrw::bucket_of(hrw::stable_hash(key.as_str().as_bytes()));
        Some(&self.backends[self.active[self.table[bucket] as usize]])
    }

    /// Active backends for `key` in failover order (at most `limit`); the
    /// first is always [`Snapshot::pick`]'s answer.
    pub fn candidates(&self, key: &RoutingKey, limit: usize) -> Vec<&Arc<Backend>> {
        if self.table.is_empty() || limit == 0 {
            return Vec::new();
        }
        let bucket = hrw::bucket_of(hrw::stable_hash(key.as_str().as_bytes()));
        if limit == 1 {
            return vec![&self.backends[self.active[self.table[bucket] as usize]]];
        }
        hrw::rank(&self.members, bucket)
            .into_iter()
            .take(limit)
            .map(|i| &self.backends[self.active[i]])
            .collect()
    }
}

/// The live pool: the current [`Snapshot`], swapped whole on every change.
#[derive(Debug)]
pub struct BackendPool {
    current: ArcSwap<Snapshot>,
}

impl BackendPool {
    /// A pool starting at `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        BackendPool {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The current snapshot (cheap; hold it for one request).
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replace the snapshot in one atomic store.
    pub fn publish(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }

    /// Publish `snapshot` unless the current one is as new or newer (by
    /// generation); returns whether it was published. Lock-free: writers
    /// that finish out of order never move the pool backwards.
    pub fn publish_if_newer(&self, snapshot: Arc<Snapshot>) -> bool {
        let mut published = false;
        self.current.rcu(|current| {
            published = snapshot.generation > current.generation;
            if published {
                Arc::clone(&snapshot)
            } else {
                Arc::clone(current)
            }
        });
        published
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pool(spec: &[(u8, u32, bool)]) -> Vec<Backend> {
        let mut seen = std::collections::HashSet::new();
        spec.iter()
            .filter(|(host, ..)| seen.insert(*host))
            .map(|&(host, weight, active)| Backend {
                id: host.to_string(),
                address: format!("10.0.0.{host}:80").parse().unwrap(),
                weight,
                state: if active {
                    BackendState::Active
                } else {
                    BackendState::Draining
                },
            })
            .collect()
    }

    fn member_set() -> impl Strategy<Value = Vec<(u8, u32, bool)>> {
        prop::collection::vec((0u8..40, 1u32..4, prop::bool::weighted(0.85)), 0..30)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Deriving a snapshot from the previous one gives exactly the
        /// table a fresh build gives, whatever changed.
        #[test]
        fn a_derived_snapshot_equals_a_fresh_one(before in member_set(), after in member_set()) {
            let previous = Snapshot::new(1, pool(&before)).unwrap();
            let derived = previous.next(2, pool(&after)).unwrap();
            let fresh = Snapshot::new(2, pool(&after)).unwrap();
            prop_assert!(derived.table == fresh.table);
            prop_assert_eq!(derived.active, fresh.active);
        }

        /// One backend joining or leaving (the admin API's usual change) is
        /// the incremental path; it must agree with a fresh build too.
        #[test]
        fn one_join_or_leave_equals_a_fresh_build(base in member_set(), extra in 40u8..60, leave in any::<prop::sample::Index>()) {
            let start = pool(&base);
            let previous = Snapshot::new(1, start.clone()).unwrap();
            let mut joined = start.clone();
            joined.extend(pool(&[(extra, 2, true)]));
            prop_assert!(previous.next(2, joined.clone()).unwrap().table == Snapshot::new(2, joined).unwrap().table);
            if !start.is_empty() {
                let mut left = start.clone();
                left.remove(leave.index(start.len()));
                prop_assert!(previous.next(2, left.clone()).unwrap().table == Snapshot::new(2, left).unwrap().table);
            }
        }
    }
}
