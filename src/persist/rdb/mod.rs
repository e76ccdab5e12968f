//! RDB version 10 (Redis 7.0's format) for `dump.rdb`, AOF base files and DUMP/RESTORE
//! payloads: the byte-level codec. [`write`] turns a key and its value into RDB bytes, one
//! key at a time, so a shard can serialize its keyspace in small steps between commands;
//! [`read`] parses files and payloads of every type and encoding Redis 7.0 writes, the
//! older encodings it still reads, and 7.2's listpack sets (RDB 11).
//!
//! What is written is what Redis 7.0 writes for the same encodings: strings integer-encoded
//! or LZF-compressed ([`lzf`]) by rdb.c's rules, lists as quicklist-2 nodes (listpacks),
//! small hashes and sorted sets as listpacks, intsets as intsets, big hashes, sets and
//! sorted sets (binary doubles) as plain collections, then EOF and a CRC-64 ([`crc64`]).
//! One deliberate difference: sets in 7.2's listpack encoding are written as plain sets,
//! which Redis 7.0 can load (it cannot load RDB_TYPE_SET_LISTPACK).

pub mod check;
pub mod crc64;
pub mod lzf;
pub mod read;
pub mod save;
pub mod write;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::store::value::Value;
use crate::store::EncodingLimits;

/// The version written (Redis 7.0's).
pub const RDB_VERSION: u32 = 10;
/// The newest version read (Redis 7.2's: adds listpack sets).
pub const RDB_VERSION_MAX_READ: u32 = 11;

pub const TYPE_STRING: u8 = 0;
pub const TYPE_LIST: u8 = 1;
pub const TYPE_SET: u8 = 2;
pub const TYPE_ZSET: u8 = 3;
pub const TYPE_HASH: u8 = 4;
pub const TYPE_ZSET_2: u8 = 5;
pub const TYPE_MODULE_PRE_GA: u8 = 6;
pub const TYPE_MODULE_2: u8 = 7;
pub const TYPE_HASH_ZIPMAP: u8 = 9;
pub const TYPE_LIST_ZIPLIST: u8 = 10;
pub const TYPE_SET_INTSET: u8 = 11;
pub const TYPE_ZSET_ZIPLIST: u8 = 12;
pub const TYPE_HASH_ZIPLIST: u8 = 13;
pub const TYPE_LIST_QUICKLIST: u8 = 14;
pub const TYPE_STREAM_LISTPACKS: u8 = 15;
pub const TYPE_HASH_LISTPACK: u8 = 16;
pub const TYPE_ZSET_LISTPACK: u8 = 17;
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
pub const TYPE_STREAM_LISTPACKS_2: u8 = 19;
pub const TYPE_SET_LISTPACK: u8 = 20;
pub const TYPE_STREAM_LISTPACKS_3: u8 = 21;

pub const OP_FUNCTION_PRE_GA: u8 = 246;
pub const OP_FUNCTION2: u8 = 245;
pub const OP_MODULE_AUX: u8 = 247;
pub const OP_IDLE: u8 = 248;
pub const OP_FREQ: u8 = 249;
pub const OP_AUX: u8 = 250;
pub const OP_RESIZEDB: u8 = 251;
pub const OP_EXPIRETIME_MS: u8 = 252;
pub const OP_EXPIRETIME: u8 = 253;
pub const OP_SELECTDB: u8 = 254;
pub const OP_EOF: u8 = 255;

pub const LEN_32BIT: u8 = 0x80;
pub const LEN_64BIT: u8 = 0x81;
pub const ENC_INT8: u8 = 0;
pub const ENC_INT16: u8 = 1;
pub const ENC_INT32: u8 = 2;
pub const ENC_LZF: u8 = 3;

pub const QUICKLIST_NODE_PLAIN: u64 = 1;
pub const QUICKLIST_NODE_PACKED: u64 = 2;

/// `rdbcompression`, for code that has no configuration at hand (DUMP runs on a shard
/// with only its keyspace): set whenever a shard reloads the configuration.
static COMPRESSION: AtomicBool = AtomicBool::new(true);

pub fn set_compression(on: bool) {
    COMPRESSION.store(on, Ordering::Relaxed);
}

pub fn compression() -> bool {
    COMPRESSION.load(Ordering::Relaxed)
}

/// createDumpPayload: type, value, the 2-byte RDB version, the CRC-64 of all that.
pub fn dump_payload(v: &Value, compress: bool) -> Vec<u8> {
    let mut out = vec![write::value_type(v)];
    write::value(&mut out, v, compress);
    out.extend_from_slice(&(RDB_VERSION as u16).to_le_bytes());
    let crc = crc64::crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// verifyDumpPayload: a known version and a matching checksum.
pub fn verify_payload(p: &[u8]) -> bool {
    if p.len() < 10 {
        return false;
    }
    let footer = &p[p.len() - 10..];
    let version = u16::from_le_bytes([footer[0], footer[1]]) as u32;
    if version > RDB_VERSION_MAX_READ {
        return false;
    }
    let crc = u64::from_le_bytes(footer[2..].try_into().unwrap_or_default());
    crc == crc64::crc64(0, &p[..p.len() - 8])
}

/// The value of a verified payload; `Err` is RESTORE's "Bad data format" (also for an
/// empty collection). Bytes after the value are ignored, as Redis does.
pub fn restore_payload(p: &[u8], lim: &EncodingLimits) -> Result<Value, read::Error> {
    let body = &p[..p.len().saturating_sub(10)];
    let mut inp = read::Input::new(body);
    let t = inp.u8()?;
    read::value(&mut inp, t, lim)?.ok_or(read::Error {
        offset: 0,
        msg: "empty collection".into(),
    })
}

#[cfg(test)]
mod tests;
