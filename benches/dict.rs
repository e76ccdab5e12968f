//! Keyspace table vs std `HashMap` (both hashed with ahash), 1M byte-string keys.
//!
//! Needs in Cargo.toml:
//! ```toml
//! [[bench]]
//! name = "dict"
//! harness = false
//! ```
//! Run: `cargo bench --bench dict`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use basalt::store::dict::Dict;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const N: usize = 1_000_000;

type Std = HashMap<Box<[u8]>, u64, ahash::RandomState>;

fn keys() -> Vec<Box<[u8]>> {
    // Redis-like key names ("key:0" .. "key:999999").
    (0..N).map(|i| format!("key:{i}").into_bytes().into()).collect()
}

fn build_dict(keys: &[Box<[u8]>]) -> Dict<Box<[u8]>, u64> {
    let mut d = Dict::new();
    for (i, k) in keys.iter().enumerate() {
        d.insert(k.clone(), i as u64);
    }
    // Steady state for lookups: no rehash in progress.
    while d.rehash_steps(1000) {}
    d
}

fn build_std(keys: &[Box<[u8]>]) -> Std {
    let mut m = Std::default();
    for (i, k) in keys.iter().enumerate() {
        m.insert(k.clone(), i as u64);
    }
    m
}

fn bench(c: &mut Criterion) {
    let keys = keys();

    let mut g = c.benchmark_group("insert_1m");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("Dict", |b| {
        b.iter_batched(
            || keys.clone(),
            |ks| {
                let mut d: Dict<Box<[u8]>, u64> = Dict::new();
                for (i, k) in ks.into_iter().enumerate() {
                    d.insert(k, i as u64);
                }
                d
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("HashMap", |b| {
        b.iter_batched(
            || keys.clone(),
            |ks| {
                let mut m = Std::default();
                for (i, k) in ks.into_iter().enumerate() {
                    m.insert(k, i as u64);
                }
                m
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("get_hit_1m");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    {
        let d = build_dict(&keys);
        g.bench_function("Dict", |b| {
            b.iter(|| {
                let mut sum = 0u64;
                for k in &keys {
                    sum = sum.wrapping_add(*d.get(black_box(&**k)).unwrap_or(&0));
                }
                sum
            })
        });
    }
    {
        let m = build_std(&keys);
        g.bench_function("HashMap", |b| {
            b.iter(|| {
                let mut sum = 0u64;
                for k in &keys {
                    sum = sum.wrapping_add(*m.get(black_box(&**k)).unwrap_or(&0));
                }
                sum
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("remove_1m");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("Dict", |b| {
        b.iter_batched(
            || build_dict(&keys),
            |mut d| {
                for k in &keys {
                    black_box(d.remove(&**k));
                }
                d
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("HashMap", |b| {
        b.iter_batched(
            || build_std(&keys),
            |mut m| {
                for k in &keys {
                    black_box(m.remove(&**k));
                }
                m
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
