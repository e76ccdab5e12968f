//! A software x87 80-bit `long double`, just enough to reproduce Redis's INCRBYFLOAT /
//! HINCRBYFLOAT bit for bit on x86-64: `string2ld` (strtold), one addition, and
//! `ld2string(.., LD_STR_HUMAN)` ("%.17Lf", then trailing zeros and the dot removed, "-0" -> "0").
//!
//! Redis computes those in `long double` (64-bit significand, 15-bit exponent), so for example
//! `SET k 0.1; INCRBYFLOAT k 0.2` answers "0.3" (with f64 it would be 0.30000000000000004) and
//! `SET k 1e308; INCRBYFLOAT k 1e308` answers a 309-digit number instead of an overflow.
//! All operations round to nearest, ties to even, like the x87 in its default mode.
//!
//! ```text
//! let cur = LongDouble::parse(b"10.5").unwrap();
//! let incr = LongDouble::parse(b"0.1").unwrap();
//! let sum = cur + incr;
//! assert!(sum.is_finite()); // else "ERR increment would produce NaN or Infinity"
//! let mut out = Vec::new();
//! sum.format_human(&mut out); // b"10.6"
//! ```

use std::cmp::Ordering;

/// Exponent of the least significant significand bit of the smallest subnormal: 2^-16445.
const MIN_LSB_EXP: i64 = -16382 - 63;
/// Largest exponent of the leading significand bit: values < 2^16384.
const MAX_LEAD_EXP: i64 = 16383;
/// Redis's MAX_LONG_DOUBLE_CHARS: string2ld rejects strings of this length or more.
const MAX_LONG_DOUBLE_CHARS: usize = 5 * 1024;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Repr {
    Nan {
        neg: bool,
    },
    Inf {
        neg: bool,
    },
    /// value = mant * 2^exp (mant == 0: a zero). Nonzero normals have bit 63 of mant set.
    Finite {
        neg: bool,
        mant: u64,
        exp: i32,
    },
}

/// An x87 extended-precision value (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LongDouble(Repr);

// ---------------------------------------------------------------------------------------------
// Minimal unsigned big integer (little-endian u32 limbs)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }
    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }
    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }
    fn bit_len(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(&top) => (self.0.len() as u64 - 1) * 32 + (32 - top.leading_zeros() as u64),
        }
    }
    fn bit(&self, i: u64) -> bool {
        let limb = (i / 32) as usize;
        limb < self.0.len() && (self.0[limb] >> (i % 32)) & 1 == 1
    }
    /// Whether any bit below position `i` is set.
    fn any_below(&self, i: u64) -> bool {
        let full = ((i / 32) as usize).min(self.0.len());
        if self.0[..full].iter().any(|&l| l != 0) {
            return true;
        }
        let rem = i % 32;
        full < self.0.len() && rem > 0 && self.0[full] & ((1u32 << rem) - 1) != 0
    }
    /// (self >> shift) as u64; the caller guarantees it fits.
    fn shr_u64(&self, shift: u64) -> u64 {
        let mut v: u64 = 0;
        for k in 0..64u64 {
            if self.bit(shift + k) {
                v |= 1 << k;
            }
        }
        v
    }
    fn shl(&mut self, bits: u64) {
        if self.is_zero() || bits == 0 {
            return;
        }
        let limbs = (bits / 32) as usize;
        let rem = (bits % 32) as u32;
        if rem > 0 {
            let mut carry = 0u32;
            for l in self.0.iter_mut() {
                let nc = *l >> (32 - rem);
                *l = (*l << rem) | carry;
                carry = nc;
            }
            if carry != 0 {
                self.0.push(carry);
            }
        }
        if limbs > 0 {
            self.0.splice(0..0, (0..limbs).map(|_| 0u32));
        }
    }
    fn shr1(&mut self) {
        let mut carry = 0u32;
        for l in self.0.iter_mut().rev() {
            let nc = *l & 1;
            *l = (*l >> 1) | (carry << 31);
            carry = nc;
        }
        self.trim();
    }
    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for l in self.0.iter_mut() {
            let v = *l as u64 * m as u64 + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }
    fn add_small(&mut self, a: u32) {
        let mut carry = a as u64;
        for l in self.0.iter_mut() {
            if carry == 0 {
                return;
            }
            let v = *l as u64 + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }
    fn mul_pow10(&mut self, mut e: u64) {
        while e >= 9 {
            self.mul_small(1_000_000_000);
            e -= 9;
        }
        if e > 0 {
            self.mul_small(10u32.pow(e as u32));
        }
    }
    fn pow10(e: u64) -> Big {
        let mut b = Big::from_u64(1);
        b.mul_pow10(e);
        b
    }
    /// In place division by a small divisor; returns the remainder.
    fn divmod_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for l in self.0.iter_mut().rev() {
            let v = (rem << 32) | *l as u64;
            *l = (v / d as u64) as u32;
            rem = v % d as u64;
        }
        self.trim();
        rem as u32
    }
    fn cmp(&self, o: &Big) -> Ordering {
        if self.0.len() != o.0.len() {
            return self.0.len().cmp(&o.0.len());
        }
        for (a, b) in self.0.iter().rev().zip(o.0.iter().rev()) {
            if a != b {
                return a.cmp(b);
            }
        }
        Ordering::Equal
    }
    fn add(&mut self, o: &Big) {
        if self.0.len() < o.0.len() {
            self.0.resize(o.0.len(), 0);
        }
        let mut carry = 0u64;
        for i in 0..self.0.len() {
            let v = self.0[i] as u64 + o.0.get(i).copied().unwrap_or(0) as u64 + carry;
            self.0[i] = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }
    /// self -= o; requires self >= o.
    fn sub(&mut self, o: &Big) {
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let v = self.0[i] as i64 - o.0.get(i).copied().unwrap_or(0) as i64 - borrow;
            if v < 0 {
                self.0[i] = (v + (1i64 << 32)) as u32;
                borrow = 1;
            } else {
                self.0[i] = v as u32;
                borrow = 0;
            }
        }
        debug_assert_eq!(borrow, 0);
        self.trim();
    }
    /// Quotient (which must be small, a few hundred bits at most) and whether the remainder is
    /// nonzero, by shift-and-subtract.
    fn div_sticky(mut num: Big, den: &Big) -> (Big, bool) {
        let nb = num.bit_len();
        let db = den.bit_len();
        if nb < db {
            return (Big(Vec::new()), !num.is_zero());
        }
        let t = nb - db;
        let mut d = den.clone();
        d.shl(t);
        let mut q = Big(vec![0; (t / 32 + 1) as usize]);
        for i in (0..=t).rev() {
            if num.cmp(&d) != Ordering::Less {
                num.sub(&d);
                q.0[(i / 32) as usize] |= 1 << (i % 32);
            }
            d.shr1();
        }
        q.trim();
        (q, !num.is_zero())
    }
    /// Decimal digits (no leading zeros; "0" for zero).
    fn to_decimal(&self, out: &mut Vec<u8>) {
        if self.is_zero() {
            out.push(b'0');
            return;
        }
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.is_zero() {
            chunks.push(n.divmod_small(1_000_000_000));
        }
        let top = chunks.pop().unwrap();
        out.extend_from_slice(top.to_string().as_bytes());
        for c in chunks.iter().rev() {
            out.extend_from_slice(format!("{:09}", c).as_bytes());
        }
    }
}

/// Rounds the exact value `n * 2^e2` (plus an infinitesimal when `sticky`) to `prec` bits, with
/// the least significant bit not below 2^min_lsb and overflow above 2^(max_lead+1).
/// Returns None on overflow, else (mantissa, exponent of its lsb).
fn round_to(n: &Big, e2: i64, sticky: bool, prec: u32, min_lsb: i64, max_lead: i64) -> Option<(u64, i64)> {
    if n.is_zero() {
        return Some((0, 0));
    }
    let lead = n.bit_len() as i64 - 1 + e2;
    let mut lsb = (lead - (prec as i64 - 1)).max(min_lsb);
    let shift = lsb - e2;
    let mut kept;
    if shift <= 0 {
        kept = n.shr_u64(0) << (-shift);
    } else {
        let s = shift as u64;
        kept = n.shr_u64(s);
        let round = n.bit(s - 1);
        let rest = sticky || n.any_below(s - 1);
        if round && (rest || kept & 1 == 1) {
            kept += 1;
            if prec < 64 && kept == 1u64 << prec || prec == 64 && kept == 0 {
                // Carried into a new bit.
                kept = 1u64 << (prec - 1);
                lsb += 1;
            }
        }
    }
    if kept != 0 && (63 - kept.leading_zeros() as i64) + lsb > max_lead {
        return None;
    }
    Some((kept, lsb))
}

fn ascii_lower_eq(s: &[u8], word: &[u8]) -> bool {
    s.len() >= word.len() && s[..word.len()].eq_ignore_ascii_case(word)
}

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble(Repr::Finite {
        neg: false,
        mant: 0,
        exp: 0,
    });

    fn finite(neg: bool, n: &Big, e2: i64, sticky: bool) -> LongDouble {
        match round_to(n, e2, sticky, 64, MIN_LSB_EXP, MAX_LEAD_EXP) {
            None => LongDouble(Repr::Inf { neg }),
            Some((mant, exp)) => LongDouble(Repr::Finite {
                neg,
                mant,
                exp: if mant == 0 { 0 } else { exp as i32 },
            }),
        }
    }

    /// Exact conversion (what C does with `(long double)d`).
    pub fn from_f64(d: f64) -> LongDouble {
        if d.is_nan() {
            return LongDouble(Repr::Nan {
                neg: d.is_sign_negative(),
            });
        }
        if d.is_infinite() {
            return LongDouble(Repr::Inf { neg: d < 0.0 });
        }
        let bits = d.to_bits();
        let neg = bits >> 63 == 1;
        let e = ((bits >> 52) & 0x7ff) as i64;
        let f = bits & ((1u64 << 52) - 1);
        let (m, e2) = if e == 0 {
            (f, -1074)
        } else {
            (f | (1u64 << 52), e - 1075)
        };
        LongDouble::finite(neg, &Big::from_u64(m), e2, false)
    }

    /// Exact conversion (what C does with `(long double)ll`).
    pub fn from_i64(v: i64) -> LongDouble {
        LongDouble::finite(v < 0, &Big::from_u64(v.unsigned_abs()), 0, false)
    }

    /// Nearest f64 (ties to even).
    pub fn to_f64(&self) -> f64 {
        match self.0 {
            Repr::Nan { neg } => {
                if neg {
                    -f64::NAN
                } else {
                    f64::NAN
                }
            }
            Repr::Inf { neg } => {
                if neg {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }
            }
            Repr::Finite { neg, mant, exp } => {
                let sign = if neg { -1.0 } else { 1.0 };
                match round_to(&Big::from_u64(mant), exp as i64, false, 53, -1074, 1023) {
                    None => sign * f64::INFINITY,
                    Some((m, lsb)) => {
                        // m < 2^53 and m * 2^lsb is representable: scale in exact steps.
                        let mut v = m as f64;
                        let mut e = lsb;
                        while e > 0 {
                            let s = e.min(1000);
                            v *= f64::from_bits(((1023 + s) as u64) << 52);
                            e -= s;
                        }
                        while e < 0 {
                            let s = (-e).min(1000);
                            v /= f64::from_bits(((1023 + s) as u64) << 52);
                            e += s;
                        }
                        sign * v
                    }
                }
            }
        }
    }

    pub fn is_nan(&self) -> bool {
        matches!(self.0, Repr::Nan { .. })
    }
    pub fn is_infinite(&self) -> bool {
        matches!(self.0, Repr::Inf { .. })
    }
    pub fn is_finite(&self) -> bool {
        matches!(self.0, Repr::Finite { .. })
    }

    /// Redis's `string2ld`: `strtold` on the whole string, rejecting an empty string, strings of
    /// 5120 bytes or more, a leading space, trailing garbage, NaN, and overflow / underflow to
    /// zero (ERANGE). Accepts what glibc's strtold accepts: decimal, hex floats ("0x1p3"),
    /// "inf"/"infinity". As in Redis, the string ends at its first NUL byte.
    pub fn parse(s: &[u8]) -> Option<LongDouble> {
        if s.is_empty() || s.len() >= MAX_LONG_DOUBLE_CHARS {
            return None;
        }
        let s = match s.iter().position(|&c| c == 0) {
            Some(i) => &s[..i],
            None => s,
        };
        if s.is_empty() {
            // strtold("") converts nothing and leaves eptr at the terminator: Redis takes 0.
            return Some(LongDouble::ZERO);
        }
        let mut i = 0;
        let neg = match s[0] {
            b'-' => {
                i = 1;
                true
            }
            b'+' => {
                i = 1;
                false
            }
            _ => false,
        };
        let rest = &s[i..];
        if ascii_lower_eq(rest, b"infinity") && rest.len() == 8 || ascii_lower_eq(rest, b"inf") && rest.len() == 3 {
            return Some(LongDouble(Repr::Inf { neg }));
        }
        if ascii_lower_eq(rest, b"nan") {
            return None;
        }
        if rest.len() > 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
            if let Some(v) = Self::parse_hex(neg, &rest[2..]) {
                return Some(v);
            }
            // "0x" without hex digits: strtold parses the "0" and stops at the 'x'.
            return None;
        }
        Self::parse_dec(neg, rest)
    }

    fn parse_dec(neg: bool, s: &[u8]) -> Option<LongDouble> {
        let mut i = 0;
        let mut digits = Big(Vec::new());
        let mut ndigits: i64 = 0; // significant digits accumulated
        let mut any = false;
        let mut e10: i64 = 0;
        let mut chunk = 0u32;
        let mut chunk_len = 0u32;
        let push = |d: u8, digits: &mut Big, chunk: &mut u32, chunk_len: &mut u32| {
            *chunk = *chunk * 10 + d as u32;
            *chunk_len += 1;
            if *chunk_len == 9 {
                digits.mul_small(1_000_000_000);
                digits.add_small(*chunk);
                *chunk = 0;
                *chunk_len = 0;
            }
        };
        while i < s.len() && s[i].is_ascii_digit() {
            any = true;
            if ndigits > 0 || s[i] != b'0' {
                push(s[i] - b'0', &mut digits, &mut chunk, &mut chunk_len);
                ndigits += 1;
            }
            i += 1;
        }
        if i < s.len() && s[i] == b'.' {
            i += 1;
            while i < s.len() && s[i].is_ascii_digit() {
                any = true;
                if ndigits > 0 || s[i] != b'0' {
                    push(s[i] - b'0', &mut digits, &mut chunk, &mut chunk_len);
                    ndigits += 1;
                }
                e10 -= 1;
                i += 1;
            }
        }
        if !any {
            return None;
        }
        if i < s.len() && (s[i] | 0x20) == b'e' {
            let mut j = i + 1;
            let eneg = match s.get(j) {
                Some(b'-') => {
                    j += 1;
                    true
                }
                Some(b'+') => {
                    j += 1;
                    false
                }
                _ => false,
            };
            if j < s.len() && s[j].is_ascii_digit() {
                let mut e: i64 = 0;
                while j < s.len() && s[j].is_ascii_digit() {
                    e = (e * 10 + (s[j] - b'0') as i64).min(1_000_000_000);
                    j += 1;
                }
                e10 += if eneg { -e } else { e };
                i = j;
            }
        }
        if i != s.len() {
            return None;
        }
        if chunk_len > 0 {
            digits.mul_small(10u32.pow(chunk_len));
            digits.add_small(chunk);
        }
        if digits.is_zero() {
            return Some(LongDouble(Repr::Finite { neg, mant: 0, exp: 0 }));
        }
        // The value is in [10^(ndigits-1+e10), 10^(ndigits+e10)).
        let mag = ndigits + e10;
        if mag > 4934 {
            return None; // ERANGE, HUGE_VALL
        }
        if mag < -4952 {
            return None; // ERANGE, underflow to zero
        }
        let v = if e10 >= 0 {
            digits.mul_pow10(e10 as u64);
            LongDouble::finite(neg, &digits, 0, false)
        } else {
            let den = Big::pow10((-e10) as u64);
            let s = (den.bit_len() + 68).saturating_sub(digits.bit_len());
            digits.shl(s);
            let (q, sticky) = Big::div_sticky(digits, &den);
            LongDouble::finite(neg, &q, -(s as i64), sticky)
        };
        match v.0 {
            Repr::Inf { .. } => None,
            Repr::Finite { mant: 0, .. } => None,
            _ => Some(v),
        }
    }

    fn parse_hex(neg: bool, s: &[u8]) -> Option<LongDouble> {
        let hex = |c: u8| (c as char).to_digit(16);
        let mut i = 0;
        let mut n = Big(Vec::new());
        let mut any = false;
        let mut e2: i64 = 0;
        while i < s.len() && hex(s[i]).is_some() {
            n.shl(4);
            n.add_small(hex(s[i]).unwrap());
            any = true;
            i += 1;
        }
        if i < s.len() && s[i] == b'.' {
            i += 1;
            while i < s.len() && hex(s[i]).is_some() {
                n.shl(4);
                n.add_small(hex(s[i]).unwrap());
                e2 -= 4;
                any = true;
                i += 1;
            }
        }
        if !any {
            return None;
        }
        if i < s.len() && (s[i] | 0x20) == b'p' {
            let mut j = i + 1;
            let eneg = match s.get(j) {
                Some(b'-') => {
                    j += 1;
                    true
                }
                Some(b'+') => {
                    j += 1;
                    false
                }
                _ => false,
            };
            if j < s.len() && s[j].is_ascii_digit() {
                let mut e: i64 = 0;
                while j < s.len() && s[j].is_ascii_digit() {
                    e = (e * 10 + (s[j] - b'0') as i64).min(1_000_000_000);
                    j += 1;
                }
                e2 += if eneg { -e } else { e };
                i = j;
            }
        }
        if i != s.len() {
            return None;
        }
        if n.is_zero() {
            return Some(LongDouble(Repr::Finite { neg, mant: 0, exp: 0 }));
        }
        let lead = n.bit_len() as i64 - 1 + e2;
        if lead > MAX_LEAD_EXP {
            return None;
        }
        if lead < MIN_LSB_EXP - 1 {
            return None;
        }
        let v = LongDouble::finite(neg, &n, e2, false);
        match v.0 {
            Repr::Inf { .. } | Repr::Finite { mant: 0, .. } => None,
            _ => Some(v),
        }
    }

    /// `self + other`, rounded to nearest even as the x87 does (same as the `+` operator).
    pub fn sum(self, other: LongDouble) -> LongDouble {
        use Repr::*;
        match (self.0, other.0) {
            // The x87 "real indefinite" NaN has its sign bit set (printf shows "-nan").
            (Nan { .. }, _) | (_, Nan { .. }) => LongDouble(Nan { neg: true }),
            (Inf { neg: a }, Inf { neg: b }) => {
                if a == b {
                    self
                } else {
                    LongDouble(Nan { neg: true })
                }
            }
            (Inf { .. }, _) => self,
            (_, Inf { .. }) => other,
            (
                Finite {
                    neg: na,
                    mant: ma,
                    exp: ea,
                },
                Finite {
                    neg: nb,
                    mant: mb,
                    exp: eb,
                },
            ) => {
                if ma == 0 && mb == 0 {
                    return LongDouble(Finite {
                        neg: na && nb,
                        mant: 0,
                        exp: 0,
                    });
                }
                if ma == 0 {
                    return other;
                }
                if mb == 0 {
                    return self;
                }
                // Far apart: the smaller one is below a quarter ulp of the bigger one.
                if (ea as i64) - (eb as i64) > 200 {
                    return self;
                }
                if (eb as i64) - (ea as i64) > 200 {
                    return other;
                }
                let e = ea.min(eb) as i64;
                let mut a = Big::from_u64(ma);
                a.shl((ea as i64 - e) as u64);
                let mut b = Big::from_u64(mb);
                b.shl((eb as i64 - e) as u64);
                if na == nb {
                    a.add(&b);
                    LongDouble::finite(na, &a, e, false)
                } else {
                    match a.cmp(&b) {
                        Ordering::Equal => LongDouble::ZERO,
                        Ordering::Greater => {
                            a.sub(&b);
                            LongDouble::finite(na, &a, e, false)
                        }
                        Ordering::Less => {
                            b.sub(&a);
                            LongDouble::finite(nb, &b, e, false)
                        }
                    }
                }
            }
        }
    }

    /// Redis's `ld2string(buf, len, value, LD_STR_HUMAN)`: "%.17Lf", trailing zeros after the
    /// dot and then the dot removed, "-0" turned into "0"; "inf" / "-inf"; NaN as glibc prints
    /// it ("nan" / "-nan").
    pub fn format_human(&self, out: &mut Vec<u8>) {
        match self.0 {
            Repr::Nan { neg } => out.extend_from_slice(if neg { b"-nan" } else { b"nan" }),
            Repr::Inf { neg } => out.extend_from_slice(if neg { b"-inf" } else { b"inf" }),
            Repr::Finite { neg, mant, exp } => {
                let start = out.len();
                if neg {
                    out.push(b'-');
                }
                format_fixed17(mant, exp as i64, out);
                // Trim trailing zeros and the dot (there always is a dot).
                while out.last() == Some(&b'0') {
                    out.pop();
                }
                if out.last() == Some(&b'.') {
                    out.pop();
                }
                if &out[start..] == b"-0" {
                    out.truncate(start);
                    out.push(b'0');
                }
            }
        }
    }
}

impl std::ops::Add for LongDouble {
    type Output = LongDouble;
    /// Rounded to nearest even, as the x87 does.
    fn add(self, other: LongDouble) -> LongDouble {
        self.sum(other)
    }
}

/// "%.17Lf" of mant * 2^exp (without sign), exact with round-half-even.
fn format_fixed17(mant: u64, exp: i64, out: &mut Vec<u8>) {
    const PREC: usize = 17;
    if exp >= 0 {
        let mut n = Big::from_u64(mant);
        n.shl(exp as u64);
        n.to_decimal(out);
        out.push(b'.');
        out.extend_from_slice(&[b'0'; PREC]);
        return;
    }
    let sh = (-exp) as u64;
    let (mut int_part, mut frac) = if sh >= 64 {
        (Big(Vec::new()), Big::from_u64(mant))
    } else {
        (Big::from_u64(mant >> sh), Big::from_u64(mant & ((1u64 << sh) - 1)))
    };
    let mut digits = [0u8; PREC];
    for d in digits.iter_mut() {
        frac.mul_small(10);
        let top = frac.shr_u64(sh); // < 10
        *d = top as u8;
        if top != 0 {
            // Clear the bits at and above `sh`.
            let limb = (sh / 32) as usize;
            let rem = (sh % 32) as u32;
            frac.0.truncate(limb + 1);
            if limb < frac.0.len() {
                frac.0[limb] &= if rem == 0 { 0 } else { (1u32 << rem) - 1 };
            }
            frac.trim();
        }
    }
    // Rounding: compare the remainder with one half (2^(sh-1)).
    let half = frac.bit(sh - 1);
    let above = half && frac.any_below(sh - 1);
    let round_up = above || (half && digits[PREC - 1] % 2 == 1);
    if round_up {
        let mut i = PREC;
        loop {
            if i == 0 {
                int_part.add_small(1);
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    int_part.to_decimal(out);
    out.push(b'.');
    out.extend(digits.iter().map(|d| b'0' + d));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn human(v: LongDouble) -> String {
        let mut out = Vec::new();
        v.format_human(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn incrbyfloat(a: &str, b: &str) -> String {
        let x = LongDouble::parse(a.as_bytes()).unwrap();
        let y = LongDouble::parse(b.as_bytes()).unwrap();
        human(x + y)
    }

    /// `SET k a; INCRBYFLOAT k b` on redis-server 7.0.15 (x86-64).
    #[test]
    fn incrbyfloat_matches_redis_7_0() {
        let cases = [
            ("10.5", "0.1", "10.6"),
            ("3.0e3", "2.0e2", "3200"),
            ("5.0e3", "2.0e2", "5200"),
            ("5.0e-1", "0", "0.5"),
            ("0.1", "0.2", "0.3"),
            ("1e20", "1", "100000000000000000000"),
            ("-0", "0", "0"),
            ("1e-20", "0", "0"),
            ("10.50", "-5", "5.5"),
            ("1", "0.25", "1.25"),
            ("0", "1e-5", "0.00001"),
            ("1.1", "2.2", "3.3"),
            ("123456789", "0.123456789", "123456789.12345678899873747"),
            ("0", "0x10", "16"),
            ("0", "3.0e3", "3000"),
            ("0", "5.0e-1", "0.5"),
            ("1e10", "0.1", "10000000000.09999999962747097"),
            ("0.000000000000000001", "0", "0"),
            ("2", "-1.1", "0.9"),
            (
                "1e308",
                "1e308",
                "199999999999999999993371759311691291321120199694831134415594095989843469737676123744200253843777078640893494450108026446304269499187921167194841628860392837535918200039206381557326219209014213335878306791577877829121087126122536729803237260434173178506889763247582601711514636284849020905456510092687857156096",
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(incrbyfloat(a, b), want, "{} + {}", a, b);
        }
        // 0 + 1e4000: a 4000-digit number starting like this (finite in long double).
        let big = incrbyfloat("0", "1e4000");
        assert_eq!(big.len(), 4000);
        assert!(big.starts_with("9999999999999999999965463873099623784932492583506957631301508333"));
        assert!(big.ends_with("729951206648276349901340672"));
    }

    #[test]
    fn parse_rules_of_string2ld() {
        for bad in [
            "", " 1", "1 ", "abc", "1e", "1e+", ".", "-", "nan", "NaN", "1e5000", "-1e5000", "1e-5000", "0x", "0xg",
            "1.5x", "0x1p",
        ] {
            assert!(LongDouble::parse(bad.as_bytes()).is_none(), "{:?}", bad);
        }
        for (s, want) in [
            ("1.", "1"),
            (".5", "0.5"),
            ("+2", "2"),
            ("-2.50", "-2.5"),
            ("0x1.8p1", "3"),
            ("0X.8", "0.5"),
            ("1E2", "100"),
            ("1e-0", "1"),
        ] {
            assert_eq!(human(LongDouble::parse(s.as_bytes()).unwrap()), want, "{:?}", s);
        }
        assert!(LongDouble::parse(b"inf").unwrap().is_infinite());
        assert!(LongDouble::parse(b"-Infinity").unwrap().is_infinite());
        // The C string ends at NUL.
        assert_eq!(human(LongDouble::parse(b"1.5\0junk").unwrap()), "1.5");
        assert_eq!(human(LongDouble::parse(b"\0junk").unwrap()), "0");
        assert!(LongDouble::parse(&vec![b'1'; 5120]).is_none());
        // Subnormal long doubles are accepted (ERANGE but not zero).
        assert!(LongDouble::parse(b"1e-4940").is_some());
    }

    #[test]
    fn infinities_and_nan() {
        let inf = LongDouble::parse(b"inf").unwrap();
        let ninf = LongDouble::parse(b"-inf").unwrap();
        assert!((inf + ninf).is_nan());
        assert_eq!(human(inf + LongDouble::from_i64(1)), "inf");
        assert_eq!(human(ninf), "-inf");
        // Overflow of the 80-bit range.
        let max = LongDouble::parse(b"1e4932").unwrap();
        assert!(max.is_finite());
        assert!((max + max).is_infinite());
    }

    #[test]
    fn conversions() {
        assert_eq!(LongDouble::from_f64(0.1).to_f64(), 0.1);
        assert_eq!(LongDouble::parse(b"0.1").unwrap().to_f64(), 0.1);
        assert_eq!(LongDouble::from_f64(5e-324).to_f64(), 5e-324);
        assert_eq!(LongDouble::from_f64(f64::MAX).to_f64(), f64::MAX);
        assert_eq!(LongDouble::parse(b"1e309").unwrap().to_f64(), f64::INFINITY);
        assert_eq!(human(LongDouble::from_i64(i64::MIN)), "-9223372036854775808");
        assert_eq!(human(LongDouble::from_f64(0.1)), "0.10000000000000001");
        assert_eq!(human(LongDouble::from_f64(-0.0)), "0");
        assert_eq!(human(LongDouble::from_f64(0.125)), "0.125");
        assert_eq!(human(LongDouble::from_f64(2.5e-17)), "0.00000000000000002"); // 2.4999999999999999e-17
        assert_eq!(human(LongDouble::from_f64(3.5e-17)), "0.00000000000000004");
        assert_eq!(
            human(LongDouble::from_f64(1.0 - f64::EPSILON / 2.0)),
            "0.99999999999999989"
        );
        // Exact ties at the 18th decimal round to even, like glibc's printf.
        assert_eq!(human(LongDouble::from_f64(2f64.powi(-18))), "0.00000381469726562"); // ...625
        assert_eq!(human(LongDouble::from_f64(3.0 * 2f64.powi(-18))), "0.00001144409179688");
        // ...875
    }

    proptest! {
        #[test]
        fn prop_parse_exact_decimal_of_f64(v in any::<f64>().prop_filter("finite", |v| v.is_finite() && *v != 0.0)) {
            // Every f64 is exactly representable as a long double and has an exact decimal
            // expansion of at most 767 significant digits: parsing it must be exact.
            let s = format!("{:.800e}", v);
            let ld = LongDouble::parse(s.as_bytes()).unwrap();
            prop_assert_eq!(ld, LongDouble::from_f64(v));
            prop_assert_eq!(ld.to_f64(), v);
        }

        #[test]
        fn prop_format_agrees_with_rust_for_f64(v in -1e15f64..1e15f64) {
            // For f64 values %.17Lf == %.17f, which Rust's exact formatting reproduces.
            let mut want = format!("{:.17}", v).into_bytes();
            while want.last() == Some(&b'0') { want.pop(); }
            if want.last() == Some(&b'.') { want.pop(); }
            if want == b"-0" { want = b"0".to_vec(); }
            let mut got = Vec::new();
            LongDouble::from_f64(v).format_human(&mut got);
            prop_assert_eq!(String::from_utf8(got).unwrap(), String::from_utf8(want).unwrap());
        }

        #[test]
        fn prop_add_small_ints_is_exact(a in -1_000_000i64..1_000_000, b in -1_000_000i64..1_000_000) {
            let s = LongDouble::from_i64(a) + LongDouble::from_i64(b);
            prop_assert_eq!(human(s), (a + b).to_string());
        }
    }
}
