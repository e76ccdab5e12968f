//! Lua scripting: EVAL and friends on Lua 5.1 (the version Redis embeds; scripts depend on
//! its semantics), with Redis 7's API, libraries, sandbox and reply conversions.
//!
//! How a script runs, and why so:
//!
//! - Scripts may touch keys they did not declare (Redis allows it and job queues rely on
//!   it), so the issuing connection's home shard reserves *every* shard
//!   ([`crate::shard::Shard::reserve`]) before the script starts: nothing else can observe
//!   the keyspace until it ends. `redis.call` runs the command's keyed handler over the
//!   lent keyspaces, as EXEC does.
//! - The Lua VM runs on the shard's own thread (one VM per shard thread, created on first
//!   use), inside a coroutine with its own stack (`corosensei`). A script that ends within
//!   a 2 ms slice (nearly all) costs no thread hop and no task. A longer one pauses from the
//!   VM hook at the end of each slice and resumes at the executor's next turn, so the
//!   thread keeps serving its other connections: once the script passes
//!   `busy-reply-threshold` they get `-BUSY`, and `SCRIPT KILL` or `SHUTDOWN NOSAVE` from
//!   any connection, on any shard, is served. (The first version ran the VM on a companion
//!   thread; two thread switches per script made EVALSHA 3-10x slower than Redis.)
//! - The script cache is one global registry (SHA1 -> body) behind a lock, so EVALSHA works
//!   from every connection; each VM compiles a body the first time it runs it.
//! - Effects: each handler records its effects as usual; the script's whole effects go to
//!   the persistence core as one `MULTI ... EXEC` record before the shards are released.

pub mod convert;
pub mod functions;
pub mod libs;
pub mod vm;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, RwLock};

use bytes::Bytes;

/// `-BUSY` while a script runs past the threshold.
pub const BUSY_SCRIPT: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
pub const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";
pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
pub const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
pub const KILLED: &str = "ERR Script killed by user with SCRIPT KILL...";

/// The script cache shared by every shard: lowercase SHA1 hex -> body.
static REGISTRY: LazyLock<RwLock<HashMap<String, Bytes>>> = LazyLock::new(|| RwLock::new(HashMap::new()));

/// Bumped by SCRIPT FLUSH: each VM starts afresh (new globals, no compiled scripts) when it
/// sees a newer generation, as Redis recreates its Lua state.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The running script, if any. At most one script runs at a time (each holds every shard).
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

pub static STATE: RunState = RunState {
    running: AtomicBool::new(false),
    busy: AtomicBool::new(false),
    kill: AtomicBool::new(false),
    wrote: AtomicBool::new(false),
    function: AtomicBool::new(false),
};

/// True while a script runs past busy-reply-threshold: dispatch answers `-BUSY` to
/// commands without the allow_busy flag.
pub fn is_busy() -> bool {
    STATE.busy.load(Ordering::Relaxed)
}

/// The -BUSY text for the running script (EVAL or FCALL).
pub fn busy_error() -> &'static str {
    if STATE.function.load(Ordering::Relaxed) {
        BUSY_FUNCTION
    } else {
        BUSY_SCRIPT
    }
}

/// What SCRIPT KILL (`function` false) or FUNCTION KILL answers, and does.
pub fn kill(function: bool) -> Result<(), &'static str> {
    if !STATE.running.load(Ordering::Acquire) || !STATE.busy.load(Ordering::Acquire) {
        return Err(NOTBUSY);
    }
    if STATE.wrote.load(Ordering::Acquire) {
        return Err(UNKILLABLE);
    }
    // SCRIPT KILL stops only EVAL scripts, FUNCTION KILL only functions.
    if STATE.function.load(Ordering::Acquire) != function {
        return Err(busy_error());
    }
    STATE.kill.store(true, Ordering::Release);
    Ok(())
}

/// The running function, for FUNCTION STATS: name, command line, start.
pub static RUNNING_FUNCTION: std::sync::Mutex<Option<(String, Vec<Bytes>, std::time::Instant)>> =
    std::sync::Mutex::new(None);

/// Lowercase SHA1 hex of a script body.
pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

pub fn cache_get(sha: &str) -> Option<Bytes> {
    REGISTRY.read().ok()?.get(sha).cloned()
}

pub fn cache_put(sha: String, body: Bytes) {
    if let Ok(mut r) = REGISTRY.write() {
        r.entry(sha).or_insert(body);
    }
}

pub fn cache_flush() {
    if let Ok(mut r) = REGISTRY.write() {
        r.clear();
    }
    if let Ok(mut m) = SCOPES.write() {
        m.clear();
    }
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// What runs taught about each script (see `families::scripting::run_script`): true if it
/// only ever touched the keys it declared, false once it touched another.
static SCOPES: LazyLock<RwLock<HashMap<String, bool>>> = LazyLock::new(|| RwLock::new(HashMap::new()));

/// True if the script has run and only ever touched the keys it declared.
pub fn declared_only(scope: &str) -> bool {
    SCOPES
        .read()
        .map(|m| m.get(scope).copied().unwrap_or(false))
        .unwrap_or(false)
}

/// Records a run: `declared_only` false is final.
pub fn note_scope(scope: &str, declared_only: bool) {
    let known = SCOPES.read().ok().and_then(|m| m.get(scope).copied());
    if known == Some(false) || known == Some(declared_only) {
        return;
    }
    if let Ok(mut m) = SCOPES.write() {
        let e = m.entry(scope.to_string()).or_insert(declared_only);
        *e = *e && declared_only;
    }
}

pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Memory the cached bodies take (INFO's used_memory_scripts approximation).
pub fn cache_len() -> usize {
    REGISTRY.read().map(|r| r.len()).unwrap_or(0)
}

/// What a Redis 7 shebang line (`#!lua flags=no-writes,...`) says about a script.
#[derive(Debug, Default, PartialEq, Eq)]
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
}
