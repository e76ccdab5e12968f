//! Strings: GET SET MGET MSET and the rest of the string family.

use crate::command::{acl, flags::*, Args, CommandSpec, Exec, KeySpec, Multi, Run};
use crate::error::CmdError;
use crate::store::value::itoa_buf;
use crate::store::{Entry, Str, Touch, Value};

// ---- shard operations ----------------------------------------------------------------

/// The string at `key`, or WRONGTYPE. Missing keys are None.
fn get_str<'a>(ex: &'a mut Exec<'_>, key: &[u8]) -> Result<Option<&'a mut Str>, CmdError> {
    let (now, touch) = (ex.now, ex.touch());
    match ex.db(key).lookup(key, now, touch) {
        None => Ok(None),
        Some(Entry { value: Value::Str(s), .. }) => Ok(Some(s)),
        #[allow(unreachable_patterns)]
        Some(_) => Err(CmdError::WrongType),
    }
}

fn reply_str(ex: &mut Exec<'_>, s: Option<&Str>) {
    match s {
        None => ex.out.null(),
        Some(Str::Int(n)) => ex.out.bulk_int(*n),
        Some(Str::Emb(b)) => ex.out.bulk(b),
        Some(Str::Raw(v)) => ex.out.bulk(v),
    }
}

/// SET's expiry and condition options, shared by SET and GETEX-like commands.
#[derive(Default, Debug, PartialEq)]
pub struct SetOpts {
    pub nx: bool,
    pub xx: bool,
    pub get: bool,
    pub keepttl: bool,
    /// Absolute deadline in ms.
    pub expire_at: Option<u64>,
}

/// Parses `[NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ms-ts | KEEPTTL]` from argument `start`
/// (Redis's parseExtendedStringArgumentsOrReply): each option at most once, no conflicting pair.
pub fn parse_set_opts(a: &Args, start: usize, now: u64, cmd: &str) -> Result<SetOpts, CmdError> {
    let mut o = SetOpts::default();
    let mut unit_given = false;
    let mut cur = a.cursor(start);
    while let Some(opt) = cur.next_arg() {
        let up = opt.to_ascii_uppercase();
        match up.as_slice() {
            b"NX" if !o.xx => o.nx = true,
            b"XX" if !o.nx => o.xx = true,
            b"GET" => o.get = true,
            b"KEEPTTL" if !unit_given => o.keepttl = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if !unit_given && !o.keepttl && !cur.is_done() => {
                unit_given = true;
                let v = cur.int()?;
                if v <= 0 {
                    return Err(CmdError::InvalidExpire(cmd.into()));
                }
                let at = match up.as_slice() {
                    b"EX" => v.checked_mul(1000).and_then(|ms| ms.checked_add(now as i64)),
                    b"PX" => v.checked_add(now as i64),
                    b"EXAT" => v.checked_mul(1000),
                    _ => Some(v),
                };
                o.expire_at = Some(at.ok_or_else(|| CmdError::InvalidExpire(cmd.into()))? as u64);
            }
            _ => return Err(CmdError::Syntax),
        }
    }
    Ok(o)
}

fn get(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let s = get_str(ex, &a[1])?.map(|s| s as &Str).cloned();
    reply_str(ex, s.as_ref());
    Ok(())
}

fn set(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let o = parse_set_opts(a, 3, ex.now, "set")?;
    let key = &a[1];
    let now = ex.now;
    let db = ex.db(key);
    let old = db.lookup_write(key, now);
    let exists = old.is_some();
    let old_value = if o.get {
        match old {
            None => None,
            Some(Entry { value: Value::Str(s), .. }) => Some(s.clone()),
            #[allow(unreachable_patterns)]
            Some(_) => return Err(CmdError::WrongType),
        }
    } else {
        None
    };
    if (o.nx && exists) || (o.xx && !exists) {
        if o.get {
            reply_str(ex, old_value.as_ref());
        } else {
            ex.out.null();
        }
        return Ok(());
    }
    db.set(key, Value::Str(Str::from_set(&a[2])), o.keepttl);
    if let Some(at) = o.expire_at {
        db.set_expire(key, at);
    }
    ex.dirty += 1;
    if ex.effects.is_enabled() {
        let mut n = itoa_buf::Buf::new();
        match o.expire_at {
            Some(at) => {
                let at_s = n.format(at as i64).to_vec();
                ex.propagate(&[b"SET", key, &a[2], b"PXAT", &at_s]);
            }
            None if o.keepttl => ex.propagate(&[b"SET", key, &a[2], b"KEEPTTL"]),
            None => ex.propagate(&[b"SET", key, &a[2]]),
        }
    }
    if o.get {
        reply_str(ex, old_value.as_ref());
    } else {
        ex.out.ok();
    }
    Ok(())
}

fn mget(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    ex.out.array(a.len() - 1);
    let (now, touch) = (ex.now, ex.touch());
    for i in 1..a.len() {
        let key = &a[i];
        let s = match ex.db(key).lookup(key, now, touch) {
            Some(Entry { value: Value::Str(s), .. }) => Some(s.clone()),
            _ => None,
        };
        reply_str(ex, s.as_ref());
    }
    Ok(())
}

fn mset(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    if a.len() % 2 == 0 {
        return Err(CmdError::WrongArity("mset".into()));
    }
    for i in (1..a.len()).step_by(2) {
        let key = &a[i];
        ex.db(key).set(key, Value::Str(Str::from_set(&a[i + 1])), false);
        ex.propagate(&[b"SET", key, &a[i + 1]]);
    }
    ex.dirty += (a.len() as u64 - 1) / 2;
    ex.out.ok();
    Ok(())
}

/// SET's key is only read when GET is given (Redis's setGetKeys).
fn set_key_flags(a: &Args) -> &'static [&'static str] {
    if (3..a.len()).any(|i| a.is(i, "GET")) {
        &["RW", "ACCESS", "UPDATE"]
    } else {
        OW_UPDATE
    }
}

const RO_ACCESS: &[&str] = &["RO", "ACCESS"];
const OW_UPDATE: &[&str] = &["OW", "UPDATE"];
const RW_ACCESS_UPDATE: &[&str] = &["RW", "ACCESS", "UPDATE", "VARIABLE_FLAGS"];
const STR: u32 = acl::STRING;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "get", arity: 2, flags: READONLY | FAST, acl: STR, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "string", summary: "Returns the string value of a key.", syntax: "key", run: Run::Keyed(get, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "set", arity: -3, flags: WRITE | DENYOOM, acl: STR, key_specs: &[KeySpec::one(1, RW_ACCESS_UPDATE).with_notes("RW and ACCESS due to the optional `GET` argument")], group: "string", summary: "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", syntax: "key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]", run: Run::Keyed(set, Multi::Atomic), key_flags: Some(set_key_flags), ..CommandSpec::DEFAULT },
    CommandSpec { name: "mget", arity: -2, flags: READONLY | FAST, acl: STR, key_specs: &[KeySpec::rest(1, 1, RO_ACCESS)], group: "string", summary: "Atomically returns the string values of one or more keys.", complexity: "O(N) where N is the number of keys to retrieve.", syntax: "key [key ...]", tips: &["request_policy:multi_shard"], run: Run::Keyed(mget, Multi::SplitArray), ..CommandSpec::DEFAULT },
    CommandSpec { name: "mset", arity: -3, flags: WRITE | DENYOOM, acl: STR, key_specs: &[KeySpec::rest(1, 2, OW_UPDATE)], group: "string", since: "1.0.1", summary: "Atomically creates or modifies the string values of one or more keys.", complexity: "O(N) where N is the number of keys to set.", syntax: "key value [key value ...]", tips: &["request_policy:multi_shard", "response_policy:all_succeeded"], run: Run::Keyed(mset, Multi::Atomic), ..CommandSpec::DEFAULT },
];

#[allow(dead_code)]
fn _touch_is_used(t: Touch) -> Touch {
    t
}
