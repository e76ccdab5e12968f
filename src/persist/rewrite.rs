//! BGREWRITEAOF without fork and without stopping the world.
//!
//! 1. The cut: the coordinator reserves every shard (a few microseconds: no data is copied),
//!    installs a [`Snapshot`] in each store, and enqueues a `Rotate` control record. Records
//!    are written in ticket order, so every effect before the cut lands in the old incremental
//!    file and every effect after it in a new one, which the manifest lists at once (a crash
//!    during the rewrite loads old base + old incr + new incr).
//! 2. Each shard serializes its keyspace in small steps between commands ([`step`]). A write
//!    command first serializes the keys it names that the snapshot has not reached yet
//!    ([`before_write`], called by dispatch), so each shard's part is its keyspace *at the
//!    cut*: point-in-time per shard.
//! 3. The parts are written to a temporary base file (on a helper thread, not a shard), then
//!    an `Install` control record makes the persistence core rename it to the new base and
//!    replace the manifest atomically (new base + new incr; the old files become history and
//!    are deleted).
//!
//! The base is RESP (`.base.aof`): strings are `SET` + `PEXPIREAT`. Other types go through
//! [`rewrite_value`]; while their iteration APIs are missing the rewrite fails loudly.

use std::collections::HashSet;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::BytesMut;

use super::{Control, Record, AOF_OFF, AOF_ON, AOF_WAIT_REWRITE, TICKETS};
use crate::command::{acl, flags::*, Args, CommandSpec, LocalFuture, Run};
use crate::error::CmdError;
use crate::families::boxed;
use crate::server::client::Client;
use crate::shard::Shard;
use crate::store::value::{itoa_buf, Value};
use crate::store::Store;

/// Keys serialized per step: a step stays well under a millisecond.
const STEP_KEYS: usize = 256;

/// One shard's part of a rewrite in progress. Lives in the shard's [`Store`], so a
/// coordinator holding the store (a multi-shard command) reaches it too.
#[derive(Default)]
pub struct Snapshot {
    /// Key names already serialized (in every database) or created after the cut.
    done: HashSet<Box<[u8]>>,
    /// The database the scan is in, and its cursor.
    db: usize,
    cursor: u64,
    finished: bool,
    /// The part so far (RESP commands).
    out: BytesMut,
    /// The database the last command in `out` selected.
    selected: Option<usize>,
    /// Why the rewrite cannot complete (a type it cannot serialize yet).
    pub error: Option<String>,
    /// Milliseconds since the epoch at the cut: keys already expired then are skipped.
    now: u64,
    /// The rewrite this part belongs to (see `PersistStats::rewrite_gen`).
    gen: u64,
    /// Some(rdbcompression): the part is RDB (BGSAVE, the AOF base's RDB preamble), not RESP.
    rdb: Option<bool>,
}

fn put_cmd(out: &mut BytesMut, args: &[&[u8]]) {
    let mut n = itoa_buf::Buf::new();
    out.extend_from_slice(b"*");
    out.extend_from_slice(n.format(args.len() as i64));
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.extend_from_slice(b"$");
        out.extend_from_slice(n.format(a.len() as i64));
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends the commands that rebuild `key` holding `v`. Collections answer an error until
/// their iteration APIs land (the rewrite then fails instead of writing a partial base).
pub fn rewrite_value(key: &[u8], v: &Value, out: &mut BytesMut) -> Result<(), String> {
    match v {
        Value::Str(s) => {
            let mut scratch = itoa_buf::Buf::new();
            put_cmd(out, &[b"SET", key, s.as_bytes(&mut scratch)]);
            Ok(())
        }
        Value::List(l) => {
            put_batched(out, b"RPUSH", key, l.iter().map(|e| vec![e.to_vec()]));
            Ok(())
        }
        Value::Hash(h) => {
            put_batched(out, b"HSET", key, h.iter().map(|(f, v)| vec![f.to_vec(), v.to_vec()]));
            Ok(())
        }
        Value::Set(st) => {
            put_batched(out, b"SADD", key, st.iter().map(|m| vec![m.to_vec()]));
            Ok(())
        }
        Value::ZSet(z) => {
            put_batched(
                out,
                b"ZADD",
                key,
                z.iter().map(|(m, score)| {
                    let mut b = Vec::new();
                    crate::resp::reply::format_double(score, &mut b);
                    vec![b, m.to_vec()]
                }),
            );
            Ok(())
        }
    }
}

/// Writes a collection as commands of at most 64 items each (Redis's
/// AOF_REWRITE_ITEMS_PER_CMD), so a huge collection never becomes one huge command.
fn put_batched(out: &mut BytesMut, cmd: &[u8], key: &[u8], items: impl Iterator<Item = Vec<Vec<u8>>>) {
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut n = 0;
    let flush = |out: &mut BytesMut, batch: &mut Vec<Vec<u8>>| {
        let mut args: Vec<&[u8]> = vec![cmd, key];
        args.extend(batch.iter().map(Vec::as_slice));
        put_cmd(out, &args);
        batch.clear();
    };
    for item in items {
        batch.extend(item);
        n += 1;
        if n == 64 {
            flush(out, &mut batch);
            n = 0;
        }
    }
    if n > 0 {
        flush(out, &mut batch);
    }
}

impl Snapshot {
    fn new(now: u64, gen: u64) -> Snapshot {
        Snapshot {
            now,
            gen,
            ..Snapshot::default()
        }
    }

    /// A snapshot whose part is RDB key records (see persist::rdb::save).
    pub fn new_rdb(now: u64, compress: bool) -> Snapshot {
        Snapshot {
            now,
            rdb: Some(compress),
            ..Snapshot::default()
        }
    }

    /// Serializes `key` from every database of `store` (as it is now) and marks it done.
    fn take_key(&mut self, store: &Store, key: &[u8]) {
        if !self.done.insert(key.into()) {
            return;
        }
        for (i, db) in store.dbs.iter().enumerate() {
            let Some(e) = db.peek(key) else { continue };
            let at = db.expire_at(key);
            if at.is_some_and(|at| at <= self.now) {
                continue;
            }
            if let Some(compress) = self.rdb {
                let mut rec = Vec::new();
                if self.selected != Some(i) {
                    rec.extend_from_slice(&[super::rdb::OP_SELECTDB]);
                    super::rdb::write::len(&mut rec, i as u64);
                    self.selected = Some(i);
                }
                super::rdb::write::key(&mut rec, key, &e.value, at, compress);
                self.out.extend_from_slice(&rec);
                continue;
            }
            if self.selected != Some(i) {
                let mut n = itoa_buf::Buf::new();
                put_cmd(&mut self.out, &[b"SELECT", n.format(i as i64)]);
                self.selected = Some(i);
            }
            if let Err(e) = rewrite_value(key, &e.value, &mut self.out) {
                self.error.get_or_insert(e);
                continue;
            }
            if let Some(at) = at {
                let mut n = itoa_buf::Buf::new();
                put_cmd(&mut self.out, &[b"PEXPIREAT", key, n.format(at as i64)]);
            }
        }
    }
}

/// Called before a write command touches `key` in `store`: if a rewrite is running and has
/// not reached the key, it is serialized first, so the base shows it as it was at the cut.
pub fn before_write(store: &mut Store, key: &[u8]) {
    if let Some(mut snap) = store.snapshot.take() {
        snap.take_key(store, key);
        store.snapshot = Some(snap);
    }
}

/// [`before_write`] for every key a write command names, on a shard running it locally.
pub fn before_command(store: &mut Store, cmd: &crate::command::table::Cmd, args: &Args) {
    if store.snapshot.is_none() || !cmd.spec.has(WRITE) {
        return;
    }
    let _ = crate::command::keys::for_each_key(cmd.spec.key_specs, args, |p| before_write(store, &args[p]));
}

/// [`before_write`] for every key a write command names, on a coordinator holding shards.
pub fn before_command_lent(lent: &mut crate::shard::Lent, cmd: &crate::command::table::Cmd, args: &Args) {
    if !cmd.spec.has(WRITE) {
        return;
    }
    let n = lent.nshards();
    let _ = crate::command::keys::for_each_key(cmd.spec.key_specs, args, |p| {
        before_write(lent.store(crate::shard::shard_of(&args[p], n)), &args[p])
    });
}

/// Serializes up to `keys` more keys. Returns true when the whole keyspace is done.
pub fn step(store: &mut Store, keys: usize) -> bool {
    let Some(mut snap) = store.snapshot.take() else {
        return true;
    };
    let mut left = keys;
    while !snap.finished && left > 0 {
        if snap.db >= store.dbs.len() {
            snap.finished = true;
            break;
        }
        let mut batch = Vec::new();
        let db = &store.dbs[snap.db];
        let mut cursor = snap.cursor;
        // A dict scan step visits whole buckets: continue until enough keys were seen.
        loop {
            cursor = db.scan(cursor, |k, _| batch.push(k.to_vec()));
            if cursor == 0 || batch.len() >= left {
                break;
            }
        }
        for k in &batch {
            snap.take_key(store, k);
        }
        left = left.saturating_sub(batch.len().max(1));
        snap.cursor = cursor;
        if cursor == 0 {
            snap.db += 1;
        }
    }
    let finished = snap.finished;
    store.snapshot = Some(snap);
    finished
}

/// Serializes everything left at once (before FLUSHALL, FLUSHDB or SWAPDB, which change
/// keys no command names).
pub fn complete_now(store: &mut Store) {
    while store.snapshot.is_some() && !step(store, usize::MAX) {}
}

/// Takes a finished part out of the store: (bytes, error).
pub(crate) fn take_part(store: &mut Store) -> (Vec<u8>, Option<String>) {
    match store.snapshot.take() {
        Some(s) => (s.out.to_vec(), s.error),
        None => (Vec::new(), Some("the rewrite snapshot vanished".into())),
    }
}

/// Drains what a shard has serialized so far, keeping memory bounded.
pub(crate) fn drain_part(store: &mut Store) -> Vec<u8> {
    match store.snapshot.as_mut() {
        Some(s) => {
            s.selected = None;
            s.out.split().to_vec()
        }
        None => Vec::new(),
    }
}

/// `BGREWRITEAOF`
fn bgrewriteaof(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let sh = c.shard.clone();
        match start_rewrite(&sh).await {
            Ok(()) => {
                c.out.simple("Background append only file rewriting started");
                Ok(())
            }
            Err(e) => Err(e),
        }
    })
}

/// Starts a rewrite now (BGREWRITEAOF, the cron's automatic and scheduled rewrites): the cut
/// happens before this returns, the rest runs in a task on this shard.
pub async fn start_rewrite(sh: &Rc<Shard>) -> Result<(), CmdError> {
    let p = &sh.local.shared.persist;
    if p.aof_state.load(Ordering::SeqCst) == AOF_OFF || !sh.local.shared.config.read().appendonly {
        return Err(CmdError::Static(
            "ERR BGREWRITEAOF needs the append-only file on (CONFIG SET appendonly yes starts one)",
        ));
    }
    if p.rewrite_in_progress.swap(true, Ordering::SeqCst) {
        return Err(CmdError::Static(
            "ERR Background append only file rewriting already in progress",
        ));
    }
    match cut(sh, Want::Rewrite).await {
        Ok(Cut::Started(gen)) => {
            spawn_finish(sh, gen);
            Ok(())
        }
        Ok(_) => {
            p.rewrite_in_progress.store(false, Ordering::SeqCst);
            Err(CmdError::Static(
                "ERR BGREWRITEAOF needs the append-only file on (CONFIG SET appendonly yes starts one)",
            ))
        }
        Err(e) => {
            p.rewrite_in_progress.store(false, Ordering::SeqCst);
            tracing::warn!("Can't start the AOF rewrite: {e}");
            Err(CmdError::Static(
                "ERR Can't execute an AOF background rewriting. Please check the server logs for more information.",
            ))
        }
    }
}

/// Makes the AOF follow `appendonly` after CONFIG SET (Redis's startAppendOnly and
/// stopAppendOnly): `yes` cuts (every shard starts recording its effects at the same
/// instant, the snapshot of the data set is taken there) and starts the rewrite that
/// writes the first base; `no` flushes, fsyncs and closes the files before returning.
pub async fn follow_appendonly(sh: &Rc<Shard>) -> Result<(), String> {
    match cut(sh, Want::Follow).await? {
        Cut::Started(gen) => {
            tracing::info!("AOF turned on at run time: writing the data set as the new base");
            spawn_finish(sh, gen);
        }
        Cut::Stopped(done) => {
            let _ = done.await;
        }
        Cut::Nothing => {}
    }
    Ok(())
}

/// The server cron's part (shard 0, at `hz`): starts a scheduled rewrite, or an automatic
/// one when the AOF grew by `auto-aof-rewrite-percentage` over the last base and is past
/// `auto-aof-rewrite-min-size` (Redis's serverCron rules).
pub fn cron(sh: &Rc<Shard>) {
    let shared = &sh.local.shared;
    let p = &shared.persist;
    if p.rewrite_in_progress.load(Ordering::Relaxed) || p.loading.load(Ordering::Relaxed) || shared.is_shutting_down() {
        return;
    }
    let state = p.aof_state.load(Ordering::Relaxed);
    if state == AOF_OFF {
        return;
    }
    let now = crate::server::unix_ms();
    let failures = p.rewrite_failures.load(Ordering::Relaxed);
    if failures > 0 && now < p.last_rewrite_failure_ms.load(Ordering::Relaxed) + retry_delay_ms(failures) {
        // Redis's aofRewriteLimited in spirit: a failing rewrite is not retried in a loop.
        return;
    }
    let due = if p.rewrite_scheduled.load(Ordering::Relaxed) || state == AOF_WAIT_REWRITE {
        true
    } else {
        let (perc, min) = {
            let c = shared.config.read();
            (c.auto_aof_rewrite_percentage, c.auto_aof_rewrite_min_size)
        };
        let current = p.current_size.load(Ordering::Relaxed);
        let base = p.base_size.load(Ordering::Relaxed).max(1);
        let due = perc > 0 && current > min && (current * 100 / base).saturating_sub(100) >= perc as u64;
        if due {
            tracing::info!(
                "Starting automatic rewriting of AOF on {}% growth",
                (current * 100 / base).saturating_sub(100)
            );
        }
        due
    };
    if due {
        p.rewrite_scheduled.store(false, Ordering::Relaxed);
        let sh2 = sh.clone();
        glommio::spawn_local(async move {
            if let Err(e) = start_rewrite(&sh2).await {
                tracing::debug!("scheduled AOF rewrite not started: {e:?}");
            }
        })
        .detach();
    }
}

/// Delay before retrying after `failures` consecutive failed rewrites: 1 s doubling to
/// 1 minute for the first three, then Redis's limit (1 minute doubling up to an hour).
fn retry_delay_ms(failures: u64) -> u64 {
    if failures < 3 {
        1000 << (failures - 1).min(6)
    } else {
        (60_000u64 << (failures - 3).min(6)).min(3_600_000)
    }
}

/// What a cut is asked for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A rewrite of the open AOF.
    Rewrite,
    /// Make the AOF follow the `appendonly` setting.
    Follow,
}

enum Cut {
    /// A rewrite started (its gen).
    Started(u64),
    /// The AOF was turned off; resolves when the core has closed the files.
    Stopped(futures_channel::oneshot::Receiver<()>),
    Nothing,
}

/// The cut: every shard reserved at once, so no command runs anywhere while the AOF's
/// state changes; what it changes is at one point of every shard's history and of the
/// file order.
async fn cut(sh: &Rc<Shard>, want: Want) -> Result<Cut, String> {
    let all: Vec<usize> = (0..sh.nshards).collect();
    let mut lent = sh.reserve(&all).await.map_err(|e| e.to_string())?;
    let r = cut_locked(sh, &mut lent, want).await;
    sh.release(lent).await;
    r
}

async fn cut_locked(sh: &Rc<Shard>, lent: &mut crate::shard::Lent, want: Want) -> Result<Cut, String> {
    let shared = sh.local.shared.clone();
    let p = &shared.persist;
    let state = p.aof_state.load(Ordering::SeqCst);
    let (desired, paths) = {
        let c = shared.config.read();
        (
            c.appendonly,
            super::aof::Paths::new(&c.dir, &c.appenddirname, &c.appendfilename),
        )
    };
    // Effects a reserved shard has not sent yet belong before the cut.
    sh.hop_lent(lent, |sh| {
        sh.flush_effects();
    })
    .await
    .map_err(|e| e.to_string())?;
    let start = match want {
        Want::Rewrite if state == AOF_OFF => return Ok(Cut::Nothing),
        Want::Rewrite => state == AOF_WAIT_REWRITE,
        Want::Follow if desired && state == AOF_OFF => true,
        Want::Follow if !desired && state != AOF_OFF => {
            // Cancels any rewrite: its steps find no snapshot, its install is refused.
            p.rewrite_gen.fetch_add(1, Ordering::SeqCst);
            for s in 0..sh.nshards {
                lent.store(s).snapshot = None;
            }
            sh.hop_lent(lent, |sh| sh.local.effects.borrow_mut().set_enabled(false))
                .await
                .map_err(|e| e.to_string())?;
            let (tx, rx) = futures_channel::oneshot::channel();
            control(sh, Control::Stop { done: tx })?;
            p.aof_state.store(AOF_OFF, Ordering::SeqCst);
            p.rewrite_in_progress.store(false, Ordering::SeqCst);
            p.rewrite_scheduled.store(false, Ordering::SeqCst);
            return Ok(Cut::Stopped(rx));
        }
        Want::Follow => return Ok(Cut::Nothing),
    };
    // A BGSAVE's snapshot (RDB, generation 0) is still being taken: one snapshot at a time.
    if (0..sh.nshards).any(|s| {
        lent.store(s)
            .snapshot
            .as_ref()
            .is_some_and(|snap| snap.rdb.is_some() && snap.gen == 0)
    }) {
        return Err("a background save (BGSAVE) is in progress".into());
    }
    // aof-use-rdb-preamble: the base is an RDB file (`.base.rdb`), its parts RDB records.
    let (preamble, compress) = {
        let c = shared.config.read();
        (c.aof_use_rdb_preamble, c.rdbcompression)
    };
    let gen = p.rewrite_gen.fetch_add(1, Ordering::SeqCst) + 1;
    let now = crate::server::unix_ms();
    for s in 0..sh.nshards {
        let mut snap = Snapshot::new(now, gen);
        if preamble {
            snap.rdb = Some(compress);
        }
        lent.store(s).snapshot = Some(Box::new(snap));
    }
    let c = if start {
        sh.hop_lent(lent, |sh| sh.local.effects.borrow_mut().set_enabled(true))
            .await
            .map_err(|e| e.to_string())?;
        Control::Start { paths, gen }
    } else {
        Control::Rotate { gen }
    };
    control(sh, c)?;
    if start {
        p.aof_state.store(AOF_WAIT_REWRITE, Ordering::SeqCst);
    }
    p.rewrite_in_progress.store(true, Ordering::SeqCst);
    p.rewrite_scheduled.store(false, Ordering::SeqCst);
    p.rewrite_started_ms.store(now, Ordering::SeqCst);
    Ok(Cut::Started(gen))
}

/// The rest of rewrite `gen`, in a task: steps, base, install, bookkeeping. A rewrite that
/// a later cut superseded or `appendonly no` cancelled leaves the books alone.
fn spawn_finish(sh: &Rc<Shard>, gen: u64) {
    let sh = sh.clone();
    glommio::spawn_local(async move {
        let start = Instant::now();
        tracing::info!(
            "Background append only file rewriting started (forkless: {} shards serialize in steps)",
            sh.nshards
        );
        let result = finish_rewrite(&sh, gen).await;
        let p = &sh.local.shared.persist;
        if p.rewrite_gen.load(Ordering::SeqCst) != gen {
            tracing::warn!("Background AOF rewrite cancelled: {}", result.err().unwrap_or_default());
            return;
        }
        p.last_rewrite_secs
            .store(start.elapsed().as_secs() as i64, Ordering::SeqCst);
        match result {
            Ok(()) => {
                p.rewrites.fetch_add(1, Ordering::SeqCst);
                p.rewrite_failures.store(0, Ordering::SeqCst);
                p.last_rewrite_ok.store(true, Ordering::SeqCst);
                let _ = p
                    .aof_state
                    .compare_exchange(AOF_WAIT_REWRITE, AOF_ON, Ordering::SeqCst, Ordering::SeqCst);
                tracing::info!("Background AOF rewrite finished successfully");
            }
            Err(e) => {
                p.rewrite_failures.fetch_add(1, Ordering::SeqCst);
                p.last_rewrite_ok.store(false, Ordering::SeqCst);
                p.last_rewrite_failure_ms
                    .store(crate::server::unix_ms(), Ordering::SeqCst);
                tracing::error!("Background AOF rewrite failed: {e}");
            }
        }
        p.rewrite_in_progress.store(false, Ordering::SeqCst);
    })
    .detach();
}

/// Sends a control record in ticket order.
fn control(sh: &Rc<Shard>, c: Control) -> Result<(), String> {
    let core = sh.local.persist.as_ref().ok_or("no persistence core")?;
    let rec = Record {
        shard: sh.id,
        ticket: TICKETS.fetch_add(1, Ordering::SeqCst),
        bytes: bytes::Bytes::new(),
        commands: 0,
        control: Some(c),
    };
    core.send(rec);
    Ok(())
}

/// Writes the base file `dir/temp` from the shards' parts and fsyncs it; its size. Runs
/// on a helper thread: shards never wait for the disk.
pub fn write_base(path: &std::path::Path, parts: &[Vec<u8>]) -> std::io::Result<u64> {
    let mut f = std::fs::File::create(path)?;
    let mut size = 0;
    for p in parts {
        std::io::Write::write_all(&mut f, p)?;
        size += p.len() as u64;
    }
    f.sync_all()?;
    Ok(size)
}

async fn finish_rewrite(sh: &Rc<Shard>, gen: u64) -> Result<(), String> {
    let n = sh.nshards;
    // The steps, shard by shard in parallel, yielding between steps.
    let mut parts: Vec<Vec<u8>> = vec![Vec::new(); n];
    let mut done = vec![false; n];
    let mut error = None;
    let mut preamble = false;
    while done.iter().any(|d| !d) {
        let pending: Vec<usize> = (0..n).filter(|&s| !done[s]).collect();
        let results = sh
            .hop_many(&pending, move |sh| {
                sh.with_store(|st| {
                    if st.snapshot.as_ref().map(|s| s.gen) != Some(gen) {
                        return (true, Vec::new(), Some("the rewrite was cancelled".to_string()), false);
                    }
                    // The cut chose the parts' format (aof-use-rdb-preamble at that moment).
                    let rdb = st.snapshot.as_ref().is_some_and(|s| s.rdb.is_some());
                    let finished = step(st, STEP_KEYS);
                    if finished {
                        let (bytes, err) = take_part(st);
                        (true, bytes, err, rdb)
                    } else {
                        (false, drain_part(st), None, rdb)
                    }
                })
            })
            .await
            .map_err(|e| e.to_string())?;
        for (s, (finished, bytes, err, rdb)) in pending.into_iter().zip(results) {
            preamble |= rdb;
            parts[s].extend_from_slice(&bytes);
            if finished {
                done[s] = true;
                if let Some(e) = err {
                    error.get_or_insert(e);
                }
            }
        }
        glommio::yield_if_needed().await;
    }
    if let Some(e) = error {
        // Parts of other shards may still hold a snapshot of this rewrite: drop them.
        let _ = sh
            .hop_all(move |sh| {
                sh.with_store(|st| {
                    if st.snapshot.as_ref().map(|s| s.gen) == Some(gen) {
                        st.snapshot = None;
                    }
                })
            })
            .await;
        return Err(e);
    }
    let (dir, tmp) = {
        let c = sh.local.shared.config.read();
        let paths = super::aof::Paths::new(&c.dir, &c.appenddirname, &c.appendfilename);
        (
            paths.dir.clone(),
            format!(
                "temp-rewriteaof-bg-{}.{}",
                std::process::id(),
                if preamble { "rdb" } else { "aof" }
            ),
        )
    };
    if preamble {
        let mut head = super::rdb::save::header(true);
        let mut crc = super::rdb::crc64::crc64(0, &head);
        for p in &parts {
            crc = super::rdb::crc64::crc64(crc, p);
        }
        let mut tail = Vec::new();
        super::rdb::write::eof(&mut tail, crc);
        parts.insert(0, std::mem::take(&mut head));
        parts.push(tail);
    }
    let path = dir.join(&tmp);
    let (tx, rx) = futures_channel::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(write_base(&path, &parts));
    });
    let size = rx
        .await
        .map_err(|_| "the base writer thread died".to_string())?
        .map_err(|e| format!("cannot write the new base file: {e}"))?;
    let (done_tx, done_rx) = futures_channel::oneshot::channel();
    control(
        sh,
        Control::Install {
            gen,
            temp: tmp,
            size,
            done: done_tx,
        },
    )?;
    done_rx.await.map_err(|_| "the persistence core is gone".to_string())?
}

/// Completes any rewrite in progress on this shard before a command that changes keys it
/// does not name (FLUSHALL, FLUSHDB, SWAPDB).
pub async fn settle_before_bulk_change(sh: &Rc<Shard>) {
    if sh.local.shared.persist.rewrite_in_progress.load(Ordering::SeqCst) || super::rdb::save::in_progress() {
        let _ = sh.hop_all(|sh| sh.with_store(complete_now)).await;
    }
}

pub static COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "bgrewriteaof",
    arity: 1,
    flags: ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
    acl: acl::ADMIN | acl::DANGEROUS,
    group: "server",
    since: "1.0.0",
    summary: "Asynchronously rewrites the append-only file to disk.",
    complexity: "O(1)",
    syntax: "",
    run: Run::Conn(bgrewriteaof),
    ..CommandSpec::DEFAULT
}];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::value::Str;

    fn set(store: &mut Store, db: usize, k: &[u8], v: &[u8]) {
        store.dbs[db].set(k, Value::Str(Str::Raw(v.to_vec())), false);
    }

    #[test]
    fn snapshot_is_point_in_time_per_shard() {
        let mut st = Store::new(16);
        for i in 0..1000 {
            set(&mut st, 0, format!("k{i}").as_bytes(), b"old");
        }
        set(&mut st, 2, b"k5", b"db2");
        st.dbs[0].set_expire(b"k7", 99_999_999_999_999);
        st.snapshot = Some(Box::new(Snapshot::new(1, 0)));
        assert!(!step(&mut st, 10));
        // Writes after the cut: modify, delete, create.
        for i in 0..1000 {
            let k = format!("k{i}");
            before_write(&mut st, k.as_bytes());
            set(&mut st, 0, k.as_bytes(), b"new");
        }
        before_write(&mut st, b"fresh");
        set(&mut st, 0, b"fresh", b"x");
        complete_now(&mut st);
        let (bytes, err) = take_part(&mut st);
        assert_eq!(err, None);
        // Replaying the part gives the keyspace at the cut.
        let mut rp = super::super::load::Replayer::new(16, Default::default());
        let mut r = super::super::load::Reader::new(&bytes[..]);
        while let super::super::load::Item::Command(argv, _) = r.next_item().unwrap() {
            rp.apply(argv).unwrap();
        }
        assert_eq!(rp.store.dbs[0].len(), 1000);
        assert!(rp.store.dbs[0].peek(b"fresh").is_none());
        let mut s = itoa_buf::Buf::new();
        let Value::Str(v) = &rp.store.dbs[0].peek(b"k3").unwrap().value else {
            panic!()
        };
        assert_eq!(v.as_bytes(&mut s), b"old");
        assert_eq!(rp.store.dbs[0].expire_at(b"k7"), Some(99_999_999_999_999));
        assert_eq!(rp.store.dbs[2].len(), 1);
    }

    #[test]
    fn collections_are_written_in_batches_of_64() {
        let items: Vec<Vec<u8>> = (0..130).map(|i| i.to_string().into_bytes()).collect();
        let l = crate::store::list::List::from_items(items.iter().map(Vec::as_slice), -2);
        let mut out = BytesMut::new();
        rewrite_value(b"l", &Value::List(l), &mut out).unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        assert_eq!(text.matches("RPUSH").count(), 3);
        assert!(text.starts_with("*66\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n$1\r\n0\r\n"));
        assert!(text.contains("*4\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n$3\r\n128\r\n$3\r\n129\r\n"));
    }
}
