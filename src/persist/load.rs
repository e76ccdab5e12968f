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
            // One allocation per command: the arguments are slices of it.
            let mut buf = bytes::BytesMut::new();
            let mut spans = Vec::with_capacity(argc.min(1024) as usize);
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
                let (start, len) = (buf.len(), len as usize);
                buf.resize(start + len + 2, 0);
                let got = read_full(&mut self.r, &mut buf[start..])?;
                self.offset += got as u64;
                if got < len + 2 {
                    return Ok(Item::Truncated);
                }
                if &buf[start + len..] != b"\r\n" {
                    return Ok(Item::Corrupt(at, "bulk string not followed by CRLF"));
                }
                spans.push((start, len));
            }
            let frozen = buf.freeze();
            let argv: Vec<Bytes> = spans.into_iter().map(|(s, l)| frozen.slice(s..s + l)).collect();
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
        let cmd = check(&argv, self.databases)?;
        let ctx = Ctx {
            databases: self.databases,
            enc: self.enc,
        };
        run_on(
            &mut self.store,
            &mut self.db,
            &ctx,
            cmd,
            Args::new(argv),
            &mut self.effects,
            &mut self.out,
        );
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

/// What a replayed command is, once checked.
#[derive(Clone, Copy)]
enum Checked {
    Select(usize),
    FlushAll,
    FlushDb,
    SwapDb(usize, usize),
    Keyed(&'static table::Cmd),
}

/// Settings every replayed command needs.
#[derive(Clone, Copy)]
struct Ctx {
    databases: usize,
    enc: EncodingLimits,
}

/// Checks a command from the file: the errors name what cannot be replayed.
fn check(argv: &[Bytes], databases: usize) -> Result<Checked, String> {
    let name = || String::from_utf8_lossy(&argv[0]).into_owned();
    let is = |n: &[u8]| argv[0].eq_ignore_ascii_case(n);
    if is(b"SELECT") {
        let db = argv.get(1).map(|b| atoi(b)).unwrap_or(-1);
        if db < 0 || db as usize >= databases {
            return Err(format!("SELECT {db} is out of range (databases {databases})"));
        }
        return Ok(Checked::Select(db as usize));
    }
    if is(b"FLUSHALL") {
        return Ok(Checked::FlushAll);
    }
    if is(b"FLUSHDB") {
        return Ok(Checked::FlushDb);
    }
    if is(b"SWAPDB") {
        let (a, b) = (argv.get(1).map(|b| atoi(b)), argv.get(2).map(|b| atoi(b)));
        return match (a, b) {
            (Some(a), Some(b)) if a >= 0 && b >= 0 && (a as usize) < databases && (b as usize) < databases => {
                Ok(Checked::SwapDb(a as usize, b as usize))
            }
            _ => Err("SWAPDB with bad indexes".into()),
        };
    }
    let cmd = table::lookup(&argv[0]).ok_or_else(|| format!("Unknown command '{}'", name()))?;
    let Run::Keyed(..) = cmd.spec.run else {
        return Err(format!("Command '{}' cannot be replayed from an AOF", name()));
    };
    if !cmd.spec.arity_ok(argv.len()) {
        return Err(format!("Wrong number of arguments for '{}'", name()));
    }
    Ok(Checked::Keyed(cmd))
}

/// Runs one checked command over `store` (the whole keyspace, or one shard's part of it).
fn run_on(
    store: &mut Store,
    db: &mut usize,
    ctx: &Ctx,
    cmd: Checked,
    args: Args,
    effects: &mut Effects,
    out: &mut Reply,
) {
    match cmd {
        Checked::Select(d) => *db = d,
        Checked::FlushAll => {
            for d in &mut store.dbs {
                d.clear();
            }
        }
        Checked::FlushDb => {
            store.dbs[*db].clear();
        }
        // Stats and pending expirations belong to the slot, not the data.
        Checked::SwapDb(a, b) => {
            store.dbs.swap(a, b);
            // The numbers stay with the positions (keyspace events name them).
            store.dbs[a].index = a;
            store.dbs[b].index = b;
        }
        Checked::Keyed(cmd) => {
            let Run::Keyed(f, _) = cmd.spec.run else { return };
            out.take();
            {
                let mut ex = Exec::local(store, out, effects, crate::server::unix_ms());
                ex.db = *db;
                ex.databases = ctx.databases;
                ex.enc = ctx.enc;
                // A reply error (WRONGTYPE...) is what the live server answered too: not fatal.
                let _ = f(&mut ex, &args);
            }
            effects.take_expired(store);
        }
    }
}

/// Work for one loading worker, which owns one shard's store while the file loads.
enum Job {
    /// Commands in file order, each with the database it runs against.
    Batch(Vec<(usize, Checked, Args)>),
    /// Everything sent before is applied: say so (a command across shards comes next).
    Sync(std::sync::mpsc::SyncSender<()>),
}

/// Commands per batch sent to a worker.
const BATCH: usize = 512;

/// The parallel loader's reader side: reads the files in order (the format is sequential),
/// routes each command to the worker of the shard that owns its keys, and runs the few
/// commands whose keys span shards itself, after their shards' workers caught up. Each
/// worker replays into its shard's own store, so nothing is split at the end. MULTI ...
/// EXEC groups are buffered until EXEC: a group the file cuts short is never applied, and
/// since no client reads while loading, applying a complete group command by command is
/// as good as atomically.
pub struct Router<'a> {
    ctx: Ctx,
    db: usize,
    multi: Option<Vec<Vec<Bytes>>>,
    pending: Vec<Vec<(usize, Checked, Args)>>,
    txs: Vec<std::sync::mpsc::SyncSender<Job>>,
    stores: &'a [std::sync::Mutex<Store>],
    effects: Effects,
    out: Reply,
    /// Bytes of the files before the current one, and the progress callback.
    pub base_offset: u64,
    on_progress: &'a (dyn Fn(u64) + Sync),
}

impl Router<'_> {
    fn route(&mut self, argv: Vec<Bytes>) -> Result<(), String> {
        let checked = check(&argv, self.ctx.databases)?;
        let n = self.stores.len();
        match checked {
            Checked::Select(d) => {
                self.db = d;
                return Ok(());
            }
            Checked::FlushAll | Checked::FlushDb | Checked::SwapDb(..) => {
                // Every shard does its part, in file order.
                let args = Args::new(argv);
                for s in 0..n {
                    self.push(s, checked, args.clone());
                }
                return Ok(());
            }
            Checked::Keyed(cmd) => {
                let args = Args::new(argv);
                let mut shards: Vec<usize> = Vec::new();
                let _ = crate::command::keys::for_each_key(cmd.spec.key_specs, &args, |p| {
                    let s = crate::shard::shard_of(&args[p], n);
                    if !shards.contains(&s) {
                        shards.push(s);
                    }
                });
                if shards.len() <= 1 {
                    self.push(shards.first().copied().unwrap_or(0), checked, args);
                } else if independent_keys(cmd) {
                    // No key's result depends on another's (MSET, DEL, ...): each shard
                    // runs the command over its own keys, no waiting.
                    for (s, sub) in split_by_shard(cmd, &args, n) {
                        self.push(s, checked, sub);
                    }
                } else {
                    self.across(cmd, checked, args, &shards)?;
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, s: usize, c: Checked, args: Args) {
        self.pending[s].push((self.db, c, args));
        if self.pending[s].len() >= BATCH {
            self.flush(s);
        }
    }

    fn flush(&mut self, s: usize) {
        if !self.pending[s].is_empty() {
            let batch = std::mem::take(&mut self.pending[s]);
            // A worker that died has reported its error; finish() collects it.
            let _ = self.txs[s].send(Job::Batch(batch));
        }
    }

    /// A command whose keys span shards: once their workers are idle, its keys (in every
    /// database) move into a scratch store, it runs there, and every key moves back to
    /// its owner.
    fn across(
        &mut self,
        cmd: &'static table::Cmd,
        checked: Checked,
        args: Args,
        shards: &[usize],
    ) -> Result<(), String> {
        let n = self.stores.len();
        let mut acks = Vec::new();
        for &s in shards {
            self.flush(s);
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let _ = self.txs[s].send(Job::Sync(tx));
            acks.push(rx);
        }
        for rx in acks {
            rx.recv().map_err(|_| "a loading worker stopped".to_string())?;
        }
        let mut keys: Vec<Bytes> = Vec::new();
        let _ = crate::command::keys::for_each_key(cmd.spec.key_specs, &args, |p| keys.push(args.bytes(p).clone()));
        let mut guards: Vec<_> = (0..n)
            .map(|s| {
                shards
                    .contains(&s)
                    .then(|| self.stores[s].lock().unwrap_or_else(|e| e.into_inner()))
            })
            .collect();
        let mut scratch = Store::new(self.ctx.databases);
        for k in &keys {
            let owner = guards[crate::shard::shard_of(k, n)].as_mut().ok_or("unrouted key")?;
            for (i, db) in owner.dbs.iter_mut().enumerate() {
                if let Some((e, at)) = db.remove(k) {
                    scratch.dbs[i].insert_entry(k, e, at);
                }
            }
        }
        let mut db = self.db;
        run_on(
            &mut scratch,
            &mut db,
            &self.ctx,
            checked,
            args,
            &mut self.effects,
            &mut self.out,
        );
        for (i, sdb) in scratch.dbs.iter_mut().enumerate() {
            let mut moved = Vec::with_capacity(sdb.len());
            sdb.for_each_key(0, |k, _| moved.push(k.to_vec()));
            for k in moved {
                if let Some((e, at)) = sdb.remove(&k) {
                    let owner = guards[crate::shard::shard_of(&k, n)]
                        .as_mut()
                        .ok_or("a command created a key it does not name")?;
                    owner.dbs[i].insert_entry(&k, e, at);
                }
            }
        }
        Ok(())
    }
}

/// Commands whose keys are independent of each other, and so may be split by shard while
/// loading (nobody reads before the load ends, so atomicity does not matter).
fn independent_keys(cmd: &table::Cmd) -> bool {
    matches!(cmd.spec.run, Run::Keyed(_, crate::command::Multi::SplitSum)) || cmd.spec.name == "mset"
}

/// The per-shard sub-commands of a command with one range of keys (step 1 or 2).
fn split_by_shard(cmd: &table::Cmd, args: &Args, n: usize) -> Vec<(usize, Args)> {
    let step = match cmd.spec.key_specs.first().map(|k| k.find) {
        Some(crate::command::Find::Range { step, .. }) => step.max(1),
        _ => 1,
    };
    let mut positions = Vec::new();
    let _ = crate::command::keys::for_each_key(cmd.spec.key_specs, args, |p| positions.push(p));
    let mut per: Vec<Vec<Bytes>> = vec![Vec::new(); n];
    for &p in &positions {
        let sub = &mut per[crate::shard::shard_of(&args[p], n)];
        if sub.is_empty() {
            sub.extend(args.as_slice()[..positions[0]].iter().cloned());
        }
        sub.extend(args.as_slice()[p..(p + step).min(args.len())].iter().cloned());
    }
    per.into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(s, v)| (s, Args::new(v)))
        .collect()
}

impl Sink for Router<'_> {
    fn apply(&mut self, argv: Vec<Bytes>) -> Result<(), String> {
        if argv[0].eq_ignore_ascii_case(b"MULTI") {
            self.multi = Some(Vec::new());
            return Ok(());
        }
        if argv[0].eq_ignore_ascii_case(b"EXEC") {
            for c in self.multi.take().unwrap_or_default() {
                self.route(c)?;
            }
            return Ok(());
        }
        if let Some(q) = &mut self.multi {
            q.push(argv);
            return Ok(());
        }
        self.route(argv)
    }

    fn discard_multi(&mut self) {
        self.multi = None;
    }

    fn progress(&mut self, offset: u64) {
        (self.on_progress)(self.base_offset + offset);
    }

    fn enc(&self) -> EncodingLimits {
        self.ctx.enc
    }

    /// RDB base keys go straight into their shard's store (the base precedes every routed
    /// command).
    fn put(&mut self, db: usize, key: &[u8], entry: crate::store::Entry, expire_ms: Option<u64>) -> Result<(), String> {
        let shard = crate::shard::slot::shard_of(key, self.stores.len());
        let mut store = self.stores[shard]
            .lock()
            .map_err(|_| "a load worker panicked".to_string())?;
        put_into(&mut store, db, key, entry, expire_ms)
    }
}

/// A loading worker: replays its shard's commands into its shard's store.
fn worker(rx: std::sync::mpsc::Receiver<Job>, store: &std::sync::Mutex<Store>, ctx: Ctx) {
    let mut effects = Effects::new(false);
    let mut out = Reply::new(Proto::Resp2);
    for job in rx {
        match job {
            Job::Batch(batch) => {
                let mut st = store.lock().unwrap_or_else(|e| e.into_inner());
                for (mut db, c, args) in batch {
                    run_on(&mut st, &mut db, &ctx, c, args, &mut effects, &mut out);
                }
            }
            Job::Sync(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

/// Where [`scan_file`] sends the commands it reads.
pub trait Sink {
    /// One complete command (MULTI and EXEC included, in file order).
    fn apply(&mut self, argv: Vec<Bytes>) -> Result<(), String>;
    /// The file ended inside a MULTI: forget its queued commands.
    fn discard_multi(&mut self);
    /// `offset` bytes of the current file are read (called now and then, for INFO).
    fn progress(&mut self, _offset: u64) {}
    /// The encoding limits values are built with (an RDB base decodes into them).
    fn enc(&self) -> EncodingLimits;
    /// One key of an RDB base, stored as is.
    fn put(&mut self, db: usize, key: &[u8], entry: crate::store::Entry, expire_ms: Option<u64>) -> Result<(), String>;
}

fn put_into(
    store: &mut Store,
    db: usize,
    key: &[u8],
    mut entry: crate::store::Entry,
    expire_ms: Option<u64>,
) -> Result<(), String> {
    let Some(d) = store.dbs.get_mut(db) else {
        return Err(format!("the file uses database {db} beyond `databases`"));
    };
    entry.lru = d.lru_clock;
    d.insert_entry(key, entry, expire_ms);
    Ok(())
}

impl Sink for Replayer {
    fn apply(&mut self, argv: Vec<Bytes>) -> Result<(), String> {
        Replayer::apply(self, argv)
    }
    fn discard_multi(&mut self) {
        Replayer::discard_multi(self)
    }
    fn enc(&self) -> EncodingLimits {
        self.enc
    }
    fn put(&mut self, db: usize, key: &[u8], entry: crate::store::Entry, expire_ms: Option<u64>) -> Result<(), String> {
        put_into(&mut self.store, db, key, entry, expire_ms)
    }
}

/// Scans (and with `replay`, applies) one file. RDB files are refused: basalt has no RDB
/// reader yet.
pub fn scan_file<S: Sink + ?Sized>(path: &Path, mut replay: Option<&mut S>) -> Result<Scan, LoadError> {
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
                    if commands % 4096 == 0 {
                        rp.progress(end);
                    }
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
/// Reading is sequential; replaying runs on one worker thread per shard (see [`Router`]).
/// `on_progress` gets the bytes read so far (of all files) now and then.
pub fn load(
    paths: &Paths,
    m: &Manifest,
    nshards: usize,
    databases: usize,
    enc: EncodingLimits,
    load_truncated: bool,
    on_progress: &(dyn Fn(u64) + Sync),
) -> Result<Loaded, LoadError> {
    let ctx = Ctx { databases, enc };
    let stores: Vec<std::sync::Mutex<Store>> = (0..nshards)
        .map(|_| std::sync::Mutex::new(Store::new(databases)))
        .collect();
    let total = std::thread::scope(|scope| {
        let mut txs = Vec::with_capacity(nshards);
        for store in &stores {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(8);
            txs.push(tx);
            std::thread::Builder::new()
                .name("aof-load".into())
                .spawn_scoped(scope, move || worker(rx, store, ctx))
                .map_err(|e| LoadError(format!("cannot start a loading thread: {e}")))?;
        }
        let mut router = Router {
            ctx,
            db: 0,
            multi: None,
            pending: (0..nshards).map(|_| Vec::new()).collect(),
            txs,
            stores: &stores,
            effects: Effects::new(false),
            out: Reply::new(Proto::Resp2),
            base_offset: 0,
            on_progress,
        };
        let r = load_files(paths, m, load_truncated, &mut router);
        for s in 0..nshards {
            router.flush(s);
        }
        // Dropping the senders ends the workers; the scope joins them.
        drop(router);
        r
    })?;
    let stores: Vec<Store> = stores
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    let keys = stores.iter().map(|s| s.keys()).sum();
    Ok(Loaded {
        stores,
        keys,
        commands: total,
    })
}

/// Reads every file of `m` in order into `router`; the number of commands. (An RDB base,
/// once there is a reader for it, plugs in here: decode it straight into `router.stores`,
/// each key into the store of `shard_of(key)`, before the incremental files are routed.)
fn load_files(paths: &Paths, m: &Manifest, load_truncated: bool, router: &mut Router<'_>) -> Result<u64, LoadError> {
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
        match scan_file(&path, Some(&mut *router))? {
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
        router.base_offset += std::fs::metadata(&path).map(|md| md.len()).unwrap_or(0);
        router.progress(0);
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
    Ok(total)
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
        let result = match scan_file::<Replayer>(f, None) {
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

#[cfg(test)]
mod parallel_tests {
    use super::*;

    fn cmd(out: &mut Vec<u8>, args: &[&str]) {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
    }

    fn contents(stores: &[Store]) -> Vec<(usize, Vec<u8>, Option<u64>, String)> {
        let mut out = Vec::new();
        for st in stores {
            for (i, db) in st.dbs.iter().enumerate() {
                let mut keys = Vec::new();
                db.for_each_key(0, |k, _| keys.push(k.to_vec()));
                for k in keys {
                    let mut v = bytes::BytesMut::new();
                    let e = db.peek(&k).unwrap();
                    crate::persist::rewrite::rewrite_value(&k, &e.value, &mut v).unwrap();
                    out.push((i, k.clone(), db.expire_at(&k), String::from_utf8_lossy(&v).into_owned()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn parallel_load_equals_sequential_replay() {
        let dir = std::env::temp_dir().join(format!("basalt-pload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let paths = Paths::new(&dir, "appendonlydir", "appendonly.aof");
        let m = paths.create_fresh().unwrap();
        let mut base = Vec::new();
        for i in 0..2000 {
            cmd(&mut base, &["SET", &format!("k{i}"), &format!("v{i}")]);
        }
        cmd(&mut base, &["RPUSH", "list", "a", "b", "c"]);
        let mut incr = Vec::new();
        cmd(&mut incr, &["SELECT", "0"]);
        cmd(&mut incr, &["MSET", "k1", "x", "k2", "y", "k3", "z", "new", "n"]);
        cmd(&mut incr, &["DEL", "k4", "k5", "k6", "k7"]);
        cmd(&mut incr, &["RENAME", "k8", "renamed-k8"]);
        cmd(&mut incr, &["LMOVE", "list", "other-list", "LEFT", "RIGHT"]);
        cmd(&mut incr, &["SET", "ttl", "t", "PXAT", "99999999999999"]);
        cmd(&mut incr, &["MULTI"]);
        cmd(&mut incr, &["INCR", "k10"]);
        cmd(&mut incr, &["APPEND", "k11", "+"]);
        cmd(&mut incr, &["EXEC"]);
        cmd(&mut incr, &["SELECT", "3"]);
        cmd(&mut incr, &["SET", "db3", "1"]);
        cmd(&mut incr, &["SWAPDB", "3", "4"]);
        cmd(&mut incr, &["SELECT", "0"]);
        cmd(&mut incr, &["COPY", "k12", "copied", "DB", "5"]);
        for i in 100..200 {
            cmd(&mut incr, &["DEL", &format!("k{i}")]);
        }
        cmd(&mut incr, &["SELECT", "6"]);
        cmd(&mut incr, &["SET", "gone", "1"]);
        cmd(&mut incr, &["FLUSHDB"]);
        // A MULTI the file cuts short is never applied.
        cmd(&mut incr, &["MULTI"]);
        cmd(&mut incr, &["SET", "half", "1"]);
        std::fs::write(paths.file(&m.base.as_ref().unwrap().name), &base).unwrap();
        std::fs::write(paths.file(&m.incr[0].name), &incr).unwrap();

        let mut rp = Replayer::new(16, EncodingLimits::default());
        for f in m.load_order() {
            scan_file(&paths.file(&f.name), Some(&mut rp)).unwrap();
        }
        let expected = contents(&rp.split(4));
        let seen = std::sync::atomic::AtomicU64::new(0);
        let progress = |b: u64| seen.store(b, std::sync::atomic::Ordering::Relaxed);
        let loaded = load(&paths, &m, 4, 16, EncodingLimits::default(), true, &progress).unwrap();
        for (s, st) in loaded.stores.iter().enumerate() {
            for db in &st.dbs {
                let mut keys = Vec::new();
                db.for_each_key(0, |k, _| keys.push(k.to_vec()));
                for k in keys {
                    assert_eq!(crate::shard::shard_of(&k, 4), s, "key on its owner's store");
                }
            }
        }
        let got = contents(&loaded.stores);
        assert_eq!(got, expected);
        assert!(got.iter().any(|(_, k, _, _)| k == b"renamed-k8"));
        assert!(!got.iter().any(|(_, k, _, _)| k == b"half"));
        let (_, total) = paths.sizes(&m);
        assert!(
            total < (base.len() + incr.len()) as u64,
            "the cut-short MULTI was truncated"
        );
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), total);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
