//! Keys to slots to shards, exactly as Redis Cluster computes slots (`keyHashSlot` in cluster.c):
//! `slot = CRC16(key) mod 16384`, hashing only the hash tag when the key has a non-empty `{...}`.
//! `shard = slot mod N`, so keys sharing a hash tag always live on one shard.

pub const SLOTS: u16 = 16384;

/// CRC16-CCITT (XMODEM), the variant Redis Cluster uses, table-driven.
const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC16_TABLE: [u16; 256] = crc16_table();

pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[(((crc >> 8) as u8) ^ b) as usize]
    })
}

/// The part of the key that is hashed: the content of the first `{...}` if it is non-empty.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = memchr::memchr(b'{', key) {
        if let Some(len) = memchr::memchr(b'}', &key[open + 1..]) {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOTS - 1)
}

pub fn shard_of(key: &[u8], shards: usize) -> usize {
    if shards == 1 {
        0
    } else {
        key_slot(key) as usize % shards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_reference_vector() {
        // The check value of CRC-16/XMODEM, also quoted in Redis's crc16.c.
        assert_eq!(crc16(b"123456789"), 0x31c3);
    }

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // Values from `CLUSTER KEYSLOT` on a Redis cluster node.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn hash_tags() {
        assert_eq!(key_slot(b"{user1}.name"), key_slot(b"{user1}.mail"));
        assert_eq!(key_slot(b"{user1}.name"), key_slot(b"user1"));
        // Empty tag: the whole key is hashed.
        assert_eq!(hash_tag(b"{}foo"), b"{}foo");
        // Only the first '{' counts, and the first '}' after it.
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
    }

    #[test]
    fn shard_is_slot_mod_n() {
        for key in [&b"a"[..], b"b", b"{x}y", b"long key with spaces"] {
            assert_eq!(shard_of(key, 4), key_slot(key) as usize % 4);
            assert_eq!(shard_of(key, 1), 0);
        }
    }
}
