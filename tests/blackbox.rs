//! Black-box tests: the real `basalt` binary (`--shards 4`, so every cross-shard path runs even
//! on a 2-core machine) driven by real clients — the `redis` crate, `redis-cli`, and raw sockets
//! for byte-level checks and protocol garbage. Each test starts its own server.
//!
//! Nothing here asserts speed: waits are polls with generous deadlines.
//!
//! Run: `cargo test --test blackbox` (`BASALT_BIN=path` runs them against another build).

mod common;

use common::{encode, key_on_other_shard, poll, shard_of, slot, Raw, Rng, Server, PATIENCE, SHARDS, V};
use redis::Commands;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|l| {
        l.trim_end()
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::to_string)
    })
}

fn info(con: &mut redis::Connection, section: &str) -> String {
    redis::cmd("INFO").arg(section).query(con).expect("INFO")
}

fn dbsize(con: &mut redis::Connection) -> i64 {
    redis::cmd("DBSIZE").query(con).expect("DBSIZE")
}

// -----------------------------------------------------------------------------------------
// 0. Startup
// -----------------------------------------------------------------------------------------

/// Every shard comes up: several servers started two at a time (so they compete for the CPUs,
/// as in a parallel test run) all log "Ready to accept connections" and serve every connection.
/// `Server::start` retries stalled starts so the other tests stay meaningful; this test does not.
#[test]
fn startup_never_stalls() {
    let stalled = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let stalled = Arc::clone(&stalled);
            std::thread::spawn(move || -> Option<String> {
                for _ in 0..5 {
                    if stalled.load(Ordering::Relaxed) {
                        return None;
                    }
                    match Server::start_once(&[]) {
                        Ok(s) => {
                            // Enough connections to reach every shard's listener.
                            for _ in 0..8 {
                                assert_eq!(s.raw().cmd(&["PING"]), V::Simple("PONG".into()));
                            }
                        }
                        Err(common::StartError::Stalled(log)) => {
                            stalled.store(true, Ordering::Relaxed);
                            return Some(log);
                        }
                        Err(common::StartError::Failed(e)) => panic!("{e}"),
                    }
                }
                None
            })
        })
        .collect();
    let stalls: Vec<String> = workers
        .into_iter()
        .filter_map(|w| w.join().expect("start worker"))
        .collect();
    assert!(stalls.is_empty(), "startup stalled:\n{}", stalls.join("\n"));
}

// -----------------------------------------------------------------------------------------
// 1. Pipelining
// -----------------------------------------------------------------------------------------

#[test]
fn pipeline_10k_sets_then_10k_gets() {
    let s = Server::start(&[]);
    let mut con = s.conn();
    let n = 10_000;
    let mut p = redis::pipe();
    for i in 0..n {
        p.cmd("SET").arg(format!("pipe:{i}")).arg(format!("value-{i}")).ignore();
    }
    p.query::<()>(&mut con).expect("pipelined SETs");
    let mut p = redis::pipe();
    for i in 0..n {
        p.cmd("GET").arg(format!("pipe:{i}"));
    }
    let got: Vec<Option<String>> = p.query(&mut con).expect("pipelined GETs");
    assert_eq!(got.len(), n);
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v.as_deref(), Some(format!("value-{i}").as_str()), "GET pipe:{i}");
    }
}

#[test]
fn pipeline_10k_inline_pings() {
    let s = Server::start(&[]);
    let mut raw = s.raw();
    let n = 10_000;
    raw.write_all(&b"PING\r\n".repeat(n)).expect("write pings");
    let got = raw.read_bytes(n * b"+PONG\r\n".len()).expect("read pongs");
    assert!(got == b"+PONG\r\n".repeat(n), "expected {n} +PONG replies in order");
    // Nothing more than the replies asked for.
    assert_eq!(raw.cmd(&["ECHO", "end"]), V::Bulk(b"end".to_vec()));
}

// -----------------------------------------------------------------------------------------
// 2. Frames split at every byte
// -----------------------------------------------------------------------------------------

fn split_frames_payload() -> (Vec<u8>, Vec<u8>) {
    let sa = "split:a".to_string();
    let sb = key_on_other_shard(&sa, "split:b");
    let mut req = Vec::new();
    let mut rep = Vec::new();
    req.extend(encode(&[b"SET", b"split", b"hello world"]));
    rep.extend(b"+OK\r\n");
    req.extend(encode(&[b"GET", b"split"]));
    rep.extend(b"$11\r\nhello world\r\n");
    req.extend(b"PING\r\n");
    rep.extend(b"+PONG\r\n");
    req.extend(encode(&[b"ECHO", b""]));
    rep.extend(b"$0\r\n\r\n");
    // A bulk holding CRLF and NUL: lengths, not delimiters, frame it.
    req.extend(encode(&[b"SET", b"bin", b"a\r\nb\0c"]));
    rep.extend(b"+OK\r\n");
    req.extend(encode(&[b"GET", b"bin"]));
    rep.extend(b"$6\r\na\r\nb\0c\r\n");
    req.extend(b"ECHO \"a b\"\r\n");
    rep.extend(b"$3\r\na b\r\n");
    req.extend(encode(&[b"MSET", sa.as_bytes(), b"1", sb.as_bytes(), b"2"]));
    rep.extend(b"+OK\r\n");
    req.extend(encode(&[b"MGET", sa.as_bytes(), b"nokey", sb.as_bytes()]));
    rep.extend(b"*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n");
    req.extend(b"*1\r\n$4\r\nPING\r\n");
    rep.extend(b"+PONG\r\n");
    (req, rep)
}

#[test]
fn frames_split_at_every_byte() {
    let s = Server::start(&[]);
    let (req, rep) = split_frames_payload();

    let mut raw = s.raw();
    for (i, b) in req.iter().enumerate() {
        raw.write_all(std::slice::from_ref(b)).expect("write one byte");
        if i % 5 == 4 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let got = raw.read_bytes(rep.len()).expect("replies");
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&rep));

    // The same stream cut into random-sized pieces.
    let mut rng = Rng::new(7);
    let mut raw = s.raw();
    let mut pos = 0;
    while pos < req.len() {
        let n = (1 + rng.below(17) as usize).min(req.len() - pos);
        raw.write_all(&req[pos..pos + n]).expect("write piece");
        pos += n;
        std::thread::sleep(Duration::from_millis(1));
    }
    let got = raw.read_bytes(rep.len()).expect("replies");
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&rep));
    assert_eq!(raw.cmd(&["PING"]), V::Simple("PONG".into()), "no stray replies");
}

// -----------------------------------------------------------------------------------------
// 3. Hash tags and cross-shard multi-key commands
// -----------------------------------------------------------------------------------------

#[test]
fn slot_function_matches_redis_cluster() {
    // Redis Cluster spec test vector and hash-tag rules.
    assert_eq!(common::crc16(b"123456789"), 0x31C3);
    assert_eq!(slot(b"{user1}.name"), slot(b"{user1}.mail"));
    assert_eq!(slot(b"{user1}.name"), slot(b"user1"));
    assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
    assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
    assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
}

#[test]
fn hash_tags_share_a_shard() {
    let s = Server::start(&[]);
    let mut con = s.conn();
    let _: () = redis::cmd("MSET")
        .arg("{user1}.name")
        .arg("ann")
        .arg("{user1}.mail")
        .arg("ann@x")
        .query(&mut con)
        .expect("MSET");
    let got: Vec<Option<String>> = redis::cmd("MGET")
        .arg("{user1}.name")
        .arg("{user1}.mail")
        .arg("{user1}.none")
        .query(&mut con)
        .expect("MGET");
    assert_eq!(got, vec![Some("ann".into()), Some("ann@x".into()), None]);
}

#[test]
fn cross_shard_mset_mget_del_exists() {
    let s = Server::start(&[]);
    let mut con = s.conn();
    let keys: Vec<String> = (0..100).map(|i| format!("xs:{i}")).collect();
    let shards: BTreeSet<u16> = keys.iter().map(|k| shard_of(k)).collect();
    assert_eq!(shards.len(), SHARDS as usize, "the 100 keys must cover every shard");

    let mut mset = redis::cmd("MSET");
    for (i, k) in keys.iter().enumerate() {
        mset.arg(k).arg(format!("v{i}"));
    }
    let _: () = mset.query(&mut con).expect("MSET 100 keys");

    let got: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut con).expect("MGET");
    let want: Vec<Option<String>> = (0..100).map(|i| Some(format!("v{i}"))).collect();
    assert_eq!(got, want, "MGET returns values in key order");

    // EXISTS counts repeated keys each time.
    let n: i64 = redis::cmd("EXISTS")
        .arg(&keys)
        .arg(&keys[..10])
        .arg("xs:none")
        .query(&mut con)
        .expect("EXISTS");
    assert_eq!(n, 110);

    let evens: Vec<&String> = keys.iter().step_by(2).collect();
    let n: i64 = redis::cmd("DEL")
        .arg(&evens)
        .arg("xs:none")
        .query(&mut con)
        .expect("DEL");
    assert_eq!(n, 50);
    let n: i64 = redis::cmd("EXISTS").arg(&keys).query(&mut con).expect("EXISTS");
    assert_eq!(n, 50);
    let got: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut con).expect("MGET");
    let want: Vec<Option<String>> = (0..100).map(|i| (i % 2 == 1).then(|| format!("v{i}"))).collect();
    assert_eq!(got, want);
}

#[test]
fn rename_and_copy_across_shards_keep_value_and_ttl() {
    let s = Server::start(&[]);
    let mut con = s.conn();
    let src = "rn:src".to_string();
    let dst = key_on_other_shard(&src, "rn:dst");
    assert_ne!(shard_of(&src), shard_of(&dst));

    let _: () = redis::cmd("SET")
        .arg(&src)
        .arg("payload")
        .arg("PX")
        .arg(100_000)
        .query(&mut con)
        .expect("SET PX");
    let _: () = redis::cmd("RENAME")
        .arg(&src)
        .arg(&dst)
        .query(&mut con)
        .expect("RENAME across shards");
    let v: Option<String> = con.get(&dst).expect("GET dst");
    assert_eq!(v.as_deref(), Some("payload"));
    let gone: i64 = con.exists(&src).expect("EXISTS src");
    assert_eq!(gone, 0, "RENAME removes the source");
    let pttl: i64 = redis::cmd("PTTL").arg(&dst).query(&mut con).expect("PTTL");
    assert!(pttl > 0 && pttl <= 100_000, "TTL moved with the key, PTTL = {pttl}");

    // RENAME back onto an existing key overwrites it.
    let _: () = con.set(&src, "old").expect("SET");
    let _: () = redis::cmd("RENAME")
        .arg(&dst)
        .arg(&src)
        .query(&mut con)
        .expect("RENAME onto existing");
    let v: Option<String> = con.get(&src).expect("GET");
    assert_eq!(v.as_deref(), Some("payload"));
    let pttl: i64 = redis::cmd("PTTL").arg(&src).query(&mut con).expect("PTTL");
    assert!(pttl > 0 && pttl <= 100_000, "PTTL = {pttl}");

    // RENAMENX across shards onto an existing key does nothing.
    let _: () = con.set(&dst, "keep").expect("SET");
    let n: i64 = redis::cmd("RENAMENX")
        .arg(&src)
        .arg(&dst)
        .query(&mut con)
        .expect("RENAMENX");
    assert_eq!(n, 0);

    // COPY across shards: both keys exist, TTL copied; no REPLACE -> 0 on existing dest.
    let cp = key_on_other_shard(&src, "rn:copy");
    let n: i64 = redis::cmd("COPY").arg(&src).arg(&cp).query(&mut con).expect("COPY");
    assert_eq!(n, 1);
    let v: Vec<Option<String>> = redis::cmd("MGET").arg(&src).arg(&cp).query(&mut con).expect("MGET");
    assert_eq!(v, vec![Some("payload".into()), Some("payload".into())]);
    let pttl: i64 = redis::cmd("PTTL").arg(&cp).query(&mut con).expect("PTTL");
    assert!(pttl > 0 && pttl <= 100_000, "COPY keeps the TTL, PTTL = {pttl}");
    let n: i64 = redis::cmd("COPY")
        .arg(&src)
        .arg(&dst)
        .query(&mut con)
        .expect("COPY no replace");
    assert_eq!(n, 0);
    let v: Option<String> = con.get(&dst).expect("GET");
    assert_eq!(v.as_deref(), Some("keep"));
    let n: i64 = redis::cmd("COPY")
        .arg(&src)
        .arg(&dst)
        .arg("REPLACE")
        .query(&mut con)
        .expect("COPY REPLACE");
    assert_eq!(n, 1);
    let v: Option<String> = con.get(&dst).expect("GET");
    assert_eq!(v.as_deref(), Some("payload"));

    // Many pairs, both directions, all shard combinations.
    for i in 0..40 {
        let a = format!("rnm:a{i}");
        let b = format!("rnm:b{i}");
        let _: () = con.set(&a, i).expect("SET");
        let _: () = redis::cmd("RENAME").arg(&a).arg(&b).query(&mut con).expect("RENAME");
        let v: Option<i64> = con.get(&b).expect("GET");
        assert_eq!(
            v,
            Some(i),
            "RENAME {a} (shard {}) -> {b} (shard {})",
            shard_of(&a),
            shard_of(&b)
        );
        let e: i64 = con.exists(&a).expect("EXISTS");
        assert_eq!(e, 0);
    }
}

// -----------------------------------------------------------------------------------------
// 4. SCAN, KEYS, DBSIZE, RANDOMKEY over all shards
// -----------------------------------------------------------------------------------------

fn scan_all(con: &mut redis::Connection, extra: &[&str]) -> (HashSet<String>, usize) {
    let mut cursor = "0".to_string();
    let mut seen = HashSet::new();
    let mut calls = 0;
    loop {
        let (next, keys): (String, Vec<String>) = redis::cmd("SCAN").arg(&cursor).arg(extra).query(con).expect("SCAN");
        calls += 1;
        assert!(calls < 100_000, "SCAN does not terminate");
        seen.extend(keys);
        if next == "0" {
            return (seen, calls);
        }
        cursor = next;
    }
}

#[test]
fn scan_keys_dbsize_randomkey_across_shards() {
    let s = Server::start(&[]);
    let mut con = s.conn();
    let all: HashSet<String> = (0..5000).map(|i| format!("scan:{i}")).collect();
    let mut p = redis::pipe();
    for chunk in all.iter().collect::<Vec<_>>().chunks(500) {
        let mut c = redis::cmd("MSET");
        for k in chunk {
            c.arg(*k).arg("x");
        }
        p.add_command(c).ignore();
    }
    p.query::<()>(&mut con).expect("MSET 5000 keys");

    let (seen, calls10) = scan_all(&mut con, &["COUNT", "10"]);
    assert_eq!(seen.len(), all.len());
    assert!(seen == all, "SCAN COUNT 10 returns every key");
    assert!(calls10 > 1);
    let (seen, _) = scan_all(&mut con, &["COUNT", "1000"]);
    assert!(seen == all, "SCAN COUNT 1000 returns every key");
    let (seen, _) = scan_all(&mut con, &[]);
    assert!(seen == all, "SCAN (default COUNT) returns every key");

    let want: HashSet<String> = all.iter().filter(|k| k.starts_with("scan:12")).cloned().collect();
    let (seen, _) = scan_all(&mut con, &["MATCH", "scan:12*", "COUNT", "100"]);
    assert_eq!(seen, want, "SCAN MATCH");
    let (seen, _) = scan_all(&mut con, &["MATCH", "nomatch*"]);
    assert!(seen.is_empty());
    let (seen, _) = scan_all(&mut con, &["TYPE", "string", "COUNT", "500"]);
    assert!(seen == all, "SCAN TYPE string");
    let (seen, _) = scan_all(&mut con, &["TYPE", "list", "COUNT", "500"]);
    assert!(seen.is_empty(), "SCAN TYPE list");

    let keys: Vec<String> = con.keys("*").expect("KEYS *");
    assert_eq!(keys.len(), 5000);
    assert!(keys.iter().cloned().collect::<HashSet<_>>() == all);
    let keys: Vec<String> = con.keys("scan:12*").expect("KEYS pattern");
    assert_eq!(keys.into_iter().collect::<HashSet<_>>(), want);
    assert_eq!(dbsize(&mut con), 5000);
    for _ in 0..20 {
        let k: Option<String> = redis::cmd("RANDOMKEY").query(&mut con).expect("RANDOMKEY");
        let k = k.expect("RANDOMKEY on a non-empty db");
        assert!(all.contains(&k), "RANDOMKEY returned {k}, not an inserted key");
    }
    let _: () = redis::cmd("FLUSHALL").query(&mut con).expect("FLUSHALL");
    assert_eq!(dbsize(&mut con), 0);
    let k: Option<String> = redis::cmd("RANDOMKEY").query(&mut con).expect("RANDOMKEY");
    assert_eq!(k, None);
}

// -----------------------------------------------------------------------------------------
// 5. Expiry
// -----------------------------------------------------------------------------------------

#[test]
fn lazy_expiry_of_a_px_key() {
    let s = Server::start(&[]);
    let mut con = s.conn();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("PX")
        .arg(100)
        .query(&mut con)
        .expect("SET PX");
    let gone = poll(PATIENCE, || {
        let v: Option<String> = con.get("k").expect("GET");
        v.is_none().then_some(())
    });
    assert!(gone.is_some(), "a PX 100 key never expired");
    let e: i64 = con.exists("k").expect("EXISTS");
    assert_eq!(e, 0);
}

#[test]
fn active_expiry_reclaims_unread_keys() {
    let s = Server::start(&[]);
    let mut con = s.conn();
    let mut p = redis::pipe();
    for i in 0..2000 {
        p.cmd("SET").arg(format!("ae:{i}")).arg("v").arg("PX").arg(50).ignore();
    }
    p.query::<()>(&mut con).expect("SET PX 50 x 2000");
    // No key is ever read: only the active expiry cycle can remove them.
    let size = poll(Duration::from_secs(10), || {
        let n = dbsize(&mut con);
        (n == 0).then_some(n)
    });
    assert!(
        size.is_some(),
        "DBSIZE still {} after 10 s: active expiry did not reclaim the keys",
        dbsize(&mut con)
    );
    let stats = info(&mut con, "stats");
    let expired: i64 = info_field(&stats, "expired_keys")
        .and_then(|v| v.parse().ok())
        .expect("expired_keys in INFO stats");
    assert!(expired >= 2000, "expired_keys = {expired}");
}

/// INFO keyspace's `avg_ttl` is the active expiry cycle's estimate of the TTL left, over
/// every shard's keys (Redis's db->avg_ttl; redis_exporter exports it).
#[test]
fn info_keyspace_average_ttl_across_shards() {
    let s = Server::start(&[]);
    let mut con = s.conn();
    let mut p = redis::pipe();
    for i in 0..200 {
        p.cmd("SET")
            .arg(format!("ttl:{i}"))
            .arg("v")
            .arg("EX")
            .arg(100)
            .ignore();
    }
    for i in 0..50 {
        p.cmd("SET").arg(format!("plain:{i}")).arg("v").ignore();
    }
    p.query::<()>(&mut con).expect("SETs");
    let line = poll(Duration::from_secs(10), || {
        let ks = info(&mut con, "keyspace");
        let db0 = info_field(&ks, "db0")?;
        let avg: u64 = db0.split("avg_ttl=").nth(1)?.parse().ok()?;
        (avg > 0).then_some((db0, avg))
    });
    let (db0, avg) = line.expect("avg_ttl stayed 0 for 10 s");
    assert!(db0.starts_with("keys=250,expires=200,"), "{db0}");
    assert!(
        (80_000..=100_000).contains(&avg),
        "avg_ttl {avg} for keys with 100 s left"
    );
}

// -----------------------------------------------------------------------------------------
// 6. AUTH
// -----------------------------------------------------------------------------------------

const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
/// Redis 7.0.15's text (the oracle); 7.2 reworded it to "the HELLO <proto> AUTH <user> <pass> option".
const NOAUTH_HELLO: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";

/// A TCP connection to `port` on 127.0.0.1 from the source address `src` (every 127/8
/// address is on the loopback device, but only 127.0.0.1 and ::1 count as local for
/// Redis's protected mode).
fn connect_from(src: std::net::Ipv4Addr, port: u16) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    let sin = |ip: std::net::Ipv4Addr, port: u16| {
        // SAFETY: a zeroed sockaddr_in is valid; the fields are set below.
        let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        a.sin_family = libc::AF_INET as libc::sa_family_t;
        a.sin_port = port.to_be();
        a.sin_addr.s_addr = u32::from_ne_bytes(ip.octets());
        a
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns until it is wrapped.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let local = sin(src, 0);
        assert_eq!(
            libc::bind(fd, &local as *const _ as *const libc::sockaddr, len),
            0,
            "bind {src}"
        );
        let remote = sin(std::net::Ipv4Addr::LOCALHOST, port);
        assert_eq!(
            libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len),
            0,
            "connect: {}",
            std::io::Error::last_os_error()
        );
        std::net::TcpStream::from_raw_fd(fd)
    }
}

/// The first line the server sends a client that connects and sends PING.
fn greeting_from(src: std::net::Ipv4Addr, port: u16) -> String {
    use std::io::Write;
    let mut c = connect_from(src, port);
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = c.write_all(b"PING\r\n");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.ends_with(b"\r\n") {
                    break;
                }
            }
            // A reset after the refusal was written still leaves what was read.
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// protected-mode (on by default, as in Redis): with no password, a client from anywhere but
/// 127.0.0.1 or ::1 gets Redis's -DENIED text at once and is disconnected; a password or
/// `protected-mode no` (CONFIG SET takes effect for the next connection) lets it in.
#[test]
fn protected_mode_refuses_non_loopback_clients_without_a_password() {
    let other = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let s = Server::start(&[]);
    assert_eq!(greeting_from(std::net::Ipv4Addr::LOCALHOST, s.port), "+PONG\r\n");
    let denied = greeting_from(other, s.port);
    assert!(
        denied.starts_with("-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user.")
            && denied.ends_with("in order for the server to start accepting connections from the outside.\r\n"),
        "{denied}"
    );
    let stats = info(&mut s.conn(), "stats");
    assert_eq!(info_field(&stats, "rejected_connections").as_deref(), Some("1"));
    assert_eq!(
        s.raw().cmd(&["CONFIG", "SET", "protected-mode", "no"]),
        V::Simple("OK".into())
    );
    assert_eq!(greeting_from(other, s.port), "+PONG\r\n");

    let s = Server::start(&["--requirepass", "pw"]);
    assert!(
        greeting_from(other, s.port).starts_with("-NOAUTH"),
        "a password lifts the refusal"
    );
}

#[test]
fn auth_requirepass() {
    let s = Server::start(&["--requirepass", "s3cret"]);

    let mut raw = s.raw();
    assert_eq!(raw.cmd(&["GET", "x"]), V::Err(NOAUTH.into()));
    assert_eq!(raw.cmd(&["PING"]), V::Err(NOAUTH.into()));
    assert_eq!(raw.cmd(&["AUTH", "wrong"]), V::Err(WRONGPASS.into()));
    assert_eq!(raw.cmd(&["AUTH", "default", "wrong"]), V::Err(WRONGPASS.into()));
    assert_eq!(raw.cmd(&["AUTH", "nobody", "s3cret"]), V::Err(WRONGPASS.into()));
    assert_eq!(raw.cmd(&["SET", "x", "1"]), V::Err(NOAUTH.into()));
    assert!(matches!(raw.cmd(&["HELLO", "3"]), V::Err(e) if e.starts_with("NOAUTH HELLO must be called")));
    assert_eq!(raw.cmd(&["AUTH", "s3cret"]), V::Simple("OK".into()));
    assert_eq!(raw.cmd(&["SET", "x", "1"]), V::Simple("OK".into()));

    let mut raw = s.raw();
    assert_eq!(raw.cmd(&["AUTH", "default", "s3cret"]), V::Simple("OK".into()));
    assert_eq!(raw.cmd(&["GET", "x"]), V::Bulk(b"1".to_vec()));

    // HELLO 3 AUTH: authenticates and switches to RESP3 in one go; the reply is a map.
    let mut raw = s.raw();
    raw.send(&["HELLO", "3", "AUTH", "default", "s3cret"]).expect("send");
    let mut first = [0u8; 1];
    raw.r.read_exact(&mut first).expect("read");
    assert_eq!(first[0], b'%', "HELLO 3 replies with a RESP3 map");
    let mut rest = Vec::new();
    raw.r.read_until(b'\n', &mut rest).expect("map header");
    let n: usize = String::from_utf8_lossy(&rest).trim().parse().expect("map length");
    let mut fields = HashMap::new();
    for _ in 0..n {
        let k = raw.read().expect("key").str();
        let v = raw.read().expect("value");
        fields.insert(k, v);
    }
    assert_eq!(fields.get("proto"), Some(&V::Int(3)));
    assert_eq!(fields.get("server").map(V::str).as_deref(), Some("redis"));
    // RESP3 from now on: a missing key is `_`, not `$-1`.
    raw.send(&["GET", "nokey"]).expect("send");
    let mut b = [0u8; 3];
    raw.r.read_exact(&mut b).expect("read");
    assert_eq!(&b, b"_\r\n");

    // HELLO AUTH with a wrong password does not switch protocols.
    let mut raw = s.raw();
    assert_eq!(
        raw.cmd(&["HELLO", "3", "AUTH", "default", "nope"]),
        V::Err(WRONGPASS.into())
    );
    assert_eq!(raw.cmd(&["GET", "x"]), V::Err(NOAUTH.into()));

    // Real clients.
    let mut con = s.conn(); // redis://:s3cret@127.0.0.1:P/
    let v: Option<String> = con.get("x").expect("GET with the redis crate");
    assert_eq!(v.as_deref(), Some("1"));
    assert_eq!(s.cli(&["ping"]).trim(), "PONG");
    let out = Command::new("redis-cli")
        .args(["-p", &s.port.to_string(), "ping"])
        .output()
        .expect("redis-cli");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("NOAUTH"),
        "redis-cli without -a gets NOAUTH"
    );

    // Last, so a wording difference does not hide the checks above.
    let mut raw = s.raw();
    assert_eq!(raw.cmd(&["HELLO", "3"]), V::Err(NOAUTH_HELLO.into()));
    assert_eq!(raw.cmd(&["HELLO", "2", "SETNAME", "x"]), V::Err(NOAUTH_HELLO.into()));
}

// -----------------------------------------------------------------------------------------
// 7. Protocol garbage
// -----------------------------------------------------------------------------------------

fn expect_protocol_error(s: &Server, payload: &[u8], want: &str) {
    let mut raw = s.raw();
    raw.write_all(payload).expect("write");
    let got = raw
        .read_to_eof()
        .unwrap_or_else(|e| panic!("connection not closed after {payload:?}: {e}"));
    assert_eq!(
        String::from_utf8_lossy(&got),
        format!("-{want}\r\n"),
        "reply to {:?}",
        String::from_utf8_lossy(payload)
    );
}

#[test]
fn protocol_errors_close_only_that_connection() {
    let mut s = Server::start(&["--proto-max-bulk-len", "1mb"]);
    let mut bystander = s.raw();
    assert_eq!(bystander.cmd(&["SET", "keep", "me"]), V::Simple("OK".into()));

    expect_protocol_error(&s, b"*1\r\n$foo\r\n", "ERR Protocol error: invalid bulk length");
    assert_eq!(bystander.cmd(&["GET", "keep"]), V::Bulk(b"me".to_vec()));
    expect_protocol_error(&s, b"*99999999999\r\n", "ERR Protocol error: invalid multibulk length");
    expect_protocol_error(&s, b"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length");
    expect_protocol_error(&s, b"*2\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'");
    expect_protocol_error(
        &s,
        b"PING \"unbalanced\r\n",
        "ERR Protocol error: unbalanced quotes in request",
    );
    // Over proto-max-bulk-len (1mb): refused from the header alone.
    expect_protocol_error(
        &s,
        b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$2000000\r\n",
        "ERR Protocol error: invalid bulk length",
    );
    // A commands earlier in the same buffer is still answered before the error.
    let mut raw = s.raw();
    raw.write_all(b"PING\r\n*1\r\n$x\r\n").expect("write");
    let got = raw.read_to_eof().expect("closed");
    assert_eq!(
        String::from_utf8_lossy(&got),
        "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    );

    // Just under the limit is fine.
    let mut con = s.conn();
    let big = vec![b'z'; 1_000_000];
    let _: () = con.set("big", &big[..]).expect("SET 1,000,000 bytes under a 1mb limit");
    let got: Vec<u8> = con.get("big").expect("GET big");
    assert!(got == big, "GET big returned {} bytes", got.len());

    assert_eq!(bystander.cmd(&["GET", "keep"]), V::Bulk(b"me".to_vec()));
    s.assert_alive();
}

#[test]
fn binary_garbage_does_not_crash_the_server() {
    let mut s = Server::start(&[]);
    let mut bystander = s.raw();
    assert_eq!(bystander.cmd(&["SET", "keep", "me"]), V::Simple("OK".into()));
    let mut rng = Rng::new(0x5eed);
    for round in 0..16 {
        let mut raw = s.raw();
        raw.set_timeout(Duration::from_millis(300));
        let mut junk = rng.bytes(4096);
        // Half the rounds look like RESP at first, to get past the first-byte checks.
        if round % 2 == 1 {
            junk[0] = b'*';
            junk[1] = b'0' + (round % 10) as u8;
            junk[2] = b'\r';
            junk[3] = b'\n';
            junk[4] = b'$';
        }
        let _ = raw.write_all(&junk);
        // Drain whatever it answers until it closes or goes quiet; either is fine.
        let mut buf = [0u8; 4096];
        while let Ok(n) = raw.r.get_mut().read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
    s.assert_alive();
    let mut raw = s.raw();
    assert_eq!(raw.cmd(&["PING"]), V::Simple("PONG".into()));
    assert_eq!(bystander.cmd(&["GET", "keep"]), V::Bulk(b"me".to_vec()));
}

// -----------------------------------------------------------------------------------------
// 8. Shutdown
// -----------------------------------------------------------------------------------------

#[test]
fn sigterm_exits_cleanly() {
    let mut s = Server::start(&[]);
    let mut con = s.conn();
    let _: () = con.set("a", "b").expect("SET");
    // SAFETY: plain kill(2) of the child process this test started.
    let rc = unsafe { libc::kill(s.pid() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill(SIGTERM)");
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("basalt still running 10 s after SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let log = s.log_text();
    let ready = log
        .find("Ready to accept connections")
        .expect("log says Ready to accept connections");
    let term = log.find("SIGTERM");
    assert!(term.is_none_or(|t| t > ready), "Ready logged before the SIGTERM notice");
}

#[test]
fn shutdown_nosave_exits_cleanly() {
    let mut s = Server::start(&[]);
    let out = s.cli(&["shutdown", "nosave"]);
    let status = s
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("basalt still running after SHUTDOWN NOSAVE (redis-cli said {out:?})"));
    assert!(status.success(), "exit status after SHUTDOWN NOSAVE: {status}");
}

// -----------------------------------------------------------------------------------------
// 9. INFO
// -----------------------------------------------------------------------------------------

#[test]
fn info_sections_and_fields() {
    let s = Server::start(&[]);
    let mut con = s.conn();
    let mut p = redis::pipe();
    for i in 0..37 {
        p.cmd("SET").arg(format!("info:{i}")).arg(i).ignore();
    }
    p.query::<()>(&mut con).expect("SETs");

    let out = s.cli(&["info"]);
    for section in [
        "Server",
        "Clients",
        "Memory",
        "Persistence",
        "Stats",
        "Replication",
        "CPU",
        "Keyspace",
    ] {
        assert!(
            out.lines().any(|l| l.trim_end() == format!("# {section}")),
            "INFO lacks # {section}:\n{out}"
        );
    }
    let used: i64 = info_field(&out, "used_memory")
        .and_then(|v| v.parse().ok())
        .expect("used_memory");
    assert!(used > 0);
    let clients: i64 = info_field(&out, "connected_clients")
        .and_then(|v| v.parse().ok())
        .expect("connected_clients");
    assert!(clients >= 1, "connected_clients = {clients}");
    let db0 = info_field(&out, "db0").expect("db0 line in Keyspace");
    assert!(db0.starts_with("keys=37,"), "db0:{db0}");
    let tcp_port: u16 = info_field(&out, "tcp_port")
        .and_then(|v| v.parse().ok())
        .expect("tcp_port");
    assert_eq!(tcp_port, s.port);

    let stats = s.cli(&["info", "commandstats"]);
    assert!(stats.contains("# Commandstats"), "{stats}");
    assert!(
        stats.lines().any(|l| l.starts_with("cmdstat_set:calls=")),
        "no cmdstat_set in:\n{stats}"
    );
    let set_calls: i64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_set:calls="))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("cmdstat_set calls");
    assert!(set_calls >= 37, "cmdstat_set:calls={set_calls}");
}

// -----------------------------------------------------------------------------------------
// 10. MONITOR
// -----------------------------------------------------------------------------------------

#[test]
fn monitor_sees_commands_from_every_shard() {
    let s = Server::start(&[]);
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &s.port.to_string(), "monitor"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-cli monitor");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let first = rx.recv_timeout(PATIENCE).expect("redis-cli monitor printed nothing");
        assert_eq!(first.trim(), "OK");
        // One key per shard, each sent from a fresh connection (whichever shard it lands on).
        let mut keys: Vec<String> = Vec::new();
        for sh in 0..SHARDS {
            let k = (0..)
                .map(|i| format!("mon:{i}"))
                .find(|k| shard_of(k) == sh)
                .expect("key");
            keys.push(k);
        }
        for k in &keys {
            let mut con = s.conn();
            let _: () = con.set(k, "v").expect("SET");
        }
        let mut missing: BTreeSet<String> = keys.iter().map(|k| format!("\"SET\" \"{k}\" \"v\"")).collect();
        let mut lines = Vec::new();
        while !missing.is_empty() {
            let Ok(line) = rx.recv_timeout(PATIENCE) else {
                panic!("MONITOR never showed {missing:?}; it printed:\n{}", lines.join("\n"));
            };
            missing.retain(|m| !line.contains(m.as_str()));
            lines.push(line);
        }
        let l = lines.iter().find(|l| l.contains("\"SET\"")).expect("a SET line");
        // 1700000000.123456 [0 127.0.0.1:40000] "SET" "k" "v"
        let (ts, rest) = l.split_once(' ').expect("timestamp");
        assert!(ts.parse::<f64>().is_ok(), "timestamp in {l:?}");
        assert!(rest.starts_with("[0 127.0.0.1:"), "client in {l:?}");
    }));
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

// -----------------------------------------------------------------------------------------
// 11. Concurrency
// -----------------------------------------------------------------------------------------

#[test]
fn concurrent_incr_exact_totals() {
    let s = Arc::new(Server::start(&[]));
    let threads = 8;
    let per = 2000;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                let mut con = s.conn();
                for i in 0..per {
                    let _: i64 = con.incr("ctr:one", 1).expect("INCR one");
                    let _: i64 = con.incr(format!("ctr:{}", (i * 7 + t) % 64), 1).expect("INCR spread");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("INCR thread");
    }
    let mut con = s.conn();
    let one: i64 = con.get("ctr:one").expect("GET");
    assert_eq!(one, threads * per);
    let keys: Vec<String> = (0..64).map(|i| format!("ctr:{i}")).collect();
    let shards: BTreeSet<u16> = keys.iter().map(|k| shard_of(k)).collect();
    assert_eq!(shards.len(), SHARDS as usize);
    let vals: Vec<Option<i64>> = redis::cmd("MGET").arg(&keys).query(&mut con).expect("MGET");
    let mut want = vec![0i64; 64];
    for t in 0..threads {
        for i in 0..per {
            want[((i * 7 + t) % 64) as usize] += 1;
        }
    }
    let got: Vec<i64> = vals.into_iter().map(|v| v.unwrap_or(0)).collect();
    assert_eq!(got, want);
}

#[test]
fn cross_shard_mset_is_atomic_for_mget() {
    let s = Arc::new(Server::start(&[]));
    // Three keys, each on a different shard.
    let a = "atom:a".to_string();
    let b = key_on_other_shard(&a, "atom:b");
    let c = (0..)
        .map(|i| format!("atom:c{i}"))
        .find(|k| shard_of(k) != shard_of(&a) && shard_of(k) != shard_of(&b))
        .expect("c");
    let keys = Arc::new(vec![a, b, c]);
    {
        let mut con = s.conn();
        let mut m = redis::cmd("MSET");
        for k in keys.iter() {
            m.arg(k).arg("init");
        }
        let _: () = m.query(&mut con).expect("MSET init");
    }
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (s, keys) = (Arc::clone(&s), Arc::clone(&keys));
            std::thread::spawn(move || {
                let mut con = s.conn();
                for n in 0..1000 {
                    let v = format!("w{t}:{n}");
                    let mut m = redis::cmd("MSET");
                    for k in keys.iter() {
                        m.arg(k).arg(&v);
                    }
                    let _: () = m.query(&mut con).expect("MSET");
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (s, keys, done, reads) = (Arc::clone(&s), Arc::clone(&keys), Arc::clone(&done), Arc::clone(&reads));
            std::thread::spawn(move || {
                let mut con = s.conn();
                let mut torn = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let vals: Vec<Option<String>> = redis::cmd("MGET").arg(&keys[..]).query(&mut con).expect("MGET");
                    reads.fetch_add(1, Ordering::Relaxed);
                    if vals.iter().any(|v| v != &vals[0]) && torn.len() < 5 {
                        torn.push(vals);
                    }
                }
                torn
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    done.store(true, Ordering::Relaxed);
    let torn: Vec<Vec<Option<String>>> = readers.into_iter().flat_map(|r| r.join().expect("reader")).collect();
    assert!(
        torn.is_empty(),
        "MGET saw a half-applied cross-shard MSET ({} reads in all), e.g. {:?}",
        reads.load(Ordering::Relaxed),
        &torn[..torn.len().min(5)]
    );
}

// -----------------------------------------------------------------------------------------
// 12. CLIENT LIST / KILL / SETNAME
// -----------------------------------------------------------------------------------------

#[test]
fn client_list_kill_setname() {
    let s = Server::start(&[]);
    // Enough connections that the kernel's SO_REUSEPORT hash puts them on several shards.
    let mut conns: Vec<Raw> = (0..16).map(|_| s.raw()).collect();
    let mut ids = Vec::new();
    for (i, c) in conns.iter_mut().enumerate() {
        assert_eq!(
            c.cmd(&["CLIENT", "SETNAME", &format!("bb-{i}")]),
            V::Simple("OK".into())
        );
        assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), V::Bulk(format!("bb-{i}").into_bytes()));
        match c.cmd(&["CLIENT", "ID"]) {
            V::Int(id) => ids.push(id),
            other => panic!("CLIENT ID replied {other:?}"),
        }
    }
    let mut admin = s.raw();
    assert_eq!(admin.cmd(&["CLIENT", "GETNAME"]), V::Nil);
    let list = admin.cmd(&["CLIENT", "LIST"]).str();
    for (i, id) in ids.iter().enumerate() {
        let line = list
            .lines()
            .find(|l| l.starts_with(&format!("id={id} ")))
            .unwrap_or_else(|| panic!("id={id} not in CLIENT LIST:\n{list}"));
        assert!(line.contains(&format!(" name=bb-{i} ")), "{line}");
    }
    assert_eq!(list.lines().count(), 17, "16 clients and the admin connection:\n{list}");
    let only = admin
        .cmd(&["CLIENT", "LIST", "ID", &ids[3].to_string(), &ids[9].to_string()])
        .str();
    assert_eq!(only.lines().count(), 2, "{only}");

    // Kill three connections, whatever shards they live on.
    for &victim in &[0usize, 7, 15] {
        let id = ids[victim];
        assert_eq!(
            admin.cmd(&["CLIENT", "KILL", "ID", &id.to_string()]),
            V::Int(1),
            "CLIENT KILL ID {id}"
        );
        let c = &mut conns[victim];
        let r = c.read_to_eof();
        assert!(
            matches!(&r, Ok(b) if b.is_empty()),
            "killed connection {id} not closed: {r:?}"
        );
    }
    // New-style (filter) form counts; old-style (addr) form errors when nothing matches.
    assert_eq!(admin.cmd(&["CLIENT", "KILL", "ID", &ids[0].to_string()]), V::Int(0));
    assert_eq!(
        admin.cmd(&["CLIENT", "KILL", "127.0.0.1:1"]),
        V::Err("ERR No such client".into())
    );
    let list = admin.cmd(&["CLIENT", "LIST"]).str();
    assert_eq!(list.lines().count(), 14, "{list}");
    for &alive in &[1usize, 8, 14] {
        assert_eq!(conns[alive].cmd(&["PING"]), V::Simple("PONG".into()));
    }
    // Old-style CLIENT KILL addr:port.
    let addr = conns[2].stream().local_addr().expect("addr").to_string();
    assert_eq!(admin.cmd(&["CLIENT", "KILL", &addr]), V::Simple("OK".into()));
    let r = conns[2].read_to_eof();
    assert!(
        matches!(&r, Ok(b) if b.is_empty()),
        "connection {addr} not closed: {r:?}"
    );
}

/// `maxmemory` with `noeviction`: once used memory passes the limit, writes that may grow
/// memory get Redis's exact OOM error, reads and deletes keep working, and raising the
/// limit at run time lets writes through again.
#[test]
fn maxmemory_noeviction_refuses_writes_with_oom() {
    let s = Server::start(&["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"]);
    let mut con = s.conn();
    let value = "x".repeat(64 * 1024);
    let mut refused = None;
    // 8 MiB of values plus the process's own allocations pass the limit well before 1,000 keys.
    for i in 0..1000 {
        let r: redis::RedisResult<()> = redis::cmd("SET").arg(format!("big:{i}")).arg(&value).query(&mut con);
        if let Err(e) = r {
            refused = Some((i, e.to_string()));
            break;
        }
        // used_memory is refreshed by the cron (every 100 ms at hz 10): give it a chance.
        if i % 16 == 15 {
            std::thread::sleep(std::time::Duration::from_millis(120));
        }
    }
    let (at, err) = refused.expect("writes past maxmemory must be refused");
    assert!(
        err.contains("command not allowed when used memory > 'maxmemory'"),
        "error: {err}"
    );
    assert!(at > 0, "the first writes fit");
    let raw = s.cli(&["set", "one-more", "v"]);
    assert_eq!(raw.trim(), "OOM command not allowed when used memory > 'maxmemory'.");
    // Reads and deletes still work.
    let got: Option<String> = redis::cmd("GET").arg("big:0").query(&mut con).expect("GET");
    assert_eq!(got.as_deref(), Some(value.as_str()));
    let _: i64 = redis::cmd("DEL").arg("big:0").query(&mut con).expect("DEL");
    // Raising the limit lets writes through.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query(&mut con)
        .expect("CONFIG SET");
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("v")
        .query(&mut con)
        .expect("SET after raising the limit");
}

/// Redis's call() samples every command for the latency monitor, EXEC (a `skip_slowlog`
/// command) included: a transaction of fast commands that is slow as a whole is a
/// "command" event even though none of its commands is.
#[test]
fn latency_monitor_samples_a_slow_exec_of_fast_commands() {
    let s = Server::start(&[]);
    let mut con = s.conn();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("latency-monitor-threshold")
        .arg(1)
        .query(&mut con)
        .unwrap();
    let mut p = redis::pipe();
    p.atomic();
    for i in 0..50_000 {
        p.cmd("SET").arg(format!("tx:{i}")).arg(i).ignore();
    }
    p.query::<()>(&mut con).expect("the transaction");
    let latest: Vec<(String, i64, i64, i64)> = redis::cmd("LATENCY").arg("LATEST").query(&mut con).unwrap();
    let command = latest.iter().find(|e| e.0 == "command");
    assert!(command.is_some_and(|e| e.2 >= 1 && e.3 >= e.2), "{latest:?}");
}

/// MEMORY USAGE measures what a key holds (its value's bytes dominate, big collections are
/// sampled and extrapolated), MEMORY STATS counts the keys of every shard and database, and
/// DOCTOR, PURGE and MALLOC-STATS answer with the allocator's real figures.
#[test]
fn memory_usage_stats_doctor_purge() {
    let s = Server::start(&[]);
    let mut con = s.conn();
    let usage = |con: &mut redis::Connection, args: &[&str]| -> Option<i64> {
        redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(args)
            .query(con)
            .expect("MEMORY USAGE")
    };
    let _: () = redis::cmd("SET").arg("small").arg("x").query(&mut con).unwrap();
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg("v".repeat(10_000))
        .query(&mut con)
        .unwrap();
    let small = usage(&mut con, &["small"]).unwrap();
    let big = usage(&mut con, &["big"]).unwrap();
    assert!((1..200).contains(&small), "{small}");
    assert!((10_000..11_000).contains(&big), "{big}");
    assert_eq!(usage(&mut con, &["missing"]), None);
    // A hash table of 1,000 fields with 100-byte values: about 100 KB of pairs plus the
    // table; sampled (5, the default, and 1) or measured whole, the same order of size.
    let mut p = redis::pipe();
    for i in 0..1000 {
        p.cmd("HSET")
            .arg("h")
            .arg(format!("f{i:04}"))
            .arg("v".repeat(100))
            .ignore();
    }
    p.query::<()>(&mut con).unwrap();
    for samples in [None, Some("1"), Some("0")] {
        let args: Vec<&str> = match samples {
            None => vec!["h"],
            Some(n) => vec!["h", "SAMPLES", n],
        };
        let n = usage(&mut con, &args).unwrap();
        assert!((100_000..200_000).contains(&n), "{args:?}: {n}");
    }
    // Keys on every shard, and one in another database.
    for i in 0..20 {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg(i).query(&mut con).unwrap();
    }
    let _: () = redis::cmd("SELECT").arg(3).query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("other").arg("1").query(&mut con).unwrap();
    let stats: Vec<redis::Value> = redis::cmd("MEMORY").arg("STATS").query(&mut con).unwrap();
    let field = |name: &str| {
        let i = stats
            .iter()
            .position(|v| *v == redis::Value::BulkString(name.as_bytes().to_vec()));
        stats[i.unwrap_or_else(|| panic!("no {name} in {stats:?}")) + 1].clone()
    };
    assert_eq!(field("keys.count"), redis::Value::Int(24));
    assert!(matches!(field("db.0"), redis::Value::Array(ref a) if a.len() == 6));
    assert!(matches!(field("db.3"), redis::Value::Array(ref a) if a.len() == 6));
    assert!(!stats.contains(&redis::Value::BulkString(b"db.1".to_vec())));
    let redis::Value::Int(total) = field("total.allocated") else {
        panic!("{stats:?}")
    };
    let redis::Value::Int(dataset) = field("dataset.bytes") else {
        panic!("{stats:?}")
    };
    assert!(dataset > 100_000 && dataset < total, "{dataset} of {total}");
    let purge: String = redis::cmd("MEMORY").arg("PURGE").query(&mut con).unwrap();
    assert_eq!(purge, "OK");
    let report: String = redis::cmd("MEMORY").arg("MALLOC-STATS").query(&mut con).unwrap();
    assert!(
        report.contains("Begin jemalloc statistics"),
        "{}",
        &report[..report.len().min(200)]
    );
    let doctor: String = redis::cmd("MEMORY").arg("DOCTOR").query(&mut con).unwrap();
    assert!(
        doctor.starts_with("Hi Sam") || doctor.starts_with("Sam, I detected"),
        "{doctor}"
    );
}

/// WAIT with replicas asked for blocks as on a Redis primary without replicas: 0 after the
/// timeout, counted in blocked_clients meanwhile; CLIENT UNBLOCK ends it (TIMEOUT: 0, ERROR:
/// the UNBLOCKED error), and a client that leaves while waiting is no longer counted.
#[test]
fn wait_blocks_until_timeout_unblock_or_disconnect() {
    let s = Server::start(&[]);
    let mut con = s.conn();
    let blocked = |con: &mut redis::Connection| info_field(&info(con, "clients"), "blocked_clients");
    let start = std::time::Instant::now();
    let n: i64 = redis::cmd("WAIT").arg(1).arg(200).query(&mut con).unwrap();
    assert_eq!(n, 0);
    assert!(start.elapsed() >= Duration::from_millis(150), "{:?}", start.elapsed());

    for (mode, want) in [
        ("TIMEOUT", ":0"),
        ("ERROR", "-UNBLOCKED client unblocked via CLIENT UNBLOCK"),
    ] {
        let mut waiter = s.raw();
        let id = waiter.cmd(&["CLIENT", "ID"]).str();
        waiter.send(&["WAIT", "1", "0"]).unwrap();
        let seen = poll(Duration::from_secs(5), || {
            (blocked(&mut con).as_deref() == Some("1")).then_some(())
        });
        assert!(seen.is_some(), "WAIT never counted as blocked");
        let unblocked: i64 = redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(&id)
            .arg(mode)
            .query(&mut con)
            .unwrap();
        assert_eq!(unblocked, 1);
        let reply = match waiter.read().unwrap() {
            V::Int(n) => format!(":{n}"),
            V::Err(e) => format!("-{e}"),
            other => format!("{other:?}"),
        };
        assert_eq!(reply, want);
        assert_eq!(waiter.cmd(&["PING"]).str(), "PONG");
    }

    let mut waiter = s.raw();
    waiter.send(&["WAIT", "1", "0"]).unwrap();
    assert!(
        poll(Duration::from_secs(5), || (blocked(&mut con).as_deref() == Some("1"))
            .then_some(()))
        .is_some()
    );
    drop(waiter);
    let left = poll(Duration::from_secs(5), || {
        (blocked(&mut con).as_deref() == Some("0")).then_some(())
    });
    assert!(
        left.is_some(),
        "a client gone while in WAIT is still counted as blocked"
    );
}
