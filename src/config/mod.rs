//! Configuration: `redis.conf` and the command line in, CONFIG GET / SET / REWRITE out.
//!
//! Everything is driven by one table, [`PARAMS`]: one [`Param`] per parameter with its name,
//! alias, type (bool, integer with bounds, memory, enum, string or special), default, whether
//! CONFIG SET may change it, and how far basalt supports it ([`Support`]). Loading a file,
//! `--name value` flags, CONFIG GET, CONFIG SET and CONFIG REWRITE all walk that table; no other
//! list of names exists.
//!
//! The server reads typed fields of [`Config`] (`config.maxmemory`, `config.appendfsync`...).
//! Parameters basalt accepts but ignores mostly live in a private map instead of fields, so
//! that CONFIG GET still answers what was set.
//!
//! Support levels:
//! - `Implemented`: basalt honours it.
//! - `Ignored`: accepted so existing files load; [`Config::warnings`] lists the ones set to a
//!   non-default value so the server can log them once at start.
//! - `Refused`: honouring it silently would lose data or weaken security (`daemonize yes`,
//!   `replicaof`, `tls-key-file-pass`, `rename-command`, `user`...). At its default value it is harmless;
//!   any other value stops the server at start with a message naming the option and why.
//!
//! Lifecycle: `main` calls [`Config::from_args`] (Redis's exact argv grammar), logs
//! [`Config::warnings`], and wraps the result in a [`SharedConfig`]. Shards cache the values they
//! use on the hot path and re-read them when [`SharedConfig::generation`] changes.
//!
//! Differences from Redis 7.0 on purpose: `port`, `tls-port` and `bind` cannot be changed by
//! CONFIG SET (the shards' listeners are set up once); `set-max-listpack-*` (Redis 7.2) and basalt's
//! `shards` and `placement` are extra parameters.
//!
//! Paths: like Redis (which `chdir`s when it reads `dir`), a relative `dir` is relative to the
//! previous `dir`, and a relative `include` is relative to the `dir` in force at that line. The
//! server should `chdir` to `config.dir` at start and open relative `logfile`/`pidfile` there.

pub mod glob;
mod lex;
mod load;
mod rewrite;
mod table;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

pub use glob::glob_match;
pub use table::{
    flags, format_percentile, lookup, EnumCheck, Kind, NumFormat, Param, Special, StrCheck, Support, PARAMS,
};

pub(crate) use table::Val;

/// The product name and version that error banners and `--version` print.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The running configuration. Build it with [`Config::from_args`] (or [`Config::default`] for
/// Redis's defaults); change it through [`Config::set`] so that validation and the support
/// levels apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    // --- Network and clients -------------------------------------------------------------
    /// `bind`: addresses as written, a leading `-` marking one that may be unavailable
    /// (see [`Config::bind_addrs`]). Default `* -::*`; empty means "listen nowhere".
    pub bind: Vec<String>,
    pub port: u16,
    pub protected_mode: bool,
    pub tcp_backlog: u32,
    /// Idle client timeout in seconds; 0 = never.
    pub timeout: u64,
    /// TCP keepalive period in seconds; 0 = off.
    pub tcp_keepalive: u32,
    pub maxclients: u32,
    /// `requirepass`: the default user's password, `None` = no AUTH needed.
    pub requirepass: Option<Vec<u8>>,

    // --- TLS ------------------------------------------------------------------------------------
    /// 0 = no TLS listener. With a TLS port, `port 0` means no plain TCP listener (Redis's
    /// TLS-only setup); without one, `port 0` lets the kernel pick a TCP port.
    pub tls_port: u16,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_ca_cert_file: Option<PathBuf>,
    pub tls_ca_cert_dir: Option<PathBuf>,
    pub tls_auth_clients: TlsAuthClients,
    /// `tls-protocols`: "TLSv1.2 TLSv1.3" by default (empty).
    pub tls_protocols: String,
    pub tls_session_caching: bool,
    pub tls_session_cache_size: u32,

    // --- Process -----------------------------------------------------------------------------
    /// Always false once loaded: `daemonize yes` is refused.
    pub daemonize: bool,
    pub supervised: Supervised,
    /// Where to write the pid (relative paths are relative to `dir`); `None` = no pidfile.
    pub pidfile: Option<PathBuf>,
    pub loglevel: LogLevel,
    /// Log file; empty = standard output.
    pub logfile: String,
    pub databases: usize,
    /// Background task frequency, clamped to 1..=500 as Redis does.
    pub hz: u32,
    pub enable_debug_command: ProtectedAction,
    pub enable_protected_configs: ProtectedAction,
    /// Accepted and ignored: basalt's threads are its shards.
    pub io_threads: u32,

    // --- Snapshots (RDB) ------------------------------------------------------------------
    /// `save <seconds> <changes>` rules; empty = no automatic snapshots.
    pub save: Vec<(u64, u64)>,
    pub stop_writes_on_bgsave_error: bool,
    pub rdbcompression: bool,
    pub rdbchecksum: bool,
    pub dbfilename: String,
    /// The working directory: absolute. Snapshots and the AOF directory live here.
    pub dir: PathBuf,

    // --- Append-only file --------------------------------------------------------------------
    pub appendonly: bool,
    pub appendfilename: String,
    pub appenddirname: String,
    pub appendfsync: Fsync,
    pub auto_aof_rewrite_percentage: u32,
    pub auto_aof_rewrite_min_size: u64,
    pub aof_load_truncated: bool,
    pub aof_use_rdb_preamble: bool,

    // --- Memory and eviction ---------------------------------------------------------------
    /// Bytes; 0 = no limit.
    pub maxmemory: u64,
    pub maxmemory_policy: MaxmemoryPolicy,
    pub maxmemory_samples: u32,
    pub maxmemory_eviction_tenacity: u32,
    pub lfu_log_factor: u32,
    pub lfu_decay_time: u32,
    pub active_expire_effort: u32,

    // --- Limits --------------------------------------------------------------------------------
    pub proto_max_bulk_len: u64,
    pub client_query_buffer_limit: u64,
    pub client_output_buffer_limit: ClientOutputBufferLimits,
    /// Milliseconds a script or function may run before others get BUSY (alias `lua-time-limit`).
    pub busy_reply_threshold: u64,

    // --- Monitoring -----------------------------------------------------------------------------
    /// Microseconds; -1 disables the slow log, 0 logs everything.
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: u64,
    /// Milliseconds; 0 = latency monitor off.
    pub latency_monitor_threshold: u64,
    pub notify_keyspace_events: NotifyFlags,

    // --- Encodings -----------------------------------------------------------------------------
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    /// Positive: max entries per node; -1..-5: max node size 4kb..64kb.
    pub list_max_listpack_size: i32,
    pub list_compress_depth: u32,
    pub set_max_intset_entries: usize,
    pub set_max_listpack_entries: usize,
    pub set_max_listpack_value: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    pub hll_sparse_max_bytes: usize,
    pub stream_node_max_bytes: usize,
    pub stream_node_max_entries: u64,

    // --- Accepted, ignored (kept typed because configs mention them often) ---------------
    pub activedefrag: bool,
    pub lazyfree_lazy_eviction: bool,
    pub lazyfree_lazy_expire: bool,
    pub lazyfree_lazy_server_del: bool,
    pub lazyfree_lazy_user_del: bool,
    pub lazyfree_lazy_user_flush: bool,
    pub oom_score_adj_values: [i32; 3],
    pub latency_tracking: bool,
    pub latency_tracking_info_percentiles: Vec<f64>,
    /// Always `None` once loaded: `replicaof` is refused.
    pub replicaof: Option<(String, u16)>,

    // --- basalt's own ----------------------------------------------------------------------------
    /// `--shards N|auto`: `None` = usable cores minus one, at least 1.
    pub shards: Option<usize>,
    /// `--placement auto|pinned|unpinned`: whether shard threads are pinned to cores.
    pub placement: Placement,

    /// The configuration file given on the command line, made absolute; CONFIG REWRITE
    /// writes there. `None` when started without one.
    pub config_file: Option<PathBuf>,

    /// Values of parameters without a typed field (see `Access::Other` in the table).
    pub(crate) other: BTreeMap<&'static str, Val>,
}

/// Defines a fieldless enum together with the names CONFIG GET prints, in Redis's order
/// (which is also the order of the "must be one of" error message).
macro_rules! config_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// (name, value) pairs as the parameter table uses them.
            pub const NAMES: &'static [(&'static str, u32)] = &[$(($text, $name::$variant as u32),)+];
            const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name as CONFIG GET prints it.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl table::EnumField for $name {
            fn to_index(self) -> u32 { self as u32 }
            fn from_index(i: u32) -> Self { Self::ALL[i as usize] }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

config_enum! {
    /// `appendfsync`.
    pub enum Fsync {
        EverySec = "everysec",
        Always = "always",
        No = "no",
    }
}

config_enum! {
    /// `tls-auth-clients`: whether TLS clients must present a certificate signed by the
    /// configured CA (`yes`), may (`optional`), or are not asked (`no`).
    pub enum TlsAuthClients {
        No = "no",
        Yes = "yes",
        Optional = "optional",
    }
}

config_enum! {
    /// `maxmemory-policy`.
    pub enum MaxmemoryPolicy {
        VolatileLru = "volatile-lru",
        VolatileLfu = "volatile-lfu",
        VolatileRandom = "volatile-random",
        VolatileTtl = "volatile-ttl",
        AllkeysLru = "allkeys-lru",
        AllkeysLfu = "allkeys-lfu",
        AllkeysRandom = "allkeys-random",
        NoEviction = "noeviction",
    }
}

impl MaxmemoryPolicy {
    /// An LFU policy: keys' access fields hold LFU counters (Redis's MAXMEMORY_FLAG_LFU).
    pub fn is_lfu(self) -> bool {
        matches!(self, MaxmemoryPolicy::VolatileLfu | MaxmemoryPolicy::AllkeysLfu)
    }

    /// Evicts from every key, not only those with a TTL (MAXMEMORY_FLAG_ALLKEYS).
    pub fn is_allkeys(self) -> bool {
        matches!(
            self,
            MaxmemoryPolicy::AllkeysLru | MaxmemoryPolicy::AllkeysLfu | MaxmemoryPolicy::AllkeysRandom
        )
    }
}

config_enum! {
    /// `loglevel`.
    pub enum LogLevel {
        Debug = "debug",
        Verbose = "verbose",
        Notice = "notice",
        Warning = "warning",
    }
}

config_enum! {
    /// `supervised`. Only `no` and `auto` are accepted (basalt sends no readiness
    /// notifications).
    pub enum Supervised {
        Upstart = "upstart",
        Systemd = "systemd",
        Auto = "auto",
        No = "no",
    }
}

config_enum! {
    /// `enable-debug-command`, `enable-protected-configs`, `enable-module-command`.
    pub enum ProtectedAction {
        No = "no",
        Yes = "yes",
        Local = "local",
    }
}

impl ProtectedAction {
    /// May a client (local = connected over loopback or a unix socket) do the protected thing?
    pub fn allows(self, client_is_local: bool) -> bool {
        match self {
            ProtectedAction::No => false,
            ProtectedAction::Yes => true,
            ProtectedAction::Local => client_is_local,
        }
    }
}

config_enum! {
    /// `placement` (basalt's own): pin shard threads to cores?
    pub enum Placement {
        /// Pin when there are at least as many usable cores as threads, else don't.
        Auto = "auto",
        Pinned = "pinned",
        Unpinned = "unpinned",
    }
}

/// One class of `client-output-buffer-limit`: disconnect a client whose pending output
/// exceeds `hard` bytes, or stays above `soft` bytes for `soft_seconds`. 0 = no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObufLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

/// `client-output-buffer-limit` for the three client classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOutputBufferLimits {
    pub normal: ObufLimit,
    pub replica: ObufLimit,
    pub pubsub: ObufLimit,
}

impl Default for ClientOutputBufferLimits {
    /// Redis's defaults: normal unlimited, replica 256mb/64mb/60s, pubsub 32mb/8mb/60s.
    fn default() -> Self {
        ClientOutputBufferLimits {
            normal: ObufLimit {
                hard: 0,
                soft: 0,
                soft_seconds: 0,
            },
            replica: ObufLimit {
                hard: 256 << 20,
                soft: 64 << 20,
                soft_seconds: 60,
            },
            pubsub: ObufLimit {
                hard: 32 << 20,
                soft: 8 << 20,
                soft_seconds: 60,
            },
        }
    }
}

/// `notify-keyspace-events` as the bit set Redis keeps (`K`, `E`, `g`, `$`, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NotifyFlags(pub u32);

impl NotifyFlags {
    /// `K`: publish on `__keyspace@<db>__:<key>`.
    pub const KEYSPACE: u32 = 1 << 0;
    /// `E`: publish on `__keyevent@<db>__:<event>`.
    pub const KEYEVENT: u32 = 1 << 1;
    pub const GENERIC: u32 = 1 << 2;
    pub const STRING: u32 = 1 << 3;
    pub const LIST: u32 = 1 << 4;
    pub const SET: u32 = 1 << 5;
    pub const HASH: u32 = 1 << 6;
    pub const ZSET: u32 = 1 << 7;
    pub const EXPIRED: u32 = 1 << 8;
    pub const EVICTED: u32 = 1 << 9;
    pub const STREAM: u32 = 1 << 10;
    pub const KEY_MISS: u32 = 1 << 11;
    pub const LOADED: u32 = 1 << 12;
    pub const MODULE: u32 = 1 << 13;
    pub const NEW: u32 = 1 << 14;
    /// `A`: every class but `m` (key miss) and `n` (new key).
    pub const ALL: u32 = Self::GENERIC
        | Self::STRING
        | Self::LIST
        | Self::SET
        | Self::HASH
        | Self::ZSET
        | Self::EXPIRED
        | Self::EVICTED
        | Self::STREAM
        | Self::MODULE;

    /// Parses the class letters, as Redis's `keyspaceEventsStringToFlags`.
    pub fn parse(s: &[u8]) -> Option<NotifyFlags> {
        let mut f = 0;
        for &c in s {
            f |= match c {
                b'A' => Self::ALL,
                b'g' => Self::GENERIC,
                b'$' => Self::STRING,
                b'l' => Self::LIST,
                b's' => Self::SET,
                b'h' => Self::HASH,
                b'z' => Self::ZSET,
                b'x' => Self::EXPIRED,
                b'e' => Self::EVICTED,
                b'K' => Self::KEYSPACE,
                b'E' => Self::KEYEVENT,
                b't' => Self::STREAM,
                b'm' => Self::KEY_MISS,
                b'd' => Self::MODULE,
                b'n' => Self::NEW,
                _ => return None,
            };
        }
        Some(NotifyFlags(f))
    }

    /// Does it include every bit of `flags`?
    pub fn contains(self, flags: u32) -> bool {
        self.0 & flags == flags
    }

    /// Would an event of `class` (one of the class bits) be published at all?
    pub fn wants(self, class: u32) -> bool {
        self.0 & (Self::KEYSPACE | Self::KEYEVENT) != 0 && self.0 & class != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for NotifyFlags {
    /// Redis's canonical spelling (`keyspaceEventsFlagsToString`): `KEA` prints as `AKE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        let mut s = String::new();
        if v & Self::ALL == Self::ALL {
            s.push('A');
        } else {
            for (bit, c) in [
                (Self::GENERIC, 'g'),
                (Self::STRING, '$'),
                (Self::LIST, 'l'),
                (Self::SET, 's'),
                (Self::HASH, 'h'),
                (Self::ZSET, 'z'),
                (Self::EXPIRED, 'x'),
                (Self::EVICTED, 'e'),
                (Self::STREAM, 't'),
                (Self::MODULE, 'd'),
                (Self::NEW, 'n'),
            ] {
                if v & bit != 0 {
                    s.push(c);
                }
            }
        }
        for (bit, c) in [(Self::KEYSPACE, 'K'), (Self::KEYEVENT, 'E'), (Self::KEY_MISS, 'm')] {
            if v & bit != 0 {
                s.push(c);
            }
        }
        f.write_str(&s)
    }
}

/// A `bind` address taken apart: `-::1` is `{ addr: "::1", optional: true }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindAddr {
    /// An IP address, `*` (every IPv4 address) or `::*` (every IPv6 address).
    pub addr: String,
    /// Written with a leading `-`: skip it, rather than fail, if it cannot be bound.
    pub optional: bool,
}

/// What went wrong reading the command line or the configuration. `Display` prints the text
/// to show the user (Redis's shapes); [`ConfigError::exit_code`] says how to exit.
#[derive(Debug)]
pub enum ConfigError {
    /// `--help` / `-h`: print this on standard error and exit 1, as `redis-server` does.
    Help(String),
    /// `--version` / `-v`: print this on standard output and exit 0.
    Version(String),
    /// The configuration file (or an included one) cannot be read.
    CantOpen { path: PathBuf, reason: String },
    /// A bad or refused directive: printed as Redis's `*** FATAL CONFIG FILE ERROR ***` block.
    Fatal(FatalError),
}

/// The parts of a `*** FATAL CONFIG FILE ERROR ***` report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FatalError {
    /// Set when the line is in an included file (the main file and the command line are
    /// reported by line number alone, as Redis does).
    pub file: Option<PathBuf>,
    /// 1-based line number and the trimmed line, when the error belongs to one line.
    pub line: Option<(usize, String)>,
    pub reason: String,
}

impl ConfigError {
    /// 0 for `--version`, 1 otherwise (`redis-server --help` exits 1 too).
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Version(_) => 0,
            _ => 1,
        }
    }

    /// Whether the text goes to standard output (only `--version`) or standard error.
    pub fn to_stdout(&self) -> bool {
        matches!(self, ConfigError::Version(_))
    }

    /// The reason alone (without the banner), handy in tests and logs.
    pub fn reason(&self) -> &str {
        match self {
            ConfigError::Help(s) | ConfigError::Version(s) => s,
            ConfigError::CantOpen { reason, .. } => reason,
            ConfigError::Fatal(f) => &f.reason,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Help(s) | ConfigError::Version(s) => f.write_str(s),
            ConfigError::CantOpen { path, reason } => write!(
                f,
                "Fatal error, can't open config file '{}': {}",
                path.display(),
                reason
            ),
            ConfigError::Fatal(e) => {
                writeln!(f, "*** FATAL CONFIG FILE ERROR (basalt {VERSION}) ***")?;
                if let Some((n, text)) = &e.line {
                    match &e.file {
                        Some(p) => writeln!(f, "Reading the configuration file {}, at line {n}", p.display())?,
                        None => writeln!(f, "Reading the configuration file, at line {n}")?,
                    }
                    writeln!(f, ">>> '{text}'")?;
                }
                write!(f, "{}", e.reason)
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl Default for Config {
    /// Redis 7.0's defaults (plus basalt's own), `dir` being the current directory.
    fn default() -> Self {
        let mut c = Config {
            bind: Vec::new(),
            port: 0,
            protected_mode: false,
            tcp_backlog: 0,
            timeout: 0,
            tcp_keepalive: 0,
            maxclients: 0,
            requirepass: None,
            tls_port: 0,
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_cert_file: None,
            tls_ca_cert_dir: None,
            tls_auth_clients: TlsAuthClients::Yes,
            tls_protocols: String::new(),
            tls_session_caching: true,
            tls_session_cache_size: 0,
            daemonize: false,
            supervised: Supervised::No,
            pidfile: None,
            loglevel: LogLevel::Notice,
            logfile: String::new(),
            databases: 0,
            hz: 0,
            enable_debug_command: ProtectedAction::No,
            enable_protected_configs: ProtectedAction::No,
            io_threads: 0,
            save: Vec::new(),
            stop_writes_on_bgsave_error: false,
            rdbcompression: false,
            rdbchecksum: false,
            dbfilename: String::new(),
            dir: PathBuf::new(),
            appendonly: false,
            appendfilename: String::new(),
            appenddirname: String::new(),
            appendfsync: Fsync::EverySec,
            auto_aof_rewrite_percentage: 0,
            auto_aof_rewrite_min_size: 0,
            aof_load_truncated: false,
            aof_use_rdb_preamble: false,
            maxmemory: 0,
            maxmemory_policy: MaxmemoryPolicy::NoEviction,
            maxmemory_samples: 0,
            maxmemory_eviction_tenacity: 0,
            lfu_log_factor: 0,
            lfu_decay_time: 0,
            active_expire_effort: 0,
            proto_max_bulk_len: 0,
            client_query_buffer_limit: 0,
            client_output_buffer_limit: ClientOutputBufferLimits::default(),
            busy_reply_threshold: 0,
            slowlog_log_slower_than: 0,
            slowlog_max_len: 0,
            latency_monitor_threshold: 0,
            notify_keyspace_events: NotifyFlags(0),
            hash_max_listpack_entries: 0,
            hash_max_listpack_value: 0,
            list_max_listpack_size: 0,
            list_compress_depth: 0,
            set_max_intset_entries: 0,
            set_max_listpack_entries: 0,
            set_max_listpack_value: 0,
            zset_max_listpack_entries: 0,
            zset_max_listpack_value: 0,
            hll_sparse_max_bytes: 0,
            stream_node_max_bytes: 0,
            stream_node_max_entries: 0,
            activedefrag: false,
            lazyfree_lazy_eviction: false,
            lazyfree_lazy_expire: false,
            lazyfree_lazy_server_del: false,
            lazyfree_lazy_user_del: false,
            lazyfree_lazy_user_flush: false,
            oom_score_adj_values: [0; 3],
            latency_tracking: true,
            latency_tracking_info_percentiles: Vec::new(),
            replicaof: None,
            shards: None,
            placement: Placement::Auto,
            config_file: None,
            other: BTreeMap::new(),
        };
        // The real defaults come from the table, the one place they are written.
        table::apply_defaults(&mut c);
        c
    }
}

impl Config {
    /// Parses the command line exactly as `redis-server` does: `basalt [/path/to/redis.conf]
    /// [--name value ...] [-]`. `argv[0]` is the program name (pass `std::env::args()` as is).
    /// A trailing (or sole) `-` reads more configuration from standard input; `--name v1 v2`
    /// becomes the config line `name v1 v2` after the file's lines, so flags win.
    pub fn from_args(argv: &[String]) -> Result<Config, ConfigError> {
        load::from_args(argv, &mut std::io::stdin().lock())
    }

    /// [`Config::from_args`] with standard input supplied by the caller (for tests).
    pub fn from_args_with_stdin(argv: &[String], stdin: &mut dyn std::io::Read) -> Result<Config, ConfigError> {
        load::from_args(argv, stdin)
    }

    /// Parses configuration text (as a file's content) on top of the defaults, without
    /// touching the file system beyond `include`s: `dir` is not checked, the log file not
    /// opened. Refused options are errors here too.
    pub fn from_conf_str(text: &str) -> Result<Config, ConfigError> {
        load::from_text(text.as_bytes())
    }

    /// CONFIG GET: every parameter (names and aliases alike) matching any of the glob
    /// `patterns`, case-insensitively, with its value as Redis prints it. A pattern without
    /// `*`, `?` or `[` is an exact (case-insensitive) name, answered under the spelling asked.
    pub fn get(&self, patterns: &[&[u8]]) -> Vec<(String, String)> {
        table::config_get(self, patterns)
    }

    /// CONFIG SET name value [name value ...]: all or nothing. `Err` carries the whole error
    /// line without the leading `-`, e.g. `ERR CONFIG SET failed (possibly related to argument
    /// 'maxmemory') - argument must be a memory value`. The client is treated as remote for
    /// `enable-protected-configs local`; see [`Config::set_as`]. The command's own checks come
    /// first, as in Redis: fewer than one pair is `ERR wrong number of arguments for
    /// 'config|set' command`, an odd count `ERR syntax error`.
    pub fn set(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<(), String> {
        self.set_as(pairs, false)
    }

    /// [`Config::set`] for a client known to be local (loopback), which `enable-protected-configs
    /// local` lets change `dir` and `dbfilename`.
    pub fn set_as(&mut self, pairs: &[(&[u8], &[u8])], client_is_local: bool) -> Result<(), String> {
        table::config_set(self, pairs, client_is_local)
    }

    /// CONFIG REWRITE to `path`: keeps the file's comments and layout, rewrites the lines of
    /// known parameters in place, blanks their extra lines, and appends parameters that
    /// differ from their defaults under `# Generated by CONFIG REWRITE`. The new file replaces
    /// the old one atomically (temporary file, fsync, rename, fsync of the directory).
    pub fn rewrite(&self, path: &Path) -> std::io::Result<()> {
        rewrite::rewrite_file(self, path)
    }

    /// Notes to log once at start: each ignored parameter set to a non-default value, and
    /// other settings basalt accepts with a caveat.
    pub fn warnings(&self) -> Vec<String> {
        table::warnings(self)
    }

    /// The current value of one parameter (name or alias, any case) as CONFIG GET prints it.
    pub fn value_of(&self, name: &str) -> Option<String> {
        let (p, _) = lookup(name.as_bytes())?;
        Some(table::format_value(self, p))
    }

    /// `bind` taken apart.
    pub fn bind_addrs(&self) -> Vec<BindAddr> {
        self.bind
            .iter()
            .map(|a| match a.strip_prefix('-') {
                Some(rest) => BindAddr {
                    addr: rest.to_string(),
                    optional: true,
                },
                None => BindAddr {
                    addr: a.clone(),
                    optional: false,
                },
            })
            .collect()
    }
}

/// Should this parameter's value be hidden from SLOWLOG, MONITOR and the like
/// (`requirepass`, `masterauth`, `masteruser`)?
pub fn is_sensitive(name: &[u8]) -> bool {
    lookup(name).is_some_and(|(p, _)| p.flags & flags::SENSITIVE != 0)
}

/// The configuration of a running server: a lock (configuration is not data; CONFIG SET is
/// rare) plus a generation counter that hot paths poll to know when to refresh their copies.
pub struct SharedConfig {
    config: RwLock<Config>,
    generation: AtomicU64,
}

impl SharedConfig {
    pub fn new(config: Config) -> SharedConfig {
        SharedConfig {
            config: RwLock::new(config),
            generation: AtomicU64::new(0),
        }
    }

    /// The current configuration. Do not hold the guard across an `.await`.
    pub fn read(&self) -> RwLockReadGuard<'_, Config> {
        // A panic while holding the lock cannot leave a half-applied CONFIG SET behind
        // (set builds the new value aside and swaps it in), so a poisoned lock is still good.
        self.config.read().unwrap_or_else(|e| e.into_inner())
    }

    /// CONFIG SET (see [`Config::set`]); bumps the generation when something was set.
    pub fn set(&self, pairs: &[(&[u8], &[u8])]) -> Result<(), String> {
        self.set_as(pairs, false)
    }

    /// CONFIG SET for a client known to be local (see [`Config::set_as`]).
    pub fn set_as(&self, pairs: &[(&[u8], &[u8])], client_is_local: bool) -> Result<(), String> {
        let mut guard = self.config.write().unwrap_or_else(|e| e.into_inner());
        guard.set_as(pairs, client_is_local)?;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Changes on every successful [`SharedConfig::set`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// CONFIG GET on the current configuration.
    pub fn get(&self, patterns: &[&[u8]]) -> Vec<(String, String)> {
        self.read().get(patterns)
    }

    /// CONFIG REWRITE: `Err` is the error line as Redis sends it (without the `-`).
    pub fn rewrite(&self) -> Result<(), String> {
        let cfg = self.read();
        let Some(path) = cfg.config_file.clone() else {
            return Err("ERR The server is running without a config file".to_string());
        };
        cfg.rewrite(&path)
            .map_err(|e| format!("ERR Rewriting config file: {}", load::strerror(&e)))
    }
}
