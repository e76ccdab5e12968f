//! `maxmemory` eviction, as Redis's evict.c, shard by shard.
//!
//! Before a command runs, its connection's shard checks the memory estimate against
//! `maxmemory`. Over the limit, it evicts keys of its own keyspace chosen by
//! `maxmemory-policy` (an eviction pool of the best of `maxmemory-samples` sampled keys for
//! the LRU, LFU and TTL policies; a random key for the random ones) until it has freed its
//! share of the excess, or the `maxmemory-eviction-tenacity` time limit passes (then a
//! background task goes on, as Redis's eviction time proc). Each eviction is a `DEL` (or
//! `UNLINK` with `lazyfree-lazy-eviction`) effect for the AOF, an `evicted` keyspace event,
//! and a touch of the key's WATCHers. If nothing is left to evict, commands that may grow
//! memory (`denyoom`) get `-OOM`, as in Redis.
//!
//! Where basalt differs from Redis:
//! - The memory figure is jemalloc's `allocated`, refreshed by the cron (`hz` times a second),
//!   plus what this shard's thread allocated net since (jemalloc's per-thread counters, two
//!   loads). Other shards' growth since the last refresh shows at the next one, so with
//!   several shards writing, memory can pass `maxmemory` by what they allocate in 1/hz
//!   seconds before eviction catches up.
//! - Keys are hashed evenly over the shards, so each shard evicts its share
//!   (excess / shards, re-checked before every command) of its own keys: the pool is per
//!   shard, and the candidates are the best of each shard's samples, not of one global pool.
//! - The shard that finds memory over the limit asks the others (at most once a
//!   millisecond) to evict their shares too, so one connection writing keys of every shard
//!   does not empty its own shard first. `-OOM` comes when no shard has anything left to
//!   evict: each shard publishes whether it had at its last try, and a shard with nothing
//!   left asks the others that claim to have something before it refuses a command.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::config::{Config, MaxmemoryPolicy, NotifyFlags};
use crate::shard::Shard;
use crate::store::db::{lfu_decr_and_return, Key, Lfu};

/// What eviction reads of the configuration (cached per shard with the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub maxmemory: u64,
    pub policy: MaxmemoryPolicy,
    pub samples: usize,
    pub tenacity: u32,
    pub lfu_log_factor: u32,
    pub lfu_decay_time: u32,
    /// lazyfree-lazy-eviction: propagate UNLINK instead of DEL.
    pub lazy: bool,
}

impl Params {
    pub fn of(c: &Config) -> Params {
        Params {
            maxmemory: c.maxmemory,
            policy: c.maxmemory_policy,
            samples: c.maxmemory_samples.max(1) as usize,
            tenacity: c.maxmemory_eviction_tenacity,
            lfu_log_factor: c.lfu_log_factor,
            lfu_decay_time: c.lfu_decay_time,
            lazy: c.lazyfree_lazy_eviction,
        }
    }

    /// The LFU parameters while an LFU policy is selected.
    pub fn lfu(&self) -> Option<Lfu> {
        self.policy.is_lfu().then_some(Lfu {
            log_factor: self.lfu_log_factor,
            decay_time: self.lfu_decay_time,
        })
    }

    /// evictionTimeLimitUs: how long one call may evict before handing over to the
    /// background task.
    fn time_limit(&self) -> Duration {
        let t = self.tenacity;
        if t <= 10 {
            Duration::from_micros(50 * t as u64)
        } else if t < 100 {
            Duration::from_micros((500.0 * 1.15f64.powi(t as i32 - 10)) as u64)
        } else {
            Duration::MAX
        }
    }
}

/// performEvictions' result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Under the limit (or eviction cannot run right now).
    Ok,
    /// Over the limit, and the background task keeps evicting.
    Running,
    /// Over the limit with nothing (left) to evict: `denyoom` commands get -OOM.
    Fail,
    /// Nothing left on this shard, but another shard had something at its last try.
    Elsewhere,
}

/// EVPOOL_SIZE.
const POOL_SIZE: usize = 16;

/// An eviction candidate: a higher score is a better one to evict (idle seconds, 255 minus
/// the LFU counter, or u64::MAX minus the deadline).
#[derive(Debug)]
struct Candidate {
    score: u64,
    db: usize,
    key: Key,
}

/// A shard's eviction state.
#[derive(Default)]
pub struct Evictor {
    /// Candidates in ascending score (Redis's EvictionPoolLRU); may hold keys that are gone.
    pool: RefCell<Vec<Candidate>>,
    /// The random policies' database cursor.
    next_db: Cell<usize>,
    /// The global refresh this shard's estimate is based on, and this thread's net
    /// allocation at the time it noticed it.
    base: Cell<(u64, i64)>,
    /// The background task is evicting.
    running: Cell<bool>,
    /// When this shard last asked the others to evict their shares.
    asked_others: Cell<Option<Instant>>,
}

/// Bytes this thread allocated minus bytes it freed (jemalloc's per-thread counters).
fn thread_net() -> i64 {
    thread_local! {
        static COUNTERS: Option<(tikv_jemalloc_ctl::thread::ThreadLocal<u64>, tikv_jemalloc_ctl::thread::ThreadLocal<u64>)> = {
            let a = tikv_jemalloc_ctl::thread::allocatedp::read().ok();
            let d = tikv_jemalloc_ctl::thread::deallocatedp::read().ok();
            a.zip(d)
        };
    }
    COUNTERS.with(|c| match c {
        Some((a, d)) => a.get() as i64 - d.get() as i64,
        None => 0,
    })
}

impl Evictor {
    /// Memory as eviction sees it: the last refresh of jemalloc's `allocated`, plus what this
    /// shard allocated net since it noticed that refresh.
    fn used_memory(&self, shared: &super::ServerShared) -> u64 {
        let generation = shared.used_memory_gen.load(Ordering::Acquire);
        let used = shared.used_memory.load(Ordering::Relaxed);
        let net = thread_net();
        let (seen, base) = self.base.get();
        if seen != generation {
            self.base.set((generation, net));
            return used;
        }
        (used as i64 + (net - base)).max(0) as u64
    }
}

/// Redis's performEvictions before a command, on its connection's shard: true if memory is
/// over the limit and no shard has anything left to evict (`denyoom` commands get -OOM).
/// When this shard has nothing left but others had at their last try, asks them now
/// (rare: their answers update `ServerShared::evictable` for the next commands).
pub async fn out_of_memory(shard: &Rc<Shard>) -> bool {
    match perform(shard) {
        Outcome::Ok | Outcome::Running => false,
        Outcome::Fail => true,
        Outcome::Elsewhere => {
            for target in (0..shard.nshards).filter(|&t| t != shard.id) {
                let o = shard.hop(target, |other| perform_here(other, false)).await;
                // Elsewhere from there means nothing there either.
                if matches!(o, Ok(Outcome::Ok | Outcome::Running)) {
                    return false;
                }
            }
            true
        }
    }
}

/// `CONFIG SET maxmemory` (Redis's updateMaxmemory): a warning when the new limit is below
/// what is in use, and eviction at once on every shard rather than at the next command.
pub async fn maxmemory_changed(shard: &Rc<Shard>) {
    let max = shard.local.cfg.borrow().eviction.maxmemory;
    if max == 0 {
        return;
    }
    let used = super::memory::read().allocated;
    if max < used {
        tracing::warn!(
            "WARNING: the new maxmemory value set via CONFIG SET ({max}) is smaller than the current memory usage ({used}). This will result in key eviction and/or the inability to accept new write commands depending on the maxmemory-policy."
        );
    }
    let _ = shard
        .hop_all(|sh| {
            perform_here(sh, false);
        })
        .await;
}

/// performEvictions on this shard: in the cron, before a command (`out_of_memory`).
pub fn perform(shard: &Rc<Shard>) -> Outcome {
    perform_here(shard, true)
}

/// `ask`: also ask the other shards to evict their share (not when they asked us).
fn perform_here(shard: &Rc<Shard>, ask: bool) -> Outcome {
    let local = &shard.local;
    let p = local.cfg.borrow().eviction;
    if p.maxmemory == 0 {
        return Outcome::Ok;
    }
    let ev = &local.evictor;
    let shared = &local.shared;
    let mut used = ev.used_memory(shared);
    if used > p.maxmemory {
        // Over, by a figure up to 1/hz s old: read jemalloc's again first (at most once a
        // millisecond, whichever shard gets there), or a FLUSHALL elsewhere could still
        // count, and eviction work from other shards would be done twice.
        let now = super::unix_ms();
        let last = shared.used_memory_read_ms.load(Ordering::Relaxed);
        if now != last
            && shared
                .used_memory_read_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            super::memory::refresh_allocated(shared);
            used = ev.used_memory(shared);
        }
    }
    if used <= p.maxmemory {
        note_exceeded(shared, false);
        return Outcome::Ok;
    }
    if p.policy == MaxmemoryPolicy::NoEviction {
        note_exceeded(shared, true);
        return Outcome::Fail;
    }
    // isSafeToPerformEvictions: not while loading, not while a coordinator holds the store
    // (the next command after it is released evicts instead).
    if shared.persist.loading.load(Ordering::Relaxed) || !shard.is_open() {
        return Outcome::Ok;
    }
    if ask {
        ask_others(shard);
    }
    // This shard's share of the excess: every shard evicts its own (keys are spread evenly).
    let tofree = (used - p.maxmemory).div_ceil(shard.nshards as u64) as i64;
    let limit = p.time_limit();
    let start = Instant::now();
    let mut freed: i64 = 0;
    let mut evicted = 0u64;
    let mut outcome = Outcome::Ok;
    let now = super::unix_ms();
    shard.with_store(|store| {
        let mut effects = local.effects.borrow_mut();
        while freed < tofree {
            let Some((db, key)) = pick(ev, store, &p, now, &mut || local.rand()) else {
                outcome = Outcome::Fail;
                break;
            };
            let before = thread_net();
            let removed = store.dbs[db].remove(&key);
            drop(removed);
            freed += before - thread_net();
            evicted += 1;
            crate::server::pubsub::notify(db, NotifyFlags::EVICTED, "evicted", &key);
            effects.take_expired(store);
            effects.push(db, &[if p.lazy { &b"UNLINK"[..] } else { b"DEL" }, &key]);
            if evicted % 16 == 0 && start.elapsed() > limit {
                outcome = Outcome::Running;
                break;
            }
        }
    });
    if evicted > 0 {
        local.stats.borrow_mut().evicted_keys += evicted;
        local.durable.schedule_cut();
        super::pubsub::flush_events(shard);
    }
    // Nothing left here: another shard may still have something.
    shared.evictable[shard.id].store(outcome != Outcome::Fail, Ordering::Relaxed);
    if outcome == Outcome::Fail && shared.evictable.iter().any(|e| e.load(Ordering::Relaxed)) {
        outcome = Outcome::Elsewhere;
    }
    if outcome == Outcome::Running {
        start_background(shard);
    }
    note_exceeded(shared, outcome != Outcome::Ok || ev.running.get());
    outcome
}

/// Tracks total_eviction_exceeded_time / current_eviction_exceeded_time (process-wide).
fn note_exceeded(shared: &super::ServerShared, exceeded: bool) {
    let since = &shared.eviction_exceeded_since_ms;
    if exceeded {
        if since.load(Ordering::Relaxed) == 0 {
            let _ = since.compare_exchange(0, super::unix_ms().max(1), Ordering::AcqRel, Ordering::Relaxed);
        }
    } else if since.load(Ordering::Relaxed) != 0 {
        let s = since.swap(0, Ordering::AcqRel);
        if s != 0 {
            shared
                .eviction_exceeded_total_ms
                .fetch_add(super::unix_ms().saturating_sub(s), Ordering::Relaxed);
        }
    }
}

/// The next key to evict on this shard (None: nothing evictable).
fn pick(
    ev: &Evictor,
    store: &mut crate::store::Store,
    p: &Params,
    now: u64,
    rand: &mut impl FnMut() -> u64,
) -> Option<(usize, Key)> {
    let volatile = !p.policy.is_allkeys();
    match p.policy {
        MaxmemoryPolicy::AllkeysRandom | MaxmemoryPolicy::VolatileRandom => {
            let n = store.dbs.len();
            for _ in 0..n {
                let j = ev.next_db.get().wrapping_add(1) % n;
                ev.next_db.set(j);
                if let Some(key) = store.dbs[j].random_for_eviction(volatile, rand) {
                    return Some((j, key));
                }
            }
            None
        }
        _ => loop {
            let mut total = 0;
            for (i, db) in store.dbs.iter().enumerate() {
                let keys = db.eviction_candidates(volatile);
                if keys > 0 {
                    populate(ev, i, db, p, now, rand);
                    total += keys;
                }
            }
            if total == 0 {
                return None;
            }
            // From the best candidate down; keys deleted since they were pooled are ghosts.
            let mut pool = ev.pool.borrow_mut();
            while let Some(c) = pool.pop() {
                if store.dbs[c.db].has_eviction_candidate(volatile, &c.key) {
                    return Some((c.db, c.key));
                }
            }
        },
    }
}

/// evictionPoolPopulate: samples `db` and keeps the best POOL_SIZE candidates.
fn populate(
    ev: &Evictor,
    index: usize,
    db: &crate::store::db::Db,
    p: &Params,
    now: u64,
    rand: &mut impl FnMut() -> u64,
) {
    let mut pool = ev.pool.borrow_mut();
    let clock = crate::store::db::lru_clock(now);
    let minutes = crate::store::db::lfu_minutes(now);
    let volatile = !p.policy.is_allkeys();
    db.sample_for_eviction(volatile, p.samples, rand, |key, stamp, deadline| {
        let score = match p.policy {
            MaxmemoryPolicy::VolatileTtl => u64::MAX - deadline.unwrap_or(u64::MAX),
            _ if p.policy.is_lfu() => 255 - lfu_decr_and_return(stamp, minutes, p.lfu_decay_time) as u64,
            _ => crate::store::db::idle_seconds(stamp, clock),
        };
        // The same key sampled again keeps one place.
        if let Some(i) = pool.iter().position(|c| c.db == index && c.key[..] == key[..]) {
            pool.remove(i);
        }
        let k = pool.partition_point(|c| c.score < score);
        if pool.len() == POOL_SIZE {
            if k == 0 {
                // Worse than every candidate of a full pool.
                return;
            }
            // Drop the worst candidate to make room.
            pool.remove(0);
            pool.insert(
                k - 1,
                Candidate {
                    score,
                    db: index,
                    key: key.clone(),
                },
            );
        } else {
            pool.insert(
                k,
                Candidate {
                    score,
                    db: index,
                    key: key.clone(),
                },
            );
        }
    });
}

/// Redis's evictionTimeProc: keeps evicting in short slices, between other tasks, while
/// over the limit.
fn start_background(shard: &Rc<Shard>) {
    let ev = &shard.local.evictor;
    if ev.running.replace(true) {
        return;
    }
    let sh = shard.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::yield_if_needed().await;
            glommio::timer::sleep(Duration::from_micros(100)).await;
            // `perform` does not start a second task while this one runs.
            if perform(&sh) != Outcome::Running {
                break;
            }
        }
        sh.local.evictor.running.set(false);
    })
    .detach();
}

/// Over the limit: the other shards evict their shares too (asked at most once a
/// millisecond by each shard; they do not ask back).
fn ask_others(shard: &Rc<Shard>) {
    let ev = &shard.local.evictor;
    if shard.nshards == 1
        || ev
            .asked_others
            .get()
            .is_some_and(|t| t.elapsed() < Duration::from_millis(1))
    {
        return;
    }
    ev.asked_others.set(Some(Instant::now()));
    for target in (0..shard.nshards).filter(|&t| t != shard.id) {
        let sh = shard.clone();
        glommio::spawn_local(async move {
            let _ = sh
                .hop(target, |other| {
                    perform_here(other, false);
                })
                .await;
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(tenacity: u32) -> Params {
        Params {
            maxmemory: 1,
            policy: MaxmemoryPolicy::AllkeysLru,
            samples: 5,
            tenacity,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            lazy: false,
        }
    }

    #[test]
    fn time_limit_follows_redis() {
        assert_eq!(params(0).time_limit(), Duration::ZERO);
        assert_eq!(params(10).time_limit(), Duration::from_micros(500));
        // 500 * 1.15^10 = 2022.8
        assert_eq!(params(20).time_limit(), Duration::from_micros(2022));
        assert_eq!(params(100).time_limit(), Duration::MAX);
    }

    #[test]
    fn thread_net_sees_this_threads_allocations() {
        let a = thread_net();
        // black_box: a release build may elide an allocation nothing reads.
        let v = std::hint::black_box(vec![0u8; 1 << 20]);
        let b = thread_net();
        drop(v);
        let c = thread_net();
        assert!(b - a >= 1 << 20, "{a} {b}");
        assert!(b - c >= 1 << 20, "{b} {c}");
    }
}
