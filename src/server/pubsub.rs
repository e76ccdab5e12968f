//! Pub/Sub delivery: one process-wide directory of who listens where, and per-shard delivery
//! to the subscribers each shard serves.
//!
//! - [`Directory`] (in `ServerShared`, readable from every thread): per channel, per pattern
//!   and per shard channel, how many subscribers each shard has. A (P|S)SUBSCRIBE updates it
//!   synchronously on the subscriber's home shard, before its acknowledgement is written; an
//!   UNSUBSCRIBE before its confirmation. So a PUBLISH that starts after an acknowledgement
//!   counts that subscriber, and one that starts after an unsubscribe confirmation does not.
//! - `PUBLISH` reads the directory (one read lock, no hop): the exact receiver count per
//!   shard, hence its reply. It delivers to its own shard's subscribers at once and queues
//!   the message in its shard's outbox for each other shard that has receivers. One task per
//!   (source, destination) pair drains that outbox in batches, one hop per batch, one batch in
//!   flight at a time: many PUBLISHes of a pipeline travel as one message, and one publisher's
//!   messages reach each shard in the order they were published. Nothing waits for a reply,
//!   so PUBLISH also works where nothing may wait: inside MULTI/EXEC and Lua scripts.
//! - Counting and delivering agree: each subscription carries a stamp drawn from [`STAMP`]
//!   under the directory's write lock, each message the stamp value seen under the read lock
//!   that counted its receivers; a shard delivers a message only to subscriptions stamped at
//!   or below it. A subscription that raced a PUBLISH is therefore either counted and served
//!   or neither. (The one race left: an UNSUBSCRIBE on another shard while the message is in
//!   flight is counted but not served, as the connection already confirmed it.)
//! - An outbox past [`OUTBOX_LIMIT`] bytes makes the connection that filled it wait for room
//!   after its command ([`publish_events`]), so a publisher faster than a destination shard
//!   cannot grow memory without bound; no command ever waits while holding shards.
//! - A subscriber's connection writes its push buffer as soon as something is appended, even
//!   while it waits for input: it waits on a non-consuming peek of the socket raced with the
//!   buffer's waker ([`wait_input`]), never dropping a started read.
//! - A push buffer above `client-output-buffer-limit pubsub` (hard, or soft for longer than
//!   the soft seconds) gets its client disconnected: the buffer is dropped and no more is
//!   appended, so a subscriber that never reads costs at most the limit.
//! - Keyspace notifications are recorded by command handlers ([`notify`], through
//!   `Exec::notify`) into a per-thread list; so are PUBLISHes from scripts
//!   ([`publish_recorded`]). The dispatcher takes them after the command and the issuing
//!   connection's home shard routes them ([`publish_events`]), so one client's events keep
//!   its command order whichever shards its keys live on; events with no client (active
//!   expiry, serving blocked clients) are routed by the shard they happen on
//!   ([`flush_events`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;
use std::task::{Poll, Waker};
use std::time::Instant;

use crate::server::tls::{Conn, Session};
use bytes::Bytes;

use crate::config::{NotifyFlags, ObufLimit};
use crate::resp::Reply;
use crate::server::client::ClientHandle;
use crate::shard::Shard;

/// The three subscription namespaces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

/// Subscription stamps: drawn by a subscription under the directory's write lock, read by a
/// publisher under its read lock (see the module doc). Process-wide and only ever compared,
/// so keyspace events recorded without the directory at hand can read it too.
static STAMP: AtomicU64 = AtomicU64::new(0);

/// Bytes queued for one destination shard above which the connection that queued them
/// waits for the outbox to drain (after its command, holding nothing).
pub const OUTBOX_LIMIT: usize = 4 << 20;

type Counts = Box<[u32]>;

#[derive(Default)]
struct Tables {
    channels: HashMap<Bytes, Counts, ahash::RandomState>,
    shard_channels: HashMap<Bytes, Counts, ahash::RandomState>,
    /// Few in practice, and every PUBLISH matches against all of them (as Redis does).
    patterns: Vec<(Bytes, Counts)>,
}

impl Tables {
    fn entry(&mut self, kind: Kind, name: &Bytes, nshards: usize) -> &mut Counts {
        match kind {
            Kind::Channel => self
                .channels
                .entry(name.clone())
                .or_insert_with(|| vec![0; nshards].into()),
            Kind::Shard => self
                .shard_channels
                .entry(name.clone())
                .or_insert_with(|| vec![0; nshards].into()),
            Kind::Pattern => {
                let i = match self.patterns.iter().position(|(p, _)| p == name) {
                    Some(i) => i,
                    None => {
                        self.patterns.push((name.clone(), vec![0; nshards].into()));
                        self.patterns.len() - 1
                    }
                };
                &mut self.patterns[i].1
            }
        }
    }

    fn remove(&mut self, kind: Kind, name: &[u8]) {
        match kind {
            Kind::Channel => {
                self.channels.remove(name);
            }
            Kind::Shard => {
                self.shard_channels.remove(name);
            }
            Kind::Pattern => self.patterns.retain(|(p, _)| p != name),
        }
    }

    fn counts(&self, kind: Kind, name: &[u8]) -> Option<&Counts> {
        match kind {
            Kind::Channel => self.channels.get(name),
            Kind::Shard => self.shard_channels.get(name),
            Kind::Pattern => self.patterns.iter().find(|(p, _)| p == name).map(|(_, c)| c),
        }
    }
}

/// Who is subscribed to what, on which shard: shared by every thread (see the module doc).
pub struct Directory {
    nshards: usize,
    /// Subscriptions of any kind: at zero, publishers skip the lock altogether.
    total: AtomicUsize,
    tables: RwLock<Tables>,
}

impl Directory {
    pub fn new(nshards: usize) -> Directory {
        Directory {
            nshards,
            total: AtomicUsize::new(0),
            tables: RwLock::new(Tables::default()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        // A panic while holding the lock cannot leave the tables half-updated (each update is
        // one counter), so a poisoned lock is still good.
        self.tables.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one subscription of shard `shard`; returns its stamp.
    fn add(&self, kind: Kind, name: &Bytes, shard: usize) -> u64 {
        let mut t = self.write();
        t.entry(kind, name, self.nshards)[shard] += 1;
        self.total.fetch_add(1, Ordering::SeqCst);
        STAMP.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Uncounts one subscription of shard `shard`; returns the stamp of its end: messages
    /// counted with a stamp below it counted the subscription.
    fn sub(&self, kind: Kind, name: &[u8], shard: usize) -> u64 {
        let mut t = self.write();
        let empty = match kind {
            Kind::Channel => t.channels.get_mut(name),
            Kind::Shard => t.shard_channels.get_mut(name),
            Kind::Pattern => t.patterns.iter_mut().find(|(p, _)| p == name).map(|(_, c)| c),
        }
        .map(|c| {
            c[shard] = c[shard].saturating_sub(1);
            c.iter().all(|&n| n == 0)
        });
        if empty == Some(true) {
            t.remove(kind, name);
        }
        self.total.fetch_sub(1, Ordering::SeqCst);
        STAMP.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Receivers of a message on `channel` per shard (added into `per`) and the stamp that
    /// goes with the count. Patterns count unless `kind` is `Shard`.
    fn plan(&self, kind: Kind, channel: &[u8], per: &mut [u32]) -> u64 {
        let t = self.read();
        let seen = STAMP.load(Ordering::SeqCst);
        if let Some(c) = t.counts(kind, channel) {
            for (p, n) in per.iter_mut().zip(c.iter()) {
                *p += n;
            }
        }
        if kind != Kind::Shard {
            for (pattern, c) in &t.patterns {
                if crate::config::glob::glob_match(pattern, channel, false) {
                    for (p, n) in per.iter_mut().zip(c.iter()) {
                        *p += n;
                    }
                }
            }
        }
        seen
    }

    /// Names of `kind` with a subscriber (optionally matching a glob): PUBSUB CHANNELS,
    /// SHARDCHANNELS, NUMPAT.
    pub fn names(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let t = self.read();
        let keep = |n: &Bytes| pattern.is_none_or(|p| crate::config::glob::glob_match(p, n, false));
        match kind {
            Kind::Channel => t.channels.keys().filter(|n| keep(n)).cloned().collect(),
            Kind::Shard => t.shard_channels.keys().filter(|n| keep(n)).cloned().collect(),
            Kind::Pattern => t.patterns.iter().map(|(p, _)| p).filter(|n| keep(n)).cloned().collect(),
        }
    }

    /// Subscribers of one name over all shards: PUBSUB NUMSUB, SHARDNUMSUB.
    pub fn subscribers(&self, kind: Kind, name: &[u8]) -> usize {
        self.read()
            .counts(kind, name)
            .map_or(0, |c| c.iter().map(|&n| n as usize).sum())
    }
}

/// Names in subscription order (Redis 7.0 lists a client's patterns in that order), with
/// an index for membership.
#[derive(Default)]
pub struct NameSet {
    order: Vec<Bytes>,
    index: ahash::AHashSet<Bytes>,
}

impl NameSet {
    fn insert(&mut self, name: &Bytes) -> bool {
        if self.index.insert(name.clone()) {
            self.order.push(name.clone());
            true
        } else {
            false
        }
    }

    fn remove(&mut self, name: &[u8]) -> bool {
        if self.index.remove(name) {
            self.order.retain(|n| n != name);
            true
        } else {
            false
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// A connection's subscriptions and its pending pushes (in its [`ClientHandle`]).
#[derive(Default)]
pub struct ClientSubs {
    pub channels: RefCell<NameSet>,
    pub patterns: RefCell<NameSet>,
    pub shard_channels: RefCell<NameSet>,
    /// All three together: non-zero means the connection waits for pushes too.
    total: Cell<usize>,
    /// Pushes not yet handed to the connection's writer.
    pending: RefCell<Vec<u8>>,
    /// Pushes being written right now (still count against the output limit).
    in_flight: Cell<usize>,
    waker: RefCell<Option<Waker>>,
    /// Since when the buffer has been above the soft limit.
    soft_since: Cell<Option<Instant>>,
}

impl ClientSubs {
    fn set(&self, kind: Kind) -> &RefCell<NameSet> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard_channels,
        }
    }

    /// Subscribed to anything (Redis's CLIENT_PUBSUB flag).
    pub fn active(&self) -> bool {
        self.total.get() > 0
    }

    /// Something to wait for besides input: subscriptions or pushes not yet written.
    pub fn needs_wait(&self) -> bool {
        self.total.get() > 0 || !self.pending.borrow().is_empty()
    }

    /// (channels, patterns, shard channels) for CLIENT LIST.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.channels.borrow().len(),
            self.patterns.borrow().len(),
            self.shard_channels.borrow().len(),
        )
    }

    /// Redis's clientSubscriptionsCount (channels + patterns), the count (P)(UN)SUBSCRIBE
    /// replies carry; SSUBSCRIBE's counts shard channels alone.
    fn reply_count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard_channels.borrow().len(),
            _ => self.channels.borrow().len() + self.patterns.borrow().len(),
        }
    }

    /// Output bytes not yet on the socket (CLIENT LIST omem, the output limit).
    pub fn pending_bytes(&self) -> usize {
        self.pending.borrow().len() + self.in_flight.get()
    }

    pub fn wake(&self) {
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

/// A subscriber on this shard with the stamps of its subscription and of its end
/// (`u64::MAX` while subscribed): it receives the messages counted between the two.
type Subs = Vec<(Rc<ClientHandle>, u64, u64)>;

/// One shard's subscriptions, by name (the clients of this shard only), and its outboxes.
#[derive(Default)]
pub struct Registry {
    channels: HashMap<Bytes, Subs, ahash::RandomState>,
    patterns: HashMap<Bytes, Subs, ahash::RandomState>,
    shard_channels: HashMap<Bytes, Subs, ahash::RandomState>,
    /// Per destination shard: messages and events not yet handed over, in order.
    outbox: Vec<Vec<Event>>,
    outbox_bytes: Vec<usize>,
    /// Per destination shard: its drain task is running.
    draining: Vec<bool>,
    /// Connections waiting for an outbox to get below [`OUTBOX_LIMIT`].
    room: Vec<Waker>,
    /// Per destination shard: messages ever put in its outbox.
    sent: Vec<u64>,
    /// Per source shard: messages ever delivered here from its outbox.
    received: Vec<u64>,
    /// Unsubscribing connections waiting for messages in flight to arrive.
    arrivals: Vec<Waker>,
}

/// A message (PUBLISH, SPUBLISH or a keyspace event) on its way to a shard's subscribers.
#[derive(Clone)]
pub struct Event {
    kind: Kind,
    channel: Bytes,
    message: Bytes,
    /// Subscriptions stamped above this were not counted: they do not receive it.
    seen: u64,
}

impl Registry {
    fn map(&mut self, kind: Kind) -> &mut HashMap<Bytes, Subs, ahash::RandomState> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard_channels,
        }
    }

    /// Names with at least one subscriber on this shard (optionally matching a glob).
    pub fn names(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let map = match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard_channels,
        };
        map.keys()
            .filter(|n| pattern.is_none_or(|p| crate::config::glob::glob_match(p, n, false)))
            .cloned()
            .collect()
    }

    fn over_limit(&self) -> bool {
        self.outbox_bytes.iter().any(|&b| b > OUTBOX_LIMIT)
    }
}

/// Subscribes the connection to each name, writing one confirmation per name. Synchronous on
/// the home shard: the subscription is in the directory before its ack exists.
pub fn subscribe(sh: &Shard, handle: &Rc<ClientHandle>, out: &mut Reply, kind: Kind, names: &[Bytes]) {
    let dir = &sh.local.shared.pubsub;
    for name in names {
        if handle.pubsub.set(kind).borrow_mut().insert(name) {
            let stamp = dir.add(kind, name, sh.id);
            handle.pubsub.total.set(handle.pubsub.total.get() + 1);
            sh.local
                .pubsub
                .borrow_mut()
                .map(kind)
                .entry(name.clone())
                .or_default()
                .push((handle.clone(), stamp, u64::MAX));
        }
        out.push(3);
        out.bulk(match kind {
            Kind::Channel => b"subscribe",
            Kind::Pattern => b"psubscribe",
            Kind::Shard => b"ssubscribe",
        });
        out.bulk(name);
        out.int(handle.pubsub.reply_count(kind) as i64);
    }
}

/// Ends one subscription in the directory and the connection's set; its registry entry
/// stays, marked with the end's stamp, so that the messages counted before the end still
/// reach it ([`settle_unsubscribes`] then removes it).
fn unsubscribe_one(sh: &Shard, handle: &ClientHandle, kind: Kind, name: &[u8]) -> bool {
    if !handle.pubsub.set(kind).borrow_mut().remove(name) {
        return false;
    }
    let end = sh.local.shared.pubsub.sub(kind, name, sh.id);
    handle.pubsub.total.set(handle.pubsub.total.get() - 1);
    let mut reg = sh.local.pubsub.borrow_mut();
    if let Some(subs) = reg.map(kind).get_mut(name) {
        for s in subs.iter_mut().filter(|s| s.0.id == handle.id && s.2 == u64::MAX) {
            s.2 = end;
        }
    }
    true
}

/// Removes the registry entries of the connection's ended subscriptions.
fn purge_ended(sh: &Shard, handle: &ClientHandle) {
    let mut reg = sh.local.pubsub.borrow_mut();
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        reg.map(kind).retain(|_, subs| {
            subs.retain(|s| s.0.id != handle.id || s.2 == u64::MAX);
            !subs.is_empty()
        });
    }
}

/// After (P|S)UNSUBSCRIBE or RESET: waits until every message counted while the ended
/// subscriptions were still counted has reached this shard (so it goes out before the
/// confirmations, as in Redis, where PUBLISH delivers before it replies), then removes them.
/// A message published before the unsubscribe arrived is in a shard's outbox to here by the
/// time a hop reaches that shard: the wait is one hop per shard and the outboxes' drains.
pub async fn settle_unsubscribes(sh: &Rc<Shard>, handle: &ClientHandle) {
    if sh.nshards > 1 {
        let me = sh.id;
        for src in (0..sh.nshards).filter(|&s| s != me) {
            let Ok(sent) = sh
                .hop(src, move |other| {
                    other.local.pubsub.borrow().sent.get(me).copied().unwrap_or(0)
                })
                .await
            else {
                continue;
            };
            std::future::poll_fn(|cx| {
                let mut reg = sh.local.pubsub.borrow_mut();
                if reg.received.get(src).copied().unwrap_or(0) >= sent || sh.local.shared.is_shutting_down() {
                    Poll::Ready(())
                } else {
                    reg.arrivals.push(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
        }
    }
    purge_ended(sh, handle);
}

/// Unsubscribes from each name (every subscription of `kind` when `names` is empty), one
/// confirmation per name; with nothing to unsubscribe from, one with a null name. The
/// caller then awaits [`settle_unsubscribes`].
pub fn unsubscribe(sh: &Shard, handle: &ClientHandle, out: &mut Reply, kind: Kind, names: &[Bytes]) {
    let verb: &[u8] = match kind {
        Kind::Channel => b"unsubscribe",
        Kind::Pattern => b"punsubscribe",
        Kind::Shard => b"sunsubscribe",
    };
    let all;
    let names = if names.is_empty() {
        all = handle.pubsub.set(kind).borrow().order.clone();
        if all.is_empty() {
            out.push(3);
            out.bulk(verb);
            out.null();
            out.int(handle.pubsub.reply_count(kind) as i64);
            return;
        }
        &all[..]
    } else {
        names
    };
    for name in names {
        unsubscribe_one(sh, handle, kind, name);
        out.push(3);
        out.bulk(verb);
        out.bulk(name);
        out.int(handle.pubsub.reply_count(kind) as i64);
    }
}

/// RESET and disconnect: end every subscription without replies (RESET then awaits
/// [`settle_unsubscribes`]; a connection that is gone has its entries removed at once).
pub fn unsubscribe_all(sh: &Shard, handle: &ClientHandle, gone: bool) {
    if handle.pubsub.total.get() > 0 {
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            let names = handle.pubsub.set(kind).borrow().order.clone();
            for n in names {
                unsubscribe_one(sh, handle, kind, &n);
            }
        }
    }
    if gone {
        purge_ended(sh, handle);
    }
}

/// The message frame in RESP2 form; RESP3 subscribers get it with `>` for the first byte.
fn frame(kind: &[u8], pattern: Option<&[u8]>, channel: &[u8], message: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(48 + channel.len() + message.len() + pattern.map_or(0, |p| p.len()));
    let n = if pattern.is_some() { 4 } else { 3 };
    f.extend_from_slice(format!("*{n}\r\n").as_bytes());
    let mut bulk = |b: &[u8]| {
        f.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
        f.extend_from_slice(b);
        f.extend_from_slice(b"\r\n");
    };
    bulk(kind);
    if let Some(p) = pattern {
        bulk(p);
    }
    bulk(channel);
    bulk(message);
    f
}

/// Appends a frame to a subscriber's push buffer, enforcing the pubsub output limit.
fn append(sh: &Shard, h: &ClientHandle, frame: &[u8], limit: ObufLimit) {
    if h.killed.get() {
        return;
    }
    let len = {
        let mut p = h.pubsub.pending.borrow_mut();
        let start = p.len();
        p.extend_from_slice(frame);
        if h.resp.get() == 3 {
            p[start] = b'>';
        }
        p.len()
    } + h.pubsub.in_flight.get();
    h.omem.set(len);
    if over_limit(&h.pubsub, len, limit) {
        tracing::warn!(
            "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
            h.info_line(super::unix_ms())
        );
        sh.local.stats.borrow_mut().obuf_limit_disconnections += 1;
        *h.pubsub.pending.borrow_mut() = Vec::new();
        h.omem.set(0);
        h.kill();
    }
    h.pubsub.wake();
}

/// Redis's checkClientOutputBufferLimits: over the hard limit, or over the soft limit
/// continuously for longer than the soft seconds.
fn over_limit(subs: &ClientSubs, len: usize, limit: ObufLimit) -> bool {
    let len = len as u64;
    if limit.hard > 0 && len >= limit.hard {
        return true;
    }
    if limit.soft > 0 && len >= limit.soft {
        match subs.soft_since.get() {
            None => {
                subs.soft_since.set(Some(Instant::now()));
                false
            }
            Some(t) => t.elapsed().as_secs() > limit.soft_seconds,
        }
    } else {
        subs.soft_since.set(None);
        false
    }
}
/// Delivers one message to this shard's subscribers stamped at or below `seen`; the number
/// reached.
fn deliver(sh: &Shard, ev: &Event) -> usize {
    let limit = sh.local.cfg.borrow().pubsub_obuf;
    let reg = sh.local.pubsub.borrow();
    let mut n = 0;
    let exact = match ev.kind {
        Kind::Shard => &reg.shard_channels,
        _ => &reg.channels,
    };
    if let Some(subs) = exact.get(&ev.channel) {
        let f = frame(
            if ev.kind == Kind::Shard {
                b"smessage"
            } else {
                b"message"
            },
            None,
            &ev.channel,
            &ev.message,
        );
        for (h, stamp, end) in subs {
            if *stamp <= ev.seen && ev.seen < *end {
                append(sh, h, &f, limit);
                n += 1;
            }
        }
    }
    if ev.kind != Kind::Shard {
        for (pattern, subs) in reg.patterns.iter() {
            if crate::config::glob::glob_match(pattern, &ev.channel, false) {
                let f = frame(b"pmessage", Some(pattern), &ev.channel, &ev.message);
                for (h, stamp, end) in subs {
                    if *stamp <= ev.seen && ev.seen < *end {
                        append(sh, h, &f, limit);
                        n += 1;
                    }
                }
            }
        }
    }
    n
}

/// Receivers per shard of a message on `channel`, and the stamp that goes with them.
fn plan(sh: &Shard, kind: Kind, channel: &[u8]) -> Option<(Vec<u32>, u64)> {
    let dir = &sh.local.shared.pubsub;
    if dir.total.load(Ordering::SeqCst) == 0 {
        return None;
    }
    let mut per = vec![0u32; sh.nshards];
    let seen = dir.plan(kind, channel, &mut per);
    Some((per, seen))
}

/// Hands a message to the shards `per` names: this one now, the others through this shard's
/// outboxes (see the module doc).
fn route(sh: &Rc<Shard>, ev: Event, per: &[u32]) {
    let mut kick = Vec::new();
    {
        let mut reg = None;
        for (dest, &n) in per.iter().enumerate() {
            if n == 0 || dest == sh.id {
                continue;
            }
            let reg = reg.get_or_insert_with(|| sh.local.pubsub.borrow_mut());
            if reg.outbox.len() < sh.nshards {
                reg.outbox.resize_with(sh.nshards, Vec::new);
                reg.outbox_bytes.resize(sh.nshards, 0);
                reg.draining.resize(sh.nshards, false);
                reg.sent.resize(sh.nshards, 0);
            }
            reg.outbox_bytes[dest] += ev.channel.len() + ev.message.len() + 64;
            reg.outbox[dest].push(ev.clone());
            reg.sent[dest] += 1;
            if !reg.draining[dest] {
                reg.draining[dest] = true;
                kick.push(dest);
            }
        }
    }
    if per.get(sh.id).is_some_and(|&n| n > 0) {
        deliver(sh, &ev);
    }
    for dest in kick {
        glommio::spawn_local(drain_outbox(sh.clone(), dest)).detach();
    }
}

/// The one task per (this shard, `dest`) that carries the outbox over: a batch per hop, the
/// next batch once the last was delivered, so batches grow with the load and keep order.
async fn drain_outbox(sh: Rc<Shard>, dest: usize) {
    loop {
        let batch = {
            let mut reg = sh.local.pubsub.borrow_mut();
            let batch = std::mem::take(&mut reg.outbox[dest]);
            reg.outbox_bytes[dest] = 0;
            if batch.is_empty() {
                reg.draining[dest] = false;
            }
            for w in reg.room.drain(..) {
                w.wake();
            }
            batch
        };
        if batch.is_empty() {
            return;
        }
        // A shard that is gone (shutdown) has no subscribers left to serve.
        let from = sh.id;
        let _ = sh
            .hop(dest, move |sh| {
                for ev in &batch {
                    deliver(sh, ev);
                }
                let mut reg = sh.local.pubsub.borrow_mut();
                if reg.received.len() < sh.nshards {
                    reg.received.resize(sh.nshards, 0);
                }
                reg.received[from] += batch.len() as u64;
                for w in reg.arrivals.drain(..) {
                    w.wake();
                }
            })
            .await;
    }
}

/// PUBLISH / SPUBLISH from a connection: the exact number of receivers over every shard.
/// Never waits (see [`publish_events`] for the bound on what it queues).
pub fn publish(sh: &Rc<Shard>, kind: Kind, channel: Bytes, message: Bytes) -> usize {
    let Some((per, seen)) = plan(sh, kind, &channel) else {
        return 0;
    };
    let total = per.iter().map(|&n| n as usize).sum();
    if total > 0 {
        let ev = Event {
            kind,
            channel,
            message,
            seen,
        };
        route(sh, ev, &per);
    }
    total
}

thread_local! {
    /// The server the running script belongs to (see [`enter_script`]).
    static SCRIPT_SERVER: RefCell<Option<std::sync::Arc<super::ServerShared>>> = const { RefCell::new(None) };
}

/// Called before a script runs: PUBLISH reads this server's directory, keyspace events
/// follow `notify` (the shard's cached `notify-keyspace-events`).
pub fn enter_script(notify: u32, shared: &std::sync::Arc<super::ServerShared>) {
    set_notify_flags(notify);
    SCRIPT_SERVER.with(|s| {
        let mut s = s.borrow_mut();
        if s.as_ref().is_none_or(|known| !std::sync::Arc::ptr_eq(known, shared)) {
            *s = Some(shared.clone());
        }
    });
}

/// PUBLISH / SPUBLISH from a script (run on the shard thread, holding its shards): the exact
/// receiver count now; the message itself is recorded with the script's keyspace events and
/// routed by the client's home shard after the script ([`publish_events`]), in order.
pub fn publish_recorded(kind: Kind, channel: Bytes, message: Bytes) -> usize {
    let Some(shared) = SCRIPT_SERVER.with(|s| s.borrow().clone()) else {
        return 0;
    };
    let dir = &shared.pubsub;
    if dir.total.load(Ordering::SeqCst) == 0 {
        return 0;
    }
    let mut per = vec![0u32; dir.nshards];
    let seen = dir.plan(kind, &channel, &mut per);
    let total: usize = per.iter().map(|&n| n as usize).sum();
    if total > 0 {
        EVENTS.with(|e| {
            e.borrow_mut().push(Event {
                kind,
                channel,
                message,
                seen,
            })
        });
    }
    total
}

/// Pending pushes produced before a reply go before it: called before each command (append)
/// and after it (inserted at `mark`, where its reply starts).
pub fn drain_into(handle: &ClientHandle, out: &mut Reply, mark: usize) {
    let mut p = handle.pubsub.pending.borrow_mut();
    if p.is_empty() {
        return;
    }
    handle.omem.set(0);
    handle.pubsub.soft_since.set(None);
    if mark >= out.buf.len() {
        out.buf.extend_from_slice(&p);
    } else {
        let tail = out.buf.split_off(mark);
        out.buf.extend_from_slice(&p);
        out.buf.unsplit(tail);
    }
    p.clear();
}

/// What a direct send of the pending pushes did.
enum Sent {
    All,
    /// The socket is full: the rest waits for it to drain.
    Blocked,
    Failed,
}

/// Writes pending pushes with nonblocking sends on the socket (one syscall per batch, as
/// Redis writes): no io_uring submission, and the connection's pending peek stays armed.
/// Under TLS the pushes are sealed first and the session's backlog is what is sent.
fn send_pending(fd: i32, handle: &ClientHandle, sh: &Shard, tls: Option<&mut Session>) -> Sent {
    let mut p = handle.pubsub.pending.borrow_mut();
    // Output bytes count as the client's, before encryption (as Redis counts SSL_write's).
    let plain = tls.is_none();
    let out: &mut Vec<u8> = match tls {
        None => &mut p,
        Some(session) => {
            if session.seal(&p).is_err() {
                return Sent::Failed;
            }
            sh.local.stats.borrow_mut().net_output_bytes += p.len() as u64;
            p.clear();
            &mut session.out
        }
    };
    let mut off = 0;
    while off < out.len() {
        // SAFETY: the buffer outlives the call; fd is this connection's open socket.
        let n = unsafe {
            libc::send(
                fd,
                out[off..].as_ptr().cast(),
                out.len() - off,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n > 0 {
            off += n as usize;
            continue;
        }
        let err = std::io::Error::last_os_error();
        match err.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => break,
            _ if n == 0 => break,
            _ => return Sent::Failed,
        }
    }
    if off > 0 {
        if plain {
            sh.local.stats.borrow_mut().net_output_bytes += off as u64;
        }
        out.drain(..off);
    }
    if out.is_empty() {
        handle.omem.set(0);
        handle.pubsub.soft_since.set(None);
        if out.capacity() > 64 * 1024 {
            *out = Vec::new();
        }
        Sent::All
    } else {
        handle.omem.set(out.len());
        Sent::Blocked
    }
}

/// Waits until the socket has input, writing pushes as they come. False when the client
/// is gone. The read that follows finds data at once; no read is ever abandoned. (Under
/// TLS, input may be a record that holds no request; the read then waits for one.)
pub async fn wait_input(stream: &mut Conn, handle: &ClientHandle, sh: &Shard) -> bool {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    loop {
        {
            // One peek per round, kept in flight while pushes are sent directly.
            let (socket, mut tls) = stream.split();
            let mut b = [0u8; 1];
            let mut readable = std::pin::pin!(async { matches!(socket.peek(&mut b).await, Ok(n) if n > 0) });
            loop {
                if handle.killed.get() {
                    return false;
                }
                match send_pending(fd, handle, sh, tls.as_deref_mut()) {
                    Sent::All => {}
                    Sent::Blocked => break,
                    Sent::Failed => return false,
                }
                if !handle.pubsub.active() {
                    return true;
                }
                let pushed = std::future::poll_fn(|cx| {
                    if handle.killed.get() || !handle.pubsub.pending.borrow().is_empty() {
                        Poll::Ready(None)
                    } else {
                        *handle.pubsub.waker.borrow_mut() = Some(cx.waker().clone());
                        Poll::Pending
                    }
                });
                let readable = readable.as_mut();
                match futures_lite::future::or(pushed, async { Some(readable.await) }).await {
                    Some(ok) => return ok,
                    // Let the publisher (woken on this shard too) write its reply first, as
                    // Redis writes the most recent pending client first: it can send its next
                    // message while subscribers read this one. More pushes may batch meanwhile.
                    None => futures_lite::future::yield_now().await,
                }
            }
        }
        // The socket is full (a slow reader): wait for it to drain with an ordinary write
        // (under TLS, of the sealed backlog and of nothing new).
        let pending = std::mem::take(&mut *handle.pubsub.pending.borrow_mut());
        handle.pubsub.in_flight.set(pending.len() + stream.backlog());
        sh.local.stats.borrow_mut().net_output_bytes += pending.len() as u64;
        // A killed client's write may wait forever on a full socket: the kill ends it
        // (the connection closes, so the abandoned write loses nothing).
        let killed = std::future::poll_fn(|cx| {
            if handle.killed.get() {
                Poll::Ready(Err(std::io::ErrorKind::ConnectionAborted.into()))
            } else {
                *handle.pubsub.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        });
        let r = futures_lite::future::or(stream.write_all(&pending), killed).await;
        handle.pubsub.in_flight.set(0);
        if r.is_err() {
            return false;
        }
    }
}

// ------------------------------------------------------------------------------------
// Keyspace notifications, and messages recorded to be routed after a command.
// ------------------------------------------------------------------------------------

thread_local! {
    /// This shard's `notify-keyspace-events` (set when the shard refreshes its config).
    static NOTIFY: Cell<u32> = const { Cell::new(0) };
    /// Events recorded by the command being run, published after it.
    static EVENTS: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
}

/// Called when a shard (re)loads its configuration.
pub fn set_notify_flags(flags: u32) {
    NOTIFY.with(|n| n.set(flags));
}

/// Records a keyspace event (Redis's notifyKeyspaceEvent). Nothing when `class` is off.
pub fn notify(db: usize, class: u32, event: &str, key: &[u8]) {
    let flags = NotifyFlags(NOTIFY.with(|n| n.get()));
    if !flags.wants(class) {
        return;
    }
    // Subscriptions acknowledged before this command are stamped at or below this.
    let seen = STAMP.load(Ordering::SeqCst);
    EVENTS.with(|e| {
        let mut e = e.borrow_mut();
        if flags.0 & NotifyFlags::KEYSPACE != 0 {
            let mut ch = Vec::with_capacity(20 + key.len());
            ch.extend_from_slice(format!("__keyspace@{db}__:").as_bytes());
            ch.extend_from_slice(key);
            e.push(Event {
                kind: Kind::Channel,
                channel: ch.into(),
                message: Bytes::copy_from_slice(event.as_bytes()),
                seen,
            });
        }
        if flags.0 & NotifyFlags::KEYEVENT != 0 {
            e.push(Event {
                kind: Kind::Channel,
                channel: format!("__keyevent@{db}__:{event}").into_bytes().into(),
                message: Bytes::copy_from_slice(key),
                seen,
            });
        }
    });
}

/// Messages recorded on a thread (keyspace events, a script's PUBLISHes), taken to be routed
/// by the client whose commands produced them (in its command order: see [`publish_events`]).
pub struct Events(Vec<Event>);

impl Events {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Puts events taken with [`take_events`] back in front of any recorded since: a script
/// that pauses keeps its events apart while the thread serves others.
pub fn restore_events(events: Events) {
    if events.0.is_empty() {
        return;
    }
    EVENTS.with(|e| {
        let mut e = e.borrow_mut();
        let later = std::mem::replace(&mut *e, events.0);
        e.extend(later);
    });
}

/// Takes this thread's recorded events.
pub fn take_events() -> Events {
    Events(EVENTS.with(|e| {
        let mut e = e.borrow_mut();
        if e.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut *e)
        }
    }))
}

/// Routes recorded messages from this shard, in order, without waiting: for a script's
/// results, while its shards are still reserved.
pub fn route_events(sh: &Rc<Shard>, events: Events) {
    for ev in events.0 {
        if let Some((per, _)) = plan(sh, ev.kind, &ev.channel) {
            route(sh, ev, &per);
        }
    }
}

/// After each command of a connection: routes the messages its command recorded (through
/// this, its home shard, so they keep the connection's command order whichever shards its
/// keys live on), then, if an outbox of this shard is past [`OUTBOX_LIMIT`], waits for it to
/// drain. The command is complete and holds no shard, so the wait blocks nobody else.
pub async fn publish_events(sh: &Rc<Shard>, events: Events) {
    route_events(sh, events);
    if !sh.local.pubsub.borrow().over_limit() {
        return;
    }
    std::future::poll_fn(|cx| {
        let mut reg = sh.local.pubsub.borrow_mut();
        if reg.over_limit() {
            reg.room.push(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
}

/// Routes events no client waits for (expiry by the cron, serving blocked clients) from
/// this shard, in the order they happened here.
pub fn flush_events(sh: &Rc<Shard>) {
    let events = take_events();
    if !events.0.is_empty() {
        route_events(sh, events);
    }
}

/// A key deleted because its TTL passed (lazy or active expiry): its `expired` event, sent
/// at the deletion.
pub fn note_expired(db: usize, key: &[u8]) {
    notify(db, NotifyFlags::EXPIRED, "expired", key);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_resp2_arrays() {
        assert_eq!(
            frame(b"message", None, b"ch", b"hi"),
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n".to_vec()
        );
        assert_eq!(
            frame(b"pmessage", Some(b"c*"), b"ch", b""),
            b"*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$0\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn directory_counts_per_shard_and_stamps_order_subscriptions() {
        let d = Directory::new(3);
        let ch = Bytes::from("news");
        let s1 = d.add(Kind::Channel, &ch, 0);
        d.add(Kind::Channel, &ch, 2);
        d.add(Kind::Pattern, &Bytes::from("n*"), 2);
        d.add(Kind::Shard, &ch, 1);
        let mut per = [0u32; 3];
        let seen = d.plan(Kind::Channel, b"news", &mut per);
        assert_eq!(per, [1, 0, 2]);
        assert!(s1 <= seen);
        // A later subscription is stamped above what that publish saw: it is not served.
        let s2 = d.add(Kind::Channel, &ch, 1);
        assert!(s2 > seen);
        let mut per = [0u32; 3];
        d.plan(Kind::Shard, b"news", &mut per);
        assert_eq!(per, [0, 1, 0]);
        assert_eq!(d.subscribers(Kind::Channel, b"news"), 3);
        d.sub(Kind::Channel, b"news", 0);
        d.sub(Kind::Channel, b"news", 1);
        d.sub(Kind::Channel, b"news", 2);
        assert!(d.names(Kind::Channel, None).is_empty());
        assert_eq!(d.names(Kind::Pattern, None), vec![Bytes::from("n*")]);
        d.sub(Kind::Pattern, b"n*", 2);
        d.sub(Kind::Shard, b"news", 1);
        assert_eq!(d.total.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn name_set_keeps_subscription_order() {
        let mut s = NameSet::default();
        for n in ["b", "a", "c", "a"] {
            s.insert(&Bytes::from(n));
        }
        assert_eq!(s.order, vec![Bytes::from("b"), Bytes::from("a"), Bytes::from("c")]);
        assert!(s.remove(b"a"));
        assert!(!s.remove(b"a"));
        assert_eq!(s.order, vec![Bytes::from("b"), Bytes::from("c")]);
    }

    #[test]
    fn soft_limit_needs_its_seconds() {
        let subs = ClientSubs::default();
        let limit = ObufLimit {
            hard: 100,
            soft: 10,
            soft_seconds: 60,
        };
        assert!(!over_limit(&subs, 5, limit));
        assert!(!over_limit(&subs, 20, limit));
        assert!(over_limit(&subs, 100, limit));
        subs.soft_since
            .set(Some(Instant::now() - std::time::Duration::from_secs(61)));
        assert!(over_limit(&subs, 20, limit));
        assert!(!over_limit(&subs, 5, limit));
        assert!(subs.soft_since.get().is_none());
    }

    #[test]
    fn notify_records_only_enabled_classes() {
        set_notify_flags(NotifyFlags::KEYEVENT | NotifyFlags::STRING);
        notify(0, NotifyFlags::GENERIC, "del", b"k");
        notify(3, NotifyFlags::STRING, "set", b"k");
        let ev = EVENTS.with(|e| std::mem::take(&mut *e.borrow_mut()));
        assert_eq!(ev.len(), 1);
        assert_eq!(&ev[0].channel[..], b"__keyevent@3__:set");
        assert_eq!(&ev[0].message[..], b"k");
        set_notify_flags(0);
    }
}
