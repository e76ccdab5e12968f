//! Per-shard data: databases, value types and encodings, expiry. No I/O, no async: every
//! function here is a synchronous operation over one shard's data.

pub mod db;
pub mod dict;
pub mod hash;
pub mod list;
pub mod set;
pub mod value;
pub mod zset;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

pub use db::{Db, Entry, Key, Touch};
pub use value::{Str, Value};

/// The thresholds at which collections leave their compact encodings (Redis's
/// `*-max-listpack-*`, `set-max-intset-entries`, `list-max-listpack-size`,
/// `hll-sparse-max-bytes`), as CONFIG SET
/// last left them. Commands carry a copy (see `Exec::enc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodingLimits {
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    /// Positive: entries per list node; negative: -1..-5 = 4/8/16/32/64 KiB per node.
    pub list_max_listpack_size: i32,
    pub list_compress_depth: u32,
    pub set_max_intset_entries: usize,
    pub set_max_listpack_entries: usize,
    pub set_max_listpack_value: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    /// A sparse HyperLogLog that would grow past this many bytes turns dense.
    pub hll_sparse_max_bytes: usize,
}

impl Default for EncodingLimits {
    /// Redis 7.2's defaults.
    fn default() -> Self {
        EncodingLimits {
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            list_max_listpack_size: -2,
            list_compress_depth: 0,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            hll_sparse_max_bytes: 3000,
        }
    }
}

/// One shard's slice of every database.
pub struct Store {
    pub dbs: Vec<Db>,
    /// Registrations of blocked clients on this store's keys (a client blocked on two keys
    /// here counts twice): while zero, nothing needs serving after a write.
    pub blocked_waiters: usize,
    /// This shard's part of a BGREWRITEAOF in progress (see persist::rewrite).
    pub snapshot: Option<Box<crate::persist::rewrite::Snapshot>>,
    /// Keys queued in the databases' `expired` lists since the last drain (at least: every
    /// database of `dbs` counts here). Zero spares the drain after every command a walk over
    /// all the databases, which cost ~3% of a SET's CPU with 16 of them.
    pub expired_queued: Arc<AtomicUsize>,
}

impl Store {
    pub fn new(databases: usize) -> Store {
        let expired_queued = Arc::new(AtomicUsize::new(0));
        let mut store = Store {
            dbs: (0..databases)
                .map(|index| {
                    let mut db = Db::new();
                    db.index = index;
                    db.share_expired_count(&expired_queued);
                    db
                })
                .collect(),
            blocked_waiters: 0,
            snapshot: None,
            expired_queued,
        };
        store.set_clocks(crate::server::unix_ms());
        store
    }

    pub fn keys(&self) -> usize {
        self.dbs.iter().map(Db::len).sum()
    }

    /// Under an LFU policy, gives every key a new object's LFU field (a loaded data set
    /// carries no counters; Redis's loader creates its objects the same way).
    pub fn restamp_if_lfu(&mut self) {
        if db::lfu().is_none() {
            return;
        }
        for db in &mut self.dbs {
            db.restamp();
        }
    }

    /// Sets the LRU and LFU clocks stamped on accessed keys (by the cron, not per key).
    pub fn set_clocks(&mut self, now_ms: u64) {
        let (clock, minutes) = (db::lru_clock(now_ms), db::lfu_minutes(now_ms));
        for db in &mut self.dbs {
            db.lru_clock = clock;
            db.lfu_minutes = minutes;
        }
    }
}

/// The total of `len` sizes estimated from the first `samples` of `sizes` (all of them when
/// `samples >= len`): Redis's MEMORY USAGE sampling, the average of a sample times the count.
pub fn extrapolate(sizes: impl Iterator<Item = usize>, samples: usize, len: usize) -> usize {
    let (n, bytes) = sizes.take(samples).fold((0usize, 0usize), |(n, b), s| (n + 1, b + s));
    if n >= len {
        bytes
    } else {
        (bytes as u128 * len as u128).checked_div(n as u128).unwrap_or(0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::extrapolate;

    #[test]
    fn extrapolate_samples_and_scales() {
        // All measured: the exact sum.
        assert_eq!(extrapolate([3, 5, 7].into_iter(), usize::MAX, 3), 15);
        assert_eq!(extrapolate([3, 5, 7].into_iter(), 3, 3), 15);
        // Two of four measured (average 4): 16.
        assert_eq!(extrapolate([3, 5, 100, 100].into_iter(), 2, 4), 16);
        // Nothing to measure.
        assert_eq!(extrapolate(std::iter::empty(), 5, 0), 0);
        assert_eq!(extrapolate([1].into_iter(), 0, 1), 0);
    }
}
