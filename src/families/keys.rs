//! Keys: the generic keyspace commands. DEL UNLINK EXISTS TOUCH TYPE, the EXPIRE family,
//! TTL and friends, PERSIST, KEYS SCAN RANDOMKEY, RENAME RENAMENX COPY MOVE and OBJECT.
//!
//! Commands naming keys are keyed handlers: they run where their keys live, and under a
//! reservation when RENAME or COPY names keys on two shards. KEYS, SCAN and RANDOMKEY visit
//! every shard; OBJECT reads the eviction policy, which keyed handlers do not see, so it
//! hops to its key's shard itself.

use bytes::Bytes;

use super::boxed;
use crate::command::{acl, flags::*, Args, CommandSpec, Exec, KeySpec, LocalFuture, Multi, NotifyFlags, Run};
use crate::config::glob::glob_match;
use crate::config::MaxmemoryPolicy;
use crate::error::CmdError;
use crate::server::client::Client;
use crate::server::unix_ms;
use crate::shard::{shard_of, Shard};
use crate::store::db::{lfu_minutes, lru_clock};
use crate::store::value::itoa_buf;
use crate::store::{Db, Entry, Key, Str, Touch, Value};

const SAME_OBJECT: CmdError = CmdError::Static("ERR source and destination objects are the same");
const INVALID_CURSOR: CmdError = CmdError::Static("ERR invalid cursor");
#[rustfmt::skip]
const LFU_NO_IDLE: CmdError = CmdError::Static("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
#[rustfmt::skip]
const NO_LFU: CmdError = CmdError::Static("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");

/// Redis's OBJ_SHARED_INTEGERS: SET stores 0..10000 as shared objects.
const SHARED_INTEGERS: i64 = 10_000;
/// OBJ_SHARED_REFCOUNT, what OBJECT REFCOUNT reports for a shared object.
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

// ---- shard operations ----------------------------------------------------------------

/// A database index argument (MOVE, COPY ... DB): an int (Redis's getIntFromObject), then
/// in range.
fn parse_db(arg: &[u8], databases: usize) -> Result<usize, CmdError> {
    let n = crate::command::args::parse_i64(arg)
        .filter(|n| i32::try_from(*n).is_ok())
        .ok_or(CmdError::NotInteger)?;
    if n < 0 || n as usize >= databases {
        return Err(CmdError::DbIndexOutOfRange);
    }
    Ok(n as usize)
}

/// The conditions of the EXPIRE family (Redis 7's `NX | XX | GT | LT`).
#[derive(Default, Debug, PartialEq, Eq, Clone, Copy)]
struct ExpireCond {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl ExpireCond {
    /// Parses the options after the time, as Redis's parseExtendedExpireArgumentsOrReply:
    /// any order, repeats allowed, conflicts rejected once all are read.
    fn parse(a: &Args, start: usize) -> Result<ExpireCond, CmdError> {
        let mut c = ExpireCond::default();
        for i in start..a.len() {
            if a.is(i, "NX") {
                c.nx = true;
            } else if a.is(i, "XX") {
                c.xx = true;
            } else if a.is(i, "GT") {
                c.gt = true;
            } else if a.is(i, "LT") {
                c.lt = true;
            } else {
                return Err(CmdError::Custom(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(&a[i])
                )));
            }
        }
        if c.nx && (c.xx || c.gt || c.lt) {
            return Err(CmdError::Static(
                "ERR NX and XX, GT or LT options at the same time are not compatible",
            ));
        }
        if c.gt && c.lt {
            return Err(CmdError::Static(
                "ERR GT and LT options at the same time are not compatible",
            ));
        }
        Ok(c)
    }

    /// May a key whose deadline is `current` (None: no TTL, i.e. infinite) get `when`?
    fn allows(self, current: Option<i64>, when: i64) -> bool {
        !((self.nx && current.is_some())
            || (self.xx && current.is_none())
            || (self.gt && current.is_none_or(|cur| when <= cur))
            || (self.lt && current.is_some_and(|cur| when >= cur)))
    }
}

/// The absolute deadline in ms an EXPIRE-family argument names, with Redis's overflow
/// checks: `base` is now for the relative forms, 0 for the absolute ones.
fn expire_deadline(v: i64, seconds: bool, base: i64, cmd: &str) -> Result<i64, CmdError> {
    let invalid = || CmdError::InvalidExpire(cmd.into());
    let ms = if seconds {
        v.checked_mul(1000).ok_or_else(invalid)?
    } else {
        v
    };
    if ms > i64::MAX - base {
        return Err(invalid());
    }
    Ok(ms + base)
}

/// What OBJECT needs of a key, read on its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ObjectInfo {
    encoding: &'static str,
    /// Seconds since the last access (estimateObjectIdleTime, at 1 s resolution).
    idle: u64,
    /// A small non-negative integer, which Redis keeps as a shared object.
    small_int: bool,
    /// The LFU counter after decay (LFUDecrAndReturn), under an LFU policy.
    freq: u32,
}

fn object_info(e: &Entry, clock: u32, lfu_minutes: u32) -> ObjectInfo {
    let idle = crate::store::db::idle_seconds(e.lru, clock);
    let small_int = matches!(e.value, Value::Str(Str::Int(n)) if (0..SHARED_INTEGERS).contains(&n));
    let decay = crate::store::db::lfu().map_or(0, |l| l.decay_time);
    ObjectInfo {
        encoding: e.value.encoding(),
        idle,
        small_int,
        freq: crate::store::db::lfu_decr_and_return(e.lru, lfu_minutes, decay),
    }
}

/// Every live key of `db` matching `pattern` (KEYS, on one shard; also KEYS in a script).
pub(crate) fn keys_matching(db: &Db, now: u64, pattern: &[u8]) -> Vec<Key> {
    let all = pattern == b"*";
    let mut out = Vec::new();
    db.for_each_key(now, |k, _| {
        if all || glob_match(pattern, k, false) {
            out.push(k.into());
        }
    });
    out
}

/// SCAN's options: `[MATCH pattern] [COUNT count] [TYPE type]`, any order, last one wins.
#[derive(Clone, Debug)]
struct ScanOpts {
    count: u64,
    pattern: Option<Bytes>,
    type_name: Option<Bytes>,
}

impl ScanOpts {
    fn parse(a: &Args, start: usize) -> Result<ScanOpts, CmdError> {
        let mut o = ScanOpts {
            count: 10,
            pattern: None,
            type_name: None,
        };
        let mut i = start;
        while i < a.len() {
            let has_value = a.len() - i >= 2;
            if a.is(i, "COUNT") && has_value {
                let n = a.int(i + 1)?;
                if n < 1 {
                    return Err(CmdError::Syntax);
                }
                o.count = n as u64;
            } else if a.is(i, "MATCH") && has_value {
                // "*" matches everything: no filtering at all.
                o.pattern = if &a[i + 1] == b"*" {
                    None
                } else {
                    Some(a.bytes(i + 1).clone())
                };
            } else if a.is(i, "TYPE") && has_value {
                o.type_name = Some(a.bytes(i + 1).clone());
            } else {
                return Err(CmdError::Syntax);
            }
            i += 2;
        }
        Ok(o)
    }

    fn pattern_ok(&self, key: &[u8]) -> bool {
        match &self.pattern {
            Some(p) => glob_match(p, key, false),
            None => true,
        }
    }
}

/// What one shard's part of a SCAN call found.
#[derive(Debug)]
struct ScanStep {
    /// The shard's next dict cursor (0: this shard is done).
    cursor: u64,
    keys: Vec<Key>,
    /// Keys visited, filtered or not: COUNT counts them, as in Redis.
    visited: u64,
    /// Dict steps left of the call's budget.
    budget: u64,
}

/// Scans `db` from dict cursor `cursor` as Redis's scanGenericCommand does: bucket after
/// bucket while the cursor is not done, steps remain and fewer than `want` keys were seen.
///
/// Then its filters, in its order: the pattern; TYPE by a read lookup of each key (Redis 7.0's
/// lookupKeyReadWithFlags with NOTOUCH: an expired key is deleted, the lookup counts as a
/// keyspace hit or miss, a miss sends `keymiss`); and expiry, which deletes the expired keys
/// the scan found. The caller propagates those deletions.
fn scan_db(db: &mut Db, mut cursor: u64, now: u64, want: u64, mut budget: u64, o: &ScanOpts) -> ScanStep {
    let mut found: Vec<Key> = Vec::new();
    let mut visited = 0u64;
    loop {
        // Every stored key, expired or not (filtered below, as Redis does).
        cursor = db.scan(cursor, |k, _| {
            visited += 1;
            if o.pattern_ok(k) {
                found.push(k.into());
            }
        });
        if cursor == 0 || budget == 0 {
            break;
        }
        budget -= 1;
        if visited >= want {
            break;
        }
    }
    let keys = found
        .into_iter()
        .filter(|k| match &o.type_name {
            Some(t) => db
                .lookup(k, now, Touch::No)
                .is_some_and(|e| t.eq_ignore_ascii_case(e.value.type_name().as_bytes())),
            None => db.contains(k, now),
        })
        .collect();
    ScanStep {
        cursor,
        keys,
        visited,
        budget,
    }
}

/// A SCAN call's walk over the shards. The client's cursor is `dict cursor * shards +
/// shard`: shard 0 from dict cursor 0 is the start, and the walk ends after the last shard.
/// Each shard's dict scan keeps Redis's guarantee, and shards are visited in order, so
/// every key present for the whole scan is returned at least once.
#[derive(Debug)]
struct ScanWalk {
    shards: u64,
    shard: u64,
    cursor: u64,
    visited: u64,
    budget: u64,
    done: bool,
}

impl ScanWalk {
    fn new(cursor: u64, shards: usize, count: u64) -> ScanWalk {
        let shards = shards.max(1) as u64;
        ScanWalk {
            shards,
            shard: cursor % shards,
            cursor: cursor / shards,
            visited: 0,
            budget: count.saturating_mul(10),
            done: false,
        }
    }

    /// Records a shard's step; true while the call should go on to the next shard (this
    /// one is done and the call still wants keys).
    fn advance(&mut self, step: &ScanStep, count: u64) -> bool {
        self.visited += step.visited;
        self.budget = step.budget;
        self.cursor = step.cursor;
        if self.cursor != 0 {
            return false;
        }
        self.shard += 1;
        if self.shard >= self.shards {
            self.done = true;
            return false;
        }
        self.visited < count && self.budget > 0
    }

    fn want(&self, count: u64) -> u64 {
        count.saturating_sub(self.visited).max(1)
    }

    /// The cursor to hand back to the client.
    fn next_cursor(&self) -> u64 {
        if self.done {
            0
        } else {
            self.cursor.wrapping_mul(self.shards).wrapping_add(self.shard)
        }
    }
}

// ---- keyed handlers ------------------------------------------------------------------

/// Deletes the live keys among `a[1..]`; returns how many there were.
fn delete_keys(ex: &mut Exec<'_>, a: &Args, effect: &[u8]) -> i64 {
    let now = ex.now;
    let mut deleted: Vec<&[u8]> = vec![effect];
    for i in 1..a.len() {
        let key = &a[i];
        let db = ex.db(key);
        if db.contains(key, now) {
            db.remove(key);
            ex.notify(NotifyFlags::GENERIC, "del", key);
            deleted.push(key);
        }
    }
    let n = deleted.len() as i64 - 1;
    if n > 0 {
        ex.dirty += n as u64;
        ex.propagate(&deleted);
    }
    n
}

/// `DEL key [key ...]`
fn del(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let n = delete_keys(ex, a, b"DEL");
    ex.out.int(n);
    Ok(())
}

/// `UNLINK key [key ...]`: DEL whose memory is reclaimed off the hot path in Redis; here the
/// same, propagated as UNLINK as Redis does.
fn unlink(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let n = delete_keys(ex, a, b"UNLINK");
    ex.out.int(n);
    Ok(())
}

/// `EXISTS key [key ...]`: a key named twice counts twice.
fn exists(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let now = ex.now;
    let mut n = 0;
    for i in 1..a.len() {
        let key = &a[i];
        if ex.db(key).lookup(key, now, Touch::No).is_some() {
            n += 1;
        }
    }
    ex.out.int(n);
    Ok(())
}

/// `TOUCH key [key ...]`: touches even under CLIENT NO-TOUCH (that is its purpose).
fn touch(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let now = ex.now;
    let mut n = 0;
    for i in 1..a.len() {
        let key = &a[i];
        if ex.db(key).lookup(key, now, Touch::Yes).is_some() {
            n += 1;
        }
    }
    ex.out.int(n);
    Ok(())
}

/// `TYPE key`
fn type_(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (key, now) = (&a[1], ex.now);
    let name = ex
        .db(key)
        .lookup(key, now, Touch::No)
        .map_or("none", |e| e.value.type_name());
    ex.out.simple(name);
    Ok(())
}

/// The EXPIRE family: `key time [NX | XX | GT | LT]`, time relative (`relative`) or
/// absolute, in seconds or milliseconds.
fn expire_generic(ex: &mut Exec<'_>, a: &Args, relative: bool, seconds: bool, cmd: &str) -> Result<(), CmdError> {
    let cond = ExpireCond::parse(a, 3)?;
    let v = a.int(2)?;
    let now = ex.now as i64;
    let when = expire_deadline(v, seconds, if relative { now } else { 0 }, cmd)?;
    let key = &a[1];
    let db = ex.db(key);
    if db.lookup_write(key, now as u64).is_none() {
        ex.out.int(0);
        return Ok(());
    }
    let current = db.expire_at(key).map(|at| at as i64);
    if !cond.allows(current, when) {
        ex.out.int(0);
        return Ok(());
    }
    if when <= now {
        // A deadline already past deletes the key, propagated as the DEL it is.
        db.remove(key);
        ex.dirty += 1;
        ex.notify(NotifyFlags::GENERIC, "del", key);
        ex.propagate(&[b"DEL", key]);
    } else {
        db.set_expire(key, when as u64);
        ex.dirty += 1;
        ex.notify(NotifyFlags::GENERIC, "expire", key);
        if ex.effects.is_enabled() {
            let mut buf = itoa_buf::Buf::new();
            let at = buf.format(when);
            let mut effect: Vec<&[u8]> = vec![b"PEXPIREAT", key, at];
            effect.extend(a.as_slice()[3..].iter().map(|b| &b[..]));
            ex.propagate(&effect);
        }
    }
    ex.out.int(1);
    Ok(())
}

/// `EXPIRE key seconds [NX | XX | GT | LT]`
fn expire(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    expire_generic(ex, a, true, true, "expire")
}

/// `PEXPIRE key milliseconds [NX | XX | GT | LT]`
fn pexpire(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    expire_generic(ex, a, true, false, "pexpire")
}

/// `EXPIREAT key unix-time-seconds [NX | XX | GT | LT]`
fn expireat(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    expire_generic(ex, a, false, true, "expireat")
}

/// `PEXPIREAT key unix-time-milliseconds [NX | XX | GT | LT]`
fn pexpireat(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    expire_generic(ex, a, false, false, "pexpireat")
}

/// TTL and its siblings: -2 for a missing key, -1 without a deadline, else the time left
/// (or the deadline itself with `absolute`), rounded to seconds unless `ms`.
fn ttl_generic(ex: &mut Exec<'_>, a: &Args, ms: bool, absolute: bool) -> Result<(), CmdError> {
    let (key, now) = (&a[1], ex.now);
    let db = ex.db(key);
    if db.lookup(key, now, Touch::No).is_none() {
        ex.out.int(-2);
        return Ok(());
    }
    let reply = match db.expire_at(key) {
        None => -1,
        Some(at) => {
            let t = if absolute {
                at as i64
            } else {
                (at as i64 - now as i64).max(0)
            };
            if ms {
                t
            } else {
                (t + 500) / 1000
            }
        }
    };
    ex.out.int(reply);
    Ok(())
}

/// `TTL key`
fn ttl(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    ttl_generic(ex, a, false, false)
}

/// `PTTL key`
fn pttl(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    ttl_generic(ex, a, true, false)
}

/// `EXPIRETIME key`
fn expiretime(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    ttl_generic(ex, a, false, true)
}

/// `PEXPIRETIME key`
fn pexpiretime(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    ttl_generic(ex, a, true, true)
}

/// `PERSIST key`
fn persist(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (key, now) = (&a[1], ex.now);
    let db = ex.db(key);
    let removed = db.lookup_write(key, now).is_some() && db.persist(key);
    if removed {
        ex.dirty += 1;
        ex.notify(NotifyFlags::GENERIC, "persist", key);
        ex.propagate(&[b"PERSIST", key]);
    }
    ex.out.int(removed as i64);
    Ok(())
}

/// RENAME and RENAMENX: the value moves with its TTL and access time.
fn rename_generic(ex: &mut Exec<'_>, a: &Args, nx: bool) -> Result<(), CmdError> {
    let (src, dst, now) = (&a[1], &a[2], ex.now);
    if ex.db(src).lookup_write(src, now).is_none() {
        return Err(CmdError::NoSuchKey);
    }
    if src == dst {
        if nx {
            ex.out.int(0);
        } else {
            ex.out.ok();
        }
        return Ok(());
    }
    if ex.db(dst).lookup_write(dst, now).is_some() {
        if nx {
            ex.out.int(0);
            return Ok(());
        }
        ex.db(dst).remove(dst);
    }
    let Some((entry, at)) = ex.db(src).remove(src) else {
        return Err(CmdError::NoSuchKey);
    };
    ex.db(dst).insert_entry(dst, entry, at);
    ex.dirty += 1;
    ex.notify(NotifyFlags::GENERIC, "rename_from", src);
    ex.notify(NotifyFlags::GENERIC, "rename_to", dst);
    ex.propagate(&[if nx { b"RENAMENX" } else { b"RENAME" }, src, dst]);
    if nx {
        ex.out.int(1);
    } else {
        ex.out.ok();
    }
    Ok(())
}

/// `RENAME key newkey`
fn rename(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    rename_generic(ex, a, false)
}

/// `RENAMENX key newkey`
fn renamenx(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    rename_generic(ex, a, true)
}

/// `COPY source destination [DB destination-db] [REPLACE]`: the copy keeps the TTL.
fn copy(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let mut replace = false;
    let mut dst_db = ex.db;
    let mut i = 3;
    while i < a.len() {
        if a.is(i, "REPLACE") {
            replace = true;
        } else if a.is(i, "DB") && i + 1 < a.len() {
            dst_db = parse_db(&a[i + 1], ex.databases)?;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    let (src, dst, now, touch) = (&a[1], &a[2], ex.now, ex.touch());
    if dst_db == ex.db && src == dst {
        return Err(SAME_OBJECT);
    }
    let db = ex.db(src);
    let Some(e) = db.lookup(src, now, touch) else {
        ex.out.int(0);
        return Ok(());
    };
    let value = e.value.clone();
    let at = db.expire_at(src);
    let target = ex.ks.db(dst_db, dst);
    if target.lookup_write(dst, now).is_some() {
        if !replace {
            ex.out.int(0);
            return Ok(());
        }
        target.remove(dst);
    }
    let lru = target.fresh_stamp();
    target.insert_entry(dst, Entry { value, lru }, at);
    ex.dirty += 1;
    ex.notify_db(dst_db, NotifyFlags::GENERIC, "copy_to", dst);
    if ex.effects.is_enabled() {
        let mut effect: Vec<&[u8]> = vec![b"COPY"];
        effect.extend(a.as_slice()[1..].iter().map(|b| &b[..]));
        ex.propagate(&effect);
    }
    ex.out.int(1);
    Ok(())
}

/// `MOVE key db`: a key's shard is the same in every database, so this never leaves it.
fn move_(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let dst_db = parse_db(&a[2], ex.databases)?;
    if dst_db == ex.db {
        return Err(SAME_OBJECT);
    }
    let (key, now) = (&a[1], ex.now);
    if ex.db(key).lookup_write(key, now).is_none() {
        ex.out.int(0);
        return Ok(());
    }
    if ex.ks.db(dst_db, key).lookup_write(key, now).is_some() {
        ex.out.int(0);
        return Ok(());
    }
    let Some((entry, at)) = ex.db(key).remove(key) else {
        ex.out.int(0);
        return Ok(());
    };
    ex.ks.db(dst_db, key).insert_entry(key, entry, at);
    ex.dirty += 1;
    ex.notify(NotifyFlags::GENERIC, "move_from", key);
    ex.notify_db(dst_db, NotifyFlags::GENERIC, "move_to", key);
    ex.propagate(&[b"MOVE", key, &a[2]]);
    ex.out.int(1);
    Ok(())
}

// ---- connection-level handlers -------------------------------------------------------

/// Sends this shard's pending DELs of keys found expired by a hop that is not a command
/// run through dispatch.
fn flush_expired(sh: &std::rc::Rc<Shard>, store: &mut crate::store::Store) {
    sh.local.effects.borrow_mut().take_expired(store);
}

/// After a hop that may have expired keys (see [`flush_expired`]): their DELs go to the
/// persistence core and their `expired` (and any `keymiss`) events to subscribers now, not
/// with some later command's.
fn settle(sh: &std::rc::Rc<Shard>) {
    sh.flush_effects();
    crate::server::pubsub::flush_events(sh);
}

/// `KEYS pattern`
fn keys(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let pattern = a.bytes(1).clone();
        let db = c.db;
        let parts = c
            .shard
            .hop_all(move |sh| {
                let now = unix_ms();
                sh.with_store(|st| keys_matching(&st.dbs[db], now, &pattern))
            })
            .await?;
        c.out.array(parts.iter().map(Vec::len).sum());
        for k in parts.iter().flatten() {
            c.out.bulk(k);
        }
        Ok(())
    })
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`
fn scan(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let cursor = crate::command::args::parse_scan_cursor(&a[1]).ok_or(INVALID_CURSOR)?;
        let opts = ScanOpts::parse(&a, 2)?;
        let db = c.db;
        let mut walk = ScanWalk::new(cursor, c.shard.nshards, opts.count);
        let mut keys = Vec::new();
        loop {
            let (o, dict_cursor, want, budget) = (opts.clone(), walk.cursor, walk.want(opts.count), walk.budget);
            let step = c
                .shard
                .hop(walk.shard as usize, move |sh| {
                    let now = unix_ms();
                    let step = sh.with_store(|st| {
                        let step = scan_db(&mut st.dbs[db], dict_cursor, now, want, budget, &o);
                        flush_expired(sh, st);
                        step
                    });
                    settle(sh);
                    step
                })
                .await?;
            let more = walk.advance(&step, opts.count);
            keys.extend(step.keys);
            if !more {
                break;
            }
        }
        c.out.array(2);
        // Unsigned, as Redis prints it: it may exceed i64::MAX.
        c.out.bulk(walk.next_cursor().to_string().as_bytes());
        c.out.array(keys.len());
        for k in &keys {
            c.out.bulk(k);
        }
        Ok(())
    })
}

/// `RANDOMKEY`: every shard draws a key; one is kept, weighted by the shards' key counts,
/// so each key is about as likely as in one Redis dict.
fn randomkey(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let db = c.db;
        let draws = c
            .shard
            .hop_all(move |sh| {
                let now = unix_ms();
                let draw = sh.with_store(|st| {
                    let d = &mut st.dbs[db];
                    let n = d.len() as u64;
                    let key = if n == 0 {
                        None
                    } else {
                        d.random_key(now, &mut || sh.local.rand())
                    };
                    flush_expired(sh, st);
                    key.map(|k| (n, k))
                });
                settle(sh);
                draw
            })
            .await?;
        let total: u64 = draws.iter().flatten().map(|(n, _)| n).sum();
        if total == 0 {
            c.out.null();
            return Ok(());
        }
        let mut pick = c.shard.local.rand() % total;
        for (n, key) in draws.iter().flatten() {
            if pick < *n {
                c.out.bulk(key);
                break;
            }
            pick -= n;
        }
        Ok(())
    })
}

/// Looks `key` up on its shard for OBJECT, without touching its access time.
async fn object_lookup(c: &Client, key: &Bytes) -> Result<Option<ObjectInfo>, CmdError> {
    let (db, key) = (c.db, key.clone());
    let target = shard_of(&key, c.shard.nshards);
    c.shard
        .hop(target, move |sh| {
            let now = unix_ms();
            let info = sh.with_store(|st| {
                let info = st.dbs[db]
                    .lookup_quiet(&key, now)
                    .map(|e| object_info(e, lru_clock(now), lfu_minutes(now)));
                flush_expired(sh, st);
                info
            });
            settle(sh);
            info
        })
        .await
}

/// Runs an OBJECT subcommand on its key: a null reply for a missing key, else `f`.
async fn object_generic(
    c: &mut Client,
    a: &Args,
    f: fn(&ObjectInfo, &Client) -> Result<i64, CmdError>,
) -> Result<(), CmdError> {
    match object_lookup(c, a.bytes(2)).await? {
        None => c.out.null(),
        Some(info) => {
            let n = f(&info, c)?;
            c.out.int(n);
        }
    }
    Ok(())
}

/// `OBJECT ENCODING key`
fn object_encoding(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        match object_lookup(c, a.bytes(2)).await? {
            None => c.out.null(),
            Some(info) => c.out.bulk(info.encoding.as_bytes()),
        }
        Ok(())
    })
}

/// `OBJECT FREQ key`
fn object_freq(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        object_generic(c, &a, |info, c| {
            if !c.shard.local.shared.config.read().maxmemory_policy.is_lfu() {
                return Err(NO_LFU);
            }
            Ok(info.freq as i64)
        })
        .await
    })
}

/// `OBJECT IDLETIME key`
fn object_idletime(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        object_generic(c, &a, |info, c| {
            if c.shard.local.shared.config.read().maxmemory_policy.is_lfu() {
                return Err(LFU_NO_IDLE);
            }
            Ok(info.idle as i64)
        })
        .await
    })
}

/// `OBJECT REFCOUNT key`: 1, except for the small integers Redis shares (unless an LRU or
/// LFU policy with maxmemory set makes every value its own object).
fn object_refcount(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        object_generic(c, &a, |info, c| {
            let cfg = c.shard.local.shared.config.read();
            let no_sharing = cfg.maxmemory > 0
                && matches!(
                    cfg.maxmemory_policy,
                    MaxmemoryPolicy::VolatileLru
                        | MaxmemoryPolicy::AllkeysLru
                        | MaxmemoryPolicy::VolatileLfu
                        | MaxmemoryPolicy::AllkeysLfu
                );
            Ok(if info.small_int && !no_sharing {
                SHARED_REFCOUNT
            } else {
                1
            })
        })
        .await
    })
}

/// `OBJECT HELP`
fn object_help(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let lines: &[&str] = &[
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Prints this help.",
        ];
        super::reply_help(&mut c.out, lines);
        Ok(())
    })
}

// ---- the table -----------------------------------------------------------------------

const KS: u32 = acl::KEYSPACE;
const RO: &[&str] = &["RO"];
const RO_ACCESS: &[&str] = &["RO", "ACCESS"];
const RW_UPDATE: &[&str] = &["RW", "UPDATE"];
const RM_DELETE: &[&str] = &["RM", "DELETE"];
const RW_ACCESS_DELETE: &[&str] = &["RW", "ACCESS", "DELETE"];
const RW_ACCESS_UPDATE: &[&str] = &["RW", "ACCESS", "UPDATE"];
const OW_UPDATE: &[&str] = &["OW", "UPDATE"];
const OW_INSERT: &[&str] = &["OW", "INSERT"];
const MULTI_SUM: &[&str] = &["request_policy:multi_shard", "response_policy:agg_sum"];
const NONDET: &[&str] = &["nondeterministic_output"];
const EXPIRE_SPEC: &[KeySpec] = &[KeySpec::one(1, RW_UPDATE)];

// One line per command, like every family's table.
#[rustfmt::skip]
static OBJECT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "encoding", arity: 3, flags: READONLY, acl: KS, key_specs: &[KeySpec::one(2, RO)], since: "2.2.3", summary: "Returns the internal encoding of a Redis object.", syntax: "key", tips: NONDET, run: Run::Conn(object_encoding), ..CommandSpec::DEFAULT },
    CommandSpec { name: "freq", arity: 3, flags: READONLY, acl: KS, key_specs: &[KeySpec::one(2, RO)], since: "4.0.0", summary: "Returns the logarithmic access frequency counter of a Redis object.", syntax: "key", tips: NONDET, run: Run::Conn(object_freq), ..CommandSpec::DEFAULT },
    CommandSpec { name: "help", arity: 2, flags: LOADING | STALE, acl: KS, since: "6.2.0", summary: "Returns helpful text about the different subcommands.", run: Run::Conn(object_help), ..CommandSpec::DEFAULT },
    CommandSpec { name: "idletime", arity: 3, flags: READONLY, acl: KS, key_specs: &[KeySpec::one(2, RO)], since: "2.2.3", summary: "Returns the time since the last access to a Redis object.", syntax: "key", tips: NONDET, run: Run::Conn(object_idletime), ..CommandSpec::DEFAULT },
    CommandSpec { name: "refcount", arity: 3, flags: READONLY, acl: KS, key_specs: &[KeySpec::one(2, RO)], since: "2.2.3", summary: "Returns the reference count of a value of a key.", syntax: "key", tips: NONDET, run: Run::Conn(object_refcount), ..CommandSpec::DEFAULT },
];

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "copy", arity: -3, flags: WRITE | DENYOOM, acl: KS, key_specs: &[KeySpec::one(1, RO_ACCESS), KeySpec::one(2, OW_UPDATE)], since: "6.2.0", summary: "Copies the value of a key to a new key.", complexity: "O(N) worst case for collections, where N is the number of nested items. O(1) for string values.", syntax: "source destination [DB destination-db] [REPLACE]", run: Run::Keyed(copy, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "del", arity: -2, flags: WRITE, acl: KS, key_specs: &[KeySpec::rest(1, 1, RM_DELETE)], summary: "Deletes one or more keys.", complexity: "O(N) where N is the number of keys that will be removed. When a key to remove holds a value other than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, set, sorted set or hash. Removing a single key that holds a string value is O(1).", syntax: "key [key ...]", tips: MULTI_SUM, run: Run::Keyed(del, Multi::SplitSum), ..CommandSpec::DEFAULT },
    CommandSpec { name: "exists", arity: -2, flags: READONLY | FAST, acl: KS, key_specs: &[KeySpec::rest(1, 1, RO)], summary: "Determines whether one or more keys exist.", complexity: "O(N) where N is the number of keys to check.", syntax: "key [key ...]", tips: MULTI_SUM, run: Run::Keyed(exists, Multi::SplitSum), ..CommandSpec::DEFAULT },
    CommandSpec { name: "expire", arity: -3, flags: WRITE | FAST, acl: KS, key_specs: EXPIRE_SPEC, summary: "Sets the expiration time of a key in seconds.", syntax: "key seconds [NX | XX | GT | LT]", run: Run::Keyed(expire, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "expireat", arity: -3, flags: WRITE | FAST, acl: KS, key_specs: EXPIRE_SPEC, since: "1.2.0", summary: "Sets the expiration time of a key to a Unix timestamp.", syntax: "key unix-time-seconds [NX | XX | GT | LT]", run: Run::Keyed(expireat, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "expiretime", arity: 2, flags: READONLY | FAST, acl: KS, key_specs: &[KeySpec::one(1, RO_ACCESS)], since: "7.0.0", summary: "Returns the expiration time of a key as a Unix timestamp.", syntax: "key", run: Run::Keyed(expiretime, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "keys", arity: 2, flags: READONLY, acl: KS | acl::DANGEROUS, summary: "Returns all key names that match a pattern.", complexity: "O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length.", syntax: "pattern", tips: &["request_policy:all_shards", "nondeterministic_output_order"], run: Run::Conn(keys), ..CommandSpec::DEFAULT },
    CommandSpec { name: "move", arity: 3, flags: WRITE | FAST, acl: KS, key_specs: &[KeySpec::one(1, RW_ACCESS_UPDATE)], summary: "Moves a key to another database.", syntax: "key db", run: Run::Keyed(move_, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "object", arity: -2, since: "2.2.3", summary: "A container for object introspection commands.", complexity: "Depends on subcommand.", subcommands: OBJECT_SUBCOMMANDS, ..CommandSpec::DEFAULT },
    CommandSpec { name: "persist", arity: 2, flags: WRITE | FAST, acl: KS, key_specs: &[KeySpec::one(1, RW_UPDATE)], since: "2.2.0", summary: "Removes the expiration time of a key.", syntax: "key", run: Run::Keyed(persist, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "pexpire", arity: -3, flags: WRITE | FAST, acl: KS, key_specs: EXPIRE_SPEC, since: "2.6.0", summary: "Sets the expiration time of a key in milliseconds.", syntax: "key milliseconds [NX | XX | GT | LT]", run: Run::Keyed(pexpire, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "pexpireat", arity: -3, flags: WRITE | FAST, acl: KS, key_specs: EXPIRE_SPEC, since: "2.6.0", summary: "Sets the expiration time of a key to a Unix milliseconds timestamp.", syntax: "key unix-time-milliseconds [NX | XX | GT | LT]", run: Run::Keyed(pexpireat, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "pexpiretime", arity: 2, flags: READONLY | FAST, acl: KS, key_specs: &[KeySpec::one(1, RO_ACCESS)], since: "7.0.0", summary: "Returns the expiration time of a key as a Unix milliseconds timestamp.", syntax: "key", run: Run::Keyed(pexpiretime, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "pttl", arity: 2, flags: READONLY | FAST, acl: KS, key_specs: &[KeySpec::one(1, RO_ACCESS)], since: "2.6.0", summary: "Returns the expiration time in milliseconds of a key.", syntax: "key", tips: NONDET, run: Run::Keyed(pttl, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "randomkey", arity: 1, flags: READONLY, acl: KS, summary: "Returns a random key name from the database.", tips: &["request_policy:all_shards", "response_policy:special", "nondeterministic_output"], run: Run::Conn(randomkey), ..CommandSpec::DEFAULT },
    CommandSpec { name: "rename", arity: 3, flags: WRITE, acl: KS, key_specs: &[KeySpec::one(1, RW_ACCESS_DELETE), KeySpec::one(2, OW_UPDATE)], summary: "Renames a key and overwrites the destination.", syntax: "key newkey", run: Run::Keyed(rename, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "renamenx", arity: 3, flags: WRITE | FAST, acl: KS, key_specs: &[KeySpec::one(1, RW_ACCESS_DELETE), KeySpec::one(2, OW_INSERT)], summary: "Renames a key only when the target key name doesn't exist.", syntax: "key newkey", run: Run::Keyed(renamenx, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "scan", arity: -2, flags: READONLY, acl: KS, since: "2.8.0", summary: "Iterates over the key names in the database.", complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.", syntax: "cursor [MATCH pattern] [COUNT count] [TYPE type]", tips: &["nondeterministic_output", "request_policy:special", "response_policy:special"], run: Run::Conn(scan), ..CommandSpec::DEFAULT },
    CommandSpec { name: "touch", arity: -2, flags: READONLY | FAST, acl: KS, key_specs: &[KeySpec::rest(1, 1, RO)], since: "3.2.1", summary: "Returns the number of existing keys out of those specified after updating the time they were last accessed.", complexity: "O(N) where N is the number of keys that will be touched.", syntax: "key [key ...]", tips: MULTI_SUM, run: Run::Keyed(touch, Multi::SplitSum), ..CommandSpec::DEFAULT },
    CommandSpec { name: "ttl", arity: 2, flags: READONLY | FAST, acl: KS, key_specs: &[KeySpec::one(1, RO_ACCESS)], summary: "Returns the expiration time in seconds of a key.", syntax: "key", tips: NONDET, run: Run::Keyed(ttl, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "type", arity: 2, flags: READONLY | FAST, acl: KS, key_specs: &[KeySpec::one(1, RO)], summary: "Determines the type of value stored at a key.", syntax: "key", run: Run::Keyed(type_, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "unlink", arity: -2, flags: WRITE | FAST, acl: KS, key_specs: &[KeySpec::rest(1, 1, RM_DELETE)], since: "4.0.0", summary: "Asynchronously deletes one or more keys.", complexity: "O(1) for each key removed regardless of its size. Then the command does O(N) work in a different thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of.", syntax: "key [key ...]", tips: MULTI_SUM, run: Run::Keyed(unlink, Multi::SplitSum), ..CommandSpec::DEFAULT },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::Effects;
    use crate::resp::{Proto, Reply};
    use crate::store::Store;

    const NOW: u64 = 1_700_000_000_000;

    /// One shard's store, run through keyed handlers as dispatch would.
    struct Shard1 {
        store: Store,
        effects: Effects,
        db: usize,
        now: u64,
    }

    impl Shard1 {
        fn new() -> Shard1 {
            Shard1 {
                store: Store::new(16),
                effects: Effects::new(true),
                db: 0,
                now: NOW,
            }
        }

        fn run(&mut self, argv: &[&str]) -> String {
            let spec = COMMANDS
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(argv[0]))
                .expect("a keys command");
            let Run::Keyed(f, _) = spec.run else {
                panic!("{} is not keyed", spec.name)
            };
            let args = Args::new(argv.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect());
            let mut out = Reply::new(Proto::Resp2);
            {
                let mut ex = Exec::local(&mut self.store, &mut out, &mut self.effects, self.now);
                ex.db = self.db;
                if let Err(e) = f(&mut ex, &args) {
                    ex.out.error(&e.to_string());
                }
            }
            self.effects.take_expired(&mut self.store);
            String::from_utf8_lossy(&out.take()).into_owned()
        }

        fn set(&mut self, k: &str, v: &str) {
            self.store.dbs[self.db].set(k.as_bytes(), Value::Str(Str::from_set(v.as_bytes())), false);
        }

        fn expire_at(&mut self, k: &str, at: u64) {
            assert!(self.store.dbs[self.db].set_expire(k.as_bytes(), at));
        }

        /// The effects recorded so far, one command per line, arguments space-separated.
        fn effects(&mut self) -> Vec<String> {
            let Some(rec) = self.effects.take(0) else {
                return vec![];
            };
            let text = String::from_utf8_lossy(&rec.bytes).into_owned();
            let mut lines = Vec::new();
            let mut it = text.split("\r\n").filter(|s| !s.is_empty());
            while let Some(head) = it.next() {
                let n: usize = head[1..].parse().expect("array header");
                let mut words = Vec::new();
                for _ in 0..n {
                    it.next();
                    words.push(it.next().expect("bulk").to_string());
                }
                lines.push(words.join(" "));
            }
            lines
        }
    }

    #[test]
    fn del_and_unlink_count_live_keys_once() {
        let mut s = Shard1::new();
        s.set("a", "1");
        s.set("b", "2");
        assert_eq!(s.run(&["DEL", "a", "b", "missing", "a"]), ":2\r\n");
        assert_eq!(s.effects(), ["SELECT 0", "DEL a b"]);
        assert_eq!(s.run(&["DEL", "a"]), ":0\r\n");
        assert!(s.effects().is_empty());
        s.set("c", "3");
        assert_eq!(s.run(&["UNLINK", "c", "x"]), ":1\r\n");
        assert_eq!(s.effects(), ["SELECT 0", "UNLINK c"]);
    }

    #[test]
    fn expired_keys_are_not_deleted_twice() {
        let mut s = Shard1::new();
        s.set("gone", "1");
        s.expire_at("gone", NOW - 1);
        assert_eq!(s.run(&["DEL", "gone"]), ":0\r\n");
        assert_eq!(s.effects(), ["SELECT 0", "DEL gone"]);
    }

    #[test]
    fn exists_counts_repeats_and_touch_counts_live_keys() {
        let mut s = Shard1::new();
        s.set("a", "1");
        assert_eq!(s.run(&["EXISTS", "a", "a", "missing"]), ":2\r\n");
        assert_eq!(s.run(&["TOUCH", "a", "a", "missing"]), ":2\r\n");
        assert_eq!(s.store.dbs[0].stats.keyspace_hits, 4);
        assert_eq!(s.store.dbs[0].stats.keyspace_misses, 2);
    }

    #[test]
    fn type_is_a_status() {
        let mut s = Shard1::new();
        s.set("a", "1");
        assert_eq!(s.run(&["TYPE", "a"]), "+string\r\n");
        assert_eq!(s.run(&["TYPE", "missing"]), "+none\r\n");
    }

    #[test]
    fn expire_option_rules() {
        let mut s = Shard1::new();
        s.set("k", "v");
        let both = "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n";
        assert_eq!(s.run(&["EXPIRE", "k", "100", "nx", "xx"]), both);
        assert_eq!(s.run(&["EXPIRE", "k", "100", "NX", "LT"]), both);
        assert_eq!(
            s.run(&["EXPIRE", "k", "100", "GT", "LT"]),
            "-ERR GT and LT options at the same time are not compatible\r\n"
        );
        assert_eq!(s.run(&["EXPIRE", "k", "100", "foo"]), "-ERR Unsupported option foo\r\n");
        // Options are checked before the time.
        assert_eq!(s.run(&["EXPIRE", "k", "abc", "foo"]), "-ERR Unsupported option foo\r\n");
        assert_eq!(
            s.run(&["EXPIRE", "k", "abc"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        // No TTL: XX fails, GT fails (infinite), LT succeeds.
        assert_eq!(s.run(&["EXPIRE", "k", "100", "XX"]), ":0\r\n");
        assert_eq!(s.run(&["EXPIRE", "k", "100", "GT"]), ":0\r\n");
        assert_eq!(s.run(&["EXPIRE", "k", "100", "LT"]), ":1\r\n");
        assert_eq!(s.run(&["EXPIRE", "k", "100", "NX"]), ":0\r\n");
        assert_eq!(s.run(&["EXPIRE", "k", "200", "gt"]), ":1\r\n");
        assert_eq!(s.run(&["EXPIRE", "k", "200", "GT"]), ":0\r\n");
        assert_eq!(s.run(&["EXPIRE", "k", "150", "LT"]), ":1\r\n");
        assert_eq!(s.run(&["PTTL", "k"]), ":150000\r\n");
        assert_eq!(s.run(&["EXPIRE", "missing", "100"]), ":0\r\n");
        let at = (NOW + 100_000).to_string();
        let effects = s.effects();
        assert_eq!(effects[1], format!("PEXPIREAT k {at} LT"));
        assert_eq!(effects.len(), 4);
    }

    #[test]
    fn expire_overflow_is_an_invalid_expire_time() {
        let mut s = Shard1::new();
        s.set("k", "v");
        for (cmd, v) in [
            ("EXPIRE", "9223372036854775807"),
            ("EXPIRE", "-9223372036854775808"),
            ("EXPIRE", "9223372036854774"),
            ("PEXPIRE", "9223372036854775807"),
            ("EXPIREAT", "9223372036854775807"),
        ] {
            assert_eq!(
                s.run(&[cmd, "k", v]),
                format!("-ERR invalid expire time in '{}' command\r\n", cmd.to_lowercase())
            );
        }
        assert_eq!(s.run(&["PEXPIREAT", "k", "9223372036854775807"]), ":1\r\n");
        assert_eq!(s.run(&["PEXPIRETIME", "k"]), ":9223372036854775807\r\n");
    }

    #[test]
    fn a_past_deadline_deletes_and_propagates_del() {
        let mut s = Shard1::new();
        for (i, (cmd, v)) in [
            ("EXPIRE", "0"),
            ("EXPIRE", "-5"),
            ("PEXPIRE", "-1"),
            ("EXPIREAT", "1"),
            ("PEXPIREAT", "-100"),
        ]
        .into_iter()
        .enumerate()
        {
            s.set("k", "v");
            assert_eq!(s.run(&[cmd, "k", v]), ":1\r\n", "{cmd} {v}");
            assert_eq!(s.run(&["EXISTS", "k"]), ":0\r\n");
            let e = s.effects();
            assert_eq!(e.last().map(String::as_str), Some("DEL k"), "{i}");
        }
    }

    #[test]
    fn ttl_family() {
        let mut s = Shard1::new();
        s.set("k", "v");
        assert_eq!(s.run(&["TTL", "missing"]), ":-2\r\n");
        assert_eq!(s.run(&["PTTL", "missing"]), ":-2\r\n");
        assert_eq!(s.run(&["EXPIRETIME", "missing"]), ":-2\r\n");
        assert_eq!(s.run(&["TTL", "k"]), ":-1\r\n");
        assert_eq!(s.run(&["PEXPIRETIME", "k"]), ":-1\r\n");
        s.expire_at("k", NOW + 1499);
        assert_eq!(s.run(&["TTL", "k"]), ":1\r\n");
        assert_eq!(s.run(&["PTTL", "k"]), ":1499\r\n");
        s.expire_at("k", NOW + 1500);
        assert_eq!(s.run(&["TTL", "k"]), ":2\r\n");
        s.expire_at("k", 4_102_444_800_500);
        assert_eq!(s.run(&["EXPIRETIME", "k"]), ":4102444801\r\n");
        assert_eq!(s.run(&["PEXPIRETIME", "k"]), ":4102444800500\r\n");
        // An expired key is missing.
        s.expire_at("k", NOW);
        assert_eq!(s.run(&["TTL", "k"]), ":-2\r\n");
    }

    #[test]
    fn persist_removes_the_deadline_once() {
        let mut s = Shard1::new();
        s.set("k", "v");
        assert_eq!(s.run(&["PERSIST", "k"]), ":0\r\n");
        s.expire_at("k", NOW + 10_000);
        assert_eq!(s.run(&["PERSIST", "k"]), ":1\r\n");
        assert_eq!(s.run(&["TTL", "k"]), ":-1\r\n");
        assert_eq!(s.run(&["PERSIST", "missing"]), ":0\r\n");
        assert_eq!(s.effects(), ["SELECT 0", "PERSIST k"]);
    }

    #[test]
    fn rename_moves_value_and_ttl() {
        let mut s = Shard1::new();
        assert_eq!(s.run(&["RENAME", "missing", "x"]), "-ERR no such key\r\n");
        assert_eq!(s.run(&["RENAME", "missing", "missing"]), "-ERR no such key\r\n");
        assert_eq!(s.run(&["RENAMENX", "missing", "missing"]), "-ERR no such key\r\n");
        s.set("a", "1");
        assert_eq!(s.run(&["RENAME", "a", "a"]), "+OK\r\n");
        assert_eq!(s.run(&["RENAMENX", "a", "a"]), ":0\r\n");
        s.expire_at("a", NOW + 5000);
        s.set("b", "old");
        s.expire_at("b", NOW + 9000);
        assert_eq!(s.run(&["RENAMENX", "a", "b"]), ":0\r\n");
        assert_eq!(s.run(&["RENAME", "a", "b"]), "+OK\r\n");
        assert_eq!(s.run(&["EXISTS", "a"]), ":0\r\n");
        assert_eq!(s.run(&["PTTL", "b"]), ":5000\r\n");
        // Overwriting a key with a TTL by one without drops the TTL.
        s.set("c", "2");
        assert_eq!(s.run(&["RENAME", "c", "b"]), "+OK\r\n");
        assert_eq!(s.run(&["TTL", "b"]), ":-1\r\n");
        assert_eq!(s.run(&["RENAMENX", "b", "d"]), ":1\r\n");
        assert_eq!(s.effects(), ["SELECT 0", "RENAME a b", "RENAME c b", "RENAMENX b d"]);
    }

    #[test]
    fn effects_of_keys_found_expired_come_first() {
        let mut s = Shard1::new();
        s.set("src", "1");
        s.set("dst", "2");
        s.expire_at("dst", NOW - 1);
        assert_eq!(s.run(&["RENAMENX", "src", "dst"]), ":1\r\n");
        assert_eq!(s.effects(), ["SELECT 0", "DEL dst", "RENAMENX src dst"]);
    }

    #[test]
    fn copy_options_and_errors() {
        let mut s = Shard1::new();
        s.set("x", "v");
        s.expire_at("x", NOW + 7000);
        assert_eq!(
            s.run(&["COPY", "x", "x"]),
            "-ERR source and destination objects are the same\r\n"
        );
        assert_eq!(
            s.run(&["COPY", "x", "x", "DB", "0"]),
            "-ERR source and destination objects are the same\r\n"
        );
        assert_eq!(
            s.run(&["COPY", "x", "y", "DB", "16"]),
            "-ERR DB index is out of range\r\n"
        );
        assert_eq!(
            s.run(&["COPY", "x", "y", "DB", "-1"]),
            "-ERR DB index is out of range\r\n"
        );
        assert_eq!(
            s.run(&["COPY", "x", "y", "DB", "4294967296"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(s.run(&["COPY", "x", "y", "DB"]), "-ERR syntax error\r\n");
        assert_eq!(s.run(&["COPY", "x", "y", "FOO"]), "-ERR syntax error\r\n");
        assert_eq!(s.run(&["COPY", "missing", "y"]), ":0\r\n");
        assert_eq!(s.run(&["COPY", "x", "y"]), ":1\r\n");
        assert_eq!(s.run(&["COPY", "x", "y"]), ":0\r\n");
        assert_eq!(s.run(&["COPY", "x", "y", "replace"]), ":1\r\n");
        assert_eq!(s.run(&["PTTL", "y"]), ":7000\r\n");
        assert_eq!(s.run(&["COPY", "x", "x", "DB", "1", "REPLACE"]), ":1\r\n");
        s.db = 1;
        assert_eq!(s.run(&["PTTL", "x"]), ":7000\r\n");
        assert_eq!(s.run(&["TYPE", "x"]), "+string\r\n");
        s.db = 0;
        assert_eq!(
            s.effects(),
            ["SELECT 0", "COPY x y", "COPY x y replace", "COPY x x DB 1 REPLACE"]
        );
    }

    #[test]
    fn move_between_databases() {
        let mut s = Shard1::new();
        s.set("k", "v");
        s.expire_at("k", NOW + 3000);
        assert_eq!(
            s.run(&["MOVE", "k", "0"]),
            "-ERR source and destination objects are the same\r\n"
        );
        assert_eq!(s.run(&["MOVE", "k", "16"]), "-ERR DB index is out of range\r\n");
        assert_eq!(
            s.run(&["MOVE", "k", "abc"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(s.run(&["MOVE", "missing", "1"]), ":0\r\n");
        s.db = 2;
        s.set("k", "there");
        s.db = 0;
        assert_eq!(s.run(&["MOVE", "k", "2"]), ":0\r\n");
        assert_eq!(s.run(&["MOVE", "k", "1"]), ":1\r\n");
        assert_eq!(s.run(&["EXISTS", "k"]), ":0\r\n");
        s.db = 1;
        assert_eq!(s.run(&["PTTL", "k"]), ":3000\r\n");
        assert_eq!(s.effects(), ["SELECT 0", "MOVE k 1"]);
    }

    #[test]
    fn expire_conditions() {
        let c = |nx, xx, gt, lt| ExpireCond { nx, xx, gt, lt };
        assert!(c(false, false, false, false).allows(None, 5));
        assert!(c(true, false, false, false).allows(None, 5));
        assert!(!c(true, false, false, false).allows(Some(1), 5));
        assert!(!c(false, true, false, false).allows(None, 5));
        assert!(!c(false, false, true, false).allows(None, 5));
        assert!(c(false, false, true, false).allows(Some(4), 5));
        assert!(!c(false, false, true, false).allows(Some(5), 5));
        assert!(c(false, false, false, true).allows(None, 5));
        assert!(!c(false, false, false, true).allows(Some(5), 5));
        assert!(c(false, true, true, false).allows(Some(4), 5));
    }

    #[test]
    fn scan_cursors_parse_like_strtoul() {
        use crate::command::args::parse_scan_cursor;
        assert_eq!(parse_scan_cursor(b"0"), Some(0));
        assert_eq!(parse_scan_cursor(b""), Some(0));
        assert_eq!(parse_scan_cursor(b"007"), Some(7));
        assert_eq!(parse_scan_cursor(b"+5"), Some(5));
        assert_eq!(parse_scan_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_scan_cursor(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b"18446744073709551616"[..],
            b"abc",
            b" 1",
            b"1 ",
            b"+",
            b"-",
            b"1.5",
            b"0x10",
        ] {
            assert_eq!(parse_scan_cursor(bad), None, "{bad:?}");
        }
    }

    fn args(v: &[&str]) -> Args {
        Args::new(v.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect())
    }

    #[test]
    fn scan_options() {
        let o = ScanOpts::parse(&args(&["scan", "0", "match", "a*", "COUNT", "5", "type", "STRING"]), 2).unwrap();
        assert_eq!(o.count, 5);
        assert_eq!(o.pattern.as_deref(), Some(&b"a*"[..]));
        assert_eq!(o.type_name.as_deref(), Some(&b"STRING"[..]));
        assert!(ScanOpts::parse(&args(&["scan", "0", "MATCH", "*"]), 2)
            .unwrap()
            .pattern
            .is_none());
        for bad in [
            &["scan", "0", "COUNT", "0"][..],
            &["scan", "0", "COUNT", "-1"],
            &["scan", "0", "COUNT"],
            &["scan", "0", "FOO", "x"],
            &["scan", "0", "MATCH", "a", "b"],
        ] {
            assert_eq!(ScanOpts::parse(&args(bad), 2).unwrap_err(), CmdError::Syntax, "{bad:?}");
        }
        assert_eq!(
            ScanOpts::parse(&args(&["scan", "0", "COUNT", "x"]), 2).unwrap_err(),
            CmdError::NotInteger
        );
    }

    /// Databases standing for the shards of one database, keys spread by `shard_of`.
    fn sharded(n: usize, keys: usize) -> Vec<Db> {
        let mut dbs: Vec<Db> = (0..n).map(|_| Db::new()).collect();
        for i in 0..keys {
            let k = format!("key:{i}");
            dbs[shard_of(k.as_bytes(), n)].set(k.as_bytes(), Value::Str(Str::from_set(b"v")), false);
        }
        dbs
    }

    /// A whole SCAN iteration, as the handler walks the shards.
    fn full_scan(dbs: &mut [Db], opts: &ScanOpts, mut between: impl FnMut(&mut [Db], usize)) -> (Vec<Key>, usize) {
        let (mut cursor, mut calls, mut all) = (0u64, 0usize, Vec::new());
        loop {
            let mut walk = ScanWalk::new(cursor, dbs.len(), opts.count);
            loop {
                let step = scan_db(
                    &mut dbs[walk.shard as usize],
                    walk.cursor,
                    NOW,
                    walk.want(opts.count),
                    walk.budget,
                    opts,
                );
                let more = walk.advance(&step, opts.count);
                all.extend(step.keys);
                if !more {
                    break;
                }
            }
            calls += 1;
            cursor = walk.next_cursor();
            between(dbs, calls);
            if cursor == 0 {
                return (all, calls);
            }
        }
    }

    #[test]
    fn scan_skips_and_deletes_expired_keys() {
        let mut dbs = sharded(1, 0);
        dbs[0].set(b"a", Value::Str(Str::from_set(b"1")), false);
        dbs[0].set(b"b", Value::Str(Str::from_set(b"1")), false);
        dbs[0].set_expire(b"b", NOW - 1);
        for type_name in [None, Some(Bytes::from_static(b"string"))] {
            let opts = ScanOpts {
                count: 10,
                pattern: None,
                type_name,
            };
            let (keys, _) = full_scan(&mut dbs, &opts, |_, _| {});
            assert_eq!(keys, vec![Key::from(&b"a"[..])]);
        }
        assert!(dbs[0].peek(b"b").is_none(), "the scan deleted the expired key");
    }

    #[test]
    fn scan_returns_every_key_across_shards() {
        for shards in [1, 3, 4] {
            let mut dbs = sharded(shards, 500);
            for count in [1, 10, 1000] {
                let opts = ScanOpts {
                    count,
                    pattern: None,
                    type_name: None,
                };
                let (keys, calls) = full_scan(&mut dbs, &opts, |_, _| {});
                let distinct: std::collections::HashSet<_> = keys.iter().collect();
                assert_eq!(distinct.len(), 500, "shards {shards} count {count}");
                if count == 1000 {
                    assert_eq!(calls, 1, "a large COUNT reads every shard in one call");
                }
            }
        }
    }

    #[test]
    fn scan_keeps_its_guarantee_while_keys_come_and_go() {
        let mut dbs = sharded(4, 300);
        let opts = ScanOpts {
            count: 7,
            pattern: None,
            type_name: None,
        };
        let (keys, _) = full_scan(&mut dbs, &opts, |dbs, call| {
            // Grow the shards (the dicts rehash under the scan), and drop the keys added
            // two calls ago, which the guarantee does not cover.
            for j in 0..40 {
                let k = format!("new:{call}:{j}");
                dbs[shard_of(k.as_bytes(), 4)].set(k.as_bytes(), Value::Str(Str::from_set(b"v")), false);
                let old = format!("new:{}:{j}", call.wrapping_sub(2));
                dbs[shard_of(old.as_bytes(), 4)].remove(old.as_bytes());
                dbs[shard_of(old.as_bytes(), 4)].cron();
            }
        });
        let seen: std::collections::HashSet<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        for i in 0..300 {
            assert!(seen.contains(format!("key:{i}").as_bytes()), "key:{i} missed");
        }
    }

    #[test]
    fn scan_filters_on_the_shard() {
        let mut dbs = sharded(4, 100);
        let opts = ScanOpts {
            count: 10,
            pattern: Some(Bytes::from_static(b"key:1*")),
            type_name: None,
        };
        let (keys, _) = full_scan(&mut dbs, &opts, |_, _| {});
        assert_eq!(keys.len(), 11);
        let opts = ScanOpts {
            count: 10,
            pattern: None,
            type_name: Some(Bytes::from_static(b"String")),
        };
        assert_eq!(full_scan(&mut dbs, &opts, |_, _| {}).0.len(), 100);
        let opts = ScanOpts {
            count: 10,
            pattern: None,
            type_name: Some(Bytes::from_static(b"list")),
        };
        assert_eq!(full_scan(&mut dbs, &opts, |_, _| {}).0.len(), 0);
    }

    #[test]
    fn scan_cursor_names_the_shard() {
        let walk = ScanWalk::new(4 * 9 + 3, 4, 10);
        assert_eq!((walk.shard, walk.cursor), (3, 9));
        assert_eq!(walk.next_cursor(), 39);
        let walk = ScanWalk::new(u64::MAX, 4, u64::MAX);
        assert_eq!(walk.shard, 3);
        assert_eq!(walk.budget, u64::MAX);
    }

    #[test]
    fn keys_skip_expired_and_match_globs() {
        let mut db = Db::new();
        for k in ["hello", "hallo", "world", "dead"] {
            db.set(k.as_bytes(), Value::Str(Str::from_set(b"v")), false);
        }
        db.set_expire(b"dead", NOW - 1);
        let mut got = keys_matching(&db, NOW, b"h?llo");
        got.sort();
        assert_eq!(got, vec![Key::from(&b"hallo"[..]), Key::from(&b"hello"[..])]);
        assert_eq!(keys_matching(&db, NOW, b"*").len(), 3);
        assert!(keys_matching(&db, NOW, b"HELLO").is_empty());
    }

    #[test]
    fn object_info_reads_encoding_idle_time_and_sharing() {
        let e = Entry {
            value: Value::Str(Str::from_set(b"9999")),
            lru: 100,
        };
        assert_eq!(
            object_info(&e, 130, 0),
            ObjectInfo {
                encoding: "int",
                idle: 30,
                small_int: true,
                // The low 8 bits, read as an LFU counter (no decay without an LFU policy).
                freq: 100,
            }
        );
        let e = Entry {
            value: Value::Str(Str::from_set(b"10000")),
            lru: (1 << 24) - 10,
        };
        assert_eq!(
            object_info(&e, 5, 0),
            ObjectInfo {
                encoding: "int",
                idle: 14,
                small_int: false,
                freq: 246,
            }
        );
        let e = Entry {
            value: Value::Str(Str::from_set(b"-1")),
            lru: 0,
        };
        assert!(!object_info(&e, 0, 0).small_int);
        let e = Entry {
            value: Value::Str(Str::from_set(b"hello")),
            lru: 0,
        };
        assert_eq!(object_info(&e, 0, 0).encoding, "embstr");
    }

    #[test]
    fn every_keyed_spec_runs_where_its_keys_are() {
        for spec in COMMANDS.iter().chain(OBJECT_SUBCOMMANDS) {
            if let Run::Keyed(..) = spec.run {
                assert!(!spec.key_specs.is_empty(), "{} is keyed without key specs", spec.name);
            }
        }
    }
}
