//! Value types and their encodings. Strings follow Redis's three encodings so that
//! `OBJECT ENCODING` answers what Redis would: `int` (a canonical integer that fits i64),
//! `embstr` (short, never modified in place) and `raw`.

/// Redis's OBJ_ENCODING_EMBSTR_SIZE_LIMIT.
pub const EMBSTR_LIMIT: usize = 44;

#[derive(Debug, Clone, PartialEq)]
pub enum Str {
    Int(i64),
    Emb(Box<[u8]>),
    Raw(Vec<u8>),
}

impl Str {
    /// A string as SET stores it (Redis's tryObjectEncoding).
    pub fn from_set(bytes: &[u8]) -> Str {
        if bytes.len() <= 20 {
            if let Some(n) = parse_canonical_i64(bytes) {
                return Str::Int(n);
            }
        }
        Str::from_bytes_no_int(bytes)
    }

    /// A string created without integer detection (e.g. INCRBYFLOAT's result, GETRANGE copies).
    pub fn from_bytes_no_int(bytes: &[u8]) -> Str {
        if bytes.len() <= EMBSTR_LIMIT {
            Str::Emb(bytes.into())
        } else {
            Str::Raw(bytes.to_vec())
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Str::Int(_) => "int",
            Str::Emb(_) => "embstr",
            Str::Raw(_) => "raw",
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Str::Int(n) => int_len(*n),
            Str::Emb(b) => b.len(),
            Str::Raw(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, formatting an integer into `scratch` when needed.
    pub fn as_bytes<'a>(&'a self, scratch: &'a mut itoa_buf::Buf) -> &'a [u8] {
        match self {
            Str::Int(n) => scratch.format(*n),
            Str::Emb(b) => b,
            Str::Raw(v) => v,
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = itoa_buf::Buf::new();
        self.as_bytes(&mut buf).to_vec()
    }

    /// The string as an integer, as Redis's getLongLongFromObject: canonical form only.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Str::Int(n) => Some(*n),
            Str::Emb(b) => parse_canonical_i64(b),
            Str::Raw(v) => parse_canonical_i64(v),
        }
    }

    /// A mutable raw buffer (APPEND, SETRANGE make the value `raw`, as in Redis).
    pub fn make_raw(&mut self) -> &mut Vec<u8> {
        if !matches!(self, Str::Raw(_)) {
            *self = Str::Raw(self.to_vec());
        }
        match self {
            Str::Raw(v) => v,
            _ => unreachable!("just converted to raw"),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        match self {
            Str::Int(_) => 0,
            Str::Emb(b) => b.len(),
            Str::Raw(v) => v.capacity(),
        }
    }
}

/// Number of characters of the decimal form of n.
pub fn int_len(n: i64) -> usize {
    let mut buf = itoa_buf::Buf::new();
    buf.format(n).len()
}

/// Redis's string2ll: optional '-', no leading zeros (except "0"), no '+', no spaces, fits i64.
pub fn parse_canonical_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

/// Stack formatting of integers, so replies and effects never allocate for them.
pub mod itoa_buf {
    pub struct Buf {
        bytes: [u8; 20],
    }
    impl Default for Buf {
        fn default() -> Self {
            Self::new()
        }
    }
    impl Buf {
        pub fn new() -> Buf {
            Buf { bytes: [0; 20] }
        }
        pub fn format(&mut self, n: i64) -> &[u8] {
            let mut pos = self.bytes.len();
            let neg = n < 0;
            let mut v = n.unsigned_abs();
            loop {
                pos -= 1;
                self.bytes[pos] = b'0' + (v % 10) as u8;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            if neg {
                pos -= 1;
                self.bytes[pos] = b'-';
            }
            &self.bytes[pos..]
        }
    }
}

/// A stored value. Each variant keeps the encodings Redis reports through `OBJECT ENCODING`,
/// converting to the big form at the thresholds of [`super::EncodingLimits`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Str),
    List(super::list::List),
    Hash(super::hash::Hash),
    Set(super::set::Set),
    ZSet(super::zset::ZSet),
}

impl Value {
    /// The name `TYPE` answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding(),
            Value::List(v) => v.encoding(),
            Value::Hash(v) => v.encoding(),
            Value::Set(v) => v.encoding(),
            Value::ZSet(v) => v.encoding(),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.heap_bytes_sampled(usize::MAX)
    }

    /// The heap bytes, the elements of a big collection measured on `samples` of them and
    /// extrapolated (MEMORY USAGE's SAMPLES; `usize::MAX` measures them all).
    pub fn heap_bytes_sampled(&self, samples: usize) -> usize {
        match self {
            Value::Str(s) => s.heap_bytes(),
            Value::List(v) => v.heap_bytes_sampled(samples),
            Value::Hash(v) => v.heap_bytes_sampled(samples),
            Value::Set(v) => v.heap_bytes_sampled(samples),
            Value::ZSet(v) => v.heap_bytes(),
        }
    }

    /// Elements of a collection (1 for a string): what lazy freeing and `MEMORY USAGE`
    /// sampling weigh.
    pub fn elements(&self) -> usize {
        match self {
            Value::Str(_) => 1,
            Value::List(v) => v.len(),
            Value::Hash(v) => v.len(),
            Value::Set(v) => v.len(),
            Value::ZSet(v) => v.len(),
        }
    }
}

/// Typed access to a value: `Value::as_list` etc. (`None` on another type: WRONGTYPE).
macro_rules! accessors {
    ($($variant:ident, $ty:ty, $get:ident);* $(;)?) => {
        impl Value {
            $(
                pub fn $get(&mut self) -> Option<&mut $ty> {
                    match self {
                        Value::$variant(v) => Some(v),
                        _ => None,
                    }
                }
            )*
        }
    };
}

accessors! {
    Str, Str, as_str;
    List, super::list::List, as_list;
    Hash, super::hash::Hash, as_hash;
    Set, super::set::Set, as_set;
    ZSet, super::zset::ZSet, as_zset;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_integers() {
        assert_eq!(parse_canonical_i64(b"0"), Some(0));
        assert_eq!(parse_canonical_i64(b"-1"), Some(-1));
        assert_eq!(parse_canonical_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_canonical_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"01",
            b"-0",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"1.0",
            b"abc",
        ] {
            assert_eq!(parse_canonical_i64(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn encodings_follow_redis() {
        assert_eq!(Str::from_set(b"123").encoding(), "int");
        assert_eq!(Str::from_set(b"0123").encoding(), "embstr");
        assert_eq!(Str::from_set(&[b'a'; 44]).encoding(), "embstr");
        assert_eq!(Str::from_set(&[b'a'; 45]).encoding(), "raw");
        let mut s = Str::from_set(b"12");
        s.make_raw().extend_from_slice(b"3");
        assert_eq!(s.encoding(), "raw");
        assert_eq!(s.as_i64(), Some(123));
    }

    /// Every key pays for these: the collections keep their small forms behind one pointer so
    /// that `Value` fits 24 bytes and a keyspace entry 32 (a dict node of 64).
    #[test]
    fn sizes() {
        assert_eq!(std::mem::size_of::<Value>(), 24);
        assert_eq!(std::mem::size_of::<crate::store::Entry>(), 32);
    }

    #[test]
    fn itoa() {
        let mut b = itoa_buf::Buf::new();
        assert_eq!(b.format(0), b"0");
        assert_eq!(b.format(i64::MIN), b"-9223372036854775808");
        assert_eq!(b.format(i64::MAX), b"9223372036854775807");
        assert_eq!(int_len(-10), 3);
    }
}
