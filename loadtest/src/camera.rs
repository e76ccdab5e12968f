//! `loadtest camera`: a home-security camera pipeline, end to end, with a full audit.
//!
//! ```text
//! producers (one thread each)                 consumers (one thread each)
//!   SET dedupe:{id} 1 NX EX 30   drop dups      BRPOP detections:cam-00 .. cam-NN 0.1
//!   INCR rl:{cam}:{sec} (+EXPIRE 2)  limit       ok:   HSET job:{id} status done
//!   HSET job:{id} status queued ...              fail: LPUSH retry:{worker}, LMOVE retry:{worker} dlq
//!   LPUSH detections:{cam} <json>                      HSET job:{id} status failed
//!                                                PUBLISH events <json>  ---> subscribers
//! ```
//!
//! Every reply is checked. At the end the run is audited: every queued event consumed exactly
//! once or found in the DLQ, queues empty, duplicates all rejected, every published event
//! delivered to every subscriber, every job hash in its final state. Any mismatch or error
//! reply fails the run (exit status 1).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use crate::client::{Conn, ConnOpts, TIMEOUT};
use crate::resp::Value;
use crate::stats::{self, fmt_us, new_hist, summarize};
use crate::sys::mono_ns;
use crate::workload::Rng;

#[derive(Debug, Clone)]
pub struct CameraCfg {
    pub conn: ConnOpts,
    pub duration: Duration,
    pub cameras: usize,
    pub producers: usize,
    pub consumers: usize,
    pub subscribers: usize,
    /// Detection events per second over all producers (0: as fast as they can).
    pub rate: u64,
    /// Accepted events per camera per second before the rate limiter drops them.
    pub rate_limit: u64,
    pub fail_rate: f64,
    pub dup_rate: f64,
    pub drain: Duration,
    pub keep: bool,
    pub seed: u64,
}

const LABELS: [&str; 5] = ["person", "car", "package", "animal", "bicycle"];

fn queue_key(cam: usize) -> String {
    format!("detections:cam-{cam:02}")
}

fn retry_key(worker: usize) -> String {
    format!("retry:{worker}")
}

/// Per-operation latency histograms of one thread.
#[derive(Default)]
struct Ops(BTreeMap<&'static str, Histogram<u64>>);

impl Ops {
    fn time(&mut self, op: &'static str, conn: &mut Conn, args: &[&[u8]]) -> Result<Value, String> {
        let t0 = mono_ns();
        let r = conn.cmd(args);
        if r.is_ok() {
            stats::record(self.0.entry(op).or_insert_with(new_hist), mono_ns() - t0);
        }
        r
    }

    fn merge(&mut self, other: Ops) {
        for (k, h) in other.0 {
            match self.0.get_mut(k) {
                Some(mine) => mine.add(&h).expect("same bounds"),
                None => {
                    self.0.insert(k, h);
                }
            }
        }
    }
}

struct Shared {
    cfg: CameraCfg,
    run_id: String,
    stop_producing: AtomicBool,
    producers_done: AtomicBool,
    produced: AtomicU64,
    consumed: AtomicU64,
    published: AtomicU64,
    /// Subscribers every PUBLISH must reach (PUBSUB NUMSUB once all have subscribed).
    receivers: AtomicU64,
    subs_ready: AtomicUsize,
    /// Messages each subscriber must get; u64::MAX until the consumers are done.
    expected_messages: AtomicU64,
    /// Deadlines on `mono_ns`; u64::MAX until set.
    drain_deadline: AtomicU64,
    /// When an event was last consumed (or production stopped), on `mono_ns`.
    last_progress: AtomicU64,
    subs_deadline: AtomicU64,
    errors: AtomicU64,
    error_samples: Mutex<Vec<String>>,
}

impl Shared {
    fn error(&self, msg: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut s = self.error_samples.lock().unwrap_or_else(|p| p.into_inner());
        if s.len() < 20 {
            s.push(msg);
        }
    }
}

#[derive(Default)]
struct ProducerOut {
    ops: Ops,
    accepted: Vec<String>,
    dup_sent: u64,
    dup_rejected: u64,
    rate_limited: u64,
    /// Ids dropped by the rate limiter (their dedupe keys exist).
    limited_ids: Vec<String>,
}

#[derive(Default)]
struct ConsumerOut {
    ops: Ops,
    ok: Vec<String>,
    failed: Vec<String>,
}

struct SubscriberOut {
    received: u64,
    e2e: Histogram<u64>,
}

/// Extracts `"field":"value"` or `"field":123` from our own flat JSON.
fn json_field<'a>(json: &'a str, field: &str) -> Option<&'a str> {
    let pat = format!("\"{field}\":");
    let start = json.find(&pat)? + pat.len();
    let rest = &json[start..];
    if let Some(s) = rest.strip_prefix('"') {
        s.find('"').map(|e| &s[..e])
    } else {
        let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        Some(&rest[..end])
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn producer(sh: &Shared, idx: usize) -> ProducerOut {
    let mut out = ProducerOut::default();
    if let Err(e) = produce(sh, idx, &mut out) {
        sh.error(format!("producer {idx}: {e}"));
    }
    out
}

fn produce(sh: &Shared, idx: usize, out: &mut ProducerOut) -> Result<(), String> {
    let cfg = &sh.cfg;
    let mut conn = Conn::connect(&cfg.conn)?;
    let mut rng = Rng::new(cfg.seed.wrapping_mul(31) + idx as u64);
    let interval_ns = (cfg.producers as u64 * 1_000_000_000)
        .checked_div(cfg.rate)
        .unwrap_or(0);
    let mut next = mono_ns() + interval_ns * idx as u64 / cfg.producers.max(1) as u64;
    let mut seq = 0u64;
    let ops = &mut out.ops;
    while !sh.stop_producing.load(Ordering::Relaxed) {
        if interval_ns > 0 {
            let now = mono_ns();
            if now < next {
                std::thread::sleep(Duration::from_nanos(next - now));
            } else if now - next > 1_000_000_000 {
                next = now; // far behind: do not burst more than a second's worth
            }
            next += interval_ns;
        }
        let ts = mono_ns();
        let dup = !out.accepted.is_empty() && rng.unit() < cfg.dup_rate;
        let id = if dup {
            // A camera re-sending a recent event (network retry): dedupe must drop it.
            let back = (rng.below(16) as usize + 1).min(out.accepted.len());
            out.accepted[out.accepted.len() - back].clone()
        } else {
            seq += 1;
            format!("{}-p{idx}-{seq}", sh.run_id)
        };
        let cam = rng.below(cfg.cameras as u64) as usize;

        let dedupe = format!("dedupe:{id}");
        match ops.time(
            "set_nx_ex",
            &mut conn,
            &[b"SET", dedupe.as_bytes(), b"1", b"NX", b"EX", b"30"],
        )? {
            Value::Nil => {
                if dup {
                    out.dup_rejected += 1;
                    out.dup_sent += 1;
                } else {
                    sh.error(format!("SET {dedupe} NX rejected a fresh event id"));
                }
                continue;
            }
            Value::Simple(s) if s == "OK" => {
                if dup {
                    out.dup_sent += 1;
                    sh.error(format!("SET {dedupe} NX accepted a duplicate event id"));
                    continue;
                }
            }
            other => {
                sh.error(format!("SET {dedupe} NX EX 30: unexpected reply {}", other.describe()));
                continue;
            }
        }

        let rl = format!("rl:cam-{cam:02}:{}", unix_secs());
        let count = match ops.time("incr", &mut conn, &[b"INCR", rl.as_bytes()])? {
            Value::Int(n) => n,
            other => {
                sh.error(format!("INCR {rl}: unexpected reply {}", other.describe()));
                continue;
            }
        };
        if count == 1 {
            match ops.time("expire", &mut conn, &[b"EXPIRE", rl.as_bytes(), b"2"])? {
                Value::Int(1) => {}
                other => sh.error(format!("EXPIRE {rl} 2: unexpected reply {}", other.describe())),
            }
        }
        if count as u64 > cfg.rate_limit {
            out.rate_limited += 1;
            out.limited_ids.push(id);
            continue;
        }

        let job = format!("job:{id}");
        let cam_s = cam.to_string();
        let ts_s = ts.to_string();
        match ops.time(
            "hset",
            &mut conn,
            &[
                b"HSET",
                job.as_bytes(),
                b"status",
                b"queued",
                b"cam",
                cam_s.as_bytes(),
                b"ts",
                ts_s.as_bytes(),
            ],
        )? {
            Value::Int(3) => {}
            other => sh.error(format!("HSET {job}: expected 3 new fields, got {}", other.describe())),
        }
        let json = format!(
            "{{\"id\":\"{id}\",\"cam\":{cam},\"ts\":{ts},\"label\":\"{}\",\"score\":0.{:02},\"bbox\":[{},{},{},{}]}}",
            LABELS[rng.below(LABELS.len() as u64) as usize],
            50 + rng.below(50),
            rng.below(1920),
            rng.below(1080),
            16 + rng.below(300),
            16 + rng.below(300),
        );
        let queue = queue_key(cam);
        match ops.time("lpush", &mut conn, &[b"LPUSH", queue.as_bytes(), json.as_bytes()])? {
            Value::Int(n) if n >= 1 => {}
            other => {
                sh.error(format!("LPUSH {queue}: unexpected reply {}", other.describe()));
                continue;
            }
        }
        out.accepted.push(id);
        sh.produced.fetch_add(1, Ordering::SeqCst);
    }
    Ok(())
}

fn consumer(sh: &Shared, idx: usize) -> ConsumerOut {
    let mut out = ConsumerOut::default();
    if let Err(e) = consume(sh, idx, &mut out) {
        sh.error(format!("consumer {idx}: {e}"));
    }
    out
}

fn consume(sh: &Shared, idx: usize, out: &mut ConsumerOut) -> Result<(), String> {
    let cfg = &sh.cfg;
    let mut conn = Conn::connect(&cfg.conn)?;
    let mut rng = Rng::new(cfg.seed.wrapping_mul(37) + 1000 + idx as u64);
    // Each worker lists the queues from a different camera so no queue is always last.
    let queues: Vec<String> = (0..cfg.cameras).map(|i| queue_key((i + idx) % cfg.cameras)).collect();
    let mut brpop: Vec<&[u8]> = vec![b"BRPOP"];
    brpop.extend(queues.iter().map(|q| q.as_bytes()));
    brpop.push(b"0.1");
    let retry = retry_key(idx);
    let worker = idx.to_string();
    let ops = &mut out.ops;
    loop {
        let (queue, json) = match ops.time("brpop", &mut conn, &brpop)? {
            Value::Nil => {
                if sh.producers_done.load(Ordering::SeqCst)
                    && sh.consumed.load(Ordering::SeqCst) >= sh.produced.load(Ordering::SeqCst)
                {
                    return Ok(());
                }
                // Production is over and every queue has stayed empty for a while: whatever
                // is still missing was lost, waiting longer will not bring it back.
                let now = mono_ns();
                if now > sh.drain_deadline.load(Ordering::SeqCst)
                    || (sh.producers_done.load(Ordering::SeqCst)
                        && now.saturating_sub(sh.last_progress.load(Ordering::SeqCst)) > 2_000_000_000)
                {
                    return Ok(());
                }
                continue;
            }
            Value::Array(kv) if kv.len() == 2 => match (kv[0].as_bytes(), kv[1].as_bytes()) {
                (Some(k), Some(v)) => (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                ),
                _ => {
                    sh.error(format!("BRPOP: unexpected reply {:?}", kv));
                    continue;
                }
            },
            other => {
                sh.error(format!("BRPOP: unexpected reply {}", other.describe()));
                if mono_ns() > sh.drain_deadline.load(Ordering::SeqCst) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let Some(id) = json_field(&json, "id").map(str::to_string) else {
            sh.error(format!("BRPOP {queue}: not one of our events: {json:.100}"));
            continue;
        };
        if !queues.contains(&queue) {
            sh.error(format!("BRPOP returned a key it was not asked for: {queue}"));
        }
        let job = format!("job:{id}");
        let failed = rng.unit() < cfg.fail_rate;
        let status: &[u8] = if failed { b"failed" } else { b"done" };
        if failed {
            // The worker parks the event on its own retry list; retries exhausted (at once,
            // here), it hands it to the dead-letter list atomically.
            match ops.time("lpush_retry", &mut conn, &[b"LPUSH", retry.as_bytes(), json.as_bytes()])? {
                Value::Int(1) => {}
                other => sh.error(format!("LPUSH {retry}: expected 1, got {}", other.describe())),
            }
            match ops.time(
                "lmove_dlq",
                &mut conn,
                &[b"LMOVE", retry.as_bytes(), b"dlq", b"RIGHT", b"LEFT"],
            )? {
                Value::Bulk(v) if v == json.as_bytes() => {}
                other => sh.error(format!("LMOVE {retry} dlq: unexpected reply {}", other.describe())),
            }
        }
        match ops.time(
            "hset_status",
            &mut conn,
            &[b"HSET", job.as_bytes(), b"status", status, b"worker", worker.as_bytes()],
        )? {
            Value::Int(1) => {}
            other => sh.error(format!(
                "HSET {job} status: expected 1 new field, got {}",
                other.describe()
            )),
        }
        let event = format!(
            "{{\"status\":\"{}\",\"worker\":{idx},\"event\":{json}}}",
            String::from_utf8_lossy(status)
        );
        match ops.time("publish", &mut conn, &[b"PUBLISH", b"events", event.as_bytes()])? {
            Value::Int(n) => {
                let want = sh.receivers.load(Ordering::SeqCst);
                if n as u64 != want {
                    sh.error(format!("PUBLISH events reached {n} subscribers, expected {want}"));
                }
            }
            other => sh.error(format!("PUBLISH events: unexpected reply {}", other.describe())),
        }
        sh.published.fetch_add(1, Ordering::SeqCst);
        if failed {
            out.failed.push(id);
        } else {
            out.ok.push(id);
        }
        sh.consumed.fetch_add(1, Ordering::SeqCst);
        sh.last_progress.store(mono_ns(), Ordering::SeqCst);
    }
}

fn subscriber(sh: &Shared, idx: usize) -> SubscriberOut {
    let mut out = SubscriberOut {
        received: 0,
        e2e: new_hist(),
    };
    if let Err(e) = subscribe(sh, &mut out) {
        sh.error(format!("subscriber {idx}: {e}"));
        // Let the main thread stop waiting for this one.
        sh.subs_ready.fetch_add(1, Ordering::SeqCst);
    }
    out
}

fn subscribe(sh: &Shared, out: &mut SubscriberOut) -> Result<(), String> {
    let mut conn = Conn::connect(&sh.cfg.conn)?;
    match conn.cmd(&[b"SUBSCRIBE", b"events"])? {
        Value::Array(v) | Value::Push(v) if v.first().and_then(Value::as_bytes) == Some(b"subscribe") => {}
        other => return Err(format!("SUBSCRIBE events: unexpected reply {}", other.describe())),
    }
    sh.subs_ready.fetch_add(1, Ordering::SeqCst);
    conn.set_read_timeout(Some(Duration::from_millis(100)))?;
    loop {
        if out.received >= sh.expected_messages.load(Ordering::SeqCst)
            || mono_ns() > sh.subs_deadline.load(Ordering::SeqCst)
        {
            return Ok(());
        }
        match conn.read() {
            Ok(Value::Array(v)) | Ok(Value::Push(v)) if v.len() == 3 && v[0].as_bytes() == Some(b"message") => {
                let now = mono_ns();
                let payload = String::from_utf8_lossy(v[2].as_bytes().unwrap_or_default()).into_owned();
                match json_field(&payload, "ts").and_then(|t| t.parse::<u64>().ok()) {
                    Some(ts) => stats::record(&mut out.e2e, now.saturating_sub(ts)),
                    None => sh.error(format!("message on events without a timestamp: {payload:.100}")),
                }
                out.received += 1;
            }
            Ok(other) => sh.error(format!("subscriber got an unexpected reply {}", other.describe())),
            Err(e) if e == TIMEOUT => {}
            Err(e) => return Err(e),
        }
    }
}

/// Runs the scenario, prints the report, and returns whether every check passed.
pub fn run(cfg: CameraCfg) -> Result<bool, String> {
    if cfg.cameras == 0 || cfg.producers == 0 || cfg.consumers == 0 {
        return Err("--cameras, --producers and --consumers must be positive".into());
    }
    let mut admin = Conn::connect(&cfg.conn)?;
    // Start from empty queues: an earlier, aborted run may have left events behind.
    let mut stale: Vec<String> = (0..cfg.cameras).map(queue_key).collect();
    stale.extend((0..cfg.consumers).map(retry_key));
    stale.push("dlq".into());
    let mut del: Vec<&[u8]> = vec![b"DEL"];
    del.extend(stale.iter().map(|k| k.as_bytes()));
    if let Value::Error(e) = admin.cmd(&del)? {
        return Err(format!("DEL (reset queues): {e}"));
    }

    let run_id = format!(
        "r{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let sh = Arc::new(Shared {
        cfg: cfg.clone(),
        run_id,
        stop_producing: AtomicBool::new(false),
        producers_done: AtomicBool::new(false),
        produced: AtomicU64::new(0),
        consumed: AtomicU64::new(0),
        published: AtomicU64::new(0),
        receivers: AtomicU64::new(0),
        subs_ready: AtomicUsize::new(0),
        expected_messages: AtomicU64::new(u64::MAX),
        drain_deadline: AtomicU64::new(u64::MAX),
        last_progress: AtomicU64::new(0),
        subs_deadline: AtomicU64::new(u64::MAX),
        errors: AtomicU64::new(0),
        error_samples: Mutex::new(Vec::new()),
    });

    let subs: Vec<_> = (0..cfg.subscribers)
        .map(|i| {
            let sh = Arc::clone(&sh);
            std::thread::spawn(move || subscriber(&sh, i))
        })
        .collect();
    let wait_subs = mono_ns() + 10_000_000_000;
    while sh.subs_ready.load(Ordering::SeqCst) < cfg.subscribers && mono_ns() < wait_subs {
        std::thread::sleep(Duration::from_millis(5));
    }
    match admin.cmd(&[b"PUBSUB", b"NUMSUB", b"events"])? {
        Value::Array(v) if v.len() == 2 => {
            let n = v[1].as_int().unwrap_or(0) as u64;
            if n < cfg.subscribers as u64 {
                sh.error(format!("PUBSUB NUMSUB events = {n}, expected {}", cfg.subscribers));
            }
            sh.receivers.store(n, Ordering::SeqCst);
        }
        other => return Err(format!("PUBSUB NUMSUB events: unexpected reply {}", other.describe())),
    }

    let consumers: Vec<_> = (0..cfg.consumers)
        .map(|i| {
            let sh = Arc::clone(&sh);
            std::thread::spawn(move || consumer(&sh, i))
        })
        .collect();
    let started = mono_ns();
    let producers: Vec<_> = (0..cfg.producers)
        .map(|i| {
            let sh = Arc::clone(&sh);
            std::thread::spawn(move || producer(&sh, i))
        })
        .collect();
    std::thread::sleep(cfg.duration);
    sh.stop_producing.store(true, Ordering::SeqCst);

    let mut ops = Ops::default();
    let mut accepted: Vec<String> = Vec::new();
    let mut limited_ids: Vec<String> = Vec::new();
    let (mut dup_sent, mut dup_rejected, mut rate_limited) = (0u64, 0u64, 0u64);
    for p in producers {
        let out = p.join().map_err(|_| "producer thread panicked")?;
        ops.merge(out.ops);
        accepted.extend(out.accepted);
        limited_ids.extend(out.limited_ids);
        dup_sent += out.dup_sent;
        dup_rejected += out.dup_rejected;
        rate_limited += out.rate_limited;
    }
    let produce_secs = (mono_ns() - started) as f64 / 1e9;
    sh.drain_deadline
        .store(mono_ns() + cfg.drain.as_nanos() as u64, Ordering::SeqCst);
    sh.last_progress.fetch_max(mono_ns(), Ordering::SeqCst);
    sh.producers_done.store(true, Ordering::SeqCst);

    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for c in consumers {
        let out = c.join().map_err(|_| "consumer thread panicked")?;
        ops.merge(out.ops);
        ok.extend(out.ok);
        failed.extend(out.failed);
    }
    let published = sh.published.load(Ordering::SeqCst);
    sh.subs_deadline.store(mono_ns() + 5_000_000_000, Ordering::SeqCst);
    sh.expected_messages.store(published, Ordering::SeqCst);
    let mut e2e = new_hist();
    let mut delivered = Vec::new();
    for s in subs {
        let out = s.join().map_err(|_| "subscriber thread panicked")?;
        e2e.add(&out.e2e).map_err(|e| e.to_string())?;
        delivered.push(out.received);
    }

    // ---- audit ----
    let mut checks: Vec<(bool, String)> = Vec::new();
    let produced = sh.produced.load(Ordering::SeqCst);
    let consumed_n = (ok.len() + failed.len()) as u64;
    checks.push((
        produced == consumed_n,
        format!("queued {produced} = consumed ok {} + failed {}", ok.len(), failed.len()),
    ));
    let produced_set: HashSet<&str> = accepted.iter().map(String::as_str).collect();
    let mut consumed_set: HashSet<&str> = HashSet::new();
    let mut twice = 0usize;
    for id in ok.iter().chain(failed.iter()) {
        if !consumed_set.insert(id.as_str()) {
            twice += 1;
        }
    }
    let lost = produced_set.difference(&consumed_set).count();
    let unknown = consumed_set.difference(&produced_set).count();
    checks.push((twice == 0, format!("no event consumed twice ({twice} were)")));
    checks.push((lost == 0, format!("no queued event lost ({lost} never consumed)")));
    checks.push((
        unknown == 0,
        format!("no consumed event unknown ({unknown} were never queued)"),
    ));

    let mut leftover = 0i64;
    for k in (0..cfg.cameras).map(queue_key).chain((0..cfg.consumers).map(retry_key)) {
        match admin.cmd(&[b"LLEN", k.as_bytes()])? {
            Value::Int(n) => leftover += n,
            other => sh.error(format!("LLEN {k}: unexpected reply {}", other.describe())),
        }
    }
    checks.push((
        leftover == 0,
        format!("camera queues and retry lists empty ({leftover} items left)"),
    ));

    let dlq: HashSet<String> = match admin.cmd(&[b"LRANGE", b"dlq", b"0", b"-1"])? {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_bytes())
            .filter_map(|b| json_field(&String::from_utf8_lossy(b), "id").map(str::to_string))
            .collect(),
        other => {
            sh.error(format!("LRANGE dlq: unexpected reply {}", other.describe()));
            HashSet::new()
        }
    };
    let failed_set: HashSet<String> = failed.iter().cloned().collect();
    checks.push((
        dlq == failed_set,
        format!(
            "dlq holds exactly the {} failed events (it holds {})",
            failed_set.len(),
            dlq.len()
        ),
    ));
    checks.push((
        dup_rejected == dup_sent,
        format!("dedupe rejected every duplicate ({dup_rejected} of {dup_sent})"),
    ));
    let all_delivered = delivered.iter().all(|&n| n == published);
    checks.push((
        all_delivered,
        format!("every subscriber got all {published} published events (got {delivered:?})"),
    ));

    // Job hashes: the final status of every queued event.
    let mut wrong_status = 0u64;
    let expect: Vec<(&str, &[u8])> = ok
        .iter()
        .map(|id| (id.as_str(), &b"done"[..]))
        .chain(failed.iter().map(|id| (id.as_str(), &b"failed"[..])))
        .collect();
    let keys: Vec<String> = expect.iter().map(|(id, _)| format!("job:{id}")).collect();
    for (chunk_keys, chunk_expect) in keys.chunks(500).zip(expect.chunks(500)) {
        for k in chunk_keys {
            admin.send(&[b"HGET", k.as_bytes(), b"status"]);
        }
        admin.flush()?;
        for (k, (_, want)) in chunk_keys.iter().zip(chunk_expect) {
            match admin.read()? {
                Value::Bulk(got) if got == *want => {}
                other => {
                    wrong_status += 1;
                    if wrong_status <= 3 {
                        sh.error(format!(
                            "HGET {k} status: expected {}, got {}",
                            String::from_utf8_lossy(want),
                            other.describe()
                        ));
                    }
                }
            }
        }
    }
    checks.push((
        wrong_status == 0,
        format!("every job hash has its final status ({wrong_status} wrong)"),
    ));
    let errors = sh.errors.load(Ordering::SeqCst);
    checks.push((
        errors == 0,
        format!("no error replies or unexpected replies ({errors})"),
    ));

    if !cfg.keep {
        // Everything this run created (job hashes of lost events included).
        let mut doomed: Vec<String> = accepted.iter().map(|id| format!("job:{id}")).collect();
        doomed.extend(ok.iter().chain(failed.iter()).map(|id| format!("job:{id}")));
        doomed.extend(
            accepted
                .iter()
                .chain(limited_ids.iter())
                .map(|id| format!("dedupe:{id}")),
        );
        doomed.push("dlq".into());
        for chunk in doomed.chunks(500) {
            let mut args: Vec<&[u8]> = vec![b"DEL"];
            args.extend(chunk.iter().map(|k| k.as_bytes()));
            admin.send(&args);
        }
        admin.flush()?;
        for _ in doomed.chunks(500) {
            if let Value::Error(e) = admin.read()? {
                eprintln!("cleanup DEL failed: {e}");
            }
        }
    }

    // ---- report ----
    println!(
        "camera pipeline: {} cameras, {} producers, {} consumers, {} subscribers, {:.1}s, target {} events/s",
        cfg.cameras,
        cfg.producers,
        cfg.consumers,
        cfg.subscribers,
        produce_secs,
        if cfg.rate == 0 {
            "max".to_string()
        } else {
            cfg.rate.to_string()
        }
    );
    println!(
        "{:<14} {:>9} {:>10} {:>10} {:>10} {:>10}   (microseconds)",
        "operation", "count", "p50", "p99", "p99.9", "max"
    );
    let row = |name: &str, h: &Histogram<u64>| {
        let s = summarize(h);
        println!(
            "{:<14} {:>9} {:>10} {:>10} {:>10} {:>10}",
            name,
            s.count,
            fmt_us(s.p50),
            fmt_us(s.p99),
            fmt_us(s.p999),
            fmt_us(s.max)
        );
    };
    for (name, h) in &ops.0 {
        row(name, h);
    }
    row("end-to-end", &e2e);
    println!("  (brpop includes time blocked waiting; end-to-end = event created -> subscriber got it)");
    let generated = produced + dup_sent + rate_limited;
    println!(
        "events: {generated} generated, {dup_sent} duplicates (dropped by dedupe), {rate_limited} rate-limited, \
         {produced} queued ({:.0}/s); {} done, {} to dlq; {published} published",
        produced as f64 / produce_secs.max(1e-9),
        ok.len(),
        failed.len()
    );
    for (pass, what) in &checks {
        println!("  [{}] {what}", if *pass { " ok " } else { "FAIL" });
    }
    let samples = sh.error_samples.lock().unwrap_or_else(|p| p.into_inner());
    for s in samples.iter() {
        println!("  error: {s}");
    }
    let pass = checks.iter().all(|(p, _)| *p);
    println!("RESULT: {}", if pass { "PASS" } else { "FAIL" });
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::json_field;

    #[test]
    fn reads_our_json() {
        let j = r#"{"status":"done","worker":1,"event":{"id":"r1-p0-7","cam":3,"ts":12345,"label":"car"}}"#;
        assert_eq!(json_field(j, "id"), Some("r1-p0-7"));
        assert_eq!(json_field(j, "ts"), Some("12345"));
        assert_eq!(json_field(j, "status"), Some("done"));
        assert_eq!(json_field(j, "nope"), None);
    }
}
