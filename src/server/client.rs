//! Connection state and the per-shard client registry (CLIENT LIST, CLIENT KILL, MONITOR).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;

use crate::resp::{Proto, Reply};
use crate::shard::Shard;

/// CLIENT REPLY mode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply of the next command only.
    Skip,
    /// SKIP was just given: the next command's reply is dropped, then back to On.
    SkipNext,
}

/// A WATCHed key: its database, the key, and the deadline of a key that was live with a TTL
/// when WATCHed (EXEC fails once it has passed).
pub type WatchedKey = (usize, Bytes, Option<u64>);

/// What the registry (and so CLIENT LIST / KILL / INFO, from any shard) knows of a
/// connection. The connection updates it; other tasks on the same shard read it.
pub struct ClientHandle {
    pub id: u64,
    pub fd: i32,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created_ms: u64,
    pub last_ms: Cell<u64>,
    pub db: Cell<usize>,
    pub name: RefCell<Option<Bytes>>,
    pub lib_name: RefCell<Option<Bytes>>,
    pub lib_ver: RefCell<Option<Bytes>>,
    pub last_cmd: Cell<&'static str>,
    pub resp: Cell<u8>,
    pub monitor: Cell<bool>,
    pub no_evict: Cell<bool>,
    pub no_touch: Cell<bool>,
    pub killed: Cell<bool>,
    /// Commands queued in MULTI (CLIENT LIST `multi=`), -1 outside MULTI.
    pub multi_len: Cell<i64>,
    pub qbuf: Cell<usize>,
    pub omem: Cell<usize>,
    /// Lines for a MONITOR client, written by its connection task.
    pub monitor_feed: RefCell<Vec<u8>>,
    pub monitor_wake: RefCell<Option<std::task::Waker>>,
    /// Blocked in a blocking command (CLIENT LIST flag `b`).
    pub blocked: Cell<bool>,
    /// While blocked: how CLIENT UNBLOCK ends the wait.
    pub unblock: RefCell<Option<futures_channel::oneshot::Sender<super::blocking::Unblock>>>,
    /// Pub/Sub subscriptions and pushes waiting to be written.
    pub pubsub: super::pubsub::ClientSubs,
}

impl ClientHandle {
    /// One line of CLIENT LIST / CLIENT INFO, in Redis 7.2's field order.
    pub fn info_line(&self, now_ms: u64) -> String {
        let name = self.name.borrow();
        let lib_name = self.lib_name.borrow();
        let lib_ver = self.lib_ver.borrow();
        let s = |b: &Option<Bytes>| {
            b.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        // In the order of Redis's getClientInfoString.
        let mut flags = String::new();
        for (on, c) in [
            (self.monitor.get(), 'O'),
            (self.pubsub.active(), 'P'),
            (self.multi_len.get() >= 0, 'x'),
            (self.blocked.get(), 'b'),
            (self.no_evict.get(), 'e'),
            (self.no_touch.get(), 'T'),
        ] {
            if on {
                flags.push(c);
            }
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let subs = self.pubsub.counts();
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem={} tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            s(&name),
            now_ms.saturating_sub(self.created_ms) / 1000,
            now_ms.saturating_sub(self.last_ms.get()) / 1000,
            flags,
            self.db.get(),
            subs.0,
            subs.1,
            subs.2,
            self.multi_len.get(),
            self.qbuf.get(),
            self.omem.get(),
            self.last_cmd.get(),
            self.resp.get(),
            s(&lib_name),
            s(&lib_ver),
        )
    }

    /// Closes the connection from outside its task: the pending read returns and the
    /// connection ends after its current command.
    pub fn kill(&self) {
        self.killed.set(true);
        // SAFETY: shutdown on a socket fd we registered; the fd stays open until the
        // connection task drops its stream, which unregisters this handle first.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
        }
        if let Some(w) = self.monitor_wake.borrow_mut().take() {
            w.wake();
        }
        self.pubsub.wake();
    }
}

/// The clients connected to one shard, by id (ordered: CLIENT LIST lists by id).
#[derive(Default)]
pub struct Registry {
    pub clients: BTreeMap<u64, Rc<ClientHandle>>,
    pub monitors: Vec<Rc<ClientHandle>>,
}

/// One connection's state, owned by its task on its home shard.
pub struct Client {
    pub shard: Rc<Shard>,
    pub handle: Rc<ClientHandle>,
    pub id: u64,
    pub db: usize,
    pub proto: Proto,
    pub out: Reply,
    pub authenticated: bool,
    pub reply_mode: ReplyMode,
    /// Close once the pending replies are written (QUIT, protocol error).
    pub close_after_reply: bool,
    /// Inside MULTI: the queued commands.
    pub multi: Option<Vec<(&'static crate::command::table::Cmd, crate::command::Args)>>,
    /// A command was rejected while queueing: EXEC answers EXECABORT.
    pub multi_error: bool,
    /// EXEC is running the queued commands: a command that would block answers at once
    /// (Redis's CLIENT_DENY_BLOCKING).
    pub in_exec: bool,
    /// WATCH: the client's flag (its shards raise it on a change) and its watched keys.
    pub watching: Option<(crate::store::db::WatchFlag, Vec<WatchedKey>)>,
    /// A command that may write ran since the last wait for durability: the replies wait
    /// for it (conn.rs), and WAITAOF waits for it first.
    pub wrote: bool,
    /// Every write of this client has a persistence ticket below this (Redis's `woff`, the
    /// offset WAITAOF waits to see fsynced); 0 for a client that never wrote.
    pub woff: u64,
}

impl Client {
    pub fn new(shard: Rc<Shard>, handle: Rc<ClientHandle>, authenticated: bool) -> Client {
        Client {
            id: handle.id,
            shard,
            handle,
            db: 0,
            proto: Proto::Resp2,
            out: Reply::with_capacity(Proto::Resp2, 16 * 1024),
            authenticated,
            reply_mode: ReplyMode::On,
            close_after_reply: false,
            multi: None,
            multi_error: false,
            in_exec: false,
            watching: None,
            wrote: false,
            woff: 0,
        }
    }

    /// Holds the replies to this client's writes until they are durable as `appendfsync`
    /// asks, and records the ticket that covers them (`woff`).
    pub async fn wait_durable(&mut self) {
        if std::mem::take(&mut self.wrote) {
            crate::persist::wait_durable(&self.shard.local, self.shard.id).await;
            self.woff = crate::persist::TICKETS.load(std::sync::atomic::Ordering::SeqCst);
        }
    }

    pub fn set_proto(&mut self, proto: Proto) {
        self.proto = proto;
        self.out.proto = proto;
        self.handle.resp.set(if proto == Proto::Resp3 { 3 } else { 2 });
    }

    pub fn select(&mut self, db: usize) {
        self.db = db;
        self.handle.db.set(db);
    }
}
