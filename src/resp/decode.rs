//! Request decoding: a stateless port of Redis 7.0's `processMultibulkBuffer` and
//! `processInlineBuffer` (src/networking.c) plus `sdssplitargs` (src/sds.c) and
//! `string2ll` (src/util.c).
//!
//! Behaviour that is observable on the wire and that this module reproduces (all checked against
//! redis-server 7.0.15):
//!
//! * A request starting with `*` is multibulk, anything else is inline.
//! * `*N` with `N <= 0` (e.g. `*0`, `*-1`, `*-5`) is an empty request that is silently skipped.
//! * Header numbers are parsed with `string2ll`: no `+`, no leading zeros, no spaces, at most
//!   20 characters; `*01`, `*-0`, `$+4`, `$04` are all invalid.
//! * Header lines are located with `strchr(.., '\r')`: a NUL byte before the `\r` means "no line
//!   yet" (Redis then waits until more than 64 KiB are buffered and reports "too big ... count
//!   string"). The byte after `\r` is never checked to be `\n`, and the two bytes after a bulk
//!   payload are skipped without being checked either.
//! * Inline lines end at the first `\n` (`strchr`, so a NUL byte before it also means "no line
//!   yet"); a `\r` right before the `\n` is dropped; arguments are split by `sdssplitargs`.
//! * The 64 KiB "too big" checks fire only while no line terminator is buffered, exactly like
//!   Redis: a longer inline line whose `\n` is already in the buffer is accepted. (Redis reads
//!   inline requests 16 KiB at a time, so in practice it accepts lines up to 64 KiB + one read.)
//! * Protocol error messages are byte-for-byte Redis's (see [`ProtocolError`]).
//!
//! Unlike Redis, which keeps per-client parsing state, this parser is stateless: each call
//! re-scans the (short) header lines of a partially received multibulk request. It never looks
//! at bulk payload bytes, and it allocates nothing until the whole request is buffered. The
//! `need` hint of [`Parsed::Incomplete`] lets callers avoid re-parsing before a big bulk has
//! fully arrived.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memchr2;

/// `PROTO_INLINE_MAX_SIZE`: maximum size of an inline request line, or of a `*`/`$` header line,
/// while its terminator has not been received.
pub const PROTO_INLINE_MAX_SIZE: usize = 64 * 1024;
/// Default `proto-max-bulk-len`.
pub const PROTO_MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Redis 7.0 accepts multibulk counts up to `INT_MAX` (`ll > INT_MAX` is "invalid multibulk
/// length"); the old 1024*1024 limit was removed by the CVE-2021-32675 fix (6.2.6 / 7.0).
pub const PROTO_MAX_MULTIBULK_LEN: usize = i32::MAX as usize;
/// Redis 7.0: a client that still has to AUTH may not send a multibulk count above 10
/// ("unauthenticated multibulk length").
pub const UNAUTH_MAX_MULTIBULK_LEN: usize = 10;
/// Redis 7.0: a client that still has to AUTH may not send a bulk longer than 16384 bytes
/// ("unauthenticated bulk length").
pub const UNAUTH_MAX_BULK_LEN: usize = 16384;

/// Minimum size of one bulk argument on the wire: `$0\r\n` + 2 trailing bytes.
const MIN_BULK_WIRE: usize = 6;

/// Parser limits (Redis configuration values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `proto-max-bulk-len` (default 512 MiB). A bigger `$` length is "invalid bulk length".
    pub max_bulk_len: usize,
    /// Maximum multibulk count; Redis 7.0 uses `INT_MAX`. Bigger is "invalid multibulk length".
    pub max_multibulk_len: usize,
    /// `PROTO_INLINE_MAX_SIZE` (64 KiB).
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: PROTO_MAX_BULK_LEN,
            max_multibulk_len: PROTO_MAX_MULTIBULK_LEN,
            max_inline_len: PROTO_INLINE_MAX_SIZE,
        }
    }
}

/// A protocol error: the connection answers `-ERR Protocol error: {msg}\r\n` and closes.
///
/// The message is exactly Redis's. The only message carrying client bytes is
/// `expected '$', got 'X'`: as Redis's `addReplyErrorFormat` does, a `\r` or `\n` there is shown as
/// a space; a byte >= 0x80 is stored as the char U+0080..U+00FF — use [`ProtocolError::reply_bytes`]
/// to get the exact bytes Redis sends (the raw byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(msg: &str) -> Self {
        ProtocolError(msg.to_owned())
    }

    /// The full error reply as Redis sends it: `-ERR Protocol error: {msg}\r\n`, with chars
    /// U+0000..U+00FF written as single bytes.
    pub fn reply_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() + 24);
        out.extend_from_slice(b"-ERR Protocol error: ");
        for ch in self.0.chars() {
            let c = ch as u32;
            if c <= 0xff {
                out.push(c as u8);
            } else {
                let mut tmp = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// Result of [`parse_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// One complete request; its bytes were consumed from the buffer. args may be empty
    /// (empty inline line, "*0\r\n", "*-1\r\n"): the caller skips it.
    Request(Vec<Bytes>),
    /// Not complete yet; nothing was consumed. `need` is a lower bound on the total buffered bytes
    /// needed before it can complete (0 when unknown), so the caller can reserve capacity once for
    /// big bulks.
    ///
    /// Inside a bulk payload no protocol error can be detected before
    /// `need` bytes are buffered. When the multibulk request has more arguments after the current
    /// one, `need` also counts 6 bytes (`$0\r\n\r\n`) for each of them: waiting for that much before
    /// parsing again is then still correct, only a malformed later header would be reported a bit
    /// later than Redis does.
    Incomplete { need: usize },
}

/// Parses one request from the front of `buf`: multibulk (`*N\r\n$len\r\n...`) or inline
/// (space-separated, with Redis's quoting rules of sdssplitargs: "..." with \n \r \t \b \a \xHH
/// escapes, '...' with \' ; LF-only line endings accepted as Redis does).
///
/// Zero-copy: the returned Bytes are slices of the buffer (split_to + freeze), never copied
/// (except inline arguments that contain quotes or escapes, whose bytes are not contiguous in
/// the buffer).
/// It checks the whole frame is present before allocating anything (a partial frame never
/// allocates), and only scans header lines on a partial frame (never a bulk payload).
#[inline]
pub fn parse_request(buf: &mut BytesMut, limits: &Limits) -> Result<Parsed, ProtocolError> {
    parse_request_with_auth(buf, limits, false)
}

/// Like [`parse_request`], with Redis 7.0's extra limits for clients that still have to
/// authenticate (`authRequired(c)`): a multibulk count above 10 is
/// "unauthenticated multibulk length" and a bulk length above 16384 is
/// "unauthenticated bulk length".
#[inline]
pub fn parse_request_with_auth(
    buf: &mut BytesMut,
    limits: &Limits,
    auth_required: bool,
) -> Result<Parsed, ProtocolError> {
    match buf.first() {
        None => Ok(Parsed::Incomplete { need: 0 }),
        Some(b'*') => parse_multibulk(buf, limits, auth_required),
        Some(_) => parse_inline(buf, limits),
    }
}

/// `strchr(buf + from, byte)`: the index of the first `byte` at or after `from`, or `None` if a
/// NUL byte or the end of the buffer comes first.
#[inline(always)]
fn find_line_end(b: &[u8], from: usize, byte: u8) -> Option<usize> {
    match memchr2(byte, 0, &b[from..]) {
        Some(i) if b[from + i] == byte => Some(from + i),
        _ => None,
    }
}

#[inline(always)]
fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Redis's `string2ll` (src/util.c): strict base-10 `long long` parsing. Rejects empty strings,
/// strings of 21 or more bytes, a leading `+`, leading zeros (except "0" itself), "-0",
/// spaces and overflow.
#[inline]
pub fn string2ll(s: &[u8]) -> Option<i64> {
    let slen = s.len();
    if slen == 0 || slen >= 21 {
        return None;
    }
    if slen == 1 && s[0] == b'0' {
        return Some(0);
    }
    let (negative, digits) = if s[0] == b'-' {
        if slen == 1 {
            return None;
        }
        (true, &s[1..])
    } else {
        (false, s)
    };
    let first = digits[0];
    if !(b'1'..=b'9').contains(&first) {
        return None;
    }
    let mut v: u64 = (first - b'0') as u64;
    for &c in &digits[1..] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if negative {
        if v > (i64::MAX as u64) + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        if v > i64::MAX as u64 {
            return None;
        }
        Some(v as i64)
    }
}

fn parse_multibulk(buf: &mut BytesMut, limits: &Limits, auth_required: bool) -> Result<Parsed, ProtocolError> {
    let b: &[u8] = buf;
    let len = b.len();

    // Multibulk count line.
    let nl = match find_line_end(b, 0, b'\r') {
        Some(i) => i,
        None => {
            if len > limits.max_inline_len {
                return Err(ProtocolError::new("too big mbulk count string"));
            }
            return Ok(Parsed::Incomplete { need: 0 });
        }
    };
    // "Buffer should also contain \n" (the byte after \r is not checked).
    if nl + 2 > len {
        return Ok(Parsed::Incomplete { need: nl + 2 });
    }
    let count = match string2ll(&b[1..nl]) {
        Some(n) if n <= to_i64(limits.max_multibulk_len) => n,
        _ => return Err(ProtocolError::new("invalid multibulk length")),
    };
    if auth_required && count > UNAUTH_MAX_MULTIBULK_LEN as i64 {
        return Err(ProtocolError::new("unauthenticated multibulk length"));
    }
    let first_arg = nl + 2;
    if count <= 0 {
        buf.advance(first_arg);
        return Ok(Parsed::Request(Vec::new()));
    }
    let count = count as usize;
    let max_bulk = to_i64(limits.max_bulk_len);

    // Pass 1: validate every header and make sure the whole frame is buffered. No allocation.
    let mut pos = first_arg;
    for i in 0..count {
        let nl = match find_line_end(b, pos, b'\r') {
            Some(nl) => nl,
            None => {
                if len - pos > limits.max_inline_len {
                    return Err(ProtocolError::new("too big bulk count string"));
                }
                return Ok(incomplete_before(pos, count - i, len));
            }
        };
        if nl + 2 > len {
            return Ok(incomplete_before(pos, count - i, len));
        }
        let t = b[pos];
        if t != b'$' {
            return Err(expected_dollar(t));
        }
        let blen = match string2ll(&b[pos + 1..nl]) {
            Some(n) if n >= 0 && n <= max_bulk => n as usize,
            _ => return Err(ProtocolError::new("invalid bulk length")),
        };
        if auth_required && blen > UNAUTH_MAX_BULK_LEN {
            return Err(ProtocolError::new("unauthenticated bulk length"));
        }
        let end = (nl + 2).saturating_add(blen).saturating_add(2);
        if end > len {
            let rest = (count - i - 1).saturating_mul(MIN_BULK_WIRE);
            return Ok(Parsed::Incomplete {
                need: end.saturating_add(rest),
            });
        }
        pos = end;
    }

    // Pass 2: the frame is complete and valid; slice it.
    let frame = buf.split_to(pos).freeze();
    let mut args = Vec::with_capacity(count);
    let fb: &[u8] = &frame;
    let mut p = first_arg;
    for _ in 0..count {
        // Header already validated: '$', digits (no sign, no leading zeros), '\r', one byte.
        let mut i = p + 1;
        let mut n: usize = 0;
        loop {
            let c = fb[i];
            if c == b'\r' {
                break;
            }
            n = n * 10 + (c - b'0') as usize;
            i += 1;
        }
        let start = i + 2;
        args.push(frame.slice(start..start + n));
        p = start + n + 2;
    }
    debug_assert_eq!(p, frame.len());
    Ok(Parsed::Request(args))
}

#[cold]
fn expected_dollar(t: u8) -> ProtocolError {
    // addReplyErrorFormat replaces \r and \n with spaces.
    let c = if t == b'\r' || t == b'\n' { ' ' } else { t as char };
    ProtocolError(format!("expected '$', got '{}'", c))
}

/// Incomplete while waiting for the header of the bulk at `pos`, with `remaining` bulks
/// (including this one) still to come.
#[inline]
fn incomplete_before(pos: usize, remaining: usize, len: usize) -> Parsed {
    let need = pos.saturating_add(remaining.saturating_mul(MIN_BULK_WIRE));
    Parsed::Incomplete {
        need: need.max(len + 1),
    }
}

// ---------------------------------------------------------------------------------------------
// Inline requests
// ---------------------------------------------------------------------------------------------

/// An inline argument: either a contiguous range of the line, or bytes built from escapes.
enum Tok {
    Range(usize, usize),
    Owned(Vec<u8>),
}

struct TokBuilder {
    start: usize,
    end: usize,
    owned: Option<Vec<u8>>,
}

impl TokBuilder {
    #[inline]
    fn new() -> Self {
        TokBuilder {
            start: 0,
            end: 0,
            owned: None,
        }
    }

    /// Appends `byte`; `at` is its position in the line when the byte is copied verbatim from
    /// there (so the token may stay a zero-copy range), None when it comes from an escape.
    #[inline]
    fn push(&mut self, line: &[u8], at: Option<usize>, byte: u8) {
        if let Some(v) = self.owned.as_mut() {
            v.push(byte);
            return;
        }
        match at {
            Some(p) if self.start == self.end => {
                self.start = p;
                self.end = p + 1;
            }
            Some(p) if p == self.end => self.end += 1,
            _ => {
                let mut v = Vec::with_capacity(self.end - self.start + 16);
                v.extend_from_slice(&line[self.start..self.end]);
                v.push(byte);
                self.owned = Some(v);
            }
        }
    }

    #[inline]
    fn finish(self) -> Tok {
        match self.owned {
            Some(v) => Tok::Owned(v),
            None => Tok::Range(self.start, self.end),
        }
    }
}

/// C `isspace` in the C locale.
#[inline(always)]
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

#[inline(always)]
fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Port of `sdssplitargs`. `line` contains no NUL byte; reading past its end yields 0 like the
/// C string terminator. Returns false on unbalanced quotes.
fn split_args(line: &[u8], out: &mut Vec<Tok>) -> bool {
    let at = |i: usize| -> u8 { line.get(i).copied().unwrap_or(0) };
    let mut p = 0usize;
    loop {
        while at(p) != 0 && is_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return true;
        }
        let mut inq = false;
        let mut insq = false;
        let mut done = false;
        let mut tok = TokBuilder::new();
        while !done {
            let c = at(p);
            if inq {
                if c == b'\\' && at(p + 1) == b'x' {
                    if let (Some(h), Some(l)) = (hex_val(at(p + 2)), hex_val(at(p + 3))) {
                        tok.push(line, None, h * 16 + l);
                        p += 3;
                        if at(p) != 0 {
                            p += 1;
                        }
                        continue;
                    }
                }
                if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    let e = match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    };
                    tok.push(line, None, e);
                } else if c == b'"' {
                    // The closing quote must be followed by a space or nothing at all.
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return false;
                    }
                    done = true;
                } else if c == 0 {
                    return false; // unterminated quotes
                } else {
                    tok.push(line, Some(p), c);
                }
            } else if insq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    tok.push(line, Some(p), b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return false;
                    }
                    done = true;
                } else if c == 0 {
                    return false;
                } else {
                    tok.push(line, Some(p), c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    _ => tok.push(line, Some(p), c),
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        out.push(tok.finish());
    }
}

fn parse_inline(buf: &mut BytesMut, limits: &Limits) -> Result<Parsed, ProtocolError> {
    let b: &[u8] = buf;
    let nl = match find_line_end(b, 0, b'\n') {
        Some(i) => i,
        None => {
            if b.len() > limits.max_inline_len {
                return Err(ProtocolError::new("too big inline request"));
            }
            return Ok(Parsed::Incomplete { need: 0 });
        }
    };
    let line_end = if nl > 0 && b[nl - 1] == b'\r' { nl - 1 } else { nl };
    let mut toks = Vec::new();
    if !split_args(&b[..line_end], &mut toks) {
        return Err(ProtocolError::new("unbalanced quotes in request"));
    }
    let frame = buf.split_to(nl + 1).freeze();
    let args = toks
        .into_iter()
        .map(|t| match t {
            Tok::Range(s, e) => frame.slice(s..e),
            Tok::Owned(v) => Bytes::from(v),
        })
        .collect();
    Ok(Parsed::Request(args))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lim() -> Limits {
        Limits::default()
    }

    fn parse(input: &[u8]) -> (Result<Parsed, ProtocolError>, usize) {
        let mut buf = BytesMut::from(input);
        let r = parse_request(&mut buf, &lim());
        (r, input.len() - buf.len())
    }

    fn req(input: &[u8]) -> Vec<Vec<u8>> {
        match parse(input) {
            (Ok(Parsed::Request(a)), _) => a.iter().map(|b| b.to_vec()).collect(),
            other => panic!("expected a request from {:?}, got {:?}", input, other),
        }
    }

    fn args(v: &[&[u8]]) -> Vec<Vec<u8>> {
        v.iter().map(|a| a.to_vec()).collect()
    }

    fn err(input: &[u8]) -> String {
        match parse(input).0 {
            Err(e) => e.0,
            other => panic!("expected an error from {:?}, got {:?}", input, other),
        }
    }

    fn is_incomplete(input: &[u8]) -> bool {
        matches!(parse(input), (Ok(Parsed::Incomplete { .. }), 0))
    }

    /// Parses everything in `buf`, returning the requests (empty ones skipped) and the error.
    fn parse_all(buf: &mut BytesMut, limits: &Limits) -> (Vec<Vec<Bytes>>, Option<ProtocolError>) {
        let mut out = Vec::new();
        loop {
            match parse_request(buf, limits) {
                Ok(Parsed::Request(a)) => {
                    if !a.is_empty() {
                        out.push(a)
                    }
                }
                Ok(Parsed::Incomplete { .. }) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    #[test]
    fn multibulk_basic() {
        assert_eq!(req(b"*1\r\n$4\r\nPING\r\n"), args(&[b"PING"]));
        assert_eq!(
            req(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n"),
            args(&[b"SET", b"k", b"value"])
        );
        // Binary-safe payloads, including \r\n and NUL inside the payload.
        assert_eq!(
            req(b"*2\r\n$4\r\nECHO\r\n$5\r\na\r\n\0b\r\n"),
            args(&[b"ECHO", b"a\r\n\0b"])
        );
        // Consumes exactly one request.
        let (r, used) = parse(b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n");
        assert!(matches!(r, Ok(Parsed::Request(_))));
        assert_eq!(used, 14);
    }

    #[test]
    fn empty_bulk_is_an_empty_argument() {
        assert_eq!(req(b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"), args(&[b"ECHO", b""]));
    }

    #[test]
    fn empty_multibulk_requests_are_skipped() {
        for input in [&b"*0\r\n"[..], b"*-1\r\n", b"*-5\r\n"] {
            let (r, used) = parse(input);
            assert_eq!(r, Ok(Parsed::Request(vec![])));
            assert_eq!(used, input.len());
        }
        // Redis answers +PONG to "*-5\r\nPING\r\n" (verified).
        let mut buf = BytesMut::from(&b"*-5\r\nPING\r\n"[..]);
        let (reqs, e) = parse_all(&mut buf, &lim());
        assert_eq!(reqs, vec![vec![Bytes::from_static(b"PING")]]);
        assert!(e.is_none());
    }

    #[test]
    fn multibulk_count_errors() {
        for input in [
            &b"*\r\n"[..],
            b"*01\r\n",
            b"*-0\r\n",
            b"*+1\r\n",
            b"*1 \r\n",
            b"* 1\r\n",
            b"*abc\r\n",
            b"*2147483648\r\n",
            b"*99999999999999999999\r\n",
            b"*123456789012345678901\r\n",
            // LF-only header: strchr finds the \r of the next line, string2ll("1\n$4") fails.
            b"*1\n$4\r\nPING\r\n",
        ] {
            assert_eq!(err(input), "invalid multibulk length", "{:?}", input);
        }
        // INT_MAX itself is accepted (Redis waits for the arguments).
        assert!(is_incomplete(b"*2147483647\r\n"));
        assert!(is_incomplete(b"*1048577\r\n"));
        // The configured limit.
        let l = Limits {
            max_multibulk_len: 3,
            ..Limits::default()
        };
        let mut buf = BytesMut::from(&b"*4\r\n"[..]);
        assert_eq!(parse_request(&mut buf, &l).unwrap_err().0, "invalid multibulk length");
        let mut buf = BytesMut::from(&b"*3\r\n"[..]);
        assert!(matches!(parse_request(&mut buf, &l), Ok(Parsed::Incomplete { .. })));
    }

    #[test]
    fn bulk_header_errors() {
        assert_eq!(err(b"*1\r\nx3\r\n"), "expected '$', got 'x'");
        assert_eq!(err(b"*2\r\n$1\r\na\r\n:1\r\n"), "expected '$', got ':'");
        // \r or \n shown as a space, as addReplyErrorFormat does.
        assert_eq!(err(b"*1\r\n\r\n"), "expected '$', got ' '");
        assert_eq!(err(b"*1\r\n\n\r\n"), "expected '$', got ' '");
        for input in [
            &b"*1\r\n$-1\r\n"[..],
            b"*1\r\n$04\r\nPING\r\n",
            b"*1\r\n$+4\r\nPING\r\n",
            b"*1\r\n$\r\n",
            b"*1\r\n$4x\r\n",
            b"*1\r\n$536870913\r\n",
            b"*1\r\n$4\n\r\nPING\r\n",
            b"*1\r\n$99999999999999999999\r\n",
        ] {
            assert_eq!(err(input), "invalid bulk length", "{:?}", input);
        }
        assert!(is_incomplete(b"*1\r\n$536870912\r\n"));
        // Only checked once the whole header line is there.
        assert!(is_incomplete(b"*1\r\nx"));
        assert!(is_incomplete(b"*1\r\nx3\r"));
    }

    #[test]
    fn error_display_and_reply_bytes() {
        let e = ProtocolError("invalid bulk length".into());
        assert_eq!(e.to_string(), "Protocol error: invalid bulk length");
        assert_eq!(e.reply_bytes(), b"-ERR Protocol error: invalid bulk length\r\n");
        let e = parse(b"*1\r\n\xff\r\n").0.unwrap_err();
        assert_eq!(e.reply_bytes(), b"-ERR Protocol error: expected '$', got '\xff'\r\n");
    }

    #[test]
    fn too_big_header_lines() {
        let mut v = b"*".to_vec();
        v.resize(v.len() + 65535, b'1'); // 65536 bytes, no \r: wait
        assert!(is_incomplete(&v));
        v.push(b'1'); // 65537 bytes
        assert_eq!(err(&v), "too big mbulk count string");
        // With the \r there it is just an invalid number.
        let mut w = b"*".to_vec();
        w.resize(w.len() + 70000, b'1');
        w.extend_from_slice(b"\r\n");
        assert_eq!(err(&w), "invalid multibulk length");

        let mut v = b"*1\r\n$".to_vec();
        v.resize(v.len() + 65535, b'1');
        assert!(is_incomplete(&v));
        v.push(b'1');
        assert_eq!(err(&v), "too big bulk count string");
    }

    #[test]
    fn nul_before_cr_means_no_line_yet() {
        // strchr stops at NUL: Redis 7.0 waits (verified), then fails once > 64K are buffered.
        assert!(is_incomplete(b"*\x001\r\n"));
        assert!(is_incomplete(b"*1\r\n$\x004\r\n"));
        assert!(is_incomplete(b"PI\x00NG\r\n"));
        let mut v = b"*\x00".to_vec();
        v.resize(v.len() + 70000, b'1');
        v.extend_from_slice(b"\r\n");
        assert_eq!(err(&v), "too big mbulk count string");
        let mut v = b"PI\x00NG".to_vec();
        v.resize(v.len() + 70000, b'x');
        v.push(b'\n');
        assert_eq!(err(&v), "too big inline request");
    }

    #[test]
    fn unchecked_line_terminators_are_skipped() {
        // The byte after \r in a header is not checked, nor the two bytes after a payload.
        assert_eq!(req(b"*1\rX$4\r\nPING\r\n"), args(&[b"PING"]));
        let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n"[..]);
        let (reqs, e) = parse_all(&mut buf, &lim());
        assert_eq!(reqs.len(), 2);
        assert!(e.is_none());
        assert!(buf.is_empty());
    }

    #[test]
    fn unauthenticated_limits() {
        let l = lim();
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            parse_request_with_auth(&mut buf, &l, true).unwrap_err().0,
            "unauthenticated multibulk length"
        );
        let mut buf = BytesMut::from(&b"*10\r\n"[..]);
        assert!(matches!(
            parse_request_with_auth(&mut buf, &l, true),
            Ok(Parsed::Incomplete { .. })
        ));
        let mut buf = BytesMut::from(&b"*1\r\n$16385\r\n"[..]);
        assert_eq!(
            parse_request_with_auth(&mut buf, &l, true).unwrap_err().0,
            "unauthenticated bulk length"
        );
        let mut buf = BytesMut::from(&b"*1\r\n$16384\r\n"[..]);
        assert!(matches!(
            parse_request_with_auth(&mut buf, &l, true),
            Ok(Parsed::Incomplete { .. })
        ));
        // Invalid beats unauthenticated, as in Redis.
        let mut buf = BytesMut::from(&b"*2147483648\r\n"[..]);
        assert_eq!(
            parse_request_with_auth(&mut buf, &l, true).unwrap_err().0,
            "invalid multibulk length"
        );
        // Without auth required the same input is fine.
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert!(matches!(parse_request(&mut buf, &l), Ok(Parsed::Incomplete { .. })));
    }

    #[test]
    fn incomplete_never_consumes_and_need_is_a_lower_bound() {
        let full = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$10\r\n0123456789\r\n";
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            match parse_request(&mut buf, &lim()).unwrap() {
                Parsed::Incomplete { need } => {
                    assert_eq!(buf.len(), cut);
                    assert!(
                        need == 0 || (need > cut && need <= full.len()),
                        "cut {} need {}",
                        cut,
                        need
                    );
                }
                p => panic!("cut {}: {:?}", cut, p),
            }
        }
        // Inside the payload: need is exact.
        let mut buf = BytesMut::from(&full[..30]);
        assert_eq!(
            parse_request(&mut buf, &lim()).unwrap(),
            Parsed::Incomplete { need: full.len() }
        );
        // Remaining arguments are counted at their minimum size.
        let mut buf = BytesMut::from(&b"*3\r\n$5\r\nab"[..]);
        assert_eq!(
            parse_request(&mut buf, &lim()).unwrap(),
            Parsed::Incomplete { need: 4 + 11 + 12 }
        );
    }

    #[test]
    fn big_bulk_across_many_partial_reads() {
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let wire = encode(&[b"SET".to_vec(), b"big".to_vec(), payload.clone()]);
        let mut buf = BytesMut::new();
        let mut calls = 0;
        let mut got = None;
        for chunk in wire.chunks(16 * 1024) {
            buf.extend_from_slice(chunk);
            calls += 1;
            match parse_request(&mut buf, &lim()).unwrap() {
                Parsed::Incomplete { need } => {
                    if buf.len() > 40 {
                        assert_eq!(need, wire.len());
                    }
                }
                Parsed::Request(a) => {
                    got = Some(a);
                    break;
                }
            }
        }
        assert_eq!(calls, wire.len().div_ceil(16 * 1024));
        let a = got.expect("complete");
        assert_eq!(a.len(), 3);
        assert_eq!(&a[2][..], &payload[..]);
        assert!(buf.is_empty());
    }

    #[test]
    fn zero_copy() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\nPING x\r\n"[..]);
        let base = buf.as_ptr() as usize;
        let a = match parse_request(&mut buf, &lim()).unwrap() {
            Parsed::Request(a) => a,
            _ => unreachable!(),
        };
        assert_eq!(a[0].as_ptr() as usize, base + 8);
        assert_eq!(a[1].as_ptr() as usize, base + 17);
        let a = match parse_request(&mut buf, &lim()).unwrap() {
            Parsed::Request(a) => a,
            _ => unreachable!(),
        };
        assert_eq!(a[0].as_ptr() as usize, base + 22);
        assert_eq!(a[1].as_ptr() as usize, base + 27);
    }

    #[test]
    fn pipeline_of_10000_commands() {
        let mut wire = Vec::new();
        for i in 0..10_000 {
            if i % 3 == 0 {
                wire.extend_from_slice(format!("SET key:{} \"v {}\"\r\n", i, i).as_bytes());
            } else {
                wire.extend_from_slice(&encode(&[
                    b"SET".to_vec(),
                    format!("key:{}", i).into_bytes(),
                    format!("v {}", i).into_bytes(),
                ]));
            }
        }
        let mut buf = BytesMut::from(&wire[..]);
        let (reqs, e) = parse_all(&mut buf, &lim());
        assert!(e.is_none());
        assert!(buf.is_empty());
        assert_eq!(reqs.len(), 10_000);
        for (i, r) in reqs.iter().enumerate() {
            assert_eq!(r[0], &b"SET"[..]);
            assert_eq!(r[1], format!("key:{}", i).as_bytes());
            assert_eq!(r[2], format!("v {}", i).as_bytes());
        }
    }

    #[test]
    fn errors_after_valid_requests_in_a_pipeline() {
        let mut buf = BytesMut::from(&b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n"[..]);
        let (reqs, e) = parse_all(&mut buf, &lim());
        assert_eq!(reqs.len(), 2);
        assert_eq!(e.unwrap().0, "invalid bulk length");
    }

    // ---- inline ----

    #[test]
    fn inline_basic() {
        assert_eq!(req(b"PING\r\n"), args(&[b"PING"]));
        assert_eq!(req(b"PING\n"), args(&[b"PING"]));
        assert_eq!(req(b"SET  k \t v\r\n"), args(&[b"SET", b"k", b"v"]));
        assert_eq!(req(b"  ECHO x  \n"), args(&[b"ECHO", b"x"]));
        assert_eq!(req(b"ECHO abc\r\r\n"), args(&[b"ECHO", b"abc"]));
        // \r alone separates arguments inside a LF-terminated line.
        assert_eq!(req(b"ECHO a\rb\n"), args(&[b"ECHO", b"a", b"b"]));
        // \v and \f are skipped between arguments but are ordinary bytes inside one.
        assert_eq!(req(b"ECHO a\x0bb\n"), args(&[b"ECHO", b"a\x0bb"]));
        assert_eq!(req(b"ECHO \x0b a\n"), args(&[b"ECHO", b"a"]));
        // Bytes >= 0x80 are ordinary.
        assert_eq!(req(b"ECHO \xc3\xa9\xff\n"), args(&[b"ECHO", b"\xc3\xa9\xff"]));
        assert!(is_incomplete(b"PING"));
        assert!(is_incomplete(b"PING\r"));
    }

    #[test]
    fn inline_empty_lines_are_empty_requests() {
        for input in [&b"\n"[..], b"\r\n", b"   \r\n", b"\t\n"] {
            let (r, used) = parse(input);
            assert_eq!(r, Ok(Parsed::Request(vec![])));
            assert_eq!(used, input.len());
        }
        let mut buf = BytesMut::from(&b"\n\r\nPING\n"[..]);
        let (reqs, _) = parse_all(&mut buf, &lim());
        assert_eq!(reqs, vec![vec![Bytes::from_static(b"PING")]]);
    }

    #[test]
    fn inline_quoting() {
        assert_eq!(req(b"ECHO \"a\\x41\\n\\tb\"\n"), args(&[b"ECHO", b"aA\n\tb"]));
        assert_eq!(
            req(b"ECHO \"\\r\\b\\a\\\"\\\\\"\n"),
            args(&[b"ECHO", b"\r\x08\x07\"\\"])
        );
        assert_eq!(req(b"ECHO \"\\x4g\"\n"), args(&[b"ECHO", b"x4g"]));
        assert_eq!(req(b"ECHO \"\\xZZ\"\n"), args(&[b"ECHO", b"xZZ"]));
        assert_eq!(req(b"ECHO \"\\q\\\\\"\n"), args(&[b"ECHO", b"q\\"]));
        assert_eq!(req(b"ECHO \"\\xfF\\x00\"\n"), args(&[b"ECHO", b"\xff\x00"]));
        assert_eq!(req(b"ECHO 'a\\'b'\n"), args(&[b"ECHO", b"a'b"]));
        assert_eq!(req(b"ECHO 'a\\nb'\n"), args(&[b"ECHO", b"a\\nb"]));
        assert_eq!(req(b"ECHO 'a \"b\" c'\n"), args(&[b"ECHO", b"a \"b\" c"]));
        assert_eq!(req(b"ECHO x\"a b\"\n"), args(&[b"ECHO", b"xa b"]));
        assert_eq!(req(b"ECHO \"\" ''\n"), args(&[b"ECHO", b"", b""]));
        assert_eq!(req(b"SET \"k 1\" 'v 2'\r\n"), args(&[b"SET", b"k 1", b"v 2"]));
        // A closing quote may be followed by any isspace() byte, including \v.
        assert_eq!(req(b"ECHO \"a\"\x0b\n"), args(&[b"ECHO", b"a"]));
        assert_eq!(req(b"ECHO \"a\"\tb\n"), args(&[b"ECHO", b"a", b"b"]));
        // "\x" at the end of the line: backslash escape of 'x'.
        assert_eq!(req(b"ECHO \"\\x\"\n"), args(&[b"ECHO", b"x"]));
    }

    #[test]
    fn inline_quoted_tokens_without_escapes_are_zero_copy() {
        let mut buf = BytesMut::from(&b"ECHO \"hello world\"\n"[..]);
        let base = buf.as_ptr() as usize;
        match parse_request(&mut buf, &lim()).unwrap() {
            Parsed::Request(a) => {
                assert_eq!(a[1], &b"hello world"[..]);
                assert_eq!(a[1].as_ptr() as usize, base + 6);
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn inline_unbalanced_quotes() {
        for input in [
            &b"ECHO \"ab\n"[..],
            b"ECHO 'ab\n",
            b"ECHO \"a\"b\n",
            b"ECHO 'a'b\n",
            b"ECHO \"a\\\"\n",
            b"\"\n",
            b"ECHO \"ab\\\n",
        ] {
            assert_eq!(err(input), "unbalanced quotes in request", "{:?}", input);
        }
    }

    #[test]
    fn inline_too_big() {
        let mut v = b"PING ".to_vec();
        v.resize(v.len() + 65536 - 5, b'x');
        assert!(is_incomplete(&v));
        v.push(b'x');
        assert_eq!(err(&v), "too big inline request");
        // A long line whose newline is already buffered is accepted, as Redis does.
        let mut v = b"ECHO ".to_vec();
        v.resize(v.len() + 70000, b'x');
        v.push(b'\n');
        assert_eq!(req(&v)[1].len(), 70000);
    }

    #[test]
    fn string2ll_matches_redis() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"-1"), Some(-1));
        assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"18446744073709551616",
            b"1a",
        ] {
            assert_eq!(string2ll(bad), None, "{:?}", bad);
        }
    }

    // ---- property tests ----

    fn arb_arg() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 0..3000),
            "[a-z]{1,8}".prop_map(|s| s.into_bytes()),
        ]
    }

    #[derive(Debug, Clone)]
    enum Cmd {
        Multi(Vec<Vec<u8>>),
        /// Inline: plain words (no spaces/quotes) written with the given separators/terminator.
        Inline(Vec<Vec<u8>>, bool),
        /// Inline with every argument double-quoted using \xHH escapes for all bytes.
        Quoted(Vec<Vec<u8>>),
        Empty,
    }

    fn arb_cmd() -> impl Strategy<Value = Cmd> {
        prop_oneof![
            4 => proptest::collection::vec(arb_arg(), 1..8).prop_map(Cmd::Multi),
            // Inline commands never start with '*' (that would be multibulk).
            2 => (proptest::collection::vec("[!-~&&[^\"'*]][!-~&&[^\"']]{0,9}".prop_map(|s| s.into_bytes()), 1..6), any::<bool>())
                .prop_map(|(a, crlf)| Cmd::Inline(a, crlf)),
            1 => proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..5).prop_map(Cmd::Quoted),
            1 => Just(Cmd::Empty),
        ]
    }

    fn serialize(cmd: &Cmd, out: &mut Vec<u8>) -> Option<Vec<Vec<u8>>> {
        match cmd {
            Cmd::Multi(a) => {
                out.extend_from_slice(&encode(a));
                Some(a.clone())
            }
            Cmd::Inline(a, crlf) => {
                out.extend_from_slice(&a.join(&b" "[..]));
                out.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
                Some(a.clone())
            }
            Cmd::Quoted(a) => {
                for (i, arg) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    out.push(b'"');
                    for b in arg {
                        out.extend_from_slice(format!("\\x{:02x}", b).as_bytes());
                    }
                    out.push(b'"');
                }
                out.extend_from_slice(b"\r\n");
                Some(a.clone())
            }
            Cmd::Empty => {
                out.extend_from_slice(b"*0\r\n");
                None
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn prop_pipeline_in_random_splits(
            cmds in proptest::collection::vec(arb_cmd(), 1..20),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut wire = Vec::new();
            let mut expected = Vec::new();
            for c in &cmds {
                if let Some(a) = serialize(c, &mut wire) {
                    expected.push(a);
                }
            }
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.push(wire.len());
            points.sort_unstable();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut prev = 0;
            for p in points {
                buf.extend_from_slice(&wire[prev..p]);
                prev = p;
                loop {
                    let before = buf.len();
                    match parse_request(&mut buf, &lim()) {
                        Ok(Parsed::Request(a)) => {
                            prop_assert!(buf.len() < before);
                            if !a.is_empty() {
                                got.push(a.iter().map(|b| b.to_vec()).collect::<Vec<_>>());
                            }
                        }
                        Ok(Parsed::Incomplete { need }) => {
                            prop_assert_eq!(buf.len(), before);
                            prop_assert!(need == 0 || need > before);
                            break;
                        }
                        Err(e) => prop_assert!(false, "unexpected error {}", e),
                    }
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn prop_garbage_never_panics(
            data in proptest::collection::vec(
                prop_oneof![
                    3 => any::<u8>(),
                    2 => prop::sample::select(vec![b'*', b'$', b'\r', b'\n', b'"', b'\'', b'\\', b' ', b'0', b'1', b'2', b'-', b'x', 0u8]),
                ],
                0..300,
            ),
            small in any::<bool>(),
        ) {
            let limits = if small {
                Limits { max_bulk_len: 16, max_multibulk_len: 4, max_inline_len: 32 }
            } else {
                Limits::default()
            };
            let mut buf = BytesMut::from(&data[..]);
            loop {
                let before = buf.len();
                match parse_request(&mut buf, &limits) {
                    Ok(Parsed::Request(_)) => prop_assert!(buf.len() < before),
                    Ok(Parsed::Incomplete { need }) => {
                        prop_assert_eq!(buf.len(), before);
                        prop_assert!(need == 0 || need > before);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }

        #[test]
        fn prop_string2ll_agrees_with_canonical_i64(n in any::<i64>()) {
            prop_assert_eq!(string2ll(n.to_string().as_bytes()), Some(n));
        }
    }
}
