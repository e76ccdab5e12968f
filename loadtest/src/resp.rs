//! RESP on the client side: encode commands, and read replies in two ways.
//!
//! - [`skip_reply`] only finds where one reply ends and whether it is an error (the hot path
//!   of `bench` and `latency`, which never need the reply's contents).
//! - [`parse_value`] builds a [`Value`] (the blocking client of `camera` and of set-up steps).
//!
//! Both understand RESP2 and RESP3 (maps, sets, pushes, attributes, doubles, booleans, big
//! numbers, verbatim strings, blob errors) and both return `Ok(None)` on a reply that is not
//! complete yet, so a caller reads more and asks again.

/// Appends `*N\r\n$len\r\narg\r\n...` for one command.
pub fn push_cmd(buf: &mut Vec<u8>, args: &[&[u8]]) {
    push_header(buf, b'*', args.len());
    for a in args {
        push_header(buf, b'$', a.len());
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    }
}

/// Appends `<prefix><n>\r\n` without going through `fmt`.
pub fn push_header(buf: &mut Vec<u8>, prefix: u8, n: usize) {
    buf.push(prefix);
    push_uint(buf, n as u64);
    buf.extend_from_slice(b"\r\n");
}

pub fn push_uint(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// What a complete top-level reply was, as far as a load generator cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any non-error reply (including nulls and aggregates).
    Reply,
    /// `-ERR ...` or a RESP3 blob error `!`.
    Error,
    /// A RESP3 out-of-band push (`>`): not the answer to a request.
    Push,
}

/// Finds the end of the first reply in `buf`.
///
/// `Ok(Some((len, kind)))` when `buf[..len]` is one complete reply, `Ok(None)` when more
/// bytes are needed, `Err` when the bytes are not RESP at all.
pub fn skip_reply(buf: &[u8]) -> Result<Option<(usize, Kind)>, String> {
    let mut pos = 0;
    // Attributes (`|`) decorate the reply that follows them; skip them.
    while buf.get(pos) == Some(&b'|') {
        match skip_at(buf, pos)? {
            Some(end) => pos = end,
            None => return Ok(None),
        }
    }
    let kind = match buf.get(pos) {
        None => return Ok(None),
        Some(b'-') | Some(b'!') => Kind::Error,
        Some(b'>') => Kind::Push,
        Some(_) => Kind::Reply,
    };
    Ok(skip_at(buf, pos)?.map(|end| (end, kind)))
}

/// Index of the `\r` of the first `\r\n` at or after `from`.
#[inline]
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < buf.len() {
        if buf[i] == b'\r' && buf[i + 1] == b'\n' {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn parse_int(line: &[u8]) -> Result<i64, String> {
    let (neg, digits) = match line.first() {
        Some(b'-') => (true, &line[1..]),
        Some(b'+') => (false, &line[1..]),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(format!("bad length/integer {:?}", String::from_utf8_lossy(line)));
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(format!("bad length/integer {:?}", String::from_utf8_lossy(line)));
        }
        n = n.wrapping_mul(10).wrapping_add((d - b'0') as i64);
    }
    Ok(if neg { -n } else { n })
}

/// End (exclusive) of the reply starting at `pos`, or `None` if incomplete.
fn skip_at(buf: &[u8], pos: usize) -> Result<Option<usize>, String> {
    let Some(&tag) = buf.get(pos) else {
        return Ok(None);
    };
    let Some(cr) = find_crlf(buf, pos + 1) else {
        return Ok(None);
    };
    let line = &buf[pos + 1..cr];
    let after = cr + 2;
    match tag {
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Ok(Some(after)),
        b'$' | b'!' | b'=' => {
            let n = parse_int(line)?;
            if n < 0 {
                return Ok(Some(after));
            }
            let end = after + n as usize + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return Err("bulk string not terminated by CRLF".into());
            }
            Ok(Some(end))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = parse_int(line)?;
            if n < 0 {
                return Ok(Some(after));
            }
            let count = if tag == b'%' || tag == b'|' { n * 2 } else { n };
            let mut p = after;
            for _ in 0..count {
                // An attribute may precede any element.
                while buf.get(p) == Some(&b'|') {
                    match skip_at(buf, p)? {
                        Some(e) => p = e,
                        None => return Ok(None),
                    }
                }
                match skip_at(buf, p)? {
                    Some(e) => p = e,
                    None => return Ok(None),
                }
            }
            Ok(Some(p))
        }
        other => Err(format!("unexpected RESP type byte 0x{other:02x} ({:?})", other as char)),
    }
}

/// A decoded reply. RESP3 maps and sets arrive as flat arrays (a map as key, value, key, ...).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Int(i64),
    Simple(String),
    Error(String),
    Bulk(Vec<u8>),
    Array(Vec<Value>),
    Push(Vec<Value>),
    /// Doubles, booleans, big numbers, as their text.
    Other(String),
}

impl Value {
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Simple(s) | Value::Other(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// Short human form, for error messages.
    pub fn describe(&self) -> String {
        let s = format!("{self:?}");
        if s.len() > 200 {
            format!("{}...", &s[..200])
        } else {
            s
        }
    }
}

/// Decodes the first reply in `buf`: `Ok(Some((value, len)))`, `Ok(None)` if incomplete.
pub fn parse_value(buf: &[u8]) -> Result<Option<(Value, usize)>, String> {
    parse_at(buf, 0)
}

fn parse_at(buf: &[u8], mut pos: usize) -> Result<Option<(Value, usize)>, String> {
    while buf.get(pos) == Some(&b'|') {
        match skip_at(buf, pos)? {
            Some(e) => pos = e,
            None => return Ok(None),
        }
    }
    let Some(&tag) = buf.get(pos) else {
        return Ok(None);
    };
    let Some(cr) = find_crlf(buf, pos + 1) else {
        return Ok(None);
    };
    let line = &buf[pos + 1..cr];
    let after = cr + 2;
    let text = || String::from_utf8_lossy(line).into_owned();
    match tag {
        b'+' => Ok(Some((Value::Simple(text()), after))),
        b'-' => Ok(Some((Value::Error(text()), after))),
        b':' => Ok(Some((Value::Int(parse_int(line)?), after))),
        b'_' => Ok(Some((Value::Nil, after))),
        b'#' | b',' | b'(' => Ok(Some((Value::Other(text()), after))),
        b'$' | b'!' | b'=' => {
            let n = parse_int(line)?;
            if n < 0 {
                return Ok(Some((Value::Nil, after)));
            }
            let end = after + n as usize + 2;
            if buf.len() < end {
                return Ok(None);
            }
            let mut data = &buf[after..end - 2];
            if tag == b'=' && data.len() >= 4 {
                data = &data[4..]; // "txt:" format prefix of a verbatim string
            }
            let v = match tag {
                b'!' => Value::Error(String::from_utf8_lossy(data).into_owned()),
                _ => Value::Bulk(data.to_vec()),
            };
            Ok(Some((v, end)))
        }
        b'*' | b'~' | b'>' | b'%' => {
            let n = parse_int(line)?;
            if n < 0 {
                return Ok(Some((Value::Nil, after)));
            }
            let count = if tag == b'%' { n * 2 } else { n } as usize;
            let mut items = Vec::with_capacity(count.min(1024));
            let mut p = after;
            for _ in 0..count {
                match parse_at(buf, p)? {
                    Some((v, e)) => {
                        items.push(v);
                        p = e;
                    }
                    None => return Ok(None),
                }
            }
            let v = if tag == b'>' {
                Value::Push(items)
            } else {
                Value::Array(items)
            };
            Ok(Some((v, p)))
        }
        other => Err(format!("unexpected RESP type byte 0x{other:02x} ({:?})", other as char)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands() {
        let mut b = Vec::new();
        push_cmd(&mut b, &[b"SET", b"k", b""]);
        assert_eq!(b, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn skips_every_type_and_waits_for_more() {
        let cases: &[(&[u8], Kind)] = &[
            (b"+OK\r\n", Kind::Reply),
            (b"-ERR x\r\n", Kind::Error),
            (b":12\r\n", Kind::Reply),
            (b"$-1\r\n", Kind::Reply),
            (b"$3\r\nabc\r\n", Kind::Reply),
            (b"*2\r\n$1\r\na\r\n*-1\r\n", Kind::Reply),
            (b"%1\r\n+k\r\n:1\r\n", Kind::Reply),
            (b"~1\r\n,1.5\r\n", Kind::Reply),
            (b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n", Kind::Push),
            (b"!5\r\nERR x\r\n", Kind::Error),
            (b"|1\r\n+a\r\n+b\r\n:5\r\n", Kind::Reply),
            (b"=7\r\ntxt:abc\r\n", Kind::Reply),
            (b"_\r\n", Kind::Reply),
        ];
        for (bytes, kind) in cases {
            assert_eq!(skip_reply(bytes).unwrap(), Some((bytes.len(), *kind)), "{bytes:?}");
            for cut in 0..bytes.len() {
                assert_eq!(skip_reply(&bytes[..cut]).unwrap(), None, "{bytes:?} cut at {cut}");
                assert!(parse_value(&bytes[..cut]).unwrap().is_none());
            }
            assert_eq!(parse_value(bytes).unwrap().unwrap().1, bytes.len());
        }
        assert!(skip_reply(b"?x\r\n").is_err());
    }

    #[test]
    fn parses_values() {
        let (v, _) = parse_value(b"*3\r\n$1\r\na\r\n:7\r\n$-1\r\n").unwrap().unwrap();
        assert_eq!(
            v,
            Value::Array(vec![Value::Bulk(b"a".to_vec()), Value::Int(7), Value::Nil])
        );
        let (v, _) = parse_value(b"-WRONGTYPE no\r\n").unwrap().unwrap();
        assert_eq!(v, Value::Error("WRONGTYPE no".into()));
    }
}
