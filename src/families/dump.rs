//! DUMP and RESTORE: a value as a self-checking RDB payload (the value's RDB encoding, the
//! 2-byte RDB version, a CRC-64: cluster.c's createDumpPayload), byte for byte what Redis
//! 7.0 produces, and any payload Redis 7.0 or 7.2 produces read back.

use crate::command::{acl, flags::*, Args, CommandSpec, Exec, KeySpec, Multi, NotifyFlags, Run};
use crate::error::CmdError;
use crate::persist::rdb;
use crate::store::value::itoa_buf;
use crate::store::Entry;

const BAD_PAYLOAD: CmdError = CmdError::Static("ERR DUMP payload version or checksum are wrong");
const BAD_FORMAT: CmdError = CmdError::Static("ERR Bad data format");
const BUSYKEY: CmdError = CmdError::Static("BUSYKEY Target key name already exists.");
const BAD_TTL: CmdError = CmdError::Static("ERR Invalid TTL value, must be >= 0");
const BAD_IDLE: CmdError = CmdError::Static("ERR Invalid IDLETIME value, must be >= 0");
const BAD_FREQ: CmdError = CmdError::Static("ERR Invalid FREQ value, must be >= 0 and <= 255");

/// `DUMP key`
fn dump(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (now, touch) = (ex.now, ex.touch());
    match ex.db(&a[1]).lookup(&a[1], now, touch) {
        Some(e) => {
            let p = rdb::dump_payload(&e.value, rdb::compression());
            ex.out.bulk(&p);
        }
        None => ex.out.null(),
    }
    Ok(())
}

/// `RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]`
///
/// Checks in Redis's order: options, an existing key, the TTL, the payload's checksum, its
/// contents. IDLETIME sets the access time under an LRU policy, FREQ the counter under LFU.
fn restore(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq) = (None::<i64>, None::<i64>);
    let mut i = 4;
    while i < a.len() {
        let more = i + 1 < a.len();
        if a.is(i, "REPLACE") {
            replace = true;
        } else if a.is(i, "ABSTTL") {
            absttl = true;
        } else if a.is(i, "IDLETIME") && more && freq.is_none() {
            let v = a.int(i + 1)?;
            if v < 0 {
                return Err(BAD_IDLE);
            }
            idle = Some(v);
            i += 1;
        } else if a.is(i, "FREQ") && more && idle.is_none() {
            let v = a.int(i + 1)?;
            if !(0..=255).contains(&v) {
                return Err(BAD_FREQ);
            }
            freq = Some(v);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    let (key, now) = (&a[1], ex.now);
    // Redis looks the key up only without REPLACE (with it, dbDelete later): no access to
    // count for an LFU counter, no WATCH touch if the payload is then refused, and a stored
    // key past its deadline is deleted by the REPLACE, not expired.
    if !replace && ex.db(key).lookup_write(key, now).is_some() {
        return Err(BUSYKEY);
    }
    let ttl = a.int(2)?;
    if ttl < 0 {
        return Err(BAD_TTL);
    }
    let payload = &a[3];
    if !rdb::verify_payload(payload) {
        return Err(BAD_PAYLOAD);
    }
    let value = rdb::restore_payload(payload, &ex.enc).map_err(|_| BAD_FORMAT)?;
    let deleted = replace && ex.db(key).remove(key).is_some();
    let at = match ttl {
        0 => None,
        t if absttl => Some(t as u64),
        t => Some(now.saturating_add(t as u64)),
    };
    if at.is_some_and(|at| at <= now) {
        // Already expired: nothing is created (the old key is gone when REPLACE removed it).
        if deleted {
            ex.dirty += 1;
            ex.notify(NotifyFlags::GENERIC, "del", key);
            ex.propagate(&[b"DEL", key]);
        }
        ex.out.ok();
        return Ok(());
    }
    let db = ex.db(key);
    let clock = db.lru_clock;
    let lru = match (idle, freq) {
        // objectSetLRUOrLFU: under LFU, FREQ sets the counter (IDLETIME is ignored); else
        // IDLETIME sets the access time `idle` seconds ago, on the wrapping clock.
        (_, Some(freq)) if crate::store::db::lfu().is_some() => (db.lfu_minutes << 8) | freq as u32,
        (_, _) if crate::store::db::lfu().is_some() => db.fresh_stamp(),
        (Some(idle), _) => {
            let abs = clock as i64 - idle;
            (if abs < 0 {
                (crate::store::db::LRU_CLOCK_MAX as i64 - idle + clock as i64).max(0)
            } else {
                abs
            }) as u32
        }
        (None, _) => clock,
    };
    db.insert_entry(key, Entry { value, lru }, at);
    ex.dirty += 1;
    ex.notify(NotifyFlags::GENERIC, "restore", key);
    if ex.effects.is_enabled() {
        // As Redis: a relative TTL is propagated as an absolute one, with ABSTTL.
        let mut buf = itoa_buf::Buf::new();
        let mut effect: Vec<&[u8]> = a.as_slice().iter().map(|b| &b[..]).collect();
        effect[0] = b"RESTORE";
        let add_absttl = at.is_some() && !absttl;
        if add_absttl {
            effect[2] = buf.format(at.unwrap_or_default() as i64);
            effect.push(b"ABSTTL");
        }
        ex.propagate(&effect);
    }
    ex.out.ok();
    Ok(())
}

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "dump", arity: 2, flags: READONLY, acl: acl::KEYSPACE, key_specs: &[KeySpec::one(1, &["RO", "ACCESS"])], since: "2.6.0", summary: "Returns a serialized representation of the value stored at a key.", complexity: "O(1) to access the key and additional O(N*M) to serialize it, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1).", syntax: "key", tips: &["nondeterministic_output"], run: Run::Keyed(dump, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "restore", arity: -4, flags: WRITE | DENYOOM, acl: acl::KEYSPACE | acl::DANGEROUS, key_specs: &[KeySpec::one(1, &["OW", "UPDATE"])], since: "2.6.0", summary: "Creates a key from the serialized representation of a value.", complexity: "O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1). However for sorted set values the complexity is O(N*M*log(N)) because inserting values into sorted sets is O(log(N)).", syntax: "key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]", run: Run::Keyed(restore, Multi::Atomic), ..CommandSpec::DEFAULT },
];

#[cfg(test)]
mod tests {
    use crate::families::testkit::Kit;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// redis-server 7.0's `DUMP` of "hello".
    const HELLO: &str = "000568656c6c6f0a006372df766534200a";

    #[test]
    fn dump_and_restore() {
        let mut k = Kit::new();
        assert_eq!(k.run("DUMP nokey"), "$-1\r\n");
        k.run("SET s hello");
        let p = k.exec(&[b"DUMP", b"s"]);
        let mut want = format!("${}\r\n", HELLO.len() / 2).into_bytes();
        want.extend(hex(HELLO));
        want.extend_from_slice(b"\r\n");
        assert_eq!(p, want);
        let payload = hex(HELLO);
        assert_eq!(k.exec(&[b"RESTORE", b"t", b"0", &payload]), b"+OK\r\n");
        assert_eq!(k.run("GET t"), "$5\r\nhello\r\n");
        assert_eq!(
            k.exec(&[b"RESTORE", b"t", b"0", &payload]),
            b"-BUSYKEY Target key name already exists.\r\n"
        );
        k.effects();
        assert_eq!(k.exec(&[b"RESTORE", b"t", b"5000", &payload, b"REPLACE"]), b"+OK\r\n");
        assert_eq!(k.run("PTTL t"), ":5000\r\n");
        let eff = k.effects();
        assert!(
            eff.contains("$7\r\nRESTORE\r\n$1\r\nt\r\n$13\r\n1700000005000\r\n"),
            "{eff}"
        );
        assert!(eff.ends_with("$7\r\nREPLACE\r\n$6\r\nABSTTL\r\n"), "{eff}");
        assert_eq!(
            k.exec(&[b"RESTORE", b"u", b"1700000009000", &payload, b"ABSTTL"]),
            b"+OK\r\n"
        );
        assert_eq!(k.run("PTTL u"), ":9000\r\n");
        // An absolute TTL in the past: nothing created; with REPLACE the old key goes.
        assert_eq!(
            k.exec(&[b"RESTORE", b"u", b"1", &payload, b"ABSTTL", b"REPLACE"]),
            b"+OK\r\n"
        );
        assert_eq!(k.run("EXISTS u"), ":0\r\n");
        assert!(k.effects().contains("DEL"));
        assert_eq!(
            k.exec(&[b"RESTORE", b"i", b"0", &payload, b"IDLETIME", b"100"]),
            b"+OK\r\n"
        );
        assert_eq!(k.exec(&[b"RESTORE", b"f", b"0", &payload, b"FREQ", b"5"]), b"+OK\r\n");
    }

    #[test]
    fn errors_as_redis() {
        let mut k = Kit::new();
        let p = hex(HELLO);
        let cases: Vec<(Vec<&[u8]>, &str)> = vec![
            (vec![b"k", b"-1", &p], "-ERR Invalid TTL value, must be >= 0\r\n"),
            (vec![b"k", b"x", &p], "-ERR value is not an integer or out of range\r\n"),
            (
                vec![b"k", b"0", b"garbage"],
                "-ERR DUMP payload version or checksum are wrong\r\n",
            ),
            (
                vec![b"k", b"0", &p, b"IDLETIME", b"-1"],
                "-ERR Invalid IDLETIME value, must be >= 0\r\n",
            ),
            (
                vec![b"k", b"0", &p, b"FREQ", b"256"],
                "-ERR Invalid FREQ value, must be >= 0 and <= 255\r\n",
            ),
            (
                vec![b"k", b"0", &p, b"FREQ", b"1", b"IDLETIME", b"1"],
                "-ERR syntax error\r\n",
            ),
            (vec![b"k", b"0", &p, b"IDLETIME"], "-ERR syntax error\r\n"),
            (vec![b"k", b"0", &p, b"NOPE"], "-ERR syntax error\r\n"),
            (
                vec![b"k", b"0", &p, b"IDLETIME", b"x"],
                "-ERR value is not an integer or out of range\r\n",
            ),
        ];
        for (args, want) in cases {
            let mut argv: Vec<&[u8]> = vec![b"RESTORE"];
            argv.extend(args);
            assert_eq!(String::from_utf8_lossy(&k.exec(&argv)), want);
        }
        // A well-framed payload with a broken body.
        let mut bad = vec![0u8, 5, b'a'];
        bad.extend_from_slice(&10u16.to_le_bytes());
        let crc = crate::persist::rdb::crc64::crc64(0, &bad);
        bad.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(k.exec(&[b"RESTORE", b"k", b"0", &bad]), b"-ERR Bad data format\r\n");
    }
}
