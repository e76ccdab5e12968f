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
