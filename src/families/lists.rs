//! Lists: LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX LSET LINSERT LREM LTRIM LPOS
//! LMOVE RPOPLPUSH LMPOP and the blocking BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP, with Redis
//! 7.2's replies, error texts, encodings (`listpack` / `quicklist`, see
//! [`crate::store::list`]) and propagated effects (t_list.c).
//!
//! Blocking commands try to serve exactly as their non-blocking forms; when nothing can be
//! served they ask the dispatcher to block ([`Exec::block_on`]) and are re-run by the
//! blocking machinery (src/server/blocking.rs) when a key they wait on gets data.

use bytes::Bytes;

use crate::command::args::{parse_i64, parse_timeout, positive};
use crate::command::{acl, flags::*, Args, Begin, CommandSpec, Exec, Find, KeySpec, Multi, NotifyFlags, Run};
use crate::error::CmdError;
use crate::resp::Reply;
use crate::store::list::{Elem, End, List};
use crate::store::value::itoa_buf;
use crate::store::Value;

// ---- helpers ----------------------------------------------------------------------------

#[inline]
fn reply_elem(out: &mut Reply, e: Elem<'_>) {
    match e {
        Elem::Int(v) => out.bulk_int(v),
        Elem::Str(s) => out.bulk(s),
    }
}

/// The list at `key` (None if missing; WRONGTYPE for another type) and the reply writer,
/// borrowed together. `read` counts a keyspace hit or miss (Redis counts reads only).
#[inline]
fn lookup<'e>(ex: &'e mut Exec<'_>, key: &[u8], read: bool) -> Result<(Option<&'e mut List>, &'e mut Reply), CmdError> {
    let (now, touch, db) = (ex.now, ex.touch(), ex.db);
    let d = ex.ks.db(db, key);
    let entry = if read {
        d.lookup(key, now, touch)
    } else {
        d.lookup_write(key, now)
    };
    let list = match entry {
        None => None,
        Some(e) => Some(e.value.as_list().ok_or(CmdError::WrongType)?),
    };
    Ok((list, &mut *ex.out))
}

/// The list at `key` again, for a command that already looked it up: no second expiry check
/// or touch (an LFU counter would count it).
fn again<'e>(ex: &'e mut Exec<'_>, key: &[u8]) -> Result<(Option<&'e mut List>, &'e mut Reply), CmdError> {
    ex.again_with_out(key, Value::as_list)
}

/// After elements left the list at `key`: the key goes if the list is empty, else the
/// list may return to a listpack (Redis's listElementsRemoved).
fn after_removal(ex: &mut Exec<'_>, key: &[u8], list_empty: bool, n: usize) {
    if list_empty {
        ex.db(key).remove(key);
        ex.notify(NotifyFlags::GENERIC, "del", key);
    }
    ex.dirty += n as u64;
}

/// `LPOP key n` / `RPOP key n`: how LMPOP and BLMPOP propagate.
fn propagate_pop_count(ex: &mut Exec<'_>, end: End, key: &[u8], n: usize) {
    if ex.effects.is_enabled() {
        let mut buf = itoa_buf::Buf::new();
        let n = buf.format(n as i64).to_vec();
        ex.propagate(&[pop_name(end), key, &n]);
    }
}

fn pop_name(end: End) -> &'static [u8] {
    match end {
        End::Head => b"LPOP",
        End::Tail => b"RPOP",
    }
}

/// `LEFT` / `RIGHT` (getListPositionFromObjectOrReply).
fn parse_end(arg: &[u8]) -> Result<End, CmdError> {
    if arg.eq_ignore_ascii_case(b"left") {
        Ok(End::Head)
    } else if arg.eq_ignore_ascii_case(b"right") {
        Ok(End::Tail)
    } else {
        Err(CmdError::Syntax)
    }
}

/// A long in `min..=max`, or `msg` (Redis's getRangeLongFromObjectOrReply with a message:
/// the same text for a non-number and for one out of range).
fn parse_range(arg: &[u8], min: i64, max: i64, msg: &'static str) -> Result<i64, CmdError> {
    match parse_i64(arg) {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(CmdError::Static(msg)),
    }
}

/// addListRangeReply: `start..=end` with negative indexes from the tail, clamped; reversed
/// (from `end` down to `start`) when `reverse`.
fn reply_range(out: &mut Reply, list: &List, start: i64, end: i64, reverse: bool) {
    let len = list.len() as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        out.array(0);
        return;
    }
    if end >= len {
        end = len - 1;
    }
    let n = (end - start + 1) as usize;
    let from = if reverse { end } else { start } as usize;
    out.array(n);
    for e in list.iter_from(from, reverse).take(n) {
        reply_elem(out, e);
    }
}

/// Replies with the `n` (<= len) elements at one end, in pop order, and removes them.
fn pop_range_reply(out: &mut Reply, list: &mut List, end: End, n: usize) {
    let len = list.len();
    match end {
        End::Head => reply_range(out, list, 0, n as i64 - 1, false),
        End::Tail => reply_range(out, list, -(n as i64), -1, true),
    }
    list.delete_range(if end == End::Head { 0 } else { len - n }, n);
}

// ---- pushes ---------------------------------------------------------------------------------

/// pushGenericCommand: `xx` pushes only onto an existing list (LPUSHX/RPUSHX).
fn push_generic(ex: &mut Exec<'_>, a: &Args, end: End, xx: bool) -> Result<(), CmdError> {
    let key = &a[1];
    let fill = ex.enc.list_max_listpack_size;
    let items = &a.as_slice()[2..];
    let bytes: usize = items.iter().map(|i| i.len()).sum();
    let (list, out) = lookup(ex, key, false)?;
    let list = match list {
        Some(l) => l,
        None if xx => {
            out.int(0);
            return Ok(());
        }
        None => ex.write_or_create(key, Value::as_list, || Value::List(List::new()))?,
    };
    list.prepare_add(bytes, items.len(), fill);
    for it in items {
        list.push(end, Elem::from_bytes(it), fill);
    }
    let len = list.len();
    ex.out.int(len as i64);
    ex.signal_ready(key);
    ex.notify(NotifyFlags::LIST, end_event(end, true), key);
    ex.dirty += items.len() as u64;
    ex.propagate_as_is(a);
    Ok(())
}

/// The keyspace event of a push or pop at `end`.
fn end_event(end: End, push: bool) -> &'static str {
    match (end, push) {
        (End::Head, true) => "lpush",
        (End::Tail, true) => "rpush",
        (End::Head, false) => "lpop",
        (End::Tail, false) => "rpop",
    }
}

/// `LPUSH key element [element ...]`: the new length.
fn lpush(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    push_generic(ex, a, End::Head, false)
}

/// `RPUSH key element [element ...]`: the new length.
fn rpush(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    push_generic(ex, a, End::Tail, false)
}

/// `LPUSHX key element [element ...]`: the new length, 0 (nothing pushed) if no list.
fn lpushx(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    push_generic(ex, a, End::Head, true)
}

/// `RPUSHX key element [element ...]`: the new length, 0 (nothing pushed) if no list.
fn rpushx(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    push_generic(ex, a, End::Tail, true)
}

/// `LINSERT key <BEFORE | AFTER> pivot element`: the new length, -1 if the pivot is not
/// there, 0 if there is no list. As Redis, a listpack converts to a quicklist when the
/// element would not fit, even if the pivot then turns out to be missing.
fn linsert(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let after = if a.is(2, "after") {
        true
    } else if a.is(2, "before") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let (key, pivot, elem) = (&a[1], &a[3], &a[4]);
    let fill = ex.enc.list_max_listpack_size;
    let (list, out) = lookup(ex, key, false)?;
    let Some(list) = list else {
        out.int(0);
        return Ok(());
    };
    list.prepare_add(elem.len(), 1, fill);
    if !list.insert(Elem::from_bytes(pivot), Elem::from_bytes(elem), after, fill) {
        out.int(-1);
        return Ok(());
    }
    out.int(list.len() as i64);
    ex.dirty += 1;
    ex.notify(NotifyFlags::LIST, "linsert", key);
    ex.propagate_as_is(a);
    Ok(())
}

// ---- reads ----------------------------------------------------------------------------------

/// `LLEN key`: 0 if there is no list.
fn llen(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (list, out) = lookup(ex, &a[1], true)?;
    out.int(list.map_or(0, |l| l.len() as i64));
    Ok(())
}

/// `LINDEX key index`: the element, or null. A missing key answers null before the index
/// is parsed.
fn lindex(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (list, out) = lookup(ex, &a[1], true)?;
    let Some(list) = list else {
        out.null();
        return Ok(());
    };
    let index = a.int(2)?;
    match list.get(index) {
        Some(e) => reply_elem(out, e),
        None => out.null(),
    }
    Ok(())
}

/// `LRANGE key start stop`
fn lrange(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (start, stop) = (a.int(2)?, a.int(3)?);
    let (list, out) = lookup(ex, &a[1], true)?;
    match list {
        None => out.array(0),
        Some(l) => reply_range(out, l, start, stop, false),
    }
    Ok(())
}

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`: the index of the
/// rank-th match (negative rank: from the tail), or with COUNT an array of up to
/// num-matches indexes (0 = all), scanning at most `len` elements (0 = all).
fn lpos(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (mut rank, mut count, mut maxlen) = (1i64, -1i64, 0i64);
    let mut cur = a.cursor(3);
    while let Some(opt) = cur.next_arg() {
        let more = !cur.is_done();
        if opt.eq_ignore_ascii_case(b"RANK") && more {
            let v = cur.value()?;
            rank = parse_i64(v).ok_or(CmdError::NotInteger)?;
            if rank == i64::MIN {
                return Err(CmdError::Static(
                    "ERR value is out of range, must be between -9223372036854775807 and 9223372036854775807",
                ));
            }
            if rank == 0 {
                return Err(CmdError::Static(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if opt.eq_ignore_ascii_case(b"COUNT") && more {
            count = parse_range(cur.value()?, 0, i64::MAX, "ERR COUNT can't be negative")?;
        } else if opt.eq_ignore_ascii_case(b"MAXLEN") && more {
            maxlen = parse_range(cur.value()?, 0, i64::MAX, "ERR MAXLEN can't be negative")?;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let from_tail = rank < 0;
    let rank = rank.unsigned_abs();
    let (list, out) = lookup(ex, &a[1], true)?;
    let Some(list) = list else {
        if count != -1 {
            out.array(0);
        } else {
            out.null();
        }
        return Ok(());
    };
    let needle = Elem::from_bytes(&a[2]);
    let len = list.len();
    let scan = if maxlen == 0 { len } else { len.min(maxlen as usize) };
    let iter = list
        .iter_from(if from_tail { len - 1 } else { 0 }, from_tail)
        .take(scan);
    let mut found: Vec<i64> = Vec::new();
    let mut matches = 0u64;
    for (i, e) in iter.enumerate() {
        if e != needle {
            continue;
        }
        matches += 1;
        if matches < rank {
            continue;
        }
        found.push(if from_tail { (len - i - 1) as i64 } else { i as i64 });
        if count == -1 || (count != 0 && matches - rank + 1 >= count as u64) {
            break;
        }
    }
    if count != -1 {
        out.array(found.len());
        for i in found {
            out.int(i);
        }
    } else {
        match found.first() {
            Some(&i) => out.int(i),
            None => out.null(),
        }
    }
    Ok(())
}

// ---- writes ---------------------------------------------------------------------------------

/// `LSET key index element`. As Redis, the list converts to a quicklist if the element
/// would not fit, and may convert back once replaced.
fn lset(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let fill = ex.enc.list_max_listpack_size;
    let (list, out) = lookup(ex, &a[1], false)?;
    let Some(list) = list else {
        return Err(CmdError::NoSuchKey);
    };
    let index = a.int(2)?;
    let elem = &a[3];
    list.prepare_add(elem.len(), 1, fill);
    if !list.set(index, Elem::from_bytes(elem), fill) {
        return Err(CmdError::Static("ERR index out of range"));
    }
    list.shrink(fill);
    out.ok();
    ex.dirty += 1;
    ex.notify(NotifyFlags::LIST, "lset", &a[1]);
    ex.propagate_as_is(a);
    Ok(())
}

/// `LREM key count element`: removes the first `count` occurrences (negative: the last
/// ones; 0: all); how many went.
fn lrem(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let count = a.int(2)?;
    let key = &a[1];
    let fill = ex.enc.list_max_listpack_size;
    let (list, out) = lookup(ex, key, false)?;
    let Some(list) = list else {
        out.int(0);
        return Ok(());
    };
    let removed = list.remove(Elem::from_bytes(&a[3]), count.unsigned_abs() as usize, count < 0);
    let empty = list.is_empty();
    if removed > 0 && !empty {
        list.shrink(fill);
    }
    out.int(removed as i64);
    if removed > 0 {
        ex.notify(NotifyFlags::LIST, "lrem", key);
    }
    after_removal(ex, key, empty, removed);
    if removed > 0 {
        ex.propagate_as_is(a);
    }
    Ok(())
}

/// `LTRIM key start stop`: keeps only `start..=stop`.
fn ltrim(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (start, stop) = (a.int(2)?, a.int(3)?);
    let key = &a[1];
    let fill = ex.enc.list_max_listpack_size;
    let (list, out) = lookup(ex, key, false)?;
    out.ok();
    let Some(list) = list else {
        return Ok(());
    };
    let len = list.len() as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut stop = if stop < 0 { len + stop } else { stop };
    if start < 0 {
        start = 0;
    }
    let (ltrim, rtrim) = if start > stop || start >= len {
        (len, 0)
    } else {
        if stop >= len {
            stop = len - 1;
        }
        (start, len - stop - 1)
    };
    list.delete_range(0, ltrim as usize);
    let rest = list.len();
    list.delete_range(rest - rtrim as usize, rtrim as usize);
    let empty = list.is_empty();
    if !empty {
        list.shrink(fill);
    }
    ex.notify(NotifyFlags::LIST, "ltrim", key);
    after_removal(ex, key, empty, (ltrim + rtrim) as usize);
    if ltrim + rtrim > 0 {
        ex.propagate_as_is(a);
    }
    Ok(())
}

/// LPOP/RPOP: `key [count]`.
fn pop_generic(ex: &mut Exec<'_>, a: &Args, end: End) -> Result<(), CmdError> {
    if a.len() > 3 {
        let name = if end == End::Head { "lpop" } else { "rpop" };
        return Err(CmdError::WrongArity(name.into()));
    }
    let count = match a.len() {
        3 => Some(positive(&a[2])? as usize),
        _ => None,
    };
    let key = &a[1];
    let fill = ex.enc.list_max_listpack_size;
    let (list, out) = lookup(ex, key, false)?;
    let Some(list) = list else {
        match count {
            Some(_) => out.null_array(),
            None => out.null(),
        }
        return Ok(());
    };
    let n = match count {
        Some(0) => {
            out.array(0);
            return Ok(());
        }
        None => {
            list.pop_with(end, |e| reply_elem(out, e));
            1
        }
        Some(c) => {
            let n = c.min(list.len());
            pop_range_reply(out, list, end, n);
            n
        }
    };
    let empty = list.is_empty();
    if !empty {
        list.shrink(fill);
    }
    ex.notify(NotifyFlags::LIST, end_event(end, false), key);
    after_removal(ex, key, empty, n);
    ex.propagate_as_is(a);
    Ok(())
}

/// `LPOP key [count]`: the first element (null if none), or with a count an array of up
/// to `count` (null array if there is no list).
fn lpop(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    pop_generic(ex, a, End::Head)
}

/// `RPOP key [count]`: as LPOP, from the tail.
fn rpop(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    pop_generic(ex, a, End::Tail)
}

/// lmoveGenericCommand: moves one element from `src`'s `from` end to `dst`'s `to` end and
/// replies with it; null if `src` has no list. Returns whether an element moved.
/// `src_looked_up`: the caller has looked the source up already (BLMOVE serving a blocked
/// client; its first try looks it up twice, as Redis's blmoveGenericCommand does).
fn lmove_generic(
    ex: &mut Exec<'_>,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
    src_looked_up: bool,
) -> Result<bool, CmdError> {
    let fill = ex.enc.list_max_listpack_size;
    let (list, out) = if src_looked_up {
        again(ex, src)?
    } else {
        lookup(ex, src, false)?
    };
    let src_quick = match list {
        Some(l) if !l.is_empty() => l.encoding() == "quicklist",
        _ => {
            out.null();
            return Ok(false);
        }
    };
    // The destination's type is checked before anything moves.
    let dst_exists = lookup(ex, dst, false)?.0.is_some();
    let (list, _) = again(ex, src)?;
    let v = list.and_then(|l| l.pop(from)).expect("a non-empty source list");
    let d = if dst_exists {
        again(ex, dst)?.0.expect("looked up above")
    } else {
        ex.write_or_create(dst, Value::as_list, || Value::List(List::new()))?
    };
    // Redis pops a quicklist integer as an integer object, whose bytes do not count
    // towards the destination's conversion threshold.
    let raw = match v.as_elem() {
        Elem::Str(s) => s.len(),
        Elem::Int(_) if src_quick => 0,
        Elem::Int(n) => itoa_buf::Buf::new().format(n).len(),
    };
    d.prepare_add(raw, 1, fill);
    d.push(to, v.as_elem(), fill);
    ex.signal_ready(dst);
    ex.notify(NotifyFlags::LIST, end_event(to, true), dst);
    ex.notify(NotifyFlags::LIST, end_event(from, false), src);
    reply_elem(ex.out, v.as_elem());
    let (list, _) = again(ex, src)?;
    let empty = match list {
        Some(l) if !l.is_empty() => {
            l.shrink(fill);
            false
        }
        _ => true,
    };
    after_removal(ex, src, empty, 1);
    Ok(true)
}

/// `LMOVE source destination <LEFT | RIGHT> <LEFT | RIGHT>`: the element moved, or null.
fn lmove(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (from, to) = (parse_end(&a[3])?, parse_end(&a[4])?);
    if lmove_generic(ex, &a[1], &a[2], from, to, false)? {
        ex.propagate_as_is(a);
    }
    Ok(())
}

/// `RPOPLPUSH source destination`: LMOVE source destination RIGHT LEFT.
fn rpoplpush(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    if lmove_generic(ex, &a[1], &a[2], End::Tail, End::Head, false)? {
        ex.propagate_as_is(a);
    }
    Ok(())
}

/// LMPOP's and BLMPOP's `numkeys key [key ...] <LEFT | RIGHT> [COUNT count]` from argument
/// `numkeys_at`: the keys, the end and the count (1 by default).
fn parse_mpop(a: &Args, numkeys_at: usize) -> Result<(&[Bytes], End, usize), CmdError> {
    let numkeys = parse_range(&a[numkeys_at], 1, i64::MAX, "ERR numkeys should be greater than 0")? as u64;
    let where_at = numkeys_at as u64 + numkeys + 1;
    if where_at >= a.len() as u64 {
        return Err(CmdError::Syntax);
    }
    let where_at = where_at as usize;
    let end = parse_end(&a[where_at])?;
    let mut count = None;
    let mut cur = a.cursor(where_at + 1);
    while let Some(opt) = cur.next_arg() {
        if count.is_none() && opt.eq_ignore_ascii_case(b"COUNT") && !cur.is_done() {
            count = Some(parse_range(cur.value()?, 1, i64::MAX, "ERR count should be greater than 0")? as usize);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok((&a.as_slice()[numkeys_at + 1..where_at], end, count.unwrap_or(1)))
}

/// Pops up to `count` elements from the first non-empty list of `keys`, replying
/// `[key, [elements]]` and propagating `LPOP|RPOP key n`. False if every list was empty.
fn serve_mpop(ex: &mut Exec<'_>, keys: &[Bytes], end: End, count: usize) -> Result<bool, CmdError> {
    let fill = ex.enc.list_max_listpack_size;
    for key in keys {
        let (list, out) = lookup(ex, key, false)?;
        let Some(list) = list.filter(|l| !l.is_empty()) else {
            continue;
        };
        let n = count.min(list.len());
        out.array(2);
        out.bulk(key);
        pop_range_reply(out, list, end, n);
        let empty = list.is_empty();
        if !empty {
            list.shrink(fill);
        }
        ex.notify(NotifyFlags::LIST, end_event(end, false), key);
        after_removal(ex, key, empty, n);
        propagate_pop_count(ex, end, key, n);
        return Ok(true);
    }
    Ok(false)
}

/// `LMPOP numkeys key [key ...] <LEFT | RIGHT> [COUNT count]`: `[key, [elements]]` from the
/// first non-empty list, or a null array.
fn lmpop(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (keys, end, count) = parse_mpop(a, 1)?;
    if !serve_mpop(ex, keys, end, count)? {
        ex.out.null_array();
    }
    Ok(())
}

// ---- blocking -------------------------------------------------------------------------------

/// BLPOP/BRPOP: `key [key ...] timeout`.
fn bpop_generic(ex: &mut Exec<'_>, a: &Args, end: End) -> Result<(), CmdError> {
    let deadline = parse_timeout(&a[a.len() - 1], ex.now)?;
    let fill = ex.enc.list_max_listpack_size;
    for key in &a.as_slice()[1..a.len() - 1] {
        let (list, out) = lookup(ex, key, false)?;
        let Some(list) = list.filter(|l| !l.is_empty()) else {
            continue;
        };
        out.array(2);
        out.bulk(key);
        list.pop_with(end, |e| reply_elem(out, e));
        let empty = list.is_empty();
        if !empty {
            list.shrink(fill);
        }
        ex.notify(NotifyFlags::LIST, end_event(end, false), key);
        after_removal(ex, key, empty, 1);
        ex.propagate(&[pop_name(end), key]);
        return Ok(());
    }
    if !ex.block_on(deadline) {
        ex.out.null_array();
    }
    Ok(())
}

/// `BLPOP key [key ...] timeout`: `[key, element]` from the first non-empty list; blocks
/// otherwise (null array on timeout). Propagated as `LPOP key`.
fn blpop(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    bpop_generic(ex, a, End::Head)
}

/// `BRPOP key [key ...] timeout`: as BLPOP, from the tail. Propagated as `RPOP key`.
fn brpop(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    bpop_generic(ex, a, End::Tail)
}

/// blmoveGenericCommand: serves if `source` has a list (WRONGTYPE if it holds another
/// type), blocks otherwise. True if an element moved.
///
/// The null bulk written here is Redis's answer where blocking is not allowed (MULTI,
/// scripts). A client that did block and times out gets a null *array* from Redis, for
/// BLMOVE and BRPOPLPUSH as for every blocking list command (replyToBlockedClientTimedOut).
/// Serving a waiter needs both keys: the destination may live on another shard.
fn blmove_generic(ex: &mut Exec<'_>, a: &Args, from: End, to: End, deadline: u64) -> Result<bool, CmdError> {
    let (src, dst) = (&a[1], &a[2]);
    let (list, _) = lookup(ex, src, false)?;
    if list.is_none_or(|l| l.is_empty()) {
        if !ex.block_on(deadline) {
            ex.out.null();
        }
        return Ok(false);
    }
    let serving = ex.serving;
    lmove_generic(ex, src, dst, from, to, serving)
}

/// `BLMOVE source destination <LEFT | RIGHT> <LEFT | RIGHT> timeout`: LMOVE, blocking while
/// the source is empty (null on timeout). Propagated as LMOVE.
fn blmove(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (from, to) = (parse_end(&a[3])?, parse_end(&a[4])?);
    let deadline = parse_timeout(&a[5], ex.now)?;
    if blmove_generic(ex, a, from, to, deadline)? {
        ex.propagate(&[b"LMOVE", &a[1], &a[2], &a[3], &a[4]]);
    }
    Ok(())
}

/// `BRPOPLPUSH source destination timeout`: RPOPLPUSH, blocking while the source is empty
/// (null on timeout). Propagated as RPOPLPUSH.
fn brpoplpush(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let deadline = parse_timeout(&a[3], ex.now)?;
    if blmove_generic(ex, a, End::Tail, End::Head, deadline)? {
        ex.propagate(&[b"RPOPLPUSH", &a[1], &a[2]]);
    }
    Ok(())
}

/// `BLMPOP timeout numkeys key [key ...] <LEFT | RIGHT> [COUNT count]`: LMPOP, blocking
/// while every list is empty (null array on timeout). The timeout is checked after the
/// other arguments, as Redis does. Propagated as `LPOP|RPOP key n`.
fn blmpop(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (keys, end, count) = parse_mpop(a, 2)?;
    let deadline = parse_timeout(&a[1], ex.now)?;
    if !serve_mpop(ex, keys, end, count)? && !ex.block_on(deadline) {
        ex.out.null_array();
    }
    Ok(())
}

// ---- the table ------------------------------------------------------------------------------

const RO: &[&str] = &["RO"];
const RO_ACCESS: &[&str] = &["RO", "ACCESS"];
const RW_INSERT: &[&str] = &["RW", "INSERT"];
const RW_UPDATE: &[&str] = &["RW", "UPDATE"];
const RW_DELETE: &[&str] = &["RW", "DELETE"];
const RW_ACCESS_DELETE: &[&str] = &["RW", "ACCESS", "DELETE"];
const LIST: u32 = acl::LIST;

/// LMOVE-like: the source, then the destination.
const MOVE_KEYS: &[KeySpec] = &[KeySpec::one(1, RW_ACCESS_DELETE), KeySpec::one(2, RW_INSERT)];
/// BLPOP/BRPOP: every argument but the name and the timeout.
const BPOP_KEYS: &[KeySpec] = &[KeySpec {
    flags: RW_ACCESS_DELETE,
    begin: Begin::Index(1),
    find: Find::Range {
        lastkey: -2,
        step: 1,
        limit: 0,
    },
    notes: "",
}];
const fn numkeys_at(index: usize) -> [KeySpec; 1] {
    [KeySpec {
        flags: RW_ACCESS_DELETE,
        begin: Begin::Index(index),
        find: Find::Keynum {
            keynumidx: 0,
            firstkey: 1,
            step: 1,
        },
        notes: "",
    }]
}
const LMPOP_KEYS: &[KeySpec] = &numkeys_at(1);
const BLMPOP_KEYS: &[KeySpec] = &numkeys_at(2);

const PUSH_COMPLEXITY: &str =
    "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.";
const POP_COMPLEXITY: &str = "O(N) where N is the number of elements returned";
const MPOP_COMPLEXITY: &str = "O(N+M) where N is the number of provided keys and M is the number of elements returned.";

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "lpush", arity: -3, flags: WRITE | DENYOOM | FAST, acl: LIST, key_specs: &[KeySpec::one(1, RW_INSERT)], group: "list", summary: "Prepends one or more elements to a list. Creates the key if it doesn't exist.", complexity: PUSH_COMPLEXITY, syntax: "key element [element ...]", run: Run::Keyed(lpush, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "rpush", arity: -3, flags: WRITE | DENYOOM | FAST, acl: LIST, key_specs: &[KeySpec::one(1, RW_INSERT)], group: "list", summary: "Appends one or more elements to a list. Creates the key if it doesn't exist.", complexity: PUSH_COMPLEXITY, syntax: "key element [element ...]", run: Run::Keyed(rpush, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "lpushx", arity: -3, flags: WRITE | DENYOOM | FAST, acl: LIST, key_specs: &[KeySpec::one(1, RW_INSERT)], group: "list", since: "2.2.0", summary: "Prepends one or more elements to a list only when the list exists.", complexity: PUSH_COMPLEXITY, syntax: "key element [element ...]", run: Run::Keyed(lpushx, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "rpushx", arity: -3, flags: WRITE | DENYOOM | FAST, acl: LIST, key_specs: &[KeySpec::one(1, RW_INSERT)], group: "list", since: "2.2.0", summary: "Appends an element to a list only when the list exists.", complexity: PUSH_COMPLEXITY, syntax: "key element [element ...]", run: Run::Keyed(rpushx, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "lpop", arity: -2, flags: WRITE | FAST, acl: LIST, key_specs: &[KeySpec::one(1, RW_ACCESS_DELETE)], group: "list", summary: "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.", complexity: POP_COMPLEXITY, syntax: "key [count]", run: Run::Keyed(lpop, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "rpop", arity: -2, flags: WRITE | FAST, acl: LIST, key_specs: &[KeySpec::one(1, RW_ACCESS_DELETE)], group: "list", summary: "Returns and removes the last elements of the list. Deletes the list if the last element was popped.", complexity: POP_COMPLEXITY, syntax: "key [count]", run: Run::Keyed(rpop, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "llen", arity: 2, flags: READONLY | FAST, acl: LIST, key_specs: &[KeySpec::one(1, RO)], group: "list", summary: "Returns the length of a list.", syntax: "key", run: Run::Keyed(llen, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "lrange", arity: 4, flags: READONLY, acl: LIST, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "list", summary: "Returns a range of elements from a list.", complexity: "O(S+N) where S is the distance of start offset from HEAD for small lists, from nearest end (HEAD or TAIL) for large lists; and N is the number of elements in the specified range.", syntax: "key start stop", run: Run::Keyed(lrange, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "lindex", arity: 3, flags: READONLY, acl: LIST, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "list", summary: "Returns an element from a list by its index.", complexity: "O(N) where N is the number of elements to traverse to get to the element at index. This makes asking for the first or the last element of the list O(1).", syntax: "key index", run: Run::Keyed(lindex, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "lset", arity: 4, flags: WRITE | DENYOOM, acl: LIST, key_specs: &[KeySpec::one(1, RW_UPDATE)], group: "list", summary: "Sets the value of an element in a list by its index.", complexity: "O(N) where N is the length of the list. Setting either the first or the last element of the list is O(1).", syntax: "key index element", run: Run::Keyed(lset, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "linsert", arity: 5, flags: WRITE | DENYOOM, acl: LIST, key_specs: &[KeySpec::one(1, RW_INSERT)], group: "list", since: "2.2.0", summary: "Inserts an element before or after another element in a list.", complexity: "O(N) where N is the number of elements to traverse before seeing the value pivot. This means that inserting somewhere on the left end on the list (head) can be considered O(1) and inserting somewhere on the right end (tail) is O(N).", syntax: "key <BEFORE | AFTER> pivot element", run: Run::Keyed(linsert, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "lrem", arity: 4, flags: WRITE, acl: LIST, key_specs: &[KeySpec::one(1, RW_DELETE)], group: "list", summary: "Removes elements from a list. Deletes the list if the last element was removed.", complexity: "O(N+M) where N is the length of the list and M is the number of elements removed.", syntax: "key count element", run: Run::Keyed(lrem, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "ltrim", arity: 4, flags: WRITE, acl: LIST, key_specs: &[KeySpec::one(1, RW_DELETE)], group: "list", summary: "Removes elements from both ends a list. Deletes the list if all elements were trimmed.", complexity: "O(N) where N is the number of elements to be removed by the operation.", syntax: "key start stop", run: Run::Keyed(ltrim, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "lpos", arity: -3, flags: READONLY, acl: LIST, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "list", since: "6.0.6", summary: "Returns the index of matching elements in a list.", complexity: "O(N) where N is the number of elements in the list, for the average case. When searching for elements near the head or the tail of the list, or when the MAXLEN option is provided, the command may run in constant time.", syntax: "key element [RANK rank] [COUNT num-matches] [MAXLEN len]", run: Run::Keyed(lpos, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "lmove", arity: 5, flags: WRITE | DENYOOM, acl: LIST, key_specs: MOVE_KEYS, group: "list", since: "6.2.0", summary: "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.", syntax: "source destination <LEFT | RIGHT> <LEFT | RIGHT>", run: Run::Keyed(lmove, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "rpoplpush", arity: 3, flags: WRITE | DENYOOM, acl: LIST, key_specs: MOVE_KEYS, group: "list", since: "1.2.0", summary: "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.", syntax: "source destination", run: Run::Keyed(rpoplpush, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "lmpop", arity: -4, flags: WRITE, acl: LIST, key_specs: LMPOP_KEYS, group: "list", since: "7.0.0", summary: "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.", complexity: MPOP_COMPLEXITY, syntax: "numkeys key [key ...] <LEFT | RIGHT> [COUNT count]", run: Run::Keyed(lmpop, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "blpop", arity: -3, flags: WRITE | NOSCRIPT | BLOCKING, acl: LIST, key_specs: BPOP_KEYS, group: "list", since: "2.0.0", summary: "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", complexity: "O(N) where N is the number of provided keys.", syntax: "key [key ...] timeout", run: Run::Keyed(blpop, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "brpop", arity: -3, flags: WRITE | NOSCRIPT | BLOCKING, acl: LIST, key_specs: BPOP_KEYS, group: "list", since: "2.0.0", summary: "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", complexity: "O(N) where N is the number of provided keys.", syntax: "key [key ...] timeout", run: Run::Keyed(brpop, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "blmove", arity: 6, flags: WRITE | DENYOOM | NOSCRIPT | BLOCKING, acl: LIST, key_specs: MOVE_KEYS, group: "list", since: "6.2.0", summary: "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.", syntax: "source destination <LEFT | RIGHT> <LEFT | RIGHT> timeout", run: Run::Keyed(blmove, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "brpoplpush", arity: 4, flags: WRITE | DENYOOM | NOSCRIPT | BLOCKING, acl: LIST, key_specs: MOVE_KEYS, group: "list", since: "2.2.0", summary: "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.", syntax: "source destination timeout", run: Run::Keyed(brpoplpush, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "blmpop", arity: -5, flags: WRITE | BLOCKING, acl: LIST, key_specs: BLMPOP_KEYS, group: "list", since: "7.0.0", summary: "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", complexity: MPOP_COMPLEXITY, syntax: "timeout numkeys key [key ...] <LEFT | RIGHT> [COUNT count]", run: Run::Keyed(blmpop, Multi::Atomic), ..CommandSpec::DEFAULT },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::testkit::Kit;
    use crate::persist::Effects;
    use crate::resp::Proto;

    fn enc(kit: &Kit, key: &str) -> String {
        kit.store.dbs[0]
            .peek(key.as_bytes())
            .map(|e| e.value.encoding().to_string())
            .unwrap_or_default()
    }

    /// The propagated commands since the last call, one line each, SELECTs left out.
    fn effects(kit: &mut Kit) -> Vec<String> {
        let text = kit.effects();
        let mut lines = vec![];
        let mut parts = text.split("\r\n").filter(|p| !p.is_empty());
        while let Some(h) = parts.next() {
            let n: usize = h[1..].parse().expect("array header");
            let args: Vec<&str> = (0..n).map(|_| parts.nth(1).expect("bulk")).collect();
            if args[0] != "SELECT" {
                lines.push(args.join(" "));
            }
        }
        lines
    }

    #[test]
    fn pushes_and_pops() {
        let mut kit = Kit::new();
        assert_eq!(kit.run("RPUSH l a b c"), ":3\r\n");
        assert_eq!(kit.run("LPUSH l x y"), ":5\r\n");
        assert_eq!(kit.dirty, 5);
        assert_eq!(
            kit.run("LRANGE l 0 -1"),
            "*5\r\n$1\r\ny\r\n$1\r\nx\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
        );
        assert_eq!(kit.run("LPOP l"), "$1\r\ny\r\n");
        assert_eq!(kit.run("RPOP l 2"), "*2\r\n$1\r\nc\r\n$1\r\nb\r\n");
        assert_eq!(kit.run("LPOP l 0"), "*0\r\n");
        assert_eq!(
            effects(&mut kit),
            ["RPUSH l a b c", "LPUSH l x y", "LPOP l", "RPOP l 2"]
        );
        assert_eq!(kit.run("LPOP l 5"), "*2\r\n$1\r\nx\r\n$1\r\na\r\n");
        assert!(kit.store.dbs[0].peek(b"l").is_none(), "an emptied list is deleted");
        assert_eq!(kit.run("LPOP l"), "$-1\r\n");
        assert_eq!(kit.run("LPOP l 1"), "*-1\r\n");
        kit.proto = Proto::Resp3;
        assert_eq!(kit.run("LPOP l 1"), "_\r\n");
        assert_eq!(kit.run("RPOP l"), "_\r\n");
        assert_eq!(effects(&mut kit), ["LPOP l 5"]);
        assert_eq!(kit.run("LPUSHX l a"), ":0\r\n");
        assert_eq!(effects(&mut kit), Vec::<String>::new());
    }

    #[test]
    fn pop_errors() {
        let mut kit = Kit::new();
        assert_eq!(kit.run("LPOP l -1"), "-ERR value is out of range, must be positive\r\n");
        assert_eq!(kit.run("LPOP l x"), "-ERR value is out of range, must be positive\r\n");
        assert_eq!(
            kit.run("LPOP l 1 2"),
            "-ERR wrong number of arguments for 'lpop' command\r\n"
        );
        kit.run("SET s v");
        assert_eq!(
            kit.run("RPOP s"),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        );
    }

    #[test]
    fn listpack_until_8k_then_quicklist_and_back() {
        let mut kit = Kit::new();
        let v = "v".repeat(100);
        for i in 0..79 {
            kit.run(&format!("RPUSH l {v}"));
            assert_eq!(enc(&kit, "l"), "listpack", "after {} pushes", i + 1);
        }
        kit.run(&format!("RPUSH l {v}"));
        assert_eq!(enc(&kit, "l"), "quicklist");
        // One node of 79 plus one of 1: back to listpack only once a single node is within
        // half the limit (39 entries of 103 bytes).
        kit.run("RPOP l");
        assert_eq!(enc(&kit, "l"), "quicklist");
        kit.run("LTRIM l 0 39");
        assert_eq!(enc(&kit, "l"), "quicklist");
        kit.run("RPOP l");
        assert_eq!(enc(&kit, "l"), "listpack");
        assert_eq!(kit.run("LLEN l"), ":39\r\n");
    }

    #[test]
    fn positive_fill_counts_entries() {
        let mut kit = Kit::new();
        kit.enc.list_max_listpack_size = 4;
        kit.run("RPUSH l 1 2 3 4");
        assert_eq!(enc(&kit, "l"), "listpack");
        kit.run("RPUSH l 5");
        assert_eq!(enc(&kit, "l"), "quicklist");
        kit.run("RPUSH l 6 7 8 9 10");
        kit.run("LTRIM l 0 1");
        assert_eq!(enc(&kit, "l"), "listpack");
        // LINSERT converts before looking for the pivot, as Redis does.
        kit.run("RPUSH m 1 2 3 4");
        assert_eq!(kit.run("LINSERT m BEFORE nope x"), ":-1\r\n");
        assert_eq!(enc(&kit, "m"), "quicklist");
        // LSET converts as if it added, then shrinks back once replaced.
        kit.enc.list_max_listpack_size = -1;
        kit.run(&format!("RPUSH n {} a", "x".repeat(2990)));
        assert_eq!(enc(&kit, "n"), "listpack");
        assert_eq!(kit.run(&format!("LSET n 0 {}", "y".repeat(1100))), "+OK\r\n");
        assert_eq!(enc(&kit, "n"), "listpack");
        kit.run(&format!("LSET n 0 {}", "z".repeat(3000)));
        assert_eq!(enc(&kit, "n"), "quicklist");
        assert_eq!(kit.run("LINDEX n 1"), "$1\r\na\r\n");
    }

    #[test]
    fn lmove_effects_and_types() {
        let mut kit = Kit::new();
        kit.run("RPUSH a 1 2 3");
        assert_eq!(kit.run("LMOVE a b LEFT RIGHT"), "$1\r\n1\r\n");
        assert_eq!(kit.run("RPOPLPUSH a b"), "$1\r\n3\r\n");
        assert_eq!(kit.run("LRANGE b 0 -1"), "*2\r\n$1\r\n3\r\n$1\r\n1\r\n");
        kit.run("SET s v");
        assert_eq!(
            kit.run("LMOVE a s LEFT LEFT"),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        );
        assert_eq!(kit.run("LLEN a"), ":1\r\n");
        assert_eq!(kit.run("LMOVE a a LEFT RIGHT"), "$1\r\n2\r\n");
        assert_eq!(kit.run("LLEN a"), ":1\r\n");
        assert_eq!(kit.run("LMOVE nokey a LEFT RIGHT"), "$-1\r\n");
        assert_eq!(
            effects(&mut kit),
            [
                "RPUSH a 1 2 3",
                "LMOVE a b LEFT RIGHT",
                "RPOPLPUSH a b",
                "SET s v",
                "LMOVE a a LEFT RIGHT"
            ]
        );
        assert_eq!(kit.run("LMOVE a c right left"), "$1\r\n2\r\n");
        assert!(kit.store.dbs[0].peek(b"a").is_none());
        assert_eq!(effects(&mut kit), ["LMOVE a c right left"]);
    }

    #[test]
    fn lmpop_replies_and_effects() {
        let mut kit = Kit::new();
        kit.run("RPUSH b 1 2 3");
        assert_eq!(
            kit.run("LMPOP 2 a b RIGHT COUNT 2"),
            "*2\r\n$1\r\nb\r\n*2\r\n$1\r\n3\r\n$1\r\n2\r\n"
        );
        assert_eq!(
            kit.run("LMPOP 2 a b LEFT COUNT 9"),
            "*2\r\n$1\r\nb\r\n*1\r\n$1\r\n1\r\n"
        );
        assert_eq!(kit.run("LMPOP 2 a b LEFT"), "*-1\r\n");
        kit.run("RPUSH a x");
        assert_eq!(kit.run("LMPOP 1 a LEFT"), "*2\r\n$1\r\na\r\n*1\r\n$1\r\nx\r\n");
        assert_eq!(
            effects(&mut kit),
            ["RPUSH b 1 2 3", "RPOP b 2", "LPOP b 1", "RPUSH a x", "LPOP a 1"]
        );
        assert_eq!(kit.run("LMPOP 0 a LEFT"), "-ERR numkeys should be greater than 0\r\n");
        assert_eq!(
            kit.run("LMPOP 1 a LEFT COUNT 0"),
            "-ERR count should be greater than 0\r\n"
        );
        assert_eq!(kit.run("LMPOP 2 a LEFT"), "-ERR syntax error\r\n");
    }

    #[test]
    fn blocking_forms_serve_and_propagate_the_plain_forms() {
        let mut kit = Kit::new();
        kit.run("RPUSH a 1 2 3 4 5");
        assert_eq!(kit.run("BLPOP x a 0"), "*2\r\n$1\r\na\r\n$1\r\n1\r\n");
        assert_eq!(kit.run("BRPOP a 0"), "*2\r\n$1\r\na\r\n$1\r\n5\r\n");
        assert_eq!(kit.run("BLMOVE a b LEFT RIGHT 0"), "$1\r\n2\r\n");
        assert_eq!(kit.run("BRPOPLPUSH a b 0"), "$1\r\n4\r\n");
        assert_eq!(
            kit.run("BLMPOP 0 2 x a RIGHT COUNT 3"),
            "*2\r\n$1\r\na\r\n*1\r\n$1\r\n3\r\n"
        );
        assert_eq!(
            effects(&mut kit),
            [
                "RPUSH a 1 2 3 4 5",
                "LPOP a",
                "RPOP a",
                "LMOVE a b LEFT RIGHT",
                "RPOPLPUSH a b",
                "RPOP a 1"
            ]
        );
        // Not allowed to block (MULTI, scripts): the timeout replies.
        assert_eq!(kit.run("BLPOP a 0"), "*-1\r\n");
        assert_eq!(kit.run("BLMOVE a b LEFT RIGHT 0"), "$-1\r\n");
        assert_eq!(kit.run("BRPOPLPUSH a b 0"), "$-1\r\n");
        assert_eq!(kit.run("BLMPOP 0 1 a LEFT"), "*-1\r\n");
        assert_eq!(kit.run("BLMPOP x 1 a MIDDLE"), "-ERR syntax error\r\n");
        assert_eq!(
            kit.run("BLMPOP x 1 a LEFT"),
            "-ERR timeout is not a float or out of range\r\n"
        );
    }

    /// Runs a command in a context that may block: (reply, requested deadline).
    fn run_may_block(kit: &mut Kit, line: &str) -> (String, Option<u64>) {
        let args = Args::new(line.split(' ').map(|s| Bytes::copy_from_slice(s.as_bytes())).collect());
        let cmd = crate::command::table::lookup(&args[0]).expect("a command");
        let Run::Keyed(f, _) = cmd.spec.run else { unreachable!() };
        let mut out = Reply::new(Proto::Resp2);
        let mut effects = Effects::new(false);
        let mut ex = Exec::local(&mut kit.store, &mut out, &mut effects, kit.now);
        ex.may_block = true;
        f(&mut ex, &args).expect("no error");
        let block = ex.block;
        drop(ex);
        (String::from_utf8_lossy(&out.take()).into_owned(), block)
    }

    #[test]
    fn blocking_forms_block_when_nothing_serves() {
        let mut kit = Kit::new();
        let now = kit.now;
        assert_eq!(run_may_block(&mut kit, "BLPOP a b 0"), (String::new(), Some(0)));
        assert_eq!(
            run_may_block(&mut kit, "BRPOP a 1.5"),
            (String::new(), Some(now + 1500))
        );
        assert_eq!(
            run_may_block(&mut kit, "BLMOVE a b LEFT RIGHT 0.01"),
            (String::new(), Some(now + 10))
        );
        assert_eq!(
            run_may_block(&mut kit, "BRPOPLPUSH a b 2"),
            (String::new(), Some(now + 2000))
        );
        assert_eq!(run_may_block(&mut kit, "BLMPOP 0 2 a b LEFT"), (String::new(), Some(0)));
        kit.run("RPUSH b x");
        assert_eq!(
            run_may_block(&mut kit, "BLPOP a b 0"),
            ("*2\r\n$1\r\nb\r\n$1\r\nx\r\n".to_string(), None)
        );
    }

    #[test]
    fn trims_and_removals_propagate_only_changes() {
        let mut kit = Kit::new();
        kit.run("RPUSH l a b a c");
        kit.effects();
        assert_eq!(kit.run("LTRIM l 0 -1"), "+OK\r\n");
        assert_eq!(kit.run("LREM l 0 zz"), ":0\r\n");
        assert_eq!(kit.run("LINSERT l BEFORE zz x"), ":-1\r\n");
        assert_eq!(effects(&mut kit), Vec::<String>::new());
        assert_eq!(kit.run("LREM l -1 a"), ":1\r\n");
        assert_eq!(kit.run("LTRIM l 1 -1"), "+OK\r\n");
        assert_eq!(kit.run("LRANGE l 0 -1"), "*2\r\n$1\r\nb\r\n$1\r\nc\r\n");
        assert_eq!(effects(&mut kit), ["LREM l -1 a", "LTRIM l 1 -1"]);
        assert_eq!(kit.run("LTRIM l 5 1"), "+OK\r\n");
        assert!(kit.store.dbs[0].peek(b"l").is_none());
    }

    #[test]
    fn lpos_options() {
        let mut kit = Kit::new();
        kit.run("RPUSH l a b c 1 2 3 c c");
        assert_eq!(kit.run("LPOS l c RANK -1 COUNT 2"), "*2\r\n:7\r\n:6\r\n");
        assert_eq!(kit.run("LPOS l c COUNT 0 MAXLEN 7"), "*2\r\n:2\r\n:6\r\n");
        assert_eq!(kit.run("LPOS l 3"), ":5\r\n");
        assert_eq!(kit.run("LPOS l c RANK 4"), "$-1\r\n");
        assert!(kit.run("LPOS l c RANK 0").starts_with("-ERR RANK can't be zero"));
        assert_eq!(kit.run("LPOS l c COUNT -1"), "-ERR COUNT can't be negative\r\n");
        assert_eq!(kit.run("LPOS l c MAXLEN x"), "-ERR MAXLEN can't be negative\r\n");
    }

    #[test]
    fn reads_count_hits_and_misses() {
        let mut kit = Kit::new();
        kit.run("LLEN nokey");
        kit.run("RPUSH l a");
        kit.run("LRANGE l 0 -1");
        kit.run("LPOP nokey");
        let s = kit.store.dbs[0].stats;
        assert_eq!((s.keyspace_hits, s.keyspace_misses), (1, 1));
    }
}
