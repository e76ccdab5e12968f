//! MEMORY: USAGE (a key's bytes, big collections sampled as Redis samples them), STATS,
//! DOCTOR, MALLOC-STATS (jemalloc's own report), PURGE and HELP.
//!
//! The figures are basalt's own: its encodings are not Redis's byte for byte, so USAGE
//! estimates what the key costs here (its keyspace node, its name, its value's heap
//! bytes), and STATS reads jemalloc's counters and the keyspace tables of every shard.

use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::boxed;
use crate::command::{acl, flags::*, Args, CommandSpec, KeySpec, LocalFuture, Run};
use crate::error::CmdError;
use crate::resp::Reply;
use crate::server::client::Client;
use crate::server::{info, memory};
use crate::shard::shard_of;
use crate::store::Db;

/// Redis's OBJ_COMPUTE_SIZE_DEF_SAMPLES.
const DEFAULT_SAMPLES: usize = 5;

/// `MEMORY USAGE key [SAMPLES count]`: null for a missing key. As Redis (dbFind), a key
/// whose TTL has passed but that is still stored is measured, not expired.
fn memory_usage(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let samples = usage_samples(&a)?;
        let (db, key): (usize, Bytes) = (c.db, a.bytes(2).clone());
        let usage = c
            .shard
            .hop(shard_of(&key, c.shard.nshards), move |sh| {
                sh.with_store(|st| key_usage(&st.dbs[db], &key, samples))
            })
            .await?;
        reply_usage(&mut c.out, usage);
        Ok(())
    })
}

/// MEMORY USAGE's `SAMPLES count` (0: every element).
pub fn usage_samples(a: &Args) -> Result<usize, CmdError> {
    let mut samples = DEFAULT_SAMPLES;
    let mut i = 3;
    while i < a.len() {
        if !(a.is(i, "SAMPLES") && i + 1 < a.len()) {
            return Err(CmdError::Syntax);
        }
        samples = match a.int(i + 1)? {
            n if n < 0 => return Err(CmdError::Syntax),
            0 => usize::MAX,
            n => n as usize,
        };
        i += 2;
    }
    Ok(samples)
}

/// A key's bytes as MEMORY USAGE counts them, `None` when it is not stored.
pub fn key_usage(db: &Db, key: &[u8], samples: usize) -> Option<usize> {
    db.peek(key)
        .map(|e| Db::key_overhead(key) + e.value.heap_bytes_sampled(samples))
}

pub fn reply_usage(out: &mut crate::resp::Reply, usage: Option<usize>) {
    match usage {
        Some(n) => out.int(n as i64),
        None => out.null(),
    }
}

/// What MEMORY STATS and MEMORY DOCTOR report (Redis's redisMemOverhead).
struct Overhead {
    peak: u64,
    total: u64,
    startup: u64,
    /// (db index, keyspace table bytes, expiry table bytes) of every database with keys.
    dbs: Vec<(usize, u64, u64)>,
    overhead_total: u64,
    keys: u64,
    mem: memory::MemoryStats,
}

impl Overhead {
    async fn gather(c: &Client) -> Result<Overhead, CmdError> {
        let per_shard = c
            .shard
            .hop_all(|sh| {
                sh.with_store(|st| {
                    st.dbs
                        .iter()
                        .map(|d| {
                            let (main, expires) = d.table_overhead();
                            (d.len() as u64, main as u64, expires as u64)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .await?;
        let ndbs = per_shard.first().map_or(0, Vec::len);
        let mut dbs = Vec::new();
        let mut keys = 0;
        for db in 0..ndbs {
            let (n, main, expires) = per_shard
                .iter()
                .fold((0, 0, 0), |(n, m, e), s| (n + s[db].0, m + s[db].1, e + s[db].2));
            if n > 0 {
                dbs.push((db, main, expires));
                keys += n;
            }
        }
        let mem = memory::read();
        let total = mem.allocated;
        let startup = info::startup_memory().min(total);
        let (_, scripts) = crate::scripting::cache_stats();
        let tables: u64 = dbs.iter().map(|&(_, m, e)| m + e).sum();
        Ok(Overhead {
            peak: c.shard.local.shared.used_memory_peak.load(Ordering::Relaxed).max(total),
            total,
            startup,
            dbs,
            overhead_total: startup + scripts as u64 + tables,
            keys,
            mem,
        })
    }

    fn net(&self) -> u64 {
        self.total - self.startup
    }

    fn dataset(&self) -> u64 {
        self.total.saturating_sub(self.overhead_total)
    }
}

/// Redis computes these ratios in single precision (`float`) and replies with `%.17g`.
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        (a as f32 / b as f32) as f64
    }
}

fn int(out: &mut Reply, name: &str, v: i64) {
    out.bulk(name.as_bytes());
    out.int(v);
}

fn dbl(out: &mut Reply, name: &str, v: f64) {
    out.bulk(name.as_bytes());
    out.double(v);
}

/// `MEMORY STATS`: Redis 7.0's fields, in its order.
fn memory_stats(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let o = Overhead::gather(c).await?;
        let m = o.mem;
        let out = &mut c.out;
        out.map(27 + o.dbs.len());
        int(out, "peak.allocated", o.peak as i64);
        int(out, "total.allocated", o.total as i64);
        int(out, "startup.allocated", o.startup as i64);
        for name in [
            "replication.backlog",
            "clients.slaves",
            "clients.normal",
            "cluster.links",
            "aof.buffer",
        ] {
            int(out, name, 0);
        }
        int(out, "lua.caches", crate::scripting::cache_stats().1 as i64);
        int(out, "functions.caches", 0);
        for &(db, main, expires) in &o.dbs {
            out.bulk(format!("db.{db}").as_bytes());
            out.map(3);
            int(out, "overhead.hashtable.main", main as i64);
            int(out, "overhead.hashtable.expires", expires as i64);
            int(out, "overhead.hashtable.slot-to-keys", 0);
        }
        int(out, "overhead.total", o.overhead_total as i64);
        int(out, "keys.count", o.keys as i64);
        int(
            out,
            "keys.bytes-per-key",
            o.net().checked_div(o.keys).unwrap_or(0) as i64,
        );
        int(out, "dataset.bytes", o.dataset() as i64);
        dbl(out, "dataset.percentage", ratio(o.dataset() * 100, o.net()));
        dbl(out, "peak.percentage", ratio(o.total * 100, o.peak));
        int(out, "allocator.allocated", m.allocated as i64);
        int(out, "allocator.active", m.active as i64);
        int(out, "allocator.resident", m.resident as i64);
        dbl(out, "allocator-fragmentation.ratio", ratio(m.active, m.allocated));
        int(
            out,
            "allocator-fragmentation.bytes",
            m.active as i64 - m.allocated as i64,
        );
        dbl(out, "allocator-rss.ratio", ratio(m.resident, m.active));
        int(out, "allocator-rss.bytes", m.resident as i64 - m.active as i64);
        dbl(out, "rss-overhead.ratio", ratio(m.rss, m.resident));
        int(out, "rss-overhead.bytes", m.rss as i64 - m.resident as i64);
        dbl(out, "fragmentation", ratio(m.rss, o.total));
        int(out, "fragmentation.bytes", m.rss as i64 - o.total as i64);
        Ok(())
    })
}

const MB: u64 = 1 << 20;

#[rustfmt::skip]
const DOCTOR_EMPTY: &str = "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n";
#[rustfmt::skip]
const DOCTOR_FINE: &str = "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n";
#[rustfmt::skip]
const DOCTOR_PEAK: &str = " * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n";
#[rustfmt::skip]
const DOCTOR_ALLOC_FRAG: &str = " * High allocator fragmentation: This instance has an allocator external fragmentation greater than 1.1. This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. You can try enabling 'activedefrag' config option.\n\n";
#[rustfmt::skip]
const DOCTOR_ALLOC_RSS: &str = " * High allocator RSS overhead: This instance has an RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the allocator is much larger than the sum what the allocator actually holds). This problem is usually due to a large peak memory (check if there is a peak memory entry above in the report), you can try the MEMORY PURGE command to reclaim it.\n\n";
#[rustfmt::skip]
const DOCTOR_PROC_RSS: &str = " * High process RSS overhead: This instance has non-allocator RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the Redis process is much larger than the RSS the allocator holds). This problem may be due to Lua scripts or Modules.\n\n";
#[rustfmt::skip]
const DOCTOR_SCRIPTS: &str = " * Many scripts: There seem to be many cached scripts in this instance (more than 1000). This may be because scripts are generated and `EVAL`ed, instead of being parameterized (with KEYS and ARGV), `SCRIPT LOAD`ed and `EVALSHA`ed. Unless `SCRIPT FLUSH` is called periodically, the scripts' caches may end up consuming most of your memory.\n\n";

/// The high-RSS paragraph names the allocator, as Redis's ZMALLOC_LIB.
fn doctor_high_frag(allocator: &str) -> String {
    format!(" * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"{allocator}\".\n\n")
}

/// Redis's getMemoryDoctorReport over basalt's figures. "Empty" is an instance without keys
/// or using under 4 MB more than at start-up, not one under 5 MB in all: Redis starts at
/// about 1 MB, while basalt's shards, Lua states and rings take several MB before the first
/// key (and keep some of what commands allocated after the keys are gone). Client and replica buffers are not accounted separately (no replicas; output
/// buffers are in the allocator's total), so those two paragraphs never appear.
fn doctor_report(o: &Overhead, cached_scripts: usize) -> String {
    if o.keys == 0 || o.net() < 4 * MB {
        return DOCTOR_EMPTY.to_string();
    }
    let m = &o.mem;
    let over = |ratio: f64, a: u64, b: u64, limit: f64| ratio > limit && a.saturating_sub(b) > 10 * MB;
    let mut issues = Vec::new();
    if (o.peak as f32 / o.total as f32) > 1.5 {
        issues.push(DOCTOR_PEAK.to_string());
    }
    if over(ratio(m.rss, o.total), m.rss, o.total, 1.4) {
        issues.push(doctor_high_frag(&info::allocator_name()));
    }
    if over(ratio(m.active, m.allocated), m.active, m.allocated, 1.1) {
        issues.push(DOCTOR_ALLOC_FRAG.to_string());
    }
    if over(ratio(m.resident, m.active), m.resident, m.active, 1.1) {
        issues.push(DOCTOR_ALLOC_RSS.to_string());
    }
    if over(ratio(m.rss, m.resident), m.rss, m.resident, 1.1) {
        issues.push(DOCTOR_PROC_RSS.to_string());
    }
    if cached_scripts > 1000 {
        issues.push(DOCTOR_SCRIPTS.to_string());
    }
    if issues.is_empty() {
        return DOCTOR_FINE.to_string();
    }
    let mut s = "Sam, I detected a few issues in this Redis instance memory implants:\n\n".to_string();
    for i in issues {
        s.push_str(&i);
    }
    s.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
    s
}

/// `MEMORY DOCTOR`
fn memory_doctor(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let o = Overhead::gather(c).await?;
        let report = doctor_report(&o, crate::scripting::cache_stats().0);
        c.out.verbatim("txt", report.as_bytes());
        Ok(())
    })
}

/// jemalloc's malloc_stats_print callback: appends each chunk of the report.
unsafe extern "C" fn append_stats(out: *mut c_void, text: *const c_char) {
    // SAFETY: `out` is the `Vec<u8>` memory_malloc_stats passed, alive for the call;
    // jemalloc passes a NUL-terminated string.
    let out = unsafe { &mut *(out as *mut Vec<u8>) };
    out.extend_from_slice(unsafe { CStr::from_ptr(text) }.to_bytes());
}

/// `MEMORY MALLOC-STATS`: jemalloc's statistics report, as Redis gives it.
fn memory_malloc_stats(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let mut report: Vec<u8> = Vec::new();
        // SAFETY: the callback only appends to `report`, which outlives the call; null
        // options print the default report.
        unsafe {
            tikv_jemalloc_sys::malloc_stats_print(
                Some(append_stats),
                &mut report as *mut Vec<u8> as *mut c_void,
                std::ptr::null(),
            );
        }
        c.out.verbatim("txt", &report);
        Ok(())
    })
}

/// jemalloc's MALLCTL_ARENAS_ALL: `arena.<i>.purge` over every arena.
const PURGE_ALL_ARENAS: &CStr = c"arena.4096.purge";

/// `MEMORY PURGE`: returns the dirty pages of every arena to the system (jemalloc_purge).
fn memory_purge(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        // SAFETY: `arena.<i>.purge` takes and returns nothing.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                PURGE_ALL_ARENAS.as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            return Err(CmdError::Static("ERR Error purging dirty pages"));
        }
        c.out.ok();
        Ok(())
    })
}

/// `MEMORY HELP`
fn memory_help(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let lines: &[&str] = &[
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
            "HELP",
            "    Prints this help.",
        ];
        super::reply_help(&mut c.out, lines);
        Ok(())
    })
}

const SRV: u32 = acl::SLOW;
const NONDET: &[&str] = &["nondeterministic_output"];

#[rustfmt::skip]
static MEMORY_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "doctor", arity: 2, acl: SRV, group: "server", since: "4.0.0", summary: "Outputs a memory problems report.", tips: &["nondeterministic_output", "request_policy:all_shards", "response_policy:special"], run: Run::Conn(memory_doctor), ..CommandSpec::DEFAULT },
    CommandSpec { name: "help", arity: 2, flags: LOADING | STALE, acl: SRV, group: "server", since: "4.0.0", summary: "Returns helpful text about the different subcommands.", run: Run::Conn(memory_help), ..CommandSpec::DEFAULT },
    CommandSpec { name: "malloc-stats", arity: 2, acl: SRV, group: "server", since: "4.0.0", summary: "Returns the allocator statistics.", complexity: "Depends on how much memory is allocated, could be slow", tips: &["nondeterministic_output", "request_policy:all_shards", "response_policy:special"], run: Run::Conn(memory_malloc_stats), ..CommandSpec::DEFAULT },
    CommandSpec { name: "purge", arity: 2, acl: SRV, group: "server", since: "4.0.0", summary: "Asks the allocator to release memory.", complexity: "Depends on how much memory is allocated, could be slow", tips: &["request_policy:all_shards", "response_policy:all_succeeded"], run: Run::Conn(memory_purge), ..CommandSpec::DEFAULT },
    CommandSpec { name: "stats", arity: 2, acl: SRV, group: "server", since: "4.0.0", summary: "Returns details about memory usage.", tips: &["nondeterministic_output", "request_policy:all_shards", "response_policy:special"], run: Run::Conn(memory_stats), ..CommandSpec::DEFAULT },
    CommandSpec { name: "usage", arity: -3, flags: READONLY, acl: acl::KEYSPACE | SRV, key_specs: &[KeySpec::one(2, &["RO"])], group: "server", since: "4.0.0", summary: "Estimates the memory usage of a key.", complexity: "O(N) where N is the number of samples.", syntax: "key [SAMPLES count]", tips: NONDET, run: Run::Conn(memory_usage), ..CommandSpec::DEFAULT },
];

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "memory", arity: -2, group: "server", since: "4.0.0", summary: "A container for memory diagnostics commands.", complexity: "Depends on subcommand.", subcommands: MEMORY_SUBCOMMANDS, ..CommandSpec::DEFAULT },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn overhead(total: u64, peak: u64, mem: memory::MemoryStats) -> Overhead {
        Overhead {
            peak,
            total,
            startup: 1 << 20,
            dbs: Vec::new(),
            overhead_total: 1 << 20,
            keys: 10,
            mem,
        }
    }

    #[test]
    fn doctor_reports_empty_fine_and_issues() {
        let calm = memory::MemoryStats {
            allocated: 50 * MB,
            active: 52 * MB,
            resident: 54 * MB,
            retained: 0,
            rss: 56 * MB,
        };
        assert_eq!(doctor_report(&overhead(MB, MB, calm), 0), DOCTOR_EMPTY);
        assert_eq!(doctor_report(&overhead(4 * MB, 4 * MB, calm), 0), DOCTOR_EMPTY);
        let no_keys = Overhead {
            keys: 0,
            ..overhead(50 * MB, 60 * MB, calm)
        };
        assert_eq!(doctor_report(&no_keys, 0), DOCTOR_EMPTY);
        assert_eq!(doctor_report(&overhead(50 * MB, 60 * MB, calm), 0), DOCTOR_FINE);
        // A peak of twice today's use and an RSS three times the allocations.
        let bloated = memory::MemoryStats { rss: 150 * MB, ..calm };
        let r = doctor_report(&overhead(50 * MB, 100 * MB, bloated), 2000);
        assert!(r.starts_with("Sam, I detected a few issues"), "{r}");
        assert!(r.contains(" * Peak memory:") && r.contains(" * High total RSS:"), "{r}");
        assert!(
            r.contains(" * High process RSS overhead:") && r.contains(" * Many scripts:"),
            "{r}"
        );
        assert!(!r.contains("allocator fragmentation"), "{r}");
        assert!(r.ends_with("I want to help you.\n"));
    }

    #[test]
    fn ratios_are_single_precision_like_redis() {
        // Redis: (float)a/b printed with %.17g.
        assert_eq!(ratio(1, 3), (1f32 / 3f32) as f64);
        assert_eq!(ratio(5, 0), 0.0);
    }
}
