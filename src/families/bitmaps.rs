//! Bitmaps: SETBIT GETBIT BITCOUNT BITPOS BITOP, on strings, as Redis 7.0's bitops.c (bit 0
//! is the most significant bit of the first byte; an integer-encoded string is read as its
//! decimal text; the order in which arguments and keys are checked decides which error a
//! client sees, and follows Redis). BITFIELD and BITFIELD_RO as Redis's bitfieldGeneric.

use crate::command::{acl, args::parse_i64, flags::*, Args, CommandSpec, Exec, KeySpec, Multi, NotifyFlags, Run};
use crate::error::CmdError;
use crate::resp::PROTO_MAX_BULK_LEN;
use crate::store::value::itoa_buf;
use crate::store::{Str, Value};

// ---- bit arithmetic ------------------------------------------------------------------------

/// Redis's getBitOffsetFromArgument: a non-negative integer whose byte fits in
/// proto-max-bulk-len.
fn bit_offset(arg: &[u8]) -> Result<u64, CmdError> {
    checked_offset(parse_i64(arg))
}

/// An offset parsed (or not) from an argument, checked as getBitOffsetFromArgument does.
fn checked_offset(offset: Option<i64>) -> Result<u64, CmdError> {
    match offset {
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

// ---- BITFIELD -----------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldOp {
    Get,
    Set,
    IncrBy,
}

/// One parsed BITFIELD operation.
#[derive(Clone, Copy)]
struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    value: i64,
    overflow: Overflow,
}

const BAD_FIELD_TYPE: CmdError = CmdError::Static(
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
);

/// Redis's getBitfieldTypeFromArgument: `i1`..`i64` or `u1`..`u63` (lower case), the width
/// read as a C string.
fn field_type(arg: &[u8]) -> Result<(bool, u32), CmdError> {
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(BAD_FIELD_TYPE),
    };
    match parse_i64(crate::error::c_str(&arg[1..], usize::MAX)) {
        Some(n) if n >= 1 && n <= if signed { 64 } else { 63 } => Ok((signed, n as u32)),
        _ => Err(BAD_FIELD_TYPE),
    }
}

/// Redis's getBitOffsetFromArgument with `#N` (N times the field's width) allowed.
fn field_offset(arg: &[u8], bits: u32) -> Result<u64, CmdError> {
    checked_offset(match arg.strip_prefix(b"#") {
        Some(n) => parse_i64(n).map(|n| n.wrapping_mul(bits as i64)),
        None => parse_i64(arg),
    })
}

fn get_unsigned(p: &[u8], offset: u64, bits: u32) -> u64 {
    (0..bits as u64).fold(0, |v, j| {
        let o = offset + j;
        v << 1 | (p[(o >> 3) as usize] >> (7 - (o & 7))) as u64 & 1
    })
}

fn get_signed(p: &[u8], offset: u64, bits: u32) -> i64 {
    let v = get_unsigned(p, offset, bits);
    if bits < 64 && v & (1 << (bits - 1)) != 0 {
        (v | u64::MAX << bits) as i64
    } else {
        v as i64
    }
}

fn set_unsigned(p: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..bits as u64 {
        let on = (value >> (bits as u64 - 1 - j)) & 1;
        let o = offset + j;
        let (byte, shift) = ((o >> 3) as usize, 7 - (o & 7));
        p[byte] = (p[byte] & !(1 << shift)) | (on as u8) << shift;
    }
}

/// Redis's checkUnsignedBitfieldOverflow: whether `value + incr` leaves `bits` bits, and
/// the value WRAP or SAT makes of it.
fn unsigned_overflow(value: u64, incr: i64, bits: u32, overflow: Overflow) -> Option<u64> {
    let max = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = value.wrapping_neg() as i64;
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX.checked_shl(bits).unwrap_or(0));
    if value > max || (incr > 0 && incr > maxincr) {
        Some(if overflow == Overflow::Sat { max } else { wrap() })
    } else if incr < 0 && incr < minincr {
        Some(if overflow == Overflow::Sat { 0 } else { wrap() })
    } else {
        None
    }
}

/// Redis's checkSignedBitfieldOverflow, likewise.
fn signed_overflow(value: i64, incr: i64, bits: u32, overflow: Overflow) -> Option<i64> {
    let max = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let c = (value as u64).wrapping_add(incr as u64);
        if bits == 64 {
            c as i64
        } else if c & (1 << (bits - 1)) != 0 {
            (c | u64::MAX << bits) as i64
        } else {
            (c & !(u64::MAX << bits)) as i64
        }
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        Some(if overflow == Overflow::Sat { max } else { wrap() })
    } else if value < min || (bits != 64 && incr < minincr) || (value < 0 && incr < 0 && incr < minincr) {
        Some(if overflow == Overflow::Sat { min } else { wrap() })
    } else {
        None
    }
}

/// A GET: up to 9 bytes from the field's first byte, zero-padded past the string's end, as
/// Redis copies them, so a field may lie partly or wholly past the end.
fn read_field(p: &[u8], f: &Field) -> i64 {
    let mut buf = [0u8; 9];
    for (b, &v) in buf.iter_mut().zip(p.get((f.offset >> 3) as usize..).unwrap_or(&[])) {
        *b = v;
    }
    let at = f.offset & 7;
    if f.signed {
        get_signed(&buf, at, f.bits)
    } else {
        get_unsigned(&buf, at, f.bits) as i64
    }
}

/// Parses every operation first (any error answers before anything runs), as Redis.
fn parse_fields(a: &Args) -> Result<Vec<Field>, CmdError> {
    let mut fields = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < a.len() {
        let rest = a.len() - j - 1;
        let op = if a.is(j, "GET") && rest >= 2 {
            FieldOp::Get
        } else if a.is(j, "SET") && rest >= 3 {
            FieldOp::Set
        } else if a.is(j, "INCRBY") && rest >= 3 {
            FieldOp::IncrBy
        } else if a.is(j, "OVERFLOW") && rest >= 1 {
            overflow = if a.is(j + 1, "WRAP") {
                Overflow::Wrap
            } else if a.is(j + 1, "SAT") {
                Overflow::Sat
            } else if a.is(j + 1, "FAIL") {
                Overflow::Fail
            } else {
                return Err(CmdError::Static("ERR Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(CmdError::Syntax);
        };
        let (signed, bits) = field_type(&a[j + 1])?;
        let offset = field_offset(&a[j + 2], bits)?;
        let value = if op == FieldOp::Get { 0 } else { a.int(j + 3)? };
        fields.push(Field {
            op,
            signed,
            bits,
            offset,
            value,
            overflow,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    Ok(fields)
}

/// `BITFIELD key [GET type offset | [OVERFLOW WRAP|SAT|FAIL] SET type offset value |
/// INCRBY type offset increment ...]`: one reply per GET/SET/INCRBY (SET answers the old
/// value, INCRBY the new one, a FAIL overflow a null and no write). A key written to grows
/// with zero bytes up to the farthest bit written, FAIL or not.
fn bitfield(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    bitfield_generic(ex, a, false)
}

/// `BITFIELD_RO key [GET type offset ...]`
fn bitfield_ro(ex: &mut Exec<'_>, a: &Args) -> Result<(), CmdError> {
    bitfield_generic(ex, a, true)
}

fn bitfield_generic(ex: &mut Exec<'_>, a: &Args, read_only: bool) -> Result<(), CmdError> {
    let fields = parse_fields(a)?;
    let key = &a[1];
    let writes = fields.iter().filter(|f| f.op != FieldOp::Get).count();
    if writes == 0 {
        let mut scratch = itoa_buf::Buf::new();
        let s = ex.read(key, Value::as_str)?;
        let p = s.map_or(&[][..], |s| s.as_bytes(&mut scratch));
        let values: Vec<i64> = fields.iter().map(|f| read_field(p, f)).collect();
        ex.out.array(values.len());
        for v in values {
            ex.out.int(v);
        }
        return Ok(());
    }
    if read_only {
        return Err(CmdError::Static("ERR BITFIELD_RO only supports the GET subcommand"));
    }
    let highest = fields
        .iter()
        .filter(|f| f.op != FieldOp::Get)
        .map(|f| f.offset + f.bits as u64 - 1)
        .max()
        .unwrap_or(0);
    let raw = ex
        .write_or_create(key, Value::as_str, || Value::Str(Str::Raw(Vec::new())))?
        .make_raw();
    let need = (highest >> 3) as usize + 1;
    let grew = raw.len() < need;
    if grew {
        raw.resize(need, 0);
    }
    // Redis's `changes`: the writes that grew the string or changed the field.
    let mut changes = 0u64;
    let mut out = Vec::with_capacity(fields.len());
    for f in &fields {
        let reply = match (f.op, f.signed) {
            // A GET may read past the farthest write, where the string did not grow.
            (FieldOp::Get, _) => Some(read_field(raw, f)),
            (op, true) => {
                let old = get_signed(raw, f.offset, f.bits);
                let (base, incr) = if op == FieldOp::IncrBy {
                    (old, f.value)
                } else {
                    (f.value, 0)
                };
                let over = signed_overflow(base, incr, f.bits, f.overflow);
                let new = over.unwrap_or(base.wrapping_add(incr));
                if over.is_some() && f.overflow == Overflow::Fail {
                    None
                } else {
                    set_unsigned(raw, f.offset, f.bits, new as u64);
                    changes += (grew || old != new) as u64;
                    Some(if op == FieldOp::IncrBy { new } else { old })
                }
            }
            (op, false) => {
                let old = get_unsigned(raw, f.offset, f.bits);
                let (base, incr) = if op == FieldOp::IncrBy {
                    (old, f.value)
                } else {
                    (f.value as u64, 0)
                };
                let over = unsigned_overflow(base, incr, f.bits, f.overflow);
                let new = over.unwrap_or(base.wrapping_add(incr as u64));
                if over.is_some() && f.overflow == Overflow::Fail {
                    None
                } else {
                    set_unsigned(raw, f.offset, f.bits, new);
                    changes += (grew || old != new) as u64;
                    Some(if op == FieldOp::IncrBy { new as i64 } else { old as i64 })
                }
            }
        };
        out.push(reply);
    }
    ex.out.array(out.len());
    for r in out {
        match r {
            Some(v) => ex.out.int(v),
            None => ex.out.null(),
        }
    }
    // As Redis 7.0.15: the event (and the dirty count) only for real changes; a FAIL, or a
    // write of the value already there, is none. The command still goes to the AOF, which
    // replays it to the same bytes (Redis leaves out one that only created or grew the key).
    ex.dirty += changes;
    if changes > 0 {
        ex.notify(NotifyFlags::STRING, "setbit", key);
    }
    ex.propagate_as_is(a);
    Ok(())
}

const BIT: u32 = acl::BITMAP;
const RO_ACCESS: &[&str] = &["RO", "ACCESS"];
const RW_ACCESS_UPDATE: &[&str] = &["RW", "ACCESS", "UPDATE"];
const OW_UPDATE: &[&str] = &["OW", "UPDATE"];
const BITOP_KEYS: &[KeySpec] = &[KeySpec::one(2, OW_UPDATE), KeySpec::rest(3, 1, RO_ACCESS)];
const BITFIELD_KEYS: &[KeySpec] = &[KeySpec {
    notes: "This command allows both access and modification of the key",
    ..KeySpec::one(1, &["RW", "ACCESS", "UPDATE", "VARIABLE_FLAGS"])
}];

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "setbit", arity: 4, flags: WRITE | DENYOOM, acl: BIT, key_specs: &[KeySpec::one(1, RW_ACCESS_UPDATE)], group: "bitmap", since: "2.2.0", summary: "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.", complexity: "O(1)", syntax: "key offset value", run: Run::Keyed(setbit, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "getbit", arity: 3, flags: READONLY | FAST, acl: BIT, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "bitmap", since: "2.2.0", summary: "Returns a bit value by offset.", complexity: "O(1)", syntax: "key offset", run: Run::Keyed(getbit, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "bitcount", arity: -2, flags: READONLY, acl: BIT, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "bitmap", since: "2.6.0", summary: "Counts the number of set bits (population counting) in a string.", complexity: "O(N)", syntax: "key [start end [BYTE | BIT]]", run: Run::Keyed(bitcount, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "bitpos", arity: -3, flags: READONLY, acl: BIT, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "bitmap", since: "2.8.7", summary: "Finds the first set (1) or clear (0) bit in a string.", complexity: "O(N)", syntax: "key bit [start [end [BYTE | BIT]]]", run: Run::Keyed(bitpos, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "bitfield", arity: -2, flags: WRITE | DENYOOM, acl: BIT, key_specs: BITFIELD_KEYS, group: "bitmap", since: "3.2.0", summary: "Performs arbitrary bitfield integer operations on strings.", complexity: "O(1) for each subcommand specified", syntax: "key [GET encoding offset | [OVERFLOW <WRAP | SAT | FAIL>] <SET encoding offset value | INCRBY encoding offset increment> [GET encoding offset | [OVERFLOW <WRAP | SAT | FAIL>] <SET encoding offset value | INCRBY encoding offset increment> ...]]", run: Run::Keyed(bitfield, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "bitfield_ro", arity: -2, flags: READONLY | FAST, acl: BIT, key_specs: &[KeySpec::one(1, RO_ACCESS)], group: "bitmap", since: "6.0.0", summary: "Performs arbitrary read-only bitfield integer operations on strings.", complexity: "O(1) for each subcommand specified", syntax: "key [GET encoding offset [GET encoding offset ...]]", run: Run::Keyed(bitfield_ro, Multi::Atomic), ..CommandSpec::DEFAULT },
    CommandSpec { name: "bitop", arity: -4, flags: WRITE | DENYOOM, acl: BIT, key_specs: BITOP_KEYS, group: "bitmap", since: "2.6.0", summary: "Performs bitwise operations on multiple strings, and stores the result.", complexity: "O(N)", syntax: "operation destkey key [key ...]", run: Run::Keyed(bitop, Multi::Atomic), ..CommandSpec::DEFAULT },
];

#[cfg(test)]
mod tests {

    #[test]
    fn bitfield_overflow_wraps_saturates_and_fails_as_redis() {
        use super::{signed_overflow, unsigned_overflow, Overflow::*};
        assert_eq!(signed_overflow(127, 1, 8, Wrap), Some(-128));
        assert_eq!(signed_overflow(127, 1, 8, Sat), Some(127));
        assert_eq!(signed_overflow(-128, -1, 8, Sat), Some(-128));
        assert_eq!(signed_overflow(-128, -1, 8, Wrap), Some(127));
        assert_eq!(signed_overflow(100, 27, 8, Wrap), None);
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Wrap), Some(i64::MIN));
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Sat), Some(i64::MAX));
        // A SET checks the value alone (increment 0).
        assert_eq!(signed_overflow(128, 0, 8, Wrap), Some(-128));
        assert_eq!(unsigned_overflow(255, 1, 8, Wrap), Some(0));
        assert_eq!(unsigned_overflow(255, 1, 8, Sat), Some(255));
        assert_eq!(unsigned_overflow(0, -1, 8, Sat), Some(0));
        assert_eq!(unsigned_overflow(0, -1, 8, Wrap), Some(255));
        assert_eq!(unsigned_overflow(3, 1, 2, Fail), Some(0));
        assert_eq!(
            unsigned_overflow(u64::MAX, 0, 8, Sat),
            Some(255),
            "a negative SET saturates up"
        );
        assert_eq!(unsigned_overflow(1, 1, 63, Wrap), None);
    }

    #[test]
    fn bitfield_fields_read_and_write_big_endian_bits() {
        use super::{get_signed, get_unsigned, set_unsigned};
        let mut p = [0u8; 3];
        set_unsigned(&mut p, 4, 8, 0xab);
        assert_eq!(p, [0x0a, 0xb0, 0]);
        assert_eq!(get_unsigned(&p, 4, 8), 0xab);
        assert_eq!(get_signed(&p, 4, 8), 0xab_u8 as i8 as i64);
        assert_eq!(get_signed(&p, 4, 4), -6);
    }

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
