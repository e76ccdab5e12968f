//! One database's slice of the keyspace on one shard: the keys, their expiry deadlines
//! (a second table holding only keys with a TTL, as Redis's `expires` dict, so that the
//! active cycle samples only keys that can expire), lazy expiry on access and the
//! adaptive active expiry cycle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::dict::Dict;
use super::value::Value;
use crate::config::NotifyFlags;

pub type Key = Box<[u8]>;

#[derive(Debug)]
pub struct Entry {
    pub value: Value,
    /// Seconds clock of the last access (Redis's 24-bit LRU field), for OBJECT IDLETIME.
    pub lru: u32,
}

/// Keys sampled per round of the active cycle (ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP).
pub const EXPIRE_KEYS_PER_LOOP: usize = 20;
/// Another round runs while more than this percentage of a sample was expired
/// (ACTIVE_EXPIRE_CYCLE_ACCEPTABLE_STALE).
pub const EXPIRE_ACCEPTABLE_STALE: usize = 10;

#[derive(Default, Debug, Clone, Copy)]
pub struct DbStats {
    pub expired_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
}

#[derive(Default)]
pub struct Db {
    keys: Dict<Key, Entry>,
    expires: Dict<Key, u64>,
    pub stats: DbStats,
    /// Keys removed by expiry since the owner last drained them: the shard turns them into
    /// `DEL` effects for the AOF and keyspace notifications.
    pub expired: Vec<Key>,
    /// Counts every push to `expired`; shared by the databases of a [`super::Store`] (see
    /// `Store::expired_queued`).
    expired_queued: Arc<AtomicUsize>,
    /// The LRU clock value stamped on access; the shard's cron refreshes it.
    pub lru_clock: u32,
    /// The LFU minutes clock (see [`lfu_minutes`]), refreshed with `lru_clock`.
    pub lfu_minutes: u32,
    /// Clients blocked on keys of this database (BLPOP, BZPOPMIN, ...): allocated while any are.
    pub blocked: Option<Box<Blocked>>,
    /// WATCHed keys: each watcher's flag is raised when the key is modified, deleted or
    /// expires (Redis's touchWatchedKey). Allocated while any key is watched.
    pub watched: Option<Box<Watched>>,
    /// This database's number, for the `new` and `keymiss` keyspace events.
    pub index: usize,
    /// Running estimate of the TTL left on keys with one, in ms (INFO keyspace `avg_ttl`),
    /// kept by the active expiry cycle from its samples as Redis's activeExpireCycle does.
    pub avg_ttl: u64,
}

/// A WATCHing client's flag: set once any of its watched keys changed.
pub type WatchFlag = std::sync::Arc<std::sync::atomic::AtomicBool>;

#[derive(Default)]
pub struct Watched {
    pub keys: ahash::AHashMap<Key, Vec<Watcher>>,
}

/// One client's WATCH of one key (Redis's watchedKey).
pub struct Watcher {
    pub flag: WatchFlag,
    /// The key was stored but past its deadline when WATCHed: for the watcher it did not
    /// exist, so its deletion is no change (cleared then; see [`Db::touch_watched`]).
    pub expired: bool,
}

/// Blocked clients by key, and the keys that got data since the shard last served them.
#[derive(Default)]
pub struct Blocked {
    pub waiters: ahash::AHashMap<Key, std::collections::VecDeque<std::sync::Arc<crate::server::blocking::Waiter>>>,
    pub ready: Vec<Key>,
}

/// How a lookup treats the key's access metadata (`CLIENT NO-TOUCH`, `OBJECT`, `TTL` and
/// `TYPE` do not touch it in Redis).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    Yes,
    No,
}

pub fn lru_clock(now_ms: u64) -> u32 {
    ((now_ms / 1000) & LRU_CLOCK_MAX) as u32
}

/// The LRU clock wraps at 24 bits.
pub const LRU_CLOCK_MAX: u64 = (1 << 24) - 1;

/// estimateObjectIdleTime, in seconds (the LRU clock's resolution): from an access stamp to
/// `clock`, across one wrap of the clock.
pub fn idle_seconds(stamp: u32, clock: u32) -> u64 {
    let (clock, stamp) = (clock as u64, stamp as u64);
    if clock >= stamp {
        clock - stamp
    } else {
        clock + (LRU_CLOCK_MAX - stamp)
    }
}

/// Redis's LFU, kept in the same 24-bit access field while `maxmemory-policy` is an LFU one:
/// 16 bits of minutes (the last decrement time) and an 8-bit logarithmic counter. A new
/// key starts at this counter, so it can collect some accesses before it is evicted.
pub const LFU_INIT_VAL: u32 = 5;

/// `lfu-log-factor` and `lfu-decay-time`, set on the shard's thread while an LFU policy is
/// selected (None: the access field is an LRU clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lfu {
    pub log_factor: u32,
    pub decay_time: u32,
}

thread_local! {
    /// Watched keys a write lookup found, awaiting the end of their command (see
    /// [`Db::lookup_write`] and [`take_deferred_touches`] and `Exec`'s drop).
    static DEFERRED_TOUCHES: std::cell::RefCell<Vec<(usize, Key)>> = const { std::cell::RefCell::new(Vec::new()) };
    static LFU: std::cell::Cell<Option<Lfu>> = const { std::cell::Cell::new(None) };
    static LFU_RNG: std::cell::Cell<u64> = const { std::cell::Cell::new(0x9E37_79B9_7F4A_7C15) };
}

/// At the end of a keyed command: the watched keys its write lookups found, taken (empty
/// almost always: only watched keys are deferred). The caller touches them in their
/// databases if the command changed anything, and drops them otherwise.
pub fn take_deferred_touches() -> Vec<(usize, Key)> {
    DEFERRED_TOUCHES.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut *d)
        }
    })
}

/// Whether a value of this type can serve a blocked client (a list or a sorted set): Redis's
/// signalKeyAsReady returns at once for the others, so a string written to a key clients
/// wait on wakes nobody (and no lookup then expires it).
fn can_serve_blocked(v: &Value) -> bool {
    matches!(v, Value::List(_) | Value::ZSet(_))
}

/// Selects LRU (None) or LFU accounting for this thread's stores.
pub fn set_lfu(lfu: Option<Lfu>) {
    LFU.with(|l| l.set(lfu));
}

pub fn lfu() -> Option<Lfu> {
    LFU.with(|l| l.get())
}

/// LFUGetTimeInMinutes: minutes of the Unix time, 16 bits.
pub fn lfu_minutes(now_ms: u64) -> u32 {
    ((now_ms / 1000 / 60) & 65535) as u32
}

/// LFUDecrAndReturn: the counter of `stamp` after the decay periods elapsed since its last
/// decrement time (the stamp itself is not changed).
pub fn lfu_decr_and_return(stamp: u32, now_min: u32, decay_time: u32) -> u32 {
    let ldt = stamp >> 8;
    let counter = stamp & 255;
    let elapsed = if now_min >= ldt {
        now_min - ldt
    } else {
        65535 - ldt + now_min
    };
    let periods = elapsed.checked_div(decay_time).unwrap_or(0);
    counter.saturating_sub(periods)
}

/// LFULogIncr: increments the counter with probability 1 / ((counter - LFU_INIT_VAL) *
/// log_factor + 1), saturating at 255.
fn lfu_log_incr(counter: u32, log_factor: u32, r: f64) -> u32 {
    if counter >= 255 {
        return 255;
    }
    let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
    let p = 1.0 / (base * log_factor as f64 + 1.0);
    if r < p {
        counter + 1
    } else {
        counter
    }
}

/// A uniform draw in [0, 1) for LFULogIncr (xorshift64*).
fn lfu_rand() -> f64 {
    LFU_RNG.with(|c| {
        let mut x = c.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        c.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// The access field after an access (Redis's lookupKey: updateLFU, or the LRU clock).
fn accessed(old: u32, clock: u32, minutes: u32) -> u32 {
    match lfu() {
        None => clock,
        Some(l) => {
            let c = lfu_decr_and_return(old, minutes, l.decay_time);
            (minutes << 8) | lfu_log_incr(c, l.log_factor, lfu_rand())
        }
    }
}

impl Db {
    pub fn new() -> Db {
        Db::default()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    /// True when the key exists but its deadline has passed (it is deleted on next access).
    fn is_expired(&self, key: &[u8], now: u64) -> bool {
        !self.expires.is_empty() && matches!(self.expires.get(key), Some(&at) if at <= now)
    }

    fn expire_now(&mut self, key: &[u8]) {
        if let Some((k, _)) = self.keys.remove(key) {
            self.expires.remove(key);
            // Sent now, as Redis's deleteExpiredKeyAndPropagate does: before the events of
            // the command that found the key expired (a `set` after it, not before).
            crate::server::pubsub::note_expired(self.index, &k);
            self.stats.expired_keys += 1;
            self.expired.push(k);
            self.expired_queued.fetch_add(1, Ordering::Relaxed);
        }
        // After the removal, as Redis's deleteExpiredKeyAndPropagate: a watcher that saw
        // the key already expired sees no change.
        self.touch_watched(key);
    }

    /// Looks a key up for a command: expired keys are deleted first (lazy expiry) and the
    /// access is counted as a hit or miss.
    pub fn lookup(&mut self, key: &[u8], now: u64, touch: Touch) -> Option<&mut Entry> {
        let (clock, minutes, index) = (self.lru_clock, self.lfu_minutes, self.index);
        match self.lookup_quiet(key, now) {
            Some(e) => {
                if touch == Touch::Yes {
                    e.lru = accessed(e.lru, clock, minutes);
                }
                Some(e)
            }
            None => {
                crate::server::pubsub::notify(index, NotifyFlags::KEY_MISS, "keymiss", key);
                None
            }
        }
    }

    /// Like `lookup` without a `keymiss` event (Redis's LOOKUP_NONOTIFY, as OBJECT uses):
    /// lazy expiry and the hit/miss count, no touch.
    #[inline]
    pub fn lookup_quiet(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        if self.is_expired(key, now) {
            self.expire_now(key);
        }
        let e = self.keys.get_mut(key);
        if e.is_some() {
            self.stats.keyspace_hits += 1;
        } else {
            self.stats.keyspace_misses += 1;
        }
        e
    }

    /// Like `lookup`, for a write: no hit/miss accounting (Redis counts only reads). A
    /// watched key is touched only if the command changes something: its touch waits for
    /// the end of the command (see [`take_deferred_touches`] and `Exec`'s drop), so a write that fails or
    /// finds nothing to do (`SET NX` on an existing key, `LPUSH` on a string) does not
    /// fail other clients' transactions; Redis signals only modified keys.
    pub fn lookup_write(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        if self.is_expired(key, now) {
            self.expire_now(key);
        }
        if self.watched.as_ref().is_some_and(|w| w.keys.contains_key(key)) {
            let index = self.index;
            DEFERRED_TOUCHES.with(|d| d.borrow_mut().push((index, key.into())));
        }
        let (clock, minutes) = (self.lru_clock, self.lfu_minutes);
        let e = self.keys.get_mut(key)?;
        e.lru = accessed(e.lru, clock, minutes);
        Some(e)
    }

    /// Existence without side effects other than lazy expiry.
    pub fn contains(&mut self, key: &[u8], now: u64) -> bool {
        if self.is_expired(key, now) {
            self.expire_now(key);
            return false;
        }
        self.keys.contains_key(key)
    }

    /// MEMORY STATS: the bytes of the keyspace's and the expiry table's buckets and nodes.
    pub fn table_overhead(&self) -> (usize, usize) {
        (self.keys.table_bytes(), self.expires.table_bytes())
    }

    /// MEMORY USAGE: what a key costs outside its value, its keyspace node and its name.
    pub fn key_overhead(key: &[u8]) -> usize {
        Dict::<Key, Entry>::node_bytes() + key.len()
    }

    /// The entry stored under `key` (expired or not), without touching it or counting it.
    pub fn peek(&self, key: &[u8]) -> Option<&Entry> {
        self.keys.get(key)
    }

    /// A key just created or looked up by this command: no expiry check, no second touch.
    pub fn peek_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.keys.get_mut(key)
    }

    /// Raises the flags of the clients watching `key` (Redis's touchWatchedKey). A watcher
    /// that saw the key already expired is not raised by its deletion (the flag is cleared
    /// instead), nor by a change while it is still stored.
    #[inline]
    pub fn touch_watched(&mut self, key: &[u8]) {
        let Some(w) = self.watched.as_deref_mut() else { return };
        let Some(list) = w.keys.get_mut(key) else { return };
        let present = self.keys.contains_key(key);
        for wk in list {
            if wk.expired {
                // Redis stops at the first such watcher while the key is stored (a
                // `break`); skipping only this one may abort more transactions, never fewer.
                if !present {
                    wk.expired = false;
                }
                continue;
            }
            wk.flag.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// FLUSHDB, FLUSHALL, and each side of SWAPDB (`replaced_with`: the database whose data
    /// takes this one's place): Redis's touchAllWatchedKeysInDb. A watched key that exists
    /// in either raises its watchers, except that a key expired when WATCHed and deleted (or
    /// replaced by another expired one) is no change, and a missing key replaced by an
    /// expired one counts as expired for its watchers.
    fn touch_all_watched(&mut self, replaced_with: Option<&Db>) {
        let Some(w) = self.watched.as_deref_mut() else { return };
        let now = crate::server::unix_ms();
        for (k, list) in w.keys.iter_mut() {
            let in_emptied = self.keys.contains_key(&k[..]);
            let in_replacement = replaced_with.is_some_and(|r| r.keys.contains_key(&k[..]));
            if !in_emptied && !in_replacement {
                continue;
            }
            let replacement_expired = in_replacement && replaced_with.is_some_and(|r| r.is_expired(k, now));
            for wk in list.iter_mut() {
                if wk.expired {
                    if !in_replacement {
                        wk.expired = false;
                        continue;
                    }
                    if replacement_expired {
                        continue;
                    }
                } else if !in_emptied && replacement_expired {
                    wk.expired = true;
                    continue;
                }
                wk.flag.store(true, std::sync::atomic::Ordering::Release);
            }
        }
    }

    /// WATCH: registers `flag` on `key`. Returns the deadline of a live key with a TTL: once
    /// it passes the key has logically changed (Redis's isWatchedKeyExpired at EXEC), even
    /// if it is still stored and nothing raised the flag.
    pub fn watch(&mut self, key: &[u8], flag: &WatchFlag, now: u64) -> Option<u64> {
        let expired = self.is_expired(key, now);
        let deadline = if expired { None } else { self.expires.get(key).copied() };
        let v = self
            .watched
            .get_or_insert_with(Default::default)
            .keys
            .entry(key.into())
            .or_default();
        if !v.iter().any(|wk| std::sync::Arc::ptr_eq(&wk.flag, flag)) {
            v.push(Watcher {
                flag: flag.clone(),
                expired,
            });
        }
        deadline
    }

    /// UNWATCH: removes `flag` from `key`.
    pub fn unwatch(&mut self, key: &[u8], flag: &WatchFlag) {
        let Some(w) = &mut self.watched else { return };
        if let Some(v) = w.keys.get_mut(key) {
            v.retain(|wk| !std::sync::Arc::ptr_eq(&wk.flag, flag));
            if v.is_empty() {
                w.keys.remove(key);
            }
        }
        if w.keys.is_empty() {
            self.watched = None;
        }
    }

    /// Marks `key` ready for the clients blocked on it, if any.
    pub fn signal_ready(&mut self, key: &[u8]) {
        if let Some(b) = &mut self.blocked {
            if b.waiters.contains_key(key) && !b.ready.iter().any(|k| &k[..] == key) {
                b.ready.push(key.into());
            }
        }
    }

    /// Stores `value` under `key`, replacing any old value. The TTL is cleared unless
    /// `keep_ttl` (SET's default clears it; KEEPTTL and in-place updates keep it).
    pub fn set(&mut self, key: &[u8], value: Value, keep_ttl: bool) {
        let fresh = self.fresh_stamp();
        let serves = can_serve_blocked(&value);
        let (slot, inserted) = self.keys.get_or_insert_with(
            key,
            || key.into(),
            || Entry {
                value: Value::Str(super::value::Str::Int(0)),
                lru: fresh,
            },
        );
        slot.value = value;
        // dbSetValue: a new value is a new object (stamped now), except that under LFU it
        // keeps the old one's counter.
        if lfu().is_none() {
            slot.lru = fresh;
        }
        if !inserted && !keep_ttl && !self.expires.is_empty() {
            self.expires.remove(key);
        }
        if inserted {
            crate::server::pubsub::notify(self.index, NotifyFlags::NEW, "new", key);
        }
        self.touch_watched(key);
        if serves {
            self.signal_ready(key);
        }
    }

    /// Redis's setKey without flags: a write lookup of `key` (expiry, WATCH, and the access
    /// an LFU counter counts) and then [`Db::set`]. For commands that write a key they did
    /// not look up themselves (MSET, GETSET, the *STORE commands); SET looks up first.
    pub fn set_key(&mut self, key: &[u8], value: Value, now: u64) {
        self.lookup_write(key, now);
        self.set(key, value, false);
    }

    /// The access field of a new object (createObject): the LRU clock, or under LFU the
    /// current minutes with LFU_INIT_VAL.
    pub fn fresh_stamp(&self) -> u32 {
        match lfu() {
            None => self.lru_clock,
            Some(_) => (self.lfu_minutes << 8) | LFU_INIT_VAL,
        }
    }

    /// Gives every key a new object's access field (see [`Db::fresh_stamp`]).
    pub fn restamp(&mut self) {
        let fresh = self.fresh_stamp();
        for (_, e) in self.keys.iter_mut() {
            e.lru = fresh;
        }
    }

    /// Inserts a whole entry (RENAME, MOVE, COPY keep the value's metadata).
    pub fn insert_entry(&mut self, key: &[u8], entry: Entry, expire_at: Option<u64>) {
        let serves = can_serve_blocked(&entry.value);
        if self.keys.insert(key.into(), entry).is_none() {
            crate::server::pubsub::notify(self.index, NotifyFlags::NEW, "new", key);
        }
        self.touch_watched(key);
        if serves {
            self.signal_ready(key);
        }
        match expire_at {
            Some(at) => {
                self.expires.insert(key.into(), at);
            }
            None => {
                if !self.expires.is_empty() {
                    self.expires.remove(key);
                }
            }
        }
    }

    /// Removes a key (expired or not: callers that must not see expired keys call
    /// `contains`/`lookup` first). Returns the entry and its deadline.
    pub fn remove(&mut self, key: &[u8]) -> Option<(Entry, Option<u64>)> {
        let (_, entry) = self.keys.remove(key)?;
        self.touch_watched(key);
        let at = if self.expires.is_empty() {
            None
        } else {
            self.expires.remove(key).map(|(_, at)| at)
        };
        Some((entry, at))
    }

    /// Keys eviction may choose from: every key, or (`volatile`) those with a TTL.
    pub fn eviction_candidates(&self, volatile: bool) -> usize {
        if volatile {
            self.expires.len()
        } else {
            self.keys.len()
        }
    }

    /// Whether `key` is still a candidate (a pooled key may have been deleted since).
    pub fn has_eviction_candidate(&self, volatile: bool, key: &[u8]) -> bool {
        if volatile {
            self.expires.get(key).is_some()
        } else {
            self.keys.get(key).is_some()
        }
    }

    /// evictionPoolPopulate's sampling (dictGetSomeKeys): calls `f(key, access field,
    /// deadline)` for up to `n` keys sampled from every key, or only from keys with a TTL.
    pub fn sample_for_eviction(
        &self,
        volatile: bool,
        n: usize,
        rand: &mut impl FnMut() -> u64,
        mut f: impl FnMut(&Key, u32, Option<u64>),
    ) {
        if volatile {
            self.expires.sample_keys(n, rand, |k, at| {
                if let Some(e) = self.keys.get(&k[..]) {
                    f(k, e.lru, Some(*at));
                }
            });
        } else {
            self.keys.sample_keys(n, rand, |k, e| f(k, e.lru, None));
        }
    }

    /// A random key for the random eviction policies (dictGetRandomKey).
    pub fn random_for_eviction(&self, volatile: bool, rand: &mut impl FnMut() -> u64) -> Option<Key> {
        if volatile {
            self.expires.random_entry(rand).map(|(k, _)| k.clone())
        } else {
            self.keys.random_entry(rand).map(|(k, _)| k.clone())
        }
    }

    /// The deadline of a live key.
    pub fn expire_at(&self, key: &[u8]) -> Option<u64> {
        if self.expires.is_empty() {
            None
        } else {
            self.expires.get(key).copied()
        }
    }

    /// Sets the deadline of an existing key. Returns false if the key does not exist.
    pub fn set_expire(&mut self, key: &[u8], at: u64) -> bool {
        if !self.keys.contains_key(key) {
            return false;
        }
        self.touch_watched(key);
        let (slot, _) = self.expires.get_or_insert_with(key, || key.into(), || at);
        *slot = at;
        true
    }

    /// Removes the deadline. Returns true if there was one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        let removed = !self.expires.is_empty() && self.expires.remove(key).is_some();
        if removed {
            self.touch_watched(key);
        }
        removed
    }

    pub fn clear(&mut self) -> usize {
        self.touch_all_watched(None);
        let n = self.keys.len();
        self.keys = Dict::new();
        self.expires = Dict::new();
        n
    }

    /// Makes this database count its expired keys in `queued` (its store's counter).
    pub(super) fn share_expired_count(&mut self, queued: &Arc<AtomicUsize>) {
        self.expired_queued = queued.clone();
    }

    /// Moves all contents out (SWAPDB, FLUSHALL ASYNC hand-off).
    pub fn take(&mut self) -> Db {
        self.touch_all_watched(None);
        let mut taken = Db::new();
        std::mem::swap(&mut taken.keys, &mut self.keys);
        std::mem::swap(&mut taken.expires, &mut self.expires);
        taken
    }

    /// Swaps the data of two databases (SWAPDB): stats and pending effects stay in place.
    /// Blocked clients stay with their database number, so keys they wait on that the swap
    /// brought in are ready (Redis's scanDatabaseForReadyKeys).
    pub fn swap_data(&mut self, other: &mut Db) {
        self.touch_all_watched(Some(other));
        other.touch_all_watched(Some(self));
        std::mem::swap(&mut self.keys, &mut other.keys);
        std::mem::swap(&mut self.expires, &mut other.expires);
        std::mem::swap(&mut self.avg_ttl, &mut other.avg_ttl);
        self.signal_present_waited_keys();
        other.signal_present_waited_keys();
    }

    fn signal_present_waited_keys(&mut self) {
        let Some(b) = &self.blocked else { return };
        let present: Vec<Key> = b
            .waiters
            .keys()
            .filter(|k| self.keys.contains_key(&k[..]))
            .cloned()
            .collect();
        for k in present {
            self.signal_ready(&k);
        }
    }

    /// One step of a dict scan over this database: calls `f` for each stored key (expired
    /// or not: SCAN filters them as Redis does, a rewrite wants them all) in the buckets the
    /// cursor names and returns the next cursor (0 when done).
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &Entry)) -> u64 {
        self.keys.scan(cursor, |k, e| f(k, e))
    }

    /// Every live key (KEYS). Expired keys found on the way are not returned.
    pub fn for_each_key(&self, now: u64, mut f: impl FnMut(&[u8], &Entry)) {
        let expires = &self.expires;
        for (k, e) in self.keys.iter() {
            let expired = !expires.is_empty() && matches!(expires.get(&k[..]), Some(&at) if at <= now);
            if !expired {
                f(k, e)
            }
        }
    }

    /// RANDOMKEY: a random live key; expired keys met on the way are deleted, as Redis does.
    pub fn random_key(&mut self, now: u64, rand: &mut impl FnMut() -> u64) -> Option<Key> {
        // Bounded like Redis's dbRandomKey: if every key sampled is expired, give up after
        // a while rather than loop (the active cycle reclaims them).
        for _ in 0..100 {
            let key: Key = self.keys.random_entry(rand).map(|(k, _)| k.clone())?;
            if self.is_expired(&key, now) {
                self.expire_now(&key);
                continue;
            }
            return Some(key);
        }
        None
    }

    /// One database's share of the active expiry cycle: sample keys with a TTL, delete
    /// the expired ones, repeat while more than 10% of a sample was expired and `budget`
    /// (called between rounds) allows. Returns the number of keys reclaimed.
    pub fn active_expire(
        &mut self,
        now: u64,
        rand: &mut impl FnMut() -> u64,
        mut budget: impl FnMut() -> bool,
    ) -> usize {
        let mut reclaimed = 0;
        let mut victims: Vec<Key> = Vec::with_capacity(EXPIRE_KEYS_PER_LOOP);
        loop {
            if self.expires.is_empty() {
                self.avg_ttl = 0;
                break;
            }
            self.expires.rehash_steps(1);
            let sample = EXPIRE_KEYS_PER_LOOP.min(self.expires.len());
            let mut sampled = 0;
            let (mut ttl_sum, mut ttl_samples) = (0u64, 0u64);
            victims.clear();
            self.expires.sample_keys(sample, rand, |k, &at| {
                sampled += 1;
                if at <= now {
                    victims.push(k.clone());
                } else {
                    ttl_sum += at - now;
                    ttl_samples += 1;
                }
            });
            if let Some(avg) = ttl_sum.checked_div(ttl_samples) {
                // Redis's running average: the new sample weighs 2%, the estimate 98%.
                if self.avg_ttl == 0 {
                    self.avg_ttl = avg;
                }
                self.avg_ttl = (self.avg_ttl / 50) * 49 + avg / 50;
            }
            let expired = victims.len();
            for k in victims.drain(..) {
                self.expire_now(&k);
            }
            reclaimed += expired;
            if sampled == 0 || expired * 100 / sampled <= EXPIRE_ACCEPTABLE_STALE || !budget() {
                break;
            }
        }
        reclaimed
    }

    /// Cron housekeeping: incremental rehash and shrinking of sparse tables.
    pub fn cron(&mut self) {
        self.keys.rehash_steps(100);
        self.expires.rehash_steps(100);
        self.keys.shrink_if_sparse();
        self.expires.shrink_if_sparse();
    }

    pub fn table_bytes(&self) -> usize {
        self.keys.table_bytes() + self.expires.table_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::value::Str;

    fn s(v: &[u8]) -> Value {
        Value::Str(Str::from_set(v))
    }

    #[test]
    fn idle_wraps_like_the_lru_clock() {
        assert_eq!(idle_seconds(100, 130), 30);
        assert_eq!(idle_seconds((1 << 24) - 10, 5), 14);
    }

    #[test]
    fn lfu_counter_decays_by_elapsed_periods() {
        // Last decrement at minute 100, counter 20.
        let stamp = (100 << 8) | 20;
        assert_eq!(lfu_decr_and_return(stamp, 100, 1), 20);
        assert_eq!(lfu_decr_and_return(stamp, 105, 1), 15);
        assert_eq!(lfu_decr_and_return(stamp, 105, 2), 18);
        assert_eq!(lfu_decr_and_return(stamp, 500, 1), 0);
        // lfu-decay-time 0: never decays.
        assert_eq!(lfu_decr_and_return(stamp, 500, 0), 20);
        // The 16-bit minutes clock wraps once: 65535 - 65530 + 2 = 7 minutes.
        assert_eq!(lfu_decr_and_return((65530 << 8) | 20, 2, 1), 13);
    }

    #[test]
    fn lfu_log_incr_is_logarithmic_and_saturates() {
        // At or below LFU_INIT_VAL every access counts, whatever the factor.
        assert_eq!(lfu_log_incr(5, 10, 0.999), 6);
        assert_eq!(lfu_log_incr(0, 10, 0.999), 1);
        // Factor 0: always.
        assert_eq!(lfu_log_incr(200, 0, 0.999), 201);
        // Counter 15, factor 10: p = 1 / 101.
        assert_eq!(lfu_log_incr(15, 10, 0.0098), 16);
        assert_eq!(lfu_log_incr(15, 10, 0.0100), 15);
        assert_eq!(lfu_log_incr(255, 0, 0.0), 255);
    }

    #[test]
    fn lfu_mode_stamps_new_and_touched_keys() {
        set_lfu(Some(Lfu {
            log_factor: 0,
            decay_time: 0,
        }));
        let mut db = Db::new();
        db.lfu_minutes = 77;
        db.set(b"k", s(b"v"), false);
        assert_eq!(db.peek(b"k").unwrap().lru, (77 << 8) | LFU_INIT_VAL);
        db.lookup(b"k", 0, Touch::Yes);
        db.lookup(b"k", 0, Touch::No);
        assert_eq!(db.peek(b"k").unwrap().lru & 255, LFU_INIT_VAL + 1);
        // An overwrite keeps the counter (dbSetValue under LFU).
        db.set(b"k", s(b"w"), false);
        assert_eq!(db.peek(b"k").unwrap().lru & 255, LFU_INIT_VAL + 1);
        set_lfu(None);
        db.lru_clock = 1234;
        db.set(b"k", s(b"x"), false);
        assert_eq!(db.peek(b"k").unwrap().lru, 1234);
    }

    fn rng() -> impl FnMut() -> u64 {
        let mut x = 0x9E3779B97F4A7C15u64;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn set_clears_ttl_unless_kept() {
        let mut db = Db::new();
        db.set(b"k", s(b"v"), false);
        assert!(db.set_expire(b"k", 1000));
        db.set(b"k", s(b"w"), true);
        assert_eq!(db.expire_at(b"k"), Some(1000));
        db.set(b"k", s(b"x"), false);
        assert_eq!(db.expire_at(b"k"), None);
        assert!(!db.set_expire(b"missing", 5));
    }

    #[test]
    fn lazy_expiry_deletes_and_records() {
        let mut db = Db::new();
        db.set(b"k", s(b"v"), false);
        db.set_expire(b"k", 100);
        assert!(db.lookup(b"k", 99, Touch::Yes).is_some());
        assert!(db.lookup(b"k", 100, Touch::Yes).is_none());
        assert_eq!(db.len(), 0);
        assert_eq!(db.expires_len(), 0);
        assert_eq!(db.stats.expired_keys, 1);
        assert_eq!(db.expired, vec![Key::from(&b"k"[..])]);
    }

    #[test]
    fn active_cycle_reclaims_without_touching_live_keys() {
        let mut db = Db::new();
        for i in 0..1000u32 {
            let k = format!("k{i}");
            db.set(k.as_bytes(), s(b"v"), false);
            db.set_expire(k.as_bytes(), if i % 2 == 0 { 10 } else { 10_000 });
        }
        for i in 0..1000u32 {
            db.set(format!("p{i}").as_bytes(), s(b"v"), false);
        }
        let mut r = rng();
        let mut total = 0;
        // Cycles sample at random and stop early while few of their samples are expired (as
        // Redis's): the last stale keys take a number of cycles that varies from run to run.
        for _ in 0..100_000 {
            total += db.active_expire(20, &mut r, || true);
            if total >= 500 {
                break;
            }
        }
        assert_eq!(total, 500);
        assert_eq!(db.len(), 1500);
        assert_eq!(db.expires_len(), 500);
    }

    #[test]
    fn active_cycle_estimates_average_ttl() {
        let mut db = Db::new();
        for i in 0..100u32 {
            let k = format!("k{i}");
            db.set(k.as_bytes(), s(b"v"), false);
            // TTLs left at now = 1000: 10_000 and 30_000 ms, half each: mean 20_000.
            db.set_expire(k.as_bytes(), if i % 2 == 0 { 11_000 } else { 31_000 });
        }
        let mut r = rng();
        for _ in 0..500 {
            db.active_expire(1000, &mut r, || true);
        }
        assert!(
            (15_000..=25_000).contains(&db.avg_ttl),
            "avg_ttl {} is not near the mean TTL left",
            db.avg_ttl
        );
        // A database without TTLs has no estimate (Redis resets it to 0).
        for i in 0..100u32 {
            db.persist(format!("k{i}").as_bytes());
        }
        db.active_expire(1000, &mut r, || true);
        assert_eq!(db.avg_ttl, 0);
    }

    #[test]
    fn random_key_skips_and_deletes_expired() {
        let mut db = Db::new();
        db.set(b"a", s(b"1"), false);
        db.set_expire(b"a", 5);
        let mut r = rng();
        assert_eq!(db.random_key(10, &mut r), None);
        assert_eq!(db.len(), 0);
        db.set(b"b", s(b"1"), false);
        assert_eq!(db.random_key(10, &mut r).as_deref(), Some(&b"b"[..]));
    }
}
