//! Pub/Sub: SUBSCRIBE and friends, PUBLISH, SPUBLISH, PUBSUB. The registry, delivery to
//! subscriber connections, output limits and keyspace notifications are in
//! `server::pubsub`; these are the connection-level handlers.
//!
//! Shard channels (SSUBSCRIBE, SPUBLISH) are a namespace of their own, as in Redis; with one
//! basalt server being the whole "cluster", they behave like ordinary channels otherwise.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::{boxed, reply_help};
use crate::command::table::Cmd;
use crate::command::{flags::*, Args, CommandSpec, KeySpec, LocalFuture, Run};
use crate::error::CmdError;
use crate::server::client::Client;
use crate::server::pubsub::{self as ps, Kind};

/// Commands a RESP2 client may run while subscribed (Redis's processCommand list).
pub fn allowed_when_subscribed(cmd: &Cmd) -> bool {
    cmd.parent.is_none()
        && matches!(
            cmd.spec.name,
            "ping"
                | "subscribe"
                | "ssubscribe"
                | "unsubscribe"
                | "sunsubscribe"
                | "psubscribe"
                | "punsubscribe"
                | "quit"
                | "reset"
        )
}

fn names(a: &Args) -> &[Bytes] {
    &a.as_slice()[1..]
}

fn sub(c: &mut Client, a: &Args, kind: Kind) {
    let sh = c.shard.clone();
    ps::subscribe(&sh, &c.handle, &mut c.out, kind, names(a));
}

async fn unsub(c: &mut Client, a: &Args, kind: Kind) {
    let sh = c.shard.clone();
    ps::unsubscribe(&sh, &c.handle, &mut c.out, kind, names(a));
    ps::settle_unsubscribes(&sh, &c.handle).await;
}

/// `SUBSCRIBE channel [channel ...]`
fn subscribe(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        sub(c, &a, Kind::Channel);
        Ok(())
    })
}

/// `UNSUBSCRIBE [channel [channel ...]]`
fn unsubscribe(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        unsub(c, &a, Kind::Channel).await;
        Ok(())
    })
}

/// `PSUBSCRIBE pattern [pattern ...]`
fn psubscribe(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        sub(c, &a, Kind::Pattern);
        Ok(())
    })
}

/// `PUNSUBSCRIBE [pattern [pattern ...]]`
fn punsubscribe(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        unsub(c, &a, Kind::Pattern).await;
        Ok(())
    })
}

/// `SSUBSCRIBE shardchannel [shardchannel ...]`
fn ssubscribe(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        sub(c, &a, Kind::Shard);
        Ok(())
    })
}

/// `SUNSUBSCRIBE [shardchannel [shardchannel ...]]`
fn sunsubscribe(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        unsub(c, &a, Kind::Shard).await;
        Ok(())
    })
}

/// `PUBLISH channel message`
fn publish(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let n = ps::publish(&c.shard, Kind::Channel, a.bytes(1).clone(), a.bytes(2).clone());
        c.out.int(n as i64);
        Ok(())
    })
}

/// `SPUBLISH shardchannel message`
fn spublish(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let n = ps::publish(&c.shard, Kind::Shard, a.bytes(1).clone(), a.bytes(2).clone());
        c.out.int(n as i64);
        Ok(())
    })
}

/// Names of `kind` with subscribers (matching `pattern`), from the process-wide directory.
fn all_names(c: &Client, kind: Kind, pattern: Option<Bytes>) -> BTreeSet<Bytes> {
    c.shard
        .local
        .shared
        .pubsub
        .names(kind, pattern.as_deref())
        .into_iter()
        .collect()
}

/// Redis's addReplySubcommandSyntaxError, for CHANNELS and SHARDCHANNELS given too much.
fn too_many(a: &Args) -> Result<(), CmdError> {
    if a.len() > 3 {
        return Err(CmdError::Custom(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(&a[1])
        )));
    }
    Ok(())
}

/// `PUBSUB CHANNELS [pattern]`
fn pubsub_channels(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        too_many(&a)?;
        let names = all_names(c, Kind::Channel, a.as_slice().get(2).cloned());
        c.out.array_of_bulks(names.iter());
        Ok(())
    })
}

/// `PUBSUB SHARDCHANNELS [pattern]`
fn pubsub_shardchannels(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move {
        too_many(&a)?;
        let names = all_names(c, Kind::Shard, a.as_slice().get(2).cloned());
        c.out.array_of_bulks(names.iter());
        Ok(())
    })
}

/// `PUBSUB NUMPAT`: distinct patterns subscribed to, over all clients.
fn pubsub_numpat(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        let names = all_names(c, Kind::Pattern, None);
        c.out.int(names.len() as i64);
        Ok(())
    })
}

fn numsub(c: &mut Client, a: &Args, kind: Kind) -> Result<(), CmdError> {
    let dir = &c.shard.local.shared.pubsub;
    let wanted = &a.as_slice()[2..];
    let counts: Vec<usize> = wanted.iter().map(|n| dir.subscribers(kind, n)).collect();
    c.out.array(wanted.len() * 2);
    for (name, n) in wanted.iter().zip(counts) {
        c.out.bulk(name);
        c.out.int(n as i64);
    }
    Ok(())
}

/// `PUBSUB NUMSUB [channel [channel ...]]`
fn pubsub_numsub(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move { numsub(c, &a, Kind::Channel) })
}

/// `PUBSUB SHARDNUMSUB [shardchannel [shardchannel ...]]`
fn pubsub_shardnumsub(c: &mut Client, a: Args) -> LocalFuture<'_> {
    boxed(async move { numsub(c, &a, Kind::Shard) })
}

/// `PUBSUB HELP`
fn pubsub_help(c: &mut Client, _a: Args) -> LocalFuture<'_> {
    boxed(async move {
        reply_help(
            &mut c.out,
            &[
                "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "SHARDCHANNELS [<pattern>]",
                "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                "SHARDNUMSUB [<shardchannel> ...]",
                "    Return the number of subscribers for the specified shard level channel(s)",
                "HELP",
                "    Prints this help.",
            ],
        );
        Ok(())
    })
}

const NOT_KEY: &[&str] = &["not_key"];
const SUB_FLAGS: u32 = PUBSUB | NOSCRIPT | LOADING | STALE;
const PUB_FLAGS: u32 = PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE;
const INTROSPECT: u32 = PUBSUB | LOADING | STALE;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "subscribe",
        arity: -2,
        flags: SUB_FLAGS,
        group: "pubsub",
        since: "2.0.0",
        summary: "Listens for messages published to channels.",
        complexity: "O(N) where N is the number of channels to subscribe to.",
        syntax: "channel [channel ...]",
        run: Run::Conn(subscribe),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "unsubscribe",
        arity: -1,
        flags: SUB_FLAGS,
        group: "pubsub",
        since: "2.0.0",
        summary: "Stops listening to messages posted to channels.",
        complexity: "O(N) where N is the number of channels to unsubscribe.",
        syntax: "[channel [channel ...]]",
        run: Run::Conn(unsubscribe),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "psubscribe",
        arity: -2,
        flags: SUB_FLAGS,
        group: "pubsub",
        since: "2.0.0",
        summary: "Listens for messages published to channels that match one or more patterns.",
        complexity: "O(N) where N is the number of patterns to subscribe to.",
        syntax: "pattern [pattern ...]",
        run: Run::Conn(psubscribe),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "punsubscribe",
        arity: -1,
        flags: SUB_FLAGS,
        group: "pubsub",
        since: "2.0.0",
        summary: "Stops listening to messages published to channels that match one or more patterns.",
        complexity: "O(N) where N is the number of patterns to unsubscribe.",
        syntax: "[pattern [pattern ...]]",
        run: Run::Conn(punsubscribe),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "ssubscribe",
        arity: -2,
        flags: SUB_FLAGS,
        key_specs: &[KeySpec::rest(1, 1, NOT_KEY)],
        group: "pubsub",
        since: "7.0.0",
        summary: "Listens for messages published to shard channels.",
        complexity: "O(N) where N is the number of shard channels to subscribe to.",
        syntax: "shardchannel [shardchannel ...]",
        run: Run::Conn(ssubscribe),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "sunsubscribe",
        arity: -1,
        flags: SUB_FLAGS,
        key_specs: &[KeySpec::rest(1, 1, NOT_KEY)],
        group: "pubsub",
        since: "7.0.0",
        summary: "Stops listening to messages posted to shard channels.",
        complexity: "O(N) where N is the number of shard channels to unsubscribe.",
        syntax: "[shardchannel [shardchannel ...]]",
        run: Run::Conn(sunsubscribe),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "publish",
        arity: 3,
        flags: PUB_FLAGS,
        group: "pubsub",
        since: "2.0.0",
        summary: "Posts a message to a channel.",
        complexity: "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).",
        syntax: "channel message",
        run: Run::Conn(publish),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "spublish",
        arity: 3,
        flags: PUB_FLAGS,
        key_specs: &[KeySpec::one(1, NOT_KEY)],
        group: "pubsub",
        since: "7.0.0",
        summary: "Post a message to a shard channel",
        complexity: "O(N) where N is the number of clients subscribed to the receiving shard channel.",
        syntax: "shardchannel message",
        run: Run::Conn(spublish),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "pubsub",
        arity: -2,
        group: "pubsub",
        since: "2.8.0",
        summary: "A container for Pub/Sub commands.",
        complexity: "Depends on subcommand.",
        run: Run::Container,
        subcommands: &[
            CommandSpec {
                name: "channels",
                arity: -2,
                flags: INTROSPECT,
                group: "pubsub",
                since: "2.8.0",
                summary: "Returns the active channels.",
                complexity: "O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)",
                syntax: "[pattern]",
                run: Run::Conn(pubsub_channels),
                ..CommandSpec::DEFAULT
            },
            CommandSpec {
                name: "help",
                arity: 2,
                flags: LOADING | STALE,
                group: "pubsub",
                since: "6.2.0",
                summary: "Returns helpful text about the different subcommands.",
                complexity: "O(1)",
                run: Run::Conn(pubsub_help),
                ..CommandSpec::DEFAULT
            },
            CommandSpec {
                name: "numpat",
                arity: 2,
                flags: INTROSPECT,
                group: "pubsub",
                since: "2.8.0",
                summary: "Returns a count of unique pattern subscriptions.",
                complexity: "O(1)",
                run: Run::Conn(pubsub_numpat),
                ..CommandSpec::DEFAULT
            },
            CommandSpec {
                name: "numsub",
                arity: -2,
                flags: INTROSPECT,
                group: "pubsub",
                since: "2.8.0",
                summary: "Returns a count of subscribers to channels.",
                complexity: "O(N) for the NUMSUB subcommand, where N is the number of requested channels",
                syntax: "[channel [channel ...]]",
                run: Run::Conn(pubsub_numsub),
                ..CommandSpec::DEFAULT
            },
            CommandSpec {
                name: "shardchannels",
                arity: -2,
                flags: INTROSPECT,
                group: "pubsub",
                since: "7.0.0",
                summary: "Returns the active shard channels.",
                complexity: "O(N) where N is the number of active shard channels, and assuming constant time pattern matching (relatively short shard channels).",
                syntax: "[pattern]",
                run: Run::Conn(pubsub_shardchannels),
                ..CommandSpec::DEFAULT
            },
            CommandSpec {
                name: "shardnumsub",
                arity: -2,
                flags: INTROSPECT,
                group: "pubsub",
                since: "7.0.0",
                summary: "Returns the count of subscribers of shard channels.",
                complexity: "O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels",
                syntax: "[shardchannel [shardchannel ...]]",
                run: Run::Conn(pubsub_shardnumsub),
                ..CommandSpec::DEFAULT
            },
        ],
        ..CommandSpec::DEFAULT
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::table;

    #[test]
    fn subscribed_mode_allows_redis_list() {
        for name in ["ping", "subscribe", "punsubscribe", "ssubscribe", "quit", "reset"] {
            assert!(
                allowed_when_subscribed(table::lookup(name.as_bytes()).unwrap()),
                "{name}"
            );
        }
        for name in ["get", "publish", "echo", "client"] {
            assert!(
                !allowed_when_subscribed(table::lookup(name.as_bytes()).unwrap()),
                "{name}"
            );
        }
    }
}
