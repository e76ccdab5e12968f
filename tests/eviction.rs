//! Black-box tests of `maxmemory` eviction: the real binary with `--shards 4`, limits set
//! with CONFIG SET a few MB above what the server holds when the test starts, values of
//! 1 KB written in pipelined batches. Eviction is sampled and approximate (as Redis's), so
//! the assertions are about bounds and classes of keys, with wide margins: memory stays near
//! the limit, writes keep succeeding while something can be evicted, only keys with a TTL
//! go under `volatile-*`, recently read keys survive `allkeys-lru`, and `-OOM` comes exactly
//! when nothing is left to evict.

mod common;

use std::time::Duration;

use common::{poll, Raw, Server, V};

const MB: u64 = 1 << 20;

fn used_memory(r: &mut Raw) -> u64 {
    r.info_field("memory", "used_memory").parse().unwrap()
}

fn evicted_keys(r: &mut Raw) -> u64 {
    r.info_field("stats", "evicted_keys").parse().unwrap()
}

/// Sets `maxmemory` to `extra` bytes above what the server uses now, and the policy.
fn limit(r: &mut Raw, extra: u64, policy: &str) -> u64 {
    let max = used_memory(r) + extra;
    assert_eq!(r.cmd(&["CONFIG", "SET", "maxmemory-policy", policy]).str(), "OK");
    assert_eq!(r.cmd(&["CONFIG", "SET", "maxmemory", &max.to_string()]).str(), "OK");
    max
}

/// SETs `keys` (1 KB values, optionally with EX), pipelined; returns the replies that were
/// not OK.
fn write(r: &mut Raw, keys: &[String], ttl: Option<u64>) -> Vec<V> {
    let value = "v".repeat(1024);
    let ttl = ttl.map(|t| t.to_string());
    let mut failed = Vec::new();
    for chunk in keys.chunks(200) {
        for k in chunk {
            match &ttl {
                Some(t) => r.send(&["SET", k, &value, "EX", t]).unwrap(),
                None => r.send(&["SET", k, &value]).unwrap(),
            }
        }
        for _ in chunk {
            let v = r.read().unwrap();
            if !matches!(&v, V::Simple(s) if s == "OK") {
                failed.push(v);
            }
        }
    }
    failed
}

fn names(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}:{i}")).collect()
}

/// How many of `keys` exist.
fn existing(r: &mut Raw, keys: &[String]) -> usize {
    keys.chunks(500)
        .map(|c| {
            let mut args = vec!["EXISTS"];
            args.extend(c.iter().map(|s| s.as_str()));
            match r.cmd(&args) {
                V::Int(n) => n as usize,
                other => panic!("EXISTS: {other:?}"),
            }
        })
        .sum()
}

/// Waits until the server's memory is back under `max` (the cron evicts while idle).
fn settles_under(r: &mut Raw, max: u64) -> u64 {
    poll(Duration::from_secs(3), || {
        let u = used_memory(r);
        (u <= max).then_some(u)
    })
    .unwrap_or_else(|| panic!("used_memory stays above maxmemory {max}: {}", used_memory(r)))
}

#[test]
fn allkeys_lru_bounds_memory_and_keeps_recently_read_keys() {
    let s = Server::start(&[]);
    let mut r = s.raw();
    let base = used_memory(&mut r);
    let hot = names("hot", 0..200);
    // Old keys, no limit yet, then time for the LRU clock (1 s resolution) to move.
    assert!(write(&mut r, &hot, None).is_empty());
    assert!(write(&mut r, &names("old", 0..6000), None).is_empty());
    // Room for 3,000 more keys of the size these took (whatever the server held before).
    // jemalloc's figure moves with its caches, so the writes below need ~1,000 evictions by
    // this estimate and stay well within the 6,000 old keys even if it is off by half.
    let per_key = (used_memory(&mut r).saturating_sub(base) / 6200).max(1024);
    let max = limit(&mut r, 3000 * per_key, "allkeys-lru");
    assert_eq!(r.cmd(&["CONFIG", "SET", "maxmemory-samples", "10"]).str(), "OK");
    std::thread::sleep(Duration::from_millis(2100));
    for k in &hot {
        assert!(matches!(r.cmd(&["GET", k]), V::Bulk(_)), "{k} before eviction");
    }
    // 4,000 new keys into room for 3,000: the old ones that nobody read since are the ones to
    // go (once they are gone, the hot keys would be older than the new ones).
    let mut peak = 0;
    for batch in 0..4 {
        let failed = write(&mut r, &names(&format!("new{batch}"), 0..1000), None);
        assert!(failed.is_empty(), "writes fail under allkeys-lru: {:?}", &failed[..1]);
        peak = peak.max(used_memory(&mut r));
    }
    assert!(evicted_keys(&mut r) > 0, "writes past the limit evicted nothing");
    assert!(
        peak <= max + 2 * MB,
        "used_memory {peak} went more than 2 MB past maxmemory {max}"
    );
    settles_under(&mut r, max);
    let kept = existing(&mut r, &hot);
    assert!(
        kept >= 190,
        "only {kept} of 200 recently read keys survived allkeys-lru"
    );
}

#[test]
fn allkeys_random_and_lfu_keep_memory_bounded() {
    let s = Server::start(&[]);
    let mut r = s.raw();
    for policy in ["allkeys-random", "allkeys-lfu"] {
        assert_eq!(r.cmd(&["CONFIG", "SET", "maxmemory", "0"]).str(), "OK");
        assert_eq!(r.cmd(&["FLUSHALL"]).str(), "OK");
        std::thread::sleep(Duration::from_millis(300));
        let max = limit(&mut r, 4 * MB, policy);
        let before = evicted_keys(&mut r);
        let failed = write(&mut r, &names(policy, 0..12000), None);
        assert!(failed.is_empty(), "{policy}: {:?}", &failed[..1]);
        assert!(evicted_keys(&mut r) > before, "{policy} evicted nothing");
        settles_under(&mut r, max);
        let dbsize = match r.cmd(&["DBSIZE"]) {
            V::Int(n) => n,
            other => panic!("{other:?}"),
        };
        assert!(dbsize < 12000, "{policy}: all 12000 keys still there");
    }
}

#[test]
fn volatile_policies_evict_only_keys_with_a_ttl_then_refuse_writes() {
    let s = Server::start(&[]);
    let mut r = s.raw();
    for policy in ["volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"] {
        assert_eq!(r.cmd(&["CONFIG", "SET", "maxmemory", "0"]).str(), "OK");
        assert_eq!(r.cmd(&["FLUSHALL"]).str(), "OK");
        std::thread::sleep(Duration::from_millis(300));
        let keep = names("keep", 0..1000);
        assert!(write(&mut r, &keep, None).is_empty());
        let max = limit(&mut r, 4 * MB, policy);
        let before = evicted_keys(&mut r);
        // Keys with a TTL past the limit: they make room for each other.
        let failed = write(&mut r, &names("vol", 0..8000), Some(1000));
        assert!(failed.is_empty(), "{policy}: {:?}", &failed[..1]);
        assert!(evicted_keys(&mut r) > before, "{policy} evicted nothing");
        assert_eq!(existing(&mut r, &keep), 1000, "{policy} evicted a key without a TTL");
        // Keys without a TTL: once the volatile ones are gone, writes are refused.
        let failed = write(&mut r, &names("more", 0..12000), None);
        let first = failed
            .first()
            .unwrap_or_else(|| panic!("{policy}: 12 MB past the limit and no -OOM"));
        assert_eq!(
            first,
            &V::Err("OOM command not allowed when used memory > 'maxmemory'.".into()),
            "{policy}"
        );
        assert_eq!(existing(&mut r, &keep), 1000, "{policy} evicted a key without a TTL");
        assert_eq!(
            existing(&mut r, &names("vol", 0..8000)),
            0,
            "{policy}: volatile keys left at -OOM"
        );
        // Reads and deletes still work, and a delete makes room again.
        assert!(matches!(r.cmd(&["GET", "keep:1"]), V::Bulk(_)));
        let mut del = vec!["DEL".to_string()];
        del.extend(names("more", 0..12000));
        let del: Vec<&str> = del.iter().map(|s| s.as_str()).collect();
        assert!(matches!(r.cmd(&del), V::Int(n) if n > 0));
        let ok = poll(Duration::from_secs(3), || {
            matches!(r.cmd(&["SET", "after", "x"]), V::Simple(_)).then_some(())
        });
        assert!(ok.is_some(), "{policy}: writes still refused after DEL freed memory");
        let _ = max;
    }
}

#[test]
fn lfu_counters_follow_accesses() {
    let s = Server::start(&[]);
    let mut r = s.raw();
    assert!(matches!(r.cmd(&["OBJECT", "FREQ", "nokey"]), V::Nil));
    assert_eq!(r.cmd(&["SET", "k", "v"]).str(), "OK");
    assert!(
        matches!(r.cmd(&["OBJECT", "FREQ", "k"]), V::Err(e) if e.contains("An LFU maxmemory policy is not selected"))
    );
    for (name, value) in [
        ("maxmemory-policy", "allkeys-lfu"),
        ("lfu-log-factor", "0"),
        ("lfu-decay-time", "0"),
    ] {
        assert_eq!(r.cmd(&["CONFIG", "SET", name, value]).str(), "OK");
    }
    assert_eq!(r.cmd(&["SET", "cold", "v"]).str(), "OK");
    assert_eq!(r.cmd(&["SET", "hot", "v"]).str(), "OK");
    for _ in 0..20 {
        r.cmd(&["GET", "hot"]);
    }
    // New keys start at LFU_INIT_VAL (5); with lfu-log-factor 0 every access counts.
    assert_eq!(r.cmd(&["OBJECT", "FREQ", "cold"]), V::Int(5));
    assert_eq!(r.cmd(&["OBJECT", "FREQ", "hot"]), V::Int(25));
    // OBJECT itself does not touch; TYPE does not either (Redis's LOOKUP_NOTOUCH).
    r.cmd(&["TYPE", "hot"]);
    assert_eq!(r.cmd(&["OBJECT", "FREQ", "hot"]), V::Int(25));
    assert!(
        matches!(r.cmd(&["OBJECT", "IDLETIME", "hot"]), V::Err(e) if e.contains("An LFU maxmemory policy is selected"))
    );
}

#[test]
fn lowering_maxmemory_evicts_at_once_and_warns() {
    let s = Server::start(&[]);
    let mut r = s.raw();
    assert!(write(&mut r, &names("k", 0..6000), None).is_empty());
    let used = used_memory(&mut r);
    let max = used - 3 * MB;
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"]).str(),
        "OK"
    );
    assert_eq!(r.cmd(&["CONFIG", "SET", "maxmemory", &max.to_string()]).str(), "OK");
    // Evicted before the reply, on every shard (Redis's updateMaxmemory), not at the next
    // write.
    let now = used_memory(&mut r);
    assert!(
        now <= max + MB,
        "used_memory {now} right after CONFIG SET maxmemory {max}"
    );
    assert!(evicted_keys(&mut r) > 1000);
    assert!(
        s.log_text().contains("is smaller than the current memory usage"),
        "no warning in the log:\n{}",
        s.log_text()
    );
}
