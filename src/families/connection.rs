//! Connection commands: PING ECHO QUIT SELECT HELLO AUTH RESET and CLIENT.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::boxed;
use crate::command::{acl, flags::*, Args, CommandSpec, LocalFuture, Run};
use crate::error::CmdError;
use crate::resp::Proto;
use crate::server::client::{Client, ReplyMode};
use crate::server::info::REDIS_VERSION;
use crate::server::unix_ms;

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

/// Checks a username/password pair against the default user (requirepass).
fn check_credentials(client: &Client, user: Option<&[u8]>, pass: &[u8]) -> Result<(), CmdError> {
    let cfg = client.shard.local.cfg.borrow();
    if let Some(user) = user {
        if user != b"default" {
            return Err(CmdError::WrongPass);
        }
    }
    match &cfg.requirepass {
        // The default user is "nopass": any password is accepted for it.
        None => Ok(()),
        Some(pw) if constant_time_eq(pw, pass) => Ok(()),
        Some(_) => Err(CmdError::WrongPass),
    }
}

/// Redis's client-name rule: printable ASCII without spaces.
pub fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

fn ping(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        if a.len() > 2 {
            return Err(CmdError::WrongArity("ping".into()));
        }
        if c.proto == Proto::Resp2 && c.handle.pubsub.active() {
            // Subscribed RESP2 clients get PING's answer in the shape of a message.
            c.out.array(2);
            c.out.bulk(b"pong");
            c.out.bulk(if a.len() == 2 { &a[1] } else { b"" });
            return Ok(());
        }
        match a.len() {
            1 => c.out.simple("PONG"),
            _ => c.out.bulk(&a[1]),
        }
        Ok(())
    })
}

fn echo(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        c.out.bulk(&a[1]);
        Ok(())
    })
}

fn quit(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        c.out.ok();
        c.close_after_reply = true;
        Ok(())
    })
}

fn select(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let db = a.int(1)?;
        let databases = c.shard.local.cfg.borrow().databases;
        if db < 0 || db as usize >= databases {
            return Err(CmdError::DbIndexOutOfRange);
        }
        c.select(db as usize);
        c.out.ok();
        Ok(())
    })
}

fn auth(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let (user, pass) = match a.len() {
            2 => (None, &a[1]),
            3 => (Some(&a[1]), &a[2]),
            _ => return Err(CmdError::Syntax),
        };
        if user.is_none() && c.shard.local.cfg.borrow().requirepass.is_none() {
            return Err(CmdError::Static(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ));
        }
        check_credentials(c, user, pass)?;
        c.authenticated = true;
        c.out.ok();
        Ok(())
    })
}

fn hello(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let mut proto = None;
        if a.len() >= 2 {
            let v = a
                .int(1)
                .map_err(|_| CmdError::Static("ERR Protocol version is not an integer or out of range"))?;
            if !(2..=3).contains(&v) {
                return Err(CmdError::Static("NOPROTO unsupported protocol version"));
            }
            proto = Some(if v == 3 { Proto::Resp3 } else { Proto::Resp2 });
        }
        let mut creds: Option<(&[u8], &[u8])> = None;
        let mut name: Option<&[u8]> = None;
        let mut i = 2;
        while i < a.len() {
            let more = a.len() - i - 1;
            if a.is(i, "AUTH") && more >= 2 {
                creds = Some((&a[i + 1], &a[i + 2]));
                i += 3;
            } else if a.is(i, "SETNAME") && more >= 1 {
                name = Some(&a[i + 1]);
                i += 2;
            } else {
                return Err(CmdError::Custom(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&a[i])
                )));
            }
        }
        if let Some((user, pass)) = creds {
            check_credentials(c, Some(user), pass)?;
            c.authenticated = true;
        }
        if !c.authenticated {
            return Err(CmdError::Static("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"));
        }
        if let Some(n) = name {
            if !valid_client_name(n) {
                return Err(CmdError::Static(BAD_NAME));
            }
            *c.handle.name.borrow_mut() = if n.is_empty() {
                None
            } else {
                Some(Bytes::copy_from_slice(n))
            };
        }
        if let Some(p) = proto {
            c.set_proto(p);
        }
        let out = &mut c.out;
        out.map(7);
        out.bulk(b"server");
        out.bulk(b"redis");
        out.bulk(b"version");
        out.bulk(REDIS_VERSION.as_bytes());
        out.bulk(b"proto");
        out.int(if c.proto == Proto::Resp3 { 3 } else { 2 });
        out.bulk(b"id");
        out.int(c.id as i64);
        out.bulk(b"mode");
        out.bulk(b"standalone");
        out.bulk(b"role");
        out.bulk(b"master");
        out.bulk(b"modules");
        out.array(0);
        Ok(())
    })
}

fn reset(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        c.select(0);
        c.set_proto(Proto::Resp2);
        c.reply_mode = ReplyMode::On;
        c.multi = None;
        c.multi_error = false;
        c.handle.multi_len.set(-1);
        crate::families::transactions::unwatch_all(c).await;
        crate::server::pubsub::unsubscribe_all(&c.shard, &c.handle, false);
        crate::server::pubsub::settle_unsubscribes(&c.shard, &c.handle).await;
        *c.handle.name.borrow_mut() = None;
        c.handle.no_evict.set(false);
        c.handle.no_touch.set(false);
        c.authenticated = c.shard.local.cfg.borrow().requirepass.is_none();
        if c.handle.monitor.replace(false) {
            let id = c.id;
            c.shard.local.clients.borrow_mut().monitors.retain(|h| h.id != id);
            c.shard.local.shared.monitors.fetch_sub(1, Ordering::SeqCst);
        }
        c.out.simple("RESET");
        Ok(())
    })
}

fn client_id(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        c.out.int(c.id as i64);
        Ok(())
    })
}

fn client_setname(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let n = &a[2];
        if !valid_client_name(n) {
            return Err(CmdError::Static(BAD_NAME));
        }
        *c.handle.name.borrow_mut() = if n.is_empty() { None } else { Some(a.bytes(2).clone()) };
        c.out.ok();
        Ok(())
    })
}

fn client_getname(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        match c.handle.name.borrow().as_ref() {
            Some(n) => c.out.bulk(n),
            None => c.out.null(),
        }
        Ok(())
    })
}

fn client_setinfo(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let v = &a[3];
        // Redis 7.2: lib-name/lib-ver may not contain spaces, newlines or special characters.
        if !v.iter().all(|&ch| (b'!'..=b'~').contains(&ch)) {
            return Err(CmdError::Custom(format!(
                "ERR {} cannot contain spaces, newlines or special characters.",
                String::from_utf8_lossy(&a[2]).to_ascii_uppercase()
            )));
        }
        let value = if v.is_empty() { None } else { Some(a.bytes(3).clone()) };
        if a.is(2, "LIB-NAME") {
            *c.handle.lib_name.borrow_mut() = value;
        } else if a.is(2, "LIB-VER") {
            *c.handle.lib_ver.borrow_mut() = value;
        } else {
            return Err(CmdError::Custom(format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(&a[2])
            )));
        }
        c.out.ok();
        Ok(())
    })
}

/// CLIENT LIST lines from every shard, optionally only some ids.
async fn client_lines(c: &Client, ids: Option<Vec<u64>>) -> Result<String, CmdError> {
    let now = unix_ms();
    let parts = c
        .shard
        .hop_all(move |sh| {
            let mut s = String::new();
            for (id, h) in sh.local.clients.borrow().clients.iter() {
                if ids.as_ref().is_none_or(|ids| ids.contains(id)) {
                    s.push_str(&h.info_line(now));
                    s.push('\n');
                }
            }
            s
        })
        .await?;
    // Ids are global and increasing: sort the merged lines by id as Redis lists them.
    let mut lines: Vec<&str> = parts.iter().flat_map(|p| p.lines()).collect();
    lines.sort_by_key(|l| {
        l.split(' ')
            .next()
            .and_then(|f| f.strip_prefix("id="))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    });
    let mut out = String::new();
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    Ok(out)
}

fn client_list(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let mut ids = None;
        let mut cur = a.cursor(2);
        while let Some(opt) = cur.next_arg() {
            if opt.eq_ignore_ascii_case(b"TYPE") {
                let t = cur.value()?.to_ascii_lowercase();
                match t.as_slice() {
                    b"normal" => {}
                    b"master" | b"replica" | b"slave" | b"pubsub" => ids = Some(Vec::new()),
                    _ => {
                        return Err(CmdError::Custom(format!(
                            "ERR Unknown client type '{}'",
                            String::from_utf8_lossy(&t)
                        )))
                    }
                }
            } else if opt.eq_ignore_ascii_case(b"ID") {
                let mut v = Vec::new();
                while let Some(x) = cur.next_arg() {
                    match crate::command::args::parse_i64(x) {
                        Some(n) if n > 0 => v.push(n as u64),
                        _ => return Err(CmdError::Static("ERR Invalid client ID")),
                    }
                }
                if v.is_empty() {
                    return Err(CmdError::Syntax);
                }
                ids = Some(v);
            } else {
                return Err(CmdError::Syntax);
            }
        }
        let text = client_lines(c, ids).await?;
        c.out.verbatim("txt", text.as_bytes());
        Ok(())
    })
}

fn client_info(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let mut line = c.handle.info_line(unix_ms());
        line.push('\n');
        c.out.verbatim("txt", line.as_bytes());
        Ok(())
    })
}

/// `CLIENT PAUSE timeout [WRITE | ALL]`: holds every client's commands (ALL, the default),
/// or those that may write (WRITE), for `timeout` milliseconds, server-wide; the held
/// commands run once the pause ends (see `dispatch::wait_unpaused`).
fn client_pause(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let all = match a.len() {
            5.. => return Err(CmdError::sub_syntax(&a[1], "CLIENT")),
            4 if a.is(3, "WRITE") => false,
            4 if a.is(3, "ALL") => true,
            4 => return Err(CmdError::Static("ERR CLIENT PAUSE mode must be WRITE or ALL")),
            _ => true,
        };
        let end = super::server::ms_deadline(&a[2], unix_ms())?;
        c.shard.local.shared.pause.pause(end, all);
        c.out.ok();
        Ok(())
    })
}

/// `CLIENT UNPAUSE`: ends the pause; the held commands run.
fn client_unpause(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        c.shard.local.shared.pause.unpause();
        c.out.ok();
        Ok(())
    })
}

/// `CLIENT UNBLOCK client-id [TIMEOUT | ERROR]`: ends another client's blocking command,
/// as if it timed out, or with an -UNBLOCKED error.
fn client_unblock(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let id = a.int(2)?;
        let mode = if a.len() < 4 || a.is(3, "timeout") {
            crate::server::blocking::Unblock::Timeout
        } else if a.is(3, "error") {
            crate::server::blocking::Unblock::Error
        } else {
            return Err(CmdError::Static("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"));
        };
        if a.len() > 4 {
            return Err(CmdError::sub_syntax(&a[1], "CLIENT"));
        }
        let found = c
            .shard
            .hop_all(move |sh| id > 0 && crate::server::blocking::unblock(sh, id as u64, mode))
            .await?;
        c.out.int(found.iter().any(|&f| f) as i64);
        Ok(())
    })
}

/// A CLIENT KILL filter (Redis 7's new form; the old form is `CLIENT KILL addr:port`).
#[derive(Default, Clone)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    user: Option<String>,
    skipme: bool,
    maxage: Option<u64>,
    kind_normal: Option<bool>,
}

fn client_kill(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let old_form = a.len() == 3;
        let mut f = KillFilter {
            skipme: true,
            ..Default::default()
        };
        if old_form {
            f.addr = Some(String::from_utf8_lossy(&a[2]).into_owned());
            f.skipme = false;
        } else {
            let mut cur = a.cursor(2);
            while let Some(opt) = cur.next_arg() {
                let val = cur.value()?;
                let sval = String::from_utf8_lossy(val).into_owned();
                match opt.to_ascii_lowercase().as_slice() {
                    b"id" => match crate::command::args::parse_i64(val) {
                        Some(n) if n > 0 => f.id = Some(n as u64),
                        _ => return Err(CmdError::Static("ERR client-id should be greater than 0")),
                    },
                    b"addr" => f.addr = Some(sval),
                    b"laddr" => f.laddr = Some(sval),
                    b"user" => f.user = Some(sval),
                    b"skipme" => match sval.to_ascii_lowercase().as_str() {
                        "yes" => f.skipme = true,
                        "no" => f.skipme = false,
                        _ => return Err(CmdError::Syntax),
                    },
                    b"maxage" => match crate::command::args::parse_i64(val) {
                        Some(n) if n >= 0 => f.maxage = Some(n as u64),
                        _ => return Err(CmdError::Syntax),
                    },
                    b"type" => match sval.to_ascii_lowercase().as_str() {
                        "normal" => f.kind_normal = Some(true),
                        "master" | "replica" | "slave" | "pubsub" => f.kind_normal = Some(false),
                        _ => return Err(CmdError::Custom(format!("ERR Unknown client type '{sval}'"))),
                    },
                    _ => return Err(CmdError::Syntax),
                }
            }
        }
        let me = c.id;
        let now = unix_ms();
        let filter = f.clone();
        let killed: Vec<usize> = c
            .shard
            .hop_all(move |sh| {
                let mut n = 0;
                for h in sh.local.clients.borrow().clients.values() {
                    let f = &filter;
                    if (f.skipme && h.id == me)
                        || f.id.is_some_and(|id| id != h.id)
                        || f.addr.as_ref().is_some_and(|a| *a != h.addr.to_string())
                        || f.laddr.as_ref().is_some_and(|a| *a != h.laddr.to_string())
                        || f.user.as_ref().is_some_and(|u| u != "default")
                        || f.maxage.is_some_and(|m| now.saturating_sub(h.created_ms) / 1000 < m)
                        || f.kind_normal == Some(false)
                    {
                        continue;
                    }
                    if h.id == me {
                        // Killing ourselves: the reply is written first, then the connection closes.
                        h.killed.set(true);
                    } else {
                        h.kill();
                    }
                    n += 1;
                }
                n
            })
            .await?;
        let total: usize = killed.iter().sum();
        if old_form {
            if total == 0 {
                return Err(CmdError::Static("ERR No such client"));
            }
            c.out.ok();
        } else {
            c.out.int(total as i64);
        }
        if c.handle.killed.get() {
            c.close_after_reply = true;
        }
        Ok(())
    })
}

fn on_off(a: &Args, i: usize) -> Result<bool, CmdError> {
    if a.is(i, "ON") {
        Ok(true)
    } else if a.is(i, "OFF") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

fn client_no_evict(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        c.handle.no_evict.set(on_off(&a, 2)?);
        c.out.ok();
        Ok(())
    })
}

fn client_no_touch(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        c.handle.no_touch.set(on_off(&a, 2)?);
        c.out.ok();
        Ok(())
    })
}

fn client_reply(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        if a.is(2, "ON") {
            c.reply_mode = ReplyMode::On;
            c.out.ok();
        } else if a.is(2, "OFF") {
            c.reply_mode = ReplyMode::Off;
        } else if a.is(2, "SKIP") {
            c.reply_mode = ReplyMode::SkipNext;
        } else {
            return Err(CmdError::Syntax);
        }
        Ok(())
    })
}

/// `CLIENT TRACKINGINFO`: client-side caching (`CLIENT TRACKING`) is not implemented, so
/// every connection answers as a Redis connection with tracking off does.
fn client_trackinginfo(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        c.out.map(3);
        c.out.bulk(b"flags");
        c.out.set(1);
        c.out.bulk(b"off");
        c.out.bulk(b"redirect");
        c.out.int(-1);
        c.out.bulk(b"prefixes");
        c.out.array(0);
        Ok(())
    })
}

/// `CLIENT GETREDIR`: -1, the answer of a connection without tracking.
fn client_getredir(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        c.out.int(-1);
        Ok(())
    })
}

/// `CLIENT CACHING YES|NO`: Redis's error for a connection without OPTIN/OPTOUT tracking,
/// which every basalt connection is.
fn client_caching(_c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        Err(CmdError::Static(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ))
    })
}

fn client_help(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let lines: &[&str] = &[
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CACHING (YES|NO)",
            "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
            "GETREDIR",
            "    Return the client ID we are redirecting to when tracking is enabled.",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "    * ID <client-id>",
            "      Kill connections by client id.",
            "    * MAXAGE <maxage>",
            "      Kill connections older than the specified age.",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
            "NO-TOUCH (ON|OFF)",
            "    Will not touch LRU/LFU stats when this mode is on.",
            "PAUSE <timeout> [WRITE|ALL]",
            "    Suspend all, or just write, clients for <timeout> milliseconds.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are:",
            "    * LIB-NAME: the client lib name.",
            "    * LIB-VER: the client lib version.",
            "TRACKINGINFO",
            "    Report tracking status for the current connection.",
            "UNPAUSE",
            "    Stop the current client pause, resuming traffic.",
            "HELP",
            "    Print this help.",
        ];
        super::reply_help(&mut c.out, lines);
        Ok(())
    })
}

const CONN: u32 = acl::CONNECTION;

static CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "id", arity: 2, flags: NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "5.0.0", summary: "Returns the unique client ID of the connection.", run: Run::Conn(client_id), ..CommandSpec::DEFAULT },
    CommandSpec { name: "setname", arity: 3, flags: NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "2.6.9", summary: "Sets the connection name.", syntax: "connection-name", run: Run::Conn(client_setname), ..CommandSpec::DEFAULT },
    CommandSpec { name: "getname", arity: 2, flags: NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "2.6.9", summary: "Returns the name of the connection.", run: Run::Conn(client_getname), ..CommandSpec::DEFAULT },
    CommandSpec { name: "setinfo", arity: 4, flags: NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "7.2.0", summary: "Sets information specific to the client or connection.", syntax: "<LIB-NAME libname | LIB-VER libver>", run: Run::Conn(client_setinfo), ..CommandSpec::DEFAULT },
    CommandSpec { name: "list", arity: -2, flags: ADMIN | NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "2.4.0", summary: "Lists open connections.", complexity: "O(N) where N is the number of client connections", syntax: "[TYPE <NORMAL | MASTER | REPLICA | PUBSUB>] [ID client-id [client-id ...]]", tips: &["nondeterministic_output"], run: Run::Conn(client_list), ..CommandSpec::DEFAULT },
    CommandSpec { name: "info", arity: 2, flags: NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "6.2.0", summary: "Returns information about the connection.", tips: &["nondeterministic_output"], run: Run::Conn(client_info), ..CommandSpec::DEFAULT },
    CommandSpec { name: "unblock", arity: -3, flags: ADMIN | NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "5.0.0", summary: "Unblocks a client blocked by a blocking command from a different connection.", complexity: "O(log N) where N is the number of client connections", syntax: "client-id [TIMEOUT | ERROR]", run: Run::Conn(client_unblock), ..CommandSpec::DEFAULT },
    CommandSpec { name: "pause", arity: -3, flags: ADMIN | NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "3.0.0", summary: "Suspends commands processing.", syntax: "timeout [WRITE | ALL]", run: Run::Conn(client_pause), ..CommandSpec::DEFAULT },
    CommandSpec { name: "unpause", arity: 2, flags: ADMIN | NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "6.2.0", summary: "Resumes processing commands from paused clients.", complexity: "O(N) Where N is the number of paused clients", run: Run::Conn(client_unpause), ..CommandSpec::DEFAULT },
    CommandSpec { name: "kill", arity: -3, flags: ADMIN | NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "2.4.0", summary: "Terminates open connections.", complexity: "O(N) where N is the number of client connections", syntax: "<ip:port | <[ID client-id] | [TYPE <NORMAL | MASTER | SLAVE | REPLICA | PUBSUB>] | [USER username] | [ADDR ip:port] | [LADDR ip:port] | [SKIPME <YES | NO>] | [MAXAGE maxage]> [[ID client-id] | [TYPE <NORMAL | MASTER | SLAVE | REPLICA | PUBSUB>] | [USER username] | [ADDR ip:port] | [LADDR ip:port] | [SKIPME <YES | NO>] | [MAXAGE maxage] ...]>", run: Run::Conn(client_kill), ..CommandSpec::DEFAULT },
    CommandSpec { name: "no-evict", arity: 3, flags: ADMIN | NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "7.0.0", summary: "Sets the client eviction mode of the connection.", syntax: "<ON | OFF>", run: Run::Conn(client_no_evict), ..CommandSpec::DEFAULT },
    CommandSpec { name: "no-touch", arity: 3, flags: NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "7.2.0", summary: "Controls whether commands sent by the client affect the LRU/LFU of accessed keys.", syntax: "<ON | OFF>", run: Run::Conn(client_no_touch), ..CommandSpec::DEFAULT },
    CommandSpec { name: "reply", arity: 3, flags: NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "3.2.0", summary: "Instructs the server whether to reply to commands.", syntax: "<ON | OFF | SKIP>", run: Run::Conn(client_reply), ..CommandSpec::DEFAULT },
    CommandSpec { name: "help", arity: 2, flags: LOADING | STALE, acl: CONN, group: "connection", since: "5.0.0", summary: "Returns helpful text about the different subcommands.", run: Run::Conn(client_help), ..CommandSpec::DEFAULT },
    CommandSpec { name: "trackinginfo", arity: 2, flags: NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "6.2.0", summary: "Returns information about server-assisted client-side caching for the connection.", run: Run::Conn(client_trackinginfo), ..CommandSpec::DEFAULT },
    CommandSpec { name: "getredir", arity: 2, flags: NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "6.0.0", summary: "Returns the client ID to which the connection's tracking notifications are redirected.", run: Run::Conn(client_getredir), ..CommandSpec::DEFAULT },
    CommandSpec { name: "caching", arity: 3, flags: NOSCRIPT | LOADING | STALE, acl: CONN, group: "connection", since: "6.0.0", summary: "Instructs the server whether to track the keys in the next request.", syntax: "<YES | NO>", run: Run::Conn(client_caching), ..CommandSpec::DEFAULT },
];

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "ping",
        arity: -1,
        flags: FAST,
        acl: CONN,
        group: "connection",
        summary: "Returns the server's liveliness response.",
        syntax: "[message]",
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        run: Run::Conn(ping),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "echo",
        arity: 2,
        flags: LOADING | STALE | FAST,
        acl: CONN,
        group: "connection",
        summary: "Returns the given string.",
        syntax: "message",
        run: Run::Conn(echo),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "quit",
        arity: -1,
        flags: ALLOW_BUSY | NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        acl: CONN,
        group: "connection",
        summary: "Closes the connection.",
        run: Run::Conn(quit),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "select",
        arity: 2,
        flags: LOADING | STALE | FAST,
        acl: CONN,
        group: "connection",
        summary: "Changes the selected database.",
        syntax: "index",
        run: Run::Conn(select),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "auth",
        arity: -2,
        flags: NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY | SKIP_MONITOR | SKIP_SLOWLOG,
        acl: CONN,
        group: "connection",
        summary: "Authenticates the connection.",
        complexity: "O(N) where N is the number of passwords defined for the user",
        syntax: "[username] password",
        run: Run::Conn(auth),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "hello",
        arity: -1,
        flags: NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY | SKIP_MONITOR | SKIP_SLOWLOG,
        acl: CONN,
        group: "connection",
        since: "6.0.0",
        summary: "Handshakes with the Redis server.",
        syntax: "[protover [AUTH username password] [SETNAME clientname]]",
        run: Run::Conn(hello),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "reset",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        acl: CONN,
        group: "connection",
        since: "6.2.0",
        summary: "Resets the connection.",
        run: Run::Conn(reset),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "client",
        arity: -2,
        group: "connection",
        since: "2.4.0",
        summary: "A container for client connection commands.",
        complexity: "Depends on subcommand.",
        subcommands: CLIENT_SUBCOMMANDS,
        ..CommandSpec::DEFAULT
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn client_names() {
        assert!(valid_client_name(b"worker-1"));
        assert!(!valid_client_name(b"has space"));
        assert!(!valid_client_name(b"nl\n"));
    }
}
