//! A set, in Redis 7.2's three encodings (`OBJECT ENCODING` names them):
//!
//! * `intset`: every member a canonical integer and at most `set-max-intset-entries` of them.
//!   One allocation: a length header, a width byte (2, 4 or 8), then the integers sorted
//!   ascending at the smallest width that holds them all (Redis's intset.c).
//! * `listpack`: at most `set-max-listpack-entries` members of at most
//!   `set-max-listpack-value` bytes. One allocation of length-prefixed entries in insertion
//!   order; canonical integers are stored as integers (1 to 9 bytes), as Redis's listpack.
//! * `hashtable`: a [`Dict`] of members with no values (Redis's set dict), so SSCAN cursors
//!   keep Redis's guarantee.
//!
//! Conversions follow t_set.c (setTypeAddAux, setTypeCreate, setTypeMaybeConvert): intset
//! to listpack or hashtable, listpack to hashtable, never back, except where a command
//! builds a new set (SPOP's "keep the rest" strategy, SINTERSTORE's maybeConvertToIntset).

use std::alloc::{self, Layout};
use std::fmt;
use std::ptr::NonNull;

use super::dict::Dict;
use super::value::{int_len, itoa_buf, parse_canonical_i64};
use super::EncodingLimits;

/// Redis's listpack safety bound (LISTPACK_MAX_SAFETY_SIZE): a listpack never grows past it.
const LISTPACK_MAX_SAFETY_SIZE: usize = 1 << 30;
/// Intsets are capped well below the 4 GiB a blob can hold (Redis caps them at 2^30
/// entries; 2^28 entries of 8 bytes is already 2 GiB).
const INTSET_MAX_ENTRIES: usize = 1 << 28;

// ---- Blob: one thin allocation ---------------------------------------------------------

/// An owned byte buffer behind a thin pointer: one allocation holding a u32 length and then
/// the bytes. Keeps [`Set`] at 16 bytes and a small intset in one 32-byte jemalloc class.
struct Blob {
    ptr: NonNull<u8>,
}

const BLOB_HDR: usize = 4;

// SAFETY: a Blob uniquely owns its allocation, like a Box<[u8]>.
unsafe impl Send for Blob {}
unsafe impl Sync for Blob {}

impl Blob {
    fn layout(len: usize) -> Layout {
        Layout::from_size_align(BLOB_HDR + len, 4).expect("blob layout")
    }

    /// A blob of `len` zero bytes.
    fn zeroed(len: usize) -> Blob {
        assert!(len <= u32::MAX as usize, "blob too large");
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size (the header).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        let mut b = Blob { ptr };
        b.set_len(len);
        b
    }

    fn from_slice(bytes: &[u8]) -> Blob {
        let mut b = Blob::zeroed(bytes.len());
        b.bytes_mut().copy_from_slice(bytes);
        b
    }

    #[inline]
    fn len(&self) -> usize {
        // SAFETY: the header is always initialised and 4-aligned.
        unsafe { self.ptr.cast::<u32>().as_ptr().read() as usize }
    }

    #[inline]
    fn set_len(&mut self, len: usize) {
        // SAFETY: as in `len`.
        unsafe { self.ptr.cast::<u32>().as_ptr().write(len as u32) }
    }

    #[inline]
    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` initialised bytes follow the header.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(BLOB_HDR), self.len()) }
    }

    #[inline]
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and we hold the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(BLOB_HDR), self.len()) }
    }

    /// Grows or shrinks to `new_len` bytes (new bytes are zero), keeping the prefix.
    fn resize(&mut self, new_len: usize) {
        assert!(new_len <= u32::MAX as usize, "blob too large");
        let old = self.len();
        let old_layout = Self::layout(old);
        let new_size = BLOB_HDR + new_len;
        // SAFETY: ptr was allocated with old_layout; the new size is non-zero.
        let raw = unsafe { alloc::realloc(self.ptr.as_ptr(), old_layout, new_size) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(Self::layout(new_len))
        };
        self.ptr = ptr;
        if new_len > old {
            // SAFETY: the new tail is inside the allocation.
            unsafe { std::ptr::write_bytes(ptr.as_ptr().add(BLOB_HDR + old), 0, new_len - old) };
        }
        self.set_len(new_len);
    }

    fn alloc_size(&self) -> usize {
        BLOB_HDR + self.len()
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.len())) }
    }
}

impl Clone for Blob {
    fn clone(&self) -> Blob {
        Blob::from_slice(self.bytes())
    }
}

// ---- members ---------------------------------------------------------------------------

/// A member as an encoding holds it: integers stay integers until they are replied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Member<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl<'a> Member<'a> {
    /// Classifies client bytes: canonical integers become `Int`, as every encoding stores them.
    #[inline]
    pub fn of(bytes: &'a [u8]) -> Member<'a> {
        match parse_canonical_i64(bytes) {
            Some(n) => Member::Int(n),
            None => Member::Str(bytes),
        }
    }

    /// A string member that is a canonical integer becomes `Int` (hash tables hold every
    /// member as a string; the compact encodings hold integers as integers).
    #[inline]
    pub fn normalized(self) -> Member<'a> {
        match self {
            Member::Str(s) if s.len() <= 20 => Member::of(s),
            m => m,
        }
    }

    /// The length of the member's string form.
    pub fn str_len(&self) -> usize {
        match self {
            Member::Int(n) => int_len(*n),
            Member::Str(s) => s.len(),
        }
    }

    /// The string form, formatting an integer into `buf`.
    pub fn as_bytes<'b>(&'b self, buf: &'b mut itoa_buf::Buf) -> &'b [u8] {
        match self {
            Member::Int(n) => buf.format(*n),
            Member::Str(s) => s,
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = itoa_buf::Buf::new();
        self.as_bytes(&mut buf).to_vec()
    }

    pub fn to_owned(&self) -> Owned {
        match self {
            Member::Int(n) => Owned::Int(*n),
            Member::Str(s) => Owned::Str(s.to_vec().into_boxed_slice()),
        }
    }
}

/// A member taken out of a set (SPOP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owned {
    Int(i64),
    Str(Box<[u8]>),
}

impl Owned {
    pub fn as_member(&self) -> Member<'_> {
        match self {
            Owned::Int(n) => Member::Int(*n),
            Owned::Str(s) => Member::Str(s),
        }
    }
}

// ---- intset ----------------------------------------------------------------------------

/// Sorted distinct integers. Small ones live inside the value itself (no allocation:
/// Redis spends a 32-byte allocation on ten small integers); bigger ones are one
/// allocation at one width (2, 4 or 8 bytes), upgraded when a wider integer arrives, as
/// Redis's intset.c. Both report the `intset` encoding.
#[derive(Clone)]
pub struct IntSet(Repr);

#[derive(Clone)]
enum Repr {
    Small(SmallInts),
    /// Blob bytes: `[width][int; len]`, little-endian.
    Heap(Blob),
}

/// Most members an inline intset holds (each takes at least one byte).
const SMALL_MAX: usize = 14;

/// Up to 14 sorted integers in 14 bytes: the first as a zigzag LEB128 varint, then each
/// gap minus one as a LEB128 varint (so 0..=13 takes one byte per member).
#[derive(Clone, Copy)]
struct SmallInts {
    n: u8,
    data: [u8; SMALL_MAX],
}

fn put_varint(out: &mut [u8; SMALL_MAX], pos: &mut usize, mut v: u64) -> bool {
    loop {
        if *pos >= SMALL_MAX {
            return false;
        }
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out[*pos] = byte;
            *pos += 1;
            return true;
        }
        out[*pos] = byte | 0x80;
        *pos += 1;
    }
}

fn get_varint(data: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = data[*pos];
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

impl SmallInts {
    /// Encodes sorted distinct integers, if they fit.
    fn encode(vals: &[i64]) -> Option<SmallInts> {
        if vals.len() > SMALL_MAX {
            return None;
        }
        let mut s = SmallInts {
            n: vals.len() as u8,
            data: [0; SMALL_MAX],
        };
        let mut pos = 0;
        let mut prev = 0i64;
        for (i, &v) in vals.iter().enumerate() {
            let word = if i == 0 {
                ((v << 1) ^ (v >> 63)) as u64
            } else {
                (v.wrapping_sub(prev) as u64).wrapping_sub(1)
            };
            if !put_varint(&mut s.data, &mut pos, word) {
                return None;
            }
            prev = v;
        }
        Some(s)
    }

    fn decode(&self, out: &mut [i64; SMALL_MAX]) -> usize {
        let n = self.n as usize;
        let mut pos = 0;
        let mut prev = 0i64;
        for (i, slot) in out.iter_mut().enumerate().take(n) {
            let word = get_varint(&self.data, &mut pos);
            let v = if i == 0 {
                ((word >> 1) as i64) ^ -((word & 1) as i64)
            } else {
                prev.wrapping_add(word.wrapping_add(1) as i64)
            };
            *slot = v;
            prev = v;
        }
        n
    }
}

fn width_for(v: i64) -> usize {
    if v >= i16::MIN as i64 && v <= i16::MAX as i64 {
        2
    } else if v >= i32::MIN as i64 && v <= i32::MAX as i64 {
        4
    } else {
        8
    }
}

#[inline]
fn read_int(b: &[u8], w: usize) -> i64 {
    match w {
        2 => i16::from_le_bytes([b[0], b[1]]) as i64,
        4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
        _ => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
    }
}

#[inline]
fn write_int(b: &mut [u8], w: usize, v: i64) {
    b[..w].copy_from_slice(&v.to_le_bytes()[..w]);
}

/// A heap intset of sorted distinct integers.
fn heap_from(vals: &[i64]) -> Blob {
    let w = vals.iter().map(|&v| width_for(v)).max().unwrap_or(2);
    let mut blob = Blob::zeroed(1 + vals.len() * w);
    let b = blob.bytes_mut();
    b[0] = w as u8;
    for (i, &v) in vals.iter().enumerate() {
        write_int(&mut b[1 + i * w..], w, v);
    }
    blob
}

/// The best representation of sorted distinct integers.
fn repr_from(vals: &[i64]) -> Repr {
    match SmallInts::encode(vals) {
        Some(s) => Repr::Small(s),
        None => Repr::Heap(heap_from(vals)),
    }
}

impl IntSet {
    pub fn new() -> IntSet {
        IntSet(Repr::Small(SmallInts {
            n: 0,
            data: [0; SMALL_MAX],
        }))
    }

    /// From sorted distinct integers.
    pub fn from_sorted(vals: &[i64]) -> IntSet {
        IntSet(repr_from(vals))
    }

    #[inline]
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Small(s) => s.n as usize,
            Repr::Heap(b) => (b.len() - 1) / b.bytes()[0] as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> i64 {
        match &self.0 {
            Repr::Small(s) => {
                let mut vals = [0i64; SMALL_MAX];
                s.decode(&mut vals);
                vals[i]
            }
            Repr::Heap(b) => {
                let w = b.bytes()[0] as usize;
                read_int(&b.bytes()[1 + i * w..], w)
            }
        }
    }

    pub fn min(&self) -> Option<i64> {
        (!self.is_empty()).then(|| self.get(0))
    }

    pub fn max(&self) -> Option<i64> {
        (!self.is_empty()).then(|| self.get(self.len() - 1))
    }

    /// Heap form: `Ok(index)` if present, else `Err(insertion index)`.
    fn search(b: &Blob, v: i64) -> Result<usize, usize> {
        let w = b.bytes()[0] as usize;
        let n = (b.len() - 1) / w;
        let at = |i: usize| read_int(&b.bytes()[1 + i * w..], w);
        if n == 0 {
            return Err(0);
        }
        // Appends in ascending order (stores of intsets) stay O(1).
        if v > at(n - 1) {
            return Err(n);
        }
        if v < at(0) {
            return Err(0);
        }
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let x = at(mid);
            if x == v {
                return Ok(mid);
            } else if x < v {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Err(lo)
    }

    pub fn contains(&self, v: i64) -> bool {
        match &self.0 {
            Repr::Small(s) => {
                let mut vals = [0i64; SMALL_MAX];
                let n = s.decode(&mut vals);
                vals[..n].contains(&v)
            }
            Repr::Heap(b) => width_for(v) <= b.bytes()[0] as usize && Self::search(b, v).is_ok(),
        }
    }

    /// Adds `v`; false if it was present.
    pub fn insert(&mut self, v: i64) -> bool {
        match &mut self.0 {
            Repr::Small(s) => {
                let mut vals = [0i64; SMALL_MAX + 1];
                let mut tmp = [0i64; SMALL_MAX];
                let n = s.decode(&mut tmp);
                vals[..n].copy_from_slice(&tmp[..n]);
                let at = match vals[..n].binary_search(&v) {
                    Ok(_) => return false,
                    Err(at) => at,
                };
                vals.copy_within(at..n, at + 1);
                vals[at] = v;
                self.0 = repr_from(&vals[..n + 1]);
                true
            }
            Repr::Heap(b) => {
                let w = b.bytes()[0] as usize;
                let wv = width_for(v);
                if wv > w {
                    // A value wider than all others is smaller or larger than every one.
                    let mut vals: Vec<i64> = self.iter().collect();
                    if v < 0 {
                        vals.insert(0, v);
                    } else {
                        vals.push(v);
                    }
                    self.0 = Repr::Heap(heap_from(&vals));
                    return true;
                }
                match Self::search(b, v) {
                    Ok(_) => false,
                    Err(at) => {
                        let n = (b.len() - 1) / w;
                        b.resize(1 + (n + 1) * w);
                        let bytes = b.bytes_mut();
                        let start = 1 + at * w;
                        bytes.copy_within(start..1 + n * w, start + w);
                        write_int(&mut bytes[start..], w, v);
                        true
                    }
                }
            }
        }
    }

    /// Removes `v`; false if it was absent.
    pub fn remove(&mut self, v: i64) -> bool {
        let at = match &self.0 {
            Repr::Small(s) => {
                let mut vals = [0i64; SMALL_MAX];
                let n = s.decode(&mut vals);
                vals[..n].iter().position(|&x| x == v)
            }
            Repr::Heap(b) => {
                if width_for(v) > b.bytes()[0] as usize {
                    None
                } else {
                    Self::search(b, v).ok()
                }
            }
        };
        match at {
            Some(at) => {
                self.remove_at(at);
                true
            }
            None => false,
        }
    }

    fn remove_at(&mut self, at: usize) {
        let n = self.len();
        if n <= SMALL_MAX + 1 {
            // Small enough to go (back) inline if it fits.
            let mut vals: Vec<i64> = self.iter().collect();
            vals.remove(at);
            self.0 = repr_from(&vals);
            return;
        }
        if let Repr::Heap(b) = &mut self.0 {
            let w = b.bytes()[0] as usize;
            let bytes = b.bytes_mut();
            let start = 1 + at * w;
            bytes.copy_within(start + w..1 + n * w, start);
            b.resize(1 + (n - 1) * w);
        }
    }

    pub fn iter(&self) -> IntIter<'_> {
        match &self.0 {
            Repr::Small(s) => {
                let mut vals = [0i64; SMALL_MAX];
                let n = s.decode(&mut vals);
                IntIter::Small { vals, i: 0, n }
            }
            Repr::Heap(b) => IntIter::Heap {
                bytes: &b.bytes()[1..],
                w: b.bytes()[0] as usize,
            },
        }
    }

    /// Heap bytes (0 when the integers live inline).
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            Repr::Small(_) => 0,
            Repr::Heap(b) => b.alloc_size(),
        }
    }

    #[cfg(test)]
    fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Small(_))
    }

    /// The heap form's width (0 inline).
    #[cfg(test)]
    fn width(&self) -> usize {
        match &self.0 {
            Repr::Small(_) => 0,
            Repr::Heap(b) => b.bytes()[0] as usize,
        }
    }
}

impl Default for IntSet {
    fn default() -> Self {
        IntSet::new()
    }
}

/// The integers of an [`IntSet`], ascending.
pub enum IntIter<'a> {
    Small { vals: [i64; SMALL_MAX], i: usize, n: usize },
    Heap { bytes: &'a [u8], w: usize },
}

impl Iterator for IntIter<'_> {
    type Item = i64;
    #[inline]
    fn next(&mut self) -> Option<i64> {
        match self {
            IntIter::Small { vals, i, n } => {
                if *i >= *n {
                    return None;
                }
                *i += 1;
                Some(vals[*i - 1])
            }
            IntIter::Heap { bytes, w } => {
                if bytes.len() < *w {
                    return None;
                }
                let v = read_int(bytes, *w);
                *bytes = &bytes[*w..];
                Some(v)
            }
        }
    }
}

// ---- listpack --------------------------------------------------------------------------

/// Members in insertion order, each a tagged entry. Blob bytes: `[count: u32][entries]`.
///
/// Entry tags: `0x00..=0x7f` an integer 0..127 in the tag itself; `0x80..=0xbf` a string
/// of up to 63 bytes (length in the tag); `0xc1..=0xc8` a signed integer of 1..8 bytes;
/// `0xe0` a string with a u16 length; `0xe1` a string with a u32 length.
#[derive(Clone)]
pub struct ListPack {
    blob: Blob,
}

const LP_HDR: usize = 4;

/// Decodes the entry at `pos`: the member and the position of the next entry.
#[inline]
fn lp_entry(b: &[u8], pos: usize) -> (Member<'_>, usize) {
    let tag = b[pos];
    match tag {
        0x00..=0x7f => (Member::Int(tag as i64), pos + 1),
        0x80..=0xbf => {
            let len = (tag & 0x3f) as usize;
            (Member::Str(&b[pos + 1..pos + 1 + len]), pos + 1 + len)
        }
        0xc1..=0xc8 => {
            let n = (tag - 0xc0) as usize;
            let mut raw = [0u8; 8];
            raw[..n].copy_from_slice(&b[pos + 1..pos + 1 + n]);
            // Sign-extend from n bytes.
            let shift = 64 - 8 * n as u32;
            let v = ((u64::from_le_bytes(raw) << shift) as i64) >> shift;
            (Member::Int(v), pos + 1 + n)
        }
        0xe0 => {
            let len = u16::from_le_bytes([b[pos + 1], b[pos + 2]]) as usize;
            (Member::Str(&b[pos + 3..pos + 3 + len]), pos + 3 + len)
        }
        _ => {
            let len = u32::from_le_bytes([b[pos + 1], b[pos + 2], b[pos + 3], b[pos + 4]]) as usize;
            (Member::Str(&b[pos + 5..pos + 5 + len]), pos + 5 + len)
        }
    }
}

/// Bytes of `m`'s entry.
fn lp_entry_size(m: Member<'_>) -> usize {
    match m {
        Member::Int(v) if (0..128).contains(&v) => 1,
        Member::Int(v) => 1 + int_bytes(v),
        Member::Str(s) if s.len() < 64 => 1 + s.len(),
        Member::Str(s) if s.len() <= u16::MAX as usize => 3 + s.len(),
        Member::Str(s) => 5 + s.len(),
    }
}

/// Smallest number of bytes holding `v` as a signed little-endian integer.
fn int_bytes(v: i64) -> usize {
    for n in 1..8 {
        let bits = 8 * n as u32;
        let lo = -(1i64 << (bits - 1));
        let hi = (1i64 << (bits - 1)) - 1;
        if v >= lo && v <= hi {
            return n;
        }
    }
    8
}

fn lp_write(out: &mut [u8], m: Member<'_>) {
    match m {
        Member::Int(v) if (0..128).contains(&v) => out[0] = v as u8,
        Member::Int(v) => {
            let n = int_bytes(v);
            out[0] = 0xc0 + n as u8;
            out[1..1 + n].copy_from_slice(&v.to_le_bytes()[..n]);
        }
        Member::Str(s) if s.len() < 64 => {
            out[0] = 0x80 | s.len() as u8;
            out[1..1 + s.len()].copy_from_slice(s);
        }
        Member::Str(s) if s.len() <= u16::MAX as usize => {
            out[0] = 0xe0;
            out[1..3].copy_from_slice(&(s.len() as u16).to_le_bytes());
            out[3..3 + s.len()].copy_from_slice(s);
        }
        Member::Str(s) => {
            out[0] = 0xe1;
            out[1..5].copy_from_slice(&(s.len() as u32).to_le_bytes());
            out[5..5 + s.len()].copy_from_slice(s);
        }
    }
}

impl ListPack {
    pub fn new() -> ListPack {
        ListPack {
            blob: Blob::zeroed(LP_HDR),
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        let b = self.blob.bytes();
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn set_count(&mut self, n: usize) {
        self.blob.bytes_mut()[..4].copy_from_slice(&(n as u32).to_le_bytes());
    }

    /// Total encoded bytes (what Redis's lpBytes bounds).
    pub fn bytes(&self) -> usize {
        self.blob.len()
    }

    pub fn iter(&self) -> LpIter<'_> {
        LpIter {
            b: self.blob.bytes(),
            pos: LP_HDR,
        }
    }

    /// Iterates `(position, member)`.
    fn entries(&self) -> impl Iterator<Item = (usize, Member<'_>)> + '_ {
        let b = self.blob.bytes();
        let mut pos = LP_HDR;
        std::iter::from_fn(move || {
            if pos >= b.len() {
                return None;
            }
            let at = pos;
            let (m, next) = lp_entry(b, pos);
            pos = next;
            Some((at, m))
        })
    }

    /// Position of `m` (compared as stored: integers with integers, strings with strings).
    fn find(&self, m: Member<'_>) -> Option<usize> {
        self.entries().find(|(_, x)| *x == m).map(|(p, _)| p)
    }

    pub fn contains(&self, m: Member<'_>) -> bool {
        self.find(m).is_some()
    }

    pub fn push(&mut self, m: Member<'_>) {
        let old = self.blob.len();
        let size = lp_entry_size(m);
        self.blob.resize(old + size);
        lp_write(&mut self.blob.bytes_mut()[old..], m);
        let n = self.len();
        self.set_count(n + 1);
    }

    fn remove_at(&mut self, pos: usize) {
        let (_, next) = lp_entry(self.blob.bytes(), pos);
        let total = self.blob.len();
        self.blob.bytes_mut().copy_within(next..total, pos);
        self.blob.resize(total - (next - pos));
        let n = self.len();
        self.set_count(n - 1);
    }

    pub fn remove(&mut self, m: Member<'_>) -> bool {
        match self.find(m) {
            Some(pos) => {
                self.remove_at(pos);
                true
            }
            None => false,
        }
    }

    /// The `i`th member and its position.
    fn nth(&self, i: usize) -> (usize, Member<'_>) {
        self.entries().nth(i).expect("listpack index in range")
    }

    /// The encoded entries (after the count), for persistence.
    pub fn raw(&self) -> &[u8] {
        &self.blob.bytes()[LP_HDR..]
    }

    pub fn heap_bytes(&self) -> usize {
        self.blob.alloc_size()
    }
}

impl Default for ListPack {
    fn default() -> Self {
        ListPack::new()
    }
}

pub struct LpIter<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for LpIter<'a> {
    type Item = Member<'a>;
    #[inline]
    fn next(&mut self) -> Option<Member<'a>> {
        if self.pos >= self.b.len() {
            return None;
        }
        let (m, next) = lp_entry(self.b, self.pos);
        self.pos = next;
        Some(m)
    }
}

// ---- the set ---------------------------------------------------------------------------

pub type Table = Dict<Box<[u8]>, ()>;

/// A set value: 16 bytes, the big form boxed.
pub enum Set {
    Int(IntSet),
    Pack(ListPack),
    Hash(Box<Table>),
}

impl Default for Set {
    fn default() -> Self {
        Set::new()
    }
}

fn table_with(n: usize) -> Box<Table> {
    Box::new(Dict::with_capacity(n))
}

fn intset_max(lim: &EncodingLimits) -> usize {
    lim.set_max_intset_entries.min(INTSET_MAX_ENTRIES)
}

impl Set {
    /// An empty intset.
    pub fn new() -> Set {
        Set::Int(IntSet::new())
    }

    pub fn new_listpack() -> Set {
        Set::Pack(ListPack::new())
    }

    /// Redis's setTypeCreate: the encoding for a new set whose first member is `first`
    /// and that is about to receive about `size_hint` members.
    pub fn create(first: &[u8], size_hint: usize, lim: &EncodingLimits) -> Set {
        if parse_canonical_i64(first).is_some() && size_hint <= intset_max(lim) {
            Set::new()
        } else if size_hint <= lim.set_max_listpack_entries {
            Set::new_listpack()
        } else {
            Set::Hash(table_with(size_hint))
        }
    }

    /// Redis's setTypeMaybeConvert: an existing compact set about to receive `size_hint`
    /// members goes to a hash table at once if they cannot all fit.
    pub fn maybe_convert(&mut self, size_hint: usize, lim: &EncodingLimits) {
        let convert = match self {
            Set::Pack(_) => size_hint > lim.set_max_listpack_entries,
            Set::Int(_) => size_hint > intset_max(lim),
            Set::Hash(_) => false,
        };
        if convert {
            self.convert_to_table(size_hint);
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Int(_) => "intset",
            Set::Pack(_) => "listpack",
            Set::Hash(_) => "hashtable",
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Set::Int(s) => s.len(),
            Set::Pack(s) => s.len(),
            Set::Hash(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn heap_bytes(&self) -> usize {
        self.heap_bytes_sampled(16)
    }

    /// The heap bytes, a hash table's members measured on the first `samples` of them and
    /// extrapolated, as Redis's MEMORY USAGE does (O(samples) whatever the size).
    pub fn heap_bytes_sampled(&self, samples: usize) -> usize {
        match self {
            Set::Int(s) => s.heap_bytes(),
            Set::Pack(s) => s.heap_bytes(),
            Set::Hash(d) => {
                let members = super::extrapolate(d.iter().map(|(k, _)| k.len()), samples, d.len());
                std::mem::size_of::<Table>() + d.table_bytes() + members
            }
        }
    }

    /// Converts to a hash table presized for `cap` members.
    fn convert_to_table(&mut self, cap: usize) {
        let mut d = table_with(cap.max(self.len()));
        let mut buf = itoa_buf::Buf::new();
        for m in self.iter() {
            d.insert(m.as_bytes(&mut buf).into(), ());
        }
        *self = Set::Hash(d);
    }

    fn convert_to_listpack(&mut self) {
        let mut lp = ListPack::new();
        for m in self.iter() {
            lp.push(m);
        }
        *self = Set::Pack(lp);
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.contains_classified(Member::of(member))
    }

    /// Membership of a member read from another set (hash tables give integers as strings).
    pub fn contains_member(&self, m: Member<'_>) -> bool {
        self.contains_classified(m.normalized())
    }

    fn contains_classified(&self, m: Member<'_>) -> bool {
        match (self, m) {
            (Set::Int(s), Member::Int(v)) => s.contains(v),
            (Set::Int(_), Member::Str(_)) => false,
            (Set::Pack(lp), m) => lp.contains(m),
            (Set::Hash(d), Member::Str(s)) => d.contains_key(s),
            (Set::Hash(d), Member::Int(v)) => {
                let mut buf = itoa_buf::Buf::new();
                d.contains_key(buf.format(v))
            }
        }
    }

    /// Redis's setTypeAdd: adds `member`, converting the encoding as Redis 7.2 does.
    /// Returns false if it was already a member.
    pub fn add(&mut self, member: &[u8], lim: &EncodingLimits) -> bool {
        self.add_classified(Member::of(member), lim)
    }

    /// `add` for a member read from another set.
    pub fn add_member(&mut self, m: Member<'_>, lim: &EncodingLimits) -> bool {
        self.add_classified(m.normalized(), lim)
    }

    fn add_classified(&mut self, m: Member<'_>, lim: &EncodingLimits) -> bool {
        match self {
            Set::Hash(d) => {
                let mut buf = itoa_buf::Buf::new();
                let bytes = m.as_bytes(&mut buf);
                let (_, inserted) = d.get_or_insert_with(bytes, || bytes.into(), || ());
                inserted
            }
            Set::Pack(lp) => {
                if lp.contains(m) {
                    return false;
                }
                let len = m.str_len();
                if lp.len() < lim.set_max_listpack_entries
                    && len <= lim.set_max_listpack_value
                    && lp.bytes() + lp_entry_size(m) < LISTPACK_MAX_SAFETY_SIZE
                {
                    lp.push(m);
                } else {
                    let n = lp.len();
                    self.convert_to_table(n + 1);
                    self.add_classified(m, lim);
                }
                true
            }
            Set::Int(is) => match m {
                Member::Int(v) => {
                    if !is.insert(v) {
                        return false;
                    }
                    if is.len() > intset_max(lim) {
                        let n = is.len();
                        self.convert_to_table(n);
                    }
                    true
                }
                Member::Str(s) => {
                    // Listpack only if every member, as a string, fits its limits.
                    let n = is.len();
                    let (maxelelen, totsize) = match (is.min(), is.max()) {
                        (Some(lo), Some(hi)) => (
                            int_len(lo).max(int_len(hi)),
                            n * lp_entry_size(Member::Int(lo)).max(lp_entry_size(Member::Int(hi))),
                        ),
                        _ => (0, 0),
                    };
                    if n < lim.set_max_listpack_entries
                        && s.len() <= lim.set_max_listpack_value
                        && maxelelen <= lim.set_max_listpack_value
                        && totsize + s.len() < LISTPACK_MAX_SAFETY_SIZE
                    {
                        self.convert_to_listpack();
                    } else {
                        self.convert_to_table(n + 1);
                    }
                    self.add_classified(m, lim)
                }
            },
        }
    }

    /// Removes `member`; false if it was not there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        self.remove_classified(Member::of(member))
    }

    /// `remove` for a member read from another set.
    pub fn remove_member(&mut self, m: Member<'_>) -> bool {
        self.remove_classified(m.normalized())
    }

    fn remove_classified(&mut self, m: Member<'_>) -> bool {
        match (self, m) {
            (Set::Int(s), Member::Int(v)) => s.remove(v),
            (Set::Int(_), Member::Str(_)) => false,
            (Set::Pack(lp), m) => lp.remove(m),
            (Set::Hash(d), m) => {
                let mut buf = itoa_buf::Buf::new();
                let removed = d.remove(m.as_bytes(&mut buf)).is_some();
                if removed {
                    d.shrink_if_sparse();
                }
                removed
            }
        }
    }

    /// Every member, in the encoding's order (ascending for an intset, insertion order for
    /// a listpack, table order for a hash table).
    pub fn iter(&self) -> Iter<'_> {
        match self {
            Set::Int(s) => Iter::Int(s.iter()),
            Set::Pack(lp) => Iter::Pack(lp.iter()),
            Set::Hash(d) => Iter::Hash(d.iter()),
        }
    }

    /// Redis's setTypeRandomElement: a random member of a non-empty set.
    pub fn random(&self, rand: &mut impl FnMut() -> u64) -> Option<Member<'_>> {
        if self.is_empty() {
            return None;
        }
        match self {
            Set::Int(s) => Some(Member::Int(s.get((rand() % s.len() as u64) as usize))),
            Set::Pack(lp) => Some(lp.nth((rand() % lp.len() as u64) as usize).1),
            Set::Hash(d) => d.random_entry(rand).map(|(k, _)| Member::Str(&k[..])),
        }
    }

    /// The `i`th member in iteration order of a compact set (None for a hash table).
    pub fn nth(&self, i: usize) -> Option<Member<'_>> {
        match self {
            Set::Int(s) => (i < s.len()).then(|| Member::Int(s.get(i))),
            Set::Pack(lp) => (i < lp.len()).then(|| lp.nth(i).1),
            Set::Hash(_) => None,
        }
    }

    /// Redis's setTypePopRandom: removes and returns a random member.
    pub fn pop_random(&mut self, rand: &mut impl FnMut() -> u64) -> Option<Owned> {
        if self.is_empty() {
            return None;
        }
        match self {
            Set::Int(s) => {
                let i = (rand() % s.len() as u64) as usize;
                let v = s.get(i);
                s.remove_at(i);
                Some(Owned::Int(v))
            }
            Set::Pack(lp) => {
                let (pos, m) = lp.nth((rand() % lp.len() as u64) as usize);
                let owned = m.to_owned();
                lp.remove_at(pos);
                Some(owned)
            }
            Set::Hash(d) => {
                let key: Box<[u8]> = d.random_entry(rand)?.0.clone();
                d.remove(&key[..]);
                d.shrink_if_sparse();
                Some(Owned::Str(key))
            }
        }
    }

    /// Redis's maybeConvertToIntset: a set known to hold only integers becomes an intset
    /// if it is small enough.
    pub fn maybe_convert_to_intset(&mut self, lim: &EncodingLimits) {
        if matches!(self, Set::Int(_)) || self.len() > intset_max(lim) {
            return;
        }
        let mut is = IntSet::new();
        for m in self.iter() {
            match m {
                Member::Int(v) => {
                    is.insert(v);
                }
                Member::Str(s) => match parse_canonical_i64(s) {
                    Some(v) => {
                        is.insert(v);
                    }
                    None => return,
                },
            }
        }
        *self = Set::Int(is);
    }

    /// One SSCAN step: a hash table visits the buckets the cursor names and returns the
    /// next cursor; a compact set is visited whole, cursor 0 (as Redis does).
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(Member<'_>)) -> u64 {
        match self {
            Set::Hash(d) => d.scan(cursor, |k, _| f(Member::Str(k))),
            _ => {
                for m in self.iter() {
                    f(m);
                }
                0
            }
        }
    }

    /// The hash table, for cursor-based walks.
    pub fn table(&self) -> Option<&Table> {
        match self {
            Set::Hash(d) => Some(d),
            _ => None,
        }
    }
}

pub enum Iter<'a> {
    Int(IntIter<'a>),
    Pack(LpIter<'a>),
    Hash(super::dict::Iter<'a, Box<[u8]>, ()>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = Member<'a>;
    #[inline]
    fn next(&mut self) -> Option<Member<'a>> {
        match self {
            Iter::Int(it) => it.next().map(Member::Int),
            Iter::Pack(it) => it.next(),
            Iter::Hash(it) => it.next().map(|(k, _)| Member::Str(&k[..])),
        }
    }
}

impl Clone for Set {
    fn clone(&self) -> Set {
        match self {
            Set::Int(s) => Set::Int(s.clone()),
            Set::Pack(lp) => Set::Pack(lp.clone()),
            Set::Hash(d) => {
                let mut c = table_with(d.len());
                for (k, _) in d.iter() {
                    c.insert(k.clone(), ());
                }
                Set::Hash(c)
            }
        }
    }
}

impl PartialEq for Set {
    fn eq(&self, other: &Set) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains_member(m))
    }
}

impl fmt::Debug for Set {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Set[{}]", self.encoding())?;
        let mut l = f.debug_list();
        for m in self.iter() {
            match m {
                Member::Int(v) => l.entry(&v),
                Member::Str(s) => l.entry(&String::from_utf8_lossy(s)),
            };
        }
        l.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn lim() -> EncodingLimits {
        EncodingLimits::default()
    }

    fn members(s: &Set) -> BTreeSet<Vec<u8>> {
        s.iter().map(|m| m.to_vec()).collect()
    }

    fn rng() -> impl FnMut() -> u64 {
        let mut x = 0x9E3779B97F4A7C15u64;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn small_shapes() {
        assert!(std::mem::size_of::<Set>() <= 16);
        assert!(std::mem::size_of::<IntSet>() <= 16);
        // Ten small integers live inside the value: no allocation at all.
        let mut s = Set::new();
        for i in 0..10 {
            s.add(i.to_string().as_bytes(), &lim());
        }
        assert_eq!(s.encoding(), "intset");
        assert_eq!(s.heap_bytes(), 0);
        // Ten integers a few hundred apart still fit inline, sorted.
        let mut is = IntSet::new();
        for v in [250, -3, 17, 120, 200, 0, 1, 64, 127, 100] {
            assert!(is.insert(v));
        }
        assert!(is.is_inline());
        assert_eq!(
            is.iter().collect::<Vec<_>>(),
            vec![-3, 0, 1, 17, 64, 100, 120, 127, 200, 250]
        );
        // Past what fits inline: one allocation of header + width + packed integers.
        for v in 5000..5010 {
            is.insert(v);
        }
        assert!(!is.is_inline());
        assert_eq!(is.heap_bytes(), 4 + 1 + 20 * 2);
        for v in 5000..5010 {
            assert!(is.remove(v));
        }
        assert!(is.is_inline());
        assert_eq!(is.len(), 10);
    }

    #[test]
    fn inline_extremes() {
        let mut is = IntSet::new();
        assert!(is.insert(i64::MAX));
        assert!(is.insert(i64::MIN));
        assert!(is.insert(0));
        assert!(!is.insert(i64::MIN));
        assert_eq!(is.iter().collect::<Vec<_>>(), vec![i64::MIN, 0, i64::MAX]);
        assert!(is.contains(i64::MAX) && is.contains(i64::MIN) && !is.contains(1));
        assert!(is.remove(0));
        assert_eq!(is.iter().collect::<Vec<_>>(), vec![i64::MIN, i64::MAX]);
        assert_eq!((is.min(), is.max()), (Some(i64::MIN), Some(i64::MAX)));
    }

    #[test]
    fn intset_widths_and_order() {
        let mut is = IntSet::new();
        for v in [5, -3, 1000, 0, 7] {
            assert!(is.insert(v));
        }
        assert!(!is.insert(5));
        for v in 100..120 {
            assert!(is.insert(v * 100));
        }
        assert_eq!(is.width(), 2);
        assert!(is.insert(70_000));
        assert_eq!(is.width(), 4);
        assert!(is.insert(i64::MIN));
        assert_eq!(is.width(), 8);
        let mut want = vec![i64::MIN, -3, 0, 5, 7, 1000];
        want.extend((100..120).map(|v| v * 100));
        want.push(70_000);
        assert_eq!(is.iter().collect::<Vec<_>>(), want);
        assert!(is.contains(70_000) && is.contains(i64::MIN) && !is.contains(6));
        assert!(is.remove(0) && !is.remove(0));
        assert_eq!(is.len(), 26);
        assert!(!IntSet::new().contains(i64::MAX));
    }

    #[test]
    fn listpack_round_trips_every_entry_form() {
        let long = vec![b'x'; 70_000];
        let mid = vec![b'y'; 300];
        let mut lp = ListPack::new();
        let ms = [
            Member::Int(0),
            Member::Int(127),
            Member::Int(128),
            Member::Int(-1),
            Member::Int(i64::MIN),
            Member::Int(i64::MAX),
            Member::Int(-129),
            Member::Int(1 << 40),
            Member::Str(b""),
            Member::Str(b"abc"),
            Member::Str(&mid),
            Member::Str(&long),
        ];
        for m in ms {
            lp.push(m);
        }
        assert_eq!(lp.len(), ms.len());
        assert_eq!(lp.iter().collect::<Vec<_>>(), ms.to_vec());
        for m in ms {
            assert!(lp.contains(m));
        }
        assert!(lp.remove(Member::Int(128)));
        assert!(!lp.contains(Member::Int(128)));
        assert_eq!(lp.len(), ms.len() - 1);
        assert!(lp.contains(Member::Str(&long)));
    }

    #[test]
    fn conversions_follow_redis_7_2() {
        let l = lim();
        let mut s = Set::create(b"1", 1, &l);
        assert_eq!(s.encoding(), "intset");
        s.add(b"1", &l);
        s.add(b"2", &l);
        s.add(b"x", &l);
        assert_eq!(s.encoding(), "listpack");
        assert!(s.contains(b"1"), "{s:?}");
        assert!(s.contains(b"x"), "{s:?}");
        assert!(!s.contains(b"01"), "{s:?}");
        for i in 0..125 {
            s.add(format!("m{i}").as_bytes(), &l);
        }
        assert_eq!((s.len(), s.encoding()), (128, "listpack"));
        s.add(b"one-more", &l);
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.contains(b"1") && s.contains(b"m124"));

        // A member too long for a listpack.
        let mut s = Set::create(b"a", 1, &l);
        s.add(&[b'z'; 65], &l);
        assert_eq!(s.encoding(), "hashtable");

        // Intset past set-max-intset-entries goes to a hash table directly.
        let small = EncodingLimits {
            set_max_intset_entries: 3,
            ..l
        };
        let mut s = Set::new();
        for v in ["1", "2", "3"] {
            s.add(v.as_bytes(), &small);
        }
        assert_eq!(s.encoding(), "intset");
        s.add(b"4", &small);
        assert_eq!(s.encoding(), "hashtable");

        // The size hint picks the encoding up front.
        assert_eq!(Set::create(b"1", 513, &l).encoding(), "hashtable");
        assert_eq!(Set::create(b"a", 128, &l).encoding(), "listpack");
        assert_eq!(Set::create(b"a", 129, &l).encoding(), "hashtable");
        let mut s = Set::create(b"a", 1, &l);
        s.add(b"a", &l);
        s.maybe_convert(129, &l);
        assert_eq!(s.encoding(), "hashtable");

        // An intset whose integers are too long for the listpack value limit.
        let tight = EncodingLimits {
            set_max_listpack_value: 3,
            ..l
        };
        let mut s = Set::new();
        s.add(b"12345", &tight);
        s.add(b"ab", &tight);
        assert_eq!(s.encoding(), "hashtable");
    }

    #[test]
    fn hashtable_to_intset_when_only_integers() {
        let l = lim();
        let mut s = Set::create(b"1", 1000, &l);
        assert_eq!(s.encoding(), "hashtable");
        for i in 0..100 {
            s.add(i.to_string().as_bytes(), &l);
        }
        s.maybe_convert_to_intset(&l);
        assert_eq!(s.encoding(), "intset");
        assert_eq!(s.len(), 100);
    }

    #[test]
    fn pop_random_empties_every_encoding() {
        let l = lim();
        let mut r = rng();
        for n in [10usize, 100, 1000] {
            for strings in [false, true] {
                let mut s = Set::new();
                let mut model = BTreeSet::new();
                for i in 0..n {
                    let m = if strings { format!("s{i}") } else { i.to_string() };
                    s.add(m.as_bytes(), &l);
                    model.insert(m.into_bytes());
                }
                while let Some(m) = s.pop_random(&mut r) {
                    assert!(model.remove(&m.as_member().to_vec()));
                }
                assert!(model.is_empty());
                assert!(s.is_empty());
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(String),
        Remove(String),
        Pop,
    }

    fn member() -> impl Strategy<Value = String> {
        prop_oneof![
            (-40i64..40).prop_map(|v| v.to_string()),
            prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(70_000), Just(-5_000_000_000)].prop_map(|v| v.to_string()),
            "[a-c]{0,3}",
            Just("01".to_string()),
            Just("-0".to_string()),
            "[x]{60,70}",
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => member().prop_map(Op::Add),
            2 => member().prop_map(Op::Remove),
            1 => Just(Op::Pop),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_a_set(ops in proptest::collection::vec(op(), 1..200), ie in 1usize..20, le in 1usize..20, lv in 1usize..70) {
            let l = EncodingLimits { set_max_intset_entries: ie, set_max_listpack_entries: le, set_max_listpack_value: lv, ..EncodingLimits::default() };
            let mut s = Set::new();
            let mut model: BTreeSet<Vec<u8>> = BTreeSet::new();
            let mut r = rng();
            for o in ops {
                match o {
                    Op::Add(m) => prop_assert_eq!(s.add(m.as_bytes(), &l), model.insert(m.into_bytes())),
                    Op::Remove(m) => prop_assert_eq!(s.remove(m.as_bytes()), model.remove(m.as_bytes())),
                    Op::Pop => match s.pop_random(&mut r) {
                        Some(m) => prop_assert!(model.remove(&m.as_member().to_vec())),
                        None => prop_assert!(model.is_empty()),
                    },
                }
                prop_assert_eq!(s.len(), model.len());
                prop_assert_eq!(&members(&s), &model);
                match &s {
                    Set::Int(is) => {
                        prop_assert!(is.len() <= ie);
                        let v: Vec<i64> = is.iter().collect();
                        prop_assert!(v.windows(2).all(|w| w[0] < w[1]));
                    }
                    Set::Pack(lp) => {
                        prop_assert!(lp.len() <= le);
                        prop_assert!(lp.iter().all(|m| m.str_len() <= lv));
                    }
                    Set::Hash(_) => {}
                }
                for m in &model {
                    prop_assert!(s.contains(m));
                }
            }
            prop_assert_eq!(s.clone(), s);
        }
    }
}
