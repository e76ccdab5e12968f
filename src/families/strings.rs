//! Strings: GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX MGET MSET MSETNX APPEND STRLEN
//! INCR DECR INCRBY DECRBY INCRBYFLOAT GETRANGE SUBSTR SETRANGE LCS, with Redis 7's replies,
//! error texts, encodings (`int`/`embstr`/`raw` as `OBJECT ENCODING` reports them) and
//! propagated effects.

use crate::command::{acl, flags::*, Args, CommandSpec, Exec, Find, KeySpec, Multi, NotifyFlags, Run};
use crate::command::{args::parse_i64, Begin};
use crate::error::CmdError;
use crate::resp::{LongDouble, Reply, PROTO_MAX_BULK_LEN};
use crate::store::value::itoa_buf;
use crate::store::{Db, Entry, Str, Value};

// ---- shard operations ----------------------------------------------------------------

/// The database slice holding `key` and the reply writer, borrowed together so a handler can
/// reply straight from a stored value without copying it.
fn db_out<'e>(ex: &'e mut Exec<'_>, key: &[u8]) -> (&'e mut Db, &'e mut Reply) {
    let db = ex.db;
    (ex.ks.db(db, key), &mut *ex.out)
}

fn as_str(v: &Value) -> Result<&Str, CmdError> {
    match v {
        Value::Str(s) => Ok(s),
        #[allow(unreachable_patterns)]
        _ => Err(CmdError::WrongType),
    }
}

fn as_str_mut(v: &mut Value) -> Result<&mut Str, CmdError> {
    match v {
        Value::Str(s) => Ok(s),
        #[allow(unreachable_patterns)]
        _ => Err(CmdError::WrongType),
    }
}

fn reply_str(out: &mut Reply, s: &Str) {
    match s {
        Str::Int(n) => out.bulk_int(*n),
        Str::Emb(b) => out.bulk(b),
        Str::Raw(v) => out.bulk(v),
    }
}

/// Redis's getGenericCommand: replies with the string at `key` (null if missing), or fails
/// with WRONGTYPE before writing anything. A read lookup: counts a keyspace hit or miss.
fn reply_get(ex: &mut Exec<'_>, key: &[u8]) -> Result<bool, CmdError> {
    let (now, touch) = (ex.now, ex.touch());
    let (db, out) = db_out(ex, key);
    match db.lookup(key, now, touch) {
        None => {
            out.null();
            Ok(false)
        }
        Some(e) => {
            reply_str(out, as_str(&e.value)?);
            Ok(true)
        }
    }
}

/// The biggest string a command may build (`proto-max-bulk-len`). Exec does not carry the
/// configuration, so this is the default 512 MB whatever `CONFIG SET proto-max-bulk-len`
/// says (APPEND, SETRANGE and LCS's table are bounded by it).
fn max_bulk_len() -> u64 {
    PROTO_MAX_BULK_LEN as u64
}

/// Redis's checkStringLength: `size + append` must fit in proto-max-bulk-len (and not wrap).
fn check_string_length(size: u64, append: u64) -> Result<(), CmdError> {
    match size.checked_add(append) {
        Some(total) if total <= max_bulk_len() => Ok(()),
        _ => Err(CmdError::Static(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        )),
    }
}

/// Redis 7.0's string2ld (INCRBYFLOAT's parser) for a value or an argument. Unlike strtold
/// on a C string, it refuses any embedded NUL ("1.5\0junk" is not a valid float), which
/// [`LongDouble::parse`] lets through, so that case is refused here.
fn parse_long_double(b: &[u8]) -> Option<LongDouble> {
    if memchr::memchr(0, b).is_some() {
        return None;
    }
    LongDouble::parse(b)
}

/// The text of an argument as C sees it: Redis compares option keywords with strcasecmp and
/// byte tests on NUL-terminated strings, so anything after an embedded NUL is ignored.
fn c_str(arg: &[u8]) -> &[u8] {
    match memchr::memchr(0, arg) {
        Some(i) => &arg[..i],
        None => arg,
    }
}

// ---- SET's option grammar ---------------------------------------------------------------

/// How an expiry argument is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpireUnit {
    /// Relative seconds.
    Ex,
    /// Relative milliseconds.
    Px,
    /// Absolute Unix time in seconds.
    ExAt,
    /// Absolute Unix time in milliseconds.
    PxAt,
}

/// Which command's options [`parse_set_opts`] reads: SET's (`NX XX GET KEEPTTL` and the
/// expiries) or GETEX's (`PERSIST` and the expiries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptsFor {
    Set,
    Getex,
}

/// SET's and GETEX's options.
#[derive(Default, Debug, PartialEq)]
pub struct SetOpts<'a> {
    pub nx: bool,
    pub xx: bool,
    pub get: bool,
    pub keepttl: bool,
    pub persist: bool,
    /// The expiry option and its argument, unparsed: Redis reports syntax errors in later
    /// options before a bad number (`SET k v EX abc NX XX` is a syntax error).
    pub expire: Option<(ExpireUnit, &'a [u8])>,
}

/// Parses `[NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ms-ts | KEEPTTL]` (SET) or
/// `[EX s | PX ms | EXAT ts | PXAT ms-ts | PERSIST]` (GETEX) from argument `start`, with
/// Redis's parseExtendedStringArgumentsOrReply rules: only conflicting pairs are refused, so
/// a repeated option is accepted (`SET k v EX 1 EX 10`: the last one wins), and an expiry
/// keyword with no argument after it is a syntax error.
pub fn parse_set_opts(a: &Args, start: usize, which: OptsFor) -> Result<SetOpts<'_>, CmdError> {
    let set = which == OptsFor::Set;
    let mut o = SetOpts::default();
    let mut cur = a.cursor(start);
    while let Some(arg) = cur.next_arg() {
        let opt = c_str(arg);
        let is = |k: &str| opt.eq_ignore_ascii_case(k.as_bytes());
        let unit = o.expire.map(|(u, _)| u);
        let unit_kw = if is("EX") {
            Some(ExpireUnit::Ex)
        } else if is("PX") {
            Some(ExpireUnit::Px)
        } else if is("EXAT") {
            Some(ExpireUnit::ExAt)
        } else if is("PXAT") {
            Some(ExpireUnit::PxAt)
        } else {
            None
        };
        if set && is("NX") && !o.xx {
            o.nx = true;
        } else if set && is("XX") && !o.nx {
            o.xx = true;
        } else if set && is("GET") {
            o.get = true;
        } else if set && is("KEEPTTL") && unit.is_none() {
            o.keepttl = true;
        } else if !set && is("PERSIST") && unit.is_none() {
            o.persist = true;
        } else if let Some(u) =
            unit_kw.filter(|&u| !o.keepttl && !o.persist && unit.is_none_or(|given| given == u) && !cur.is_done())
        {
            o.expire = Some((u, cur.value()?));
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(o)
}

/// Redis's getExpireMillisecondsOrReply: the absolute deadline (ms) an expiry argument names.
/// `cmd` is the command name for "invalid expire time in '<cmd>' command".
pub fn expire_deadline(unit: ExpireUnit, arg: &[u8], now: u64, cmd: &str) -> Result<u64, CmdError> {
    let v = parse_i64(arg).ok_or(CmdError::NotInteger)?;
    let invalid = || CmdError::InvalidExpire(cmd.into());
    let seconds = matches!(unit, ExpireUnit::Ex | ExpireUnit::ExAt);
    if v <= 0 || (seconds && v > i64::MAX / 1000) {
        return Err(invalid());
    }
    let ms = if seconds { v * 1000 } else { v };
    let at = match unit {
        ExpireUnit::Ex | ExpireUnit::Px => ms.checked_add(now as i64).ok_or_else(invalid)?,
        ExpireUnit::ExAt | ExpireUnit::PxAt => ms,
    };
    Ok(at as u64)
}

/// What a SET-like command answers when it sets, and when NX/XX stops it (Redis's ok_reply
/// and abort_reply).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// SET, SETEX, PSETEX: `+OK` / null.
    OkNull,
    /// SETNX: `:1` / `:0`.
    OneZero,
}

/// Redis's setGenericCommand once the expiry is known: GET's reply (if asked), the NX/XX
/// condition, the write, the reply. Returns whether the key was written; the caller
/// propagates.
fn set_generic(
    ex: &mut Exec<'_>,
    key: &[u8],
    val: &[u8],
    o: &SetOpts<'_>,
    deadline: Option<u64>,
    answer: Answer,
) -> Result<bool, CmdError> {
    if o.get {
        reply_get(ex, key)?;
    }
    let now = ex.now;
    let (db, out) = db_out(ex, key);
    let found = db.lookup_write(key, now).is_some();
    if (o.nx && found) || (o.xx && !found) {
        if !o.get {
            match answer {
                Answer::OkNull => out.null(),
                Answer::OneZero => out.int(0),
            }
        }
        return Ok(false);
    }
    db.set(key, Value::Str(Str::from_set(val)), o.keepttl || deadline.is_some());
    if let Some(at) = deadline {
        db.set_expire(key, at);
    }
    if !o.get {
        match answer {
            Answer::OkNull => out.ok(),
            Answer::OneZero => out.int(1),
        }
    }
    ex.dirty += 1;
    ex.notify(NotifyFlags::STRING, "set", key);
    if deadline.is_some() {
        ex.notify(NotifyFlags::GENERIC, "expire", key);
    }
    Ok(true)
}

/// `SET k v PXAT <deadline>`: how every write with a relative or absolute expiry propagates.
fn propagate_set_pxat(ex: &mut Exec<'_>, key: &[u8], val: &[u8], at: u64) {
    if ex.effects.is_enabled() {
        let mut n = itoa_buf::Buf::new();
        let at = n.format(at as i64).to_vec();
        ex.propagate(&[b"SET", key, val, b"PXAT", &at]);
    }
}

// ---- handlers ------------------------------------------------------------------------

/// `GET key`
fn get(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    reply_get(ex, &a[1]).map(|_| ())
}

/// `SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds |
/// PXAT unix-time-milliseconds | KEEPTTL]`
///
/// Propagates `SET key value PXAT <ms>` when an expiry was given, `SET key value KEEPTTL` or
/// `SET key value` otherwise (NX/XX/GET dropped: the write happened).
fn set(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let o = parse_set_opts(a, 3, OptsFor::Set)?;
    let deadline = match o.expire {
        Some((unit, arg)) => Some(expire_deadline(unit, arg, ex.now, "set")?),
        None => None,
    };
    let (key, val) = (&a[1], &a[2]);
    if set_generic(ex, key, val, &o, deadline, Answer::OkNull)? {
        match deadline {
            Some(at) => propagate_set_pxat(ex, key, val, at),
            None if o.keepttl => ex.propagate(&[b"SET", key, val, b"KEEPTTL"]),
            None => ex.propagate(&[b"SET", key, val]),
        }
    }
    Ok(())
}

/// `SETNX key value`: `:1` if set, `:0` if the key exists.
fn setnx(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let o = SetOpts {
        nx: true,
        ..SetOpts::default()
    };
    if set_generic(ex, &a[1], &a[2], &o, None, Answer::OneZero)? {
        ex.propagate_as_is(a);
    }
    Ok(())
}

fn setex_generic(ex: &mut Exec<'_>, a: &Args, unit: ExpireUnit, cmd: &str) -> Result<(), CmdError> {
    let at = expire_deadline(unit, &a[2], ex.now, cmd)?;
    let (key, val) = (&a[1], &a[3]);
    set_generic(ex, key, val, &SetOpts::default(), Some(at), Answer::OkNull)?;
    propagate_set_pxat(ex, key, val, at);
    Ok(())
}

/// `SETEX key seconds value`, propagated as `SET key value PXAT <ms>`.
fn setex(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    setex_generic(ex, a, ExpireUnit::Ex, "setex")
}

/// `PSETEX key milliseconds value`, propagated as `SET key value PXAT <ms>`.
fn psetex(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    setex_generic(ex, a, ExpireUnit::Px, "psetex")
}

/// `GETSET key value`: the old value (or null); the key loses its TTL. Propagated as
/// `SET key value`.
fn getset(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (key, val) = (&a[1], &a[2]);
    reply_get(ex, key)?;
    let now = ex.now;
    ex.db(key).set_key(key, Value::Str(Str::from_set(val)), now);
    ex.dirty += 1;
    ex.notify(NotifyFlags::STRING, "set", key);
    ex.propagate(&[b"SET", key, val]);
    Ok(())
}

/// `GETDEL key`: the value (or null), and the key is deleted. Propagated as `DEL key`.
fn getdel(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let key = &a[1];
    if reply_get(ex, key)? {
        ex.db(key).remove(key);
        ex.dirty += 1;
        ex.notify(NotifyFlags::GENERIC, "del", key);
        ex.propagate(&[b"DEL", key]);
    }
    Ok(())
}

/// `GETEX key [EX seconds | PX milliseconds | EXAT unix-time-seconds |
/// PXAT unix-time-milliseconds | PERSIST]`
///
/// As Redis: a missing key answers null before the expiry argument is even parsed; an
/// EXAT/PXAT in the past deletes the key (after replying with its value). Propagated as
/// `PEXPIREAT key <ms>`, `DEL key` or `PERSIST key`.
fn getex(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let o = parse_set_opts(a, 2, OptsFor::Getex)?;
    let key = &a[1];
    let (now, touch) = (ex.now, ex.touch());
    let (db, out) = db_out(ex, key);
    let Some(e) = db.lookup(key, now, touch) else {
        out.null();
        return Ok(());
    };
    let s = as_str(&e.value)?;
    let deadline = match o.expire {
        Some((unit, arg)) => Some((unit, expire_deadline(unit, arg, now, "getex")?)),
        None => None,
    };
    reply_str(out, s);
    match deadline {
        Some((ExpireUnit::ExAt | ExpireUnit::PxAt, at)) if at <= now => {
            db.remove(key);
            ex.dirty += 1;
            ex.notify(NotifyFlags::GENERIC, "del", key);
            ex.propagate(&[b"DEL", key]);
        }
        Some((_, at)) => {
            db.set_expire(key, at);
            ex.dirty += 1;
            ex.notify(NotifyFlags::GENERIC, "expire", key);
            if ex.effects.is_enabled() {
                let mut n = itoa_buf::Buf::new();
                let at = n.format(at as i64).to_vec();
                ex.propagate(&[b"PEXPIREAT", key, &at]);
            }
        }
        None if o.persist && db.persist(key) => {
            ex.dirty += 1;
            ex.notify(NotifyFlags::GENERIC, "persist", key);
            ex.propagate(&[b"PERSIST", key]);
        }
        None => {}
    }
    Ok(())
}

/// `MGET key [key ...]`: one element per key, null for missing keys and non-strings.
fn mget(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (now, touch) = (ex.now, ex.touch());
    ex.out.array(a.len() - 1);
    for key in &a.as_slice()[1..] {
        let (db, out) = db_out(ex, key);
        match db.lookup(key, now, touch).map(|e| as_str(&e.value)) {
            Some(Ok(s)) => reply_str(out, s),
            _ => out.null(),
        }
    }
    Ok(())
}

fn mset_generic(ex: &mut Exec<'_>, a: &Args, nx: bool, name: &str) -> Result<(), CmdError> {
    if a.len() % 2 == 0 {
        return Err(CmdError::WrongArity(name.into()));
    }
    let pairs = a.as_slice()[1..].chunks_exact(2);
    if nx {
        let now = ex.now;
        // Every key is checked before anything is written: all or nothing.
        for kv in pairs.clone() {
            if ex.db(&kv[0]).lookup_write(&kv[0], now).is_some() {
                ex.out.int(0);
                return Ok(());
            }
        }
    }
    let now = ex.now;
    for kv in pairs {
        ex.db(&kv[0]).set_key(&kv[0], Value::Str(Str::from_set(&kv[1])), now);
        ex.notify(NotifyFlags::STRING, "set", &kv[0]);
    }
    ex.dirty += (a.len() as u64 - 1) / 2;
    if nx {
        ex.out.int(1);
    } else {
        ex.out.ok();
    }
    ex.propagate_as_is(a);
    Ok(())
}

/// `MSET key value [key value ...]`, atomic across shards.
fn mset(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    mset_generic(ex, a, false, "mset")
}

/// `MSETNX key value [key value ...]`: `:1` and every key set if none of them exists,
/// otherwise `:0` and nothing set. Atomic across shards.
fn msetnx(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    mset_generic(ex, a, true, "msetnx")
}

/// `APPEND key value`: the new length. An existing value becomes `raw` (even when nothing is
/// appended, as Redis unshares it); a new key is stored as SET would store it.
fn append(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (key, val) = (&a[1], &a[2]);
    let now = ex.now;
    let (db, out) = db_out(ex, key);
    let len = match db.lookup_write(key, now) {
        None => {
            let s = Str::from_set(val);
            let len = s.len();
            db.set(key, Value::Str(s), false);
            len
        }
        Some(e) => {
            let s = as_str_mut(&mut e.value)?;
            check_string_length(s.len() as u64, val.len() as u64)?;
            let raw = s.make_raw();
            raw.extend_from_slice(val);
            raw.len()
        }
    };
    out.int(len as i64);
    ex.dirty += 1;
    ex.notify(NotifyFlags::STRING, "append", key);
    ex.propagate_as_is(a);
    Ok(())
}

/// `STRLEN key`: 0 for a missing key.
fn strlen(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let key = &a[1];
    let (now, touch) = (ex.now, ex.touch());
    let (db, out) = db_out(ex, key);
    let len = match db.lookup(key, now, touch) {
        None => 0,
        Some(e) => as_str(&e.value)?.len(),
    };
    out.int(len as i64);
    Ok(())
}

/// Redis's incrDecrCommand: adds `incr` to the integer at `a[1]` (0 if missing), keeping its
/// TTL; the result is stored `int`-encoded.
fn incr_decr(ex: &mut Exec<'_>, a: &Args, incr: i64) -> Result<(), CmdError> {
    let key = &a[1];
    let now = ex.now;
    let (db, out) = db_out(ex, key);
    let entry = db.lookup_write(key, now);
    let old = match &entry {
        None => 0,
        Some(e) => as_str(&e.value)?.as_i64().ok_or(CmdError::NotInteger)?,
    };
    let new = old.checked_add(incr).ok_or(CmdError::Overflow)?;
    match entry {
        Some(e) => e.value = Value::Str(Str::Int(new)),
        None => db.set(key, Value::Str(Str::Int(new)), false),
    }
    out.int(new);
    ex.dirty += 1;
    ex.notify(NotifyFlags::STRING, "incrby", key);
    ex.propagate_as_is(a);
    Ok(())
}

/// `INCR key`
fn incr(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    incr_decr(ex, a, 1)
}

/// `DECR key`
fn decr(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    incr_decr(ex, a, -1)
}

/// `INCRBY key increment`
fn incrby(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let incr = a.int(2)?;
    incr_decr(ex, a, incr)
}

/// `DECRBY key decrement`
fn decrby(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let decr = a.int(2)?;
    if decr == i64::MIN {
        // Its negation does not fit: Redis 7 refuses it before looking at the key.
        return Err(CmdError::Static("ERR decrement would overflow"));
    }
    incr_decr(ex, a, -decr)
}

/// `INCRBYFLOAT key increment`
///
/// Computed as Redis does, in x87 80-bit long double (see [`LongDouble`]), and formatted
/// with `%.17Lf` minus trailing zeros, so results match Redis bit for bit ("0.1" + "0.2" is
/// "0.3"). The result is stored without integer detection (`embstr`, or `raw` past 44
/// bytes), keeps the key's TTL, and propagates as `SET key <result> KEEPTTL`.
fn incrbyfloat(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let key = &a[1];
    let now = ex.now;
    let (db, out) = db_out(ex, key);
    let entry = db.lookup_write(key, now);
    let old = match &entry {
        None => LongDouble::ZERO,
        Some(e) => match as_str(&e.value)? {
            Str::Int(n) => LongDouble::from_i64(*n),
            Str::Emb(b) => parse_long_double(b).ok_or(CmdError::NotFloat)?,
            Str::Raw(v) => parse_long_double(v).ok_or(CmdError::NotFloat)?,
        },
    };
    let incr = parse_long_double(&a[2]).ok_or(CmdError::NotFloat)?;
    let sum = old + incr;
    if !sum.is_finite() {
        return Err(CmdError::Static("ERR increment would produce NaN or Infinity"));
    }
    let mut text = Vec::with_capacity(24);
    sum.format_human(&mut text);
    let value = Value::Str(Str::from_bytes_no_int(&text));
    match entry {
        Some(e) => e.value = value,
        None => db.set(key, value, false),
    }
    out.bulk(&text);
    ex.dirty += 1;
    ex.notify(NotifyFlags::STRING, "incrbyfloat", key);
    ex.propagate(&[b"SET", key, &text, b"KEEPTTL"]);
    Ok(())
}

/// `GETRANGE key start end` (and `SUBSTR`): inclusive, negative indexes count from the end;
/// an empty bulk string when the range is empty or the key is missing.
fn getrange(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let start = a.int(2)?;
    let end = a.int(3)?;
    let key = &a[1];
    let (now, touch) = (ex.now, ex.touch());
    let (db, out) = db_out(ex, key);
    let Some(e) = db.lookup(key, now, touch) else {
        out.bulk(b"");
        return Ok(());
    };
    let mut scratch = itoa_buf::Buf::new();
    let bytes = as_str(&e.value)?.as_bytes(&mut scratch);
    match substr_range(bytes.len(), start, end) {
        Some((s, e)) => out.bulk(&bytes[s..=e]),
        None => out.bulk(b""),
    }
    Ok(())
}

/// GETRANGE's index arithmetic (Redis 7.0's getrangeCommand): the inclusive byte range, or
/// None for an empty reply. `start` beyond `end` with both negative is empty; otherwise
/// negative indexes count from the end and are clamped to 0 (so `0 -100` on "hello" is "h").
fn substr_range(len: usize, start: i64, end: i64) -> Option<(usize, usize)> {
    if len == 0 || (start < 0 && end < 0 && start > end) {
        return None;
    }
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { (len + end).max(0) } else { end.min(len - 1) };
    if start > end {
        None
    } else {
        Some((start as usize, end as usize))
    }
}

/// `SETRANGE key offset value`: the new length. Zero-pads past the end; the value becomes
/// `raw`. An empty value changes nothing and answers the current length (0 if missing).
fn setrange(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let offset = a.int(2)?;
    if offset < 0 {
        return Err(CmdError::Static("ERR offset is out of range"));
    }
    let offset = offset as u64;
    let (key, val) = (&a[1], &a[3]);
    let now = ex.now;
    let (db, out) = db_out(ex, key);
    let len = match db.lookup_write(key, now) {
        None => {
            if val.is_empty() {
                out.int(0);
                return Ok(());
            }
            check_string_length(offset, val.len() as u64)?;
            let mut raw = vec![0u8; offset as usize + val.len()];
            raw[offset as usize..].copy_from_slice(val);
            let len = raw.len();
            db.set(key, Value::Str(Str::Raw(raw)), false);
            len
        }
        Some(e) => {
            let s = as_str_mut(&mut e.value)?;
            if val.is_empty() {
                out.int(s.len() as i64);
                return Ok(());
            }
            check_string_length(offset, val.len() as u64)?;
            let raw = s.make_raw();
            let (off, end) = (offset as usize, offset as usize + val.len());
            if raw.len() < end {
                raw.resize(end, 0);
            }
            raw[off..end].copy_from_slice(val);
            raw.len()
        }
    };
    out.int(len as i64);
    ex.dirty += 1;
    ex.notify(NotifyFlags::STRING, "setrange", key);
    ex.propagate_as_is(a);
    Ok(())
}

/// One common run of LCS's IDX reply: inclusive ranges in each string.
#[derive(Debug, PartialEq, Eq)]
struct LcsMatch {
    a: (u32, u32),
    b: (u32, u32),
    len: u32,
}

/// The longest common subsequence of `a` and `b` by dynamic programming (as Redis's
/// lcsCommand, which this follows step for step so IDX lists the same runs in the same
/// order: from the end of the strings backwards). Returns the LCS string (when `want_string`)
/// and the runs of at least `min_len` bytes (when `want_runs`), with the LCS length.
fn lcs_compute(
    a: &[u8],
    b: &[u8],
    want_string: bool,
    want_runs: bool,
    min_len: i64,
) -> Result<(u32, Vec<u8>, Vec<LcsMatch>), CmdError> {
    if a.len() >= u32::MAX as usize - 1 || b.len() >= u32::MAX as usize - 1 {
        return Err(CmdError::Static("ERR String too long for LCS"));
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    // The table is transient memory Redis bounds by proto-max-bulk-len.
    if cells.saturating_mul(4) > max_bulk_len() {
        return Err(CmdError::Static(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let mut table: Vec<u32> = Vec::new();
    if table.try_reserve_exact(cells as usize).is_err() {
        return Err(CmdError::Static(
            "ERR Insufficient memory, failed allocating transient memory for LCS",
        ));
    }
    table.resize(cells as usize, 0);
    let w = blen + 1;
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * w + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * w + j - 1] + 1
            } else {
                table[(i - 1) * w + j].max(table[i * w + j - 1])
            };
        }
    }
    let total = table[alen * w + blen];
    let mut string = Vec::new();
    let mut runs = Vec::new();
    if !(want_string || want_runs) {
        return Ok((total, string, runs));
    }
    string.resize(total as usize, 0);
    let unset = alen as u32;
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (unset, 0u32, 0u32, 0u32);
    let (mut i, mut j, mut idx) = (alen, blen, total as usize);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            string[idx - 1] = a[i - 1];
            if a_start == unset {
                (a_start, a_end, b_start, b_end) = ((i - 1) as u32, (i - 1) as u32, (j - 1) as u32, (j - 1) as u32);
            } else if a_start == i as u32 && b_start == j as u32 {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * w + j] > table[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != unset {
                emit = true;
            }
        }
        if emit {
            let len = a_end - a_start + 1;
            if want_runs && (min_len == 0 || len as i64 >= min_len) {
                runs.push(LcsMatch {
                    a: (a_start, a_end),
                    b: (b_start, b_end),
                    len,
                });
            }
            a_start = unset;
        }
    }
    Ok((total, string, runs))
}

/// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN min-match-len] [WITHMATCHLEN]`
///
/// The LCS string, its length (LEN), or (IDX) a map `matches` (runs, from the end) / `len`.
/// Missing keys are empty strings.
fn lcs(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let (now, touch) = (ex.now, ex.touch());
    let mut load = |key: &[u8]| -> Result<Vec<u8>, CmdError> {
        match ex.db(key).lookup(key, now, touch) {
            None => Ok(Vec::new()),
            Some(Entry {
                value: Value::Str(s), ..
            }) => Ok(s.to_vec()),
            #[allow(unreachable_patterns)]
            Some(_) => Err(CmdError::Static("ERR The specified keys must contain string values")),
        }
    };
    // Both keys are looked up before either is checked, as Redis counts hits/misses.
    let sa = load(&a[1]);
    let sb = load(&a[2]);
    let (sa, sb) = (sa?, sb?);
    let (mut getlen, mut getidx, mut withmatchlen, mut min_len) = (false, false, false, 0i64);
    let mut cur = a.cursor(3);
    while let Some(arg) = cur.next_arg() {
        let opt = c_str(arg);
        if opt.eq_ignore_ascii_case(b"IDX") {
            getidx = true;
        } else if opt.eq_ignore_ascii_case(b"LEN") {
            getlen = true;
        } else if opt.eq_ignore_ascii_case(b"WITHMATCHLEN") {
            withmatchlen = true;
        } else if opt.eq_ignore_ascii_case(b"MINMATCHLEN") && !cur.is_done() {
            min_len = cur.int()?.max(0);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if getidx && getlen {
        return Err(CmdError::Static(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (total, string, runs) = lcs_compute(&sa, &sb, !getlen, getidx, min_len)?;
    let out = &mut *ex.out;
    if getidx {
        out.map(2);
        out.bulk(b"matches");
        out.array(runs.len());
        for m in &runs {
            out.array(if withmatchlen { 3 } else { 2 });
            out.array(2);
            out.int(m.a.0 as i64);
            out.int(m.a.1 as i64);
            out.array(2);
            out.int(m.b.0 as i64);
            out.int(m.b.1 as i64);
            if withmatchlen {
                out.int(m.len as i64);
            }
        }
        out.bulk(b"len");
        out.int(total as i64);
    } else if getlen {
        out.int(total as i64);
    } else {
        out.bulk(&string);
    }
    Ok(())
}

// ---- the table ------------------------------------------------------------------------

const RO: &[&str] = &["RO"];
/// SET's key is only read when GET is given (Redis's setGetKeys).
fn set_key_flags(a: &Args) -> &'static [&'static str] {
    if (3..a.len()).any(|i| a.is(i, "GET")) {
        RW_ACCESS_UPDATE
    } else {
        OW_UPDATE
    }
}

const RO_ACCESS: &[&str] = &["RO", "ACCESS"];
const OW_UPDATE: &[&str] = &["OW", "UPDATE"];
const OW_INSERT: &[&str] = &["OW", "INSERT"];
const RW_INSERT: &[&str] = &["RW", "INSERT"];
const RW_UPDATE: &[&str] = &["RW", "UPDATE"];
const RW_ACCESS_UPDATE: &[&str] = &["RW", "ACCESS", "UPDATE"];
const RW_ACCESS_DELETE: &[&str] = &["RW", "ACCESS", "DELETE"];
const RW_ACCESS_UPDATE_VARIABLE: &[&str] = &["RW", "ACCESS", "UPDATE", "VARIABLE_FLAGS"];
const STR: u32 = acl::STRING;
const SET_SYNTAX: &str = "key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]";
const GETEX_SYNTAX: &str =
    "key [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | PERSIST]";
const GETRANGE_COMPLEXITY: &str = "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.";
const SETRANGE_COMPLEXITY: &str = "O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument.";
const APPEND_COMPLEXITY: &str = "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation.";
/// LCS's two keys: one spec, index 1, last key 1 past it (as Redis declares it).
const LCS_KEYS: &[KeySpec] = &[KeySpec {
    flags: RO_ACCESS,
    notes: "",
    begin: Begin::Index(1),
    find: Find::Range {
        lastkey: 1,
        step: 1,
        limit: 0,
    },
}];

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "get", arity: 2, flags: READONLY | FAST, acl: STR, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "string", summary: "Returns the string value of a key.", syntax: "key", run: Run::Keyed(get, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "set", arity: -3, flags: WRITE | DENYOOM, acl: STR, key_specs: &[KeySpec::one(1, RW_ACCESS_UPDATE_VARIABLE).with_notes("RW and ACCESS due to the optional `GET` argument")], key_flags: Some(set_key_flags), group: "string", summary: "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", syntax: SET_SYNTAX, run: Run::Keyed(set, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "setnx", arity: 3, flags: WRITE | DENYOOM | FAST, acl: STR, key_specs: &[KeySpec::one(1, OW_INSERT)], group: "string", summary: "Set the string value of a key only when the key doesn't exist.", syntax: "key value", run: Run::Keyed(setnx, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "setex", arity: 4, flags: WRITE | DENYOOM, acl: STR, key_specs: &[KeySpec::one(1, OW_UPDATE)], group: "string", since: "2.0.0", summary: "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", syntax: "key seconds value", run: Run::Keyed(setex, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "psetex", arity: 4, flags: WRITE | DENYOOM, acl: STR, key_specs: &[KeySpec::one(1, OW_UPDATE)], group: "string", since: "2.6.0", summary: "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.", syntax: "key milliseconds value", run: Run::Keyed(psetex, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "getset", arity: 3, flags: WRITE | DENYOOM | FAST, acl: STR, key_specs: &[KeySpec::one(1, RW_ACCESS_UPDATE)], group: "string", summary: "Returns the previous string value of a key after setting it to a new value.", syntax: "key value", run: Run::Keyed(getset, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "getdel", arity: 2, flags: WRITE | FAST, acl: STR, key_specs: &[KeySpec::one(1, RW_ACCESS_DELETE)], group: "string", since: "6.2.0", summary: "Returns the string value of a key after deleting the key.", syntax: "key", run: Run::Keyed(getdel, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "getex", arity: -2, flags: WRITE | FAST, acl: STR, key_specs: &[KeySpec::one(1, RW_ACCESS_UPDATE)], group: "string", since: "6.2.0", summary: "Returns the string value of a key after setting its expiration time.", syntax: GETEX_SYNTAX, run: Run::Keyed(getex, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "mget", arity: -2, flags: READONLY | FAST, acl: STR, key_specs: &[KeySpec::rest(1, 1, RO_ACCESS)], group: "string", summary: "Atomically returns the string values of one or more keys.", complexity: "O(N) where N is the number of keys to retrieve.", syntax: "key [key ...]", tips: &["request_policy:multi_shard"], run: Run::Keyed(mget, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "mset", arity: -3, flags: WRITE | DENYOOM, acl: STR, key_specs: &[KeySpec::rest(1, 2, OW_UPDATE)], group: "string", since: "1.0.1", summary: "Atomically creates or modifies the string values of one or more keys.", complexity: "O(N) where N is the number of keys to set.", syntax: "key value [key value ...]", tips: &["request_policy:multi_shard", "response_policy:all_succeeded"], run: Run::Keyed(mset, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "msetnx", arity: -3, flags: WRITE | DENYOOM, acl: STR, key_specs: &[KeySpec::rest(1, 2, OW_INSERT)], group: "string", since: "1.0.1", summary: "Atomically modifies the string values of one or more keys only when all keys don't exist.", complexity: "O(N) where N is the number of keys to set.", syntax: "key value [key value ...]", tips: &["request_policy:multi_shard", "response_policy:agg_min"], run: Run::Keyed(msetnx, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "append", arity: 3, flags: WRITE | DENYOOM | FAST, acl: STR, key_specs: &[KeySpec::one(1, RW_INSERT)], group: "string", since: "2.0.0", summary: "Appends a string to the value of a key. Creates the key if it doesn't exist.", complexity: APPEND_COMPLEXITY, syntax: "key value", run: Run::Keyed(append, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "strlen", arity: 2, flags: READONLY | FAST, acl: STR, key_specs: &[KeySpec::one(1, RO)], group: "string", since: "2.2.0", summary: "Returns the length of a string value.", syntax: "key", run: Run::Keyed(strlen, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "incr", arity: 2, flags: WRITE | DENYOOM | FAST, acl: STR, key_specs: &[KeySpec::one(1, RW_ACCESS_UPDATE)], group: "string", summary: "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", syntax: "key", run: Run::Keyed(incr, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "decr", arity: 2, flags: WRITE | DENYOOM | FAST, acl: STR, key_specs: &[KeySpec::one(1, RW_ACCESS_UPDATE)], group: "string", summary: "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", syntax: "key", run: Run::Keyed(decr, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "incrby", arity: 3, flags: WRITE | DENYOOM | FAST, acl: STR, key_specs: &[KeySpec::one(1, RW_ACCESS_UPDATE)], group: "string", summary: "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", syntax: "key increment", run: Run::Keyed(incrby, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "decrby", arity: 3, flags: WRITE | DENYOOM | FAST, acl: STR, key_specs: &[KeySpec::one(1, RW_ACCESS_UPDATE)], group: "string", summary: "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.", syntax: "key decrement", run: Run::Keyed(decrby, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "incrbyfloat", arity: 3, flags: WRITE | DENYOOM | FAST, acl: STR, key_specs: &[KeySpec::one(1, RW_ACCESS_UPDATE)], group: "string", since: "2.6.0", summary: "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", syntax: "key increment", run: Run::Keyed(incrbyfloat, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "getrange", arity: 4, flags: READONLY, acl: STR, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "string", since: "2.4.0", summary: "Returns a substring of the string stored at a key.", complexity: GETRANGE_COMPLEXITY, syntax: "key start end", run: Run::Keyed(getrange, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "setrange", arity: 4, flags: WRITE | DENYOOM, acl: STR, key_specs: &[KeySpec::one(1, RW_UPDATE)], group: "string", since: "2.2.0", summary: "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", complexity: SETRANGE_COMPLEXITY, syntax: "key offset value", run: Run::Keyed(setrange, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "substr", arity: 4, flags: READONLY, acl: STR, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "string", summary: "Returns a substring from a string value.", complexity: GETRANGE_COMPLEXITY, syntax: "key start end", run: Run::Keyed(getrange, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "lcs", arity: -3, flags: READONLY, acl: STR, key_specs: LCS_KEYS, group: "string", since: "7.0.0", summary: "Finds the longest common substring.", complexity: "O(N*M) where N and M are the lengths of s1 and s2, respectively", syntax: "key1 key2 [LEN] [IDX] [MINMATCHLEN min-match-len] [WITHMATCHLEN]", run: Run::Keyed(lcs, Multi::Atomic), ..CommandSpec::DEFAULT },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::Effects;
    use crate::resp::Proto;
    use crate::store::{Store, Touch};
    use bytes::Bytes;

    const NOW: u64 = 1_700_000_000_000;

    /// One database over a local store, run like dispatch runs a keyed command.
    struct T {
        store: Store,
        effects: Effects,
        proto: Proto,
        now: u64,
        dirty: u64,
    }

    impl T {
        fn new() -> T {
            T {
                store: Store::new(16),
                effects: Effects::new(true),
                proto: Proto::Resp2,
                now: NOW,
                dirty: 0,
            }
        }

        fn run(&mut self, argv: &[&[u8]]) -> Vec<u8> {
            let args = Args::new(argv.iter().map(|a| Bytes::copy_from_slice(a)).collect());
            let name = String::from_utf8_lossy(argv[0]).to_ascii_lowercase();
            let spec = COMMANDS.iter().find(|c| c.name == name).expect("a string command");
            let mut out = Reply::new(self.proto);
            if !spec.arity_ok(args.len()) {
                out.error(&CmdError::WrongArity(name).to_string());
                return out.buf.to_vec();
            }
            let Run::Keyed(f, _) = spec.run else {
                unreachable!("string commands are keyed")
            };
            let mut ex = Exec::local(&mut self.store, &mut out, &mut self.effects, self.now);
            let r = f(&mut ex, &args);
            let dirty = ex.dirty;
            drop(ex);
            self.dirty += dirty;
            if let Err(e) = r {
                out.error(&e.to_string());
            }
            out.buf.to_vec()
        }

        /// Runs a command written with space-separated arguments; the reply as text.
        fn cmd(&mut self, line: &str) -> String {
            let argv: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            String::from_utf8_lossy(&self.run(&argv)).into_owned()
        }

        fn encoding(&mut self, key: &str) -> Option<&'static str> {
            self.store.dbs[0]
                .lookup(key.as_bytes(), self.now, Touch::No)
                .map(|e| e.value.encoding())
        }

        fn deadline(&mut self, key: &str) -> Option<u64> {
            self.store.dbs[0].expire_at(key.as_bytes())
        }

        fn exists(&mut self, key: &str) -> bool {
            self.store.dbs[0].contains(key.as_bytes(), self.now)
        }

        /// The effects recorded since the last call, as text commands (SELECTs left out).
        fn effects(&mut self) -> Vec<String> {
            let Some(rec) = self.effects.take(0) else {
                return vec![];
            };
            let b = &rec.bytes[..];
            let mut cmds = vec![];
            let mut p = 0;
            let line = |p: &mut usize| {
                let end = *p + b[*p..].windows(2).position(|w| w == b"\r\n").expect("crlf");
                let s = std::str::from_utf8(&b[*p + 1..end])
                    .expect("ascii")
                    .parse::<usize>()
                    .expect("len");
                *p = end + 2;
                s
            };
            while p < b.len() {
                let n = line(&mut p);
                let mut parts = vec![];
                for _ in 0..n {
                    let len = line(&mut p);
                    parts.push(String::from_utf8_lossy(&b[p..p + len]).into_owned());
                    p += len + 2;
                }
                if parts[0] != "SELECT" {
                    cmds.push(parts.join(" "));
                }
            }
            cmds
        }
    }

    fn bulk(s: &str) -> String {
        format!("${}\r\n{}\r\n", s.len(), s)
    }

    const NULL: &str = "$-1\r\n";
    const OK: &str = "+OK\r\n";
    const SYNTAX: &str = "-ERR syntax error\r\n";
    const NOT_INT: &str = "-ERR value is not an integer or out of range\r\n";
    const NOT_FLOAT: &str = "-ERR value is not a valid float\r\n";

    #[test]
    fn get_and_set() {
        let mut t = T::new();
        assert_eq!(t.cmd("GET k"), NULL);
        assert_eq!(t.cmd("SET k hello"), OK);
        assert_eq!(t.cmd("GET k"), bulk("hello"));
        assert_eq!(t.cmd("GET K"), NULL);
        assert_eq!(t.cmd("GET"), "-ERR wrong number of arguments for 'get' command\r\n");
        t.proto = Proto::Resp3;
        assert_eq!(t.cmd("GET nope"), "_\r\n");
        assert_eq!(t.dirty, 1);
        assert_eq!(t.effects(), ["SET k hello"]);
    }

    #[test]
    fn empty_and_binary_values() {
        let mut t = T::new();
        assert_eq!(t.run(&[b"SET", b"", b""]), OK.as_bytes());
        assert_eq!(t.run(&[b"GET", b""]), b"$0\r\n\r\n");
        let v = b"\x00\x01\r\n\xff";
        assert_eq!(t.run(&[b"SET", b"\x00k\xff", v]), OK.as_bytes());
        assert_eq!(t.run(&[b"GET", b"\x00k\xff"]), b"$5\r\n\x00\x01\r\n\xff\r\n");
        assert_eq!(t.run(&[b"STRLEN", b"\x00k\xff"]), b":5\r\n");
        assert_eq!(t.run(&[b"APPEND", b"\x00k\xff", b"\x00"]), b":6\r\n");
        assert_eq!(t.run(&[b"GETRANGE", b"\x00k\xff", b"-2", b"-1"]), b"$2\r\n\xff\x00\r\n");
    }

    #[test]
    fn set_encodings_follow_redis() {
        let mut t = T::new();
        t.cmd("SET i 12345");
        t.cmd("SET z 0123");
        t.cmd("SET big 9223372036854775808");
        t.run(&[b"SET", b"e44", &[b'a'; 44]]);
        t.run(&[b"SET", b"r45", &[b'a'; 45]]);
        assert_eq!(t.encoding("i"), Some("int"));
        assert_eq!(t.encoding("z"), Some("embstr"));
        assert_eq!(t.encoding("big"), Some("embstr"));
        assert_eq!(t.encoding("e44"), Some("embstr"));
        assert_eq!(t.encoding("r45"), Some("raw"));
        assert_eq!(t.cmd("GET i"), bulk("12345"));
    }

    #[test]
    fn set_nx_xx_get() {
        let mut t = T::new();
        assert_eq!(t.cmd("SET k v XX"), NULL);
        assert!(!t.exists("k"));
        assert_eq!(t.cmd("SET k v NX"), OK);
        assert_eq!(t.cmd("SET k w NX"), NULL);
        assert_eq!(t.cmd("SET k w XX"), OK);
        assert_eq!(t.cmd("GET k"), bulk("w"));
        // GET answers the old value whether or not NX/XX let the write happen (7.0 allows NX GET).
        assert_eq!(t.cmd("SET k x NX GET"), bulk("w"));
        assert_eq!(t.cmd("GET k"), bulk("w"));
        assert_eq!(t.cmd("SET k2 x XX GET"), NULL);
        assert!(!t.exists("k2"));
        assert_eq!(t.cmd("SET k y GET GET"), bulk("w"));
        assert_eq!(t.cmd("SET new v get"), NULL);
        assert_eq!(t.cmd("GET new"), bulk("v"));
        assert_eq!(t.cmd("SET k v NX XX"), SYNTAX);
        assert_eq!(t.cmd("SET k v XX NX"), SYNTAX);
        assert_eq!(t.cmd("SET k v nx nx"), NULL);
        assert_eq!(t.cmd("SET k v foo"), SYNTAX);
        // C compares option keywords as NUL-terminated strings.
        assert_eq!(t.run(&[b"SET", b"k", b"v", b"NX\x00junk"]), NULL.as_bytes());
        assert_eq!(t.dirty, 4);
        assert_eq!(t.effects(), ["SET k v", "SET k w", "SET k y", "SET new v"]);
    }

    #[test]
    fn set_expiry_options() {
        let mut t = T::new();
        assert_eq!(t.cmd("SET k v EX 10"), OK);
        assert_eq!(t.deadline("k"), Some(NOW + 10_000));
        assert_eq!(t.cmd("SET k v PX 1500"), OK);
        assert_eq!(t.deadline("k"), Some(NOW + 1500));
        assert_eq!(t.cmd("SET k v EXAT 2000000000"), OK);
        assert_eq!(t.deadline("k"), Some(2_000_000_000_000));
        assert_eq!(t.cmd("SET k v PXAT 2000000000123"), OK);
        assert_eq!(t.deadline("k"), Some(2_000_000_000_123));
        assert_eq!(t.cmd("SET k v KEEPTTL"), OK);
        assert_eq!(t.deadline("k"), Some(2_000_000_000_123));
        assert_eq!(t.cmd("SET k v"), OK);
        assert_eq!(t.deadline("k"), None);
        // A repeated unit is accepted, the last one wins; different units conflict.
        assert_eq!(t.cmd("SET k v EX 1 EX 20"), OK);
        assert_eq!(t.deadline("k"), Some(NOW + 20_000));
        assert_eq!(t.cmd("SET k v EX abc EX 5"), OK);
        for bad in [
            "EX 10 PX 10",
            "PX 1 EX 1",
            "EX 1 EXAT 1",
            "PXAT 1 PX 1",
            "EX 10 KEEPTTL",
            "KEEPTTL EX 10",
            "EX",
            "EX 10 PX",
            "PERSIST",
        ] {
            assert_eq!(t.cmd(&format!("SET k v {bad}")), SYNTAX, "{bad}");
        }
        assert_eq!(t.cmd("SET k v KEEPTTL KEEPTTL"), OK);
        // Syntax errors come before a bad number, a bad number before a bad time.
        assert_eq!(t.cmd("SET k v EX abc NX XX"), SYNTAX);
        assert_eq!(t.cmd("SET k v EX abc"), NOT_INT);
        assert_eq!(t.cmd("SET k v EX 1.5"), NOT_INT);
        let invalid = "-ERR invalid expire time in 'set' command\r\n";
        for bad in [
            "EX 0",
            "PX -1",
            "EXAT 0",
            "PXAT -5",
            "EX 9223372036854775",
            "PX 9223372036854775807",
            "EXAT 9223372036854776",
        ] {
            assert_eq!(t.cmd(&format!("SET k v {bad}")), invalid, "{bad}");
        }
        assert_eq!(t.cmd("SET k v EXAT 9223372036854775"), OK);
        assert_eq!(t.deadline("k"), Some(9_223_372_036_854_775_000));
        assert_eq!(t.cmd("SET k v PXAT 9223372036854775807"), OK);
        assert_eq!(t.deadline("k"), Some(i64::MAX as u64));
    }

    #[test]
    fn set_propagates_absolute_expiry() {
        let mut t = T::new();
        t.cmd("SET k v EX 10");
        t.cmd("SET k v px 5 GET");
        t.cmd("SET k v KEEPTTL NX");
        t.cmd("SET k v KEEPTTL XX");
        t.cmd("SET k v EXAT 2000000000");
        assert_eq!(
            t.effects(),
            [
                format!("SET k v PXAT {}", NOW + 10_000),
                format!("SET k v PXAT {}", NOW + 5),
                "SET k v KEEPTTL".to_string(),
                "SET k v PXAT 2000000000000".to_string(),
            ]
        );
        assert_eq!(t.dirty, 4);
    }

    #[test]
    fn set_with_past_deadline_expires_lazily() {
        let mut t = T::new();
        assert_eq!(t.cmd("SET k v PXAT 1"), OK);
        assert_eq!(t.cmd("GET k"), NULL);
        assert_eq!(t.effects(), ["SET k v PXAT 1"]);
        assert_eq!(t.store.dbs[0].expired.len(), 1);
    }

    #[test]
    fn setnx_setex_psetex() {
        let mut t = T::new();
        assert_eq!(t.cmd("SETNX k v"), ":1\r\n");
        assert_eq!(t.cmd("SETNX k w"), ":0\r\n");
        assert_eq!(t.cmd("GET k"), bulk("v"));
        assert_eq!(t.cmd("SETEX k 10 w"), OK);
        assert_eq!(t.deadline("k"), Some(NOW + 10_000));
        assert_eq!(t.cmd("PSETEX k 250 12"), OK);
        assert_eq!(t.deadline("k"), Some(NOW + 250));
        assert_eq!(t.encoding("k"), Some("int"));
        assert_eq!(t.cmd("SETEX k 0 v"), "-ERR invalid expire time in 'setex' command\r\n");
        assert_eq!(
            t.cmd("SETEX k 9223372036854776 v"),
            "-ERR invalid expire time in 'setex' command\r\n"
        );
        assert_eq!(
            t.cmd("PSETEX k -5 v"),
            "-ERR invalid expire time in 'psetex' command\r\n"
        );
        assert_eq!(t.cmd("SETEX k abc v"), NOT_INT);
        assert_eq!(
            t.cmd("SETEX k 10"),
            "-ERR wrong number of arguments for 'setex' command\r\n"
        );
        assert_eq!(t.dirty, 3);
        assert_eq!(
            t.effects(),
            [
                "SETNX k v".to_string(),
                format!("SET k w PXAT {}", NOW + 10_000),
                format!("SET k 12 PXAT {}", NOW + 250)
            ]
        );
    }

    #[test]
    fn getset_getdel() {
        let mut t = T::new();
        assert_eq!(t.cmd("GETSET k v"), NULL);
        assert_eq!(t.cmd("SETEX k 100 w"), OK);
        assert_eq!(t.cmd("GETSET k 7"), bulk("w"));
        assert_eq!(t.deadline("k"), None);
        assert_eq!(t.encoding("k"), Some("int"));
        assert_eq!(t.cmd("GETDEL k"), bulk("7"));
        assert!(!t.exists("k"));
        assert_eq!(t.cmd("GETDEL k"), NULL);
        assert_eq!(t.dirty, 4);
        assert_eq!(
            t.effects(),
            [
                "SET k v".to_string(),
                format!("SET k w PXAT {}", NOW + 100_000),
                "SET k 7".into(),
                "DEL k".into()
            ]
        );
    }

    #[test]
    fn getex() {
        let mut t = T::new();
        // A missing key answers null before its options are validated.
        assert_eq!(t.cmd("GETEX nokey EX 0"), NULL);
        assert_eq!(t.cmd("GETEX nokey EX abc"), NULL);
        assert_eq!(t.cmd("GETEX nokey FOO"), SYNTAX);
        t.cmd("SET k v");
        assert_eq!(t.cmd("GETEX k"), bulk("v"));
        assert_eq!(t.cmd("GETEX k EX 0"), "-ERR invalid expire time in 'getex' command\r\n");
        assert_eq!(t.cmd("GETEX k EX abc"), NOT_INT);
        for bad in [
            "PERSIST EX 1",
            "EX 1 PERSIST",
            "KEEPTTL",
            "NX",
            "GET",
            "EX",
            "EX 1 PX 1",
        ] {
            assert_eq!(t.cmd(&format!("GETEX k {bad}")), SYNTAX, "{bad}");
        }
        assert_eq!(t.cmd("GETEX k PERSIST"), bulk("v"));
        assert_eq!(t.cmd("GETEX k EX 10"), bulk("v"));
        assert_eq!(t.deadline("k"), Some(NOW + 10_000));
        assert_eq!(t.cmd("GETEX k PXAT 2000000000000"), bulk("v"));
        assert_eq!(t.deadline("k"), Some(2_000_000_000_000));
        assert_eq!(t.cmd("GETEX k PERSIST PERSIST"), bulk("v"));
        assert_eq!(t.deadline("k"), None);
        assert_eq!(t.cmd("GETEX k EXAT 1"), bulk("v"));
        assert!(!t.exists("k"));
        assert_eq!(t.dirty, 5);
        assert_eq!(
            t.effects(),
            [
                "SET k v".to_string(),
                format!("PEXPIREAT k {}", NOW + 10_000),
                "PEXPIREAT k 2000000000000".into(),
                "PERSIST k".into(),
                "DEL k".into()
            ]
        );
    }

    #[test]
    fn mget_mset_msetnx() {
        let mut t = T::new();
        assert_eq!(t.cmd("MSET a 1 b hello"), OK);
        t.proto = Proto::Resp3;
        assert_eq!(t.cmd("MGET a nokey b"), "*3\r\n$1\r\n1\r\n_\r\n$5\r\nhello\r\n");
        t.proto = Proto::Resp2;
        assert_eq!(t.cmd("MGET a nokey"), "*2\r\n$1\r\n1\r\n$-1\r\n");
        assert_eq!(
            t.cmd("MSET a 1 b"),
            "-ERR wrong number of arguments for 'mset' command\r\n"
        );
        assert_eq!(
            t.cmd("MSETNX a 1 b"),
            "-ERR wrong number of arguments for 'msetnx' command\r\n"
        );
        assert_eq!(t.cmd("MSETNX c 1 a 2"), ":0\r\n");
        assert!(!t.exists("c"));
        assert_eq!(t.cmd("MSETNX c 1 d 2 c 3"), ":1\r\n");
        assert_eq!(t.cmd("MGET c d"), "*2\r\n$1\r\n3\r\n$1\r\n2\r\n");
        t.cmd("SETEX a 10 x");
        t.cmd("MSET a 5");
        assert_eq!(t.deadline("a"), None);
        assert_eq!(t.dirty, 2 + 3 + 1 + 1);
        assert_eq!(
            t.effects(),
            [
                "MSET a 1 b hello".to_string(),
                "MSETNX c 1 d 2 c 3".into(),
                format!("SET a x PXAT {}", NOW + 10_000),
                "MSET a 5".into()
            ]
        );
    }

    #[test]
    fn append_and_strlen() {
        let mut t = T::new();
        assert_eq!(t.cmd("STRLEN k"), ":0\r\n");
        assert_eq!(t.cmd("APPEND k 12"), ":2\r\n");
        assert_eq!(t.encoding("k"), Some("int"));
        assert_eq!(t.cmd("STRLEN k"), ":2\r\n");
        assert_eq!(t.cmd("APPEND k 3"), ":3\r\n");
        assert_eq!(t.encoding("k"), Some("raw"));
        assert_eq!(t.cmd("GET k"), bulk("123"));
        // Still a canonical integer: INCR works and stores an int again.
        assert_eq!(t.cmd("INCR k"), ":124\r\n");
        assert_eq!(t.encoding("k"), Some("int"));
        assert_eq!(t.run(&[b"APPEND", b"k", b""]), b":3\r\n");
        assert_eq!(t.encoding("k"), Some("raw"));
        t.cmd("SET e abc");
        assert_eq!(t.run(&[b"APPEND", b"e", b""]), b":3\r\n");
        assert_eq!(t.encoding("e"), Some("raw"));
        t.cmd("SET i -123");
        assert_eq!(t.cmd("STRLEN i"), ":4\r\n");
        t.cmd("SETEX ttl 10 a");
        t.cmd("APPEND ttl b");
        assert_eq!(t.deadline("ttl"), Some(NOW + 10_000));
        assert_eq!(t.dirty, 9);
        let effects = t.effects();
        assert_eq!(effects[0], "APPEND k 12");
        assert_eq!(effects.last().map(String::as_str), Some("APPEND ttl b"));
    }

    #[test]
    fn string_length_limit() {
        assert!(check_string_length(512 << 20, 0).is_ok());
        assert!(check_string_length((512 << 20) - 1, 1).is_ok());
        let err = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
        assert_eq!(check_string_length(512 << 20, 1).unwrap_err().to_string(), err);
        assert_eq!(check_string_length(u64::MAX, 2).unwrap_err().to_string(), err);
    }

    #[test]
    fn incr_decr() {
        let mut t = T::new();
        assert_eq!(t.cmd("INCR n"), ":1\r\n");
        assert_eq!(t.cmd("DECR n"), ":0\r\n");
        assert_eq!(t.cmd("DECR n"), ":-1\r\n");
        assert_eq!(t.cmd("INCRBY n 11"), ":10\r\n");
        assert_eq!(t.cmd("DECRBY n 20"), ":-10\r\n");
        assert_eq!(t.encoding("n"), Some("int"));
        for bad in [" 1", "+1", "-0", "01", "1.5", "abc", "9223372036854775808"] {
            t.run(&[b"SET", b"s", bad.as_bytes()]);
            assert_eq!(t.cmd("INCR s"), NOT_INT, "{bad:?}");
        }
        t.run(&[b"SET", b"s", b""]);
        assert_eq!(t.cmd("INCR s"), NOT_INT);
        assert_eq!(t.cmd("INCRBY n 1.5"), NOT_INT);
        assert_eq!(t.cmd("INCRBY n 99999999999999999999"), NOT_INT);
        let overflow = "-ERR increment or decrement would overflow\r\n";
        t.cmd("SET m 9223372036854775807");
        assert_eq!(t.cmd("INCR m"), overflow);
        assert_eq!(t.cmd("INCRBY m -9223372036854775808"), ":-1\r\n");
        t.cmd("SET m -9223372036854775808");
        assert_eq!(t.cmd("DECR m"), overflow);
        assert_eq!(t.cmd("INCRBY m -1"), overflow);
        assert_eq!(t.cmd("DECRBY m -9223372036854775807"), ":-1\r\n");
        assert_eq!(
            t.cmd("DECRBY x -9223372036854775808"),
            "-ERR decrement would overflow\r\n"
        );
        assert!(!t.exists("x"));
        assert_eq!(t.cmd("INCRBY x -9223372036854775808"), ":-9223372036854775808\r\n");
        assert_eq!(t.cmd("DECRBY x 9223372036854775807"), overflow);
        t.cmd("SETEX ttl 10 5");
        assert_eq!(t.cmd("INCR ttl"), ":6\r\n");
        assert_eq!(t.deadline("ttl"), Some(NOW + 10_000));
        let effects = t.effects();
        assert_eq!(
            effects[..5],
            ["INCR n", "DECR n", "DECR n", "INCRBY n 11", "DECRBY n 20"]
        );
    }

    #[test]
    fn incrbyfloat() {
        let mut t = T::new();
        assert_eq!(t.cmd("INCRBYFLOAT f 0.1"), bulk("0.1"));
        assert_eq!(t.encoding("f"), Some("embstr"));
        assert_eq!(t.cmd("INCRBYFLOAT f 0.2"), bulk("0.3"));
        t.cmd("SET f 10.5");
        assert_eq!(t.cmd("INCRBYFLOAT f 0.1"), bulk("10.6"));
        t.cmd("SET f 5");
        assert_eq!(t.cmd("INCRBYFLOAT f -5"), bulk("0"));
        assert_eq!(t.encoding("f"), Some("embstr"));
        assert_eq!(t.cmd("INCRBYFLOAT f 5.0e3"), bulk("5000"));
        assert_eq!(t.cmd("INCRBYFLOAT f 0x10"), bulk("5016"));
        let big = t.cmd("INCRBYFLOAT g 1e300");
        assert!(big.starts_with("$301\r\n1000000000000000000008997324079559193870523944273290747938260082321265646596180935755849152083750497190350372508614274835903592556184672983913096260520748646287327135641843653294084255107606016789726652932370030551382947620994540294772781889620606179267611627097410650567187386105690089424915104006144\r\n"), "{big}");
        assert_eq!(t.encoding("g"), Some("raw"));
        assert_eq!(
            t.cmd("INCRBYFLOAT h inf"),
            "-ERR increment would produce NaN or Infinity\r\n"
        );
        assert!(!t.exists("h"));
        assert_eq!(t.cmd("INCRBYFLOAT h abc"), NOT_FLOAT);
        assert_eq!(t.cmd("INCRBYFLOAT h nan"), NOT_FLOAT);
        assert_eq!(t.run(&[b"INCRBYFLOAT", b"h", b" 1"]), NOT_FLOAT.as_bytes());
        assert_eq!(t.cmd("INCRBYFLOAT h 1e5000"), NOT_FLOAT);
        for nul in [&b"1.5\x00junk"[..], b"\x00", b"1\x00"] {
            assert_eq!(t.run(&[b"INCRBYFLOAT", b"h", nul]), NOT_FLOAT.as_bytes());
            t.run(&[b"SET", b"nul", nul]);
            assert_eq!(t.run(&[b"INCRBYFLOAT", b"nul", b"1"]), NOT_FLOAT.as_bytes());
        }
        t.cmd("SET h abc");
        assert_eq!(t.cmd("INCRBYFLOAT h 1"), NOT_FLOAT);
        t.cmd("SET h 1e4000");
        let r = t.cmd("INCRBYFLOAT h 1e4000");
        assert!(r.starts_with("$4001\r\n199999999999999999999309277"), "{}", &r[..40]);
        t.cmd("SET i 9223372036854775807");
        assert_eq!(t.cmd("INCRBYFLOAT i 1"), bulk("9223372036854775808"));
        t.cmd("SETEX ttl 10 1");
        t.effects();
        assert_eq!(t.cmd("INCRBYFLOAT ttl 1.5"), bulk("2.5"));
        assert_eq!(t.deadline("ttl"), Some(NOW + 10_000));
        assert_eq!(t.effects(), ["SET ttl 2.5 KEEPTTL"]);
    }

    #[test]
    fn getrange_indexes_like_redis_7_0() {
        let mut t = T::new();
        t.cmd("SET k hello");
        let cases = [
            ("0 -1", "hello"),
            ("-1 -5", ""),
            ("-100 -200", ""),
            ("0 -100", "h"),
            ("-3 -1", "llo"),
            ("5 10", ""),
            ("4 100", "o"),
            ("2 1", ""),
            ("-9223372036854775808 9223372036854775807", "hello"),
            ("9223372036854775807 -9223372036854775808", ""),
            ("1 1", "e"),
            ("-100 1", "he"),
        ];
        for (range, want) in cases {
            assert_eq!(t.cmd(&format!("GETRANGE k {range}")), bulk(want), "{range}");
            assert_eq!(t.cmd(&format!("SUBSTR k {range}")), bulk(want), "{range}");
        }
        assert_eq!(t.cmd("GETRANGE nokey 0 -1"), bulk(""));
        t.run(&[b"SET", b"e", b""]);
        assert_eq!(t.cmd("GETRANGE e 0 -1"), bulk(""));
        assert_eq!(t.cmd("GETRANGE e -1 0"), bulk(""));
        t.cmd("SET i -12345");
        assert_eq!(t.cmd("GETRANGE i 0 2"), bulk("-12"));
        assert_eq!(t.cmd("GETRANGE k 0 99999999999999999999"), NOT_INT);
        assert_eq!(t.cmd("GETRANGE k a 1"), NOT_INT);
    }

    #[test]
    fn setrange() {
        let mut t = T::new();
        assert_eq!(t.cmd("SETRANGE k -1 x"), "-ERR offset is out of range\r\n");
        assert_eq!(t.cmd("SETRANGE k abc x"), NOT_INT);
        let too_big = "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n";
        assert_eq!(t.cmd("SETRANGE k 9223372036854775807 x"), too_big);
        assert_eq!(t.cmd("SETRANGE k 536870912 x"), too_big);
        assert_eq!(t.run(&[b"SETRANGE", b"k", b"536870912", b""]), b":0\r\n");
        assert!(!t.exists("k"));
        assert_eq!(t.cmd("SETRANGE k 3 ab"), ":5\r\n");
        assert_eq!(t.run(&[b"GET", b"k"]), b"$5\r\n\x00\x00\x00ab\r\n");
        assert_eq!(t.encoding("k"), Some("raw"));
        t.cmd("SET s 12345");
        assert_eq!(t.run(&[b"SETRANGE", b"s", b"1", b""]), b":5\r\n");
        assert_eq!(t.encoding("s"), Some("int"));
        assert_eq!(t.cmd("SETRANGE s 1 x"), ":5\r\n");
        assert_eq!(t.cmd("GET s"), bulk("1x345"));
        assert_eq!(t.encoding("s"), Some("raw"));
        assert_eq!(t.cmd("SETRANGE s 4 yz"), ":6\r\n");
        assert_eq!(t.cmd("GET s"), bulk("1x34yz"));
        assert_eq!(t.cmd("SETRANGE s 536870912 x"), too_big);
        assert_eq!(t.dirty, 4);
        assert_eq!(
            t.effects(),
            ["SETRANGE k 3 ab", "SET s 12345", "SETRANGE s 1 x", "SETRANGE s 4 yz"]
        );
    }

    #[test]
    fn lcs() {
        let mut t = T::new();
        t.cmd("MSET a ohmytext b mynewtext");
        assert_eq!(t.cmd("LCS a b"), bulk("mytext"));
        assert_eq!(t.cmd("LCS a b LEN"), ":6\r\n");
        let idx = "*4\r\n$7\r\nmatches\r\n*2\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n*2\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n$3\r\nlen\r\n:6\r\n";
        assert_eq!(t.cmd("LCS a b IDX"), idx);
        assert_eq!(t.cmd("LCS a b IDX MINMATCHLEN -5"), idx);
        assert_eq!(
            t.cmd("LCS a b idx minmatchlen 4 withmatchlen"),
            "*4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n$3\r\nlen\r\n:6\r\n"
        );
        t.proto = Proto::Resp3;
        assert_eq!(
            t.cmd("LCS a b IDX WITHMATCHLEN"),
            "%2\r\n$7\r\nmatches\r\n*2\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n*3\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n:2\r\n$3\r\nlen\r\n:6\r\n"
        );
        assert_eq!(t.cmd("LCS x y IDX"), "%2\r\n$7\r\nmatches\r\n*0\r\n$3\r\nlen\r\n:0\r\n");
        t.proto = Proto::Resp2;
        assert_eq!(t.cmd("LCS x y"), bulk(""));
        assert_eq!(
            t.cmd("LCS a b LEN IDX"),
            "-ERR If you want both the length and indexes, please just use IDX.\r\n"
        );
        assert_eq!(
            t.cmd("LCS a b IDX IDX LEN"),
            "-ERR If you want both the length and indexes, please just use IDX.\r\n"
        );
        assert_eq!(t.cmd("LCS a b FOO"), SYNTAX);
        assert_eq!(t.cmd("LCS a b MINMATCHLEN"), SYNTAX);
        assert_eq!(t.cmd("LCS a b MINMATCHLEN abc"), NOT_INT);
        assert_eq!(t.cmd("LCS a"), "-ERR wrong number of arguments for 'lcs' command\r\n");
        t.cmd("SET i 12345");
        t.cmd("SET j 2x4");
        assert_eq!(t.cmd("LCS i j"), bulk("24"));
        assert_eq!(t.cmd("LCS a a LEN"), ":8\r\n");
        // Only the writes that set the keys up.
        assert_eq!(t.dirty, 4);
    }

    #[test]
    fn lcs_runs_and_limits() {
        let (total, s, runs) = lcs_compute(b"abcXdef", b"abcYdef", true, true, 0).unwrap();
        assert_eq!((total, &s[..]), (6, &b"abcdef"[..]));
        assert_eq!(
            runs,
            [
                LcsMatch {
                    a: (4, 6),
                    b: (4, 6),
                    len: 3
                },
                LcsMatch {
                    a: (0, 2),
                    b: (0, 2),
                    len: 3
                }
            ]
        );
        let (total, s, runs) = lcs_compute(b"", b"abc", true, true, 0).unwrap();
        assert_eq!((total, s.len(), runs.len()), (0, 0, 0));
        let a = vec![b'a'; 12000];
        let err = lcs_compute(&a, &a, false, false, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
        );
    }

    #[test]
    fn option_parser() {
        let args = |v: &[&str]| Args::new(v.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect());
        let a = args(&["set", "k", "v", "nx", "get", "px", "100"]);
        let o = parse_set_opts(&a, 3, OptsFor::Set).unwrap();
        assert!(o.nx && o.get && !o.xx);
        assert_eq!(o.expire, Some((ExpireUnit::Px, &b"100"[..])));
        let a = args(&["getex", "k", "persist"]);
        assert!(parse_set_opts(&a, 2, OptsFor::Getex).unwrap().persist);
        let a = args(&["getex", "k", "get"]);
        assert_eq!(parse_set_opts(&a, 2, OptsFor::Getex), Err(CmdError::Syntax));
        assert_eq!(expire_deadline(ExpireUnit::Ex, b"1", 5, "x"), Ok(1005));
        assert_eq!(
            expire_deadline(ExpireUnit::Px, b"9223372036854775807", 0, "x"),
            Ok(i64::MAX as u64)
        );
        assert_eq!(
            expire_deadline(ExpireUnit::Px, b"9223372036854775807", 1, "x"),
            Err(CmdError::InvalidExpire("x".into()))
        );
    }

    #[test]
    fn table_is_consistent() {
        let mut names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len());
        assert_eq!(COMMANDS.len(), 22);
        for c in COMMANDS {
            assert_eq!(c.group, "string", "{}", c.name);
            assert!(c.summary.ends_with('.'), "{}", c.name);
            assert!(c.is_keyed(), "{}", c.name);
        }
        let mut keys = vec![];
        let lcs = COMMANDS.iter().find(|c| c.name == "lcs").unwrap();
        let a = Args::new(
            ["lcs", "a", "b", "LEN"]
                .iter()
                .map(|s| Bytes::from_static(s.as_bytes()))
                .collect(),
        );
        crate::command::keys::key_positions(lcs.key_specs, &a, &mut keys).unwrap();
        assert_eq!(keys, [1, 2]);
        assert_eq!(crate::command::keys::legacy_range(lcs.key_specs), (1, 2, 1, false));
    }
}
