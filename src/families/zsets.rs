//! The sorted set commands. Argument parsing and range grammars first, then the handlers
//! (reads, writes, ranges, pops, blocking pops, set algebra, random and scan), then the table.
//!
//! Replies follow Redis 7.0/7.2: scores are doubles (RESP2 bulk `%.17g`), WITHSCORES is a flat
//! array in RESP2 and an array of `[member, score]` pairs in RESP3 (except ZPOPMIN/ZPOPMAX
//! without COUNT, flat in both), ZMPOP/BZMPOP nest pairs in both protocols.

use std::collections::HashMap;

use crate::command::acl;
use crate::command::args::{int_in_range, parse_f64, parse_i64, parse_timeout, positive};
use crate::command::flags::*;
use crate::command::{Args, Begin, CommandSpec, Exec, Find, KeySpec, Multi, Run};
use crate::config::glob_match;
use crate::config::NotifyFlags;
use crate::error::CmdError;
use crate::resp::reply::format_double;
use crate::resp::{Proto, Reply};
use crate::store::set::Set;
use crate::store::zset::{AddFlags, AddOutcome, LexBound, LexRange, Range, ScoreRange, ZSet};
use crate::store::Value;

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

const NAN_ERR: CmdError = CmdError::Static("ERR resulting score is not a number (NaN)");
const SCORE_RANGE_ERR: CmdError = CmdError::Static("ERR min or max is not a float");
const LEX_RANGE_ERR: CmdError = CmdError::Static("ERR min or max not valid string range item");

/// A score argument as Redis's getDoubleFromObject: strtod's grammar over the whole
/// argument, no leading space, no NaN, and overflow/underflow (ERANGE) refused.
fn score_of(s: &[u8]) -> Option<f64> {
    if s == b"0" {
        return Some(0.0);
    }
    let v = parse_f64(s)?;
    if v.is_infinite() && !s.iter().any(|c| matches!(c, b'i' | b'I')) {
        return None;
    }
    if v == 0.0 {
        // Underflow: a non-zero mantissa digit that still gave zero.
        let mantissa = s
            .split(|c| matches!(c, b'e' | b'E' | b'p' | b'P'))
            .next()
            .unwrap_or(b"");
        let hex = mantissa.windows(2).any(|w| w[0] == b'0' && (w[1] | 0x20) == b'x');
        let digits = if hex {
            &mantissa[2.min(mantissa.len())..]
        } else {
            mantissa
        };
        if digits
            .iter()
            .any(|c| c.is_ascii_alphanumeric() && *c != b'0' && *c != b'x' && *c != b'X')
        {
            return None;
        }
    }
    Some(v)
}

fn score_arg(s: &[u8]) -> Result<f64, CmdError> {
    score_of(s).ok_or(CmdError::NotFloat)
}

/// One end of a score range: `(` for exclusive, then strtod's grammar (leading spaces allowed,
/// the empty string is 0, NaN refused).
fn range_item(s: &[u8]) -> Option<(f64, bool)> {
    let (ex, s) = match s.first() {
        Some(b'(') => (true, &s[1..]),
        _ => (false, s),
    };
    if s.is_empty() {
        return Some((0.0, ex));
    }
    let start = s
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))?;
    Some((parse_f64(&s[start..])?, ex))
}

fn score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, CmdError> {
    let (min, minex) = range_item(min).ok_or(SCORE_RANGE_ERR)?;
    let (max, maxex) = range_item(max).ok_or(SCORE_RANGE_ERR)?;
    Ok(ScoreRange { min, max, minex, maxex })
}

fn lex_item(s: &[u8]) -> Option<LexBound<'_>> {
    match s.first()? {
        b'+' if s.len() == 1 => Some(LexBound::PosInf),
        b'-' if s.len() == 1 => Some(LexBound::NegInf),
        b'[' => Some(LexBound::Incl(&s[1..])),
        b'(' => Some(LexBound::Excl(&s[1..])),
        _ => None,
    }
}

fn lex_range<'a>(min: &'a [u8], max: &'a [u8]) -> Result<LexRange<'a>, CmdError> {
    Ok(LexRange {
        min: lex_item(min).ok_or(LEX_RANGE_ERR)?,
        max: lex_item(max).ok_or(LEX_RANGE_ERR)?,
    })
}

/// Redis's getRangeLongFromObjectOrReply(1, LONG_MAX) with a message for both failures.
fn at_least_one(s: &[u8], msg: &'static str) -> Result<i64, CmdError> {
    match parse_i64(s) {
        Some(n) if n >= 1 => Ok(n),
        _ => Err(CmdError::Static(msg)),
    }
}

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

/// The header of `n` elements with or without scores: RESP3 pairs, RESP2 a flat array.
fn items_header(out: &mut Reply, n: usize, withscores: bool) {
    if withscores && out.proto == Proto::Resp2 {
        out.array(n * 2);
    } else {
        out.array(n);
    }
}

fn item(out: &mut Reply, m: &[u8], s: f64, withscores: bool) {
    if !withscores {
        out.bulk(m);
        return;
    }
    if out.proto == Proto::Resp3 {
        out.array(2);
    }
    out.bulk(m);
    out.double(s);
}

fn reply_items(out: &mut Reply, items: &[(Vec<u8>, f64)], withscores: bool) {
    items_header(out, items.len(), withscores);
    for (m, s) in items {
        item(out, m, *s, withscores);
    }
}

/// ZMPOP's shape: `[key, [[member, score], ...]]` in both protocols.
fn reply_mpop(out: &mut Reply, key: &[u8], items: &[(Vec<u8>, f64)]) {
    out.array(2);
    out.bulk(key);
    out.array(items.len());
    for (m, s) in items {
        out.array(2);
        out.bulk(m);
        out.double(*s);
    }
}

/// A read of `key` as a sorted set together with the reply writer, so a reply can be
/// written straight from the set without copying the elements.
fn read_with_out<'e>(ex: &'e mut Exec<'_>, key: &[u8]) -> Result<(Option<&'e mut ZSet>, &'e mut Reply), CmdError> {
    let (now, touch, db) = (ex.now, ex.touch(), ex.db);
    let out = &mut *ex.out;
    match ex.ks.db(db, key).lookup(key, now, touch) {
        None => Ok((None, out)),
        Some(e) => match &mut e.value {
            Value::ZSet(z) => Ok((Some(z), out)),
            _ => Err(CmdError::WrongType),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// ZADD, ZINCRBY, ZREM and the point reads
// ---------------------------------------------------------------------------------------------

/// ZADD key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]
fn zadd(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let mut f = AddFlags::default();
    let mut ch = false;
    let mut i = 2;
    while i < a.len() {
        if a.is(i, "NX") {
            f.nx = true;
        } else if a.is(i, "XX") {
            f.xx = true;
        } else if a.is(i, "GT") {
            f.gt = true;
        } else if a.is(i, "LT") {
            f.lt = true;
        } else if a.is(i, "CH") {
            ch = true;
        } else if a.is(i, "INCR") {
            f.incr = true;
        } else {
            break;
        }
        i += 1;
    }
    zadd_generic(ex, a, i, f, ch)
}

/// ZINCRBY key increment member
fn zincrby(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    zadd_generic(
        ex,
        a,
        2,
        AddFlags {
            incr: true,
            ..AddFlags::default()
        },
        false,
    )
}

fn zadd_generic(ex: &mut Exec<'_>, a: &Args, first: usize, f: AddFlags, ch: bool) -> Result<(), CmdError> {
    let elements = a.len() - first;
    if elements % 2 != 0 || elements == 0 {
        return Err(CmdError::Syntax);
    }
    let pairs = elements / 2;
    if f.nx && f.xx {
        return Err(CmdError::Static(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (f.gt || f.lt) && (f.nx || (f.gt && f.lt)) {
        return Err(CmdError::Static(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if f.incr && pairs > 1 {
        return Err(CmdError::Static(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    // Every score is checked before anything changes.
    let mut maxlen = 0;
    for p in 0..pairs {
        score_arg(&a[first + 2 * p])?;
        maxlen = maxlen.max(a[first + 2 * p + 1].len());
    }
    let key = &a[1];
    let enc = ex.enc;
    if f.xx && ex.write(key, Value::as_zset)?.is_none() {
        if f.incr {
            ex.out.null();
        } else {
            ex.out.int(0);
        }
        return Ok(());
    }
    let z = if f.xx {
        // Looked up just above.
        ex.write_again(key, Value::as_zset)?.ok_or(CmdError::WrongType)?
    } else {
        ex.write_or_create(key, Value::as_zset, || {
            Value::ZSet(ZSet::with_hint(pairs, maxlen, &enc))
        })?
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last = 0.0;
    let mut nan = false;
    for p in 0..pairs {
        let score = score_of(&a[first + 2 * p]).unwrap_or(0.0);
        match z.add(&a[first + 2 * p + 1], score, f, &enc) {
            AddOutcome::Added(s) => {
                added += 1;
                processed += 1;
                last = s;
            }
            AddOutcome::Updated(s) => {
                updated += 1;
                processed += 1;
                last = s;
            }
            AddOutcome::Same(s) => {
                processed += 1;
                last = s;
            }
            AddOutcome::Nop => {}
            AddOutcome::Nan => {
                nan = true;
                break;
            }
        }
    }
    if added + updated > 0 {
        ex.dirty += (added + updated) as u64;
        ex.propagate_as_is(a);
        if added > 0 {
            ex.signal_ready(key);
        }
        ex.notify(NotifyFlags::ZSET, if f.incr { "zincr" } else { "zadd" }, key);
    }
    if nan {
        return Err(NAN_ERR);
    }
    if f.incr {
        if processed > 0 {
            ex.out.double(last);
        } else {
            ex.out.null();
        }
    } else {
        ex.out.int(if ch { added + updated } else { added });
    }
    Ok(())
}

/// ZREM key member [member ...]
fn zrem(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let key = &a[1];
    let Some(z) = ex.write(key, Value::as_zset)? else {
        ex.out.int(0);
        return Ok(());
    };
    let mut deleted = 0i64;
    for i in 2..a.len() {
        if z.remove(&a[i]).is_some() {
            deleted += 1;
            if z.is_empty() {
                break;
            }
        }
    }
    if deleted > 0 {
        ex.notify(NotifyFlags::ZSET, "zrem", key);
        if ex.remove_if_empty(key) {
            ex.notify(NotifyFlags::GENERIC, "del", key);
        }
        ex.dirty += deleted as u64;
        ex.propagate_as_is(a);
    }
    ex.out.int(deleted);
    Ok(())
}

/// ZCARD key
fn zcard(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let n = ex.read(&a[1], Value::as_zset)?.map_or(0, |z| z.len());
    ex.out.int(n as i64);
    Ok(())
}

/// ZSCORE key member
fn zscore(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    match ex.read(&a[1], Value::as_zset)?.and_then(|z| z.score(&a[2])) {
        Some(s) => ex.out.double(s),
        None => ex.out.null(),
    }
    Ok(())
}

/// ZMSCORE key member [member ...]
fn zmscore(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let scores: Vec<Option<f64>> = match ex.read(&a[1], Value::as_zset)? {
        Some(z) => (2..a.len()).map(|i| z.score(&a[i])).collect(),
        None => vec![None; a.len() - 2],
    };
    ex.out.array(scores.len());
    for s in scores {
        match s {
            Some(s) => ex.out.double(s),
            None => ex.out.null(),
        }
    }
    Ok(())
}

/// ZRANK key member [WITHSCORE]
fn zrank(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    zrank_generic(ex, a, false)
}

/// ZREVRANK key member [WITHSCORE]
fn zrevrank(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    zrank_generic(ex, a, true)
}

fn zrank_generic(ex: &mut Exec<'_>, a: &Args, rev: bool) -> Result<(), CmdError> {
    if a.len() > 4 || (a.len() == 4 && !a.is(3, "WITHSCORE")) {
        return Err(CmdError::Syntax);
    }
    let withscore = a.len() == 4;
    let found = match ex.read(&a[1], Value::as_zset)? {
        Some(z) => z.rank(&a[2]).map(|(r, s)| (if rev { z.len() - 1 - r } else { r }, s)),
        None => None,
    };
    match found {
        Some((r, s)) => {
            if withscore {
                ex.out.array(2);
                ex.out.int(r as i64);
                ex.out.double(s);
            } else {
                ex.out.int(r as i64);
            }
        }
        None if withscore => ex.out.null_array(),
        None => ex.out.null(),
    }
    Ok(())
}

/// ZCOUNT key min max
fn zcount(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let r = score_range(&a[2], &a[3])?;
    let n = ex.read(&a[1], Value::as_zset)?.map_or(0, |z| {
        let (lo, hi) = z.rank_span(&r);
        hi - lo
    });
    ex.out.int(n as i64);
    Ok(())
}

/// ZLEXCOUNT key min max
fn zlexcount(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let r = lex_range(&a[2], &a[3])?;
    let n = ex.read(&a[1], Value::as_zset)?.map_or(0, |z| match z {
        // Redis counts a listpack's by walking from the first element in range, a
        // skiplist's by rank arithmetic (the same when the scores are equal).
        ZSet::Pack(_) => lex_select(z, &r, false, 0, -1).1,
        ZSet::Skip(_) => {
            let (lo, hi) = z.rank_span(&r);
            hi - lo
        }
    });
    ex.out.int(n as i64);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Ranges
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    Rank,
    Score,
    Lex,
}

/// A parsed range request: which elements, in which direction.
struct RangeReq<'a> {
    by: By,
    rev: bool,
    withscores: bool,
    offset: i64,
    limit: i64,
    min: &'a [u8],
    max: &'a [u8],
}

/// Parses the shared grammar of ZRANGE and friends: `min max [BYSCORE | BYLEX] [REV]
/// [WITHSCORES] [LIMIT offset count]`, with `by`/`rev` fixed for the legacy commands.
fn parse_range<'a>(
    a: &'a Args,
    start: usize,
    store: bool,
    by: Option<By>,
    rev: Option<bool>,
) -> Result<RangeReq<'a>, CmdError> {
    let (mut by_opt, mut rev_opt) = (by, rev);
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = start + 2;
    while j < a.len() {
        let left = a.len() - j - 1;
        if !store && a.is(j, "WITHSCORES") {
            withscores = true;
        } else if a.is(j, "LIMIT") && left >= 2 {
            offset = a.int(j + 1)?;
            limit = a.int(j + 2)?;
            j += 2;
        } else if rev_opt.is_none() && a.is(j, "REV") {
            rev_opt = Some(true);
        } else if by_opt.is_none() && a.is(j, "BYLEX") {
            by_opt = Some(By::Lex);
        } else if by_opt.is_none() && a.is(j, "BYSCORE") {
            by_opt = Some(By::Score);
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let rev = rev_opt.unwrap_or(false);
    let by = by_opt.unwrap_or(By::Rank);
    if limit != -1 && by == By::Rank {
        return Err(CmdError::Static(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && by == By::Lex {
        return Err(CmdError::Static(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (mut min, mut max) = (&a[start], &a[start + 1]);
    if rev && by != By::Rank {
        std::mem::swap(&mut min, &mut max);
    }
    Ok(RangeReq {
        by,
        rev,
        withscores,
        offset,
        limit,
        min,
        max,
    })
}

/// The range's bounds checked before the key is looked up (Redis's order of errors).
enum Bounds<'a> {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange<'a>),
}

fn bounds<'a>(r: &RangeReq<'a>) -> Result<Bounds<'a>, CmdError> {
    Ok(match r.by {
        By::Rank => Bounds::Rank(
            parse_i64(r.min).ok_or(CmdError::NotInteger)?,
            parse_i64(r.max).ok_or(CmdError::NotInteger)?,
        ),
        By::Score => Bounds::Score(score_range(r.min, r.max)?),
        By::Lex => Bounds::Lex(lex_range(r.min, r.max)?),
    })
}

/// Where the selected elements start (a 0-based rank), how many there are, and the direction.
fn select(z: &ZSet, r: &RangeReq<'_>, b: &Bounds<'_>) -> (usize, usize) {
    let len = z.len() as i64;
    let (lo, hi) = match b {
        Bounds::Rank(start, end) => {
            let (mut s, mut e) = (*start, *end);
            if s < 0 {
                s += len;
            }
            if e < 0 {
                e += len;
            }
            if s < 0 {
                s = 0;
            }
            if s > e || s >= len {
                return (0, 0);
            }
            if e >= len {
                e = len - 1;
            }
            let n = (e - s + 1) as usize;
            return if r.rev {
                ((len - 1 - s) as usize, n)
            } else {
                (s as usize, n)
            };
        }
        Bounds::Score(sr) => z.rank_span(sr),
        Bounds::Lex(lr) => return lex_select(z, lr, r.rev, r.offset, r.limit),
    };
    let span = hi - lo;
    if r.offset < 0 || r.offset as u64 >= span as u64 {
        return (0, 0);
    }
    let off = r.offset as usize;
    let mut n = span - off;
    if r.limit >= 0 {
        n = n.min(r.limit as usize);
    }
    if r.rev {
        (hi - 1 - off, n)
    } else {
        (lo + off, n)
    }
}

/// A lex range's elements as Redis walks them (genericZrangebylexCommand): from the first
/// element in range (the last, reversed: zzlFirstInLexRange / zzlLastInLexRange, after the
/// zzlIsInLexRange checks of both ends of the set), `offset` elements skipped unchecked, then
/// elements while they stay in range, up to `limit`. When the scores are equal (the use Redis
/// documents) that is the rank span; when they differ, Redis calls the result unspecified but
/// gives this walk's, and so does basalt. Returns (start rank, count).
fn lex_select(z: &ZSet, r: &LexRange<'_>, rev: bool, offset: i64, limit: i64) -> (usize, usize) {
    let len = z.len();
    if len == 0 || offset < 0 || limit == 0 || r.is_empty_range() {
        return (0, 0);
    }
    if z.test_at(len - 1, |m, s| r.below_min(s, m)) || z.test_at(0, |m, s| r.above_max(s, m)) {
        return (0, 0);
    }
    let start = if rev {
        match z.last_not_above(r) {
            Some(l) if !z.test_at(l, |m, s| r.below_min(s, m)) => l,
            _ => return (0, 0),
        }
    } else {
        let f = z.count_below(r);
        if f >= len || z.test_at(f, |m, s| r.above_max(s, m)) {
            return (0, 0);
        }
        f
    };
    let off = offset as usize;
    let at = if rev {
        start.checked_sub(off)
    } else {
        Some(start + off).filter(|&a| a < len)
    };
    let Some(at) = at else { return (0, 0) };
    let mut n = 0usize;
    z.visit(at, rev, |m, s| {
        let inside = if rev { !r.below_min(s, m) } else { !r.above_max(s, m) };
        if inside {
            n += 1;
        }
        inside && (limit < 0 || (n as i64) < limit)
    });
    (at, n)
}

fn collect(z: &ZSet, at: usize, n: usize, rev: bool) -> Vec<(Vec<u8>, f64)> {
    let mut out = Vec::with_capacity(n);
    if n > 0 {
        z.visit(at, rev, |m, s| {
            out.push((m.to_vec(), s));
            out.len() < n
        });
    }
    out
}

fn zrange_generic(ex: &mut Exec<'_>, a: &Args, by: Option<By>, rev: Option<bool>) -> Result<(), CmdError> {
    let r = parse_range(a, 2, false, by, rev)?;
    let b = bounds(&r)?;
    let (Some(z), out) = read_with_out(ex, &a[1])? else {
        ex.out.array(0);
        return Ok(());
    };
    let (at, n) = select(z, &r, &b);
    items_header(out, n, r.withscores);
    if n > 0 {
        let mut left = n;
        z.visit(at, r.rev, |m, s| {
            item(out, m, s, r.withscores);
            left -= 1;
            left > 0
        });
    }
    Ok(())
}

/// ZRANGE key start stop [BYSCORE | BYLEX] [REV] [LIMIT offset count] [WITHSCORES]
fn zrange(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    zrange_generic(ex, a, None, None)
}

/// ZREVRANGE key start stop [WITHSCORES]
fn zrevrange(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    zrange_generic(ex, a, Some(By::Rank), Some(true))
}

/// ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]
fn zrangebyscore(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    zrange_generic(ex, a, Some(By::Score), Some(false))
}

/// ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]
fn zrevrangebyscore(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    zrange_generic(ex, a, Some(By::Score), Some(true))
}

/// ZRANGEBYLEX key min max [LIMIT offset count]
fn zrangebylex(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    zrange_generic(ex, a, Some(By::Lex), Some(false))
}

/// ZREVRANGEBYLEX key max min [LIMIT offset count]
fn zrevrangebylex(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    zrange_generic(ex, a, Some(By::Lex), Some(true))
}

/// Stores `items` (any order, distinct) at `dst` as Redis stores a computed sorted set:
/// replaced (TTL dropped), or deleted when empty. Replies the count and notifies `event`
/// (or `del`).
fn store_result(ex: &mut Exec<'_>, a: &Args, dst: &[u8], mut items: Vec<(Vec<u8>, f64)>, event: &str) {
    let n = items.len();
    if n > 0 {
        items.sort_by(|x, y| {
            x.1.partial_cmp(&y.1)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| x.0.cmp(&y.0))
        });
        let z = ZSet::from_sorted(&items, &ex.enc);
        let now = ex.now;
        ex.db(dst).set_key(dst, Value::ZSet(z), now);
        ex.dirty += 1;
        ex.propagate_as_is(a);
        ex.notify(NotifyFlags::ZSET, event, dst);
    } else if ex.db(dst).remove(dst).is_some() {
        ex.dirty += 1;
        ex.propagate_as_is(a);
        ex.notify(NotifyFlags::GENERIC, "del", dst);
    }
    ex.out.int(n as i64);
}

/// ZRANGESTORE dst src min max [BYSCORE | BYLEX] [REV] [LIMIT offset count]
fn zrangestore(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let r = parse_range(a, 3, true, None, None)?;
    let b = bounds(&r)?;
    let items = match ex.read(&a[2], Value::as_zset)? {
        Some(z) => {
            let (at, n) = select(z, &r, &b);
            collect(z, at, n, r.rev)
        }
        None => Vec::new(),
    };
    store_result(ex, a, &a[1], items, "zrangestore");
    Ok(())
}

/// ZREMRANGEBYRANK key start stop / ZREMRANGEBYSCORE key min max / ZREMRANGEBYLEX key min max
fn zremrange_generic(ex: &mut Exec<'_>, a: &Args, by: By) -> Result<(), CmdError> {
    let r = RangeReq {
        by,
        rev: false,
        withscores: false,
        offset: 0,
        limit: -1,
        min: &a[2],
        max: &a[3],
    };
    let b = bounds(&r)?;
    let key = &a[1];
    let Some(z) = ex.write(key, Value::as_zset)? else {
        ex.out.int(0);
        return Ok(());
    };
    let (at, n) = select(z, &r, &b);
    let doomed = collect(z, at, n, false);
    for (m, _) in &doomed {
        z.remove(m);
    }
    if n > 0 {
        let event = match by {
            By::Rank => "zremrangebyrank",
            By::Score => "zremrangebyscore",
            By::Lex => "zremrangebylex",
        };
        ex.notify(NotifyFlags::ZSET, event, key);
        if ex.remove_if_empty(key) {
            ex.notify(NotifyFlags::GENERIC, "del", key);
        }
        ex.dirty += n as u64;
        ex.propagate_as_is(a);
    }
    ex.out.int(n as i64);
    Ok(())
}

fn zremrangebyrank(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    zremrange_generic(ex, a, By::Rank)
}

fn zremrangebyscore(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    zremrange_generic(ex, a, By::Score)
}

fn zremrangebylex(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    zremrange_generic(ex, a, By::Lex)
}

// ---------------------------------------------------------------------------------------------
// Pops
// ---------------------------------------------------------------------------------------------

/// Pops up to `count` from `key`, a zset the caller has looked up already (with
/// `Exec::write`); deletes it when emptied.
fn pop_from(ex: &mut Exec<'_>, key: &[u8], count: usize, max: bool) -> Result<Vec<(Vec<u8>, f64)>, CmdError> {
    let Some(z) = ex.write_again(key, Value::as_zset)? else {
        return Ok(Vec::new());
    };
    let items = z.pop(count, max);
    if !items.is_empty() {
        ex.notify(NotifyFlags::ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
        if ex.remove_if_empty(key) {
            ex.notify(NotifyFlags::GENERIC, "del", key);
        }
        ex.dirty += items.len() as u64;
    }
    Ok(items)
}

/// ZPOPMIN key [count] / ZPOPMAX key [count]
fn zpop_generic(ex: &mut Exec<'_>, a: &Args, max: bool) -> Result<(), CmdError> {
    if a.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = if a.len() == 3 { positive(&a[2])? as usize } else { 1 };
    ex.write(&a[1], Value::as_zset)?;
    if count == 0 {
        ex.out.array(0);
        return Ok(());
    }
    let items = pop_from(ex, &a[1], count, max)?;
    if !items.is_empty() {
        ex.propagate_as_is(a);
    }
    if a.len() == 3 {
        reply_items(ex.out, &items, true);
    } else {
        // Without COUNT the reply is flat in RESP3 too.
        ex.out.array(items.len() * 2);
        for (m, s) in &items {
            ex.out.bulk(m);
            ex.out.double(*s);
        }
    }
    Ok(())
}

fn zpopmin(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    zpop_generic(ex, a, false)
}

fn zpopmax(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    zpop_generic(ex, a, true)
}

/// `numkeys key [key ...] MIN | MAX [COUNT count]` from `at`: (keys, max, count).
fn parse_mpop(a: &Args, at: usize) -> Result<(Vec<usize>, bool, usize), CmdError> {
    let numkeys = at_least_one(&a[at], "ERR numkeys should be greater than 0")? as usize;
    let where_idx = at.saturating_add(numkeys).saturating_add(1);
    if where_idx >= a.len() {
        return Err(CmdError::Syntax);
    }
    let max = if a.is(where_idx, "MIN") {
        false
    } else if a.is(where_idx, "MAX") {
        true
    } else {
        return Err(CmdError::Syntax);
    };
    let mut count = None;
    let mut j = where_idx + 1;
    while j < a.len() {
        if count.is_none() && a.is(j, "COUNT") && j + 1 < a.len() {
            count = Some(at_least_one(&a[j + 1], "ERR count should be greater than 0")? as usize);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(((at + 1..where_idx).collect(), max, count.unwrap_or(1)))
}

/// Serves the first non-empty key for ZMPOP/BZMPOP: true if one served. `blocking`: the
/// served key is looked up a second time, as Redis's blockingGenericZpopCommand does
/// before it calls genericZpopCommand (an LFU counter counts both).
fn mpop_serve(
    ex: &mut Exec<'_>,
    a: &Args,
    keys: &[usize],
    max: bool,
    count: usize,
    blocking: bool,
) -> Result<bool, CmdError> {
    for &k in keys {
        let key = &a[k];
        if ex.write(key, Value::as_zset)?.is_none() {
            continue;
        }
        if blocking {
            ex.write(key, Value::as_zset)?;
        }
        let items = pop_from(ex, key, count, max)?;
        let mut buf = crate::store::value::itoa_buf::Buf::new();
        let n = buf.format(count as i64);
        let cmd: &[u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
        ex.propagate(&[cmd, key, n]);
        reply_mpop(ex.out, key, &items);
        return Ok(true);
    }
    Ok(false)
}

/// ZMPOP numkeys key [key ...] MIN | MAX [COUNT count]
fn zmpop(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (keys, max, count) = parse_mpop(a, 1)?;
    if !mpop_serve(ex, a, &keys, max, count, false)? {
        ex.out.null_array();
    }
    Ok(())
}

/// BZMPOP timeout numkeys key [key ...] MIN | MAX [COUNT count]
fn bzmpop(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let deadline = parse_timeout(&a[1], ex.now)?;
    let (keys, max, count) = parse_mpop(a, 2)?;
    if mpop_serve(ex, a, &keys, max, count, true)? {
        return Ok(());
    }
    if ex.block_on(deadline) {
        return Ok(());
    }
    ex.out.null_array();
    Ok(())
}

/// BZPOPMIN key [key ...] timeout / BZPOPMAX key [key ...] timeout
fn bzpop_generic(ex: &mut Exec<'_>, a: &Args, max: bool) -> Result<(), CmdError> {
    let deadline = parse_timeout(&a[a.len() - 1], ex.now)?;
    for k in 1..a.len() - 1 {
        let key = &a[k];
        if ex.write(key, Value::as_zset)?.is_none() {
            continue;
        }
        // Redis looks the served key up again (genericZpopCommand), see mpop_serve.
        ex.write(key, Value::as_zset)?;
        let items = pop_from(ex, key, 1, max)?;
        let Some((m, s)) = items.into_iter().next() else {
            continue;
        };
        let cmd: &[u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
        ex.propagate(&[cmd, key]);
        ex.out.array(3);
        ex.out.bulk(key);
        ex.out.bulk(&m);
        ex.out.double(s);
        return Ok(());
    }
    if ex.block_on(deadline) {
        return Ok(());
    }
    ex.out.null_array();
    Ok(())
}

fn bzpopmin(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    bzpop_generic(ex, a, false)
}

fn bzpopmax(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    bzpop_generic(ex, a, true)
}

// ---------------------------------------------------------------------------------------------
// Set algebra: ZUNION ZINTER ZDIFF (and STORE), ZINTERCARD
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(agg: Aggregate, acc: &mut f64, v: f64) {
    match agg {
        Aggregate::Sum => {
            *acc += v;
            if acc.is_nan() {
                *acc = 0.0;
            }
        }
        Aggregate::Min => {
            if v < *acc {
                *acc = v;
            }
        }
        Aggregate::Max => {
            if v > *acc {
                *acc = v;
            }
        }
    }
}

/// The members of a plain set (each scores 1 in set operations).
fn set_members(s: &Set) -> Vec<Vec<u8>> {
    s.iter().map(|m| m.to_vec()).collect()
}

/// One source of a set operation, copied out of its shard's keyspace.
struct Source {
    items: Vec<(Vec<u8>, f64)>,
    weight: f64,
}

/// Parses `numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]` (or
/// `[LIMIT n]` for ZINTERCARD) and reads the sources. Returns (sources, aggregate, withscores, limit).
fn setop_parse(
    ex: &mut Exec<'_>,
    a: &Args,
    numkeys_at: usize,
    op: Op,
    store: bool,
    card: bool,
) -> Result<(Vec<Source>, Aggregate, bool, usize), CmdError> {
    let setnum = a.int(numkeys_at)?;
    if setnum < 1 {
        let name = String::from_utf8_lossy(&a[0]).to_lowercase();
        return Err(CmdError::Custom(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    let setnum = setnum as usize;
    if setnum > a.len() - (numkeys_at + 1) {
        return Err(CmdError::Syntax);
    }
    let (now, touch) = (ex.now, ex.touch());
    let mut srcs = Vec::with_capacity(setnum);
    for i in 0..setnum {
        let key = &a[numkeys_at + 1 + i];
        // Sources are read lookups in the STORE forms too (Redis 7.0: keymiss events and
        // hit/miss counts for them; reading a source does not touch its WATCHers).
        let e = ex.db(key).lookup(key, now, touch);
        let items = match e.map(|e| &e.value) {
            None => Vec::new(),
            Some(Value::ZSet(z)) => z.iter().map(|(m, s)| (m.to_vec(), s)).collect(),
            Some(Value::Set(s)) => set_members(s).into_iter().map(|m| (m, 1.0)).collect(),
            Some(_) => return Err(CmdError::WrongType),
        };
        srcs.push(Source { items, weight: 1.0 });
    }
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut limit = 0usize;
    let mut j = numkeys_at + 1 + setnum;
    while j < a.len() {
        let remaining = a.len() - j;
        if op != Op::Diff && !card && remaining > setnum && a.is(j, "WEIGHTS") {
            j += 1;
            for src in srcs.iter_mut() {
                src.weight = score_of(&a[j]).ok_or(CmdError::Static("ERR weight value is not a float"))?;
                j += 1;
            }
        } else if op != Op::Diff && !card && remaining >= 2 && a.is(j, "AGGREGATE") {
            agg = if a.is(j + 1, "SUM") {
                Aggregate::Sum
            } else if a.is(j + 1, "MIN") {
                Aggregate::Min
            } else if a.is(j + 1, "MAX") {
                Aggregate::Max
            } else {
                return Err(CmdError::Syntax);
            };
            j += 2;
        } else if !store && !card && a.is(j, "WITHSCORES") {
            withscores = true;
            j += 1;
        } else if card && remaining >= 2 && a.is(j, "LIMIT") {
            limit = match parse_i64(&a[j + 1]) {
                Some(n) if n >= 0 => n as usize,
                _ => return Err(CmdError::Static("ERR LIMIT can't be negative")),
            };
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok((srcs, agg, withscores, limit))
}

fn weighted(w: f64, s: f64) -> f64 {
    let v = w * s;
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

/// The result of a set operation, unsorted. With `card_limit`, ZINTERCARD's count only.
fn setop(mut srcs: Vec<Source>, op: Op, agg: Aggregate) -> Vec<(Vec<u8>, f64)> {
    match op {
        Op::Union => {
            let mut acc: HashMap<Vec<u8>, f64> = HashMap::new();
            let mut order = Vec::new();
            for src in srcs {
                for (m, s) in src.items {
                    let v = weighted(src.weight, s);
                    match acc.get_mut(&m) {
                        Some(cur) => aggregate(agg, cur, v),
                        None => {
                            order.push(m.clone());
                            acc.insert(m, v);
                        }
                    }
                }
            }
            order
                .into_iter()
                .map(|m| {
                    let s = acc[&m];
                    (m, s)
                })
                .collect()
        }
        Op::Inter => {
            srcs.sort_by_key(|s| s.items.len());
            if srcs[0].items.is_empty() {
                return Vec::new();
            }
            let maps: Vec<HashMap<&[u8], f64>> = srcs[1..]
                .iter()
                .map(|s| s.items.iter().map(|(m, v)| (&m[..], *v)).collect())
                .collect();
            let mut out = Vec::new();
            'next: for (m, s) in &srcs[0].items {
                let mut score = weighted(srcs[0].weight, *s);
                for (k, map) in maps.iter().enumerate() {
                    match map.get(&m[..]) {
                        Some(v) => aggregate(agg, &mut score, weighted(srcs[k + 1].weight, *v)),
                        None => continue 'next,
                    }
                }
                out.push((m.clone(), score));
            }
            out
        }
        Op::Diff => {
            let mut first = srcs.remove(0).items;
            if first.is_empty() {
                return first;
            }
            let others: std::collections::HashSet<&[u8]> =
                srcs.iter().flat_map(|s| s.items.iter().map(|(m, _)| &m[..])).collect();
            first.retain(|(m, _)| !others.contains(&m[..]));
            first
        }
    }
}

fn setop_generic(ex: &mut Exec<'_>, a: &Args, op: Op, store: bool) -> Result<(), CmdError> {
    let numkeys_at = if store { 2 } else { 1 };
    let (srcs, agg, withscores, _) = setop_parse(ex, a, numkeys_at, op, store, false)?;
    let mut items = setop(srcs, op, agg);
    if store {
        let event = match op {
            Op::Union => "zunionstore",
            Op::Inter => "zinterstore",
            Op::Diff => "zdiffstore",
        };
        store_result(ex, a, &a[1], items, event);
        return Ok(());
    }
    items.sort_by(|x, y| {
        x.1.partial_cmp(&y.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| x.0.cmp(&y.0))
    });
    reply_items(ex.out, &items, withscores);
    Ok(())
}

/// ZUNION numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX] [WITHSCORES]
fn zunion(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    setop_generic(ex, a, Op::Union, false)
}

/// ZINTER numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX] [WITHSCORES]
fn zinter(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    setop_generic(ex, a, Op::Inter, false)
}

/// ZDIFF numkeys key [key ...] [WITHSCORES]
fn zdiff(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    setop_generic(ex, a, Op::Diff, false)
}

/// ZUNIONSTORE destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX]
fn zunionstore(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    setop_generic(ex, a, Op::Union, true)
}

/// ZINTERSTORE destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX]
fn zinterstore(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    setop_generic(ex, a, Op::Inter, true)
}

/// ZDIFFSTORE destination numkeys key [key ...]
fn zdiffstore(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    setop_generic(ex, a, Op::Diff, true)
}

/// ZINTERCARD numkeys key [key ...] [LIMIT limit]
fn zintercard(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (srcs, agg, _, limit) = setop_parse(ex, a, 1, Op::Inter, false, true)?;
    let mut n = setop(srcs, Op::Inter, agg).len();
    if limit > 0 {
        n = n.min(limit);
    }
    ex.out.int(n as i64);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// ZRANDMEMBER, ZSCAN
// ---------------------------------------------------------------------------------------------

/// ZRANDMEMBER key [count [WITHSCORES]]
fn zrandmember(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    if a.len() == 2 {
        let pick = ex.rand();
        let got = ex.read(&a[1], Value::as_zset)?.map(|z| {
            let (m, _) = z.at((pick % z.len() as u64) as usize).expect("rank in range");
            m.to_vec()
        });
        match got {
            Some(m) => ex.out.bulk(&m),
            None => ex.out.null(),
        }
        return Ok(());
    }
    let l = int_in_range(&a[2], -i64::MAX, i64::MAX)?;
    if a.len() > 4 || (a.len() == 4 && !a.is(3, "WITHSCORES")) {
        return Err(CmdError::Syntax);
    }
    let withscores = a.len() == 4;
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return Err(CmdError::Static("ERR value is out of range"));
    }
    let mut rng = Vec::new();
    let size = match ex.read(&a[1], Value::as_zset)? {
        Some(z) => z.len(),
        None => {
            ex.out.array(0);
            return Ok(());
        }
    };
    let count = l.unsigned_abs() as usize;
    // Random ranks first (ex.rand needs &mut ex), then the elements.
    if l < 0 {
        for _ in 0..count {
            rng.push((ex.rand() % size as u64) as usize);
        }
    } else if count < size {
        // Floyd's sampling: `count` distinct ranks.
        let mut chosen = std::collections::HashSet::with_capacity(count);
        for j in size - count..size {
            let t = (ex.rand() % (j as u64 + 1)) as usize;
            let pick = if chosen.contains(&t) { j } else { t };
            chosen.insert(pick);
            rng.push(pick);
        }
    }
    // Looked up just above: no second touch (OBJECT FREQ counts lookups).
    let (Some(z), out) = ex.again_with_out(&a[1], Value::as_zset)? else {
        unreachable!("just read")
    };
    if l >= 0 && count >= size {
        // The whole set, as Redis's iterator walks it: from the end.
        items_header(out, size, withscores);
        z.visit(size - 1, true, |m, s| {
            item(out, m, s, withscores);
            true
        });
        return Ok(());
    }
    items_header(out, rng.len(), withscores);
    for r in rng {
        let (m, s) = z.at(r).expect("rank in range");
        item(out, m, s, withscores);
    }
    Ok(())
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count]
fn zscan(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let cursor = crate::command::args::parse_scan_cursor(&a[2]).ok_or(CmdError::Static("ERR invalid cursor"))?;
    let Some(z) = ex.read(&a[1], Value::as_zset)? else {
        ex.out.array(2);
        ex.out.bulk(b"0");
        ex.out.array(0);
        return Ok(());
    };
    let mut count = 10u64;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 3;
    while i < a.len() {
        if a.is(i, "COUNT") && i + 1 < a.len() {
            let n = a.int(i + 1)?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            count = n as u64;
        } else if a.is(i, "MATCH") && i + 1 < a.len() {
            pattern = if &a[i + 1] == b"*" { None } else { Some(&a[i + 1]) };
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let mut found: Vec<(Vec<u8>, f64)> = Vec::new();
    let mut cur = cursor;
    let mut budget = count.saturating_mul(10);
    loop {
        cur = z.scan(cur, |m, s| found.push((m.to_vec(), s)));
        budget = budget.saturating_sub(1);
        if cur == 0 || budget == 0 || found.len() as u64 >= count {
            break;
        }
    }
    if let Some(p) = pattern {
        found.retain(|(m, _)| glob_match(p, m, false));
    }
    let out = &mut *ex.out;
    out.array(2);
    let mut buf = crate::store::value::itoa_buf::Buf::new();
    out.bulk(buf.format(cur as i64));
    out.array(found.len() * 2);
    let mut text = Vec::with_capacity(32);
    for (m, s) in &found {
        out.bulk(m);
        text.clear();
        format_double(*s, &mut text);
        out.bulk(&text);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

const RO: &[&str] = &["RO"];
const RO_ACCESS: &[&str] = &["RO", "ACCESS"];
const RW_UPDATE: &[&str] = &["RW", "UPDATE"];
const RW_DELETE: &[&str] = &["RW", "DELETE"];
const RW_ACCESS_DELETE: &[&str] = &["RW", "ACCESS", "DELETE"];
const OW_UPDATE: &[&str] = &["OW", "UPDATE"];
const Z: u32 = acl::SORTEDSET;

const fn keynum(index: usize, flags: &'static [&'static str]) -> KeySpec {
    KeySpec {
        flags,
        begin: Begin::Index(index),
        find: Find::Keynum {
            keynumidx: 0,
            firstkey: 1,
            step: 1,
        },
        notes: "",
    }
}

const BZPOP_KEYS: &[KeySpec] = &[KeySpec {
    flags: RW_ACCESS_DELETE,
    begin: Begin::Index(1),
    find: Find::Range {
        lastkey: -2,
        step: 1,
        limit: 0,
    },
    notes: "",
}];
const STORE_KEYS: &[KeySpec] = &[KeySpec::one(1, OW_UPDATE), keynum(2, RO_ACCESS)];
const OP_KEYS: &[KeySpec] = &[keynum(1, RO_ACCESS)];
const RANGE_SYNTAX: &str = "key start stop [BYSCORE | BYLEX] [REV] [LIMIT offset count] [WITHSCORES]";
const OP_SYNTAX: &str =
    "numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE <SUM | MIN | MAX>] [WITHSCORES]";
const STORE_SYNTAX: &str =
    "destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE <SUM | MIN | MAX>]";
const LOG_N: &str = "O(log(N))";
const LOG_N_M: &str = "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned. If M is constant (e.g. always asking for the first 10 elements with LIMIT), you can consider it O(log(N)).";

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "zadd", arity: -4, flags: WRITE | DENYOOM | FAST, acl: Z, key_specs: &[KeySpec::one(1, RW_UPDATE)], group: "sorted_set", since: "1.2.0", summary: "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.", complexity: "O(log(N)) for each item added, where N is the number of elements in the sorted set.", syntax: "key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]", run: Run::Keyed(zadd, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zincrby", arity: 4, flags: WRITE | DENYOOM | FAST, acl: Z, key_specs: &[KeySpec::one(1, RW_UPDATE)], group: "sorted_set", since: "1.2.0", summary: "Increments the score of a member in a sorted set.", complexity: LOG_N, syntax: "key increment member", run: Run::Keyed(zincrby, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zrem", arity: -3, flags: WRITE | FAST, acl: Z, key_specs: &[KeySpec::one(1, RW_DELETE)], group: "sorted_set", since: "1.2.0", summary: "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.", complexity: "O(M*log(N)) with N being the number of elements in the sorted set and M the number of elements to be removed.", syntax: "key member [member ...]", run: Run::Keyed(zrem, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zcard", arity: 2, flags: READONLY | FAST, acl: Z, key_specs: &[KeySpec::one(1, RO)], group: "sorted_set", since: "1.2.0", summary: "Returns the number of members in a sorted set.", syntax: "key", run: Run::Keyed(zcard, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zscore", arity: 3, flags: READONLY | FAST, acl: Z, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "sorted_set", since: "1.2.0", summary: "Returns the score of a member in a sorted set.", syntax: "key member", run: Run::Keyed(zscore, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zmscore", arity: -3, flags: READONLY | FAST, acl: Z, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "sorted_set", since: "6.2.0", summary: "Returns the score of one or more members in a sorted set.", complexity: "O(N) where N is the number of members being requested.", syntax: "key member [member ...]", run: Run::Keyed(zmscore, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zrank", arity: -3, flags: READONLY | FAST, acl: Z, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "sorted_set", since: "2.0.0", summary: "Returns the index of a member in a sorted set ordered by ascending scores.", complexity: LOG_N, syntax: "key member [WITHSCORE]", run: Run::Keyed(zrank, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zrevrank", arity: -3, flags: READONLY | FAST, acl: Z, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "sorted_set", since: "2.0.0", summary: "Returns the index of a member in a sorted set ordered by descending scores.", complexity: LOG_N, syntax: "key member [WITHSCORE]", run: Run::Keyed(zrevrank, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zcount", arity: 4, flags: READONLY | FAST, acl: Z, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "sorted_set", since: "2.0.0", summary: "Returns the count of members in a sorted set that have scores within a range.", complexity: "O(log(N)) with N being the number of elements in the sorted set.", syntax: "key min max", run: Run::Keyed(zcount, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zlexcount", arity: 4, flags: READONLY | FAST, acl: Z, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "sorted_set", since: "2.8.9", summary: "Returns the number of members in a sorted set within a lexicographical range.", complexity: "O(log(N)) with N being the number of elements in the sorted set.", syntax: "key min max", run: Run::Keyed(zlexcount, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zrange", arity: -4, flags: READONLY, acl: Z, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "sorted_set", since: "1.2.0", summary: "Returns members in a sorted set within a range of indexes.", complexity: LOG_N_M, syntax: RANGE_SYNTAX, run: Run::Keyed(zrange, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zrangestore", arity: -5, flags: WRITE | DENYOOM, acl: Z, key_specs: &[KeySpec::one(1, OW_UPDATE), KeySpec::one(2, RO_ACCESS)], group: "sorted_set", since: "6.2.0", summary: "Stores a range of members from sorted set in a key.", complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements stored into the destination key.", syntax: "dst src min max [BYSCORE | BYLEX] [REV] [LIMIT offset count]", run: Run::Keyed(zrangestore, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zrevrange", arity: -4, flags: READONLY, acl: Z, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "sorted_set", since: "1.2.0", summary: "Returns members in a sorted set within a range of indexes in reverse order.", complexity: LOG_N_M, syntax: "key start stop [WITHSCORES]", run: Run::Keyed(zrevrange, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zrangebyscore", arity: -4, flags: READONLY, acl: Z, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "sorted_set", since: "1.0.5", summary: "Returns members in a sorted set within a range of scores.", complexity: LOG_N_M, syntax: "key min max [WITHSCORES] [LIMIT offset count]", run: Run::Keyed(zrangebyscore, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zrevrangebyscore", arity: -4, flags: READONLY, acl: Z, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "sorted_set", since: "2.2.0", summary: "Returns members in a sorted set within a range of scores in reverse order.", complexity: LOG_N_M, syntax: "key max min [WITHSCORES] [LIMIT offset count]", run: Run::Keyed(zrevrangebyscore, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zrangebylex", arity: -4, flags: READONLY, acl: Z, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "sorted_set", since: "2.8.9", summary: "Returns members in a sorted set within a lexicographical range.", complexity: LOG_N_M, syntax: "key min max [LIMIT offset count]", run: Run::Keyed(zrangebylex, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zrevrangebylex", arity: -4, flags: READONLY, acl: Z, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "sorted_set", since: "2.8.9", summary: "Returns members in a sorted set within a lexicographical range in reverse order.", complexity: LOG_N_M, syntax: "key max min [LIMIT offset count]", run: Run::Keyed(zrevrangebylex, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zremrangebyrank", arity: 4, flags: WRITE, acl: Z, key_specs: &[KeySpec::one(1, RW_DELETE)], group: "sorted_set", since: "2.0.0", summary: "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.", complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation.", syntax: "key start stop", run: Run::Keyed(zremrangebyrank, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zremrangebyscore", arity: 4, flags: WRITE, acl: Z, key_specs: &[KeySpec::one(1, RW_DELETE)], group: "sorted_set", since: "1.2.0", summary: "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.", complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation.", syntax: "key min max", run: Run::Keyed(zremrangebyscore, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zremrangebylex", arity: 4, flags: WRITE, acl: Z, key_specs: &[KeySpec::one(1, RW_DELETE)], group: "sorted_set", since: "2.8.9", summary: "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.", complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation.", syntax: "key min max", run: Run::Keyed(zremrangebylex, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zpopmin", arity: -2, flags: WRITE | FAST, acl: Z, key_specs: &[KeySpec::one(1, RW_ACCESS_DELETE)], group: "sorted_set", since: "5.0.0", summary: "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", complexity: "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped.", syntax: "key [count]", run: Run::Keyed(zpopmin, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zpopmax", arity: -2, flags: WRITE | FAST, acl: Z, key_specs: &[KeySpec::one(1, RW_ACCESS_DELETE)], group: "sorted_set", since: "5.0.0", summary: "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", complexity: "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped.", syntax: "key [count]", run: Run::Keyed(zpopmax, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zmpop", arity: -4, flags: WRITE, acl: Z, key_specs: &[keynum(1, RW_ACCESS_DELETE)], group: "sorted_set", since: "7.0.0", summary: "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.", complexity: "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped.", syntax: "numkeys key [key ...] <MIN | MAX> [COUNT count]", run: Run::Keyed(zmpop, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "bzpopmin", arity: -3, flags: WRITE | NOSCRIPT | FAST | BLOCKING, acl: Z, key_specs: BZPOP_KEYS, group: "sorted_set", since: "5.0.0", summary: "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", complexity: "O(log(N)) with N being the number of elements in the sorted set.", syntax: "key [key ...] timeout", run: Run::Keyed(bzpopmin, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "bzpopmax", arity: -3, flags: WRITE | NOSCRIPT | FAST | BLOCKING, acl: Z, key_specs: BZPOP_KEYS, group: "sorted_set", since: "5.0.0", summary: "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped.", complexity: "O(log(N)) with N being the number of elements in the sorted set.", syntax: "key [key ...] timeout", run: Run::Keyed(bzpopmax, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "bzmpop", arity: -5, flags: WRITE | BLOCKING, acl: Z, key_specs: &[keynum(2, RW_ACCESS_DELETE)], group: "sorted_set", since: "7.0.0", summary: "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", complexity: "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped.", syntax: "timeout numkeys key [key ...] <MIN | MAX> [COUNT count]", run: Run::Keyed(bzmpop, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zunion", arity: -3, flags: READONLY, acl: Z, key_specs: OP_KEYS, group: "sorted_set", since: "6.2.0", summary: "Returns the union of multiple sorted sets.", complexity: "O(N)+O(M*log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set.", syntax: OP_SYNTAX, run: Run::Keyed(zunion, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zinter", arity: -3, flags: READONLY, acl: Z, key_specs: OP_KEYS, group: "sorted_set", since: "6.2.0", summary: "Returns the intersect of multiple sorted sets.", complexity: "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set.", syntax: OP_SYNTAX, run: Run::Keyed(zinter, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zdiff", arity: -3, flags: READONLY, acl: Z, key_specs: OP_KEYS, group: "sorted_set", since: "6.2.0", summary: "Returns the difference between multiple sorted sets.", complexity: "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set.", syntax: "numkeys key [key ...] [WITHSCORES]", run: Run::Keyed(zdiff, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zunionstore", arity: -4, flags: WRITE | DENYOOM, acl: Z, key_specs: STORE_KEYS, group: "sorted_set", since: "2.0.0", summary: "Stores the union of multiple sorted sets in a key.", complexity: "O(N)+O(M log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set.", syntax: STORE_SYNTAX, run: Run::Keyed(zunionstore, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zinterstore", arity: -4, flags: WRITE | DENYOOM, acl: Z, key_specs: STORE_KEYS, group: "sorted_set", since: "2.0.0", summary: "Stores the intersect of multiple sorted sets in a key.", complexity: "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set.", syntax: STORE_SYNTAX, run: Run::Keyed(zinterstore, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zdiffstore", arity: -4, flags: WRITE | DENYOOM, acl: Z, key_specs: STORE_KEYS, group: "sorted_set", since: "6.2.0", summary: "Stores the difference of multiple sorted sets in a key.", complexity: "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set.", syntax: "destination numkeys key [key ...]", run: Run::Keyed(zdiffstore, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zintercard", arity: -3, flags: READONLY, acl: Z, key_specs: OP_KEYS, group: "sorted_set", since: "7.0.0", summary: "Returns the number of members of the intersect of multiple sorted sets.", complexity: "O(N*K) worst case with N being the smallest input sorted set, K being the number of input sorted sets.", syntax: "numkeys key [key ...] [LIMIT limit]", run: Run::Keyed(zintercard, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zrandmember", arity: -2, flags: READONLY, acl: Z, key_specs: &[KeySpec::one(1, RO)], group: "sorted_set", since: "6.2.0", summary: "Returns one or more random members from a sorted set.", complexity: "O(N) where N is the number of members returned", syntax: "key [count [WITHSCORES]]", tips: &["nondeterministic_output"], run: Run::Keyed(zrandmember, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "zscan", arity: -3, flags: READONLY, acl: Z, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "sorted_set", since: "2.8.0", summary: "Iterates over members and scores of a sorted set.", complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.", syntax: "key cursor [MATCH pattern] [COUNT count]", tips: &["nondeterministic_output"], run: Run::Keyed(zscan, Multi::Atomic), ..CommandSpec::DEFAULT },
];

#[cfg(test)]
mod tests {
    use crate::families::testkit::Kit;

    #[test]
    fn zadd_options_and_replies() {
        let mut k = Kit::new();
        assert_eq!(k.run("ZADD z 1 a 2 b"), ":2\r\n");
        assert_eq!(k.run("ZADD z CH 3 a 2 b 1 c"), ":2\r\n");
        assert_eq!(k.run("ZADD z NX 9 a"), ":0\r\n");
        assert_eq!(k.run("ZADD z XX INCR 1 a"), "$1\r\n4\r\n");
        assert_eq!(k.run("ZADD z GT 1 a"), ":0\r\n");
        assert_eq!(k.run("ZADD z GT INCR -1 a"), "$-1\r\n");
        assert_eq!(
            k.run("ZADD z NX XX 1 a"),
            "-ERR XX and NX options at the same time are not compatible\r\n"
        );
        assert_eq!(k.run("ZADD z 1 a 2"), "-ERR syntax error\r\n");
        assert_eq!(k.run("ZADD z x a"), "-ERR value is not a valid float\r\n");
        assert_eq!(k.run("ZADD z 1e400 a"), "-ERR value is not a valid float\r\n");
        assert_eq!(k.run("ZADD z inf a"), ":0\r\n");
        assert_eq!(
            k.run("ZINCRBY z -inf a"),
            "-ERR resulting score is not a number (NaN)\r\n"
        );
        assert_eq!(
            k.run("ZRANGE z 0 -1 WITHSCORES"),
            "*6\r\n$1\r\nc\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\na\r\n$3\r\ninf\r\n"
        );
        k.effects();
        k.run("ZADD z 5 q");
        assert!(k.effects().contains("ZADD"));
    }

    #[test]
    fn ranges_by_score_and_lex() {
        let mut k = Kit::new();
        k.run("ZADD z 0 a 0 b 0 c 0 d 0 e");
        assert_eq!(k.run("ZRANGEBYLEX z [b (d"), "*2\r\n$1\r\nb\r\n$1\r\nc\r\n");
        assert_eq!(k.run("ZREVRANGEBYLEX z + - LIMIT 1 2"), "*2\r\n$1\r\nd\r\n$1\r\nc\r\n");
        assert_eq!(k.run("ZLEXCOUNT z - +"), ":5\r\n");
        assert_eq!(
            k.run("ZLEXCOUNT z a +"),
            "-ERR min or max not valid string range item\r\n"
        );
        k.run("ZADD s 1 a 2 b 3 c");
        assert_eq!(k.run("ZCOUNT s (1 3"), ":2\r\n");
        assert_eq!(k.run("ZRANGE s (1 +inf BYSCORE REV"), "*0\r\n");
        assert_eq!(k.run("ZRANGE s +inf (1 BYSCORE REV"), "*2\r\n$1\r\nc\r\n$1\r\nb\r\n");
        assert_eq!(k.run("ZREMRANGEBYSCORE s -inf 2"), ":2\r\n");
        assert_eq!(k.run("ZREMRANGEBYRANK s 0 -1"), ":1\r\n");
        assert_eq!(k.run("EXISTS s"), ":0\r\n");
    }

    #[test]
    fn pops_and_stores() {
        let mut k = Kit::new();
        k.run("ZADD a 1 x 2 y");
        k.run("ZADD b 3 y 4 z");
        assert_eq!(k.run("ZUNIONSTORE d 2 a b WEIGHTS 1 2"), ":3\r\n");
        assert_eq!(
            k.run("ZRANGE d 0 -1 WITHSCORES"),
            "*6\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\ny\r\n$1\r\n8\r\n$1\r\nz\r\n$1\r\n8\r\n"
        );
        assert_eq!(k.run("ZINTERCARD 2 a b"), ":1\r\n");
        assert_eq!(k.run("ZPOPMIN d"), "*2\r\n$1\r\nx\r\n$1\r\n1\r\n");
        k.effects();
        assert_eq!(
            k.run("ZMPOP 1 d MAX COUNT 5"),
            "*2\r\n$1\r\nd\r\n*2\r\n*2\r\n$1\r\nz\r\n$1\r\n8\r\n*2\r\n$1\r\ny\r\n$1\r\n8\r\n"
        );
        assert!(k.effects().contains("ZPOPMAX"));
        assert_eq!(k.run("ZMPOP 1 d MAX"), "*-1\r\n");
        assert_eq!(k.run("BZPOPMIN d 0"), "*-1\r\n");
    }

    #[test]
    fn propagation_is_deterministic() {
        let mut k = Kit::new();
        k.run("ZADD z 1 a 2 b 3 c");
        k.effects();
        k.run("BZPOPMIN z 0");
        assert!(k.effects().ends_with("*2\r\n$7\r\nZPOPMIN\r\n$1\r\nz\r\n"));
        k.run("BZMPOP 0 1 z MAX");
        assert!(k.effects().ends_with("*3\r\n$7\r\nZPOPMAX\r\n$1\r\nz\r\n$1\r\n1\r\n"));
        k.run("ZREM z nosuch");
        k.run("ZADD z NX 5 b");
        k.run("ZREMRANGEBYSCORE z 10 20");
        assert_eq!(k.effects(), "");
        k.run("ZREM z b");
        assert_eq!(k.run("EXISTS z"), ":0\r\n");
        assert!(k.effects().contains("ZREM"));
        assert_eq!(k.dirty, 6);
    }

    #[test]
    fn resp3_shapes() {
        let mut k = Kit::new();
        k.proto = crate::resp::Proto::Resp3;
        k.run("ZADD z 1 a 2.5 b");
        assert_eq!(k.run("ZSCORE z b"), ",2.5\r\n");
        assert_eq!(k.run("ZRANGE z 0 0 WITHSCORES"), "*1\r\n*2\r\n$1\r\na\r\n,1\r\n");
        assert_eq!(k.run("ZRANK z b WITHSCORE"), "*2\r\n:1\r\n,2.5\r\n");
        assert_eq!(k.run("ZRANK z x WITHSCORE"), "_\r\n");
        assert_eq!(k.run("ZPOPMIN z"), "*2\r\n$1\r\na\r\n,1\r\n");
        assert_eq!(k.run("ZPOPMIN z 1"), "*1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n");
        assert_eq!(k.run("ZPOPMIN z 1"), "*0\r\n");
    }

    #[test]
    fn skiplist_commands_match_listpack_ones() {
        // The same script against both encodings gives the same replies.
        let script = [
            "ZADD z 5 e 1 a 3 c 2 b 4 d 0 x 0 y",
            "ZRANGE z 1 4 WITHSCORES",
            "ZRANGE z (1 4 BYSCORE REV LIMIT 1 2",
            "ZRANGE z [a [z BYLEX",
            "ZREVRANK z c",
            "ZCOUNT z (0 +inf",
            "ZINCRBY z 10 a",
            "ZREMRANGEBYRANK z 1 2",
            "ZPOPMAX z 2",
            "ZRANGE z 0 -1 WITHSCORES",
            "ZRANDMEMBER z 100 WITHSCORES",
        ];
        let mut lp = Kit::new();
        let mut sl = Kit::new();
        sl.enc.zset_max_listpack_entries = 0;
        for line in script {
            assert_eq!(lp.run(line), sl.run(line), "{line}");
        }
    }
}
