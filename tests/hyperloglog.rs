//! Black-box tests for the HyperLogLog commands on the real binary (`--shards 4`): accuracy
//! on a large set, PFMERGE and multi-key PFCOUNT across shards, DUMP/RESTORE, the bytes an
//! AOF restart gives back, and (when redis-server is installed) the very bytes Redis stores.
//!
//! Run: `cargo test --release --test hyperloglog`.

mod common;

use common::{encode, shard_of, Raw, RedisServer, Server, SHARDS, V};
use std::time::Duration;

fn int(v: V) -> i64 {
    match v {
        V::Int(i) => i,
        other => panic!("not an integer: {other:?}"),
    }
}

fn bytes(v: V) -> Vec<u8> {
    match v {
        V::Bulk(b) => b,
        other => panic!("not a bulk: {other:?}"),
    }
}

/// Sends a command with binary arguments and reads its reply.
fn cmd_bin(r: &mut Raw, args: &[&[u8]]) -> V {
    r.write_all(&encode(args)).expect("send");
    r.read().expect("read reply")
}

/// Adds `el:<from>` .. `el:<to - 1>` to `key` in pipelined PFADDs of 1000 elements.
fn add_range(r: &mut Raw, key: &str, from: u64, to: u64) {
    let mut sent = 0;
    let mut start = from;
    while start < to {
        let end = (start + 1000).min(to);
        let elems: Vec<String> = (start..end).map(|i| format!("el:{i}")).collect();
        let mut args: Vec<&str> = vec!["PFADD", key];
        args.extend(elems.iter().map(String::as_str));
        r.send(&args).expect("send");
        sent += 1;
        start = end;
    }
    for _ in 0..sent {
        let v = r.read().expect("read");
        assert!(matches!(v, V::Int(0 | 1)), "PFADD answered {v:?}");
    }
}

/// One key per shard: `<prefix><n>` for the first n landing on each shard.
fn key_per_shard(prefix: &str) -> Vec<String> {
    (0..SHARDS)
        .map(|s| {
            (0..)
                .map(|n| format!("{prefix}{n}"))
                .find(|k| shard_of(k) == s)
                .expect("a key on every shard")
        })
        .collect()
}

fn assert_close(got: i64, truth: i64, tolerance: f64) {
    let err = (got - truth).abs() as f64 / truth as f64;
    assert!(
        err <= tolerance,
        "estimate {got} for {truth} is off by {:.2}%",
        err * 100.0
    );
}

#[test]
fn pfcount_of_100k_distinct_elements_is_within_2_percent() {
    let s = Server::start(&[]);
    let mut r = s.raw();
    add_range(&mut r, "big", 0, 100_000);
    assert_eq!(r.cmd(&["PFDEBUG", "ENCODING", "big"]).str(), "dense");
    assert_eq!(int(r.cmd(&["STRLEN", "big"])), 12304);
    let n = int(r.cmd(&["PFCOUNT", "big"]));
    assert_close(n, 100_000, 0.02);
    // Adding them again changes nothing; the cached count answers the same.
    add_range(&mut r, "big", 0, 1000);
    assert_eq!(int(r.cmd(&["PFADD", "big", "el:5"])), 0);
    assert_eq!(int(r.cmd(&["PFCOUNT", "big"])), n);
}

#[test]
fn pfmerge_and_pfcount_across_shards_give_the_union() {
    let s = Server::start(&[]);
    let mut r = s.raw();
    let keys = key_per_shard("hll");
    // Overlapping ranges: key i holds el:(i*5000) .. el:(i*5000 + 10000).
    for (i, k) in keys.iter().enumerate() {
        let from = i as u64 * 5000;
        add_range(&mut r, k, from, from + 10_000);
    }
    let truth = (keys.len() as i64 - 1) * 5000 + 10_000;
    let mut args: Vec<&str> = vec!["PFCOUNT"];
    args.extend(keys.iter().map(String::as_str));
    let union = int(r.cmd(&args));
    assert_close(union, truth, 0.02);
    // The destination on yet another key (any shard): PFMERGE reads every shard atomically.
    let mut args: Vec<&str> = vec!["PFMERGE", "merged"];
    args.extend(keys.iter().map(String::as_str));
    assert_eq!(r.cmd(&args).str(), "OK");
    assert_eq!(int(r.cmd(&["PFCOUNT", "merged"])), union);
    // Merging a key with itself and an empty source changes no register.
    let before = r.cmd(&["PFDEBUG", "GETREG", &keys[0]]);
    assert_eq!(r.cmd(&["PFMERGE", &keys[0], "nosuchkey"]).str(), "OK");
    assert_eq!(r.cmd(&["PFDEBUG", "GETREG", &keys[0]]), before);
    assert_ne!(r.cmd(&["PFDEBUG", "GETREG", "merged"]), before);
}

#[test]
fn dump_restore_round_trips_sparse_and_dense() {
    let s = Server::start(&[]);
    let mut r = s.raw();
    add_range(&mut r, "sparse", 0, 300);
    add_range(&mut r, "dense", 0, 20_000);
    assert_eq!(r.cmd(&["PFDEBUG", "ENCODING", "sparse"]).str(), "sparse");
    assert_eq!(r.cmd(&["PFDEBUG", "ENCODING", "dense"]).str(), "dense");
    for k in ["sparse", "dense"] {
        let count = int(r.cmd(&["PFCOUNT", k]));
        let value = bytes(r.cmd(&["GET", k]));
        let payload = bytes(r.cmd(&["DUMP", k]));
        let copy = format!("{k}-copy");
        assert_eq!(
            cmd_bin(&mut r, &[b"RESTORE", copy.as_bytes(), b"0", &payload]).str(),
            "OK"
        );
        assert_eq!(bytes(r.cmd(&["GET", &copy])), value, "{k}");
        assert_eq!(int(r.cmd(&["PFCOUNT", &copy])), count, "{k}");
        assert_eq!(int(r.cmd(&["PFADD", &copy, "el:1"])), 0, "{k}");
        assert_eq!(r.cmd(&["PFDEBUG", "ENCODING", &copy]).str(), k);
    }
}

#[test]
fn aof_restart_gives_back_the_same_bytes() {
    let dir = std::env::temp_dir().join(format!("basalt-hll-aof-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let opts = ["--appendonly", "yes", "--appendfsync", "always", "--dir", d];
    let keys = ["s1", "s2", "dense", "merged", "todense", "cached", "{s1}m"];
    let before: Vec<Vec<u8>> = {
        let s = Server::start(&opts);
        let mut r = s.raw();
        add_range(&mut r, "s1", 0, 100);
        add_range(&mut r, "s2", 50, 400);
        add_range(&mut r, "dense", 0, 8000);
        // Stale caches made valid by PFCOUNT: propagated, so the restart has them too.
        int(r.cmd(&["PFCOUNT", "s1"]));
        int(r.cmd(&["PFCOUNT", "dense"]));
        add_range(&mut r, "cached", 0, 10);
        int(r.cmd(&["PFCOUNT", "cached"]));
        assert_eq!(r.cmd(&["PFMERGE", "merged", "s1", "s2", "dense"]).str(), "OK");
        assert_eq!(r.cmd(&["PFMERGE", "{s1}m", "s1", "s2"]).str(), "OK");
        add_range(&mut r, "todense", 0, 5);
        assert_eq!(int(r.cmd(&["PFDEBUG", "TODENSE", "todense"])), 1);
        assert_eq!(int(r.cmd(&["PFCOUNT", "s1", "s2"])), int(r.cmd(&["PFCOUNT", "{s1}m"])));
        let got = keys.iter().map(|k| bytes(r.cmd(&["GET", k]))).collect();
        // Killed, not shut down: the restart replays the AOF (every write fsynced).
        drop(r);
        drop(s);
        got
    };
    let s = Server::start(&opts);
    let mut r = s.raw();
    for (k, want) in keys.iter().zip(&before) {
        assert_eq!(&bytes(r.cmd(&["GET", k])), want, "{k} after the restart");
    }
    assert_eq!(r.cmd(&["PFDEBUG", "ENCODING", "todense"]).str(), "dense");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stored_bytes_match_redis_server() {
    if !common::have_redis() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("basalt-hll-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let redis = RedisServer::start(&dir, &[]);
    let basalt = Server::start(&[]);
    let mut conns = [redis.raw(), basalt.raw()];
    for c in &mut conns {
        c.set_timeout(Duration::from_secs(30));
    }
    let keys = ["small", "mid", "dense", "merged", "{small}x"];
    let mut got: Vec<Vec<Vec<u8>>> = Vec::new();
    for r in &mut conns {
        add_range(r, "small", 0, 20);
        add_range(r, "mid", 100, 1500);
        add_range(r, "dense", 0, 30_000);
        int(r.cmd(&["PFCOUNT", "small"]));
        int(r.cmd(&["PFCOUNT", "dense"]));
        assert_eq!(r.cmd(&["PFADD", "small", "x", "y", "z"]).str(), "1");
        assert_eq!(r.cmd(&["PFMERGE", "merged", "small", "mid"]).str(), "OK");
        assert_eq!(r.cmd(&["PFMERGE", "{small}x", "small", "dense"]).str(), "OK");
        int(r.cmd(&["PFCOUNT", "{small}x"]));
        got.push(keys.iter().map(|k| bytes(r.cmd(&["GET", k]))).collect());
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(got[0][i].len(), got[1][i].len(), "{k}: length");
        assert!(got[0][i] == got[1][i], "{k}: bytes differ from redis-server's");
    }
    redis.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
