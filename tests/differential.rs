//! Differential tests: basalt against the reference `redis-server`.
//!
//! Both servers are started on free 127.0.0.1 ports with persistence off
//! (`--save "" --appendonly no`) and `--enable-debug-command local` (for DEBUG SLEEP 0); the
//! candidate also gets `--shards 4`, so cross-shard paths run even on a 2-core machine.
//! Every case in `tests/diff/*.txt` is run on both, in lock step, on a fresh connection after
//! `FLUSHALL`, and the replies are compared byte for byte (unless a directive says otherwise).
//! Each server's output goes to a log file in a temp directory, printed if it fails to start
//! (or the candidate dies) and kept when a case fails.
//!
//! Run: `cargo test --test differential`. The report (failures, skipped cases, the final
//! "N passed, M failed" line) is written straight to stderr, so it shows without
//! `--nocapture`.
//!
//! Environment:
//! - `REDIS_SERVER`   the oracle binary (default `redis-server` on `PATH`).
//! - `BASALT_BIN`     the candidate binary (default: the `basalt` binary Cargo built).
//! - `BASALT_ARGS`    extra candidate arguments (default `--shards 4`; none when the
//!   candidate's file name contains `redis-server`, for checking the runner itself).
//! - `DIFF_FILTER`    only run cases whose `file:name` contains this substring.
//! - `DIFF_DIR`       directory of case files (default `tests/diff` of this crate).
//! - `DIFF_DUMP=1`    print every command and the oracle's reply (for writing cases).
//! - `DIFF_ALLOW_SKIP=1` pass (loudly) when `redis-server` is not installed.
//!
//! Case file format (one command per line, arguments split like redis-cli input, i.e.
//! Redis's `sdssplitargs`: whitespace separated, `"double quotes"` with `\xHH \n \r \t \"
//! \\` escapes, `'single quotes'` with `\'`; unquoted backslashes are literal; leading and
//! trailing whitespace of a line is ignored; blank lines too):
//!
//! ```text
//! # case: name            starts a case; other lines starting with '#' are comments
//! @resp3                  (case level) handshake with HELLO 3 instead of HELLO 2
//! @skip reason            (case level) known gap: not run, listed loudly in the report
//! SET k v                 a command: sent as a RESP array, one reply read and compared
//!
//! Modifiers, each applying to the next command/action line only:
//! @replies N              read N replies instead of one (SUBSCRIBE a b c)
//! @noreply                read nothing (CLIENT REPLY OFF)
//! @eof                    read everything until the server closes the connection (QUIT)
//! @sort                   compare the reply's elements as a sorted multiset (maps: pairs)
//! @sortpairs              like @sort for a flat [k, v, k, v] array (RESP2 CONFIG GET)
//! @approx N               integers/doubles anywhere in the reply may differ by up to N
//! @mask REGEX             replace matches of REGEX in the encoded reply with <masked>
//!                         (small regex dialect: . [] [^] \d \w \s \r \n \xHH * + ? (a|b) ^ $,
//!                         matched against the whole encoded reply: "$5\r\nhello\r\n")
//! @repeat N               send the next @raw / @inline payload N times over
//!
//! Actions:
//! @inline TEXT            send TEXT + "\r\n" verbatim as an inline command
//! @raw ARGS...            send the concatenated (sdssplitargs-unquoted) ARGS as raw bytes and
//!                         read until the connection closes (or N replies with @replies N)
//! @read                   read one reply (or @replies N) without sending anything
//! @sleep MS               sleep (once, both servers are run in lock step)
//! @scan CMD [KEY] ARGS    iterate SCAN/SSCAN/HSCAN/ZSCAN to cursor 0, compare the sorted
//!                         union of what it returned (pairs for HSCAN/ZSCAN)
//! @conn N                 switch to connection N (1 = the case's first; opened lazily,
//!                         with the same HELLO handshake, no FLUSHALL)
//! @reconnect              replace the current connection by a fresh one
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------
// Argument splitting: Redis's sdssplitargs.
// ---------------------------------------------------------------------------------------

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Split a line the way redis-cli does (sdssplitargs). Err on unbalanced quotes.
fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut p = 0;
    let n = line.len();
    loop {
        while p < n && line[p].is_ascii_whitespace() {
            p += 1;
        }
        if p >= n {
            return Ok(out);
        }
        let mut inq = false; // inside "double quotes"
        let mut insq = false; // inside 'single quotes'
        let mut done = false;
        let mut cur = Vec::new();
        while !done {
            if inq {
                if p >= n {
                    return Err("unbalanced double quotes".into());
                }
                if line[p] == b'\\'
                    && p + 3 < n
                    && line[p + 1] == b'x'
                    && hex_val(line[p + 2]).is_some()
                    && hex_val(line[p + 3]).is_some()
                {
                    cur.push(hex_val(line[p + 2]).unwrap() * 16 + hex_val(line[p + 3]).unwrap());
                    p += 3;
                } else if line[p] == b'\\' && p + 1 < n {
                    p += 1;
                    cur.push(match line[p] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if line[p] == b'"' {
                    if p + 1 < n && !line[p + 1].is_ascii_whitespace() {
                        return Err("closing quote must be followed by a space".into());
                    }
                    done = true;
                } else {
                    cur.push(line[p]);
                }
            } else if insq {
                if p >= n {
                    return Err("unbalanced single quotes".into());
                }
                if line[p] == b'\\' && p + 1 < n && line[p + 1] == b'\'' {
                    p += 1;
                    cur.push(b'\'');
                } else if line[p] == b'\'' {
                    if p + 1 < n && !line[p + 1].is_ascii_whitespace() {
                        return Err("closing quote must be followed by a space".into());
                    }
                    done = true;
                } else {
                    cur.push(line[p]);
                }
            } else if p >= n {
                done = true;
            } else {
                match line[p] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            if p < n {
                p += 1;
            }
        }
        out.push(cur);
    }
}

// ---------------------------------------------------------------------------------------
// A small backtracking regex over bytes, for @mask.
// ---------------------------------------------------------------------------------------

/// Inclusive byte ranges of a character class.
type Ranges = Vec<(u8, u8)>;

#[derive(Clone, Debug)]
enum Atom {
    Byte(u8),
    Any,
    Class(Ranges, bool),   // ranges, negated
    Group(Vec<Vec<Node>>), // alternatives
    Start,                 // ^
    End,                   // $
}

#[derive(Clone, Debug)]
struct Node {
    atom: Atom,
    min: usize,
    max: usize,
}

#[derive(Clone, Debug)]
struct Regex {
    alts: Vec<Vec<Node>>,
}

impl Regex {
    fn new(src: &str) -> Result<Regex, String> {
        let b = src.as_bytes();
        let mut pos = 0;
        let alts = Self::parse_alts(b, &mut pos)?;
        if pos != b.len() {
            return Err(format!("unbalanced ')' in /{src}/"));
        }
        Ok(Regex { alts })
    }

    fn parse_alts(b: &[u8], pos: &mut usize) -> Result<Vec<Vec<Node>>, String> {
        let mut alts = vec![Vec::new()];
        while *pos < b.len() {
            let c = b[*pos];
            if c == b')' {
                break;
            }
            *pos += 1;
            let atom = match c {
                b'|' => {
                    alts.push(Vec::new());
                    continue;
                }
                b'(' => {
                    let inner = Self::parse_alts(b, pos)?;
                    if *pos >= b.len() || b[*pos] != b')' {
                        return Err("missing ')'".into());
                    }
                    *pos += 1;
                    Atom::Group(inner)
                }
                b'.' => Atom::Any,
                b'^' => Atom::Start,
                b'$' => Atom::End,
                b'[' => {
                    let mut neg = false;
                    if *pos < b.len() && b[*pos] == b'^' {
                        neg = true;
                        *pos += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        if *pos >= b.len() {
                            return Err("missing ']'".into());
                        }
                        if b[*pos] == b']' && !first {
                            *pos += 1;
                            break;
                        }
                        first = false;
                        let (lo, class) = Self::parse_class_char(b, pos)?;
                        if let Some(mut cl) = class {
                            ranges.append(&mut cl);
                            continue;
                        }
                        if *pos + 1 < b.len() && b[*pos] == b'-' && b[*pos + 1] != b']' {
                            *pos += 1;
                            let (hi, _) = Self::parse_class_char(b, pos)?;
                            ranges.push((lo, hi));
                        } else {
                            ranges.push((lo, lo));
                        }
                    }
                    Atom::Class(ranges, neg)
                }
                b'\\' => {
                    *pos -= 1;
                    let (c, class) = Self::parse_class_char(b, pos)?;
                    match class {
                        Some(r) => Atom::Class(r, false),
                        None => Atom::Byte(c),
                    }
                }
                b'*' | b'+' | b'?' => return Err(format!("nothing to repeat at {}", *pos - 1)),
                c => Atom::Byte(c),
            };
            let (mut min, mut max) = (1, 1);
            if *pos < b.len() && !matches!(atom, Atom::Start | Atom::End) {
                match b[*pos] {
                    b'*' => (min, max) = (0, usize::MAX),
                    b'+' => (min, max) = (1, usize::MAX),
                    b'?' => (min, max) = (0, 1),
                    _ => {}
                }
                if (min, max) != (1, 1) {
                    *pos += 1;
                }
            }
            alts.last_mut().unwrap().push(Node { atom, min, max });
        }
        Ok(alts)
    }

    /// One (possibly escaped) character inside or outside a class; `\d \w \s` give a class.
    fn parse_class_char(b: &[u8], pos: &mut usize) -> Result<(u8, Option<Ranges>), String> {
        let c = b[*pos];
        *pos += 1;
        if c != b'\\' {
            return Ok((c, None));
        }
        if *pos >= b.len() {
            return Err("trailing backslash".into());
        }
        let e = b[*pos];
        *pos += 1;
        Ok(match e {
            b'd' => (0, Some(vec![(b'0', b'9')])),
            b'w' => (0, Some(vec![(b'0', b'9'), (b'a', b'z'), (b'A', b'Z'), (b'_', b'_')])),
            b's' => (0, Some(vec![(b' ', b' '), (b'\t', b'\r')])),
            b'r' => (b'\r', None),
            b'n' => (b'\n', None),
            b't' => (b'\t', None),
            b'x' => {
                if *pos + 2 > b.len() {
                    return Err("bad \\x escape".into());
                }
                match (hex_val(b[*pos]), hex_val(b[*pos + 1])) {
                    (Some(h), Some(l)) => {
                        *pos += 2;
                        (h * 16 + l, None)
                    }
                    _ => return Err("bad \\x escape".into()),
                }
            }
            other => (other, None),
        })
    }

    fn atom_matches(atom: &Atom, c: u8) -> bool {
        match atom {
            Atom::Byte(b) => *b == c,
            Atom::Any => true,
            Atom::Class(r, neg) => r.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *neg,
            Atom::Group(_) | Atom::Start | Atom::End => unreachable!(),
        }
    }

    fn match_seq(nodes: &[Node], t: &[u8], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        match nodes.split_first() {
            None => k(pos),
            Some((Node { atom: Atom::Start, .. }, rest)) => pos == 0 && Self::match_seq(rest, t, pos, k),
            Some((Node { atom: Atom::End, .. }, rest)) => pos == t.len() && Self::match_seq(rest, t, pos, k),
            Some((node, rest)) => Self::match_rep(node, 0, rest, t, pos, k),
        }
    }

    fn match_rep(
        node: &Node,
        count: usize,
        rest: &[Node],
        t: &[u8],
        pos: usize,
        k: &mut dyn FnMut(usize) -> bool,
    ) -> bool {
        // Greedy: try one more repetition first, then the rest.
        if count < node.max {
            let more = match &node.atom {
                Atom::Group(alts) => alts.iter().any(|alt| {
                    Self::match_seq(alt, t, pos, &mut |p| {
                        p != pos && Self::match_rep(node, count + 1, rest, t, p, k)
                    })
                }),
                a => {
                    pos < t.len()
                        && Self::atom_matches(a, t[pos])
                        && Self::match_rep(node, count + 1, rest, t, pos + 1, k)
                }
            };
            if more {
                return true;
            }
            // A group that can match empty must still count towards `min`.
            if count < node.min {
                if let Atom::Group(alts) = &node.atom {
                    return alts.iter().any(|alt| {
                        Self::match_seq(alt, t, pos, &mut |p| {
                            p == pos && Self::match_rep(node, node.min, rest, t, p, k)
                        })
                    });
                }
            }
        }
        count >= node.min && Self::match_seq(rest, t, pos, k)
    }

    /// End of the leftmost match starting exactly at `start`, if any.
    fn match_at(&self, t: &[u8], start: usize) -> Option<usize> {
        for alt in &self.alts {
            let mut end = None;
            if Self::match_seq(alt, t, start, &mut |p| {
                end = Some(p);
                true
            }) {
                return end;
            }
        }
        None
    }

    fn replace_all(&self, t: &[u8], with: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(t.len());
        let mut i = 0;
        while i <= t.len() {
            match self.match_at(t, i) {
                Some(end) if end > i => {
                    out.extend_from_slice(with);
                    i = end;
                }
                _ => {
                    if i < t.len() {
                        out.push(t[i]);
                    }
                    i += 1;
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// RESP values, kept in their exact wire form.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Val {
    /// `+ - : , ( # _` and null `$-1` / `*-1`: type byte and the rest of the line.
    Line(u8, Vec<u8>),
    /// `$ = !` with a payload.
    Bulk(u8, Vec<u8>),
    /// `* % ~ > |` with children (maps and attributes hold 2N children). An attribute
    /// (`|`) stores its 2N children followed by the value it is attached to.
    Agg(u8, Vec<Val>),
}

impl Val {
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Val::Line(t, s) => {
                out.push(*t);
                out.extend_from_slice(s);
                out.extend_from_slice(b"\r\n");
            }
            Val::Bulk(t, d) => {
                out.push(*t);
                out.extend_from_slice(d.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(d);
                out.extend_from_slice(b"\r\n");
            }
            Val::Agg(t, items) => {
                out.push(*t);
                let n = match t {
                    b'%' => items.len() / 2,
                    b'|' => (items.len() - 1) / 2,
                    _ => items.len(),
                };
                out.extend_from_slice(n.to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                for i in items {
                    i.encode_into(out);
                }
            }
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }

    fn is_error(&self) -> bool {
        matches!(self, Val::Line(b'-', _) | Val::Bulk(b'!', _))
    }

    /// redis-cli --no-raw style, on one line.
    fn render(&self, out: &mut String) {
        match self {
            Val::Line(b'+', s) => out.push_str(&String::from_utf8_lossy(s)),
            Val::Line(b'-', s) => {
                out.push_str("(error) ");
                out.push_str(&String::from_utf8_lossy(s));
            }
            Val::Line(b':', s) => {
                let _ = write!(out, "(integer) {}", String::from_utf8_lossy(s));
            }
            Val::Line(b',', s) => {
                let _ = write!(out, "(double) {}", String::from_utf8_lossy(s));
            }
            Val::Line(b'(', s) => {
                let _ = write!(out, "(big number) {}", String::from_utf8_lossy(s));
            }
            Val::Line(b'#', s) => {
                out.push_str(if s == b"t" { "(true)" } else { "(false)" });
            }
            Val::Line(b'_', _) => out.push_str("(null)"),
            Val::Line(b'$', _) => out.push_str("(nil)"),
            Val::Line(b'*', _) => out.push_str("(nil array)"),
            Val::Line(t, s) => {
                let _ = write!(out, "({}) {}", *t as char, String::from_utf8_lossy(s));
            }
            Val::Bulk(b'!', d) => {
                out.push_str("(blob error) ");
                out.push_str(&escape(d));
            }
            Val::Bulk(b'=', d) => {
                out.push_str("(verbatim) ");
                out.push_str(&escape(d));
            }
            Val::Bulk(_, d) => out.push_str(&escape(d)),
            Val::Agg(t, items) => {
                let (open, close) = match t {
                    b'%' => ("{", "}"),
                    b'~' => ("~{", "}"),
                    b'>' => (">[", "]"),
                    b'|' => ("|attr{", "}"),
                    _ => ("[", "]"),
                };
                out.push_str(open);
                let pairs = matches!(t, b'%' | b'|');
                let mut i = 0;
                while i < items.len() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    if *t == b'|' && i == items.len() - 1 {
                        out.push_str("} ");
                        items[i].render(out);
                        return;
                    }
                    items[i].render(out);
                    if pairs && i + 1 < items.len() {
                        out.push_str(" => ");
                        items[i + 1].render(out);
                        i += 1;
                    }
                    i += 1;
                }
                out.push_str(close);
            }
        }
    }
}

/// Quote bytes like redis-cli (sdscatrepr).
fn escape(d: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in d {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            7 => s.push_str("\\a"),
            8 => s.push_str("\\b"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s.push('"');
    s
}

/// What one read produced.
#[derive(Clone, Debug, PartialEq)]
enum Reply {
    Val(Val),
    /// Everything received until the server closed the connection.
    UntilEof(Vec<u8>),
    /// `<connection closed>`, `<timeout>`, `<protocol: ...>`.
    Broken(String),
}

impl Reply {
    fn encode(&self) -> Vec<u8> {
        match self {
            Reply::Val(v) => v.encode(),
            Reply::UntilEof(b) => {
                let mut v = b.clone();
                v.extend_from_slice(b"<EOF>");
                v
            }
            Reply::Broken(s) => s.as_bytes().to_vec(),
        }
    }

    fn render(&self) -> String {
        match self {
            Reply::Val(v) => {
                let mut s = String::new();
                v.render(&mut s);
                s
            }
            Reply::UntilEof(b) => format!("{} then EOF", escape(b)),
            Reply::Broken(s) => s.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Connections.
// ---------------------------------------------------------------------------------------

/// Generous for localhost; a server that does not answer costs this once per case (the
/// connection is then marked dead and the case's later reads fail fast).
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const EOF_TIMEOUT: Duration = Duration::from_secs(2);

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    /// Set once the connection is known closed or timed out; later reads fail fast.
    dead: Option<String>,
}

impl Conn {
    fn open(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
            pos: 0,
            dead: None,
        })
    }

    fn send(&mut self, bytes: &[u8]) {
        if self.dead.is_some() {
            return;
        }
        // A write error shows up as a closed connection on the following read.
        let _ = self.stream.write_all(bytes);
    }

    fn fill(&mut self) -> Result<(), String> {
        if let Some(d) = &self.dead {
            return Err(d.clone());
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(0) => self.die("<connection closed>"),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => self.die("<timeout>"),
            Err(_) => self.die("<connection closed>"),
        }
    }

    fn die(&mut self, why: &str) -> Result<(), String> {
        self.dead = Some(why.to_string());
        Err(why.to_string())
    }

    fn read_line(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some(i) = self.buf[self.pos..].windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[self.pos..self.pos + i].to_vec();
                self.pos += i + 2;
                return Ok(line);
            }
            self.fill()?;
        }
    }

    fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() - self.pos < n {
            self.fill()?;
        }
        let v = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(v)
    }

    fn read_val(&mut self) -> Result<Val, String> {
        let line = self.read_line()?;
        if line.is_empty() {
            return Err("<protocol: empty line>".into());
        }
        let t = line[0];
        let rest = line[1..].to_vec();
        let count = || -> Result<i64, String> {
            std::str::from_utf8(&rest)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| format!("<protocol: bad length {}>", escape(&line)))
        };
        match t {
            b'+' | b'-' | b':' | b',' | b'(' | b'#' | b'_' => Ok(Val::Line(t, rest)),
            b'$' | b'=' | b'!' => {
                let n = count()?;
                if n < 0 {
                    return Ok(Val::Line(t, rest));
                }
                let mut d = self.read_exact(n as usize + 2)?;
                if !d.ends_with(b"\r\n") {
                    return Err("<protocol: bulk not terminated by CRLF>".into());
                }
                d.truncate(n as usize);
                Ok(Val::Bulk(t, d))
            }
            b'*' | b'%' | b'~' | b'>' | b'|' => {
                let n = count()?;
                if n < 0 {
                    return Ok(Val::Line(t, rest));
                }
                let total = if matches!(t, b'%' | b'|') { n * 2 } else { n };
                let mut items = Vec::with_capacity(total as usize);
                for _ in 0..total {
                    items.push(self.read_val()?);
                }
                if t == b'|' {
                    items.push(self.read_val()?);
                }
                Ok(Val::Agg(t, items))
            }
            _ => {
                let msg = format!("<protocol: unexpected line {}>", escape(&line));
                self.dead = Some(msg.clone());
                Err(msg)
            }
        }
    }

    fn read_reply(&mut self) -> Reply {
        match self.read_val() {
            Ok(v) => Reply::Val(v),
            Err(e) => Reply::Broken(e),
        }
    }

    fn read_until_eof(&mut self) -> Reply {
        if let Some(d) = &self.dead {
            return Reply::Broken(d.clone());
        }
        let _ = self.stream.set_read_timeout(Some(EOF_TIMEOUT));
        let mut got = self.buf[self.pos..].to_vec();
        self.pos = self.buf.len();
        let mut chunk = [0u8; 16384];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    self.dead = Some("<timeout>".into());
                    let mut s = escape(&got);
                    s.push_str(" then <timeout waiting for close>");
                    return Reply::Broken(s);
                }
                // A reset after the data counts as a close.
                Err(_) => break,
            }
        }
        self.dead = Some("<connection closed>".into());
        Reply::UntilEof(got)
    }
}

fn encode_command(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

// ---------------------------------------------------------------------------------------
// Case files.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
struct Mods {
    replies: Option<usize>,
    eof: bool,
    sort: bool,
    sortpairs: bool,
    approx: Option<f64>,
    masks: Vec<Regex>,
    repeat: Option<usize>,
}

#[derive(Clone, Debug)]
enum Action {
    Cmd(Vec<Vec<u8>>),
    Inline(Vec<u8>),
    Raw(Vec<u8>),
    Read,
    Sleep(u64),
    Scan(Vec<Vec<u8>>),
    Conn(usize),
    Reconnect,
}

#[derive(Clone, Debug)]
struct Step {
    line: usize,
    text: String,
    action: Action,
    mods: Mods,
}

#[derive(Clone, Debug)]
struct Case {
    file: String,
    name: String,
    line: usize,
    resp3: bool,
    skip: Option<String>,
    steps: Vec<Step>,
}

fn parse_file(file: &str, text: &str) -> Result<Vec<Case>, String> {
    let mut cases: Vec<Case> = Vec::new();
    let mut pending = Mods::default();
    let mut pending_line = 0;
    for (i, raw_line) in text.lines().enumerate() {
        let ln = i + 1;
        let line = raw_line.trim();
        let err = |m: &str| format!("{file}:{ln}: {m}: {line}");
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            if let Some(name) = rest.trim_start().strip_prefix("case:") {
                if pending_line != 0 {
                    return Err(format!("{file}:{pending_line}: modifier not followed by a command"));
                }
                let name = name.trim();
                if name.is_empty() {
                    return Err(err("case without a name"));
                }
                if cases.iter().any(|c| c.name == name) {
                    return Err(err("duplicate case name"));
                }
                cases.push(Case {
                    file: file.to_string(),
                    name: name.to_string(),
                    line: ln,
                    resp3: false,
                    skip: None,
                    steps: Vec::new(),
                });
            }
            continue;
        }
        let case = cases.last_mut().ok_or_else(|| err("line before the first '# case:'"))?;
        let (word, rest) = match line.find(char::is_whitespace) {
            Some(p) => (&line[..p], line[p..].trim_start()),
            None => (line, ""),
        };
        let mut action = None;
        if word.starts_with('@') {
            let num = |what: &str| -> Result<u64, String> {
                rest.parse::<u64>().map_err(|_| err(&format!("{what} needs a number")))
            };
            match word {
                "@resp3" => case.resp3 = true,
                "@skip" => {
                    case.skip = Some(if rest.is_empty() {
                        "no reason given".into()
                    } else {
                        rest.into()
                    })
                }
                "@replies" => pending.replies = Some(num("@replies")? as usize),
                "@noreply" => pending.replies = Some(0),
                "@eof" => pending.eof = true,
                "@sort" => pending.sort = true,
                "@sortpairs" => pending.sortpairs = true,
                "@approx" => pending.approx = Some(rest.parse::<f64>().map_err(|_| err("@approx needs a number"))?),
                "@mask" => pending.masks.push(Regex::new(rest).map_err(|e| err(&e))?),
                "@repeat" => pending.repeat = Some(num("@repeat")? as usize),
                "@inline" => action = Some(Action::Inline(rest.as_bytes().to_vec())),
                "@raw" => {
                    let parts = split_args(rest.as_bytes()).map_err(|e| err(&e))?;
                    action = Some(Action::Raw(parts.concat()));
                }
                "@read" => action = Some(Action::Read),
                "@sleep" => action = Some(Action::Sleep(num("@sleep")?)),
                "@scan" => {
                    let parts = split_args(rest.as_bytes()).map_err(|e| err(&e))?;
                    let cmd = parts.first().map(|p| p.to_ascii_uppercase()).unwrap_or_default();
                    let min = if cmd == b"SCAN" { 1 } else { 2 };
                    if !matches!(&cmd[..], b"SCAN" | b"SSCAN" | b"HSCAN" | b"ZSCAN") || parts.len() < min {
                        return Err(err("@scan needs SCAN|SSCAN|HSCAN|ZSCAN [key] [args]"));
                    }
                    action = Some(Action::Scan(parts));
                }
                "@conn" => match num("@conn")? {
                    0 => return Err(err("connections are numbered from 1")),
                    n => action = Some(Action::Conn(n as usize)),
                },
                "@reconnect" => action = Some(Action::Reconnect),
                _ => return Err(err("unknown directive")),
            }
            if action.is_none() {
                if !matches!(word, "@resp3" | "@skip") && pending_line == 0 {
                    pending_line = ln;
                }
                continue;
            }
        } else {
            let args = split_args(line.as_bytes()).map_err(|e| err(&e))?;
            action = Some(Action::Cmd(args));
        }
        if pending.repeat.is_some() && !matches!(action, Some(Action::Raw(_) | Action::Inline(_))) {
            return Err(err("@repeat only applies to @raw and @inline"));
        }
        case.steps.push(Step {
            line: ln,
            text: line.to_string(),
            action: action.unwrap(),
            mods: std::mem::take(&mut pending),
        });
        pending_line = 0;
    }
    if pending_line != 0 {
        return Err(format!("{file}:{pending_line}: modifier not followed by a command"));
    }
    Ok(cases)
}

// ---------------------------------------------------------------------------------------
// Running a case on one server.
// ---------------------------------------------------------------------------------------

struct Side {
    port: u16,
    resp3: bool,
    conns: Vec<Option<Conn>>,
    cur: usize,
}

impl Side {
    fn new(port: u16, resp3: bool) -> Side {
        Side {
            port,
            resp3,
            conns: Vec::new(),
            cur: 1,
        }
    }

    /// Open a connection with the case's handshake; Err describes a setup failure.
    fn open(&self, flush: bool) -> Result<Conn, String> {
        let mut c = Conn::open(self.port).map_err(|e| format!("connect: {e}"))?;
        let hello = if self.resp3 { "3" } else { "2" };
        c.send(&encode_command(&[b"HELLO".to_vec(), hello.as_bytes().to_vec()]));
        match c.read_reply() {
            Reply::Val(v) if !v.is_error() => {}
            other => return Err(format!("HELLO {hello} failed: {}", other.render())),
        }
        if flush {
            c.send(&encode_command(&[b"FLUSHALL".to_vec()]));
            match c.read_reply() {
                Reply::Val(Val::Line(b'+', ref s)) if s == b"OK" => {}
                other => return Err(format!("FLUSHALL failed: {}", other.render())),
            }
        }
        Ok(c)
    }

    fn conn(&mut self) -> Result<&mut Conn, String> {
        let i = self.cur;
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        if self.conns[i].is_none() {
            self.conns[i] = Some(self.open(false)?);
        }
        Ok(self.conns[i].as_mut().unwrap())
    }

    fn read_n(c: &mut Conn, mods: &Mods, default: usize) -> Vec<Reply> {
        if mods.eof {
            return vec![c.read_until_eof()];
        }
        (0..mods.replies.unwrap_or(default)).map(|_| c.read_reply()).collect()
    }

    fn run(&mut self, step: &Step) -> Vec<Reply> {
        let c = match &step.action {
            Action::Sleep(_) => return Vec::new(),
            Action::Conn(n) => {
                self.cur = *n;
                return match self.conn() {
                    Ok(_) => Vec::new(),
                    Err(e) => vec![Reply::Broken(e)],
                };
            }
            Action::Reconnect => {
                let cur = self.cur;
                if let Some(Some(old)) = self.conns.get_mut(cur).map(|c| c.take()) {
                    let _ = old.stream.shutdown(std::net::Shutdown::Both);
                }
                return match self.conn() {
                    Ok(_) => Vec::new(),
                    Err(e) => vec![Reply::Broken(e)],
                };
            }
            _ => match self.conn() {
                Ok(c) => c,
                Err(e) => return vec![Reply::Broken(e)],
            },
        };
        match &step.action {
            Action::Cmd(args) => {
                c.send(&encode_command(args));
                Self::read_n(c, &step.mods, 1)
            }
            Action::Inline(text) => {
                let mut b = text.clone();
                b.extend_from_slice(b"\r\n");
                c.send(&b.repeat(step.mods.repeat.unwrap_or(1)));
                Self::read_n(c, &step.mods, 1)
            }
            Action::Raw(bytes) => {
                c.send(&bytes.repeat(step.mods.repeat.unwrap_or(1)));
                if step.mods.replies.is_some() && !step.mods.eof {
                    Self::read_n(c, &step.mods, 1)
                } else {
                    vec![c.read_until_eof()]
                }
            }
            Action::Read => Self::read_n(c, &step.mods, 1),
            Action::Scan(parts) => vec![Self::scan(c, parts)],
            Action::Sleep(_) | Action::Conn(_) | Action::Reconnect => unreachable!(),
        }
    }

    fn scan(c: &mut Conn, parts: &[Vec<u8>]) -> Reply {
        let cmd = parts[0].to_ascii_uppercase();
        let fixed = if cmd == b"SCAN" { 1 } else { 2 };
        let pairs = cmd == b"HSCAN" || cmd == b"ZSCAN";
        let mut cursor = b"0".to_vec();
        let mut seen: BTreeSet<Vec<Val>> = BTreeSet::new();
        for _ in 0..100_000 {
            let mut args = parts[..fixed].to_vec();
            args.push(cursor.clone());
            args.extend_from_slice(&parts[fixed..]);
            c.send(&encode_command(&args));
            let reply = c.read_reply();
            let (next, items) = match &reply {
                Reply::Val(Val::Agg(b'*', top)) if top.len() == 2 => match (&top[0], &top[1]) {
                    (Val::Bulk(b'$', cur), Val::Agg(_, items)) => (cur.clone(), items.clone()),
                    _ => return reply,
                },
                _ => return reply,
            };
            if pairs {
                for p in items.chunks(2) {
                    seen.insert(p.to_vec());
                }
            } else {
                for i in items {
                    seen.insert(vec![i]);
                }
            }
            if next == b"0" {
                let all: Vec<Val> = seen.into_iter().flatten().collect();
                let mut v = Val::Agg(b'*', all);
                sort_val(&mut v, pairs);
                return Reply::Val(v);
            }
            cursor = next;
        }
        Reply::Broken("<scan did not finish>".into())
    }
}

impl PartialOrd for Val {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Eq for Val {}
impl Ord for Val {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.encode().cmp(&o.encode())
    }
}

/// Sort an aggregate's elements (or pairs, for maps and when `pairs`).
fn sort_val(v: &mut Val, pairs: bool) {
    if let Val::Agg(t, items) = v {
        if *t == b'|' {
            return;
        }
        if pairs || *t == b'%' {
            let mut ps: Vec<Vec<Val>> = items.chunks(2).map(|c| c.to_vec()).collect();
            ps.sort();
            *items = ps.into_iter().flatten().collect();
        } else {
            items.sort();
        }
    }
}

fn num_of(v: &Val) -> Option<f64> {
    match v {
        Val::Line(b':' | b',', s) => std::str::from_utf8(s).ok()?.parse::<f64>().ok(),
        _ => None,
    }
}

/// Where both sides hold numbers within `tol`, make the candidate's equal to the oracle's.
fn approx_normalize(o: &Val, c: &mut Val, tol: f64) {
    match (o, &mut *c) {
        (Val::Agg(ot, oi), Val::Agg(ct, ci)) if ot == ct && oi.len() == ci.len() => {
            for (a, b) in oi.iter().zip(ci.iter_mut()) {
                approx_normalize(a, b, tol);
            }
        }
        _ => {
            if let (Some(a), Some(b)) = (num_of(o), num_of(c)) {
                if (a - b).abs() <= tol && std::mem::discriminant(o) == std::mem::discriminant(c) {
                    if let (Val::Line(ot, os), Val::Line(ct, cs)) = (o, &mut *c) {
                        if ot == ct {
                            *cs = os.clone();
                        }
                    }
                }
            }
        }
    }
}

/// The replies after the step's @approx / @sort modifiers, and the bytes compared for them
/// (after @mask).
fn normalize(o: &Reply, c: &Reply, mods: &Mods) -> (Reply, Reply, Vec<u8>, Vec<u8>) {
    let (mut o, mut c) = (o.clone(), c.clone());
    if let (Reply::Val(ov), Reply::Val(cv)) = (&mut o, &mut c) {
        if let Some(tol) = mods.approx {
            approx_normalize(ov, cv, tol);
        }
        if mods.sort || mods.sortpairs {
            sort_val(ov, mods.sortpairs);
            sort_val(cv, mods.sortpairs);
        }
    }
    let (mut ob, mut cb) = (o.encode(), c.encode());
    for m in &mods.masks {
        ob = m.replace_all(&ob, b"<masked>");
        cb = m.replace_all(&cb, b"<masked>");
    }
    (o, c, ob, cb)
}

// ---------------------------------------------------------------------------------------
// Servers.
// ---------------------------------------------------------------------------------------

struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().unwrap().port()
}

fn log_tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn start_server(name: &'static str, bin: &str, extra: &[String], dir: &Path) -> Result<Server, String> {
    let port = free_port();
    let work = dir.join(name);
    std::fs::create_dir_all(&work).map_err(|e| format!("mkdir {}: {e}", work.display()))?;
    let log = dir.join(format!("{name}.log"));
    let logf = std::fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let mut args: Vec<String> = vec![
        "--port".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        "".into(),
        "--appendonly".into(),
        "no".into(),
        "--enable-debug-command".into(),
        "local".into(),
    ];
    args.extend(extra.iter().cloned());
    let child = Command::new(bin)
        .args(&args)
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(logf.try_clone().map_err(|e| e.to_string())?)
        .stderr(logf)
        .spawn()
        .map_err(|e| format!("{name}: cannot run {bin}: {e}"))?;
    let mut server = Server { child, port, log };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!(
                "{name} ({bin} {}) exited with {status} before accepting connections; log {}:\n{}",
                show_args(&args),
                server.log.display(),
                log_tail(&server.log)
            ));
        }
        if let Ok(mut c) = Conn::open(port) {
            c.send(b"*1\r\n$4\r\nPING\r\n");
            if let Reply::Val(Val::Line(b'+', s)) = c.read_reply() {
                if s == b"PONG" {
                    return Ok(server);
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{name} ({bin} {}) did not answer PING on port {port} within 15s; log {}:\n{}",
                show_args(&args),
                server.log.display(),
                log_tail(&server.log)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn show_args(args: &[String]) -> String {
    args.iter()
        .map(|a| if a.is_empty() { "\"\"".to_string() } else { a.clone() })
        .collect::<Vec<_>>()
        .join(" ")
}

fn on_path(bin: &str) -> Option<PathBuf> {
    if bin.contains('/') {
        let p = PathBuf::from(bin);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

/// Output that `cargo test` does not capture, so the report is always shown.
fn out(s: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(s.as_bytes());
    let _ = e.write_all(b"\n");
}

fn env_nonempty(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|s| !s.is_empty())
}

fn load_cases(dir: &Path) -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read case directory {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no case files in {}", dir.display());
    let mut all = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let rel = format!("tests/diff/{}", f.file_name().unwrap().to_string_lossy());
        match parse_file(&rel, &text) {
            Ok(mut c) => all.append(&mut c),
            Err(e) => panic!("case file error: {e}"),
        }
    }
    all
}

/// Keeps huge replies from flooding the report.
fn clip(s: String) -> String {
    const MAX: usize = 2000;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &s[..end], s.len())
}

/// Runs one case on both servers in lock step; returns the failure report, if any.
fn run_case(case: &Case, oport: u16, cport: u16, dump: bool) -> Option<String> {
    let mut o = Side::new(oport, case.resp3);
    let mut c = Side::new(cport, case.resp3);
    let mut report = String::new();
    let mut mismatches = 0;
    // The case's first connection: handshake and FLUSHALL.
    for (side, who) in [(&mut o, "oracle"), (&mut c, "candidate")] {
        match side.open(true) {
            Ok(conn) => {
                side.conns.resize_with(2, || None);
                side.conns[1] = Some(conn);
            }
            Err(e) => {
                let _ = writeln!(report, "  setup on {who} failed: {e}");
                return Some(report);
            }
        }
    }
    if dump {
        out(&format!(
            "== {}:{} {}{}",
            case.file,
            case.line,
            case.name,
            if case.resp3 { " (resp3)" } else { "" }
        ));
    }
    for step in &case.steps {
        if let Action::Sleep(ms) = step.action {
            std::thread::sleep(Duration::from_millis(ms));
            continue;
        }
        let or = o.run(step);
        let cr = c.run(step);
        if dump {
            out(&format!("  {}", step.text));
            for r in &or {
                out(&format!("    -> {}", clip(r.render())));
            }
        }
        let n = or.len().max(cr.len());
        for i in 0..n {
            let missing = Reply::Broken("<no reply>".into());
            let (a, b) = (or.get(i).unwrap_or(&missing), cr.get(i).unwrap_or(&missing));
            let (a, b, ab, bb) = normalize(a, b, &step.mods);
            if ab != bb {
                mismatches += 1;
                if mismatches <= 5 {
                    let which = if n > 1 {
                        format!(" (reply {} of {n})", i + 1)
                    } else {
                        String::new()
                    };
                    let _ = writeln!(report, "  {}:{}: {}{which}", case.file, step.line, step.text);
                    let (ra, rb) = (clip(a.render()), clip(b.render()));
                    let _ = writeln!(report, "    oracle:    {ra}");
                    let _ = writeln!(report, "    candidate: {rb}");
                    if ra == rb || !step.mods.masks.is_empty() {
                        let _ = writeln!(report, "    oracle bytes:    {}", clip(escape(&ab)));
                        let _ = writeln!(report, "    candidate bytes: {}", clip(escape(&bb)));
                    }
                }
            }
        }
    }
    if mismatches > 5 {
        let _ = writeln!(report, "  ... and {} more mismatches in this case", mismatches - 5);
    }
    (mismatches > 0).then_some(report)
}

#[test]
fn differential() {
    let allow_skip = std::env::var("DIFF_ALLOW_SKIP").is_ok_and(|v| v == "1");
    let oracle_bin = env_nonempty("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
    if on_path(&oracle_bin).is_none() {
        let msg = format!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!! SKIP differential tests: oracle `{oracle_bin}` not found (set REDIS_SERVER)\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        );
        out(&msg);
        if allow_skip {
            return;
        }
        panic!("redis-server not installed and DIFF_ALLOW_SKIP=1 not set");
    }
    let cand_bin = env_nonempty("BASALT_BIN")
        .or_else(|| option_env!("CARGO_BIN_EXE_basalt").map(String::from))
        .expect("no candidate: set BASALT_BIN (Cargo did not build a `basalt` binary)");
    let cand_args: Vec<String> = match std::env::var("BASALT_ARGS") {
        Ok(s) => s.split_whitespace().map(String::from).collect(),
        Err(_)
            if Path::new(&cand_bin)
                .file_name()
                .is_some_and(|f| f.to_string_lossy().contains("redis-server")) =>
        {
            Vec::new()
        }
        Err(_) => vec!["--shards".into(), "4".into()],
    };

    let dir = env_nonempty("DIFF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diff"));
    let filter = env_nonempty("DIFF_FILTER");
    let dump = std::env::var("DIFF_DUMP").is_ok_and(|v| v == "1");
    let cases: Vec<Case> = load_cases(&dir)
        .into_iter()
        .filter(|c| match &filter {
            None => true,
            Some(f) => format!("{}:{}", c.file, c.name).contains(f.as_str()),
        })
        .collect();

    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    let tmp = std::env::temp_dir().join(format!("basalt-diff-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("create temp dir");
    let oracle = start_server("oracle", &oracle_bin, &[], &tmp).unwrap_or_else(|e| panic!("{e}"));
    let cand = start_server("candidate", &cand_bin, &cand_args, &tmp).unwrap_or_else(|e| panic!("{e}"));
    out(&format!(
        "differential: {} cases; oracle {oracle_bin} on :{} (log {}), candidate {cand_bin} {} on :{} (log {})",
        cases.len(),
        oracle.port,
        oracle.log.display(),
        show_args(&cand_args),
        cand.port,
        cand.log.display()
    ));

    if cases.is_empty() {
        out(&format!(
            "!!! DIFF_FILTER={:?} matches no case",
            filter.as_deref().unwrap_or("")
        ));
    }
    let started = Instant::now();
    let mut cand = cand;
    let (mut passed, mut failed) = (0, 0);
    let mut skipped = Vec::new();
    let mut crashed = None;
    let mut last_setup_failure: Option<String> = None;
    let mut repeated_setup_failures = 0;
    for (i, case) in cases.iter().enumerate() {
        if let Some(why) = &case.skip {
            skipped.push(format!("  {}:{} {}: {why}", case.file, case.line, case.name));
            continue;
        }
        match run_case(case, oracle.port, cand.port, dump) {
            None => passed += 1,
            Some(report) => {
                failed += 1;
                // The same setup failure (say FLUSHALL unsupported) is reported once, then counted.
                if report.starts_with("  setup on") {
                    if last_setup_failure.as_deref() == Some(report.as_str()) {
                        repeated_setup_failures += 1;
                        continue;
                    }
                    last_setup_failure = Some(report.clone());
                }
                out(&format!(
                    "FAIL {}:{} case {}\n{}",
                    case.file,
                    case.line,
                    case.name,
                    report.trim_end()
                ));
                // A crashed candidate would fail every later case: say so once and stop.
                if let Ok(Some(status)) = cand.child.try_wait() {
                    crashed = Some(status);
                    let rest = cases[i + 1..].iter().filter(|c| c.skip.is_none()).count();
                    failed += rest;
                    out(&format!(
                        "!!! candidate exited during case {} ({status}); {rest} remaining cases not run; log {}:\n{}",
                        case.name,
                        cand.log.display(),
                        log_tail(&cand.log)
                    ));
                    break;
                }
            }
        }
    }
    if repeated_setup_failures > 0 {
        out(&format!(
            "{repeated_setup_failures} more cases failed with the same setup failure (not listed)"
        ));
    }
    if !skipped.is_empty() {
        out(&format!(
            "SKIPPED {} known gaps:\n{}",
            skipped.len(),
            skipped.join("\n")
        ));
    }
    out(&format!(
        "differential: finished in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    out(&format!("{passed} passed, {failed} failed"));
    drop(oracle);
    drop(cand);
    if failed == 0 && crashed.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(
        failed == 0 && crashed.is_none(),
        "{failed} differential cases failed (logs in {})",
        tmp.display()
    );
}

#[test]
fn split_args_matches_redis_cli() {
    let s = |l: &str| split_args(l.as_bytes()).unwrap();
    assert_eq!(
        s(r#"SET k "a b""#),
        vec![b"SET".to_vec(), b"k".to_vec(), b"a b".to_vec()]
    );
    assert_eq!(s(r#"SET "" "\x00\xff\n""#)[1..], [b"".to_vec(), vec![0, 0xff, b'\n']]);
    assert_eq!(
        s(r#"a 'it\'s' b\x41"#),
        vec![b"a".to_vec(), b"it's".to_vec(), b"b\\x41".to_vec()]
    );
    assert!(split_args(br#"SET "a"b"#).is_err());
    assert!(split_args(br#"SET "a"#).is_err());
}

#[test]
fn mask_regex() {
    let r = |p: &str, t: &str| String::from_utf8(Regex::new(p).unwrap().replace_all(t.as_bytes(), b"#")).unwrap();
    assert_eq!(r(r"\d+", "id:42 x 7"), "id:# x #");
    assert_eq!(r(r"id\r\n:\d+", "id\r\n:17\r\n"), "#\r\n");
    assert_eq!(r(r"(ab|c)+d?", "xababcd y"), "x# y");
    assert_eq!(r(r"[^a-c]", "abxc"), "ab#c");
    assert_eq!(r(r"a.*c", "abcbc!"), "#!");
    assert_eq!(r(r"\$\d+\r\n[0-9.]+", "$6\r\n7.0.15\r\n"), "#\r\n");
    assert_eq!(r(r"^\+\d+", "+12 +34"), "# +34");
    assert_eq!(r(r"\d$", "12 34"), "12 3#");
}
