//! INFO, the cron, and the active expiry loop.

use std::fmt::Write;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::command::table;
use crate::server::memory;
use crate::server::stats::Stats;
use crate::server::unix_ms;
use crate::shard::Shard;
use crate::store::db::lru_clock;

/// The Redis version basalt answers as (INFO, HELLO): the 7.2 command set it implements.
pub const REDIS_VERSION: &str = "7.2.4";

/// Once per 1/hz seconds on every shard.
pub fn cron(shard: &Rc<Shard>) {
    let local = &shard.local;
    local.refresh_config();
    let now = unix_ms();
    local.stats.borrow_mut().sample_ops(now);
    if shard.is_open() {
        shard.with_store(|store| {
            store.set_lru_clock(lru_clock(now));
            for db in &mut store.dbs {
                db.cron();
            }
        });
    }
    if shard.id == 0 {
        memory::refresh(&local.shared);
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
                crate::server::dispatch::drain_expired(store, &mut effects);
            });
            shard.flush_effects();
            local.stats.borrow_mut().expire_cycle_us += slice_start.elapsed().as_micros() as u64;
            if more {
                glommio::yield_if_needed().await;
                glommio::timer::sleep(Duration::from_micros(100)).await;
            }
        }
        glommio::timer::sleep(period).await;
    }
}

/// What INFO needs from one shard.
pub struct ShardSnapshot {
    pub stats: Stats,
    /// Per database: keys, keys with a TTL.
    pub keyspace: Vec<(usize, usize)>,
    pub expired_keys: u64,
    pub hits: u64,
    pub misses: u64,
    pub clients: usize,
}

pub fn snapshot(shard: &Shard) -> ShardSnapshot {
    let stats = shard.local.stats.borrow().clone();
    let clients = shard.local.clients.borrow().clients.len();
    let (keyspace, expired_keys, hits, misses) = shard.with_store(|store| {
        let ks = store.dbs.iter().map(|db| (db.len(), db.expires_len())).collect();
        let (mut e, mut h, mut m) = (0, 0, 0);
        for db in &store.dbs {
            e += db.stats.expired_keys;
            h += db.stats.keyspace_hits;
            m += db.stats.keyspace_misses;
        }
        (ks, e, h, m)
    });
    ShardSnapshot { stats, keyspace, expired_keys, hits, misses, clients }
}

/// Sections INFO prints with no argument or "default".
const DEFAULT_SECTIONS: &[&str] =
    &["server", "clients", "memory", "persistence", "stats", "replication", "cpu", "modules", "errorstats", "cluster", "keyspace"];
const ALL_SECTIONS: &[&str] = &[
    "server", "clients", "memory", "persistence", "stats", "replication", "cpu", "modules", "commandstats", "errorstats",
    "cluster", "keyspace",
];

/// Which sections an INFO call asks for (Redis 7: several names, "all", "everything", "default").
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
    // Redis prints sections in its own order, whatever order they were asked in.
    out.sort_by_key(|s| ALL_SECTIONS.iter().position(|x| x == s));
    out
}

fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage into a zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_stime), t(ru.ru_utime))
}

fn uname() -> String {
    // SAFETY: uname into a zeroed struct; fields are NUL-terminated.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let f = |s: &[libc::c_char]| unsafe { std::ffi::CStr::from_ptr(s.as_ptr()) }.to_string_lossy().into_owned();
    format!("{} {} {}", f(&u.sysname), f(&u.release), f(&u.machine))
}

fn total_memory() -> u64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES).max(0) as u64) * (libc::sysconf(libc::_SC_PAGESIZE).max(0) as u64) }
}

/// Builds the INFO text for `wanted` sections from every shard's snapshot.
pub fn render(shard: &Shard, snaps: &[ShardSnapshot], wanted: &[&str]) -> String {
    let shared = &shard.local.shared;
    let cfg = shared.config.read();
    let mut stats = Stats::new(table::len());
    let (mut expired, mut hits, mut misses, mut clients) = (0, 0, 0, 0);
    let mut keyspace = vec![(0usize, 0usize); cfg.databases];
    for s in snaps {
        stats.merge(&s.stats);
        expired += s.expired_keys;
        hits += s.hits;
        misses += s.misses;
        clients += s.clients;
        for (i, (k, e)) in s.keyspace.iter().enumerate() {
            if let Some(slot) = keyspace.get_mut(i) {
                slot.0 += k;
                slot.1 += e;
            }
        }
    }
    let now = unix_ms();
    let uptime = shared.started.elapsed().as_secs();
    let mem = memory::read();
    let peak = shared.used_memory_peak.load(Ordering::Relaxed).max(mem.allocated);
    let mut o = String::with_capacity(4096);
    for (i, section) in wanted.iter().enumerate() {
        if i > 0 {
            o.push_str("\r\n");
        }
        match *section {
            "server" => {
                let _ = write!(
                    o,
                    "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:io_uring\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\nlru_clock:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nio_threads_active:0\r\nbasalt_version:{}\r\nbasalt_shards:{}\r\nbasalt_placement:{}\r\n",
                    uname(),
                    std::process::id(),
                    shared.run_id,
                    shared.port.load(Ordering::Relaxed),
                    crate::server::unix_us(),
                    uptime,
                    uptime / 86400,
                    cfg.hz,
                    cfg.hz,
                    lru_clock(now),
                    shared.executable,
                    shared.config_file,
                    env!("CARGO_PKG_VERSION"),
                    shared.nshards,
                    shared.placement,
                );
            }
            "clients" => {
                let _ = write!(
                    o,
                    "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:0\r\ntracking_clients:0\r\nclients_in_timeout_table:0\r\n",
                    clients, cfg.maxclients
                );
            }
            "memory" => {
                let frag = if mem.allocated > 0 { mem.rss as f64 / mem.allocated as f64 } else { 0.0 };
                let _ = write!(
                    o,
                    "# Memory\r\nused_memory:{}\r\nused_memory_human:{}\r\nused_memory_rss:{}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\nused_memory_overhead:0\r\nused_memory_startup:0\r\nused_memory_dataset:{}\r\nallocator_allocated:{}\r\nallocator_active:{}\r\nallocator_resident:{}\r\ntotal_system_memory:{}\r\ntotal_system_memory_human:{}\r\nused_memory_lua:0\r\nused_memory_scripts:0\r\nnumber_of_cached_scripts:0\r\nmaxmemory:{}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nallocator_frag_ratio:{:.2}\r\nallocator_rss_ratio:{:.2}\r\nmem_fragmentation_ratio:{:.2}\r\nmem_fragmentation_bytes:{}\r\nmem_not_counted_for_evict:0\r\nmem_replication_backlog:0\r\nmem_clients_slaves:0\r\nmem_clients_normal:0\r\nmem_aof_buffer:0\r\nmem_allocator:jemalloc\r\nactive_defrag_running:0\r\nlazyfree_pending_objects:0\r\nlazyfreed_objects:0\r\n",
                    mem.allocated,
                    memory::human(mem.allocated),
                    mem.rss,
                    memory::human(mem.rss),
                    peak,
                    memory::human(peak),
                    if peak > 0 { mem.allocated as f64 * 100.0 / peak as f64 } else { 0.0 },
                    mem.allocated,
                    mem.allocated,
                    mem.active,
                    mem.resident,
                    total_memory(),
                    memory::human(total_memory()),
                    cfg.maxmemory,
                    memory::human(cfg.maxmemory),
                    cfg.maxmemory_policy.as_str(),
                    if mem.allocated > 0 { mem.active as f64 / mem.allocated as f64 } else { 0.0 },
                    if mem.active > 0 { mem.resident as f64 / mem.active as f64 } else { 0.0 },
                    frag,
                    mem.rss as i64 - mem.allocated as i64,
                );
            }
            "persistence" => {
                let _ = write!(
                    o,
                    "# Persistence\r\nloading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:ok\r\nrdb_last_bgsave_time_sec:-1\r\nrdb_current_bgsave_time_sec:-1\r\nrdb_saves:0\r\nrdb_last_cow_size:0\r\nrdb_last_load_keys_expired:0\r\nrdb_last_load_keys_loaded:0\r\naof_enabled:{}\r\naof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\naof_last_rewrite_time_sec:-1\r\naof_current_rewrite_time_sec:-1\r\naof_last_bgrewrite_status:ok\r\naof_rewrites:0\r\naof_rewrites_consecutive_failures:0\r\naof_last_write_status:ok\r\naof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
                    stats.dirty,
                    shared.lastsave.load(Ordering::Relaxed),
                    cfg.appendonly as u8,
                );
            }
            "stats" => {
                let _ = write!(
                    o,
                    "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ntotal_net_repl_input_bytes:0\r\ntotal_net_repl_output_bytes:0\r\ninstantaneous_input_kbps:0.00\r\ninstantaneous_output_kbps:0.00\r\ninstantaneous_input_repl_kbps:0.00\r\ninstantaneous_output_repl_kbps:0.00\r\nrejected_connections:{}\r\nsync_full:0\r\nsync_partial_ok:0\r\nsync_partial_err:0\r\nexpired_keys:{}\r\nexpired_stale_perc:0.00\r\nexpired_time_cap_reached_count:0\r\nexpire_cycle_cpu_milliseconds:{}\r\nevicted_keys:0\r\nevicted_clients:0\r\ntotal_eviction_exceeded_time:0\r\ncurrent_eviction_exceeded_time:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:0\r\npubsub_patterns:0\r\npubsubshard_channels:0\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\nmigrate_cached_sockets:0\r\nslave_expires_tracked_keys:0\r\nactive_defrag_hits:0\r\nactive_defrag_misses:0\r\nactive_defrag_key_hits:0\r\nactive_defrag_key_misses:0\r\ntotal_active_defrag_time:0\r\ncurrent_active_defrag_time:0\r\ntracking_total_keys:0\r\ntracking_total_items:0\r\ntracking_total_prefixes:0\r\nunexpected_error_replies:0\r\ntotal_error_replies:{}\r\ndump_payload_sanitizations:0\r\ntotal_reads_processed:0\r\ntotal_writes_processed:0\r\nio_threaded_reads_processed:0\r\nio_threaded_writes_processed:0\r\nbasalt_persistence_records:{}\r\n",
                    stats.connections_received,
                    stats.total_commands,
                    stats.instantaneous_ops(),
                    stats.net_input_bytes,
                    stats.net_output_bytes,
                    stats.rejected_connections,
                    expired,
                    stats.expire_cycle_us / 1000,
                    hits,
                    misses,
                    stats.total_error_replies,
                    shared.persist.records.load(Ordering::Relaxed),
                );
            }
            "replication" => {
                let _ = write!(
                    o,
                    "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:1048576\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n",
                    shared.run_id
                );
            }
            "cpu" => {
                let (sys, user) = cpu_times();
                let _ = write!(
                    o,
                    "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\nused_cpu_sys_main_thread:{sys:.6}\r\nused_cpu_user_main_thread:{user:.6}\r\n"
                );
            }
            "modules" => o.push_str("# Modules\r\n"),
            "commandstats" => {
                o.push_str("# Commandstats\r\n");
                for c in table::all() {
                    let s = &stats.commands[c.id];
                    if s.calls == 0 && s.rejected == 0 && s.failed == 0 {
                        continue;
                    }
                    let per = if s.calls > 0 { s.usec as f64 / s.calls as f64 } else { 0.0 };
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
            "cluster" => o.push_str("# Cluster\r\ncluster_enabled:0\r\n"),
            "keyspace" => {
                o.push_str("# Keyspace\r\n");
                for (i, (keys, expires)) in keyspace.iter().enumerate() {
                    if *keys > 0 {
                        let _ = write!(o, "db{i}:keys={keys},expires={expires},avg_ttl=0\r\n");
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
    }
}
