//! `loadtest bench`: closed-loop throughput, like redis-benchmark.
//!
//! Each client keeps one pipeline of `--pipeline` commands in flight: it writes the whole
//! batch, waits for every reply, records each reply's latency from the batch's write (as
//! redis-benchmark does), and only then sends the next batch. Clients are spread over
//! `--threads` event loops (epoll, level-triggered, non-blocking sockets); one thread is
//! enough to saturate a one-core server.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::client::{Conn, ConnOpts};
use crate::resp::{skip_reply, Kind};
use crate::stats::{self, new_hist};
use crate::sys::{mono_ns, Epoll, HANGUP, READABLE, WRITABLE};
use crate::workload::{Gen, Test};

#[derive(Debug, Clone)]
pub struct BenchCfg {
    pub conn: ConnOpts,
    pub clients: usize,
    pub pipeline: usize,
    pub requests: u64,
    pub duration: Option<Duration>,
    pub threads: usize,
    pub keyspace: u64,
    pub data_size: usize,
    pub seed: u64,
    /// Abort a test when no reply at all arrives for this long.
    pub stall_timeout: Duration,
}

pub struct TestResult {
    pub name: String,
    /// Replies received, errors included.
    pub completed: u64,
    pub errors: u64,
    pub elapsed_s: f64,
    pub hist: Histogram<u64>,
    pub first_error: Option<String>,
    /// Why the test could not finish (connection lost, protocol error, stall).
    pub fatal: Option<String>,
}

impl TestResult {
    pub fn rps(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.completed as f64 / self.elapsed_s
        } else {
            0.0
        }
    }

    pub fn failed(&self) -> bool {
        self.errors > 0 || self.fatal.is_some()
    }
}

/// What may still be sent: a count shared by all threads, or a deadline.
enum Budget {
    Requests(AtomicI64),
    Until(u64),
}

impl Budget {
    /// How many of `want` commands may be sent now (0: this client is finished).
    fn claim(&self, want: usize) -> usize {
        match self {
            Budget::Until(deadline) => {
                if mono_ns() < *deadline {
                    want
                } else {
                    0
                }
            }
            Budget::Requests(left) => {
                let mut cur = left.load(Ordering::Relaxed);
                loop {
                    if cur <= 0 {
                        return 0;
                    }
                    let take = cur.min(want as i64);
                    match left.compare_exchange_weak(cur, cur - take, Ordering::Relaxed, Ordering::Relaxed) {
                        Ok(_) => return take as usize,
                        Err(now) => cur = now,
                    }
                }
            }
        }
    }
}

struct Client {
    stream: TcpStream,
    fd: RawFd,
    gen: Gen,
    wbuf: Vec<u8>,
    woff: usize,
    rbuf: Vec<u8>,
    rpos: usize,
    rlen: usize,
    pending: usize,
    sent_at: u64,
    want_write: bool,
    done: bool,
}

#[derive(Default)]
struct ThreadOut {
    hist: Option<Histogram<u64>>,
    completed: u64,
    errors: u64,
    first_error: Option<String>,
    fatal: Option<String>,
    last_reply_ns: u64,
}

/// Runs one test to completion and returns its figures.
pub fn run_test(cfg: &BenchCfg, test: Test, sha: &str) -> Result<TestResult, String> {
    let clients = cfg.clients.max(1);
    let threads = cfg.threads.clamp(1, clients);
    let mut per_thread: Vec<Vec<Client>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..clients {
        let stream = Conn::connect(&cfg.conn)?.into_stream();
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        let fd = stream.as_raw_fd();
        per_thread[i % threads].push(Client {
            stream,
            fd,
            gen: Gen::new(
                test,
                cfg.data_size,
                cfg.keyspace,
                sha,
                cfg.seed.wrapping_mul(1_000_003) + i as u64,
            ),
            wbuf: Vec::with_capacity(4096),
            woff: 0,
            rbuf: vec![0; 64 * 1024],
            rpos: 0,
            rlen: 0,
            pending: 0,
            sent_at: 0,
            want_write: false,
            done: false,
        });
    }

    let start = mono_ns();
    let budget = Arc::new(match cfg.duration {
        Some(d) => Budget::Until(start + d.as_nanos() as u64),
        None => Budget::Requests(AtomicI64::new(cfg.requests as i64)),
    });
    let pipeline = cfg.pipeline.max(1);
    let stall = cfg.stall_timeout.as_nanos() as u64;
    let handles: Vec<_> = per_thread
        .into_iter()
        .map(|conns| {
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || run_thread(conns, &budget, pipeline, stall))
        })
        .collect();

    let mut res = TestResult {
        name: test.name(),
        completed: 0,
        errors: 0,
        elapsed_s: 0.0,
        hist: new_hist(),
        first_error: None,
        fatal: None,
    };
    let mut last = start;
    for h in handles {
        let out = h.join().map_err(|_| "benchmark thread panicked".to_string())?;
        res.completed += out.completed;
        res.errors += out.errors;
        if let Some(h) = &out.hist {
            res.hist.add(h).map_err(|e| e.to_string())?;
        }
        res.first_error = res.first_error.or(out.first_error);
        res.fatal = res.fatal.or(out.fatal);
        last = last.max(out.last_reply_ns);
    }
    res.elapsed_s = (last - start) as f64 / 1e9;
    Ok(res)
}

fn run_thread(mut conns: Vec<Client>, budget: &Budget, pipeline: usize, stall_ns: u64) -> ThreadOut {
    let mut out = ThreadOut {
        hist: Some(new_hist()),
        ..Default::default()
    };
    if let Err(e) = event_loop(&mut conns, budget, pipeline, stall_ns, &mut out) {
        out.fatal.get_or_insert(e);
    }
    out
}

fn event_loop(
    conns: &mut [Client],
    budget: &Budget,
    pipeline: usize,
    stall_ns: u64,
    out: &mut ThreadOut,
) -> Result<(), String> {
    let mut ep = Epoll::new().map_err(|e| format!("epoll: {e}"))?;
    let mut active = 0usize;
    for (tok, c) in conns.iter_mut().enumerate() {
        ep.add(c.fd, tok as u64, READABLE)
            .map_err(|e| format!("epoll_ctl: {e}"))?;
        if issue(c, &ep, tok, budget, pipeline).map_err(|e| format!("write: {e}"))? {
            active += 1;
        }
    }
    let mut hist = out.hist.take().expect("histogram");
    let mut events = Vec::with_capacity(1024);
    let mut last_progress = mono_ns();
    while active > 0 {
        ep.wait(100, &mut events).map_err(|e| format!("epoll_wait: {e}"))?;
        if events.is_empty() {
            if mono_ns() - last_progress > stall_ns {
                let pending: usize = conns.iter().filter(|c| !c.done).map(|c| c.pending).sum();
                out.errors += pending as u64;
                out.hist = Some(hist);
                return Err(format!(
                    "no reply for {}s with {pending} requests outstanding",
                    stall_ns / 1_000_000_000
                ));
            }
            continue;
        }
        for &(tok, ev) in &events {
            let c = &mut conns[tok as usize];
            if c.done {
                continue;
            }
            if ev & WRITABLE != 0 {
                flush(c, &ep, tok as usize).map_err(|e| format!("write: {e}"))?;
            }
            if ev & (READABLE | HANGUP) == 0 {
                continue;
            }
            // Make room, then read once: level-triggered epoll reports what is left.
            if c.rpos == c.rlen {
                c.rpos = 0;
                c.rlen = 0;
            } else if c.rbuf.len() - c.rlen < 4096 {
                c.rbuf.copy_within(c.rpos..c.rlen, 0);
                c.rlen -= c.rpos;
                c.rpos = 0;
                if c.rbuf.len() - c.rlen < 4096 {
                    let n = c.rbuf.len() * 2;
                    c.rbuf.resize(n, 0);
                }
            }
            let n = match (&c.stream).read(&mut c.rbuf[c.rlen..]) {
                Ok(0) => {
                    out.errors += c.pending as u64;
                    out.hist = Some(hist);
                    return Err(format!(
                        "connection closed by server with {} replies outstanding",
                        c.pending
                    ));
                }
                Ok(n) => n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => continue,
                Err(e) => {
                    out.errors += c.pending as u64;
                    out.hist = Some(hist);
                    return Err(format!("read: {e}"));
                }
            };
            c.rlen += n;
            let now = mono_ns();
            last_progress = now;
            loop {
                let parsed = match skip_reply(&c.rbuf[c.rpos..c.rlen]) {
                    Ok(p) => p,
                    Err(e) => {
                        out.hist = Some(hist);
                        return Err(format!("protocol error from server: {e}"));
                    }
                };
                let Some((len, kind)) = parsed else { break };
                let reply = &c.rbuf[c.rpos..c.rpos + len];
                c.rpos += len;
                match kind {
                    Kind::Push => continue,
                    Kind::Error => {
                        out.errors += 1;
                        if out.first_error.is_none() {
                            out.first_error = Some(error_text(reply));
                        }
                    }
                    Kind::Reply => {}
                }
                if c.pending == 0 {
                    out.hist = Some(hist);
                    return Err("server sent a reply nobody asked for".into());
                }
                c.pending -= 1;
                out.completed += 1;
                stats::record(&mut hist, now - c.sent_at);
            }
            out.last_reply_ns = now;
            if c.pending == 0 && !issue(c, &ep, tok as usize, budget, pipeline).map_err(|e| format!("write: {e}"))? {
                active -= 1;
            }
        }
    }
    out.hist = Some(hist);
    Ok(())
}

/// Sends the client's next batch; `Ok(false)` when the budget is spent (client finished).
fn issue(c: &mut Client, ep: &Epoll, tok: usize, budget: &Budget, pipeline: usize) -> io::Result<bool> {
    let n = budget.claim(pipeline);
    if n == 0 {
        c.done = true;
        let _ = ep.delete(c.fd);
        return Ok(false);
    }
    for _ in 0..n {
        c.gen.push(&mut c.wbuf);
    }
    c.pending = n;
    c.sent_at = mono_ns();
    flush(c, ep, tok)?;
    Ok(true)
}

fn flush(c: &mut Client, ep: &Epoll, tok: usize) -> io::Result<()> {
    while c.woff < c.wbuf.len() {
        match (&c.stream).write(&c.wbuf[c.woff..]) {
            Ok(n) => c.woff += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !c.want_write {
                    ep.modify(c.fd, tok as u64, READABLE | WRITABLE)?;
                    c.want_write = true;
                }
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    c.wbuf.clear();
    c.woff = 0;
    if c.want_write {
        ep.modify(c.fd, tok as u64, READABLE)?;
        c.want_write = false;
    }
    Ok(())
}

/// The message of an error reply, without its type byte and CRLF.
pub fn error_text(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    let text = text.trim_end_matches("\r\n");
    match text.strip_prefix('-') {
        Some(t) => t.to_string(),
        // Blob error `!<len>\r\n<msg>`
        None => text.split_once("\r\n").map(|(_, m)| m).unwrap_or(text).to_string(),
    }
}
