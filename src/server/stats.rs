//! Per-shard counters (summed across shards by INFO) and the slow log.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;

use hdrhistogram::Histogram;

/// A command's latency distribution, as Redis keeps it with latency-tracking: nanoseconds
/// from 1 ns to 1 s, 2 significant figures (CONFIG_LATENCY_HISTOGRAM_*).
pub type LatencyHistogram = Histogram<u64>;

fn latency_histogram() -> Box<LatencyHistogram> {
    Box::new(Histogram::new_with_bounds(1, 1_000_000_000, 2).expect("constant histogram bounds are valid"))
}

#[derive(Default, Clone, Copy, Debug)]
pub struct CmdStat {
    pub calls: u64,
    pub usec: u64,
    pub rejected: u64,
    pub failed: u64,
}

impl CmdStat {
    pub fn add(&mut self, o: &CmdStat) {
        self.calls += o.calls;
        self.usec += o.usec;
        self.rejected += o.rejected;
        self.failed += o.failed;
    }
}

/// Samples per instantaneous metric (Redis's STATS_METRIC_SAMPLES).
const METRIC_SAMPLES: usize = 16;

/// A per-second rate averaged over the last samples of a counter (Redis's inst_metric).
#[derive(Clone, Copy, Default)]
pub struct Metric {
    samples: [u64; METRIC_SAMPLES],
    idx: usize,
    /// (time in ms, counter value) at the last sample.
    last: (u64, u64),
}

impl Metric {
    fn sample(&mut self, now_ms: u64, value: u64) {
        let (t, v) = self.last;
        if t != 0 && now_ms > t {
            self.samples[self.idx] = value.saturating_sub(v) * 1000 / (now_ms - t);
            self.idx = (self.idx + 1) % METRIC_SAMPLES;
        }
        self.last = (now_ms, value);
    }

    /// The average rate per second.
    pub fn rate(&self) -> u64 {
        self.samples.iter().sum::<u64>() / METRIC_SAMPLES as u64
    }

    fn merge(&mut self, o: &Metric) {
        for (a, b) in self.samples.iter_mut().zip(&o.samples) {
            *a += b;
        }
    }
}

/// Keys waiting to be freed by a background thread (FLUSHALL ASYNC), and keys freed so
/// far that way: INFO's lazyfree_pending_objects and lazyfreed_objects. Process-wide, as
/// the freeing threads belong to no shard.
pub static LAZYFREE_PENDING: AtomicU64 = AtomicU64::new(0);
pub static LAZYFREED: AtomicU64 = AtomicU64::new(0);

#[derive(Clone)]
pub struct Stats {
    /// Indexed by the command table's ids.
    pub commands: Vec<CmdStat>,
    /// Latency histograms by command id, made on a command's first recorded call.
    pub latency: Vec<Option<Box<LatencyHistogram>>>,
    pub errors: HashMap<String, u64>,
    pub total_commands: u64,
    pub connections_received: u64,
    pub rejected_connections: u64,
    /// Pub/Sub clients closed at client-output-buffer-limit.
    pub obuf_limit_disconnections: u64,
    /// Keys removed by maxmemory eviction.
    pub evicted_keys: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    pub expire_cycle_us: u64,
    pub dirty: u64,
    pub total_error_replies: u64,
    ops: Metric,
    net_in: Metric,
    net_out: Metric,
}

impl Stats {
    pub fn new(ncommands: usize) -> Stats {
        Stats {
            commands: vec![CmdStat::default(); ncommands],
            latency: vec![None; ncommands],
            errors: HashMap::new(),
            total_commands: 0,
            connections_received: 0,
            rejected_connections: 0,
            obuf_limit_disconnections: 0,
            evicted_keys: 0,
            net_input_bytes: 0,
            net_output_bytes: 0,
            expire_cycle_us: 0,
            dirty: 0,
            total_error_replies: 0,
            ops: Metric::default(),
            net_in: Metric::default(),
            net_out: Metric::default(),
        }
    }

    /// Records one call's duration in the command's latency histogram (Redis records
    /// microseconds times 1000, clamped to the histogram's range).
    pub fn record_latency(&mut self, cmd: usize, usec: u64) {
        if let Some(slot) = self.latency.get_mut(cmd) {
            let h = slot.get_or_insert_with(latency_histogram);
            h.saturating_record(usec.saturating_mul(1000).max(1));
        }
    }

    pub fn error(&mut self, code: &str) {
        self.total_error_replies += 1;
        match self.errors.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                // Redis caps distinct error codes at 128 to bound memory.
                if self.errors.len() < 128 {
                    self.errors.insert(code.to_string(), 1);
                }
            }
        }
    }

    /// Called from the cron: samples the per-second rates INFO reports.
    pub fn sample_ops(&mut self, now_ms: u64) {
        self.ops.sample(now_ms, self.total_commands);
        self.net_in.sample(now_ms, self.net_input_bytes);
        self.net_out.sample(now_ms, self.net_output_bytes);
    }

    pub fn instantaneous_ops(&self) -> u64 {
        self.ops.rate()
    }

    /// instantaneous_input_kbps / instantaneous_output_kbps.
    pub fn instantaneous_kbps(&self) -> (f64, f64) {
        (self.net_in.rate() as f64 / 1024.0, self.net_out.rate() as f64 / 1024.0)
    }

    /// Adds another shard's counters (INFO sums shards).
    pub fn merge(&mut self, o: &Stats) {
        for (a, b) in self.commands.iter_mut().zip(&o.commands) {
            a.add(b);
        }
        add_latency(&mut self.latency, &o.latency);
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.total_commands += o.total_commands;
        self.connections_received += o.connections_received;
        self.rejected_connections += o.rejected_connections;
        self.obuf_limit_disconnections += o.obuf_limit_disconnections;
        self.evicted_keys += o.evicted_keys;
        self.net_input_bytes += o.net_input_bytes;
        self.net_output_bytes += o.net_output_bytes;
        self.expire_cycle_us += o.expire_cycle_us;
        self.dirty += o.dirty;
        self.total_error_replies += o.total_error_replies;
        self.ops.merge(&o.ops);
        self.net_in.merge(&o.net_in);
        self.net_out.merge(&o.net_out);
    }

    /// CONFIG RESETSTAT: every counter and rate, except the changes since the last save
    /// (Redis keeps `dirty`: it drives persistence, not reporting).
    pub fn reset(&mut self) {
        let n = self.commands.len();
        let dirty = self.dirty;
        *self = Stats::new(n);
        self.dirty = dirty;
    }
}

#[derive(Clone, Debug)]
pub struct SlowEntry {
    pub id: u64,
    pub time: u64,
    pub duration_us: u64,
    pub args: Vec<Vec<u8>>,
    pub addr: String,
    pub name: String,
}

/// Redis's slow log: newest first, capped at slowlog-max-len, arguments truncated as Redis does.
#[derive(Default)]
pub struct SlowLog {
    pub entries: VecDeque<SlowEntry>,
    pub next_id: u64,
}

/// SLOWLOG_ENTRY_MAX_ARGC and SLOWLOG_ENTRY_MAX_STRING.
const MAX_ARGC: usize = 32;
const MAX_STRING: usize = 128;

impl SlowLog {
    pub fn push(
        &mut self,
        args: &[bytes::Bytes],
        duration_us: u64,
        time: u64,
        addr: String,
        name: String,
        max_len: usize,
    ) {
        let argc = args.len().min(MAX_ARGC);
        let mut v = Vec::with_capacity(argc);
        for (i, a) in args.iter().take(argc).enumerate() {
            if argc != args.len() && i == argc - 1 {
                v.push(format!("... ({} more arguments)", args.len() - argc + 1).into_bytes());
            } else if a.len() > MAX_STRING {
                let mut s = a[..MAX_STRING].to_vec();
                s.extend_from_slice(format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes());
                v.push(s);
            } else {
                v.push(a.to_vec());
            }
        }
        self.entries.push_front(SlowEntry {
            id: self.next_id,
            time,
            duration_us,
            args: v,
            addr,
            name,
        });
        self.next_id += 1;
        self.entries.truncate(max_len);
    }
}

/// Adds another shard's latency histograms (by command id) to `into`.
pub fn add_latency(into: &mut [Option<Box<LatencyHistogram>>], from: &[Option<Box<LatencyHistogram>>]) {
    for (a, b) in into.iter_mut().zip(from) {
        if let Some(b) = b {
            // Same bounds on every shard: adding cannot fail.
            let _ = a.get_or_insert_with(latency_histogram).add(&**b);
        }
    }
}

/// The cumulative distribution LATENCY HISTOGRAM replies: (µs, calls at or below) at
/// power-of-two steps from 1024 ns, only where the count grew. Redis's fillCommandCDF with
/// hdr_iter_log_init(1024, 2): a step is reported at the first bucket at or past its level,
/// labelled with that bucket's highest equivalent value, counting that bucket too.
pub fn latency_cdf(h: &LatencyHistogram) -> Vec<(u64, u64)> {
    let total = h.len();
    let mut out = Vec::new();
    let mut level: u64 = 1024;
    let mut level_low = h.lowest_equivalent(level);
    let (mut cumulative, mut previous, mut value) = (0u64, 0u64, 0u64);
    for bucket in h.iter_all() {
        if previous == total {
            return out;
        }
        cumulative += bucket.count_at_value();
        value = h.lowest_equivalent(bucket.value_iterated_to());
        while value >= level_low {
            if cumulative > previous {
                out.push((h.highest_equivalent(value) / 1000, cumulative));
            }
            previous = cumulative;
            level = level.saturating_mul(2);
            level_low = h.lowest_equivalent(level);
        }
    }
    // Past the last bucket (a level beyond the histogram's range): the C iterator reports
    // one more step there, labelled with the last bucket.
    if cumulative > previous {
        out.push((h.highest_equivalent(value) / 1000, cumulative));
    }
    out
}

/// LATENCY_TS_LEN: samples kept per event.
const LATENCY_TS_LEN: usize = 160;

/// One latency event's time series (Redis's latencyTimeSeries): at most one sample per
/// second (the highest), the last 160 kept, and the all-time maximum.
#[derive(Clone, Debug)]
pub struct LatencySeries {
    /// (unix seconds, ms), oldest first.
    pub samples: VecDeque<(u64, u64)>,
    pub max: u64,
}

/// The latency monitor (latency-monitor-threshold): events in the order first seen.
#[derive(Default)]
pub struct LatencyMonitor {
    pub events: Vec<(&'static str, LatencySeries)>,
}

impl LatencyMonitor {
    /// latencyAddSample: `ms` for `event` at `now` (unix seconds).
    pub fn add(&mut self, event: &'static str, ms: u64, now: u64) {
        let i = match self.events.iter().position(|(e, _)| *e == event) {
            Some(i) => i,
            None => {
                let series = LatencySeries {
                    samples: VecDeque::with_capacity(LATENCY_TS_LEN),
                    max: 0,
                };
                self.events.push((event, series));
                self.events.len() - 1
            }
        };
        let ts = &mut self.events[i].1;
        ts.max = ts.max.max(ms);
        if let Some(last) = ts.samples.back_mut() {
            if last.0 == now {
                last.1 = last.1.max(ms);
                return;
            }
        }
        if ts.samples.len() == LATENCY_TS_LEN {
            ts.samples.pop_front();
        }
        ts.samples.push_back((now, ms));
    }

    pub fn get(&self, event: &[u8]) -> Option<&LatencySeries> {
        self.events.iter().find(|(e, _)| e.as_bytes() == event).map(|(_, s)| s)
    }

    /// latencyResetEvent: drops `event` (any case), or every event; how many were dropped.
    pub fn reset(&mut self, event: Option<&[u8]>) -> usize {
        let before = self.events.len();
        self.events
            .retain(|(e, _)| event.is_some_and(|want| !e.as_bytes().eq_ignore_ascii_case(want)));
        before - self.events.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_cdf_reports_power_of_two_steps_like_redis() {
        let mut h = latency_histogram();
        assert!(latency_cdf(&h).is_empty());
        // 10 µs: the first level at or above it is 16384 ns, whose bucket ends at 16511.
        h.record(10_000).unwrap();
        assert_eq!(latency_cdf(&h), vec![(16, 1)]);
        // 500 ns and 1 ns fall at the first level, 1024 ns (bucket 1024..=1031).
        h.record(500).unwrap();
        h.record(1).unwrap();
        // 40 µs: level 65536 ns, bucket 65536..=66047.
        h.record(40_000).unwrap();
        assert_eq!(latency_cdf(&h), vec![(1, 2), (16, 3), (66, 4)]);
        // 1 s (the clamp): level 2^30 ns = 1073741824, beyond the 1 s maximum; the last
        // bucket is reported where the iteration runs out.
        h.record(1_000_000_000).unwrap();
        let cdf = latency_cdf(&h);
        assert_eq!(cdf.len(), 4, "{cdf:?}");
        assert_eq!(cdf[3].1, 5);
        assert!(cdf[3].0 >= 1_000_000, "{cdf:?}");
    }

    #[test]
    fn latency_monitor_keeps_one_sample_per_second_and_the_max() {
        let mut m = LatencyMonitor::default();
        m.add("command", 5, 100);
        m.add("command", 3, 100); // same second, lower: kept as 5
        m.add("command", 9, 100); // same second, higher: replaces
        m.add("fast-command", 2, 100);
        m.add("command", 4, 101);
        let ts = m.get(b"command").unwrap();
        assert_eq!(ts.samples, VecDeque::from(vec![(100, 9), (101, 4)]));
        assert_eq!(ts.max, 9);
        for t in 0..200 {
            m.add("command", 1, 1000 + t);
        }
        assert_eq!(m.get(b"command").unwrap().samples.len(), LATENCY_TS_LEN);
        assert_eq!(m.get(b"command").unwrap().samples.front(), Some(&(1040, 1)));
        assert_eq!(m.reset(Some(b"COMMAND")), 1);
        assert_eq!(m.reset(Some(b"nosuch")), 0);
        assert_eq!(m.reset(None), 1);
        assert!(m.events.is_empty());
    }

    #[test]
    fn slowlog_truncates_like_redis() {
        let mut log = SlowLog::default();
        let args: Vec<bytes::Bytes> = (0..40).map(|i| bytes::Bytes::from(format!("a{i}"))).collect();
        log.push(&args, 10, 1, String::new(), String::new(), 2);
        assert_eq!(log.entries[0].args.len(), 32);
        assert_eq!(log.entries[0].args[31], b"... (9 more arguments)".to_vec());
        let big = [bytes::Bytes::from(vec![b'x'; 200])];
        log.push(&big, 10, 1, String::new(), String::new(), 2);
        log.push(&big, 10, 1, String::new(), String::new(), 2);
        assert_eq!(log.entries.len(), 2);
        assert!(log.entries[0].args[0].ends_with(b"... (72 more bytes)"));
        assert_eq!(log.entries[0].id, 2);
    }

    #[test]
    fn latency_histograms_record_clamp_and_merge() {
        let mut a = Stats::new(3);
        let mut b = Stats::new(3);
        for _ in 0..99 {
            a.record_latency(1, 10);
        }
        b.record_latency(1, 5_000);
        b.record_latency(2, 0); // a 0 µs call is recorded as 1 ns, as Redis clamps it
        b.record_latency(2, u64::MAX); // and a huge one as the 1 s maximum
        a.merge(&b);
        assert!(a.latency[0].is_none(), "no histogram for a command never called");
        let h = a.latency[1].as_ref().unwrap();
        assert_eq!(h.len(), 100);
        // 10 µs = 10,000 ns: the bucket's highest equivalent value, as hdr_value_at_percentile.
        assert_eq!(h.value_at_percentile(50.0), 10_047);
        assert_eq!(h.value_at_percentile(100.0), 5_013_503);
        let h2 = a.latency[2].as_ref().unwrap();
        assert_eq!((h2.min(), h2.len()), (1, 2));
        assert!(h2.max() >= 1_000_000_000);
        a.reset();
        assert!(a.latency.iter().all(Option::is_none));
    }

    #[test]
    fn merge_and_ops() {
        let mut a = Stats::new(2);
        a.total_commands = 100;
        a.sample_ops(1000);
        a.total_commands = 200;
        a.sample_ops(2000);
        assert_eq!(a.instantaneous_ops(), 100 / 16);
        a.net_input_bytes = 2048;
        a.sample_ops(3000);
        assert_eq!(a.instantaneous_kbps(), (2.0 / 16.0, 0.0));
        let mut b = Stats::new(2);
        b.error("ERR");
        a.merge(&b);
        assert_eq!(a.errors["ERR"], 1);
    }
}
