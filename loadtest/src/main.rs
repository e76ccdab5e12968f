//! Load generator for basalt and any Redis-compatible server. Speaks RESP itself.
//!
//! - `bench`:   closed-loop throughput per test, like redis-benchmark (epoll, pipelining).
//! - `latency`: open-loop fixed-rate load, coordinated-omission corrected percentiles.
//! - `camera`:  the home-security camera pipeline scenario, audited end to end.
//!
//! Every reply is checked; any error reply, lost connection or failed audit makes the
//! process exit with status 1 (status 2: could not run at all, e.g. connection refused).
//!
//! Module map: `resp` (encode commands, skip/parse replies) <- `client` (blocking connection
//! with AUTH/HELLO/SELECT) <- `workload` (tests and their commands) <- `bench`, `latency`,
//! `camera`; `sys` wraps epoll, timerfd and the monotonic clock; `stats` the histograms.

mod bench;
mod camera;
mod client;
mod fanout;
mod latency;
mod resp;
mod stats;
mod sys;
mod workload;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use client::{Conn, ConnOpts};
use stats::{fmt_us, summarize};
use workload::Test;

#[derive(Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Load generator for basalt / Redis-compatible servers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct ConnArgs {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(short, long, default_value_t = 6379)]
    port: u16,
    /// Password (AUTH, or HELLO 3 AUTH with --resp3).
    #[arg(short = 'a', long)]
    auth: Option<String>,
    /// ACL user for --auth (default: the "default" user).
    #[arg(long)]
    user: Option<String>,
    /// Switch every connection to RESP3 with HELLO 3.
    #[arg(long)]
    resp3: bool,
    /// Database number (SELECT).
    #[arg(long, default_value_t = 0)]
    db: u32,
}

impl ConnArgs {
    fn opts(&self) -> ConnOpts {
        ConnOpts {
            host: self.host.clone(),
            port: self.port,
            auth: self.auth.clone(),
            user: self.user.clone(),
            resp3: self.resp3,
            db: self.db,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Closed-loop throughput and latency per test (redis-benchmark-like).
    Bench(BenchArgs),
    /// Open-loop fixed-rate load (coordinated-omission corrected latency).
    Latency(LatencyArgs),
    /// Camera pipeline scenario: queues, dedupe, rate limiting, DLQ, pub/sub; audited.
    Camera(CameraArgs),
    /// Pub/Sub fan-out: one publisher, many subscribers; every delivery checked.
    Fanout(FanoutArgs),
}

#[derive(Args)]
struct FanoutArgs {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(short, long, default_value_t = 6379)]
    port: u16,
    /// Subscriber connections.
    #[arg(short, long, default_value_t = 100)]
    subscribers: usize,
    /// Messages published.
    #[arg(short = 'n', long, default_value_t = 20_000)]
    messages: u64,
    /// PUBLISHes in flight.
    #[arg(short = 'P', long, default_value_t = 1)]
    pipeline: usize,
    /// Message size in bytes (at least 12).
    #[arg(long, default_value_t = 16)]
    size: usize,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Parallel connections.
    #[arg(short, long, default_value_t = 50)]
    clients: usize,
    /// Commands in flight per connection.
    #[arg(short = 'P', long, default_value_t = 1)]
    pipeline: usize,
    /// Requests per test (ignored with --duration).
    #[arg(short = 'n', long, default_value_t = 100_000)]
    requests: u64,
    /// Run each test for this many seconds instead of a request count.
    #[arg(short, long)]
    duration: Option<f64>,
    /// Random key space (keys key:000000000000 .. keyspace-1).
    #[arg(short = 'r', long, default_value_t = 100_000)]
    keyspace: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 3)]
    data_size: usize,
    #[arg(
        short,
        long,
        default_value = "set,get,incr,mset,lpush,rpop,sadd,hset,zadd,lrange_100,spop,publish,evalsha",
        help = format!("Comma-separated tests, from: {}", workload::ALL_TESTS)
    )]
    tests: String,
    /// Event-loop threads (one is enough to saturate a one-core server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print CSV (a header, then one line per test) instead of the table.
    #[arg(long)]
    csv: bool,
    /// Seed of the key generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fail a test when no reply arrives for this many seconds.
    #[arg(long, default_value_t = 30)]
    stall_timeout: u64,
}

#[derive(Args)]
struct LatencyArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Requests per second (fixed schedule).
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds of measured load.
    #[arg(short, long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Connections the requests are spread over (round robin, pipelined when late).
    #[arg(short, long, default_value_t = 10)]
    clients: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 3)]
    data_size: usize,
    /// Random key space.
    #[arg(short = 'r', long, default_value_t = 100_000)]
    keyspace: u64,
    /// What to send (any bench test; SET by default).
    #[arg(short, long, default_value = "set")]
    test: String,
    /// Print a line of percentiles every this many seconds (0: only the summary).
    #[arg(long, default_value_t = 0.0)]
    interval: f64,
    /// Seconds to wait for outstanding replies at the end.
    #[arg(long, default_value_t = 10)]
    drain: u64,
    /// Print the summary as CSV (header + one line).
    #[arg(long)]
    csv: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Send --trigger on a separate connection this many seconds into the measured load.
    #[arg(long)]
    trigger_at: Option<f64>,
    /// The command --trigger-at sends (split on spaces).
    #[arg(long, default_value = "BGREWRITEAOF")]
    trigger: String,
}

#[derive(Args)]
struct CameraArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Seconds of event production (consumers then drain the queues).
    #[arg(short, long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 8)]
    cameras: usize,
    #[arg(long, default_value_t = 4)]
    producers: usize,
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// Subscribers of the `events` channel.
    #[arg(long, default_value_t = 2)]
    subscribers: usize,
    /// Detection events per second over all producers (0: as fast as possible).
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Events accepted per camera per second (INCR + EXPIRE limiter).
    #[arg(long, default_value_t = 200)]
    rate_limit: u64,
    /// Fraction of events whose processing fails (they go to the DLQ).
    #[arg(long, default_value_t = 0.02)]
    fail_rate: f64,
    /// Fraction of events that are re-sent duplicates (dedupe must drop them).
    #[arg(long, default_value_t = 0.05)]
    dup_rate: f64,
    /// Seconds allowed for the consumers to drain the queues after production stops.
    #[arg(long, default_value_t = 30)]
    drain: u64,
    /// Keep the job hashes, dedupe keys and DLQ after the run (deleted by default).
    #[arg(long)]
    keep: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Bench(a) => run_bench(a),
        Cmd::Latency(a) => run_latency(a),
        Cmd::Camera(a) => run_camera(a),
        Cmd::Fanout(a) => {
            let cfg = fanout::FanoutCfg {
                host: a.host,
                port: a.port,
                subscribers: a.subscribers,
                messages: a.messages,
                pipeline: a.pipeline.max(1),
                size: a.size,
            };
            fanout::run(&cfg).map(|(msgs, deliveries)| {
                println!(
                    "fanout: {} subscribers, pipeline {}, {} messages: {:.0} messages/s, {:.0} deliveries/s",
                    cfg.subscribers, cfg.pipeline, cfg.messages, msgs, deliveries
                );
                true
            })
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_bench(a: BenchArgs) -> Result<bool, String> {
    let tests = Test::parse_list(&a.tests)?;
    let cfg = bench::BenchCfg {
        conn: a.conn.opts(),
        clients: a.clients,
        pipeline: a.pipeline,
        requests: a.requests,
        duration: a.duration.map(secs),
        threads: a.threads,
        keyspace: a.keyspace,
        data_size: a.data_size,
        seed: a.seed,
        stall_timeout: Duration::from_secs(a.stall_timeout.max(1)),
    };
    let mut setup_conn = Conn::connect(&cfg.conn)?;
    if a.csv {
        println!("test,rps,p50_us,p99_us,p99_9_us,max_us,requests,errors,seconds");
    } else {
        let amount = match cfg.duration {
            Some(d) => format!("{:.1}s per test", d.as_secs_f64()),
            None => format!("{} requests per test", cfg.requests),
        };
        println!(
            "{}:{}  {} clients, pipeline {}, {amount}, keyspace {}, {}-byte values{}",
            cfg.conn.host,
            cfg.conn.port,
            cfg.clients,
            cfg.pipeline,
            cfg.keyspace,
            cfg.data_size,
            if cfg.conn.resp3 { ", RESP3" } else { "" }
        );
    }
    let mut all_ok = true;
    for test in tests {
        let sha = workload::setup(test, &mut setup_conn, cfg.data_size)
            .map_err(|e| format!("{} set-up: {e}", test.name()))?;
        let r = bench::run_test(&cfg, test, &sha)?;
        let s = summarize(&r.hist);
        if a.csv {
            println!(
                "{},{:.2},{:.1},{:.1},{:.1},{:.1},{},{},{:.3}",
                r.name,
                r.rps(),
                s.p50,
                s.p99,
                s.p999,
                s.max,
                r.completed,
                r.errors,
                r.elapsed_s
            );
        } else {
            println!(
                "{:<12} {:>11.0} req/s  {}  ({} in {:.2}s){}",
                r.name,
                r.rps(),
                s.line(),
                r.completed,
                r.elapsed_s,
                if r.errors > 0 {
                    format!("  ERRORS={}", r.errors)
                } else {
                    String::new()
                }
            );
        }
        if let Some(e) = &r.first_error {
            eprintln!("{}: {} error replies, first: {e}", r.name, r.errors);
        }
        if let Some(f) = &r.fatal {
            eprintln!("{}: aborted: {f}", r.name);
        }
        all_ok &= !r.failed();
    }
    Ok(all_ok)
}

fn run_latency(a: LatencyArgs) -> Result<bool, String> {
    let cfg = latency::LatencyCfg {
        conn: a.conn.opts(),
        clients: a.clients,
        rate: a.rate,
        duration: secs(a.duration),
        warmup: secs(a.warmup),
        test: Test::parse(&a.test)?,
        data_size: a.data_size,
        keyspace: a.keyspace,
        seed: a.seed,
        interval: secs(a.interval),
        drain: Duration::from_secs(a.drain),
    };
    if matches!(cfg.test, Test::Evalsha | Test::Lrange(_)) {
        return Err("latency mode supports tests without set-up (not evalsha, lrange)".into());
    }
    // The trigger (e.g. BGREWRITEAOF) runs on its own thread and connection, so a slow reply
    // cannot delay the load's schedule.
    let trigger = match a.trigger_at {
        Some(at) => {
            let mut conn = Conn::connect(&cfg.conn)?;
            let words: Vec<String> = a.trigger.split_whitespace().map(str::to_string).collect();
            if words.is_empty() {
                return Err("--trigger is empty".into());
            }
            let delay = secs(a.warmup + at);
            Some(std::thread::spawn(move || {
                std::thread::sleep(delay);
                let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
                let t0 = std::time::Instant::now();
                let reply = conn.cmd(&args);
                eprintln!(
                    "trigger at {:.1}s: {} -> {} ({:.1} ms)",
                    delay.as_secs_f64(),
                    words.join(" "),
                    match &reply {
                        Ok(v) => v.describe(),
                        Err(e) => e.clone(),
                    },
                    t0.elapsed().as_secs_f64() * 1000.0
                );
                matches!(reply, Ok(v) if !matches!(v, resp::Value::Error(_)))
            }))
        }
        None => None,
    };
    let r = latency::run(&cfg)?;
    let trigger_ok = match trigger {
        Some(h) => h.join().unwrap_or(false),
        None => true,
    };
    let c = summarize(&r.corrected);
    let s = summarize(&r.service);
    let achieved = r.corrected.len() as f64 / r.measured_s.max(1e-9);
    if a.csv {
        println!("rate,achieved_rps,p50_us,p99_us,p99_9_us,max_us,service_p50_us,service_p99_us,service_max_us,max_send_lag_us,errors");
        println!(
            "{},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{}",
            cfg.rate,
            achieved,
            c.p50,
            c.p99,
            c.p999,
            c.max,
            s.p50,
            s.p99,
            s.max,
            r.max_send_lag_ns as f64 / 1000.0,
            r.errors
        );
    } else {
        println!(
            "{} at {} req/s for {:.1}s ({} connections, {}-byte values, keyspace {}): {} sent, {} answered",
            cfg.test.name(),
            cfg.rate,
            cfg.duration.as_secs_f64(),
            cfg.clients,
            cfg.data_size,
            cfg.keyspace,
            r.sent,
            r.completed
        );
        println!("  latency (from due time):   {}  mean={}us", c.line(), fmt_us(c.mean));
        println!("  service (from write):      {}", s.line());
        println!(
            "  measured {} requests ({achieved:.0}/s); load generator max send lag {}us; errors {}",
            r.corrected.len(),
            fmt_us(r.max_send_lag_ns as f64 / 1000.0),
            r.errors
        );
    }
    if let Some(e) = &r.first_error {
        eprintln!("{} error replies, first: {e}", r.errors);
    }
    if let Some(f) = &r.fatal {
        eprintln!("aborted: {f}");
    }
    if !trigger_ok {
        eprintln!("the --trigger command failed");
    }
    Ok(r.errors == 0 && r.fatal.is_none() && trigger_ok)
}

fn run_camera(a: CameraArgs) -> Result<bool, String> {
    camera::run(camera::CameraCfg {
        conn: a.conn.opts(),
        duration: secs(a.duration),
        cameras: a.cameras,
        producers: a.producers,
        consumers: a.consumers,
        subscribers: a.subscribers,
        rate: a.rate,
        rate_limit: a.rate_limit,
        fail_rate: a.fail_rate,
        dup_rate: a.dup_rate,
        drain: Duration::from_secs(a.drain),
        keep: a.keep,
        seed: a.seed,
    })
}
