//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! MULTI queues commands in the connection (dispatch calls [`queue`]). EXEC reserves every
//! shard the queued commands' keys live on (ascending order, like any multi-shard atomic
//! command), checks the WATCH flag while holding them, runs the queued handlers one after
//! another over the reserved keyspaces, enqueues their effects as one `MULTI ... EXEC`
//! record and releases the shards. No other client sees the shards in between, so none
//! observes part of a transaction; blocked clients are served after it (on release).
//!
//! WATCH registers one flag per client on each watched key's shard; the shard raises it when
//! the key is written, deleted or expires, and FLUSHDB/FLUSHALL/SWAPDB raise it for watched
//! keys that exist (see `Db::touch_watched`). A key that had already expired when WATCHed
//! (still stored, deadline passed) did not exist for the watcher: its deletion is no
//! change. WATCH also keeps a live key's deadline in the client: once it has passed at EXEC
//! the key has logically changed and EXEC fails, whether or not the key is still stored
//! (Redis's isWatchedKeyExpired). Nothing can change the deadline without raising the flag,
//! so the kept deadline is the key's own.
//!
//! Connection-level commands that touch no keyspace (PING, ECHO, SELECT, TIME, ...) run inside
//! the transaction in order. Ones that visit shards themselves (FLUSHALL, DBSIZE, KEYS,
//! INFO, ...) cannot run while the transaction holds those shards: a transaction containing
//! one runs command by command instead, each command still atomic on its own (documented in
//! the README as a deviation).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::boxed;
use crate::command::table::Cmd;
use crate::command::{acl, flags::*, Args, CommandSpec, Exec, Keyspace, LocalFuture, Run};
use crate::error::CmdError;
use crate::persist::Effects;
use crate::server::client::Client;
use crate::server::dispatch::{self, BatchCtx};
use crate::server::unix_ms;
use crate::shard::shard_of;

/// Connection-level commands that may run while a transaction holds its shards: they touch
/// only the connection.
const INLINE_CONN: &[&str] = &[
    "ping",
    "echo",
    "select",
    "time",
    "lastsave",
    "client|getname",
    "client|id",
    // No hop: they count from the subscription directory and queue the message.
    "publish",
    "spublish",
];

/// Commands that run at once even inside MULTI (Redis's processCommand list).
pub fn runs_inside_multi(cmd: &Cmd) -> bool {
    cmd.parent.is_none() && matches!(cmd.spec.name, "exec" | "discard" | "multi" | "watch" | "quit" | "reset")
}

/// Queues a command inside MULTI, answering QUEUED (or the error that flags the
/// transaction, for NO_MULTI commands).
pub fn queue(c: &mut Client, cmd: &'static Cmd, args: Args) {
    if cmd.spec.has(NO_MULTI) {
        c.multi_error = true;
        c.out.error("ERR Command not allowed inside a transaction");
        return;
    }
    if let Some(q) = c.multi.as_mut() {
        q.push((cmd, args));
        c.handle.multi_len.set(q.len() as i64);
    }
    c.out.simple("QUEUED");
}

/// `MULTI`
fn multi(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        if c.multi.is_some() {
            return Err(CmdError::Static("ERR MULTI calls can not be nested"));
        }
        c.multi = Some(Vec::new());
        c.multi_error = false;
        c.handle.multi_len.set(0);
        c.out.ok();
        Ok(())
    })
}

/// `DISCARD`
fn discard(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        if c.multi.take().is_none() {
            return Err(CmdError::Static("ERR DISCARD without MULTI"));
        }
        c.multi_error = false;
        c.handle.multi_len.set(-1);
        unwatch_all(c).await;
        c.out.ok();
        Ok(())
    })
}

/// `WATCH key [key ...]`
fn watch(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        if c.multi.is_some() {
            return Err(CmdError::Static("ERR WATCH inside MULTI is not allowed"));
        }
        let flag = match &c.watching {
            Some((flag, _)) => flag.clone(),
            None => Arc::new(AtomicBool::new(false)),
        };
        let db = c.db;
        let n = c.shard.nshards;
        let mut new_keys = Vec::new();
        for key in &a.as_slice()[1..] {
            let known = c
                .watching
                .as_ref()
                .is_some_and(|(_, keys)| keys.iter().any(|(d, k, _)| *d == db && k == key));
            if !known && !new_keys.iter().any(|k: &Bytes| k == key) {
                new_keys.push(key.clone());
            }
        }
        let mut watched = Vec::with_capacity(new_keys.len());
        for key in new_keys {
            let (key2, flag2) = (key.clone(), flag.clone());
            let deadline = c
                .shard
                .hop_store(shard_of(&key, n), move |st| st.dbs[db].watch(&key2, &flag2, unix_ms()))
                .await?;
            watched.push((db, key, deadline));
        }
        let entry = c.watching.get_or_insert_with(|| (flag, Vec::new()));
        entry.1.extend(watched);
        c.out.ok();
        Ok(())
    })
}

/// `UNWATCH`
fn unwatch(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        unwatch_all(c).await;
        c.out.ok();
        Ok(())
    })
}

/// Drops the client's WATCH registrations on every shard.
pub async fn unwatch_all(c: &mut Client) {
    let Some((flag, keys)) = c.watching.take() else { return };
    let n = c.shard.nshards;
    for (db, key, _) in keys {
        let flag = flag.clone();
        let _ = c
            .shard
            .hop_store(shard_of(&key, n), move |st| st.dbs[db].unwatch(&key, &flag))
            .await;
    }
}

/// On disconnect: the same, without waiting.
pub fn unwatch_in_background(c: &mut Client) {
    let Some((flag, keys)) = c.watching.take() else { return };
    let n = c.shard.nshards;
    for (db, key, _) in keys {
        let (flag, sh) = (flag.clone(), c.shard.clone());
        glommio::spawn_local(async move {
            let _ = sh
                .hop_store(shard_of(&key, n), move |st| st.dbs[db].unwatch(&key, &flag))
                .await;
        })
        .detach();
    }
}

/// Whether EXEC must fail: a watched key was changed, or a key that was live when WATCHed
/// has expired since (see the module comment).
fn watch_failed(c: &Client) -> bool {
    let Some((flag, keys)) = &c.watching else { return false };
    if flag.load(Ordering::Acquire) {
        return true;
    }
    let now = unix_ms();
    keys.iter().any(|(_, _, deadline)| deadline.is_some_and(|at| at <= now))
}

/// `EXEC`
fn exec(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let Some(queued) = c.multi.take() else {
            return Err(CmdError::Static("ERR EXEC without MULTI"));
        };
        c.handle.multi_len.set(-1);
        if std::mem::take(&mut c.multi_error) {
            unwatch_all(c).await;
            return Err(CmdError::Static(
                "EXECABORT Transaction discarded because of previous errors.",
            ));
        }
        c.in_exec = true;
        let r = run_queued(c, queued).await;
        c.in_exec = false;
        r
    })
}

/// Runs a transaction's queued commands: atomically under one reservation of their shards,
/// or command by command when one of them visits shards on its own.
async fn run_queued(c: &mut Client, queued: Vec<(&'static Cmd, Args)>) -> Result<(), CmdError> {
    let n = c.shard.nshards;
    let mut shards = Vec::new();
    let mut inline = true;
    for (cmd, args) in &queued {
        match cmd.spec.run {
            Run::Keyed(..) => {
                if cmd.spec.wide.is_some_and(|wide| wide(args)) {
                    shards.extend(0..n);
                } else {
                    let mut pos = Vec::new();
                    // Key specs were checked when the command was queued.
                    let _ = crate::command::keys::key_positions(cmd.spec.key_specs, args, &mut pos);
                    shards.extend(pos.iter().map(|&p| shard_of(&args[p], n)));
                }
            }
            // Scripts may touch any key: they need every shard, and run under EXEC's
            // reservation (see the Run::Script arm below).
            Run::Script(_) => shards.extend(0..n),
            _ => inline &= INLINE_CONN.contains(&cmd.full_name.as_str()),
        }
    }
    shards.sort_unstable();
    shards.dedup();
    if !inline {
        return exec_stepwise(c, queued).await;
    }
    let sh = c.shard.clone();
    let mut lent = sh.reserve(&shards).await?;
    // Checked while the shards are held: no write to them can fall between the check
    // and the commands.
    if watch_failed(c) {
        sh.release(lent).await;
        unwatch_all(c).await;
        c.out.null_array();
        return Ok(());
    }
    let (databases, enc) = {
        let cfg = sh.local.cfg.borrow();
        (cfg.databases, cfg.enc)
    };
    let mut effects = Effects::new(sh.local.effects.borrow().is_enabled());
    c.out.array(queued.len());
    for (cmd, args) in queued {
        let start = Instant::now();
        match cmd.spec.run {
            Run::Keyed(f, _) => {
                if sh.local.shared.persist.rewrite_in_progress.load(Ordering::Relaxed) {
                    crate::persist::rewrite::before_command_lent(&mut lent, cmd, &args);
                }
                let mut ex = Exec {
                    ks: Keyspace::Lent(&mut lent),
                    db: c.db,
                    now: unix_ms(),
                    out: &mut c.out,
                    effects: &mut effects,
                    dirty: 0,
                    no_touch: c.handle.no_touch.get(),
                    databases,
                    enc,
                    may_block: false,
                    block: None,
                    serving: false,
                };
                let r = f(&mut ex, &args);
                let dirty = ex.dirty;
                if let Err(e) = &r {
                    ex.out.error(&e.to_string());
                }
                drop(ex);
                for s in &shards {
                    effects.take_expired(lent.store(*s));
                }
                sh.local.stats.borrow_mut().dirty += dirty;
                dispatch::record(&sh, cmd, start, r.as_ref().err(), dirty, &args, &BatchCtx::of(c));
            }
            Run::Script(call) => {
                let (l, e) = super::scripting::run_in_transaction(c, call, args.clone(), lent, effects).await?;
                (lent, effects) = (l, e);
                dispatch::record(&sh, cmd, start, None, 0, &args, &BatchCtx::of(c));
            }
            Run::Conn(f) => {
                let record_args = args.clone();
                let r = f(c, args).await;
                if let Err(e) = &r {
                    c.out.error(&e.to_string());
                }
                dispatch::record(&sh, cmd, start, r.as_ref().err(), 0, &record_args, &BatchCtx::of(c));
            }
            Run::Container => c.out.error(&CmdError::WrongArity(cmd.full_name.clone()).to_string()),
        }
    }
    sh.send_effects_atomic(effects);
    sh.release(lent).await;
    unwatch_all(c).await;
    Ok(())
}

/// A transaction with commands that visit shards themselves: run command by command.
async fn exec_stepwise(c: &mut Client, queued: Vec<(&'static Cmd, Args)>) -> Result<(), CmdError> {
    if watch_failed(c) {
        unwatch_all(c).await;
        c.out.null_array();
        return Ok(());
    }
    unwatch_all(c).await;
    c.out.array(queued.len());
    let mut pipeline = dispatch::Pipeline::default();
    for (_, args) in queued {
        pipeline.run(c, vec![args.into_vec()], None).await;
    }
    Ok(())
}

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "multi",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        acl: acl::TRANSACTION,
        group: "transactions",
        since: "1.2.0",
        summary: "Starts a transaction.",
        complexity: "O(1)",
        run: Run::Conn(multi),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "exec",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG,
        acl: acl::TRANSACTION,
        group: "transactions",
        since: "1.2.0",
        summary: "Executes all commands in a transaction.",
        complexity: "Depends on commands in the transaction",
        run: Run::Conn(exec),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "discard",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        acl: acl::TRANSACTION,
        group: "transactions",
        since: "2.0.0",
        summary: "Discards a transaction.",
        complexity: "O(N), when N is the number of queued commands",
        run: Run::Conn(discard),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "watch",
        arity: -2,
        flags: NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        acl: acl::TRANSACTION,
        key_specs: &[crate::command::KeySpec::rest(1, 1, &["RO"])],
        group: "transactions",
        since: "2.2.0",
        summary: "Monitors changes to keys to determine the execution of a transaction.",
        complexity: "O(1) for every key.",
        syntax: "key [key ...]",
        run: Run::Conn(watch),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "unwatch",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        acl: acl::TRANSACTION,
        group: "transactions",
        since: "2.2.0",
        summary: "Forgets about watched keys of a transaction.",
        complexity: "O(1)",
        run: Run::Conn(unwatch),
        ..CommandSpec::DEFAULT
    },
];
