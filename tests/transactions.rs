//! Black-box tests of MULTI/EXEC/WATCH with `--shards 4`: transactions over keys on
//! different shards are atomic under concurrent load, WATCH gives correct optimistic
//! locking, errors follow Redis. Nothing here asserts speed.

mod common;

use common::{key_on_other_shard, Raw, Server, PATIENCE, V};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn exec_ints(c: &mut Raw, cmds: &[&[&str]]) -> Option<Vec<i64>> {
    assert_eq!(c.cmd(&["MULTI"]), V::Simple("OK".into()));
    for cmd in cmds {
        assert_eq!(c.cmd(cmd), V::Simple("QUEUED".into()));
    }
    match c.cmd(&["EXEC"]) {
        V::Nil => None,
        V::Arr(v) => Some(
            v.into_iter()
                .map(|x| match x {
                    V::Int(i) => i,
                    V::Bulk(b) => String::from_utf8(b).unwrap().parse().unwrap(),
                    other => panic!("unexpected {other:?}"),
                })
                .collect(),
        ),
        other => panic!("EXEC replied {other:?}"),
    }
}

/// Transfers between accounts on different shards; readers inside transactions always see
/// the same total.
#[test]
fn transfers_across_shards_are_never_seen_half_done() {
    let s = Server::start(&[]);
    let a = "acct:a".to_string();
    let b = key_on_other_shard(&a, "acct:b");
    let mut c = s.raw();
    c.cmd(&["SET", &a, "1000"]);
    c.cmd(&["SET", &b, "1000"]);
    let stop = Arc::new(AtomicBool::new(false));
    let port = s.port;
    let movers: Vec<_> = (0..4)
        .map(|i| {
            let (a, b) = (a.clone(), b.clone());
            std::thread::spawn(move || {
                let mut c = Raw::connect(port).unwrap();
                c.set_timeout(PATIENCE);
                for n in 0..150 {
                    let amt = ((n * 7 + i) % 13).to_string();
                    exec_ints(&mut c, &[&["DECRBY", &a, &amt], &["INCRBY", &b, &amt]]).expect("no WATCH");
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (a, b, stop) = (a.clone(), b.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = Raw::connect(port).unwrap();
                c.set_timeout(PATIENCE);
                let mut seen = 0;
                while !stop.load(Ordering::Relaxed) {
                    let v = exec_ints(&mut c, &[&["GET", &a], &["GET", &b]]).unwrap();
                    assert_eq!(v[0] + v[1], 2000, "saw half a transfer: {v:?}");
                    seen += 1;
                }
                seen
            })
        })
        .collect();
    for m in movers {
        m.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let total: i64 = [&a, &b]
        .iter()
        .map(|k| c.cmd(&["GET", k]).str().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, 2000);
}

/// WATCH/GET/MULTI/SET/EXEC retried until it succeeds: no increment is lost.
#[test]
fn watch_gives_optimistic_locking() {
    let s = Server::start(&[]);
    let port = s.port;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Raw::connect(port).unwrap();
                c.set_timeout(PATIENCE);
                let mut retries = 0;
                for _ in 0..50 {
                    loop {
                        c.cmd(&["WATCH", "counter"]);
                        let v: i64 = match c.cmd(&["GET", "counter"]) {
                            V::Nil => 0,
                            x => x.str().parse().unwrap(),
                        };
                        let next = (v + 1).to_string();
                        c.cmd(&["MULTI"]);
                        c.cmd(&["SET", "counter", &next]);
                        match c.cmd(&["EXEC"]) {
                            V::Nil => retries += 1,
                            V::Arr(_) => break,
                            other => panic!("{other:?}"),
                        }
                    }
                }
                retries
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(s.raw().cmd(&["GET", "counter"]), V::Bulk(b"200".to_vec()));
}

#[test]
fn watch_is_invalidated_by_writes_expiry_and_flush() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    let mut other = s.raw();
    let k2 = key_on_other_shard("w", "w2");
    // A write from another client.
    c.cmd(&["WATCH", "w", &k2]);
    other.cmd(&["SET", &k2, "x"]);
    assert_eq!(exec_ints(&mut c, &[&["INCR", "w"]]), None);
    // No write: EXEC runs, and UNWATCH happened with it.
    c.cmd(&["WATCH", "w"]);
    assert_eq!(exec_ints(&mut c, &[&["INCR", "w"]]), Some(vec![1]));
    other.cmd(&["SET", "w", "5"]);
    assert_eq!(exec_ints(&mut c, &[&["INCR", "w"]]), Some(vec![6]));
    // Expiry.
    c.cmd(&["SET", "e", "1", "PX", "50"]);
    c.cmd(&["WATCH", "e"]);
    std::thread::sleep(std::time::Duration::from_millis(120));
    assert_eq!(exec_ints(&mut c, &[&["EXISTS", "e"]]), None);
    // FLUSHALL touches existing watched keys.
    c.cmd(&["WATCH", "w"]);
    other.cmd(&["FLUSHALL"]);
    assert_eq!(exec_ints(&mut c, &[&["EXISTS", "w"]]), None);
    // DISCARD and UNWATCH forget the watch.
    c.cmd(&["SET", "w", "1"]);
    c.cmd(&["WATCH", "w"]);
    c.cmd(&["UNWATCH"]);
    other.cmd(&["SET", "w", "2"]);
    assert_eq!(exec_ints(&mut c, &[&["GET", "w"]]), Some(vec![2]));
}

#[test]
fn errors_follow_redis() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["EXEC"]), V::Err("ERR EXEC without MULTI".into()));
    assert_eq!(c.cmd(&["DISCARD"]), V::Err("ERR DISCARD without MULTI".into()));
    c.cmd(&["MULTI"]);
    assert_eq!(c.cmd(&["MULTI"]), V::Err("ERR MULTI calls can not be nested".into()));
    assert_eq!(
        c.cmd(&["WATCH", "x"]),
        V::Err("ERR WATCH inside MULTI is not allowed".into())
    );
    assert_eq!(
        c.cmd(&["SET", "x"]),
        V::Err("ERR wrong number of arguments for 'set' command".into())
    );
    assert_eq!(
        c.cmd(&["EXEC"]),
        V::Err("EXECABORT Transaction discarded because of previous errors.".into())
    );
    // Run-time errors don't stop the other commands.
    c.cmd(&["SET", "s", "str"]);
    c.cmd(&["MULTI"]);
    c.cmd(&["INCR", "s"]);
    c.cmd(&["SET", "t", "1"]);
    match c.cmd(&["EXEC"]) {
        V::Arr(v) => {
            assert!(matches!(&v[0], V::Err(e) if e.starts_with("ERR value is not an integer")));
            assert_eq!(v[1], V::Simple("OK".into()));
        }
        other => panic!("{other:?}"),
    }
    // Blocking commands inside MULTI don't block.
    c.cmd(&["MULTI"]);
    c.cmd(&["BLPOP", "nolist", "0"]);
    assert_eq!(c.cmd(&["EXEC"]), V::Arr(vec![V::Nil]));
    // CLIENT LIST shows the queue.
    c.cmd(&["MULTI"]);
    c.cmd(&["PING"]);
    let mut o = s.raw();
    let list = o.cmd(&["CLIENT", "LIST"]).str();
    assert!(list.contains("flags=x") && list.contains("multi=1"), "{list}");
    c.cmd(&["DISCARD"]);
}
