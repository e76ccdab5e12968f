//! Bitmaps: SETBIT GETBIT BITCOUNT BITPOS BITOP, on strings, as Redis 7.0's bitops.c (bit 0
//! is the most significant bit of the first byte; an integer-encoded string is read as its
//! decimal text; the order in which arguments and keys are checked decides which error a
//! client sees, and follows Redis). BITFIELD is not implemented.

use crate::command::{acl, args::parse_i64, flags::*, Args, CommandSpec, Exec, KeySpec, Multi, NotifyFlags, Run};
use crate::error::CmdError;
use crate::resp::PROTO_MAX_BULK_LEN;
use crate::store::value::itoa_buf;
use crate::store::{Str, Value};

// ---- bit arithmetic ------------------------------------------------------------------------

/// Redis's getBitOffsetFromArgument: a non-negative integer whose byte fits in
/// proto-max-bulk-len.
fn bit_offset(arg: &[u8]) -> Result<u64, CmdError> {
    match parse_i64(arg) {
        Some(o) if o >= 0 && ((o as u64) >> 3) < PROTO_MAX_BULK_LEN as u64 => Ok(o as u64),
        _ => Err(CmdError::Static("ERR bit offset is not an integer or out of range")),
    }
}

/// The inclusive bit range `[first, last]` that BITCOUNT/BITPOS's `start end [BYTE|BIT]`
/// select in a string of `len` bytes, as Redis clamps them (negative indexes count from the
/// end); None when it is empty.
fn bit_range(len: usize, start: i64, end: i64, is_bit: bool) -> Option<(u64, u64)> {
    let total = if is_bit { (len as i64) << 3 } else { len as i64 };
    let fix = |i: i64| if i < 0 { (total + i).max(0) } else { i };
    let (start, mut end) = (fix(start), fix(end));
    if end >= total {
        end = total - 1;
    }
    if start > end {
        return None;
    }
    let (start, end) = (start as u64, end as u64);
    Some(if is_bit {
        (start, end)
    } else {
        (start << 3, (end << 3) + 7)
    })
}

/// The byte at `i` keeping only the bits of `[first, last]` (the others cleared).
fn masked_byte(p: &[u8], i: u64, first: u64, last: u64) -> u8 {
    let mut b = p[i as usize];
    if i == first >> 3 {
        b &= 0xff >> (first & 7);
    }
    if i == last >> 3 {
        b &= 0xff << (7 - (last & 7));
    }
    b
}

/// The bits set in `[first, last]` of `p`.
fn count_bits(p: &[u8], first: u64, last: u64) -> u64 {
    let (fb, lb) = (first >> 3, last >> 3);
    let mut n = masked_byte(p, fb, first, last).count_ones() as u64;
    if lb > fb {
        n += masked_byte(p, lb, first, last).count_ones() as u64;
        let mid = &p[(fb + 1) as usize..lb as usize];
        let mut chunks = mid.chunks_exact(8);
        for c in &mut chunks {
            n += u64::from_ne_bytes(c.try_into().expect("8 bytes")).count_ones() as u64;
        }
        n += chunks.remainder().iter().map(|b| b.count_ones() as u64).sum::<u64>();
    }
    n
}

/// The first bit equal to `bit` in `[first, last]` of `p`.
fn find_bit(p: &[u8], first: u64, last: u64, bit: bool) -> Option<u64> {
    let (fb, lb) = (first >> 3, last >> 3);
    let mut i = fb;
    while i <= lb {
        let edge = i == fb || i == lb;
        if !edge && i + 8 <= lb {
            // Whole words with nothing to find are skipped.
            let w = u64::from_ne_bytes(p[i as usize..i as usize + 8].try_into().expect("8 bytes"));
            if (bit && w == 0) || (!bit && w == u64::MAX) {
                i += 8;
                continue;
            }
        }
        // This byte's bits that are in the range, as ones.
        let (lo, hi) = (first.max(i << 3) - (i << 3), last.min((i << 3) + 7) - (i << 3));
        let inside = (0xffu8 >> lo) & (0xffu8 << (7 - hi));
        let b = p[i as usize];
        let hits = if bit { b & inside } else { !b & inside };
        if hits != 0 {
            return Some((i << 3) + hits.leading_zeros() as u64);
        }
        i += 1;
    }
    None
}

// ---- handlers ------------------------------------------------------------------------------

/// `SETBIT key offset value`: the bit's old value; the string grows with zero bytes.
fn setbit(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let offset = bit_offset(&a[2])?;
    let on = match parse_i64(&a[3]) {
        Some(v @ (0 | 1)) => v as u8,
        _ => return Err(CmdError::Static("ERR bit is not an integer or out of range")),
    };
    let key = &a[1];
    let (byte, shift) = ((offset >> 3) as usize, 7 - (offset & 7) as u32);
    let raw = ex
        .write_or_create(key, Value::as_str, || Value::Str(Str::Raw(Vec::new())))?
        .make_raw();
    // A new key is an empty string here, so it grows too.
    let grew = raw.len() <= byte;
    if grew {
        raw.resize(byte + 1, 0);
    }
    let old = raw[byte] >> shift & 1;
    raw[byte] = (raw[byte] & !(1 << shift)) | (on << shift);
    ex.out.int(old as i64);
    // Redis 7.0: no change (the bit already had the value, nothing grew), no event, no
    // dirty, nothing propagated.
    if grew || old != on {
        ex.dirty += 1;
        ex.notify(NotifyFlags::STRING, "setbit", key);
        ex.propagate_as_is(a);
    }
    Ok(())
}

/// `GETBIT key offset`
fn getbit(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let offset = bit_offset(&a[2])?;
    let bit = ex.read(&a[1], Value::as_str)?.map_or(0, |s| {
        let mut scratch = itoa_buf::Buf::new();
        let p = s.as_bytes(&mut scratch);
        p.get((offset >> 3) as usize).map_or(0, |b| b >> (7 - (offset & 7)) & 1)
    });
    ex.out.int(bit as i64);
    Ok(())
}

/// The `BYTE | BIT` unit argument.
fn is_bit_unit(arg: &[u8]) -> Result<bool, CmdError> {
    if arg.eq_ignore_ascii_case(b"bit") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"byte") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// `BITCOUNT key [start end [BYTE | BIT]]`. As Redis 7.0: a missing key counts 0 before
/// the arguments are looked at.
fn bitcount(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let Some(s) = ex.read(&a[1], Value::as_str)? else {
        ex.out.int(0);
        return Ok(());
    };
    let mut scratch = itoa_buf::Buf::new();
    let p = s.as_bytes(&mut scratch);
    let range = match a.len() {
        2 => bit_range(p.len(), 0, -1, false),
        4 | 5 => {
            let (start, end) = (a.int(2)?, a.int(3)?);
            // Both negative and crossed: empty before the unit is even parsed.
            if start < 0 && end < 0 && start > end {
                None
            } else {
                let is_bit = if a.len() == 5 { is_bit_unit(&a[4])? } else { false };
                bit_range(p.len(), start, end, is_bit)
            }
        }
        _ => return Err(CmdError::Syntax),
    };
    let n = range.map_or(0, |(first, last)| count_bits(p, first, last));
    ex.out.int(n as i64);
    Ok(())
}

/// `BITPOS key bit [start [end [BYTE | BIT]]]`: the first bit set (or clear) in the range;
/// -1 if there is none, except that looking for a clear bit with no end given finds the
/// first bit past the string (Redis reads the string as zero-padded on the right).
fn bitpos(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let bit = match a.int(2)? {
        0 => false,
        1 => true,
        _ => return Err(CmdError::Static("ERR The bit argument must be 1 or 0.")),
    };
    let Some(s) = ex.read(&a[1], Value::as_str)? else {
        ex.out.int(if bit { -1 } else { 0 });
        return Ok(());
    };
    let mut scratch = itoa_buf::Buf::new();
    let p = s.as_bytes(&mut scratch);
    let (range, end_given) = match a.len() {
        3 => (bit_range(p.len(), 0, -1, false), false),
        4..=6 => {
            let start = a.int(3)?;
            let is_bit = if a.len() == 6 { is_bit_unit(&a[5])? } else { false };
            let end = if a.len() >= 5 { a.int(4)? } else { -1 };
            (bit_range(p.len(), start, end, is_bit), a.len() >= 5)
        }
        _ => return Err(CmdError::Syntax),
    };
    let pos = match range {
        None => -1,
        Some((first, last)) => match find_bit(p, first, last, bit) {
            Some(i) => i as i64,
            None if bit || end_given => -1,
            None => (((last >> 3) + 1) << 3) as i64,
        },
    };
    ex.out.int(pos);
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// `BITOP AND|OR|XOR|NOT destkey key [key ...]`: the result's length (the longest source;
/// shorter ones read as zero-padded). An empty result deletes `destkey`. Atomic across
/// shards.
fn bitop(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    let op = match &a[1] {
        o if o.eq_ignore_ascii_case(b"and") => BitOp::And,
        o if o.eq_ignore_ascii_case(b"or") => BitOp::Or,
        o if o.eq_ignore_ascii_case(b"xor") => BitOp::Xor,
        o if o.eq_ignore_ascii_case(b"not") => BitOp::Not,
        _ => return Err(CmdError::Syntax),
    };
    if op == BitOp::Not && a.len() != 4 {
        return Err(CmdError::Static(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    let mut srcs: Vec<Vec<u8>> = Vec::with_capacity(a.len() - 3);
    for key in &a.as_slice()[3..] {
        srcs.push(ex.read(key, Value::as_str)?.map_or_else(Vec::new, |s| s.to_vec()));
    }
    let len = srcs.iter().map(Vec::len).max().unwrap_or(0);
    let dst = &a[2];
    if len > 0 {
        let mut res = vec![0u8; len];
        res[..srcs[0].len()].copy_from_slice(&srcs[0]);
        if op == BitOp::Not {
            res.iter_mut().for_each(|b| *b = !*b);
        }
        for s in &srcs[1..] {
            for (i, r) in res.iter_mut().enumerate() {
                let b = s.get(i).copied().unwrap_or(0);
                match op {
                    BitOp::And => *r &= b,
                    BitOp::Or => *r |= b,
                    BitOp::Xor => *r ^= b,
                    BitOp::Not => unreachable!("NOT has one source"),
                }
            }
        }
        let now = ex.now;
        ex.db(dst).set_key(dst, Value::Str(Str::Raw(res)), now);
        ex.notify(NotifyFlags::STRING, "set", dst);
    } else {
        // Redis's dbDelete: a stored destination is deleted even if its TTL has passed.
        if ex.db(dst).remove(dst).is_none() {
            ex.out.int(0);
            return Ok(());
        }
        ex.notify(NotifyFlags::GENERIC, "del", dst);
    }
    ex.dirty += 1;
    ex.propagate_as_is(a);
    ex.out.int(len as i64);
    Ok(())
}

// ---- table ---------------------------------------------------------------------------------

const BIT: u32 = acl::BITMAP;
const RO_ACCESS: &[&str] = &["RO", "ACCESS"];
const RW_ACCESS_UPDATE: &[&str] = &["RW", "ACCESS", "UPDATE"];
const OW_UPDATE: &[&str] = &["OW", "UPDATE"];
const BITOP_KEYS: &[KeySpec] = &[KeySpec::one(2, OW_UPDATE), KeySpec::rest(3, 1, RO_ACCESS)];

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "setbit", arity: 4, flags: WRITE | DENYOOM, acl: BIT, key_specs: &[KeySpec::one(1, RW_ACCESS_UPDATE)], group: "bitmap", since: "2.2.0", summary: "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.", complexity: "O(1)", syntax: "key offset value", run: Run::Keyed(setbit, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "getbit", arity: 3, flags: READONLY | FAST, acl: BIT, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "bitmap", since: "2.2.0", summary: "Returns a bit value by offset.", complexity: "O(1)", syntax: "key offset", run: Run::Keyed(getbit, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "bitcount", arity: -2, flags: READONLY, acl: BIT, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "bitmap", since: "2.6.0", summary: "Counts the number of set bits (population counting) in a string.", complexity: "O(N)", syntax: "key [start end [BYTE | BIT]]", run: Run::Keyed(bitcount, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "bitpos", arity: -3, flags: READONLY, acl: BIT, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "bitmap", since: "2.8.7", summary: "Finds the first set (1) or clear (0) bit in a string.", complexity: "O(N)", syntax: "key bit [start [end [BYTE | BIT]]]", run: Run::Keyed(bitpos, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "bitop", arity: -4, flags: WRITE | DENYOOM, acl: BIT, key_specs: BITOP_KEYS, group: "bitmap", since: "2.6.0", summary: "Performs bitwise operations on multiple strings, and stores the result.", complexity: "O(N)", syntax: "operation destkey key [key ...]", run: Run::Keyed(bitop, Multi::Atomic), ..CommandSpec::DEFAULT },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit by bit, the obvious way.
    fn model(p: &[u8], first: u64, last: u64) -> Vec<bool> {
        (first..=last)
            .map(|i| p[(i >> 3) as usize] >> (7 - (i & 7)) & 1 == 1)
            .collect()
    }

    #[test]
    fn count_and_find_match_a_bit_by_bit_model() {
        let p: Vec<u8> = (0u32..40).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let mut sparse = vec![0u8; 40];
        sparse[37] = 0x10;
        let mut dense = vec![0xffu8; 40];
        dense[33] = 0xfb;
        for p in [&p, &sparse, &dense] {
            let total = p.len() as u64 * 8;
            for first in (0..total).step_by(5) {
                for last in (first..total).step_by(7) {
                    let bits = model(p, first, last);
                    let ones = bits.iter().filter(|b| **b).count() as u64;
                    assert_eq!(count_bits(p, first, last), ones, "{first}..={last}");
                    for bit in [false, true] {
                        let want = bits.iter().position(|b| *b == bit).map(|i| first + i as u64);
                        assert_eq!(find_bit(p, first, last, bit), want, "{bit} in {first}..={last}");
                    }
                }
            }
        }
    }

    #[test]
    fn ranges_clamp_like_redis() {
        assert_eq!(bit_range(3, 0, -1, false), Some((0, 23)));
        assert_eq!(bit_range(3, 1, 1, false), Some((8, 15)));
        assert_eq!(bit_range(3, -100, 100, false), Some((0, 23)));
        assert_eq!(bit_range(3, 2, 1, false), None);
        assert_eq!(bit_range(3, 5, 30, true), Some((5, 23)));
        assert_eq!(bit_range(0, 0, -1, false), None);
        assert!(bit_offset(b"-1").is_err());
        assert_eq!(bit_offset(b"4294967295").ok(), Some(4294967295));
        assert!(bit_offset(b"4294967296").is_err());
    }
}
