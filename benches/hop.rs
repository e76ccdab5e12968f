//! The cross-shard hop: a closure sent to another executor over the channel mesh and its
//! result sent back, round trip. Two executors, unpinned.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use futures_channel::oneshot;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};

type Op = Box<dyn FnOnce() + Send>;

/// Runs `iters` sequential hops and returns the elapsed time, or `batch` hops in flight at a time.
fn hops(iters: u64, in_flight: usize) -> Duration {
    let mesh = MeshBuilder::<Op, _>::full(2, 1024);
    let server = {
        let mesh = mesh.clone();
        LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(256 * 1024)
            .spawn(move || async move {
                let (_tx, mut rx) = mesh.join().await.expect("join");
                let (_, stream) = rx.streams().into_iter().next().expect("one peer");
                while let Some(op) = stream.recv().await {
                    op();
                }
            })
            .expect("executor")
    };
    let client = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(256 * 1024)
        .spawn(move || async move {
            let (tx, _rx) = mesh.join().await.expect("join");
            let peer = 1 - tx.peer_id();
            let start = Instant::now();
            let mut done = 0u64;
            while done < iters {
                let n = in_flight.min((iters - done) as usize);
                let mut rxs = Vec::with_capacity(n);
                for _ in 0..n {
                    let (otx, orx) = oneshot::channel::<u64>();
                    let op: Op = Box::new(move || {
                        let _ = otx.send(42);
                    });
                    assert!(tx.send_to(peer, op).await.is_ok(), "send");
                    rxs.push(orx);
                }
                for r in rxs {
                    assert_eq!(r.await.expect("reply"), 42);
                }
                done += n as u64;
            }
            let elapsed = start.elapsed();
            tx.close();
            elapsed
        })
        .expect("executor");
    let elapsed = client.join().expect("client");
    server.join().expect("server");
    elapsed
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("hop");
    g.sample_size(10);
    g.bench_function("round_trip", |b| b.iter_custom(|iters| hops(iters, 1)));
    g.bench_function("16_in_flight", |b| b.iter_custom(|iters| hops(iters, 16)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
