//! Conversions between Redis replies and Lua values, as redis.io's "Lua API reference" and
//! Redis's script_lua.c define them, for RESP2 and RESP3 (`redis.setresp(3)`).

use std::ffi::c_int;

use mlua::ffi;

use crate::resp::{Proto, Reply};

/// An error's text the way Redis stores it in a Lua error table (luaPushErrorBuff):
/// `-CODE msg` -> `CODE msg`; a text with no code (or no space) gets `ERR`; trailing CR/LF go.
pub fn error_text(raw: &[u8]) -> Vec<u8> {
    let s: &[u8] = raw;
    let (code, msg): (&[u8], &[u8]) = match s.strip_prefix(b"-") {
        Some(rest) => match memchr::memchr(b' ', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (b"ERR", rest),
        },
        // error_reply adds the '-' itself, so a text without one has its first word as code.
        None => match memchr::memchr(b' ', s) {
            Some(i) => (&s[..i], &s[i + 1..]),
            None => (b"ERR", s),
        },
    };
    let mut end = msg.len();
    while end > 0 && (msg[end - 1] == b'\r' || msg[end - 1] == b'\n') {
        end -= 1;
    }
    let mut start = 0;
    while start < end && (msg[start] == b'\r' || msg[start] == b'\n') {
        start += 1;
    }
    let mut out = Vec::with_capacity(code.len() + 1 + end - start);
    out.extend_from_slice(code);
    out.push(b' ');
    out.extend_from_slice(&msg[start..end]);
    out
}

fn line(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(pos..)?;
    let i = memchr::memchr(b'\r', rest)?;
    Some((&rest[..i], pos + i + 2))
}

fn int(b: &[u8]) -> i64 {
    std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Pushes a byte string.
///
/// # Safety
/// A free stack slot.
unsafe fn push_str(l: *mut ffi::lua_State, b: &[u8]) {
    ffi::lua_pushlstring_(l, b.as_ptr() as *const _, b.len());
}

/// Replaces the value on top of the stack with `{key = value}`.
///
/// # Safety
/// A value on top, two free stack slots.
unsafe fn wrap_tagged(l: *mut ffi::lua_State, key: &[u8]) {
    ffi::lua_createtable(l, 0, 1);
    ffi::lua_insert(l, -2);
    push_str(l, key);
    ffi::lua_insert(l, -2);
    ffi::lua_rawset(l, -3);
}

/// Pushes the reply at `pos` converted to a Lua value (Redis's redisProtocolToLuaType);
/// returns the position after it, or None if the reply is malformed or too deep for the
/// stack (nothing is pushed then... beyond what was, which the caller's frame drops).
///
/// # Safety
/// Lua's stack, on the VM's thread; pushes can only fail on out-of-memory.
pub unsafe fn push_reply(l: *mut ffi::lua_State, buf: &[u8], pos: usize) -> Option<usize> {
    if ffi::lua_checkstack(l, 4) == 0 {
        return None;
    }
    let kind = *buf.get(pos)?;
    let (head, next) = line(buf, pos + 1)?;
    Some(match kind {
        b'+' => {
            push_str(l, head);
            wrap_tagged(l, b"ok");
            next
        }
        b'-' => {
            push_str(l, &error_text(&[b"-", head].concat()));
            wrap_tagged(l, b"err");
            next
        }
        b':' => {
            ffi::lua_pushnumber(l, int(head) as f64);
            next
        }
        b'$' | b'=' => {
            let n = int(head);
            if n < 0 {
                ffi::lua_pushboolean(l, 0);
                return Some(next);
            }
            let data = buf.get(next..next + n as usize)?;
            if kind == b'=' {
                let (fmt, text) = if data.len() >= 4 {
                    (&data[..3], &data[4..])
                } else {
                    (&b"txt"[..], data)
                };
                ffi::lua_createtable(l, 0, 2);
                push_str(l, b"format");
                push_str(l, fmt);
                ffi::lua_rawset(l, -3);
                push_str(l, b"string");
                push_str(l, text);
                ffi::lua_rawset(l, -3);
                wrap_tagged(l, b"verbatim_string");
            } else {
                push_str(l, data);
            }
            next + n as usize + 2
        }
        b'*' | b'>' | b'~' => {
            let n = int(head);
            if n < 0 {
                ffi::lua_pushboolean(l, 0);
                return Some(next);
            }
            ffi::lua_createtable(l, if kind == b'~' { 0 } else { n.min(1 << 20) as i32 }, 0);
            let mut p = next;
            for i in 0..n {
                p = push_reply(l, buf, p)?;
                if kind == b'~' {
                    ffi::lua_pushboolean(l, 1);
                    ffi::lua_rawset(l, -3);
                } else {
                    ffi::lua_rawseti_(l, -2, (i + 1) as i32);
                }
            }
            if kind == b'~' {
                wrap_tagged(l, b"set");
            }
            p
        }
        b'%' | b'|' => {
            let n = int(head);
            ffi::lua_createtable(l, 0, 0);
            let mut p = next;
            for _ in 0..n.max(0) {
                p = push_reply(l, buf, p)?;
                p = push_reply(l, buf, p)?;
                ffi::lua_rawset(l, -3);
            }
            if kind == b'|' {
                // Attributes are not passed to scripts: the reply that follows is.
                ffi::lua_settop(l, -2);
                return push_reply(l, buf, p);
            }
            wrap_tagged(l, b"map");
            p
        }
        b'_' => {
            ffi::lua_pushnil(l);
            next
        }
        b'#' => {
            ffi::lua_pushboolean(l, (head == b"t") as i32);
            next
        }
        b',' => {
            let s = std::str::from_utf8(head).unwrap_or("0");
            let d = match s {
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                _ => s.parse().unwrap_or(f64::NAN),
            };
            ffi::lua_pushnumber(l, d);
            wrap_tagged(l, b"double");
            next
        }
        b'(' => {
            push_str(l, head);
            wrap_tagged(l, b"big_number");
            next
        }
        _ => return None,
    })
}

/// The string at `idx`, if it is one (numbers are not converted: that would disturb
/// `lua_next`).
///
/// # Safety
/// `idx` is valid; the slice lives while the value stays on the stack.
unsafe fn string_at<'a>(l: *mut ffi::lua_State, idx: c_int) -> Option<&'a [u8]> {
    if ffi::lua_type(l, idx) != ffi::LUA_TSTRING {
        return None;
    }
    let mut len = 0usize;
    let p = ffi::lua_tolstring(l, idx, &mut len);
    (!p.is_null()).then(|| std::slice::from_raw_parts(p as *const u8, len))
}

/// Pushes `t[key]` (raw).
///
/// # Safety
/// A table at the absolute index `t`, a free stack slot.
unsafe fn push_field(l: *mut ffi::lua_State, t: c_int, key: &[u8]) -> c_int {
    push_str(l, key);
    ffi::lua_rawget_(l, t);
    ffi::lua_type(l, -1)
}

fn one_line(b: &[u8]) -> String {
    String::from_utf8_lossy(b).replace(['\r', '\n'], " ")
}

/// Writes the Lua value at `idx` as the script's reply (Redis's luaReplyToRedisReply);
/// returns the error code when the value is an error reply. `resp` is the protocol the
/// script chose with redis.setresp: under 3 a boolean is a RESP3 boolean (downgraded for
/// RESP2 clients to 1 or 0), under 2 true is 1 and false a null.
///
/// # Safety
/// Lua's stack, on the VM's thread; leaves it as it was.
pub unsafe fn write_reply(
    l: *mut ffi::lua_State,
    idx: c_int,
    out: &mut Reply,
    resp: Proto,
    depth: usize,
) -> Option<String> {
    if depth > 1000 || ffi::lua_checkstack(l, 4) == 0 {
        out.error("ERR reached lua stack limit");
        return Some("ERR".into());
    }
    let idx = if idx < 0 { ffi::lua_gettop(l) + idx + 1 } else { idx };
    match ffi::lua_type(l, idx) {
        ffi::LUA_TSTRING => out.bulk(string_at(l, idx).unwrap_or_default()),
        ffi::LUA_TBOOLEAN if resp == Proto::Resp3 => out.bool(ffi::lua_toboolean(l, idx) != 0),
        ffi::LUA_TBOOLEAN if ffi::lua_toboolean(l, idx) != 0 => out.int(1),
        ffi::LUA_TBOOLEAN => out.null(),
        ffi::LUA_TNUMBER => out.int(c_long_long(ffi::lua_tonumber(l, idx))),
        ffi::LUA_TTABLE => return table_reply(l, idx, out, resp, depth),
        _ => out.null(),
    }
    None
}

/// # Safety
/// A table at the absolute index `t`, four free stack slots; leaves the stack as it was.
unsafe fn table_reply(l: *mut ffi::lua_State, t: c_int, out: &mut Reply, resp: Proto, depth: usize) -> Option<String> {
    let top = ffi::lua_gettop(l);
    let restore = |l| ffi::lua_settop(l, top);
    if push_field(l, t, b"err") == ffi::LUA_TSTRING {
        let text = String::from_utf8_lossy(string_at(l, -1).unwrap_or_default()).into_owned();
        restore(l);
        out.error(&text);
        let text = text.strip_prefix('-').unwrap_or(&text);
        return Some(text.split(' ').next().unwrap_or("ERR").to_string());
    }
    restore(l);
    if push_field(l, t, b"ok") == ffi::LUA_TSTRING {
        out.simple(&one_line(string_at(l, -1).unwrap_or_default()));
        restore(l);
        return None;
    }
    restore(l);
    if push_field(l, t, b"double") == ffi::LUA_TNUMBER {
        out.double(ffi::lua_tonumber(l, -1));
        restore(l);
        return None;
    }
    restore(l);
    if push_field(l, t, b"big_number") == ffi::LUA_TSTRING {
        out.big_number(&one_line(string_at(l, -1).unwrap_or_default()));
        restore(l);
        return None;
    }
    restore(l);
    for (tag, set) in [(&b"map"[..], false), (&b"set"[..], true)] {
        if push_field(l, t, tag) == ffi::LUA_TTABLE {
            let m = ffi::lua_gettop(l);
            let mut n = 0;
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, m) != 0 {
                n += 1;
                ffi::lua_settop(l, -2);
            }
            if set {
                out.set(n);
            } else {
                out.map(n);
            }
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, m) != 0 {
                write_reply(l, -2, out, resp, depth + 1);
                if !set {
                    write_reply(l, -1, out, resp, depth + 1);
                }
                ffi::lua_settop(l, -2);
            }
            restore(l);
            return None;
        }
        restore(l);
    }
    if push_field(l, t, b"verbatim_string") == ffi::LUA_TTABLE {
        let v = ffi::lua_gettop(l);
        push_field(l, v, b"format");
        push_field(l, v, b"string");
        if let (Some(f), Some(s)) = (string_at(l, -2), string_at(l, -1)) {
            out.verbatim(&String::from_utf8_lossy(f), s);
            restore(l);
            return None;
        }
    }
    restore(l);
    let mut n = 0;
    loop {
        ffi::lua_rawgeti_(l, t, n + 1);
        let nil = ffi::lua_type(l, -1) == ffi::LUA_TNIL;
        ffi::lua_settop(l, -2);
        if nil {
            break;
        }
        n += 1;
    }
    restore(l);
    out.array(n as usize);
    for i in 1..=n {
        ffi::lua_rawgeti_(l, t, i);
        write_reply(l, -1, out, resp, depth + 1);
        ffi::lua_settop(l, -2);
    }
    None
}

/// A Lua number as an integer reply, as Redis's `(long long)lua_tonumber(...)` on x86-64:
/// truncated toward zero, and, where C leaves the cast undefined (NaN, out of range), the
/// instruction's "integer indefinite" value, i64::MIN (Rust's `as` would saturate instead:
/// `return 9223372036854775807` is 2^63 as a double, which Redis answers as -2^63).
fn c_long_long(d: f64) -> i64 {
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d) {
        d as i64
    } else {
        i64::MIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_integers_as_a_c_cast_on_x86_64() {
        assert_eq!(c_long_long(3.9), 3);
        assert_eq!(c_long_long(-3.9), -3);
        let two_63 = 2f64.powi(63);
        assert_eq!(c_long_long(-two_63), i64::MIN);
        assert_eq!(
            c_long_long(i64::MAX as f64),
            i64::MIN,
            "i64::MAX as a double is 2^63: out of range"
        );
        assert_eq!(c_long_long(two_63 - 1024.0), i64::MAX - 1023);
        assert_eq!(c_long_long(f64::NAN), i64::MIN);
        assert_eq!(c_long_long(f64::INFINITY), i64::MIN);
        assert_eq!(c_long_long(-1e300), i64::MIN);
    }

    #[test]
    fn error_texts_as_redis() {
        assert_eq!(error_text(b"My err"), b"My err");
        assert_eq!(error_text(b"-My err"), b"My err");
        assert_eq!(error_text(b"x"), b"ERR x");
        assert_eq!(error_text(b"-ERR value is bad\r\n"), b"ERR value is bad");
    }

    /// Converts a reply to Lua and back.
    fn round_trip(reply: &[u8], proto: crate::resp::Proto) -> Vec<u8> {
        let lua = mlua::Lua::new();
        let l = lua.exec_raw_lua(|raw| raw.state());
        let mut out = Reply::new(proto);
        // SAFETY: the state's own thread, the stack restored.
        unsafe {
            let top = ffi::lua_gettop(l);
            assert_eq!(push_reply(l, reply, 0), Some(reply.len()));
            write_reply(l, -1, &mut out, proto, 0);
            ffi::lua_settop(l, top);
        }
        out.take().to_vec()
    }

    #[test]
    fn replies_round_trip() {
        use crate::resp::Proto;
        // false (a nil bulk) converts back to a nil bulk.
        assert_eq!(
            round_trip(b"*3\r\n:1\r\n$1\r\na\r\n$-1\r\n", Proto::Resp2),
            b"*3\r\n:1\r\n$1\r\na\r\n$-1\r\n"
        );
        assert_eq!(round_trip(b"+OK\r\n", Proto::Resp2), b"+OK\r\n");
        assert_eq!(round_trip(b"-ERR bad\r\n", Proto::Resp2), b"-ERR bad\r\n");
        assert_eq!(
            round_trip(b"%1\r\n$1\r\na\r\n,1.5\r\n", Proto::Resp3),
            b"%1\r\n$1\r\na\r\n,1.5\r\n"
        );
        assert_eq!(round_trip(b"~1\r\n$1\r\na\r\n", Proto::Resp3), b"~1\r\n$1\r\na\r\n");
        assert_eq!(round_trip(b"=7\r\ntxt:abc\r\n", Proto::Resp3), b"=7\r\ntxt:abc\r\n");
        assert_eq!(round_trip(b"(12345\r\n", Proto::Resp3), b"(12345\r\n");
        assert_eq!(round_trip(b"#t\r\n", Proto::Resp3), b"#t\r\n");
        assert_eq!(round_trip(b"#f\r\n", Proto::Resp2), b"$-1\r\n");
        assert_eq!(round_trip(b"|1\r\n+a\r\n+b\r\n:5\r\n", Proto::Resp3), b":5\r\n");
    }
}
