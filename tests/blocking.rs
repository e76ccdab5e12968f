//! Black-box tests of blocking commands with `--shards 4`: served by the first key that gets
//! data, exactly once, first come first served, timeouts, CLIENT UNBLOCK, disconnects and
//! CLIENT KILL removing the waiter everywhere, BLMOVE atomic between shards, INFO
//! blocked_clients. Nothing here asserts speed: waits are polls with generous deadlines.

mod common;

use common::{key_on_other_shard, poll, shard_of, Raw, Server, PATIENCE, V};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn blocked_clients(s: &Server) -> i64 {
    let info = s.raw().cmd(&["INFO", "clients"]).str();
    info.lines()
        .find_map(|l| {
            l.trim_end()
                .strip_prefix("blocked_clients:")
                .map(|v| v.parse().unwrap())
        })
        .expect("blocked_clients in INFO")
}

/// Waits until `n` clients are blocked.
fn await_blocked(s: &Server, n: i64) {
    assert!(
        poll(PATIENCE, || (blocked_clients(s) == n).then_some(())).is_some(),
        "expected {n} blocked clients, have {}",
        blocked_clients(s)
    );
}

/// Four keys on four different shards.
fn spread_keys() -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for i in 0.. {
        let k = format!("q{i}");
        if keys.iter().all(|o| shard_of(o) != shard_of(&k)) {
            keys.push(k);
        }
        if keys.len() == 4 {
            break;
        }
    }
    keys
}

fn arr(items: &[&str]) -> V {
    V::Arr(items.iter().map(|s| V::Bulk(s.as_bytes().to_vec())).collect())
}

#[test]
fn blpop_is_served_by_a_later_push() {
    let s = Server::start(&[]);
    let mut waiter = s.raw();
    waiter.send(&["BLPOP", "q", "0"]).unwrap();
    await_blocked(&s, 1);
    assert_eq!(s.raw().cmd(&["RPUSH", "q", "x", "y"]), V::Int(2));
    assert_eq!(waiter.read().unwrap(), arr(&["q", "x"]));
    assert_eq!(s.raw().cmd(&["LRANGE", "q", "0", "-1"]), arr(&["y"]));
    assert_eq!(blocked_clients(&s), 0);
}

#[test]
fn waiter_on_keys_of_several_shards_is_served_by_the_first_key_with_data() {
    let s = Server::start(&[]);
    let keys = spread_keys();
    let mut waiter = s.raw();
    let mut cmd = vec!["BRPOP"];
    cmd.extend(keys.iter().map(String::as_str));
    cmd.push("0");
    waiter.send(&cmd).unwrap();
    await_blocked(&s, 1);
    assert_eq!(s.raw().cmd(&["LPUSH", &keys[2], "v"]), V::Int(1));
    assert_eq!(waiter.read().unwrap(), arr(&[&keys[2], "v"]));
    // Served once: later pushes on the other keys stay.
    let mut c = s.raw();
    assert_eq!(c.cmd(&["LPUSH", &keys[0], "w"]), V::Int(1));
    assert_eq!(c.cmd(&["LPUSH", &keys[3], "w"]), V::Int(1));
    assert_eq!(c.cmd(&["LLEN", &keys[0]]), V::Int(1));
    assert_eq!(c.cmd(&["LLEN", &keys[3]]), V::Int(1));
}

#[test]
fn immediate_data_is_served_without_blocking_in_key_order() {
    let s = Server::start(&[]);
    let keys = spread_keys();
    let mut c = s.raw();
    c.cmd(&["RPUSH", &keys[1], "a"]);
    c.cmd(&["RPUSH", &keys[3], "b"]);
    assert_eq!(
        c.cmd(&["BLPOP", &keys[0], &keys[3], &keys[1], "0"]),
        arr(&[&keys[3], "b"])
    );
    assert_eq!(
        c.cmd(&["BLPOP", &keys[0], &keys[3], &keys[1], "0"]),
        arr(&[&keys[1], "a"])
    );
}

#[test]
fn waiters_on_one_key_are_served_first_come_first_served() {
    let s = Server::start(&[]);
    let mut waiters = Vec::new();
    for i in 0..3 {
        let mut w = s.raw();
        w.send(&["BLPOP", "fifo", "0"]).unwrap();
        await_blocked(&s, i + 1);
        waiters.push(w);
    }
    let mut c = s.raw();
    for v in ["1", "2", "3"] {
        c.cmd(&["RPUSH", "fifo", v]);
    }
    for (w, v) in waiters.iter_mut().zip(["1", "2", "3"]) {
        assert_eq!(w.read().unwrap(), arr(&["fifo", v]));
    }
}

#[test]
fn timeouts_and_their_errors() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    let t = Instant::now();
    assert_eq!(c.cmd(&["BLPOP", "none", "0.2"]), V::Nil);
    assert!(t.elapsed() >= Duration::from_millis(190));
    // A null array for BLMOVE too (Redis's replyToBlockedClientTimedOut).
    c.send(&["BLMOVE", "none", "x", "LEFT", "RIGHT", "0.05"]).unwrap();
    let mut raw = [0u8; 5];
    std::io::Read::read_exact(&mut c.r, &mut raw).unwrap();
    assert_eq!(&raw, b"*-1\r\n");
    assert_eq!(
        c.cmd(&["BLPOP", "none", "-1"]),
        V::Err("ERR timeout is negative".into())
    );
    assert_eq!(
        c.cmd(&["BLPOP", "none", "abc"]),
        V::Err("ERR timeout is not a float or out of range".into())
    );
    c.cmd(&["SET", "str", "x"]);
    assert_eq!(
        c.cmd(&["BLPOP", "str", "0"]),
        V::Err("WRONGTYPE Operation against a key holding the wrong kind of value".into())
    );
    // The connection goes on normally afterwards, pipelined commands included.
    c.send(&["BLPOP", "none", "0.05"]).unwrap();
    c.send(&["PING"]).unwrap();
    assert_eq!(c.read().unwrap(), V::Nil);
    assert_eq!(c.read().unwrap(), V::Simple("PONG".into()));
    assert_eq!(blocked_clients(&s), 0);
}

#[test]
fn commands_pipelined_after_a_blocked_one_wait_for_it() {
    let s = Server::start(&[]);
    let mut w = s.raw();
    w.send(&["BLPOP", "p", "0"]).unwrap();
    w.send(&["LLEN", "p"]).unwrap();
    await_blocked(&s, 1);
    s.raw().cmd(&["RPUSH", "p", "a", "b"]);
    assert_eq!(w.read().unwrap(), arr(&["p", "a"]));
    assert_eq!(w.read().unwrap(), V::Int(1));
}

#[test]
fn client_unblock_ends_the_wait_with_timeout_or_error() {
    let s = Server::start(&[]);
    let mut w = s.raw();
    let id = w.cmd(&["CLIENT", "ID"]).str();
    w.send(&["BLPOP", "u", "0"]).unwrap();
    await_blocked(&s, 1);
    let list = s.raw().cmd(&["CLIENT", "LIST", "ID", &id]).str();
    assert!(list.contains("flags=b"), "{list}");
    let mut c = s.raw();
    assert_eq!(c.cmd(&["CLIENT", "UNBLOCK", &id]), V::Int(1));
    assert_eq!(w.read().unwrap(), V::Nil);
    assert_eq!(c.cmd(&["CLIENT", "UNBLOCK", &id]), V::Int(0));
    w.send(&["BZPOPMIN", "u2", "0"]).unwrap();
    await_blocked(&s, 1);
    assert_eq!(c.cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"]), V::Int(1));
    assert_eq!(
        w.read().unwrap(),
        V::Err("UNBLOCKED client unblocked via CLIENT UNBLOCK".into())
    );
    assert_eq!(
        c.cmd(&["CLIENT", "UNBLOCK", &id, "MAYBE"]),
        V::Err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR".into())
    );
    // The unblocked waiter is gone from the key: a push stays in the list.
    c.cmd(&["RPUSH", "u", "kept"]);
    assert_eq!(c.cmd(&["LLEN", "u"]), V::Int(1));
}

#[test]
fn a_disconnected_or_killed_waiter_takes_nothing() {
    let s = Server::start(&[]);
    let keys = spread_keys();
    {
        let mut w = s.raw();
        w.send(&["BLPOP", &keys[0], &keys[1], "0"]).unwrap();
        await_blocked(&s, 1);
    } // dropped: the connection closes
    await_blocked(&s, 0);
    let mut w = s.raw();
    let id = w.cmd(&["CLIENT", "ID"]).str();
    w.send(&["BLPOP", &keys[2], &keys[3], "0"]).unwrap();
    await_blocked(&s, 1);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["CLIENT", "KILL", "ID", &id]), V::Int(1));
    await_blocked(&s, 0);
    for k in &keys {
        c.cmd(&["RPUSH", k, "v"]);
    }
    for k in &keys {
        assert_eq!(c.cmd(&["LLEN", k]), V::Int(1), "{k} lost its element to a dead waiter");
    }
}

#[test]
fn blmove_between_shards_is_atomic_and_wakes_on_push() {
    let s = Server::start(&[]);
    let src = "src".to_string();
    let dst = key_on_other_shard(&src, "dst");
    let mut w = s.raw();
    w.send(&["BLMOVE", &src, &dst, "LEFT", "RIGHT", "0"]).unwrap();
    await_blocked(&s, 1);
    let mut c = s.raw();
    c.cmd(&["RPUSH", &src, "a", "b"]);
    assert_eq!(w.read().unwrap(), V::Bulk(b"a".to_vec()));
    assert_eq!(c.cmd(&["LRANGE", &dst, "0", "-1"]), arr(&["a"]));
    assert_eq!(c.cmd(&["LRANGE", &src, "0", "-1"]), arr(&["b"]));
    // BRPOPLPUSH, served at once.
    assert_eq!(c.cmd(&["BRPOPLPUSH", &src, &dst, "0"]), V::Bulk(b"b".to_vec()));
    assert_eq!(c.cmd(&["LLEN", &dst]), V::Int(2));
}

#[test]
fn bzpopmin_is_served_by_zadd_on_another_shard_key() {
    let s = Server::start(&[]);
    let keys = spread_keys();
    let mut w = s.raw();
    w.send(&["BZPOPMIN", &keys[0], &keys[1], "0"]).unwrap();
    await_blocked(&s, 1);
    s.raw().cmd(&["ZADD", &keys[1], "2", "b", "1", "a"]);
    assert_eq!(
        w.read().unwrap(),
        V::Arr(vec![
            V::Bulk(keys[1].as_bytes().to_vec()),
            V::Bulk(b"a".to_vec()),
            V::Bulk(b"1".to_vec())
        ])
    );
}

/// Many waiters blocked on keys spread over all shards, many pushers: every element is
/// popped at most once, none is lost, and each served reply carries one element.
#[test]
fn every_element_is_delivered_exactly_once_under_load() {
    let s = Server::start(&[]);
    let port = s.port;
    let keys = spread_keys();
    let total = 400usize;
    let popped = Arc::new(Mutex::new(Vec::<String>::new()));
    let waiters: Vec<_> = (0..8)
        .map(|i| {
            let keys = keys.clone();
            let popped = popped.clone();
            std::thread::spawn(move || {
                let mut c = Raw::connect(port).expect("connect");
                c.set_timeout(PATIENCE);
                let mut cmd: Vec<&str> = vec![if i % 2 == 0 { "BLPOP" } else { "BRPOP" }];
                cmd.extend(keys.iter().map(String::as_str));
                cmd.push("1");
                loop {
                    match c.cmd(&cmd) {
                        V::Nil => return,
                        V::Arr(v) => {
                            assert_eq!(v.len(), 2);
                            popped.lock().unwrap().push(v[1].str());
                        }
                        other => panic!("unexpected reply {other:?}"),
                    }
                }
            })
        })
        .collect();
    let pushers: Vec<_> = (0..4)
        .map(|p| {
            let keys = keys.clone();
            std::thread::spawn(move || {
                let mut c = Raw::connect(port).expect("connect");
                c.set_timeout(PATIENCE);
                for n in 0..total / 4 {
                    let k = &keys[(n + p) % keys.len()];
                    c.cmd(&["RPUSH", k, &format!("{p}-{n}")]);
                }
            })
        })
        .collect();
    for p in pushers {
        p.join().unwrap();
    }
    for w in waiters {
        w.join().unwrap();
    }
    let popped = popped.lock().unwrap();
    let unique: HashSet<&String> = popped.iter().collect();
    assert_eq!(unique.len(), popped.len(), "an element was delivered twice");
    let mut c = s.raw();
    let left: i64 = keys
        .iter()
        .map(|k| c.cmd(&["LLEN", k]).str().parse::<i64>().unwrap())
        .sum();
    assert_eq!(popped.len() + left as usize, total, "elements lost");
    assert_eq!(blocked_clients(&s), 0);
}

/// A push and a pop pipelined by one client: the blocked client is served right after the
/// push, before the pop runs (as Redis serves after each command).
#[test]
fn blocked_clients_are_served_after_each_command() {
    let s = Server::start(&[]);
    let mut w = s.raw();
    w.send(&["BLPOP", "e", "0"]).unwrap();
    await_blocked(&s, 1);
    let mut c = s.raw();
    c.send(&["RPUSH", "e", "x"]).unwrap();
    c.send(&["LPOP", "e"]).unwrap();
    assert_eq!(c.read().unwrap(), V::Int(1));
    assert_eq!(c.read().unwrap(), V::Nil);
    assert_eq!(w.read().unwrap(), arr(&["e", "x"]));
}

/// Clients blocked in a database are served when SWAPDB brings the key in (as Redis).
#[test]
fn swapdb_serves_clients_blocked_in_the_swapped_database() {
    let s = Server::start(&[]);
    let mut w = s.raw();
    w.send(&["BLPOP", "sw", "0"]).unwrap();
    await_blocked(&s, 1);
    let mut c = s.raw();
    c.cmd(&["SELECT", "1"]);
    c.cmd(&["RPUSH", "sw", "from1"]);
    assert_eq!(c.cmd(&["SWAPDB", "0", "1"]), V::Simple("OK".into()));
    assert_eq!(w.read().unwrap(), arr(&["sw", "from1"]));
}

/// `usec=` of `cmdstat_<name>` in INFO commandstats.
fn cmd_usec(s: &Server, name: &str) -> u64 {
    let info = s.raw().cmd(&["INFO", "commandstats"]).str();
    let line = info
        .lines()
        .find(|l| l.starts_with(&format!("cmdstat_{name}:")))
        .unwrap_or_else(|| panic!("no cmdstat_{name} in {info}"));
    line.split(',')
        .find_map(|f| f.strip_prefix("usec="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no usec in {line}"))
}

/// The time a client spends blocked is not the command's duration (Redis's
/// updateStatsOnUnblock): a BRPOP that waited 300 ms, timed out or served, is neither in
/// the slow log nor 300 ms in commandstats or latencystats. (Celery's workers poll with
/// BRPOP and a 1 s timeout: counted as run time, every idle poll would look slow.)
#[test]
fn time_spent_blocked_is_not_command_time() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "100000"]),
        V::Simple("OK".into())
    );
    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]), V::Simple("OK".into()));
    assert_eq!(c.cmd(&["SLOWLOG", "RESET"]), V::Simple("OK".into()));
    // Timed out.
    assert_eq!(c.cmd(&["BRPOP", "idle", "0.3"]), V::Nil);
    // Served by a push 300 ms later, from another shard's connection.
    let keys = spread_keys();
    c.send(&["BRPOP", &keys[1], "0"]).unwrap();
    await_blocked(&s, 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.raw().cmd(&["LPUSH", &keys[1], "job"]), V::Int(1));
    assert_eq!(c.read().unwrap(), arr(&[&keys[1], "job"]));
    assert_eq!(
        c.cmd(&["SLOWLOG", "LEN"]),
        V::Int(0),
        "blocked time went into the slow log"
    );
    let usec = cmd_usec(&s, "brpop");
    assert!(
        usec < 100_000,
        "cmdstat_brpop usec={usec} counts the time spent blocked"
    );
    let lat = c.cmd(&["INFO", "latencystats"]).str();
    let line = lat
        .lines()
        .find(|l| l.starts_with("latency_percentiles_usec_brpop:"))
        .unwrap_or_else(|| panic!("no brpop histogram in {lat}"));
    let p99_9: f64 = line
        .split(',')
        .find_map(|f| f.strip_prefix("p99.9="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no p99.9 in {line}"));
    assert!(p99_9 < 100_000.0, "{line}");
}

/// CLIENT PAUSE WRITE holds commands that may write (SET, EVAL, EXEC of a write
/// transaction), counted as blocked, while reads (GET, EVAL_RO, EXEC of reads) go on;
/// UNPAUSE lets the held ones run, in order. CLIENT PAUSE ALL holds everything until its
/// timeout, and a held client that leaves is not counted any more.
#[test]
fn client_pause_write_and_all() {
    let s = Server::start(&[]);
    let mut admin = s.raw();
    admin.cmd(&["SET", "k", "before"]);
    // Queued before the pause (queueing a write during it is held too, as in Redis).
    let mut writers: Vec<Raw> = (0..3).map(|_| s.raw()).collect();
    writers[2].cmd(&["MULTI"]);
    writers[2].cmd(&["INCR", "n"]);
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]),
        V::Simple("OK".into())
    );
    let mut reader = s.raw();
    assert_eq!(reader.cmd(&["GET", "k"]), V::Bulk(b"before".to_vec()));
    assert_eq!(
        reader.cmd(&["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "k"]),
        V::Bulk(b"before".to_vec())
    );
    reader.cmd(&["MULTI"]);
    reader.cmd(&["GET", "k"]);
    assert_eq!(reader.cmd(&["EXEC"]), V::Arr(vec![V::Bulk(b"before".to_vec())]));
    writers[0].send(&["SET", "k", "after"]).unwrap();
    writers[1]
        .send(&["EVAL", "return redis.call('incr', KEYS[1])", "1", "n"])
        .unwrap();
    writers[2].send(&["EXEC"]).unwrap();
    await_blocked(&s, 3);
    assert_eq!(
        reader.cmd(&["GET", "k"]),
        V::Bulk(b"before".to_vec()),
        "no held write ran"
    );
    assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]), V::Simple("OK".into()));
    assert_eq!(writers[0].read().unwrap(), V::Simple("OK".into()));
    assert!(matches!(writers[1].read().unwrap(), V::Int(_)));
    assert!(matches!(writers[2].read().unwrap(), V::Arr(_)));
    assert_eq!(reader.cmd(&["GET", "n"]), V::Bulk(b"2".to_vec()));
    await_blocked(&s, 0);

    // ALL: even reads wait, until the timeout ends the pause.
    assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "1500"]), V::Simple("OK".into()));
    let mut held = s.raw();
    held.set_timeout(Duration::from_millis(200));
    held.send(&["GET", "k"]).unwrap();
    assert!(held.read().is_err(), "a read answered during CLIENT PAUSE ALL");
    let mut gone = s.raw();
    gone.send(&["GET", "k"]).unwrap();
    drop(gone);
    held.set_timeout(PATIENCE);
    assert_eq!(
        held.read().unwrap(),
        V::Bulk(b"after".to_vec()),
        "answered once the pause ended"
    );
    await_blocked(&s, 0);
}
