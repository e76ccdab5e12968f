//! The persistence core. Shards describe the *effects* of their writes as RESP commands in
//! deterministic form (relative expiry as absolute PXAT, and so on), batch them per shard,
//! and send them to the persistence core (a thread, [`Core`] and [`run`]), which owns all
//! disk I/O and appends them to a Redis 7 multi-part AOF ([`aof`]); [`load`] reads it back
//! at start-up.
//!
//! Records: a shard's effects stay pending in its buffer until they are *cut*: they take a
//! ticket from one process-wide counter and travel to the core as one record. A shard
//! cuts once per executor turn (Redis writes its AOF buffer once per event-loop iteration,
//! in beforeSleep), so one record, one write(2) and one wake-up carry every command and
//! every connection of the turn; and earlier wherever something must be ordered after
//! them (see [`Durable`]).
//!
//! Order: the core writes records in ticket order. A multi-shard command's MULTI ... EXEC
//! record is cut while its shards are reserved, and reserving a shard cuts its pending
//! effects first, so that record is ordered after every earlier write of those shards and
//! before every later one, whatever order the records arrive in.
//!
//! Acknowledgement: a connection whose batch ran a write waits for the cut of its pending
//! effects (if they are still pending), then until the core has published `durable`
//! past that ticket: written to the kernel (`everysec`, `no`) or fsynced (`always`, group
//! commit: one fsync covers every record written since the previous one). The core
//! signals a shard only when one of its connections waits.

pub mod aof;
pub mod load;
pub mod rdb;
pub mod rewrite;

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use crate::config::Fsync;
use crate::store::value::itoa_buf;

/// The ticket counter: records are written in the order of their tickets. One per process,
/// like the AOF it orders.
pub static TICKETS: AtomicU64 = AtomicU64::new(0);

/// One batch of one shard's effects.
#[derive(Debug)]
pub struct Record {
    pub shard: usize,
    /// Position in the file order (see [`TICKETS`]).
    pub ticket: u64,
    /// RESP-encoded commands; starts with a SELECT.
    pub bytes: Bytes,
    /// Number of commands in `bytes` (SELECTs included).
    pub commands: u64,
    /// An instruction to the core, applied at this ticket's place in the file order.
    pub control: Option<Control>,
}

impl Record {
    /// The same commands as one `MULTI ... EXEC` transaction (a multi-shard command's or a
    /// script's effects, as Redis propagates them).
    pub fn in_multi(self) -> Record {
        let mut bytes = bytes::BytesMut::with_capacity(self.bytes.len() + 32);
        bytes.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n");
        bytes.extend_from_slice(&self.bytes);
        bytes.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
        Record {
            bytes: bytes.freeze(),
            commands: self.commands + 2,
            ..self
        }
    }
}

/// What a rewrite, or `CONFIG SET appendonly`, asks of the persistence core (see
/// [`rewrite`]). `gen` names the rewrite: an `Install` is only honoured after the
/// `Rotate`/`Start` of the same rewrite (a rewrite cancelled by `appendonly no` cannot
/// install its base later).
#[derive(Debug)]
pub enum Control {
    /// Start a new incremental file here and list it in the manifest.
    Rotate { gen: u64 },
    /// `appendonly yes` at run time (Redis's AOF_WAIT_REWRITE): from here on, append to a
    /// temporary incremental file (`temp-<appendfilename>.incr`) that no manifest names
    /// until the rewrite's base is installed.
    Start { paths: aof::Paths, gen: u64 },
    /// `appendonly no`: write and fsync what came before, close the files.
    Stop { done: futures_channel::oneshot::Sender<()> },
    /// Rename the finished base `temp` (in the AOF directory) to the next base name and
    /// make the manifest new base + current incr; the older files are deleted.
    Install {
        gen: u64,
        temp: String,
        size: u64,
        done: futures_channel::oneshot::Sender<Result<(), String>>,
    },
}

/// `PersistStats::aof_state`: Redis's AOF_OFF, AOF_ON and AOF_WAIT_REWRITE.
pub const AOF_OFF: u8 = 0;
pub const AOF_ON: u8 = 1;
pub const AOF_WAIT_REWRITE: u8 = 2;

/// The way between the shards and the persistence core's thread: records in, a "progress
/// was published" signal out to each shard.
///
/// The core is a plain thread that sleeps in `park` (a futex), not a glommio executor: it
/// does one thing per wake-up (take the records, write them, publish), and an executor's
/// turn (its three rings polled, timers re-armed, a membarrier before sleeping) cost
/// ~40 µs of CPU per record, which the shard pays when both share a CPU. Waking it is an
/// atomic swap, plus one futex wake when it sleeps.
pub struct Core {
    inbox: Mutex<Inbox>,
    writer: OnceLock<std::thread::Thread>,
    signals: Vec<Signal>,
    /// Connections (every shard) whose records are cut and that wait for them to be durable.
    awaiting: AtomicUsize,
    /// While the writer gathers a group commit (`always`): wake it when `awaiting` reaches
    /// this; records arriving meanwhile do not wake it. 0: not gathering.
    gather: AtomicUsize,
}

struct Inbox {
    records: Vec<Record>,
    /// Shards that have not closed their side yet (0: shut down).
    open: usize,
}

impl Core {
    pub fn new(nshards: usize) -> Arc<Core> {
        Arc::new(Core {
            inbox: Mutex::new(Inbox {
                records: Vec::new(),
                open: nshards,
            }),
            writer: OnceLock::new(),
            signals: (0..nshards).map(|_| Signal::default()).collect(),
            awaiting: AtomicUsize::new(0),
            gather: AtomicUsize::new(0),
        })
    }

    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        // Nothing panics while holding it; a poisoned lock still holds consistent records.
        self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands a record to the core (never blocks: the inbox grows while the disk is slow,
    /// like Redis's aof_buf).
    pub fn send(&self, rec: Record) {
        self.inbox().records.push(rec);
        if self.gather.load(Ordering::SeqCst) == 0 {
            self.unpark();
        }
    }

    /// `n` connections start waiting for their (cut) writes to be durable.
    fn wait_started(&self, n: usize) {
        let n = self.awaiting.fetch_add(n, Ordering::SeqCst) + n;
        let g = self.gather.load(Ordering::SeqCst);
        if g != 0 && n >= g {
            // The group the writer waits for is complete.
            self.unpark();
        }
    }

    /// `n` connections got their replies released.
    fn waits_ended(&self, n: usize) {
        self.awaiting.fetch_sub(n, Ordering::SeqCst);
    }

    /// A shard is done sending (shutdown): the core ends once every shard is.
    pub fn close(&self) {
        self.inbox().open -= 1;
        self.unpark();
    }

    fn unpark(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }

    /// The core's side: moves what arrived into `into`; true once every shard has closed.
    pub(crate) fn take(&self, into: &mut Vec<Record>) -> bool {
        let mut inbox = self.inbox();
        std::mem::swap(into, &mut inbox.records);
        inbox.open == 0
    }

    /// Shard `shard`'s progress signal.
    pub fn signal(&self, shard: usize) -> &Signal {
        &self.signals[shard]
    }
}

/// The persistence core's "progress was published" signal to one shard's executor.
#[derive(Default)]
pub struct Signal {
    raised: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    fn waker(&self) -> MutexGuard<'_, Option<Waker>> {
        self.waker.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker().take() {
            w.wake();
        }
    }

    /// Waits (on the shard's executor) until the signal was raised since the last wait.
    pub async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.raised.swap(false, Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker() = Some(cx.waker().clone());
            // Raised between the swap and the waker's registration: it found no waker.
            if self.raised.swap(false, Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// What the persistence core publishes: progress for waiting connections, and the
/// values INFO persistence shows.
#[derive(Default)]
pub struct PersistStats {
    pub records: AtomicU64,
    pub commands: AtomicU64,
    pub bytes: AtomicU64,
    /// Every ticket below this is as durable as `appendfsync` asks.
    pub durable: AtomicU64,
    /// Every ticket below this is in the kernel (write(2) returned).
    pub written: AtomicU64,
    /// Every ticket below this is fsynced.
    pub synced: AtomicU64,
    /// Shards (bit `id % 64`) with connections waiting for `durable` to move.
    pub want: AtomicU64,
    /// errno of the last failed write (0: the last write succeeded).
    pub write_errno: AtomicI32,
    /// errno of the last failed background fsync (0: none).
    pub fsync_errno: AtomicI32,
    /// The AOF is open and being appended to.
    pub aof_open: AtomicBool,
    pub current_size: AtomicU64,
    pub base_size: AtomicU64,
    /// Bytes received and not yet written.
    pub buffer_length: AtomicU64,
    pub pending_fsync: AtomicU64,
    pub delayed_fsync: AtomicU64,
    pub rewrite_in_progress: AtomicBool,
    /// A rewrite waits to start (Redis's aof_rewrite_scheduled): the cron starts it.
    pub rewrite_scheduled: AtomicBool,
    /// The rewrite that may install its base; bumped by every cut and by `appendonly no`.
    pub rewrite_gen: AtomicU64,
    /// [`AOF_OFF`], [`AOF_ON`] or [`AOF_WAIT_REWRITE`]; changed only by a cut, which holds
    /// every shard.
    pub aof_state: std::sync::atomic::AtomicU8,
    /// When the last rewrite failed (unix ms, 0: never), for the retry delay.
    pub last_rewrite_failure_ms: AtomicU64,
    /// The AOF is being loaded: commands without the `loading` flag answer -LOADING.
    pub loading: AtomicBool,
    /// Shards still waiting for their loaded store.
    pub loading_shards: AtomicUsize,
    /// When loading started (unix ms), the bytes to read and the bytes read.
    pub loading_start_ms: AtomicU64,
    pub loading_total_bytes: AtomicU64,
    pub loading_loaded_bytes: AtomicU64,
    pub rewrite_started_ms: AtomicU64,
    pub rewrites: AtomicU64,
    pub rewrite_failures: AtomicU64,
    /// False once a rewrite failed, until one succeeds (starts true: see `Default`).
    pub last_rewrite_ok: AtomicBool,
    /// Duration of the last rewrite (-1: none yet).
    pub last_rewrite_secs: std::sync::atomic::AtomicI64,
}

impl PersistStats {
    pub fn new() -> PersistStats {
        let s = PersistStats::default();
        s.last_rewrite_ok.store(true, Ordering::Relaxed);
        s.last_rewrite_secs.store(-1, Ordering::Relaxed);
        s
    }
}

impl PersistStats {
    /// The errno that makes writes refused (MISCONF), if any.
    pub fn write_error(&self) -> Option<i32> {
        let w = self.write_errno.load(Ordering::Relaxed);
        if w != 0 {
            return Some(w);
        }
        let f = self.fsync_errno.load(Ordering::Relaxed);
        (f != 0).then_some(f)
    }
}

/// Redis's reply to commands without the `loading` flag while the data set loads.
pub const LOADING_ERR: &str = "LOADING Redis is loading the dataset in memory";

/// strerror(3): Redis puts the bare text in its messages.
pub fn strerror(errno: i32) -> String {
    // SAFETY: strerror returns a pointer to a NUL-terminated static or thread-local string.
    unsafe { std::ffi::CStr::from_ptr(libc::strerror(errno)) }
        .to_string_lossy()
        .into_owned()
}

/// Redis's reply to writes while the AOF cannot be written (writeCommandsGetDiskErrorMessage).
pub fn misconf(errno: i32) -> String {
    format!("MISCONF Errors writing to the AOF file: {}", strerror(errno))
}

/// A shard's side of acknowledgements: when its pending effects are cut, and the
/// connections holding replies until their writes are durable.
///
/// Pending effects are cut at the end of the executor turn that left them (the cutter task,
/// woken by [`Durable::schedule_cut`], runs after the tasks the turn had already queued), or
/// earlier at an ordering point, where something must take its place in the file after
/// them: a coordinator reserving the shard, the end of a batch run for another shard, any
/// op this shard sends to another (a connection's commands may continue there), the AOF's
/// cut for rewrites and `appendonly`, serving a blocked client, shutdown.
#[derive(Default)]
pub struct Durable {
    /// Connections holding their replies, each with the ticket its writes need durable
    /// (shared with its wait): woken once, when that ticket is durable.
    waiters: RefCell<Vec<(Target, Waker)>>,
    /// How many of them wait for the next cut (their target is NEXT_CUT).
    uncut: Cell<usize>,
    /// A cut is due at the end of this turn; the cutter task's waker while it sleeps.
    cut_due: Cell<bool>,
    cutter: RefCell<Option<Waker>>,
    /// The ticket after this shard's last end-of-turn record (0: none yet).
    turn_record_end: Cell<u64>,
}

/// A waiting connection's target ticket: everything below it must be durable.
type Target = std::rc::Rc<Cell<u64>>;
/// The target of a connection whose effects are still pending: the ticket after the next
/// cut, which the cut fills in (without waking it).
const NEXT_CUT: u64 = u64::MAX;

impl Durable {
    /// Asks for a cut at the end of this executor turn (once, however many ask).
    pub fn schedule_cut(&self) {
        if !self.cut_due.replace(true) {
            if let Some(w) = self.cutter.take() {
                w.wake();
            }
        }
    }

    /// The cutter task's wait: resolves when a cut was scheduled. Woken tasks run in the
    /// order they were woken, so the cut comes after the connections the turn had queued.
    pub async fn cut_due(&self) {
        std::future::poll_fn(|cx| {
            if self.cut_due.replace(false) {
                Poll::Ready(())
            } else {
                *self.cutter.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Waits until this shard's last end-of-turn record is durable: under `everysec` and
    /// `no` a shard has one such record in flight at a time, and effects left meanwhile wait
    /// for it (Nagle's rule). The cut then carries every command of the round trip instead
    /// of one turn's few: at P1 a turn runs ~3 commands, and each record cost the shard a
    /// futex wake of the core and a wake-up back. Ordering points still cut at once: this
    /// only paces acknowledgements. Not under `always`, whose group commit counts waiters.
    pub async fn previous_turn_record(&self, stats: &PersistStats, core: Option<&Core>, shard: usize) {
        let t = self.turn_record_end.get();
        if stats.durable.load(Ordering::Acquire) >= t {
            return;
        }
        self.wait(stats, core, shard, std::rc::Rc::new(Cell::new(t))).await;
    }

    /// Notes the ticket of an end-of-turn record (see [`Durable::previous_turn_record`]).
    pub fn turn_record_cut(&self, ticket: u64) {
        self.turn_record_end.set(ticket + 1);
    }

    /// Notes that the pending effects were cut with `ticket`: the connections waiting for
    /// the cut now wait for that ticket to be durable.
    pub fn cut_taken(&self, ticket: u64, stats: &PersistStats, core: Option<&Core>, shard: usize) {
        let uncut = self.uncut.replace(0);
        if uncut == 0 {
            return;
        }
        for (target, _) in self.waiters.borrow().iter() {
            if target.get() == NEXT_CUT {
                target.set(ticket + 1);
            }
        }
        if let Some(core) = core {
            core.wait_started(uncut);
        }
        // Asks the core for a signal (the record is not even sent yet, so none is missed).
        stats.want.fetch_or(1 << (shard % 64), Ordering::SeqCst);
    }

    /// Waits until every record with a ticket below `target` is durable; with NEXT_CUT,
    /// until the next cut has filled it in and then that.
    async fn wait(&self, stats: &PersistStats, core: Option<&Core>, shard: usize, target: Target) {
        let mut registered = false;
        std::future::poll_fn(|cx| {
            let t = target.get();
            if t != NEXT_CUT && stats.durable.load(Ordering::Acquire) >= t {
                return Poll::Ready(());
            }
            if !registered {
                registered = true;
                self.waiters.borrow_mut().push((target.clone(), cx.waker().clone()));
                if t == NEXT_CUT {
                    self.uncut.set(self.uncut.get() + 1);
                    self.schedule_cut();
                } else if let Some(core) = core {
                    core.wait_started(1);
                }
            }
            if t == NEXT_CUT {
                return Poll::Pending;
            }
            stats.want.fetch_or(1 << (shard % 64), Ordering::SeqCst);
            // The core may have published between the check and the flag: look again.
            if stats.durable.load(Ordering::SeqCst) >= t {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await
    }

    /// Wakes the connections whose target was reached (on the core's signal).
    pub fn wake(&self, stats: &PersistStats, core: &Core, shard: usize) {
        let mut w = self.waiters.borrow_mut();
        loop {
            let done = stats.durable.load(Ordering::SeqCst);
            let before = w.len();
            w.retain(|(target, waker)| {
                if target.get() <= done {
                    waker.wake_by_ref();
                    false
                } else {
                    true
                }
            });
            core.waits_ended(before - w.len());
            if w.len() == self.uncut.get() {
                // Nobody waits for the core (the rest wait for a cut, which asks again).
                return;
            }
            stats.want.fetch_or(1 << (shard % 64), Ordering::SeqCst);
            // A publish between the load above and the flag would not have signalled us:
            // if progress moved meanwhile, look again instead of sleeping on it.
            if stats.durable.load(Ordering::SeqCst) == done {
                return;
            }
        }
    }
}

/// Holds a reply until the writes before it are durable (a no-op when the AOF is off).
/// Effects still pending are cut at the end of this turn, with every other connection's.
pub async fn wait_durable(local: &crate::server::ShardLocal, shard: usize) {
    if !local.cfg.borrow().appendonly {
        return;
    }
    let stats = &local.shared.persist;
    // Every ticket this batch caused elsewhere (a remote batch's cut, a MULTI ... EXEC
    // record) was taken before now, so it is below either target.
    let target = if local.effects.borrow().is_empty() {
        let t = TICKETS.load(Ordering::SeqCst);
        if stats.durable.load(Ordering::Acquire) >= t {
            return;
        }
        t
    } else {
        NEXT_CUT
    };
    let target = std::rc::Rc::new(Cell::new(target));
    local.durable.wait(stats, local.persist.as_deref(), shard, target).await;
}

/// A shard's pending write effects.
pub struct Effects {
    enabled: bool,
    buf: BytesMut,
    /// The database the last effect in `buf` was written against.
    db: Option<usize>,
    commands: u64,
}

/// Appends a RESP header: `prefix`, `n` in decimal, CRLF. Lengths below 100 (nearly all)
/// are one fixed-size copy: an effect is mostly such headers, and a call to memmove for each
/// two-byte piece cost more than the rest of its encoding.
fn put_header(buf: &mut BytesMut, prefix: u8, n: usize) {
    if n < 10 {
        buf.extend_from_slice(&[prefix, b'0' + n as u8, b'\r', b'\n']);
    } else if n < 100 {
        buf.extend_from_slice(&[prefix, b'0' + (n / 10) as u8, b'0' + (n % 10) as u8, b'\r', b'\n']);
    } else {
        let mut digits = itoa_buf::Buf::new();
        buf.put_u8(prefix);
        buf.extend_from_slice(digits.format(n as i64));
        buf.extend_from_slice(b"\r\n");
    }
}

/// What a shard keeps reserved for its next record after a cut, at most: records of a busy
/// turn are alike, and a buffer grown by doubling copies itself on the way.
const RECORD_RESERVE_MAX: usize = 64 * 1024;

impl Effects {
    pub fn new(enabled: bool) -> Effects {
        Effects {
            enabled,
            buf: BytesMut::new(),
            db: None,
            commands: 0,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    /// Appends one effect command against database `db`.
    pub fn push(&mut self, db: usize, args: &[&[u8]]) {
        if !self.enabled {
            return;
        }
        if self.db != Some(db) {
            let mut n = itoa_buf::Buf::new();
            let db_s = n.format(db as i64).to_vec();
            self.push_raw(&[b"SELECT", &db_s]);
            self.db = Some(db);
        }
        self.push_raw(args);
    }

    fn push_raw(&mut self, args: &[&[u8]]) {
        self.buf.reserve(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
        put_header(&mut self.buf, b'*', args.len());
        for a in args {
            put_header(&mut self.buf, b'$', a.len());
            self.buf.extend_from_slice(a);
            self.buf.extend_from_slice(b"\r\n");
        }
        self.commands += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Turns keys that expired in `store` since the last call into `DEL` effects. Called
    /// before a command's own effects and after every command, so a replay deletes them
    /// exactly where the live server did.
    pub fn take_expired(&mut self, store: &mut crate::store::Store) {
        if store.expired_queued.load(Ordering::Relaxed) == 0 {
            return;
        }
        store.expired_queued.store(0, Ordering::Relaxed);
        for (i, db) in store.dbs.iter_mut().enumerate() {
            if !db.expired.is_empty() {
                for k in db.expired.drain(..) {
                    // (Its `expired` event was sent when the key was deleted.)
                    self.push(i, &[b"DEL", &k]);
                }
            }
        }
    }

    /// Takes the pending effects as one record (None if there are none).
    pub fn take(&mut self, shard: usize) -> Option<Record> {
        if self.buf.is_empty() {
            return None;
        }
        let commands = std::mem::take(&mut self.commands);
        self.db = None;
        let bytes = self.buf.split().freeze();
        self.buf.reserve(bytes.len().min(RECORD_RESERVE_MAX));
        Some(Record {
            shard,
            ticket: TICKETS.fetch_add(1, Ordering::SeqCst),
            bytes,
            commands,
            control: None,
        })
    }
}

/// The AOF the core appends to, opened (or created) at start-up.
pub struct AofFile {
    pub paths: aof::Paths,
    pub manifest: aof::Manifest,
    pub file: File,
}

/// Records received, put back in ticket order.
struct Queue {
    /// Records that arrived before a lower ticket.
    early: std::collections::BTreeMap<u64, Record>,
    /// Controls in ticket order: (offset in `buf` where they apply, ticket, control).
    controls: Vec<(usize, u64, Control)>,
    /// The next ticket to append to `buf`.
    next: u64,
    /// Bytes in ticket order, not yet written.
    buf: Vec<u8>,
}

impl Queue {
    fn push(&mut self, rec: Record) {
        if rec.ticket == self.next {
            self.append(rec);
            while let Some(r) = self.early.remove(&self.next) {
                self.append(r);
            }
        } else {
            self.early.insert(rec.ticket, rec);
        }
    }

    fn append(&mut self, rec: Record) {
        self.buf.extend_from_slice(&rec.bytes);
        if let Some(c) = rec.control {
            self.controls.push((self.buf.len(), rec.ticket, c));
        }
        self.next = rec.ticket + 1;
    }
}

/// The background fsync of `everysec` (Redis's BIO_AOF_FSYNC thread): the core keeps
/// writing while the disk syncs.
struct Bio {
    tx: std::sync::mpsc::Sender<(Arc<File>, u64)>,
    busy: Arc<AtomicUsize>,
}

impl Bio {
    /// `writer`: the core's thread, woken when an fsync lands (writes postponed behind it
    /// resume at once).
    fn start(shared: Arc<crate::server::ServerShared>, writer: std::thread::Thread) -> Bio {
        let (tx, rx) = std::sync::mpsc::channel::<(Arc<File>, u64)>();
        let busy = Arc::new(AtomicUsize::new(0));
        let b = busy.clone();
        let spawned = std::thread::Builder::new().name("aof-fsync".into()).spawn(move || {
            for (file, upto) in rx {
                let stats = &shared.persist;
                match file.sync_data() {
                    Ok(()) => {
                        stats.synced.fetch_max(upto, Ordering::SeqCst);
                        if stats.fsync_errno.swap(0, Ordering::SeqCst) != 0 {
                            tracing::warn!("AOF fsync error looks solved, writes are accepted again.");
                        }
                    }
                    Err(e) => {
                        tracing::warn!("Error trying to fsync the AOF file: {e}");
                        stats
                            .fsync_errno
                            .store(e.raw_os_error().unwrap_or(libc::EIO), Ordering::SeqCst);
                    }
                }
                stats.pending_fsync.fetch_sub(1, Ordering::SeqCst);
                b.fetch_sub(1, Ordering::SeqCst);
                writer.unpark();
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(
                "cannot start the AOF fsync thread ({e}): everysec fsyncs will run on the persistence thread"
            );
        }
        Bio { tx, busy }
    }

    fn in_progress(&self) -> bool {
        self.busy.load(Ordering::SeqCst) > 0
    }

    /// Queues an fsync covering every ticket below `upto`; runs it here if the thread is gone.
    fn submit(&self, file: &Arc<File>, upto: u64, stats: &PersistStats) {
        self.busy.fetch_add(1, Ordering::SeqCst);
        stats.pending_fsync.fetch_add(1, Ordering::SeqCst);
        if let Err(std::sync::mpsc::SendError((file, upto))) = self.tx.send((file.clone(), upto)) {
            if file.sync_data().is_ok() {
                stats.synced.fetch_max(upto, Ordering::SeqCst);
            }
            stats.pending_fsync.fetch_sub(1, Ordering::SeqCst);
            self.busy.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// After a failed write, the next try comes this much later (not on every arrival).
const WRITE_RETRY: Duration = Duration::from_millis(100);
/// `everysec`'s fsync period, and Redis's limit on postponing a write behind a slow fsync.
const FSYNC_EVERY: Duration = Duration::from_secs(1);
const POSTPONE_MAX: Duration = Duration::from_secs(2);
/// The longest the core sleeps with nothing to do (a wake-up a second costs nothing).
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// The longest a group commit waits for its group, whatever the last fdatasync took.
const MAX_GATHER: Duration = Duration::from_millis(5);
/// Redis's rate limit on repeated write error logs.
const WRITE_ERROR_LOG_EVERY: Duration = Duration::from_secs(30);

/// Appends records to the AOF in ticket order and publishes progress.
struct Writer {
    shared: Arc<crate::server::ServerShared>,
    file: Option<Arc<File>>,
    /// The AOF's directory and manifest (None: no AOF).
    aof: Option<(aof::Paths, aof::Manifest)>,
    bio: Bio,
    core: Arc<Core>,
    /// Size of the incremental file after the last complete write (a short write is cut
    /// back to it, so the file never holds half a record).
    incr_size: u64,
    postponed_since: Option<Instant>,
    last_fsync: Instant,
    last_error_log: Option<Instant>,
    /// When the last failed write was tried: after an error, writes are retried every
    /// WRITE_RETRY, not on every arrival.
    last_failure: Option<Instant>,
    /// The rewrite whose Rotate (or Start) succeeded and whose Install has not come yet.
    rotated: Option<u64>,
    /// The incr file's size must be read again before the next write: a start-up load
    /// (which runs while the core is up) may have cut a truncated tail.
    resize: bool,
    /// `appendonly yes` was set at run time and the first base is not installed yet: the
    /// incr file is the temporary one and the manifest does not name it.
    starting: bool,
    /// `always`'s group commit: the connections the last fdatasync released (the group to
    /// wait for), how long it took, and the end of the current wait for the group.
    group: usize,
    last_sync_took: Duration,
    gather_until: Option<Instant>,
}

impl Writer {
    fn policy(&self) -> Fsync {
        self.shared.config.read().appendfsync
    }

    /// Writes `buf` (every ticket below `upto`). False if the write failed and `buf`
    /// must be kept for a retry.
    fn write(&mut self, buf: &[u8], upto: u64, closing: bool) -> bool {
        let stats = &self.shared.persist;
        let policy = self.policy();
        let Some(file) = self.file.clone() else {
            // No AOF (appendonly no at start-up): records are only counted.
            self.publish(upto, upto);
            return true;
        };
        if policy == Fsync::EverySec && !closing && self.bio.in_progress() {
            // Redis's rule: a write(2) would wait behind the fsync anyway, so postpone up
            // to 2 s; after that, write without waiting and count it.
            match self.postponed_since {
                None => {
                    self.postponed_since = Some(Instant::now());
                    return false;
                }
                Some(t) if t.elapsed() < POSTPONE_MAX => return false,
                Some(_) => {
                    stats.delayed_fsync.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for fsync to complete, this may slow down Redis.");
                }
            }
        }
        self.postponed_since = None;
        if std::mem::take(&mut self.resize) {
            if let Ok(md) = file.metadata() {
                self.incr_size = md.len();
            }
        }
        if let Err(e) = write_all(&file, buf) {
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            // Cut a partial write back so the file ends on a record boundary.
            let cut = file.set_len(self.incr_size);
            let log = self.last_error_log.is_none_or(|t| t.elapsed() >= WRITE_ERROR_LOG_EVERY);
            if log {
                self.last_error_log = Some(Instant::now());
                tracing::warn!("Error writing to the AOF file: {}", strerror(errno));
                if let Err(c) = cut {
                    tracing::warn!("Could not remove short write from the append-only file. basalt may refuse to load the AOF the next time it starts. ftruncate: {c}");
                }
            }
            stats.write_errno.store(errno, Ordering::SeqCst);
            self.last_failure = Some(Instant::now());
            return false;
        }
        if stats.write_errno.swap(0, Ordering::SeqCst) != 0 {
            tracing::warn!("AOF write error looks solved, basalt can write again.");
        }
        self.incr_size += buf.len() as u64;
        stats.current_size.fetch_add(buf.len() as u64, Ordering::Relaxed);
        stats.written.store(upto, Ordering::SeqCst);
        let mut synced = stats.synced.load(Ordering::SeqCst);
        // `always` outside shutdown: the fsync runs off this thread (see `run`), so records
        // keep being written while it lands; `durable` follows `synced`.
        if closing {
            if let Err(e) = file.sync_data() {
                if policy == Fsync::Always {
                    // Like Redis: nothing written since the last good fsync may be
                    // acknowledged, and a failed fsync cannot be retried safely.
                    tracing::error!(
                        "Can't persist AOF for fsync error when the AOF fsync policy is 'always': {e}. Exiting..."
                    );
                    std::process::exit(1);
                }
                tracing::warn!("Fail to fsync the AOF file: {e}");
            } else {
                synced = upto;
                stats.synced.store(upto, Ordering::SeqCst);
                self.last_fsync = Instant::now();
            }
        }
        let durable = if policy == Fsync::Always { synced } else { upto };
        self.publish(upto, durable);
        true
    }

    /// Publishes progress and signals the shards that have connections waiting.
    fn publish(&self, written: u64, durable: u64) {
        let stats = &self.shared.persist;
        stats.written.fetch_max(written, Ordering::SeqCst);
        stats.durable.fetch_max(durable, Ordering::SeqCst);
        let want = stats.want.swap(0, Ordering::SeqCst);
        if want != 0 {
            for (i, signal) in self.core.signals.iter().enumerate() {
                if want & (1 << (i % 64)) != 0 {
                    signal.raise();
                }
            }
        }
    }

    /// Applies a control record; `upto` is the ticket after it.
    fn apply(&mut self, c: Control, upto: u64) {
        match c {
            Control::Rotate { gen } => {
                if let Err(e) = self.rotate(gen) {
                    // The old incr file stays in use: the rewrite's install will notice.
                    tracing::error!("Can't open a new incremental AOF file for the rewrite: {e}");
                }
            }
            Control::Start { paths, gen } => {
                if let Err(e) = self.start(paths, gen) {
                    // The rewrite's install will fail, and a retry starts over.
                    tracing::error!("Can't open the temporary incremental AOF file to turn the AOF on: {e}");
                }
            }
            Control::Stop { done } => {
                self.stop();
                let _ = done.send(());
            }
            Control::Install { gen, temp, size, done } => {
                let r = self
                    .install(gen, &temp, size)
                    .map_err(|e| format!("cannot install the new base: {e}"));
                let _ = done.send(r);
            }
        }
        let durable = if self.policy() == Fsync::Always && self.file.is_some() {
            self.shared.persist.synced.load(Ordering::SeqCst)
        } else {
            upto
        };
        self.publish(upto, durable);
    }

    /// Starts a new incremental file: fsync the current one, create the next, list it.
    fn rotate(&mut self, gen: u64) -> std::io::Result<()> {
        self.rotated = None;
        let Some((paths, m)) = self.aof.as_mut() else {
            return Err(std::io::Error::other("the AOF is off"));
        };
        if self.starting {
            // Still waiting for the first base: a retry of the start, not a rotation.
            let paths = paths.clone();
            return self.start(paths, gen);
        }
        if let Some(f) = &self.file {
            f.sync_data()?;
        }
        let seq = m.incr_seq() + 1;
        let name = paths.incr_name(seq);
        let mut next = m.clone();
        next.incr.push(aof::FileInfo {
            name: name.clone(),
            seq,
            kind: aof::Kind::Incr,
        });
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(paths.file(&name))?;
        aof::fsync_dir(&paths.dir)?;
        paths.write_manifest(&next)?;
        *m = next;
        self.file = Some(Arc::new(f));
        self.incr_size = 0;
        self.rotated = Some(gen);
        Ok(())
    }

    /// `appendonly yes` at run time: effects from here on go to a fresh temporary incr
    /// file; the manifest on disk (if any, from an earlier run) is left alone until the
    /// rewrite installs its base.
    fn start(&mut self, paths: aof::Paths, gen: u64) -> std::io::Result<()> {
        self.rotated = None;
        self.file = None;
        std::fs::create_dir_all(&paths.dir)?;
        let old = paths
            .read_manifest()
            .map_err(std::io::Error::other)?
            .unwrap_or_default();
        let temp = paths.file(&paths.temp_incr_name());
        // A leftover (a crash while starting, or a retry) holds effects the new base covers.
        match std::fs::remove_file(&temp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let f = std::fs::OpenOptions::new().append(true).create(true).open(&temp)?;
        aof::fsync_dir(&paths.dir)?;
        tracing::info!(
            "Creating AOF incr file {} on background rewrite (AOF turned on)",
            paths.temp_incr_name()
        );
        self.file = Some(Arc::new(f));
        self.aof = Some((paths, old));
        self.starting = true;
        self.incr_size = 0;
        self.last_fsync = Instant::now();
        self.rotated = Some(gen);
        let stats = &self.shared.persist;
        stats.aof_open.store(true, Ordering::SeqCst);
        stats.base_size.store(0, Ordering::SeqCst);
        stats.current_size.store(0, Ordering::SeqCst);
        // Like Redis's startAppendOnly: a new file starts without the old error.
        stats.write_errno.store(0, Ordering::SeqCst);
        stats.fsync_errno.store(0, Ordering::SeqCst);
        Ok(())
    }

    /// `appendonly no`: fsync and close (Redis's stopAppendOnly). A start that never got
    /// its base leaves nothing behind.
    fn stop(&mut self) {
        let stats = &self.shared.persist;
        if let Some(f) = self.file.take() {
            match f.sync_all() {
                Ok(()) => {
                    stats
                        .synced
                        .fetch_max(stats.written.load(Ordering::SeqCst), Ordering::SeqCst);
                }
                Err(e) => tracing::warn!("Fail to fsync the AOF file: {e}"),
            }
        }
        if let Some((paths, _)) = self.aof.take() {
            if self.starting {
                let _ = std::fs::remove_file(paths.file(&paths.temp_incr_name()));
            }
        }
        self.starting = false;
        self.rotated = None;
        self.incr_size = 0;
        self.postponed_since = None;
        stats.aof_open.store(false, Ordering::SeqCst);
        stats.write_errno.store(0, Ordering::SeqCst);
        stats.buffer_length.store(0, Ordering::Relaxed);
        tracing::info!("AOF turned off: the append-only file is closed");
    }

    /// Makes the rewritten base current: rename, manifest swap, old files deleted.
    fn install(&mut self, gen: u64, temp: &str, size: u64) -> std::io::Result<()> {
        let Some((paths, m)) = self.aof.as_mut() else {
            return Err(std::io::Error::other("the AOF is off"));
        };
        if self.rotated.take() != Some(gen) {
            let _ = std::fs::remove_file(paths.file(temp));
            return Err(std::io::Error::other(
                "the rewrite's new incremental file could not be opened, or the rewrite was cancelled",
            ));
        }
        let seq = m.base_seq() + 1;
        let base_name = paths.base_name(seq, temp.ends_with(".rdb"));
        std::fs::rename(paths.file(temp), paths.file(&base_name))?;
        let (current, old) = if self.starting {
            // The temporary incr file becomes the manifest's only incr file; everything
            // an earlier run left behind is history.
            let seq = m.incr_seq() + 1;
            let name = paths.incr_name(seq);
            std::fs::rename(paths.file(&paths.temp_incr_name()), paths.file(&name))?;
            let old: Vec<aof::FileInfo> = m.base.iter().chain(&m.history).chain(&m.incr).cloned().collect();
            (
                aof::FileInfo {
                    name,
                    seq,
                    kind: aof::Kind::Incr,
                },
                old,
            )
        } else {
            let current = m
                .incr
                .last()
                .cloned()
                .ok_or_else(|| std::io::Error::other("no incr file"))?;
            let old: Vec<aof::FileInfo> = m
                .base
                .iter()
                .chain(&m.history)
                .chain(&m.incr[..m.incr.len() - 1])
                .cloned()
                .collect();
            (current, old)
        };
        let next = aof::Manifest {
            base: Some(aof::FileInfo {
                name: base_name,
                seq,
                kind: aof::Kind::Base,
            }),
            history: Vec::new(),
            incr: vec![current],
        };
        aof::fsync_dir(&paths.dir)?;
        paths.write_manifest(&next)?;
        *m = next;
        self.starting = false;
        for f in old {
            if let Err(e) = std::fs::remove_file(paths.file(&f.name)) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("Can't remove the history AOF file {}: {e}", f.name);
                }
            }
        }
        let stats = &self.shared.persist;
        stats.base_size.store(size, Ordering::SeqCst);
        stats.current_size.store(size + self.incr_size, Ordering::SeqCst);
        Ok(())
    }

    /// The once-a-second background fsync of `everysec`.
    fn maybe_fsync(&mut self) {
        let stats = &self.shared.persist;
        let Some(file) = &self.file else { return };
        if self.policy() != Fsync::EverySec || self.last_fsync.elapsed() < FSYNC_EVERY {
            return;
        }
        let written = stats.written.load(Ordering::SeqCst);
        if written > stats.synced.load(Ordering::SeqCst) && !self.bio.in_progress() {
            self.bio.submit(file, written, stats);
            self.last_fsync = Instant::now();
        }
    }
}

fn write_all(mut file: &File, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match file.write(buf) {
            Ok(0) => return Err(std::io::Error::from_raw_os_error(libc::ENOSPC)),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The persistence core's thread: takes every shard's records until all shards have closed
/// (shutdown), appends them to the AOF in ticket order, fsyncs as `appendfsync` says,
/// publishes progress, and at shutdown writes and fsyncs what is left.
///
/// File I/O is plain write(2)/fdatasync(2) on this thread: only the persistence core ever
/// waits for the disk, and records keep arriving in the inbox meanwhile, so each write
/// carries everything that arrived during the previous one. Under `always` that is the
/// group commit: the fdatasync runs here, and the next one covers every record that
/// arrived while it ran, from every shard and connection.
pub fn run(core: Arc<Core>, shared: Arc<crate::server::ServerShared>, aof: Option<AofFile>) {
    let _ = core.writer.set(std::thread::current());
    let mut q = Queue {
        early: Default::default(),
        controls: Vec::new(),
        next: 0,
        buf: Vec::new(),
    };
    let (file, aof) = match aof {
        Some(a) => (Some(Arc::new(a.file)), Some((a.paths, a.manifest))),
        None => (None, None),
    };
    let incr_size = file.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
    let stats = &shared.persist;
    stats.aof_open.store(file.is_some(), Ordering::SeqCst);
    let mut w = Writer {
        bio: Bio::start(shared.clone(), std::thread::current()),
        core: core.clone(),
        shared: shared.clone(),
        file,
        aof,
        incr_size,
        postponed_since: None,
        last_fsync: Instant::now(),
        last_error_log: None,
        last_failure: None,
        rotated: None,
        starting: false,
        resize: true,
        group: 0,
        last_sync_took: Duration::ZERO,
        gather_until: None,
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut controls: Vec<(usize, u64, Control)> = Vec::new();
    let mut arrived: Vec<Record> = Vec::new();
    loop {
        let closing = core.take(&mut arrived);
        for rec in arrived.drain(..) {
            stats.records.fetch_add(1, Ordering::Relaxed);
            stats.commands.fetch_add(rec.commands, Ordering::Relaxed);
            stats.bytes.fetch_add(rec.bytes.len() as u64, Ordering::Relaxed);
            q.push(rec);
        }
        let mut upto = {
            let base = pending.len();
            for (off, t, c) in q.controls.drain(..) {
                controls.push((base + off, t, c));
            }
            pending.append(&mut q.buf);
            q.next
        };
        // Controls apply at their place in the byte stream: write what comes before first.
        while let Some((off, t, _)) = controls.first() {
            let (off, t) = (*off, *t);
            if off > 0 && !w.write(&pending[..off], t, false) {
                break;
            }
            pending.drain(..off);
            let (_, _, c) = controls.remove(0);
            for c in controls.iter_mut() {
                c.0 -= off;
            }
            w.apply(c, t + 1);
        }
        if controls.is_empty() {
            if closing {
                // Tickets cut but never sent (a shard gone mid-send) leave gaps: write what
                // arrived, in order, rather than lose it.
                for (t, r) in std::mem::take(&mut q.early) {
                    pending.extend_from_slice(&r.bytes);
                    upto = t + 1;
                }
            }
            stats.buffer_length.store(pending.len() as u64, Ordering::Relaxed);
            let in_error = stats.write_errno.load(Ordering::Relaxed) != 0;
            let retry_now = closing || !in_error || w.last_failure.is_none_or(|t| t.elapsed() >= WRITE_RETRY);
            if pending.is_empty() {
                let durable = if w.policy() == Fsync::Always && w.file.is_some() {
                    stats.synced.load(Ordering::SeqCst)
                } else {
                    upto
                };
                w.publish(upto, durable);
            } else if retry_now && w.write(&pending, upto, closing) {
                pending.clear();
                stats.buffer_length.store(0, Ordering::Relaxed);
            }
            w.maybe_fsync();
            if !closing && w.policy() == Fsync::Always {
                w.sync_written();
            } else {
                w.stop_gathering();
            }
            if closing {
                if !pending.is_empty() {
                    tracing::warn!(
                        "The AOF could not be written at shutdown: {} bytes of effects are lost",
                        pending.len()
                    );
                }
                if let Some(f) = &w.file {
                    if let Err(e) = f.sync_all() {
                        tracing::warn!("Fail to fsync the AOF file at shutdown: {e}");
                    }
                }
                return;
            }
        }
        // Until a record arrives (`Core::send` unparks us), the background fsync lands, or
        // a retry or the once-a-second fsync is due. An unpark since the last park makes
        // this return at once, so nothing sent after `take` waits.
        std::thread::park_timeout(w.next_check(!pending.is_empty()));
    }
}

impl Writer {
    /// `always`: fdatasyncs what was written, then publishes it as durable. Records that
    /// arrive meanwhile wait in the inbox for the next round, which one fdatasync covers.
    ///
    /// Group commit: with N clients each waiting for its reply, an fdatasync that starts as
    /// soon as the previous one lands covers only the clients that came back while it ran,
    /// so the clients split into two groups that alternate and each write waits for two
    /// fdatasyncs (Redis, which fsyncs in its event loop, does the same). So when the last
    /// fdatasync released more than one connection, the next one first waits for those
    /// connections to come back with their next writes (the shard that completes the group
    /// wakes this thread), for at most as long as the last fdatasync took: never longer
    /// than the extra round it saves.
    fn sync_written(&mut self) {
        let shared = self.shared.clone();
        let stats = &shared.persist;
        let Some(file) = self.file.clone() else { return };
        let written = stats.written.load(Ordering::SeqCst);
        if written <= stats.synced.load(Ordering::SeqCst) {
            return;
        }
        if self.group > 1 {
            let until = *self
                .gather_until
                .get_or_insert_with(|| Instant::now() + self.last_sync_took.min(MAX_GATHER));
            // Set before looking at the count: a connection starting to wait from here on
            // sees it and wakes us at the group's size.
            self.core.gather.store(self.group, Ordering::SeqCst);
            if self.core.awaiting.load(Ordering::SeqCst) < self.group && Instant::now() < until {
                return;
            }
        }
        self.stop_gathering();
        let group = self.core.awaiting.load(Ordering::SeqCst);
        let started = Instant::now();
        if let Err(e) = file.sync_data() {
            // Like Redis: nothing written since the last good fsync may be acknowledged,
            // and a failed fsync cannot be retried safely.
            tracing::error!("Can't persist AOF for fsync error when the AOF fsync policy is 'always': {e}. Exiting...");
            std::process::exit(1);
        }
        stats.synced.fetch_max(written, Ordering::SeqCst);
        self.last_fsync = Instant::now();
        self.last_sync_took = started.elapsed();
        // Those still waiting once it lands were not covered: they count toward the next.
        self.group = group;
        self.publish(written, written);
    }

    /// Ends a wait for a group commit: records wake the core again.
    fn stop_gathering(&mut self) {
        if self.gather_until.take().is_some() {
            self.core.gather.store(0, Ordering::SeqCst);
            // Records that arrived during the wait did not wake us: look at the inbox now.
            self.core.unpark();
        }
    }

    /// How long the core may sleep before something is due without a new record.
    fn next_check(&self, pending: bool) -> Duration {
        let stats = &self.shared.persist;
        let mut wait = IDLE_CHECK;
        if pending && stats.write_errno.load(Ordering::Relaxed) != 0 {
            let since = self.last_failure.map_or(WRITE_RETRY, |t| t.elapsed());
            wait = wait.min(WRITE_RETRY.saturating_sub(since));
        }
        if let Some(t) = self.gather_until {
            wait = wait.min(t.saturating_duration_since(Instant::now()));
        }
        if let Some(t) = self.postponed_since {
            // The fsync thread wakes us when it lands; this is Redis's 2 s limit.
            wait = wait.min(POSTPONE_MAX.saturating_sub(t.elapsed()));
        }
        if self.policy() == Fsync::EverySec
            && stats.written.load(Ordering::SeqCst) > stats.synced.load(Ordering::SeqCst)
        {
            wait = wait.min(FSYNC_EVERY.saturating_sub(self.last_fsync.elapsed()));
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    #[test]
    fn effects_encode_resp_with_select() {
        let mut e = Effects::new(true);
        e.push(0, &[b"SET", b"k", b"v"]);
        e.push(0, &[b"DEL", b"k"]);
        e.push(3, &[b"DEL", b"x"]);
        let r = e.take(1).unwrap();
        assert_eq!(r.commands, 5);
        assert_eq!(
            &r.bytes[..],
            &b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*2\r\n$3\r\nDEL\r\n$1\r\nx\r\n"[..]
        );
        assert!(e.take(1).is_none());
        // Each record starts with its own SELECT.
        e.push(3, &[b"DEL", b"y"]);
        assert!(e
            .take(1)
            .unwrap()
            .bytes
            .starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"));
    }

    #[test]
    fn pending_effects_are_acknowledged_once_their_cut_is_durable() {
        let d = Durable::default();
        let stats = PersistStats::new();
        let core = Core::new(1);
        let mut cx = std::task::Context::from_waker(Waker::noop());
        let target = std::rc::Rc::new(Cell::new(NEXT_CUT));
        let mut wait = std::pin::pin!(d.wait(&stats, Some(&core), 0, target.clone()));
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        // The wait asked for a cut at the end of the turn; durability alone does not end it.
        assert!(d.cut_due.get());
        stats.durable.store(1000, Ordering::SeqCst);
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        stats.durable.store(0, Ordering::SeqCst);
        d.cut_taken(41, &stats, Some(&core), 0);
        assert_eq!(target.get(), 42);
        assert_eq!(core.awaiting.load(Ordering::SeqCst), 1);
        assert_ne!(stats.want.load(Ordering::SeqCst), 0, "the core is asked for a signal");
        stats.durable.store(41, Ordering::SeqCst);
        d.wake(&stats, &core, 0);
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        stats.durable.store(42, Ordering::SeqCst);
        d.wake(&stats, &core, 0);
        assert_eq!(core.awaiting.load(Ordering::SeqCst), 0);
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_signal_raised_before_the_wait_is_not_lost() {
        let s = Signal::default();
        let mut cx = std::task::Context::from_waker(Waker::noop());
        s.raise();
        assert!(std::pin::pin!(s.wait()).as_mut().poll(&mut cx).is_ready());
        let mut wait = std::pin::pin!(s.wait());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        s.raise();
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn effects_encode_every_length_as_resp() {
        let mut e = Effects::new(true);
        let args: Vec<Vec<u8>> = [0usize, 1, 9, 10, 99, 100, 12345]
            .iter()
            .map(|&n| vec![b'x'; n])
            .collect();
        let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        e.push(0, &refs);
        let mut want = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*7\r\n".to_vec();
        for a in &args {
            want.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            want.extend_from_slice(a);
            want.extend_from_slice(b"\r\n");
        }
        assert_eq!(&e.take(0).unwrap().bytes[..], &want[..]);
    }

    #[test]
    fn keys_expired_in_any_database_become_dels_once() {
        use crate::store::{Str, Value};
        let mut store = crate::store::Store::new(16);
        let mut e = Effects::new(true);
        for (db, key) in [(7, &b"a"[..]), (15, &b"b"[..])] {
            store.dbs[db].set(key, Value::Str(Str::from_set(b"v")), false);
            assert!(store.dbs[db].set_expire(key, 1));
            assert!(!store.dbs[db].contains(key, 2), "expired on access");
        }
        e.take_expired(&mut store);
        let dels = e.take(0).unwrap().bytes;
        assert_eq!(
            &dels[..],
            &b"*2\r\n$6\r\nSELECT\r\n$1\r\n7\r\n*2\r\n$3\r\nDEL\r\n$1\r\na\r\n*2\r\n$6\r\nSELECT\r\n$2\r\n15\r\n*2\r\n$3\r\nDEL\r\n$1\r\nb\r\n"[..]
        );
        e.take_expired(&mut store);
        assert!(e.is_empty(), "drained once");
    }

    #[test]
    fn disabled_effects_cost_nothing() {
        let mut e = Effects::new(false);
        e.push(0, &[b"SET", b"k", b"v"]);
        assert!(e.is_empty());
    }
}
