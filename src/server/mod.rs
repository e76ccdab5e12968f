//! The server layer: listeners, connections, dispatch, the client registry, INFO and stats.

pub mod blocking;
pub mod client;
pub mod conn;
pub mod dispatch;
pub mod evict;
pub mod info;
pub mod listener;
pub mod memory;
pub mod pubsub;
pub mod stats;
pub mod tls;

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::SharedConfig;
use crate::persist::{Core, Effects, PersistStats};
use crate::resp::Limits;

pub use client::Client;

/// State shared by every thread. Atomics and rarely-taken locks only: nothing here is on a
/// command's data path.
pub struct ServerShared {
    pub config: SharedConfig,
    pub nshards: usize,
    pub started: Instant,
    pub started_unix: u64,
    pub run_id: String,
    pub next_client_id: AtomicU64,
    pub connected_clients: AtomicUsize,
    pub monitors: AtomicUsize,
    /// Clients blocked in a blocking command (INFO blocked_clients).
    pub blocked_clients: AtomicUsize,
    pub shutting_down: AtomicBool,
    /// The exit code once shutdown was requested.
    pub exit_code: AtomicUsize,
    pub persist: PersistStats,
    pub lastsave: AtomicU64,
    pub slowlog: Mutex<stats::SlowLog>,
    /// The latency monitor's events (LATENCY LATEST/HISTORY/RESET).
    pub latency_events: Mutex<stats::LatencyMonitor>,
    /// Bytes allocated, refreshed by the cron (see memory.rs).
    pub used_memory: AtomicU64,
    /// Bumped by every refresh of `used_memory` (eviction's estimate restarts from it).
    pub used_memory_gen: AtomicU64,
    /// When eviction last had `used_memory` re-read (unix ms).
    pub used_memory_read_ms: AtomicU64,
    pub used_memory_peak: AtomicU64,
    /// Since when memory is over maxmemory (unix ms, 0: it is not), and the total time it
    /// was (INFO's current_/total_eviction_exceeded_time).
    pub eviction_exceeded_since_ms: AtomicU64,
    pub eviction_exceeded_total_ms: AtomicU64,
    /// Per shard: its last eviction found something to evict (so -OOM waits for all).
    pub evictable: Vec<std::sync::atomic::AtomicBool>,
    /// The TCP port actually bound (when `port 0` asks the kernel to pick).
    pub port: AtomicUsize,
    pub placement: String,
    pub executable: String,
    pub config_file: String,
    /// Who is subscribed to what on which shard: PUBLISH counts and routes without a hop.
    pub pubsub: pubsub::Directory,
    /// CLIENT PAUSE: until when (unix ms, 0: not paused) and what.
    pub pause: Pause,
    /// The TLS configuration new TLS connections get (built from the `tls-*` parameters at
    /// start and by CONFIG SET); `None` without a TLS port.
    pub tls: std::sync::RwLock<Option<Arc<rustls::ServerConfig>>>,
}

impl ServerShared {
    pub fn new(config: SharedConfig, nshards: usize, placement: String) -> ServerShared {
        let (port, config_file) = {
            let c = config.read();
            (
                c.port as usize,
                c.config_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            )
        };
        ServerShared {
            config,
            nshards,
            started: Instant::now(),
            started_unix: unix_ms() / 1000,
            run_id: random_hex(40),
            next_client_id: AtomicU64::new(1),
            connected_clients: AtomicUsize::new(0),
            monitors: AtomicUsize::new(0),
            blocked_clients: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            exit_code: AtomicUsize::new(0),
            persist: PersistStats::new(),
            lastsave: AtomicU64::new(unix_ms() / 1000),
            slowlog: Mutex::new(stats::SlowLog::default()),
            latency_events: Mutex::new(stats::LatencyMonitor::default()),
            used_memory: AtomicU64::new(0),
            used_memory_gen: AtomicU64::new(0),
            used_memory_read_ms: AtomicU64::new(0),
            used_memory_peak: AtomicU64::new(0),
            eviction_exceeded_since_ms: AtomicU64::new(0),
            eviction_exceeded_total_ms: AtomicU64::new(0),
            evictable: (0..nshards).map(|_| std::sync::atomic::AtomicBool::new(true)).collect(),
            port: AtomicUsize::new(port),
            placement,
            executable: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            config_file,
            pubsub: pubsub::Directory::new(nshards),
            tls: std::sync::RwLock::new(None),
            pause: Pause::default(),
        }
    }

    pub fn request_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// The configuration values a shard reads on its hot path, refreshed when the shared
/// configuration's generation changes.
#[derive(Clone)]
pub struct CachedConfig {
    pub generation: u64,
    pub requirepass: Option<Vec<u8>>,
    pub limits: Limits,
    pub query_buffer_limit: usize,
    pub databases: usize,
    pub slowlog_slower_than: i64,
    /// latency-tracking: per-command latency histograms for INFO latencystats.
    pub latency_tracking: bool,
    /// latency-monitor-threshold in ms (0: the latency monitor is off).
    pub latency_monitor_ms: u64,
    pub maxclients: usize,
    /// protected-mode: without a password, only loopback clients are accepted.
    pub protected_mode: bool,
    pub hz: u64,
    pub appendonly: bool,
    pub appendfsync: crate::config::Fsync,
    /// maxmemory-policy and its tuning (see `evict`).
    pub eviction: evict::Params,
    pub enc: crate::store::EncodingLimits,
    /// notify-keyspace-events bits.
    pub notify: u32,
    /// client-output-buffer-limit pubsub.
    pub pubsub_obuf: crate::config::ObufLimit,
    /// busy-reply-threshold in ms (0: scripts never turn busy).
    pub busy_reply_threshold: u64,
}

impl CachedConfig {
    pub fn load(shared: &SharedConfig) -> CachedConfig {
        let generation = shared.generation();
        let c = shared.read();
        crate::persist::rdb::set_compression(c.rdbcompression);
        CachedConfig {
            generation,
            requirepass: c.requirepass.clone(),
            limits: Limits {
                max_bulk_len: c.proto_max_bulk_len as usize,
                ..Limits::default()
            },
            query_buffer_limit: c.client_query_buffer_limit as usize,
            databases: c.databases,
            slowlog_slower_than: c.slowlog_log_slower_than,
            latency_tracking: c.latency_tracking,
            latency_monitor_ms: c.latency_monitor_threshold,
            maxclients: c.maxclients as usize,
            protected_mode: c.protected_mode,
            hz: (c.hz as u64).clamp(1, 500),
            appendonly: c.appendonly,
            appendfsync: c.appendfsync,
            eviction: evict::Params::of(&c),
            enc: crate::store::EncodingLimits {
                hash_max_listpack_entries: c.hash_max_listpack_entries,
                hash_max_listpack_value: c.hash_max_listpack_value,
                list_max_listpack_size: c.list_max_listpack_size,
                list_compress_depth: c.list_compress_depth,
                set_max_intset_entries: c.set_max_intset_entries,
                set_max_listpack_entries: c.set_max_listpack_entries,
                set_max_listpack_value: c.set_max_listpack_value,
                zset_max_listpack_entries: c.zset_max_listpack_entries,
                zset_max_listpack_value: c.zset_max_listpack_value,
                hll_sparse_max_bytes: c.hll_sparse_max_bytes,
            },
            notify: c.notify_keyspace_events.0,
            pubsub_obuf: c.client_output_buffer_limit.pubsub,
            busy_reply_threshold: c.busy_reply_threshold,
        }
    }
}

/// What a shard owns beyond its keyspace. Single-threaded: `Cell`/`RefCell` only.
pub struct ShardLocal {
    pub shared: Arc<ServerShared>,
    pub cfg: RefCell<CachedConfig>,
    pub stats: RefCell<stats::Stats>,
    pub clients: RefCell<client::Registry>,
    /// This shard's clients' Pub/Sub subscriptions.
    pub pubsub: RefCell<pubsub::Registry>,
    pub effects: RefCell<Effects>,
    /// The way to the persistence core (None in tests that run a shard without one).
    pub persist: Option<Arc<Core>>,
    /// Connections holding replies until their writes are durable (see persist::Durable).
    pub durable: crate::persist::Durable,
    /// maxmemory eviction's pool and estimate (see `evict`).
    pub evictor: evict::Evictor,
    rng: Cell<u64>,
    /// A (monotonic, wall-clock ms) pair: commands derive the wall clock from the Instant
    /// they take anyway, saving a clock read per command. The cron re-reads the wall clock
    /// every tick, so a clock adjustment is followed within 1/hz seconds.
    clock_base: Cell<(std::time::Instant, u64)>,
}

impl ShardLocal {
    pub fn new(shared: Arc<ServerShared>, persist: Option<Arc<Core>>, seed: u64) -> ShardLocal {
        let cfg = CachedConfig::load(&shared.config);
        let effects = Effects::new(cfg.appendonly);
        ShardLocal {
            shared,
            cfg: RefCell::new(cfg),
            stats: RefCell::new(stats::Stats::new(crate::command::table::len())),
            clients: RefCell::new(client::Registry::default()),
            pubsub: RefCell::new(pubsub::Registry::default()),
            effects: RefCell::new(effects),
            persist,
            durable: crate::persist::Durable::default(),
            evictor: evict::Evictor::default(),
            rng: Cell::new(seed | 1),
            clock_base: Cell::new((std::time::Instant::now(), unix_ms())),
        }
    }

    /// Re-reads the wall clock (from the cron).
    pub fn rebase_clock(&self) {
        self.clock_base.set((std::time::Instant::now(), unix_ms()));
    }

    /// Milliseconds since the epoch at `at`, from the last clock base.
    pub fn unix_ms_at(&self, at: std::time::Instant) -> u64 {
        let (base, ms) = self.clock_base.get();
        ms + at.saturating_duration_since(base).as_millis() as u64
    }

    /// Re-reads the cached configuration if it changed. Cheap when it did not.
    pub fn refresh_config(&self) {
        let generation = self.shared.config.generation();
        if generation != self.cfg.borrow().generation {
            // Effects are turned on and off by the AOF's cut (persist::rewrite), at one
            // instant on every shard, not here.
            *self.cfg.borrow_mut() = CachedConfig::load(&self.shared.config);
        }
        pubsub::set_notify_flags(self.cfg.borrow().notify);
        crate::store::db::set_lfu(self.cfg.borrow().eviction.lfu());
    }

    /// xorshift64*: RANDOMKEY, sampling and SCAN need speed, not cryptographic quality.
    pub fn rand(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545F4914F6CDD1D)
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Random hex from the kernel's generator (run ids), falling back to time-seeded bits.
pub fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len.div_ceil(2)];
    // SAFETY: getrandom writes at most bytes.len() bytes into the buffer we own.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        let mut x = unix_us() | 1;
        for b in &mut bytes {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
    let mut s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    s.truncate(len);
    s
}

/// CLIENT PAUSE's state: one relaxed load on every command when no pause is set.
#[derive(Default)]
pub struct Pause {
    /// Unix ms the pause ends at; 0 when there is none.
    end: AtomicU64,
    /// 1: writes are paused (WRITE), 2: every command (ALL).
    what: std::sync::atomic::AtomicU8,
    /// Serializes PAUSE and UNPAUSE (readers use the atomics).
    change: Mutex<()>,
}

impl Pause {
    /// Redis's pauseClients: the stronger of the two kinds and the later of the two ends.
    pub fn pause(&self, end: u64, all: bool) {
        let _g = self.change.lock().unwrap_or_else(|e| e.into_inner());
        self.what.fetch_max(if all { 2 } else { 1 }, Ordering::SeqCst);
        if self.end.fetch_max(end, Ordering::SeqCst).max(end) == 0 {
            // A zero timeout pauses nothing (Redis unpauses at its next check).
            self.what.store(0, Ordering::SeqCst);
        }
    }

    pub fn unpause(&self) {
        let _g = self.change.lock().unwrap_or_else(|e| e.into_inner());
        self.end.store(0, Ordering::SeqCst);
        self.what.store(0, Ordering::SeqCst);
    }

    /// Whether a command (`writes`: it may write or replicate) must wait now, and until when.
    pub fn holds(&self, writes: bool) -> Option<u64> {
        let end = self.end.load(Ordering::Relaxed);
        if end == 0 {
            return None;
        }
        let now = unix_ms();
        if now >= end {
            // Expired (Redis's checkClientPauseTimeoutAndReturnIfPaused).
            let _g = self.change.lock().unwrap_or_else(|e| e.into_inner());
            if self.end.load(Ordering::SeqCst) == end {
                self.end.store(0, Ordering::SeqCst);
                self.what.store(0, Ordering::SeqCst);
            }
            return None;
        }
        (writes || self.what.load(Ordering::SeqCst) == 2).then_some(end)
    }
}
