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
//!    an `Install` control record makes the persistence executor rename it to the new base and
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

use super::{Control, Record, TICKETS};
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
    fn new(now: u64) -> Snapshot {
        Snapshot {
            now,
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
            cursor = db.scan(cursor, 0, |k, _| batch.push(k.to_vec()));
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
        let shared = c.shard.local.shared.clone();
        if !shared.config.read().appendonly || !shared.persist.aof_open.load(Ordering::SeqCst) {
            return Err(CmdError::Static(
                "ERR BGREWRITEAOF needs the append-only file on (this build starts it only with appendonly yes at start-up)",
            ));
        }
        if shared.persist.rewrite_in_progress.swap(true, Ordering::SeqCst) {
            return Err(CmdError::Static(
                "ERR Background append only file rewriting already in progress",
            ));
        }
        let sh = c.shard.clone();
        glommio::spawn_local(async move {
            let start = Instant::now();
            shared
                .persist
                .rewrite_started_ms
                .store(crate::server::unix_ms(), Ordering::SeqCst);
            let result = run_rewrite(&sh).await;
            let p = &shared.persist;
            p.last_rewrite_secs
                .store(start.elapsed().as_secs() as i64, Ordering::SeqCst);
            match result {
                Ok(()) => {
                    p.rewrites.fetch_add(1, Ordering::SeqCst);
                    p.rewrite_failures.store(0, Ordering::SeqCst);
                    p.last_rewrite_ok.store(true, Ordering::SeqCst);
                    tracing::info!("Background AOF rewrite finished successfully");
                }
                Err(e) => {
                    p.rewrite_failures.fetch_add(1, Ordering::SeqCst);
                    p.last_rewrite_ok.store(false, Ordering::SeqCst);
                    tracing::error!("Background AOF rewrite failed: {e}");
                }
            }
            p.rewrite_in_progress.store(false, Ordering::SeqCst);
        })
        .detach();
        c.out.simple("Background append only file rewriting started");
        Ok(())
    })
}

/// Sends a control record in ticket order.
async fn control(sh: &Rc<Shard>, c: Control) -> Result<(), String> {
    let tx = sh.local.persist.as_ref().ok_or("no persistence channel")?;
    let rec = Record {
        shard: sh.id,
        ticket: TICKETS.fetch_add(1, Ordering::SeqCst),
        bytes: bytes::Bytes::new(),
        commands: 0,
        control: Some(c),
    };
    tx.send(rec)
        .await
        .map_err(|_| "the persistence executor is gone".to_string())
}

async fn run_rewrite(sh: &Rc<Shard>) -> Result<(), String> {
    let n = sh.nshards;
    let all: Vec<usize> = (0..n).collect();
    // aof-use-rdb-preamble: the base is an RDB file (`.base.rdb`), its parts RDB records.
    let (preamble, compress) = {
        let c = sh.local.shared.config.read();
        (c.aof_use_rdb_preamble, c.rdbcompression)
    };
    // The cut.
    {
        let mut lent = sh.reserve(&all).await.map_err(|e| e.to_string())?;
        let now = crate::server::unix_ms();
        if (0..n).any(|s| lent.store(s).snapshot.is_some()) {
            sh.release(lent).await;
            return Err("a background save (BGSAVE) is in progress".into());
        }
        // Effects still pending on the reserved shards were cut before they were lent.
        for s in 0..n {
            let snap = if preamble {
                Snapshot::new_rdb(now, compress)
            } else {
                Snapshot::new(now)
            };
            lent.store(s).snapshot = Some(Box::new(snap));
        }
        let r = control(sh, Control::Rotate).await;
        sh.release(lent).await;
        r?;
    }
    tracing::info!("Background append only file rewriting started (forkless: {n} shards serialize in steps)");
    // The steps, shard by shard in parallel, yielding between steps.
    let mut parts: Vec<Vec<u8>> = vec![Vec::new(); n];
    let mut done = vec![false; n];
    let mut error = None;
    while done.iter().any(|d| !d) {
        let pending: Vec<usize> = (0..n).filter(|&s| !done[s]).collect();
        let results = sh
            .hop_many(&pending, |sh| {
                sh.with_store(|st| {
                    let finished = step(st, STEP_KEYS);
                    if finished {
                        let (bytes, err) = take_part(st);
                        (true, bytes, err)
                    } else {
                        (false, drain_part(st), None)
                    }
                })
            })
            .await
            .map_err(|e| e.to_string())?;
        for (s, (finished, bytes, err)) in pending.into_iter().zip(results) {
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
        return Err(e);
    }
    // The base goes to disk on a helper thread: shards never wait for it.
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
    let tmp2 = tmp.clone();
    let (tx, rx) = futures_channel::oneshot::channel();
    std::thread::spawn(move || {
        let r = (|| -> std::io::Result<u64> {
            let path = dir.join(&tmp2);
            let mut f = std::fs::File::create(&path)?;
            let mut size = 0;
            for p in &parts {
                std::io::Write::write_all(&mut f, p)?;
                size += p.len() as u64;
            }
            f.sync_all()?;
            Ok(size)
        })();
        let _ = tx.send(r);
    });
    let size = rx
        .await
        .map_err(|_| "the base writer thread died".to_string())?
        .map_err(|e| format!("cannot write the new base file: {e}"))?;
    let (done_tx, done_rx) = futures_channel::oneshot::channel();
    control(
        sh,
        Control::Install {
            temp: tmp,
            size,
            done: done_tx,
        },
    )
    .await?;
    done_rx
        .await
        .map_err(|_| "the persistence executor is gone".to_string())?
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
        st.snapshot = Some(Box::new(Snapshot::new(1)));
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
