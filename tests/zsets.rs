//! Black-box tests of the sorted set commands: the real `basalt` binary (`--shards 4`), cross-shard
//! set algebra, and concurrency hammers (ZINCRBY totals, ZPOPMIN pops each member once).
//!
//! Run: `cargo test --test zsets`.

mod common;

use common::{key_on_other_shard, shard_of, Server};
use redis::Commands;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

/// Three source keys and a destination on at least three different shards.
fn spread_keys() -> (String, String, String, String) {
    let a = "za".to_string();
    let b = key_on_other_shard(&a, "zb");
    let c = (0..)
        .map(|n| format!("zc{n}"))
        .find(|k| shard_of(k) != shard_of(&a) && shard_of(k) != shard_of(&b))
        .expect("a third shard");
    let d = key_on_other_shard(&c, "zd");
    (a, b, c, d)
}

fn withscores(con: &mut redis::Connection, key: &str) -> Vec<(String, f64)> {
    con.zrange_withscores(key, 0, -1).expect("ZRANGE")
}

#[test]
fn set_algebra_across_shards() {
    let s = Server::start(&[]);
    let mut con = s.conn();
    let (a, b, c, d) = spread_keys();
    let _: i64 = con.zadd_multiple(&a, &[(1, "x"), (2, "y"), (3, "z")]).unwrap();
    let _: i64 = con.zadd_multiple(&b, &[(10, "y"), (20, "z"), (30, "w")]).unwrap();
    let _: i64 = con.zadd_multiple(&c, &[(100, "z"), (200, "v")]).unwrap();

    let n: i64 = redis::cmd("ZUNIONSTORE")
        .arg(&d)
        .arg(3)
        .arg(&a)
        .arg(&b)
        .arg(&c)
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 5);
    assert_eq!(
        withscores(&mut con, &d),
        vec![
            ("x".into(), 1.0),
            ("y".into(), 12.0),
            ("w".into(), 30.0),
            ("z".into(), 123.0),
            ("v".into(), 200.0)
        ]
    );
    let n: i64 = redis::cmd("ZINTERSTORE")
        .arg(&d)
        .arg(3)
        .arg(&a)
        .arg(&b)
        .arg(&c)
        .arg("AGGREGATE")
        .arg("MAX")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(withscores(&mut con, &d), vec![("z".into(), 100.0)]);
    let n: i64 = redis::cmd("ZDIFFSTORE")
        .arg(&d)
        .arg(2)
        .arg(&a)
        .arg(&b)
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(withscores(&mut con, &d), vec![("x".into(), 1.0)]);
    // An empty result deletes the destination.
    let n: i64 = redis::cmd("ZINTERSTORE")
        .arg(&d)
        .arg(2)
        .arg(&a)
        .arg("nosuchkey")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 0);
    let exists: bool = con.exists(&d).unwrap();
    assert!(!exists);
    let card: i64 = redis::cmd("ZINTERCARD").arg(2).arg(&a).arg(&b).query(&mut con).unwrap();
    assert_eq!(card, 2);
    // ZRANGESTORE and ZMPOP across shards too.
    let n: i64 = redis::cmd("ZRANGESTORE")
        .arg(&c)
        .arg(&b)
        .arg(0)
        .arg(1)
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 2);
    let popped: (String, Vec<(String, f64)>) = redis::cmd("ZMPOP")
        .arg(3)
        .arg("nosuch")
        .arg(&a)
        .arg(&b)
        .arg("MAX")
        .arg("COUNT")
        .arg(2)
        .query(&mut con)
        .unwrap();
    assert_eq!(popped, (a.clone(), vec![("z".into(), 3.0), ("y".into(), 2.0)]));
}

#[test]
fn concurrent_zincrby_totals() {
    let s = Server::start(&[]);
    let (threads, per) = (8, 200);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let mut con = s.conn();
            std::thread::spawn(move || {
                for i in 0..per {
                    let _: f64 = con.zincr("hot", "m", 1).unwrap();
                    // Spread some increments over other members too.
                    let _: f64 = con.zincr("hot", format!("o{}", (t + i) % 7), 0.5).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let mut con = s.conn();
    let m: f64 = con.zscore("hot", "m").unwrap();
    assert_eq!(m, (threads * per) as f64);
    let all = withscores(&mut con, "hot");
    let others: f64 = all.iter().filter(|(k, _)| k != "m").map(|(_, s)| s).sum();
    assert_eq!(others, (threads * per) as f64 * 0.5);
    let enc: String = redis::cmd("OBJECT").arg("ENCODING").arg("hot").query(&mut con).unwrap();
    assert_eq!(enc, "listpack");
}

#[test]
fn concurrent_zpopmin_pops_each_member_once() {
    let s = Server::start(&[]);
    let mut con = s.conn();
    let total = 2000;
    // Big enough to be a skiplist.
    for chunk in (0..total).collect::<Vec<_>>().chunks(200) {
        let items: Vec<(i64, String)> = chunk.iter().map(|&i| (i as i64, format!("m{i}"))).collect();
        let _: i64 = con.zadd_multiple("q", &items).unwrap();
    }
    let enc: String = redis::cmd("OBJECT").arg("ENCODING").arg("q").query(&mut con).unwrap();
    assert_eq!(enc, "skiplist");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..6)
        .map(|t| {
            let mut con = s.conn();
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || loop {
                let got: Vec<(String, f64)> = if t % 2 == 0 {
                    redis::cmd("ZPOPMIN").arg("q").query(&mut con).unwrap()
                } else {
                    redis::cmd("ZPOPMIN").arg("q").arg(3).query(&mut con).unwrap()
                };
                if got.is_empty() {
                    break;
                }
                let mut s = seen.lock().unwrap();
                for (m, score) in got {
                    assert_eq!(m, format!("m{}", score as i64));
                    s.push(m);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), total);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), total);
    let exists: bool = con.exists("q").unwrap();
    assert!(!exists);
}

#[test]
fn skiplist_matches_a_model_over_the_wire() {
    let s = Server::start(&[]);
    let mut con = s.conn();
    let mut model: BTreeMap<String, i64> = BTreeMap::new();
    let mut x: u64 = 12345;
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let m = format!("k{}", x % 400);
        let score = (x >> 20) as i64 % 1000;
        if x % 5 == 0 {
            let _: i64 = con.zrem("s", &m).unwrap();
            model.remove(&m);
        } else {
            let _: i64 = con.zadd("s", &m, score).unwrap();
            model.insert(m, score);
        }
    }
    let mut want: Vec<(String, f64)> = model.iter().map(|(m, s)| (m.clone(), *s as f64)).collect();
    want.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then(a.0.cmp(&b.0)));
    assert_eq!(withscores(&mut con, "s"), want);
    for (i, (m, _)) in want.iter().enumerate().step_by(37) {
        let r: i64 = con.zrank("s", m).unwrap();
        assert_eq!(r, i as i64);
    }
    let n: i64 = con.zcount("s", 100, 500).unwrap();
    assert_eq!(
        n,
        want.iter().filter(|(_, s)| (100.0..=500.0).contains(s)).count() as i64
    );
    // ZSCAN returns every member.
    let mut cursor: u64 = 0;
    let mut got = HashSet::new();
    loop {
        let (next, items): (u64, Vec<String>) = redis::cmd("ZSCAN").arg("s").arg(cursor).query(&mut con).unwrap();
        for pair in items.chunks(2) {
            got.insert(pair[0].clone());
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(got.len(), want.len());
}
