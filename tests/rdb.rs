//! RDB interoperability with Debian's redis-server 7.0, black-box: DUMP/RESTORE both ways
//! for every type and encoding, and (below) dump.rdb files written by one server loaded by
//! the other. Contents are compared key by key: type, value, deadline.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{encode, have_redis, Raw, RedisServer, Server, V};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("basalt-rdb-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cmd(r: &mut Raw, args: &[&[u8]]) -> V {
    r.write_all(&encode(args)).unwrap();
    r.read().unwrap()
}

fn ok(v: V) {
    assert_eq!(v, V::Simple("OK".into()));
}

/// Every type and encoding Redis 7.0 has (and basalt's 7.2 listpack sets), some with TTLs,
/// in databases 0 and 3.
fn populate(r: &mut Raw) {
    let mut c = |args: &[&str]| {
        let v = r.cmd(args);
        assert!(!matches!(v, V::Err(_)), "{args:?}: {v:?}");
    };
    c(&["SET", "str:int", "12345"]);
    c(&["SET", "str:neg", "-9223372036854775808"]);
    c(&["SET", "str:emb", "hello world"]);
    c(&["SET", "str:raw", &"abc".repeat(100)]);
    c(&["SET", "str:bin", "\u{0}\u{1}\u{ff}binary"]);
    c(&["SET", "str:ttl", "v", "PXAT", "4102444800123"]);
    c(&[
        "RPUSH",
        "list:small",
        "a",
        "1",
        "-200",
        "70000",
        "x".repeat(100).as_str(),
    ]);
    let many: Vec<String> = (0..3000).map(|i| format!("item-{i}-{}", "p".repeat(i % 50))).collect();
    let mut args = vec!["RPUSH", "list:big"];
    args.extend(many.iter().map(String::as_str));
    c(&args);
    c(&["HSET", "hash:small", "f1", "v1", "f2", "22", "f3", "-3"]);
    let mut args = vec!["HSET", "hash:big"];
    args.extend(many[..600].iter().map(String::as_str));
    c(&args);
    c(&["HSET", "hash:longval", "f", &"z".repeat(200)]);
    c(&["SADD", "set:int16", "1", "2", "3"]);
    c(&["SADD", "set:int64", "1", "5000000000", "-5000000000"]);
    c(&["SADD", "set:str", "a", "b", "c"]);
    let mut args = vec!["SADD", "set:big"];
    args.extend(many[..1000].iter().map(String::as_str));
    c(&args);
    c(&[
        "ZADD",
        "zset:small",
        "1",
        "a",
        "2.5",
        "b",
        "-3",
        "c",
        "0.1",
        "d",
        "inf",
        "e",
    ]);
    let scored: Vec<String> = (0..500)
        .flat_map(|i| [format!("{}", i as f64 / 3.0 + 0.25), format!("m{i}")])
        .collect();
    let mut args = vec!["ZADD", "zset:big"];
    args.extend(scored.iter().map(String::as_str));
    c(&args);
    c(&["PEXPIREAT", "zset:big", "4102444800999"]);
    c(&[
        "FUNCTION",
        "LOAD",
        "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return 42 end)",
    ]);
    c(&["SELECT", "3"]);
    c(&["SET", "db3:key", "in three"]);
    c(&["HSET", "db3:hash", "a", "b"]);
    c(&["SELECT", "0"]);
}

type Snapshot = BTreeMap<(usize, Vec<u8>), (String, Vec<Vec<u8>>, i64)>;

fn items(v: V) -> Vec<Vec<u8>> {
    match v {
        V::Arr(a) => a
            .into_iter()
            .map(|x| match x {
                V::Bulk(b) => b,
                other => other.str().into_bytes(),
            })
            .collect(),
        other => panic!("expected an array: {other:?}"),
    }
}

/// Every key of databases 0..16: type, contents (unordered types sorted), deadline.
fn snapshot(r: &mut Raw) -> Snapshot {
    let mut out = Snapshot::new();
    for db in 0..16usize {
        r.cmd(&["SELECT", &db.to_string()]);
        for k in items(r.cmd(&["KEYS", "*"])) {
            let t = cmd(r, &[b"TYPE", &k]).str();
            let mut v = match t.as_str() {
                "string" => vec![match cmd(r, &[b"GET", &k]) {
                    V::Bulk(b) => b,
                    other => panic!("{other:?}"),
                }],
                "list" => items(cmd(r, &[b"LRANGE", &k, b"0", b"-1"])),
                "hash" => {
                    let flat = items(cmd(r, &[b"HGETALL", &k]));
                    let mut pairs: Vec<Vec<u8>> = flat
                        .chunks(2)
                        .map(|p| [p[0].clone(), b"=".to_vec(), p[1].clone()].concat())
                        .collect();
                    pairs.sort();
                    pairs
                }
                "set" => items(cmd(r, &[b"SMEMBERS", &k])),
                "zset" => items(cmd(r, &[b"ZRANGE", &k, b"0", b"-1", b"WITHSCORES"])),
                other => panic!("type {other}"),
            };
            if t == "set" {
                v.sort();
            }
            let at = match cmd(r, &[b"PEXPIRETIME", &k]) {
                V::Int(n) => n,
                other => panic!("{other:?}"),
            };
            out.insert((db, k), (t, v, at));
        }
    }
    r.cmd(&["SELECT", "0"]);
    out
}

/// DUMP every key of `from` and RESTORE it into `to` with its deadline.
fn migrate(from: &mut Raw, to: &mut Raw) -> usize {
    let mut n = 0;
    for db in 0..16usize {
        from.cmd(&["SELECT", &db.to_string()]);
        to.cmd(&["SELECT", &db.to_string()]);
        for k in items(from.cmd(&["KEYS", "*"])) {
            let V::Bulk(payload) = cmd(from, &[b"DUMP", &k]) else {
                panic!("DUMP {k:?}")
            };
            let at = match cmd(from, &[b"PEXPIRETIME", &k]) {
                V::Int(n) if n > 0 => n.to_string(),
                _ => "0".to_string(),
            };
            ok(cmd(to, &[b"RESTORE", &k, at.as_bytes(), &payload, b"ABSTTL"]));
            n += 1;
        }
    }
    from.cmd(&["SELECT", "0"]);
    to.cmd(&["SELECT", "0"]);
    n
}

#[test]
fn dump_restore_both_ways_with_redis_server() {
    if !have_redis() {
        return;
    }
    let dir = tmpdir("dump");
    let redis = RedisServer::start(&dir, &[]);
    let mut theirs = redis.raw();
    populate(&mut theirs);
    let want = snapshot(&mut theirs);
    assert_eq!(want.len(), 19);
    let ours = Server::start(&[]);
    let mut b = ours.raw();
    assert_eq!(migrate(&mut theirs, &mut b), want.len());
    assert_eq!(snapshot(&mut b), want, "redis-server -> basalt");
    // And back: basalt's payloads into an emptied redis-server.
    ok(theirs.cmd(&["FLUSHALL"]));
    assert_eq!(migrate(&mut b, &mut theirs), want.len());
    assert_eq!(snapshot(&mut theirs), want, "basalt -> redis-server");
    let _ = std::fs::remove_dir_all(&dir);
}

fn wait_for(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dump_rdb_written_by_redis_server_loads_into_basalt() {
    if !have_redis() {
        return;
    }
    let dir = tmpdir("from-redis");
    let want = {
        let redis = RedisServer::start(&dir, &[]);
        let mut r = redis.raw();
        populate(&mut r);
        ok(r.cmd(&["SAVE"]));
        snapshot(&mut r)
    };
    assert!(dir.join("dump.rdb").exists());
    let ours = Server::start(&["--dir", dir.to_str().unwrap()]);
    let mut b = ours.raw();
    assert_eq!(snapshot(&mut b), want);
    assert_eq!(b.cmd(&["FCALL", "myfunc", "0"]), V::Int(42));
    assert!(ours.log_text().contains("DB loaded from disk"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dump_rdb_written_by_basalt_loads_into_redis_server() {
    if !have_redis() {
        return;
    }
    let dir = tmpdir("to-redis");
    let ours = Server::start(&["--dir", dir.to_str().unwrap()]);
    let mut b = ours.raw();
    populate(&mut b);
    let want = snapshot(&mut b);
    let before = match b.cmd(&["LASTSAVE"]) {
        V::Int(n) => n,
        other => panic!("{other:?}"),
    };
    ok(b.cmd(&["SAVE"]));
    assert!(matches!(b.cmd(&["LASTSAVE"]), V::Int(n) if n >= before));
    let info = b.cmd(&["INFO", "persistence"]).str();
    assert!(info.contains("rdb_changes_since_last_save:0\r\n"), "{info}");
    assert!(info.contains("rdb_saves:1\r\n"), "{info}");
    let redis = RedisServer::start(&dir, &[]);
    let mut r = redis.raw();
    assert_eq!(snapshot(&mut r), want);
    assert_eq!(r.cmd(&["FCALL", "myfunc", "0"]), V::Int(42));
    drop(redis);
    // BGSAVE writes the same contents (while this connection keeps writing).
    std::fs::remove_file(dir.join("dump.rdb")).unwrap();
    assert_eq!(b.cmd(&["BGSAVE"]).str(), "Background saving started");
    for i in 0..200 {
        b.cmd(&["SET", &format!("after:{i}"), "x"]);
    }
    wait_for(|| {
        b.cmd(&["INFO", "persistence"])
            .str()
            .contains("rdb_bgsave_in_progress:0")
    });
    assert!(dir.join("dump.rdb").exists());
    let redis = RedisServer::start(&dir, &[]);
    let got = snapshot(&mut redis.raw());
    // Point in time per shard: everything from before the cut, possibly some later keys.
    for (k, v) in &want {
        assert_eq!(got.get(k), Some(v), "{k:?}");
    }
    assert!(got.keys().all(|k| want.contains_key(k) || k.1.starts_with(b"after:")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shutdown_saves_when_asked_or_with_save_points() {
    let dir = tmpdir("shutdown");
    let d = dir.to_str().unwrap();
    let ours = Server::start(&["--dir", d]);
    let mut b = ours.raw();
    ok(b.cmd(&["SET", "k", "v"]));
    let _ = b.send(&["SHUTDOWN", "SAVE"]);
    let _ = b.read();
    wait_for(|| dir.join("dump.rdb").exists());
    drop(ours);
    let ours = Server::start(&["--dir", d]);
    let mut b = ours.raw();
    assert_eq!(b.cmd(&["GET", "k"]), V::Bulk(b"v".to_vec()));
    // NOSAVE leaves the file as it was.
    ok(b.cmd(&["SET", "k", "changed"]));
    let _ = b.send(&["SHUTDOWN", "NOSAVE"]);
    let _ = b.read();
    drop(ours);
    let ours = Server::start(&["--dir", d]);
    assert_eq!(ours.raw().cmd(&["GET", "k"]), V::Bulk(b"v".to_vec()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn aof_with_rdb_base_written_by_redis_server_loads_into_basalt() {
    if !have_redis() {
        return;
    }
    let dir = tmpdir("aof-preamble");
    let want = {
        let redis = RedisServer::start(&dir, &["--appendonly", "yes", "--aof-use-rdb-preamble", "yes"]);
        let mut r = redis.raw();
        populate(&mut r);
        let started = r.cmd(&["BGREWRITEAOF"]).str();
        assert!(started.contains("rewriting"), "{started}");
        wait_for(|| {
            let info = r.cmd(&["INFO", "persistence"]).str();
            info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0")
        });
        // Commands after the rewrite land in the incremental file.
        r.cmd(&["SET", "after-rewrite", "yes"]);
        r.cmd(&["LPUSH", "list:small", "pushed-after"]);
        snapshot(&mut r)
    };
    let manifest = std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    assert!(manifest.contains(".base.rdb"), "{manifest}");
    let ours = Server::start(&["--dir", dir.to_str().unwrap(), "--appendonly", "yes"]);
    let mut b = ours.raw();
    assert_eq!(snapshot(&mut b), want);
    assert_eq!(b.cmd(&["FCALL", "myfunc", "0"]), V::Int(42));
    drop(b);
    drop(ours);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_saves_when_save_points_are_configured() {
    let dir = tmpdir("sigterm");
    let d = dir.to_str().unwrap();
    let mut ours = Server::start(&["--dir", d, "--save", "3600", "1"]);
    ok(ours.raw().cmd(&["SET", "k", "v"]));
    // SAFETY: a signal to the child process this test started.
    unsafe { libc::kill(ours.pid() as i32, libc::SIGTERM) };
    assert!(
        ours.wait_exit(Duration::from_secs(20)).is_some(),
        "no exit after SIGTERM"
    );
    assert!(dir.join("dump.rdb").exists(), "{}", ours.log_text());
    drop(ours);
    let ours = Server::start(&["--dir", d]);
    assert_eq!(ours.raw().cmd(&["GET", "k"]), V::Bulk(b"v".to_vec()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// FLUSHALL with save points writes the empty data set to dump.rdb at once (as Redis), so a
/// restart does not bring the flushed keys back; without save points it writes nothing.
#[test]
fn flushall_with_save_points_saves_the_empty_data_set() {
    let dir = tmpdir("flushall");
    let d = dir.to_str().unwrap();
    let ours = Server::start(&["--dir", d, "--save", "3600 1"]);
    let mut b = ours.raw();
    ok(b.cmd(&["SET", "k", "v"]));
    ok(b.cmd(&["SAVE"]));
    ok(b.cmd(&["SET", "k2", "v"]));
    ok(b.cmd(&["FLUSHALL"]));
    let info = b.cmd(&["INFO", "persistence"]).str();
    assert!(info.contains("rdb_changes_since_last_save:1"), "{info}");
    let _ = b.send(&["SHUTDOWN", "NOSAVE"]);
    let _ = b.read();
    drop(ours);
    let ours = Server::start(&["--dir", d, "--save", ""]);
    let mut b = ours.raw();
    assert_eq!(b.cmd(&["DBSIZE"]), V::Int(0), "the flushed keys stay flushed");
    ok(b.cmd(&["SET", "k", "v"]));
    ok(b.cmd(&["SAVE"]));
    ok(b.cmd(&["FLUSHALL"]));
    let _ = b.send(&["SHUTDOWN", "NOSAVE"]);
    let _ = b.read();
    drop(ours);
    let ours = Server::start(&["--dir", d, "--save", ""]);
    assert_eq!(
        ours.raw().cmd(&["GET", "k"]),
        V::Bulk(b"v".to_vec()),
        "no save points: no save"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
