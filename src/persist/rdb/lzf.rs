//! LZF, which RDB uses for strings longer than 20 bytes when `rdbcompression yes`. The
//! compressor follows liblzf 3.6 (HLOG 16, VERY_FAST) step by step (hash, match rules, the
//! 16-byte unrolled match loop, the re-hashing after a match), so that DUMP payloads and
//! RDB files are byte for byte those of Debian's redis-server, which links that liblzf.
//! Redis's vendored lzf_c.c adds an `ip + 4 < in_end` guard, so upstream builds can differ
//! in the last bytes of some strings; every variant decodes alike.
//!
//! Format: `000LLLLL` + L+1 literal bytes; `LLLooooo oooooooo` a back reference of L+2
//! bytes at distance o+1; `111ooooo LLLLLLLL oooooooo` one of L+9 bytes.

use std::cell::RefCell;

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// The hash table: `generation << 32 | position`. An entry of another generation is empty,
/// so the table is never cleared between calls (liblzf's is simply uninitialized).
struct Table {
    slots: Vec<u64>,
    generation: u64,
}

thread_local! {
    static TABLE: RefCell<Table> = const { RefCell::new(Table { slots: Vec::new(), generation: 0 }) };
}

#[inline]
fn idx(h: u32) -> usize {
    ((h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// Compresses `inp` into at most `out_len` bytes; `None` if it does not fit (as liblzf's 0).
pub fn compress(inp: &[u8], out_len: usize) -> Option<Vec<u8>> {
    if inp.is_empty() || out_len == 0 || inp.len() >= u32::MAX as usize {
        return None;
    }
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        if t.slots.is_empty() {
            t.slots = vec![0; HSIZE];
        }
        t.generation += 1;
        if t.generation >= u32::MAX as u64 {
            t.slots.iter_mut().for_each(|s| *s = 0);
            t.generation = 1;
        }
        let gen = t.generation << 32;
        compress_with(inp, out_len, &mut t.slots, gen)
    })
}

fn compress_with(inp: &[u8], out_len: usize, htab: &mut [u64], gen: u64) -> Option<Vec<u8>> {
    let in_len = inp.len();
    // Slack: liblzf writes the run header one byte past a full buffer before undoing it.
    let mut out = vec![0u8; out_len + 4];
    let mut op = 0usize;
    let mut ip = 0usize;
    let mut lit = 0usize;
    let at = |i: usize| -> u32 { inp.get(i).copied().unwrap_or(0) as u32 };
    let frst = |i: usize| -> u32 { (at(i) << 8) | at(i + 1) };
    let next = |v: u32, i: usize| -> u32 { (v << 8) | at(i + 2) };
    op += 1; // start run
    let mut hval = frst(ip);
    while ip + 2 < in_len {
        hval = next(hval, ip);
        let slot = idx(hval);
        let entry = htab[slot];
        htab[slot] = gen | ip as u64;
        let r = if entry >> 32 == gen >> 32 {
            Some((entry & 0xffff_ffff) as usize)
        } else {
            None
        };
        let found = r.filter(|&r| {
            r < ip
                && ip - r - 1 < MAX_OFF
                && r > 0
                && inp[r] == inp[ip]
                && inp[r + 1] == inp[ip + 1]
                && inp[r + 2] == inp[ip + 2]
        });
        if let Some(r) = found {
            let off = ip - r - 1;
            let mut len = 2usize;
            let maxlen = (in_len - ip - len).min(MAX_REF);
            if op - usize::from(lit == 0) + 3 + 1 >= out_len {
                return None;
            }
            out[op - lit - 1] = (lit as u8).wrapping_sub(1); // stop run
            if lit == 0 {
                op -= 1; // undo an empty run
            }
            let mut stopped = false;
            if maxlen > 16 {
                for _ in 0..16 {
                    len += 1;
                    if inp[r + len] != inp[ip + len] {
                        stopped = true;
                        break;
                    }
                }
            }
            if !stopped {
                loop {
                    len += 1;
                    if !(len < maxlen && inp[r + len] == inp[ip + len]) {
                        break;
                    }
                }
            }
            len -= 2; // octets - 1
            ip += 1;
            if len < 7 {
                out[op] = ((off >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                out[op] = ((off >> 8) + (7 << 5)) as u8;
                out[op + 1] = (len - 7) as u8;
                op += 2;
            }
            out[op] = off as u8;
            op += 1;
            lit = 0;
            op += 1; // start run
            ip += len + 1;
            if ip + 2 >= in_len {
                break;
            }
            ip -= 2;
            hval = frst(ip);
            hval = next(hval, ip);
            htab[idx(hval)] = gen | ip as u64;
            ip += 1;
            hval = next(hval, ip);
            htab[idx(hval)] = gen | ip as u64;
            ip += 1;
        } else {
            if op >= out_len {
                return None;
            }
            lit += 1;
            out[op] = inp[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
        }
    }
    if op + 3 > out_len {
        return None;
    }
    while ip < in_len {
        lit += 1;
        out[op] = inp[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    if lit == 0 {
        op -= 1;
    }
    if op > out_len {
        return None;
    }
    out.truncate(op);
    Some(out)
}

/// Decompresses `inp`, which must expand to exactly `out_len` bytes.
pub fn decompress(inp: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(out_len);
    let mut ip = 0usize;
    while ip < inp.len() {
        let ctrl = inp[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            if ip + n > inp.len() || out.len() + n > out_len {
                return None;
            }
            out.extend_from_slice(&inp[ip..ip + n]);
            ip += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *inp.get(ip)? as usize;
                ip += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + *inp.get(ip)? as usize + 1;
            ip += 1;
            if back > out.len() || out.len() + len + 2 > out_len {
                return None;
            }
            let start = out.len() - back;
            for k in 0..len + 2 {
                let b = out[start + k];
                out.push(b);
            }
        }
    }
    (out.len() == out_len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut cases: Vec<Vec<u8>> = vec![
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
            b"hello hello hello hello hello hello world".to_vec(),
            (0..5000u32).map(|i| (i % 7) as u8 + b'a').collect(),
            (0..70000u32)
                .map(|i| (i.wrapping_mul(2654435761u32) >> 24) as u8)
                .collect(),
        ];
        cases.push(cases[2].repeat(3));
        for c in cases {
            match compress(&c, c.len() - 4) {
                Some(z) => assert_eq!(decompress(&z, c.len()).as_deref(), Some(&c[..])),
                None => assert!(c.len() > 60000, "only the random case is incompressible"),
            }
        }
    }

    #[test]
    fn incompressible_is_refused() {
        let c: Vec<u8> = (0..64u8).collect();
        assert_eq!(compress(&c, c.len() - 4), None);
    }

    #[test]
    fn corrupt_input_is_refused() {
        assert_eq!(decompress(&[0x20, 0x05], 3), None); // reference before the start
        assert_eq!(decompress(&[0x03, b'a'], 4), None); // literal run past the end
        assert_eq!(decompress(&[0x00, b'a'], 2), None); // too short
    }
}

#[cfg(test)]
mod liblzf {
    /// Compares with a file of `input-hex output-hex` lines from the system liblzf
    /// (`LZF_CASES=path cargo test --lib lzf::liblzf -- --ignored`).
    #[test]
    #[ignore]
    fn same_as_liblzf() {
        let Ok(path) = std::env::var("LZF_CASES") else { return };
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let mut bad = 0;
        for (i, line) in std::fs::read_to_string(path).unwrap().lines().enumerate() {
            let (a, b) = line.split_once(' ').unwrap();
            let inp = hex(a);
            let ours = super::compress(&inp, inp.len() - 4).unwrap_or_default();
            if ours != hex(b) {
                bad += 1;
                eprintln!(
                    "case {i} (len {}) differs: ours {} theirs {}",
                    inp.len(),
                    ours.len(),
                    b.len() / 2
                );
            }
        }
        assert_eq!(bad, 0);
    }
}
