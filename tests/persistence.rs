//! Black-box tests of the append-only file: the real binary with `--shards 4 --appendonly yes`
//! in a temporary directory, restarted over the same directory, killed with SIGKILL under
//! load, starved of disk space, and swapped with Debian's redis-server 7.0 both ways.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, have_redis, Raw, RedisServer, V};

/// A temporary data directory, removed when the test passes.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("basalt-persist-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn aof(&self) -> PathBuf {
        self.0.join("appendonlydir")
    }

    fn incr(&self) -> PathBuf {
        self.aof().join("appendonly.aof.1.incr.aof")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// One basalt process over a data directory.
struct Node {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

fn spawn(dir: &Path, extra: &[&str]) -> (Child, u16, PathBuf) {
    let port = free_port();
    let log = dir.join(format!("basalt-{port}.log"));
    let f = std::fs::File::create(&log).unwrap();
    let mut args = vec![
        "--shards".to_string(),
        "4".into(),
        "--port".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "yes".into(),
        "--dir".into(),
        dir.to_str().unwrap().into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let child = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    (child, port, log)
}

impl Node {
    fn start(dir: &Path, extra: &[&str]) -> Node {
        let (child, port, log) = spawn(dir, extra);
        let mut n = Node {
            child: Some(child),
            port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = n.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("basalt exited with {st}:\n{}", n.log_text());
            }
            if n.log_text().contains("Ready to accept connections") && Raw::connect(port).is_ok() {
                return n;
            }
            assert!(Instant::now() < deadline, "basalt did not start:\n{}", n.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs basalt expecting it to refuse to start; returns its exit code and output.
    fn refused(dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
        let (mut child, _, log) = spawn(dir, extra);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return (st.code(), std::fs::read_to_string(&log).unwrap_or_default());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "basalt started but should not have:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn raw(&self) -> Raw {
        let mut r = Raw::connect(self.port).unwrap();
        r.set_timeout(Duration::from_secs(20));
        r
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SHUTDOWN, and wait for the exit.
    fn shutdown(mut self) {
        let mut r = self.raw();
        let _ = r.send(&["SHUTDOWN"]);
        let mut c = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "no exit after SHUTDOWN");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill9(mut self) {
        let mut c = self.child.take().unwrap();
        let _ = c.kill();
        let _ = c.wait();
    }

    fn info(&self, field: &str) -> String {
        self.info_in("persistence", field)
    }

    fn info_in(&self, section: &str, field: &str) -> String {
        self.raw().info_field(section, field)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            if std::thread::panicking() {
                eprintln!("---- basalt log ----\n{}", self.log_text());
            }
        }
    }
}

fn bulk(v: V) -> Option<String> {
    match v {
        V::Bulk(b) => Some(String::from_utf8(b).unwrap()),
        V::Nil => None,
        other => panic!("not a bulk: {other:?}"),
    }
}

fn int(v: V) -> i64 {
    match v {
        V::Int(i) => i,
        other => panic!("not an integer: {other:?}"),
    }
}

#[test]
fn restart_keeps_strings_expiry_and_multi_shard_writes() {
    let d = Dir::new("restart");
    let n = Node::start(&d.0, &[]);
    let mut r = n.raw();
    assert_eq!(r.cmd(&["SET", "plain", "v1"]).str(), "OK");
    assert_eq!(r.cmd(&["SET", "ttl", "v2", "EX", "1000"]).str(), "OK");
    assert_eq!(r.cmd(&["INCR", "counter"]).str(), "1");
    assert_eq!(r.cmd(&["INCRBY", "counter", "41"]).str(), "42");
    assert_eq!(r.cmd(&["SELECT", "3"]).str(), "OK");
    assert_eq!(r.cmd(&["SET", "indb3", "x"]).str(), "OK");
    assert_eq!(r.cmd(&["SELECT", "0"]).str(), "OK");
    // Keys on every shard in one atomic command: one MULTI/EXEC record.
    let keys: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
    let mut mset = vec!["MSET".to_string()];
    for k in &keys {
        mset.push(k.clone());
        mset.push(format!("val-{k}"));
    }
    let mset: Vec<&str> = mset.iter().map(|s| s.as_str()).collect();
    assert_eq!(r.cmd(&mset).str(), "OK");
    assert_eq!(int(r.cmd(&["DEL", "m0"])), 1);
    let deadline = int(r.cmd(&["PEXPIRETIME", "ttl"]));
    assert!(deadline > 0);
    drop(r);
    n.shutdown();

    let text = std::fs::read(d.incr()).unwrap();
    assert!(
        text.windows(5).any(|w| w == b"MULTI"),
        "multi-shard MSET is a MULTI/EXEC record"
    );

    let n = Node::start(&d.0, &[]);
    let mut r = n.raw();
    assert_eq!(bulk(r.cmd(&["GET", "plain"])).as_deref(), Some("v1"));
    assert_eq!(bulk(r.cmd(&["GET", "counter"])).as_deref(), Some("42"));
    assert_eq!(
        int(r.cmd(&["PEXPIRETIME", "ttl"])),
        deadline,
        "expiry is an absolute time"
    );
    assert_eq!(bulk(r.cmd(&["GET", "m0"])), None);
    for k in &keys[1..] {
        assert_eq!(bulk(r.cmd(&["GET", k])), Some(format!("val-{k}")));
    }
    assert_eq!(r.cmd(&["SELECT", "3"]).str(), "OK");
    assert_eq!(bulk(r.cmd(&["GET", "indb3"])).as_deref(), Some("x"));
    assert_eq!(int(r.cmd(&["DBSIZE"])), 1);
    assert!(n
        .log_text()
        .contains("DB loaded from incr file appendonly.aof.1.incr.aof"));
    drop(r);
    n.shutdown();
    assert!(Path::new(&d.aof().join("appendonly.aof.1.base.aof")).exists());
    assert_eq!(
        std::fs::read_to_string(d.aof().join("appendonly.aof.manifest")).unwrap(),
        "file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
}

/// Eviction under maxmemory: every evicted key is an `evicted` keyspace event and a DEL in
/// the AOF, so a restart finds exactly the keys that were left.
#[test]
fn evicted_keys_are_events_and_stay_gone_after_restart() {
    let d = Dir::new("evict");
    let n = Node::start(&d.0, &[]);
    let mut r = n.raw();
    assert_eq!(r.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Ee"]).str(), "OK");
    let mut sub = n.raw();
    assert!(matches!(sub.cmd(&["SUBSCRIBE", "__keyevent@0__:evicted"]), V::Arr(_)));
    let used: u64 = n.info_in("memory", "used_memory").parse().unwrap();
    let max = (used + 3 * (1 << 20)).to_string();
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"]).str(),
        "OK"
    );
    assert_eq!(r.cmd(&["CONFIG", "SET", "maxmemory", &max]).str(), "OK");
    let value = "x".repeat(1024);
    let keys: Vec<String> = (0..6000).map(|i| format!("ev:{i}")).collect();
    for chunk in keys.chunks(200) {
        for k in chunk {
            r.send(&["SET", k, &value]).unwrap();
        }
        for _ in chunk {
            assert_eq!(r.read().unwrap().str(), "OK");
        }
    }
    // Stop evicting before counting: the events' own buffers count as memory too.
    assert_eq!(r.cmd(&["CONFIG", "SET", "maxmemory", "0"]).str(), "OK");
    let evicted: usize = n.info_in("stats", "evicted_keys").parse().unwrap();
    assert!(evicted > 1000, "6 MB into a 3 MB limit evicted only {evicted} keys");
    // One event per evicted key, naming it.
    sub.set_timeout(Duration::from_secs(5));
    let mut gone = std::collections::HashSet::new();
    while gone.len() < evicted {
        match sub.read().unwrap() {
            V::Arr(m) | V::Push(m) => {
                assert_eq!(m[1].str(), "__keyevent@0__:evicted");
                assert!(gone.insert(m[2].str()), "key evicted twice: {}", m[2].str());
            }
            other => panic!("{other:?}"),
        }
    }
    let left: Vec<&String> = keys.iter().filter(|k| !gone.contains(*k)).collect();
    assert_eq!(int(r.cmd(&["DBSIZE"])) as usize, left.len());
    drop(r);
    drop(sub);
    n.shutdown();

    let n = Node::start(&d.0, &[]);
    let mut r = n.raw();
    assert_eq!(
        int(r.cmd(&["DBSIZE"])) as usize,
        left.len(),
        "the AOF replays the evictions"
    );
    for k in left.iter().take(50) {
        assert_eq!(bulk(r.cmd(&["GET", k])).as_deref(), Some(value.as_str()));
    }
    drop(r);
    n.shutdown();
}

/// The bitmap test's keys, as bytes (None: missing).
fn bitmap_values(r: &mut Raw) -> Vec<Option<Vec<u8>>> {
    ["bm:a", "bm:b", "bm:c", "bm:or", "bm:and", "bm:gone"]
        .iter()
        .map(|k| match r.cmd(&["GET", k]) {
            V::Bulk(b) => Some(b),
            V::Nil => None,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn restart_keeps_bitmaps_and_cross_shard_bitop() {
    let d = Dir::new("bitmaps");
    let n = Node::start(&d.0, &[]);
    let mut r = n.raw();
    for (key, bits) in [("bm:a", &[1usize, 9, 100][..]), ("bm:b", &[9, 17]), ("bm:c", &[0])] {
        for b in bits {
            assert_eq!(int(r.cmd(&["SETBIT", key, &b.to_string(), "1"])), 0);
        }
    }
    assert_eq!(int(r.cmd(&["SETBIT", "bm:a", "100", "0"])), 1);
    // Sources and destination on different shards (one MULTI/EXEC record each).
    assert_eq!(int(r.cmd(&["BITOP", "OR", "bm:or", "bm:a", "bm:b", "bm:c"])), 13);
    assert_eq!(int(r.cmd(&["BITOP", "AND", "bm:and", "bm:a", "bm:b"])), 13);
    assert_eq!(r.cmd(&["SET", "bm:gone", "x"]).str(), "OK");
    assert_eq!(int(r.cmd(&["BITOP", "NOT", "bm:gone", "bm:missing"])), 0);
    let before = bitmap_values(&mut r);
    drop(r);
    n.shutdown();

    let n = Node::start(&d.0, &[]);
    let mut r = n.raw();
    let after = bitmap_values(&mut r);
    assert_eq!(before, after);
    assert_eq!(after[5], None, "an empty BITOP result deleted the key");
    assert_eq!(int(r.cmd(&["BITCOUNT", "bm:or"])), 4);
    assert_eq!(int(r.cmd(&["BITPOS", "bm:and", "1"])), 9);
    assert_eq!(int(r.cmd(&["GETBIT", "bm:a", "100"])), 0);
    drop(r);
    n.shutdown();
}

fn write_some(n: &Node, count: usize) {
    let mut r = n.raw();
    for i in 0..count {
        assert_eq!(r.cmd(&["SET", &format!("k{i}"), &format!("v{i}")]).str(), "OK");
    }
}

#[test]
fn truncated_tail_is_dropped_or_refused_as_configured() {
    let d = Dir::new("truncated");
    let n = Node::start(&d.0, &[]);
    write_some(&n, 10);
    n.kill9();
    let good = std::fs::metadata(d.incr()).unwrap().len();
    // A crash in the middle of a write: half a command at the end.
    let mut f = std::fs::OpenOptions::new().append(true).open(d.incr()).unwrap();
    std::io::Write::write_all(&mut f, b"*3\r\n$3\r\nSET\r\n$2\r\nk1").unwrap();
    drop(f);

    let (code, out) = Node::refused(&d.0, &["--aof-load-truncated", "no"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("Unexpected end of file") && out.contains("appendonly.aof.1.incr.aof"),
        "{out}"
    );
    assert!(
        out.contains(&format!("offset {good}")),
        "the message gives the offset: {out}"
    );

    let n = Node::start(&d.0, &[]);
    assert!(n.log_text().contains(&format!(
        "Truncating the AOF appendonly.aof.1.incr.aof at offset {good}"
    )));
    let mut r = n.raw();
    assert_eq!(bulk(r.cmd(&["GET", "k9"])).as_deref(), Some("v9"));
    assert_eq!(int(r.cmd(&["DBSIZE"])), 10);
    // The file was cut back and new writes follow on a command boundary.
    assert_eq!(r.cmd(&["SET", "after", "1"]).str(), "OK");
    drop(r);
    n.shutdown();
    let n = Node::start(&d.0, &["--aof-load-truncated", "no"]);
    assert_eq!(bulk(n.raw().cmd(&["GET", "after"])).as_deref(), Some("1"));
    n.shutdown();
}

#[test]
fn corruption_mid_file_is_refused_and_check_aof_fixes_it() {
    let d = Dir::new("corrupt");
    let n = Node::start(&d.0, &[]);
    write_some(&n, 10);
    n.shutdown();
    let mut bytes = std::fs::read(d.incr()).unwrap();
    // Overwrite the '*' of a command in the middle.
    let at = bytes.len() / 2;
    let star = at + bytes[at..].iter().position(|&b| b == b'*').unwrap();
    bytes[star] = b'!';
    std::fs::write(d.incr(), &bytes).unwrap();

    let (code, out) = Node::refused(&d.0, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("Bad file format")
            && out.contains("appendonly.aof.1.incr.aof")
            && out.contains(&format!("offset {star}")),
        "names file and offset: {out}"
    );

    let manifest = d.aof().join("appendonly.aof.manifest");
    let check = |fix: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_basalt"));
        c.arg("check-aof");
        if fix {
            c.arg("--fix");
        }
        let o = c.arg(&manifest).output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let (code, out) = check(false);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("ok_up_to={star}")) && out.contains("is not valid"),
        "{out}"
    );
    let (code, out) = check(true);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Successfully truncated"), "{out}");
    let (code, out) = check(false);
    assert_eq!(code, Some(0), "{out}");

    let n = Node::start(&d.0, &[]);
    let mut r = n.raw();
    let size = int(r.cmd(&["DBSIZE"]));
    assert!(size > 0 && size < 10, "a prefix of the writes survives: {size}");
    for i in 0..size {
        assert_eq!(bulk(r.cmd(&["GET", &format!("k{i}")])), Some(format!("v{i}")));
    }
    drop(r);
    n.shutdown();
}

/// Writers on several connections record what was acknowledged; after SIGKILL and a
/// restart every acknowledged write must be there.
fn kill_during_load(policy: &str) {
    let d = Dir::new(&format!("kill-{policy}"));
    for round in 0..3 {
        let n = Node::start(&d.0, &["--appendfsync", policy]);
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
        let mut threads = Vec::new();
        for t in 0..4 {
            let (stop, acked, port) = (stop.clone(), acked.clone(), n.port);
            threads.push(std::thread::spawn(move || {
                let Ok(mut r) = Raw::connect(port) else { return };
                r.set_timeout(Duration::from_secs(5));
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Pipelines of 8, and a cross-shard MSET now and then.
                    let batch: Vec<(String, String)> = (0..8)
                        .map(|j| (format!("r{round}:t{t}:{i}:{j}"), format!("{i}-{j}")))
                        .collect();
                    for (k, v) in &batch {
                        if r.send(&["SET", k, v]).is_err() {
                            return;
                        }
                    }
                    for kv in batch {
                        match r.read() {
                            Ok(V::Simple(s)) if s == "OK" => acked.lock().unwrap().push(kv),
                            _ => return,
                        }
                    }
                    let (a, b) = (format!("r{round}:t{t}:{i}:ma"), format!("r{round}:t{t}:{i}:mb"));
                    if r.send(&["MSET", &a, "1", &b, "2"]).is_err() {
                        return;
                    }
                    match r.read() {
                        Ok(V::Simple(s)) if s == "OK" => {
                            let mut g = acked.lock().unwrap();
                            g.push((a, "1".into()));
                            g.push((b, "2".into()));
                        }
                        _ => return,
                    }
                    i += 1;
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(300 + 200 * round));
        n.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        assert!(!acked.is_empty(), "the load ran");
        let n = Node::start(&d.0, &["--appendfsync", policy]);
        let mut r = n.raw();
        let mut lost = 0;
        for (k, v) in &acked {
            if bulk(r.cmd(&["GET", k])).as_deref() != Some(v.as_str()) {
                lost += 1;
            }
        }
        assert_eq!(
            lost,
            0,
            "round {round}: {lost} of {} acknowledged writes lost",
            acked.len()
        );
        drop(r);
        n.shutdown();
    }
}

#[test]
fn kill9_loses_no_acknowledged_write_everysec() {
    kill_during_load("everysec");
}

#[test]
fn kill9_loses_no_acknowledged_write_always() {
    kill_during_load("always");
}

/// A bug's panic on one shard (DEBUG PANIC) ends the whole process at once, with a report in
/// the log, instead of leaving the other shards to wait on the dead one; restarted, it has
/// every write it acknowledged, including those other connections made on other shards.
#[test]
fn a_panic_ends_the_process_and_loses_no_acknowledged_write() {
    let d = Dir::new("panic");
    let extra = ["--appendfsync", "everysec", "--enable-debug-command", "yes"];
    let mut n = Node::start(&d.0, &extra);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..3)
        .map(|t| {
            let (stop, acked, port) = (stop.clone(), acked.clone(), n.port);
            std::thread::spawn(move || {
                let Ok(mut r) = Raw::connect(port) else { return };
                r.set_timeout(Duration::from_secs(5));
                for i in 0.. {
                    let k = format!("p{t}:{i}");
                    if stop.load(Ordering::Relaxed) || r.send(&["SET", &k, "v"]).is_err() {
                        return;
                    }
                    match r.read() {
                        Ok(V::Simple(s)) if s == "OK" => acked.lock().unwrap().push(k),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut r = n.raw();
    let _ = r.send(&["DEBUG", "PANIC"]);
    assert!(
        r.read().is_err(),
        "DEBUG PANIC gets no reply: the connection ends with the process"
    );
    let mut child = n.child.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            // Not left running when the test fails.
            let _ = child.kill();
            let _ = child.wait();
            panic!("the process outlived the panic:\n{}", n.log_text());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(!status.success(), "{status}");
    let log = n.log_text();
    assert!(
        log.contains("BASALT BUG REPORT") && log.contains("DEBUG PANIC called"),
        "{log}"
    );
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.join();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(acked.len() > 100, "the load ran: {}", acked.len());
    let n = Node::start(&d.0, &extra);
    let mut r = n.raw();
    let lost = acked
        .iter()
        .filter(|k| bulk(r.cmd(&["GET", k])).as_deref() != Some("v"))
        .count();
    assert_eq!(lost, 0, "{lost} of {} acknowledged writes lost", acked.len());
    drop(r);
    n.shutdown();
}

#[test]
fn info_persistence_has_redis_fields_with_real_values() {
    let d = Dir::new("info");
    let n = Node::start(&d.0, &[]);
    assert_eq!(n.info("aof_enabled"), "1");
    assert_eq!(n.info("loading"), "0");
    assert_eq!(n.info("aof_rewrite_in_progress"), "0");
    assert_eq!(n.info("aof_last_bgrewrite_status"), "ok");
    assert_eq!(n.info("aof_last_write_status"), "ok");
    assert_eq!(n.info("aof_base_size"), "0");
    assert_eq!(n.info("aof_delayed_fsync"), "0");
    let before: u64 = n.info("aof_current_size").parse().unwrap();
    write_some(&n, 5);
    let after: u64 = n.info("aof_current_size").parse().unwrap();
    assert!(after > before, "{before} -> {after}");
    assert_eq!(after, std::fs::metadata(d.incr()).unwrap().len());
    for f in [
        "aof_pending_rewrite",
        "aof_buffer_length",
        "aof_pending_bio_fsync",
        "rdb_changes_since_last_save",
    ] {
        n.info(f);
    }
    // Off and on again at run time (see the config_set_appendonly tests).
    let mut r = n.raw();
    assert_eq!(r.cmd(&["CONFIG", "SET", "appendonly", "no"]).str(), "OK");
    assert_eq!(n.info("aof_enabled"), "0");
    assert_eq!(r.cmd(&["CONFIG", "SET", "appendonly", "yes"]).str(), "OK");
    assert_eq!(n.info("aof_enabled"), "1");
    drop(r);
    n.shutdown();
}

/// Mounts a small tmpfs (needs root); None when that is not possible here.
fn small_tmpfs(tag: &str) -> Option<PathBuf> {
    let m = std::env::temp_dir().join(format!("basalt-tmpfs-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&m).ok()?;
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&m)
        .status()
        .ok()?
        .success();
    ok.then_some(m)
}

#[test]
fn disk_full_refuses_writes_with_misconf_then_recovers() {
    let Some(mnt) = small_tmpfs("full") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    };
    let guard = scopeguard(mnt.clone());
    let n = Node::start(&mnt, &[]);
    let mut r = n.raw();
    assert_eq!(r.cmd(&["SET", "before", "1"]).str(), "OK");
    // Fill the disk, leaving a few hundred bytes.
    let filler = mnt.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    let _ = f.sync_all();
    drop(f);
    // The first write that does not fit stays pending (not acknowledged) until space
    // returns; send it on its own connection.
    let big = "x".repeat(64 * 1024);
    let mut pending = n.raw();
    pending.send(&["SET", "big", &big]).unwrap();
    // (A write sent before the executor noticed the full disk would also wait: probe only
    // once INFO shows the error.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while n.info("aof_last_write_status") != "err" {
        assert!(Instant::now() < deadline, "the write error never showed");
        std::thread::sleep(Duration::from_millis(20));
    }
    match r.cmd(&["SET", "probe", "1"]) {
        V::Err(e) => assert_eq!(e, "MISCONF Errors writing to the AOF file: No space left on device"),
        other => panic!("write accepted on a full disk: {other:?}"),
    }
    assert!(
        matches!(r.cmd(&["PING"]), V::Err(e) if e.starts_with("MISCONF")),
        "PING too, as in Redis 7.0"
    );
    // Reads keep working.
    assert_eq!(bulk(r.cmd(&["GET", "before"])).as_deref(), Some("1"));
    std::fs::remove_file(&filler).unwrap();
    // The pending write goes out and is acknowledged; new writes are accepted again.
    assert_eq!(pending.read().unwrap().str(), "OK");
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.cmd(&["SET", "after", "1"]).str() != "OK" {
        assert!(Instant::now() < deadline, "writes never resumed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(n.info("aof_last_write_status"), "ok");
    drop((r, pending));
    n.shutdown();
    let n = Node::start(&mnt, &[]);
    let mut r = n.raw();
    assert_eq!(bulk(r.cmd(&["GET", "big"])).map(|s| s.len()), Some(big.len()));
    assert_eq!(bulk(r.cmd(&["GET", "after"])).as_deref(), Some("1"));
    drop(r);
    n.shutdown();
    drop(guard);
}

/// Unmounts and removes the tmpfs when the test ends (even by panic).
struct Unmount(PathBuf);
fn scopeguard(p: PathBuf) -> Unmount {
    Unmount(p)
}
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every key's value and deadline, sorted, for comparing two servers.
fn dump(r: &mut Raw) -> Vec<(String, Option<String>, i64)> {
    let mut out = Vec::new();
    let V::Arr(keys) = r.cmd(&["KEYS", "*"]) else {
        panic!("KEYS")
    };
    for k in keys {
        let k = k.str();
        let v = bulk(r.cmd(&["GET", &k]));
        let at = int(r.cmd(&["PEXPIRETIME", &k]));
        out.push((k, v, at));
    }
    out.sort();
    out
}

/// Restarts basalt over `d` and checks it holds `before` (with the key the test put in db 5),
/// then, when redis-server is installed, that redis-server loads the same data from `d`.
fn restart_and_compare(d: &Dir, before: &[(String, Option<String>, i64)], ours: &str, theirs_msg: &str) {
    let n = Node::start(&d.0, &[]);
    let mut r = n.raw();
    assert_eq!(dump(&mut r), before, "{ours}");
    assert_eq!(r.cmd(&["SELECT", "5"]).str(), "OK");
    assert_eq!(bulk(r.cmd(&["GET", "other-db"])).as_deref(), Some("y"));
    drop(r);
    n.shutdown();
    if have_redis() {
        let redis = RedisServer::start(&d.0, &["--appendonly", "yes"]);
        let theirs = dump(&mut redis.raw());
        redis.shutdown();
        assert_eq!(theirs, before, "{theirs_msg}");
    }
}

fn fill(r: &mut Raw) {
    for i in 0..50 {
        assert_eq!(r.cmd(&["SET", &format!("s{i}"), &format!("v{i}")]).str(), "OK");
    }
    assert_eq!(r.cmd(&["SET", "e1", "x", "PX", "500000"]).str(), "OK");
    assert_eq!(int(r.cmd(&["EXPIRE", "s1", "1000"])), 1);
    assert_eq!(r.cmd(&["MSET", "ma", "1", "mb", "2", "mc", "3"]).str(), "OK");
    assert_eq!(int(r.cmd(&["DEL", "s2"])), 1);
    assert_eq!(r.cmd(&["INCRBYFLOAT", "f", "1.5"]).str(), "1.5");
    assert_eq!(r.cmd(&["APPEND", "s3", "-more"]).str(), "7");
}

#[test]
fn aof_written_by_basalt_loads_into_redis_server() {
    if !have_redis() {
        return;
    }
    let d = Dir::new("to-redis");
    let n = Node::start(&d.0, &[]);
    let mut r = n.raw();
    fill(&mut r);
    let ours = dump(&mut r);
    drop(r);
    n.shutdown();
    let redis = RedisServer::start(&d.0, &["--appendonly", "yes"]);
    let theirs = dump(&mut redis.raw());
    redis.shutdown();
    assert_eq!(ours, theirs);
}

#[test]
fn aof_written_by_redis_server_loads_into_basalt() {
    if !have_redis() {
        return;
    }
    let d = Dir::new("from-redis");
    // A RESP base here; tests/rdb.rs loads one with Redis's default RDB preamble.
    let redis = RedisServer::start(&d.0, &["--appendonly", "yes", "--aof-use-rdb-preamble", "no"]);
    let mut r = redis.raw();
    fill(&mut r);
    let theirs = dump(&mut r);
    drop(r);
    redis.shutdown();
    let n = Node::start(&d.0, &[]);
    let ours = dump(&mut n.raw());
    n.shutdown();
    assert_eq!(ours, theirs);
}

#[test]
fn bgrewriteaof_under_load_is_point_in_time_and_loads_everywhere() {
    let d = Dir::new("rewrite");
    let n = Node::start(&d.0, &[]);
    let mut r = n.raw();
    // 20,000 keys, pipelined.
    for chunk in 0..20 {
        for i in 0..1000 {
            let k = format!("key:{}", chunk * 1000 + i);
            r.send(&["SET", &k, &k]).unwrap();
        }
        for _ in 0..1000 {
            assert_eq!(r.read().unwrap().str(), "OK");
        }
    }
    assert_eq!(r.cmd(&["SET", "ttl", "x", "PX", "600000"]).str(), "OK");
    assert_eq!(r.cmd(&["SELECT", "5"]).str(), "OK");
    assert_eq!(r.cmd(&["SET", "other-db", "y"]).str(), "OK");
    assert_eq!(r.cmd(&["SELECT", "0"]).str(), "OK");
    // Non-idempotent writes and deletes race the rewrite.
    let stop = Arc::new(AtomicBool::new(false));
    let load = writer(n.port, stop.clone());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        r.cmd(&["BGREWRITEAOF"]).str(),
        "Background append only file rewriting started"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while n.info("aof_rewrites") != "1" {
        assert_eq!(n.info("aof_last_bgrewrite_status"), "ok");
        assert!(Instant::now() < deadline, "rewrite never finished:\n{}", n.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let before = dump(&mut r);
    drop(r);
    n.shutdown();
    let manifest = std::fs::read_to_string(d.aof().join("appendonly.aof.manifest")).unwrap();
    assert_eq!(
        manifest,
        "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    assert!(
        !d.aof().join("appendonly.aof.1.incr.aof").exists(),
        "history files are removed"
    );

    restart_and_compare(
        &d,
        &before,
        "base + new incr = the data set",
        "redis-server loads the rewritten AOF",
    );
}

#[test]
fn sigterm_flushes_and_fsyncs_before_exit() {
    let d = Dir::new("sigterm");
    let mut n = Node::start(&d.0, &["--appendfsync", "no"]);
    write_some(&n, 100);
    let mut c = n.child.take().unwrap();
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = c.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    let n = Node::start(&d.0, &[]);
    assert_eq!(int(n.raw().cmd(&["DBSIZE"])), 100);
    n.shutdown();
}

/// Runs non-idempotent writes (INCR, DEL, APPEND, multi-shard MSET) until `stop`.
fn writer(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut r = Raw::connect(port).unwrap();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            r.cmd(&["INCR", &format!("counter:{}", i % 10)]);
            r.cmd(&["DEL", &format!("key:{}", (i * 7919) % 20000)]);
            r.cmd(&["APPEND", &format!("key:{}", (i * 104729) % 20000), "+"]);
            r.cmd(&[
                "MSET",
                &format!("m:{}", i % 50),
                "1",
                &format!("n:{}", i % 50),
                &i.to_string(),
            ]);
            i += 1;
        }
        i
    })
}

fn load_keys(r: &mut Raw, n: usize) {
    for chunk in 0..n / 1000 {
        for i in 0..1000 {
            let k = format!("key:{}", chunk * 1000 + i);
            r.send(&["SET", &k, &k]).unwrap();
        }
        for _ in 0..1000 {
            assert_eq!(r.read().unwrap().str(), "OK");
        }
    }
}

fn wait_info(n: &Node, field: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while n.info(field) != want {
        assert!(
            Instant::now() < deadline,
            "{field} never became {want}:\n{}",
            n.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn config_set_appendonly_yes_under_load_then_restart_has_every_key() {
    let d = Dir::new("aof-on");
    let n = Node::start(&d.0, &["--appendonly", "no"]);
    let mut r = n.raw();
    load_keys(&mut r, 20000);
    assert_eq!(r.cmd(&["SET", "ttl", "x", "PX", "600000"]).str(), "OK");
    assert_eq!(r.cmd(&["SELECT", "5"]).str(), "OK");
    assert_eq!(r.cmd(&["SET", "other-db", "y"]).str(), "OK");
    assert_eq!(r.cmd(&["SELECT", "0"]).str(), "OK");
    assert_eq!(n.info("aof_enabled"), "0");
    assert!(!d.aof().exists(), "no AOF directory while appendonly is no");
    let stop = Arc::new(AtomicBool::new(false));
    let load = writer(n.port, stop.clone());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(r.cmd(&["CONFIG", "SET", "appendonly", "yes"]).str(), "OK");
    assert_eq!(n.info("aof_enabled"), "1");
    assert_eq!(
        r.cmd(&["CONFIG", "GET", "appendonly"]),
        V::Arr(vec![V::Bulk(b"appendonly".to_vec()), V::Bulk(b"yes".to_vec())])
    );
    wait_info(&n, "aof_rewrites", "1");
    assert_eq!(n.info("aof_last_bgrewrite_status"), "ok");
    assert_eq!(n.info("aof_rewrite_in_progress"), "0");
    assert_eq!(n.info("aof_rewrite_scheduled"), "0");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    assert!(load.join().unwrap() > 0);
    let base: u64 = n.info("aof_base_size").parse().unwrap();
    let current: u64 = n.info("aof_current_size").parse().unwrap();
    assert!(base > 0 && current > base, "base {base}, current {current}");
    let before = dump(&mut r);
    drop(r);
    n.shutdown();
    assert_eq!(
        std::fs::read_to_string(d.aof().join("appendonly.aof.manifest")).unwrap(),
        "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    assert!(!d.aof().join("temp-appendonly.aof.incr").exists());

    restart_and_compare(
        &d,
        &before,
        "base + incr = the data set at shutdown",
        "redis-server loads the AOF too",
    );
}

#[test]
fn config_set_appendonly_no_closes_the_file_and_yes_starts_a_new_base() {
    let d = Dir::new("aof-off");
    let n = Node::start(&d.0, &[]);
    let mut r = n.raw();
    write_some(&n, 100);
    assert_eq!(r.cmd(&["CONFIG", "SET", "appendonly", "no"]).str(), "OK");
    assert_eq!(n.info("aof_enabled"), "0");
    let size = std::fs::metadata(d.incr()).unwrap().len();
    assert!(size > 0);
    assert_eq!(r.cmd(&["SET", "unlogged", "1"]).str(), "OK");
    assert_eq!(
        std::fs::metadata(d.incr()).unwrap().len(),
        size,
        "nothing appended once off"
    );
    assert!(matches!(r.cmd(&["BGREWRITEAOF"]), V::Err(_)));
    // On again: the old files become history, a new base holds everything.
    assert_eq!(r.cmd(&["CONFIG", "SET", "appendonly", "yes"]).str(), "OK");
    wait_info(&n, "aof_rewrites", "1");
    assert_eq!(r.cmd(&["SET", "logged", "2"]).str(), "OK");
    drop(r);
    n.shutdown();
    assert_eq!(
        std::fs::read_to_string(d.aof().join("appendonly.aof.manifest")).unwrap(),
        "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    assert!(!d.incr().exists(), "history removed");
    let n = Node::start(&d.0, &[]);
    let mut r = n.raw();
    assert_eq!(int(r.cmd(&["DBSIZE"])), 102);
    assert_eq!(bulk(r.cmd(&["GET", "unlogged"])).as_deref(), Some("1"));
    drop(r);
    n.shutdown();
}

#[test]
fn automatic_rewrite_on_growth_past_min_size() {
    let d = Dir::new("auto-rewrite");
    let n = Node::start(&d.0, &[]);
    let mut r = n.raw();
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "auto-aof-rewrite-percentage", "0"]).str(),
        "OK"
    );
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "auto-aof-rewrite-min-size", "4kb"]).str(),
        "OK"
    );
    // Percentage 0 turns automatic rewrites off.
    write_some(&n, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(n.info("aof_rewrites"), "0");
    // On: the AOF is past 4 KB and grew without bound over an empty base.
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "auto-aof-rewrite-percentage", "100"]).str(),
        "OK"
    );
    wait_info(&n, "aof_rewrites", "1");
    let base: u64 = n.info("aof_base_size").parse().unwrap();
    assert!(base > 1024, "the base (RDB preamble) holds the 200 keys: {base}");
    // Not again until the AOF doubled.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(n.info("aof_rewrites"), "1");
    for i in 0..300 {
        assert_eq!(
            r.cmd(&["SET", &format!("k{i}"), &format!("longer-value-{i}")]).str(),
            "OK"
        );
    }
    wait_info(&n, "aof_rewrites", "2");
    let current: u64 = n.info("aof_current_size").parse().unwrap();
    let base2: u64 = n.info("aof_base_size").parse().unwrap();
    // The second base holds the keys written before its cut (the growth that triggered it),
    // so it is bigger than the first; how much of the 300 SETs landed after the cut depends
    // on when the rewrite started, so the incremental part has no fixed bound.
    assert!(base < base2 && base2 <= current, "{base} {base2} {current}");
    assert!(n.log_text().contains("Starting automatic rewriting of AOF on"));
    let before = dump(&mut r);
    drop(r);
    n.shutdown();
    let n = Node::start(&d.0, &[]);
    assert_eq!(dump(&mut n.raw()), before);
    n.shutdown();
}

#[test]
fn clients_get_loading_while_a_big_aof_loads_then_the_data() {
    let d = Dir::new("loading");
    let aof = d.aof();
    std::fs::create_dir_all(&aof).unwrap();
    let keys = 1_000_000;
    {
        use std::io::Write;
        let f = std::fs::File::create(aof.join("appendonly.aof.1.base.aof")).unwrap();
        let mut w = std::io::BufWriter::new(f);
        for i in 0..keys {
            let (k, v) = (format!("key:{i}"), format!("value-{i}"));
            write!(w, "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n", k.len(), v.len()).unwrap();
        }
        // A cross-shard MSET and a MULTI group load too.
        w.write_all(b"*5\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n")
            .unwrap();
        w.write_all(b"*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n$1\r\na\r\n*1\r\n$4\r\nEXEC\r\n")
            .unwrap();
    }
    std::fs::write(aof.join("appendonly.aof.1.incr.aof"), b"").unwrap();
    std::fs::write(
        aof.join("appendonly.aof.manifest"),
        "file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
    )
    .unwrap();
    let (child, port, log) = spawn(&d.0, &[]);
    let n = Node {
        child: Some(child),
        port,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut r = loop {
        if let Ok(r) = Raw::connect(port) {
            break r;
        }
        assert!(Instant::now() < deadline, "no connection:\n{}", n.log_text());
        std::thread::sleep(Duration::from_millis(2));
    };
    r.set_timeout(Duration::from_secs(20));
    // Connected while loading: refused with Redis's error, INFO shows the progress.
    assert_eq!(
        r.cmd(&["PING"]),
        V::Err("LOADING Redis is loading the dataset in memory".into())
    );
    assert_eq!(
        r.cmd(&["GET", "key:1"]),
        V::Err("LOADING Redis is loading the dataset in memory".into())
    );
    let info = r.cmd(&["INFO", "persistence"]).str();
    if info.contains("loading:1") {
        for f in [
            "loading_start_time:",
            "loading_total_bytes:",
            "loading_loaded_bytes:",
            "loading_loaded_perc:",
            "loading_eta_seconds:",
        ] {
            assert!(info.contains(f), "{f} missing:\n{info}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match r.cmd(&["PING"]) {
            V::Simple(s) if s == "PONG" => break,
            V::Err(e) if e.starts_with("LOADING") => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < deadline, "load never ended:\n{}", n.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(int(r.cmd(&["DBSIZE"])), keys + 2);
    assert_eq!(bulk(r.cmd(&["GET", "key:123456"])).as_deref(), Some("value-123456"));
    assert_eq!(bulk(r.cmd(&["GET", "a"])).as_deref(), Some("2"));
    assert_eq!(bulk(r.cmd(&["GET", "b"])).as_deref(), Some("2"));
    assert_eq!(n.info("loading"), "0");
    assert!(n.log_text().contains("Ready to accept connections"));
    drop(r);
    n.shutdown();
}

#[test]
fn shutdown_flushes_under_appendfsync_no() {
    let d = Dir::new("shutdown-no");
    let n = Node::start(&d.0, &["--appendfsync", "no"]);
    write_some(&n, 300);
    n.shutdown();
    let n = Node::start(&d.0, &[]);
    assert_eq!(int(n.raw().cmd(&["DBSIZE"])), 300);
    n.shutdown();
}

#[test]
fn appendonly_flipped_during_its_first_rewrite_keeps_every_key() {
    let d = Dir::new("aof-flip");
    let n = Node::start(&d.0, &["--appendonly", "no"]);
    let mut r = n.raw();
    load_keys(&mut r, 30_000);
    let stop = Arc::new(AtomicBool::new(false));
    let load = writer(n.port, stop.clone());
    // yes, no while the first base is being written (cancels it), yes again.
    assert_eq!(r.cmd(&["CONFIG", "SET", "appendonly", "yes"]).str(), "OK");
    assert_eq!(r.cmd(&["CONFIG", "SET", "appendonly", "no"]).str(), "OK");
    assert_eq!(n.info("aof_enabled"), "0");
    assert_eq!(n.info("aof_rewrite_in_progress"), "0");
    assert_eq!(r.cmd(&["CONFIG", "SET", "appendonly", "yes"]).str(), "OK");
    let deadline = Instant::now() + Duration::from_secs(60);
    while n.info("aof_rewrite_in_progress") != "0" || n.info("aof_rewrites") == "0" {
        assert!(Instant::now() < deadline, "no rewrite finished:\n{}", n.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(n.info("aof_last_bgrewrite_status"), "ok");
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let before = dump(&mut r);
    drop(r);
    n.kill9();
    assert!(!d.aof().join("temp-appendonly.aof.incr").exists());
    let n = Node::start(&d.0, &[]);
    assert_eq!(dump(&mut n.raw()), before, "every acknowledged write survives kill -9");
    n.shutdown();
}

/// Every key with its type and contents (strings and lists), sorted.
fn dump_typed(r: &mut Raw) -> Vec<(String, String)> {
    let V::Arr(keys) = r.cmd(&["KEYS", "*"]) else {
        panic!("KEYS")
    };
    let mut out = Vec::new();
    for k in keys {
        let k = k.str();
        let v = match r.cmd(&["TYPE", &k]).str().as_str() {
            "string" => format!("{:?}", bulk(r.cmd(&["GET", &k]))),
            "list" => format!("{:?}", r.cmd(&["LRANGE", &k, "0", "-1"])),
            t => panic!("unexpected type {t} of {k}"),
        };
        out.push((k, v));
    }
    out.sort();
    out
}

/// Shards cut the effects of inline commands once per executor turn, and must cut them
/// earlier wherever something is ordered after them: a coordinator reserving the shard
/// (MSET, LMOVE across shards, MULTI/EXEC), a hop elsewhere. Pipelines mixing
/// order-sensitive single-shard writes (APPEND, RPUSH, SET) with multi-shard ones and
/// transactions on the same keys, from several connections at once, must replay to exactly
/// the data set the server held.
#[test]
fn pipelined_writes_mixed_with_multi_shard_commands_replay_to_the_same_data() {
    let d = Dir::new("mixed-order");
    let n = Node::start(&d.0, &[]);
    // Few keys, so that a key a multi-shard command touches often has pending writes.
    let strings: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    let lists: Vec<String> = (0..6).map(|i| format!("l{i}")).collect();
    // Pairs of keys on different shards, for the multi-shard commands.
    let pair = |keys: &[String], x: usize| -> (String, String) {
        let a = keys[x % keys.len()].clone();
        let b = (1..keys.len())
            .map(|o| keys[(x + o) % keys.len()].clone())
            .find(|b| common::shard_of(b) != common::shard_of(&a))
            .expect("keys on two shards");
        (a, b)
    };
    let conns: Vec<_> = (0..8u64)
        .map(|c| {
            let (port, strings, lists) = (n.port, strings.clone(), lists.clone());
            std::thread::spawn(move || {
                let mut r = Raw::connect(port).unwrap();
                r.set_timeout(Duration::from_secs(20));
                let mut rng = common::Rng::new(c + 1);
                for round in 0..200 {
                    let mut cmds: Vec<Vec<String>> = Vec::new();
                    let x = rng.below(1000) as usize;
                    // A key for an inline APPEND and then a transaction that overwrites it:
                    // when the key lives on the connection's own shard, the transaction
                    // reserves it without a hop, right after the APPEND.
                    let own = strings[x % strings.len()].clone();
                    for i in 0..16 {
                        let x = rng.below(1000) as usize;
                        let tag = format!("{c}.{round}.{i}");
                        let string = strings[x % strings.len()].clone();
                        let cmd: Vec<String> = match i {
                            0 | 8 => {
                                let (a, b) = pair(&strings, x);
                                vec!["MSET".into(), a, format!("m{tag}"), b, format!("n{tag}")]
                            }
                            1 | 5 | 14 => {
                                let (a, b) = pair(&lists, x);
                                vec!["LMOVE".into(), a, b, "LEFT".into(), "RIGHT".into()]
                            }
                            2 | 13 => vec!["RPUSH".into(), lists[x % lists.len()].clone(), tag],
                            4 => vec!["SET".into(), string, tag],
                            7 => vec!["INCR".into(), format!("counter{c}")],
                            9 => vec!["APPEND".into(), own.clone(), format!("+{tag}")],
                            10 => vec!["MULTI".into()],
                            11 => vec!["SET".into(), own.clone(), format!("t{tag}")],
                            12 => vec!["EXEC".into()],
                            _ => vec!["APPEND".into(), string, format!("+{tag}")],
                        };
                        cmds.push(cmd);
                    }
                    let mut bytes = Vec::new();
                    for cmd in &cmds {
                        let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
                        bytes.extend(common::encode(&args));
                    }
                    r.write_all(&bytes).unwrap();
                    for cmd in &cmds {
                        let v = r.read().unwrap();
                        assert!(!matches!(v, V::Err(_)), "{cmd:?} answered {v:?}");
                    }
                }
            })
        })
        .collect();
    for c in conns {
        c.join().unwrap();
    }
    let before = dump_typed(&mut n.raw());
    assert!(before.len() > 10, "the load wrote keys: {before:?}");
    // Every reply above was acknowledged, so a kill loses nothing and the file is complete.
    n.kill9();
    let n = Node::start(&d.0, &[]);
    assert_eq!(dump_typed(&mut n.raw()), before);
    n.shutdown();
}

/// WAITAOF (Redis 7.2): `[1, 0]` once an fsync covers the client's writes (under `always`
/// and `everysec`), the numlocal refusal without an AOF, an immediate answer inside EXEC,
/// `[.., 0]` after the timeout when replicas are asked for (there are none), and the writes
/// it acknowledged are in the incremental file.
#[test]
fn waitaof_acknowledges_fsynced_writes() {
    let d = Dir::new("waitaof");
    let n = Node::start(&d.0, &[]);
    let mut r = n.raw();
    let pair = |v: V| match v {
        V::Arr(a) if a.len() == 2 => (int(a[0].clone()), int(a[1].clone())),
        other => panic!("not a pair: {other:?}"),
    };
    for policy in ["everysec", "always"] {
        assert_eq!(r.cmd(&["CONFIG", "SET", "appendfsync", policy]).str(), "OK");
        let key = format!("acked-{policy}");
        assert_eq!(r.cmd(&["SET", &key, "v"]).str(), "OK");
        assert_eq!(pair(r.cmd(&["WAITAOF", "1", "0", "0"])), (1, 0), "{policy}");
        let text = std::fs::read(d.incr()).unwrap();
        assert!(
            text.windows(key.len()).any(|w| w == key.as_bytes()),
            "{policy}: not in the AOF"
        );
    }
    // Replicas asked for: none answers, the timeout ends it, the local fsync is reported.
    assert_eq!(pair(r.cmd(&["WAITAOF", "1", "1", "50"])), (1, 0));
    for (args, err) in [
        (
            ["WAITAOF", "2", "0", "0"],
            "ERR value is out of range, value must between 0 and 1",
        ),
        (
            ["WAITAOF", "x", "0", "0"],
            "ERR value is not an integer or out of range",
        ),
        (
            ["WAITAOF", "0", "-1", "0"],
            "ERR value is out of range, must be positive",
        ),
        (["WAITAOF", "0", "0", "-1"], "ERR timeout is negative"),
    ] {
        assert_eq!(r.cmd(&args), V::Err(err.to_string()), "{args:?}");
    }
    // Waiting forever for a replica: a client that leaves is no longer counted as blocked.
    let mut waiter = n.raw();
    waiter.send(&["WAITAOF", "0", "1", "0"]).unwrap();
    let blocked = |r: &mut Raw| r.info_field("clients", "blocked_clients");
    let counted = common::poll(Duration::from_secs(5), || (blocked(&mut r) == "1").then_some(()));
    assert!(counted.is_some(), "WAITAOF never counted as blocked");
    drop(waiter);
    let left = common::poll(Duration::from_secs(5), || (blocked(&mut r) == "0").then_some(()));
    assert!(
        left.is_some(),
        "a client gone while in WAITAOF is still counted as blocked"
    );
    // Inside EXEC it answers at once, even for replicas it cannot get.
    assert_eq!(r.cmd(&["MULTI"]).str(), "OK");
    assert_eq!(r.cmd(&["WAITAOF", "0", "1", "0"]).str(), "QUEUED");
    match r.cmd(&["EXEC"]) {
        V::Arr(a) => assert_eq!(pair(a[0].clone()).1, 0),
        other => panic!("{other:?}"),
    }
    // Only the client's own writes count (Redis's per-client offset): under `no` nothing is
    // ever fsynced, so a client that wrote waits out its timeout; one that never wrote, or
    // whose writes were fsynced before, does not wait for it.
    let mut reader = n.raw();
    assert_eq!(r.cmd(&["CONFIG", "SET", "appendfsync", "no"]).str(), "OK");
    assert_eq!(pair(reader.cmd(&["WAITAOF", "1", "0", "2000"])), (1, 0));
    assert_eq!(r.cmd(&["SET", "unsynced", "v"]).str(), "OK");
    assert_eq!(pair(r.cmd(&["WAITAOF", "1", "0", "100"])), (0, 0));
    assert_eq!(bulk(reader.cmd(&["GET", "unsynced"])).as_deref(), Some("v"));
    assert_eq!(pair(reader.cmd(&["WAITAOF", "1", "0", "2000"])), (1, 0));
    let mut pipelined = n.raw();
    pipelined
        .write_all(
            &[
                common::encode(&[b"SET", b"k2", b"v"]),
                common::encode(&[b"WAITAOF", b"1", b"0", b"100"]),
            ]
            .concat(),
        )
        .unwrap();
    assert_eq!(pipelined.read().unwrap().str(), "OK");
    assert_eq!(
        pair(pipelined.read().unwrap()),
        (0, 0),
        "a write earlier in the same batch counts"
    );
    assert_eq!(r.cmd(&["CONFIG", "SET", "appendonly", "no"]).str(), "OK");
    assert_eq!(
        r.cmd(&["WAITAOF", "1", "0", "0"]),
        V::Err("ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.".into())
    );
    assert_eq!(pair(r.cmd(&["WAITAOF", "0", "0", "0"])), (0, 0));
}
