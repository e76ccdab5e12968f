//! One Lua VM per shard thread, run in a coroutine so a long script pauses between slices;
//! the `redis` table and the sandbox.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use futures_channel::oneshot;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};

use super::{convert, libs, STATE};
use crate::command::table::{self, Cmd};
use crate::command::{flags, Args, Exec, Keyspace, Run};
use crate::error::CmdError;
use crate::persist::Effects;
use crate::resp::{Proto, Reply};
use crate::shard::Lent;
use crate::store::EncodingLimits;

/// A script run, with the shards it needs reserved.
pub struct Job {
    /// The script's SHA1, or the function's name for FCALL (errors name it).
    pub sha: String,
    /// FCALL: run this registered function instead of the body.
    pub function: bool,
    pub body: Bytes,
    pub keys: Vec<Bytes>,
    pub argv: Vec<Bytes>,
    pub lent: Lent,
    pub db: usize,
    /// The client's protocol: the script's reply is written in it.
    pub proto: Proto,
    /// EVAL_RO / EVALSHA_RO: write commands are refused.
    pub read_only: bool,
    pub no_touch: bool,
    pub databases: usize,
    pub enc: EncodingLimits,
    /// Where the script's effects go (a transaction passes its own, to get them back).
    pub effects: Effects,
    /// busy-reply-threshold in ms (0: never busy).
    pub busy_ms: u64,
    /// SHUTDOWN NOSAVE stops the script (its effects are dropped: none reach the AOF).
    pub shared: std::sync::Arc<crate::server::ServerShared>,
}

/// A command called from a script, for commandstats/errorstats.
pub struct CallStat {
    pub cmd: &'static Cmd,
    pub usec: u64,
    pub err: Option<String>,
}

pub struct Done {
    pub lent: Lent,
    pub out: BytesMut,
    pub effects: Effects,
    pub dirty: u64,
    pub calls: Vec<CallStat>,
    /// The error code of a script that failed (errorstats).
    pub err: Option<String>,
    /// The script reached for a shard it does not hold before writing anything: its run is
    /// void (nothing changed, its reply is to be dropped) and it must run again holding
    /// every shard.
    pub restart: bool,
    /// The script touched a key it did not declare in KEYS.
    pub undeclared: bool,
    /// Its PUBLISHes and keyspace events, for the home shard to route.
    pub events: crate::server::pubsub::Events,
}

/// The lent world of the running script, reachable from `redis.call`.
struct RunCtx {
    lent: Lent,
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
    /// KEYS, to notice a key the script did not declare.
    declared: Vec<Bytes>,
    undeclared: bool,
    /// A write command ran.
    wrote: bool,
    /// See [`Done::restart`]: once set, every further call fails at once.
    restart: bool,
    /// The time every command of the script sees (Redis freezes it for a script's run, so
    /// a key cannot expire halfway through).
    now: u64,
}

thread_local! {
    static CTX: RefCell<Option<RunCtx>> = const { RefCell::new(None) };
    /// This shard thread's VM, with the script generation it was built for. Taken out while
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

/// Runs a script on this shard's thread, in a coroutine with its own stack so a long one
/// can pause between slices. Scripts on one thread run one at a time. One that does not end
/// within its first slice is finished by a task of its own, so a client that goes away
/// mid-script cannot cut it short: it finishes and gives its shards back.
pub fn start(job: Job) -> Started {
    if IN_USE.get() {
        // Another script on this thread is paused mid-run: this one waits for it.
        let (tx, rx) = oneshot::channel();
        glommio::spawn_local(async move {
            while IN_USE.get() {
                glommio::executor().yield_task_queue_now().await;
            }
            let done = match begin(job) {
                Begun::Done(d) => d,
                Begun::Paused(co) => finish(co).await,
            };
            let _ = tx.send(done);
        })
        .detach();
        return Started::Later(rx);
    }
    match begin(job) {
        Begun::Done(d) => Started::Done(d),
        Begun::Paused(co) => {
            let (tx, rx) = oneshot::channel();
            glommio::spawn_local(async move {
                let _ = tx.send(finish(co).await);
            })
            .detach();
            Started::Later(rx)
        }
    }
}

type ScriptCoroutine = Coroutine<(), (), Done, DefaultStack>;

#[allow(clippy::large_enum_variant)]
enum Begun {
    Done(Done),
    Paused(ScriptCoroutine),
}

/// Starts a script on this thread and runs its first slice. Most scripts end within it;
/// a longer one comes back paused, to be finished by [`finish`].
fn begin(job: Job) -> Begun {
    let stack = match STACK.take() {
        Some(s) => s,
        None => match DefaultStack::new(SCRIPT_STACK) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot allocate a stack for scripts: {e}");
                return Begun::Done(fail(job, "ERR cannot allocate a stack for the script"));
            }
        },
    };
    IN_USE.set(true);
    let mut co = Coroutine::with_stack(stack, move |y: &Yielder<(), ()>, ()| {
        YIELDER.set(y as *const _);
        let done = run_on_this_thread(job);
        YIELDER.set(std::ptr::null());
        done
    });
    SLICE_START.set(Some(Instant::now()));
    match co.resume(()) {
        CoroutineResult::Return(done) => {
            end(co);
            Begun::Done(done)
        }
        CoroutineResult::Yield(()) => Begun::Paused(co),
    }
}

/// Gives a paused script a slice at each turn of the executor until it ends.
async fn finish(mut co: ScriptCoroutine) -> Done {
    loop {
        glommio::executor().yield_task_queue_now().await;
        SLICE_START.set(Some(Instant::now()));
        if let CoroutineResult::Return(done) = co.resume(()) {
            end(co);
            return done;
        }
    }
}

fn end(co: ScriptCoroutine) {
    SLICE_START.set(None);
    STACK.set(Some(co.into_stack()));
    IN_USE.set(false);
}

/// What the VM's hook checks during a run.
struct HookState {
    start: Instant,
    /// busy-reply-threshold in ms (0: never busy).
    busy_ms: u64,
    shared: std::sync::Arc<crate::server::ServerShared>,
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
        if h.shared.is_shutting_down() {
            return Err(mlua::Error::runtime("Script stopped by SHUTDOWN"));
        }
        let ms = h.start.elapsed().as_millis() as u64;
        if h.busy_ms > 0 && ms >= h.busy_ms && !STATE.busy.load(Ordering::Relaxed) {
            tracing::warn!(
                "Slow script detected: still in execution after {ms} milliseconds. You can try killing the script using the SCRIPT KILL command."
            );
            STATE.busy.store(true, Ordering::Release);
        }
        if STATE.kill.load(Ordering::Acquire) {
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
        // SAFETY: set by the running coroutine to its own yielder, which lives for the
        // whole coroutine body; cleared before the body returns. The hook runs on that
        // coroutine's stack.
        unsafe { (*y).suspend(()) };
    }
}

fn run_on_this_thread(job: Job) -> Done {
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
            Some((_, v)) => v.run(job),
            None => fail(job, "ERR cannot create the Lua state"),
        }
    })
}

fn fail(job: Job, msg: &str) -> Done {
    let mut out = Reply::new(job.proto);
    out.error(msg);
    Done {
        lent: job.lent,
        out: out.take(),
        effects: job.effects,
        dirty: 0,
        calls: Vec::new(),
        err: Some("ERR".into()),
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
local errmsg = __basalt_errmsg
local raised = __basalt_raised
local rawpcall, select, unpack = pcall, select, unpack
local function fix(n, ok, e, ...)
  if not ok and type(e) == 'table' and raised[e] then e = e.err end
  return ok, e, ...
end
pcall = function(...)
  return fix(0, rawpcall(...))
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
    err = {err = errmsg(err)}
  elseif type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  end
  if i then
    err['source'] = i.source
    err['line'] = i.currentline
  end
  return err
end
local env_mt = {
  __index = function(t, k)
    local v = G[k]
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
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
__basalt_fcall = function(f, keys, args)
  return xpcall(function() return f(keys, args) end, handler)
end
__basalt_loadlib = function(chunk)
  local env = setmetatable({}, env_mt)
  rawset(env, '_G', env)
  setfenv(chunk, env)
  return xpcall(chunk, handler)
end
-- One environment per script function, made on its first run; each run sets KEYS and ARGV.
local envs = setmetatable({}, {__mode = 'k'})
__basalt_run = function(f, keys, argv)
  local env = envs[f]
  if not env then
    env = setmetatable({}, env_mt)
    rawset(env, '_G', env)
    setfenv(f, env)
    envs[f] = env
  end
  rawset(env, 'KEYS', keys)
  rawset(env, 'ARGV', argv)
  return xpcall(f, handler)
end
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
    lua: Lua,
    run: Function,
    fcall: Function,
    loadlib: Function,
    /// Registered functions by name, for the function registry's generation `func_gen`.
    functions: HashMap<String, Function>,
    func_gen: u64,
    scripts: HashMap<String, Function>,
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
        let call = lua.create_function(|lua, args: MultiValue| redis_call(lua, args))?;
        lua.set_named_registry_value("basalt_call", call)?;
        // SAFETY: raw_redis_call follows the Lua C API protocol (see there).
        let raw = unsafe { lua.create_c_function(raw_redis_call)? };
        let redis_t: Table = g.get("redis")?;
        redis_t.set("call", raw)?;
        redis_t.set(
            "pcall",
            lua.create_function(|lua, args: MultiValue| Ok(redis_call(lua, args)?.1))?,
        )?;
        g.set(
            "__basalt_errmsg",
            lua.create_function(|_, v: Value| {
                Ok(match v {
                    Value::Error(e) => format!("ERR {}", root_message(&e)),
                    other => format!("ERR {other:?}"),
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
        let run: Function = g.get("__basalt_run")?;
        let fcall: Function = g.get("__basalt_fcall")?;
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
        g.raw_set("__basalt_run", Value::Nil)?;
        g.raw_set("__basalt_fcall", Value::Nil)?;
        g.raw_set("__basalt_loadlib", Value::Nil)?;
        g.raw_set("__basalt_errmsg", Value::Nil)?;
        g.raw_set("__basalt_raised", Value::Nil)?;
        Ok(Vm {
            poisoned: false,
            lua,
            run,
            fcall,
            loadlib,
            functions: HashMap::new(),
            func_gen: u64::MAX,
            scripts: HashMap::new(),
        })
    }

    fn run(&mut self, job: Job) -> Done {
        let Job {
            sha,
            function,
            body,
            keys,
            argv,
            lent,
            db,
            proto,
            read_only,
            no_touch,
            databases,
            enc,
            effects,
            busy_ms,
            shared,
        } = job;
        crate::server::pubsub::enter_script(&shared);
        CTX.with(|c| {
            *c.borrow_mut() = Some(RunCtx {
                lent,
                effects,
                db,
                read_only,
                no_touch,
                databases,
                enc,
                dirty: 0,
                calls: Vec::new(),
                resp: Proto::Resp2,
                declared: keys.clone(),
                undeclared: false,
                wrote: false,
                restart: false,
                now: crate::server::unix_ms(),
            })
        });
        let mut out = Reply::new(proto);
        // A panic (a bug in a handler) must not keep every shard reserved forever: the
        // shards go back and the client gets an error; the VM is rebuilt for the next run.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.execute(&sha, function, &body, keys, argv, busy_ms, &shared, &mut out)
        }));
        let err = match run {
            Ok(err) => err,
            Err(_) => {
                tracing::error!("a script run panicked; its shards are released");
                self.poisoned = true;
                out = Reply::new(proto);
                out.error("ERR internal error while running the script");
                Some("ERR".into())
            }
        };
        let mut ctx = CTX
            .with(|c| c.borrow_mut().take())
            .expect("the run context is set at the start of run");
        if shared.is_shutting_down() {
            ctx.effects = Effects::new(false);
        }
        STATE.busy.store(false, Ordering::Release);
        STATE.kill.store(false, Ordering::Release);
        STATE.wrote.store(false, Ordering::Release);
        STATE.running.store(false, Ordering::Release);
        Done {
            lent: ctx.lent,
            out: out.take(),
            effects: ctx.effects,
            dirty: ctx.dirty,
            calls: ctx.calls,
            err,
            restart: ctx.restart,
            undeclared: ctx.undeclared,
            events: crate::server::pubsub::take_events(),
        }
    }

    /// Runs one script, writing its reply; returns the error code if it failed.
    #[allow(clippy::too_many_arguments)]
    fn execute(
        &mut self,
        sha: &str,
        function: bool,
        body: &[u8],
        keys: Vec<Bytes>,
        argv: Vec<Bytes>,
        busy_ms: u64,
        shared: &std::sync::Arc<crate::server::ServerShared>,
        out: &mut Reply,
    ) -> Option<String> {
        let f = match self.scripts.get(sha) {
            _ if function => {
                if self.func_gen != super::functions::generation() {
                    self.load_functions();
                }
                match self.functions.get(sha) {
                    Some(f) => f.clone(),
                    None => {
                        out.error("ERR Function not found");
                        return Some("ERR".into());
                    }
                }
            }
            Some(f) => f.clone(),
            None => match self
                .lua
                .load(&super::lua_source(body)[..])
                .set_name("@user_script")
                .into_function()
            {
                Ok(f) => {
                    self.scripts.insert(sha.to_string(), f.clone());
                    f
                }
                Err(e) => {
                    let msg = format!("ERR Error compiling script (new function): {}", syntax_text(&e));
                    out.error(&msg);
                    return Some("ERR".into());
                }
            },
        };
        let to_table = |items: Vec<Bytes>| -> mlua::Result<Table> {
            let t = self.lua.create_table_with_capacity(items.len(), 0)?;
            for (i, k) in items.iter().enumerate() {
                t.raw_set(i + 1, self.lua.create_string(k)?)?;
            }
            Ok(t)
        };
        let (k, a) = match (to_table(keys), to_table(argv)) {
            (Ok(k), Ok(a)) => (k, a),
            _ => {
                out.error("ERR out of memory creating the script's arguments");
                return Some("ERR".into());
            }
        };
        STATE.function.store(function, Ordering::Release);
        STATE.running.store(true, Ordering::Release);
        HOOK.set(Some(HookState {
            start: SLICE_START.get().unwrap_or_else(Instant::now),
            busy_ms,
            shared: shared.clone(),
        }));
        let result = if function {
            self.fcall.call::<MultiValue>((f, k, a))
        } else {
            self.run.call::<MultiValue>((f, k, a))
        };
        HOOK.set(None);
        let resp_mode = CTX
            .with(|c| c.borrow().as_ref().map(|c| c.resp))
            .unwrap_or(Proto::Resp2);
        let _ = resp_mode;
        match result {
            Ok(vals) => {
                let ok = matches!(vals.front(), Some(Value::Boolean(true)));
                let first = vals.get(1).cloned().unwrap_or(Value::Nil);
                if ok {
                    return convert::lua_to_reply(&first, out, 0);
                }
                let killed = STATE.kill.load(Ordering::Acquire);
                let (mut msg, source, line) = match &first {
                    Value::Table(t) => (
                        t.raw_get::<Value>("err")
                            .ok()
                            .and_then(|v| match v {
                                Value::String(s) => Some(s.to_string_lossy()),
                                _ => None,
                            })
                            .unwrap_or_default(),
                        t.raw_get::<Option<String>>("source").ok().flatten(),
                        t.raw_get::<Value>("line").ok(),
                    ),
                    other => (format!("ERR {other:?}"), None, None),
                };
                if killed {
                    msg = super::KILLED.to_string();
                }
                let msg = msg.strip_prefix('-').unwrap_or(&msg).to_string();
                let line = match line {
                    Some(Value::Integer(i)) => Some(i.to_string()),
                    Some(Value::Number(n)) => Some((n as i64).to_string()),
                    _ => None,
                };
                let text = match (source, line) {
                    (Some(s), Some(l)) => format!("{msg} script: {sha}, on {s}:{l}."),
                    _ => msg.clone(),
                };
                out.error(&text);
                Some(msg.split(' ').next().unwrap_or("ERR").to_string())
            }
            Err(e) => {
                out.error(&format!("ERR Error running script {sha}: {e}"));
                Some("ERR".into())
            }
        }
    }
}

/// `redis.*` besides call/pcall (which the prelude builds over `__basalt_call`).
fn register_redis(lua: &Lua, redis: &Table) -> mlua::Result<()> {
    redis.set(
        "error_reply",
        lua.create_function(|lua, msg: Value| {
            let Value::String(s) = msg else {
                return Err(mlua::Error::runtime("wrong number or type of arguments"));
            };
            let t = lua.create_table()?;
            t.raw_set("err", lua.create_string(convert::error_text(&s.as_bytes()))?)?;
            Ok(t)
        })?,
    )?;
    redis.set(
        "status_reply",
        lua.create_function(|lua, msg: Value| {
            let Value::String(s) = msg else {
                return Err(mlua::Error::runtime("wrong number or type of arguments"));
            };
            let t = lua.create_table()?;
            t.raw_set("ok", s)?;
            Ok(t)
        })?,
    )?;
    redis.set(
        "sha1hex",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(mlua::Error::runtime("wrong number of arguments"));
            }
            let bytes = match lua.coerce_string(args[0].clone())? {
                Some(s) => s.as_bytes().to_vec(),
                None => Vec::new(),
            };
            Ok(super::sha1_hex(&bytes))
        })?,
    )?;
    redis.set(
        "log",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() < 2 {
                return Err(mlua::Error::runtime("redis.log() requires two arguments or more."));
            }
            let level = match &args[0] {
                Value::Integer(i) => *i,
                Value::Number(n) => *n as i64,
                _ => return Err(mlua::Error::runtime("First argument must be a number (log level).")),
            };
            if !(0..=3).contains(&level) {
                return Err(mlua::Error::runtime("Invalid debug level."));
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
            Ok(())
        })?,
    )?;
    redis.set(
        "setresp",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(mlua::Error::runtime("redis.setresp() requires one argument."));
            }
            let v = match &args[0] {
                Value::Integer(i) => *i,
                Value::Number(n) => *n as i64,
                _ => 0,
            };
            let p = match v {
                2 => Proto::Resp2,
                3 => Proto::Resp3,
                _ => return Err(mlua::Error::runtime("RESP version must be 2 or 3.")),
            };
            CTX.with(|c| {
                if let Some(c) = c.borrow_mut().as_mut() {
                    c.resp = p;
                }
            });
            Ok(())
        })?,
    )?;
    redis.set(
        "set_repl",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(mlua::Error::runtime("redis.set_repl() requires one argument."));
            }
            let v = match &args[0] {
                Value::Integer(i) => *i,
                Value::Number(n) => *n as i64,
                _ => -1,
            };
            if !(0..=3).contains(&v) {
                return Err(mlua::Error::runtime(
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                ));
            }
            Ok(())
        })?,
    )?;
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
                Ok(fs) => self.functions.extend(fs.into_iter().map(|(i, f)| (i.name, f))),
                Err(e) => tracing::warn!("library {} failed to load: {e}", lib.name),
            }
        }
        self.func_gen = gen;
    }
}

/// The innermost message of an error raised by a Rust function.
fn root_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => root_message(cause),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::WithContext { cause, .. } => root_message(cause),
        other => other.to_string(),
    }
}

/// `redis.call`: a C function (not a Lua wrapper) so that `return redis.call(...)` keeps the
/// script's frame for the error's line, as in Redis. It runs `basalt_call` and raises the
/// error table it returns on failure.
///
/// # Safety
/// Called by Lua only. No Rust value with a destructor is live when `lua_error` longjmps.
unsafe extern "C-unwind" fn raw_redis_call(l: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    use mlua::ffi;
    let nargs = ffi::lua_gettop(l);
    ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, c"basalt_call".as_ptr());
    ffi::lua_insert(l, 1);
    ffi::lua_call(l, nargs, 2);
    if ffi::lua_toboolean(l, -2) != 0 {
        // Marked so that a Lua pcall around redis.call sees the message, as in Redis 7.0.
        ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, c"basalt_raised".as_ptr());
        ffi::lua_pushvalue(l, -2);
        ffi::lua_pushboolean(l, 1);
        ffi::lua_rawset(l, -3);
        ffi::lua_settop(l, -2);
        ffi::lua_error(l);
    }
    1
}

/// `basalt_call(cmd, args...)`: returns (failed, value). A failure's value is the
/// error table `{err = "..."}` the prelude raises (redis.call) or returns (redis.pcall).
fn redis_call(lua: &Lua, args: MultiValue) -> mlua::Result<(bool, Value)> {
    let it = args.into_iter();
    let mut argv: Vec<Bytes> = Vec::with_capacity(it.len());
    let fail = |lua: &Lua, msg: &str| -> mlua::Result<(bool, Value)> {
        let t = lua.create_table()?;
        t.raw_set("err", msg)?;
        Ok((true, Value::Table(t)))
    };
    for v in it {
        match v {
            Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(_) | Value::Number(_) => match lua.coerce_string(v)? {
                Some(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
                None => return fail(lua, "ERR Lua redis lib command arguments must be strings or integers"),
            },
            _ => return fail(lua, "ERR Lua redis lib command arguments must be strings or integers"),
        }
    }
    if argv.is_empty() {
        return fail(lua, "ERR Please specify at least one argument for this redis lib call");
    }
    if CTX.with(|c| c.borrow().is_none()) {
        // Loading a library: Redis's loader has no redis.call at all.
        let line = (0..8)
            .filter_map(|lvl| {
                lua.inspect_stack(lvl, |d| {
                    let src = d.source();
                    (src.source.as_deref() == Some("@user_function")).then(|| d.current_line().unwrap_or(0))
                })
                .flatten()
            })
            .next()
            .unwrap_or(0);
        return fail(
            lua,
            &format!("ERR user_function:{line}: Script attempted to access nonexistent global variable 'call'"),
        );
    }
    let args = Args::new(argv);
    let reply = CTX.with(|c| {
        let mut c = c.borrow_mut();
        match c.as_mut() {
            Some(ctx) => call(ctx, &args),
            None => Err("ERR redis.call can not be used while loading a library".to_string()),
        }
    });
    match reply {
        Err(msg) => fail(lua, &msg),
        Ok((bytes, resp)) => {
            let (v, _) = convert::reply_to_lua(lua, &bytes, 0, resp)?;
            let failed = bytes.first() == Some(&b'-');
            Ok((failed, v))
        }
    }
}

/// Blocking commands Redis 7.0 flags noscript (their specs here do not say so yet).
const NOSCRIPT_7_0: &[&str] = &["blpop", "brpop", "blmove", "brpoplpush", "bzpopmin", "bzpopmax"];

/// Runs one command for the script: the checks Redis's scriptCall makes, then the handler.
/// Returns the reply bytes (in the script's RESP version), or an error raised before running.
fn call(ctx: &mut RunCtx, args: &Args) -> Result<(BytesMut, Proto), String> {
    let top = table::lookup(&args[0]).ok_or("ERR Unknown Redis command called from script")?;
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
    if matches!(cmd.spec.run, Run::Keyed(..)) || matches!(cmd.full_name.as_str(), "keys" | "dbsize") {
        check_reach(ctx, cmd, args)?;
    }
    if cmd.spec.has(flags::WRITE) {
        STATE.wrote.store(true, Ordering::Release);
        ctx.wrote = true;
    }
    let mut out = Reply::new(ctx.resp);
    let start = Instant::now();
    let result = match cmd.spec.run {
        Run::Keyed(f, _) => {
            let mut ex = Exec {
                ks: Keyspace::Lent(&mut ctx.lent),
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
            };
            let r = f(&mut ex, args);
            ctx.dirty += ex.dirty;
            let shards: Vec<usize> = ctx.lent.shards().collect();
            for s in shards {
                ctx.effects.take_expired(ctx.lent.store(s));
            }
            r
        }
        Run::Conn(_) => conn_command(ctx, cmd, args, &mut out),
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
    Ok((out.take(), ctx.resp))
}

/// What a call fails with once the run is void (see [`Done::restart`]); no client sees it.
const RESTART: &str = "ERR script run abandoned: it will run again holding every shard";

/// Checks that a keyed command's keys are on shards the script holds, noting keys it did
/// not declare. A script that declared its keys on one shard holds only that one (see
/// `families::scripting`); reaching for another before it wrote anything voids the run, to
/// be repeated holding every shard. After a write it cannot be repeated (its writes are
/// done), so the call fails; the script holds every shard from its next run on.
fn check_reach(ctx: &mut RunCtx, cmd: &Cmd, args: &Args) -> Result<(), String> {
    let nshards = ctx.lent.nshards();
    let mut foreign: Option<Bytes> = None;
    // KEYS and DBSIZE read every shard the script holds: they need them all.
    let wide = cmd.spec.wide.is_some_and(|w| w(args)) || matches!(cmd.full_name.as_str(), "keys" | "dbsize");
    let found = crate::command::keys::for_each_key(cmd.spec.key_specs, args, |i| {
        let key = args.bytes(i);
        if !ctx.declared.iter().any(|k| k == key) {
            ctx.undeclared = true;
        }
        if foreign.is_none() && !ctx.lent.holds(crate::shard::slot::shard_of(key, nshards)) {
            foreign = Some(key.clone());
        }
    });
    if wide || found.is_err() {
        // Keys the specs cannot name (SORT ... BY/GET patterns): any shard may be touched.
        ctx.undeclared = true;
        if (0..nshards).all(|s| ctx.lent.holds(s)) {
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
/// connection state, and KEYS and DBSIZE, which read the shards the script already holds
/// (channels_redis flushes with `redis.call('keys', prefix .. '*')`). The others visit
/// shards on their own, which they cannot do while the script holds every shard.
fn conn_command(ctx: &mut RunCtx, cmd: &Cmd, args: &Args, out: &mut Reply) -> Result<(), CmdError> {
    match cmd.full_name.as_str() {
        "keys" => {
            let now = ctx.now;
            let shards: Vec<usize> = ctx.lent.shards().collect();
            let mut found = Vec::new();
            for s in shards {
                found.extend(crate::families::keys::keys_matching(
                    &ctx.lent.store(s).dbs[ctx.db],
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
        "dbsize" => {
            let shards: Vec<usize> = ctx.lent.shards().collect();
            let n: usize = shards.into_iter().map(|s| ctx.lent.store(s).dbs[ctx.db].len()).sum();
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
