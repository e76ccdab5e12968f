//! Commands are data. Every command is one [`CommandSpec`], declared in its family's file
//! next to its handler; the table is their concatenation. That one table drives dispatch,
//! arity errors, key extraction (and so shard routing), ACL categories, `COMMAND`,
//! `COMMAND INFO|DOCS|COUNT|LIST|GETKEYS` and `INFO commandstats`.

pub mod args;
pub mod docs;
pub mod keys;
pub mod table;

use std::future::Future;
use std::pin::Pin;

use crate::error::CmdError;
use crate::persist::Effects;
use crate::resp::Reply;
use crate::server::client::Client;
use crate::store::{Db, EncodingLimits, Store, Value};

pub use crate::config::NotifyFlags;
pub use args::Args;
pub use keys::{Begin, Find, KeySpec};

/// Command flags, with the names `COMMAND INFO` reports (Redis's CMD_* flags).
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    pub const FAST: u32 = 1 << 11;
    pub const NO_AUTH: u32 = 1 << 12;
    pub const MAY_REPLICATE: u32 = 1 << 13;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 14;
    pub const NO_ASYNC_LOADING: u32 = 1 << 15;
    pub const NO_MULTI: u32 = 1 << 16;
    pub const ALLOW_BUSY: u32 = 1 << 17;
    /// Not a Redis flag: reported as `movablekeys` when key positions depend on arguments.
    pub const MOVABLEKEYS: u32 = 1 << 18;

    /// In the order Redis prints them.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (NO_MULTI, "no_multi"),
        (MOVABLEKEYS, "movablekeys"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// ACL categories (Redis's ACLCommandCategories, in its order: COMMAND INFO prints them so).
pub mod acl {
    pub const KEYSPACE: u32 = 1 << 0;
    pub const READ: u32 = 1 << 1;
    pub const WRITE: u32 = 1 << 2;
    pub const SET: u32 = 1 << 3;
    pub const SORTEDSET: u32 = 1 << 4;
    pub const LIST: u32 = 1 << 5;
    pub const HASH: u32 = 1 << 6;
    pub const STRING: u32 = 1 << 7;
    pub const BITMAP: u32 = 1 << 8;
    pub const HYPERLOGLOG: u32 = 1 << 9;
    pub const GEO: u32 = 1 << 10;
    pub const STREAM: u32 = 1 << 11;
    pub const PUBSUB: u32 = 1 << 12;
    pub const ADMIN: u32 = 1 << 13;
    pub const FAST: u32 = 1 << 14;
    pub const SLOW: u32 = 1 << 15;
    pub const BLOCKING: u32 = 1 << 16;
    pub const DANGEROUS: u32 = 1 << 17;
    pub const CONNECTION: u32 = 1 << 18;
    pub const TRANSACTION: u32 = 1 << 19;
    pub const SCRIPTING: u32 = 1 << 20;

    pub const NAMES: &[(u32, &str)] = &[
        (KEYSPACE, "keyspace"),
        (READ, "read"),
        (WRITE, "write"),
        (SET, "set"),
        (SORTEDSET, "sortedset"),
        (LIST, "list"),
        (HASH, "hash"),
        (STRING, "string"),
        (BITMAP, "bitmap"),
        (HYPERLOGLOG, "hyperloglog"),
        (GEO, "geo"),
        (STREAM, "stream"),
        (PUBSUB, "pubsub"),
        (ADMIN, "admin"),
        (FAST, "fast"),
        (SLOW, "slow"),
        (BLOCKING, "blocking"),
        (DANGEROUS, "dangerous"),
        (CONNECTION, "connection"),
        (TRANSACTION, "transaction"),
        (SCRIPTING, "scripting"),
    ];
}

/// A keyed command's handler: a synchronous operation over the keyspace its keys live in,
/// writing its reply. It runs on the shard that owns its keys, or (keys on several shards)
/// on the coordinator with those shards' keyspaces reserved.
pub type KeyedFn = fn(&mut Exec<'_>, &Args) -> Result<(), CmdError>;

/// A boxed future borrowing the client.
pub type LocalFuture<'a> = Pin<Box<dyn Future<Output = Result<(), CmdError>> + 'a>>;

/// A connection-level handler: runs on the client's home shard, may hop to other shards.
pub type ConnFn = for<'a> fn(&'a mut Client, Args) -> LocalFuture<'a>;

/// What to do with a keyed command whose keys live on several shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Multi {
    /// Reserve the shards (ascending order), run the handler over their keyspaces, release.
    Atomic,
    /// Independent keys: run per shard in parallel, reply = sum of the integer replies.
    SplitSum,
}

/// Which script command a [`Run::Script`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptCall {
    /// FCALL / FCALL_RO: the first argument names a function.
    pub function: bool,
    /// EVALSHA / EVALSHA_RO: the first argument is a script's SHA1, not its body.
    pub by_sha: bool,
    /// The _RO forms: the script may not write.
    pub read_only: bool,
}

#[derive(Clone, Copy)]
pub enum Run {
    Keyed(KeyedFn, Multi),
    Conn(ConnFn),
    /// EVAL, EVALSHA, FCALL and their _RO forms: dispatch sends the script to the shard its
    /// declared keys and what its runs taught allow, or reserves every shard for it (see
    /// `families::scripting`).
    Script(ScriptCall),
    /// A container command (CONFIG, CLIENT, ...): dispatch goes to the subcommand named by
    /// the first argument.
    Container,
}

pub struct CommandSpec {
    /// Lower case; subcommands carry their own name ("get" under "config").
    pub name: &'static str,
    /// Redis arity: positive = exact argument count (name included), negative = at least.
    pub arity: i32,
    pub flags: u32,
    /// ACL categories beyond the ones implied by the flags (e.g. acl::STRING).
    pub acl: u32,
    pub key_specs: &'static [KeySpec],
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    pub complexity: &'static str,
    /// The argument grammar as Redis's docs write it ("key value [NX | XX] ..."): COMMAND DOCS reads it.
    pub syntax: &'static str,
    pub tips: &'static [&'static str],
    /// Redis's doc_flags, as COMMAND DOCS names them ("syscmd", "deprecated").
    pub doc_flags: &'static [&'static str],
    pub run: Run,
    pub subcommands: &'static [CommandSpec],
    /// For key specs flagged VARIABLE_FLAGS: the flags a given command line really gives its
    /// keys (COMMAND GETKEYSANDFLAGS; Redis's getkeys procs, e.g. SET without GET is OW).
    pub key_flags: Option<KeyFlagsFn>,
    /// For commands that may touch keys their key specs cannot name (SORT's BY and GET
    /// patterns): true when this command line needs every shard, reserved atomically.
    pub wide: Option<fn(&Args) -> bool>,
}

/// See [`CommandSpec::key_flags`].
pub type KeyFlagsFn = fn(&Args) -> &'static [&'static str];

impl CommandSpec {
    /// Defaults for `..CommandSpec::DEFAULT` in declarations.
    pub const DEFAULT: CommandSpec = CommandSpec {
        name: "",
        arity: 0,
        flags: 0,
        acl: 0,
        key_specs: &[],
        group: "generic",
        since: "1.0.0",
        summary: "",
        complexity: "O(1)",
        syntax: "",
        tips: &[],
        doc_flags: &[],
        run: Run::Container,
        subcommands: &[],
        key_flags: None,
        wide: None,
    };

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// The ACL categories COMMAND INFO reports: implied by flags, plus declared ones.
    pub fn acl_categories(&self) -> u32 {
        let mut c = self.acl;
        if self.has(flags::WRITE) {
            c |= acl::WRITE;
        }
        if self.has(flags::READONLY) && c & acl::SCRIPTING == 0 {
            c |= acl::READ;
        }
        if self.has(flags::ADMIN) {
            c |= acl::ADMIN | acl::DANGEROUS;
        }
        if self.has(flags::PUBSUB) {
            c |= acl::PUBSUB;
        }
        if self.has(flags::FAST) {
            c |= acl::FAST;
        }
        if self.has(flags::BLOCKING) {
            c |= acl::BLOCKING;
        }
        if c & acl::FAST == 0 {
            c |= acl::SLOW;
        }
        c
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        (a >= 0 && argc == a as usize) || (a < 0 && argc >= (-a) as usize)
    }

    pub fn is_keyed(&self) -> bool {
        matches!(self.run, Run::Keyed(..))
    }
}

/// Where a keyed handler finds its databases.
pub enum Keyspace<'a> {
    /// The command runs on the shard that owns all its keys.
    Local(&'a mut Store),
    /// The coordinator holds the reservation of every shard the command touches.
    Lent(&'a mut crate::shard::Lent),
    /// A shard serving a blocked client: only its own keys exist for the command; keys
    /// of other shards read as missing (an empty scratch database).
    Only {
        store: &'a mut Store,
        shard: usize,
        nshards: usize,
        scratch: &'a mut Db,
    },
}

impl Keyspace<'_> {
    pub fn db(&mut self, db: usize, key: &[u8]) -> &mut Db {
        match self {
            Keyspace::Local(store) => &mut store.dbs[db],
            Keyspace::Lent(lent) => lent.db(db, key),
            Keyspace::Only {
                store,
                shard,
                nshards,
                scratch,
            } => {
                if crate::shard::shard_of(key, *nshards) == *shard {
                    &mut store.dbs[db]
                } else {
                    scratch
                }
            }
        }
    }
}

/// The context of a keyed command's execution.
pub struct Exec<'a> {
    pub ks: Keyspace<'a>,
    /// The client's selected database.
    pub db: usize,
    /// Milliseconds since the epoch, fixed for the whole command (Redis's commandTimeSnapshot).
    pub now: u64,
    pub out: &'a mut Reply,
    /// Write effects for the persistence core (and later replication).
    pub effects: &'a mut Effects,
    /// Keys changed (rdb_changes_since_last_save).
    pub dirty: u64,
    /// `CLIENT NO-TOUCH` is on for the issuing client.
    pub no_touch: bool,
    /// `databases`: for commands naming a database (MOVE, COPY DB).
    pub databases: usize,
    /// Encoding thresholds as configured when the command started.
    pub enc: EncodingLimits,
    /// A blocking command that finds nothing may block (false inside MULTI, scripts, and
    /// when a blocked client is being served).
    pub may_block: bool,
    /// Set by a blocking command that found nothing to serve: block until this deadline
    /// (unix ms; 0 = forever). The handler wrote no reply.
    pub block: Option<u64>,
    /// Serving a blocked client its keys made ready: Redis's serve path looks the ready key
    /// up once, where some commands' first try looks it up twice (BLMOVE).
    pub serving: bool,
}

/// The end of a command: the watched keys its write lookups found are touched if it changed
/// anything (`dirty`), as Redis's signalModifiedKey touches only modified keys.
impl Drop for Exec<'_> {
    fn drop(&mut self) {
        let deferred = crate::store::db::take_deferred_touches();
        if self.dirty > 0 {
            for (db, key) in deferred {
                self.ks.db(db, &key).touch_watched(&key);
            }
        }
    }
}

/// Typed lookups: each takes an accessor such as `Value::as_list` and answers WRONGTYPE
/// when the key holds another type.
pub type Pick<T> = fn(&mut Value) -> Option<&mut T>;

impl<'a> Exec<'a> {
    /// An Exec over one store with default settings: for tests and benches.
    pub fn local(store: &'a mut Store, out: &'a mut Reply, effects: &'a mut Effects, now: u64) -> Exec<'a> {
        Exec {
            ks: Keyspace::Local(store),
            db: 0,
            now,
            out,
            effects,
            dirty: 0,
            no_touch: false,
            databases: 16,
            enc: EncodingLimits::default(),
            may_block: false,
            block: None,
            serving: false,
        }
    }

    /// A random number (SPOP, SRANDMEMBER, HRANDFIELD, ZRANDMEMBER): a per-thread
    /// xorshift generator, seeded once per thread.
    pub fn rand(&mut self) -> u64 {
        thread_local! {
            static RNG: std::cell::Cell<u64> = std::cell::Cell::new(
                (crate::server::unix_ms() ^ (std::process::id() as u64) << 32) | 1,
            );
        }
        RNG.with(|r| {
            let mut x = r.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            r.set(x);
            x
        })
    }

    /// The selected database's slice that holds `key`.
    pub fn db(&mut self, key: &[u8]) -> &mut Db {
        let db = self.db;
        self.ks.db(db, key)
    }

    pub fn touch(&self) -> crate::store::Touch {
        if self.no_touch {
            crate::store::Touch::No
        } else {
            crate::store::Touch::Yes
        }
    }

    /// A read of `key` as type `T` (counted as a keyspace hit or miss).
    pub fn read<T>(&mut self, key: &[u8], pick: Pick<T>) -> Result<Option<&mut T>, CmdError> {
        let (now, touch) = (self.now, self.touch());
        match self.db(key).lookup(key, now, touch) {
            None => Ok(None),
            Some(e) => pick(&mut e.value).map(Some).ok_or(CmdError::WrongType),
        }
    }

    /// A write lookup of `key` as type `T` (no hit/miss accounting).
    pub fn write<T>(&mut self, key: &[u8], pick: Pick<T>) -> Result<Option<&mut T>, CmdError> {
        let now = self.now;
        match self.db(key).lookup_write(key, now) {
            None => Ok(None),
            Some(e) => pick(&mut e.value).map(Some).ok_or(CmdError::WrongType),
        }
    }

    /// `key` as type `T` again, for a command that already looked it up with [`Exec::write`]:
    /// no second expiry check or touch (Redis looks each key up once, and an LFU counter
    /// would count the second lookup).
    pub fn write_again<T>(&mut self, key: &[u8], pick: Pick<T>) -> Result<Option<&mut T>, CmdError> {
        Ok(self.again_with_out(key, pick)?.0)
    }

    /// [`Exec::write_again`] with the reply writer, borrowed together (for handlers that
    /// write the reply while they hold the value).
    pub fn again_with_out<T>(&mut self, key: &[u8], pick: Pick<T>) -> Result<(Option<&mut T>, &mut Reply), CmdError> {
        let db = self.db;
        let value = match self.ks.db(db, key).peek_mut(key) {
            None => None,
            Some(e) => Some(pick(&mut e.value).ok_or(CmdError::WrongType)?),
        };
        Ok((value, &mut *self.out))
    }

    /// `key` as type `T`, created with `create()` when missing.
    pub fn write_or_create<T>(
        &mut self,
        key: &[u8],
        pick: Pick<T>,
        create: impl FnOnce() -> Value,
    ) -> Result<&mut T, CmdError> {
        let now = self.now;
        let db = self.db(key);
        if db.lookup_write(key, now).is_none() {
            db.set(key, create(), false);
        }
        // Looked up (and touched) or created just now: a second lookup would count twice
        // under LFU.
        let e = db.peek_mut(key).expect("just created");
        pick(&mut e.value).ok_or(CmdError::WrongType)
    }

    /// Deletes `key` if its collection became empty (Redis never keeps empty collections).
    /// Returns true if it was deleted.
    pub fn remove_if_empty(&mut self, key: &[u8]) -> bool {
        let db = self.db(key);
        let empty = matches!(db.peek(key), Some(e) if e.value.elements() == 0 && !matches!(e.value, Value::Str(_)));
        if empty {
            db.remove(key);
        }
        empty
    }

    /// Tells blocked clients waiting on `key` that it may now have data (pushes, ZADD,
    /// stores). Cheap when nobody waits. Waiters are served after the command (or the
    /// transaction or script around it) finishes.
    pub fn signal_ready(&mut self, key: &[u8]) {
        self.db(key).signal_ready(key);
    }

    /// Blocking commands that found nothing: block until `deadline` (unix ms, 0 = forever)
    /// if this context allows it. Returns false when it does not (the handler then replies
    /// as on timeout).
    pub fn block_on(&mut self, deadline: u64) -> bool {
        if self.may_block {
            self.block = Some(deadline);
        }
        self.may_block
    }

    /// Records a keyspace event (`notify-keyspace-events`) for `key` in the selected
    /// database: `class` is one of `NotifyFlags`' class bits, `event` Redis's event name.
    /// Costs a thread-local read when notifications are off; published after the command.
    pub fn notify(&self, class: u32, event: &str, key: &[u8]) {
        crate::server::pubsub::notify(self.db, class, event, key);
    }

    /// [`Exec::notify`] in another database (MOVE, COPY ... DB).
    pub fn notify_db(&self, db: usize, class: u32, event: &str, key: &[u8]) {
        crate::server::pubsub::notify(db, class, event, key);
    }

    /// Records the command as the client sent it, for commands whose effect is already
    /// deterministic (APPEND, SETRANGE, INCR, MSET, SETBIT, LPUSH, *STORE, ...). Nothing is
    /// built when the AOF is off.
    pub fn propagate_as_is(&mut self, a: &Args) {
        if self.effects.is_enabled() {
            let v: Vec<&[u8]> = a.as_slice().iter().map(|b| &b[..]).collect();
            self.propagate(&v);
        }
    }

    /// Records a write effect in the selected database.
    pub fn propagate(&mut self, args: &[&[u8]]) {
        if !self.effects.is_enabled() {
            return;
        }
        // Keys this command found expired were deleted before it acted: their DELs must
        // come first, or a replay would delete what the command just wrote (SET or RENAME
        // onto an expired key).
        match &mut self.ks {
            Keyspace::Local(store) | Keyspace::Only { store, .. } => self.effects.take_expired(store),
            Keyspace::Lent(lent) => {
                for s in lent.shards().collect::<Vec<_>>() {
                    self.effects.take_expired(lent.store(s));
                }
            }
        }
        self.effects.push(self.db, args);
    }
}
