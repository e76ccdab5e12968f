//! Scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT. The machinery (the per-thread
//! Lua VM and its coroutine, the Redis API, conversions, libraries) lives in
//! `crate::scripting`; these handlers parse arguments, reserve every shard for the script's
//! run, start it and, once it is done, enqueue its effects as one record and release the shards.

use bytes::Bytes;

use super::{boxed, reply_help};
use crate::command::table::Cmd;
use crate::command::{acl, flags::*, Args, Begin, CommandSpec, Find, KeySpec, LocalFuture, Run};
use crate::error::CmdError;
use crate::persist::Effects;
use crate::scripting::{self, functions, vm};
use crate::server::client::Client;
use crate::shard::Lent;

/// Numkeys, keys and arguments of EVAL-like commands, with Redis's errors.
fn split_keys(a: &Args) -> Result<(Vec<Bytes>, Vec<Bytes>), CmdError> {
    let n = std::str::from_utf8(&a[2])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(CmdError::NotInteger)?;
    if n < 0 {
        return Err(CmdError::Static("ERR Number of keys can't be negative"));
    }
    let rest = &a.as_slice()[3..];
    if n as u64 > rest.len() as u64 {
        return Err(CmdError::Static(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let (k, v) = rest.split_at(n as usize);
    Ok((k.to_vec(), v.to_vec()))
}

/// A script or function call, checked and ready to run.
#[derive(Clone)]
struct Prepared {
    /// SHA1 of the script, or the function's name.
    sha: String,
    function: bool,
    body: Bytes,
    keys: Vec<Bytes>,
    argv: Vec<Bytes>,
    read_only: bool,
    /// FCALL's command line, for FUNCTION STATS.
    argv_all: Option<Vec<Bytes>>,
}

/// `EVAL script numkeys [key [key ...]] [arg [arg ...]]` and the _RO / SHA variants.
fn prepare_eval(a: &Args, by_sha: bool, read_only: bool) -> Result<Prepared, CmdError> {
    let (keys, argv) = split_keys(a)?;
    let (sha, body) = if by_sha {
        let sha = String::from_utf8_lossy(&a[1]).to_ascii_lowercase();
        let body = scripting::cache_get(&sha).ok_or(CmdError::Static(scripting::NOSCRIPT))?;
        (sha, body)
    } else {
        let body = a.as_slice()[1].clone();
        let sha = scripting::sha1_hex(&body);
        if scripting::cache_get(&sha).is_none() {
            scripting::parse_shebang(&body).map_err(CmdError::Custom)?;
            vm::compile_check(&body).map_err(CmdError::Custom)?;
            scripting::cache_put(sha.clone(), body.clone());
        }
        (sha, body)
    };
    let shebang = scripting::parse_shebang(&body).map_err(CmdError::Custom)?;
    let read_only = match shebang {
        Some(sb) if read_only && !sb.no_writes => {
            return Err(CmdError::Static(
                "ERR Can not execute a script with write flag using *_ro command.",
            ))
        }
        Some(sb) => read_only || sb.no_writes,
        None => read_only,
    };
    Ok(Prepared {
        sha,
        function: false,
        body,
        keys,
        argv,
        read_only,
        argv_all: None,
    })
}

/// Checks any of EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, FCALL, FCALL_RO.
fn prepare(name: &str, a: &Args) -> Result<Prepared, CmdError> {
    match name {
        "eval" => prepare_eval(a, false, false),
        "evalsha" => prepare_eval(a, true, false),
        "eval_ro" => prepare_eval(a, false, true),
        "evalsha_ro" => prepare_eval(a, true, true),
        "fcall" => prepare_fcall(a, false),
        _ => prepare_fcall(a, true),
    }
}

/// True for the commands that run a script (MULTI/EXEC runs them under its reservation).
pub fn is_script_command(name: &str) -> bool {
    matches!(
        name,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
    )
}

/// Runs a script over keyspaces the caller reserved (every shard), writing its reply to
/// the client; its effects are appended to `effects`. Gives both back.
async fn run_over(c: &mut Client, p: Prepared, lent: Lent, effects: Effects) -> Result<(Lent, Effects), CmdError> {
    let (lent, effects, _) = run_over_reach(c, p, lent, effects).await?;
    Ok((lent, effects))
}

/// How a run went, for [`run_script`]'s choice of shards.
struct Reach {
    /// The run is void and must be repeated holding every shard (see `vm::Done::restart`).
    restart: bool,
    /// The script touched a key it did not declare.
    undeclared: bool,
}

/// [`run_over`], also telling how the script reached for keys. A void run writes nothing.
async fn run_over_reach(
    c: &mut Client,
    p: Prepared,
    lent: Lent,
    effects: Effects,
) -> Result<(Lent, Effects, Reach), CmdError> {
    let sh = c.shard.clone();
    let (databases, enc) = {
        let cfg = sh.local.cfg.borrow();
        (cfg.databases, cfg.enc)
    };
    let busy_ms = sh.local.shared.config.read().busy_reply_threshold;
    let job = vm::Job {
        sha: p.sha.clone(),
        function: p.function,
        body: p.body,
        keys: p.keys,
        argv: p.argv,
        lent,
        db: c.db,
        proto: c.proto,
        read_only: p.read_only,
        no_touch: c.handle.no_touch.get(),
        databases,
        enc,
        effects,
        busy_ms,
        shared: sh.local.shared.clone(),
    };
    let fcall = p.argv_all.is_some();
    if let Some(argv) = p.argv_all {
        if let Ok(mut r) = scripting::RUNNING_FUNCTION.lock() {
            *r = Some((p.sha, argv, std::time::Instant::now()));
        }
    }
    let done = match vm::start(job) {
        vm::Started::Done(d) => Ok(d),
        vm::Started::Later(rx) => rx.await,
    };
    if fcall {
        if let Ok(mut r) = scripting::RUNNING_FUNCTION.lock() {
            *r = None;
        }
    }
    let done = done.map_err(|_| CmdError::Static("ERR the script's task stopped"))?;
    let reach = Reach {
        restart: done.restart,
        undeclared: done.undeclared,
    };
    if reach.restart {
        return Ok((done.lent, done.effects, reach));
    }
    {
        let mut stats = sh.local.stats.borrow_mut();
        stats.dirty += done.dirty;
        for call in &done.calls {
            stats.total_commands += 1;
            let s = &mut stats.commands[call.cmd.id];
            s.calls += 1;
            s.usec += call.usec;
            if let Some(code) = &call.err {
                s.failed += 1;
                stats.error(code);
            }
        }
        if let Some(code) = &done.err {
            stats.error(code);
        }
    }
    crate::server::pubsub::route_events(&sh, done.events);
    c.out.raw(&done.out);
    Ok((done.lent, done.effects, reach))
}

/// Runs a script on this shard's thread, holding the shards it needs.
///
/// A script may touch keys it did not declare, so by default it holds every shard. Once a
/// script (by SHA1, or function name and library generation) has run touching only the keys
/// it declared, and those are all on one shard, later runs hold only that shard, so scripts
/// on different shards run in parallel and a run costs no hop. If such a run reaches
/// for another shard before writing, it is voided and repeated holding every shard; the
/// script is marked as one that touches undeclared keys and holds every shard from then on.
async fn run_script(c: &mut Client, p: Prepared) -> Result<(), CmdError> {
    let sh = c.shard.clone();
    let scope = scope_key(&p);
    if let Some(home) = narrow_shard(&sh, &p, &scope) {
        let lent = sh.reserve(&[home]).await?;
        let effects = Effects::new(sh.local.effects.borrow().is_enabled());
        let (lent, effects, reach) = run_over_reach(c, p.clone(), lent, effects).await?;
        if reach.undeclared {
            scripting::note_scope(&scope, false);
        }
        if !reach.restart {
            sh.send_effects_atomic(effects).await;
            sh.release(lent).await;
            return Ok(());
        }
        // Void: nothing was written and nothing is sent; run again holding every shard.
        sh.release(lent).await;
    }
    let all: Vec<usize> = (0..sh.nshards).collect();
    let lent = sh.reserve(&all).await?;
    let effects = Effects::new(sh.local.effects.borrow().is_enabled());
    let (lent, effects, reach) = run_over_reach(c, p, lent, effects).await?;
    if sh.nshards > 1 {
        scripting::note_scope(&scope, !reach.undeclared);
    }
    // One MULTI/EXEC record before the shards are released: the file order is a valid order.
    sh.send_effects_atomic(effects).await;
    sh.release(lent).await;
    Ok(())
}

/// What a script's learned scope is filed under: the SHA1 (content-addressed), or for a
/// function its name within the current library generation.
fn scope_key(p: &Prepared) -> String {
    if p.function {
        format!("{}:{}", scripting::functions::generation(), p.sha)
    } else {
        p.sha.clone()
    }
}

/// The one shard a script may run holding alone: its declared keys are all there and it has
/// only ever touched declared keys.
fn narrow_shard(sh: &crate::shard::Shard, p: &Prepared, scope: &str) -> Option<usize> {
    let first = p.keys.first()?;
    if sh.nshards == 1 || !scripting::declared_only(scope) {
        return None;
    }
    let home = crate::shard::slot::shard_of(first, sh.nshards);
    p.keys
        .iter()
        .all(|k| crate::shard::slot::shard_of(k, sh.nshards) == home)
        .then_some(home)
}

/// A script queued in MULTI: runs when EXEC reaches it, under EXEC's reservation of every
/// shard, its effects joining the transaction's record.
pub async fn run_in_transaction(
    c: &mut Client,
    cmd: &Cmd,
    args: &Args,
    lent: Lent,
    effects: Effects,
) -> Result<(Lent, Effects), CmdError> {
    match prepare(cmd.spec.name, args) {
        Ok(p) => run_over(c, p, lent, effects).await,
        Err(e) => {
            c.out.error(&e.to_string());
            Ok((lent, effects))
        }
    }
}

async fn eval_generic(c: &mut Client, a: Args, by_sha: bool, read_only: bool) -> Result<(), CmdError> {
    let p = prepare_eval(&a, by_sha, read_only)?;
    run_script(c, p).await
}

fn eval(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(eval_generic(c, a, false, false))
}

fn evalsha(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(eval_generic(c, a, true, false))
}

fn eval_ro(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(eval_generic(c, a, false, true))
}

fn evalsha_ro(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(eval_generic(c, a, true, true))
}

/// `FCALL function numkeys [key [key ...]] [arg [arg ...]]` and FCALL_RO.
fn prepare_fcall(a: &Args, read_only: bool) -> Result<Prepared, CmdError> {
    let n = std::str::from_utf8(&a[2])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(CmdError::Static("ERR Bad number of keys provided"))?;
    if n < 0 {
        return Err(CmdError::Static("ERR Number of keys can't be negative"));
    }
    let rest = &a.as_slice()[3..];
    if n as u64 > rest.len() as u64 {
        return Err(CmdError::Static(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let (keys, argv) = rest.split_at(n as usize);
    let name = String::from_utf8_lossy(&a[1]).into_owned();
    let info = functions::find_function(&name).ok_or(CmdError::Static("ERR Function not found"))?;
    if read_only && !info.no_writes() {
        return Err(CmdError::Static(
            "ERR Can not execute a script with write flag using *_ro command.",
        ));
    }
    Ok(Prepared {
        sha: name,
        function: true,
        body: Bytes::new(),
        keys: keys.to_vec(),
        argv: argv.to_vec(),
        read_only: read_only || info.no_writes(),
        argv_all: Some(a.as_slice().to_vec()),
    })
}

async fn fcall_generic(c: &mut Client, a: Args, read_only: bool) -> Result<(), CmdError> {
    let p = prepare_fcall(&a, read_only)?;
    run_script(c, p).await
}

fn fcall(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(fcall_generic(c, a, false))
}

fn fcall_ro(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(fcall_generic(c, a, true))
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
        let body = a.as_slice()[2].clone();
        let sha = scripting::sha1_hex(&body);
        if scripting::cache_get(&sha).is_none() {
            scripting::parse_shebang(&body).map_err(CmdError::Custom)?;
            vm::compile_check(&body).map_err(CmdError::Custom)?;
            scripting::cache_put(sha.clone(), body);
        }
        c.out.bulk(sha.as_bytes());
        Ok(())
    })
}

/// `SCRIPT EXISTS sha1 [sha1 ...]`
fn script_exists(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let shas = &a.as_slice()[2..];
        c.out.array(shas.len());
        for s in shas {
            let sha = String::from_utf8_lossy(s).to_ascii_lowercase();
            c.out.int(scripting::cache_get(&sha).is_some() as i64);
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
        run: Run::Conn(fcall),
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
        run: Run::Conn(fcall_ro),
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
        run: Run::Conn(eval),
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
        run: Run::Conn(evalsha),
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
        run: Run::Conn(eval_ro),
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
        run: Run::Conn(evalsha_ro),
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
