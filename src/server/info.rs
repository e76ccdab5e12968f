//! INFO, the cron, and the active expiry loop.

use std::fmt::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::command::table;
use crate::server::memory;
use crate::server::stats::{Stats, LAZYFREED, LAZYFREE_PENDING};
use crate::server::unix_ms;
use crate::shard::Shard;
use crate::store::db::lru_clock;

/// The Redis version basalt answers as (INFO, HELLO): the 7.2 command set it implements.
pub const REDIS_VERSION: &str = "7.2.4";

/// `DEBUG SET-ACTIVE-EXPIRE 0|1`: whether the active expiry cycle runs (tests turn it off
/// to watch lazy expiry alone). Process-wide, as Redis's server.active_expire_enabled.
pub static ACTIVE_EXPIRE: AtomicBool = AtomicBool::new(true);

/// used_memory once start-up is done (Redis's used_memory_startup), taken by the first cron.
static STARTUP_MEMORY: OnceLock<u64> = OnceLock::new();

/// used_memory_startup: what the server held once started (0 before the first cron).
pub fn startup_memory() -> u64 {
    STARTUP_MEMORY.get().copied().unwrap_or(0)
}

/// Once per 1/hz seconds on every shard.
pub fn cron(shard: &Rc<Shard>) {
    let local = &shard.local;
    local.refresh_config();
    local.rebase_clock();
    let now = unix_ms();
    local.stats.borrow_mut().sample_ops(now);
    if shard.is_open() {
        shard.with_store(|store| {
            store.set_clocks(now);
            for db in &mut store.dbs {
                db.cron();
            }
        });
    }
    // Over maxmemory with no commands coming: evict anyway (and end the exceeded time).
    if local.cfg.borrow().eviction.maxmemory > 0 {
        super::evict::perform(shard);
    }
    if shard.id == 0 {
        crate::persist::rewrite::cron(shard);
        let m = memory::refresh(&local.shared);
        STARTUP_MEMORY.get_or_init(|| m.allocated);
    }
}

/// Share of one core the active expiry may use (Redis: ACTIVE_EXPIRE_CYCLE_SLOW_TIME_PERC).
const EXPIRE_CPU_PERCENT: u64 = 25;
/// Longest single slice: the cycle yields to connections at least this often.
const EXPIRE_SLICE: Duration = Duration::from_micros(1000);

/// The active expiry cycle: reclaims expired keys nobody reads, without scanning
/// everything (sampling, adaptive like Redis's), in short slices so commands keep flowing.
pub async fn expire_loop(shard: Rc<Shard>) {
    let mut db_cursor = 0usize;
    loop {
        let hz = shard.local.cfg.borrow().hz;
        let period = Duration::from_millis(1000 / hz);
        if !ACTIVE_EXPIRE.load(Ordering::Relaxed) {
            glommio::timer::sleep(period).await;
            continue;
        }
        let budget = period * EXPIRE_CPU_PERCENT as u32 / 100;
        let cycle_start = Instant::now();
        let mut more = true;
        while more && cycle_start.elapsed() < budget {
            if !shard.is_open() {
                break;
            }
            let slice_start = Instant::now();
            let now = unix_ms();
            more = false;
            let local = &shard.local;
            shard.with_store(|store| {
                let n = store.dbs.len();
                let mut effects = local.effects.borrow_mut();
                for _ in 0..n {
                    let db = &mut store.dbs[db_cursor % n];
                    let mut rand = || local.rand();
                    let deadline = slice_start + EXPIRE_SLICE;
                    db.active_expire(now, &mut rand, || {
                        let ok = Instant::now() < deadline;
                        if !ok {
                            more = true;
                        }
                        ok
                    });
                    if more {
                        break;
                    }
                    db_cursor = db_cursor.wrapping_add(1);
                }
                effects.take_expired(store);
            });
            shard.flush_effects();
            super::pubsub::flush_events(&shard);
            local.stats.borrow_mut().expire_cycle_us += slice_start.elapsed().as_micros() as u64;
            if more {
                glommio::yield_if_needed().await;
                glommio::timer::sleep(Duration::from_micros(100)).await;
            }
        }
        // Redis's activeExpireCycle: latencyAddSampleIfNeeded("expire-cycle", ms).
        let monitor_ms = shard.local.cfg.borrow().latency_monitor_ms;
        let ms = cycle_start.elapsed().as_millis() as u64;
        if monitor_ms > 0 && ms >= monitor_ms {
            if let Ok(mut m) = shard.local.shared.latency_events.lock() {
                m.add("expire-cycle", ms, unix_ms() / 1000);
            }
        }
        glommio::timer::sleep(period).await;
    }
}

/// What INFO needs from one shard.
pub struct ShardSnapshot {
    pub stats: Stats,
    /// Per database: keys, keys with a TTL, the average TTL estimate (ms).
    pub keyspace: Vec<(usize, usize, u64)>,
    pub expired_keys: u64,
    pub hits: u64,
    pub misses: u64,
    pub clients: usize,
    /// Names with subscribers here: channels, patterns, shard channels.
    pub pubsub: [Vec<bytes::Bytes>; 3],
}

pub fn snapshot(shard: &Shard) -> ShardSnapshot {
    let stats = shard.local.stats.borrow().clone();
    let clients = shard.local.clients.borrow().clients.len();
    let (keyspace, expired_keys, hits, misses) = shard.with_store(|store| {
        let ks = store
            .dbs
            .iter()
            .map(|db| (db.len(), db.expires_len(), db.avg_ttl))
            .collect();
        let (mut e, mut h, mut m) = (0, 0, 0);
        for db in &store.dbs {
            e += db.stats.expired_keys;
            h += db.stats.keyspace_hits;
            m += db.stats.keyspace_misses;
        }
        (ks, e, h, m)
    });
    let pubsub = {
        use super::pubsub::Kind;
        let reg = shard.local.pubsub.borrow();
        [Kind::Channel, Kind::Pattern, Kind::Shard].map(|k| reg.names(k, None))
    };
    ShardSnapshot {
        stats,
        keyspace,
        expired_keys,
        hits,
        misses,
        clients,
        pubsub,
    }
}

/// Sections INFO prints with no argument or "default" (Redis 7.0's default set).
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];
/// Every section, in the order Redis prints them.
const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
];

/// Which sections an INFO call asks for (Redis 7: several names, "all", "everything",
/// "default"; unknown names select nothing). Printed in Redis's order, whatever the order asked.
pub fn sections(args: &[&[u8]]) -> Vec<&'static str> {
    if args.is_empty() {
        return DEFAULT_SECTIONS.to_vec();
    }
    let mut out: Vec<&'static str> = Vec::new();
    for a in args {
        let a = String::from_utf8_lossy(a).to_ascii_lowercase();
        let add: &[&'static str] = match a.as_str() {
            "all" | "everything" => ALL_SECTIONS,
            "default" => DEFAULT_SECTIONS,
            // Redis accepts both names for the list of loaded modules.
            "module_list" => &["modules"],
            s => match ALL_SECTIONS.iter().find(|x| **x == s) {
                Some(x) => std::slice::from_ref(x),
                None => &[],
            },
        };
        for s in add {
            if !out.contains(s) {
                out.push(s);
            }
        }
    }
    out.sort_by_key(|s| ALL_SECTIONS.iter().position(|x| x == s));
    out
}

/// Whether any of `wanted` reads the shards' snapshots (the others read shared state only,
/// so `INFO server` or `INFO memory` costs no hop).
pub fn needs_snapshots(wanted: &[&str]) -> bool {
    wanted.iter().any(|s| {
        matches!(
            *s,
            "clients" | "persistence" | "stats" | "commandstats" | "errorstats" | "latencystats" | "keyspace"
        )
    })
}

/// (system, user) CPU seconds of the process or of the calling thread.
fn cpu_times(who: libc::c_int) -> (f64, f64) {
    // SAFETY: getrusage into a zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_stime), t(ru.ru_utime))
}

fn uname() -> String {
    // SAFETY: uname into a zeroed struct; fields are NUL-terminated.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let f = |s: &[libc::c_char]| {
        unsafe { std::ffi::CStr::from_ptr(s.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    format!("{} {} {}", f(&u.sysname), f(&u.release), f(&u.machine))
}

fn total_memory() -> u64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES).max(0) as u64) * (libc::sysconf(libc::_SC_PAGESIZE).max(0) as u64) }
}

/// "jemalloc-5.3.0", as Redis names its allocator.
pub fn allocator_name() -> String {
    match tikv_jemalloc_ctl::version::read() {
        Ok(v) => format!("jemalloc-{}", v.split('-').next().unwrap_or(v)),
        Err(_) => "jemalloc".to_string(),
    }
}

/// Redis's ratio fields: 0 when the divisor is 0.
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// One INFO section being written: `name:value` lines.
struct Section<'a>(&'a mut String);

impl Section<'_> {
    fn field(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.0, "{name}:{value}\r\n");
        self
    }

    fn ratio(&mut self, name: &str, value: f64) -> &mut Self {
        self.field(name, format_args!("{value:.2}"))
    }
}

/// Every shard's snapshot summed.
struct Totals {
    stats: Stats,
    expired: u64,
    hits: u64,
    misses: u64,
    clients: usize,
    /// Per database: keys, keys with a TTL, and the sum over shards of (estimate x keys
    /// with a TTL) with the TTL keys it covers, for a weighted average TTL.
    keyspace: Vec<KeyspaceTotal>,
    /// Distinct channels, patterns, shard channels over all shards.
    pubsub: [usize; 3],
}

/// `latency_percentiles_usec_<command>:p50=…,p99=…` for every command with a histogram
/// (Redis's fillPercentileDistributionLatencies: the bucket's highest equivalent value in
/// ns, printed in µs with three decimals; percentile names as `%f` with zeros trimmed).
fn latency_lines(o: &mut String, stats: &Stats, percentiles: &[f64]) {
    for c in table::all() {
        let Some(Some(h)) = stats.latency.get(c.id) else {
            continue;
        };
        let _ = write!(o, "latency_percentiles_usec_{}:", c.full_name);
        for (i, p) in percentiles.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let name = crate::config::format_percentile(*p);
            let _ = write!(o, "p{name}={:.3}", h.value_at_percentile(*p) as f64 / 1000.0);
        }
        o.push_str("\r\n");
    }
}

/// One database over every shard.
#[derive(Clone, Default)]
struct KeyspaceTotal {
    keys: usize,
    expires: usize,
    ttl_weighted: u128,
    ttl_weight: u128,
}

impl KeyspaceTotal {
    /// Each shard's running estimate (Redis's `db->avg_ttl`), weighted by its keys with a
    /// TTL; 0 until an active expiry cycle has sampled some.
    fn avg_ttl(&self) -> u64 {
        self.ttl_weighted.checked_div(self.ttl_weight).unwrap_or(0) as u64
    }
}

fn totals(snaps: &[ShardSnapshot], databases: usize) -> Totals {
    let mut t = Totals {
        stats: Stats::new(table::len()),
        expired: 0,
        hits: 0,
        misses: 0,
        clients: 0,
        keyspace: vec![KeyspaceTotal::default(); databases],
        pubsub: [0; 3],
    };
    for (i, n) in t.pubsub.iter_mut().enumerate() {
        let names: std::collections::HashSet<&[u8]> =
            snaps.iter().flat_map(|s| s.pubsub[i].iter().map(|b| &b[..])).collect();
        *n = names.len();
    }
    for s in snaps {
        t.stats.merge(&s.stats);
        t.expired += s.expired_keys;
        t.hits += s.hits;
        t.misses += s.misses;
        t.clients += s.clients;
        for (i, &(k, e, avg)) in s.keyspace.iter().enumerate() {
            if let Some(slot) = t.keyspace.get_mut(i) {
                slot.keys += k;
                slot.expires += e;
                if avg > 0 {
                    slot.ttl_weighted += avg as u128 * e as u128;
                    slot.ttl_weight += e as u128;
                }
            }
        }
    }
    t
}

/// Builds the INFO text for `wanted` sections (from [`sections`]) from every shard's
/// snapshot. Field names and order are Redis 7.0's; basalt adds a few `basalt_*` fields.
/// Fields for machinery basalt does not have (replication, forks, Lua) keep Redis's idle values.
pub fn render(shard: &Shard, snaps: &[ShardSnapshot], wanted: &[&str]) -> String {
    let shared = &shard.local.shared;
    let cfg = shared.config.read();
    let t = totals(snaps, cfg.databases);
    let stats = &t.stats;
    // Redis: the total includes the current stretch over maxmemory.
    let eviction_current_ms = match shared.eviction_exceeded_since_ms.load(Ordering::Relaxed) {
        0 => 0,
        since => unix_ms().saturating_sub(since),
    };
    let eviction_total_ms = shared.eviction_exceeded_total_ms.load(Ordering::Relaxed) + eviction_current_ms;
    let mut o = String::with_capacity(4096);
    for (i, section) in wanted.iter().enumerate() {
        if i > 0 {
            o.push_str("\r\n");
        }
        match *section {
            "server" => {
                let now = unix_ms();
                let uptime = shared.started.elapsed().as_secs();
                o.push_str("# Server\r\n");
                Section(&mut o)
                    .field("redis_version", REDIS_VERSION)
                    .field("redis_git_sha1", "00000000")
                    .field("redis_git_dirty", 0)
                    .field("redis_build_id", "0")
                    .field("redis_mode", "standalone")
                    .field("os", uname())
                    .field("arch_bits", 64)
                    .field("monotonic_clock", "POSIX clock_gettime")
                    .field("multiplexing_api", "io_uring")
                    .field("atomicvar_api", "c11-builtin")
                    .field("gcc_version", "0.0.0")
                    .field("process_id", std::process::id())
                    .field("process_supervised", "no")
                    .field("run_id", &shared.run_id)
                    .field("tcp_port", shared.port.load(Ordering::Relaxed))
                    .field("server_time_usec", crate::server::unix_us())
                    .field("uptime_in_seconds", uptime)
                    .field("uptime_in_days", uptime / 86400)
                    .field("hz", cfg.hz)
                    .field("configured_hz", cfg.hz)
                    .field("lru_clock", lru_clock(now))
                    .field("executable", &shared.executable)
                    .field("config_file", &shared.config_file)
                    .field("io_threads_active", 0)
                    .field("basalt_version", env!("CARGO_PKG_VERSION"))
                    .field("basalt_shards", shared.nshards)
                    .field("basalt_placement", &shared.placement);
            }
            "clients" => {
                o.push_str("# Clients\r\n");
                Section(&mut o)
                    .field("connected_clients", t.clients)
                    .field("cluster_connections", 0)
                    .field("maxclients", cfg.maxclients)
                    .field("client_recent_max_input_buffer", 0)
                    .field("client_recent_max_output_buffer", 0)
                    .field("blocked_clients", shared.blocked_clients.load(Ordering::Relaxed))
                    .field("tracking_clients", 0)
                    .field("clients_in_timeout_table", 0);
            }
            "memory" => {
                let mem = memory::read();
                let used = mem.allocated;
                let peak = shared.used_memory_peak.load(Ordering::Relaxed).max(used);
                let startup = STARTUP_MEMORY.get().copied().unwrap_or(0).min(used);
                // No per-client or replication buffers are accounted yet: the overhead is
                // what the server held once started.
                let overhead = startup;
                let dataset = used - overhead;
                let net = used - startup;
                let sys = total_memory();
                let (scripts, scripts_bytes) = crate::scripting::cache_stats();
                o.push_str("# Memory\r\n");
                Section(&mut o)
                    .field("used_memory", used)
                    .field("used_memory_human", memory::human(used))
                    .field("used_memory_rss", mem.rss)
                    .field("used_memory_rss_human", memory::human(mem.rss))
                    .field("used_memory_peak", peak)
                    .field("used_memory_peak_human", memory::human(peak))
                    .field("used_memory_peak_perc", format_args!("{:.2}%", ratio(used * 100, peak)))
                    .field("used_memory_overhead", overhead)
                    .field("used_memory_startup", startup)
                    .field("used_memory_dataset", dataset)
                    .field(
                        "used_memory_dataset_perc",
                        format_args!("{:.2}%", ratio(dataset * 100, net)),
                    )
                    .field("allocator_allocated", mem.allocated)
                    .field("allocator_active", mem.active)
                    .field("allocator_resident", mem.resident)
                    .field("total_system_memory", sys)
                    .field("total_system_memory_human", memory::human(sys))
                    .field("used_memory_lua", 0)
                    .field("used_memory_vm_eval", 0)
                    .field("used_memory_lua_human", "0B")
                    .field("used_memory_scripts_eval", scripts_bytes)
                    .field("number_of_cached_scripts", scripts)
                    .field("number_of_functions", 0)
                    .field("number_of_libraries", 0)
                    .field("used_memory_vm_functions", 0)
                    .field("used_memory_vm_total", 0)
                    .field("used_memory_vm_total_human", "0B")
                    .field("used_memory_functions", 0)
                    .field("used_memory_scripts", scripts_bytes)
                    .field("used_memory_scripts_human", memory::human(scripts_bytes as u64))
                    .field("maxmemory", cfg.maxmemory)
                    .field("maxmemory_human", memory::human(cfg.maxmemory))
                    .field("maxmemory_policy", cfg.maxmemory_policy.as_str())
                    .ratio("allocator_frag_ratio", ratio(mem.active, mem.allocated))
                    .field("allocator_frag_bytes", mem.active as i64 - mem.allocated as i64)
                    .ratio("allocator_rss_ratio", ratio(mem.resident, mem.active))
                    .field("allocator_rss_bytes", mem.resident as i64 - mem.active as i64)
                    .ratio("rss_overhead_ratio", ratio(mem.rss, mem.resident))
                    .field("rss_overhead_bytes", mem.rss as i64 - mem.resident as i64)
                    .ratio("mem_fragmentation_ratio", ratio(mem.rss, used))
                    .field("mem_fragmentation_bytes", mem.rss as i64 - used as i64)
                    .field("mem_not_counted_for_evict", 0)
                    .field("mem_replication_backlog", 0)
                    .field("mem_total_replication_buffers", 0)
                    .field("mem_clients_slaves", 0)
                    .field("mem_clients_normal", 0)
                    .field("mem_cluster_links", 0)
                    .field("mem_aof_buffer", 0)
                    .field("mem_allocator", allocator_name())
                    .field("active_defrag_running", 0)
                    .field("lazyfree_pending_objects", LAZYFREE_PENDING.load(Ordering::Relaxed))
                    .field("lazyfreed_objects", LAZYFREED.load(Ordering::Relaxed));
            }
            "persistence" => {
                use crate::persist::rdb::save as rdb_save;
                let p = &shared.persist;
                let rewriting = p.rewrite_in_progress.load(Ordering::Relaxed);
                o.push_str("# Persistence\r\n");
                Section(&mut o)
                    .field("loading", p.loading.load(Ordering::Relaxed) as u8)
                    .field("async_loading", 0)
                    .field("current_cow_peak", 0)
                    .field("current_cow_size", 0)
                    .field("current_cow_size_age", 0)
                    .field("current_fork_perc", "0.00")
                    .field("current_save_keys_processed", 0)
                    .field("current_save_keys_total", 0)
                    .field("rdb_changes_since_last_save", rdb_save::changes_since_save(stats.dirty))
                    .field("rdb_bgsave_in_progress", rdb_save::in_progress() as u8)
                    .field("rdb_last_save_time", shared.lastsave.load(Ordering::Relaxed))
                    .field(
                        "rdb_last_bgsave_status",
                        if rdb_save::STATE.last_ok.load(Ordering::Relaxed) {
                            "ok"
                        } else {
                            "err"
                        },
                    )
                    .field(
                        "rdb_last_bgsave_time_sec",
                        rdb_save::STATE.last_secs.load(Ordering::Relaxed),
                    )
                    .field(
                        "rdb_current_bgsave_time_sec",
                        if rdb_save::in_progress() {
                            (crate::server::unix_ms()
                                .saturating_sub(rdb_save::STATE.started_ms.load(Ordering::Relaxed))
                                / 1000) as i64
                        } else {
                            -1
                        },
                    )
                    .field("rdb_saves", rdb_save::STATE.saves.load(Ordering::Relaxed))
                    .field("rdb_last_cow_size", 0)
                    .field("rdb_last_load_keys_expired", 0)
                    .field("rdb_last_load_keys_loaded", 0)
                    .field(
                        "aof_enabled",
                        (p.aof_state.load(Ordering::Relaxed) != crate::persist::AOF_OFF) as u8,
                    )
                    .field("aof_rewrite_in_progress", rewriting as u8)
                    .field(
                        "aof_rewrite_scheduled",
                        p.rewrite_scheduled.load(Ordering::Relaxed) as u8,
                    )
                    .field("aof_last_rewrite_time_sec", p.last_rewrite_secs.load(Ordering::Relaxed))
                    .field(
                        "aof_current_rewrite_time_sec",
                        if rewriting {
                            (crate::server::unix_ms().saturating_sub(p.rewrite_started_ms.load(Ordering::Relaxed))
                                / 1000) as i64
                        } else {
                            -1
                        },
                    )
                    .field(
                        "aof_last_bgrewrite_status",
                        if p.last_rewrite_ok.load(Ordering::Relaxed) {
                            "ok"
                        } else {
                            "err"
                        },
                    )
                    .field("aof_rewrites", p.rewrites.load(Ordering::Relaxed))
                    .field(
                        "aof_rewrites_consecutive_failures",
                        p.rewrite_failures.load(Ordering::Relaxed),
                    )
                    .field(
                        "aof_last_write_status",
                        if shared.persist.write_error().is_some() {
                            "err"
                        } else {
                            "ok"
                        },
                    )
                    .field("aof_last_cow_size", 0)
                    .field("module_fork_in_progress", 0)
                    .field("module_fork_last_cow_size", 0);
                if p.aof_state.load(Ordering::Relaxed) != crate::persist::AOF_OFF {
                    Section(&mut o)
                        .field("aof_current_size", p.current_size.load(Ordering::Relaxed))
                        .field("aof_base_size", p.base_size.load(Ordering::Relaxed))
                        .field("aof_pending_rewrite", 0)
                        .field("aof_buffer_length", p.buffer_length.load(Ordering::Relaxed))
                        .field("aof_pending_bio_fsync", p.pending_fsync.load(Ordering::Relaxed))
                        .field("aof_delayed_fsync", p.delayed_fsync.load(Ordering::Relaxed));
                }
                if p.loading.load(Ordering::Relaxed) {
                    // Redis's fields and arithmetic (genRedisInfoString).
                    let start_ms = p.loading_start_ms.load(Ordering::Relaxed);
                    let total = p.loading_total_bytes.load(Ordering::Relaxed);
                    let loaded = p.loading_loaded_bytes.load(Ordering::Relaxed).min(total);
                    let elapsed = crate::server::unix_ms().saturating_sub(start_ms) / 1000;
                    let perc = loaded as f64 / (total + 1) as f64 * 100.0;
                    let eta = if elapsed == 0 {
                        1
                    } else {
                        elapsed * (total - loaded) / (loaded + 1)
                    };
                    Section(&mut o)
                        .field("loading_start_time", start_ms / 1000)
                        .field("loading_total_bytes", total)
                        .field("loading_rdb_used_mem", 0)
                        .field("loading_loaded_bytes", loaded)
                        .field("loading_loaded_perc", format!("{perc:.2}"))
                        .field("loading_eta_seconds", eta);
                }
            }
            "stats" => {
                let (kbps_in, kbps_out) = stats.instantaneous_kbps();
                o.push_str("# Stats\r\n");
                Section(&mut o)
                    .field("total_connections_received", stats.connections_received)
                    .field("total_commands_processed", stats.total_commands)
                    .field("instantaneous_ops_per_sec", stats.instantaneous_ops())
                    .field("total_net_input_bytes", stats.net_input_bytes)
                    .field("total_net_output_bytes", stats.net_output_bytes)
                    .field("total_net_repl_input_bytes", 0)
                    .field("total_net_repl_output_bytes", 0)
                    .ratio("instantaneous_input_kbps", kbps_in)
                    .ratio("instantaneous_output_kbps", kbps_out)
                    .field("instantaneous_input_repl_kbps", "0.00")
                    .field("instantaneous_output_repl_kbps", "0.00")
                    .field("rejected_connections", stats.rejected_connections)
                    .field("sync_full", 0)
                    .field("sync_partial_ok", 0)
                    .field("sync_partial_err", 0)
                    .field("expired_keys", t.expired)
                    .field("expired_stale_perc", "0.00")
                    .field("expired_time_cap_reached_count", 0)
                    .field("expire_cycle_cpu_milliseconds", stats.expire_cycle_us / 1000)
                    .field("evicted_keys", stats.evicted_keys)
                    .field("evicted_clients", 0)
                    .field("total_eviction_exceeded_time", eviction_total_ms)
                    .field("current_eviction_exceeded_time", eviction_current_ms)
                    .field("keyspace_hits", t.hits)
                    .field("keyspace_misses", t.misses)
                    .field("pubsub_channels", t.pubsub[0])
                    .field("pubsub_patterns", t.pubsub[1])
                    .field("pubsubshard_channels", t.pubsub[2])
                    .field("latest_fork_usec", 0)
                    .field("total_forks", 0)
                    .field("migrate_cached_sockets", 0)
                    .field("slave_expires_tracked_keys", 0)
                    .field("active_defrag_hits", 0)
                    .field("active_defrag_misses", 0)
                    .field("active_defrag_key_hits", 0)
                    .field("active_defrag_key_misses", 0)
                    .field("total_active_defrag_time", 0)
                    .field("current_active_defrag_time", 0)
                    .field("tracking_total_keys", 0)
                    .field("tracking_total_items", 0)
                    .field("tracking_total_prefixes", 0)
                    .field("unexpected_error_replies", 0)
                    .field("total_error_replies", stats.total_error_replies)
                    .field("dump_payload_sanitizations", 0)
                    .field("total_reads_processed", 0)
                    .field("total_writes_processed", 0)
                    .field("io_threaded_reads_processed", 0)
                    .field("io_threaded_writes_processed", 0)
                    .field(
                        "client_output_buffer_limit_disconnections",
                        stats.obuf_limit_disconnections,
                    )
                    .field("reply_buffer_shrinks", 0)
                    .field("reply_buffer_expands", 0)
                    .field(
                        "basalt_persistence_records",
                        shared.persist.records.load(Ordering::Relaxed),
                    );
            }
            "replication" => {
                o.push_str("# Replication\r\n");
                Section(&mut o)
                    .field("role", "master")
                    .field("connected_slaves", 0)
                    .field("master_failover_state", "no-failover")
                    .field("master_replid", &shared.run_id)
                    .field("master_replid2", "0000000000000000000000000000000000000000")
                    .field("master_repl_offset", 0)
                    .field("second_repl_offset", -1)
                    .field("repl_backlog_active", 0)
                    .field("repl_backlog_size", 1048576)
                    .field("repl_backlog_first_byte_offset", 0)
                    .field("repl_backlog_histlen", 0);
            }
            "cpu" => {
                let (sys, user) = cpu_times(libc::RUSAGE_SELF);
                let (sys_children, user_children) = cpu_times(libc::RUSAGE_CHILDREN);
                // The thread answering INFO stands for Redis's main thread.
                let (sys_main, user_main) = cpu_times(libc::RUSAGE_THREAD);
                o.push_str("# CPU\r\n");
                Section(&mut o)
                    .field("used_cpu_sys", format_args!("{sys:.6}"))
                    .field("used_cpu_user", format_args!("{user:.6}"))
                    .field("used_cpu_sys_children", format_args!("{sys_children:.6}"))
                    .field("used_cpu_user_children", format_args!("{user_children:.6}"))
                    .field("used_cpu_sys_main_thread", format_args!("{sys_main:.6}"))
                    .field("used_cpu_user_main_thread", format_args!("{user_main:.6}"));
            }
            "modules" => o.push_str("# Modules\r\n"),
            "commandstats" => {
                o.push_str("# Commandstats\r\n");
                for c in table::all() {
                    let s = &stats.commands[c.id];
                    if s.calls == 0 && s.rejected == 0 && s.failed == 0 {
                        continue;
                    }
                    let per = ratio(s.usec, s.calls);
                    let _ = write!(
                        o,
                        "cmdstat_{}:calls={},usec={},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
                        c.full_name, s.calls, s.usec, per, s.rejected, s.failed
                    );
                }
            }
            "errorstats" => {
                o.push_str("# Errorstats\r\n");
                let mut codes: Vec<_> = stats.errors.iter().collect();
                codes.sort();
                for (code, n) in codes {
                    let _ = write!(o, "errorstat_{code}:count={n}\r\n");
                }
            }
            "latencystats" => {
                o.push_str("# Latencystats\r\n");
                if cfg.latency_tracking {
                    latency_lines(&mut o, stats, &cfg.latency_tracking_info_percentiles);
                }
            }
            "cluster" => o.push_str("# Cluster\r\ncluster_enabled:0\r\n"),
            "keyspace" => {
                o.push_str("# Keyspace\r\n");
                for (i, db) in t.keyspace.iter().enumerate() {
                    if db.keys > 0 {
                        let _ = write!(
                            o,
                            "db{i}:keys={},expires={},avg_ttl={}\r\n",
                            db.keys,
                            db.expires,
                            db.avg_ttl()
                        );
                    }
                }
            }
            _ => {}
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_selection() {
        assert_eq!(sections(&[]), DEFAULT_SECTIONS.to_vec());
        assert_eq!(sections(&[b"keyspace", b"SERVER"]), vec!["server", "keyspace"]);
        assert!(sections(&[b"everything"]).contains(&"commandstats"));
        assert!(sections(&[b"nonsense"]).is_empty());
        assert_eq!(sections(&[b"module_list", b"modules"]), vec!["modules"]);
        assert_eq!(sections(&[b"all"]), ALL_SECTIONS.to_vec());
        assert!(!sections(&[b"default"]).contains(&"latencystats"));
        assert!(!needs_snapshots(&sections(&[b"server", b"memory", b"cpu"])));
        assert!(needs_snapshots(&sections(&[b"server", b"keyspace"])));
    }
}
