//! Blocking commands (BLPOP, BLMOVE, BZPOPMIN, ...): waiters, wake-ups and serving.

/// A client blocked on a key of a shard's database.
pub struct Waiter {
    pub id: u64,
}
