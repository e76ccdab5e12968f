//! A hash: a listpack while small, then a hash table (`OBJECT ENCODING` listpack / hashtable).
//!
//! The small form is one contiguous allocation of entries, field then value, each a tag
//! byte (holding the length when short) and its bytes; strings that are canonical integers
//! are stored as integers in 1 to 9 bytes, as Redis's listpack does. Unlike a listpack
//! there is no header (the box knows its length, the pair count lives beside it), no end
//! marker and no back-length per entry: a hash is only ever walked forwards. For ten
//! short fields that is 3 bytes per `f0`/`v0` entry where Redis spends 4.
//!
//! Conversion to the hash table ([`Dict`]) is one-way and happens, as in Redis, when an
//! insert would make a field or value longer than `hash-max-listpack-value` or the hash
//! longer than `hash-max-listpack-entries`.

use super::dict::Dict;
use super::value::{itoa_buf, parse_canonical_i64};
use super::EncodingLimits;

/// One field or value as stored: the small form keeps canonical integers as integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

impl Elem<'_> {
    /// Length of the string form.
    pub fn len(&self) -> usize {
        match self {
            Elem::Bytes(b) => b.len(),
            Elem::Int(n) => super::value::int_len(*n),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Elem::Bytes(b) if b.is_empty())
    }

    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            Elem::Bytes(b) => b.to_vec(),
            Elem::Int(n) => itoa_buf::Buf::new().format(*n).to_vec(),
        }
    }

    /// Calls `f` with the string form (integers formatted on the stack).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Elem::Bytes(b) => f(b),
            Elem::Int(n) => f(itoa_buf::Buf::new().format(*n)),
        }
    }

    /// Equality with `bytes`, whose integer reading (`parse_canonical_i64`) is `as_int`.
    #[inline]
    fn matches(&self, bytes: &[u8], as_int: Option<i64>) -> bool {
        match self {
            Elem::Bytes(b) => *b == bytes,
            Elem::Int(n) => as_int == Some(*n),
        }
    }
}

// ---- the packed encoding -------------------------------------------------------------
//
// tag byte            entry
// 0xxxxxxx            integer 0..=127
// 10llllll            string of 0..=63 bytes follows
// 110xxxxx xxxxxxxx   13-bit signed integer
// 1110llll llllllll   string of 64..=4095 bytes follows
// 0xF0 + u32 LE       longer string follows
// 0xF1 + 2 bytes LE   i16
// 0xF2 + 3 bytes LE   24-bit signed integer
// 0xF3 + 4 bytes LE   i32
// 0xF4 + 8 bytes LE   i64

/// Redis's lpSafeToAdd: a listpack never grows past 1 GiB (it converts instead).
const PACK_MAX_BYTES: usize = 1 << 30;

fn int_of(s: &[u8]) -> Option<i64> {
    if s.len() <= 20 {
        parse_canonical_i64(s)
    } else {
        None
    }
}

fn encoded_int_len(v: i64) -> usize {
    match v {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32768..=32767 => 3,
        -8_388_608..=8_388_607 => 4,
        -2_147_483_648..=2_147_483_647 => 5,
        _ => 9,
    }
}

fn encoded_len(s: &[u8]) -> usize {
    match int_of(s) {
        Some(v) => encoded_int_len(v),
        None if s.len() < 64 => 1 + s.len(),
        None if s.len() < 4096 => 2 + s.len(),
        None => 5 + s.len(),
    }
}

/// Writes the encoding of `s` at the start of `out` (which has room for `encoded_len(s)`
/// bytes); returns its length.
fn encode_into(out: &mut [u8], s: &[u8]) -> usize {
    let mut put = |bytes: &[u8]| {
        out[..bytes.len()].copy_from_slice(bytes);
        bytes.len()
    };
    if let Some(v) = int_of(s) {
        return match v {
            0..=127 => put(&[v as u8]),
            -4096..=4095 => {
                let u = (v as u16) & 0x1FFF;
                put(&[0xC0 | (u >> 8) as u8, u as u8])
            }
            -32768..=32767 => {
                let b = (v as i16).to_le_bytes();
                put(&[0xF1, b[0], b[1]])
            }
            -8_388_608..=8_388_607 => {
                let b = (v as i32).to_le_bytes();
                put(&[0xF2, b[0], b[1], b[2]])
            }
            -2_147_483_648..=2_147_483_647 => {
                let b = (v as i32).to_le_bytes();
                put(&[0xF3, b[0], b[1], b[2], b[3]])
            }
            _ => {
                let mut x = [0xF4u8; 9];
                x[1..].copy_from_slice(&v.to_le_bytes());
                put(&x)
            }
        };
    }
    let n = s.len();
    let head = if n < 64 {
        put(&[0x80 | n as u8])
    } else if n < 4096 {
        put(&[0xE0 | (n >> 8) as u8, n as u8])
    } else {
        let b = (n as u32).to_le_bytes();
        put(&[0xF0, b[0], b[1], b[2], b[3]])
    };
    out[head..head + n].copy_from_slice(s);
    head + n
}

#[cfg(test)]
fn encode(out: &mut Vec<u8>, s: &[u8]) {
    let at = out.len();
    out.resize(at + encoded_len(s), 0);
    encode_into(&mut out[at..], s);
}

/// The entry at `pos` and the position after it. `buf` is always well formed: only
/// `encode_into` writes it.
#[inline]
fn decode(buf: &[u8], pos: usize) -> (Elem<'_>, usize) {
    let b = buf[pos];
    let le = |from: usize, n: usize| -> u64 {
        let mut x = [0u8; 8];
        x[..n].copy_from_slice(&buf[from..from + n]);
        u64::from_le_bytes(x)
    };
    if b < 0x80 {
        (Elem::Int(b as i64), pos + 1)
    } else if b & 0xC0 == 0x80 {
        let n = (b & 0x3F) as usize;
        (Elem::Bytes(&buf[pos + 1..pos + 1 + n]), pos + 1 + n)
    } else if b & 0xE0 == 0xC0 {
        let u = (((b & 0x1F) as u16) << 8) | buf[pos + 1] as u16;
        // Sign-extend the 13-bit value.
        (Elem::Int(((u << 3) as i16 >> 3) as i64), pos + 2)
    } else if b & 0xF0 == 0xE0 {
        let n = (((b & 0x0F) as usize) << 8) | buf[pos + 1] as usize;
        (Elem::Bytes(&buf[pos + 2..pos + 2 + n]), pos + 2 + n)
    } else {
        match b {
            0xF0 => {
                let n = le(pos + 1, 4) as usize;
                (Elem::Bytes(&buf[pos + 5..pos + 5 + n]), pos + 5 + n)
            }
            0xF1 => (Elem::Int(le(pos + 1, 2) as u16 as i16 as i64), pos + 3),
            0xF2 => (Elem::Int((((le(pos + 1, 3) as u32) << 8) as i32 >> 8) as i64), pos + 4),
            0xF3 => (Elem::Int(le(pos + 1, 4) as u32 as i32 as i64), pos + 5),
            _ => (Elem::Int(le(pos + 1, 8) as i64), pos + 9),
        }
    }
}

/// The small form: field/value entries back to back in one allocation, after a 2-byte
/// pair count (saturating at `u16::MAX`, past which the pairs are counted by walking, as a
/// listpack does). An empty pack allocates nothing. The count lives in the buffer, not
/// beside it, so a `Hash` is 16 bytes.
#[derive(Clone, Default)]
struct Pack {
    buf: Box<[u8]>,
}

const HDR: usize = 2;

/// Where a field's pair sits in a pack.
struct Slot {
    field: usize,
    value: usize,
    end: usize,
}

impl Pack {
    fn iter(&self) -> PackIter<'_> {
        PackIter {
            buf: &self.buf,
            pos: HDR,
        }
    }

    fn pairs(&self) -> usize {
        if self.buf.is_empty() {
            return 0;
        }
        match u16::from_le_bytes([self.buf[0], self.buf[1]]) {
            u16::MAX => self.iter().count(),
            n => n as usize,
        }
    }

    fn set_pairs(&mut self, n: usize) {
        if n == 0 {
            self.buf = Box::default();
        } else {
            let h = u16::try_from(n).unwrap_or(u16::MAX);
            self.buf[..HDR].copy_from_slice(&h.to_le_bytes());
        }
    }

    fn find(&self, field: &[u8]) -> Option<Slot> {
        let as_int = int_of(field);
        let buf = &self.buf[..];
        let mut pos = HDR;
        while pos < buf.len() {
            let (f, value) = decode(buf, pos);
            let (_, end) = decode(buf, value);
            if f.matches(field, as_int) {
                return Some(Slot { field: pos, value, end });
            }
            pos = end;
        }
        None
    }

    /// Replaces `range` of the buffer with the encoding of `parts`, in place: a resize of
    /// the one allocation (which jemalloc does without moving it when the size class is
    /// unchanged), none when the size is unchanged.
    fn splice(&mut self, range: std::ops::Range<usize>, parts: &[&[u8]]) {
        let new_len: usize = parts.iter().map(|p| encoded_len(p)).sum();
        let old_len = range.len();
        if new_len != old_len {
            let mut v = std::mem::take(&mut self.buf).into_vec();
            let total = v.len();
            if new_len > old_len {
                // Exact, so that `into_boxed_slice` below has nothing to trim.
                v.reserve_exact(new_len - old_len);
                v.resize(total + new_len - old_len, 0);
                v.copy_within(range.end..total, range.start + new_len);
            } else {
                v.copy_within(range.end..total, range.start + new_len);
                v.truncate(total - (old_len - new_len));
            }
            self.buf = v.into_boxed_slice();
        }
        let mut at = range.start;
        for p in parts {
            at += encode_into(&mut self.buf[at..], p);
        }
    }

    /// Sets `field`; true if it was new.
    fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        match self.find(field) {
            Some(s) => {
                self.splice(s.value..s.end, &[value]);
                false
            }
            None => {
                let n = self.pairs();
                if self.buf.is_empty() {
                    self.buf = Box::new([0u8; HDR]);
                }
                let end = self.buf.len();
                self.splice(end..end, &[field, value]);
                self.set_pairs(n + 1);
                true
            }
        }
    }

    fn remove(&mut self, field: &[u8]) -> bool {
        match self.find(field) {
            Some(s) => {
                let n = self.pairs();
                self.splice(s.field..s.end, &[]);
                self.set_pairs(n - 1);
                true
            }
            None => false,
        }
    }
}

pub struct PackIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for PackIter<'a> {
    type Item = (Elem<'a>, Elem<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let (f, p) = decode(self.buf, self.pos);
        let (v, p) = decode(self.buf, p);
        self.pos = p;
        Some((f, v))
    }
}

type Table = Dict<Box<[u8]>, Box<[u8]>>;

enum Repr {
    Pack(Pack),
    /// Boxed so that a hash stays 16 bytes (a `Dict` is about 100).
    Table(Box<Table>),
}

/// A hash value; see the module docs.
pub struct Hash {
    repr: Repr,
}

impl Default for Hash {
    fn default() -> Self {
        Hash::new()
    }
}

impl Hash {
    pub fn new() -> Hash {
        Hash {
            repr: Repr::Pack(Pack::default()),
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Pack(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.pairs(),
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn heap_bytes(&self) -> usize {
        self.heap_bytes_sampled(usize::MAX)
    }

    /// The heap bytes, a hash table's fields and values measured on the first `samples`
    /// pairs and extrapolated (MEMORY USAGE).
    pub fn heap_bytes_sampled(&self, samples: usize) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.buf.len(),
            Repr::Table(t) => {
                let pairs = super::extrapolate(t.iter().map(|(k, v)| k.len() + v.len()), samples, t.len());
                std::mem::size_of::<Table>() + t.table_bytes() + pairs
            }
        }
    }

    /// The small form's bytes (for persistence: a 2-byte pair count, then the entries;
    /// empty for an empty hash), `None` once it is a hash table.
    pub fn packed_bytes(&self) -> Option<&[u8]> {
        match &self.repr {
            Repr::Pack(p) => Some(&p.buf),
            Repr::Table(_) => None,
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<Elem<'_>> {
        match &self.repr {
            Repr::Pack(p) => p.find(field).map(|s| decode(&p.buf, s.value).0),
            Repr::Table(t) => t.get(field).map(|v| Elem::Bytes(v)),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        match &self.repr {
            Repr::Pack(p) => p.find(field).is_some(),
            Repr::Table(t) => t.contains_key(field),
        }
    }

    fn convert(&mut self, capacity: usize) {
        if let Repr::Pack(p) = &self.repr {
            let mut t = Table::with_capacity(capacity.max(p.pairs()));
            for (f, v) in p.iter() {
                t.insert(f.to_vec().into(), v.to_vec().into());
            }
            self.repr = Repr::Table(Box::new(t));
        }
    }

    /// Redis's hashTypeTryConversion, before a write of `pairs` field/value pairs: more
    /// pairs than `hash-max-listpack-entries` (counting repeats) or an argument longer
    /// than `hash-max-listpack-value` converts the hash now.
    pub fn prepare_write<'a>(&mut self, pairs: usize, args: impl Iterator<Item = &'a [u8]>, lim: &EncodingLimits) {
        let Repr::Pack(p) = &self.repr else { return };
        if pairs > lim.hash_max_listpack_entries {
            return self.convert(pairs);
        }
        let mut sum = 0usize;
        for a in args {
            if a.len() > lim.hash_max_listpack_value {
                return self.convert(0);
            }
            sum += a.len();
        }
        if p.buf.len() + sum > PACK_MAX_BYTES {
            self.convert(0);
        }
    }

    /// Sets `field` to `value`; true if the field is new. Converts as Redis's hashTypeSet:
    /// before, for a field or value too long for the small form; after, when the hash
    /// outgrew it.
    pub fn set(&mut self, field: &[u8], value: &[u8], lim: &EncodingLimits) -> bool {
        if let Repr::Pack(p) = &self.repr {
            if field.len() > lim.hash_max_listpack_value
                || value.len() > lim.hash_max_listpack_value
                || p.buf.len() + field.len() + value.len() > PACK_MAX_BYTES
            {
                self.convert(0);
            }
        }
        let (new, outgrown) = match &mut self.repr {
            Repr::Pack(p) => {
                let new = p.set(field, value);
                (new, new && p.pairs() > lim.hash_max_listpack_entries)
            }
            Repr::Table(t) => {
                let (slot, new) = t.get_or_insert_with(field, || field.into(), Box::default);
                *slot = value.into();
                (new, false)
            }
        };
        if outgrown {
            self.convert(0);
        }
        new
    }

    /// Removes `field`; true if it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Pack(p) => p.remove(field),
            Repr::Table(t) => {
                let found = t.remove(field).is_some();
                if found {
                    t.shrink_if_sparse();
                }
                found
            }
        }
    }

    /// Every field and its value, in storage order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Pack(p) => Iter::Pack(p.iter()),
            Repr::Table(t) => Iter::Table(t.iter()),
        }
    }

    /// One HSCAN step from `cursor`: the small form reports everything and cursor 0; the
    /// table follows Redis's dictScan. Returns the next cursor.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(Elem<'_>, Elem<'_>)) -> u64 {
        match &self.repr {
            Repr::Pack(p) => {
                for (k, v) in p.iter() {
                    f(k, v);
                }
                0
            }
            Repr::Table(t) => t.scan(cursor, |k, v| f(Elem::Bytes(k), Elem::Bytes(v))),
        }
    }

    /// A random pair (None if empty).
    pub fn random(&self, rand: &mut impl FnMut() -> u64) -> Option<(Elem<'_>, Elem<'_>)> {
        match &self.repr {
            Repr::Pack(p) => {
                let n = p.pairs();
                if n == 0 {
                    return None;
                }
                p.iter().nth((rand() % n as u64) as usize)
            }
            Repr::Table(t) => t.random_entry(rand).map(|(k, v)| (Elem::Bytes(k), Elem::Bytes(v))),
        }
    }

    /// True for the small form, where random access means a walk: callers collect pairs
    /// instead of asking for them one by one.
    pub fn is_packed(&self) -> bool {
        matches!(self.repr, Repr::Pack(_))
    }
}

/// Iterator over a hash's pairs.
pub enum Iter<'a> {
    Pack(PackIter<'a>),
    Table(super::dict::Iter<'a, Box<[u8]>, Box<[u8]>>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (Elem<'a>, Elem<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Pack(p) => p.next(),
            Iter::Table(t) => t.next().map(|(k, v)| (Elem::Bytes(k), Elem::Bytes(v))),
        }
    }
}

impl Clone for Hash {
    fn clone(&self) -> Self {
        match &self.repr {
            Repr::Pack(p) => Hash {
                repr: Repr::Pack(p.clone()),
            },
            Repr::Table(t) => {
                let mut c = Table::with_capacity(t.len());
                for (k, v) in t.iter() {
                    c.insert(k.clone(), v.clone());
                }
                Hash {
                    repr: Repr::Table(Box::new(c)),
                }
            }
        }
    }
}

/// Equal contents, whatever the encodings and orders.
impl PartialEq for Hash {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self.iter().all(|(f, v)| {
                f.with_bytes(|f| other.get(f))
                    .is_some_and(|ov| ov.to_vec() == v.to_vec())
            })
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in self.iter() {
            m.entry(
                &String::from_utf8_lossy(&k.to_vec()),
                &String::from_utf8_lossy(&v.to_vec()),
            );
        }
        m.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn lim() -> EncodingLimits {
        EncodingLimits::default()
    }

    fn pairs(h: &Hash) -> BTreeMap<Vec<u8>, Vec<u8>> {
        h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn sizes_stay_small() {
        use std::mem::size_of;
        // 16, not just the 24 the brief allows: with every collection at 16 bytes a Value
        // is 24 and a keyspace Entry 32 (see docs/benchmarks.md, memory).
        assert!(size_of::<Hash>() <= 16, "{}", size_of::<Hash>());
        eprintln!(
            "Hash {} Str {} Value {} Entry {} Box<[u8]> {}",
            size_of::<Hash>(),
            size_of::<crate::store::Str>(),
            size_of::<crate::store::Value>(),
            size_of::<crate::store::Entry>(),
            size_of::<Box<[u8]>>()
        );
    }

    #[test]
    fn integers_round_trip_compactly() {
        for v in [
            0i64,
            1,
            127,
            128,
            -1,
            -4096,
            4095,
            4096,
            -4097,
            32767,
            -32768,
            32768,
            8_388_607,
            -8_388_608,
            8_388_608,
            i32::MAX as i64,
            i32::MIN as i64,
            i32::MAX as i64 + 1,
            i64::MAX,
            i64::MIN,
        ] {
            let s = v.to_string();
            let mut out = vec![];
            encode(&mut out, s.as_bytes());
            assert_eq!(out.len(), encoded_len(s.as_bytes()), "{v}");
            assert_eq!(decode(&out, 0), (Elem::Int(v), out.len()), "{v}");
        }
        // Non-canonical forms stay strings.
        for s in ["01", "-0", "+1", " 1", "1.0", "99999999999999999999"] {
            let mut out = vec![];
            encode(&mut out, s.as_bytes());
            assert_eq!(decode(&out, 0).0, Elem::Bytes(s.as_bytes()));
        }
    }

    #[test]
    fn strings_of_every_length_class() {
        for n in [0usize, 1, 63, 64, 4095, 4096, 70000] {
            let s = vec![b'x'; n];
            let mut out = vec![];
            encode(&mut out, &s);
            assert_eq!(out.len(), encoded_len(&s));
            assert_eq!(decode(&out, 0), (Elem::Bytes(&s[..]), out.len()));
        }
    }

    #[test]
    fn ten_short_fields_fit_one_small_allocation() {
        let mut h = Hash::new();
        for i in 0..10 {
            h.set(format!("f{i}").as_bytes(), format!("v{i}").as_bytes(), &lim());
        }
        assert_eq!(h.encoding(), "listpack");
        assert_eq!(h.packed_bytes().unwrap().len(), 62);
    }

    #[test]
    fn saturated_pair_count_is_walked() {
        let mut p = Pack::default();
        for f in ["a", "b", "c"] {
            p.set(f.as_bytes(), b"1");
        }
        assert_eq!(p.pairs(), 3);
        p.buf[..HDR].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(p.pairs(), 3);
        p.set_pairs(70_000);
        assert_eq!(&p.buf[..HDR], &u16::MAX.to_le_bytes());
        assert!(p.remove(b"b"));
        assert_eq!(p.pairs(), 2);
    }

    #[test]
    fn set_get_remove() {
        let mut h = Hash::new();
        assert!(h.set(b"a", b"1", &lim()));
        assert!(!h.set(b"a", b"hello", &lim()));
        assert!(h.set(b"12", b"-7", &lim()));
        assert_eq!(h.get(b"a"), Some(Elem::Bytes(b"hello")));
        assert_eq!(h.get(b"12"), Some(Elem::Int(-7)));
        assert_eq!(h.get(b"012"), None);
        assert_eq!(h.len(), 2);
        assert!(h.remove(b"a"));
        assert!(!h.remove(b"a"));
        assert_eq!(h.len(), 1);
        assert!(h.remove(b"12"));
        assert!(h.is_empty());
        assert_eq!(h.packed_bytes().unwrap().len(), 0);
    }

    #[test]
    fn converts_at_thresholds() {
        let l = EncodingLimits {
            hash_max_listpack_entries: 4,
            hash_max_listpack_value: 8,
            ..EncodingLimits::default()
        };
        let mut h = Hash::new();
        for i in 0..4 {
            h.set(format!("f{i}").as_bytes(), b"v", &l);
        }
        assert_eq!(h.encoding(), "listpack");
        h.set(b"f0", b"12345678", &l);
        assert_eq!(h.encoding(), "listpack");
        h.set(b"f4", b"v", &l);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 5);
        assert_eq!(h.get(b"f0"), Some(Elem::Bytes(b"12345678")));

        let mut h = Hash::new();
        h.set(b"f", b"123456789", &l);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = Hash::new();
        h.set(b"123456789", b"v", &l);
        assert_eq!(h.encoding(), "hashtable");

        // Conversion never goes back.
        h.remove(b"123456789");
        h.set(b"a", b"b", &l);
        assert_eq!(h.encoding(), "hashtable");

        let mut h = Hash::new();
        let args: Vec<&[u8]> = vec![b"a", b"1", b"a", b"2", b"a", b"3", b"a", b"4", b"a", b"5"];
        h.prepare_write(5, args.iter().copied(), &l);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = Hash::new();
        h.prepare_write(1, [&b"a"[..], &b"123456789"[..]].into_iter(), &l);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = Hash::new();
        h.prepare_write(4, [&b"a"[..], &b"12345678"[..]].into_iter(), &l);
        assert_eq!(h.encoding(), "listpack");
    }

    #[test]
    fn scan_of_a_table_sees_every_field_once() {
        let mut h = Hash::new();
        for i in 0..2000 {
            h.set(format!("field:{i}").as_bytes(), b"v", &lim());
        }
        assert_eq!(h.encoding(), "hashtable");
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        loop {
            cursor = h.scan(cursor, |f, _| {
                seen.insert(f.to_vec());
            });
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 2000);
    }

    #[test]
    fn clone_eq_random() {
        let mut a = Hash::new();
        let mut b = Hash::new();
        for i in 0..600 {
            a.set(format!("{i}").as_bytes(), format!("{}", i * 3).as_bytes(), &lim());
        }
        for i in (0..600).rev() {
            b.set(format!("{i}").as_bytes(), format!("{}", i * 3).as_bytes(), &lim());
        }
        assert_eq!(a, b);
        assert_eq!(a.clone(), a);
        b.set(b"0", b"x", &lim());
        assert_ne!(a, b);
        let mut x = 7u64;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (f, v) = a.random(&mut rand).unwrap();
        assert_eq!(a.get(&f.to_vec()), Some(v));
        let mut small = Hash::new();
        assert!(small.random(&mut rand).is_none());
        small.set(b"k", b"v", &lim());
        assert_eq!(small.random(&mut rand), Some((Elem::Bytes(b"k"), Elem::Bytes(b"v"))));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, Vec<u8>),
        Remove(u8),
    }

    fn field(i: u8) -> Vec<u8> {
        // A mix of integer-looking and plain fields, including ones that only look alike.
        match i % 4 {
            0 => format!("{}", i as i64 * 1000 - 50_000).into_bytes(),
            1 => format!("0{i}").into_bytes(),
            2 => vec![b'f'; i as usize % 70],
            _ => format!("k{i}").into_bytes(),
        }
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string().into_bytes()),
            (-5000i64..5000).prop_map(|v| v.to_string().into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..80),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (any::<u8>(), value()).prop_map(|(f, v)| Op::Set(f, v)),
            1 => any::<u8>().prop_map(Op::Remove),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec(op(), 0..300), entries in 1usize..40) {
            let l = EncodingLimits { hash_max_listpack_entries: entries, ..EncodingLimits::default() };
            let mut h = Hash::new();
            let mut model = BTreeMap::new();
            let mut converted = false;
            for op in ops {
                match op {
                    Op::Set(f, v) => {
                        let f = field(f);
                        let new = model.insert(f.clone(), v.clone()).is_none();
                        prop_assert_eq!(h.set(&f, &v, &l), new);
                        if f.len() > l.hash_max_listpack_value || v.len() > l.hash_max_listpack_value || model.len() > entries {
                            converted = true;
                        }
                    }
                    Op::Remove(f) => {
                        let f = field(f);
                        prop_assert_eq!(h.remove(&f), model.remove(&f).is_some());
                    }
                }
                prop_assert_eq!(h.len(), model.len());
                prop_assert_eq!(h.encoding(), if converted { "hashtable" } else { "listpack" });
            }
            prop_assert_eq!(pairs(&h), model.clone());
            for (f, v) in &model {
                prop_assert_eq!(h.get(f).map(|e| e.to_vec()), Some(v.clone()));
                prop_assert_eq!(h.get(f).unwrap().len(), v.len());
            }
        }
    }
}
