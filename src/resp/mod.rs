//! RESP protocol codec: request parsing (multibulk and inline, exactly as Redis 7.0's
//! `processMultibulkBuffer` / `processInlineBuffer`) and reply encoding with automatic
//! RESP3 -> RESP2 downgrading (as Redis 7.0's `addReply*` family).
//!
//! This module is a pure codec: it depends only on `bytes` and `memchr`, never on the rest
//! of the crate.

pub mod decode;
pub mod longdouble;
pub mod reply;

pub use decode::{
    parse_request, parse_request_with_auth, Limits, Parsed, ProtocolError, PROTO_INLINE_MAX_SIZE, PROTO_MAX_BULK_LEN,
    PROTO_MAX_MULTIBULK_LEN, UNAUTH_MAX_BULK_LEN, UNAUTH_MAX_MULTIBULK_LEN,
};
pub use longdouble::LongDouble;
pub use reply::{format_double, format_long_double, parse_int_reply, skip_value, write_i64, Proto, Reply};
