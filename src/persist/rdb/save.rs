//! `dump.rdb`: SAVE, BGSAVE, LASTSAVE, the `save <seconds> <changes>` schedule, and loading
//! the file at start-up.
//!
//! A save never forks and never stops the world. It is the forkless AOF rewrite's
//! mechanism (persist::rewrite) with an RDB part: the coordinator reserves every shard for
//! a moment and installs a snapshot in each (the cut); each shard then serializes its
//! keyspace in small steps between commands, a write serializing the keys it names first,
//! so each shard's part is its keyspace at the cut. Parts stream to a writer thread that
//! writes `temp-<pid>.rdb` (header, AUX fields, function libraries, the parts, EOF and the
//! CRC-64), fsyncs it, renames it to `dbfilename` and fsyncs the directory. Only one
//! snapshot (a save or an AOF rewrite) runs at a time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use super::{read, write};
use crate::persist::rewrite::{self, Snapshot};
use crate::shard::Shard;
use crate::store::{EncodingLimits, Entry, Store};

/// Keys serialized per step, as the AOF rewrite.
const STEP_KEYS: usize = 256;

/// Process-wide save state (INFO persistence, LASTSAVE's companion fields).
pub struct SaveState {
    pub in_progress: AtomicBool,
    pub scheduled: AtomicBool,
    pub last_ok: AtomicBool,
    pub saves: AtomicU64,
    pub started_ms: AtomicU64,
    pub last_secs: AtomicI64,
    /// Sum of the shards' dirty counters when the last successful save was cut.
    pub dirty_at_save: AtomicU64,
}

pub static STATE: SaveState = SaveState {
    in_progress: AtomicBool::new(false),
    scheduled: AtomicBool::new(false),
    last_ok: AtomicBool::new(true),
    saves: AtomicU64::new(0),
    started_ms: AtomicU64::new(0),
    last_secs: AtomicI64::new(-1),
    dirty_at_save: AtomicU64::new(0),
};

/// Set by SIGTERM/SIGINT when save points are configured: shard 0's cron saves, then shuts
/// the server down.
pub static SHUTDOWN_AFTER_SAVE: AtomicBool = AtomicBool::new(false);

pub fn in_progress() -> bool {
    STATE.in_progress.load(Ordering::SeqCst)
}

/// What the writer thread needs from the configuration.
struct Target {
    dir: PathBuf,
    name: String,
    header: Vec<u8>,
}

/// The file's start: magic, version, AUX fields, function libraries.
pub fn header(aof_base: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let ctime = (crate::server::unix_ms() / 1000).to_string();
    let mem = "0";
    write::header(
        &mut out,
        &[
            ("redis-ver", crate::server::info::REDIS_VERSION.as_bytes()),
            ("redis-bits", b"64"),
            ("ctime", ctime.as_bytes()),
            ("used-mem", mem.as_bytes()),
            ("aof-base", if aof_base { b"1" } else { b"0" }),
        ],
    );
    for lib in crate::scripting::functions::libraries() {
        write::function(&mut out, &lib.code, false);
    }
    out
}

/// Writes `temp-<pid>.rdb` from the chunks received, then renames it into place:
/// fsync the file, rename, fsync the directory.
fn write_file(t: Target, chunks: std::sync::mpsc::Receiver<Vec<u8>>) -> std::io::Result<u64> {
    let tmp = t.dir.join(format!("temp-{}.rdb", std::process::id()));
    let result = (|| {
        let f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let mut crc = super::crc64::crc64(0, &t.header);
        let mut size = t.header.len() as u64;
        w.write_all(&t.header)?;
        for c in chunks {
            crc = super::crc64::crc64(crc, &c);
            size += c.len() as u64;
            w.write_all(&c)?;
        }
        let mut tail = Vec::new();
        write::eof(&mut tail, crc);
        w.write_all(&tail)?;
        size += tail.len() as u64;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, t.dir.join(&t.name))?;
        std::fs::File::open(&t.dir)?.sync_all()?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Serializes every shard's keyspace into an RDB stream: `header` first, then the parts,
/// handed chunk by chunk to `sink`. Fails (changing nothing) if a snapshot is running.
pub async fn snapshot_rdb(sh: &Rc<Shard>, compress: bool, mut sink: impl FnMut(Vec<u8>)) -> Result<(), String> {
    let n = sh.nshards;
    let all: Vec<usize> = (0..n).collect();
    {
        let mut lent = sh.reserve(&all).await.map_err(|e| e.to_string())?;
        if (0..n).any(|s| lent.store(s).snapshot.is_some()) {
            sh.release(lent).await;
            return Err("ERR Background append only file rewriting already in progress".into());
        }
        let now = crate::server::unix_ms();
        for s in 0..n {
            lent.store(s).snapshot = Some(Box::new(Snapshot::new_rdb(now, compress)));
        }
        sh.release(lent).await;
    }
    let mut done = vec![false; n];
    let mut error = None;
    while done.iter().any(|d| !d) {
        let pending: Vec<usize> = (0..n).filter(|&s| !done[s]).collect();
        let results = sh
            .hop_many(&pending, |sh| {
                sh.with_store(|st| {
                    if rewrite::step(st, STEP_KEYS) {
                        let (bytes, err) = rewrite::take_part(st);
                        (true, bytes, err)
                    } else {
                        (false, rewrite::drain_part(st), None)
                    }
                })
            })
            .await
            .map_err(|e| e.to_string())?;
        for (s, (finished, bytes, err)) in pending.into_iter().zip(results) {
            if !bytes.is_empty() {
                sink(bytes);
            }
            if finished {
                done[s] = true;
                if let Some(e) = err {
                    error.get_or_insert(e);
                }
            }
        }
        glommio::yield_if_needed().await;
    }
    error.map_or(Ok(()), Err)
}

/// One save to `dir/dbfilename` (SAVE, BGSAVE, a save point, SHUTDOWN). The caller has set
/// `STATE.in_progress`; this clears it.
pub async fn save(sh: &Rc<Shard>) -> Result<(), String> {
    let start = Instant::now();
    STATE.started_ms.store(crate::server::unix_ms(), Ordering::SeqCst);
    let result = save_inner(sh).await;
    STATE
        .last_secs
        .store(start.elapsed().as_secs() as i64, Ordering::SeqCst);
    STATE.last_ok.store(result.is_ok(), Ordering::SeqCst);
    match &result {
        Ok(()) => {
            STATE.saves.fetch_add(1, Ordering::SeqCst);
            sh.local
                .shared
                .lastsave
                .store(crate::server::unix_ms() / 1000, Ordering::SeqCst);
            tracing::info!("DB saved on disk");
        }
        Err(e) => tracing::warn!("Background saving error: {e}"),
    }
    STATE.in_progress.store(false, Ordering::SeqCst);
    result
}

async fn save_inner(sh: &Rc<Shard>) -> Result<(), String> {
    let (dir, name, compress) = {
        let c = sh.local.shared.config.read();
        (PathBuf::from(&c.dir), c.dbfilename.clone(), c.rdbcompression)
    };
    let dirty: u64 = sh
        .hop_all(|sh| sh.local.stats.borrow().dirty)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .sum();
    let target = Target {
        dir,
        name,
        header: header(false),
    };
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let (done_tx, done_rx) = futures_channel::oneshot::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(write_file(target, rx));
    });
    let r = snapshot_rdb(sh, compress, |chunk| {
        let _ = tx.send(chunk);
    })
    .await;
    drop(tx);
    let written = done_rx.await.map_err(|_| "the RDB writer thread died".to_string())?;
    r?;
    written.map_err(|e| format!("Failed opening or writing the .rdb file: {e}"))?;
    STATE.dirty_at_save.store(dirty, Ordering::SeqCst);
    Ok(())
}

/// Changes since the last successful save, from the sum of the shards' dirty counters.
pub fn changes_since_save(dirty: u64) -> u64 {
    dirty.saturating_sub(STATE.dirty_at_save.load(Ordering::SeqCst))
}

// ---- loading ---------------------------------------------------------------------------

/// What a load found.
pub struct Loaded {
    pub stores: Vec<Store>,
    pub keys: u64,
    pub expired: u64,
}

/// Reads an RDB image into one store per shard (keys by slot, as the AOF loader splits
/// them). Keys already expired are skipped, as a Redis master does. Function libraries are
/// installed.
pub fn load_bytes(buf: &[u8], nshards: usize, databases: usize, enc: EncodingLimits) -> Result<Loaded, read::Error> {
    let mut stores: Vec<Store> = (0..nshards).map(|_| Store::new(databases)).collect();
    let mut r = read::FileReader::new(buf)?;
    let now = crate::server::unix_ms();
    let (mut keys, mut expired) = (0, 0);
    loop {
        let at = r.inp.pos;
        match r.next(&enc)? {
            read::Item::Eof => break,
            read::Item::Aux(..) | read::Item::Resize(..) => {}
            read::Item::Function(code) => install_library(code, at)?,
            read::Item::Key(k) => {
                if k.db >= databases {
                    return Err(read::Error {
                        offset: at,
                        msg: format!(
                            "the file uses database {} but this server has only {databases} (databases)",
                            k.db
                        ),
                    });
                }
                let Some(value) = k.value else { continue };
                if k.expire_ms.is_some_and(|at| at < now) {
                    expired += 1;
                    continue;
                }
                let shard = crate::shard::shard_of(&k.key, nshards);
                let db = &mut stores[shard].dbs[k.db];
                let lru = db.lru_clock;
                db.insert_entry(&k.key, Entry { value, lru }, k.expire_ms);
                keys += 1;
            }
        }
    }
    Ok(Loaded { stores, keys, expired })
}

/// Start-up with `appendonly no`: `dir/dbfilename` if it exists, else empty stores.
pub fn load_at_startup(
    dir: &Path,
    dbfilename: &str,
    nshards: usize,
    databases: usize,
    enc: EncodingLimits,
) -> Result<Vec<Store>, String> {
    let path = dir.join(dbfilename);
    let buf = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((0..nshards).map(|_| Store::new(databases)).collect())
        }
        Err(e) => {
            return Err(format!(
                "Fatal error loading the DB: can't open {}: {e}",
                path.display()
            ))
        }
    };
    let start = Instant::now();
    let loaded = load_bytes(&buf, nshards, databases, enc)
        .map_err(|e| format!("Fatal error loading the DB {}: {e}. Exiting.", path.display()))?;
    tracing::info!(
        "DB loaded from disk: {:.3} seconds ({} keys loaded, {} expired keys skipped)",
        start.elapsed().as_secs_f64(),
        loaded.keys,
        loaded.expired
    );
    Ok(loaded.stores)
}

// ---- schedules -------------------------------------------------------------------------

/// Starts a background save unless one runs; false if one was already running.
pub fn start_background(sh: &Rc<Shard>) -> bool {
    if STATE.in_progress.swap(true, Ordering::SeqCst) {
        return false;
    }
    let sh = sh.clone();
    glommio::spawn_local(async move {
        tracing::info!(
            "Background saving started (forkless: {} shards serialize in steps)",
            sh.nshards
        );
        let _ = save(&sh).await;
    })
    .detach();
    true
}

/// The save points (`save <seconds> <changes>`) and BGSAVE SCHEDULE, checked once a second
/// on shard 0, as Redis's serverCron: a save point fires when at least `changes` writes
/// happened and `seconds` passed since the last save (after a failed save, not before 5 s).
pub async fn cron(sh: Rc<Shard>) {
    let shared = sh.local.shared.clone();
    let mut last_try_ms = 0u64;
    let mut tick = 0u64;
    while !shared.is_shutting_down() {
        glommio::timer::sleep(std::time::Duration::from_millis(100)).await;
        if SHUTDOWN_AFTER_SAVE.load(Ordering::SeqCst) {
            while STATE.in_progress.swap(true, Ordering::SeqCst) {
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
            tracing::info!("Saving the final RDB snapshot before exiting.");
            if let Err(e) = save(&sh).await {
                tracing::warn!("Error trying to save the DB on shutdown: {e}");
            }
            shared.request_shutdown();
            break;
        }
        tick += 1;
        if tick % 10 != 0 {
            continue;
        }
        let aof_rewriting = shared.persist.rewrite_in_progress.load(Ordering::SeqCst);
        if in_progress() || aof_rewriting {
            continue;
        }
        if STATE.scheduled.swap(false, Ordering::SeqCst) {
            last_try_ms = crate::server::unix_ms();
            start_background(&sh);
            continue;
        }
        let points = shared.config.read().save.clone();
        if points.is_empty() {
            continue;
        }
        let Ok(dirty) = sh.hop_all(|sh| sh.local.stats.borrow().dirty).await else {
            continue;
        };
        let changes = changes_since_save(dirty.into_iter().sum());
        let now_ms = crate::server::unix_ms();
        let since = (now_ms / 1000).saturating_sub(shared.lastsave.load(Ordering::SeqCst));
        let may_retry = STATE.last_ok.load(Ordering::SeqCst) || now_ms.saturating_sub(last_try_ms) > 5000;
        if let Some((secs, ch)) = points.iter().find(|(s, c)| changes >= *c && since > *s) {
            if may_retry {
                tracing::info!("{ch} changes in {secs} seconds. Saving...");
                last_try_ms = now_ms;
                start_background(&sh);
            }
        }
    }
}

// ---- commands --------------------------------------------------------------------------

use crate::command::{acl, flags::*, Args, CommandSpec, LocalFuture, Run};
use crate::error::CmdError;
use crate::families::boxed;
use crate::server::client::Client;

const IN_PROGRESS: CmdError = CmdError::Static("ERR Background save already in progress");

/// `SAVE`: the snapshot as BGSAVE takes it (other clients keep being served), replying once
/// the file is in place.
fn save_cmd(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        if STATE.in_progress.swap(true, Ordering::SeqCst) {
            return Err(IN_PROGRESS);
        }
        match save(&c.shard).await {
            Ok(()) => c.out.ok(),
            Err(e) => {
                tracing::warn!("SAVE failed: {e}");
                return Err(CmdError::Static("ERR"));
            }
        }
        Ok(())
    })
}

/// `BGSAVE [SCHEDULE]`
fn bgsave(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let schedule = match a.len() {
            1 => false,
            2 if a.is(1, "SCHEDULE") => true,
            _ => return Err(CmdError::Syntax),
        };
        if in_progress() {
            return Err(IN_PROGRESS);
        }
        if c.shard.local.shared.persist.rewrite_in_progress.load(Ordering::SeqCst) {
            if schedule {
                STATE.scheduled.store(true, Ordering::SeqCst);
                c.out.simple("Background saving scheduled");
                return Ok(());
            }
            return Err(CmdError::Static("ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."));
        }
        if !start_background(&c.shard) {
            return Err(IN_PROGRESS);
        }
        c.out.simple("Background saving started");
        Ok(())
    })
}

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "save", arity: 1, flags: ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, acl: acl::ADMIN | acl::DANGEROUS, group: "server", since: "1.0.0", summary: "Synchronously saves the database(s) to disk.", complexity: "O(N) where N is the total number of keys in all databases", syntax: "", run: Run::Conn(save_cmd), ..CommandSpec::DEFAULT },
    CommandSpec { name: "bgsave", arity: -1, flags: ADMIN | NOSCRIPT | NO_ASYNC_LOADING, acl: acl::ADMIN | acl::DANGEROUS, group: "server", since: "1.0.0", summary: "Asynchronously saves the database(s) to disk.", complexity: "O(1)", syntax: "[SCHEDULE]", run: Run::Conn(bgsave), ..CommandSpec::DEFAULT },
];

/// Installs a function library read from an RDB record at offset `at` (replacing one of
/// the same name, as loading does in Redis).
fn install_library(code: Vec<u8>, at: usize) -> Result<(), read::Error> {
    let fail = |msg: String| read::Error { offset: at, msg };
    let code = bytes::Bytes::from(code);
    let name = crate::scripting::functions::parse_metadata(&code).map_err(fail)?;
    let funcs = crate::scripting::vm::check_library(&code).map_err(fail)?;
    let lib = crate::scripting::functions::Library {
        name,
        code,
        functions: funcs,
    };
    crate::scripting::functions::install(lib, true).map_err(fail)
}

/// An AOF base that is an RDB file (aof-use-rdb-preamble): loads it into the replayer's
/// store (expired keys too: the AOF that follows may still refer to them, as Redis loads a
/// preamble) and returns where the RDB ends (a RESP tail may follow, as in Redis 6's
/// single-file AOF). With no replayer, only validates.
pub fn load_preamble<S: crate::persist::load::Sink + ?Sized>(
    buf: &[u8],
    rp: Option<&mut S>,
) -> Result<usize, read::Error> {
    let enc = rp.as_ref().map(|r| r.enc()).unwrap_or_default();
    let mut rp = rp;
    let mut r = read::FileReader::new(buf)?;
    loop {
        let at = r.inp.pos;
        match r.next(&enc)? {
            read::Item::Eof => return Ok(r.inp.pos),
            read::Item::Aux(..) | read::Item::Resize(..) => {}
            read::Item::Function(code) => {
                if rp.is_some() {
                    install_library(code, at)?;
                }
            }
            read::Item::Key(k) => {
                let Some(rp) = rp.as_deref_mut() else { continue };
                let Some(value) = k.value else { continue };
                rp.put(k.db, &k.key, Entry { value, lru: 0 }, k.expire_ms)
                    .map_err(|msg| read::Error { offset: at, msg })?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::value::{Str, Value};

    fn set(store: &mut Store, db: usize, k: &[u8], v: &[u8]) {
        store.dbs[db].set(k, Value::Str(Str::Raw(v.to_vec())), false);
    }

    /// The RDB part of a shard is its keyspace at the cut, whatever is written meanwhile.
    #[test]
    fn rdb_snapshot_is_point_in_time() {
        let mut st = Store::new(16);
        for i in 0..1000 {
            set(&mut st, 0, format!("k{i}").as_bytes(), b"old");
        }
        set(&mut st, 4, b"k1", b"db4");
        st.dbs[0].set_expire(b"k9", 99_999_999_999_999);
        st.snapshot = Some(Box::new(Snapshot::new_rdb(1, true)));
        assert!(!rewrite::step(&mut st, 10));
        let mut chunks = rewrite::drain_part(&mut st);
        for i in 0..1000 {
            let k = format!("k{i}");
            rewrite::before_write(&mut st, k.as_bytes());
            set(&mut st, 0, k.as_bytes(), b"new");
        }
        rewrite::before_write(&mut st, b"fresh");
        set(&mut st, 0, b"fresh", b"x");
        rewrite::complete_now(&mut st);
        let (rest, err) = rewrite::take_part(&mut st);
        assert_eq!(err, None);
        chunks.extend_from_slice(&rest);
        let mut img = header(false);
        img.extend_from_slice(&chunks);
        let crc = super::super::crc64::crc64(0, &img);
        write::eof(&mut img, crc);
        let loaded = load_bytes(&img, 3, 16, EncodingLimits::default()).unwrap();
        assert_eq!(loaded.keys, 1001);
        let mut total = 0;
        for s in &loaded.stores {
            total += s.dbs[0].len();
            assert!(s.dbs[0].peek(b"fresh").is_none());
            if let Some(e) = s.dbs[0].peek(b"k3") {
                assert_eq!(e.value, Value::Str(Str::from_set(b"old")));
            }
            if s.dbs[0].peek(b"k9").is_some() {
                assert_eq!(s.dbs[0].expire_at(b"k9"), Some(99_999_999_999_999));
            }
        }
        assert_eq!(total, 1000);
        let s = crate::shard::shard_of(b"k1", 3);
        assert!(loaded.stores[s].dbs[4].peek(b"k1").is_some());
    }
}
