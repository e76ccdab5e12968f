//! Reply encoding, as Redis 7.0's `addReply*` functions (src/networking.c): handlers write
//! RESP3 types and [`Reply`] downgrades them for RESP2 clients.

use bytes::BytesMut;
use memchr::memchr;

use super::longdouble::LongDouble;

/// The protocol version negotiated with HELLO.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Proto {
    Resp2,
    Resp3,
}

/// Reply writer: handlers never think about RESP2 vs RESP3; this downgrades.
#[derive(Debug, Clone)]
pub struct Reply {
    pub buf: BytesMut,
    pub proto: Proto,
}

static DIGITS2: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes the decimal digits of `n` at the end of `buf`; returns the index of the first digit.
#[inline(always)]
fn write_u64_tail(mut n: u64, buf: &mut [u8], end: usize) -> usize {
    let mut i = end;
    while n >= 100 {
        let r = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i] = DIGITS2[r];
        buf[i + 1] = DIGITS2[r + 1];
    }
    if n >= 10 {
        let r = n as usize * 2;
        i -= 2;
        buf[i] = DIGITS2[r];
        buf[i + 1] = DIGITS2[r + 1];
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    i
}

/// Formats `n` in base 10 into a stack buffer, without allocating (Redis's `ll2string`).
#[inline]
pub fn write_i64(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = write_u64_tail(n.unsigned_abs(), buf, 20);
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

impl Reply {
    #[inline]
    pub fn new(proto: Proto) -> Self {
        Reply {
            buf: BytesMut::new(),
            proto,
        }
    }

    #[inline]
    pub fn with_capacity(proto: Proto, cap: usize) -> Self {
        Reply {
            buf: BytesMut::with_capacity(cap),
            proto,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes the bytes written so far, leaving the writer empty.
    #[inline]
    pub fn take(&mut self) -> BytesMut {
        self.buf.split()
    }

    /// Appends pre-encoded RESP.
    #[inline]
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// `<prefix><n>\r\n` in one copy.
    #[inline(always)]
    fn header_i64(&mut self, prefix: u8, n: i64) {
        let mut tmp = [0u8; 24];
        let mut i = write_u64_tail(n.unsigned_abs(), &mut tmp, 21);
        if n < 0 {
            i -= 1;
            tmp[i] = b'-';
        }
        i -= 1;
        tmp[i] = prefix;
        tmp[21] = b'\r';
        tmp[22] = b'\n';
        self.buf.extend_from_slice(&tmp[i..23]);
    }

    #[inline(always)]
    fn header(&mut self, prefix: u8, n: usize) {
        let mut tmp = [0u8; 24];
        let mut i = write_u64_tail(n as u64, &mut tmp, 21);
        i -= 1;
        tmp[i] = prefix;
        tmp[21] = b'\r';
        tmp[22] = b'\n';
        self.buf.extend_from_slice(&tmp[i..23]);
    }

    /// `+OK\r\n`
    #[inline]
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// `+{s}\r\n`. Like Redis's addReplyStatus, the text is written as is: it must not contain
    /// \r or \n.
    #[inline]
    pub fn simple(&mut self, s: &str) {
        self.buf.reserve(s.len() + 3);
        self.buf.extend_from_slice(b"+");
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `-{msg}\r\n`; `msg` already contains the error code (`ERR ...`, `WRONGTYPE ...`); a leading
    /// `-` is tolerated and not doubled. Any \r or \n in msg is replaced by a space, as Redis's
    /// addReplyErrorFormat does.
    pub fn error(&mut self, msg: &str) {
        let msg = msg.strip_prefix('-').unwrap_or(msg);
        let m = &*crate::error::unecho(msg);
        self.buf.reserve(m.len() + 3);
        self.buf.extend_from_slice(b"-");
        let mut rest = m;
        while let Some(i) = memchr::memchr2(b'\r', b'\n', rest) {
            self.buf.extend_from_slice(&rest[..i]);
            self.buf.extend_from_slice(b" ");
            rest = &rest[i + 1..];
        }
        self.buf.extend_from_slice(rest);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `:{n}\r\n`
    #[inline]
    pub fn int(&mut self, n: i64) {
        self.header_i64(b':', n);
    }

    /// `${len}\r\n{b}\r\n`
    #[inline]
    pub fn bulk(&mut self, b: &[u8]) {
        self.buf.reserve(b.len() + 16);
        self.header(b'$', b.len());
        self.buf.extend_from_slice(b);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer as a bulk string (addReplyBulkLongLong), without allocating.
    #[inline]
    pub fn bulk_int(&mut self, n: i64) {
        let mut tmp = [0u8; 20];
        let digits = write_i64(n, &mut tmp);
        self.bulk(digits);
    }

    /// RESP2 `$-1\r\n`, RESP3 `_\r\n`.
    #[inline]
    pub fn null(&mut self) {
        self.buf.extend_from_slice(match self.proto {
            Proto::Resp2 => b"$-1\r\n",
            Proto::Resp3 => b"_\r\n",
        });
    }

    /// RESP2 `*-1\r\n`, RESP3 `_\r\n`.
    #[inline]
    pub fn null_array(&mut self) {
        self.buf.extend_from_slice(match self.proto {
            Proto::Resp2 => b"*-1\r\n",
            Proto::Resp3 => b"_\r\n",
        });
    }

    /// `*{n}\r\n`
    #[inline]
    pub fn array(&mut self, n: usize) {
        self.header(b'*', n);
    }

    /// RESP3 `%{pairs}\r\n`, RESP2 `*{2*pairs}\r\n`.
    #[inline]
    pub fn map(&mut self, pairs: usize) {
        match self.proto {
            Proto::Resp2 => self.header(b'*', pairs * 2),
            Proto::Resp3 => self.header(b'%', pairs),
        }
    }

    /// RESP3 `~{n}\r\n`, RESP2 `*{n}\r\n`.
    #[inline]
    pub fn set(&mut self, n: usize) {
        match self.proto {
            Proto::Resp2 => self.header(b'*', n),
            Proto::Resp3 => self.header(b'~', n),
        }
    }

    /// RESP3 `>{n}\r\n`, RESP2 `*{n}\r\n`.
    #[inline]
    pub fn push(&mut self, n: usize) {
        match self.proto {
            Proto::Resp2 => self.header(b'*', n),
            Proto::Resp3 => self.header(b'>', n),
        }
    }

    /// Redis 7.0's addReplyDouble: RESP3 `,{%.17g}\r\n` (`,inf`, `,-inf`), RESP2 a bulk string
    /// of the same text (`inf`, `-inf`).
    #[inline]
    pub fn double(&mut self, d: f64) {
        let mut tmp = [0u8; 32];
        let n = fmt_g17(d, &mut tmp);
        match self.proto {
            Proto::Resp2 => self.bulk(&tmp[..n]),
            Proto::Resp3 => {
                self.buf.reserve(n + 3);
                self.buf.extend_from_slice(b",");
                self.buf.extend_from_slice(&tmp[..n]);
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// RESP3 `#t\r\n` / `#f\r\n`, RESP2 `:1\r\n` / `:0\r\n`.
    #[inline]
    pub fn bool(&mut self, b: bool) {
        self.buf.extend_from_slice(match (self.proto, b) {
            (Proto::Resp2, true) => b":1\r\n",
            (Proto::Resp2, false) => b":0\r\n",
            (Proto::Resp3, true) => b"#t\r\n",
            (Proto::Resp3, false) => b"#f\r\n",
        });
    }

    /// RESP3 `={len}\r\n{fmt}:{text}\r\n` (fmt is 3 bytes, e.g. "txt"), RESP2 a bulk of the text.
    /// As Redis's addReplyVerbatim, only the first 3 bytes of `format` are used (padded with
    /// spaces if shorter).
    pub fn verbatim(&mut self, format: &str, text: &[u8]) {
        match self.proto {
            Proto::Resp2 => self.bulk(text),
            Proto::Resp3 => {
                let mut ext = [b' '; 3];
                for (d, s) in ext.iter_mut().zip(format.bytes()) {
                    *d = s;
                }
                self.buf.reserve(text.len() + 24);
                self.header(b'=', text.len() + 4);
                self.buf.extend_from_slice(&ext);
                self.buf.extend_from_slice(b":");
                self.buf.extend_from_slice(text);
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// RESP3 `({s}\r\n`, RESP2 a bulk string.
    pub fn big_number(&mut self, s: &str) {
        match self.proto {
            Proto::Resp2 => self.bulk(s.as_bytes()),
            Proto::Resp3 => {
                self.buf.reserve(s.len() + 3);
                self.buf.extend_from_slice(b"(");
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// `*{n}\r\n` followed by one bulk string per item.
    pub fn array_of_bulks<I: IntoIterator<Item = T>, T: AsRef<[u8]>>(&mut self, items: I)
    where
        I::IntoIter: ExactSizeIterator,
    {
        let it = items.into_iter();
        self.array(it.len());
        for item in it {
            self.bulk(item.as_ref());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Doubles
// ---------------------------------------------------------------------------------------------

struct StackWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl std::fmt::Write for StackWriter<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let b = s.as_bytes();
        let end = self.len + b.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(b);
        self.len = end;
        Ok(())
    }
}

/// printf("%.17g", d) into `out`; returns the length (at most 24).
fn fmt_g17(d: f64, out: &mut [u8; 32]) -> usize {
    let mut n = 0;
    let mut put = |s: &[u8], n: &mut usize| {
        out[*n..*n + s.len()].copy_from_slice(s);
        *n += s.len();
    };
    if d.is_sign_negative() {
        put(b"-", &mut n);
    }
    if d.is_nan() {
        put(b"nan", &mut n);
        return n;
    }
    if d.is_infinite() {
        put(b"inf", &mut n);
        return n;
    }
    // 17 significant digits, correctly rounded (ties to even, as glibc), in scientific form.
    let mut tmp = [0u8; 40];
    let mut w = StackWriter { buf: &mut tmp, len: 0 };
    std::fmt::write(&mut w, format_args!("{:.16e}", d.abs())).expect("fits");
    let len = w.len;
    let s = &tmp[..len];
    // s = "D.DDDDDDDDDDDDDDDDe[-]X"
    let mut digits = [0u8; 17];
    digits[0] = s[0];
    digits[1..17].copy_from_slice(&s[2..18]);
    let exp_s = &s[19..];
    let (eneg, eds) = if exp_s[0] == b'-' {
        (true, &exp_s[1..])
    } else {
        (false, exp_s)
    };
    let mut x: i32 = 0;
    for &c in eds {
        x = x * 10 + (c - b'0') as i32;
    }
    if eneg {
        x = -x;
    }
    // Significant digits left after removing trailing zeros (%g without '#').
    let mut nd = 17;
    while nd > 1 && digits[nd - 1] == b'0' {
        nd -= 1;
    }
    if !(-4..17).contains(&x) {
        put(&digits[..1], &mut n);
        if nd > 1 {
            put(b".", &mut n);
            put(&digits[1..nd], &mut n);
        }
        put(if x < 0 { b"e-" } else { b"e+" }, &mut n);
        let ax = x.unsigned_abs();
        if ax < 10 {
            put(&[b'0', b'0' + ax as u8], &mut n);
        } else {
            let mut eb = [0u8; 20];
            let i = write_u64_tail(ax as u64, &mut eb, 20);
            put(&eb[i..], &mut n);
        }
    } else if x >= 0 {
        let int_digits = x as usize + 1;
        put(&digits[..int_digits], &mut n);
        if nd > int_digits {
            put(b".", &mut n);
            put(&digits[int_digits..nd], &mut n);
        }
    } else {
        put(b"0.", &mut n);
        for _ in 0..(-x - 1) {
            put(b"0", &mut n);
        }
        put(&digits[..nd], &mut n);
    }
    n
}

/// Formats a double the way Redis 7.0 prints it in replies (addReplyDouble): C's `%.17g`
/// ("0.10000000000000001", "1e+100", "inf", "-inf", "nan").
pub fn format_double(d: f64, out: &mut Vec<u8>) {
    let mut tmp = [0u8; 32];
    let n = fmt_g17(d, &mut tmp);
    out.extend_from_slice(&tmp[..n]);
}

/// Redis's INCRBYFLOAT / HINCRBYFLOAT output format (`ld2string(.., LD_STR_HUMAN)`: "%.17Lf",
/// trailing zeros and dot trimmed) of the long double `(long double)d`.
///
/// Redis does the arithmetic in 80-bit long double, which f64 cannot reproduce: e.g.
/// `SET k 0.1; INCRBYFLOAT k 0.2` is "0.3" in Redis while 0.1f64 + 0.2f64 formats as
/// "0.30000000000000004441"; 10.5 + 0.1 is "10.6" in Redis but "10.59999999999999964" here.
/// For exact results parse and add with [`LongDouble`] and use [`LongDouble::format_human`].
pub fn format_long_double(d: f64, out: &mut Vec<u8>) {
    LongDouble::from_f64(d).format_human(out);
}

// ---------------------------------------------------------------------------------------------
// Reading replies
// ---------------------------------------------------------------------------------------------

/// Parses a strictly formatted decimal i64 (optional '-', digits only).
#[inline]
fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u64;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// Returns (line content range end, position after CRLF) for a line starting at `from`.
#[inline]
fn line_at(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let cr = from + memchr(b'\r', buf.get(from..)?)?;
    if buf.get(cr + 1) != Some(&b'\n') {
        return None;
    }
    Some((cr, cr + 2))
}

/// Skips one complete RESP value (any type, RESP2 or RESP3, nested) starting at `pos`; returns
/// the position after it, or None if incomplete/invalid.
/// Used to split a multi-element reply into element byte ranges when merging sub-replies from
/// several shards. An attribute (`|`) is skipped together with the value it annotates.
pub fn skip_value(buf: &[u8], pos: usize) -> Option<usize> {
    let mut p = pos;
    // Values still to skip; iterative so that deep nesting cannot overflow the stack.
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let t = *buf.get(p)?;
        let (line_end, next) = line_at(buf, p + 1)?;
        let line = &buf[p + 1..line_end];
        match t {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => p = next,
            b'$' | b'!' | b'=' => {
                let n = parse_i64(line)?;
                if n < 0 {
                    if t != b'$' || n != -1 {
                        return None;
                    }
                    p = next;
                } else {
                    let end = next.checked_add(n as usize)?;
                    if buf.get(end..end.checked_add(2)?)? != b"\r\n" {
                        return None;
                    }
                    p = end + 2;
                }
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = parse_i64(line)?;
                if n < 0 {
                    if t != b'*' || n != -1 {
                        return None;
                    }
                } else {
                    let n = n as u64;
                    let elems = match t {
                        b'%' => n.checked_mul(2)?,
                        b'|' => n.checked_mul(2)?.checked_add(1)?,
                        _ => n,
                    };
                    // Every element needs at least 3 bytes: reject impossible counts early.
                    if elems > (buf.len() - next) as u64 / 3 + 1 {
                        return None;
                    }
                    pending = pending.checked_add(elems)?;
                }
                p = next;
            }
            _ => return None,
        }
    }
    Some(p)
}

/// Parses an integer reply ":123\r\n" at the start of buf.
pub fn parse_int_reply(buf: &[u8]) -> Option<i64> {
    if buf.first() != Some(&b':') {
        return None;
    }
    let (end, _) = line_at(buf, 1)?;
    parse_i64(&buf[1..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r2() -> Reply {
        Reply::new(Proto::Resp2)
    }
    fn r3() -> Reply {
        Reply::new(Proto::Resp3)
    }
    fn both(f: impl Fn(&mut Reply)) -> (Vec<u8>, Vec<u8>) {
        let mut a = r2();
        f(&mut a);
        let mut b = r3();
        f(&mut b);
        (a.buf.to_vec(), b.buf.to_vec())
    }
    fn s(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn simple_types() {
        let (a, b) = both(|r| {
            r.ok();
            r.simple("PONG");
            r.int(0);
            r.int(-42);
            r.int(i64::MIN);
            r.int(i64::MAX);
        });
        let want = "+OK\r\n+PONG\r\n:0\r\n:-42\r\n:-9223372036854775808\r\n:9223372036854775807\r\n";
        assert_eq!(s(&a), want);
        assert_eq!(s(&b), want);
    }

    #[test]
    fn errors() {
        let mut r = r2();
        r.error("ERR unknown command");
        r.error("WRONGTYPE Operation against a key holding the wrong kind of value");
        r.error("-ERR already prefixed");
        r.error("ERR bad\r\nthing\n");
        assert_eq!(
            s(&r.buf),
            "-ERR unknown command\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n-ERR already prefixed\r\n-ERR bad  thing \r\n"
        );
    }

    #[test]
    fn bulks_and_nulls() {
        let (a, b) = both(|r| {
            r.bulk(b"hello");
            r.bulk(b"");
            r.bulk(b"a\r\nb");
            r.bulk_int(-123);
            r.bulk_int(0);
            r.null();
            r.null_array();
        });
        assert_eq!(
            s(&a),
            "$5\r\nhello\r\n$0\r\n\r\n$4\r\na\r\nb\r\n$4\r\n-123\r\n$1\r\n0\r\n$-1\r\n*-1\r\n"
        );
        assert_eq!(
            s(&b),
            "$5\r\nhello\r\n$0\r\n\r\n$4\r\na\r\nb\r\n$4\r\n-123\r\n$1\r\n0\r\n_\r\n_\r\n"
        );
    }

    #[test]
    fn aggregates() {
        let (a, b) = both(|r| {
            r.array(3);
            r.map(2);
            r.set(4);
            r.push(3);
            r.array(0);
            r.map(0);
        });
        assert_eq!(s(&a), "*3\r\n*4\r\n*4\r\n*3\r\n*0\r\n*0\r\n");
        assert_eq!(s(&b), "*3\r\n%2\r\n~4\r\n>3\r\n*0\r\n%0\r\n");
        let (a, _) = both(|r| r.array_of_bulks(["a", "bc"]));
        assert_eq!(s(&a), "*2\r\n$1\r\na\r\n$2\r\nbc\r\n");
        let mut r = r2();
        r.array_of_bulks(Vec::<Vec<u8>>::new());
        assert_eq!(s(&r.buf), "*0\r\n");
        let mut r = r2();
        r.array_of_bulks([b"x".to_vec()].iter());
        assert_eq!(s(&r.buf), "*1\r\n$1\r\nx\r\n");
    }

    #[test]
    fn resp3_only_types_downgrade() {
        let (a, b) = both(|r| {
            r.bool(true);
            r.bool(false);
            r.verbatim("txt", b"Some string");
            r.big_number("3492890328409238509324850943850943825024385");
        });
        assert_eq!(
            s(&a),
            ":1\r\n:0\r\n$11\r\nSome string\r\n$43\r\n3492890328409238509324850943850943825024385\r\n"
        );
        assert_eq!(
            s(&b),
            "#t\r\n#f\r\n=15\r\ntxt:Some string\r\n(3492890328409238509324850943850943825024385\r\n"
        );
    }

    #[test]
    fn raw_take_len() {
        let mut r = Reply::with_capacity(Proto::Resp2, 64);
        assert!(r.is_empty());
        r.raw(b"+OK\r\n");
        r.int(7);
        assert_eq!(r.len(), 9);
        let t = r.take();
        assert_eq!(&t[..], b"+OK\r\n:7\r\n");
        assert!(r.is_empty());
        r.ok();
        assert_eq!(&r.buf[..], b"+OK\r\n");
    }

    /// ZADD z <input> m; ZSCORE z m on redis-server 7.0.15, in RESP2 and RESP3 (HELLO 3).
    #[allow(clippy::excessive_precision)] // 2^-25 written exactly: a tie at the 17th digit
    const ZSCORE_ORACLE: &[(f64, &str)] = &[
        (1.5, "1.5"),
        (0.1, "0.10000000000000001"),
        (0.3333333333333333, "0.33333333333333331"),
        (1e100, "1e+100"),
        (-1e-300, "-1e-300"),
        (123456789.123, "123456789.123"),
        (2.98023223876953125e-8, "2.9802322387695312e-08"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
        (0.0, "0"),
        (3.0e3, "3000"),
        (1e16, "10000000000000000"),
        (1e17, "1e+17"),
        (12345678901234567890.0, "1.2345678901234567e+19"),
        (5e-324, "4.9406564584124654e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (0.0001, "0.0001"),
        (0.00001, "1.0000000000000001e-05"),
        (100.0, "100"),
        (-2.5, "-2.5"),
        (1e15, "1000000000000000"),
        (123456.789e3, "123456789"),
        (9007199254740993.0, "9007199254740992"),
        (1e21, "1e+21"),
        (4.35, "4.3499999999999996"),
        (2.675, "2.6749999999999998"),
    ];

    #[test]
    fn double_matches_redis_7_0() {
        for &(d, want) in ZSCORE_ORACLE {
            let mut out = Vec::new();
            format_double(d, &mut out);
            assert_eq!(s(&out), want, "{:e}", d);
            let (a, b) = both(|r| r.double(d));
            assert_eq!(s(&a), format!("${}\r\n{}\r\n", want.len(), want));
            assert_eq!(s(&b), format!(",{}\r\n", want));
        }
    }

    #[test]
    fn double_special_cases_follow_printf() {
        let f = |d: f64| {
            let mut out = Vec::new();
            format_double(d, &mut out);
            s(&out)
        };
        assert_eq!(f(-0.0), "-0");
        assert_eq!(f(f64::NAN), "nan");
        assert_eq!(f(-f64::NAN), "-nan");
        assert_eq!(f(1e-4), "0.0001");
        assert_eq!(f(1.5e-5), "1.5e-05");
        assert_eq!(f(1e-310), "9.9999999999999694e-311");
        assert_eq!(f(99999999999999999.0), "1e+17");
        assert_eq!(f(1234567890123456.7), "1234567890123456.8");
        assert_eq!(f(0.5), "0.5");
    }

    #[test]
    fn long_double_format() {
        let f = |d: f64| {
            let mut out = Vec::new();
            format_long_double(d, &mut out);
            s(&out)
        };
        // Values Redis prints identically (INCRBYFLOAT on redis-server 7.0.15).
        assert_eq!(f(3000.0), "3000");
        assert_eq!(f(0.5), "0.5");
        assert_eq!(f(5200.0), "5200");
        assert_eq!(f(1.25), "1.25");
        assert_eq!(f(1e20), "100000000000000000000");
        assert_eq!(f(-0.0), "0");
        assert_eq!(f(1e-20), "0");
        assert_eq!(f(f64::INFINITY), "inf");
        // Documented difference: Redis computes in long double (use LongDouble for those).
        assert_eq!(f(10.5 + 0.1), "10.59999999999999964"); // Redis: "10.6"
        assert_eq!(f(0.1 + 0.2), "0.30000000000000004"); // Redis: "0.3"
    }

    #[test]
    fn skip_values() {
        let cases: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR x\r\n",
            b":-12\r\n",
            b"$3\r\nabc\r\n",
            b"$0\r\n\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\na\r\n:1\r\n",
            b"*2\r\n*1\r\n+x\r\n%1\r\n+k\r\n~2\r\n:1\r\n:2\r\n",
            b"_\r\n",
            b",1.5\r\n",
            b"#t\r\n",
            b"(12345678901234567890\r\n",
            b"!5\r\nerr x\r\n",
            b"=7\r\ntxt:abc\r\n",
            b">2\r\n+message\r\n$1\r\nx\r\n",
            b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n",
            b"$4\r\na\r\nb\r\n",
        ];
        for c in cases {
            assert_eq!(skip_value(c, 0), Some(c.len()), "{}", s(c));
            // Every strict prefix is incomplete.
            for cut in 0..c.len() {
                assert_eq!(skip_value(&c[..cut], 0), None, "{} cut {}", s(c), cut);
            }
            // With an offset and trailing data.
            let mut v = b"xx".to_vec();
            v.extend_from_slice(c);
            v.extend_from_slice(b"+next\r\n");
            assert_eq!(skip_value(&v, 2), Some(2 + c.len()));
        }
        for bad in [
            &b"?\r\n"[..],
            b"$3\r\nabcd\r\n",
            b"$-2\r\n",
            b"*-2\r\n",
            b"*x\r\n",
            b"$1\r\nab",
            b"+OK\n",
        ] {
            assert_eq!(skip_value(bad, 0), None, "{}", s(bad));
        }
        assert_eq!(skip_value(b"", 0), None);
        assert_eq!(skip_value(b"+OK\r\n", 10), None);
        // Splitting a multi-element reply into element ranges.
        let reply = b"*3\r\n$1\r\na\r\n$-1\r\n:5\r\n";
        let mut p = skip_value(reply, 0).map(|_| 4).unwrap();
        let mut ranges = Vec::new();
        while p < reply.len() {
            let e = skip_value(reply, p).unwrap();
            ranges.push(&reply[p..e]);
            p = e;
        }
        assert_eq!(ranges, vec![&b"$1\r\na\r\n"[..], b"$-1\r\n", b":5\r\n"]);
        // Deep nesting does not recurse.
        let mut deep = Vec::new();
        for _ in 0..100_000 {
            deep.extend_from_slice(b"*1\r\n");
        }
        deep.extend_from_slice(b":1\r\n");
        assert_eq!(skip_value(&deep, 0), Some(deep.len()));
        // Huge counts are rejected without looping.
        assert_eq!(skip_value(b"*9223372036854775807\r\n:1\r\n", 0), None);
    }

    #[test]
    fn int_replies() {
        assert_eq!(parse_int_reply(b":123\r\n"), Some(123));
        assert_eq!(parse_int_reply(b":-9223372036854775808\r\n"), Some(i64::MIN));
        assert_eq!(parse_int_reply(b":0\r\nmore"), Some(0));
        for bad in [
            &b":\r\n"[..],
            b":12",
            b"$1\r\n1\r\n",
            b":1x\r\n",
            b":9223372036854775808\r\n",
            b"",
        ] {
            assert_eq!(parse_int_reply(bad), None);
        }
    }

    proptest! {
        #[test]
        fn prop_int_roundtrip(n in any::<i64>()) {
            let mut r = r2();
            r.int(n);
            prop_assert_eq!(s(&r.buf), format!(":{}\r\n", n));
            prop_assert_eq!(parse_int_reply(&r.buf), Some(n));
            let mut t = [0u8; 20];
            let want = n.to_string();
            prop_assert_eq!(write_i64(n, &mut t), want.as_bytes());
        }

        #[test]
        fn prop_double_roundtrips_and_is_17_digits(d in any::<f64>().prop_filter("finite", |d| d.is_finite())) {
            let mut out = Vec::new();
            format_double(d, &mut out);
            let text = s(&out);
            prop_assert_eq!(text.parse::<f64>().unwrap(), d);
            let sci = format!("{:.16e}", d);
            let mant: String = sci.split('e').next().unwrap().chars().filter(|c| c.is_ascii_digit()).collect();
            let mant = mant.trim_end_matches('0');
            let mine: String = text.split('e').next().unwrap().chars().filter(|c| c.is_ascii_digit()).collect();
            prop_assert_eq!(mine.trim_start_matches('0').trim_end_matches('0'), mant.trim_start_matches('0'));
        }

        #[test]
        fn prop_skip_value_on_encoded_replies(items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 0..20), proto3 in any::<bool>()) {
            let mut r = Reply::new(if proto3 { Proto::Resp3 } else { Proto::Resp2 });
            r.map(items.len());
            for it in &items {
                r.bulk(it);
                r.double(it.len() as f64 / 3.0);
            }
            r.null();
            let b = r.buf.to_vec();
            let first = skip_value(&b, 0).unwrap();
            prop_assert_eq!(skip_value(&b, first), Some(b.len()));
        }

        #[test]
        fn prop_skip_value_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), pos in 0usize..210) {
            if let Some(e) = skip_value(&data, pos) {
                prop_assert!(e > pos && e <= data.len());
            }
        }
    }
}
