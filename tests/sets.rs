//! Black-box tests for the set commands on the real binary (`--shards 4`): multi-key set
//! commands are atomic across shards.
//!
//! Run: `cargo test --test sets`.

mod common;

use common::{shard_of, Rng, Server, SHARDS};
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `n` keys `<prefix><i>` covering every shard (round-robin over the shards).
fn keys_on_every_shard(prefix: &str, n: usize) -> Vec<String> {
    let mut by_shard: Vec<Vec<String>> = vec![Vec::new(); SHARDS as usize];
    let mut i = 0;
    while by_shard.iter().map(Vec::len).sum::<usize>() < n {
        let k = format!("{prefix}{i}");
        let s = shard_of(&k) as usize;
        if by_shard[s].len() < n.div_ceil(SHARDS as usize) {
            by_shard[s].push(k);
        }
        i += 1;
    }
    let mut out = Vec::new();
    for round in 0.. {
        for s in &by_shard {
            if let Some(k) = s.get(round) {
                out.push(k.clone());
            }
        }
        if out.len() >= n {
            break;
        }
    }
    out.truncate(n);
    out
}

/// A connection whose replies must come within a bound, so a stuck server fails the test
/// instead of hanging it.
fn conn(server: &Server) -> redis::Connection {
    let con = server.conn();
    con.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    con
}

fn members(con: &mut redis::Connection, cmd: &str, keys: &[String]) -> Vec<String> {
    redis::cmd(cmd).arg(keys).query(con).expect(cmd)
}

/// Members moved at random between sets on different shards by many connections never
/// vanish or double: concurrent SUNIONs over all the sets always see the whole membership,
/// SUNIONSTOREs store all of it, and no SINTER of two sets ever sees a member in both.
#[test]
fn smove_hammer_keeps_membership_across_shards() {
    const MEMBERS: usize = 200;
    const MOVERS: usize = 6;
    const MOVES: usize = 1500;
    let server = Server::start(&[]);
    let sets = keys_on_every_shard("ring:", 8);
    let shards: HashSet<u16> = sets.iter().map(|k| shard_of(k)).collect();
    assert_eq!(shards.len(), SHARDS as usize);
    let universe: Vec<String> = (0..MEMBERS)
        .map(|i| if i % 2 == 0 { i.to_string() } else { format!("m{i}") })
        .collect();
    {
        let mut con = server.conn();
        for (i, m) in universe.iter().enumerate() {
            let k = &sets[i % sets.len()];
            let added: i64 = redis::cmd("SADD").arg(k).arg(m).query(&mut con).unwrap();
            assert_eq!(added, 1);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let moved = Arc::new(AtomicU64::new(0));
    let movers: Vec<_> = (0..MOVERS)
        .map(|t| {
            let (sets, universe, moved, stop) = (sets.clone(), universe.clone(), moved.clone(), stop.clone());
            let mut con = conn(&server);
            std::thread::spawn(move || {
                let mut rng = Rng::new(1000 + t as u64);
                for _ in 0..MOVES {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let src = &sets[rng.below(sets.len() as u64) as usize];
                    let dst = &sets[rng.below(sets.len() as u64) as usize];
                    let m = &universe[rng.below(universe.len() as u64) as usize];
                    let r: i64 = redis::cmd("SMOVE").arg(src).arg(dst).arg(m).query(&mut con).unwrap();
                    moved.fetch_add(r as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let checkers: Vec<_> = (0..3)
        .map(|t| {
            let (sets, stop) = (sets.clone(), stop.clone());
            let store_key = format!("{{snap}}{t}");
            let mut con = conn(&server);
            std::thread::spawn(move || {
                // A violation stops everyone at once (and is reported after the joins).
                let fail = |msg: String| -> Result<u64, String> {
                    stop.store(true, Ordering::Relaxed);
                    Err(msg)
                };
                let mut rng = Rng::new(7 + t as u64);
                let mut checks = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let all = members(&mut con, "SUNION", &sets);
                    if all.len() != MEMBERS {
                        return fail(format!("SUNION saw {} members, not {MEMBERS}", all.len()));
                    }
                    let stored: i64 = redis::cmd("SUNIONSTORE")
                        .arg(&store_key)
                        .arg(&sets)
                        .query(&mut con)
                        .unwrap();
                    if stored as usize != MEMBERS {
                        return fail(format!("SUNIONSTORE stored {stored} members, not {MEMBERS}"));
                    }
                    let i = rng.below(sets.len() as u64) as usize;
                    let j = (i + 1 + rng.below(sets.len() as u64 - 1) as usize) % sets.len();
                    let both = members(&mut con, "SINTER", &[sets[i].clone(), sets[j].clone()]);
                    if !both.is_empty() {
                        return fail(format!("{both:?} in both {} and {}", sets[i], sets[j]));
                    }
                    let card: i64 = redis::cmd("SINTERCARD")
                        .arg(2)
                        .arg(&sets[i])
                        .arg(&sets[j])
                        .query(&mut con)
                        .unwrap();
                    if card != 0 {
                        return fail(format!("SINTERCARD {} {} = {card}", sets[i], sets[j]));
                    }
                    checks += 1;
                }
                Ok(checks)
            })
        })
        .collect();
    for m in movers {
        m.join().expect("mover");
    }
    stop.store(true, Ordering::Relaxed);
    let mut checks = 0;
    for c in checkers {
        match c.join().expect("checker") {
            Ok(n) => checks += n,
            Err(violation) => panic!("{violation}"),
        }
    }
    assert!(checks > 0);
    assert!(moved.load(Ordering::Relaxed) > 0);
    // Everything is accounted for, exactly once.
    let mut con = server.conn();
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for k in &sets {
        let ms: Vec<String> = redis::cmd("SMEMBERS").arg(k).query(&mut con).unwrap();
        total += ms.len();
        seen.extend(ms);
    }
    assert_eq!(total, MEMBERS);
    assert_eq!(seen, universe.iter().cloned().collect::<BTreeSet<_>>());
}

/// The *STORE commands with a destination and sources on different shards.
#[test]
fn stores_across_shards() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let k = keys_on_every_shard("x", 4);
    let (a, b, c, dst) = (&k[0], &k[1], &k[2], &k[3]);
    let q = |con: &mut redis::Connection, args: &[&str]| -> redis::Value {
        let mut cmd = redis::cmd(args[0]);
        for x in &args[1..] {
            cmd.arg(*x);
        }
        cmd.query(con).unwrap()
    };
    let int = |v: redis::Value| match v {
        redis::Value::Int(n) => n,
        other => panic!("not an integer: {other:?}"),
    };
    q(&mut con, &["SADD", a, "1", "2", "3", "x", "y"]);
    q(&mut con, &["SADD", b, "2", "3", "4", "y"]);
    q(&mut con, &["SADD", c, "3", "y", "z"]);
    assert_eq!(int(q(&mut con, &["SINTERSTORE", dst, a, b, c])), 2);
    let got: BTreeSet<String> = redis::cmd("SMEMBERS").arg(dst).query(&mut con).unwrap();
    assert_eq!(got, ["3", "y"].iter().map(|s| s.to_string()).collect());
    assert_eq!(int(q(&mut con, &["SDIFFSTORE", dst, a, b])), 2);
    let got: BTreeSet<String> = redis::cmd("SMEMBERS").arg(dst).query(&mut con).unwrap();
    assert_eq!(got, ["1", "x"].iter().map(|s| s.to_string()).collect());
    assert_eq!(int(q(&mut con, &["SUNIONSTORE", dst, a, b, c])), 7);
    // The destination may be a source.
    assert_eq!(int(q(&mut con, &["SDIFFSTORE", dst, dst, a])), 2);
    let got: BTreeSet<String> = redis::cmd("SMEMBERS").arg(dst).query(&mut con).unwrap();
    assert_eq!(got, ["4", "z"].iter().map(|s| s.to_string()).collect());
    // An empty result deletes the destination.
    assert_eq!(int(q(&mut con, &["SINTERSTORE", dst, a, "nokey"])), 0);
    assert_eq!(int(q(&mut con, &["EXISTS", dst])), 0);
    // A destination of another type is replaced; a source of another type fails.
    q(&mut con, &["SET", dst, "string"]);
    assert_eq!(int(q(&mut con, &["SUNIONSTORE", dst, a])), 5);
    q(&mut con, &["SET", c, "string"]);
    let err = redis::cmd("SINTERSTORE")
        .arg(dst)
        .arg(a)
        .arg(c)
        .query::<i64>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    assert_eq!(int(q(&mut con, &["SCARD", dst])), 5);
    // SINTERCARD's numkeys errors are Redis's, whatever the shards.
    let err = redis::cmd("SINTERCARD")
        .arg("abc")
        .arg(a)
        .query::<i64>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("numkeys should be greater than 0"), "{err}");
    let err = redis::cmd("SINTERCARD")
        .arg(5)
        .arg(a)
        .arg(b)
        .query::<i64>(&mut con)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Number of keys can't be greater than number of args"),
        "{err}"
    );
    assert_eq!(int(q(&mut con, &["SINTERCARD", "2", a, b, "LIMIT", "1"])), 1);
}

/// SPOP drains sets of every encoding exactly once, from several connections at a time.
#[test]
fn concurrent_spop_pops_each_member_once() {
    let server = Server::start(&[]);
    let keys = keys_on_every_shard("pop", 3);
    let mut con = server.conn();
    // An intset, a listpack and a hash table.
    let contents: Vec<Vec<String>> = vec![
        (0..300).map(|i| i.to_string()).collect(),
        (0..100).map(|i| format!("l{i}")).collect(),
        (0..2000).map(|i| format!("h{i}")).collect(),
    ];
    for (k, ms) in keys.iter().zip(&contents) {
        let _: i64 = redis::cmd("SADD").arg(k).arg(ms).query(&mut con).unwrap();
    }
    let enc: Vec<String> = keys
        .iter()
        .map(|k| redis::cmd("OBJECT").arg("ENCODING").arg(k).query(&mut con).unwrap())
        .collect();
    assert_eq!(enc, vec!["intset", "listpack", "hashtable"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let keys = keys.clone();
            let mut con = server.conn();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut rng = Rng::new(50 + t);
                loop {
                    let mut progressed = false;
                    for k in &keys {
                        let n = 1 + rng.below(7);
                        let ms: Vec<String> = if n == 1 {
                            let m: Option<String> = redis::cmd("SPOP").arg(k).query(&mut con).unwrap();
                            m.into_iter().collect()
                        } else {
                            redis::cmd("SPOP").arg(k).arg(n).query(&mut con).unwrap()
                        };
                        progressed |= !ms.is_empty();
                        got.extend(ms);
                    }
                    if !progressed || Instant::now() > deadline {
                        return got;
                    }
                }
            })
        })
        .collect();
    let mut all: Vec<String> = workers.into_iter().flat_map(|w| w.join().expect("worker")).collect();
    all.sort();
    let mut expected: Vec<String> = contents.concat();
    expected.sort();
    assert_eq!(all, expected);
    for k in &keys {
        let n: i64 = redis::cmd("EXISTS").arg(k).query(&mut con).unwrap();
        assert_eq!(n, 0);
    }
}
