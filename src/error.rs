//! The two kinds of failure. A [`ProtocolError`](crate::resp::ProtocolError) closes the
//! connection that sent the garbage; a [`CmdError`] is an error reply and the connection
//! goes on. Every error text clients can see is built here, from an enum, because clients
//! match on Redis's exact strings.

use std::fmt;

pub use crate::resp::ProtocolError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdError {
    WrongType,
    Syntax,
    NotInteger,
    NotFloat,
    Overflow,
    NoSuchKey,
    DbIndexOutOfRange,
    NoAuth,
    WrongPass,
    Oom,
    /// `wrong number of arguments for '<name>' command` (name as Redis prints it: "config|get").
    WrongArity(String),
    UnknownCommand {
        name: String,
        args: String,
    },
    /// `unknown subcommand '<sub>'. Try <CMD> HELP.`
    UnknownSubcommand {
        sub: String,
        cmd: String,
    },
    /// `invalid expire time in '<cmd>' command`
    InvalidExpire(String),
    /// Any other error: the whole line after '-', prefix included ("ERR ...").
    Static(&'static str),
    Custom(String),
}

impl CmdError {
    /// An "ERR <msg>" error with a dynamic message.
    pub fn err(msg: impl Into<String>) -> CmdError {
        CmdError::Custom(format!("ERR {}", msg.into()))
    }

    /// Redis's unknown-command text: the name and the first arguments, each capped so the
    /// whole stays short (processCommand in server.c).
    pub fn unknown_command(argv: &[bytes::Bytes]) -> CmdError {
        let name = echo(c_str(&argv[0], 128));
        let mut args = String::new();
        let mut len = 0; // in the client's bytes, as Redis counts
        for a in &argv[1..] {
            if len >= 128 {
                break;
            }
            let part = c_str(a, 128 - len);
            args.push('\'');
            args.push_str(&echo(part));
            args.push_str("' ");
            len += part.len() + 3;
        }
        CmdError::UnknownCommand { name, args }
    }

    /// Redis's addReplySubcommandSyntaxError: a known container whose subcommand does not
    /// exist or got the wrong number of arguments (`SLOWLOG GET 1 2`, `DEBUG FOO`).
    pub fn sub_syntax(sub: &[u8], cmd: &str) -> CmdError {
        let sub = echo(c_str(sub, 128));
        CmdError::Custom(format!(
            "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {cmd} HELP."
        ))
    }

    /// The first word of the error line, for `INFO errorstats` (errorstat_ERR, ...).
    pub fn code(&self) -> String {
        let line = self.to_string();
        line.split(' ').next().unwrap_or("ERR").to_string()
    }
}

/// An argument as Redis's `%.*s` formats it: at most `max` bytes, and a NUL ends it.
pub fn c_str(b: &[u8], max: usize) -> &[u8] {
    let end = memchr::memchr(0, b).unwrap_or(b.len()).min(max);
    &b[..end]
}

/// First private-use code point of [`echo`]'s byte escapes: byte `b` (0x80..=0xFF) is
/// `ECHO_BASE + b`, i.e. U+F780..=U+F7FF.
const ECHO_BASE: u32 = 0xF700;

/// A client's bytes for an error message that quotes them (an unknown command's name):
/// ASCII as is, every other byte as a private-use character that [`Reply::error`] writes
/// back as that byte, so the reply carries the client's bytes as Redis's does (not `U+FFFD`
/// replacements).
///
/// [`Reply::error`]: crate::resp::Reply::error
pub fn echo(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii() {
                c as char
            } else {
                char::from_u32(ECHO_BASE + c as u32).expect("a private-use code point")
            }
        })
        .collect()
}

/// The inverse of [`echo`] on a whole error line: escapes back to bytes, other text as its
/// UTF-8. Borrowed unchanged when there is nothing to restore.
pub fn unecho(msg: &str) -> std::borrow::Cow<'_, [u8]> {
    // U+F780..=U+F7FF encode as EF 9E 80 ..= EF 9F BF.
    if !msg.as_bytes().contains(&0xEF) {
        return std::borrow::Cow::Borrowed(msg.as_bytes());
    }
    let mut out = Vec::with_capacity(msg.len());
    let mut buf = [0u8; 4];
    for ch in msg.chars() {
        match (ch as u32).checked_sub(ECHO_BASE) {
            Some(b @ 0x80..=0xFF) => out.push(b as u8),
            _ => out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes()),
        }
    }
    std::borrow::Cow::Owned(out)
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdError::WrongType => f.write_str("WRONGTYPE Operation against a key holding the wrong kind of value"),
            CmdError::Syntax => f.write_str("ERR syntax error"),
            CmdError::NotInteger => f.write_str("ERR value is not an integer or out of range"),
            CmdError::NotFloat => f.write_str("ERR value is not a valid float"),
            CmdError::Overflow => f.write_str("ERR increment or decrement would overflow"),
            CmdError::NoSuchKey => f.write_str("ERR no such key"),
            CmdError::DbIndexOutOfRange => f.write_str("ERR DB index is out of range"),
            CmdError::NoAuth => f.write_str("NOAUTH Authentication required."),
            CmdError::WrongPass => f.write_str("WRONGPASS invalid username-password pair or user is disabled."),
            CmdError::Oom => f.write_str("OOM command not allowed when used memory > 'maxmemory'."),
            CmdError::WrongArity(name) => write!(f, "ERR wrong number of arguments for '{name}' command"),
            CmdError::UnknownCommand { name, args } => {
                write!(f, "ERR unknown command '{name}', with args beginning with: {args}")
            }
            CmdError::UnknownSubcommand { sub, cmd } => {
                write!(f, "ERR unknown subcommand '{sub}'. Try {cmd} HELP.")
            }
            CmdError::InvalidExpire(cmd) => write!(f, "ERR invalid expire time in '{cmd}' command"),
            CmdError::Static(s) => f.write_str(s),
            CmdError::Custom(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for CmdError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let text = format!("ERR unknown command '{}' é", echo(&all));
        let back = unecho(&text);
        let mut want = b"ERR unknown command '".to_vec();
        want.extend_from_slice(&all);
        want.extend_from_slice("' é".as_bytes());
        assert_eq!(&*back, &want[..]);
        assert!(matches!(unecho("ERR plain"), std::borrow::Cow::Borrowed(_)));
    }
    use bytes::Bytes;

    #[test]
    fn texts_are_redis_texts() {
        assert_eq!(
            CmdError::WrongArity("get".into()).to_string(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(CmdError::WrongType.code(), "WRONGTYPE");
        let argv: Vec<Bytes> = ["foo", "a", "b"].iter().map(|s| Bytes::from(*s)).collect();
        assert_eq!(
            CmdError::unknown_command(&argv).to_string(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
    }
}
