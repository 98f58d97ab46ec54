//! Routing benchmarks: key extraction, pool lookup, snapshot rebuild (fresh,
//! and derived after one backend joins).
//!
//! `cargo bench --bench routing`; also prints balance and disruption figures
//! for each pool size so that the hashing numbers sit next to the timings.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use switchyard::routing::key::normalize_host;
use switchyard::routing::{
    routing_key, Backend, BackendState, KeyInput, ReloadScope, RoutingKey, Snapshot,
};

fn backends(n: usize) -> Vec<Backend> {
    (0..n)
        .map(|i| Backend {
            id: i.to_string(),
            address: format!("10.{}.{}.{}:8000", i / 65536, (i / 256) % 256, i % 256)
                .parse()
                .unwrap(),
            weight: 1,
            state: BackendState::Active,
        })
        .collect()
}

fn keys(n: usize) -> Vec<RoutingKey> {
    (0..n)
        .map(|i| normalize_host(format!("user{i}.example.com").as_bytes()).unwrap())
        .collect()
}

fn key_extraction(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing_key");
    let cases: [(&str, &[u8], &[u8]); 4] = [
        ("host_ascii", b"WWW.Example.COM:8080", b"/index.html"),
        ("host_idna", "BÜCHER.example".as_bytes(), b"/"),
        (
            "reload_ascii",
            b"www.pythonanywhere.com",
            b"/user/fred/webapps/IronHand.Example/reload",
        ),
        (
            "reload_idna",
            b"www.pythonanywhere.com",
            b"/user/fred/webapps/B%C3%9CCHER.example/reload",
        ),
    ];
    for (name, host, path) in cases {
        let hosts = [host];
        let input = KeyInput {
            host_headers: &hosts,
            path,
            ..KeyInput::default()
        };
        group.bench_function(name, |b| {
            b.iter(|| routing_key(black_box(&input), &ReloadScope::AnyHost))
        });
    }
    group.finish();
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool_lookup");
    let keys = keys(4096);
    for n in [10, 100, 1_000, 10_000] {
        let snapshot = Snapshot::new(1, backends(n)).unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(n), &snapshot, |b, snapshot| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(snapshot.pick(&keys[i]))
            })
        });
        report_distribution(n, &snapshot);
    }
    group.finish();
}

fn rebuild(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot_rebuild");
    group.sample_size(10);
    for n in [10, 1_000, 10_000] {
        let list = backends(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &list, |b, list| {
            b.iter(|| Snapshot::new(2, black_box(list.clone())).unwrap())
        });
    }
    group.finish();
    // The admin API's path: derive the next snapshot after one backend joins.
    let mut group = c.benchmark_group("snapshot_next_one_join");
    group.sample_size(10);
    for n in [10, 1_000, 10_000] {
        let previous = Snapshot::new(1, backends(n)).unwrap();
        let joined = backends(n + 1);
        group.bench_with_input(BenchmarkId::from_parameter(n), &joined, |b, list| {
            b.iter(|| previous.next(2, black_box(list.clone())).unwrap())
        });
    }
    group.finish();
}

/// Print max/mean load over 100k keys and the share moved by adding one backend.
fn report_distribution(n: usize, snapshot: &Snapshot) {
    let keys = keys(100_000);
    let mut load = std::collections::HashMap::new();
    for k in &keys {
        *load
            .entry(snapshot.pick(k).unwrap().address.clone())
            .or_insert(0usize) += 1;
    }
    let mean = keys.len() as f64 / n as f64;
    let max = *load.values().max().unwrap() as f64;
    let grown = Snapshot::new(2, backends(n + 1)).unwrap();
    let moved = keys
        .iter()
        .filter(|k| snapshot.pick(k).unwrap().address != grown.pick(k).unwrap().address)
        .count();
    let ideal = keys.len() as f64 / (n + 1) as f64;
    eprintln!(
        "N={n}: busiest/mean = {:.3}; adding one moved {moved} keys = {:.3}x the ideal 1/(N+1) share",
        max / mean,
        moved as f64 / ideal
    );
}

criterion_group!(benches, key_extraction, lookup, rebuild);
criterion_main!(benches);
