//! `fanout`: Pub/Sub fan-out throughput. `subscribers` connections SUBSCRIBE one channel
//! (spread over a sharded server's shards by the kernel's SO_REUSEPORT hashing); one
//! publisher sends `messages` PUBLISHes, `pipeline` at a time, and checks that every reply
//! counts every subscriber. Each subscriber checks it received every message, in order.
//! Reported: messages published per second and deliveries per second, from the first
//! PUBLISH to the last message read by the last subscriber.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub struct FanoutCfg {
    pub host: String,
    pub port: u16,
    pub subscribers: usize,
    pub messages: u64,
    pub pipeline: usize,
    pub size: usize,
}

fn bulk_cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// The frame a RESP2 subscriber receives for message number `i`.
fn payload(i: u64, size: usize) -> Vec<u8> {
    let mut p = format!("{i:012}").into_bytes();
    p.resize(size.max(12), b'x');
    p
}

pub fn run(cfg: &FanoutCfg) -> Result<(f64, f64), String> {
    let channel = b"fanout-bench";
    let connect = || -> Result<TcpStream, String> {
        let s = TcpStream::connect((cfg.host.as_str(), cfg.port)).map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        Ok(s)
    };
    let mut readers = Vec::new();
    for _ in 0..cfg.subscribers {
        let mut s = connect()?;
        s.write_all(&bulk_cmd(&[b"SUBSCRIBE", channel]))
            .map_err(|e| e.to_string())?;
        let mut r = BufReader::with_capacity(256 * 1024, s);
        // *3 $9 subscribe $12 fanout-bench :1
        for _ in 0..6 {
            let mut line = Vec::new();
            r.read_until(b'\n', &mut line)
                .map_err(|e| format!("subscribe ack: {e}"))?;
        }
        readers.push(r);
    }
    let (messages, size) = (cfg.messages, cfg.size);
    let template = bulk_cmd(&[b"message", channel, &payload(0, size)]);
    let frame_len = template.len();
    // Where the 12-digit message number sits in a frame (the payload is the last bulk).
    let digits = frame_len - 2 - size.max(12);
    let threads: Vec<_> = readers
        .into_iter()
        .map(|mut r| {
            let template = template.clone();
            std::thread::spawn(move || -> Result<Instant, String> {
                let mut buf = vec![0u8; frame_len];
                for i in 0..messages {
                    r.read_exact(&mut buf).map_err(|e| format!("message {i}: {e}"))?;
                    let n = std::str::from_utf8(&buf[digits..digits + 12])
                        .ok()
                        .and_then(|d| d.parse::<u64>().ok());
                    if n != Some(i)
                        || buf[..digits] != template[..digits]
                        || buf[digits + 12..] != template[digits + 12..]
                    {
                        return Err(format!("message {i} out of order or corrupt"));
                    }
                }
                Ok(Instant::now())
            })
        })
        .collect();
    let mut p = connect()?;
    let want = format!(":{}\r\n", cfg.subscribers).into_bytes();
    let mut replies = vec![0u8; want.len() * cfg.pipeline];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < messages {
        let n = (cfg.pipeline as u64).min(messages - sent);
        let mut batch = Vec::new();
        for i in sent..sent + n {
            batch.extend_from_slice(&bulk_cmd(&[b"PUBLISH", channel, &payload(i, size)]));
        }
        p.write_all(&batch).map_err(|e| e.to_string())?;
        let got = &mut replies[..want.len() * n as usize];
        p.read_exact(got).map_err(|e| format!("PUBLISH reply: {e}"))?;
        if got.chunks(want.len()).any(|c| c != want.as_slice()) {
            return Err(format!(
                "PUBLISH did not reach every subscriber: {:?}",
                String::from_utf8_lossy(got)
            ));
        }
        sent += n;
    }
    let mut last = start;
    for t in threads {
        let done = t.join().map_err(|_| "subscriber thread panicked".to_string())??;
        last = last.max(done);
    }
    let secs = last.duration_since(start).as_secs_f64();
    let rate = messages as f64 / secs;
    Ok((rate, rate * cfg.subscribers as f64))
}
