//! The persistence core's seam. Shards describe the *effects* of their writes as RESP
//! commands in deterministic form (relative expiry as absolute PXAT, and so on), batch them
//! per shard, and send them to the persistence executor, which owns all disk I/O.
//!
//! In this build the persistence executor receives and counts the records; writing them to a
//! Redis 7 multi-part AOF is the persistence work that plugs in at [`run`].

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};

use crate::store::value::itoa_buf;

/// One batch of one shard's effects.
#[derive(Debug)]
pub struct Record {
    pub shard: usize,
    /// RESP-encoded commands; starts with a SELECT.
    pub bytes: Bytes,
    /// Number of commands in `bytes` (SELECTs included).
    pub commands: u64,
}

pub type RecordSender = ConnectedSender<Record>;
pub type RecordReceiver = ConnectedReceiver<Record>;

/// Counters INFO reads.
#[derive(Default)]
pub struct PersistStats {
    pub records: AtomicU64,
    pub commands: AtomicU64,
    pub bytes: AtomicU64,
}

/// A shard's pending write effects.
pub struct Effects {
    enabled: bool,
    buf: BytesMut,
    /// The database the last effect in `buf` was written against.
    db: Option<usize>,
    commands: u64,
}

fn put_bulk(buf: &mut BytesMut, b: &[u8]) {
    let mut n = itoa_buf::Buf::new();
    buf.put_u8(b'$');
    buf.put_slice(n.format(b.len() as i64));
    buf.put_slice(b"\r\n");
    buf.put_slice(b);
    buf.put_slice(b"\r\n");
}

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
        let mut n = itoa_buf::Buf::new();
        self.buf.put_u8(b'*');
        self.buf.put_slice(n.format(args.len() as i64));
        self.buf.put_slice(b"\r\n");
        for a in args {
            put_bulk(&mut self.buf, a);
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
        for (i, db) in store.dbs.iter_mut().enumerate() {
            if !db.expired.is_empty() {
                for k in db.expired.drain(..) {
                    crate::server::pubsub::note_expired(i, &k);
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
        Some(Record {
            shard,
            bytes: self.buf.split().freeze(),
            commands,
        })
    }
}

/// The persistence executor's loop: receives every shard's records until all shards close
/// their senders (shutdown), and accounts for them.
pub async fn run(receivers: Vec<RecordReceiver>, shared: std::sync::Arc<crate::server::ServerShared>) {
    let mut tasks = Vec::new();
    for rx in receivers {
        let shared = shared.clone();
        tasks.push(glommio::spawn_local(async move {
            let stats = &shared.persist;
            while let Some(rec) = rx.recv().await {
                stats.records.fetch_add(1, Ordering::Relaxed);
                stats.commands.fetch_add(rec.commands, Ordering::Relaxed);
                stats.bytes.fetch_add(rec.bytes.len() as u64, Ordering::Relaxed);
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
    fn disabled_effects_cost_nothing() {
        let mut e = Effects::new(false);
        e.push(0, &[b"SET", b"k", b"v"]);
        assert!(e.is_empty());
    }
}
