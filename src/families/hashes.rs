//! Hashes: HSET HSETNX HGET HMSET HMGET HDEL HLEN HSTRLEN HEXISTS HINCRBY HINCRBYFLOAT HKEYS
//! HVALS HGETALL HRANDFIELD HSCAN, with Redis 7.2's replies (RESP2 and RESP3), error texts,
//! encodings (`listpack` / `hashtable`, see [`crate::store::hash`]) and propagated effects.

use crate::command::args::int_in_range;
use crate::command::{acl, flags::*, Args, CommandSpec, Exec, KeySpec, Multi, Run};
use crate::config::glob::glob_match;
use crate::config::NotifyFlags;
use crate::error::CmdError;
use crate::resp::{LongDouble, Proto, Reply};
use crate::store::hash::{Elem, Hash};
use crate::store::value::{itoa_buf, parse_canonical_i64};
use crate::store::Value;

// ---- shard operations ----------------------------------------------------------------

/// A read lookup of the hash at `key` (a keyspace hit or miss) with the reply writer
/// borrowed beside it, so replies are written straight from the stored entries.
fn read<'e>(ex: &'e mut Exec<'_>, key: &[u8]) -> Result<(Option<&'e mut Hash>, &'e mut Reply), CmdError> {
    let (now, touch, db) = (ex.now, ex.touch(), ex.db);
    let h = match ex.ks.db(db, key).lookup(key, now, touch) {
        None => None,
        Some(e) => Some(e.value.as_hash().ok_or(CmdError::WrongType)?),
    };
    Ok((h, &mut *ex.out))
}

fn new_hash() -> Value {
    Value::Hash(Hash::new())
}

fn reply_elem(out: &mut Reply, e: Elem<'_>) {
    match e {
        Elem::Bytes(b) => out.bulk(b),
        Elem::Int(n) => out.bulk_int(n),
    }
}

/// A field/value pair inside an HRANDFIELD WITHVALUES reply: RESP3 nests each pair in an
/// array of two, RESP2 keeps the reply flat.
fn pair_header(out: &mut Reply) {
    if out.proto == Proto::Resp3 {
        out.array(2);
    }
}

/// The length of a reply of `n` pairs (see [`pair_header`]).
fn pairs_len(out: &mut Reply, n: usize) {
    match out.proto {
        Proto::Resp2 => out.array(n * 2),
        Proto::Resp3 => out.array(n),
    }
}

/// Redis's string2ld, for HINCRBYFLOAT's increment and the stored value: an embedded NUL
/// makes the string invalid (strtold would stop there, and Redis checks the whole length
/// was consumed), which [`LongDouble::parse`] lets through.
fn parse_long_double(b: &[u8]) -> Option<LongDouble> {
    if memchr::memchr(0, b).is_some() {
        return None;
    }
    LongDouble::parse(b)
}

// ---- handlers ------------------------------------------------------------------------

fn hset_generic(ex: &mut Exec<'_>, a: &Args, name: &str) -> Result<(), CmdError> {
    if a.len() % 2 == 1 {
        return Err(CmdError::WrongArity(name.into()));
    }
    let enc = ex.enc;
    let args = &a.as_slice()[2..];
    let h = ex.write_or_create(&a[1], Value::as_hash, new_hash)?;
    h.prepare_write(args.len() / 2, args.iter().map(|b| &b[..]), &enc);
    let mut created = 0;
    for kv in args.chunks_exact(2) {
        created += h.set(&kv[0], &kv[1], &enc) as i64;
    }
    if name == "hset" {
        ex.out.int(created);
    } else {
        ex.out.ok();
    }
    ex.dirty += args.len() as u64 / 2;
    ex.propagate_as_is(a);
    ex.notify(NotifyFlags::HASH, "hset", &a[1]);
    Ok(())
}

/// `HSET key field value [field value ...]`: the number of fields created.
fn hset(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    hset_generic(ex, a, "hset")
}

/// `HMSET key field value [field value ...]`: `+OK`.
fn hmset(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    hset_generic(ex, a, "hmset")
}

/// `HSETNX key field value`: `:1` if the field was set, `:0` if it existed (and then the
/// hash is left exactly as it was, encoding included).
fn hsetnx(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let enc = ex.enc;
    let (field, value) = (&a[2], &a[3]);
    let h = ex.write_or_create(&a[1], Value::as_hash, new_hash)?;
    if h.contains(field) {
        ex.out.int(0);
        return Ok(());
    }
    h.prepare_write(1, [field, value].into_iter(), &enc);
    h.set(field, value, &enc);
    ex.out.int(1);
    ex.dirty += 1;
    ex.propagate_as_is(a);
    ex.notify(NotifyFlags::HASH, "hset", &a[1]);
    Ok(())
}

/// `HGET key field`: the value, or null.
fn hget(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (h, out) = read(ex, &a[1])?;
    match h.and_then(|h| h.get(&a[2])) {
        Some(v) => reply_elem(out, v),
        None => out.null(),
    }
    Ok(())
}

/// `HMGET key field [field ...]`: one value (or null) per field; a missing key is an
/// empty hash.
fn hmget(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (h, out) = read(ex, &a[1])?;
    let fields = &a.as_slice()[2..];
    out.array(fields.len());
    for f in fields {
        match h.as_ref().and_then(|h| h.get(f)) {
            Some(v) => reply_elem(out, v),
            None => out.null(),
        }
    }
    Ok(())
}

/// `HDEL key field [field ...]`: the number of fields removed; the key goes with its
/// last field.
fn hdel(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let key = &a[1];
    let Some(h) = ex.write(key, Value::as_hash)? else {
        ex.out.int(0);
        return Ok(());
    };
    let mut deleted = 0;
    for f in &a.as_slice()[2..] {
        if h.remove(f) {
            deleted += 1;
            if h.is_empty() {
                break;
            }
        }
    }
    if deleted > 0 {
        ex.notify(NotifyFlags::HASH, "hdel", key);
        if ex.remove_if_empty(key) {
            ex.notify(NotifyFlags::GENERIC, "del", key);
        }
        ex.dirty += deleted;
        ex.propagate_as_is(a);
    }
    ex.out.int(deleted as i64);
    Ok(())
}

/// `HLEN key`
fn hlen(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (h, out) = read(ex, &a[1])?;
    out.int(h.map_or(0, |h| h.len()) as i64);
    Ok(())
}

/// `HSTRLEN key field`: the length of the value, 0 if there is none.
fn hstrlen(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (h, out) = read(ex, &a[1])?;
    out.int(h.and_then(|h| h.get(&a[2])).map_or(0, |v| v.len()) as i64);
    Ok(())
}

/// `HEXISTS key field`
fn hexists(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (h, out) = read(ex, &a[1])?;
    out.int(h.is_some_and(|h| h.contains(&a[2])) as i64);
    Ok(())
}

/// `HINCRBY key field increment`: the new value. The field must hold a canonical integer
/// ("hash value is not an integer"); overflow is refused.
fn hincrby(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let incr = a.int(3)?;
    let enc = ex.enc;
    let field = &a[2];
    let h = ex.write_or_create(&a[1], Value::as_hash, new_hash)?;
    let old = match h.get(field) {
        None => 0,
        Some(Elem::Int(n)) => n,
        Some(Elem::Bytes(b)) => parse_canonical_i64(b).ok_or(CmdError::Static("ERR hash value is not an integer"))?,
    };
    let new = old.checked_add(incr).ok_or(CmdError::Overflow)?;
    let mut buf = itoa_buf::Buf::new();
    h.set(field, buf.format(new), &enc);
    ex.out.int(new);
    ex.dirty += 1;
    ex.propagate_as_is(a);
    ex.notify(NotifyFlags::HASH, "hincrby", &a[1]);
    Ok(())
}

/// `HINCRBYFLOAT key field increment`: the new value, computed in x87 long double and
/// formatted as Redis does (see [`LongDouble`]). Propagated as `HSET key field <result>`.
fn hincrbyfloat(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let incr = parse_long_double(&a[3]).ok_or(CmdError::NotFloat)?;
    if !incr.is_finite() {
        return Err(CmdError::Static("ERR value is NaN or Infinity"));
    }
    let enc = ex.enc;
    let (key, field) = (&a[1], &a[2]);
    let h = ex.write_or_create(key, Value::as_hash, new_hash)?;
    let old = match h.get(field) {
        None => LongDouble::ZERO,
        Some(Elem::Int(n)) => LongDouble::from_i64(n),
        Some(Elem::Bytes(b)) => parse_long_double(b).ok_or(CmdError::Static("ERR hash value is not a float"))?,
    };
    let sum = old + incr;
    if !sum.is_finite() {
        return Err(CmdError::Static("ERR increment would produce NaN or Infinity"));
    }
    let mut text = Vec::with_capacity(24);
    sum.format_human(&mut text);
    h.set(field, &text, &enc);
    ex.out.bulk(&text);
    ex.dirty += 1;
    ex.propagate(&[b"HSET", key, field, &text]);
    ex.notify(NotifyFlags::HASH, "hincrbyfloat", key);
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Fields,
    Values,
    Both,
}

fn getall_generic(ex: &mut Exec<'_>, a: &Args, part: Part) -> Result<(), CmdError> {
    let (h, out) = read(ex, &a[1])?;
    let n = h.as_ref().map_or(0, |h| h.len());
    if part == Part::Both {
        out.map(n);
    } else {
        out.array(n);
    }
    if let Some(h) = h {
        for (f, v) in h.iter() {
            if part != Part::Values {
                reply_elem(out, f);
            }
            if part != Part::Fields {
                reply_elem(out, v);
            }
        }
    }
    Ok(())
}

/// `HGETALL key`: a map of fields to values.
fn hgetall(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    getall_generic(ex, a, Part::Both)
}

/// `HKEYS key`
fn hkeys(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    getall_generic(ex, a, Part::Fields)
}

/// `HVALS key`
fn hvals(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    getall_generic(ex, a, Part::Values)
}

/// `HRANDFIELD key [count [WITHVALUES]]`
///
/// Without a count: one random field (null if the key is missing). A positive count:
/// that many distinct fields (the whole hash if it is smaller); a negative count: that
/// many fields, repeats allowed. WITHVALUES: RESP2 a flat field, value, ... array; RESP3
/// an array of [field, value] pairs.
fn hrandfield(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    if a.len() >= 3 {
        let l = int_in_range(&a[2], -i64::MAX, i64::MAX)?;
        if a.len() > 4 || (a.len() == 4 && !a.is(3, "WITHVALUES")) {
            return Err(CmdError::Syntax);
        }
        let withvalues = a.len() == 4;
        if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
            return Err(CmdError::Static("ERR value is out of range"));
        }
        return hrandfield_count(ex, &a[1], l, withvalues);
    }
    let mut rng = Rng(ex.rand());
    let (h, out) = read(ex, &a[1])?;
    match h.and_then(|h| h.random(&mut || rng.next())) {
        Some((f, _)) => reply_elem(out, f),
        None => out.null(),
    }
    Ok(())
}

/// A generator seeded from `Exec::rand` (the handlers hold borrows of the keyspace while
/// drawing, so they cannot call back into the Exec).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0 | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn hrandfield_count(ex: &mut Exec<'_>, key: &[u8], l: i64, withvalues: bool) -> Result<(), CmdError> {
    let mut rng = Rng(ex.rand());
    let (h, out) = read(ex, key)?;
    let Some(h) = h else {
        out.array(0);
        return Ok(());
    };
    let count = l.unsigned_abs() as usize;
    if count == 0 {
        out.array(0);
        return Ok(());
    }
    let emit = |out: &mut Reply, f: Elem<'_>, v: Elem<'_>| {
        if withvalues {
            pair_header(out);
        }
        reply_elem(out, f);
        if withvalues {
            reply_elem(out, v);
        }
    };
    let size = h.len();
    if l < 0 || count == 1 {
        // Repeats allowed, in random order.
        if withvalues {
            pairs_len(out, count);
        } else {
            out.array(count);
        }
        if h.is_packed() {
            let all: Vec<(Elem<'_>, Elem<'_>)> = h.iter().collect();
            for _ in 0..count {
                let (f, v) = all[rng.below(all.len())];
                emit(out, f, v);
            }
        } else {
            for _ in 0..count {
                if let Some((f, v)) = h.random(&mut || rng.next()) {
                    emit(out, f, v);
                }
            }
        }
        return Ok(());
    }
    let n = count.min(size);
    if withvalues {
        pairs_len(out, n);
    } else {
        out.array(n);
    }
    if count >= size {
        for (f, v) in h.iter() {
            emit(out, f, v);
        }
    } else if h.is_packed() || count * 3 > size {
        // Selection sampling over the pairs: each is kept with probability
        // needed / remaining, so exactly `count` distinct pairs, in storage order.
        let mut needed = count;
        let mut left = size;
        for (f, v) in h.iter() {
            if needed == 0 {
                break;
            }
            if rng.below(left) < needed {
                emit(out, f, v);
                needed -= 1;
            }
            left -= 1;
        }
    } else {
        // A big hash and a small count: draw random pairs, skipping repeats.
        let mut seen = ahash::AHashSet::with_capacity(count);
        while seen.len() < count {
            if let Some((f, v)) = h.random(&mut || rng.next()) {
                if seen.insert(f.to_vec()) {
                    emit(out, f, v);
                }
            }
        }
    }
    Ok(())
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count]`
///
/// A listpack answers everything at once with cursor 0; a hash table is scanned as Redis's
/// dictScan (every field present for the whole iteration is returned at least once).
/// As Redis: the cursor is checked first, then the key, then the options (so a missing
/// key answers an empty scan whatever the options say).
fn hscan(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let cursor = crate::command::args::parse_scan_cursor(&a[2]).ok_or(CmdError::Static("ERR invalid cursor"))?;
    let (h, out) = read(ex, &a[1])?;
    let Some(h) = h else {
        out.array(2);
        out.bulk(b"0");
        out.array(0);
        return Ok(());
    };
    let mut count: u64 = 10;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 3;
    while i < a.len() {
        let has_value = a.len() - i >= 2;
        if a.is(i, "COUNT") && has_value {
            let n = a.int(i + 1)?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            count = n as u64;
        } else if a.is(i, "MATCH") && has_value {
            pattern = if &a[i + 1] == b"*" { None } else { Some(&a[i + 1]) };
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let mut found: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut keep = |f: Elem<'_>, v: Elem<'_>| {
        let matched = match pattern {
            None => true,
            Some(p) => f.with_bytes(|f| glob_match(p, f, false)),
        };
        if matched {
            found.push((f.to_vec(), v.to_vec()));
        }
    };
    let mut next = cursor;
    if h.is_packed() {
        next = h.scan(0, &mut keep);
    } else {
        // Redis counts field and value as two elements, and bounds the empty buckets
        // visited at ten per element wanted.
        let want = count.saturating_mul(2);
        let mut budget = want.saturating_mul(10);
        let mut visited = 0u64;
        loop {
            next = h.scan(next, |f, v| {
                visited += 2;
                keep(f, v);
            });
            if next == 0 || budget == 0 || visited >= want {
                break;
            }
            budget -= 1;
        }
    }
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.array(found.len() * 2);
    for (f, v) in &found {
        out.bulk(f);
        out.bulk(v);
    }
    Ok(())
}

// ---- the table -----------------------------------------------------------------------

const RO: &[&str] = &["RO"];
const RO_ACCESS: &[&str] = &["RO", "ACCESS"];
const RW_UPDATE: &[&str] = &["RW", "UPDATE"];
const RW_INSERT: &[&str] = &["RW", "INSERT"];
const RW_DELETE: &[&str] = &["RW", "DELETE"];
const RW_ACCESS_UPDATE: &[&str] = &["RW", "ACCESS", "UPDATE"];
const HASH: u32 = acl::HASH;
const ORDER: &[&str] = &["nondeterministic_output_order"];
const NONDET: &[&str] = &["nondeterministic_output"];

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "hset", arity: -4, flags: WRITE | DENYOOM | FAST, acl: HASH, key_specs: &[KeySpec::one(1, RW_UPDATE)], group: "hash", since: "2.0.0", summary: "Creates or modifies the value of a field in a hash.", complexity: "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs.", syntax: "key field value [field value ...]", run: Run::Keyed(hset, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "hsetnx", arity: 4, flags: WRITE | DENYOOM | FAST, acl: HASH, key_specs: &[KeySpec::one(1, RW_INSERT)], group: "hash", since: "2.0.0", summary: "Sets the value of a field in a hash only when the field doesn't exist.", syntax: "key field value", run: Run::Keyed(hsetnx, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "hget", arity: 3, flags: READONLY | FAST, acl: HASH, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "hash", since: "2.0.0", summary: "Returns the value of a field in a hash.", syntax: "key field", run: Run::Keyed(hget, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "hmset", arity: -4, flags: WRITE | DENYOOM | FAST, acl: HASH, key_specs: &[KeySpec::one(1, RW_UPDATE)], group: "hash", since: "2.0.0", summary: "Sets the values of multiple fields.", complexity: "O(N) where N is the number of fields being set.", syntax: "key field value [field value ...]", run: Run::Keyed(hmset, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "hmget", arity: -3, flags: READONLY | FAST, acl: HASH, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "hash", since: "2.0.0", summary: "Returns the values of all fields in a hash.", complexity: "O(N) where N is the number of fields being requested.", syntax: "key field [field ...]", run: Run::Keyed(hmget, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "hdel", arity: -3, flags: WRITE | FAST, acl: HASH, key_specs: &[KeySpec::one(1, RW_DELETE)], group: "hash", since: "2.0.0", summary: "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.", complexity: "O(N) where N is the number of fields to be removed.", syntax: "key field [field ...]", run: Run::Keyed(hdel, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "hlen", arity: 2, flags: READONLY | FAST, acl: HASH, key_specs: &[KeySpec::one(1, RO)], group: "hash", since: "2.0.0", summary: "Returns the number of fields in a hash.", syntax: "key", run: Run::Keyed(hlen, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "hstrlen", arity: 3, flags: READONLY | FAST, acl: HASH, key_specs: &[KeySpec::one(1, RO)], group: "hash", since: "3.2.0", summary: "Returns the length of the value of a field.", syntax: "key field", run: Run::Keyed(hstrlen, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "hexists", arity: 3, flags: READONLY | FAST, acl: HASH, key_specs: &[KeySpec::one(1, RO)], group: "hash", since: "2.0.0", summary: "Determines whether a field exists in a hash.", syntax: "key field", run: Run::Keyed(hexists, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "hincrby", arity: 4, flags: WRITE | DENYOOM | FAST, acl: HASH, key_specs: &[KeySpec::one(1, RW_ACCESS_UPDATE)], group: "hash", since: "2.0.0", summary: "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.", syntax: "key field increment", run: Run::Keyed(hincrby, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "hincrbyfloat", arity: 4, flags: WRITE | DENYOOM | FAST, acl: HASH, key_specs: &[KeySpec::one(1, RW_ACCESS_UPDATE)], group: "hash", since: "2.6.0", summary: "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.", syntax: "key field increment", run: Run::Keyed(hincrbyfloat, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "hkeys", arity: 2, flags: READONLY, acl: HASH, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "hash", since: "2.0.0", summary: "Returns all fields in a hash.", complexity: "O(N) where N is the size of the hash.", syntax: "key", tips: ORDER, run: Run::Keyed(hkeys, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "hvals", arity: 2, flags: READONLY, acl: HASH, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "hash", since: "2.0.0", summary: "Returns all values in a hash.", complexity: "O(N) where N is the size of the hash.", syntax: "key", tips: ORDER, run: Run::Keyed(hvals, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "hgetall", arity: 2, flags: READONLY, acl: HASH, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "hash", since: "2.0.0", summary: "Returns all fields and values in a hash.", complexity: "O(N) where N is the size of the hash.", syntax: "key", tips: ORDER, run: Run::Keyed(hgetall, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "hrandfield", arity: -2, flags: READONLY, acl: HASH, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "hash", since: "6.2.0", summary: "Returns one or more random fields from a hash.", complexity: "O(N) where N is the number of fields returned", syntax: "key [count [WITHVALUES]]", tips: NONDET, run: Run::Keyed(hrandfield, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "hscan", arity: -3, flags: READONLY, acl: HASH, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "hash", since: "2.8.0", summary: "Iterates over fields and values of a hash.", complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.", syntax: "key cursor [MATCH pattern] [COUNT count]", tips: NONDET, run: Run::Keyed(hscan, Multi::Atomic), ..CommandSpec::DEFAULT },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::testkit::Kit;
    use crate::store::{EncodingLimits, Touch};

    fn bulk(s: &str) -> String {
        format!("${}\r\n{}\r\n", s.len(), s)
    }

    fn encoding(k: &mut Kit, key: &str) -> Option<&'static str> {
        let now = k.now;
        k.store.dbs[0]
            .lookup(key.as_bytes(), now, Touch::No)
            .map(|e| e.value.encoding())
    }

    const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

    #[test]
    fn set_get_and_counts() {
        let mut k = Kit::new();
        assert_eq!(k.run("HSET h a 1 b 2 a 3"), ":2\r\n");
        assert_eq!(k.run("HGET h a"), bulk("3"));
        assert_eq!(k.run("HGET h zz"), "$-1\r\n");
        assert_eq!(k.run("HGET nokey a"), "$-1\r\n");
        assert_eq!(k.run("HMSET h c x"), "+OK\r\n");
        assert_eq!(k.run("HLEN h"), ":3\r\n");
        assert_eq!(k.run("HSTRLEN h c"), ":1\r\n");
        assert_eq!(k.run("HSTRLEN h nope"), ":0\r\n");
        assert_eq!(k.run("HEXISTS h b"), ":1\r\n");
        assert_eq!(k.run("HEXISTS h q"), ":0\r\n");
        assert_eq!(k.run("HMGET h a q c"), "*3\r\n$1\r\n3\r\n$-1\r\n$1\r\nx\r\n");
        assert_eq!(
            k.run("HSET h a"),
            "-ERR wrong number of arguments for 'hset' command\r\n"
        );
        assert_eq!(
            k.run("HMSET h a 1 b"),
            "-ERR wrong number of arguments for 'hmset' command\r\n"
        );
        assert_eq!(k.dirty, 4);
        assert_eq!(encoding(&mut k, "h"), Some("listpack"));
        k.run("SET s v");
        assert_eq!(k.run("HSET s a 1"), WRONGTYPE);
        assert_eq!(k.run("HGET s a"), WRONGTYPE);
        assert_eq!(k.run("HMGET s a"), WRONGTYPE);
        assert_eq!(k.run("HLEN s"), WRONGTYPE);
    }

    #[test]
    fn hdel_removes_the_key_with_its_last_field() {
        let mut k = Kit::new();
        k.run("HSET h a 1 b 2");
        k.effects();
        assert_eq!(k.run("HDEL h a zz"), ":1\r\n");
        assert_eq!(k.run("HDEL h zz"), ":0\r\n");
        assert_eq!(k.run("HDEL h b a"), ":1\r\n");
        assert_eq!(k.run("EXISTS h"), ":0\r\n");
        assert_eq!(k.run("HDEL h b"), ":0\r\n");
        let e = k.effects();
        assert!(e.contains("HDEL") && e.matches("HDEL").count() == 2, "{e}");
    }

    #[test]
    fn hsetnx_leaves_existing_fields_and_encoding() {
        let mut k = Kit::new();
        assert_eq!(k.run("HSETNX h a 1"), ":1\r\n");
        let long = "x".repeat(100);
        assert_eq!(k.run(&format!("HSETNX h a {long}")), ":0\r\n");
        assert_eq!(encoding(&mut k, "h"), Some("listpack"));
        assert_eq!(k.run(&format!("HSETNX h b {long}")), ":1\r\n");
        assert_eq!(encoding(&mut k, "h"), Some("hashtable"));
    }

    #[test]
    fn conversion_follows_the_limits() {
        let mut k = Kit::new();
        k.enc = EncodingLimits {
            hash_max_listpack_entries: 4,
            hash_max_listpack_value: 10,
            ..EncodingLimits::default()
        };
        k.run("HSET h a 1 b 2 c 3 d 4");
        assert_eq!(encoding(&mut k, "h"), Some("listpack"));
        k.run("HSET h e 5");
        assert_eq!(encoding(&mut k, "h"), Some("hashtable"));
        k.run("HSET g a 1 a 2 a 3 a 4 a 5");
        assert_eq!(encoding(&mut k, "g"), Some("hashtable"));
        k.run("HINCRBY i 12345678901 1");
        assert_eq!(encoding(&mut k, "i"), Some("hashtable"));
        k.run("HINCRBYFLOAT j f 0.0000001");
        assert_eq!(encoding(&mut k, "j"), Some("listpack"));
        assert_eq!(k.run("HGET i 12345678901"), bulk("1"));
    }

    #[test]
    fn hincrby_rules() {
        let mut k = Kit::new();
        assert_eq!(k.run("HINCRBY h n 5"), ":5\r\n");
        assert_eq!(k.run("HINCRBY h n -10"), ":-5\r\n");
        k.run("HSET h s abc h2 9223372036854775807");
        assert_eq!(k.run("HINCRBY h s 1"), "-ERR hash value is not an integer\r\n");
        assert_eq!(
            k.run("HINCRBY h h2 1"),
            "-ERR increment or decrement would overflow\r\n"
        );
        assert_eq!(
            k.run("HINCRBY h n x"),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(
            k.run("HINCRBY nokey n x"),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(k.run("EXISTS nokey"), ":0\r\n");
        k.effects();
        k.run("HINCRBY h n 1");
        assert!(k.effects().contains("HINCRBY"));
    }

    #[test]
    fn hincrbyfloat_rules_and_propagation() {
        let mut k = Kit::new();
        assert_eq!(k.run("HINCRBYFLOAT h f 0.1"), bulk("0.1"));
        assert_eq!(k.run("HINCRBYFLOAT h f 0.2"), bulk("0.3"));
        // x87 long double, as Redis: 0.3 + 1e3 is not 1000.3.
        assert_eq!(k.run("HINCRBYFLOAT h f 1e3"), bulk("1000.29999999999999999"));
        k.run("HSET h i 10 s abc");
        assert_eq!(k.run("HINCRBYFLOAT h i 1.5"), bulk("11.5"));
        assert_eq!(k.run("HINCRBYFLOAT h s 1"), "-ERR hash value is not a float\r\n");
        assert_eq!(k.run("HINCRBYFLOAT h f inf"), "-ERR value is NaN or Infinity\r\n");
        assert_eq!(k.run("HINCRBYFLOAT nokey f inf"), "-ERR value is NaN or Infinity\r\n");
        assert_eq!(k.run("HINCRBYFLOAT h f abc"), "-ERR value is not a valid float\r\n");
        assert_eq!(
            k.exec(&[b"HINCRBYFLOAT", b"h", b"f", b"1\x00junk"]),
            b"-ERR value is not a valid float\r\n"
        );
        assert_eq!(k.run("EXISTS nokey"), ":0\r\n");
        k.effects();
        assert_eq!(k.run("HINCRBYFLOAT h i 0.5"), bulk("12"));
        let e = k.effects();
        assert!(e.contains("$4\r\nHSET\r\n$1\r\nh\r\n$1\r\ni\r\n$2\r\n12\r\n"), "{e:?}");
    }

    #[test]
    fn getall_shapes() {
        let mut k = Kit::new();
        k.run("HSET h a 1 b x");
        assert_eq!(k.run("HGETALL h"), "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\nx\r\n");
        assert_eq!(k.run("HKEYS h"), "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
        assert_eq!(k.run("HVALS h"), "*2\r\n$1\r\n1\r\n$1\r\nx\r\n");
        assert_eq!(k.run("HGETALL nokey"), "*0\r\n");
        k.proto = Proto::Resp3;
        assert_eq!(k.run("HGETALL h"), "%2\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\nx\r\n");
        assert_eq!(k.run("HGETALL nokey"), "%0\r\n");
    }

    #[test]
    fn hrandfield_counts_and_shapes() {
        let mut k = Kit::new();
        assert_eq!(k.run("HRANDFIELD nokey"), "$-1\r\n");
        assert_eq!(k.run("HRANDFIELD nokey 3"), "*0\r\n");
        k.run("HSET h a 1");
        assert_eq!(k.run("HRANDFIELD h"), bulk("a"));
        assert_eq!(k.run("HRANDFIELD h 0"), "*0\r\n");
        assert_eq!(k.run("HRANDFIELD h -3"), "*3\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n");
        assert_eq!(k.run("HRANDFIELD h 5 WITHVALUES"), "*2\r\n$1\r\na\r\n$1\r\n1\r\n");
        k.proto = Proto::Resp3;
        assert_eq!(
            k.run("HRANDFIELD h -2 withvalues"),
            "*2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n"
        );
        assert_eq!(k.run("HRANDFIELD h 1 x"), "-ERR syntax error\r\n");
        assert_eq!(
            k.run("HRANDFIELD h 4611686018427387904 WITHVALUES"),
            "-ERR value is out of range\r\n"
        );
        assert!(k
            .run("HRANDFIELD h -9223372036854775808")
            .starts_with("-ERR value is out of range, value must"));
        // Distinct fields for positive counts, from both encodings.
        for n in [20usize, 1000] {
            let args: Vec<String> = (0..n).flat_map(|i| [format!("f{i}"), format!("{i}")]).collect();
            k.run(&format!("HSET big{n} {}", args.join(" ")));
            for count in [1usize, 5, n / 2, n - 1, n, n + 5] {
                let r = k.run(&format!("HRANDFIELD big{n} {count}"));
                let mut uniq: Vec<&str> = r.split("\r\n").skip(2).step_by(2).filter(|s| !s.is_empty()).collect();
                let total = uniq.len();
                uniq.sort();
                uniq.dedup();
                assert_eq!(uniq.len(), total, "{n} {count}");
                assert_eq!(total, count.min(n), "{n} {count}");
            }
        }
    }

    #[test]
    fn hscan_packed_and_table() {
        let mut k = Kit::new();
        assert_eq!(k.run("HSCAN nokey 0 COUNT 0"), "*2\r\n$1\r\n0\r\n*0\r\n");
        assert_eq!(k.run("HSCAN nokey x"), "-ERR invalid cursor\r\n");
        k.run("HSET h a 1 b 2 ab 3");
        assert_eq!(
            k.run("HSCAN h 0 MATCH a*"),
            "*2\r\n$1\r\n0\r\n*4\r\n$1\r\na\r\n$1\r\n1\r\n$2\r\nab\r\n$1\r\n3\r\n"
        );
        assert_eq!(k.run("HSCAN h 0 COUNT 0"), "-ERR syntax error\r\n");
        assert_eq!(k.run("HSCAN h 0 TYPE string"), "-ERR syntax error\r\n");
        assert_eq!(
            k.run("HSCAN h 0 COUNT x"),
            "-ERR value is not an integer or out of range\r\n"
        );
        let args: Vec<String> = (0..1000).flat_map(|i| [format!("f{i}"), "v".to_string()]).collect();
        k.run(&format!("HSET t {}", args.join(" ")));
        let mut seen = std::collections::HashSet::new();
        let mut cursor = "0".to_string();
        let mut calls = 0;
        loop {
            let r = k.run(&format!("HSCAN t {cursor} COUNT 7"));
            let parts: Vec<&str> = r.split("\r\n").collect();
            cursor = parts[2].to_string();
            for f in parts[5..].iter().step_by(4) {
                if !f.is_empty() {
                    seen.insert(f.to_string());
                }
            }
            calls += 1;
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 1000);
        assert!(calls > 10, "{calls}");
    }
}
