//! Per-shard data: databases, value types and encodings, expiry. No I/O, no async: every
//! function here is a synchronous operation over one shard's data.

pub mod db;
pub mod dict;
pub mod value;

pub use db::{Db, Entry, Key, Touch};
pub use value::{Str, Value};

/// One shard's slice of every database.
pub struct Store {
    pub dbs: Vec<Db>,
}

impl Store {
    pub fn new(databases: usize) -> Store {
        Store {
            dbs: (0..databases).map(|_| Db::new()).collect(),
        }
    }

    pub fn keys(&self) -> usize {
        self.dbs.iter().map(Db::len).sum()
    }

    /// Sets the LRU clock stamped on accessed keys (once per batch, not per key).
    pub fn set_lru_clock(&mut self, clock: u32) {
        for db in &mut self.dbs {
            db.lru_clock = clock;
        }
    }
}
