//! The RDB reader: every type and encoding Redis 7.0 (and 7.2) writes, plus the older
//! ones it still reads (linked lists, zipmaps, ziplists, quicklists of ziplists, string
//! doubles). Every read is bounds-checked: a truncated or corrupt file is an [`Error`]
//! naming the offset, never a panic. Streams and module values are refused by name.

use std::borrow::Cow;

use super::*;
use crate::store::hash::Hash;
use crate::store::list::List;
use crate::store::set::Set;
use crate::store::value::{itoa_buf, Str, Value};
use crate::store::zset::{AddFlags, AddOutcome, ZSet};
use crate::store::EncodingLimits;

/// What is wrong, and where (a byte offset into the file or payload).
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub offset: usize,
    pub msg: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at offset {})", self.msg, self.offset)
    }
}

pub type R<T> = Result<T, Error>;

/// A cursor over the bytes of a file or payload.
pub struct Input<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Input<'a> {
    pub fn new(buf: &'a [u8]) -> Input<'a> {
        Input { buf, pos: 0 }
    }

    pub fn fail<T>(&self, msg: impl Into<String>) -> R<T> {
        Err(Error {
            offset: self.pos,
            msg: msg.into(),
        })
    }

    pub fn u8(&mut self) -> R<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.fail("unexpected end of file"),
        }
    }

    pub fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if n > self.buf.len() - self.pos {
            return self.fail(format!("unexpected end of file reading {n} bytes"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> R<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// rdbLoadLenByRef: (value, is a special string encoding).
    pub fn len_enc(&mut self) -> R<(u64, bool)> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => ((b & 0x3f) as u64, false),
            1 => ((((b & 0x3f) as u64) << 8) | self.u8()? as u64, false),
            3 => ((b & 0x3f) as u64, true),
            _ if b == LEN_32BIT => (u32::from_be_bytes(self.array()?) as u64, false),
            _ if b == LEN_64BIT => (u64::from_be_bytes(self.array()?), false),
            _ => return self.fail(format!("unknown length encoding {b:#04x}")),
        })
    }

    pub fn length(&mut self) -> R<u64> {
        match self.len_enc()? {
            (n, false) => Ok(n),
            _ => self.fail("a string encoding where a length was expected"),
        }
    }

    /// A count of items that will each take at least one byte: bounded by what is left,
    /// so a corrupt length never makes the reader reserve a huge buffer.
    fn count(&mut self) -> R<usize> {
        let n = self.length()?;
        if n > (self.buf.len() - self.pos) as u64 {
            return self.fail(format!("length {n} exceeds the data left"));
        }
        Ok(n as usize)
    }

    /// rdbGenericLoadStringObject.
    pub fn string(&mut self) -> R<Cow<'a, [u8]>> {
        let (n, enc) = self.len_enc()?;
        if !enc {
            if n > (self.buf.len() - self.pos) as u64 {
                return self.fail(format!("string of {n} bytes exceeds the data left"));
            }
            return Ok(Cow::Borrowed(self.take(n as usize)?));
        }
        let mut b = itoa_buf::Buf::new();
        let v = match n as u8 {
            ENC_INT8 => self.u8()? as i8 as i64,
            ENC_INT16 => i16::from_le_bytes(self.array()?) as i64,
            ENC_INT32 => i32::from_le_bytes(self.array()?) as i64,
            ENC_LZF => {
                let clen = self.length()?;
                let ulen = self.length()?;
                let at = self.pos;
                if clen > (self.buf.len() - self.pos) as u64 || ulen > 1 << 32 {
                    return self.fail("LZF string exceeds the data left");
                }
                let z = self.take(clen as usize)?;
                return match super::lzf::decompress(z, ulen as usize) {
                    Some(v) => Ok(Cow::Owned(v)),
                    None => Err(Error {
                        offset: at,
                        msg: "invalid LZF compressed string".into(),
                    }),
                };
            }
            other => return self.fail(format!("unknown string encoding {other}")),
        };
        Ok(Cow::Owned(b.format(v).to_vec()))
    }

    /// rdbLoadDoubleValue (RDB_TYPE_ZSET): a length byte, then the decimal form.
    fn string_double(&mut self) -> R<f64> {
        let n = self.u8()?;
        match n {
            255 => Ok(f64::NEG_INFINITY),
            254 => Ok(f64::INFINITY),
            253 => Ok(f64::NAN),
            _ => {
                let s = self.take(n as usize)?;
                match std::str::from_utf8(s).ok().and_then(|s| s.parse::<f64>().ok()) {
                    Some(d) => Ok(d),
                    None => self.fail("invalid double"),
                }
            }
        }
    }

    fn binary_double(&mut self) -> R<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }
}

// ---- compact blobs ---------------------------------------------------------------------

/// Elements of a listpack (listpack.c's layout, validated: header, entries, back
/// lengths, terminator). `at` is the blob's offset, for errors.
pub fn listpack(b: &[u8], at: usize) -> R<Vec<Vec<u8>>> {
    let bad = |msg: &str, p: usize| -> R<Vec<Vec<u8>>> {
        Err(Error {
            offset: at + p,
            msg: format!("invalid listpack: {msg}"),
        })
    };
    if b.len() < 7 || u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize != b.len() {
        return bad("header length mismatch", 0);
    }
    let declared = u16::from_le_bytes([b[4], b[5]]) as usize;
    let mut out = Vec::new();
    let mut p = 6;
    let mut num = itoa_buf::Buf::new();
    loop {
        let Some(&e) = b.get(p) else {
            return bad("missing terminator", p);
        };
        if e == 0xFF {
            break;
        }
        let need = |n: usize| -> bool { p + n <= b.len() };
        let int = |bytes: &[u8]| -> i64 {
            let mut raw = [0u8; 8];
            raw[..bytes.len()].copy_from_slice(bytes);
            let shift = 64 - 8 * bytes.len() as u32;
            ((u64::from_le_bytes(raw) << shift) as i64) >> shift
        };
        let (elem, size): (Vec<u8>, usize) = if e & 0x80 == 0 {
            (num.format((e & 0x7f) as i64).to_vec(), 1)
        } else if e & 0xC0 == 0x80 {
            let n = (e & 0x3f) as usize;
            if !need(1 + n) {
                return bad("entry past the end", p);
            }
            (b[p + 1..p + 1 + n].to_vec(), 1 + n)
        } else if e & 0xE0 == 0xC0 {
            if !need(2) {
                return bad("entry past the end", p);
            }
            let u = (((e & 0x1f) as i64) << 8) | b[p + 1] as i64;
            let v = if u >= 1 << 12 { u - (1 << 13) } else { u };
            (num.format(v).to_vec(), 2)
        } else if e & 0xF0 == 0xE0 {
            if !need(2) {
                return bad("entry past the end", p);
            }
            let n = (((e & 0x0f) as usize) << 8) | b[p + 1] as usize;
            if !need(2 + n) {
                return bad("entry past the end", p);
            }
            (b[p + 2..p + 2 + n].to_vec(), 2 + n)
        } else {
            let width = match e {
                0xF1 => 2,
                0xF2 => 3,
                0xF3 => 4,
                0xF4 => 8,
                0xF0 => 0,
                _ => return bad("unknown entry encoding", p),
            };
            if width == 0 {
                if !need(5) {
                    return bad("entry past the end", p);
                }
                let n = u32::from_le_bytes([b[p + 1], b[p + 2], b[p + 3], b[p + 4]]) as usize;
                if !need(5 + n) {
                    return bad("entry past the end", p);
                }
                (b[p + 5..p + 5 + n].to_vec(), 5 + n)
            } else {
                if !need(1 + width) {
                    return bad("entry past the end", p);
                }
                (num.format(int(&b[p + 1..p + 1 + width])).to_vec(), 1 + width)
            }
        };
        let mut bl = Vec::with_capacity(5);
        super::write::backlen_into(&mut bl, size);
        if b.get(p + size..p + size + bl.len()) != Some(&bl[..]) {
            return bad("wrong back length", p + size);
        }
        p += size + bl.len();
        out.push(elem);
    }
    if p + 1 != b.len() {
        return bad("data after the terminator", p);
    }
    if declared != 65535 && declared != out.len() {
        return bad("element count mismatch", 4);
    }
    Ok(out)
}

/// Elements of a ziplist (ziplist.c, read only: Redis stopped writing them in 7.0).
pub fn ziplist(b: &[u8], at: usize) -> R<Vec<Vec<u8>>> {
    let bad = |msg: &str, p: usize| -> R<Vec<Vec<u8>>> {
        Err(Error {
            offset: at + p,
            msg: format!("invalid ziplist: {msg}"),
        })
    };
    if b.len() < 11 || u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize != b.len() {
        return bad("header length mismatch", 0);
    }
    let declared = u16::from_le_bytes([b[8], b[9]]) as usize;
    let tail = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    let mut out = Vec::new();
    let mut p = 10;
    let mut last = 10;
    let mut num = itoa_buf::Buf::new();
    loop {
        let Some(&first) = b.get(p) else {
            return bad("missing terminator", p);
        };
        if first == 0xFF {
            break;
        }
        last = p;
        p += if first < 254 { 1 } else { 5 };
        let Some(&e) = b.get(p) else {
            return bad("entry past the end", p);
        };
        let int = |bytes: &[u8]| -> i64 {
            let mut raw = [0u8; 8];
            raw[..bytes.len()].copy_from_slice(bytes);
            let shift = 64 - 8 * bytes.len() as u32;
            ((u64::from_le_bytes(raw) << shift) as i64) >> shift
        };
        let (hdr, n, is_int) = match e >> 6 {
            0 => (1, (e & 0x3f) as usize, false),
            1 => match b.get(p + 1) {
                Some(&x) => (2, (((e & 0x3f) as usize) << 8) | x as usize, false),
                None => return bad("entry past the end", p),
            },
            2 => match b.get(p + 1..p + 5) {
                Some(x) => (5, u32::from_be_bytes([x[0], x[1], x[2], x[3]]) as usize, false),
                None => return bad("entry past the end", p),
            },
            _ => match e {
                0xC0 => (1, 2, true),
                0xD0 => (1, 4, true),
                0xE0 => (1, 8, true),
                0xF0 => (1, 3, true),
                0xFE => (1, 1, true),
                0xF1..=0xFD => (1, 0, true),
                _ => return bad("unknown entry encoding", p),
            },
        };
        let Some(data) = b.get(p + hdr..p + hdr + n) else {
            return bad("entry past the end", p);
        };
        out.push(if !is_int {
            data.to_vec()
        } else if n == 0 {
            num.format((e & 0x0f) as i64 - 1).to_vec()
        } else {
            num.format(int(data)).to_vec()
        });
        p += hdr + n;
    }
    if p + 1 != b.len() {
        return bad("data after the terminator", p);
    }
    if tail != last {
        return bad("wrong tail offset", 4);
    }
    if declared != 65535 && declared != out.len() {
        return bad("element count mismatch", 8);
    }
    Ok(out)
}

/// Field/value pairs of a zipmap (the hash encoding before Redis 2.6).
fn zipmap(b: &[u8], at: usize) -> R<Vec<Vec<u8>>> {
    let bad = |p: usize| -> R<Vec<Vec<u8>>> {
        Err(Error {
            offset: at + p,
            msg: "invalid zipmap".into(),
        })
    };
    let mut out = Vec::new();
    let mut p = 1;
    loop {
        let Some(&l) = b.get(p) else { return bad(p) };
        if l == 255 {
            break;
        }
        let read_len = |p: &mut usize| -> Option<usize> {
            let l = *b.get(*p)?;
            if l < 254 {
                *p += 1;
                Some(l as usize)
            } else {
                let x = b.get(*p + 1..*p + 5)?;
                *p += 5;
                Some(u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as usize)
            }
        };
        let Some(klen) = read_len(&mut p) else { return bad(p) };
        let Some(k) = b.get(p..p + klen) else { return bad(p) };
        p += klen;
        let Some(vlen) = read_len(&mut p) else { return bad(p) };
        let Some(&free) = b.get(p) else { return bad(p) };
        p += 1;
        let Some(v) = b.get(p..p + vlen) else { return bad(p) };
        p += vlen + free as usize;
        out.push(k.to_vec());
        out.push(v.to_vec());
    }
    Ok(out)
}

/// Members of an intset (intset.c: encoding, length, sorted little-endian values).
fn intset(b: &[u8], at: usize) -> R<Vec<i64>> {
    let bad = |msg: &str| -> R<Vec<i64>> {
        Err(Error {
            offset: at,
            msg: format!("invalid intset: {msg}"),
        })
    };
    if b.len() < 8 {
        return bad("too short");
    }
    let width = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let n = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return bad("unknown encoding");
    }
    if b.len() != 8 + width * n {
        return bad("length mismatch");
    }
    let mut out = Vec::with_capacity(n);
    for c in b[8..].chunks_exact(width) {
        let mut raw = [0u8; 8];
        raw[..width].copy_from_slice(c);
        let shift = 64 - 8 * width as u32;
        let v = ((u64::from_le_bytes(raw) << shift) as i64) >> shift;
        if out.last().is_some_and(|&l| l >= v) {
            return bad("not sorted or duplicate");
        }
        out.push(v);
    }
    Ok(out)
}

// ---- values ----------------------------------------------------------------------------

/// What a type byte names, for errors.
pub fn type_name(t: u8) -> Cow<'static, str> {
    Cow::Borrowed(match t {
        TYPE_STRING => "string",
        TYPE_LIST | TYPE_LIST_ZIPLIST | TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => "list",
        TYPE_SET | TYPE_SET_INTSET | TYPE_SET_LISTPACK => "set",
        TYPE_ZSET | TYPE_ZSET_2 | TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK => "zset",
        TYPE_HASH | TYPE_HASH_ZIPMAP | TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK => "hash",
        TYPE_MODULE_PRE_GA | TYPE_MODULE_2 => "module",
        TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 => "stream",
        _ => return Cow::Owned(format!("unknown type {t}")),
    })
}

fn build_hash(inp: &Input<'_>, at: usize, items: &[Vec<u8>], lim: &EncodingLimits) -> R<Option<Value>> {
    if items.len() % 2 != 0 {
        return inp.fail("hash with an odd number of elements");
    }
    if items.is_empty() {
        return Ok(None);
    }
    let mut h = Hash::new();
    h.prepare_write(items.len() / 2, std::iter::empty(), lim);
    for pair in items.chunks_exact(2) {
        if !h.set(&pair[0], &pair[1], lim) {
            return Err(Error {
                offset: at,
                msg: "duplicate hash field".into(),
            });
        }
    }
    Ok(Some(Value::Hash(h)))
}

fn build_set<'b>(
    at: usize,
    n: usize,
    members: impl Iterator<Item = Cow<'b, [u8]>>,
    lim: &EncodingLimits,
) -> R<Option<Value>> {
    let mut set: Option<Set> = None;
    for m in members {
        let s = set.get_or_insert_with(|| Set::create(&m, n, lim));
        if !s.add(&m, lim) {
            return Err(Error {
                offset: at,
                msg: "duplicate set member".into(),
            });
        }
    }
    Ok(set.map(Value::Set))
}

fn build_zset(at: usize, items: impl Iterator<Item = (Vec<u8>, f64)>, lim: &EncodingLimits) -> R<Option<Value>> {
    let mut z = ZSet::new();
    for (m, s) in items {
        if s.is_nan() {
            return Err(Error {
                offset: at,
                msg: "NaN score in a sorted set".into(),
            });
        }
        if !matches!(z.add(&m, s, AddFlags::default(), lim), AddOutcome::Added(_)) {
            return Err(Error {
                offset: at,
                msg: "duplicate sorted set member".into(),
            });
        }
    }
    Ok((!z.is_empty()).then_some(Value::ZSet(z)))
}

fn parse_score(s: &[u8], at: usize) -> R<f64> {
    match std::str::from_utf8(s).ok().and_then(|s| s.parse::<f64>().ok()) {
        Some(d) => Ok(d),
        None => Err(Error {
            offset: at,
            msg: "invalid sorted set score".into(),
        }),
    }
}

/// rdbLoadObject: the value of type `t` (its body follows). `None` for an empty
/// collection, which Redis skips when loading a file and refuses in RESTORE.
pub fn value(inp: &mut Input<'_>, t: u8, lim: &EncodingLimits) -> R<Option<Value>> {
    let at = inp.pos;
    let fill = lim.list_max_listpack_size;
    match t {
        TYPE_STRING => Ok(Some(Value::Str(Str::from_set(&inp.string()?)))),
        TYPE_LIST => {
            let n = inp.count()?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(inp.string()?.into_owned());
            }
            Ok(list(items, fill))
        }
        TYPE_LIST_ZIPLIST => {
            let blob = inp.string()?;
            Ok(list(ziplist(&blob, at)?, fill))
        }
        TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
            let nodes = inp.count()?;
            let mut items = Vec::new();
            for _ in 0..nodes {
                let container = if t == TYPE_LIST_QUICKLIST_2 {
                    inp.length()?
                } else {
                    QUICKLIST_NODE_PACKED
                };
                let node_at = inp.pos;
                let blob = inp.string()?;
                match container {
                    QUICKLIST_NODE_PLAIN => items.push(blob.into_owned()),
                    QUICKLIST_NODE_PACKED if t == TYPE_LIST_QUICKLIST => items.extend(ziplist(&blob, node_at)?),
                    QUICKLIST_NODE_PACKED => {
                        let elems = listpack(&blob, node_at)?;
                        if elems.is_empty() {
                            return inp.fail("empty quicklist node");
                        }
                        items.extend(elems)
                    }
                    c => return inp.fail(format!("unknown quicklist node container {c}")),
                }
            }
            Ok(list(items, fill))
        }
        TYPE_SET => {
            let n = inp.count()?;
            let mut err = None;
            let members = (0..n).map_while(|_| match inp.string() {
                Ok(s) => Some(s),
                Err(e) => {
                    err = Some(e);
                    None
                }
            });
            let members: Vec<Cow<'_, [u8]>> = members.collect();
            if let Some(e) = err {
                return Err(e);
            }
            build_set(at, n, members.into_iter(), lim)
        }
        TYPE_SET_INTSET => {
            let blob = inp.string()?;
            let vals = intset(&blob, at)?;
            let mut b = itoa_buf::Buf::new();
            let members: Vec<Vec<u8>> = vals.iter().map(|&v| b.format(v).to_vec()).collect();
            build_set(at, members.len(), members.into_iter().map(Cow::Owned), lim)
        }
        TYPE_SET_LISTPACK => {
            let blob = inp.string()?;
            let members = listpack(&blob, at)?;
            build_set(at, members.len(), members.into_iter().map(Cow::Owned), lim)
        }
        TYPE_ZSET | TYPE_ZSET_2 => {
            let n = inp.count()?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                let m = inp.string()?.into_owned();
                let s = if t == TYPE_ZSET_2 {
                    inp.binary_double()?
                } else {
                    inp.string_double()?
                };
                items.push((m, s));
            }
            build_zset(at, items.into_iter(), lim)
        }
        TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK => {
            let blob = inp.string()?;
            let elems = if t == TYPE_ZSET_ZIPLIST {
                ziplist(&blob, at)?
            } else {
                listpack(&blob, at)?
            };
            if elems.len() % 2 != 0 {
                return inp.fail("sorted set with an odd number of elements");
            }
            let mut items = Vec::with_capacity(elems.len() / 2);
            let mut it = elems.into_iter();
            while let (Some(m), Some(s)) = (it.next(), it.next()) {
                items.push((m, parse_score(&s, at)?));
            }
            build_zset(at, items.into_iter(), lim)
        }
        TYPE_HASH => {
            let n = inp.count()?;
            let mut items = Vec::with_capacity(2 * n);
            for _ in 0..2 * n {
                items.push(inp.string()?.into_owned());
            }
            build_hash(inp, at, &items, lim)
        }
        TYPE_HASH_ZIPMAP | TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK => {
            let blob = inp.string()?;
            let items = match t {
                TYPE_HASH_ZIPMAP => zipmap(&blob, at)?,
                TYPE_HASH_ZIPLIST => ziplist(&blob, at)?,
                _ => listpack(&blob, at)?,
            };
            build_hash(inp, at, &items, lim)
        }
        TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 => Err(Error {
            offset: at - 1,
            msg: format!("a stream value (RDB type {t}): basalt has no streams"),
        }),
        TYPE_MODULE_PRE_GA | TYPE_MODULE_2 => Err(Error {
            offset: at - 1,
            msg: format!("a module value (RDB type {t}): basalt loads no modules"),
        }),
        _ => Err(Error {
            offset: at - 1,
            msg: format!("unknown RDB value type {t}"),
        }),
    }
}

fn list(items: Vec<Vec<u8>>, fill: i32) -> Option<Value> {
    (!items.is_empty()).then(|| Value::List(List::from_items(items.iter().map(Vec::as_slice), fill)))
}

// ---- files -----------------------------------------------------------------------------

/// One key read from a file.
#[derive(Debug)]
pub struct KeyItem {
    pub db: usize,
    pub key: Vec<u8>,
    /// `None`: an empty collection (Redis skips those).
    pub value: Option<Value>,
    pub expire_ms: Option<u64>,
    pub idle: Option<u64>,
    pub freq: Option<u8>,
}

#[derive(Debug)]
pub enum Item {
    Aux(Vec<u8>, Vec<u8>),
    /// RESIZEDB hint for the current database: (keys, keys with a TTL).
    Resize(u64, u64),
    Key(KeyItem),
    /// A function library's code (RDB_OPCODE_FUNCTION2).
    Function(Vec<u8>),
    /// The end; the checksum has been verified (or was 0: not computed by the writer).
    Eof,
}

/// Reads a whole RDB file item by item.
pub struct FileReader<'a> {
    pub inp: Input<'a>,
    pub version: u32,
    db: usize,
}

impl<'a> FileReader<'a> {
    pub fn new(buf: &'a [u8]) -> R<FileReader<'a>> {
        let mut inp = Input::new(buf);
        let magic = inp.take(9).or_else(|_| inp.fail("file too short for an RDB header"))?;
        if &magic[..5] != b"REDIS" {
            return Err(Error {
                offset: 0,
                msg: "wrong signature: not an RDB file".into(),
            });
        }
        let version = std::str::from_utf8(&magic[5..])
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|v| (1..=RDB_VERSION_MAX_READ).contains(v));
        let Some(version) = version else {
            return Err(Error {
                offset: 5,
                msg: format!(
                    "can't handle RDB format version {}",
                    String::from_utf8_lossy(&magic[5..])
                ),
            });
        };
        Ok(FileReader { inp, version, db: 0 })
    }

    pub fn next(&mut self, lim: &EncodingLimits) -> R<Item> {
        let inp = &mut self.inp;
        let (mut expire_ms, mut idle, mut freq) = (None, None, None);
        loop {
            let op_at = inp.pos;
            let op = inp.u8()?;
            match op {
                OP_EXPIRETIME => expire_ms = Some(u32::from_le_bytes(inp.array()?) as u64 * 1000),
                OP_EXPIRETIME_MS => expire_ms = Some(u64::from_le_bytes(inp.array()?)),
                OP_FREQ => freq = Some(inp.u8()?),
                OP_IDLE => idle = Some(inp.length()?),
                OP_SELECTDB => {
                    let db = inp.length()?;
                    self.db = usize::try_from(db).unwrap_or(usize::MAX);
                }
                OP_RESIZEDB => {
                    let keys = inp.length()?;
                    let expires = inp.length()?;
                    return Ok(Item::Resize(keys, expires));
                }
                OP_AUX => {
                    let k = inp.string()?.into_owned();
                    let v = inp.string()?.into_owned();
                    return Ok(Item::Aux(k, v));
                }
                OP_FUNCTION2 => return Ok(Item::Function(inp.string()?.into_owned())),
                OP_FUNCTION_PRE_GA => {
                    return Err(Error {
                        offset: op_at,
                        msg: "a pre-GA function (RDB_OPCODE_FUNCTION) is not supported".into(),
                    })
                }
                OP_MODULE_AUX => {
                    return Err(Error {
                        offset: op_at,
                        msg: "module auxiliary data: basalt loads no modules".into(),
                    })
                }
                OP_EOF => {
                    if self.version >= 5 {
                        let end = inp.pos;
                        let stored = u64::from_le_bytes(inp.array()?);
                        if stored != 0 {
                            let crc = super::crc64::crc64(0, &inp.buf[..end]);
                            if crc != stored {
                                return Err(Error {
                                    offset: end,
                                    msg: format!("wrong RDB checksum: expected {crc:016x}, got {stored:016x}"),
                                });
                            }
                        }
                    }
                    return Ok(Item::Eof);
                }
                t => {
                    let key = inp.string()?.into_owned();
                    let value = value(inp, t, lim)?;
                    return Ok(Item::Key(KeyItem {
                        db: self.db,
                        key,
                        value,
                        expire_ms,
                        idle,
                        freq,
                    }));
                }
            }
        }
    }
}
