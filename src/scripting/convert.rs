//! Conversions between Redis replies and Lua values, as redis.io's "Lua API reference" and
//! Redis's script_lua.c define them, for RESP2 and RESP3 (`redis.setresp(3)`).

use mlua::{Lua, Table, Value};

use crate::resp::Reply;

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

fn line(buf: &[u8], pos: usize) -> mlua::Result<(&[u8], usize)> {
    let rest = buf.get(pos..).ok_or_else(|| mlua::Error::runtime("truncated reply"))?;
    let i = memchr::memchr(b'\r', rest).ok_or_else(|| mlua::Error::runtime("truncated reply"))?;
    Ok((&rest[..i], pos + i + 2))
}

fn int(b: &[u8]) -> i64 {
    std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn tagged(lua: &Lua, key: &str, v: impl mlua::IntoLua) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(key, v)?;
    Ok(Value::Table(t))
}

/// Parses one reply at `pos` into a Lua value; returns it and the position after it.
pub fn reply_to_lua(lua: &Lua, buf: &[u8], pos: usize, resp: crate::resp::Proto) -> mlua::Result<(Value, usize)> {
    let _ = resp;
    let kind = *buf.get(pos).ok_or_else(|| mlua::Error::runtime("empty reply"))?;
    let (head, next) = line(buf, pos + 1)?;
    Ok(match kind {
        b'+' => (tagged(lua, "ok", lua.create_string(head)?)?, next),
        b'-' => (
            tagged(lua, "err", lua.create_string(error_text(&[b"-", head].concat()))?)?,
            next,
        ),
        b':' => (Value::Number(int(head) as f64), next),
        b'$' | b'=' => {
            let n = int(head);
            if n < 0 {
                (Value::Boolean(false), next)
            } else {
                let n = n as usize;
                let data = buf
                    .get(next..next + n)
                    .ok_or_else(|| mlua::Error::runtime("truncated reply"))?;
                if kind == b'=' {
                    let (fmt, text) = if data.len() >= 4 {
                        (&data[..3], &data[4..])
                    } else {
                        (&b"txt"[..], data)
                    };
                    let inner = lua.create_table()?;
                    inner.raw_set("format", lua.create_string(fmt)?)?;
                    inner.raw_set("string", lua.create_string(text)?)?;
                    (tagged(lua, "verbatim_string", inner)?, next + n + 2)
                } else {
                    (Value::String(lua.create_string(data)?), next + n + 2)
                }
            }
        }
        b'*' | b'>' | b'~' => {
            let n = int(head);
            if n < 0 {
                return Ok((Value::Boolean(false), next));
            }
            let t = lua.create_table_with_capacity(n as usize, 0)?;
            let mut p = next;
            for i in 0..n as usize {
                let (v, np) = reply_to_lua(lua, buf, p, resp)?;
                p = np;
                if kind == b'~' {
                    t.raw_set(v, true)?;
                } else {
                    t.raw_set(i + 1, v)?;
                }
            }
            if kind == b'~' {
                (tagged(lua, "set", t)?, p)
            } else {
                (Value::Table(t), p)
            }
        }
        b'%' | b'|' => {
            let n = int(head);
            let t = lua.create_table()?;
            let mut p = next;
            for _ in 0..n.max(0) {
                let (k, np) = reply_to_lua(lua, buf, p, resp)?;
                let (v, np) = reply_to_lua(lua, buf, np, resp)?;
                p = np;
                t.raw_set(k, v)?;
            }
            if kind == b'|' {
                // Attributes are not passed to scripts: the reply that follows is.
                return reply_to_lua(lua, buf, p, resp);
            }
            (tagged(lua, "map", t)?, p)
        }
        b'_' => (Value::Nil, next),
        b'#' => (Value::Boolean(head == b"t"), next),
        b',' => {
            let s = std::str::from_utf8(head).unwrap_or("0");
            let d = match s {
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                _ => s.parse().unwrap_or(f64::NAN),
            };
            (tagged(lua, "double", d)?, next)
        }
        b'(' => (tagged(lua, "big_number", lua.create_string(head)?)?, next),
        _ => return Err(mlua::Error::runtime("unknown reply type")),
    })
}

fn field(t: &Table, k: &str) -> Value {
    t.raw_get::<Value>(k).unwrap_or(Value::Nil)
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// Writes a Lua value as the script's reply (luaReplyToRedisReply); returns the error code
/// when the value is an error reply.
pub fn lua_to_reply(v: &Value, out: &mut Reply, depth: usize) -> Option<String> {
    if depth > 1000 {
        out.error("ERR reached lua stack limit");
        return Some("ERR".into());
    }
    match v {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Boolean(true) => out.int(1),
        Value::Boolean(false) => out.null(),
        Value::Integer(i) => out.int(*i),
        Value::Number(n) => out.int(*n as i64),
        Value::Table(t) => return table_to_reply(t, out, depth),
        _ => out.null(),
    }
    None
}

fn table_to_reply(t: &Table, out: &mut Reply, depth: usize) -> Option<String> {
    if let Value::String(e) = field(t, "err") {
        let text = e.to_string_lossy();
        out.error(&text);
        let text = text.strip_prefix('-').unwrap_or(&text);
        return Some(text.split(' ').next().unwrap_or("ERR").to_string());
    }
    if let Value::String(s) = field(t, "ok") {
        let s = s.to_string_lossy().replace(['\r', '\n'], " ");
        out.simple(&s);
        return None;
    }
    if let Some(d) = number(&field(t, "double")) {
        out.double(d);
        return None;
    }
    if let Value::String(s) = field(t, "big_number") {
        let s = s.to_string_lossy().replace(['\r', '\n'], " ");
        out.big_number(&s);
        return None;
    }
    if let Value::Table(m) = field(t, "map") {
        let pairs: Vec<(Value, Value)> = m.pairs::<Value, Value>().filter_map(Result::ok).collect();
        out.map(pairs.len());
        for (k, v) in &pairs {
            lua_to_reply(k, out, depth + 1);
            lua_to_reply(v, out, depth + 1);
        }
        return None;
    }
    if let Value::Table(s) = field(t, "set") {
        let keys: Vec<Value> = s
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, _)| k)
            .collect();
        out.set(keys.len());
        for k in &keys {
            lua_to_reply(k, out, depth + 1);
        }
        return None;
    }
    if let Value::Table(v) = field(t, "verbatim_string") {
        if let (Value::String(f), Value::String(s)) = (field(&v, "format"), field(&v, "string")) {
            out.verbatim(&f.to_string_lossy(), &s.as_bytes());
            return None;
        }
    }
    let mut items = Vec::new();
    let mut i = 1;
    loop {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(v),
        }
        i += 1;
    }
    out.array(items.len());
    for v in &items {
        lua_to_reply(v, out, depth + 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_as_redis() {
        assert_eq!(error_text(b"My err"), b"My err");
        assert_eq!(error_text(b"-My err"), b"My err");
        assert_eq!(error_text(b"x"), b"ERR x");
        assert_eq!(error_text(b"-ERR value is bad\r\n"), b"ERR value is bad");
    }

    #[test]
    fn replies_round_trip() {
        let lua = Lua::new();
        let (v, _) = reply_to_lua(&lua, b"*3\r\n:1\r\n$1\r\na\r\n$-1\r\n", 0, crate::resp::Proto::Resp2).unwrap();
        let mut out = Reply::new(crate::resp::Proto::Resp2);
        lua_to_reply(&v, &mut out, 0);
        // false (a nil bulk) converts back to a nil bulk.
        assert_eq!(&out.take()[..], b"*3\r\n:1\r\n$1\r\na\r\n$-1\r\n");
        let (v, _) = reply_to_lua(&lua, b"+OK\r\n", 0, crate::resp::Proto::Resp2).unwrap();
        let mut out = Reply::new(crate::resp::Proto::Resp2);
        lua_to_reply(&v, &mut out, 0);
        assert_eq!(&out.take()[..], b"+OK\r\n");
        let (v, _) = reply_to_lua(&lua, b"%1\r\n$1\r\na\r\n,1.5\r\n", 0, crate::resp::Proto::Resp3).unwrap();
        let mut out = Reply::new(crate::resp::Proto::Resp3);
        lua_to_reply(&v, &mut out, 0);
        assert_eq!(&out.take()[..], b"%1\r\n$1\r\na\r\n,1.5\r\n");
    }
}
