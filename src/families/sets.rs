//! Sets: SADD SREM SCARD SISMEMBER SMISMEMBER SMEMBERS SPOP SRANDMEMBER SMOVE SINTER
//! SINTERCARD SINTERSTORE SUNION SUNIONSTORE SDIFF SDIFFSTORE SSCAN, with Redis 7.2's
//! replies, error texts, encodings (see `store::set`) and propagated effects.
//!
//! Multi-key commands run with every involved shard reserved (`Multi::Atomic`) and look
//! their keys up one at a time: each key is read once (one hit or miss, as Redis), then
//! later passes borrow the stored set again without counting.

use bytes::Bytes;

use crate::command::args::{int_in_range, parse_i64, positive};
use crate::command::Begin;
use crate::command::{acl, flags::*, Args, CommandSpec, Exec, Find, KeySpec, Multi, Run};
use crate::config::glob::glob_match;
use crate::config::NotifyFlags;
use crate::error::CmdError;
use crate::resp::Reply;
use crate::store::set::{Member, Owned, Set};
use crate::store::value::itoa_buf;
use crate::store::Value;

// ---- shard operations ----------------------------------------------------------------

fn reply_member(out: &mut Reply, m: Member<'_>) {
    match m {
        Member::Int(n) => out.bulk_int(n),
        Member::Str(s) => out.bulk(s),
    }
}

/// The set stored at `key`, without counting a hit or touching it (the key was already
/// looked up by this command).
fn peek<'e>(ex: &'e mut Exec<'_>, key: &[u8]) -> Option<&'e Set> {
    match ex.db(key).peek(key) {
        Some(e) => match &e.value {
            Value::Set(s) => Some(s),
            _ => None,
        },
        None => None,
    }
}

/// Looks each key up for reading, in order, as Redis's lookupKeyRead (missing keys are
/// empty sets; the first key of another type fails the command). The sizes.
fn lookup_all(ex: &mut Exec<'_>, keys: &[Bytes]) -> Result<Vec<Option<usize>>, CmdError> {
    let mut sizes = Vec::with_capacity(keys.len());
    for k in keys {
        sizes.push(ex.read(k, Value::as_set)?.map(|s| s.len()));
    }
    Ok(sizes)
}

/// The members of the intersection of `keys`, in the order of the smallest set (Redis
/// sorts the sets by size and walks the first). None when a key is missing. Also the
/// encoding of that smallest set, which decides SINTERSTORE's starting encoding.
fn intersection(ex: &mut Exec<'_>, keys: &[Bytes]) -> Result<Option<(Vec<Owned>, &'static str)>, CmdError> {
    let sizes = lookup_all(ex, keys)?;
    if sizes.iter().any(Option::is_none) {
        return Ok(None);
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| sizes[i]);
    let first = &keys[order[0]];
    let Some(s0) = peek(ex, first) else {
        return Ok(None);
    };
    let enc = s0.encoding();
    let mut cands: Vec<Owned> = s0.iter().map(|m| m.to_owned()).collect();
    for &j in &order[1..] {
        if cands.is_empty() {
            break;
        }
        if keys[j] == *first {
            continue;
        }
        if let Some(s) = peek(ex, &keys[j]) {
            cands.retain(|m| s.contains_member(m.as_member()));
        }
    }
    Ok(Some((cands, enc)))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Diff,
}

/// Redis's sunionDiffGenericCommand: the result built as Redis builds it (a new intset
/// receiving the members, converting as it grows), so its order and encoding match.
fn union_diff(ex: &mut Exec<'_>, keys: &[Bytes], op: SetOp) -> Result<Set, CmdError> {
    let sizes = lookup_all(ex, keys)?;
    let lim = ex.enc;
    let mut dst = Set::new();
    match op {
        SetOp::Union => {
            for (k, size) in keys.iter().zip(&sizes) {
                if size.is_none() {
                    continue;
                }
                if let Some(s) = peek(ex, k) {
                    for m in s.iter() {
                        dst.add_member(m, &lim);
                    }
                }
            }
        }
        SetOp::Diff => {
            let Some(size0) = sizes[0] else {
                return Ok(dst);
            };
            // The same key again (or a missing first key repeated) empties the result.
            if keys[1..].iter().any(|k| *k == keys[0]) {
                return Ok(dst);
            }
            let present: Vec<usize> = (1..keys.len()).filter(|&j| sizes[j].is_some()).collect();
            let algo_one = (size0 as u64 * (present.len() as u64 + 1)) / 2;
            let algo_two: u64 = size0 as u64 + present.iter().map(|&j| sizes[j].unwrap_or(0) as u64).sum::<u64>();
            if algo_one <= algo_two {
                // Walk the first set, keep what no other set has.
                let mut cands: Vec<Owned> = match peek(ex, &keys[0]) {
                    Some(s) => s.iter().map(|m| m.to_owned()).collect(),
                    None => Vec::new(),
                };
                let mut by_size = present.clone();
                by_size.sort_by_key(|&j| std::cmp::Reverse(sizes[j]));
                for j in by_size {
                    if cands.is_empty() {
                        break;
                    }
                    if let Some(s) = peek(ex, &keys[j]) {
                        cands.retain(|m| !s.contains_member(m.as_member()));
                    }
                }
                for m in &cands {
                    dst.add_member(m.as_member(), &lim);
                }
            } else {
                // Copy the first set, remove everything the others have.
                if let Some(s) = peek(ex, &keys[0]) {
                    for m in s.iter() {
                        dst.add_member(m, &lim);
                    }
                }
                for j in present {
                    if dst.is_empty() {
                        break;
                    }
                    if let Some(s) = peek(ex, &keys[j]) {
                        for m in s.iter() {
                            dst.remove_member(m);
                        }
                    }
                }
            }
        }
    }
    Ok(dst)
}

/// Stores a *STORE result: a non-empty set replaces `dst` (TTL cleared), an empty one
/// deletes it. Replies with the size, propagates the command and notifies `event` (or
/// `del`) as Redis does.
fn store_result(ex: &mut Exec<'_>, a: &Args, dst: &[u8], set: Set, event: &str) {
    let n = set.len();
    if n > 0 {
        let now = ex.now;
        ex.db(dst).set_key(dst, Value::Set(set), now);
        ex.dirty += 1;
        ex.propagate_as_is(a);
        ex.notify(NotifyFlags::SET, event, dst);
    } else if ex.db(dst).remove(dst).is_some() {
        // Redis's dbDelete: a destination whose TTL has passed but that is still stored
        // is deleted (`del`), not expired.
        ex.dirty += 1;
        ex.propagate_as_is(a);
        ex.notify(NotifyFlags::GENERIC, "del", dst);
    }
    ex.out.int(n as i64);
}

fn reply_set(out: &mut Reply, s: &Set) {
    out.set(s.len());
    for m in s.iter() {
        reply_member(out, m);
    }
}

// ---- handlers ----------------------------------------------------------------------------

/// `SADD key member [member ...]`
fn sadd(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let key = &a[1];
    let lim = ex.enc;
    let hint = a.len() - 2;
    let set = match ex.write(key, Value::as_set)? {
        Some(s) => {
            s.maybe_convert(hint, &lim);
            s
        }
        None => ex.write_or_create(key, Value::as_set, || Value::Set(Set::create(&a[2], hint, &lim)))?,
    };
    let mut added = 0;
    for m in &a.as_slice()[2..] {
        if set.add(m, &lim) {
            added += 1;
        }
    }
    if added > 0 {
        ex.dirty += added;
        ex.propagate_as_is(a);
        ex.notify(NotifyFlags::SET, "sadd", key);
    }
    ex.out.int(added as i64);
    Ok(())
}

/// `SREM key member [member ...]`
fn srem(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let key = &a[1];
    let Some(set) = ex.write(key, Value::as_set)? else {
        ex.out.int(0);
        return Ok(());
    };
    let mut deleted = 0u64;
    for m in &a.as_slice()[2..] {
        if set.remove(m) {
            deleted += 1;
            if set.is_empty() {
                break;
            }
        }
    }
    if deleted > 0 {
        ex.notify(NotifyFlags::SET, "srem", key);
        if ex.remove_if_empty(key) {
            ex.notify(NotifyFlags::GENERIC, "del", key);
        }
        ex.dirty += deleted;
        ex.propagate_as_is(a);
    }
    ex.out.int(deleted as i64);
    Ok(())
}

/// `SCARD key`
fn scard(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let n = ex.read(&a[1], Value::as_set)?.map_or(0, |s| s.len());
    ex.out.int(n as i64);
    Ok(())
}

/// `SISMEMBER key member`
fn sismember(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let yes = ex.read(&a[1], Value::as_set)?.is_some_and(|s| s.contains(&a[2]));
    ex.out.int(yes as i64);
    Ok(())
}

/// `SMISMEMBER key member [member ...]`
fn smismember(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let set = ex.read(&a[1], Value::as_set)?;
    let found: Vec<bool> = match set {
        Some(s) => a.as_slice()[2..].iter().map(|m| s.contains(m)).collect(),
        None => vec![false; a.len() - 2],
    };
    ex.out.array(found.len());
    for yes in found {
        ex.out.int(yes as i64);
    }
    Ok(())
}

/// `SMEMBERS key`
fn smembers(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let key = &a[1];
    if ex.read(key, Value::as_set)?.is_none() {
        ex.out.set(0);
        return Ok(());
    }
    let db = ex.db;
    let (dbs, out) = (&mut ex.ks, &mut *ex.out);
    if let Some(e) = dbs.db(db, key).peek(key) {
        if let Value::Set(s) = &e.value {
            reply_set(out, s);
        }
    }
    Ok(())
}

/// How many SREM arguments Redis packs into one propagated SREM.
const SPOP_BATCH: usize = 1024;

/// Propagates popped members as `SREM key m...`, in batches.
fn propagate_srem(ex: &mut Exec<'_>, key: &[u8], members: &[Owned]) {
    if !ex.effects.is_enabled() {
        return;
    }
    for chunk in members.chunks(SPOP_BATCH) {
        let bytes: Vec<Vec<u8>> = chunk.iter().map(|m| m.as_member().to_vec()).collect();
        let mut argv: Vec<&[u8]> = Vec::with_capacity(2 + bytes.len());
        argv.push(b"SREM");
        argv.push(key);
        argv.extend(bytes.iter().map(|b| &b[..]));
        ex.propagate(&argv);
    }
}

/// Redis's SPOP_MOVE_STRATEGY_MUL: past this ratio SPOP with a count rebuilds the set
/// from the members that stay.
const SPOP_MOVE_STRATEGY_MUL: u64 = 5;

/// `SPOP key [count]`
fn spop(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    match a.len() {
        2 => spop_one(ex, a),
        3 => spop_count(ex, a),
        _ => Err(CmdError::Syntax),
    }
}

fn spop_one(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let key = &a[1];
    let mut r = rng(ex);
    let Some(set) = ex.write(key, Value::as_set)? else {
        ex.out.null();
        return Ok(());
    };
    let Some(m) = set.pop_random(&mut r) else {
        ex.out.null();
        return Ok(());
    };
    reply_member(ex.out, m.as_member());
    ex.notify(NotifyFlags::SET, "spop", key);
    if ex.remove_if_empty(key) {
        ex.notify(NotifyFlags::GENERIC, "del", key);
    }
    ex.dirty += 1;
    if ex.effects.is_enabled() {
        let mut buf = itoa_buf::Buf::new();
        ex.propagate(&[b"SREM", key, m.as_member().as_bytes(&mut buf)]);
    }
    Ok(())
}

/// A random source for the set operations, drawn from the command's generator.
fn rng(ex: &mut Exec<'_>) -> impl FnMut() -> u64 {
    let mut x = ex.rand() | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn spop_count(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let count = positive(&a[2])? as u64;
    let key = &a[1];
    let lim = ex.enc;
    let mut r = rng(ex);
    let Some(set) = ex.write(key, Value::as_set)? else {
        ex.out.set(0);
        return Ok(());
    };
    if count == 0 {
        ex.out.set(0);
        return Ok(());
    }
    let size = set.len() as u64;
    if count >= size {
        // The whole set, replied as SUNION of it would, then the key goes.
        let mut all = Set::new();
        for m in set.iter() {
            all.add_member(m, &lim);
        }
        reply_set(ex.out, &all);
        ex.db(key).remove(key);
        ex.dirty += size;
        ex.propagate(&[b"DEL", key]);
        ex.notify(NotifyFlags::SET, "spop", key);
        ex.notify(NotifyFlags::GENERIC, "del", key);
        return Ok(());
    }
    let remaining = size - count;
    let popped: Vec<Owned> = if remaining * SPOP_MOVE_STRATEGY_MUL > count {
        (0..count).filter_map(|_| set.pop_random(&mut r)).collect()
    } else {
        // Most of the set goes: move the members that stay to a new set and hand the
        // old one to the client.
        let mut kept: Option<Set> = if matches!(set, Set::Pack(_)) {
            Some(Set::new_listpack())
        } else {
            None
        };
        for _ in 0..remaining {
            let Some(m) = set.pop_random(&mut r) else { break };
            let k = kept.get_or_insert_with(|| match (&*set, &m) {
                (Set::Hash(_), _) | (_, Owned::Str(_)) => Set::new_listpack(),
                _ => Set::new(),
            });
            k.add_member(m.as_member(), &lim);
        }
        let old = std::mem::replace(set, kept.unwrap_or_default());
        old.iter().map(|m| m.to_owned()).collect()
    };
    ex.out.set(popped.len());
    for m in &popped {
        reply_member(ex.out, m.as_member());
    }
    ex.dirty += count;
    propagate_srem(ex, key, &popped);
    ex.notify(NotifyFlags::SET, "spop", key);
    Ok(())
}

/// Redis's SRANDMEMBER_SUB_STRATEGY_MUL.
const SRANDMEMBER_SUB_STRATEGY_MUL: u64 = 3;

/// `SRANDMEMBER key [count]`
fn srandmember(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    if a.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let key = &a[1];
    if a.len() == 2 {
        let mut r = rng(ex);
        let db = ex.db;
        let set = ex.read(key, Value::as_set)?;
        let _ = db;
        match set.and_then(|s| s.random(&mut r).map(|m| m.to_owned())) {
            Some(m) => reply_member(ex.out, m.as_member()),
            None => ex.out.null(),
        }
        return Ok(());
    }
    let l = int_in_range(&a[2], -i64::MAX, i64::MAX)?;
    let (count, uniq) = (l.unsigned_abs(), l >= 0);
    let mut r = rng(ex);
    if ex.read(key, Value::as_set)?.is_none() {
        ex.out.array(0);
        return Ok(());
    }
    let db = ex.db;
    let (dbs, out) = (&mut ex.ks, &mut *ex.out);
    let Some(Value::Set(set)) = dbs.db(db, key).peek(key).map(|e| &e.value) else {
        out.array(0);
        return Ok(());
    };
    let size = set.len() as u64;
    if count == 0 {
        out.array(0);
    } else if !uniq || count == 1 {
        // With repetitions: independent draws.
        out.array(count as usize);
        for _ in 0..count {
            if let Some(m) = set.random(&mut r) {
                reply_member(out, m);
            }
        }
    } else if count >= size {
        out.array(size as usize);
        for m in set.iter() {
            reply_member(out, m);
        }
    } else if let Set::Pack(_) = set {
        // Selection sampling in listpack order, as Redis's lpNextRandom.
        out.array(count as usize);
        let mut need = count;
        let mut left = size;
        for m in set.iter() {
            if need == 0 {
                break;
            }
            if r() % left < need {
                reply_member(out, m);
                need -= 1;
            }
            left -= 1;
        }
    } else if count * SRANDMEMBER_SUB_STRATEGY_MUL > size {
        // Close to the whole set: shuffle it partially.
        let mut all: Vec<Member<'_>> = set.iter().collect();
        out.array(count as usize);
        for i in 0..count as usize {
            let j = i + (r() % (all.len() - i) as u64) as usize;
            all.swap(i, j);
            reply_member(out, all[i]);
        }
    } else {
        // Far fewer than the set holds: draw until enough distinct members.
        let mut seen: ahash::AHashSet<Member<'_>> = ahash::AHashSet::with_capacity(count as usize);
        let mut picked: Vec<Member<'_>> = Vec::with_capacity(count as usize);
        while (picked.len() as u64) < count {
            if let Some(m) = set.random(&mut r) {
                if seen.insert(m) {
                    picked.push(m);
                }
            }
        }
        out.array(picked.len());
        for m in picked {
            reply_member(out, m);
        }
    }
    Ok(())
}

/// `SMOVE source destination member`
fn smove(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (src, dst, member) = (&a[1], &a[2], &a[3]);
    let lim = ex.enc;
    let src_state = ex.write(src, Value::as_set).map(|s| s.is_some());
    let dst_state = ex.write(dst, Value::as_set).map(|s| s.is_some());
    let Ok(true) = src_state else {
        src_state?;
        ex.out.int(0);
        return Ok(());
    };
    let dst_exists = dst_state?;
    if src == dst {
        let yes = peek(ex, src).is_some_and(|s| s.contains(member));
        ex.out.int(yes as i64);
        return Ok(());
    }
    let removed = ex.write_again(src, Value::as_set)?.is_some_and(|s| s.remove(member));
    if !removed {
        ex.out.int(0);
        return Ok(());
    }
    ex.notify(NotifyFlags::SET, "srem", src);
    if ex.remove_if_empty(src) {
        ex.notify(NotifyFlags::GENERIC, "del", src);
    }
    ex.dirty += 1;
    let set = if dst_exists {
        ex.write_again(dst, Value::as_set)?.ok_or(CmdError::WrongType)?
    } else {
        ex.write_or_create(dst, Value::as_set, || Value::Set(Set::create(member, 1, &lim)))?
    };
    if set.add(member, &lim) {
        ex.dirty += 1;
        ex.notify(NotifyFlags::SET, "sadd", dst);
    }
    ex.propagate_as_is(a);
    ex.out.int(1);
    Ok(())
}

/// `SINTER key [key ...]`
fn sinter(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let keys = &a.as_slice()[1..];
    let members = intersection(ex, keys)?.map(|(m, _)| m).unwrap_or_default();
    ex.out.set(members.len());
    for m in &members {
        reply_member(ex.out, m.as_member());
    }
    Ok(())
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`
fn sintercard(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    const NUMKEYS: CmdError = CmdError::Static("ERR numkeys should be greater than 0");
    let numkeys = match parse_i64(&a[1]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Err(NUMKEYS),
    };
    if numkeys > (a.len() - 2) as u64 {
        return Err(CmdError::Static(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let numkeys = numkeys as usize;
    let mut limit = 0u64;
    let mut cur = a.cursor(2 + numkeys);
    while let Some(opt) = cur.next_arg() {
        if opt.eq_ignore_ascii_case(b"LIMIT") && !cur.is_done() {
            limit = match parse_i64(cur.value()?) {
                Some(n) if n >= 0 => n as u64,
                _ => return Err(CmdError::Static("ERR LIMIT can't be negative")),
            };
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let keys = &a.as_slice()[2..2 + numkeys];
    let n = intersection(ex, keys)?.map_or(0, |(m, _)| m.len() as u64);
    let n = if limit > 0 { n.min(limit) } else { n };
    ex.out.int(n as i64);
    Ok(())
}

/// `SINTERSTORE destination key [key ...]`
fn sinterstore(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let dst = a.bytes(1).clone();
    let lim = ex.enc;
    let result = match intersection(ex, &a.as_slice()[2..])? {
        None => Set::new(),
        Some((members, enc)) => {
            // Redis starts from the smallest set's compact encoding (a listpack after a
            // hash table) and goes to an intset at the end if only integers made it.
            let mut set = if enc == "intset" {
                Set::new()
            } else {
                Set::new_listpack()
            };
            let mut only_integers = true;
            for m in &members {
                let m = match m.as_member() {
                    Member::Str(s) => Member::of(s),
                    m => m,
                };
                only_integers &= matches!(m, Member::Int(_));
                set.add_member(m, &lim);
            }
            if only_integers {
                set.maybe_convert_to_intset(&lim);
            }
            set
        }
    };
    store_result(ex, a, &dst, result, "sinterstore");
    Ok(())
}

/// `SUNION key [key ...]`
fn sunion(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let s = union_diff(ex, &a.as_slice()[1..], SetOp::Union)?;
    reply_set(ex.out, &s);
    Ok(())
}

/// `SUNIONSTORE destination key [key ...]`
fn sunionstore(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let s = union_diff(ex, &a.as_slice()[2..], SetOp::Union)?;
    store_result(ex, a, &a.bytes(1).clone(), s, "sunionstore");
    Ok(())
}

/// `SDIFF key [key ...]`
fn sdiff(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let s = union_diff(ex, &a.as_slice()[1..], SetOp::Diff)?;
    reply_set(ex.out, &s);
    Ok(())
}

/// `SDIFFSTORE destination key [key ...]`
fn sdiffstore(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let s = union_diff(ex, &a.as_slice()[2..], SetOp::Diff)?;
    store_result(ex, a, &a.bytes(1).clone(), s, "sdiffstore");
    Ok(())
}

/// `SSCAN key cursor [MATCH pattern] [COUNT count]`
fn sscan(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let cursor = crate::command::args::parse_scan_cursor(&a[2]).ok_or(CmdError::Static("ERR invalid cursor"))?;
    let key = &a[1];
    if ex.read(key, Value::as_set)?.is_none() {
        ex.out.array(2);
        ex.out.bulk(b"0");
        ex.out.array(0);
        return Ok(());
    }
    let mut count = 10u64;
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
            pattern = (&a[i + 1] != b"*").then(|| &a[i + 1]);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let Some(set) = peek(ex, key) else {
        return Ok(());
    };
    let mut found: Vec<Owned> = Vec::new();
    let mut next = cursor;
    match set.table() {
        Some(_) => {
            let mut budget = count.saturating_mul(10);
            loop {
                next = set.scan(next, |m| found.push(m.to_owned()));
                if next == 0 || budget == 0 || found.len() as u64 >= count {
                    break;
                }
                budget -= 1;
            }
        }
        None => {
            next = set.scan(0, |m| found.push(m.to_owned()));
        }
    }
    if let Some(p) = pattern {
        let mut buf = itoa_buf::Buf::new();
        found.retain(|m| glob_match(p, m.as_member().as_bytes(&mut buf), false));
    }
    ex.out.array(2);
    // Unsigned, as Redis prints it: it may exceed i64::MAX.
    ex.out.bulk(next.to_string().as_bytes());
    ex.out.array(found.len());
    for m in &found {
        reply_member(ex.out, m.as_member());
    }
    Ok(())
}

// ---- the table ---------------------------------------------------------------------------

const RO: &[&str] = &["RO"];
const RO_ACCESS: &[&str] = &["RO", "ACCESS"];
const RW_INSERT: &[&str] = &["RW", "INSERT"];
const RW_DELETE: &[&str] = &["RW", "DELETE"];
const RW_ACCESS_DELETE: &[&str] = &["RW", "ACCESS", "DELETE"];
const OW_UPDATE: &[&str] = &["OW", "UPDATE"];
const RW_UPDATE: &[&str] = &["RW", "UPDATE"];
const SET: u32 = acl::SET;
const STORE_KEYS: &[KeySpec] = &[KeySpec::one(1, OW_UPDATE), KeySpec::rest(2, 1, RO_ACCESS)];
/// SINTERSTORE's destination is RW in Redis's spec, unlike SUNIONSTORE's and SDIFFSTORE's.
const SINTERSTORE_KEYS: &[KeySpec] = &[KeySpec::one(1, RW_UPDATE), KeySpec::rest(2, 1, RO_ACCESS)];
const INTER_COMPLEXITY: &str =
    "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.";
const UNION_COMPLEXITY: &str = "O(N) where N is the total number of elements in all given sets.";
const SINTERCARD_KEYS: &[KeySpec] = &[KeySpec {
    flags: RO_ACCESS,
    begin: Begin::Index(1),
    find: Find::Keynum {
        keynumidx: 0,
        firstkey: 1,
        step: 1,
    },
    notes: "",
}];

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "sadd", arity: -3, flags: WRITE | DENYOOM | FAST, acl: SET, key_specs: &[KeySpec::one(1, RW_INSERT)], group: "set", summary: "Adds one or more members to a set. Creates the key if it doesn't exist.", complexity: "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.", syntax: "key member [member ...]", run: Run::Keyed(sadd, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "srem", arity: -3, flags: WRITE | FAST, acl: SET, key_specs: &[KeySpec::one(1, RW_DELETE)], group: "set", summary: "Removes one or more members from a set. Deletes the set if the last member was removed.", complexity: "O(N) where N is the number of members to be removed.", syntax: "key member [member ...]", run: Run::Keyed(srem, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "scard", arity: 2, flags: READONLY | FAST, acl: SET, key_specs: &[KeySpec::one(1, RO)], group: "set", summary: "Returns the number of members in a set.", syntax: "key", run: Run::Keyed(scard, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "sismember", arity: 3, flags: READONLY | FAST, acl: SET, key_specs: &[KeySpec::one(1, RO)], group: "set", summary: "Determines whether a member belongs to a set.", syntax: "key member", run: Run::Keyed(sismember, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "smismember", arity: -3, flags: READONLY | FAST, acl: SET, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "set", since: "6.2.0", summary: "Determines whether multiple members belong to a set.", complexity: "O(N) where N is the number of elements being checked for membership", syntax: "key member [member ...]", run: Run::Keyed(smismember, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "smembers", arity: 2, flags: READONLY, acl: SET, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "set", summary: "Returns all members of a set.", complexity: "O(N) where N is the set cardinality.", syntax: "key", tips: &["nondeterministic_output_order"], run: Run::Keyed(smembers, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "spop", arity: -2, flags: WRITE | FAST, acl: SET, key_specs: &[KeySpec::one(1, RW_ACCESS_DELETE)], group: "set", summary: "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.", complexity: "Without the count argument O(1), otherwise O(N) where N is the value of the passed count.", syntax: "key [count]", tips: &["nondeterministic_output"], run: Run::Keyed(spop, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "srandmember", arity: -2, flags: READONLY, acl: SET, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "set", summary: "Get one or multiple random members from a set", complexity: "Without the count argument O(1), otherwise O(N) where N is the absolute value of the passed count.", syntax: "key [count]", tips: &["nondeterministic_output"], run: Run::Keyed(srandmember, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "smove", arity: 4, flags: WRITE | FAST, acl: SET, key_specs: &[KeySpec::one(1, RW_ACCESS_DELETE), KeySpec::one(2, RW_INSERT)], group: "set", summary: "Moves a member from one set to another.", syntax: "source destination member", run: Run::Keyed(smove, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "sinter", arity: -2, flags: READONLY, acl: SET, key_specs: &[KeySpec::rest(1, 1, RO_ACCESS)], group: "set", summary: "Returns the intersect of multiple sets.", complexity: INTER_COMPLEXITY, syntax: "key [key ...]", tips: &["nondeterministic_output_order"], run: Run::Keyed(sinter, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "sintercard", arity: -3, flags: READONLY, acl: SET, key_specs: SINTERCARD_KEYS, group: "set", since: "7.0.0", summary: "Returns the number of members of the intersect of multiple sets.", complexity: INTER_COMPLEXITY, syntax: "numkeys key [key ...] [LIMIT limit]", run: Run::Keyed(sintercard, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "sinterstore", arity: -3, flags: WRITE | DENYOOM, acl: SET, key_specs: SINTERSTORE_KEYS, group: "set", summary: "Stores the intersect of multiple sets in a key.", complexity: INTER_COMPLEXITY, syntax: "destination key [key ...]", run: Run::Keyed(sinterstore, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "sunion", arity: -2, flags: READONLY, acl: SET, key_specs: &[KeySpec::rest(1, 1, RO_ACCESS)], group: "set", summary: "Returns the union of multiple sets.", complexity: UNION_COMPLEXITY, syntax: "key [key ...]", tips: &["nondeterministic_output_order"], run: Run::Keyed(sunion, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "sunionstore", arity: -3, flags: WRITE | DENYOOM, acl: SET, key_specs: STORE_KEYS, group: "set", summary: "Stores the union of multiple sets in a key.", complexity: UNION_COMPLEXITY, syntax: "destination key [key ...]", run: Run::Keyed(sunionstore, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "sdiff", arity: -2, flags: READONLY, acl: SET, key_specs: &[KeySpec::rest(1, 1, RO_ACCESS)], group: "set", summary: "Returns the difference of multiple sets.", complexity: UNION_COMPLEXITY, syntax: "key [key ...]", tips: &["nondeterministic_output_order"], run: Run::Keyed(sdiff, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "sdiffstore", arity: -3, flags: WRITE | DENYOOM, acl: SET, key_specs: STORE_KEYS, group: "set", summary: "Stores the difference of multiple sets in a key.", complexity: UNION_COMPLEXITY, syntax: "destination key [key ...]", run: Run::Keyed(sdiffstore, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "sscan", arity: -3, flags: READONLY, acl: SET, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "set", since: "2.8.0", summary: "Iterates over members of a set.", complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.", syntax: "key cursor [MATCH pattern] [COUNT count]", tips: &["nondeterministic_output"], run: Run::Keyed(sscan, Multi::Atomic), ..CommandSpec::DEFAULT },
];

#[cfg(test)]
mod tests {
    use crate::families::testkit::Kit;
    use crate::resp::Proto;

    /// The effects since the last call, without the SELECT that opens the first batch.
    fn effects(k: &mut Kit) -> String {
        let e = k.effects();
        e.strip_prefix("*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n")
            .map(str::to_string)
            .unwrap_or(e)
    }

    fn enc(k: &Kit, key: &str) -> &'static str {
        k.store.dbs[0]
            .peek(key.as_bytes())
            .map_or("none", |e| e.value.encoding())
    }

    fn int(n: i64) -> String {
        format!(":{n}\r\n")
    }

    /// The members of a flat RESP array reply, sorted.
    fn sorted(reply: &str) -> Vec<String> {
        let mut v: Vec<String> = reply
            .split("\r\n")
            .skip(1)
            .collect::<Vec<_>>()
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| c[1].to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn sadd_srem_reply_and_propagate_as_sent() {
        let mut k = Kit::new();
        assert_eq!(k.run("SADD s a b a"), int(2));
        assert_eq!(
            effects(&mut k),
            "*5\r\n$4\r\nSADD\r\n$1\r\ns\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\na\r\n"
        );
        assert_eq!(k.run("SADD s a"), int(0));
        assert_eq!(effects(&mut k), "");
        assert_eq!(k.run("SREM s x"), int(0));
        assert_eq!(effects(&mut k), "");
        assert_eq!(k.run("SREM s a b"), int(2));
        assert!(effects(&mut k).starts_with("*4\r\n$4\r\nSREM"));
        assert_eq!(k.run("EXISTS s"), int(0));
        assert_eq!(k.dirty, 4);
    }

    #[test]
    fn wrongtype_everywhere() {
        let mut k = Kit::new();
        k.run("SET str v");
        let wrong = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
        for c in [
            "SADD str a",
            "SREM str a",
            "SCARD str",
            "SISMEMBER str a",
            "SMISMEMBER str a",
            "SMEMBERS str",
            "SPOP str",
            "SPOP str 2",
            "SRANDMEMBER str",
            "SRANDMEMBER str 2",
            "SINTER str",
            "SINTERCARD 1 str",
            "SINTERSTORE d str",
            "SUNION str",
            "SUNIONSTORE d str",
            "SDIFF str",
            "SDIFFSTORE d str",
            "SSCAN str 0",
            "SMOVE str d a",
        ] {
            assert_eq!(k.run(c), wrong, "{c}");
        }
        k.run("SADD s a");
        assert_eq!(k.run("SMOVE s str a"), wrong);
        assert_eq!(k.run("SMOVE nokey str a"), int(0));
    }

    #[test]
    fn spop_propagates_srem_or_del() {
        let mut k = Kit::new();
        k.run("SADD s 7");
        effects(&mut k);
        assert_eq!(k.run("SPOP s"), "$1\r\n7\r\n");
        assert_eq!(effects(&mut k), "*3\r\n$4\r\nSREM\r\n$1\r\ns\r\n$1\r\n7\r\n");
        assert_eq!(k.run("EXISTS s"), int(0));
        k.run("SADD s 1 2 3");
        effects(&mut k);
        assert_eq!(k.run("SPOP s 5"), "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n");
        assert_eq!(effects(&mut k), "*2\r\n$3\r\nDEL\r\n$1\r\ns\r\n");
        let members: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        k.run(&format!("SADD s {}", members.join(" ")));
        effects(&mut k);
        let popped = sorted(&k.run("SPOP s 3"));
        assert_eq!(popped.len(), 3);
        let eff = effects(&mut k);
        assert!(eff.starts_with("*5\r\n$4\r\nSREM\r\n$1\r\ns\r\n"), "{eff}");
        for p in &popped {
            assert!(eff.contains(&format!("\r\n{p}\r\n")));
            assert_eq!(k.run(&format!("SISMEMBER s {p}")), int(0));
        }
        assert_eq!(k.run("SCARD s"), int(7));
    }

    #[test]
    fn spop_most_of_a_set_rebuilds_it_compact() {
        let mut k = Kit::new();
        let members: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
        k.run(&format!("SADD s {}", members.join(" ")));
        assert_eq!(enc(&k, "s"), "hashtable");
        let popped = sorted(&k.run("SPOP s 950"));
        assert_eq!(popped.len(), 950);
        assert_eq!(k.run("SCARD s"), int(50));
        assert_eq!(enc(&k, "s"), "listpack");
        let mut rest = sorted(&k.run("SMEMBERS s"));
        rest.extend(popped);
        rest.sort();
        let mut all = members.clone();
        all.sort();
        assert_eq!(rest, all);
        // Integers from an intset stay an intset.
        let ints: Vec<String> = (0..400).map(|i| i.to_string()).collect();
        k.run(&format!("SADD n {}", ints.join(" ")));
        k.run("SPOP n 390");
        assert_eq!(enc(&k, "n"), "intset");
        assert_eq!(k.run("SCARD n"), int(10));
    }

    #[test]
    fn srandmember_counts() {
        let mut k = Kit::new();
        let members: Vec<String> = (0..300).map(|i| format!("e{i}")).collect();
        k.run(&format!("SADD h {}", members.join(" ")));
        k.run("SADD i 1 2 3 4 5 6 7 8 9 10");
        k.run("SADD l a b c d e f g h");
        for key in ["h", "i", "l"] {
            let size = sorted(&k.run(&format!("SMEMBERS {key}"))).len();
            for count in [1, 2, size / 2, size - 1, size / 4 + 1] {
                let got = sorted(&k.run(&format!("SRANDMEMBER {key} {count}")));
                let mut dedup = got.clone();
                dedup.dedup();
                assert_eq!((got.len(), dedup.len()), (count, count), "{key} {count}");
            }
            let rep = sorted(&k.run(&format!("SRANDMEMBER {key} -{}", size * 3)));
            assert_eq!(rep.len(), size * 3);
            assert_eq!(sorted(&k.run(&format!("SRANDMEMBER {key} {}", size + 5))).len(), size);
        }
        // Every member turns up eventually.
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.extend(sorted(&k.run("SRANDMEMBER l -4")));
        }
        assert_eq!(seen.len(), 8);
    }

    #[test]
    fn smove_dirty_and_effects() {
        let mut k = Kit::new();
        k.run("SADD a x");
        effects(&mut k);
        let d0 = k.dirty;
        assert_eq!(k.run("SMOVE a b x"), int(1));
        assert_eq!(k.dirty - d0, 2);
        assert_eq!(
            effects(&mut k),
            "*4\r\n$5\r\nSMOVE\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nx\r\n"
        );
        assert_eq!(k.run("EXISTS a"), int(0));
        assert_eq!(k.run("SMOVE a b x"), int(0));
        assert_eq!(effects(&mut k), "");
        assert_eq!(enc(&k, "b"), "listpack");
    }

    #[test]
    fn store_encodings_follow_redis_7_2() {
        let mut k = Kit::new();
        let ints: Vec<String> = (0..600).map(|i| i.to_string()).collect();
        k.run(&format!("SADD big {}", ints.join(" ")));
        k.run("SADD small 1 2 3 700");
        k.run("SADD strs a b 1");
        assert_eq!(k.run("SINTERSTORE d big small"), int(3));
        assert_eq!(enc(&k, "d"), "intset");
        assert_eq!(k.run("SINTERSTORE d big strs"), int(1));
        assert_eq!(enc(&k, "d"), "intset");
        assert_eq!(k.run("SUNIONSTORE d small strs"), int(6));
        assert_eq!(enc(&k, "d"), "listpack");
        assert_eq!(k.run("SUNIONSTORE d big small"), int(601));
        assert_eq!(enc(&k, "d"), "hashtable");
        assert_eq!(k.run("SDIFFSTORE d strs small"), int(2));
        assert_eq!(enc(&k, "d"), "listpack");
        // An empty result deletes the destination and propagates the command.
        effects(&mut k);
        assert_eq!(k.run("SINTERSTORE d small nokey"), int(0));
        assert_eq!(k.run("EXISTS d"), int(0));
        assert!(effects(&mut k).contains("SINTERSTORE"));
        assert_eq!(k.run("SINTERSTORE d small nokey"), int(0));
        assert_eq!(effects(&mut k), "");
    }

    #[test]
    fn listpack_keeps_insertion_order() {
        let mut k = Kit::new();
        k.run("SADD s c 3 a 1 b");
        assert_eq!(
            k.run("SMEMBERS s"),
            "*5\r\n$1\r\nc\r\n$1\r\n3\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n"
        );
        k.run("SREM s a");
        assert_eq!(
            k.run("SSCAN s 0 MATCH *"),
            "*2\r\n$1\r\n0\r\n*4\r\n$1\r\nc\r\n$1\r\n3\r\n$1\r\n1\r\n$1\r\nb\r\n"
        );
    }

    #[test]
    fn resp3_shapes() {
        let mut k = Kit::new();
        k.proto = Proto::Resp3;
        k.run("SADD s 1 2");
        assert_eq!(k.run("SMEMBERS s"), "~2\r\n$1\r\n1\r\n$1\r\n2\r\n");
        assert_eq!(k.run("SPOP nokey 2"), "~0\r\n");
        assert_eq!(k.run("SRANDMEMBER nokey 2"), "*0\r\n");
        assert_eq!(k.run("SPOP nokey"), "_\r\n");
        assert_eq!(k.run("SINTER s nokey"), "~0\r\n");
    }

    #[test]
    fn sscan_walks_a_hashtable() {
        let mut k = Kit::new();
        let members: Vec<String> = (0..500).map(|i| format!("m{i}")).collect();
        k.run(&format!("SADD s {}", members.join(" ")));
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = "0".to_string();
        let mut calls = 0;
        loop {
            let r = k.run(&format!("SSCAN s {cursor} COUNT 20"));
            let parts: Vec<&str> = r.split("\r\n").collect();
            cursor = parts[2].to_string();
            for c in parts[4..].chunks(2) {
                if c.len() == 2 {
                    seen.insert(c[1].to_string());
                }
            }
            calls += 1;
            if cursor == "0" {
                break;
            }
        }
        assert!(calls > 5);
        assert_eq!(seen.len(), 500);
    }
}
