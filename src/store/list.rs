//! A list: one packed node while small (`OBJECT ENCODING listpack`), a chain of packed nodes
//! once it grows (`quicklist`), as Redis 7.2 stores lists.
//!
//! A packed node holds its elements in one contiguous buffer, each encoded exactly as a
//! Redis listpack entry (the same integer and string encodings, the same backward length),
//! so that node sizes, and with them the conversion thresholds of `list-max-listpack-size`,
//! are Redis's byte for byte, and persistence can write a node as a listpack blob
//! ([`List::listpacks`]). Unlike a listpack, the buffer keeps free room in front of its
//! first entry (a gap buffer), so pushing at the head is amortized O(1) instead of a move of
//! the whole node.
//!
//! Conversions follow t_list.c's listTypeTryConversion*: before elements are added, a
//! listpack whose size plus the added raw bytes (or count) would exceed the node limit
//! becomes a quicklist ([`List::prepare_add`]); after elements are removed, a quicklist
//! reduced to one node within *half* the limit becomes a listpack again ([`List::shrink`]).
//!
//! `list-compress-depth` is accepted by CONFIG and ignored: nodes are never compressed.

use std::collections::VecDeque;

use thin_vec::ThinVec;

use super::value::parse_canonical_i64;

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// LEFT: index 0.
    Head,
    /// RIGHT: index -1.
    Tail,
}

/// An element as stored: strings that are canonical integers are kept as integers (as
/// listpack does), so two elements are equal exactly when their `Elem`s are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl<'a> Elem<'a> {
    /// How an element given by a client is stored (and compared).
    #[inline]
    pub fn from_bytes(b: &'a [u8]) -> Elem<'a> {
        if b.len() <= 20 {
            if let Some(v) = parse_canonical_i64(b) {
                return Elem::Int(v);
            }
        }
        Elem::Str(b)
    }

    pub fn owned(self) -> Owned {
        match self {
            Elem::Int(v) => Owned::Int(v),
            Elem::Str(s) => Owned::Str(s.to_vec()),
        }
    }

    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Elem::Int(v) => super::value::itoa_buf::Buf::new().format(v).to_vec(),
            Elem::Str(s) => s.to_vec(),
        }
    }
}

/// An element taken out of a list (LMOVE carries it to the destination).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owned {
    Int(i64),
    Str(Vec<u8>),
}

impl Owned {
    pub fn as_elem(&self) -> Elem<'_> {
        match self {
            Owned::Int(v) => Elem::Int(*v),
            Owned::Str(s) => Elem::Str(s),
        }
    }
}

// ---- listpack entry codec -----------------------------------------------------------------

/// Bytes of the backward length that follows an entry of `l` bytes (lpEncodeBacklen's sizes).
#[inline]
fn backlen_len(l: usize) -> usize {
    if l <= 127 {
        1
    } else if l < 16383 {
        2
    } else if l < 2097151 {
        3
    } else if l < 268435455 {
        4
    } else {
        5
    }
}

/// Bytes of an element's encoding and data, without the backward length.
#[inline]
fn enc_len(e: Elem<'_>) -> usize {
    match e {
        Elem::Int(v) => match v {
            0..=127 => 1,
            -4096..=4095 => 2,
            -32768..=32767 => 3,
            -8388608..=8388607 => 4,
            -2147483648..=2147483647 => 5,
            _ => 9,
        },
        Elem::Str(s) => {
            s.len()
                + match s.len() {
                    0..=63 => 1,
                    64..=4095 => 2,
                    _ => 5,
                }
        }
    }
}

/// Bytes an element takes in a packed node.
#[inline]
pub fn entry_len(e: Elem<'_>) -> usize {
    let l = enc_len(e);
    l + backlen_len(l)
}

/// Writes `e` as a listpack entry into `out` (exactly `entry_len(e)` bytes).
fn encode(e: Elem<'_>, out: &mut [u8]) {
    let l = match e {
        Elem::Int(v) => match v {
            0..=127 => {
                out[0] = v as u8;
                1
            }
            -4096..=4095 => {
                let u = (v & 0x1FFF) as u16;
                out[0] = 0xC0 | (u >> 8) as u8;
                out[1] = u as u8;
                2
            }
            -32768..=32767 => {
                out[0] = 0xF1;
                out[1..3].copy_from_slice(&(v as i16).to_le_bytes());
                3
            }
            -8388608..=8388607 => {
                out[0] = 0xF2;
                out[1..4].copy_from_slice(&(v as i32).to_le_bytes()[..3]);
                4
            }
            -2147483648..=2147483647 => {
                out[0] = 0xF3;
                out[1..5].copy_from_slice(&(v as i32).to_le_bytes());
                5
            }
            _ => {
                out[0] = 0xF4;
                out[1..9].copy_from_slice(&v.to_le_bytes());
                9
            }
        },
        Elem::Str(s) => {
            let n = s.len();
            let h = if n < 64 {
                out[0] = 0x80 | n as u8;
                1
            } else if n < 4096 {
                out[0] = 0xE0 | (n >> 8) as u8;
                out[1] = n as u8;
                2
            } else {
                out[0] = 0xF0;
                out[1..5].copy_from_slice(&(n as u32).to_le_bytes());
                5
            };
            out[h..h + n].copy_from_slice(s);
            h + n
        }
    };
    let b = &mut out[l..];
    match backlen_len(l) {
        1 => b[0] = l as u8,
        n => {
            // Most significant group first; every group but the first has the high bit set,
            // so the length reads back from the entry's last byte.
            for (i, byte) in b[..n].iter_mut().enumerate() {
                let shift = 7 * (n - 1 - i);
                let group = ((l >> shift) & 127) as u8;
                *byte = if i == 0 { group } else { group | 128 };
            }
        }
    }
}

/// The entry starting at `p`: its element and its total length.
#[inline]
fn decode(buf: &[u8], p: usize) -> (Elem<'_>, usize) {
    let b0 = buf[p];
    let (e, l) = if b0 < 0x80 {
        (Elem::Int(b0 as i64), 1)
    } else if b0 & 0xC0 == 0x80 {
        let n = (b0 & 0x3F) as usize;
        (Elem::Str(&buf[p + 1..p + 1 + n]), 1 + n)
    } else if b0 & 0xE0 == 0xC0 {
        let u = (((b0 & 0x1F) as i64) << 8) | buf[p + 1] as i64;
        (Elem::Int(if u >= 1 << 12 { u - (1 << 13) } else { u }), 2)
    } else if b0 & 0xF0 == 0xE0 {
        let n = (((b0 & 0x0F) as usize) << 8) | buf[p + 1] as usize;
        (Elem::Str(&buf[p + 2..p + 2 + n]), 2 + n)
    } else {
        match b0 {
            0xF0 => {
                let n = u32::from_le_bytes([buf[p + 1], buf[p + 2], buf[p + 3], buf[p + 4]]) as usize;
                (Elem::Str(&buf[p + 5..p + 5 + n]), 5 + n)
            }
            0xF1 => (Elem::Int(i16::from_le_bytes([buf[p + 1], buf[p + 2]]) as i64), 3),
            0xF2 => {
                let v = i32::from_le_bytes([0, buf[p + 1], buf[p + 2], buf[p + 3]]) >> 8;
                (Elem::Int(v as i64), 4)
            }
            0xF3 => {
                let v = i32::from_le_bytes([buf[p + 1], buf[p + 2], buf[p + 3], buf[p + 4]]);
                (Elem::Int(v as i64), 5)
            }
            _ => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[p + 1..p + 9]);
                (Elem::Int(i64::from_le_bytes(b)), 9)
            }
        }
    };
    (e, l + backlen_len(l))
}

/// The start of the entry that ends (exclusive) at `end`, read from its backward length.
#[inline]
fn prev_start(buf: &[u8], end: usize) -> usize {
    let mut p = end - 1;
    let mut l = 0usize;
    let mut shift = 0;
    loop {
        let b = buf[p];
        l |= ((b & 127) as usize) << shift;
        if b & 128 == 0 {
            return p - l;
        }
        shift += 7;
        p -= 1;
    }
}

// ---- node limits (quicklistNodeLimit / quicklistNodeExceedsLimit) -------------------------------

/// quicklist's SIZE_SAFETY_LIMIT: the byte cap of count-limited nodes.
const SIZE_SAFETY_LIMIT: usize = 8192;
/// A listpack's own bytes: 4 (total size) + 2 (count) + 1 (end marker).
const LP_OVERHEAD: usize = 7;

/// (bytes, count) limits of a node for `list-max-listpack-size` = `fill`.
fn node_limits(fill: i32) -> (usize, usize) {
    if fill >= 0 {
        (usize::MAX, fill.max(1) as usize)
    } else {
        let level = ((fill as i64).unsigned_abs() - 1).min(4);
        (4096 << level, u32::MAX as usize)
    }
}

fn exceeds_limit(fill: i32, bytes: usize, count: usize) -> bool {
    let (size, n) = node_limits(fill);
    if size != usize::MAX {
        bytes > size
    } else {
        bytes > SIZE_SAFETY_LIMIT || count > n
    }
}

/// An element that Redis keeps alone in a "plain" node (isLargeElement).
fn is_large(raw_len: usize, fill: i32) -> bool {
    let (size, _) = node_limits(fill);
    if size == usize::MAX {
        raw_len > SIZE_SAFETY_LIMIT
    } else {
        raw_len > size
    }
}

// ---- packed node ------------------------------------------------------------------------------

/// Header: element count (u32 LE), then the offset of the first entry (u32 LE). Entries run
/// from that offset to the end of the buffer; the bytes between header and first entry are
/// free room for pushes at the head.
const HDR: usize = 8;

/// The buffer is a `ThinVec` (one pointer; length and capacity live in the allocation), so
/// a small list is 16 bytes in the keyspace instead of 24: every key's entry is smaller.
#[derive(Clone)]
struct Node {
    buf: ThinVec<u8>,
}

impl Node {
    fn new() -> Node {
        Node::with_room(0)
    }

    /// An empty node with room for `entries` bytes of entries after its head.
    fn with_room(entries: usize) -> Node {
        let mut buf = ThinVec::with_capacity(HDR + entries);
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&(HDR as u32).to_le_bytes());
        Node { buf }
    }

    #[inline]
    fn count(&self) -> usize {
        u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize
    }

    #[inline]
    fn set_count(&mut self, n: usize) {
        self.buf[..4].copy_from_slice(&(n as u32).to_le_bytes());
    }

    #[inline]
    fn head(&self) -> usize {
        u32::from_le_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize
    }

    #[inline]
    fn set_head(&mut self, h: usize) {
        self.buf[4..8].copy_from_slice(&(h as u32).to_le_bytes());
    }

    #[inline]
    fn end(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    fn data_len(&self) -> usize {
        self.buf.len() - self.head()
    }

    /// The size this node would have as a listpack (lpBytes).
    #[inline]
    fn lp_bytes(&self) -> usize {
        LP_OVERHEAD + self.data_len()
    }

    fn push_back(&mut self, e: Elem<'_>) {
        let n = entry_len(e);
        let (head, len) = (self.head(), self.buf.len());
        // Room freed at the front by pops is reused before the buffer grows.
        if len + n > self.buf.capacity() && head - HDR >= n + self.data_len() / 2 {
            self.buf.copy_within(head..len, HDR);
            self.buf.truncate(HDR + len - head);
            self.set_head(HDR);
        }
        let at = self.buf.len();
        self.grow(n);
        self.buf.resize(at + n, 0);
        encode(e, &mut self.buf[at..]);
        let c = self.count();
        self.set_count(c + 1);
    }

    fn push_front(&mut self, e: Elem<'_>) {
        let n = entry_len(e);
        if self.head() - HDR < n {
            // Free room in proportion to the data, so that repeated pushes move it rarely.
            self.open_front(n + self.data_len() / 4);
        }
        let at = self.head() - n;
        encode(e, &mut self.buf[at..at + n]);
        self.set_head(at);
        let c = self.count();
        self.set_count(c + 1);
    }

    /// Makes room for `n` more bytes at the end. The buffer grows by a quarter of its
    /// entries at least (amortized O(1) pushes), not by doubling as a Vec would: a listpack
    /// reallocates to the exact size, and memory is compared with Redis's.
    #[inline]
    fn grow(&mut self, n: usize) {
        let spare = self.buf.capacity() - self.buf.len();
        if spare < n {
            self.buf.reserve_exact(n.max(self.data_len() / 4).max(16));
        }
    }

    /// Makes at least `room` free bytes in front of the first entry.
    fn open_front(&mut self, room: usize) {
        let (head, len) = (self.head(), self.buf.len());
        let new_head = HDR + room;
        if new_head > head {
            let extra = new_head - head;
            self.grow(extra);
            self.buf.resize(len + extra, 0);
            self.buf.copy_within(head..len, new_head);
            self.set_head(new_head);
        }
    }

    #[inline]
    fn first(&self) -> Option<(Elem<'_>, usize)> {
        if self.count() == 0 {
            return None;
        }
        Some(decode(&self.buf, self.head()))
    }

    #[inline]
    fn last(&self) -> Option<(Elem<'_>, usize)> {
        if self.count() == 0 {
            return None;
        }
        let start = prev_start(&self.buf, self.end());
        let (e, n) = decode(&self.buf, start);
        Some((e, n))
    }

    /// Removes the first `n_bytes` of entries, which hold `n` elements.
    fn drop_front(&mut self, n_bytes: usize, n: usize) {
        let h = self.head();
        self.set_head(h + n_bytes);
        let c = self.count();
        self.set_count(c - n);
        if c == n {
            self.buf.truncate(HDR);
            self.set_head(HDR);
        }
    }

    /// Removes the last `n_bytes` of entries, which hold `n` elements.
    fn drop_back(&mut self, n_bytes: usize, n: usize) {
        let len = self.buf.len();
        self.buf.truncate(len - n_bytes);
        let c = self.count();
        self.set_count(c - n);
    }

    /// Byte offset of the entry at `index` (< count), walking from the nearer end.
    fn offset_of(&self, index: usize) -> usize {
        let count = self.count();
        if index <= count / 2 {
            let mut p = self.head();
            for _ in 0..index {
                p += decode(&self.buf, p).1;
            }
            p
        } else {
            let mut p = self.end();
            for _ in index..count {
                p = prev_start(&self.buf, p);
            }
            p
        }
    }

    /// Removes `n` entries occupying bytes `from..to`.
    fn remove_bytes(&mut self, from: usize, to: usize, n: usize) {
        if from == self.head() {
            self.drop_front(to - from, n);
        } else if to == self.end() {
            self.drop_back(to - from, n);
        } else {
            self.buf.drain(from..to);
            let c = self.count();
            self.set_count(c - n);
        }
    }

    /// Inserts `e` as an entry at byte offset `at` (an entry boundary).
    fn insert_at(&mut self, at: usize, e: Elem<'_>) {
        if at == self.head() {
            return self.push_front(e);
        }
        if at == self.end() {
            return self.push_back(e);
        }
        let n = entry_len(e);
        self.buf.splice(at..at, std::iter::repeat_n(0u8, n));
        encode(e, &mut self.buf[at..at + n]);
        let c = self.count();
        self.set_count(c + 1);
    }

    /// Replaces the entry at byte offset `at` (of `old_len` bytes) by `e`.
    fn replace_at(&mut self, at: usize, old_len: usize, e: Elem<'_>) {
        let n = entry_len(e);
        if n != old_len {
            self.buf.splice(at..at + old_len, std::iter::repeat_n(0u8, n));
        }
        encode(e, &mut self.buf[at..at + n]);
    }

    /// Gives back memory left by removals: a buffer much bigger than its entries is
    /// reallocated to fit them.
    fn compact(&mut self) {
        let data = self.data_len();
        if self.buf.capacity() > 2 * (HDR + data) + 64 {
            let mut buf = ThinVec::with_capacity(HDR + data + data / 8);
            buf.extend_from_slice(&self.buf[..4]);
            buf.extend_from_slice(&(HDR as u32).to_le_bytes());
            buf.extend_from_slice(&self.buf[self.head()..]);
            self.buf = buf;
        }
    }

    /// Removes the entries equal to `needle`, at most `limit` of them (0 = all), scanning
    /// from the head or from the tail. Returns how many were removed.
    fn remove_matching(&mut self, needle: Elem<'_>, limit: usize, from_tail: bool) -> usize {
        let (head, end) = (self.head(), self.end());
        let mut removed = 0;
        if !from_tail {
            let (mut r, mut w) = (head, head);
            while r < end {
                let (e, n) = decode(&self.buf, r);
                if (limit == 0 || removed < limit) && e == needle {
                    removed += 1;
                } else {
                    if w != r {
                        self.buf.copy_within(r..r + n, w);
                    }
                    w += n;
                }
                r += n;
            }
            self.buf.truncate(w);
        } else {
            let (mut r, mut w) = (end, end);
            while r > head {
                let s = prev_start(&self.buf, r);
                let n = r - s;
                if (limit == 0 || removed < limit) && decode(&self.buf, s).0 == needle {
                    removed += 1;
                } else {
                    if w != r {
                        self.buf.copy_within(s..r, w - n);
                    }
                    w -= n;
                }
                r = s;
            }
            self.set_head(w);
        }
        if removed > 0 {
            let c = self.count();
            self.set_count(c - removed);
        }
        removed
    }

    /// The node as a Redis listpack blob.
    fn to_listpack(&self) -> Vec<u8> {
        let total = self.lp_bytes();
        let mut lp = Vec::with_capacity(total);
        lp.extend_from_slice(&(total as u32).to_le_bytes());
        lp.extend_from_slice(&(self.count().min(65535) as u16).to_le_bytes());
        lp.extend_from_slice(&self.buf[self.head()..]);
        lp.push(0xFF);
        lp
    }

    fn iter(&self) -> NodeIter<'_> {
        NodeIter {
            buf: &self.buf,
            pos: self.head(),
        }
    }
}

struct NodeIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for NodeIter<'a> {
    type Item = (usize, Elem<'a>, usize);
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let at = self.pos;
        let (e, n) = decode(self.buf, at);
        self.pos += n;
        Some((at, e, n))
    }
}

// ---- the list -----------------------------------------------------------------------------------

/// The big form: nodes with their total element count. Nodes are never empty.
#[derive(Clone)]
struct Quick {
    nodes: VecDeque<Node>,
    count: usize,
}

impl Quick {
    /// The node holding element `index` (< count) and the index within it.
    fn locate(&self, index: usize) -> (usize, usize) {
        if index < self.count / 2 {
            let mut i = index;
            for (ni, n) in self.nodes.iter().enumerate() {
                if i < n.count() {
                    return (ni, i);
                }
                i -= n.count();
            }
        } else {
            let mut from_end = self.count - index; // >= 1
            for (ni, n) in self.nodes.iter().enumerate().rev() {
                if from_end <= n.count() {
                    return (ni, n.count() - from_end);
                }
                from_end -= n.count();
            }
        }
        unreachable!("index within the list")
    }

    /// Whether `e` (raw length `raw`) may go into `n` (_quicklistNodeAllowInsert).
    fn allows_insert(n: &Node, e: Elem<'_>, raw: usize, fill: i32) -> bool {
        !is_large(raw, fill) && !exceeds_limit(fill, n.lp_bytes() + entry_len(e), n.count() + 1)
    }

    /// A node of `src`'s entries `range` (by index).
    fn node_of(src: &Node, range: std::ops::Range<usize>) -> Node {
        let mut out = Node::new();
        for (i, (at, _, n)) in src.iter().enumerate() {
            if range.contains(&i) {
                out.buf.extend_from_slice(&src.buf[at..at + n]);
                let c = out.count();
                out.set_count(c + 1);
            }
        }
        out
    }

    /// LINSERT of `e` before or after entry `idx` of node `ni`, laid out as Redis 7.0's
    /// _quicklistInsert does: into the node if it has room; else into the neighbour on that
    /// side if the pivot is at the node's edge and the neighbour has room; else a new node
    /// there if the neighbour is full too; else the node is split at the pivot (the new
    /// element joins the part on its side) and the pieces merge with their neighbours
    /// where they fit (_quicklistMergeNodes).
    fn insert_at_pivot(&mut self, ni: usize, idx: usize, after: bool, e: Elem<'_>, fill: i32) {
        let raw = match e {
            Elem::Str(s) => s.len(),
            Elem::Int(_) => 0,
        };
        self.count += 1;
        let node = &self.nodes[ni];
        if Self::allows_insert(node, e, raw, fill) {
            let at = node.iter().nth(idx).map(|(at, _, n)| if after { at + n } else { at });
            let at = at.expect("pivot in node");
            self.nodes[ni].insert_at(at, e);
            return;
        }
        let count = node.count();
        let at_tail = after && idx + 1 == count;
        let at_head = !after && idx == 0;
        let neighbour = if at_tail {
            Some(ni + 1).filter(|&j| j < self.nodes.len())
        } else if at_head {
            ni.checked_sub(1)
        } else {
            None
        };
        if let Some(j) = neighbour {
            if Self::allows_insert(&self.nodes[j], e, raw, fill) {
                if after {
                    self.nodes[j].push_front(e);
                } else {
                    self.nodes[j].push_back(e);
                }
            } else {
                let mut n = Node::new();
                n.push_back(e);
                self.nodes.insert(if after { ni + 1 } else { ni }, n);
            }
            return;
        }
        // Split: the node keeps the pivot's side, the new node the rest plus `e`.
        let node = self.nodes.remove(ni).expect("node exists");
        let (mut center, other) = if after {
            let mut new = Self::node_of(&node, idx + 1..count);
            new.push_front(e);
            (ni, [Self::node_of(&node, 0..idx + 1), new])
        } else {
            let mut new = Self::node_of(&node, 0..idx);
            new.push_back(e);
            (ni + 1, [new, Self::node_of(&node, idx..count)])
        };
        for (k, n) in other.into_iter().enumerate() {
            self.nodes.insert(ni + k, n);
        }
        // _quicklistMergeNodes around the node that kept the pivot.
        if center >= 2 && self.merge_allowed(center - 2, center - 1, fill) {
            self.merge(center - 2);
            center -= 1;
        }
        if center + 2 < self.nodes.len() && self.merge_allowed(center + 1, center + 2, fill) {
            self.merge(center + 1);
        }
        let target = if center >= 1 && self.merge_allowed(center - 1, center, fill) {
            self.merge(center - 1);
            center - 1
        } else {
            center
        };
        if target + 1 < self.nodes.len() && self.merge_allowed(target, target + 1, fill) {
            self.merge(target);
        }
    }

    /// _quicklistNodeAllowMerge: nodes `a` and `b` fit in one (one listpack header less).
    fn merge_allowed(&self, a: usize, b: usize, fill: i32) -> bool {
        let (x, y) = (&self.nodes[a], &self.nodes[b]);
        !exceeds_limit(fill, x.lp_bytes() + y.lp_bytes() - LP_OVERHEAD, x.count() + y.count())
    }

    /// Appends node `a + 1` to node `a`.
    fn merge(&mut self, a: usize) {
        let b = self.nodes.remove(a + 1).expect("node exists");
        let x = &mut self.nodes[a];
        for (at, _, n) in b.iter() {
            x.buf.extend_from_slice(&b.buf[at..at + n]);
        }
        let c = x.count() + b.count();
        x.set_count(c);
    }

    /// Splits node `ni` into nodes within the limit (an oversized element stays alone).
    fn split_if_needed(&mut self, ni: usize, fill: i32) {
        let node = &self.nodes[ni];
        if !exceeds_limit(fill, node.lp_bytes(), node.count()) || node.count() <= 1 {
            return;
        }
        let node = self.nodes.remove(ni).expect("node exists");
        let mut pieces: Vec<Node> = vec![];
        let mut cur = Node::new();
        for (at, _, n) in node.iter() {
            if cur.count() > 0 && exceeds_limit(fill, cur.lp_bytes() + n, cur.count() + 1) {
                pieces.push(std::mem::replace(&mut cur, Node::new()));
            }
            cur.buf.extend_from_slice(&node.buf[at..at + n]);
            let c = cur.count();
            cur.set_count(c + 1);
        }
        pieces.push(cur);
        for (k, p) in pieces.into_iter().enumerate() {
            self.nodes.insert(ni + k, p);
        }
    }
}

#[derive(Clone)]
enum Repr {
    /// One packed node (`listpack`).
    Pack(Node),
    /// A chain of packed nodes (`quicklist`).
    Quick(Box<Quick>),
}

#[derive(Clone)]
pub struct List {
    repr: Repr,
}

impl Default for List {
    fn default() -> Self {
        List::new()
    }
}

impl List {
    pub fn new() -> List {
        List {
            repr: Repr::Pack(Node::new()),
        }
    }

    /// A list of `items`, encoded as Redis encodes a list built in one go (SORT ... STORE,
    /// RESTORE): a listpack if it fits in one node.
    pub fn from_items<'a>(items: impl IntoIterator<Item = &'a [u8]>, fill: i32) -> List {
        let mut l = List::new();
        for it in items {
            l.prepare_add(it.len(), 1, fill);
            l.push(End::Tail, Elem::from_bytes(it), fill);
        }
        l
    }

    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Pack(_) => "listpack",
            Repr::Quick(_) => "quicklist",
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pack(n) => n.count(),
            Repr::Quick(q) => q.count,
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn heap_bytes(&self) -> usize {
        self.heap_bytes_sampled(usize::MAX)
    }

    /// The heap bytes, a quicklist's nodes measured on the first `samples` of them and
    /// extrapolated, as Redis's MEMORY USAGE samples quicklist nodes.
    pub fn heap_bytes_sampled(&self, samples: usize) -> usize {
        match &self.repr {
            Repr::Pack(n) => n.buf.capacity(),
            Repr::Quick(q) => {
                std::mem::size_of::<Quick>()
                    + q.nodes.capacity() * std::mem::size_of::<Node>()
                    + super::extrapolate(q.nodes.iter().map(|n| n.buf.capacity()), samples, q.nodes.len())
            }
        }
    }

    fn node(&self, i: usize) -> &Node {
        match &self.repr {
            Repr::Pack(n) => n,
            Repr::Quick(q) => &q.nodes[i],
        }
    }

    fn node_count(&self) -> usize {
        match &self.repr {
            Repr::Pack(_) => 1,
            Repr::Quick(q) => q.nodes.len(),
        }
    }

    /// Call before adding `count` elements of `bytes` raw bytes in total: a listpack that
    /// would exceed the node limit becomes a quicklist (listTypeTryConversionAppend).
    pub fn prepare_add(&mut self, bytes: usize, count: usize, fill: i32) {
        if let Repr::Pack(n) = &mut self.repr {
            if exceeds_limit(fill, n.lp_bytes() + bytes, n.count() + count) {
                let n = std::mem::replace(n, Node::new());
                let count = n.count();
                let mut nodes = VecDeque::new();
                if count > 0 {
                    nodes.push_back(n);
                }
                self.repr = Repr::Quick(Box::new(Quick { nodes, count }));
            }
        }
    }

    /// Call after removing elements from a list that is not empty: a quicklist reduced to
    /// one node within half the node limit becomes a listpack (LIST_CONV_SHRINKING); a
    /// listpack gives back memory it no longer needs.
    pub fn shrink(&mut self, fill: i32) {
        match &mut self.repr {
            Repr::Pack(n) => n.compact(),
            Repr::Quick(q) => {
                // O(1): pops run this after every element.
                if q.nodes.len() != 1 {
                    return;
                }
                let n = &q.nodes[0];
                if n.count() == 1 {
                    if let Some((Elem::Str(s), _)) = n.first() {
                        if is_large(s.len(), fill) {
                            return;
                        }
                    }
                }
                let (size, count) = node_limits(fill);
                if n.lp_bytes() > size / 2 || n.count() > count / 2 {
                    return;
                }
                let mut n = q.nodes.pop_front().expect("one node");
                n.compact();
                self.repr = Repr::Pack(n);
            }
        }
    }

    /// Adds one element at an end. The caller has called [`List::prepare_add`].
    #[inline]
    pub fn push(&mut self, end: End, e: Elem<'_>, fill: i32) {
        match &mut self.repr {
            Repr::Pack(n) => match end {
                End::Head => n.push_front(e),
                End::Tail => n.push_back(e),
            },
            Repr::Quick(q) => {
                let len = entry_len(e);
                let node = match end {
                    End::Head => q.nodes.front_mut(),
                    End::Tail => q.nodes.back_mut(),
                };
                let raw = match e {
                    Elem::Str(s) => s.len(),
                    Elem::Int(_) => 0,
                };
                match node {
                    Some(n) if !is_large(raw, fill) && !exceeds_limit(fill, n.lp_bytes() + len, n.count() + 1) => {
                        match end {
                            End::Head => n.push_front(e),
                            End::Tail => n.push_back(e),
                        }
                    }
                    _ => {
                        let mut n = Node::with_room(len);
                        n.push_back(e);
                        match end {
                            End::Head => q.nodes.push_front(n),
                            End::Tail => q.nodes.push_back(n),
                        }
                    }
                }
                q.count += 1;
            }
        }
    }

    /// Removes the element at an end, handing it to `f` before it goes (so a reply can be
    /// written straight from the node).
    #[inline]
    pub fn pop_with<R>(&mut self, end: End, f: impl FnOnce(Elem<'_>) -> R) -> Option<R> {
        let (node, q_count) = match &mut self.repr {
            Repr::Pack(n) => (n, None),
            Repr::Quick(q) => {
                let n = match end {
                    End::Head => q.nodes.front_mut(),
                    End::Tail => q.nodes.back_mut(),
                }?;
                (n, Some(&mut q.count))
            }
        };
        let (r, n) = match end {
            End::Head => {
                let (e, n) = node.first()?;
                (f(e), n)
            }
            End::Tail => {
                let (e, n) = node.last()?;
                (f(e), n)
            }
        };
        match end {
            End::Head => node.drop_front(n, 1),
            End::Tail => node.drop_back(n, 1),
        }
        let emptied = node.count() == 0;
        if let Some(c) = q_count {
            *c -= 1;
        }
        if emptied {
            if let Repr::Quick(q) = &mut self.repr {
                match end {
                    End::Head => q.nodes.pop_front(),
                    End::Tail => q.nodes.pop_back(),
                };
            }
        }
        Some(r)
    }

    pub fn pop(&mut self, end: End) -> Option<Owned> {
        self.pop_with(end, |e| e.owned())
    }

    /// The element at `index` (negative: from the tail).
    pub fn get(&self, index: i64) -> Option<Elem<'_>> {
        let i = self.resolve(index)?;
        let (ni, off) = self.position(i);
        Some(decode(&self.node(ni).buf, off).0)
    }

    /// A list index (negative: from the tail) as an index from the head, if in range.
    fn resolve(&self, index: i64) -> Option<usize> {
        let len = self.len() as i64;
        let i = if index < 0 { len.checked_add(index)? } else { index };
        (0..len).contains(&i).then_some(i as usize)
    }

    /// (node, byte offset) of element `i` (< len).
    fn position(&self, i: usize) -> (usize, usize) {
        match &self.repr {
            Repr::Pack(n) => (0, n.offset_of(i)),
            Repr::Quick(q) => {
                let (ni, k) = q.locate(i);
                (ni, q.nodes[ni].offset_of(k))
            }
        }
    }

    /// Elements from the head.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0, false)
    }

    /// Elements from index `start` (< len unless the list is empty), towards the tail, or
    /// towards the head when `rev`.
    pub fn iter_from(&self, start: usize, rev: bool) -> Iter<'_> {
        let len = self.len();
        if start >= len {
            return Iter {
                list: self,
                ni: 0,
                pos: 0,
                left: 0,
                rev,
            };
        }
        let (ni, off) = self.position(start);
        let pos = if rev {
            off + decode(&self.node(ni).buf, off).1
        } else {
            off
        };
        Iter {
            list: self,
            ni,
            pos,
            left: if rev { start + 1 } else { len - start },
            rev,
        }
    }

    /// Replaces the element at `index`; false if out of range. The caller has called
    /// [`List::prepare_add`] (LSET converts as if it added the element) and calls
    /// [`List::shrink`] after.
    pub fn set(&mut self, index: i64, e: Elem<'_>, fill: i32) -> bool {
        let Some(i) = self.resolve(index) else {
            return false;
        };
        let (ni, off) = self.position(i);
        match &mut self.repr {
            Repr::Pack(n) => {
                let old = decode(&n.buf, off).1;
                n.replace_at(off, old, e);
            }
            Repr::Quick(q) => {
                let n = &mut q.nodes[ni];
                let old = decode(&n.buf, off).1;
                n.replace_at(off, old, e);
                q.split_if_needed(ni, fill);
            }
        }
        true
    }

    /// Inserts `e` before or after the first element equal to `pivot`; false if there is
    /// none. The caller has called [`List::prepare_add`].
    pub fn insert(&mut self, pivot: Elem<'_>, e: Elem<'_>, after: bool, fill: i32) -> bool {
        let mut found = None;
        'nodes: for ni in 0..self.node_count() {
            for (idx, (at, x, n)) in self.node(ni).iter().enumerate() {
                if x == pivot {
                    found = Some((ni, idx, if after { at + n } else { at }));
                    break 'nodes;
                }
            }
        }
        let Some((ni, idx, at)) = found else {
            return false;
        };
        match &mut self.repr {
            Repr::Pack(n) => n.insert_at(at, e),
            Repr::Quick(q) => q.insert_at_pivot(ni, idx, after, e, fill),
        }
        true
    }

    /// LREM: removes up to `limit` elements equal to `needle` (0 = all), from the head or
    /// from the tail. Returns how many were removed.
    pub fn remove(&mut self, needle: Elem<'_>, limit: usize, from_tail: bool) -> usize {
        match &mut self.repr {
            Repr::Pack(n) => n.remove_matching(needle, limit, from_tail),
            Repr::Quick(q) => {
                let mut removed = 0;
                let order: Box<dyn Iterator<Item = usize>> = if from_tail {
                    Box::new((0..q.nodes.len()).rev())
                } else {
                    Box::new(0..q.nodes.len())
                };
                for ni in order {
                    let left = if limit == 0 { 0 } else { limit - removed };
                    let r = q.nodes[ni].remove_matching(needle, left, from_tail);
                    if r > 0 {
                        q.nodes[ni].compact();
                    }
                    removed += r;
                    if limit != 0 && removed == limit {
                        break;
                    }
                }
                q.nodes.retain(|n| n.count() > 0);
                q.count -= removed;
                removed
            }
        }
    }

    /// Removes `count` elements from index `start` (both within the list).
    pub fn delete_range(&mut self, start: usize, count: usize) {
        if count == 0 {
            return;
        }
        match &mut self.repr {
            Repr::Pack(n) => {
                let from = n.offset_of(start);
                let to = if start + count == n.count() {
                    n.end()
                } else {
                    n.offset_of(start + count)
                };
                n.remove_bytes(from, to, count);
            }
            Repr::Quick(q) => {
                let (mut first, mut k) = q.locate(start);
                let mut left = count;
                while left > 0 {
                    let n = &mut q.nodes[first];
                    let c = n.count();
                    let take = left.min(c - k);
                    if take == c {
                        q.nodes.remove(first);
                    } else {
                        let from = n.offset_of(k);
                        let to = if k + take == c { n.end() } else { n.offset_of(k + take) };
                        n.remove_bytes(from, to, take);
                        n.compact();
                        first += 1;
                    }
                    left -= take;
                    k = 0;
                }
                q.count -= count;
            }
        }
    }

    /// Each node as a Redis listpack blob (one for the `listpack` encoding), for persistence.
    pub fn listpacks(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        (0..self.node_count()).map(|i| self.node(i).to_listpack())
    }
}

/// Walks a list's elements in either direction.
pub struct Iter<'a> {
    list: &'a List,
    ni: usize,
    /// Forward: start of the next entry. Backward: end of the next entry.
    pos: usize,
    left: usize,
    rev: bool,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Elem<'a>;

    #[inline]
    fn next(&mut self) -> Option<Elem<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let list: &'a List = self.list;
        if !self.rev {
            let mut node = list.node(self.ni);
            if self.pos >= node.end() {
                self.ni += 1;
                node = list.node(self.ni);
                self.pos = node.head();
            }
            let (e, n) = decode(&node.buf, self.pos);
            self.pos += n;
            Some(e)
        } else {
            let mut node = list.node(self.ni);
            if self.pos <= node.head() {
                self.ni -= 1;
                node = list.node(self.ni);
                self.pos = node.end();
            }
            let s = prev_start(&node.buf, self.pos);
            self.pos = s;
            Some(decode(&node.buf, s).0)
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl PartialEq for List {
    fn eq(&self, other: &List) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for List {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "List::{}", self.encoding())?;
        f.debug_list()
            .entries(self.iter().map(|e| match e {
                Elem::Int(v) => v.to_string(),
                Elem::Str(s) => String::from_utf8_lossy(s).into_owned(),
            }))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn items(l: &List) -> Vec<Vec<u8>> {
        l.iter().map(Elem::to_vec).collect()
    }

    fn rev_items(l: &List) -> Vec<Vec<u8>> {
        if l.is_empty() {
            return vec![];
        }
        l.iter_from(l.len() - 1, true).map(Elem::to_vec).collect()
    }

    /// Node invariants: counts add up, quicklist nodes are never empty, every entry parses
    /// both ways.
    fn check(l: &List) {
        let mut total = 0;
        for ni in 0..l.node_count() {
            let n = l.node(ni);
            let fwd: Vec<_> = n.iter().map(|(at, _, len)| (at, len)).collect();
            assert_eq!(fwd.len(), n.count());
            let mut p = n.end();
            for &(at, len) in fwd.iter().rev() {
                assert_eq!(at + len, p);
                p = prev_start(&n.buf, p);
                assert_eq!(p, at);
            }
            assert_eq!(p, n.head());
            total += n.count();
            if let Repr::Quick(_) = &l.repr {
                assert!(n.count() > 0, "empty quicklist node");
            }
        }
        assert_eq!(total, l.len());
        let mut r = rev_items(l);
        r.reverse();
        assert_eq!(r, items(l));
    }

    #[test]
    fn sizes() {
        assert_eq!(std::mem::size_of::<List>(), 16);
        assert_eq!(std::mem::size_of::<Node>(), 8);
    }

    #[test]
    fn codec_round_trips_with_listpack_sizes() {
        let cases: &[(Elem, usize)] = &[
            (Elem::Int(0), 2),
            (Elem::Int(127), 2),
            (Elem::Int(128), 3),
            (Elem::Int(-1), 3),
            (Elem::Int(-4096), 3),
            (Elem::Int(4095), 3),
            (Elem::Int(4096), 4),
            (Elem::Int(-32768), 4),
            (Elem::Int(32768), 5),
            (Elem::Int(-8388608), 5),
            (Elem::Int(8388608), 6),
            (Elem::Int(i32::MIN as i64), 6),
            (Elem::Int(i32::MAX as i64 + 1), 10),
            (Elem::Int(i64::MIN), 10),
            (Elem::Int(i64::MAX), 10),
            (Elem::Str(b""), 2),
            (Elem::Str(&[b'x'; 63]), 65),
            (Elem::Str(&[b'x'; 64]), 67),
            (Elem::Str(&[b'x'; 125]), 128),
            (Elem::Str(&[b'x'; 4095]), 4095 + 2 + 2),
            (Elem::Str(&[b'x'; 4096]), 4096 + 5 + 2),
            (Elem::Str(&[b'x'; 20000]), 20000 + 5 + 3),
        ];
        for &(e, size) in cases {
            assert_eq!(entry_len(e), size, "{e:?}");
            let mut buf = vec![0u8; size + 2];
            encode(e, &mut buf[1..1 + size]);
            assert_eq!(decode(&buf, 1), (e, size));
            assert_eq!(prev_start(&buf, 1 + size), 1);
        }
    }

    #[test]
    fn integers_are_stored_as_listpack_does() {
        assert_eq!(Elem::from_bytes(b"123"), Elem::Int(123));
        assert_eq!(Elem::from_bytes(b"-9223372036854775808"), Elem::Int(i64::MIN));
        assert_eq!(Elem::from_bytes(b"0123"), Elem::Str(b"0123"));
        assert_eq!(Elem::from_bytes(b"-0"), Elem::Str(b"-0"));
        assert_eq!(
            Elem::from_bytes(b"9223372036854775808"),
            Elem::Str(b"9223372036854775808")
        );
        let l = List::from_items([&b"12"[..], b"x", b"-5"], -2);
        assert_eq!(items(&l), vec![b"12".to_vec(), b"x".to_vec(), b"-5".to_vec()]);
    }

    #[test]
    fn listpack_blob_matches_redis_layout() {
        let l = List::from_items([&b"a"[..], b"1"], -2);
        // Redis: RPUSH l a 1 -> \x0c\x00\x00\x00 \x02\x00 \x81a\x02 \x01\x01 \xff
        let lps: Vec<_> = l.listpacks().collect();
        assert_eq!(lps, vec![b"\x0c\x00\x00\x00\x02\x00\x81a\x02\x01\x01\xff".to_vec()]);
    }

    #[test]
    fn converts_at_the_size_limit_and_back_at_half() {
        let fill = -2;
        let mut l = List::new();
        let v = [b'v'; 100];
        // Each entry takes 103 bytes: adding 100 raw bytes to k entries converts when
        // 7 + k*103 + 100 > 8192, i.e. at k = 79.
        let mut pushed = 0;
        while l.encoding() == "listpack" {
            l.prepare_add(v.len(), 1, fill);
            l.push(End::Tail, Elem::Str(&v), fill);
            pushed += 1;
        }
        assert_eq!(pushed, 80, "converted before the 80th push");
        check(&l);
        // Two nodes (79 + 1): popping the head never leaves a single node.
        l.pop(End::Head);
        l.shrink(fill);
        assert_eq!(l.encoding(), "quicklist");
        while l.len() > 40 {
            l.pop(End::Tail);
            l.shrink(fill);
            assert_eq!(l.encoding(), "quicklist", "len {}", l.len());
        }
        // 7 + 39 * 103 = 4024 <= 4096 / 2.
        l.pop(End::Tail);
        l.shrink(fill);
        assert_eq!(l.encoding(), "listpack");
        assert_eq!(l.len(), 39);
        check(&l);
    }

    #[test]
    fn count_limits_with_positive_fill() {
        let fill = 4;
        let mut l = List::new();
        for i in 0..4 {
            l.prepare_add(1, 1, fill);
            l.push(End::Tail, Elem::Int(i), fill);
        }
        assert_eq!(l.encoding(), "listpack");
        l.prepare_add(1, 1, fill);
        assert_eq!(l.encoding(), "quicklist");
        for i in 4..20 {
            l.push(End::Tail, Elem::Int(i), fill);
        }
        assert_eq!(l.node_count(), 5);
        check(&l);
        l.delete_range(2, 18);
        l.shrink(fill);
        assert_eq!(l.encoding(), "listpack", "{l:?}");
        assert_eq!(items(&l), vec![b"0".to_vec(), b"1".to_vec()]);
        // A big element is never brought back into a listpack.
        let mut l = List::new();
        let big = vec![b'x'; 9000];
        l.prepare_add(big.len(), 1, fill);
        l.push(End::Tail, Elem::Str(&big), fill);
        assert_eq!(l.encoding(), "quicklist");
        l.shrink(fill);
        assert_eq!(l.encoding(), "quicklist");
    }

    #[test]
    fn head_pushes_reuse_room_and_compact() {
        let mut l = List::new();
        for i in 0..1000 {
            l.prepare_add(3, 1, 100_000);
            l.push(End::Head, Elem::Str(format!("{i:03}").as_bytes()), 100_000);
        }
        // fill is a count: the 8 KiB safety limit applies.
        assert_eq!(l.encoding(), "listpack");
        assert_eq!(l.get(0), Some(Elem::Str(b"999")));
        assert_eq!(l.get(-1), Some(Elem::Str(b"000")));
        while l.len() > 10 {
            l.pop(End::Tail);
            l.shrink(100_000);
        }
        assert!(l.heap_bytes() < 256, "{}", l.heap_bytes());
        check(&l);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(bool, Vec<u8>),
        Pop(bool),
        Set(i64, Vec<u8>),
        Insert(u8, Vec<u8>, bool),
        Remove(u8, usize, bool),
        DelRange(usize, usize),
        Get(i64),
        Iter(usize, bool),
    }

    fn elem() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0u8..6).prop_map(|c| vec![b'a' + c]),
            (-5000i64..70000).prop_map(|v| v.to_string().into_bytes()),
            any::<i64>().prop_map(|v| v.to_string().into_bytes()),
            (0usize..300).prop_map(|n| vec![b'z'; n]),
            Just(b"007".to_vec()),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<bool>(), elem()).prop_map(|(h, e)| Op::Push(h, e)),
            2 => any::<bool>().prop_map(Op::Pop),
            1 => (-50i64..50, elem()).prop_map(|(i, e)| Op::Set(i, e)),
            1 => (0u8..6, elem(), any::<bool>()).prop_map(|(p, e, a)| Op::Insert(p, e, a)),
            1 => (0u8..6, 0usize..4, any::<bool>()).prop_map(|(p, n, t)| Op::Remove(p, n, t)),
            1 => (0usize..40, 0usize..10).prop_map(|(s, n)| Op::DelRange(s, n)),
            1 => (-60i64..60).prop_map(Op::Get),
            1 => (0usize..60, any::<bool>()).prop_map(|(s, r)| Op::Iter(s, r)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn behaves_like_a_deque(fill in prop_oneof![Just(-1i32), Just(-2), Just(1), Just(3), Just(7), Just(0)],
                                ops in proptest::collection::vec(op(), 1..200)) {
            let mut l = List::new();
            let mut m: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(head, e) => {
                        l.prepare_add(e.len(), 1, fill);
                        l.push(if head { End::Head } else { End::Tail }, Elem::from_bytes(&e), fill);
                        if head { m.push_front(e) } else { m.push_back(e) }
                    }
                    Op::Pop(head) => {
                        let got = l.pop(if head { End::Head } else { End::Tail });
                        let want = if head { m.pop_front() } else { m.pop_back() };
                        prop_assert_eq!(got.map(|o| o.as_elem().to_vec()), want);
                        l.shrink(fill);
                    }
                    Op::Set(i, e) => {
                        l.prepare_add(e.len(), 1, fill);
                        let ok = l.set(i, Elem::from_bytes(&e), fill);
                        let mi = if i < 0 { m.len() as i64 + i } else { i };
                        prop_assert_eq!(ok, mi >= 0 && (mi as usize) < m.len());
                        if ok { m[mi as usize] = e; }
                        l.shrink(fill);
                    }
                    Op::Insert(p, e, after) => {
                        let pivot = vec![b'a' + p];
                        l.prepare_add(e.len(), 1, fill);
                        let ok = l.insert(Elem::from_bytes(&pivot), Elem::from_bytes(&e), after, fill);
                        let pos = m.iter().position(|x| *x == pivot);
                        prop_assert_eq!(ok, pos.is_some());
                        if let Some(p) = pos { m.insert(if after { p + 1 } else { p }, e); }
                    }
                    Op::Remove(p, n, tail) => {
                        let v = vec![b'a' + p];
                        let got = l.remove(Elem::from_bytes(&v), n, tail);
                        let mut want = 0;
                        let idx: Vec<usize> = if tail { (0..m.len()).rev().collect() } else { (0..m.len()).collect() };
                        let mut del = vec![];
                        for i in idx {
                            if m[i] == v && (n == 0 || want < n) { want += 1; del.push(i); }
                        }
                        del.sort_unstable();
                        for i in del.into_iter().rev() { m.remove(i); }
                        prop_assert_eq!(got, want);
                        if !l.is_empty() { l.shrink(fill); }
                    }
                    Op::DelRange(s, n) => {
                        if s < m.len() {
                            let n = n.min(m.len() - s);
                            l.delete_range(s, n);
                            m.drain(s..s + n);
                            if !l.is_empty() { l.shrink(fill); }
                        }
                    }
                    Op::Get(i) => {
                        let mi = if i < 0 { m.len() as i64 + i } else { i };
                        let want = (mi >= 0 && (mi as usize) < m.len()).then(|| m[mi as usize].clone());
                        prop_assert_eq!(l.get(i).map(Elem::to_vec), want);
                    }
                    Op::Iter(s, rev) => {
                        if s < m.len() {
                            let got: Vec<Vec<u8>> = l.iter_from(s, rev).map(Elem::to_vec).collect();
                            let want: Vec<Vec<u8>> = if rev { m.range(..=s).rev().cloned().collect() } else { m.range(s..).cloned().collect() };
                            prop_assert_eq!(got, want);
                        }
                    }
                }
                prop_assert_eq!(l.len(), m.len());
                check(&l);
                prop_assert_eq!(items(&l), m.iter().cloned().collect::<Vec<_>>());
            }
        }
    }
}
