//! The parameter table and the generic machinery over it: defaults, setting from words,
//! CONFIG GET formatting, CONFIG SET, refusal checks, warnings, and per-parameter rewrite.
//!
//! Each row mirrors Redis 7.0's `standardConfig` entry (same bounds, defaults, flags and
//! error texts) plus basalt's support level and, for parameters the server reads, the typed
//! `Config` field it lives in.

use std::path::{Path, PathBuf};

use super::lex::{format_memory, parse_ll, parse_memory, repr, split_spaces, strtoll_full};
use super::rewrite::Rewriter;
use super::{
    ClientOutputBufferLimits, Config, Fsync, LogLevel, MaxmemoryPolicy, NotifyFlags, ObufLimit, Placement,
    ProtectedAction, Supervised, TlsAuthClients,
};

/// A stored value of a non-special parameter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    Bool(bool),
    Int(i64),
    Enum(u32),
    Str(Vec<u8>),
}

impl Val {
    fn bool(self) -> bool {
        matches!(self, Val::Bool(true))
    }
    fn int(self) -> i64 {
        match self {
            Val::Int(v) => v,
            _ => 0,
        }
    }
    fn enum_(self) -> u32 {
        match self {
            Val::Enum(v) => v,
            _ => 0,
        }
    }
    fn bytes(self) -> Vec<u8> {
        match self {
            Val::Str(v) => v,
            _ => Vec::new(),
        }
    }
}

/// Rust enums stored in typed fields (see `config_enum!`).
pub(crate) trait EnumField: Copy {
    fn to_index(self) -> u32;
    fn from_index(i: u32) -> Self;
}

/// String-ish typed fields; for the `Option`s, empty means `None`.
pub(crate) trait StrField {
    fn to_bytes(&self) -> Vec<u8>;
    fn from_bytes(b: Vec<u8>) -> Self;
}

impl StrField for String {
    fn to_bytes(&self) -> Vec<u8> {
        self.clone().into_bytes()
    }
    fn from_bytes(b: Vec<u8>) -> Self {
        String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

impl StrField for Option<Vec<u8>> {
    fn to_bytes(&self) -> Vec<u8> {
        self.clone().unwrap_or_default()
    }
    fn from_bytes(b: Vec<u8>) -> Self {
        (!b.is_empty()).then_some(b)
    }
}

impl StrField for Option<PathBuf> {
    fn to_bytes(&self) -> Vec<u8> {
        self.as_ref()
            .map(|p| p.to_string_lossy().into_owned().into_bytes())
            .unwrap_or_default()
    }
    fn from_bytes(b: Vec<u8>) -> Self {
        (!b.is_empty()).then(|| PathBuf::from(String::from_bytes(b)))
    }
}

/// How far basalt supports a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// The server honours it.
    Implemented,
    /// Accepted and stored (CONFIG GET answers it) but without effect; the text says why.
    Ignored(&'static str),
    /// Only its default value, or one of `also_ok` (as CONFIG GET prints them), is accepted:
    /// anything else would silently lose data or weaken security. `why` says so and what to do.
    Refused {
        why: &'static str,
        also_ok: &'static [&'static str],
    },
}

/// Parameter flags (Redis's names).
pub mod flags {
    /// CONFIG SET may change it.
    pub const MUTABLE: u8 = 1;
    /// CONFIG SET needs `enable-protected-configs` (`dir`, `dbfilename`).
    pub const PROTECTED: u8 = 2;
    /// Takes several words (`save 900 1 300 10`); CONFIG SET splits its value on spaces.
    pub const MULTI_ARG: u8 = 4;
    /// A secret: redact it in SLOWLOG / MONITOR.
    pub const SENSITIVE: u8 = 8;
}
use flags::*;

/// How an integer parameter is written and read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumFormat {
    Plain,
    /// Accepts `1k`, `1kb`, `1mb`...; CONFIG GET prints bytes; REWRITE prints `64mb`.
    Memory,
    /// Memory, or a percentage (`10%`, stored as -10).
    MemoryOrPercent,
    /// Octal (`unixsocketperm 700`).
    Octal,
}

/// Sets a special parameter from its words; `Err` is Redis's reason text.
pub(crate) type SetFn = fn(&mut Config, &[Vec<u8>], &mut SetCtx) -> Result<(), String>;
/// Extra validation of an enum value (the OR of the flags for a flag set).
pub type EnumCheck = fn(u32) -> Result<(), &'static str>;
/// Extra validation of a string value.
pub type StrCheck = fn(&[u8]) -> Result<(), &'static str>;

/// The special parameters' behaviour, each a small hand-written function set.
#[derive(Clone, Copy)]
pub struct Special {
    pub(crate) set: SetFn,
    pub(crate) get: fn(&Config) -> String,
    pub(crate) rewrite: fn(&Config, &str, &mut Rewriter),
    pub(crate) init: fn(&mut Config),
    pub(crate) is_default: fn(&Config) -> bool,
}

/// A parameter's type and default.
#[derive(Clone, Copy)]
pub enum Kind {
    Bool {
        default: bool,
    },
    /// `unsigned`: Redis's unsigned C types compare bounds unsigned (so -1 is "too big").
    Int {
        min: i64,
        max: i64,
        default: i64,
        unsigned: bool,
        format: NumFormat,
    },
    /// `multi`: a set of flags given as several words (`shutdown-on-sigterm nosave now`).
    Enum {
        names: &'static [(&'static str, u32)],
        default: u32,
        multi: bool,
        check: Option<EnumCheck>,
    },
    /// `empty_is_none`: "" means unset (and REWRITE drops the line).
    Str {
        default: &'static str,
        empty_is_none: bool,
        check: Option<StrCheck>,
    },
    Special(Special),
}

/// Where a non-special value is stored.
#[derive(Clone, Copy)]
pub(crate) enum Access {
    /// A typed `Config` field.
    Field {
        get: fn(&Config) -> Val,
        set: fn(&mut Config, Val),
    },
    /// `Config::other`, keyed by the parameter's name (absent = default).
    Other,
}

/// One configuration parameter.
#[derive(Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub kind: Kind,
    /// See [`flags`].
    pub flags: u8,
    pub support: Support,
    pub(crate) access: Access,
}

impl Param {
    pub fn mutable(&self) -> bool {
        self.flags & MUTABLE != 0
    }
    pub fn multi_arg(&self) -> bool {
        self.flags & MULTI_ARG != 0
    }
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Param")
            .field("name", &self.name)
            .field("alias", &self.alias)
            .field("flags", &self.flags)
            .field("support", &self.support)
            .finish()
    }
}

// ---- Row builders --------------------------------------------------------------------------

const fn row(name: &'static str, kind: Kind) -> Param {
    Param {
        name,
        alias: None,
        kind,
        flags: MUTABLE,
        support: Support::Implemented,
        access: Access::Other,
    }
}
const fn boolean(name: &'static str, default: bool) -> Param {
    row(name, Kind::Bool { default })
}
const fn num(name: &'static str, min: i64, max: i64, default: i64, unsigned: bool, format: NumFormat) -> Param {
    row(
        name,
        Kind::Int {
            min,
            max,
            default,
            unsigned,
            format,
        },
    )
}
/// A signed C integer (int, long, long long, ssize_t, off_t, time_t).
const fn int(name: &'static str, min: i64, max: i64, default: i64) -> Param {
    num(name, min, max, default, false, NumFormat::Plain)
}
/// An unsigned C integer (unsigned int, size_t, unsigned long long).
const fn uint(name: &'static str, min: i64, max: i64, default: i64) -> Param {
    num(name, min, max, default, true, NumFormat::Plain)
}
const fn mem(name: &'static str, min: i64, max: i64, default: i64, unsigned: bool) -> Param {
    num(name, min, max, default, unsigned, NumFormat::Memory)
}
const fn enumeration(name: &'static str, names: &'static [(&'static str, u32)], default: u32) -> Param {
    row(
        name,
        Kind::Enum {
            names,
            default,
            multi: false,
            check: None,
        },
    )
}
const fn string(name: &'static str, default: &'static str) -> Param {
    row(
        name,
        Kind::Str {
            default,
            empty_is_none: false,
            check: None,
        },
    )
}
/// A string whose empty value means "not set" (Redis's EMPTY_STRING_IS_NULL, default NULL).
const fn opt_string(name: &'static str) -> Param {
    row(
        name,
        Kind::Str {
            default: "",
            empty_is_none: true,
            check: None,
        },
    )
}
const fn special(name: &'static str, s: Special) -> Param {
    row(name, Kind::Special(s))
}

impl Param {
    const fn alias(mut self, alias: &'static str) -> Self {
        self.alias = Some(alias);
        self
    }
    const fn immutable(mut self) -> Self {
        self.flags &= !MUTABLE;
        self
    }
    const fn with(mut self, flag: u8) -> Self {
        self.flags |= flag;
        self
    }
    const fn field(mut self, access: Access) -> Self {
        self.access = access;
        self
    }
    const fn ignored(mut self, why: &'static str) -> Self {
        self.support = Support::Ignored(why);
        self
    }
    const fn refused(mut self, why: &'static str) -> Self {
        self.support = Support::Refused { why, also_ok: &[] };
        self
    }
    const fn refused_but(mut self, why: &'static str, also_ok: &'static [&'static str]) -> Self {
        self.support = Support::Refused { why, also_ok };
        self
    }
    const fn check_str(mut self, f: StrCheck) -> Self {
        if let Kind::Str {
            default, empty_is_none, ..
        } = self.kind
        {
            self.kind = Kind::Str {
                default,
                empty_is_none,
                check: Some(f),
            };
        }
        self
    }
    const fn flag_set(mut self, check: EnumCheck) -> Self {
        if let Kind::Enum { names, default, .. } = self.kind {
            self.kind = Kind::Enum {
                names,
                default,
                multi: true,
                check: Some(check),
            };
        }
        self.flags |= MULTI_ARG;
        self
    }
}

/// Accessors for typed fields: `field!(bool appendonly)` and so on.
macro_rules! field {
    (bool $f:ident) => {
        Access::Field {
            get: |c| Val::Bool(c.$f),
            set: |c, v| c.$f = v.bool(),
        }
    };
    (int $f:ident) => {
        Access::Field {
            get: |c| Val::Int(c.$f as i64),
            set: |c, v| c.$f = v.int() as _,
        }
    };
    (enum $f:ident) => {
        Access::Field {
            get: |c| Val::Enum(EnumField::to_index(c.$f)),
            set: |c, v| c.$f = EnumField::from_index(v.enum_()),
        }
    };
    (str $f:ident) => {
        Access::Field {
            get: |c| Val::Str(StrField::to_bytes(&c.$f)),
            set: |c, v| c.$f = StrField::from_bytes(v.bytes()),
        }
    };
}

const INT_MAX: i64 = i32::MAX as i64;
const INT_MIN: i64 = i32::MIN as i64;
const UINT_MAX: i64 = u32::MAX as i64;
const LLONG_MAX: i64 = i64::MAX;
/// C stores ULLONG_MAX in a `long long` bound as -1; unsigned comparison restores it.
const ULLONG_MAX: i64 = -1;
const MB: i64 = 1024 * 1024;

// Reasons for ignoring, shared by families of parameters.
const WHY_REPL: &str = "basalt has no replication yet";
const WHY_CLUSTER: &str = "basalt has no cluster mode yet";
const WHY_THREADS: &str = "basalt runs one thread per core (see --shards and --placement)";
const WHY_MEMORY: &str = "basalt manages memory and freeing itself";
const WHY_PROCESS: &str = "a process detail basalt does not need";
const WHY_FSYNC: &str = "basalt's persistence core schedules its own writes and fsyncs";
const WHY_ACL: &str = "ACLs are not implemented yet (only requirepass)";

const WHY_CIPHERS: &str = "basalt's TLS (rustls) offers only modern AEAD cipher suites \
    (AES-GCM and ChaCha20-Poly1305 with ECDHE), in its own order of preference";

const SHUTDOWN_FLAGS: &[(&str, u32)] = &[("default", 0), ("save", 1), ("nosave", 2), ("now", 4), ("force", 8)];
const SHUTDOWN_NO_SAVE: &[&str] = &[
    "default",
    "nosave",
    "now",
    "force",
    "nosave now",
    "nosave force",
    "now force",
    "nosave now force",
];

/// Every parameter, in the order REWRITE appends new lines.
pub static PARAMS: &[Param] = &[
    // ---- Network ------------------------------------------------------------------------
    special("bind", BIND).with(MULTI_ARG).immutable(),
    int("port", 0, 65535, 6379).immutable().field(field!(int port)),
    boolean("protected-mode", true).field(field!(bool protected_mode)),
    int("tcp-backlog", 0, INT_MAX, 511)
        .immutable()
        .field(field!(int tcp_backlog)),
    int("timeout", 0, INT_MAX, 0).field(field!(int timeout)),
    int("tcp-keepalive", 0, INT_MAX, 300).field(field!(int tcp_keepalive)),
    uint("maxclients", 1, UINT_MAX, 10000).field(field!(int maxclients)),
    opt_string("requirepass").with(SENSITIVE).field(field!(str requirepass)),
    opt_string("unixsocket")
        .immutable()
        .refused("unix domain sockets are not supported yet: remove 'unixsocket' and connect over TCP"),
    num("unixsocketperm", 0, 0o777, 0, true, NumFormat::Octal)
        .immutable()
        .ignored("basalt has no unix socket"),
    opt_string("bind-source-addr").ignored(WHY_REPL),
    uint("socket-mark-id", 0, UINT_MAX, 0).immutable().ignored(WHY_PROCESS),
    // ---- TLS ------------------------------------------------------------------------------
    int("tls-port", 0, 65535, 0).immutable().field(field!(int tls_port)),
    int("tls-session-cache-size", 0, INT_MAX, 20 * 1024).field(field!(int tls_session_cache_size)),
    int("tls-session-cache-timeout", 0, INT_MAX, 300)
        .ignored("rustls's session cache keeps a session until newer ones push it out"),
    boolean("tls-cluster", false).ignored(WHY_CLUSTER),
    boolean("tls-replication", false).ignored(WHY_REPL),
    enumeration("tls-auth-clients", TlsAuthClients::NAMES, TlsAuthClients::Yes as u32)
        .field(field!(enum tls_auth_clients)),
    boolean("tls-prefer-server-ciphers", false).ignored(WHY_CIPHERS),
    boolean("tls-session-caching", true).field(field!(bool tls_session_caching)),
    opt_string("tls-cert-file").field(field!(str tls_cert_file)),
    opt_string("tls-key-file").field(field!(str tls_key_file)),
    opt_string("tls-key-file-pass").with(SENSITIVE).refused(
        "basalt cannot read encrypted private keys: decrypt the key once \
         (openssl pkey -in key.pem -out plain.pem), point tls-key-file at it and remove tls-key-file-pass",
    ),
    opt_string("tls-client-cert-file").ignored(WHY_REPL),
    opt_string("tls-client-key-file").ignored(WHY_REPL),
    opt_string("tls-client-key-file-pass").with(SENSITIVE).ignored(WHY_REPL),
    opt_string("tls-dh-params-file")
        .ignored("basalt's TLS negotiates ECDHE key exchange only; DH parameters are not used"),
    opt_string("tls-ca-cert-file").field(field!(str tls_ca_cert_file)),
    opt_string("tls-ca-cert-dir").field(field!(str tls_ca_cert_dir)),
    opt_string("tls-protocols").field(field!(str tls_protocols)),
    opt_string("tls-ciphers").ignored(WHY_CIPHERS),
    opt_string("tls-ciphersuites").ignored(WHY_CIPHERS),
    // ---- Process ------------------------------------------------------------------------
    boolean("daemonize", false)
        .immutable()
        .field(field!(bool daemonize))
        .refused(
            "basalt always runs in the foreground; set 'daemonize no' and let systemd \
         (Type=simple), Docker or your process supervisor keep it in the background",
        ),
    enumeration("supervised", Supervised::NAMES, Supervised::No as u32)
        .immutable()
        .field(field!(enum supervised))
        .refused_but(
            "basalt does not send upstart/systemd readiness notifications yet; set \
             'supervised no' and run it as a systemd Type=simple service",
            &["auto"],
        ),
    opt_string("pidfile").immutable().field(field!(str pidfile)),
    enumeration("loglevel", LogLevel::NAMES, LogLevel::Notice as u32).field(field!(enum loglevel)),
    string("logfile", "").immutable().field(field!(str logfile)),
    boolean("syslog-enabled", false)
        .immutable()
        .ignored("basalt logs to logfile or standard output"),
    string("syslog-ident", "redis")
        .immutable()
        .ignored("basalt does not log to syslog"),
    enumeration(
        "syslog-facility",
        &[
            ("user", 8),
            ("local0", 128),
            ("local1", 136),
            ("local2", 144),
            ("local3", 152),
            ("local4", 160),
            ("local5", 168),
            ("local6", 176),
            ("local7", 184),
        ],
        128,
    )
    .immutable()
    .ignored("basalt does not log to syslog"),
    boolean("crash-log-enabled", true).ignored(WHY_PROCESS),
    boolean("crash-memcheck-enabled", true).ignored(WHY_PROCESS),
    int("databases", 1, INT_MAX, 16)
        .immutable()
        .field(field!(int databases)),
    boolean("always-show-logo", false).immutable().ignored(WHY_PROCESS),
    boolean("set-proc-title", true).immutable().ignored(WHY_PROCESS),
    string("proc-title-template", "{title} {listen-addr} {server-mode}")
        .check_str(check_proc_title)
        .ignored(WHY_PROCESS),
    string("ignore-warnings", "").ignored(WHY_PROCESS),
    opt_string("server_cpulist").immutable().ignored(WHY_THREADS),
    opt_string("bio_cpulist").immutable().ignored(WHY_THREADS),
    opt_string("aof_rewrite_cpulist").immutable().ignored(WHY_THREADS),
    opt_string("bgsave_cpulist").immutable().ignored(WHY_THREADS),
    int("io-threads", 1, 128, 1)
        .immutable()
        .field(field!(int io_threads))
        .ignored(WHY_THREADS),
    boolean("io-threads-do-reads", false).immutable().ignored(WHY_THREADS),
    int("hz", 0, INT_MAX, 10).field(Access::Field {
        get: |c| Val::Int(c.hz as i64),
        // Redis takes any hz and clamps it into 1..=500.
        set: |c, v| c.hz = v.int().clamp(1, 500) as u32,
    }),
    boolean("dynamic-hz", true).ignored(WHY_THREADS),
    enumeration("enable-protected-configs", ProtectedAction::NAMES, 0)
        .immutable()
        .field(field!(enum enable_protected_configs)),
    enumeration("enable-debug-command", ProtectedAction::NAMES, 0)
        .immutable()
        .field(field!(enum enable_debug_command)),
    enumeration("enable-module-command", ProtectedAction::NAMES, 0)
        .immutable()
        .ignored("basalt does not load modules"),
    enumeration("shutdown-on-sigint", SHUTDOWN_FLAGS, 0)
        .flag_set(check_shutdown)
        .refused_but(
            "the 'save' shutdown flag is not supported yet: basalt would not take the final \
         snapshot you asked for",
            SHUTDOWN_NO_SAVE,
        ),
    enumeration("shutdown-on-sigterm", SHUTDOWN_FLAGS, 0)
        .flag_set(check_shutdown)
        .refused_but(
            "the 'save' shutdown flag is not supported yet: basalt would not take the final \
         snapshot you asked for",
            SHUTDOWN_NO_SAVE,
        ),
    int("shutdown-timeout", 0, INT_MAX, 10).ignored(WHY_REPL),
    enumeration(
        "oom-score-adj",
        &[("no", 0), ("yes", 1), ("relative", 1), ("absolute", 2)],
        0,
    )
    .ignored(WHY_PROCESS),
    special("oom-score-adj-values", OOM_SCORE_ADJ_VALUES)
        .with(MULTI_ARG)
        .ignored(WHY_PROCESS),
    boolean("disable-thp", true).immutable().ignored(WHY_MEMORY),
    boolean("jemalloc-bg-thread", true).ignored(WHY_MEMORY),
    // ---- Snapshots ----------------------------------------------------------------------
    special("save", SAVE).with(MULTI_ARG),
    boolean("stop-writes-on-bgsave-error", true).field(field!(bool stop_writes_on_bgsave_error)),
    boolean("rdbcompression", true).field(field!(bool rdbcompression)),
    boolean("rdbchecksum", true).immutable().field(field!(bool rdbchecksum)),
    string("dbfilename", "dump.rdb")
        .with(PROTECTED)
        .check_str(check_dbfilename)
        .field(field!(str dbfilename)),
    boolean("rdb-del-sync-files", false).ignored(WHY_REPL),
    boolean("rdb-save-incremental-fsync", true).ignored(WHY_FSYNC),
    enumeration("sanitize-dump-payload", &[("no", 0), ("yes", 1), ("clients", 2)], 0)
        .ignored("basalt always validates RESTORE payloads"),
    special("dir", DIR).with(PROTECTED),
    // ---- Append-only file ---------------------------------------------------------------
    boolean("appendonly", false).field(field!(bool appendonly)),
    string("appendfilename", "appendonly.aof")
        .immutable()
        .check_str(check_aof_filename)
        .field(field!(str appendfilename)),
    string("appenddirname", "appendonlydir")
        .immutable()
        .check_str(check_aof_dirname)
        .field(field!(str appenddirname)),
    enumeration("appendfsync", Fsync::NAMES, Fsync::EverySec as u32).field(field!(enum appendfsync)),
    boolean("no-appendfsync-on-rewrite", false).ignored(WHY_FSYNC),
    int("auto-aof-rewrite-percentage", 0, INT_MAX, 100).field(field!(int auto_aof_rewrite_percentage)),
    mem("auto-aof-rewrite-min-size", 0, LLONG_MAX, 64 * MB, false).field(field!(int auto_aof_rewrite_min_size)),
    boolean("aof-load-truncated", true).field(field!(bool aof_load_truncated)),
    boolean("aof-use-rdb-preamble", true).field(field!(bool aof_use_rdb_preamble)),
    boolean("aof-timestamp-enabled", false).ignored("AOF timestamp annotations are not written yet"),
    boolean("aof-rewrite-incremental-fsync", true).ignored(WHY_FSYNC),
    boolean("aof-disable-auto-gc", false).ignored("basalt removes obsolete AOF files itself"),
    // ---- Memory -------------------------------------------------------------------------
    mem("maxmemory", 0, ULLONG_MAX, 0, true).field(field!(int maxmemory)),
    enumeration(
        "maxmemory-policy",
        MaxmemoryPolicy::NAMES,
        MaxmemoryPolicy::NoEviction as u32,
    )
    .field(field!(enum maxmemory_policy)),
    int("maxmemory-samples", 1, INT_MAX, 5).field(field!(int maxmemory_samples)),
    int("maxmemory-eviction-tenacity", 0, 100, 10).field(field!(int maxmemory_eviction_tenacity)),
    num(
        "maxmemory-clients",
        -100,
        i64::MAX,
        0,
        false,
        NumFormat::MemoryOrPercent,
    )
    .ignored("client eviction is not implemented yet"),
    int("lfu-log-factor", 0, INT_MAX, 10).field(field!(int lfu_log_factor)),
    int("lfu-decay-time", 0, INT_MAX, 1).field(field!(int lfu_decay_time)),
    int("active-expire-effort", 1, 10, 1).field(field!(int active_expire_effort)),
    boolean("activerehashing", true).ignored(WHY_MEMORY),
    boolean("lazyfree-lazy-eviction", false)
        .field(field!(bool lazyfree_lazy_eviction))
        .ignored(WHY_MEMORY),
    boolean("lazyfree-lazy-expire", false)
        .field(field!(bool lazyfree_lazy_expire))
        .ignored(WHY_MEMORY),
    boolean("lazyfree-lazy-server-del", false)
        .field(field!(bool lazyfree_lazy_server_del))
        .ignored(WHY_MEMORY),
    boolean("lazyfree-lazy-user-del", false)
        .field(field!(bool lazyfree_lazy_user_del))
        .ignored(WHY_MEMORY),
    boolean("lazyfree-lazy-user-flush", false)
        .field(field!(bool lazyfree_lazy_user_flush))
        .ignored(WHY_MEMORY),
    boolean("activedefrag", false)
        .field(field!(bool activedefrag))
        .ignored(WHY_MEMORY),
    int("active-defrag-cycle-min", 1, 99, 1).ignored(WHY_MEMORY),
    int("active-defrag-cycle-max", 1, 99, 25).ignored(WHY_MEMORY),
    int("active-defrag-threshold-lower", 0, 1000, 10).ignored(WHY_MEMORY),
    int("active-defrag-threshold-upper", 0, 1000, 100).ignored(WHY_MEMORY),
    int("active-defrag-max-scan-fields", 1, LLONG_MAX, 1000).ignored(WHY_MEMORY),
    mem("active-defrag-ignore-bytes", 1, LLONG_MAX, 100 * MB, true).ignored(WHY_MEMORY),
    // ---- Limits -------------------------------------------------------------------------
    mem("proto-max-bulk-len", MB, LLONG_MAX, 512 * MB, false).field(field!(int proto_max_bulk_len)),
    mem("client-query-buffer-limit", MB, LLONG_MAX, 1024 * MB, true).field(field!(int client_query_buffer_limit)),
    special("client-output-buffer-limit", CLIENT_OUTPUT_BUFFER_LIMIT).with(MULTI_ARG),
    int("busy-reply-threshold", 0, LLONG_MAX, 5000)
        .alias("lua-time-limit")
        .field(field!(int busy_reply_threshold)),
    uint("tracking-table-max-keys", 0, LLONG_MAX, 1_000_000).ignored("client-side caching is not implemented yet"),
    // ---- Monitoring ---------------------------------------------------------------------
    int("slowlog-log-slower-than", -1, LLONG_MAX, 10000).field(field!(int slowlog_log_slower_than)),
    int("slowlog-max-len", 0, LLONG_MAX, 128).field(field!(int slowlog_max_len)),
    int("latency-monitor-threshold", 0, LLONG_MAX, 0).field(field!(int latency_monitor_threshold)),
    boolean("latency-tracking", true).field(field!(bool latency_tracking)),
    special("latency-tracking-info-percentiles", LATENCY_PERCENTILES).with(MULTI_ARG),
    special("notify-keyspace-events", NOTIFY_KEYSPACE_EVENTS),
    // ---- Encodings ----------------------------------------------------------------------
    uint("hash-max-listpack-entries", 0, LLONG_MAX, 512)
        .alias("hash-max-ziplist-entries")
        .field(field!(int hash_max_listpack_entries)),
    mem("hash-max-listpack-value", 0, LLONG_MAX, 64, true)
        .alias("hash-max-ziplist-value")
        .field(field!(int hash_max_listpack_value)),
    int("list-max-listpack-size", INT_MIN, INT_MAX, -2)
        .alias("list-max-ziplist-size")
        .field(field!(int list_max_listpack_size)),
    int("list-compress-depth", 0, INT_MAX, 0).field(field!(int list_compress_depth)),
    uint("set-max-intset-entries", 0, LLONG_MAX, 512).field(field!(int set_max_intset_entries)),
    uint("set-max-listpack-entries", 0, LLONG_MAX, 128).field(field!(int set_max_listpack_entries)),
    mem("set-max-listpack-value", 0, LLONG_MAX, 64, true).field(field!(int set_max_listpack_value)),
    uint("zset-max-listpack-entries", 0, LLONG_MAX, 128)
        .alias("zset-max-ziplist-entries")
        .field(field!(int zset_max_listpack_entries)),
    mem("zset-max-listpack-value", 0, LLONG_MAX, 64, true)
        .alias("zset-max-ziplist-value")
        .field(field!(int zset_max_listpack_value)),
    mem("hll-sparse-max-bytes", 0, LLONG_MAX, 3000, true).field(field!(int hll_sparse_max_bytes)),
    mem("stream-node-max-bytes", 0, LLONG_MAX, 4096, true).field(field!(int stream_node_max_bytes)),
    int("stream-node-max-entries", 0, LLONG_MAX, 100).field(field!(int stream_node_max_entries)),
    // ---- Security -----------------------------------------------------------------------
    string("aclfile", "").immutable().refused(
        "ACL files are not supported yet; basalt refuses to start rather than run without \
         your access rules (use requirepass for a single password)",
    ),
    int("acllog-max-len", 0, LLONG_MAX, 128).ignored(WHY_ACL),
    enumeration("acl-pubsub-default", &[("allchannels", 1), ("resetchannels", 0)], 0).ignored(WHY_ACL),
    // ---- Replication --------------------------------------------------------------------
    special("replicaof", REPLICAOF)
        .alias("slaveof")
        .with(MULTI_ARG)
        .immutable()
        .refused(
            "replication is not supported yet, so basalt cannot run as a replica; remove \
         'replicaof' (or write 'replicaof no one')",
        ),
    opt_string("masterauth").with(SENSITIVE).ignored(WHY_REPL),
    opt_string("masteruser").with(SENSITIVE).ignored(WHY_REPL),
    boolean("replica-serve-stale-data", true)
        .alias("slave-serve-stale-data")
        .ignored(WHY_REPL),
    boolean("replica-read-only", true)
        .alias("slave-read-only")
        .ignored(WHY_REPL),
    boolean("replica-lazy-flush", false)
        .alias("slave-lazy-flush")
        .ignored(WHY_REPL),
    boolean("replica-ignore-maxmemory", true)
        .alias("slave-ignore-maxmemory")
        .ignored(WHY_REPL),
    boolean("replica-announced", true).ignored(WHY_REPL),
    opt_string("replica-announce-ip")
        .alias("slave-announce-ip")
        .ignored(WHY_REPL),
    int("replica-announce-port", 0, 65535, 0)
        .alias("slave-announce-port")
        .ignored(WHY_REPL),
    int("replica-priority", 0, INT_MAX, 100)
        .alias("slave-priority")
        .ignored(WHY_REPL),
    boolean("repl-diskless-sync", true).ignored(WHY_REPL),
    int("repl-diskless-sync-delay", 0, INT_MAX, 5).ignored(WHY_REPL),
    int("repl-diskless-sync-max-replicas", 0, INT_MAX, 0).ignored(WHY_REPL),
    enumeration(
        "repl-diskless-load",
        &[("disabled", 0), ("on-empty-db", 1), ("swapdb", 2)],
        0,
    )
    .ignored(WHY_REPL),
    boolean("repl-disable-tcp-nodelay", false).ignored(WHY_REPL),
    int("repl-ping-replica-period", 1, INT_MAX, 10)
        .alias("repl-ping-slave-period")
        .ignored(WHY_REPL),
    int("repl-timeout", 1, INT_MAX, 60).ignored(WHY_REPL),
    mem("repl-backlog-size", 1, LLONG_MAX, MB, false).ignored(WHY_REPL),
    int("repl-backlog-ttl", 0, LLONG_MAX, 3600).ignored(WHY_REPL),
    int("min-replicas-to-write", 0, INT_MAX, 0)
        .alias("min-slaves-to-write")
        .refused(
            "replication is not supported yet, so no write could ever reach the replicas you \
         require; set 'min-replicas-to-write 0'",
        ),
    int("min-replicas-max-lag", 0, INT_MAX, 10)
        .alias("min-slaves-max-lag")
        .ignored(WHY_REPL),
    boolean("replica-ignore-disk-write-errors", false).ignored(WHY_REPL),
    enumeration(
        "propagation-error-behavior",
        &[("ignore", 0), ("panic", 1), ("panic-on-replicas", 2)],
        0,
    )
    .ignored(WHY_REPL),
    // ---- Cluster ------------------------------------------------------------------------
    boolean("cluster-enabled", false)
        .immutable()
        .refused("cluster mode is not supported yet; set 'cluster-enabled no'"),
    string("cluster-config-file", "nodes.conf")
        .immutable()
        .ignored(WHY_CLUSTER),
    int("cluster-node-timeout", 0, LLONG_MAX, 15000).ignored(WHY_CLUSTER),
    int("cluster-port", 0, 65535, 0).immutable().ignored(WHY_CLUSTER),
    int("cluster-replica-validity-factor", 0, INT_MAX, 10)
        .alias("cluster-slave-validity-factor")
        .ignored(WHY_CLUSTER),
    int("cluster-migration-barrier", 0, INT_MAX, 1).ignored(WHY_CLUSTER),
    boolean("cluster-allow-replica-migration", true).ignored(WHY_CLUSTER),
    boolean("cluster-require-full-coverage", true).ignored(WHY_CLUSTER),
    boolean("cluster-replica-no-failover", false)
        .alias("cluster-slave-no-failover")
        .ignored(WHY_CLUSTER),
    boolean("cluster-allow-reads-when-down", false).ignored(WHY_CLUSTER),
    boolean("cluster-allow-pubsubshard-when-down", true).ignored(WHY_CLUSTER),
    opt_string("cluster-announce-ip").ignored(WHY_CLUSTER),
    opt_string("cluster-announce-hostname")
        .check_str(check_hostname)
        .ignored(WHY_CLUSTER),
    int("cluster-announce-port", 0, 65535, 0).ignored(WHY_CLUSTER),
    int("cluster-announce-bus-port", 0, 65535, 0).ignored(WHY_CLUSTER),
    int("cluster-announce-tls-port", 0, 65535, 0).ignored(WHY_CLUSTER),
    enumeration(
        "cluster-preferred-endpoint-type",
        &[("ip", 0), ("hostname", 1), ("unknown-endpoint", 2)],
        0,
    )
    .ignored(WHY_CLUSTER),
    mem("cluster-link-sendbuf-limit", 0, ULLONG_MAX, 0, true).ignored(WHY_CLUSTER),
    // ---- basalt's own -------------------------------------------------------------------
    special("shards", SHARDS).immutable(),
    enumeration("placement", Placement::NAMES, Placement::Auto as u32)
        .immutable()
        .field(field!(enum placement)),
];

// ---- Validators ----------------------------------------------------------------------------

fn check_dbfilename(v: &[u8]) -> Result<(), &'static str> {
    if v.contains(&b'/') {
        return Err("dbfilename can't be a path, just a filename");
    }
    Ok(())
}

fn check_aof_filename(v: &[u8]) -> Result<(), &'static str> {
    if v.is_empty() {
        return Err("appendfilename can't be empty");
    }
    if v.contains(&b'/') {
        return Err("appendfilename can't be a path, just a filename");
    }
    Ok(())
}

fn check_aof_dirname(v: &[u8]) -> Result<(), &'static str> {
    if v.is_empty() {
        return Err("appenddirname can't be empty");
    }
    if v.contains(&b'/') {
        return Err("appenddirname can't be a path, just a dirname");
    }
    Ok(())
}

fn check_hostname(v: &[u8]) -> Result<(), &'static str> {
    if v.len() >= 256 {
        return Err("Hostnames must be less than 256 characters");
    }
    if !v.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.') {
        return Err("Hostnames may only contain alphanumeric characters, hyphens or dots");
    }
    Ok(())
}

/// Redis expands the template (`{{` is a literal brace) with an empty title and the server's
/// values, and rejects unknown variables, bad braces, or a blank result.
fn check_proc_title(v: &[u8]) -> Result<(), &'static str> {
    const BAD: &str = "template format is invalid or contains unknown variables";
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        if v[i] != b'{' {
            out.push(v[i]);
            i += 1;
            continue;
        }
        i += 1;
        match v.get(i) {
            None => return Err(BAD),
            Some(b'{') => {
                out.push(b'{');
                i += 1;
                continue;
            }
            Some(_) => {}
        }
        let end = v[i..].iter().position(|&c| c == b'}').ok_or(BAD)? + i;
        let value: &[u8] = match &v[i..end] {
            b"title" | b"server-mode" | b"unixsocket" | b"config-file" => b"",
            b"listen-addr" | b"port" | b"tls-port" => b"x",
            _ => return Err(BAD),
        };
        out.extend_from_slice(value);
        i = end + 1;
    }
    if out.iter().all(|&c| c == b' ') {
        return Err(BAD);
    }
    Ok(())
}

fn check_shutdown(v: u32) -> Result<(), &'static str> {
    if v & 1 != 0 && v & 2 != 0 {
        return Err("shutdown options SAVE and NOSAVE can't be used simultaneously");
    }
    Ok(())
}

// ---- Special parameters --------------------------------------------------------------------

/// State of one load (or one CONFIG SET) that some parameters need.
pub(crate) struct SetCtx {
    /// Loading a file: `save` lines accumulate instead of replacing.
    pub reading_file: bool,
    /// A `save` line was already seen in this load (the first one drops the defaults).
    pub save_loaded: bool,
    /// Check paths against the file system (`dir` must exist).
    pub check_fs: bool,
}

impl SetCtx {
    pub(crate) fn config_set() -> SetCtx {
        SetCtx {
            reading_file: false,
            save_loaded: false,
            check_fs: true,
        }
    }
}

fn one(args: &[Vec<u8>]) -> Result<&[u8], String> {
    match args {
        [a] => Ok(a),
        _ => Err("wrong number of arguments".to_string()),
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const DEFAULT_BIND: &[&str] = &["*", "-::*"];

const BIND: Special = Special {
    set: |c, args, _| {
        if args.len() > 16 {
            return Err("Too many bind addresses specified.".to_string());
        }
        let args: &[Vec<u8>] = if args.len() == 1 && args[0].is_empty() {
            &[]
        } else {
            args
        };
        let mut addrs = Vec::with_capacity(args.len());
        for a in args {
            let a = lossy(a);
            let bare = a.strip_prefix('-').unwrap_or(&a);
            if bare != "*" && bare != "::*" && bare.parse::<std::net::IpAddr>().is_err() {
                return Err(format!(
                    "Invalid bind address '{a}': basalt binds IPv4 and IPv6 addresses, '*' and '::*' \
                     (a leading '-' marks an optional one)"
                ));
            }
            addrs.push(a);
        }
        c.bind = addrs;
        Ok(())
    },
    get: |c| c.bind.join(" "),
    rewrite: |c, name, rw| {
        if c.bind.iter().map(String::as_str).eq(DEFAULT_BIND.iter().copied()) {
            rw.mark_processed(name);
            return;
        }
        let addrs = if c.bind.is_empty() {
            "\"\"".to_string()
        } else {
            c.bind.join(" ")
        };
        rw.rewrite_line(name, format!("{name} {addrs}").into_bytes(), true);
    },
    init: |c| c.bind = DEFAULT_BIND.iter().map(|s| s.to_string()).collect(),
    is_default: |c| c.bind.iter().map(String::as_str).eq(DEFAULT_BIND.iter().copied()),
};

const DEFAULT_SAVE: &[(u64, u64)] = &[(3600, 1), (300, 100), (60, 10000)];

const SAVE: Special = Special {
    set: |c, args, ctx| {
        // `save ""` (one empty word) clears every rule, in a file as in CONFIG SET.
        if args.len() == 1 && args[0].is_empty() {
            c.save.clear();
            ctx.save_loaded = true;
            return Ok(());
        }
        const BAD: &str = "Invalid save parameters";
        // One word holding the pairs (`--save "3600 1 300 100"`, `save "60 5"` in a file):
        // split on spaces, as redis-server does.
        let split: Vec<Vec<u8>>;
        let args = if args.len() == 1 && args[0].contains(&b' ') {
            split = args[0]
                .split(|&b| b == b' ')
                .filter(|w| !w.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            &split[..]
        } else {
            args
        };
        if args.len() % 2 != 0 {
            return Err(BAD.to_string());
        }
        let mut rules = Vec::with_capacity(args.len() / 2);
        for pair in args.chunks(2) {
            let secs = strtoll_full(&pair[0], 10).ok_or(BAD)?;
            let changes = strtoll_full(&pair[1], 10).ok_or(BAD)?;
            if secs < 1 || changes < 0 {
                return Err(BAD.to_string());
            }
            rules.push((secs as u64, changes as u64));
        }
        // In a file, the first `save` line replaces the defaults and later ones add rules;
        // CONFIG SET replaces the whole list.
        if !ctx.reading_file || !ctx.save_loaded {
            c.save.clear();
            ctx.save_loaded = true;
        }
        c.save.extend(rules);
        Ok(())
    },
    get: |c| {
        c.save
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(" ")
    },
    rewrite: |c, name, rw| {
        if c.save.is_empty() {
            rw.rewrite_line(name, b"save \"\"".to_vec(), true);
        } else {
            for (s, n) in &c.save {
                rw.rewrite_line(name, format!("save {s} {n}").into_bytes(), true);
            }
        }
        rw.mark_processed(name);
    },
    init: |c| c.save = DEFAULT_SAVE.to_vec(),
    is_default: |c| c.save == DEFAULT_SAVE,
};

const OBUF_CLASSES: [&str; 3] = ["normal", "slave", "pubsub"];

fn obuf_class(c: &mut ClientOutputBufferLimits, i: usize) -> &mut ObufLimit {
    match i {
        0 => &mut c.normal,
        1 => &mut c.replica,
        _ => &mut c.pubsub,
    }
}

const CLIENT_OUTPUT_BUFFER_LIMIT: Special = Special {
    set: |c, args, _| {
        if args.len() % 4 != 0 {
            return Err("Wrong number of arguments in buffer limit configuration.".to_string());
        }
        // Check every class first: the whole value is accepted or none of it.
        let mut new = c.client_output_buffer_limit;
        for g in args.chunks(4) {
            let class = if g[0].eq_ignore_ascii_case(b"normal") {
                0
            } else if g[0].eq_ignore_ascii_case(b"slave") || g[0].eq_ignore_ascii_case(b"replica") {
                1
            } else if g[0].eq_ignore_ascii_case(b"pubsub") {
                2
            } else {
                return Err("Invalid client class specified in buffer limit configuration.".to_string());
            };
            let bad = || "Error in hard, soft or soft_seconds setting in buffer limit configuration.".to_string();
            let hard = parse_memory(&g[1]).ok_or_else(bad)?;
            let soft = parse_memory(&g[2]).ok_or_else(bad)?;
            // Redis keeps the seconds in a C int.
            let secs = strtoll_full(&g[3], 10).ok_or_else(bad)? as i32;
            if secs < 0 {
                return Err(bad());
            }
            *obuf_class(&mut new, class) = ObufLimit {
                hard,
                soft,
                soft_seconds: secs as u64,
            };
        }
        c.client_output_buffer_limit = new;
        Ok(())
    },
    get: |c| {
        let mut l = c.client_output_buffer_limit;
        (0..3)
            .map(|i| {
                let o = *obuf_class(&mut l, i);
                format!("{} {} {} {}", OBUF_CLASSES[i], o.hard, o.soft, o.soft_seconds)
            })
            .collect::<Vec<_>>()
            .join(" ")
    },
    rewrite: |c, name, rw| {
        let mut cur = c.client_output_buffer_limit;
        let mut def = ClientOutputBufferLimits::default();
        for (i, &get_name) in OBUF_CLASSES.iter().enumerate() {
            let o = *obuf_class(&mut cur, i);
            let force = o != *obuf_class(&mut def, i);
            let class = if i == 1 { "replica" } else { get_name };
            let line = format!(
                "{name} {class} {} {} {}",
                format_memory(o.hard as i64),
                format_memory(o.soft as i64),
                o.soft_seconds
            );
            let same_class = |a: &[Vec<u8>]| {
                a.get(1).is_some_and(|w| {
                    w.eq_ignore_ascii_case(get_name.as_bytes()) || (i == 1 && w.eq_ignore_ascii_case(b"replica"))
                })
            };
            rw.rewrite_line_where(name, line.into_bytes(), force, same_class);
        }
    },
    init: |c| c.client_output_buffer_limit = ClientOutputBufferLimits::default(),
    is_default: |c| c.client_output_buffer_limit == ClientOutputBufferLimits::default(),
};

const NOTIFY_KEYSPACE_EVENTS: Special = Special {
    set: |c, args, _| {
        let v = one(args)?;
        c.notify_keyspace_events =
            NotifyFlags::parse(v).ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string())?;
        Ok(())
    },
    get: |c| c.notify_keyspace_events.to_string(),
    rewrite: |c, name, rw| {
        let flags = c.notify_keyspace_events.to_string();
        let line = format!("{name} {}", repr(flags.as_bytes()));
        rw.rewrite_line(name, line.into_bytes(), !c.notify_keyspace_events.is_empty());
    },
    init: |c| c.notify_keyspace_events = NotifyFlags(0),
    is_default: |c| c.notify_keyspace_events.is_empty(),
};

const DIR: Special = Special {
    set: |c, args, ctx| {
        let v = one(args)?;
        if v.is_empty() {
            return Err("No such file or directory".to_string());
        }
        // Relative to the previous `dir`, as Redis's successive chdir()s make it.
        let path = c.dir.join(lossy(v));
        if ctx.check_fs {
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => {
                    c.dir = std::fs::canonicalize(&path).unwrap_or(path);
                }
                Ok(_) => return Err("Not a directory".to_string()),
                Err(e) => return Err(super::load::strerror(&e)),
            }
        } else {
            c.dir = normalize(&path);
        }
        Ok(())
    },
    get: |c| c.dir.to_string_lossy().into_owned(),
    rewrite: |c, name, rw| {
        let line = format!("{name} {}", repr(c.dir.to_string_lossy().as_bytes()));
        rw.rewrite_line(name, line.into_bytes(), true);
    },
    init: |c| {
        c.dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    },
    is_default: |_| true,
};

/// Drops `.` components and resolves `..` lexically (used when the file system is not
/// consulted).
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for comp in p.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

const REPLICAOF: Special = Special {
    set: |c, args, _| {
        let [host, port] = args else {
            return Err("wrong number of arguments".to_string());
        };
        if host.eq_ignore_ascii_case(b"no") && port.eq_ignore_ascii_case(b"one") {
            c.replicaof = None;
            return Ok(());
        }
        match strtoll_full(port, 10) {
            Some(p) if (0..=65535).contains(&p) && !port.is_empty() => {
                c.replicaof = Some((lossy(host), p as u16));
                Ok(())
            }
            _ => Err("Invalid master port".to_string()),
        }
    },
    get: |c| {
        c.replicaof
            .as_ref()
            .map(|(h, p)| format!("{h} {p}"))
            .unwrap_or_default()
    },
    rewrite: |c, name, rw| match &c.replicaof {
        None => rw.mark_processed(name),
        Some((h, p)) => rw.rewrite_line(name, format!("{name} {h} {p}").into_bytes(), true),
    },
    init: |c| c.replicaof = None,
    is_default: |c| c.replicaof.is_none(),
};

const DEFAULT_OOM: [i32; 3] = [0, 200, 800];

const OOM_SCORE_ADJ_VALUES: Special = Special {
    set: |c, args, _| {
        if args.len() != 3 {
            return Err("wrong number of arguments".to_string());
        }
        let mut vals = [0i32; 3];
        for (i, a) in args.iter().enumerate() {
            match strtoll_full(a, 10) {
                Some(v) if (-2000..=2000).contains(&v) => vals[i] = v as i32,
                _ => return Err("Invalid oom-score-adj-values, elements must be between -2000 and 2000.".to_string()),
            }
        }
        c.oom_score_adj_values = vals;
        Ok(())
    },
    get: |c| {
        c.oom_score_adj_values
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    },
    rewrite: |c, name, rw| {
        let v = &c.oom_score_adj_values;
        let line = format!("{name} {} {} {}", v[0], v[1], v[2]);
        rw.rewrite_line(name, line.into_bytes(), *v != DEFAULT_OOM);
    },
    init: |c| c.oom_score_adj_values = DEFAULT_OOM,
    is_default: |c| c.oom_score_adj_values == DEFAULT_OOM,
};

/// C's `%f` with trailing zeros (and a trailing point) removed.
/// A percentile as Redis prints it: `%f` with trailing zeros trimmed (`99.9`, `50`).
pub fn format_percentile(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0');
    s.trim_end_matches('.').to_string()
}

const DEFAULT_PERCENTILES: &[f64] = &[50.0, 99.0, 99.9];

const LATENCY_PERCENTILES: Special = Special {
    set: |c, args, _| {
        let args: &[Vec<u8>] = if args.len() == 1 && args[0].is_empty() {
            &[]
        } else {
            args
        };
        let mut vals = Vec::with_capacity(args.len());
        for a in args {
            let v = std::str::from_utf8(a)
                .ok()
                .filter(|s| !s.starts_with(|ch: char| ch.is_ascii_whitespace()))
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| !v.is_nan())
                .ok_or_else(|| "Invalid latency-tracking-info-percentiles parameters".to_string())?;
            if !(0.0..=100.0).contains(&v) {
                return Err("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".to_string());
            }
            vals.push(v);
        }
        c.latency_tracking_info_percentiles = vals;
        Ok(())
    },
    get: |c| {
        c.latency_tracking_info_percentiles
            .iter()
            .map(|v| format_percentile(*v))
            .collect::<Vec<_>>()
            .join(" ")
    },
    rewrite: |c, name, rw| {
        // Redis always writes this one, so that an empty list survives a restart.
        let vals = &c.latency_tracking_info_percentiles;
        let line = if vals.is_empty() {
            format!("{name} \"\"")
        } else {
            let v: Vec<String> = vals.iter().map(|v| format_percentile(*v)).collect();
            format!("{name} {}", v.join(" "))
        };
        rw.rewrite_line(name, line.into_bytes(), true);
    },
    init: |c| c.latency_tracking_info_percentiles = DEFAULT_PERCENTILES.to_vec(),
    is_default: |c| c.latency_tracking_info_percentiles == DEFAULT_PERCENTILES,
};

/// The most shards `--shards` accepts.
pub const MAX_SHARDS: usize = 1024;

const SHARDS: Special = Special {
    set: |c, args, _| {
        let v = one(args)?;
        if v.eq_ignore_ascii_case(b"auto") || v == b"0" {
            c.shards = None;
            return Ok(());
        }
        match parse_ll(v) {
            Some(n) if n >= 1 && n as usize <= MAX_SHARDS => {
                c.shards = Some(n as usize);
                Ok(())
            }
            _ => Err(format!(
                "argument must be 'auto' or a number of shards between 1 and {MAX_SHARDS}"
            )),
        }
    },
    get: |c| c.shards.map_or_else(|| "auto".to_string(), |n| n.to_string()),
    rewrite: |c, name, rw| {
        let v = c.shards.map_or_else(|| "auto".to_string(), |n| n.to_string());
        rw.rewrite_line(name, format!("{name} {v}").into_bytes(), c.shards.is_some());
    },
    init: |c| c.shards = None,
    is_default: |c| c.shards.is_none(),
};

// ---- Generic machinery ---------------------------------------------------------------------

/// Finds a parameter by name or alias, ignoring ASCII case. Also returns the name matched
/// (the alias when the alias was used), which Redis echoes in some errors.
pub fn lookup(name: &[u8]) -> Option<(&'static Param, &'static str)> {
    PARAMS.iter().find_map(|p| {
        if p.name.as_bytes().eq_ignore_ascii_case(name) {
            Some((p, p.name))
        } else {
            p.alias
                .filter(|a| a.as_bytes().eq_ignore_ascii_case(name))
                .map(|a| (p, a))
        }
    })
}

pub(crate) fn default_val(p: &Param) -> Option<Val> {
    Some(match p.kind {
        Kind::Bool { default } => Val::Bool(default),
        Kind::Int { default, .. } => Val::Int(default),
        Kind::Enum { default, .. } => Val::Enum(default),
        Kind::Str { default, .. } => Val::Str(default.as_bytes().to_vec()),
        Kind::Special(_) => return None,
    })
}

/// The stored value of a non-special parameter.
pub(crate) fn value(c: &Config, p: &Param) -> Val {
    match p.access {
        Access::Field { get, .. } => get(c),
        Access::Other => match c.other.get(p.name) {
            Some(v) => v.clone(),
            None => default_val(p).unwrap_or(Val::Int(0)),
        },
    }
}

fn store(c: &mut Config, p: &Param, v: Val) {
    match p.access {
        Access::Field { set, .. } => set(c, v),
        Access::Other => {
            // Keep the map minimal so that equal configurations compare equal.
            if default_val(p).as_ref() == Some(&v) {
                c.other.remove(p.name);
            } else {
                c.other.insert(p.name, v);
            }
        }
    }
}

/// Sets every parameter to its default.
pub(crate) fn apply_defaults(c: &mut Config) {
    for p in PARAMS {
        match p.kind {
            Kind::Special(s) => (s.init)(c),
            _ => {
                if let Some(v) = default_val(p) {
                    store(c, p, v);
                }
            }
        }
    }
}

pub(crate) fn is_default(c: &Config, p: &Param) -> bool {
    match p.kind {
        Kind::Special(s) => (s.is_default)(c),
        _ => default_val(p).as_ref() == Some(&value(c, p)),
    }
}

/// The name(s) of an enum value; flags print as the words that make them up.
fn enum_name(names: &[(&str, u32)], v: u32, multi: bool) -> String {
    if let Some((n, _)) = names.iter().find(|(_, x)| *x == v) {
        return n.to_string();
    }
    if multi {
        let mut left = v;
        let mut words = Vec::new();
        for &(n, x) in names {
            if x != 0 && left & x == x {
                words.push(n);
                left &= !x;
            }
        }
        if left == 0 && !words.is_empty() {
            return words.join(" ");
        }
    }
    "unknown".to_string()
}

/// The value as CONFIG GET prints it.
pub(crate) fn format_value(c: &Config, p: &Param) -> String {
    match p.kind {
        Kind::Special(s) => (s.get)(c),
        Kind::Bool { .. } => if value(c, p).bool() { "yes" } else { "no" }.to_string(),
        Kind::Int { format, .. } => {
            let v = value(c, p).int();
            match format {
                NumFormat::MemoryOrPercent if v < 0 => format!("{}%", v.unsigned_abs()),
                NumFormat::Memory | NumFormat::MemoryOrPercent => (v as u64).to_string(),
                NumFormat::Octal => format!("{v:o}"),
                NumFormat::Plain => v.to_string(),
            }
        }
        Kind::Enum { names, multi, .. } => enum_name(names, value(c, p).enum_(), multi),
        Kind::Str { .. } => lossy(&value(c, p).bytes()),
    }
}

fn parse_int(v: &[u8], format: NumFormat) -> Result<i64, &'static str> {
    match format {
        NumFormat::Memory | NumFormat::MemoryOrPercent => {
            if let Some(m) = parse_memory(v) {
                return Ok(m as i64);
            }
            if format == NumFormat::MemoryOrPercent && v.len() > 1 && v.ends_with(b"%") {
                if let Some(pct) = parse_ll(&v[..v.len() - 1]).filter(|p| *p >= 0) {
                    return Ok(-pct);
                }
            }
            Err(if format == NumFormat::Memory {
                "argument must be a memory value"
            } else {
                "argument must be a memory or percent value"
            })
        }
        NumFormat::Octal => strtoll_full(v, 8)
            .filter(|n| *n != i64::MAX && *n != i64::MIN)
            .ok_or("argument couldn't be parsed as an octal number"),
        NumFormat::Plain => parse_ll(v).ok_or("argument couldn't be parsed into an integer"),
    }
}

fn check_bounds(v: i64, min: i64, max: i64, unsigned: bool, format: NumFormat) -> Result<(), String> {
    if unsigned {
        let (u, lo, hi) = (v as u64, min as u64, max as u64);
        if u > hi || u < lo {
            return Err(if format == NumFormat::Octal {
                format!("argument must be between {lo:o} and {hi:o} inclusive")
            } else {
                format!("argument must be between {lo} and {hi} inclusive")
            });
        }
    } else if format == NumFormat::MemoryOrPercent && v < 0 {
        if v < min {
            return Err(format!("percentage argument must be less or equal to {}", -min));
        }
    } else if v > max || v < min {
        return Err(format!("argument must be between {min} and {max} inclusive"));
    }
    Ok(())
}

/// Sets `p` from its words (one word unless multi-argument). `Err` is Redis's reason text.
pub(crate) fn apply(c: &mut Config, p: &Param, args: &[Vec<u8>], ctx: &mut SetCtx) -> Result<(), String> {
    match p.kind {
        Kind::Special(s) => (s.set)(c, args, ctx),
        Kind::Bool { .. } => {
            let a = one(args)?;
            let b = if a.eq_ignore_ascii_case(b"yes") {
                true
            } else if a.eq_ignore_ascii_case(b"no") {
                false
            } else {
                return Err("argument must be 'yes' or 'no'".to_string());
            };
            store(c, p, Val::Bool(b));
            Ok(())
        }
        Kind::Int {
            min,
            max,
            unsigned,
            format,
            ..
        } => {
            let v = parse_int(one(args)?, format)?;
            check_bounds(v, min, max, unsigned, format)?;
            store(c, p, Val::Int(v));
            Ok(())
        }
        Kind::Enum {
            names, multi, check, ..
        } => {
            let bad = || {
                let list: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                let mut msg = format!("argument(s) must be one of the following: {}", list.join(", "));
                msg.truncate(255);
                msg
            };
            if args.is_empty() || (!multi && args.len() != 1) {
                return Err(bad());
            }
            let mut v = 0;
            for a in args {
                let (_, x) = names
                    .iter()
                    .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(a))
                    .ok_or_else(bad)?;
                v |= x;
            }
            if let Some(check) = check {
                check(v)?;
            }
            store(c, p, Val::Enum(v));
            Ok(())
        }
        Kind::Str { check, .. } => {
            let a = one(args)?;
            if let Some(check) = check {
                check(a)?;
            }
            store(c, p, Val::Str(a.to_vec()));
            Ok(())
        }
    }
}

/// Is the parameter's value one basalt accepts (anything, unless it is refused)?
pub(crate) fn acceptable(c: &Config, p: &Param) -> bool {
    match p.support {
        Support::Refused { also_ok, .. } => is_default(c, p) || also_ok.contains(&format_value(c, p).as_str()),
        _ => true,
    }
}

/// The reason given when a refused parameter has a value basalt does not accept.
pub(crate) fn refusal(c: &Config, p: &Param) -> String {
    let why = match p.support {
        Support::Refused { why, .. } => why,
        _ => "",
    };
    format!(
        "'{}' is set to '{}', which basalt does not support: {why}.",
        p.name,
        format_value(c, p)
    )
}

/// REWRITE one parameter into the rewriter.
pub(crate) fn rewrite_param(c: &Config, p: &Param, rw: &mut Rewriter) {
    let name = p.name;
    let force = !is_default(c, p);
    let line = match p.kind {
        Kind::Special(s) => return (s.rewrite)(c, name, rw),
        Kind::Bool { .. } | Kind::Enum { .. } => format!("{name} {}", format_value(c, p)),
        Kind::Int { format, .. } => {
            let v = value(c, p).int();
            match format {
                NumFormat::MemoryOrPercent if v < 0 => format!("{name} {}%", v.unsigned_abs()),
                NumFormat::Memory | NumFormat::MemoryOrPercent => {
                    format!("{name} {}", format_memory(v))
                }
                NumFormat::Octal => format!("{name} {v:o}"),
                NumFormat::Plain => format!("{name} {v}"),
            }
        }
        Kind::Str { empty_is_none, .. } => {
            let v = value(c, p).bytes();
            if empty_is_none && v.is_empty() {
                // Unset strings must not appear in the file at all.
                rw.mark_processed(name);
                return;
            }
            format!("{name} {}", repr(&v))
        }
    };
    rw.rewrite_line(name, line.into_bytes(), force);
}

/// CONFIG GET.
pub(crate) fn config_get(c: &Config, patterns: &[&[u8]]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for &pat in patterns {
        if !pat.iter().any(|b| matches!(b, b'[' | b'*' | b'?')) {
            let key = pat.to_ascii_lowercase();
            if seen.contains(&key) {
                continue;
            }
            if let Some((p, _)) = lookup(pat) {
                out.push((lossy(pat), format_value(c, p)));
                seen.insert(key);
            }
            continue;
        }
        for p in PARAMS {
            for entry in std::iter::once(p.name).chain(p.alias) {
                if seen.contains(entry.as_bytes()) {
                    continue;
                }
                if super::glob::glob_match(pat, entry.as_bytes(), true) {
                    out.push((entry.to_string(), format_value(c, p)));
                    seen.insert(entry.as_bytes().to_vec());
                }
            }
        }
    }
    out
}

/// CONFIG SET, all or nothing, with Redis's error precedence and texts.
pub(crate) fn config_set(c: &mut Config, pairs: &[(&[u8], &[u8])], local: bool) -> Result<(), String> {
    let mut unknown: Option<&[u8]> = None;
    let mut failed: Option<(String, String)> = None; // (argument, reason)
    let mut chosen: Vec<(&'static Param, &'static str, &[u8])> = Vec::with_capacity(pairs.len());
    for &(name, value) in pairs {
        let Some((p, entry)) = lookup(name) else {
            if unknown.is_none() && failed.is_none() {
                unknown = Some(name);
            }
            continue;
        };
        if unknown.is_some() || failed.is_some() {
            continue;
        }
        if !p.mutable() {
            failed = Some((lossy(name), "can't set immutable config".to_string()));
            continue;
        }
        if p.flags & PROTECTED != 0 && !c.enable_protected_configs.allows(local) {
            failed = Some((lossy(name), "can't set protected config".to_string()));
            continue;
        }
        // Like Redis, a name and its alias are different entries here.
        if chosen.iter().any(|(q, e, _)| std::ptr::eq(*q, p) && *e == entry) {
            failed = Some((lossy(name), "duplicate parameter".to_string()));
            continue;
        }
        chosen.push((p, entry, value));
    }
    if let Some(name) = unknown {
        return Err(format!(
            "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
            lossy(name)
        ));
    }
    if let Some((arg, why)) = failed {
        return Err(format!(
            "ERR CONFIG SET failed (possibly related to argument '{arg}') - {why}"
        ));
    }

    // Apply to a copy and swap it in only if every pair succeeded.
    let mut new = c.clone();
    let mut ctx = SetCtx::config_set();
    for &(p, entry, value) in &chosen {
        let args = if p.multi_arg() {
            split_spaces(value)
        } else {
            vec![value.to_vec()]
        };
        if let Err(why) = apply(&mut new, p, &args, &mut ctx) {
            return Err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{entry}') - {why}"
            ));
        }
    }
    for &(p, entry, _) in &chosen {
        if !acceptable(&new, p) {
            let why = match p.support {
                Support::Refused { why, .. } => why,
                _ => "",
            };
            return Err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{entry}') - not supported by basalt: {why}"
            ));
        }
        if let Support::Ignored(why) = p.support {
            if !is_default(&new, p) {
                tracing::warn!(parameter = p.name, "CONFIG SET of a parameter basalt ignores: {why}");
            }
        }
    }
    *c = new;
    Ok(())
}

/// Start-up notes for [`Config::warnings`].
pub(crate) fn warnings(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for p in PARAMS {
        if let Support::Ignored(why) = p.support {
            if !is_default(c, p) {
                out.push(format!(
                    "'{} {}' is accepted but has no effect: {why}",
                    p.name,
                    format_value(c, p)
                ));
            }
        }
    }
    if c.supervised == Supervised::Auto {
        out.push(
            "'supervised auto': basalt does not notify systemd or upstart when it is ready; \
             run it as a Type=simple service"
                .to_string(),
        );
    }
    out
}
