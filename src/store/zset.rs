//! A sorted set: a listpack while small, then a skiplist plus a member index (OBJECT
//! ENCODING `listpack` / `skiplist`), converting at `zset-max-listpack-entries` /
//! `zset-max-listpack-value` as Redis 7.2 does.
//!
//! - The listpack ([`Pack`]) is one contiguous buffer of `member, score` pairs sorted by
//!   (score, member): a 4-byte count, then per entry a varint member length, the member bytes,
//!   and the score as a tagged small integer or an 8-byte double.
//! - The skiplist ([`Skip`]) is Redis's: nodes with levels and spans (rank in O(log n)), a
//!   backward link, kept in an arena indexed by `u32`, and a [`Dict`] from member to node.
//!   The dict's key borrows the member bytes owned by the node, so each member is stored once.
//!
//! Every operation the commands need is expressed over ranks: `count_below` (how many elements
//! sort before a range's start), `count_upto` (how many do not sort past its end) and `visit`
//! (walk from a rank in either direction), so both encodings answer every range command.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use thin_vec::ThinVec;

use super::dict::Dict;
use super::EncodingLimits;

/// A score range (`ZRANGEBYSCORE` grammar: `(` makes a bound exclusive).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreRange {
    pub min: f64,
    pub max: f64,
    pub minex: bool,
    pub maxex: bool,
}

/// One end of a lex range (`-`, `+`, `[x`, `(x`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LexBound<'a> {
    NegInf,
    PosInf,
    Incl(&'a [u8]),
    Excl(&'a [u8]),
}

/// Elements are in a range when they are neither below its start nor above its end; both
/// tests are monotone along the set's order.
pub trait Range {
    fn below_min(&self, score: f64, member: &[u8]) -> bool;
    fn above_max(&self, score: f64, member: &[u8]) -> bool;
}

impl Range for ScoreRange {
    #[inline]
    fn below_min(&self, s: f64, _: &[u8]) -> bool {
        if self.minex {
            s <= self.min
        } else {
            s < self.min
        }
    }
    #[inline]
    fn above_max(&self, s: f64, _: &[u8]) -> bool {
        if self.maxex {
            s >= self.max
        } else {
            s > self.max
        }
    }
}

/// A lex range (`min`, `max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LexRange<'a> {
    pub min: LexBound<'a>,
    pub max: LexBound<'a>,
}

impl LexRange<'_> {
    /// Redis's first test in zslIsInLexRange: a range empty whatever the set holds (min above
    /// max, or equal with an exclusive end).
    pub fn is_empty_range(&self) -> bool {
        fn key<'b>(b: LexBound<'b>) -> (u8, &'b [u8], bool) {
            match b {
                LexBound::NegInf => (0, &[], false),
                LexBound::Incl(x) => (1, x, false),
                LexBound::Excl(x) => (1, x, true),
                LexBound::PosInf => (2, &[], false),
            }
        }
        let (ra, a, aex) = key(self.min);
        let (rb, b, bex) = key(self.max);
        match (ra, a).cmp(&(rb, b)) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => aex || bex,
            std::cmp::Ordering::Less => false,
        }
    }
}

impl Range for LexRange<'_> {
    #[inline]
    fn below_min(&self, _: f64, m: &[u8]) -> bool {
        match self.min {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Incl(x) => m < x,
            LexBound::Excl(x) => m <= x,
        }
    }
    #[inline]
    fn above_max(&self, _: f64, m: &[u8]) -> bool {
        match self.max {
            LexBound::PosInf => false,
            LexBound::NegInf => true,
            LexBound::Incl(x) => m > x,
            LexBound::Excl(x) => m >= x,
        }
    }
}

/// (score, member) order, as Redis's zslInsert/zzlInsert: scores, then bytes.
#[inline]
fn less(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> bool {
    s1 < s2 || (s1 == s2 && m1 < m2)
}

// ---------------------------------------------------------------------------------------------
// Listpack
// ---------------------------------------------------------------------------------------------

const TAG_I8: u8 = 0;
const TAG_I16: u8 = 1;
const TAG_I32: u8 = 2;
const TAG_F64: u8 = 3;
const HEADER: usize = 4;

/// The compact encoding: `[count u32][varint len, member, tag, score]*`, sorted.
#[derive(Clone, PartialEq)]
pub struct Pack {
    /// A `ThinVec` (one pointer) keeps `ZSet` at 16 bytes, so every keyspace entry is smaller.
    buf: ThinVec<u8>,
}

impl Pack {
    fn new() -> Pack {
        let mut buf = ThinVec::with_capacity(HEADER + 16);
        buf.extend_from_slice(&[0; HEADER]);
        Pack { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn len(&self) -> usize {
        u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize
    }

    fn set_len(&mut self, n: usize) {
        self.buf[..HEADER].copy_from_slice(&(n as u32).to_le_bytes());
    }

    /// The raw bytes (for persistence).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Decodes the entry at `pos`: (member, score, position of the next entry).
    #[inline]
    fn entry(&self, pos: usize) -> (&[u8], f64, usize) {
        let b = &self.buf;
        let (mut len, mut shift, mut p) = (0usize, 0, pos);
        loop {
            let c = b[p];
            p += 1;
            len |= ((c & 0x7f) as usize) << shift;
            if c < 0x80 {
                break;
            }
            shift += 7;
        }
        let member = &b[p..p + len];
        p += len;
        let tag = b[p];
        p += 1;
        let score = match tag {
            TAG_I8 => {
                p += 1;
                b[p - 1] as i8 as f64
            }
            TAG_I16 => {
                p += 2;
                i16::from_le_bytes([b[p - 2], b[p - 1]]) as f64
            }
            TAG_I32 => {
                p += 4;
                i32::from_le_bytes(b[p - 4..p].try_into().expect("4 bytes")) as f64
            }
            _ => {
                p += 8;
                f64::from_le_bytes(b[p - 8..p].try_into().expect("8 bytes"))
            }
        };
        (member, score, p)
    }

    fn encode(member: &[u8], score: f64, out: &mut ThinVec<u8>) {
        let mut len = member.len();
        loop {
            if len < 0x80 {
                out.push(len as u8);
                break;
            }
            out.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        out.extend_from_slice(member);
        // -0 is stored as 0, as Redis's listpack does.
        let is_int = score.fract() == 0.0 && score.abs() <= i32::MAX as f64;
        if is_int {
            let n = score as i32;
            if let Ok(v) = i8::try_from(n) {
                out.extend_from_slice(&[TAG_I8, v as u8]);
            } else if let Ok(v) = i16::try_from(n) {
                out.push(TAG_I16);
                out.extend_from_slice(&v.to_le_bytes());
            } else {
                out.push(TAG_I32);
                out.extend_from_slice(&n.to_le_bytes());
            }
        } else {
            out.push(TAG_F64);
            out.extend_from_slice(&score.to_le_bytes());
        }
    }

    fn iter(&self) -> PackIter<'_> {
        PackIter {
            pack: self,
            pos: HEADER,
        }
    }

    /// (start offset, end offset, score) of `member`.
    fn find(&self, member: &[u8]) -> Option<(usize, usize, f64)> {
        let mut pos = HEADER;
        while pos < self.buf.len() {
            let (m, s, next) = self.entry(pos);
            if m == member {
                return Some((pos, next, s));
            }
            pos = next;
        }
        None
    }

    fn remove_at(&mut self, start: usize, end: usize) {
        self.buf.drain(start..end);
        let n = self.len() - 1;
        self.set_len(n);
    }

    fn insert(&mut self, member: &[u8], score: f64) {
        let mut pos = HEADER;
        while pos < self.buf.len() {
            let (m, s, next) = self.entry(pos);
            if less(score, member, s, m) {
                break;
            }
            pos = next;
        }
        // Encode at the end, then rotate into place: no temporary buffer.
        let old = self.buf.len();
        Pack::encode(member, score, &mut self.buf);
        let n = self.buf.len() - old;
        self.buf[pos..].rotate_right(n);
        let len = self.len() + 1;
        self.set_len(len);
    }

    /// Byte offset of the entry at `rank`.
    fn offset_of(&self, rank: usize) -> usize {
        let mut pos = HEADER;
        for _ in 0..rank {
            pos = self.entry(pos).2;
        }
        pos
    }
}

struct PackIter<'a> {
    pack: &'a Pack,
    pos: usize,
}

impl<'a> Iterator for PackIter<'a> {
    type Item = (&'a [u8], f64);
    #[inline]
    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        if self.pos >= self.pack.buf.len() {
            return None;
        }
        let (m, s, next) = self.pack.entry(self.pos);
        self.pos = next;
        Some((m, s))
    }
}

// ---------------------------------------------------------------------------------------------
// Skiplist
// ---------------------------------------------------------------------------------------------

const MAX_LEVEL: usize = 32;
/// The header's index; also "no node" in forward/backward links (the header is never a target).
const NIL: u32 = 0;

#[derive(Clone, Copy, Default)]
struct Level {
    forward: u32,
    span: u32,
}

/// A member's bytes behind a thin pointer: one allocation `[len u32][bytes]`, so a node and
/// the dict's key each hold 8 bytes for it instead of a 16-byte fat pointer.
struct Thin(std::ptr::NonNull<u8>);

/// The shared header of every empty `Thin` (the skiplist header, freed slots): never freed.
static EMPTY_THIN: u32 = 0;

// SAFETY: a Thin owns its allocation exclusively, like a Box<[u8]>.
unsafe impl Send for Thin {}
unsafe impl Sync for Thin {}

impl Thin {
    fn layout(len: usize) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(4 + len, 4).expect("member size fits a layout")
    }

    fn new(b: &[u8]) -> Thin {
        if b.is_empty() {
            return Thin::empty();
        }
        let len = u32::try_from(b.len()).expect("members are shorter than 4 GiB");
        let layout = Thin::layout(b.len());
        // SAFETY: the layout is non-zero-sized; the writes stay inside it.
        unsafe {
            let p = std::alloc::alloc(layout);
            let Some(p) = std::ptr::NonNull::new(p) else {
                std::alloc::handle_alloc_error(layout)
            };
            (p.as_ptr() as *mut u32).write(len);
            std::ptr::copy_nonoverlapping(b.as_ptr(), p.as_ptr().add(4), b.len());
            Thin(p)
        }
    }

    fn empty() -> Thin {
        Thin(std::ptr::NonNull::from(&EMPTY_THIN).cast())
    }

    #[inline]
    fn ptr(&self) -> std::ptr::NonNull<u8> {
        self.0
    }

    /// The bytes of a Thin allocation (or of `EMPTY_THIN`) at `p`.
    ///
    /// # Safety
    /// `p` must come from a live `Thin`, and the result must not outlive it.
    #[inline]
    unsafe fn bytes_at<'a>(p: std::ptr::NonNull<u8>) -> &'a [u8] {
        let len = (p.as_ptr() as *const u32).read() as usize;
        std::slice::from_raw_parts(p.as_ptr().add(4), len)
    }
}

impl std::ops::Deref for Thin {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: self is live.
        unsafe { Thin::bytes_at(self.0) }
    }
}

impl Drop for Thin {
    fn drop(&mut self) {
        if std::ptr::eq(self.0.as_ptr(), &EMPTY_THIN as *const u32 as *const u8) {
            return;
        }
        // SAFETY: allocated by Thin::new with this length's layout.
        unsafe { std::alloc::dealloc(self.0.as_ptr(), Thin::layout(self.len())) }
    }
}

struct Node {
    member: Thin,
    score: f64,
    backward: u32,
    nlev: u32,
    /// The first levels live in the node (three in four nodes have one level; one in
    /// sixteen has more than three), so a traversal step touches one node, as with Redis's flexible array.
    inline: [Level; INLINE],
    over: Box<[Level]>,
}

const INLINE: usize = 3;

impl Node {
    fn new(member: Thin, score: f64, nlev: usize) -> Node {
        Node {
            member,
            score,
            backward: NIL,
            nlev: nlev as u32,
            inline: [Level::default(); INLINE],
            over: if nlev > INLINE {
                vec![Level::default(); nlev - INLINE].into_boxed_slice()
            } else {
                Box::default()
            },
        }
    }

    #[inline]
    fn lv(&self, i: usize) -> Level {
        if i < INLINE {
            self.inline[i]
        } else {
            self.over[i - INLINE]
        }
    }

    #[inline]
    fn lv_mut(&mut self, i: usize) -> &mut Level {
        if i < INLINE {
            &mut self.inline[i]
        } else {
            &mut self.over[i - INLINE]
        }
    }

    /// Heap bytes this node owns beyond its arena slot.
    fn owned(&self) -> usize {
        self.member.len() + self.over.len() * std::mem::size_of::<Level>()
    }
}

/// The dict's key: the member bytes (a [`Thin`] allocation) owned by a live node of the same
/// [`Skip`]. A node's member is never dropped or replaced while its dict entry exists, and
/// moving the node (the arena growing) does not move the bytes.
struct MemberKey(std::ptr::NonNull<u8>);

// SAFETY: a MemberKey is only reachable through its Skip, which owns the bytes it points to;
// moving the Skip to another thread moves the owner with it.
unsafe impl Send for MemberKey {}
unsafe impl Sync for MemberKey {}

impl MemberKey {
    #[inline]
    fn bytes(&self) -> &[u8] {
        // SAFETY: see the type's invariant.
        unsafe { Thin::bytes_at(self.0) }
    }
}

impl Borrow<[u8]> for MemberKey {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

impl Hash for MemberKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes().hash(state)
    }
}

impl PartialEq for MemberKey {
    fn eq(&self, o: &MemberKey) -> bool {
        self.bytes() == o.bytes()
    }
}

impl Eq for MemberKey {}

const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

/// The nodes, in chunks of [`CHUNK`] (the first grows by doubling): a big set never pays
/// for a doubled vector's spare half.
struct Arena {
    chunks: Vec<Vec<Node>>,
    len: usize,
}

impl Arena {
    fn new(header: Node) -> Arena {
        Arena {
            chunks: vec![vec![header]],
            len: 1,
        }
    }

    fn push(&mut self, n: Node) -> u32 {
        if self.len % CHUNK == 0 {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks.last_mut().expect("one chunk at least").push(n);
        self.len += 1;
        (self.len - 1) as u32
    }

    fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity()).sum::<usize>() * std::mem::size_of::<Node>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<Node>>()
    }
}

impl std::ops::Index<usize> for Arena {
    type Output = Node;
    #[inline]
    fn index(&self, i: usize) -> &Node {
        &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

impl std::ops::IndexMut<usize> for Arena {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut Node {
        &mut self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

/// Redis's zset: skiplist with spans plus a member index.
pub struct Skip {
    nodes: Arena,
    free: Vec<u32>,
    tail: u32,
    level: usize,
    len: usize,
    /// Bytes owned by live nodes (members and level arrays): heap_bytes in O(1).
    owned: usize,
    dict: Dict<MemberKey, u32>,
}

fn random_level() -> usize {
    thread_local! {
        static RNG: std::cell::Cell<u64> = const { std::cell::Cell::new(0x9e37_79b9_7f4a_7c15) };
    }
    let r = RNG.with(|c| {
        let mut x = c.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.set(x);
        x
    });
    // Each level with probability 1/4 (Redis's ZSKIPLIST_P): two random bits per level.
    let level = 1 + ((r | (1 << 62)).trailing_zeros() as usize / 2);
    level.min(MAX_LEVEL)
}

impl Skip {
    fn new() -> Skip {
        Skip {
            nodes: Arena::new(Node::new(Thin::empty(), 0.0, MAX_LEVEL)),
            free: Vec::new(),
            tail: NIL,
            level: 1,
            len: 0,
            owned: 0,
            dict: Dict::new(),
        }
    }

    #[inline]
    fn fwd(&self, n: u32, i: usize) -> u32 {
        self.nodes[n as usize].lv(i).forward
    }

    #[inline]
    fn node(&self, n: u32) -> &Node {
        &self.nodes[n as usize]
    }

    /// The node of each level after which `(score, member)` goes, with the rank of each.
    fn find_update(&self, score: f64, member: &[u8]) -> ([u32; MAX_LEVEL], [u32; MAX_LEVEL]) {
        let mut update = [NIL; MAX_LEVEL];
        let mut rank = [0u32; MAX_LEVEL];
        let mut x = NIL;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let l = self.nodes[x as usize].lv(i);
                if l.forward == NIL {
                    break;
                }
                let n = &self.nodes[l.forward as usize];
                if !less(n.score, &n.member, score, member) {
                    break;
                }
                rank[i] += l.span;
                x = l.forward;
            }
            update[i] = x;
        }
        (update, rank)
    }

    /// Links node `x` (its member and score set, levels sized) at its place.
    fn link(&mut self, x: u32) {
        let (score, lvl) = {
            let n = self.node(x);
            (n.score, n.nlev as usize)
        };
        let member: *const [u8] = &*self.nodes[x as usize].member;
        // SAFETY: the member bytes are not modified while we compare against them.
        let (mut update, mut rank) = self.find_update(score, unsafe { &*member });
        if lvl > self.level {
            for i in self.level..lvl {
                rank[i] = 0;
                update[i] = NIL;
                self.nodes[0].lv_mut(i).span = self.len as u32;
            }
            self.level = lvl;
        }
        for i in 0..lvl {
            let u = update[i] as usize;
            let ul = self.nodes[u].lv(i);
            *self.nodes[x as usize].lv_mut(i) = Level {
                forward: ul.forward,
                span: ul.span - (rank[0] - rank[i]),
            };
            *self.nodes[u].lv_mut(i) = Level {
                forward: x,
                span: rank[0] - rank[i] + 1,
            };
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(lvl) {
            self.nodes[u as usize].lv_mut(i).span += 1;
        }
        self.nodes[x as usize].backward = update[0];
        let f = self.fwd(x, 0);
        if f == NIL {
            self.tail = x;
        } else {
            self.nodes[f as usize].backward = x;
        }
        self.len += 1;
    }

    /// Unlinks node `x` (still allocated).
    fn unlink(&mut self, x: u32) {
        let (score, member): (f64, *const [u8]) = {
            let n = self.node(x);
            (n.score, &*n.member)
        };
        // SAFETY: as in `link`.
        let (update, _) = self.find_update(score, unsafe { &*member });
        for (i, &u) in update.iter().enumerate().take(self.level) {
            let u = u as usize;
            if self.nodes[u].lv_mut(i).forward == x {
                let xl = self.nodes[x as usize].lv(i);
                self.nodes[u].lv_mut(i).span += xl.span;
                self.nodes[u].lv_mut(i).span -= 1;
                self.nodes[u].lv_mut(i).forward = xl.forward;
            } else {
                self.nodes[u].lv_mut(i).span -= 1;
            }
        }
        let f = self.fwd(x, 0);
        let b = self.node(x).backward;
        if f == NIL {
            self.tail = b;
        } else {
            self.nodes[f as usize].backward = b;
        }
        while self.level > 1 && self.nodes[0].lv_mut(self.level - 1).forward == NIL {
            self.level -= 1;
        }
        self.len -= 1;
    }

    fn insert(&mut self, member: &[u8], score: f64) {
        let node = Node::new(Thin::new(member), score, random_level());
        self.owned += node.owned();
        let x = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => self.nodes.push(node),
        };
        self.link(x);
        let key = MemberKey(self.nodes[x as usize].member.ptr());
        self.dict.insert(key, x);
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        self.dict.get(member).map(|&x| self.node(x).score)
    }

    fn update(&mut self, x: u32, score: f64) {
        let n = self.node(x);
        let b = n.backward;
        let f = n.inline[0].forward;
        let stays = (b == NIL || less(self.node(b).score, &self.node(b).member, score, &n.member))
            && (f == NIL || less(score, &n.member, self.node(f).score, &self.node(f).member));
        if stays {
            self.nodes[x as usize].score = score;
            return;
        }
        self.unlink(x);
        self.nodes[x as usize].score = score;
        self.link(x);
    }

    fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (_, x) = self.dict.remove(member)?;
        self.unlink(x);
        let n = &mut self.nodes[x as usize];
        let score = n.score;
        self.owned -= n.owned();
        n.member = Thin::empty();
        n.over = Box::default();
        self.free.push(x);
        Some(score)
    }

    /// How many elements satisfy `pred`, a test true for a prefix of the order.
    fn count_while(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut x = NIL;
        let mut rank = 0usize;
        for i in (0..self.level).rev() {
            loop {
                let l = self.nodes[x as usize].lv(i);
                if l.forward == NIL {
                    break;
                }
                let n = &self.nodes[l.forward as usize];
                if !pred(n.score, &n.member) {
                    break;
                }
                rank += l.span as usize;
                x = l.forward;
            }
        }
        rank
    }

    /// The node at 0-based `rank` (< len).
    fn at_rank(&self, rank: usize) -> u32 {
        let target = rank + 1;
        let mut x = NIL;
        let mut traversed = 0usize;
        for i in (0..self.level).rev() {
            loop {
                let l = self.nodes[x as usize].lv(i);
                if l.forward == NIL || traversed + l.span as usize > target {
                    break;
                }
                traversed += l.span as usize;
                x = l.forward;
            }
            if traversed == target {
                return x;
            }
        }
        x
    }

    fn heap_bytes(&self) -> usize {
        self.nodes.bytes()
            + MAX_LEVEL * std::mem::size_of::<Level>()
            + self.owned
            + self.free.capacity() * 4
            + self.dict.table_bytes()
    }

    #[cfg(test)]
    fn check(&self) {
        // Spans and order agree with a walk of level 0.
        let mut ranks = std::collections::HashMap::new();
        let mut x = self.fwd(NIL, 0);
        let mut r = 1usize;
        let mut prev = NIL;
        while x != NIL {
            ranks.insert(x, r);
            assert_eq!(self.node(x).backward, prev);
            if prev != NIL {
                let (p, n) = (self.node(prev), self.node(x));
                assert!(less(p.score, &p.member, n.score, &n.member));
            }
            prev = x;
            x = self.fwd(x, 0);
            r += 1;
        }
        assert_eq!(self.tail, prev);
        assert_eq!(r - 1, self.len);
        assert_eq!(self.dict.len(), self.len);
        let owned: usize = (1..self.nodes.len).map(|i| self.nodes[i].owned()).sum();
        assert_eq!(owned, self.owned);
        for i in 0..self.level {
            let mut x = NIL;
            let mut at = 0usize;
            loop {
                let l = self.nodes[x as usize].lv(i);
                if l.forward == NIL {
                    break;
                }
                at += l.span as usize;
                assert_eq!(ranks[&l.forward], at, "span at level {i}");
                x = l.forward;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The sorted set
// ---------------------------------------------------------------------------------------------

/// ZADD's input flags.
#[derive(Clone, Copy, Debug, Default)]
pub struct AddFlags {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
    pub incr: bool,
}

/// What one ZADD element did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AddOutcome {
    Added(f64),
    Updated(f64),
    /// Present and unchanged (the score it has).
    Same(f64),
    /// Skipped by NX / XX / GT / LT.
    Nop,
    /// INCR made the score NaN: nothing changed.
    Nan,
}

pub enum ZSet {
    Pack(Pack),
    Skip(Box<Skip>),
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::new()
    }
}

impl ZSet {
    pub fn new() -> ZSet {
        ZSet::Pack(Pack::new())
    }

    /// Redis's zsetTypeCreate: a listpack when `size_hint` elements of up to `max_len` bytes fit.
    pub fn with_hint(size_hint: usize, max_len: usize, enc: &EncodingLimits) -> ZSet {
        if size_hint <= enc.zset_max_listpack_entries && max_len <= enc.zset_max_listpack_value {
            ZSet::Pack(Pack::new())
        } else {
            ZSet::Skip(Box::new(Skip::new()))
        }
    }

    /// A set from elements sorted by (score, member), distinct, in the encoding Redis gives a
    /// stored result (zsetConvertToListpackIfNeeded).
    pub fn from_sorted<M: AsRef<[u8]>>(items: &[(M, f64)], enc: &EncodingLimits) -> ZSet {
        let max_len = items.iter().map(|(m, _)| m.as_ref().len()).max().unwrap_or(0);
        if items.len() <= enc.zset_max_listpack_entries && max_len <= enc.zset_max_listpack_value {
            let mut p = Pack::new();
            for (m, s) in items {
                Pack::encode(m.as_ref(), *s, &mut p.buf);
            }
            p.set_len(items.len());
            ZSet::Pack(p)
        } else {
            let mut s = Skip::new();
            for (m, sc) in items {
                s.insert(m.as_ref(), *sc);
            }
            ZSet::Skip(Box::new(s))
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            ZSet::Pack(_) => "listpack",
            ZSet::Skip(_) => "skiplist",
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        match self {
            ZSet::Pack(p) => p.len(),
            ZSet::Skip(s) => s.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn heap_bytes(&self) -> usize {
        match self {
            ZSet::Pack(p) => p.buf.capacity(),
            ZSet::Skip(s) => std::mem::size_of::<Skip>() + s.heap_bytes(),
        }
    }

    /// The listpack's raw bytes, when in that encoding (for persistence).
    pub fn listpack_bytes(&self) -> Option<&[u8]> {
        match self {
            ZSet::Pack(p) => Some(p.as_bytes()),
            ZSet::Skip(_) => None,
        }
    }

    /// Every element in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        let (pack, skip) = match self {
            ZSet::Pack(p) => (Some(p.iter()), None),
            ZSet::Skip(s) => (
                None,
                Some(SkipIter {
                    skip: s,
                    x: s.fwd(NIL, 0),
                }),
            ),
        };
        pack.into_iter().flatten().chain(skip.into_iter().flatten())
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Pack(p) => p.find(member).map(|(_, _, s)| s),
            ZSet::Skip(s) => s.score(member),
        }
    }

    /// To the skiplist encoding (zsetConvert(OBJ_ENCODING_SKIPLIST)); a no-op if it is one.
    pub fn convert_to_skiplist(&mut self) {
        if let ZSet::Pack(p) = self {
            let mut s = Skip::new();
            for (m, sc) in p.iter() {
                s.insert(m, sc);
            }
            *self = ZSet::Skip(Box::new(s));
        }
    }

    /// Redis's zsetAdd: one element of ZADD / ZINCRBY.
    pub fn add(&mut self, member: &[u8], score: f64, f: AddFlags, enc: &EncodingLimits) -> AddOutcome {
        // One member lookup: the skiplist node found is reused for the update.
        let (cur, node) = match self {
            ZSet::Pack(p) => (p.find(member).map(|(_, _, s)| s), NIL),
            ZSet::Skip(s) => match s.dict.get(member) {
                Some(&x) => (Some(s.node(x).score), x),
                None => (None, NIL),
            },
        };
        match cur {
            Some(cur) => {
                if f.nx {
                    return AddOutcome::Nop;
                }
                let mut score = score;
                if f.incr {
                    score += cur;
                    if score.is_nan() {
                        return AddOutcome::Nan;
                    }
                }
                if (f.lt && score >= cur) || (f.gt && score <= cur) {
                    return AddOutcome::Nop;
                }
                if score == cur {
                    return AddOutcome::Same(score);
                }
                match self {
                    ZSet::Pack(p) => {
                        let (start, end, _) = p.find(member).expect("present");
                        p.remove_at(start, end);
                        p.insert(member, score);
                    }
                    ZSet::Skip(s) => s.update(node, score),
                }
                AddOutcome::Updated(score)
            }
            None => {
                if f.xx {
                    return AddOutcome::Nop;
                }
                if let ZSet::Pack(p) = self {
                    if p.len() + 1 > enc.zset_max_listpack_entries || member.len() > enc.zset_max_listpack_value {
                        self.convert_to_skiplist();
                    }
                }
                match self {
                    ZSet::Pack(p) => p.insert(member, score),
                    ZSet::Skip(s) => s.insert(member, score),
                }
                AddOutcome::Added(score)
            }
        }
    }

    /// Removes `member`; its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Pack(p) => {
                let (start, end, s) = p.find(member)?;
                p.remove_at(start, end);
                Some(s)
            }
            ZSet::Skip(s) => s.remove(member),
        }
    }

    /// 0-based rank of `member` in ascending order, with its score.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        match self {
            ZSet::Pack(p) => p
                .iter()
                .enumerate()
                .find(|(_, (m, _))| *m == member)
                .map(|(i, (_, s))| (i, s)),
            ZSet::Skip(s) => {
                let score = s.score(member)?;
                Some((s.count_while(|sc, m| less(sc, m, score, member)), score))
            }
        }
    }

    /// How many elements sort before the range's start.
    pub fn count_below(&self, r: &impl Range) -> usize {
        match self {
            ZSet::Pack(p) => p.iter().take_while(|&(m, s)| r.below_min(s, m)).count(),
            ZSet::Skip(s) => s.count_while(|sc, m| r.below_min(sc, m)),
        }
    }

    /// How many elements do not sort past the range's end.
    pub fn count_upto(&self, r: &impl Range) -> usize {
        match self {
            ZSet::Pack(p) => p.iter().take_while(|&(m, s)| !r.above_max(s, m)).count(),
            ZSet::Skip(s) => s.count_while(|sc, m| !r.above_max(sc, m)),
        }
    }

    /// Whether the element at 0-based `rank` (< len) passes `f`.
    pub fn test_at(&self, rank: usize, f: impl Fn(&[u8], f64) -> bool) -> bool {
        let mut ok = false;
        self.visit(rank, false, |m, s| {
            ok = f(m, s);
            false
        });
        ok
    }

    /// The highest rank whose element is not past the range's end (Redis's zzlLastInLexRange
    /// scans a listpack from its tail; a skiplist is searched by its levels, as
    /// zslLastInLexRange does).
    pub fn last_not_above(&self, r: &impl Range) -> Option<usize> {
        match self {
            ZSet::Pack(_) => {
                let mut rank = self.len();
                let mut found = None;
                self.visit(rank.checked_sub(1)?, true, |m, s| {
                    rank -= 1;
                    if r.above_max(s, m) {
                        true
                    } else {
                        found = Some(rank);
                        false
                    }
                });
                found
            }
            ZSet::Skip(_) => self.count_upto(r).checked_sub(1),
        }
    }

    /// The 0-based rank range `[start, end)` of the elements in `r`.
    pub fn rank_span(&self, r: &impl Range) -> (usize, usize) {
        let lo = self.count_below(r);
        let hi = self.count_upto(r);
        (lo, hi.max(lo))
    }

    /// Calls `f` on elements from 0-based `rank` (< len) towards the end (or the start when
    /// `rev`) until it returns false or the set ends.
    pub fn visit(&self, rank: usize, rev: bool, mut f: impl FnMut(&[u8], f64) -> bool) {
        if rank >= self.len() {
            return;
        }
        match self {
            ZSet::Pack(p) => {
                if !rev {
                    let mut it = PackIter {
                        pack: p,
                        pos: p.offset_of(rank),
                    };
                    for (m, s) in &mut it {
                        if !f(m, s) {
                            return;
                        }
                    }
                } else {
                    let mut offs = Vec::with_capacity(rank + 1);
                    let mut pos = HEADER;
                    for _ in 0..=rank {
                        offs.push(pos);
                        pos = p.entry(pos).2;
                    }
                    for &at in offs.iter().rev() {
                        let (m, s, _) = p.entry(at);
                        if !f(m, s) {
                            return;
                        }
                    }
                }
            }
            ZSet::Skip(s) => {
                let mut x = s.at_rank(rank);
                while x != NIL {
                    let n = s.node(x);
                    if !f(&n.member, n.score) {
                        return;
                    }
                    x = if rev { n.backward } else { n.inline[0].forward };
                }
            }
        }
    }

    /// Up to `n` elements from the start (or the end when `rev`), removed.
    pub fn pop(&mut self, n: usize, rev: bool) -> Vec<(Vec<u8>, f64)> {
        let len = self.len();
        let n = n.min(len);
        if n == 0 {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(n);
        let start = if rev { len - 1 } else { 0 };
        self.visit(start, rev, |m, s| {
            out.push((m.to_vec(), s));
            out.len() < n
        });
        for (m, _) in &out {
            self.remove(m);
        }
        out
    }

    /// Elements at 0-based ranks `[start, end)`, ascending.
    pub fn collect_ranks(&self, start: usize, end: usize) -> Vec<(Vec<u8>, f64)> {
        let mut out = Vec::with_capacity(end.saturating_sub(start));
        if start < end {
            self.visit(start, false, |m, s| {
                out.push((m.to_vec(), s));
                out.len() < end - start
            });
        }
        out
    }

    /// ZSCAN over the member index: (next cursor). Listpacks answer everything at once.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], f64)) -> u64 {
        match self {
            ZSet::Pack(p) => {
                for (m, s) in p.iter() {
                    f(m, s);
                }
                0
            }
            ZSet::Skip(s) => s.dict.scan(cursor, |k, &x| f(k.bytes(), s.node(x).score)),
        }
    }

    /// Skiplist only: a uniformly random element (ZRANDMEMBER); by rank so O(log n).
    pub fn at(&self, rank: usize) -> Option<(&[u8], f64)> {
        if rank >= self.len() {
            return None;
        }
        match self {
            ZSet::Pack(p) => {
                let (m, s, _) = p.entry(p.offset_of(rank));
                Some((m, s))
            }
            ZSet::Skip(s) => {
                let n = s.node(s.at_rank(rank));
                Some((&*n.member, n.score))
            }
        }
    }
}

struct SkipIter<'a> {
    skip: &'a Skip,
    x: u32,
}

impl<'a> Iterator for SkipIter<'a> {
    type Item = (&'a [u8], f64);
    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        if self.x == NIL {
            return None;
        }
        let n = self.skip.node(self.x);
        self.x = n.inline[0].forward;
        Some((&*n.member, n.score))
    }
}

impl Clone for ZSet {
    fn clone(&self) -> ZSet {
        match self {
            ZSet::Pack(p) => ZSet::Pack(p.clone()),
            ZSet::Skip(s) => {
                let mut n = Skip::new();
                let mut x = s.fwd(NIL, 0);
                while x != NIL {
                    let node = s.node(x);
                    n.insert(&node.member, node.score);
                    x = node.inline[0].forward;
                }
                ZSet::Skip(Box::new(n))
            }
        }
    }
}

impl PartialEq for ZSet {
    fn eq(&self, o: &ZSet) -> bool {
        self.len() == o.len()
            && self
                .iter()
                .zip(o.iter())
                .all(|(a, b)| a.0 == b.0 && a.1.to_bits() == b.1.to_bits())
    }
}

impl std::fmt::Debug for ZSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(m, s)| (String::from_utf8_lossy(m), s)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn small_enough() {
        assert_eq!(std::mem::size_of::<ZSet>(), 16);
    }

    fn lim(entries: usize) -> EncodingLimits {
        EncodingLimits {
            zset_max_listpack_entries: entries,
            ..EncodingLimits::default()
        }
    }

    #[test]
    fn pack_scores_roundtrip() {
        let mut z = ZSet::new();
        let e = lim(128);
        for s in [
            0.0,
            1.0,
            -1.0,
            300.0,
            -70000.0,
            1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            3e9,
        ] {
            let m = format!("{s:?}");
            z.add(m.as_bytes(), s, AddFlags::default(), &e);
        }
        for s in [
            0.0,
            1.0,
            -1.0,
            300.0,
            -70000.0,
            1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            3e9,
        ] {
            let m = format!("{s:?}");
            assert_eq!(z.score(m.as_bytes()).map(f64::to_bits), Some(s.to_bits()));
        }
        assert_eq!(z.encoding(), "listpack");
    }

    #[test]
    fn converts_at_thresholds() {
        let e = lim(4);
        let mut z = ZSet::new();
        for i in 0..4 {
            z.add(format!("m{i}").as_bytes(), i as f64, AddFlags::default(), &e);
        }
        assert_eq!(z.encoding(), "listpack");
        z.add(b"m9", 9.0, AddFlags::default(), &e);
        assert_eq!(z.encoding(), "skiplist");
        let mut z = ZSet::new();
        z.add(&[b'x'; 65], 1.0, AddFlags::default(), &e);
        assert_eq!(z.encoding(), "skiplist");
        let items = [(b"a".to_vec(), 1.0), (b"b".to_vec(), 2.0)];
        assert_eq!(ZSet::from_sorted(&items, &e).encoding(), "listpack");
        assert_eq!(ZSet::from_sorted(&items, &lim(1)).encoding(), "skiplist");
    }

    #[test]
    fn lex_range_helpers() {
        let r = |min, max| LexRange { min, max };
        assert!(r(LexBound::Incl(b"b"), LexBound::Incl(b"a")).is_empty_range());
        assert!(r(LexBound::Incl(b"a"), LexBound::Excl(b"a")).is_empty_range());
        assert!(r(LexBound::PosInf, LexBound::NegInf).is_empty_range());
        assert!(!r(LexBound::Incl(b"a"), LexBound::Incl(b"a")).is_empty_range());
        assert!(!r(LexBound::NegInf, LexBound::PosInf).is_empty_range());
        // Mixed scores: member order is not lex order, so the last element not past the end
        // is found by scanning from the tail, in both encodings.
        for entries in [128, 0] {
            let mut z = ZSet::new();
            for (m, s) in [(&b"m0"[..], -1.0), (b"007", 1.0), (b"b", 2.0), (b"a", 3.0)] {
                z.add(m, s, AddFlags::default(), &lim(entries));
            }
            let upto_b = r(LexBound::NegInf, LexBound::Incl(b"b"));
            assert_eq!(z.last_not_above(&upto_b), Some(3), "{}", z.encoding());
            assert!(z.test_at(0, |m, s| m == b"m0" && s == -1.0));
            assert!(!z.test_at(3, |m, _| m == b"b"));
        }
        let mut z = ZSet::new();
        z.add(b"z", 1.0, AddFlags::default(), &lim(128));
        assert_eq!(z.last_not_above(&r(LexBound::NegInf, LexBound::Excl(b"z"))), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8, i8),
        Del(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..60, -10i8..10).prop_map(|(m, s)| Op::Add(m, s)),
            1 => (0u8..60).prop_map(Op::Del),
        ]
    }

    fn member(m: u8) -> Vec<u8> {
        format!("m{m:02}").into_bytes()
    }

    proptest! {
        #[test]
        fn matches_a_model(ops in proptest::collection::vec(op(), 1..300), entries in prop_oneof![Just(0usize), Just(8), Just(1000)], lo in -12i32..12, width in 0i32..10, lexa in 0u8..60, lexb in 0u8..60) {
            let e = lim(entries);
            let mut z = ZSet::new();
            let mut model: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
            for o in &ops {
                match *o {
                    Op::Add(m, s) => {
                        z.add(&member(m), s as f64 / 2.0, AddFlags::default(), &e);
                        model.insert(member(m), s as f64 / 2.0);
                    }
                    Op::Del(m) => {
                        prop_assert_eq!(z.remove(&member(m)), model.remove(&member(m)));
                    }
                }
                if let ZSet::Skip(s) = &z { s.check(); }
            }
            let mut sorted: Vec<(Vec<u8>, f64)> = model.iter().map(|(m, s)| (m.clone(), *s)).collect();
            sorted.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then(a.0.cmp(&b.0)));
            prop_assert_eq!(z.len(), sorted.len());
            let got: Vec<(Vec<u8>, f64)> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
            prop_assert_eq!(&got, &sorted);
            for (i, (m, s)) in sorted.iter().enumerate() {
                prop_assert_eq!(z.rank(m), Some((i, *s)));
                prop_assert_eq!(z.at(i).map(|(m, s)| (m.to_vec(), s)), Some((m.clone(), *s)));
            }
            // Score range.
            let r = ScoreRange { min: lo as f64 / 2.0, max: (lo + width) as f64 / 2.0, minex: lo % 2 == 0, maxex: width % 3 == 0 };
            let want: Vec<&Vec<u8>> = sorted.iter().filter(|(_, s)| !r.below_min(*s, b"") && !r.above_max(*s, b"")).map(|(m, _)| m).collect();
            let (a, b) = z.rank_span(&r);
            let got: Vec<Vec<u8>> = z.collect_ranks(a, b).into_iter().map(|(m, _)| m).collect();
            prop_assert_eq!(got.iter().collect::<Vec<_>>(), want);
            let mut rev = vec![];
            if b > a { z.visit(b - 1, true, |m, _| { rev.push(m.to_vec()); rev.len() < b - a }); }
            rev.reverse();
            prop_assert_eq!(rev, got);
            // Lex range over a set with equal scores.
            let mut lz = ZSet::new();
            for m in model.keys() { lz.add(m, 0.0, AddFlags::default(), &e); }
            let (x, y) = (member(lexa), member(lexb));
            let lr = LexRange { min: LexBound::Incl(&x), max: LexBound::Excl(&y) };
            let want: Vec<&Vec<u8>> = model.keys().filter(|m| **m >= x && **m < y).collect();
            let (a, b) = lz.rank_span(&lr);
            let got: Vec<Vec<u8>> = lz.collect_ranks(a, b).into_iter().map(|(m, _)| m).collect();
            prop_assert_eq!(got.iter().collect::<Vec<_>>(), want);
            prop_assert_eq!(z.clone(), z);
        }
    }

    #[test]
    fn update_moves_nodes() {
        let e = lim(0);
        let mut z = ZSet::new();
        for i in 0..200 {
            z.add(format!("{i}").as_bytes(), i as f64, AddFlags::default(), &e);
        }
        for i in 0..200 {
            let f = AddFlags {
                incr: true,
                ..AddFlags::default()
            };
            z.add(format!("{i}").as_bytes(), ((i * 7919) % 300) as f64, f, &e);
            if let ZSet::Skip(s) = &z {
                s.check();
            }
        }
        let mut n = 0;
        z.scan(0, |_, _| n += 1);
        let mut c = 0;
        let mut total = 0;
        loop {
            c = z.scan(c, |_, _| total += 1);
            if c == 0 {
                break;
            }
        }
        assert!(total >= 200);
        assert_eq!(z.pop(3, false).len(), 3);
        assert_eq!(z.len(), 197);
    }

    #[test]
    fn big_skiplist_across_arena_chunks() {
        let e = lim(0);
        let mut z = ZSet::new();
        let mut model = BTreeMap::new();
        for i in 0..3000u32 {
            let m = format!("m{}", i.wrapping_mul(2654435761) % 5000);
            let s = ((i * 7) % 1000) as f64;
            z.add(m.as_bytes(), s, AddFlags::default(), &e);
            model.insert(m, s);
            if i % 3 == 0 {
                let gone = format!("m{}", (i / 3).wrapping_mul(2654435761) % 5000);
                assert_eq!(z.remove(gone.as_bytes()), model.remove(&gone));
            }
        }
        if let ZSet::Skip(s) = &z {
            s.check();
        }
        let mut want: Vec<(String, f64)> = model.into_iter().collect();
        want.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then(a.0.cmp(&b.0)));
        let got: Vec<(String, f64)> = z
            .iter()
            .map(|(m, s)| (String::from_utf8(m.to_vec()).unwrap(), s))
            .collect();
        assert_eq!(got, want);
        assert!(z.heap_bytes() > 0);
        let c = z.clone();
        assert_eq!(c, z);
    }
}
