//! Black-box tests for hashes: the real `basalt` binary with `--shards 4`, driven by the
//! `redis` crate.
//!
//! Run: `cargo test --test hashes` (`BASALT_BIN=path` runs them against another build).

mod common;

use common::{shard_of, Server, SHARDS};
use std::collections::{HashMap, HashSet};

fn encoding(con: &mut redis::Connection, key: &str) -> String {
    redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(key)
        .query(con)
        .expect("OBJECT ENCODING")
}

/// Keys that live on different shards, so the hammer crosses every shard.
fn keys_on_distinct_shards(n: usize) -> Vec<String> {
    let mut keys = Vec::new();
    let mut shards = HashSet::new();
    for i in 0.. {
        let k = format!("counter:{i}");
        if shards.insert(shard_of(&k)) {
            keys.push(k);
        }
        if keys.len() == n.min(SHARDS as usize) {
            break;
        }
    }
    keys
}

/// HINCRBY from many connections at once: no increment is lost or applied twice, on
/// listpack-encoded and hashtable-encoded hashes alike.
#[test]
fn concurrent_hincrby_totals() {
    let server = Server::start(&[]);
    let keys = keys_on_distinct_shards(4);
    {
        // One of the hashes starts as a hash table, so both encodings are hammered.
        let mut con = server.conn();
        let long = "x".repeat(100);
        let _: i64 = redis::cmd("HSET")
            .arg(&keys[0])
            .arg("pad")
            .arg(&long)
            .query(&mut con)
            .unwrap();
        assert_eq!(encoding(&mut con, &keys[0]), "hashtable");
    }
    const THREADS: usize = 8;
    const OPS: usize = 400;
    const FIELDS: usize = 5;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let url = server.url();
            let keys = keys.clone();
            std::thread::spawn(move || {
                let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
                for i in 0..OPS {
                    let key = &keys[(t + i) % keys.len()];
                    let field = format!("f{}", i % FIELDS);
                    let by = (t % 3) as i64 + 1;
                    let _: i64 = redis::cmd("HINCRBY")
                        .arg(key)
                        .arg(&field)
                        .arg(by)
                        .query(&mut con)
                        .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let mut expected: HashMap<(String, String), i64> = HashMap::new();
    for t in 0..THREADS {
        for i in 0..OPS {
            let key = keys[(t + i) % keys.len()].clone();
            *expected.entry((key, format!("f{}", i % FIELDS))).or_default() += (t % 3) as i64 + 1;
        }
    }
    let mut con = server.conn();
    for ((key, field), want) in &expected {
        let got: i64 = redis::cmd("HGET").arg(key).arg(field).query(&mut con).unwrap();
        assert_eq!(got, *want, "{key} {field}");
    }
    let total: i64 = expected.values().sum();
    let mut seen = 0;
    for key in &keys {
        let all: HashMap<String, String> = redis::cmd("HGETALL").arg(key).query(&mut con).unwrap();
        seen += all
            .iter()
            .filter(|(f, _)| f.starts_with('f'))
            .map(|(_, v)| v.parse::<i64>().unwrap())
            .sum::<i64>();
    }
    assert_eq!(seen, total);
}

/// A hash filled past `hash-max-listpack-entries` converts at exactly the threshold and
/// keeps every field through the conversion; HGETALL returns all of them.
#[test]
fn large_hash_crosses_the_listpack_threshold() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    for i in 0..512 {
        let n: i64 = redis::cmd("HSET")
            .arg("big")
            .arg(format!("field:{i}"))
            .arg(i)
            .query(&mut con)
            .unwrap();
        assert_eq!(n, 1);
    }
    assert_eq!(encoding(&mut con, "big"), "listpack");
    let _: i64 = redis::cmd("HSET")
        .arg("big")
        .arg("field:0")
        .arg("updated")
        .query(&mut con)
        .unwrap();
    assert_eq!(encoding(&mut con, "big"), "listpack");
    // The rest in one command, crossing the threshold mid-way.
    let mut cmd = redis::cmd("HSET");
    cmd.arg("big");
    for i in 512..3000 {
        cmd.arg(format!("field:{i}")).arg(i);
    }
    let n: i64 = cmd.query(&mut con).unwrap();
    assert_eq!(n, 2488);
    assert_eq!(encoding(&mut con, "big"), "hashtable");
    let all: HashMap<String, String> = redis::cmd("HGETALL").arg("big").query(&mut con).unwrap();
    assert_eq!(all.len(), 3000);
    for i in 1..3000 {
        assert_eq!(all[&format!("field:{i}")], i.to_string());
    }
    assert_eq!(all["field:0"], "updated");
    let len: i64 = redis::cmd("HLEN").arg("big").query(&mut con).unwrap();
    assert_eq!(len, 3000);
    // Deleting back below the threshold keeps the hash table (conversion is one-way).
    let mut del = redis::cmd("HDEL");
    del.arg("big");
    for i in 10..3000 {
        del.arg(format!("field:{i}"));
    }
    let n: i64 = del.query(&mut con).unwrap();
    assert_eq!(n, 2990);
    assert_eq!(encoding(&mut con, "big"), "hashtable");
    let keys: Vec<String> = redis::cmd("HKEYS").arg("big").query(&mut con).unwrap();
    assert_eq!(keys.len(), 10);
}

/// HSCAN over a hashtable-encoded hash, with no writes during the iteration, returns every
/// field exactly once, whatever COUNT says, and MATCH filters.
#[test]
fn hscan_returns_every_field_exactly_once() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    const N: usize = 5000;
    let mut cmd = redis::cmd("HSET");
    cmd.arg("h");
    for i in 0..N {
        cmd.arg(format!("f{i}")).arg(format!("v{i}"));
    }
    let _: i64 = cmd.query(&mut con).unwrap();
    assert_eq!(encoding(&mut con, "h"), "hashtable");
    for count in [1usize, 10, 97, 10_000] {
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut cursor = "0".to_string();
        let mut calls = 0;
        loop {
            let (next, items): (String, Vec<String>) = redis::cmd("HSCAN")
                .arg("h")
                .arg(&cursor)
                .arg("COUNT")
                .arg(count)
                .query(&mut con)
                .unwrap();
            assert_eq!(items.len() % 2, 0);
            for pair in items.chunks(2) {
                let old = seen.insert(pair[0].clone(), pair[1].clone());
                assert!(old.is_none(), "field {} returned twice (COUNT {count})", pair[0]);
            }
            calls += 1;
            cursor = next;
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), N, "COUNT {count}");
        for (f, v) in &seen {
            assert_eq!(&f[1..], &v[1..]);
        }
        if count == 1 {
            assert!(calls > 100, "{calls} calls");
        }
    }
    // MATCH: only f1, f10..f19, f100..f199, f1000..f1999.
    let mut matched = HashSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, items): (String, Vec<String>) = redis::cmd("HSCAN")
            .arg("h")
            .arg(&cursor)
            .arg("MATCH")
            .arg("f1*")
            .query(&mut con)
            .unwrap();
        for pair in items.chunks(2) {
            assert!(pair[0].starts_with("f1"));
            assert!(matched.insert(pair[0].clone()));
        }
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(matched.len(), 1 + 10 + 100 + 1000);
}
