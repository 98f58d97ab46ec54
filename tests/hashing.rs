//! Consistent-hashing properties of the pool (SPEC "Choosing a backend").

use std::collections::HashMap;

use proptest::prelude::*;
use switchyard::routing::key::normalize_host;
use switchyard::routing::{Backend, BackendState, RoutingKey, Snapshot};

const KEYS: usize = 100_000;

fn backend(address: &str, weight: u32) -> Backend {
    Backend {
        id: address.to_owned(),
        address: address.parse().unwrap(),
        weight,
        state: BackendState::Active,
    }
}

fn pool(addresses: &[String]) -> Snapshot {
    Snapshot::new(1, addresses.iter().map(|a| backend(a, 1)).collect()).unwrap()
}

fn addresses(n: usize, salt: u32) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.{}.{}.{}:8000", salt % 256, i / 256, i % 256))
        .collect()
}

/// `KEYS` pseudo-random domains (a fixed LCG, so every run sees the same ones).
fn domains() -> Vec<RoutingKey> {
    let mut state: u64 = 0x853c_49e6_748f_ea9b;
    (0..KEYS)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            normalize_host(format!("app{}-{:x}.example", i, state >> 40).as_bytes()).unwrap()
        })
        .collect()
}

fn assignment(snapshot: &Snapshot, keys: &[RoutingKey]) -> Vec<String> {
    keys.iter()
        .map(|k| snapshot.pick(k).unwrap().address.to_string())
        .collect()
}

fn load(assigned: &[String]) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for a in assigned {
        *counts.entry(a.as_str()).or_default() += 1;
    }
    counts
}

#[test]
fn busiest_backend_gets_at_most_110_percent_of_the_mean() {
    let keys = domains();
    for n in [3, 10, 50] {
        let assigned = assignment(&pool(&addresses(n, 7)), &keys);
        let counts = load(&assigned);
        assert_eq!(counts.len(), n, "every backend gets keys");
        let mean = KEYS as f64 / n as f64;
        let max = *counts.values().max().unwrap() as f64;
        println!("balance N={n}: max/mean = {:.3}", max / mean);
        assert!(
            max / mean <= 1.10,
            "N={n}: busiest backend has {max} keys, mean {mean}"
        );
    }
}

#[test]
fn weights_are_respected_within_ten_percent() {
    let keys = domains();
    let weights = [1u32, 2, 3, 5, 1, 4];
    let members: Vec<Backend> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| backend(&format!("10.9.0.{i}:80"), w))
        .collect();
    let snapshot = Snapshot::new(1, members.clone()).unwrap();
    let assigned = assignment(&snapshot, &keys);
    let counts = load(&assigned);
    let total_weight: u32 = weights.iter().sum();
    for b in &members {
        let expected = KEYS as f64 * f64::from(b.weight) / f64::from(total_weight);
        let got = counts[b.address.as_str()] as f64;
        println!(
            "weight {}: {got} keys, expected {expected:.0} ({:+.1}%)",
            b.weight,
            100.0 * (got / expected - 1.0)
        );
        assert!(
            (got / expected - 1.0).abs() <= 0.10,
            "{} (weight {}): {got} vs {expected}",
            b.address,
            b.weight
        );
    }
}

#[test]
fn draining_a_backend_moves_only_its_keys_and_it_gets_no_new_ones() {
    let keys = domains();
    let list = addresses(8, 3);
    let before = assignment(&pool(&list), &keys);
    let mut members: Vec<Backend> = list.iter().map(|a| backend(a, 1)).collect();
    members[2].state = BackendState::Draining;
    let drained = Snapshot::new(2, members).unwrap();
    assert_eq!(drained.active_len(), 7);
    let after = assignment(&drained, &keys);
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(a, &list[2], "a draining backend gets no keys");
        if b != &list[2] {
            assert_eq!(a, b, "keys of other backends stay");
        }
    }
}

#[test]
fn candidates_are_a_failover_order_headed_by_the_pick() {
    let snapshot = pool(&addresses(12, 1));
    for key in domains().iter().take(2_000) {
        let all = snapshot.candidates(key, usize::MAX);
        assert_eq!(all.len(), 12);
        assert_eq!(all[0].address, snapshot.pick(key).unwrap().address);
        let mut unique: Vec<_> = all.iter().map(|b| b.address.clone()).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 12, "no backend twice");
        let two = snapshot.candidates(key, 2);
        assert_eq!(
            two.iter().map(|b| &b.address).collect::<Vec<_>>(),
            all[..2].iter().map(|b| &b.address).collect::<Vec<_>>()
        );
    }
}

#[test]
fn an_empty_pool_picks_nothing_and_duplicates_are_refused() {
    let key = normalize_host(b"a.example").unwrap();
    assert!(Snapshot::new(1, vec![]).unwrap().pick(&key).is_none());
    let err = Snapshot::new(
        1,
        vec![backend("a.internal:80", 1), backend("A.internal:80", 2)],
    )
    .unwrap_err();
    assert!(err.to_string().contains("more than once"), "{err}");
    assert!(Snapshot::new(1, vec![backend("a.internal:80", 0)]).is_err());
    assert!(Snapshot::new(1, vec![backend("a.internal:80", 1001)]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn same_set_in_any_order_gives_the_same_choices(n in 1usize..40, salt in any::<u32>(), seed in any::<u64>()) {
        let list = addresses(n, salt);
        let mut shuffled = list.clone();
        // Fisher–Yates with a tiny LCG seeded by proptest.
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let keys: Vec<RoutingKey> = domains().into_iter().take(5_000).collect();
        prop_assert_eq!(assignment(&pool(&list), &keys), assignment(&pool(&shuffled), &keys));
    }

    #[test]
    fn adding_one_backend_moves_about_one_share_all_to_it(n in 1usize..60, salt in any::<u32>()) {
        let keys = domains();
        let list = addresses(n + 1, salt);
        let before = assignment(&pool(&list[..n]), &keys);
        let after = assignment(&pool(&list), &keys);
        let newcomer = &list[n];
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if a != b {
                moved += 1;
                prop_assert_eq!(a, newcomer, "a moved key went somewhere other than the new backend");
            }
        }
        let bound = 1.15 / (n + 1) as f64;
        prop_assert!((moved as f64 / KEYS as f64) <= bound, "N={}: moved {} keys, bound {:.0}", n, moved, bound * KEYS as f64);
        prop_assert!(moved > 0);
    }

    #[test]
    fn removing_one_backend_moves_only_its_keys(n in 2usize..60, salt in any::<u32>(), pick in any::<prop::sample::Index>()) {
        let keys = domains();
        let list = addresses(n, salt);
        let gone = pick.index(n);
        let mut rest = list.clone();
        rest.remove(gone);
        let before = assignment(&pool(&list), &keys);
        let after = assignment(&pool(&rest), &keys);
        for (b, a) in before.iter().zip(&after) {
            if b == &list[gone] {
                prop_assert_ne!(a, &list[gone]);
            } else {
                prop_assert_eq!(a, b, "a key of a remaining backend moved");
            }
        }
    }
}
