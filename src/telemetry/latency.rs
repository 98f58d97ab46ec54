//! A fixed-bucket latency histogram made of atomics: recording is two
//! relaxed increments, reading is a copy of the counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (a 1–2.5–5 series from
/// 100 µs to 60 s); one more bucket counts everything slower.
pub const BOUNDS_MICROS: [u64; 18] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 60_000_000,
];

/// Counts of observed durations per bucket, plus their sum.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_MICROS.len() + 1],
    sum_micros: AtomicU64,
}

/// A point-in-time copy of a [`Histogram`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Non-cumulative count per bucket; the last one is `+Inf`.
    pub buckets: [u64; BOUNDS_MICROS.len() + 1],
    pub sum_micros: u64,
}

impl Histogram {
    /// Count one observation.
    pub fn observe(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let index = BOUNDS_MICROS.partition_point(|&bound| bound < micros);
        self.buckets[index].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    /// Copy the counters.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            sum_micros: self.sum_micros.load(Relaxed),
        }
    }
}

impl HistogramSnapshot {
    /// Add `other`'s observations to these.
    pub fn add(&mut self, other: &HistogramSnapshot) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_micros += other.sum_micros;
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Estimated `q`-quantile (0.0..=1.0) in milliseconds, interpolated
    /// linearly inside its bucket; `None` when nothing was observed.
    /// Observations above the last bound are reported as that bound.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * count as f64).max(1.0);
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let Some(&upper) = BOUNDS_MICROS.get(i) else {
                    break;
                };
                let lower = if i == 0 { 0 } else { BOUNDS_MICROS[i - 1] };
                let within = (rank - below as f64) / n as f64;
                let micros = lower as f64 + within * (upper - lower) as f64;
                return Some(micros / 1000.0);
            }
            below += n;
        }
        Some(BOUNDS_MICROS[BOUNDS_MICROS.len() - 1] as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(millis: &[u64]) -> HistogramSnapshot {
        let histogram = Histogram::default();
        for &ms in millis {
            histogram.observe(Duration::from_millis(ms));
        }
        histogram.snapshot()
    }

    #[test]
    fn a_duration_lands_in_the_first_bucket_whose_bound_is_not_below_it() {
        let snapshot = observed(&[1, 3, 100_000]);
        assert_eq!(snapshot.buckets[3], 1, "1 ms ≤ 1 ms bound");
        assert_eq!(snapshot.buckets[5], 1, "3 ms ≤ 5 ms bound");
        assert_eq!(snapshot.buckets[BOUNDS_MICROS.len()], 1, "100 s is +Inf");
        assert_eq!(snapshot.count(), 3);
        assert_eq!(snapshot.sum_micros, 100_004_000);
    }

    #[test]
    fn quantiles_stay_inside_the_bucket_of_the_ranked_observation() {
        let snapshot = observed(&[2; 90].iter().chain(&[40; 10]).copied().collect::<Vec<_>>());
        let p50 = snapshot.quantile_ms(0.5).unwrap();
        assert!((1.0..=2.5).contains(&p50), "p50 {p50}");
        let p99 = snapshot.quantile_ms(0.99).unwrap();
        assert!((25.0..=50.0).contains(&p99), "p99 {p99}");
        assert_eq!(observed(&[]).quantile_ms(0.5), None);
        assert_eq!(observed(&[100_000]).quantile_ms(0.5), Some(60_000.0));
    }
}
