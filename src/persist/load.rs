//! Loading the AOF at start-up, and `basalt check-aof`.
//!
//! Files are read command by command with Redis's rules (loadSingleAppendOnlyFile): `#`
//! lines are annotations; a file that ends inside a command (or inside MULTI ... EXEC) is
//! *truncated* — with `aof-load-truncated yes` the tail is cut at the last complete command
//! and loading goes on, else start-up is refused; anything else malformed is *corruption*
//! and refuses start-up naming the file and offset.
//!
//! Commands run through the normal command table over one store holding every key; at the
//! end each key moves to the store of the shard that owns it. So every type loads as soon
//! as its commands exist, and multi-key commands (MSET across shards, MULTI ... EXEC) need
//! no coordination while loading. The load runs before any shard accepts a connection:
//! clients that connect meanwhile wait in the listen backlog (see docs/architecture.md).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use bytes::Bytes;

use super::aof::{Manifest, Paths};
use super::Effects;
use crate::command::table;
use crate::command::{Args, Exec, Run};
use crate::resp::{Proto, Reply};
use crate::store::{EncodingLimits, Store};

/// One step of reading an AOF file.
#[derive(Debug, PartialEq)]
pub enum Item {
    /// A command, and the offset just after it.
    Command(Vec<Bytes>, u64),
    /// Clean end of file.
    End,
    /// The file ends inside a command.
    Truncated,
    /// Not RESP where a command should be, at this offset.
    Corrupt(u64, &'static str),
}

/// Reads RESP commands from an AOF file, tracking offsets.
pub struct Reader<R> {
    r: R,
    pub offset: u64,
    line: Vec<u8>,
}

impl<R: BufRead> Reader<R> {
    pub fn new(r: R) -> Reader<R> {
        Reader {
            r,
            offset: 0,
            line: Vec::new(),
        }
    }

    /// Reads one line (with its `\n`, if the file has one). Ok(false) at end of file.
    fn read_line(&mut self) -> io::Result<bool> {
        self.line.clear();
        let n = self.r.read_until(b'\n', &mut self.line)?;
        self.offset += n as u64;
        Ok(n > 0)
    }

    pub fn next_item(&mut self) -> io::Result<Item> {
        loop {
            let start = self.offset;
            if !self.read_line()? {
                return Ok(Item::End);
            }
            if self.line[0] == b'#' {
                if self.line.last() != Some(&b'\n') {
                    return Ok(Item::Truncated);
                }
                continue;
            }
            if self.line[0] != b'*' {
                return Ok(Item::Corrupt(start, "expected '*'"));
            }
            if self.line.last() != Some(&b'\n') {
                return Ok(Item::Truncated);
            }
            let argc = atoi(&self.line[1..]);
            if argc < 1 {
                return Ok(Item::Corrupt(start, "bad argument count"));
            }
            let mut argv = Vec::with_capacity(argc.min(1024) as usize);
            for _ in 0..argc {
                let at = self.offset;
                if !self.read_line()? {
                    return Ok(Item::Truncated);
                }
                if self.line[0] != b'$' {
                    return Ok(Item::Corrupt(at, "expected '$'"));
                }
                if self.line.last() != Some(&b'\n') {
                    return Ok(Item::Truncated);
                }
                let len = atoi(&self.line[1..]);
                if len < 0 {
                    return Ok(Item::Corrupt(at, "bad bulk length"));
                }
                let mut arg = vec![0u8; len as usize + 2];
                let got = read_full(&mut self.r, &mut arg)?;
                self.offset += got as u64;
                if got < arg.len() {
                    return Ok(Item::Truncated);
                }
                if &arg[len as usize..] != b"\r\n" {
                    return Ok(Item::Corrupt(at, "bulk string not followed by CRLF"));
                }
                arg.truncate(len as usize);
                argv.push(Bytes::from(arg));
            }
            return Ok(Item::Command(argv, self.offset));
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// atoi/strtol: leading digits after an optional sign; trailing `\r\n` ignored.
fn atoi(b: &[u8]) -> i64 {
    let (neg, d) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let mut v: i64 = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.saturating_mul(10).saturating_add((c - b'0') as i64);
    }
    if neg {
        -v
    } else {
        v
    }
}

/// The result of scanning one file.
#[derive(Debug, PartialEq)]
pub enum Scan {
    /// Every command complete.
    Ok {
        commands: u64,
    },
    /// Ends inside a command or a MULTI; everything up to `valid` is good.
    Truncated {
        commands: u64,
        valid: u64,
    },
    Corrupt {
        offset: u64,
        why: &'static str,
    },
}

/// Why loading failed: the message names the file and offset.
#[derive(Debug)]
pub struct LoadError(pub String);

/// The data loaded from the AOF, one store per shard, and what the log should say.
pub struct Loaded {
    pub stores: Vec<Store>,
    pub keys: usize,
    pub commands: u64,
}

/// Replays commands into one store holding every key.
pub struct Replayer {
    pub store: Store,
    db: usize,
    databases: usize,
    enc: EncodingLimits,
    multi: Option<Vec<Vec<Bytes>>>,
    effects: Effects,
    out: Reply,
}

impl Replayer {
    pub fn new(databases: usize, enc: EncodingLimits) -> Replayer {
        Replayer {
            store: Store::new(databases),
            db: 0,
            databases,
            enc,
            multi: None,
            effects: Effects::new(false),
            out: Reply::new(Proto::Resp2),
        }
    }

    /// The encoding limits keys are loaded with (an RDB preamble's too).
    pub fn enc(&self) -> EncodingLimits {
        self.enc
    }

    pub fn in_multi(&self) -> bool {
        self.multi.is_some()
    }

    /// Drops a MULTI that a truncated file never closed.
    pub fn discard_multi(&mut self) {
        self.multi = None;
    }

    /// Runs one command from the file.
    pub fn apply(&mut self, argv: Vec<Bytes>) -> Result<(), String> {
        let name = argv[0].to_ascii_uppercase();
        match &name[..] {
            b"MULTI" => {
                self.multi = Some(Vec::new());
                return Ok(());
            }
            b"EXEC" => {
                let queued = self.multi.take().unwrap_or_default();
                for c in queued {
                    self.run(c)?;
                }
                return Ok(());
            }
            _ => {}
        }
        if let Some(q) = &mut self.multi {
            q.push(argv);
            return Ok(());
        }
        self.run(argv)
    }

    fn run(&mut self, argv: Vec<Bytes>) -> Result<(), String> {
        let name = String::from_utf8_lossy(&argv[0]).into_owned();
        let upper = name.to_ascii_uppercase();
        let now = crate::server::unix_ms();
        match upper.as_str() {
            "SELECT" => {
                let db = argv.get(1).map(|b| atoi(b)).unwrap_or(-1);
                if db < 0 || db as usize >= self.databases {
                    return Err(format!("SELECT {db} is out of range (databases {})", self.databases));
                }
                self.db = db as usize;
                return Ok(());
            }
            "FLUSHALL" => {
                for db in &mut self.store.dbs {
                    db.clear();
                }
                return Ok(());
            }
            "FLUSHDB" => {
                self.store.dbs[self.db].clear();
                return Ok(());
            }
            "SWAPDB" => {
                let (a, b) = (argv.get(1).map(|b| atoi(b)), argv.get(2).map(|b| atoi(b)));
                match (a, b) {
                    (Some(a), Some(b))
                        if a >= 0 && b >= 0 && (a as usize) < self.databases && (b as usize) < self.databases =>
                    {
                        self.store.dbs.swap(a as usize, b as usize);
                        // Stats and pending expirations belong to the slot, not the data.
                        return Ok(());
                    }
                    _ => return Err("SWAPDB with bad indexes".into()),
                }
            }
            _ => {}
        }
        let cmd = table::lookup(&argv[0]).ok_or_else(|| format!("Unknown command '{name}'"))?;
        let Run::Keyed(f, _) = cmd.spec.run else {
            return Err(format!("Command '{name}' cannot be replayed from an AOF"));
        };
        if !cmd.spec.arity_ok(argv.len()) {
            return Err(format!("Wrong number of arguments for '{name}'"));
        }
        let args = Args::new(argv);
        self.out.take();
        {
            let mut ex = Exec::local(&mut self.store, &mut self.out, &mut self.effects, now);
            ex.db = self.db;
            ex.databases = self.databases;
            ex.enc = self.enc;
            // A reply error (WRONGTYPE...) is what the live server answered too: not fatal.
            let _ = f(&mut ex, &args);
        }
        self.effects.take_expired(&mut self.store);
        Ok(())
    }

    /// Moves every key to the store of the shard that owns it.
    pub fn split(mut self, nshards: usize) -> Vec<Store> {
        let mut stores: Vec<Store> = (0..nshards).map(|_| Store::new(self.databases)).collect();
        for (i, db) in self.store.dbs.iter_mut().enumerate() {
            let mut keys = Vec::with_capacity(db.len());
            db.for_each_key(0, |k, _| keys.push(k.to_vec()));
            for k in keys {
                if let Some((entry, at)) = db.remove(&k) {
                    stores[crate::shard::shard_of(&k, nshards)].dbs[i].insert_entry(&k, entry, at);
                }
            }
        }
        stores
    }
}

/// Scans (and with `replay`, applies) one file. RDB files are refused: basalt has no RDB
/// reader yet.
pub fn scan_file(path: &Path, mut replay: Option<&mut Replayer>) -> Result<Scan, LoadError> {
    let name = path.display().to_string();
    let file =
        File::open(path).map_err(|e| LoadError(format!("Fatal error: can't open the append only file {name}: {e}")))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut rdb_end = 0u64;
    if r.fill_buf().map(|b| b.starts_with(b"REDIS")).unwrap_or(false) {
        // An RDB preamble (aof-use-rdb-preamble): the RDB, then possibly RESP commands.
        let buf = std::fs::read(path).map_err(|e| LoadError(format!("Fatal error: can't read {name}: {e}")))?;
        rdb_end = super::rdb::save::load_preamble(&buf, replay.as_deref_mut())
            .map_err(|e| LoadError(format!("Bad file format reading the RDB preamble of {name}: {e}")))?
            as u64;
        std::io::Seek::seek(&mut r, std::io::SeekFrom::Start(rdb_end))
            .map_err(|e| LoadError(format!("Fatal error: can't read {name}: {e}")))?;
    }
    let mut reader = Reader::new(r);
    reader.offset = rdb_end;
    let (mut commands, mut valid, mut valid_before_multi) = (0u64, 0u64, 0u64);
    let mut in_multi = false;
    loop {
        let item = reader
            .next_item()
            .map_err(|e| LoadError(format!("Unrecoverable error reading the append only file {name}: {e}")))?;
        match item {
            Item::Command(argv, end) => {
                let is_multi = argv[0].eq_ignore_ascii_case(b"MULTI");
                let is_exec = argv[0].eq_ignore_ascii_case(b"EXEC");
                if is_multi {
                    valid_before_multi = valid;
                    in_multi = true;
                } else if is_exec {
                    in_multi = false;
                }
                if let Some(rp) = replay.as_deref_mut() {
                    rp.apply(argv).map_err(|e| {
                        LoadError(format!(
                            "{e} reading the append only file {name} (command ending at offset {end})"
                        ))
                    })?;
                }
                commands += 1;
                valid = end;
            }
            Item::End if in_multi => {
                tracing::warn!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
                if let Some(rp) = replay.as_deref_mut() {
                    rp.discard_multi();
                }
                return Ok(Scan::Truncated {
                    commands,
                    valid: valid_before_multi,
                });
            }
            Item::End => return Ok(Scan::Ok { commands }),
            Item::Truncated => {
                if let Some(rp) = replay.as_deref_mut() {
                    rp.discard_multi();
                }
                let valid = if in_multi { valid_before_multi } else { valid };
                return Ok(Scan::Truncated { commands, valid });
            }
            Item::Corrupt(offset, why) => return Ok(Scan::Corrupt { offset, why }),
        }
    }
}

/// Loads the AOF named by `m` into `nshards` stores, with Redis's rules for truncation.
pub fn load(
    paths: &Paths,
    m: &Manifest,
    nshards: usize,
    databases: usize,
    enc: EncodingLimits,
    load_truncated: bool,
) -> Result<Loaded, LoadError> {
    let mut rp = Replayer::new(databases, enc);
    let files = m.load_order();
    let mut total = 0u64;
    for (i, f) in files.iter().enumerate() {
        let last = i + 1 == files.len();
        let path = paths.file(&f.name);
        if !path.exists() {
            return Err(LoadError(format!(
                "Fatal error: the AOF file {} named in the manifest does not exist",
                path.display()
            )));
        }
        let start = std::time::Instant::now();
        match scan_file(&path, Some(&mut rp))? {
            Scan::Ok { commands } => total += commands,
            Scan::Truncated { commands, valid } => {
                total += commands;
                tracing::warn!("!!! Warning: short read while loading the AOF file {}!!!", f.name);
                if !last {
                    return Err(LoadError(format!(
                        "Fatal error: the truncated file {} is not the last file (last valid command ends at offset {valid})",
                        f.name
                    )));
                }
                if !load_truncated {
                    return Err(LoadError(format!(
                        "Unexpected end of file reading the append only file {} (last valid command ends at offset {valid}). You can: 1) Make a backup of your AOF file, then use basalt check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server.",
                        f.name
                    )));
                }
                tracing::warn!("!!! Truncating the AOF {} at offset {valid} !!!", f.name);
                truncate(&path, valid)
                    .map_err(|e| LoadError(format!("Error truncating the AOF file {}: {e}", f.name)))?;
                tracing::warn!("AOF {} loaded anyway because aof-load-truncated is enabled", f.name);
            }
            Scan::Corrupt { offset, why } => {
                return Err(LoadError(format!(
                    "Bad file format reading the append only file {} at offset {offset} ({why}): make a backup of your AOF file, then use basalt check-aof --fix <filename.manifest>",
                    path.display()
                )));
            }
        }
        let kind = if f.kind == super::aof::Kind::Base {
            "base"
        } else {
            "incr"
        };
        tracing::info!(
            "DB loaded from {kind} file {}: {:.3} seconds",
            f.name,
            start.elapsed().as_secs_f64()
        );
    }
    let keys = rp.store.keys();
    Ok(Loaded {
        stores: rp.split(nshards),
        keys,
        commands: total,
    })
}

fn truncate(path: &Path, len: u64) -> io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_all()
}

/// `basalt check-aof [--fix] <file.manifest | file.aof>`: reports whether every file is
/// complete and well-formed; `--fix` cuts the first bad file at its last good command (and,
/// for a manifest, stops there: later files cannot follow a cut). Returns the exit code.
pub fn check_aof(args: &[String]) -> i32 {
    let (fix, path) = match args {
        [p] => (false, p),
        [f, p] if f == "--fix" => (true, p),
        _ => {
            eprintln!("Usage: basalt check-aof [--fix] <file.manifest|file.aof>");
            return 1;
        }
    };
    let path = Path::new(path);
    let files: Vec<std::path::PathBuf> = if path.extension().is_some_and(|e| e == "manifest") {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("Cannot open {}: {e}", path.display());
                return 1;
            }
        };
        let m = match Manifest::parse(&text) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("Invalid AOF manifest {}: {e}", path.display());
                return 1;
            }
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        println!("Start checking Multi Part AOF");
        m.load_order().iter().map(|f| dir.join(&f.name)).collect()
    } else {
        vec![path.to_path_buf()]
    };
    let n = files.len();
    for (i, f) in files.iter().enumerate() {
        let last = i + 1 == n;
        let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        let result = match scan_file(f, None) {
            Ok(r) => r,
            Err(e) => {
                println!("{}", e.0);
                return 1;
            }
        };
        let (ok_up_to, bad) = match result {
            Scan::Ok { .. } => (size, None),
            Scan::Truncated { valid, .. } => (valid, Some("truncated: the file ends inside a command")),
            Scan::Corrupt { offset, why } => (offset, Some(why)),
        };
        println!(
            "AOF analyzed: filename={}, size={size}, ok_up_to={ok_up_to}, diff={}",
            f.display(),
            size - ok_up_to.min(size)
        );
        match bad {
            None => println!("AOF {} is valid", f.display()),
            Some(why) if fix => {
                if !last {
                    println!(
                        "AOF {} is not the last file: cutting it drops every later file's commands; fix refused ({why})",
                        f.display()
                    );
                    return 1;
                }
                if let Err(e) = truncate(f, ok_up_to) {
                    println!("Failed to truncate AOF {}: {e}", f.display());
                    return 1;
                }
                println!(
                    "Successfully truncated AOF {} at offset {ok_up_to} ({why})",
                    f.display()
                );
            }
            Some(why) => {
                println!(
                    "AOF {} is not valid at offset {ok_up_to}: {why}. Use the --fix option to try fixing it.",
                    f.display()
                );
                return 1;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(b: &[u8]) -> Vec<Item> {
        let mut r = Reader::new(b);
        let mut v = Vec::new();
        loop {
            let it = r.next_item().unwrap();
            let done = !matches!(it, Item::Command(..));
            v.push(it);
            if done {
                return v;
            }
        }
    }

    #[test]
    fn reads_commands_with_offsets() {
        let v = items(b"*1\r\n$4\r\nPING\r\n#ts\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        assert_eq!(v[0], Item::Command(vec![Bytes::from_static(b"PING")], 14));
        assert_eq!(
            v[1],
            Item::Command(vec![Bytes::from_static(b"GET"), Bytes::from_static(b"k")], 39)
        );
        assert_eq!(v[2], Item::End);
    }

    #[test]
    fn truncation_and_corruption() {
        for cut in 1..14 {
            let v = items(&b"*1\r\n$4\r\nPING\r\n"[..cut]);
            assert_eq!(v.last(), Some(&Item::Truncated), "cut at {cut}");
        }
        assert_eq!(items(b"+OK\r\n"), vec![Item::Corrupt(0, "expected '*'")]);
        assert_eq!(
            items(b"*1\r\n$4\r\nPING\r\n*1\r\nxx\r\n").last(),
            Some(&Item::Corrupt(18, "expected '$'"))
        );
        assert_eq!(
            items(b"*1\r\n$2\r\nPING\r\n").last(),
            Some(&Item::Corrupt(4, "bulk string not followed by CRLF"))
        );
    }

    #[test]
    fn replay_applies_multi_and_select_then_splits_by_shard() {
        let mut rp = Replayer::new(16, EncodingLimits::default());
        let a = |v: &[&str]| {
            v.iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect::<Vec<_>>()
        };
        rp.apply(a(&["SELECT", "2"])).unwrap();
        rp.apply(a(&["MULTI"])).unwrap();
        rp.apply(a(&["SET", "a", "1"])).unwrap();
        rp.apply(a(&["SET", "b", "2"])).unwrap();
        assert_eq!(rp.store.keys(), 0);
        rp.apply(a(&["EXEC"])).unwrap();
        rp.apply(a(&["SET", "c", "3", "PXAT", "99999999999999"])).unwrap();
        assert_eq!(rp.store.dbs[2].len(), 3);
        assert!(rp.apply(a(&["NOSUCHCMD"])).unwrap_err().contains("Unknown command"));
        let stores = rp.split(4);
        let total: usize = stores.iter().map(|s| s.dbs[2].len()).sum();
        assert_eq!(total, 3);
        let c = crate::shard::shard_of(b"c", 4);
        assert_eq!(stores[c].dbs[2].expire_at(b"c"), Some(99999999999999));
    }
}
