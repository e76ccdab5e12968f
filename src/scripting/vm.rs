//! One Lua VM per shard thread, run in a coroutine so a long script pauses between slices;
//! the `redis` table and the sandbox.
//!
//! The hot path (calling a script, `redis.call`, converting replies both ways) speaks Lua's
//! C API directly: going through mlua's values (a registry reference per string, a
//! `MultiValue` per call) cost more than the whole script in Redis. mlua builds the state,
//! compiles, and runs the libraries' Rust functions.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_int;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use futures_channel::oneshot;
use mlua::ffi;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, RegistryKey, StdLib, Table, Value, VmState};

use super::{convert, libs, RunState, Script};
use crate::command::table::{self, Cmd};
use crate::command::{flags, Args, Exec, Keyspace, Run};
use crate::error::CmdError;
use crate::persist::Effects;
use crate::resp::{Proto, Reply};
use crate::shard::{Lent, Shard};
use crate::store::EncodingLimits;

/// What a run calls.
#[derive(Clone)]
pub enum Code {
    /// An EVAL script (errors name its SHA1).
    Script(Rc<Script>),
    /// A registered function (FCALL), by name.
    Function(String),
}

impl Code {
    /// The name errors give: the SHA1, or the function's name.
    pub fn name(&self) -> &str {
        match self {
            Code::Script(s) => s.sha_str(),
            Code::Function(f) => f,
        }
    }
}

/// A script run, with the shards it needs held.
pub struct Job {
    pub code: Code,
    /// The command line: the keys are `args[3..3 + numkeys]`, the arguments follow.
    pub args: Args,
    pub numkeys: usize,
    pub lent: Lent,
    /// Where the script's effects go (a transaction passes its own, to get them back).
    pub effects: Effects,
    pub db: usize,
    /// The client's protocol: the script's reply is written in it.
    pub proto: Proto,
    /// EVAL_RO / EVALSHA_RO / no-writes: write commands are refused.
    pub read_only: bool,
    pub no_touch: bool,
    /// The shard whose thread runs the script: its configuration, its stats (the calls
    /// are counted there), SHUTDOWN.
    pub shard: Rc<Shard>,
    /// When the command started: the script's frozen time, and its first slice.
    pub start: Instant,
}

/// A command called from a script, for commandstats/errorstats.
struct CallStat {
    cmd: &'static Cmd,
    usec: u64,
    err: Option<String>,
}

pub struct Done {
    pub lent: Lent,
    /// The job's command line, given back.
    pub args: Args,
    pub out: BytesMut,
    pub effects: Effects,
    /// The script reached for a shard it does not hold before writing anything: its run is
    /// void (nothing changed, its reply is to be dropped, nothing was counted) and it must
    /// run again holding every shard.
    pub restart: bool,
    /// The script touched a key it did not declare in KEYS.
    pub undeclared: bool,
    /// Its PUBLISHes and keyspace events, for the client's home shard to route.
    pub events: crate::server::pubsub::Events,
}

/// The running script's world, reachable from `redis.call`: one per thread, kept between
/// runs with its buffers. [`begin`] moves a job's parts in, field by field, and the end of
/// the run takes them out as a [`Done`] (not through every layer of the coroutine).
/// `lent` is set exactly while a script runs.
struct RunCtx {
    code: Option<Code>,
    shard: Option<Rc<Shard>>,
    start: Instant,
    /// The script's reply, in the client's protocol.
    out: Reply,
    /// The error code of a script that failed (errorstats).
    err: Option<String>,
    lent: Option<Lent>,
    effects: Effects,
    db: usize,
    read_only: bool,
    no_touch: bool,
    databases: usize,
    enc: EncodingLimits,
    dirty: u64,
    calls: Vec<CallStat>,
    /// redis.setresp: the protocol command replies are converted from.
    resp: Proto,
    /// The command line; KEYS (`args[3..3 + numkeys]`) tell an undeclared key.
    args: Args,
    numkeys: usize,
    undeclared: bool,
    /// A write command ran.
    wrote: bool,
    /// See [`Done::restart`]: once set, every further call fails at once.
    restart: bool,
    /// The time every command of the script sees (Redis freezes it for a script's run, so
    /// a key cannot expire halfway through).
    now: u64,
    /// The reply of the command being called, kept between calls for its buffer.
    reply: Reply,
    /// An AOF rewrite is taking its snapshot (it cannot start while the script holds its
    /// shards: the rewrite's cut reserves every shard).
    rewriting: bool,
    state: &'static RunState,
    /// redis.call's argument bytes, one buffer reused from call to call, and the vector
    /// of their slices.
    arena: BytesMut,
    argv: Vec<Bytes>,
    /// The command the last redis.call named, as spelled (up to 16 bytes).
    last_cmd: Option<([u8; 16], u8, &'static Cmd)>,
}

impl RunCtx {
    fn idle() -> RunCtx {
        RunCtx {
            code: None,
            shard: None,
            start: Instant::now(),
            out: Reply::new(Proto::Resp2),
            err: None,
            lent: None,
            effects: Effects::new(false),
            db: 0,
            read_only: false,
            no_touch: false,
            databases: 0,
            enc: EncodingLimits::default(),
            dirty: 0,
            calls: Vec::new(),
            resp: Proto::Resp2,
            args: Args::default(),
            numkeys: 0,
            undeclared: false,
            wrote: false,
            restart: false,
            now: 0,
            reply: Reply::new(Proto::Resp2),
            rewriting: false,
            state: super::state(),
            arena: BytesMut::new(),
            argv: Vec::new(),
            last_cmd: None,
        }
    }

    /// The running script's keyspaces.
    fn lent(&mut self) -> &mut Lent {
        self.lent.as_mut().expect("a script is running")
    }
}

thread_local! {
    static CTX: RefCell<RunCtx> = RefCell::new(RunCtx::idle());
    /// This shard thread's VM, with the script generation it was built for. Borrowed while
    /// a script runs.
    static VM: RefCell<Option<(u64, Vm)>> = const { RefCell::new(None) };
    /// A script is running (perhaps paused) on this thread: the next one waits its turn.
    static IN_USE: Cell<bool> = const { Cell::new(false) };
    /// The coroutine stack scripts run on, kept between runs.
    static STACK: Cell<Option<DefaultStack>> = const { Cell::new(None) };
    /// The running script's way back to the shard's executor (null outside a script), and
    /// when it last got the thread.
    static YIELDER: Cell<*const Yielder<(), ()>> = const { Cell::new(std::ptr::null()) };
    static SLICE_START: Cell<Option<Instant>> = const { Cell::new(None) };
    /// A VM on the shard thread used only to compile-check bodies (SCRIPT LOAD, first EVAL).
    static CHECKER: Lua = Lua::new_with(StdLib::NONE, LuaOptions::new()).expect("lua state");
}

/// Stack for scripts: Lua plus whatever command a script calls. Only touched pages are
/// committed.
const SCRIPT_STACK: usize = 8 << 20;

/// How long a script keeps its shard thread before it pauses to let the thread's other
/// tasks run (so other clients get -BUSY, SCRIPT KILL and SHUTDOWN NOSAVE get through).
const SLICE: std::time::Duration = std::time::Duration::from_millis(2);

/// How [`start`] left a script. (Unboxed on purpose: `Done` is the common case and boxing
/// it would add an allocation per script.)
#[allow(clippy::large_enum_variant)]
pub enum Started {
    /// It ran to its end (nearly every script: no task, no channel).
    Done(Done),
    /// It waits for a paused script on this thread, or paused itself: a task finishes it.
    Later(oneshot::Receiver<Done>),
}

/// True while a script runs (perhaps paused) on this thread: a new one would have to wait.
pub fn in_use() -> bool {
    IN_USE.get()
}

/// Runs a script on this shard's thread, in a coroutine with its own stack so a long one
/// can pause between slices. Scripts on one thread run one at a time. One that does not end
/// within its first slice is finished by a task of its own, so a client that goes away
/// mid-script cannot cut it short: it finishes and gives its shards back.
pub fn start(job: Job) -> Started {
    if IN_USE.get() {
        // Another script on this thread is paused mid-run: this one waits for it.
        let (tx, rx) = oneshot::channel();
        let mut job = job;
        glommio::spawn_local(async move {
            while IN_USE.get() {
                glommio::executor().yield_task_queue_now().await;
            }
            job.start = Instant::now();
            let done = match take_stack() {
                Err(msg) => fail(job, msg),
                Ok(stack) => {
                    install(job);
                    match begin(stack) {
                        None => take_done(),
                        Some(co) => finish(co).await,
                    }
                }
            };
            let _ = tx.send(done);
        })
        .detach();
        return Started::Later(rx);
    }
    let stack = match take_stack() {
        Ok(stack) => stack,
        Err(msg) => return Started::Done(fail(job, msg)),
    };
    install(job);
    match begin(stack) {
        None => Started::Done(take_done()),
        Some(co) => {
            let (tx, rx) = oneshot::channel();
            glommio::spawn_local(async move {
                let _ = tx.send(finish(co).await);
            })
            .detach();
            Started::Later(rx)
        }
    }
}

type ScriptCoroutine = Coroutine<(), (), (), DefaultStack>;

/// The coroutine stack scripts run on (kept between runs).
fn take_stack() -> Result<DefaultStack, &'static str> {
    match STACK.take() {
        Some(s) => Ok(s),
        None => DefaultStack::new(SCRIPT_STACK).map_err(|e| {
            tracing::warn!("cannot allocate a stack for scripts: {e}");
            "ERR cannot allocate a stack for the script"
        }),
    }
}

/// Runs the installed script's first slice. Most scripts end within it (None: the outcome
/// is in the run context); a longer one comes back paused, to be finished by [`finish`].
fn begin(stack: DefaultStack) -> Option<ScriptCoroutine> {
    IN_USE.with(|u| u.set(true));
    let start = CTX.with(|c| c.borrow().start);
    SLICE_START.with(|t| t.set(Some(start)));
    let mut co = Coroutine::with_stack(stack, move |y: &Yielder<(), ()>, ()| {
        YIELDER.with(|p| p.set(y as *const _));
        run_on_this_thread();
        YIELDER.with(|p| p.set(std::ptr::null()));
    });
    match co.resume(()) {
        CoroutineResult::Return(()) => {
            end(co);
            None
        }
        CoroutineResult::Yield(()) => Some(co),
    }
}

/// Gives a paused script a slice at each turn of the executor until it ends.
async fn finish(mut co: ScriptCoroutine) -> Done {
    loop {
        glommio::executor().yield_task_queue_now().await;
        SLICE_START.with(|t| t.set(Some(Instant::now())));
        if let CoroutineResult::Return(()) = co.resume(()) {
            end(co);
            return take_done();
        }
    }
}

fn end(co: ScriptCoroutine) {
    SLICE_START.with(|t| t.set(None));
    STACK.with(|s| s.set(Some(co.into_stack())));
    IN_USE.with(|u| u.set(false));
}

/// Moves a job into the run context.
#[inline(always)]
fn install(job: Job) {
    let rewriting = job
        .shard
        .local
        .shared
        .persist
        .rewrite_in_progress
        .load(Ordering::Relaxed);
    let (databases, enc) = {
        let c = job.shard.local.cfg.borrow();
        (c.databases, c.enc)
    };
    let now = job.shard.local.unix_ms_at(job.start);
    CTX.with(|c| {
        let mut ctx = c.borrow_mut();
        let ctx = &mut *ctx;
        ctx.code = Some(job.code);
        ctx.shard = Some(job.shard);
        ctx.start = job.start;
        ctx.out.buf.clear();
        ctx.out.proto = job.proto;
        ctx.err = None;
        ctx.lent = Some(job.lent);
        ctx.effects = job.effects;
        ctx.db = job.db;
        ctx.read_only = job.read_only;
        ctx.no_touch = job.no_touch;
        ctx.databases = databases;
        ctx.enc = enc;
        ctx.dirty = 0;
        ctx.resp = Proto::Resp2;
        ctx.args = job.args;
        ctx.numkeys = job.numkeys;
        ctx.undeclared = false;
        ctx.wrote = false;
        ctx.restart = false;
        ctx.now = now;
        ctx.rewriting = rewriting;
        ctx.last_cmd = None;
    });
}

/// Takes the ended script's parts back out of the run context: counts its calls on its
/// shard (unless the run is void) and gives the job's parts back.
fn take_done() -> Done {
    CTX.with(|c| {
        let mut ctx = c.borrow_mut();
        let ctx = &mut *ctx;
        let shard = ctx.shard.take().expect("a script ran");
        ctx.code = None;
        if shard.local.shared.is_shutting_down() {
            ctx.effects = Effects::new(false);
        }
        if !ctx.restart {
            let (latency_tracking, monitor_ms) = {
                let c = shard.local.cfg.borrow();
                (c.latency_tracking, c.latency_monitor_ms)
            };
            let mut stats = shard.local.stats.borrow_mut();
            stats.dirty += ctx.dirty;
            for call in ctx.calls.iter() {
                stats.total_commands += 1;
                let s = &mut stats.commands[call.cmd.id];
                s.calls += 1;
                s.usec += call.usec;
                if let Some(code) = &call.err {
                    s.failed += 1;
                    stats.error(code);
                }
                // Redis's call() records the lua client's commands like any other.
                if latency_tracking {
                    stats.record_latency(call.cmd.id, call.usec);
                }
                crate::server::dispatch::sample_latency(&shard, call.cmd, call.usec, monitor_ms);
            }
            if let Some(code) = &ctx.err {
                stats.error(code);
            }
        }
        ctx.calls.clear();
        ctx.reply.buf.clear();
        Done {
            lent: ctx.lent.take().expect("a script ran"),
            args: std::mem::take(&mut ctx.args),
            out: std::mem::take(&mut ctx.out.buf),
            effects: std::mem::replace(&mut ctx.effects, Effects::new(false)),
            restart: ctx.restart,
            undeclared: ctx.undeclared,
            events: crate::server::pubsub::take_events(),
        }
    })
}

/// Gives back the buffer of a [`Done`]'s reply once it was copied out.
pub fn recycle(mut out: BytesMut) {
    out.clear();
    CTX.with(|c| {
        if let Ok(mut ctx) = c.try_borrow_mut() {
            if ctx.lent.is_none() && ctx.out.buf.capacity() < out.capacity() {
                ctx.out.buf = out;
            }
        }
    });
}

/// What the VM's hook checks during a run.
struct HookState {
    start: Instant,
    /// busy-reply-threshold in ms (0: never busy).
    busy_ms: u64,
    shard: Rc<Shard>,
    state: &'static RunState,
}

thread_local! {
    static HOOK: RefCell<Option<HookState>> = const { RefCell::new(None) };
}

/// Every 100,000 VM instructions of a run: SHUTDOWN, busy-reply-threshold, SCRIPT KILL, and
/// a pause when the script's slice is up.
fn hook() -> mlua::Result<VmState> {
    let verdict = HOOK.with(|h| {
        let h = h.borrow();
        let Some(h) = h.as_ref() else { return Ok(()) };
        if h.shard.local.shared.is_shutting_down() {
            return Err(mlua::Error::runtime("Script stopped by SHUTDOWN"));
        }
        let ms = h.start.elapsed().as_millis() as u64;
        if h.busy_ms > 0 && ms >= h.busy_ms && !h.state.busy.load(Ordering::Relaxed) {
            tracing::warn!(
                "Slow script detected: still in execution after {ms} milliseconds. You can try killing the script using the SCRIPT KILL command."
            );
            h.state.set_busy();
        }
        if h.state.kill.load(Ordering::Acquire) {
            return Err(mlua::Error::runtime("Script killed by user with SCRIPT KILL..."));
        }
        Ok(())
    });
    verdict?;
    // Not inside the borrow above: other tasks run while the script is paused.
    pause_if_due();
    Ok(VmState::Continue)
}

/// Called from the VM's hook: once the script has had the thread for a slice, hands it
/// back to the executor until the next turn.
fn pause_if_due() {
    let due = SLICE_START.get().is_some_and(|t| t.elapsed() >= SLICE);
    let y = YIELDER.get();
    if due && !y.is_null() {
        // The script's events so far stay its own while other tasks run (they take theirs).
        let events = crate::server::pubsub::take_events();
        // SAFETY: set by the running coroutine to its own yielder, which lives for the
        // whole coroutine body; cleared before the body returns. The hook runs on that
        // coroutine's stack.
        unsafe { (*y).suspend(()) };
        crate::server::pubsub::restore_events(events);
    }
}

/// Runs the installed script (in the coroutine); its results stay in the run context.
fn run_on_this_thread() {
    let gen = super::generation();
    // IN_USE keeps this the only borrow: a paused script holds it, the next one waits.
    VM.with(|cell| {
        let mut vm = cell.borrow_mut();
        if vm.as_ref().is_none_or(|(g, v)| *g != gen || v.poisoned) {
            *vm = match Vm::new() {
                Ok(v) => Some((gen, v)),
                Err(e) => {
                    tracing::warn!("cannot create the Lua state: {e}");
                    None
                }
            };
        }
        match vm.as_mut() {
            Some((_, v)) => v.run(),
            None => CTX.with(|c| {
                let mut ctx = c.borrow_mut();
                ctx.out.error("ERR cannot create the Lua state");
                ctx.err = Some("ERR".into());
            }),
        }
    })
}

fn fail(job: Job, msg: &str) -> Done {
    let mut out = Reply::new(job.proto);
    out.error(msg);
    job.shard.local.stats.borrow_mut().error("ERR");
    Done {
        lent: job.lent,
        args: job.args,
        out: out.take(),
        effects: job.effects,
        restart: false,
        undeclared: false,
        events: crate::server::pubsub::take_events(),
    }
}

/// `Error compiling script` text for a body that does not compile, checked on the shard thread.
pub fn compile_check(body: &[u8]) -> Result<(), String> {
    let src = super::lua_source(body);
    CHECKER.with(
        |lua| match lua.load(&src[..]).set_name("@user_script").into_function() {
            Ok(_) => Ok(()),
            Err(e) => Err(format!(
                "ERR Error compiling script (new function): {}",
                syntax_text(&e)
            )),
        },
    )
}

fn syntax_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Lua prelude: the error handler (Redis's, finding the script's line), the runner, the
/// sandboxed environment and `redis.call`/`redis.pcall` over the Rust primitive.
const PRELUDE: &str = r#"
local getinfo, setfenv, xpcall, type, tostring, setmetatable, error, rawget =
      debug.getinfo, setfenv, xpcall, type, tostring, setmetatable, error, rawget
local G = _G
local raised = __basalt_raised
local rawpcall, select, unpack = pcall, select, unpack
local errtext = __basalt_errtext
local rawxpcall = xpcall
-- A failed call's error as Lua code sees it in Redis: a raised redis.call error's text, and
-- a library function's error as its message string (mlua raises those as userdata).
local function seen(e)
  if type(e) == 'table' and raised[e] then return e.err end
  if type(e) == 'userdata' then return errtext(e) end
  return e
end
local function fix(n, ok, e, ...)
  if not ok then e = seen(e) end
  return ok, e, ...
end
pcall = function(...)
  return fix(0, rawpcall(...))
end
-- xpcall's handler gets a raised redis.call error as its table (Redis 7.0 does; pcall
-- returns the text), and a library function's error as its message.
G.xpcall = function(f, h)
  return rawxpcall(f, function(e)
    if type(e) == 'userdata' then e = errtext(e) end
    return h(e)
  end)
end
local function handler(err)
  local i, lvl = nil, 2
  while true do
    local f = getinfo(lvl, 'Sl')
    if not f then break end
    if f.source == '@user_script' or f.source == '@user_function' then i = f break end
    lvl = lvl + 1
  end
  if type(err) == 'userdata' then
    err = {err = 'ERR ' .. errtext(err)}
  elseif type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  end
  if i then
    err['source'] = i.source
    err['line'] = i.currentline
  end
  return err
end
-- Reads go through to the globals as a table (no Lua call per global a script reads);
-- a name the globals lack raises from their own metatable, set once the prelude is done.
local env_mt = {
  __index = G,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
}
-- Library tables are read-only for scripts (Redis 7): each global library becomes a
-- proxy that reads through and refuses writes; pairs/next see through proxies.
local real = setmetatable({}, {__mode = 'k'})
local rawnext = next
local function ro() error('Attempt to modify a readonly table', 2) end
for _, name in ipairs({'redis', 'string', 'math', 'table', 'cjson', 'cmsgpack', 'bit', 'struct', 'coroutine'}) do
  local lib = G[name]
  if lib then
    local p = setmetatable({}, {__index = lib, __newindex = ro, __metatable = false})
    real[p] = lib
    G[name] = p
  end
end
next = function(t, k) return rawnext(real[t] or t, k) end
local mynext = next
pairs = function(t) return mynext, t, nil end
__basalt_handler = handler
__basalt_loadlib = function(chunk)
  local env = setmetatable({}, env_mt)
  rawset(env, '_G', env)
  setfenv(chunk, env)
  return xpcall(chunk, handler)
end
-- A script function's own environment, made when it is compiled; each run sets its KEYS
-- and ARGV.
__basalt_prepare = function(f)
  local env = setmetatable({}, env_mt)
  rawset(env, '_G', env)
  setfenv(f, env)
  return env
end
setmetatable(G, {
  __index = function(t, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
  __metatable = false,
})
"#;

/// Globals a script may see (Redis 7.0's sandbox); everything else is removed.
const ALLOWED_GLOBALS: &[&str] = &[
    "_G",
    "_VERSION",
    "assert",
    "collectgarbage",
    "coroutine",
    "error",
    "gcinfo",
    "getmetatable",
    "ipairs",
    "load",
    "loadstring",
    "math",
    "next",
    "pairs",
    "pcall",
    "rawequal",
    "rawget",
    "rawset",
    "select",
    "setmetatable",
    "string",
    "table",
    "tonumber",
    "tostring",
    "type",
    "unpack",
    "xpcall",
    "redis",
    "cjson",
    "cmsgpack",
    "bit",
    "struct",
];

pub struct Vm {
    /// A run panicked: the state may be inconsistent, make a new one.
    poisoned: bool,
    /// Unique per VM: a script's cached registry references name the VM they belong to.
    number: u64,
    /// The interned strings "KEYS" and "ARGV", by registry reference.
    keys_name: RegistryKey,
    argv_name: RegistryKey,
    lua: Lua,
    /// The main state of `lua`, for the C API.
    state: *mut ffi::lua_State,
    /// The prelude's error handler (finds the script's line).
    handler: RegistryKey,
    /// Makes a compiled script's own environment.
    prepare: Function,
    loadlib: Function,
    /// Registered functions by name, for the function registry's generation `func_gen`.
    functions: HashMap<String, RegistryKey>,
    func_gen: u64,
    /// Compiled scripts: the function and its environment (KEYS and ARGV are set there).
    scripts: ahash::AHashMap<super::Sha, (RegistryKey, RegistryKey)>,
}

/// Redis's 48-bit PRNG (rand.c, the drand48 constants), seeded with 0 when the state is made,
/// so math.random gives Redis's sequence.
struct Rand48(Cell<u64>);

impl Rand48 {
    fn seed(&self, s: i32) {
        self.0.set((((s as u32) as u64) << 16) | 0x330E);
    }
    fn next(&self) -> i32 {
        let x = self.0.get().wrapping_mul(0x5DEECE66D).wrapping_add(0xB) & ((1u64 << 48) - 1);
        self.0.set(x);
        (x >> 17) as i32
    }
}

impl Vm {
    pub fn new() -> mlua::Result<Vm> {
        // SAFETY: the debug library is captured by the prelude and then removed from globals.
        let lua = unsafe {
            Lua::unsafe_new_with(
                StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
                LuaOptions::new(),
            )
        };
        let g = lua.globals();
        let redis = lua.create_table()?;
        register_redis(&lua, &redis)?;
        g.set("redis", redis)?;
        libs::register(&lua)?;
        // Installed once: what it checks lives in HOOK, set for each run.
        lua.set_hook(HookTriggers::new().every_nth_instruction(100_000), |_, _| hook())?;
        // SAFETY: both follow the Lua C API protocol (see redis_call_entry).
        let (call, pcall) = unsafe {
            (
                lua.create_c_function(lua_redis_call)?,
                lua.create_c_function(lua_redis_pcall)?,
            )
        };
        let redis_t: Table = g.get("redis")?;
        redis_t.set("call", call)?;
        redis_t.set("pcall", pcall)?;
        g.set(
            "__basalt_errtext",
            lua.create_function(|_, v: Value| {
                Ok(match v {
                    Value::Error(e) => root_message(&e),
                    other => format!("{other:?}"),
                })
            })?,
        )?;

        // Redis never seeds it: the first script sees drand48's default state.
        let rng = std::rc::Rc::new(Rand48(Cell::new(0x1234_ABCD_330E)));
        let math: Table = g.get("math")?;
        let r = rng.clone();
        math.set(
            "random",
            lua.create_function(move |_, args: MultiValue| {
                let v = (r.next() % i32::MAX) as f64 / i32::MAX as f64;
                let int_arg = |v: &Value, n: usize| -> mlua::Result<i32> {
                    match v {
                        Value::Integer(i) => Ok(*i as i32),
                        Value::Number(f) => Ok(*f as i32),
                        Value::String(s) => s
                            .to_str()
                            .ok()
                            .and_then(|s| s.trim().parse::<f64>().ok())
                            .map(|f| f as i32)
                            .ok_or_else(|| {
                                mlua::Error::runtime(format!("bad argument #{n} to 'random' (number expected)"))
                            }),
                        _ => Err(mlua::Error::runtime(format!(
                            "bad argument #{n} to 'random' (number expected)"
                        ))),
                    }
                };
                match args.len() {
                    0 => Ok(v),
                    1 => {
                        let u = int_arg(&args[0], 1)?;
                        if u < 1 {
                            return Err(mlua::Error::runtime("bad argument #1 to 'random' (interval is empty)"));
                        }
                        Ok((v * u as f64).floor() + 1.0)
                    }
                    2 => {
                        let l = int_arg(&args[0], 1)?;
                        let u = int_arg(&args[1], 2)?;
                        if l > u {
                            return Err(mlua::Error::runtime("bad argument #2 to 'random' (interval is empty)"));
                        }
                        Ok((v * (u as f64 - l as f64 + 1.0)).floor() + l as f64)
                    }
                    _ => Err(mlua::Error::runtime("wrong number of arguments")),
                }
            })?,
        )?;
        let r = rng.clone();
        math.set(
            "randomseed",
            lua.create_function(move |_, s: f64| {
                r.seed(s as i32);
                Ok(())
            })?,
        )?;

        // Error tables raised by redis.call, weakly held (see raw_redis_call).
        let raised = lua.create_table()?;
        let mt = lua.create_table()?;
        mt.set("__mode", "k")?;
        raised.set_metatable(Some(mt))?;
        lua.set_named_registry_value("basalt_raised", raised.clone())?;
        g.set("__basalt_raised", raised)?;
        lua.load(PRELUDE).set_name("=prelude").exec()?;
        let handler: Function = g.get("__basalt_handler")?;
        let handler = lua.create_registry_value(handler)?;
        let prepare: Function = g.get("__basalt_prepare")?;
        let loadlib: Function = g.get("__basalt_loadlib")?;
        // The sandbox: only Redis's globals remain.
        let mut drop_names = Vec::new();
        for pair in g.pairs::<Value, Value>() {
            let (k, _) = pair?;
            if let Value::String(s) = &k {
                let name = s.to_string_lossy();
                if !ALLOWED_GLOBALS.contains(&name.as_str()) {
                    drop_names.push(name);
                }
            }
        }
        for n in drop_names {
            g.raw_set(n, Value::Nil)?;
        }
        for name in [
            "__basalt_handler",
            "__basalt_prepare",
            "__basalt_loadlib",
            "__basalt_errtext",
            "__basalt_raised",
        ] {
            g.raw_set(name, Value::Nil)?;
        }
        let state = lua.exec_raw_lua(|raw| raw.state());
        static NUMBERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let keys_name = lua.create_registry_value(lua.create_string("KEYS")?)?;
        let argv_name = lua.create_registry_value(lua.create_string("ARGV")?)?;
        Ok(Vm {
            poisoned: false,
            number: NUMBERS.fetch_add(1, Ordering::Relaxed),
            keys_name,
            argv_name,
            lua,
            state,
            handler,
            prepare,
            loadlib,
            functions: HashMap::new(),
            func_gen: u64::MAX,
            scripts: ahash::AHashMap::new(),
        })
    }

    /// Runs the installed script, leaving its reply and outcome in the run context.
    fn run(&mut self) {
        let (code, shard, start, mut out) = CTX.with(|c| {
            let mut ctx = c.borrow_mut();
            let proto = ctx.out.proto;
            let out = std::mem::replace(&mut ctx.out, Reply::new(proto));
            let code = ctx.code.clone().expect("a job is installed before the run");
            let shard = ctx.shard.clone().expect("a job is installed before the run");
            (code, shard, ctx.start, out)
        });
        let (busy_ms, notify) = {
            let c = shard.local.cfg.borrow();
            (c.busy_reply_threshold, c.notify)
        };
        crate::server::pubsub::enter_script(notify, &shard.local.shared);
        let state = super::state();
        state
            .function
            .store(matches!(code, Code::Function(_)), Ordering::Release);
        state.running.store(true, Ordering::Release);
        HOOK.with(|h| {
            *h.borrow_mut() = Some(HookState {
                start,
                busy_ms,
                shard,
                state,
            })
        });
        // A panic (a bug in a handler) must not keep shards held forever: the shards go
        // back and the client gets an error; the VM is rebuilt for the next run.
        let run = crate::logging::catch_panic(|| self.execute(&code, &mut out));
        HOOK.with(|h| *h.borrow_mut() = None);
        let err = match run {
            Ok(err) => err,
            Err(_) => {
                tracing::error!("a script run panicked; its shards are released");
                self.poisoned = true;
                out.buf.clear();
                out.error("ERR internal error while running the script");
                Some("ERR".into())
            }
        };
        state.finish();
        CTX.with(|c| {
            let mut ctx = c.borrow_mut();
            ctx.out = out;
            ctx.err = err;
        });
    }

    /// The compiled function of a script and its environment, compiled on its first run.
    fn compiled(&mut self, script: &Script) -> Result<(c_int, c_int), String> {
        if let Some((vm, f, env)) = script.compiled.get() {
            if vm == self.number {
                return Ok((f, env));
            }
        }
        if let Some((f, env)) = self.scripts.get(&script.sha) {
            script.compiled.set(Some((self.number, f.id(), env.id())));
            return Ok((f.id(), env.id()));
        }
        let f = self
            .lua
            .load(&super::lua_source(&script.body)[..])
            .set_name("@user_script")
            .into_function()
            .map_err(|e| format!("ERR Error compiling script (new function): {}", syntax_text(&e)))?;
        let env: Table = self.prepare.call(f.clone()).map_err(|e| format!("ERR {e}"))?;
        let f = self.lua.create_registry_value(f).map_err(|e| format!("ERR {e}"))?;
        let env = self.lua.create_registry_value(env).map_err(|e| format!("ERR {e}"))?;
        let ids = (f.id(), env.id());
        self.scripts.insert(script.sha, (f, env));
        script.compiled.set(Some((self.number, ids.0, ids.1)));
        Ok(ids)
    }

    /// Runs one script or function, writing its reply; returns the error code if it failed.
    fn execute(&mut self, code: &Code, out: &mut Reply) -> Option<String> {
        // Everything the call needs is pushed before the run context is read again.
        let target = match code {
            Code::Script(s) => self.compiled(s).map(|(f, env)| (f, Some(env))),
            Code::Function(name) => {
                if self.func_gen != super::functions::generation() {
                    self.load_functions();
                }
                match self.functions.get(name) {
                    Some(f) => Ok((f.id(), None)),
                    None => Err("ERR Function not found".to_string()),
                }
            }
        };
        let (f, env) = match target {
            Ok(t) => t,
            Err(msg) => {
                out.error(&msg);
                return Some("ERR".into());
            }
        };
        let l = self.state;
        let (keys_name, argv_name) = (self.keys_name.id(), self.argv_name.id());
        // SAFETY: the C API on this VM's own state, on its thread; the stack is put back to
        // `base` before returning. Pushes can only fail on out-of-memory (fatal, as in Redis).
        unsafe {
            let base = ffi::lua_gettop(l);
            if ffi::lua_checkstack(l, 8) == 0 {
                out.error("ERR Lua stack overflow");
                return Some("ERR".into());
            }
            ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, self.handler.id());
            ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, f);
            let nargs = CTX.with(|c| {
                let ctx = c.borrow();
                let (keys, argv) = ctx.args.as_slice()[3..].split_at(ctx.numkeys);
                match env {
                    Some(env) => {
                        // An EVAL script reads KEYS and ARGV from its environment.
                        ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, env);
                        ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, keys_name);
                        push_array(l, keys);
                        ffi::lua_rawset(l, -3);
                        ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, argv_name);
                        push_array(l, argv);
                        ffi::lua_rawset(l, -3);
                        ffi::lua_settop(l, -2);
                        0
                    }
                    None => {
                        // A function gets them as arguments.
                        push_array(l, keys);
                        push_array(l, argv);
                        2
                    }
                }
            });
            let status = ffi::lua_pcall(l, nargs, 1, base + 1);
            let err = if status == 0 {
                // Booleans follow the protocol the script last chose (redis.setresp).
                let resp = CTX.with(|c| c.borrow().resp);
                convert::write_reply(l, base + 2, out, resp, 0)
            } else {
                error_reply(l, base + 2, code.name(), out)
            };
            ffi::lua_settop(l, base);
            err
        }
    }
}

/// Pushes a byte string.
///
/// # Safety
/// A free stack slot.
unsafe fn push_str(l: *mut ffi::lua_State, b: &[u8]) {
    ffi::lua_pushlstring_(l, b.as_ptr() as *const _, b.len());
}

/// Pushes a Lua array of strings (KEYS, ARGV).
///
/// # Safety
/// Two free stack slots.
unsafe fn push_array(l: *mut ffi::lua_State, items: &[Bytes]) {
    ffi::lua_createtable(l, items.len() as c_int, 0);
    for (i, item) in items.iter().enumerate() {
        push_str(l, item);
        ffi::lua_rawseti_(l, -2, (i + 1) as c_int);
    }
}

/// The string at `idx` (or a number, converted in place as Lua does), if it is one.
///
/// # Safety
/// `idx` is a valid index; the slice lives as long as the value stays on the stack.
unsafe fn to_bytes<'a>(l: *mut ffi::lua_State, idx: c_int) -> Option<&'a [u8]> {
    let mut len = 0usize;
    let p = ffi::lua_tolstring(l, idx, &mut len);
    (!p.is_null()).then(|| std::slice::from_raw_parts(p as *const u8, len))
}

/// The field `key` of the table at `idx`, as a string.
///
/// # Safety
/// A table at `idx`, one free stack slot; leaves the stack as it was.
unsafe fn string_field(l: *mut ffi::lua_State, idx: c_int, key: &[u8]) -> Option<Vec<u8>> {
    push_str(l, key);
    ffi::lua_rawget_(l, idx);
    let v = (ffi::lua_type(l, -1) == ffi::LUA_TSTRING).then(|| to_bytes(l, -1).unwrap_or_default().to_vec());
    ffi::lua_settop(l, -2);
    v
}

/// The reply of a script that raised: the error table the handler built (message, and the
/// script's line where it has one), as Redis words it. Returns the error code.
///
/// # Safety
/// The error value at `idx`, two free stack slots.
unsafe fn error_reply(l: *mut ffi::lua_State, idx: c_int, name: &str, out: &mut Reply) -> Option<String> {
    let killed = super::state().kill.load(Ordering::Acquire);
    if ffi::lua_type(l, idx) != ffi::LUA_TTABLE {
        let what = to_bytes(l, idx).map(String::from_utf8_lossy).unwrap_or_default();
        out.error(&format!("ERR Error running script {name}: {what}"));
        return Some("ERR".into());
    }
    let mut msg = string_field(l, idx, b"err")
        .map(|m| String::from_utf8_lossy(&m).into_owned())
        .unwrap_or_default();
    let source = string_field(l, idx, b"source").map(|s| String::from_utf8_lossy(&s).into_owned());
    push_str(l, b"line");
    ffi::lua_rawget_(l, idx);
    let line = (ffi::lua_type(l, -1) == ffi::LUA_TNUMBER).then(|| (ffi::lua_tonumber(l, -1) as i64).to_string());
    ffi::lua_settop(l, -2);
    if killed {
        msg = super::KILLED.to_string();
    }
    let msg = msg.strip_prefix('-').unwrap_or(&msg).to_string();
    let text = match (source, line) {
        (Some(s), Some(line)) => format!("{msg} script: {name}, on {s}:{line}."),
        _ => msg.clone(),
    };
    out.error(&text);
    Some(msg.split(' ').next().unwrap_or("ERR").to_string())
}

/// What `redis.error_reply` and `redis.status_reply` return for an argument that is not a
/// string.
const BAD_REPLY_ARGUMENTS: &str = "ERR wrong number or type of arguments";

/// The failure a `raising` helper returns: this marker, then the message.
static HELPER_FAILED: u8 = 0;

fn helper_failed(lua: &Lua, msg: &str) -> mlua::Result<MultiValue> {
    let marker = Value::LightUserData(mlua::LightUserData(std::ptr::addr_of!(HELPER_FAILED) as *mut _));
    Ok(MultiValue::from_iter([
        marker,
        Value::String(lua.create_string(format!("ERR {msg}"))?),
    ]))
}

/// Installs `redis.<name>` as the C function `c` (one of the `c_*` below) over `inner`, a
/// Rust function kept in the registry that reports failure with [`helper_failed`]: `c`
/// raises it as Redis's helpers do, an error table (`{err = "ERR ..."}`) from a C frame, so
/// `pcall` returns its text, an `xpcall` handler gets the table, and the script's line is
/// found even after `return redis.sha1hex()`.
fn raising<F>(lua: &Lua, redis: &Table, name: &str, c: ffi::lua_CFunction, inner: F) -> mlua::Result<()>
where
    F: Fn(&Lua, MultiValue) -> mlua::Result<MultiValue> + 'static,
{
    lua.set_named_registry_value(&format!("basalt_helper_{name}"), lua.create_function(inner)?)?;
    // SAFETY: `c` is one of the trampolines below.
    redis.set(name, unsafe { lua.create_c_function(c)? })
}

macro_rules! helper_trampoline {
    ($c:ident, $key:literal) => {
        unsafe extern "C-unwind" fn $c(l: *mut ffi::lua_State) -> c_int {
            call_raising(l, $key)
        }
    };
}
helper_trampoline!(c_sha1hex, c"basalt_helper_sha1hex");
helper_trampoline!(c_log, c"basalt_helper_log");
helper_trampoline!(c_setresp, c"basalt_helper_setresp");
helper_trampoline!(c_set_repl, c"basalt_helper_set_repl");

/// # Safety
/// Called by Lua only, with the registry holding `key`.
unsafe fn call_raising(l: *mut ffi::lua_State, key: &std::ffi::CStr) -> c_int {
    let n = ffi::lua_gettop(l);
    ffi::lua_checkstack(l, 4);
    ffi::lua_getfield_(l, ffi::LUA_REGISTRYINDEX, key.as_ptr());
    ffi::lua_insert(l, 1);
    ffi::lua_call(l, n, ffi::LUA_MULTRET);
    let got = ffi::lua_gettop(l);
    if got >= 2 && ffi::lua_touserdata(l, 1) as *const u8 == std::ptr::addr_of!(HELPER_FAILED) {
        let msg = to_bytes(l, 2).map(<[u8]>::to_vec).unwrap_or_default();
        ffi::lua_settop(l, 0);
        push_error_table(l, &msg);
        raise_table(l);
    }
    got
}

/// Raises the error table on top of the stack, marked so that a Lua `pcall` around the call
/// sees its message, as in Redis 7.0.
///
/// # Safety
/// A table on top of Lua's stack; no Rust value needing drop may be live (longjmp).
unsafe fn raise_table(l: *mut ffi::lua_State) -> ! {
    ffi::lua_checkstack(l, 3);
    ffi::lua_getfield_(l, ffi::LUA_REGISTRYINDEX, c"basalt_raised".as_ptr());
    ffi::lua_pushvalue(l, -2);
    ffi::lua_pushboolean(l, 1);
    ffi::lua_rawset(l, -3);
    ffi::lua_settop(l, -2);
    ffi::lua_error(l)
}

/// A helper's numeric argument (Lua numbers truncate); None for another type.
fn int_arg(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        Value::Number(n) => Some(*n as i64),
        _ => None,
    }
}

/// `redis.*` besides call/pcall (which the prelude builds over `__basalt_call`).
fn register_redis(lua: &Lua, redis: &Table) -> mlua::Result<()> {
    redis.set(
        "error_reply",
        lua.create_function(|lua, msg: Value| {
            let t = lua.create_table()?;
            // Redis returns (does not raise) this error table for a bad argument.
            let Value::String(s) = msg else {
                t.raw_set("err", BAD_REPLY_ARGUMENTS)?;
                return Ok(t);
            };
            t.raw_set("err", lua.create_string(convert::error_text(&s.as_bytes()))?)?;
            Ok(t)
        })?,
    )?;
    redis.set(
        "status_reply",
        lua.create_function(|lua, msg: Value| {
            let t = lua.create_table()?;
            let Value::String(s) = msg else {
                t.raw_set("err", BAD_REPLY_ARGUMENTS)?;
                return Ok(t);
            };
            t.raw_set("ok", s)?;
            Ok(t)
        })?,
    )?;
    raising(lua, redis, "sha1hex", c_sha1hex, |lua, args: MultiValue| {
        if args.len() != 1 {
            return helper_failed(lua, "wrong number of arguments");
        }
        let bytes = match lua.coerce_string(args[0].clone())? {
            Some(s) => s.as_bytes().to_vec(),
            None => Vec::new(),
        };
        Ok(MultiValue::from_iter([Value::String(
            lua.create_string(super::sha1_hex(&bytes))?,
        )]))
    })?;
    raising(lua, redis, "log", c_log, |lua, args: MultiValue| {
        if args.len() < 2 {
            return helper_failed(lua, "redis.log() requires two arguments or more.");
        }
        let Some(level) = int_arg(&args[0]) else {
            return helper_failed(lua, "First argument must be a number (log level).");
        };
        if !(0..=3).contains(&level) {
            return helper_failed(lua, "Invalid debug level.");
        }
        let mut msg = String::new();
        for (i, v) in args.iter().skip(1).enumerate() {
            if i > 0 {
                msg.push(' ');
            }
            if let Some(s) = lua.coerce_string(v.clone())? {
                msg.push_str(&s.to_string_lossy());
            }
        }
        match level {
            0 => tracing::debug!("{msg}"),
            1 | 2 => tracing::info!("{msg}"),
            _ => tracing::warn!("{msg}"),
        }
        Ok(MultiValue::new())
    })?;
    raising(lua, redis, "setresp", c_setresp, |lua, args: MultiValue| {
        if args.len() != 1 {
            return helper_failed(lua, "redis.setresp() requires one argument.");
        }
        let p = match int_arg(&args[0]).unwrap_or(0) {
            2 => Proto::Resp2,
            3 => Proto::Resp3,
            _ => return helper_failed(lua, "RESP version must be 2 or 3."),
        };
        CTX.with(|c| c.borrow_mut().resp = p);
        Ok(MultiValue::new())
    })?;
    raising(lua, redis, "set_repl", c_set_repl, |lua, args: MultiValue| {
        if args.len() != 1 {
            return helper_failed(lua, "redis.set_repl() requires one argument.");
        }
        let v = int_arg(&args[0]).unwrap_or(-1);
        if !(0..=3).contains(&v) {
            return helper_failed(
                lua,
                "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
            );
        }
        Ok(MultiValue::new())
    })?;
    redis.set(
        "register_function",
        lua.create_function(|_, args: MultiValue| register_function(args))?,
    )?;
    redis.set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    redis.set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
    redis.set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    for (name, v) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        redis.set(name, v)?;
    }
    let version = crate::server::info::REDIS_VERSION;
    redis.set("REDIS_VERSION", version)?;
    let num = version
        .split('.')
        .map(|p| p.parse::<i64>().unwrap_or(0))
        .fold(0i64, |acc, p| (acc << 8) | p);
    redis.set("REDIS_VERSION_NUM", num)?;
    Ok(())
}

thread_local! {
    /// Functions registered by the library being loaded.
    static REGISTERING: RefCell<Option<Vec<(super::functions::FuncInfo, Function)>>> = const { RefCell::new(None) };
}

/// `redis.register_function(name, callback)` or `redis.register_function{function_name=...,
/// callback=..., flags={...}, description=...}`.
fn register_function(args: MultiValue) -> mlua::Result<()> {
    let bad = |m: &str| Err(mlua::Error::runtime(m.to_string()));
    let (name, cb, flags, description) = match (args.front(), args.get(1), args.len()) {
        (Some(Value::String(n)), Some(Value::Function(f)), 2) => (n.to_string_lossy(), f.clone(), Vec::new(), None),
        (Some(Value::Table(t)), None, 1) => {
            let mut name = None;
            let mut cb = None;
            let mut flags = Vec::new();
            let mut desc = None;
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                let Value::String(k) = k else {
                    return bad("named argument key given to redis.register_function is not a string");
                };
                match (&*k.to_string_lossy(), v) {
                    ("function_name", Value::String(s)) => name = Some(s.to_string_lossy()),
                    ("callback", Value::Function(f)) => cb = Some(f),
                    ("description", Value::String(s)) => desc = Some(s.to_string_lossy()),
                    ("flags", Value::Table(ft)) => {
                        for v in ft.sequence_values::<Value>() {
                            let Value::String(f) = v? else {
                                return bad("unknown flag given");
                            };
                            let f = f.to_string_lossy();
                            match super::functions::FLAGS.iter().find(|k| **k == f) {
                                Some(k) => flags.push(*k),
                                None => return bad("unknown flag given"),
                            }
                        }
                    }
                    ("function_name", _) => {
                        return bad("function_name argument given to redis.register_function must be a string")
                    }
                    ("callback", _) => {
                        return bad("callback argument given to redis.register_function must be a function")
                    }
                    ("description", _) => {
                        return bad("description argument given to redis.register_function must be a string")
                    }
                    ("flags", _) => {
                        return bad(
                            "flags argument to redis.register_function must be a table representing function flags",
                        )
                    }
                    _ => return bad("unknown argument given to redis.register_function"),
                }
            }
            let Some(name) = name else {
                return bad("redis.register_function must get a function name argument");
            };
            let Some(cb) = cb else {
                return bad("redis.register_function must get a callback argument");
            };
            (name, cb, flags, desc)
        }
        _ => return bad("wrong number of arguments to redis.register_function"),
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return bad("Function names can only contain letters, numbers, or underscores(_) and must be at least one character long");
    }
    REGISTERING.with(|r| match r.borrow_mut().as_mut() {
        None => bad("redis.register_function can only be called on FUNCTION LOAD command"),
        Some(list) => {
            if list.iter().any(|(f, _)| f.name == name) {
                return bad("Function already exists in the library");
            }
            let info = super::functions::FuncInfo {
                name,
                description,
                flags,
            };
            list.push((info, cb));
            Ok(())
        }
    })
}

impl Vm {
    /// Runs a library's code, collecting the functions it registers (FUNCTION LOAD's check,
    /// and each VM's reload).
    pub fn load_library(&self, code: &[u8]) -> Result<Vec<(super::functions::FuncInfo, Function)>, String> {
        let chunk = self
            .lua
            .load(&super::lua_source(code)[..])
            .set_name("@user_function")
            .into_function()
            .map_err(|e| format!("ERR Error compiling function: {}", syntax_text(&e)))?;
        REGISTERING.with(|r| *r.borrow_mut() = Some(Vec::new()));
        let result = self.loadlib.call::<MultiValue>(chunk);
        let registered = REGISTERING.with(|r| r.borrow_mut().take()).unwrap_or_default();
        let vals = result.map_err(|e| format!("ERR Error registering functions: {e}"))?;
        if !matches!(vals.front(), Some(Value::Boolean(true))) {
            let msg = match vals.get(1) {
                Some(Value::Table(t)) => t.raw_get::<Option<String>>("err").ok().flatten().unwrap_or_default(),
                _ => String::new(),
            };
            return Err(format!("ERR Error registering functions: {msg}"));
        }
        if registered.is_empty() {
            return Err("ERR No functions registered".into());
        }
        Ok(registered)
    }

    fn load_functions(&mut self) {
        let gen = super::functions::generation();
        self.functions.clear();
        for lib in super::functions::libraries() {
            match self.load_library(&lib.code) {
                Ok(fs) => {
                    for (info, f) in fs {
                        match self.lua.create_registry_value(f) {
                            Ok(key) => {
                                self.functions.insert(info.name, key);
                            }
                            Err(e) => tracing::warn!("function {} failed to load: {e}", info.name),
                        }
                    }
                }
                Err(e) => tracing::warn!("library {} failed to load: {e}", lib.name),
            }
        }
        self.func_gen = gen;
    }
}

/// The innermost message of an error raised by a Rust function.
pub(super) fn root_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => root_message(cause),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::WithContext { cause, .. } => root_message(cause),
        other => other.to_string(),
    }
}

/// `redis.call`: a C function (not a Lua wrapper), so that `return redis.call(...)` keeps
/// the script's frame for the error's line, as in Redis; a failure raises its error table.
unsafe extern "C-unwind" fn lua_redis_call(l: *mut ffi::lua_State) -> c_int {
    redis_call_entry(l, true)
}

/// `redis.pcall`: as `redis.call`, but a failure returns its error table.
unsafe extern "C-unwind" fn lua_redis_pcall(l: *mut ffi::lua_State) -> c_int {
    redis_call_entry(l, false)
}

/// # Safety
/// Called by Lua only. Every Rust value is dropped when `redis_call_raw` returns, so none
/// is live when `lua_error` longjmps; a panic is caught before it reaches Lua's frames.
unsafe fn redis_call_entry(l: *mut ffi::lua_State, raise: bool) -> c_int {
    let failed = match crate::logging::catch_panic(|| redis_call_raw(l)) {
        Ok(failed) => failed,
        Err(_) => {
            push_error_table(l, b"ERR internal error while running the command");
            true
        }
    };
    if failed && raise {
        raise_table(l);
    }
    1
}

/// Pushes `{err = msg}`.
///
/// # Safety
/// Lua's stack; grows it if needed.
unsafe fn push_error_table(l: *mut ffi::lua_State, msg: &[u8]) {
    ffi::lua_checkstack(l, 3);
    ffi::lua_createtable(l, 0, 1);
    push_str(l, b"err");
    push_str(l, msg);
    ffi::lua_rawset(l, -3);
}

/// The work of redis.call/pcall: takes the arguments from the stack, runs the command, and
/// pushes its reply converted to Lua (an error table on failure). Returns true on failure.
///
/// # Safety
/// Called from a Lua C function with its arguments on the stack.
unsafe fn redis_call_raw(l: *mut ffi::lua_State) -> bool {
    let n = ffi::lua_gettop(l);
    // Arguments are strings, or numbers (converted in place, as lua_tolstring does).
    let mut total = 0;
    for i in 1..=n {
        let t = ffi::lua_type(l, i);
        if t == ffi::LUA_TNUMBER {
            // Redis formats numbers with %.17g (lua_tolstring's %.14g loses precision).
            let text = format_number(ffi::lua_tonumber(l, i));
            push_str(l, &text);
            ffi::lua_replace(l, i);
        } else if t != ffi::LUA_TSTRING {
            push_error_table(l, b"ERR Lua redis lib command arguments must be strings or integers");
            return true;
        }
        total += to_bytes(l, i).map_or(0, |b| b.len());
    }
    if n == 0 {
        push_error_table(l, b"ERR Please specify at least one argument for this redis lib call");
        return true;
    }
    // (A script paused on this thread leaves its context set: FUNCTION LOAD's check must
    // not run commands in it.)
    let loading = REGISTERING.with(|r| r.borrow().is_some());
    let reply = CTX.with(|c| {
        let mut ctx = c.borrow_mut();
        if loading || ctx.lent.is_none() {
            return None;
        }
        let ctx = &mut *ctx;
        // One buffer for all the arguments, reused once the command let go of them.
        ctx.arena.reserve(total);
        for i in 1..=n {
            ctx.arena.extend_from_slice(to_bytes(l, i).unwrap_or_default());
        }
        let all = ctx.arena.split().freeze();
        let mut argv = std::mem::take(&mut ctx.argv);
        let mut at = 0;
        for i in 1..=n {
            let len = to_bytes(l, i).map_or(0, |b| b.len());
            argv.push(all.slice(at..at + len));
            at += len;
        }
        drop(all);
        let args = Args::new(argv);
        let reply = call(ctx, &args).map(|()| std::mem::take(&mut ctx.reply.buf));
        let mut argv = args.into_vec();
        argv.clear();
        ctx.argv = argv;
        Some(reply)
    });
    let Some(reply) = reply else {
        // Loading a library: Redis's loader has no redis.call at all.
        let msg = format!(
            "ERR user_function:{}: Script attempted to access nonexistent global variable 'call'",
            library_line(l)
        );
        push_error_table(l, msg.as_bytes());
        return true;
    };
    match reply {
        Err(msg) => {
            push_error_table(l, msg.as_bytes());
            true
        }
        Ok(mut buf) => {
            let failed = buf.first() == Some(&b'-');
            if convert::push_reply(l, &buf, 0).is_none() {
                push_error_table(l, b"ERR reply too deep or malformed for Lua");
            }
            buf.clear();
            CTX.with(|c| c.borrow_mut().reply.buf = buf);
            failed
        }
    }
}

/// A number as Redis's luaArgsToRedisArgv writes it: C's `%.17g`.
fn format_number(n: f64) -> Vec<u8> {
    let mut buf = [0u8; 64];
    // SAFETY: a NUL-terminated format with one double; snprintf writes at most buf.len()
    // bytes, NUL included.
    let len = unsafe { libc::snprintf(buf.as_mut_ptr() as *mut libc::c_char, buf.len(), c"%.17g".as_ptr(), n) };
    buf[..(len.max(0) as usize).min(buf.len() - 1)].to_vec()
}

/// The line of the library code running now (for the error of redis.call at load time).
///
/// # Safety
/// Called from a Lua C function.
unsafe fn library_line(l: *mut ffi::lua_State) -> i32 {
    for level in 0..8 {
        let mut ar: ffi::lua_Debug = std::mem::zeroed();
        if ffi::lua_getstack(l, level, &mut ar) == 0 {
            break;
        }
        if ffi::lua_getinfo(l, c"Sl".as_ptr(), &mut ar) != 0
            && !ar.source.is_null()
            && std::ffi::CStr::from_ptr(ar.source).to_bytes() == b"@user_function"
        {
            return ar.currentline.max(0);
        }
    }
    0
}

/// Blocking commands Redis 7.0 flags noscript (their specs here do not say so yet).
const NOSCRIPT_7_0: &[&str] = &["blpop", "brpop", "blmove", "brpoplpush", "bzpopmin", "bzpopmax"];

/// Runs one command for the script: the checks Redis's scriptCall makes, then the handler,
/// whose reply (in the script's RESP version) is left in `ctx.reply`. Errs with an error
/// raised before running.
fn call(ctx: &mut RunCtx, args: &Args) -> Result<(), String> {
    let top = match ctx.last_cmd {
        // Scripts call the same few commands over and over, spelled the same way.
        Some((name, len, cmd)) if name[..len as usize] == args[0] => cmd,
        _ => {
            let cmd = table::lookup(&args[0]).ok_or("ERR Unknown Redis command called from script")?;
            if args[0].len() <= 16 {
                let mut name = [0u8; 16];
                name[..args[0].len()].copy_from_slice(&args[0]);
                ctx.last_cmd = Some((name, args[0].len() as u8, cmd));
            }
            cmd
        }
    };
    let cmd = if top.spec.subcommands.is_empty() || (args.len() < 2 && !matches!(top.spec.run, Run::Container)) {
        top
    } else if args.len() < 2 {
        return Err("ERR Wrong number of args calling Redis command from script".into());
    } else {
        table::lookup_sub(top, &args[1]).ok_or("ERR Unknown Redis command called from script")?
    };
    if !cmd.spec.arity_ok(args.len()) {
        return Err("ERR Wrong number of args calling Redis command from script".into());
    }
    if cmd.spec.has(flags::NOSCRIPT) || NOSCRIPT_7_0.contains(&cmd.full_name.as_str()) {
        return Err("ERR This Redis command is not allowed from script".into());
    }
    // PUBLISH may replicate: Redis refuses it in read-only scripts too.
    if ctx.read_only && cmd.spec.has(flags::WRITE | flags::MAY_REPLICATE) {
        return Err("ERR Write commands are not allowed from read-only scripts.".into());
    }
    if ctx.restart {
        return Err(RESTART.into());
    }
    // With one shard every key is held and there is no scope to learn.
    if ctx.lent().nshards() > 1
        && (matches!(cmd.spec.run, Run::Keyed(..))
            || matches!(cmd.full_name.as_str(), "keys" | "dbsize" | "memory|usage"))
    {
        check_reach(ctx, cmd, args)?;
    }
    if cmd.spec.has(flags::WRITE) && !ctx.wrote {
        ctx.state.wrote.store(true, Ordering::Release);
        ctx.wrote = true;
    }
    let mut out = std::mem::replace(&mut ctx.reply, Reply::new(ctx.resp));
    out.buf.clear();
    out.proto = ctx.resp;
    let start = Instant::now();
    let result = match cmd.spec.run {
        Run::Keyed(f, _) => {
            // A rewrite in progress keeps its snapshot point-in-time: keys a write is about
            // to change are serialized first (as for any command).
            if ctx.rewriting {
                crate::persist::rewrite::before_command_lent(ctx.lent(), cmd, args);
            }
            let lent = ctx.lent.as_mut().expect("a script is running");
            let mut ex = Exec {
                ks: Keyspace::Lent(lent),
                db: ctx.db,
                now: ctx.now,
                out: &mut out,
                effects: &mut ctx.effects,
                dirty: 0,
                no_touch: ctx.no_touch,
                databases: ctx.databases,
                enc: ctx.enc,
                may_block: false,
                block: None,
                serving: false,
            };
            let r = f(&mut ex, args);
            ctx.dirty += ex.dirty;
            drop(ex);
            let lent = ctx.lent.as_mut().expect("a script is running");
            for s in 0..lent.nshards() {
                if lent.holds(s) {
                    ctx.effects.take_expired(lent.store(s));
                }
            }
            r
        }
        Run::Conn(_) => conn_command(ctx, cmd, args, &mut out),
        // Flagged noscript: refused above.
        Run::Script(_) => Err(CmdError::Static("ERR This Redis command is not allowed from script")),
        Run::Container => Err(CmdError::WrongArity(cmd.full_name.clone())),
    };
    if let Err(e) = &result {
        out.error(&e.to_string());
    }
    ctx.calls.push(CallStat {
        cmd,
        usec: start.elapsed().as_micros() as u64,
        err: result.as_ref().err().map(|e| e.code()),
    });
    ctx.reply = out;
    Ok(())
}

/// What a call fails with once the run is void (see [`Done::restart`]); no client sees it.
const RESTART: &str = "ERR script run abandoned: it will run again holding every shard";

/// Checks that a keyed command's keys are on shards the script holds, noting keys it did
/// not declare. A script that declared its keys on one shard holds only that one (see
/// `families::scripting`); reaching for another before it wrote anything voids the run, to
/// be repeated holding every shard. After a write it cannot be repeated (its writes are
/// done), so the call fails; the script holds every shard from its next run on.
fn check_reach(ctx: &mut RunCtx, cmd: &Cmd, args: &Args) -> Result<(), String> {
    let lent = ctx.lent.as_ref().expect("a script is running");
    let nshards = lent.nshards();
    let mut foreign: Option<Bytes> = None;
    let (args_all, numkeys) = (&ctx.args, ctx.numkeys);
    let declared = &args_all.as_slice()[3..3 + numkeys];
    let mut undeclared = false;
    // KEYS and DBSIZE read every shard the script holds: they need them all.
    let wide = cmd.spec.wide.is_some_and(|w| w(args)) || matches!(cmd.full_name.as_str(), "keys" | "dbsize");
    let holds_all = (0..nshards).all(|s| lent.holds(s));
    let found = crate::command::keys::for_each_key(cmd.spec.key_specs, args, |i| {
        let key = args.bytes(i);
        // Declared keys live on the shards held (the run was placed by them).
        if declared.iter().any(|k| k == key) {
            return;
        }
        undeclared = true;
        if foreign.is_none() && !holds_all && !lent.holds(crate::shard::slot::shard_of(key, nshards)) {
            foreign = Some(key.clone());
        }
    });
    ctx.undeclared |= undeclared;
    if wide || found.is_err() {
        // Keys the specs cannot name (SORT ... BY/GET patterns): any shard may be touched.
        ctx.undeclared = true;
        if holds_all {
            return Ok(());
        }
        foreign = Some(args.bytes(0).clone());
    }
    let Some(key) = foreign else { return Ok(()) };
    ctx.undeclared = true;
    if !ctx.wrote {
        ctx.restart = true;
        return Err(RESTART.into());
    }
    Err(format!(
        "ERR the script used '{}', a key it did not declare, on a shard it did not hold, after writing; \
         its earlier runs used only declared keys, so it held only their shard. It holds every shard from now on: run it again",
        String::from_utf8_lossy(&key)
    ))
}

/// The connection-level commands a script may call: those that touch only the script's own
/// connection state, KEYS and DBSIZE, which read the shards the script already holds
/// (channels_redis flushes with `redis.call('keys', prefix .. '*')`), and MEMORY USAGE,
/// which reads its key's shard (held, as for any key command). The others visit
/// shards on their own, which they cannot do while the script holds every shard.
fn conn_command(ctx: &mut RunCtx, cmd: &Cmd, args: &Args, out: &mut Reply) -> Result<(), CmdError> {
    match cmd.full_name.as_str() {
        "keys" => {
            let now = ctx.now;
            let db = ctx.db;
            let lent = ctx.lent();
            let shards: Vec<usize> = lent.shards().collect();
            let mut found = Vec::new();
            for s in shards {
                found.extend(crate::families::keys::keys_matching(
                    &lent.store(s).dbs[db],
                    now,
                    &args[1],
                ));
            }
            out.array(found.len());
            for k in &found {
                out.bulk(k);
            }
            Ok(())
        }
        // The key's shard is held (check_reach saw to it).
        "memory|usage" => {
            use crate::families::memory;
            let samples = memory::usage_samples(args)?;
            let db = ctx.db;
            let lent = ctx.lent();
            let store = lent.store(crate::shard::slot::shard_of(&args[2], lent.nshards()));
            memory::reply_usage(out, memory::key_usage(&store.dbs[db], &args[2], samples));
            Ok(())
        }
        "dbsize" => {
            let db = ctx.db;
            let lent = ctx.lent();
            let shards: Vec<usize> = lent.shards().collect();
            let n: usize = shards.into_iter().map(|s| lent.store(s).dbs[db].len()).sum();
            out.int(n as i64);
            Ok(())
        }
        "ping" => {
            match args.len() {
                1 => out.simple("PONG"),
                _ => out.bulk(&args[1]),
            }
            Ok(())
        }
        "echo" => {
            out.bulk(&args[1]);
            Ok(())
        }
        "time" => {
            let us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or(0);
            out.array(2);
            out.bulk((us / 1_000_000).to_string().as_bytes());
            out.bulk((us % 1_000_000).to_string().as_bytes());
            Ok(())
        }
        "select" => {
            let db = std::str::from_utf8(&args[1])
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or(CmdError::NotInteger)?;
            if db < 0 || db as usize >= ctx.databases {
                return Err(CmdError::DbIndexOutOfRange);
            }
            ctx.db = db as usize;
            out.ok();
            Ok(())
        }
        // No hop: the count comes from the subscription directory, the message is routed
        // by the client's home shard once the script is done.
        "publish" | "spublish" => {
            let kind = if cmd.full_name == "publish" {
                crate::server::pubsub::Kind::Channel
            } else {
                crate::server::pubsub::Kind::Shard
            };
            let n = crate::server::pubsub::publish_recorded(kind, args.bytes(1).clone(), args.bytes(2).clone());
            out.int(n as i64);
            Ok(())
        }
        _ => Err(CmdError::Custom(format!(
            "ERR '{}' cannot be called from a script in basalt: it visits every shard by itself",
            cmd.full_name
        ))),
    }
}

/// FUNCTION LOAD's check, on the shard thread: runs the library in a fresh VM and returns
/// the functions it registers.
pub fn check_library(code: &[u8]) -> Result<Vec<super::functions::FuncInfo>, String> {
    let vm = Vm::new().map_err(|e| format!("ERR cannot create the Lua state: {e}"))?;
    Ok(vm.load_library(code)?.into_iter().map(|(i, _)| i).collect())
}
