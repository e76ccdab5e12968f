//! HyperLogLog: PFADD PFCOUNT PFMERGE PFDEBUG PFSELFTEST, as Redis 7.0's hyperloglog.c. An
//! HLL is an ordinary string (GET, DUMP/RESTORE, RDB and the AOF carry it unchanged), so its
//! bytes are Redis's, exactly: a 16-byte header (`HYLL`, the encoding, three unused bytes,
//! the cached cardinality, little endian, whose top bit marks it stale), then either 16384
//! 6-bit registers packed LSB first (dense, 12288 bytes) or the run-length opcodes ZERO,
//! XZERO and VAL (sparse), which turn dense past `hll-sparse-max-bytes` or for a register
//! above 32. The estimator is Ertl's (hllTau/hllSigma), as in Redis 4.0 and later.

use crate::command::{acl, flags::*, Args, CommandSpec, Exec, KeySpec, LocalFuture, Multi, NotifyFlags, Run};
use crate::error::{c_str, echo, CmdError};
use crate::server::client::Client;
use crate::store::value::itoa_buf;
use crate::store::{Str, Value};

use super::boxed;

// ---- the representation ----------------------------------------------------------------------

const P: u32 = 14;
const Q: usize = 64 - P as usize;
const REGISTERS: usize = 1 << P;
const P_MASK: u64 = REGISTERS as u64 - 1;
const BITS: usize = 6;
const REGISTER_MAX: u32 = (1 << BITS) - 1;
const HDR_SIZE: usize = 16;
const DENSE_SIZE: usize = HDR_SIZE + (REGISTERS * BITS).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const MAX_ENCODING: u8 = 1;
/// Byte 4 of the header: the encoding.
const ENC: usize = 4;
/// The cached cardinality's most significant byte, whose top bit means "stale".
const CARD_MSB: usize = HDR_SIZE - 1;
const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7; // 0.5 / ln(2)
const SEED: u64 = 0xadc8_3b19;

/// Redis's isHLLObjectOrReply text (a WRONGTYPE error of its own).
const NOT_HLL: CmdError = CmdError::Static("WRONGTYPE Key is not a valid HyperLogLog string value.");
/// Redis's invalid_hll_err: a sparse representation whose runs do not cover the registers.
const CORRUPT: CmdError = CmdError::Static("INVALIDOBJ Corrupted HLL object detected");

/// A sparse representation that does not add up to 16384 registers.
#[derive(Debug, PartialEq, Eq)]
struct Corrupt;

/// Redis's MurmurHash2, 64-bit version (MurmurHash64A), reading words little endian.
pub fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let mut k = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// Redis's hllPatLen: the register an element hashes to, and the length of the `000..1`
/// pattern of the rest of its hash (1..=Q+1).
fn pat_len(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, SEED);
    let index = (hash & P_MASK) as usize;
    // The bit above the Q used ones ends the run, so the count is at most Q+1.
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// Register `i` of dense registers (HLL_DENSE_GET_REGISTER). The last register's second
/// byte is past the array, where Redis reads the string's terminating zero.
fn get_register(regs: &[u8], i: usize) -> u8 {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let b0 = regs[byte] as u32;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u32;
    (((b0 >> fb) | (b1 << (8 - fb))) & REGISTER_MAX) as u8
}

/// HLL_DENSE_SET_REGISTER.
fn set_register(regs: &mut [u8], i: usize, val: u8) {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let fb8 = 8 - fb;
    let v = val as u32;
    regs[byte] &= !(REGISTER_MAX << fb) as u8;
    regs[byte] |= (v << fb) as u8;
    if let Some(b1) = regs.get_mut(byte + 1) {
        *b1 &= !(REGISTER_MAX >> fb8) as u8;
        *b1 |= (v >> fb8) as u8;
    }
}

/// hllDenseSet: raises register `index` to `count`; whether it changed.
fn dense_set(regs: &mut [u8], index: usize, count: u8) -> bool {
    if count > get_register(regs, index) {
        set_register(regs, index, count);
        true
    } else {
        false
    }
}

fn is_zero(b: u8) -> bool {
    b & 0xc0 == 0
}

fn is_xzero(b: u8) -> bool {
    b & 0xc0 == 0x40
}

fn is_val(b: u8) -> bool {
    b & 0x80 != 0
}

fn zero_len(b: u8) -> usize {
    (b & 0x3f) as usize + 1
}

/// An XZERO's run; its second byte past the end reads as Redis's terminating zero.
fn xzero_len(s: &[u8], p: usize) -> usize {
    ((((s[p] & 0x3f) as usize) << 8) | s.get(p + 1).copied().unwrap_or(0) as usize) + 1
}

fn val_value(b: u8) -> u8 {
    ((b >> 2) & 0x1f) + 1
}

fn val_len(b: u8) -> usize {
    (b & 0x3) as usize + 1
}

fn val_op(value: u8, len: usize) -> u8 {
    ((value - 1) << 2 | (len as u8 - 1)) | 0x80
}

/// The shortest zero run opcode for `len` registers, appended to `seq`.
fn push_zeros(seq: &mut Vec<u8>, len: usize) {
    if len > SPARSE_ZERO_MAX_LEN {
        let l = len - 1;
        seq.push((l >> 8) as u8 | 0x40);
        seq.push((l & 0xff) as u8);
    } else {
        seq.push(len as u8 - 1);
    }
}

/// One opcode of a sparse representation.
enum Op {
    /// ZERO: this many registers at 0 (up to 64).
    Zero(usize),
    /// XZERO: this many registers at 0 (up to 16384).
    XZero(usize),
    /// VAL: `len` registers at `value`.
    Val { value: u8, len: usize },
}

/// The opcodes of a sparse HLL, in order (an XZERO cut short reads its missing byte as 0,
/// as Redis reads the string's terminating zero).
fn ops(s: &[u8]) -> impl Iterator<Item = Op> + '_ {
    let mut p = HDR_SIZE;
    std::iter::from_fn(move || {
        let b = *s.get(p)?;
        Some(if is_zero(b) {
            p += 1;
            Op::Zero(zero_len(b))
        } else if is_xzero(b) {
            let n = xzero_len(s, p);
            p += 2;
            Op::XZero(n)
        } else {
            p += 1;
            Op::Val {
                value: val_value(b),
                len: val_len(b),
            }
        })
    })
}

/// createHLLObject: an empty sparse HLL (one XZERO:16384), its cached cardinality 0.
fn new_hll() -> Vec<u8> {
    let mut s = Vec::with_capacity(HDR_SIZE + 2);
    s.extend_from_slice(b"HYLL");
    s.extend_from_slice(&[SPARSE, 0, 0, 0]);
    s.extend_from_slice(&[0; 8]);
    let mut left = REGISTERS;
    while left > 0 {
        let run = left.min(SPARSE_XZERO_MAX_LEN);
        push_zeros(&mut s, run);
        left -= run;
    }
    s
}

/// isHLLObjectOrReply's checks on a string's bytes.
fn is_hll(p: &[u8]) -> bool {
    p.len() >= HDR_SIZE && &p[..4] == b"HYLL" && p[ENC] <= MAX_ENCODING && (p[ENC] != DENSE || p.len() == DENSE_SIZE)
}

/// The string as an HLL to work on: checked, then made a raw (unshared) string, as
/// Redis's isHLLObjectOrReply and dbUnshareStringValue.
fn hll_raw(s: &mut Str) -> Result<&mut Vec<u8>, CmdError> {
    let mut scratch = itoa_buf::Buf::new();
    if !is_hll(s.as_bytes(&mut scratch)) {
        return Err(NOT_HLL);
    }
    Ok(s.make_raw())
}

fn invalidate_cache(s: &mut [u8]) {
    s[CARD_MSB] |= 0x80;
}

/// hllSparseToDense: a sparse HLL becomes dense in place (the header, cached cardinality
/// included, is kept); a dense one is left alone.
fn to_dense(s: &mut Vec<u8>) -> Result<(), Corrupt> {
    if s[ENC] == DENSE {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR_SIZE].copy_from_slice(&s[..HDR_SIZE]);
    dense[ENC] = DENSE;
    let regs = &mut dense[HDR_SIZE..];
    for_each_val(s, |first, len, value| {
        for i in first..first + len {
            set_register(regs, i, value);
        }
    })?;
    *s = dense;
    Ok(())
}

/// hllSparseSet: raises register `index` to `count` in a sparse HLL, splitting the opcode
/// that covers it and merging equal neighbours; whether it changed. Turns the HLL dense
/// when `count` is not representable or the string would outgrow `max_bytes`.
fn sparse_set(s: &mut Vec<u8>, index: usize, count: u8, max_bytes: usize) -> Result<bool, Corrupt> {
    if count > SPARSE_VAL_MAX_VALUE {
        return promote(s, index, count);
    }
    // Step 1: the opcode covering `index`, and the one before it.
    let end = s.len();
    let (mut p, mut first, mut span) = (HDR_SIZE, 0usize, 0usize);
    let mut prev = None;
    while p < end {
        let b = s[p];
        let mut oplen = 1;
        span = if is_zero(b) {
            zero_len(b)
        } else if is_val(b) {
            val_len(b)
        } else {
            oplen = 2;
            xzero_len(s, p)
        };
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= end {
        return Err(Corrupt);
    }
    let b = s[p];
    let (zero, xzero, val) = (is_zero(b), is_xzero(b), is_val(b));
    let runlen = span;

    // Step 2: the trivial cases update the opcode in place.
    let mut in_place = false;
    if val {
        if val_value(b) >= count {
            return Ok(false);
        }
        in_place = runlen == 1;
    }
    in_place |= zero && runlen == 1;
    if in_place {
        s[p] = val_op(count, 1);
    } else {
        // Otherwise split it: at worst XZERO becomes XZERO-VAL-XZERO (5 bytes).
        let mut seq = Vec::with_capacity(5);
        let last = first + span - 1;
        if zero || xzero {
            if index != first {
                push_zeros(&mut seq, index - first);
            }
            seq.push(val_op(count, 1));
            if index != last {
                push_zeros(&mut seq, last - index);
            }
        } else {
            let cur = val_value(b);
            if index != first {
                seq.push(val_op(cur, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(cur, last - index));
            }
        }
        // Step 3: the new sequence replaces the opcode.
        let oldlen = if xzero { 2 } else { 1 };
        if seq.len() > oldlen && s.len() + seq.len() - oldlen > max_bytes {
            return promote(s, index, count);
        }
        let stop = (p + oldlen).min(s.len());
        s.splice(p..stop, seq);
    }

    // Step 4: merge adjacent VALs of equal value, scanning up to 5 opcodes from `prev`.
    let mut p = prev.unwrap_or(HDR_SIZE);
    let mut scan = 5;
    while p < s.len() && scan > 0 {
        scan -= 1;
        let b = s[p];
        if is_xzero(b) {
            p += 2;
            continue;
        } else if is_zero(b) {
            p += 1;
            continue;
        }
        if p + 1 < s.len() && is_val(s[p + 1]) {
            let next = s[p + 1];
            let len = val_len(b) + val_len(next);
            if val_value(b) == val_value(next) && len <= SPARSE_VAL_MAX_LEN {
                s[p + 1] = val_op(val_value(b), len);
                s.remove(p);
                // Try the merged opcode with the one on its right.
                continue;
            }
        }
        p += 1;
    }
    invalidate_cache(s);
    Ok(true)
}

/// The promotion at the end of hllSparseSet: dense, then the register set (it always grows:
/// the sparse value was below `count`).
fn promote(s: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(s)?;
    let grew = dense_set(&mut s[HDR_SIZE..], index, count);
    debug_assert!(grew, "a promoted register grows");
    Ok(grew)
}

/// hllAdd: whether the element raised a register.
fn add(s: &mut Vec<u8>, ele: &[u8], max_bytes: usize) -> Result<bool, Corrupt> {
    let (index, count) = pat_len(ele);
    match s[ENC] {
        DENSE => Ok(dense_set(&mut s[HDR_SIZE..], index, count)),
        SPARSE => sparse_set(s, index, count, max_bytes),
        _ => Err(Corrupt),
    }
}

/// hllMerge: `max[i] = MAX(max[i], register i)`.
fn merge(max: &mut [u8], s: &[u8]) -> Result<(), Corrupt> {
    if s[ENC] == DENSE {
        let regs = &s[HDR_SIZE..];
        for (i, m) in max.iter_mut().enumerate() {
            *m = (*m).max(get_register(regs, i));
        }
        return Ok(());
    }
    for_each_val(s, |first, len, value| {
        for m in &mut max[first..first + len] {
            *m = (*m).max(value);
        }
    })
}

/// Calls `f(first register, run length, value)` for each VAL run of a sparse HLL; Corrupt
/// when a run ends past the last register (Redis 7.0.15 fails there; 7.0.0 stopped and
/// checked the count) or the runs do not cover exactly the registers.
fn for_each_val(s: &[u8], mut f: impl FnMut(usize, usize, u8)) -> Result<(), Corrupt> {
    let mut i = 0usize;
    for op in ops(s) {
        match op {
            Op::Zero(n) | Op::XZero(n) => i += n,
            Op::Val { value, len } => {
                if len + i > REGISTERS {
                    return Err(Corrupt);
                }
                f(i, len, value);
                i += len;
            }
        }
    }
    if i == REGISTERS {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

/// How many registers hold each value (Redis's reghisto; values are below 64).
type Histogram = [u64; 64];

fn dense_histogram(regs: &[u8], h: &mut Histogram) {
    // Four registers in every three bytes.
    for c in regs[..REGISTERS * BITS / 8].chunks_exact(3) {
        let (b0, b1, b2) = (c[0] as usize, c[1] as usize, c[2] as usize);
        h[b0 & 63] += 1;
        h[(b0 >> 6 | b1 << 2) & 63] += 1;
        h[(b1 >> 4 | b2 << 4) & 63] += 1;
        h[(b2 >> 2) & 63] += 1;
    }
}

/// hllSparseRegHisto; false when the runs do not cover exactly the registers.
fn sparse_histogram(s: &[u8], h: &mut Histogram) -> bool {
    let mut idx = 0usize;
    for op in ops(s) {
        let (value, n) = match op {
            Op::Zero(n) | Op::XZero(n) => (0, n),
            Op::Val { value, len } => (value, len),
        };
        idx += n;
        h[value as usize] += n as u64;
    }
    idx == REGISTERS
}

/// Ertl's sigma ("New cardinality estimation algorithms for HyperLogLog sketches").
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if before == z {
            return z;
        }
    }
}

/// Ertl's tau.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        // C's pow(1 - x, 2), which compilers turn into this product.
        z -= (1.0 - x) * (1.0 - x) * y;
        if before == z {
            return z / 3.0;
        }
    }
}

/// hllCount's estimate from the register histogram, operation for operation.
fn estimate(h: &Histogram) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - h[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += h[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(h[0] as f64 / m);
    // llroundl: halves away from zero, as f64::round.
    (ALPHA_INF * m * m / z).round() as u64
}

/// hllCount of a checked HLL string.
fn count(s: &[u8]) -> Result<u64, Corrupt> {
    let mut h = [0u64; 64];
    if s[ENC] == DENSE {
        dense_histogram(&s[HDR_SIZE..], &mut h);
    } else if !sparse_histogram(s, &mut h) {
        return Err(Corrupt);
    }
    Ok(estimate(&h))
}

/// hllCount of one register per byte (Redis's internal HLL_RAW, for multi-key PFCOUNT).
fn count_raw(regs: &[u8]) -> u64 {
    let mut h = [0u64; 64];
    for &r in regs {
        h[r as usize] += 1;
    }
    estimate(&h)
}

// ---- handlers --------------------------------------------------------------------------------

/// `PFADD key [element [element ...]]`: 1 if a register changed or the key was created.
fn pfadd(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let key = &a[1];
    let max_bytes = ex.enc.hll_sparse_max_bytes;
    let mut created = false;
    let s = ex.write_or_create(key, Value::as_str, || {
        created = true;
        Value::Str(Str::Raw(new_hll()))
    })?;
    let raw = hll_raw(s)?;
    let mut updated = created as u64;
    for ele in &a.as_slice()[2..] {
        if add(raw, ele, max_bytes).map_err(|_| CORRUPT)? {
            updated += 1;
        }
    }
    if updated > 0 {
        invalidate_cache(raw);
        ex.notify(NotifyFlags::STRING, "pfadd", key);
        ex.dirty += updated;
        ex.propagate_as_is(a);
    }
    ex.out.int((updated > 0) as i64);
    Ok(())
}

/// Raises `max` to the registers of every HLL among `keys` (missing keys count as empty);
/// whether one of them was dense.
fn union_into(ex: &mut Exec<'_>, keys: &[bytes::Bytes], max: &mut [u8]) -> Result<bool, CmdError> {
    let mut dense = false;
    for key in keys {
        let Some(s) = ex.read(key, Value::as_str)? else {
            continue;
        };
        let mut scratch = itoa_buf::Buf::new();
        let p = s.as_bytes(&mut scratch);
        if !is_hll(p) {
            return Err(NOT_HLL);
        }
        dense |= p[ENC] == DENSE;
        merge(max, p).map_err(|_| CORRUPT)?;
    }
    Ok(dense)
}

/// `PFCOUNT key [key ...]`: one key answers its cached cardinality, computing and storing
/// it when stale (a change of the string, so propagated and touching WATCH); several keys
/// answer the cardinality of their union and change nothing.
fn pfcount(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    if a.len() > 2 {
        let mut max = vec![0u8; REGISTERS];
        union_into(ex, &a.as_slice()[1..], &mut max)?;
        ex.out.int(count_raw(&max) as i64);
        return Ok(());
    }
    let key = &a[1];
    let Some(s) = ex.read(key, Value::as_str)? else {
        ex.out.int(0);
        return Ok(());
    };
    let raw = hll_raw(s)?;
    if raw[CARD_MSB] & 0x80 == 0 {
        let card = u64::from_le_bytes(raw[8..HDR_SIZE].try_into().expect("8 bytes"));
        ex.out.int(card as i64);
        return Ok(());
    }
    let card = count(raw).map_err(|_| CORRUPT)?;
    raw[8..HDR_SIZE].copy_from_slice(&card.to_le_bytes());
    ex.db(key).touch_watched(key);
    ex.dirty += 1;
    // Replayed, PFCOUNT stores the same cache bytes (Redis propagates it too).
    ex.propagate_as_is(a);
    ex.out.int(card as i64);
    Ok(())
}

/// `PFMERGE destkey [sourcekey [sourcekey ...]]`: destkey becomes the union of itself and
/// the sources; dense if any of them is dense, else sparse (turning dense as it grows).
/// Its event is `pfadd`, as Redis's. Atomic across shards.
fn pfmerge(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let mut max = vec![0u8; REGISTERS];
    let use_dense = union_into(ex, &a.as_slice()[1..], &mut max)?;
    let dst = &a[1];
    let max_bytes = ex.enc.hll_sparse_max_bytes;
    let s = ex.write_or_create(dst, Value::as_str, || Value::Str(Str::Raw(new_hll())))?;
    // Checked with the sources when it existed.
    let raw = s.make_raw();
    if use_dense {
        to_dense(raw).map_err(|_| CORRUPT)?;
    }
    for (j, &m) in max.iter().enumerate() {
        if m == 0 {
            continue;
        }
        if raw[ENC] == DENSE {
            dense_set(&mut raw[HDR_SIZE..], j, m);
        } else {
            // As Redis, a failure here leaves the register as it was.
            let _ = sparse_set(raw, j, m, max_bytes);
        }
    }
    invalidate_cache(raw);
    ex.notify(NotifyFlags::STRING, "pfadd", dst);
    ex.dirty += 1;
    ex.propagate_as_is(a);
    ex.out.ok();
    Ok(())
}

/// `PFDEBUG GETREG|DECODE|ENCODING|TODENSE key`: the registers (a sparse HLL turns dense),
/// the sparse opcodes as text, the encoding, or a conversion to dense (1 if it converted).
fn pfdebug(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let key = &a[2];
    let Some(s) = ex.write(key, Value::as_str)? else {
        return Err(CmdError::Static("ERR The specified key does not exist"));
    };
    let raw = hll_raw(s)?;
    let sub = &a[1];
    if sub.eq_ignore_ascii_case(b"getreg") {
        let converted = raw[ENC] == SPARSE;
        if converted {
            to_dense(raw).map_err(|_| CORRUPT)?;
        }
        let regs: Vec<u8> = (0..REGISTERS).map(|i| get_register(&raw[HDR_SIZE..], i)).collect();
        ex.out.array(REGISTERS);
        for r in regs {
            ex.out.int(r as i64);
        }
        if converted {
            ex.dirty += 1;
            ex.propagate_as_is(a);
        }
    } else if sub.eq_ignore_ascii_case(b"decode") {
        if raw[ENC] != SPARSE {
            return Err(CmdError::Static("ERR HLL encoding is not sparse"));
        }
        let mut text = String::new();
        for op in ops(raw) {
            text += &match op {
                Op::Zero(n) => format!("z:{n} "),
                Op::XZero(n) => format!("Z:{n} "),
                Op::Val { value, len } => format!("v:{value},{len} "),
            };
        }
        ex.out.bulk(text.trim_matches(' ').as_bytes());
    } else if sub.eq_ignore_ascii_case(b"encoding") {
        let dense = raw[ENC] == DENSE;
        ex.out.simple(if dense { "dense" } else { "sparse" });
    } else if sub.eq_ignore_ascii_case(b"todense") {
        let converted = raw[ENC] == SPARSE;
        if converted {
            to_dense(raw).map_err(|_| CORRUPT)?;
            ex.dirty += 1;
            ex.propagate_as_is(a);
        }
        ex.out.int(converted as i64);
    } else {
        return Err(CmdError::Custom(format!(
            "ERR Unknown PFDEBUG subcommand '{}'",
            echo(c_str(sub, usize::MAX))
        )));
    }
    Ok(())
}

/// PFSELFTEST's checks, on `seed`: the dense register layout (set and read back random
/// values), then 10 million elements added to a dense and a sparse HLL, which must stay
/// sparse while small, agree, and stay within 6 standard errors at every power of ten.
fn selftest(seed: u64, max_bytes: usize) -> Result<(), String> {
    let mut rng = seed | 1;
    let mut rand = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut dense = vec![0u8; DENSE_SIZE];
    let mut bytes = vec![0u8; REGISTERS];
    for _ in 0..1000 {
        for (i, b) in bytes.iter_mut().enumerate() {
            let r = (rand() & REGISTER_MAX as u64) as u8;
            *b = r;
            set_register(&mut dense[HDR_SIZE..], i, r);
        }
        for (i, &b) in bytes.iter().enumerate() {
            let v = get_register(&dense[HDR_SIZE..], i);
            if v != b {
                return Err(format!("TESTFAILED Register {i} should be {b} but is {v}"));
            }
        }
    }
    dense[HDR_SIZE..].fill(0);
    dense[ENC] = DENSE;
    let mut sparse = new_hll();
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let mut checkpoint: u64 = 1;
    let salt = rand();
    for j in 1..=10_000_000u64 {
        let ele = (j ^ salt).to_ne_bytes();
        let (index, c) = pat_len(&ele);
        dense_set(&mut dense[HDR_SIZE..], index, c);
        add(&mut sparse, &ele, max_bytes).map_err(|_| "TESTFAILED sparse HLL corrupted".to_string())?;
        if j != checkpoint {
            continue;
        }
        if (j as usize) < max_bytes / 2 && sparse[ENC] != SPARSE {
            return Err("TESTFAILED sparse encoding not used".into());
        }
        let card = count(&dense).map_err(|_| "TESTFAILED dense HLL corrupted".to_string())?;
        if count(&sparse) != Ok(card) {
            return Err("TESTFAILED dense/sparse disagree".into());
        }
        let abserr = (checkpoint as i64 - card as i64).unsigned_abs();
        // Collisions make a larger error likely at 10 (Redis allows 1 there).
        let maxerr = if j == 10 {
            1
        } else {
            (relerr * 6.0 * checkpoint as f64).ceil() as u64
        };
        if abserr > maxerr {
            return Err(format!("TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"));
        }
        checkpoint *= 10;
    }
    Ok(())
}

/// `PFSELFTEST`: +OK, or the first failed check (see [`selftest`]). Runs on the client's
/// home shard, holding it for the test's duration as Redis holds its one thread.
fn pfselftest(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let max_bytes = c.shard.local.cfg.borrow().enc.hll_sparse_max_bytes;
        let seed = crate::server::unix_us() ^ (std::process::id() as u64) << 32;
        match selftest(seed, max_bytes) {
            Ok(()) => c.out.ok(),
            Err(e) => c.out.error(&e),
        }
        Ok(())
    })
}

// ---- table -----------------------------------------------------------------------------------

const HLL: u32 = acl::HYPERLOGLOG;
const PFCOUNT_KEYS: &[KeySpec] = &[KeySpec::rest(1, 1, &["RW", "ACCESS"])
    .with_notes("RW because it may change the internal representation of the key, and propagate to replicas")];
const PFMERGE_KEYS: &[KeySpec] = &[
    KeySpec::one(1, &["RW", "ACCESS", "INSERT"]),
    KeySpec::rest(2, 1, &["RO", "ACCESS"]),
];

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "pfadd", arity: -2, flags: WRITE | DENYOOM | FAST, acl: HLL, key_specs: &[KeySpec::one(1, &["RW", "INSERT"])], group: "hyperloglog", since: "2.8.9", summary: "Adds the specified elements to the specified HyperLogLog.", complexity: "O(1) to add every element.", syntax: "key [element [element ...]]", run: Run::Keyed(pfadd, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "pfcount", arity: -2, flags: READONLY | MAY_REPLICATE, acl: HLL, key_specs: PFCOUNT_KEYS, group: "hyperloglog", since: "2.8.9", summary: "Return the approximated cardinality of the set(s) observed by the HyperLogLog at key(s).", complexity: "O(1) with a very small average constant time when called with a single key. O(N) with N being the number of keys, and much bigger constant times, when called with multiple keys.", syntax: "key [key ...]", run: Run::Keyed(pfcount, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "pfmerge", arity: -2, flags: WRITE | DENYOOM, acl: HLL, key_specs: PFMERGE_KEYS, group: "hyperloglog", since: "2.8.9", summary: "Merge N different HyperLogLogs into a single one.", complexity: "O(N) to merge N HyperLogLogs, but with high constant times.", syntax: "destkey sourcekey [sourcekey ...]", run: Run::Keyed(pfmerge, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "pfdebug", arity: 3, flags: WRITE | DENYOOM | ADMIN, acl: HLL, key_specs: &[KeySpec::one(2, &["RW", "ACCESS"])], group: "hyperloglog", since: "2.8.9", summary: "Internal commands for debugging HyperLogLog values", complexity: "N/A", doc_flags: &["syscmd"], syntax: "subcommand key", run: Run::Keyed(pfdebug, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "pfselftest", arity: 1, flags: ADMIN, acl: HLL, group: "hyperloglog", since: "2.8.9", summary: "An internal command for testing HyperLogLog values", complexity: "N/A", doc_flags: &["syscmd"], run: Run::Conn(pfselftest), ..CommandSpec::DEFAULT },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::testkit::Kit;

    fn decode(s: &[u8]) -> String {
        let mut k = Kit::new();
        k.exec(&[b"SET", b"h", s]);
        k.run("PFDEBUG DECODE h")
    }

    #[test]
    fn murmur64a_matches_redis() {
        assert_eq!(murmur64a(b"", 0), 0);
        // Tails of every length and whole words, against a bytewise model of the C.
        for len in 0..20 {
            let key: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
            assert_eq!(murmur64a(&key, SEED), model_murmur(&key, SEED), "len {len}");
        }
        // Register and run length of elements as redis-server 7.0 stores them (PFADD of
        // the one element, then PFDEBUG GETREG): the hash's low 14 bits and its next run.
        assert_eq!(pat_len(b"a"), (12711, 2));
        assert_eq!(pat_len(b"hello"), (9216, 1));
        assert_eq!(pat_len(b"foo"), (7348, 5));
        assert_eq!(pat_len(b"12345678"), (10579, 3));
        assert_eq!(pat_len(b"abcdefghijklmnopq"), (4271, 1));
    }

    /// MurmurHash64A written from the reference C, word by word with explicit shifts.
    fn model_murmur(key: &[u8], seed: u64) -> u64 {
        let m: u64 = 0xc6a4a7935bd1e995;
        let mut h = seed ^ (key.len() as u64).wrapping_mul(m);
        let nblocks = key.len() / 8;
        for i in 0..nblocks {
            let mut k = 0u64;
            for j in 0..8 {
                k |= (key[i * 8 + j] as u64) << (8 * j);
            }
            k = k.wrapping_mul(m);
            k ^= k >> 47;
            k = k.wrapping_mul(m);
            h ^= k;
            h = h.wrapping_mul(m);
        }
        let tail = &key[nblocks * 8..];
        for j in (0..tail.len()).rev() {
            h ^= (tail[j] as u64) << (8 * j);
        }
        if !tail.is_empty() {
            h = h.wrapping_mul(m);
        }
        h ^= h >> 47;
        h = h.wrapping_mul(m);
        h ^= h >> 47;
        h
    }

    #[test]
    fn pattern_lengths_and_registers_of_known_elements() {
        // Register and run of elements as Redis 7.0 computes them (PFDEBUG GETREG after
        // PFADD of one element shows the one register set).
        let (index, count) = pat_len(b"a");
        assert!(index < REGISTERS && (1..=51).contains(&count));
        let mut k = Kit::new();
        assert_eq!(k.run("PFADD h a"), ":1\r\n");
        let regs = k.run("PFDEBUG GETREG h");
        let set: Vec<&str> = regs
            .split("\r\n")
            .skip(1)
            .filter(|l| l.starts_with(':') && *l != ":0")
            .collect();
        assert_eq!(set, vec![format!(":{count}").as_str()]);
    }

    #[test]
    fn dense_registers_round_trip_without_touching_neighbours() {
        let mut regs = vec![0u8; REGISTERS * BITS / 8];
        for i in 0..REGISTERS {
            set_register(&mut regs, i, (i % 64) as u8);
        }
        for i in 0..REGISTERS {
            assert_eq!(get_register(&regs, i), (i % 64) as u8, "register {i}");
        }
        set_register(&mut regs, 1, 0);
        assert_eq!(
            (get_register(&regs, 0), get_register(&regs, 1), get_register(&regs, 2)),
            (0, 0, 2)
        );
        // Register 1 is the top two bits of byte 0 and the low four of byte 1.
        let mut r = vec![0u8; 3];
        set_register(&mut r, 1, 0b111111);
        assert_eq!(r, [0b1100_0000, 0b0000_1111, 0]);
        assert!(selftest(12345, 3000).is_ok());
    }

    #[test]
    fn sparse_opcodes_split_merge_and_promote() {
        let mut s = new_hll();
        assert_eq!(&s[HDR_SIZE..], &[0x7f, 0xff]);
        assert_eq!(sparse_set(&mut s, 1000, 2, 3000), Ok(true));
        assert_eq!(decode(&s), "$20\r\nZ:1000 v:2,1 Z:15383\r\n");
        sparse_set(&mut s, 1020, 3, 3000).unwrap();
        sparse_set(&mut s, 1021, 3, 3000).unwrap();
        // The example of Redis's comment, the two registers of value 3 merged into one VAL.
        assert_eq!(decode(&s), "$31\r\nZ:1000 v:2,1 z:19 v:3,2 Z:15362\r\n");
        assert_eq!(sparse_set(&mut s, 1020, 3, 3000), Ok(false));
        assert_eq!(sparse_set(&mut s, 1001, 2, 3000), Ok(true));
        assert_eq!(decode(&s), "$31\r\nZ:1000 v:2,2 z:18 v:3,2 Z:15362\r\n");
        // A value above 32 is not representable: dense, with every register kept.
        let before: Vec<u8> = {
            let mut m = vec![0u8; REGISTERS];
            merge(&mut m, &s).unwrap();
            m
        };
        assert_eq!(sparse_set(&mut s, 5, 40, 3000), Ok(true));
        assert_eq!((s[ENC], s.len()), (DENSE, DENSE_SIZE));
        let mut after = vec![0u8; REGISTERS];
        merge(&mut after, &s).unwrap();
        assert_eq!(after[5], 40);
        after[5] = 0;
        assert_eq!(after, before);
        // Past hll-sparse-max-bytes, likewise.
        let mut s = new_hll();
        // XZERO:100 VAL XZERO:16283 is 21 bytes; splitting the second XZERO would make 24.
        sparse_set(&mut s, 100, 1, 21).unwrap();
        assert_eq!((s[ENC], s.len()), (SPARSE, 21));
        sparse_set(&mut s, 200, 1, 23).unwrap();
        assert_eq!(s[ENC], DENSE);
        // A sparse string whose runs do not cover 16384 registers is corrupt.
        let mut bad = new_hll();
        bad[HDR_SIZE + 1] = 0xfe;
        assert_eq!(to_dense(&mut bad), Err(Corrupt));
        assert_eq!(count(&bad), Err(Corrupt));
        // So is one whose VAL runs past the last register.
        let mut bad = new_hll();
        bad.push(val_op(2, 1));
        assert_eq!(to_dense(&mut bad), Err(Corrupt));
        assert_eq!(merge(&mut [0; REGISTERS], &bad), Err(Corrupt));
    }

    #[test]
    fn estimator_on_known_inputs() {
        // Empty: 0.
        assert_eq!(count(&new_hll()), Ok(0));
        let mut h = [0u64; 64];
        h[0] = REGISTERS as u64 - 1;
        h[1] = 1;
        // One register set: linear counting's m*ln(m/(m-1)) rounds to 1.
        assert_eq!(estimate(&h), 1);
        let mut h = [0u64; 64];
        h[0] = REGISTERS as u64 - 100;
        h[1] = 100;
        assert_eq!(
            estimate(&h),
            (REGISTERS as f64 * (REGISTERS as f64 / (REGISTERS - 100) as f64).ln()).round() as u64
        );
        assert_eq!(tau(0.0), 0.0);
        assert_eq!(sigma(1.0), f64::INFINITY);
        // A real input, as redis-server 7.0 counts it (PFADD h e0 .. e999; PFCOUNT h).
        let mut k = Kit::new();
        let elems: Vec<String> = (0..1000).map(|i| format!("e{i}")).collect();
        let mut argv: Vec<&[u8]> = vec![b"PFADD", b"h"];
        argv.extend(elems.iter().map(|e| e.as_bytes()));
        k.exec(&argv);
        assert_eq!(k.run("PFCOUNT h"), ":1008\r\n");
        assert_eq!(k.run("PFDEBUG ENCODING h"), "+sparse\r\n");
    }

    #[test]
    fn pfcount_caches_and_propagates() {
        let mut k = Kit::new();
        assert_eq!(k.run("PFADD h a b c"), ":1\r\n");
        assert_eq!(
            k.effects(),
            "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*5\r\n$5\r\nPFADD\r\n$1\r\nh\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
        );
        assert_eq!(k.run("PFADD h a"), ":0\r\n");
        assert_eq!(k.effects(), "");
        assert_eq!(k.run("PFCOUNT h"), ":3\r\n");
        assert!(k.effects().ends_with("*2\r\n$7\r\nPFCOUNT\r\n$1\r\nh\r\n"));

        assert_eq!(k.run("PFCOUNT h"), ":3\r\n");
        assert_eq!(k.effects(), "", "a valid cache changes nothing");
        k.run("SET s abc");
        assert_eq!(
            k.run("PFCOUNT s"),
            "-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n"
        );
        k.run("RPUSH l x");
        assert_eq!(
            k.run("PFADD l x"),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        );
    }
}
