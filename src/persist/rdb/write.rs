//! The RDB writer: lengths, strings (integer-encoded and LZF as rdb.c chooses them), the
//! compact blobs (listpack, intset) and every value type, into a `Vec<u8>`. Callers write
//! one key at a time ([`key`]), so a shard can serialize its keyspace in small steps.

use super::*;
use crate::store::hash::Elem as HElem;
use crate::store::set::{Member, Set};
use crate::store::value::{itoa_buf, parse_canonical_i64, Str, Value};
use crate::store::zset::ZSet;

/// rdbSaveLen.
pub fn len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(((n >> 8) as u8) | 0x40);
        out.push(n as u8);
    } else if n <= u32::MAX as u64 {
        out.push(LEN_32BIT);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(LEN_64BIT);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// rdbEncodeInteger: an integer that fits 32 bits as a special-encoded string.
fn encode_integer(out: &mut Vec<u8>, v: i64) -> bool {
    if (-128..=127).contains(&v) {
        out.extend_from_slice(&[0xC0 | ENC_INT8, v as i8 as u8]);
    } else if (-32768..=32767).contains(&v) {
        out.push(0xC0 | ENC_INT16);
        out.extend_from_slice(&(v as i16).to_le_bytes());
    } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
        out.push(0xC0 | ENC_INT32);
        out.extend_from_slice(&(v as i32).to_le_bytes());
    } else {
        return false;
    }
    true
}

/// rdbSaveRawString: short canonical integers integer-encoded, long strings LZF-compressed
/// when that saves at least 4 bytes and `compress` (`rdbcompression`) is on.
pub fn string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= 11 {
        if let Some(v) = parse_canonical_i64(s) {
            if encode_integer(out, v) {
                return;
            }
        }
    }
    if compress && s.len() > 20 {
        if let Some(z) = super::lzf::compress(s, s.len() - 4) {
            out.push(0xC0 | ENC_LZF);
            len(out, z.len() as u64);
            len(out, s.len() as u64);
            out.extend_from_slice(&z);
            return;
        }
    }
    len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// rdbSaveLongLongAsStringObject: an integer-encoded string object.
pub fn int_string(out: &mut Vec<u8>, v: i64) {
    if !encode_integer(out, v) {
        let mut b = itoa_buf::Buf::new();
        let digits = b.format(v);
        len(out, digits.len() as u64);
        out.extend_from_slice(digits);
    }
}

// ---- listpack --------------------------------------------------------------------------

/// Builds a listpack exactly as listpack.c's lpAppend does.
pub struct Listpack {
    buf: Vec<u8>,
    count: usize,
}

impl Default for Listpack {
    fn default() -> Self {
        Self::new()
    }
}

/// lpEncodeBacklen: an entry's length, readable backwards.
pub fn backlen_into(out: &mut Vec<u8>, l: usize) {
    let l = l as u64;
    if l <= 127 {
        out.push(l as u8);
    } else if l < 16383 {
        out.extend_from_slice(&[(l >> 7) as u8, (l & 127) as u8 | 128]);
    } else if l < 2097151 {
        out.extend_from_slice(&[(l >> 14) as u8, ((l >> 7) & 127) as u8 | 128, (l & 127) as u8 | 128]);
    } else if l < 268435455 {
        out.extend_from_slice(&[
            (l >> 21) as u8,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]);
    } else {
        out.extend_from_slice(&[
            (l >> 28) as u8,
            ((l >> 21) & 127) as u8 | 128,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]);
    }
}

impl Listpack {
    pub fn new() -> Listpack {
        Listpack {
            buf: vec![0; 6],
            count: 0,
        }
    }

    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        let b = &mut self.buf;
        if (0..=127).contains(&v) {
            b.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = if v < 0 { (1i64 << 13) + v } else { v } as u64;
            b.extend_from_slice(&[((u >> 8) as u8) | 0xC0, u as u8]);
        } else if (-32768..=32767).contains(&v) {
            b.push(0xF1);
            b.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-8388608..=8388607).contains(&v) {
            b.push(0xF2);
            b.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
            b.push(0xF3);
            b.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            b.push(0xF4);
            b.extend_from_slice(&v.to_le_bytes());
        }
        let l = self.buf.len() - start;
        backlen_into(&mut self.buf, l);
        self.count += 1;
    }

    /// A string element; canonical integers are stored as integers (lpStringToInt64).
    pub fn push(&mut self, s: &[u8]) {
        if let Some(v) = parse_canonical_i64(s) {
            return self.push_int(v);
        }
        let start = self.buf.len();
        let b = &mut self.buf;
        let n = s.len();
        if n < 64 {
            b.push(0x80 | n as u8);
        } else if n < 4096 {
            b.extend_from_slice(&[0xE0 | (n >> 8) as u8, n as u8]);
        } else {
            b.push(0xF0);
            b.extend_from_slice(&(n as u32).to_le_bytes());
        }
        b.extend_from_slice(s);
        let l = self.buf.len() - start;
        backlen_into(&mut self.buf, l);
        self.count += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xFF);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let n = self.count.min(65535) as u16;
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

/// intset.c's layout: encoding (2, 4 or 8), length, then the sorted values, little-endian.
fn intset(values: &[i64]) -> Vec<u8> {
    let width: usize = match (values.first(), values.last()) {
        (Some(&lo), Some(&hi)) if lo < i32::MIN as i64 || hi > i32::MAX as i64 => 8,
        (Some(&lo), Some(&hi)) if lo < i16::MIN as i64 || hi > i16::MAX as i64 => 4,
        _ => 2,
    };
    let mut out = Vec::with_capacity(8 + width * values.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for &v in values {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

/// d2string as Redis 7.0 writes zset scores into listpacks (`%.17g`, integers plainly).
fn score_string(d: f64, out: &mut Vec<u8>) {
    crate::resp::reply::format_double(d, out);
}

// ---- values ----------------------------------------------------------------------------

/// The RDB type byte `v` is written with (rdbSaveObjectType). Sets in the listpack encoding
/// are written as plain sets: Redis 7.0 cannot read RDB_TYPE_SET_LISTPACK.
pub fn value_type(v: &Value) -> u8 {
    match v {
        Value::Str(_) => TYPE_STRING,
        Value::List(_) => TYPE_LIST_QUICKLIST_2,
        Value::Hash(h) if h.is_packed() => TYPE_HASH_LISTPACK,
        Value::Hash(_) => TYPE_HASH,
        Value::Set(Set::Int(_)) => TYPE_SET_INTSET,
        Value::Set(_) => TYPE_SET,
        Value::ZSet(z) if z.listpack_bytes().is_some() => TYPE_ZSET_LISTPACK,
        Value::ZSet(_) => TYPE_ZSET_2,
    }
}

/// rdbSaveObject: the value's body (after its type byte).
pub fn value(out: &mut Vec<u8>, v: &Value, compress: bool) {
    match v {
        Value::Str(Str::Int(n)) => int_string(out, *n),
        Value::Str(Str::Emb(b)) => string(out, b, compress),
        Value::Str(Str::Raw(b)) => string(out, b, compress),
        Value::List(l) => {
            let nodes: Vec<Vec<u8>> = l.listpacks().collect();
            len(out, nodes.len() as u64);
            for n in nodes {
                len(out, QUICKLIST_NODE_PACKED);
                string(out, &n, compress);
            }
        }
        Value::Hash(h) if h.is_packed() => {
            let mut lp = Listpack::new();
            for (f, v) in h.iter() {
                for e in [f, v] {
                    match e {
                        HElem::Int(n) => lp.push_int(n),
                        HElem::Bytes(b) => lp.push(b),
                    }
                }
            }
            string(out, &lp.finish(), compress);
        }
        Value::Hash(h) => {
            len(out, h.len() as u64);
            for (f, v) in h.iter() {
                f.with_bytes(|b| string(out, b, compress));
                v.with_bytes(|b| string(out, b, compress));
            }
        }
        Value::Set(Set::Int(is)) => {
            let vals: Vec<i64> = is.iter().collect();
            string(out, &intset(&vals), compress);
        }
        Value::Set(s) => {
            len(out, s.len() as u64);
            let mut buf = itoa_buf::Buf::new();
            for m in s.iter() {
                match m {
                    Member::Int(n) => string(out, buf.format(n), compress),
                    Member::Str(b) => string(out, b, compress),
                }
            }
        }
        Value::ZSet(z) => match z {
            ZSet::Pack(_) => {
                let mut lp = Listpack::new();
                let mut sb = Vec::new();
                for (m, s) in z.iter() {
                    lp.push(m);
                    sb.clear();
                    score_string(s, &mut sb);
                    lp.push(&sb);
                }
                string(out, &lp.finish(), compress);
            }
            ZSet::Skip(_) => {
                // Highest score first, as rdb.c (so that loading appends at the head).
                let items: Vec<(&[u8], f64)> = z.iter().collect();
                len(out, items.len() as u64);
                for (m, s) in items.into_iter().rev() {
                    string(out, m, compress);
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
        },
    }
}

/// One key as it appears in an RDB file: its deadline, its type, its name and its value.
pub fn key(out: &mut Vec<u8>, key: &[u8], v: &Value, expire_ms: Option<u64>, compress: bool) {
    if let Some(at) = expire_ms {
        out.push(OP_EXPIRETIME_MS);
        out.extend_from_slice(&at.to_le_bytes());
    }
    out.push(value_type(v));
    string(out, key, compress);
    value(out, v, compress);
}

/// The file header: magic, version and the AUX fields Redis writes.
pub fn header(out: &mut Vec<u8>, aux: &[(&str, &[u8])]) {
    out.extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
    for (k, v) in aux {
        aux_field(out, k.as_bytes(), v);
    }
}

pub fn aux_field(out: &mut Vec<u8>, k: &[u8], v: &[u8]) {
    out.push(OP_AUX);
    string(out, k, false);
    string(out, v, false);
}

pub fn select_db(out: &mut Vec<u8>, db: usize, keys: u64, expires: u64) {
    out.push(OP_SELECTDB);
    len(out, db as u64);
    out.push(OP_RESIZEDB);
    len(out, keys);
    len(out, expires);
}

/// A function library (RDB_OPCODE_FUNCTION2): its code, whose first line names it.
pub fn function(out: &mut Vec<u8>, code: &[u8], compress: bool) {
    out.push(OP_FUNCTION2);
    string(out, code, compress);
}

/// EOF and the checksum of everything before it (`crc` covers the bytes written so far).
pub fn eof(out: &mut Vec<u8>, crc: u64) -> u64 {
    out.push(OP_EOF);
    let crc = super::crc64::crc64(crc, &[OP_EOF]);
    out.extend_from_slice(&crc.to_le_bytes());
    crc
}
