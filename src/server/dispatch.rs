//! Dispatch: from parsed requests to replies, in request order.
//!
//! Checks come first, in Redis's order (processCommand): unknown command or subcommand,
//! arity, authentication, memory. Then each command goes where its keys live:
//!
//! - keys on the home shard, gate open: run inline, no message;
//! - keys on one other shard: appended to a run of consecutive commands for that shard,
//!   which travels as one message (pipelines batch; a shard change or a connection-level
//!   command flushes the run, so commands still execute in the order they were sent);
//! - keys on several shards: split per shard and merged, or run atomically under a
//!   reservation of those shards, as the command's spec says;
//! - connection-level commands (no keys, or keys they route themselves): run here, may hop.

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use crate::command::keys::{for_each_key, key_positions};
use crate::command::table::{self, Cmd};
use crate::command::{flags, Args, Exec, Keyspace, Multi, Run, ScriptCall};
use crate::error::CmdError;
use crate::families::scripting::{self, Here};
use crate::persist::Effects;
use crate::resp::{parse_int_reply, Proto, Reply};
use crate::server::client::{Client, ReplyMode};
use crate::server::unix_ms;
use crate::shard::{shard_of, Shard};

/// Where a checked command goes.
enum Route {
    Keyed {
        cmd: &'static Cmd,
        shard: usize,
    },
    MultiShard {
        cmd: &'static Cmd,
        shards: Vec<usize>,
        positions: Vec<usize>,
    },
    Conn(&'static Cmd),
    /// A script: sent to the shard it may run on holding only that shard (like a keyed
    /// command), or, with none, run by this shard reserving (see `families::scripting`).
    Script {
        cmd: &'static Cmd,
        call: ScriptCall,
        shard: Option<usize>,
    },
}

/// Per-command context that travels with a batch to another shard.
#[derive(Clone)]
pub struct BatchCtx {
    pub db: usize,
    pub proto: Proto,
    pub no_touch: bool,
    /// The client's address and name, which slow log entries record.
    pub addr: std::net::SocketAddr,
    pub name: Option<Bytes>,
}

impl BatchCtx {
    pub fn of(client: &Client) -> BatchCtx {
        BatchCtx {
            db: client.db,
            proto: client.proto,
            no_touch: client.handle.no_touch.get(),
            addr: client.handle.addr,
            name: client.handle.name.borrow().clone(),
        }
    }
}

/// Resolves a request to its command (or subcommand) and runs Redis's pre-execution checks.
fn check(client: &Client, args: &Args, oom: bool) -> Result<Route, CmdError> {
    let top = table::lookup(&args[0]).ok_or_else(|| CmdError::unknown_command(args.as_slice()))?;
    // A container with a handler of its own (COMMAND) runs it when no subcommand is given.
    let cmd = if top.spec.subcommands.is_empty() || (args.len() < 2 && !matches!(top.spec.run, Run::Container)) {
        top
    } else if args.len() < 2 {
        return Err(CmdError::WrongArity(top.full_name.clone()));
    } else {
        table::lookup_sub(top, &args[1]).ok_or_else(|| CmdError::UnknownSubcommand {
            sub: crate::error::echo(crate::error::c_str(&args[1], 128)),
            cmd: top.spec.name.to_ascii_uppercase(),
        })?
    };
    if !cmd.spec.arity_ok(args.len()) {
        return Err(CmdError::WrongArity(cmd.full_name.clone()));
    }
    let local = &client.shard.local;
    let cfg = local.cfg.borrow();
    if !client.authenticated && cfg.requirepass.is_some() && !cmd.spec.has(flags::NO_AUTH) {
        return Err(CmdError::NoAuth);
    }
    drop(cfg);
    // processCommand: over maxmemory with nothing left to evict (`oom`, see `evict`), refuse
    // what may grow memory: denyoom commands, an EXEC whose queue holds one, and inside
    // MULTI anything but EXEC, DISCARD, QUIT and RESET (queueing itself takes memory).
    if oom {
        let name = cmd.spec.name;
        let refuse = match &client.multi {
            _ if cmd.spec.has(flags::DENYOOM) => true,
            Some(queued) if name == "exec" => queued.iter().any(|(c, _)| c.spec.has(flags::DENYOOM)),
            Some(_) => !matches!(name, "discard" | "quit" | "reset"),
            None => false,
        };
        if refuse {
            return Err(CmdError::Oom);
        }
    }
    // Redis refuses writes (and PING) while the AOF cannot be written (processCommand).
    if cmd.spec.has(flags::WRITE) || cmd.spec.name == "ping" {
        if let Some(errno) = local.shared.persist.write_error() {
            return Err(CmdError::Custom(crate::persist::misconf(errno)));
        }
    }
    // RESP2 subscribed mode (RESP3 clients may run anything while subscribed).
    if client.proto == Proto::Resp2
        && client.handle.pubsub.active()
        && !crate::families::pubsub::allowed_when_subscribed(cmd)
    {
        return Err(CmdError::Custom(format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            cmd.full_name
        )));
    }
    // Loading the data set: only commands flagged `loading` run (Redis's processCommand).
    if !cmd.spec.has(flags::LOADING) && local.shared.persist.loading.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(CmdError::Static(crate::persist::LOADING_ERR));
    }
    // A script past busy-reply-threshold holds every shard: answer now instead of waiting.
    if crate::scripting::is_busy() && !cmd.spec.has(flags::ALLOW_BUSY) {
        return Err(CmdError::Static(crate::scripting::busy_error()));
    }
    match cmd.spec.run {
        Run::Keyed(..) => {
            let n = client.shard.nshards;
            let (mut first, mut spans) = (usize::MAX, false);
            let found = for_each_key(cmd.spec.key_specs, args, |p| {
                let s = shard_of(&args[p], n);
                if first == usize::MAX {
                    first = s;
                } else if s != first {
                    spans = true;
                }
            });
            if found.is_err() {
                // A bad key count: the handler refuses it with the command's own error
                // ("numkeys should be greater than 0", ...) before touching any key.
                return Ok(Route::Keyed {
                    cmd,
                    shard: client.shard.id,
                });
            }
            if cmd.spec.wide.is_some_and(|wide| wide(args)) {
                return Ok(Route::MultiShard {
                    cmd,
                    shards: (0..n).collect(),
                    positions: Vec::new(),
                });
            }
            if !spans {
                let shard = if first == usize::MAX { client.shard.id } else { first };
                return Ok(Route::Keyed { cmd, shard });
            }
            let mut positions = Vec::new();
            key_positions(cmd.spec.key_specs, args, &mut positions).map_err(|_| CmdError::Syntax)?;
            let mut shards: Vec<usize> = positions.iter().map(|&p| shard_of(&args[p], n)).collect();
            shards.sort_unstable();
            shards.dedup();
            Ok(Route::MultiShard { cmd, shards, positions })
        }
        Run::Conn(_) => Ok(Route::Conn(cmd)),
        Run::Script(call) => Ok(Route::Script {
            cmd,
            call,
            // Inside MULTI it is only queued: nothing to place (and the script is not
            // looked at before EXEC, as in Redis).
            shard: match client.multi {
                Some(_) => None,
                None => scripting::placement(&client.shard, call, args),
            },
        }),
        Run::Container => Err(CmdError::WrongArity(cmd.full_name.clone())),
    }
}

/// How a keyed command runs on a shard.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExecMode {
    /// An ordinary command: blocked clients its writes made ready are served after it.
    Normal,
    /// A blocking command's first try: it may ask to block instead of replying.
    MayBlock,
    /// Serving a blocked client whose keys all live on this shard.
    Serve,
    /// Serving a blocked client with keys on other shards too: those read as missing.
    ServeOnly,
}

/// Runs a keyed command's handler over this shard's store, recording stats. Synchronous:
/// called inline on the home shard or inside an op on the owning shard.
pub fn exec_keyed(sh: &Rc<Shard>, cmd: &Cmd, args: &Args, ctx: &BatchCtx, out: &mut Reply) {
    exec_keyed_at(sh, cmd, args, ctx, out, Instant::now());
}

/// [`exec_keyed`] for a command that starts at `start` (the end of the command before it in
/// the same batch, so a batch reads the clock once per command). Returns when it ended.
pub fn exec_keyed_at(
    sh: &Rc<Shard>,
    cmd: &Cmd,
    args: &Args,
    ctx: &BatchCtx,
    out: &mut Reply,
    start: Instant,
) -> Instant {
    exec_keyed_timed(sh, cmd, args, ctx, out, ExecMode::Normal, start).1
}

/// [`exec_keyed`] in a given mode. Returns the deadline when the command asked to block
/// (it then wrote nothing and is not counted yet).
pub fn exec_keyed_mode(
    sh: &Rc<Shard>,
    cmd: &Cmd,
    args: &Args,
    ctx: &BatchCtx,
    out: &mut Reply,
    mode: ExecMode,
) -> Option<u64> {
    exec_keyed_timed(sh, cmd, args, ctx, out, mode, Instant::now()).0
}

fn exec_keyed_timed(
    sh: &Rc<Shard>,
    cmd: &Cmd,
    args: &Args,
    ctx: &BatchCtx,
    out: &mut Reply,
    mode: ExecMode,
    start: Instant,
) -> (Option<u64>, Instant) {
    let Run::Keyed(f, _) = cmd.spec.run else {
        unreachable!("exec_keyed on a non-keyed command")
    };
    let now = sh.local.unix_ms_at(start);
    let mut effects = sh.local.effects.borrow_mut();
    let (databases, enc) = {
        let c = sh.local.cfg.borrow();
        (c.databases, c.enc)
    };
    let (result, dirty, block, waiters) = sh.with_store(|store| {
        crate::persist::rewrite::before_command(store, cmd, args);
        // Only serving a blocked client needs a scratch database: don't build one per command.
        let mut scratch = None;
        let ks = match mode {
            ExecMode::ServeOnly => Keyspace::Only {
                store,
                shard: sh.id,
                nshards: sh.nshards,
                scratch: scratch.insert(crate::store::Db::new()),
            },
            _ => Keyspace::Local(store),
        };
        let mut ex = Exec {
            ks,
            db: ctx.db,
            now,
            out,
            effects: &mut effects,
            dirty: 0,
            no_touch: ctx.no_touch,
            databases,
            enc,
            may_block: mode == ExecMode::MayBlock,
            block: None,
            serving: matches!(mode, ExecMode::Serve | ExecMode::ServeOnly),
        };
        let r = f(&mut ex, args);
        let (dirty, block) = (ex.dirty, ex.block);
        drop(ex);
        effects.take_expired(store);
        (r, dirty, block, store.blocked_waiters)
    });
    drop(effects);
    // A client's own commands (Normal, and a blocking command's first try) publish their
    // keyspace events through the client, in command order; serving blocked clients has
    // no client to wait for them.
    if !matches!(mode, ExecMode::Normal | ExecMode::MayBlock) {
        super::pubsub::flush_events(sh);
    }
    if block.is_some() {
        return (block, start);
    }
    if let Err(e) = &result {
        out.error(&e.to_string());
    }
    let end = record(sh, cmd, start, result.as_ref().err(), dirty, args, ctx);
    if waiters > 0 && mode == ExecMode::Normal {
        super::blocking::serve_ready(sh);
    }
    (None, end)
}

/// Counts a command in commandstats/errorstats and the slow log.
/// Returns when the command ended.
pub fn record(
    sh: &Shard,
    cmd: &Cmd,
    start: Instant,
    err: Option<&CmdError>,
    dirty: u64,
    args: &Args,
    who: &BatchCtx,
) -> Instant {
    let end = Instant::now();
    let us = end.saturating_duration_since(start).as_micros() as u64;
    let (slower, latency_tracking, monitor_ms) = {
        let c = sh.local.cfg.borrow();
        (c.slowlog_slower_than, c.latency_tracking, c.latency_monitor_ms)
    };
    {
        let mut stats = sh.local.stats.borrow_mut();
        stats.total_commands += 1;
        stats.dirty += dirty;
        let s = &mut stats.commands[cmd.id];
        s.calls += 1;
        s.usec += us;
        if let Some(e) = err {
            s.failed += 1;
            stats.error(&e.code());
        }
        if latency_tracking {
            stats.record_latency(cmd.id, us);
        }
    }
    sample_latency(sh, cmd, us, monitor_ms);
    if slower >= 0 && us >= slower as u64 && !cmd.spec.has(flags::SKIP_SLOWLOG) {
        let max = sh.local.shared.config.read().slowlog_max_len as usize;
        if let Ok(mut log) = sh.local.shared.slowlog.lock() {
            let name = who
                .name
                .as_ref()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default();
            log.push(args.as_slice(), us, unix_ms() / 1000, who.addr.to_string(), name, max);
        }
    }
    end
}

/// The latency monitor's sample for a command that took `us`: Redis's call() samples every
/// command it runs (`skip_slowlog` ones like EXEC, and those scripts call, included) as
/// "fast-command" or "command" once it reaches latency-monitor-threshold (`monitor_ms`,
/// 0 = off).
pub fn sample_latency(sh: &Shard, cmd: &Cmd, us: u64, monitor_ms: u64) {
    if monitor_ms == 0 || us / 1000 < monitor_ms {
        return;
    }
    let event = if cmd.spec.has(flags::FAST) {
        "fast-command"
    } else {
        "command"
    };
    if let Ok(mut m) = sh.local.shared.latency_events.lock() {
        m.add(event, us / 1000, unix_ms() / 1000);
    }
}

/// A rejected command: counts it and writes the error.
fn reject(client: &mut Client, cmd: Option<&Cmd>, err: &CmdError) {
    {
        let mut stats = client.shard.local.stats.borrow_mut();
        if let Some(cmd) = cmd {
            stats.commands[cmd.id].rejected += 1;
        }
        stats.error(&err.code());
    }
    client.out.error(&err.to_string());
}

/// Consecutive commands bound for one shard.
struct PendingRun {
    target: usize,
    cmds: Vec<(&'static Cmd, Args)>,
}

/// Redis's is_may_replicate_command for a command line (EXEC: see [`exec_writes`]).
fn may_write(cmd: &Cmd) -> bool {
    cmd.spec.has(flags::WRITE | flags::MAY_REPLICATE) || matches!(cmd.spec.run, Run::Script(call) if !call.read_only)
}

/// EXEC of a transaction that queued a command that may write.
fn exec_writes(client: &Client, cmd: &Cmd) -> bool {
    cmd.spec.name == "exec"
        && client
            .multi
            .as_ref()
            .is_some_and(|q| q.iter().any(|(c, _)| may_write(c)))
}

/// How often a command held by CLIENT PAUSE looks again (UNPAUSE has no wake-up).
const PAUSE_POLL_MS: u64 = 10;

/// Holds a command while CLIENT PAUSE applies to it, counted in `blocked_clients` as Redis's
/// postponed clients are. False when the client went away (or CLIENT UNBLOCK ... ERROR
/// answered it): the command is not run.
async fn wait_unpaused(client: &mut Client, writes: bool) -> bool {
    while let Some(end) = client.shard.local.shared.pause.holds(writes) {
        let until = end.min(super::unix_ms() + PAUSE_POLL_MS);
        match super::blocking::park(client, until).await {
            Ok(super::blocking::Parked::Gone) => return false,
            Ok(_) => {}
            Err(e) => {
                client.out.error(&e.to_string());
                return false;
            }
        }
    }
    true
}

pub struct Pipeline {
    run: PendingRun,
    /// When the previous command of this batch ended, if it ran inline and nothing came
    /// between: the next inline command starts there instead of reading the clock again.
    last_end: Option<Instant>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            run: PendingRun {
                target: usize::MAX,
                cmds: Vec::new(),
            },
            last_end: None,
        }
    }
}

impl Pipeline {
    /// Runs a batch of requests read together, appending replies to `client.out` in order.
    /// `conn` is the client's socket, which a blocked command watches for a disconnect.
    pub async fn run(
        &mut self,
        client: &mut Client,
        requests: Vec<Vec<Bytes>>,
        conn: Option<&crate::server::tls::Conn>,
    ) {
        self.last_end = None;
        for argv in requests {
            if client.close_after_reply {
                break;
            }
            let args = Args::new(argv);
            self.one(client, args, conn).await;
        }
        self.flush(client).await;
    }

    /// Queues a command for `shard`'s next batch, sending the batch queued for another shard
    /// first, and shows it to MONITOR clients.
    async fn queue(
        &mut self,
        client: &mut Client,
        shard: usize,
        cmd: &'static Cmd,
        args: Args,
        monitored: Option<(&'static Cmd, Args)>,
    ) {
        if shard != self.run.target && !self.run.cmds.is_empty() {
            self.flush(client).await;
        }
        self.run.target = shard;
        self.run.cmds.push((cmd, args));
        if let Some((cmd, args)) = monitored {
            super::conn::feed_monitors(client, cmd, &args).await;
        }
    }

    async fn one(&mut self, client: &mut Client, args: Args, conn: Option<&crate::server::tls::Conn>) {
        let chained = self.last_end.take();
        // Pub/Sub pushes that arrived before this command go before its reply.
        if client.handle.pubsub.needs_wait() {
            let end = client.out.len();
            super::pubsub::drain_into(&client.handle, &mut client.out, end);
        }
        let mark = client.out.len();
        // Evict first while over maxmemory (before every command, as Redis).
        let oom =
            client.shard.local.cfg.borrow().eviction.maxmemory > 0 && super::evict::out_of_memory(&client.shard).await;
        let route = check(client, &args, oom);
        if let Ok(
            Route::Keyed { cmd, .. } | Route::MultiShard { cmd, .. } | Route::Conn(cmd) | Route::Script { cmd, .. },
        ) = &route
        {
            // EXEC (and the scripts) carry the writes of the commands they run; the reply
            // waits until they are durable (`Client::wait_durable`).
            let writes = may_write(cmd) || exec_writes(client, cmd);
            client.wrote |= writes || cmd.spec.name == "exec";
            // CLIENT PAUSE holds the command (before MULTI queues it, as in Redis).
            if client.shard.local.shared.pause.holds(writes).is_some() {
                self.flush(client).await;
                if !wait_unpaused(client, writes).await {
                    return;
                }
            }
        }
        // MONITOR shows commands once they ran (with the database they left selected), as
        // Redis 7's call() does; commands rejected before running are not shown.
        let mut monitored = None;
        if client
            .shard
            .local
            .shared
            .monitors
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
        {
            if let Ok(
                Route::Keyed { cmd, .. } | Route::MultiShard { cmd, .. } | Route::Conn(cmd) | Route::Script { cmd, .. },
            ) = &route
            {
                monitored = Some((*cmd, args.clone()));
            }
        }
        // EXEC itself rejected (arity, auth): any transaction is discarded, with the reason.
        if let Err(e) = &route {
            if args[0].eq_ignore_ascii_case(b"exec") {
                self.flush(client).await;
                client.multi = None;
                client.multi_error = false;
                client.handle.multi_len.set(-1);
                crate::families::transactions::unwatch_all(client).await;
                let text = e.to_string();
                let reason = text.strip_prefix("ERR ").unwrap_or(&text);
                reject(
                    client,
                    table::lookup(&args[0]),
                    &CmdError::Custom(format!("EXECABORT Transaction discarded because of: {reason}")),
                );
                apply_reply_mode(client, mark);
                return;
            }
        }
        if client.multi.is_some() {
            match &route {
                // A command rejected while queueing dooms the transaction (EXECABORT).
                Err(_) => client.multi_error = true,
                Ok(
                    Route::Keyed { cmd, .. }
                    | Route::MultiShard { cmd, .. }
                    | Route::Conn(cmd)
                    | Route::Script { cmd, .. },
                ) if !crate::families::transactions::runs_inside_multi(cmd) => {
                    self.flush(client).await;
                    crate::families::transactions::queue(client, cmd, args);
                    apply_reply_mode(client, mark);
                    return;
                }
                Ok(_) => {}
            }
        }
        match route {
            Err(e) => {
                self.flush(client).await;
                let cmd = table::lookup(&args[0]);
                reject(client, cmd, &e);
            }
            Ok(Route::Keyed { cmd, .. } | Route::MultiShard { cmd, .. }) if cmd.spec.has(flags::BLOCKING) => {
                self.flush(client).await;
                client.handle.last_cmd.set(cmd.full_name.as_str());
                let start = Instant::now();
                let record_args = args.clone();
                let mut blocked = std::time::Duration::ZERO;
                let result = super::blocking::run(client, cmd, args, conn, &mut blocked).await;
                if let Err(e) = &result {
                    client.out.error(&e.to_string());
                }
                let sh = client.shard.clone();
                record(
                    &sh,
                    cmd,
                    start + blocked,
                    result.as_ref().err(),
                    0,
                    &record_args,
                    &BatchCtx::of(client),
                );
            }
            Ok(Route::Keyed { cmd, shard }) => {
                client.handle.last_cmd.set(cmd.full_name.as_str());
                if shard == client.shard.id && self.run.cmds.is_empty() && client.shard.is_open() {
                    let ctx = BatchCtx::of(client);
                    let sh = client.shard.clone();
                    let start = chained.unwrap_or_else(Instant::now);
                    self.last_end = Some(exec_keyed_at(&sh, cmd, &args, &ctx, &mut client.out, start));
                    sh.cut_at_turn_end();
                } else {
                    self.queue(client, shard, cmd, args, monitored).await;
                    return;
                }
            }
            Ok(Route::Script {
                cmd,
                call,
                shard: Some(shard),
            }) => {
                client.handle.last_cmd.set(cmd.full_name.as_str());
                if shard == client.shard.id
                    && self.run.cmds.is_empty()
                    && client.shard.is_open()
                    && !crate::scripting::vm::in_use()
                {
                    let ctx = BatchCtx::of(client);
                    let sh = client.shard.clone();
                    let start = chained.unwrap_or_else(Instant::now);
                    let here = scripting::run_here(&sh, cmd, call, args, &ctx, &mut client.out, start);
                    self.last_end = settle_script(client, cmd, call, here).await;
                } else {
                    self.queue(client, shard, cmd, args, monitored).await;
                    return;
                }
            }
            Ok(Route::Script { cmd, call, shard: None }) => {
                self.flush(client).await;
                client.handle.last_cmd.set(cmd.full_name.as_str());
                run_reserving(client, cmd, call, args).await;
            }
            Ok(Route::MultiShard { cmd, shards, positions }) => {
                self.flush(client).await;
                client.handle.last_cmd.set(cmd.full_name.as_str());
                multi_shard(client, cmd, args, shards, positions).await;
            }
            Ok(Route::Conn(cmd)) => {
                self.flush(client).await;
                client.handle.last_cmd.set(cmd.full_name.as_str());
                let Run::Conn(f) = cmd.spec.run else { unreachable!() };
                if matches!(cmd.spec.name, "flushall" | "flushdb" | "swapdb") {
                    crate::persist::rewrite::settle_before_bulk_change(&client.shard).await;
                }
                let start = Instant::now();
                let record_args = args.clone();
                let result = f(client, args).await;
                settle_on_client(client, cmd, start, result, &record_args);
            }
        }
        if let Some((cmd, args)) = monitored {
            super::conn::feed_monitors(client, cmd, &args).await;
        }
        let events = super::pubsub::take_events();
        if !events.is_empty() {
            // Publishing may wait for other shards: the next command reads the clock anew.
            self.last_end = None;
        }
        super::pubsub::publish_events(&client.shard, events).await;
        apply_reply_mode(client, mark);
        // Pushes the command itself produced (a message to itself, a keyspace event) come
        // before its reply, as in Redis.
        if client.handle.pubsub.needs_wait() {
            super::pubsub::drain_into(&client.handle, &mut client.out, mark);
        }
    }

    /// Sends the pending run to its shard and appends the replies. A script in the run that
    /// pauses, or cannot run there, stops the run: its reply is awaited (or it runs
    /// reserving from here), then the rest of the run goes.
    async fn flush(&mut self, client: &mut Client) {
        if self.run.cmds.is_empty() {
            return;
        }
        let mut cmds = std::mem::take(&mut self.run.cmds);
        let target = self.run.target;
        self.run.target = usize::MAX;
        while !cmds.is_empty() {
            let ctx = BatchCtx::of(client);
            let n = cmds.len();
            let marks_needed = client.reply_mode != ReplyMode::On;
            let result = client
                .shard
                .hop(target, move |sh| run_batch(sh, cmds, &ctx, marks_needed))
                .await;
            let batch = match result {
                Ok(batch) => batch,
                Err(e) => {
                    for _ in 0..n {
                        client.out.error(&e.to_string());
                    }
                    return;
                }
            };
            super::pubsub::publish_events(&client.shard, batch.events).await;
            if marks_needed {
                // CLIENT REPLY OFF/SKIP: replies are dropped one by one, so split them.
                let mut start = 0;
                for end in batch.ends {
                    let mark = client.out.len();
                    client.out.raw(&batch.bytes[start..end]);
                    apply_reply_mode(client, mark);
                    start = end;
                }
            } else {
                client.out.raw(&batch.bytes);
            }
            let Some(Stopped { cmd, call, here, rest }) = batch.stopped else {
                break;
            };
            let mark = client.out.len();
            settle_script(client, cmd, call, here).await;
            apply_reply_mode(client, mark);
            cmds = rest;
        }
    }
}

/// The replies of a run of commands executed on one shard.
struct BatchOut {
    bytes: bytes::BytesMut,
    /// Where each command's reply ends (only with CLIENT REPLY OFF/SKIP).
    ends: Vec<usize>,
    events: super::pubsub::Events,
    /// A script that stopped the run, and the commands after it (not run).
    stopped: Option<Stopped>,
}

/// A script that stopped a run: what `run_here` said of it (it paused, or it could not run
/// there), and the commands after it, not run.
struct Stopped {
    cmd: &'static Cmd,
    call: ScriptCall,
    here: Here,
    rest: Vec<(&'static Cmd, Args)>,
}

/// Runs a run of commands on their shard `sh`, in order.
fn run_batch(sh: &Rc<Shard>, cmds: Vec<(&'static Cmd, Args)>, ctx: &BatchCtx, marks_needed: bool) -> BatchOut {
    let mut out = Reply::with_capacity(ctx.proto, 64 * cmds.len());
    let mut ends = Vec::new();
    let mut stopped = None;
    let mut t = Instant::now();
    let mut cmds = cmds.into_iter();
    while let Some((cmd, args)) = cmds.next() {
        if let Run::Script(call) = cmd.spec.run {
            match scripting::run_here(sh, cmd, call, args, ctx, &mut out, t) {
                Here::Done(end) => t = end,
                here => {
                    let rest = cmds.collect();
                    stopped = Some(Stopped { cmd, call, here, rest });
                    break;
                }
            }
        } else {
            t = exec_keyed_at(sh, cmd, &args, ctx, &mut out, t);
        }
        if marks_needed {
            ends.push(out.len());
        }
    }
    sh.flush_effects();
    BatchOut {
        bytes: out.take(),
        ends,
        events: super::pubsub::take_events(),
        stopped,
    }
}

/// What follows `run_here` on the client's task: nothing if the script ran (when it ended,
/// to time the next command from), its result if it paused, a run reserving from here if it
/// could not run there.
async fn settle_script(client: &mut Client, cmd: &'static Cmd, call: ScriptCall, here: Here) -> Option<Instant> {
    match here {
        Here::Done(end) => return Some(end),
        Here::Later(rx) => finish_later(client, cmd, call, rx).await,
        Here::Elsewhere(args) => run_reserving(client, cmd, call, args).await,
    }
    None
}

/// A script that paused on its shard: waits for its result (or runs it reserving, if its
/// run turned out void).
async fn finish_later(
    client: &mut Client,
    cmd: &'static Cmd,
    call: ScriptCall,
    rx: futures_channel::oneshot::Receiver<Result<scripting::Finished, Args>>,
) {
    match rx.await {
        Ok(Ok(finished)) => {
            super::pubsub::publish_events(&client.shard, finished.events).await;
            client.out.raw(&finished.reply);
        }
        Ok(Err(args)) => run_reserving(client, cmd, call, args).await,
        Err(_) => client.out.error("ERR the script's task stopped"),
    }
}

/// A script run by the home shard reserving the shards it needs, counted here.
async fn run_reserving(client: &mut Client, cmd: &'static Cmd, call: ScriptCall, args: Args) {
    let start = Instant::now();
    let record_args = args.clone();
    let result = scripting::run_script(client, call, args).await;
    settle_on_client(client, cmd, start, result, &record_args);
}

/// After a command ran on the client's own task: its error is the reply, and it is counted.
fn settle_on_client(client: &mut Client, cmd: &'static Cmd, start: Instant, result: Result<(), CmdError>, args: &Args) {
    if let Err(e) = &result {
        client.out.error(&e.to_string());
    }
    let sh = client.shard.clone();
    record(&sh, cmd, start, result.as_ref().err(), 0, args, &BatchCtx::of(client));
}

/// CLIENT REPLY OFF|SKIP: drop what the last command wrote.
fn apply_reply_mode(client: &mut Client, mark: usize) {
    match client.reply_mode {
        ReplyMode::On => {}
        ReplyMode::Off => client.out.buf.truncate(mark),
        ReplyMode::SkipNext => client.reply_mode = ReplyMode::Skip,
        ReplyMode::Skip => {
            client.out.buf.truncate(mark);
            client.reply_mode = ReplyMode::On;
        }
    }
}

/// A keyed command whose keys live on several shards.
async fn multi_shard(client: &mut Client, cmd: &'static Cmd, args: Args, shards: Vec<usize>, positions: Vec<usize>) {
    let Run::Keyed(_, multi) = cmd.spec.run else {
        unreachable!()
    };
    let start = Instant::now();
    let sh = client.shard.clone();
    let result = match multi {
        Multi::Atomic => atomic(client, cmd, &args, &shards).await,
        Multi::SplitSum => split_sum(client, cmd, &args, &positions).await,
    };
    if let Err(e) = &result {
        client.out.error(&e.to_string());
    }
    record(&sh, cmd, start, result.as_ref().err(), 0, &args, &BatchCtx::of(client));
}

/// Reserve the shards, run the handler over their keyspaces on this thread, release.
async fn atomic(client: &mut Client, cmd: &'static Cmd, args: &Args, shards: &[usize]) -> Result<(), CmdError> {
    let mut out = std::mem::replace(&mut client.out, Reply::new(client.proto));
    let r = atomic_with(client, cmd, args, shards, &mut out, false, |_| {}).await;
    client.out = out;
    r.map(|_| ())
}

/// The coordinated step behind [`atomic`]: reserve `shards`, run the handler over their
/// keyspaces writing to `out`, enqueue the effects as one record, release. With
/// `may_block`, a blocking command may ask to block instead: `on_block` then runs while the
/// shards are still reserved, and the deadline is returned.
pub async fn atomic_with(
    client: &mut Client,
    cmd: &'static Cmd,
    args: &Args,
    shards: &[usize],
    out: &mut Reply,
    may_block: bool,
    on_block: impl FnOnce(&mut crate::shard::Lent),
) -> Result<Option<u64>, CmdError> {
    let Run::Keyed(f, _) = cmd.spec.run else {
        unreachable!("atomic step of a non-keyed command")
    };
    let sh = client.shard.clone();
    let mut lent = sh.reserve(shards).await?;
    let (databases, enc) = {
        let c = sh.local.cfg.borrow();
        (c.databases, c.enc)
    };
    let mut effects = Effects::new(sh.local.effects.borrow().is_enabled());
    if sh
        .local
        .shared
        .persist
        .rewrite_in_progress
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        crate::persist::rewrite::before_command_lent(&mut lent, cmd, args);
    }
    let (result, dirty, block) = {
        let mut ex = Exec {
            ks: Keyspace::Lent(&mut lent),
            db: client.db,
            now: unix_ms(),
            out,
            effects: &mut effects,
            dirty: 0,
            no_touch: client.handle.no_touch.get(),
            databases,
            enc,
            may_block,
            block: None,
            serving: false,
        };
        let r = f(&mut ex, args);
        let (dirty, block) = (ex.dirty, ex.block);
        drop(ex);
        for s in shards {
            effects.take_expired(lent.store(*s));
        }
        (r, dirty, block)
    };
    if block.is_some() {
        on_block(&mut lent);
    }
    sh.local.stats.borrow_mut().dirty += dirty;
    // The effects are enqueued as one MULTI/EXEC record before the shards are released, so
    // the file order is a valid order.
    sh.send_effects_atomic(effects);
    sh.release(lent).await;
    result.map(|_| block)
}

/// Independent keys: each shard runs the command over its own keys; replies are merged.
async fn split_sum(client: &mut Client, cmd: &'static Cmd, args: &Args, positions: &[usize]) -> Result<(), CmdError> {
    let n = client.shard.nshards;
    let step = match cmd.spec.key_specs.first().map(|k| k.find) {
        Some(crate::command::Find::Range { step, .. }) => step.max(1),
        _ => 1,
    };
    // Per shard: the sub-command's arguments (the command, then that shard's keys).
    let mut per: Vec<Vec<Bytes>> = vec![Vec::new(); n];
    for &p in positions {
        let sub = &mut per[shard_of(&args[p], n)];
        if sub.is_empty() {
            sub.extend(args.as_slice()[..positions[0]].iter().cloned());
        }
        sub.extend(args.as_slice()[p..(p + step).min(args.len())].iter().cloned());
    }
    let targets: Vec<usize> = (0..n).filter(|&s| !per[s].is_empty()).collect();
    let ctx = BatchCtx::of(client);
    let mut pending = Vec::with_capacity(targets.len());
    for &t in &targets {
        let sub = Args::new(std::mem::take(&mut per[t]));
        let sh = client.shard.clone();
        let ctx = ctx.clone();
        pending.push(glommio::spawn_local(async move {
            sh.hop(t, move |sh| {
                let mut out = Reply::new(ctx.proto);
                exec_keyed(sh, cmd, &sub, &ctx, &mut out);
                sh.flush_effects();
                (out.take(), super::pubsub::take_events())
            })
            .await
        }));
    }
    let mut replies = Vec::with_capacity(pending.len());
    for p in pending {
        let (reply, events) = p.await?;
        super::pubsub::publish_events(&client.shard, events).await;
        replies.push(reply);
    }
    if let Some(err) = replies.iter().find(|r| r.first() == Some(&b'-')) {
        client.out.raw(err);
        return Ok(());
    }
    let total: i64 = replies.iter().map(|r| parse_int_reply(r).unwrap_or(0)).sum();
    client.out.int(total);
    Ok(())
}

impl Shard {
    /// Cuts this shard's pending effects now: they take their ticket (their place in the
    /// file order) and go to the persistence core as one record. See `persist::Durable` for
    /// where this must happen.
    /// Returns the record's ticket, if there was one.
    pub fn flush_effects(self: &Rc<Self>) -> Option<u64> {
        let record = self.local.effects.borrow_mut().take(self.id)?;
        let ticket = record.ticket;
        let local = &self.local;
        local
            .durable
            .cut_taken(record.ticket, &local.shared.persist, local.persist.as_deref(), self.id);
        if let Some(core) = self.local.persist.as_ref() {
            core.send(record);
        }
        Some(ticket)
    }

    /// After a command ran inline: its effects, if any, are cut at the end of this executor
    /// turn, together with those of every other command and connection of the turn.
    pub fn cut_at_turn_end(&self) {
        if !self.local.effects.borrow().is_empty() {
            self.local.durable.schedule_cut();
        }
    }

    /// Sends a multi-shard command's effects as one MULTI ... EXEC record.
    pub fn send_effects_atomic(self: &Rc<Self>, mut effects: Effects) {
        let Some(core) = self.local.persist.as_ref() else {
            return;
        };
        if let Some(record) = effects.take(self.id) {
            core.send(record.in_multi());
        }
    }
}

/// The cutter: cuts this shard's pending effects at the end of every executor turn that
/// left some (see `persist::Durable`). Runs for the shard's whole life.
pub async fn cut_each_turn(shard: Rc<Shard>) {
    let local = &shard.local;
    loop {
        local.durable.cut_due().await;
        if local.cfg.borrow().appendfsync != crate::config::Fsync::Always {
            let core = local.persist.as_deref();
            local
                .durable
                .previous_turn_record(&local.shared.persist, core, shard.id)
                .await;
        }
        if let Some(ticket) = shard.flush_effects() {
            local.durable.turn_record_cut(ticket);
        }
    }
}
