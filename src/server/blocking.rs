//! Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP).
//!
//! A blocking command is an ordinary keyed handler that, finding nothing to serve, asks to
//! block (`Exec::block_on`). The client then registers one [`Waiter`] under each of its keys,
//! on the shards that own them, *in the same step* that found the keys empty (inside the
//! shard's op, or under the reservation of all its shards), so no push can slip between
//! "empty" and "registered".
//!
//! Writes that add elements mark their key ready (`Db::signal_ready`). After every command
//! (or, for a coordinated multi-shard step, when its shards are released) the shard serves
//! its ready keys: waiters in arrival order, each by re-running its command over the keys
//! of this shard. A waiter registered on several shards is served exactly once: every
//! waiter carries one [`Token`], and a shard must win the token (an atomic swap) before it
//! pops anything for it, in the same synchronous step as the pop. Shards that lose skip the
//! waiter. The client, when it times out, is unblocked or disconnects, tries to win the
//! token itself; if a shard won first, the reply is already on its way and is delivered.
//!
//! A command that must write on another shard (BLMOVE/BRPOPLPUSH whose destination lives
//! elsewhere) cannot be finished by the source shard alone: the shard wins the token and
//! tells the client to retry, and the client runs the command again atomically under a
//! reservation of both shards (blocking again if someone else took the element first).

use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use futures_lite::FutureExt;

use crate::command::table::Cmd;
use crate::command::{acl, Args};
use crate::error::CmdError;
use crate::resp::Reply;
use crate::server::client::Client;
use crate::server::dispatch::{self, BatchCtx, ExecMode};
use crate::server::unix_ms;
use crate::shard::{shard_of, Shard};
use crate::store::{Key, Store};

const WAITING: u8 = 0;
const TAKEN: u8 = 1;

/// What a blocked client is told by the shard that won its token.
pub enum Wake {
    /// The command ran; these are its reply bytes.
    Served(Bytes),
    /// The key has data but the command needs other shards too: run it again.
    Retry,
}

/// One blocked command's claim ticket, shared by all its registrations.
pub struct Token {
    state: AtomicU8,
    tx: Mutex<Option<oneshot::Sender<Wake>>>,
}

impl Token {
    fn new(tx: oneshot::Sender<Wake>) -> Token {
        Token {
            state: AtomicU8::new(WAITING),
            tx: Mutex::new(Some(tx)),
        }
    }

    /// Wins the waiter: true for exactly one caller, shard or client.
    fn claim(&self) -> bool {
        self.state
            .compare_exchange(WAITING, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn is_taken(&self) -> bool {
        self.state.load(Ordering::Acquire) == TAKEN
    }

    fn send(&self, wake: Wake) {
        let tx = self.tx.lock().map(|mut t| t.take()).unwrap_or(None);
        if let Some(tx) = tx {
            let _ = tx.send(wake);
        }
    }
}

/// A client blocked on keys, as registered under each of them.
pub struct Waiter {
    pub id: u64,
    token: Token,
    cmd: &'static Cmd,
    args: Args,
    ctx: BatchCtx,
    /// The command's keys, and the shard owning all of them if there is one.
    keys: Vec<Bytes>,
    single_shard: Option<usize>,
    /// The value type that can serve it ("list" or "zset").
    kind: &'static str,
}

/// Registers `w` under its keys that live in `store` (shard `shard`).
fn register(store: &mut Store, shard: usize, nshards: usize, w: &Arc<Waiter>) {
    for key in &w.keys {
        if shard_of(key, nshards) != shard {
            continue;
        }
        let db = &mut store.dbs[w.ctx.db];
        let q = db
            .blocked
            .get_or_insert_with(Default::default)
            .waiters
            .entry(Key::from(&key[..]))
            .or_default();
        if !q.iter().any(|o| o.id == w.id) {
            q.push_back(w.clone());
            store.blocked_waiters += 1;
        }
    }
}

/// Removes waiter `id` from the keys of `store`'s database `db`.
fn unregister(store: &mut Store, db: usize, id: u64, keys: &[Bytes]) {
    let d = &mut store.dbs[db];
    let Some(b) = d.blocked.as_mut() else { return };
    for key in keys {
        if let Some(q) = b.waiters.get_mut(&key[..]) {
            let before = q.len();
            q.retain(|w| w.id != id);
            store.blocked_waiters -= before - q.len();
            if q.is_empty() {
                b.waiters.remove(&key[..]);
            }
        }
    }
    if b.waiters.is_empty() {
        d.blocked = None;
    }
}

/// Serves the clients blocked on keys that became ready on this shard. Called after every
/// command that ran here and when a coordinator releases the shard.
pub fn serve_ready(sh: &Rc<Shard>) {
    loop {
        let ready: Vec<(usize, Key)> = sh.with_store(|st| {
            let mut v = Vec::new();
            for (i, db) in st.dbs.iter_mut().enumerate() {
                if let Some(b) = db.blocked.as_mut() {
                    v.extend(b.ready.drain(..).map(|k| (i, k)));
                }
            }
            v
        });
        if ready.is_empty() {
            return;
        }
        for (db, key) in ready {
            serve_key(sh, db, &key);
        }
    }
}

/// The next waiter on `key` that is still waiting, dropping the ones already served elsewhere.
fn front_waiter(st: &mut Store, db: usize, key: &[u8]) -> Option<Arc<Waiter>> {
    let q = st.dbs[db].blocked.as_mut()?.waiters.get_mut(key)?;
    while let Some(w) = q.front() {
        if !w.token.is_taken() {
            return Some(w.clone());
        }
        q.pop_front();
        st.blocked_waiters -= 1;
    }
    None
}

fn pop_front(st: &mut Store, db: usize, key: &[u8]) {
    let d = &mut st.dbs[db];
    let Some(b) = d.blocked.as_mut() else { return };
    if let Some(q) = b.waiters.get_mut(key) {
        if q.pop_front().is_some() {
            st.blocked_waiters -= 1;
        }
        if q.is_empty() {
            b.waiters.remove(key);
        }
    }
    if b.waiters.is_empty() && b.ready.is_empty() {
        d.blocked = None;
    }
}

fn serve_key(sh: &Rc<Shard>, db: usize, key: &[u8]) {
    loop {
        let now = sh.local.unix_ms_at(std::time::Instant::now());
        let Some(w) = sh.with_store(|st| {
            let w = front_waiter(st, db, key)?;
            let d = &mut st.dbs[db];
            let servable = d.contains(key, now) && d.peek(key).is_some_and(|e| e.value.type_name() == w.kind);
            servable.then_some(w)
        }) else {
            return;
        };
        if !w.token.claim() {
            // Won by another shard (or timed out) between our check and now.
            sh.with_store(|st| pop_front(st, db, key));
            continue;
        }
        sh.with_store(|st| pop_front(st, db, key));
        let mode = match w.single_shard {
            Some(s) if s == sh.id => ExecMode::Serve,
            _ if w.cmd.spec.key_specs.len() == 1 => ExecMode::ServeOnly,
            _ => {
                w.token.send(Wake::Retry);
                continue;
            }
        };
        let mut out = Reply::new(w.ctx.proto);
        let blocked = dispatch::exec_keyed_mode(sh, w.cmd, &w.args, &w.ctx, &mut out, mode);
        sh.flush_effects();
        if blocked.is_some() {
            // Nothing after all (cannot happen for a live key of the right type, but the
            // client must not hang): let it try again.
            w.token.send(Wake::Retry);
        } else {
            w.token.send(Wake::Served(out.take().freeze()));
        }
    }
}

/// How a blocked wait ended from the client's side.
enum Ended {
    Woken(Result<Wake, oneshot::Canceled>),
    Timeout,
    Unblocked(Unblock),
    Disconnected,
}

/// CLIENT UNBLOCK's modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unblock {
    Timeout,
    Error,
}

/// The outcome of one attempt to run a blocking command.
enum Attempt {
    Done(Bytes),
    Blocked {
        deadline: u64,
        waiter: Arc<Waiter>,
        rx: oneshot::Receiver<Wake>,
    },
}

/// Runs a blocking command for a client: serve at once, or block until served, timed out,
/// unblocked or disconnected. `conn` lets the wait notice the client going away.
///
/// `blocked` grows by the time spent waiting, which Redis leaves out of the command's
/// duration (commandstats, latencystats, the slow log): a BRPOP that waited 1 s is not slow.
pub async fn run(
    client: &mut Client,
    cmd: &'static Cmd,
    args: Args,
    conn: Option<&crate::server::tls::Conn>,
    blocked: &mut std::time::Duration,
) -> Result<(), CmdError> {
    let mut positions = Vec::new();
    // A bad key count: the handler answers its own error, on the home shard.
    let keys: Vec<Bytes> = match crate::command::keys::key_positions(cmd.spec.key_specs, &args, &mut positions) {
        Ok(()) => positions.iter().map(|&p| args.bytes(p).clone()).collect(),
        Err(_) => Vec::new(),
    };
    let n = client.shard.nshards;
    let mut shards: Vec<usize> = keys.iter().map(|k| shard_of(k, n)).collect();
    if shards.is_empty() {
        shards.push(client.shard.id);
    }
    shards.sort_unstable();
    shards.dedup();
    let kind = if cmd.spec.acl & acl::SORTEDSET != 0 {
        "zset"
    } else {
        "list"
    };
    loop {
        let (tx, rx) = oneshot::channel();
        let waiter = Arc::new(Waiter {
            id: client.shard.local.shared.next_client_id.fetch_add(1, Ordering::Relaxed) | 1 << 63,
            token: Token::new(tx),
            cmd,
            args: args.clone(),
            ctx: BatchCtx::of(client),
            keys: keys.clone(),
            single_shard: (shards.len() == 1).then(|| shards[0]),
            kind,
        });
        let attempt = if shards.len() == 1 {
            attempt_one(client, shards[0], waiter, rx).await?
        } else {
            attempt_many(client, &shards, waiter, rx).await?
        };
        let (deadline, waiter, mut rx) = match attempt {
            Attempt::Done(bytes) => {
                client.out.raw(&bytes);
                return Ok(());
            }
            Attempt::Blocked { deadline, waiter, rx } => (deadline, waiter, rx),
        };
        let waited = std::time::Instant::now();
        let ended = wait(client, deadline, &mut rx, conn).await;
        *blocked += waited.elapsed();
        let wake = match ended {
            Ended::Woken(w) => w,
            other => {
                if waiter.token.claim() {
                    cleanup(client, &waiter, &shards);
                    match other {
                        Ended::Disconnected => client.close_after_reply = true,
                        Ended::Unblocked(Unblock::Error) => return Err(UNBLOCKED),
                        _ => timeout_reply(client),
                    }
                    return Ok(());
                }
                // A shard won the token first: it sends its reply in the same step.
                rx.await
            }
        };
        cleanup(client, &waiter, &shards);
        match wake {
            Ok(Wake::Served(bytes)) => {
                client.out.raw(&bytes);
                return Ok(());
            }
            Ok(Wake::Retry) => continue,
            Err(_) => return Err(CmdError::Static("ERR shard unavailable: the server is shutting down")),
        }
    }
}

/// The reply of a blocking command that timed out (or was unblocked with TIMEOUT): a null
/// array for every blocking command, BLMOVE included, as Redis's replyToBlockedClientTimedOut.
fn timeout_reply(client: &mut Client) {
    client.out.null_array();
}

/// One shard owns every key: try there, and register in the same op if nothing serves.
async fn attempt_one(
    client: &mut Client,
    shard: usize,
    waiter: Arc<Waiter>,
    rx: oneshot::Receiver<Wake>,
) -> Result<Attempt, CmdError> {
    let w = waiter.clone();
    let (bytes, block, events) = client
        .shard
        .hop(shard, move |sh| {
            let mut out = Reply::new(w.ctx.proto);
            let block = dispatch::exec_keyed_mode(sh, w.cmd, &w.args, &w.ctx, &mut out, ExecMode::MayBlock);
            // Taken before serving others: the client publishes its own events, in order.
            let events = super::pubsub::take_events();
            match block {
                Some(_) => sh.with_store(|st| register(st, sh.id, sh.nshards, &w)),
                None => {
                    sh.flush_effects();
                    serve_ready(sh);
                }
            }
            (out.take(), block, events)
        })
        .await?;
    super::pubsub::publish_events(&client.shard, events).await;
    Ok(match block {
        Some(deadline) => Attempt::Blocked { deadline, waiter, rx },
        None => Attempt::Done(bytes.freeze()),
    })
}

/// Keys on several shards: try under a reservation of all of them, registering on each
/// before they are released.
async fn attempt_many(
    client: &mut Client,
    shards: &[usize],
    waiter: Arc<Waiter>,
    rx: oneshot::Receiver<Wake>,
) -> Result<Attempt, CmdError> {
    let mut out = Reply::new(client.proto);
    let w = waiter.clone();
    let block = dispatch::atomic_with(client, waiter.cmd, &waiter.args, shards, &mut out, true, move |lent| {
        let nshards = lent.nshards();
        for s in lent.shards().collect::<Vec<_>>() {
            register(lent.store(s), s, nshards, &w);
        }
    })
    .await?;
    Ok(match block {
        Some(deadline) => Attempt::Blocked { deadline, waiter, rx },
        None => Attempt::Done(out.take().freeze()),
    })
}

/// Waits for a wake-up, the deadline, CLIENT UNBLOCK or the client going away.
async fn wait(
    client: &mut Client,
    deadline: u64,
    rx: &mut oneshot::Receiver<Wake>,
    conn: Option<&crate::server::tls::Conn>,
) -> Ended {
    let shared = client.shard.local.shared.clone();
    let (utx, urx) = oneshot::channel::<Unblock>();
    *client.handle.unblock.borrow_mut() = Some(utx);
    client.handle.blocked.set(true);
    shared.blocked_clients.fetch_add(1, Ordering::Relaxed);
    let woken = async { Ended::Woken(rx.await) };
    let timer = async {
        if deadline == 0 {
            futures_lite::future::pending::<()>().await;
        }
        let left = deadline.saturating_sub(unix_ms());
        glommio::timer::sleep(Duration::from_millis(left)).await;
        Ended::Timeout
    };
    let unblocked = async {
        match urx.await {
            Ok(mode) => Ended::Unblocked(mode),
            Err(_) => futures_lite::future::pending().await,
        }
    };
    // Peeking does not consume what the client pipelined after the blocking command; an
    // end of stream (or CLIENT KILL's shutdown) means the client is gone. Once it sent more
    // data, we can only learn of a disconnect when the wait ends.
    // Without the socket (a connection-level command), its descriptor is looked at when
    // the wait starts and every 100 ms, and CLIENT KILL's mark with it.
    let handle = client.handle.clone();
    let gone = async {
        if let Some(stream) = conn {
            let mut b = [0u8; 1];
            if matches!(stream.peek(&mut b).await, Ok(0) | Err(_)) {
                return Ended::Disconnected;
            }
            futures_lite::future::pending::<()>().await;
        }
        loop {
            if client_gone(&handle) {
                return Ended::Disconnected;
            }
            glommio::timer::sleep(Duration::from_millis(100)).await;
        }
    };
    let ended = woken.or(timer).or(unblocked).or(gone).await;
    client.handle.unblock.borrow_mut().take();
    client.handle.blocked.set(false);
    shared.blocked_clients.fetch_sub(1, Ordering::Relaxed);
    ended
}

/// CLIENT KILL marked the client, or its peer closed the socket (a read would return 0
/// bytes) or the socket failed.
fn client_gone(handle: &crate::server::client::ClientHandle) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: a one-byte peek into a local buffer; MSG_DONTWAIT never blocks.
    let n = unsafe { libc::recv(handle.fd, b.as_mut_ptr().cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    handle.killed.get() || n == 0 || (n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN))
}

/// CLIENT UNBLOCK ... ERROR's reply to the blocked command.
const UNBLOCKED: CmdError = CmdError::Static("UNBLOCKED client unblocked via CLIENT UNBLOCK");

/// How a wait without a wake-up (WAIT, WAITAOF) ended, when it did not end with CLIENT
/// UNBLOCK ... ERROR (the `Err` of [`park`]).
pub enum Parked {
    /// The deadline passed.
    Timeout,
    /// CLIENT UNBLOCK ... TIMEOUT.
    Unblocked,
    /// The client went away (its connection closes after the reply, as for a blocked pop).
    Gone,
}

/// Blocks a client with nothing to wait for but the deadline (unix ms, 0 = forever), CLIENT
/// UNBLOCK or its disconnect: WAIT, which no replica ever acknowledges. It counts in
/// `blocked_clients` as Redis's BLOCKED_WAIT does.
pub async fn park(client: &mut Client, deadline: u64) -> Result<Parked, CmdError> {
    let (_never, mut rx) = oneshot::channel::<Wake>();
    match wait(client, deadline, &mut rx, None).await {
        Ended::Unblocked(Unblock::Error) => Err(UNBLOCKED),
        Ended::Unblocked(Unblock::Timeout) => Ok(Parked::Unblocked),
        Ended::Disconnected => {
            client.close_after_reply = true;
            Ok(Parked::Gone)
        }
        _ => Ok(Parked::Timeout),
    }
}

/// Removes a finished waiter's registrations, in the background.
fn cleanup(client: &Client, waiter: &Arc<Waiter>, shards: &[usize]) {
    for &s in shards {
        let (id, db, keys) = (waiter.id, waiter.ctx.db, waiter.keys.clone());
        let sh = client.shard.clone();
        glommio::spawn_local(async move {
            let _ = sh.hop_store(s, move |st| unregister(st, db, id, &keys)).await;
        })
        .detach();
    }
}

/// CLIENT UNBLOCK: wakes a blocked client of this shard. True if it was blocked.
pub fn unblock(sh: &Shard, id: u64, mode: Unblock) -> bool {
    let clients = sh.local.clients.borrow();
    let Some(h) = clients.clients.get(&id) else {
        return false;
    };
    let tx = h.unblock.borrow_mut().take();
    match tx {
        Some(tx) => tx.send(mode).is_ok(),
        None => false,
    }
}
