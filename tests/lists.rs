//! Black-box tests for lists: the real `basalt` binary with `--shards 4`, keys deliberately
//! spread over different shards, so LMOVE/RPOPLPUSH/LMPOP take the cross-shard (reserved,
//! atomic) path.
//!
//! Run: `cargo test --test lists` (`BASALT_BIN=path` runs them against another build).

mod common;

use common::{shard_of, Rng, Server, SHARDS};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// `n` keys named `<prefix><i>`, each on a different shard.
fn keys_on_distinct_shards(prefix: &str, n: usize) -> Vec<String> {
    assert!(n <= SHARDS as usize);
    let mut seen = BTreeSet::new();
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| seen.insert(shard_of(k)))
        .take(n)
        .collect()
}

fn lrange(con: &mut redis::Connection, key: &str) -> Vec<String> {
    redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query(con).expect("LRANGE")
}

fn llen(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("LLEN").arg(key).query(con).expect("LLEN")
}

/// The invariant: lists on four shards form a ring; many connections move elements
/// around it with LMOVE, RPOPLPUSH and BLMOVE (all directions) while readers watch. No
/// element is ever lost or duplicated: every list always holds distinct elements of the
/// universe, every move that found an element returns one, and at the end the ring holds
/// exactly the elements it started with.
#[test]
fn lmove_ring_conserves_elements_across_shards() {
    let server = Server::start(&[]);
    let ring = keys_on_distinct_shards("ring", SHARDS as usize);
    let per_list = 40;
    let universe: BTreeSet<String> = (0..ring.len() * per_list).map(|i| format!("e{i}")).collect();
    {
        let mut con = server.conn();
        for (i, key) in ring.iter().enumerate() {
            let items: Vec<String> = (i * per_list..(i + 1) * per_list).map(|j| format!("e{j}")).collect();
            let _: i64 = redis::cmd("RPUSH").arg(key).arg(&items).query(&mut con).expect("RPUSH");
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let moved = Arc::new(AtomicU64::new(0));
    let movers: Vec<_> = (0..6u64)
        .map(|t| {
            let (url, ring, universe, moved) = (server.url(), ring.clone(), universe.clone(), Arc::clone(&moved));
            std::thread::spawn(move || {
                let mut con = redis::Client::open(url)
                    .expect("client")
                    .get_connection()
                    .expect("connect");
                let mut rng = Rng::new(0x5eed + t);
                for _ in 0..400 {
                    let i = rng.below(ring.len() as u64) as usize;
                    // Movers go both ways round the ring, so some lists drain and refill.
                    let j = if rng.below(2) == 0 {
                        (i + 1) % ring.len()
                    } else {
                        (i + ring.len() - 1) % ring.len()
                    };
                    let side = |r: &mut Rng| if r.below(2) == 0 { "LEFT" } else { "RIGHT" };
                    let got: Option<String> = match rng.below(3) {
                        0 => redis::cmd("LMOVE")
                            .arg(&ring[i])
                            .arg(&ring[j])
                            .arg(side(&mut rng))
                            .arg(side(&mut rng))
                            .query(&mut con)
                            .expect("LMOVE"),
                        1 => redis::cmd("RPOPLPUSH")
                            .arg(&ring[i])
                            .arg(&ring[j])
                            .query(&mut con)
                            .expect("RPOPLPUSH"),
                        _ => redis::cmd("BLMOVE")
                            .arg(&ring[i])
                            .arg(&ring[j])
                            .arg(side(&mut rng))
                            .arg(side(&mut rng))
                            .arg(0.01)
                            .query(&mut con)
                            .expect("BLMOVE"),
                    };
                    if let Some(e) = got {
                        assert!(universe.contains(&e), "moved an element that never existed: {e:?}");
                        moved.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (url, ring, universe, stop) = (server.url(), ring.clone(), universe.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut con = redis::Client::open(url)
                    .expect("client")
                    .get_connection()
                    .expect("connect");
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // One pipeline of every list: each read is of one key, so each list on
                    // its own must be consistent even while elements fly between shards.
                    let mut p = redis::pipe();
                    for k in &ring {
                        p.cmd("LRANGE").arg(k).arg(0).arg(-1);
                        p.cmd("LLEN").arg(k);
                    }
                    let replies: Vec<redis::Value> = p.query(&mut con).expect("pipeline");
                    for pair in replies.chunks(2) {
                        let items: Vec<String> = redis::from_redis_value(&pair[0]).expect("items");
                        let len: usize = redis::from_redis_value(&pair[1]).expect("len");
                        let distinct: BTreeSet<&String> = items.iter().collect();
                        assert_eq!(distinct.len(), items.len(), "a list holds a duplicate: {items:?}");
                        assert!(
                            items.iter().all(|e| universe.contains(e)),
                            "foreign element in {items:?}"
                        );
                        assert!(len <= universe.len(), "a list longer than the universe: {len}");
                    }
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    for m in movers {
        m.join().expect("mover");
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().expect("reader") > 0, "a reader never completed a round");
    }

    let mut con = server.conn();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for k in &ring {
        let items = lrange(&mut con, k);
        assert_eq!(items.len() as i64, llen(&mut con, k));
        total += items.len();
        for e in items {
            *seen.entry(e).or_default() += 1;
        }
    }
    assert_eq!(total, universe.len(), "elements lost or duplicated");
    assert!(seen.values().all(|&n| n == 1), "an element appears twice");
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), universe);
    assert!(moved.load(Ordering::Relaxed) > 1000, "movers hardly moved anything");
}

/// LMOVE between keys on different shards moves exactly one element per call, in the order
/// the directions say; a WRONGTYPE destination leaves the source untouched; moving the last
/// element deletes the source.
#[test]
fn cross_shard_lmove_moves_exactly_one() {
    let server = Server::start(&[]);
    let keys = keys_on_distinct_shards("mv", 3);
    let (src, dst, other) = (&keys[0], &keys[1], &keys[2]);
    assert_ne!(shard_of(src), shard_of(dst));
    let mut con = server.conn();
    let items: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let _: i64 = redis::cmd("RPUSH").arg(src).arg(&items).query(&mut con).expect("RPUSH");
    for i in 0..30 {
        let got: Option<String> = redis::cmd("LMOVE")
            .arg(src)
            .arg(dst)
            .arg("LEFT")
            .arg("RIGHT")
            .query(&mut con)
            .expect("LMOVE");
        assert_eq!(got, Some(i.to_string()));
        assert_eq!(llen(&mut con, src), 99 - i);
        assert_eq!(llen(&mut con, dst), i + 1);
    }
    assert_eq!(lrange(&mut con, dst), items[..30].to_vec());

    let _: () = redis::cmd("SET").arg(other).arg("string").query(&mut con).expect("SET");
    let err = redis::cmd("RPOPLPUSH")
        .arg(src)
        .arg(other)
        .query::<Option<String>>(&mut con);
    assert!(format!("{err:?}").contains("WRONGTYPE"), "{err:?}");
    assert_eq!(llen(&mut con, src), 70);

    let _: () = redis::cmd("LTRIM")
        .arg(src)
        .arg(0)
        .arg(0)
        .query(&mut con)
        .expect("LTRIM");
    let last: Option<String> = redis::cmd("RPOPLPUSH")
        .arg(src)
        .arg(dst)
        .query(&mut con)
        .expect("RPOPLPUSH");
    assert_eq!(last, Some("30".into()));
    let exists: i64 = redis::cmd("EXISTS").arg(src).query(&mut con).expect("EXISTS");
    assert_eq!(exists, 0);
    assert_eq!(lrange(&mut con, dst)[0], "30");
    let none: Option<String> = redis::cmd("LMOVE")
        .arg(src)
        .arg(dst)
        .arg("LEFT")
        .arg("LEFT")
        .query(&mut con)
        .expect("LMOVE");
    assert_eq!(none, None);
    assert_eq!(llen(&mut con, dst), 31);
}

/// LMPOP and BLPOP over keys on every shard serve the first non-empty list in argument
/// order, and pop exactly what they report.
#[test]
fn multi_key_pops_across_shards_take_the_first_non_empty_list() {
    let server = Server::start(&[]);
    let keys = keys_on_distinct_shards("mp", SHARDS as usize);
    let mut con = server.conn();
    let _: i64 = redis::cmd("RPUSH")
        .arg(&keys[2])
        .arg(&["a", "b", "c"])
        .query(&mut con)
        .expect("RPUSH");
    let _: i64 = redis::cmd("RPUSH")
        .arg(&keys[3])
        .arg(&["x"])
        .query(&mut con)
        .expect("RPUSH");
    let (key, items): (String, Vec<String>) = redis::cmd("LMPOP")
        .arg(keys.len())
        .arg(&keys)
        .arg("RIGHT")
        .arg("COUNT")
        .arg(2)
        .query(&mut con)
        .expect("LMPOP");
    assert_eq!(
        (key.as_str(), items),
        (keys[2].as_str(), vec!["c".to_string(), "b".to_string()])
    );
    let (key, item): (String, String) = redis::cmd("BLPOP").arg(&keys).arg(0).query(&mut con).expect("BLPOP");
    assert_eq!((key.as_str(), item.as_str()), (keys[2].as_str(), "a"));
    let (key, item): (String, String) = redis::cmd("BRPOP").arg(&keys).arg(0).query(&mut con).expect("BRPOP");
    assert_eq!((key.as_str(), item.as_str()), (keys[3].as_str(), "x"));
    let none: Option<(String, Vec<String>)> = redis::cmd("LMPOP")
        .arg(keys.len())
        .arg(&keys)
        .arg("LEFT")
        .query(&mut con)
        .expect("LMPOP");
    assert_eq!(none, None);
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
    assert_eq!(dbsize, 0, "emptied lists are deleted");
}

/// Redis 7.2's encodings over the wire: listpack while small, quicklist past
/// list-max-listpack-size, listpack again once trimmed to half of it.
#[test]
fn encodings_follow_list_max_listpack_size() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let enc = |con: &mut redis::Connection| -> String {
        redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg("l")
            .query(con)
            .expect("OBJECT ENCODING")
    };
    let _: i64 = redis::cmd("RPUSH")
        .arg("l")
        .arg(&["a", "b", "c"])
        .query(&mut con)
        .expect("RPUSH");
    assert_eq!(enc(&mut con), "listpack");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("list-max-listpack-size")
        .arg(4)
        .query(&mut con)
        .expect("CONFIG SET");
    let _: i64 = redis::cmd("RPUSH")
        .arg("l")
        .arg(&["d", "e"])
        .query(&mut con)
        .expect("RPUSH");
    assert_eq!(enc(&mut con), "quicklist");
    let _: () = redis::cmd("LTRIM")
        .arg("l")
        .arg(0)
        .arg(1)
        .query(&mut con)
        .expect("LTRIM");
    assert_eq!(enc(&mut con), "listpack");
    assert_eq!(lrange(&mut con, "l"), vec!["a", "b"]);
    let big = "x".repeat(10_000);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("list-max-listpack-size")
        .arg(-2)
        .query(&mut con)
        .expect("CONFIG SET");
    let _: i64 = redis::cmd("LPUSH").arg("l").arg(&big).query(&mut con).expect("LPUSH");
    assert_eq!(enc(&mut con), "quicklist");
    let head: String = redis::cmd("LPOP").arg("l").query(&mut con).expect("LPOP");
    assert_eq!(head.len(), big.len());
    assert_eq!(enc(&mut con), "listpack");
}
