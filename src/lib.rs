//! basalt: a Redis-compatible in-memory data store, thread-per-core on io_uring.
//!
//! ```text
//!  core 0            core 1            ...  core N-1          last core
//!  shard 0           shard 1                shard N-1         persistence
//!  ┌─────────────┐   ┌─────────────┐        ┌─────────────┐   ┌──────────────┐
//!  │ io_uring    │   │ io_uring    │        │ io_uring    │   │ io_uring     │
//!  │ listener    │   │ listener    │        │ listener    │   │ effect       │
//!  │ connections │   │ connections │        │ connections │   │ records      │
//!  │ keyspace 0  │   │ keyspace 1  │        │ keyspace N-1│   │              │
//!  └─────┬───────┘   └─────┬───────┘        └─────┬───────┘   └──────▲───────┘
//!        └──── cross-shard ops (glommio channel mesh) ─────────────────┘
//! ```
//!
//! Map of the crate, in dependency order:
//! - [`resp`]: the wire protocol (request decoding, the RESP2/RESP3 reply writer). Pure.
//! - [`store`]: one shard's data: databases, values, expiry. Synchronous, no I/O.
//! - [`command`]: [`command::CommandSpec`], the command table, key specs, argument parsing.
//! - [`families`]: the commands, one file per family.
//! - [`shard`]: executors, the hop API, reservations for multi-shard atomic commands, start-up.
//! - [`server`]: listeners, connections, dispatch, clients, INFO, stats.
//! - [`persist`]: the persistence core: write effects, the persistence thread, the Redis 7
//!   multi-part AOF (loading, check-aof, forkless BGREWRITEAOF).
//! - [`config`]: redis.conf and command-line parsing, CONFIG GET/SET/REWRITE.
//!
//! `docs/architecture.md` explains the design in prose.

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub mod command;
pub mod config;
pub mod error;
pub mod families;
pub mod logging;
pub mod persist;
pub mod resp;
pub mod scripting;
pub mod server;
pub mod shard;
pub mod store;
