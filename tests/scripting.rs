//! Black-box tests of Lua scripting with `--shards 4`: scripts over declared keys on several
//! shards and over undeclared keys, atomicity under concurrent load, EVALSHA/NOSCRIPT,
//! SCRIPT KILL of a busy script, error shapes, the libraries. Nothing here asserts speed.

mod common;

use common::{key_on_other_shard, Server, PATIENCE, V};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn int(v: &V) -> i64 {
    match v {
        V::Int(i) => *i,
        other => panic!("expected an integer, got {other:?}"),
    }
}

#[test]
fn declared_and_undeclared_keys_on_several_shards() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    let a = "k:a".to_string();
    let b = key_on_other_shard(&a, "k:b");
    let u = key_on_other_shard(&b, "undeclared:");
    let r = c.cmd(&[
        "EVAL",
        "redis.call('set', KEYS[1], ARGV[1]); redis.call('set', KEYS[2], ARGV[2]); \
         redis.call('set', ARGV[3], 'u'); return redis.call('mget', KEYS[1], KEYS[2], ARGV[3])",
        "2",
        &a,
        &b,
        "1",
        "2",
        &u,
    ]);
    assert_eq!(
        r,
        V::Arr(vec![
            V::Bulk(b"1".to_vec()),
            V::Bulk(b"2".to_vec()),
            V::Bulk(b"u".to_vec())
        ])
    );
    assert_eq!(c.cmd(&["GET", &u]), V::Bulk(b"u".to_vec()));
    // An undeclared key only, with a hash tag the script builds itself.
    let r = c.cmd(&["EVAL", "return redis.call('incrby', '{job}:' .. ARGV[1], 5)", "0", "7"]);
    assert_eq!(r, V::Int(5));
    assert_eq!(c.cmd(&["GET", "{job}:7"]), V::Bulk(b"5".to_vec()));
}

#[test]
fn evalsha_from_every_connection_and_noscript() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    let sha = c.cmd(&["SCRIPT", "LOAD", "return ARGV[1] .. '!'"]).str();
    assert_eq!(sha.len(), 40);
    // Connections land on different shards (the kernel picks); all see the script.
    for _ in 0..8 {
        let mut d = s.raw();
        assert_eq!(d.cmd(&["EVALSHA", &sha, "0", "x"]), V::Bulk(b"x!".to_vec()));
        assert_eq!(
            d.cmd(&["SCRIPT", "EXISTS", &sha, "0000"]),
            V::Arr(vec![V::Int(1), V::Int(0)])
        );
    }
    assert_eq!(c.cmd(&["SCRIPT", "FLUSH"]), V::Simple("OK".into()));
    assert_eq!(
        c.cmd(&["EVALSHA", &sha, "0"]),
        V::Err("NOSCRIPT No matching script. Please use EVAL.".into())
    );
}

/// A transfer script moves amounts between keys on different shards while readers check,
/// with a read-only script, that the total never changes.
#[test]
fn transfers_by_script_are_atomic() {
    let s = Server::start(&[]);
    let a = "acct:a".to_string();
    let b = key_on_other_shard(&a, "acct:b");
    let mut c = s.raw();
    c.cmd(&["SET", &a, "1000"]);
    c.cmd(&["SET", &b, "1000"]);
    let transfer = "local n = tonumber(ARGV[1]); redis.call('decrby', KEYS[1], n); \
                    redis.call('incrby', KEYS[2], n); return 1";
    let total = "return tonumber(redis.call('get', KEYS[1])) + tonumber(redis.call('get', KEYS[2]))";
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3 {
        let (port, a, b, stop) = (s.port, a.clone(), b.clone(), stop.clone());
        writers.push(std::thread::spawn(move || {
            let mut c = common::Raw::connect(port).unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (from, to) = if (i + w) % 2 == 0 { (&a, &b) } else { (&b, &a) };
                assert_eq!(c.cmd(&["EVAL", transfer, "2", from, to, "7"]), V::Int(1));
                i += 1;
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut checks = 0;
    while Instant::now() < deadline {
        assert_eq!(c.cmd(&["EVAL_RO", total, "2", &a, &b]), V::Int(2000));
        checks += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(checks > 0);
    assert_eq!(int(&c.cmd(&["EVAL_RO", total, "2", &a, &b])), 2000);
}

#[test]
fn script_kill_of_a_busy_read_only_script() {
    let s = Server::start(&["--busy-reply-threshold", "100"]);
    let port = s.port;
    let runner = std::thread::spawn(move || {
        let mut c = common::Raw::connect(port).unwrap();
        c.cmd(&["EVAL", "local i = 0 while true do i = i + 1 end", "0"])
    });
    // Other connections (on any shard) get BUSY once the threshold passed. (A command sent
    // before that waits for the script, at the gate of the shard it needs.)
    std::thread::sleep(Duration::from_millis(400));
    let busy = common::poll(PATIENCE, || {
        let mut d = s.raw();
        match d.cmd(&["GET", "x"]) {
            V::Err(e) if e.starts_with("BUSY") => Some(e),
            _ => None,
        }
    })
    .expect("BUSY while the script runs");
    assert_eq!(
        busy,
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
    );
    let mut k = s.raw();
    assert_eq!(k.cmd(&["SCRIPT", "KILL"]), V::Simple("OK".into()));
    match runner.join().unwrap() {
        V::Err(e) => assert!(e.starts_with("ERR Script killed by user with SCRIPT KILL..."), "{e}"),
        other => panic!("{other:?}"),
    }
    // Served again.
    let ok = common::poll(PATIENCE, || match s.raw().cmd(&["SET", "x", "1"]) {
        V::Simple(s) => Some(s),
        _ => None,
    });
    assert_eq!(ok.as_deref(), Some("OK"));
    assert_eq!(
        k.cmd(&["SCRIPT", "KILL"]),
        V::Err("NOTBUSY No scripts in execution right now.".into())
    );
}

#[test]
fn busy_script_that_wrote_is_unkillable_and_shutdown_nosave_works() {
    let mut s = Server::start(&["--busy-reply-threshold", "100"]);
    let port = s.port;
    let _runner = std::thread::spawn(move || {
        let mut c = common::Raw::connect(port).unwrap();
        c.cmd(&["EVAL", "redis.call('set', 'w', 1) while true do end", "0"])
    });
    let mut k = s.raw();
    let unkillable = common::poll(PATIENCE, || match k.cmd(&["SCRIPT", "KILL"]) {
        V::Err(e) if e.starts_with("UNKILLABLE") => Some(e),
        _ => {
            std::thread::sleep(Duration::from_millis(20));
            None
        }
    });
    assert!(unkillable.is_some());
    let _ = s.raw().send(&["SHUTDOWN", "NOSAVE"]);
    assert!(s.wait_exit(PATIENCE).is_some(), "SHUTDOWN NOSAVE stops a busy server");
}

#[test]
fn pcall_and_call_error_shapes() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    c.cmd(&["SET", "s", "x"]);
    assert_eq!(
        c.cmd(&["EVAL", "return redis.pcall('incr', KEYS[1])", "1", "s"]),
        V::Err("ERR value is not an integer or out of range".into())
    );
    match c.cmd(&["EVAL", "return redis.call('incr', KEYS[1])", "1", "s"]) {
        V::Err(e) => assert!(
            e.starts_with("ERR value is not an integer or out of range script: ")
                && e.ends_with(", on @user_script:1."),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.cmd(&["EVAL", "local r = redis.pcall('nosuch'); return r.err", "0"]),
        V::Bulk(b"ERR Unknown Redis command called from script".to_vec())
    );
    assert_eq!(
        c.cmd(&["EVAL_RO", "return redis.pcall('set', 'a', 1)", "0"]),
        V::Err("ERR Write commands are not allowed from read-only scripts.".into())
    );
}

#[test]
fn libraries_round_trip() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    let cases: &[(&str, V)] = &[
        (
            "return cjson.encode(cjson.decode('{\"a\":[1,2,3]}'))",
            V::Bulk(br#"{"a":[1,2,3]}"#.to_vec()),
        ),
        (
            "local t = cmsgpack.unpack(cmsgpack.pack({1, 'two', {3}})) return t[2] .. t[3][1]",
            V::Bulk(b"two3".to_vec()),
        ),
        ("return bit.bxor(5, 3)", V::Int(6)),
        ("return bit.tohex(65535, 4)", V::Bulk(b"ffff".to_vec())),
        ("return struct.unpack('<i4', struct.pack('<i4', -5))", V::Int(-5)),
        ("return struct.size('>bhi')", V::Int(7)),
    ];
    for (script, want) in cases {
        assert_eq!(&c.cmd(&["EVAL", script, "0"]), want, "{script}");
    }
}

#[test]
fn scripts_write_their_effects_to_the_aof() {
    let dir = std::env::temp_dir().join(format!("basalt-lua-aof-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap().to_string();
    let mut s = Server::start(&["--appendonly", "yes", "--appendfsync", "always", "--dir", &d]);
    let mut c = s.raw();
    assert_eq!(
        c.cmd(&[
            "EVAL",
            "redis.call('set', 'a', 1); redis.call('incr', 'b'); return 1",
            "0"
        ]),
        V::Int(1)
    );
    let _ = c.send(&["SHUTDOWN", "NOSAVE"]);
    s.wait_exit(PATIENCE);
    let mut aof = Vec::new();
    for e in walk(&dir) {
        if e.to_string_lossy().contains(".incr.aof") {
            aof.extend(std::fs::read(&e).unwrap());
        }
    }
    let text = String::from_utf8_lossy(&aof);
    assert!(text.contains("MULTI"), "{text}");
    assert!(!text.contains("EVAL"), "{text}");
    assert!(text.contains("incr") || text.contains("INCR"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn function_kill_of_a_busy_function() {
    let s = Server::start(&["--busy-reply-threshold", "100"]);
    let mut c = s.raw();
    assert_eq!(
        c.cmd(&[
            "FUNCTION",
            "LOAD",
            "#!lua name=spin\nredis.register_function{function_name='spin', callback=function() while true do end end, flags={'no-writes'}}",
        ]),
        V::Bulk(b"spin".to_vec())
    );
    let port = s.port;
    let runner = std::thread::spawn(move || {
        let mut c = common::Raw::connect(port).unwrap();
        c.cmd(&["FCALL", "spin", "0"])
    });
    std::thread::sleep(Duration::from_millis(400));
    let busy = common::poll(PATIENCE, || match s.raw().cmd(&["GET", "x"]) {
        V::Err(e) if e.starts_with("BUSY") => Some(e),
        _ => None,
    })
    .expect("BUSY while the function runs");
    assert_eq!(
        busy,
        "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
    );
    let mut k = s.raw();
    // SCRIPT KILL does not stop a function.
    assert_eq!(k.cmd(&["SCRIPT", "KILL"]), V::Err(busy.clone()));
    assert_eq!(k.cmd(&["FUNCTION", "KILL"]), V::Simple("OK".into()));
    match runner.join().unwrap() {
        V::Err(e) => assert_eq!(
            e,
            "ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2."
        ),
        other => panic!("{other:?}"),
    }
}

/// Scripts queued in MULTI run inside EXEC's reservation: the whole transaction is atomic.
#[test]
fn scripts_inside_multi_are_atomic() {
    let s = Server::start(&[]);
    let a = "m:a".to_string();
    let b = key_on_other_shard(&a, "m:b");
    let mut c = s.raw();
    c.cmd(&["SET", &a, "100"]);
    c.cmd(&["SET", &b, "100"]);
    let stop = Arc::new(AtomicBool::new(false));
    let (port, a2, b2, stop2) = (s.port, a.clone(), b.clone(), stop.clone());
    let writer = std::thread::spawn(move || {
        let mut c = common::Raw::connect(port).unwrap();
        while !stop2.load(Ordering::Relaxed) {
            assert_eq!(c.cmd(&["MULTI"]), V::Simple("OK".into()));
            assert_eq!(
                c.cmd(&["EVAL", "return redis.call('decrby', KEYS[1], 3)", "1", &a2]),
                V::Simple("QUEUED".into())
            );
            assert_eq!(c.cmd(&["INCRBY", &b2, "3"]), V::Simple("QUEUED".into()));
            match c.cmd(&["EXEC"]) {
                V::Arr(v) => assert_eq!(v.len(), 2),
                other => panic!("{other:?}"),
            }
        }
    });
    let deadline = Instant::now() + Duration::from_millis(1000);
    while Instant::now() < deadline {
        // Read atomically (MGET over two shards is split, so not a snapshot).
        let total = "return tonumber(redis.call('get', KEYS[1])) + tonumber(redis.call('get', KEYS[2]))";
        assert_eq!(c.cmd(&["EVAL_RO", total, "2", &a, &b]), V::Int(200));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

/// A script that only ever touched its declared keys runs holding just their shard; when a
/// later run reaches for an undeclared key on another shard it still works: before writing,
/// the run is repeated holding every shard; after writing it fails once with a clear error
/// and holds every shard from then on.
#[test]
fn narrow_scripts_that_reach_for_undeclared_keys() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    let a = "n:a".to_string();
    let u = key_on_other_shard(&a, "n:u");
    c.cmd(&["SET", &u, "far"]);
    // Reads ARGV[1] (undeclared) only when asked to, first or after a write.
    let body = "if ARGV[2] == 'read-first' then local v = redis.call('get', ARGV[1]); redis.call('incr', KEYS[1]); return v end \
                redis.call('incr', KEYS[1]); if ARGV[2] == 'read-after' then return redis.call('get', ARGV[1]) end return 'near'";
    let sha = c.cmd(&["SCRIPT", "LOAD", body]).str();
    for _ in 0..3 {
        assert_eq!(c.cmd(&["EVALSHA", &sha, "1", &a, &u, "no"]), V::Bulk(b"near".to_vec()));
    }
    // Undeclared read before any write: repeated transparently, the first run left no trace.
    assert_eq!(
        c.cmd(&["EVALSHA", &sha, "1", &a, &u, "read-first"]),
        V::Bulk(b"far".to_vec())
    );
    assert_eq!(c.cmd(&["GET", &a]), V::Bulk(b"4".to_vec()));
    // From now on the script holds every shard: an undeclared read after a write works.
    assert_eq!(
        c.cmd(&["EVALSHA", &sha, "1", &a, &u, "read-after"]),
        V::Bulk(b"far".to_vec())
    );
    assert_eq!(c.cmd(&["GET", &a]), V::Bulk(b"5".to_vec()));

    // A fresh script (other body) learns narrow, then reads undeclared after writing: the
    // call fails with a clear error, its write stays (as Redis keeps writes before an error).
    let body2 = format!("{body} -- second");
    let sha2 = c.cmd(&["SCRIPT", "LOAD", &body2]).str();
    assert_eq!(c.cmd(&["EVALSHA", &sha2, "1", &a, &u, "no"]), V::Bulk(b"near".to_vec()));
    assert_eq!(c.cmd(&["EVALSHA", &sha2, "1", &a, &u, "no"]), V::Bulk(b"near".to_vec()));
    match c.cmd(&["EVALSHA", &sha2, "1", &a, &u, "read-after"]) {
        V::Err(e) => assert!(e.contains("did not declare"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(c.cmd(&["GET", &a]), V::Bulk(b"8".to_vec()));
    assert_eq!(
        c.cmd(&["EVALSHA", &sha2, "1", &a, &u, "read-after"]),
        V::Bulk(b"far".to_vec())
    );
}

/// Keys named `{prefix}N`, one on each shard (shard i gets `keys[i]`).
fn key_per_shard(prefix: &str) -> Vec<String> {
    let mut keys: Vec<Option<String>> = vec![None; common::SHARDS as usize];
    for n in 0.. {
        let k = format!("{prefix}{n}");
        let s = common::shard_of(&k) as usize;
        if keys[s].is_none() {
            keys[s] = Some(k);
        }
        if keys.iter().all(Option::is_some) {
            break;
        }
    }
    keys.into_iter().flatten().collect()
}

/// Sends a pipeline and reads one reply per command.
fn pipeline(c: &mut common::Raw, cmds: &[Vec<String>]) -> Vec<V> {
    let mut bytes = Vec::new();
    for cmd in cmds {
        let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        bytes.extend(common::encode(&args));
    }
    c.write_all(&bytes).expect("send pipeline");
    cmds.iter().map(|_| c.read().expect("read reply")).collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Scripts that only touch their declared key run on that key's shard, batched with the
/// pipeline's other commands for it. From connections homed on every shard (the kernel
/// spreads them), read-modify-write scripts on shared keys stay atomic, and each
/// connection's replies keep its request order.
#[test]
fn scripts_on_their_keys_shard_are_atomic_and_keep_pipeline_order() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    let rmw = c
        .cmd(&[
            "SCRIPT",
            "LOAD",
            "local v = tonumber(redis.call('get', KEYS[1]) or '0') redis.call('set', KEYS[1], v + 1) return v + 1",
        ])
        .str();
    let shared = key_per_shard("shared:");
    // The first run (reach unknown) holds every shard and learns the script is narrow.
    assert_eq!(c.cmd(&["EVALSHA", &rmw, "1", "warmup"]), V::Int(1));
    const CONNS: usize = 8;
    const ROUNDS: usize = 50;
    let mut threads = Vec::new();
    for t in 0..CONNS {
        let (port, rmw, shared) = (s.port, rmw.clone(), shared.clone());
        threads.push(std::thread::spawn(move || {
            let mut c = common::Raw::connect(port).unwrap();
            let own = key_per_shard(&format!("own{t}:"));
            for round in 0..ROUNDS {
                let mut cmds = Vec::new();
                for (i, k) in own.iter().enumerate() {
                    cmds.push(strings(&["EVALSHA", &rmw, "1", k]));
                    cmds.push(strings(&["INCR", k]));
                    cmds.push(strings(&["EVALSHA", &rmw, "1", &shared[i]]));
                    cmds.push(strings(&["GET", k]));
                }
                let replies = pipeline(&mut c, &cmds);
                let base = 2 * round as i64;
                for i in 0..own.len() {
                    let r = &replies[4 * i..4 * i + 4];
                    assert_eq!(r[0], V::Int(base + 1), "{t}/{round}: {r:?}");
                    assert_eq!(r[1], V::Int(base + 2), "{t}/{round}: {r:?}");
                    assert!(matches!(r[2], V::Int(n) if n >= 1), "{r:?}");
                    assert_eq!(r[3], V::Bulk((base + 2).to_string().into_bytes()), "{r:?}");
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    for k in &shared {
        assert_eq!(
            c.cmd(&["GET", k]),
            V::Bulk((CONNS * ROUNDS).to_string().into_bytes()),
            "{k}"
        );
    }
}

/// A script learned narrow that then reaches for an undeclared key on another shard, in
/// the middle of pipelines from connections on every shard: the run is repeated holding
/// every shard and the commands pipelined after it still run after it, in order.
#[test]
fn narrow_script_reaching_another_shard_inside_pipelines() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    let body = "if ARGV[2] == 'far' then return redis.call('get', ARGV[1]) end return redis.call('incr', KEYS[1])";
    let sha = c.cmd(&["SCRIPT", "LOAD", body]).str();
    let keys = key_per_shard("p:");
    let far = key_on_other_shard(&keys[0], "far:");
    c.cmd(&["SET", &far, "there"]);
    for k in &keys {
        assert_eq!(c.cmd(&["EVALSHA", &sha, "1", k, &far, "near"]), V::Int(1));
    }
    let mut threads = Vec::new();
    for t in 0..6 {
        let (port, sha, keys, far) = (s.port, sha.clone(), keys.clone(), far.clone());
        threads.push(std::thread::spawn(move || {
            let mut c = common::Raw::connect(port).unwrap();
            let mut cmds = Vec::new();
            for k in &keys {
                cmds.push(strings(&["SET", &format!("{k}:{t}"), "0"]));
                cmds.push(strings(&[
                    "EVALSHA",
                    &sha,
                    "1",
                    k,
                    &far,
                    if t == 0 { "far" } else { "near" },
                ]));
                cmds.push(strings(&["INCR", &format!("{k}:{t}")]));
            }
            let replies = pipeline(&mut c, &cmds);
            for i in 0..keys.len() {
                assert_eq!(replies[3 * i], V::Simple("OK".into()));
                if t == 0 {
                    assert_eq!(replies[3 * i + 1], V::Bulk(b"there".to_vec()));
                } else {
                    assert!(matches!(replies[3 * i + 1], V::Int(n) if n > 1), "{replies:?}");
                }
                assert_eq!(replies[3 * i + 2], V::Int(1));
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    // Every narrow run counted once: 1 + one per thread but the reader.
    for k in &keys {
        assert_eq!(c.cmd(&["GET", k]), V::Bulk(b"6".to_vec()), "{k}");
    }
}

/// A script that runs for several slices on its key's shard pauses there (the shard keeps
/// serving other connections' commands for other shards) and the commands pipelined after
/// it wait for it.
#[test]
fn long_script_on_its_shard_pauses_and_keeps_order() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    let body = "if ARGV[1] == 'long' then local t = redis.call('time') local t0 = t[1] * 1000000 + t[2] \
                repeat t = redis.call('time') until t[1] * 1000000 + t[2] - t0 > 30000 end \
                return redis.call('incr', KEYS[1])";
    let sha = c.cmd(&["SCRIPT", "LOAD", body]).str();
    let keys = key_per_shard("long:");
    for k in &keys {
        assert_eq!(c.cmd(&["EVALSHA", &sha, "1", k, "short"]), V::Int(1));
    }
    let mut threads = Vec::new();
    for t in 0..4 {
        let (port, sha, keys) = (s.port, sha.clone(), keys.clone());
        threads.push(std::thread::spawn(move || {
            let mut c = common::Raw::connect(port).unwrap();
            let k = &keys[t];
            let cmds = vec![
                strings(&["EVALSHA", &sha, "1", k, "long"]),
                strings(&["INCR", k]),
                strings(&["EVALSHA", &sha, "1", k, "short"]),
                strings(&["GET", k]),
            ];
            let replies = pipeline(&mut c, &cmds);
            assert_eq!(
                replies,
                vec![V::Int(2), V::Int(3), V::Int(4), V::Bulk(b"4".to_vec())],
                "{k}"
            );
        }));
    }
    // Meanwhile the server answers.
    for _ in 0..20 {
        assert_eq!(s.raw().cmd(&["PING"]), V::Simple("PONG".into()));
    }
    for t in threads {
        t.join().unwrap();
    }
}

/// Scripts on different shards run in parallel; a busy one and SCRIPT KILL are its own
/// business: short scripts finishing on other shards meanwhile do not clear its BUSY state.
#[test]
fn script_kill_while_other_shards_run_scripts() {
    let s = Server::start(&["--busy-reply-threshold", "100"]);
    let mut c = s.raw();
    let body = "if ARGV[1] == 'spin' then while true do end end return redis.call('get', KEYS[1])";
    let sha = c.cmd(&["SCRIPT", "LOAD", body]).str();
    let keys = key_per_shard("kill:");
    for k in &keys {
        assert_eq!(c.cmd(&["EVALSHA_RO", &sha, "1", k, "short"]), V::Nil);
    }
    let (port, sha2, k0) = (s.port, sha.clone(), keys[0].clone());
    let runner = std::thread::spawn(move || {
        let mut c = common::Raw::connect(port).unwrap();
        c.cmd(&["EVALSHA_RO", &sha2, "1", &k0, "spin"])
    });
    // Short scripts on the other shards keep running until the spinning one turns busy.
    let mut d = s.raw();
    let busy = common::poll(PATIENCE, || {
        for k in &keys[1..] {
            if let V::Err(e) = d.cmd(&["EVALSHA_RO", &sha, "1", k, "short"]) {
                return Some(e);
            }
        }
        None
    })
    .expect("BUSY once the spinning script passed the threshold");
    assert!(busy.starts_with("BUSY "), "{busy}");
    assert_eq!(s.raw().cmd(&["SCRIPT", "KILL"]), V::Simple("OK".into()));
    match runner.join().unwrap() {
        V::Err(e) => assert!(e.starts_with("ERR Script killed by user with SCRIPT KILL..."), "{e}"),
        other => panic!("{other:?}"),
    }
    let back = common::poll(PATIENCE, || {
        match d.cmd(&["EVALSHA_RO", &sha, "1", &keys[1], "short"]) {
            V::Nil => Some(()),
            _ => None,
        }
    });
    assert!(back.is_some(), "scripts run again after the kill");
}

/// What a script's effects look like in the AOF: one write as itself (Redis 7 wraps only
/// several), several as one MULTI/EXEC; the file loads back.
#[test]
fn aof_of_one_write_and_several_write_scripts() {
    let dir = std::env::temp_dir().join(format!("basalt-lua-aof1-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap().to_string();
    let args = ["--appendonly", "yes", "--appendfsync", "always", "--dir", &d];
    let incr_file = || {
        let mut aof = Vec::new();
        for e in walk(&dir) {
            if e.to_string_lossy().contains(".incr.aof") {
                aof.extend(std::fs::read(&e).unwrap());
            }
        }
        String::from_utf8_lossy(&aof).to_ascii_lowercase()
    };
    let mut s = Server::start(&args);
    let mut c = s.raw();
    let keys = key_per_shard("aof:");
    // Wide (first) and narrow runs alike.
    for _ in 0..3 {
        for k in &keys {
            c.cmd(&["EVAL", "return redis.call('incr', KEYS[1])", "1", k]);
        }
    }
    let one = incr_file();
    assert!(!one.contains("multi"), "{one}");
    assert_eq!(one.matches("incr").count(), 3 * keys.len(), "{one}");
    // Two writes on one shard, then two over two shards.
    let tag = "{t}a".to_string();
    c.cmd(&[
        "EVAL",
        "redis.call('set', KEYS[1], 'x') return redis.call('incr', KEYS[2])",
        "2",
        &tag,
        "{t}b",
    ]);
    c.cmd(&[
        "EVAL",
        "redis.call('set', KEYS[1], 'y') return redis.call('incr', KEYS[2])",
        "2",
        &keys[0],
        &keys[1],
    ]);
    let _ = c.send(&["SHUTDOWN", "NOSAVE"]);
    s.wait_exit(PATIENCE);
    let text = incr_file();
    assert_eq!(text.matches("multi").count(), 2, "{text}");
    assert_eq!(text.matches("exec").count(), 2, "{text}");
    let mut s = Server::start(&args);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["GET", &tag]), V::Bulk(b"x".to_vec()));
    assert_eq!(c.cmd(&["GET", "{t}b"]), V::Bulk(b"1".to_vec()));
    assert_eq!(c.cmd(&["GET", &keys[0]]), V::Bulk(b"y".to_vec()));
    assert_eq!(c.cmd(&["GET", &keys[1]]), V::Bulk(b"4".to_vec()));
    assert_eq!(c.cmd(&["GET", &keys[2]]), V::Bulk(b"3".to_vec()));
    let _ = c.send(&["SHUTDOWN", "NOSAVE"]);
    s.wait_exit(PATIENCE);
    let _ = std::fs::remove_dir_all(&dir);
}
