//! Helpers for black-box tests: start the real `basalt` binary on a free port, talk to it with
//! the `redis` crate, `redis-cli`, or a raw RESP socket, and compute key slots / shards the way
//! the server must (CRC16 of the hash tag, `slot mod shards`) so tests can pick keys that land
//! on different shards.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shards every test server runs with: more than the 2 cores of the test machine, so cross-shard
/// paths are always exercised.
pub const SHARDS: u16 = 4;

/// Generous bound for anything that should happen "soon"; only ever used as a deadline for
/// polling, never asserted as a speed.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Ports handed out in this process, so two tests starting servers in parallel never share one
/// (with SO_REUSEPORT both servers could bind it and split the connections silently).
static PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = l.local_addr().expect("local addr").port();
        let mut g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
        if g.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
    pub dir: PathBuf,
    args: Vec<String>,
    /// Password for `cli` (redis-cli `-a`) when the server was started with `--requirepass`.
    pub password: Option<String>,
}

/// Why a start attempt failed.
pub enum StartError {
    /// The process exited, or never answered PING: retried on a new port.
    Failed(String),
    /// The process runs but never logged "Ready to accept connections": some shard executor never
    /// came up (seen intermittently under CPU contention; see `startup_never_stalls`).
    Stalled(String),
}

/// How long a start may take before it counts as stalled. Far above a normal start (well under
/// a second, a few seconds on a loaded machine); a stalled start never completes.
pub const START_DEADLINE: Duration = Duration::from_secs(12);

impl Server {
    /// Starts `basalt --shards 4 --port <free> --bind 127.0.0.1 --save '' <extra>` and waits until
    /// it logs "Ready to accept connections" and answers PING (NOAUTH counts as an answer).
    /// Retries on a new port if the process dies first (a port lost to another process between
    /// probe and bind) and, loudly, if startup stalls, so that one known startup bug (checked by
    /// its own test) does not fail every other test at random.
    pub fn start(extra: &[&str]) -> Server {
        let mut last = String::new();
        for _attempt in 0..4 {
            match Self::start_once(extra) {
                Ok(s) => return s,
                Err(StartError::Failed(e)) => last = e,
                Err(StartError::Stalled(e)) => {
                    eprintln!("WARNING: basalt startup stalled; retrying with a new server:\n{e}");
                    last = e;
                }
            }
        }
        panic!("basalt did not start: {last}");
    }

    /// One start attempt, no retry.
    pub fn start_once(extra: &[&str]) -> Result<Server, StartError> {
        let failed = StartError::Failed;
        let port = free_port();
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("basalt-bb-{}-{n}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| failed(format!("mkdir {}: {e}", dir.display())))?;
        let log = dir.join("basalt.log");
        let logf = std::fs::File::create(&log).map_err(|e| failed(format!("create {}: {e}", log.display())))?;
        let mut args: Vec<String> = vec![
            "--shards".into(),
            SHARDS.to_string(),
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let password = extra
            .iter()
            .position(|a| *a == "--requirepass")
            .and_then(|i| extra.get(i + 1))
            .map(|s| s.to_string());
        // BASALT_BIN: run the tests against another build (as tests/differential.rs does).
        let bin = std::env::var("BASALT_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_basalt").to_string());
        let child = Command::new(&bin)
            .args(&args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().map_err(|e| failed(e.to_string()))?)
            .stderr(logf)
            .spawn()
            .map_err(|e| failed(format!("cannot run basalt: {e}")))?;
        let mut server = Server {
            child: Some(child),
            port,
            log,
            dir,
            args,
            password,
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = server.try_wait() {
                let msg = format!(
                    "basalt {:?} exited with {status} before answering PING:\n{}",
                    server.args,
                    server.log_tail(40)
                );
                server.child = None;
                return Err(failed(msg));
            }
            // All shards must be up (the log line comes after every shard reported ready):
            // one shard answering PING does not mean the others accept yet.
            let ready = server.log_text().contains("Ready to accept connections");
            if !ready {
                if Instant::now() > deadline {
                    return Err(StartError::Stalled(format!(
                        "basalt {:?} did not log 'Ready to accept connections' within {START_DEADLINE:?}:\n{}",
                        server.args,
                        server.log_tail(40)
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            if let Ok(mut raw) = Raw::connect(port) {
                raw.set_timeout(Duration::from_secs(2));
                if raw.send(&["PING"]).is_ok() {
                    match raw.read() {
                        Ok(V::Simple(s)) if s == "PONG" => return Ok(server),
                        Ok(V::Err(e)) if e.starts_with("NOAUTH") => return Ok(server),
                        _ => {}
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(failed(format!(
                    "basalt {:?} did not answer PING on port {port}:\n{}",
                    server.args,
                    server.log_tail(40)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// A `redis` crate connection (authenticated if the server has a password), with a read
    /// timeout so a missing reply fails the test instead of hanging it.
    pub fn conn(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).expect("redis client");
        let con = client
            .get_connection_with_timeout(Duration::from_secs(10))
            .expect("connect with the redis crate");
        con.set_read_timeout(Some(PATIENCE)).expect("set read timeout");
        con
    }

    /// A raw RESP socket (not authenticated).
    pub fn raw(&self) -> Raw {
        let mut r = Raw::connect(self.port).expect("raw connect");
        r.set_timeout(PATIENCE);
        r
    }

    /// Runs `redis-cli -p <port> [-a pw] <args>` and returns its stdout (panics if it cannot
    /// run; a non-zero exit is returned as output too, redis-cli prints errors on stdout).
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.arg("-p").arg(self.port.to_string()).arg("-h").arg("127.0.0.1");
        if let Some(p) = &self.password {
            cmd.arg("--no-auth-warning").arg("-a").arg(p);
        }
        let out = cmd.args(args).stdin(Stdio::null()).output().expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server process").id()
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Polls until the process exits (or `timeout`); the exit status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Panics (with the log) if the server process has died.
    pub fn assert_alive(&mut self) {
        if let Some(s) = self.try_wait() {
            panic!("basalt exited with {s}:\n{}", self.log_tail(60));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self, n: usize) -> String {
        let s = self.log_text();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- basalt {:?} log ({}) ----\n{}\n----",
                self.args,
                self.log.display(),
                self.log_tail(80)
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A RESP2/RESP3 reply, as read off a raw socket.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Simple(String),
    Err(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Arr(Vec<V>),
    Map(Vec<(V, V)>),
    Set(Vec<V>),
    Push(Vec<V>),
    Double(String),
    Bool(bool),
    Verbatim(String),
    Big(String),
}

impl V {
    pub fn str(&self) -> String {
        match self {
            V::Simple(s) | V::Err(s) | V::Double(s) | V::Verbatim(s) | V::Big(s) => s.clone(),
            V::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            V::Int(i) => i.to_string(),
            other => format!("{other:?}"),
        }
    }
}

/// A raw TCP connection speaking RESP by hand: for exact error texts, RESP3 bytes, garbage.
/// Over another stream (a TLS session) it speaks the same.
pub struct Raw<S: Read + Write = TcpStream> {
    pub r: BufReader<S>,
}

impl Raw {
    pub fn connect(port: u16) -> std::io::Result<Raw> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_nodelay(true)?;
        Ok(Raw { r: BufReader::new(s) })
    }

    /// True if a server on `port` answers PING with PONG now. A connection refused or reset
    /// (a server still starting, or one that lost a race for its port) is a no, not a panic.
    pub fn pongs(port: u16) -> bool {
        let Ok(mut r) = Raw::connect(port) else { return false };
        r.send(&["PING"]).is_ok() && r.read().is_ok_and(|v| matches!(v, V::Simple(ref s) if s == "PONG"))
    }

    pub fn stream(&self) -> &TcpStream {
        self.r.get_ref()
    }

    pub fn set_timeout(&mut self, d: Duration) {
        let _ = self.r.get_ref().set_read_timeout(Some(d));
        let _ = self.r.get_ref().set_write_timeout(Some(d));
    }
}

impl<S: Read + Write> Raw<S> {
    pub fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.r.get_mut().write_all(b)
    }

    pub fn send(&mut self, args: &[&str]) -> std::io::Result<()> {
        let bargs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.write_all(&encode(&bargs))
    }

    /// Sends one command and reads one reply.
    pub fn cmd(&mut self, args: &[&str]) -> V {
        self.send(args).expect("send");
        self.read().expect("read reply")
    }

    /// One field of `INFO section`.
    pub fn info_field(&mut self, section: &str, field: &str) -> String {
        let text = self.cmd(&["INFO", section]).str();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {field} in INFO {section}:\n{text}"))
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut buf = Vec::new();
        let n = self.r.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "connection closed"));
        }
        if !buf.ends_with(b"\r\n") {
            return Err(std::io::Error::new(
                ErrorKind::InvalidData,
                format!("line without CRLF: {buf:?}"),
            ));
        }
        buf.truncate(buf.len() - 2);
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn count(s: &str) -> std::io::Result<i64> {
        s.parse()
            .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, format!("bad length {s:?}")))
    }

    fn items(&mut self, n: i64) -> std::io::Result<Vec<V>> {
        (0..n).map(|_| self.read()).collect()
    }

    /// Reads one reply (attributes are skipped).
    pub fn read(&mut self) -> std::io::Result<V> {
        let l = self.line()?;
        let (t, rest) = l.split_at(l.len().min(1));
        Ok(match t {
            "+" => V::Simple(rest.into()),
            "-" => V::Err(rest.into()),
            ":" => V::Int(Self::count(rest)?),
            "," => V::Double(rest.into()),
            "(" => V::Big(rest.into()),
            "#" => V::Bool(rest == "t"),
            "_" => V::Nil,
            "$" | "=" => {
                let n = Self::count(rest)?;
                if n < 0 {
                    return Ok(V::Nil);
                }
                let mut b = vec![0u8; n as usize + 2];
                self.r.read_exact(&mut b)?;
                b.truncate(n as usize);
                if t == "=" {
                    V::Verbatim(String::from_utf8_lossy(&b).into_owned())
                } else {
                    V::Bulk(b)
                }
            }
            "*" => {
                let n = Self::count(rest)?;
                if n < 0 {
                    V::Nil
                } else {
                    V::Arr(self.items(n)?)
                }
            }
            "~" => V::Set(self.items(Self::count(rest)?)?),
            ">" => V::Push(self.items(Self::count(rest)?)?),
            "%" => {
                let n = Self::count(rest)?;
                let mut m = Vec::new();
                for _ in 0..n {
                    let k = self.read()?;
                    let v = self.read()?;
                    m.push((k, v));
                }
                V::Map(m)
            }
            "|" => {
                let n = Self::count(rest)?;
                for _ in 0..2 * n {
                    self.read()?;
                }
                self.read()?
            }
            _ => {
                return Err(std::io::Error::new(
                    ErrorKind::InvalidData,
                    format!("bad reply line {l:?}"),
                ))
            }
        })
    }

    /// Reads exactly `n` raw bytes.
    pub fn read_bytes(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut b = vec![0u8; n];
        self.r.read_exact(&mut b)?;
        Ok(b)
    }

    /// Reads until the server closes the connection (or the read times out: Err).
    pub fn read_to_eof(&mut self) -> std::io::Result<Vec<u8>> {
        let mut b = Vec::new();
        match self.r.read_to_end(&mut b) {
            Ok(_) => Ok(b),
            // A reset after the server closed with unread input still means "closed".
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(b),
            Err(e) => Err(e),
        }
    }
}

/// Encodes one command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// CRC16/XMODEM, the Redis Cluster key hash.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Redis Cluster's hash slot, hash tags included.
pub fn slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&c| c == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&c| c == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) % 16384
}

/// The shard owning `key` in a server started by `Server::start`.
pub fn shard_of(key: &str) -> u16 {
    slot(key.as_bytes()) % SHARDS
}

/// The first key `<prefix><n>` (n = 0, 1, ...) that lands on a shard other than `key`'s.
pub fn key_on_other_shard(key: &str, prefix: &str) -> String {
    let s = shard_of(key);
    (0..)
        .map(|n| format!("{prefix}{n}"))
        .find(|k| shard_of(k) != s)
        .expect("some key lands elsewhere")
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A small deterministic generator (xorshift64*), so "random" inputs are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Debian's redis-server, the oracle of the round-trip tests.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// True when redis-server is installed; otherwise says the test is skipped.
pub fn have_redis() -> bool {
    if std::path::Path::new(REDIS_SERVER).exists() {
        return true;
    }
    eprintln!("SKIPPED: no {REDIS_SERVER}");
    false
}

/// A redis-server on a free port over `dir`, without save points; `extra` options follow
/// (e.g. `--appendonly yes`). Killed when dropped; [`RedisServer::shutdown`] stops it cleanly.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    pub fn start(dir: &std::path::Path, extra: &[&str]) -> RedisServer {
        let port = free_port();
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Raw::pongs(port) {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { child, port }
    }

    pub fn raw(&self) -> Raw {
        Raw::connect(self.port).expect("connect to redis-server")
    }

    /// `SHUTDOWN NOSAVE` and wait for the process: what it wrote stays as it was.
    pub fn shutdown(mut self) {
        if let Ok(mut r) = Raw::connect(self.port) {
            let _ = r.send(&["SHUTDOWN", "NOSAVE"]);
        }
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
