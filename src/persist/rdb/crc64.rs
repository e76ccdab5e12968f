//! Redis's CRC-64 (crc64.c): the Jones polynomial, reflected, initial value 0, no final
//! xor. It guards RDB files and DUMP payloads. Table-driven, eight bytes per step
//! ("slicing by 8"), since a SAVE checksums every byte it writes.

/// 0xad93d23594c935a9 with its bits reversed (the reflected form of the polynomial).
const POLY: u64 = 0x95ac_9329_ac4b_c9b5;

const fn tables() -> [[u64; 256]; 8] {
    let mut t = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u64;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

static T: [[u64; 256]; 8] = tables();

/// Continues `crc` over `data` (start with 0).
pub fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        crc ^= u64::from_le_bytes(b);
        crc = T[7][(crc & 0xff) as usize]
            ^ T[6][((crc >> 8) & 0xff) as usize]
            ^ T[5][((crc >> 16) & 0xff) as usize]
            ^ T[4][((crc >> 24) & 0xff) as usize]
            ^ T[3][((crc >> 32) & 0xff) as usize]
            ^ T[2][((crc >> 40) & 0xff) as usize]
            ^ T[1][((crc >> 48) & 0xff) as usize]
            ^ T[0][(crc >> 56) as usize];
    }
    for &b in chunks.remainder() {
        crc = T[0][((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// crc64.c's own test vectors.
    #[test]
    fn redis_vectors() {
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn incremental_equals_whole() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        let whole = crc64(0, &data);
        for cut in [0, 1, 7, 8, 9, 500, 999, 1000] {
            assert_eq!(crc64(crc64(0, &data[..cut]), &data[cut..]), whole);
        }
    }
}
