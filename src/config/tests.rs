//! Tests of loading, CONFIG GET/SET/REWRITE and the command line, checked against what
//! Debian's redis-server 7.0.15 does with the same input.

use super::*;
use std::path::PathBuf;

/// A fresh scratch directory under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "basalt-config-{}-{}-{}",
        name,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn conf(text: &str) -> Config {
    Config::from_conf_str(text).unwrap_or_else(|e| panic!("{e}"))
}

fn conf_err(text: &str) -> FatalError {
    match Config::from_conf_str(text) {
        Err(ConfigError::Fatal(f)) => f,
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(_) => panic!("expected an error for {text:?}"),
    }
}

fn get1(c: &Config, name: &str) -> String {
    let r = c.get(&[name.as_bytes()]);
    assert_eq!(r.len(), 1, "{name}: {r:?}");
    r[0].1.clone()
}

fn set(c: &mut Config, pairs: &[(&str, &str)]) -> Result<(), String> {
    let p: Vec<(&[u8], &[u8])> = pairs.iter().map(|(a, b)| (a.as_bytes(), b.as_bytes())).collect();
    c.set(&p)
}

fn args(a: &[&str]) -> Vec<String> {
    std::iter::once("basalt")
        .chain(a.iter().copied())
        .map(String::from)
        .collect()
}

fn from_args(a: &[&str]) -> Result<Config, ConfigError> {
    Config::from_args_with_stdin(&args(a), &mut std::io::empty())
}

/// `CONFIG GET *` of a default redis-server 7.0.15 (Debian), `dir` left out.
const REDIS_DEFAULTS: &[(&str, &str)] = &[
    ("acl-pubsub-default", "resetchannels"),
    ("aclfile", ""),
    ("acllog-max-len", "128"),
    ("active-defrag-cycle-max", "25"),
    ("active-defrag-cycle-min", "1"),
    ("active-defrag-ignore-bytes", "104857600"),
    ("active-defrag-max-scan-fields", "1000"),
    ("active-defrag-threshold-lower", "10"),
    ("active-defrag-threshold-upper", "100"),
    ("active-expire-effort", "1"),
    ("activedefrag", "no"),
    ("activerehashing", "yes"),
    ("always-show-logo", "no"),
    ("aof-disable-auto-gc", "no"),
    ("aof-load-truncated", "yes"),
    ("aof-rewrite-incremental-fsync", "yes"),
    ("aof-timestamp-enabled", "no"),
    ("aof-use-rdb-preamble", "yes"),
    ("aof_rewrite_cpulist", ""),
    ("appenddirname", "appendonlydir"),
    ("appendfilename", "appendonly.aof"),
    ("appendfsync", "everysec"),
    ("appendonly", "no"),
    ("auto-aof-rewrite-min-size", "67108864"),
    ("auto-aof-rewrite-percentage", "100"),
    ("bgsave_cpulist", ""),
    ("bind", "* -::*"),
    ("bind-source-addr", ""),
    ("bio_cpulist", ""),
    ("busy-reply-threshold", "5000"),
    (
        "client-output-buffer-limit",
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
    ),
    ("client-query-buffer-limit", "1073741824"),
    ("cluster-allow-pubsubshard-when-down", "yes"),
    ("cluster-allow-reads-when-down", "no"),
    ("cluster-allow-replica-migration", "yes"),
    ("cluster-announce-bus-port", "0"),
    ("cluster-announce-hostname", ""),
    ("cluster-announce-ip", ""),
    ("cluster-announce-port", "0"),
    ("cluster-announce-tls-port", "0"),
    ("cluster-config-file", "nodes.conf"),
    ("cluster-enabled", "no"),
    ("cluster-link-sendbuf-limit", "0"),
    ("cluster-migration-barrier", "1"),
    ("cluster-node-timeout", "15000"),
    ("cluster-port", "0"),
    ("cluster-preferred-endpoint-type", "ip"),
    ("cluster-replica-no-failover", "no"),
    ("cluster-replica-validity-factor", "10"),
    ("cluster-require-full-coverage", "yes"),
    ("cluster-slave-no-failover", "no"),
    ("cluster-slave-validity-factor", "10"),
    ("crash-log-enabled", "yes"),
    ("crash-memcheck-enabled", "yes"),
    ("daemonize", "no"),
    ("databases", "16"),
    ("dbfilename", "dump.rdb"),
    ("disable-thp", "yes"),
    ("dynamic-hz", "yes"),
    ("enable-debug-command", "no"),
    ("enable-module-command", "no"),
    ("enable-protected-configs", "no"),
    ("hash-max-listpack-entries", "512"),
    ("hash-max-listpack-value", "64"),
    ("hash-max-ziplist-entries", "512"),
    ("hash-max-ziplist-value", "64"),
    ("hll-sparse-max-bytes", "3000"),
    ("hz", "10"),
    ("ignore-warnings", ""),
    ("io-threads", "1"),
    ("io-threads-do-reads", "no"),
    ("jemalloc-bg-thread", "yes"),
    ("latency-monitor-threshold", "0"),
    ("latency-tracking", "yes"),
    ("latency-tracking-info-percentiles", "50 99 99.9"),
    ("lazyfree-lazy-eviction", "no"),
    ("lazyfree-lazy-expire", "no"),
    ("lazyfree-lazy-server-del", "no"),
    ("lazyfree-lazy-user-del", "no"),
    ("lazyfree-lazy-user-flush", "no"),
    ("lfu-decay-time", "1"),
    ("lfu-log-factor", "10"),
    ("list-compress-depth", "0"),
    ("list-max-listpack-size", "-2"),
    ("list-max-ziplist-size", "-2"),
    ("logfile", ""),
    ("loglevel", "notice"),
    ("lua-time-limit", "5000"),
    ("masterauth", ""),
    ("masteruser", ""),
    ("maxclients", "10000"),
    ("maxmemory", "0"),
    ("maxmemory-clients", "0"),
    ("maxmemory-eviction-tenacity", "10"),
    ("maxmemory-policy", "noeviction"),
    ("maxmemory-samples", "5"),
    ("min-replicas-max-lag", "10"),
    ("min-replicas-to-write", "0"),
    ("min-slaves-max-lag", "10"),
    ("min-slaves-to-write", "0"),
    ("no-appendfsync-on-rewrite", "no"),
    ("notify-keyspace-events", ""),
    ("oom-score-adj", "no"),
    ("oom-score-adj-values", "0 200 800"),
    ("pidfile", ""),
    ("port", "6379"),
    ("proc-title-template", "{title} {listen-addr} {server-mode}"),
    ("propagation-error-behavior", "ignore"),
    ("protected-mode", "yes"),
    ("proto-max-bulk-len", "536870912"),
    ("rdb-del-sync-files", "no"),
    ("rdb-save-incremental-fsync", "yes"),
    ("rdbchecksum", "yes"),
    ("rdbcompression", "yes"),
    ("repl-backlog-size", "1048576"),
    ("repl-backlog-ttl", "3600"),
    ("repl-disable-tcp-nodelay", "no"),
    ("repl-diskless-load", "disabled"),
    ("repl-diskless-sync", "yes"),
    ("repl-diskless-sync-delay", "5"),
    ("repl-diskless-sync-max-replicas", "0"),
    ("repl-ping-replica-period", "10"),
    ("repl-ping-slave-period", "10"),
    ("repl-timeout", "60"),
    ("replica-announce-ip", ""),
    ("replica-announce-port", "0"),
    ("replica-announced", "yes"),
    ("replica-ignore-disk-write-errors", "no"),
    ("replica-ignore-maxmemory", "yes"),
    ("replica-lazy-flush", "no"),
    ("replica-priority", "100"),
    ("replica-read-only", "yes"),
    ("replica-serve-stale-data", "yes"),
    ("replicaof", ""),
    ("requirepass", ""),
    ("sanitize-dump-payload", "no"),
    ("save", "3600 1 300 100 60 10000"),
    ("server_cpulist", ""),
    ("set-max-intset-entries", "512"),
    ("set-proc-title", "yes"),
    ("shutdown-on-sigint", "default"),
    ("shutdown-on-sigterm", "default"),
    ("shutdown-timeout", "10"),
    ("slave-announce-ip", ""),
    ("slave-announce-port", "0"),
    ("slave-ignore-maxmemory", "yes"),
    ("slave-lazy-flush", "no"),
    ("slave-priority", "100"),
    ("slave-read-only", "yes"),
    ("slave-serve-stale-data", "yes"),
    ("slaveof", ""),
    ("slowlog-log-slower-than", "10000"),
    ("slowlog-max-len", "128"),
    ("socket-mark-id", "0"),
    ("stop-writes-on-bgsave-error", "yes"),
    ("stream-node-max-bytes", "4096"),
    ("stream-node-max-entries", "100"),
    ("supervised", "no"),
    ("syslog-enabled", "no"),
    ("syslog-facility", "local0"),
    ("syslog-ident", "redis"),
    ("tcp-backlog", "511"),
    ("tcp-keepalive", "300"),
    ("timeout", "0"),
    ("tls-auth-clients", "yes"),
    ("tls-ca-cert-dir", ""),
    ("tls-ca-cert-file", ""),
    ("tls-cert-file", ""),
    ("tls-ciphers", ""),
    ("tls-ciphersuites", ""),
    ("tls-client-cert-file", ""),
    ("tls-client-key-file", ""),
    ("tls-client-key-file-pass", ""),
    ("tls-cluster", "no"),
    ("tls-dh-params-file", ""),
    ("tls-key-file", ""),
    ("tls-key-file-pass", ""),
    ("tls-port", "0"),
    ("tls-prefer-server-ciphers", "no"),
    ("tls-protocols", ""),
    ("tls-replication", "no"),
    ("tls-session-cache-size", "20480"),
    ("tls-session-cache-timeout", "300"),
    ("tls-session-caching", "yes"),
    ("tracking-table-max-keys", "1000000"),
    ("unixsocket", ""),
    ("unixsocketperm", "0"),
    ("zset-max-listpack-entries", "128"),
    ("zset-max-listpack-value", "64"),
    ("zset-max-ziplist-entries", "128"),
    ("zset-max-ziplist-value", "64"),
];

// ---- Defaults and the table ------------------------------------------------------------------

#[test]
fn defaults_match_redis_config_get_star() {
    let c = Config::default();
    let ours: std::collections::BTreeMap<String, String> = c.get(&[b"*"]).into_iter().collect();
    for (name, value) in REDIS_DEFAULTS {
        assert_eq!(ours.get(*name).map(String::as_str), Some(*value), "{name}");
    }
    // Everything else we answer is basalt's own or a Redis 7.2 name.
    let extra: Vec<&str> = ours
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "dir" && !REDIS_DEFAULTS.iter().any(|(n, _)| n == k))
        .collect();
    assert_eq!(
        extra,
        [
            "placement",
            "set-max-listpack-entries",
            "set-max-listpack-value",
            "shards"
        ]
    );
    assert_eq!(ours["dir"], std::env::current_dir().unwrap().to_string_lossy());
}

#[test]
fn typed_defaults() {
    let c = Config::default();
    assert_eq!(c.bind, ["*", "-::*"]);
    assert_eq!(c.port, 6379);
    assert_eq!(c.databases, 16);
    assert_eq!(c.requirepass, None);
    assert_eq!(c.appendfsync, Fsync::EverySec);
    assert_eq!(c.maxmemory_policy, MaxmemoryPolicy::NoEviction);
    assert_eq!(c.save, [(3600, 1), (300, 100), (60, 10000)]);
    assert_eq!(c.proto_max_bulk_len, 512 << 20);
    assert_eq!(c.client_query_buffer_limit, 1 << 30);
    assert_eq!(c.auto_aof_rewrite_min_size, 64 << 20);
    assert_eq!(c.slowlog_log_slower_than, 10000);
    assert_eq!(c.list_max_listpack_size, -2);
    assert_eq!(c.hz, 10);
    assert_eq!(c.busy_reply_threshold, 5000);
    assert_eq!(c.shards, None);
    assert_eq!(c.placement, Placement::Auto);
    assert_eq!(c.config_file, None);
    assert!(c.other.is_empty());
    assert!(c.warnings().is_empty());
    assert_eq!(
        c.bind_addrs(),
        [
            BindAddr {
                addr: "*".into(),
                optional: false
            },
            BindAddr {
                addr: "::*".into(),
                optional: true
            }
        ]
    );
}

#[test]
fn table_is_consistent() {
    let mut names = std::collections::HashSet::new();
    for p in PARAMS {
        assert_eq!(p.name, p.name.to_ascii_lowercase());
        assert!(names.insert(p.name), "duplicate {}", p.name);
        if let Some(a) = p.alias {
            assert!(names.insert(a), "duplicate alias {a}");
        }
        // Every default is accepted by its own parser (an empty replicaof is not a value).
        if p.name == "replicaof" {
            continue;
        }
        let mut c = Config::default();
        let v = c.value_of(p.name).unwrap();
        let mut ctx = table::SetCtx {
            reading_file: false,
            save_loaded: false,
            check_fs: false,
        };
        let words = if p.multi_arg() {
            lex::split_spaces(v.as_bytes())
        } else {
            vec![v.clone().into_bytes()]
        };
        table::apply(&mut c, p, &words, &mut ctx).unwrap_or_else(|e| panic!("{}: {e}", p.name));
        assert_eq!(c.value_of(p.name).unwrap(), v, "{}", p.name);
        assert!(
            table::acceptable(&Config::default(), p),
            "{} refused at its default",
            p.name
        );
    }
}

// ---- Loading files -----------------------------------------------------------------------------

#[test]
fn quoting_and_escapes_in_files() {
    let c = conf("requirepass \"a \\\"b\\\" c\\x41\"\n");
    assert_eq!(c.requirepass.as_deref(), Some(&b"a \"b\" cA"[..]));
    let c = conf("requirepass 'it\\'s'\n");
    assert_eq!(c.requirepass.as_deref(), Some(&b"it's"[..]));
    let c = conf("requirepass \"\"\n");
    assert_eq!(c.requirepass, None, "empty requirepass means none");
    let c = conf("  \t port   7000  \r\n# comment\n   # indented comment\n\n");
    assert_eq!(c.port, 7000);
    let c = conf("PORT 7001\nMaxMemory 1GB\n");
    assert_eq!((c.port, c.maxmemory), (7001, 1 << 30), "names are case-insensitive");
    let c = conf("notify-keyspace-events \"KEA\"\nlogfile \"\"\n");
    assert_eq!(c.notify_keyspace_events.to_string(), "AKE");
    assert_eq!(c.logfile, "");
}

#[test]
fn memory_values_in_files() {
    for (text, bytes) in [
        ("1k", 1000),
        ("1kb", 1024),
        ("1m", 1_000_000),
        ("1MB", 1 << 20),
        ("2g", 2_000_000_000),
        ("2Gb", 2u64 << 30),
        ("123", 123),
    ] {
        assert_eq!(conf(&format!("maxmemory {text}")).maxmemory, bytes, "{text}");
    }
    assert_eq!(
        conf("maxmemory-clients 10%").value_of("maxmemory-clients").unwrap(),
        "10%"
    );
    assert_eq!(conf("hash-max-ziplist-value 1kb").hash_max_listpack_value, 1024);
}

#[test]
fn repeated_directives() {
    let c = conf("port 1\nport 2\n");
    assert_eq!(c.port, 2, "last wins");
    let c = conf("save 100 1\nsave 200 2\n");
    assert_eq!(
        c.save,
        [(100, 1), (200, 2)],
        "save lines accumulate, replacing the defaults"
    );
    let c = conf("save 100 1 200 2\n");
    assert_eq!(c.save, [(100, 1), (200, 2)]);
    let c = conf("save 100 1\nsave \"\"\nsave 200 2\n");
    assert_eq!(c.save, [(200, 2)], "save \"\" clears what came before");
    let c = conf("save \"\"\n");
    assert!(c.save.is_empty());
    let c = conf("bind 127.0.0.1\nbind ::1 -10.0.0.1\n");
    assert_eq!(c.bind, ["::1", "-10.0.0.1"], "bind: last line wins, as in Redis");
    let c = conf("client-output-buffer-limit normal 1mb 2mb 3\nclient-output-buffer-limit pubsub 4 5 6\n");
    assert_eq!(
        c.client_output_buffer_limit.normal,
        ObufLimit {
            hard: 1 << 20,
            soft: 2 << 20,
            soft_seconds: 3
        }
    );
    assert_eq!(
        c.client_output_buffer_limit.replica,
        ClientOutputBufferLimits::default().replica
    );
    assert_eq!(
        c.client_output_buffer_limit.pubsub,
        ObufLimit {
            hard: 4,
            soft: 5,
            soft_seconds: 6
        }
    );
    let c = conf("hash-max-ziplist-entries 10\nhash-max-listpack-entries 20\n");
    assert_eq!(
        c.hash_max_listpack_entries, 20,
        "an alias and its name are one parameter"
    );
}

#[test]
fn aliases_and_odd_values() {
    let c = conf("lua-time-limit 100\nslave-read-only no\nlist-max-ziplist-size 5\n");
    assert_eq!(c.busy_reply_threshold, 100);
    assert_eq!(c.list_max_listpack_size, 5);
    assert_eq!(get1(&c, "replica-read-only"), "no");
    assert_eq!(get1(&c, "slave-read-only"), "no");
    // hz is clamped to 1..=500, as Redis does.
    assert_eq!(conf("hz 2000").hz, 500);
    assert_eq!(conf("hz 0").hz, 1);
    // Deprecated directives Redis still swallows.
    conf("list-max-ziplist-entries 512\nlist-max-ziplist-value 64\nlua-replicate-commands yes\n");
    assert_eq!(conf("unixsocketperm 700").value_of("unixsocketperm").unwrap(), "700");
    assert_eq!(
        conf("shutdown-on-sigterm nosave now")
            .value_of("shutdown-on-sigterm")
            .unwrap(),
        "nosave now"
    );
    assert_eq!(conf("shards 4\nplacement unpinned").shards, Some(4));
    assert_eq!(conf("placement PINNED").placement, Placement::Pinned);
    assert_eq!(conf("shards auto").shards, None);
    assert_eq!(conf("oom-score-adj relative").value_of("oom-score-adj").unwrap(), "yes");
    assert_eq!(conf("supervised auto").supervised, Supervised::Auto);
    assert_eq!(conf("replicaof no one").replicaof, None);
}

#[test]
fn errors_point_at_the_line() {
    let e = conf_err("port 7400\nfoo bar\n");
    assert_eq!(e.line, Some((2, "foo bar".to_string())));
    assert_eq!(e.reason, "Bad directive or wrong number of arguments");
    let shown = ConfigError::Fatal(e).to_string();
    assert_eq!(
        shown,
        format!(
            "*** FATAL CONFIG FILE ERROR (basalt {VERSION}) ***\n\
             Reading the configuration file, at line 2\n\
             >>> 'foo bar'\n\
             Bad directive or wrong number of arguments"
        )
    );

    let cases: &[(&str, &str)] = &[
        ("port", "wrong number of arguments"),
        ("port 1 2", "wrong number of arguments"),
        ("port \"7400", "Unbalanced quotes in configuration line"),
        ("port \"74\"00", "Unbalanced quotes in configuration line"),
        ("port x", "argument couldn't be parsed into an integer"),
        ("port 010", "argument couldn't be parsed into an integer"),
        ("port 70000", "argument must be between 0 and 65535 inclusive"),
        ("maxmemory 1xb", "argument must be a memory value"),
        ("maxmemory -1", "argument must be a memory value"),
        (
            "maxmemory-clients 101%",
            "percentage argument must be less or equal to 100",
        ),
        ("maxmemory-clients x", "argument must be a memory or percent value"),
        (
            "proto-max-bulk-len 1",
            "argument must be between 1048576 and 9223372036854775807 inclusive",
        ),
        (
            "hash-max-listpack-entries -1",
            "argument must be between 0 and 9223372036854775807 inclusive",
        ),
        ("maxclients 0", "argument must be between 1 and 4294967295 inclusive"),
        ("unixsocketperm 8", "argument couldn't be parsed as an octal number"),
        ("unixsocketperm 1000", "argument must be between 0 and 777 inclusive"),
        ("appendonly maybe", "argument must be 'yes' or 'no'"),
        (
            "appendfsync sometimes",
            "argument(s) must be one of the following: everysec, always, no",
        ),
        (
            "maxmemory-policy lru",
            "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, \
             volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction",
        ),
        (
            "shutdown-on-sigint save nosave",
            "shutdown options SAVE and NOSAVE can't be used simultaneously",
        ),
        ("save 1", "Invalid save parameters"),
        ("save 0 1", "Invalid save parameters"),
        ("save 1 -1", "Invalid save parameters"),
        ("save 1 x", "Invalid save parameters"),
        (
            "client-output-buffer-limit normal 1 2",
            "Wrong number of arguments in buffer limit configuration.",
        ),
        (
            "client-output-buffer-limit master 1 2 3",
            "Invalid client class specified in buffer limit configuration.",
        ),
        (
            "client-output-buffer-limit normal 1 2 -3",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
        (
            "notify-keyspace-events Q",
            "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.",
        ),
        ("notify-keyspace-events", "wrong number of arguments"),
        ("oom-score-adj-values 1 2", "wrong number of arguments"),
        (
            "oom-score-adj-values 1 2 9999",
            "Invalid oom-score-adj-values, elements must be between -2000 and 2000.",
        ),
        (
            "latency-tracking-info-percentiles 101",
            "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]",
        ),
        (
            "latency-tracking-info-percentiles abc",
            "Invalid latency-tracking-info-percentiles parameters",
        ),
        ("dbfilename a/b.rdb", "dbfilename can't be a path, just a filename"),
        ("appendfilename \"\"", "appendfilename can't be empty"),
        ("appenddirname a/b", "appenddirname can't be a path, just a dirname"),
        ("replicaof localhost x", "Invalid master port"),
        ("replicaof localhost", "wrong number of arguments"),
        (
            "cluster-announce-hostname a_b",
            "Hostnames may only contain alphanumeric characters, hyphens or dots",
        ),
        (
            "proc-title-template {nope}",
            "template format is invalid or contains unknown variables",
        ),
        (
            "bind 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17",
            "Too many bind addresses specified.",
        ),
        (
            "shards 0x",
            "argument must be 'auto' or a number of shards between 1 and 1024",
        ),
        (
            "placement sometimes",
            "argument(s) must be one of the following: auto, pinned, unpinned",
        ),
        ("sentinel monitor x", "Sentinel mode is not supported by basalt"),
        ("mymodule.opt", "Module config specified without value"),
    ];
    for (line, reason) in cases {
        let e = conf_err(&format!("# first\n{line}\n"));
        assert_eq!(e.reason, *reason, "{line}");
        assert_eq!(e.line, Some((2, line.to_string())), "{line}");
    }
    assert!(conf_err("bind localhost")
        .reason
        .starts_with("Invalid bind address 'localhost'"));
}

#[test]
fn refused_options_name_the_option_and_the_fix() {
    let e = conf_err("tls-key-file-pass x\nport 1\ndaemonize yes\n");
    assert_eq!(
        e.line,
        Some((1, "tls-key-file-pass x".to_string())),
        "the first refused line is reported"
    );
    let e = conf_err("port 1\ndaemonize yes\n");
    assert_eq!(e.line, Some((2, "daemonize yes".to_string())));
    assert!(
        e.reason
            .starts_with("'daemonize' is set to 'yes', which basalt does not support"),
        "{}",
        e.reason
    );
    assert!(e.reason.contains("set 'daemonize no'"), "{}", e.reason);
    // A refused option at its default is fine, and a later line can bring it back.
    conf("daemonize no\n");
    conf("daemonize yes\ndaemonize no\n");
    conf("supervised auto\n");
    conf("tls-port 0\ncluster-enabled no\nmin-replicas-to-write 0\nshutdown-on-sigterm nosave\n");

    for (line, needle) in [
        ("replicaof 10.0.0.1 6379", "replica"),
        ("slaveof 10.0.0.1 6379", "replica"),
        ("cluster-enabled yes", "cluster"),
        ("tls-key-file-pass secret", "encrypted private keys"),
        ("unixsocket /tmp/redis.sock", "unix"),
        ("aclfile /etc/users.acl", "ACL"),
        ("min-replicas-to-write 1", "replicas"),
        ("supervised systemd", "supervised no"),
        ("shutdown-on-sigterm save", "snapshot"),
    ] {
        let e = conf_err(&format!("{line}\n"));
        assert_eq!(e.line, Some((1, line.to_string())), "{line}");
        assert!(e.reason.contains(needle), "{line}: {}", e.reason);
        let name = line.split(' ').next().unwrap();
        let name = if name == "slaveof" { "replicaof" } else { name };
        assert!(
            e.reason.starts_with(&format!("'{name}' is set to")),
            "{line}: {}",
            e.reason
        );
    }
    for (line, needle) in [
        ("rename-command CONFIG \"\"", "rename-command"),
        ("user alice on >pw ~* +@all", "ACL users"),
        ("loadmodule /x/mod.so", "modules"),
        ("mymodule.opt 1", "modules"),
    ] {
        let e = conf_err(&format!("{line}\n"));
        assert_eq!(e.line, Some((1, line.to_string())), "{line}");
        assert!(e.reason.contains(needle), "{line}: {}", e.reason);
    }
}

#[test]
fn include_files() {
    let d = scratch("include");
    std::fs::write(d.join("base.conf"), "port 7001\nmaxmemory 1mb\n").unwrap();
    std::fs::create_dir(d.join("conf.d")).unwrap();
    std::fs::write(d.join("conf.d/b.conf"), "maxmemory 3mb\n").unwrap();
    std::fs::write(d.join("conf.d/a.conf"), "maxmemory 2mb\ninclude nested.conf\n").unwrap();
    std::fs::write(d.join("nested.conf"), "hz 20\n").unwrap();
    std::fs::write(d.join("conf.d/.hidden.conf"), "hz 30\n").unwrap();
    let main = format!(
        "dir {}\ninclude base.conf\nport 7002\ninclude {}/conf.d/*.conf\ninclude {}/none/*.conf\n",
        d.display(),
        d.display(),
        d.display()
    );
    let c = conf(&main);
    assert_eq!(c.port, 7002, "lines after an include win");
    assert_eq!(c.maxmemory, 3 << 20, "globbed includes load in sorted order");
    assert_eq!(c.hz, 20, "nested includes, relative to dir; dot files not globbed");

    // An error inside an included file names that file and its line.
    std::fs::write(d.join("bad.conf"), "port 1\nnonsense here\n").unwrap();
    let e = conf_err(&format!("dir {}\ninclude bad.conf\n", d.display()));
    assert_eq!(e.file, Some(d.join("bad.conf")));
    assert_eq!(e.line, Some((2, "nonsense here".into())));
    let shown = ConfigError::Fatal(e).to_string();
    assert!(
        shown.contains(&format!(
            "Reading the configuration file {}, at line 2",
            d.join("bad.conf").display()
        )),
        "{shown}"
    );

    // A missing include is fatal at the include line; a loop stops.
    let e = conf_err(&format!("dir {}\n\ninclude missing.conf\n", d.display()));
    assert_eq!(e.line, Some((3, "include missing.conf".into())));
    assert_eq!(e.reason, "No such file or directory");
    std::fs::write(d.join("loop.conf"), "include loop.conf\n").unwrap();
    let e = conf_err(&format!("dir {}\ninclude loop.conf\n", d.display()));
    assert!(e.reason.contains("nesting"), "{}", e.reason);
    let _ = std::fs::remove_dir_all(&d);
}

// ---- CONFIG GET --------------------------------------------------------------------------------

#[test]
fn get_formats_each_type() {
    let mut c = conf(
        "maxmemory 1gb\nappendonly yes\nappendfsync always\nloglevel WARNING\nrequirepass \"s p\"\n\
         save 900 1\nsave 300 10\nclient-output-buffer-limit normal 1mb 2k 3\nbind 127.0.0.1 -::1\n\
         notify-keyspace-events Kx\nmaxmemory-clients 5%\nunixsocketperm 755\nslowlog-log-slower-than -1\n",
    );
    assert_eq!(get1(&c, "maxmemory"), "1073741824");
    assert_eq!(get1(&c, "appendonly"), "yes");
    assert_eq!(get1(&c, "appendfsync"), "always");
    assert_eq!(get1(&c, "loglevel"), "warning");
    assert_eq!(get1(&c, "requirepass"), "s p");
    assert_eq!(get1(&c, "save"), "900 1 300 10");
    assert_eq!(
        get1(&c, "client-output-buffer-limit"),
        "normal 1048576 2000 3 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    );
    assert_eq!(get1(&c, "bind"), "127.0.0.1 -::1");
    assert_eq!(get1(&c, "notify-keyspace-events"), "xK");
    assert_eq!(get1(&c, "maxmemory-clients"), "5%");
    assert_eq!(get1(&c, "unixsocketperm"), "755");
    assert_eq!(get1(&c, "slowlog-log-slower-than"), "-1");
    assert_eq!(get1(&c, "replicaof"), "");
    assert_eq!(get1(&c, "latency-tracking-info-percentiles"), "50 99 99.9");
    assert_eq!(get1(&c, "oom-score-adj-values"), "0 200 800");
    assert_eq!(get1(&c, "shards"), "auto");
    set(
        &mut c,
        &[
            ("save", ""),
            ("notify-keyspace-events", "KEA"),
            ("maxmemory", "18446744073709551615"),
        ],
    )
    .unwrap();
    assert_eq!(get1(&c, "save"), "");
    assert_eq!(get1(&c, "notify-keyspace-events"), "AKE");
    assert_eq!(get1(&c, "maxmemory"), "18446744073709551615");
    set(&mut c, &[("notify-keyspace-events", "Egm$lshzxetdn")]).unwrap();
    assert_eq!(
        get1(&c, "notify-keyspace-events"),
        "AEm",
        "Redis prints all classes as A, dropping n"
    );
    set(&mut c, &[("notify-keyspace-events", "Kgn")]).unwrap();
    assert_eq!(get1(&c, "notify-keyspace-events"), "gnK");
}

#[test]
fn get_patterns_names_and_aliases() {
    let c = Config::default();
    // A plain name answers under the spelling asked, once.
    assert_eq!(c.get(&[b"PORT"]), [("PORT".to_string(), "6379".to_string())]);
    assert_eq!(c.get(&[b"hz", b"HZ", b"hz", b"maxmemory-policy"]).len(), 2);
    assert_eq!(
        c.get(&[b"lua-time-limit"]),
        [("lua-time-limit".to_string(), "5000".to_string())]
    );
    assert!(c.get(&[b"nope"]).is_empty());
    // Globs match names and aliases, case-insensitively, under their own names.
    let mut names: Vec<String> = c.get(&[b"*-max-*-entries"]).into_iter().map(|(k, _)| k).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "hash-max-listpack-entries",
            "hash-max-ziplist-entries",
            "set-max-intset-entries",
            "set-max-listpack-entries",
            "zset-max-listpack-entries",
            "zset-max-ziplist-entries"
        ]
    );
    let mut names: Vec<String> = c.get(&[b"LIST-MAX-*"]).into_iter().map(|(k, _)| k).collect();
    names.sort();
    assert_eq!(names, ["list-max-listpack-size", "list-max-ziplist-size"]);
    assert_eq!(c.get(&[b"p?rt"]), [("port".to_string(), "6379".to_string())]);
    assert_eq!(
        c.get(&[b"[p]ort", b"port"]).len(),
        1,
        "an exact name after a glob match is not repeated"
    );
    assert_eq!(c.get(&[b"port", b"por*"]).len(), 1);
    assert_eq!(
        c.get(&[b"*"]).len(),
        PARAMS.len() + PARAMS.iter().filter(|p| p.alias.is_some()).count()
    );
}

// ---- CONFIG SET --------------------------------------------------------------------------------

#[test]
fn set_changes_values() {
    let mut c = Config::default();
    set(
        &mut c,
        &[
            ("maxmemory", "2mb"),
            ("maxmemory-policy", "ALLKEYS-LRU"),
            ("appendonly", "YES"),
        ],
    )
    .unwrap();
    assert_eq!(c.maxmemory, 2 << 20);
    assert_eq!(c.maxmemory_policy, MaxmemoryPolicy::AllkeysLru);
    assert!(c.appendonly);
    set(&mut c, &[("save", "100 1 200 2 100 3")]).unwrap();
    assert_eq!(c.save, [(100, 1), (200, 2), (100, 3)], "CONFIG SET replaces the rules");
    set(&mut c, &[("client-output-buffer-limit", "replica 1 2 3")]).unwrap();
    assert_eq!(
        c.client_output_buffer_limit.replica,
        ObufLimit {
            hard: 1,
            soft: 2,
            soft_seconds: 3
        }
    );
    set(&mut c, &[("client-output-buffer-limit", "")]).unwrap();
    set(&mut c, &[("hz", "1000")]).unwrap();
    assert_eq!(c.hz, 500);
    set(&mut c, &[("requirepass", "secret")]).unwrap();
    assert_eq!(c.requirepass.as_deref(), Some(&b"secret"[..]));
    set(&mut c, &[("requirepass", "")]).unwrap();
    assert_eq!(c.requirepass, None);
    set(&mut c, &[("lua-time-limit", "1"), ("busy-reply-threshold", "2")]).unwrap();
    assert_eq!(
        c.busy_reply_threshold, 2,
        "a name and its alias are not duplicates, as in Redis"
    );
    set(&mut c, &[("io-threads-do-reads", "no")]).unwrap_err();
    set(&mut c, &[("shutdown-on-sigint", "nosave now")]).unwrap();
    assert_eq!(get1(&c, "shutdown-on-sigint"), "nosave now");
    set(&mut c, &[("latency-tracking-info-percentiles", "1e1 50.5")]).unwrap();
    assert_eq!(get1(&c, "latency-tracking-info-percentiles"), "10 50.5");
    set(&mut c, &[("maxmemory-clients", "0%")]).unwrap();
    assert_eq!(get1(&c, "maxmemory-clients"), "0");
}

#[test]
fn set_error_texts_match_redis() {
    let mut c = Config::default();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("foo", "bar")], "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"),
        (&[("daemonize", "no")], "ERR CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config"),
        (&[("DATABASES", "3")], "ERR CONFIG SET failed (possibly related to argument 'DATABASES') - can't set immutable config"),
        (&[("dir", "/tmp")], "ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected config"),
        (&[("dbfilename", "x")], "ERR CONFIG SET failed (possibly related to argument 'dbfilename') - can't set protected config"),
        (&[("maxmemory", "-1")], "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value"),
        (&[("appendonly", "maybe")], "ERR CONFIG SET failed (possibly related to argument 'appendonly') - argument must be 'yes' or 'no'"),
        (
            &[("appendfsync", "sometimes")],
            "ERR CONFIG SET failed (possibly related to argument 'appendfsync') - argument(s) must be one of the following: everysec, always, no",
        ),
        (&[("hz", "abc")], "ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an integer"),
        (&[("hz", "-5")], "ERR CONFIG SET failed (possibly related to argument 'hz') - argument must be between 0 and 2147483647 inclusive"),
        (&[("timeout", "3"), ("timeout", "4")], "ERR CONFIG SET failed (possibly related to argument 'timeout') - duplicate parameter"),
        (&[("timeout", "3"), ("TIMEOUT", "4")], "ERR CONFIG SET failed (possibly related to argument 'TIMEOUT') - duplicate parameter"),
        // Precedence: the first unknown name wins over later problems, but not over earlier ones.
        (&[("maxmemory", "1mb"), ("foo", "bar")], "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"),
        (&[("foo", "1"), ("daemonize", "no")], "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"),
        (&[("hz", "5"), ("DAEMONIZE", "no"), ("foo", "1")], "ERR CONFIG SET failed (possibly related to argument 'DAEMONIZE') - can't set immutable config"),
        (&[("Lua-Time-Limit", "x")], "ERR CONFIG SET failed (possibly related to argument 'lua-time-limit') - argument couldn't be parsed into an integer"),
        (&[("save", "100 1  200 2")], "ERR CONFIG SET failed (possibly related to argument 'save') - Invalid save parameters"),
        (&[("save", "\"100\" 1")], "ERR CONFIG SET failed (possibly related to argument 'save') - Invalid save parameters"),
        (
            &[("shutdown-on-sigint", "")],
            "ERR CONFIG SET failed (possibly related to argument 'shutdown-on-sigint') - argument(s) must be one of the following: default, save, nosave, now, force",
        ),
        (
            &[("client-output-buffer-limit", "slave 1 2 3 pubsub x 2 3")],
            "ERR CONFIG SET failed (possibly related to argument 'client-output-buffer-limit') - Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
        (&[("replicaof", "no one")], "ERR CONFIG SET failed (possibly related to argument 'replicaof') - can't set immutable config"),
        (&[("port", "7000")], "ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config"),
    ];
    for (pairs, expected) in cases {
        assert_eq!(set(&mut c, pairs).unwrap_err(), *expected, "{pairs:?}");
    }
    assert_eq!(c, Config::default(), "no failed CONFIG SET changed anything");

    let e = set(&mut c, &[("tls-key-file-pass", "secret")]).unwrap_err();
    assert!(
        e.starts_with(
            "ERR CONFIG SET failed (possibly related to argument 'tls-key-file-pass') - not supported by basalt:"
        ),
        "{e}"
    );
    set(&mut c, &[("tls-key-file-pass", "")]).unwrap();
    let e = set(&mut c, &[("tls-port", "6380")]).unwrap_err();
    assert_eq!(
        e,
        "ERR CONFIG SET failed (possibly related to argument 'tls-port') - can't set immutable config"
    );
    let e = set(&mut c, &[("min-slaves-to-write", "2")]).unwrap_err();
    assert!(e.contains("argument 'min-slaves-to-write'"), "{e}");
}

#[test]
fn set_is_all_or_nothing() {
    let mut c = Config::default();
    let e = set(&mut c, &[("maxmemory", "1mb"), ("maxmemory-policy", "bad")]).unwrap_err();
    assert!(e.contains("'maxmemory-policy'"), "{e}");
    assert_eq!(c.maxmemory, 0, "the good first pair was not applied");
    let e = set(&mut c, &[("proto-max-bulk-len", "2mb"), ("hz", "x")]).unwrap_err();
    assert!(e.contains("'hz'"));
    assert_eq!(c.proto_max_bulk_len, 512 << 20);
    set(
        &mut c,
        &[
            ("save", "1 1"),
            ("client-output-buffer-limit", "normal 1 1 1 master 1 1 1"),
        ],
    )
    .unwrap_err();
    assert_eq!(c, Config::default());
}

#[test]
fn protected_configs_follow_enable_protected_configs() {
    let d = scratch("protected");
    let mut c = conf("enable-protected-configs local\n");
    let pairs: &[(&[u8], &[u8])] = &[(b"dir", d.as_os_str().as_encoded_bytes()), (b"dbfilename", b"x.rdb")];
    assert!(c
        .set_as(pairs, false)
        .unwrap_err()
        .contains("can't set protected config"));
    c.set_as(pairs, true).unwrap();
    assert_eq!(c.dir, std::fs::canonicalize(&d).unwrap());
    assert_eq!(c.dbfilename, "x.rdb");
    let mut c = conf("enable-protected-configs yes\n");
    let e = set(&mut c, &[("dir", "/nonexistent-basalt-dir")]).unwrap_err();
    assert_eq!(
        e,
        "ERR CONFIG SET failed (possibly related to argument 'dir') - No such file or directory"
    );
    let e = set(&mut c, &[("dbfilename", "a/b")]).unwrap_err();
    assert!(e.ends_with("dbfilename can't be a path, just a filename"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn shared_config_generation() {
    let s = SharedConfig::new(Config::default());
    let g0 = s.generation();
    s.set(&[(b"maxmemory", b"1mb")]).unwrap();
    assert_eq!(s.read().maxmemory, 1 << 20);
    let g1 = s.generation();
    assert_ne!(g0, g1);
    s.set(&[(b"maxmemory", b"bad")]).unwrap_err();
    assert_eq!(s.generation(), g1, "a failed set changes nothing");
    assert_eq!(s.get(&[b"maxmemory"])[0].1, "1048576");
    assert_eq!(
        s.rewrite().unwrap_err(),
        "ERR The server is running without a config file"
    );
}

#[test]
fn sensitive_and_warnings() {
    assert!(is_sensitive(b"requirepass"));
    assert!(is_sensitive(b"MASTERAUTH"));
    assert!(!is_sensitive(b"port"));
    let c = conf("io-threads 4\nactivedefrag yes\nlazyfree-lazy-eviction no\nsupervised auto\n");
    let w = c.warnings();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w[0].starts_with("'io-threads 4' is accepted but has no effect"),
        "{w:?}"
    );
    assert!(w.iter().any(|l| l.starts_with("'activedefrag yes'")));
    assert!(w.iter().any(|l| l.contains("supervised auto")));
}

// ---- CONFIG REWRITE ----------------------------------------------------------------------------

#[test]
fn rewrite_in_place_like_redis() {
    let old = "# My config\n\
               port 7402\n\
               pidfile /tmp/x.pid   \n\
               \n\
               \n\
               # memory\n\
               maxmemory 1000\n\
               stream-node-max-bytes 4096\n\
               hash-max-ziplist-entries 512\n\
               slave-read-only yes\n\
               save 100 1\n\
               save 200 2\n\
               lazyfree-lazy-user-del no\n\
               include extra.conf\n\
               bogus-directive 1\n\
               notify-keyspace-events \"\"\n\
               client-output-buffer-limit pubsub 32mb 8mb 60\n";
    let mut c = conf(
        &old.replace("include extra.conf\n", "")
            .replace("bogus-directive 1\n", ""),
    );
    set(
        &mut c,
        &[
            ("maxmemory", "2mb"),
            ("hz", "20"),
            ("requirepass", "p\"w d"),
            ("notify-keyspace-events", "KEA"),
            ("save", "300 3"),
            ("client-output-buffer-limit", "pubsub 1mb 2mb 3"),
            ("lazyfree-lazy-user-del", "yes"),
            ("replica-read-only", "no"),
        ],
    )
    .unwrap();
    let new = String::from_utf8(rewrite::render(&c, old.as_bytes())).unwrap();
    let dir = c.dir.to_string_lossy().into_owned();
    let expected = format!(
        "# My config\n\
         port 7402\n\
         pidfile \"/tmp/x.pid\"\n\
         \n\
         # memory\n\
         maxmemory 2mb\n\
         stream-node-max-bytes 4kb\n\
         hash-max-ziplist-entries 512\n\
         replica-read-only no\n\
         save 300 3\n\
         \n\
         lazyfree-lazy-user-del yes\n\
         include extra.conf\n\
         # ??? bogus-directive 1\n\
         notify-keyspace-events \"AKE\"\n\
         client-output-buffer-limit pubsub 1mb 2mb 3\n\
         \n\
         # Generated by CONFIG REWRITE\n\
         requirepass \"p\\\"w d\"\n\
         hz 20\n\
         dir \"{dir}\"\n\
         latency-tracking-info-percentiles 50 99 99.9\n"
    );
    assert_eq!(new, expected);

    // A second rewrite of the result changes nothing.
    let again = String::from_utf8(rewrite::render(&c, new.as_bytes())).unwrap();
    assert_eq!(again, new);
}

#[test]
fn rewrite_round_trip_through_a_file() {
    let d = scratch("rewrite");
    let path = d.join("redis.conf");
    std::fs::write(&path, "port 7000\nsave 60 1\nbind 127.0.0.1\n").unwrap();
    let a = from_args(&[path.to_str().unwrap(), "--dir", d.to_str().unwrap()]).unwrap();
    assert_eq!(a.config_file.as_deref(), Some(path.as_path()));
    let mut b = a.clone();
    set(
        &mut b,
        &[
            ("maxmemory", "3gb"),
            ("appendonly", "yes"),
            ("appendfsync", "always"),
            ("requirepass", "line\nbreak \"quoted\" \u{e9}"),
            ("save", ""),
            ("client-output-buffer-limit", "normal 1 2 3 replica 4kb 5mb 6"),
            ("notify-keyspace-events", "Kx"),
            ("maxmemory-clients", "7%"),
            ("lazyfree-lazy-expire", "yes"),
            ("slowlog-log-slower-than", "-1"),
            ("list-max-listpack-size", "-5"),
            ("latency-tracking-info-percentiles", ""),
            ("oom-score-adj-values", "1 2 3"),
        ],
    )
    .unwrap();
    b.rewrite(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("port 7000\nsave \"\"\nbind 127.0.0.1\n"), "{text}");
    let leftovers: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind: {leftovers:?}");
    let reread = from_args(&[path.to_str().unwrap()]).unwrap();
    assert_eq!(reread, b, "{text}");
    // Rewriting an unchanged configuration is stable.
    reread.rewrite(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn rewrite_creates_a_missing_file_and_shared_config_rewrites() {
    let d = scratch("rewrite-new");
    let path = d.join("new.conf");
    let s = SharedConfig::new(Config {
        config_file: Some(path.clone()),
        ..Config::default()
    });
    s.set(&[(b"maxmemory", b"10mb")]).unwrap();
    s.rewrite().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# Generated by CONFIG REWRITE\n"), "{text}");
    assert!(text.contains("\nmaxmemory 10mb\n"), "{text}");
    assert!(text.contains("\nsave 3600 1\nsave 300 100\nsave 60 10000\n"), "{text}");
    assert!(!text.contains("bind"), "default bind is not written");
    let reread = from_args(&[path.to_str().unwrap()]).unwrap();
    assert_eq!(reread.maxmemory, 10 << 20);
    assert_eq!(reread.save, Config::default().save);
    let _ = std::fs::remove_dir_all(&d);
}

// ---- The command line ----------------------------------------------------------------------------

#[test]
fn args_help_and_version() {
    match from_args(&["--help"]) {
        Err(e @ ConfigError::Help(_)) => {
            assert_eq!(e.exit_code(), 1, "like redis-server --help");
            assert!(!e.to_stdout());
            assert!(e
                .to_string()
                .starts_with("Usage: basalt [/path/to/redis.conf] [options] [-]"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(from_args(&["-h"]), Err(ConfigError::Help(_))));
    match from_args(&["-v"]) {
        Err(e @ ConfigError::Version(_)) => {
            assert_eq!((e.exit_code(), e.to_stdout()), (0, true));
            assert!(e.to_string().starts_with(&format!("basalt server v={VERSION} ")), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(from_args(&["--version"]), Err(ConfigError::Version(_))));
    // Only as the first argument, like Redis.
    assert!(from_args(&["--port", "7000", "--version"]).is_err());
}

#[test]
fn args_redis_examples() {
    // redis-server --port 7777 --replicaof 127.0.0.1 8888: replication is refused.
    match from_args(&["--port", "7777", "--replicaof", "127.0.0.1", "8888"]) {
        Err(ConfigError::Fatal(f)) => {
            assert_eq!(f.line, Some((3, "replicaof \"127.0.0.1\" \"8888\"".to_string())));
            assert!(f.reason.contains("replication is not supported"), "{}", f.reason);
        }
        other => panic!("{other:?}"),
    }
    let c = from_args(&["--port", "7777"]).unwrap();
    assert_eq!(c.port, 7777);
    assert_eq!(c.config_file, None);

    let c = from_args(&["--save", "", "--appendonly", "yes"]).unwrap();
    assert!(c.save.is_empty());
    assert!(c.appendonly);
    let c = from_args(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--requirepass",
        "p@ss w\"rd --x",
    ])
    .unwrap();
    assert_eq!(c.requirepass.as_deref(), Some(&b"p@ss w\"rd --x"[..]));
    let c = from_args(&["--requirepass", "--starts-with-dashes"]).unwrap();
    assert_eq!(c.requirepass.as_deref(), Some(&b"--starts-with-dashes"[..]));
    // --save with no value means save "".
    assert!(from_args(&["--port", "7000", "--save"]).unwrap().save.is_empty());
    let c = from_args(&["--save", "--appendonly", "yes"]).unwrap();
    assert!(c.save.is_empty() && c.appendonly);
    // Several values and several words in one argument.
    assert_eq!(
        from_args(&["--save", "100", "1", "200", "2"]).unwrap().save,
        [(100, 1), (200, 2)]
    );
    assert_eq!(from_args(&["--port 6380"]).unwrap().port, 6380);
    assert_eq!(
        from_args(&["--shards", "4", "--placement", "unpinned"]).unwrap().shards,
        Some(4)
    );

    match from_args(&["--port", "7400", "--foo", "bar"]) {
        Err(e @ ConfigError::Fatal(_)) => assert_eq!(
            e.to_string(),
            format!(
                "*** FATAL CONFIG FILE ERROR (basalt {VERSION}) ***\nReading the configuration file, at line 3\n\
                 >>> 'foo \"bar\"'\nBad directive or wrong number of arguments"
            )
        ),
        other => panic!("{other:?}"),
    }
    match from_args(&["--port", "7400", "--maxmemory"]) {
        Err(ConfigError::Fatal(f)) => {
            assert_eq!(f.line, Some((3, "maxmemory".to_string())));
            assert_eq!(f.reason, "wrong number of arguments");
        }
        other => panic!("{other:?}"),
    }
    match from_args(&["--dir", "/nonexistent-basalt-dir"]) {
        Err(ConfigError::Fatal(f)) => assert_eq!(f.reason, "No such file or directory"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn args_config_file_then_options() {
    let d = scratch("args");
    let path = d.join("redis.conf");
    std::fs::write(&path, "port 6379\nmaxmemory 1mb\nsave 100 1\n").unwrap();
    let p = path.to_str().unwrap();
    let c = from_args(&[p, "--port", "6380", "--save", "200", "2"]).unwrap();
    assert_eq!(c.port, 6380, "options win over the file");
    assert_eq!(c.maxmemory, 1 << 20);
    assert_eq!(
        c.save,
        [(100, 1), (200, 2)],
        "--save adds to the file's save lines, as in Redis"
    );
    assert_eq!(c.config_file.as_deref(), Some(path.as_path()));

    // Lines from the options are numbered after the file's (plus the joining newline).
    match from_args(&[p, "--hz", "x"]) {
        Err(ConfigError::Fatal(f)) => assert_eq!(f.line, Some((5, "hz \"x\"".to_string()))),
        other => panic!("{other:?}"),
    }

    // `-` reads more configuration from standard input, between the file and the options.
    let mut stdin: &[u8] = b"maxmemory 5mb\nport 1234\n";
    let c = Config::from_args_with_stdin(&args(&[p, "--port", "4321", "-"]), &mut stdin).unwrap();
    assert_eq!((c.maxmemory, c.port), (5 << 20, 4321));
    let mut stdin: &[u8] = b"port 1111\n";
    assert_eq!(
        Config::from_args_with_stdin(&args(&["-"]), &mut stdin).unwrap().port,
        1111
    );

    match from_args(&["/nonexistent-basalt.conf"]) {
        Err(e @ ConfigError::CantOpen { .. }) => {
            assert_eq!(
                e.to_string(),
                "Fatal error, can't open config file '/nonexistent-basalt.conf': No such file or directory"
            );
            assert_eq!(e.exit_code(), 1);
        }
        other => panic!("{other:?}"),
    }
    // The log file is opened (created) at start, relative to dir.
    let c = from_args(&["--dir", d.to_str().unwrap(), "--logfile", "basalt.log"]).unwrap();
    assert_eq!(c.logfile, "basalt.log");
    assert!(d.join("basalt.log").exists());
    match from_args(&["--logfile", "/nonexistent-basalt-dir/x.log"]) {
        Err(ConfigError::Fatal(f)) => assert_eq!(f.reason, "Can't open the log file: No such file or directory"),
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&d);
}

// ---- Debian's redis.conf -------------------------------------------------------------------------

const DEBIAN_CONF: &str = include_str!("../../tests/fixtures/redis-7.0.conf");

#[test]
fn debian_redis_conf_refuses_daemonize_yes() {
    let e = conf_err(DEBIAN_CONF);
    let (n, text) = e.line.clone().unwrap();
    assert_eq!(text, "daemonize yes");
    assert_eq!(DEBIAN_CONF.lines().nth(n - 1).unwrap().trim(), "daemonize yes");
    assert!(e.reason.contains("set 'daemonize no'"), "{}", e.reason);
}

#[test]
fn debian_redis_conf_loads_with_daemonize_no() {
    let c = conf(&format!("{DEBIAN_CONF}\ndaemonize no\n"));
    assert!(!c.daemonize);
    assert_eq!(c.bind, ["127.0.0.1", "-::1"]);
    assert_eq!(c.port, 6379);
    assert_eq!(
        c.pidfile.as_deref(),
        Some(std::path::Path::new("/run/redis/redis-server.pid"))
    );
    assert_eq!(c.logfile, "/var/log/redis/redis-server.log");
    assert_eq!(c.dir, PathBuf::from("/var/lib/redis"));
    assert_eq!(
        c.save,
        [(3600, 1), (300, 100), (60, 10000)],
        "no save line: Redis's defaults"
    );
    assert_eq!(c.client_output_buffer_limit, ClientOutputBufferLimits::default());
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // Every parameter the file mentions is at Redis's default, except those Debian changes.
    let d = Config::default();
    let changed: Vec<&str> = PARAMS
        .iter()
        .filter(|p| table::format_value(&c, p) != table::format_value(&d, p))
        .map(|p| p.name)
        .collect();
    assert_eq!(changed, ["bind", "pidfile", "logfile", "dir"]);
}

#[test]
fn every_directive_commented_in_debian_conf_is_known() {
    // Uncommenting an example line must never give "Bad directive": each `# name value` line
    // whose name is a Redis parameter (per CONFIG GET *) must be one of ours too.
    let mut seen = 0;
    for line in DEBIAN_CONF.lines() {
        let Some(rest) = line.strip_prefix("# ") else {
            continue;
        };
        let Some(name) = rest.split(' ').next() else {
            continue;
        };
        if REDIS_DEFAULTS.iter().any(|(n, _)| *n == name) {
            assert!(lookup(name.as_bytes()).is_some(), "{name}");
            seen += 1;
        }
    }
    assert!(seen > 50, "{seen}");
}

/// `save "3600 1 300 100"` (one quoted word, as `--save "3600 1 300 100"` on the command
/// line becomes) holds the pairs, as redis-server reads it.
#[test]
fn save_pairs_in_one_word() {
    let c = conf("save \"3600 1 300 100\"\n");
    assert_eq!(get1(&c, "save"), "3600 1 300 100");
    let c = conf("save \"60 5\"\nsave 10 1\n");
    assert_eq!(get1(&c, "save"), "60 5 10 1");
}
