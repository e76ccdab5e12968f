//! Lua scripting: EVAL and friends on Lua 5.1 (the version Redis embeds; scripts depend on
//! its semantics), with Redis 7's API, libraries, sandbox and reply conversions.
//!
//! How a script runs, and why so:
//!
//! - A script holds every shard it may touch for its whole run, so nothing else observes
//!   the keyspace halfway. Scripts may touch keys they did not declare (Redis allows it and
//!   job queues rely on it), so a script whose reach is unknown holds *every* shard
//!   ([`crate::shard::Shard::reserve`]). What each script touched is learned ([`Scope`]):
//!   once a run touched only its declared keys, and those live on one shard, later runs go
//!   to that shard like a keyed command (inline when it is the connection's own, batched
//!   with the pipeline's other commands for that shard otherwise) and run there, holding
//!   only it. With one shard every script runs so.
//! - The Lua VM runs on the shard's own thread (one VM per shard thread, created on first
//!   use), inside a coroutine with its own stack (`corosensei`). A script that ends within
//!   a 2 ms slice (nearly all) costs no thread hop and no task. A longer one pauses from the
//!   VM hook at the end of each slice and resumes at the executor's next turn, so the
//!   thread keeps serving its other connections: once the script passes
//!   `busy-reply-threshold` they get `-BUSY`, and `SCRIPT KILL` or `SHUTDOWN NOSAVE` from
//!   any connection, on any shard, is served. (The first version ran the VM on a companion
//!   thread; two thread switches per script made EVALSHA 3-10x slower than Redis.)
//! - The script cache is one global registry (SHA1 -> [`Script`]) behind a lock, so EVALSHA
//!   works from every connection; each thread keeps its own map of the scripts it has seen,
//!   so a run takes no lock, and each VM compiles a body the first time it runs it.
//! - Effects: each handler records its effects as usual; a script's effects go to the
//!   persistence core as its effects, several of them as one `MULTI ... EXEC` record (as
//!   Redis 7 wraps a script's propagated commands only when there is more than one), before
//!   its shards are released.

pub mod convert;
pub mod functions;
pub mod libs;
pub mod vm;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use bytes::Bytes;

/// `-BUSY` while a script runs past the threshold.
pub const BUSY_SCRIPT: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
pub const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";
pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
pub const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
pub const KILLED: &str = "ERR Script killed by user with SCRIPT KILL...";

/// A script's SHA1 in lowercase hex: its name in the cache.
pub type Sha = [u8; 40];

/// The SHA1 an EVALSHA argument names (Redis lowercases it; any other length names nothing).
pub fn sha_of(arg: &[u8]) -> Option<Sha> {
    let sha: Sha = arg.try_into().ok()?;
    Some(sha.map(|b| b.to_ascii_lowercase()))
}

/// What runs taught about a script's keys (see `families::scripting`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Never run yet (with more than one shard).
    Unknown,
    /// Every run touched only the keys it declared.
    Declared,
    /// A run touched a key it did not declare: final.
    Any,
}

/// A cached script: its body and what its shebang line says, checked when it was loaded.
/// Each thread has its own copy; what runs learn about its keys is shared.
pub struct Script {
    pub sha: Sha,
    pub body: Bytes,
    pub shebang: Option<Shebang>,
    scope: Arc<AtomicU8>,
    /// This thread's VM's compiled function and environment for it: the VM's number and
    /// their registry references (see `vm::Vm::compiled`).
    pub compiled: std::cell::Cell<Option<(u64, std::ffi::c_int, std::ffi::c_int)>>,
}

impl Script {
    pub fn sha_str(&self) -> &str {
        // Lowercase hex digits only (sha1_hex or sha_of of a cached name).
        std::str::from_utf8(&self.sha).unwrap_or("")
    }

    pub fn scope(&self) -> Scope {
        match self.scope.load(Ordering::Relaxed) {
            0 => Scope::Unknown,
            1 => Scope::Declared,
            _ => Scope::Any,
        }
    }

    /// Records a run: touching an undeclared key is final.
    pub fn note_scope(&self, declared_only: bool) {
        if declared_only {
            let _ = self.scope.compare_exchange(0, 1, Ordering::Relaxed, Ordering::Relaxed);
        } else {
            self.scope.store(2, Ordering::Relaxed);
        }
    }
}

/// A script as the registry keeps it; each thread makes its own [`Script`] from it.
struct Entry {
    body: Bytes,
    shebang: Option<Shebang>,
    scope: Arc<AtomicU8>,
}

impl Entry {
    fn script(&self, sha: Sha) -> Script {
        Script {
            sha,
            body: self.body.clone(),
            shebang: self.shebang,
            scope: self.scope.clone(),
            compiled: std::cell::Cell::new(None),
        }
    }
}

/// The script cache shared by every shard.
static REGISTRY: LazyLock<RwLock<HashMap<Sha, Entry>>> = LazyLock::new(|| RwLock::new(HashMap::new()));

/// The number of cached scripts and the bytes of their bodies (INFO's
/// `number_of_cached_scripts` and `used_memory_scripts_eval`, MEMORY DOCTOR).
pub fn cache_stats() -> (usize, usize) {
    let reg = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    (reg.len(), reg.values().map(|e| e.body.len()).sum())
}

/// Bumped by SCRIPT FLUSH: each VM starts afresh (new globals, no compiled scripts) when it
/// sees a newer generation, as Redis recreates its Lua state; so do the threads' maps.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// A thread's view of the registry: the scripts it has run, without a lock. (Its own `Rc`
/// per script, so a run's handle costs no atomic operation on a line every shard shares.)
struct Local {
    generation: u64,
    scripts: ahash::AHashMap<Sha, Rc<Script>>,
    /// The last script looked up (a client usually runs one script over and over).
    last: Option<Rc<Script>>,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local {
        generation: u64::MAX,
        scripts: ahash::AHashMap::new(),
        last: None,
    });
}

/// The cached script named `sha`, if any.
pub fn lookup(sha: &Sha) -> Option<Rc<Script>> {
    LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        let gen = generation();
        if l.generation != gen {
            l.scripts.clear();
            l.last = None;
            l.generation = gen;
        }
        if let Some(s) = l.last.as_ref().filter(|s| s.sha == *sha) {
            return Some(s.clone());
        }
        let s = match l.scripts.get(sha) {
            Some(s) => s.clone(),
            None => {
                let s = Rc::new(REGISTRY.read().ok()?.get(sha)?.script(*sha));
                l.scripts.insert(*sha, s.clone());
                s
            }
        };
        l.last = Some(s.clone());
        Some(s)
    })
}

/// Caches a script body (EVAL, SCRIPT LOAD): checks its shebang and that it compiles first,
/// with Redis's errors.
pub fn load(body: Bytes) -> Result<Rc<Script>, String> {
    let sha = sha1_hex(&body);
    if let Some(s) = lookup(&sha) {
        return Ok(s);
    }
    let shebang = parse_shebang(&body)?;
    vm::compile_check(&body)?;
    let entry = Entry {
        body,
        shebang,
        scope: Arc::new(AtomicU8::new(0)),
    };
    if let Ok(mut r) = REGISTRY.write() {
        r.entry(sha).or_insert(entry);
    }
    lookup(&sha).ok_or_else(|| "ERR the script cache is unavailable".to_string())
}

pub fn cache_flush() {
    if let Ok(mut r) = REGISTRY.write() {
        r.clear();
    }
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// Lowercase SHA1 hex of a script body.
pub fn sha1_hex(body: &[u8]) -> Sha {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha1_smol::Sha1::from(body).digest().bytes();
    let mut out = [0u8; 40];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
    out
}

/// The learned scopes of functions, by library generation and name (scripts carry theirs).
static FUNCTION_SCOPES: LazyLock<RwLock<HashMap<String, bool>>> = LazyLock::new(|| RwLock::new(HashMap::new()));

/// A function's learned scope.
pub fn function_scope(key: &str) -> Scope {
    match FUNCTION_SCOPES.read().ok().and_then(|m| m.get(key).copied()) {
        None => Scope::Unknown,
        Some(true) => Scope::Declared,
        Some(false) => Scope::Any,
    }
}

/// Records a function's run: touching an undeclared key is final.
pub fn note_function_scope(key: &str, declared_only: bool) {
    let known = function_scope(key);
    if known == Scope::Any || (known == Scope::Declared && declared_only) {
        return;
    }
    if let Ok(mut m) = FUNCTION_SCOPES.write() {
        let e = m.entry(key.to_string()).or_insert(declared_only);
        *e = *e && declared_only;
    }
}

pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// The script running on one shard thread, if any. Scripts on different shards run in
/// parallel (each holds only the shards it needs), so each thread has its own.
#[derive(Default)]
pub struct RunState {
    pub running: AtomicBool,
    /// Past busy-reply-threshold: other clients get -BUSY.
    pub busy: AtomicBool,
    pub kill: AtomicBool,
    /// It called a write command: SCRIPT KILL refuses (UNKILLABLE).
    pub wrote: AtomicBool,
    /// The running script is a function (FCALL): -BUSY names FUNCTION KILL.
    pub function: AtomicBool,
}

/// Every thread's run state (for SCRIPT KILL and the -BUSY text), and how many are busy
/// (read by every command's checks, so one load when nothing is busy). A thread's state
/// lives as long as the process, as shard threads do.
static STATES: RwLock<Vec<&'static RunState>> = RwLock::new(Vec::new());
static BUSY: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MINE: &'static RunState = {
        let s: &'static RunState = Box::leak(Box::default());
        if let Ok(mut all) = STATES.write() {
            all.push(s);
        }
        s
    };
}

/// This thread's run state.
pub fn state() -> &'static RunState {
    MINE.with(|s| *s)
}

impl RunState {
    /// Marks the script past busy-reply-threshold.
    pub fn set_busy(&self) {
        if !self.busy.swap(true, Ordering::AcqRel) {
            BUSY.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The script ended: clears everything. (Loads first: a short script set none of the
    /// flags but `running`, and stores are dearer than loads.)
    pub fn finish(&self) {
        if self.busy.load(Ordering::Acquire) && self.busy.swap(false, Ordering::AcqRel) {
            BUSY.fetch_sub(1, Ordering::AcqRel);
        }
        if self.kill.load(Ordering::Acquire) {
            self.kill.store(false, Ordering::Release);
        }
        if self.wrote.load(Ordering::Acquire) {
            self.wrote.store(false, Ordering::Release);
        }
        self.running.store(false, Ordering::Release);
    }
}

/// True while a script runs past busy-reply-threshold: dispatch answers `-BUSY` to
/// commands without the allow_busy flag.
pub fn is_busy() -> bool {
    BUSY.load(Ordering::Relaxed) > 0
}

/// The busy scripts' states.
fn busy_states() -> Vec<&'static RunState> {
    STATES
        .read()
        .map(|all| {
            all.iter()
                .filter(|s| s.running.load(Ordering::Acquire) && s.busy.load(Ordering::Acquire))
                .copied()
                .collect()
        })
        .unwrap_or_default()
}

/// The -BUSY text for the running script (EVAL or FCALL).
pub fn busy_error() -> &'static str {
    if busy_states().iter().any(|s| s.function.load(Ordering::Relaxed)) {
        BUSY_FUNCTION
    } else {
        BUSY_SCRIPT
    }
}

/// What SCRIPT KILL (`function` false) or FUNCTION KILL answers, and does: it stops the busy
/// scripts of its kind.
pub fn kill(function: bool) -> Result<(), &'static str> {
    let busy = busy_states();
    if busy.is_empty() {
        return Err(NOTBUSY);
    }
    // SCRIPT KILL stops only EVAL scripts, FUNCTION KILL only functions.
    let mine: Vec<_> = busy
        .iter()
        .filter(|s| s.function.load(Ordering::Acquire) == function)
        .collect();
    if mine.is_empty() {
        return Err(busy_error());
    }
    if mine.iter().all(|s| s.wrote.load(Ordering::Acquire)) {
        return Err(UNKILLABLE);
    }
    for s in mine {
        if !s.wrote.load(Ordering::Acquire) {
            s.kill.store(true, Ordering::Release);
        }
    }
    Ok(())
}

/// The running function, for FUNCTION STATS: name, command line, start.
pub static RUNNING_FUNCTION: std::sync::Mutex<Option<(String, Vec<Bytes>, std::time::Instant)>> =
    std::sync::Mutex::new(None);

/// What a Redis 7 shebang line (`#!lua flags=no-writes,...`) says about a script.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shebang {
    pub no_writes: bool,
}

/// Parses a script's shebang line, if it has one, with Redis's errors.
pub fn parse_shebang(body: &[u8]) -> Result<Option<Shebang>, String> {
    if !body.starts_with(b"#!") {
        return Ok(None);
    }
    let line = &body[..memchr::memchr(b'\n', body).unwrap_or(body.len())];
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or("#!");
    if engine != "#!lua" {
        return Err(format!("ERR Unexpected engine in script shebang: {engine}"));
    }
    let mut sb = Shebang::default();
    for part in parts {
        let Some(flags) = part.strip_prefix("flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {part}"));
        };
        for f in flags.split(',').filter(|f| !f.is_empty()) {
            match f {
                "no-writes" => sb.no_writes = true,
                "allow-oom" | "allow-stale" | "no-cluster" | "allow-cross-slot-keys" => {}
                _ => return Err(format!("ERR Unexpected flag in script shebang: {f}")),
            }
        }
    }
    Ok(Some(sb))
}

/// The text Lua compiles: a shebang line becomes a comment, so line numbers stay.
pub fn lua_source(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if body.starts_with(b"#!") {
        let mut v = Vec::with_capacity(body.len() + 2);
        v.extend_from_slice(b"--");
        v.extend_from_slice(body);
        std::borrow::Cow::Owned(v)
    } else {
        std::borrow::Cow::Borrowed(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs_as_redis() {
        assert_eq!(parse_shebang(b"return 1"), Ok(None));
        assert_eq!(parse_shebang(b"#!lua\nreturn 1"), Ok(Some(Shebang::default())));
        assert_eq!(
            parse_shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1"),
            Ok(Some(Shebang { no_writes: true }))
        );
        assert_eq!(
            parse_shebang(b"#!lua flags=bogus\n"),
            Err("ERR Unexpected flag in script shebang: bogus".into())
        );
        assert_eq!(
            parse_shebang(b"#!lua name=x\n"),
            Err("ERR Unknown lua shebang option: name=x".into())
        );
        assert_eq!(
            parse_shebang(b"#!python\n"),
            Err("ERR Unexpected engine in script shebang: #!python".into())
        );
        assert_eq!(&lua_source(b"#!lua\nreturn 1")[..], b"--#!lua\nreturn 1");
    }

    #[test]
    fn shas_as_redis_names_them() {
        assert_eq!(&sha1_hex(b"return 1"), b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
        let upper = b"E0E1F9FABFC9D4800C877A703B823AC0578FF8DB";
        assert_eq!(sha_of(upper), Some(sha1_hex(b"return 1")));
        assert_eq!(sha_of(b"e0e1f9"), None);
    }
}
