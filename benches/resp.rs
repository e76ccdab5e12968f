//! RESP codec benchmarks: `cargo bench --bench resp`.
//!
//! * decode: a pipeline of 16 SET commands, a 100-element MSET, a 1 MB bulk (SET with a 1 MB value);
//! * encode: a bulk string, an integer, an array of 100 bulks, a double (RESP2 and RESP3).

use std::hint::black_box;

use basalt::resp::*;
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn decode_all(buf: &mut BytesMut, limits: &Limits) -> usize {
    let mut n = 0;
    while let Ok(Parsed::Request(args)) = parse_request(buf, limits) {
        n += args.len();
        black_box(args);
    }
    n
}

fn decode(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("decode");

    let mut pipeline = Vec::new();
    for i in 0..16 {
        let key = format!("key:{:08}", i);
        encode_command(&[b"SET", key.as_bytes(), b"value-0123456789abcdef"], &mut pipeline);
    }
    g.throughput(Throughput::Bytes(pipeline.len() as u64));
    g.bench_function("pipeline_16_set", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&pipeline[..]),
            |buf| assert_eq!(decode_all(buf, &limits), 48),
            BatchSize::SmallInput,
        )
    });

    let mut mset = Vec::new();
    {
        let keys: Vec<String> = (0..50).map(|i| format!("key:{:08}", i)).collect();
        let mut args: Vec<&[u8]> = vec![b"MSET"];
        for k in &keys {
            args.push(k.as_bytes());
            args.push(b"value-0123456789abcdef");
        }
        encode_command(&args, &mut mset);
    }
    g.throughput(Throughput::Bytes(mset.len() as u64));
    g.bench_function("mset_100_elements", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&mset[..]),
            |buf| assert_eq!(decode_all(buf, &limits), 101),
            BatchSize::SmallInput,
        )
    });

    let value = vec![b'x'; 1024 * 1024];
    let mut big = Vec::new();
    encode_command(&[b"SET", b"bigkey", &value], &mut big);
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("bulk_1mb", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&big[..]),
            |buf| assert_eq!(decode_all(buf, &limits), 3),
            BatchSize::LargeInput,
        )
    });
    // The same 1 MB request arriving in 64 KiB reads: every partial call re-scans the headers.
    g.bench_function("bulk_1mb_in_64k_reads", |b| {
        let mut buf = BytesMut::with_capacity(big.len());
        b.iter(|| {
            buf.clear();
            let mut done = false;
            for chunk in big.chunks(64 * 1024) {
                buf.extend_from_slice(chunk);
                if let Ok(Parsed::Request(args)) = parse_request(&mut buf, &limits) {
                    black_box(args);
                    done = true;
                }
            }
            assert!(done);
            buf.reserve(big.len());
        })
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    let mut r = Reply::with_capacity(Proto::Resp2, 64 * 1024);

    let payload = vec![b'v'; 64];
    g.bench_function("bulk_64b", |b| {
        b.iter(|| {
            r.buf.clear();
            r.bulk(black_box(&payload));
        })
    });
    g.bench_function("int", |b| {
        b.iter(|| {
            r.buf.clear();
            r.int(black_box(-1234567890123));
        })
    });
    let items: Vec<Vec<u8>> = (0..100).map(|i| format!("member:{:06}", i).into_bytes()).collect();
    g.bench_function("array_of_100_bulks", |b| {
        b.iter(|| {
            r.buf.clear();
            r.array_of_bulks(black_box(&items).iter());
        })
    });
    g.bench_function("double_resp2", |b| {
        b.iter(|| {
            r.buf.clear();
            r.double(black_box(std::f64::consts::PI));
        })
    });
    let mut r3 = Reply::with_capacity(Proto::Resp3, 1024);
    g.bench_function("double_resp3", |b| {
        b.iter(|| {
            r3.buf.clear();
            r3.double(black_box(0.1));
        })
    });
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
