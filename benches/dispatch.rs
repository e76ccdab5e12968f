//! Dispatch without the network: command lookup, key routing and the handler over a store,
//! writing RESP replies. What one inline command costs a shard, minus the socket.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

use basalt::command::keys::for_each_key;
use basalt::command::{table, Args, Exec, Run};
use basalt::persist::Effects;
use basalt::resp::{Proto, Reply};
use basalt::shard::shard_of;
use basalt::store::Store;

fn args(v: &[&str]) -> Args {
    Args::new(v.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect())
}

fn run(store: &mut Store, effects: &mut Effects, out: &mut Reply, a: &Args) {
    let cmd = table::lookup(&a[0]).expect("known command");
    assert!(cmd.spec.arity_ok(a.len()));
    let mut shard = usize::MAX;
    for_each_key(cmd.spec.key_specs, a, |p| shard = shard_of(&a[p], 4)).expect("keys");
    black_box(shard);
    let Run::Keyed(f, _) = cmd.spec.run else {
        panic!("keyed")
    };
    let mut ex = Exec::local(store, out, effects, 1);
    f(&mut ex, a).expect("command ok");
}

fn bench(c: &mut Criterion) {
    let mut store = Store::new(16);
    let mut effects = Effects::new(false);
    let mut out = Reply::with_capacity(Proto::Resp2, 1 << 20);
    let set = args(&["SET", "key:000042", "xxx"]);
    let get = args(&["GET", "key:000042"]);
    let incr = args(&["INCR", "counter"]);
    c.bench_function("dispatch/set", |b| {
        b.iter(|| {
            out.buf.clear();
            run(&mut store, &mut effects, &mut out, &set)
        })
    });
    c.bench_function("dispatch/get", |b| {
        b.iter(|| {
            out.buf.clear();
            run(&mut store, &mut effects, &mut out, &get)
        })
    });
    if table::lookup(b"incr").is_some() {
        c.bench_function("dispatch/incr", |b| {
            b.iter(|| {
                out.buf.clear();
                run(&mut store, &mut effects, &mut out, &incr)
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
