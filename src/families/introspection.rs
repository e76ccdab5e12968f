//! COMMAND and its subcommands: the command table describing itself. Everything here reads
//! [`table::all`] and the [`CommandSpec`]s; nothing lists command names.

use bytes::Bytes;

use super::boxed;
use crate::command::docs::reply_docs;
use crate::command::keys::{key_positions, legacy_range};
use crate::command::table::{self, Cmd};
use crate::command::{acl, flags, flags::*, Args, Begin, CommandSpec, Find, KeySpec, LocalFuture, Run};
use crate::config::glob_match;
use crate::error::CmdError;
use crate::resp::Reply;
use crate::server::client::Client;

// ---- COMMAND INFO entries ----------------------------------------------------------------------

/// Key spec flags in the order Redis prints them (addReplyFlagsForKeyArgs), as it spells them.
const KEY_FLAG_NAMES: &[&str] = &[
    "RO",
    "RW",
    "OW",
    "RM",
    "access",
    "update",
    "insert",
    "delete",
    "not_key",
    "incomplete",
    "variable_flags",
];

fn has_key_flag(spec: &KeySpec, name: &str) -> bool {
    spec.flags.iter().any(|f| f.eq_ignore_ascii_case(name))
}

/// A key spec's flags as a set of status replies, in Redis's order whatever the declaration's.
fn reply_key_flags(out: &mut Reply, spec: &KeySpec) {
    let known: Vec<&str> = KEY_FLAG_NAMES
        .iter()
        .copied()
        .filter(|n| has_key_flag(spec, n))
        .collect();
    let unknown: Vec<&str> = spec
        .flags
        .iter()
        .copied()
        .filter(|f| !KEY_FLAG_NAMES.iter().any(|n| n.eq_ignore_ascii_case(f)))
        .collect();
    out.set(known.len() + unknown.len());
    for n in known.into_iter().chain(unknown) {
        out.simple(n);
    }
}

fn reply_key_spec(out: &mut Reply, spec: &KeySpec) {
    let notes = !spec.notes.is_empty();
    out.map(3 + usize::from(notes));
    if notes {
        out.bulk(b"notes");
        out.bulk(spec.notes.as_bytes());
    }
    out.bulk(b"flags");
    reply_key_flags(out, spec);
    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    match spec.begin {
        Begin::Index(index) => {
            out.bulk(b"index");
            out.bulk(b"spec");
            out.map(1);
            out.bulk(b"index");
            out.int(index as i64);
        }
        Begin::Keyword { keyword, startfrom } => {
            out.bulk(b"keyword");
            out.bulk(b"spec");
            out.map(2);
            out.bulk(b"keyword");
            out.bulk(keyword.as_bytes());
            out.bulk(b"startfrom");
            out.int(startfrom as i64);
        }
        Begin::Unknown(_) => {
            out.bulk(b"unknown");
            out.bulk(b"spec");
            out.map(0);
        }
    }
    out.bulk(b"find_keys");
    out.map(2);
    out.bulk(b"type");
    match spec.find {
        Find::Range { lastkey, step, limit } => {
            out.bulk(b"range");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"lastkey");
            out.int(lastkey as i64);
            out.bulk(b"keystep");
            out.int(step as i64);
            out.bulk(b"limit");
            out.int(limit as i64);
        }
        Find::Keynum {
            keynumidx,
            firstkey,
            step,
        } => {
            out.bulk(b"keynum");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"keynumidx");
            out.int(keynumidx as i64);
            out.bulk(b"firstkey");
            out.int(firstkey as i64);
            out.bulk(b"keystep");
            out.int(step as i64);
        }
        Find::Unknown => {
            out.bulk(b"unknown");
            out.bulk(b"spec");
            out.map(0);
        }
    }
}

/// One COMMAND INFO entry (Redis 7's addReplyCommandInfo): name, arity, flags, first key,
/// last key, step, ACL categories, tips, key specs, subcommands.
pub fn reply_info(out: &mut Reply, spec: &CommandSpec, full_name: &str) {
    let (first, last, step, movable) = legacy_range(spec.key_specs);
    let mut cmd_flags = spec.flags;
    // An incomplete spec leaves keys the legacy triple cannot show, as Redis's
    // populateCommandLegacyRangeSpec decides.
    if movable || spec.key_specs.iter().any(|k| has_key_flag(k, "incomplete")) {
        cmd_flags |= MOVABLEKEYS;
    }
    out.array(10);
    out.bulk(full_name.as_bytes());
    out.int(spec.arity as i64);
    // may_replicate is internal: Redis 7 hides it from COMMAND INFO.
    let shown: Vec<&str> = flags::NAMES
        .iter()
        .filter(|&&(f, _)| cmd_flags & f != 0 && f != MAY_REPLICATE)
        .map(|&(_, n)| n)
        .collect();
    out.set(shown.len());
    for n in shown {
        out.simple(n);
    }
    out.int(first);
    out.int(last);
    out.int(step);
    let cats = spec.acl_categories();
    let cat_names: Vec<&str> = acl::NAMES
        .iter()
        .filter(|&&(c, _)| cats & c != 0)
        .map(|&(_, n)| n)
        .collect();
    out.set(cat_names.len());
    for n in cat_names {
        out.simple(&format!("@{n}"));
    }
    out.set(spec.tips.len());
    for t in spec.tips {
        out.bulk(t.as_bytes());
    }
    out.set(spec.key_specs.len());
    for k in spec.key_specs {
        reply_key_spec(out, k);
    }
    if spec.subcommands.is_empty() {
        out.set(0);
    } else {
        out.array(spec.subcommands.len());
        for sub in spec.subcommands {
            reply_info(out, sub, &format!("{full_name}|{}", sub.name));
        }
    }
}

// ---- lookups -----------------------------------------------------------------------------------

fn top_level() -> impl Iterator<Item = &'static Cmd> {
    table::all().iter().filter(|c| c.parent.is_none())
}

/// The command a full command line names (Redis's lookupCommand): a container's subcommand
/// when the line has one.
fn lookup_line(argv: &[Bytes]) -> Option<&'static Cmd> {
    let top = table::lookup(argv.first()?)?;
    if top.spec.subcommands.is_empty() || argv.len() == 1 {
        return Some(top);
    }
    table::lookup_sub(top, &argv[1])
}

// ---- handlers ----------------------------------------------------------------------------------

/// `COMMAND COUNT`: the number of (top-level) commands.
fn command_count(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        c.out.int(top_level().count() as i64);
        Ok(())
    })
}

/// `COMMAND INFO [command-name [command-name ...]]`: null for unknown names. Bare `COMMAND`
/// runs this too: with no names it lists every command.
fn command_info(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        reply_infos(&mut c.out, &a);
        Ok(())
    })
}

/// `COMMAND DOCS [command-name [command-name ...]]`: a map by name; unknown names are left out.
fn command_docs(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        reply_docs_map(&mut c.out, &a);
        Ok(())
    })
}

/// `COMMAND LIST [FILTERBY <MODULE module-name | ACLCAT category | PATTERN pattern>]`:
/// command names, each followed by its subcommands' (filtered one by one).
fn command_list(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let names = list(&a)?;
        c.out.array(names.len());
        for n in names {
            c.out.bulk(n.as_bytes());
        }
        Ok(())
    })
}

/// `COMMAND GETKEYS command [arg [arg ...]]`
fn command_getkeys(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move { reply_keys(&mut c.out, &a.as_slice()[2..], false) })
}

/// `COMMAND GETKEYSANDFLAGS command [arg [arg ...]]`: each key with its spec's flags.
fn command_getkeysandflags(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move { reply_keys(&mut c.out, &a.as_slice()[2..], true) })
}

// ---- replies -----------------------------------------------------------------------------------

/// COMMAND and COMMAND INFO: the named commands (`a[2..]`), or all of them.
fn reply_infos(out: &mut Reply, a: &Args) {
    if a.len() <= 2 {
        let cmds: Vec<&Cmd> = top_level().collect();
        out.array(cmds.len());
        for cmd in cmds {
            reply_info(out, cmd.spec, &cmd.full_name);
        }
        return;
    }
    out.array(a.len() - 2);
    for i in 2..a.len() {
        match table::lookup_full(&a[i]) {
            Some(cmd) => reply_info(out, cmd.spec, &cmd.full_name),
            None => out.null(),
        }
    }
}

/// COMMAND DOCS: the named commands (`a[2..]`) that exist, or all of them.
fn reply_docs_map(out: &mut Reply, a: &Args) {
    let cmds: Vec<&Cmd> = if a.len() == 2 {
        top_level().collect()
    } else {
        (2..a.len()).filter_map(|i| table::lookup_full(&a[i])).collect()
    };
    out.map(cmds.len());
    for cmd in cmds {
        out.bulk(cmd.full_name.as_bytes());
        reply_docs(out, cmd.spec, &cmd.full_name);
    }
}

enum Filter<'a> {
    All,
    /// No modules here: no command belongs to one.
    Module,
    /// An unknown category matches nothing.
    AclCat(Option<u32>),
    Pattern(&'a [u8]),
}

impl Filter<'_> {
    fn keeps(&self, cmd: &Cmd) -> bool {
        match self {
            Filter::All => true,
            Filter::Module => false,
            Filter::AclCat(cat) => cat.is_some_and(|cat| cmd.spec.acl_categories() & cat != 0),
            Filter::Pattern(p) => glob_match(p, cmd.full_name.as_bytes(), true),
        }
    }
}

/// COMMAND LIST's names, in table order.
fn list(a: &Args) -> Result<Vec<&'static str>, CmdError> {
    let mut filter = Filter::All;
    let mut i = 2;
    while i < a.len() {
        // As Redis: FILTERBY takes exactly the two arguments that end the command.
        if !(a.is(i, "FILTERBY") && a.len() - 1 - i == 2) {
            return Err(CmdError::Syntax);
        }
        let arg = &a[i + 2];
        filter = if a.is(i + 1, "MODULE") {
            Filter::Module
        } else if a.is(i + 1, "ACLCAT") {
            Filter::AclCat(
                acl::NAMES
                    .iter()
                    .find(|(_, n)| n.as_bytes().eq_ignore_ascii_case(arg))
                    .map(|&(c, _)| c),
            )
        } else if a.is(i + 1, "PATTERN") {
            Filter::Pattern(arg)
        } else {
            return Err(CmdError::Syntax);
        };
        i += 3;
    }
    Ok(table::all()
        .iter()
        .filter(|cmd| filter.keeps(cmd))
        .map(|cmd| cmd.full_name.as_str())
        .collect())
}

/// The command of the command line `argv` and its keys, each with the key spec that found it
/// (Redis's getKeysSubcommandImpl checks, in its order).
fn keys_of(argv: &[Bytes]) -> Result<Keys, CmdError> {
    let cmd = lookup_line(argv).ok_or(CmdError::Static("ERR Invalid command specified"))?;
    let spec = cmd.spec;
    let specs: Vec<&'static KeySpec> = spec.key_specs.iter().filter(|k| !has_key_flag(k, "not_key")).collect();
    if specs.is_empty() {
        return Err(CmdError::Static("ERR The command has no key arguments"));
    }
    if !spec.arity_ok(argv.len()) {
        return Err(CmdError::Static(
            "ERR Invalid number of arguments specified for command",
        ));
    }
    let line = Args::new(argv.to_vec());
    let mut keys = Vec::new();
    let mut positions = Vec::new();
    let mut failed = false;
    for k in specs {
        positions.clear();
        if key_positions(std::slice::from_ref(k), &line, &mut positions).is_err() {
            failed = true;
            break;
        }
        keys.extend(positions.iter().map(|&p| (p, k)));
    }
    if failed || keys.is_empty() {
        if spec.has(NO_MANDATORY_KEYS) {
            return Ok((spec, Vec::new()));
        }
        return Err(CmdError::Static("ERR Invalid arguments specified for command"));
    }
    Ok((spec, keys))
}

type Keys = (&'static CommandSpec, Vec<(usize, &'static KeySpec)>);

/// GETKEYS (the keys) and GETKEYSANDFLAGS (each key with its flags) of the command line `argv`.
fn reply_keys(out: &mut Reply, argv: &[Bytes], with_flags: bool) -> Result<(), CmdError> {
    let (spec, keys) = keys_of(argv)?;
    let refined = if with_flags {
        spec.key_flags.map(|f| f(&Args::new(argv.to_vec())))
    } else {
        None
    };
    out.array(keys.len());
    for (p, k) in keys {
        if !with_flags {
            out.bulk(&argv[p]);
            continue;
        }
        out.array(2);
        out.bulk(&argv[p]);
        match refined {
            Some(flags) if has_key_flag(k, "variable_flags") => reply_key_flags(out, &KeySpec { flags, ..*k }),
            _ => reply_key_flags(out, k),
        }
    }
    Ok(())
}

/// `COMMAND HELP`
fn command_help(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let lines: &[&str] = &[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
            "HELP",
            "    Prints this help.",
        ];
        super::reply_help(&mut c.out, lines);
        Ok(())
    })
}

const CONN: u32 = acl::CONNECTION;
const ORDER: &[&str] = &["nondeterministic_output_order"];

#[rustfmt::skip]
static COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "count", arity: 2, flags: LOADING | STALE, acl: CONN, group: "server", since: "2.8.13", summary: "Returns a count of commands.", run: Run::Conn(command_count), ..CommandSpec::DEFAULT },
    CommandSpec { name: "docs", arity: -2, flags: LOADING | STALE, acl: CONN, group: "server", since: "7.0.0", summary: "Returns documentary information about one, multiple or all commands.", complexity: "O(N) where N is the number of commands to look up", syntax: "[command-name [command-name ...]]", tips: ORDER, run: Run::Conn(command_docs), ..CommandSpec::DEFAULT },
    CommandSpec { name: "getkeys", arity: -4, flags: LOADING | STALE, acl: CONN, group: "server", since: "2.8.13", summary: "Extracts the key names from an arbitrary command.", complexity: "O(N) where N is the number of arguments to the command", syntax: "command [arg [arg ...]]", run: Run::Conn(command_getkeys), ..CommandSpec::DEFAULT },
    CommandSpec { name: "getkeysandflags", arity: -4, flags: LOADING | STALE, acl: CONN, group: "server", since: "7.0.0", summary: "Extracts the key names and access flags for an arbitrary command.", complexity: "O(N) where N is the number of arguments to the command", syntax: "command [arg [arg ...]]", run: Run::Conn(command_getkeysandflags), ..CommandSpec::DEFAULT },
    CommandSpec { name: "help", arity: 2, flags: LOADING | STALE, acl: CONN, group: "server", since: "5.0.0", summary: "Returns helpful text about the different subcommands.", run: Run::Conn(command_help), ..CommandSpec::DEFAULT },
    CommandSpec { name: "info", arity: -2, flags: LOADING | STALE, acl: CONN, group: "server", since: "2.8.13", summary: "Returns information about one, multiple or all commands.", complexity: "O(N) where N is the number of commands to look up", syntax: "[command-name [command-name ...]]", tips: ORDER, run: Run::Conn(command_info), ..CommandSpec::DEFAULT },
    CommandSpec { name: "list", arity: -2, flags: LOADING | STALE, acl: CONN, group: "server", since: "7.0.0", summary: "Returns a list of command names.", complexity: "O(N) where N is the total number of Redis commands", syntax: "[FILTERBY <MODULE module-name | ACLCAT category | PATTERN pattern>]", tips: ORDER, run: Run::Conn(command_list), ..CommandSpec::DEFAULT },
];

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "command", arity: -1, flags: LOADING | STALE, acl: CONN, group: "server", since: "2.8.13", summary: "Returns detailed information about all commands.", complexity: "O(N) where N is the total number of Redis commands", tips: ORDER, run: Run::Conn(command_info), subcommands: COMMAND_SUBCOMMANDS, ..CommandSpec::DEFAULT },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::Proto;

    fn args(v: &[&str]) -> Args {
        Args::new(v.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect())
    }

    fn info(proto: Proto, line: &[&str]) -> String {
        let mut out = Reply::new(proto);
        reply_infos(&mut out, &args(line));
        String::from_utf8_lossy(&out.buf).into_owned()
    }

    fn keys(proto: Proto, line: &[&str], with_flags: bool) -> Result<String, CmdError> {
        let mut out = Reply::new(proto);
        let argv: Vec<Bytes> = line.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect();
        reply_keys(&mut out, &argv, with_flags)?;
        Ok(String::from_utf8_lossy(&out.buf).into_owned())
    }

    // Replies of redis-server 7.0.15, byte for byte.
    const GET_RESP2: &str = "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n";
    const SET_RESP3: &str = "*1\r\n*10\r\n$3\r\nset\r\n:-3\r\n~2\r\n+write\r\n+denyoom\r\n:1\r\n:1\r\n:1\r\n~3\r\n+@write\r\n+@string\r\n+@slow\r\n~0\r\n~1\r\n%4\r\n$5\r\nnotes\r\n$48\r\nRW and ACCESS due to the optional `GET` argument\r\n$5\r\nflags\r\n~4\r\n+RW\r\n+access\r\n+update\r\n+variable_flags\r\n$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n%3\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n~0\r\n";
    const CLIENT_LIST_RESP3: &str = "*1\r\n*10\r\n$11\r\nclient|list\r\n:-2\r\n~4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n~4\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n+@connection\r\n~1\r\n$23\r\nnondeterministic_output\r\n~0\r\n~0\r\n";

    #[test]
    fn info_entries_are_redis_bytes() {
        assert_eq!(info(Proto::Resp2, &["command", "info", "get"]), GET_RESP2);
        assert_eq!(info(Proto::Resp3, &["command", "info", "SET"]), SET_RESP3);
        assert_eq!(
            info(Proto::Resp3, &["command", "info", "CLIENT|list"]),
            CLIENT_LIST_RESP3
        );
        // Unknown names, subcommands of commands without any, and deeper paths are nulls.
        assert_eq!(
            info(
                Proto::Resp2,
                &["command", "info", "nosuch", "get|x", "client|nosuch", "client|list|x"]
            ),
            "*4\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n"
        );
        assert_eq!(info(Proto::Resp3, &["command", "info", "nosuch"]), "*1\r\n_\r\n");
    }

    #[test]
    fn all_commands_are_the_top_level_ones() {
        let all = info(Proto::Resp2, &["command"]);
        let count = top_level().count();
        assert!(all.starts_with(&format!("*{count}\r\n*10\r\n")), "{}", &all[..40]);
        assert_eq!(info(Proto::Resp2, &["command", "info"]), all);
        assert!(count < table::all().len(), "subcommands are not counted");
        // A container's entry carries its subcommands' entries, named parent|sub.
        let client = info(Proto::Resp2, &["command", "info", "client"]);
        assert!(client.contains("$9\r\nclient|id\r\n:2\r\n"), "{client}");
    }

    #[test]
    fn movable_keys_follow_the_key_specs() {
        const KEYNUM: &[KeySpec] = &[KeySpec {
            flags: &["RO"],
            begin: Begin::Index(2),
            find: Find::Keynum {
                keynumidx: 0,
                firstkey: 1,
                step: 1,
            },
            notes: "",
        }];
        let spec = CommandSpec {
            name: "x",
            arity: -3,
            flags: NO_MANDATORY_KEYS | MAY_REPLICATE,
            key_specs: KEYNUM,
            summary: "x",
            ..CommandSpec::DEFAULT
        };
        let mut out = Reply::new(Proto::Resp2);
        reply_info(&mut out, &spec, "x");
        let s = String::from_utf8_lossy(&out.buf);
        // may_replicate is hidden, movablekeys shown, the legacy triple is empty.
        assert!(
            s.starts_with("*10\r\n$1\r\nx\r\n:-3\r\n*2\r\n+no_mandatory_keys\r\n+movablekeys\r\n:0\r\n:0\r\n:0\r\n"),
            "{s}"
        );
        assert!(s.contains("$4\r\ntype\r\n$6\r\nkeynum\r\n$4\r\nspec\r\n*6\r\n$9\r\nkeynumidx\r\n:0\r\n$8\r\nfirstkey\r\n:1\r\n$7\r\nkeystep\r\n:1\r\n"), "{s}");
        // Flags print in Redis's order and spelling whatever the declaration's.
        let mut out = Reply::new(Proto::Resp2);
        reply_key_flags(&mut out, &KeySpec::one(1, &["UPDATE", "access", "RW"]));
        assert_eq!(&out.buf[..], b"*3\r\n+RW\r\n+access\r\n+update\r\n");
    }

    #[test]
    fn getkeys() {
        assert_eq!(
            keys(Proto::Resp2, &["MSET", "a", "1", "b", "2", "c"], false).unwrap(),
            "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
        );
        assert_eq!(keys(Proto::Resp2, &["get", "k"], false).unwrap(), "*1\r\n$1\r\nk\r\n");
        let err = |line: &[&str]| keys(Proto::Resp2, line, false).unwrap_err().to_string();
        assert_eq!(err(&["nosuch", "a"]), "ERR Invalid command specified");
        assert_eq!(err(&["client", "nosuch"]), "ERR Invalid command specified");
        assert_eq!(err(&["ping", "x"]), "ERR The command has no key arguments");
        assert_eq!(err(&["client", "list"]), "ERR The command has no key arguments");
        assert_eq!(
            err(&["get", "a", "b"]),
            "ERR Invalid number of arguments specified for command"
        );
        assert_eq!(
            err(&["mset", "a"]),
            "ERR Invalid number of arguments specified for command"
        );
    }

    #[test]
    fn getkeysandflags_refines_variable_flags() {
        assert_eq!(
            keys(Proto::Resp2, &["set", "k", "v"], true).unwrap(),
            "*1\r\n*2\r\n$1\r\nk\r\n*2\r\n+OW\r\n+update\r\n"
        );
        assert_eq!(
            keys(Proto::Resp3, &["set", "k", "v", "get"], true).unwrap(),
            "*1\r\n*2\r\n$1\r\nk\r\n~3\r\n+RW\r\n+access\r\n+update\r\n"
        );
        assert_eq!(
            keys(Proto::Resp2, &["mget", "a", "b"], true).unwrap(),
            "*2\r\n*2\r\n$1\r\na\r\n*2\r\n+RO\r\n+access\r\n*2\r\n$1\r\nb\r\n*2\r\n+RO\r\n+access\r\n"
        );
    }

    #[test]
    fn list_filters() {
        let names = |line: &[&str]| list(&args(line));
        let all = names(&["command", "list"]).unwrap();
        assert_eq!(all.len(), table::all().len());
        let pos = |n: &str| all.iter().position(|&x| x == n).unwrap();
        assert_eq!(pos("client") + 1, pos("client|id"), "subcommands follow their command");
        assert_eq!(
            names(&["command", "list", "filterby", "pattern", "CLIENT|L*"]).unwrap(),
            vec!["client|list"]
        );
        let conn = names(&["command", "list", "FILTERBY", "aclcat", "Connection"]).unwrap();
        assert!(conn.contains(&"ping") && conn.contains(&"client|id") && !conn.contains(&"get"));
        assert!(names(&["command", "list", "filterby", "aclcat", "nosuch"])
            .unwrap()
            .is_empty());
        assert!(names(&["command", "list", "filterby", "module", "m"])
            .unwrap()
            .is_empty());
        for bad in [
            &["command", "list", "filterby"][..],
            &["command", "list", "filterby", "foo", "x"],
            &["command", "list", "foo"],
            &["command", "list", "filterby", "pattern", "x", "y"],
        ] {
            assert_eq!(names(bad), Err(CmdError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn docs_map() {
        let mut out = Reply::new(Proto::Resp3);
        reply_docs_map(&mut out, &args(&["command", "docs", "nosuch", "get", "client|list"]));
        let s = String::from_utf8_lossy(&out.buf);
        assert!(s.starts_with("%2\r\n$3\r\nget\r\n%5\r\n$7\r\nsummary\r\n"), "{s}");
        assert!(s.contains("$11\r\nclient|list\r\n%5\r\n"), "{s}");
        let mut out = Reply::new(Proto::Resp2);
        reply_docs_map(&mut out, &args(&["command", "docs", "nosuch"]));
        assert_eq!(&out.buf[..], b"*0\r\n");
    }
}
