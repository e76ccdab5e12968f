//! `loadtest latency`: an open-loop load at a fixed rate, corrected for coordinated omission.
//!
//! Request `i` is due at `start + i / rate`, whatever happened to earlier ones: when the
//! server stalls, requests keep being sent on schedule (pipelined onto the connections), and
//! each one's latency is counted from when it was *due*, not from when it could be sent. So
//! a 200 ms stall shows up as ~rate x 0.2 s slow requests, as users would see it, instead of
//! one slow request (which is what a closed-loop tool like redis-benchmark reports).
//!
//! Wake-ups come from a timerfd armed at the next due time (microsecond precision, no
//! spinning): the load generator leaves its core idle between requests.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::bench::error_text;
use crate::client::{Conn, ConnOpts};
use crate::resp::{skip_reply, Kind};
use crate::stats::{self, new_hist, summarize};
use crate::sys::{mono_ns, Epoll, TimerFd, HANGUP, READABLE, WRITABLE};
use crate::workload::{Gen, Test};

#[derive(Debug, Clone)]
pub struct LatencyCfg {
    pub conn: ConnOpts,
    pub clients: usize,
    pub rate: u64,
    pub duration: Duration,
    pub warmup: Duration,
    pub test: Test,
    pub data_size: usize,
    pub keyspace: u64,
    pub seed: u64,
    /// Print a line every this often (zero: never).
    pub interval: Duration,
    /// After the last request is due, wait this long for outstanding replies.
    pub drain: Duration,
}

pub struct LatencyResult {
    pub sent: u64,
    pub completed: u64,
    pub errors: u64,
    /// Requests never answered (counted in `errors` too).
    pub unanswered: u64,
    pub first_error: Option<String>,
    pub fatal: Option<String>,
    /// Latency from the due time (coordinated-omission corrected): what users see.
    pub corrected: Histogram<u64>,
    /// Latency from the actual write: the server's service time plus queueing in the socket.
    pub service: Histogram<u64>,
    /// Largest delay between a request's due time and its write (load generator lag).
    pub max_send_lag_ns: u64,
    pub measured_s: f64,
}

struct Client {
    stream: TcpStream,
    fd: RawFd,
    wbuf: Vec<u8>,
    woff: usize,
    rbuf: Vec<u8>,
    rpos: usize,
    rlen: usize,
    /// (due, sent) of each request in flight, in order.
    inflight: VecDeque<(u64, u64)>,
    want_write: bool,
}

const TIMER: u64 = u64::MAX;

pub fn run(cfg: &LatencyCfg) -> Result<LatencyResult, String> {
    if cfg.rate == 0 {
        return Err("--rate must be positive".into());
    }
    let mut conns = Vec::new();
    for _ in 0..cfg.clients.max(1) {
        let stream = Conn::connect(&cfg.conn)?.into_stream();
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        let fd = stream.as_raw_fd();
        conns.push(Client {
            stream,
            fd,
            wbuf: Vec::with_capacity(4096),
            woff: 0,
            rbuf: vec![0; 64 * 1024],
            rpos: 0,
            rlen: 0,
            inflight: VecDeque::new(),
            want_write: false,
        });
    }
    let mut ep = Epoll::new().map_err(|e| e.to_string())?;
    let timer = TimerFd::new().map_err(|e| e.to_string())?;
    ep.add(timer.fd, TIMER, READABLE).map_err(|e| e.to_string())?;
    for (i, c) in conns.iter().enumerate() {
        ep.add(c.fd, i as u64, READABLE).map_err(|e| e.to_string())?;
    }

    let mut gen = Gen::new(cfg.test, cfg.data_size, cfg.keyspace, "", cfg.seed);
    let total = (cfg.rate as u128 * (cfg.warmup + cfg.duration).as_nanos() / 1_000_000_000) as u64;
    let start = mono_ns() + 1_000_000; // 1 ms from now, so request 0 is not already late
    let due_at = |i: u64| start + (i as u128 * 1_000_000_000 / cfg.rate as u128) as u64;
    let measure_from = start + cfg.warmup.as_nanos() as u64;

    let mut res = LatencyResult {
        sent: 0,
        completed: 0,
        errors: 0,
        unanswered: 0,
        first_error: None,
        fatal: None,
        corrected: new_hist(),
        service: new_hist(),
        max_send_lag_ns: 0,
        measured_s: cfg.duration.as_secs_f64(),
    };
    let mut interval_hist = new_hist();
    let interval_ns = cfg.interval.as_nanos() as u64;
    let mut next_report = if interval_ns > 0 { start + interval_ns } else { u64::MAX };
    let mut interval_done = 0u64;
    let mut interval_errors = 0u64;
    let mut rr = 0usize;
    let mut sent = 0u64;
    let mut drain_deadline = u64::MAX;
    let mut events = Vec::with_capacity(1024);
    let mut dirty: Vec<usize> = Vec::new();
    timer.arm_at(start).map_err(|e| e.to_string())?;

    let outcome: Result<(), String> = 'run: loop {
        let now = mono_ns();
        // Send everything that is due.
        if sent < total {
            let due_n = if now < start {
                0
            } else {
                (((now - start) as u128 * cfg.rate as u128 / 1_000_000_000) as u64 + 1).min(total)
            };
            while sent < due_n {
                let due = due_at(sent);
                res.max_send_lag_ns = res.max_send_lag_ns.max(now.saturating_sub(due));
                let c = &mut conns[rr];
                if c.wbuf.is_empty() {
                    dirty.push(rr);
                }
                gen.push(&mut c.wbuf);
                c.inflight.push_back((due, now));
                rr = (rr + 1) % conns.len();
                sent += 1;
            }
            for &i in &dirty {
                if let Err(e) = flush(&mut conns[i], &ep, i) {
                    break 'run Err(format!("write: {e}"));
                }
            }
            dirty.clear();
            if sent < total {
                if let Err(e) = timer.arm_at(due_at(sent)) {
                    break 'run Err(format!("timerfd: {e}"));
                }
            } else {
                drain_deadline = now + cfg.drain.as_nanos() as u64;
            }
        }
        let outstanding: usize = conns.iter().map(|c| c.inflight.len()).sum();
        if sent >= total && outstanding == 0 {
            break Ok(());
        }
        if now > drain_deadline {
            res.unanswered = outstanding as u64;
            res.errors += outstanding as u64;
            break Err(format!(
                "{outstanding} requests still unanswered {}s after the last one was due",
                cfg.drain.as_secs()
            ));
        }
        if now >= next_report {
            let s = summarize(&interval_hist);
            let t = (now - start) as f64 / 1e9;
            println!(
                "t={t:>6.1}s  {:>8.0} req/s  {}  errors={interval_errors}",
                interval_done as f64 / (interval_ns as f64 / 1e9),
                s.line()
            );
            interval_hist.reset();
            interval_done = 0;
            interval_errors = 0;
            next_report += interval_ns;
        }

        if let Err(e) = ep.wait(100, &mut events) {
            break Err(format!("epoll_wait: {e}"));
        }
        for &(tok, ev) in &events {
            if tok == TIMER {
                timer.clear();
                continue;
            }
            let c = &mut conns[tok as usize];
            if ev & WRITABLE != 0 {
                if let Err(e) = flush(c, &ep, tok as usize) {
                    break 'run Err(format!("write: {e}"));
                }
            }
            if ev & (READABLE | HANGUP) == 0 {
                continue;
            }
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
                    res.unanswered += c.inflight.len() as u64;
                    res.errors += c.inflight.len() as u64;
                    break 'run Err("connection closed by server".into());
                }
                Ok(n) => n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => continue,
                Err(e) => break 'run Err(format!("read: {e}")),
            };
            c.rlen += n;
            let now = mono_ns();
            loop {
                let (len, kind) = match skip_reply(&c.rbuf[c.rpos..c.rlen]) {
                    Ok(Some(p)) => p,
                    Ok(None) => break,
                    Err(e) => break 'run Err(format!("protocol error from server: {e}")),
                };
                let reply_at = c.rpos;
                c.rpos += len;
                if kind == Kind::Push {
                    continue;
                }
                let Some((due, sent_at)) = c.inflight.pop_front() else {
                    break 'run Err("server sent a reply nobody asked for".into());
                };
                if kind == Kind::Error {
                    res.errors += 1;
                    interval_errors += 1;
                    if res.first_error.is_none() {
                        res.first_error = Some(error_text(&c.rbuf[reply_at..reply_at + len]));
                    }
                }
                res.completed += 1;
                interval_done += 1;
                stats::record(&mut interval_hist, now - due);
                if due >= measure_from {
                    stats::record(&mut res.corrected, now - due);
                    stats::record(&mut res.service, now - sent_at);
                }
            }
        }
    };
    res.sent = sent;
    if let Err(e) = outcome {
        res.fatal = Some(e);
    }
    Ok(res)
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
