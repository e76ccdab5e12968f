//! The libraries Redis embeds besides Lua's own: `bit` (LuaBitOp), `cjson` (lua-cjson),
//! `cmsgpack` (lua-cmsgpack) and `struct` (Roberto Ierusalimschy's struct), written over
//! mlua with the originals' encodings and rules.

use mlua::{LightUserData, Lua, MultiValue, Table, Value, Variadic};

pub fn register(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    g.set("bit", bit(lua)?)?;
    g.set("cjson", cjson(lua)?)?;
    g.set("cmsgpack", cmsgpack(lua)?)?;
    g.set("struct", structlib(lua)?)?;
    Ok(())
}

/// A library function: as `Lua::create_function`, with its errors raised as the C
/// libraries' `luaL_error` raises them, prefixed with where the calling Lua code is
/// (`user_script:1: `; nothing when a C function such as `pcall` called it directly).
fn lib_fn<F, A, R>(lua: &Lua, f: F) -> mlua::Result<mlua::Function>
where
    F: Fn(&Lua, A) -> mlua::Result<R> + 'static,
    A: mlua::FromLuaMulti,
    R: mlua::IntoLuaMulti,
{
    lua.create_function(move |lua, args: A| f(lua, args).map_err(|e| located(lua, e)))
}

/// `e` with luaL_where(L, 1) before its message; in a `bad argument` message (luaL_argerror)
/// the function is named as its caller named it (`'?'` when a C function such as `pcall`
/// called it).
fn located(lua: &Lua, e: mlua::Error) -> mlua::Error {
    let mut msg = super::vm::root_message(&e);
    if let Some(rest) = msg.strip_prefix("bad argument #") {
        if let (Some(open), Some(close)) = (rest.find(" to '"), rest.find("' (")) {
            let name = lua
                .inspect_stack(0, |d| d.names().name.map(|n| n.into_owned()))
                .flatten()
                .unwrap_or_else(|| "?".into());
            msg = format!("bad argument #{} to '{name}{}", &rest[..open], &rest[close..]);
        }
    }
    let at = lua
        .inspect_stack(1, |d| {
            let line = d.current_line().filter(|&l| l > 0)?;
            let src = d.source().short_src?.into_owned();
            Some(format!("{src}:{line}: "))
        })
        .flatten()
        .unwrap_or_default();
    mlua::Error::runtime(format!("{at}{msg}"))
}

fn num(v: &Value, n: usize, f: &str) -> mlua::Result<f64> {
    match v {
        Value::Integer(i) => Ok(*i as f64),
        Value::Number(x) => Ok(*x),
        Value::String(s) => s
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .ok_or_else(|| mlua::Error::runtime(format!("bad argument #{n} to '{f}' (number expected, got string)"))),
        other => Err(mlua::Error::runtime(format!(
            "bad argument #{n} to '{f}' (number expected, got {})",
            other.type_name()
        ))),
    }
}

// ---- bit --------------------------------------------------------------------------------

/// LuaBitOp's argument normalisation: round to nearest (ties to even), wrap to 32 bits.
fn tobit(x: f64) -> i32 {
    let r = x.round_ties_even();
    if !r.is_finite() {
        return 0;
    }
    r.rem_euclid(4294967296.0) as u64 as u32 as i32
}

fn bit(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    fn fold(name: &'static str, op: fn(i32, i32) -> i32) -> impl Fn(&Lua, MultiValue) -> mlua::Result<f64> {
        move |_, args: MultiValue| {
            let mut acc = tobit(num(args.front().unwrap_or(&Value::Nil), 1, name)?);
            for (i, a) in args.iter().enumerate().skip(1) {
                acc = op(acc, tobit(num(a, i + 1, name)?));
            }
            Ok(acc as f64)
        }
    }
    t.set("band", lib_fn(lua, fold("band", |a, b| a & b))?)?;
    t.set("bor", lib_fn(lua, fold("bor", |a, b| a | b))?)?;
    t.set("bxor", lib_fn(lua, fold("bxor", |a, b| a ^ b))?)?;
    t.set(
        "tobit",
        lib_fn(lua, |_, v: Value| Ok(tobit(num(&v, 1, "tobit")?) as f64))?,
    )?;
    t.set(
        "bnot",
        lib_fn(lua, |_, v: Value| Ok(!tobit(num(&v, 1, "bnot")?) as f64))?,
    )?;
    t.set(
        "bswap",
        lib_fn(lua, |_, v: Value| Ok(tobit(num(&v, 1, "bswap")?).swap_bytes() as f64))?,
    )?;
    fn shift(name: &'static str, op: fn(i32, u32) -> i32) -> impl Fn(&Lua, (Value, Value)) -> mlua::Result<f64> {
        move |_, (a, b): (Value, Value)| {
            let x = tobit(num(&a, 1, name)?);
            let n = (tobit(num(&b, 2, name)?) & 31) as u32;
            Ok(op(x, n) as f64)
        }
    }
    t.set("lshift", lib_fn(lua, shift("lshift", |x, n| ((x as u32) << n) as i32))?)?;
    t.set("rshift", lib_fn(lua, shift("rshift", |x, n| ((x as u32) >> n) as i32))?)?;
    t.set("arshift", lib_fn(lua, shift("arshift", |x, n| x >> n))?)?;
    t.set(
        "rol",
        lib_fn(lua, shift("rol", |x, n| (x as u32).rotate_left(n) as i32))?,
    )?;
    t.set(
        "ror",
        lib_fn(lua, shift("ror", |x, n| (x as u32).rotate_right(n) as i32))?,
    )?;
    t.set(
        "tohex",
        lib_fn(lua, |_, (a, b): (Value, Option<Value>)| {
            let x = tobit(num(&a, 1, "tohex")?) as u32;
            let mut n = match b {
                Some(v) if !matches!(v, Value::Nil) => tobit(num(&v, 2, "tohex")?),
                _ => 8,
            };
            let upper = n < 0;
            if upper {
                n = -n;
            }
            let n = n.clamp(1, 8) as usize;
            let s = if upper { format!("{x:08X}") } else { format!("{x:08x}") };
            Ok(s[8 - n..].to_string())
        })?,
    )?;
    Ok(t)
}

// ---- cjson ------------------------------------------------------------------------------

fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// lua-cjson's number format ("%.14g").
fn fmt_g14(x: f64) -> String {
    let mut buf = [0u8; 64];
    // SAFETY: snprintf writes at most buf.len() bytes, NUL included.
    let n = unsafe { libc::snprintf(buf.as_mut_ptr() as *mut libc::c_char, buf.len(), c"%.14g".as_ptr(), x) };
    String::from_utf8_lossy(&buf[..(n.max(0) as usize).min(buf.len() - 1)]).into_owned()
}

fn json_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            c if c < 0x20 || c == 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

/// lua-cjson's array test: positive integer keys only; the largest is the length unless the
/// array is "excessively sparse" (more than 2x holes past 10 items), which is an error.
fn array_len(t: &Table) -> mlua::Result<Option<usize>> {
    let (mut max, mut count) = (0usize, 0usize);
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair?;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(None),
        };
        if n < 1.0 || n.fract() != 0.0 {
            return Ok(None);
        }
        max = max.max(n as usize);
        count += 1;
    }
    if max > 10 && max > count * 2 {
        return Err(mlua::Error::runtime("Cannot serialise table: excessively sparse array"));
    }
    Ok(Some(max))
}

fn json_encode(v: &Value, out: &mut Vec<u8>, depth: usize) -> mlua::Result<()> {
    if depth > 1000 {
        return Err(mlua::Error::runtime("Cannot serialise, excessive nesting (1001)"));
    }
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Number(n) => {
            if !n.is_finite() {
                return Err(mlua::Error::runtime("Cannot serialise number: must not be NaN or Inf"));
            }
            out.extend_from_slice(fmt_g14(*n).as_bytes())
        }
        Value::String(s) => json_string(&s.as_bytes(), out),
        Value::Table(t) => match array_len(t)? {
            Some(n) if n > 0 => {
                out.push(b'[');
                for i in 1..=n {
                    if i > 1 {
                        out.push(b',');
                    }
                    json_encode(&t.raw_get::<Value>(i)?, out, depth + 1)?;
                }
                out.push(b']');
            }
            _ => {
                out.push(b'{');
                let mut first = true;
                for pair in t.clone().pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    match &k {
                        Value::String(s) => json_string(&s.as_bytes(), out),
                        Value::Integer(i) => json_string(i.to_string().as_bytes(), out),
                        Value::Number(n) => json_string(fmt_g14(*n).as_bytes(), out),
                        _ => {
                            return Err(mlua::Error::runtime(
                                "Cannot serialise table: table key must be a number or string",
                            ))
                        }
                    }
                    out.push(b':');
                    json_encode(&v, out, depth + 1)?;
                }
                out.push(b'}');
            }
        },
        other => {
            return Err(mlua::Error::runtime(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            )))
        }
    }
    Ok(())
}

struct JsonParser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

/// The JSON number at the start of `s` (the run of number characters) and its length, or
/// None if that run does not parse.
fn number_at(s: &[u8]) -> Option<(f64, usize)> {
    let len = s
        .iter()
        .take_while(|c| matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
        .count();
    let v = std::str::from_utf8(&s[..len]).ok()?.parse::<f64>().ok()?;
    Some((v, len))
}

impl JsonParser<'_> {
    /// Where the next token starts: `pos` after any whitespace.
    fn token_start(&self) -> usize {
        let skip = self.s[self.pos..]
            .iter()
            .take_while(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
            .count();
        self.pos + skip
    }

    fn ws(&mut self) {
        self.pos = self.token_start();
    }

    /// lua-cjson's parse error: what it expected, and the token it found there (after
    /// whitespace) by its type name, or the tokenizer's own error.
    fn fail(&self, what: &str) -> mlua::Error {
        let at = self.token_start();
        let rest = &self.s[at..];
        let found = match rest.first() {
            None => "T_END",
            Some(b'{') => "T_OBJ_BEGIN",
            Some(b'}') => "T_OBJ_END",
            Some(b'[') => "T_ARR_BEGIN",
            Some(b']') => "T_ARR_END",
            Some(b'"') => "T_STRING",
            Some(b':') => "T_COLON",
            Some(b',') => "T_COMMA",
            Some(b't') if rest.starts_with(b"true") => "T_BOOLEAN",
            Some(b'f') if rest.starts_with(b"false") => "T_BOOLEAN",
            Some(b'n') if rest.starts_with(b"null") => "T_NULL",
            Some(b'-' | b'0'..=b'9') => {
                if number_at(rest).is_some() {
                    "T_NUMBER"
                } else {
                    "invalid number"
                }
            }
            Some(_) => "invalid token",
        };
        mlua::Error::runtime(format!("Expected {what} but found {found} at character {}", at + 1))
    }

    fn value(&mut self, lua: &Lua) -> mlua::Result<Value> {
        self.ws();
        let Some(&c) = self.s.get(self.pos) else {
            return Err(self.fail("value")); // "... found T_END ..."
        };
        match c {
            b'{' => {
                self.depth += 1;
                if self.depth > 1000 {
                    return Err(mlua::Error::runtime(format!(
                        "Found too many nested data structures (1001) at character {}",
                        self.pos + 1
                    )));
                }
                self.pos += 1;
                let t = lua.create_table()?;
                self.ws();
                if self.s.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                loop {
                    self.ws();
                    if self.s.get(self.pos) != Some(&b'"') {
                        return Err(self.fail("object key string"));
                    }
                    let k = self.string(lua)?;
                    self.ws();
                    if self.s.get(self.pos) != Some(&b':') {
                        return Err(self.fail("colon"));
                    }
                    self.pos += 1;
                    let v = self.value(lua)?;
                    t.raw_set(k, v)?;
                    self.ws();
                    match self.s.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            break;
                        }
                        _ => return Err(self.fail("comma or object end")),
                    }
                }
                self.depth -= 1;
                Ok(Value::Table(t))
            }
            b'[' => {
                self.depth += 1;
                if self.depth > 1000 {
                    return Err(mlua::Error::runtime(format!(
                        "Found too many nested data structures (1001) at character {}",
                        self.pos + 1
                    )));
                }
                self.pos += 1;
                let t = lua.create_table()?;
                self.ws();
                if self.s.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                let mut i = 1;
                loop {
                    let v = self.value(lua)?;
                    t.raw_set(i, v)?;
                    i += 1;
                    self.ws();
                    match self.s.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            break;
                        }
                        _ => return Err(self.fail("comma or array end")),
                    }
                }
                self.depth -= 1;
                Ok(Value::Table(t))
            }
            b'"' => Ok(Value::String(self.string(lua)?)),
            b't' if self.s[self.pos..].starts_with(b"true") => {
                self.pos += 4;
                Ok(Value::Boolean(true))
            }
            b'f' if self.s[self.pos..].starts_with(b"false") => {
                self.pos += 5;
                Ok(Value::Boolean(false))
            }
            b'n' if self.s[self.pos..].starts_with(b"null") => {
                self.pos += 4;
                Ok(null())
            }
            b'-' | b'0'..=b'9' => {
                let (v, len) = number_at(&self.s[self.pos..]).ok_or_else(|| self.fail("value"))?;
                self.pos += len;
                Ok(Value::Number(v))
            }
            _ => Err(self.fail("value")),
        }
    }

    fn string(&mut self, lua: &Lua) -> mlua::Result<mlua::String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.pos) else {
                return Err(mlua::Error::runtime(format!(
                    "Expected value but found unexpected end of string at character {}",
                    self.pos + 1
                )));
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self.s.get(self.pos).ok_or_else(|| self.fail("value"))?;
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let hex = |p: &mut Self| -> mlua::Result<u32> {
                                let h = p.s.get(p.pos..p.pos + 4).ok_or_else(|| p.fail("value"))?;
                                let v = std::str::from_utf8(h)
                                    .ok()
                                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                                    .ok_or_else(|| p.fail("value"))?;
                                p.pos += 4;
                                Ok(v)
                            };
                            let mut cp = hex(self)?;
                            if (0xD800..0xDC00).contains(&cp) && self.s[self.pos..].starts_with(b"\\u") {
                                self.pos += 2;
                                let lo = hex(self)?;
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3ff);
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                            let mut b = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        }
                        _ => return Err(self.fail("value")),
                    }
                }
                c => out.push(c),
            }
        }
        lua.create_string(&out)
    }
}

fn cjson(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let encode = lib_fn(lua, |lua, args: MultiValue| {
        if args.len() != 1 {
            return Err(mlua::Error::runtime(
                "bad argument #1 to 'encode' (expected 1 argument)",
            ));
        }
        let mut out = Vec::new();
        json_encode(&args[0], &mut out, 0)?;
        lua.create_string(&out)
    })?;
    t.set("encode", encode.clone())?;
    t.set(
        "decode",
        lib_fn(lua, |lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(mlua::Error::runtime(
                    "bad argument #1 to 'decode' (expected 1 argument)",
                ));
            }
            let s = match lua.coerce_string(args[0].clone())? {
                Some(s) => s.as_bytes().to_vec(),
                None => return Err(mlua::Error::runtime("bad argument #1 to 'decode' (string expected)")),
            };
            let mut p = JsonParser {
                s: &s,
                pos: 0,
                depth: 0,
            };
            let v = p.value(lua)?;
            p.ws();
            if p.pos < s.len() {
                return Err(p.fail("the end"));
            }
            Ok(v)
        })?,
    )?;
    t.set("null", null())?;
    // Configuration setters: accepted, with the defaults kept.
    for name in [
        "encode_keep_buffer",
        "encode_max_depth",
        "decode_max_depth",
        "encode_number_precision",
        "encode_sparse_array",
        "decode_invalid_numbers",
        "encode_invalid_numbers",
    ] {
        t.set(name, lib_fn(lua, |_, _: MultiValue| Ok(true))?)?;
    }
    Ok(t)
}

// ---- cmsgpack ---------------------------------------------------------------------------

fn mp_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2147483648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn mp_len(len: usize, fix: u8, fixmax: usize, b8: Option<u8>, b16: u8, b32: u8, out: &mut Vec<u8>) {
    if len < fixmax {
        out.push(fix | len as u8);
    } else if let (Some(b8), true) = (b8, len <= 0xff) {
        out.extend_from_slice(&[b8, len as u8]);
    } else if len <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn mp_encode(v: &Value, out: &mut Vec<u8>, depth: usize) -> mlua::Result<()> {
    match v {
        Value::String(s) => {
            let b = s.as_bytes();
            mp_len(b.len(), 0xa0, 32, Some(0xd9), 0xda, 0xdb, out);
            out.extend_from_slice(&b);
        }
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => mp_int(*i, out),
        Value::Number(n) => {
            if n.fract() == 0.0 && *n >= -9.2e18 && *n <= 9.2e18 {
                mp_int(*n as i64, out);
            } else if (*n as f32) as f64 == *n {
                out.push(0xca);
                out.extend_from_slice(&(*n as f32).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Value::Table(t) if depth < 16 => {
            let mut count = 0usize;
            let mut max = 0usize;
            let mut is_array = true;
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, _) = pair?;
                count += 1;
                match k {
                    Value::Integer(i) if i >= 1 => max = max.max(i as usize),
                    Value::Number(n) if n >= 1.0 && n.fract() == 0.0 => max = max.max(n as usize),
                    _ => is_array = false,
                }
            }
            if is_array && max == count {
                mp_len(count, 0x90, 16, None, 0xdc, 0xdd, out);
                for i in 1..=count {
                    mp_encode(&t.raw_get::<Value>(i)?, out, depth + 1)?;
                }
            } else {
                mp_len(count, 0x80, 16, None, 0xde, 0xdf, out);
                for pair in t.clone().pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    mp_encode(&k, out, depth + 1)?;
                    mp_encode(&v, out, depth + 1)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

fn mp_decode(lua: &Lua, s: &[u8], pos: &mut usize) -> mlua::Result<Value> {
    let bad = || mlua::Error::runtime("Missing bytes in input.");
    let take = |pos: &mut usize, n: usize| -> mlua::Result<&[u8]> {
        let b = s.get(*pos..*pos + n).ok_or_else(bad)?;
        *pos += n;
        Ok(b)
    };
    let c = take(pos, 1)?[0];
    let be = |b: &[u8]| b.iter().fold(0u64, |a, &x| (a << 8) | x as u64);
    Ok(match c {
        0x00..=0x7f => Value::Number(c as f64),
        0xe0..=0xff => Value::Number(c as i8 as f64),
        0xc0 => Value::Nil,
        0xc2 => Value::Boolean(false),
        0xc3 => Value::Boolean(true),
        0xcc => Value::Number(be(take(pos, 1)?) as f64),
        0xcd => Value::Number(be(take(pos, 2)?) as f64),
        0xce => Value::Number(be(take(pos, 4)?) as f64),
        0xcf => Value::Number(be(take(pos, 8)?) as f64),
        0xd0 => Value::Number(be(take(pos, 1)?) as u8 as i8 as f64),
        0xd1 => Value::Number(be(take(pos, 2)?) as u16 as i16 as f64),
        0xd2 => Value::Number(be(take(pos, 4)?) as u32 as i32 as f64),
        0xd3 => Value::Number(be(take(pos, 8)?) as i64 as f64),
        0xca => Value::Number(f32::from_bits(be(take(pos, 4)?) as u32) as f64),
        0xcb => Value::Number(f64::from_bits(be(take(pos, 8)?))),
        0xa0..=0xbf | 0xd9 | 0xda | 0xdb | 0xc4 | 0xc5 | 0xc6 => {
            let n = match c {
                0xa0..=0xbf => (c & 0x1f) as usize,
                0xd9 | 0xc4 => be(take(pos, 1)?) as usize,
                0xda | 0xc5 => be(take(pos, 2)?) as usize,
                _ => be(take(pos, 4)?) as usize,
            };
            Value::String(lua.create_string(take(pos, n)?)?)
        }
        0x90..=0x9f | 0xdc | 0xdd => {
            let n = match c {
                0x90..=0x9f => (c & 0x0f) as usize,
                0xdc => be(take(pos, 2)?) as usize,
                _ => be(take(pos, 4)?) as usize,
            };
            let t = lua.create_table()?;
            for i in 1..=n {
                let v = mp_decode(lua, s, pos)?;
                t.raw_set(i, v)?;
            }
            Value::Table(t)
        }
        0x80..=0x8f | 0xde | 0xdf => {
            let n = match c {
                0x80..=0x8f => (c & 0x0f) as usize,
                0xde => be(take(pos, 2)?) as usize,
                _ => be(take(pos, 4)?) as usize,
            };
            let t = lua.create_table()?;
            for _ in 0..n {
                let k = mp_decode(lua, s, pos)?;
                let v = mp_decode(lua, s, pos)?;
                if !matches!(k, Value::Nil) {
                    t.raw_set(k, v)?;
                }
            }
            Value::Table(t)
        }
        _ => return Err(mlua::Error::runtime("Bad data format in input.")),
    })
}

fn cmsgpack(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        lib_fn(lua, |lua, args: MultiValue| {
            if args.is_empty() {
                return Err(mlua::Error::runtime(
                    "bad argument #0 to 'pack' (MessagePack pack needs input.)",
                ));
            }
            let mut out = Vec::new();
            for a in args.iter() {
                mp_encode(a, &mut out, 0)?;
            }
            lua.create_string(&out)
        })?,
    )?;
    fn unpack(lua: &Lua, s: mlua::String, limit: usize, offset: usize, with_offset: bool) -> mlua::Result<MultiValue> {
        let s = s.as_bytes().to_vec();
        let mut pos = offset;
        let mut vals = Vec::new();
        while pos < s.len() && (limit == 0 || vals.len() < limit) {
            vals.push(mp_decode(lua, &s, &mut pos)?);
        }
        if with_offset {
            let next = if pos >= s.len() { -1.0 } else { pos as f64 };
            vals.insert(0, Value::Number(next));
        }
        Ok(MultiValue::from_iter(vals))
    }
    t.set(
        "unpack",
        lib_fn(lua, |lua, s: mlua::String| unpack(lua, s, 0, 0, false))?,
    )?;
    t.set(
        "unpack_one",
        lib_fn(lua, |lua, (s, off): (mlua::String, Option<usize>)| {
            unpack(lua, s, 1, off.unwrap_or(0), true)
        })?,
    )?;
    t.set(
        "unpack_limit",
        lib_fn(lua, |lua, (s, n, off): (mlua::String, usize, Option<usize>)| {
            unpack(lua, s, n, off.unwrap_or(0), true)
        })?,
    )?;
    Ok(t)
}

// ---- struct -----------------------------------------------------------------------------

struct Fmt<'a> {
    f: &'a [u8],
    pos: usize,
    little: bool,
    maxalign: usize,
}

enum Item {
    Int { size: usize, signed: bool },
    Float,
    Double,
    Chars(Option<usize>),
    Zstr,
    Pad,
    Align,
}

impl Fmt<'_> {
    fn new(f: &[u8]) -> Fmt<'_> {
        Fmt {
            f,
            pos: 0,
            little: cfg!(target_endian = "little"),
            maxalign: 1,
        }
    }

    fn num(&mut self) -> Option<usize> {
        let start = self.pos;
        while self.pos < self.f.len() && self.f[self.pos].is_ascii_digit() {
            self.pos += 1;
        }
        std::str::from_utf8(&self.f[start..self.pos]).ok()?.parse().ok()
    }

    /// The next item, or None at the end.
    fn next(&mut self) -> mlua::Result<Option<(Item, usize)>> {
        loop {
            let Some(&c) = self.f.get(self.pos) else {
                return Ok(None);
            };
            self.pos += 1;
            let item = match c {
                b' ' => continue,
                b'<' => {
                    self.little = true;
                    continue;
                }
                b'>' => {
                    self.little = false;
                    continue;
                }
                b'=' => {
                    self.little = cfg!(target_endian = "little");
                    continue;
                }
                b'!' => {
                    self.maxalign = self.num().unwrap_or(8);
                    continue;
                }
                b'b' => Item::Int { size: 1, signed: true },
                b'B' => Item::Int { size: 1, signed: false },
                b'h' => Item::Int { size: 2, signed: true },
                b'H' => Item::Int { size: 2, signed: false },
                b'l' => Item::Int { size: 8, signed: true },
                b'L' | b'T' => Item::Int { size: 8, signed: false },
                b'i' | b'I' => {
                    let size = self.num().unwrap_or(4);
                    if size == 0 || size > 8 {
                        return Err(mlua::Error::runtime(format!(
                            "integral size {size} is larger than limit of 8"
                        )));
                    }
                    Item::Int {
                        size,
                        signed: c == b'i',
                    }
                }
                b'f' => Item::Float,
                b'd' => Item::Double,
                b'c' => Item::Chars(self.num()),
                b's' => Item::Zstr,
                b'x' => Item::Pad,
                b'X' => {
                    let Some(n) = self.f.get(self.pos).copied() else {
                        return Err(mlua::Error::runtime("options with invalid alignment"));
                    };
                    let mut sub = Fmt::new(std::slice::from_ref(&n));
                    self.pos += 1;
                    let a = match sub.next()? {
                        Some((_, size)) => size,
                        None => 1,
                    };
                    {
                        let _ = a;
                        Item::Align
                    }
                }
                other => {
                    // luaL_argerror(L, 1, ...): the format is argument 1 (`located` puts the
                    // caller's name for the function in place of this one).
                    return Err(mlua::Error::runtime(format!(
                        "bad argument #1 to 'pack' (invalid format option '{}')",
                        other as char
                    )));
                }
            };
            let size = match &item {
                Item::Int { size, .. } => *size,
                Item::Float => 4,
                Item::Double => 8,
                _ => 1,
            };
            return Ok(Some((item, size)));
        }
    }

    fn pad(&self, size: usize, total: usize) -> usize {
        let align = size.min(self.maxalign);
        if align <= 1 || !align.is_power_of_two() {
            return 0;
        }
        (align - (total & (align - 1))) & (align - 1)
    }
}

fn put_int(v: u64, size: usize, little: bool, out: &mut Vec<u8>) {
    let bytes = v.to_le_bytes();
    let b = &bytes[..size];
    if little {
        out.extend_from_slice(b);
    } else {
        out.extend(b.iter().rev());
    }
}

fn structlib(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        lib_fn(lua, |lua, args: Variadic<Value>| {
            let Some(Value::String(fmt)) = args.first() else {
                return Err(mlua::Error::runtime("bad argument #1 to 'pack' (string expected)"));
            };
            let fmt = fmt.as_bytes().to_vec();
            let mut f = Fmt::new(&fmt);
            let mut out = Vec::new();
            let mut arg = 1;
            while let Some((item, size)) = f.next()? {
                let pad = f.pad(size, out.len());
                out.resize(out.len() + pad, 0);
                let v = args.get(arg).cloned().unwrap_or(Value::Nil);
                match item {
                    Item::Int { size, .. } => {
                        let n = num(&v, arg + 1, "pack")?;
                        let i = if n < 0.0 { n as i64 as u64 } else { n as u64 };
                        put_int(i, size, f.little, &mut out);
                        arg += 1;
                    }
                    Item::Float => {
                        let n = num(&v, arg + 1, "pack")? as f32;
                        put_int(n.to_bits() as u64, 4, f.little, &mut out);
                        arg += 1;
                    }
                    Item::Double => {
                        let n = num(&v, arg + 1, "pack")?;
                        put_int(n.to_bits(), 8, f.little, &mut out);
                        arg += 1;
                    }
                    Item::Chars(n) => {
                        let s = lua.coerce_string(v)?.ok_or_else(|| {
                            mlua::Error::runtime(format!("bad argument #{} to 'pack' (string expected)", arg + 1))
                        })?;
                        let b = s.as_bytes();
                        let n = n.unwrap_or(1);
                        let n = if n == 0 { b.len() } else { n };
                        if b.len() < n {
                            return Err(mlua::Error::runtime(format!(
                                "bad argument #{} to 'pack' (string too short)",
                                arg + 1
                            )));
                        }
                        out.extend_from_slice(&b[..n]);
                        arg += 1;
                    }
                    Item::Zstr => {
                        let s = lua.coerce_string(v)?.ok_or_else(|| {
                            mlua::Error::runtime(format!("bad argument #{} to 'pack' (string expected)", arg + 1))
                        })?;
                        let b = s.as_bytes();
                        if b.contains(&0) {
                            return Err(mlua::Error::runtime(format!(
                                "bad argument #{} to 'pack' (string contains zeros)",
                                arg + 1
                            )));
                        }
                        out.extend_from_slice(&b);
                        out.push(0);
                        arg += 1;
                    }
                    Item::Pad => out.push(0),
                    Item::Align => {}
                }
            }
            lua.create_string(&out)
        })?,
    )?;
    t.set(
        "unpack",
        lib_fn(
            lua,
            |lua, (fmt, data, init): (mlua::String, mlua::String, Option<f64>)| {
                let fmt = fmt.as_bytes().to_vec();
                let data = data.as_bytes().to_vec();
                let mut f = Fmt::new(&fmt);
                let mut pos = init.map(|i| (i as usize).saturating_sub(1)).unwrap_or(0);
                let mut vals: Vec<Value> = Vec::new();
                let short = || mlua::Error::runtime("bad argument #2 to 'unpack' (data string too short)");
                while let Some((item, size)) = f.next()? {
                    pos += f.pad(size, pos);
                    match item {
                        Item::Int { size, signed } => {
                            let b = data.get(pos..pos + size).ok_or_else(short)?;
                            let mut v: u64 = 0;
                            for i in 0..size {
                                let byte = if f.little { b[size - 1 - i] } else { b[i] };
                                v = (v << 8) | byte as u64;
                            }
                            let n = if signed && size < 8 && v & (1 << (size * 8 - 1)) != 0 {
                                (v | (!0u64 << (size * 8))) as i64 as f64
                            } else if signed {
                                v as i64 as f64
                            } else {
                                v as f64
                            };
                            vals.push(Value::Number(n));
                            pos += size;
                        }
                        Item::Float | Item::Double => {
                            let b = data.get(pos..pos + size).ok_or_else(short)?;
                            let mut v: u64 = 0;
                            for i in 0..size {
                                let byte = if f.little { b[size - 1 - i] } else { b[i] };
                                v = (v << 8) | byte as u64;
                            }
                            let n = if size == 4 {
                                f32::from_bits(v as u32) as f64
                            } else {
                                f64::from_bits(v)
                            };
                            vals.push(Value::Number(n));
                            pos += size;
                        }
                        Item::Chars(n) => {
                            let n = match n {
                                Some(0) => {
                                    // c0 takes its length from the previous number.
                                    match vals.pop() {
                                        Some(Value::Number(x)) => x as usize,
                                        _ => return Err(mlua::Error::runtime("format 'c0' needs a previous size")),
                                    }
                                }
                                Some(n) => n,
                                None => 1,
                            };
                            let b = data.get(pos..pos + n).ok_or_else(short)?;
                            vals.push(Value::String(lua.create_string(b)?));
                            pos += n;
                        }
                        Item::Zstr => {
                            let rest = data.get(pos..).ok_or_else(short)?;
                            let end = memchr::memchr(0, rest)
                                .ok_or_else(|| mlua::Error::runtime("unfinished string in data"))?;
                            vals.push(Value::String(lua.create_string(&rest[..end])?));
                            pos += end + 1;
                        }
                        Item::Pad => pos += 1,
                        Item::Align => {}
                    }
                }
                vals.push(Value::Number((pos + 1) as f64));
                Ok(MultiValue::from_iter(vals))
            },
        )?,
    )?;
    t.set(
        "size",
        lib_fn(lua, |_, fmt: mlua::String| {
            let fmt = fmt.as_bytes().to_vec();
            let mut f = Fmt::new(&fmt);
            let mut total = 0usize;
            while let Some((item, size)) = f.next()? {
                total += f.pad(size, total);
                match item {
                    Item::Zstr => return Err(mlua::Error::runtime("options 'c0' - 's' have undefined sizes")),
                    Item::Chars(n) => {
                        let n = n.unwrap_or(1);
                        if n == 0 {
                            return Err(mlua::Error::runtime("options 'c0' - 's' have undefined sizes"));
                        }
                        total += n;
                    }
                    Item::Align => {}
                    _ => total += size,
                }
            }
            Ok(total as f64)
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(code: &str) -> String {
        let lua = Lua::new();
        register(&lua).unwrap();
        lua.load(code).eval::<String>().unwrap()
    }

    #[test]
    fn bit_ops_as_luabitop() {
        assert_eq!(eval("return tostring(bit.band(7, 3))"), "3");
        assert_eq!(eval("return tostring(bit.tobit(0xffffffff))"), "-1");
        assert_eq!(eval("return bit.tohex(255, 4)"), "00ff");
        assert_eq!(eval("return bit.tohex(-1, -8)"), "FFFFFFFF");
        assert_eq!(eval("return tostring(bit.lshift(1, 31))"), "-2147483648");
        assert_eq!(eval("return tostring(bit.rshift(-1, 28))"), "15");
    }

    #[test]
    fn cjson_round_trip() {
        assert_eq!(eval("return cjson.encode({1,2,{a='x/y'}})"), r#"[1,2,{"a":"x\/y"}]"#);
        assert_eq!(
            eval("return cjson.encode(cjson.decode('{\"k\":[1,2.5,true,null]}'))"),
            r#"{"k":[1,2.5,true,null]}"#
        );
        assert_eq!(eval("return cjson.encode({})"), "{}");
    }

    #[test]
    fn msgpack_and_struct() {
        assert_eq!(
            eval("local a,b,c = cmsgpack.unpack(cmsgpack.pack(1,'x',{1,2})) return a..b..c[2]"),
            "1x2"
        );
        assert_eq!(eval("return tostring(#cmsgpack.pack({1,2,3}))"), "4");
        assert_eq!(
            eval("return tostring(struct.unpack('>I2', struct.pack('>I2', 258)))"),
            "258"
        );
        assert_eq!(eval("return tostring(struct.size('>iHd'))"), "14");
        assert_eq!(
            eval("local s, n = struct.unpack('s', struct.pack('s', 'ab')) return s .. n"),
            "ab4"
        );
    }
}
