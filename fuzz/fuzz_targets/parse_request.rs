#![no_main]
//! Fuzzes the RESP request decoder.
//!
//! Run with: `cd fuzz && cargo +nightly fuzz run parse_request`
//!
//! The first input byte chooses the limits and the read size used for the incremental run; the
//! rest is the byte stream a client sends. Checked invariants:
//! * no panic, `Incomplete` consumes nothing, `Request` consumes something;
//! * feeding the stream in chunks gives the same requests and the same error as parsing it all at
//!   once, except for the "too big ..." errors, which (as in Redis) depend on how much is buffered
//!   when the parser runs;
//! * `skip_value` never reads past the end.

use basalt::resp::{parse_int_reply, parse_request, skip_value, Limits, Parsed, ProtocolError};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

fn run(limits: &Limits, data: &[u8], chunk: usize) -> (Vec<Vec<Bytes>>, Option<ProtocolError>) {
    let mut buf = BytesMut::new();
    let mut reqs = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match parse_request(&mut buf, limits) {
                Ok(Parsed::Request(args)) => {
                    assert!(buf.len() < before, "a request must consume bytes");
                    if !args.is_empty() {
                        reqs.push(args);
                    }
                }
                Ok(Parsed::Incomplete { need }) => {
                    assert_eq!(buf.len(), before, "incomplete must not consume");
                    assert!(need == 0 || need > before, "need is a lower bound");
                    break;
                }
                Err(e) => return (reqs, Some(e)),
            }
        }
    }
    (reqs, None)
}

fn chunk_dependent(e: &Option<ProtocolError>) -> bool {
    matches!(e, Some(ProtocolError(m)) if m.starts_with("too big"))
}

fuzz_target!(|input: &[u8]| {
    let Some((&ctl, data)) = input.split_first() else {
        return;
    };
    let limits = if ctl & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_bulk_len: 64,
            max_multibulk_len: 8,
            max_inline_len: 48,
        }
    };
    let chunk = 1 + (ctl >> 1) as usize;

    let whole = run(&limits, data, data.len());
    let pieces = run(&limits, data, chunk);
    if !chunk_dependent(&whole.1) && !chunk_dependent(&pieces.1) {
        assert_eq!(whole, pieces, "chunking changed the result");
    } else {
        let n = whole.0.len().min(pieces.0.len());
        assert_eq!(whole.0[..n], pieces.0[..n]);
    }

    if let Some(end) = skip_value(data, 0) {
        assert!(end > 0 && end <= data.len());
    }
    let _ = parse_int_reply(data);
});
