//! Server commands: DBSIZE FLUSHDB FLUSHALL SWAPDB TIME INFO CONFIG SHUTDOWN LASTSAVE MONITOR
//! SLOWLOG DEBUG.
//!
//! None of them has keys: they run on the client's home shard and visit the other shards with
//! hops (DBSIZE, INFO, CONFIG RESETSTAT) or a reservation of every shard (FLUSHDB, FLUSHALL,
//! SWAPDB), so that no client ever sees half of a flush or of a swap.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::boxed;
use crate::command::args::{int_in_range, parse_i64, positive};
use crate::command::table::{self, Cmd};
use crate::command::{acl, flags::*, Args, CommandSpec, LocalFuture, Run};
use crate::error::CmdError;
use crate::persist::Effects;
use crate::resp::Reply;
use crate::server::blocking::Parked;
use crate::server::client::Client;
use crate::server::info::{needs_snapshots, render, sections, snapshot, ACTIVE_EXPIRE};
use crate::server::stats::{
    add_latency, latency_cdf, LatencyMonitor, LatencySeries, SlowLog, LAZYFREED, LAZYFREE_PENDING,
};
use crate::server::{unix_ms, unix_us};
use crate::store::db::DbStats;
use crate::store::{Db, Store};

// ---- shard operations ----------------------------------------------------------------

/// Empties database `db` of one shard's store (every database when `None`). Returns the
/// number of keys removed and the old contents, which the caller frees once the shards are
/// released: freeing a big keyspace must not hold every shard.
pub fn take_dbs(store: &mut Store, db: Option<usize>) -> (usize, Vec<Db>) {
    let mut removed = 0;
    let mut old = Vec::new();
    let range = match db {
        Some(i) => i..i + 1,
        None => 0..store.dbs.len(),
    };
    for d in &mut store.dbs[range] {
        if !d.is_empty() {
            removed += d.len();
            old.push(d.take());
        }
    }
    (removed, old)
}

/// Swaps the data of databases `a` and `b` of one shard's store (SWAPDB).
pub fn swap_dbs(store: &mut Store, a: usize, b: usize) {
    if a == b {
        return;
    }
    let (lo, hi) = (a.min(b), a.max(b));
    let (left, right) = store.dbs.split_at_mut(hi);
    left[lo].swap_data(&mut right[0]);
}

/// Below this many keys, freeing in the background costs more than it saves (Redis's
/// LAZYFREE_THRESHOLD).
const LAZYFREE_THRESHOLD: usize = 64;

/// Frees flushed databases: now, or on a background thread for FLUSHALL/FLUSHDB ASYNC.
fn free_dbs(old: Vec<Db>, keys: usize, lazy: bool) {
    if lazy && keys > LAZYFREE_THRESHOLD {
        LAZYFREE_PENDING.fetch_add(keys as u64, Ordering::Relaxed);
        let spawned = std::thread::Builder::new().name("lazyfree".into()).spawn(move || {
            drop(old);
            LAZYFREE_PENDING.fetch_sub(keys as u64, Ordering::Relaxed);
            LAZYFREED.fetch_add(keys as u64, Ordering::Relaxed);
        });
        if let Err(e) = spawned {
            // The closure (and the data) is dropped with the error: freed here, now.
            LAZYFREE_PENDING.fetch_sub(keys as u64, Ordering::Relaxed);
            tracing::warn!("cannot start a lazyfree thread ({e}): freed synchronously");
        }
    } else {
        drop(old);
    }
}

// ---- helpers ---------------------------------------------------------------------------

/// Redis's addReplyHelp: a header, the lines, then HELP, as status replies.
fn help(out: &mut Reply, cmd: &str, lines: &[&str]) {
    out.array(lines.len() + 3);
    out.simple(&format!(
        "{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for l in lines {
        out.simple(l);
    }
    out.simple("HELP");
    out.simple("    Prints this help.");
}

/// Loopback clients count as local for `enable-debug-command local` and
/// `enable-protected-configs local` (Redis: loopback or unix socket).
fn is_local(c: &Client) -> bool {
    c.handle.addr.ip().to_canonical().is_loopback()
}

/// Sends effects computed on the coordinator (while it holds the shards) to the
/// persistence core, before the shards are released, so the file order is a valid order.
fn send_effects(c: &Client, mut effects: Effects) {
    let sh = &c.shard;
    if let (Some(core), Some(record)) = (sh.local.persist.as_ref(), effects.take(sh.id)) {
        core.send(record);
    }
}

/// FLUSHDB/FLUSHALL's optional `ASYNC | SYNC` (getFlushCommandFlags): true = free lazily.
fn flush_mode(a: &Args, lazy_user_flush: bool) -> Result<bool, CmdError> {
    match a.len() {
        1 => Ok(lazy_user_flush),
        2 if a.is(1, "SYNC") => Ok(false),
        2 if a.is(1, "ASYNC") => Ok(true),
        _ => Err(CmdError::Syntax),
    }
}

/// An argument that must be a C int (getIntFromObjectOrReply), with the command's message.
fn int_arg(a: &Args, i: usize, err: &'static str) -> Result<i64, CmdError> {
    match parse_i64(&a[i]) {
        Some(n) if i32::try_from(n).is_ok() => Ok(n),
        _ => Err(CmdError::Static(err)),
    }
}

/// strtod on the longest numeric prefix, 0 when there is none (DEBUG SLEEP parses so).
fn strtod_prefix(s: &[u8]) -> f64 {
    let s = std::str::from_utf8(s).unwrap_or("").trim_start();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E')))
        .unwrap_or(s.len());
    (1..=end).rev().find_map(|n| s[..n].parse::<f64>().ok()).unwrap_or(0.0)
}

/// atoi: optional sign and leading digits, 0 when there are none.
fn atoi(s: &[u8]) -> i64 {
    let s = std::str::from_utf8(s).unwrap_or("").trim_start();
    let sign_len = usize::from(s.starts_with(['+', '-']));
    let digits = s[sign_len..].bytes().take_while(u8::is_ascii_digit).count();
    s[..sign_len + digits].parse().unwrap_or(0)
}

// ---- handlers --------------------------------------------------------------------------

/// `DBSIZE`
fn dbsize(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let db = c.db;
        let counts = c.shard.hop_all(move |sh| sh.with_store(|s| s.dbs[db].len())).await?;
        c.out.int(counts.iter().sum::<usize>() as i64);
        Ok(())
    })
}

/// Flushes the selected database (`Some`) or all of them, on every shard at once.
async fn flush(c: &mut Client, a: &Args, db: Option<usize>) -> Result<(), CmdError> {
    let lazy = flush_mode(a, c.shard.local.shared.config.read().lazyfree_lazy_user_flush)?;
    let sh = c.shard.clone();
    let all: Vec<usize> = (0..sh.nshards).collect();
    let mut lent = sh.reserve(&all).await?;
    let (mut removed, mut old) = (0, Vec::new());
    for s in 0..sh.nshards {
        let (n, dbs) = take_dbs(lent.store(s), db);
        removed += n;
        old.extend(dbs);
    }
    // The command itself is the effect: it is deterministic, and replays even on an empty
    // keyspace (Redis forces its propagation).
    let mut effects = Effects::new(sh.local.effects.borrow().is_enabled());
    let argv: Vec<&[u8]> = a.as_slice().iter().map(|b| &b[..]).collect();
    effects.push(c.db, &argv);
    send_effects(c, effects);
    sh.release(lent).await;
    free_dbs(old, removed, lazy);
    sh.local.stats.borrow_mut().dirty += removed as u64;
    // FLUSHALL with save points writes the (now empty) dump.rdb at once, as Redis's
    // flushAllDataAndResetRDB; a background save in progress is superseded.
    if db.is_none() && !sh.local.shared.config.read().save.is_empty() {
        use crate::persist::rdb::save as rdb_save;
        while rdb_save::STATE.in_progress.swap(true, Ordering::SeqCst) {
            glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
        }
        if let Err(e) = rdb_save::save(&sh).await {
            tracing::warn!("FLUSHALL could not save the empty data set: {e}");
        }
    }
    // FLUSHALL counts one change beyond the keys, after its save (flushAllDataAndResetRDB).
    sh.local.stats.borrow_mut().dirty += u64::from(db.is_none());
    c.out.ok();
    Ok(())
}

/// `FLUSHDB [ASYNC | SYNC]`
fn flushdb(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let db = c.db;
        flush(c, &a, Some(db)).await
    })
}

/// `FLUSHALL [ASYNC | SYNC]`
fn flushall(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move { flush(c, &a, None).await })
}

/// `SWAPDB index1 index2`
fn swapdb(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let id1 = int_arg(&a, 1, "ERR invalid first DB index")?;
        let id2 = int_arg(&a, 2, "ERR invalid second DB index")?;
        let databases = c.shard.local.cfg.borrow().databases as i64;
        if !(0..databases).contains(&id1) || !(0..databases).contains(&id2) {
            return Err(CmdError::DbIndexOutOfRange);
        }
        let (id1, id2) = (id1 as usize, id2 as usize);
        let sh = c.shard.clone();
        let all: Vec<usize> = (0..sh.nshards).collect();
        let mut lent = sh.reserve(&all).await?;
        for s in 0..sh.nshards {
            swap_dbs(lent.store(s), id1, id2);
        }
        let mut effects = Effects::new(sh.local.effects.borrow().is_enabled());
        effects.push(c.db, &[b"SWAPDB", &a[1], &a[2]]);
        send_effects(c, effects);
        sh.release(lent).await;
        sh.local.stats.borrow_mut().dirty += 1;
        c.out.ok();
        Ok(())
    })
}

/// `TIME`
fn time(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let us = unix_us() as i64;
        c.out.array(2);
        c.out.bulk_int(us / 1_000_000);
        c.out.bulk_int(us % 1_000_000);
        Ok(())
    })
}

/// `INFO [section [section ...]]`
fn info(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let asked: Vec<&[u8]> = a.as_slice()[1..].iter().map(|b| &b[..]).collect();
        let wanted = sections(&asked);
        let snaps = if needs_snapshots(&wanted) {
            c.shard.hop_all(|sh| snapshot(sh)).await?
        } else {
            Vec::new()
        };
        let text = render(&c.shard, &snaps, &wanted);
        c.out.verbatim("txt", text.as_bytes());
        Ok(())
    })
}

/// `LASTSAVE`
fn lastsave(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        c.out.int(c.shard.local.shared.lastsave.load(Ordering::Relaxed) as i64);
        Ok(())
    })
}

/// `MONITOR`: the connection turns into a feed of every command the server runs.
fn monitor(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        // Already monitoring: ignored, without a reply, as Redis does.
        if c.handle.monitor.get() {
            return Ok(());
        }
        c.handle.monitor.set(true);
        c.shard.local.clients.borrow_mut().monitors.push(c.handle.clone());
        c.shard.local.shared.monitors.fetch_add(1, Ordering::SeqCst);
        c.out.ok();
        Ok(())
    })
}

/// SHUTDOWN's modifiers.
#[derive(Default, Debug, PartialEq)]
struct ShutdownOpts {
    nosave: bool,
    save: bool,
    now: bool,
    force: bool,
    abort: bool,
}

fn parse_shutdown(a: &Args) -> Result<ShutdownOpts, CmdError> {
    let mut o = ShutdownOpts::default();
    let mut cur = a.cursor(1);
    while let Some(arg) = cur.next_arg() {
        match arg.to_ascii_lowercase().as_slice() {
            b"nosave" => o.nosave = true,
            b"save" => o.save = true,
            b"now" => o.now = true,
            b"force" => o.force = true,
            b"abort" => o.abort = true,
            _ => return Err(CmdError::Syntax),
        }
    }
    if (o.abort && (o.nosave || o.save || o.now || o.force)) || (o.nosave && o.save) {
        return Err(CmdError::Syntax);
    }
    Ok(o)
}

/// `SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]`
///
/// The runtime stops accepting, lets commands in flight finish, flushes what the persistence
/// core holds and exits 0. The client gets no reply: its connection closes. As Redis, a
/// snapshot is saved first with SAVE, or when save points are configured and NOSAVE is not
/// given; if that save fails the server stays up unless FORCE.
fn shutdown(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let o = parse_shutdown(&a)?;
        if o.abort {
            // Shutdown here never waits for anything (no replicas), so there is never one to abort.
            return Err(CmdError::Static("ERR No shutdown in progress."));
        }
        let shared = c.shard.local.shared.clone();
        let save_points = !shared.config.read().save.is_empty();
        tracing::warn!("User requested shutdown...");
        if o.save || (save_points && !o.nosave) {
            use crate::persist::rdb::save as rdb_save;
            tracing::info!("Saving the final RDB snapshot before exiting.");
            // A background save in progress is superseded: wait for it, then save again.
            while rdb_save::STATE.in_progress.swap(true, Ordering::SeqCst) {
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
            if let Err(e) = rdb_save::save(&c.shard).await {
                tracing::warn!("Error trying to save the DB: {e}");
                if !o.force {
                    tracing::warn!("Errors trying to shut down the server. Check the logs for more information.");
                    return Err(CmdError::Static("ERR Errors trying to SHUTDOWN. Check logs."));
                }
            }
        }
        shared.request_shutdown();
        c.close_after_reply = true;
        Ok(())
    })
}

// ---- CONFIG ------------------------------------------------------------------------------

/// `CONFIG GET parameter [parameter ...]`
fn config_get(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let patterns: Vec<&[u8]> = a.as_slice()[2..].iter().map(|b| &b[..]).collect();
        let pairs = c.shard.local.shared.config.get(&patterns);
        c.out.map(pairs.len());
        for (name, value) in &pairs {
            c.out.bulk(name.as_bytes());
            c.out.bulk(value.as_bytes());
        }
        Ok(())
    })
}

/// `CONFIG SET parameter value [parameter value ...]`: all or nothing.
fn config_set(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        if (a.len() - 2) % 2 != 0 {
            return Err(CmdError::Syntax);
        }
        let pairs: Vec<(&[u8], &[u8])> = (2..a.len()).step_by(2).map(|i| (&a[i], &a[i + 1])).collect();
        let local = is_local(c);
        let shared = &c.shard.local.shared;
        // Try on a copy first, so that every other error keeps Redis's text and order, and
        // `appendonly yes` is refused without anything having changed.
        let mut trial = shared.config.read().clone();
        trial.set_as(&pairs, local).map_err(CmdError::Custom)?;
        // A changed tls-* parameter rebuilds the TLS configuration (Redis applies
        // applyTlsCfg to every one of them): new connections get it; one that does not load
        // changes nothing.
        let tls_param = pairs
            .iter()
            .find(|(name, _)| name.len() > 4 && name[..4].eq_ignore_ascii_case(b"tls-"));
        let new_tls = match tls_param {
            Some((name, _)) if trial.tls_port != 0 => {
                Some(crate::server::tls::server_config(&trial).map_err(|e| {
                    tracing::warn!("Failed to configure TLS: {e}");
                    CmdError::Custom(format!(
                        "ERR CONFIG SET failed (possibly related to argument '{}') - Unable to update TLS configuration. Check server logs.",
                        String::from_utf8_lossy(name).to_ascii_lowercase()
                    ))
                })?)
            }
            _ => None,
        };
        let aof_before = shared.config.read().appendonly;
        shared.config.set_as(&pairs, local).map_err(CmdError::Custom)?;
        if let Some(tls) = new_tls {
            *shared.tls.write().unwrap_or_else(|e| e.into_inner()) = Some(tls);
        }
        // Every shard takes the new values before the reply: the next command, wherever it
        // runs, sees them (as in Redis, where CONFIG SET applies at once).
        c.shard.hop_all(|sh| sh.local.refresh_config()).await?;
        if pairs.iter().any(|(name, _)| name.eq_ignore_ascii_case(b"maxmemory")) {
            crate::server::evict::maxmemory_changed(&c.shard).await;
        }
        if shared.config.read().appendonly != aof_before {
            // The AOF is on (recording from a cut, its first base being written) or off
            // (flushed, fsynced, closed) before the reply, as in Redis.
            crate::persist::rewrite::follow_appendonly(&c.shard).await.map_err(|e| {
                tracing::warn!("Can't turn the AOF on or off: {e}");
                CmdError::Static(
                    "ERR CONFIG SET failed (possibly related to argument 'appendonly') - Unable to turn on AOF. Check server logs.",
                )
            })?;
        }
        c.out.ok();
        Ok(())
    })
}

/// `CONFIG RESETSTAT`: what Redis's resetServerStats, resetCommandTableStats and
/// resetErrorTableStats clear. The slow log and the changes since the last save stay.
fn config_resetstat(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        c.shard
            .hop_all(|sh| {
                sh.local.stats.borrow_mut().reset();
                sh.with_store(|store| {
                    for db in &mut store.dbs {
                        db.stats = DbStats::default();
                    }
                });
            })
            .await?;
        let shared = &c.shard.local.shared;
        shared
            .used_memory_peak
            .store(shared.used_memory.load(Ordering::Relaxed), Ordering::Relaxed);
        LAZYFREED.store(0, Ordering::Relaxed);
        c.out.ok();
        Ok(())
    })
}

/// `CONFIG REWRITE`
fn config_rewrite(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        match c.shard.local.shared.config.rewrite() {
            Ok(()) => {
                tracing::info!("CONFIG REWRITE executed with success.");
                c.out.ok();
                Ok(())
            }
            Err(e) => {
                tracing::warn!("CONFIG REWRITE failed: {e}");
                Err(CmdError::Custom(e))
            }
        }
    })
}

/// `CONFIG HELP`
fn config_help(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        help(
            &mut c.out,
            "CONFIG",
            &[
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "REWRITE",
                "    Rewrite the configuration file.",
            ],
        );
        Ok(())
    })
}

// ---- SLOWLOG -----------------------------------------------------------------------------

/// Writes the newest `count` entries of the slow log.
fn reply_slowlog(out: &mut Reply, log: &SlowLog, count: usize) {
    let n = count.min(log.entries.len());
    out.array(n);
    for e in log.entries.iter().take(n) {
        out.array(6);
        out.int(e.id as i64);
        out.int(e.time as i64);
        out.int(e.duration_us as i64);
        out.array(e.args.len());
        for arg in &e.args {
            out.bulk(arg);
        }
        out.bulk(e.addr.as_bytes());
        out.bulk(e.name.as_bytes());
    }
}

fn slowlog_lock(c: &Client) -> std::sync::MutexGuard<'_, SlowLog> {
    // Entries are pushed whole: a panic elsewhere cannot leave the log half-written.
    c.shard.local.shared.slowlog.lock().unwrap_or_else(|e| e.into_inner())
}

/// `SLOWLOG GET [count]`: the newest `count` entries (10 by default, -1 for all).
fn slowlog_get(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let count = match a.len() {
            2 => 10,
            3 => match parse_i64(&a[2]) {
                Some(-1) => usize::MAX,
                Some(n) if n >= 0 => n as usize,
                _ => return Err(CmdError::Static("ERR count should be greater than or equal to -1")),
            },
            _ => return Err(CmdError::sub_syntax(&a[1], "SLOWLOG")),
        };
        let shared = c.shard.local.shared.clone();
        let log = shared.slowlog.lock().unwrap_or_else(|e| e.into_inner());
        reply_slowlog(&mut c.out, &log, count);
        Ok(())
    })
}

/// `SLOWLOG LEN`
fn slowlog_len(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let n = slowlog_lock(c).entries.len();
        c.out.int(n as i64);
        Ok(())
    })
}

/// `SLOWLOG RESET`: entry ids keep counting, as in Redis.
fn slowlog_reset(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        slowlog_lock(c).entries.clear();
        c.out.ok();
        Ok(())
    })
}

/// `SLOWLOG HELP`
fn slowlog_help(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        help(
            &mut c.out,
            "SLOWLOG",
            &[
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
            ],
        );
        Ok(())
    })
}

// ---- ROLE --------------------------------------------------------------------------------

/// `ROLE`: basalt is always a master without replicas (replication offset 0, as INFO's
/// `master_repl_offset`).
fn role(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        c.out.array(3);
        c.out.bulk(b"master");
        c.out.int(0);
        c.out.array(0);
        Ok(())
    })
}

// ---- LATENCY -----------------------------------------------------------------------------

fn latency_lock(c: &Client) -> std::sync::MutexGuard<'_, LatencyMonitor> {
    c.shard
        .local
        .shared
        .latency_events
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// `LATENCY LATEST`: every event with its latest sample and its all-time maximum.
fn latency_latest(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let m = latency_lock(c);
        let events: Vec<_> = m
            .events
            .iter()
            .map(|(e, ts)| (*e, ts.samples.back().copied(), ts.max))
            .collect();
        drop(m);
        c.out.array(events.len());
        for (event, last, max) in events {
            let (time, ms) = last.unwrap_or((0, 0));
            c.out.array(4);
            c.out.bulk(event.as_bytes());
            c.out.int(time as i64);
            c.out.int(ms as i64);
            c.out.int(max as i64);
        }
        Ok(())
    })
}

/// `LATENCY HISTORY event`: the event's samples, oldest first.
fn latency_history(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let samples: Vec<(u64, u64)> = latency_lock(c)
            .get(&a[2])
            .map(|ts| ts.samples.iter().copied().collect())
            .unwrap_or_default();
        c.out.array(samples.len());
        for (time, ms) in samples {
            c.out.array(2);
            c.out.int(time as i64);
            c.out.int(ms as i64);
        }
        Ok(())
    })
}

/// `LATENCY RESET [event ...]`: how many events were dropped.
fn latency_reset(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let mut m = latency_lock(c);
        let n = if a.len() == 2 {
            m.reset(None)
        } else {
            (2..a.len()).map(|i| m.reset(Some(&a[i]))).sum()
        };
        drop(m);
        c.out.int(n as i64);
        Ok(())
    })
}

/// `LATENCY GRAPH event`: Redis draws an ASCII sparkline; basalt does not draw it.
fn latency_graph(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        if latency_lock(c).get(&a[2]).is_none() {
            let event = String::from_utf8_lossy(&a[2]).into_owned();
            return Err(CmdError::Custom(format!(
                "ERR No samples available for event '{event}'"
            )));
        }
        Err(CmdError::Static(
            "ERR LATENCY GRAPH is not supported by basalt; LATENCY HISTORY has the same samples",
        ))
    })
}

/// `LATENCY DOCTOR`: Redis's report (createLatencyReport) for the events basalt samples.
fn latency_doctor(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let (threshold, slower) = {
            let cfg = c.shard.local.shared.config.read();
            (cfg.latency_monitor_threshold, cfg.slowlog_log_slower_than)
        };
        let events = latency_lock(c).events.clone();
        let now = unix_us() / 1_000_000;
        let report = latency_report(&events, threshold, slower, anon_huge_pages() > 0, now);
        c.out.verbatim("txt", report.as_bytes());
        Ok(())
    })
}

/// AnonHugePages of this process in kB (Redis's THPGetAnonHugePagesSize), 0 if unknown.
fn anon_huge_pages() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/smaps_rollup") else {
        return 0;
    };
    s.lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// createLatencyReport, for the events basalt records (command, fast-command, expire-cycle).
fn latency_report(
    events: &[(&'static str, LatencySeries)],
    threshold: u64,
    slower_than_us: i64,
    thp: bool,
    now: u64,
) -> String {
    use std::fmt::Write as _;
    if events.is_empty() && threshold == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".to_string();
    }
    let mut r = String::new();
    let (mut slowlog_enabled, mut slowlog_tuning, mut slowlog_inspect) = (false, false, false);
    let (mut scheduler, mut hz, mut large_objects) = (false, false, false);
    let mut advices = 0;
    for (n, (event, ts)) in events.iter().enumerate() {
        if n == 0 {
            r.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
        }
        // analyzeLatencyForEvent
        let k = ts.samples.len() as u64;
        let (avg, mad, period) = match ts.samples.iter().map(|s| s.1).sum::<u64>().checked_div(k) {
            None => (0, 0, 0),
            Some(avg) => {
                let mad = ts.samples.iter().map(|s| s.1.abs_diff(avg)).sum::<u64>() / k;
                let oldest = ts.samples.iter().map(|s| s.0).min().unwrap_or(now);
                (avg, mad, now.saturating_sub(oldest).max(1))
            }
        };
        let _ = write!(
            r,
            "{}. {}: {} latency spikes (average {}ms, mean deviation {}ms, period {:.2} sec). Worst all time event {}ms.",
            n + 1,
            event,
            k,
            avg,
            mad,
            period as f64 / k as f64,
            ts.max
        );
        match *event {
            "command" => {
                if slower_than_us < 0 {
                    slowlog_enabled = true;
                    advices += 1;
                } else if (slower_than_us / 1000) as u64 > threshold {
                    slowlog_tuning = true;
                    advices += 1;
                }
                slowlog_inspect = true;
                large_objects = true;
                advices += 2;
            }
            "fast-command" => {
                scheduler = true;
                advices += 1;
            }
            "expire-cycle" => {
                hz = true;
                large_objects = true;
                advices += 2;
            }
            _ => {}
        }
        r.push('\n');
    }
    if thp {
        advices += 1;
    }
    if events.is_empty() && advices == 0 {
        r.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n");
        return r;
    }
    if !events.is_empty() && advices == 0 {
        r.push_str("\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis community to get some help, providing this report in your help request.\n");
        return r;
    }
    r.push_str("\nI have a few advices for you:\n\n");
    if slowlog_enabled {
        let _ = writeln!(r, "- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log Redis feature using the command 'CONFIG SET slowlog-log-slower-than {}'. If the Slow log is disabled Redis is not able to log slow commands execution for you.", threshold * 1000);
    }
    if slowlog_tuning {
        let _ = writeln!(r, "- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {}'.", threshold * 1000);
    }
    if slowlog_inspect {
        r.push_str("- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n");
    }
    if scheduler {
        r.push_str("- The system is slow to execute Redis code paths not containing system calls. This usually means the system does not provide Redis CPU time to run for long periods. You should try to:\n  1) Lower the system load.\n  2) Use a computer / VM just for Redis if you are running other software in the same system.\n  3) Check if you have a \"noisy neighbour\" problem.\n  4) Check with 'redis-cli --intrinsic-latency 100' what is the intrinsic latency in your system.\n  5) Check if the problem is allocator-related by recompiling Redis with MALLOC=libc, if you are using Jemalloc. However this may create fragmentation problems.\n");
    }
    if hz {
        r.push_str("- In order to make the Redis keys expiring process more incremental, try to set the 'hz' configuration parameter to 100 using 'CONFIG SET hz 100'.\n");
    }
    if large_objects {
        r.push_str("- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n");
    }
    if thp {
        r.push_str("- I detected a non zero amount of anonymous huge pages used by your process. This creates very serious latency events in different conditions, especially when Redis is persisting on disk. To disable THP support use the command 'echo never > /sys/kernel/mm/transparent_hugepage/enabled', make sure to also add it into /etc/rc.local so that the command will be executed again after a reboot. Note that even if you have already disabled THP, you still need to restart the Redis process to get rid of the huge pages already created.\n");
    }
    r
}

/// `LATENCY HISTOGRAM [command ...]`: each command's cumulative latency distribution
/// (latency-tracking's histograms, summed over shards). Unknown names are skipped; a
/// container names its subcommands.
fn latency_histogram(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let per_shard = c.shard.hop_all(|sh| sh.local.stats.borrow().latency.clone()).await?;
        let mut merged = vec![None; table::len()];
        for hists in &per_shard {
            add_latency(&mut merged, hists);
        }
        let wanted: Vec<&'static Cmd> = if a.len() == 2 {
            table::all().iter().collect()
        } else {
            let mut v = Vec::new();
            for cmd in (2..a.len()).filter_map(|i| table::lookup_full(&a[i])) {
                v.push(cmd);
                v.extend(table::subcommands(cmd));
            }
            v
        };
        // (name, calls, cumulative distribution)
        type Row<'a> = (&'a str, u64, Vec<(u64, u64)>);
        let rows: Vec<Row> = wanted
            .iter()
            .filter_map(|cmd| {
                let h = merged.get(cmd.id)?.as_ref()?;
                Some((cmd.full_name.as_str(), h.len(), latency_cdf(h)))
            })
            .collect();
        c.out.map(rows.len());
        for (name, calls, cdf) in rows {
            c.out.bulk(name.as_bytes());
            c.out.map(2);
            c.out.bulk(b"calls");
            c.out.int(calls as i64);
            c.out.bulk(b"histogram_usec");
            c.out.map(cdf.len());
            for (us, n) in cdf {
                c.out.int(us as i64);
                c.out.int(n as i64);
            }
        }
        Ok(())
    })
}

/// `LATENCY HELP`
fn latency_help(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        help(
            &mut c.out,
            "LATENCY",
            &[
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "GRAPH <event>",
                "    Return an ASCII latency graph for the <event> class.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
                "HISTOGRAM [COMMAND ...]",
                "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
                "    If no commands are specified then all histograms are replied.",
            ],
        );
        Ok(())
    })
}

// ---- DEBUG -------------------------------------------------------------------------------

const DEBUG_NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

/// `DEBUG <subcommand> [arg ...]`: SLEEP, SET-ACTIVE-EXPIRE, LOG, PANIC and HELP. Redis's other
/// subcommands inspect or break its internals and answer the unknown-subcommand error here.
fn debug(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        if !c
            .shard
            .local
            .shared
            .config
            .read()
            .enable_debug_command
            .allows(is_local(c))
        {
            return Err(CmdError::Static(DEBUG_NOT_ALLOWED));
        }
        let sub = a[1].to_ascii_lowercase();
        match (sub.as_slice(), a.len()) {
            (b"help", 2) => help(
                &mut c.out,
                "DEBUG",
                &[
                    "LOG <message>",
                    "    Write <message> to the server log.",
                    "PANIC",
                    "    Crash the server simulating a panic.",
                    "SET-ACTIVE-EXPIRE <0|1>",
                    "    Setting it to 0 disables expiring keys in background when they are not",
                    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
                    "    default.",
                    "SLEEP <seconds>",
                    "    Stop the server for <seconds>. Decimals allowed.",
                ],
            ),
            (b"sleep", 3) => {
                // Redis stops the whole server; here the shard thread that serves this
                // client stops (its other clients and hops to it wait), which is what tests
                // use it for: a command that is slow.
                let secs = strtod_prefix(&a[2]);
                if let Ok(d) = Duration::try_from_secs_f64(secs) {
                    std::thread::sleep(d);
                }
                c.out.ok();
            }
            (b"set-active-expire", 3) => {
                ACTIVE_EXPIRE.store(atoi(&a[2]) != 0, Ordering::Relaxed);
                c.out.ok();
            }
            (b"log", 3) => {
                tracing::warn!("DEBUG LOG: {}", String::from_utf8_lossy(&a[2]));
                c.out.ok();
            }
            // A bug's panic on purpose, on this client's shard: the process ends there
            // (`logging::crash_on_panic`), as Redis's DEBUG PANIC.
            (b"panic", 2) => panic!("DEBUG PANIC called at Unix time {}", crate::server::unix_ms() / 1000),
            _ => return Err(CmdError::sub_syntax(&a[1], "DEBUG")),
        }
        Ok(())
    })
}

// ---- the table ---------------------------------------------------------------------------

/// `WAIT numreplicas timeout`: basalt has no replicas, so none ever acknowledges, as for a
/// Redis primary without replicas: 0 at once when none is asked for (or inside EXEC), else 0
/// after `timeout` milliseconds (0: until CLIENT UNBLOCK or the client leaves).
fn wait(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let numreplicas = a.int(1)?;
        let deadline = ms_deadline(&a[2], unix_ms())?;
        if numreplicas > 0 && !c.in_exec {
            crate::server::blocking::park(c, deadline).await?;
        }
        c.out.int(0);
        Ok(())
    })
}

/// A millisecond timeout as Redis's getTimeoutFromObjectOrReply reads it (UNIT_MILLISECONDS):
/// the absolute deadline in unix ms, 0 for "forever".
pub fn ms_deadline(arg: &[u8], now: u64) -> Result<u64, CmdError> {
    match parse_i64(arg) {
        None => Err(CmdError::Static("ERR timeout is not an integer or out of range")),
        Some(t) if t < 0 => Err(CmdError::Static("ERR timeout is negative")),
        Some(0) => Ok(0),
        Some(t) if t as u64 > i64::MAX as u64 - now => Err(CmdError::Static("ERR timeout is out of range")),
        Some(t) => Ok(now + t as u64),
    }
}

const WAITAOF_NO_AOF: CmdError =
    CmdError::Static("ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.");

/// How often a WAITAOF waiting for the next fsync looks at the persistence core's progress.
const WAITAOF_POLL_MS: u64 = 10;

/// `WAITAOF numlocal numreplicas timeout` (Redis 7.2): `[local, replicas]`, where `local` is
/// 1 once an fsync of the AOF covers the client's own writes (its `woff`, see
/// `Client::wait_durable`) and `replicas` is always 0 (no replicas). Blocks until both are
/// reached or the timeout passes; inside EXEC it answers at once.
fn waitaof(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let numlocal = int_in_range(&a[1], 0, 1)?;
        let numreplicas = positive(&a[2])?;
        let deadline = ms_deadline(&a[3], unix_ms())?;
        let aof_on = |c: &Client| c.shard.local.cfg.borrow().appendonly;
        if numlocal == 1 && !aof_on(c) {
            return Err(WAITAOF_NO_AOF);
        }
        // The client's writes, those earlier in this batch included, have tickets below
        // its `woff` once they are written; other clients' later writes are not waited for.
        c.wait_durable().await;
        let target = c.woff;
        let shared = c.shard.local.shared.clone();
        let local = || (shared.persist.synced.load(Ordering::SeqCst) >= target) as i64;
        while !c.in_exec && (numreplicas > 0 || local() < numlocal) {
            let now = unix_ms();
            if deadline != 0 && now >= deadline {
                break;
            }
            let tick = now + WAITAOF_POLL_MS;
            let until = if deadline == 0 { tick } else { tick.min(deadline) };
            // Each park looks at the client's descriptor as it starts.
            if !matches!(crate::server::blocking::park(c, until).await?, Parked::Timeout) {
                break;
            }
            if numlocal == 1 && !aof_on(c) {
                return Err(WAITAOF_NO_AOF);
            }
        }
        c.out.array(2);
        c.out.int(if aof_on(c) { local() } else { 0 });
        c.out.int(0);
        Ok(())
    })
}

const SERVER: &str = "server";
const ADMIN_CMD: u32 = ADMIN | NOSCRIPT | LOADING | STALE;

static CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "get",
        arity: -3,
        flags: ADMIN_CMD,
        group: SERVER,
        since: "2.0.0",
        summary: "Returns the effective values of configuration parameters.",
        complexity: "O(N) when N is the number of configuration parameters provided",
        syntax: "parameter [parameter ...]",
        run: Run::Conn(config_get),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "set",
        arity: -4,
        flags: ADMIN_CMD,
        group: SERVER,
        since: "2.0.0",
        summary: "Sets configuration parameters in-flight.",
        complexity: "O(N) when N is the number of configuration parameters provided",
        syntax: "parameter value [parameter value ...]",
        tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
        run: Run::Conn(config_set),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "resetstat",
        arity: 2,
        flags: ADMIN_CMD,
        group: SERVER,
        since: "2.0.0",
        summary: "Resets the server's statistics.",
        run: Run::Conn(config_resetstat),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "rewrite",
        arity: 2,
        flags: ADMIN_CMD,
        group: SERVER,
        since: "2.8.0",
        summary: "Persists the effective configuration to file.",
        run: Run::Conn(config_rewrite),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "help",
        arity: 2,
        flags: LOADING | STALE,
        group: SERVER,
        since: "5.0.0",
        summary: "Returns helpful text about the different subcommands.",
        run: Run::Conn(config_help),
        ..CommandSpec::DEFAULT
    },
];

static SLOWLOG_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "get",
        arity: -2,
        flags: ADMIN | LOADING | STALE,
        group: SERVER,
        since: "2.2.12",
        summary: "Returns the slow log's entries.",
        complexity: "O(N) where N is the number of entries returned",
        syntax: "[count]",
        tips: &["request_policy:all_nodes", "nondeterministic_output"],
        run: Run::Conn(slowlog_get),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "len",
        arity: 2,
        flags: ADMIN | LOADING | STALE,
        group: SERVER,
        since: "2.2.12",
        summary: "Returns the number of entries in the slow log.",
        tips: &[
            "request_policy:all_nodes",
            "response_policy:agg_sum",
            "nondeterministic_output",
        ],
        run: Run::Conn(slowlog_len),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "reset",
        arity: 2,
        flags: ADMIN | LOADING | STALE,
        group: SERVER,
        since: "2.2.12",
        summary: "Clears all entries from the slow log.",
        complexity: "O(N) where N is the number of entries in the slowlog",
        tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
        run: Run::Conn(slowlog_reset),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "help",
        arity: 2,
        flags: LOADING | STALE,
        group: SERVER,
        since: "6.2.0",
        summary: "Show helpful text about the different subcommands",
        run: Run::Conn(slowlog_help),
        ..CommandSpec::DEFAULT
    },
];

const LATENCY_TIPS: &[&str] = &[
    "nondeterministic_output",
    "request_policy:all_nodes",
    "response_policy:special",
];

static LATENCY_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "doctor",
        arity: 2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        group: SERVER,
        since: "2.8.13",
        summary: "Returns a human-readable latency analysis report.",
        tips: LATENCY_TIPS,
        run: Run::Conn(latency_doctor),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "graph",
        arity: 3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        group: SERVER,
        since: "2.8.13",
        summary: "Returns a latency graph for an event.",
        syntax: "event",
        tips: LATENCY_TIPS,
        run: Run::Conn(latency_graph),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "histogram",
        arity: -2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        group: SERVER,
        since: "7.0.0",
        summary: "Returns the cumulative distribution of latencies of a subset or all commands.",
        complexity: "O(N) where N is the number of commands with latency information being retrieved.",
        syntax: "[command [command ...]]",
        tips: LATENCY_TIPS,
        run: Run::Conn(latency_histogram),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "history",
        arity: 3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        group: SERVER,
        since: "2.8.13",
        summary: "Returns timestamp-latency samples for an event.",
        syntax: "event",
        tips: LATENCY_TIPS,
        run: Run::Conn(latency_history),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "latest",
        arity: 2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        group: SERVER,
        since: "2.8.13",
        summary: "Returns the latest latency samples for all events.",
        tips: LATENCY_TIPS,
        run: Run::Conn(latency_latest),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "reset",
        arity: -2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        group: SERVER,
        since: "2.8.13",
        summary: "Resets the latency data for one or more events.",
        syntax: "[event [event ...]]",
        tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
        run: Run::Conn(latency_reset),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "help",
        arity: 2,
        flags: LOADING | STALE,
        group: SERVER,
        since: "2.8.13",
        summary: "Returns helpful text about the different subcommands.",
        run: Run::Conn(latency_help),
        ..CommandSpec::DEFAULT
    },
];

const KEYSPACE_DANGEROUS: u32 = acl::KEYSPACE | acl::DANGEROUS;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "dbsize",
        arity: 1,
        flags: READONLY | FAST,
        acl: acl::KEYSPACE,
        group: SERVER,
        summary: "Returns the number of keys in the database.",
        tips: &["request_policy:all_shards", "response_policy:agg_sum"],
        run: Run::Conn(dbsize),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "flushdb",
        arity: -1,
        flags: WRITE,
        acl: KEYSPACE_DANGEROUS,
        group: SERVER,
        summary: "Removes all keys from the current database.",
        complexity: "O(N) where N is the number of keys in the selected database",
        syntax: "[ASYNC | SYNC]",
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        run: Run::Conn(flushdb),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "flushall",
        arity: -1,
        flags: WRITE,
        acl: KEYSPACE_DANGEROUS,
        group: SERVER,
        summary: "Removes all keys from all databases.",
        complexity: "O(N) where N is the total number of keys in all databases",
        syntax: "[ASYNC | SYNC]",
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        run: Run::Conn(flushall),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "swapdb",
        arity: 3,
        flags: WRITE | FAST,
        acl: KEYSPACE_DANGEROUS,
        group: SERVER,
        since: "4.0.0",
        summary: "Swaps two Redis databases.",
        complexity: "O(N) where N is the count of clients watching or blocking on keys from both databases.",
        syntax: "index1 index2",
        run: Run::Conn(swapdb),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "wait",
        arity: 3,
        flags: NOSCRIPT,
        acl: acl::CONNECTION,
        group: "generic",
        since: "3.0.0",
        summary: "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.",
        tips: &["request_policy:all_shards", "response_policy:agg_min"],
        syntax: "numreplicas timeout",
        run: Run::Conn(wait),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "waitaof",
        arity: 4,
        flags: NOSCRIPT,
        acl: acl::CONNECTION,
        group: "generic",
        since: "7.2.0",
        summary: "Blocks until all of the preceding write commands sent by the connection are written to the append-only file of the master and/or replicas.",
        tips: &["request_policy:all_shards", "response_policy:agg_min"],
        syntax: "numlocal numreplicas timeout",
        run: Run::Conn(waitaof),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "time",
        arity: 1,
        flags: LOADING | STALE | FAST,
        group: SERVER,
        since: "2.6.0",
        summary: "Returns the server time.",
        tips: &["nondeterministic_output"],
        run: Run::Conn(time),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "info",
        arity: -1,
        flags: LOADING | STALE,
        acl: acl::DANGEROUS,
        group: SERVER,
        summary: "Returns information and statistics about the server.",
        syntax: "[section [section ...]]",
        tips: &[
            "nondeterministic_output",
            "request_policy:all_shards",
            "response_policy:special",
        ],
        run: Run::Conn(info),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "config",
        arity: -2,
        group: SERVER,
        since: "2.0.0",
        summary: "A container for server configuration commands.",
        complexity: "Depends on subcommand.",
        subcommands: CONFIG_SUBCOMMANDS,
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "shutdown",
        arity: -1,
        flags: ADMIN_CMD | NO_MULTI | ALLOW_BUSY,
        group: SERVER,
        summary: "Synchronously saves the database(s) to disk and shuts down the Redis server.",
        complexity:
            "O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)",
        syntax: "[NOSAVE | SAVE] [NOW] [FORCE] [ABORT]",
        run: Run::Conn(shutdown),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "lastsave",
        arity: 1,
        flags: LOADING | STALE | FAST,
        acl: acl::ADMIN | acl::DANGEROUS,
        group: SERVER,
        summary: "Returns the Unix timestamp of the last successful save to disk.",
        tips: &["nondeterministic_output"],
        run: Run::Conn(lastsave),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "role",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | FAST,
        acl: acl::ADMIN | acl::DANGEROUS,
        group: SERVER,
        since: "2.8.12",
        summary: "Returns the replication role.",
        run: Run::Conn(role),
        ..CommandSpec::DEFAULT
    },
    // Redis declares no complexity for MONITOR.
    CommandSpec {
        name: "monitor",
        arity: 1,
        flags: ADMIN_CMD,
        group: SERVER,
        summary: "Listens for all requests received by the server in real-time.",
        complexity: "",
        run: Run::Conn(monitor),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "slowlog",
        arity: -2,
        group: SERVER,
        since: "2.2.12",
        summary: "A container for slow log commands.",
        complexity: "Depends on subcommand.",
        subcommands: SLOWLOG_SUBCOMMANDS,
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "latency",
        arity: -2,
        group: SERVER,
        since: "2.8.13",
        summary: "A container for latency diagnostics commands.",
        complexity: "Depends on subcommand.",
        subcommands: LATENCY_SUBCOMMANDS,
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "debug",
        arity: -2,
        flags: ADMIN_CMD,
        group: SERVER,
        summary: "A container for debugging commands.",
        complexity: "Depends on subcommand.",
        run: Run::Conn(debug),
        ..CommandSpec::DEFAULT
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::Proto;
    use crate::store::{Str, Value};
    use bytes::Bytes;

    fn args(v: &[&str]) -> Args {
        Args::new(v.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect())
    }

    fn put(store: &mut Store, db: usize, key: &str) {
        store.dbs[db].set(key.as_bytes(), Value::Str(Str::from_set(b"v")), false);
    }

    #[test]
    fn flush_modes_follow_get_flush_command_flags() {
        assert_eq!(flush_mode(&args(&["flushall"]), false), Ok(false));
        assert_eq!(flush_mode(&args(&["flushall"]), true), Ok(true));
        assert_eq!(flush_mode(&args(&["flushall", "async"]), false), Ok(true));
        assert_eq!(flush_mode(&args(&["flushall", "SYNC"]), true), Ok(false));
        assert_eq!(flush_mode(&args(&["flushall", "foo"]), false), Err(CmdError::Syntax));
        assert_eq!(
            flush_mode(&args(&["flushall", "async", "sync"]), false),
            Err(CmdError::Syntax)
        );
    }

    #[test]
    fn take_one_or_every_db() {
        let mut store = Store::new(4);
        put(&mut store, 0, "a");
        put(&mut store, 0, "b");
        put(&mut store, 2, "c");
        let (n, old) = take_dbs(&mut store, Some(2));
        assert_eq!((n, old.len()), (1, 1));
        assert_eq!(store.keys(), 2);
        let (n, old) = take_dbs(&mut store, None);
        assert_eq!((n, old.len()), (2, 1));
        assert_eq!(store.keys(), 0);
        free_dbs(old, n, true);
    }

    #[test]
    fn lazy_free_of_many_keys_runs_in_the_background() {
        let mut store = Store::new(1);
        for i in 0..500 {
            put(&mut store, 0, &format!("k{i}"));
        }
        let before = LAZYFREED.load(Ordering::Relaxed);
        let (n, old) = take_dbs(&mut store, None);
        free_dbs(old, n, true);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while LAZYFREED.load(Ordering::Relaxed) < before + 500 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(LAZYFREED.load(Ordering::Relaxed) >= before + 500);
    }

    #[test]
    fn swap_keeps_ttls_and_is_symmetric() {
        let mut store = Store::new(3);
        put(&mut store, 0, "k");
        store.dbs[0].set_expire(b"k", 12345);
        put(&mut store, 2, "x");
        put(&mut store, 2, "y");
        swap_dbs(&mut store, 2, 0);
        assert_eq!((store.dbs[0].len(), store.dbs[2].len()), (2, 1));
        assert_eq!(store.dbs[2].expire_at(b"k"), Some(12345));
        swap_dbs(&mut store, 1, 1);
        swap_dbs(&mut store, 0, 2);
        assert_eq!((store.dbs[0].len(), store.dbs[2].len()), (1, 2));
    }

    #[test]
    fn swapdb_index_errors() {
        let a = args(&["swapdb", "a", "1.5"]);
        assert_eq!(
            int_arg(&a, 1, "ERR invalid first DB index").unwrap_err().to_string(),
            "ERR invalid first DB index"
        );
        assert!(int_arg(&a, 2, "ERR invalid second DB index").is_err());
        let a = args(&["swapdb", "99999999999", "-3"]);
        assert!(int_arg(&a, 1, "x").is_err());
        assert_eq!(int_arg(&a, 2, "x"), Ok(-3));
    }

    #[test]
    fn shutdown_grammar() {
        let p = |v: &[&str]| parse_shutdown(&args(v));
        assert_eq!(p(&["shutdown"]), Ok(ShutdownOpts::default()));
        assert_eq!(
            p(&["shutdown", "NOSAVE", "now", "Force"]),
            Ok(ShutdownOpts {
                nosave: true,
                now: true,
                force: true,
                ..Default::default()
            })
        );
        assert_eq!(
            p(&["shutdown", "abort", "abort"]),
            Ok(ShutdownOpts {
                abort: true,
                ..Default::default()
            })
        );
        for bad in [
            &["shutdown", "foo"][..],
            &["shutdown", "nosave", "save"],
            &["shutdown", "abort", "now"],
            &["shutdown", "nosave", "abort"],
        ] {
            assert_eq!(p(bad), Err(CmdError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn c_number_prefixes() {
        assert_eq!(strtod_prefix(b"0.5"), 0.5);
        assert_eq!(strtod_prefix(b" 2abc"), 2.0);
        assert_eq!(strtod_prefix(b"1e-3x"), 0.001);
        assert_eq!(strtod_prefix(b"abc"), 0.0);
        assert_eq!(strtod_prefix(b"-1"), -1.0);
        assert!(Duration::try_from_secs_f64(strtod_prefix(b"-1")).is_err());
        assert_eq!(atoi(b"1"), 1);
        assert_eq!(atoi(b" -12x"), -12);
        assert_eq!(atoi(b"yes"), 0);
    }

    #[test]
    fn help_has_redis_shape() {
        let mut out = Reply::new(Proto::Resp2);
        help(&mut out, "SLOWLOG", &["LEN", "    Return the length of the slowlog."]);
        assert_eq!(
            &out.take()[..],
            &b"*5\r\n+SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n+LEN\r\n+    Return the length of the slowlog.\r\n+HELP\r\n+    Prints this help.\r\n"[..]
        );
    }

    #[test]
    fn latency_report_like_redis() {
        let off = latency_report(&[], 0, 10_000, false, 100);
        assert!(off.starts_with("I'm sorry, Dave, I can't do that."));
        let quiet = latency_report(&[], 5, 10_000, false, 100);
        assert!(quiet.starts_with("Dave, no latency spike was observed"));
        let mut m = LatencyMonitor::default();
        m.add("command", 10, 90);
        m.add("command", 30, 95);
        let r = latency_report(&m.events, 5, 10_000, false, 100);
        assert!(r.contains("1. command: 2 latency spikes (average 20ms, mean deviation 10ms, period 5.00 sec). Worst all time event 30ms.\n"), "{r}");
        // slowlog-log-slower-than 10 ms is above the 5 ms threshold: Redis advises lowering it.
        assert!(r.contains("'CONFIG SET slowlog-log-slower-than 5000'"), "{r}");
        assert!(r.contains("- Check your Slow Log"), "{r}");
    }

    #[test]
    fn slowlog_entries_newest_first() {
        let mut log = SlowLog::default();
        let cmd = [
            Bytes::from_static(b"SET"),
            Bytes::from_static(b"k"),
            Bytes::from_static(b"v"),
        ];
        log.push(&cmd, 7, 100, "127.0.0.1:5000".into(), "me".into(), 10);
        log.push(&cmd[..1], 9, 101, "127.0.0.1:5000".into(), String::new(), 10);
        let mut out = Reply::new(Proto::Resp3);
        reply_slowlog(&mut out, &log, 1);
        assert_eq!(
            &out.take()[..],
            &b"*1\r\n*6\r\n:1\r\n:101\r\n:9\r\n*1\r\n$3\r\nSET\r\n$14\r\n127.0.0.1:5000\r\n$0\r\n\r\n"[..]
        );
        reply_slowlog(&mut out, &log, usize::MAX);
        let all = out.take();
        assert!(all.starts_with(b"*2\r\n"));
        assert!(all.ends_with(b"$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$14\r\n127.0.0.1:5000\r\n$2\r\nme\r\n"));
        reply_slowlog(&mut out, &log, 0);
        assert_eq!(&out.take()[..], b"*0\r\n");
    }

    #[test]
    fn specs_match_redis_categories() {
        let find = |n: &str| COMMANDS.iter().find(|c| c.name == n).unwrap();
        assert_eq!(
            find("lastsave").acl_categories(),
            acl::ADMIN | acl::FAST | acl::DANGEROUS
        );
        assert_eq!(
            find("swapdb").acl_categories(),
            acl::KEYSPACE | acl::WRITE | acl::FAST | acl::DANGEROUS
        );
        assert_eq!(find("info").acl_categories(), acl::SLOW | acl::DANGEROUS);
        assert_eq!(find("dbsize").acl_categories(), acl::KEYSPACE | acl::READ | acl::FAST);
    }
}
