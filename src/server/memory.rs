//! Memory accounting from jemalloc's statistics (the global allocator, see lib.rs):
//! `used_memory` is what the allocator has handed out, `used_memory_rss` what the process
//! holds resident. The cron refreshes them; the maxmemory check reads the cached value.

use std::sync::atomic::Ordering;

use super::ServerShared;

#[derive(Default, Clone, Copy, Debug)]
pub struct MemoryStats {
    pub allocated: u64,
    pub active: u64,
    pub resident: u64,
    pub retained: u64,
    pub rss: u64,
}

/// Reads jemalloc's counters (after advancing its epoch) and the process RSS.
pub fn read() -> MemoryStats {
    use tikv_jemalloc_ctl::{epoch, stats};
    let _ = epoch::advance();
    MemoryStats {
        allocated: stats::allocated::read().unwrap_or(0) as u64,
        active: stats::active::read().unwrap_or(0) as u64,
        resident: stats::resident::read().unwrap_or(0) as u64,
        retained: stats::retained::read().unwrap_or(0) as u64,
        rss: process_rss(),
    }
}

/// Resident set size from /proc/self/statm (pages * page size).
pub fn process_rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    pages * page
}

/// Refreshes the cached used_memory and its peak.
pub fn refresh(shared: &ServerShared) -> MemoryStats {
    let m = read();
    publish(shared, m.allocated);
    m
}

/// Refreshes only the cached used_memory (eviction's re-read: no RSS from /proc).
pub fn refresh_allocated(shared: &ServerShared) {
    let _ = tikv_jemalloc_ctl::epoch::advance();
    publish(shared, tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0) as u64);
}

fn publish(shared: &ServerShared, allocated: u64) {
    shared.used_memory.store(allocated, Ordering::Relaxed);
    shared.used_memory_gen.fetch_add(1, Ordering::Release);
    shared.used_memory_peak.fetch_max(allocated, Ordering::Relaxed);
}

/// Redis's human-readable memory ("1.23M").
pub fn human(n: u64) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{}B", n as u64)
    } else if n < 1024.0 * 1024.0 {
        format!("{:.2}K", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", n / (1024.0 * 1024.0))
    } else if n < 1024.0 * 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}G", n / (1024.0 * 1024.0 * 1024.0))
    } else {
        format!("{:.2}T", n / (1024.0 * 1024.0 * 1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human(512), "512B");
        assert_eq!(human(1536), "1.50K");
        assert_eq!(human(3 * 1024 * 1024), "3.00M");
    }

    #[test]
    fn rss_is_read() {
        assert!(process_rss() > 0);
    }
}
