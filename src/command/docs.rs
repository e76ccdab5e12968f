//! `COMMAND DOCS`: a command's argument tree, rebuilt from the grammar its [`CommandSpec`]
//! declares in `syntax`, and the DOCS reply.
//!
//! The grammar is the one redis.io renders from Redis's argument tables, so the tree can be
//! read back from the text:
//! - a word in capitals (`NX`, `LIB-NAME`, `=`) is a token; any other word names a value
//!   (`key`, `seconds`, `ip:port`), typed after its name;
//! - a token followed by values, or by a `<...>` choice, is one argument carrying that token
//!   (`EX seconds`, `LIMIT offset count`, `TYPE <NORMAL | MASTER>`);
//! - `[...]` is optional, `<...>` groups, `a | b` inside either is a choice (`oneof`), several
//!   arguments in one group form a `block`;
//! - `X [X ...]` repeats X: `key [key ...]`, `key value [key value ...]` (a repeated block),
//!   `GET pattern [GET pattern ...]` (the token repeats too: `multiple_token`),
//!   `ID client-id [client-id ...]` (the token is given once).
//!
//! Names are the words themselves, as Redis names its value arguments; groups without a
//! token are named after their parts joined by `_`, repeated blocks `data`.

use crate::command::{flags, CommandSpec};
use crate::resp::Reply;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType {
    String,
    Integer,
    Double,
    Key,
    Pattern,
    UnixTime,
    PureToken,
    OneOf,
    Block,
}

impl ArgType {
    /// The name DOCS reports (Redis's ARG_TYPE_STR).
    pub fn name(self) -> &'static str {
        match self {
            ArgType::String => "string",
            ArgType::Integer => "integer",
            ArgType::Double => "double",
            ArgType::Key => "key",
            ArgType::Pattern => "pattern",
            ArgType::UnixTime => "unix-time",
            ArgType::PureToken => "pure-token",
            ArgType::OneOf => "oneof",
            ArgType::Block => "block",
        }
    }

    fn has_children(self) -> bool {
        matches!(self, ArgType::OneOf | ArgType::Block)
    }
}

/// Argument flags, in the order DOCS prints them.
pub const OPTIONAL: u8 = 1 << 0;
pub const MULTIPLE: u8 = 1 << 1;
pub const MULTIPLE_TOKEN: u8 = 1 << 2;
const ARG_FLAG_NAMES: &[(u8, &str)] = &[
    (OPTIONAL, "optional"),
    (MULTIPLE, "multiple"),
    (MULTIPLE_TOKEN, "multiple_token"),
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    pub name: String,
    pub kind: ArgType,
    /// For `key` arguments: which of the command's key specs finds this key.
    pub key_spec_index: Option<usize>,
    pub token: Option<String>,
    pub flags: u8,
    /// The choices of a `oneof`, the parts of a `block`.
    pub args: Vec<Arg>,
}

impl Arg {
    fn new(name: impl Into<String>, kind: ArgType) -> Arg {
        Arg {
            name: name.into(),
            kind,
            key_spec_index: None,
            token: None,
            flags: 0,
            args: Vec::new(),
        }
    }

    fn parent(name: String, kind: ArgType, args: Vec<Arg>) -> Arg {
        Arg {
            args,
            ..Arg::new(name, kind)
        }
    }
}

/// A grammar that does not parse: `at` is a byte offset into it.
#[derive(Debug, PartialEq, Eq)]
pub struct GrammarError {
    pub at: usize,
    pub what: &'static str,
}

impl std::fmt::Display for GrammarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// What a command's grammar needs to know about the command to type its arguments.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context {
    /// How many key specs the command has: the first key-named arguments get their indices.
    pub key_specs: usize,
    /// Blocking commands take their `timeout` in (fractional) seconds.
    pub blocking: bool,
    /// `...FLOAT` commands take a floating `increment`.
    pub float: bool,
}

impl Context {
    pub fn of(spec: &CommandSpec) -> Context {
        Context {
            key_specs: spec.key_specs.len(),
            blocking: spec.has(flags::BLOCKING),
            float: spec.name.contains("float"),
        }
    }
}

/// The argument tree of `spec`'s grammar.
pub fn arguments(spec: &CommandSpec) -> Result<Vec<Arg>, GrammarError> {
    parse(spec.syntax, Context::of(spec))
}

/// Parses a grammar into its argument tree.
pub fn parse(syntax: &str, cx: Context) -> Result<Vec<Arg>, GrammarError> {
    let toks = tokenize(syntax);
    let mut p = Parser {
        toks,
        pos: 0,
        len: syntax.len(),
    };
    let (mut alts, _) = p.alternatives(None)?;
    if alts.len() != 1 {
        return Err(GrammarError {
            at: 0,
            what: "a choice outside of a group",
        });
    }
    let items = alts.pop().unwrap_or_default();
    let mut args = convert_seq(&items, &cx).map_err(|what| GrammarError { at: 0, what })?;
    let mut next_key = 0;
    assign_keys(&mut args, cx.key_specs, &mut next_key);
    Ok(args)
}

// ---- tokens and syntax ----------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Open,
    Close,
    LAngle,
    RAngle,
    Bar,
    Ellipsis,
    Word(&'a str),
}

fn is_delim(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'[' | b']' | b'<' | b'>' | b'|')
}

fn tokenize(s: &str) -> Vec<(usize, Tok<'_>)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let tok = match b[i] {
            b' ' | b'\t' => {
                i += 1;
                continue;
            }
            b'[' => Tok::Open,
            b']' => Tok::Close,
            b'<' => Tok::LAngle,
            b'>' => Tok::RAngle,
            b'|' => Tok::Bar,
            _ if s[i..].starts_with("...") => {
                out.push((i, Tok::Ellipsis));
                i += 3;
                continue;
            }
            _ => {
                let start = i;
                while i < b.len() && !is_delim(b[i]) {
                    i += 1;
                }
                out.push((start, Tok::Word(&s[start..i])));
                continue;
            }
        };
        out.push((i, tok));
        i += 1;
    }
    out
}

/// The grammar's structure before it becomes arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Syn<'a> {
    Word(&'a str),
    /// `[a | b]` (optional) or `<a | b>`: one sequence per alternative.
    Group {
        alts: Vec<Vec<Syn<'a>>>,
        optional: bool,
    },
    /// `[X ...]`: more of what precedes it.
    More(Vec<Vec<Syn<'a>>>),
}

struct Parser<'a> {
    toks: Vec<(usize, Tok<'a>)>,
    pos: usize,
    len: usize,
}

impl<'a> Parser<'a> {
    /// Reads alternatives up to `close` (None: the end of the grammar); also says whether the
    /// group ended with `...`.
    fn alternatives(&mut self, close: Option<Tok<'a>>) -> Result<Alternatives<'a>, GrammarError> {
        let mut alts: Vec<Vec<Syn<'a>>> = vec![Vec::new()];
        let mut more = false;
        loop {
            let Some(&(at, tok)) = self.toks.get(self.pos) else {
                if close.is_some() {
                    return Err(GrammarError {
                        at: self.len,
                        what: "unclosed group",
                    });
                }
                return finish(alts, more, self.len, true);
            };
            self.pos += 1;
            let err = |what| Err(GrammarError { at, what });
            if more && Some(tok) != close {
                return err("'...' must end its bracket");
            }
            let current = alts.last_mut().expect("never empty");
            match tok {
                Tok::Close | Tok::RAngle if Some(tok) == close => return finish(alts, more, at, false),
                Tok::Close | Tok::RAngle => return err("unbalanced bracket"),
                Tok::Bar if current.is_empty() => return err("empty alternative"),
                Tok::Bar => alts.push(Vec::new()),
                Tok::Ellipsis if close != Some(Tok::Close) => return err("'...' outside of [ ]"),
                Tok::Ellipsis => more = true,
                Tok::Open => {
                    let (inner, repeated) = self.alternatives(Some(Tok::Close))?;
                    current.push(if repeated {
                        Syn::More(inner)
                    } else {
                        Syn::Group {
                            alts: inner,
                            optional: true,
                        }
                    });
                }
                Tok::LAngle => {
                    let (inner, _) = self.alternatives(Some(Tok::RAngle))?;
                    current.push(Syn::Group {
                        alts: inner,
                        optional: false,
                    });
                }
                Tok::Word(w) => current.push(Syn::Word(w)),
            }
        }
    }
}

/// A group's alternatives, and whether it ended with `...`.
type Alternatives<'a> = (Vec<Vec<Syn<'a>>>, bool);

/// Every alternative must say something; only a whole grammar may be empty (no arguments).
fn finish(alts: Vec<Vec<Syn<'_>>>, more: bool, at: usize, whole: bool) -> Result<Alternatives<'_>, GrammarError> {
    let empty_ok = whole && alts.len() == 1 && !more;
    if !empty_ok && alts.iter().any(|a| a.is_empty()) {
        return Err(GrammarError {
            at,
            what: "empty group or alternative",
        });
    }
    Ok((alts, more))
}

// ---- syntax to arguments ---------------------------------------------------------------------

/// A token is a word without lower-case letters: `NX`, `LIB-NAME`, `=`, `*`.
fn is_token(w: &str) -> bool {
    !w.bytes().any(|b| b.is_ascii_lowercase())
}

/// A value argument, typed after its name as Redis's tables type them.
fn value_arg(w: &str, cx: &Context) -> Arg {
    let kind = match w {
        "newkey" | "destkey" | "source" | "destination" => ArgType::Key,
        _ if w
            .strip_prefix("key")
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            ArgType::Key
        }
        "pattern" => ArgType::Pattern,
        "unix-time-seconds" | "unix-time-milliseconds" => ArgType::UnixTime,
        "increment" | "decrement" if cx.float => ArgType::Double,
        "timeout" if cx.blocking => ArgType::Double,
        "score" | "weight" | "longitude" | "latitude" | "radius" | "width" | "height" => ArgType::Double,
        "count" | "seconds" | "milliseconds" | "index" | "offset" | "numkeys" | "db" | "destination-db" | "port"
        | "start" | "end" | "stop" | "protover" | "client-id" | "maxage" | "cursor" | "numreplicas" | "rank"
        | "num-matches" | "len" | "timeout" | "increment" | "decrement" | "numfields" | "length" | "index1"
        | "index2" | "ttl" | "bit" | "numsamples" => ArgType::Integer,
        _ => ArgType::String,
    };
    Arg::new(w, kind)
}

/// A group without a token of its own is named after its parts, each by its token if it has one.
fn joined_name(args: &[Arg]) -> String {
    let label = |a: &Arg| {
        a.token
            .as_ref()
            .map_or_else(|| a.name.clone(), |t| t.to_ascii_lowercase())
    };
    args.iter().map(label).collect::<Vec<_>>().join("_")
}

fn convert_seq(items: &[Syn<'_>], cx: &Context) -> Result<Vec<Arg>, &'static str> {
    let mut out: Vec<Arg> = Vec::new();
    let mut i = 0;
    while i < items.len() {
        match &items[i] {
            Syn::Word(tok) if is_token(tok) => {
                i += 1;
                let mut values = Vec::new();
                if let Some(Syn::Group { alts, optional: false }) = items.get(i) {
                    values.push(group_arg(alts, false, cx)?);
                    i += 1;
                } else {
                    while let Some(Syn::Word(v)) = items.get(i) {
                        if is_token(v) {
                            break;
                        }
                        values.push(value_arg(v, cx));
                        i += 1;
                    }
                }
                out.push(with_token(tok, values));
            }
            Syn::Word(w) => {
                out.push(value_arg(w, cx));
                i += 1;
            }
            Syn::Group { alts, optional } => {
                out.push(group_arg(alts, *optional, cx)?);
                i += 1;
            }
            Syn::More(alts) => {
                let content = if alts.len() == 1 {
                    convert_seq(&alts[0], cx)?
                } else {
                    vec![group_arg(alts, false, cx)?]
                };
                repeat(&mut out, &content)?;
                i += 1;
            }
        }
    }
    Ok(out)
}

/// A token and the values that follow it: a pure token, a value introduced by the token
/// (`EX seconds`, the choice of `TYPE <...>`), or a block of several values.
fn with_token(tok: &str, mut values: Vec<Arg>) -> Arg {
    let mut arg = match values.len() {
        0 => Arg::new(tok.to_ascii_lowercase(), ArgType::PureToken),
        1 => {
            let mut v = values.pop().expect("one value");
            if v.kind.has_children() {
                v.name = tok.to_ascii_lowercase();
            }
            v
        }
        _ => Arg::parent(tok.to_ascii_lowercase(), ArgType::Block, values),
    };
    arg.token = Some(tok.to_string());
    arg
}

/// `[...]` or `<...>`: one argument, a choice between alternatives, or a block.
fn group_arg(alts: &[Vec<Syn<'_>>], optional: bool, cx: &Context) -> Result<Arg, &'static str> {
    // `[A | B [A | B ...]]`: a repeated choice writes its repetition inside the last alternative.
    if let [.., last] = alts {
        if let [.., Syn::More(repeated)] = last.as_slice() {
            let mut stripped = alts.to_vec();
            if let Some(l) = stripped.last_mut() {
                l.pop();
            }
            if alts.len() > 1 && *repeated == stripped {
                let mut arg = group_arg(&stripped, optional, cx)?;
                arg.flags |= MULTIPLE;
                return Ok(arg);
            }
        }
    }
    let mut choices = Vec::with_capacity(alts.len());
    for alt in alts {
        let mut parts = convert_seq(alt, cx)?;
        choices.push(match parts.len() {
            0 => return Err("empty group"),
            1 => parts.pop().expect("one part"),
            _ => Arg::parent(joined_name(&parts), ArgType::Block, parts),
        });
    }
    let mut arg = if choices.len() == 1 {
        choices.pop().expect("one choice")
    } else {
        Arg::parent(joined_name(&choices), ArgType::OneOf, choices)
    };
    if optional {
        arg.flags |= OPTIONAL;
    }
    Ok(arg)
}

/// `[X ...]`: marks the X just before it as repeated.
fn repeat(out: &mut Vec<Arg>, content: &[Arg]) -> Result<(), &'static str> {
    if repeat_suffix(out, content) {
        return Ok(());
    }
    // The repeated values may be the last ones of a token block: `FIELDS numfields field [field ...]`.
    if let Some(last) = out.last_mut() {
        if last.kind == ArgType::Block && last.token.is_some() && repeat_suffix(&mut last.args, content) {
            return Ok(());
        }
    }
    Err("'...' repeats nothing that precedes it")
}

fn repeat_suffix(list: &mut Vec<Arg>, content: &[Arg]) -> bool {
    let n = content.len();
    if n == 0 || list.len() < n {
        return false;
    }
    let start = list.len() - n;
    if n == 1 {
        let (target, c) = (&mut list[start], &content[0]);
        if target == c {
            target.flags |= MULTIPLE;
            if c.token.is_some() {
                target.flags |= MULTIPLE_TOKEN;
            }
            return true;
        }
        // `ID client-id [client-id ...]`: the token is given once, its value repeats.
        if c.token.is_none()
            && target.token.is_some()
            && (Arg {
                token: None,
                ..target.clone()
            }) == *c
        {
            target.flags |= MULTIPLE;
            return true;
        }
        return false;
    }
    if list[start..] != *content {
        return false;
    }
    let parts = list.split_off(start);
    let mut block = Arg::parent("data".to_string(), ArgType::Block, parts);
    block.flags = MULTIPLE;
    list.push(block);
    true
}

/// Key-named arguments, in order, take the command's key spec indices; past the last spec
/// they are plain strings.
fn assign_keys(args: &mut [Arg], specs: usize, next: &mut usize) {
    for a in args {
        if a.kind == ArgType::Key {
            if *next < specs {
                a.key_spec_index = Some(*next);
                *next += 1;
            } else {
                a.kind = ArgType::String;
            }
        }
        assign_keys(&mut a.args, specs, next);
    }
}

// ---- the DOCS reply --------------------------------------------------------------------------

/// One command's documentation map (Redis's addReplyCommandDocs), its subcommands' included.
/// `full_name` is how the command is named in the reply ("client", "client|list").
pub fn reply_docs(out: &mut Reply, spec: &CommandSpec, full_name: &str) {
    // A grammar that does not parse shows no arguments rather than a wrong tree; the table
    // tests parse every grammar.
    let args = arguments(spec).unwrap_or_default();
    let fields = [spec.summary, spec.since, spec.complexity]
        .iter()
        .filter(|s| !s.is_empty())
        .count()
        + 1
        + usize::from(!spec.doc_flags.is_empty())
        + usize::from(!args.is_empty())
        + usize::from(!spec.subcommands.is_empty());
    out.map(fields);
    if !spec.summary.is_empty() {
        out.bulk(b"summary");
        out.bulk(spec.summary.as_bytes());
    }
    if !spec.since.is_empty() {
        out.bulk(b"since");
        out.bulk(spec.since.as_bytes());
    }
    out.bulk(b"group");
    out.bulk(spec.group.as_bytes());
    if !spec.complexity.is_empty() {
        out.bulk(b"complexity");
        out.bulk(spec.complexity.as_bytes());
    }
    if !spec.doc_flags.is_empty() {
        out.bulk(b"doc_flags");
        out.set(spec.doc_flags.len());
        for f in spec.doc_flags {
            out.simple(f);
        }
    }
    if !args.is_empty() {
        out.bulk(b"arguments");
        reply_args(out, &args);
    }
    if !spec.subcommands.is_empty() {
        out.bulk(b"subcommands");
        out.map(spec.subcommands.len());
        for sub in spec.subcommands {
            let name = format!("{full_name}|{}", sub.name);
            out.bulk(name.as_bytes());
            reply_docs(out, sub, &name);
        }
    }
}

/// An argument list (Redis 7.2's addReplyCommandArgList: `display_text` for every argument
/// that is not a group).
pub fn reply_args(out: &mut Reply, args: &[Arg]) {
    out.array(args.len());
    for a in args {
        let groups = a.kind.has_children();
        let fields = 2
            + usize::from(!groups)
            + usize::from(a.key_spec_index.is_some())
            + usize::from(a.token.is_some())
            + usize::from(a.flags != 0)
            + usize::from(groups);
        out.map(fields);
        out.bulk(b"name");
        out.bulk(a.name.as_bytes());
        out.bulk(b"type");
        out.bulk(a.kind.name().as_bytes());
        if !groups {
            out.bulk(b"display_text");
            out.bulk(a.name.as_bytes());
        }
        if let Some(i) = a.key_spec_index {
            out.bulk(b"key_spec_index");
            out.int(i as i64);
        }
        if let Some(t) = &a.token {
            out.bulk(b"token");
            out.bulk(t.as_bytes());
        }
        if a.flags != 0 {
            out.bulk(b"flags");
            let names: Vec<&str> = ARG_FLAG_NAMES
                .iter()
                .filter(|(f, _)| a.flags & f != 0)
                .map(|(_, n)| *n)
                .collect();
            out.set(names.len());
            for n in names {
                out.simple(n);
            }
        }
        if groups {
            out.bulk(b"arguments");
            reply_args(out, &a.args);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::Proto;

    const KEYS1: Context = Context {
        key_specs: 1,
        blocking: false,
        float: false,
    };

    fn p(s: &str) -> Vec<Arg> {
        parse(s, KEYS1).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// A compact rendering of a tree: name:type, then {token}, then flags o/m/t, then children.
    fn show(args: &[Arg]) -> String {
        args.iter()
            .map(|a| {
                let mut s = format!("{}:{}", a.name, a.kind.name());
                if let Some(i) = a.key_spec_index {
                    s += &format!("#{i}");
                }
                if let Some(t) = &a.token {
                    s += &format!("{{{t}}}");
                }
                for (f, c) in [(OPTIONAL, 'o'), (MULTIPLE, 'm'), (MULTIPLE_TOKEN, 't')] {
                    if a.flags & f != 0 {
                        s.push(c);
                    }
                }
                if !a.args.is_empty() {
                    s += &format!("({})", show(&a.args));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn simple_and_repeated() {
        assert_eq!(show(&p("")), "");
        assert_eq!(show(&p("key")), "key:key#0");
        assert_eq!(show(&p("key [key ...]")), "key:key#0m");
        assert_eq!(
            show(&p("key value [key value ...]")),
            "data:blockm(key:key#0 value:string)"
        );
        assert_eq!(show(&p("[message]")), "message:stringo");
        assert_eq!(show(&p("[username] password")), "username:stringo password:string");
        assert_eq!(show(&p("numkeys key [key ...]")), "numkeys:integer key:key#0m");
    }

    #[test]
    fn set_options() {
        assert_eq!(
            show(&p("key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]")),
            "key:key#0 value:string nx_xx:oneofo(nx:pure-token{NX} xx:pure-token{XX}) get:pure-token{GET}o \
             ex_px_exat_pxat_keepttl:oneofo(seconds:integer{EX} \
             milliseconds:integer{PX} unix-time-seconds:unix-time{EXAT} unix-time-milliseconds:unix-time{PXAT} \
             keepttl:pure-token{KEEPTTL})"
        );
    }

    #[test]
    fn tokens_with_values_and_choices() {
        assert_eq!(
            show(&p("<ON | OFF>")),
            "on_off:oneof(on:pure-token{ON} off:pure-token{OFF})"
        );
        assert_eq!(
            show(&p("<LIB-NAME libname | LIB-VER libver>")),
            "lib-name_lib-ver:oneof(libname:string{LIB-NAME} libver:string{LIB-VER})"
        );
        assert_eq!(
            show(&p(
                "[FILTERBY <MODULE module-name | ACLCAT category | PATTERN pattern>]"
            )),
            "filterby:oneof{FILTERBY}o(module-name:string{MODULE} category:string{ACLCAT} pattern:pattern{PATTERN})"
        );
        assert_eq!(
            show(&p("[LIMIT offset count]")),
            "limit:block{LIMIT}o(offset:integer count:integer)"
        );
        assert_eq!(
            show(&p(
                "[TYPE <NORMAL | MASTER | REPLICA | PUBSUB>] [ID client-id [client-id ...]]"
            )),
            "type:oneof{TYPE}o(normal:pure-token{NORMAL} master:pure-token{MASTER} replica:pure-token{REPLICA} \
             pubsub:pure-token{PUBSUB}) client-id:integer{ID}om"
        );
    }

    #[test]
    fn repeated_tokens_and_blocks() {
        assert_eq!(show(&p("[GET pattern [GET pattern ...]]")), "pattern:pattern{GET}omt");
        assert_eq!(show(&p("[WEIGHTS weight [weight ...]]")), "weight:double{WEIGHTS}om");
        assert_eq!(
            show(&p("key FIELDS numfields field [field ...]")),
            "key:key#0 fields:block{FIELDS}(numfields:integer field:stringm)"
        );
        assert_eq!(
            show(&p("[field value [field value ...]]")),
            "data:blockom(field:string value:string)"
        );
    }

    #[test]
    fn nested_groups() {
        assert_eq!(
            show(&p("[protover [AUTH username password] [SETNAME clientname]]")),
            "protover_auth_setname:blocko(protover:integer auth:block{AUTH}o(username:string password:string) \
             clientname:string{SETNAME}o)"
        );
        assert_eq!(
            show(&p("key [start end [BYTE | BIT]]")),
            "key:key#0 start_end_byte_bit:blocko(start:integer end:integer byte_bit:oneofo(byte:pure-token{BYTE} bit:pure-token{BIT}))"
        );
        let kill = "<ip:port | <[ID client-id] | [TYPE <NORMAL | MASTER>] | [SKIPME <YES | NO>]> \
                    [[ID client-id] | [TYPE <NORMAL | MASTER>] | [SKIPME <YES | NO>] ...]>";
        let filters = "client-id:integer{ID}o type:oneof{TYPE}o(normal:pure-token{NORMAL} master:pure-token{MASTER}) \
                       skipme:oneof{SKIPME}o(yes:pure-token{YES} no:pure-token{NO})";
        assert_eq!(
            show(&p(kill)),
            format!("ip:port_id_type_skipme:oneof(ip:port:string id_type_skipme:oneofm({filters}))")
        );
    }

    /// Grammars as redis.io shows them, the knottier ones.
    const REDIS_GRAMMARS: &[&str] = &[
        "key [NOMKSTREAM] [<MAXLEN | MINID> [= | ~] threshold [LIMIT count]] <* | id> field value [field value ...]",
        "key <FROMMEMBER member | FROMLONLAT longitude latitude> <BYRADIUS radius <M | KM | FT | MI> | BYBOX width height <M | KM | FT | MI>> [ASC | DESC] [COUNT count [ANY]] [WITHCOORD] [WITHDIST] [WITHHASH]",
        "key [GET encoding offset | [OVERFLOW <WRAP | SAT | FAIL>] <SET encoding offset value | INCRBY encoding offset increment> [GET encoding offset | [OVERFLOW <WRAP | SAT | FAIL>] <SET encoding offset value | INCRBY encoding offset increment> ...]]",
        "key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] [ASC | DESC] [ALPHA] [STORE destination]",
        "key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]",
        "host port <key | \"\"> destination-db timeout [COPY] [REPLACE] [AUTH password | AUTH2 username password] [KEYS key [key ...]]",
        "GROUP group consumer [COUNT count] [BLOCK milliseconds] [NOACK] STREAMS key [key ...] id [id ...]",
        "destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE <SUM | MIN | MAX>]",
        "script numkeys [key [key ...]] [arg [arg ...]]",
        "[TO host port [FORCE]] [ABORT] [TIMEOUT milliseconds]",
        "<ON | OFF> [REDIRECT client-id] [PREFIX prefix [PREFIX prefix ...]] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]",
        "key group <id | $> [MKSTREAM] [ENTRIESREAD entries-read]",
        "slot <IMPORTING node-id | MIGRATING node-id | NODE node-id | STABLE>",
        "path [CONFIG name value [CONFIG name value ...]] [ARGS args [args ...]]",
        "key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-time-milliseconds] [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID lastid]",
        "numkeys key [key ...] <LEFT | RIGHT> [COUNT count]",
        "key bit [start [end [BYTE | BIT]]]",
        "key1 key2 [LEN] [IDX] [MINMATCHLEN min-match-len] [WITHMATCHLEN]",
    ];

    #[test]
    fn redis_grammars() {
        for g in REDIS_GRAMMARS {
            p(g);
        }
        assert_eq!(
            show(&p(REDIS_GRAMMARS[2])),
            "key:key#0 get_overflow_set_incrby:oneofom(get:block{GET}(encoding:string offset:integer) \
             overflow_set_incrby:block(overflow:oneof{OVERFLOW}o(wrap:pure-token{WRAP} sat:pure-token{SAT} fail:pure-token{FAIL}) \
             set_incrby:oneof(set:block{SET}(encoding:string offset:integer value:string) \
             incrby:block{INCRBY}(encoding:string offset:integer increment:integer))))"
        );
        assert_eq!(
            show(&p(REDIS_GRAMMARS[5])),
            "host:string port:integer key_\"\":oneof(key:key#0 \"\":pure-token{\"\"}) destination-db:integer timeout:integer \
             copy:pure-token{COPY}o replace:pure-token{REPLACE}o auth_auth2:oneofo(password:string{AUTH} \
             auth2:block{AUTH2}(username:string password:string)) key:string{KEYS}om"
        );
        let two = Context { key_specs: 2, ..KEYS1 };
        assert_eq!(
            show(&parse(REDIS_GRAMMARS[13], two).unwrap()),
            "path:string config:block{CONFIG}omt(name:string value:string) args:string{ARGS}om"
        );
        assert_eq!(
            show(&parse(REDIS_GRAMMARS[17], two).unwrap()),
            "key1:key#0 key2:key#1 len:pure-token{LEN}o idx:pure-token{IDX}o min-match-len:string{MINMATCHLEN}o \
             withmatchlen:pure-token{WITHMATCHLEN}o"
        );
    }

    #[test]
    fn keys_take_spec_indices_in_order() {
        let two = Context { key_specs: 2, ..KEYS1 };
        assert_eq!(show(&parse("key newkey", two).unwrap()), "key:key#0 newkey:key#1");
        assert_eq!(
            show(&parse("source destination", two).unwrap()),
            "source:key#0 destination:key#1"
        );
        // More key-named arguments than specs: the rest are strings.
        assert_eq!(
            show(&parse("key destination", KEYS1).unwrap()),
            "key:key#0 destination:string"
        );
        assert_eq!(show(&parse("key", Context::default()).unwrap()), "key:string");
        let blocking = Context {
            blocking: true,
            ..KEYS1
        };
        assert_eq!(
            show(&parse("key [key ...] timeout", blocking).unwrap()),
            "key:key#0m timeout:double"
        );
        let float = Context { float: true, ..KEYS1 };
        assert_eq!(
            show(&parse("key increment", float).unwrap()),
            "key:key#0 increment:double"
        );
        assert_eq!(show(&p("key increment")), "key:key#0 increment:integer");
    }

    #[test]
    fn bad_grammars_are_refused() {
        for bad in [
            "[key",
            "key]",
            "<a | b",
            "a | b",
            "[a | ]",
            "[| a]",
            "key ...",
            "[key ...",
            "[x ...] y",
            "<a ...>",
            "[]",
            "[a ... b]",
        ] {
            assert!(parse(bad, KEYS1).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn every_declared_grammar_parses() {
        for c in crate::command::table::all() {
            if let Err(e) = arguments(c.spec) {
                panic!("{}: {:?}: {e}", c.full_name, c.spec.syntax);
            }
        }
    }

    #[test]
    fn argument_replies() {
        let args = p("key [NX | XX] [GET pattern [GET pattern ...]]");
        let mut out = Reply::new(Proto::Resp2);
        reply_args(&mut out, &args[..1]);
        assert_eq!(
            &out.buf[..],
            &b"*1\r\n*8\r\n$4\r\nname\r\n$3\r\nkey\r\n$4\r\ntype\r\n$3\r\nkey\r\n$12\r\ndisplay_text\r\n$3\r\nkey\r\n\
               $14\r\nkey_spec_index\r\n:0\r\n"[..]
        );
        let mut out = Reply::new(Proto::Resp3);
        reply_args(&mut out, &args[1..2]);
        let expected = "*1\r\n%4\r\n$4\r\nname\r\n$5\r\nnx_xx\r\n$4\r\ntype\r\n$5\r\noneof\r\n$5\r\nflags\r\n~1\r\n+optional\r\n\
                        $9\r\narguments\r\n*2\r\n\
                        %4\r\n$4\r\nname\r\n$2\r\nnx\r\n$4\r\ntype\r\n$10\r\npure-token\r\n$12\r\ndisplay_text\r\n$2\r\nnx\r\n$5\r\ntoken\r\n$2\r\nNX\r\n\
                        %4\r\n$4\r\nname\r\n$2\r\nxx\r\n$4\r\ntype\r\n$10\r\npure-token\r\n$12\r\ndisplay_text\r\n$2\r\nxx\r\n$5\r\ntoken\r\n$2\r\nXX\r\n";
        assert_eq!(String::from_utf8_lossy(&out.buf), expected);
        let mut out = Reply::new(Proto::Resp3);
        reply_args(&mut out, &args[2..]);
        let expected = "*1\r\n%5\r\n$4\r\nname\r\n$7\r\npattern\r\n$4\r\ntype\r\n$7\r\npattern\r\n$12\r\ndisplay_text\r\n$7\r\npattern\r\n\
                        $5\r\ntoken\r\n$3\r\nGET\r\n$5\r\nflags\r\n~3\r\n+optional\r\n+multiple\r\n+multiple_token\r\n";
        assert_eq!(String::from_utf8_lossy(&out.buf), expected);
    }

    #[test]
    fn docs_reply_shape() {
        let get = crate::command::table::lookup(b"get").expect("get");
        let mut out = Reply::new(Proto::Resp3);
        reply_docs(&mut out, get.spec, "get");
        let s = String::from_utf8_lossy(&out.buf).into_owned();
        assert!(s.starts_with("%5\r\n$7\r\nsummary\r\n"), "{s}");
        assert!(s.contains("$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$6\r\nstring\r\n$10\r\ncomplexity\r\n$4\r\nO(1)\r\n$9\r\narguments\r\n*1\r\n%4\r\n"), "{s}");
        // A container: no arguments, a map of subcommands by full name.
        let client = crate::command::table::lookup(b"client").expect("client");
        let mut out = Reply::new(Proto::Resp2);
        reply_docs(&mut out, client.spec, "client");
        let s = String::from_utf8_lossy(&out.buf).into_owned();
        assert!(s.starts_with("*10\r\n"), "{s}");
        assert!(
            s.contains(&format!(
                "$11\r\nsubcommands\r\n*{}\r\n$9\r\nclient|id\r\n",
                2 * client.spec.subcommands.len()
            )),
            "{s}"
        );
    }
}
