//! The argument cursor and number parsing with Redis's rules, so handlers never do index
//! arithmetic or hand-rolled parsing: they ask for the next argument of a type and get
//! Redis's error when it does not fit.

use bytes::Bytes;

use crate::error::CmdError;
use crate::store::value::parse_canonical_i64;

/// A command's arguments; `args[0]` is the command name as the client sent it.
#[derive(Clone, Debug, Default)]
pub struct Args {
    v: Vec<Bytes>,
}

impl Args {
    pub fn new(v: Vec<Bytes>) -> Args {
        Args { v }
    }

    pub fn len(&self) -> usize {
        self.v.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v.is_empty()
    }

    pub fn bytes(&self, i: usize) -> &Bytes {
        &self.v[i]
    }

    pub fn as_slice(&self) -> &[Bytes] {
        &self.v
    }

    pub fn into_vec(self) -> Vec<Bytes> {
        self.v
    }

    /// Argument `i` as an integer (Redis's string2ll: canonical decimal only).
    pub fn int(&self, i: usize) -> Result<i64, CmdError> {
        parse_i64(&self.v[i]).ok_or(CmdError::NotInteger)
    }

    pub fn float(&self, i: usize) -> Result<f64, CmdError> {
        parse_f64(&self.v[i]).ok_or(CmdError::NotFloat)
    }

    /// Case-insensitive comparison of argument `i` with an ASCII keyword.
    pub fn is(&self, i: usize, keyword: &str) -> bool {
        self.v
            .get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(keyword.as_bytes()))
    }

    /// A cursor over the arguments from position `start`.
    pub fn cursor(&self, start: usize) -> Cursor<'_> {
        Cursor { args: self, pos: start }
    }
}

impl std::ops::Index<usize> for Args {
    type Output = [u8];
    fn index(&self, i: usize) -> &[u8] {
        &self.v[i]
    }
}

/// Walks the optional arguments of a command.
pub struct Cursor<'a> {
    args: &'a Args,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.args.len().saturating_sub(self.pos)
    }

    pub fn is_done(&self) -> bool {
        self.pos >= self.args.len()
    }

    pub fn peek(&self) -> Option<&'a [u8]> {
        self.args.v.get(self.pos).map(|b| &b[..])
    }

    pub fn next_arg(&mut self) -> Option<&'a [u8]> {
        let a = self.args.v.get(self.pos)?;
        self.pos += 1;
        Some(&a[..])
    }

    /// The next argument, or a syntax error if there is none.
    pub fn value(&mut self) -> Result<&'a [u8], CmdError> {
        self.next_arg().ok_or(CmdError::Syntax)
    }

    pub fn int(&mut self) -> Result<i64, CmdError> {
        parse_i64(self.value()?).ok_or(CmdError::NotInteger)
    }

    /// Consumes the next argument if it is `keyword` (case-insensitive).
    pub fn eat(&mut self, keyword: &str) -> bool {
        if self.args.is(self.pos, keyword) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
}

pub fn parse_i64(s: &[u8]) -> Option<i64> {
    parse_canonical_i64(s)
}

/// Redis's getRangeLongFromObjectOrReply without a message: an integer in `min..=max`,
/// else the not-an-integer error or one naming the range.
pub fn int_in_range(s: &[u8], min: i64, max: i64) -> Result<i64, CmdError> {
    match parse_i64(s) {
        None => Err(CmdError::NotInteger),
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(_) => Err(CmdError::Custom(format!(
            "ERR value is out of range, value must between {min} and {max}"
        ))),
    }
}

/// Redis's getPositiveLongFromObjectOrReply: a non-negative integer, else one message for a
/// non-number and a negative number alike.
pub fn positive(s: &[u8]) -> Result<i64, CmdError> {
    match parse_i64(s) {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(CmdError::Static("ERR value is out of range, must be positive")),
    }
}

/// Redis's string2d-like parse for scores and floats: strtod's grammar, but no leading
/// space, no trailing bytes, and NaN refused.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s.len() > 5000 || s[0].is_ascii_whitespace() {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    let v = match text.parse::<f64>() {
        Ok(v) => v,
        Err(_) => parse_hex_float(text)?,
    };
    if v.is_nan() {
        return None;
    }
    Some(v)
}

/// Redis's SCAN cursor grammar (strtoul, base 10): an optional sign (a negative cursor
/// wraps), digits, nothing else; an empty cursor is 0. Overflow or a leading space is an
/// error.
pub fn parse_scan_cursor(s: &[u8]) -> Option<u64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        Some(_) => (false, s),
        None => return Some(0),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// A blocking command's timeout (float seconds) as an absolute deadline in unix ms, 0 for
/// "forever": Redis's getTimeoutFromObjectOrReply, errors included.
pub fn parse_timeout(s: &[u8], now: u64) -> Result<u64, CmdError> {
    let secs = parse_f64(s).ok_or(CmdError::Static("ERR timeout is not a float or out of range"))?;
    let mut ms = (secs * 1000.0).ceil();
    // Redis parses a long double: "1e-400" is a positive timeout there (1 ms after ceil),
    // where f64 underflows to 0, which would mean "forever".
    if ms == 0.0 && !s.starts_with(b"-") && mantissa_nonzero(s) {
        ms = 1.0;
    }
    if ms > i64::MAX as f64 {
        return Err(CmdError::Static("ERR timeout is out of range"));
    }
    if ms < 0.0 {
        return Err(CmdError::Static("ERR timeout is negative"));
    }
    let ms = ms as u64;
    if ms == 0 {
        return Ok(0);
    }
    if ms > i64::MAX as u64 - now {
        return Err(CmdError::Static("ERR timeout is out of range"));
    }
    Ok(now + ms)
}

/// True when a decimal float's mantissa has a nonzero digit ("1e-400", not "0.0e5").
fn mantissa_nonzero(s: &[u8]) -> bool {
    s.iter()
        .take_while(|&&c| c != b'e' && c != b'E' && c != b'p' && c != b'P')
        .any(|&c| (b'1'..=b'9').contains(&c))
}

/// strtod also accepts hexadecimal floats ("0x1p3", "0x10"); Rust's parser does not.
fn parse_hex_float(text: &str) -> Option<f64> {
    let (neg, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let rest = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X"))?;
    let (mant, exp) = match rest.find(['p', 'P']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int_part, frac_part) = match mant.find('.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int_part.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac_part.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp);
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Args {
        Args::new(v.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect())
    }

    #[test]
    fn timeouts_follow_redis() {
        assert_eq!(parse_timeout(b"0", 1000), Ok(0));
        assert_eq!(parse_timeout(b"0.0001", 1000), Ok(1001));
        assert_eq!(parse_timeout(b"1.5", 1000), Ok(2500));
        assert_eq!(parse_timeout(b"1e-400", 1000), Ok(1001));
        assert_eq!(parse_timeout(b"0.0e5", 1000), Ok(0));
        assert!(parse_timeout(b"-1", 0).unwrap_err().to_string().contains("negative"));
        assert!(parse_timeout(b"abc", 0)
            .unwrap_err()
            .to_string()
            .contains("not a float"));
        assert!(parse_timeout(b"inf", 0)
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        assert!(parse_timeout(b"nan", 0).is_err());
    }

    #[test]
    fn cursor_walks_options() {
        let a = args(&["set", "k", "v", "nx", "EX", "10"]);
        let mut c = a.cursor(3);
        assert!(c.eat("NX"));
        assert!(!c.eat("XX"));
        assert!(c.eat("ex"));
        assert_eq!(c.int().unwrap(), 10);
        assert!(c.is_done());
        assert!(matches!(c.value(), Err(CmdError::Syntax)));
    }

    #[test]
    fn floats_follow_strtod_with_redis_checks() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        assert_eq!(parse_f64(b".5"), Some(0.5));
        assert_eq!(parse_f64(b"0x10"), Some(16.0));
        assert_eq!(parse_f64(b"0x1p3"), Some(8.0));
        for bad in [&b""[..], b" 1", b"1 ", b"nan", b"abc", b"1.5x"] {
            assert_eq!(parse_f64(bad), None, "{:?}", bad);
        }
    }
}
