//! Shards: one glommio executor per shard, each owning its slice of every database.
//!
//! The hop API is how work crosses shards. Every message is an [`Op`], a closure run on the
//! target shard's thread with that shard; results come back on a oneshot channel.
//!
//! - [`Shard::hop`]: run on one shard.
//! - [`Shard::hop_all`] / [`Shard::hop_many`]: run on several shards in parallel, results in shard order.
//! - [`Shard::reserve`] / [`Shard::release`]: the coordinated multi-shard step. The
//!   coordinator reserves the shards' keyspaces in ascending shard order (so two
//!   coordinators never deadlock), runs its steps directly over them, then releases them.
//!
//! Every shard has a gate. While a coordinator holds it, ops that want the shard's data wait
//! in the gate's queue (in arrival order) and run when it is released; ops of the holder pass.
//! A reserved shard's thread does not touch its keyspace, so the coordinator's thread may:
//! the hand-over and hand-back are channel messages, which order the two threads' accesses.

pub mod runtime;
pub mod slot;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_channel::oneshot;
use glommio::channels::channel_mesh::Senders;

use crate::error::CmdError;
use crate::store::{Db, Store};

pub use slot::{key_slot, shard_of};

/// Work sent to a shard: run on its thread, with the shard.
pub type Op = Box<dyn FnOnce(&Rc<Shard>) + Send>;

pub struct Msg {
    /// The reservation this op belongs to (0: none). Ops of the gate's holder pass the gate.
    txn: u64,
    op: Op,
}

static NEXT_TXN: AtomicU64 = AtomicU64::new(1);

fn shard_gone() -> CmdError {
    CmdError::Static("ERR shard unavailable: the server is shutting down")
}

/// A pointer to a reserved shard's store. Sent from the shard to its coordinator.
struct StorePtr(*mut Store);
// SAFETY: the pointer is only dereferenced by the coordinator while it holds the shard's
// reservation, during which the owning thread does not touch the store (see module doc).
unsafe impl Send for StorePtr {}

/// The keyspaces of the shards a coordinator has reserved.
pub struct Lent {
    txn: u64,
    nshards: usize,
    stores: Stores,
}

/// One shard (a script or command sent to its shard, the commonest case: no allocation),
/// or any set of them.
enum Stores {
    One(usize, StorePtr),
    Many(Vec<Option<StorePtr>>),
}

impl Lent {
    /// The database slice holding `key`. Panics if its shard was not reserved: the
    /// coordinator reserves the shards of every key it will touch, so that is a bug.
    pub fn db(&mut self, db: usize, key: &[u8]) -> &mut Db {
        let shard = shard_of(key, self.nshards);
        &mut self.store(shard).dbs[db]
    }

    /// A reserved shard's whole store.
    pub fn store(&mut self, shard: usize) -> &mut Store {
        let ptr = match &self.stores {
            Stores::One(s, ptr) if *s == shard => Some(ptr),
            Stores::One(..) => None,
            Stores::Many(v) => v[shard].as_ref(),
        }
        .expect("key on a shard the coordinator did not reserve");
        // SAFETY: we hold the reservation (see StorePtr); `&mut self` makes this the only
        // live reference handed out.
        unsafe { &mut *ptr.0 }
    }

    pub fn nshards(&self) -> usize {
        self.nshards
    }

    /// True if the coordinator holds `shard`.
    pub fn holds(&self, shard: usize) -> bool {
        match &self.stores {
            Stores::One(s, _) => *s == shard,
            Stores::Many(v) => v.get(shard).is_some_and(|s| s.is_some()),
        }
    }

    pub fn shards(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nshards).filter(|&s| self.holds(s))
    }
}

#[derive(Default)]
struct Gate {
    holder: Cell<u64>,
    queue: RefCell<VecDeque<Msg>>,
}

impl Gate {
    fn admits(&self, txn: u64) -> bool {
        let h = self.holder.get();
        h == 0 || h == txn
    }
}

/// One shard: its keyspace, its gate and its endpoints. Lives on its own thread behind an `Rc`.
pub struct Shard {
    pub id: usize,
    pub nshards: usize,
    store: RefCell<Store>,
    gate: Gate,
    mesh: Senders<Msg>,
    /// Numbers this shard's own holds ([`Shard::hold_own`]).
    own_txns: Cell<u64>,
    /// Everything else a shard owns (clients, stats, config cache, effects): the server layer.
    pub local: crate::server::ShardLocal,
}

impl Shard {
    pub fn new(id: usize, nshards: usize, store: Store, mesh: Senders<Msg>, local: crate::server::ShardLocal) -> Shard {
        Shard {
            id,
            nshards,
            store: RefCell::new(store),
            gate: Gate::default(),
            mesh,
            own_txns: Cell::new(0),
            local,
        }
    }

    /// True when no coordinator holds this shard: local work may touch the store directly.
    pub fn is_open(&self) -> bool {
        self.gate.holder.get() == 0
    }

    /// Runs `f` over this shard's store. Callers check [`Shard::is_open`] first, or run inside
    /// an op (which the gate admitted).
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        debug_assert!(self.is_open(), "store touched while lent to a coordinator");
        f(&mut self.store.borrow_mut())
    }

    /// Delivers an op that arrived for this shard (from the mesh or from this shard itself).
    pub fn submit(self: &Rc<Self>, msg: Msg) {
        if self.gate.admits(msg.txn) {
            (msg.op)(self);
            self.drain();
        } else {
            self.gate.queue.borrow_mut().push_back(msg);
        }
    }

    /// Runs queued ops while the gate is open (a queued reservation closes it again).
    fn drain(self: &Rc<Self>) {
        while self.is_open() {
            let next = self.gate.queue.borrow_mut().pop_front();
            match next {
                Some(msg) => (msg.op)(self),
                None => break,
            }
        }
    }

    async fn send(self: &Rc<Self>, target: usize, msg: Msg) -> Result<(), CmdError> {
        if target == self.id {
            self.submit(msg);
            Ok(())
        } else {
            // What happens there may follow from what happened here (a connection's next
            // command, a coordinator's step): this shard's pending effects go first in the file.
            self.flush_effects();
            self.mesh.send_to(target, msg).await.map_err(|_| shard_gone())
        }
    }

    /// Runs `f` on shard `target` (here, if it is this shard) once its gate admits it.
    pub async fn hop<R, F>(self: &Rc<Self>, target: usize, f: F) -> Result<R, CmdError>
    where
        R: Send + 'static,
        F: FnOnce(&Rc<Shard>) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let op: Op = Box::new(move |sh| {
            let _ = tx.send(f(sh));
        });
        self.send(target, Msg { txn: 0, op }).await?;
        rx.await.map_err(|_| shard_gone())
    }

    /// Runs `f` on each of `targets` in parallel; results in the order of `targets`.
    pub async fn hop_many<R, F>(self: &Rc<Self>, targets: &[usize], f: F) -> Result<Vec<R>, CmdError>
    where
        R: Send + 'static,
        F: Fn(&Rc<Shard>) -> R + Send + Sync + Clone + 'static,
    {
        let mut rxs = Vec::with_capacity(targets.len());
        for &t in targets {
            let (tx, rx) = oneshot::channel();
            let f = f.clone();
            let op: Op = Box::new(move |sh| {
                let _ = tx.send(f(sh));
            });
            self.send(t, Msg { txn: 0, op }).await?;
            rxs.push(rx);
        }
        let mut out = Vec::with_capacity(rxs.len());
        for rx in rxs {
            out.push(rx.await.map_err(|_| shard_gone())?);
        }
        Ok(out)
    }

    /// Runs `f` on every shard in parallel; results indexed by shard.
    pub async fn hop_all<R, F>(self: &Rc<Self>, f: F) -> Result<Vec<R>, CmdError>
    where
        R: Send + 'static,
        F: Fn(&Rc<Shard>) -> R + Send + Sync + Clone + 'static,
    {
        let all: Vec<usize> = (0..self.nshards).collect();
        self.hop_many(&all, f).await
    }

    /// Runs `f` over shard `target`'s store.
    pub async fn hop_store<R, F>(self: &Rc<Self>, target: usize, f: F) -> Result<R, CmdError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> R + Send + 'static,
    {
        self.hop(target, move |sh| sh.with_store(f)).await
    }

    /// Reserves the keyspaces of `shards` (any order, duplicates allowed) for a coordinated
    /// step: ascending order, one at a time, so coordinators never deadlock.
    pub async fn reserve(self: &Rc<Self>, shards: &[usize]) -> Result<Lent, CmdError> {
        // Only this shard, and nothing queued at its gate: take it now (no op, no channel).
        if shards == [self.id] {
            if let Some(lent) = self.hold_own() {
                // The step's record must follow every write it may observe. (A script held
                // here cuts them itself, and only if it wrote: `send_effects`.)
                self.flush_effects();
                return Ok(lent);
            }
        }
        let mut order: Vec<usize> = shards.to_vec();
        order.sort_unstable();
        order.dedup();
        let txn = NEXT_TXN.fetch_add(1, Ordering::Relaxed);
        let mut lent = Lent {
            txn,
            nshards: self.nshards,
            stores: Stores::Many((0..self.nshards).map(|_| None).collect()),
        };
        for s in order {
            let (tx, rx) = oneshot::channel::<StorePtr>();
            let op: Op = Box::new(move |sh| {
                // Effects this shard has not cut yet precede the coordinator's record.
                sh.flush_effects();
                sh.gate.holder.set(txn);
                if tx.send(StorePtr(sh.store.as_ptr())).is_err() {
                    // The coordinator is gone: give the shard back at once.
                    sh.gate.holder.set(0);
                }
            });
            let got = match self.send(s, Msg { txn: 0, op }).await {
                Ok(()) => rx.await.map_err(|_| shard_gone()),
                Err(e) => Err(e),
            };
            match got {
                Ok(ptr) => {
                    if let Stores::Many(v) = &mut lent.stores {
                        v[s] = Some(ptr);
                    }
                }
                Err(e) => {
                    self.release(lent).await;
                    return Err(e);
                }
            }
        }
        Ok(lent)
    }

    /// Closes this shard's gate for a step run on its own thread (a script run here): no
    /// op, no message. None if the gate is held, or ops wait at it (they go first).
    pub fn hold_own(&self) -> Option<Lent> {
        if !self.is_open() || !self.gate.queue.borrow().is_empty() {
            return None;
        }
        // This shard's own numbering: no atomic that every shard's scripts would share.
        // (Reservations count up from 1 in NEXT_TXN and never reach 2^48.)
        let n = self.own_txns.get().wrapping_add(1) & ((1 << 48) - 1);
        self.own_txns.set(n);
        let txn = ((self.id as u64 + 1) << 48) | n;
        self.gate.holder.set(txn);
        Some(Lent {
            txn,
            nshards: self.nshards,
            stores: Stores::One(self.id, StorePtr(self.store.as_ptr())),
        })
    }

    /// Opens the gate [`Shard::hold_own`] closed: blocked clients the step's writes made
    /// ready are served, then the ops that queued meanwhile run.
    pub fn release_own(self: &Rc<Self>, lent: Lent) {
        debug_assert!(lent.holds(self.id) && self.gate.holder.get() == lent.txn);
        self.gate.holder.set(0);
        if self.with_store(|st| st.blocked_waiters) > 0 {
            crate::server::blocking::serve_ready(self);
        }
        self.drain();
    }

    /// Gives reserved shards back; their queued ops run.
    pub async fn release(self: &Rc<Self>, lent: Lent) {
        if lent.txn >> 48 == self.id as u64 + 1 {
            self.release_own(lent);
            return;
        }
        let txn = lent.txn;
        for s in lent.shards().collect::<Vec<_>>() {
            // Clients blocked on keys the coordinator's command filled are served now,
            // after the whole step: never in the middle of a transaction or script.
            let op: Op = Box::new(move |sh| {
                sh.gate.holder.set(0);
                if sh.with_store(|st| st.blocked_waiters) > 0 {
                    crate::server::blocking::serve_ready(sh);
                }
            });
            // A shard that is gone (shutdown) has nothing left to release.
            let _ = self.send(s, Msg { txn, op }).await;
        }
    }

    /// Runs `f` on every shard `lent` holds, on that shard's thread, while the reservation
    /// lasts (ops of the holder pass the gate): per-shard state beyond the store that must
    /// change at one instant everywhere (the AOF's cut turning effects on or off).
    pub async fn hop_lent<F>(self: &Rc<Self>, lent: &Lent, f: F) -> Result<(), CmdError>
    where
        F: Fn(&Rc<Shard>) + Send + Sync + Clone + 'static,
    {
        let mut rxs = Vec::new();
        for s in lent.shards().collect::<Vec<_>>() {
            let (tx, rx) = oneshot::channel();
            let f = f.clone();
            let op: Op = Box::new(move |sh| {
                f(sh);
                let _ = tx.send(());
            });
            self.send(s, Msg { txn: lent.txn, op }).await?;
            rxs.push(rx);
        }
        for rx in rxs {
            rx.await.map_err(|_| shard_gone())?;
        }
        Ok(())
    }

    /// Runs `f` on this shard's store now if the gate is open, else waits its turn.
    pub async fn local<R, F>(self: &Rc<Self>, f: F) -> Result<R, CmdError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> R + Send + 'static,
    {
        if self.is_open() {
            Ok(self.with_store(f))
        } else {
            self.hop_store(self.id, f).await
        }
    }
}

/// The op loop: delivers the ops other shards send to this one.
pub async fn serve_mesh(shard: Rc<Shard>, mut receivers: glommio::channels::channel_mesh::Receivers<Msg>) {
    let streams = receivers.streams();
    let mut tasks = Vec::new();
    for (_, rx) in streams {
        let shard = shard.clone();
        tasks.push(glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                shard.submit(msg);
            }
        }));
    }
    for t in tasks {
        t.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, SharedConfig};
    use crate::persist::{Core, Effects, Record};
    use crate::server::{ServerShared, ShardLocal};
    use glommio::channels::channel_mesh::{Full, MeshBuilder};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Duration;

    /// Runs `n` shards (one executor each, AOF effects on) until their bodies return; every
    /// shard serves the mesh until all are done. The records they sent, in arrival order.
    fn run_shards<F, Fut>(n: usize, body: F) -> Vec<Record>
    where
        F: Fn(Rc<Shard>) -> Fut + Send + Sync + Clone + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let shared = Arc::new(ServerShared::new(
            SharedConfig::new(Config {
                appendonly: true,
                ..Config::default()
            }),
            n,
            "test".into(),
        ));
        let core = Core::new(n);
        let mesh = MeshBuilder::<Msg, Full>::full(n, 16);
        let done = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..n)
            .map(|id| {
                let (shared, core, mesh, done, body) =
                    (shared.clone(), core.clone(), mesh.clone(), done.clone(), body.clone());
                glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                    .io_memory(256 * 1024)
                    .spawn(move || async move {
                        let (senders, receivers) = mesh.join().await.unwrap();
                        let local = ShardLocal::new(shared, Some(core), id as u64 + 1);
                        let sh = Rc::new(Shard::new(id, n, Store::new(16), senders, local));
                        let mesh_task = glommio::spawn_local(serve_mesh(sh.clone(), receivers));
                        body(sh).await;
                        done.fetch_add(1, Ordering::SeqCst);
                        while done.load(Ordering::SeqCst) < n as u64 {
                            glommio::timer::sleep(Duration::from_millis(1)).await;
                        }
                        mesh_task.cancel().await;
                    })
                    .unwrap()
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let mut records = Vec::new();
        core.take(&mut records);
        records
    }

    fn set(sh: &Shard, key: &str) {
        sh.local.effects.borrow_mut().push(0, &[b"SET", key.as_bytes(), b"v"]);
    }

    /// The ticket of the record whose commands mention `key`.
    fn ticket_of(records: &[Record], key: &str) -> u64 {
        let needle = format!("\r\n{key}\r\n");
        records
            .iter()
            .find(|r| r.bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .unwrap_or_else(|| panic!("no record holds {key}: {records:?}"))
            .ticket
    }

    #[test]
    fn reserving_the_own_shard_cuts_its_pending_effects_before_the_step_record() {
        let records = run_shards(1, |sh| async move {
            set(&sh, "before");
            let lent = sh.reserve(&[0]).await.unwrap();
            let mut step = Effects::new(true);
            step.push(0, &[b"SET", b"step", b"v"]);
            sh.send_effects_atomic(step);
            sh.release(lent).await;
        });
        assert!(ticket_of(&records, "before") < ticket_of(&records, "step"));
    }

    #[test]
    fn a_reserved_shard_cuts_its_pending_effects_before_the_coordinators_record() {
        let pending = Arc::new(AtomicBool::new(false));
        let records = run_shards(2, move |sh| {
            let pending = pending.clone();
            async move {
                if sh.id == 1 {
                    // Effects of an inline command, waiting for the end of the turn.
                    set(&sh, "remote-before");
                    pending.store(true, Ordering::SeqCst);
                    return;
                }
                while !pending.load(Ordering::SeqCst) {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
                let lent = sh.reserve(&[1]).await.unwrap();
                let mut step = Effects::new(true);
                step.push(0, &[b"SET", b"step", b"v"]);
                sh.send_effects_atomic(step);
                sh.release(lent).await;
            }
        });
        assert!(ticket_of(&records, "remote-before") < ticket_of(&records, "step"));
    }

    #[test]
    fn a_hop_to_another_shard_cuts_the_senders_pending_effects_first() {
        let records = run_shards(2, |sh| async move {
            if sh.id == 1 {
                return;
            }
            set(&sh, "here-first");
            sh.hop(1, |sh| {
                set(sh, "there-after");
                sh.flush_effects();
            })
            .await
            .unwrap();
        });
        assert!(ticket_of(&records, "here-first") < ticket_of(&records, "there-after"));
    }
}
