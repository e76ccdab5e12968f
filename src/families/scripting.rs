//! Scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, FCALL, FCALL_RO, SCRIPT and FUNCTION. The
//! machinery (the per-thread Lua VM and its coroutine, the Redis API, conversions,
//! libraries) lives in `crate::scripting`; here: where a script runs, holding what.
//!
//! A script runs one of three ways:
//! - **Sent to its shard** ([`run_here`]): its declared keys all live on one shard and its
//!   runs only ever touched declared keys ([`placement`]; always so with one shard).
//!   Dispatch treats it like a keyed command: inline on the connection's own shard, else
//!   batched with the pipeline's other commands for that shard. It runs on that shard's
//!   thread holding only that shard, with no message of its own.
//! - **Reserving** ([`run_script`]): the connection's home shard reserves every shard (its
//!   reach is unknown, or it touched undeclared keys), or the one shard when a script sent
//!   there could not run (another script was paused on that thread), and runs the script
//!   on its own thread over the lent keyspaces.
//! - **Inside EXEC** ([`run_in_transaction`]): under the transaction's reservation.
//!
//! A run holding fewer shards than it reaches for is voided if it had not written yet (and
//! repeated holding every shard); after a write the call fails (see `vm::check_reach`).

use std::rc::Rc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_channel::oneshot;

use super::{boxed, reply_help};
use crate::command::table::Cmd;
use crate::command::{acl, flags::*, Args, Begin, CommandSpec, Find, KeySpec, LocalFuture, Run, ScriptCall};
use crate::error::CmdError;
use crate::persist::Effects;
use crate::resp::Reply;
use crate::scripting::{self, functions, vm, Scope};
use crate::server::client::Client;
use crate::server::dispatch::{record, BatchCtx};
use crate::server::pubsub::Events;
use crate::shard::{Lent, Shard};

/// A script or function call, checked and ready to run.
struct Prepared {
    code: vm::Code,
    numkeys: usize,
    read_only: bool,
}

/// The number of keys of a script command line, with Redis's errors.
fn numkeys(a: &Args, call: ScriptCall) -> Result<usize, CmdError> {
    let bad = if call.function {
        CmdError::Static("ERR Bad number of keys provided")
    } else {
        CmdError::NotInteger
    };
    let n = std::str::from_utf8(&a[2])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(bad)?;
    if n < 0 {
        return Err(CmdError::Static("ERR Number of keys can't be negative"));
    }
    if n as u64 > (a.len() - 3) as u64 {
        return Err(CmdError::Static(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    Ok(n as usize)
}

/// Checks a script command line: the keys, the script (or function) it names, whether it
/// may write.
fn prepare(call: ScriptCall, a: &Args) -> Result<Prepared, CmdError> {
    let numkeys = numkeys(a, call)?;
    let write_flag = CmdError::Static("ERR Can not execute a script with write flag using *_ro command.");
    if call.function {
        let name = String::from_utf8_lossy(&a[1]).into_owned();
        let info = functions::find_function(&name).ok_or(CmdError::Static("ERR Function not found"))?;
        if call.read_only && !info.no_writes() {
            return Err(write_flag);
        }
        return Ok(Prepared {
            code: vm::Code::Function(name),
            numkeys,
            read_only: call.read_only || info.no_writes(),
        });
    }
    let script = if call.by_sha {
        scripting::sha_of(&a[1])
            .and_then(|sha| scripting::lookup(&sha))
            .ok_or(CmdError::Static(scripting::NOSCRIPT))?
    } else {
        scripting::load(a.bytes(1).clone()).map_err(CmdError::Custom)?
    };
    let read_only = match script.shebang {
        Some(sb) if call.read_only && !sb.no_writes => return Err(write_flag),
        Some(sb) => call.read_only || sb.no_writes,
        None => call.read_only,
    };
    Ok(Prepared {
        code: vm::Code::Script(script),
        numkeys,
        read_only,
    })
}

impl Prepared {
    /// What runs taught about the keys this script (by SHA1) or function (by name, within
    /// its library generation) touches.
    fn scope(&self) -> Scope {
        match &self.code {
            vm::Code::Script(s) => s.scope(),
            vm::Code::Function(name) => scripting::function_scope(&function_scope_key(name)),
        }
    }

    fn note_scope(&self, declared_only: bool) {
        match &self.code {
            vm::Code::Script(s) => s.note_scope(declared_only),
            vm::Code::Function(name) => scripting::note_function_scope(&function_scope_key(name), declared_only),
        }
    }

    fn declared<'a>(&self, args: &'a Args) -> &'a [Bytes] {
        &args.as_slice()[3..3 + self.numkeys]
    }
}

fn function_scope_key(name: &str) -> String {
    format!("{}:{name}", functions::generation())
}

/// The one shard a script may run on holding only it: its declared keys all live there and
/// its runs only ever touched declared keys (a script that declares none runs on `home`).
fn narrow_shard(nshards: usize, home: usize, p: &Prepared, args: &Args) -> Option<usize> {
    if nshards == 1 {
        return Some(0);
    }
    if p.scope() != Scope::Declared {
        return None;
    }
    let keys = p.declared(args);
    let Some(first) = keys.first() else {
        return Some(home);
    };
    let s = crate::shard::shard_of(first, nshards);
    keys.iter()
        .all(|k| crate::shard::shard_of(k, nshards) == s)
        .then_some(s)
}

/// Where dispatch sends a script command: the shard it runs on holding only that shard, or
/// None when the home shard must reserve for it (see the module doc). A command line with
/// an error goes home, where running it writes the error.
pub fn placement(sh: &Shard, call: ScriptCall, args: &Args) -> Option<usize> {
    if sh.nshards == 1 {
        return Some(sh.id);
    }
    match prepare(call, args) {
        Ok(p) => narrow_shard(sh.nshards, sh.id, &p, args),
        Err(_) => Some(sh.id),
    }
}

/// How a script sent to a shard ran ([`run_here`]).
pub enum Here {
    /// It ran: its reply is written and it was counted. When it ended.
    Done(Instant),
    /// It paused (a long script): a task on that shard finishes it and sends the result
    /// (or, if the run turned out void, the command line to run reserving).
    Later(oneshot::Receiver<Result<Finished, Args>>),
    /// It could not run there, and nothing happened: the home shard runs it reserving
    /// ([`run_script`]).
    Elsewhere(Args),
}

/// A paused script's outcome, sent to the client's home shard.
pub struct Finished {
    pub reply: BytesMut,
    pub events: Events,
}

/// Runs a script sent to shard `sh` (this thread's), like a keyed command: it holds this
/// shard's gate for the run (and, if it pauses, until it ends), writes its reply to `out`
/// and is counted here. Its keyspace events stay in the thread's list, after those of the
/// commands before it.
pub fn run_here(
    sh: &Rc<Shard>,
    cmd: &'static Cmd,
    call: ScriptCall,
    args: Args,
    ctx: &BatchCtx,
    out: &mut Reply,
    start: Instant,
) -> Here {
    let p = match prepare(call, &args) {
        Ok(p) => p,
        Err(e) => {
            out.error(&e.to_string());
            return Here::Done(record(sh, cmd, start, Some(&e), 0, &args, ctx));
        }
    };
    // Another run may have learned since dispatch placed this one that it reaches further.
    if (sh.nshards > 1 && p.scope() != Scope::Declared) || vm::in_use() {
        return Here::Elsewhere(args);
    }
    let Some(lent) = sh.hold_own() else {
        return Here::Elsewhere(args);
    };
    let fcall = start_fcall(&p, &args);
    let job = vm::Job {
        code: p.code.clone(),
        args,
        numkeys: p.numkeys,
        lent,
        effects: Effects::new(sh.local.effects.borrow().is_enabled()),
        db: ctx.db,
        proto: ctx.proto,
        read_only: p.read_only,
        no_touch: ctx.no_touch,
        shard: sh.clone(),
        start,
    };
    match vm::start(job) {
        vm::Started::Done(done) => {
            end_fcall(fcall);
            match settle_here(sh, &p, done) {
                Ok((reply, events, args)) => {
                    out.raw(&reply);
                    vm::recycle(reply);
                    crate::server::pubsub::restore_events(events);
                    Here::Done(record(sh, cmd, start, None, 0, &args, ctx))
                }
                Err(args) => Here::Elsewhere(args),
            }
        }
        vm::Started::Later(rx) => {
            let (tx, result) = oneshot::channel();
            let (sh, ctx) = (sh.clone(), ctx.clone());
            glommio::spawn_local(async move {
                let finished = match rx.await {
                    Ok(done) => settle_here(&sh, &p, done).map(|(reply, events, args)| {
                        record(&sh, cmd, start, None, 0, &args, &ctx);
                        Finished { reply, events }
                    }),
                    // The script's task is gone (the executor is stopping).
                    Err(_) => {
                        let mut r = Reply::new(ctx.proto);
                        r.error("ERR the script's task stopped");
                        Ok(Finished {
                            reply: r.take(),
                            events: crate::server::pubsub::take_events(),
                        })
                    }
                };
                end_fcall(fcall);
                let _ = tx.send(finished);
            })
            .detach();
            Here::Later(result)
        }
    }
}

/// After a run on its own shard: learns, sends the effects, gives the shard back. A void
/// run gives back the command line (nothing happened, nothing was counted).
fn settle_here(sh: &Rc<Shard>, p: &Prepared, done: vm::Done) -> Result<(BytesMut, Events, Args), Args> {
    if done.undeclared && sh.nshards > 1 {
        p.note_scope(false);
    }
    if done.restart {
        sh.release_own(done.lent);
        return Err(done.args);
    }
    send_effects(sh, done.effects);
    sh.release_own(done.lent);
    Ok((done.out, done.events, done.args))
}

/// FCALL shows in FUNCTION STATS while it runs.
fn start_fcall(p: &Prepared, args: &Args) -> bool {
    let vm::Code::Function(name) = &p.code else {
        return false;
    };
    if let Ok(mut r) = scripting::RUNNING_FUNCTION.lock() {
        *r = Some((name.clone(), args.as_slice().to_vec(), Instant::now()));
    }
    true
}

fn end_fcall(fcall: bool) {
    if fcall {
        if let Ok(mut r) = scripting::RUNNING_FUNCTION.lock() {
            *r = None;
        }
    }
}

/// Sends a script's effects to the persistence core before its shards are released (so the
/// file order is a valid order): one effect as itself, several as one `MULTI ... EXEC`
/// record, as Redis 7 propagates a script (propagatePendingCommands).
fn send_effects(sh: &Rc<Shard>, mut effects: Effects) {
    let Some(core) = sh.local.persist.as_ref() else {
        return;
    };
    if effects.is_empty() {
        return;
    }
    // Effects this shard recorded before the script go first (an earlier ticket).
    sh.flush_effects();
    let Some(record) = effects.take(sh.id) else { return };
    // A record opens with a SELECT: two commands are one effect.
    core.send(if record.commands <= 2 {
        record
    } else {
        record.in_multi()
    });
}

/// Runs a script on this (the client's home) shard's thread, reserving what it needs: its
/// declared keys' shard when its scope allows, else every shard. A narrow run that reaches
/// for another shard before writing is voided and repeated holding every shard.
pub async fn run_script(c: &mut Client, call: ScriptCall, args: Args) -> Result<(), CmdError> {
    let p = prepare(call, &args)?;
    let sh = c.shard.clone();
    let mut args = args;
    if let Some(s) = narrow_shard(sh.nshards, sh.id, &p, &args) {
        let lent = sh.reserve(&[s]).await?;
        match run_reserved(c, &p, args, lent).await? {
            Ok(()) => return Ok(()),
            Err(void) => args = void,
        }
    }
    let all: Vec<usize> = (0..sh.nshards).collect();
    let lent = sh.reserve(&all).await?;
    // Holding every shard, a run cannot be void.
    let _ = run_reserved(c, &p, args, lent).await?;
    Ok(())
}

/// One run over reserved shards: writes the reply, sends the effects, releases. A void run
/// releases and gives back the command line.
async fn run_reserved(c: &mut Client, p: &Prepared, args: Args, lent: Lent) -> Result<Result<(), Args>, CmdError> {
    let sh = c.shard.clone();
    let wide = (0..sh.nshards).all(|s| lent.holds(s));
    let effects = Effects::new(sh.local.effects.borrow().is_enabled());
    let done = run_over(c, p, args, lent, effects).await?;
    if sh.nshards > 1 && (done.undeclared || wide) {
        p.note_scope(!done.undeclared);
    }
    if done.restart {
        sh.release(done.lent).await;
        return Ok(Err(done.args));
    }
    send_effects(&sh, done.effects);
    sh.release(done.lent).await;
    crate::server::pubsub::route_events(&sh, done.events);
    c.out.raw(&done.out);
    vm::recycle(done.out);
    Ok(Ok(()))
}

/// Runs a script on this thread over keyspaces the caller holds; its effects are appended
/// to `effects`.
async fn run_over(
    c: &mut Client,
    p: &Prepared,
    args: Args,
    lent: Lent,
    effects: Effects,
) -> Result<vm::Done, CmdError> {
    let fcall = start_fcall(p, &args);
    let job = vm::Job {
        code: p.code.clone(),
        args,
        numkeys: p.numkeys,
        lent,
        effects,
        db: c.db,
        proto: c.proto,
        read_only: p.read_only,
        no_touch: c.handle.no_touch.get(),
        shard: c.shard.clone(),
        start: Instant::now(),
    };
    let done = match vm::start(job) {
        vm::Started::Done(d) => Ok(d),
        vm::Started::Later(rx) => rx.await,
    };
    end_fcall(fcall);
    done.map_err(|_| CmdError::Static("ERR the script's task stopped"))
}

/// A script queued in MULTI: runs when EXEC reaches it, under EXEC's reservation of every
/// shard, its effects joining the transaction's record.
pub async fn run_in_transaction(
    c: &mut Client,
    call: ScriptCall,
    args: Args,
    lent: Lent,
    effects: Effects,
) -> Result<(Lent, Effects), CmdError> {
    match prepare(call, &args) {
        Ok(p) => {
            let sh = c.shard.clone();
            let done = run_over(c, &p, args, lent, effects).await?;
            crate::server::pubsub::route_events(&sh, done.events);
            c.out.raw(&done.out);
            vm::recycle(done.out);
            Ok((done.lent, done.effects))
        }
        Err(e) => {
            c.out.error(&e.to_string());
            Ok((lent, effects))
        }
    }
}

/// `FUNCTION LOAD [REPLACE] function-code`
fn function_load(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let (replace, code) = match a.len() {
            3 => (false, a.as_slice()[2].clone()),
            4 if a[2].eq_ignore_ascii_case(b"replace") => (true, a.as_slice()[3].clone()),
            4 => {
                return Err(CmdError::Custom(format!(
                    "ERR Unknown option given: {}",
                    String::from_utf8_lossy(&a[2])
                )))
            }
            _ => return Err(CmdError::Syntax),
        };
        let name = functions::parse_metadata(&code).map_err(CmdError::Custom)?;
        if !replace && functions::libraries().iter().any(|l| l.name == name) {
            return Err(CmdError::Custom(format!("ERR Library '{name}' already exists")));
        }
        let funcs = vm::check_library(&code).map_err(CmdError::Custom)?;
        functions::install(
            functions::Library {
                name: name.clone(),
                code,
                functions: funcs,
            },
            replace,
        )
        .map_err(CmdError::Custom)?;
        c.out.bulk(name.as_bytes());
        Ok(())
    })
}

/// `FUNCTION DELETE library-name`
fn function_delete(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        if !functions::delete(&String::from_utf8_lossy(&a[2])) {
            return Err(CmdError::Static("ERR Library not found"));
        }
        c.out.ok();
        Ok(())
    })
}

/// `FUNCTION FLUSH [ASYNC | SYNC]`
fn function_flush(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let ok = match a.len() {
            2 => true,
            3 => a[2].eq_ignore_ascii_case(b"sync") || a[2].eq_ignore_ascii_case(b"async"),
            _ => false,
        };
        if !ok {
            return Err(CmdError::Static("ERR FUNCTION FLUSH only supports SYNC|ASYNC option"));
        }
        functions::flush();
        c.out.ok();
        Ok(())
    })
}

/// `FUNCTION KILL`
fn function_kill(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        scripting::kill(true).map_err(CmdError::Static)?;
        c.out.ok();
        Ok(())
    })
}

/// `FUNCTION LIST [LIBRARYNAME library-name-pattern] [WITHCODE]`
fn function_list(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let (mut pattern, mut with_code) = (None, false);
        let mut i = 2;
        while i < a.len() {
            if a[i].eq_ignore_ascii_case(b"withcode") {
                if with_code {
                    return Err(CmdError::Static("ERR Unknown argument withcode"));
                }
                with_code = true;
            } else if a[i].eq_ignore_ascii_case(b"libraryname") {
                if pattern.is_some() {
                    return Err(CmdError::Static("ERR library name argument was already given"));
                }
                i += 1;
                if i >= a.len() {
                    return Err(CmdError::Static("ERR library name argument was not given"));
                }
                pattern = Some(a.as_slice()[i].clone());
            } else {
                return Err(CmdError::Custom(format!(
                    "ERR Unknown argument {}",
                    String::from_utf8_lossy(&a[i])
                )));
            }
            i += 1;
        }
        let libs: Vec<_> = functions::libraries()
            .into_iter()
            .filter(|l| {
                pattern
                    .as_ref()
                    .is_none_or(|p| crate::config::glob::glob_match(p, l.name.as_bytes(), false))
            })
            .collect();
        let out = &mut c.out;
        out.array(libs.len());
        for l in &libs {
            out.map(if with_code { 4 } else { 3 });
            out.bulk(b"library_name");
            out.bulk(l.name.as_bytes());
            out.bulk(b"engine");
            out.bulk(b"LUA");
            out.bulk(b"functions");
            out.array(l.functions.len());
            for f in &l.functions {
                out.map(3);
                out.bulk(b"name");
                out.bulk(f.name.as_bytes());
                out.bulk(b"description");
                match &f.description {
                    Some(d) => out.bulk(d.as_bytes()),
                    None => out.null(),
                }
                out.bulk(b"flags");
                out.set(f.flags.len());
                for fl in &f.flags {
                    out.simple(fl);
                }
            }
            if with_code {
                out.bulk(b"library_code");
                out.bulk(&l.code);
            }
        }
        Ok(())
    })
}

/// `FUNCTION DUMP`
fn function_dump(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        c.out.bulk(&functions::dump());
        Ok(())
    })
}

/// `FUNCTION RESTORE serialized-value [FLUSH | APPEND | REPLACE]`
fn function_restore(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let policy = match a.len() {
            3 => "append".to_string(),
            4 => a[3].to_ascii_lowercase().iter().map(|&b| b as char).collect(),
            _ => return Err(CmdError::Syntax),
        };
        if !matches!(policy.as_str(), "append" | "replace" | "flush") {
            return Err(CmdError::Static(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ));
        }
        let codes = functions::parse_dump(&a[2]).map_err(CmdError::Custom)?;
        // Check everything first: a failed restore changes nothing.
        let mut libs = Vec::new();
        for code in codes {
            let name = functions::parse_metadata(&code).map_err(CmdError::Custom)?;
            let funcs = vm::check_library(&code).map_err(CmdError::Custom)?;
            libs.push(functions::Library {
                name,
                code,
                functions: funcs,
            });
        }
        if policy == "append" {
            let existing = functions::libraries();
            if let Some(l) = libs.iter().find(|l| existing.iter().any(|e| e.name == l.name)) {
                return Err(CmdError::Custom(format!("ERR Library {} already exists", l.name)));
            }
        }
        if policy == "flush" {
            functions::flush();
        }
        for l in libs {
            functions::install(l, policy != "append").map_err(CmdError::Custom)?;
        }
        c.out.ok();
        Ok(())
    })
}

/// `FUNCTION HELP`
fn function_help(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        reply_help(
            &mut c.out,
            &[
                "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "LOAD [REPLACE] <FUNCTION CODE>",
                "    Create a new library with the given library name and code.",
                "DELETE <LIBRARY NAME>",
                "    Delete the given library.",
                "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
                "    Return general information on all the libraries:",
                "    * Library name",
                "    * The engine used to run the Library",
                "    * Library description",
                "    * Functions list",
                "    * Library code (if WITHCODE is given)",
                "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
                "STATS",
                "    Return information about the current function running:",
                "    * Function name",
                "    * Command used to run the function",
                "    * Duration in MS that the function is running",
                "    If no function is running, return nil",
                "    In addition, returns a list of available engines.",
                "KILL",
                "    Kill the current running function.",
                "FLUSH [ASYNC|SYNC]",
                "    Delete all the libraries.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the libraries.",
                "    * SYNC: Synchronously flush the libraries.",
                "DUMP",
                "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
                "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
                "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
                "    control how to handle existing libraries (default APPEND):",
                "    * FLUSH: delete all existing libraries.",
                "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
                "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
                "      libraries with the new libraries (notice that even on this option there is a chance of failure",
                "      in case of functions name collision with another library).",
                "HELP",
                "    Prints this help.",
            ],
        );
        Ok(())
    })
}

/// `FUNCTION STATS`
fn function_stats(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let libs = functions::libraries();
        let nfuncs: usize = libs.iter().map(|l| l.functions.len()).sum();
        let out = &mut c.out;
        out.map(2);
        out.bulk(b"running_script");
        let running = scripting::RUNNING_FUNCTION.lock().ok().and_then(|r| r.clone());
        match running {
            Some((name, argv, start)) => {
                out.map(3);
                out.bulk(b"name");
                out.bulk(name.as_bytes());
                out.bulk(b"command");
                out.array(argv.len());
                for a in &argv {
                    out.bulk(a);
                }
                out.bulk(b"duration_ms");
                out.int(start.elapsed().as_millis() as i64);
            }
            None => out.null(),
        }
        out.bulk(b"engines");
        out.map(1);
        out.bulk(b"LUA");
        out.map(2);
        out.bulk(b"libraries_count");
        out.int(libs.len() as i64);
        out.bulk(b"functions_count");
        out.int(nfuncs as i64);
        Ok(())
    })
}

/// `SCRIPT LOAD script`
fn script_load(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let script = scripting::load(a.as_slice()[2].clone()).map_err(CmdError::Custom)?;
        c.out.bulk(&script.sha);
        Ok(())
    })
}

/// `SCRIPT EXISTS sha1 [sha1 ...]`
fn script_exists(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let shas = &a.as_slice()[2..];
        c.out.array(shas.len());
        for s in shas {
            let known = scripting::sha_of(s).is_some_and(|sha| scripting::lookup(&sha).is_some());
            c.out.int(known as i64);
        }
        Ok(())
    })
}

/// `SCRIPT FLUSH [ASYNC | SYNC]`
fn script_flush(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let ok = match a.len() {
            2 => true,
            3 => a[2].eq_ignore_ascii_case(b"sync") || a[2].eq_ignore_ascii_case(b"async"),
            _ => false,
        };
        if !ok {
            return Err(CmdError::Static("ERR SCRIPT FLUSH only support SYNC|ASYNC option"));
        }
        scripting::cache_flush();
        c.out.ok();
        Ok(())
    })
}

/// `SCRIPT KILL`
fn script_kill(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        scripting::kill(false).map_err(CmdError::Static)?;
        c.out.ok();
        Ok(())
    })
}

/// `SCRIPT HELP`
fn script_help(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        reply_help(
            &mut c.out,
            &[
                "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
                "HELP",
                "    Prints this help.",
            ],
        );
        Ok(())
    })
}

const EVAL_KEYS: &[KeySpec] = &[KeySpec {
    flags: &["RW", "ACCESS", "UPDATE"],
    begin: Begin::Index(2),
    find: Find::Keynum {
        keynumidx: 0,
        firstkey: 1,
        step: 1,
    },
    notes: "We cannot tell how the keys will be used so we assume the worst, RW and UPDATE",
}];

const EVAL_RO_KEYS: &[KeySpec] = &[KeySpec {
    flags: &["RO", "ACCESS"],
    begin: Begin::Index(2),
    find: Find::Keynum {
        keynumidx: 0,
        firstkey: 1,
        step: 1,
    },
    notes: "We cannot tell how the keys will be used so we assume the worst, RO and ACCESS",
}];

const EVALSHA_RO_KEYS: &[KeySpec] = &[KeySpec {
    flags: &["RO", "ACCESS"],
    begin: Begin::Index(2),
    find: Find::Keynum {
        keynumidx: 0,
        firstkey: 1,
        step: 1,
    },
    notes: "",
}];

const EVALSHA_KEYS: &[KeySpec] = &[KeySpec {
    flags: &["RW", "ACCESS", "UPDATE"],
    begin: Begin::Index(2),
    find: Find::Keynum {
        keynumidx: 0,
        firstkey: 1,
        step: 1,
    },
    notes: "",
}];

const EVAL_SYNTAX: &str = "script numkeys [key [key ...]] [arg [arg ...]]";
const EVALSHA_SYNTAX: &str = "sha1 numkeys [key [key ...]] [arg [arg ...]]";

const FCALL_KEYS: &[KeySpec] = &[KeySpec {
    flags: &["RW", "ACCESS", "UPDATE"],
    begin: Begin::Index(2),
    find: Find::Keynum {
        keynumidx: 0,
        firstkey: 1,
        step: 1,
    },
    notes: "We cannot tell how the keys will be used so we assume the worst, RW and UPDATE",
}];

const fn fsub(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    syntax: &'static str,
    tips: &'static [&'static str],
    run: crate::command::ConnFn,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        acl: acl::SCRIPTING,
        group: "scripting",
        since: "7.0.0",
        summary,
        complexity: "O(N) where N is the number of functions",
        syntax,
        tips,
        run: Run::Conn(run),
        ..CommandSpec::DEFAULT
    }
}

const ALL_SUCCEEDED: &[&str] = &["request_policy:all_shards", "response_policy:all_succeeded"];

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "fcall",
        arity: -3,
        flags: NOSCRIPT | SKIP_MONITOR | MAY_REPLICATE | NO_MANDATORY_KEYS | STALE,
        acl: acl::SCRIPTING,
        key_specs: FCALL_KEYS,
        group: "scripting",
        since: "7.0.0",
        summary: "Invokes a function.",
        complexity: "Depends on the function that is executed.",
        syntax: "function numkeys [key [key ...]] [arg [arg ...]]",
        run: Run::Script(ScriptCall { function: true, by_sha: false, read_only: false }),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "fcall_ro",
        arity: -3,
        flags: NOSCRIPT | SKIP_MONITOR | NO_MANDATORY_KEYS | STALE | READONLY,
        acl: acl::SCRIPTING,
        key_specs: EVAL_RO_KEYS,
        group: "scripting",
        since: "7.0.0",
        summary: "Invokes a read-only function.",
        complexity: "Depends on the function that is executed.",
        syntax: "function numkeys [key [key ...]] [arg [arg ...]]",
        run: Run::Script(ScriptCall { function: true, by_sha: false, read_only: true }),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "function",
        arity: -2,
        group: "scripting",
        since: "7.0.0",
        summary: "A container for function commands.",
        complexity: "Depends on subcommand.",
        subcommands: &[
            fsub("flush", -2, NOSCRIPT | WRITE, "Deletes all libraries and functions.", "[ASYNC | SYNC]", ALL_SUCCEEDED, function_flush),
            fsub("list", -2, NOSCRIPT, "Returns information about all libraries.", "[LIBRARYNAME library-name-pattern] [WITHCODE]", &["nondeterministic_output_order"], function_list),
            fsub("delete", 3, NOSCRIPT | WRITE, "Deletes a library and its functions.", "library-name", ALL_SUCCEEDED, function_delete),
            fsub("stats", 2, NOSCRIPT | ALLOW_BUSY, "Returns information about a function during execution.", "", &["nondeterministic_output", "request_policy:all_shards", "response_policy:special"], function_stats),
            fsub("load", -3, NOSCRIPT | WRITE | DENYOOM, "Creates a library.", "[REPLACE] function-code", ALL_SUCCEEDED, function_load),
            fsub("help", 2, LOADING | STALE, "Returns helpful text about the different subcommands.", "", &[], function_help),
            fsub("kill", 2, NOSCRIPT | ALLOW_BUSY, "Terminates a function during execution.", "", &["request_policy:all_shards", "response_policy:one_succeeded"], function_kill),
            fsub("dump", 2, NOSCRIPT, "Dumps all libraries into a serialized binary payload.", "", &[], function_dump),
            fsub("restore", -3, NOSCRIPT | WRITE | DENYOOM, "Restores all libraries from a payload.", "serialized-value [FLUSH | APPEND | REPLACE]", ALL_SUCCEEDED, function_restore),
        ],
        ..CommandSpec::DEFAULT
    },

    CommandSpec {
        name: "eval",
        arity: -3,
        flags: NOSCRIPT | SKIP_MONITOR | MAY_REPLICATE | NO_MANDATORY_KEYS | STALE,
        acl: acl::SCRIPTING,
        key_specs: EVAL_KEYS,
        group: "scripting",
        since: "2.6.0",
        summary: "Executes a server-side Lua script.",
        complexity: "Depends on the script that is executed.",
        syntax: EVAL_SYNTAX,
        run: Run::Script(ScriptCall { function: false, by_sha: false, read_only: false }),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "evalsha",
        arity: -3,
        flags: NOSCRIPT | SKIP_MONITOR | MAY_REPLICATE | NO_MANDATORY_KEYS | STALE,
        acl: acl::SCRIPTING,
        key_specs: EVALSHA_KEYS,
        group: "scripting",
        since: "2.6.0",
        summary: "Executes a server-side Lua script by SHA1 digest.",
        complexity: "Depends on the script that is executed.",
        syntax: EVALSHA_SYNTAX,
        run: Run::Script(ScriptCall { function: false, by_sha: true, read_only: false }),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "eval_ro",
        arity: -3,
        flags: NOSCRIPT | SKIP_MONITOR | NO_MANDATORY_KEYS | STALE | READONLY,
        acl: acl::SCRIPTING,
        key_specs: EVAL_RO_KEYS,
        group: "scripting",
        since: "7.0.0",
        summary: "Executes a read-only server-side Lua script.",
        complexity: "Depends on the script that is executed.",
        syntax: EVAL_SYNTAX,
        run: Run::Script(ScriptCall { function: false, by_sha: false, read_only: true }),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "evalsha_ro",
        arity: -3,
        flags: NOSCRIPT | SKIP_MONITOR | NO_MANDATORY_KEYS | STALE | READONLY,
        acl: acl::SCRIPTING,
        key_specs: EVALSHA_RO_KEYS,
        group: "scripting",
        since: "7.0.0",
        summary: "Executes a read-only server-side Lua script by SHA1 digest.",
        complexity: "Depends on the script that is executed.",
        syntax: EVALSHA_SYNTAX,
        run: Run::Script(ScriptCall { function: false, by_sha: true, read_only: true }),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "script",
        arity: -2,
        group: "scripting",
        since: "2.6.0",
        summary: "A container for Lua scripts management commands.",
        complexity: "Depends on subcommand.",
        subcommands: &[
            CommandSpec {
                name: "load",
                arity: 3,
                flags: NOSCRIPT | STALE,
                acl: acl::SCRIPTING,
                group: "scripting",
                since: "2.6.0",
                summary: "Loads a server-side Lua script to the script cache.",
                complexity: "O(N) with N being the length in bytes of the script body.",
                syntax: "script",
                tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
                run: Run::Conn(script_load),
                ..CommandSpec::DEFAULT
            },
            CommandSpec {
                name: "exists",
                arity: -3,
                flags: NOSCRIPT,
                acl: acl::SCRIPTING,
                group: "scripting",
                since: "2.6.0",
                summary: "Determines whether server-side Lua scripts exist in the script cache.",
                complexity: "O(N) with N being the number of scripts to check (so checking a single script is an O(1) operation).",
                syntax: "sha1 [sha1 ...]",
                tips: &["request_policy:all_shards", "response_policy:agg_logical_and"],
                run: Run::Conn(script_exists),
                ..CommandSpec::DEFAULT
            },
            CommandSpec {
                name: "flush",
                arity: -2,
                flags: NOSCRIPT,
                acl: acl::SCRIPTING,
                group: "scripting",
                since: "2.6.0",
                summary: "Removes all server-side Lua scripts from the script cache.",
                complexity: "O(N) with N being the number of scripts in cache",
                syntax: "[ASYNC | SYNC]",
                tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
                run: Run::Conn(script_flush),
                ..CommandSpec::DEFAULT
            },
            CommandSpec {
                name: "help",
                arity: 2,
                flags: LOADING | STALE,
                acl: acl::SCRIPTING,
                group: "scripting",
                since: "5.0.0",
                summary: "Returns helpful text about the different subcommands.",
                complexity: "O(1)",
                run: Run::Conn(script_help),
                ..CommandSpec::DEFAULT
            },
            CommandSpec {
                name: "kill",
                arity: 2,
                flags: NOSCRIPT | ALLOW_BUSY,
                acl: acl::SCRIPTING,
                group: "scripting",
                since: "2.6.0",
                summary: "Terminates a server-side Lua script during execution.",
                complexity: "O(1)",
                tips: &["request_policy:all_shards", "response_policy:one_succeeded"],
                run: Run::Conn(script_kill),
                ..CommandSpec::DEFAULT
            },
        ],
        ..CommandSpec::DEFAULT
    },
];
