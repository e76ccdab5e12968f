//! Redis 7 functions: libraries (`#!lua name=mylib` + `redis.register_function`) kept in one
//! global registry; every shard's VM loads them again when the registry's generation moves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, RwLock};

use bytes::Bytes;

#[derive(Clone, Debug)]
pub struct FuncInfo {
    pub name: String,
    pub description: Option<String>,
    /// As declared, in Redis's order of known flags.
    pub flags: Vec<&'static str>,
}

impl FuncInfo {
    pub fn no_writes(&self) -> bool {
        self.flags.contains(&"no-writes")
    }
}

#[derive(Clone, Debug)]
pub struct Library {
    pub name: String,
    pub code: Bytes,
    pub functions: Vec<FuncInfo>,
}

static LIBS: LazyLock<RwLock<Vec<Library>>> = LazyLock::new(|| RwLock::new(Vec::new()));
static GENERATION: AtomicU64 = AtomicU64::new(0);

pub const FLAGS: &[&str] = &[
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];

pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

pub fn libraries() -> Vec<Library> {
    LIBS.read().map(|l| l.clone()).unwrap_or_default()
}

pub fn find_function(name: &str) -> Option<FuncInfo> {
    let libs = LIBS.read().ok()?;
    libs.iter()
        .flat_map(|l| l.functions.iter())
        .find(|f| f.name == name)
        .cloned()
}

/// The library name a `FUNCTION LOAD` body declares, with Redis's errors.
pub fn parse_metadata(code: &[u8]) -> Result<String, String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    let line = &code[..memchr::memchr(b'\n', code).unwrap_or(code.len())];
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or("#!").trim_start_matches("#!");
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{engine}' not found"));
    }
    let mut name = None;
    for p in parts {
        match p.strip_prefix("name=") {
            Some(n) => name = Some(n.to_string()),
            None => return Err(format!("ERR Invalid metadata value given: {p}")),
        }
    }
    let name = name.ok_or("ERR Library name was not given")?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    Ok(name)
}

/// Adds (or with `replace`, replaces) a checked library.
pub fn install(lib: Library, replace: bool) -> Result<(), String> {
    let mut libs = LIBS
        .write()
        .map_err(|_| "ERR function registry unavailable".to_string())?;
    let existing = libs.iter().position(|l| l.name == lib.name);
    if existing.is_some() && !replace {
        return Err(format!("ERR Library '{}' already exists", lib.name));
    }
    for f in &lib.functions {
        let clash = libs
            .iter()
            .filter(|l| l.name != lib.name)
            .any(|l| l.functions.iter().any(|g| g.name == f.name));
        if clash {
            return Err(format!("ERR Function {} already exists", f.name));
        }
    }
    match existing {
        Some(i) => libs[i] = lib,
        None => libs.push(lib),
    }
    GENERATION.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

pub fn delete(name: &str) -> bool {
    let Ok(mut libs) = LIBS.write() else { return false };
    let before = libs.len();
    libs.retain(|l| l.name != name);
    let gone = libs.len() != before;
    if gone {
        GENERATION.fetch_add(1, Ordering::AcqRel);
    }
    gone
}

pub fn flush() {
    if let Ok(mut libs) = LIBS.write() {
        libs.clear();
    }
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

// ---- FUNCTION DUMP / RESTORE payloads (Redis's RDB encoding) ------------------------------

/// RDB_OPCODE_FUNCTION2: one library's code follows as an RDB string.
const OPCODE_FUNCTION2: u8 = 245;
/// The RDB version Redis 7.0 writes in DUMP payloads.
const RDB_VERSION: u16 = 10;

/// Redis's crc64 (Jones polynomial, reflected, as crc64.c).
pub fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    const POLY: u64 = 0x95ac_9329_ac4b_c9b5;
    for &b in data {
        crc ^= b as u64;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ POLY } else { crc >> 1 };
        }
    }
    crc
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    if n < 64 {
        out.push(n as u8);
    } else if n < 16384 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u32::MAX as usize {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
}

/// The payload of FUNCTION DUMP: every library, then the RDB version and the checksum.
pub fn dump() -> Vec<u8> {
    let mut out = Vec::new();
    for l in libraries() {
        out.push(OPCODE_FUNCTION2);
        put_len(&mut out, l.code.len());
        out.extend_from_slice(&l.code);
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// (length, encoded special?) of an RDB length field at `*pos`.
fn get_len(b: &[u8], pos: &mut usize) -> Option<(usize, bool)> {
    let first = *b.get(*pos)?;
    *pos += 1;
    Some(match first >> 6 {
        0 => ((first & 0x3f) as usize, false),
        1 => {
            let second = *b.get(*pos)?;
            *pos += 1;
            ((((first & 0x3f) as usize) << 8) | second as usize, false)
        }
        2 if first == 0x80 => {
            let v = u32::from_be_bytes(b.get(*pos..*pos + 4)?.try_into().ok()?);
            *pos += 4;
            (v as usize, false)
        }
        2 if first == 0x81 => {
            let v = u64::from_be_bytes(b.get(*pos..*pos + 8)?.try_into().ok()?);
            *pos += 8;
            (v as usize, false)
        }
        3 => ((first & 0x3f) as usize, true),
        _ => return None,
    })
}

fn lzf_decompress(input: &[u8], ulen: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(ulen);
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            out.extend_from_slice(input.get(i..i + ctrl + 1)?);
            i += ctrl + 1;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(i)? as usize;
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + *input.get(i)? as usize + 1;
            i += 1;
            let start = out.len().checked_sub(back)?;
            for k in 0..len + 2 {
                let c = out[start + k];
                out.push(c);
            }
        }
    }
    (out.len() == ulen).then_some(out)
}

fn get_string(b: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let (n, special) = get_len(b, pos)?;
    if !special {
        let s = b.get(*pos..*pos + n)?.to_vec();
        *pos += n;
        return Some(s);
    }
    match n {
        3 => {
            let (clen, _) = get_len(b, pos)?;
            let (ulen, _) = get_len(b, pos)?;
            let data = b.get(*pos..*pos + clen)?;
            *pos += clen;
            lzf_decompress(data, ulen)
        }
        0 => {
            let v = *b.get(*pos)? as i8;
            *pos += 1;
            Some(v.to_string().into_bytes())
        }
        1 => {
            let v = i16::from_le_bytes(b.get(*pos..*pos + 2)?.try_into().ok()?);
            *pos += 2;
            Some(v.to_string().into_bytes())
        }
        2 => {
            let v = i32::from_le_bytes(b.get(*pos..*pos + 4)?.try_into().ok()?);
            *pos += 4;
            Some(v.to_string().into_bytes())
        }
        _ => None,
    }
}

/// The library codes in a FUNCTION RESTORE payload, or Redis's error.
pub fn parse_dump(payload: &[u8]) -> Result<Vec<Bytes>, String> {
    const BAD: &str = "ERR DUMP payload version or checksum are wrong";
    if payload.len() < 10 {
        return Err(BAD.into());
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(footer[2..].try_into().map_err(|_| BAD.to_string())?);
    if version > RDB_VERSION + 1 || crc64(0, &payload[..payload.len() - 8]) != crc {
        return Err(BAD.into());
    }
    let mut pos = 0;
    let mut codes = Vec::new();
    while pos < body.len() {
        if body[pos] != OPCODE_FUNCTION2 {
            return Err("ERR given type is not a function".into());
        }
        pos += 1;
        let code = get_string(body, &mut pos).ok_or(BAD)?;
        codes.push(Bytes::from(code));
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_redis_jones() {
        // crc64.c's self test: crc64(0, "123456789") == 0xe9c6d914c4b8d9ca.
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn lzf_round_of_a_repeat() {
        // "aaaaaaaaaa": literal 'a', then a back reference of length 9 at distance 1.
        let c = [0x00, b'a', 0xe0, 0x00, 0x00];
        assert_eq!(lzf_decompress(&c, 10).as_deref(), Some(&b"aaaaaaaaaa"[..]));
    }
}
