//! Pub/Sub delivery: each shard keeps the subscriptions of its own clients.
//!
//! - A subscription lives on the subscriber's home shard ([`Registry`]) and in its
//!   [`ClientSubs`]. Per-shard subscription counters in [`Counters`] (shared by every thread)
//!   let a publisher skip shards with no subscriber; a subscription is counted before its
//!   acknowledgement is written, so a publish that starts after the ack reaches it.
//! - `PUBLISH` hops to the shards whose counter is non-zero; each appends the message to its
//!   matching subscribers' push buffers and answers how many it reached; the reply is the sum.
//!   One publisher's messages on one channel leave in order (each publish completes before
//!   the next starts) and each shard appends them in arrival order.
//! - A subscriber's connection writes its push buffer as soon as something is appended, even
//!   while it waits for input: it waits on a non-consuming peek of the socket raced with the
//!   buffer's waker ([`wait_input`]), never dropping a started read.
//! - A push buffer above `client-output-buffer-limit pubsub` (hard, or soft for longer than
//!   the soft seconds) gets its client disconnected: the buffer is dropped and no more is
//!   appended, so a subscriber that never reads costs at most the limit.
//! - Keyspace notifications are recorded by command handlers ([`notify`], through
//!   `Exec::notify`) into a per-thread list. The dispatcher takes them after the command and
//!   the issuing connection publishes them before its next command ([`publish_events`]), so
//!   one client's events keep its command order across shards; events with no client (active
//!   expiry, serving blocked clients) go through one ordered outbox per shard
//!   ([`flush_events`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use glommio::net::TcpStream;

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

/// Subscriptions per shard, readable from every thread: publishers skip shards at zero.
pub struct Counters {
    /// Channel and pattern subscriptions.
    subs: Vec<AtomicUsize>,
    /// Shard-channel subscriptions.
    ssubs: Vec<AtomicUsize>,
}

impl Counters {
    pub fn new(nshards: usize) -> Counters {
        Counters {
            subs: (0..nshards).map(|_| AtomicUsize::new(0)).collect(),
            ssubs: (0..nshards).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    fn of(&self, kind: Kind) -> &[AtomicUsize] {
        match kind {
            Kind::Channel | Kind::Pattern => &self.subs,
            Kind::Shard => &self.ssubs,
        }
    }

    /// Shards that have a subscriber a publish of `kind` could reach.
    fn targets(&self, kind: Kind) -> Vec<usize> {
        self.of(kind)
            .iter()
            .enumerate()
            .filter(|(_, c)| c.load(Ordering::SeqCst) > 0)
            .map(|(i, _)| i)
            .collect()
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

/// One shard's subscriptions, by name: the clients of this shard only.
#[derive(Default)]
pub struct Registry {
    channels: HashMap<Bytes, Vec<Rc<ClientHandle>>, ahash::RandomState>,
    patterns: HashMap<Bytes, Vec<Rc<ClientHandle>>, ahash::RandomState>,
    shard_channels: HashMap<Bytes, Vec<Rc<ClientHandle>>, ahash::RandomState>,
    /// Keyspace events for other shards, in order, with the shards they are for.
    outbox: Vec<Event>,
    draining: bool,
}

#[derive(Clone)]
struct Event {
    channel: Bytes,
    message: Bytes,
}

impl Registry {
    fn map(&mut self, kind: Kind) -> &mut HashMap<Bytes, Vec<Rc<ClientHandle>>, ahash::RandomState> {
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

    /// Subscribers of one name on this shard.
    pub fn subscribers(&self, kind: Kind, name: &[u8]) -> usize {
        let map = match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard_channels,
        };
        map.get(name).map_or(0, |v| v.len())
    }
}

/// Subscribes the connection to each name, writing one confirmation per name. Synchronous on
/// the home shard: the subscription is registered and counted before its ack exists.
pub fn subscribe(sh: &Shard, handle: &Rc<ClientHandle>, out: &mut Reply, kind: Kind, names: &[Bytes]) {
    let counters = &sh.local.shared.pubsub;
    for name in names {
        if handle.pubsub.set(kind).borrow_mut().insert(name) {
            counters.of(kind)[sh.id].fetch_add(1, Ordering::SeqCst);
            handle.pubsub.total.set(handle.pubsub.total.get() + 1);
            sh.local
                .pubsub
                .borrow_mut()
                .map(kind)
                .entry(name.clone())
                .or_default()
                .push(handle.clone());
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

fn unsubscribe_one(sh: &Shard, handle: &ClientHandle, kind: Kind, name: &[u8]) -> bool {
    if !handle.pubsub.set(kind).borrow_mut().remove(name) {
        return false;
    }
    sh.local.shared.pubsub.of(kind)[sh.id].fetch_sub(1, Ordering::SeqCst);
    handle.pubsub.total.set(handle.pubsub.total.get() - 1);
    let mut reg = sh.local.pubsub.borrow_mut();
    let map = reg.map(kind);
    if let Some(subs) = map.get_mut(name) {
        subs.retain(|h| h.id != handle.id);
        if subs.is_empty() {
            map.remove(name);
        }
    }
    true
}

/// Unsubscribes from each name (every subscription of `kind` when `names` is empty), one
/// confirmation per name; with nothing to unsubscribe from, one with a null name.
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

/// RESET and disconnect: drop every subscription without replies.
pub fn unsubscribe_all(sh: &Shard, handle: &ClientHandle) {
    if handle.pubsub.total.get() == 0 {
        return;
    }
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        let names = handle.pubsub.set(kind).borrow().order.clone();
        for n in names {
            unsubscribe_one(sh, handle, kind, &n);
        }
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

/// Delivers one message to this shard's subscribers; the number reached.
pub fn deliver(sh: &Shard, kind: Kind, channel: &[u8], message: &[u8]) -> usize {
    let limit = sh.local.cfg.borrow().pubsub_obuf;
    let reg = sh.local.pubsub.borrow();
    let mut n = 0;
    let exact = match kind {
        Kind::Shard => &reg.shard_channels,
        _ => &reg.channels,
    };
    if let Some(subs) = exact.get(channel) {
        let f = frame(
            if kind == Kind::Shard { b"smessage" } else { b"message" },
            None,
            channel,
            message,
        );
        for h in subs {
            append(sh, h, &f, limit);
        }
        n += subs.len();
    }
    if kind != Kind::Shard {
        for (pattern, subs) in reg.patterns.iter() {
            if crate::config::glob::glob_match(pattern, channel, false) {
                let f = frame(b"pmessage", Some(pattern), channel, message);
                for h in subs {
                    append(sh, h, &f, limit);
                }
                n += subs.len();
            }
        }
    }
    n
}

/// PUBLISH / SPUBLISH: delivers on every shard that has subscribers; the exact total.
pub async fn publish(
    sh: &Rc<Shard>,
    kind: Kind,
    channel: Bytes,
    message: Bytes,
) -> Result<usize, crate::error::CmdError> {
    let targets = sh.local.shared.pubsub.targets(kind);
    match targets[..] {
        [] => Ok(0),
        [t] if t == sh.id => Ok(deliver(sh, kind, &channel, &message)),
        _ => {
            let counts = sh
                .hop_many(&targets, move |sh| deliver(sh, kind, &channel, &message))
                .await?;
            Ok(counts.into_iter().sum())
        }
    }
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
fn send_pending(fd: i32, handle: &ClientHandle, sh: &Shard) -> Sent {
    let mut p = handle.pubsub.pending.borrow_mut();
    let mut off = 0;
    while off < p.len() {
        // SAFETY: the buffer outlives the call; fd is this connection's open socket.
        let n = unsafe {
            libc::send(
                fd,
                p[off..].as_ptr().cast(),
                p.len() - off,
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
        sh.local.stats.borrow_mut().net_output_bytes += off as u64;
        p.drain(..off);
    }
    if p.is_empty() {
        handle.omem.set(0);
        handle.pubsub.soft_since.set(None);
        if p.capacity() > 64 * 1024 {
            *p = Vec::new();
        }
        Sent::All
    } else {
        handle.omem.set(p.len());
        Sent::Blocked
    }
}

/// Waits until the socket has input, writing pushes as they come. False when the client
/// is gone. The read that follows finds data at once; no read is ever abandoned.
pub async fn wait_input(stream: &mut TcpStream, handle: &ClientHandle, sh: &Shard) -> bool {
    use futures_lite::AsyncWriteExt;
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    loop {
        {
            // One peek per round, kept in flight while pushes are sent directly.
            let mut b = [0u8; 1];
            let mut readable = std::pin::pin!(async { matches!(stream.peek(&mut b).await, Ok(n) if n > 0) });
            loop {
                if handle.killed.get() {
                    return false;
                }
                match send_pending(fd, handle, sh) {
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
        // The socket is full (a slow reader): wait for it to drain with an ordinary write.
        let pending = std::mem::take(&mut *handle.pubsub.pending.borrow_mut());
        handle.pubsub.in_flight.set(pending.len());
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
// Keyspace notifications.
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
    EVENTS.with(|e| {
        let mut e = e.borrow_mut();
        if flags.0 & NotifyFlags::KEYSPACE != 0 {
            let mut ch = Vec::with_capacity(20 + key.len());
            ch.extend_from_slice(format!("__keyspace@{db}__:").as_bytes());
            ch.extend_from_slice(key);
            e.push(Event {
                channel: ch.into(),
                message: Bytes::copy_from_slice(event.as_bytes()),
            });
        }
        if flags.0 & NotifyFlags::KEYEVENT != 0 {
            e.push(Event {
                channel: format!("__keyevent@{db}__:{event}").into_bytes().into(),
                message: Bytes::copy_from_slice(key),
            });
        }
    });
}

/// Keyspace events recorded on this thread, taken to be published by the client whose
/// commands produced them (in its command order: see [`publish_events`]).
pub struct Events(Vec<Event>);

impl Events {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
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

/// Publishes events for the connection whose commands produced them, before its next
/// command runs: every shard with subscribers gets the batch and the wait ends once all have
/// delivered, so a subscriber sees one client's events in that client's command order,
/// whichever shards its keys live on.
pub async fn publish_events(sh: &Rc<Shard>, events: Events) {
    if events.0.is_empty() {
        return;
    }
    let targets = sh.local.shared.pubsub.targets(Kind::Channel);
    match targets[..] {
        [] => {}
        [t] if t == sh.id => {
            for ev in &events.0 {
                deliver(sh, Kind::Channel, &ev.channel, &ev.message);
            }
        }
        _ => {
            let batch = std::sync::Arc::new(events.0);
            let _ = sh
                .hop_many(&targets, move |sh| {
                    for ev in batch.iter() {
                        deliver(sh, Kind::Channel, &ev.channel, &ev.message);
                    }
                })
                .await;
        }
    }
}

/// Publishes events no client waits for (expiry by the cron, serving blocked clients): to
/// this shard's subscribers now, to other shards through this shard's outbox (one task
/// drains it, so these events keep their order).
pub fn flush_events(sh: &Rc<Shard>) {
    let events = EVENTS.with(|e| {
        let mut e = e.borrow_mut();
        if e.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut *e))
        }
    });
    let Some(events) = events else { return };
    let counters = &sh.local.shared.pubsub;
    let remote = counters
        .subs
        .iter()
        .enumerate()
        .any(|(i, c)| i != sh.id && c.load(Ordering::SeqCst) > 0);
    if counters.subs[sh.id].load(Ordering::SeqCst) > 0 {
        for ev in &events {
            deliver(sh, Kind::Channel, &ev.channel, &ev.message);
        }
    }
    if !remote {
        return;
    }
    let start = {
        let mut reg = sh.local.pubsub.borrow_mut();
        reg.outbox.extend(events);
        !std::mem::replace(&mut reg.draining, true)
    };
    if start {
        let sh = sh.clone();
        glommio::spawn_local(async move {
            loop {
                let batch = std::mem::take(&mut sh.local.pubsub.borrow_mut().outbox);
                if batch.is_empty() {
                    sh.local.pubsub.borrow_mut().draining = false;
                    break;
                }
                let batch = std::sync::Arc::new(batch);
                let me = sh.id;
                let targets: Vec<usize> = sh
                    .local
                    .shared
                    .pubsub
                    .targets(Kind::Channel)
                    .into_iter()
                    .filter(|&t| t != me)
                    .collect();
                let _ = sh
                    .hop_many(&targets, move |sh| {
                        for ev in batch.iter() {
                            deliver(sh, Kind::Channel, &ev.channel, &ev.message);
                        }
                    })
                    .await;
            }
        })
        .detach();
    }
}

/// Expired keys (lazy or active expiry) about to be propagated as DELs: their events.
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
